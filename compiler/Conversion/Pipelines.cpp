//===- Pipelines.cpp - lowered kernels down to LLVM and to PTX ------------===//

#include "compiler/Conversion/Passes.h"

#include "mlir/Conversion/NVGPUToNVVM/NVGPUToNVVM.h"
#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Transforms/Passes.h"

namespace decc {

void buildCPUToLLVMPipeline(mlir::OpPassManager &pm) {
  using namespace mlir;
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Vector exps as polynomials (LLVM would call expf a lane).
  pm.addPass(createApproximateVectorExp());
  // Rounding to bf16 (a half-precision KV cache) in integer arithmetic: x86
  // without AVX512-BF16 would otherwise call a compiler-rt builtin that the
  // executable does not link.
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  // Parallel loops become OpenMP worksharing loops (libomp at run time).
  pm.addPass(createConvertSCFToOpenMPPass());
  // memref first, while every alloca_scope (the per-iteration scratch of a
  // parallel loop) still holds a single block of structured control flow.
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createSCFToControlFlowPass());
  // x86vector's AVX512-BF16 dot products (the bf16-dot lowering), AMX's
  // tile matmuls (the amx lowering).
  ConvertVectorToLLVMPassOptions vectorOptions;
  vectorOptions.x86Vector = true;
  vectorOptions.amx = true;
  pm.addPass(createConvertVectorToLLVMPass(vectorOptions));
  // erf / tanh / pow / cos / sin have no LLVM intrinsic lowering on x86:
  // call libm for them, keep exp / rsqrt as intrinsics.
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void buildGPUToPTXPipeline(mlir::OpPassManager &pm, const std::string &chip,
                           const std::string &toolkitPath) {
  using namespace mlir;
  GpuNVVMAttachTargetOptions target;
  target.chip = chip;
  target.optLevel = 3;
  pm.addPass(createGpuNVVMAttachTarget(target));
  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());
  kernels.addPass(createSCFToControlFlowPass());
  kernels.addPass(createConvertNVGPUToNVVMPass());
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  nvvm.useBarePtrCallConv = true;
  kernels.addPass(createConvertGpuOpsToNVVMOps(nvvm));
  // NVVM ops that have no intrinsic (wgmma, mbarrier waits) become inline
  // PTX.
  kernels.addPass(createConvertNVVMToLLVMPass());
  // The canonicalizer folds an mma operand gathered from a whole vector into
  // an n-D vector.shape_cast, which convert-gpu-to-nvvm leaves behind.
  kernels.addPass(createConvertVectorToLLVMPass());
  kernels.addPass(createUBToLLVMConversionPass());
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = "isa";
  // libdevice (expf, erff, ...) is linked only when the toolkit is found.
  binary.toolkitPath = toolkitPath;
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

} // namespace decc

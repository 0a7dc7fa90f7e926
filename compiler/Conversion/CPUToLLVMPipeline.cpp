//===- CPUToLLVMPipeline.cpp - CPU kernels down to the LLVM dialect -------===//

#include "compiler/Conversion/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Transforms/Passes.h"

namespace decc {

void buildCPUToLLVMPipeline(mlir::OpPassManager &pm) {
  using namespace mlir;
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Parallel loops become OpenMP worksharing loops (libomp at run time).
  pm.addPass(createConvertSCFToOpenMPPass());
  // memref first, while every alloca_scope (the per-iteration scratch of a
  // parallel loop) still holds a single block of structured control flow.
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertVectorToLLVMPass());
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

} // namespace decc

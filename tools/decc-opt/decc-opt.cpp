//===- decc-opt.cpp - the decoder dialect's opt tool ----------------------===//
//
// mlir-opt with the decoder dialect and decc's passes: every upstream dialect
// and pass, so lit tests can run any pipeline the compiler runs.
//
//===----------------------------------------------------------------------===//

#include "Decoder/DecoderDialect.h"
#include "compiler/Conversion/Passes.h"
#include "compiler/Target/CudaToolkit.h"
#include "compiler/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  decc::registerDecoderPasses();
  decc::registerConversionPasses();
  mlir::PassPipelineRegistration<>(
      "decc-cpu-to-llvm",
      "the pipeline decc runs from CPU kernels down to the LLVM dialect",
      [](mlir::OpPassManager &pm) { decc::buildCPUToLLVMPipeline(pm); });
  mlir::PassPipelineRegistration<>(
      "decc-gpu-to-ptx",
      "the pipeline decc runs from GPU kernels to PTX (sm_90a)",
      [](mlir::OpPassManager &pm) {
        decc::buildGPUToPTXPipeline(pm, "sm_90a", decc::cudaToolkitRoot());
      });
  mlir::DialectRegistry registry;
  registry.insert<mlir::decoder::DecoderDialect>();
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates kernels to LLVM IR in-process.
  mlir::registerAllToLLVMIRTranslations(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "decc optimizer driver\n", registry));
}

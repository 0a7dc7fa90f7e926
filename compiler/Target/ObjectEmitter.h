//===- ObjectEmitter.h - LLVM dialect -> LLVM IR -> object file -*- C++ -*-===//

#ifndef DECC_TARGET_OBJECTEMITTER_H
#define DECC_TARGET_OBJECTEMITTER_H

#include "mlir/IR/BuiltinOps.h"

#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Target/TargetMachine.h"

#include <memory>
#include <string>

namespace decc {

/// The machine code is generated for: `cpu` is an LLVM CPU name
/// (`x86-64-v3`, `sapphirerapids`, ...) or `native` for this host.
struct CPUTarget {
  std::string cpu = "x86-64-v3";
};

/// A TargetMachine for `target`, or null with `error` set.
std::unique_ptr<llvm::TargetMachine>
createTargetMachine(const CPUTarget &target, std::string &error);

/// Whether code for `target` may use the LLVM subtarget feature `feature`
/// (e.g. "avx512bf16"); false for a CPU LLVM does not know.
bool cpuHasFeature(const CPUTarget &target, llvm::StringRef feature);

/// Translates a module in the LLVM dialect to LLVM IR, adds
/// `const char *decc_manifest(void)` returning `manifest` and, with a GPU
/// image (cubin or PTX), `const void *decc_gpu_image(unsigned long *size)`,
/// and optimizes it at O3 for `machine`; `addressSanitizer` then
/// instruments every memory access the model's code makes (the sanitizer
/// build's check of the generated kernels; the executable must be linked
/// with -fsanitize=address).
std::unique_ptr<llvm::Module>
translateToLLVMIR(mlir::ModuleOp module, llvm::LLVMContext &context,
                  llvm::TargetMachine &machine, const std::string &manifest,
                  const std::string *gpuImage, std::string &error,
                  bool addressSanitizer = false);

/// Emits `module` as an object file into `path`.
bool emitObjectFile(llvm::Module &module, llvm::TargetMachine &machine,
                    const std::string &path, std::string &error);

} // namespace decc

#endif // DECC_TARGET_OBJECTEMITTER_H

//===- GPUKernels.h - the lowered kernels to PTX and a cubin ----*- C++ -*-===//
//
// After convert-decoder-to-gpu, the module's gpu.module holds the kernels:
// they go to PTX through MLIR's NVVM target and to a cubin through ptxas,
// with the register caps the kernels ask for kept where ptxas meets them
// (compiler/Target/RegisterCaps.h). A kernel that asks for an occupancy
// only where it raises its own (kOccupancyRequestAttr) costs a second
// lowering of the kernels when it falls short.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_DRIVER_GPUKERNELS_H
#define DECC_DRIVER_GPUKERNELS_H

#include "compiler/Target/RegisterCaps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

#include <optional>
#include <string>

namespace decc {

/// Runs the passes `build` adds on `module`, timed as `name`; false when
/// they fail.
using RunPassesFn = llvm::function_ref<bool(
    mlir::ModuleOp module, llvm::StringRef name,
    llvm::function_ref<void(mlir::OpPassManager &)> build)>;

/// The kernels of `module` for `arch` (sm_90a, ...), assembled; the module's
/// gpu.binary is erased (the runtime loads the image itself). nullopt when
/// the lowering fails (`error` empty: its passes report why) or ptxas does
/// (`error` says why).
std::optional<AssembledKernels> compileGPUKernels(mlir::ModuleOp module,
                                                  const std::string &arch,
                                                  RunPassesFn runPasses,
                                                  std::string &error);

} // namespace decc

#endif // DECC_DRIVER_GPUKERNELS_H

//===- Passes.h - decoder -> upstream dialects ------------------*- C++ -*-===//

#ifndef DECC_CONVERSION_PASSES_H
#define DECC_CONVERSION_PASSES_H

#include "mlir/Dialect/AMX/AMXDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace decc {

#define GEN_PASS_DECL
#include "compiler/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "compiler/Conversion/Passes.h.inc"

/// The attribute convert-decoder-to-gpu puts on a kernel that asks for an
/// occupancy only where that raises its own (`array<i32: threads, blocks
/// an SM>`): the driver takes it off before translation and hands it to
/// compiler/Target/RegisterCaps.h as an OccupancyRequest.
constexpr llvm::StringLiteral kOccupancyRequestAttr = "decc.occupancy_request";

/// scf/vector/memref kernels (after convert-decoder-to-cpu) down to the LLVM
/// dialect, with parallel loops on OpenMP.
void buildCPUToLLVMPipeline(mlir::OpPassManager &pm);

/// The kernels of convert-decoder-to-gpu down to PTX for `chip`
/// (nvvm-attach-target, convert-gpu-to-nvvm, gpu-module-to-binary linking
/// libdevice from the CUDA toolkit at `toolkitPath`).
void buildGPUToPTXPipeline(mlir::OpPassManager &pm, const std::string &chip,
                           const std::string &toolkitPath);

} // namespace decc

#endif // DECC_CONVERSION_PASSES_H

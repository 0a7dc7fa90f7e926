//===- ModelBuilder.h - ModelSpec -> decoder IR -----------------*- C++ -*-===//

#ifndef DECC_FRONTEND_MODELBUILDER_H
#define DECC_FRONTEND_MODELBUILDER_H

#include "compiler/Config/ModelSpec.h"
#include "contract/Contract.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

namespace decc {

struct FrontendOptions {
  /// The element type weights are computed with; activations are f32.
  contract::DType dtype = contract::DType::F32;
  /// Weight-only quantization of every projection and the LM head
  /// (#decoder.quantized): bits a value (0: none) and columns a group.
  int64_t quantBits = 0, groupSize = 32;
  /// An InternVL config's vision encoder (@vision) and the image rows
  /// @forward's embedding takes from it (a fourth argument); off where the
  /// target has no kernels for them.
  bool vision = true;
};

/// The element type of a build's float weights (activations are f32).
mlir::Type weightElementType(mlir::MLIRContext &context, contract::DType dtype);
/// An activation: `tensor<? x features x f32>`, a row per token.
mlir::RankedTensorType activationType(mlir::MLIRContext &context,
                                      int64_t features);
/// Features per token of an activation type (`? x n`, `? x heads x d`).
int64_t featuresOf(mlir::Type activation);

/// Builds `func.func @forward(%tokens, %positions, %cache) -> logits`, one
/// decoder op per part of every block, and for an InternVL config
/// `@vision` (VisionBuilder.h). Loads the decoder and func dialects.
mlir::OwningOpRef<mlir::ModuleOp>
buildDecoderModule(mlir::MLIRContext &context, const ModelSpec &spec,
                   const FrontendOptions &options);

} // namespace decc

#endif // DECC_FRONTEND_MODELBUILDER_H

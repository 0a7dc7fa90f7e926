//===- FusionUtils.h - shared helpers of the fusion passes ------*- C++ -*-===//

#ifndef DECC_TRANSFORMS_FUSIONUTILS_H
#define DECC_TRANSFORMS_FUSIONUTILS_H

#include "Decoder/DecoderOps.h"

#include "mlir/IR/PatternMatch.h"

namespace decc {

/// The fused form of a projection: `op` itself if it already is a
/// `decoder.fused_linear`, else an equivalent one that replaces the
/// `decoder.linear` / `decoder.lm_head` in place. Null for other ops.
mlir::decoder::FusedLinearOp asFusedLinear(mlir::RewriterBase &rewriter,
                                           mlir::Operation *op);

/// True if `op` is a projection whose epilogue is still free.
bool hasFreeEpilogue(mlir::decoder::FusedLinearOp op);

/// Rebuilds `op` with `results` as result types and `attrs` added, keeping
/// every operand; the caller rewires the uses.
mlir::decoder::FusedLinearOp cloneFusedLinear(mlir::RewriterBase &rewriter,
                                              mlir::decoder::FusedLinearOp op,
                                              mlir::TypeRange results);

} // namespace decc

#endif // DECC_TRANSFORMS_FUSIONUTILS_H

//===- Activations.h - the MLP activations, for both lowerings -*- C++ -*-===//
//
// GELU (erf or tanh) and SwiGLU's silu(gate) * up on f32 scalars or
// vectors, as transformers computes them, and a dot product's bias and
// clip; the CPU kernels call them on vector chunks, the GPU epilogues on
// a thread's values.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_COMMON_ACTIVATIONS_H
#define DECC_CONVERSION_COMMON_ACTIVATIONS_H

#include "compiler/Conversion/Common/KernelBuilder.h"

namespace decc {

/// `v` as a constant shaped like `like` (an f32 scalar or vector).
mlir::Value constantLike(KernelBuilder &kb, mlir::Value like, double v);

/// GELU of `x`: 0.5 x (1 + erf(x / sqrt 2)), or with `tanhApprox`
/// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
mlir::Value gelu(KernelBuilder &kb, mlir::Value x, bool tanhApprox);

/// silu(gate) * up = gate / (1 + exp(-gate)) * up.
mlir::Value siluTimes(KernelBuilder &kb, mlir::Value gate, mlir::Value up);

/// What follows a projection's dot product `sum` for weight row `row`:
/// the bias (a flat buffer; none if null) added, then clamped to
/// [-clip, clip] when `clip` > 0 (MPT's clip_qkv).
mlir::Value biasAndClip(KernelBuilder &kb, mlir::Value sum, mlir::Value bias,
                        mlir::Value row, double clip);

} // namespace decc

#endif // DECC_CONVERSION_COMMON_ACTIVATIONS_H

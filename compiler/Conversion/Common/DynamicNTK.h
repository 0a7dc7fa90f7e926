//===- DynamicNTK.h - InternLM2's dynamic NTK RoPE, in kernels -*- C++ -*-===//
//
// The one RoPE kind whose frequencies depend on the run: the base grows
// with the longest sequence seen so far (a "sticky" length, the reference's
// module buffer), computed in f32 as transformers does. Both lowerings
// build it from these.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_COMMON_DYNAMICNTK_H
#define DECC_CONVERSION_COMMON_DYNAMICNTK_H

#include "compiler/Conversion/Common/KernelBuilder.h"

#include "Decoder/DecoderAttrs.h"

namespace decc {

/// The sticky length in `state`[0] (i64): a call that sees more than
/// max_positions keys (`seen`, index) sets it; returns the length in force.
mlir::Value updateNTKLength(KernelBuilder &kb, mlir::decoder::RoPEAttr rope,
                            mlir::Value state, mlir::Value seen);

/// The base for `length` (index): past max_positions
/// theta * (factor * length / max - (factor - 1))^(d / (d - 2)), else theta.
mlir::Value dynamicNTKBase(KernelBuilder &kb, mlir::decoder::RoPEAttr rope,
                           mlir::Value length);

/// Rotated pair i's inverse frequency 1 / base^(2i / d).
mlir::Value inverseFrequency(KernelBuilder &kb, mlir::decoder::RoPEAttr rope,
                             mlir::Value base, mlir::Value i);

} // namespace decc

#endif // DECC_CONVERSION_COMMON_DYNAMICNTK_H

//===- Quantize.h - weight-only integer quantization ------------*- C++ -*-===//
//
// What a `#decoder.quantized` slot of the arena holds, made from floats at
// load time: int8, symmetric, one f16 scale a group of columns of a row.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_QUANTIZE_H
#define DECC_RUNTIME_QUANTIZE_H

#include "contract/Manifest.h"

#include <cstdint>

namespace decc::rt {

/// Quantizes `values` (the slot's rows x cols floats) into the slot's bytes
/// at `out`: each group's scale is max|w| / 127 rounded to f16, each value
/// round(w / scale) clamped to [-127, 127]; the integers row by row, the
/// scales at slot.scalesOffset(). Rows in parallel.
void quantizeSlot(const contract::WeightSlot &slot, const float *values,
                  uint8_t *out);

/// The floats a quantized slot at `in` stands for (q * scale), into
/// `values` (rows x cols).
void dequantizeSlot(const contract::WeightSlot &slot, const uint8_t *in,
                    float *values);

} // namespace decc::rt

#endif // DECC_RUNTIME_QUANTIZE_H

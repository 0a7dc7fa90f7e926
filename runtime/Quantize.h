//===- Quantize.h - weight-only integer quantization ------------*- C++ -*-===//
//
// What a `#decoder.quantized` slot of the arena holds, made from floats at
// load time: int8, symmetric, one f16 scale a group of columns of a row; or
// int4, asymmetric, an f16 scale and a zero point a group (AWQ's format).
// A slot with f32 group terms (the CPU kernels') holds the same values as
// f32: the scale and the offset -zero * scale.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_QUANTIZE_H
#define DECC_RUNTIME_QUANTIZE_H

#include "contract/Manifest.h"

#include <cstdint>
#include <vector>

namespace decc::rt {

/// 4-bit weights as rows: q [rows][cols] and zeros [rows][groups] in
/// [0, 15], scales [rows][groups] as f16 bits.
struct QuantizedRows {
  int64_t rows = 0, cols = 0, groups = 0;
  std::vector<uint8_t> q, zeros;
  std::vector<uint16_t> scales;
  /// Appends `more`'s rows (same cols and groups).
  void append(const QuantizedRows &more);
};

/// Writes `rows` into a 4-bit slot's bytes at `out`, laid out as
/// contract::WeightSlot says (the integers two a byte, the scales, the
/// zero points).
void storeInt4Slot(const contract::WeightSlot &slot, const QuantizedRows &rows,
                   uint8_t *out);

/// Quantizes `values` (the slot's rows x cols floats) into the slot's bytes
/// at `out`, laid out as contract::WeightSlot says. int8: each group's
/// scale is max|w| / 127 rounded to f16, each value round(w / scale)
/// clamped to [-127, 127]. int4: round to nearest between the group's min
/// and max (scale (max - min) / 15, an integer zero point). Rows in
/// parallel. Refuses a NaN or infinity, naming the tensor.
void quantizeSlot(const contract::WeightSlot &slot, const float *values,
                  uint8_t *out);

/// The floats a quantized slot at `in` stands for (q * scale, or (q -
/// zero) * scale), into `values` (rows x cols).
void dequantizeSlot(const contract::WeightSlot &slot, const uint8_t *in,
                    float *values);

} // namespace decc::rt

#endif // DECC_RUNTIME_QUANTIZE_H

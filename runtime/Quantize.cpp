//===- Quantize.cpp - weight-only integer quantization --------------------===//

#include "runtime/Quantize.h"

#include "runtime/Error.h"
#include "runtime/Safetensors.h"
#include "runtime/WeightLoader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

namespace decc::rt {

namespace {

/// Asymmetric 4-bit round to nearest over the group's range widened to
/// hold 0 (GPTQ's rule: AutoAWQ's pseudo-quantization takes min and max as
/// they are, and a group of one sign then clips at 15 x scale): scale =
/// (max - min) / 15 (at least 1e-5), zero = clamp(-round(min / scale), 0,
/// 15), q = clamp(round(w / scale) + zero, 0, 15); the f16 scale as stored
/// is the one the integers are made with.
QuantizedRows quantizeRowsInt4(const contract::WeightSlot &slot,
                               const float *values) {
  QuantizedRows r;
  r.rows = slot.shape[0];
  r.cols = slot.shape[1];
  r.groups = slot.groups();
  r.q.resize(size_t(r.rows * r.cols));
  r.zeros.resize(size_t(r.rows * r.groups));
  r.scales.resize(size_t(r.rows * r.groups));
  int64_t size = slot.groupSize;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < r.rows; ++row) {
    const float *w = values + row * r.cols;
    for (int64_t g = 0; g < r.groups; ++g) {
      int64_t begin = g * size, end = std::min(r.cols, begin + size);
      float lo = 0, hi = 0;
      for (int64_t c = begin; c < end; ++c) {
        lo = std::min(lo, w[c]);
        hi = std::max(hi, w[c]);
      }
      uint16_t bits = toF16(std::max(hi - lo, 1e-5f) / 15.0f);
      float scale = f16ToF32(bits);
      float zero = std::clamp(-std::nearbyint(lo / scale), 0.0f, 15.0f);
      r.scales[size_t(row * r.groups + g)] = bits;
      r.zeros[size_t(row * r.groups + g)] = uint8_t(zero);
      for (int64_t c = begin; c < end; ++c)
        r.q[size_t(row * r.cols + c)] = uint8_t(
            std::clamp(std::nearbyint(w[c] / scale) + zero, 0.0f, 15.0f));
    }
  }
  return r;
}

} // namespace

void QuantizedRows::append(const QuantizedRows &more) {
  rows += more.rows;
  cols = more.cols;
  groups = more.groups;
  q.insert(q.end(), more.q.begin(), more.q.end());
  zeros.insert(zeros.end(), more.zeros.begin(), more.zeros.end());
  scales.insert(scales.end(), more.scales.begin(), more.scales.end());
}

void storeInt4Slot(const contract::WeightSlot &slot, const QuantizedRows &r,
                   uint8_t *out) {
  int64_t rowBytes = slot.rowBytes();
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < r.rows; ++row) {
    uint8_t *bytes = out + row * rowBytes;
    std::memset(bytes, 0, size_t(rowBytes));
    for (int64_t c = 0; c < r.cols; ++c)
      bytes[slot.int4Byte(c)] |=
          uint8_t(r.q[size_t(row * r.cols + c)] << slot.int4Shift(c));
  }
  if (!slot.f32GroupTerms) {
    std::memcpy(out + slot.scalesOffset(), r.scales.data(),
                2 * r.scales.size());
    std::memcpy(out + slot.zerosOffset(), r.zeros.data(), r.zeros.size());
    return;
  }
  auto *scales = reinterpret_cast<float *>(out + slot.scalesOffset());
  auto *offsets = reinterpret_cast<float *>(out + slot.zerosOffset());
  for (size_t g = 0; g < r.scales.size(); ++g) {
    float scale = f16ToF32(r.scales[g]);
    scales[g] = scale;
    offsets[g] = -float(r.zeros[g]) * scale;
  }
}

void quantizeSlot(const contract::WeightSlot &slot, const float *values,
                  uint8_t *out) {
  int64_t rows = slot.shape[0], cols = slot.shape[1];
  int64_t groups = slot.groups(), size = slot.groupSize;
  auto *q = reinterpret_cast<int8_t *>(out);
  uint8_t *scales = out + slot.scalesOffset();
  // A NaN or infinity has no integer (and would make a group's scale
  // infinite): refuse the checkpoint, as no kernel could compute with it.
  // (Checked on every core: a 7B model has 6.5 billion values.)
  bool finite = true;
#pragma omp parallel for schedule(static) reduction(&& : finite)
  for (int64_t i = 0; i < rows * cols; ++i)
    finite = finite && std::isfinite(values[i]);
  for (int64_t i = 0; !finite && i < rows * cols; ++i)
    if (!std::isfinite(values[i])) {
      // The part (checkpoint tensor) holding row i / cols.
      std::string name = "?";
      int64_t row = i / cols, first = 0;
      for (const contract::WeightPart &part : slot.parts) {
        int64_t partRows = part.shape.empty() ? 1 : part.shape[0];
        if (row < first + partRows) {
          name = part.tensor;
          break;
        }
        first += partRows;
      }
      throw Error("weight '" + name + "' has a non-finite value (" +
                  std::to_string(values[i]) + "); an int" +
                  std::to_string(slot.quantBits) + " build cannot quantize it");
    }
  if (slot.quantBits == 4) {
    storeInt4Slot(slot, quantizeRowsInt4(slot, values), out);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      int64_t begin = g * size, end = std::min(cols, begin + size);
      const float *w = values + r * cols;
      float most = 0;
      for (int64_t c = begin; c < end; ++c)
        most = std::max(most, std::fabs(w[c]));
      // The scale as stored (f16) is the one the integers are made with,
      // so q * scale is exactly what the kernels compute.
      uint16_t bits = toF16(most / 127.0f);
      float scale = f16ToF32(bits);
      if (slot.f32GroupTerms)
        std::memcpy(scales + 4 * (r * groups + g), &scale, 4);
      else
        std::memcpy(scales + 2 * (r * groups + g), &bits, 2);
      for (int64_t c = begin; c < end; ++c) {
        float v = scale > 0 ? std::nearbyint(w[c] / scale) : 0.0f;
        q[r * cols + c] = int8_t(std::clamp(v, -127.0f, 127.0f));
      }
    }
  }
}

void dequantizeSlot(const contract::WeightSlot &slot, const uint8_t *in,
                    float *values) {
  int64_t rows = slot.shape[0], cols = slot.shape[1];
  int64_t groups = slot.groups();
  int64_t rowBytes = slot.rowBytes();
  const uint8_t *scales = in + slot.scalesOffset();
  const uint8_t *zeros = in + slot.zerosOffset();
  // A group's scale and, 4 bits, -zero * scale, whichever way the slot
  // stores them: q * scale + offset is then exactly (q - zero) * scale.
  auto terms = [&](int64_t g) {
    float scale, offset = 0;
    if (slot.f32GroupTerms) {
      std::memcpy(&scale, scales + 4 * g, 4);
      if (slot.quantBits == 4)
        std::memcpy(&offset, zeros + 4 * g, 4);
      return std::pair(scale, offset);
    }
    uint16_t bits;
    std::memcpy(&bits, scales + 2 * g, 2);
    scale = f16ToF32(bits);
    if (slot.quantBits == 4)
      offset = -float(zeros[g]) * scale;
    return std::pair(scale, offset);
  };
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      auto [scale, offset] = terms(r * groups + c / slot.groupSize);
      float q = slot.quantBits == 4
                    ? float((in[r * rowBytes + slot.int4Byte(c)] >>
                             slot.int4Shift(c)) &
                            15)
                    : float(reinterpret_cast<const int8_t *>(in)[r * cols + c]);
      values[r * cols + c] = q * scale + offset;
    }
}

} // namespace decc::rt

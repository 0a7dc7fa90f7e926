//===- Quantize.cpp - weight-only integer quantization --------------------===//

#include "runtime/Quantize.h"

#include "runtime/Error.h"
#include "runtime/Safetensors.h"
#include "runtime/WeightLoader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace decc::rt {

void quantizeSlot(const contract::WeightSlot &slot, const float *values,
                  uint8_t *out) {
  int64_t rows = slot.shape[0], cols = slot.shape[1];
  int64_t groups = slot.groups(), size = slot.groupSize;
  auto *q = reinterpret_cast<int8_t *>(out);
  uint8_t *scales = out + slot.scalesOffset();
  // A NaN or infinity has no integer (and would make a group's scale
  // infinite): refuse the checkpoint, as no kernel could compute with it.
  for (int64_t i = 0; i < rows * cols; ++i)
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
                  std::to_string(values[i]) +
                  "); an int8 build cannot quantize it");
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
  const auto *q = reinterpret_cast<const int8_t *>(in);
  const uint8_t *scales = in + slot.scalesOffset();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      uint16_t bits;
      std::memcpy(&bits, scales + 2 * (r * groups + c / slot.groupSize), 2);
      values[r * cols + c] = float(q[r * cols + c]) * f16ToF32(bits);
    }
}

} // namespace decc::rt

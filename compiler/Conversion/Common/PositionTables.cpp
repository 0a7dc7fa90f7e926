//===- PositionTables.cpp - compile-time RoPE frequencies and ALiBi slopes ===//

#include "compiler/Conversion/Common/PositionTables.h"

#include <algorithm>
#include <cmath>

using namespace mlir::decoder;

namespace decc {

std::vector<float> baseInverseFrequencies(double theta, int64_t rotaryDim) {
  std::vector<float> inv;
  for (int64_t i = 0; i < rotaryDim / 2; ++i)
    inv.push_back(
        float(1.0 / std::pow(theta, double(2 * i) / double(rotaryDim))));
  return inv;
}

namespace {

std::vector<float> yarn(RoPEAttr rope, const std::vector<float> &base) {
  double d = double(rope.getRotaryDim());
  double theta = rope.getTheta();
  double original = double(rope.getOriginalMaxPositions());
  auto correctionDim = [&](double rotations) {
    return d * std::log(original / (rotations * 2 * M_PI)) /
           (2 * std::log(theta));
  };
  double low = std::max(std::floor(correctionDim(rope.getBetaFast())), 0.0);
  double high = std::min(std::ceil(correctionDim(rope.getBetaSlow())), d - 1);
  if (low == high)
    high += 0.001; // transformers' guard against a zero-width ramp
  std::vector<float> inv;
  for (size_t i = 0; i < base.size(); ++i) {
    double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    double extrapolation = base[i];
    double interpolation = base[i] / rope.getFactor();
    inv.push_back(float(interpolation * ramp + extrapolation * (1 - ramp)));
  }
  return inv;
}

std::vector<float> llama3(RoPEAttr rope, const std::vector<float> &base) {
  double factor = rope.getFactor();
  double original = double(rope.getOriginalMaxPositions());
  double lowFreqWavelen = original / rope.getLowFreqFactor();
  double highFreqWavelen = original / rope.getHighFreqFactor();
  std::vector<float> inv;
  for (float f : base) {
    double wavelen = 2 * M_PI / f;
    double scaled = wavelen > lowFreqWavelen ? f / factor : f;
    if (wavelen >= highFreqWavelen && wavelen <= lowFreqWavelen) {
      double smooth = (original / wavelen - rope.getLowFreqFactor()) /
                      (rope.getHighFreqFactor() - rope.getLowFreqFactor());
      scaled = (1 - smooth) * scaled / factor + smooth * scaled;
    }
    inv.push_back(float(scaled));
  }
  return inv;
}

} // namespace

std::vector<float> inverseFrequencies(RoPEAttr rope, bool longFactors) {
  std::vector<float> base =
      baseInverseFrequencies(rope.getTheta(), rope.getRotaryDim());
  switch (rope.getKind()) {
  case RoPEKind::Default:
  case RoPEKind::Dynamic:
    return base;
  case RoPEKind::Linear:
    for (float &f : base)
      f = float(double(f) / rope.getFactor());
    return base;
  case RoPEKind::LongRoPE: {
    llvm::ArrayRef<F64> factors =
        longFactors ? rope.getLongFactor() : rope.getShortFactor();
    std::vector<float> inv;
    for (size_t i = 0; i < base.size(); ++i)
      inv.push_back(float(
          1.0 / (factors[i] * std::pow(rope.getTheta(),
                                       double(2 * i) / rope.getRotaryDim()))));
    return inv;
  }
  case RoPEKind::YaRN:
    return yarn(rope, base);
  case RoPEKind::Llama3:
    return llama3(rope, base);
  }
  return base;
}

std::vector<float> alibiSlopes(int64_t numHeads, double alibiBiasMax) {
  int64_t n2 = 1;
  while (n2 < numHeads)
    n2 *= 2;
  std::vector<double> all;
  for (int64_t k = 1; k <= n2; ++k)
    all.push_back(std::pow(2.0, -double(k) * alibiBiasMax / double(n2)));
  std::vector<float> slopes;
  if (n2 != numHeads) {
    // transformers: concat(slopes[1::2], slopes[::2])[:n]
    for (size_t i = 1; i < all.size(); i += 2)
      slopes.push_back(float(all[i]));
    for (size_t i = 0; i < all.size(); i += 2)
      slopes.push_back(float(all[i]));
    slopes.resize(numHeads);
    return slopes;
  }
  for (double s : all)
    slopes.push_back(float(s));
  return slopes;
}

} // namespace decc

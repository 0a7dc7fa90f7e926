//===- Sampler.cpp - next-token choice from logits ------------------------===//
//
// Sampling follows llama2.c's run.c step for step (temperature, softmax in
// float, the xorshift* generator, top-p with its (1 - p) / (n - 1)
// pre-filter), so a seed gives the same story llama2.c prints for it; top-k,
// which run.c lacks, only zeroes what lies outside the k most likely tokens
// before that.
//
//===----------------------------------------------------------------------===//

#include "runtime/Sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace decc::rt {

int64_t argmax(const float *logits, int64_t vocab) {
  // The first of the largest, as std::max_element finds it, in two passes
  // of 16 lanes that the compiler makes vector code: the largest, then
  // where it first is. A served step samples a row a sequence; on a
  // 92553-token vocabulary std::max_element took 126 us a row, this 16-18
  // (one core of an Intel Xeon, x86-64-v3 build).
  constexpr int64_t kLanes = 16;
  int64_t whole = vocab / kLanes * kLanes;
  if (whole == 0)
    return std::max_element(logits, logits + vocab) - logits;
  float lane[kLanes];
  std::copy_n(logits, kLanes, lane);
  for (int64_t i = kLanes; i < whole; i += kLanes)
    for (int64_t j = 0; j < kLanes; ++j)
      lane[j] = logits[i + j] > lane[j] ? logits[i + j] : lane[j];
  float best = lane[0];
  for (int64_t j = 1; j < kLanes; ++j)
    best = lane[j] > best ? lane[j] : best;
  for (int64_t i = whole; i < vocab; ++i)
    best = logits[i] > best ? logits[i] : best;
  for (int64_t i = 0; i < whole; i += kLanes) {
    bool here = false;
    for (int64_t j = 0; j < kLanes; ++j)
      here |= logits[i + j] == best;
    if (here)
      return std::find(logits + i, logits + i + kLanes, best) - logits;
  }
  for (int64_t i = whole; i < vocab; ++i)
    if (logits[i] == best)
      return i;
  // NaNs in the first lanes: std::max_element's answer.
  return std::max_element(logits, logits + vocab) - logits;
}

void argmaxRows(const float *logits, int64_t rows, int64_t vocab,
                int64_t *tokens) {
  for (int64_t r = 0; r < rows; ++r)
    tokens[r] = argmax(logits + r * vocab, vocab);
}

Sampler::Sampler(const SamplingOptions &options)
    : options(options),
      state(options.seed ? options.seed : 0x9E3779B97F4A7C15ull) {}

/// run.c's random_f32: xorshift*, 24 random bits in [0, 1).
float Sampler::randomFloat() {
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  uint32_t bits = uint32_t((state * 0x2545F4914F6CDD1Dull) >> 32);
  return float(bits >> 8) / 16777216.0f;
}

int64_t Sampler::next(const float *logits, int64_t vocab) {
  if (options.temperature <= 0)
    return argmax(logits, vocab);
  std::vector<float> probs(logits, logits + vocab);
  for (float &p : probs)
    p /= options.temperature;
  float max = *std::max_element(probs.begin(), probs.end()), sum = 0;
  for (float &p : probs) {
    p = std::exp(p - max);
    sum += p;
  }
  for (float &p : probs)
    p /= sum;
  if (options.topK > 0 && options.topK < vocab) {
    std::vector<float> sorted(probs);
    std::nth_element(sorted.begin(), sorted.begin() + (options.topK - 1),
                     sorted.end(), std::greater<float>());
    float kth = sorted[options.topK - 1], kept = 0;
    for (float &p : probs)
      kept += p = p >= kth ? p : 0.0f;
    for (float &p : probs)
      p /= kept;
  }
  float coin = randomFloat();
  if (options.topP <= 0 || options.topP >= 1) {
    float cdf = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      cdf += probs[i];
      if (coin < cdf)
        return i;
    }
    return vocab - 1;
  }
  // Top-p: tokens below the cutoff cannot be in the nucleus; sort the rest.
  float cutoff = (1.0f - options.topP) / float(vocab - 1);
  std::vector<int64_t> order;
  for (int64_t i = 0; i < vocab; ++i)
    if (probs[i] >= cutoff)
      order.push_back(i);
  // The nucleus of any p holds the most likely token, also when the
  // pre-filter leaves nothing (a flat distribution under a small p).
  if (order.empty())
    order.push_back(std::max_element(probs.begin(), probs.end()) -
                    probs.begin());
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return probs[a] > probs[b]; });
  float cumulative = 0;
  size_t last = order.size() - 1;
  for (size_t i = 0; i < order.size(); ++i) {
    cumulative += probs[order[i]];
    if (cumulative > options.topP) {
      last = i;
      break;
    }
  }
  float r = coin * cumulative, cdf = 0;
  for (size_t i = 0; i <= last; ++i) {
    cdf += probs[order[i]];
    if (r < cdf)
      return order[i];
  }
  return order[last];
}

} // namespace decc::rt

//===- Sampler.cpp - next-token choice from logits ------------------------===//

#include "runtime/Sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace decc::rt {

int64_t argmax(const float *logits, int64_t vocab) {
  return std::max_element(logits, logits + vocab) - logits;
}

int64_t Sampler::next(const float *logits, int64_t vocab) {
  if (options.temperature <= 0)
    return argmax(logits, vocab);
  std::vector<int64_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  int64_t keep = options.topK > 0 ? std::min(options.topK, vocab) : vocab;
  std::vector<double> probs(keep);
  double max = logits[order[0]], sum = 0;
  for (int64_t i = 0; i < keep; ++i)
    sum += probs[i] = std::exp((logits[order[i]] - max) / options.temperature);
  double cumulative = 0;
  int64_t nucleus = keep;
  for (int64_t i = 0; i < keep; ++i) {
    cumulative += probs[i] / sum;
    if (cumulative >= options.topP) {
      nucleus = i + 1;
      break;
    }
  }
  std::discrete_distribution<int64_t> pick(probs.begin(),
                                           probs.begin() + nucleus);
  return order[pick(rng)];
}

} // namespace decc::rt

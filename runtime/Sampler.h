//===- Sampler.h - next-token choice from logits ----------------*- C++ -*-===//

#ifndef DECC_RUNTIME_SAMPLER_H
#define DECC_RUNTIME_SAMPLER_H

#include <cstdint>

namespace decc::rt {

struct SamplingOptions {
  /// 0 means greedy (argmax).
  float temperature = 0;
  /// Keep the k most likely tokens (0: all).
  int64_t topK = 0;
  /// Keep the smallest set whose probability reaches p (1: all).
  float topP = 1;
  uint64_t seed = 0;
};

class Sampler {
public:
  explicit Sampler(const SamplingOptions &options);
  /// The next token from `vocab` logits.
  int64_t next(const float *logits, int64_t vocab);
  /// Whether next() is argmax (temperature 0): no randomness drawn.
  bool greedy() const { return options.temperature <= 0; }

private:
  float randomFloat();

  SamplingOptions options;
  uint64_t state;
};

/// Index of the largest logit (the first on ties).
int64_t argmax(const float *logits, int64_t vocab);
/// The argmax of each of `rows` rows of `vocab` logits, into `tokens`.
void argmaxRows(const float *logits, int64_t rows, int64_t vocab,
                int64_t *tokens);

} // namespace decc::rt

#endif // DECC_RUNTIME_SAMPLER_H

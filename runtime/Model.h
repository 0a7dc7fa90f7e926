//===- Model.h - a compiled model with its weights and KV cache -*- C++ -*-===//

#ifndef DECC_RUNTIME_MODEL_H
#define DECC_RUNTIME_MODEL_H

#include "runtime/Manifest.h"
#include "runtime/Sampler.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace decc::rt {

/// A memref descriptor as MLIR's C interface passes it.
template <typename T, int N> struct MemRefDescriptor {
  T *allocated;
  T *aligned;
  int64_t offset;
  int64_t sizes[N];
  int64_t strides[N];
};

/// The entry point decc generates (`decc_forward` with the C interface).
using ForwardFn = void (*)(MemRefDescriptor<uint8_t, 1> *weights,
                           MemRefDescriptor<int64_t, 1> *tokens,
                           MemRefDescriptor<int64_t, 1> *positions,
                           MemRefDescriptor<float, 4> *kCache,
                           MemRefDescriptor<float, 4> *vCache,
                           MemRefDescriptor<int64_t, 1> *state,
                           MemRefDescriptor<float, 2> *logits);

/// Timings of one generation, in seconds.
struct GenerationStats {
  double prefillSeconds = 0, decodeSeconds = 0;
  int64_t prefillTokens = 0, decodeTokens = 0;
};

class Model {
public:
  Model(Manifest manifest, ForwardFn forward, int64_t maxContext);
  ~Model();

  const Manifest &manifest() const { return m; }
  uint8_t *arena() { return weights; }
  int64_t maxContext() const { return context; }

  /// Runs `tokens` at positions `start...` through the model, appending to
  /// the cache, and writes the logits of the last `rows` tokens.
  void forward(const std::vector<int64_t> &tokens, int64_t start, int64_t rows,
               float *logits);

  /// Prefill then decode: greedy or sampled, up to `maxNewTokens` tokens,
  /// stopping after any of `stopIds`. `onToken` sees each new token and the
  /// logits that chose it. Applies longrope's re-encode at the switch.
  std::vector<int64_t>
  generate(const std::vector<int64_t> &prompt, int64_t maxNewTokens,
           Sampler &sampler, const std::vector<int64_t> &stopIds,
           const std::function<void(int64_t, const float *)> &onToken,
           GenerationStats *stats = nullptr);

  /// Every row of one forward over `prompt` from position 0 (fresh cache).
  std::vector<float> prefillLogits(const std::vector<int64_t> &prompt);

  /// Checks ids against the vocabulary and the length against the cache.
  void checkPrompt(const std::vector<int64_t> &prompt,
                   int64_t maxNewTokens) const;

private:
  void reset();

  Manifest m;
  ForwardFn forwardFn;
  int64_t context;
  uint8_t *weights = nullptr;
  float *kCache = nullptr, *vCache = nullptr;
  std::vector<int64_t> state;
};

} // namespace decc::rt

#endif // DECC_RUNTIME_MODEL_H

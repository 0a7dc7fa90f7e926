//===- Model.h - a compiled model with its weights and KV cache -*- C++ -*-===//

#ifndef DECC_RUNTIME_MODEL_H
#define DECC_RUNTIME_MODEL_H

#include "runtime/Backend.h"
#include "runtime/Sampler.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace decc::rt {

/// Timings of one generation, in seconds.
struct GenerationStats {
  double prefillSeconds = 0, decodeSeconds = 0;
  int64_t prefillTokens = 0, decodeTokens = 0;
};

class Model {
public:
  /// `makeBackend` builds the backend over this model's manifest.
  Model(Manifest manifest, int64_t maxContext,
        const std::function<std::unique_ptr<Backend>(const Manifest &)>
            &makeBackend);

  const Manifest &manifest() const { return m; }
  /// Where the weights are loaded; call weightsLoaded() when done.
  uint8_t *arena() { return backend->arena(); }
  void weightsLoaded() { backend->weightsLoaded(); }
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

  /// Blocks of the paged KV cache forwardPaged's tables index (0: the
  /// backend keeps one sequence's cache; forward() only).
  int64_t cacheBlocks() const { return backend->cacheBlocks(); }
  /// One call over sequences in the paged cache (Backend::forwardPaged);
  /// `logits` may be null only where greedyOnDevice() and call.greedy is
  /// set.
  void forwardPaged(const PagedCall &call, float *logits);
  bool greedyOnDevice() const { return backend->greedyOnDevice(); }

  /// Every row of one forward over `prompt` from position 0 (fresh cache).
  std::vector<float> prefillLogits(const std::vector<int64_t> &prompt);

  /// Checks ids against the vocabulary and the length against the cache;
  /// with an image, that the prompt has one image token per image row.
  void checkPrompt(const std::vector<int64_t> &prompt,
                   int64_t maxNewTokens) const;

  /// A picture for the generations after: the vision encoder's `rows`
  /// (rows x the embedding's width) appended to those of the pictures
  /// before; a sequence's image tokens (`token`, InternVL's <IMG_CONTEXT>)
  /// take all the rows in order.
  void addImage(int64_t token, const std::vector<float> &rows);
  /// The backend's own vision encoder (Backend::encodeTiles).
  std::vector<float> encodeTiles(const std::vector<float> &pixels,
                                 int64_t tiles) {
    return backend->encodeTiles(pixels, tiles);
  }

private:
  Manifest m;
  int64_t context;
  std::unique_ptr<Backend> backend;
  int64_t imageToken = -1, imageRowCount = 0;
  std::vector<float> image;
  /// The image row the next image token of the sequence takes.
  int64_t nextImageRow = 0;
};

} // namespace decc::rt

#endif // DECC_RUNTIME_MODEL_H

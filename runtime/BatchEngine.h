//===- BatchEngine.h - sequences decoded together ---------------*- C++ -*-===//
//
// Continuous batching over a model's paged KV cache (Backend::cacheBlocks):
// a step is one forward call that takes the next token of every running
// sequence and as much of the new prompts as a token budget leaves (a
// long prompt in parts over several steps, so that it does not hold the
// others' tokens back), the weights read once for all of them; a sequence
// that ends leaves at once and its cache blocks go back to the pool. A sequence
// is started only when the pool holds the blocks of its prompt and all the
// tokens it may generate, so a running sequence never runs out of cache. What a
// sampled token means (text, stop strings, the client) is the caller's, through
// SequenceHooks. Not thread-safe: one thread owns the engine and the model.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_BATCHENGINE_H
#define DECC_RUNTIME_BATCHENGINE_H

#include "runtime/Model.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace decc::rt {

struct SequenceHooks {
  /// A sampled token and the logits it was sampled from (null where no
  /// hook of the step wants them: wantsLogits); false ends the sequence
  /// with it.
  std::function<bool(int64_t token, const float *logits)> take;
  /// Whether `take` reads the logits. A step whose sequences all sample
  /// greedily and none of whose hooks want them has the backend find the
  /// tokens (Backend::greedyOnDevice): a GPU then copies back a token a
  /// sequence, not its logits (92553 floats a row for InternVL2-2B).
  bool wantsLogits = true;
  /// The sequence has ended and left the batch; `error` is empty unless a
  /// forward call failed.
  std::function<void(const std::string &error)> ended;
  /// Asked before each step: true ends the sequence without another token.
  std::function<bool()> cancelled;
};

class BatchEngine {
public:
  /// `model` must have a paged cache (Model::cacheBlocks() > 0).
  explicit BatchEngine(Model &model);
  ~BatchEngine();

  /// Whether a sequence of `prompt` tokens generating at most `maxTokens`
  /// fits the free blocks now, and whether it fits the whole pool.
  bool fitsNow(int64_t prompt, int64_t maxTokens) const;
  bool fitsPool(int64_t prompt, int64_t maxTokens) const;
  /// Starts a sequence (fitsNow must hold, maxTokens > 0): reserves its
  /// blocks; the next step runs its prompt and hands its first token to
  /// `hooks.take`.
  void start(const std::vector<int64_t> &prompt, int64_t maxTokens,
             const SamplingOptions &sampling, SequenceHooks hooks);
  /// One step: the new prompts and a token of every running sequence.
  void step();
  int64_t running() const { return int64_t(sequences.size()); }

  /// The most tokens a step's call takes: every running sequence's next
  /// token, then new prompts, a prompt in parts if need be.
  int64_t maxStepTokens = 256;

  /// The most sequences one call has taken, the calls that decoded and
  /// the tokens they decoded, the prompt tokens run.
  int64_t largestBatch = 0, steps = 0, stepTokens = 0, promptTokens = 0;
  /// Seconds in the model's forward calls, and in sampling the tokens and
  /// handing them over (the host's share of a step).
  double forwardSeconds = 0, sampleSeconds = 0;

private:
  struct Sequence;
  int64_t blocksFor(int64_t prompt, int64_t maxTokens) const;
  /// Hands `s` its next token (sampled from `logits` where `token` is
  /// negative); ends `s` when the caller says so.
  void take(Sequence &s, int64_t token, const float *logits);
  void end(Sequence &s, const std::string &error);
  /// Tokens [from, to) of a sequence in a step's call.
  struct Part {
    Sequence *s;
    int64_t from, to;
    /// A running sequence's next token (not a prompt's).
    bool decode;
  };
  /// One forward call of `parts`; those that reach their sequence's last
  /// token get the next one.
  void run(const std::vector<Part> &parts, int64_t *state);

  Model &model;
  std::vector<std::unique_ptr<Sequence>> sequences;
  std::vector<int32_t> freeBlocks;
  std::vector<float> logits;
};

} // namespace decc::rt

#endif // DECC_RUNTIME_BATCHENGINE_H

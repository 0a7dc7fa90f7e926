//===- BatchEngine.cpp - sequences decoded together -----------------------===//

#include "runtime/BatchEngine.h"

#include "runtime/Error.h"

#include <algorithm>

namespace decc::rt {

struct BatchEngine::Sequence {
  Sequence(const SamplingOptions &sampling, SequenceHooks hooks)
      : sampler(sampling), hooks(std::move(hooks)) {}
  /// The prompt and the tokens sampled after it; all but the last are in
  /// the cache once the prompt is.
  std::vector<int64_t> tokens;
  /// The paged cache's blocks: the prompt and every token it may generate.
  std::vector<int32_t> blocks;
  /// RoPE state words (contract::kStateWords): a sequence decoded alone.
  std::vector<int64_t> state = std::vector<int64_t>(contract::kStateWords, 0);
  Sampler sampler;
  SequenceHooks hooks;
  bool ended = false;
};

BatchEngine::BatchEngine(Model &model) : model(model) {
  if (!model.cacheBlocks())
    throw Error("batched decoding needs a paged KV cache (a CPU build)");
  // Handed out from the back: the first blocks first.
  freeBlocks.resize(model.cacheBlocks());
  for (size_t i = 0; i < freeBlocks.size(); ++i)
    freeBlocks[i] = int32_t(freeBlocks.size() - 1 - i);
}

BatchEngine::~BatchEngine() = default;

int64_t BatchEngine::blocksFor(int64_t prompt, int64_t maxTokens) const {
  // The last token sampled is never fed back.
  int64_t positions = prompt + std::max<int64_t>(maxTokens, 1) - 1;
  return (positions + contract::kCacheBlock - 1) / contract::kCacheBlock;
}

bool BatchEngine::fitsNow(int64_t prompt, int64_t maxTokens) const {
  return blocksFor(prompt, maxTokens) <= int64_t(freeBlocks.size());
}

bool BatchEngine::fitsPool(int64_t prompt, int64_t maxTokens) const {
  return blocksFor(prompt, maxTokens) <= model.cacheBlocks();
}

void BatchEngine::start(const std::vector<int64_t> &prompt, int64_t maxTokens,
                        const SamplingOptions &sampling, SequenceHooks hooks) {
  if (prompt.empty() || maxTokens <= 0 ||
      !fitsNow(int64_t(prompt.size()), maxTokens))
    throw Error("BatchEngine::start: an empty prompt, no token to generate "
                "or too few free cache blocks");
  auto s = std::make_unique<Sequence>(sampling, std::move(hooks));
  s->tokens = prompt;
  int64_t needed = blocksFor(int64_t(prompt.size()), maxTokens);
  s->blocks.assign(freeBlocks.rbegin(), freeBlocks.rbegin() + needed);
  freeBlocks.resize(freeBlocks.size() - needed);
  Sequence &ref = *s;
  sequences.push_back(std::move(s));
  prefill(ref, 0);
  sequences.erase(std::remove_if(sequences.begin(), sequences.end(),
                                 [](const auto &q) { return q->ended; }),
                  sequences.end());
}

void BatchEngine::end(Sequence &s, const std::string &error) {
  s.ended = true;
  freeBlocks.insert(freeBlocks.end(), s.blocks.rbegin(), s.blocks.rend());
  s.blocks.clear();
  if (s.hooks.ended)
    s.hooks.ended(error);
}

void BatchEngine::take(Sequence &s, const float *logits) {
  int64_t token = s.sampler.next(logits, model.manifest().vocab);
  if (s.hooks.take(token, logits))
    s.tokens.push_back(token);
  else
    end(s, "");
}

void BatchEngine::prefill(Sequence &s, int64_t start) {
  std::vector<int64_t> tokens(s.tokens.begin() + start, s.tokens.end());
  std::vector<int64_t> positions(tokens.size());
  for (size_t i = 0; i < positions.size(); ++i)
    positions[i] = start + int64_t(i);
  int64_t vocab = model.manifest().vocab;
  logits.resize(vocab);
  try {
    model.forwardPaged({tokens, positions, s.blocks, int64_t(s.blocks.size()),
                        1, s.state.data()},
                       logits.data());
  } catch (const Error &e) {
    end(s, e.what());
    return;
  }
  take(s, logits.data());
}

void BatchEngine::decode(const std::vector<Sequence *> &group, int64_t *state) {
  if (group.empty())
    return;
  ++steps;
  stepTokens += int64_t(group.size());
  largestBatch = std::max(largestBatch, int64_t(group.size()));
  size_t width = 0;
  for (Sequence *s : group)
    width = std::max(width, s->blocks.size());
  std::vector<int64_t> tokens, positions;
  std::vector<int32_t> table(group.size() * width, 0);
  for (size_t i = 0; i < group.size(); ++i) {
    tokens.push_back(group[i]->tokens.back());
    positions.push_back(int64_t(group[i]->tokens.size()) - 1);
    std::copy(group[i]->blocks.begin(), group[i]->blocks.end(),
              table.begin() + i * width);
  }
  int64_t vocab = model.manifest().vocab;
  logits.resize(group.size() * vocab);
  try {
    model.forwardPaged({tokens, positions, table, int64_t(width),
                        int64_t(group.size()), state},
                       logits.data());
  } catch (const Error &e) {
    for (Sequence *s : group)
      end(*s, e.what());
    return;
  }
  for (size_t i = 0; i < group.size(); ++i)
    take(*group[i], logits.data() + i * vocab);
}

void BatchEngine::step() {
  const Manifest &m = model.manifest();
  // Sequences past the length from which the rotary tables depend on the
  // call (Manifest::batchedLength) go one at a time, with their own RoPE
  // state; Phi-3's re-encode is a prompt of its own.
  std::vector<Sequence *> batch, alone;
  for (auto &s : sequences) {
    if (s->hooks.cancelled && s->hooks.cancelled()) {
      end(*s, "");
      continue;
    }
    int64_t length = int64_t(s->tokens.size());
    if (m.reencodeAtLength && length == m.reencodeAtLength)
      prefill(*s, 0);
    else
      (m.batchedLength && length >= m.batchedLength ? alone : batch)
          .push_back(s.get());
  }
  // Batched sequences are all shorter than batchedLength: the state they
  // would share is never written.
  std::vector<int64_t> shared(contract::kStateWords, 0);
  decode(batch, shared.data());
  for (Sequence *s : alone)
    decode({s}, s->state.data());
  sequences.erase(std::remove_if(sequences.begin(), sequences.end(),
                                 [](const auto &s) { return s->ended; }),
                  sequences.end());
}

} // namespace decc::rt

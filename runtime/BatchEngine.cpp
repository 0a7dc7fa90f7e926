//===- BatchEngine.cpp - sequences decoded together -----------------------===//

#include "runtime/BatchEngine.h"

#include "runtime/Error.h"

#include <algorithm>

namespace decc::rt {

struct BatchEngine::Sequence {
  Sequence(const SamplingOptions &sampling, SequenceHooks hooks)
      : sampler(sampling), hooks(std::move(hooks)) {}
  /// The prompt and the tokens sampled after it; all but the last are in
  /// the cache once the prompt has run.
  std::vector<int64_t> tokens;
  bool prompted = false, ended = false;
  /// The paged cache's blocks: the prompt and every token it may generate.
  std::vector<int32_t> blocks;
  /// RoPE state words (contract::kStateWords): a sequence run alone.
  std::vector<int64_t> state = std::vector<int64_t>(contract::kStateWords, 0);
  Sampler sampler;
  SequenceHooks hooks;
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
  sequences.push_back(std::move(s));
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

void BatchEngine::run(const std::vector<Sequence *> &prompts,
                      const std::vector<Sequence *> &decodes, int64_t *state) {
  std::vector<Sequence *> order(prompts);
  order.insert(order.end(), decodes.begin(), decodes.end());
  if (order.empty())
    return;
  if (!decodes.empty()) {
    ++steps;
    stepTokens += int64_t(decodes.size());
  }
  largestBatch = std::max(largestBatch, int64_t(order.size()));
  size_t width = 0;
  for (Sequence *s : order)
    width = std::max(width, s->blocks.size());
  // The logits are those of the call's last rows: each prompt's last
  // token and each decoded token go last, in `order`. Tokens of a call
  // need no order among them: every key and value is appended before any
  // token attends.
  std::vector<int64_t> tokens, positions;
  std::vector<int32_t> table;
  auto add = [&](const Sequence &s, int64_t at) {
    tokens.push_back(s.tokens[at]);
    positions.push_back(at);
    table.insert(table.end(), s.blocks.begin(), s.blocks.end());
    table.resize(tokens.size() * width, 0);
  };
  for (Sequence *s : prompts)
    for (size_t at = 0; at + 1 < s->tokens.size(); ++at)
      add(*s, int64_t(at));
  for (Sequence *s : order)
    add(*s, int64_t(s->tokens.size()) - 1);
  int64_t vocab = model.manifest().vocab;
  logits.resize(order.size() * vocab);
  try {
    model.forwardPaged({tokens, positions, table, int64_t(width),
                        int64_t(order.size()), state},
                       logits.data());
  } catch (const Error &e) {
    for (Sequence *s : order)
      end(*s, e.what());
    return;
  }
  for (size_t i = 0; i < order.size(); ++i) {
    order[i]->prompted = true;
    take(*order[i], logits.data() + i * vocab);
  }
}

void BatchEngine::step() {
  const Manifest &m = model.manifest();
  // One call takes every new prompt and every running sequence's next
  // token. A sequence from the length on which the rotary tables depend on
  // the call (Manifest::batchedLength) runs alone with its own RoPE state;
  // Phi-3's re-encode (at that length) runs the whole sequence again.
  std::vector<Sequence *> prompts, decodes, alone;
  for (auto &s : sequences) {
    if (s->hooks.cancelled && s->hooks.cancelled()) {
      end(*s, "");
      continue;
    }
    int64_t length = int64_t(s->tokens.size());
    if (m.reencodeAtLength && length == m.reencodeAtLength)
      s->prompted = false;
    if (m.batchedLength && length >= m.batchedLength)
      alone.push_back(s.get());
    else
      (s->prompted ? decodes : prompts).push_back(s.get());
  }
  // The batched sequences are all shorter than batchedLength: the state
  // they would share is never written.
  std::vector<int64_t> shared(contract::kStateWords, 0);
  run(prompts, decodes, shared.data());
  for (Sequence *s : alone)
    run(s->prompted ? std::vector<Sequence *>{} : std::vector<Sequence *>{s},
        s->prompted ? std::vector<Sequence *>{s} : std::vector<Sequence *>{},
        s->state.data());
  sequences.erase(std::remove_if(sequences.begin(), sequences.end(),
                                 [](const auto &s) { return s->ended; }),
                  sequences.end());
}

} // namespace decc::rt

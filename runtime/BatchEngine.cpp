//===- BatchEngine.cpp - sequences decoded together -----------------------===//

#include "runtime/BatchEngine.h"

#include "runtime/Error.h"

#include <algorithm>
#include <chrono>

namespace decc::rt {

struct BatchEngine::Sequence {
  Sequence(const SamplingOptions &sampling, SequenceHooks hooks)
      : sampler(sampling), hooks(std::move(hooks)) {}
  /// The prompt and the tokens sampled after it.
  std::vector<int64_t> tokens;
  /// Positions of `tokens` in the cache.
  int64_t cached = 0;
  bool ended = false;
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
  return contract::cacheBlocksFor(prompt + std::max<int64_t>(maxTokens, 1) - 1);
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

void BatchEngine::take(Sequence &s, int64_t token, const float *logits) {
  if (token < 0)
    token = s.sampler.next(logits, model.manifest().vocab);
  if (s.hooks.take(token, logits))
    s.tokens.push_back(token);
  else
    end(s, "");
}

void BatchEngine::run(const std::vector<Part> &parts, int64_t *state) {
  if (parts.empty())
    return;
  // A part that reaches its sequence's last token gets a row of logits
  // and its next token; the call's logits are its last rows, so those
  // tokens go last, in order. The tokens of a call need no other order:
  // every key and value is appended before any token attends.
  std::vector<const Part *> rows;
  size_t width = 0;
  int64_t decoded = 0;
  for (const Part &p : parts) {
    width = std::max(width, p.s->blocks.size());
    if (p.to == int64_t(p.s->tokens.size()))
      rows.push_back(&p);
    decoded += p.decode;
  }
  if (decoded) {
    ++steps;
    stepTokens += decoded;
  }
  for (const Part &p : parts)
    if (!p.decode)
      promptTokens += p.to - p.from;
  largestBatch = std::max(largestBatch, int64_t(parts.size()));
  std::vector<int64_t> tokens, positions;
  std::vector<int32_t> table;
  auto add = [&](const Sequence &s, int64_t at) {
    tokens.push_back(s.tokens[at]);
    positions.push_back(at);
    table.insert(table.end(), s.blocks.begin(), s.blocks.end());
    table.resize(tokens.size() * width, 0);
  };
  for (const Part &p : parts) {
    bool row = p.to == int64_t(p.s->tokens.size());
    for (int64_t at = p.from; at < p.to - row; ++at)
      add(*p.s, at);
  }
  for (const Part *p : rows)
    add(*p->s, p->to - 1);
  int64_t vocab = model.manifest().vocab;
  // Greedy rows only, no hook reading logits: the tokens alone, from the
  // backend.
  bool greedy =
      !rows.empty() && std::all_of(rows.begin(), rows.end(), [](const Part *p) {
        return p->s->sampler.greedy() && !p->s->hooks.wantsLogits;
      });
  std::vector<int64_t> next(greedy ? rows.size() : 0, -1);
  bool withLogits = !greedy || !model.greedyOnDevice();
  logits.resize(withLogits ? rows.size() * vocab : 0);
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point from) {
    return std::chrono::duration<double>(Clock::now() - from).count();
  };
  Clock::time_point start = Clock::now();
  try {
    model.forwardPaged({tokens, positions, table, int64_t(width),
                        int64_t(rows.size()), state,
                        greedy ? next.data() : nullptr},
                       withLogits ? logits.data() : nullptr);
  } catch (const Error &e) {
    for (const Part &p : parts)
      if (!p.s->ended)
        end(*p.s, e.what());
    return;
  }
  forwardSeconds += seconds(start);
  start = Clock::now();
  for (const Part &p : parts)
    p.s->cached = p.to;
  for (size_t i = 0; i < rows.size(); ++i)
    take(*rows[i]->s, greedy ? next[i] : -1,
         greedy ? nullptr : logits.data() + i * vocab);
  sampleSeconds += seconds(start);
}

void BatchEngine::step() {
  const Manifest &m = model.manifest();
  // One call takes the next token of every running sequence and as much
  // of the new prompts as the step's token budget leaves (a prompt may
  // take several steps). A sequence from the length on which the rotary
  // tables depend on the call (Manifest::batchedLength) runs alone with its
  // own RoPE state, its prompt whole (a prompt in parts would rotate its
  // first part with other tables); Phi-3's re-encode (at that length) runs
  // the whole sequence again.
  std::vector<Part> batch, prompts;
  std::vector<Sequence *> alone;
  int64_t budget = maxStepTokens;
  for (auto &s : sequences) {
    if (s->hooks.cancelled && s->hooks.cancelled()) {
      end(*s, "");
      continue;
    }
    int64_t length = int64_t(s->tokens.size());
    if (m.reencodeAtLength && length == m.reencodeAtLength)
      s->cached = 0;
    if (m.batchedLength && length >= m.batchedLength) {
      alone.push_back(s.get());
    } else if (s->cached == length - 1) {
      batch.push_back({s.get(), length - 1, length, true});
      --budget;
    } else {
      prompts.push_back({s.get(), s->cached, length, false});
    }
  }
  // The first prompt always gets a token, so prompts make progress.
  for (Part &p : prompts) {
    int64_t take = std::min(p.to - p.from, std::max<int64_t>(budget, 0));
    if (take == 0 && &p != &prompts.front())
      break;
    p.to = p.from + std::max<int64_t>(take, 1);
    budget -= p.to - p.from;
    batch.push_back(p);
  }
  // The batched sequences are all shorter than batchedLength: the state
  // they would share is never written.
  std::vector<int64_t> shared(contract::kStateWords, 0);
  run(batch, shared.data());
  for (Sequence *s : alone)
    if (!s->ended)
      run({{s, s->cached, int64_t(s->tokens.size()),
            s->cached == int64_t(s->tokens.size()) - 1}},
          s->state.data());
  sequences.erase(std::remove_if(sequences.begin(), sequences.end(),
                                 [](const auto &s) { return s->ended; }),
                  sequences.end());
}

} // namespace decc::rt

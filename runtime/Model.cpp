//===- Model.cpp - a compiled model with its weights and KV cache ---------===//

#include "runtime/Model.h"

#include "runtime/Error.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <numeric>

namespace decc::rt {

namespace {

constexpr size_t kAlignment = 64;

template <typename T> T *alignedAlloc(int64_t bytes) {
  size_t size = (size_t(bytes) + kAlignment - 1) / kAlignment * kAlignment;
  void *p = std::aligned_alloc(kAlignment, size ? size : kAlignment);
  if (!p)
    throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, size);
  return static_cast<T *>(p);
}

template <typename T> MemRefDescriptor<T, 1> vector1D(T *data, int64_t n) {
  return {data, data, 0, {n}, {1}};
}

double now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

} // namespace

Model::Model(Manifest manifest, ForwardFn forward, int64_t maxContext)
    : m(std::move(manifest)), forwardFn(forward), context(maxContext),
      state(4, 0) {
  if (context <= 0)
    throw Error("--max-context must be positive, got " +
                std::to_string(context));
  weights = alignedAlloc<uint8_t>(m.arenaBytes);
  kCache = alignedAlloc<float>(m.cacheBytes(context) / 2);
  vCache = alignedAlloc<float>(m.cacheBytes(context) / 2);
}

Model::~Model() {
  std::free(weights);
  std::free(kCache);
  std::free(vCache);
}

void Model::reset() { std::fill(state.begin(), state.end(), 0); }

void Model::forward(const std::vector<int64_t> &tokens, int64_t start,
                    int64_t rows, float *logits) {
  int64_t n = int64_t(tokens.size());
  std::vector<int64_t> positions(n);
  std::iota(positions.begin(), positions.end(), start);
  auto weightsRef = vector1D(weights, m.arenaBytes);
  auto tokensRef = vector1D(const_cast<int64_t *>(tokens.data()), n);
  auto positionsRef = vector1D(positions.data(), n);
  auto stateRef = vector1D(state.data(), int64_t(state.size()));
  int64_t d = m.headDim;
  MemRefDescriptor<float, 4> k = {kCache,
                                  kCache,
                                  0,
                                  {m.layers, m.kvHeads, context, d},
                                  {m.kvHeads * context * d, context * d, d, 1}};
  MemRefDescriptor<float, 4> v = k;
  v.allocated = v.aligned = vCache;
  MemRefDescriptor<float, 2> out = {
      logits, logits, 0, {rows, m.vocab}, {m.vocab, 1}};
  forwardFn(&weightsRef, &tokensRef, &positionsRef, &k, &v, &stateRef, &out);
}

void Model::checkPrompt(const std::vector<int64_t> &prompt,
                        int64_t maxNewTokens) const {
  if (prompt.empty())
    throw Error("the prompt is empty");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= m.vocab)
      throw Error("token id " + std::to_string(prompt[i]) + " at position " +
                  std::to_string(i) + " is outside the vocabulary (" +
                  std::to_string(m.vocab) + " tokens)");
  int64_t needed =
      int64_t(prompt.size()) + std::max<int64_t>(maxNewTokens - 1, 0);
  if (int64_t(prompt.size()) > context)
    throw Error("the prompt has " + std::to_string(prompt.size()) +
                " tokens but --max-context is " + std::to_string(context));
  if (needed > context)
    throw Error("the prompt (" + std::to_string(prompt.size()) +
                " tokens) and " + std::to_string(maxNewTokens) +
                " new tokens need " + std::to_string(needed) +
                " positions but --max-context is " + std::to_string(context));
}

std::vector<float> Model::prefillLogits(const std::vector<int64_t> &prompt) {
  reset();
  std::vector<float> logits(prompt.size() * m.vocab);
  forward(prompt, 0, int64_t(prompt.size()), logits.data());
  return logits;
}

std::vector<int64_t>
Model::generate(const std::vector<int64_t> &prompt, int64_t maxNewTokens,
                Sampler &sampler, const std::vector<int64_t> &stopIds,
                const std::function<void(int64_t, const float *)> &onToken,
                GenerationStats *stats) {
  checkPrompt(prompt, maxNewTokens);
  reset();
  std::vector<int64_t> sequence = prompt, generated;
  std::vector<float> logits(m.vocab);
  double t0 = now();
  forward(prompt, 0, 1, logits.data());
  double t1 = now();
  if (stats) {
    stats->prefillSeconds += t1 - t0;
    stats->prefillTokens += int64_t(prompt.size());
  }
  int64_t cached = int64_t(prompt.size());
  for (int64_t i = 0; i < maxNewTokens; ++i) {
    int64_t token = sampler.next(logits.data(), m.vocab);
    generated.push_back(token);
    if (onToken)
      onToken(token, logits.data());
    bool stop =
        std::find(stopIds.begin(), stopIds.end(), token) != stopIds.end();
    if (i + 1 == maxNewTokens || stop)
      break;
    sequence.push_back(token);
    double s0 = now();
    int64_t length = int64_t(sequence.size());
    if (m.reencodeAtLength && length == m.reencodeAtLength &&
        cached < m.reencodeAtLength) {
      // Phi-3 longrope: the cached keys were rotated with the short
      // factors; the whole sequence is encoded again with the long ones.
      forward(sequence, 0, 1, logits.data());
    } else {
      forward({token}, length - 1, 1, logits.data());
    }
    cached = length;
    if (stats) {
      stats->decodeSeconds += now() - s0;
      stats->decodeTokens += 1;
    }
  }
  return generated;
}

} // namespace decc::rt

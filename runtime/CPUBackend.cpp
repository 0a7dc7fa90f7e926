//===- CPUBackend.cpp - the forward pass decc compiled for the CPU --------===//

#include "runtime/Backend.h"

#include "runtime/Error.h"

#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>

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

template <typename T>
contract::MemRefDescriptor<T, 1> vector1D(T *data, int64_t n) {
  return {data, data, 0, {n}, {1}};
}

class CPUBackend : public Backend {
public:
  CPUBackend(const Manifest &m, ForwardFn forward, int64_t context)
      : m(m), forwardFn(forward),
        // The K cache's tiles of keys (contract::kCPUKeyTile): the cache
        // rows past the context are never written or read.
        context((context + contract::kCPUKeyTile - 1) / contract::kCPUKeyTile *
                contract::kCPUKeyTile),
        state(contract::kStateWords, 0) {
    weights = alignedAlloc<uint8_t>(m.arenaBytes);
    kCache = alignedAlloc<uint8_t>(m.cache.bytes(this->context) / 2);
    vCache = alignedAlloc<uint8_t>(m.cache.bytes(this->context) / 2);
  }
  ~CPUBackend() override {
    std::free(weights);
    std::free(kCache);
    std::free(vCache);
  }

  uint8_t *arena() override { return weights; }
  void reset() override { std::fill(state.begin(), state.end(), 0); }

  void forward(const std::vector<int64_t> &tokens, int64_t start, int64_t rows,
               float *logits) override {
    int64_t n = int64_t(tokens.size());
    std::vector<int64_t> positions(n);
    std::iota(positions.begin(), positions.end(), start);
    auto weightsRef = vector1D(weights, m.arenaBytes);
    auto tokensRef = vector1D(const_cast<int64_t *>(tokens.data()), n);
    auto positionsRef = vector1D(positions.data(), n);
    auto stateRef = vector1D(state.data(), int64_t(state.size()));
    int64_t d = m.cache.headDim, heads = m.cache.kvHeads;
    contract::CacheRef k = {kCache,
                            kCache,
                            0,
                            {m.cache.layers, heads, context, d},
                            {heads * context * d, context * d, d, 1}};
    contract::CacheRef v = k;
    v.allocated = v.aligned = vCache;
    contract::ForwardArgRef<contract::kLogitsArg, float> out = {
        logits, logits, 0, {rows, m.vocab}, {m.vocab, 1}};
    // The image rows' width is the embedding's (the encoder's output); a
    // model without an encoder never reads them.
    int64_t hidden = m.vision ? m.vision->hidden : 1;
    float *image = const_cast<float *>(imageRows);
    contract::ForwardArgRef<contract::kImageArg, float> imageRef = {
        image, image, 0, {imageCount, hidden}, {hidden, 1}};
    forwardFn(&weightsRef, &tokensRef, &positionsRef, &k, &v, &stateRef, &out,
              &imageRef);
  }

  void setImageRows(const float *rows, int64_t count) override {
    if (!m.vision)
      Backend::setImageRows(rows, count);
    imageRows = rows;
    imageCount = count;
  }

private:
  const Manifest &m;
  ForwardFn forwardFn;
  int64_t context;
  uint8_t *weights = nullptr;
  uint8_t *kCache = nullptr, *vCache = nullptr;
  std::vector<int64_t> state;
  const float *imageRows = nullptr;
  int64_t imageCount = 0;
};

} // namespace

std::unique_ptr<Backend> createCPUBackend(const Manifest &manifest,
                                          ForwardFn forward,
                                          int64_t maxContext) {
  return std::make_unique<CPUBackend>(manifest, forward, maxContext);
}

} // namespace decc::rt

//===- CPUBackend.cpp - the forward pass decc compiled for the CPU --------===//

#include "runtime/Backend.h"

#include "runtime/Error.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>

#include <malloc.h>
#include <sys/mman.h>
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace decc::rt {

namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kHugePage = size_t(2) << 20;

/// Zeroed memory; buffers of a huge page or more (the weights, the KV
/// cache) on 2 MiB pages where the kernel gives them (transparent huge
/// pages in "madvise" mode give them only to memory that asks): a decode
/// step streams every weight, and on 4 KiB pages it crossed a page, a TLB
/// miss and the end of the hardware prefetcher's run, every 4 KiB.
template <typename T> T *alignedAlloc(int64_t bytes) {
  size_t align = size_t(bytes) >= kHugePage ? kHugePage : kAlignment;
  size_t size = (size_t(bytes) + align - 1) / align * align;
  void *p = std::aligned_alloc(align, size ? size : align);
  if (!p)
    throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
#ifdef MADV_HUGEPAGE
  if (align == kHugePage)
    madvise(p, size, MADV_HUGEPAGE); // advice: a refusal changes nothing
#endif
  std::memset(p, 0, size);
  return static_cast<T *>(p);
}

/// Linux gives a process the AMX tile registers' state only when asked
/// (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA): without it the first
/// tile instruction would kill the process.
void requestAMXTiles(const std::string &cpu) {
  std::string uses =
      "this executable's kernels use AMX tiles (--cpu=" + cpu + "), but ";
#if defined(__linux__) && defined(__x86_64__)
  constexpr int kRequestPermission = 0x1023; // ARCH_REQ_XCOMP_PERM
  constexpr int kTileData = 18;              // XFEATURE_XTILEDATA
  if (syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0)
    return;
  throw Error(uses + "this CPU or kernel does not give them (" +
              std::strerror(errno) + "); rebuild with --cpu-amx=false");
#else
  throw Error(uses + "only Linux on x86-64 gives them; rebuild with "
                     "--cpu-amx=false");
#endif
}

/// The kernels allocate a forward call's activations and scratch as it
/// runs (a prompt's: tens of MiB a projection). glibc serves blocks past
/// its mmap threshold (at most 32 MiB, however it adapts) with fresh
/// mappings, so every prompt faulted in and zeroed its pages again: 10-12%
/// of a 512-token prefill of InternLM2-1.8B on AMX tiles (docs/PERF.md).
/// From the heap they are reused from call to call.
void keepLargeBlocksInTheHeap() {
#ifdef M_MMAP_THRESHOLD
  constexpr int kThreshold = 1 << 30;
  mallopt(M_MMAP_THRESHOLD, kThreshold);
  mallopt(M_TRIM_THRESHOLD, kThreshold);
#endif
}

template <typename T>
contract::MemRefDescriptor<T, 1> vector1D(T *data, int64_t n) {
  return {data, data, 0, {n}, {1}};
}

class CPUBackend : public Backend {
public:
  CPUBackend(const Manifest &m, ForwardFn forward, int64_t context,
             int64_t cachePositions)
      : m(m), forwardFn(forward),
        // Whole blocks (so whole key tiles, contract::kCPUKeyTile): the
        // cache rows past the context are never written or read.
        blocks(contract::cacheBlocksFor(std::max(context, cachePositions))),
        pool(blocks * contract::kCacheBlock), state(contract::kStateWords, 0) {
    if (m.model && m.model->amx)
      requestAMXTiles(m.model->cpu);
    keepLargeBlocksInTheHeap();
    if (!m.cache.checkedBytes(pool))
      throw Error("a KV cache of " + std::to_string(pool) +
                  " positions would take more than 2^63 bytes");
    weights = alignedAlloc<uint8_t>(m.arenaBytes);
    kCache = alignedAlloc<uint8_t>(m.cache.bytes(pool) / 2);
    vCache = alignedAlloc<uint8_t>(m.cache.bytes(pool) / 2);
    // One sequence's blocks: the first ones, in order.
    identity.resize(contract::cacheBlocksFor(context));
    std::iota(identity.begin(), identity.end(), 0);
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
    std::vector<int64_t> positions(tokens.size());
    std::iota(positions.begin(), positions.end(), start);
    forwardPaged({tokens, positions, identity, int64_t(identity.size()), rows,
                  state.data()},
                 logits);
  }

  int64_t cacheBlocks() const override { return blocks; }

  void forwardPaged(const PagedCall &call, float *logits) override {
    const std::vector<int64_t> &tokens = call.tokens;
    int64_t n = int64_t(tokens.size()), rows = call.rows;
    int64_t tableRows = pagedTableRows(call);
    auto weightsRef = vector1D(weights, m.arenaBytes);
    auto tokensRef = vector1D(const_cast<int64_t *>(tokens.data()), n);
    auto positionsRef =
        vector1D(const_cast<int64_t *>(call.positions.data()), n);
    auto stateRef = vector1D(call.state, contract::kStateWords);
    int64_t d = m.cache.headDim, heads = m.cache.kvHeads;
    contract::CacheRef k = {kCache,
                            kCache,
                            0,
                            {m.cache.layers, heads, pool, d},
                            {heads * pool * d, pool * d, d, 1}};
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
    int32_t *table = const_cast<int32_t *>(call.table.data());
    contract::ForwardArgRef<contract::kBlockTableArg, int32_t> tableRef = {
        table, table, 0, {tableRows, call.width}, {call.width, 1}};
    forwardFn(&weightsRef, &tokensRef, &positionsRef, &k, &v, &stateRef, &out,
              &imageRef, &tableRef);
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
  /// The paged cache: `blocks` blocks, `pool` positions.
  int64_t blocks, pool;
  /// forward()'s table: its sequence's blocks are the first ones.
  std::vector<int32_t> identity;
  uint8_t *weights = nullptr;
  uint8_t *kCache = nullptr, *vCache = nullptr;
  std::vector<int64_t> state;
  const float *imageRows = nullptr;
  int64_t imageCount = 0;
};

} // namespace

std::unique_ptr<Backend> createCPUBackend(const Manifest &manifest,
                                          ForwardFn forward, int64_t maxContext,
                                          int64_t cachePositions) {
  return std::make_unique<CPUBackend>(manifest, forward, maxContext,
                                      cachePositions);
}

} // namespace decc::rt

//===- membw.cpp - memory bandwidth of this machine's cores ---------------===//
//
// The baseline of the CPU decode benchmark: how fast T threads can stream
// memory. `read` sums a buffer (what a GEMV over the weights does), each
// thread walking its share as one stream and again as 8 interleaved ones
// (a GEMV reads several rows at once: more lines in flight than a single
// stream's prefetcher keeps, which is how both engines streamed more than
// the one-stream figure on the development machine, docs/PERF.md); the
// better of the two is the baseline. `copy` copies one (read + write bytes
// counted). Best of 5 runs over 1 GiB. A third reading streams with
// software prefetches 32 KB ahead. The buffers are on 2 MiB pages where
// the kernel gives them (madvise), as decc's weights are: on 4 KiB pages
// every stream stops at each page's end, and this host read 30 GB/s there
// where decc's decode, on huge pages, streamed 38 (docs/PERF.md).
//
//   membw [--threads T] [--mib N]
//
//===----------------------------------------------------------------------===//

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>

namespace {

double now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

template <typename F> double bestOf(int threads, size_t n, F work) {
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<std::thread> pool;
    double t0 = now();
    for (int t = 0; t < threads; ++t)
      pool.emplace_back(
          [&, t] { work(n * t / threads, n * (t + 1) / threads); });
    for (auto &th : pool)
      th.join();
    best = std::min(best, now() - t0);
  }
  return best;
}

/// N zeroed words on 2 MiB pages where the kernel gives them.
uint32_t *hugeZeroed(size_t n) {
  constexpr size_t kHuge = size_t(2) << 20;
  size_t bytes = (n * sizeof(uint32_t) + kHuge - 1) / kHuge * kHuge;
  auto *p = static_cast<uint32_t *>(std::aligned_alloc(kHuge, bytes));
  if (!p) {
    std::fprintf(stderr, "membw: out of memory\n");
    std::exit(1);
  }
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  std::memset(p, 0, bytes);
  return p;
}

} // namespace

int main(int argc, char **argv) {
  int threads = int(std::thread::hardware_concurrency());
  size_t mib = 1024;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--mib")
      mib = size_t(std::atoll(argv[i + 1]));
  }
  size_t n = mib * 1048576 / sizeof(uint32_t);
  // Integer sums vectorize freely, so the loop is bound by memory alone.
  uint32_t *src = hugeZeroed(n), *dst = hugeZeroed(n);
  std::fill(src, src + n, 1u);
  std::vector<uint32_t> sums(threads, 0);
  double read = bestOf(threads, n, [&](size_t b, size_t e) {
    uint32_t s = 0;
    for (size_t i = b; i < e; ++i)
      s += src[i];
    sums[b * threads / n] = s;
  });
  // The share in 8 parts read side by side, 64 bytes of each a step.
  constexpr size_t kStreams = 8, kLine = 64 / sizeof(uint32_t);
  double streams = bestOf(threads, n, [&](size_t b, size_t e) {
    size_t part = (e - b) / kStreams / kLine * kLine;
    uint32_t s = 0;
    for (size_t i = 0; i < part; i += kLine)
      for (size_t k = 0; k < kStreams; ++k)
        for (size_t j = 0; j < kLine; ++j)
          s += src[b + k * part + i + j];
    for (size_t i = b + kStreams * part; i < e; ++i)
      s += src[i];
    sums[b * threads / n] += s;
  });
  // One stream a thread asking for the lines 32 KB ahead, as decc's decode
  // does (a core's hardware prefetchers alone kept too few lines in
  // flight: the decode streamed more than the plain loop reads).
  constexpr size_t kAhead = 32768 / sizeof(uint32_t);
  double prefetched = bestOf(threads, n, [&](size_t b, size_t e) {
    uint32_t s = 0;
    size_t i = b;
    for (; i + kLine <= e; i += kLine) {
      __builtin_prefetch(&src[std::min(i + kAhead, n - 1)], 0, 3);
      for (size_t j = 0; j < kLine; ++j)
        s += src[i + j];
    }
    for (; i < e; ++i)
      s += src[i];
    sums[b * threads / n] += s;
  });
  double copy = bestOf(threads, n, [&](size_t b, size_t e) {
    std::memcpy(&dst[b], &src[b], (e - b) * sizeof(uint32_t));
  });
  double bytes = double(n) * sizeof(uint32_t);
  std::printf("membw: %d threads, %zu MiB: read %.1f GB/s (one stream a "
              "thread %.1f, 8 streams %.1f, prefetched %.1f), copy %.1f GB/s "
              "(read+write)\n",
              threads, mib,
              bytes / std::min({read, streams, prefetched}) / 1e9,
              bytes / read / 1e9, bytes / streams / 1e9,
              bytes / prefetched / 1e9, 2 * bytes / copy / 1e9);
  return sums[0] == 7u ? 1 : 0;
}

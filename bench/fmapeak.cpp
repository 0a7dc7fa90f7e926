//===- fmapeak.cpp - the FMA peak of this machine's cores -----------------===//
//
// The baseline of the CPU prefill benchmark: how many FLOPs T threads can
// issue when nothing but the multiply-add units limits them. Each thread
// runs independent accumulator chains (more than latency x pipes, so the
// units never wait on a result) over registers only, no memory. Measured
// per instruction set the kernels use: AVX2 FMA (decc's default
// x86-64-v3 build), AVX-512 FMA, AVX512-BF16's vdpbf16ps and AMX's
// tdpbf16ps (what --cpu=native uses on hosts that have them). The core clock is
// measured beside it with a chain of dependent integer adds (one cycle each),
// so the report also says how many FLOPs a cycle a core issued: the figure a
// datasheet gives, against which the clock can be checked.
//
//   fmapeak [--threads T] [--seconds S]
//
//===----------------------------------------------------------------------===//

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <sys/syscall.h>
#include <unistd.h>

namespace {

double now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// A sink the compiler cannot see through, so no chain is dead code.
std::atomic<uint64_t> sink{0};

// 12 chains of 8-lane FMAs: Zen 4 and recent Intel cores have 2 FMA pipes
// of 4 cycles' latency, so 8 chains keep them busy; 12 leaves a margin and
// stays in the 16 ymm registers.
__attribute__((target("avx2,fma"), noinline)) uint64_t avx2Fma(uint64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i)
    acc[i] = _mm256_set1_ps(float(i) * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (uint64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i)
      acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]),
                     "+x"(acc[3]), "+x"(acc[4]), "+x"(acc[5]));
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i)
    s = _mm256_add_ps(s, acc[i]);
  return uint64_t(_mm256_cvtss_f32(s) > 1e30f);
}
constexpr double kAvx2FlopsPerIter = 12 * 8 * 2;

// 24 chains of 16-lane FMAs in the 32 zmm registers.
__attribute__((target("avx512f"), noinline)) uint64_t avx512Fma(uint64_t iters) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i)
    acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (uint64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i)
      acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]),
                     "+v"(acc[3]), "+v"(acc[4]), "+v"(acc[5]));
  }
  __m512 s = acc[0];
  for (int i = 1; i < 24; ++i)
    s = _mm512_add_ps(s, acc[i]);
  return uint64_t(_mm512_reduce_add_ps(s) > 1e30f);
}
constexpr double kAvx512FlopsPerIter = 24 * 16 * 2;

// vdpbf16ps: 16 lanes, each two bf16 products added to an f32 lane (4
// FLOPs a lane), counted as decc's bf16 prefill counts its work.
__attribute__((target("avx512f,avx512bf16"), noinline)) uint64_t
avx512Bf16Dot(uint64_t iters) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i)
    acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80); // 1.0
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3380); // ~6e-8
  for (uint64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i)
      acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]),
                     "+v"(acc[3]), "+v"(acc[4]), "+v"(acc[5]));
  }
  __m512 s = acc[0];
  for (int i = 1; i < 24; ++i)
    s = _mm512_add_ps(s, acc[i]);
  return uint64_t(_mm512_reduce_add_ps(s) > 1e30f);
}
constexpr double kBf16FlopsPerIter = 24 * 16 * 4;

// tdpbf16ps: a 16 x 16 f32 tile += 16 x 32 bf16 times 32 x 16 bf16 (2
// FLOPs a product, as above), four accumulator tiles from the same two
// pairs of operand tiles, so that nothing waits on memory or on the
// previous product into the same tile.
struct TileConfig {
  uint8_t palette = 1, startRow = 0, reserved[14] = {};
  uint16_t bytesPerRow[16] = {};
  uint8_t rows[16] = {};
};
__attribute__((target("amx-tile,amx-bf16"), noinline)) uint64_t
amxBf16(uint64_t iters) {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.bytesPerRow[t] = 64;
    config.rows[t] = 16;
  }
  _tile_loadconfig(&config);
  alignas(64) static const uint16_t operand[16 * 32] = {};
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, operand, 64);
  _tile_loadd(5, operand, 64);
  _tile_loadd(6, operand, 64);
  _tile_loadd(7, operand, 64);
  for (uint64_t it = 0; it < iters; ++it) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float out[16 * 16];
  _tile_stored(0, out, 64);
  _tile_release();
  return uint64_t(out[0] > 1e30f);
}
constexpr double kAmxFlopsPerIter = 4 * 16 * 16 * 32 * 2;

/// Linux gives a process the tiles' state only when asked.
bool amxPermitted() {
  constexpr int kRequestPermission = 0x1023; // ARCH_REQ_XCOMP_PERM
  constexpr int kTileData = 18;              // XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
}

// A chain of dependent 64-bit adds retires one a cycle on every x86 core
// since the Pentium 4, so adds a second is the clock while it runs.
__attribute__((noinline)) uint64_t addChain(uint64_t iters) {
  uint64_t x = iters;
  for (uint64_t it = 0; it < iters; ++it) {
    // 8 dependent adds an iteration keep the loop's own increment and
    // branch (on other ports) off the chain's critical path.
    __asm__ volatile("add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
                     "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0"
                     : "+r"(x)
                     : "r"(it));
  }
  return x;
}

// Runs `kernel` on T threads for about `seconds`, returns iterations a
// second summed over the threads (the best of 3 runs).
template <typename F>
double rate(int threads, double seconds, uint64_t calibrate, F kernel) {
  // Size the work from one thread's speed alone, then time T at once.
  double t0 = now();
  sink += kernel(calibrate);
  double per = (now() - t0) / double(calibrate);
  uint64_t iters = std::max<uint64_t>(1000, uint64_t(seconds / per));
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::thread> pool;
    std::atomic<int> ready{0};
    std::vector<double> spans(threads);
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < threads) {
        }
        double s = now();
        sink += kernel(iters);
        spans[t] = now() - s;
      });
    for (auto &th : pool)
      th.join();
    // The slowest thread's time: all T had to finish for the work to be
    // done, as in a parallel kernel.
    double span = *std::max_element(spans.begin(), spans.end());
    best = std::max(best, double(iters) * threads / span);
  }
  return best;
}

} // namespace

int main(int argc, char **argv) {
  int threads = int(std::thread::hardware_concurrency());
  double seconds = 0.5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--seconds")
      seconds = std::atof(argv[i + 1]);
  }
  if (threads < 1) {
    std::fprintf(stderr, "fmapeak: --threads must be at least 1\n");
    return 1;
  }
  __builtin_cpu_init();
  double hz = rate(threads, seconds, 1 << 20, addChain) * 8 / threads;
  auto report = [&](const char *what, double flopsPerIter, auto kernel) {
    double flops = rate(threads, seconds, 1 << 16, kernel) * flopsPerIter;
    std::printf("fmapeak: %s %.1f GFLOP/s (%.1f FLOPs a cycle a core)\n",
                what, flops / 1e9, flops / threads / hz);
  };
  std::printf("fmapeak: %d threads, clock %.2f GHz (dependent adds)\n",
              threads, hz / 1e9);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    report("avx2-fma", kAvx2FlopsPerIter, avx2Fma);
  if (__builtin_cpu_supports("avx512f"))
    report("avx512-fma", kAvx512FlopsPerIter, avx512Fma);
  if (__builtin_cpu_supports("avx512bf16"))
    report("avx512-bf16-dot", kBf16FlopsPerIter, avx512Bf16Dot);
  if (__builtin_cpu_supports("amx-bf16") &&
      __builtin_cpu_supports("amx-tile") && amxPermitted())
    report("amx-bf16", kAmxFlopsPerIter, amxBf16);
  return 0;
}

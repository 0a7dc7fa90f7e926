//===- gemm_orders.cpp - a prompt projection's loop orders, one core ------===//
//
// What docs/PERF.md's sliced prompt projections rest on: the AVX2 tile the
// CPU lowering emits for a prompt (6 tokens x 2 f16 weight rows, rows u and
// u + N/2, 12 f32 accumulators, dot products along the columns), on one
// thread, in two loop orders:
//
//   whole:  panels of about 256 KB of weight rows; every block of 6 tokens
//           over the panel's units, each unit over whole rows (the order
//           before the slices: a block's input rows, 6 x K f32, leave L1
//           once K is in the thousands);
//   sliced: panels of about 256 KB of weights a slice of S columns; every
//           block of tokens over one slice before the next, each slice's
//           sums kept in a buffer of the panel's.
//
//   gemm_orders K N TOKENS     (e.g. 8192 2048 510: InternLM2-1.8B's down)
//
//===----------------------------------------------------------------------===//

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

/// 6 tokens x 2 rows over columns [0, n): the sums added into out[t][r]
/// (out's rows `outStride` apart).
void tile(const uint16_t *w0, const uint16_t *w1, const float *x,
          long xStride, long n, float *out, long outStride) {
  __m256 acc[12];
  for (__m256 &a : acc)
    a = _mm256_setzero_ps();
  for (long k = 0; k < n; k += 8) {
    __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w0 + k)));
    __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w1 + k)));
    for (int t = 0; t < 6; ++t) {
      __m256 xv = _mm256_loadu_ps(x + t * xStride + k);
      acc[2 * t] = _mm256_fmadd_ps(xv, a, acc[2 * t]);
      acc[2 * t + 1] = _mm256_fmadd_ps(xv, b, acc[2 * t + 1]);
    }
  }
  for (int t = 0; t < 6; ++t)
    for (int r = 0; r < 2; ++r) {
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[2 * t + r]),
                            _mm256_extractf128_ps(acc[2 * t + r], 1));
      s = _mm_hadd_ps(s, s);
      s = _mm_hadd_ps(s, s);
      out[t * outStride + r] += _mm_cvtss_f32(s);
    }
}

double gflops(long k, long n, long tokens, double seconds) {
  return 2.0 * k * n * tokens / seconds / 1e9;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: gemm_orders K N TOKENS\n");
    return 1;
  }
  long k = std::atol(argv[1]), n = std::atol(argv[2]), tokens = std::atol(argv[3]);
  if (k <= 0 || k % 8 || n <= 0 || n % 2 || tokens <= 0) {
    std::fprintf(stderr, "gemm_orders: K a multiple of 8, N even, TOKENS > 0\n");
    return 1;
  }
  tokens -= tokens % 6;
  long half = n / 2;
  std::vector<uint16_t> w(n * k, 0x3c00); // 1.0 in f16
  std::vector<float> x(tokens * k, 0.5f);
  const long panelBytes = 256 * 1024, unitBytes = 2 * 2; // 2 rows of f16
  auto run = [&](long slice) {
    long units = std::max(1L, panelBytes / (unitBytes * slice));
    std::vector<float> sums(tokens * units * 2);
    auto start = std::chrono::steady_clock::now();
    for (long u0 = 0; u0 < half; u0 += units) {
      long u1 = std::min(half, u0 + units);
      std::fill(sums.begin(), sums.end(), 0.0f);
      for (long c = 0; c < k; c += slice) {
        long len = std::min(slice, k - c);
        for (long t = 0; t < tokens; t += 6)
          for (long u = u0; u < u1; ++u)
            tile(&w[u * k + c], &w[(u + half) * k + c], &x[t * k + c], k, len,
                 &sums[(t * units + (u - u0)) * 2], units * 2);
      }
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  for (int round = 0; round < 2; ++round) {
    std::printf("round %d, K %ld N %ld tokens %ld: whole rows %.1f GFLOP/s",
                round + 1, k, n, tokens, gflops(k, n, tokens, run(k)));
    for (long slice : {1024L, 512L})
      if (slice < k)
        std::printf(", slices of %ld %.1f", slice,
                    gflops(k, n, tokens, run(slice)));
    std::printf("\n");
  }
}

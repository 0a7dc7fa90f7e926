//===- quantized_dots.cpp - a quantized decode GEMV's inner loops ---------===//
//
// What docs/PERF.md's integer decode dot products rest on: one token times
// N quantized rows of K columns, units of 4 rows, AVX2, in two forms:
//
//   float:  the weights widened to f32 (int8: vpmovsxbd + vcvtdq2ps; int4:
//           vpmovzxbd, a mask and a shift, two vcvtdq2ps) into FMAs with x
//           in f32: every product on the FMA ports, and every conversion
//           too;
//   int16:  x rounded once a token to int16 with one scale a group, the
//           weights widened to int16 (vpmovsxbw; int4: vpmovzxbw, a mask
//           and a shift) into vpmaddwd pairs summed in int32; a group's sum
//           converted once and scaled into the row's f32 sum.
//
// int8 in groups of 32 (symmetric), int4 in groups of 128 with a zero
// point, laid out as decc's loader lays them out (int4: runs of 16
// columns in 8 bytes, byte i column i low, column i + 8 high).
//
//   quantized_dots K N THREADS   (in cache: e.g. 896 64 1; streaming from
//                                 memory: 4864 8192 2)
//
// Prints the time a GEMV and its largest error against a double-precision
// sum, relative to the largest |sum|.
//
//===----------------------------------------------------------------------===//

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <sys/mman.h>

namespace {

constexpr int kUnit = 4;
/// How far ahead a row's bytes are asked for (decc's kPrefetchBytes).
constexpr long kPrefetch = 32768;

/// Weights on 2 MiB pages where the kernel gives them, as decc's are: on
/// 4 KiB pages every stream stops at each page's end.
template <typename T> struct HugePages {
  using value_type = T;
  HugePages() = default;
  template <typename U> HugePages(const HugePages<U> &) {}
  T *allocate(size_t n) {
    size_t bytes = (n * sizeof(T) + (2 << 20) - 1) / (2 << 20) * (2 << 20);
    auto *p = static_cast<T *>(std::aligned_alloc(2 << 20, bytes));
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
  }
  void deallocate(T *p, size_t) { std::free(p); }
  bool operator==(const HugePages &) const { return true; }
  bool operator!=(const HugePages &) const { return false; }
};

struct Matrix {
  long k, n, group;
  int bits;
  std::vector<uint8_t, HugePages<uint8_t>> q; // [n][k] int8, or [n][k / 2] int4
  std::vector<float> scale;                   // [n][k / group]
  std::vector<uint8_t> zero;                  // [n][k / group] (int4)

  long rowBytes() const { return bits == 8 ? k : k / 2; }
  /// Byte b of row r + u (a unit's row u).
  const uint8_t *at(long r, int u, long b) const {
    return &q[(r + u) * rowBytes() + b];
  }
  long groups() const { return k / group; }
  int value(long r, long c) const {
    if (bits == 8)
      return int8_t(q[r * k + c]);
    long run = c / 16, i = c % 16;
    uint8_t byte = *at(r, 0, run * 8 + i % 8);
    return i < 8 ? byte & 15 : byte >> 4;
  }
  double weight(long r, long c) const {
    long g = c / group;
    int z = bits == 4 ? zero[r * groups() + g] : 0;
    return double(value(r, c) - z) * scale[r * groups() + g];
  }
};

Matrix randomMatrix(long k, long n, int bits, std::mt19937 &rng) {
  Matrix m{k, n, bits == 8 ? 32 : 128, bits, {}, {}, {}};
  m.q.resize(n * m.rowBytes());
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t &b : m.q)
    b = uint8_t(byte(rng));
  if (bits == 8)
    for (uint8_t &b : m.q)
      if (b == 0x80)
        b = 0x81; // symmetric: [-127, 127]
  std::uniform_real_distribution<float> s(0.001f, 0.01f);
  m.scale.resize(n * m.groups());
  for (float &v : m.scale)
    v = s(rng);
  m.zero.resize(n * m.groups());
  std::uniform_int_distribution<int> z(4, 11);
  for (uint8_t &v : m.zero)
    v = uint8_t(z(rng));
  return m;
}

/// Rows [r, r + 4)'s bytes from `byte` on, kPrefetch ahead, a line each.
void prefetchUnit(const Matrix &m, long r, long byte, long bytes) {
  for (int u = 0; u < kUnit; ++u)
    for (long b = byte; b < byte + bytes; b += 64)
      _mm_prefetch((const char *)m.at(r, u, b) + kPrefetch, _MM_HINT_T0);
}

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(s);
}

/// The float form: rows [r, r + 4).
void floatUnit(const Matrix &m, const float *x, long r, float *out) {
  __m256 acc[kUnit];
  for (__m256 &a : acc)
    a = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi32(15);
  for (long g = 0; g < m.groups(); ++g) {
    __m256 part[kUnit], xsum = _mm256_setzero_ps();
    for (__m256 &p : part)
      p = _mm256_setzero_ps();
    long c0 = g * m.group;
    prefetchUnit(m, r, c0 * m.bits / 8, m.group * m.bits / 8);
    if (m.bits == 8) {
      for (long c = c0; c < c0 + m.group; c += 8) {
        __m256 xv = _mm256_loadu_ps(x + c);
        for (int u = 0; u < kUnit; ++u) {
          __m256i w = _mm256_cvtepi8_epi32(
              _mm_loadl_epi64((const __m128i *)m.at(r, u, c)));
          part[u] = _mm256_fmadd_ps(xv, _mm256_cvtepi32_ps(w), part[u]);
        }
      }
    } else {
      for (long c = c0; c < c0 + m.group; c += 16) {
        __m256 xl = _mm256_loadu_ps(x + c), xh = _mm256_loadu_ps(x + c + 8);
        xsum = _mm256_add_ps(xsum, _mm256_add_ps(xl, xh));
        for (int u = 0; u < kUnit; ++u) {
          __m256i w = _mm256_cvtepu8_epi32(
              _mm_loadl_epi64((const __m128i *)m.at(r, u, c / 2)));
          __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(w, low));
          __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(w, 4));
          part[u] = _mm256_fmadd_ps(xl, lo, part[u]);
          part[u] = _mm256_fmadd_ps(xh, hi, part[u]);
        }
      }
    }
    for (int u = 0; u < kUnit; ++u) {
      long at = (r + u) * m.groups() + g;
      if (m.bits == 4)
        part[u] =
            _mm256_fmadd_ps(_mm256_set1_ps(-float(m.zero[at])), xsum, part[u]);
      acc[u] = _mm256_fmadd_ps(part[u], _mm256_set1_ps(m.scale[at]), acc[u]);
    }
  }
  for (int u = 0; u < kUnit; ++u)
    out[r + u] = hsum(acc[u]);
}

/// x in int16 for the int16 form: one scale a group, int4's columns in the
/// order its nibbles widen to (each 32 columns: 0-7, 16-23, then 8-15,
/// 24-31), and each group's sum of x.
struct Int16Input {
  std::vector<int16_t> v;
  std::vector<float> scale, sum;
};

/// Where column c of an int4 row's block of `block` columns (block / 16
/// runs) lands among the words its bytes widen to: the low nibbles first
/// (columns 0-7 of each run), then the high (8-15).
long nibbleOrder(long c, long block) {
  long base = c / block * block, i = c % block, run = i / 16, j = i % 16;
  return base + (j < 8 ? 0 : block / 2) + run * 8 + j % 8;
}

/// x in int16 for the int16 form, int4 columns in blocks of `block`.
Int16Input quantizeInput(const Matrix &m, const float *x, long block) {
  Int16Input in;
  in.v.resize(m.k);
  for (long g = 0; g < m.groups(); ++g) {
    long c0 = g * m.group;
    float most = 0, sum = 0;
    for (long c = c0; c < c0 + m.group; ++c) {
      most = std::max(most, std::fabs(x[c]));
      sum += x[c];
    }
    float s = most / 32767, inv = most > 0 ? 32767 / most : 0;
    in.scale.push_back(s);
    in.sum.push_back(sum);
    for (long c = c0; c < c0 + m.group; ++c)
      in.v[m.bits == 4 ? nibbleOrder(c, block) : c] =
          int16_t(std::lrint(x[c] * inv));
  }
  return in;
}

void int16Unit(const Matrix &m, const Int16Input &in, long r, float *out) {
  __m256 acc[kUnit];
  for (__m256 &a : acc)
    a = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi16(15);
  for (long g = 0; g < m.groups(); ++g) {
    __m256i part[kUnit];
    for (__m256i &p : part)
      p = _mm256_setzero_si256();
    long c0 = g * m.group;
    prefetchUnit(m, r, c0 * m.bits / 8, m.group * m.bits / 8);
    if (m.bits == 8) {
      for (long c = c0; c < c0 + m.group; c += 16) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)&in.v[c]);
        for (int u = 0; u < kUnit; ++u) {
          __m256i w = _mm256_cvtepi8_epi16(
              _mm_loadu_si128((const __m128i *)m.at(r, u, c)));
          part[u] = _mm256_add_epi32(part[u], _mm256_madd_epi16(w, xv));
        }
      }
    } else {
      for (long c = c0; c < c0 + m.group; c += 32) {
        __m256i xl = _mm256_loadu_si256((const __m256i *)&in.v[c]);
        __m256i xh = _mm256_loadu_si256((const __m256i *)&in.v[c + 16]);
        for (int u = 0; u < kUnit; ++u) {
          __m256i w = _mm256_cvtepu8_epi16(
              _mm_loadu_si128((const __m128i *)m.at(r, u, c / 2)));
          part[u] = _mm256_add_epi32(
              part[u], _mm256_madd_epi16(_mm256_and_si256(w, low), xl));
          part[u] = _mm256_add_epi32(
              part[u], _mm256_madd_epi16(_mm256_srli_epi16(w, 4), xh));
        }
      }
    }
    for (int u = 0; u < kUnit; ++u) {
      long at = (r + u) * m.groups() + g;
      float s = m.scale[at] * in.scale[g];
      acc[u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(part[u]), _mm256_set1_ps(s),
                               acc[u]);
      if (m.bits == 4)
        acc[u] = _mm256_add_ps(
            acc[u], _mm256_setr_ps(-float(m.zero[at]) * m.scale[at] * in.sum[g],
                                   0, 0, 0, 0, 0, 0, 0));
    }
  }
  for (int u = 0; u < kUnit; ++u)
    out[r + u] = hsum(acc[u]);
}

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

/// decc's --cpu=native float form: 16 lanes, int4 chunks of 32 columns
/// (16 bytes widened to 16 dwords), x's columns in the nibbles' order.
AVX512 void floatUnit512(const Matrix &m, const float *x, const float *xp,
                         long r, float *out) {
  __m512 acc[kUnit];
  for (__m512 &a : acc)
    a = _mm512_setzero_ps();
  const __m512i low = _mm512_set1_epi32(15);
  for (long g = 0; g < m.groups(); ++g) {
    __m512 part[kUnit], xsum = _mm512_setzero_ps();
    for (__m512 &p : part)
      p = _mm512_setzero_ps();
    long c0 = g * m.group;
    prefetchUnit(m, r, c0 * m.bits / 8, m.group * m.bits / 8);
    if (m.bits == 8) {
      for (long c = c0; c < c0 + m.group; c += 16) {
        __m512 xv = _mm512_loadu_ps(x + c);
        for (int u = 0; u < kUnit; ++u) {
          __m512i w = _mm512_cvtepi8_epi32(
              _mm_loadu_si128((const __m128i *)m.at(r, u, c)));
          part[u] = _mm512_fmadd_ps(xv, _mm512_cvtepi32_ps(w), part[u]);
        }
      }
    } else {
      for (long c = c0; c < c0 + m.group; c += 32) {
        __m512 xl = _mm512_loadu_ps(xp + c), xh = _mm512_loadu_ps(xp + c + 16);
        xsum = _mm512_add_ps(xsum, _mm512_add_ps(xl, xh));
        for (int u = 0; u < kUnit; ++u) {
          __m512i w = _mm512_cvtepu8_epi32(
              _mm_loadu_si128((const __m128i *)m.at(r, u, c / 2)));
          __m512 lo = _mm512_cvtepi32_ps(_mm512_and_si512(w, low));
          __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(w, 4));
          part[u] = _mm512_fmadd_ps(xl, lo, part[u]);
          part[u] = _mm512_fmadd_ps(xh, hi, part[u]);
        }
      }
    }
    for (int u = 0; u < kUnit; ++u) {
      long at = (r + u) * m.groups() + g;
      if (m.bits == 4)
        part[u] =
            _mm512_fmadd_ps(_mm512_set1_ps(-float(m.zero[at])), xsum, part[u]);
      acc[u] = _mm512_fmadd_ps(part[u], _mm512_set1_ps(m.scale[at]), acc[u]);
    }
  }
  for (int u = 0; u < kUnit; ++u)
    out[r + u] = _mm512_reduce_add_ps(acc[u]);
}

/// The int16 form on AVX512-VNNI: 32 words a widening, vpdpwssd.
AVX512 void int16Unit512(const Matrix &m, const Int16Input &in, long r,
                         float *out) {
  __m512 acc[kUnit];
  for (__m512 &a : acc)
    a = _mm512_setzero_ps();
  const __m512i low = _mm512_set1_epi16(15);
  for (long g = 0; g < m.groups(); ++g) {
    __m512i part[kUnit];
    for (__m512i &p : part)
      p = _mm512_setzero_si512();
    long c0 = g * m.group;
    prefetchUnit(m, r, c0 * m.bits / 8, m.group * m.bits / 8);
    if (m.bits == 8) {
      for (long c = c0; c < c0 + m.group; c += 32) {
        __m512i xv = _mm512_loadu_si512(&in.v[c]);
        for (int u = 0; u < kUnit; ++u) {
          __m512i w = _mm512_cvtepi8_epi16(
              _mm256_loadu_si256((const __m256i *)m.at(r, u, c)));
          part[u] = _mm512_dpwssd_epi32(part[u], w, xv);
        }
      }
    } else {
      for (long c = c0; c < c0 + m.group; c += 64) {
        __m512i xl = _mm512_loadu_si512(&in.v[c]);
        __m512i xh = _mm512_loadu_si512(&in.v[c + 32]);
        for (int u = 0; u < kUnit; ++u) {
          __m512i w = _mm512_cvtepu8_epi16(
              _mm256_loadu_si256((const __m256i *)m.at(r, u, c / 2)));
          part[u] = _mm512_dpwssd_epi32(part[u], _mm512_and_si512(w, low), xl);
          part[u] = _mm512_dpwssd_epi32(part[u], _mm512_srli_epi16(w, 4), xh);
        }
      }
    }
    for (int u = 0; u < kUnit; ++u) {
      long at = (r + u) * m.groups() + g;
      float s = m.scale[at] * in.scale[g];
      acc[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(part[u]), _mm512_set1_ps(s),
                               acc[u]);
      if (m.bits == 4)
        acc[u] = _mm512_mask_add_ps(
            acc[u], 1, acc[u],
            _mm512_set1_ps(-float(m.zero[at]) * m.scale[at] * in.sum[g]));
    }
  }
  for (int u = 0; u < kUnit; ++u)
    out[r + u] = _mm512_reduce_add_ps(acc[u]);
}

template <typename F> double seconds(F &&f, int repeat) {
  f(); // warm
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < repeat; ++i)
    f();
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double>(t1 - t0).count() / repeat;
}

double worstError(const Matrix &m, const std::vector<float> &x,
                  const std::vector<float> &out) {
  double most = 0, err = 0;
  for (long r = 0; r < m.n; ++r) {
    double sum = 0;
    for (long c = 0; c < m.k; ++c)
      sum += m.weight(r, c) * x[c];
    most = std::max(most, std::fabs(sum));
    err = std::max(err, std::fabs(sum - out[r]));
  }
  return err / most;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: quantized_dots K N THREADS\n");
    return 1;
  }
  long k = std::atol(argv[1]), n = std::atol(argv[2]);
  int threads = std::atoi(argv[3]);
  if (k <= 0 || k % 128 || n <= 0 || n % kUnit || threads <= 0) {
    std::fprintf(stderr, "K must be a multiple of 128, N of %d\n", kUnit);
    return 1;
  }
  omp_set_num_threads(threads);
  std::mt19937 rng(1);
  std::vector<float> x(k);
  std::normal_distribution<float> normal;
  for (float &v : x)
    v = normal(rng);
  x[k / 3] = 40; // an outlier, as activations have
  for (int bits : {8, 4}) {
    Matrix m = randomMatrix(k, n, bits, rng);
    double bytes = double(n) * m.rowBytes();
    int repeat = std::max(3, int(2e9 / bytes / 8));
    std::vector<float> outF(n), outI(n);
    double tf = seconds(
        [&] {
#pragma omp parallel for schedule(static)
          for (long r = 0; r < n; r += kUnit)
            floatUnit(m, x.data(), r, outF.data());
        },
        repeat);
    double ti = seconds(
        [&] {
          Int16Input in = quantizeInput(m, x.data(), 32);
#pragma omp parallel for schedule(static)
          for (long r = 0; r < n; r += kUnit)
            int16Unit(m, in, r, outI.data());
        },
        repeat);
    std::printf("int%d K %ld N %ld, %d threads: float %.1f us (%.1f GB/s, "
                "error %.1e), int16 %.1f us (%.1f GB/s, error %.1e): %.2fx\n",
                bits, k, n, threads, tf * 1e6, bytes / tf / 1e9,
                worstError(m, x, outF), ti * 1e6, bytes / ti / 1e9,
                worstError(m, x, outI), tf / ti);
    if (!__builtin_cpu_supports("avx512vnni") ||
        !__builtin_cpu_supports("avx512bw"))
      continue;
    std::vector<float> xp(k);
    for (long c = 0; c < k; ++c)
      xp[nibbleOrder(c, 32)] = x[c];
    tf = seconds(
        [&] {
#pragma omp parallel for schedule(static)
          for (long r = 0; r < n; r += kUnit)
            floatUnit512(m, x.data(), xp.data(), r, outF.data());
        },
        repeat);
    ti = seconds(
        [&] {
          Int16Input in = quantizeInput(m, x.data(), 64);
#pragma omp parallel for schedule(static)
          for (long r = 0; r < n; r += kUnit)
            int16Unit512(m, in, r, outI.data());
        },
        repeat);
    std::printf("  AVX-512: float %.1f us (%.1f GB/s, error %.1e), int16 "
                "(VNNI) %.1f us (%.1f GB/s, error %.1e): %.2fx\n",
                tf * 1e6, bytes / tf / 1e9, worstError(m, x, outF), ti * 1e6,
                bytes / ti / 1e9, worstError(m, x, outI), tf / ti);
  }
  return 0;
}

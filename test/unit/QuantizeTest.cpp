//===- QuantizeTest.cpp - int8 and int4 weight slots ----------------------===//

#include "runtime/Quantize.h"

#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include "runtime/WeightLoader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

using namespace decc;

namespace {

contract::WeightSlot slot(int64_t rows, int64_t cols, int64_t group,
                          int64_t bits = 8) {
  contract::WeightSlot s;
  s.shape = {rows, cols};
  s.quantBits = bits;
  s.groupSize = group;
  return s;
}

} // namespace

TEST(Quantize, Layout) {
  // 3 rows of 40 columns in groups of 32: a group of 32 and one of 8.
  contract::WeightSlot s = slot(3, 40, 32);
  EXPECT_EQ(s.groups(), 2);
  EXPECT_EQ(s.scalesOffset(), 128); // 120 integers, 64-byte aligned
  EXPECT_EQ(s.bytes(), 128 + 3 * 2 * 2);
}

TEST(Quantize, ScalesIntegersAndTheirProduct) {
  contract::WeightSlot s = slot(2, 40, 32);
  std::vector<float> w(80, 0.0f);
  // Row 0: group 0 spans [-1.27, 1.27], its last group only 0.5 and 0.
  for (int c = 0; c < 32; ++c)
    w[c] = -1.27f + 2.54f * float(c) / 31.0f;
  w[32] = 0.5f;
  // Row 1: all zero but one value in the short group.
  w[40 + 39] = -3.0f;
  std::vector<uint8_t> bytes(size_t(s.bytes()));
  rt::quantizeSlot(s, w.data(), bytes.data());
  auto scale = [&](int r, int g) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + s.scalesOffset() + 2 * (r * 2 + g), 2);
    return rt::f16ToF32(h);
  };
  auto q = [&](int r, int c) { return int8_t(bytes[size_t(r * 40 + c)]); };
  // The scale is max|w| / 127 as f16; the extremes map to +-127.
  EXPECT_EQ(scale(0, 0), rt::f16ToF32(rt::toF16(1.27f / 127.0f)));
  EXPECT_EQ(q(0, 0), -127);
  EXPECT_EQ(q(0, 31), 127);
  EXPECT_EQ(scale(0, 1), rt::f16ToF32(rt::toF16(0.5f / 127.0f)));
  EXPECT_EQ(q(0, 32), 127);
  EXPECT_EQ(q(0, 33), 0);
  // An all-zero group has scale 0 and integers 0, never a NaN.
  EXPECT_EQ(scale(1, 0), 0.0f);
  EXPECT_EQ(q(1, 5), 0);
  EXPECT_EQ(q(1, 39), -127);
  // Dequantized is q * scale exactly, within half a step of w.
  std::vector<float> back(80);
  rt::dequantizeSlot(s, bytes.data(), back.data());
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 40; ++c) {
      float sc = scale(r, c / 32);
      EXPECT_EQ(back[size_t(r * 40 + c)], float(q(r, c)) * sc);
      EXPECT_LE(std::fabs(back[size_t(r * 40 + c)] - w[size_t(r * 40 + c)]),
                0.5f * sc + 1e-6f);
    }
}

TEST(Quantize, Int4Layout) {
  // 3 rows of 40 columns in groups of 32: 3 runs of 16 columns a row (the
  // last padded), 24 bytes; f16 scales, then a zero point a group.
  contract::WeightSlot s = slot(3, 40, 32, 4);
  EXPECT_EQ(s.rowBytes(), 24);
  EXPECT_EQ(s.scalesOffset(), 128); // 72 bytes, 64-byte aligned
  EXPECT_EQ(s.zerosOffset(), 128 + 3 * 2 * 2);
  EXPECT_EQ(s.bytes(), 128 + 3 * 2 * 2 + 3 * 2);
}

TEST(Quantize, Int4NibblesZerosAndScales) {
  // One row of 40 columns, groups of 32 and 8.
  contract::WeightSlot s = slot(1, 40, 32, 4);
  std::vector<float> w(40);
  // Group 0 spans [-0.5, 1.0]: scale 0.1, zero point 5, q = w / 0.1 + 5.
  for (int c = 0; c < 32; ++c)
    w[size_t(c)] = -0.5f + 0.1f * float(c % 16);
  // Group 1 is all positive: its range widened to hold 0 (zero point 0,
  // nothing clipped at 15 x scale).
  for (int c = 32; c < 40; ++c)
    w[size_t(c)] = 1.0f + 0.5f * float(c - 32);
  std::vector<uint8_t> bytes(size_t(s.bytes()));
  rt::quantizeSlot(s, w.data(), bytes.data());
  auto scale = [&](int g) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + s.scalesOffset() + 2 * g, 2);
    return rt::f16ToF32(h);
  };
  auto zero = [&](int g) { return int(bytes[size_t(s.zerosOffset() + g)]); };
  // Column c of a run of 16 is byte c % 8's low (c < 8) or high nibble.
  auto q = [&](int c) {
    return (bytes[size_t(c / 16 * 8 + c % 8)] >> (c % 16 >= 8 ? 4 : 0)) & 15;
  };
  EXPECT_EQ(scale(0), rt::f16ToF32(rt::toF16(1.5f / 15.0f)));
  EXPECT_EQ(zero(0), 5);
  for (int c = 0; c < 32; ++c)
    EXPECT_EQ(q(c), c % 16) << "column " << c;
  EXPECT_EQ(scale(1), rt::f16ToF32(rt::toF16(4.5f / 15.0f)));
  EXPECT_EQ(zero(1), 0);
  EXPECT_EQ(q(39), 15);
  // Dequantized is (q - zero) * scale exactly, within half a step of w.
  std::vector<float> back(40);
  rt::dequantizeSlot(s, bytes.data(), back.data());
  for (int c = 0; c < 40; ++c) {
    int g = c / 32;
    EXPECT_EQ(back[size_t(c)], float(q(c) - zero(g)) * scale(g));
    EXPECT_LE(std::fabs(back[size_t(c)] - w[size_t(c)]),
              0.5f * scale(g) + 1e-6f)
        << "column " << c;
  }
}

TEST(Quantize, F32GroupTermsHoldTheSameValues) {
  // The CPU kernels' form: f32 scales, then f32 offsets (-zero x scale)
  // where the zero points were; the same integers, and dequantized the
  // same floats bit for bit as the f16 / u8 form's.
  for (int64_t bits : {8, 4}) {
    contract::WeightSlot f16 = slot(3, 40, 32, bits), f32 = f16;
    f32.f32GroupTerms = true;
    EXPECT_EQ(f32.scalesOffset(), f16.scalesOffset());
    EXPECT_EQ(f32.zerosOffset(), f32.scalesOffset() + 3 * 2 * 4);
    EXPECT_EQ(f32.bytes(), f32.zerosOffset() + (bits == 4 ? 3 * 2 * 4 : 0));
    std::vector<float> w(3 * 40);
    for (size_t i = 0; i < w.size(); ++i)
      w[i] = std::sin(0.37f * float(i)) * (1.0f + float(i % 7));
    std::vector<uint8_t> a(size_t(f16.bytes())), b(size_t(f32.bytes()));
    rt::quantizeSlot(f16, w.data(), a.data());
    rt::quantizeSlot(f32, w.data(), b.data());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), size_t(f16.scalesOffset())))
        << bits << " bits: the integers differ";
    for (int64_t g = 0; g < 3 * 2; ++g) {
      uint16_t h;
      std::memcpy(&h, a.data() + f16.scalesOffset() + 2 * g, 2);
      float scale;
      std::memcpy(&scale, b.data() + f32.scalesOffset() + 4 * g, 4);
      EXPECT_EQ(scale, rt::f16ToF32(h)) << "group " << g;
      if (bits == 4) {
        float offset;
        std::memcpy(&offset, b.data() + f32.zerosOffset() + 4 * g, 4);
        EXPECT_EQ(offset,
                  -float(a[size_t(f16.zerosOffset() + g)]) * rt::f16ToF32(h))
            << "group " << g;
      }
    }
    std::vector<float> backA(w.size()), backB(w.size());
    rt::dequantizeSlot(f16, a.data(), backA.data());
    rt::dequantizeSlot(f32, b.data(), backB.data());
    for (size_t i = 0; i < w.size(); ++i)
      EXPECT_EQ(backA[i], backB[i]) << bits << " bits, value " << i;
  }
}

TEST(Quantize, Int4RefusesNonFinite) {
  contract::WeightSlot s = slot(1, 16, 16, 4);
  s.parts.push_back({"w", {1, 16}, std::nullopt, std::nullopt});
  std::vector<float> w(16, 0.25f);
  w[3] = INFINITY;
  std::vector<uint8_t> bytes(size_t(s.bytes()));
  try {
    rt::quantizeSlot(s, w.data(), bytes.data());
    FAIL() << "an infinity was quantized";
  } catch (const rt::Error &e) {
    EXPECT_STREQ(e.what(), "weight 'w' has a non-finite value (inf); an int4 "
                           "build cannot quantize it");
  }
}

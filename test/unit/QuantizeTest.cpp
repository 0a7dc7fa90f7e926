//===- QuantizeTest.cpp - int8 weight slots -------------------------------===//

#include "runtime/Quantize.h"

#include "runtime/Safetensors.h"

#include "runtime/WeightLoader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

using namespace decc;

namespace {

contract::WeightSlot slot(int64_t rows, int64_t cols, int64_t group) {
  contract::WeightSlot s;
  s.shape = {rows, cols};
  s.quantBits = 8;
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

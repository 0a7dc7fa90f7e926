//===- SamplerTest.cpp - greedy, temperature, top-k, top-p ----------------===//

#include "runtime/Sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <vector>

using namespace decc::rt;

namespace {
const float kLogits[] = {1.0f, 3.0f, 2.9f, -1.0f, 0.5f};
}

TEST(SamplerTest, GreedyTakesTheLargestLogit) {
  Sampler s({/*temperature=*/0, 0, 1, 0});
  EXPECT_EQ(s.next(kLogits, 5), 1);
}

TEST(SamplerTest, TopKOfOneIsGreedyAtAnyTemperature) {
  Sampler s({/*temperature=*/5, /*topK=*/1, 1, 7});
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(s.next(kLogits, 5), 1);
}

TEST(SamplerTest, TopKAndTopPKeepOnlyTheirNucleus) {
  Sampler k({1, /*topK=*/2, 1, 3});
  Sampler p({1, 0, /*topP=*/0.5f, 3}); // 3.0 and 2.9 hold ~70% together
  std::set<int64_t> seenK, seenP;
  for (int i = 0; i < 200; ++i) {
    seenK.insert(k.next(kLogits, 5));
    seenP.insert(p.next(kLogits, 5));
  }
  EXPECT_EQ(seenK, (std::set<int64_t>{1, 2}));
  EXPECT_EQ(seenP, (std::set<int64_t>{1, 2}));
}

TEST(SamplerTest, TheSeedMakesSamplingReproducible) {
  Sampler a({1, 0, 1, 42}), b({1, 0, 1, 42});
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(a.next(kLogits, 5), b.next(kLogits, 5));
}

TEST(SamplerTest, ArgmaxIsTheFirstLargest) {
  // Rows shorter than, equal to and past the 16 lanes, a tail after them,
  // ties (the first wins, as std::max_element has it), the largest in
  // the first lanes, in the tail and last.
  std::mt19937 random(7);
  std::uniform_int_distribution<int> value(-20, 20);
  for (int64_t vocab : {1, 5, 16, 17, 31, 64, 100, 92553}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> row(static_cast<size_t>(vocab));
      for (float &x : row)
        x = float(value(random));
      if (trial == 1)
        row.back() = 100;
      if (trial == 2)
        row.front() = 100;
      EXPECT_EQ(decc::rt::argmax(row.data(), vocab),
                std::max_element(row.begin(), row.end()) - row.begin())
          << "vocab " << vocab << ", trial " << trial;
    }
  }
  // NaNs in the first lanes: never out of the row.
  std::vector<float> nans(40, 1.0f);
  std::fill_n(nans.begin(), 16, std::nanf(""));
  nans[30] = 2;
  int64_t at = decc::rt::argmax(nans.data(), 40);
  EXPECT_TRUE(at >= 0 && at < 40);
}

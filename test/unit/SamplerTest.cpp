//===- SamplerTest.cpp - greedy, temperature, top-k, top-p ----------------===//

#include "runtime/Sampler.h"

#include <gtest/gtest.h>

#include <set>

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

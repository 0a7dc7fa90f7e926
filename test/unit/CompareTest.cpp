//===- CompareTest.cpp - the golden acceptance rule -----------------------===//

#include "tools/decc-compare/Compare.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace decc;

namespace {

/// A run with `rows` rows of logits 0, 1, ..., vocab-1 (argmax = last).
RunOutputs makeRun(int64_t rows, int64_t vocab) {
  RunOutputs r;
  r.promptIds = {1, 2, 3};
  r.prefill.rows = 3;
  r.prefill.vocab = vocab;
  r.decode.rows = rows;
  r.decode.vocab = vocab;
  for (int64_t i = 0; i < 3 * vocab; ++i)
    r.prefill.values.push_back(float(i % vocab));
  for (int64_t i = 0; i < rows * vocab; ++i)
    r.decode.values.push_back(float(i % vocab));
  r.generatedIds.assign(size_t(rows), vocab - 1);
  return r;
}

TEST(Compare, F32BoundScalesWithTheRow) {
  RunOutputs ref = makeRun(4, 8); // max |row| = 7: bound 7e-3
  RunOutputs got = ref;
  got.prefill.values[5] += 6.9e-3f;
  EXPECT_TRUE(compareOutputs(ref, got, Precision::F32).passed);
  got.prefill.values[5] += 2e-4f;
  CompareReport r = compareOutputs(ref, got, Precision::F32);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.lines[0],
            "prefill_logits row 0: max abs error 0.0071 exceeds 0.007");
}

TEST(Compare, F32TokensMustAllMatch) {
  RunOutputs ref = makeRun(4, 8);
  RunOutputs got = ref;
  got.generatedIds[3] = 2;
  CompareReport r = compareOutputs(ref, got, Precision::F32);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.lines[1], "generated_ids: step 3 chose 2, the reference 7");
}

TEST(Compare, NaNFails) {
  RunOutputs ref = makeRun(2, 8);
  RunOutputs got = ref;
  got.decode.values[9] = NAN;
  EXPECT_FALSE(compareOutputs(ref, got, Precision::F32).passed);
}

TEST(Compare, ReducedUsesCosine) {
  RunOutputs ref = makeRun(2, 8);
  RunOutputs got = ref;
  for (float &v : got.prefill.values)
    v = v * 1.5f + 0.01f; // direction kept: cosine ~1
  EXPECT_TRUE(compareOutputs(ref, got, Precision::Reduced).passed);
  EXPECT_FALSE(compareOutputs(ref, got, Precision::F32).passed);
  got.prefill.values[0] = 20; // direction changed
  EXPECT_FALSE(compareOutputs(ref, got, Precision::Reduced).passed);
}

TEST(Compare, ReducedStopsAtAnUndecidedStep) {
  RunOutputs ref = makeRun(4, 8);
  // Step 2 of the reference is a near tie (margin 5e-3 < 1e-2).
  ref.decode.values[2 * 8 + 6] = 7.0f - 5e-3f;
  RunOutputs got = ref;
  got.generatedIds[2] = 6;
  got.generatedIds[3] = 0;
  CompareReport r = compareOutputs(ref, got, Precision::Reduced);
  EXPECT_TRUE(r.passed) << r.lines[1];
  EXPECT_EQ(r.lines[1], "generated_ids: 2 of 4 greedy tokens match");
  got.generatedIds[1] = 0;
  EXPECT_FALSE(compareOutputs(ref, got, Precision::Reduced).passed);
}

TEST(Compare, PromptMustMatch) {
  RunOutputs ref = makeRun(1, 4);
  RunOutputs got = ref;
  got.promptIds.push_back(9);
  EXPECT_FALSE(compareOutputs(ref, got, Precision::F32).passed);
}

} // namespace

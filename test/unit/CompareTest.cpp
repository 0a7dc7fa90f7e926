//===- CompareTest.cpp - the golden acceptance rule -----------------------===//

#include "tools/decc-compare/Compare.h"

#include "runtime/Error.h"

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

TEST(Compare, ReducedWithoutAHalfRunUsesCosine) {
  RunOutputs ref = makeRun(2, 8);
  RunOutputs got = ref;
  for (float &v : got.prefill.values)
    v = v * 1.5f + 0.01f; // direction kept: cosine ~1
  EXPECT_TRUE(compareOutputs(ref, got, Precision::Reduced).passed);
  EXPECT_FALSE(compareOutputs(ref, got, Precision::F32).passed);
  got.prefill.values[0] = 20; // direction changed
  EXPECT_FALSE(compareOutputs(ref, got, Precision::Reduced).passed);
}

TEST(Compare, ReducedWithoutAHalfRunStopsAtAnUndecidedStep) {
  RunOutputs ref = makeRun(4, 8);
  // Step 2 of the reference is a near tie (margin 5e-3 < 1e-2).
  ref.decode.values[2 * 8 + 6] = 7.0f - 5e-3f;
  RunOutputs got = ref;
  got.generatedIds[2] = 6;
  got.generatedIds[3] = 0;
  CompareReport r = compareOutputs(ref, got, Precision::Reduced);
  EXPECT_TRUE(r.passed) << r.lines[2];
  EXPECT_EQ(r.lines[2], "generated_ids: 2 of 4 greedy tokens match (the "
                        "reference's top-2 margin at step 2, 0.005, is under "
                        "0.01)");
  got.generatedIds[1] = 0;
  EXPECT_FALSE(compareOutputs(ref, got, Precision::Reduced).passed);
}

/// `run` with the logits of prefill row `row` shifted so that its max-abs
/// error grows by `delta` at one element (the cosine barely moves).
void perturb(Logits &l, int64_t row, float delta) {
  l.values[size_t(row * l.vocab)] += delta;
}

TEST(Compare, HalfPrecisionCostIsOverComparableRows) {
  RunOutputs ref = makeRun(4, 8);
  RunOutputs half = ref;
  perturb(half.prefill, 1, 0.25f);
  perturb(half.decode, 1, 0.5f);
  // Step 1 chose another token: decode row 1 still compares (it is what
  // chose), rows 2 and 3 continue another sequence and do not.
  half.generatedIds[1] = 3;
  perturb(half.decode, 2, 9.0f);
  HalfPrecisionCost cost = measureHalfPrecisionCost(ref, half);
  EXPECT_FLOAT_EQ(cost.maxAbsError, 0.5);
  EXPECT_EQ(cost.rows, 3 + 2);
  EXPECT_LT(cost.minCosine, 1.0);
  EXPECT_GT(cost.minCosine, 0.99);
}

TEST(Compare, HalfPrecisionRunMustShareThePrompt) {
  RunOutputs ref = makeRun(2, 8);
  RunOutputs half = ref;
  half.promptIds[0] = 7;
  EXPECT_THROW(measureHalfPrecisionCost(ref, half), rt::Error);
}

TEST(Compare, HalfPrecisionRuleAllowsTwiceTheReferencesError) {
  RunOutputs ref = makeRun(3, 8);
  HalfPrecisionCost cost{/*E=*/0.1, /*C=*/0.999, /*rows=*/6};
  RunOutputs got = ref;
  perturb(got.prefill, 2, 0.19f);
  perturb(got.decode, 1, -0.19f);
  CompareReport r = compareOutputs(ref, got, Precision::Reduced, cost);
  EXPECT_TRUE(r.passed);
  EXPECT_EQ(r.lines[0], "half-precision rule: the reference implementation's "
                        "own run has E = 0.1, C = 0.999000 over 6 rows");
  perturb(got.prefill, 2, 0.02f);
  r = compareOutputs(ref, got, Precision::Reduced, cost);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.lines[1], "prefill_logits row 2: max abs error 0.21 exceeds 0.2");
}

TEST(Compare, HalfPrecisionRuleBoundsTheCosine) {
  RunOutputs ref = makeRun(2, 8);
  RunOutputs got = ref;
  for (size_t i = 0; i < 8; ++i) // one row's direction turned
    got.prefill.values[i] = float(7 - i);
  // A loose absolute bound, so that only the cosine decides.
  HalfPrecisionCost loose{100.0, 0.5, 1};
  EXPECT_TRUE(compareOutputs(ref, got, Precision::Reduced, loose).passed);
  HalfPrecisionCost tight{100.0, 0.9, 1};
  CompareReport r = compareOutputs(ref, got, Precision::Reduced, tight);
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.lines[1].find("is below 0.800000"), std::string::npos)
      << r.lines[1];
  // However exact the reference's own run, 1e-5 below 1 is allowed.
  HalfPrecisionCost exact{100.0, 1.0, 1};
  RunOutputs close = ref;
  close.prefill.values[3] += 1e-3f;
  EXPECT_TRUE(compareOutputs(ref, close, Precision::Reduced, exact).passed);
}

TEST(Compare, HalfPrecisionTokensUpToAMarginOfTwiceE) {
  RunOutputs ref = makeRun(4, 8);
  // Step 1's margin is 0.15: under 2E = 0.2, so tokens from step 1 on are
  // not held; decode rows are compared up to the first other token.
  ref.decode.values[1 * 8 + 6] = 7.0f - 0.15f;
  HalfPrecisionCost cost{0.1, 0.99, 4};
  RunOutputs got = ref;
  got.generatedIds[1] = 6;
  got.generatedIds[2] = 5;
  perturb(got.decode, 2, 5.0f); // another sequence by then
  CompareReport r = compareOutputs(ref, got, Precision::Reduced, cost);
  EXPECT_TRUE(r.passed) << r.lines[2];
  EXPECT_EQ(r.lines[3], "decode_logits: 2 rows ok (max abs error 0 of 0.2, "
                        "lowest cosine 1.000000)");
  got.generatedIds[0] = 6;
  EXPECT_FALSE(compareOutputs(ref, got, Precision::Reduced, cost).passed);
}

TEST(Compare, PromptMustMatch) {
  RunOutputs ref = makeRun(1, 4);
  RunOutputs got = ref;
  got.promptIds.push_back(9);
  EXPECT_FALSE(compareOutputs(ref, got, Precision::F32).passed);
}

} // namespace

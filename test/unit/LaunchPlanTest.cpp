//===- LaunchPlanTest.cpp - what a call of the CUDA plan launches ---------===//

#include "runtime/LaunchPlan.h"

#include "runtime/Error.h"

#include <gtest/gtest.h>

#include <numeric>

using namespace decc::contract;
using namespace decc::rt;

namespace {

Launch launchWhen(LaunchWhen when) {
  Launch l;
  l.when = when;
  return l;
}

TEST(LaunchPlan, WhichLaunchesACallMakes) {
  Call decode{1, 40, 1}, small{100, 0, 1}, large{300, 0, 1};
  auto runs = [](LaunchWhen w, const Call &c) {
    return launchRuns(launchWhen(w), c, /*largePrefill=*/256);
  };
  EXPECT_TRUE(runs(LaunchWhen::Always, decode));
  EXPECT_TRUE(runs(LaunchWhen::Decode, decode));
  EXPECT_FALSE(runs(LaunchWhen::Prefill, decode));
  EXPECT_FALSE(runs(LaunchWhen::PrefillSmall, decode));
  EXPECT_FALSE(runs(LaunchWhen::Decode, small));
  EXPECT_TRUE(runs(LaunchWhen::Prefill, small));
  EXPECT_TRUE(runs(LaunchWhen::PrefillSmall, small));
  EXPECT_FALSE(runs(LaunchWhen::PrefillLarge, small));
  EXPECT_FALSE(runs(LaunchWhen::PrefillSmall, large));
  EXPECT_TRUE(runs(LaunchWhen::PrefillLarge, large));
  EXPECT_TRUE(runs(LaunchWhen::Prefill, large));
  // A one-token prompt that wants every row's logits is still one token:
  // the decode kernels serve it, though it is not replayed as the graph.
  Call one{1, 0, 1};
  EXPECT_TRUE(runs(LaunchWhen::Decode, one));
}

TEST(LaunchPlan, ABatchedStepRunsItsPrefillsProjectionsAndItsOwnAttention) {
  Call batched{32, 500, 32, /*batched=*/true, /*tableStride=*/40};
  auto runs = [&](LaunchWhen w, bool skipInBatched) {
    Launch l = launchWhen(w);
    l.skipInBatched = skipInBatched;
    return launchRuns(l, batched, /*largePrefill=*/16);
  };
  EXPECT_TRUE(runs(LaunchWhen::Always, false));
  EXPECT_TRUE(runs(LaunchWhen::Batched, false));
  EXPECT_FALSE(runs(LaunchWhen::Decode, false));
  // The projections of 32 tokens, a large prefill's here.
  EXPECT_TRUE(runs(LaunchWhen::Prefill, false));
  EXPECT_TRUE(runs(LaunchWhen::PrefillLarge, false));
  EXPECT_FALSE(runs(LaunchWhen::PrefillSmall, false));
  // Not a prompt's attention, which takes the tokens as one sequence's.
  EXPECT_FALSE(runs(LaunchWhen::PrefillLarge, true));
  EXPECT_FALSE(runs(LaunchWhen::Prefill, true));
  // A prompt runs both; a decode step neither.
  Call prompt{32, 0, 1};
  EXPECT_FALSE(launchRuns(launchWhen(LaunchWhen::Batched), prompt, 16));
  Launch attention = launchWhen(LaunchWhen::Prefill);
  attention.skipInBatched = true;
  EXPECT_TRUE(launchRuns(attention, prompt, 16));
  EXPECT_FALSE(launchRuns(launchWhen(LaunchWhen::Batched), Call{}, 16));
}

TEST(LaunchPlan, ABatchedStepsSplitsShareAWave) {
  // 8 kv heads on a card of 528 resident blocks: 66 splits a head alone.
  SplitPolicy policy{32, 66, 8};
  Call one{1, 8191, 1};
  EXPECT_EQ(stepRecord(one, 8192, policy)[kStepSplits], 64);
  // 32 tokens share the wave (2 splits each), no clusters; the table's
  // stride is the call's; the keys are the latest position's.
  Call batched{32, 8191, 32, true, 513};
  auto step = stepRecord(batched, 8192, policy);
  EXPECT_EQ(step[kStepSplits], 2);
  EXPECT_EQ(step[kStepTableStride], 513);
  EXPECT_EQ(step[kStepKeys], 8192);
  // Few keys: fewer splits than the share; every batch within kMaxSplits.
  EXPECT_EQ(stepRecord(Call{4, 40, 4, true, 3}, 8192, policy)[kStepSplits], 2);
  for (int64_t tokens = 2; tokens <= kMaxSplits; ++tokens)
    EXPECT_LE(tokens * stepRecord(Call{tokens, 100000, tokens, true, 1},
                                  1 << 20, SplitPolicy{1, 1000})[kStepSplits],
              kMaxSplits);
  // A call of one sequence has table stride 0.
  EXPECT_EQ(stepRecord(Call{5, 0, 1}, 64, policy)[kStepTableStride], 0);
}

TEST(LaunchPlan, APagedCallsSequencesRunAsPromptsAndBatchedSteps) {
  // One table row: one sequence's tokens, in position order.
  std::vector<PagedPart> one = pagedParts({7, 5, 6}, {3, 4}, 2);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_FALSE(one[0].batched);
  EXPECT_EQ(one[0].tokens, (std::vector<int64_t>{1, 2, 0}));
  // A row a token: tokens 0, 2 and 4 are one sequence (a prompt part),
  // 1 and 3 a decode step each, batched together after it.
  std::vector<int32_t> table = {0, 1, 5, 6, 0, 1, 7, 8, 0, 1};
  std::vector<PagedPart> mixed = pagedParts({11, 3, 10, 40, 12}, table, 2);
  ASSERT_EQ(mixed.size(), 2u);
  EXPECT_FALSE(mixed[0].batched);
  EXPECT_EQ(mixed[0].tokens, (std::vector<int64_t>{2, 0, 4}));
  EXPECT_TRUE(mixed[1].batched);
  EXPECT_EQ(mixed[1].tokens, (std::vector<int64_t>{1, 3}));
  // Batched steps hold at most kMaxSplits tokens.
  int64_t many = kMaxSplits + 2;
  std::vector<int32_t> rows(static_cast<size_t>(many));
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<PagedPart> steps =
      pagedParts(std::vector<int64_t>(size_t(many), 9), rows, 1);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(int64_t(steps[0].tokens.size()), kMaxSplits);
  EXPECT_EQ(steps[1].tokens,
            (std::vector<int64_t>{kMaxSplits, kMaxSplits + 1}));
  // Fewer where the device's buffers hold fewer tokens.
  std::vector<PagedPart> short_ =
      pagedParts(std::vector<int64_t>(size_t(many), 9), rows, 1, 48);
  ASSERT_EQ(short_.size(), 3u);
  EXPECT_EQ(short_[2].tokens.size(), size_t(many - 96));
  // A sequence with a gap in its positions is refused.
  EXPECT_THROW(pagedParts({5, 7}, {3}, 1), decc::rt::Error);
}

TEST(LaunchPlan, ShortPromptsMayJoinTheBatchedSteps) {
  // Tokens 0, 2 and 4 one sequence's prompt part, 1 and 3 a decode step
  // each: joined, one batched step, the prompt's tokens in position order.
  std::vector<int32_t> table = {0, 1, 5, 6, 0, 1, 7, 8, 0, 1};
  std::vector<int64_t> positions = {11, 3, 10, 40, 12};
  std::vector<PagedPart> joined =
      pagedParts(positions, table, 2, kMaxSplits, /*joinPrompts=*/true);
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_TRUE(joined[0].batched);
  EXPECT_TRUE(joined[0].joined);
  EXPECT_EQ(joined[0].tokens, (std::vector<int64_t>{2, 0, 4, 1, 3}));
  // Not by default; nor a prompt longer than a step; nor the call's one
  // sequence (one table row).
  std::vector<PagedPart> apart = pagedParts(positions, table, 2);
  ASSERT_EQ(apart.size(), 2u);
  EXPECT_FALSE(apart[1].joined);
  std::vector<PagedPart> longer = pagedParts(positions, table, 2, 2, true);
  ASSERT_EQ(longer.size(), 2u);
  EXPECT_FALSE(longer[0].batched);
  EXPECT_EQ(longer[1].tokens, (std::vector<int64_t>{1, 3}));
  EXPECT_FALSE(longer[1].joined);
  std::vector<PagedPart> one = pagedParts({7, 5, 6}, {3, 4}, 2, 8, true);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_FALSE(one[0].batched);
  // The step record says so.
  Call step{8, 40, 8, true, 2};
  EXPECT_EQ(stepRecord(step, 64, {})[decc::contract::kStepJoined], 0);
  step.joined = true;
  EXPECT_EQ(stepRecord(step, 64, {})[decc::contract::kStepJoined], 1);
}

TEST(LaunchPlan, BatchedStepsArePaddedToAFewSizes) {
  std::vector<int64_t> sizes;
  for (int64_t b = 1; b <= kMaxSplits; ++b)
    if (sizes.empty() || batchBucket(b, kMaxSplits) != sizes.back())
      sizes.push_back(batchBucket(b, kMaxSplits));
  EXPECT_EQ(sizes, (std::vector<int64_t>{1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64,
                                         80, 96, 112, 128}));
  // Fewer than twice the tokens, and past 8 at most a step of 8 (16
  // past 64) more.
  for (int64_t b = 1; b <= kMaxSplits; ++b) {
    int64_t padded = batchBucket(b, kMaxSplits);
    EXPECT_GE(padded, b);
    EXPECT_LT(padded, std::max<int64_t>(2 * b, 2));
    if (b > 8)
      EXPECT_LT(padded - b, b > 64 ? 16 : 8);
  }
  // Never past the most a step may hold, never below the tokens.
  EXPECT_EQ(batchBucket(17, 20), 20);
  EXPECT_EQ(batchBucket(30, 20), 30);
}

TEST(LaunchPlan, GridsScaleWithTheCall) {
  Call call{100, 0, 3};
  // 32 tokens a block, 8 row tiles: x = ceil(100 / 32), y = 8.
  EXPECT_EQ(gridBlocks({1, 32, GridScale::Tokens, 8, GridScale::One, 1}, call),
            (std::array<int64_t, 2>{4, 8}));
  // A warp per unit, 4 a block; a y tile of 16 tokens.
  EXPECT_EQ(gridBlocks({10, 4, GridScale::One, 2, GridScale::Tokens, 16}, call),
            (std::array<int64_t, 2>{3, 14}));
  EXPECT_EQ(gridBlocks({5, 1, GridScale::Rows, 1, GridScale::Splits, 1}, call),
            (std::array<int64_t, 2>{15, kMaxSplits}));
  // As many split rows as the policy allows, never more than kMaxSplits.
  EXPECT_EQ(
      gridBlocks({5, 1, GridScale::Rows, 1, GridScale::Splits, 1}, call, 17)[1],
      17);
  EXPECT_EQ(gridBlocks({5, 1, GridScale::Rows, 1, GridScale::Splits, 1}, call,
                       1000)[1],
            kMaxSplits);
  // No rows: nothing to launch.
  EXPECT_EQ(gridBlocks({5, 1, GridScale::Rows}, Call{4, 0, 0})[0], 0);
}

TEST(LaunchPlan, ResidentGridsAreCappedInX) {
  Call call{1, 0, 1};
  Grid resident{4096, 8};
  resident.resident = true;
  // Its kernel strides over the units: the blocks the card holds at once.
  EXPECT_EQ(gridBlocks(resident, call, kMaxSplits, 264)[0], 264);
  // No cap known, or a cap above the grid: every unit its own warp.
  EXPECT_EQ(gridBlocks(resident, call)[0], 512);
  EXPECT_EQ(gridBlocks(resident, call, kMaxSplits, 1000)[0], 512);
  // A grid that does not stride is never capped.
  EXPECT_EQ(gridBlocks({4096, 8}, call, kMaxSplits, 264)[0], 512);
}

TEST(LaunchPlan, ResidentGridBlocksFollowTheOccupancyUnlessTold) {
  // 132 SMs holding 5 blocks each: one wave.
  EXPECT_EQ(residentGridBlocks(132, 5), 660);
  EXPECT_EQ(residentGridBlocks(132, 5, ""), 660);
  // An occupancy of 0 is taken as 1 (the launch itself then says what
  // does not fit).
  EXPECT_EQ(residentGridBlocks(132, 0), 132);
  EXPECT_EQ(residentGridBlocks(132, 5, "2"), 264);
  // 0, a negative number or not a number: no cap.
  EXPECT_EQ(residentGridBlocks(132, 5, "0"), 0);
  EXPECT_EQ(residentGridBlocks(132, 5, "-3"), 0);
  EXPECT_EQ(residentGridBlocks(132, 5, "many"), 0);
}

TEST(LaunchPlan, TheStepRecord) {
  auto step = stepRecord(Call{1, 1023, 1}, 4096, SplitPolicy{8, 1000});
  EXPECT_EQ(step[kStepTokens], 1);
  EXPECT_EQ(step[kStepStart], 1023);
  EXPECT_EQ(step[kStepRows], 1);
  EXPECT_EQ(step[kStepKeys], 1024);
  EXPECT_EQ(step[kStepContext], 4096);
  EXPECT_EQ(step[kStepSplits], kMaxSplits); // 128 wanted, 64 at most
  EXPECT_EQ(stepRecord(Call{1, 20, 1}, 64, {8, kMaxSplits})[kStepSplits], 3);
  // The card's share: at most maxSplits, however many keys.
  EXPECT_EQ(stepRecord(Call{1, 8191, 1}, 8192, {32, 4})[kStepSplits], 4);
  // A policy out of range still gives 1..kMaxSplits splits.
  EXPECT_EQ(stepRecord(Call{1, 99, 1}, 128, {0, 0})[kStepSplits], 1);
  EXPECT_EQ(stepRecord(Call{1, 9999, 1}, 10000, {1, 1000})[kStepSplits],
            kMaxSplits);
}

TEST(LaunchPlan, SplitBlocksCoverEveryStepOfTheContext) {
  SplitPolicy policy{32, 66};
  // A 512-position cache never has more than 16 splits of 32 keys.
  EXPECT_EQ(splitBlocks(policy, 512), 16);
  EXPECT_EQ(splitBlocks(policy, 8192), 66);
  for (int64_t start : {0, 31, 32, 511, 8191})
    EXPECT_LE(stepRecord(Call{1, start, 1}, 8192, policy)[kStepSplits],
              splitBlocks(policy, 8192));
}

TEST(LaunchPlan, ClusteredSplitsAreWholeClusters) {
  // 8 blocks a cluster, 64 keys a split, 66 blocks a kv head at most.
  SplitPolicy policy{64, 66, 8};
  // Fewer keys than a cluster has splits: still one whole cluster.
  EXPECT_EQ(stepRecord(Call{1, 9, 1}, 8192, policy)[kStepSplits], 8);
  EXPECT_EQ(stepRecord(Call{1, 511, 1}, 8192, policy)[kStepSplits], 8);
  // 513 keys want 9 splits: two clusters.
  EXPECT_EQ(stepRecord(Call{1, 512, 1}, 8192, policy)[kStepSplits], 16);
  // At most 66 blocks: 8 whole clusters.
  EXPECT_EQ(stepRecord(Call{1, 8191, 1}, 8192, policy)[kStepSplits], 64);
  EXPECT_EQ(splitBlocks(policy, 8192), 64);
  // A card too small for one cluster a kv head still gets one.
  EXPECT_EQ(splitBlocks(SplitPolicy{64, 3, 8}, 8192), 8);
  for (int64_t start = 0; start < 8192; start += 97)
    EXPECT_EQ(stepRecord(Call{1, start, 1}, 8192, policy)[kStepSplits] % 8, 0);
}

TEST(LaunchPlan, DeviceMemoryForAContext) {
  Manifest m;
  m.target = Target::CUDA;
  m.arenaBytes = 1000;
  m.cache = {2, 4, 8, DType::BF16};
  m.vocab = 50;
  m.plan = Plan{};
  m.plan->buffers = {{"buf:0", PlanBuffer::Size::PerToken, 16},
                     {"scores:1", PlanBuffer::Size::PerTokenKey, 2},
                     {"counters:2", PlanBuffer::Size::Fixed, 3}};
  std::map<std::string, int64_t> bytes = deviceAllocations(m, 10);
  EXPECT_EQ(bytes.at("arena"), 1000);
  EXPECT_EQ(bytes.at("k_cache"), 2 * 4 * 10 * 8 * 2);
  EXPECT_EQ(bytes.at("v_cache"), bytes.at("k_cache"));
  EXPECT_EQ(bytes.at("logits"), 10 * 50 * 4);
  EXPECT_EQ(bytes.at("step"), kStepWords * 8);
  EXPECT_EQ(bytes.at("state"), kStateWords * 8);
  EXPECT_EQ(bytes.at("buf:0"), 16 * 10 * 4);
  EXPECT_EQ(bytes.at("scores:1"), 2 * 10 * 10 * 4);
  EXPECT_EQ(bytes.at("counters:2"), 12);
  // A row of the block table: the 10 positions take one block of 16.
  EXPECT_EQ(bytes.at("block_table"), 4);
  EXPECT_EQ(deviceAllocations(m, 33).at("block_table"), 3 * 4);
  // A paged pool of 64 positions for calls of 10 tokens: the caches and
  // the table hold the pool, the rest 10 tokens.
  std::map<std::string, int64_t> pooled = deviceAllocations(m, 10, 64);
  EXPECT_EQ(pooled.at("k_cache"), 2 * 4 * 64 * 8 * 2);
  EXPECT_EQ(pooled.at("block_table"), kMaxSplits * 4 * 4);
  EXPECT_EQ(pooled.at("logits"), 10 * 50 * 4);
  // No kernel binds a trace: none is allocated; one that does (a build
  // with --gpu-trace) gets a slice for every launch of the plan.
  EXPECT_EQ(bytes.count("trace"), 0u);
  m.plan->launches.resize(3);
  m.plan->launches[1].args = {"arena", "trace"};
  EXPECT_EQ(deviceAllocations(m, 10).at("trace"), 3 * kTraceLaunchBytes);
  // A model with a vision encoder: image rows for a whole context, of the
  // embedding's width, which the embedding reads past its table.
  EXPECT_EQ(bytes.count("image"), 0u);
  m.vision = VisionShape{3, 448, 256, 24};
  EXPECT_EQ(deviceAllocations(m, 10).at("image"), 10 * 24 * 4);
}

TEST(LaunchPlan, ALaunchPointsAtItsLayer) {
  Manifest m;
  m.cache = {3, 4, 8, DType::BF16};
  Launch l;
  l.arenaOffset = 4096;
  l.cacheLayer = 2;
  EXPECT_EQ(argumentOffset(l, 3, "arena", m, 10), 4096);
  // Layer 2's slab: 2 x (4 kv heads x 10 positions x 8 features x 2 bytes).
  EXPECT_EQ(argumentOffset(l, 3, "k_cache", m, 10), 2 * 4 * 10 * 8 * 2);
  EXPECT_EQ(argumentOffset(l, 3, "v_cache", m, 10), 2 * 4 * 10 * 8 * 2);
  EXPECT_EQ(argumentOffset(l, 3, "buf:0", m, 10), 0);
  EXPECT_EQ(argumentOffset(l, 3, "logits", m, 10), 0);
  // The plan's fourth launch: the fourth slice of the kernel trace.
  EXPECT_EQ(argumentOffset(l, 3, "trace", m, 10), 3 * kTraceLaunchBytes);
}

} // namespace

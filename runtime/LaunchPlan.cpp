//===- LaunchPlan.cpp - what a call of the CUDA plan launches -------------===//

#include "runtime/LaunchPlan.h"

#include "runtime/Error.h"

#include <algorithm>
#include <cstdlib>

namespace decc::rt {

using namespace contract;

std::vector<PagedPart> pagedParts(const std::vector<int64_t> &positions,
                                  const std::vector<int32_t> &table,
                                  int64_t width, int64_t most,
                                  bool joinPrompts) {
  most = std::clamp<int64_t>(most, 1, kMaxSplits);
  int64_t n = int64_t(positions.size());
  // A row a token: sequences of several tokens may join the batched steps.
  joinPrompts = joinPrompts && int64_t(table.size()) != width;
  auto rowOf = [&](int64_t t) { return tableRow(table, width, t); };
  std::vector<PagedPart> parts;
  std::vector<int64_t> steps;
  // Where each token of `steps` came from a sequence of several.
  std::vector<bool> fromPrompt;
  std::vector<bool> done(size_t(n), false);
  for (int64_t first = 0; first < n; ++first) {
    if (done[size_t(first)])
      continue;
    std::vector<int64_t> mine;
    for (int64_t t = first; t < n; ++t)
      if (!done[size_t(t)] &&
          std::equal(rowOf(t), rowOf(t) + width, rowOf(first))) {
        mine.push_back(t);
        done[size_t(t)] = true;
      }
    if (mine.size() == 1) {
      steps.push_back(first);
      fromPrompt.push_back(false);
      continue;
    }
    std::sort(mine.begin(), mine.end(), [&](int64_t a, int64_t b) {
      return positions[size_t(a)] < positions[size_t(b)];
    });
    for (size_t i = 1; i < mine.size(); ++i)
      if (positions[size_t(mine[i])] != positions[size_t(mine[0])] + int64_t(i))
        throw Error("a paged forward call's tokens of one sequence are not "
                    "at consecutive positions");
    if (joinPrompts && int64_t(mine.size()) <= most) {
      steps.insert(steps.end(), mine.begin(), mine.end());
      fromPrompt.insert(fromPrompt.end(), mine.size(), true);
      continue;
    }
    parts.push_back({std::move(mine), false, false});
  }
  for (size_t from = 0; from < steps.size(); from += size_t(most)) {
    size_t to = std::min(steps.size(), from + size_t(most));
    parts.push_back(
        {std::vector<int64_t>(steps.begin() + from, steps.begin() + to), true,
         std::any_of(fromPrompt.begin() + from, fromPrompt.begin() + to,
                     [](bool b) { return b; })});
  }
  return parts;
}

int64_t batchBucket(int64_t tokens, int64_t most) {
  int64_t bucket = 1;
  while (bucket < tokens && bucket < 8)
    bucket *= 2;
  if (tokens > 8) {
    int64_t step = tokens > 64 ? 16 : 8;
    bucket = (tokens + step - 1) / step * step;
  }
  return std::max(tokens, std::min(bucket, most));
}

bool launchRuns(const Launch &launch, const Call &call, int64_t largePrefill) {
  bool prefill = call.tokens != 1, large = call.tokens >= largePrefill;
  if (call.batched && launch.skipInBatched)
    return false;
  switch (launch.when) {
  case LaunchWhen::Always:
    return true;
  case LaunchWhen::Decode:
    return !prefill;
  case LaunchWhen::Prefill:
    return prefill;
  case LaunchWhen::PrefillSmall:
    return prefill && !large;
  case LaunchWhen::PrefillLarge:
    return prefill && large;
  case LaunchWhen::Batched:
    return call.batched;
  }
  return false;
}

static int64_t scale(GridScale s, const Call &call, int64_t splitBlocks) {
  switch (s) {
  case GridScale::One:
    return 1;
  case GridScale::Tokens:
    return call.tokens;
  case GridScale::Rows:
    return call.rows;
  case GridScale::Splits:
    return std::clamp<int64_t>(splitBlocks, 1, kMaxSplits);
  }
  return 1;
}

std::array<int64_t, 2> gridBlocks(const Grid &g, const Call &call,
                                  int64_t splitBlocks, int64_t residentBlocks) {
  int64_t x = (g.units * scale(g.times, call, splitBlocks) + g.perBlock - 1) /
              g.perBlock;
  if (g.resident && residentBlocks > 0)
    x = std::min(x, residentBlocks);
  int64_t y =
      g.y * ((scale(g.yTimes, call, splitBlocks) + g.yTile - 1) / g.yTile);
  return {x, y};
}

int64_t residentGridBlocks(int64_t multiprocessors, int64_t perSM,
                           const char *perSMOverride) {
  if (perSMOverride && *perSMOverride) {
    long long n = std::atoll(perSMOverride);
    if (n <= 0)
      return 0;
    perSM = n;
  }
  return multiprocessors * std::max<int64_t>(1, perSM);
}

/// Splits of `keys` keys under `policy`: 1..kMaxSplits, a multiple of
/// the cluster.
static int64_t splitsOf(int64_t keys, SplitPolicy policy) {
  int64_t minKeys = std::max<int64_t>(1, policy.minKeys);
  int64_t cluster = std::clamp<int64_t>(policy.cluster, 1, kMaxClusterBlocks);
  int64_t most = std::clamp<int64_t>(policy.maxSplits, 1, kMaxSplits);
  most = std::max(cluster, most / cluster * cluster);
  int64_t wanted = (keys + minKeys - 1) / minKeys;
  wanted = (wanted + cluster - 1) / cluster * cluster;
  return std::clamp<int64_t>(wanted, cluster, most);
}

int64_t splitBlocks(SplitPolicy splits, int64_t context) {
  return splitsOf(context, splits);
}

std::array<int64_t, kStepWords> stepRecord(const Call &call, int64_t context,
                                           SplitPolicy policy) {
  int64_t keys = call.start + (call.batched ? 1 : call.tokens);
  int64_t splits = splitsOf(keys, policy);
  if (call.batched) {
    SplitPolicy share = policy;
    share.cluster = 1;
    share.maxSplits =
        std::max<int64_t>(1, std::min(policy.maxSplits, kMaxSplits) /
                                 std::max<int64_t>(1, call.tokens));
    splits = splitsOf(keys, share);
  }
  std::array<int64_t, kStepWords> step{};
  step[kStepTokens] = call.tokens;
  step[kStepStart] = call.start;
  step[kStepRows] = call.rows;
  step[kStepKeys] = keys;
  step[kStepContext] = context;
  step[kStepSplits] = splits;
  step[kStepTableStride] = call.tableStride;
  step[kStepJoined] = call.joined;
  return step;
}

int64_t argumentOffset(const Launch &launch, int64_t index,
                       const std::string &arg, const Manifest &m,
                       int64_t context) {
  if (arg == "trace")
    return index * kTraceLaunchBytes;
  if (arg == "arena")
    return launch.arenaOffset;
  if (arg == "k_cache" || arg == "v_cache")
    return cacheSlabOffset(m, launch.cacheLayer, context);
  return 0;
}

int64_t cacheSlabOffset(const Manifest &m, int64_t layer, int64_t context) {
  if (m.cache.layers <= 0)
    return 0;
  return layer * (m.cache.bytes(context) / (2 * m.cache.layers));
}

std::map<std::string, int64_t>
deviceAllocations(const Manifest &m, int64_t context, int64_t cachePositions) {
  int64_t pool = cachePositions ? cachePositions : context;
  std::map<std::string, int64_t> sizes = {
      {"arena", m.arenaBytes},
      {"step", kStepWords * 8},
      {"tokens", context * 8},
      {"positions", context * 8},
      {"k_cache", m.cache.bytes(pool) / 2},
      {"v_cache", m.cache.bytes(pool) / 2},
      {"state", kStateWords * 8},
      {"logits", context * m.vocab * 4},
      // Each logits row's greedy token (the plan's logits_argmax).
      {"argmax", context * 8},
      // One sequence's row of the block table; with a paged pool, a row
      // for each token of a batched step (at most kMaxSplits).
      {"block_table",
       cacheBlocksFor(pool) * 4 * (cachePositions ? kMaxSplits : 1)}};
  if (!m.plan)
    return sizes;
  // The image rows the embedding reads past the table (a prompt holds at
  // most a context of them).
  if (m.vision)
    sizes["image"] = context * m.vision->hidden * 4;
  for (const PlanBuffer &b : m.plan->buffers)
    sizes[b.name] = b.bytes(context);
  // A build with kernel traces (decc --gpu-trace): a slice a launch.
  if (std::any_of(m.plan->launches.begin(), m.plan->launches.end(),
                  [](const Launch &l) {
                    return std::find(l.args.begin(), l.args.end(), "trace") !=
                           l.args.end();
                  }))
    sizes["trace"] = int64_t(m.plan->launches.size()) * kTraceLaunchBytes;
  return sizes;
}

} // namespace decc::rt

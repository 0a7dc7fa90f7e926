//===- LaunchPlan.h - what a call of the CUDA plan launches -----*- C++ -*-===//
//
// The arithmetic of running a launch plan, apart from the driver calls so
// that it is tested without a GPU: which launches a call makes, their grids,
// the step record, and the device memory the plan needs.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_LAUNCHPLAN_H
#define DECC_RUNTIME_LAUNCHPLAN_H

#include "contract/Manifest.h"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace decc::rt {

/// One forward call: `tokens` tokens from position `start`, logits for the
/// last `rows`. A `batched` call is a decode step of several sequences: a
/// token each, each at its own position through its own row of the block
/// table (`tableStride` entries apart), `start` the latest position; its
/// tokens are at most kMaxSplits (its attention's partials, stepRecord).
struct Call {
  int64_t tokens = 1, start = 0, rows = 1;
  bool batched = false;
  int64_t tableStride = 0;
  /// A batched step holds several tokens of one sequence (kStepJoined).
  bool joined = false;
  bool isDecode() const { return tokens == 1 && rows == 1; }
};

/// Token t's row of `table` (`width` blocks a row; one row: every token's).
inline std::vector<int32_t>::const_iterator
tableRow(const std::vector<int32_t> &table, int64_t width, int64_t t) {
  return table.begin() + (int64_t(table.size()) == width ? 0 : t) * width;
}

/// A paged call's tokens as the CUDA plan runs them: a sequence of several
/// tokens (a prompt, or a part of one) as a call of its own, and the
/// sequences of one token (a decode step each) together as `batched`
/// steps of at most `most` tokens (at most kMaxSplits: the attention's
/// partials, stepRecord; and no more than the device buffers' context).
/// `tokens` are indices into the call, a sequence's in position order; a
/// sequence is the tokens of one row of `table` (`width` blocks a row; one
/// row for the whole call: one sequence). Throws an Error when a
/// sequence's positions are not consecutive.
///
/// With `joinPrompts`, where the table has a row a token, a sequence of at
/// most `most` tokens (a short prompt, or a part of one) joins the batched
/// steps too, in position order (`joined`): each of its tokens a query of
/// the batched decode attention, whose keys stop at the token's own
/// position, every key of the step appended before any token attends.
/// The CUDA backend asks for it (DECC_BATCHED_PROMPTS=0: not); measured in
/// docs/PERF.md, thirty-second session.
struct PagedPart {
  std::vector<int64_t> tokens;
  bool batched = false;
  /// A batched step holding several tokens of one sequence.
  bool joined = false;
};
std::vector<PagedPart> pagedParts(const std::vector<int64_t> &positions,
                                  const std::vector<int32_t> &table,
                                  int64_t width,
                                  int64_t most = contract::kMaxSplits,
                                  bool joinPrompts = false);

/// The tokens a batched step of `tokens` sequences runs as (at most
/// `most`): 1, 2, 4, 8, then multiples of 8 to 64 and of 16 after. Each
/// size is a CUDA graph captured on its first step; a server whose batch
/// changes at almost every step replays these few instead of capturing
/// one a size (the extra tokens are copies of the last, at most an eighth
/// more tokens where the weights are read once for all).
int64_t batchBucket(int64_t tokens, int64_t most);

/// Whether `launch` runs in `call`; prompts of `largePrefill` tokens or more
/// take the prefill_large launches.
bool launchRuns(const contract::Launch &launch, const Call &call,
                int64_t largePrefill);

/// Blocks in x and y of `grid` for `call` (0 in either: nothing to do); a
/// grid scaled by the splits has `splitBlocks` of them (at most kMaxSplits);
/// a resident grid at most `residentBlocks` in x when that is positive.
std::array<int64_t, 2> gridBlocks(const contract::Grid &grid, const Call &call,
                                  int64_t splitBlocks = contract::kMaxSplits,
                                  int64_t residentBlocks = 0);

/// Blocks a resident grid (a kernel that strides over its units: the
/// decode GEMVs) is launched with on a card of `multiprocessors` SMs:
/// `perSM` an SM, the most the occupancy calculator says fit at once, so
/// that each warp goes on to its next unit instead of a block waiting for
/// a second wave's slot. `perSMOverride` (DECC_GEMV_BLOCKS_PER_SM; null or
/// empty: none) sets N an SM, fewer to leave the next kernel's blocks room
/// to load their weights before their wait (measured 2-4x slower on an
/// H200: docs/PERF.md); 0 (or anything not a positive number) returns 0:
/// no cap, a block for every unit as if the grid did not stride.
int64_t residentGridBlocks(int64_t multiprocessors, int64_t perSM,
                           const char *perSMOverride = nullptr);

/// How a decode step's keys are split over blocks: each split has at least
/// `minKeys` keys, and there are at most `maxSplits` (itself at most
/// kMaxSplits) of them. With clusters of `cluster` blocks (the decode
/// attention merges a cluster's splits in distributed shared memory), the
/// splits are a whole number of clusters, at least one.
struct SplitPolicy {
  int64_t minKeys = 1, maxSplits = contract::kMaxSplits, cluster = 1;
};

/// The most splits any step of a cache of `context` positions has: the
/// height of the decode attention's grid, whose blocks past a step's splits
/// return at once. Sized by the policy, not kMaxSplits: Phi-3's and
/// MPT-7B's 32 kv heads x 128 were 4096 blocks a layer, at most 528 of
/// them with work on an H200, every one dispatched before the kernel could
/// end.
int64_t splitBlocks(SplitPolicy splits, int64_t context);

/// The step record the kernels read. A batched step's splits are its
/// share of one wave, at most kMaxSplits / tokens, whole blocks of keys
/// without clusters.
std::array<int64_t, contract::kStepWords>
stepRecord(const Call &call, int64_t context, SplitPolicy splits);

/// Bytes past the start of the allocation `arg` names where that argument
/// of `launch`, the plan's `index`-th, points: the launch's layer of the
/// weights ("arena") or of the K and V caches ("k_cache", "v_cache"; a
/// cache of `context` positions), its slice of the kernel trace ("trace");
/// 0 for every other argument.
int64_t argumentOffset(const contract::Launch &launch, int64_t index,
                       const std::string &arg, const contract::Manifest &m,
                       int64_t context);

/// Bytes past the start of k_cache (or v_cache) where `layer`'s slab
/// begins, for a cache of `context` positions.
int64_t cacheSlabOffset(const contract::Manifest &m, int64_t layer,
                        int64_t context);

/// Bytes of every device allocation the plan binds by name (the arena, the
/// step record, the inputs, the caches, the RoPE state, the logits, the
/// plan's buffers and, when its kernels bind one, the kernel trace), for
/// calls of at most `context` tokens and a cache of `cachePositions`
/// (default: `context`; the paged pool), whose block table holds one
/// sequence's row, or with a pool a row for each token of a batched step.
std::map<std::string, int64_t> deviceAllocations(const contract::Manifest &m,
                                                 int64_t context,
                                                 int64_t cachePositions = 0);

} // namespace decc::rt

#endif // DECC_RUNTIME_LAUNCHPLAN_H

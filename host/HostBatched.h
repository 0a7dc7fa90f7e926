//===- HostBatched.h - one generation, batched beside others ----*- C++ -*-===//
//
// `--batch-beside N`: the prompt's answer generated the way --serve
// generates it (rt::BatchEngine over the paged KV cache), beside N other
// sequences in every decode step: the batched kernels, the block tables
// and the scheduling on a real checkpoint, whose answer and logits must
// be those of a generation alone (the goldens check them so).
//
//===----------------------------------------------------------------------===//

#ifndef DECC_HOST_HOSTBATCHED_H
#define DECC_HOST_HOSTBATCHED_H

#include "runtime/Model.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace decc::host {

/// Model::generate's contract (greedy or sampled, stops after a stop id or
/// maxNewTokens, `onToken` sees each token and its logits), decoded in
/// batches with `companions` other sequences: the prompt rotated by k and
/// cut k tokens shorter (at least one token), generating as many tokens
/// greedily, so that the batch holds sequences of different lengths.
/// `stats` (if given) counts the prompt's sequence: its prompt up to its
/// first token, then its other tokens, each step shared with the others.
std::vector<int64_t>
generateBeside(rt::Model &model, const std::vector<int64_t> &prompt,
               int64_t maxNewTokens, const rt::SamplingOptions &sampling,
               const std::vector<int64_t> &stopIds,
               const std::function<void(int64_t, const float *)> &onToken,
               int64_t companions, int64_t maxStepTokens,
               rt::GenerationStats *stats = nullptr);

} // namespace decc::host

#endif // DECC_HOST_HOSTBATCHED_H

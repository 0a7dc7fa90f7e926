//===- HostBenchmark.h - prefill and decode timings of a model --*- C++ -*-===//
//
// `--benchmark-prefill` / `--benchmark-decode`: one process, the weights
// loaded once, then each prompt length timed (prefill) and each context
// length decoded from (decode), the lines bench/gpu.sh and bench/cpu.sh
// read.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_HOST_HOSTBENCHMARK_H
#define DECC_HOST_HOSTBENCHMARK_H

#include "runtime/Model.h"

#include <cstdint>
#include <vector>

namespace decc::host {

struct BenchmarkSweep {
  std::vector<int64_t> prefillLengths, decodeContexts, batchSizes;
  int64_t decodeSteps = 256;
  /// The KV cache it needs: the longest prompt, or context + steps.
  int64_t contextNeeded() const;
  /// A batched step's sequences start after a prompt of this length.
  int64_t batchContext() const {
    return decodeContexts.empty() ? 128 : decodeContexts.front();
  }
  /// The paged cache the batched steps need (0: none asked for).
  int64_t batchPositions() const;
};

/// The prompt of a benchmark: `length` ids (i * 7919 + 13) % vocab.
std::vector<int64_t> benchmarkPrompt(int64_t length, int64_t vocab);

/// Prints a line per measurement on stderr: the median prefill time of each
/// length over three runs, and for each context the decode time per token
/// of `decodeSteps` steps after a prompt of that length, with the bytes a
/// step reads (weights and, on average over the steps, the KV cache); for
/// each batch size the time of a batched step and the tokens a second.
/// Without `print` (a tensor-parallel rank other than 0) it runs the same
/// steps silently.
void runBenchmarkSweep(rt::Model &model, const BenchmarkSweep &sweep,
                       bool print = true);

} // namespace decc::host

#endif // DECC_HOST_HOSTBENCHMARK_H

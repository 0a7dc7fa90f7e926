//===- HostBenchmark.cpp - prefill and decode timings of a model ----------===//

#include "host/HostBenchmark.h"

#include <algorithm>
#include <cstdio>

namespace decc::host {

using namespace decc::rt;

int64_t BenchmarkSweep::contextNeeded() const {
  int64_t needed = 1;
  for (int64_t l : prefillLengths)
    needed = std::max(needed, l);
  for (int64_t c : decodeContexts)
    needed = std::max(needed, c + decodeSteps + 1);
  return needed;
}

std::vector<int64_t> benchmarkPrompt(int64_t length, int64_t vocab) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < length; ++i)
    ids.push_back((i * 7919 + 13) % vocab);
  return ids;
}

void runBenchmarkSweep(Model &model, const BenchmarkSweep &sweep) {
  const Manifest &m = model.manifest();
  Sampler greedy(SamplingOptions{});
  auto discard = [](int64_t, const float *) {};
  for (int64_t length : sweep.prefillLengths) {
    std::vector<int64_t> prompt = benchmarkPrompt(length, m.vocab);
    // The first run loads the kernels; three timed ones, the median kept.
    model.generate(prompt, 1, greedy, {}, discard);
    std::vector<double> runs;
    for (int r = 0; r < 3; ++r) {
      GenerationStats stats;
      model.generate(prompt, 1, greedy, {}, discard, &stats);
      runs.push_back(stats.prefillSeconds);
    }
    std::sort(runs.begin(), runs.end());
    std::fprintf(stderr,
                 "benchmark: prefill %lld tokens: %.3f ms (median of 3), "
                 "%.1f tokens/s\n",
                 (long long)length, runs[1] * 1e3, length / runs[1]);
  }
  for (int64_t context : sweep.decodeContexts) {
    std::vector<int64_t> prompt = benchmarkPrompt(context, m.vocab);
    model.generate(prompt, 2, greedy, {}, discard); // captures the graph
    GenerationStats stats;
    model.generate(prompt, sweep.decodeSteps + 1, greedy, {}, discard, &stats);
    double perToken = stats.decodeSeconds / double(stats.decodeTokens);
    // Step s (from 1) attends over context + s keys.
    double keys = double(context) + double(sweep.decodeSteps + 1) / 2;
    double kvBytes = double(m.cache.bytes(1)) * keys;
    double weightBytes = double(m.streamedBytesPerToken);
    std::fprintf(stderr,
                 "benchmark: decode after %lld tokens: %lld steps, %.4f "
                 "ms/token; weights %.1f MiB + KV cache %.1f MiB a step: "
                 "%.1f GB/s\n",
                 (long long)context, (long long)stats.decodeTokens,
                 perToken * 1e3, weightBytes / 1048576.0, kvBytes / 1048576.0,
                 (weightBytes + kvBytes) / perToken / 1e9);
  }
}

} // namespace decc::host

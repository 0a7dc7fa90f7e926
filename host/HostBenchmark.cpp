//===- HostBenchmark.cpp - prefill and decode timings of a model ----------===//

#include "host/HostBenchmark.h"

#include "runtime/Error.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>

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

namespace {

double now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

/// `batch` sequences after a prompt of `context` tokens each, advanced
/// `steps` times in one paged call a step, after one untimed step.
void benchmarkBatch(Model &model, int64_t batch, int64_t context, int64_t steps,
                    bool print) {
  const Manifest &m = model.manifest();
  int64_t width = contract::cacheBlocksFor(context + steps + 1);
  if (batch * width > model.cacheBlocks())
    throw Error("--benchmark-batch: the paged KV cache holds " +
                std::to_string(model.cacheBlocks()) + " blocks, " +
                std::to_string(batch * width) + " needed");
  std::vector<int32_t> table(batch * width);
  std::iota(table.begin(), table.end(), 0);
  std::vector<int64_t> state(contract::kStateWords * batch, 0);
  std::vector<float> logits(batch * m.vocab);
  std::vector<int64_t> tokens(batch), positions(batch);
  for (int64_t s = 0; s < batch; ++s) {
    // Each sequence a prompt of its own (the ids shifted by s).
    std::vector<int64_t> prompt = benchmarkPrompt(context + s, m.vocab);
    prompt.erase(prompt.begin(), prompt.begin() + s);
    std::vector<int64_t> at(context);
    std::iota(at.begin(), at.end(), 0);
    std::vector<int32_t> row(table.begin() + s * width,
                             table.begin() + (s + 1) * width);
    model.forwardPaged(
        {prompt, at, row, width, 1, &state[s * contract::kStateWords]},
        logits.data());
    tokens[s] = prompt.back();
    positions[s] = context;
  }
  double start = 0;
  for (int64_t i = 0; i <= steps; ++i) {
    if (i == 1)
      start = now();
    model.forwardPaged({tokens, positions, table, width, batch, state.data()},
                       logits.data());
    for (int64_t s = 0; s < batch; ++s) {
      tokens[s] = (tokens[s] * 31 + 7) % m.vocab;
      ++positions[s];
    }
  }
  double perStep = (now() - start) / double(steps);
  if (print)
    std::fprintf(stderr,
                 "benchmark: batched decode of %lld sequences after %lld "
                 "tokens: %lld steps, %.4f ms/step, %.1f tokens/s\n",
                 (long long)batch, (long long)context, (long long)steps,
                 perStep * 1e3, double(batch) / perStep);
}

} // namespace

int64_t BenchmarkSweep::batchPositions() const {
  int64_t most = 0;
  for (int64_t b : batchSizes)
    most = std::max(most, b);
  return most * contract::cacheBlocksFor(batchContext() + decodeSteps + 1) *
         contract::kCacheBlock;
}

std::vector<int64_t> benchmarkPrompt(int64_t length, int64_t vocab) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < length; ++i)
    ids.push_back((i * 7919 + 13) % vocab);
  return ids;
}

void runBenchmarkSweep(Model &model, const BenchmarkSweep &sweep, bool print) {
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
    if (print)
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
    if (print)
      std::fprintf(stderr,
                   "benchmark: decode after %lld tokens: %lld steps, %.4f "
                   "ms/token; weights %.1f MiB + KV cache %.1f MiB a step: "
                   "%.1f GB/s\n",
                   (long long)context, (long long)stats.decodeTokens,
                   perToken * 1e3, weightBytes / 1048576.0, kvBytes / 1048576.0,
                   (weightBytes + kvBytes) / perToken / 1e9);
  }
  for (int64_t batch : sweep.batchSizes)
    benchmarkBatch(model, batch, sweep.batchContext(), sweep.decodeSteps,
                   print);
}

} // namespace decc::host

//===- HostBatched.cpp - one generation through the batched decoder -------===//

#include "host/HostBatched.h"

#include "runtime/BatchEngine.h"
#include "runtime/Error.h"

#include <algorithm>
#include <chrono>

namespace decc::host {

std::vector<int64_t> generateBeside(
    rt::Model &model, const std::vector<int64_t> &prompt, int64_t maxNewTokens,
    const rt::SamplingOptions &sampling, const std::vector<int64_t> &stopIds,
    const std::function<void(int64_t, const float *)> &onToken,
    int64_t companions, int64_t maxStepTokens, rt::GenerationStats *stats) {
  model.checkPrompt(prompt, maxNewTokens);
  std::vector<int64_t> generated;
  if (maxNewTokens <= 0)
    return generated;
  rt::BatchEngine engine(model);
  engine.maxStepTokens = maxStepTokens;
  std::string failure;
  auto failed = [&](const std::string &error) {
    if (!error.empty() && failure.empty())
      failure = error;
  };
  using Clock = std::chrono::steady_clock;
  Clock::time_point started = Clock::now(), first, last;
  rt::SequenceHooks main;
  main.take = [&](int64_t token, const float *logits) {
    (generated.empty() ? first : last) = Clock::now();
    generated.push_back(token);
    if (onToken)
      onToken(token, logits);
    return int64_t(generated.size()) < maxNewTokens &&
           std::find(stopIds.begin(), stopIds.end(), token) == stopIds.end();
  };
  main.ended = failed;
  engine.start(prompt, maxNewTokens, sampling, main);
  int64_t n = int64_t(prompt.size());
  for (int64_t k = 1; k <= companions; ++k) {
    std::vector<int64_t> other(prompt.begin() + k % n, prompt.end());
    other.insert(other.end(), prompt.begin(), prompt.begin() + k % n);
    other.resize(std::max<int64_t>(1, n - k));
    if (!engine.fitsNow(int64_t(other.size()), maxNewTokens))
      throw rt::Error("--batch-beside: the paged KV cache has no room for " +
                      std::to_string(k) + " companions");
    auto left = std::make_shared<int64_t>(maxNewTokens);
    rt::SequenceHooks hooks;
    hooks.take = [left](int64_t, const float *) { return --*left > 0; };
    hooks.ended = failed;
    engine.start(other, maxNewTokens, rt::SamplingOptions{}, hooks);
  }
  while (engine.running())
    engine.step();
  if (!failure.empty())
    throw rt::Error(failure);
  if (stats && !generated.empty()) {
    auto seconds = [](Clock::duration d) {
      return std::chrono::duration<double>(d).count();
    };
    stats->prefillTokens = int64_t(prompt.size());
    stats->prefillSeconds = seconds(first - started);
    stats->decodeTokens = int64_t(generated.size()) - 1;
    stats->decodeSeconds = stats->decodeTokens ? seconds(last - first) : 0.0;
  }
  return generated;
}

} // namespace decc::host

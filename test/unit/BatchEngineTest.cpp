//===- BatchEngineTest.cpp - the engine's calls, with a backend of its own
//-===//
//
// The batch engine against a backend that records each paged call: whether
// a step asks the backend for greedy tokens or for logits (a GPU's greedy
// steps copy back a token a sequence), prompts in parts, and the answers,
// which a GPU-less CI could not otherwise see the engine's GPU mode give.
//
//===----------------------------------------------------------------------===//

#include "runtime/BatchEngine.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

using namespace decc::rt;
namespace contract = decc::contract;

namespace {

constexpr int64_t kVocab = 32;

/// The model of this test: the token after t is t + 1 (mod the vocabulary).
int64_t nextOf(int64_t token) { return (token + 1) % kVocab; }

struct Calls {
  int64_t withLogits = 0, withGreedy = 0, withRows = 0;
};

class RecordingBackend : public Backend {
public:
  RecordingBackend(bool onDevice, Calls &calls)
      : onDevice(onDevice), calls(calls) {}
  uint8_t *arena() override { return nullptr; }
  void reset() override {}
  void forward(const std::vector<int64_t> &, int64_t, int64_t,
               float *) override {
    ADD_FAILURE() << "the batch engine calls forwardPaged only";
  }
  int64_t cacheBlocks() const override { return 64; }
  bool greedyOnDevice() const override { return onDevice; }
  void forwardPaged(const PagedCall &call, float *logits) override {
    int64_t n = int64_t(call.tokens.size());
    calls.withRows += call.rows > 0;
    calls.withLogits += logits != nullptr;
    calls.withGreedy += call.greedy != nullptr;
    if (!onDevice)
      EXPECT_EQ(call.greedy, nullptr) << "Model finds the tokens itself";
    for (int64_t r = 0; r < call.rows; ++r) {
      int64_t next = nextOf(call.tokens[size_t(n - call.rows + r)]);
      if (logits)
        for (int64_t v = 0; v < kVocab; ++v)
          logits[r * kVocab + v] = v == next ? 100.0f : 0.0f;
      if (call.greedy)
        call.greedy[r] = next;
    }
  }

private:
  bool onDevice;
  Calls &calls;
};

/// A model of this test's vocabulary over a RecordingBackend.
std::unique_ptr<Model> recordedModel(bool onDevice, Calls &calls) {
  contract::Manifest m;
  m.vocab = kVocab;
  m.cache = {1, 1, 4, contract::DType::F32};
  return std::make_unique<Model>(m, 64, [&](const contract::Manifest &) {
    return std::make_unique<RecordingBackend>(onDevice, calls);
  });
}

/// Runs `sequences` prompts of 5 tokens (the first token 3 a sequence
/// apart) for 6 tokens each; each sequence's tokens, and the
/// logits pointers its hook was handed (null or not).
struct Answers {
  std::vector<std::vector<int64_t>> answers;
  std::vector<int64_t> logitsSeen;
};
Answers generate(Model &model, int64_t sequences, float temperature,
                 bool wantsLogits, int64_t stepTokens) {
  BatchEngine engine(model);
  engine.maxStepTokens = stepTokens;
  Answers run;
  run.answers.resize(size_t(sequences));
  run.logitsSeen.resize(size_t(sequences));
  for (int64_t s = 0; s < sequences; ++s) {
    std::vector<int64_t> prompt;
    for (int64_t i = 0; i < 5; ++i)
      prompt.push_back((3 * s + i) % kVocab);
    SequenceHooks hooks;
    hooks.take = [&run, s](int64_t token, const float *logits) {
      run.answers[size_t(s)].push_back(token);
      run.logitsSeen[size_t(s)] += logits != nullptr;
      // The caller ends a sequence (the server's answer, at max_tokens).
      return run.answers[size_t(s)].size() < 6;
    };
    hooks.ended = [](const std::string &error) { EXPECT_EQ(error, ""); };
    hooks.wantsLogits = wantsLogits;
    engine.start(prompt, 6, {temperature, 0, 1, 7}, std::move(hooks));
  }
  while (engine.running())
    engine.step();
  return run;
}

void expectChains(const Answers &run) {
  for (size_t s = 0; s < run.answers.size(); ++s) {
    int64_t last = (3 * int64_t(s) + 4) % kVocab;
    ASSERT_EQ(run.answers[s].size(), 6u) << "sequence " << s;
    for (int64_t token : run.answers[s]) {
      EXPECT_EQ(token, nextOf(last)) << "sequence " << s;
      last = token;
    }
  }
}

} // namespace

TEST(BatchEngine, GreedyStepsOnADeviceCopyBackTokensNotLogits) {
  Calls calls;
  std::unique_ptr<Model> model = recordedModel(true, calls);
  // Prompts in parts of 3 tokens: steps whose prompt parts end before
  // their last token have no logits rows at all.
  Answers run = generate(*model, 4, 0, /*wantsLogits=*/false, 3);
  expectChains(run);
  EXPECT_GT(calls.withRows, 0);
  EXPECT_EQ(calls.withLogits, 0);
  EXPECT_EQ(calls.withGreedy, calls.withRows);
  for (int64_t seen : run.logitsSeen)
    EXPECT_EQ(seen, 0);
}

TEST(BatchEngine, ABackendWithoutDeviceTokensGivesThemFromItsLogits) {
  Calls calls;
  std::unique_ptr<Model> model = recordedModel(false, calls);
  Answers run = generate(*model, 4, 0, /*wantsLogits=*/false, 3);
  expectChains(run);
  EXPECT_EQ(calls.withGreedy, 0);
  EXPECT_EQ(calls.withLogits, calls.withRows);
}

TEST(BatchEngine, HooksThatReadLogitsGetThem) {
  for (bool onDevice : {true, false}) {
    Calls calls;
    std::unique_ptr<Model> model = recordedModel(onDevice, calls);
    Answers run = generate(*model, 3, 0, /*wantsLogits=*/true, 256);
    expectChains(run);
    EXPECT_EQ(calls.withGreedy, 0);
    for (int64_t seen : run.logitsSeen)
      EXPECT_EQ(seen, 6);
    // Sampling at a temperature takes the logits too (the model's next
    // token has all the probability, so the answers are the same).
    Calls sampled;
    std::unique_ptr<Model> other = recordedModel(onDevice, sampled);
    expectChains(generate(*other, 3, 0.7f, /*wantsLogits=*/false, 256));
    EXPECT_EQ(sampled.withGreedy, 0);
    EXPECT_EQ(sampled.withLogits, sampled.withRows);
  }
}

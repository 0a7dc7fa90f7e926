//===- ServeScheduler.cpp - --serve's model thread ------------------------===//

#include "host/ServeScheduler.h"

#include "runtime/Error.h"

#include <algorithm>
#include <cstdio>

namespace decc::host {

/// A request the model thread is answering: its tokens, its sampler and
/// the text it has handed out. Stop strings are cut here, with the tail
/// of the text that could still begin one held back.
struct ServeScheduler::Sequence {
  Sequence(std::shared_ptr<Job> job, const rt::Tokenizer &tokenizer)
      : job(std::move(job)), sampler(this->job->request.sampling),
        stream(tokenizer) {
    for (const std::string &s : this->job->request.stop)
      holdBack = std::max(holdBack, s.size() - 1);
  }

  std::shared_ptr<Job> job;
  /// The prompt and the tokens sampled after it; all but the last are in
  /// the cache once the prompt is.
  std::vector<int64_t> tokens;
  int64_t maxTokens = 0, sampled = 0;
  /// Positions of `tokens` the cache holds.
  int64_t cached = 0;
  /// The paged cache's blocks, enough for the prompt and maxTokens.
  std::vector<int32_t> blocks;
  std::vector<int64_t> state = std::vector<int64_t>(contract::kStateWords, 0);
  rt::Sampler sampler;
  rt::TextStream stream;
  std::string text, finishReason = "length";
  size_t handed = 0, holdBack = 0;
  /// Tokens of the answer (an end-of-sequence token is not one).
  int64_t count = 0;
  /// Ended by a stop string or by the client leaving: the text the
  /// tokenizer still holds back is not flushed.
  bool cut = false;

  /// Hands out text up to `end`, moved back to a character boundary.
  void handOut(size_t end) {
    while (end > handed && end < text.size() &&
           (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
      --end;
    if (end <= handed)
      return;
    std::string piece = text.substr(handed, end - handed);
    handed = end;
    job->update([&] { job->pieces.push_back(std::move(piece)); });
  }
  /// Cuts the text at the first stop string; true when one was found.
  bool cutAtStop() {
    size_t at = std::string::npos;
    for (const std::string &s : job->request.stop)
      at = std::min(at, text.find(s, handed));
    if (at == std::string::npos)
      return false;
    text.resize(at);
    return true;
  }
  /// A sampled token: false when the answer ends with it (then end()).
  bool take(int64_t token, const std::vector<int64_t> &stopIds) {
    ++sampled;
    if (job->cancelled) {
      cut = true;
      return false;
    }
    if (std::find(stopIds.begin(), stopIds.end(), token) != stopIds.end()) {
      finishReason = "stop";
      return false;
    }
    ++count;
    text += stream.push(token);
    if (cutAtStop()) {
      finishReason = "stop";
      cut = true;
      return false;
    }
    handOut(text.size() > holdBack ? text.size() - holdBack : 0);
    if (sampled == maxTokens)
      return false;
    tokens.push_back(token);
    return true;
  }
  /// The rest of the text out, the job done.
  void end() {
    if (!cut) {
      text += stream.flush();
      if (cutAtStop())
        finishReason = "stop";
    }
    handOut(text.size());
    job->update([&] {
      job->finishReason = finishReason;
      job->completionTokens = count;
      job->done = true;
    });
  }
};

namespace {

/// Thrown from Model::generate's token callback to end a generation.
struct EndGeneration {};

int64_t blocksFor(int64_t positions) {
  return (positions + contract::kCacheBlock - 1) / contract::kCacheBlock;
}

} // namespace

ServeScheduler::ServeScheduler(ServedModel &served, const ServeOptions &options)
    : served(served), maxQueue(options.maxQueue),
      maxBatch(served.model.cacheBlocks() ? options.maxBatch : 1) {
  freeBlocks.resize(served.model.cacheBlocks());
  // Handed out from the back: the first blocks first.
  for (size_t i = 0; i < freeBlocks.size(); ++i)
    freeBlocks[i] = int32_t(freeBlocks.size() - 1 - i);
}

ServeScheduler::~ServeScheduler() = default;

bool ServeScheduler::submit(const std::shared_ptr<Job> &job) {
  {
    std::lock_guard<std::mutex> lock(queueMutex);
    if (int64_t(queue.size()) >= maxQueue)
      return false;
    queue.push_back(job);
  }
  queueReady.notify_one();
  return true;
}

ServeScheduler::Metrics ServeScheduler::metrics() {
  int64_t waiting;
  {
    std::lock_guard<std::mutex> lock(queueMutex);
    waiting = int64_t(queue.size());
  }
  return {runningCount, waiting, largestBatch, decodeSteps, generatedTokens};
}

bool ServeScheduler::withdraw(const std::shared_ptr<Job> &job) {
  std::lock_guard<std::mutex> lock(queueMutex);
  auto it = std::find(queue.begin(), queue.end(), job);
  if (it == queue.end())
    return false;
  queue.erase(it);
  return true;
}

std::unique_ptr<ServeScheduler::Sequence>
ServeScheduler::prepare(const std::shared_ptr<Job> &job) {
  const Completion &c = job->request;
  auto s = std::make_unique<Sequence>(job, served.tokenizer);
  try {
    if (c.chat && !served.chat)
      throw BadRequest{"this model has no chat template (tokenizer_config."
                       "json's chat_template); use /v1/completions",
                       "messages"};
    s->tokens = served.encode(
        c.chat ? served.chat->render(c.messages) : c.prompt, c.chat);
    int64_t context = served.model.maxContext();
    int64_t n = int64_t(s->tokens.size());
    if (n == 0)
      throw BadRequest{"the prompt is empty", c.chat ? "messages" : "prompt"};
    if (n >= context)
      throw BadRequest{"the prompt has " + std::to_string(n) +
                           " tokens; the context holds " +
                           std::to_string(context),
                       c.chat ? "messages" : "prompt",
                       "context_length_exceeded"};
    // The last token is never fed back, so an answer may end at the
    // context's last position + 1.
    int64_t room = context - n + 1;
    s->maxTokens = c.maxTokens ? *c.maxTokens : c.chat ? room : 16;
    if (s->maxTokens > room)
      throw BadRequest{"the prompt (" + std::to_string(n) +
                           " tokens) and max_tokens " +
                           std::to_string(s->maxTokens) + " need " +
                           std::to_string(n + s->maxTokens - 1) +
                           " positions; the context holds " +
                           std::to_string(context),
                       "max_tokens", "context_length_exceeded"};
  } catch (const BadRequest &e) {
    job->update([&] {
      job->failure = e;
      job->started = job->done = true;
    });
    return nullptr;
  }
  return s;
}

void ServeScheduler::runAlone(const std::shared_ptr<Job> &job) {
  std::unique_ptr<Sequence> s = prepare(job);
  if (!s)
    return;
  job->update([&] {
    job->started = true;
    job->promptTokens = int64_t(s->tokens.size());
  });
  try {
    if (s->maxTokens > 0)
      served.model.generate(s->tokens, s->maxTokens, s->sampler,
                            served.stopIds, [&](int64_t token, const float *) {
                              if (!s->take(token, served.stopIds))
                                throw EndGeneration{};
                            });
  } catch (const EndGeneration &) {
  } catch (const rt::Error &e) {
    std::fprintf(stderr, "decc: serve: %s\n", e.what());
    s->finishReason = "error";
  }
  s->end();
}

void ServeScheduler::finish(Sequence &s) {
  s.end();
  freeBlocks.insert(freeBlocks.end(), s.blocks.rbegin(), s.blocks.rend());
  s.blocks.clear();
}

void ServeScheduler::prefill(Sequence &s, int64_t start) {
  std::vector<int64_t> tokens(s.tokens.begin() + start, s.tokens.end());
  std::vector<int64_t> positions(tokens.size());
  for (size_t i = 0; i < positions.size(); ++i)
    positions[i] = start + int64_t(i);
  int64_t vocab = served.model.manifest().vocab;
  logits.resize(vocab);
  served.model.forwardPaged({tokens, positions, s.blocks,
                             int64_t(s.blocks.size()), 1, s.state.data()},
                            logits.data());
  s.cached = int64_t(s.tokens.size());
  if (!s.take(s.sampler.next(logits.data(), vocab), served.stopIds))
    finish(s);
}

void ServeScheduler::admit() {
  while (int64_t(running.size()) < maxBatch) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(queueMutex);
      if (running.empty())
        queueReady.wait(lock, [&] { return !queue.empty(); });
      if (queue.empty())
        return;
      job = queue.front();
    }
    // Tokenized with the queue unlocked; the job is taken only if no
    // HTTP thread withdrew it meanwhile.
    std::unique_ptr<Sequence> s = prepare(job);
    int64_t needed =
        s ? blocksFor(int64_t(s->tokens.size()) + s->maxTokens - 1) : 0;
    // A running sequence's blocks come back when it ends; with none
    // running every block is free, and the pool holds a whole context.
    if (s && needed > int64_t(freeBlocks.size()) && !running.empty())
      return;
    {
      std::lock_guard<std::mutex> lock(queueMutex);
      auto it = std::find(queue.begin(), queue.end(), job);
      if (it == queue.end())
        continue;
      queue.erase(it);
    }
    if (!s)
      continue;
    job->update([&] {
      job->started = true;
      job->promptTokens = int64_t(s->tokens.size());
    });
    if (s->maxTokens == 0) {
      s->end();
      continue;
    }
    s->blocks.assign(freeBlocks.end() - needed, freeBlocks.end());
    std::reverse(s->blocks.begin(), s->blocks.end());
    freeBlocks.resize(freeBlocks.size() - needed);
    try {
      prefill(*s, 0);
    } catch (const rt::Error &e) {
      std::fprintf(stderr, "decc: serve: %s\n", e.what());
      s->finishReason = "error";
      finish(*s);
    }
    if (!s->blocks.empty())
      running.push_back(std::move(s));
    runningCount = int64_t(running.size());
  }
}

void ServeScheduler::step() {
  const rt::Manifest &m = served.model.manifest();
  int64_t vocab = m.vocab;
  // Sequences past the length from which the rotary tables depend on the
  // call (rt::Manifest::batchedLength) go one at a time, with their own
  // RoPE state; Phi-3's re-encode is a prompt of its own.
  std::vector<Sequence *> batch, alone;
  for (auto &s : running) {
    if (s->job->cancelled) {
      s->cut = true;
      finish(*s);
      continue;
    }
    int64_t length = int64_t(s->tokens.size());
    if (m.reencodeAtLength && length == m.reencodeAtLength) {
      try {
        prefill(*s, 0);
      } catch (const rt::Error &e) {
        std::fprintf(stderr, "decc: serve: %s\n", e.what());
        s->finishReason = "error";
        finish(*s);
      }
      continue;
    }
    (m.batchedLength && length >= m.batchedLength ? alone : batch)
        .push_back(s.get());
  }
  auto decode = [&](const std::vector<Sequence *> &group, int64_t *state) {
    if (group.empty())
      return;
    ++decodeSteps;
    generatedTokens += int64_t(group.size());
    if (int64_t(group.size()) > largestBatch)
      largestBatch = int64_t(group.size());
    size_t width = 0;
    for (Sequence *s : group)
      width = std::max(width, s->blocks.size());
    std::vector<int64_t> tokens, positions;
    std::vector<int32_t> table(group.size() * width, 0);
    for (size_t i = 0; i < group.size(); ++i) {
      tokens.push_back(group[i]->tokens.back());
      positions.push_back(int64_t(group[i]->tokens.size()) - 1);
      std::copy(group[i]->blocks.begin(), group[i]->blocks.end(),
                table.begin() + i * width);
    }
    logits.resize(group.size() * vocab);
    try {
      served.model.forwardPaged({tokens, positions, table, int64_t(width),
                                 int64_t(group.size()), state},
                                logits.data());
    } catch (const rt::Error &e) {
      std::fprintf(stderr, "decc: serve: %s\n", e.what());
      for (Sequence *s : group) {
        s->finishReason = "error";
        finish(*s);
      }
      return;
    }
    for (size_t i = 0; i < group.size(); ++i) {
      Sequence &s = *group[i];
      s.cached = int64_t(s.tokens.size());
      if (!s.take(s.sampler.next(logits.data() + i * vocab, vocab),
                  served.stopIds))
        finish(s);
    }
  };
  // Batched sequences are all shorter than batchedLength: the state they
  // would share is never written.
  std::vector<int64_t> shared(contract::kStateWords, 0);
  decode(batch, shared.data());
  for (Sequence *s : alone)
    decode({s}, s->state.data());
  running.erase(std::remove_if(running.begin(), running.end(),
                               [](const std::unique_ptr<Sequence> &s) {
                                 return s->blocks.empty();
                               }),
                running.end());
  runningCount = int64_t(running.size());
}

void ServeScheduler::runForever() {
  for (;;) {
    if (!served.model.cacheBlocks()) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(queueMutex);
        queueReady.wait(lock, [&] { return !queue.empty(); });
        job = queue.front();
        queue.pop_front();
      }
      runAlone(job);
      continue;
    }
    admit();
    if (!running.empty())
      step();
  }
}

} // namespace decc::host

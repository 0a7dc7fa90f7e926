//===- ServeScheduler.cpp - --serve's model thread ------------------------===//

#include "host/ServeScheduler.h"

#include "runtime/Error.h"

#include <algorithm>
#include <cstdio>

namespace decc::host {

/// A request the model thread is answering: its sampled tokens made text,
/// stop strings cut with the tail of the text that could still begin one
/// held back, the text handed to the job as it comes.
struct ServeScheduler::Answer {
  Answer(std::shared_ptr<Job> job, const rt::Tokenizer &tokenizer)
      : job(std::move(job)), stream(tokenizer) {
    for (const std::string &s : this->job->request.stop)
      holdBack = std::max(holdBack, s.size() - 1);
  }

  std::shared_ptr<Job> job;
  std::vector<int64_t> prompt;
  int64_t maxTokens = 0, sampled = 0;
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
    return sampled < maxTokens;
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

} // namespace

ServeScheduler::ServeScheduler(ServedModel &served, const ServeOptions &options)
    : served(served), maxQueue(options.maxQueue), maxBatch(options.maxBatch) {
  if (served.model.cacheBlocks()) {
    engine = std::make_unique<rt::BatchEngine>(served.model);
    engine->maxStepTokens = options.maxStepTokens;
  }
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
  return {runningCount,    waiting,      largestBatch,   decodeSteps,
          generatedTokens, promptTokens, forwardSeconds, sampleSeconds};
}

bool ServeScheduler::withdraw(const std::shared_ptr<Job> &job) {
  std::lock_guard<std::mutex> lock(queueMutex);
  auto it = std::find(queue.begin(), queue.end(), job);
  if (it == queue.end())
    return false;
  queue.erase(it);
  return true;
}

std::unique_ptr<ServeScheduler::Answer>
ServeScheduler::prepare(const std::shared_ptr<Job> &job) {
  const Completion &c = job->request;
  auto a = std::make_unique<Answer>(job, served.tokenizer);
  try {
    if (c.chat && !served.chat)
      throw BadRequest{"this model has no chat template (tokenizer_config."
                       "json's chat_template); use /v1/completions",
                       "messages"};
    a->prompt = served.encode(
        c.chat ? served.chat->render(c.messages) : c.prompt, c.chat);
    int64_t context = served.model.maxContext();
    int64_t n = int64_t(a->prompt.size());
    if (n == 0)
      throw BadRequest{"the prompt is empty", c.chat ? "messages" : "prompt"};
    if (n >= context)
      throw BadRequest{
          "the prompt has " + std::to_string(n) +
              " tokens; the context holds " + std::to_string(context),
          c.chat ? "messages" : "prompt", "context_length_exceeded"};
    // The last token is never fed back, so an answer may end at the
    // context's last position + 1.
    int64_t room = context - n + 1;
    a->maxTokens = c.maxTokens ? *c.maxTokens : c.chat ? room : 16;
    if (a->maxTokens > room)
      throw BadRequest{
          "the prompt (" + std::to_string(n) + " tokens) and max_tokens " +
              std::to_string(a->maxTokens) + " need " +
              std::to_string(n + a->maxTokens - 1) +
              " positions; the context holds " + std::to_string(context),
          "max_tokens", "context_length_exceeded"};
  } catch (const BadRequest &e) {
    job->update([&] {
      job->failure = e;
      job->started = job->done = true;
    });
    return nullptr;
  }
  return a;
}

void ServeScheduler::runAlone(const std::shared_ptr<Job> &job) {
  std::unique_ptr<Answer> a = prepare(job);
  if (!a)
    return;
  job->update([&] {
    job->started = true;
    job->promptTokens = int64_t(a->prompt.size());
  });
  rt::Sampler sampler(job->request.sampling);
  try {
    if (a->maxTokens > 0)
      served.model.generate(a->prompt, a->maxTokens, sampler, served.stopIds,
                            [&](int64_t token, const float *) {
                              if (!a->take(token, served.stopIds))
                                throw EndGeneration{};
                            });
  } catch (const EndGeneration &) {
  } catch (const rt::Error &e) {
    std::fprintf(stderr, "decc: serve: %s\n", e.what());
    a->finishReason = "error";
  }
  a->end();
}

void ServeScheduler::admit() {
  while (engine->running() < maxBatch) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(queueMutex);
      if (!engine->running())
        queueReady.wait(lock, [&] { return !queue.empty(); });
      if (queue.empty())
        return;
      job = queue.front();
    }
    // Tokenized with the queue unlocked; the job is taken only if no HTTP
    // thread withdrew it meanwhile. One that does not fit the free blocks
    // waits at the head of the queue for running sequences to end (with
    // none running every block is free, and the pool holds a context),
    // kept tokenized for the steps it waits.
    std::unique_ptr<Answer> a =
        job == waitingJob ? std::move(waitingAnswer) : prepare(job);
    waitingJob.reset();
    waitingAnswer.reset();
    if (a && a->maxTokens > 0 &&
        !engine->fitsPool(int64_t(a->prompt.size()), a->maxTokens)) {
      // Never while the pool holds a context (HostMain sees to it).
      job->update([&] {
        job->failure = BadRequest{"the request needs more positions than the "
                                  "server's KV cache holds (--kv-cache-tokens)",
                                  "max_tokens", "context_length_exceeded"};
        job->started = job->done = true;
      });
      a.reset();
    }
    if (a && a->maxTokens > 0 &&
        !engine->fitsNow(int64_t(a->prompt.size()), a->maxTokens)) {
      waitingJob = job;
      waitingAnswer = std::move(a);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(queueMutex);
      auto it = std::find(queue.begin(), queue.end(), job);
      if (it == queue.end())
        continue;
      queue.erase(it);
    }
    if (!a)
      continue;
    job->update([&] {
      job->started = true;
      job->promptTokens = int64_t(a->prompt.size());
    });
    if (a->maxTokens == 0) {
      a->end();
      continue;
    }
    std::shared_ptr<Answer> answer(std::move(a));
    rt::SequenceHooks hooks;
    hooks.take = [this, answer](int64_t token, const float *) {
      return answer->take(token, served.stopIds);
    };
    hooks.wantsLogits = false;
    // Counted out before the client hears the answer is done.
    hooks.ended = [this, answer](const std::string &error) {
      --runningCount;
      if (!error.empty()) {
        std::fprintf(stderr, "decc: serve: %s\n", error.c_str());
        answer->finishReason = "error";
      }
      answer->end();
    };
    hooks.cancelled = [answer] {
      if (answer->job->cancelled)
        answer->cut = true;
      return answer->cut;
    };
    engine->start(answer->prompt, answer->maxTokens, job->request.sampling,
                  std::move(hooks));
    ++runningCount;
  }
}

void ServeScheduler::publish() {
  largestBatch = engine->largestBatch;
  decodeSteps = engine->steps;
  generatedTokens = engine->stepTokens;
  promptTokens = engine->promptTokens;
  forwardSeconds = engine->forwardSeconds;
  sampleSeconds = engine->sampleSeconds;
}

void ServeScheduler::runForever() {
  for (;;) {
    if (!engine) {
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
    if (engine->running())
      engine->step();
    publish();
  }
}

} // namespace decc::host

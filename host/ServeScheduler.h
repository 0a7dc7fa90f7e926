//===- ServeScheduler.h - --serve's model thread ----------------*- C++ -*-===//
//
// The one thread that owns the model (a CUDA context and the OpenMP pool
// live there) takes the requests the HTTP threads queue and answers them.
// With a paged KV cache (the CPU backend) it batches: requests join the
// running batch between decode steps (each prompt a forward call of its
// own), every running sequence advances one token a step in one batched
// forward call (the weights read once for all), and a finished or
// abandoned sequence leaves at once, its cache blocks back in the pool. A
// request is admitted when the pool holds the blocks of its prompt and
// max_tokens, so a running sequence never runs out of cache. Without a
// paged cache (CUDA) requests run one at a time.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_HOST_SERVESCHEDULER_H
#define DECC_HOST_SERVESCHEDULER_H

#include "host/HostServe.h"
#include "host/ServeJob.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>

namespace decc::host {

class ServeScheduler {
public:
  ServeScheduler(ServedModel &served, const ServeOptions &options);
  ~ServeScheduler();

  /// Queues `job` for the model thread; false when --max-queue requests
  /// already wait (the caller answers 503).
  bool submit(const std::shared_ptr<Job> &job);
  /// Takes `job` out of the queue if the model thread has not taken it;
  /// true when it did (the job will never run).
  bool withdraw(const std::shared_ptr<Job> &job);
  /// The model thread's loop.
  [[noreturn]] void runForever();

  /// What GET /metrics reports (read from any thread).
  struct Metrics {
    int64_t running, waiting, largestBatch, decodeSteps, generatedTokens;
  };
  Metrics metrics();

  struct Sequence;

private:
  /// A queued job checked and made a sequence, or null (answered with its
  /// failure, or finished with no token to generate).
  std::unique_ptr<Sequence> prepare(const std::shared_ptr<Job> &job);
  /// Takes queued jobs into the batch while it and the cache have room;
  /// waits for one when nothing runs.
  void admit();
  /// One decode step of every running sequence.
  void step();
  /// Feeds `tokens` of `s` at `start...` to the model and samples its next
  /// token from the last one's logits.
  void prefill(Sequence &s, int64_t start);
  void finish(Sequence &s);
  /// Runs one job to its end with Model::generate (a backend without a
  /// paged cache).
  void runAlone(const std::shared_ptr<Job> &job);

  ServedModel &served;
  int64_t maxQueue, maxBatch;
  std::mutex queueMutex;
  std::condition_variable queueReady;
  std::deque<std::shared_ptr<Job>> queue;
  std::vector<std::unique_ptr<Sequence>> running;
  /// The paged cache's free blocks.
  std::vector<int32_t> freeBlocks;
  std::vector<float> logits;
  std::atomic<int64_t> runningCount{0}, largestBatch{0}, decodeSteps{0},
      generatedTokens{0};
};

} // namespace decc::host

#endif // DECC_HOST_SERVESCHEDULER_H

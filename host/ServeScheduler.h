//===- ServeScheduler.h - --serve's model thread ----------------*- C++ -*-===//
//
// The one thread that owns the model (a CUDA context and the OpenMP pool
// live there) takes the requests the HTTP threads queue and answers them.
// With a paged KV cache (the CPU backend) it batches on rt::BatchEngine:
// queued requests join the running batch between decode steps, in order,
// each when the cache's free blocks hold its prompt and max_tokens; a
// finished or abandoned one leaves at once. Without a paged cache (CUDA)
// requests run one at a time.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_HOST_SERVESCHEDULER_H
#define DECC_HOST_SERVESCHEDULER_H

#include "host/HostServe.h"
#include "host/ServeJob.h"
#include "runtime/BatchEngine.h"

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
    int64_t running, waiting, largestBatch, decodeSteps, generatedTokens,
        promptTokens;
    double forwardSeconds, sampleSeconds;
  };
  Metrics metrics();

  struct Answer;

private:
  /// A queued job checked and made an answer, or null (answered with its
  /// failure).
  std::unique_ptr<Answer> prepare(const std::shared_ptr<Job> &job);
  /// Takes queued jobs into the batch while it and the cache have room;
  /// waits for one when nothing runs.
  void admit();
  /// Copies the engine's counters where metrics() reads them.
  void publish();
  /// Runs one job to its end with Model::generate (a backend without a
  /// paged cache).
  void runAlone(const std::shared_ptr<Job> &job);

  ServedModel &served;
  int64_t maxQueue, maxBatch;
  std::mutex queueMutex;
  std::condition_variable queueReady;
  std::deque<std::shared_ptr<Job>> queue;
  /// Null without a paged cache.
  std::unique_ptr<rt::BatchEngine> engine;
  /// The queue's head while it waits for cache blocks, already prepared.
  std::shared_ptr<Job> waitingJob;
  std::unique_ptr<Answer> waitingAnswer;
  std::atomic<int64_t> runningCount{0}, largestBatch{0}, decodeSteps{0},
      generatedTokens{0}, promptTokens{0};
  std::atomic<double> forwardSeconds{0}, sampleSeconds{0};
};

} // namespace decc::host

#endif // DECC_HOST_SERVESCHEDULER_H

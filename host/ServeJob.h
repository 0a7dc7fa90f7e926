//===- ServeJob.h - a server request between its two threads ----*- C++ -*-===//
//
// What --serve's HTTP threads and its model thread (ServeScheduler) hand
// each other: the parsed request, the failure that answers it with a 4xx,
// and the text as the model produces it.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_HOST_SERVEJOB_H
#define DECC_HOST_SERVEJOB_H

#include "runtime/ChatFormat.h"
#include "runtime/Sampler.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace decc::host {

/// A request the client got wrong: a 400 (or `status`) naming the field.
struct BadRequest {
  BadRequest(std::string message, std::string param = "", std::string code = "",
             int status = 400)
      : message(std::move(message)), param(std::move(param)),
        code(std::move(code)), status(status) {}
  std::string message, param, code;
  int status;
};

/// One completion request, parsed and checked.
struct Completion {
  bool chat = false;
  std::vector<rt::ChatMessage> messages;
  std::string prompt;
  std::optional<int64_t> maxTokens;
  rt::SamplingOptions sampling;
  std::vector<std::string> stop;
  bool stream = false, includeUsage = false;
};

/// A request between its HTTP thread and the model thread.
struct Job {
  Completion request;
  std::mutex m;
  std::condition_variable cv;
  /// Set by the model thread: the prompt checked (or `failure`), text as
  /// it comes, then done.
  bool started = false, done = false;
  std::optional<BadRequest> failure;
  std::deque<std::string> pieces;
  std::string finishReason;
  int64_t promptTokens = 0, completionTokens = 0;
  /// Set by the HTTP side when the client went away.
  std::atomic<bool> cancelled{false};

  template <typename F> void update(F &&f) {
    {
      std::lock_guard<std::mutex> lock(m);
      f();
    }
    cv.notify_all();
  }
};

} // namespace decc::host

#endif // DECC_HOST_SERVEJOB_H

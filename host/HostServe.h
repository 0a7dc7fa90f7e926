//===- HostServe.h - the OpenAI-compatible HTTP server ----------*- C++ -*-===//
//
// `MODEL --serve`: POST /v1/completions and /v1/chat/completions (streamed
// as server-sent events with "stream": true), GET /v1/models and /health.
// The HTTP threads only parse and answer; the one thread that owns the
// model (the caller's: a CUDA context and the OpenMP pool live there) runs
// the requests a queue hands it, batched (ServeScheduler.h). A request
// past --max-queue waiting ones, or that waited --queue-timeout seconds,
// is answered 503 (OpenAI's "server_error") and never run.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_HOST_HOSTSERVE_H
#define DECC_HOST_HOSTSERVE_H

#include "runtime/ChatFormat.h"
#include "runtime/Model.h"
#include "runtime/Tokenizer.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace decc::host {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  /// Non-empty: requests need "Authorization: Bearer KEY".
  std::string apiKey;
  /// Requests that may wait for the model beside the one it runs; one more
  /// is answered 503 at once.
  int64_t maxQueue = 64;
  /// Seconds a request may wait for the model before it is answered 503
  /// (and never run).
  double queueTimeout = 60.0;
  /// Sequences decoded together (a backend with a paged KV cache; others
  /// run one at a time).
  int64_t maxBatch = 16;
  /// The most tokens a step's forward call takes (rt::BatchEngine).
  int64_t maxStepTokens = 256;
};

/// What the server answers with.
struct ServedModel {
  rt::Model &model;
  const rt::Tokenizer &tokenizer;
  /// Null when the model folder has no chat template (chat requests get a
  /// 400).
  const rt::ChatFormat *chat;
  /// Tokens that end an answer (EOS).
  std::vector<int64_t> stopIds;
  /// The ids of a prompt's text, BOS included as the command line does.
  std::function<std::vector<int64_t>(const std::string &text, bool chat)>
      encode;
  /// The id /v1/models lists and the answers name.
  std::string name;
};

/// Serves until the process is stopped; returns non-zero (with a message
/// on stderr) when the address cannot be bound.
int serve(ServedModel &served, const ServeOptions &options);

} // namespace decc::host

#endif // DECC_HOST_HOSTSERVE_H

//===- HostServe.cpp - the OpenAI-compatible HTTP server ------------------===//
//
// HTTP on cpp-httplib (Debian's libcpp-httplib), JSON on nlohmann/json. A
// request is parsed and checked on its HTTP thread, then queued; the model
// thread (ServeScheduler) tokenizes it (the tokenizers are not shared
// between threads), checks it against the context and generates, handing
// text back as it comes.
//
//===----------------------------------------------------------------------===//

#include "host/HostServe.h"

#include "host/ServeScheduler.h"

#include "runtime/Error.h"
#include "runtime/Sampler.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <sys/socket.h>

namespace decc::host {
namespace {

using json = nlohmann::json;

/// Bodies larger than this get a 413: a prompt is text, and the context
/// of any model decc builds is far below a mebibyte of it.
constexpr size_t kMaxBodyBytes = size_t(1) << 20;

json errorBody(const std::string &message, const std::string &type,
               const std::string &param = "", const std::string &code = "") {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

/// Field `name` of `body` when present and not null, checked to be of
/// `kind` ("string", "integer", "number", "boolean", "array", "object").
const json *field(const json &body, const char *name, const char *kind) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null())
    return nullptr;
  std::string k = kind;
  bool ok = k == "string"    ? it->is_string()
            : k == "integer" ? it->is_number_integer()
            : k == "number"  ? it->is_number()
            : k == "boolean" ? it->is_boolean()
            : k == "array"   ? it->is_array()
                             : it->is_object();
  if (!ok)
    throw BadRequest{
        std::string("'") + name + "' must be " +
            (k == "integer" || k == "array" || k == "object" ? "an " : "a ") +
            k,
        name};
  return &*it;
}

/// A message's content: a string, or an array of text parts.
std::string contentOf(const json &message, size_t index) {
  std::string param = "messages[" + std::to_string(index) + "].content";
  auto it = message.find("content");
  if (it == message.end() || it->is_null())
    throw BadRequest{"'" + param + "' is missing", param};
  if (it->is_string())
    return it->get<std::string>();
  if (!it->is_array())
    throw BadRequest{
        "'" + param + "' must be a string or an array of text parts", param};
  std::string text;
  for (const json &part : *it) {
    if (!part.is_object() || part.value("type", "") != "text" ||
        !part.contains("text") || !part["text"].is_string())
      throw BadRequest{"'" + param +
                           "': only text parts ({\"type\": \"text\", "
                           "\"text\": ...}) are read",
                       param};
    text += part["text"].get<std::string>();
  }
  return text;
}

Completion parseCompletion(const std::string &raw, bool chat) {
  json body = json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded())
    throw BadRequest{"the body is not valid JSON", "", "invalid_json"};
  if (!body.is_object())
    throw BadRequest{"the body must be a JSON object"};
  Completion c;
  c.chat = chat;
  if (chat) {
    const json *messages = field(body, "messages", "array");
    if (!messages || messages->empty())
      throw BadRequest{"'messages' must be a non-empty array", "messages"};
    for (size_t i = 0; i < messages->size(); ++i) {
      const json &m = (*messages)[i];
      std::string param = "messages[" + std::to_string(i) + "]";
      if (!m.is_object())
        throw BadRequest{"'" + param + "' must be an object", param};
      auto role = m.find("role");
      if (role == m.end() || !role->is_string())
        throw BadRequest{"'" + param + ".role' must be a string",
                         param + ".role"};
      std::string r = role->get<std::string>();
      if (r == "developer")
        r = "system";
      if (r != "system" && r != "user" && r != "assistant")
        throw BadRequest{"'" + param +
                             ".role' must be system, user or "
                             "assistant, not '" +
                             r + "'",
                         param + ".role"};
      c.messages.push_back({r, contentOf(m, i)});
    }
  } else {
    auto prompt = body.find("prompt");
    if (prompt == body.end() || !prompt->is_string())
      throw BadRequest{"'prompt' must be a string", "prompt"};
    c.prompt = prompt->get<std::string>();
  }
  for (const char *name : {"max_tokens", "max_completion_tokens"})
    if (const json *v = field(body, name, "integer")) {
      if (v->get<int64_t>() < 0)
        throw BadRequest{std::string("'") + name + "' must be at least 0",
                         name};
      c.maxTokens = v->get<int64_t>();
    }
  if (const json *v = field(body, "temperature", "number")) {
    double t = v->get<double>();
    if (t < 0 || t > 2)
      throw BadRequest{"'temperature' must be between 0 and 2", "temperature"};
    c.sampling.temperature = float(t);
  }
  if (const json *v = field(body, "top_p", "number")) {
    double p = v->get<double>();
    if (p <= 0 || p > 1)
      throw BadRequest{"'top_p' must be in (0, 1]", "top_p"};
    c.sampling.topP = float(p);
  }
  if (const json *v = field(body, "top_k", "integer")) {
    if (v->get<int64_t>() < 0)
      throw BadRequest{"'top_k' must be at least 0", "top_k"};
    c.sampling.topK = v->get<int64_t>();
  }
  if (const json *v = field(body, "seed", "integer"))
    c.sampling.seed = uint64_t(v->get<int64_t>());
  if (const json *v = field(body, "n", "integer"); v && v->get<int64_t>() != 1)
    throw BadRequest{"'n' must be 1: one answer a request", "n"};
  if (auto stop = body.find("stop"); stop != body.end() && !stop->is_null()) {
    if (stop->is_string()) {
      c.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array() && stop->size() <= 4 &&
               std::all_of(stop->begin(), stop->end(),
                           [](const json &s) { return s.is_string(); })) {
      for (const json &s : *stop)
        c.stop.push_back(s.get<std::string>());
    } else {
      throw BadRequest{"'stop' must be a string or an array of up to 4 "
                       "strings",
                       "stop"};
    }
    c.stop.erase(std::remove(c.stop.begin(), c.stop.end(), ""), c.stop.end());
  }
  if (const json *v = field(body, "stream", "boolean"))
    c.stream = v->get<bool>();
  if (const json *v = field(body, "stream_options", "object"))
    if (const json *u = field(*v, "include_usage", "boolean"))
      c.includeUsage = u->get<bool>();
  return c;
}

int64_t unixTime() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string requestId(bool chat) {
  static std::atomic<uint64_t> next{1};
  return std::string(chat ? "chatcmpl-" : "cmpl-") + "decc" +
         std::to_string(next++);
}

json usageOf(const Job &job) {
  return {{"prompt_tokens", job.promptTokens},
          {"completion_tokens", job.completionTokens},
          {"total_tokens", job.promptTokens + job.completionTokens}};
}

void sendError(httplib::Response &res, int status, const json &body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void sendBadRequest(httplib::Response &res, const BadRequest &e) {
  sendError(res, e.status,
            errorBody(e.message, "invalid_request_error", e.param, e.code));
}

/// One server-sent event.
std::string event(const json &data) { return "data: " + data.dump() + "\n\n"; }

/// 503 with an OpenAI-style error body: the model is busy.
void sendBusy(httplib::Response &res, const std::string &why) {
  res.set_header("Retry-After", "1");
  sendError(res, 503,
            errorBody("the server is busy: " + why + "; try again later",
                      "server_error", "", "server_busy"));
}

std::string seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", s);
  return text;
}

void handleCompletion(ServeScheduler &server, const ServedModel &served,
                      const ServeOptions &options, const httplib::Request &req,
                      httplib::Response &res, bool chat) {
  auto job = std::make_shared<Job>();
  try {
    job->request = parseCompletion(req.body, chat);
  } catch (const BadRequest &e) {
    sendBadRequest(res, e);
    return;
  }
  if (!server.submit(job)) {
    sendBusy(res, std::to_string(options.maxQueue) +
                      " requests are waiting (--max-queue)");
    return;
  }
  {
    std::unique_lock<std::mutex> lock(job->m);
    auto started = [&] { return job->started; };
    // A request that waited its --queue-timeout is answered 503 and never
    // runs, unless the model took it meanwhile.
    if (!job->cv.wait_for(lock,
                          std::chrono::duration<double>(options.queueTimeout),
                          started)) {
      lock.unlock();
      if (server.withdraw(job)) {
        sendBusy(res, "the request waited " + seconds(options.queueTimeout) +
                          " s for the model (--queue-timeout)");
        return;
      }
      lock.lock();
      job->cv.wait(lock, started);
    }
    if (job->failure) {
      sendBadRequest(res, *job->failure);
      return;
    }
  }
  // What every answer and chunk of this request starts with.
  json envelope = {{"id", requestId(chat)},
                   {"object", chat ? "chat.completion" : "text_completion"},
                   {"created", unixTime()},
                   {"model", served.name}};
  json chunkEnvelope = envelope;
  if (chat)
    chunkEnvelope["object"] = "chat.completion.chunk";
  auto chunk = [chunkEnvelope, chat](const std::string *text,
                                     const std::string *finish) {
    json choice = {{"index", 0},
                   {"finish_reason", finish ? json(*finish) : json(nullptr)}};
    if (chat) {
      choice["delta"] = text ? json{{"content", *text}} : json::object();
    } else {
      choice["text"] = text ? *text : "";
      choice["logprobs"] = nullptr;
    }
    json c = chunkEnvelope;
    c["choices"] = json::array({choice});
    return c;
  };
  if (!job->request.stream) {
    std::unique_lock<std::mutex> lock(job->m);
    job->cv.wait(lock, [&] { return job->done; });
    std::string text;
    for (const std::string &p : job->pieces)
      text += p;
    json choice = {{"index", 0}, {"finish_reason", job->finishReason}};
    if (chat)
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    else {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    }
    json body = envelope;
    body["choices"] = json::array({choice});
    body["usage"] = usageOf(*job);
    res.set_content(body.dump(), "application/json");
    return;
  }
  // Streamed: the role first (chat), then the text as it comes, the finish
  // reason, the usage when asked, and [DONE]. A failed write means the
  // client went away: the generation is stopped and its sequence freed.
  auto first = std::make_shared<bool>(true);
  res.set_chunked_content_provider(
      "text/event-stream",
      [job, chunk, first, chat, chunkEnvelope](size_t,
                                               httplib::DataSink &sink) {
        auto write = [&](const std::string &s) {
          if (!sink.write(s.data(), s.size())) {
            job->cancelled = true;
            return false;
          }
          return true;
        };
        if (*first) {
          *first = false;
          if (chat) {
            json c = chunk(nullptr, nullptr);
            c["choices"][0]["delta"] = {{"role", "assistant"}, {"content", ""}};
            if (!write(event(c)))
              return false;
          }
        }
        std::deque<std::string> pieces;
        bool done;
        {
          std::unique_lock<std::mutex> lock(job->m);
          job->cv.wait_for(lock, std::chrono::milliseconds(200),
                           [&] { return job->done || !job->pieces.empty(); });
          pieces.swap(job->pieces);
          done = job->done;
        }
        for (const std::string &p : pieces)
          if (!write(event(chunk(&p, nullptr))))
            return false;
        if (!done) {
          // Nothing new yet: ask again unless the client has gone.
          if (!sink.is_writable())
            job->cancelled = true;
          return !job->cancelled;
        }
        if (!write(event(chunk(nullptr, &job->finishReason))))
          return false;
        if (job->request.includeUsage) {
          json u = chunkEnvelope;
          u["choices"] = json::array();
          u["usage"] = usageOf(*job);
          if (!write(event(u)))
            return false;
        }
        if (!write("data: [DONE]\n\n"))
          return false;
        sink.done();
        return true;
      },
      [job](bool success) {
        if (!success)
          job->cancelled = true;
      });
}

} // namespace

int serve(ServedModel &served, const ServeOptions &options) {
  ServeScheduler server(served, options);
  httplib::Server http;
  // A request holds an HTTP thread from its headers to its last chunk:
  // cpp-httplib's default pool (8 threads) let 8 requests in at a time,
  // whatever the batch; one a sequence of the batch and one a queued
  // request, and a few for the quick endpoints.
  size_t threads = size_t(options.maxBatch + options.maxQueue + 4);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // cpp-httplib listens with a backlog of 5, which a burst of clients
  // overflows while the listener thread is slow to run (a loaded machine,
  // ASan: serve.test's 32 clients had a connection reset now and then).
  // Debian's libcpp-httplib compiles its listen() into the library, so
  // CPPHTTPLIB_LISTEN_BACKLOG in this file did not reach it (a `listen(fd,
  // 5)` in the .so): the listening socket is taken from the socket-options
  // hook and listened on again with the system's most once bound (Linux
  // takes a second listen() as a new backlog).
  int listening = -1;
  http.set_socket_options([&](socket_t sock) {
    httplib::default_socket_options(sock);
    listening = int(sock);
  });
  http.set_payload_max_length(kMaxBodyBytes);
  http.set_pre_routing_handler([&](const httplib::Request &req,
                                   httplib::Response &res) {
    if (options.apiKey.empty() || req.path == "/health")
      return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") != "Bearer " + options.apiKey) {
      sendError(res, 401,
                errorBody("a valid API key is needed "
                          "(Authorization: Bearer KEY)",
                          "invalid_request_error", "", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.Post("/v1/completions",
            [&](const httplib::Request &req, httplib::Response &res) {
              handleCompletion(server, served, options, req, res,
                               /*chat=*/false);
            });
  http.Post("/v1/chat/completions",
            [&](const httplib::Request &req, httplib::Response &res) {
              handleCompletion(server, served, options, req, res,
                               /*chat=*/true);
            });
  http.Get("/v1/models", [&](const httplib::Request &, httplib::Response &res) {
    json body = {{"object", "list"},
                 {"data", json::array({{{"id", served.name},
                                        {"object", "model"},
                                        {"created", unixTime()},
                                        {"owned_by", "decc"}}})}};
    res.set_content(body.dump(), "application/json");
  });
  // Prometheus's text format, as vLLM's and llama.cpp's servers have it.
  http.Get("/metrics", [&](const httplib::Request &, httplib::Response &res) {
    ServeScheduler::Metrics m = server.metrics();
    std::string text;
    auto metric = [&](const char *name, const char *type, const char *help,
                      auto value) {
      std::ostringstream line;
      line << "# HELP decc_" << name << " " << help << "\n# TYPE decc_" << name
           << " " << type << "\ndecc_" << name << " " << value << "\n";
      text += line.str();
    };
    metric("requests_running", "gauge", "Sequences in the running batch.",
           m.running);
    metric("requests_waiting", "gauge", "Requests queued for the model.",
           m.waiting);
    metric("batch_size_max", "gauge",
           "The most sequences one decode step has taken.", m.largestBatch);
    metric("decode_steps_total", "counter", "Decode steps (forward calls).",
           m.decodeSteps);
    metric("generation_tokens_total", "counter",
           "Tokens generated by decode steps.", m.generatedTokens);
    metric("prompt_tokens_total", "counter", "Prompt tokens run.",
           m.promptTokens);
    metric("forward_seconds_total", "counter",
           "Seconds in the model's forward calls.", m.forwardSeconds);
    metric("sample_seconds_total", "counter",
           "Seconds sampling tokens and handing them to the requests.",
           m.sampleSeconds);
    res.set_content(text, "text/plain; version=0.0.4");
  });
  http.Get("/health", [](const httplib::Request &, httplib::Response &res) {
    res.set_content(json{{"status", "ok"}}.dump(), "application/json");
  });
  // Every other failure (404, 405, 413, ...) with an OpenAI-style body.
  http.set_error_handler([](const httplib::Request &, httplib::Response &res) {
    if (!res.body.empty())
      return;
    std::string message = res.status == 404   ? "no such endpoint"
                          : res.status == 405 ? "method not allowed"
                          : res.status == 413
                              ? "the body is larger than " +
                                    std::to_string(kMaxBodyBytes) + " bytes"
                              : "HTTP error " + std::to_string(res.status);
    sendError(res, res.status,
              errorBody(message, res.status == 404 ? "not_found_error"
                                                   : "invalid_request_error"));
  });
  http.set_exception_handler([](const httplib::Request &,
                                httplib::Response &res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception &e) {
      what = e.what();
    } catch (...) {
    }
    sendError(res, 500, errorBody(what, "server_error"));
  });
  if (!http.bind_to_port(options.host, options.port)) {
    std::fprintf(stderr, "decc: error: cannot listen on %s:%d\n",
                 options.host.c_str(), options.port);
    return 1;
  }
  if (listening >= 0 && ::listen(listening, SOMAXCONN) != 0)
    std::fprintf(stderr,
                 "decc: warning: could not widen the listen backlog of "
                 "%s:%d\n",
                 options.host.c_str(), options.port);
  std::fprintf(stderr, "decc: serving %s on http://%s:%d\n",
               served.name.c_str(), options.host.c_str(), options.port);
  std::thread listener([&] { http.listen_after_bind(); });
  listener.detach();
  server.runForever();
}

} // namespace decc::host

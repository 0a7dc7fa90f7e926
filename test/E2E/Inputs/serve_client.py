#!/usr/bin/env python3
"""serve_client.py MODEL WEIGHTS [CHAT-DIR]: drives `MODEL --serve`.

Starts the server on a free loopback port and checks, with the standard
library's HTTP client and curl: greedy answers (plain and streamed) equal
the command line's for the same prompt; 32 concurrent clients of different
lengths each get their own answer, decoded in batches (/metrics); with a
KV cache that holds two requests, the others wait and all are answered; a client that goes away mid-stream does
not stop the server; bad requests get a 4xx with an OpenAI-style error body
and the server keeps serving; --api-key turns away requests without it;
past --max-queue waiting requests, or after --queue-timeout, a 503.
With CHAT-DIR: WEIGHTS copied there with Phi-3's chat template added (its
turns are plain text to a tokenizer without them), a chat answer, plain
and streamed, equals `MODEL --chat`'s for the same message.
Prints one line a check and exits non-zero on the first failure.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_common import check, request, with_chat_template  # noqa: E402
import serve_common  # noqa: E402

model, weights = sys.argv[1], sys.argv[2]
chat_weights = sys.argv[3] if len(sys.argv) > 3 else None
if chat_weights:
    with_chat_template(weights, chat_weights)


def start(*extra, folder=None):
    return serve_common.start(model, folder or weights, *extra)


def complete(port, prompt, n, **more):
    status, text = request(port, "POST", "/v1/completions",
                           {"prompt": prompt, "max_tokens": n, **more})
    if status != 200:
        sys.exit(f"FAIL: {status} {text}")
    return json.loads(text)


def stream(port, prompt, n):
    status, text = request(port, "POST", "/v1/completions",
                           {"prompt": prompt, "max_tokens": n, "stream": True,
                            "stream_options": {"include_usage": True}})
    events = [line[len("data: "):] for line in text.split("\n")
              if line.startswith("data: ")]
    return status, events


def cli(prompt, n):
    return serve_common.cli(model, weights, prompt, n)


proc, port = start()
try:
    prompt = "Once upon a time"
    want = cli(prompt, 32)
    got = complete(port, prompt, 32)
    answer = got["choices"][0]["text"]
    check(prompt + answer == want,
          f"greedy completion equals the command line's: {answer!r}")
    check(got["usage"] == {"prompt_tokens": 5, "completion_tokens": 32,
                           "total_tokens": 37}
          and got["choices"][0]["finish_reason"] == "length",
          "usage and finish_reason")
    status, events = stream(port, prompt, 32)
    chunks = [json.loads(e) for e in events[:-1]]
    streamed = "".join(c["choices"][0]["text"] for c in chunks
                       if c["choices"])
    check(status == 200 and events[-1] == "[DONE]" and streamed == answer
          and chunks[-1]["usage"]["completion_tokens"] == 32,
          "streamed answer equals it, then usage and [DONE]")
    # The same two requests from curl (a client that is not ours).
    url = f"http://127.0.0.1:{port}/v1/completions"
    plain = subprocess.run(
        ["curl", "-sS", url, "-H", "Content-Type: application/json", "-d",
         json.dumps({"prompt": prompt, "max_tokens": 32})],
        capture_output=True, text=True, check=True).stdout
    streamed_curl = subprocess.run(
        ["curl", "-sSN", url, "-d",
         json.dumps({"prompt": prompt, "max_tokens": 32, "stream": True})],
        capture_output=True, text=True, check=True).stdout
    pieces = [json.loads(line[len("data: "):])["choices"][0]["text"]
              for line in streamed_curl.split("\n")
              if line.startswith("data: ") and line != "data: [DONE]"]
    check(json.loads(plain)["choices"][0]["text"] == answer
          and "".join(pieces) == answer
          and streamed_curl.rstrip().endswith("data: [DONE]"),
          "curl gets the same answer, plain and streamed")
    stopped = complete(port, prompt, 32, stop=["Lily"])
    check(stopped["choices"][0]["text"] == answer[:answer.index("Lily")]
          and stopped["choices"][0]["finish_reason"] == "stop",
          "a stop string cuts the answer")

    # 32 clients at once: each answer is the one it gets alone.
    prompts = ["Once upon a time", "The dog", "Lily and Tom went",
               "One day, a little bird"]
    jobs = [(prompts[i % 4], 4 + i) for i in range(32)]
    alone = {job: complete(port, *job)["choices"][0]["text"] for job in jobs}
    results = {}

    def client(i):
        results[i] = complete(port, *jobs[i])["choices"][0]["text"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(all(results[i] == alone[jobs[i]] for i in range(32)),
          "32 concurrent clients, each its own answer")
    # ... and they were batched: decode steps took several of them at once
    # (else the check above would hold for a server one at a time).
    status, text = request(port, "GET", "/metrics")
    metrics = dict(line.split() for line in text.split("\n")
                   if line and not line.startswith("#"))
    check(status == 200 and int(metrics["decc_batch_size_max"]) > 1
          and int(metrics["decc_requests_running"]) == 0
          and int(metrics["decc_requests_waiting"]) == 0,
          "/metrics: the clients were decoded in batches, none left over")

    # A client that goes away mid-stream.
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    body = json.dumps({"prompt": prompt, "max_tokens": 400, "stream": True})
    s.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
               "Content-Type: application/json\r\nContent-Length: "
               f"{len(body)}\r\n\r\n{body}").encode())
    s.recv(200)
    s.close()
    check(complete(port, prompt, 32)["choices"][0]["text"] == answer,
          "after a client left mid-stream the server still answers")

    # Bad requests: a 4xx with an error body, and the server goes on.
    bad = [
        (None, b'{"prompt": ', 400, "the body is not valid JSON"),
        ({"prompt": 7}, None, 400, "'prompt' must be a string"),
        ({"prompt": "a", "max_tokens": "x"}, None, 400,
         "'max_tokens' must be an integer"),
        ({"prompt": "a", "max_tokens": -1}, None, 400,
         "'max_tokens' must be at least 0"),
        ({"prompt": "a", "temperature": 7}, None, 400,
         "'temperature' must be between 0 and 2"),
        ({"prompt": "Once upon a time " * 400}, None, 400,
         "the prompt has 1602 tokens; the context holds 512"),
        ({"prompt": "a", "max_tokens": 600}, None, 400,
         "the prompt (2 tokens) and max_tokens 600 need 601 positions; "
         "the context holds 512"),
    ]
    for body, raw, want_status, message in bad:
        status, text = request(port, "POST", "/v1/completions", body, raw=raw)
        error = json.loads(text).get("error", {})
        check(status == want_status and error.get("message") == message,
              f"{want_status}: {message}")
    # 10 MB: the server answers 413 from the headers and may close before
    # the body is all sent, so the answer is read from a raw socket.
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\n"
              b"Content-Length: 10485760\r\n\r\n")
    try:
        s.sendall(b"a" * (10 << 20))
    except OSError:
        pass
    answer413 = b""
    try:
        while chunk := s.recv(65536):
            answer413 += chunk
    except OSError:
        pass
    s.close()
    head, _, text = answer413.decode().partition("\r\n\r\n")
    check(head.startswith("HTTP/1.1 413") and json.loads(text)["error"]
          ["message"] == "the body is larger than 1048576 bytes",
          "413: a body of 10 MB")
    status, text = request(port, "POST", "/v1/chat/completions",
                           {"messages": [{"role": "user", "content": "hi"}]})
    check(status == 400 and "no chat template" in text,
          "chat without a chat template: 400")
    status, text = request(port, "GET", "/v1/nothing")
    check(status == 404 and json.loads(text)["error"]["type"]
          == "not_found_error", "an unknown path: 404")
    status, text = request(port, "GET", "/v1/models")
    check(status == 200 and json.loads(text)["data"][0]["id"] == "stories260K",
          "/v1/models lists the model")
    check(complete(port, prompt, 32)["choices"][0]["text"] == answer,
          "still serving after the bad requests")
finally:
    proc.kill()
    proc.wait()

# A KV cache of one context (256 positions, 16 blocks) and requests of 8
# blocks each (a prompt of a few tokens and max_tokens 120): two run at a
# time, the rest wait for their blocks, and every answer is its own.
proc, port = start("--max-context", "256", "--kv-cache-tokens", "256")
try:
    jobs = [(prompts[i % 4], 120) for i in range(6)]
    alone = {job: complete(port, *job)["choices"][0]["text"] for job in jobs}
    results = {}
    threads = [threading.Thread(
        target=lambda i: results.__setitem__(
            i, complete(port, *jobs[i])["choices"][0]["text"]), args=(i,))
        for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status, text = request(port, "GET", "/metrics")
    metrics = dict(line.split() for line in text.split("\n")
                   if line and not line.startswith("#"))
    check(all(results[i] == alone[jobs[i]] for i in range(6))
          and int(metrics["decc_batch_size_max"]) == 2,
          "a full KV cache: requests wait for blocks, two run at a time, "
          "each its own answer")
finally:
    proc.kill()
    proc.wait()

proc, port = start("--api-key", "sesame")
try:
    status, text = request(port, "POST", "/v1/completions",
                           {"prompt": "a", "max_tokens": 2})
    check(status == 401 and json.loads(text)["error"]["code"]
          == "invalid_api_key", "--api-key: no key, 401")
    status, _ = request(port, "POST", "/v1/completions",
                        {"prompt": "a", "max_tokens": 2},
                        headers={"Authorization": "Bearer sesame"})
    check(status == 200, "--api-key: the key, 200")
finally:
    proc.kill()
    proc.wait()


def burst(port, n, body):
    """`n` clients at once, each POSTing `body`: their (status, text)."""
    results = [None] * n
    ready = threading.Barrier(n)

    def client(i):
        ready.wait()
        results[i] = request(port, "POST", "/v1/completions", body)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def check_busy(results, alone, reason, what, some_served=True):
    """Some of `results` answered 503 for `reason`, the rest 200 with
    `alone`'s text (at least one, with `some_served`)."""
    busy = [json.loads(text)["error"] for status, text in results
            if status == 503]
    served = [json.loads(text)["choices"][0]["text"]
              for status, text in results if status == 200]
    check(len(busy) + len(served) == len(results) and busy
          and (served or not some_served)
          and all(e["code"] == "server_busy" and e["type"] == "server_error"
                  and e["message"] == "the server is busy: " + reason +
                  "; try again later" for e in busy)
          and all(t == alone for t in served), what)


def complete_when_free(port, prompt, n):
    """complete(), asking again (as Retry-After says) while the answer is
    503: a lone request may wait past a short --queue-timeout on a loaded
    machine."""
    for _ in range(100):
        status, text = request(port, "POST", "/v1/completions",
                               {"prompt": prompt, "max_tokens": n})
        if status != 503:
            break
        time.sleep(0.1)
    if status != 200:
        sys.exit(f"FAIL: {status} {text}")
    return json.loads(text)


# Admission: with --max-queue 1, of 16 clients at once (400 tokens each,
# so the model stays busy) those beyond the one running and the one
# waiting get 503 with an OpenAI-style error; the others their answer.
# --max-batch 1: with the default 16 the model may take the whole burst
# into its batch before the queue ever fills, and nothing need wait.
long_request = {"prompt": "Once upon a time", "max_tokens": 400}
proc, port = start("--max-queue", "1", "--max-batch", "1")
try:
    alone = complete(port, "Once upon a time", 400)["choices"][0]["text"]
    check_busy(burst(port, 16, long_request), alone,
               "1 requests are waiting (--max-queue)",
               "--max-queue 1: 503 for the rest of a burst")
    check(complete_when_free(port, "Once upon a time", 400)["choices"][0]
          ["text"] == alone, "--max-queue 1: serving after the burst")
finally:
    proc.kill()
    proc.wait()
# --queue-timeout: a request that waited that long for the model gets 503
# and is never run (on a loaded machine even the first of the burst may
# wait past 1 ms for the model thread to wake). --max-batch 1, so that
# the other 15 wait out the first one's 400 tokens (with a batch of 16 a
# fast machine took all of them within 1 ms: CI saw no 503).
proc, port = start("--queue-timeout", "0.001", "--max-batch", "1")
try:
    check_busy(burst(port, 16, long_request), alone,
               "the request waited 0.001 s for the model (--queue-timeout)",
               "--queue-timeout 0.001: 503 for those that waited",
               some_served=False)
    check(complete_when_free(port, "Once upon a time", 400)["choices"][0]
          ["text"] == alone, "--queue-timeout 0.001: serving after the burst")
finally:
    proc.kill()
    proc.wait()
if chat_weights:
    proc, port = start(folder=chat_weights)
    try:
        message = "Once upon a time"
        want = serve_common.cli_chat(model, chat_weights, message, 24)
        body = {"messages": [{"role": "user", "content": message}],
                "max_tokens": 24}
        status, text = request(port, "POST", "/v1/chat/completions", body)
        got = json.loads(text)
        check(status == 200 and got["object"] == "chat.completion"
              and got["choices"][0]["message"] == {"role": "assistant",
                                                   "content": want},
              f"chat answer equals --chat's: {want!r}")
        status, text = request(port, "POST", "/v1/chat/completions",
                               {**body, "stream": True})
        events = [json.loads(line[len("data: "):])
                  for line in text.split("\n")
                  if line.startswith("data: ") and line != "data: [DONE]"]
        deltas = [e["choices"][0]["delta"] for e in events]
        check(deltas[0].get("role") == "assistant"
              and "".join(d.get("content", "") for d in deltas) == want
              and events[-1]["choices"][0]["finish_reason"] == "length",
              "streamed chat: the role, then the same answer")
    finally:
        proc.kill()
        proc.wait()
print("PASS")

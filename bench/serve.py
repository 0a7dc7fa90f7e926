#!/usr/bin/env python3
"""bench/serve.py MODEL [MODEL OPTIONS...] -- [--clients 1,4,16,64]
[--requests R] [--max-tokens N]

Throughput and latency of `MODEL --serve` against the number of concurrent
clients (Python's standard library only). Starts the server on a free
loopback port with the given options (e.g. `--random-weights 1 --tokenizer
DIR`), then for each client count C runs C threads, each sending R
streamed /v1/completions requests one after another (a different prompt of
about 40 tokens each, greedy, --max-tokens new tokens, EOS ignored by
asking for a stop no text contains), and reports the generated tokens a
second over all of them and the time to the first token (p50, p99).
"""
import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time

split = sys.argv.index("--") if "--" in sys.argv else len(sys.argv)
server_cmd = sys.argv[1:split]
parser = argparse.ArgumentParser()
parser.add_argument("--clients", default="1,4,16,64")
parser.add_argument("--requests", type=int, default=2)
parser.add_argument("--max-tokens", type=int, default=16)
args = parser.parse_args(sys.argv[split + 1:])

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen([*server_cmd, "--serve", "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def post(body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    return conn, conn.getresponse()


for _ in range(600):
    # A server that could not start (a library missing, a bad option)
    # says why at once instead of after the minute of waiting.
    if server.poll() is not None:
        sys.exit("the server stopped (exit status %d): %s"
                 % (server.returncode, server.stderr.read().decode()))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/health")
        if conn.getresponse().status == 200:
            break
    except OSError:
        time.sleep(0.1)
else:
    server.kill()
    sys.exit("the server did not start: " + server.stderr.read().decode())

words = ("the cat dog tree river house little girl boy sun moon star road "
         "bird book light water stone garden window door").split()


def prompt(i):
    return " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(40))


def one(i, ttfts, tokens):
    start = time.perf_counter()
    conn, resp = post({"prompt": prompt(i), "max_tokens": args.max_tokens,
                       "stream": True, "stop": ["\x00"],
                       "stream_options": {"include_usage": True}})
    first = None
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[len("data: "):])
        if first is None and event["choices"] and event["choices"][0]["text"]:
            first = time.perf_counter() - start
        if event.get("usage"):
            tokens.append(event["usage"]["completion_tokens"])
    conn.close()
    ttfts.append(first if first is not None else time.perf_counter() - start)


def metrics():
    """The server's counters (GET /metrics, Prometheus's text format)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return {line.split()[0][len("decc_"):]: float(line.split()[1])
            for line in text.splitlines() if line.startswith("decc_")}


try:
    one(10**6, [], [])  # warm-up
    print(f"bench/serve.py: {' '.join(server_cmd)}; {args.requests} requests "
          f"a client, {args.max_tokens} new tokens each", flush=True)
    for clients in map(int, args.clients.split(",")):
        ttfts, tokens = [], []

        def client(c):
            for r in range(args.requests):
                one(c * args.requests + r, ttfts, tokens)

        threads = [threading.Thread(target=client, args=(c,))
                   for c in range(clients)]
        before = metrics()
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        ttfts.sort()
        p99 = ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))]
        print(f"clients {clients:3d}: {sum(tokens)} tokens in {wall:.2f} s = "
              f"{sum(tokens) / wall:.1f} tokens/s; time to first token p50 "
              f"{statistics.median(ttfts) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
              flush=True)
        # Where the server's time went: its forward calls, its sampling,
        # the rest of its loop (admitting, waiting for requests).
        d = {k: v - before.get(k, 0) for k, v in metrics().items()}
        if "forward_seconds_total" not in d:  # an older server
            continue
        steps = max(d["decode_steps_total"], 1)
        print(f"    {d['decode_steps_total']:.0f} decode steps of "
              f"{d['generation_tokens_total'] / steps:.1f} tokens, "
              f"{d['prompt_tokens_total']:.0f} prompt tokens; a step: "
              f"{wall / steps * 1000:.2f} ms, of which forward "
              f"{d['forward_seconds_total'] / steps * 1000:.2f} ms, sampling "
              f"{d['sample_seconds_total'] / steps * 1000:.2f} ms", flush=True)
finally:
    server.kill()
    server.wait()

"""What the tests of `MODEL --serve` share: a server on a free loopback
port, raw HTTP requests, the command line's answers to compare with, and
a copy of a model folder given Phi-3's chat template (its turns are plain
text to a tokenizer without them)."""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, headers=None, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = raw if raw is not None else (
        json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers=headers or {})
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    return resp.status, text


def start(model, folder, *extra):
    """`model --weights folder --serve` on a free port, once /health answers
    (with --api-key, /health needs no key)."""
    port = free_port()
    proc = subprocess.Popen(
        [model, "--weights", folder, "--serve", "--port", str(port), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):
        try:
            status, _ = request(port, "GET", "/health")
            if status == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("FAIL: the server did not answer /health: " +
             proc.stderr.read().decode())


def check(ok, what):
    if not ok:
        sys.exit("FAIL: " + what)
    print("ok: " + what)


def cli(model, folder, prompt, n):
    """The command line's greedy text for `prompt` (the prompt included)."""
    out = subprocess.run([model, "--weights", folder, "--prompt", prompt,
                          "--max-new-tokens", str(n)],
                         capture_output=True, text=True, check=True).stdout
    return out.rstrip("\n")


def cli_chat(model, folder, message, n):
    """`--chat`'s greedy answer to one message."""
    return subprocess.run(
        [model, "--weights", folder, "--chat", "--max-new-tokens", str(n)],
        input=message + "\n", capture_output=True, text=True,
        check=True).stdout.rstrip("\n")


def with_chat_template(weights, folder):
    """A copy of `weights` in `folder` whose tokenizer_config.json has Phi-3's
    chat template."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(weights, folder)
    config_path = os.path.join(folder, "tokenizer_config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["chat_template"] = (
        "{% for m in messages %}{% if m.role == 'user' %}<|user|>\n"
        "{{ m.content }}<|end|>\n{% else %}<|assistant|>\n{{ m.content }}"
        "<|end|>\n{% endif %}{% endfor %}<|assistant|>\n")
    with open(config_path, "w") as f:
        json.dump(config, f)
    return folder

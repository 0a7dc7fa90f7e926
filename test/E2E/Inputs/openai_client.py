#!/usr/bin/env python3
"""openai_client.py MODEL WEIGHTS CHAT-DIR: `MODEL --serve` driven by the
`openai` Python client from PyPI (run by the interpreter that has it).

A server with --api-key on a copy of WEIGHTS given a chat template: the
client's completion, plain and streamed, equals the command line's greedy
text; its chat completion, plain and streamed, equals `--chat`'s answer;
the model is listed; a wrong key raises AuthenticationError; max_tokens < 0
and a prompt over the context raise BadRequestError with the server's
message, and the server still answers after them.
Prints one line a check and exits non-zero on the first failure.
"""
import os
import sys

import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_common import check, cli, cli_chat, start, with_chat_template  # noqa: E402

model, weights, chat_dir = sys.argv[1:4]
folder = with_chat_template(weights, chat_dir)
proc, port = start(model, folder, "--api-key", "sesame")
try:
    base = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=base, api_key="sesame", max_retries=0,
                           timeout=60)
    ids = [m.id for m in client.models.list()]
    check(len(ids) == 1, f"models.list: {ids}")

    prompt = "Once upon a time"
    want = cli(model, folder, prompt, 32)
    got = client.completions.create(model=ids[0], prompt=prompt, max_tokens=32,
                                    temperature=0)
    check(prompt + got.choices[0].text == want
          and got.usage.completion_tokens == 32,
          "completions.create equals the command line's greedy text")
    pieces = [c.choices[0].text for c in client.completions.create(
        model=ids[0], prompt=prompt, max_tokens=32, temperature=0,
        stream=True) if c.choices]
    check(prompt + "".join(pieces) == want,
          "completions.create(stream=True): the same text in pieces")

    message = "Once upon a time"
    want_chat = cli_chat(model, folder, message, 24)
    messages = [{"role": "user", "content": message}]
    chat = client.chat.completions.create(model=ids[0], messages=messages,
                                          max_tokens=24, temperature=0)
    check(chat.choices[0].message.role == "assistant"
          and chat.choices[0].message.content == want_chat,
          "chat.completions.create equals --chat's answer")
    deltas = [c.choices[0].delta.content or "" for c in
              client.chat.completions.create(model=ids[0], messages=messages,
                                             max_tokens=24, temperature=0,
                                             stream=True) if c.choices]
    check("".join(deltas) == want_chat,
          "chat.completions.create(stream=True): the same answer in pieces")

    wrong = openai.OpenAI(base_url=base, api_key="open", max_retries=0)
    try:
        wrong.completions.create(model=ids[0], prompt=prompt, max_tokens=2)
        check(False, "a wrong key is refused")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, "a wrong key: AuthenticationError (401)")
    for what, kwargs in [("max_tokens < 0", {"max_tokens": -1}),
                         ("a prompt over the context",
                          {"prompt": prompt * 400, "max_tokens": 2})]:
        try:
            client.completions.create(
                model=ids[0], **{"prompt": prompt, **kwargs})
            check(False, what + " is refused")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and e.message,
                  f"{what}: BadRequestError: {e.message}")
    again = client.completions.create(model=ids[0], prompt=prompt,
                                      max_tokens=32, temperature=0)
    check(again.choices[0].text == got.choices[0].text,
          "still serving, the same answer")
finally:
    proc.kill()
    proc.wait()
print("PASS")

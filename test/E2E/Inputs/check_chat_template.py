"""check_chat_template.py TOKENIZER_DIR MESSAGE OUTPUT: the prompt an
executable printed with --chat --print-prompt must be exactly what the
model's own chat_template (tokenizer_config.json, rendered with Jinja as
transformers does) makes of one user MESSAGE with add_generation_prompt."""
import json
import sys

import jinja2

tokenizer_dir, message, output = sys.argv[1:4]
config = json.load(open(f"{tokenizer_dir}/tokenizer_config.json"))


def content(token):
    return token.get("content") if isinstance(token, dict) else token


env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
expected = env.from_string(config["chat_template"]).render(
    messages=[{"role": "user", "content": message}],
    add_generation_prompt=True,
    bos_token=content(config.get("bos_token")) or "",
    eos_token=content(config.get("eos_token")) or "")
printed = open(output, encoding="utf-8").read()
text = printed.split("\n--- ")[0]
if text != expected:
    print(f"MISMATCH:\n template: {expected!r}\n printed:  {text!r}")
    sys.exit(1)
print(f"MATCH {expected!r}")

#!/usr/bin/env python3
"""perplexity_reference.py MODEL_DIR TEXT OUT.json KEY [--window N] [--ids F]

The perplexity Hugging Face transformers gives a causal LM over a text,
scored as decc's --perplexity (and llama.cpp's perplexity tool) score it:
the text's tokens (sentencepiece, the model folder's tokenizer.model, no
BOS) cut into whole windows of N, each window's first token replaced by
BOS, the tokens from N/2 + 1 to the end of each window scored, f32
throughout. Adds {"perplexity", "scored_tokens", "windows", "tolerance"}
under KEY to OUT.json (created if missing), the reference
test/E2E/perplexity.test holds decc to.

Needs: torch, transformers, sentencepiece (pip). Made on the GPU machine
(CPU is fine too: stories260K is tiny).
"""
import argparse
import json
import math
import os

import torch
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("text")
p.add_argument("out")
p.add_argument("key")
p.add_argument("--window", type=int, default=256)
p.add_argument("--tolerance", type=float, default=1e-4)
p.add_argument("--ids", help="the text's token ids (whitespace-separated), "
               "made elsewhere with sentencepiece, for a machine without it")
a = p.parse_args()

bos = json.load(open(os.path.join(a.model, "config.json")))["bos_token_id"]
if a.ids:
    ids = [int(t) for t in open(a.ids).read().split()]
else:
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(
        model_file=os.path.join(a.model, "tokenizer.model"))
    # Bytes as they are (CRLF stays CRLF), as decc and llama.cpp read them.
    ids = sp.encode(open(a.text, "rb").read().decode("utf-8"))
model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).eval()
n = a.window
windows = len(ids) // n
nll, scored = 0.0, 0
with torch.no_grad():
    for w in range(windows):
        chunk = ids[w * n:(w + 1) * n]
        chunk[0] = bos
        logits = model(torch.tensor([chunk])).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        for j in range(n // 2, n - 1):
            nll -= logp[j, chunk[j + 1]].item()
            scored += 1
entry = {"perplexity": math.exp(nll / scored), "scored_tokens": scored,
         "windows": windows, "window": n, "tolerance": a.tolerance,
         "text": os.path.basename(a.text), "made_by": "transformers " +
         __import__("transformers").__version__ + ", torch " + torch.__version__}
out = json.load(open(a.out)) if os.path.exists(a.out) else {}
out[a.key] = entry
json.dump(out, open(a.out, "w"), indent=1, sort_keys=True)
print(a.key, entry)

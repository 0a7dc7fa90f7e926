"""hf_baseline.py: Hugging Face transformers on the same GPU, as the baseline
of bench/gpu.sh: a LlamaForCausalLM with InternVL2-2B's language-model shape
(InternLM2-1.8B: hidden 2048, 24 layers, 16 heads / 8 kv heads, intermediate
8192, vocabulary 92553), random bf16 weights, greedy decode with the KV
cache (eager or sdpa attention), timed like decc's --benchmark: a 128-token
prefill, then 32 decode steps."""
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

attn = sys.argv[1] if len(sys.argv) > 1 else "sdpa"
config = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                     num_attention_heads=16, num_key_value_heads=8, vocab_size=92553,
                     max_position_embeddings=4096, tie_word_embeddings=False,
                     attn_implementation=attn)
torch.manual_seed(1)
model = LlamaForCausalLM(config).to(device="cuda", dtype=torch.bfloat16).eval()
prompt = torch.tensor([[(i * 7919 + 13) % config.vocab_size for i in range(128)]], device="cuda")
weights = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "embed_tokens" not in n)
with torch.no_grad():
    for _ in range(2):  # warm up
        model.generate(prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model(prompt, use_cache=True)
    torch.cuda.synchronize()
    prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.generate(prompt, max_new_tokens=33, min_new_tokens=33, do_sample=False)
    torch.cuda.synchronize()
    total = time.perf_counter() - t0
decode = (total - prefill) / 32
import transformers
print(f"hf_baseline ({attn}, transformers {transformers.__version__}, torch {torch.__version__}): prefill 128 tokens in {prefill * 1e3:.1f} ms; "
      f"decode {decode * 1e3:.2f} ms/token, {weights / decode / 1e9:.0f} GB/s of weights")

"""model_flops.py CONFIG TOKENS: the FLOPs of a prefill of TOKENS tokens and
the bytes of a decode step, as docs/PERF.md counts them.

prefill: every projection's weights x 2 x tokens (q/k/v, o, the MLP), the
causal attention 2 x T(T+1)/2 x head_dim x heads x 2 (q.k and p.v) per
layer, and the LM head for the one row a prompt needs."""
import json
import sys

c = json.load(open(sys.argv[1]))
c = c.get("llm_config", c)
T = int(sys.argv[2])
if c["model_type"] == "mpt":
    h, L, heads = c["d_model"], c["n_layers"], c["n_heads"]
    kv = c["attn_config"].get("kv_n_heads", heads) if c["attn_config"].get("attn_type") != "multihead_attention" else heads
    inter = h * c.get("expansion_ratio", 4)
    mlp = 2 * h * inter
else:
    h, L, heads = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]
    kv = c.get("num_key_value_heads", heads)
    inter = c["intermediate_size"]
    mlp = 3 * h * inter
d = h // heads
proj = L * (h * (heads + 2 * kv) * d + heads * d * h + mlp)
attention = L * 2 * (T * (T + 1) // 2) * d * heads * 2
head = c["vocab_size"] * h
flops = 2 * proj * T + attention + 2 * head
print(f"{flops / 1e12:.3f} TFLOP (projections {2 * proj * T / 1e12:.3f}, attention {attention / 1e12:.3f})")

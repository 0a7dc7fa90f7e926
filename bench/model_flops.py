"""model_flops.py CONFIG TOKENS: the FLOPs of a prefill of TOKENS tokens,
as docs/PERF.md counts them (and, for bench/cpu_share.py, the weight bytes
a decode step streams).

prefill: every projection's weights x 2 x tokens (q/k/v, o, the MLP), the
causal attention 2 x T(T+1)/2 x head_dim x heads x 2 (q.k and p.v) per
layer, and the LM head for the one row a prompt needs."""
import json
import sys


def prefill_flops(path, T):
    """(total, projections, attention) FLOPs of a prefill of T tokens."""
    c = json.load(open(path))
    c = c.get("llm_config", c)
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
    return flops, 2 * proj * T, attention


def decode_weight_bytes(path, bytes_per_weight):
    """The weights a decode step streams: every projection and the LM head
    (the embedding is a gather of one row)."""
    c = json.load(open(path))
    c = c.get("llm_config", c)
    h = c["d_model"] if c["model_type"] == "mpt" else c["hidden_size"]
    proj = (prefill_flops(path, 1)[1]) // 2
    return (proj + c["vocab_size"] * h) * bytes_per_weight


if __name__ == "__main__":
    flops, proj, attention = prefill_flops(sys.argv[1], int(sys.argv[2]))
    print(f"{flops / 1e12:.3f} TFLOP (projections {proj / 1e12:.3f}, attention {attention / 1e12:.3f})")

#!/usr/bin/env python3
"""A random checkpoint of a real model shape, in Hugging Face's layout, for
bench/cpu-peers.sh: decc and llama.cpp (after its convert_hf_to_gguf.py)
read the same weights.

    make_peer_checkpoint.py internlm2|qwen2 SHARED OUT

internlm2: InternVL2-2B's language model (InternLM2 1.8B) with a vocabulary
of 92544, the pieces of its tokenizer.model (llama.cpp's converter cannot
take the 9 added tokens of InternVL2's 92553); qwen2: Qwen2.5-0.5B-Instruct
(tied embeddings). Weights N(0, 0.02) in bf16, norms 1; numpy only.
"""
import json
import os
import shutil
import struct
import sys

import numpy as np


def internlm2(shared):
    c = json.load(open(f"{shared}/data/configs/internvl2-2b/config.json"))["llm_config"]
    config = {k: c[k] for k in ("hidden_size", "intermediate_size", "num_attention_heads",
                                "num_key_value_heads", "num_hidden_layers", "rms_norm_eps",
                                "rope_theta", "max_position_embeddings", "rope_scaling",
                                "bias", "hidden_act")}
    config.update(architectures=["InternLM2ForCausalLM"], model_type="internlm2",
                  vocab_size=92544, bos_token_id=1, eos_token_id=2, pad_token_id=2,
                  tie_word_embeddings=False, torch_dtype="bfloat16", attn_implementation="eager")
    h, f, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    d = h // config["num_attention_heads"]
    qkv = (config["num_attention_heads"] + 2 * config["num_key_value_heads"]) * d
    shapes = {"model.tok_embeddings.weight": (92544, h), "model.norm.weight": (h,),
              "output.weight": (92544, h)}
    for i in range(n):
        p = f"model.layers.{i}."
        shapes.update({p + "attention.wqkv.weight": (qkv, h), p + "attention.wo.weight": (h, h),
                       p + "attention_norm.weight": (h,), p + "ffn_norm.weight": (h,),
                       p + "feed_forward.w1.weight": (f, h), p + "feed_forward.w3.weight": (f, h),
                       p + "feed_forward.w2.weight": (h, f)})
    tokenizer = {"tokenizer.model": f"{shared}/data/internlm2-tokenizer/tokenizer.model"}
    tokenizer_config = {"tokenizer_class": "InternLM2Tokenizer", "bos_token": "<s>",
                        "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>",
                        "add_bos_token": True, "add_eos_token": False}
    return config, shapes, tokenizer, tokenizer_config


def qwen2(shared):
    config = json.load(open(f"{shared}/data/configs/qwen2.5-0.5b-instruct/config.json"))
    config["torch_dtype"] = "bfloat16"
    h, f, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    d = h // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * d
    shapes = {"model.embed_tokens.weight": (config["vocab_size"], h), "model.norm.weight": (h,)}
    for i in range(n):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (h, h), p + "self_attn.q_proj.bias": (h,),
                       p + "self_attn.k_proj.weight": (kv, h), p + "self_attn.k_proj.bias": (kv,),
                       p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.v_proj.bias": (kv,),
                       p + "self_attn.o_proj.weight": (h, h),
                       p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                       p + "mlp.gate_proj.weight": (f, h), p + "mlp.up_proj.weight": (f, h),
                       p + "mlp.down_proj.weight": (h, f)})
    tokenizer = {name: f"{shared}/data/qwen2-tokenizer/{name}"
                 for name in ("tokenizer.json", "tokenizer_config.json")}
    return config, shapes, tokenizer, None


def bf16_bits(a):
    """float32 -> bfloat16 bit patterns, rounded to nearest even."""
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, shapes, rng):
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(blob)))
        out.write(blob)
        for name, shape in shapes.items():
            if name.endswith("norm.weight"):
                values = np.ones(shape, np.float32)
            else:
                values = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
            out.write(bf16_bits(values).tobytes())


def main():
    kind, shared, out = sys.argv[1:4]
    config, shapes, tokenizer, tokenizer_config = {"internlm2": internlm2, "qwen2": qwen2}[kind](shared)
    os.makedirs(out, exist_ok=True)
    json.dump(config, open(f"{out}/config.json", "w"), indent=1)
    for name, source in tokenizer.items():
        shutil.copy(source, f"{out}/{name}")
    if tokenizer_config:
        json.dump(tokenizer_config, open(f"{out}/tokenizer_config.json", "w"), indent=1)
    write_safetensors(f"{out}/model.safetensors", shapes, np.random.default_rng(0))


if __name__ == "__main__":
    main()

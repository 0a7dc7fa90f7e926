"""make_internvl_checkpoint.py SRC DST [--shards N]

Wraps the language-model checkpoint folder SRC (config.json +
model.safetensors) as InternVL publishes its models (InternVL's own
modeling_internvl_chat.py, ../shared/data/internvl-reference): one folder
whose config.json is an `internvl_chat` config with the language model's
config under `llm_config` and a `vision_config`, and whose safetensors
hold the language model's tensors under `language_model.` beside the
vision encoder's (`vision_model.*`) and the projector's (`mlp1.*`;
constant stand-ins of the right shapes: a text-only prompt never reads
them). With --shards N the
tensors are split over N files listed by model.safetensors.index.json, as
Hugging Face saves large models.
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402


def main():
    src, dst = sys.argv[1], sys.argv[2]
    shards = int(sys.argv[sys.argv.index("--shards") + 1]) if "--shards" in sys.argv else 1
    os.makedirs(dst, exist_ok=True)
    llm = json.load(open(os.path.join(src, "config.json")))
    tensors = {}
    for name, t in read_safetensors(os.path.join(src, "model.safetensors")).items():
        tensors["language_model." + name] = t
    width = llm.get("hidden_size", llm.get("d_model"))
    # The vision encoder and projector of the vision_config below (one
    # InternViT layer of width 32, 448-pixel tiles): every tensor the
    # executable loads, constant stand-ins (a text-only prompt never reads
    # them; test/E2E/internvl-vision.test checks real ones).
    def stand_in(*shape):
        n = 1
        for d in shape:
            n *= d
        return ("F32", list(shape), struct.pack("<%df" % n, *([0.5] * n)))

    v, inter, shuffled = 32, 128, 32 * 4
    vit = {"embeddings.class_embedding": (1, 1, v), "embeddings.patch_embedding.weight": (v, 3, 14, 14),
           "embeddings.patch_embedding.bias": (v,), "embeddings.position_embedding": (1, 1025, v)}
    layer = {"norm1.weight": (v,), "norm1.bias": (v,), "attn.qkv.weight": (3 * v, v), "attn.qkv.bias": (3 * v,),
             "attn.proj.weight": (v, v), "attn.proj.bias": (v,), "ls1": (v,), "norm2.weight": (v,),
             "norm2.bias": (v,), "mlp.fc1.weight": (inter, v), "mlp.fc1.bias": (inter,),
             "mlp.fc2.weight": (v, inter), "mlp.fc2.bias": (v,), "ls2": (v,)}
    vit.update({"encoder.layers.0." + k: shape for k, shape in layer.items()})
    for name, shape in vit.items():
        tensors["vision_model." + name] = stand_in(*shape)
    projector = {"0.weight": (shuffled,), "0.bias": (shuffled,), "1.weight": (width, shuffled),
                 "1.bias": (width,), "3.weight": (width, width), "3.bias": (width,)}
    for name, shape in projector.items():
        tensors["mlp1." + name] = stand_in(*shape)
    names = list(tensors)
    if shards == 1:
        write_safetensors(os.path.join(dst, "model.safetensors"), tensors)
    else:
        weight_map = {}
        for i in range(shards):
            file = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
            part = {n: tensors[n] for n in names[i::shards]}
            write_safetensors(os.path.join(dst, file), part)
            weight_map.update({n: file for n in part})
        json.dump({"metadata": {}, "weight_map": weight_map},
                  open(os.path.join(dst, "model.safetensors.index.json"), "w"), indent=2)
    config = {
        "architectures": ["InternVLChatModel"],
        "model_type": "internvl_chat",
        "template": "internlm2-chat",
        "downsample_ratio": 0.5,
        "force_image_size": 448,
        "llm_config": llm,
        "vision_config": {"model_type": "intern_vit_6b", "hidden_size": 32, "intermediate_size": 128,
                          "patch_size": 14, "image_size": 448, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "norm_type": "layer_norm", "hidden_act": "gelu",
                          "layer_norm_eps": 1e-6, "qkv_bias": True, "qk_normalization": False},
    }
    json.dump(config, open(os.path.join(dst, "config.json"), "w"), indent=2)


if __name__ == "__main__":
    main()

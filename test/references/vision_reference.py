"""vision_reference.py SHARED OUT_DIR

References for InternVL's image path (issue 15, point 3), made by
InternVL's own PyTorch code (../shared/data/internvl-reference, MIT): a
small InternVL with random weights, InternVL2-2B's structure at toy widths
(InternViT: 448-pixel tiles of 14x14 patches, class token, position
embeddings, pre-LayerNorm blocks with qkv bias and layer scale, GELU MLP;
pixel shuffle 0.5 (ps_version v2); the mlp1 projector; an InternLM2
language model with dynamic NTK RoPE), run on two real photographs:

  chelsea.png (451 x 300) with a budget of 2 tiles: a 2 x 1 grid + thumbnail
  hubble_deep_field.jpg (1000 x 872) with a budget of 1: one tile

Writes OUT_DIR/config.json and model.safetensors (InternVL's one-folder
layout: vision_model.*, mlp1.*, language_model.model.*,
language_model.output.*; weights rounded to bf16 and stored so, every
value exactly representable, the model run on their f32 upcast), and per
case OUT_DIR/<case>.safetensors (f32 run) and <case>-hf-bf16.safetensors
(the same model run in bf16, what bf16 builds are held to):

  pixel_stats     [tiles, 3] f64: per tile, the sum, sum of squares and
                  first value of the normalized pixel values (the pixels
                  themselves are decc-image's test, byte for byte)
  vit_embeds      [tiles, 256, hidden]: the projector's output, the
                  vectors that replace the <IMG_CONTEXT> embeddings
  prompt_ids      [P]: BOS, 5 text ids, <img>, 256 x tiles <IMG_CONTEXT>,
                  </img>, 6 text ids (ids: versions.json)
  prefill_logits  [P, vocab]
  generated_ids   [G]: greedy, each step the full sequence run again
  decode_logits   [G, vocab]

With a third argument qk-norm: the same at InternViT-6B's block (RMSNorm,
qk_normalization, no qkv bias), the Hubble case alone.

Run with: pip install torch torchvision transformers timm einops peft
pillow safetensors numpy, with transformers 4.x (InternVL's code imports
what 5.x removed; 4.46.3 made the stored files); the versions, the image
token ids and each case's prompt seed go into OUT_DIR/versions.json.
"""
import json
import math
import os
import sys
import types

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file

shared, out_dir = sys.argv[1], sys.argv[2]
# "qk-norm": InternViT-6B's block instead of InternViT-300M's (RMSNorm for
# norm1/norm2, queries and keys RMS-normalized over all heads, no qkv
# bias), the Hubble case alone (test/E2E/Inputs/internvl-tiny-qknorm).
QK_NORM = len(sys.argv) > 3 and sys.argv[3] == "qk-norm"
sys.path.insert(0, os.path.join(shared, "data", "internvl-reference"))
# internvl/train/dataset.py imports video readers at the top; the three
# image functions used here do not need them (transformers, imported
# first, has looked for the real ones).
for name in ("cv2", "imageio", "decord"):
    module = types.ModuleType(name)
    module.VideoReader = None
    sys.modules.setdefault(name, module)
from internvl.train.dataset import build_transform, dynamic_preprocess  # noqa: E402
from internvl.model.internvl_chat import InternVLChatConfig, InternVLChatModel  # noqa: E402

torch.manual_seed(0)
VOCAB, IMG_START, IMG_END, IMG_CONTEXT = 256, 248, 249, 250
G = 8

config = InternVLChatConfig(
    vision_config={
        "architectures": ["InternVisionModel"], "hidden_size": 64, "intermediate_size": 128,
        "num_attention_heads": 4, "num_hidden_layers": 2, "image_size": 448, "patch_size": 14,
        "qkv_bias": not QK_NORM, "qk_normalization": QK_NORM,
        "norm_type": "rms_norm" if QK_NORM else "layer_norm",
        "layer_norm_eps": 1e-6, "hidden_act": "gelu", "use_flash_attn": False,
        "drop_path_rate": 0.0, "initializer_factor": 1.0, "model_type": "intern_vit_6b"},
    llm_config={
        "architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", "hidden_size": 64,
        "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 2,
        "num_hidden_layers": 2, "vocab_size": VOCAB, "max_position_embeddings": 2048,
        "rope_theta": 1000000, "rope_scaling": {"type": "dynamic", "factor": 2.0},
        "rms_norm_eps": 1e-5, "bias": False, "tie_word_embeddings": False,
        "attn_implementation": "eager", "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2},
    use_backbone_lora=0, use_llm_lora=0, select_layer=-1, force_image_size=448,
    downsample_ratio=0.5, template="internlm2-chat", dynamic_image_size=True,
    use_thumbnail=True, ps_version="v2", min_dynamic_patch=1, max_dynamic_patch=12)
model = InternVLChatModel(config, use_flash_attn=False).eval()
model.img_context_token_id = IMG_CONTEXT

# Weights: a draw per parameter in named_parameters() order, rounded to
# bf16. Linear weights N(0, 1/fan_in), biases N(0, 0.02^2), norm weights
# U(0.8, 1.2), norm biases N(0, 0.05^2), layer scales U(0.5, 1), class
# token and position embeddings N(0, 0.5^2), token embeddings N(0, 1).
generator = torch.Generator().manual_seed(2024)
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith(("ls1", "ls2")):
            v = 0.5 + 0.5 * torch.rand(p.shape, generator=generator)
        elif "norm" in name or name.startswith("mlp1.0") or "attention_norm" in name:
            v = (0.8 + 0.4 * torch.rand(p.shape, generator=generator)) if name.endswith("weight") \
                else 0.05 * torch.randn(p.shape, generator=generator)
        elif "class_embedding" in name or "position_embedding" in name:
            v = 0.5 * torch.randn(p.shape, generator=generator)
        elif "tok_embeddings" in name:
            v = torch.randn(p.shape, generator=generator)
        elif name.endswith("bias"):
            v = 0.02 * torch.randn(p.shape, generator=generator)
        else:
            fan_in = math.prod(p.shape[1:])
            v = torch.randn(p.shape, generator=generator) / math.sqrt(fan_in)
        p.copy_(v.to(torch.bfloat16).float())

os.makedirs(out_dir, exist_ok=True)
state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
config_dict = config.to_dict()
with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump(config_dict, f, indent=2, sort_keys=True)

transform = build_transform(is_train=False, input_size=448)
cases = [("chelsea-2", "chelsea.png", 2), ("hubble-1", "hubble_deep_field.jpg", 1)]
if QK_NORM:
    cases = cases[1:]


def run(m, dtype, pixel_values, prompt_ids):
    with torch.no_grad():
        vit = m.extract_feature(pixel_values.to(dtype))
        embeds = m.language_model.get_input_embeddings()(prompt_ids[None]).clone()
        selected = prompt_ids == IMG_CONTEXT
        embeds[0, selected] = vit.reshape(-1, vit.shape[-1]).to(embeds.dtype)
        logits = m.language_model(inputs_embeds=embeds).logits[0].float()
        ids, steps = [], []
        for _ in range(G):
            token = int(logits[-1].argmax()) if not steps else int(steps[-1].argmax())
            ids.append(token)
            more = m.language_model.get_input_embeddings()(torch.tensor([[token]]))
            embeds = torch.cat([embeds, more], dim=1)
            steps.append(m.language_model(inputs_embeds=embeds).logits[0, -1].float())
        # decode_logits[i]: the logits that chose generated_ids[i + 1]
        # (HF generate's output_logits: the first is the prefill's last row).
        decode = torch.stack([logits[-1]] + steps[:-1])
        return vit.float(), logits, torch.tensor(ids, dtype=torch.int64), decode


def margin(decode):
    top = decode.topk(2, dim=1).values
    return float((top[:, 0] - top[:, 1]).min())


# The bf16 model: the same bf16-representable weights, run in bf16.
model_bf16 = InternVLChatModel(config, use_flash_attn=False).eval()
model_bf16.load_state_dict(model.state_dict())
model_bf16.img_context_token_id = IMG_CONTEXT
model_bf16 = model_bf16.to(torch.bfloat16)

summary = {}
for case, image_name, budget in cases:
    image = Image.open(os.path.join(shared, "data", "images", image_name)).convert("RGB")
    tiles = dynamic_preprocess(image, min_num=1, max_num=budget, image_size=448, use_thumbnail=True)
    pixel_values = torch.stack([transform(t) for t in tiles])
    n = pixel_values.shape[0]
    flat = pixel_values.reshape(n, -1).double()
    stats = torch.stack([flat.sum(1), (flat * flat).sum(1), flat[:, 0]], 1)  # f64
    # The text around the image: the first seed whose greedy tokens have a
    # top-1/top-2 margin of 5e-3 or more at every step (f32) and come out
    # the same in bf16, so that both runs' tokens are robust to rounding.
    for seed in range(100):
        rng = np.random.default_rng(seed)
        text_a = rng.integers(3, 240, size=5).tolist()
        text_b = rng.integers(3, 240, size=6).tolist()
        prompt = [1] + text_a + [IMG_START] + [IMG_CONTEXT] * (256 * n) + [IMG_END] + text_b
        prompt_ids = torch.tensor(prompt, dtype=torch.int64)
        runs = {"": run(model, torch.float32, pixel_values, prompt_ids),
                "-hf-bf16": run(model_bf16, torch.bfloat16, pixel_values, prompt_ids)}
        if margin(runs[""][3]) >= 5e-3 and torch.equal(runs[""][2], runs["-hf-bf16"][2]):
            break
    for suffix, (vit, logits, ids, decode) in runs.items():
        save_file({"pixel_stats": stats, "vit_embeds": vit.contiguous(), "prompt_ids": prompt_ids,
                   "prefill_logits": logits.contiguous(), "generated_ids": ids,
                   "decode_logits": decode.contiguous()},
                  os.path.join(out_dir, case + suffix + ".safetensors"), metadata={"format": "pt"})
    summary[case] = {"image": image_name, "budget": budget, "tiles": n, "prompt_seed": seed,
                     "prompt_tokens": len(prompt), "min_margin": margin(runs[""][3]),
                     "generated": runs[""][2].tolist()}
    print(case, summary[case])

with open(os.path.join(out_dir, "versions.json"), "w") as f:
    json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
               "image_token_ids": {"<img>": IMG_START, "</img>": IMG_END, "<IMG_CONTEXT>": IMG_CONTEXT},
               "cases": summary}, f, indent=2)

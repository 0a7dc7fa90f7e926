"""vision_baseline.py: InternVL's own vision encoder in PyTorch on the same
GPU, the baseline of decc's --benchmark image encoding (bench/README.md).

    python3 vision_baseline.py CONFIG REFERENCE [--tiles 1,5,13]
                               [--attention eager,sdpa] [--device cuda]

CONFIG is an InternVL config.json (../shared/data/configs/internvl2-2b);
REFERENCE the folder holding InternVL's modeling_intern_vit.py and
configuration_intern_vit.py (../shared/data/internvl-reference/internvl/
model/internvl_chat). The encoder gets random bf16 weights and runs what
InternVLChatModel.extract_feature runs: InternViT over every tile, the CLS
row dropped, the pixel shuffle and the mlp1 projector, i.e. the work of
decc's vision plan. Attention:

- eager: the reference's _naive_attn, what InternViT runs without the
  flash_attn package (softmax of the full score matrix);
- sdpa: the same q/k/v through torch's scaled_dot_product_attention, which
  picks its flash kernel for bf16 on Hopper: the strong baseline.

Time: median of 5 after 2 warm-ups, CUDA synchronized. timm and einops are
stubbed when absent (DropPath is the identity at a drop rate of 0; einops
serves only the flash_attn path). Prints one JSON object per measurement.
"""
import argparse
import importlib.util
import json
import statistics
import sys
import time
import types

import torch
import torch.nn.functional as F
from torch import nn


def stubMissing():
    try:
        import timm.models.layers  # noqa: F401
    except ImportError:
        layers = types.ModuleType("timm.models.layers")
        layers.DropPath = lambda *args, **kwargs: nn.Identity()
        for name in ("timm", "timm.models"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["timm.models.layers"] = layers
    try:
        import einops  # noqa: F401
    except ImportError:
        einops = types.ModuleType("einops")
        einops.rearrange = None
        sys.modules["einops"] = einops


def loadReference(folder):
    package = types.ModuleType("vitref")
    package.__path__ = [folder]
    sys.modules["vitref"] = package
    for name in ("configuration_intern_vit", "modeling_intern_vit"):
        spec = importlib.util.spec_from_file_location(f"vitref.{name}", f"{folder}/{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"vitref.{name}"] = module
        spec.loader.exec_module(module)
    return sys.modules["vitref.modeling_intern_vit"], sys.modules["vitref.configuration_intern_vit"]


def sdpaAttention(self, x):
    batch, rows, width = x.shape
    qkv = self.qkv(x).reshape(batch, rows, 3, self.num_heads, width // self.num_heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    if self.qk_normalization:
        q = self.q_norm(q.transpose(1, 2).flatten(-2, -1)).view(batch, rows, self.num_heads, -1).transpose(1, 2)
        k = self.k_norm(k.transpose(1, 2).flatten(-2, -1)).view(batch, rows, self.num_heads, -1).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
    return self.proj(out.transpose(1, 2).reshape(batch, rows, width))


def pixelShuffle(x, scale=0.5):
    # InternVLChatModel.pixel_shuffle, ps_version v2.
    n, w, h, c = x.size()
    x = x.view(n, w, int(h * scale), int(c / scale)).permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(h * scale), int(w * scale), int(c / (scale * scale)))
    return x.permute(0, 2, 1, 3).contiguous()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("reference")
    parser.add_argument("--tiles", default="1,5,13")
    parser.add_argument("--attention", default="eager,sdpa")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()

    stubMissing()
    modeling, configuration = loadReference(args.reference)
    config = json.load(open(args.config))
    vision = dict(config["vision_config"])
    vision["use_flash_attn"] = False
    visionConfig = configuration.InternVisionConfig(**vision)
    ratio = config.get("downsample_ratio", 0.5)
    llmHidden = config["llm_config"]["hidden_size"]
    shuffled = vision["hidden_size"] * int(1 / ratio) ** 2

    torch.manual_seed(0)
    device = torch.device(args.device)
    with torch.device(device):
        encoder = modeling.InternVisionModel(visionConfig).to(torch.bfloat16).eval()
        projector = nn.Sequential(nn.LayerNorm(shuffled), nn.Linear(shuffled, llmHidden), nn.GELU(),
                                  nn.Linear(llmHidden, llmHidden)).to(torch.bfloat16).eval()
    attentionClass = modeling.InternAttention
    eager = attentionClass._naive_attn
    size = vision["image_size"]

    for attention in args.attention.split(","):
        attentionClass._naive_attn = sdpaAttention if attention == "sdpa" else eager
        for tiles in [int(t) for t in args.tiles.split(",")]:
            pixels = torch.randn(tiles, 3, size, size, device=device, dtype=torch.bfloat16)

            def run():
                with torch.no_grad():
                    embeds = encoder(pixel_values=pixels, output_hidden_states=False,
                                     return_dict=True).last_hidden_state[:, 1:, :]
                    side = int(embeds.shape[1] ** 0.5)
                    embeds = pixelShuffle(embeds.reshape(tiles, side, side, -1), ratio)
                    return projector(embeds.reshape(tiles, -1, embeds.shape[-1]))

            times = []
            for i in range(7):
                torch.cuda.synchronize()
                start = time.perf_counter()
                run()
                torch.cuda.synchronize()
                if i >= 2:
                    times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            print(json.dumps({"encoder": "InternViT + mlp1 (PyTorch " + torch.__version__ + ")",
                              "attention": attention, "tiles": tiles, "seconds": round(seconds, 5),
                              "tiles_per_s": round(tiles / seconds, 2),
                              "card": torch.cuda.get_device_name(device)}), flush=True)


if __name__ == "__main__":
    main()

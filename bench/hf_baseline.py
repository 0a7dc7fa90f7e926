"""hf_baseline.py: Hugging Face transformers on the same GPU and the same
model shapes as decc, the baselines of bench/gpu.sh.

    python3 hf_baseline.py CONFIG [--prefill 128,2048] [--decode 512,8192]
                           [--steps 256] [--compile [--compiled-only]]
                           [--device cuda]

CONFIG is a real config.json (../shared/data/configs/*/config.json; an
InternVL wrapper's llm_config is taken). The model gets random bf16 weights
and runs with sdpa attention:

- prefill: one forward over a prompt of each length with the KV cache, the
  logits of the last position only (as `generate` asks, and as decc's
  prefill does), median of 5 after warm-up;
- decode: `generate` of STEPS greedy tokens after a prompt of each length,
  minus that prompt's prefill, per token (HF's own loop, DynamicCache);
- with --compile, the same decode with a static cache and the decode step
  compiled by torch.compile (mode="reduce-overhead"; fullgraph where the
  model allows, else with graph breaks, as reported): what transformers
  does for cache_implementation="static"; one compile per context length,
  excluded from the timing.

InternLM2 is not in transformers (its own modeling code): its shape runs as
LlamaForCausalLM, the same computation with q/k/v unpacked. MPT's
max_seq_len is raised to fit the longest context (ALiBi has no table of
positions), and its attention is eager: transformers has no sdpa for MPT.
Prints one JSON object per measurement.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import transformers
from transformers import (AutoModelForCausalLM, CompileConfig, LlamaConfig,
                          MptConfig, Phi3Config, Qwen2Config)


def build_config(path, context):
    raw = json.load(open(path))
    raw = raw.get("llm_config", raw)
    kind = raw["model_type"]
    if kind == "internlm2":
        # Dynamic NTK scaling starts past max_position_embeddings (32k),
        # beyond every length measured here; without it the rotary step has
        # no data-dependent branch for torch.compile to break on.
        config = LlamaConfig(
            hidden_size=raw["hidden_size"],
            intermediate_size=raw["intermediate_size"],
            num_hidden_layers=raw["num_hidden_layers"],
            num_attention_heads=raw["num_attention_heads"],
            num_key_value_heads=raw["num_key_value_heads"],
            vocab_size=raw["vocab_size"],
            rms_norm_eps=raw.get("rms_norm_eps", 1e-6),
            max_position_embeddings=raw["max_position_embeddings"],
            rope_theta=raw.get("rope_theta", 10000.0),
            tie_word_embeddings=False)
        return config, "InternLM2 shape as LlamaForCausalLM"
    if kind == "mpt":
        config = MptConfig(**{k: v for k, v in raw.items()
                              if k not in ("architectures", "auto_map")})
        config.max_seq_len = max(config.max_seq_len, context)
        return config, "MptForCausalLM"
    cls = {"qwen2": Qwen2Config, "phi3": Phi3Config}[kind]
    config = cls(**{k: v for k, v in raw.items()
                    if k not in ("architectures", "auto_map")})
    return config, cls.__name__.replace("Config", "ForCausalLM")


def timed(fn, device, repeats=1):
    """Median seconds of `repeats` runs of fn (events on a GPU)."""
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def prompt_of(length, vocab, device):
    # The prompt decc's bench uses: (i * 7919 + 13) % vocab.
    return torch.tensor([[(i * 7919 + 13) % vocab for i in range(length)]],
                        device=device)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--prefill", default="128,2048")
    ap.add_argument("--decode", default="512,8192")
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--compiled-only", action="store_true",
                    help="with --compile, leave out the uncompiled decode "
                    "(when a session has time for one of them only)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--layers", type=int, default=0,
                    help="override the depth (a quick test of this script)")
    args = ap.parse_args()
    prefills = [int(x) for x in args.prefill.split(",") if x]
    decodes = [int(x) for x in args.decode.split(",") if x]
    context = max(prefills + [d + args.steps + 8 for d in decodes])
    config, arch = build_config(args.config, context)
    if args.layers:
        for key in ("num_hidden_layers", "n_layers"):
            if hasattr(config, key):
                setattr(config, key, args.layers)
    attention = "eager" if config.model_type == "mpt" else "sdpa"
    torch.manual_seed(1)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(args.device):
        model = AutoModelForCausalLM.from_config(config,
                                                 attn_implementation=attention)
    model = model.to(dtype=torch.bfloat16).eval()
    torch.set_default_dtype(torch.float32)
    vocab = config.vocab_size
    tag = {"config": args.config, "arch": arch,
           "transformers": transformers.__version__, "torch": torch.__version__}
    print(json.dumps({**tag, "event": "loaded"}), flush=True)

    def prefill(length):
        ids = prompt_of(length, vocab, args.device)
        return lambda: model(ids, use_cache=True, logits_to_keep=1)

    prefill_seconds = {}
    with torch.no_grad():
        for length in sorted(set(prefills + decodes)):
            run = prefill(length)
            timed(run, args.device, 2)
            prefill_seconds[length] = timed(run, args.device, 5)
            if length in prefills:
                print(json.dumps({**tag, "measure": "prefill", "impl": attention,
                                  "tokens": length,
                                  "ms": prefill_seconds[length] * 1e3}),
                      flush=True)

        def decode(length, compiled, fullgraph=True):
            ids = prompt_of(length, vocab, args.device)
            kwargs = dict(max_new_tokens=args.steps, min_new_tokens=args.steps,
                          do_sample=False)
            if compiled:
                kwargs["cache_implementation"] = "static"
                compile_config = CompileConfig(fullgraph=fullgraph,
                                               mode="reduce-overhead")
                if args.device != "cuda":  # this script's own test on a CPU
                    compile_config._compile_all_devices = True
                kwargs["compile_config"] = compile_config
            return lambda: model.generate(ids, **kwargs)

        runs = [False, True] if args.compile else [False]
        if args.compile and args.compiled_only:
            runs = [True]
        for compiled in runs:
            impl = "torch.compile" if compiled else attention
            if compiled and not model._can_compile_fullgraph:
                # generate() would run it uncompiled, with a DynamicCache.
                print(json.dumps({**tag, "measure": "decode", "impl": impl,
                                  "error": f"{arch} has no static cache in "
                                  "transformers: generate() does not compile "
                                  "it"}), flush=True)
                continue
            for length in decodes:
                t0 = time.perf_counter()
                run, fullgraph, error = None, compiled, None
                for attempt in ([True, False] if compiled else [False]):
                    try:
                        run = decode(length, compiled, attempt)
                        timed(run, args.device, 2 if compiled else 1)
                        fullgraph, error = attempt, None
                        break
                    except Exception as e:  # recorded, not hidden
                        torch._dynamo.reset()
                        run, error = None, repr(e)[:300]
                if run is None:
                    print(json.dumps({**tag, "measure": "decode", "impl": impl,
                                      "context": length, "error": error}),
                          flush=True)
                    continue
                warm = time.perf_counter() - t0
                total = timed(run, args.device, 1)
                per_token = (total - prefill_seconds[length]) / args.steps
                print(json.dumps({**tag, "measure": "decode", "impl": impl,
                                  "fullgraph": fullgraph, "context": length,
                                  "steps": args.steps,
                                  "ms_per_token": per_token * 1e3,
                                  "warmup_s": warm}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

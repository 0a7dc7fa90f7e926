#!/usr/bin/env bash
# bench/gpu.sh DIR [PART...]    (on the GPU machine; builds nothing there)
#
# The GPU benchmark of issue 11, everything measured in one session on one
# card: five real model shapes (InternVL2-2B's language model, Qwen2.5-0.5B,
# Phi-3-mini-128k, InternLM2-chat-7B, MPT-7B; bf16, random weights) compiled
# here by bench/gpu-prepare.sh into DIR/bin/<model>-bf16:
#   - prefill of 128 and 2048 tokens (median of 3), and 2048 on the
#     short-prompt kernels (DECC_LARGE_PREFILL_TOKENS) to isolate the wgmma
#     path's gain (SHORT_KERNELS=0 leaves that out);
#   - 256 decode steps after a 512-token prompt and after 8192 tokens, with
#     the bytes a step reads (weights + KV cache);
# beside the baselines, in the same session:
#   - card: streaming read and copy bandwidth (gpu_membw), bf16 matrix rate
#     (gpu_matrate.py, torch);
#   - DIR/bin/base/<model>-bf16: decc before the change (prefill 2048 and
#     decode after 512 for every shape; prefill 128 and decode after 8192
#     for the 1.8B);
#   - Hugging Face transformers (sdpa; MPT: eager) and torch.compile (static
#     cache, mode="reduce-overhead") on the same shapes (hf_baseline.py;
#     HF_STEPS decode steps, HF_SECONDS a model).
# PARTS: card decc base hf compiled (default: card decc base hf). Output: one line per measurement.
set -uo pipefail
dir=$(cd "$1" && pwd)
shift
parts=${*:-card decc base hf}
here=$(cd "$(dirname "$0")" && pwd)
configs=${CONFIGS:-$dir/configs}
export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
models="internvl2-2b qwen2.5-0.5b-instruct phi-3-mini-128k-instruct internlm2-chat-7b mpt-7b-instruct"
echo "gpu.sh: $(date -u +%Y-%m-%dT%H:%MZ) on $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
ids() { python3 -c "print(','.join(str((i * 7919 + 13) % $2) for i in range($1)))"; }
vocab() { python3 -c "import json; c=json.load(open('$configs/$1/config.json')); print(c.get('llm_config', c)['vocab_size'])"; }

for part in $parts; do
  case $part in
  card)
    "$dir/gpu_membw"
    python3 "$here/gpu_matrate.py" 2>&1 | grep gpu_matrate
    ;;
  decc)
    for model in $models; do
      exe=$dir/bin/$model-bf16
      echo "decc $model:"
      "$exe" --random-weights 1 --benchmark-prefill 128,2048 --benchmark-decode 512,8192 \
        --benchmark-steps 256 2>&1 | sed 's/^/  /'
      [ "${SHORT_KERNELS:-1}" = 1 ] || continue
      echo "decc $model, 2048 on the short-prompt kernels:"
      DECC_LARGE_PREFILL_TOKENS=1000000 "$exe" --random-weights 1 --benchmark-prefill 2048 2>&1 |
        grep prefill | sed 's/^/  /'
    done
    ;;
  base)
    for model in $models; do
      exe=$dir/bin/base/$model-bf16
      [ -x "$exe" ] || continue
      v=$(vocab "$model")
      runs="2048:1 512:257"
      [ "$model" = internvl2-2b ] && runs="128:1 2048:1 512:257 8192:257"
      for run in $runs; do
        prompt=${run%:*} new=${run#*:}
        echo "base $model, prompt $prompt, $((new - 1)) decode steps:"
        "$exe" --random-weights 1 --benchmark --prompt-ids "$(ids "$prompt" "$v")" \
          --max-new-tokens "$new" --max-context $((prompt + new + 8)) 2>&1 | grep benchmark | sed 's/^/  /'
      done
    done
    ;;
  hf)
    # Each model gets HF_SECONDS (default 900): the measurements come out
    # as they are made, so a model cut short still reports what it did.
    for model in $models; do
      timeout "${HF_SECONDS:-900}" python3 "$here/hf_baseline.py" "$configs/$model/config.json" \
        --compile --steps "${HF_STEPS:-256}" 2>&1 | grep '"measure"'
    done
    ;;
  compiled)
    # torch.compile's decode alone (its compile takes minutes a context), on
    # HF_MODELS (default: the shapes transformers has a static cache for)
    # at HF_DECODE contexts; prefill measured only to subtract it.
    for model in ${HF_MODELS:-internvl2-2b phi-3-mini-128k-instruct internlm2-chat-7b qwen2.5-0.5b-instruct}; do
      timeout "${HF_SECONDS:-900}" python3 "$here/hf_baseline.py" "$configs/$model/config.json" \
        --compile --compiled-only --prefill "" --decode "${HF_DECODE:-512}" \
        --steps "${HF_STEPS:-256}" 2>&1 | grep '"measure"'
    done
    ;;
  esac
done

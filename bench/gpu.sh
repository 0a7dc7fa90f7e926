#!/usr/bin/env bash
# bench/gpu.sh DIR    (on the GPU machine; builds nothing there)
#
# GPU decode and prefill of InternVL2-2B's language model (bf16, random
# weights) compiled here with --target cuda into DIR/bin/internvl2-2b-bf16
# (bench/gpu-prepare.sh and
#   decc ../shared/data/configs/internvl2-2b/config.json --target cuda --dtype bf16 -o DIR/bin/internvl2-2b-bf16),
# beside two baselines measured in the same run: the card's streaming read
# bandwidth (DIR/gpu_membw, built with nvcc -O3 -arch=sm_90a from
# bench/gpu_membw.cu), its dense matrix rate (bench/gpu_matrate.py, torch)
# and Hugging Face transformers on the same model shape (bench/hf_baseline.py,
# eager and sdpa attention).
set -uo pipefail
dir=$(cd "$1" && pwd)
export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$dir/gpu_membw"
python3 "$(dirname "$0")/gpu_matrate.py" 2>&1 | grep gpu_matrate
# decc, then decc with prefill on the decode kernels (--gpu-tensor-cores=false,
# built as internvl2-2b-bf16-no-tc) as the baseline of the tensor-core path.
for exe in internvl2-2b-bf16 internvl2-2b-bf16-no-tc; do
  [ -x "$dir/bin/$exe" ] || continue
  echo "$exe:"
  "$dir/bin/$exe" --random-weights 1 --benchmark --max-context 1024 \
    --max-new-tokens 65 2>&1 >/dev/null | tail -2
done
for attention in eager sdpa; do
  python3 "$(dirname "$0")/hf_baseline.py" $attention 2>&1 | grep hf_baseline
done

#!/usr/bin/env bash
# bench/gpu-trace.sh DIR    (on the GPU machine; builds nothing there)
#
# Where a step's time goes between and inside kernels: each benchmark
# shape's --gpu-trace build (DIR/bin/<model>-bf16-trace, made by
# bench/gpu-prepare.sh) runs one decode step after 512 and after 8192
# tokens (the last of 32) and a prefill of 2048 tokens; bench/trace_summary.py
# turns each timeline into a row a kernel: its span after its wait, its
# tail, the kernel boundary's gap, how long its blocks were resident before
# the wait. The traced builds run slower than the real ones (a cleared
# record a block a step, and registers the probes take): read the rows as
# shares and gaps, and time with bench/gpu.sh.
set -uo pipefail
dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
models=${MODELS:-"internvl2-2b qwen2.5-0.5b-instruct phi-3-mini-128k-instruct internlm2-chat-7b mpt-7b-instruct"}
for model in $models; do
  exe=$dir/bin/$model-bf16-trace
  for context in 512 8192; do
    echo "== $model decode after $context"
    timeout 120 "$exe" --random-weights 1 --benchmark-decode $context --benchmark-steps 32 \
      --max-context $((context + 64)) 2>&1 | grep -E 'ms/token|^trace'
  done
  echo "== $model prefill 2048"
  timeout 120 "$exe" --random-weights 1 --benchmark-prefill 2048 --max-context 2100 2>&1 |
    grep -E 'prefill|^trace'
done | tee "${OUT:-/tmp}/gpu-trace.log" | python3 "$here/trace_summary.py"

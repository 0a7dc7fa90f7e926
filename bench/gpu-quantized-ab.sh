#!/usr/bin/env bash
# bench/gpu-quantized-ab.sh DIR    (on the GPU machine; builds nothing there)
#
# A change to the quantized decode kernels, in one device call, from what
# bench/gpu-prepare.sh built with QUANTIZED_BASE (and FLOAT_VARIANTS=f32-flash
# MODELS=1 for a short bundle):
#  - the quantized goldens (bench/gpu-check.sh SECTIONS=quantized);
#  - ROUNDS (2) interleaved rounds of decode after 512 tokens, 128 steps, of
#    <model>-<dtype>-base and <model>-<dtype> for DTYPES (int4) of the
#    1.8B (every round) and the 7B (the first round: a 7B load is ~25 s);
#  - the 1.8B's int4 logits (prefill and 6 greedy steps, random weights)
#    of the new build against the base, by decc-compare;
#  - Nsight Compute of one decode step of each new int4 build, summed by
#    kernel (bench/ncu_step.py; NCU=0 leaves it out).
# Everything is written to $OUT as it goes (a call that runs out of time
# still returns what it measured).
set -uo pipefail
dir=$(cd "$1" && pwd)
out=${OUT:-/tmp}
export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
here=$(cd "$(dirname "$0")" && pwd)
echo "gpu-quantized-ab.sh: $(date -u +%Y-%m-%dT%H:%MZ) on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)" | tee "$out/qab.log"
OUT=/tmp/gpu-quantized-check SECTIONS=quantized timeout 300 bash "$here/gpu-check.sh" "$dir" > "$out/qcheck.log" 2>&1
echo "goldens: $(grep -c ^PASS "$out/qcheck.log") passed, $(grep -c ^FAIL "$out/qcheck.log") failed" | tee -a "$out/qab.log"
decode() {
  "$dir/bin/$1" --random-weights 1 --benchmark-decode 512 --benchmark-steps 128 --max-context 720 2>&1 |
    grep -o '[0-9.]* ms/token.*'
}
for round in $(seq 1 "${ROUNDS:-2}"); do
  for model in internvl2-2b internlm2-chat-7b; do
    [ "$model" = internlm2-chat-7b ] && [ "$round" -gt 1 ] && continue
    for dtype in ${DTYPES:-int4}; do
      for v in "$dtype-base" "$dtype"; do
        [ -x "$dir/bin/$model-$v" ] && echo "r$round $model-$v: $(decode "$model-$v")" | tee -a "$out/qab.log"
      done
    done
  done
done
# The 1.8B's logits, new against base (random weights): a prefill of 8
# tokens and 6 greedy steps, held to the f32 rule (bench/gpu-check.sh's tool).
for v in "int4-base" "int4"; do
  "$dir/bin/internvl2-2b-$v" --random-weights 1 --prompt-ids 1,2,3,4,5,6,7,8 \
    --max-new-tokens 6 --dump-logits "/tmp/qab-$v.safetensors" > /dev/null 2>&1
done
echo "1.8B int4 against int4-base: $("$dir/bin/decc-compare" /tmp/qab-int4-base.safetensors \
  /tmp/qab-int4.safetensors 2>&1 | tr '\n' ' ')" | tee -a "$out/qab.log"
if [ "${NCU:-1}" = 1 ]; then
  ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  for model in internvl2-2b internlm2-chat-7b; do
    timeout 240 "$ncu" --clock-control none --graph-profiling node \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv --launch-count 800 \
      "$dir/bin/$model-int4" --random-weights 1 --benchmark-decode 512 --benchmark-steps 2 \
      > "$out/ncu-$model.csv" 2>/dev/null
    python3 "$here/ncu_step.py" "$model-int4" "$out/ncu-$model.csv" | tee -a "$out/qab.log"
  done
fi

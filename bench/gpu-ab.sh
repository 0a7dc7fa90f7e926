#!/usr/bin/env bash
# bench/gpu-ab.sh DIR [VARIANT...]    (on the GPU machine; builds nothing there)
#
# A change's decode A/B, as docs/PERF.md reports them: for each model of
# MODELS (default: the five benchmark shapes) that has DIR/bin/<model>-<v>
# for every VARIANT (default: base new; the first is the baseline):
#  - the logits of 6 greedy tokens after 8 prompt ids (random weights),
#    with the runtime's splits and with a key a split (DECC_SPLIT_KEYS=1:
#    every decode step merges splits), compared byte for byte with the
#    baseline's: "identical" or "differ" (a change that reorders
#    arithmetic differs; check it with bench/gpu-check.sh);
#  - ROUNDS (2) interleaved rounds of decode after CONTEXTS (512,8192)
#    tokens, STEPS (128) steps: ms a token, a line each;
# every benchmark line in $OUT/ab-raw.log (OUT: the device's output folder,
# else /tmp). DIR/lib holds the shared libraries (gpu-prepare.sh's).
set -uo pipefail
dir=$(cd "$1" && pwd)
shift
variants=${*:-base new}
first=${variants%% *}
out=${OUT:-/tmp}
export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
contexts=${CONTEXTS:-512,8192}
longest=$(echo "$contexts" | tr ',' '\n' | sort -n | tail -n 1)
all=${MODELS:-"internvl2-2b qwen2.5-0.5b-instruct phi-3-mini-128k-instruct internlm2-chat-7b mpt-7b-instruct"}
models=
for model in $all; do
  ok=1
  for v in $variants; do [ -x "$dir/bin/$model-$v" ] || ok=0; done
  [ $ok = 1 ] && models="$models $model"
done
echo "gpu-ab.sh: $(date -u +%Y-%m-%dT%H:%MZ) on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null); variants: $variants; models:$models"
start=$(date +%s)
for model in $models; do
  for splits in default 1; do
    for v in $variants; do
      env $([ $splits = 1 ] && echo DECC_SPLIT_KEYS=1) timeout 120 "$dir/bin/$model-$v" \
        --random-weights 1 --prompt-ids 1,2,3,4,5,6,7,8 --max-new-tokens 6 \
        --dump-logits "$out/ab-$model-$v.safetensors" > /dev/null 2>&1 ||
        echo "logits $model $v (splits $splits): the run failed"
    done
    for v in $variants; do
      [ "$v" = "$first" ] && continue
      if [ ! -s "$out/ab-$model-$first.safetensors" ] || [ ! -s "$out/ab-$model-$v.safetensors" ]; then
        continue
      elif cmp -s "$out/ab-$model-$first.safetensors" "$out/ab-$model-$v.safetensors"; then
        echo "logits $model $v (splits $splits): identical"
      else
        echo "logits $model $v (splits $splits): differ"
      fi
    done
    rm -f "$out"/ab-"$model"-*.safetensors
  done
done
for round in $(seq 1 "${ROUNDS:-2}"); do
  for model in $models; do
    for v in $variants; do
      t=$(timeout 300 "$dir/bin/$model-$v" --random-weights 1 --benchmark-decode "$contexts" \
        --benchmark-steps "${STEPS:-128}" --max-context $((longest + ${STEPS:-128} + 80)) 2>&1 |
        tee -a "$out/ab-raw.log" | grep -o '[0-9.]* ms/token' | tr '\n' ' ')
      echo "r$round $model $v: ${t:-failed}"
    done
  done
done
echo "elapsed $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# bench/gpu-check.sh DIR
#
# Runs on the GPU machine; builds nothing there. DIR holds what
# bench/gpu-prepare.sh built here: bin/ (one executable per golden case,
# weight dtype and attention backend, compiled with --target cuda; the
# stories260K model; decc-compare; the benchmark shapes), lib/ (the shared
# libraries the executables need) and golden/ (a copy of shared/golden).
# Every case is run in f32 and bf16 with both attention backends and in f16
# with flash; each is compared with its Hugging Face reference with
# DESIGN.md's rules (bf16/f16: held to HF's own run in that precision);
# stories260K must print llama2.c's greedy tokens. The half-precision runs
# are repeated with every prefill on the long-prompt kernels (wgmma,
# DECC_LARGE_PREFILL_TOKENS=1) and every decode step's keys split over
# blocks of 2 (DECC_SPLIT_KEYS=2: the golden prompts are shorter than one
# split of the default), and at real shapes the long-prompt kernels
# must agree with the short-prompt ones on the same 320-token prompt.
# The quantized builds are held to the f32 build run on their weights
# dequantized. The tiny InternVL's vision encoder and image prompts are
# held to InternVL's own code. The goldens are generated beside other
# sequences through the paged cache, their prompts joined to the batched
# steps (the default) and as calls of their own. SECTIONS="float long
# batched separate quantized shapes stories vision" (the default) picks the
# parts; "tp" (2 GPUs) is asked for by name. Exit 1 if anything fails.
set -uo pipefail
dir=$(cd "$1" && pwd)
export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out=${OUT:-/tmp}/gpu-check
mkdir -p "$out"
fail=0
# SECTIONS: the parts to run (all by default).
want() { [[ " ${SECTIONS:-float long batched separate quantized shapes stories vision} " == *" $1 "* ]]; }
echo "gpu-check: $(date -u +%Y-%m-%dT%H:%MZ) on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
declare -A weights=([internlm2-linear]=internlm2-dynamic [phi3-longrope-switch]=phi3-longrope)
declare -A new=([llama-gqa]=16 [llama-mqa]=16 [internlm2-linear]=12 [internlm2-dynamic]=40
                [mpt-alibi]=16 [phi3-longrope]=16 [phi3-longrope-switch]=24 [qwen2-yarn]=16)
# golden NAME CASE PRECISION TAG LABEL [ENV=VALUE...] [-- FLAGS...]: bin/NAME
# on CASE's reference prompt (with ENV and FLAGS; TAG names its files,
# LABEL the variant in the report), its logits held to the reference.
golden() {
  local name=$1 case=$2 precision=$3 tag=$4 label=$5; shift 5
  local envs=() flags=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  flags=("$@")
  local w=${weights[$case]:-$case} file=$out/$name${tag:+-$tag}
  label=$name${label:+ ($label)}
  if ! env "${envs[@]}" ${RUN_PREFIX:-} "$dir/bin/$name" --weights "$dir/golden/$w" --max-context 256 \
      --prompt-ids-from "$dir/golden/$case/reference.safetensors" \
      --max-new-tokens "${new[$case]}" --dump-logits "$file.safetensors" "${flags[@]}" \
      > "$file.ids" 2> "$file.err"; then
    echo "FAIL $label: $(tail -1 "$file.err")"; fail=1; return
  fi
  if result=$("$dir/bin/decc-compare" "$dir/golden/$case/reference.safetensors" \
      "$file.safetensors" --precision="$precision" 2>&1); then
    echo "PASS $label: $(echo "$result" | grep -E 'prefill_logits|decode_logits' | tr '\n' ' ')"
  else
    echo "FAIL $label:"; echo "$result" | sed 's/^/    /'; fail=1
  fi
}
cases="llama-gqa llama-mqa internlm2-linear internlm2-dynamic mpt-alibi phi3-longrope phi3-longrope-switch qwen2-yarn"
want float && for case in $cases; do
  for variant in f32-eager f32-flash bf16-eager bf16-flash f16-flash; do
    golden "$case-$variant" "$case" "${variant%-*}" "" ""
  done
done
# The goldens again, every prefill on the long-prompt (wgmma) kernels and
# the decode steps' attention merged from many splits.
want long && for case in $cases; do
  for variant in bf16-eager bf16-flash f16-flash; do
    golden "$case-$variant" "$case" "${variant%-*}" large "long-prompt kernels" \
      DECC_LARGE_PREFILL_TOKENS=1 DECC_SPLIT_KEYS=2
  done
done
# The goldens generated beside 5 other sequences through the paged cache
# (--batch-beside; prompts in parts of at most 7 tokens): the blocks come
# from the batch engine's pool in its order, so every append and every
# attention kernel finds its keys through a real block table, and the
# prompt parts join the batched steps (each prompt token a query of the
# batched decode attention).
want batched && for case in $cases; do
  for variant in f32-flash bf16-eager bf16-flash; do
    golden "$case-$variant" "$case" "${variant%-*}" batched "beside 5 sequences" \
      -- --batch-beside 5 --max-step-tokens 7
  done
done
# The same with the prompt parts as calls of their own
# (DECC_BATCHED_PROMPTS=0): the prompt kernels through the block table.
want separate && for case in $cases; do
  for variant in f32-flash bf16-eager bf16-flash; do
    golden "$case-$variant" "$case" "${variant%-*}" separate "prompts as calls of their own" \
      DECC_BATCHED_PROMPTS=0 -- --batch-beside 5 --max-step-tokens 7
  done
done
# Quantized builds (issue 14's exactness rule): the int8/int4 build's
# logits equal, within the f32 rule, the f32 build's run on the weights the
# quantized build loaded, dequantized (test/E2E/Inputs/run-dequantized.sh,
# here with the executables built beforehand).
want quantized && for case in $cases; do
  for variant in int8 int4 int4-g64 int4-g32 int4-g24 int4-g4; do
    name=$case-$variant w=${weights[$case]:-$case}
    [ -x "$dir/bin/$name" ] || continue
    rm -rf "$out/$name.dequantized" && mkdir -p "$out/$name.dequantized"
    run() {
      "$1" --weights "$2" --max-context 256 --prompt-ids-from "$dir/golden/$case/reference.safetensors" \
        --max-new-tokens "${new[$case]}" --dump-logits "$3" > /dev/null 2> "$out/$name.err"
    }
    if ! "$dir/bin/$name" --weights "$dir/golden/$w" --write-dequantized "$out/$name.dequantized/model.safetensors" \
          > /dev/null 2> "$out/$name.err" ||
       ! run "$dir/bin/$name" "$dir/golden/$w" "$out/$name.safetensors" ||
       ! run "$dir/bin/$case-f32-flash" "$out/$name.dequantized" "$out/$name.f32.safetensors"; then
      echo "FAIL $name: $(tail -1 "$out/$name.err")"; fail=1; continue
    fi
    if result=$("$dir/bin/decc-compare" "$out/$name.f32.safetensors" "$out/$name.safetensors" 2>&1); then
      echo "PASS $name = f32 on its dequantized weights: $(echo "$result" | grep -E 'prefill_logits|decode_logits' | tr '\n' ' ')"
    else
      echo "FAIL $name:"; echo "$result" | sed 's/^/    /'; fail=1
    fi
  done
done
# Real shapes: the long-prompt kernels against the short-prompt ones.
ids=$(python3 -c "print(','.join(str((i * 7919 + 13) % 32000) for i in range(320)))")
want shapes && for model in internvl2-2b qwen2.5-0.5b-instruct phi-3-mini-128k-instruct internlm2-chat-7b mpt-7b-instruct; do
  exe=$dir/bin/$model-bf16
  [ -x "$exe" ] || continue
  for path in small large; do
    limit=$([ $path = small ] && echo 1000000 || echo 1)
    DECC_LARGE_PREFILL_TOKENS=$limit "$exe" --random-weights 1 --prompt-ids "$ids" --max-new-tokens 4 \
      --max-context 512 --dump-logits "$out/$model-$path.safetensors" > /dev/null 2> "$out/$model-$path.err" ||
      { echo "FAIL $model ($path): $(tail -1 "$out/$model-$path.err")"; fail=1; }
  done
  if result=$("$dir/bin/decc-compare" "$out/$model-small.safetensors" "$out/$model-large.safetensors" \
      --precision=bf16 2>&1); then
    echo "PASS $model long-prompt kernels = short-prompt kernels: $(echo "$result" | grep -E 'prefill_logits' | tr '\n' ' ')"
  else
    echo "FAIL $model long-prompt kernels differ:"; echo "$result" | sed 's/^/    /'; fail=1
  fi
done
want stories && for attention in eager flash; do
  got=$("$dir/bin/stories260K-$attention" --weights "$dir/models/stories260K" --print-ids \
        --max-new-tokens 256 2>/dev/null)
  want=$(tr -d '\n' < "$dir/models/stories260K.tokens")
  if [ "$got" = "$want" ]; then echo "PASS stories260K-$attention: 256 tokens as llama2.c"
  else echo "FAIL stories260K-$attention: $got"; fail=1; fi
done
# The vision encoder's kernels (issue 15): the tiny InternVL's image
# embeddings and, with the image in the prompt, its prefill logits and
# greedy tokens against InternVL's own code (bf16: its bf16 run).
want vision && [ -d "$dir/vision" ] && for dtype in f32 bf16; do
  for picture in chelsea-2 hubble-1; do
    name=internvl-tiny-$dtype-${picture%-*} v=$dir/vision
    ref=$v/$picture.safetensors
    rule=(); [ $dtype = bf16 ] && rule=(--precision=bf16 --hf-reference=$v/$picture-hf-bf16.safetensors)
    if ! "$dir/bin/internvl-tiny-$dtype" --weights "$v" --pixel-values "$v/${picture%-*}.st" \
        --dump-image-embeddings "$out/$name.emb" 2> "$out/$name.err" ||
       ! "$dir/bin/internvl-tiny-$dtype" --weights "$v" --pixel-values "$v/${picture%-*}.st" \
        --image-token-id 250 --prompt-ids-from "$ref" --max-new-tokens 8 --max-context 1024 \
        --dump-logits "$out/$name.logits" > /dev/null 2>> "$out/$name.err"; then
      echo "FAIL $name: $(tail -1 "$out/$name.err")"; fail=1; continue
    fi
    if embeds=$("$dir/bin/decc-compare" "$ref" "$out/$name.emb" --tensor=vit_embeds "${rule[@]}" 2>&1) &&
       logits=$("$dir/bin/decc-compare" "$ref" "$out/$name.logits" "${rule[@]}" 2>&1); then
      echo "PASS $name: $(printf '%s\n%s\n' "$embeds" "$logits" | grep -E 'vit_embeds|prefill_logits|generated_ids' | tr '\n' ' ')"
    else
      echo "FAIL $name:"; echo "$embeds"; echo "$logits" | sed 's/^/    /'; fail=1
    fi
  done
done
# Tensor-parallel builds (issue 17; bin/<case>-tp2-<variant>, built by
# gpu-prepare.sh with TENSOR_PARALLEL=1): 2 ranks under mpirun, a GPU each,
# the collectives over NCCL; rank 0's logits held to the same reference.
# Not in the default SECTIONS: it needs a machine of 2 or more GPUs and
# Open MPI there.
if want tp; then
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
  if [ "$gpus" -lt 2 ] || ! command -v mpirun > /dev/null; then
    echo "FAIL tp: needs 2 GPUs and mpirun; this machine has $gpus GPU(s)$(command -v mpirun > /dev/null || echo ' and no mpirun')"
    fail=1
  else
    for case in $cases; do
      for variant in f32-flash bf16-flash; do
        [ -x "$dir/bin/$case-tp2-$variant" ] || continue
        RUN_PREFIX="mpirun --allow-run-as-root -n 2" golden "$case-tp2-$variant" "$case" "${variant%-*}" "" "2 GPUs"
      done
    done
  fi
fi
echo "gpu-check: $([ $fail = 0 ] && echo all passed || echo FAILURES)"
exit $fail

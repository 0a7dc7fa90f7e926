#!/usr/bin/env bash
# fuzz/run.sh BUILD SHARED SECONDS [HARNESS...]: fuzzes each harness of
# BUILD (built with ASan + UBSan by `make fuzz`), or the ones named, for
# SECONDS, its corpus in BUILD/fuzz-corpus/ seeded from the real files in
# SHARED and kept between runs; a finding is left as
# BUILD/fuzz-findings/<harness>/crash-* (add it to
# test/Fuzz/Inputs/make_hostile.py once fixed). One summary line each.
set -uo pipefail
build=$1 shared=$2 seconds=$3
bin=$build/bin corpus=$build/fuzz-corpus findings=$build/fuzz-findings
mkdir -p "$corpus" "$findings"
mkdir -p "$corpus/config" "$corpus/safetensors" "$corpus/tokenizer-json" "$corpus/tokenize" \
  "$corpus/sentencepiece" "$corpus/chat-format" "$corpus/command-line" "$corpus/image"
i=0; for f in "$shared"/golden/*/config.json "$shared"/data/configs/*/config.json; do cp "$f" "$corpus/config/seed-$((i++)).json"; done
cp models/stories260K/model.safetensors "$corpus/safetensors/seed-stories" 2>/dev/null
cp "$shared"/data/qwen2-tokenizer/tokenizer.json "$corpus/tokenizer-json/seed-qwen2.json"
cp "$shared"/data/llamacpp-vocab/ggml-vocab-qwen2.gguf.inp "$corpus/tokenize/seed-vocab-test"
cp models/stories260K/tokenizer.model "$corpus/sentencepiece/seed-stories.model"
cp "$shared"/data/images/chelsea.png "$shared"/data/images/hubble_deep_field.jpg "$corpus/image/"
cp "$shared"/data/internlm2-tokenizer/tokenizer.model "$corpus/sentencepiece/seed-internlm2.model"
i=0; for f in "$shared"/data/configs/*/tokenizer_config.json; do cp "$f" "$corpus/chat-format/seed-$((i++)).json"; done
printf '%s\0' --weights /m --prompt-ids 1,2,3 --temperature 0.7 --top-p 0.9 --top-k 40 \
  --max-new-tokens 32 --max-context 4096 --threads 8 > "$corpus/command-line/seed-sampling"
printf '%s\0' --random-weights 1 --benchmark-prefill 128,2048 --benchmark-decode 512 \
  --benchmark-steps 64 --chat --prompt hi > "$corpus/command-line/seed-benchmark"
status=0
only=" ${*:4} "
run() {
  local harness=$1 dir=$2; shift 2
  [ "$only" = "  " ] || [[ "$only" == *" $harness "* ]] || return 0
  mkdir -p "$findings/$dir"
  "$@" "$bin/decc-fuzz-$harness" "$corpus/$dir" -max_total_time="$seconds" \
    -artifact_prefix="$findings/$dir/" -print_final_stats=1 > "$build/fuzz-$harness.log" 2>&1 || status=1
  echo "$harness: $(grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units)' "$build/fuzz-$harness.log" | tail -2 | tr '\n' ' ')$(ls "$findings/$dir" | wc -l) findings"
}
run config config env
run safetensors safetensors env
run tokenizer-json tokenizer-json env
run tokenize tokenize env DECC_FUZZ_TOKENIZER="$shared/data/qwen2-tokenizer"
run sentencepiece sentencepiece env
run chat-format chat-format env
run command-line command-line env
run image image env
exit $status

#!/usr/bin/env bash
# run-awq.sh SHARED CASE G GROUP OUT-PREFIX
#
# An AWQ checkpoint read as it is stored: make_awq_checkpoint.py writes the
# golden case's weights in AutoAWQ's GEMM format (groups of GROUP, decc's
# rounding); the build of that config (no --dtype: the config's
# quantization_config makes it int4) loads it. It must hold the same
# weights as the int4 build that quantizes the float checkpoint itself
# (their --write-dequantized files are byte for byte equal), give the same
# logits for the case's prompt (G new tokens), and agree within the f32
# rule with the f32 build run on those weights dequantized.
set -euo pipefail
shared=$1 case=$2 g=$3 group=$4 out=$5
golden=$shared/golden/$case
rm -rf "$out.awq" && python3 "$(dirname "$0")/make_awq_checkpoint.py" "$golden" "$out.awq" "$group"
decc "$out.awq/config.json" -o "$out.from-awq" > /dev/null
decc "$golden/config.json" --dtype=int4 --group-size="$group" -o "$out.int4" > /dev/null
decc "$golden/config.json" --dtype=f32 -o "$out.f32" > /dev/null
"$out.from-awq" --weights "$out.awq" --write-dequantized "$out.awq.dequantized.safetensors"
"$out.int4" --weights "$golden" --write-dequantized "$out.int4.dequantized.safetensors"
cmp "$out.awq.dequantized.safetensors" "$out.int4.dequantized.safetensors"
echo "$case: the AWQ checkpoint holds decc's int4 weights"
rm -rf "$out.dequantized" && mkdir -p "$out.dequantized"
cp "$out.awq.dequantized.safetensors" "$out.dequantized/model.safetensors"
run() {
  "$1" --weights "$2" --max-context 256 --prompt-ids-from "$golden/reference.safetensors" \
    --max-new-tokens "$g" --dump-logits "$3" > /dev/null
}
run "$out.from-awq" "$out.awq" "$out.awq.safetensors"
run "$out.int4" "$golden" "$out.int4.safetensors"
run "$out.f32" "$out.dequantized" "$out.f32.safetensors"
echo "$case: AWQ against int4"
decc-compare "$out.int4.safetensors" "$out.awq.safetensors"
echo "$case: AWQ against f32 on the dequantized weights"
decc-compare "$out.f32.safetensors" "$out.awq.safetensors"

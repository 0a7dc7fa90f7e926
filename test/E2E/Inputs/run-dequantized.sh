#!/usr/bin/env bash
# run-dequantized.sh SHARED CASE WEIGHTS-CASE G DTYPE GROUP OUT-PREFIX
#
# The exactness of a quantized build: the DTYPE (int8 or int4) build
# (groups of GROUP columns) runs a golden case's prompt on the case's
# weights, quantized as it loads them; the same executable writes those weights dequantized
# (--write-dequantized); the f32 build runs the same prompt on them. The two
# runs compute the same function, so their logits must agree within the f32
# rule (decc-compare, the f32 run as the reference). This pins the
# quantized kernels; the quality of the quantization is perplexity.test's.
# DECC_FLAGS: more options for the quantized build (--cpu=native).
set -euo pipefail
shared=$1 case=$2 weights=$3 g=$4 dtype=$5 group=$6 out=$7
golden=$shared/golden/$case
decc "$golden/config.json" --dtype="$dtype" --group-size="$group" ${DECC_FLAGS:-} -o "$out.q" > /dev/null
decc "$golden/config.json" --dtype=f32 -o "$out.f32" > /dev/null
rm -rf "$out.dequantized" && mkdir -p "$out.dequantized"
"$out.q" --weights "$shared/golden/$weights" \
  --write-dequantized "$out.dequantized/model.safetensors"
run() {
  "$1" --weights "$2" --max-context 256 --prompt-ids-from "$golden/reference.safetensors" \
    --max-new-tokens "$g" --dump-logits "$3" > /dev/null
}
run "$out.q" "$shared/golden/$weights" "$out.q.safetensors"
run "$out.f32" "$out.dequantized" "$out.f32.safetensors"
echo "$case $dtype groups of $group"
decc-compare "$out.f32.safetensors" "$out.q.safetensors"

#!/usr/bin/env bash
# run-golden.sh SHARED CASE WEIGHTS-CASE G DTYPE ATTENTION OUT-PREFIX
#
# Compiles a golden case's config with decc, runs the executable on the
# golden prompt with the KV cache for G greedy tokens, and compares the
# dumped logits with the Hugging Face reference using DESIGN.md's rule
# (decc-compare prints PASS or what failed). Two cases share another case's
# weights, hence WEIGHTS-CASE.
set -euo pipefail
shared=$1 case=$2 weights=$3 g=$4 dtype=$5 attention=$6 out=$7
golden=$shared/golden/$case
# DECC_FLAGS: more decc options (a test of a code-generation choice);
# RUN_FLAGS: more options of the executable (--batch-beside N); RUN_PREFIX:
# what starts it (mpirun's ranks for a tensor-parallel build).
decc "$golden/config.json" --dtype="$dtype" --attention="$attention" ${DECC_FLAGS:-} -o "$out.exe" > /dev/null
${RUN_PREFIX:-} "$out.exe" --weights "$shared/golden/$weights" --max-context 256 \
  --prompt-ids-from "$golden/reference.safetensors" --max-new-tokens "$g" \
  --dump-logits "$out.safetensors" ${RUN_FLAGS:-} > /dev/null
echo "$case $dtype $attention"
decc-compare "$golden/reference.safetensors" "$out.safetensors" --precision="$dtype"

#!/usr/bin/env bash
# ptxas-goldens.sh SHARED OUT PTXAS: every golden case compiled with
# --target cuda to PTX, assembled by the toolkit's ptxas for sm_90a.
set -euo pipefail
shared=$1 out=$2 ptxas=$3
for dir in "$shared"/golden/*/; do
  name=$(basename "$dir")
  decc "$dir/config.json" --target cuda --dtype bf16 --emit=ptx -o "$out/$name.ptx"
  "$ptxas" -arch=sm_90a "$out/$name.ptx" -o "$out/$name.cubin"
  echo "ptxas ok $name"
done

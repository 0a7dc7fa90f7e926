#!/usr/bin/env bash
# bench/gpu-prepare.sh BUILD SHARED DIR
#
# Builds here everything bench/gpu-check.sh runs on the GPU machine: every
# golden case in f32 and bf16 with both attention backends, in f16 with
# flash, and stories260K,
# compiled with --target cuda, plus decc-compare, the shared libraries they
# load, and a copy of the goldens (the two cases that share another's
# weights get real files). DIR is meant to be carried to the device.
set -euo pipefail
build=$1 shared=$2 dir=$3
rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/lib" "$dir/golden" "$dir/models"
for case in llama-gqa llama-mqa internlm2-linear internlm2-dynamic mpt-alibi phi3-longrope phi3-longrope-switch qwen2-yarn; do
  for variant in f32-eager f32-flash bf16-eager bf16-flash f16-flash; do
    "$build/bin/decc" "$shared/golden/$case/config.json" --target cuda \
      --dtype ${variant%-*} --attention ${variant#*-} -o "$dir/bin/$case-$variant" > /dev/null
  done
  mkdir -p "$dir/golden/$case"
  cp "$shared/golden/$case"/reference*.safetensors "$dir/golden/$case/"
  if [ "$(stat -c %s "$shared/golden/$case/model.safetensors")" -gt 1024 ]; then
    cp "$shared/golden/$case/model.safetensors" "$dir/golden/$case/"
  fi
done
for attention in eager flash; do
  "$build/bin/decc" models/stories260K/config.json --target cuda --attention $attention \
    -o "$dir/bin/stories260K-$attention" > /dev/null
done
cp -r models/stories260K "$dir/models/"
python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['greedy_from_bos']['tokens'][1:]; print(','.join(map(str,t)))" \
  "$shared/data/stories260K/reference_trace_runc.json" > "$dir/models/stories260K.tokens"
cp "$build/bin/decc-compare" "$dir/bin/"
for lib in $(ldd "$dir/bin/llama-gqa-f32-flash" "$dir/bin/decc-compare" | awk '/=> \//{print $3}' | sort -u); do
  case $(basename "$lib") in libc.so*|libm.so*|libstdc++*|libgcc_s*) ;; *) cp -L "$lib" "$dir/lib/";; esac
done
du -sh "$dir"

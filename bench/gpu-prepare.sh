#!/usr/bin/env bash
# bench/gpu-prepare.sh BUILD SHARED DIR [BASELINE]
#
# Builds here everything bench/gpu-check.sh and bench/gpu.sh run on the GPU
# machine, into DIR, and packs it as DIR.tar.xz (what travels to the
# device; the executables repeat one kernel per layer and compress ~25x):
#  - bin/<case>-<variant>: every golden case in f32 and bf16 with both
#    attention backends, in f16 with flash, and quantized (int8, int4 in
#    groups of 128, 32 and 24), and golden/ with the
#    references (the two cases that share another's weights get real
#    files); stories260K with both backends;
#  - bin/<model>-bf16: the five benchmark shapes (../shared/data/configs),
#    with flash attention (two of the configs ask for eager), their
#    bin/<model>-bf16-trace built with --gpu-trace (bench/gpu-trace.sh), and
#    bin/<model>-int8/-int4 of the 1.8B and 7B shapes,
#    and bin/base/<model>-bf16 copied from BASELINE, the executables of the
#    commit before the change being measured (built the same way there),
#    linked as bin/<model>-base beside bin/<model>-new (bench/gpu-ab.sh);
#  - bin/internvl-tiny-f32/-bf16 and vision/: the tiny InternVL's vision
#    encoder and language model, its references and two pictures' tiles;
#  - configs/ of those shapes (for the Hugging Face baseline), gpu_membw
#    (nvcc), decc-compare, and lib/: the shared libraries they load.
# TENSOR_PARALLEL=1: also bin/<case>-tp2-<variant> (f32 and bf16, flash),
# split over 2 ranks. GOLDENS=0, MODELS=0 or VISION=0 leaves out a part; FLOAT_VARIANTS (default
# "f32-eager f32-flash bf16-eager bf16-flash f16-flash") picks the float
# builds of the goldens (the quantized goldens need f32-flash).
# QUANTIZED_BASE=DECC: also bin/<model>-int8-base / -int4-base of the
# quantized shapes, built by that decc (the commit before a change to the
# quantized kernels; bench/gpu-quantized-ab.sh). DECC_FLAGS: more decc flags for
# every build (a change behind an option, e.g. --gpu-decode-cluster 2, checked and
# timed against BASELINE built without them).
set -euo pipefail
build=$1 shared=$2 dir=$3 base=${4:-}
models="internvl2-2b qwen2.5-0.5b-instruct phi-3-mini-128k-instruct internlm2-chat-7b mpt-7b-instruct"
quantized_models="internvl2-2b internlm2-chat-7b"
rm -rf "$dir" && mkdir -p "$dir/bin/base" "$dir/lib" "$dir/golden" "$dir/models"
if [ "${GOLDENS:-1}" = 1 ]; then
  for case in llama-gqa llama-mqa internlm2-linear internlm2-dynamic mpt-alibi phi3-longrope phi3-longrope-switch qwen2-yarn; do
    for variant in ${FLOAT_VARIANTS:-f32-eager f32-flash bf16-eager bf16-flash f16-flash}; do
      echo "$build/bin/decc ${DECC_FLAGS:-} $shared/golden/$case/config.json --target cuda --dtype ${variant%-*} --attention ${variant#*-} -o $dir/bin/$case-$variant"
    done
    # Quantized: default groups (int8 32, int4 128), and int4 in groups of
    # 32 (16-byte loads), 24 (one element a lane) and 4 (the prefill
    # matmul dequantizes a column at a time).
    for variant in int8 int4 int4-g64 int4-g32 int4-g24 int4-g4; do
      group=${variant#int4-g}; [ "$group" = "$variant" ] && group= || group="--group-size $group"
      echo "$build/bin/decc ${DECC_FLAGS:-} $shared/golden/$case/config.json --target cuda --dtype ${variant%-g*} $group --attention flash -o $dir/bin/$case-$variant"
    done
    # Tensor-parallel (gpu-check.sh's tp section), where the heads split.
    if [ "${TENSOR_PARALLEL:-0}" = 1 ]; then
      for variant in f32-flash bf16-flash; do
        echo "$build/bin/decc ${DECC_FLAGS:-} $shared/golden/$case/config.json --target cuda --dtype ${variant%-*} --attention flash --tensor-parallel 2 -o $dir/bin/$case-tp2-$variant"
      done
    fi
    mkdir -p "$dir/golden/$case"
    cp "$shared/golden/$case"/reference*.safetensors "$dir/golden/$case/"
    if [ "$(stat -c %s "$shared/golden/$case/model.safetensors")" -gt 1024 ]; then
      cp "$shared/golden/$case/model.safetensors" "$dir/golden/$case/"
    fi
  done | xargs -P "${JOBS:-2}" -I{} sh -c '{} > /dev/null'
  for attention in eager flash; do
    "$build/bin/decc" ${DECC_FLAGS:-} models/stories260K/config.json --target cuda --attention $attention \
      -o "$dir/bin/stories260K-$attention" > /dev/null
  done
  cp -r models/stories260K "$dir/models/"
  python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['greedy_from_bos']['tokens'][1:]; print(','.join(map(str,t)))" \
    "$shared/data/stories260K/reference_trace_runc.json" > "$dir/models/stories260K.tokens"
fi
if [ "${MODELS:-1}" = 1 ]; then
  for model in $models; do
    echo "$build/bin/decc ${DECC_FLAGS:-} $shared/data/configs/$model/config.json --target cuda --dtype bf16 --attention flash -o $dir/bin/$model-bf16"
  done | xargs -P "${JOBS:-2}" -I{} sh -c '{} > /dev/null'
  for model in $models; do
    echo "$build/bin/decc ${DECC_FLAGS:-} $shared/data/configs/$model/config.json --target cuda --dtype bf16 --attention flash --gpu-trace -o $dir/bin/$model-bf16-trace"
  done | xargs -P "${JOBS:-2}" -I{} sh -c '{} > /dev/null'
  for model in $quantized_models; do
    for dtype in int8 int4; do
      echo "$build/bin/decc ${DECC_FLAGS:-} $shared/data/configs/$model/config.json --target cuda --dtype $dtype --attention flash -o $dir/bin/$model-$dtype"
      [ -n "${QUANTIZED_BASE:-}" ] &&
        echo "$QUANTIZED_BASE $shared/data/configs/$model/config.json --target cuda --dtype $dtype --attention flash -o $dir/bin/$model-$dtype-base"
    done
  done | xargs -P "${JOBS:-2}" -I{} sh -c '{} > /dev/null'
  if [ -n "$base" ]; then
    # bin/<model>-base and -new: what bench/gpu-ab.sh compares.
    for model in $models; do
      cp "$base/$model-bf16" "$dir/bin/base/"
      ln -s "base/$model-bf16" "$dir/bin/$model-base"
      ln -s "$model-bf16" "$dir/bin/$model-new"
    done
  fi
  mkdir -p "$dir/configs"
  for model in $models; do cp -r "$shared/data/configs/$model" "$dir/configs/"; done
  nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o "$dir/gpu_membw" bench/gpu_membw.cu
fi
if [ "${VISION:-1}" = 1 ]; then
  # The tiny random InternVL of test/E2E/internvl-vision.test, f32 and bf16,
  # with its references and decc-image's tiles of the two photographs.
  tiny=test/E2E/Inputs/internvl-tiny
  mkdir -p "$dir/vision"
  for dtype in f32 bf16; do
    "$build/bin/decc" ${DECC_FLAGS:-} $tiny/config.json --target cuda --dtype $dtype \
      -o "$dir/bin/internvl-tiny-$dtype" > /dev/null
  done
  cp $tiny/*.safetensors $tiny/config.json "$dir/vision/"
  "$build/bin/decc-image" "$shared/data/images/chelsea.png" --config $tiny/config.json \
    --max-tiles 2 --pixel-values "$dir/vision/chelsea.st" > /dev/null
  "$build/bin/decc-image" "$shared/data/images/hubble_deep_field.jpg" --config $tiny/config.json \
    --max-tiles 1 --pixel-values "$dir/vision/hubble.st" > /dev/null
fi
cp "$build/bin/decc-compare" "$dir/bin/"
# Every executable's libraries (the vision builds alone load libjpeg and
# libpng; a bundle of goldens alone has no *-bf16 shape to ask).
for lib in $(find "$dir/bin" -maxdepth 1 -type f -perm -u+x -exec ldd {} + 2>/dev/null | awk '/=> \//{print $3}' | sort -u); do
  case $(basename "$lib") in libc.so*|libm.so*|libstdc++*|libgcc_s*) ;; *) cp -L "$lib" "$dir/lib/";; esac
done
tar -C "$(dirname "$dir")" -cJf "$dir.tar.xz" "$(basename "$dir")"
du -sh "$dir" "$dir.tar.xz"

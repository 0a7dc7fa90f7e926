#!/usr/bin/env bash
# bench/cpu-ab.sh BASE_DECC NEW_DECC [THREADS] [ROUNDS]
#
# A CPU change's A/B: every config of CONFIGS (default: Qwen2.5-0.5B and
# InternVL2-2B's InternLM2-1.8B) built by both compilers (DTYPE, default
# bf16; x86-64-v3 unless DECC_FLAGS says otherwise), then ROUNDS (default
# 5) interleaved rounds of `--random-weights 1 --benchmark-prefill
# PREFILL --benchmark-decode 128` (STEPS decode steps, default 64),
# base before new in each round. This host's peak and bandwidth move by
# a third within minutes (a shared machine): compare within a pair, and
# read fmapeak's AVX2 peak and membw's read bandwidth, printed at the start
# and the end, as the room the run had. BASE_DECC is a decc of the commit
# before the change, built beside its own lib/ (the decc of another build
# directory, or a copy placed in this build's bin/).
set -euo pipefail
base=$1 new=$2
threads=${3:-$(nproc)}
rounds=${4:-5}
steps=${STEPS:-64}
dtype=${DTYPE:-bf16}
prefill=${PREFILL:-128}
build=$(cd "$(dirname "$new")/.." && pwd)
shared=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
configs=${CONFIGS:-"qwen2.5-0.5b-instruct internvl2-2b"}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

room() {
  echo "$("$build/bin/fmapeak" --threads "$threads" 2>&1 | grep avx2-fma), $("$build/bin/membw" --threads "$threads" 2>&1 | grep -o 'read [0-9.]* GB/s')"
}
echo "bench/cpu-ab.sh: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $threads threads, $dtype, ${DECC_FLAGS:-x86-64-v3}"
echo "start: $(room)"
for c in $configs; do
  for side in base new; do
    decc=$base; [ "$side" = new ] && decc=$new
    # shellcheck disable=SC2086
    "$decc" "$shared/data/configs/$c/config.json" --dtype "$dtype" ${DECC_FLAGS:-} -o "$out/$c-$side" > /dev/null
  done
done
for r in $(seq 1 "$rounds"); do
  for c in $configs; do
    for side in base new; do
      line=$("$out/$c-$side" --random-weights 1 --benchmark-prefill "$prefill" --benchmark-decode 128 \
        --benchmark-steps "$steps" --threads "$threads" 2>&1 |
        grep -oE 'prefill [0-9]+ tokens: [0-9.]+ ms|[0-9.]+ tokens/s|[0-9.]+ ms/token|[0-9.]+ GB/s' | tr '\n' ' ')
      echo "r$r $c $side: $line"
    done
  done
done
echo "end: $(room)"

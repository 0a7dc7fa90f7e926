#!/usr/bin/env bash
# bench/cpu-quantized.sh [BUILD] [THREADS] [ROUNDS]
#
# Issue 14's CPU measure: decode and prefill of int8 and int4 builds beside
# bf16, same shapes, same run, interleaved rounds (this machine's bandwidth
# moves by a third within minutes: compare within a round). Each config of
# CONFIGS (default: Qwen2.5-0.5B and InternVL2-2B's InternLM2-1.8B) is
# built bf16, int8 (groups of 32), int4 (groups of 128; int16 products,
# the default) and int4-f32 (--cpu-int16-dots=false), x86-64-v3 unless
# DECC_FLAGS says otherwise; each runs `--random-weights 1
# --benchmark-prefill 128 --benchmark-decode 128` (STEPS decode steps,
# default 64). Prints bench/membw before and after, then a row a build:
# decode ms a token and prefill tokens/s of each round, and decode as a
# multiple of bf16's in the same round.
set -euo pipefail
build=${1:-build}
threads=${2:-$(nproc)}
rounds=${3:-2}
steps=${STEPS:-64}
shared=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
configs=${CONFIGS:-"qwen2.5-0.5b-instruct internvl2-2b"}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "bench/cpu-quantized.sh: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $threads threads, ${DECC_FLAGS:-x86-64-v3}"
"$build/bin/membw" --threads "$threads"
variants="bf16 int8 int4 int4-f32"
for c in $configs; do
  for v in $variants; do
    case $v in
    bf16) flags="--dtype bf16" ;;
    int8) flags="--dtype int8" ;;
    int4) flags="--dtype int4 --group-size 128" ;;
    int4-f32) flags="--dtype int4 --group-size 128 --cpu-int16-dots=false" ;;
    esac
    # shellcheck disable=SC2086
    "$build/bin/decc" "$shared/data/configs/$c/config.json" $flags \
      ${DECC_FLAGS:-} -o "$out/$c-$v" > /dev/null
  done
done
for r in $(seq "$rounds"); do
  for c in $configs; do
    for v in $variants; do
      "$out/$c-$v" --random-weights 1 --threads "$threads" --max-context 1024 \
        --benchmark-prefill 128 --benchmark-decode 128 \
        --benchmark-steps "$steps" 2>&1 |
        sed -n "s/^benchmark: \(prefill\|decode\)/$r $c $v &/p" >> "$out/runs"
    done
  done
done
"$build/bin/membw" --threads "$threads"
python3 - "$out/runs" <<'PY'
import re, sys
from collections import defaultdict
decode, prefill = defaultdict(dict), defaultdict(dict)
for line in open(sys.argv[1]):
    r, c, v = line.split()[:3]
    if m := re.search(r"([\d.]+) ms/token", line):
        decode[(c, v)][r] = float(m.group(1))
    elif m := re.search(r"([\d.]+) tokens/s", line):
        prefill[(c, v)][r] = float(m.group(1))
print("| shape | build | decode ms/token (x bf16) | prefill 128 tokens/s |")
print("|---|---|---|---|")
for (c, v), ms in decode.items():
    base = decode[(c, "bf16")]
    d = ", ".join(f"{ms[r]:.1f} ({base[r] / ms[r]:.2f}x)" for r in sorted(ms))
    p = ", ".join(f"{prefill[(c, v)][r]:.0f}" for r in sorted(prefill[(c, v)]))
    print(f"| {c} | {v} | {d} | {p} |")
PY

#!/usr/bin/env bash
# bench/cpu.sh [BUILD] [CONFIG] [THREADS]
#
# CPU decode and prefill of a real-size config with random bf16 weights,
# beside the baseline measured in the same run: the streaming bandwidth of
# the same cores (bench/membw). Decode reads every weight once per token,
# so weights bytes / time per token over the read bandwidth is the share of
# the machine the kernels get. Prefill is reported as GEMM FLOP rate, beside
# the cores' AVX2 FMA peak (bench/fmapeak; the build is x86-64-v3).
set -euo pipefail
build=${1:-build}
config=${2:-../shared/data/configs/internvl2-2b/config.json}
threads=${3:-$(nproc)}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "bench/cpu.sh: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$build/bin/membw" --threads "$threads" | tee "$out/membw"
"$build/bin/fmapeak" --threads "$threads" | tee "$out/fmapeak"
/usr/bin/time -f "decc: %e s wall, %M KiB peak" "$build/bin/decc" "$config" --dtype bf16 -o "$out/model"
"$out/model" --random-weights 1 --benchmark --threads "$threads" --max-context 1024 \
  --max-new-tokens 32 > /dev/null 2> "$out/run"
cat "$out/run"
"$out/model" --info > "$out/info"
python3 - "$out/membw" "$out/run" "$out/info" "$out/fmapeak" <<'PY'
import re, sys
membw, run, info, fmapeak = (open(p).read() for p in sys.argv[1:])
peak = float(re.search(r"avx2-fma ([\d.]+) GFLOP/s", fmapeak).group(1))
read = float(re.search(r"read ([\d.]+) GB/s", membw).group(1))
streamed_mib = float(re.search(r"streaming ([\d.]+) MiB", run).group(1))
gbs = float(re.search(r"per token: ([\d.]+) GB/s", run).group(1))
pre = re.search(r"prefill (\d+) tokens in ([\d.]+) s", run)
tokens, seconds = int(pre.group(1)), float(pre.group(2))
# 2 FLOPs per streamed bf16 weight per token (the embedding is a gather).
params = streamed_mib * 1048576 / 2
print(f"decode: {gbs:.1f} GB/s of streamed weights = {100 * gbs / read:.0f}% of the measured read bandwidth ({read:.1f} GB/s)")
gflops = 2 * params * tokens / seconds / 1e9
print(f"prefill: {gflops:.1f} GFLOP/s ({tokens} tokens) = {100 * gflops / peak:.0f}% of the AVX2 FMA peak ({peak:.1f} GFLOP/s)")
PY

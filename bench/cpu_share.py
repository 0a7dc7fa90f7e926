"""cpu_share.py WORK < LOG: bench/cpu-peers.sh's tokens/s as shares of the
machine measured in the same run.

Prefill in FLOPs (bench/model_flops.py: the projections, the causal
attention and the LM head's one row) over the peak bench/fmapeak measured
for the instruction set the build runs: AVX2 FMA for decc's default
(x86-64-v3) build and llama.cpp-v3; for the native builds AVX512-BF16's
dot product in bf16 and AVX-512 FMA otherwise, where the host has them.
Decode in streamed weight bytes a second (every projection and the LM head
once a token) over bench/membw's read bandwidth. Both ceilings are the
highest of the run's readings. The checkpoints' configs
are read from WORK/ckpt/SHAPE/config.json."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_flops import decode_weight_bytes, prefill_flops  # noqa: E402

work = sys.argv[1]
log = sys.stdin.read()
# The most the host gave in the run's readings (cpu-peers.sh takes them at
# its start and its end): on a shared host a reading taken while a
# neighbour streams would otherwise inflate every share.
peaks = {}
for k, v in re.findall(r"fmapeak: (\S+) ([\d.]+) GFLOP/s", log):
    peaks[k] = max(peaks.get(k, 0.0), float(v))
reads = [float(v) for v in re.findall(r"membw: .*?read ([\d.]+) GB/s", log)]
read = max(reads)
size = {"f32": 4, "bf16": 2, "f16": 2}


def peak_of(name, dtype):
    native = name in ("decc-native", "llama.cpp")
    if native and dtype == "bf16" and "avx512-bf16-dot" in peaks:
        return "avx512-bf16-dot"
    if native and "avx512-fma" in peaks:
        return "avx512-fma"
    return "avx2-fma"


print(f"shares: prefill GFLOP/s over fmapeak's peak, decode GB/s over membw's read {read:.1f} GB/s"
      f" (the highest of {len(reads)} readings: {', '.join(f'{r:.1f}' for r in reads)})")
line = re.compile(r"round (\d+) (\S+) (\S+) (\S+): pp128 ([\d.]+) pp512 ([\d.]+) tg64@128 ([\d.]+)")
for rnd, shape, dtype, name, pp128, pp512, tg in line.findall(log):
    config = os.path.join(work, "ckpt", shape, "config.json")
    peak = peak_of(name, dtype)
    shares = []
    for tokens, rate in ((128, pp128), (512, pp512)):
        gflops = prefill_flops(config, tokens)[0] / tokens * float(rate) / 1e9
        shares.append(f"pp{tokens} {gflops:.0f} GFLOP/s = {100 * gflops / peaks[peak]:.0f}%")
    gbs = decode_weight_bytes(config, size[dtype]) * float(tg) / 1e9
    shares.append(f"tg {gbs:.1f} GB/s = {100 * gbs / read:.0f}%")
    print(f"round {rnd} {shape} {dtype} {name}: {', '.join(shares)} (peak: {peak})")

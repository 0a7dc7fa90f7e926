#!/usr/bin/env bash
# bench/gpu-profile.sh EXE [decode CONTEXT | prefill LENGTH]
#
# Where the time of one step goes, by Nsight Compute on the GPU machine
# (the clocks left as they are):
#   decode C: the kernels of one layer of a decode step after C tokens (the
#             first step, replayed from its CUDA graph): duration, memory
#             throughput, occupancy;
#   prefill L: the duration of every kernel of one prefill of L tokens,
#             summed by kernel kind.
set -uo pipefail
exe=$1 mode=$2 n=$3
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
case $mode in
decode)
  "$ncu" --clock-control none --graph-profiling node \
    --section SpeedOfLight --section Occupancy --section LaunchStats \
    -k 'regex:^(projection|attention_split|attention_merge|attention_decode)' \
    --launch-skip 1 --launch-count 7 \
    "$exe" --random-weights 1 --benchmark-decode "$n" --benchmark-steps 2 2>&1 |
    grep -E '^  [a-z_]+[0-9]+ \(|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per|Grid Size|Block Size|Waves Per SM' ;;
prefill)
  "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv \
    --launch-count 400 "$exe" --random-weights 1 --benchmark-prefill "$n" 2>/dev/null |
    python3 -c '
import csv, sys, re, collections
rows = [r for r in csv.reader(sys.stdin) if len(r) > 10]
head, rows = rows[0], rows[1:]
k, v = head.index("Kernel Name"), head.index("Metric Value")
# One prefill: the kernels from the first embedding to the next.
starts = [i for i, r in enumerate(rows) if r[k].startswith("embedding")]
one = rows[starts[0]:starts[1]] if len(starts) > 1 else rows
total = collections.Counter(); count = collections.Counter()
for r in one:
    kind = re.sub(r"_[0-9]+$", "", r[k]); total[kind] += float(r[v].replace(",", "")); count[kind] += 1
all_ns = sum(total.values())
for kind, ns in total.most_common():
    print(f"{kind:28s} {count[kind]:4d} kernels {ns/1e3:9.1f} us {100*ns/all_ns:5.1f}%")
label = "all"
print(f"{label:28s} {len(one):4d} kernels {all_ns/1e3:9.1f} us")
' ;;
esac

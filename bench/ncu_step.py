#!/usr/bin/env python3
"""bench/ncu_step.py TAG FILE.csv [TAG FILE.csv ...]

One decode step's kernels, from Nsight Compute's CSV of a run with
`--graph-profiling node --metrics gpu__time_duration.sum,dram__bytes_read.sum
--csv` (bench/gpu-quantized-ab.sh makes them): the step is the kernels from
the next-to-last `embedding` launch to the last, summed by kernel, with
each kernel's time alone (ncu runs them one at a time, without the
programmatic launch's overlap), bytes read from DRAM and their rate.
"""
import collections
import csv
import sys


def step_of(path):
    rows = [r for r in csv.reader(open(path)) if len(r) > 10]
    head, rows = rows[0], rows[1:]
    name, metric = head.index("Kernel Name"), head.index("Metric Name")
    value, launch = head.index("Metric Value"), head.index("ID")
    launches = collections.OrderedDict()
    for r in rows:
        launches.setdefault(r[launch], {"name": r[name]})[r[metric]] = float(
            r[value].replace(",", ""))
    items = list(launches.values())
    starts = [i for i, it in enumerate(items) if it["name"].startswith("embed")]
    if len(starts) < 2:
        sys.exit(f"{path}: fewer than two decode steps' embedding launches")
    return items[starts[-2]:starts[-1]]


def main(args):
    for tag, path in zip(args[0::2], args[1::2]):
        step = step_of(path)
        ns, count, read = (collections.Counter() for _ in range(3))
        for k in step:
            ns[k["name"]] += k["gpu__time_duration.sum"]
            count[k["name"]] += 1
            read[k["name"]] += k["dram__bytes_read.sum"]
        total = sum(ns.values())
        print(f"{tag}: {len(step)} kernels, {total / 1e3:.1f} us one at a time")
        for kernel, t in ns.most_common(12):
            n = count[kernel]
            print(f"  {kernel:28s} {n:3d} x {t / 1e3 / n:8.2f} us {100 * t / total:5.1f}%"
                  f" {read[kernel] / n / 1e6:7.2f} MB {read[kernel] / t:6.0f} GB/s")


if __name__ == "__main__":
    if len(sys.argv) < 3 or len(sys.argv) % 2 == 0:
        sys.exit(__doc__)
    main(sys.argv[1:])

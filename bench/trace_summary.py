#!/usr/bin/env python3
"""Summarizes the kernel timelines a `decc --gpu-trace` executable prints.

    bench/trace_summary.py [LOG]    (stdin without LOG)

The executable prints, on exit, one `trace:` line a launch of its last
forward call: first and last block start | first wait release | first and
last block end (us) | blocks. A log may hold several such timelines, each
after a line starting with `== ` (bench scripts' titles). For each, a row
per kernel (the launches that share it, e.g. one a layer, averaged):

  after  the span from its wait's release to its last block's end: what it
         costs the step once its predecessor is done;
  tail   from its first block's end to its last: the time its grid drains
         with fewer and fewer blocks at work;
  gap    from its predecessor's last block end to its own wait's release:
         what the kernel boundary costs (0 where the wait is not recorded:
         the decode GEMVs');
  early  from its first block's start to its wait's release: how long its
         blocks were resident (loading what does not depend on the
         predecessor) before they could go on.

then, for a kernel that marks points of its own (the decode attention: 0
keys folded, 1 teams merged, 2 split counted, 3 splits merged; the
tensor-core GEMV: 0 B built, 1 the warp's steps done, 2 the unit's sums
shared), when its
last block passed each, from its wait; and the step's total: the first
block's start to the last block's end.
Standard library only.
"""
import re
import sys
from collections import OrderedDict

PHASE = re.compile(r"\|\s+phase (\d+) ([-\d.]+) ([-\d.]+)")
LINE = re.compile(
    r"^trace:\s+(\d+)\s+(\S+)\s+([-\d.]+)\s+([-\d.]+)\s+\|\s+(\S+)\s+\|"
    r"\s+([-\d.]+)\s+([-\d.]+)\s+\|\s+(\d+)")


def launches(lines):
    """The launches of one timeline, in order, as dicts."""
    out = []
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        wait = None if m.group(5) == "-" else float(m.group(5))
        out.append({
            "kernel": m.group(2),
            "first_start": float(m.group(3)),
            "wait": wait,
            "first_end": float(m.group(6)),
            "last_end": float(m.group(7)),
            "blocks": int(m.group(8)),
            "phases": {int(p): float(last)
                       for p, _, last in PHASE.findall(line)},
        })
    return out


def summarize(title, rows):
    if not rows:
        return
    per = OrderedDict()
    previous_end = None
    for r in rows:
        # Without a recorded wait (a decode GEMV's, which waits once a unit,
        # is not traced; without programmatic launch there is none), a
        # kernel is taken to go on as its predecessor's last block ends.
        ready = r["wait"]
        if ready is None:
            ready = r["first_start"] if previous_end is None else max(
                r["first_start"], previous_end)
        k = per.setdefault(r["kernel"], {"n": 0, "after": 0.0, "tail": 0.0,
                                         "gap": 0.0, "early": 0.0,
                                         "blocks": r["blocks"],
                                         "phases": {}})
        k["n"] += 1
        k["after"] += r["last_end"] - ready
        k["tail"] += r["last_end"] - r["first_end"]
        k["early"] += ready - r["first_start"]
        for p, last in r["phases"].items():
            k["phases"][p] = k["phases"].get(p, 0.0) + last - ready
        if previous_end is not None:
            k["gap"] += ready - previous_end
        previous_end = r["last_end"]
    total = rows[-1]["last_end"] - min(r["first_start"] for r in rows)
    print(title)
    print(f"  {'kernel':26s} {'n':>4s} {'after':>8s} {'tail':>8s} "
          f"{'gap':>7s} {'early':>8s} {'blocks':>7s} {'share':>6s}")
    for name, k in per.items():
        n = k["n"]
        share = 100.0 * (k["after"] + k["gap"]) / total if total > 0 else 0.0
        print(f"  {name:26s} {n:4d} {k['after'] / n:8.2f} {k['tail'] / n:8.2f} "
              f"{k['gap'] / n:7.2f} {k['early'] / n:8.2f} {k['blocks']:7d} "
              f"{share:5.1f}%")
        if k["phases"]:
            marks = "  ".join(f"{p}: {t / n:.2f}"
                              for p, t in sorted(k["phases"].items()))
            print(f"  {'':26s} last block at its points after the wait: {marks}")
    print(f"  step: {total:.1f} us over {len(rows)} launches")


def main():
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    title, block = "(timeline)", []
    for line in text.splitlines():
        if line.startswith("== "):
            summarize(title, launches(block))
            title, block = line[3:], []
        else:
            block.append(line)
    summarize(title, launches(block))


if __name__ == "__main__":
    main()

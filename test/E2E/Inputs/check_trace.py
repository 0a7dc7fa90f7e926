"""check_trace.py TRACE.json OUTPUT: the executable's greedy tokens (one
comma-separated line) must equal llama2.c's published trace after BOS."""
import json
import sys

trace = json.load(open(sys.argv[1]))["greedy_from_bos"]["tokens"]
expected = trace[1:]
line = open(sys.argv[2]).read().strip()
got = [int(t) for t in line.split(",")] if line else []
for i, (e, g) in enumerate(zip(expected, got)):
    if e != g:
        print(f"MISMATCH at token {i}: expected {e}, got {g}")
        sys.exit(1)
if len(got) != len(expected):
    print(f"MISMATCH: expected {len(expected)} tokens, got {len(got)}")
    sys.exit(1)
print(f"MATCH {len(got)} tokens")

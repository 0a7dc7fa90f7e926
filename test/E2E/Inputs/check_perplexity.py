"""check_perplexity.py REFERENCE.json KEY OUTPUT [TOLERANCE]: the perplexity
the executable printed ("perplexity: X over N tokens ...") must be within
TOLERANCE (relative; default the reference's own) of the reference's KEY
entry, made by Hugging Face transformers (test/references/perplexity_reference.py),
and over as many scored tokens."""
import json
import re
import sys

ref = json.load(open(sys.argv[1]))
entry = ref[sys.argv[2]]
text = open(sys.argv[3]).read()
m = re.search(r"perplexity: ([0-9.]+) over ([0-9]+) tokens", text)
if not m:
    print("NO PERPLEXITY in output:", text.strip()[-200:])
    sys.exit(1)
got, scored = float(m.group(1)), int(m.group(2))
want = entry["perplexity"]
tolerance = float(sys.argv[4]) if len(sys.argv) > 4 else entry["tolerance"]
if scored != entry["scored_tokens"]:
    print(f"MISMATCH: {scored} tokens scored, the reference scored {entry['scored_tokens']}")
    sys.exit(1)
if abs(got / want - 1) > tolerance:
    print(f"MISMATCH: perplexity {got} against {want} (tolerance {tolerance})")
    sys.exit(1)
print(f"MATCH perplexity {got} against {want} within {tolerance}")

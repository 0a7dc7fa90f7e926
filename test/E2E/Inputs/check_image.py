"""check_image.py REFERENCE.json KEY OUTPUT: decc-image's report on a
picture (OUTPUT) against the tiles InternVL's own preprocessing made of
it with Pillow (REFERENCE's KEY, test/references/image_reference.py): the
same grid and tile count, every tile's RGB bytes the same (their FNV-1a
hash), the normalized first pixel to 1e-6."""
import json
import re
import sys

ref = json.load(open(sys.argv[1]))[sys.argv[2]]
out = open(sys.argv[3]).read()
m = re.search(r"image (\d+)x(\d+): (\d+) x (\d+) tiles", out)
if not m:
    sys.exit("NO REPORT: " + out[-300:])
if [int(m.group(1)), int(m.group(2))] != ref["size"] or [int(m.group(3)), int(m.group(4))] != ref["grid"]:
    sys.exit("MISMATCH grid: %s, reference %s %s" % (m.group(0), ref["size"], ref["grid"]))
tiles = re.findall(r"tile (\d+): fnv1a ([0-9a-f]+) mean ([0-9.]+)", out)
if len(tiles) != len(ref["tiles"]):
    sys.exit("MISMATCH: %d tiles, reference %d" % (len(tiles), len(ref["tiles"])))
for (i, h, mean), r in zip(tiles, ref["tiles"]):
    if h != r["fnv1a"]:
        sys.exit("MISMATCH tile %s: bytes differ (mean %s, reference %s)" % (i, mean, r["mean"]))
p = re.search(r"pixel 0 normalized: (\S+) (\S+) (\S+)", out)
if not p or any(abs(float(a) - b) > 1e-6 for a, b in zip(p.groups(), ref["pixel0"])):
    sys.exit("MISMATCH pixel 0: %s, reference %s" % (p.groups() if p else None, ref["pixel0"]))
print("MATCH %d tiles (%d x %d%s)" % (len(tiles), ref["grid"][0], ref["grid"][1],
                                       " + thumbnail" if len(tiles) > ref["grid"][0] * ref["grid"][1] else ""))

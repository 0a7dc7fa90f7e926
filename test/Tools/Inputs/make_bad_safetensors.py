"""Writes malformed safetensors files, one defect each, into argv[1]."""
import json
import os
import struct
import sys

out = sys.argv[1]


def write(name, header, data=b"", length=None):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(text) if length is None else length
    with open(os.path.join(out, name), "wb") as f:
        f.write(struct.pack("<Q", n) + text + data)


ids = struct.pack("<3q", 1, 2, 3)
with open(os.path.join(out, "short"), "wb") as f:
    f.write(b"\x10\x00\x00\x00")
write("lying-length", b"{}" + b" " * 30, length=4096)
write("huge-length", b"{}      ", length=2**64 - 1)
write("huge-header", b"{}" + b" " * (16 * 2**20 + 6))
write("unaligned", {"prompt_ids": {"dtype": "I64", "shape": [2], "data_offsets": [4, 20]}}, ids)
write("bad-json", b'{"prompt_ids": ')
write("past-end", {"prompt_ids": {"dtype": "I64", "shape": [8], "data_offsets": [0, 64]}}, ids)
write("wrong-size", {"prompt_ids": {"dtype": "I64", "shape": [4], "data_offsets": [0, 24]}}, ids)
write("bad-dtype", {"prompt_ids": {"dtype": "Q4", "shape": [3], "data_offsets": [0, 24]}}, ids)
write("no-logits", {"prompt_ids": {"dtype": "I64", "shape": [3], "data_offsets": [0, 24]},
                    "generated_ids": {"dtype": "I64", "shape": [3], "data_offsets": [24, 48]}}, ids + ids)
write("float-ids", {"prompt_ids": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, ids[:8])

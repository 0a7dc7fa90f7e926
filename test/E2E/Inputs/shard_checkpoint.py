"""shard_checkpoint.py SRC_DIR OUT_DIR: the same tensors split over two
safetensors files with a model.safetensors.index.json, as the Hub shards
large checkpoints."""
import json
import os
import shutil
import struct
import sys

src, out = sys.argv[1], sys.argv[2]
raw = open(os.path.join(src, "model.safetensors"), "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
header.pop("__metadata__", None)
data = raw[8 + n:]
names = sorted(header)
os.makedirs(out, exist_ok=True)
weight_map = {}
for i, part in enumerate([names[0::2], names[1::2]]):
    file = f"model-{i + 1:05d}-of-00002.safetensors"
    h, body = {}, b""
    for name in part:
        begin, end = header[name]["data_offsets"]
        h[name] = {"dtype": header[name]["dtype"], "shape": header[name]["shape"],
                   "data_offsets": [len(body), len(body) + end - begin]}
        body += data[begin:end]
        weight_map[name] = file
    text = json.dumps(h).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(out, file), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + body)
json.dump({"metadata": {}, "weight_map": weight_map},
          open(os.path.join(out, "model.safetensors.index.json"), "w"))

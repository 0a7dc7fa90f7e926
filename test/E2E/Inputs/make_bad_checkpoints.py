"""make_bad_checkpoints.py SRC_DIR OUT_DIR: checkpoint folders that are each
wrong in one way, made from the good model.safetensors in SRC_DIR."""
import json
import os
import struct
import sys

src, out = sys.argv[1], sys.argv[2]
raw = open(os.path.join(src, "model.safetensors"), "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
meta = header.pop("__metadata__", None)


def write(name, tensors, blobs, cut=None):
    os.makedirs(os.path.join(out, name), exist_ok=True)
    offset, h, body = 0, {}, b""
    for key, info in tensors.items():
        blob = blobs[key]
        h[key] = dict(info, data_offsets=[offset, offset + len(blob)])
        body += blob
        offset += len(blob)
    text = json.dumps(h).encode()
    text += b" " * (-len(text) % 8)
    payload = struct.pack("<Q", len(text)) + text + body
    if cut:
        payload = payload[:cut]
    with open(os.path.join(out, name, "model.safetensors"), "wb") as f:
        f.write(payload)


blobs = {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}
tensors = {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in header.items()}
victim = "model.norm.weight"

missing = dict(tensors)
del missing[victim]
write("missing", missing, blobs)

shape = dict(tensors)
shape[victim] = {"dtype": "F32", "shape": [32]}
write("shape", shape, dict(blobs, **{victim: blobs[victim][:128]}))

dtype = dict(tensors)
dtype[victim] = {"dtype": "I32", "shape": tensors[victim]["shape"]}
write("dtype", dtype, blobs)

write("truncated", tensors, blobs, cut=len(raw) // 2)


def write_raw(name, header_text, body):
    """A checkpoint whose header is `header_text` as given (json.dumps
    cannot write a key twice)."""
    os.makedirs(os.path.join(out, name), exist_ok=True)
    text = header_text.encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(out, name, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + body)


# The good header, then the victim's entry again.
entries = [json.dumps(k) + ": " + json.dumps(v) for k, v in header.items()]
again = json.dumps(victim) + ": " + json.dumps(header[victim])
write_raw("duplicate", "{" + ", ".join(entries + [again]) + "}", data)

# The victim's range moved onto the first tensor's bytes.
first = min(header, key=lambda k: header[k]["data_offsets"][0])
begin, end = header[victim]["data_offsets"]
start = header[first]["data_offsets"][0]
overlap = dict(header)
overlap[victim] = dict(header[victim], data_offsets=[start, start + end - begin])
write_raw("overlap", json.dumps(overlap), data)

# A NaN in a projection's weights (f32): an int8 build cannot quantize it.
nan = dict(blobs)
proj = "model.layers.0.mlp.down_proj.weight"
assert tensors[proj]["dtype"] == "F32"
nan[proj] = struct.pack("<f", float("nan")) + blobs[proj][4:]
write("nan", tensors, nan)

"""make_awq_checkpoint.py SRC DST GROUP [--drop NAME] [--method M]

Writes DST, an AWQ-quantized copy of the checkpoint folder SRC
(config.json + model.safetensors), as AutoAWQ's GEMM format stores one:
every 2-D tensor of a transformer block ("X.weight", [out, in]) becomes
X.qweight (int32 [in, out / 8]), X.qzeros (int32 [in / GROUP, out / 8])
and X.scales (f16 [in / GROUP, out]), a weight being (q - zero) * scale;
nibble k of a word holds output column 8 w + AWQ_ORDER[k]. The embedding
table and the LM head stay floats (AutoAWQ leaves lm_head alone), and
config.json gains AutoAWQ's quantization_config.

The integers are decc's own round to nearest (runtime/Quantize.cpp: the
group's range widened to hold 0, the scale rounded to f16, f32
arithmetic emulated exactly), so that decc reading DST must hold the same
bytes as decc quantizing SRC. Standard library only.

--drop NAME leaves tensor NAME out (a broken checkpoint for error tests);
--method M writes quant_method M.
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import floats, read_safetensors, write_safetensors  # noqa: E402

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f16(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]


def quantize(w, out, cols, group):
    """decc's rule: q [out][cols], zeros and scales [out][groups]."""
    groups = cols // group
    q, zeros, scales = [], [], []
    one_e5 = f32(1e-5)
    for r in range(out):
        row = w[r * cols : (r + 1) * cols]
        qr, zr, sr = [0] * cols, [0] * groups, [0.0] * groups
        for g in range(groups):
            part = row[g * group : (g + 1) * group]
            lo, hi = min(0.0, min(part)), max(0.0, max(part))
            scale = f16(f32(max(f32(hi - lo), one_e5) / 15.0))
            zero = min(15.0, max(0.0, float(-round(f32(lo / scale)))))
            zr[g], sr[g] = int(zero), scale
            for c in range(group):
                v = round(f32(part[c] / scale)) + zero
                qr[g * group + c] = int(min(15.0, max(0.0, v)))
        q.append(qr)
        zeros.append(zr)
        scales.append(sr)
    return q, zeros, scales


def pack(columns, n, out):
    """[out][n] nibbles -> AutoAWQ's int32 [n, out / 8], as bytes."""
    words = []
    for i in range(n):
        for w in range(out // 8):
            v = 0
            for k in range(8):
                v |= columns[w * 8 + AWQ_ORDER[k]][i] << (4 * k)
            words.append(v)
    return struct.pack("<%dI" % len(words), *words)


def main():
    src, dst, group = sys.argv[1], sys.argv[2], int(sys.argv[3])
    args = sys.argv[4:]
    drop = args[args.index("--drop") + 1] if "--drop" in args else None
    method = args[args.index("--method") + 1] if "--method" in args else "awq"
    os.makedirs(dst, exist_ok=True)
    source = read_safetensors(os.path.join(src, "model.safetensors"))
    result = {}
    for name, (dtype, shape, raw) in source.items():
        block = ".layers." in name or ".blocks." in name
        if not (block and len(shape) == 2 and name.endswith(".weight")):
            result[name] = (dtype, shape, raw)
            continue
        out, cols = shape
        q, zeros, scales = quantize(floats(dtype, raw), out, cols, group)
        prefix = name[: -len(".weight")]
        groups = cols // group
        result[prefix + ".qweight"] = ("I32", [cols, out // 8], pack(q, cols, out))
        result[prefix + ".qzeros"] = ("I32", [groups, out // 8], pack(zeros, groups, out))
        s = [scales[o][g] for g in range(groups) for o in range(out)]
        result[prefix + ".scales"] = ("F16", [groups, out], struct.pack("<%de" % len(s), *s))
    if drop:
        del result[drop]
    write_safetensors(os.path.join(dst, "model.safetensors"), result)
    config = json.load(open(os.path.join(src, "config.json")))
    config["quantization_config"] = {
        "quant_method": method,
        "bits": 4,
        "group_size": group,
        "version": "gemm",
        "zero_point": True,
    }
    json.dump(config, open(os.path.join(dst, "config.json"), "w"), indent=2)


if __name__ == "__main__":
    main()

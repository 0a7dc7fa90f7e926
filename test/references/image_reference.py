"""image_reference.py IMAGE... > image-preprocess.json

The tiles InternVL's own preprocessing makes of each picture, for
test/E2E/image-preprocess.test: dynamic_preprocess and the first steps of
build_transform as internvl/train/dataset.py (../shared/data/internvl-
reference, MIT) writes them, run with Pillow (pip install pillow; torch
is not needed: ToTensor and Normalize are a division and an affine map in
float32, emulated here with struct). For each picture and tile budget:
the grid, and per tile the FNV-1a 64 hash of its RGB bytes, their mean,
and the normalized first pixel."""
import json
import os
import struct
import sys

from PIL import Image


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


# internvl/train/dataset.py, verbatim in substance.
def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float("inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def dynamic_preprocess(image, min_num=1, max_num=6, image_size=448, use_thumbnail=False):
    orig_width, orig_height = image.size
    aspect_ratio = orig_width / orig_height
    target_ratios = set(
        (i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
        if i * j <= max_num and i * j >= min_num)
    target_ratios = sorted(target_ratios, key=lambda x: x[0] * x[1])
    target_aspect_ratio = find_closest_aspect_ratio(aspect_ratio, target_ratios, orig_width, orig_height, image_size)
    target_width = image_size * target_aspect_ratio[0]
    target_height = image_size * target_aspect_ratio[1]
    blocks = target_aspect_ratio[0] * target_aspect_ratio[1]
    resized_img = image.resize((target_width, target_height))
    processed_images = []
    for i in range(blocks):
        box = ((i % (target_width // image_size)) * image_size,
               (i // (target_width // image_size)) * image_size,
               ((i % (target_width // image_size)) + 1) * image_size,
               ((i // (target_width // image_size)) + 1) * image_size)
        processed_images.append(resized_img.crop(box))
    if use_thumbnail and len(processed_images) != 1:
        processed_images.append(image.resize((image_size, image_size)))
    return target_aspect_ratio, processed_images


def fnv1a(data):
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
result = {}
for path in sys.argv[1:]:
    image = Image.open(path).convert("RGB")
    for max_num in (1, 2, 6, 12):
        grid, tiles = dynamic_preprocess(image, max_num=max_num, image_size=448, use_thumbnail=True)
        entry = {"size": list(image.size), "grid": list(grid), "tiles": []}
        for tile in tiles:
            tile = tile.resize((448, 448), Image.BICUBIC)  # build_transform's Resize
            data = tile.tobytes()
            entry["tiles"].append({"fnv1a": fnv1a(data), "mean": round(sum(data) / len(data), 4)})
        first = tiles[0].getpixel((0, 0))
        entry["pixel0"] = [f32(f32(f32(first[c]) / f32(255.0)) - f32(MEAN[c])) for c in range(3)]
        entry["pixel0"] = [round(f32(entry["pixel0"][c] / f32(STD[c])), 6) for c in range(3)]
        result["%s/%d" % (os.path.basename(path), max_num)] = entry
json.dump(result, sys.stdout, indent=1)
print()

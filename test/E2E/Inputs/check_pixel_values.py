"""check_pixel_values.py REFERENCE PIXELS

decc-image's --pixel-values (the vision encoder's input) against the
per-tile statistics of InternVL's own pixel_values (torchvision's
ToTensor + Normalize of its tiles, test/references/vision_reference.py):
the sum, the sum of squares and the first value of every tile. decc's
values are the same float32 numbers when each tile's float64 sums agree
to 1e-9 of its sum of squares (summation order aside: one pixel off by
one step of 1/255 moves them by 1e-2 or more) and its first values are
equal; prints one line a tile and PASS or FAIL."""
import struct
import sys

from safetensors_io import floats, read_safetensors

reference, ours = read_safetensors(sys.argv[1]), read_safetensors(sys.argv[2])
stats_dtype, stats_shape, stats_raw = reference["pixel_stats"]
stats = floats(stats_dtype, stats_raw)
dtype, shape, raw = ours["pixel_values"]
tiles = shape[0]
per_tile = len(raw) // 4 // tiles
ok = tiles == stats_shape[0]
print("tiles: %d, reference %d" % (tiles, stats_shape[0]))
for i in range(min(tiles, stats_shape[0])):
    values = struct.unpack_from("<%df" % per_tile, raw, i * per_tile * 4)
    total = sum(values)
    squares = sum(v * v for v in values)
    ref_sum, ref_squares, ref_first = stats[3 * i:3 * i + 3]
    tile_ok = (abs(total - ref_sum) <= 1e-9 * ref_squares
               and abs(squares - ref_squares) <= 1e-9 * ref_squares
               and values[0] == ref_first)
    ok = ok and tile_ok
    print("tile %d: sum %.3f (reference %.3f) squares %.3f (%.3f) first %.6f (%.6f) %s"
          % (i, total, ref_sum, squares, ref_squares, values[0], ref_first, "ok" if tile_ok else "DIFFER"))
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)

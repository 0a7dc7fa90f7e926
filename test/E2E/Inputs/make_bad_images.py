"""make_bad_images.py SRC.jpg SRC.png OUT: hostile images for
image-preprocess.test: a JPEG and a PNG cut short, a PNG whose header
claims 100000 x 100000 pixels (a decompression bomb), a file that is
neither."""
import os
import struct
import sys
import zlib

jpg, png, out = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "cut.jpg"), "wb").write(open(jpg, "rb").read()[:20000])
open(os.path.join(out, "cut.png"), "wb").write(open(png, "rb").read()[:5000])


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
open(os.path.join(out, "bomb.png"), "wb").write(bomb)
# A picture 0 pixels wide (a valid chunk layout, an empty image).
empty = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 300, 8, 2, 0, 0, 0))
         + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
open(os.path.join(out, "empty.png"), "wb").write(empty)
open(os.path.join(out, "text.jpg"), "w").write("not an image\n")

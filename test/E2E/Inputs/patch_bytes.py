"""patch_bytes.py IN OUT KEY VALUE: copies the executable IN to OUT with the
number of the embedded manifest's one `"KEY":<number>` replaced by VALUE,
padded with spaces (JSON whitespace) so that no byte moves: the manifest of
a stale or tampered binary."""
import os
import re
import sys

src, dst, key, value = sys.argv[1:5]
data = open(src, "rb").read()
pattern = re.compile(rb'"' + re.escape(key.encode()) + rb'":(-?[0-9]+)')
found = pattern.findall(data)
assert len(found) == 1, f"{key} occurs {len(found)} times"
old = found[0]
new = value.encode()
assert len(new) <= len(old), f"{value} is longer than {old!r}"
data = pattern.sub(lambda m: b'"' + key.encode() + b'":' + new.ljust(len(old)), data)
open(dst, "wb").write(data)
os.chmod(dst, 0o755)

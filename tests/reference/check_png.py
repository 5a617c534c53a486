"""check_png.py FILE -- decodes an 8-bit grayscale PNG written by engram with
Python's zlib and struct only (the PNG specification: signature, chunks with
CRCs, IHDR, IDAT, IEND, filter bytes) and prints its size and pixel rows:
run by tests/lua/test_image.lua."""
import struct
import sys
import zlib

b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", "signature"
pos, chunks = 8, []
while pos < len(b):
    (n,) = struct.unpack(">I", b[pos:pos + 4])
    kind, data = b[pos + 4:pos + 8], b[pos + 8:pos + 8 + n]
    (crc,) = struct.unpack(">I", b[pos + 8 + n:pos + 12 + n])
    assert zlib.crc32(kind + data) == crc, "CRC of " + kind.decode()
    chunks.append((kind, data))
    pos += 12 + n
assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
w, h, depth, color, comp, filt, inter = struct.unpack(">IIBBBBB", chunks[0][1])
assert (depth, color, comp, filt, inter) == (8, 0, 0, 0, 0)
raw = zlib.decompress(chunks[1][1])
assert len(raw) == h * (w + 1)
print("%dx%d" % (w, h))
for y in range(h):
    row = raw[y * (w + 1):(y + 1) * (w + 1)]
    assert row[0] == 0, "filter type none"
    print(" ".join(str(v) for v in row[1:]))

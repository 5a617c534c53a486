"""check_safetensors.py -- the safetensors layout, checked from outside engram
with Debian's python3 and numpy (no torch, no safetensors package): run by
tests/lua/test_io.lua.

  python3 check_safetensors.py read FILE    reads an engram-written file by the
      published layout (8-byte little-endian header length, a JSON header of
      dtype/shape/data_offsets and __metadata__, little-endian data tiling the
      rest) and prints name, shape and sum of each tensor, then the metadata
  python3 check_safetensors.py write FILE   writes a file by the same layout
      (not padded, keys in another order) for engram to read
"""
import json
import struct
import sys

import numpy as np


def read(path):
    b = open(path, "rb").read()
    (n,) = struct.unpack("<Q", b[:8])
    assert n % 8 == 0, "engram pads the header to 8 bytes"
    header = json.loads(b[8:8 + n].decode("utf-8"))
    data = b[8 + n:]
    meta = header.pop("__metadata__", {})
    spans = sorted((v["data_offsets"], k) for k, v in header.items())
    at = 0
    for (begin, end), name in spans:
        assert begin == at, "no gap or overlap"
        at = end
    assert at == len(data), "the tensors tile the data"
    for name in sorted(header):
        v = header[name]
        assert v["dtype"] == "F32"
        begin, end = v["data_offsets"]
        a = np.frombuffer(data[begin:end], dtype="<f4").reshape(v["shape"])
        print("%s %s %.6f" % (name, "x".join(str(d) for d in a.shape) or "scalar", float(a.sum(dtype=np.float64))))
    for k in sorted(meta):
        print("meta %s=%s" % (k, meta[k]))


def write(path):
    tensors = {
        "z.last": np.arange(6, dtype="<f4").reshape(2, 3) * 0.5,
        "a.first": np.array([1.5, -2.0, 3.25], dtype="<f4"),
        "s": np.array(7.0, dtype="<f4"),
    }
    header, blobs, at = {"__metadata__": {"from": "numpy"}}, [], 0
    for name in ["s", "z.last", "a.first"]:  # data in an order of its own
        raw = tensors[name].tobytes()
        header[name] = {"data_offsets": [at, at + len(raw)], "shape": list(tensors[name].shape), "dtype": "F32"}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header).encode("utf-8")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


if __name__ == "__main__":
    {"read": read, "write": write}[sys.argv[1]](sys.argv[2])

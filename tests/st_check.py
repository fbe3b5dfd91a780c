#!/usr/bin/env python3
"""An independent safetensors reader (stdlib only) for test_safetensors: checks the layout
of FILE against the format (8-byte little-endian header length, JSON header, packed data
offsets) and prints one line per tensor: name, dtype, shape, and the sum of its values."""
import json, struct, sys

SIZES = {"F32": (4, "f"), "F64": (8, "d"), "I32": (4, "i"), "U8": (1, "B"), "BF16": (2, "H")}

def main(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    meta = header.pop("__metadata__", {})
    end = 0
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = t["data_offsets"]
        size, code = SIZES[t["dtype"]]
        count = 1
        for d in t["shape"]:
            count *= d
        assert b == end and e - b == count * size, "offsets of %s" % name
        end = e
        vals = struct.unpack("<%d%s" % (count, code), body[b:e])
        print("%s %s %s %r" % (name, t["dtype"], "x".join(map(str, t["shape"])), float(sum(vals))))
    assert end == len(body), "data section has %d bytes, tensors use %d" % (len(body), end)
    for k in sorted(meta):
        print("meta %s=%s" % (k, meta[k]))

if __name__ == "__main__":
    main(sys.argv[1])

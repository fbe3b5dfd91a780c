#!/usr/bin/env python3
"""gen_jpeg_fixtures.py: the JPEG decoder's fixtures and PIL's answers for them.

Writes tests/fixtures/jpeg/, read by tests/test_jpeg.c:
  rgb.jpg      37x23 (w x h) YCbCr 4:2:0, quality 90
  rgb444.jpg   29x31 YCbCr 4:4:4
  gray.jpg     19x33 grayscale
  progressive.jpg  37x23 progressive YCbCr 4:2:0 (several scans, Huffman tables between them)
  exif.jpg     37x23 YCbCr 4:2:0 with an EXIF orientation tag of 6 ("rotate 90 degrees"):
               PIL's Image.open does not apply it, nor does the decoder, so the golden
               pixels are the stored ones, 37 wide and 23 high
  cmyk.jpg     35x21 CMYK as PIL writes it (Adobe APP14 marker, transform 0, inverted samples)
  ycck.jpg     35x21 the same pixels as YCCK (Adobe transform 2, as Photoshop writes CMYK),
               written through libturbojpeg (PIL cannot write YCCK)
  truncated.jpg  rgb.jpg cut to 60% of its bytes (inside the entropy-coded data)
  corrupt.jpg    rgb.jpg with 16 bytes of entropy-coded data garbled (EOI marker kept)
  not_jpeg.png   a real PNG
  empty.jpg      0 bytes
  NAME.rgb       for each decodable NAME.jpg: Image.open(NAME.jpg).convert("RGB").tobytes(),
                 h*w*3 bytes, RGB interleaved, row-major: the golden pixels

Content is deterministic (gradients and a checkerboard), and odd sizes catch row-stride
bugs. The CMYK pixels sweep K over its whole range, so that the CMYK -> RGB formula is
exercised away from K = 0 (PIL's own RGB -> CMYK conversion always gives K = 0).

The script checks what the fixtures are meant to be: that the truncation falls after the
start-of-scan header, and that libjpeg (through libturbojpeg, the library under test)
reports the garbled file as a problem while it decodes rgb.jpg cleanly.

    /usr/bin/python3 scripts/gen_jpeg_fixtures.py [--out DIR]   (default tests/fixtures/jpeg)

Needs PIL (Debian: python3-pil) and libturbojpeg.so.0. `make test` never needs them: the
files are committed and the C test only reads them. A rerun with the same PIL and
libjpeg-turbo gives byte-identical files.
"""
import argparse
import ctypes
import os
import sys

from PIL import Image

TJPF_RGB, TJPF_CMYK = 0, 11
TJSAMP_420 = 2
TJFLAG_STOPONWARNING = 8192


def gradient_rgb(w, h):
    """R grows left to right, G top to bottom, B a 4-pixel checkerboard."""
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = (x * 255 // (w - 1), y * 255 // (h - 1), 230 if (x // 4 + y // 4) % 2 else 40)
    return im


def sweep_cmyk(w, h):
    """C and M gradients, Y a checkerboard, K from 0 (top) to 255 (bottom)."""
    data = bytearray()
    for y in range(h):
        for x in range(w):
            data += bytes((x * 255 // (w - 1), 255 - x * 255 // (w - 1),
                           200 if (x // 3 + y // 3) % 2 else 20, y * 255 // (h - 1)))
    return Image.frombytes("CMYK", (w, h), bytes(data))


class TurboJPEG:
    """The few libturbojpeg calls the script needs (write YCCK, check a decode)."""

    def __init__(self):
        self.lib = lib = ctypes.CDLL("libturbojpeg.so.0")
        lib.tjInitCompress.restype = ctypes.c_void_p
        lib.tjInitDecompress.restype = ctypes.c_void_p
        lib.tjDestroy.argtypes = [ctypes.c_void_p]
        lib.tjGetErrorStr2.restype = ctypes.c_char_p
        lib.tjGetErrorStr2.argtypes = [ctypes.c_void_p]
        lib.tjFree.argtypes = [ctypes.c_void_p]
        lib.tjCompress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                    ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_ulong),
                                    ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.tjDecompressHeader3.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong] + \
            [ctypes.POINTER(ctypes.c_int)] * 4
        lib.tjDecompress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
                                      ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]

    def compress_cmyk(self, raw, w, h, quality):
        """CMYK samples (as given, no inversion) -> a YCCK JPEG with an Adobe marker."""
        lib = self.lib
        handle = lib.tjInitCompress()
        buf, size = ctypes.c_void_p(), ctypes.c_ulong(0)
        r = lib.tjCompress2(handle, raw, w, 0, h, TJPF_CMYK, ctypes.byref(buf), ctypes.byref(size),
                            TJSAMP_420, quality, 0)
        if r != 0:
            sys.exit("tjCompress2: %s" % lib.tjGetErrorStr2(handle).decode())
        data = ctypes.string_at(buf, size.value)
        lib.tjFree(buf)
        lib.tjDestroy(handle)
        return data

    def decode_problem(self, data):
        """None when libjpeg decodes data without error or warning, else its message."""
        lib = self.lib
        handle = lib.tjInitDecompress()
        w, h, sub, cs = (ctypes.c_int(0) for _ in range(4))
        msg = None
        if lib.tjDecompressHeader3(handle, data, len(data), ctypes.byref(w), ctypes.byref(h),
                                   ctypes.byref(sub), ctypes.byref(cs)) != 0 or w.value < 1:
            msg = lib.tjGetErrorStr2(handle).decode()
        else:
            pf = TJPF_CMYK if cs.value >= 3 else TJPF_RGB
            out = ctypes.create_string_buffer(w.value * h.value * 4)
            if lib.tjDecompress2(handle, data, len(data), out, w.value, 0, h.value, pf, TJFLAG_STOPONWARNING) != 0:
                msg = lib.tjGetErrorStr2(handle).decode()
        lib.tjDestroy(handle)
        return msg


def entropy_start(data):
    """Offset of the first byte after the first start-of-scan header."""
    sos = data.find(b"\xff\xda")
    if sos < 0:
        sys.exit("no SOS marker")
    return sos + 2 + (data[sos + 2] << 8 | data[sos + 3])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/fixtures/jpeg")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)
    tj = TurboJPEG()

    gradient_rgb(37, 23).save(out("rgb.jpg"), quality=90, subsampling=2)
    gradient_rgb(29, 31).save(out("rgb444.jpg"), quality=90, subsampling=0)
    gradient_rgb(19, 33).convert("L").save(out("gray.jpg"), quality=90)
    gradient_rgb(37, 23).save(out("progressive.jpg"), quality=90, subsampling=2, progressive=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    gradient_rgb(37, 23).save(out("exif.jpg"), quality=90, subsampling=2, exif=exif.tobytes())
    cmyk = sweep_cmyk(35, 21)
    cmyk.save(out("cmyk.jpg"), quality=90)
    with open(out("ycck.jpg"), "wb") as f:
        f.write(tj.compress_cmyk(cmyk.tobytes(), 35, 21, 90))

    rgb = open(out("rgb.jpg"), "rb").read()
    start, end = entropy_start(rgb), len(rgb) - 2  # the last two bytes are the EOI marker
    cut = len(rgb) * 6 // 10
    if not start < cut < end:
        sys.exit("truncation at %d is not inside the entropy-coded data [%d, %d)" % (cut, start, end))
    with open(out("truncated.jpg"), "wb") as f:
        f.write(rgb[:cut])

    # XOR with 0x5A never makes 0xFF from a byte that is not 0xA5, and leaving 0xFF (and the
    # byte after it) alone keeps the byte stuffing intact: the file stays structurally a JPEG
    # (no new markers, EOI in place) whose entropy-coded data decodes wrong.
    bad = bytearray(rgb)
    mid = (start + end) // 2
    for i in range(mid, mid + 16):
        if bad[i] not in (0xFF, 0xA5) and bad[i - 1] != 0xFF:
            bad[i] ^= 0x5A
    bad = bytes(bad)
    problem = tj.decode_problem(bad)
    if problem is None or "Premature end" in problem:
        sys.exit("libjpeg does not report corrupt.jpg as corrupt (%s)" % problem)
    for name in ("rgb.jpg", "rgb444.jpg", "gray.jpg", "progressive.jpg", "exif.jpg", "cmyk.jpg", "ycck.jpg"):
        p = tj.decode_problem(open(out(name), "rb").read())
        if p is not None:
            sys.exit("libjpeg complains about %s: %s" % (name, p))
    with open(out("corrupt.jpg"), "wb") as f:
        f.write(bad)

    gradient_rgb(13, 7).save(out("not_jpeg.png"))
    open(out("empty.jpg"), "wb").close()

    for name in ("rgb", "rgb444", "gray", "progressive", "exif", "cmyk", "ycck"):
        im = Image.open(out(name + ".jpg"))
        pixels = im.convert("RGB").tobytes()
        assert len(pixels) == im.width * im.height * 3
        with open(out(name + ".rgb"), "wb") as f:
            f.write(pixels)
        print("%-16s %-5s %dx%d (w x h)  %5d bytes  adobe=%s  orientation=%s" % (
            name + ".jpg", im.mode, im.width, im.height, os.path.getsize(out(name + ".jpg")),
            im.info.get("adobe_transform"), im.getexif().get(0x0112)))
    print("corrupt.jpg: libjpeg says: %s" % problem)


if __name__ == "__main__":
    main()

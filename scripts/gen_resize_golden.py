#!/usr/bin/env python3
"""gen_resize_golden.py: Pillow's bilinear resize answers for tests/test_transform.c.

detectron2 resizes training images with PIL: Image.fromarray(img).resize((new_w, new_h),
Image.BILINEAR). This script writes, into tests/golden/resize/:

  img_<name>.u8                   a small deterministic RGB test image, raw HWC bytes
  out_<name>_<nh>x<nw>.u8         Pillow's resize of it to nh x nw, raw HWC bytes
  cases.txt                       one line per case: "small <name> <h> <w> <nh> <nw>", and for
                                  big images that are not stored, "big <pattern> <h> <w>
                                  <nh> <nw> <fnv1a64 of the output, hex>", where the input
                                  is the formula pattern_pixel() below (the C test computes
                                  it the same way) and only a hash of the output is kept.

The cases cover upscaling by about 1.67 (LVIS 480 -> 800), downscaling by 0.6 and by 0.3
(the triangle filter's support widens), one axis only (Pillow then runs one pass), mixed
up/down, 1-pixel outputs and tiny inputs; and, by hash, the full-size LVIS cases 480x640 ->
800x1067 and 1200x300 -> 1333x333 (capped long side).

    /usr/bin/python3 scripts/gen_resize_golden.py [--out DIR]   (default tests/golden/resize)

Written with Pillow 9.4.0 (Debian 12's python3-pil) and numpy; the Pillow version is
checked, because the resampler's rounding is what the test pins down. Fixed seed: a rerun
gives byte-identical files. `make test` needs only the files.
"""
import argparse
import os
import sys

import numpy as np
import PIL
from PIL import Image

SEED = 20240611


def pattern_pixel(y, x, c):
    """Big-case input, computable in C with uint32 arithmetic: a smooth gradient in some
    32x32 tiles, hashed noise in the others (both matter for rounding and antialiasing)."""
    if ((x >> 5) + (y >> 5)) & 1:
        return (x * 3 + y * 2 + c * 50) & 255
    v = (x * 73856093 ^ y * 19349663 ^ c * 83492791) & 0xFFFFFFFF
    v ^= v >> 13
    v = (v * 0x5BD1E995) & 0xFFFFFFFF
    v ^= v >> 15
    return v & 255


def pattern_image(h, w):
    y, x, c = np.meshgrid(np.arange(h, dtype=np.uint64), np.arange(w, dtype=np.uint64),
                          np.arange(3, dtype=np.uint64), indexing='ij')
    m = np.uint64(0xFFFFFFFF)
    v = ((x * np.uint64(73856093)) ^ (y * np.uint64(19349663)) ^ (c * np.uint64(83492791))) & m
    v ^= v >> np.uint64(13)
    v = (v * np.uint64(0x5BD1E995)) & m
    v ^= v >> np.uint64(15)
    noise = v & np.uint64(255)
    smooth = (x * np.uint64(3) + y * np.uint64(2) + c * np.uint64(50)) & np.uint64(255)
    tile = ((x >> np.uint64(5)) + (y >> np.uint64(5))) & np.uint64(1)
    img = np.where(tile == 1, smooth, noise).astype(np.uint8)
    assert img[5, 40, 1] == pattern_pixel(5, 40, 1) and img[37, 3, 2] == pattern_pixel(37, 3, 2)
    return img


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for byte in b:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def small_images(rng):
    imgs = {}
    imgs['noise23x37'] = rng.integers(0, 256, (23, 37, 3), dtype=np.uint8)
    # smooth gradients with hard 0/255 blocks (clipping, ringing-free triangle filter)
    y, x = np.mgrid[0:40, 0:30]
    g = np.stack([x * 8, y * 6, (x + y) * 4], axis=-1).clip(0, 255).astype(np.uint8)
    g[5:15, 4:12] = 255
    g[20:30, 15:25] = 0
    g[::7, :, 1] = 255 - g[::7, :, 1]
    imgs['edges40x30'] = g
    imgs['mixed48x64'] = pattern_image(48, 64)
    imgs['noise17x53'] = rng.integers(0, 256, (17, 53, 3), dtype=np.uint8)
    imgs['tiny3x2'] = rng.integers(0, 256, (3, 2, 3), dtype=np.uint8)
    imgs['tiny2x3'] = rng.integers(0, 256, (2, 3, 3), dtype=np.uint8)
    return imgs


SMALL_CASES = [
    ('noise23x37', 38, 62),   # x1.65 both axes
    ('noise23x37', 14, 22),   # x0.6
    ('noise23x37', 7, 11),    # x0.3
    ('noise23x37', 23, 50),   # width only (horizontal pass only)
    ('noise23x37', 31, 37),   # height only (vertical pass only)
    ('noise23x37', 1, 1),
    ('edges40x30', 67, 50),   # x1.67
    ('edges40x30', 24, 18),   # x0.6
    ('edges40x30', 12, 9),    # x0.3
    ('edges40x30', 40, 18),   # width only, down
    ('edges40x30', 25, 51),   # down in y, up in x
    ('mixed48x64', 80, 107),  # resize_shape(48, 64, 80, 133): LVIS 480x640 -> 800x1067 / 10
    ('mixed48x64', 29, 38),
    ('noise17x53', 5, 16),    # x0.3
    ('noise17x53', 17, 88),
    ('noise17x53', 40, 7),    # up in y, x0.13 in x (support ~7.6)
    ('tiny3x2', 5, 4),
    ('tiny2x3', 1, 7),
]

BIG_CASES = [
    ('pattern', 480, 640, 800, 1067),   # LVIS: short side 800
    ('pattern', 480, 640, 640, 853),    # short side 640
    ('pattern', 1200, 300, 1333, 333),  # long side capped at 1333
    ('pattern', 640, 480, 300, 225),    # a downscale by 0.47
]


def resize(img, nh, nw):
    return np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=os.path.join(os.path.dirname(__file__), '..', 'tests', 'golden', 'resize'))
    args = ap.parse_args()
    if PIL.__version__ != '9.4.0':
        sys.exit(f'gen_resize_golden.py: needs Pillow 9.4.0 (detectron2 reference setup), found {PIL.__version__}')
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    imgs = small_images(rng)
    lines = []
    for name, img in imgs.items():
        with open(os.path.join(args.out, f'img_{name}.u8'), 'wb') as f:
            f.write(img.tobytes())
    for name, nh, nw in SMALL_CASES:
        img = imgs[name]
        out = resize(img, nh, nw)
        assert out.shape == (nh, nw, 3)
        with open(os.path.join(args.out, f'out_{name}_{nh}x{nw}.u8'), 'wb') as f:
            f.write(out.tobytes())
        lines.append(f'small {name} {img.shape[0]} {img.shape[1]} {nh} {nw}')
    for pat, h, w, nh, nw in BIG_CASES:
        out = resize(pattern_image(h, w), nh, nw)
        assert out.shape == (nh, nw, 3)
        lines.append(f'big {pat} {h} {w} {nh} {nw} {fnv1a64(out.tobytes()):016x}')
    with open(os.path.join(args.out, 'cases.txt'), 'w') as f:
        f.write(f'# Pillow {PIL.__version__} Image.resize(BILINEAR), scripts/gen_resize_golden.py\n')
        f.write('\n'.join(lines) + '\n')
    print(f'wrote {len(SMALL_CASES)} small and {len(BIG_CASES)} big cases to {args.out}')


if __name__ == '__main__':
    main()

#!/usr/bin/python3
"""gen_golden_roi_align.py: torchvision's roi_align answers for tests/test_roi_align.c.

Writes tests/golden/roi_align.safetensors with torchvision.ops.roi_align (torchvision
0.14 / PyTorch 1.13, Debian's python3-torchvision: run it with /usr/bin/python3) in float64
on the CPU, autograd for the feature gradients with a random upstream gradient dy. Features
are converted NCHW -> NHWC before saving; rois are [R, 5] = (batch, x0, y0, x1, y1) in image
pixels. Fixed seed: a rerun gives byte-identical files.

    /usr/bin/python3 scripts/gen_golden_roi_align.py [--out DIR]   (default tests/golden)

Names per single-level case i:
  roi<i>.{x, rois, args=[ph, pw, sampling_ratio, aligned], scale=[spatial_scale], y, dy, dx}
Per multi-level case i (P2..P5, strides 4..32; levels by detectron2's rule
k = floor(4 + log2(sqrt(w h) / 224 + 1e-8)) clamped to [2, 5], computed here in float64;
each level pooled with torchvision and put back in the input RoI order):
  fpn<i>.{p2..p5, rois, args=[ph, pw, sampling_ratio, aligned], levels, y, dy, dp2..dp5}
The boxes include ones partly outside the map, sub-pixel ones, elongated ones (400x20 px),
and RoIs of several images; no box sits at a level boundary.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torchvision
from torchvision.ops import roi_align

SEED = 20261125
torch.set_default_dtype(torch.float64)


def write_safetensors(path, tensors, metadata):
    """F64 entries first (offsets stay multiples of 8), header padded to 8 bytes."""
    kinds = {np.dtype('float64'): ('F64', '<f8'), np.dtype('int32'): ('I32', '<i4')}
    order = sorted(tensors, key=lambda n: (kinds[tensors[n].dtype][0] != 'F64', n))
    header = {'__metadata__': metadata}
    blobs, offset = [], 0
    for name in order:
        a = tensors[name]
        tag, le = kinds[a.dtype]
        b = np.ascontiguousarray(a).astype(le).tobytes()
        header[name] = {'dtype': tag, 'shape': list(a.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


OUT = {}


def f64(name, v):
    assert name not in OUT, name
    OUT[name] = v.detach().to(torch.float64).contiguous().numpy().copy()


def i32(name, v):
    assert name not in OUT, name
    OUT[name] = np.ascontiguousarray(np.asarray(v, dtype=np.int32))


def nhwc(t):
    return t.permute(0, 2, 3, 1)


def rois_of(boxes):
    """boxes: list of (batch, x0, y0, x1, y1)."""
    return torch.tensor(boxes, dtype=torch.float64)


def single(g, i, N, H, W, C, scale, boxes, ph, pw, sr, aligned):
    x = torch.randn(N, C, H, W, generator=g).requires_grad_(True)
    rois = rois_of(boxes)
    y = roi_align(x, rois, (ph, pw), spatial_scale=scale, sampling_ratio=sr, aligned=aligned)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    p = 'roi%d.' % i
    f64(p + 'x', nhwc(x))
    f64(p + 'rois', rois)
    i32(p + 'args', [ph, pw, sr, int(aligned)])
    f64(p + 'scale', torch.tensor([scale]))
    f64(p + 'y', nhwc(y))
    f64(p + 'dy', nhwc(dy))
    f64(p + 'dx', nhwc(x.grad))


def fpn_level(b):
    k = math.floor(4 + math.log2(math.sqrt((b[3] - b[1]) * (b[4] - b[2])) / 224 + 1e-8))
    return min(max(k, 2), 5)


def fpn(g, i, feats, boxes, ph, pw, sr, aligned):
    """feats: list of 4 NCHW leaf tensors (shared between cases; gradients reset here)."""
    for f in feats:
        f.grad = None
    rois = rois_of(boxes)
    levels = [fpn_level(b) for b in boxes]
    C = feats[0].shape[1]
    y = torch.zeros(len(boxes), C, ph, pw)
    for k in range(2, 6):
        idx = [r for r, lv in enumerate(levels) if lv == k]
        if not idx:
            continue
        part = roi_align(feats[k - 2], rois[idx], (ph, pw), spatial_scale=1.0 / 2 ** k, sampling_ratio=sr,
                         aligned=aligned)
        y = y.index_put((torch.tensor(idx),), part)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    p = 'fpn%d.' % i
    f64(p + 'rois', rois)
    i32(p + 'args', [ph, pw, sr, int(aligned)])
    i32(p + 'levels', levels)
    f64(p + 'y', nhwc(y))
    f64(p + 'dy', nhwc(dy))
    for k in range(2, 6):
        f = feats[k - 2]
        f64(p + 'dp%d' % k, nhwc(f.grad if f.grad is not None else torch.zeros_like(f)))
        if i == 0:
            f64('fpn.p%d' % k, nhwc(f))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=os.path.join(here, '..', 'tests', 'golden'))
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(SEED)

    # single level, scale 1/2 on a 2-image 8x11 map (image 16x22 px): inside, partly
    # outside (negative and beyond the far edge), sub-pixel, elongated, one box wholly outside
    boxes = [(0, 2.3, 3.1, 17.9, 15.2), (1, -6.0, -4.5, 9.7, 8.8), (1, 14.2, 11.0, 33.5, 27.9),
             (0, 5.05, 7.4, 5.6, 7.9), (1, 0.4, 8.2, 25.6, 10.1), (0, 22.0, 17.5, 29.0, 23.0),
             (1, -3.0, 1.0, 1.5, 2.2), (0, 10.0, 10.0, 10.0, 10.0)]
    cases = [(7, 7, 0, True), (7, 7, 0, False), (7, 7, 1, True), (7, 7, 2, False),
             (7, 7, 4, True), (14, 14, 0, True), (14, 14, 2, False), (5, 3, 0, True)]
    for i, (ph, pw, sr, al) in enumerate(cases):
        bx = boxes if ph == 7 else boxes[1:3] if ph == 14 else boxes[3:7]
        single(g, i, 2, 8, 11, 2, 0.5, bx if sr == 0 else bx[:5], ph, pw, sr, al)
    # elongated 400x20 px at stride 8 (50x2.5 feature px: 8 samples per bin in x), one image
    n = len(cases)
    single(g, n, 1, 6, 54, 2, 1.0 / 8, [(0, 16.0, 10.0, 416.0, 30.0), (0, 30.0, -5.0, 430.0, 15.0)], 7, 7, 0, True)
    single(g, n + 1, 1, 6, 54, 2, 1.0 / 8, [(0, 16.0, 10.0, 416.0, 30.0)], 7, 7, 0, False)

    # FPN: image 416x32 px, 2 images, C 2; P2 8x104 ... P5 1x13
    feats = [torch.randn(2, 2, 32 // s, 416 // s, generator=g).requires_grad_(True) for s in (4, 8, 16, 32)]
    fb = [(0, 8.0, 6.0, 408.0, 26.0),      # 400x20, sqrt 89: P2
          (1, 30.5, 4.2, 60.1, 29.7),      # small: P2
          (0, 100.0, -40.0, 250.0, 60.0),  # 150x100, sqrt 122: P3, partly outside
          (1, 200.0, -80.0, 380.0, 90.0),  # 180x170, sqrt 175: P3
          (0, 50.0, -120.0, 350.0, 130.0), # 300x250, sqrt 274: P4
          (1, -60.0, -150.0, 300.0, 200.0),# 360x350, sqrt 355: P4
          (0, -50.0, -200.0, 450.0, 300.0),# 500x500: P5
          (1, 10.0, -300.0, 410.0, 400.0), # 400x700, sqrt 529: P5
          (1, 3.3, 3.1, 3.9, 3.4),         # sub-pixel: P2
          (0, 380.0, 20.0, 430.0, 45.0)]   # beyond the right edge: P2
    for b in fb:
        v = 4 + math.log2(math.sqrt((b[3] - b[1]) * (b[4] - b[2])) / 224 + 1e-8)
        assert v < 1.9 or abs(v - round(v)) > 0.05, b  # far from a level boundary (f32 agrees)
    fpn(g, 0, feats, fb, 7, 7, 0, True)
    fpn(g, 1, feats, fb[1::3], 14, 14, 0, False)

    meta = {'generator': 'scripts/gen_golden_roi_align.py', 'torch': torch.__version__,
            'torchvision': torchvision.__version__, 'python': '%d.%d.%d' % sys.version_info[:3],
            'seed': str(SEED), 'dtype': 'float64 autograd on the CPU; layout NHWC'}
    path = os.path.join(args.out, 'roi_align.safetensors')
    write_safetensors(path, OUT, meta)
    print('%s: %d tensors, %d bytes' % (os.path.normpath(path), len(OUT), os.path.getsize(path)))


if __name__ == '__main__':
    main()

#!/usr/bin/python3
"""gen_golden_paste.py: detectron2's mask paste answers for tests/test_postprocess.c.

Writes tests/golden/paste.safetensors with the formulas of detectron2's
layers/mask_ops.py (_do_paste_mask with skip_empty=True, the CPU path, and the 0.5
threshold of paste_masks_in_image), restated here so detectron2 need not be installed:

    window  x0_int = max(floor(x0) - 1, 0), x1_int = min(ceil(x1) + 1, W) (likewise y)
    img_x = (arange(x0_int, x1_int, f32) + 0.5 - x0) / (x1 - x0) * 2 - 1   (f32 torch ops)
    soft  = F.grid_sample(prob[None, None], grid, align_corners=False)     (bilinear, zeros)
    mask  = soft >= 0.5, zero outside the window

PyTorch 1.13 (Debian's python3-torch: run it with /usr/bin/python3), CPU, float32, with
ATEN_CPU_CAPABILITY=default (set below, before torch loads): the kernel's plain scalar build
does each multiply and add separately rounded, the IEEE f32 formula the C code follows. The
AVX2/AVX-512 builds of the same kernel fuse multiply-adds, so their values differ in the
last bits (about 1 in 10 samples here) while the 0/1 masks of these cases agree. The
probability maps mix uniform values, sigmoid(4 * normal) and maps quantized to k/8 (which
put many samples exactly on the 0.5 threshold, so any rounding difference shows). Fixed
seed: a rerun gives byte-identical files.

    /usr/bin/python3 scripts/gen_golden_paste.py [--out DIR]   (default tests/golden)

Names per case i: p<i> f32 [28, 28], box<i> f32 [4] (XYXY image pixels), hw<i> i32 [2]
(H, W), soft<i> f32 [H, W] (grid_sample's values in the window, 0 elsewhere), mask<i> u8
[H, W] (0/1).
"""
import argparse
import json
import os
import struct
import sys

os.environ['ATEN_CPU_CAPABILITY'] = 'default'  # before torch loads (see above)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SEED = 20260321
M = 28


def write_safetensors(path, tensors, metadata):
    """Entries sorted by dtype size then name (offsets stay aligned), header padded to 8."""
    kinds = {np.dtype('float32'): ('F32', '<f4'), np.dtype('int32'): ('I32', '<i4'),
             np.dtype('uint8'): ('U8', 'u1')}
    order = sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n))
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


def paste(prob, box, H, W):
    """detectron2 _do_paste_mask (skip_empty=True) for one mask, embedded in an H x W canvas."""
    masks = prob[None, None]
    boxes = box[None]
    x0_int, y0_int = torch.clamp(boxes.min(dim=0).values.floor()[:2] - 1, min=0).to(dtype=torch.int32)
    x1_int = torch.clamp(boxes[:, 2].max().ceil() + 1, max=W).to(dtype=torch.int32)
    y1_int = torch.clamp(boxes[:, 3].max().ceil() + 1, max=H).to(dtype=torch.int32)
    x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)
    img_y = torch.arange(y0_int, y1_int, dtype=torch.float32) + 0.5
    img_x = torch.arange(x0_int, x1_int, dtype=torch.float32) + 0.5
    img_y = (img_y - y0) / (y1 - y0) * 2 - 1
    img_x = (img_x - x0) / (x1 - x0) * 2 - 1
    gx = img_x[:, None, :].expand(1, img_y.size(1), img_x.size(1))
    gy = img_y[:, :, None].expand(1, img_y.size(1), img_x.size(1))
    grid = torch.stack([gx, gy], dim=3)
    out = F.grid_sample(masks, grid.to(masks.dtype), align_corners=False)[0, 0]
    soft = torch.zeros(H, W, dtype=torch.float32)
    soft[int(y0_int):int(y1_int), int(x0_int):int(x1_int)] = out
    return soft


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='tests/golden')
    args = ap.parse_args()
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)

    def uniform():
        return torch.rand(M, M, generator=g)

    def sigm():
        return torch.sigmoid(4 * torch.randn(M, M, generator=g))

    def quant():
        return torch.randint(0, 9, (M, M), generator=g).float() / 8

    # (H, W, box, map): inside, partly outside (each side), larger than the image, tiny
    # (< 1 px, 0.01 px), exactly on pixel edges (28 px: one pixel per cell; 56 px; 14 px)
    cases = [
        (37, 45, (5.3, 7.1, 30.7, 33.9), uniform),
        (30, 40, (-10.5, -3.2, 20.1, 25.7), sigm),
        (32, 48, (25.2, 18.9, 60.3, 41.0), quant),
        (40, 30, (-20.0, -20.0, 80.0, 70.0), sigm),
        (24, 24, (10.3, 12.6, 10.9, 13.1), uniform),
        (24, 24, (7.25, 3.5, 7.26, 20.75), quant),
        (40, 40, (4.0, 6.0, 32.0, 34.0), quant),
        (40, 40, (4.0, 6.0, 32.0, 34.0), uniform),
        (60, 60, (2.0, 3.0, 58.0, 59.0), quant),
        (20, 24, (3.0, 2.0, 17.0, 16.0), quant),
        (33, 35, (1.7, 0.3, 33.1, 29.9), quant),
        (33, 35, (0.6, 2.45, 12.35, 31.8), sigm),
    ]
    out = {}
    flips = 0
    for i, (H, W, box, mk) in enumerate(cases):
        prob = mk()
        b = torch.tensor(box, dtype=torch.float32)
        soft = paste(prob, b, H, W)
        out['p%d' % i] = prob.numpy().astype(np.float32)
        out['box%d' % i] = b.numpy()
        out['hw%d' % i] = np.array([H, W], dtype=np.int32)
        out['soft%d' % i] = soft.numpy()
        out['mask%d' % i] = (soft >= 0.5).numpy().astype(np.uint8)
        flips += int(((soft == 0.5)).sum())
    meta = {'generator': 'scripts/gen_golden_paste.py', 'torch': torch.__version__,
            'python': '%d.%d.%d' % sys.version_info[:3], 'seed': str(SEED),
            'cpu_capability': os.environ['ATEN_CPU_CAPABILITY'],
            'what': 'detectron2 _do_paste_mask (CPU, skip_empty) + threshold >= 0.5, float32'}
    path = os.path.join(args.out, 'paste.safetensors')
    write_safetensors(path, out, meta)
    print('%s: %d cases, %d samples exactly 0.5, %d bytes' % (os.path.normpath(path), len(cases), flips,
                                                              os.path.getsize(path)))


if __name__ == '__main__':
    main()

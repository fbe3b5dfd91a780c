#!/usr/bin/env python3
"""gen_golden_boxes.py: torchvision's answers for the box ops, as one small safetensors file.

Writes tests/golden/det_boxes.safetensors, read by tests/test_boxes.c. Fixed seed: a
rerun with the same PyTorch/torchvision gives a byte-identical file. Written with Debian's
python3-torch 1.13 and python3-torchvision 0.14 (CPU kernels):

    /usr/bin/python3 scripts/gen_golden_boxes.py [--out DIR]     (default DIR: tests/golden)

`make test` never needs Python: the file is committed and the C test only reads it.

Everything is float32 (F32) or int32 (I32; torchvision's int64 indices converted). Names:
  iou.{a,b,iou}                     torchvision.ops.box_iou(a, b)
  nms<i>.{boxes,scores,thr,keep}    torchvision.ops.nms; thr is I32 [1] in thousandths:
                                    the C side uses thr / 1000.0, the same double as
                                    Python's literal (both correctly rounded)
  bnms<i>.{boxes,scores,keys,thr,keep}  torchvision.ops.batched_nms
  code<i>.{src,tgt,weights,deltas}  d2 Box2BoxTransform.get_deltas formula in torch f32
  dec<i>.{src,deltas,weights,out}   d2 apply_deltas formula in torch f32 (clamp ln(1000/16)),
                                    deltas [R,4K]
  clip.{boxes,hw,out}               clamp x to [0, w], y to [0, h]
  nonempty.{boxes,thr,keep}         keep as I32 (0/1)
  topk.{scores,off,k,idx}           per segment: torch.sort(stable=True, descending=True),
                                    first min(k, len) indices (global), then -1
NMS inputs have many ties and overlaps: scores rounded to 2 decimals, boxes drawn around a
few cluster centres, exact duplicates included.
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch
import torchvision
from torchvision.ops import batched_nms, box_iou, nms

SEED = 20261124
SCALE_CLAMP = math.log(1000.0 / 16)


def write_safetensors(path, tensors, metadata):
    """tensors: name -> numpy float32 or int32 array (4-byte dtypes only, so packing them
    back to back keeps every offset aligned); header padded with spaces to 8 bytes."""
    kinds = {np.dtype('float32'): ('F32', '<f4'), np.dtype('int32'): ('I32', '<i4')}
    header = {'__metadata__': metadata}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = tensors[name]
        tag, le = kinds[a.dtype]
        b = np.ascontiguousarray(a).astype(le).tobytes()
        header[name] = {'dtype': tag, 'shape': list(a.shape) if a.ndim else [1],
                        'data_offsets': [offset, offset + len(b)]}
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


def rand_boxes(g, n, lo=0.0, hi=600.0, smin=2.0, smax=200.0):
    xy = torch.rand(n, 2, generator=g) * (hi - lo) + lo
    wh = torch.rand(n, 2, generator=g) * (smax - smin) + smin
    return torch.cat([xy, xy + wh], 1).float()


def cluster_boxes(g, n, centres=12, jitter=12.0):
    """Boxes around a few centres: heavy overlap, so NMS has real work; some exact copies."""
    c = rand_boxes(g, centres, 0, 500, 20, 150)
    pick = torch.randint(0, centres, (n,), generator=g)
    b = c[pick] + (torch.rand(n, 4, generator=g) - 0.5) * 2 * jitter
    b[:, 2:] = torch.maximum(b[:, 2:], b[:, :2] + 1.0)
    b = torch.round(b * 4) / 4  # quarter pixels: many equal coordinates and IoUs
    dup = torch.randint(0, n, (n // 20,), generator=g)
    b[torch.randint(0, n, (n // 20,), generator=g)] = b[dup]
    return b.float()


def scores_2dp(g, n):
    return torch.round(torch.rand(n, generator=g) * 100).float() / 100


def i32(t):
    return t.to(torch.int64).numpy().astype(np.int32)


def f32(t):
    return t.to(torch.float32).numpy()


def thr_pair(thr):
    milli = round(thr * 1000)
    assert milli / 1000.0 == thr, thr
    return np.array([milli], dtype=np.int32)


def encode(src, tgt, w):
    wx, wy, ww, wh = w
    sw = src[:, 2] - src[:, 0]
    sh = src[:, 3] - src[:, 1]
    sx = src[:, 0] + 0.5 * sw
    sy = src[:, 1] + 0.5 * sh
    tw = tgt[:, 2] - tgt[:, 0]
    th = tgt[:, 3] - tgt[:, 1]
    tx = tgt[:, 0] + 0.5 * tw
    ty = tgt[:, 1] + 0.5 * th
    dx = wx * (tx - sx) / sw
    dy = wy * (ty - sy) / sh
    dw = ww * torch.log(tw / sw)
    dh = wh * torch.log(th / sh)
    return torch.stack((dx, dy, dw, dh), dim=1)


def decode(src, deltas, w):
    wx, wy, ww, wh = w
    widths = src[:, 2] - src[:, 0]
    heights = src[:, 3] - src[:, 1]
    cx = src[:, 0] + 0.5 * widths
    cy = src[:, 1] + 0.5 * heights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=SCALE_CLAMP)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=SCALE_CLAMP)
    px = dx * widths[:, None] + cx[:, None]
    py = dy * heights[:, None] + cy[:, None]
    pw = torch.exp(dw) * widths[:, None]
    ph = torch.exp(dh) * heights[:, None]
    out = torch.stack((px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw, py + 0.5 * ph), dim=2)
    return out.reshape(deltas.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=os.path.join(os.path.dirname(__file__), '..', 'tests', 'golden'))
    args = ap.parse_args()
    g = torch.Generator().manual_seed(SEED)
    T = {}

    # IoU: random boxes plus hand-made edge cases (touching, identical, nested, disjoint)
    a = rand_boxes(g, 37)
    b = rand_boxes(g, 53)
    a[0] = torch.tensor([0., 0., 10., 10.])
    b[0] = torch.tensor([10., 0., 20., 10.])   # touches a[0]: IoU 0
    b[1] = torch.tensor([0., 0., 10., 10.])    # equals a[0]: IoU 1
    b[2] = torch.tensor([2., 2., 5., 5.])      # inside a[0]
    T['iou.a'], T['iou.b'], T['iou.iou'] = f32(a), f32(b), f32(box_iou(a, b))

    # NMS: clustered boxes, 2-decimal scores (many ties), several thresholds
    for i, (n, thr) in enumerate([(2000, 0.5), (1200, 0.7), (500, 0.3), (64, 0.5), (1, 0.5)]):
        boxes = cluster_boxes(g, n)
        scores = scores_2dp(g, n)
        keep = nms(boxes, scores, thr)
        T[f'nms{i}.boxes'], T[f'nms{i}.scores'] = f32(boxes), f32(scores)
        T[f'nms{i}.thr'], T[f'nms{i}.keep'] = thr_pair(thr), i32(keep)

    # batched NMS: n <= 1000 takes torchvision's coordinate-offset path, n > 1000 the
    # per-key loop; keys with gaps and negatives are not used by torchvision (int64 ids)
    for i, (n, nk, thr) in enumerate([(800, 5, 0.7), (1500, 40, 0.5), (300, 1, 0.5)]):
        boxes = cluster_boxes(g, n)
        scores = scores_2dp(g, n)
        keys = torch.randint(0, nk, (n,), generator=g)
        keep = batched_nms(boxes, scores, keys, thr)
        T[f'bnms{i}.boxes'], T[f'bnms{i}.scores'] = f32(boxes), f32(scores)
        T[f'bnms{i}.keys'], T[f'bnms{i}.thr'], T[f'bnms{i}.keep'] = i32(keys), thr_pair(thr), i32(keep)

    # box coding with the RPN and box-head weights
    for i, w in enumerate([(1., 1., 1., 1.), (10., 10., 5., 5.)]):
        src = rand_boxes(g, 50)
        tgt = rand_boxes(g, 50)
        T[f'code{i}.src'], T[f'code{i}.tgt'] = f32(src), f32(tgt)
        T[f'code{i}.weights'], T[f'code{i}.deltas'] = np.array(w, np.float32), f32(encode(src, tgt, w))
        K = 3
        deltas = (torch.rand(50, 4 * K, generator=g) - 0.5) * 2 * torch.tensor([2., 2., 6., 6.] * K) * \
            torch.tensor(w * K)
        deltas[0, 2] = 100.0 * w[2]  # far beyond the clamp
        deltas[1, 3] = 5.0 * w[3]
        T[f'dec{i}.src'], T[f'dec{i}.deltas'] = f32(src), f32(deltas)
        T[f'dec{i}.weights'], T[f'dec{i}.out'] = np.array(w, np.float32), f32(decode(src, deltas, w))

    boxes = rand_boxes(g, 40, -100, 700, 0, 300)
    h, w = 480.0, 640.0
    out = boxes.clone()
    out[:, 0::2] = out[:, 0::2].clamp(min=0, max=w)
    out[:, 1::2] = out[:, 1::2].clamp(min=0, max=h)
    T['clip.boxes'], T['clip.hw'], T['clip.out'] = f32(boxes), np.array([h, w], np.float32), f32(out)
    ne = out.clone()
    ne[:5, 2] = ne[:5, 0]  # zero width
    ne[5:8, 3] = ne[5:8, 1] + 0.5
    wd, ht = ne[:, 2] - ne[:, 0], ne[:, 3] - ne[:, 1]
    thr = 0.5
    T['nonempty.boxes'], T['nonempty.thr'] = f32(ne), np.array([thr], np.float32)
    T['nonempty.keep'] = i32((wd > thr) & (ht > thr))

    # top k per segment: scores with one decimal (ties), segments of several lengths
    lens = [700, 3, 0, 250, 1000]
    k = 100
    scores = torch.round(torch.rand(sum(lens), generator=g) * 10) / 10
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    idx = np.full((len(lens), k), -1, np.int32)
    for s in range(len(lens)):
        seg = scores[off[s]:off[s + 1]]
        order = torch.sort(seg, stable=True, descending=True)[1][:k]
        idx[s, :len(order)] = i32(order) + off[s]
    T['topk.scores'], T['topk.off'], T['topk.k'], T['topk.idx'] = f32(scores), off, np.array([k], np.int32), idx

    meta = {'torch': torch.__version__, 'torchvision': torchvision.__version__, 'seed': str(SEED),
            'writer': 'scripts/gen_golden_boxes.py'}
    path = os.path.join(args.out, 'det_boxes.safetensors')
    write_safetensors(path, T, meta)
    print(f'{path}: {len(T)} tensors, {os.path.getsize(path)} bytes')


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""gen_golden_ops.py: PyTorch answers for the CPU ops, as small safetensors files.

Writes tests/golden/ops_{conv,norm,pool,linear,loss}.safetensors, read by
tests/test_ops_golden.c. For several cases per op each file holds the inputs, a random
upstream gradient dy, and PyTorch's outputs and input gradients, all computed in float64
with autograd (labels and integer arguments are I32). Fixed seed: a rerun with the same
PyTorch gives byte-identical files.

    python3 scripts/gen_golden_ops.py [--out DIR]     (default DIR: tests/golden)

Needs PyTorch and numpy (Debian: apt-get install python3-torch). `make test` never needs
them: the generated files are committed and the C test only reads them.

Layouts are converted to the project's (DESIGN §3) before saving: activations NHWC (torch
is NCHW), conv weights KRSC = [K, R, S, C] (torch OIHW, permuted (0, 2, 3, 1)), the 2x2
transposed-conv weight w[k, i, j, c] = torch W[c, k, i, j]. Names per case i:
  conv<i>.{x,w,b,args=[stride,pad],y,dy,dx,dw,db}   (b, db only when the case has a bias)
  deconv<i>.{x,w,b,y,dy,dx,dw,db}
  gn<i>.{x,gamma,beta,args=[groups],y,dy,dx,dgamma,dbeta}      eps 1e-5
  pool<i>.{x,args=[k,stride,pad],y,dy,dx}      up<i>.{x,y,dy,dx}
  linear<i>.{x,w,b,y,dy,dx,dw,db}              nlin<i>.{x,w,b,args=[tau,eps],y,dy,dx,dw,db}
  ce<i>.{x,labels,w,args=[normaliser,dloss],loss,dx}
  bce<i>.{x,t,w,args=[normaliser,dloss],loss,dx}
  sl1<i>.{x,t,w,args=[normaliser,dloss,beta],loss,dx}
Each loss is sum_i w_i * l_i / normaliser, and its gradient is taken with the upstream
scalar dloss (not 1), so that a missing factor shows.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20261124
torch.set_default_dtype(torch.float64)


# ---- safetensors writer (by hand: 8-byte length, JSON header, raw little-endian data) ----

def write_safetensors(path, tensors, metadata):
    """tensors: name -> numpy array (float64 or int32). F64 entries come first so that every
    offset stays a multiple of its element size; the header is padded with spaces to a
    multiple of 8 bytes (as the official writer does), so no gaps are needed."""
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


# ---- helpers ----

class Golden:
    """Collects the tensors of one file."""

    def __init__(self):
        self.t = {}

    def f64(self, name, v):
        assert name not in self.t, name
        self.t[name] = v.detach().to(torch.float64).contiguous().numpy().copy()

    def i32(self, name, v):
        assert name not in self.t, name
        self.t[name] = np.ascontiguousarray(np.asarray(v, dtype=np.int32))


def nhwc(t):
    return t.permute(0, 2, 3, 1)


def nchw(t):
    return t.permute(0, 3, 1, 2)


def randn(g, *shape, scale=1.0, shift=0.0):
    return torch.randn(*shape, generator=g) * scale + shift


def leaf(t):
    return t.detach().clone().requires_grad_(True)


# ---- families ----

def gen_conv(g, out):
    # (N, H, W, C, K, kernel, stride, pad, bias)
    cases = [
        (2, 6, 5, 3, 4, 3, 1, 1, True),    # 3x3 s1 p1 with bias, two images
        (1, 8, 7, 4, 5, 3, 2, 1, True),    # 3x3 s2 p1
        (1, 7, 6, 6, 8, 1, 2, 0, False),   # 1x1 s2 p0 no bias (the ResNet shortcut)
        (1, 12, 11, 3, 4, 7, 2, 3, False), # 7x7 s2 p3 no bias, C=3 (the stem)
        (2, 4, 5, 8, 6, 1, 1, 0, True),    # 1x1 s1 p0 with bias (lateral / predictor)
        (1, 7, 6, 5, 3, 3, 1, 0, True),    # 3x3 s1 p0
        (1, 9, 11, 4, 4, 3, 2, 1, False),  # odd size, stride 2
        (1, 10, 8, 3, 2, 3, 2, 0, True),   # stride 2 that does not tile: last row/column unused
    ]
    for i, (n, h, w, c, k, r, s, p, bias) in enumerate(cases):
        x = leaf(randn(g, n, c, h, w))
        wt = leaf(randn(g, k, c, r, r, scale=1.0 / (c * r * r) ** 0.5))
        b = leaf(randn(g, k, scale=0.5)) if bias else None
        y = F.conv2d(x, wt, b, stride=s, padding=p)
        dy = randn(g, *y.shape)
        y.backward(dy)
        pre = 'conv%d.' % i
        out.f64(pre + 'x', nhwc(x))
        out.f64(pre + 'w', wt.permute(0, 2, 3, 1))
        out.i32(pre + 'args', [s, p])
        out.f64(pre + 'y', nhwc(y))
        out.f64(pre + 'dy', nhwc(dy))
        out.f64(pre + 'dx', nhwc(x.grad))
        out.f64(pre + 'dw', wt.grad.permute(0, 2, 3, 1))
        if bias:
            out.f64(pre + 'b', b)
            out.f64(pre + 'db', b.grad)


def gen_deconv(g, out):
    for i, (n, h, w, c, k) in enumerate([(1, 3, 4, 5, 3), (2, 2, 3, 8, 6)]):
        x = leaf(randn(g, n, c, h, w))
        wt = leaf(randn(g, c, k, 2, 2, scale=0.5))
        b = leaf(randn(g, k, scale=0.5))
        y = F.conv_transpose2d(x, wt, b, stride=2)
        dy = randn(g, *y.shape)
        y.backward(dy)
        pre = 'deconv%d.' % i
        out.f64(pre + 'x', nhwc(x))
        out.f64(pre + 'w', wt.permute(1, 2, 3, 0))  # [C,K,i,j] -> [K,i,j,C]
        out.f64(pre + 'b', b)
        out.f64(pre + 'y', nhwc(y))
        out.f64(pre + 'dy', nhwc(dy))
        out.f64(pre + 'dx', nhwc(x.grad))
        out.f64(pre + 'dw', wt.grad.permute(1, 2, 3, 0))
        out.f64(pre + 'db', b.grad)


def gen_group_norm(g, out):
    # (N, H, W, C, G)
    for i, (n, h, w, c, groups) in enumerate([(1, 5, 4, 8, 4), (1, 3, 3, 64, 32), (2, 4, 3, 6, 6),
                                              (1, 6, 5, 4, 1)]):
        # A non-zero mean and a scale far from 1, so that both statistics matter.
        x = leaf(randn(g, n, c, h, w, scale=2.0, shift=0.7))
        gamma = leaf(randn(g, c, scale=0.5, shift=1.0))
        beta = leaf(randn(g, c, scale=0.5))
        y = F.group_norm(x, groups, gamma, beta, eps=1e-5)
        dy = randn(g, *y.shape)
        y.backward(dy)
        pre = 'gn%d.' % i
        out.f64(pre + 'x', nhwc(x))
        out.f64(pre + 'gamma', gamma)
        out.f64(pre + 'beta', beta)
        out.i32(pre + 'args', [groups])
        out.f64(pre + 'y', nhwc(y))
        out.f64(pre + 'dy', nhwc(dy))
        out.f64(pre + 'dx', nhwc(x.grad))
        out.f64(pre + 'dgamma', gamma.grad)
        out.f64(pre + 'dbeta', beta.grad)


def gen_pool(g, out):
    # (N, H, W, C, k, stride, pad)
    for i, (n, h, w, c, k, s, p) in enumerate([(1, 9, 7, 3, 3, 2, 1), (2, 8, 6, 2, 3, 2, 1),
                                               (1, 7, 8, 4, 1, 2, 0)]):
        # Distinct values (a scaled random permutation): no ties, so the arg max is unique.
        numel = n * c * h * w
        perm = torch.randperm(numel, generator=g).to(torch.float64)
        x = leaf((perm / numel * 2.0 - 1.0).reshape(n, c, h, w))
        y = F.max_pool2d(x, k, stride=s, padding=p)
        dy = randn(g, *y.shape)
        y.backward(dy)
        pre = 'pool%d.' % i
        out.f64(pre + 'x', nhwc(x))
        out.i32(pre + 'args', [k, s, p])
        out.f64(pre + 'y', nhwc(y))
        out.f64(pre + 'dy', nhwc(dy))
        out.f64(pre + 'dx', nhwc(x.grad))
    for i, (n, h, w, c) in enumerate([(1, 3, 4, 5), (2, 2, 3, 3)]):
        x = leaf(randn(g, n, c, h, w))
        y = F.interpolate(x, scale_factor=2, mode='nearest')
        dy = randn(g, *y.shape)
        y.backward(dy)
        pre = 'up%d.' % i
        out.f64(pre + 'x', nhwc(x))
        out.f64(pre + 'y', nhwc(y))
        out.f64(pre + 'dy', nhwc(dy))
        out.f64(pre + 'dx', nhwc(x.grad))


def normed_linear(x, w, b, tau, eps):
    """mmdet's NormedLinear (power 1), from its formula: rows of x and of w divided by their
    L2 norm plus eps, scaled by tau; the bias is not scaled."""
    xn = x / (x.norm(dim=1, keepdim=True) + eps)
    wn = w / (w.norm(dim=1, keepdim=True) + eps)
    return F.linear(tau * xn, wn, b)


def gen_linear(g, out):
    for i, (r, cin, k) in enumerate([(5, 7, 4), (3, 16, 9)]):
        x = leaf(randn(g, r, cin))
        w = leaf(randn(g, k, cin, scale=0.3))
        b = leaf(randn(g, k, scale=0.5))
        y = F.linear(x, w, b)
        dy = randn(g, *y.shape)
        y.backward(dy)
        pre = 'linear%d.' % i
        for name, v in (('x', x), ('w', w), ('b', b), ('y', y), ('dy', dy), ('dx', x.grad),
                        ('dw', w.grad), ('db', b.grad)):
            out.f64(pre + name, v)
    tau, eps = 20.0, 1e-6
    for i, (r, cin, k, zero_row) in enumerate([(4, 6, 5, 2), (3, 10, 7, None)]):
        xv = randn(g, r, cin)
        if zero_row is not None:
            # At x = 0 PyTorch's norm has sub-gradient 0, so dx = tau/eps * dy @ w_normed.
            xv[zero_row] = 0.0
        x = leaf(xv)
        w = leaf(randn(g, k, cin, scale=0.3))
        b = leaf(randn(g, k, scale=0.5))
        y = normed_linear(x, w, b, tau, eps)
        dy = randn(g, *y.shape)
        y.backward(dy)
        pre = 'nlin%d.' % i
        for name, v in (('x', x), ('w', w), ('b', b), ('y', y), ('dy', dy), ('dx', x.grad),
                        ('dw', w.grad), ('db', b.grad)):
            out.f64(pre + name, v)
        out.f64(pre + 'args', torch.tensor([tau, eps]))


def loss_case(out, pre, x, elementwise, w, normaliser, dloss, extra_args=()):
    """loss = sum(w * l) / normaliser; dx from backward with upstream dloss."""
    loss = (w * elementwise).sum() / normaliser
    loss.backward(torch.tensor(dloss))
    out.f64(pre + 'x', x)
    out.f64(pre + 'w', w)
    out.f64(pre + 'args', torch.tensor([normaliser, dloss, *extra_args]))
    out.f64(pre + 'loss', loss.reshape(1))
    out.f64(pre + 'dx', x.grad)


def gen_ce(g, out):
    dloss = 0.7
    for i, (r, k, normaliser) in enumerate([(6, 5, 4.0), (4, 7, 4.0)]):
        xv = randn(g, r, k, scale=2.0)
        if i == 1:
            # Large logits: a naive exp overflows (e^50 is fine in f64, e^100 is not in f32).
            xv[0, 1], xv[1, 3], xv[2, 0], xv[2, 6], xv[3, 2] = 50.0, -50.0, 50.0, -50.0, 48.0
        labels = torch.randint(0, k, (r,), generator=g)
        labels[0], labels[-1] = 0, k - 1
        if i == 1:
            labels[2] = 6  # the row whose largest logit is not its label's: loss near 100
        w = torch.rand(r, generator=g) + 0.25
        w[1] = 0.0  # an ignored row still gets (zero) gradient
        x = leaf(xv)
        out.i32('ce%d.labels' % i, labels.numpy())
        loss_case(out, 'ce%d.' % i, x, F.cross_entropy(x, labels, reduction='none'), w, normaliser, dloss)


def gen_bce(g, out):
    dloss = 0.7
    for i, (shape, normaliser, scale) in enumerate([((5, 6), 5.0, 2.0), ((3, 4), 7.5, 15.0)]):
        x = leaf(randn(g, *shape, scale=scale))
        t = (torch.rand(*shape, generator=g) > 0.5).to(torch.float64)
        soft = torch.rand(*shape, generator=g) < 0.3
        t[soft] = torch.rand(int(soft.sum()), generator=g)  # some soft targets
        w = torch.rand(*shape, generator=g)
        w.view(-1)[::7] = 0.0
        out.f64('bce%d.t' % i, t)
        l = F.binary_cross_entropy_with_logits(x, t, reduction='none')
        loss_case(out, 'bce%d.' % i, x, l, w, normaliser, dloss)


def gen_smooth_l1(g, out):
    dloss = 0.7
    for i, (beta, shape, normaliser) in enumerate([(1.0 / 9.0, (6, 4), 6.0), (1.0, (5, 4), 3.0),
                                                   (0.0, (4, 4), 2.0)]):
        # d = x - t on both sides of beta and of 0, but at least 0.02 from either kink, so
        # that the f32 rounding of x and t cannot move a value across one.
        n = int(np.prod(shape))
        d = torch.empty(n)
        for j in range(n):
            while True:
                v = float(torch.randn(1, generator=g)) * max(beta, 0.3) * 2.0
                if abs(abs(v) - beta) > 0.02 and abs(v) > 0.02:
                    break
            d[j] = v
        t = randn(g, *shape)
        x = leaf(t + d.reshape(shape))
        w = torch.rand(*shape, generator=g) + 0.1
        w[0, 1] = 0.0
        l = F.smooth_l1_loss(x, t, beta=beta, reduction='none') if beta > 0 else F.l1_loss(x, t, reduction='none')
        # The formula the C op implements, as a check on the PyTorch call above.
        dd = (x - t).detach().abs()
        mine = torch.where(dd < beta, 0.5 * dd * dd / beta, dd - 0.5 * beta) if beta > 0 else dd
        assert torch.allclose(l.detach(), mine, rtol=1e-13, atol=1e-15)
        out.f64('sl1%d.t' % i, t)
        loss_case(out, 'sl1%d.' % i, x, l, w, normaliser, dloss, extra_args=(beta,))


FILES = [
    ('ops_conv', [gen_conv, gen_deconv]),
    ('ops_norm', [gen_group_norm]),
    ('ops_pool', [gen_pool]),
    ('ops_linear', [gen_linear]),
    ('ops_loss', [gen_ce, gen_bce, gen_smooth_l1]),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=os.path.join(here, '..', 'tests', 'golden'))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    for fi, (stem, gens) in enumerate(FILES):
        g = torch.Generator().manual_seed(SEED + fi)  # one stream per file: adding a file
        out = Golden()                                 # leaves the others unchanged
        for gen in gens:
            gen(g, out)
        meta = {
            'generator': 'scripts/gen_golden_ops.py',
            'torch': torch.__version__,
            'python': '%d.%d.%d' % sys.version_info[:3],
            'seed': str(SEED + fi),
            'dtype': 'float64 autograd on the CPU; layouts NHWC / KRSC',
        }
        path = os.path.join(args.out, stem + '.safetensors')
        write_safetensors(path, out.t, meta)
        print('%s: %d tensors, %d bytes' % (os.path.normpath(path), len(out.t), os.path.getsize(path)))


if __name__ == '__main__':
    main()

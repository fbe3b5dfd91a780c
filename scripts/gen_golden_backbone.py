#!/usr/bin/python3
"""gen_golden_backbone.py: torchvision's ResNet+FPN answers for tests/test_backbone_tv.c.

Writes tests/golden/backbone_tv.safetensors with
torchvision.models.detection.backbone_utils.resnet_fpn_backbone (torchvision 0.14 / PyTorch
1.13, Debian's python3-torchvision: run it with /usr/bin/python3) for ResNet-50 (bottleneck,
stride in the 3x3: our stride_in_1x1 = 0) and ResNet-18 (basic blocks), width 64, 256 FPN
channels, FrozenBatchNorm2d, LastLevelMaxPool (P6).

The weights are not stored (R50 is ~100 MB). Every tensor is filled from a formula that
tests/test_backbone_tv.c computes identically, element by element, in OUR names and
layouts (DESIGN §3, §8; conv weights KRSC [out, kh, kw, in], FrozenBN folded into
`.norm.weight` = scale and `.norm.bias` = shift):

    h     = fnv1a32(our tensor name, ASCII bytes)
    z     = splitmix64 finaliser of ((h << 32) | i) + 0x9E3779B97F4A7C15   (uint64 wraparound)
    u     = (z >> 40) * 2^-24                      in [0, 1), 24 bits: exact in f32 and f64
    conv weight   a * (2u - 1),  a = GAIN * sqrt(6 / fan_in), fan_in = kh*kw*in
                                 GAIN = 1/4 for the last conv of each residual branch
                                 (conv3 in R50, conv2 in R18), 1 elsewhere: see gain()
    norm.weight   0.5 + u        (FrozenBN scale)
    norm.bias     0.2 * (u - 0.5) (FrozenBN shift)
    conv bias     0.2 * (u - 0.5) (FPN convs)

i is the flat index in OUR layout. Every step is exact in double except sqrt, the divide
and the one or two multiplies (each correctly rounded, no additions after them, so FMA
contraction cannot change them); the double is rounded once to float32. torchvision gets
the same float32 values transposed KRSC -> OIHW, FrozenBN as weight = scale, bias = shift,
running_mean = 0, running_var = 1 and eps = 0, so its x * w * rsqrt(rv + eps) + (b - rm * .)
is exactly x * scale + shift. (BN folding itself belongs to the weight importer.)

The forward runs in float64 (the f32 weights and input are exact in f64), so the golden
is the reference answer up to one f32 rounding when stored; the script also reports how
far torch's own float32 forward is from it, as a yardstick for the C test's tolerance.

    /usr/bin/python3 scripts/gen_golden_backbone.py [--out DIR]   (default tests/golden)

Names:
  x                       [1, 64, 96, 3] f32 input (NHWC), uniform in [-1, 1) (fixed seed)
  r<depth>.p2 .. r<depth>.p6   f32 NHWC outputs (torchvision keys '0', '1', '2', '3', 'pool')
  r<depth>.samples        [len(SAMPLED), 16] f32: the formula's values of each tensor named
                          in SAMPLED at flat indices j * (numel // 16), j = 0..15, so a
                          formula mismatch shows up apart from a forward mismatch
Metadata:
  r<depth>.params         "name:d0xd1x..;" for every one of our tensors (shapes in our
                          layout), sorted by name: the C test checks its param_list against it
  r<depth>.f32_err        torch float32 forward vs this golden, worst |err| / max|P| per level
A rerun gives a byte-identical file.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

SEED = 20261126
H, W = 64, 96
DEPTHS = (50, 18)
SAMPLED = ('backbone.bottom_up.stem.conv1.weight', 'backbone.bottom_up.stem.conv1.norm.weight',
           'backbone.bottom_up.res5.1.conv2.weight', 'backbone.bottom_up.res5.1.conv2.norm.bias',
           'backbone.bottom_up.res5.0.shortcut.weight', 'backbone.fpn_output2.bias')


def write_safetensors(path, tensors, metadata):
    """F32 entries sorted by name, header padded to 8 bytes."""
    header = {'__metadata__': metadata}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = tensors[name]
        assert a.dtype == np.float32, name
        b = np.ascontiguousarray(a).astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [offset, offset + len(b)]}
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


# ---- the weight formula (tests/test_backbone_tv.c has the same in C) ----

def fnv1a32(s):
    h = 0x811C9DC5
    for c in s.encode('ascii'):
        h ^= c
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def uniform24(name, n):
    """u in [0, 1) for flat indices 0..n-1 of tensor name (float64, multiples of 2^-24)."""
    with np.errstate(over='ignore'):
        i = np.arange(n, dtype=np.uint64)
        z = (np.uint64(fnv1a32(name)) << np.uint64(32)) | i
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) * 2.0 ** -24


def gain(name, depth):
    """The last conv of a residual branch (conv3 of a bottleneck, conv2 of a basic block)
    gets gain 1/4 (exact), so the identity sums grow slowly: with gain 1 each of R50's 16
    blocks would roughly double the activation variance."""
    last = '.conv3.weight' if depth >= 50 else '.conv2.weight'
    return 0.25 if '.bottom_up.res' in name and name.endswith(last) else 1.0


def formula(name, shape, depth):
    """Our tensor `name` of our shape (KRSC for convs) in a ResNet-depth, as float32."""
    n = int(np.prod(shape))
    u = uniform24(name, n)
    if name.endswith('.norm.weight'):
        v = 0.5 + u
    elif name.endswith('.bias'):
        v = 0.2 * (u - 0.5)
    else:
        assert name.endswith('.weight') and len(shape) == 4, name
        fan_in = shape[1] * shape[2] * shape[3]
        a = gain(name, depth) * np.sqrt(6.0 / fan_in)
        v = a * (2.0 * u - 1.0)
    return v.astype(np.float32).reshape(shape)


# ---- torchvision names -> ours ----

def our_prefix(tv):
    """torchvision module path (without the parameter) -> (our prefix, is_norm)."""
    p = tv.split('.')
    if p[0] == 'fpn':
        kind = {'inner_blocks': 'lateral', 'layer_blocks': 'output'}[p[1]]
        assert p[3] == '0' and len(p) == 4, tv
        return 'backbone.fpn_%s%d' % (kind, int(p[2]) + 2), False
    assert p[0] == 'body', tv
    if p[1] == 'conv1':
        return 'backbone.bottom_up.stem.conv1', False
    if p[1] == 'bn1':
        return 'backbone.bottom_up.stem.conv1.norm', True
    assert p[1].startswith('layer') and len(p) == 4, tv
    blk = 'backbone.bottom_up.res%d.%s' % (int(p[1][5:]) + 1, p[2])
    if p[3].startswith('conv'):
        return '%s.%s' % (blk, p[3]), False
    if p[3].startswith('bn'):
        return '%s.conv%s.norm' % (blk, p[3][2:]), True
    raise AssertionError(tv)


def our_downsample(tv):
    """body.layerK.j.downsample.{0,1} -> shortcut / shortcut.norm."""
    p = tv.split('.')
    blk = 'backbone.bottom_up.res%d.%s' % (int(p[1][5:]) + 1, p[2])
    return ('%s.shortcut' % blk, False) if p[4] == '0' else ('%s.shortcut.norm' % blk, True)



def build(depth):
    m = resnet_fpn_backbone(backbone_name='resnet%d' % depth, weights=None, trainable_layers=5)
    m.eval()
    mods = dict(m.named_modules())
    sd = m.state_dict()
    filled = {}
    ours = {}
    for key, t in sd.items():
        mod, param = key.rsplit('.', 1)
        if '.downsample.' in key:
            prefix, is_norm = our_downsample(mod)
        else:
            prefix, is_norm = our_prefix(mod)
        if is_norm:
            bn = mods[mod]
            assert isinstance(bn, torchvision.ops.misc.FrozenBatchNorm2d), (key, type(bn))
            bn.eps = 0.0
            if param in ('weight', 'bias'):
                name = '%s.%s' % (prefix, param)
                v = formula(name, tuple(t.shape), depth)
                ours[name] = v.shape
            elif param == 'running_mean':
                v = np.zeros(t.shape, np.float32)
            elif param == 'running_var':
                v = np.ones(t.shape, np.float32)
            else:
                raise AssertionError(key)
        elif param == 'weight':
            name = prefix + '.weight'
            o, i, kh, kw = t.shape
            v = formula(name, (o, kh, kw, i), depth)  # KRSC
            ours[name] = v.shape
            v = v.transpose(0, 3, 1, 2)         # -> OIHW
        else:
            assert param == 'bias', key
            name = prefix + '.bias'
            v = formula(name, tuple(t.shape), depth)
            ours[name] = v.shape
        assert v.shape == tuple(t.shape), key
        assert key not in filled, key
        filled[key] = torch.from_numpy(np.ascontiguousarray(v))
    assert set(filled) == set(sd), set(sd) ^ set(filled)
    assert len(ours) == sum(1 for k in sd if not k.endswith(('running_mean', 'running_var'))), 'names collide'
    m.load_state_dict(filled, strict=True)
    for mod in m.modules():
        if isinstance(mod, torchvision.ops.misc.FrozenBatchNorm2d):
            assert mod.eps == 0.0
    return m, ours


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='tests/golden')
    args = ap.parse_args()
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    x = (torch.rand(1, H, W, 3, generator=g, dtype=torch.float64) * 2 - 1).float()
    out = {'x': x.numpy().copy()}
    meta = {'generator': 'scripts/gen_golden_backbone.py', 'torch': torch.__version__,
            'torchvision': torchvision.__version__, 'python': '%d.%d.%d' % sys.version_info[:3],
            'seed': str(SEED),
            'dtype': 'float64 forward of float32 weights and input, stored as float32; layout NHWC'}
    keys = ['0', '1', '2', '3', 'pool']
    for depth in DEPTHS:
        m, ours = build(depth)
        samples = []
        for name in SAMPLED:
            v = formula(name, ours[name], depth).reshape(-1)
            samples.append(v[np.arange(16) * (v.size // 16)])
        out['r%d.samples' % depth] = np.stack(samples)
        meta['r%d.params' % depth] = ''.join(
            '%s:%s;' % (n, 'x'.join(str(d) for d in ours[n])) for n in sorted(ours))
        xin = x.permute(0, 3, 1, 2).contiguous()
        with torch.no_grad():
            m.double()
            y64 = m(xin.double())
            feats = m.body(xin.double())  # C2..C5, to see the magnitudes the formula gives
            m.float()
            y32 = m(xin)
        print('R%d C2..C5 max|.|: %s, std: %s' % (
            depth, ' '.join('%.3g' % f.abs().max().item() for f in feats.values()),
            ' '.join('%.3g' % f.std().item() for f in feats.values())))
        errs = []
        for lv, k in enumerate(keys):
            a = y64[k].permute(0, 2, 3, 1).contiguous()
            b = y32[k].permute(0, 2, 3, 1).contiguous().double()
            scale = a.abs().max().item()
            e = (b - a).abs().max().item() / scale
            errs.append('%.3g' % e)
            out['r%d.p%d' % (depth, lv + 2)] = a.float().numpy().copy()
            print('R%d P%d %s max|.| %.4g std %.4g; torch f32 vs f64: worst |err|/max %.3g' % (
                depth, lv + 2, tuple(a.shape), scale, a.std().item(), e))
        meta['r%d.f32_err' % depth] = ' '.join(errs)
    path = os.path.join(args.out, 'backbone_tv.safetensors')
    write_safetensors(path, out, meta)
    print('%s: %d tensors, %d bytes' % (os.path.normpath(path), len(out), os.path.getsize(path)))


if __name__ == '__main__':
    main()

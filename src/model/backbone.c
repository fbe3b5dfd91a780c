/* backbone.c: ResNet bottom-up + FPN (see backbone.h). */
#include "model/backbone.h"

#include "core/check.h"
#include "core/rng.h"
#include "ops/conv.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/pointwise.h"
#include "ops/pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GN_EPS 1e-5

/* ---- param_list ---------------------------------------------------------------------- */

void param_list_add(param_list *l, tensor *t, param_kind kind) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->items = realloc(l->items, (size_t)l->cap * sizeof *l->items);
        CHECK(l->items, "out of memory");
    }
    l->items[l->n++] = (param_ref){t, kind};
}

void param_list_free(param_list *l) {
    free(l->items);
    memset(l, 0, sizeof *l);
}

int64_t param_list_count(const param_list *l, const char *prefix, param_kind kind) {
    int64_t s = 0;
    for (int i = 0; i < l->n; i++) {
        const tensor *t = l->items[i].t;
        if (l->items[i].kind != kind) continue;
        if (prefix && (!t->name || strncmp(t->name, prefix, strlen(prefix)) != 0)) continue;
        s += tensor_numel(t);
    }
    return s;
}

/* ---- nn_conv ------------------------------------------------------------------------- */

static tensor alloc_named(dtype dt, device dev, const int *shape, int ndim, param_kind kind, char *store,
                          const char *prefix, const char *suffix) {
    snprintf(store, 112, "%s%s", prefix, suffix);
    tensor t = kind == PARAM_KIND_TRAINABLE ? tensor_alloc_param(dt, dev, shape, ndim, store)
                                            : tensor_alloc(dt, dev, shape, ndim);
    t.name = store;
    return t;
}

void nn_conv_init(nn_conv *c, param_list *l, const char *prefix, int cin, int cout, int k, int stride, int pad,
                  int bias, norm_kind norm, int trainable, dtype dt, device dev) {
    memset(c, 0, sizeof *c);
    CHECK(strlen(prefix) + 16 < sizeof c->name[0], "parameter name too long: %s", prefix);
    CHECK(cin >= 1 && cout >= 1, "%s: channels %d -> %d", prefix, cin, cout);
    c->norm = norm, c->has_bias = bias, c->stride = stride, c->pad = pad;
    c->kind = trainable ? PARAM_KIND_TRAINABLE : PARAM_KIND_FROZEN;
    c->w = alloc_named(dt, dev, (const int[]){cout, k, k, cin}, 4, c->kind, c->name[0], prefix, ".weight");
    if (l) param_list_add(l, &c->w, c->kind);
    if (bias) {
        c->b = alloc_named(dt, dev, (const int[]){cout}, 1, c->kind, c->name[1], prefix, ".bias");
        if (l) param_list_add(l, &c->b, c->kind);
    }
    if (norm != NORM_NONE) {
        param_kind nk = norm == NORM_FROZEN_BN ? PARAM_KIND_BUFFER : c->kind;
        if (norm == NORM_GN)
            CHECK(cout % group_norm_groups(cout) == 0, "%s: GN needs channels (%d) divisible by min(32, C)", prefix,
                  cout);
        c->norm_w = alloc_named(dt, dev, (const int[]){cout}, 1, nk, c->name[2], prefix, ".norm.weight");
        c->norm_b = alloc_named(dt, dev, (const int[]){cout}, 1, nk, c->name[3], prefix, ".norm.bias");
        if (l) param_list_add(l, &c->norm_w, nk), param_list_add(l, &c->norm_b, nk);
    }
}

void nn_conv_free(nn_conv *c) {
    tensor *ts[4] = {&c->w, &c->b, &c->norm_w, &c->norm_b};
    for (int i = 0; i < 4; i++)
        if (ts[i]->data) tensor_free(ts[i]);
    memset(c, 0, sizeof *c);
}

void nn_linear_init(nn_linear *f, param_list *l, const char *prefix, int in, int out, dtype dt, device dev) {
    memset(f, 0, sizeof *f);
    CHECK(strlen(prefix) + 16 < sizeof f->name[0], "parameter name too long: %s", prefix);
    CHECK(in >= 1 && out >= 1, "%s: features %d -> %d", prefix, in, out);
    f->w = alloc_named(dt, dev, (const int[]){out, in}, 2, PARAM_KIND_TRAINABLE, f->name[0], prefix, ".weight");
    f->b = alloc_named(dt, dev, (const int[]){out}, 1, PARAM_KIND_TRAINABLE, f->name[1], prefix, ".bias");
    if (l) param_list_add(l, &f->w, PARAM_KIND_TRAINABLE), param_list_add(l, &f->b, PARAM_KIND_TRAINABLE);
}

void nn_linear_free(nn_linear *f) {
    if (f->w.data) tensor_free(&f->w);
    if (f->b.data) tensor_free(&f->b);
    memset(f, 0, sizeof *f);
}

tensor *nn_linear_forward(runtime *rt, const nn_linear *f, tensor *x) {
    return op_linear(rt, x, (tensor *)&f->w, (tensor *)&f->b);
}

tensor *nn_conv_forward(runtime *rt, const nn_conv *c, tensor *x) {
    tensor *y = op_conv2d(rt, x, (tensor *)&c->w, c->has_bias ? (tensor *)&c->b : NULL, c->stride, c->pad);
    if (c->norm == NORM_FROZEN_BN) return op_frozen_bn(rt, y, (tensor *)&c->norm_w, (tensor *)&c->norm_b);
    if (c->norm == NORM_GN)
        return op_group_norm(rt, y, (tensor *)&c->norm_w, (tensor *)&c->norm_b,
                             group_norm_groups(c->norm_w.shape[0]), GN_EPS);
    return y;
}

/* ---- init ---------------------------------------------------------------------------- */

/* rng fills write floats; f64 tensors (gradient checks, CPU) go through a float buffer. */
void nn_fill(rng *r, tensor *t, int normal, float a, float b) {
    if (t->dtype == DTYPE_F32) {
        if (normal) rng_fill_normal(r, t, a, b);
        else rng_fill_uniform(r, t, a, b);
        return;
    }
    CHECK(t->dtype == DTYPE_F64 && t->device == DEVICE_CPU, "init: f32 or CPU f64 tensors only");
    int64_t n = tensor_numel(t);
    float *tmp = malloc((size_t)n * sizeof *tmp);
    CHECK(tmp, "out of memory");
    if (normal) rng_normal_cpu(r, tmp, n, a, b);
    else rng_uniform_cpu(r, tmp, n, a, b);
    for (int64_t i = 0; i < n; i++) tensor_f64(t)[i] = tmp[i];
    free(tmp);
}

static void fill_const(tensor *t, double v) {
    int64_t n = tensor_numel(t);
    if (t->device == DEVICE_CPU) {
        for (int64_t i = 0; i < n; i++)
            if (t->dtype == DTYPE_F64) tensor_f64(t)[i] = v;
            else tensor_f32(t)[i] = (float)v;
        return;
    }
    tensor h = tensor_alloc(t->dtype, DEVICE_CPU, t->shape, t->ndim);
    fill_const(&h, v);
    tensor_copy(t, &h);
    tensor_free(&h);
}

static void init_norm(nn_conv *c) {
    if (c->norm == NORM_NONE) return;
    fill_const(&c->norm_w, 1.0); /* GN γ = 1, FrozenBN scale = 1 */
    tensor_zero(&c->norm_b);
}

/* MSRA fill: N(0, √(2 / (C_out·k·k))). */
static void init_msra(rng *r, nn_conv *c) {
    double fan_out = (double)c->w.shape[0] * c->w.shape[1] * c->w.shape[2];
    nn_fill(r, &c->w, 1, 0.0f, (float)sqrt(2.0 / fan_out));
    if (c->has_bias) tensor_zero(&c->b);
    init_norm(c);
}

/* caffe2 xavier = kaiming_uniform(a=1): U(±√(3 / (C_in·k·k))). */
static void init_xavier(rng *r, nn_conv *c) {
    float lim = (float)sqrt(3.0 / ((double)c->w.shape[1] * c->w.shape[2] * c->w.shape[3]));
    nn_fill(r, &c->w, 0, -lim, lim);
    if (c->has_bias) tensor_zero(&c->b);
    init_norm(c);
}

/* ---- ResNet -------------------------------------------------------------------------- */

backbone_config backbone_config_default(void) {
    return (backbone_config){.depth = 50, .width = 64, .norm = NORM_FROZEN_BN, .freeze_at = 2, .stride_in_1x1 = 1,
                             .fpn_channels = 256, .fpn_norm = NORM_NONE, .dtype = DTYPE_F32, .seed = 0};
}

static void stage_layout(int depth, int n[4], int *bottleneck) {
    static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3}, r101[4] = {3, 4, 23, 3};
    const int *s = depth == 18 ? r18 : depth == 34 || depth == 50 ? r34 : depth == 101 ? r101 : NULL;
    CHECK(s, "ResNet depth %d: expected 18, 34, 50 or 101", depth);
    memcpy(n, s, 4 * sizeof *n);
    *bottleneck = depth >= 50;
}

static void block_init(resnet_block *blk, param_list *l, const backbone_config *cfg, const char *prefix, int cin,
                       int cout, int mid, int stride, int trainable, dtype dt, device dev) {
    char p[96];
    norm_kind nk = cfg->norm;
    blk->has_shortcut = cin != cout || stride != 1;
    if (blk->has_shortcut) {
        snprintf(p, sizeof p, "%s.shortcut", prefix);
        nn_conv_init(&blk->shortcut, l, p, cin, cout, 1, stride, 0, 0, nk, trainable, dt, dev);
    }
    if (blk->bottleneck) {
        int s1 = cfg->stride_in_1x1 ? stride : 1, s3 = cfg->stride_in_1x1 ? 1 : stride;
        snprintf(p, sizeof p, "%s.conv1", prefix);
        nn_conv_init(&blk->conv1, l, p, cin, mid, 1, s1, 0, 0, nk, trainable, dt, dev);
        snprintf(p, sizeof p, "%s.conv2", prefix);
        nn_conv_init(&blk->conv2, l, p, mid, mid, 3, s3, 1, 0, nk, trainable, dt, dev);
        snprintf(p, sizeof p, "%s.conv3", prefix);
        nn_conv_init(&blk->conv3, l, p, mid, cout, 1, 1, 0, 0, nk, trainable, dt, dev);
    } else {
        snprintf(p, sizeof p, "%s.conv1", prefix);
        nn_conv_init(&blk->conv1, l, p, cin, cout, 3, stride, 1, 0, nk, trainable, dt, dev);
        snprintf(p, sizeof p, "%s.conv2", prefix);
        nn_conv_init(&blk->conv2, l, p, cout, cout, 3, 1, 1, 0, nk, trainable, dt, dev);
    }
}

static void fpn_init(backbone *b, dtype dt, device dev) {
    int ch = b->cfg.fpn_channels, bias = b->cfg.fpn_norm == NORM_NONE;
    char p[64];
    /* d2 registers fpn_lateral{i} and fpn_output{i} from the coarsest level down */
    for (int i = 3; i >= 0; i--) {
        snprintf(p, sizeof p, "backbone.fpn_lateral%d", i + 2);
        nn_conv_init(&b->fpn_lateral[i], &b->params, p, b->out_channels[i], ch, 1, 1, 0, bias, b->cfg.fpn_norm, 1, dt,
                     dev);
        snprintf(p, sizeof p, "backbone.fpn_output%d", i + 2);
        nn_conv_init(&b->fpn_output[i], &b->params, p, ch, ch, 3, 1, 1, bias, b->cfg.fpn_norm, 1, dt, dev);
    }
}

void backbone_init(backbone *b, const backbone_config *cfg, device dev) {
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    CHECK(cfg->width >= 1 && cfg->fpn_channels >= 1, "backbone width %d, FPN channels %d", cfg->width,
          cfg->fpn_channels);
    CHECK(cfg->freeze_at >= 0 && cfg->freeze_at <= 2, "freeze_at %d: expected 0, 1 or 2", cfg->freeze_at);
    CHECK(cfg->norm == NORM_FROZEN_BN || cfg->norm == NORM_GN, "backbone norm must be FrozenBN or GN");
    int bottleneck;
    stage_layout(cfg->depth, b->n_blocks, &bottleneck);
    dtype dt = cfg->dtype;
    nn_conv_init(&b->stem, &b->params, "backbone.bottom_up.stem.conv1", 3, cfg->width, 7, 2, 3, 0, cfg->norm,
                 cfg->freeze_at < 1, dt, dev);
    int cin = cfg->width;
    for (int s = 0; s < 4; s++) {
        int mid = cfg->width << s, cout = bottleneck ? 4 * mid : mid;
        b->out_channels[s] = cout;
        b->blocks[s] = calloc((size_t)b->n_blocks[s], sizeof *b->blocks[s]);
        CHECK(b->blocks[s], "out of memory");
        int trainable = !(s == 0 && cfg->freeze_at >= 2);
        for (int i = 0; i < b->n_blocks[s]; i++) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "backbone.bottom_up.res%d.%d", s + 2, i);
            b->blocks[s][i].bottleneck = bottleneck;
            block_init(&b->blocks[s][i], &b->params, cfg, prefix, cin, cout, mid, i == 0 && s > 0 ? 2 : 1, trainable,
                       dt, dev);
            cin = cout;
        }
    }
    fpn_init(b, dt, dev);

    rng r = rng_make(cfg->seed, RNG_STREAM_INIT);
    init_msra(&r, &b->stem);
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < b->n_blocks[s]; i++) {
            resnet_block *blk = &b->blocks[s][i];
            if (blk->has_shortcut) init_msra(&r, &blk->shortcut);
            init_msra(&r, &blk->conv1), init_msra(&r, &blk->conv2);
            if (blk->bottleneck) init_msra(&r, &blk->conv3);
        }
    for (int i = 3; i >= 0; i--) init_xavier(&r, &b->fpn_lateral[i]), init_xavier(&r, &b->fpn_output[i]);
}

void backbone_free(backbone *b) {
    nn_conv_free(&b->stem);
    for (int s = 0; s < 4; s++) {
        for (int i = 0; b->blocks[s] && i < b->n_blocks[s]; i++) {
            resnet_block *blk = &b->blocks[s][i];
            nn_conv_free(&blk->conv1), nn_conv_free(&blk->conv2);
            if (blk->bottleneck) nn_conv_free(&blk->conv3);
            if (blk->has_shortcut) nn_conv_free(&blk->shortcut);
        }
        free(b->blocks[s]);
    }
    for (int i = 0; i < 4; i++) nn_conv_free(&b->fpn_lateral[i]), nn_conv_free(&b->fpn_output[i]);
    param_list_free(&b->params);
    memset(b, 0, sizeof *b);
}

static tensor *block_forward(runtime *rt, const resnet_block *blk, tensor *x) {
    tensor *y = op_relu(rt, nn_conv_forward(rt, &blk->conv1, x));
    if (blk->bottleneck) {
        y = op_relu(rt, nn_conv_forward(rt, &blk->conv2, y));
        y = nn_conv_forward(rt, &blk->conv3, y);
    } else {
        y = nn_conv_forward(rt, &blk->conv2, y);
    }
    tensor *sc = blk->has_shortcut ? nn_conv_forward(rt, &blk->shortcut, x) : x;
    return op_relu(rt, op_add(rt, y, sc));
}

backbone_out backbone_forward(runtime *rt, const backbone *b, tensor *x) {
    backbone_out o;
    memset(&o, 0, sizeof o);
    CHECK(x->ndim == 4 && x->shape[3] == 3, "backbone input must be [N, H, W, 3]");
    CHECK(x->shape[1] % 32 == 0 && x->shape[2] % 32 == 0, "backbone input %dx%d: H and W must be multiples of 32",
          x->shape[1], x->shape[2]);
    tensor *y = op_relu(rt, nn_conv_forward(rt, &b->stem, x));
    y = op_max_pool(rt, y, 3, 2, 1);
    for (int s = 0; s < 4; s++) {
        for (int i = 0; i < b->n_blocks[s]; i++) y = block_forward(rt, &b->blocks[s][i], y);
        o.c[s] = y;
    }
    tensor *m = nn_conv_forward(rt, &b->fpn_lateral[3], o.c[3]);
    o.p[3] = nn_conv_forward(rt, &b->fpn_output[3], m);
    for (int i = 2; i >= 0; i--) {
        m = op_add(rt, nn_conv_forward(rt, &b->fpn_lateral[i], o.c[i]), op_upsample2x(rt, m));
        o.p[i] = nn_conv_forward(rt, &b->fpn_output[i], m);
    }
    o.p[4] = op_max_pool(rt, o.p[3], 1, 2, 0); /* LastLevelMaxPool */
    return o;
}

/* ---- activation estimate ------------------------------------------------------------- */

/* Bytes of conv (+ norm) outputs for c at input h×w; updates h, w to the output size. */
static int64_t conv_bytes(const nn_conv *c, int *h, int *w, size_t es) {
    *h = conv2d_out_size(*h, c->w.shape[1], c->stride, c->pad);
    *w = conv2d_out_size(*w, c->w.shape[2], c->stride, c->pad);
    int64_t one = (int64_t)*h * *w * c->w.shape[0] * (int64_t)es;
    return c->norm == NORM_NONE ? one : 2 * one;
}

int64_t backbone_activation_bytes(const backbone *b, int h, int w) {
    size_t es = dtype_size(b->cfg.dtype);
    int64_t total = 0;
    total += conv_bytes(&b->stem, &h, &w, es);
    total += (int64_t)h * w * b->cfg.width * (int64_t)es; /* relu */
    h = conv2d_out_size(h, 3, 2, 1), w = conv2d_out_size(w, 3, 2, 1);
    total += (int64_t)h * w * b->cfg.width * (int64_t)es; /* max pool */
    int hs[4], ws[4];
    for (int s = 0; s < 4; s++) {
        for (int i = 0; i < b->n_blocks[s]; i++) {
            const resnet_block *blk = &b->blocks[s][i];
            int h1 = h, w1 = w;
            total += conv_bytes(&blk->conv1, &h1, &w1, es) / (blk->conv1.norm ? 2 : 1) * 3; /* conv, norm, relu */
            total += conv_bytes(&blk->conv2, &h1, &w1, es) / (blk->conv2.norm ? 2 : 1) * (blk->bottleneck ? 3 : 2);
            if (blk->bottleneck) total += conv_bytes(&blk->conv3, &h1, &w1, es);
            if (blk->has_shortcut) {
                int h2 = h, w2 = w;
                total += conv_bytes(&blk->shortcut, &h2, &w2, es);
            }
            total += 2 * (int64_t)h1 * w1 * b->out_channels[s] * (int64_t)es; /* add, relu */
            h = h1, w = w1;
        }
        hs[s] = h, ws[s] = w;
    }
    int64_t ch = b->cfg.fpn_channels, fe = (b->cfg.fpn_norm == NORM_NONE ? 1 : 2) * (int64_t)es;
    for (int i = 0; i < 4; i++) {
        int64_t px = (int64_t)hs[i] * ws[i];
        total += 2 * px * ch * fe;                       /* lateral, output */
        if (i < 3) total += 2 * px * ch * (int64_t)es;   /* upsample, add */
    }
    total += (int64_t)((hs[3] + 1) / 2) * ((ws[3] + 1) / 2) * ch * (int64_t)es; /* P6 */
    return total;
}

/* roi_heads.c: matching, sampling, box and mask heads, their losses (roi_heads.h). */
#include "model/roi_heads.h"

#include "core/arena.h"
#include "core/check.h"
#include "ops/conv.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/pointwise.h"
#include "ops/roi_align.h"
#include "ops/select.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOX_POOL 7
#define MASK_POOL 14
#define NORMED_TAU 20.0
#define NORMED_EPS 1e-6

roi_heads_config roi_heads_config_default(int K, int channels, const loss_entry *loss) {
    roi_heads_config c;
    memset(&c, 0, sizeof c);
    c.K = K, c.channels = channels, c.fc_dim = 1024;
    c.conv_head = 0, c.conv_norm = NORM_GN;
    c.batch = 512, c.pos_fraction = 0.25, c.iou_thresh = 0.5f;
    c.cls_agnostic = 0, c.coder = box_coder_roi(), c.box_beta = 0, c.box_weight = 1;
    c.mask_on = 1, c.mask_dim = 256;
    c.loss = loss, c.loss_params = loss_params_default(), c.classifier = -1;
    return c;
}

static void set_const(tensor *t, double v) {
    tensor h = tensor_alloc(t->dtype, DEVICE_CPU, t->shape, t->ndim);
    for (int64_t i = 0; i < tensor_numel(t); i++)
        if (t->dtype == DTYPE_F64) tensor_f64(&h)[i] = v;
        else tensor_f32(&h)[i] = (float)v;
    tensor_copy(t, &h);
    tensor_free(&h);
}

void roi_heads_init(roi_heads *h, const roi_heads_config *cfg, const loss_class_stats *stats, dtype dt, device dev,
                    uint64_t seed) {
    memset(h, 0, sizeof *h);
    h->cfg = *cfg;
    int K = cfg->K, C = cfg->channels;
    CHECK(K >= 1 && C >= 1 && cfg->fc_dim >= 1 && cfg->loss, "roi_heads: K %d, channels %d, fc %d", K, C, cfg->fc_dim);
    CHECK(cfg->batch >= 1 && cfg->batch <= MATCH_MAX_BATCH, "roi_heads: batch_size_per_image %d", cfg->batch);
    loss_state_init(&h->loss, cfg->loss, K, 0, &cfg->loss_params, cfg->classifier, stats);
    param_list *l = &h->params;
    char p[96];
    rng r = rng_make(seed, RNG_STREAM_INIT | 2);
    int fc_in = BOX_POOL * BOX_POOL * C;
    if (cfg->conv_head) {
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "roi_heads.box_head.conv%d", i + 1);
            nn_conv_init(&h->box_conv[i], l, p, C, C, 3, 1, 1, cfg->conv_norm == NORM_NONE, cfg->conv_norm, 1, dt, dev);
            nn_fill(&r, &h->box_conv[i].w, 1, 0.f, (float)sqrt(2.0 / (C * 9)));
            if (cfg->conv_norm != NORM_NONE) set_const(&h->box_conv[i].norm_w, 1.0);
        }
    }
    nn_linear_init(&h->fc1, l, "roi_heads.box_head.fc1", fc_in, cfg->fc_dim, dt, dev);
    nn_fill(&r, &h->fc1.w, 0, -(float)sqrt(3.0 / fc_in), (float)sqrt(3.0 / fc_in));
    if (!cfg->conv_head) {
        nn_linear_init(&h->fc2, l, "roi_heads.box_head.fc2", cfg->fc_dim, cfg->fc_dim, dt, dev);
        nn_fill(&r, &h->fc2.w, 0, -(float)sqrt(3.0 / cfg->fc_dim), (float)sqrt(3.0 / cfg->fc_dim));
    }
    nn_linear_init(&h->cls_score, l, "roi_heads.box_predictor.cls_score", cfg->fc_dim, cfg->loss->num_logits(K), dt,
                   dev);
    nn_fill(&r, &h->cls_score.w, 1, 0.f, 0.01f);
    nn_linear_init(&h->bbox_pred, l, "roi_heads.box_predictor.bbox_pred", cfg->fc_dim, cfg->cls_agnostic ? 4 : 4 * K, dt,
                   dev);
    nn_fill(&r, &h->bbox_pred.w, 1, 0.f, 0.001f);
    if (cfg->mask_on) {
        int D = cfg->mask_dim;
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "roi_heads.mask_head.mask_fcn%d", i + 1);
            nn_conv_init(&h->mask_fcn[i], l, p, i ? D : C, D, 3, 1, 1, 1, NORM_NONE, 1, dt, dev);
            nn_fill(&r, &h->mask_fcn[i].w, 1, 0.f, (float)sqrt(2.0 / (D * 9)));
        }
        /* d2's ConvTranspose2d weight is [in, out, 2, 2]: kaiming fan_out = in·4 */
        nn_conv_init(&h->deconv, l, "roi_heads.mask_head.deconv", D, D, 2, 2, 0, 1, NORM_NONE, 1, dt, dev);
        nn_fill(&r, &h->deconv.w, 1, 0.f, (float)sqrt(2.0 / (D * 4)));
        nn_conv_init(&h->predictor, l, "roi_heads.mask_head.predictor", D, K, 1, 1, 0, 1, NORM_NONE, 1, dt, dev);
        nn_fill(&r, &h->predictor.w, 1, 0.f, 0.001f);
    }
}

void roi_heads_free(roi_heads *h) {
    for (int i = 0; i < 4; i++) nn_conv_free(&h->box_conv[i]), nn_conv_free(&h->mask_fcn[i]);
    nn_linear_free(&h->fc1), nn_linear_free(&h->fc2), nn_linear_free(&h->cls_score), nn_linear_free(&h->bbox_pred);
    nn_conv_free(&h->deconv), nn_conv_free(&h->predictor);
    loss_state_free(&h->loss);
    param_list_free(&h->params);
    memset(h, 0, sizeof *h);
}

/* ---- forward pieces ------------------------------------------------------------------ */

static tensor *upload_i(runtime *rt, device dev, const int32_t *v, int n);

static tensor *box_features(runtime *rt, const roi_heads *h, tensor *const *feats, tensor *rois) {
    roi_align_args a = {BOX_POOL, BOX_POOL, 0, 1};
    tensor *x = op_roi_align_fpn(rt, feats, rois, &a);
    if (h->cfg.conv_head)
        for (int i = 0; i < 4; i++) x = op_relu(rt, nn_conv_forward(rt, &h->box_conv[i], x));
    int R = x->shape[0];
    x = runtime_reshape(rt, x, TSHAPE(R, BOX_POOL * BOX_POOL * h->cfg.channels));
    x = op_relu(rt, nn_linear_forward(rt, &h->fc1, x));
    if (!h->cfg.conv_head) x = op_relu(rt, nn_linear_forward(rt, &h->fc2, x));
    return x;
}

static tensor *cls_logits(runtime *rt, const roi_heads *h, tensor *x) {
    if (h->loss.classifier == LOSS_CLASSIFIER_NORMED)
        return op_normed_linear(rt, x, (tensor *)&h->cls_score.w, (tensor *)&h->cls_score.b, NORMED_TAU, NORMED_EPS);
    return nn_linear_forward(rt, &h->cls_score, x);
}

static tensor *mask_logits(runtime *rt, const roi_heads *h, tensor *const *feats, tensor *rois, tensor *cls) {
    roi_align_args a = {MASK_POOL, MASK_POOL, 0, 1};
    tensor *x = op_roi_align_fpn(rt, feats, rois, &a);
    for (int i = 0; i < 4; i++) x = op_relu(rt, nn_conv_forward(rt, &h->mask_fcn[i], x));
    x = op_relu(rt, op_deconv2x2(rt, x, (tensor *)&h->deconv.w, (tensor *)&h->deconv.b));
    if (!h->cfg.mask_normed) return op_class_conv1x1(rt, x, (tensor *)&h->predictor.w, (tensor *)&h->predictor.b, cls);
    /* NormedConv2d: all K channels, then each pixel's RoI class (idx repeated per pixel) */
    int F = x->shape[0], P = x->shape[1] * x->shape[2], K = h->cfg.K;
    tensor *y = op_normed_conv1x1(rt, x, (tensor *)&h->predictor.w, (tensor *)&h->predictor.b, NORMED_TAU, NORMED_EPS);
    y = runtime_reshape(rt, y, TSHAPE(F * P, K));
    tensor *hc = runtime_tensor(rt, DEVICE_CPU, DTYPE_I32, TSHAPE(F));
    tensor_copy(hc, cls);
    int32_t *pix = arena_alloc(&rt->host, (size_t)F * P * sizeof *pix);
    for (int r = 0; r < F; r++)
        for (int i = 0; i < P; i++) pix[(int64_t)r * P + i] = tensor_i32(hc)[r];
    tensor *g = op_gather_group(rt, y, upload_i(rt, cls->device, pix, F * P), 1);
    return runtime_reshape(rt, g, TSHAPE(F, x->shape[1], x->shape[2], 1));
}

/* A step tensor of `dt` on `dev` holding n host floats. */
static tensor *upload_f(runtime *rt, device dev, dtype dt, const float *v, const int *shape, int ndim) {
    tensor *t = runtime_tensor(rt, dev, dt, shape, ndim);
    int64_t n = tensor_numel(t);
    if (dev == DEVICE_CPU && dt == DTYPE_F32) {
        memcpy(t->data, v, (size_t)n * sizeof(float));
    } else if (dev == DEVICE_CPU) {
        for (int64_t i = 0; i < n; i++) tensor_f64(t)[i] = v[i];
    } else {
        tensor hv = tensor_view((void *)v, DTYPE_F32, DEVICE_CPU, shape, ndim);
        tensor_copy(t, &hv);
    }
    return t;
}
static tensor *upload_i(runtime *rt, device dev, const int32_t *v, int n) {
    tensor *t = runtime_tensor(rt, dev, DTYPE_I32, TSHAPE(n));
    tensor hv = tensor_view((void *)v, DTYPE_I32, DEVICE_CPU, TSHAPE(n));
    tensor_copy(t, &hv);
    return t;
}

/* ---- training ------------------------------------------------------------------------ */

/* The host side of one step's sampling: rows of every image, fg first within an image. */
typedef struct roi_rows {
    int R, R_fg;
    float *rois;       /* [R, 5] */
    int32_t *labels;   /* [R] 0..K-1 fg, K bg */
    int32_t *group;    /* [R] the gathered delta group: the fg class (0 agnostic / bg) */
    float *reg_t;      /* [R, 4] targets of fg rows, 0 elsewhere */
    float *reg_w;      /* [R, 4] 1 on fg rows */
    int32_t *gt_index; /* [R] matched GT within its image, -1 bg */
    int32_t *image;    /* [R] */
    float *fg_rois;    /* [R_fg, 5] */
    int32_t *fg_cls;   /* [R_fg] */
    float *fg_masks;   /* [R_fg, 28, 28] */
    int bad_masks;
} roi_rows;

static void sample_image(runtime *rt, const roi_heads *h, const roi_image *im, int n, uint64_t seed, uint64_t step,
                         roi_rows *o) {
    arena *ar = &rt->host;
    int P = im->n_prop, G = im->n_gt, A = P + G, K = h->cfg.K;
    if (A == 0) return; /* no proposal survived and no GT: the image adds no row */
    float *cand = arena_alloc(ar, (size_t)A * 16);
    if (P) memcpy(cand, im->proposals, (size_t)P * 16);
    if (G) memcpy(cand + 4 * P, im->gt_box, (size_t)G * 16);
    int8_t *labels = arena_alloc(ar, (size_t)A);
    int32_t *matched = arena_alloc(ar, (size_t)A * 4), *scratch = arena_alloc(ar, (size_t)A * 4);
    float *best = arena_alloc(ar, (size_t)A * 4), *gt_max = arena_alloc(ar, (size_t)(G > 0 ? G : 1) * 4);
    float *iou = arena_alloc(ar, (size_t)(G > 0 ? G : 1) * A * 4);
    match_cfg mc = match_cfg_roi();
    mc.thresholds[0] = h->cfg.iou_thresh;
    if (G > 0) {
        tensor gt = tensor_view((void *)im->gt_box, DTYPE_F32, DEVICE_CPU, TSHAPE(G, 4));
        tensor cb = tensor_view(cand, DTYPE_F32, DEVICE_CPU, TSHAPE(A, 4));
        tensor io = tensor_view(iou, DTYPE_F32, DEVICE_CPU, TSHAPE(G, A));
        box_iou_cpu(rt, &gt, &cb, 0, A, &io);
    }
    match_cpu(&mc, iou, G, A, gt_max, best, matched, labels);
    rng r = match_sample_rng(seed, step, n, MATCH_STAGE_ROI);
    int32_t *sampled = arena_alloc(ar, (size_t)h->cfg.batch * 4);
    int num_pos = 0;
    int S = match_subsample(&r, labels, A, h->cfg.batch, h->cfg.pos_fraction, scratch, sampled, &num_pos);
    /* fg regression targets: encode(candidate -> matched GT) */
    float *src = arena_alloc(ar, (size_t)(num_pos > 0 ? num_pos : 1) * 16);
    float *tgt = arena_alloc(ar, (size_t)(num_pos > 0 ? num_pos : 1) * 16);
    float *del = arena_alloc(ar, (size_t)(num_pos > 0 ? num_pos : 1) * 16);
    for (int i = 0; i < num_pos; i++) {
        memcpy(src + 4 * i, cand + 4 * sampled[i], 16);
        memcpy(tgt + 4 * i, im->gt_box + 4 * matched[sampled[i]], 16);
    }
    if (num_pos > 0) {
        tensor ts = tensor_view(src, DTYPE_F32, DEVICE_CPU, TSHAPE(num_pos, 4));
        tensor tt = tensor_view(tgt, DTYPE_F32, DEVICE_CPU, TSHAPE(num_pos, 4));
        tensor td = tensor_view(del, DTYPE_F32, DEVICE_CPU, TSHAPE(num_pos, 4));
        box_encode_cpu(rt, &h->cfg.coder, &ts, &tt, &td);
    }
    for (int i = 0; i < S; i++) {
        int row = o->R++, a = sampled[i], fg = i < num_pos;
        float *rr = o->rois + 5 * row;
        rr[0] = (float)n;
        memcpy(rr + 1, cand + 4 * a, 16);
        int cls = fg ? im->gt_class[matched[a]] : K;
        CHECK(cls >= 0 && cls <= K, "roi_heads: image %d: GT %d has class %d, not in [0, %d)", n, matched[a], cls, K);
        o->labels[row] = cls;
        o->group[row] = fg && !h->cfg.cls_agnostic ? cls : 0;
        o->gt_index[row] = fg ? matched[a] : -1;
        o->image[row] = n;
        for (int j = 0; j < 4; j++) o->reg_t[4 * row + j] = fg ? del[4 * i + j] : 0.f, o->reg_w[4 * row + j] = (float)fg;
        if (!fg) continue;
        int f = o->R_fg++;
        memcpy(o->fg_rois + 5 * f, rr, 20);
        o->fg_cls[f] = cls;
        float *m = o->fg_masks + (size_t)f * MASK_TARGET_SIZE * MASK_TARGET_SIZE;
        const mask_polys *mp = im->gt_polys ? &im->gt_polys[matched[a]] : NULL;
        if (!h->cfg.mask_on || !mp || mp->n_parts == 0) {
            memset(m, 0, sizeof(float) * MASK_TARGET_SIZE * MASK_TARGET_SIZE);
            continue;
        }
        if (mask_target_cpu(cand + 4 * a, mp, MASK_TARGET_SIZE, m)) {
            memset(m, 0, sizeof(float) * MASK_TARGET_SIZE * MASK_TARGET_SIZE);
            o->bad_masks++;
        }
    }
}

roi_losses roi_heads_train(runtime *rt, roi_heads *h, tensor *const *feats, const roi_image *imgs, int N,
                           uint64_t seed, uint64_t step) {
    roi_losses out;
    memset(&out, 0, sizeof out);
    device dev = feats[0]->device;
    dtype dt = feats[0]->dtype;
    arena *ar = &rt->host;
    int max_rows = 0;
    for (int n = 0; n < N; n++) {
        int a = imgs[n].n_prop + imgs[n].n_gt;
        max_rows += a < h->cfg.batch ? a : h->cfg.batch;
    }
    if (max_rows == 0) return out; /* no candidate box in the whole batch: no RoI loss terms */
    roi_rows o;
    memset(&o, 0, sizeof o);
    size_t M2 = MASK_TARGET_SIZE * MASK_TARGET_SIZE;
    o.rois = arena_alloc(ar, (size_t)max_rows * 20), o.labels = arena_alloc(ar, (size_t)max_rows * 4);
    o.group = arena_alloc(ar, (size_t)max_rows * 4), o.reg_t = arena_alloc(ar, (size_t)max_rows * 16);
    o.reg_w = arena_alloc(ar, (size_t)max_rows * 16), o.gt_index = arena_alloc(ar, (size_t)max_rows * 4);
    o.image = arena_alloc(ar, (size_t)max_rows * 4), o.fg_rois = arena_alloc(ar, (size_t)max_rows * 20);
    o.fg_cls = arena_alloc(ar, (size_t)max_rows * 4);
    o.fg_masks = h->cfg.mask_on ? arena_alloc(ar, (size_t)max_rows * M2 * sizeof(float)) : NULL;
    for (int n = 0; n < N; n++) sample_image(rt, h, &imgs[n], n, seed, step, &o);
    int R = o.R;
    out.num_rois = R, out.num_fg = o.R_fg, out.bad_mask_targets = o.bad_masks;

    /* box branch */
    tensor *rois = upload_f(rt, dev, dt, o.rois, TSHAPE(R, 5));
    tensor *x = box_features(rt, h, feats, rois);
    tensor *logits = cls_logits(rt, h, x);
    tensor *deltas = nn_linear_forward(rt, &h->bbox_pred, x);
    loss_rows lr = {.R = R, .labels = upload_i(rt, dev, o.labels, R), .gt_index = o.gt_index, .image_index = o.image,
                    .is_memory = NULL, .num_images = N, .step = (int64_t)step};
    out.cls = h->loss.entry->forward(&h->loss, rt, logits, &lr);
    tensor *d = h->cfg.cls_agnostic ? deltas : op_gather_group(rt, deltas, upload_i(rt, dev, o.group, R), 4);
    tensor *bt = upload_f(rt, dev, dt, o.reg_t, TSHAPE(R, 4)), *bw = upload_f(rt, dev, dt, o.reg_w, TSHAPE(R, 4));
    out.box_reg = op_smooth_l1(rt, d, bt, bw, h->cfg.box_beta, (double)R);
    if (h->cfg.box_weight != 1) out.box_reg = op_scale(rt, out.box_reg, h->cfg.box_weight);

    /* mask branch on the fg rows */
    if (h->cfg.mask_on && o.R_fg > 0) {
        int F = o.R_fg;
        tensor *fr = upload_f(rt, dev, dt, o.fg_rois, TSHAPE(F, 5));
        tensor *ml = mask_logits(rt, h, feats, fr, upload_i(rt, dev, o.fg_cls, F));
        tensor *mt = upload_f(rt, dev, dt, o.fg_masks, TSHAPE(F, MASK_TARGET_SIZE, MASK_TARGET_SIZE, 1));
        out.mask = op_bce_logits(rt, ml, mt, NULL, (double)F * (double)M2);
    }
    return out;
}

/* ---- inference ----------------------------------------------------------------------- */

tensor *roi_heads_boxes(runtime *rt, roi_heads *h, tensor *const *feats, tensor *rois, tensor **deltas) {
    tensor *x = box_features(rt, h, feats, rois);
    tensor *logits = cls_logits(rt, h, x);
    *deltas = nn_linear_forward(rt, &h->bbox_pred, x);
    return h->loss.entry->scores(&h->loss, rt, logits);
}

tensor *roi_heads_masks(runtime *rt, roi_heads *h, tensor *const *feats, tensor *rois, tensor *cls) {
    CHECK(h->cfg.mask_on, "roi_heads: masks asked of a model without a mask head");
    return mask_logits(rt, h, feats, rois, cls);
}

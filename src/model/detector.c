/* detector.c: Mask R-CNN assembled from its parts (detector.h). */
#include "model/detector.h"

#include "core/arena.h"
#include "core/check.h"
#include "model/model_config.h"
#include "model/postprocess.h"
#include "ops/pointwise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int detector_config_from(const config *c, int K, detector_config *out, char *err, size_t errn) {
    memset(out, 0, sizeof *out);
    if (model_backbone_config(c, &out->backbone, err, errn)) return -1;
    if (model_rpn_config(c, out->backbone.fpn_channels, &out->rpn, err, errn)) return -1;
    if (model_roi_heads_config(c, K, out->backbone.fpn_channels, &out->roi, err, errn)) return -1;
    out->score_thresh = (float)config_float(c, "eval.score_thresh");
    out->nms_thresh = (float)config_float(c, "eval.nms_thresh");
    out->max_dets = (int)config_int(c, "eval.max_dets");
    if (out->max_dets < 1 || out->max_dets > 100000) {
        snprintf(err, errn, "eval.max_dets %d: expected 1..100000", out->max_dets);
        return -1;
    }
    if (!(out->nms_thresh > 0 && out->nms_thresh <= 1)) {
        snprintf(err, errn, "eval.nms_thresh %g: expected (0, 1]", (double)out->nms_thresh);
        return -1;
    }
    return 0;
}

static void add_list(detector *d, const param_list *l) {
    for (int i = 0; i < l->n; i++) {
        d->tensors[d->n_tensors] = l->items[i].t;
        d->kinds[d->n_tensors++] = l->items[i].kind;
    }
}

void detector_init(detector *d, const detector_config *cfg, const loss_class_stats *stats, dtype dt, device dev) {
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    backbone_config bc = cfg->backbone;
    bc.dtype = dt;
    backbone_init(&d->bb, &bc, dev);
    rpn_init(&d->rpn, &cfg->rpn, dt, dev, bc.seed);
    roi_heads_init(&d->roi, &cfg->roi, stats, dt, dev, bc.seed);
    int n = d->bb.params.n + d->rpn.head.params.n + d->roi.params.n;
    d->tensors = calloc((size_t)n, sizeof *d->tensors);
    d->kinds = calloc((size_t)n, sizeof *d->kinds);
    CHECK(d->tensors && d->kinds, "out of memory");
    add_list(d, &d->bb.params);
    add_list(d, &d->rpn.head.params);
    add_list(d, &d->roi.params);
}

void detector_free(detector *d) {
    roi_heads_free(&d->roi);
    rpn_free(&d->rpn);
    backbone_free(&d->bb);
    free(d->tensors);
    free(d->kinds);
    memset(d, 0, sizeof *d);
}

/* The batch's pixels as a tensor on the runtime's device. */
static tensor *batch_pixels(runtime *rt, const detector *d, const loader_batch *b) {
    int shape[4] = {b->n, b->canvas_h, b->canvas_w, 3};
    tensor host = tensor_view(b->pixels, DTYPE_F32, DEVICE_CPU, shape, 4);
    dtype dt = d->bb.cfg.dtype;
    device dev = d->bb.stem.w.device;
    tensor *x = runtime_tensor(rt, dev, dt, shape, 4);
    if (dt == DTYPE_F64) {
        for (int64_t i = 0; i < tensor_numel(x); i++) tensor_f64(x)[i] = b->pixels[i];
        return x;
    }
    tensor_copy(x, &host);
    return x;
}

/* Every GT's polygons as mask_polys over the batch's vertices in double. */
static mask_polys *batch_polys(runtime *rt, const loader_batch *b) {
    if (b->n_gt == 0) return NULL;
    double *xy = arena_alloc(&rt->host, (size_t)(b->n_vert > 0 ? b->n_vert : 1) * sizeof *xy);
    for (int64_t i = 0; i < b->n_vert; i++) xy[i] = b->verts[i];
    mask_polys *p = arena_alloc(&rt->host, (size_t)b->n_gt * sizeof *p);
    for (int g = 0; g < b->n_gt; g++) {
        int first = b->gt_first_poly[g];
        p[g] = (mask_polys){xy, b->gt_n_poly[g] ? b->poly_first + first : NULL, b->gt_n_poly[g] ? b->poly_n + first : NULL,
                            b->gt_n_poly[g]};
    }
    return p;
}

static void add_term(detector_losses *o, const char *name, tensor *t) {
    if (!t) return;
    CHECK(o->n < DETECTOR_MAX_TERMS, "detector: too many loss terms");
    o->name[o->n] = name, o->term[o->n++] = t;
}

detector_losses detector_train_forward(runtime *rt, detector *d, const loader_batch *b, uint64_t seed, uint64_t step) {
    detector_losses o;
    memset(&o, 0, sizeof o);
    int N = b->n;
    tensor *x = batch_pixels(rt, d, b);
    backbone_out bo = backbone_forward(rt, &d->bb, x);

    rpn_image *ri = arena_alloc(&rt->host, (size_t)N * sizeof *ri);
    rpn_proposals *props = arena_alloc(&rt->host, (size_t)N * sizeof *props);
    int post = d->rpn.cfg.train.post_nms_topk;
    for (int n = 0; n < N; n++) {
        const loader_image *im = &b->img[n];
        ri[n] = (rpn_image){(float)im->h, (float)im->w, b->gt_box + 4 * (int64_t)im->first_gt, im->n_gt};
        props[n] = (rpn_proposals){arena_alloc(&rt->host, (size_t)post * 16), arena_alloc(&rt->host, (size_t)post * 4),
                                   arena_alloc(&rt->host, (size_t)post * 4), 0, 0};
    }
    rpn_result rr = rpn_forward(rt, &d->rpn, bo.p, b->canvas_h, b->canvas_w, ri, N, 1, seed, step, props);
    o.rpn_pos = rr.num_pos, o.n_nonfinite = rr.n_nonfinite;
    add_term(&o, "loss_rpn_cls", rr.loss_cls);
    add_term(&o, "loss_rpn_loc", rr.loss_loc);

    mask_polys *polys = batch_polys(rt, b);
    roi_image *im = arena_alloc(&rt->host, (size_t)N * sizeof *im);
    for (int n = 0; n < N; n++) {
        const loader_image *li = &b->img[n];
        im[n] = (roi_image){props[n].boxes, props[n].count, b->gt_box + 4 * (int64_t)li->first_gt,
                            b->gt_class + li->first_gt, polys ? polys + li->first_gt : NULL, li->n_gt};
    }
    roi_losses rl = roi_heads_train(rt, &d->roi, bo.p, im, N, seed, step);
    for (int i = 0; i < rl.cls.n; i++) add_term(&o, rl.cls.name[i], rl.cls.value[i]);
    add_term(&o, "loss_box_reg", rl.box_reg);
    add_term(&o, "loss_mask", rl.mask);
    o.num_rois = rl.num_rois, o.num_fg = rl.num_fg, o.bad_mask_targets = rl.bad_mask_targets;
    o.total = o.term[0];
    for (int i = 1; i < o.n; i++) o.total = op_add(rt, o.total, o.term[i]);
    return o;
}

/* ---- inference ----------------------------------------------------------------------- */

void detector_dets_alloc(detector_dets *o, int max_dets, int with_masks) {
    memset(o, 0, sizeof *o);
    o->boxes = malloc((size_t)max_dets * 16);
    o->scores = malloc((size_t)max_dets * 4);
    o->classes = malloc((size_t)max_dets * 4);
    o->masks = with_masks ? malloc((size_t)max_dets * MASK_TARGET_SIZE * MASK_TARGET_SIZE * 4) : NULL;
    CHECK(o->boxes && o->scores && o->classes && (o->masks || !with_masks), "out of memory");
}

void detector_dets_free(detector_dets *o) {
    free(o->boxes), free(o->scores), free(o->classes), free(o->masks);
    memset(o, 0, sizeof *o);
}

/* A host f32 copy of a device or host tensor (step arena). */
static float *host_f32(runtime *rt, const tensor *t) {
    int64_t n = tensor_numel(t);
    float *h = arena_alloc(&rt->host, (size_t)(n > 0 ? n : 1) * sizeof *h);
    if (t->dtype == DTYPE_F64) {
        for (int64_t i = 0; i < n; i++) h[i] = (float)tensor_f64(t)[i];
        return h;
    }
    tensor v = tensor_view(h, DTYPE_F32, DEVICE_CPU, t->shape, t->ndim);
    tensor_copy(&v, t);
    return h;
}

static tensor *rois_tensor(runtime *rt, const detector *d, const float *host, int R) {
    tensor *t = runtime_tensor(rt, d->bb.stem.w.device, d->bb.cfg.dtype, TSHAPE(R > 0 ? R : 1, 5));
    if (t->dtype == DTYPE_F64) {
        for (int64_t i = 0; i < (int64_t)R * 5; i++) tensor_f64(t)[i] = host[i];
        return t;
    }
    tensor v = tensor_view((void *)host, DTYPE_F32, DEVICE_CPU, TSHAPE(R > 0 ? R : 1, 5));
    tensor_copy(t, &v);
    return t;
}

void detector_infer(runtime *rt, detector *d, const loader_batch *b, detector_dets *out) {
    int was = rt->tape.enabled;
    rt->tape.enabled = 0;
    int N = b->n, K = d->roi.cfg.K, post = d->rpn.cfg.test.post_nms_topk, M2 = MASK_TARGET_SIZE * MASK_TARGET_SIZE;
    tensor *x = batch_pixels(rt, d, b);
    backbone_out bo = backbone_forward(rt, &d->bb, x);
    rpn_image *ri = arena_alloc(&rt->host, (size_t)N * sizeof *ri);
    rpn_proposals *props = arena_alloc(&rt->host, (size_t)N * sizeof *props);
    for (int n = 0; n < N; n++) {
        ri[n] = (rpn_image){(float)b->img[n].h, (float)b->img[n].w, NULL, 0};
        props[n] = (rpn_proposals){arena_alloc(&rt->host, (size_t)post * 16), arena_alloc(&rt->host, (size_t)post * 4),
                                   arena_alloc(&rt->host, (size_t)post * 4), 0, 0};
    }
    rpn_forward(rt, &d->rpn, bo.p, b->canvas_h, b->canvas_w, ri, N, 0, 0, 0, props);
    int R = 0;
    for (int n = 0; n < N; n++) R += props[n].count;
    for (int n = 0; n < N; n++) out[n].n = 0;
    if (R == 0) {
        rt->tape.enabled = was;
        return;
    }
    float *rh = arena_alloc(&rt->host, (size_t)R * 20);
    int *first = arena_alloc(&rt->host, (size_t)(N + 1) * sizeof *first);
    for (int n = 0, r = 0; n < N; n++) {
        first[n] = r;
        for (int i = 0; i < props[n].count; i++, r++) {
            rh[5 * r] = (float)n;
            memcpy(rh + 5 * r + 1, props[n].boxes + 4 * i, 16);
        }
        first[n + 1] = r;
    }
    tensor *deltas;
    tensor *scores = roi_heads_boxes(rt, &d->roi, bo.p, rois_tensor(rt, d, rh, R), &deltas);
    float *sc = host_f32(rt, scores), *dl = host_f32(rt, deltas);
    int dw = deltas->shape[1];
    int32_t *src = arena_alloc(&rt->host, (size_t)d->cfg.max_dets * sizeof *src);
    int D = 0;
    for (int n = 0; n < N; n++) {
        int P = props[n].count;
        det_params dp = {d->roi.cfg.coder, d->cfg.score_thresh, d->cfg.nms_thresh, d->cfg.max_dets};
        det_output dout = {out[n].boxes, out[n].scores, out[n].classes, src, 0, 0};
        detections_from_head(rt, &dp, props[n].boxes, sc + (int64_t)first[n] * K, dl + (int64_t)first[n] * dw, P, K,
                             dw == 4 && K > 1, (float)b->img[n].h, (float)b->img[n].w, &dout);
        out[n].n = dout.n;
        D += dout.n;
    }
    if (d->roi.cfg.mask_on && D > 0) {
        float *mr = arena_alloc(&rt->host, (size_t)D * 20);
        int32_t *mc = arena_alloc(&rt->host, (size_t)D * 4);
        for (int n = 0, k = 0; n < N; n++)
            for (int i = 0; i < out[n].n; i++, k++) {
                mr[5 * k] = (float)n;
                memcpy(mr + 5 * k + 1, out[n].boxes + 4 * i, 16);
                mc[k] = out[n].classes[i];
            }
        tensor *cls = runtime_tensor(rt, d->bb.stem.w.device, DTYPE_I32, TSHAPE(D));
        tensor cv = tensor_view(mc, DTYPE_I32, DEVICE_CPU, TSHAPE(D));
        tensor_copy(cls, &cv);
        tensor *ml = roi_heads_masks(rt, &d->roi, bo.p, rois_tensor(rt, d, mr, D), cls);
        float *mh = host_f32(rt, ml);
        for (int n = 0, k = 0; n < N; n++)
            for (int i = 0; i < out[n].n; i++, k++)
                for (int j = 0; j < M2; j++)
                    out[n].masks[(int64_t)i * M2 + j] = 1.f / (1.f + expf(-mh[(int64_t)k * M2 + j]));
    }
    rt->tape.enabled = was;
}

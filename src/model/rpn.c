/* rpn.c: the RPN of a batch: head, anchors, targets, losses, proposals (rpn.h). */
#include "model/rpn.h"

#include "core/arena.h"
#include "core/check.h"
#include "ops/loss.h"
#include "ops/pointwise.h"

#include <math.h>
#include <string.h>

rpn_config rpn_config_d2(int channels) {
    rpn_config c;
    memset(&c, 0, sizeof c);
    c.channels = channels;
    c.target = rpn_target_cfg_default();
    c.train = rpn_proposal_cfg_train();
    c.test = rpn_proposal_cfg_test();
    c.normaliser = RPN_NORM_BATCH;
    c.smooth_l1_beta = 0;
    c.anchor_filter = RPN_ANCHORS_ALL;
    c.size_divisibility = 32;
    c.cls_weight = c.loc_weight = 1;
    return c;
}

rpn_config rpn_config_mmdet(int channels, int cascade) {
    rpn_config c = rpn_config_d2(channels);
    c.target.match.variant = MATCH_VARIANT_MMDET;
    c.target.match.min_pos_iou = 0.3f;
    c.normaliser = RPN_NORM_SAMPLED;
    c.train.clamp_below = c.test.clamp_below = 1;
    c.anchor_filter = cascade ? RPN_ANCHORS_INSIDE : RPN_ANCHORS_IMAGE;
    if (cascade) c.smooth_l1_beta = 1.0 / 9.0, c.train.post_nms_topk = 2000;
    return c;
}

void rpn_init(rpn *m, const rpn_config *cfg, dtype dt, device dev, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    rpn_head_init(&m->head, cfg->channels, ANCHOR_PER_LOC, dt, dev, seed);
}

void rpn_free(rpn *m) {
    rpn_head_free(&m->head);
    memset(m, 0, sizeof *m);
}

void rpn_anchor_valid(const rpn_config *cfg, const anchor_layout *lay, const float *anchors, float img_h,
                      float img_w, uint8_t *valid) {
    int64_t A = anchor_total(lay);
    if (cfg->anchor_filter == RPN_ANCHORS_ALL) {
        memset(valid, 1, (size_t)A);
        return;
    }
    int sd = cfg->size_divisibility > 0 ? cfg->size_divisibility : 1;
    /* mmdet valid_flags: the image's own padded extent, in cells of each level */
    double pad_h = ceil((double)img_h / sd) * sd, pad_w = ceil((double)img_w / sd) * sd;
    for (int l = 0; l < ANCHOR_LEVELS; l++) {
        int vh = (int)ceil(pad_h / lay->stride[l]), vw = (int)ceil(pad_w / lay->stride[l]);
        if (vh > lay->h[l]) vh = lay->h[l];
        if (vw > lay->w[l]) vw = lay->w[l];
        for (int y = 0; y < lay->h[l]; y++)
            for (int x = 0; x < lay->w[l]; x++) {
                uint8_t v = y < vh && x < vw;
                int64_t a0 = lay->off[l] + ((int64_t)y * lay->w[l] + x) * ANCHOR_PER_LOC;
                for (int r = 0; r < ANCHOR_PER_LOC; r++) valid[a0 + r] = v;
            }
    }
    if (cfg->anchor_filter != RPN_ANCHORS_INSIDE) return;
    /* mmdet anchor_inside_flags with allowed_border 0: inside the unpadded image */
    for (int64_t a = 0; a < A; a++) {
        const float *b = anchors + a * 4;
        if (valid[a]) valid[a] = b[0] >= 0.f && b[1] >= 0.f && b[2] < img_w && b[3] < img_h;
    }
}

/* A step tensor shaped like x on x's device, filled from the host doubles v (converted to x's
 * dtype). */
static tensor *upload_like(runtime *rt, const tensor *x, const float *v) {
    tensor *t = runtime_tensor(rt, x->device, x->dtype, x->shape, x->ndim);
    int64_t n = tensor_numel(x);
    if (x->device == DEVICE_CPU && x->dtype == DTYPE_F32) {
        memcpy(t->data, v, (size_t)n * sizeof(float));
    } else if (x->device == DEVICE_CPU) {
        for (int64_t i = 0; i < n; i++) tensor_f64(t)[i] = v[i];
    } else {
        tensor h = tensor_view((void *)v, DTYPE_F32, DEVICE_CPU, x->shape, x->ndim);
        tensor_copy(t, &h);
    }
    return t;
}

/* Level l's values of image n (count_l·per floats) into dst (f32 host), from x [N, H, W, C]
 * in its dtype on its device. */
static void image_slice(runtime *rt, const tensor *x, int n, float *dst) {
    int64_t per_image = tensor_numel(x) / x->shape[0];
    if (x->device != DEVICE_CPU) {
        CHECK(x->dtype == DTYPE_F32, "rpn: GPU head outputs must be f32");
        tensor src = tensor_view((char *)x->data + (size_t)n * per_image * sizeof(float), DTYPE_F32, x->device,
                                 TSHAPE((int)per_image));
        tensor d = tensor_view(dst, DTYPE_F32, DEVICE_CPU, TSHAPE((int)per_image));
        tensor_copy(&d, &src);
    } else if (x->dtype == DTYPE_F32) {
        memcpy(dst, tensor_f32(x) + n * per_image, (size_t)per_image * sizeof(float));
    } else {
        for (int64_t i = 0; i < per_image; i++) dst[i] = (float)tensor_f64(x)[n * per_image + i];
    }
    (void)rt;
}

static tensor *sum_or_first(runtime *rt, tensor *acc, tensor *x) { return acc ? op_add(rt, acc, x) : x; }

rpn_result rpn_forward(runtime *rt, const rpn *m, tensor *const *feats, int canvas_h, int canvas_w,
                       const rpn_image *imgs, int N, int training, uint64_t seed, uint64_t step,
                       rpn_proposals *props) {
    const rpn_config *cfg = &m->cfg;
    rpn_result res;
    memset(&res, 0, sizeof res);
    anchor_layout lay = anchor_layout_make(canvas_h, canvas_w);
    for (int l = 0; l < ANCHOR_LEVELS; l++)
        CHECK(feats[l]->ndim == 4 && feats[l]->shape[0] == N && feats[l]->shape[1] == lay.h[l] &&
                  feats[l]->shape[2] == lay.w[l],
              "rpn: level P%d is %dx%d (batch %d), the %dx%d canvas needs %dx%d (batch %d)", l + 2,
              feats[l]->shape[1], feats[l]->shape[2], feats[l]->shape[0], canvas_h, canvas_w, lay.h[l], lay.w[l], N);
    rpn_head_out ho = rpn_head_forward(rt, &m->head, feats, ANCHOR_LEVELS);

    int64_t A = anchor_total(&lay);
    CHECK(A < INT32_MAX / 4, "rpn: %lld anchors", (long long)A);
    tensor *anchors = runtime_tensor(rt, DEVICE_CPU, DTYPE_F32, TSHAPE((int)A, 4));
    anchors_fill_cpu(&lay, tensor_f32(anchors));
    arena *h = &rt->host;
    /* per-image logits [A] and deltas [A, 4] in anchor order, f32 host */
    float *logit = arena_alloc(h, (size_t)A * sizeof *logit), *delta = arena_alloc(h, (size_t)A * 16);

    float *t_cls[ANCHOR_LEVELS], *w_cls[ANCHOR_LEVELS], *t_loc[ANCHOR_LEVELS], *w_loc[ANCHOR_LEVELS];
    int8_t *labels = NULL;
    int32_t *matched = NULL;
    uint8_t *valid = NULL;
    int32_t *sampled = NULL;
    float *sdeltas = NULL;
    if (training) {
        for (int l = 0; l < ANCHOR_LEVELS; l++) {
            size_t n = (size_t)N * lay.count[l];
            t_cls[l] = arena_alloc(h, n * sizeof(float)), w_cls[l] = arena_alloc(h, n * sizeof(float));
            t_loc[l] = arena_alloc(h, 4 * n * sizeof(float)), w_loc[l] = arena_alloc(h, 4 * n * sizeof(float));
            memset(t_cls[l], 0, n * sizeof(float)), memset(w_cls[l], 0, n * sizeof(float));
            memset(t_loc[l], 0, 4 * n * sizeof(float)), memset(w_loc[l], 0, 4 * n * sizeof(float));
        }
        labels = arena_alloc(h, (size_t)A), matched = arena_alloc(h, (size_t)A * sizeof *matched);
        if (cfg->anchor_filter != RPN_ANCHORS_ALL) valid = arena_alloc(h, (size_t)A);
        CHECK(cfg->target.batch <= MATCH_MAX_BATCH, "rpn: batch_size_per_image %d > %d", cfg->target.batch,
              MATCH_MAX_BATCH);
        sdeltas = arena_alloc(h, (size_t)cfg->target.batch * 16);
        sampled = arena_alloc(h, (size_t)cfg->target.batch * sizeof *sampled);
    }

    int32_t off[ANCHOR_LEVELS + 1];
    for (int l = 0; l <= ANCHOR_LEVELS; l++) off[l] = (int32_t)lay.off[l];
    const rpn_proposal_cfg *pc = training ? &cfg->train : &cfg->test;
    for (int n = 0; n < N; n++) {
        if (training) {
            const rpn_image *im = &imgs[n];
            tensor g = tensor_view((void *)im->gt, DTYPE_F32, DEVICE_CPU, TSHAPE(im->n_gt > 0 ? im->n_gt : 1, 4));
            if (valid) rpn_anchor_valid(cfg, &lay, tensor_f32(anchors), im->h, im->w, valid);
            rpn_targets out = {labels, matched, sampled, sdeltas, 0, 0};
            rpn_targets_cpu(rt, &cfg->target, anchors, im->n_gt > 0 ? &g : NULL, valid, seed, step, n, &out);
            res.num_pos += out.num_pos, res.num_sampled += out.num_sampled;
            for (int i = 0; i < out.num_sampled; i++) {
                int64_t a = sampled[i];
                int l = 0;
                while (a >= lay.off[l + 1]) l++;
                int64_t e = (int64_t)n * lay.count[l] + (a - lay.off[l]);
                w_cls[l][e] = 1.f;
                if (i < out.num_pos) {
                    t_cls[l][e] = 1.f;
                    for (int j = 0; j < 4; j++) t_loc[l][4 * e + j] = sdeltas[4 * i + j], w_loc[l][4 * e + j] = 1.f;
                }
            }
        }
        if (!props) continue;
        for (int l = 0; l < ANCHOR_LEVELS; l++) {
            image_slice(rt, ho.logits[l], n, logit + lay.off[l]);
            image_slice(rt, ho.deltas[l], n, delta + 4 * lay.off[l]);
        }
        tensor lg = tensor_view(logit, DTYPE_F32, DEVICE_CPU, TSHAPE((int)A));
        tensor dl = tensor_view(delta, DTYPE_F32, DEVICE_CPU, TSHAPE((int)A, 4));
        rpn_proposals_cpu(rt, pc, anchors, &lg, &dl, off, ANCHOR_LEVELS, imgs[n].h, imgs[n].w, &props[n]);
        res.n_nonfinite += props[n].n_nonfinite;
    }
    if (!training) return res;

    double norm = cfg->normaliser == RPN_NORM_BATCH ? (double)cfg->target.batch * N
                                                    : (double)(res.num_sampled > 0 ? res.num_sampled : 1);
    res.normaliser = norm;
    tensor *cls = NULL, *loc = NULL;
    for (int l = 0; l < ANCHOR_LEVELS; l++) {
        tensor *x = ho.logits[l], *d = ho.deltas[l];
        cls = sum_or_first(rt, cls, op_bce_logits(rt, x, upload_like(rt, x, t_cls[l]), upload_like(rt, x, w_cls[l]),
                                                   norm));
        loc = sum_or_first(rt, loc, op_smooth_l1(rt, d, upload_like(rt, d, t_loc[l]), upload_like(rt, d, w_loc[l]),
                                                 cfg->smooth_l1_beta, norm));
    }
    res.loss_cls = cfg->cls_weight == 1 ? cls : op_scale(rt, cls, cfg->cls_weight);
    res.loss_loc = cfg->loc_weight == 1 ? loc : op_scale(rt, loc, cfg->loc_weight);
    return res;
}

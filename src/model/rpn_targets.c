/* rpn_targets.c: RPN training targets and proposals for one image (rpn_targets.h). */
#include "model/rpn_targets.h"

#include "core/check.h"
#include "ops/boxes.h"
#include "ops/nms.h"

#include <math.h>
#include <string.h>

rpn_target_cfg rpn_target_cfg_default(void) {
    rpn_target_cfg c;
    c.match = match_cfg_rpn();
    c.batch = 256;
    c.pos_fraction = 0.5;
    c.chunk = 8192;
    return c;
}

rpn_proposal_cfg rpn_proposal_cfg_train(void) { return (rpn_proposal_cfg){2000, 1000, 0.7, 0.f, 0}; }
rpn_proposal_cfg rpn_proposal_cfg_test(void) { return (rpn_proposal_cfg){1000, 1000, 0.7, 0.f, 0}; }

static tensor *scratch(runtime *rt, dtype t, int rows, int cols) {
    /* never a zero-size request: the arena hands back a valid pointer for one row */
    if (cols > 0) return runtime_tensor(rt, DEVICE_CPU, t, TSHAPE(rows > 0 ? rows : 1, cols));
    return runtime_tensor(rt, DEVICE_CPU, t, TSHAPE(rows > 0 ? rows : 1));
}

static void expect_box_tensor(const char *what, const tensor *t) {
    CHECK(t && t->device == DEVICE_CPU && t->dtype == DTYPE_F32 && t->ndim == 2 && t->shape[1] == 4,
          "rpn: %s must be a CPU f32 [n, 4] tensor", what);
}

/* Both matcher passes over the anchors in chunks of cfg->chunk columns; the IoU of a chunk
 * is recomputed in pass 2 (the same f32 operations, so the matcher's == holds). Columns of
 * anchors that are not valid are zeroed in both passes. */
static void match_streamed(runtime *rt, const rpn_target_cfg *cfg, const tensor *anchors, const tensor *gt, int G,
                           int64_t A, const uint8_t *valid, int8_t *labels, int32_t *matched) {
    float *best = tensor_f32(scratch(rt, DTYPE_F32, (int)A, 0));
    if (G == 0) {
        for (int64_t a = 0; a < A; a++) matched[a] = -1;
        match_threshold(&cfg->match, 0, A, best, labels);
        return;
    }
    int chunk = cfg->chunk;
    float *gt_max = tensor_f32(scratch(rt, DTYPE_F32, G, 0));
    tensor *iou_buf = scratch(rt, DTYPE_F32, G, chunk);
    match_begin(G, gt_max);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !cfg->match.allow_low_quality) break;
        for (int64_t a0 = 0; a0 < A; a0 += chunk) {
            int n = (int)(A - a0 < chunk ? A - a0 : chunk);
            tensor iou = tensor_view(iou_buf->data, DTYPE_F32, DEVICE_CPU, TSHAPE(G, n));
            box_iou_cpu(rt, gt, anchors, (int)a0, (int)a0 + n, &iou);
            if (valid)
                for (int j = 0; j < n; j++)
                    if (!valid[a0 + j])
                        for (int gi = 0; gi < G; gi++) tensor_f32(&iou)[(int64_t)gi * n + j] = 0.f;
            if (pass == 0) match_scan_chunk(tensor_f32(&iou), n, G, a0, n, gt_max, best, matched);
            else match_low_quality_chunk(&cfg->match, tensor_f32(&iou), n, G, a0, n, gt_max, matched, labels);
        }
        if (pass == 0) match_threshold(&cfg->match, G, A, best, labels);
    }
}

void rpn_targets_cpu(runtime *rt, const rpn_target_cfg *cfg, const tensor *anchors, const tensor *gt,
                     const uint8_t *valid, uint64_t seed, uint64_t step, int image, rpn_targets *out) {
    expect_box_tensor("anchors", anchors);
    int G = gt ? gt->shape[0] : 0;
    if (gt) expect_box_tensor("gt boxes", gt);
    int64_t A = anchors->shape[0];
    CHECK(cfg->chunk > 0 && cfg->batch > 0 && cfg->batch <= MATCH_MAX_BATCH, "rpn targets: chunk %d, batch %d",
          cfg->chunk, cfg->batch);
    const float *g = G ? tensor_f32(gt) : NULL;
    for (int i = 0; i < G * 4; i++)
        CHECK(isfinite(g[i]), "rpn targets: image %d: gt box %d has a non-finite coordinate %g", image, i / 4,
              (double)g[i]);

    match_streamed(rt, cfg, anchors, gt, G, A, valid, out->labels, out->matched);
    if (valid)
        for (int64_t a = 0; a < A; a++)
            if (!valid[a]) out->labels[a] = -1;

    rng r = match_sample_rng(seed, step, image, MATCH_STAGE_RPN);
    int32_t *perm = tensor_i32(scratch(rt, DTYPE_I32, (int)A, 0));
    out->num_sampled = match_subsample(&r, out->labels, A, cfg->batch, cfg->pos_fraction, perm, out->sampled,
                                       &out->num_pos);

    int P = out->num_pos;
    if (P == 0) return;
    tensor *src = scratch(rt, DTYPE_F32, P, 4), *tgt = scratch(rt, DTYPE_F32, P, 4);
    const float *an = tensor_f32(anchors);
    for (int i = 0; i < P; i++) {
        int32_t a = out->sampled[i], m = out->matched[a];
        memcpy(tensor_f32(src) + 4 * i, an + (int64_t)a * 4, 16);
        memcpy(tensor_f32(tgt) + 4 * i, g + (int64_t)m * 4, 16);
    }
    tensor d = tensor_view(out->deltas, DTYPE_F32, DEVICE_CPU, TSHAPE(P, 4));
    box_coder coder = box_coder_rpn();
    box_encode_cpu(rt, &coder, src, tgt, &d);
}

/* ====================================== proposals ===================================== */

/* Candidates: the per-level top k, gathered and decoded. Returns their count n; writes
 * boxes [n,4], scores [n], keys [n] (level ids). */
static int gather_top(runtime *rt, const rpn_proposal_cfg *cfg, const tensor *anchors, const tensor *logits,
                      const tensor *deltas, const int32_t *off, int L, tensor *boxes, float *scores, int32_t *keys) {
    int k = cfg->pre_nms_topk;
    tensor *idx = scratch(rt, DTYPE_I32, L, k);
    topk_segments_cpu(rt, logits, off, L, k, idx);
    tensor *src = scratch(rt, DTYPE_F32, L * k, 4), *del = scratch(rt, DTYPE_F32, L * k, 4);
    int n = 0;
    for (int l = 0; l < L; l++)
        for (int j = 0; j < k; j++) {
            int32_t a = tensor_i32(idx)[(int64_t)l * k + j];
            if (a < 0) break;
            memcpy(tensor_f32(src) + 4 * n, tensor_f32(anchors) + (int64_t)a * 4, 16);
            memcpy(tensor_f32(del) + 4 * n, tensor_f32(deltas) + (int64_t)a * 4, 16);
            scores[n] = tensor_f32(logits)[a];
            keys[n] = l;
            n++;
        }
    if (n == 0) return 0;
    tensor s = tensor_view(src->data, DTYPE_F32, DEVICE_CPU, TSHAPE(n, 4));
    tensor d = tensor_view(del->data, DTYPE_F32, DEVICE_CPU, TSHAPE(n, 4));
    tensor o = tensor_view(boxes->data, DTYPE_F32, DEVICE_CPU, TSHAPE(n, 4));
    box_coder coder = box_coder_rpn();
    coder.clamp_below = cfg->clamp_below;
    box_decode_cpu(rt, &coder, &s, &d, &o);
    return n;
}

/* Drops non-finite candidates (counted) in place, clips, drops boxes no larger than
 * min_size; returns the new count, order kept. */
static int filter_candidates(runtime *rt, const rpn_proposal_cfg *cfg, int n, float *b, float *scores, int32_t *keys,
                             float img_h, float img_w, int *n_nonfinite) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        const float *p = b + 4 * i;
        if (!(isfinite(p[0]) && isfinite(p[1]) && isfinite(p[2]) && isfinite(p[3]) && isfinite(scores[i]))) {
            (*n_nonfinite)++;
            continue;
        }
        memmove(b + 4 * m, p, 16);
        scores[m] = scores[i];
        keys[m] = keys[i];
        m++;
    }
    if (m == 0) return 0;
    tensor bt = tensor_view(b, DTYPE_F32, DEVICE_CPU, TSHAPE(m, 4));
    box_clip_cpu(rt, &bt, img_h, img_w);
    tensor *keep = scratch(rt, DTYPE_U8, m, 0);
    box_nonempty_cpu(rt, &bt, cfg->min_size, keep);
    int q = 0;
    for (int i = 0; i < m; i++) {
        if (!tensor_u8(keep)[i]) continue;
        memmove(b + 4 * q, b + 4 * i, 16);
        scores[q] = scores[i];
        keys[q] = keys[i];
        q++;
    }
    return q;
}

void rpn_proposals_cpu(runtime *rt, const rpn_proposal_cfg *cfg, const tensor *anchors, const tensor *logits,
                       const tensor *deltas, const int32_t *off, int L, float img_h, float img_w,
                       rpn_proposals *out) {
    expect_box_tensor("anchors", anchors);
    expect_box_tensor("deltas", deltas);
    int64_t A = anchors->shape[0];
    CHECK(deltas->shape[0] == A && logits->device == DEVICE_CPU && logits->dtype == DTYPE_F32 &&
              tensor_numel(logits) == A,
          "rpn proposals: %lld anchors, %d delta rows, %lld logits", (long long)A, deltas->shape[0],
          (long long)tensor_numel(logits));
    CHECK(L >= 1 && off[0] == 0 && off[L] == A, "rpn proposals: level offsets do not cover the %lld anchors",
          (long long)A);
    CHECK(cfg->pre_nms_topk > 0 && cfg->post_nms_topk > 0, "rpn proposals: top-k %d / %d", cfg->pre_nms_topk,
          cfg->post_nms_topk);
    out->count = 0;
    out->n_nonfinite = 0;
    int cap = L * cfg->pre_nms_topk;
    tensor *boxes = scratch(rt, DTYPE_F32, cap, 4);
    tensor *scores = scratch(rt, DTYPE_F32, cap, 0);
    tensor *keys = scratch(rt, DTYPE_I32, cap, 0);
    int n = gather_top(rt, cfg, anchors, logits, deltas, off, L, boxes, tensor_f32(scores), tensor_i32(keys));
    n = filter_candidates(rt, cfg, n, tensor_f32(boxes), tensor_f32(scores), tensor_i32(keys), img_h, img_w,
                          &out->n_nonfinite);
    if (n == 0) return;
    tensor b = tensor_view(boxes->data, DTYPE_F32, DEVICE_CPU, TSHAPE(n, 4));
    tensor s = tensor_view(scores->data, DTYPE_F32, DEVICE_CPU, TSHAPE(n));
    tensor k = tensor_view(keys->data, DTYPE_I32, DEVICE_CPU, TSHAPE(n));
    tensor *keep = scratch(rt, DTYPE_I32, n, 0);
    int kept = batched_nms_cpu(rt, &b, &s, &k, cfg->nms_thresh, keep);
    if (kept > cfg->post_nms_topk) kept = cfg->post_nms_topk;
    for (int i = 0; i < kept; i++) {
        int32_t c = tensor_i32(keep)[i];
        memcpy(out->boxes + 4 * i, tensor_f32(&b) + 4 * c, 16);
        out->scores[i] = tensor_f32(&s)[c];
        out->levels[i] = tensor_i32(&k)[c];
    }
    out->count = kept;
}

/* test_anchors.c: the FPN anchors (src/model/anchors.h), the RPN training targets and the
 * RPN proposals (src/model/rpn_targets.h), on hand-made cases.
 *
 * Every expected number below is a hand computation, not an output of the code under test:
 * the anchor count at 800x1344 (architecture.md §4: 3·(200·336 + 100·168 + 50·84 + 25·42
 * + 13·21) = 268,569), the cell anchors (ratio 0.5: w = s·sqrt(2), h = s/sqrt(2), e.g.
 * s = 32: w = 45.254834, h = 22.627417), the shifted anchors, the proposal boxes after
 * decode / clip. Anchor coordinates: atol 1e-4 px (f32 rounding of values up to ~1500 px).
 * Matching and sampling invariants are checked against an IoU scan written here with
 * box_iou_one. */
#include "ops_test.h"

#include "model/anchors.h"
#include "model/rpn_targets.h"
#include "ops/boxes.h"

#include <stdint.h>

/* ---- anchors ------------------------------------------------------------------------- */

static void test_layout_800x1344(void) {
    anchor_layout lay = anchor_layout_make(800, 1344);
    const int want_h[5] = {200, 100, 50, 25, 13}, want_w[5] = {336, 168, 84, 42, 21};
    for (int l = 0; l < 5; l++) {
        EXPECT(lay.h[l] == want_h[l] && lay.w[l] == want_w[l], "P%d: %dx%d, want %dx%d", l + 2, lay.h[l], lay.w[l],
               want_h[l], want_w[l]);
        EXPECT(lay.stride[l] == (4 << l) && lay.size[l] == (float)(32 << l), "P%d stride %d size %g", l + 2,
               lay.stride[l], (double)lay.size[l]);
        EXPECT(lay.count[l] == 3LL * want_h[l] * want_w[l]);
    }
    EXPECT(anchor_total(&lay) == 268569, "A = %lld", (long long)anchor_total(&lay));
    EXPECT(lay.off[1] == 201600 && lay.off[2] == 252000, "off %lld %lld", (long long)lay.off[1],
           (long long)lay.off[2]);
}

static void test_layout_odd(void) {
    /* 100x60 by the convs: stem (100+6-7)/2+1 = 50, pool (50+2-3)/2+1 = 25, then 13, 7, 4,
     * P6 = 2; width 60 -> 30 -> 15, 8, 4, 2, P6 1. */
    anchor_layout lay = anchor_layout_make(100, 60);
    const int want_h[5] = {25, 13, 7, 4, 2}, want_w[5] = {15, 8, 4, 2, 1};
    for (int l = 0; l < 5; l++)
        EXPECT(lay.h[l] == want_h[l] && lay.w[l] == want_w[l], "P%d: %dx%d, want %dx%d", l + 2, lay.h[l], lay.w[l],
               want_h[l], want_w[l]);
    EXPECT(anchor_total(&lay) == 3 * (375 + 104 + 28 + 8 + 2));
}

static void test_anchor_values(void) {
    anchor_layout lay = anchor_layout_make(800, 1344);
    int64_t A = anchor_total(&lay);
    float *an = malloc((size_t)A * 16);
    REQUIRE(an);
    anchors_fill_cpu(&lay, an);
    /* hand values: s/sqrt(2) and s/(2 sqrt(2)) for s = 32 .. 512 */
    const double half_w[5] = {22.627417, 45.254834, 90.509668, 181.019336, 362.038672};
    const double half_h[5] = {11.3137085, 22.627417, 45.254834, 90.509668, 181.019336};
    double got[4 * 16], want[4 * 16];
    int n = 0;
    for (int l = 0; l < 5; l++) { /* first anchor of each level: ratio 0.5 at (0, 0) */
        const float *p = an + lay.off[l] * 4;
        double w4[4] = {-half_w[l], -half_h[l], half_w[l], half_h[l]};
        for (int j = 0; j < 4; j++) got[4 * n + j] = p[j], want[4 * n + j] = w4[j];
        n++;
    }
    { /* P2, ratio 1 and ratio 2 at (0, 0): (-16,-16,16,16), (-11.313708,-22.627417,..) */
        const float *p = an + 4;
        double w8[8] = {-16, -16, 16, 16, -11.3137085, -22.627417, 11.3137085, 22.627417};
        for (int j = 0; j < 8; j++) got[4 * n + j] = p[j], want[4 * n + j] = w8[j];
        n += 2;
    }
    { /* P2 at y = 1, x = 2, ratio 1: centre (8, 4) -> (-8, -12, 24, 20) */
        const float *p = an + (lay.off[0] + (1 * 336 + 2) * 3 + 1) * 4;
        double w4[4] = {-8, -12, 24, 20};
        for (int j = 0; j < 4; j++) got[4 * n + j] = p[j], want[4 * n + j] = w4[j];
        n++;
    }
    { /* last anchor: P6 at y = 12, x = 20, stride 64, ratio 2: centre (1280, 768),
       * half sizes 181.019336 (x), 362.038672 (y) */
        const float *p = an + (A - 1) * 4;
        double w4[4] = {1280 - 181.019336, 768 - 362.038672, 1280 + 181.019336, 768 + 362.038672};
        for (int j = 0; j < 4; j++) got[4 * n + j] = p[j], want[4 * n + j] = w4[j];
        n++;
    }
    { /* P4 at y = 3, x = 5, ratio 0.5: centre (80, 48) */
        const float *p = an + (lay.off[2] + (3 * 84 + 5) * 3 + 0) * 4;
        double w4[4] = {80 - 90.509668, 48 - 45.254834, 80 + 90.509668, 48 + 45.254834};
        for (int j = 0; j < 4; j++) got[4 * n + j] = p[j], want[4 * n + j] = w4[j];
        n++;
    }
    EXPECT_CLOSE("anchors", got, want, 4 * n, 1e-4, 0);
    free(an);
}

/* ---- targets ------------------------------------------------------------------------- */

typedef struct tgt_case {
    anchor_layout lay;
    int64_t A;
    tensor anchors;
    int8_t *labels;
    int32_t *matched, sampled[256];
    float deltas[256 * 4];
    const uint8_t *valid; /* NULL: every anchor */
    rpn_targets out;
} tgt_case;

static void tgt_init(tgt_case *c, int H, int W) {
    c->lay = anchor_layout_make(H, W);
    c->A = anchor_total(&c->lay);
    c->anchors = tensor_alloc(DTYPE_F32, DEVICE_CPU, TSHAPE((int)c->A, 4));
    anchors_fill_cpu(&c->lay, tensor_f32(&c->anchors));
    c->labels = malloc((size_t)c->A);
    c->matched = malloc((size_t)c->A * 4);
    c->valid = NULL;
    c->out = (rpn_targets){c->labels, c->matched, c->sampled, c->deltas, -1, -1};
}
static void tgt_free(tgt_case *c) {
    tensor_free(&c->anchors);
    free(c->labels);
    free(c->matched);
}
static void tgt_run(tgt_case *c, const float *gt, int G, int chunk, uint64_t seed, int image) {
    runtime *rt = ot_runtime(2);
    rpn_target_cfg cfg = rpn_target_cfg_default();
    cfg.chunk = chunk;
    tensor g = tensor_view((void *)gt, DTYPE_F32, DEVICE_CPU, TSHAPE(G, 4));
    rpn_targets_cpu(rt, &cfg, &c->anchors, G ? &g : NULL, c->valid, seed, 7, image, &c->out);
    runtime_step_end(rt);
}
/* The sampling invariants: counts, labels consistent with sampled[], pos first. */
static void expect_sample_consistent(const tgt_case *c) {
    int n1 = 0, n0 = 0;
    for (int64_t a = 0; a < c->A; a++) {
        EXPECT(c->labels[a] >= -1 && c->labels[a] <= 1);
        n1 += c->labels[a] == 1;
        n0 += c->labels[a] == 0;
    }
    EXPECT(n1 == c->out.num_pos && n0 + n1 == c->out.num_sampled, "labels %d/%d, out %d/%d", n1, n0,
           c->out.num_pos, c->out.num_sampled);
    EXPECT(c->out.num_pos <= 128 && c->out.num_sampled <= 256, "%d %d", c->out.num_pos, c->out.num_sampled);
    for (int i = 0; i < c->out.num_sampled; i++)
        EXPECT(c->labels[c->sampled[i]] == (i < c->out.num_pos ? 1 : 0), "sampled[%d] = %d has label %d", i,
               c->sampled[i], c->labels[c->sampled[i]]);
}

static void test_targets_exact_gt(void) {
    tgt_case c;
    tgt_init(&c, 64, 64); /* 768 + 192 + 48 + 12 + 3 = 1023 anchors */
    REQUIRE(c.A == 1023);
    /* P3 anchor at y = 2, x = 3, ratio 1: centre (24, 16), size 64 */
    int64_t a_exact = c.lay.off[1] + (2 * 8 + 3) * 3 + 1;
    float gt[4] = {-8, -16, 56, 48};
    const float *ap = tensor_f32(&c.anchors) + a_exact * 4;
    REQUIRE(ap[0] == gt[0] && ap[1] == gt[1] && ap[2] == gt[2] && ap[3] == gt[3], "anchor (%g %g %g %g)",
            (double)ap[0], (double)ap[1], (double)ap[2], (double)ap[3]);
    tgt_run(&c, gt, 1, 100, 1, 0); /* chunks of 100: the streamed matcher crosses levels */
    expect_sample_consistent(&c);
    EXPECT(c.labels[a_exact] == 1 && c.matched[a_exact] == 0);
    /* positives: IoU >= 0.7 (shifts of 8 px of the same anchor give 3584/4608 = 0.78) or the max */
    int found = 0;
    for (int i = 0; i < c.out.num_pos; i++) {
        const float *an = tensor_f32(&c.anchors) + (int64_t)c.sampled[i] * 4;
        EXPECT(box_iou_one(an, gt) >= 0.7f, "positive %d IoU %g", c.sampled[i], (double)box_iou_one(an, gt));
        /* hand encode in double: target (24, 16, 64, 64) */
        double sw = an[2] - an[0], sh = an[3] - an[1], sx = an[0] + 0.5 * sw, sy = an[1] + 0.5 * sh;
        double want[4] = {(24 - sx) / sw, (16 - sy) / sh, log(64 / sw), log(64 / sh)};
        double got[4] = {c.deltas[4 * i], c.deltas[4 * i + 1], c.deltas[4 * i + 2], c.deltas[4 * i + 3]};
        EXPECT_CLOSE("positive deltas", got, want, 4, 1e-6, 1e-5);
        if (c.sampled[i] == a_exact) {
            found = 1;
            EXPECT(got[0] == 0 && got[1] == 0 && got[2] == 0 && got[3] == 0, "exact anchor deltas %g %g %g %g",
                   got[0], got[1], got[2], got[3]);
        }
    }
    EXPECT(found, "the exact anchor is not among the %d sampled positives", c.out.num_pos);
    EXPECT(c.out.num_pos > 1 && c.out.num_sampled == 256, "pos %d sampled %d", c.out.num_pos, c.out.num_sampled);
    /* no anchor with IoU >= 0.7 is negative; none below 0.3 is positive (only one GT) */
    for (int64_t a = 0; a < c.A; a++) {
        float v = box_iou_one(tensor_f32(&c.anchors) + a * 4, gt);
        if (v >= 0.7f) EXPECT(c.labels[a] == 1, "anchor %lld IoU %g label %d", (long long)a, (double)v, c.labels[a]);
        if (v >= 0.3f && v < 0.7f) EXPECT(c.labels[a] == -1, "anchor %lld IoU %g label %d", (long long)a, (double)v,
                                          c.labels[a]);
    }
    /* streamed in chunks of 100 == one chunk of everything (same seed) */
    int8_t *lab1 = malloc((size_t)c.A);
    memcpy(lab1, c.labels, (size_t)c.A);
    tgt_run(&c, gt, 1, 1 << 20, 1, 0);
    EXPECT(memcmp(lab1, c.labels, (size_t)c.A) == 0, "labels depend on the chunk size");
    free(lab1);
    tgt_free(&c);
}

static void test_targets_low_quality(void) {
    tgt_case c;
    tgt_init(&c, 256, 256);
    float gt[4] = {101, 103, 105, 107}; /* 4x4: IoU with any anchor <= 16/1024 < 0.3 */
    tgt_run(&c, gt, 1, 1000, 3, 1);
    expect_sample_consistent(&c);
    float best = 0;
    int n_best = 0;
    for (int64_t a = 0; a < c.A; a++) best = fmaxf(best, box_iou_one(tensor_f32(&c.anchors) + a * 4, gt));
    REQUIRE(best > 0 && best < 0.3f, "best IoU %g", (double)best);
    for (int64_t a = 0; a < c.A; a++) {
        float v = box_iou_one(tensor_f32(&c.anchors) + a * 4, gt);
        n_best += v == best;
        /* every anchor holding the max is positive; every other one sampled negative or ignored */
        if (v == best) EXPECT(c.labels[a] == 1, "best anchor %lld label %d", (long long)a, c.labels[a]);
        else EXPECT(c.labels[a] != 1, "anchor %lld IoU %g is positive", (long long)a, (double)v);
    }
    EXPECT(n_best >= 1 && c.out.num_pos == n_best, "%d anchors hold the max IoU %g, %d positive", n_best,
           (double)best, c.out.num_pos);
    EXPECT(c.out.num_sampled == 256);
    tgt_free(&c);
}

static void test_targets_no_gt(void) {
    tgt_case c;
    tgt_init(&c, 128, 96);
    tgt_run(&c, NULL, 0, 500, 5, 2);
    expect_sample_consistent(&c);
    EXPECT(c.out.num_pos == 0 && c.out.num_sampled == 256, "pos %d sampled %d", c.out.num_pos, c.out.num_sampled);
    int bad = 0;
    for (int64_t a = 0; a < c.A; a++) bad += c.matched[a] != -1;
    EXPECT(bad == 0, "%d anchors matched with no GT", bad);
    tgt_free(&c);
}

static void test_targets_caps_and_rng(void) {
    tgt_case c;
    tgt_init(&c, 128, 128); /* P2 32x32 cells */
    /* 200 GTs, each equal to a P2 ratio-1 anchor: >= 200 positives before sampling */
    float gt[200 * 4];
    for (int i = 0; i < 200; i++) {
        int y = 2 + (i / 20) * 2, x = 2 + (i % 20) * 1;
        const float *p = tensor_f32(&c.anchors) + (c.lay.off[0] + (y * 32 + x) * 3 + 1) * 4;
        memcpy(gt + 4 * i, p, 16);
    }
    tgt_run(&c, gt, 200, 333, 9, 0);
    expect_sample_consistent(&c);
    EXPECT(c.out.num_pos == 128 && c.out.num_sampled == 256, "pos %d sampled %d", c.out.num_pos,
           c.out.num_sampled);
    int32_t first[256];
    memcpy(first, c.sampled, sizeof first);
    tgt_run(&c, gt, 200, 4096, 9, 0);
    EXPECT(memcmp(first, c.sampled, sizeof first) == 0, "same (seed, step, image) drew a different sample");
    tgt_run(&c, gt, 200, 4096, 9, 1);
    EXPECT(memcmp(first, c.sampled, sizeof first) != 0, "image 1 drew the same sample as image 0");
    tgt_free(&c);
}

/* ---- proposals ----------------------------------------------------------------------- */

/* Level 0: a0..a4, level 1: b0..b2 (the hand case of the file's proposal tests). */
static const float prop_anchors[8][4] = {
    {0, 0, 10, 10},       /* a0 logit 5                                     -> kept */
    {1, 0, 11, 10},       /* a1 logit 4: IoU with a0 = 90/110 = 0.82 > 0.7  -> suppressed */
    {-20, -20, -10, -10}, /* a2 logit 6: clipped to (0,0,0,0)               -> empty, dropped */
    {90, 40, 110, 60},    /* a3 logit 3: dx 0.5, dw ln 2 -> (90,40,130,60), clipped at w 120 */
    {20, 20, 30, 30},     /* a4 logit -1: outside every top k below */
    {0, 0, 10, 10},       /* b0 logit 4.5: a0's box on another level        -> kept */
    {50, 50, 70, 70},     /* b1 logit 1: dh 100 clamped -> h = 1250 -> y clipped to (0, 100) */
    {30, 30, 40, 40},     /* b2 logit NaN                                   -> non-finite, dropped */
};

static void run_props(int pre, int post, rpn_proposals *o, float *boxes, float *scores, int32_t *levels) {
    runtime *rt = ot_runtime(2);
    float logit[8] = {5, 4, 6, 3, -1, 4.5f, 1, NAN};
    float del[8][4] = {{0}};
    del[3][0] = 0.5f;
    del[3][2] = logf(2.f);
    del[6][3] = 100.f;
    tensor an = tensor_view((void *)prop_anchors, DTYPE_F32, DEVICE_CPU, TSHAPE(8, 4));
    tensor lg = tensor_view(logit, DTYPE_F32, DEVICE_CPU, TSHAPE(8));
    tensor dt = tensor_view(del, DTYPE_F32, DEVICE_CPU, TSHAPE(8, 4));
    int32_t off[3] = {0, 5, 8};
    rpn_proposal_cfg cfg = rpn_proposal_cfg_test();
    cfg.pre_nms_topk = pre;
    cfg.post_nms_topk = post;
    *o = (rpn_proposals){boxes, scores, levels, -1, -1};
    rpn_proposals_cpu(rt, &cfg, &an, &lg, &dt, off, 2, 100.f, 120.f, o);
    runtime_step_end(rt);
}

static void expect_props(const char *what, const rpn_proposals *o, int n, const float *wb, const float *ws,
                         const int32_t *wl) {
    REQUIRE(o->count == n, "%s: %d proposals, want %d", what, o->count, n);
    double got[40], want[40];
    for (int i = 0; i < 4 * n; i++) got[i] = o->boxes[i], want[i] = wb[i];
    EXPECT_CLOSE(what, got, want, 4 * n, 1e-4, 0);
    for (int i = 0; i < n; i++)
        EXPECT(o->scores[i] == ws[i] && o->levels[i] == wl[i], "%s: row %d score %g level %d, want %g %d", what, i,
               (double)o->scores[i], o->levels[i], (double)ws[i], wl[i]);
}

static void test_proposals_hand(void) {
    float boxes[10 * 4], scores[10];
    int32_t levels[10];
    rpn_proposals o;
    /* top 4 per level: level 0 keeps a2, a0, a1, a3 (a4 cut); level 1 all three */
    run_props(4, 10, &o, boxes, scores, levels);
    const float wb[4 * 4] = {0, 0, 10, 10, 0, 0, 10, 10, 90, 40, 120, 60, 50, 0, 70, 100};
    const float ws[4] = {5, 4.5f, 3, 1};
    const int32_t wl[4] = {0, 1, 0, 1};
    expect_props("pre 4, post 10", &o, 4, wb, ws, wl);
    EXPECT(o.n_nonfinite == 1, "non-finite %d", o.n_nonfinite);
    /* post 2: the best two overall */
    run_props(4, 2, &o, boxes, scores, levels);
    expect_props("pre 4, post 2", &o, 2, wb, ws, wl);
    /* top 3 per level: a3 is no longer a candidate */
    run_props(3, 10, &o, boxes, scores, levels);
    const float wb3[3 * 4] = {0, 0, 10, 10, 0, 0, 10, 10, 50, 0, 70, 100};
    const float ws3[3] = {5, 4.5f, 1};
    const int32_t wl3[3] = {0, 1, 1};
    expect_props("pre 3, post 10", &o, 3, wb3, ws3, wl3);
}

int main(void) {
    RUN(test_layout_800x1344);
    RUN(test_layout_odd);
    RUN(test_anchor_values);
    RUN(test_targets_exact_gt);
    RUN(test_targets_low_quality);
    RUN(test_targets_no_gt);
    RUN(test_targets_caps_and_rng);
    RUN(test_proposals_hand);
    return test_finish("test_anchors");
}

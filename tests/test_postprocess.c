/* test_postprocess.c: inference post-processing (src/model/postprocess.h).
 *
 * - detections_from_head, hand-made: the strict score threshold, per-class NMS that never
 *   suppresses across classes and keeps IoU == thr, the topk cut, class-specific against
 *   agnostic decode (hand numbers), a RoI dropped whole for a NaN score or an inf delta
 *   (counted), equal scores in candidate order (r-major, then k), a box the clip makes
 *   empty kept (d2); and a random case (R 200, K 40, clustered boxes, 99 % of pairs over
 *   the threshold) against the plain reference: decode + clip everything, batched_nms_cpu
 *   keyed by class, first topk, which must agree exactly.
 * - detections_rescale: hand numbers for the scale and the clip, empty boxes removed with
 *   the other arrays moved up in order.
 * - mask_paste golden: torch 1.13's grid_sample in detectron2's _do_paste_mask (from
 *   OUTSIDE this project: tests/golden/paste.safetensors, scripts/gen_golden_paste.py,
 *   torch's scalar CPU kernel). The soft values must match bit for bit and the masks pixel
 *   for pixel; the maps quantized to k/8 put samples exactly on 0.5. A hand case: a box of
 *   exactly 28×28 pixels on pixel edges reproduces the thresholded map.
 * - results writer: a file read back by lvis_eval_run (mask and box AP 1 on the segm
 *   fixture's GT) and by cJSON (numbers round-trip to the f32 values, RLE strings decode to
 *   the masks written, '\\' escapes included); a missing directory and a NaN score give
 *   errors naming the file and leave no file behind. */
#include "ops_test.h"

#include "data/lvis.h"
#include "eval/lvis_eval.h"
#include "eval/rle.h"
#include "model/postprocess.h"
#include "ops/nms.h"
#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>

#define GOLDEN "tests/golden/paste.safetensors"
#define EVAL_FIX "tests/fixtures/lvis_eval/segm_gt.json"

static char tmp_dir[256];

/* ---- detections_from_head --------------------------------------------------------------- */

enum { CAP = 64 };
typedef struct dets {
    float boxes[CAP * 4], scores[CAP];
    int32_t classes[CAP], rois[CAP];
    det_output o;
} dets;

static det_params params(int topk) {
    det_params p = det_params_lvis();
    p.topk = topk;
    return p;
}

static int run_head(dets *d, const det_params *p, const float *props, const float *scores, const float *deltas, int R,
                    int K, int agnostic, float h, float w) {
    memset(d, 0, sizeof *d);
    d->o = (det_output){d->boxes, d->scores, d->classes, d->rois, 0, 0};
    return detections_from_head(ot_runtime(1), p, props, scores, deltas, R, K, agnostic, h, w, &d->o);
}

/* Disjoint 10-px boxes, one per RoI, along x. */
static void disjoint(float *props, int R) {
    for (int r = 0; r < R; r++) {
        props[4 * r] = 20.f * r, props[4 * r + 1] = 0.f, props[4 * r + 2] = 20.f * r + 10.f, props[4 * r + 3] = 10.f;
    }
}

static void test_threshold_strict(void) {
    float props[8], zero[8] = {0};
    disjoint(props, 2);
    float t = 1e-4f;
    float scores[4] = {t, nextafterf(t, 1.f), 0.f, 0.5f}; /* R 2, K 2 */
    det_params p = params(10);
    dets d;
    int n = run_head(&d, &p, props, scores, zero, 2, 2, 1, 100, 100);
    EXPECT(n == 2, "n %d, want 2 (score == thresh must not pass)", n);
    EXPECT(d.rois[0] == 1 && d.classes[0] == 1 && d.scores[0] == 0.5f, "first: roi %d class %d", d.rois[0], d.classes[0]);
    EXPECT(d.rois[1] == 0 && d.classes[1] == 1 && d.scores[1] == nextafterf(t, 1.f), "second: roi %d class %d",
           d.rois[1], d.classes[1]);
}

/* Two identical RoIs; class 0: r0 0.9 beats r1 0.8 (IoU 1); class 1: r1 0.7 beats r0 0.1.
 * A third RoI with IoU exactly 0.5 to them ([0,0,10,5] vs [0,0,10,10]) survives in class 0. */
static void test_nms_per_class(void) {
    float props[12] = {0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 5}, zero[12] = {0};
    float scores[6] = {0.9f, 0.1f, 0.8f, 0.7f, 0.6f, 0.f};
    det_params p = params(10);
    dets d;
    int n = run_head(&d, &p, props, scores, zero, 3, 2, 1, 100, 100);
    REQUIRE(n == 3, "n %d, want 3", n);
    int want_r[3] = {0, 1, 2}, want_c[3] = {0, 1, 0};
    for (int i = 0; i < 3; i++)
        EXPECT(d.rois[i] == want_r[i] && d.classes[i] == want_c[i], "row %d: roi %d class %d, want %d %d", i, d.rois[i],
               d.classes[i], want_r[i], want_c[i]);
    /* the same boxes all in one class: 0.9 suppresses 0.8, 0.7 and 0.1; 0.6 survives (IoU 0.5) */
    float one[3] = {0.9f, 0.8f, 0.6f};
    n = run_head(&d, &p, props, one, zero, 3, 1, 1, 100, 100);
    EXPECT(n == 2 && d.rois[0] == 0 && d.rois[1] == 2, "one class: n %d rois %d %d", n, d.rois[0], d.rois[1]);
}

static void test_topk(void) {
    float props[20], zero[20] = {0}, scores[5] = {0.3f, 0.9f, 0.1f, 0.7f, 0.5f};
    disjoint(props, 5);
    det_params p = params(3);
    dets d;
    int n = run_head(&d, &p, props, scores, zero, 5, 1, 1, 100, 200);
    EXPECT(n == 3 && d.rois[0] == 1 && d.rois[1] == 3 && d.rois[2] == 4, "n %d rois %d %d %d", n, d.rois[0], d.rois[1],
           d.rois[2]);
    EXPECT(d.scores[0] == 0.9f && d.scores[2] == 0.5f, "scores %g %g", d.scores[0], d.scores[2]);
}

/* Proposal [10,10,30,30] (w 20, centre 20): class 0 deltas 0 -> the proposal; class 1
 * dx = 10 (/ wx 10 = 1 width) -> [30,10,50,30], clipped to x <= 40. Agnostic: one set
 * (dx = 10) for both classes. */
static void test_decode_modes(void) {
    float props[4] = {10, 10, 30, 30}, scores[2] = {0.6f, 0.5f};
    float specific[8] = {0, 0, 0, 0, 10, 0, 0, 0}, agnostic[4] = {10, 0, 0, 0};
    det_params p = params(10);
    dets d;
    int n = run_head(&d, &p, props, scores, specific, 1, 2, 0, 40, 40);
    REQUIRE(n == 2, "specific: n %d", n);
    float want0[4] = {10, 10, 30, 30}, want1[4] = {30, 10, 40, 30};
    EXPECT(!memcmp(d.boxes, want0, 16) && !memcmp(d.boxes + 4, want1, 16),
           "specific: [%g %g %g %g] [%g %g %g %g]", d.boxes[0], d.boxes[1], d.boxes[2], d.boxes[3], d.boxes[4],
           d.boxes[5], d.boxes[6], d.boxes[7]);
    n = run_head(&d, &p, props, scores, agnostic, 1, 2, 1, 40, 40);
    REQUIRE(n == 2, "agnostic: n %d", n);
    EXPECT(!memcmp(d.boxes, want1, 16) && !memcmp(d.boxes + 4, want1, 16) && d.classes[0] == 0 && d.classes[1] == 1,
           "agnostic: [%g %g %g %g] [%g %g %g %g]", d.boxes[0], d.boxes[1], d.boxes[2], d.boxes[3], d.boxes[4],
           d.boxes[5], d.boxes[6], d.boxes[7]);
}

/* RoI 1 has a NaN score (class 1) and RoI 2 an inf delta (class 0): d2 drops each whole,
 * so RoI 1's 0.95 in class 0 and RoI 2's 0.9 in class 1 are gone too. */
static void test_nonfinite_dropped(void) {
    float props[16], deltas[32] = {0};
    disjoint(props, 4);
    float scores[8] = {0.2f, 0.3f, 0.95f, NAN, 0.4f, 0.9f, 0.5f, 0.1f};
    deltas[2 * 8 + 2] = INFINITY; /* RoI 2, class 0, dw: exp clamps it, so use dx */
    deltas[2 * 8 + 0] = INFINITY;
    det_params p = params(10);
    dets d;
    int n = run_head(&d, &p, props, scores, deltas, 4, 2, 0, 100, 100);
    EXPECT(d.o.dropped_rois == 2, "dropped %d RoIs, want 2", d.o.dropped_rois);
    EXPECT(n == 4, "n %d, want 4 (RoIs 0 and 3)", n);
    for (int i = 0; i < n; i++) EXPECT(d.rois[i] == 0 || d.rois[i] == 3, "row %d from RoI %d", i, d.rois[i]);
    EXPECT(d.scores[0] == 0.5f, "best %g, want 0.5", d.scores[0]);
}

/* Equal scores: candidate order, r-major then k; topk cuts inside the tie. */
static void test_tie_order(void) {
    float props[12], zero[12] = {0}, scores[6];
    disjoint(props, 3);
    for (int i = 0; i < 6; i++) scores[i] = 0.25f;
    det_params p = params(4);
    dets d;
    int n = run_head(&d, &p, props, scores, zero, 3, 2, 1, 100, 100);
    REQUIRE(n == 4, "n %d", n);
    for (int i = 0; i < 4; i++)
        EXPECT(d.rois[i] == i / 2 && d.classes[i] == i % 2, "row %d: roi %d class %d, want %d %d", i, d.rois[i],
               d.classes[i], i / 2, i % 2);
}

/* A proposal beyond the right edge clips to width 0: d2 keeps it here. */
static void test_empty_after_clip_kept(void) {
    float props[4] = {50, 0, 60, 10}, zero[4] = {0}, scores[1] = {0.5f};
    det_params p = params(10);
    dets d;
    int n = run_head(&d, &p, props, scores, zero, 1, 1, 1, 100, 40);
    EXPECT(n == 1 && d.boxes[0] == 40.f && d.boxes[2] == 40.f, "n %d box [%g %g %g %g]", n, d.boxes[0], d.boxes[1],
           d.boxes[2], d.boxes[3]);
}

/* Random clustered case against decode + clip + batched_nms_cpu + first topk. */
static void test_random_vs_reference(void) {
    enum { R = 200, K = 40, TOPK = 50 };
    runtime *rt = ot_runtime(2);
    float *props = malloc(sizeof(float) * R * 4), *scores = malloc(sizeof(float) * R * K);
    float *deltas = malloc(sizeof(float) * R * K * 4);
    ot_seed(7);
    for (int r = 0; r < R; r++) { /* 8 clusters of jittered boxes */
        float cx = 40.f + 60.f * (r % 8), cy = 50.f + 30.f * (r % 3), w = 30.f + (float)ot_uniform(0, 10);
        float h = 25.f + (float)ot_uniform(0, 10);
        cx += (float)ot_uniform(-6, 6), cy += (float)ot_uniform(-6, 6);
        props[4 * r] = cx - w / 2, props[4 * r + 1] = cy - h / 2, props[4 * r + 2] = cx + w / 2,
        props[4 * r + 3] = cy + h / 2;
    }
    for (int i = 0; i < R * K; i++) scores[i] = (float)ot_uniform(0, 1) < 0.01f ? 0.f : (float)ot_uniform(0, 0.02);
    for (int i = 0; i < R * K * 4; i++) deltas[i] = (float)ot_uniform(-1, 1);
    for (int i = 0; i < 30; i++) scores[(i * 7919) % (R * K)] = 0.0125f; /* some exact ties */
    det_params p = params(TOPK);
    float boxes[TOPK * 4], sc[TOPK];
    int32_t cl[TOPK], ro[TOPK];
    det_output o = {boxes, sc, cl, ro, 0, 0};
    int n = detections_from_head(rt, &p, props, scores, deltas, R, K, 0, 150.f, 500.f, &o);
    /* reference */
    tensor pt = tensor_view(props, DTYPE_F32, DEVICE_CPU, TSHAPE(R, 4));
    tensor dt = tensor_view(deltas, DTYPE_F32, DEVICE_CPU, TSHAPE(R, 4 * K));
    tensor all = tensor_alloc(DTYPE_F32, DEVICE_CPU, TSHAPE(R, 4 * K));
    box_decode_cpu(rt, &p.coder, &pt, &dt, &all);
    box_clip_cpu(rt, &all, 150.f, 500.f);
    int m = 0;
    for (int i = 0; i < R * K; i++) m += scores[i] > p.score_thresh;
    tensor cb = tensor_alloc(DTYPE_F32, DEVICE_CPU, TSHAPE(m, 4)), cs = tensor_alloc(DTYPE_F32, DEVICE_CPU, TSHAPE(m));
    tensor ck = tensor_alloc(DTYPE_I32, DEVICE_CPU, TSHAPE(m)), keep = tensor_alloc(DTYPE_I32, DEVICE_CPU, TSHAPE(m));
    int32_t *flat = malloc(sizeof(int32_t) * m);
    for (int i = 0, j = 0; i < R * K; i++) {
        if (!(scores[i] > p.score_thresh)) continue;
        memcpy(tensor_f32(&cb) + 4 * j, tensor_f32(&all) + 4 * (int64_t)i, 16);
        tensor_f32(&cs)[j] = scores[i], tensor_i32(&ck)[j] = i % K, flat[j++] = i;
    }
    int kept = batched_nms_cpu(rt, &cb, &cs, &ck, p.nms_thresh, &keep);
    int want = kept < TOPK ? kept : TOPK, bad = 0;
    EXPECT(n == want, "n %d want %d", n, want);
    for (int i = 0; i < n && i < want; i++) {
        int j = tensor_i32(&keep)[i];
        int ok = ro[i] == flat[j] / K && cl[i] == flat[j] % K && sc[i] == tensor_f32(&cs)[j] &&
                 !memcmp(boxes + 4 * i, tensor_f32(&cb) + 4 * j, 16);
        if (!ok && bad++ < 3)
            test_fail_at(__FILE__, __LINE__, "row %d: roi %d class %d score %.9g, reference roi %d class %d score %.9g", i,
                         ro[i], cl[i], sc[i], flat[j] / K, flat[j] % K, tensor_f32(&cs)[j]);
    }
    printf("  random: %d candidates, %d kept of %d after NMS\n", m, n, kept);
    tensor_free(&all), tensor_free(&cb), tensor_free(&cs), tensor_free(&ck), tensor_free(&keep);
    free(flat), free(props), free(scores), free(deltas);
}

/* LVIS scale: R 1000, K 1203, every pair over the threshold (1.2 M candidates); the walk
 * stops at 300 and the scratch goes back to the arena. Prints the time. */
static void test_lvis_scale(void) {
    enum { R = 1000, K = 1203 };
    runtime *rt = ot_runtime(2);
    float *props = malloc(sizeof(float) * R * 4), *scores = malloc(sizeof(float) * R * K);
    float *deltas = malloc(sizeof(float) * R * K * 4);
    REQUIRE(props && scores && deltas);
    ot_seed(5);
    for (int r = 0; r < R; r++) {
        float x = (float)ot_uniform(0, 1200), y = (float)ot_uniform(0, 700);
        props[4 * r] = x, props[4 * r + 1] = y, props[4 * r + 2] = x + (float)ot_uniform(8, 300),
        props[4 * r + 3] = y + (float)ot_uniform(8, 300);
    }
    for (int i = 0; i < R * K; i++) scores[i] = 1e-4f + (float)ot_uniform(0, 1e-3);
    for (int i = 0; i < R * K * 4; i++) deltas[i] = (float)ot_uniform(-0.5, 0.5);
    det_params p = det_params_lvis();
    float boxes[300 * 4], sc[300];
    int32_t cl[300], ro[300];
    det_output o = {boxes, sc, cl, ro, 0, 0};
    size_t before = rt->host.in_use;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = detections_from_head(rt, &p, props, scores, deltas, R, K, 0, 800.f, 1333.f, &o);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    EXPECT(n == 300, "n %d, want 300", n);
    EXPECT(rt->host.in_use == before, "scratch not released: %zu -> %zu bytes", before, rt->host.in_use);
    for (int i = 1; i < n; i++) EXPECT(sc[i] <= sc[i - 1], "row %d out of order", i);
    printf("  R %d, K %d: %.1f ms (2 threads)\n", R, K, (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6);
    free(props), free(scores), free(deltas);
}

/* ---- detections_rescale ----------------------------------------------------------------- */

/* 100×200 (h×w) -> 50×300: scale_x 1.5, scale_y 0.5. */
static void test_rescale(void) {
    float boxes[20] = {10, 20, 30, 40,   /* -> 15, 10, 45, 20 */
                       50, 50, 50, 60,   /* width 0: dropped */
                       -5, 0, 10, 10,    /* -> -7.5 clipped to 0: 0, 0, 15, 5 */
                       10, 10, 20, 10,   /* height 0: dropped */
                       150, 80, 250, 120}; /* -> 225, 40, 375 -> 300, 60 -> 50 */
    float scores[5] = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f};
    int32_t classes[5] = {1, 2, 3, 4, 5}, rois[5] = {10, 20, 30, 40, 50};
    int n = detections_rescale(ot_runtime(1), boxes, scores, classes, rois, 5, 100, 200, 50, 300);
    REQUIRE(n == 3, "n %d, want 3", n);
    float want[12] = {15, 10, 45, 20, 0, 0, 15, 5, 225, 40, 300, 50};
    for (int i = 0; i < 12; i++) EXPECT(boxes[i] == want[i], "boxes[%d] = %.9g, want %g", i, boxes[i], want[i]);
    EXPECT(scores[1] == 0.7f && classes[1] == 3 && rois[1] == 30 && scores[2] == 0.5f && classes[2] == 5 &&
               rois[2] == 50,
           "kept rows moved up in order: %g %d %d, %g %d %d", scores[1], classes[1], rois[1], scores[2], classes[2],
           rois[2]);
    /* a non-integer ratio: 800 -> 427 rows; y = 799 * (float)(427/800.) */
    float b2[4] = {0, 100, 10, 799};
    n = detections_rescale(ot_runtime(1), b2, NULL, NULL, NULL, 1, 800, 10, 427, 10);
    EXPECT(n == 1 && b2[3] == 799.f * (float)(427.0 / 800.0) && b2[1] == 100.f * (float)(427.0 / 800.0),
           "y %.9g %.9g", b2[1], b2[3]);
}

/* ---- mask paste --------------------------------------------------------------------------- */

static int st_get(const safetensors *st, const char *name, dtype dt, void *dst, int64_t n) {
    const st_tensor *e = safetensors_find(st, name);
    if (!e || e->dtype != dt || (int64_t)e->bytes != n * (int64_t)dtype_size(dt)) return -1;
    memcpy(dst, safetensors_data(st, e), e->bytes);
    return 0;
}

static void test_paste_golden(void) {
    safetensors st;
    char err[1024];
    REQUIRE(safetensors_open(&st, GOLDEN, err, sizeof err) == 0, "%s (scripts/gen_golden_paste.py makes it)", err);
    int cases = 0;
    long soft_bad = 0, mask_bad = 0, pixels = 0, on = 0, at_half = 0;
    for (int c = 0;; c++) {
        char nm[32];
        snprintf(nm, sizeof nm, "hw%d", c);
        int32_t hw[2];
        if (st_get(&st, nm, DTYPE_I32, hw, 2)) break;
        int H = hw[0], W = hw[1];
        float prob[28 * 28], box[4];
        float *soft = malloc(sizeof(float) * H * W), *gsoft = malloc(sizeof(float) * H * W);
        uint8_t *mask = malloc((size_t)H * W), *gmask = malloc((size_t)H * W);
        int ok = 1;
        snprintf(nm, sizeof nm, "p%d", c), ok &= !st_get(&st, nm, DTYPE_F32, prob, 28 * 28);
        snprintf(nm, sizeof nm, "box%d", c), ok &= !st_get(&st, nm, DTYPE_F32, box, 4);
        snprintf(nm, sizeof nm, "soft%d", c), ok &= !st_get(&st, nm, DTYPE_F32, gsoft, (int64_t)H * W);
        snprintf(nm, sizeof nm, "mask%d", c), ok &= !st_get(&st, nm, DTYPE_U8, gmask, (int64_t)H * W);
        EXPECT(ok, "%s: case %d incomplete", GOLDEN, c);
        if (ok) {
            mask_paste_soft(prob, 28, box, H, W, soft);
            mask_paste(prob, 28, box, H, W, mask);
            long sb = 0, mb = 0;
            for (int i = 0; i < H * W; i++) {
                if (soft[i] != gsoft[i]) {
                    if (sb++ < 3)
                        test_fail_at(__FILE__, __LINE__, "case %d pixel (%d,%d): soft %.9g, torch %.9g", c, i / W,
                                     i % W, soft[i], gsoft[i]);
                }
                if (mask[i] != gmask[i] && mb++ < 3)
                    test_fail_at(__FILE__, __LINE__, "case %d pixel (%d,%d): mask %d, torch %d", c, i / W, i % W,
                                 mask[i], gmask[i]);
                on += gmask[i] != 0, at_half += gsoft[i] == 0.5f;
            }
            soft_bad += sb, mask_bad += mb, pixels += (long)H * W;
        }
        free(soft), free(gsoft), free(mask), free(gmask);
        cases++;
    }
    safetensors_close(&st);
    EXPECT(cases >= 12, "%d golden cases, want 12", cases);
    printf("  paste golden (torch %s): %d cases, %ld pixels (%ld set, %ld samples exactly 0.5): %ld soft values and "
           "%ld mask pixels differ\n",
           "1.13 grid_sample", cases, pixels, on, at_half, soft_bad, mask_bad);
}

/* A 28×28-pixel box on pixel edges at (10, 5) in a 40×50 image: pixel centre (10 + j + 0.5)
 * lands on cell j (up to an ulp), so the mask is the map thresholded, shifted; values are
 * 0.2 or 0.8, far from 0.5, so the ulp cannot matter. */
static void test_paste_aligned(void) {
    float prob[28 * 28], box[4] = {10, 5, 38, 33};
    ot_seed(3);
    for (int i = 0; i < 28 * 28; i++) prob[i] = ot_uniform(0, 1) < 0.5 ? 0.2f : 0.8f;
    uint8_t out[40 * 50];
    float soft[40 * 50];
    mask_paste(prob, 28, box, 40, 50, out);
    mask_paste_soft(prob, 28, box, 40, 50, soft);
    int bad = 0;
    double worst = 0;
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 50; x++) {
            int in = x >= 10 && x < 38 && y >= 5 && y < 33;
            float p = in ? prob[(y - 5) * 28 + (x - 10)] : 0.f;
            int want = p >= 0.5f;
            if (out[y * 50 + x] != want && bad++ < 3)
                test_fail_at(__FILE__, __LINE__, "pixel (%d,%d): %d, want %d", y, x, out[y * 50 + x], want);
            if (in && fabs(soft[y * 50 + x] - p) > worst) worst = fabs(soft[y * 50 + x] - p);
        }
    EXPECT(worst < 1e-5, "soft values off the map by %g", worst);
    /* degenerate boxes give empty masks */
    float flat[4] = {10, 5, 10, 33}, nanb[4] = {NAN, 5, 20, 33};
    mask_paste(prob, 28, flat, 40, 50, out);
    int any = 0;
    for (int i = 0; i < 2000; i++) any |= out[i];
    mask_paste(prob, 28, nanb, 40, 50, out);
    for (int i = 0; i < 2000; i++) any |= out[i];
    EXPECT(!any, "an empty or NaN box set pixels");
}

/* ---- results writer --------------------------------------------------------------------- */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

/* The segm fixture's GT (20×20; cat1 square (2,2)-(8,8), cat2 (10,10)-(15,15)) as
 * detections with the GT's own masks: mask and box AP 1 (1/(1+eps)). */
static void test_writer_eval_roundtrip(void) {
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/segm_results.json", tmp_dir);
    double poly[2][8] = {{2, 2, 8, 2, 8, 8, 2, 8}, {10, 10, 15, 10, 15, 15, 10, 15}};
    rle m[2];
    results_writer *w = results_open(path, err, sizeof err);
    REQUIRE(w, "%s", err);
    float score[2] = {0.9f, 0.1f + 0.7f};
    for (int i = 0; i < 2; i++) {
        REQUIRE(rle_from_polygon(&m[i], poly[i], 4, 20, 20) == 0);
        double bb[4];
        rle_bbox(&m[i], bb);
        float box[4] = {(float)bb[0], (float)bb[1], (float)bb[2], (float)bb[3]};
        EXPECT(results_add(w, 1, i + 1, box, score[i], &m[i]) == 0, "%s", results_error(w));
    }
    EXPECT(results_count(w) == 2);
    REQUIRE(results_close(w, err, sizeof err) == 0, "%s", err);
    struct stat sb;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    EXPECT(stat(tmp, &sb) != 0, "%s left behind", tmp);

    /* cJSON: the numbers are the f32 values exactly, the strings the RLEs */
    char *text = slurp(path);
    REQUIRE(text, "cannot read %s", path);
    cJSON *root = cJSON_Parse(text);
    REQUIRE(root && cJSON_IsArray(root) && cJSON_GetArraySize(root) == 2, "%s does not parse as a 2-record array", path);
    for (int i = 0; i < 2; i++) {
        cJSON *e = cJSON_GetArrayItem(root, i), *seg = cJSON_GetObjectItem(e, "segmentation");
        EXPECT(cJSON_GetObjectItem(e, "score")->valuedouble == (double)score[i], "score %.17g, want %.17g",
               cJSON_GetObjectItem(e, "score")->valuedouble, (double)score[i]);
        EXPECT(cJSON_GetObjectItem(e, "category_id")->valueint == i + 1 && cJSON_GetObjectItem(e, "image_id")->valueint == 1);
        const char *counts = cJSON_GetObjectItem(seg, "counts")->valuestring;
        char want[256];
        rle_to_string(&m[i], want, sizeof want);
        EXPECT(!strcmp(counts, want), "counts %s, want %s", counts, want);
    }
    cJSON_Delete(root);
    free(text);

    /* lvis_eval_run: both modes */
    lvis_data d;
    lvis_options o = {.mode = LVIS_OFFICIAL, .cache = LVIS_CACHE_OFF};
    REQUIRE(lvis_open(&d, EVAL_FIX, &o, err, sizeof err) == 0, "%s", err);
    for (int t = 0; t < 2; t++) {
        lvis_eval_result r;
        int rc = lvis_eval_run(&d, path, t ? LVIS_IOU_SEGM : LVIS_IOU_BBOX, 1, &r, err, sizeof err);
        EXPECT(rc == 0, "lvis_eval_run (%s): %s", t ? "segm" : "bbox", err);
        if (rc) continue;
        EXPECT(r.n_records == 2 && r.n_dets == 2, "%s: %lld records, %lld evaluated", t ? "segm" : "bbox",
               (long long)r.n_records, (long long)r.n_dets);
        EXPECT(fabs(r.stats[LVIS_AP] - 1) < 1e-12, "%s AP %.17g, want 1", t ? "segm" : "bbox", r.stats[LVIS_AP]);
        lvis_eval_result_free(&r);
    }
    lvis_free(&d);
    rle_free(&m[0]), rle_free(&m[1]);
}

/* Random masks (their strings hold '\\' often), box-only records and awkward numbers. */
static void test_writer_numbers_and_escapes(void) {
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/random.json", tmp_dir);
    results_writer *w = results_open(path, err, sizeof err);
    REQUIRE(w, "%s", err);
    enum { NREC = 6, MH = 37, MW = 23 };
    rle m[NREC];
    float box[NREC][4], score[NREC];
    ot_seed(11);
    int backslashes = 0;
    for (int i = 0; i < NREC; i++) {
        uint8_t mask[MH * MW];
        for (int j = 0; j < MH * MW; j++) mask[j] = ot_uniform(0, 1) < (i % 2 ? 0.9 : 0.3);
        REQUIRE(rle_encode(&m[i], mask, MH, MW) == 0);
        char s[4096];
        rle_to_string(&m[i], s, sizeof s);
        backslashes += strchr(s, '\\') != NULL;
        for (int k = 0; k < 4; k++) box[i][k] = (float)ot_uniform(0, 1000);
        score[i] = (float)ot_uniform(0, 1e-3);
    }
    box[0][0] = 1e-7f, box[0][1] = 0.1f, box[0][2] = 16777217.f, box[0][3] = -0.f;
    score[1] = 1.17549435e-38f; /* FLT_MIN */
    for (int i = 0; i < NREC; i++)
        EXPECT(results_add(w, 1000000000000LL + i, 1203, box[i], score[i], i == 3 ? NULL : &m[i]) == 0, "%s",
               results_error(w));
    REQUIRE(results_close(w, err, sizeof err) == 0, "%s", err);
    char *text = slurp(path);
    REQUIRE(text, "cannot read %s", path);
    cJSON *root = cJSON_Parse(text);
    REQUIRE(root && cJSON_GetArraySize(root) == NREC, "%s does not parse", path);
    int bad = 0;
    for (int i = 0; i < NREC; i++) {
        cJSON *e = cJSON_GetArrayItem(root, i), *bb = cJSON_GetObjectItem(e, "bbox");
        for (int k = 0; k < 4; k++)
            if (cJSON_GetArrayItem(bb, k)->valuedouble != (double)box[i][k] && bad++ < 3)
                test_fail_at(__FILE__, __LINE__, "record %d bbox[%d] %.17g, want %.17g", i, k,
                             cJSON_GetArrayItem(bb, k)->valuedouble, (double)box[i][k]);
        EXPECT(cJSON_GetObjectItem(e, "score")->valuedouble == (double)score[i], "record %d score", i);
        EXPECT(cJSON_GetObjectItem(e, "image_id")->valuedouble == 1e12 + i, "record %d image_id", i);
        cJSON *seg = cJSON_GetObjectItem(e, "segmentation");
        if (i == 3) {
            EXPECT(!seg, "a box-only record has a segmentation");
            continue;
        }
        REQUIRE(seg, "record %d: no segmentation", i);
        const char *counts = cJSON_GetObjectItem(seg, "counts")->valuestring;
        cJSON *size = cJSON_GetObjectItem(seg, "size");
        EXPECT(cJSON_GetArrayItem(size, 0)->valueint == MH && cJSON_GetArrayItem(size, 1)->valueint == MW,
               "record %d size", i);
        rle back;
        char why[256];
        REQUIRE(rle_from_string(&back, counts, strlen(counts), MH, MW, why, sizeof why) == 0, "record %d: %s", i, why);
        EXPECT(back.m == m[i].m && !memcmp(back.cnts, m[i].cnts, (size_t)back.m * 4), "record %d: RLE differs", i);
        rle_free(&back);
    }
    EXPECT(backslashes > 0, "no RLE string with a backslash: the escape went untested");
    cJSON_Delete(root);
    free(text);
    for (int i = 0; i < NREC; i++) rle_free(&m[i]);
}

static void test_writer_errors(void) {
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/no_such_dir/results.json", tmp_dir);
    results_writer *w = results_open(path, err, sizeof err);
    EXPECT(!w, "opened a file in a missing directory");
    EXPECT(strstr(err, "no_such_dir/results.json") && strstr(err, strerror(ENOENT)), "message: %s", err);

    snprintf(path, sizeof path, "%s/nan.json", tmp_dir);
    w = results_open(path, err, sizeof err);
    REQUIRE(w, "%s", err);
    float box[4] = {1, 2, 3, 4};
    EXPECT(results_add(w, 1, 1, box, 0.5f, NULL) == 0);
    EXPECT(results_add(w, 1, 2, box, NAN, NULL) == -1, "a NaN score was accepted");
    EXPECT(results_add(w, 1, 3, box, 0.5f, NULL) == -1, "a record after an error was accepted");
    err[0] = 0;
    EXPECT(results_close(w, err, sizeof err) == -1, "close succeeded after an error");
    EXPECT(strstr(err, "nan.json.tmp") && strstr(err, "record 1"), "message: %s", err);
    struct stat sb;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    EXPECT(stat(path, &sb) != 0 && stat(tmp, &sb) != 0, "a file was left behind");
}

int main(void) {
    if (!test_make_tmpdir(tmp_dir, sizeof tmp_dir, "postprocess")) {
        printf("cannot make a temporary directory\n");
        return 1;
    }
    RUN(test_threshold_strict);
    RUN(test_nms_per_class);
    RUN(test_topk);
    RUN(test_decode_modes);
    RUN(test_nonfinite_dropped);
    RUN(test_tie_order);
    RUN(test_empty_after_clip_kept);
    RUN(test_random_vs_reference);
    RUN(test_lvis_scale);
    RUN(test_rescale);
    RUN(test_paste_golden);
    RUN(test_paste_aligned);
    RUN(test_writer_eval_roundtrip);
    RUN(test_writer_numbers_and_escapes);
    RUN(test_writer_errors);
    test_remove_tmpdir(tmp_dir);
    return test_finish("test_postprocess");
}

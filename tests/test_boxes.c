/* test_boxes.c: box IoU, the box coder, clip/nonempty, NMS (plain and batched) and the
 * per-segment top k: hand-made cases, an independent brute-force NMS on random inputs with
 * many ties, torchvision goldens (tests/golden/det_boxes.safetensors, written by
 * scripts/gen_golden_boxes.py with torch 1.13 / torchvision 0.14), and CPU-vs-GPU parity
 * for every CUDA twin (skipped without a GPU).
 *
 * Tolerances: IoU, clip, nonempty and every index output must match exactly (same f32
 * operations in the same order on every side). encode/decode against torch: rtol 1e-6
 * plus atol 1e-4 px (coordinates up to ~1000 px, where one f32 ulp is 6e-5; the two sides
 * differ only through logf/expf's last bit, amplified by the box size). */
#include "ops_test.h"

#include <time.h>

#include "core/safetensors.h"
#include "ops/boxes.h"
#include "ops/nms.h"

#include <stdint.h>

#define GOLDEN "tests/golden/det_boxes.safetensors"

static tensor *boxes_t(const float *v, int n) {
    tensor *t = ot_const(DTYPE_F32, TSHAPE(n > 0 ? n : 0, 4), 0, 0);
    if (n) memcpy(t->data, v, (size_t)n * 16);
    return t;
}
static tensor *vec_f32(const float *v, int n) {
    tensor *t = ot_const(DTYPE_F32, TSHAPE(n), 0, 0);
    if (n) memcpy(t->data, v, (size_t)n * 4);
    return t;
}
static tensor *vec_i32(const int32_t *v, int n) {
    tensor *t = ot_const(DTYPE_I32, TSHAPE(n), 0, 0);
    if (n) memcpy(t->data, v, (size_t)n * 4);
    return t;
}

/* Expects got[0..n) == want[0..n) exactly; prints the first difference. */
static int expect_idx(const char *what, const int32_t *got, const int32_t *want, int n) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) {
            test_fail_at(__FILE__, __LINE__, "%s: first difference at %d of %d: got %d, want %d", what, i, n, got[i],
                         want[i]);
            return 0;
        }
    return 1;
}

/* Expects bit-identical floats (NaN equal to NaN). */
static int expect_same_f32(const char *what, const float *got, const float *want, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], 4) && !(isnan(got[i]) && isnan(want[i]))) {
            test_fail_at(__FILE__, __LINE__, "%s: first difference at %lld of %lld: got %.9g, want %.9g", what,
                         (long long)i, (long long)n, got[i], want[i]);
            return 0;
        }
    return 1;
}

/* ---- hand-made cases --------------------------------------------------------------- */

static void test_iou_hand(void) {
    runtime *rt = ot_runtime(2);
    const float a[] = {0, 0, 10, 10, 0, 0, 0, 5};      /* a box; an empty one */
    const float b[] = {10, 0, 20, 10,  /* touches: 0 */
                       0, 0, 10, 10,   /* equal: 1 */
                       5, 0, 15, 10,   /* half: 50 / 150 */
                       2, 2, 5, 5,     /* inside: 9 / 100 */
                       11, 11, 12, 12, /* disjoint: 0 */
                       0, 10, 10, 20}; /* touches along y: 0 */
    tensor *ta = boxes_t(a, 2), *tb = boxes_t(b, 6), *iou = ot_const(DTYPE_F32, TSHAPE(2, 6), 0, 0);
    box_iou_cpu(rt, ta, tb, 0, 6, iou);
    const float *v = tensor_f32(iou);
    const float want[] = {0, 1, 50.f / 150.f, 0.09f, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_same_f32("hand IoU", v, want, 12);
    /* chunks of columns give the same values as the whole matrix */
    for (int b0 = 0; b0 < 6; b0 += 4) {
        int b1 = b0 + 4 < 6 ? b0 + 4 : 6;
        tensor *c = ot_const(DTYPE_F32, TSHAPE(2, b1 - b0), 0, 0);
        box_iou_cpu(rt, ta, tb, b0, b1, c);
        for (int i = 0; i < 2; i++)
            expect_same_f32("IoU chunk", tensor_f32(c) + i * (b1 - b0), v + i * 6 + b0, b1 - b0);
        ot_free(c);
    }
    tensor *none = ot_const(DTYPE_F32, TSHAPE(2, 0), 0, 0);
    box_iou_cpu(rt, ta, tb, 3, 3, none); /* an empty chunk is fine */
    ot_free(none), ot_free(ta), ot_free(tb), ot_free(iou);
}

static void test_coder_hand(void) {
    runtime *rt = ot_runtime(2);
    const float src[] = {10, 20, 50, 100, 0, 0, 1, 1, 100, 100, 400, 150};
    const float tgt[] = {12, 18, 60, 90, 0.25f, 0.5f, 3, 2, 90, 120, 380, 160};
    box_coder coders[3] = {box_coder_rpn(), box_coder_roi(), box_coder_rpn()};
    coders[2].clamp_below = 1; /* mmdet */
    tensor *s = boxes_t(src, 3), *t = boxes_t(tgt, 3), *d = boxes_t(src, 3), *o = boxes_t(src, 3);
    for (int c = 0; c < 3; c++) {
        box_encode_cpu(rt, &coders[c], s, t, d);
        /* by hand, box 0 with the RPN weights: centres (30, 60) -> (36, 54), sizes 40x80 -> 48x72 */
        if (c == 0) {
            const float *e = tensor_f32(d);
            EXPECT(fabsf(e[0] - 6.f / 40) < 1e-7f && fabsf(e[1] + 6.f / 80) < 1e-7f, "dx %g dy %g", e[0], e[1]);
            EXPECT(fabsf(e[2] - logf(48.f / 40)) < 1e-7f && fabsf(e[3] - logf(72.f / 80)) < 1e-7f, "dw %g dh %g",
                   e[2], e[3]);
        }
        box_decode_cpu(rt, &coders[c], s, d, o);
        for (int i = 0; i < 12; i++)
            EXPECT(fabsf(tensor_f32(o)[i] - tgt[i]) <= 1e-4f * (1 + fabsf(tgt[i])), "round trip %d: %g vs %g", i,
                   tensor_f32(o)[i], tgt[i]);
    }
    /* the clamp: dw = 10 (/ ww = 1) decodes as dw = ln(1000/16): width 40 -> 2500;
     * dh = 4 is below the clamp and passes; a negative delta is never clamped */
    const float deltas[] = {0, 0, 10, 4, 0, 0, -20, 0, 0, 0, 0, 0};
    tensor *dd = boxes_t(deltas, 3);
    box_coder rpn = box_coder_rpn();
    box_decode_cpu(rt, &rpn, s, dd, o);
    const float *b = tensor_f32(o);
    EXPECT(fabsf((b[2] - b[0]) - 2500.f) < 1e-2f, "clamped width %g, want 2500", b[2] - b[0]);
    EXPECT(fabsf((b[3] - b[1]) - 80.f * expf(4.f)) < 1e-2f, "height %g, want %g", b[3] - b[1], 80.f * expf(4.f));
    EXPECT(b[6] - b[4] < 1e-6f, "dw = -20 gives a width of ~0, got %g", b[6] - b[4]);
    EXPECT(tensor_f32(o)[8] == 100 && tensor_f32(o)[11] == 150, "zero deltas give the source box");
    /* class-specific decode: [R, 4K] with K = 3 decodes each group of 4 against its row */
    tensor *d3 = ot_const(DTYPE_F32, TSHAPE(1, 12), -1, 1), *o3 = ot_const(DTYPE_F32, TSHAPE(1, 12), 0, 0);
    tensor s1 = tensor_rows(s, 0, 1), d1 = tensor_view(tensor_f32(d3) + 8, DTYPE_F32, DEVICE_CPU, TSHAPE(1, 4));
    tensor *o1 = boxes_t(src, 1);
    box_coder roi = box_coder_roi();
    box_decode_cpu(rt, &roi, &s1, d3, o3);
    box_decode_cpu(rt, &roi, &s1, &d1, o1);
    expect_same_f32("class 2 of a [1,12] decode", tensor_f32(o3) + 8, tensor_f32(o1), 4);
    ot_free(s), ot_free(t), ot_free(d), ot_free(o), ot_free(dd), ot_free(d3), ot_free(o3), ot_free(o1);
}

static void test_clip_nonempty_hand(void) {
    runtime *rt = ot_runtime(2);
    const float b[] = {-5, -3, 700, 500, 10, 10, 10, 20, 10, 10, 10.5f, 10.25f, 630, 470, 650, 490, NAN, 0, 1, 1};
    tensor *t = boxes_t(b, 5), *k = ot_const(DTYPE_U8, TSHAPE(5), 0, 0);
    box_clip_cpu(rt, t, 480, 640);
    const float want[] = {0, 0, 640, 480, 10, 10, 10, 20, 10, 10, 10.5f, 10.25f, 630, 470, 640, 480, NAN, 0, 1, 1};
    expect_same_f32("clip", tensor_f32(t), want, 20);
    box_nonempty_cpu(rt, t, 0, k);
    const uint8_t *v = tensor_u8(k);
    EXPECT(v[0] == 1 && v[1] == 0 && v[2] == 1 && v[3] == 1 && v[4] == 0, "nonempty(0): %d %d %d %d %d", v[0], v[1],
           v[2], v[3], v[4]);
    box_nonempty_cpu(rt, t, 0.25f, k); /* box 2 is 0.5 x 0.25: height not > 0.25 */
    EXPECT(v[0] == 1 && v[2] == 0 && v[3] == 1, "nonempty(0.25): %d %d %d", v[0], v[2], v[3]);
    ot_free(t), ot_free(k);
}

/* Runs batched NMS (keys may be NULL), checks the −1 tail, returns the count. */
static int run_nms(const float *b, const float *s, const int32_t *keys, int n, double thr, int32_t *out) {
    runtime *rt = ot_runtime(2);
    tensor *tb = boxes_t(b, n), *ts = vec_f32(s, n), *tk = keys ? vec_i32(keys, n) : NULL;
    tensor *keep = ot_const(DTYPE_I32, TSHAPE(n), 0, 0);
    int count = batched_nms_cpu(rt, tb, ts, tk, thr, keep);
    memcpy(out, keep->data, (size_t)n * 4);
    for (int i = count; i < n; i++) EXPECT(out[i] == -1, "keep[%d] = %d past the count %d", i, out[i], count);
    ot_free(tb), ot_free(ts), ot_free(tk), ot_free(keep);
    return count;
}

static void test_nms_hand(void) {
    int32_t k[8];
    /* ties: identical boxes, equal scores: the lower index survives (torchvision CPU) */
    const float dup[] = {0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10};
    const float s1[] = {0.5f, 0.9f, 0.5f, 0.9f};
    EXPECT(run_nms(dup, s1, NULL, 4, 0.5, k) == 1 && k[0] == 1, "kept %d", k[0]);
    /* equal scores, disjoint boxes: all kept, in index order */
    const float far[] = {0, 0, 1, 1, 5, 5, 6, 6, 10, 10, 11, 11, 20, 20, 21, 21};
    const float s2[] = {0.5f, 0.5f, 0.7f, 0.5f};
    const int32_t want2[] = {2, 0, 1, 3};
    EXPECT(run_nms(far, s2, NULL, 4, 0.5, k) == 4 && expect_idx("ties by index", k, want2, 4));
    /* IoU exactly 0.5 at threshold 0.5 is not suppressed (strict >); at 0.49 it is */
    const float half[] = {0, 0, 10, 10, 0, 0, 10, 5};
    const float s3[] = {0.9f, 0.8f};
    EXPECT(run_nms(half, s3, NULL, 2, 0.5, k) == 2, "IoU == thr must keep both");
    EXPECT(run_nms(half, s3, NULL, 2, 0.49, k) == 1 && k[0] == 0, "IoU 0.5 > 0.49 must suppress");
    /* the f32 IoU 3/10 = 0.300000012 against the double 0.3: suppressed, as torchvision */
    const float third[] = {0, 0, 10, 1, 0, 0, 3, 1};
    EXPECT(run_nms(third, s3, NULL, 2, 0.3, k) == 1, "f32 IoU 0.3f > 0.3 (double) must suppress");
    /* touching boxes never suppress, whatever the threshold */
    const float touch[] = {0, 0, 10, 10, 10, 0, 20, 10};
    EXPECT(run_nms(touch, s3, NULL, 2, 0.0, k) == 2, "touching boxes have IoU 0");
    /* batched: the same boxes under different keys do not interact; the result is merged
     * by score */
    const int32_t keys[] = {7, -3, 7, -3};
    const float s4[] = {0.6f, 0.9f, 0.8f, 0.6f};
    const int32_t want4[] = {1, 2};
    EXPECT(run_nms(dup, s4, keys, 4, 0.5, k) == 2 && expect_idx("batched", k, want4, 2));
    /* n = 0 is allowed */
    EXPECT(run_nms(NULL, NULL, NULL, 0, 0.5, k) == 0);
}

/* An independent brute force: insertion-sort by (score desc, index asc), then greedy. */
static int brute_nms(const float *b, const float *s, const int32_t *keys, int n, double thr, int32_t *out) {
    int32_t *ord = malloc((size_t)n * 4);
    uint8_t *sup = calloc((size_t)n, 1);
    for (int i = 0; i < n; i++) {
        int p = i;
        while (p > 0 && s[ord[p - 1]] < s[i]) ord[p] = ord[p - 1], p--;
        ord[p] = i;
    }
    int c = 0;
    for (int p = 0; p < n; p++) {
        int i = ord[p];
        if (sup[i]) continue;
        out[c++] = i;
        for (int q = p + 1; q < n; q++) {
            int j = ord[q];
            if (keys && keys[j] != keys[i]) continue;
            const float *x = b + 4 * i, *y = b + 4 * j;
            double iw = fmin(x[2], y[2]) - fmax(x[0], y[0]), ih = fmin(x[3], y[3]) - fmax(x[1], y[1]);
            if (iw <= 0 || ih <= 0) continue;
            float inter = (float)(iw * ih); /* exact: quarter-pixel coordinates below */
            float u = ((x[2] - x[0]) * (x[3] - x[1]) + (y[2] - y[0]) * (y[3] - y[1])) - inter;
            if ((double)(inter / u) > thr) sup[j] = 1;
        }
    }
    free(ord), free(sup);
    return c;
}

/* Clustered boxes on a quarter-pixel grid, 2-decimal scores: many ties and overlaps. */
static void random_case(int n, int nkeys, float *b, float *s, int32_t *k) {
    float cx[16], cy[16];
    for (int c = 0; c < 16; c++) cx[c] = (float)ot_uniform(0, 500), cy[c] = (float)ot_uniform(0, 500);
    for (int i = 0; i < n; i++) {
        int c = (int)ot_uniform(0, 16);
        float x0 = roundf((cx[c] + (float)ot_uniform(-8, 8)) * 4) / 4, y0 = roundf((cy[c] + (float)ot_uniform(-8, 8)) * 4) / 4;
        b[4 * i] = x0, b[4 * i + 1] = y0;
        b[4 * i + 2] = x0 + roundf((float)ot_uniform(10, 60) * 4) / 4;
        b[4 * i + 3] = y0 + roundf((float)ot_uniform(10, 60) * 4) / 4;
        s[i] = roundf((float)ot_uniform(0, 100)) / 100;
        if (k) k[i] = (int32_t)ot_uniform(0, nkeys);
    }
}

static void test_nms_random(void) {
    ot_seed(7);
    const int n = 2000;
    float *b = malloc((size_t)n * 16), *s = malloc((size_t)n * 4);
    int32_t *k = malloc((size_t)n * 4), *got = malloc((size_t)n * 4), *want = malloc((size_t)n * 4);
    const double thrs[] = {0.3, 0.5, 0.7};
    for (int t = 0; t < 3; t++)
        for (int batched = 0; batched < 2; batched++) {
            random_case(n, 7, b, s, batched ? k : NULL);
            int c1 = run_nms(b, s, batched ? k : NULL, n, thrs[t], got);
            int c2 = brute_nms(b, s, batched ? k : NULL, n, thrs[t], want);
            char what[64];
            snprintf(what, sizeof what, "%s NMS thr %.1f vs brute force", batched ? "batched" : "plain", thrs[t]);
            EXPECT(c1 == c2, "%s: kept %d, want %d", what, c1, c2);
            if (c1 == c2) expect_idx(what, got, want, c1);
            EXPECT(c1 > 20 && c1 < n - 20, "%s: a degenerate case (kept %d of %d)", what, c1, n);
        }
    free(b), free(s), free(k), free(got), free(want);
}

static void test_topk_hand(void) {
    runtime *rt = ot_runtime(2);
    const float v[] = {0.5f, 0.9f, 0.5f, 0.1f, /* segment 0 */ 0.3f, /* segment 1 */ /* segment 2 empty */
                       0.2f, 0.2f, 0.2f, NAN, -0.f, 0.f};
    const int32_t off[] = {0, 4, 5, 5, 11};
    tensor *sc = vec_f32(v, 11), *idx = ot_const(DTYPE_I32, TSHAPE(4, 3), 0, 0);
    topk_segments_cpu(rt, sc, off, 4, 3, idx);
    const int32_t want[] = {1, 0, 2, 4, -1, -1, -1, -1, -1, 8, 5, 6};
    expect_idx("top 3 per segment", tensor_i32(idx), want, 12);
    ot_free(sc), ot_free(idx);
}

/* ---- torchvision goldens ----------------------------------------------------------- */

static safetensors gst;
static int gst_open(void) {
    static int tried = 0, ok = 0;
    char err[512];
    if (!tried) {
        tried = 1;
        ok = safetensors_open(&gst, GOLDEN, err, sizeof err) == 0;
        if (!ok) printf("  %s\n", err);
        else printf("  golden file by torch %s, torchvision %s\n", safetensors_meta(&gst, "torch"),
                    safetensors_meta(&gst, "torchvision"));
    }
    return ok;
}

/* A CPU tensor copy of entry `name` (NULL and a failure if absent). */
static tensor *gload(const char *name) {
    const st_tensor *e = safetensors_find(&gst, name);
    if (!e) {
        test_fail_at(__FILE__, __LINE__, "%s: no tensor %s", GOLDEN, name);
        return NULL;
    }
    tensor *t = ot_const(e->dtype, e->shape, e->ndim, 0, 0);
    memcpy(t->data, safetensors_data(&gst, e), e->bytes);
    return t;
}

static void expect_close_f32(const char *what, const float *got, const float *want, int64_t n, double atol,
                             double rtol) {
    double *g = malloc((size_t)(n ? n : 1) * 8), *w = malloc((size_t)(n ? n : 1) * 8);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        g[i] = got[i], w[i] = want[i];
        if (fabs(g[i] - w[i]) > worst) worst = fabs(g[i] - w[i]);
    }
    if (EXPECT_CLOSE(what, g, w, n, atol, rtol)) printf("  %-28s worst |err| %.3g\n", what, worst);
    free(g), free(w);
}

static void test_golden_iou_coder(void) {
    REQUIRE(gst_open(), "cannot read %s (run from the repository root)", GOLDEN);
    runtime *rt = ot_runtime(2);
    tensor *a = gload("iou.a"), *b = gload("iou.b"), *want = gload("iou.iou");
    REQUIRE(a && b && want);
    tensor *got = ot_const(DTYPE_F32, want->shape, 2, 0, 0);
    box_iou_cpu(rt, a, b, 0, b->shape[0], got);
    expect_close_f32("IoU vs box_iou", tensor_f32(got), tensor_f32(want), tensor_numel(want), 0, 1e-6);
    ot_free(a), ot_free(b), ot_free(want), ot_free(got);
    for (int i = 0; i < 2; i++) {
        char n[64];
        tensor *t[8];
        const char *f[] = {"code%d.src", "code%d.tgt", "code%d.weights", "code%d.deltas",
                           "dec%d.src", "dec%d.deltas", "dec%d.weights", "dec%d.out"};
        for (int j = 0; j < 8; j++) snprintf(n, sizeof n, f[j], i), t[j] = gload(n);
        for (int j = 0; j < 8; j++) REQUIRE(t[j]);
        const float *w = tensor_f32(t[2]);
        box_coder c = box_coder_make(w[0], w[1], w[2], w[3]);
        tensor *d = ot_const(DTYPE_F32, t[3]->shape, 2, 0, 0), *o = ot_const(DTYPE_F32, t[7]->shape, 2, 0, 0);
        box_encode_cpu(rt, &c, t[0], t[1], d);
        snprintf(n, sizeof n, "encode %d vs d2 formula", i);
        expect_close_f32(n, tensor_f32(d), tensor_f32(t[3]), tensor_numel(d), 1e-6, 1e-6);
        box_decode_cpu(rt, &c, t[4], t[5], o);
        snprintf(n, sizeof n, "decode %d vs d2 formula", i);
        expect_close_f32(n, tensor_f32(o), tensor_f32(t[7]), tensor_numel(o), 1e-4, 1e-6);
        for (int j = 0; j < 8; j++) ot_free(t[j]);
        ot_free(d), ot_free(o);
    }
    tensor *cb = gload("clip.boxes"), *hw = gload("clip.hw"), *cw = gload("clip.out");
    REQUIRE(cb && hw && cw);
    box_clip_cpu(rt, cb, tensor_f32(hw)[0], tensor_f32(hw)[1]);
    expect_same_f32("clip vs torch.clamp", tensor_f32(cb), tensor_f32(cw), tensor_numel(cw));
    tensor *nb = gload("nonempty.boxes"), *nt = gload("nonempty.thr"), *nk = gload("nonempty.keep");
    REQUIRE(nb && nt && nk);
    tensor *k8 = ot_const(DTYPE_U8, TSHAPE(nb->shape[0]), 0, 0);
    box_nonempty_cpu(rt, nb, tensor_f32(nt)[0], k8);
    int32_t *k32 = malloc((size_t)nb->shape[0] * 4);
    for (int i = 0; i < nb->shape[0]; i++) k32[i] = tensor_u8(k8)[i];
    expect_idx("nonempty", k32, tensor_i32(nk), nb->shape[0]);
    free(k32), ot_free(cb), ot_free(hw), ot_free(cw), ot_free(nb), ot_free(nt), ot_free(nk), ot_free(k8);
}

static int i32_cmp(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* One NMS golden: prefix "nms3." or "bnms1." (with keys). torchvision's plain CPU nms ranks
 * with a stable sort, so its order is compared as is. Its batched_nms with more than 1000
 * boxes (the per-key path) merges the keys with an unstable sort, so among equal scores its
 * order is arbitrary: there each run of equal scores in its answer is put in index order
 * (our rule) first, which still checks the set and the score order exactly. */
static void golden_nms(runtime *rt, const char *prefix, int batched) {
    char n[64];
    snprintf(n, sizeof n, "%sboxes", prefix);
    tensor *b = gload(n);
    snprintf(n, sizeof n, "%sscores", prefix);
    tensor *s = gload(n);
    snprintf(n, sizeof n, "%sthr", prefix);
    tensor *thr = gload(n);
    snprintf(n, sizeof n, "%skeep", prefix);
    tensor *want = gload(n);
    tensor *keys = NULL;
    if (batched) snprintf(n, sizeof n, "%skeys", prefix), keys = gload(n);
    if (b && s && thr && want && (keys || !batched)) {
        int32_t *w = tensor_i32(want);
        const float *sv = tensor_f32(s);
        for (int r0 = 0, r1; batched && r0 < want->shape[0]; r0 = r1) {
            for (r1 = r0 + 1; r1 < want->shape[0] && sv[w[r1]] == sv[w[r0]];) r1++;
            qsort(w + r0, (size_t)(r1 - r0), sizeof *w, i32_cmp);
        }
        tensor *keep = ot_const(DTYPE_I32, TSHAPE(b->shape[0]), 0, 0);
        int c = batched_nms_cpu(rt, b, s, keys, tensor_i32(thr)[0] / 1000.0, keep);
        EXPECT(c == want->shape[0], "%s: kept %d, torchvision %d", prefix, c, want->shape[0]);
        snprintf(n, sizeof n, "%s vs torchvision", prefix);
        if (c == want->shape[0] && expect_idx(n, tensor_i32(keep), tensor_i32(want), c))
            printf("  %-28s %d of %d kept, identical\n", n, c, b->shape[0]);
        ot_free(keep);
    }
    ot_free(b), ot_free(s), ot_free(thr), ot_free(want), ot_free(keys);
}

static void test_golden_nms(void) {
    REQUIRE(gst_open(), "cannot read %s", GOLDEN);
    runtime *rt = ot_runtime(2);
    char p[32];
    for (int i = 0; i < 5; i++) snprintf(p, sizeof p, "nms%d.", i), golden_nms(rt, p, 0);
    for (int i = 0; i < 3; i++) snprintf(p, sizeof p, "bnms%d.", i), golden_nms(rt, p, 1);
}

static void test_golden_topk(void) {
    REQUIRE(gst_open(), "cannot read %s", GOLDEN);
    runtime *rt = ot_runtime(2);
    tensor *s = gload("topk.scores"), *off = gload("topk.off"), *k = gload("topk.k"), *want = gload("topk.idx");
    REQUIRE(s && off && k && want);
    tensor *idx = ot_const(DTYPE_I32, want->shape, 2, 0, 0);
    topk_segments_cpu(rt, s, tensor_i32(off), off->shape[0] - 1, tensor_i32(k)[0], idx);
    expect_idx("top k vs stable torch.sort", tensor_i32(idx), tensor_i32(want), (int)tensor_numel(want));
    ot_free(s), ot_free(off), ot_free(k), ot_free(want), ot_free(idx);
}

/* ---- CPU-vs-GPU parity ------------------------------------------------------------- */

/* Fresh inputs each run; the seed is printed and BOXES_SEED=N repeats it. */
__attribute__((unused)) static uint64_t boxes_seed(void) {
    static uint64_t seed = 0;
    if (!seed) {
        const char *e = getenv("BOXES_SEED");
        seed = e ? strtoull(e, NULL, 10) : ((uint64_t)time(NULL) << 16) ^ (uint64_t)getpid();
        if (!seed) seed = 1;
        printf("  parity seed %llu (BOXES_SEED=%llu repeats it)\n", (unsigned long long)seed, (unsigned long long)seed);
    }
    return seed;
}

#if MRC_CUDA
static runtime *gpu_rt(void) {
    static runtime gpu;
    static int made = 0;
    if (!made) {
        runtime_config cfg = runtime_config_default();
        cfg.device = "cuda";
        cfg.quiet = 1;
        runtime_init(&gpu, &cfg);
        made = 1;
    }
    return &gpu;
}
static tensor *to_gpu(const tensor *h) {
    tensor *t = malloc(sizeof *t);
    *t = tensor_alloc(h->dtype, DEVICE_CUDA, h->shape, h->ndim);
    tensor_copy(t, h);
    return t;
}
static tensor *to_cpu(const tensor *d) {
    tensor *t = ot_const(d->dtype, d->shape, d->ndim, 0, 0);
    tensor_copy(t, d);
    return t;
}
#endif

static void test_gpu_boxes_parity(void) {
    REQUIRE_GPU();
#if MRC_CUDA
    runtime *rt = ot_runtime(2), *g = gpu_rt();
    ot_seed(boxes_seed());
    /* IoU: a chunk of a larger anchor set, exact */
    const int N = 37, M = 5000, b0 = 100, b1 = 4100;
    float *bb = malloc((size_t)M * 16), *sc = malloc((size_t)M * 4);
    random_case(M, 1, bb, sc, NULL);
    tensor *a = boxes_t(bb + 4 * 7, N), *b = boxes_t(bb, M), *ia = to_gpu(a), *ib = to_gpu(b);
    tensor *ref = ot_const(DTYPE_F32, TSHAPE(N, b1 - b0), 0, 0), *dev = to_gpu(ref);
    box_iou_cpu(rt, a, b, b0, b1, ref);
    box_iou_gpu(g, ia, ib, b0, b1, dev);
    tensor *back = to_cpu(dev);
    expect_same_f32("IoU gpu vs cpu", tensor_f32(back), tensor_f32(ref), tensor_numel(ref));
    ot_free(back), ot_free(ref), ot_free(dev);
    /* coder: encode then class-specific decode (K = 5) with both weight sets */
    box_coder coders[3] = {box_coder_rpn(), box_coder_roi(), box_coder_rpn()};
    coders[2].clamp_below = 1; /* mmdet */
    tensor *t = boxes_t(bb + 4 * 1000, N), *it = to_gpu(t);
    for (int c = 0; c < 2; c++) {
        tensor *d = ot_const(DTYPE_F32, TSHAPE(N, 4), 0, 0), *dd = to_gpu(d);
        box_encode_cpu(rt, &coders[c], a, t, d);
        box_encode_gpu(g, &coders[c], ia, it, dd);
        back = to_cpu(dd);
        expect_close_f32("encode gpu vs cpu", tensor_f32(back), tensor_f32(d), 4 * N, 1e-6, 1e-6);
        ot_free(back);
        tensor *del = ot_const(DTYPE_F32, TSHAPE(N, 20), -8, 8), *ddel = to_gpu(del);
        tensor *o = ot_const(DTYPE_F32, TSHAPE(N, 20), 0, 0), *od = to_gpu(o);
        box_decode_cpu(rt, &coders[c], a, del, o);
        box_decode_gpu(g, &coders[c], ia, ddel, od);
        back = to_cpu(od);
        expect_close_f32("decode gpu vs cpu", tensor_f32(back), tensor_f32(o), 20 * N, 1e-4, 1e-6);
        /* clip and nonempty of the decoded boxes, exact */
        box_clip_cpu(rt, o, 300, 400);
        box_clip_gpu(g, od, 300, 400);
        ot_free(back);
        back = to_cpu(od);
        expect_close_f32("clip gpu vs cpu", tensor_f32(back), tensor_f32(o), 20 * N, 1e-4, 1e-6);
        tensor o4 = tensor_reshape(o, TSHAPE(5 * N, 4)), od4 = tensor_reshape(od, TSHAPE(5 * N, 4));
        tensor *k = ot_const(DTYPE_U8, TSHAPE(5 * N), 0, 0), *kd = to_gpu(k);
        box_nonempty_cpu(rt, &o4, 1.0f, k);
        box_nonempty_gpu(g, &od4, 1.0f, kd);
        tensor *kb = to_cpu(kd);
        EXPECT(memcmp(kb->data, k->data, (size_t)5 * N) == 0, "nonempty gpu vs cpu differ");
        ot_free(kb), ot_free(k), ot_free(kd), ot_free(back), ot_free(d), ot_free(dd), ot_free(del), ot_free(ddel);
        ot_free(o), ot_free(od);
    }
    ot_free(a), ot_free(b), ot_free(ia), ot_free(ib), ot_free(t), ot_free(it);
    free(bb), free(sc);
    runtime_step_end(g);
#endif
}

static void test_gpu_nms_parity(void) {
    REQUIRE_GPU();
#if MRC_CUDA
    runtime *rt = ot_runtime(2), *g = gpu_rt();
    ot_seed(boxes_seed() + 1);
    /* sizes at the 64-box block edges, a large single group, LVIS-like many keys */
    const int ns[] = {1, 63, 64, 65, 2000, 6000, 30000};
    const int nk[] = {1, 1, 3, 1, 7, 1, 1203};
    for (int c = 0; c < 7; c++) {
        int n = ns[c];
        float *b = malloc((size_t)n * 16), *s = malloc((size_t)n * 4);
        int32_t *k = malloc((size_t)n * 4);
        random_case(n, nk[c], b, s, k);
        tensor *tb = boxes_t(b, n), *ts = vec_f32(s, n), *tk = vec_i32(k, n);
        tensor *db = to_gpu(tb), *ds = to_gpu(ts), *dk = to_gpu(tk);
        tensor *keep = ot_const(DTYPE_I32, TSHAPE(n), 0, 0), *dkeep = to_gpu(keep);
        for (int batched = 0; batched < 2; batched++) {
            int c1 = batched_nms_cpu(rt, tb, ts, batched ? tk : NULL, 0.5, keep);
            int c2 = batched_nms_gpu(g, db, ds, batched ? dk : NULL, 0.5, dkeep);
            tensor *back = to_cpu(dkeep);
            char what[64];
            snprintf(what, sizeof what, "%s NMS n %d keys %d gpu vs cpu", batched ? "batched" : "plain", n,
                     batched ? nk[c] : 1);
            EXPECT(c1 == c2, "%s: kept %d vs %d", what, c2, c1);
            if (expect_idx(what, tensor_i32(back), tensor_i32(keep), n)) printf("  %-40s %d kept\n", what, c1);
            ot_free(back);
            runtime_step_end(g);
        }
        ot_free(tb), ot_free(ts), ot_free(tk), ot_free(db), ot_free(ds), ot_free(dk), ot_free(keep), ot_free(dkeep);
        free(b), free(s), free(k);
    }
    /* top k per segment: RPN-like levels of one image, 2-decimal scores (ties) */
    const int32_t off[] = {0, 120000, 150000, 157500, 159375, 159375, 159378};
    int n = off[6], S = 6, kk = 1000;
    tensor *s = ot_const(DTYPE_F32, TSHAPE(n), 0, 0);
    for (int i = 0; i < n; i++) tensor_f32(s)[i] = roundf((float)ot_uniform(-300, 300)) / 100;
    tensor *ds = to_gpu(s), *idx = ot_const(DTYPE_I32, TSHAPE(S, kk), 0, 0), *didx = to_gpu(idx);
    topk_segments_cpu(rt, s, off, S, kk, idx);
    topk_segments_gpu(g, ds, off, S, kk, didx);
    tensor *back = to_cpu(didx);
    expect_idx("top k gpu vs cpu", tensor_i32(back), tensor_i32(idx), S * kk);
    ot_free(back), ot_free(s), ot_free(ds), ot_free(idx), ot_free(didx);
    runtime_step_end(g);
#endif
}

int main(void) {
    RUN(test_iou_hand);
    RUN(test_coder_hand);
    RUN(test_clip_nonempty_hand);
    RUN(test_nms_hand);
    RUN(test_nms_random);
    RUN(test_topk_hand);
    RUN(test_golden_iou_coder);
    RUN(test_golden_nms);
    RUN(test_golden_topk);
    RUN(test_gpu_boxes_parity);
    RUN(test_gpu_nms_parity);
    safetensors_close(&gst);
    return test_finish("test_boxes");
}

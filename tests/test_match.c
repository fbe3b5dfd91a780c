/* test_match.c: the matcher, the subsampler and the polygon mask targets (src/ops/match.h).
 *
 * Matcher: hand-made IoU matrices at the exact fp32 thresholds (d2's bins are
 * v >= low && v < high, the scalar threshold compared in fp32 as torch promotes a Python
 * float against a float32 tensor), argmax ties, low-quality matches with ties in both
 * variants, G = 0, bad IoU; and random tie-heavy matrices against a test-local transcription
 * of d2's formulation (per-bin masks, then "matrix == gt_max" for low quality), one-shot and
 * streamed in random chunks in random order.
 * Subsampler: exact counts on hand cases; uniformity over many seeded draws (each
 * candidate's frequency within 5 binomial sd); determinism per (seed, step, image, stage).
 * Mask targets: hand-computed small targets (the 4x4 triangle below is worked out by hand),
 * and random polygons against an independent even-odd point-in-polygon test at the pixel
 * centres (the COCO rasteriser's effective rule), pixels near an edge excused. No golden
 * from detectron2 itself: numpy and pycocotools are not installed here; the rasteriser is
 * checked bit-exact against pycocotools in test_rle.c. */
#include "test.h"

#include "core/check.h"
#include "ops/match.h"

#include <stdint.h>

/* ---- test-local helpers -------------------------------------------------------------- */

static uint64_t sm_state = 0x243f6a8885a308d3ull;
static uint32_t rnd(void) { /* splitmix64, high half: the test's own inputs */
    uint64_t z = (sm_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}
static int rnd_int(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }
static double rnd_unit(void) { return rnd() / 4294967296.0; }

/* d2's Matcher, transcribed as a second formulation: bins as masks over [-inf, thr.., +inf),
 * labels initialised to 1 as d2 does, then low quality via the equality mask. */
static void ref_match(const match_cfg *c, const float *iou, int G, int A, int32_t *matched, int8_t *labels) {
    if (G == 0) {
        for (int a = 0; a < A; a++) {
            matched[a] = -1;
            labels[a] = c->labels[0];
        }
        return;
    }
    float edges[MATCH_MAX_THRESHOLDS + 2];
    edges[0] = -INFINITY;
    for (int i = 0; i < c->n_thresholds; i++) edges[i + 1] = c->thresholds[i];
    edges[c->n_thresholds + 1] = INFINITY;
    float *gt_max = malloc(sizeof *gt_max * (size_t)G);
    for (int g = 0; g < G; g++) {
        gt_max[g] = iou[(int64_t)g * A];
        for (int a = 1; a < A; a++) gt_max[g] = fmaxf(gt_max[g], iou[(int64_t)g * A + a]);
    }
    for (int a = 0; a < A; a++) {
        int arg = 0;
        for (int g = 1; g < G; g++)
            if (iou[(int64_t)g * A + a] > iou[(int64_t)arg * A + a]) arg = g;
        float v = iou[(int64_t)arg * A + a];
        matched[a] = arg;
        labels[a] = 1;
        for (int b = 0; b <= c->n_thresholds; b++)
            if (v >= edges[b] && v < edges[b + 1]) labels[a] = c->labels[b];
    }
    if (c->allow_low_quality)
        for (int g = 0; g < G; g++) {
            if (c->variant == MATCH_VARIANT_MMDET && !(gt_max[g] >= c->min_pos_iou)) continue;
            for (int a = 0; a < A; a++)
                if (iou[(int64_t)g * A + a] == gt_max[g]) {
                    labels[a] = 1;
                    if (c->variant == MATCH_VARIANT_MMDET) matched[a] = g;
                }
        }
    free(gt_max);
}

static int run_match(const match_cfg *c, const float *iou, int G, int A, int32_t *matched, int8_t *labels) {
    float gt_max[64], best[256];
    if (G > 64 || A > 256) return 0;
    match_cpu(c, iou, G, A, gt_max, best, matched, labels);
    return 1;
}

static void expect_labels(const char *what, const int8_t *got, const int8_t *want, int n) {
    for (int i = 0; i < n; i++) EXPECT(got[i] == want[i], "%s: label[%d] = %d, want %d", what, i, got[i], want[i]);
}
static void expect_matched(const char *what, const int32_t *got, const int32_t *want, int n) {
    for (int i = 0; i < n; i++) EXPECT(got[i] == want[i], "%s: matched[%d] = %d, want %d", what, i, got[i], want[i]);
}

/* ---- matcher: hand cases ------------------------------------------------------------- */

/* One GT; each candidate's IoU sits on or next to a threshold. */
static void test_match_rpn_bins_at_thresholds(void) {
    float lo3 = nextafterf(0.3f, 0), lo7 = nextafterf(0.7f, 0);
    float iou[] = {0.0f, lo3, 0.3f, 0.5f, lo7, 0.7f, 1.0f};
    int8_t want[] = {0, 0, -1, -1, -1, 1, 1};
    match_cfg c = match_cfg_rpn();
    c.allow_low_quality = 0; /* bins alone (low quality would promote the 1.0) */
    int32_t m[7];
    int8_t l[7];
    REQUIRE(run_match(&c, iou, 1, 7, m, l));
    expect_labels("rpn bins", l, want, 7);
    for (int a = 0; a < 7; a++) EXPECT(m[a] == 0, "matched[%d] = %d", a, m[a]);
}

static void test_match_roi_bins_at_threshold(void) {
    float iou[] = {0.0f, nextafterf(0.5f, 0), 0.5f, nextafterf(0.5f, 1), 1.0f};
    int8_t want[] = {0, 0, 1, 1, 1};
    match_cfg c = match_cfg_roi();
    int32_t m[5];
    int8_t l[5];
    REQUIRE(run_match(&c, iou, 1, 5, m, l));
    expect_labels("roi bins", l, want, 5);
}

/* Argmax over G with ties: the lowest g, as torch.max(dim=0). */
static void test_match_argmax_ties_lowest_g(void) {
    /* G = 3 rows, A = 4 columns */
    float iou[] = {0.2f, 0.8f, 0.0f, 0.6f,
                   0.8f, 0.8f, 0.0f, 0.6f,
                   0.8f, 0.1f, 0.0f, 0.7f};
    int32_t want_m[] = {1, 0, 0, 2};
    int8_t want_l[] = {1, 1, 0, 1};
    match_cfg c = match_cfg_roi();
    int32_t m[4];
    int8_t l[4];
    REQUIRE(run_match(&c, iou, 3, 4, m, l));
    expect_matched("argmax ties", m, want_m, 4);
    expect_labels("argmax ties", l, want_l, 4);
}

/* Low-quality matches, worked by hand.
 *   g0: 0.10 0.40 0.40 0.05 0.00      gt_max[0] = 0.40 at a1, a2 (a tie)
 *   g1: 0.20 0.45 0.10 0.60 0.00      gt_max[1] = 0.60 at a3
 * best / argmax: a0 0.20 g1 (neg), a1 0.45 g1 (ign), a2 0.40 g0 (ign), a3 0.60 g1 (ign),
 * a4 0 g0 (neg). */
static const float LQ[] = {0.10f, 0.40f, 0.40f, 0.05f, 0.00f,
                           0.20f, 0.45f, 0.10f, 0.60f, 0.00f};

static void test_match_low_quality_d2(void) {
    match_cfg c = match_cfg_rpn();
    int32_t m[5];
    int8_t l[5];
    REQUIRE(run_match(&c, LQ, 2, 5, m, l));
    /* a1 is promoted by g0 but keeps its argmax g1; both tied a1, a2 are promoted. */
    int32_t want_m[] = {1, 1, 0, 1, 0};
    int8_t want_l[] = {0, 1, 1, 1, 0};
    expect_matched("d2 low quality", m, want_m, 5);
    expect_labels("d2 low quality", l, want_l, 5);
    c.allow_low_quality = 0;
    int8_t want_off[] = {0, -1, -1, -1, 0};
    REQUIRE(run_match(&c, LQ, 2, 5, m, l));
    expect_labels("low quality off", l, want_off, 5);
}

static void test_match_low_quality_mmdet(void) {
    match_cfg c = match_cfg_rpn_mmdet();
    int32_t m[5];
    int8_t l[5];
    REQUIRE(run_match(&c, LQ, 2, 5, m, l));
    int32_t want_m[] = {1, 0, 0, 1, 0}; /* a1 re-assigned to g0, the GT that promoted it */
    int8_t want_l[] = {0, 1, 1, 1, 0};
    expect_matched("mmdet 0.3", m, want_m, 5);
    expect_labels("mmdet 0.3", l, want_l, 5);
    c.min_pos_iou = 0.5f; /* g0's best (0.40) no longer qualifies */
    REQUIRE(run_match(&c, LQ, 2, 5, m, l));
    int32_t want_m5[] = {1, 1, 0, 1, 0};
    int8_t want_l5[] = {0, -1, -1, 1, 0};
    expect_matched("mmdet 0.5", m, want_m5, 5);
    expect_labels("mmdet 0.5", l, want_l5, 5);
    /* One candidate is the best of two GTs: d2 keeps the argmax (lowest g), mmdet the
     * highest promoting g. */
    float two[] = {0.5f, 0.1f,
                   0.5f, 0.2f};
    c = match_cfg_rpn_mmdet();
    REQUIRE(run_match(&c, two, 2, 2, m, l));
    EXPECT(m[0] == 1 && l[0] == 1, "mmdet double best: matched %d label %d, want 1 1", m[0], l[0]);
    c = match_cfg_rpn();
    REQUIRE(run_match(&c, two, 2, 2, m, l));
    EXPECT(m[0] == 0 && l[0] == 1, "d2 double best: matched %d label %d, want 0 1", m[0], l[0]);
}

/* A GT that overlaps nothing: its max is 0, so under d2 every candidate with IoU 0 to it
 * turns positive (d2 has no guard); mmdet's min_pos_iou stops that. */
static void test_match_low_quality_zero_max(void) {
    float iou[] = {0, 0, 0};
    int32_t m[3];
    int8_t l[3];
    match_cfg c = match_cfg_rpn();
    REQUIRE(run_match(&c, iou, 1, 3, m, l));
    for (int a = 0; a < 3; a++) EXPECT(l[a] == 1, "d2: label[%d] = %d, want 1", a, l[a]);
    c = match_cfg_rpn_mmdet();
    REQUIRE(run_match(&c, iou, 1, 3, m, l));
    for (int a = 0; a < 3; a++) EXPECT(l[a] == 0, "mmdet: label[%d] = %d, want 0", a, l[a]);
}

static void test_match_no_gt(void) {
    match_cfg cfgs[3] = {match_cfg_rpn(), match_cfg_roi(), match_cfg_rpn_mmdet()};
    for (int k = 0; k < 3; k++) {
        int32_t m[4] = {7, 7, 7, 7};
        int8_t l[4] = {9, 9, 9, 9};
        float gt_max[1], best[4];
        match_cpu(&cfgs[k], NULL, 0, 4, gt_max, best, m, l);
        for (int a = 0; a < 4; a++)
            EXPECT(l[a] == 0 && m[a] == -1, "cfg %d: candidate %d: label %d matched %d, want 0 -1", k, a, l[a], m[a]);
    }
}

static void bad_iou_child(void *arg) {
    float iou[] = {0.5f, 0.2f, *(float *)arg};
    match_cfg c = match_cfg_rpn();
    int32_t m[3];
    int8_t l[3];
    run_match(&c, iou, 1, 3, m, l);
}
static void test_match_bad_iou_stops(void) {
    float bad[2] = {NAN, -0.25f};
    for (int k = 0; k < 2; k++) {
        char out[1024];
        int st = test_run_child(bad_iou_child, &bad[k], out, sizeof out);
        EXPECT(st == 1, "IoU %g: exit status %d, want 1 (output: %s)", (double)bad[k], st, out);
        EXPECT(strstr(out, "IoU(gt 0, candidate 2)") != NULL, "IoU %g: message: %s", (double)bad[k], out);
    }
}

/* ---- matcher: random tie-heavy matrices, one-shot and streamed ----------------------- */

/* IoUs from a small set with the thresholds in it, so bin edges and ties are frequent;
 * each GT row has its own cap (a random element of the set), so some GTs peak below 0.7
 * and low-quality matches happen. G rows of A. */
static void tie_heavy(float *iou, int G, int A) {
    static const float vals[] = {0.0f, 0.1f, 0.25f, 0.3f, 0.45f, 0.5f, 0.6f, 0.7f, 0.75f, 0.9f, 1.0f};
    for (int g = 0; g < G; g++) {
        int cap = rnd_int(0, (int)(sizeof vals / sizeof *vals) - 1);
        for (int a = 0; a < A; a++) {
            int k = rnd_int(0, 5);
            iou[(int64_t)g * A + a] = k < 2 ? 0.0f : k == 2 ? (float)rnd_unit() * vals[cap] : vals[rnd_int(0, cap)];
        }
    }
}

/* Streams iou [G, A] in random-sized chunks visited in random order, each chunk copied to
 * a compact [G, n] buffer (pass 1) or read in place with ld = A (pass 2). */
static void match_streamed(const match_cfg *c, const float *iou, int G, int A, int32_t *m, int8_t *l) {
    int starts[256], lens[256], nch = 0;
    for (int a = 0; a < A;) {
        int n = rnd_int(1, 97);
        if (n > A - a) n = A - a;
        starts[nch] = a;
        lens[nch++] = n;
        a += n;
    }
    int order[256];
    for (int i = 0; i < nch; i++) order[i] = i;
    for (int i = nch - 1; i > 0; i--) {
        int j = rnd_int(0, i), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    float *gt_max = malloc(sizeof *gt_max * (size_t)(G + 1)), *best = malloc(sizeof *best * (size_t)A);
    float *chunk = malloc(sizeof *chunk * (size_t)(G * 97 + 1));
    match_begin(G, gt_max);
    for (int k = 0; k < nch; k++) {
        int a0 = starts[order[k]], n = lens[order[k]];
        for (int g = 0; g < G; g++) memcpy(chunk + g * n, iou + (int64_t)g * A + a0, sizeof *chunk * (size_t)n);
        match_scan_chunk(chunk, n, G, a0, n, gt_max, best, m);
    }
    match_threshold(c, G, A, best, l);
    if (c->allow_low_quality)
        for (int k = nch - 1; k >= 0; k--) {
            int a0 = starts[order[k]], n = lens[order[k]];
            match_low_quality_chunk(c, iou + a0, A, G, a0, n, gt_max, m, l);
        }
    free(gt_max);
    free(best);
    free(chunk);
}

static void test_match_random_vs_reference_and_streamed(void) {
    match_cfg cfgs[4] = {match_cfg_rpn(), match_cfg_roi(), match_cfg_rpn_mmdet(), match_cfg_rpn()};
    cfgs[3].allow_low_quality = 0;
    enum { A = 2000 };
    float *iou = malloc(sizeof *iou * 9 * A), *gt_max = malloc(sizeof *gt_max * 9), *best = malloc(sizeof *best * A);
    int32_t *m1 = malloc(sizeof *m1 * A), *m2 = malloc(sizeof *m2 * A), *mr = malloc(sizeof *mr * A);
    int8_t *l1 = malloc(A), *l2 = malloc(A), *lr = malloc(A);
    int bad = 0, promoted = 0, reassigned = 0;
    for (int trial = 0; trial < 40 && !bad; trial++) {
        int G = rnd_int(0, 9);
        tie_heavy(iou, G, A);
        const match_cfg *c = &cfgs[trial % 4];
        ref_match(c, iou, G, A, mr, lr);
        match_cpu(c, iou, G, A, gt_max, best, m1, l1);
        match_streamed(c, iou, G, A, m2, l2);
        for (int a = 0; a < A; a++) {
            if (m1[a] != mr[a] || l1[a] != lr[a] || m2[a] != mr[a] || l2[a] != lr[a]) {
                if (bad++ < 5)
                    printf("    trial %d cfg %d G %d candidate %d: one-shot (%d, %d), streamed (%d, %d), reference "
                           "(%d, %d)\n", trial, trial % 4, G, a, m1[a], l1[a], m2[a], l2[a], mr[a], lr[a]);
            }
            if (G > 0 && c->allow_low_quality && lr[a] == 1 && best[a] < 0.7f) promoted++;
            if (G > 0 && c->variant == MATCH_VARIANT_MMDET && iou[(int64_t)mr[a] * A + a] < best[a]) reassigned++;
        }
    }
    EXPECT(bad == 0, "%d candidates differ from the reference", bad);
    printf("    %d low-quality promotions, %d mmdet re-assignments\n", promoted, reassigned);
    /* the random cases must actually exercise low quality and mmdet's re-assignment */
    EXPECT(promoted > 0 && reassigned > 0, "promoted %d, reassigned %d", promoted, reassigned);
    free(iou), free(gt_max), free(best), free(m1), free(m2), free(mr), free(l1), free(l2), free(lr);
}

/* The CUDA twin (kernels/match.cu) against the CPU, bit for bit, streamed in chunks. */
static void test_match_gpu_equals_cpu(void) {
#ifndef MRC_CUDA
    SKIP("CPU-only build");
#else
    REQUIRE_GPU();
    match_cfg cfgs[3] = {match_cfg_rpn(), match_cfg_roi(), match_cfg_rpn_mmdet()};
    enum { A = 3000, GMAX = 12, CH = 700 };
    float *iou = malloc(sizeof *iou * GMAX * A), *gt_max = malloc(sizeof *gt_max * GMAX), *best = malloc(sizeof *best * A);
    int32_t *m1 = malloc(sizeof *m1 * A), *m2 = malloc(sizeof *m2 * A);
    int8_t *l1 = malloc(A), *l2 = malloc(A);
    float *d_iou = gpu_malloc(sizeof *iou * GMAX * A, "iou"), *d_gt = gpu_malloc(sizeof *gt_max * GMAX, "gt_max");
    float *d_best = gpu_malloc(sizeof *best * A, "best");
    int32_t *d_m = gpu_malloc(sizeof *m1 * A, "matched");
    int8_t *d_l = gpu_malloc(A, "labels");
    int *d_bad = gpu_malloc(sizeof(int), "bad");
    int bad = 0;
    for (int trial = 0; trial < 12 && !bad; trial++) {
        int G = rnd_int(0, GMAX);
        const match_cfg *c = &cfgs[trial % 3];
        tie_heavy(iou, G, A);
        match_cpu(c, iou, G, A, gt_max, best, m1, l1);
        if (G) gpu_memcpy_h2d(d_iou, iou, sizeof *iou * (size_t)G * A);
        gpu_memset_zero(d_bad, sizeof(int));
        match_begin_gpu(G, d_gt, NULL, 1);
        for (int a0 = 0; a0 < A; a0 += CH) /* chunks read in place, ld = A */
            match_scan_chunk_gpu(d_iou + a0, A, G, a0, A - a0 < CH ? A - a0 : CH, d_gt, d_best, d_m, d_bad, NULL, 1);
        match_threshold_gpu(c, G, A, d_best, d_l, NULL, 1);
        for (int a0 = 0; a0 < A; a0 += CH)
            match_low_quality_chunk_gpu(c, d_iou + a0, A, G, a0, A - a0 < CH ? A - a0 : CH, d_gt, d_m, d_l, NULL, 1);
        gpu_memcpy_d2h(m2, d_m, sizeof *m2 * A);
        gpu_memcpy_d2h(l2, d_l, A);
        int nbad = -1;
        gpu_memcpy_d2h(&nbad, d_bad, sizeof nbad);
        EXPECT(nbad == 0, "trial %d: %d bad values counted", trial, nbad);
        for (int a = 0; a < A; a++)
            if ((m1[a] != m2[a] || l1[a] != l2[a]) && bad++ < 5)
                printf("    trial %d G %d candidate %d: cpu (%d, %d), gpu (%d, %d)\n", trial, G, a, m1[a], l1[a], m2[a], l2[a]);
    }
    EXPECT(bad == 0, "%d candidates differ between CPU and GPU", bad);
    gpu_free(d_iou), gpu_free(d_gt), gpu_free(d_best), gpu_free(d_m), gpu_free(d_l), gpu_free(d_bad);
    free(iou), free(gt_max), free(best), free(m1), free(m2), free(l1), free(l2);
#endif
}

/* ---- subsampler ---------------------------------------------------------------------- */

/* Checks the invariants of one match_subsample result against the labels before it. */
static void check_sample(const char *what, const int8_t *before, const int8_t *after, int A, const int32_t *s,
                         int total, int num_pos, int want_pos, int want_neg) {
    EXPECT(num_pos == want_pos && total - num_pos == want_neg, "%s: %d pos %d neg, want %d %d", what, num_pos,
           total - num_pos, want_pos, want_neg);
    char *seen = calloc((size_t)A + 1, 1);
    for (int i = 0; i < total; i++) {
        REQUIRE(s[i] >= 0 && s[i] < A, "%s: sampled[%d] = %d", what, i, s[i]);
        EXPECT(!seen[s[i]], "%s: candidate %d drawn twice", what, s[i]);
        seen[s[i]] = 1;
        int want = i < num_pos ? 1 : 0;
        EXPECT(before[s[i]] == want, "%s: sampled[%d] = %d had label %d, want %d", what, i, s[i], before[s[i]], want);
    }
    for (int a = 0; a < A; a++) {
        int want = seen[a] ? before[a] : -1;
        EXPECT(after[a] == want, "%s: label[%d] = %d after, want %d", what, a, after[a], want);
    }
    free(seen);
}

static void sample_case(const char *what, int n_pos, int n_neg, int n_ign, int batch, double frac, int want_pos,
                        int want_neg) {
    int A = n_pos + n_neg + n_ign;
    int8_t *lab = malloc((size_t)A + 1), *before = malloc((size_t)A + 1);
    int32_t *scratch = malloc(sizeof *scratch * ((size_t)A + 1)), *s = malloc(sizeof *s * ((size_t)batch + 1));
    for (int a = 0; a < A; a++) lab[a] = a < n_pos ? 1 : a < n_pos + n_neg ? 0 : -1;
    for (int i = A - 1; i > 0; i--) { /* interleave the kinds */
        int j = rnd_int(0, i);
        int8_t t = lab[i];
        lab[i] = lab[j];
        lab[j] = t;
    }
    memcpy(before, lab, (size_t)A);
    rng r = match_sample_rng(7, 3, 1, MATCH_STAGE_RPN);
    uint64_t off0 = r.offset;
    int np = -1, total = match_subsample(&r, lab, A, batch, frac, scratch, s, &np);
    check_sample(what, before, lab, A, s, total, np, want_pos, want_neg);
    EXPECT(r.offset - off0 == (uint64_t)(want_pos + want_neg), "%s: %llu words drawn, want %d", what,
           (unsigned long long)(r.offset - off0), want_pos + want_neg);
    free(lab), free(before), free(scratch), free(s);
}

static void test_subsample_counts(void) {
    sample_case("3 pos 5 neg, 4 @ 0.5", 3, 5, 2, 4, 0.5, 2, 2);
    sample_case("few positives", 1, 20, 3, 8, 0.5, 1, 7);
    sample_case("few negatives", 10, 2, 0, 8, 0.5, 4, 2);
    sample_case("too few of both", 2, 3, 4, 256, 0.5, 2, 3);
    sample_case("int() truncates 2.5", 5, 20, 0, 10, 0.25, 2, 8);
    sample_case("ROI 512 @ 0.25", 300, 1000, 0, 512, 0.25, 128, 384);
    sample_case("ROI, 40 fg", 40, 1000, 0, 512, 0.25, 40, 472);
    sample_case("RPN 256 @ 0.5, LVIS size", 300, 200000, 69700, 256, 0.5, 128, 128);
    sample_case("all ignored", 0, 0, 50, 256, 0.5, 0, 0);
    sample_case("no candidates", 0, 0, 0, 256, 0.5, 0, 0);
    sample_case("batch 0", 5, 5, 0, 0, 0.5, 0, 0);
}

/* Each candidate's selection count over T draws is Binomial(T, p) with p = k / n of its
 * group; it must lie within 5 sd of T p (a false alarm over the 40 candidates has
 * probability about 40 * 5.7e-7). A biased shuffle (say j = i + below(n - i - 1), which
 * never leaves an element in place) misses by far more. Also the first slot of each group
 * is uniform (the order within a group is random, as randperm's). */
static void test_subsample_uniform(void) {
    enum { NP = 10, NN = 30, A = NP + NN + 5, T = 20000, BATCH = 8 };
    int8_t base[A], lab[A];
    for (int a = 0; a < A; a++) base[a] = a % 9 == 4 ? -1 : 0;
    int np_set = 0;
    for (int a = 0; a < A && np_set < NP; a += 4)
        if (base[a] == 0) base[a] = 1, np_set++;
    int count[A] = {0}, first[A] = {0}, npos = 0, nneg = 0;
    for (int a = 0; a < A; a++) npos += base[a] == 1, nneg += base[a] == 0;
    REQUIRE(npos == NP && nneg == NN, "setup: %d pos %d neg", npos, nneg);
    int32_t scratch[A], s[BATCH];
    for (int t = 0; t < T; t++) {
        memcpy(lab, base, sizeof lab);
        rng r = match_sample_rng(2024, (uint64_t)t / 16, t % 16, MATCH_STAGE_ROI);
        int np = 0, total = match_subsample(&r, lab, A, BATCH, 0.5, scratch, s, &np);
        REQUIRE(np == 4 && total == 8, "draw %d: %d pos of %d", t, np, total);
        for (int i = 0; i < total; i++) count[s[i]]++;
        first[s[0]]++;
        first[s[np]]++;
    }
    double worst = 0;
    int worst_a = -1;
    for (int a = 0; a < A; a++) {
        if (base[a] < 0) {
            EXPECT(count[a] == 0, "ignored candidate %d drawn %d times", a, count[a]);
            continue;
        }
        double p = base[a] == 1 ? 4.0 / NP : 4.0 / NN, sd = sqrt(T * p * (1 - p));
        double z = fabs(count[a] - T * p) / sd;
        if (z > worst) worst = z, worst_a = a;
        EXPECT(z <= 5, "candidate %d (label %d): drawn %d times, want %.0f +- 5 x %.1f", a, base[a], count[a], T * p, sd);
        double q = base[a] == 1 ? 1.0 / NP : 1.0 / NN, sdq = sqrt(T * q * (1 - q));
        EXPECT(fabs(first[a] - T * q) <= 5 * sdq, "candidate %d first in its group %d times, want %.0f +- 5 x %.1f", a,
               first[a], T * q, sdq);
    }
    printf("    worst |z| %.2f (candidate %d)\n", worst, worst_a);
}

static void test_subsample_deterministic(void) {
    enum { A = 3000 };
    int8_t *base = malloc(A), *l1 = malloc(A), *l2 = malloc(A);
    int32_t *scratch = malloc(sizeof *scratch * A), s1[512], s2[512];
    for (int a = 0; a < A; a++) base[a] = (int8_t)rnd_int(-1, 1);
    int differ_image = 0, differ_stage = 0, differ_step = 0;
    for (int k = 0; k < 4; k++) {
        uint64_t step = (uint64_t)k * 1000003;
        memcpy(l1, base, A);
        memcpy(l2, base, A);
        rng r1 = match_sample_rng(11, step, 3, MATCH_STAGE_ROI), r2 = match_sample_rng(11, step, 3, MATCH_STAGE_ROI);
        int n1 = match_subsample(&r1, l1, A, 512, 0.25, scratch, s1, NULL);
        rng_u32(&r2); /* nothing carries between calls: a fresh rng from the same numbers */
        r2 = match_sample_rng(11, step, 3, MATCH_STAGE_ROI);
        int n2 = match_subsample(&r2, l2, A, 512, 0.25, scratch, s2, NULL);
        EXPECT(n1 == n2 && memcmp(s1, s2, sizeof *s1 * (size_t)n1) == 0 && memcmp(l1, l2, A) == 0,
               "step %llu: two draws from the same (seed, step, image, stage) differ", (unsigned long long)step);
        EXPECT(r1.offset - match_sample_rng(11, step, 3, MATCH_STAGE_ROI).offset <= MATCH_MAX_BATCH,
               "draws overrun the image's window");
        rng o[3] = {match_sample_rng(11, step, 4, MATCH_STAGE_ROI), match_sample_rng(11, step, 3, MATCH_STAGE_RPN),
                    match_sample_rng(11, step + 1, 3, MATCH_STAGE_ROI)};
        int *diff[3] = {&differ_image, &differ_stage, &differ_step};
        for (int v = 0; v < 3; v++) {
            memcpy(l2, base, A);
            int n = match_subsample(&o[v], l2, A, 512, 0.25, scratch, s2, NULL);
            *diff[v] += n != n1 || memcmp(s1, s2, sizeof *s1 * (size_t)n) != 0;
        }
    }
    EXPECT(differ_image == 4 && differ_stage == 4 && differ_step == 4,
           "other image / stage / step gave the same sample (%d %d %d of 4 differ)", differ_image, differ_stage,
           differ_step);
    free(base), free(l1), free(l2), free(scratch);
}

/* ---- mask targets -------------------------------------------------------------------- */

static mask_polys one_part(const double *xy, int n, int64_t *off, int64_t *cnt) {
    *off = 0;
    *cnt = n;
    mask_polys p = {xy, off, cnt, 1};
    return p;
}

static int count_ones(const float *t, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) k += t[i] != 0;
    return k;
}

static void test_mask_square_fills_roi(void) {
    float box[4] = {10, 20, 24, 34};
    double sq[] = {10, 20, 24, 20, 24, 34, 10, 34};
    int64_t off, cnt;
    mask_polys p = one_part(sq, 8, &off, &cnt);
    float t[28 * 28];
    REQUIRE(mask_target_cpu(box, &p, 28, t) == 0);
    EXPECT(count_ones(t, 28 * 28) == 28 * 28, "%d of 784 on", count_ones(t, 28 * 28));
    for (int i = 0; i < 28 * 28; i++) REQUIRE(t[i] == 0.0f || t[i] == 1.0f, "t[%d] = %g", i, (double)t[i]);
    /* a polygon larger than the box is cut off: still all ones */
    double big[] = {0, 0, 100, 0, 100, 100, 0, 100};
    p = one_part(big, 8, &off, &cnt);
    REQUIRE(mask_target_cpu(box, &p, 28, t) == 0);
    EXPECT(count_ones(t, 28 * 28) == 28 * 28, "bigger polygon: %d of 784 on", count_ones(t, 28 * 28));
}

/* The left half of the box: columns 0..13 on, in every row. A column-major mix-up would
 * give the top half instead. */
static void test_mask_row_major_left_half(void) {
    float box[4] = {10, 20, 24, 34};
    double left[] = {10, 20, 17, 20, 17, 34, 10, 34};
    int64_t off, cnt;
    mask_polys p = one_part(left, 8, &off, &cnt);
    float t[28 * 28];
    REQUIRE(mask_target_cpu(box, &p, 28, t) == 0);
    int bad = 0;
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++)
            if (t[y * 28 + x] != (x < 14 ? 1.0f : 0.0f) && bad++ < 5) printf("    (y %d, x %d) = %g\n", y, x, (double)t[y * 28 + x]);
    EXPECT(bad == 0, "%d pixels wrong", bad);
}

/* By hand: the triangle (0,0), (4.4,0), (0,4.4) in the box (0,0,4,4), M = 4 (scale 1):
 * pixel (row i, col j) has centre (j + .5, i + .5), inside iff (j + .5) + (i + .5) < 4.4,
 * i.e. i + j <= 3 (no centre lies on the hypotenuse: centre sums are integers). The same
 * triangle scaled x2 and shifted, in the box (100, 50, 108, 58), must give the same. */
static void test_mask_triangle_by_hand(void) {
    static const float want[16] = {1, 1, 1, 1,
                                   1, 1, 1, 0,
                                   1, 1, 0, 0,
                                   1, 0, 0, 0};
    double tri[] = {0, 0, 4.4, 0, 0, 4.4};
    double tri2[] = {100, 50, 108.8, 50, 100, 58.8};
    float box[4] = {0, 0, 4, 4}, box2[4] = {100, 50, 108, 58};
    int64_t off, cnt;
    float t[16];
    mask_polys p = one_part(tri, 6, &off, &cnt);
    REQUIRE(mask_target_cpu(box, &p, 4, t) == 0);
    for (int i = 0; i < 16; i++) EXPECT(t[i] == want[i], "triangle (%d, %d) = %g, want %g", i / 4, i % 4, (double)t[i], (double)want[i]);
    p = one_part(tri2, 6, &off, &cnt);
    REQUIRE(mask_target_cpu(box2, &p, 4, t) == 0);
    for (int i = 0; i < 16; i++) EXPECT(t[i] == want[i], "scaled triangle (%d, %d) = %g, want %g", i / 4, i % 4, (double)t[i], (double)want[i]);
}

/* x and y scale separately: box 8 x 2 px at M = 4 (x by 0.5, y by 2); the polygon
 * [10, 14] x [10, 11] becomes [0, 2] x [0, 2]: the top-left 2 x 2. */
static void test_mask_anisotropic_scale(void) {
    float box[4] = {10, 10, 18, 12};
    double r[] = {10, 10, 14, 10, 14, 11, 10, 11};
    int64_t off, cnt;
    mask_polys p = one_part(r, 8, &off, &cnt);
    float t[16];
    REQUIRE(mask_target_cpu(box, &p, 4, t) == 0);
    for (int i = 0; i < 16; i++) {
        float want = (i / 4 < 2 && i % 4 < 2) ? 1.0f : 0.0f;
        EXPECT(t[i] == want, "(%d, %d) = %g, want %g", i / 4, i % 4, (double)t[i], (double)want);
    }
}

/* Parts are OR-ed (overlaps stay on; not even-odd across parts). Box (0,0,8,8), M = 8:
 * parts [0,4]x[0,4] and [2,6]x[2,6] and a disjoint [7,8]x[7,8]. */
static void test_mask_parts_union(void) {
    double xy[] = {0, 0, 4, 0, 4, 4, 0, 4,
                   2, 2, 6, 2, 6, 6, 2, 6,
                   7, 7, 8, 7, 8, 8, 7, 8};
    int64_t off[3] = {0, 8, 16}, cnt[3] = {8, 8, 8};
    mask_polys p = {xy, off, cnt, 3};
    float box[4] = {0, 0, 8, 8}, t[64];
    REQUIRE(mask_target_cpu(box, &p, 8, t) == 0);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            int in = (x < 4 && y < 4) || (x >= 2 && x < 6 && y >= 2 && y < 6) || (x == 7 && y == 7);
            EXPECT(t[y * 8 + x] == (float)in, "(%d, %d) = %g, want %d", y, x, (double)t[y * 8 + x], in);
        }
    mask_polys none = {xy, off, cnt, 0};
    REQUIRE(mask_target_cpu(box, &none, 8, t) == 0);
    EXPECT(count_ones(t, 64) == 0, "no parts: %d on", count_ones(t, 64));
}

/* Degenerate boxes use max(w, 0.1): a 0.1-px slab at x0, magnified. */
static void test_mask_degenerate_boxes(void) {
    double cover[] = {5, 5, 15, 5, 15, 25, 5, 25}, left[] = {0, 5, 9, 5, 9, 25, 0, 25};
    double narrow[] = {5, 5, 11, 5, 11, 25, 5, 25};
    int64_t off, cnt;
    float t[28 * 28];
    float zero_w[4] = {10, 10, 10, 20}, neg_w[4] = {12, 10, 10, 20}, zero_both[4] = {10, 10, 10, 10};
    mask_polys p = one_part(cover, 8, &off, &cnt);
    REQUIRE(mask_target_cpu(zero_w, &p, 28, t) == 0);
    EXPECT(count_ones(t, 784) == 784, "w = 0 inside the polygon: %d on, want 784", count_ones(t, 784));
    REQUIRE(mask_target_cpu(neg_w, &p, 28, t) == 0);
    EXPECT(count_ones(t, 784) == 784, "w = -2, x0 = 12 inside: %d on, want 784", count_ones(t, 784));
    REQUIRE(mask_target_cpu(zero_both, &p, 28, t) == 0);
    EXPECT(count_ones(t, 784) == 784, "w = h = 0 inside: %d on, want 784", count_ones(t, 784));
    p = one_part(left, 8, &off, &cnt);
    REQUIRE(mask_target_cpu(zero_w, &p, 28, t) == 0);
    EXPECT(count_ones(t, 784) == 0, "w = 0 left of the polygon: %d on, want 0", count_ones(t, 784));
    p = one_part(narrow, 8, &off, &cnt); /* covers x0 = 10 but not x0 = 12 */
    REQUIRE(mask_target_cpu(neg_w, &p, 28, t) == 0);
    EXPECT(count_ones(t, 784) == 0, "w = -2 with x0 = 12 outside: %d on, want 0", count_ones(t, 784));
    float nan_box[4] = {NAN, 10, 20, 20};
    EXPECT(mask_target_cpu(nan_box, &p, 28, t) == -1, "a NaN box must fail");
    EXPECT(count_ones(t, 784) == 0, "a failed target must be all 0");
}

/* Even-odd at (px, py) for one part of k points. */
static int inside(const double *xy, int k, double px, double py) {
    int in = 0;
    for (int i = 0, j = k - 1; i < k; j = i++) {
        double xi = xy[2 * i], yi = xy[2 * i + 1], xj = xy[2 * j], yj = xy[2 * j + 1];
        if ((yi > py) != (yj > py) && px < xj + (py - yj) * (xi - xj) / (yi - yj)) in = !in;
    }
    return in;
}
static double seg_dist(double px, double py, double ax, double ay, double bx, double by) {
    double dx = bx - ax, dy = by - ay, l2 = dx * dx + dy * dy;
    double u = l2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / l2 : 0;
    u = u < 0 ? 0 : u > 1 ? 1 : u;
    return hypot(px - ax - u * dx, py - ay - u * dy);
}

/* Random 1..3-part polygons (star-shaped, 3..12 vertices, partly outside the box) on random
 * boxes; in target coordinates every pixel centre farther than 0.3 px from every edge must
 * agree with the even-odd rule (the rasteriser quantises vertices to 1/5 px). */
static void test_mask_random_vs_point_in_polygon(void) {
    enum { M = 28 };
    int mism = 0, checked = 0, on = 0;
    for (int trial = 0; trial < 200; trial++) {
        float box[4];
        box[0] = (float)(rnd_unit() * 200);
        box[1] = (float)(rnd_unit() * 200);
        box[2] = box[0] + (float)(1 + rnd_unit() * 150);
        box[3] = box[1] + (float)(1 + rnd_unit() * 150);
        double xy[3 * 24], txy[3 * 24];
        int64_t off[3], cnt[3];
        int parts = rnd_int(1, 3), at = 0;
        for (int k = 0; k < parts; k++) {
            int nv = rnd_int(3, 12);
            double cx = box[0] + (rnd_unit() * 1.4 - 0.2) * (box[2] - box[0]);
            double cy = box[1] + (rnd_unit() * 1.4 - 0.2) * (box[3] - box[1]);
            double rad = (0.1 + rnd_unit() * 0.6) * (box[2] - box[0] + box[3] - box[1]) / 2;
            off[k] = at;
            cnt[k] = 2 * nv;
            for (int v = 0; v < nv; v++) {
                double ang = 2 * M_PI * (v + rnd_unit() * 0.8) / nv, rr = rad * (0.3 + 0.7 * rnd_unit());
                xy[at + 2 * v] = cx + rr * cos(ang);
                xy[at + 2 * v + 1] = cy + rr * sin(ang);
            }
            at += 2 * nv;
        }
        /* target coordinates, the contract's formula (the test recomputes it) */
        double rw = (float)M / (box[2] - box[0]), rh = (float)M / (box[3] - box[1]);
        for (int i = 0; i < at; i++) txy[i] = (i & 1) ? (xy[i] - box[1]) * rh : (xy[i] - box[0]) * rw;
        mask_polys p = {xy, off, cnt, parts};
        float t[M * M];
        REQUIRE(mask_target_cpu(box, &p, M, t) == 0);
        for (int y = 0; y < M; y++)
            for (int x = 0; x < M; x++) {
                double px = x + 0.5, py = y + 0.5, dmin = 1e30;
                int in = 0;
                for (int k = 0; k < parts; k++) {
                    const double *q = txy + off[k];
                    int nv = (int)(cnt[k] / 2);
                    in |= inside(q, nv, px, py);
                    for (int i = 0, j = nv - 1; i < nv; j = i++)
                        dmin = fmin(dmin, seg_dist(px, py, q[2 * j], q[2 * j + 1], q[2 * i], q[2 * i + 1]));
                }
                if (dmin <= 0.3) continue;
                checked++;
                on += in;
                if ((t[y * M + x] != 0) != in && mism++ < 5)
                    printf("    trial %d (y %d, x %d): got %g, point-in-polygon %d (edge %.3f px away)\n", trial, y, x,
                           (double)t[y * M + x], in, dmin);
            }
    }
    EXPECT(mism == 0, "%d of %d pixel centres disagree with the even-odd rule", mism, checked);
    EXPECT(on > checked / 10 && on < checked * 9 / 10, "degenerate random cases: %d of %d inside", on, checked);
}

static void test_mask_targets_batch(void) {
    double a[] = {0, 0, 10, 0, 10, 10, 0, 10}, b[] = {5, 5, 20, 5, 5, 20};
    int64_t oa = 0, ca = 8, ob = 0, cb = 6;
    mask_polys gt[2] = {{a, &oa, &ca, 1}, {b, &ob, &cb, 1}};
    float boxes[3 * 4] = {0, 0, 10, 10, 2, 3, 17, 19, -1, -2, 12, 9};
    int32_t idx[3] = {1, 0, 1};
    float out[3 * 28 * 28], one[28 * 28];
    int bad = 99;
    REQUIRE(mask_targets_cpu(3, boxes, idx, gt, 2, 28, out, &bad) == 0);
    EXPECT(bad == -1, "bad_roi %d", bad);
    for (int r = 0; r < 3; r++) {
        REQUIRE(mask_target_cpu(boxes + 4 * r, &gt[idx[r]], 28, one) == 0);
        EXPECT(memcmp(one, out + r * 784, sizeof one) == 0, "RoI %d differs from the single-RoI call", r);
    }
    boxes[4] = NAN;
    REQUIRE(mask_targets_cpu(3, boxes, idx, gt, 2, 28, out, &bad) == -1);
    EXPECT(bad == 1, "bad_roi %d, want 1", bad);
    EXPECT(count_ones(out + 784, 784) == 0 && count_ones(out, 784) > 0 && count_ones(out + 2 * 784, 784) > 0,
           "only the failed RoI's target is zeroed");
}

int main(void) {
    RUN(test_match_rpn_bins_at_thresholds);
    RUN(test_match_roi_bins_at_threshold);
    RUN(test_match_argmax_ties_lowest_g);
    RUN(test_match_low_quality_d2);
    RUN(test_match_low_quality_mmdet);
    RUN(test_match_low_quality_zero_max);
    RUN(test_match_no_gt);
    RUN(test_match_bad_iou_stops);
    RUN(test_match_random_vs_reference_and_streamed);
    RUN(test_match_gpu_equals_cpu);
    RUN(test_subsample_counts);
    RUN(test_subsample_uniform);
    RUN(test_subsample_deterministic);
    RUN(test_mask_square_fills_roi);
    RUN(test_mask_row_major_left_half);
    RUN(test_mask_triangle_by_hand);
    RUN(test_mask_anisotropic_scale);
    RUN(test_mask_parts_union);
    RUN(test_mask_degenerate_boxes);
    RUN(test_mask_random_vs_point_in_polygon);
    RUN(test_mask_targets_batch);
    return test_finish("test_match");
}

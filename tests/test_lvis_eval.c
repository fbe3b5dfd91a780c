/* test_lvis_eval.c: the LVIS evaluator (src/eval/lvis_eval.h) and `maskrcnn lvis-eval`.
 *
 * 1. The six golden cases of ../shared/golden/lvis_eval/ (lvis-api's own numbers; skipped
 *    when that folder is absent): every key of caseNN_expected.json, per-category AP and
 *    the count after the 300 cap.
 * 2. Hand-made fixtures in tests/fixtures/lvis_eval/, one rule each; the expected numbers
 *    are worked out by hand in the comment above each test (eps = 2^-52, so one TP out of
 *    one detection has precision 1/(1+eps) = 0.9999999999999998, while k >= 2 TPs give
 *    k/(k+eps) = 1 exactly because k + eps rounds to k).
 * 3. Malformed results through the command: one line, exit 1; usage errors exit 2; the
 *    --json line. */
#include "test.h"

#include "eval/lvis_eval.h"
#include "eval/lvis_eval_cmd.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>

#define FIX "tests/fixtures/lvis_eval/"
#define GOLD "../shared/golden/lvis_eval/"

static const double ONE_TP = 0.9999999999999998; /* 1 / (1 + 2^-52) */

static char tmp_dir[256]; /* made by main, removed at the end */
static const char *tmp_path(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmp_dir, name);
    return p[k];
}

static double P(const lvis_eval_result *r, int t, int rr, int k, int a) {
    return r->precision[(((int64_t)t * LVIS_EVAL_R + rr) * r->n_cat + k) * LVIS_EVAL_A + a];
}
static double R(const lvis_eval_result *r, int t, int k, int a) {
    return r->recall[((int64_t)t * r->n_cat + k) * LVIS_EVAL_A + a];
}

static int load_gt(lvis_data *d, const char *path, char *err, size_t errn) {
    lvis_options o = {.mode = LVIS_OFFICIAL, .cache = LVIS_CACHE_OFF};
    return lvis_open(d, path, &o, err, errn);
}

/* Evaluates FIX name_gt.json against FIX name_dets.json; 0 or -1 (message printed). */
static int eval_fixture(const char *name, lvis_iou_type type, lvis_data *d, lvis_eval_result *r) {
    char gt[256], dets[256], err[1024] = "";
    snprintf(gt, sizeof gt, FIX "%s_gt.json", name);
    snprintf(dets, sizeof dets, FIX "%s_dets.json", name);
    if (load_gt(d, gt, err, sizeof err)) return printf("  %s\n", err), -1;
    if (lvis_eval_run(d, dets, type, 2, r, err, sizeof err)) return printf("  %s\n", err), lvis_free(d), -1;
    return 0;
}

/* Every precision entry of category k at area a equals want (for all t, r). */
static int all_precision(const lvis_eval_result *r, int k, int a, double want) {
    for (int t = 0; t < LVIS_EVAL_T; t++)
        for (int i = 0; i < LVIS_EVAL_R; i++)
            if (P(r, t, i, k, a) != want)
                return printf("    P[t%d][r%d][k%d][a%d] = %.17g\n", t, i, k, a, P(r, t, i, k, a)), 0;
    return 1;
}

/* ---- constants and the numpy mean ---------------------------------------------------------- */

static void test_thresholds(void) {
    double step = (0.95 - 0.5) / 9; /* numpy linspace */
    for (int i = 0; i < 9; i++)
        EXPECT(lvis_iou_thrs[i] == i * step + 0.5, "IoU threshold %d = %.17g", i, lvis_iou_thrs[i]);
    EXPECT(lvis_iou_thrs[8] == 0.8999999999999999 && lvis_iou_thrs[8] < 0.9 && lvis_iou_thrs[9] == 0.95);
    EXPECT(lvis_rec_thr(35) == 0.35000000000000003 && lvis_rec_thr(35) != 35 / 100.0, "i * 0.01, not i / 100");
    EXPECT(lvis_rec_thr(70) == 0.7000000000000001 && lvis_rec_thr(100) == 1.0 && lvis_rec_thr(0) == 0.0);
    EXPECT(lvis_area_rng[1][1] == 1024 && lvis_area_rng[2][0] == 1024 && lvis_area_rng[2][1] == 9216 &&
           lvis_area_rng[3][0] == 9216 && lvis_area_rng[0][1] == 1e10);
}

/* numpy's pairwise sum: 16 values go to 8 accumulators (i mod 8), so 1e16 meets -1e16 in
 * accumulator 0 and the seven pairs of ones survive: 14 / 16. A left-to-right sum loses
 * every 1 added to 1e16 (ties to even) and gives 7 / 16. Under 8 values: a plain loop. */
static void test_np_mean(void) {
    double v[16];
    for (int i = 0; i < 16; i++) v[i] = 1;
    v[0] = 1e16, v[8] = -1e16;
    EXPECT(lvis_np_mean(v, 16) == 14.0 / 16, "pairwise mean %.17g, want 0.875", lvis_np_mean(v, 16));
    double w[3] = {1e16, 1, -1e16};
    EXPECT(lvis_np_mean(w, 3) == 0, "plain loop under 8: %.17g", lvis_np_mean(w, 3));
}

/* ---- the golden cases ---------------------------------------------------------------------- */

static void golden_case(int n, int *ran) {
    char gtp[256], detp[256], expp[256], err[1024] = "";
    snprintf(gtp, sizeof gtp, GOLD "case%02d_gt.json", n);
    snprintf(detp, sizeof detp, GOLD "case%02d_dets.json", n);
    snprintf(expp, sizeof expp, GOLD "case%02d_expected.json", n);
    FILE *f = fopen(expp, "rb");
    if (!f) return;
    static char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    cJSON *e = cJSON_Parse(buf);
    REQUIRE(e, "%s does not parse", expp);
    *ran = 1;
    const char *type = cJSON_GetObjectItem(e, "iou_type")->valuestring;
    lvis_data d;
    lvis_eval_result r;
    if (load_gt(&d, gtp, err, sizeof err)) {
        cJSON_Delete(e);
        REQUIRE(0, "%s", err);
    }
    int rc = lvis_eval_run(&d, detp, strcmp(type, "segm") ? LVIS_IOU_BBOX : LVIS_IOU_SEGM, 2, &r, err, sizeof err);
    if (rc) {
        cJSON_Delete(e), lvis_free(&d);
        REQUIRE(0, "case%02d: %s", n, err);
    }
    double got[LVIS_NUM_STATS], want[LVIS_NUM_STATS];
    int exact = 0;
    for (int i = 0; i < LVIS_NUM_STATS; i++) {
        got[i] = r.stats[i];
        want[i] = cJSON_GetObjectItem(e, lvis_stat_names[i])->valuedouble;
        exact += got[i] == want[i];
    }
    char what[64];
    snprintf(what, sizeof what, "case%02d (%s) summary", n, type);
    EXPECT_CLOSE(what, got, want, LVIS_NUM_STATS, 1e-12, 0);
    /* The same IEEE operations in the same order as lvis-api + numpy: bit for bit. */
    EXPECT(exact == LVIS_NUM_STATS, "case%02d: only %d of %d summary numbers are bit-exact", n, exact, LVIS_NUM_STATS);
    const cJSON *pc = cJSON_GetObjectItem(e, "per_category_AP"), *it;
    int n_pc = 0;
    cJSON_ArrayForEach(it, pc) {
        int k = lvis_category_index(&d, strtoll(it->string, NULL, 10));
        n_pc++;
        EXPECT(k >= 0, "case%02d: category %s is not in the GT", n, it->string);
        if (k >= 0)
            EXPECT(fabs(r.cat_ap[k] - it->valuedouble) <= 1e-12 && r.cat_ap[k] == it->valuedouble,
                   "case%02d: category %s AP %.17g, want %.17g", n, it->string, r.cat_ap[k], it->valuedouble);
    }
    EXPECT(n_pc == d.n_cat, "case%02d: %d per-category values for %d categories", n, n_pc, d.n_cat);
    EXPECT(r.n_loaded == (int64_t)cJSON_GetObjectItem(e, "num_results_loaded_after_max_dets")->valuedouble,
           "case%02d: %lld loaded after the cap", n, (long long)r.n_loaded);
    EXPECT(d.n_img == cJSON_GetObjectItem(e, "num_images")->valueint &&
           d.n_cat == cJSON_GetObjectItem(e, "num_categories")->valueint);
    EXPECT(cJSON_GetObjectItem(e, "max_dets")->valueint == LVIS_EVAL_MAX_DETS);
    EXPECT(cJSON_IsTrue(cJSON_GetObjectItem(e, "segm_det_area_from_mask")) == !r.det_area_from_box,
           "case%02d: detection areas from %s", n, r.det_area_from_box ? "boxes" : "masks");
    lvis_eval_result_free(&r);
    lvis_free(&d);
    cJSON_Delete(e);
}

static void test_golden(void) {
    int ran = 0;
    for (int n = 1; n <= 6; n++) golden_case(n, &ran);
    if (!ran) SKIP("no golden cases in " GOLD);
}

/* The numbers do not depend on the thread count (each category is evaluated whole by one
 * thread): the full arrays of the largest bbox and segm cases with 1 and 5 threads. */
static void test_threads_identical(void) {
    int ran = 0;
    for (int n = 5; n <= 6; n++) {
        char gtp[256], detp[256], err[1024];
        snprintf(gtp, sizeof gtp, GOLD "case%02d_gt.json", n);
        snprintf(detp, sizeof detp, GOLD "case%02d_dets.json", n);
        lvis_data d;
        if (access(gtp, R_OK)) continue;
        REQUIRE(load_gt(&d, gtp, err, sizeof err) == 0, "%s", err);
        lvis_eval_result a, b;
        lvis_iou_type type = n == 5 ? LVIS_IOU_BBOX : LVIS_IOU_SEGM;
        int ok = lvis_eval_run(&d, detp, type, 1, &a, err, sizeof err) == 0 &&
                 lvis_eval_run(&d, detp, type, 5, &b, err, sizeof err) == 0;
        if (!ok) lvis_free(&d);
        REQUIRE(ok, "%s", err);
        size_t np = (size_t)LVIS_EVAL_T * LVIS_EVAL_R * d.n_cat * LVIS_EVAL_A;
        EXPECT(!memcmp(a.precision, b.precision, np * sizeof(double)) && !memcmp(a.stats, b.stats, sizeof a.stats),
               "case%02d: 1 and 5 threads differ", n);
        lvis_eval_result_free(&a), lvis_eval_result_free(&b), lvis_free(&d);
        ran = 1;
    }
    if (!ran) SKIP("no golden cases in " GOLD);
}

/* ---- hand-made fixtures ------------------------------------------------------------------ */

/* federated_*.json (bbox). Image 1: GT cat1 [0,0,10,10], cat3 [50,50,10,10]; neg {cat2},
 * not exhaustive {cat3}. Image 2: its only GT (cat1) has area 0, no neg. cat4: no GT.
 * Kept: cat1 TP 0.9 + FP 0.8 -> precision 1/(1+eps) everywhere, recall 1; cat3: an
 * unmatched 0.95 (ignored: not exhaustive) then a TP 0.6 (matched: counted) -> same;
 * cat2 (neg, no GT anywhere) and cat4 -> -1. Dropped: image 2's cat1 0.99 (cat1 is not
 * positive there, its GT had area 0, and not neg), image 2's cat4 (neither pos nor neg),
 * category id 99 (not in the GT), a w = 0 box (area 0) at 0.97 — any of them kept puts an
 * FP first and halves an AP. Evaluated 5 of 9. */
static void test_federated(void) {
    lvis_data d;
    lvis_eval_result r;
    REQUIRE(eval_fixture("federated", LVIS_IOU_BBOX, &d, &r) == 0);
    EXPECT(r.n_records == 9 && r.n_loaded == 9 && r.n_dets == 5 && r.n_gt == 2,
           "records %lld loaded %lld dets %lld gt %lld", (long long)r.n_records, (long long)r.n_loaded,
           (long long)r.n_dets, (long long)r.n_gt);
    EXPECT(all_precision(&r, 0, 0, ONE_TP), "cat1: the area-0 GT and its image's detection dropped");
    EXPECT(all_precision(&r, 2, 0, ONE_TP), "cat3: unmatched not-exhaustive ignored, matched counted");
    EXPECT(all_precision(&r, 1, 0, -1) && all_precision(&r, 3, 0, -1), "categories without GT: -1");
    EXPECT(r.cat_ap[0] == ONE_TP && r.cat_ap[2] == ONE_TP && r.cat_ap[1] == -1 && r.cat_ap[3] == -1,
           "per category %.17g %.17g %.17g %.17g", r.cat_ap[0], r.cat_ap[1], r.cat_ap[2], r.cat_ap[3]);
    for (int t = 0; t < LVIS_EVAL_T; t++)
        EXPECT(R(&r, t, 0, 0) == 1 && R(&r, t, 2, 0) == 1 && R(&r, t, 1, 0) == -1, "recall at t%d", t);
    EXPECT(fabs(r.stats[LVIS_AP] - 1) < 1e-12 && r.stats[LVIS_APC] == -1 && r.stats[LVIS_APM] == -1 &&
               fabs(r.stats[LVIS_APR] - 1) < 1e-12 && r.stats[LVIS_AR] == 1,
           "AP %.17g APc %g", r.stats[LVIS_AP], r.stats[LVIS_APC]);
    lvis_eval_result_free(&r), lvis_free(&d);
}

/* area_*.json (bbox): GT area 1024 ([0,0,32,32]) and 9216 ([100,100,96,96]); detections
 * 0.99 FP of area 9216, 0.95 FP of area 1024, 0.9 on the first GT, 0.8 on the second.
 * all and medium (both GT count): FP FP TP TP, pr [0, 0, 1/3, 1/2] -> envelope 0.5.
 * small [0,1024] (1024 counts; the 9216 GT is ignored): the 9216 FP is ignored (out of
 * range), FP(1024) TP ign -> 0.5. large [9216,1e10]: FP(9216), ign, ign, TP -> 0.5.
 * Exclusive GT bounds would leave small, medium and large without GT (-1); exclusive
 * detection bounds would ignore the boundary FPs (1/(1+eps) instead of 0.5). */
static void test_area_bounds(void) {
    lvis_data d;
    lvis_eval_result r;
    REQUIRE(eval_fixture("area", LVIS_IOU_BBOX, &d, &r) == 0);
    for (int a = 0; a < LVIS_EVAL_A; a++) {
        EXPECT(all_precision(&r, 0, a, 0.5), "area range %d", a);
        for (int t = 0; t < LVIS_EVAL_T; t++) EXPECT(R(&r, t, 0, a) == 1, "recall t%d a%d = %g", t, a, R(&r, t, 0, a));
    }
    EXPECT(r.stats[LVIS_APS] == 0.5 && r.stats[LVIS_APM] == 0.5 && r.stats[LVIS_APL] == 0.5, "APs %g APm %g APl %g",
           r.stats[LVIS_APS], r.stats[LVIS_APM], r.stats[LVIS_APL]);
    lvis_eval_result_free(&r), lvis_free(&d);
}

/* iou_thr_*.json (bbox): cat1 GT [0,0,10,10], detection [0,0,10,5]: IoU exactly 0.5, a
 * match at t = 0.5 only. cat2 GT [0,0,1,1], detection [0,0,1,0.8999999999999999]: IoU
 * h / ((h + 1) - h) = 0.8999999999999999 exactly, a match at thresholds 0..8 (index 8 is
 * 0.8999999999999999; the literal 0.9 would miss it), not at 0.95. Matched: precision
 * 1/(1+eps) at every r; unmatched: 0. */
static void test_iou_thresholds(void) {
    lvis_data d;
    lvis_eval_result r;
    REQUIRE(eval_fixture("iou_thr", LVIS_IOU_BBOX, &d, &r) == 0);
    for (int t = 0; t < LVIS_EVAL_T; t++) {
        EXPECT(R(&r, t, 0, 0) == (t == 0), "IoU 0.5 at threshold %d: recall %g", t, R(&r, t, 0, 0));
        EXPECT(R(&r, t, 1, 0) == (t <= 8), "IoU 0.8999999999999999 at threshold %d: recall %g", t, R(&r, t, 1, 0));
        EXPECT(P(&r, t, 50, 0, 0) == (t == 0 ? ONE_TP : 0) && P(&r, t, 100, 1, 0) == (t <= 8 ? ONE_TP : 0),
               "precision t%d", t);
    }
    EXPECT(fabs(r.cat_ap[0] - 0.1) < 1e-12 && fabs(r.cat_ap[1] - 0.9) < 1e-12, "%.17g %.17g", r.cat_ap[0], r.cat_ap[1]);
    lvis_eval_result_free(&r), lvis_free(&d);
}

/* matching_*.json (bbox). cat1: GT g1 [0,0,10,10], g2 [5,0,10,10]; det1 [2.5,0,10,10]
 * (0.9) has IoU 0.6 with both, det2 [0,0,10,10] (0.8) IoU 1 with g1. The later GT wins the
 * tie, so at t <= 0.6 det1 takes g2 and det2 takes g1: recall 1, precision 1 (2/(2+eps)
 * envelope); above 0.6 det1 is an FP: recall 0.5, precision 0.5 up to r = 0.5, then 0.
 * AP = (3*101 + 7*51*0.5) / 1010. cat2: GT ga [20,20,10,10] area 100, gb [22.5,20,10,10]
 * area 5000 (the area field, not the box); one detection on gb's box (IoU 1 with gb, 0.6
 * with ga). Small range (gb ignored): at t <= 0.6 it matches ga and stops at the ignored gb
 * (TP, recall 1), above it matches only gb (ignored: recall 0). Medium: gb, TP always. */
static void test_matching(void) {
    lvis_data d;
    lvis_eval_result r;
    REQUIRE(eval_fixture("matching", LVIS_IOU_BBOX, &d, &r) == 0);
    for (int t = 0; t < LVIS_EVAL_T; t++) {
        EXPECT(R(&r, t, 0, 0) == (t <= 2 ? 1 : 0.5), "later GT wins: recall t%d = %g", t, R(&r, t, 0, 0));
        EXPECT(P(&r, t, 0, 0, 0) == (t <= 2 ? 1 : 0.5) && P(&r, t, 50, 0, 0) == (t <= 2 ? 1 : 0.5) &&
                   P(&r, t, 51, 0, 0) == (t <= 2 ? 1 : 0),
               "cat1 precision t%d", t);
        EXPECT(R(&r, t, 1, 1) == (t <= 2), "stop at the ignored GT: small recall t%d = %g", t, R(&r, t, 1, 1));
        EXPECT(R(&r, t, 1, 2) == 1 && R(&r, t, 1, 0) == 0.5, "cat2 medium/all recall t%d", t);
    }
    EXPECT(fabs(r.cat_ap[0] - 481.5 / 1010) < 1e-12, "cat1 AP %.17g", r.cat_ap[0]);
    lvis_eval_result_free(&r), lvis_free(&d);
}

/* order_*.json (bbox). cat1 (image 10, 3 GT): TP .9, FP .8, FP .7, TP .6, TP .5: rc
 * [1/3,1/3,1/3,2/3,1], pr [1/(1+eps), 1/2, 1/3, 2/4, 3/5]; the envelope lifts the 0.5 at
 * rc 2/3 to 0.6: r <= 0.33 (34 points) 1/(1+eps), r >= 0.34 (67 points) 0.6 (0.5 for 33
 * of them without the envelope). cat2: a TP on image 5 and an FP on image 3 (neg there),
 * both 0.5, the TP first in the file and image 5 first in the GT: across images ties go to
 * the lower image id, FP first: pr [0, 0.5] -> 0.5 everywhere. cat3 (image 10): two 0.7
 * detections, the FP first in the file: within an image ties keep file order -> 0.5. */
static void test_order_and_envelope(void) {
    lvis_data d;
    lvis_eval_result r;
    REQUIRE(eval_fixture("order", LVIS_IOU_BBOX, &d, &r) == 0);
    for (int t = 0; t < LVIS_EVAL_T; t++)
        for (int i = 0; i < LVIS_EVAL_R; i++)
            EXPECT(P(&r, t, i, 0, 0) == (i <= 33 ? ONE_TP : 0.6), "envelope: P[t%d][r%d] = %.17g", t, i,
                   P(&r, t, i, 0, 0));
    EXPECT(fabs(r.cat_ap[0] - (34 * ONE_TP + 67 * 0.6) / 101) < 1e-12, "cat1 AP %.17g", r.cat_ap[0]);
    EXPECT(all_precision(&r, 1, 0, 0.5), "cross-image tie: the lower image id first");
    EXPECT(all_precision(&r, 2, 0, 0.5), "within-image tie: file order");
    lvis_eval_result_free(&r), lvis_free(&d);
}

/* perfect_*.json: every GT detected exactly. cat1 (1 GT): 1/(1+eps) = 0.9999999999999998
 * everywhere; cat2 (4 GT): k/(k+eps) = 1 from k = 2, so the envelope gives 1. Box AP, and
 * mask AP where the box-only results are rasterised as 4-corner polygons (§2.3). */
static void test_perfect(void) {
    for (int type = 0; type < 2; type++) {
        lvis_data d;
        lvis_eval_result r;
        REQUIRE(eval_fixture("perfect", (lvis_iou_type)type, &d, &r) == 0);
        EXPECT(all_precision(&r, 0, 0, ONE_TP) && all_precision(&r, 1, 0, 1.0), "%s", type ? "segm" : "bbox");
        for (int i = 0; i < LVIS_NUM_STATS; i++)
            if (r.stats[i] != -1)
                EXPECT(fabs(r.stats[i] - 1) <= 1e-12, "%s %s = %.17g", type ? "segm" : "bbox", lvis_stat_names[i],
                       r.stats[i]);
        EXPECT(r.stats[LVIS_APR] == ONE_TP && r.stats[LVIS_APF] == 1, "APr %.17g APf %.17g", r.stats[LVIS_APR],
               r.stats[LVIS_APF]);
        lvis_eval_result_free(&r), lvis_free(&d);
    }
}

/* segm_*.json: a 20x20 image. cat1 GT: the square (2,2)-(8,8) (36 pixels). Detections
 * (masks, no bbox: areas from the masks): 0.9 the same square in a 20x21 mask (size
 * mismatch: IoU -1, never matches: FP), 0.8 the square at 20x20 (TP) -> pr [0, 0.5] ->
 * 0.5. cat2 GT: (10,10)-(15,15); 0.95 an empty mask (area 0: dropped), 0.5 the square as
 * uncompressed counts (TP) -> 1/(1+eps). */
static void test_segm(void) {
    lvis_data d;
    lvis_eval_result r;
    REQUIRE(eval_fixture("segm", LVIS_IOU_SEGM, &d, &r) == 0);
    EXPECT(!r.det_area_from_box && r.n_dets == 3, "areas from masks, %lld evaluated", (long long)r.n_dets);
    EXPECT(all_precision(&r, 0, 0, 0.5), "a mask of another size never matches");
    EXPECT(all_precision(&r, 1, 0, ONE_TP), "an empty mask is dropped");
    for (int t = 0; t < LVIS_EVAL_T; t++) EXPECT(R(&r, t, 0, 0) == 1 && R(&r, t, 1, 0) == 1, "recall t%d", t);
    lvis_eval_result_free(&r), lvis_free(&d);
}

/* A GT whose first polygon has 4 numbers: pycocotools reads the list as boxes and fails,
 * so mask AP reports it; box AP never rasterises it. */
static void test_quad_polygon(void) {
    lvis_data d;
    lvis_eval_result r;
    char err[1024] = "";
    REQUIRE(load_gt(&d, FIX "quad_gt.json", err, sizeof err) == 0, "%s", err);
    EXPECT(lvis_eval_run(&d, FIX "perfect_dets.json", LVIS_IOU_SEGM, 1, &r, err, sizeof err) == -1, "accepted");
    EXPECT(strstr(err, FIX "quad_gt.json: annotations[0]: the first polygon has exactly 4 numbers") == err, "%s", err);
    lvis_free(&d);
    REQUIRE(load_gt(&d, FIX "quad_gt.json", err, sizeof err) == 0, "%s", err);
    const char *res = tmp_path("quad_dets.json");
    FILE *f = fopen(res, "w");
    REQUIRE(f);
    fprintf(f, "[{\"image_id\": 1, \"category_id\": 1, \"bbox\": [2, 2, 6, 6], \"score\": 0.5}]\n");
    fclose(f);
    int rc = lvis_eval_run(&d, res, LVIS_IOU_BBOX, 1, &r, err, sizeof err);
    EXPECT(rc == 0, "%s", err);
    if (rc == 0) {
        EXPECT(r.cat_ap[0] == ONE_TP, "box AP %.17g", r.cat_ap[0]);
        lvis_eval_result_free(&r);
    }
    lvis_free(&d);
}

/* The per-image cap (§2.1), generated: image 1 has 311 results. In file order: a cat1 FP
 * at 0.1 (with a polygon and no bbox), 290 cat3 at 0.9 (cat3: no GT, not neg: dropped
 * later, but they use the budget), then 20 tied at 0.5: 9 cat3, the cat1 TP, 10 cat1 FPs.
 * The stable sort keeps the 290 and the first 10 of the tie (up to the TP) and cuts the
 * FPs and the 0.1: cat1 = {TP}, precision 1/(1+eps). Image 2: 5 cat2 results, not capped.
 * Kept 300 + 5; evaluated 1 + 5. The mode comes from the head of the regrouped list (the
 * first 0.9, which has a bbox), not from record 0 (no bbox): box mode. */
static void test_cap(void) {
    const char *gt = tmp_path("cap_gt.json"), *res = tmp_path("cap_dets.json");
    FILE *f = fopen(gt, "w");
    REQUIRE(f);
    fprintf(
        f,
        "{\"images\": [{\"id\": 1, \"width\": 100, \"height\": 100, \"neg_category_ids\": [], "
        "\"not_exhaustive_category_ids\": [], \"file_name\": \"1.jpg\"}, {\"id\": 2, \"width\": 100, \"height\": 100, "
        "\"neg_category_ids\": [], \"not_exhaustive_category_ids\": [], \"file_name\": \"2.jpg\"}],\n"
        "\"categories\": [{\"id\": 1, \"frequency\": \"f\", \"name\": \"a\"}, {\"id\": 2, \"frequency\": \"c\", "
        "\"name\": \"b\"}, {\"id\": 3, \"frequency\": \"r\", \"name\": \"c\"}],\n"
        "\"annotations\": [{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100, "
        "\"segmentation\": [[0, 0, 10, 0, 10, 10, 0, 10]]}, {\"id\": 2, \"image_id\": 2, \"category_id\": 2, "
        "\"bbox\": [0, 0, 10, 10], \"area\": 100, \"segmentation\": [[0, 0, 10, 0, 10, 10, 0, 10]]}]}\n");
    fclose(f);
    f = fopen(res, "w");
    REQUIRE(f);
    fprintf(f, "[{\"image_id\": 1, \"category_id\": 1, \"segmentation\": [[50, 50, 60, 50, 60, 60]], \"score\": 0.1}");
    for (int i = 0; i < 290; i++)
        fprintf(f, ",\n{\"image_id\": 1, \"category_id\": 3, \"bbox\": [0, 0, 10, 10], \"score\": 0.9}");
    for (int i = 0; i < 20; i++)
        fprintf(f, ",\n{\"image_id\": 1, \"category_id\": %d, \"bbox\": [%d, %d, 10, 10], \"score\": 0.5}",
                i < 9 ? 3 : 1, i <= 9 ? 0 : 50, i <= 9 ? 0 : 50);
    for (int i = 0; i < 5; i++)
        fprintf(f, ",\n{\"image_id\": 2, \"category_id\": 2, \"bbox\": [%d, 0, 10, 10], \"score\": %.1f}", i ? 50 : 0,
                0.9 - 0.1 * i);
    fprintf(f, "]\n");
    fclose(f);
    lvis_data d;
    lvis_eval_result r;
    char err[1024] = "";
    REQUIRE(load_gt(&d, gt, err, sizeof err) == 0, "%s", err);
    int rc = lvis_eval_run(&d, res, LVIS_IOU_BBOX, 2, &r, err, sizeof err);
    if (rc) lvis_free(&d);
    REQUIRE(rc == 0, "%s", err);
    EXPECT(r.n_records == 316 && r.n_loaded == 305 && r.n_dets == 6, "records %lld, loaded %lld, evaluated %lld",
           (long long)r.n_records, (long long)r.n_loaded, (long long)r.n_dets);
    EXPECT(r.det_area_from_box, "box mode from the regrouped list's head");
    EXPECT(all_precision(&r, 0, 0, ONE_TP), "cat1: the TP kept, the tied FPs after it cut");
    EXPECT(all_precision(&r, 1, 0, ONE_TP) && r.cat_ap[2] == -1);
    lvis_eval_result_free(&r), lvis_free(&d);
}

/* ---- the command ----------------------------------------------------------------------- */

/* A malformed results file: exit 1 and exactly one line "error: PATH: ...want...". */
static void expect_bad(const char *gt, const char *file, const char *type, const char *want) {
    char path[256], out[2048];
    snprintf(path, sizeof path, FIX "%s", file);
    char *argv[] = {"lvis-eval", "--gt", (char *)gt, "--results", path, "--type", (char *)type, NULL};
    int st = test_run_main(lvis_eval_main, argv, out, sizeof out);
    char *nl = strchr(out, '\n');
    EXPECT(st == 1 && !strncmp(out, "error: ", 7) && !strncmp(out + 7, path, strlen(path)) && strstr(out, want) &&
               nl && nl[1] == 0,
           "%s: exit %d, printed '%s', want one line 'error: %s: ...%s...'", file, st, out, path, want);
}

static void test_bad_results(void) {
    const char *gt = FIX "federated_gt.json", *sg = FIX "segm_gt.json";
    expect_bad(gt, "bad_not_array.json", "bbox", "the results must be a JSON array");
    expect_bad(gt, "bad_empty.json", "bbox", "the results list is empty");
    expect_bad(gt, "bad_truncated.json", "bbox", "unterminated string");
    expect_bad(gt, "bad_not_object.json", "bbox", ": [1]: a result must be an object");
    expect_bad(gt, "bad_missing_score.json", "bbox", ": [1]: 'score' is missing");
    expect_bad(gt, "bad_image_type.json", "bbox", ": [1]: 'image_id' must be a number");
    expect_bad(gt, "bad_score_type.json", "bbox", ": [0]: 'score' must be a number");
    expect_bad(gt, "bad_unknown_image.json", "bbox", ": [1]: image_id 999 is not an image of the ground truth");
    expect_bad(gt, "bad_bbox.json", "bbox", ": [1]: 'bbox' must be [x, y, w, h]");
    expect_bad(gt, "bad_no_bbox.json", "bbox", ": [2]: no 'bbox'");
    expect_bad(sg, "bad_rle_char.json", "segm", ": [0]: bad RLE string: character 0x21");
    expect_bad(sg, "bad_rle_sum.json", "segm", ": [0]: bad RLE string: counts sum to 43");
    expect_bad(sg, "bad_rle_size.json", "segm", ": [0]: the mask's 'size' must be [height, width]");
    expect_bad(gt, "nonexistent.json", "bbox", "cannot open");
}

static void test_usage(void) {
    char out[4096];
    char *no_type[] = {"lvis-eval", "--gt", FIX "federated_gt.json", "--results", FIX "federated_dets.json", NULL};
    EXPECT(test_run_main(lvis_eval_main, no_type, out, sizeof out) == 2 && strstr(out, "--type"), "missing --type: %s", out);
    char *bad_type[] = {"lvis-eval", "--gt", "a", "--results", "b", "--type", "mask", NULL};
    EXPECT(test_run_main(lvis_eval_main, bad_type, out, sizeof out) == 2 && strstr(out, "bbox or segm"), "%s", out);
    char *bad_threads[] = {"lvis-eval", "--gt", "a", "--results", "b", "--type", "bbox", "--threads", "0", NULL};
    EXPECT(test_run_main(lvis_eval_main, bad_threads, out, sizeof out) == 2, "%s", out);
    char *help[] = {"lvis-eval", "--help", NULL};
    EXPECT(test_run_main(lvis_eval_main, help, out, sizeof out) == 0 && strstr(out, "usage: maskrcnn lvis-eval"), "%s", out);
}

/* --json: the last line is one object whose numbers round-trip to the library's; the
 * table prints percentages; --per-category writes the CSV. */
static void test_json_and_csv(void) {
    const char *csv = tmp_path("per_category.csv");
    char out[16384];
    char *argv[] = {"lvis-eval", "--gt", FIX "order_gt.json", "--results", FIX "order_dets.json", "--type", "bbox",
                    "--json", "--per-category", (char *)csv, "--threads", "3", NULL};
    int st = test_run_main(lvis_eval_main, argv, out, sizeof out);
    REQUIRE(st == 0, "exit %d: %s", st, out);
    size_t n = strlen(out);
    REQUIRE(n > 2 && out[n - 1] == '\n');
    out[n - 1] = 0;
    char *last = strrchr(out, '\n');
    last = last ? last + 1 : out;
    cJSON *j = cJSON_Parse(last);
    REQUIRE(j, "the last line is not JSON: %s", last);
    lvis_data d;
    lvis_eval_result r;
    if (eval_fixture("order", LVIS_IOU_BBOX, &d, &r)) {
        cJSON_Delete(j);
        REQUIRE(0);
    }
    for (int i = 0; i < LVIS_NUM_STATS; i++) {
        const cJSON *v = cJSON_GetObjectItem(j, lvis_stat_names[i]);
        EXPECT(cJSON_IsNumber(v) && v->valuedouble == r.stats[i], "%s: %s", lvis_stat_names[i], last);
    }
    EXPECT(!strcmp(cJSON_GetObjectItem(j, "iou_type")->valuestring, "bbox"));
    EXPECT(cJSON_GetObjectItem(j, "num_results_loaded_after_max_dets")->valueint == 9);
    EXPECT(strstr(out, "| 57.822  |"), "AP as a percentage in the table: %s", out); /* 0.5782178... */
    FILE *f = fopen(csv, "r");
    char text[512] = "";
    if (f) text[fread(text, 1, sizeof text - 1, f)] = 0, fclose(f);
    EXPECT(!strcmp(text, "category_id,name,frequency,AP\n1,cat1,f,0.7346534653465344\n2,cat2,c,0.5\n3,cat3,r,0.5\n"),
           "CSV: %s", text);
    cJSON_Delete(j);
    lvis_eval_result_free(&r), lvis_free(&d);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mrc_test_lvis_eval.XXXXXX");
    if (!mkdtemp(tmp_dir)) return fprintf(stderr, "test_lvis_eval: cannot create %s\n", tmp_dir), 1;
    RUN(test_thresholds);
    RUN(test_np_mean);
    RUN(test_golden);
    RUN(test_threads_identical);
    RUN(test_federated);
    RUN(test_area_bounds);
    RUN(test_iou_thresholds);
    RUN(test_matching);
    RUN(test_order_and_envelope);
    RUN(test_perfect);
    RUN(test_segm);
    RUN(test_quad_polygon);
    RUN(test_cap);
    RUN(test_bad_results);
    RUN(test_usage);
    RUN(test_json_and_csv);
    test_remove_tmpdir(tmp_dir);
    return test_finish("test_lvis_eval");
}

/* match.c: the matcher, the subsampler and the polygon mask targets (contracts in match.h).
 * Naive loops on purpose: this is the reference; the matcher's cost is one pass (two with
 * low-quality matches) over a [G, A] matrix the caller streams in chunks. */
#include "match.h"

#include "core/check.h"
#include "eval/rle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ------------------------------------------------------------------- */

match_cfg match_cfg_rpn(void) {
    match_cfg c = {0};
    c.n_thresholds = 2;
    c.thresholds[0] = 0.3f;
    c.thresholds[1] = 0.7f;
    c.labels[0] = 0;
    c.labels[1] = -1;
    c.labels[2] = 1;
    c.allow_low_quality = 1;
    c.variant = MATCH_VARIANT_D2;
    return c;
}

match_cfg match_cfg_roi(void) {
    match_cfg c = {0};
    c.n_thresholds = 1;
    c.thresholds[0] = 0.5f;
    c.labels[0] = 0;
    c.labels[1] = 1;
    return c;
}

match_cfg match_cfg_rpn_mmdet(void) {
    match_cfg c = match_cfg_rpn();
    c.variant = MATCH_VARIANT_MMDET;
    c.min_pos_iou = 0.3f;
    return c;
}

void match_cfg_check(const match_cfg *c) {
    CHECK(c->n_thresholds >= 1 && c->n_thresholds <= MATCH_MAX_THRESHOLDS, "matcher: %d thresholds",
          c->n_thresholds);
    CHECK(c->thresholds[0] > 0, "matcher: first threshold %g must be > 0", (double)c->thresholds[0]);
    for (int i = 1; i < c->n_thresholds; i++)
        CHECK(c->thresholds[i] > c->thresholds[i - 1], "matcher: thresholds must ascend (%g after %g)",
              (double)c->thresholds[i], (double)c->thresholds[i - 1]);
    for (int i = 0; i <= c->n_thresholds; i++)
        CHECK(c->labels[i] >= -1 && c->labels[i] <= 1, "matcher: label %d is %d, not -1, 0 or 1", i, c->labels[i]);
    CHECK(c->variant == MATCH_VARIANT_D2 || c->variant == MATCH_VARIANT_MMDET, "matcher: variant %d",
          (int)c->variant);
}

/* ---- matcher ------------------------------------------------------------------------- */

void match_begin(int G, float *gt_max) {
    for (int g = 0; g < G; g++) gt_max[g] = -INFINITY;
}

void match_scan_chunk(const float *iou, int64_t ld, int G, int64_t a0, int64_t n, float *gt_max, float *best,
                      int32_t *matched) {
    CHECK(G >= 0 && n >= 0 && a0 >= 0 && ld >= n, "matcher chunk: G %d, a0 %lld, n %lld, ld %lld", G,
          (long long)a0, (long long)n, (long long)ld);
    for (int64_t j = 0; j < n; j++) {
        float b = -INFINITY;
        int32_t arg = -1;
        for (int g = 0; g < G; g++) {
            float v = iou[(int64_t)g * ld + j];
            /* d2 asserts all(matrix >= 0); a NaN fails it too. */
            if (!(v >= 0)) FATAL("matcher: IoU(gt %d, candidate %lld) = %g, must be >= 0", g, (long long)(a0 + j),
                                 (double)v);
            if (v > b) { /* strict: the first (lowest) g keeps a tie, as torch.max */
                b = v;
                arg = g;
            }
            if (v > gt_max[g]) gt_max[g] = v;
        }
        best[a0 + j] = b;
        matched[a0 + j] = arg;
    }
}

/* label[i] for thr[i-1] <= v < thr[i], with thr[-1] = -inf and thr[n] = +inf. */
static int8_t bin_label(const match_cfg *c, float v) {
    int i = 0;
    while (i < c->n_thresholds && v >= c->thresholds[i]) i++;
    return c->labels[i];
}

void match_threshold(const match_cfg *cfg, int G, int64_t A, const float *best, int8_t *labels) {
    match_cfg_check(cfg);
    for (int64_t a = 0; a < A; a++) labels[a] = G == 0 ? cfg->labels[0] : bin_label(cfg, best[a]);
}

void match_low_quality_chunk(const match_cfg *cfg, const float *iou, int64_t ld, int G, int64_t a0, int64_t n,
                             const float *gt_max, int32_t *matched, int8_t *labels) {
    CHECK(G >= 0 && n >= 0 && a0 >= 0 && ld >= n, "matcher chunk: G %d, a0 %lld, n %lld, ld %lld", G,
          (long long)a0, (long long)n, (long long)ld);
    if (!cfg->allow_low_quality) return;
    int mmdet = cfg->variant == MATCH_VARIANT_MMDET;
    for (int64_t j = 0; j < n; j++)
        for (int g = 0; g < G; g++) {
            if (iou[(int64_t)g * ld + j] != gt_max[g]) continue;
            if (!mmdet) {
                labels[a0 + j] = 1; /* keeps its own argmax GT */
            } else if (gt_max[g] >= cfg->min_pos_iou) {
                labels[a0 + j] = 1;
                matched[a0 + j] = g; /* ascending g: the highest qualifying g wins, as mmdet */
            }
        }
}

void match_cpu(const match_cfg *cfg, const float *iou, int G, int64_t A, float *gt_max, float *best,
               int32_t *matched, int8_t *labels) {
    match_begin(G, gt_max);
    match_scan_chunk(iou, A, G, 0, A, gt_max, best, matched);
    match_threshold(cfg, G, A, best, labels);
    match_low_quality_chunk(cfg, iou, A, G, 0, A, gt_max, matched, labels);
}

/* ---- subsampler ---------------------------------------------------------------------- */

/* Moves a uniform random k-subset of idx[0..n) to idx[0..k) (partial Fisher-Yates: step i
 * swaps idx[i] with a uniform pick from idx[i..n)); k words of r. */
static void partial_shuffle(rng *r, int32_t *idx, int64_t n, int k) {
    for (int i = 0; i < k; i++) {
        int64_t j = i + (int64_t)rng_below(r, (uint32_t)(n - i));
        int32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

int match_subsample(rng *r, int8_t *labels, int64_t A, int batch, double pos_fraction, int32_t *scratch,
                    int32_t *sampled, int *num_pos_out) {
    CHECK(A >= 0 && A <= INT32_MAX, "subsample: %lld candidates", (long long)A);
    CHECK(batch >= 0 && batch <= MATCH_MAX_BATCH, "subsample: batch %d (at most %d)", batch, MATCH_MAX_BATCH);
    CHECK(pos_fraction >= 0 && pos_fraction <= 1, "subsample: positive fraction %g", pos_fraction);
    int64_t n_pos = 0, n_neg = 0;
    for (int64_t a = 0; a < A; a++) {
        CHECK(labels[a] >= -1 && labels[a] <= 1, "subsample: label of candidate %lld is %d", (long long)a,
              labels[a]);
        n_pos += labels[a] == 1;
        n_neg += labels[a] == 0;
    }
    /* positives at scratch[0 .. n_pos), negatives at scratch[n_pos .. n_pos + n_neg), each in
     * index order (d2's nonzero order) before the shuffle. */
    int32_t *pos = scratch, *neg = scratch + n_pos;
    int64_t ip = 0, in = 0;
    for (int64_t a = 0; a < A; a++) {
        if (labels[a] == 1) pos[ip++] = (int32_t)a;
        else if (labels[a] == 0) neg[in++] = (int32_t)a;
    }
    int want_pos = (int)(batch * pos_fraction);
    int num_pos = n_pos < want_pos ? (int)n_pos : want_pos;
    int num_neg = n_neg < batch - num_pos ? (int)n_neg : batch - num_pos;
    partial_shuffle(r, pos, n_pos, num_pos);
    partial_shuffle(r, neg, n_neg, num_neg);
    for (int64_t a = 0; a < A; a++) labels[a] = -1;
    for (int i = 0; i < num_pos; i++) {
        sampled[i] = pos[i];
        labels[pos[i]] = 1;
    }
    for (int i = 0; i < num_neg; i++) {
        sampled[num_pos + i] = neg[i];
        labels[neg[i]] = 0;
    }
    if (num_pos_out) *num_pos_out = num_pos;
    return num_pos + num_neg;
}

rng match_sample_rng(uint64_t seed, uint64_t step, int image, int stage) {
    CHECK(image >= 0 && image < MATCH_MAX_IMAGES, "match rng: image %d (at most %d per step)", image,
          MATCH_MAX_IMAGES);
    CHECK(stage >= 0, "match rng: stage %d", stage);
    rng r = rng_make(seed, RNG_STREAM_MATCH | (uint64_t)(uint32_t)stage);
    r.offset = (step * MATCH_MAX_IMAGES + (uint64_t)image) * MATCH_MAX_BATCH;
    return r;
}

/* ---- mask targets -------------------------------------------------------------------- */

/* M / max(v, 0.1) as d2 computes it on a float32 box: Python's max(v, 0.1) returns the
 * float 0.1 (a double) only when 0.1 > v, and then M / 0.1 is a double division; otherwise
 * v stays a numpy float32 and M / v is a float32 division. NaN falls through to NaN. */
static double box_ratio(int M, float v) {
    if (0.1f > v) return (double)M / 0.1;
    return (double)((float)M / v);
}

int mask_target_cpu(const float box[4], const mask_polys *p, int M, float *out) {
    CHECK(M >= 1 && p->n_parts >= 0, "mask target: M %d, %d parts", M, p->n_parts);
    for (int i = 0; i < M * M; i++) out[i] = 0;
    int64_t total = 0;
    for (int k = 0; k < p->n_parts; k++) {
        CHECK(p->n_coords[k] >= 0 && p->offset[k] >= 0, "mask target: part %d", k);
        total += p->n_coords[k];
    }
    double *xy = malloc((size_t)(total > 0 ? total : 1) * sizeof *xy);
    int64_t *off = malloc((size_t)(p->n_parts > 0 ? p->n_parts : 1) * sizeof *off);
    uint8_t *col = malloc((size_t)M * M);
    int rc = -1;
    if (!xy || !off || !col) goto done;
    double x0 = box[0], y0 = box[1];
    double rw = box_ratio(M, box[2] - box[0]), rh = box_ratio(M, box[3] - box[1]);
    int64_t at = 0;
    for (int k = 0; k < p->n_parts; k++) {
        const double *src = p->xy + p->offset[k];
        off[k] = at;
        for (int64_t i = 0; i < p->n_coords[k]; i++)
            xy[at + i] = (i & 1) ? (src[i] - y0) * rh : (src[i] - x0) * rw;
        at += p->n_coords[k];
    }
    rle m = {0};
    if (rle_from_polygons(&m, xy, off, p->n_coords, p->n_parts, M, M) != 0) goto done;
    rle_decode(&m, col);
    rle_free(&m);
    for (int x = 0; x < M; x++) /* column-major (x * M + y) -> row-major (y * M + x) */
        for (int y = 0; y < M; y++) out[y * M + x] = col[x * M + y] ? 1.0f : 0.0f;
    rc = 0;
done:
    free(xy);
    free(off);
    free(col);
    return rc;
}

int mask_targets_cpu(int R, const float *boxes, const int32_t *gt_index, const mask_polys *gt, int G, int M,
                     float *out, int *bad_roi) {
    CHECK(R >= 0 && G >= 0 && M >= 1, "mask targets: R %d, G %d, M %d", R, G, M);
    for (int r = 0; r < R; r++)
        CHECK(gt_index[r] >= 0 && gt_index[r] < G, "mask targets: RoI %d matched to GT %d of %d", r, gt_index[r], G);
    int first_bad = R;
#pragma omp parallel for schedule(dynamic) reduction(min : first_bad)
    for (int r = 0; r < R; r++) {
        float *o = out + (int64_t)r * M * M;
        if (mask_target_cpu(boxes + 4 * (int64_t)r, &gt[gt_index[r]], M, o) != 0) {
            for (int i = 0; i < M * M; i++) o[i] = 0;
            if (r < first_bad) first_bad = r;
        }
    }
    if (bad_roi) *bad_roi = first_bad < R ? first_bad : -1;
    return first_bad < R ? -1 : 0;
}

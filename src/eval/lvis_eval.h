/* lvis_eval.h: the official LVIS v1 evaluation (box AP and mask AP), number for number
 * with lvis-api (reference/lvis_eval.md; the golden cases in shared/golden/lvis_eval/).
 *
 * Ground truth comes from the LVIS reader in official mode (lvis_open with LVIS_OFFICIAL:
 * it keeps every annotation and the JSON's doubles, ann_bbox_d and verts_d). Results are a
 * JSON array of {image_id, category_id, score, bbox?, segmentation?}; the file is mapped
 * and read one record at a time (json_scan.h), never as one tree, so LVIS val's mask
 * results (gigabytes) fit: a detection's RLE is kept only when it survives the per-image
 * 300 cap, the category and federated filters and the area > 0 rule.
 *
 * What the evaluation does, in the spec's order:
 *   §2 the per-image cap (300, a stable sort by score over the file's records, counted
 *      before any filtering); the box/mask mode from the first record of the regrouped
 *      list (a `bbox` key: box areas; none: RLE areas and boxes);
 *   §4 GT with 0 < area < inf, detections of GT categories with area > 0 whose category is
 *      positive (a kept GT) or negative on their image;
 *   §5 per (category, image) the IoUs once, then per area range the greedy matching at
 *      the 10 IoU thresholds (stable orders, later GT wins ties, not-exhaustive and
 *      out-of-range unmatched detections ignored);
 *   §6 per (category, area range) one stable sort of the category's detections over all
 *      images (ascending image id on score ties), cumulative TP/FP, eps 2^-52, the
 *      precision envelope, 101 recall points;
 *   §9 the means, with numpy's pairwise summation emulated so the numbers agree to the
 *      last bit, not just to 1e-15.
 *
 * Extensions, where lvis-api would crash: uncompressed RLE counts and polygon lists are
 * accepted as a mask result in files without a `bbox` key (polygons are rasterised at the
 * GT image's size); an empty results list is an error (lvis-api reads result[0]). */
#ifndef MRC_LVIS_EVAL_H
#define MRC_LVIS_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "data/lvis.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LVIS_IOU_BBOX = 0, LVIS_IOU_SEGM } lvis_iou_type;

enum {
    LVIS_EVAL_T = 10,          /* IoU thresholds 0.5:0.05:0.95 */
    LVIS_EVAL_R = 101,         /* recall thresholds 0:0.01:1 */
    LVIS_EVAL_A = 4,           /* area ranges: all, small, medium, large */
    LVIS_EVAL_MAX_DETS = 300,  /* detections kept per image (§2) */
};

/* The summary numbers, in detectron2's order. */
typedef enum {
    LVIS_AP = 0, LVIS_AP50, LVIS_AP75, LVIS_APS, LVIS_APM, LVIS_APL, LVIS_APR, LVIS_APC, LVIS_APF,
    LVIS_AR, LVIS_ARS, LVIS_ARM, LVIS_ARL,
    LVIS_NUM_STATS
} lvis_stat;

/* "AP", "AP50", ..., "AR@300", "ARs@300", "ARm@300", "ARl@300" (lvis-api's keys). */
extern const char *const lvis_stat_names[LVIS_NUM_STATS];
/* The exact doubles of numpy's linspace (§3): IoU thresholds (index 8 is
 * 0.8999999999999999, not 0.9), recall thresholds (i * 0.01, the last exactly 1.0) and the
 * area ranges, inclusive at both ends. */
extern const double lvis_iou_thrs[LVIS_EVAL_T];
double lvis_rec_thr(int i);
extern const double lvis_area_rng[LVIS_EVAL_A][2];

typedef struct lvis_eval_result {
    lvis_iou_type type;
    double stats[LVIS_NUM_STATS]; /* fractions; -1 where the slice has no valid entry */
    int n_cat;
    double *cat_ap;               /* [n_cat] mean precision over (t, r) at area all; -1: no GT */
    double *precision;            /* [T][R][n_cat][A], -1 where a (category, area) has no GT */
    double *recall;               /* [T][n_cat][A] */
    int64_t n_records;            /* records in the results file */
    int64_t n_loaded;             /* after the per-image cap (num_results_loaded_after_max_dets) */
    int64_t n_dets;               /* evaluated: GT category, federated pos/neg, area > 0 */
    int64_t n_gt;                 /* GT kept (0 < area < inf) */
    int det_area_from_box;        /* 1: the first record had a bbox key (box areas, §2.3) */
    double t_load, t_eval;        /* seconds: GT preparation and reading the results; matching and accumulation */
} lvis_eval_result;

/* Evaluates the results file against gt (read in LVIS_OFFICIAL mode). threads: 0 for the
 * online CPUs, at most 8; the numbers do not depend on it. Returns 0, or -1 with one line
 * in err: "RESULTS: problem" for the file (not an array, empty, not JSON),
 * "RESULTS: [i]: problem" for a bad record, "GT: annotations[i]: problem" for a GT object
 * that cannot be rasterised (segm). Records are checked in two rounds, each reporting its
 * first bad record in file order: every record's image_id, category_id and score (and the
 * bbox or segmentation key the mode needs, on the records the cap keeps); then the
 * geometry (box, mask) of the records that are evaluated. out is freed with
 * lvis_eval_result_free. */
int lvis_eval_run(const lvis_data *gt, const char *results_path, lvis_iou_type type, int threads,
                  lvis_eval_result *out, char *err, size_t errn);
void lvis_eval_result_free(lvis_eval_result *r);

/* numpy's float64 mean of n values (np.mean): 8192-element chunks, each a pairwise sum,
 * added in turn, divided by n (§9). */
double lvis_np_mean(const double *v, int64_t n);

#ifdef __cplusplus
}
#endif
#endif

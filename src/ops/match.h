/* match.h: training-target assignment (reference/architecture.md §5.3, §6.1, §6.7):
 * the IoU matcher (detectron2 Matcher, with mmdet's MaxIoUAssigner low-quality rule as an
 * option), the positive/negative subsampler (detectron2 subsample_labels) and the 28×28
 * polygon mask targets (detectron2 rasterize_polygons_within_box).
 *
 * CPU reference; plain arrays, no tensors (these are integer bookkeeping, not autograd ops).
 * Letters: G ground truths, A candidates (anchors or proposals), R foreground RoIs, M the
 * mask side. */
#ifndef MRC_OPS_MATCH_H
#define MRC_OPS_MATCH_H

#include "core/rng.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The subsampler's RNG stream (high 32 bits, as rng.h's consumers; rng.h lists 1..4). The
 * low 32 bits are the sampling stage (MATCH_STAGE_*), see match_sample_rng. */
#define RNG_STREAM_MATCH (UINT64_C(5) << 32)

/* ======================================= matcher ======================================
 *
 * Input: an IoU ("match quality") matrix iou[g, a], G rows by A columns, row-major, with a
 * leading dimension ld >= the number of columns given (so a chunk of columns of a larger
 * matrix, or a compact [G, n] chunk, can be passed as is). Values must be >= 0 (d2 asserts
 * the same; a NaN or negative value stops the program naming (g, a)).
 *
 * Output per candidate a:
 *   matched[a]  the GT index with the largest IoU. Ties: the LOWEST g, which is what
 *               torch.max(dim=0) returns ("the index of the first maximal value", PyTorch
 *               docs; CPU and CUDA). G = 0: -1 (d2 returns 0 there, an index into nothing;
 *               -1 makes a misuse visible).
 *   labels[a]   bins on best = max_g iou[g, a]: label[i] when thr[i-1] <= best < thr[i]
 *               (thr[-1] = -inf, thr[n] = +inf). So the LOWER edge is inclusive: with the
 *               RPN's [0.3, 0.7] -> [0, -1, 1], best = 0.3 is ignore (-1) and best = 0.7 is
 *               positive; with the ROI heads' [0.5] -> [0, 1], best = 0.5 is foreground
 *               (d2: (v >= low) & (v < high) per bin). G = 0: every label is labels[0] (0).
 *
 * Low-quality matches (allow_low_quality, RPN only), applied after the bins:
 *   MATCH_VARIANT_D2: for every GT g, every candidate a with iou[g, a] == gt_max[g]
 *     (gt_max[g] = max_a iou[g, a]; ties included) gets label 1, whatever the value (also
 *     when gt_max[g] == 0: then every candidate with IoU 0 to g turns positive, as in d2);
 *     matched[a] stays the candidate's own argmax GT.
 *   MATCH_VARIANT_MMDET: only GTs with gt_max[g] >= min_pos_iou (0.3 for the RPN) promote,
 *     and the candidate is RE-ASSIGNED to that g; with several such GTs the highest g wins
 *     (mmdet's loop over g overwrites; gt_max_assign_all=True).
 *
 * Streaming (LVIS: hundreds of GTs × ~270k anchors): the caller never needs the whole
 * matrix, only a chunk of candidate columns (all G rows) at a time:
 *   match_begin(G, gt_max)
 *   for each chunk [a0, a0+n): match_scan_chunk(...)            pass 1: best, matched, gt_max
 *   match_threshold(cfg, G, A, best, labels)                    bins
 *   if cfg->allow_low_quality:
 *     for each chunk: match_low_quality_chunk(...)              pass 2 (needs gt_max final)
 * Chunks may come in any order and any sizes; the result equals match_cpu on the whole
 * matrix bit for bit, provided the caller recomputes the same IoU bits in pass 2 (IoU is
 * deterministic fp32 arithmetic; pass 2 compares with ==). Buffers are the caller's:
 * gt_max [G], best [A], matched [A], labels [A]; nothing is allocated. */

typedef enum match_variant {
    MATCH_VARIANT_D2 = 0,
    MATCH_VARIANT_MMDET = 1,
} match_variant;

#define MATCH_MAX_THRESHOLDS 4

typedef struct match_cfg {
    int n_thresholds;                          /* 1 .. MATCH_MAX_THRESHOLDS */
    float thresholds[MATCH_MAX_THRESHOLDS];    /* strictly ascending, > 0 (d2 asserts > 0) */
    int8_t labels[MATCH_MAX_THRESHOLDS + 1];   /* n_thresholds + 1 labels in {-1, 0, 1} */
    int allow_low_quality;
    match_variant variant;                     /* meaning of allow_low_quality, see above */
    float min_pos_iou;                         /* MATCH_VARIANT_MMDET only */
} match_cfg;

match_cfg match_cfg_rpn(void);   /* [0.3, 0.7] -> [0, -1, 1], low-quality on, d2 */
match_cfg match_cfg_roi(void);   /* [0.5] -> [0, 1], low-quality off */
match_cfg match_cfg_rpn_mmdet(void); /* [0.3, 0.7] -> [0, -1, 1], low-quality mmdet, min_pos_iou 0.3 */
/* Checks a configuration (the rules above); stops the program naming the bad field. */
void match_cfg_check(const match_cfg *cfg);

void match_begin(int G, float *gt_max); /* gt_max[g] = -inf */
/* Pass 1 on candidates a0 .. a0+n-1, iou[g * ld + j] being IoU(g, a0 + j): writes best[a]
 * and matched[a] for those candidates and raises gt_max[g] with them. */
void match_scan_chunk(const float *iou, int64_t ld, int G, int64_t a0, int64_t n, float *gt_max, float *best,
                      int32_t *matched);
/* Writes labels[0 .. A) from best[] (G = 0: labels[0] everywhere, and matched is not read). */
void match_threshold(const match_cfg *cfg, int G, int64_t A, const float *best, int8_t *labels);
/* Pass 2 (only when cfg->allow_low_quality): promotes, and for mmdet re-assigns, the chunk's
 * candidates that hold some GT's maximum. gt_max must be final (all chunks scanned). */
void match_low_quality_chunk(const match_cfg *cfg, const float *iou, int64_t ld, int G, int64_t a0, int64_t n,
                             const float *gt_max, int32_t *matched, int8_t *labels);
/* The whole [G, A] matrix at once (ld = A): the four calls above. gt_max [G], best [A] are
 * the caller's scratch (best may be read afterwards: each candidate's max IoU). */
void match_cpu(const match_cfg *cfg, const float *iou, int G, int64_t A, float *gt_max, float *best,
               int32_t *matched, int8_t *labels);

/* CUDA twins of the matcher's three steps (kernels/match.cu; CUDA builds only, MRC_CUDA):
 * the same contracts on device pointers, queued on `stream` (a cudaStream_t; NULL = the
 * default stream), synchronising after each launch when debug_sync. Bit-identical to the
 * CPU: per-candidate max/argmax is one thread's loop over g in the CPU's order, and gt_max
 * is a max (order-free) taken with integer atomicMax on the float bits, which order like
 * the floats for values >= 0. A value that is NaN or < 0 cannot stop the program from the
 * device: it is counted in *bad (device int, caller-zeroed; may be NULL) and skipped, and
 * the caller checks the count. */
void match_begin_gpu(int G, float *gt_max, void *stream, int debug_sync);
void match_scan_chunk_gpu(const float *iou, int64_t ld, int G, int64_t a0, int64_t n, float *gt_max, float *best,
                          int32_t *matched, int *bad, void *stream, int debug_sync);
void match_threshold_gpu(const match_cfg *cfg, int G, int64_t A, const float *best, int8_t *labels, void *stream,
                         int debug_sync);
void match_low_quality_chunk_gpu(const match_cfg *cfg, const float *iou, int64_t ld, int G, int64_t a0, int64_t n,
                                 const float *gt_max, int32_t *matched, int8_t *labels, void *stream, int debug_sync);

/* ====================================== subsampler ====================================
 *
 * detectron2 subsample_labels on labels[A] in {1 positive, 0 negative, -1 ignore}:
 *   num_pos = min(#pos, (int)(batch * pos_fraction))   (truncation, as Python's int())
 *   num_neg = min(#neg, batch - num_pos)
 * each drawn uniformly without replacement (a partial Fisher-Yates shuffle of the index
 * list: num_pos + num_neg words of r, one rng_below each; rng_below's bias < n / 2^32).
 * Writes sampled[0 .. num_pos) = the chosen positives, then sampled[num_pos .. num_pos +
 * num_neg) = the chosen negatives (the ROI heads' "fg first, then bg" order; within each
 * group the order is the shuffle's, random as d2's randperm), rewrites labels so that only
 * the chosen keep 1 / 0 and every other candidate is -1, and returns num_pos + num_neg.
 * *num_pos_out gets num_pos. scratch [A] is the caller's; sampled needs room for batch.
 * Labels other than -1, 0, 1 stop the program. RPN: batch 256, fraction 0.5; ROI heads: 512,
 * 0.25. batch <= MATCH_MAX_BATCH. */
#define MATCH_MAX_BATCH 65536
int match_subsample(rng *r, int8_t *labels, int64_t A, int batch, double pos_fraction, int32_t *scratch,
                    int32_t *sampled, int *num_pos_out);

/* Sampling stages (the low bits of RNG_STREAM_MATCH): the RPN, then one per box head
 * (cascade stage s uses MATCH_STAGE_ROI + s). */
#define MATCH_STAGE_RPN 0
#define MATCH_STAGE_ROI 1
#define MATCH_MAX_IMAGES 256
/* The generator for one (seed, step, image, stage): stream RNG_STREAM_MATCH | stage, offset
 * (step * MATCH_MAX_IMAGES + image) * MATCH_MAX_BATCH words, i.e. every image of every step
 * has its own window of MATCH_MAX_BATCH words, more than one match_subsample call uses. So
 * the draws depend on nothing but these four numbers (not on threads, order, or resume). */
rng match_sample_rng(uint64_t seed, uint64_t step, int image, int stage);

/* ===================================== mask targets ===================================
 *
 * detectron2 rasterize_polygons_within_box, for one RoI box b = (x0, y0, x1, y1) (fp32,
 * image pixels; the PROPOSAL box) and its matched GT's polygon parts (doubles, image
 * pixels, parts as rle_from_polygons takes them: part i has n_coords[i] numbers x, y, ...
 * at xy + offset[i]):
 *   w = x1 - x0, h = y1 - y0                      (fp32)
 *   rw = M / max(w, 0.1), rh = M / max(h, 0.1)     (fp32 division, as numpy on float32
 *                                                   scalars; max(v, 0.1) is 0.1 only when
 *                                                   0.1 > v, so a NaN stays NaN)
 *   x' = (x - x0) * rw, y' = (y - y0) * rh          (doubles, as d2's float64 polygons)
 *   target = the union of the parts rasterised by COCO's rleFrPoly at M × M (eval/rle.h,
 *            bit-exact with pycocotools frPyObjects + merge + decode).
 * In effect a target pixel (row i, col j) is 1 when the point (x0 + (j + 0.5) w / M,
 * y0 + (i + 0.5) h / M) is inside the polygon (even-odd), up to COCO's 1/5-px quantisation.
 * Output: out[i * M + j], float 0/1, row-major (y, x) (rle_decode is column-major; this
 * converts). Parts outside the box are cut off.
 * Degenerate boxes: w or h below 0.1 (zero or negative included) use 0.1, i.e. a 0.1-px
 * slab at x0 (y0) magnified M / 0.1 times; with a negative w that slab lies inside the
 * polygon only if the polygon covers x0 .. x0 + 0.1, so the target is usually all 0 — never
 * an error. A NaN/Inf box or coordinate, or one the rasteriser cannot represent (|5x'| >= 2^28),
 * returns -1 (rle.h); so does running out of memory. n_parts = 0 gives all zeros.
 * A part of exactly 4 numbers is rasterised as a 2-point polygon (the data side drops
 * parts of fewer than 6 numbers, §11). Allocates (the rasteriser mallocs its RLEs). */
typedef struct mask_polys {
    const double *xy;
    const int64_t *offset;   /* [n_parts] */
    const int64_t *n_coords; /* [n_parts] */
    int n_parts;
} mask_polys;

#define MASK_TARGET_SIZE 28

int mask_target_cpu(const float box[4], const mask_polys *p, int M, float *out);
/* All R foreground RoIs: out [R, M, M]; RoI r uses gt[gt_index[r]] (the matched GT), boxes
 * [R, 4]. OpenMP over RoIs (each is independent). 0, or -1 with *bad_roi = the first
 * failing RoI (its target is then all 0; the others are written). */
int mask_targets_cpu(int R, const float *boxes, const int32_t *gt_index, const mask_polys *gt, int G, int M,
                     float *out, int *bad_roi);

#ifdef __cplusplus
}
#endif
#endif

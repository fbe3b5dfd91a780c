/* postprocess.h: the detector's inference post-processing on the CPU (architecture.md §8,
 * lvis_eval.md §11): box-head outputs -> per-class NMS'd detections of one image, their
 * rescale to the original image, the 28×28 mask paste, and a streaming LVIS results file.
 *
 * Boxes are XYXY f32 with no +1 (boxes.h). Classes are 0-based contiguous (the LVIS
 * category id is class + 1, §8 step 8). Everything follows detectron2's CPU path:
 * fast_rcnn_inference_single_image, detector_postprocess, paste_masks_in_image and
 * instances_to_coco_json. */
#ifndef MRC_MODEL_POSTPROCESS_H
#define MRC_MODEL_POSTPROCESS_H

#include "core/runtime.h"
#include "eval/rle.h"
#include "ops/boxes.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The settings of detections_from_head (LVIS: d2 SCORE_THRESH_TEST, NMS_THRESH_TEST,
 * DETECTIONS_PER_IMAGE; det_params_lvis). */
typedef struct det_params {
    box_coder coder;     /* the box head's coder (box_coder_roi: 10, 10, 5, 5) */
    float score_thresh;  /* keep (RoI, class) pairs with score > this (strict; an f32 compare, as torch) */
    double nms_thresh;   /* per-class NMS: IoU > this suppresses (f32 IoU vs double, nms.h) */
    int topk;            /* detections kept per image (>= 1) */
} det_params;
det_params det_params_lvis(void); /* box_coder_roi, 1e-4, 0.5, 300 */

/* Caller arrays of topk rows (rows past n are left untouched) and the counts. */
typedef struct det_output {
    float *boxes;        /* [n,4] XYXY, clipped, resized-image coordinates */
    float *scores;       /* [n] */
    int32_t *classes;    /* [n] 0-based */
    int32_t *rois;       /* [n] the source RoI of each detection (for the mask head) */
    int n;               /* written: detections, <= topk, in rank order */
    int dropped_rois;    /* written: RoIs dropped for a non-finite score or decoded box */
} det_output;

/* detections_from_head: one image (d2 fast_rcnn_inference_single_image). Host f32 inputs:
 *   proposals [R,4]: XYXY in the resized image's pixels;
 *   scores    [R,K]: per-class probabilities, background column removed;
 *   deltas    [R,4K] (agnostic 0: class-specific) or [R,4] (agnostic 1: the same box for
 *             every class);
 *   img_h, img_w: the resized image size (the clip bounds).
 * Steps, as d2:
 *   1. decode (box_decode_cpu with p->coder) each RoI's deltas against its proposal;
 *   2. a RoI with any non-finite decoded box (before the clip) or any non-finite score
 *      is dropped whole (d2's valid_mask is per row); counted in out->dropped_rois.
 *      d2 also checks the background score, which the caller has already removed;
 *   3. clip to [0, img_w] × [0, img_h] (box_clip_cpu);
 *   4. candidates: (r, k) with scores[r,k] > score_thresh, in d2's nonzero order over
 *      [R,K]: r-major, then k; candidate order = flat index r·K + k;
 *   5. per-class NMS (IoU > nms_thresh suppresses; classes never suppress each other),
 *      then the best topk of the survivors by score; equal scores: lower candidate
 *      index first (nms.h's stable rank, nms_rank_key);
 *   6. no emptiness filter: d2 keeps boxes that the clip made empty here (an empty box
 *      has IoU 0 with everything, so it neither suppresses nor is suppressed);
 *      detections_rescale drops empty boxes after the rescale, as detector_postprocess.
 * Returns out->n.
 * How: greedy per-class NMS visits a class's candidates in rank order and keeps one
 * unless a kept box of its class overlaps it, so walking ALL candidates in the global
 * rank order with per-class kept lists gives the same survivors, already merged by rank;
 * the walk stops at topk survivors. The ranks sit in a binary heap (built in O(n), popped
 * as needed), so 1.2 M candidates (R 1000, K 1203, LVIS) cost one pass plus a few
 * thousand pops, not a full sort; a popped candidate's box is decoded again on its own.
 * (torchvision's batched_nms, which d2 calls, offsets the boxes per class instead when it
 * has <= 1000 boxes on the CPU; that changes IoUs in the last bits, nms.h's convention.)
 * Scratch from rt->host, released before returning: 8 bytes per candidate (<= 8·R·K:
 * 9.6 MB for LVIS), one decode chunk (64 RoIs: 64·4K·4 bytes, 1.2 MB for K 1203), 4·K
 * bytes of per-class list heads and 4·topk bytes of list links. */
int detections_from_head(runtime *rt, const det_params *p, const float *proposals, const float *scores,
                         const float *deltas, int R, int K, int agnostic, float img_h, float img_w, det_output *out);

/* detections_rescale: d2 detector_postprocess on n detections, in place. Boxes go from the
 * resized input (in_h, in_w) to the original image (out_h, out_w): x·scale_x, y·scale_y
 * with scale_x = (float)(out_w / in_w) (the ratio in double, as Python, then f32 like
 * torch's multiply of an f32 tensor by a Python float), then clipped to [0, out_w] ×
 * [0, out_h] (box_clip_cpu), then detections whose box has width <= 0 or height <= 0
 * (box_nonempty_cpu, threshold 0; NaN boxes too) are removed: the kept rows of boxes,
 * scores, classes and rois (any of the last three may be NULL) move up, order kept.
 * Returns the new count. Scratch: n bytes from rt->host, released. */
int detections_rescale(runtime *rt, float *boxes, float *scores, int32_t *classes, int32_t *rois, int n, int in_h,
                       int in_w, int out_h, int out_w);

/* mask_paste: one M×M probability map (row-major, sigmoid already applied) pasted into an
 * H×W image (lvis_eval.md §11; d2 _do_paste_mask on its CPU path + threshold 0.5). out
 * [H*W] row-major is written entirely: 1 where the bilinear sample is >= 0.5, else 0.
 * In f32, with d2's and torch's operation order:
 *   gx = (((float)px + 0.5) − x0) / (x1 − x0) · 2 − 1          (likewise gy with y)
 *   ix = (gx + 1) · (M / 2) − 0.5                             (grid_sample, align_corners=False)
 *   i0 = floor(ix), w = ix − i0, e = 1 − w (likewise n, s in y);
 *   v  = ((P[nw]·(s·e) + P[ne]·(s·w)) + P[sw]·(n·e)) + P[se]·(n·w), cells outside 0..M−1
 *        reading 0 (zero padding).
 * Only d2's window is computed, columns max(floor(x0) − 1, 0) .. min(ceil(x1) + 1, W)
 * (likewise rows); the rest is 0 (a pixel outside it has its centre outside the box and
 * cannot reach 0.5). A box with a non-finite coordinate or x1 <= x0 or y1 <= y0 gives an
 * all-zero mask (detections_rescale has removed those). This is torch's scalar CPU kernel
 * bit for bit; its AVX2/AVX-512 builds fuse multiply-adds and may differ in the last bit
 * of v, and its CUDA kernel uses other formulas ((g+1)·M − 1)/2 and (i0 + 1 − ix) weights):
 * a pixel can flip only where v is within an ulp or two of 0.5. */
void mask_paste(const float *prob, int M, const float box[4], int H, int W, uint8_t *out);
/* The same samples before the threshold: out [H*W] f32, v in the window, 0 elsewhere
 * (d2's paste with threshold < 0, before its ×255; for tests and visualisation). */
void mask_paste_soft(const float *prob, int M, const float box[4], int H, int W, float *out);

/* A streaming LVIS results file (lvis_eval.md §1.2): a JSON array of
 *   {"image_id":I,"category_id":C,"bbox":[x,y,w,h],"score":S,"segmentation":{"size":[h,w],"counts":"..."}}
 * written record by record to PATH.tmp and renamed to PATH by results_close; memory is one
 * reusable string buffer (the largest RLE string so far). Numbers: every float is written
 * as the shortest decimal that reads back as the same double (f32 -> double, as d2's
 * tolist + json.dumps does), so the evaluator sees exactly d2's values. bbox is XYWH in
 * original-image pixels (d2: x1 − x0 computed in f32, BoxMode.convert). category_id is the
 * LVIS id (class + 1). An empty file ("[]") is valid JSON but lvis-api (and lvis_eval_run)
 * refuse it. */
typedef struct results_writer results_writer;

/* NULL with "PATH.tmp: reason" in err when the file cannot be created. */
results_writer *results_open(const char *path, char *err, size_t errn);
/* 0, or -1 (a write error, or a non-finite box or score, which JSON cannot hold); the
 * first error is kept (results_error) and results_close reports it. mask NULL: no
 * segmentation key (box-only results); box_xywh NULL: no bbox key (mask results, so that
 * the evaluator takes mask areas, as detectron2's LVIS evaluator drops the bbox for segm);
 * not both NULL. */
int results_add(results_writer *w, int64_t image_id, int category_id, const float box_xywh[4], float score,
                const rle *mask);
/* The first error so far ("" when none). */
const char *results_error(const results_writer *w);
/* Finishes the array, flushes, closes and renames PATH.tmp to PATH; frees w in every case.
 * -1 with "PATH...: reason" in err on any earlier or final error (PATH.tmp is removed). */
int results_close(results_writer *w, char *err, size_t errn);
/* Records written so far. */
int64_t results_count(const results_writer *w);

#ifdef __cplusplus
}
#endif
#endif

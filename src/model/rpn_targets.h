/* rpn_targets.h: the RPN's training targets and its proposals for one image
 * (reference/architecture.md §5.3, §5.5), CPU reference. No gradient flows through either.
 *
 * Targets (d2 RPN.label_and_sample_anchors): IoU of every GT with every anchor (no +1),
 * streamed over chunks of anchors (box_iou_cpu columns) through the matcher of
 * ops/match.h with match_cfg_rpn(): max IoU < 0.3 negative, [0.3, 0.7) ignore, >= 0.7
 * positive, then d2's low-quality rule (every anchor holding some GT's maximum IoU turns
 * positive, ties included, whatever the value; its regression target stays its own argmax
 * GT). No GT: every anchor negative. Then d2 subsample_labels: 256 anchors, at most
 * (int)(256·0.5) = 128 positive, drawn without replacement from
 * match_sample_rng(seed, step, image, MATCH_STAGE_RPN) (so the draw depends only on those).
 * Regression targets: box_encode with weights (1, 1, 1, 1) of the matched GT against the
 * anchor, for the sampled positives only.
 *
 * Proposals (d2 find_top_rpn_proposals, one image): per level the top pre_nms_topk
 * anchors by objectness logit (ties: lower index first, nms.h), decode their deltas
 * (weights 1, dw/dh clamped from above at ln(1000/16)), concatenate with level ids, drop
 * boxes or scores that are not finite (counted: d2 raises in training, the caller decides),
 * clip to the image's (h, w), drop boxes with width or height <= min_size (0: only empty
 * ones), NMS at 0.7 within each level (batched by level id: different levels never
 * suppress each other), keep the best post_nms_topk overall by score (ties: lower
 * candidate index, i.e. lower level then higher rank).
 *
 * Memory: outputs are the caller's arrays of fixed maximum size; scratch comes from the
 * runtime's step arena (sizes below), freed at runtime_step_end. */
#ifndef MRC_MODEL_RPN_TARGETS_H
#define MRC_MODEL_RPN_TARGETS_H

#include "core/runtime.h"
#include "ops/match.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================= targets ====================================== */

typedef struct rpn_target_cfg {
    match_cfg match;      /* match_cfg_rpn() */
    int batch;            /* anchors sampled per image: 256 */
    double pos_fraction;  /* 0.5 */
    int chunk;            /* anchors per IoU chunk: the IoU scratch is G·chunk floats */
} rpn_target_cfg;

rpn_target_cfg rpn_target_cfg_default(void);

/* Outputs, the caller's arrays (A anchors, batch = cfg->batch):
 *   labels  [A]        1 / 0 sampled positive / negative, -1 not sampled (ignored)
 *   matched [A]        each anchor's argmax GT (ties: lowest g); -1 for every anchor when G = 0
 *   sampled [batch]    sampled anchor indices: positives first, then negatives
 *   deltas  [batch, 4] row i < num_pos: (dx, dy, dw, dh) of gt[matched[sampled[i]]]
 *                      against anchor sampled[i]; other rows are not written */
typedef struct rpn_targets {
    int8_t *labels;
    int32_t *matched;
    int32_t *sampled;
    float *deltas;
    int num_pos;      /* written */
    int num_sampled;  /* written: num_pos + num_neg */
} rpn_targets;

/* anchors [A, 4] f32, gt [G, 4] f32 (G >= 0; NULL when G = 0), CPU. A GT coordinate that is
 * not finite stops the program naming the box.
 * valid [A] (NULL: every anchor): mmdet's anchor flags. An anchor with valid[a] == 0 takes
 * no part in the matching (its IoUs count as 0, so it neither raises a GT's maximum nor is
 * promoted by one) and is labelled -1 (ignored) before sampling, as mmdet assigns and samples
 * the valid anchors only.
 * Scratch from the step arena: 4·(2A + G + G·chunk + 8·batch) bytes. */
void rpn_targets_cpu(runtime *rt, const rpn_target_cfg *cfg, const tensor *anchors, const tensor *gt,
                     const uint8_t *valid, uint64_t seed, uint64_t step, int image, rpn_targets *out);

/* ====================================== proposals ===================================== */

typedef struct rpn_proposal_cfg {
    int pre_nms_topk;   /* per level: 2000 train, 1000 test */
    int post_nms_topk;  /* per image: 1000 (Base-RCNN-FPN train and test; cascade train 2000) */
    double nms_thresh;  /* 0.7 */
    float min_size;     /* 0: drop only empty boxes */
    int clamp_below;    /* decode clamps dw, dh to [-c, c] (mmdet) instead of (-inf, c] (d2) */
} rpn_proposal_cfg;

rpn_proposal_cfg rpn_proposal_cfg_train(void); /* 2000, 1000, 0.7, 0, d2 clamp */
rpn_proposal_cfg rpn_proposal_cfg_test(void);  /* 1000, 1000, 0.7, 0, d2 clamp */

/* Outputs, the caller's arrays of post_nms_topk rows: boxes [post, 4] XYXY f32 (clipped),
 * scores [post] (the objectness logits), levels [post] i32 (0 = P2); best first. */
typedef struct rpn_proposals {
    float *boxes;
    float *scores;
    int32_t *levels;
    int count;        /* written: rows filled, <= post_nms_topk */
    int n_nonfinite;  /* written: candidates dropped for a non-finite box or score */
} rpn_proposals;

/* anchors [A, 4], logits [A], deltas [A, 4] f32 CPU, anchors flattened as anchors.h says;
 * the levels are the L segments [off[l], off[l+1]) (host array, off[0] = 0, off[L] = A;
 * anchor_layout.off converted to i32). img_h, img_w: the image size before padding.
 * Scratch from the step arena: about 4·L·pre_nms_topk·15 bytes. */
void rpn_proposals_cpu(runtime *rt, const rpn_proposal_cfg *cfg, const tensor *anchors, const tensor *logits,
                       const tensor *deltas, const int32_t *off, int L, float img_h, float img_w,
                       rpn_proposals *out);

#ifdef __cplusplus
}
#endif
#endif

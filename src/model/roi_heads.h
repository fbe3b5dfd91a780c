/* roi_heads.h: detectron2's StandardROIHeads for Mask R-CNN (reference/architecture.md §6):
 * proposal matching and sampling, the box head and predictor (through the loss table,
 * DESIGN §6), the box regression loss, the mask head and its loss; and the raw inference
 * outputs (class scores, box deltas, mask probabilities) that model/postprocess.h turns
 * into detections.
 *
 * Training, per image n of the batch (targets on the host):
 *   candidates = its proposals, then its GT boxes appended (PROPOSAL_APPEND_GT);
 *   IoU [G, P+G] -> matcher [0.5] -> fg (IoU >= 0.5: the argmax GT's class) or bg (class K);
 *   match_subsample: 512 with at most (int)(512·0.25) fg, from match_sample_rng(seed, step,
 *   n, MATCH_STAGE_ROI); rows fg first, then bg; images one after the other.
 * Box branch on all sampled rows: RoIAlign 7×7 (aligned, adaptive sampling, P2..P5 by
 *   d2's level rule) -> 2fc (flatten (h, w, c) -> fc1 1024 -> ReLU -> fc2 1024 -> ReLU), or
 *   4conv1fc (4 × conv 3×3 + GN + ReLU, then fc 1024 + ReLU) -> cls_score (num_logits of the
 *   loss entry; linear or NormedLinear τ 20 as the loss state says) and bbox_pred (4K
 *   class-specific or 4 agnostic).
 *   loss_cls: the loss table's forward on all rows (R = Σ sampled);
 *   loss_box_reg: smooth-L1(β) (β = 0: L1) of the GT class's 4 deltas (op_gather_group)
 *   against encode(proposal -> matched GT) with weights (10, 10, 5, 5), fg rows only, summed
 *   and divided by R (all sampled rows, d2).
 * Mask branch on the fg rows: RoIAlign 14×14 -> 4 × (conv 3×3 + ReLU) -> deconv 2×2 s2 +
 *   ReLU -> the 1×1 predictor evaluated only for the GT class channel (op_class_conv1x1; the
 *   NormedConv2d predictor computes every channel, op_normed_conv1x1, and gathers that one)
 *   -> BCE with logits against the 28×28 polygon targets of the matched GT on the
 *   proposal box (mask_targets_cpu), averaged over N_fg·28·28. No fg row: no mask term
 *   (its value 0, d2's 0·Σ logits has no gradient either).
 *
 * Parameter names (d2): roi_heads.box_head.{fc1,fc2,conv1..4}, roi_heads.box_predictor.
 * {cls_score,bbox_pred}, roi_heads.mask_head.{mask_fcn1..4,deconv,predictor}. Layouts as
 * everywhere (DESIGN §3): fc1 reads the pooled feature flattened in (h, w, c) order, so an
 * importer of d2 weights permutes fc1's columns from d2's (c, h, w).
 * Init (§6.3, §6.4, §6.6): fc U(±√(3/fan_in)), cls_score N(0, 0.01), bbox_pred N(0, 0.001),
 * mask convs and deconv N(0, √(2/fan_out)), predictor N(0, 0.001), biases 0; draws from
 * RNG_STREAM_INIT sub-stream 2. */
#ifndef MRC_MODEL_ROI_HEADS_H
#define MRC_MODEL_ROI_HEADS_H

#include "loss/loss_table.h"
#include "model/backbone.h"
#include "ops/boxes.h"
#include "ops/match.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct roi_heads_config {
    int K;                  /* foreground classes */
    int channels;           /* FPN channels (256) */
    int fc_dim;             /* 1024 */
    int conv_head;          /* 0: 2fc; 1: 4conv1fc */
    norm_kind conv_norm;    /* 4conv1fc: NORM_GN or NORM_NONE */
    int batch;              /* 512 RoIs per image */
    double pos_fraction;    /* 0.25 */
    float iou_thresh;       /* 0.5 */
    int cls_agnostic;       /* box regression: 4 outputs instead of 4K */
    box_coder coder;        /* (10, 10, 5, 5) */
    double box_beta;        /* 0: L1 (d2) */
    double box_weight;      /* 1 */
    int mask_on;
    int mask_dim;           /* 256 */
    int mask_normed;        /* predictor NormedConv2d (τ 20, ε 1e-6; ECM recipes): all K channels
                               are computed, then the class channel is gathered */
    const loss_entry *loss; /* the classification loss (loss.cls) */
    loss_params loss_params;
    int classifier;         /* -1: the entry's default, else LOSS_CLASSIFIER_* */
} roi_heads_config;

roi_heads_config roi_heads_config_default(int K, int channels, const loss_entry *loss);

typedef struct roi_heads {
    roi_heads_config cfg;
    nn_conv box_conv[4];
    nn_linear fc1, fc2, cls_score, bbox_pred;
    nn_conv mask_fcn[4], deconv, predictor; /* predictor weight [K, 1, 1, C] */
    loss_state loss;
    param_list params;
} roi_heads;

/* stats: what cfg.loss->needs (may be NULL for ce). */
void roi_heads_init(roi_heads *h, const roi_heads_config *cfg, const loss_class_stats *stats, dtype dt, device dev,
                    uint64_t seed);
void roi_heads_free(roi_heads *h);

/* One image's training inputs (host memory). Polygons as mask_polys per GT (NULL gt_polys
 * or n_parts = 0: box only, no mask target: such an instance's fg rows get an all-0 target,
 * the d2 behaviour for an empty polygon list). */
typedef struct roi_image {
    const float *proposals; /* [n_prop, 4] XYXY */
    int n_prop;
    const float *gt_box;    /* [n_gt, 4] */
    const int32_t *gt_class;/* [n_gt] 0..K-1 */
    const mask_polys *gt_polys; /* [n_gt] or NULL */
    int n_gt;
} roi_image;

typedef struct roi_losses {
    loss_terms cls;         /* the loss table's terms */
    tensor *box_reg;        /* [1] */
    tensor *mask;           /* [1], NULL without fg rows or with mask_on = 0 */
    int num_rois, num_fg;
    int bad_mask_targets;   /* fg rows whose polygon could not be rasterised (target 0) */
} roi_losses;

/* feats: P2..P5 [N, H_l, W_l, C]. Records on the tape. A batch without a single candidate
 * (no proposal, no GT) gives no terms (cls.n = 0, box_reg and mask NULL). */
roi_losses roi_heads_train(runtime *rt, roi_heads *h, tensor *const *feats, const roi_image *imgs, int N,
                           uint64_t seed, uint64_t step);

/* Inference, box branch: rois [R, 5] (image index, XYXY) on the features' device (a step
 * tensor); returns scores [R, K] (the loss entry's, bg dropped) and deltas [R, 4K] or
 * [R, 4] in *deltas, both step tensors on the features' device. No tape entries. */
tensor *roi_heads_boxes(runtime *rt, roi_heads *h, tensor *const *feats, tensor *rois, tensor **deltas);
/* Inference, mask branch: rois [D, 5], cls i32 [D] (the predicted classes) on the
 * features' device -> the predicted class's mask logits [D, 28, 28, 1] (a step tensor;
 * the caller takes the sigmoid). */
tensor *roi_heads_masks(runtime *rt, roi_heads *h, tensor *const *feats, tensor *rois, tensor *cls);

#ifdef __cplusplus
}
#endif
#endif

/* rpn.h: the region proposal network of a batch (reference/architecture.md §4, §5): the
 * shared head on P2..P6, the anchors of the batch's canvas, the training targets and the
 * two losses, and the proposals of every image.
 *
 * Losses (§5.4), computed densely over every anchor of every level so that no gather op is
 * needed and the shapes stay fixed by the canvas:
 *   loss_rpn_cls = Σ_l bce(logits_l, t_l, w_l) / norm    t = 1 for sampled positives, 0
 *                  otherwise; w = 1 for the sampled anchors, 0 for the rest
 *   loss_rpn_loc = Σ_l smooth_l1_β(deltas_l, d_l, v_l) / norm    v = 1 on the 4 deltas of
 *                  the sampled positives (d: their regression targets), 0 elsewhere
 * norm = batch_size_per_image · N (d2, RPN_NORM_BATCH) or the number of anchors actually
 * sampled over the batch, at least 1 (mmdet, RPN_NORM_SAMPLED). β = 0 is d2's L1.
 *
 * mmdet's differences (§13) the ECM recipes need are switches of rpn_config: the matcher's
 * low-quality rule (target.match.variant), the normaliser, the smooth-L1 β (1/9 in mmdet's
 * cascade), the decode clamp (proposal cfg clamp_below) and the anchors that take part
 * (anchor_filter: d2 uses all of them, including the batch padding; mmdet only those whose
 * cell lies inside the image's own extent padded to size_divisibility, and with
 * allowed_border = 0 (its cascade) only those also lying inside the unpadded image).
 *
 * The targets and proposals run on the host (rpn_targets.h); head outputs on a GPU are
 * copied back for them (the whole-step GPU version is a later issue). */
#ifndef MRC_MODEL_RPN_H
#define MRC_MODEL_RPN_H

#include "model/anchors.h"
#include "model/rpn_head.h"
#include "model/rpn_targets.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { RPN_NORM_BATCH = 0, RPN_NORM_SAMPLED = 1 } rpn_normaliser;
typedef enum { RPN_ANCHORS_ALL = 0, RPN_ANCHORS_IMAGE = 1, RPN_ANCHORS_INSIDE = 2 } rpn_anchor_filter;

typedef struct rpn_config {
    int channels;                  /* input channels (the FPN's) */
    rpn_target_cfg target;         /* matcher (d2 or mmdet low-quality rule), 256, 0.5 */
    rpn_proposal_cfg train, test;  /* top-k, NMS, decode clamp */
    rpn_normaliser normaliser;
    double smooth_l1_beta;         /* 0: L1 (d2 and mmdet Mask R-CNN); 1/9: mmdet cascade */
    rpn_anchor_filter anchor_filter;
    int size_divisibility;         /* RPN_ANCHORS_IMAGE/INSIDE: each image's padded extent (32) */
    double cls_weight, loc_weight; /* 1, 1 */
} rpn_config;

/* detectron2's Base-RCNN-FPN RPN on `channels` inputs. */
rpn_config rpn_config_d2(int channels);
/* The same with every mmdet switch of §13 set (Mask R-CNN: L1, allowed_border -1);
 * cascade = 1 gives mmdet's cascade RPN (smooth-L1 β 1/9, allowed_border 0, post-NMS 2000). */
rpn_config rpn_config_mmdet(int channels, int cascade);

typedef struct rpn {
    rpn_config cfg;
    rpn_head head;
} rpn;

void rpn_init(rpn *m, const rpn_config *cfg, dtype dt, device dev, uint64_t seed);
void rpn_free(rpn *m);

/* One image of the batch: its size on the canvas before padding, and its GT boxes (XYXY,
 * canvas pixels, host memory; NULL when n_gt = 0). */
typedef struct rpn_image {
    float h, w;
    const float *gt;
    int n_gt;
} rpn_image;

typedef struct rpn_result {
    tensor *loss_cls, *loss_loc; /* [1], weighted by cls_weight / loc_weight; NULL unless training */
    int num_pos, num_sampled;    /* over the batch (training) */
    double normaliser;           /* the loss denominator used (training) */
    int n_nonfinite;             /* proposal candidates dropped for a non-finite box or score */
} rpn_result;

/* feats: P2..P6, [N, H_l, W_l, channels] from a canvas of canvas_h × canvas_w. Runs the
 * head (recorded on the tape), then in training the targets and the losses (the targets
 * draw from match_sample_rng(seed, step, image, RPN)), then the proposals of each image
 * (train or test top-k) into props[n], the caller's arrays of at least post_nms_topk rows
 * (cfg.train or cfg.test). props may be NULL to skip them. Non-finite proposal candidates
 * are dropped and counted (d2 raises in training; here the trainer's non-finite-loss guard
 * decides, since such logits also make the loss non-finite). */
rpn_result rpn_forward(runtime *rt, const rpn *m, tensor *const *feats, int canvas_h, int canvas_w,
                       const rpn_image *imgs, int N, int training, uint64_t seed, uint64_t step,
                       rpn_proposals *props);

/* The anchor flags of anchor_filter for one image (valid [A], 1 = takes part), for the
 * layout of the batch canvas. RPN_ANCHORS_ALL writes all ones. */
void rpn_anchor_valid(const rpn_config *cfg, const anchor_layout *lay, const float *anchors, float img_h,
                      float img_w, uint8_t *valid);

#ifdef __cplusplus
}
#endif
#endif

/* detector.h: Mask R-CNN (reference/architecture.md §0): the ResNet-FPN backbone, the RPN
 * and the RoI heads, trained from loader batches and run for inference.
 *
 * Training step: the batch's pixels -> backbone -> RPN (losses, and the proposals of every
 * image, detached) -> RoI heads (box and mask losses). The total is the sum of every term
 * with weight 1 (d2): loss_rpn_cls + loss_rpn_loc + the loss table's terms (loss_cls, ...)
 * + loss_box_reg + loss_mask.
 *
 * Inference (§8): backbone -> RPN proposals (test top-k) -> box head on all of them ->
 * the loss entry's scores, class-specific (or agnostic) decode, clip, score threshold,
 * per-class NMS, top max_dets (model/postprocess.h) -> the mask head on the kept boxes
 * with their predicted class -> sigmoid probabilities 28×28. Boxes stay in the resized
 * image's coordinates; the caller rescales them and pastes the masks (postprocess.h). */
#ifndef MRC_MODEL_DETECTOR_H
#define MRC_MODEL_DETECTOR_H

#include "data/loader.h"
#include "model/backbone.h"
#include "model/roi_heads.h"
#include "model/rpn.h"
#include "train/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct detector_config {
    backbone_config backbone;
    rpn_config rpn;
    roi_heads_config roi;
    float score_thresh; /* eval.score_thresh (LVIS 1e-4; strict >) */
    float nms_thresh;   /* eval.nms_thresh (0.5) */
    int max_dets;       /* eval.max_dets (300) */
} detector_config;

/* From a config for a data set of K classes: 0, or -1 with one line in err. */
int detector_config_from(const config *c, int K, detector_config *out, char *err, size_t errn);

typedef struct detector {
    detector_config cfg;
    backbone bb;
    rpn rpn;
    roi_heads roi;
    tensor **tensors; /* every tensor the model owns, registration order: backbone, RPN, RoI heads */
    param_kind *kinds;
    int n_tensors;
} detector;

void detector_init(detector *d, const detector_config *cfg, const loss_class_stats *stats, dtype dt, device dev);
void detector_free(detector *d);

#define DETECTOR_MAX_TERMS 8
typedef struct detector_losses {
    tensor *total;                      /* [1] on the tape */
    int n;
    const char *name[DETECTOR_MAX_TERMS];
    tensor *term[DETECTOR_MAX_TERMS];   /* [1] each (device tensors) */
    int num_rois, num_fg, rpn_pos, bad_mask_targets, n_nonfinite;
} detector_losses;

/* One training forward on batch b (records on the tape; the caller runs the backward).
 * seed and step decide the RPN and RoI sampling. */
detector_losses detector_train_forward(runtime *rt, detector *d, const loader_batch *b, uint64_t seed, uint64_t step);

/* The detections of one image, resized-image coordinates, best first. Arrays of max_dets
 * rows, the caller's (detector_dets_alloc). masks: sigmoid probabilities [n, 28, 28]
 * (NULL when mask_on is 0). */
typedef struct detector_dets {
    int n;
    float *boxes;   /* [n, 4] XYXY */
    float *scores;  /* [n] */
    int32_t *classes; /* [n] 0..K-1 */
    float *masks;   /* [n, 28·28] */
} detector_dets;
void detector_dets_alloc(detector_dets *o, int max_dets, int with_masks);
void detector_dets_free(detector_dets *o);

/* Inference on batch b (the tape is switched off inside): out[i] for image i of the batch. */
void detector_infer(runtime *rt, detector *d, const loader_batch *b, detector_dets *out);

#ifdef __cplusplus
}
#endif
#endif

/* model_config.c: config -> backbone / RPN settings (model_config.h). */
#include "model/model_config.h"

#include <stdio.h>
#include <string.h>

#define FAIL(...) return snprintf(err, errn, __VA_ARGS__), -1

int model_backbone_config(const config *c, backbone_config *out, char *err, size_t errn) {
    backbone_config bc = backbone_config_default();
    bc.depth = (int)config_int(c, "model.backbone.depth");
    bc.width = (int)config_int(c, "model.backbone.width");
    bc.freeze_at = (int)config_int(c, "model.backbone.freeze_at");
    bc.norm = strcmp(config_string(c, "model.backbone.norm"), "GN") == 0 ? NORM_GN : NORM_FROZEN_BN;
    bc.stride_in_1x1 = config_bool(c, "model.backbone.stride_in_1x1");
    bc.fpn_channels = (int)config_int(c, "model.fpn.channels");
    bc.fpn_norm = strcmp(config_string(c, "model.fpn.norm"), "GN") == 0 ? NORM_GN : NORM_NONE;
    bc.seed = (uint64_t)config_int(c, "train.seed");
    if (bc.depth != 18 && bc.depth != 34 && bc.depth != 50 && bc.depth != 101)
        FAIL("model.backbone.depth %d: expected 18, 34, 50 or 101", bc.depth);
    if (bc.freeze_at < 0 || bc.freeze_at > 2) FAIL("model.backbone.freeze_at %d: expected 0, 1 or 2", bc.freeze_at);
    if (bc.width < 1 || bc.width > 1024) FAIL("model.backbone.width %d: expected 1..1024", bc.width);
    if (bc.fpn_channels < 1 || bc.fpn_channels > 4096) FAIL("model.fpn.channels %d: expected 1..4096", bc.fpn_channels);
    *out = bc;
    return 0;
}

int model_rpn_config(const config *c, int channels, rpn_config *out, char *err, size_t errn) {
    rpn_config r = rpn_config_d2(channels);
    r.train.pre_nms_topk = (int)config_int(c, "model.rpn.pre_nms_topk_train");
    r.train.post_nms_topk = (int)config_int(c, "model.rpn.post_nms_topk_train");
    r.test.pre_nms_topk = (int)config_int(c, "model.rpn.pre_nms_topk_test");
    r.test.post_nms_topk = (int)config_int(c, "model.rpn.post_nms_topk_test");
    r.train.nms_thresh = r.test.nms_thresh = config_float(c, "model.rpn.nms_thresh");
    r.target.batch = (int)config_int(c, "model.rpn.batch_size_per_image");
    r.target.pos_fraction = config_float(c, "model.rpn.positive_fraction");
    if (strcmp(config_string(c, "model.rpn.matcher"), "mmdet") == 0)
        r.target.match.variant = MATCH_VARIANT_MMDET, r.target.match.min_pos_iou = 0.3f;
    r.normaliser = strcmp(config_string(c, "model.rpn.normaliser"), "sampled") == 0 ? RPN_NORM_SAMPLED : RPN_NORM_BATCH;
    r.smooth_l1_beta = config_float(c, "model.rpn.smooth_l1_beta");
    const char *an = config_string(c, "model.rpn.anchors");
    r.anchor_filter = strcmp(an, "image") == 0 ? RPN_ANCHORS_IMAGE : strcmp(an, "inside") == 0 ? RPN_ANCHORS_INSIDE
                                                                                              : RPN_ANCHORS_ALL;
    r.size_divisibility = (int)config_int(c, "data.size_divisibility");
    r.train.clamp_below = r.test.clamp_below = strcmp(config_string(c, "model.box_decode_clamp"), "mmdet") == 0;
    const int topk[4] = {r.train.pre_nms_topk, r.train.post_nms_topk, r.test.pre_nms_topk, r.test.post_nms_topk};
    const char *names[4] = {"pre_nms_topk_train", "post_nms_topk_train", "pre_nms_topk_test", "post_nms_topk_test"};
    for (int i = 0; i < 4; i++)
        if (topk[i] < 1 || topk[i] > 100000) FAIL("model.rpn.%s %d: expected 1..100000", names[i], topk[i]);
    if (!(r.train.nms_thresh > 0 && r.train.nms_thresh <= 1))
        FAIL("model.rpn.nms_thresh %g: expected (0, 1]", r.train.nms_thresh);
    if (r.target.batch < 1 || r.target.batch > MATCH_MAX_BATCH)
        FAIL("model.rpn.batch_size_per_image %d: expected 1..%d", r.target.batch, MATCH_MAX_BATCH);
    if (!(r.target.pos_fraction > 0 && r.target.pos_fraction <= 1))
        FAIL("model.rpn.positive_fraction %g: expected (0, 1]", r.target.pos_fraction);
    if (!(r.smooth_l1_beta >= 0 && r.smooth_l1_beta < 100))
        FAIL("model.rpn.smooth_l1_beta %g: expected 0 (L1) or a positive beta", r.smooth_l1_beta);
    *out = r;
    return 0;
}

int model_roi_heads_config(const config *c, int K, int channels, roi_heads_config *out, char *err, size_t errn) {
    const char *name = config_string(c, "loss.cls");
    const loss_entry *e = loss_table_find(name);
    if (!e) {
        char b[256];
        FAIL("%s", loss_table_unknown(name, b, sizeof b));
    }
    if (K < 1) FAIL("%d classes: the data set has no categories", K);
    roi_heads_config r = roi_heads_config_default(K, channels, e);
    r.conv_head = strcmp(config_string(c, "model.roi_heads.box_head"), "4conv1fc") == 0;
    r.conv_norm = NORM_GN;
    r.fc_dim = (int)config_int(c, "model.roi_heads.fc_dim");
    r.mask_dim = (int)config_int(c, "model.roi_heads.mask_dim");
    r.mask_normed = strcmp(config_string(c, "model.roi_heads.mask_predictor"), "normed") == 0;
    r.batch = (int)config_int(c, "model.roi_heads.batch_size_per_image");
    r.pos_fraction = config_float(c, "model.roi_heads.positive_fraction");
    r.iou_thresh = (float)config_float(c, "model.roi_heads.iou_thresh");
    r.cls_agnostic = config_bool(c, "model.roi_heads.cls_agnostic_bbox_reg");
    r.mask_on = config_bool(c, "model.roi_heads.mask_on");
    r.box_beta = config_float(c, "model.roi_heads.smooth_l1_beta");
    r.coder.clamp_below = strcmp(config_string(c, "model.box_decode_clamp"), "mmdet") == 0;
    r.classifier = strcmp(config_string(c, "loss.classifier"), "normed") == 0 ? LOSS_CLASSIFIER_NORMED
                                                                              : LOSS_CLASSIFIER_LINEAR;
    loss_params *p = &r.loss_params;
    p->federated_num_classes = (int)config_int(c, "loss.federated.num_classes");
    p->federated_freq_power = config_float(c, "loss.federated.freq_weight_power");
    p->seesaw_p = config_float(c, "loss.seesaw.p"), p->seesaw_q = config_float(c, "loss.seesaw.q");
    p->seesaw_eps = config_float(c, "loss.seesaw.eps");
    p->loce_alpha = config_float(c, "loss.loce.alpha"), p->loce_bg_score = config_float(c, "loss.loce.bg_score");
    p->loce_queue_size = (int)config_int(c, "loss.loce.queue_size");
    int64_t nc = config_int(c, "model.roi_heads.num_classes");
    if (nc != K) FAIL("model.roi_heads.num_classes is %lld but the data set has %d categories", (long long)nc, K);
    if (r.fc_dim < 1 || r.fc_dim > 65536) FAIL("model.roi_heads.fc_dim %d: expected 1..65536", r.fc_dim);
    if (r.mask_dim < 1 || r.mask_dim > 4096) FAIL("model.roi_heads.mask_dim %d: expected 1..4096", r.mask_dim);
    if (r.conv_head && channels % (channels < 32 ? channels : 32))
        FAIL("model.roi_heads.box_head 4conv1fc: GN needs the %d FPN channels divisible by 32", channels);
    if (r.batch < 1 || r.batch > MATCH_MAX_BATCH)
        FAIL("model.roi_heads.batch_size_per_image %d: expected 1..%d", r.batch, MATCH_MAX_BATCH);
    if (!(r.pos_fraction > 0 && r.pos_fraction <= 1))
        FAIL("model.roi_heads.positive_fraction %g: expected (0, 1]", r.pos_fraction);
    if (!(r.iou_thresh > 0 && r.iou_thresh <= 1)) FAIL("model.roi_heads.iou_thresh %g: expected (0, 1]", (double)r.iou_thresh);
    if (!(r.box_beta >= 0 && r.box_beta < 100)) FAIL("model.roi_heads.smooth_l1_beta %g: expected >= 0", r.box_beta);
    *out = r;
    return 0;
}

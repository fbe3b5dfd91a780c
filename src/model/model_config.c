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

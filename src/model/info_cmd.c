/* info_cmd.c: `maskrcnn info` (see info_cmd.h). Counts are summed from the tensors the
 * model actually allocates, so they check the construction code, not a formula. */
#include "model/info_cmd.h"

#include "model/backbone.h"
#include "model/detector.h"
#include "model/model_config.h"
#include "model/rpn.h"
#include "train/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INFO_H 800
#define INFO_W 1344

static void row(const char *module, const param_list *l, const char *prefix) {
    int64_t t = param_list_count(l, prefix, PARAM_KIND_TRAINABLE), f = param_list_count(l, prefix, PARAM_KIND_FROZEN),
            b = param_list_count(l, prefix, PARAM_KIND_BUFFER);
    printf("  %-22s %12lld %12lld %12lld %10.3f M\n", module, (long long)t, (long long)f, (long long)b,
           (double)(t + f) / 1e6);
}

int info_main(int argc, char **argv) {
    const char *cfg_path = NULL;
    char **ov = calloc((size_t)argc + 1, sizeof *ov);
    int n_ov = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: maskrcnn info [CONFIG] [key=value ...]\n"
                   "builds the model of the config and prints its parameter counts per module\n"
                   "(trainable, frozen, FrozenBN buffers) and the forward activations per %dx%d image\n",
                   INFO_H, INFO_W);
            free(ov);
            return 0;
        }
        if (strchr(argv[i], '=')) ov[n_ov++] = argv[i];
        else if (!cfg_path) cfg_path = argv[i];
        else return free(ov), fprintf(stderr, "error: unexpected argument '%s'\n", argv[i]), 2;
    }
    config cfg;
    char err[512];
    if (config_load(&cfg, cfg_path, ov, n_ov, err, sizeof err)) return free(ov), fprintf(stderr, "error: %s\n", err), 1;
    free(ov);

    const char *arch = config_string(&cfg, "model.arch");
    if (strcmp(arch, "mask_rcnn")) {
        fprintf(stderr, "error: model.arch %s: info describes mask_rcnn today (cascade comes with a later issue)\n", arch);
        return config_free(&cfg), 1;
    }
    int K = (int)config_int(&cfg, "model.roi_heads.num_classes");
    detector_config dc;
    if (detector_config_from(&cfg, K, &dc, err, sizeof err))
        return config_free(&cfg), fprintf(stderr, "error: %s\n", err), 1;
    config_free(&cfg);
    detector det;
    detector_init(&det, &dc, NULL, DTYPE_F32, DEVICE_CPU);
    backbone_config bc = dc.backbone;
    rpn_config rc = dc.rpn;
    backbone b = det.bb;
    rpn_head rh = det.rpn.head;
    param_list all = {0};
    for (int i = 0; i < det.n_tensors; i++) param_list_add(&all, det.tensors[i], det.kinds[i]);

    printf("model: ResNet-%d-FPN, norm %s, freeze_at %d, stride_in_1x1 %d, FPN %d channels, RPN A = 3\n", bc.depth,
           bc.norm == NORM_GN ? "GN" : "FrozenBN", bc.freeze_at, bc.stride_in_1x1, bc.fpn_channels);
    printf("RoI heads: %d classes, box head %s (fc %d), %s box regression, classifier %s (loss.cls %s), mask head %s\n",
           dc.roi.K, dc.roi.conv_head ? "4conv1fc" : "2fc", dc.roi.fc_dim, dc.roi.cls_agnostic ? "class-agnostic" : "class-specific",
           det.roi.loss.classifier == LOSS_CLASSIFIER_NORMED ? "NormedLinear" : "linear", dc.roi.loss->name,
           dc.roi.mask_on ? "on" : "off");
    printf("RPN: matcher %s, loss normaliser %s, box loss %s (beta %g), anchors %s, decode clamp %s,\n"
           "  proposals per level/image: train %d/%d, test %d/%d, NMS %g\n",
           rc.target.match.variant == MATCH_VARIANT_MMDET ? "mmdet" : "d2",
           rc.normaliser == RPN_NORM_SAMPLED ? "sampled" : "256 x images", rc.smooth_l1_beta > 0 ? "smooth-L1" : "L1",
           rc.smooth_l1_beta, rc.anchor_filter == RPN_ANCHORS_ALL ? "all" : rc.anchor_filter == RPN_ANCHORS_IMAGE ? "image" : "inside",
           rc.train.clamp_below ? "both ways" : "from above", rc.train.pre_nms_topk, rc.train.post_nms_topk,
           rc.test.pre_nms_topk, rc.test.post_nms_topk, rc.train.nms_thresh);
    printf("  %-22s %12s %12s %12s %12s\n", "module", "trainable", "frozen", "buffers", "params");
    row("backbone.bottom_up", &b.params, "backbone.bottom_up.");
    row("backbone.fpn", &b.params, "backbone.fpn_");
    row("proposal_generator", &rh.params, "proposal_generator.");
    row("roi_heads.box_head", &det.roi.params, "roi_heads.box_head.");
    row("roi_heads.box_predictor", &det.roi.params, "roi_heads.box_predictor.");
    row("roi_heads.mask_head", &det.roi.params, "roi_heads.mask_head.");
    int64_t tr = param_list_count(&all, NULL, PARAM_KIND_TRAINABLE);
    int64_t fr = param_list_count(&all, NULL, PARAM_KIND_FROZEN);
    int64_t bu = param_list_count(&all, NULL, PARAM_KIND_BUFFER);
    printf("  %-22s %12lld %12lld %12lld %10.3f M\n", "total", (long long)tr, (long long)fr, (long long)bu,
           (double)(tr + fr) / 1e6);
    printf("(params = trainable + frozen; FrozenBN scale/shift are buffers, not parameters)\n");

    int hs[5], ws[5];
    for (int l = 0; l < 5; l++) hs[l] = (INFO_H + (4 << l) - 1) / (4 << l), ws[l] = (INFO_W + (4 << l) - 1) / (4 << l);
    int64_t ab = backbone_activation_bytes(&b, INFO_H, INFO_W), ar = rpn_head_activation_bytes(&rh, hs, ws, 5);
    printf("activations per %dx%d image (f32, every forward output of conv/norm/ReLU/add/pool/upsample, from the "
           "shapes;\n  im2col scratch and GN statistics not counted; training keeps them all for the backward):\n",
           INFO_H, INFO_W);
    printf("  backbone + FPN %8.1f MiB\n  RPN head       %8.1f MiB\n  total          %8.1f MiB\n",
           (double)ab / (1 << 20), (double)ar / (1 << 20), (double)(ab + ar) / (1 << 20));
    param_list_free(&all);
    detector_free(&det);
    return 0;
}

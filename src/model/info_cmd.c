/* info_cmd.c: `maskrcnn info` (see info_cmd.h). Counts are summed from the tensors the
 * model actually allocates, so they check the construction code, not a formula. */
#include "model/info_cmd.h"

#include "model/backbone.h"
#include "model/rpn_head.h"
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
                   "builds the backbone, FPN and RPN head of the config and prints their parameter counts\n"
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

    backbone_config bc = backbone_config_default();
    bc.depth = (int)config_int(&cfg, "model.backbone.depth");
    bc.freeze_at = (int)config_int(&cfg, "model.backbone.freeze_at");
    bc.norm = strcmp(config_string(&cfg, "model.backbone.norm"), "GN") == 0 ? NORM_GN : NORM_FROZEN_BN;
    bc.stride_in_1x1 = config_bool(&cfg, "model.backbone.stride_in_1x1");
    bc.fpn_channels = (int)config_int(&cfg, "model.fpn.channels");
    bc.width = (int)config_int(&cfg, "model.backbone.width");
    bc.fpn_norm = strcmp(config_string(&cfg, "model.fpn.norm"), "GN") == 0 ? NORM_GN : NORM_NONE;
    config_free(&cfg);
    if (bc.depth != 18 && bc.depth != 34 && bc.depth != 50 && bc.depth != 101)
        return fprintf(stderr, "error: model.backbone.depth %d: expected 18, 34, 50 or 101\n", bc.depth), 1;
    if (bc.freeze_at < 0 || bc.freeze_at > 2)
        return fprintf(stderr, "error: model.backbone.freeze_at %d: expected 0, 1 or 2\n", bc.freeze_at), 1;

    backbone b;
    backbone_init(&b, &bc, DEVICE_CPU);
    rpn_head rh;
    rpn_head_init(&rh, bc.fpn_channels, 3, DTYPE_F32, DEVICE_CPU, bc.seed);

    printf("model: ResNet-%d-FPN, norm %s, freeze_at %d, stride_in_1x1 %d, FPN %d channels, RPN A = 3\n", bc.depth,
           bc.norm == NORM_GN ? "GN" : "FrozenBN", bc.freeze_at, bc.stride_in_1x1, bc.fpn_channels);
    printf("  %-22s %12s %12s %12s %12s\n", "module", "trainable", "frozen", "buffers", "params");
    row("backbone.bottom_up", &b.params, "backbone.bottom_up.");
    row("backbone.fpn", &b.params, "backbone.fpn_");
    row("proposal_generator", &rh.params, "proposal_generator.");
    int64_t tr = param_list_count(&b.params, NULL, PARAM_KIND_TRAINABLE) +
                 param_list_count(&rh.params, NULL, PARAM_KIND_TRAINABLE);
    int64_t fr = param_list_count(&b.params, NULL, PARAM_KIND_FROZEN);
    int64_t bu = param_list_count(&b.params, NULL, PARAM_KIND_BUFFER);
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
    rpn_head_free(&rh);
    backbone_free(&b);
    return 0;
}

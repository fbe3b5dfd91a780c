/* model_config.h: the model parts' settings read from a config (train/config.h keys
 * model.*), validated once here so every command builds the same model from the same file. */
#ifndef MRC_MODEL_MODEL_CONFIG_H
#define MRC_MODEL_MODEL_CONFIG_H

#include "model/backbone.h"
#include "model/roi_heads.h"
#include "model/rpn.h"
#include "train/config.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* model.backbone.*, model.fpn.*: 0, or -1 with one line in err naming the key. */
int model_backbone_config(const config *c, backbone_config *out, char *err, size_t errn);
/* model.rpn.*, model.box_decode_clamp, on `channels` inputs: 0, or -1 with err. */
int model_rpn_config(const config *c, int channels, rpn_config *out, char *err, size_t errn);

/* model.roi_heads.*, loss.cls / loss.classifier / loss.* hyperparameters, for K classes
 * on `channels` inputs: 0, or -1 with err (an unknown loss name lists the table). */
int model_roi_heads_config(const config *c, int K, int channels, roi_heads_config *out, char *err, size_t errn);

#ifdef __cplusplus
}
#endif
#endif

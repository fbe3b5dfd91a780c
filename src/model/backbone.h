/* backbone.h: ResNet-18/34/50/101 (the bottom-up path) and the FPN (P2..P6), detectron2's
 * topology and parameter names (architecture.md §2-§3, DESIGN §8).
 *
 * Layouts (DESIGN §3): activations NHWC, conv weights KRSC [out, kh, kw, in].
 *
 * Parameters. Every tensor a model owns is registered once in a param_list with a kind:
 *   PARAM_KIND_TRAINABLE  conv weights/biases and GN γ/β outside the frozen stages
 *                         (tensor_alloc_param: requires_grad, persistent gradient);
 *   PARAM_KIND_FROZEN     the same in a frozen stage (freeze_at): no gradient buffer,
 *                         requires_grad 0, so the ops record no weight gradient;
 *   PARAM_KIND_BUFFER     FrozenBN. Stored FOLDED as two per-channel tensors named
 *                         `...norm.weight` (scale = γ/√(var+eps)) and `...norm.bias`
 *                         (shift = β − mean·scale); an importer of d2/torchvision weights
 *                         folds running_mean/running_var into them. Never trained, never
 *                         counted as parameters (architecture.md §12.1 counts convs only).
 *
 * Init without pretrained weights (§2.3, §3): backbone convs MSRA fill N(0, √(2/fan_out)),
 * fan_out = C_out·k·k; FPN convs U(±√(3/fan_in)) (caffe2 xavier), biases 0; GN γ = 1, β = 0;
 * FrozenBN scale 1, shift 0. Draws come from RNG_STREAM_INIT with the given seed, in
 * registration order. */
#ifndef MRC_MODEL_BACKBONE_H
#define MRC_MODEL_BACKBONE_H

#include "core/rng.h"
#include "core/runtime.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PARAM_KIND_TRAINABLE = 0, PARAM_KIND_FROZEN, PARAM_KIND_BUFFER } param_kind;

typedef struct param_ref {
    tensor *t;
    param_kind kind;
} param_ref;

/* A growable list of the tensors a model owns (pointers into the modules; no ownership). */
typedef struct param_list {
    param_ref *items;
    int n, cap;
} param_list;

void param_list_add(param_list *l, tensor *t, param_kind kind);
void param_list_free(param_list *l);
/* Element counts by kind over the entries whose name starts with prefix (NULL: all). */
int64_t param_list_count(const param_list *l, const char *prefix, param_kind kind);

typedef enum { NORM_NONE = 0, NORM_FROZEN_BN, NORM_GN } norm_kind;

/* One convolution with an optional bias and an optional norm after it (d2 Conv2d). */
typedef struct nn_conv {
    tensor w, b, norm_w, norm_b; /* b / norm_* have data NULL when absent */
    norm_kind norm;
    int has_bias, stride, pad;
    param_kind kind;             /* of w, b and GN γ/β */
    char name[4][112];           /* storage for the tensors' names */
} nn_conv;

/* Allocates (zeroed) w [cout, k, k, cin], b [cout] when bias, and the norm's tensors.
 * prefix "backbone.bottom_up.res2.0.conv1" gives ".weight", ".bias", ".norm.weight",
 * ".norm.bias". Registers them in l (when not NULL). */
void nn_conv_init(nn_conv *c, param_list *l, const char *prefix, int cin, int cout, int k, int stride, int pad,
                  int bias, norm_kind norm, int trainable, dtype dt, device dev);
void nn_conv_free(nn_conv *c);
/* conv, then the norm (no activation). */
tensor *nn_conv_forward(runtime *rt, const nn_conv *c, tensor *x);

/* A fully connected layer w [out, in], b [out] (op_linear), registered as trainable. */
typedef struct nn_linear {
    tensor w, b;
    char name[2][112];
} nn_linear;
void nn_linear_init(nn_linear *f, param_list *l, const char *prefix, int in, int out, dtype dt, device dev);
void nn_linear_free(nn_linear *f);
tensor *nn_linear_forward(runtime *rt, const nn_linear *f, tensor *x);

/* Fills t from r: normal(a, b) (mean, std) or uniform [a, b); f64 CPU tensors go through a
 * float buffer, so an f64 model starts from the same values as its f32 twin. */
void nn_fill(rng *r, tensor *t, int normal, float a, float b);

typedef struct backbone_config {
    int depth;          /* 18, 34, 50, 101 */
    int width;          /* stem width (64 for the real models; smaller for tests); res2's
                           bottleneck width equals it; must be >= 1 */
    norm_kind norm;     /* NORM_FROZEN_BN or NORM_GN (backbone) */
    int freeze_at;      /* 0 none, 1 stem, 2 stem + res2 */
    int stride_in_1x1;  /* bottlenecks: stride in conv1 (MSRA) or conv2 (torchvision) */
    int fpn_channels;   /* 256 */
    norm_kind fpn_norm; /* NORM_NONE (convs with bias) or NORM_GN (convs without bias) */
    dtype dtype;        /* DTYPE_F32, or DTYPE_F64 on the CPU for gradient checks */
    uint64_t seed;
} backbone_config;

/* depth 50, width 64, FrozenBN, freeze_at 2, stride_in_1x1, 256 FPN channels, no FPN norm. */
backbone_config backbone_config_default(void);

typedef struct resnet_block {
    nn_conv conv1, conv2, conv3, shortcut; /* conv3 only in bottlenecks */
    int bottleneck, has_shortcut;
} resnet_block;

typedef struct backbone {
    backbone_config cfg;
    nn_conv stem;
    resnet_block *blocks[4];             /* res2..res5 */
    int n_blocks[4];
    int out_channels[4];                 /* C2..C5 */
    nn_conv fpn_lateral[4], fpn_output[4]; /* index 0 = level 2 */
    param_list params;                   /* every tensor above, in registration order */
} backbone;

typedef struct backbone_out {
    tensor *c[4]; /* C2..C5: strides 4, 8, 16, 32 */
    tensor *p[5]; /* P2..P6: strides 4, 8, 16, 32, 64; fpn_channels each */
} backbone_out;

/* Builds and initialises on device dev; stops with a message on a bad config. */
void backbone_init(backbone *b, const backbone_config *cfg, device dev);
void backbone_free(backbone *b);
/* x [N, H, W, 3] in b's dtype, H and W multiples of 32 (the top-down sums need exact 2×
 * sizes). Records the backward on the tape when anything needs a gradient. */
backbone_out backbone_forward(runtime *rt, const backbone *b, tensor *x);
/* A rough activation estimate for one image of H×W: the bytes of every tensor the forward
 * allocates (conv, norm, ReLU, add, pool, upsample outputs, C2..C5 and P2..P6), counted
 * from the shapes without running it. GN statistics and im2col scratch are left out. */
int64_t backbone_activation_bytes(const backbone *b, int h, int w);

#ifdef __cplusplus
}
#endif
#endif

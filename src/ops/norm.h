/* norm.h: the backbone's frozen batch norm and GroupNorm (scratch recipes, 4conv1fc heads).
 *
 * x is channels-last: [N, H, W, C] (or any shape whose last dimension is C for frozen BN).
 * f32 or f64 on the CPU; CUDA twins in kernels/norm.cu. Backward kernels ACCUMULATE into
 * their gradient outputs, any of which may be NULL. */
#ifndef MRC_OPS_NORM_H
#define MRC_OPS_NORM_H

#include "core/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* frozen_bn: y = x · scale[c] + shift[c] (detectron2 FrozenBatchNorm2d with
 * scale = γ/√(var + eps), shift = β − mean·scale folded once at load). No parameter
 * gradients; dx += dy · scale. */
void frozen_bn_forward_cpu(runtime *rt, const tensor *x, const tensor *scale, const tensor *shift,
                           tensor *y);
void frozen_bn_backward_cpu(runtime *rt, const tensor *scale, const tensor *dy, tensor *dx);
tensor *op_frozen_bn(runtime *rt, tensor *x, tensor *scale, tensor *shift);

typedef struct group_norm_args {
    int groups;  /* C must be a multiple */
    double eps;  /* 1e-5 (PyTorch's default) */
} group_norm_args;

/* The group count the models use: min(32, C). */
int group_norm_groups(int channels);

/* group_norm over x [N, H, W, C]: for each image n and group g (C/G consecutive channels),
 * mean and variance (biased) over H·W·C/G values; y = (x − mean)·rstd·γ[c] + β[c] with
 * rstd = 1/√(var + eps). stats [N, G, 2] receives (mean, rstd) for the backward. γ and β
 * may be NULL (no affine). */
void group_norm_forward_cpu(runtime *rt, const group_norm_args *a, const tensor *x,
                            const tensor *gamma, const tensor *beta, tensor *y, tensor *stats);
void group_norm_backward_cpu(runtime *rt, const group_norm_args *a, const tensor *x,
                             const tensor *gamma, const tensor *stats, const tensor *dy,
                             tensor *dx, tensor *dgamma, tensor *dbeta);
tensor *op_group_norm(runtime *rt, tensor *x, tensor *gamma, tensor *beta, int groups, double eps);

/* CUDA twins (kernels/norm.cu): the same contracts on f32 CUDA tensors, queued on
 * rt->stream, scratch from rt->dev; defined in CUDA builds only (MRC_CUDA). */
void frozen_bn_forward_gpu(runtime *rt, const tensor *x, const tensor *scale, const tensor *shift, tensor *y);
void frozen_bn_backward_gpu(runtime *rt, const tensor *scale, const tensor *dy, tensor *dx);
void group_norm_forward_gpu(runtime *rt, const group_norm_args *a, const tensor *x, const tensor *gamma, const tensor *beta, tensor *y, tensor *stats);
void group_norm_backward_gpu(runtime *rt, const group_norm_args *a, const tensor *x, const tensor *gamma, const tensor *stats, const tensor *dy, tensor *dx, tensor *dgamma, tensor *dbeta);

#ifdef __cplusplus
}
#endif
#endif

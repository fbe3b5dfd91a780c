/* linear.h: fully connected layers, plain and cosine-normalised.
 *
 * Layouts (DESIGN §3): x [R, Cin] (one row per RoI), w [K, Cin], b [K]. f32 or f64 on the
 * CPU; CUDA twins in kernels/linear.cu. Backward kernels ACCUMULATE into dx, dw, db, any
 * of which may be NULL.
 *
 * The normalised variants follow mmdet's NormedLinear / NormedConv2d (the ECM and Seesaw
 * predictors, reference/architecture.md §9.3):
 *   y = τ · ⟨x / (‖x‖ + ε), w_k / (‖w_k‖ + ε)⟩ + b_k
 * with τ = 20 and ε = 1e-6 in those recipes. The bias is not scaled. At x = 0 the norm's
 * sub-gradient is taken as zero (as PyTorch does), so d(x/(‖x‖+ε))/dx = I/ε there. */
#ifndef MRC_OPS_LINEAR_H
#define MRC_OPS_LINEAR_H

#include "core/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* linear: y [R, K] = x [R, Cin] · wᵀ + b (y written). */
void linear_forward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b, tensor *y);
void linear_backward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *dy,
                         tensor *dx, tensor *dw, tensor *db);
tensor *op_linear(runtime *rt, tensor *x, tensor *w, tensor *b);

typedef struct normed_args {
    double tau; /* temperature */
    double eps; /* added to each norm */
} normed_args;

/* normed_linear: shapes as linear; b may be NULL. */
void normed_linear_forward_cpu(runtime *rt, const normed_args *a, const tensor *x, const tensor *w,
                               const tensor *b, tensor *y);
void normed_linear_backward_cpu(runtime *rt, const normed_args *a, const tensor *x, const tensor *w,
                                const tensor *dy, tensor *dx, tensor *dw, tensor *db);
tensor *op_normed_linear(runtime *rt, tensor *x, tensor *w, tensor *b, double tau, double eps);

/* normed_conv1x1: NormedConv2d with a 1×1 kernel, the mask predictor's shape: each pixel of
 * x [N, H, W, C] is normalised over channels, each w_k [K, 1, 1, C] over its input channels;
 * y [N, H, W, K]. A per-pixel normed_linear (same kernels, reshaped views). */
tensor *op_normed_conv1x1(runtime *rt, tensor *x, tensor *w, tensor *b, double tau, double eps);

/* CUDA twins (kernels/linear.cu): the same contracts on f32 CUDA tensors, queued on
 * rt->stream, scratch from rt->dev; defined in CUDA builds only (MRC_CUDA). */
void linear_forward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b, tensor *y);
void linear_backward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *dy, tensor *dx, tensor *dw, tensor *db);
void normed_linear_forward_gpu(runtime *rt, const normed_args *a, const tensor *x, const tensor *w, const tensor *b, tensor *y);
void normed_linear_backward_gpu(runtime *rt, const normed_args *a, const tensor *x, const tensor *w, const tensor *dy, tensor *dx, tensor *dw, tensor *db);

#ifdef __cplusplus
}
#endif
#endif

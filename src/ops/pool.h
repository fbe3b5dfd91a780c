/* pool.h: max pooling (the stem's 3×3 stride-2 pad-1 pool; FPN's P6 = 1×1 stride 2) and
 * the FPN's nearest-neighbour 2× upsample.
 *
 * NHWC, f32 or f64 on the CPU; CUDA twins in kernels/pool.cu. Backward kernels ACCUMULATE. */
#ifndef MRC_OPS_POOL_H
#define MRC_OPS_POOL_H

#include "core/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pool_args {
    int k, stride, pad;
} pool_args;

/* max_pool: x [N,H,W,C] -> y [N,Ho,Wo,C], Ho = floor((H + 2·pad − k)/stride) + 1 (PyTorch,
 * ceil_mode off). Padding never wins (it is −∞). The backward sends each dy to the window's
 * first maximum in (row, column) scan order, which is PyTorch's choice; a NaN counts as the
 * maximum (the last NaN of the window, again as PyTorch). */
void max_pool_forward_cpu(runtime *rt, const pool_args *a, const tensor *x, tensor *y);
void max_pool_backward_cpu(runtime *rt, const pool_args *a, const tensor *x, const tensor *dy,
                           tensor *dx);
tensor *op_max_pool(runtime *rt, tensor *x, int k, int stride, int pad);

/* upsample2x: nearest neighbour, x [N,H,W,C] -> y [N,2H,2W,C], y[n,i,j,c] = x[n,i/2,j/2,c];
 * the backward sums each 2×2 block of dy. */
void upsample2x_forward_cpu(runtime *rt, const tensor *x, tensor *y);
void upsample2x_backward_cpu(runtime *rt, const tensor *dy, tensor *dx);
tensor *op_upsample2x(runtime *rt, tensor *x);

/* CUDA twins (kernels/pool.cu): the same contracts on f32 CUDA tensors, queued on
 * rt->stream, scratch from rt->dev; defined in CUDA builds only (MRC_CUDA). */
void max_pool_forward_gpu(runtime *rt, const pool_args *a, const tensor *x, tensor *y);
void max_pool_backward_gpu(runtime *rt, const pool_args *a, const tensor *x, const tensor *dy, tensor *dx);
void upsample2x_forward_gpu(runtime *rt, const tensor *x, tensor *y);
void upsample2x_backward_gpu(runtime *rt, const tensor *dy, tensor *dx);

#ifdef __cplusplus
}
#endif
#endif

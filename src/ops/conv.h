/* conv.h: 2-D convolution (k×k, stride, padding) and the 2×2 stride-2 transposed
 * convolution of the mask head.
 *
 * Layouts (DESIGN §3): activations NHWC, weights KRSC = [K out, R kernel rows, S kernel
 * columns, C in]. f32 or f64 on the CPU (f64 for gradient checks); the CUDA twins in
 * kernels/conv.cu take the same arguments with `_gpu`.
 *
 * Gradient convention (tape.h): the backward kernels ACCUMULATE (+=) into dx, dw and db;
 * any of them may be NULL when that gradient is not needed (frozen weights, the image). */
#ifndef MRC_OPS_CONV_H
#define MRC_OPS_CONV_H

#include "core/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct conv2d_args {
    int stride, pad; /* same in both directions; zero padding */
} conv2d_args;

/* Output size along one axis: floor((in + 2·pad − k) / stride) + 1 (PyTorch's rule). */
int conv2d_out_size(int in, int k, int stride, int pad);

/* conv2d
 *   x [N, H, W, C], w [K, R, S, C], b [K] or NULL  ->  y [N, Ho, Wo, K] (written)
 *   y[n,oh,ow,k] = b[k] + Σ_{r,s,c} x[n, oh·stride − pad + r, ow·stride − pad + s, c] · w[k,r,s,c]
 * Implementation: im2col over chunks of output pixels + one GEMM per chunk (1×1 stride-1
 * convolutions skip im2col). Scratch comes from rt's host arena. */
void conv2d_forward_cpu(runtime *rt, const conv2d_args *a, const tensor *x, const tensor *w,
                        const tensor *b, tensor *y);
/* dy [N, Ho, Wo, K] -> dx [N,H,W,C], dw [K,R,S,C], db [K] (each accumulated, or NULL). */
void conv2d_backward_cpu(runtime *rt, const conv2d_args *a, const tensor *x, const tensor *w,
                         const tensor *dy, tensor *dx, tensor *dw, tensor *db);
/* Allocates y from the step arena, runs on x's device, records the backward when any
 * input needs a gradient. b may be NULL. */
tensor *op_conv2d(runtime *rt, tensor *x, tensor *w, tensor *b, int stride, int pad);

/* deconv2x2: transposed convolution, kernel 2×2, stride 2, no padding (the mask head's
 * upsampler, detectron2 ConvTranspose2d(C, K, 2, stride=2)).
 *   x [N, H, W, C], w [K, 2, 2, C], b [K] or NULL  ->  y [N, 2H, 2W, K] (written)
 *   y[n, 2h+i, 2w+j, k] = b[k] + Σ_c x[n,h,w,c] · w[k,i,j,c]
 * A PyTorch ConvTranspose2d weight [C, K, 2, 2] maps to ours by w[k,i,j,c] = W[c,k,i,j]. */
void deconv2x2_forward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b, tensor *y);
void deconv2x2_backward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *dy,
                            tensor *dx, tensor *dw, tensor *db);
tensor *op_deconv2x2(runtime *rt, tensor *x, tensor *w, tensor *b);

/* CUDA twins (kernels/conv.cu): the same contracts on f32 CUDA tensors, queued on
 * rt->stream, scratch from rt->dev; defined in CUDA builds only (MRC_CUDA). */
void conv2d_forward_gpu(runtime *rt, const conv2d_args *a, const tensor *x, const tensor *w, const tensor *b, tensor *y);
void conv2d_backward_gpu(runtime *rt, const conv2d_args *a, const tensor *x, const tensor *w, const tensor *dy, tensor *dx, tensor *dw, tensor *db);
void deconv2x2_forward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b, tensor *y);
void deconv2x2_backward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *dy, tensor *dx, tensor *dw, tensor *db);

#ifdef __cplusplus
}
#endif
#endif

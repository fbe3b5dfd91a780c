/* ops_internal.h: helpers shared by the CPU op families in src/ops/ (not a public API).
 *
 * - dtype dispatch: the reference kernels exist for f32 and f64 (real_instantiate.h);
 *   OPS_REAL(t, fn, args...) calls fn_f64(args) for f64 tensors and fn_f32(args) otherwise
 *   (the tensors' void data pointers convert to the typed ones).
 * - gradient views: the tape functions hand the _backward_cpu kernels tensors that wrap
 *   the inputs' gradient buffers, or NULL where an input needs no gradient.
 * - deterministic reductions: sums split into chunks of a fixed size (never by thread
 *   count), each chunk summed in double, the partial sums combined in chunk order; so a
 *   result is bit-identical for any thread count (DESIGN §3). */
#ifndef MRC_OPS_INTERNAL_H
#define MRC_OPS_INTERNAL_H

#include "core/check.h"
#include "core/runtime.h"
#include "core/tensor.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OPS_REAL(t, fn, ...) ((t)->dtype == DTYPE_F64 ? fn##_f64(__VA_ARGS__) : fn##_f32(__VA_ARGS__))

/* Rows per chunk of the deterministic reductions. */
#define OPS_REDUCE_CHUNK 256

/* Stops unless t is a tensor the ops take: f32 or f64 on the CPU, f32 on the GPU. `op`
 * and `what` name the op and the argument in the message. */
void ops_expect_real(const char *op, const char *what, const tensor *t);
/* Stops unless t lives on the CPU (the head of every _cpu kernel). */
void ops_expect_cpu(const char *op, const tensor *t);
/* Stops unless t is an f32 tensor on the GPU (the head of every _gpu twin). */
void ops_expect_f32_gpu(const char *op, const char *what, const tensor *t);
/* The device an op runs on: the device of x (its other operands are checked to match). */
device ops_device(const char *op, const tensor *x);
/* In a build without CUDA a CUDA tensor cannot exist; reaching a GPU twin anyway stops
 * here naming the op. */
void ops_no_cuda(const char *op) __attribute__((noreturn));

/* OPS_CALL(t, fn, args...): fn_gpu(args) when t is on the GPU, fn_cpu(args) otherwise: the
 * dispatch of every op_* wrapper (DESIGN §4; no silent fallback between devices). */
#if MRC_CUDA
#define OPS_CALL(t, fn, ...) ((t)->device == DEVICE_CUDA ? fn##_gpu(__VA_ARGS__) : fn##_cpu(__VA_ARGS__))
#else
#define OPS_CALL(t, fn, ...) ((t)->device == DEVICE_CUDA ? ops_no_cuda(#fn) : fn##_cpu(__VA_ARGS__))
#endif
/* A tensor wrapping t's gradient buffer (allocated zeroed on first use) in *view, or NULL
 * when t is NULL or needs no gradient. */
tensor *ops_grad(runtime *rt, tensor *t, tensor *view);
/* Shapes equal in rank and every dimension; otherwise stops naming the op and both. */
void ops_expect_same_shape(const char *op, const tensor *a, const tensor *b);

/* out[c] += sum over r of a[r * cols + c], for r < rows (deterministic, see above).
 * Scratch comes from rt's host arena and is released before returning. */
void ops_colsum_add_f32(runtime *rt, const float *a, int64_t rows, int cols, float *out);
void ops_colsum_add_f64(runtime *rt, const double *a, int64_t rows, int cols, double *out);

/* The sum of v[0..n), deterministic as above (chunks of OPS_REDUCE_CHUNK values). */
double ops_sum_f64(runtime *rt, const double *v, int64_t n);

/* The number of OpenMP threads the ops use (rt->threads, at least 1). */
int ops_threads(const runtime *rt);

/* Shape contracts shared by an op's CPU kernel and its GPU twin (device-agnostic: the
 * operands must match x's dtype and device). Each stops with one line naming `op`; y (the
 * output, or dy in a backward) may be NULL where noted. */
typedef struct conv_geom {
    int N, H, W, C;  /* input */
    int K, R, S;     /* weight */
    int Ho, Wo;      /* output */
    int stride, pad;
} conv_geom;
struct conv2d_args;
struct pool_args;
/* conv2d: x [N,H,W,C], w [K,R,S,C], b [K] or NULL, y [N,Ho,Wo,K] or NULL. */
conv_geom conv2d_check(const char *op, const struct conv2d_args *a, const tensor *x, const tensor *w,
                       const tensor *b, const tensor *y);
/* deconv2x2: x [N,H,W,C], w [K,2,2,C], b [K] or NULL, y [N,2H,2W,K] or NULL. */
void deconv2x2_check(const char *op, const tensor *x, const tensor *w, const tensor *b, const tensor *y);
/* max_pool: x [N,H,W,C], the window, y [N,Ho,Wo,C] or NULL. */
void max_pool_check(const char *op, const struct pool_args *a, const tensor *x, const tensor *y);
/* upsample2x: x [N,H,W,C], y [N,2H,2W,C]. */
void upsample2x_check(const char *op, const tensor *x, const tensor *y);

/* GPU helpers shared by the twins (kernels/ops_util.cu), f32 on rt->stream:
 * out[c] += Σ_r a[r·cols + c] with a fixed summation order (no atomics), so the bias
 * gradients are deterministic on the GPU too. */
void ops_colsum_add_gpu(runtime *rt, const float *a, int64_t rows, int cols, float *out);

#ifdef __cplusplus
}
#endif
#endif

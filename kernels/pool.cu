/* pool.cu: the CUDA twins of src/ops/pool.c: max pooling and the nearest 2× upsample on
 * f32 NHWC CUDA tensors (pool.h has the contracts), all on rt->stream.
 *
 * Both backwards are gathers: each dx element is computed by one thread, which reads the
 * dy values that reach it and adds them in the CPU's order. No atomics, so the result is
 * deterministic and equal to the CPU reference bit for bit.
 *
 * The kernels take their index type as a template parameter: 32-bit when the element
 * count fits (cheaper divisions in the NHWC index arithmetic), 64-bit otherwise. */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"

#include "ops/conv.h"
#include "ops/ops_internal.h"
#include "ops/pool.h"

#define POOL_THREADS 256

/* The shared contract (ops_internal.h) on GPU tensors; y (the output or dy) may be NULL. */
static void pool_check_gpu(const char *op, const pool_args *a, const tensor *x, const tensor *y) {
    ops_expect_f32_gpu(op, "x", x);
    max_pool_check(op, a, x, y);
}

/* Launches n threads of kernel<int32_t> when every index it forms, the last block's thread
 * indices included, stays below 2^31 − 1 (span + one block), of kernel<int64_t> otherwise. */
#define POOL_LAUNCH(rt, n, span, kernel, ...)                                                   \
    do {                                                                                        \
        cudaStream_t st_ = (cudaStream_t)(rt)->stream;                                          \
        if ((span) <= (int64_t)INT32_MAX - POOL_THREADS)                                        \
            kernel<int32_t><<<cuda_blocks((n), POOL_THREADS), POOL_THREADS, 0, st_>>>(__VA_ARGS__); \
        else                                                                                    \
            kernel<int64_t><<<cuda_blocks((n), POOL_THREADS), POOL_THREADS, 0, st_>>>(__VA_ARGS__); \
        KERNEL_CHECK((rt)->debug_sync, st_);                                                    \
    } while (0)

/* ---- max pool -------------------------------------------------------------------------- */

/* One thread per output element (n, oh, ow, c). Scan order (r, s); padding is skipped (it
 * is −∞ and never wins); a value wins when it is larger or NaN, so the first maximum and
 * the last NaN of the window are kept (PyTorch's rule, the CPU's loop). */
template <typename I>
__global__ static void max_pool_forward_kernel(I n, int H, int W, int C, int Ho, int Wo, int k, int stride, int pad,
                                               const float *x, float *y) {
    I i = (I)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int c = (int)(i % C);
    I q = i / C;
    int ow = (int)(q % Wo), oh = (int)(q / Wo % Ho);
    I img = q / Wo / Ho;
    float best = -INFINITY;
    for (int r = 0; r < k; r++) {
        int ih = oh * stride - pad + r;
        if (ih < 0 || ih >= H) continue;
        for (int s = 0; s < k; s++) {
            int iw = ow * stride - pad + s;
            if (iw < 0 || iw >= W) continue;
            float v = x[((img * H + ih) * W + iw) * C + c];
            if (v > best || isnan(v)) best = v;
        }
    }
    y[i] = best;
}

/* One thread per dy element (n, oh, ow, c): the position r·k + s in its window of the
 * element that receives dy, as the CPU backward picks it: the first valid element, then
 * any larger one or any NaN (so the forward's winner). */
template <typename I>
__global__ static void max_pool_choice_kernel(I n, int H, int W, int C, int Ho, int Wo, int k, int stride, int pad,
                                              const float *x, int32_t *choice) {
    I i = (I)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int c = (int)(i % C);
    I q = i / C;
    int ow = (int)(q % Wo), oh = (int)(q / Wo % Ho);
    I img = q / Wo / Ho;
    float best = -INFINITY;
    int32_t at = -1;
    for (int r = 0; r < k; r++) {
        int ih = oh * stride - pad + r;
        if (ih < 0 || ih >= H) continue;
        for (int s = 0; s < k; s++) {
            int iw = ow * stride - pad + s;
            if (iw < 0 || iw >= W) continue;
            float v = x[((img * H + ih) * W + iw) * C + c];
            if (at < 0 || v > best || isnan(v)) {
                best = v;
                at = r * k + s;
            }
        }
    }
    choice[i] = at;
}

/* One thread per dx element (n, ih, iw, c): visits the windows that contain it in the
 * CPU's output order (oh, then ow) and adds dy where it is the window's choice. Windows
 * overlap when k > stride, so a scatter from dy would need atomics; this gather needs none
 * and adds in the CPU's order. */
template <typename I>
__global__ static void max_pool_backward_kernel(I n, int H, int W, int C, int Ho, int Wo, int k, int stride, int pad,
                                                const int32_t *choice, const float *dy, float *dx) {
    I i = (I)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int c = (int)(i % C);
    I q = i / C;
    int iw = (int)(q % W), ih = (int)(q / W % H);
    I img = q / W / H;
    I base = img * Ho * Wo * C + c; /* dy and choice of (img, 0, 0, c) */
    /* windows oh with oh·stride − pad <= ih <= oh·stride − pad + k − 1, likewise ow */
    int lo_h = ih + pad - k + 1, lo_w = iw + pad - k + 1;
    int oh0 = lo_h <= 0 ? 0 : (lo_h + stride - 1) / stride, oh1 = min((ih + pad) / stride, Ho - 1);
    int ow0 = lo_w <= 0 ? 0 : (lo_w + stride - 1) / stride, ow1 = min((iw + pad) / stride, Wo - 1);
    float acc = dx[i];
    for (int oh = oh0; oh <= oh1; oh++)
        for (int ow = ow0; ow <= ow1; ow++) {
            I at = base + ((I)oh * Wo + ow) * C;
            int me = (ih - (oh * stride - pad)) * k + (iw - (ow * stride - pad));
            if (choice[at] == me) acc += dy[at];
        }
    dx[i] = acc;
}

extern "C" void max_pool_forward_gpu(runtime *rt, const pool_args *a, const tensor *x, tensor *y) {
    CHECK(y != NULL, "max_pool: the output is missing");
    pool_check_gpu("max_pool", a, x, y);
    int64_t n = tensor_numel(y);
    if (n == 0) return;
    /* the input may be the larger tensor (stride > 1): it bounds the indices */
    POOL_LAUNCH(rt, n, tensor_numel(x), max_pool_forward_kernel, n, x->shape[1], x->shape[2], x->shape[3],
                y->shape[1], y->shape[2], a->k, a->stride, a->pad, (const float *)x->data, (float *)y->data);
}

/* Two passes: each window's choice into scratch (int32 per dy element, from rt->dev), then
 * the gather. Recomputing the choice per visiting dx element instead would read each
 * window once for every element it contains. */
extern "C" void max_pool_backward_gpu(runtime *rt, const pool_args *a, const tensor *x, const tensor *dy, tensor *dx) {
    CHECK(dy != NULL, "max_pool backward: dy is missing");
    pool_check_gpu("max_pool backward", a, x, dy);
    CHECK(dx != NULL, "max_pool backward: dx is missing");
    ops_expect_same_shape("max_pool backward dx", dx, x);
    /* m can exceed n (an even window with pad k/2 gives Ho = H + 1): index spans use both */
    int64_t n = tensor_numel(x), m = tensor_numel(dy), span = n > m ? n : m;
    if (n == 0) return;
    int H = x->shape[1], W = x->shape[2], C = x->shape[3], Ho = dy->shape[1], Wo = dy->shape[2];
    arena_mark mark = arena_get_mark(&rt->dev);
    int32_t *choice = (int32_t *)arena_alloc(&rt->dev, (size_t)m * sizeof(int32_t));
    POOL_LAUNCH(rt, m, span, max_pool_choice_kernel, m, H, W, C, Ho, Wo, a->k, a->stride, a->pad,
                (const float *)x->data, choice);
    POOL_LAUNCH(rt, n, span, max_pool_backward_kernel, n, H, W, C, Ho, Wo, a->k, a->stride, a->pad, choice,
                (const float *)dy->data, (float *)dx->data);
    /* later users of this scratch are queued on the same stream, after the gather */
    arena_release(&rt->dev, mark);
}

/* ---- nearest 2× upsample --------------------------------------------------------------- */

static void upsample_check_gpu(const char *op, const tensor *x, const tensor *y) {
    ops_expect_f32_gpu(op, "x", x);
    upsample2x_check(op, x, y);
}

/* One thread per output element: y[n, i, j, c] = x[n, i/2, j/2, c]. */
template <typename I>
__global__ static void upsample2x_forward_kernel(I n, int H, int W, int C, const float *x, float *y) {
    I i = (I)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int c = (int)(i % C);
    I q = i / C;
    int j = (int)(q % (2 * W)), r = (int)(q / (2 * W) % (2 * H));
    I img = q / (2 * W) / (2 * H);
    y[i] = x[((img * H + r / 2) * W + j / 2) * C + c];
}

/* One thread per dx element: dx += its 2×2 block of dy, summed as the CPU sums it
 * ((top-left + top-right) + (bottom-left + bottom-right)). */
template <typename I>
__global__ static void upsample2x_backward_kernel(I n, int H, int W, int C, const float *dy, float *dx) {
    I i = (I)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int c = (int)(i % C);
    I q = i / C;
    int j = (int)(q % W), r = (int)(q / W % H);
    I img = q / W / H;
    const float *d0 = dy + ((img * 2 * H + 2 * r) * 2 * W + 2 * j) * C + c, *d1 = d0 + (I)2 * W * C;
    dx[i] += (d0[0] + d0[C]) + (d1[0] + d1[C]);
}

extern "C" void upsample2x_forward_gpu(runtime *rt, const tensor *x, tensor *y) {
    upsample_check_gpu("upsample2x", x, y);
    int64_t n = tensor_numel(y);
    if (n == 0) return;
    POOL_LAUNCH(rt, n, n, upsample2x_forward_kernel, n, x->shape[1], x->shape[2], x->shape[3], (const float *)x->data,
                (float *)y->data);
}

extern "C" void upsample2x_backward_gpu(runtime *rt, const tensor *dy, tensor *dx) {
    CHECK(dx != NULL, "upsample2x backward: dx is missing");
    upsample_check_gpu("upsample2x backward", dx, dy);
    int64_t n = tensor_numel(dx);
    if (n == 0) return;
    /* the threads cover dx; the indices reach into dy, 4× larger */
    POOL_LAUNCH(rt, n, tensor_numel(dy), upsample2x_backward_kernel, n, dx->shape[1], dx->shape[2], dx->shape[3],
                (const float *)dy->data, (float *)dx->data);
}

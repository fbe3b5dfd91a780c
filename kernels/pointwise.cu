/* pointwise.cu: the CUDA twins of src/ops/pointwise.c: ReLU (forward and backward), add,
 * scale and axpy on f32 CUDA tensors of any shape (pointwise.h has the contracts).
 *
 * One thread per element, 64-bit indices (a tensor may hold more than 2^31 values), all on
 * rt->stream. Products are rounded before the addition (__fmul_rn, no FMA contraction) so
 * that each value equals the CPU reference's bit for bit. */
#include "cuda_check.h"

#include "ops/ops_internal.h"
#include "ops/pointwise.h"

#define PW_THREADS 256

__global__ static void relu_forward_kernel(int64_t n, const float *x, float *y) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* NaN fails the test and stays NaN */
}

/* dx += dy where y > 0: the sub-gradient at 0 (and at NaN) is 0, as on the CPU. */
__global__ static void relu_backward_kernel(int64_t n, const float *y, const float *dy, float *dx) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && y[i] > 0.0f) dx[i] += dy[i];
}

__global__ static void add_forward_kernel(int64_t n, const float *a, const float *b, float *y) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a[i] + b[i];
}

__global__ static void scale_forward_kernel(int64_t n, float s, const float *x, float *y) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = s * x[i];
}

__global__ static void axpy_kernel(int64_t n, float s, const float *dy, float *dx) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dx[i] = __fadd_rn(dx[i], __fmul_rn(s, dy[i]));
}

/* s == 1 adds dy unscaled, as the CPU's fast path does (same values either way). */
__global__ static void add_into_kernel(int64_t n, const float *dy, float *dx) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dx[i] += dy[i];
}

extern "C" void relu_forward_gpu(runtime *rt, const tensor *x, tensor *y) {
    ops_expect_f32_gpu("relu", "x", x);
    CHECK(y != NULL, "relu: the output is missing");
    ops_expect_same_shape("relu output", y, x);
    int64_t n = tensor_numel(x);
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    relu_forward_kernel<<<cuda_blocks(n, PW_THREADS), PW_THREADS, 0, st>>>(n, (const float *)x->data,
                                                                            (float *)y->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

extern "C" void relu_backward_gpu(runtime *rt, const tensor *y, const tensor *dy, tensor *dx) {
    ops_expect_f32_gpu("relu backward", "y", y);
    CHECK(dy != NULL, "relu backward: dy is missing");
    ops_expect_same_shape("relu backward dy", dy, y);
    CHECK(dx != NULL, "relu backward: dx is missing");
    ops_expect_same_shape("relu backward dx", dx, y);
    int64_t n = tensor_numel(y);
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    relu_backward_kernel<<<cuda_blocks(n, PW_THREADS), PW_THREADS, 0, st>>>(
        n, (const float *)y->data, (const float *)dy->data, (float *)dx->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

extern "C" void add_forward_gpu(runtime *rt, const tensor *a, const tensor *b, tensor *y) {
    ops_expect_f32_gpu("add", "a", a);
    CHECK(b != NULL, "add: b is missing");
    ops_expect_same_shape("add", b, a);
    CHECK(y != NULL, "add: the output is missing");
    ops_expect_same_shape("add output", y, a);
    int64_t n = tensor_numel(a);
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    add_forward_kernel<<<cuda_blocks(n, PW_THREADS), PW_THREADS, 0, st>>>(n, (const float *)a->data,
                                                                           (const float *)b->data, (float *)y->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

extern "C" void scale_forward_gpu(runtime *rt, const tensor *x, double s, tensor *y) {
    ops_expect_f32_gpu("scale", "x", x);
    CHECK(y != NULL, "scale: the output is missing");
    ops_expect_same_shape("scale output", y, x);
    int64_t n = tensor_numel(x);
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    scale_forward_kernel<<<cuda_blocks(n, PW_THREADS), PW_THREADS, 0, st>>>(n, (float)s, (const float *)x->data,
                                                                             (float *)y->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

extern "C" void axpy_gpu(runtime *rt, double s, const tensor *dy, tensor *dx) {
    ops_expect_f32_gpu("axpy", "dy", dy);
    CHECK(dx != NULL, "axpy: dx is missing");
    ops_expect_same_shape("axpy", dx, dy);
    int64_t n = tensor_numel(dy);
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    if (s == 1.0)
        add_into_kernel<<<cuda_blocks(n, PW_THREADS), PW_THREADS, 0, st>>>(n, (const float *)dy->data,
                                                                            (float *)dx->data);
    else
        axpy_kernel<<<cuda_blocks(n, PW_THREADS), PW_THREADS, 0, st>>>(n, (float)s, (const float *)dy->data,
                                                                        (float *)dx->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

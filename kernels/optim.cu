/* optim.cu: the CUDA twins of src/train/optim.c: the SGD update and the sum of squares for
 * the global gradient norm (optim.h has the contracts).
 *
 * The update rounds every product before its addition (__fmul_rn/__fadd_rn, no FMA
 * contraction), so parameters equal the CPU reference's bit for bit. The sum of squares is
 * a fixed tree (per-block shared-memory reduction in double, then the block sums added in
 * order on the host): deterministic, and within rounding of the CPU's sequential sum. */
#include "cuda_check.h"

#include "train/optim.h"

#define OPT_THREADS 256
#define SS_BLOCKS 1024

__global__ static void sgd_update_kernel(int64_t n, float *p, const float *grad, float *buf, float lr, float momentum,
                                         float wd, float scale, int first) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = __fadd_rn(__fmul_rn(scale, grad[i]), __fmul_rn(wd, p[i]));
    float b = first ? g : __fadd_rn(__fmul_rn(momentum, buf[i]), g);
    buf[i] = b;
    p[i] = __fsub_rn(p[i], __fmul_rn(lr, b));
}

extern "C" void sgd_update_gpu(void *stream, int debug_sync, float *p, const float *grad, float *buf, int64_t n, float lr, float momentum,
                               float wd, float scale, int first) {
    if (n <= 0) return;
    int64_t blocks = (n + OPT_THREADS - 1) / OPT_THREADS;
    sgd_update_kernel<<<(unsigned)blocks, OPT_THREADS, 0, (cudaStream_t)stream>>>(n, p, grad, buf, lr, momentum, wd,
                                                                                    scale, first);
    KERNEL_CHECK(debug_sync, (cudaStream_t)stream);
}

/* Block b sums elements b, b + SS_BLOCKS * OPT_THREADS, ... in a fixed pattern. */
__global__ static void sum_squares_kernel(int64_t n, const float *x, double *partial) {
    __shared__ double s[OPT_THREADS];
    double acc = 0;
    for (int64_t i = (int64_t)blockIdx.x * OPT_THREADS + threadIdx.x; i < n; i += (int64_t)SS_BLOCKS * OPT_THREADS)
        acc += (double)x[i] * (double)x[i];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int w = OPT_THREADS / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

extern "C" double sum_squares_gpu(void *stream, const float *x, int64_t n) {
    if (n <= 0) return 0;
    double *d_partial, partial[SS_BLOCKS];
    CUDA_CHECK(cudaMallocAsync((void **)&d_partial, SS_BLOCKS * sizeof(double), (cudaStream_t)stream));
    sum_squares_kernel<<<SS_BLOCKS, OPT_THREADS, 0, (cudaStream_t)stream>>>(n, x, d_partial);
    KERNEL_CHECK(0, (cudaStream_t)stream); /* the copy below synchronises anyway */
    CUDA_CHECK(cudaMemcpyAsync(partial, d_partial, sizeof partial, cudaMemcpyDeviceToHost, (cudaStream_t)stream));
    CUDA_CHECK(cudaFreeAsync(d_partial, (cudaStream_t)stream));
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    double s = 0;
    for (int b = 0; b < SS_BLOCKS; b++) s += partial[b];
    return s;
}

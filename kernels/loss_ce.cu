/* loss_ce.cu: the CUDA twin of ce_scores_cpu (src/loss/loss_ce.c): the `ce` entry's
 * inference scores, out[r, k] = softmax(x_r)[k] for k < K, x f32 [R, K+1], out f32 [R, K],
 * on rt->stream. One warp per row: max and sum by shuffle reductions, the sum in double
 * like the CPU reference (so the two differ only by exp's and the final rounding). */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"

#include "core/check.h"
#include "loss/loss_table.h"

#define CE_SCORES_THREADS 256
#define CE_SCORES_ROWS (CE_SCORES_THREADS / 32)

__global__ static void ce_scores_kernel(int R, int cols, const float *x, float *out) {
    int r = blockIdx.x * CE_SCORES_ROWS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (r >= R) return; /* whole warps leave together: r is per warp */
    const float *xr = x + (int64_t)r * cols;
    float m = -INFINITY;
    for (int k = lane; k < cols; k += 32) m = fmaxf(m, xr[k]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    double z = 0;
    for (int k = lane; k < cols; k += 32) z += exp((double)xr[k] - (double)m);
    for (int o = 16; o > 0; o >>= 1) z += __shfl_xor_sync(0xffffffffu, z, o);
    float *outr = out + (int64_t)r * (cols - 1);
    for (int k = lane; k + 1 < cols; k += 32) outr[k] = (float)(exp((double)xr[k] - (double)m) / z);
}

extern "C" void ce_scores_gpu(runtime *rt, const tensor *x, tensor *out) {
    char b[128];
    CHECK(x->device == DEVICE_CUDA && x->dtype == DTYPE_F32, "ce_scores_gpu: logits must be f32 on the GPU, got %s",
          tensor_str(x, b, sizeof b));
    CHECK(x->ndim == 2 && x->shape[1] >= 2, "ce_scores_gpu: logits must be [R, K+1], got %s", tensor_str(x, b, sizeof b));
    const int oshape[2] = {x->shape[0], x->shape[1] - 1};
    tensor_expect(out, DTYPE_F32, DEVICE_CUDA, oshape, 2, "ce_scores_gpu out [R, K]");
    int R = x->shape[0];
    if (R == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    ce_scores_kernel<<<(R + CE_SCORES_ROWS - 1) / CE_SCORES_ROWS, CE_SCORES_THREADS, 0, st>>>(
        R, x->shape[1], (const float *)x->data, (float *)out->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

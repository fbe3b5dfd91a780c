/* match.cu: the CUDA twins of the matcher in src/ops/match.c (contracts in match.h).
 *
 * One thread per candidate for the per-candidate work (its loop over g runs in the CPU's
 * order, so max/argmax and the low-quality pass equal the CPU bit for bit). The per-GT max
 * is reduced per block in shared memory, then one integer atomicMax per block and GT on the
 * float's bits: for floats >= 0 (and the -inf start value, a negative int) integer order is
 * float order, and a max does not depend on the order of the atomics, so it is
 * deterministic. */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"

#include "ops/match.h"

#define MATCH_THREADS 256

__global__ static void match_fill_kernel(int G, float *gt_max) {
    int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g < G) gt_max[g] = -INFINITY;
}

/* Block b covers candidates a0 + [b * T, (b + 1) * T). For each g the block's max goes
 * through shared memory to one atomicMax. Values that are NaN or < 0 are counted in bad and
 * skipped (the CPU stops on them). */
__global__ static void match_scan_kernel(const float *iou, int64_t ld, int G, int64_t a0, int64_t n, float *gt_max,
                                         float *best, int32_t *matched, int *bad) {
    __shared__ float red[MATCH_THREADS];
    int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int live = j < n;
    float b = -INFINITY;
    int32_t arg = -1;
    int nbad = 0;
    for (int g = 0; g < G; g++) {
        float v = live ? iou[(int64_t)g * ld + j] : -INFINITY;
        if (live && !(v >= 0.0f)) {
            nbad++;
            v = -INFINITY;
        }
        if (v > b) { /* strict: the lowest g keeps a tie, as torch.max */
            b = v;
            arg = g;
        }
        red[threadIdx.x] = v;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
            __syncthreads();
        }
        if (threadIdx.x == 0 && red[0] >= 0.0f) atomicMax((int *)&gt_max[g], __float_as_int(red[0]));
        __syncthreads();
    }
    if (live) {
        best[a0 + j] = b;
        matched[a0 + j] = arg;
    }
    if (nbad && bad) atomicAdd(bad, nbad);
}

__global__ static void match_threshold_kernel(match_cfg c, int G, int64_t A, const float *best, int8_t *labels) {
    int64_t a = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (a >= A) return;
    if (G == 0) {
        labels[a] = c.labels[0];
        return;
    }
    float v = best[a];
    int i = 0;
    while (i < c.n_thresholds && v >= c.thresholds[i]) i++;
    labels[a] = c.labels[i];
}

__global__ static void match_low_quality_kernel(match_cfg c, const float *iou, int64_t ld, int G, int64_t a0,
                                                int64_t n, const float *gt_max, int32_t *matched, int8_t *labels) {
    int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    int mmdet = c.variant == MATCH_VARIANT_MMDET;
    for (int g = 0; g < G; g++) {
        if (iou[(int64_t)g * ld + j] != gt_max[g]) continue;
        if (!mmdet) {
            labels[a0 + j] = 1;
        } else if (gt_max[g] >= c.min_pos_iou) {
            labels[a0 + j] = 1;
            matched[a0 + j] = g;
        }
    }
}

extern "C" void match_begin_gpu(int G, float *gt_max, void *stream, int debug_sync) {
    if (G <= 0) return;
    cudaStream_t st = (cudaStream_t)stream;
    match_fill_kernel<<<cuda_blocks(G, MATCH_THREADS), MATCH_THREADS, 0, st>>>(G, gt_max);
    KERNEL_CHECK(debug_sync, st);
}

extern "C" void match_scan_chunk_gpu(const float *iou, int64_t ld, int G, int64_t a0, int64_t n, float *gt_max,
                                     float *best, int32_t *matched, int *bad, void *stream, int debug_sync) {
    CHECK(G >= 0 && n >= 0 && a0 >= 0 && ld >= n, "matcher chunk: G %d, a0 %lld, n %lld, ld %lld", G,
          (long long)a0, (long long)n, (long long)ld);
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)stream;
    match_scan_kernel<<<cuda_blocks(n, MATCH_THREADS), MATCH_THREADS, 0, st>>>(iou, ld, G, a0, n, gt_max, best,
                                                                              matched, bad);
    KERNEL_CHECK(debug_sync, st);
}

extern "C" void match_threshold_gpu(const match_cfg *cfg, int G, int64_t A, const float *best, int8_t *labels,
                                    void *stream, int debug_sync) {
    match_cfg_check(cfg);
    if (A == 0) return;
    cudaStream_t st = (cudaStream_t)stream;
    match_threshold_kernel<<<cuda_blocks(A, MATCH_THREADS), MATCH_THREADS, 0, st>>>(*cfg, G, A, best, labels);
    KERNEL_CHECK(debug_sync, st);
}

extern "C" void match_low_quality_chunk_gpu(const match_cfg *cfg, const float *iou, int64_t ld, int G, int64_t a0,
                                            int64_t n, const float *gt_max, int32_t *matched, int8_t *labels,
                                            void *stream, int debug_sync) {
    CHECK(G >= 0 && n >= 0 && a0 >= 0 && ld >= n, "matcher chunk: G %d, a0 %lld, n %lld, ld %lld", G,
          (long long)a0, (long long)n, (long long)ld);
    if (!cfg->allow_low_quality || n == 0 || G == 0) return;
    cudaStream_t st = (cudaStream_t)stream;
    match_low_quality_kernel<<<cuda_blocks(n, MATCH_THREADS), MATCH_THREADS, 0, st>>>(*cfg, iou, ld, G, a0, n, gt_max,
                                                                                     matched, labels);
    KERNEL_CHECK(debug_sync, st);
}

/* nms.cu: the CUDA twins of src/ops/nms.c: NMS, batched NMS by key and the per-segment
 * top k on f32 CUDA tensors (nms.h has the contracts and the order), on rt->stream.
 *
 * Batched NMS, step by step:
 *   1. rank keys (score descending, index ascending: nms_rank_key) sorted with CUB's radix
 *      sort; then, with keys, a second (stable) radix sort by key, so each key group is a
 *      contiguous run in rank order;
 *   2. the group boundaries are read on the host (one synchronisation: the sorted keys come
 *      back, n × 4 bytes);
 *   3. per group of m boxes, the bitmask kernel: for box p and each block of 64 later boxes,
 *      one 64-bit word with bit q set when IoU(p, q) > thr (f32 IoU, double compare, as
 *      the CPU); m·ceil(m/64) words, the scratch sized for the largest group and reused;
 *   4. per group, the reduction on the device (one block): blocks of 64 boxes in rank
 *      order; one thread resolves a block sequentially from the "removed" bits and the
 *      block's own words, then all threads OR the rows of its kept boxes into the later
 *      words. It visits boxes in the CPU's order with the CPU's IoU test, so it keeps the
 *      same boxes;
 *   5. the kept boxes' rank keys sorted again (all groups merged), written out; the count
 *      is copied back (a second synchronisation).
 * Memory: O(n) plus the largest group's mask. Each group costs two launches; LVIS's
 * 1203 classes make ~2400 small launches per image (a batched-launch version is future
 * work). Integer atomics only (the count): deterministic. */
#include <stdint.h>

#include <cub/cub.cuh>

#include "cuda_check.h"

#include "ops/boxes.h"
#include "ops/nms.h"
#include "ops/ops_internal.h"

#define NMS_THREADS 256
#define NMS_BLOCK 64 /* boxes per mask word */
#define NMS_REDUCE_THREADS 256

#define NMS_LAUNCH(rt, n, kernel, ...)                                                            \
    do {                                                                                          \
        cudaStream_t st_ = (cudaStream_t)(rt)->stream;                                            \
        kernel<<<cuda_blocks((n), NMS_THREADS), NMS_THREADS, 0, st_>>>(__VA_ARGS__);              \
        KERNEL_CHECK((rt)->debug_sync, st_);                                                      \
    } while (0)

__global__ static void rank_keys_kernel(int n, const float *scores, uint64_t *rank) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) rank[i] = nms_rank_key(scores[i], i);
}

/* order[p] = the index in rank position p; gk[p] its key, sign bit flipped (or 0). */
__global__ static void order_keys_kernel(int n, const uint64_t *rank, const int32_t *keys, int32_t *order,
                                         uint32_t *gk) {
    int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    int32_t i = (int32_t)(uint32_t)rank[p];
    order[p] = i;
    gk[p] = keys ? (uint32_t)keys[i] ^ 0x80000000u : 0u;
}

__global__ static void gather_boxes_kernel(int n, const int32_t *order, const float *boxes, float *sb) {
    int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    const float *b = boxes + (int64_t)order[p] * 4;
    float *o = sb + (int64_t)p * 4;
    o[0] = b[0], o[1] = b[1], o[2] = b[2], o[3] = b[3];
}

/* Block (column block cb, row block rb) of 64 threads: thread t's row p = rb·64 + t gets
 * the word of bits q − cb·64 for the later boxes q of column block cb with IoU > thr.
 * Words left of the diagonal (cb < rb) are never read and not written. */
__global__ static void nms_mask_kernel(int m, int cols, double thr, const float *sb, uint64_t *mask) {
    int rb = blockIdx.y, cb = blockIdx.x, t = threadIdx.x;
    if (cb < rb) return;
    __shared__ float col[NMS_BLOCK * 4];
    int ncol = min(NMS_BLOCK, m - cb * NMS_BLOCK);
    if (t < ncol)
        for (int c = 0; c < 4; c++) col[t * 4 + c] = sb[((int64_t)cb * NMS_BLOCK + t) * 4 + c];
    __syncthreads();
    int p = rb * NMS_BLOCK + t;
    if (p >= m) return;
    const float *a = sb + (int64_t)p * 4;
    uint64_t bits = 0;
    for (int q = (cb == rb ? t + 1 : 0); q < ncol; q++)
        if ((double)box_iou_one(a, col + q * 4) > thr) bits |= 1ull << q;
    mask[(int64_t)p * cols + cb] = bits;
}

/* One block: the sequential greedy pass over the mask (see the file's head). removed
 * holds cols words of scratch; kept[p] (u8) is written for p < m. */
__global__ static void nms_reduce_kernel(int m, int cols, const uint64_t *mask, uint64_t *removed, uint8_t *kept) {
    __shared__ uint64_t s_kept;
    for (int w = threadIdx.x; w < cols; w += blockDim.x) removed[w] = 0;
    __syncthreads();
    for (int b = 0; b < cols; b++) {
        int nb = min(NMS_BLOCK, m - b * NMS_BLOCK);
        if (threadIdx.x == 0) {
            uint64_t rem = removed[b], k = 0;
            for (int t = 0; t < nb; t++)
                if (!((rem >> t) & 1)) {
                    k |= 1ull << t;
                    rem |= mask[((int64_t)b * NMS_BLOCK + t) * cols + b];
                }
            s_kept = k;
        }
        __syncthreads();
        uint64_t k = s_kept;
        for (int t = threadIdx.x; t < nb; t += blockDim.x) kept[b * NMS_BLOCK + t] = (k >> t) & 1;
        for (int w = b + 1 + threadIdx.x; w < cols; w += blockDim.x) {
            uint64_t acc = removed[w], kk = k;
            while (kk) {
                int t = __ffsll((long long)kk) - 1;
                kk &= kk - 1;
                acc |= mask[((int64_t)b * NMS_BLOCK + t) * cols + w];
            }
            removed[w] = acc;
        }
        __syncthreads();
    }
}

/* The kept boxes' rank keys (others: the largest key, sorted last) and their count. */
__global__ static void final_keys_kernel(int n, const uint8_t *kept, const int32_t *order, const float *scores,
                                         uint64_t *fk, int *count) {
    int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    int32_t i = order[p];
    fk[p] = kept[p] ? nms_rank_key(scores[i], i) : UINT64_MAX;
    if (kept[p]) atomicAdd(count, 1);
}

__global__ static void write_keep_kernel(int n, const uint64_t *fk, const int *count, int32_t *keep) {
    int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p < n) keep[p] = p < *count ? (int32_t)(uint32_t)fk[p] : -1;
}

/* Sorts n u64 keys (any order in, ascending out) with CUB; scratch from rt->dev. */
static void sort_u64(runtime *rt, const uint64_t *in, uint64_t *out, int n) {
    cudaStream_t st = (cudaStream_t)rt->stream;
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortKeys(NULL, bytes, in, out, n, 0, 64, st));
    void *tmp = arena_alloc(&rt->dev, bytes ? bytes : 1);
    CUDA_CHECK(cub::DeviceRadixSort::SortKeys(tmp, bytes, in, out, n, 0, 64, st));
}

/* Groups in rank order: order[] and sorted boxes sb[] on the device, the group starts on
 * the host (*ng groups, starts[ng] = n). */
static int *nms_groups(runtime *rt, const tensor *scores, const tensor *keys, int n, int32_t *order, int *ng) {
    cudaStream_t st = (cudaStream_t)rt->stream;
    uint64_t *rank = (uint64_t *)arena_alloc(&rt->dev, (size_t)n * 8), *rs = (uint64_t *)arena_alloc(&rt->dev, (size_t)n * 8);
    uint32_t *gk = (uint32_t *)arena_alloc(&rt->dev, (size_t)n * 4);
    NMS_LAUNCH(rt, n, rank_keys_kernel, n, (const float *)scores->data, rank);
    sort_u64(rt, rank, rs, n);
    int32_t *o1 = keys ? (int32_t *)arena_alloc(&rt->dev, (size_t)n * 4) : order;
    NMS_LAUNCH(rt, n, order_keys_kernel, n, rs, keys ? (const int32_t *)keys->data : NULL, o1, gk);
    int *starts = (int *)arena_alloc(&rt->host, (size_t)(n + 1) * sizeof(int));
    *ng = 1;
    starts[0] = 0;
    if (keys) {
        uint32_t *gs = (uint32_t *)arena_alloc(&rt->dev, (size_t)n * 4);
        size_t bytes = 0;
        CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, bytes, gk, gs, o1, order, n, 0, 32, st));
        void *tmp = arena_alloc(&rt->dev, bytes ? bytes : 1);
        /* radix sort is stable: inside a key the rank order stays */
        CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp, bytes, gk, gs, o1, order, n, 0, 32, st));
        uint32_t *h = (uint32_t *)arena_alloc(&rt->host, (size_t)n * 4);
        CUDA_CHECK(cudaMemcpyAsync(h, gs, (size_t)n * 4, cudaMemcpyDeviceToHost, st));
        CUDA_CHECK(cudaStreamSynchronize(st));
        for (int p = 1; p < n; p++)
            if (h[p] != h[p - 1]) starts[(*ng)++] = p;
    }
    starts[*ng] = n;
    return starts;
}

extern "C" int batched_nms_gpu(runtime *rt, const tensor *boxes, const tensor *scores, const tensor *keys, double thr,
                               tensor *keep) {
    ops_expect_f32_gpu("batched_nms", "boxes", boxes);
    nms_check("batched_nms", boxes, scores, keys, thr, keep);
    int n = boxes->shape[0];
    if (n == 0) return 0;
    cudaStream_t st = (cudaStream_t)rt->stream;
    arena_mark dmark = arena_get_mark(&rt->dev), hmark = arena_get_mark(&rt->host);
    int32_t *order = (int32_t *)arena_alloc(&rt->dev, (size_t)n * 4);
    int ng = 0;
    int *starts = nms_groups(rt, scores, keys, n, order, &ng);
    float *sb = (float *)arena_alloc(&rt->dev, (size_t)n * 16);
    NMS_LAUNCH(rt, n, gather_boxes_kernel, n, order, (const float *)boxes->data, sb);
    int biggest = 0;
    for (int g = 0; g < ng; g++)
        if (starts[g + 1] - starts[g] > biggest) biggest = starts[g + 1] - starts[g];
    int bcols = (biggest + NMS_BLOCK - 1) / NMS_BLOCK;
    uint64_t *mask = (uint64_t *)arena_alloc(&rt->dev, (size_t)biggest * bcols * 8);
    uint64_t *removed = (uint64_t *)arena_alloc(&rt->dev, (size_t)bcols * 8);
    uint8_t *kept = (uint8_t *)arena_alloc(&rt->dev, (size_t)n);
    for (int g = 0; g < ng; g++) { /* group by group, the scratch reused in stream order */
        int m = starts[g + 1] - starts[g], cols = (m + NMS_BLOCK - 1) / NMS_BLOCK;
        CHECK(cols <= 65535, "batched_nms: a key group of %d boxes is beyond the mask kernel's grid", m);
        nms_mask_kernel<<<dim3(cols, cols), NMS_BLOCK, 0, st>>>(m, cols, thr, sb + (int64_t)starts[g] * 4, mask);
        KERNEL_CHECK(rt->debug_sync, st);
        nms_reduce_kernel<<<1, NMS_REDUCE_THREADS, 0, st>>>(m, cols, mask, removed, kept + starts[g]);
        KERNEL_CHECK(rt->debug_sync, st);
    }
    uint64_t *fk = (uint64_t *)arena_alloc(&rt->dev, (size_t)n * 8), *fs = (uint64_t *)arena_alloc(&rt->dev, (size_t)n * 8);
    int *dcount = (int *)arena_calloc(&rt->dev, sizeof(int));
    NMS_LAUNCH(rt, n, final_keys_kernel, n, kept, order, (const float *)scores->data, fk, dcount);
    sort_u64(rt, fk, fs, n);
    NMS_LAUNCH(rt, n, write_keep_kernel, n, fs, dcount, (int32_t *)keep->data);
    int count = 0;
    CUDA_CHECK(cudaMemcpyAsync(&count, dcount, sizeof count, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    arena_release(&rt->dev, dmark);
    arena_release(&rt->host, hmark);
    return count;
}

extern "C" int nms_gpu(runtime *rt, const tensor *boxes, const tensor *scores, double thr, tensor *keep) {
    return batched_nms_gpu(rt, boxes, scores, NULL, thr, keep);
}

/* ---- top k per segment: a segmented radix sort of the rank keys ------------------------ */

__global__ static void topk_write_kernel(int64_t n, int k, const int32_t *off, const uint64_t *sorted, int32_t *idx) {
    int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int s = (int)(e / k), j = (int)(e % k), len = off[s + 1] - off[s];
    idx[e] = j < min(k, len) ? (int32_t)(uint32_t)sorted[off[s] + j] : -1;
}

extern "C" void topk_segments_gpu(runtime *rt, const tensor *scores, const int32_t *off, int S, int k, tensor *idx) {
    ops_expect_f32_gpu("topk_segments", "scores", scores);
    topk_segments_check("topk_segments", scores, off, S, k, idx);
    cudaStream_t st = (cudaStream_t)rt->stream;
    int n = scores->shape[0];
    arena_mark mark = arena_get_mark(&rt->dev);
    int32_t *doff = (int32_t *)arena_alloc(&rt->dev, (size_t)(S + 1) * 4);
    CUDA_CHECK(cudaMemcpyAsync(doff, off, (size_t)(S + 1) * 4, cudaMemcpyHostToDevice, st));
    uint64_t *rank = (uint64_t *)arena_alloc(&rt->dev, (size_t)(n ? n : 1) * 8);
    uint64_t *rs = (uint64_t *)arena_alloc(&rt->dev, (size_t)(n ? n : 1) * 8);
    if (n) {
        NMS_LAUNCH(rt, n, rank_keys_kernel, n, (const float *)scores->data, rank);
        size_t bytes = 0;
        CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(NULL, bytes, rank, rs, n, S, doff, doff + 1, 0, 64, st));
        void *tmp = arena_alloc(&rt->dev, bytes ? bytes : 1);
        CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(tmp, bytes, rank, rs, n, S, doff, doff + 1, 0, 64, st));
    }
    int64_t total = (int64_t)S * k;
    NMS_LAUNCH(rt, total, topk_write_kernel, total, k, doff, rs, (int32_t *)idx->data);
    /* the offsets were copied from pageable host memory (staged before the call returned);
     * later users of the scratch are queued on the same stream */
    arena_release(&rt->dev, mark);
}

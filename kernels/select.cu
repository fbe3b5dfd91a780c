/* select.cu: the CUDA twins of src/ops/select.c: gather_group and class_conv1x1 on f32
 * CUDA tensors (select.h has the contracts; select_real.inc is the spec), all work queued
 * on rt->stream, scratch from the step arena rt->dev, no host synchronisation.
 *
 * Bad indices: an index outside its range cannot be reported without a sync, so the
 * kernels never follow it: a bad row's forward output is NaN (the loss turns NaN and the
 * training NaN guard stops the run) and the backward skips the row (nothing of it reaches
 * dx, dw or db). With rt->debug_sync on, a check kernel flags the first bad row and the
 * program stops with the CPU's message.
 *
 * class_conv1x1 backward is deterministic without atomics (DESIGN §3), in the CPU's order:
 *   1. cconv_partials_kernel: part[r, c] = Σ_p dy[r, p]·x[r, p, c] and part[r, C] = Σ_p
 *      dy[r, p], one thread per (row, column) walking the pixels in ascending order, in
 *      double: the CPU's terms in the CPU's order, and a product of two floats is exact in
 *      double (FMA contraction changes nothing), so part equals the CPU's bit for bit;
 *   2. cconv_combine_kernel: one thread per (column, class chunk) walking all rows in
 *      ascending order and adding the rows of its classes: dw[cls_r, c] += (float)part[r, c]
 *      (db from column C). Every (class, column) has exactly one owner, and the rows reach
 *      it in the CPU's order, so dw and db equal the CPU's bit for bit as well.
 * The class chunks only spread the read-modify-writes over more threads (LVIS: 1203
 * classes, 64 chunks); they do not change any sum. */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"

#include "core/arena.h"
#include "ops/ops_internal.h"
#include "ops/select.h"

#define SELECT_THREADS 256                       /* threads per block of the elementwise kernels */
#define FWD_WARPS (SELECT_THREADS / 32)          /* class_conv1x1 forward: one warp per pixel */
#define PART_THREADS 128                         /* columns per block of the partial sums */
#define COMBINE_THREADS 128                      /* columns per block of the combine */
#define COMBINE_ROWS 1024                        /* class indices staged in shared memory at once */
#define COMBINE_CHUNKS 64                        /* class chunks of the combine (at most K) */

/* ---- bad indices (debug mode) --------------------------------------------------------- */

/* bad[0] = max over bad rows r of R − r, i.e. it names the first bad row (integer atomics:
 * exact and order-free). */
__global__ static void index_check_kernel(int R, const int32_t *idx, int limit, int *bad) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < R && (idx[r] < 0 || idx[r] >= limit)) atomicMax(bad, R - r);
}

/* Debug mode only (it synchronises): stops with the CPU's message at the first bad row. */
static void debug_index_check(runtime *rt, const char *op, const char *what, const tensor *idx, int limit) {
    int R = idx->shape[0];
    if (!rt->debug_sync || R == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    arena_mark m = arena_get_mark(&rt->dev);
    int *bad_dev = (int *)arena_alloc(&rt->dev, sizeof(int));
    CUDA_CHECK(cudaMemsetAsync(bad_dev, 0, sizeof(int), st));
    index_check_kernel<<<cuda_blocks(R, SELECT_THREADS), SELECT_THREADS, 0, st>>>(R, (const int32_t *)idx->data,
                                                                                  limit, bad_dev);
    KERNEL_CHECK(rt->debug_sync, st);
    int bad = 0;
    CUDA_CHECK(cudaMemcpyAsync(&bad, bad_dev, sizeof bad, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    arena_release(&rt->dev, m);
    if (!bad) return;
    int r = R - bad;
    int32_t v = 0;
    CUDA_CHECK(cudaMemcpyAsync(&v, (const int32_t *)idx->data + r, sizeof v, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    FATAL("%s: %s %d of row %d is outside [0, %d)", op, what, v, r, limit);
}

__device__ static bool index_ok(int v, int limit) { return v >= 0 && v < limit; }

/* ---- gather_group --------------------------------------------------------------------- */

/* y[r, j] = x[r, idx[r]·width + j]; NaN for a bad index. One thread per output element. */
__global__ static void gather_fwd_kernel(int64_t n, int G, int width, const float *__restrict__ x,
                                         const int32_t *__restrict__ idx, float *__restrict__ y) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int64_t r = i / width;
    int j = (int)(i - r * width), k = idx[r];
    y[i] = index_ok(k, G) ? x[(r * G + k) * width + j] : NAN;
}

/* dx[r, idx[r]·width + j] += dy[r, j]; a bad index's row is skipped. */
__global__ static void gather_bwd_kernel(int64_t n, int G, int width, const int32_t *__restrict__ idx,
                                         const float *__restrict__ dy, float *__restrict__ dx) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int64_t r = i / width;
    int j = (int)(i - r * width), k = idx[r];
    if (index_ok(k, G)) dx[(r * G + k) * width + j] += dy[i];
}

extern "C" void gather_group_forward_gpu(runtime *rt, const tensor *x, const tensor *idx, int width, tensor *y) {
    ops_expect_f32_gpu("gather_group_forward_gpu", "x", x);
    CHECK(y != NULL, "gather_group: the output is missing");
    int G = gather_group_check("gather_group", x, idx, width, y);
    debug_index_check(rt, "gather_group", "index", idx, G);
    int64_t n = (int64_t)x->shape[0] * width;
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    gather_fwd_kernel<<<cuda_blocks(n, SELECT_THREADS), SELECT_THREADS, 0, st>>>(
        n, G, width, (const float *)x->data, (const int32_t *)idx->data, (float *)y->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

extern "C" void gather_group_backward_gpu(runtime *rt, const tensor *idx, int width, const tensor *dy, tensor *dx) {
    CHECK(dx != NULL, "gather_group backward: dx is missing");
    ops_expect_f32_gpu("gather_group_backward_gpu", "dx", dx);
    CHECK(dy != NULL, "gather_group backward: dy is missing");
    int G = gather_group_check("gather_group backward", dx, idx, width, dy);
    debug_index_check(rt, "gather_group", "index", idx, G);
    int64_t n = (int64_t)dx->shape[0] * width;
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    gather_bwd_kernel<<<cuda_blocks(n, SELECT_THREADS), SELECT_THREADS, 0, st>>>(
        n, G, width, (const int32_t *)idx->data, (const float *)dy->data, (float *)dx->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

/* ---- class_conv1x1 forward ------------------------------------------------------------ */

/* The warp's sum, the same value in every lane (a fixed xor butterfly). */
__device__ static double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* y[q] = Σ_c x[q, c]·w[cls_r, c] + b[cls_r] for pixel q of row r = q / HW; one warp per
 * pixel (each lane every 32nd channel, coalesced), the sum in double, rounded once. */
__global__ static void cconv_fwd_kernel(int64_t npix, int HW, int C, int K, const float *__restrict__ x,
                                        const float *__restrict__ w, const float *__restrict__ b,
                                        const int32_t *__restrict__ cls, float *__restrict__ y) {
    int lane = threadIdx.x & 31;
    int64_t q = (int64_t)blockIdx.x * FWD_WARPS + (threadIdx.x >> 5);
    if (q >= npix) return; /* whole warps leave: the shuffles stay full */
    int k = cls[q / HW];
    if (!index_ok(k, K)) {
        if (lane == 0) y[q] = NAN;
        return;
    }
    const float *xq = x + q * C, *wk = w + (int64_t)k * C;
    double s = 0;
    for (int c = lane; c < C; c += 32) s += (double)xq[c] * (double)wk[c];
    s = warp_sum(s);
    if (lane == 0) y[q] = (float)(s + (b ? (double)b[k] : 0.0));
}

extern "C" void class_conv1x1_forward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b,
                                          const tensor *cls, tensor *y) {
    ops_expect_f32_gpu("class_conv1x1_forward_gpu", "x", x);
    CHECK(y != NULL, "class_conv1x1: the output is missing");
    int K = class_conv1x1_check("class_conv1x1", x, w, b, cls, y);
    debug_index_check(rt, "class_conv1x1", "class", cls, K);
    int HW = x->shape[1] * x->shape[2], C = x->shape[3];
    int64_t npix = (int64_t)x->shape[0] * HW;
    if (npix == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    cconv_fwd_kernel<<<cuda_blocks(npix, FWD_WARPS), SELECT_THREADS, 0, st>>>(
        npix, HW, C, K, (const float *)x->data, (const float *)w->data, b ? (const float *)b->data : NULL,
        (const int32_t *)cls->data, (float *)y->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

/* ---- class_conv1x1 backward ------------------------------------------------------------ */

/* dx[q, c] += dy[q]·w[cls_r, c], the product rounded once (no FMA: as the CPU). */
__global__ static void cconv_dx_kernel(int64_t n, int HW, int C, int K, const float *__restrict__ w,
                                       const int32_t *__restrict__ cls, const float *__restrict__ dy,
                                       float *__restrict__ dx) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int64_t q = i / C;
    int c = (int)(i - q * C), k = cls[q / HW];
    if (index_ok(k, K)) dx[i] += __fmul_rn(dy[q], w[(int64_t)k * C + c]);
}

/* part[r, c] (c < C, only with_x) = Σ_p dy[r, p]·x[r, p, c]; part[r, C] = Σ_p dy[r, p].
 * grid (R, column tiles); each thread one column, pixels in ascending order, in double.
 * A bad row's part is left unwritten: the combine skips that row. */
__global__ static void cconv_partials_kernel(int HW, int C, int K, int with_x, const float *__restrict__ x,
                                             const int32_t *__restrict__ cls, const float *__restrict__ dy,
                                             double *__restrict__ part) {
    int64_t r = blockIdx.x;
    int c = blockIdx.y * PART_THREADS + threadIdx.x;
    if (c > C || (c < C && !with_x) || !index_ok(cls[r], K)) return;
    const float *dyr = dy + r * HW;
    double s = 0;
    if (c == C) {
        for (int p = 0; p < HW; p++) s += dyr[p];
    } else {
        const float *xr = x + r * HW * C + c;
        for (int p = 0; p < HW; p++) s += (double)dyr[p] * (double)xr[(int64_t)p * C];
    }
    part[r * (C + 1) + c] = s;
}

/* dw[cls_r, c] += (float)part[r, c] (c < C), db[cls_r] += (float)part[r, C], for the rows r
 * in ascending order whose class lies in this block's chunk [k0, k1). grid (column tiles,
 * class chunks). The row classes are staged in shared memory COMBINE_ROWS at a time; every
 * thread of the block takes part in the staging (no early exit before the barriers). */
__global__ static void cconv_combine_kernel(int R, int C, int K, int chunk, const int32_t *__restrict__ cls,
                                            const double *__restrict__ part, float *__restrict__ dw,
                                            float *__restrict__ db) {
    __shared__ int32_t sh_cls[COMBINE_ROWS];
    int c = blockIdx.x * COMBINE_THREADS + threadIdx.x;
    int k0 = blockIdx.y * chunk, k1 = k0 + chunk < K ? k0 + chunk : K;
    bool active = c <= C && (c < C ? dw != NULL : db != NULL);
    for (int r0 = 0; r0 < R; r0 += COMBINE_ROWS) {
        int nr = R - r0 < COMBINE_ROWS ? R - r0 : COMBINE_ROWS;
        __syncthreads(); /* the previous tile is no longer read */
        for (int i = threadIdx.x; i < nr; i += COMBINE_THREADS) sh_cls[i] = cls[r0 + i];
        __syncthreads();
        if (!active) continue;
        for (int i = 0; i < nr; i++) {
            int k = sh_cls[i];
            if (k < k0 || k >= k1) continue; /* another chunk's class, or a bad index (k0 >= 0, k1 <= K) */
            double v = part[(int64_t)(r0 + i) * (C + 1) + c];
            if (c < C) dw[(int64_t)k * C + c] += (float)v;
            else db[k] += (float)v;
        }
    }
}

/* Scratch: part, R·(C+1) doubles from rt->dev (4.2 MB at R = 2048, C = 256), released on
 * return (later users of that memory queue on the same stream). */
static void cconv_dw_db(runtime *rt, const tensor *x, const tensor *cls, const tensor *dy, int K, tensor *dw,
                        tensor *db) {
    int R = x->shape[0], HW = x->shape[1] * x->shape[2], C = x->shape[3];
    cudaStream_t st = (cudaStream_t)rt->stream;
    arena_mark m = arena_get_mark(&rt->dev);
    double *part = (double *)arena_alloc(&rt->dev, ((size_t)R * (size_t)(C + 1) + 1) * sizeof(double));
    dim3 grid1((unsigned int)R, cuda_blocks((int64_t)C + 1, PART_THREADS));
    cconv_partials_kernel<<<grid1, PART_THREADS, 0, st>>>(HW, C, K, dw != NULL, (const float *)x->data,
                                                          (const int32_t *)cls->data, (const float *)dy->data, part);
    KERNEL_CHECK(rt->debug_sync, st);
    int nchunks = K < COMBINE_CHUNKS ? K : COMBINE_CHUNKS;
    int chunk = (K + nchunks - 1) / nchunks;
    nchunks = (K + chunk - 1) / chunk; /* no empty chunk */
    dim3 grid2(cuda_blocks((int64_t)C + 1, COMBINE_THREADS), (unsigned int)nchunks);
    cconv_combine_kernel<<<grid2, COMBINE_THREADS, 0, st>>>(R, C, K, chunk, (const int32_t *)cls->data, part,
                                                            dw ? (float *)dw->data : NULL,
                                                            db ? (float *)db->data : NULL);
    KERNEL_CHECK(rt->debug_sync, st);
    arena_release(&rt->dev, m);
}

extern "C" void class_conv1x1_backward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *cls,
                                           const tensor *dy, tensor *dx, tensor *dw, tensor *db) {
    ops_expect_f32_gpu("class_conv1x1_backward_gpu", "x", x);
    CHECK(dy != NULL, "class_conv1x1 backward: dy is missing");
    int K = class_conv1x1_check("class_conv1x1 backward", x, w, db, cls, dy);
    if (dx) ops_expect_same_shape("class_conv1x1 backward dx", dx, x);
    if (dw) ops_expect_same_shape("class_conv1x1 backward dw", dw, w);
    debug_index_check(rt, "class_conv1x1", "class", cls, K);
    int R = x->shape[0], HW = x->shape[1] * x->shape[2], C = x->shape[3];
    if (R == 0 || K == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    int64_t n = (int64_t)R * HW * C;
    if (dx && n > 0) {
        cconv_dx_kernel<<<cuda_blocks(n, SELECT_THREADS), SELECT_THREADS, 0, st>>>(
            n, HW, C, K, (const float *)w->data, (const int32_t *)cls->data, (const float *)dy->data,
            (float *)dx->data);
        KERNEL_CHECK(rt->debug_sync, st);
    }
    if (dw || db) cconv_dw_db(rt, x, cls, dy, K, dw, db);
}

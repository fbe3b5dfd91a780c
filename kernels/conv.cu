/* conv.cu: the CUDA twins of conv.h: conv2d through cuDNN, deconv2x2 through cuBLAS.
 *
 * Same contracts as the CPU reference (src/ops/conv.c, conv_real.inc): f32 only, NHWC
 * activations, KRSC weights, outputs WRITTEN, gradients ACCUMULATED (+=) into dx, dw and
 * db, any of which may be NULL. Everything is queued on rt->stream (runtime.cu binds the
 * cuDNN and cuBLAS handles to it); there is no host-device synchronisation. Scratch (cuDNN
 * workspaces, deconv temporaries) comes from the step arena rt->dev and is handed back
 * before each op returns: the memory may be reused by the next op while these kernels are
 * still queued, which is safe because every user of the arena runs on rt->stream (or on
 * the legacy default stream, which the blocking rt->stream orders with).
 *
 * Precision: plain f32 FMA arithmetic, no TF32 tensor cores, so that the parity tests can
 * hold the twins to the f32 CPU reference (DESIGN §3). */
#include "ops/conv.h"

#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "core/check.h"
#include "core/log.h"
#include "ops/ops_internal.h"

#include "cuda_check.h"

#define CONV_THREADS 256

static cudaStream_t conv_stream(const runtime *rt) { return (cudaStream_t)rt->stream; }

/* ---- shared kernels --------------------------------------------------------------------- */

/* y[p, k] += b[k] for the n = rows·K elements of y. */
__global__ static void bias_add_kernel(float *y, const float *b, int64_t n, int K) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += b[i % K];
}

static void bias_add(runtime *rt, const float *b, int64_t rows, int K, float *y) {
    int64_t n = rows * K;
    if (n == 0) return;
    bias_add_kernel<<<cuda_blocks(n, CONV_THREADS), CONV_THREADS, 0, conv_stream(rt)>>>(y, b, n, K);
    KERNEL_CHECK(rt->debug_sync, conv_stream(rt));
}

/* The output of a layer whose input has no elements (no channels, or an empty map under
 * padding): the bias alone, or zeros. Neither library takes empty operands. */
static void write_bias_only(runtime *rt, const tensor *b, int64_t rows, int K, tensor *y) {
    CUDA_CHECK(cudaMemsetAsync(y->data, 0, tensor_bytes(y), conv_stream(rt)));
    if (b) bias_add(rt, (const float *)b->data, rows, K, (float *)y->data);
}

/* ---- conv2d: shapes ----------------------------------------------------------------------- */

/* Checks the operands of conv2d (the shared contract, conv2d_check) and returns their
 * geometry; y may be NULL. */
static conv_geom conv2d_shape(const runtime *rt, const conv2d_args *a, const tensor *x, const tensor *w,
                              const tensor *b, const tensor *y, const char *op) {
    char sx[128];
    CHECK(rt->device == DEVICE_CUDA, "%s: the GPU twin was called with a CPU runtime", op);
    ops_expect_f32_gpu(op, "x", x);
    conv_geom g = conv2d_check(op, a, x, w, b, y);
    /* cuDNN's 4-D descriptors take int sizes and strides */
    CHECK(tensor_numel(x) <= INT32_MAX && (int64_t)g.N * g.Ho * g.Wo * g.K <= INT32_MAX,
          "%s: %s or its output has more elements than cuDNN's 4-D tensors take", op, tensor_str(x, sx, sizeof sx));
    return g;
}

/* ---- conv2d: the plan cache ------------------------------------------------------------- *
 *
 * A plan holds the cuDNN descriptors of one convolution shape and, per direction, the
 * algorithm chosen for it and its workspace size. Algorithms come from cuDNN's heuristics
 * (cudnnGetConvolution*Algorithm_v7: no trial runs, so no synchronisation and no memory)
 * the first time a shape is seen in that direction; the step loops over a few canvas
 * sizes (DESIGN §5), so after warm-up every call is a table hit.
 *
 * The table is static in this file: process-wide and not thread-safe. It assumes one GPU
 * per process (the choice depends on the device) and that ops are called from one host
 * thread, as the trainer does. When it is full the oldest slot is reused (its descriptors
 * are set to the new shape), so shapes that never repeat cost a heuristics query each
 * time rather than memory. The descriptors live until the process exits. */

#define CONV_PLAN_SLOTS 512
/* The largest workspace an algorithm may ask for: a faster algorithm that needs more
 * would make the arena grow by that much for one layer. */
#define CONV_WORKSPACE_CAP ((size_t)512 << 20)

typedef enum { CONV_FWD = 0, CONV_BWD_DATA, CONV_BWD_FILTER, CONV_DIRS } conv_dir;
static const char *const conv_dir_name[CONV_DIRS] = {"forward", "backward data", "backward filter"};

typedef struct conv_plan {
    int key[9]; /* N, H, W, C, K, R, S, stride, pad */
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int chosen[CONV_DIRS];
    int algo[CONV_DIRS];
    size_t ws_bytes[CONV_DIRS];
} conv_plan;

static conv_plan g_conv_plans[CONV_PLAN_SLOTS];
static int g_conv_nplans, g_conv_evict, g_conv_warned;

static void conv_plan_describe(conv_plan *p, const conv_geom *g) {
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, g->N, g->C, g->H, g->W));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, g->N, g->K, g->Ho, g->Wo));
    /* NHWC is cuDNN's name for the KRSC filter layout */
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, g->K, g->C, g->R, g->S));
    /* cross-correlation: the window is not flipped, as in the reference's formula */
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->cd, g->pad, g->pad, g->stride, g->stride, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    /* FMA math: f32 kernels without TF32, for parity with the f32 reference. The TF32 /
     * bf16 switch of the fast path goes here (CUDNN_DEFAULT_MATH or CUDNN_TENSOR_OP_MATH
     * with bf16 descriptors), with the precision added to the plan key. */
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd, CUDNN_FMA_MATH));
    int n, c, h, w;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->cd, p->xd, p->wd, &n, &c, &h, &w));
    CHECK(n == g->N && c == g->K && h == g->Ho && w == g->Wo,
          "conv2d: cuDNN's output [%d,%d,%d,%d] differs from conv2d_out_size's [%d,%d,%d,%d]", n, h, w, c, g->N,
          g->Ho, g->Wo, g->K);
}

static conv_plan *conv_plan_get(const conv_geom *g) {
    const int key[9] = {g->N, g->H, g->W, g->C, g->K, g->R, g->S, g->stride, g->pad};
    for (int i = 0; i < g_conv_nplans; i++)
        if (memcmp(g_conv_plans[i].key, key, sizeof key) == 0) return &g_conv_plans[i];
    conv_plan *p;
    if (g_conv_nplans < CONV_PLAN_SLOTS) {
        p = &g_conv_plans[g_conv_nplans++];
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->xd));
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->yd));
        CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->wd));
        CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->cd));
    } else {
        if (!g_conv_warned)
            log_warn("conv2d: more than %d convolution shapes: cuDNN algorithms are now re-chosen for shapes "
                     "that were evicted (do the batch shapes repeat? DESIGN §5)", CONV_PLAN_SLOTS);
        g_conv_warned = 1;
        p = &g_conv_plans[g_conv_evict];
        g_conv_evict = (g_conv_evict + 1) % CONV_PLAN_SLOTS;
    }
    memcpy(p->key, key, sizeof key);
    memset(p->chosen, 0, sizeof p->chosen);
    conv_plan_describe(p, g);
    return p;
}

/* One heuristics result, whatever its direction. */
typedef struct conv_candidate {
    int algo;
    cudnnStatus_t status;
    cudnnMathType_t math;
} conv_candidate;

/* cuDNN's ranking for direction d (best first) into out[CONV_MAX_CANDIDATES]; returns how
 * many. cuDNN 9 may list an algorithm once per math type, so the request is sized by its
 * own *AlgorithmMaxCount, not by the enum's ALGO_COUNT (which could cut off the FMA
 * entries). */
#define CONV_MAX_CANDIDATES 64
static int conv_candidates(cudnnHandle_t h, const conv_plan *p, conv_dir d, conv_candidate *out) {
    int n = 0, want = 0;
    if (d == CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t r[CONV_MAX_CANDIDATES];
        CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &want));
        want = want < CONV_MAX_CANDIDATES ? want : CONV_MAX_CANDIDATES;
        CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p->xd, p->wd, p->cd, p->yd, want, &n, r));
        for (int i = 0; i < n; i++) out[i] = conv_candidate{(int)r[i].algo, r[i].status, r[i].mathType};
    } else if (d == CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t r[CONV_MAX_CANDIDATES];
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &want));
        want = want < CONV_MAX_CANDIDATES ? want : CONV_MAX_CANDIDATES;
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->wd, p->yd, p->cd, p->xd, want, &n, r));
        for (int i = 0; i < n; i++) out[i] = conv_candidate{(int)r[i].algo, r[i].status, r[i].mathType};
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t r[CONV_MAX_CANDIDATES];
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &want));
        want = want < CONV_MAX_CANDIDATES ? want : CONV_MAX_CANDIDATES;
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p->xd, p->yd, p->cd, p->wd, want, &n, r));
        for (int i = 0; i < n; i++) out[i] = conv_candidate{(int)r[i].algo, r[i].status, r[i].mathType};
    }
    return n;
}

/* Whether an algorithm may be used in the f32 reference mode. The transform-based ones
 * (FFT, Winograd) are left out: their rounding error grows with the transform, not with
 * the length of the sum, and the parity tolerances are those of a direct sum (most of
 * them do not take NHWC anyway). Results asking for tensor-op math are left out too (the
 * descriptor's FMA math is what runs). cuDNN may still pick an algorithm that sums with
 * atomics (backward data / filter ALGO_0, filter ALGO_3): non-deterministic, which DESIGN
 * §3 allows on the GPU; train.deterministic will add `determinism == CUDNN_DETERMINISTIC`
 * here (and to the plan key). */
static int conv_algo_allowed(conv_dir d, const conv_candidate *c) {
    if (c->status != CUDNN_STATUS_SUCCESS) return 0;
    if (c->math != CUDNN_FMA_MATH && c->math != CUDNN_DEFAULT_MATH) return 0;
    switch (d) {
    case CONV_FWD:
        return c->algo != CUDNN_CONVOLUTION_FWD_ALGO_FFT && c->algo != CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING &&
               c->algo != CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD &&
               c->algo != CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
    case CONV_BWD_DATA:
        return c->algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT &&
               c->algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING &&
               c->algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD &&
               c->algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
    default:
        return c->algo != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT &&
               c->algo != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING &&
               c->algo != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
    }
}

/* The workspace algorithm `algo` needs in direction d; a status other than success means
 * cuDNN cannot run it on these descriptors. */
static cudnnStatus_t conv_workspace_size(cudnnHandle_t h, const conv_plan *p, conv_dir d, int algo, size_t *bytes) {
    if (d == CONV_FWD)
        return cudnnGetConvolutionForwardWorkspaceSize(h, p->xd, p->wd, p->cd, p->yd, (cudnnConvolutionFwdAlgo_t)algo,
                                                       bytes);
    if (d == CONV_BWD_DATA)
        return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->wd, p->yd, p->cd, p->xd,
                                                            (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p->xd, p->yd, p->cd, p->wd,
                                                          (cudnnConvolutionBwdFilterAlgo_t)algo, bytes);
}

/* Chooses p's algorithm for direction d on first use: the first in cuDNN's ranking that is
 * allowed and whose workspace fits CONV_WORKSPACE_CAP. */
static void conv_plan_choose(const runtime *rt, conv_plan *p, conv_dir d) {
    if (p->chosen[d]) return;
    cudnnHandle_t h = (cudnnHandle_t)rt->cudnn;
    conv_candidate cand[CONV_MAX_CANDIDATES];
    int n = conv_candidates(h, p, d, cand);
    for (int i = 0; i < n; i++) {
        size_t bytes = 0;
        if (!conv_algo_allowed(d, &cand[i])) continue;
        if (conv_workspace_size(h, p, d, cand[i].algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
        if (bytes > CONV_WORKSPACE_CAP) continue;
        p->algo[d] = cand[i].algo;
        p->ws_bytes[d] = bytes;
        p->chosen[d] = 1;
        return;
    }
    const int *k = p->key;
    for (int i = 0; i < n; i++) { /* say why each was refused before stopping */
        size_t bytes = 0;
        cudnnStatus_t ws = conv_workspace_size(h, p, d, cand[i].algo, &bytes);
        log_error("conv2d %s candidate %d: algo %d, status %s, math %d, workspace %s %zu MiB, allowed %d",
                  conv_dir_name[d], i, cand[i].algo, cudnnGetErrorString(cand[i].status), (int)cand[i].math,
                  cudnnGetErrorString(ws), bytes >> 20, conv_algo_allowed(d, &cand[i]));
    }
    FATAL("conv2d: cuDNN offers no f32 %s algorithm for x [%d,%d,%d,%d], w [%d,%d,%d,%d], stride %d, pad %d "
          "within a %zu MiB workspace (%d candidates, the first with status %s)", conv_dir_name[d], k[0], k[1], k[2],
          k[3], k[4], k[5], k[6], k[3], k[7], k[8], CONV_WORKSPACE_CAP >> 20, n,
          n > 0 ? cudnnGetErrorString(cand[0].status) : "-");
}

/* The workspace of p's direction d, from the step arena (callers hold a mark). */
static void *conv_workspace(runtime *rt, const conv_plan *p, conv_dir d) {
    return p->ws_bytes[d] ? arena_alloc(&rt->dev, p->ws_bytes[d]) : NULL;
}

/* ---- conv2d ------------------------------------------------------------------------------ */

extern "C" void conv2d_forward_gpu(runtime *rt, const conv2d_args *a, const tensor *x, const tensor *w,
                                   const tensor *b, tensor *y) {
    conv_geom g = conv2d_shape(rt, a, x, w, b, y, "conv2d");
    const int64_t P = (int64_t)g.N * g.Ho * g.Wo;
    if (P == 0 || g.K == 0) return; /* y is empty */
    if (tensor_numel(x) == 0) {
        write_bias_only(rt, b, P, g.K, y);
        return;
    }
    conv_plan *p = conv_plan_get(&g);
    conv_plan_choose(rt, p, CONV_FWD);
    const float one = 1, zero = 0; /* beta = 0: y is written (cuDNN does not read it) */
    arena_mark m = arena_get_mark(&rt->dev);
    void *ws = conv_workspace(rt, p, CONV_FWD);
    CUDNN_CHECK(cudnnConvolutionForward((cudnnHandle_t)rt->cudnn, &one, p->xd, x->data, p->wd, w->data, p->cd,
                                        (cudnnConvolutionFwdAlgo_t)p->algo[CONV_FWD], ws, p->ws_bytes[CONV_FWD],
                                        &zero, p->yd, y->data));
    KERNEL_CHECK(rt->debug_sync, conv_stream(rt));
    arena_release(&rt->dev, m);
    if (b) bias_add(rt, (const float *)b->data, P, g.K, (float *)y->data);
}

extern "C" void conv2d_backward_gpu(runtime *rt, const conv2d_args *a, const tensor *x, const tensor *w,
                                    const tensor *dy, tensor *dx, tensor *dw, tensor *db) {
    conv_geom g = conv2d_shape(rt, a, x, w, db, dy, "conv2d backward");
    if (dx) ops_expect_same_shape("conv2d backward dx", dx, x);
    if (dw) ops_expect_same_shape("conv2d backward dw", dw, w);
    const int64_t P = (int64_t)g.N * g.Ho * g.Wo;
    if (db && P > 0) ops_colsum_add_gpu(rt, (const float *)dy->data, P, g.K, (float *)db->data);
    /* an empty dy adds nothing; an input without elements has empty dx and dw */
    if ((!dx && !dw) || P == 0 || g.K == 0 || tensor_numel(x) == 0) return;
    conv_plan *p = conv_plan_get(&g);
    cudnnHandle_t h = (cudnnHandle_t)rt->cudnn;
    const float one = 1; /* alpha = 1, and beta = 1: cuDNN adds into dx and dw */
    arena_mark m = arena_get_mark(&rt->dev);
    if (dx) {
        conv_plan_choose(rt, p, CONV_BWD_DATA);
        void *ws = conv_workspace(rt, p, CONV_BWD_DATA);
        CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p->wd, w->data, p->yd, dy->data, p->cd,
                                                 (cudnnConvolutionBwdDataAlgo_t)p->algo[CONV_BWD_DATA], ws,
                                                 p->ws_bytes[CONV_BWD_DATA], &one, p->xd, dx->data));
        KERNEL_CHECK(rt->debug_sync, conv_stream(rt));
    }
    if (dw) {
        conv_plan_choose(rt, p, CONV_BWD_FILTER);
        void *ws = conv_workspace(rt, p, CONV_BWD_FILTER);
        CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p->xd, x->data, p->yd, dy->data, p->cd,
                                                   (cudnnConvolutionBwdFilterAlgo_t)p->algo[CONV_BWD_FILTER], ws,
                                                   p->ws_bytes[CONV_BWD_FILTER], &one, p->wd, dw->data));
        KERNEL_CHECK(rt->debug_sync, conv_stream(rt));
    }
    arena_release(&rt->dev, m);
}

/* ---- deconv2x2 ---------------------------------------------------------------------------- *
 *
 * cuBLAS rather than cuDNN's backward-data: the 2×2 stride-2 windows do not overlap, so
 * the op is exactly one GEMM t[P, 4K] = x[P, C] · wpᵀ with the weight reordered to
 * wp[(i·2 + j)·K + k, c] = w[k, i, j, c], then a scatter of each pixel's four K-vectors to
 * its 2×2 output block. That is the reference's own algorithm (conv_real.inc), so a parity
 * failure maps line for line onto the CPU code; cuDNN would need the weight transposed to
 * [C, 2, 2, K] as well, three more algorithm choices, and dw through backward-filter with x
 * and dy swapping roles, for no gain on a plain GEMM. The cost is one extra pass over the
 * output (t written, then read by the scatter), in chunks of DECONV_CHUNK_ELEMS so the
 * scratch stays bounded (a mask head output of 256 RoIs × 28 × 28 × 256 is 205 MB).
 *
 * cuBLAS runs in the handle's default math mode (CUBLAS_DEFAULT_MATH: runtime.cu never
 * sets CUBLAS_TF32_TENSOR_OP_MATH), in which cublasSgemm is plain f32; the TF32 / bf16
 * switch goes in deconv_gemm (cublasGemmEx with CUBLAS_COMPUTE_32F_FAST_TF32, or bf16
 * operands). Scalars are passed from the host (the handle's default pointer mode). */

/* Elements of t per chunk: 64 MiB of f32, enough rows for an efficient GEMM. */
#define DECONV_CHUNK_ELEMS ((int64_t)16 << 20)

typedef struct deconv_geom {
    int N, H, W, C, K;
    int64_t P; /* input pixels N·H·W */
} deconv_geom;

static deconv_geom deconv_geom_check(const runtime *rt, const tensor *x, const tensor *w, const tensor *b,
                                       const tensor *y, const char *op) {
    char sw[128];
    CHECK(rt->device == DEVICE_CUDA, "%s: the GPU twin was called with a CPU runtime", op);
    ops_expect_f32_gpu(op, "x", x);
    deconv2x2_check(op, x, w, b, y);
    CHECK(w->shape[0] <= INT32_MAX / 4, "%s: %s has more output channels than one GEMM takes", op,
          tensor_str(w, sw, sizeof sw));
    deconv_geom d = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], 0};
    d.P = (int64_t)d.N * d.H * d.W;
    return d;
}

/* Input pixels per chunk: t's rows [p0, p0 + rows) hold rows·4K ≤ INT32_MAX elements
 * (the scatter and gather kernels index a chunk with int). */
static int deconv_chunk_rows(const deconv_geom *d) {
    int64_t rows = DECONV_CHUNK_ELEMS / (4 * (int64_t)d->K);
    if (rows < 1) rows = 1;
    return (int)(rows < d->P ? rows : d->P);
}

/* Row-major C[M, N] = alpha·op(A)·op(B) + beta·C, arguments as cblas_sgemm(CblasRowMajor,
 * ...) takes them (lda, ldb, ldc are row strides). cuBLAS is column-major, and a row-major
 * matrix read column-major is its transpose, so this asks cuBLAS for Cᵀ = op(B)ᵀ·op(A)ᵀ:
 * operands swapped, M and N swapped, the transpose flags unchanged. */
static void deconv_gemm(runtime *rt, cublasOperation_t ta, cublasOperation_t tb, int M, int N, int Kd,
                        const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    const float alpha = 1;
    CUBLAS_CHECK(cublasSgemm((cublasHandle_t)rt->cublas, tb, ta, N, M, Kd, &alpha, B, ldb, A, lda, &beta, C, ldc));
    KERNEL_CHECK(rt->debug_sync, conv_stream(rt));
}

/* wp[(ij·K + k)·C + c] = w[(k·4 + ij)·C + c] over the 4·K·C weights. */
__global__ static void deconv_reorder_kernel(const float *w, int K, int C, float *wp) {
    int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (int64_t)4 * K * C) return;
    int c = (int)(e % C);
    int64_t row = e / C;
    int k = (int)(row % K), ij = (int)(row / K);
    wp[e] = w[((int64_t)k * 4 + ij) * C + c];
}

/* dw[(k·4 + ij)·C + c] += dwp[(ij·K + k)·C + c]: the reorder undone, accumulating. */
__global__ static void deconv_unreorder_add_kernel(const float *dwp, int K, int C, float *dw) {
    int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (int64_t)4 * K * C) return;
    int c = (int)(e % C);
    int64_t row = e / C;
    int ij = (int)(row % 4), k = (int)(row / 4);
    dw[e] += dwp[((int64_t)ij * K + k) * C + c];
}

/* Offset in y (or dy) [N, 2H, 2W, K] of channel 0 of output pixel (2h + i, 2w + j) of
 * input pixel p = (n, h, w), with ij = i·2 + j. */
__device__ static int64_t deconv_out_offset(int p, int ij, int H, int W, int K) {
    int wc = p % W, nh = p / W, h = nh % H, n = nh / H;
    int oh = 2 * h + (ij >> 1), ow = 2 * wc + (ij & 1);
    return (((int64_t)n * 2 * H + oh) * 2 * W + ow) * K;
}

/* y[pixel (p0 + q) block ij, k] = t[q, ij·K + k] + b[k] over the chunk's rows·4K elements. */
__global__ static void deconv_scatter_kernel(const float *t, int p0, int n, int H, int W, int K, const float *b,
                                             float *y) {
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int k = e % K, q = e / K;
    y[deconv_out_offset(p0 + (q >> 2), q & 3, H, W, K) + k] = t[e] + (b ? b[k] : 0.0f);
}

/* dt[q, ij·K + k] = dy[pixel (p0 + q) block ij, k]: dy gathered into the GEMM's order. */
__global__ static void deconv_gather_kernel(const float *dy, int p0, int n, int H, int W, int K, float *dt) {
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int k = e % K, q = e / K;
    dt[e] = dy[deconv_out_offset(p0 + (q >> 2), q & 3, H, W, K) + k];
}

static float *deconv_reordered_weight(runtime *rt, const deconv_geom *d, const tensor *w) {
    int64_t n = (int64_t)4 * d->K * d->C;
    float *wp = (float *)arena_alloc(&rt->dev, (size_t)n * sizeof(float));
    deconv_reorder_kernel<<<cuda_blocks(n, CONV_THREADS), CONV_THREADS, 0, conv_stream(rt)>>>(
        (const float *)w->data, d->K, d->C, wp);
    KERNEL_CHECK(rt->debug_sync, conv_stream(rt));
    return wp;
}

extern "C" void deconv2x2_forward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b, tensor *y) {
    deconv_geom d = deconv_geom_check(rt, x, w, b, y, "deconv2x2");
    if (d.P == 0 || d.K == 0) return; /* y is empty */
    if (d.C == 0) {
        write_bias_only(rt, b, 4 * d.P, d.K, y);
        return;
    }
    const int K4 = 4 * d.K, chunk = deconv_chunk_rows(&d);
    const float *xf = (const float *)x->data, *bf = b ? (const float *)b->data : NULL;
    arena_mark m = arena_get_mark(&rt->dev);
    float *wp = deconv_reordered_weight(rt, &d, w);
    float *t = (float *)arena_alloc(&rt->dev, (size_t)chunk * K4 * sizeof(float));
    for (int64_t p0 = 0; p0 < d.P; p0 += chunk) {
        int rows = (int)(p0 + chunk < d.P ? chunk : d.P - p0), n = rows * K4;
        /* t[rows, 4K] = x_chunk[rows, C] · wp[4K, C]ᵀ */
        deconv_gemm(rt, CUBLAS_OP_N, CUBLAS_OP_T, rows, K4, d.C, xf + p0 * d.C, d.C, wp, d.C, 0, t, K4);
        deconv_scatter_kernel<<<cuda_blocks(n, CONV_THREADS), CONV_THREADS, 0, conv_stream(rt)>>>(
            t, (int)p0, n, d.H, d.W, d.K, bf, (float *)y->data);
        KERNEL_CHECK(rt->debug_sync, conv_stream(rt));
    }
    arena_release(&rt->dev, m);
}

extern "C" void deconv2x2_backward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *dy, tensor *dx,
                                       tensor *dw, tensor *db) {
    deconv_geom d = deconv_geom_check(rt, x, w, db, dy, "deconv2x2 backward");
    if (dx) ops_expect_same_shape("deconv2x2 backward dx", dx, x);
    if (dw) ops_expect_same_shape("deconv2x2 backward dw", dw, w);
    if (db && d.P > 0) ops_colsum_add_gpu(rt, (const float *)dy->data, 4 * d.P, d.K, (float *)db->data);
    if ((!dx && !dw) || d.P == 0 || d.K == 0 || d.C == 0) return;
    const int K4 = 4 * d.K, chunk = deconv_chunk_rows(&d);
    const float *xf = (const float *)x->data;
    arena_mark m = arena_get_mark(&rt->dev);
    float *wp = dx ? deconv_reordered_weight(rt, &d, w) : NULL;
    float *dwp = dw ? (float *)arena_alloc(&rt->dev, (size_t)K4 * d.C * sizeof(float)) : NULL;
    float *dt = (float *)arena_alloc(&rt->dev, (size_t)chunk * K4 * sizeof(float));
    for (int64_t p0 = 0; p0 < d.P; p0 += chunk) {
        int rows = (int)(p0 + chunk < d.P ? chunk : d.P - p0), n = rows * K4;
        deconv_gather_kernel<<<cuda_blocks(n, CONV_THREADS), CONV_THREADS, 0, conv_stream(rt)>>>(
            (const float *)dy->data, (int)p0, n, d.H, d.W, d.K, dt);
        KERNEL_CHECK(rt->debug_sync, conv_stream(rt));
        if (dx) /* dx_chunk[rows, C] += dt[rows, 4K] · wp[4K, C] */
            deconv_gemm(rt, CUBLAS_OP_N, CUBLAS_OP_N, rows, d.C, K4, dt, K4, wp, d.C, 1, (float *)dx->data + p0 * d.C,
                        d.C);
        if (dw) /* dwp[4K, C] (+)= dtᵀ · x_chunk; the first chunk writes, so dwp needs no zeroing */
            deconv_gemm(rt, CUBLAS_OP_T, CUBLAS_OP_N, K4, d.C, rows, dt, K4, xf + p0 * d.C, d.C, p0 == 0 ? 0 : 1, dwp,
                        d.C);
    }
    if (dw) {
        int64_t n = (int64_t)K4 * d.C;
        deconv_unreorder_add_kernel<<<cuda_blocks(n, CONV_THREADS), CONV_THREADS, 0, conv_stream(rt)>>>(
            dwp, d.K, d.C, (float *)dw->data);
        KERNEL_CHECK(rt->debug_sync, conv_stream(rt));
    }
    arena_release(&rt->dev, m);
}

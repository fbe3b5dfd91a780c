/* linear.cu: CUDA twins of linear.c: linear and normed_linear, forward and backward (the
 * contracts are in linear.h; the spec is linear_real.inc). f32 tensors on the GPU, all
 * work queued on rt->stream, scratch from the step arena rt->dev, no host synchronisation.
 *
 * The products are cuBLAS sgemm calls that mirror the cblas_sgemm(CblasRowMajor, ...) calls
 * of the reference one for one (gemm_rm below). Math: the handle's default math mode
 * (CUBLAS_DEFAULT_MATH), i.e. true f32 FMA, no TF32: the fp32 parity tests need it
 * (DESIGN §3). A TF32 / bf16 fast path goes in gemm_rm later (cublasGemmEx with
 * CUBLAS_COMPUTE_32F_FAST_TF32, or bf16 operands with f32 accumulation), switched by config.
 * cuBLAS documents bit-identical results run to run for one stream, one library version and
 * GPUs of the same architecture and SM count; not across versions or GPU models.
 *
 * NormedLinear normalises rows with one warp per row; the norms and the dot products of the
 * backward are accumulated in double (as the CPU reference does), each lane over a fixed
 * set of columns and the lanes combined by a fixed butterfly, so results are deterministic.
 * Bias gradients use ops_colsum_add_gpu (deterministic too). */
#include "cuda_check.h"

#include "core/arena.h"
#include "ops/linear.h"
#include "ops/ops_internal.h"

#include <stdio.h>

#define WARPS_PER_BLOCK 8
#define BIAS_THREADS 256
#define BIAS_MAX_BLOCKS (1u << 20) /* the bias kernel strides over the rest */

/* ---- validation --------------------------------------------------------------------- */

/* t is an f32 GPU tensor of the given shape (-1: any size); one line naming `op` if not. */
static void expect_f32_gpu(const char *op, const char *what, const tensor *t, int d0, int d1, int ndim) {
    char msg[128];
    CHECK(t != NULL, "%s: %s is missing", op, what);
    snprintf(msg, sizeof msg, "%s %s", op, what);
    const int shape[2] = {d0, d1};
    tensor_expect(t, DTYPE_F32, DEVICE_CUDA, shape, ndim, msg);
}

/* x [R, C], w [K, C], b [K] (optional), y [R, K] (the output, or dy in a backward). */
static void linear_check_gpu(const char *op, const tensor *x, const tensor *w, const tensor *b, const tensor *y) {
    expect_f32_gpu(op, "x [R, C]", x, -1, -1, 2);
    expect_f32_gpu(op, "weight [K, C]", w, -1, x->shape[1], 2);
    if (b) expect_f32_gpu(op, "bias [K]", b, w->shape[0], 0, 1);
    expect_f32_gpu(op, "output [R, K]", y, x->shape[0], w->shape[0], 2);
}

/* The backward's gradient buffers: dx like x, dw like w (db is checked as the bias). */
static void linear_check_grads(const char *op, const tensor *x, const tensor *w, const tensor *dx,
                               const tensor *dw) {
    char what[96];
    snprintf(what, sizeof what, "%s dx", op);
    if (dx) ops_expect_same_shape(what, dx, x);
    snprintf(what, sizeof what, "%s dw", op);
    if (dw) ops_expect_same_shape(what, dw, w);
}

/* ---- GEMM and bias ------------------------------------------------------------------ */

/* Row-major Cm [M, N] = op(A) · op(B) + beta · Cm, op(A) [M, Kd], op(B) [Kd, N], with the
 * arguments of cblas_sgemm(CblasRowMajor, ...). cuBLAS is column-major, and a row-major
 * matrix read column-major is its transpose, so this is Cmᵀ = op(B)ᵀ · op(A)ᵀ: the same
 * buffers and leading dimensions with the operands and M, N swapped. beta is 0 (written)
 * or 1 (accumulated). Empty products: nothing to do, except Kd = 0 with beta = 0, which
 * must write zeros (done with a memset: cuBLAS rejects a leading dimension of 0). */
static void gemm_rm(runtime *rt, bool trans_a, bool trans_b, int M, int N, int Kd, const float *A, int lda,
                    const float *B, int ldb, float beta, float *Cm, int ldc) {
    if (M == 0 || N == 0) return;
    cudaStream_t stream = (cudaStream_t)rt->stream;
    if (Kd == 0) {
        if (beta == 0)
            CUDA_CHECK(cudaMemset2DAsync(Cm, (size_t)ldc * sizeof(float), 0, (size_t)N * sizeof(float), M, stream));
        return;
    }
    const float alpha = 1;
    /* Host pointer mode (cuBLAS's default; runtime.cu never changes it). */
    CUBLAS_CHECK(cublasSgemm((cublasHandle_t)rt->cublas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                             trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, Kd, &alpha, B, ldb, A, lda, &beta,
                             Cm, ldc));
    KERNEL_CHECK(rt->debug_sync, stream); /* debug mode: report an execution error here */
}

/* y [n / K, K] += b [K] broadcast over rows. */
__global__ static void bias_add_kernel(float *y, const float *b, int64_t n, int K) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) y[i] += b[i % K];
}

static void bias_add(runtime *rt, float *y, const float *b, int rows, int K) {
    const int64_t n = (int64_t)rows * K;
    if (n == 0) return;
    const int64_t cap = (int64_t)BIAS_MAX_BLOCKS * BIAS_THREADS;
    const unsigned int blocks = cuda_blocks(n < cap ? n : cap, BIAS_THREADS);
    bias_add_kernel<<<blocks, BIAS_THREADS, 0, (cudaStream_t)rt->stream>>>(y, b, n, K);
    KERNEL_CHECK(rt->debug_sync, (cudaStream_t)rt->stream);
}

/* y [R, K] = x [R, C] · w [K, C]ᵀ + b (b may be NULL): linear_fwd of the reference. */
static void linear_fwd(runtime *rt, int R, int C, int K, const float *x, const float *w, const float *b,
                       float *y) {
    gemm_rm(rt, false, true, R, K, C, x, C, w, C, 0, y, K);
    if (b) bias_add(rt, y, b, R, K);
}

/* ---- row normalisation -------------------------------------------------------------- */

/* The sum of v over the warp, the same value in every lane: the xor butterfly adds the
 * same two operands in every lane (in swapped order, which is exact), so it is fixed. */
__device__ static double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* u[r] = scale · v[r] / (‖v[r]‖ + eps) for each row of v [rows, cols]; one warp per row,
 * the norm in double, the product rounded once to f32 (as unit_rows of the reference). */
__global__ static void unit_rows_kernel(const float *v, int rows, int cols, double eps, double scale, float *u) {
    const int lane = threadIdx.x % 32;
    const int64_t r = (int64_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32;
    if (r >= rows) return; /* whole warps leave; no block-wide synchronisation follows */
    const float *vr = v + r * cols;
    double ss = 0;
    for (int c = lane; c < cols; c += 32) ss += (double)vr[c] * vr[c];
    const double f = scale / (sqrt(warp_sum(ss)) + eps);
    for (int c = lane; c < cols; c += 32) u[r * cols + c] = (float)(vr[c] * f);
}

/* dv[r] += scale · J(v[r])ᵀ g[r], the backward of unit_rows (unit_rows_bwd of the reference):
 *   J(v)ᵀ g = g / (n + eps) − v · (v·g) / (n (n + eps)²),  n = ‖v‖,
 * the second term 0 at v = 0 (the norm's zero sub-gradient, as PyTorch). Sums in double. */
__global__ static void unit_rows_bwd_kernel(const float *v, const float *g, int rows, int cols, double eps,
                                            double scale, float *dv) {
    const int lane = threadIdx.x % 32;
    const int64_t r = (int64_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32;
    if (r >= rows) return;
    const float *vr = v + r * cols, *gr = g + r * cols;
    double ss = 0, vg = 0;
    for (int c = lane; c < cols; c += 32) {
        ss += (double)vr[c] * vr[c];
        vg += (double)vr[c] * gr[c];
    }
    const double n = sqrt(warp_sum(ss));
    vg = warp_sum(vg);
    const double a = scale / (n + eps);
    const double bcoef = n > 0 ? scale * vg / (n * (n + eps) * (n + eps)) : 0;
    for (int c = lane; c < cols; c += 32) dv[r * cols + c] += (float)(a * gr[c] - bcoef * vr[c]);
}

static unsigned int row_blocks(int rows) { return cuda_blocks(rows, WARPS_PER_BLOCK); }

static void unit_rows(runtime *rt, const float *v, int rows, int cols, double eps, double scale, float *u) {
    if (rows == 0 || cols == 0) return;
    cudaStream_t stream = (cudaStream_t)rt->stream;
    unit_rows_kernel<<<row_blocks(rows), 32 * WARPS_PER_BLOCK, 0, stream>>>(v, rows, cols, eps, scale, u);
    KERNEL_CHECK(rt->debug_sync, stream);
}

static void unit_rows_bwd(runtime *rt, const float *v, const float *g, int rows, int cols, double eps,
                          double scale, float *dv) {
    if (rows == 0 || cols == 0) return;
    cudaStream_t stream = (cudaStream_t)rt->stream;
    unit_rows_bwd_kernel<<<row_blocks(rows), 32 * WARPS_PER_BLOCK, 0, stream>>>(v, g, rows, cols, eps, scale, dv);
    KERNEL_CHECK(rt->debug_sync, stream);
}

/* A scratch f32 matrix [rows, cols] from the step arena. Scratch is released when the op
 * returns, before its kernels have run: safe because whoever gets that memory next queues
 * on the same stream (rt->stream), after them. */
static float *scratch(runtime *rt, int rows, int cols) {
    return (float *)arena_alloc(&rt->dev, (size_t)rows * (size_t)cols * sizeof(float));
}

/* ---- the twins ---------------------------------------------------------------------- */

extern "C" void linear_forward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b, tensor *y) {
    linear_check_gpu("linear", x, w, b, y);
    linear_fwd(rt, x->shape[0], x->shape[1], w->shape[0], (const float *)x->data, (const float *)w->data,
               b ? (const float *)b->data : NULL, (float *)y->data);
}

/* db += Σ_r dy[r]; dw [K, C] += dyᵀ · x; dx [R, C] += dy · w (linear_bwd of the reference). */
extern "C" void linear_backward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *dy,
                                    tensor *dx, tensor *dw, tensor *db) {
    linear_check_gpu("linear backward", x, w, db, dy);
    linear_check_grads("linear backward", x, w, dx, dw);
    const int R = x->shape[0], C = x->shape[1], K = w->shape[0];
    const float *dyp = (const float *)dy->data;
    if (db) ops_colsum_add_gpu(rt, dyp, R, K, (float *)db->data);
    if (dw) gemm_rm(rt, true, false, K, C, R, dyp, K, (const float *)x->data, C, 1, (float *)dw->data, C);
    if (dx) gemm_rm(rt, false, false, R, C, K, dyp, K, (const float *)w->data, C, 1, (float *)dx->data, C);
}

/* y = (τ·x̂) · ŵᵀ + b with x̂, ŵ the unit rows: two scratch copies and a plain linear. */
extern "C" void normed_linear_forward_gpu(runtime *rt, const normed_args *a, const tensor *x, const tensor *w,
                                          const tensor *b, tensor *y) {
    linear_check_gpu("normed_linear", x, w, b, y);
    CHECK(a != NULL, "normed_linear: the arguments (tau, eps) are missing");
    const int R = x->shape[0], C = x->shape[1], K = w->shape[0];
    if (R == 0 || K == 0) return; /* y is empty */
    arena_mark m = arena_get_mark(&rt->dev);
    float *xn = scratch(rt, R, C), *wn = scratch(rt, K, C);
    unit_rows(rt, (const float *)x->data, R, C, a->eps, a->tau, xn);
    unit_rows(rt, (const float *)w->data, K, C, a->eps, 1.0, wn);
    linear_fwd(rt, R, C, K, xn, wn, b ? (const float *)b->data : NULL, (float *)y->data);
    arena_release(&rt->dev, m);
}

/* db += Σ_r dy[r]; dx += τ J(x)ᵀ (dy · ŵ); dw += J(w)ᵀ (dyᵀ · τx̂) (normed_bwd of the
 * reference; each normalised copy is made only for the gradient that needs it). */
extern "C" void normed_linear_backward_gpu(runtime *rt, const normed_args *a, const tensor *x, const tensor *w,
                                           const tensor *dy, tensor *dx, tensor *dw, tensor *db) {
    linear_check_gpu("normed_linear backward", x, w, db, dy);
    linear_check_grads("normed_linear backward", x, w, dx, dw);
    CHECK(a != NULL, "normed_linear backward: the arguments (tau, eps) are missing");
    const int R = x->shape[0], C = x->shape[1], K = w->shape[0];
    const float *xp = (const float *)x->data, *wp = (const float *)w->data, *dyp = (const float *)dy->data;
    if (db) ops_colsum_add_gpu(rt, dyp, R, K, (float *)db->data);
    arena_mark m = arena_get_mark(&rt->dev);
    if (dx && R > 0 && C > 0) { /* d(τ x̂) = dy · ŵ, then through the row normalisation */
        float *wn = scratch(rt, K, C), *g = scratch(rt, R, C);
        unit_rows(rt, wp, K, C, a->eps, 1.0, wn);
        gemm_rm(rt, false, false, R, C, K, dyp, K, wn, C, 0, g, C);
        unit_rows_bwd(rt, xp, g, R, C, a->eps, a->tau, (float *)dx->data);
    }
    if (dw && K > 0 && C > 0) { /* dŵ = dyᵀ · (τ x̂) */
        float *xn = scratch(rt, R, C), *g = scratch(rt, K, C);
        unit_rows(rt, xp, R, C, a->eps, a->tau, xn);
        gemm_rm(rt, true, false, K, C, R, dyp, K, xn, C, 0, g, C);
        unit_rows_bwd(rt, wp, g, K, C, a->eps, 1.0, (float *)dw->data);
    }
    arena_release(&rt->dev, m);
}

/* norm.cu: the CUDA twins of src/ops/norm.c: frozen batch norm and GroupNorm on f32 CUDA
 * tensors, channels last (norm.h has the contracts), all on rt->stream.
 *
 * The heavy kernels share one geometry: a block of GN_TX channels × GN_TY pixel rows, so a
 * warp reads GN_TX consecutive channels of one pixel (coalesced for NHWC), and each thread
 * keeps its channel's parameters in registers while it walks its pixels.
 *
 * GroupNorm's sums are deterministic without atomics: per (image, pixel chunk, channel)
 * partial sums in double (the chunking depends only on the shape), then totals per
 * (image, channel) over the chunks in order, then per (image, group) over its channels in
 * order. The CPU sums in another order, also in double, so the statistics agree to far
 * below f32 rounding. Element-wise outputs round products before additions (__fmul_rn,
 * __dmul_rn, no FMA contraction), as the CPU reference does. */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"

#include "core/arena.h"
#include "ops/norm.h"
#include "ops/ops_internal.h"

#define GN_TX 32            /* channels per block */
#define GN_TY 8             /* pixel rows per block */
#define GN_MAX_CHUNKS 64    /* pixel chunks per image (fewer for small maps) */
#define GN_MIN_CHUNK 64     /* pixels per chunk, at least */
#define FBN_ROWS 64         /* frozen BN: rows per block */

/* Grid rows are limited to 65535 blocks: the channel tiles go there. */
static unsigned int channel_tiles(const char *op, int C) {
    CHECK(C <= 65535 * GN_TX, "%s: %d channels exceed the launch grid (at most %d)", op, C, 65535 * GN_TX);
    return (unsigned int)((C + GN_TX - 1) / GN_TX);
}

/* ---- frozen batch norm ---------------------------------------------------------------- */

/* x, y: [rows, C]; one thread per channel of a tile, FBN_ROWS / GN_TY rows each. */
__global__ static void frozen_bn_forward_kernel(int64_t rows, int C, const float *x, const float *scale,
                                                const float *shift, float *y) {
    int c = blockIdx.y * GN_TX + threadIdx.x;
    if (c >= C) return;
    float sc = scale[c], sh = shift[c];
    int64_t r1 = min(rows, ((int64_t)blockIdx.x + 1) * FBN_ROWS);
    for (int64_t r = (int64_t)blockIdx.x * FBN_ROWS + threadIdx.y; r < r1; r += GN_TY)
        y[r * C + c] = __fadd_rn(__fmul_rn(x[r * C + c], sc), sh);
}

/* dx += dy · scale[c] */
__global__ static void frozen_bn_backward_kernel(int64_t rows, int C, const float *scale, const float *dy, float *dx) {
    int c = blockIdx.y * GN_TX + threadIdx.x;
    if (c >= C) return;
    float sc = scale[c];
    int64_t r1 = min(rows, ((int64_t)blockIdx.x + 1) * FBN_ROWS);
    for (int64_t r = (int64_t)blockIdx.x * FBN_ROWS + threadIdx.y; r < r1; r += GN_TY)
        dx[r * C + c] = __fadd_rn(dx[r * C + c], __fmul_rn(dy[r * C + c], sc));
}

/* The CPU's frozen_bn_check on GPU tensors; shift may be NULL (the backward has none). */
static void frozen_bn_check_gpu(const char *op, const tensor *x, const tensor *scale, const tensor *shift) {
    ops_expect_f32_gpu(op, "x", x);
    const int C[1] = {x->shape[x->ndim - 1]};
    CHECK(scale != NULL, "%s: the scale is missing", op);
    tensor_expect(scale, DTYPE_F32, DEVICE_CUDA, C, 1, "frozen_bn scale [C]");
    if (shift) tensor_expect(shift, DTYPE_F32, DEVICE_CUDA, C, 1, "frozen_bn shift [C]");
}

extern "C" void frozen_bn_forward_gpu(runtime *rt, const tensor *x, const tensor *scale, const tensor *shift,
                                      tensor *y) {
    CHECK(shift != NULL, "frozen_bn: the shift is missing");
    frozen_bn_check_gpu("frozen_bn", x, scale, shift);
    CHECK(y != NULL, "frozen_bn: the output is missing");
    ops_expect_same_shape("frozen_bn output", y, x);
    int C = x->shape[x->ndim - 1];
    int64_t n = tensor_numel(x);
    if (n == 0) return;
    dim3 grid((unsigned int)((n / C + FBN_ROWS - 1) / FBN_ROWS), channel_tiles("frozen_bn", C));
    cudaStream_t st = (cudaStream_t)rt->stream;
    frozen_bn_forward_kernel<<<grid, dim3(GN_TX, GN_TY), 0, st>>>(n / C, C, (const float *)x->data,
                                                                   (const float *)scale->data,
                                                                   (const float *)shift->data, (float *)y->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

extern "C" void frozen_bn_backward_gpu(runtime *rt, const tensor *scale, const tensor *dy, tensor *dx) {
    if (!dx) return;
    CHECK(dy != NULL, "frozen_bn backward: dy is missing");
    frozen_bn_check_gpu("frozen_bn backward", dy, scale, NULL);
    ops_expect_same_shape("frozen_bn backward dx", dx, dy);
    int C = dy->shape[dy->ndim - 1];
    int64_t n = tensor_numel(dy);
    if (n == 0) return;
    dim3 grid((unsigned int)((n / C + FBN_ROWS - 1) / FBN_ROWS), channel_tiles("frozen_bn backward", C));
    cudaStream_t st = (cudaStream_t)rt->stream;
    frozen_bn_backward_kernel<<<grid, dim3(GN_TX, GN_TY), 0, st>>>(n / C, C, (const float *)scale->data,
                                                                    (const float *)dy->data, (float *)dx->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

/* ---- GroupNorm: geometry and reductions ------------------------------------------------- */

/* x [N, HW, C] in G groups of Cg channels; pixels in K chunks of `chunk` (K = 0 when HW = 0). */
typedef struct gn_geom {
    int N, C, G, Cg, K;
    int64_t HW, chunk;
} gn_geom;

static gn_geom gn_geometry(const char *op, const tensor *x, int G) {
    gn_geom g;
    g.N = x->shape[0], g.C = x->shape[3], g.G = G, g.Cg = g.C / G;
    g.HW = (int64_t)x->shape[1] * x->shape[2];
    g.chunk = (g.HW + GN_MAX_CHUNKS - 1) / GN_MAX_CHUNKS;
    if (g.chunk < GN_MIN_CHUNK) g.chunk = GN_MIN_CHUNK;
    g.K = (int)((g.HW + g.chunk - 1) / g.chunk);
    CHECK((int64_t)g.N * g.K <= INT32_MAX, "%s: %d images exceed the launch grid", op, g.N);
    channel_tiles(op, g.C);
    return g;
}

/* The block of the chunked kernels: x = image · K + chunk, y = channel tile. */
static dim3 gn_grid(const gn_geom &g) {
    return dim3((unsigned int)(g.N * g.K), (unsigned int)((g.C + GN_TX - 1) / GN_TX));
}

/* Sums v over threadIdx.y in the fixed order 0, 1, …; the result is valid where
 * threadIdx.y == 0. Every thread of the block must call it. */
__device__ static double sum_over_rows(double v) {
    __shared__ double sh[GN_TY][GN_TX];
    __syncthreads(); /* a previous call's readers are done */
    sh[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    double s = 0;
    if (threadIdx.y == 0)
        for (int j = 0; j < GN_TY; j++) s += sh[j][threadIdx.x];
    return s;
}

/* part[n][k][c] = Σ over the chunk's pixels of x, or of (x − mean[n, group of c])² when
 * mean is given (the CPU's two-pass variance). */
__global__ static void gn_partial_kernel(gn_geom g, const float *x, const double *mean, double *part) {
    int n = blockIdx.x / g.K, k = blockIdx.x % g.K, c = blockIdx.y * GN_TX + threadIdx.x;
    double acc = 0;
    if (c < g.C) {
        double mu = mean ? mean[(int64_t)n * g.G + c / g.Cg] : 0;
        int64_t p1 = min(g.HW, (k + 1) * g.chunk);
        const float *xn = x + (int64_t)n * g.HW * g.C + c;
        for (int64_t p = k * g.chunk + threadIdx.y; p < p1; p += GN_TY) {
            double v = xn[p * g.C];
            if (mean) v = (v - mu) * (v - mu);
            acc += v;
        }
    }
    double s = sum_over_rows(acc);
    if (threadIdx.y == 0 && c < g.C) part[((int64_t)n * g.K + k) * g.C + c] = s;
}

/* tot[n][c] = Σ_k part[n][k][c], k in order. One thread per (n, c). */
__global__ static void gn_chunk_total_kernel(gn_geom g, const double *part, double *tot) {
    int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= (int64_t)g.N * g.C) return;
    int64_t n = j / g.C, c = j % g.C;
    double s = 0;
    for (int k = 0; k < g.K; k++) s += part[(n * g.K + k) * g.C + c];
    tot[j] = s;
}

/* Σ over the channels of group ng (= n·G + g), in order, of tot[n][c] · (w ? w[c] : 1). */
__device__ static double gn_group_sum(const gn_geom &g, int64_t ng, const double *tot, const float *w) {
    int64_t n = ng / g.G, c0 = (ng % g.G) * g.Cg;
    double s = 0;
    for (int c = 0; c < g.Cg; c++) s += w ? tot[n * g.C + c0 + c] * (double)w[c0 + c] : tot[n * g.C + c0 + c];
    return s;
}

static void gn_chunk_total(runtime *rt, const gn_geom &g, const double *part, double *tot) {
    int64_t n = (int64_t)g.N * g.C;
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    gn_chunk_total_kernel<<<cuda_blocks(n, 256), 256, 0, st>>>(g, part, tot);
    KERNEL_CHECK(rt->debug_sync, st);
}

/* ---- GroupNorm forward ------------------------------------------------------------------- */

__global__ static void gn_mean_kernel(gn_geom g, const double *tot, double *mean) {
    int64_t ng = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (ng >= (int64_t)g.N * g.G) return;
    mean[ng] = gn_group_sum(g, ng, tot, NULL) / ((double)g.HW * g.Cg);
}

/* stats[ng] = (mean, rstd) rounded to f32; the normalisation reads them back from there. */
__global__ static void gn_stats_kernel(gn_geom g, double eps, const double *tot, const double *mean, float *stats) {
    int64_t ng = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (ng >= (int64_t)g.N * g.G) return;
    double rstd = 1.0 / sqrt(gn_group_sum(g, ng, tot, NULL) / ((double)g.HW * g.Cg) + eps);
    stats[2 * ng] = (float)mean[ng];
    stats[2 * ng + 1] = (float)rstd;
}

/* y = (x − mean)·rstd·γ + β in double from the stored f32 statistics, as the CPU. */
__global__ static void gn_normalise_kernel(gn_geom g, const float *x, const float *stats, const float *gamma,
                                           const float *beta, float *y) {
    int n = blockIdx.x / g.K, k = blockIdx.x % g.K, c = blockIdx.y * GN_TX + threadIdx.x;
    if (c >= g.C) return;
    int64_t ng = (int64_t)n * g.G + c / g.Cg;
    double mean = stats[2 * ng], rstd = stats[2 * ng + 1];
    double gm = gamma ? gamma[c] : 1, bt = gamma ? beta[c] : 0;
    int64_t p1 = min(g.HW, (k + 1) * g.chunk), off = (int64_t)n * g.HW * g.C + c;
    for (int64_t p = k * g.chunk + threadIdx.y; p < p1; p += GN_TY) {
        double v = __dmul_rn((double)x[off + p * g.C] - mean, rstd);
        if (gamma) v = __dadd_rn(__dmul_rn(v, gm), bt);
        y[off + p * g.C] = (float)v;
    }
}

/* The CPU's group_norm_check on GPU tensors. */
static void gn_check_gpu(const char *op, const group_norm_args *a, const tensor *x, const tensor *gamma,
                         const tensor *beta) {
    char s[128];
    ops_expect_f32_gpu(op, "x", x);
    CHECK(x->ndim == 4, "%s: x must be NHWC, got %s", op, tensor_str(x, s, sizeof s));
    const int C[1] = {x->shape[3]};
    CHECK(a->groups > 0 && C[0] % a->groups == 0, "%s: %d channels do not split into %d groups", op, C[0],
          a->groups);
    CHECK(a->eps > 0, "%s: eps %g must be positive", op, a->eps);
    if (gamma) tensor_expect(gamma, DTYPE_F32, DEVICE_CUDA, C, 1, "group_norm gamma [C]");
    if (beta) tensor_expect(beta, DTYPE_F32, DEVICE_CUDA, C, 1, "group_norm beta [C]");
    CHECK(!gamma == !beta, "%s: gamma and beta come together", op);
}

static void gn_expect_stats(const tensor *x, const group_norm_args *a, const tensor *stats) {
    const int want[3] = {x->shape[0], a->groups, 2}; /* TSHAPE is C only (compound literal) */
    CHECK(stats != NULL, "group_norm: the stats are missing");
    tensor_expect(stats, DTYPE_F32, DEVICE_CUDA, want, 3, "group_norm stats [N,G,2]");
}

/* Kernels: Σx per chunk → per (n, c) → mean per group; Σ(x − mean)² likewise → stats;
 * then the normalisation. Scratch (rt->dev): N·K·C + N·C + N·G doubles. */
extern "C" void group_norm_forward_gpu(runtime *rt, const group_norm_args *a, const tensor *x, const tensor *gamma,
                                       const tensor *beta, tensor *y, tensor *stats) {
    gn_check_gpu("group_norm", a, x, gamma, beta);
    CHECK(y != NULL, "group_norm: the output is missing");
    ops_expect_same_shape("group_norm output", y, x);
    gn_expect_stats(x, a, stats);
    gn_geom g = gn_geometry("group_norm", x, a->groups);
    int64_t NG = (int64_t)g.N * g.G;
    if (NG == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    arena_mark m = arena_get_mark(&rt->dev);
    double *part = (double *)arena_alloc(&rt->dev, ((size_t)g.N * g.K * g.C + 1) * sizeof(double));
    double *tot = (double *)arena_alloc(&rt->dev, ((size_t)g.N * g.C + 1) * sizeof(double));
    double *mean = (double *)arena_alloc(&rt->dev, (size_t)NG * sizeof(double));
    int chunked = g.K > 0 && g.C > 0; /* else every sum is empty: mean = rstd = NaN, as the CPU */
    const float *xd = (const float *)x->data;
    if (chunked) {
        gn_partial_kernel<<<gn_grid(g), dim3(GN_TX, GN_TY), 0, st>>>(g, xd, NULL, part);
        KERNEL_CHECK(rt->debug_sync, st);
    }
    gn_chunk_total(rt, g, part, tot);
    gn_mean_kernel<<<cuda_blocks(NG, 256), 256, 0, st>>>(g, tot, mean);
    KERNEL_CHECK(rt->debug_sync, st);
    if (chunked) {
        gn_partial_kernel<<<gn_grid(g), dim3(GN_TX, GN_TY), 0, st>>>(g, xd, mean, part);
        KERNEL_CHECK(rt->debug_sync, st);
    }
    gn_chunk_total(rt, g, part, tot);
    gn_stats_kernel<<<cuda_blocks(NG, 256), 256, 0, st>>>(g, a->eps, tot, mean, (float *)stats->data);
    KERNEL_CHECK(rt->debug_sync, st);
    if (chunked) {
        gn_normalise_kernel<<<gn_grid(g), dim3(GN_TX, GN_TY), 0, st>>>(
            g, xd, (const float *)stats->data, gamma ? (const float *)gamma->data : NULL,
            beta ? (const float *)beta->data : NULL, (float *)y->data);
        KERNEL_CHECK(rt->debug_sync, st);
    }
    /* later users of the scratch are queued on the same stream */
    arena_release(&rt->dev, m);
}

/* ---- GroupNorm backward ------------------------------------------------------------------ */

/* With x̂ = (x − mean)·rstd: pdy[n][k][c] = Σ dy and pdyx[n][k][c] = Σ dy·x̂ over the chunk. */
__global__ static void gn_backward_partial_kernel(gn_geom g, const float *x, const float *stats, const float *dy,
                                                  double *pdy, double *pdyx) {
    int n = blockIdx.x / g.K, k = blockIdx.x % g.K, c = blockIdx.y * GN_TX + threadIdx.x;
    double sd = 0, sdx = 0;
    if (c < g.C) {
        int64_t ng = (int64_t)n * g.G + c / g.Cg;
        double mean = stats[2 * ng], rstd = stats[2 * ng + 1];
        int64_t p1 = min(g.HW, (k + 1) * g.chunk), off = (int64_t)n * g.HW * g.C + c;
        for (int64_t p = k * g.chunk + threadIdx.y; p < p1; p += GN_TY) {
            double d = dy[off + p * g.C];
            sd += d;
            sdx += d * (((double)x[off + p * g.C] - mean) * rstd);
        }
    }
    double s1 = sum_over_rows(sd), s2 = sum_over_rows(sdx);
    if (threadIdx.y == 0 && c < g.C) {
        pdy[((int64_t)n * g.K + k) * g.C + c] = s1;
        pdyx[((int64_t)n * g.K + k) * g.C + c] = s2;
    }
}

/* Per group, with g = dy·γ: mg = mean(g) = Σ_c γ_c Σ dy / M, mgx = mean(g·x̂) likewise. */
__global__ static void gn_group_grad_kernel(gn_geom g, const float *gamma, const double *tdy, const double *tdyx,
                                            double *mg, double *mgx) {
    int64_t ng = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (ng >= (int64_t)g.N * g.G) return;
    double M = (double)g.HW * g.Cg;
    mg[ng] = gn_group_sum(g, ng, tdy, gamma) / M;
    mgx[ng] = gn_group_sum(g, ng, tdyx, gamma) / M;
}

/* dx += rstd · (g − mg − x̂·mgx), computed in double as the CPU. */
__global__ static void gn_dx_kernel(gn_geom g, const float *x, const float *gamma, const float *stats,
                                    const float *dy, const double *mg, const double *mgx, float *dx) {
    int n = blockIdx.x / g.K, k = blockIdx.x % g.K, c = blockIdx.y * GN_TX + threadIdx.x;
    if (c >= g.C) return;
    int64_t ng = (int64_t)n * g.G + c / g.Cg;
    double mean = stats[2 * ng], rstd = stats[2 * ng + 1], m1 = mg[ng], m2 = mgx[ng];
    double gm = gamma ? gamma[c] : 1;
    int64_t p1 = min(g.HW, (k + 1) * g.chunk), off = (int64_t)n * g.HW * g.C + c;
    for (int64_t p = k * g.chunk + threadIdx.y; p < p1; p += GN_TY) {
        int64_t i = off + p * g.C;
        double xh = __dmul_rn((double)x[i] - mean, rstd), d = dy[i];
        double gv = gamma ? __dmul_rn(d, gm) : d;
        dx[i] += (float)__dmul_rn(rstd, gv - m1 - __dmul_rn(xh, m2));
    }
}

/* dγ[c] += Σ_n tdyx[n][c], dβ[c] += Σ_n tdy[n][c], n in order: the per-image partial sums
 * are combined by one thread per channel, so no atomics and the same result every run. */
__global__ static void gn_param_grad_kernel(gn_geom g, const double *tdy, const double *tdyx, float *dgamma,
                                            float *dbeta) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= g.C) return;
    double sg = 0, sb = 0;
    for (int64_t n = 0; n < g.N; n++) {
        sg += tdyx[n * g.C + c];
        sb += tdy[n * g.C + c];
    }
    if (dgamma) dgamma[c] += (float)sg;
    if (dbeta) dbeta[c] += (float)sb;
}

static void gn_backward_check(const group_norm_args *a, const tensor *x, const tensor *gamma, const tensor *stats,
                              const tensor *dy, const tensor *dx, const tensor *dgamma, const tensor *dbeta) {
    gn_check_gpu("group_norm backward", a, x, gamma, gamma);
    CHECK(dy != NULL, "group_norm backward: dy is missing");
    ops_expect_same_shape("group_norm backward dy", dy, x);
    if (dx) ops_expect_same_shape("group_norm backward dx", dx, x);
    const int C[1] = {x->shape[3]};
    if (dgamma) tensor_expect(dgamma, DTYPE_F32, DEVICE_CUDA, C, 1, "group_norm dgamma [C]");
    if (dbeta) tensor_expect(dbeta, DTYPE_F32, DEVICE_CUDA, C, 1, "group_norm dbeta [C]");
    gn_expect_stats(x, a, stats);
}

/* Kernels: chunk partials of Σdy and Σdy·x̂ → per (n, c) totals → per-group means of g and
 * g·x̂ → dx; dγ, dβ from the per-(n, c) totals. Scratch: 2·(N·K·C + N·C + N·G) doubles. */
extern "C" void group_norm_backward_gpu(runtime *rt, const group_norm_args *a, const tensor *x, const tensor *gamma,
                                        const tensor *stats, const tensor *dy, tensor *dx, tensor *dgamma,
                                        tensor *dbeta) {
    gn_backward_check(a, x, gamma, stats, dy, dx, dgamma, dbeta);
    gn_geom g = gn_geometry("group_norm backward", x, a->groups);
    int64_t NG = (int64_t)g.N * g.G, NC = (int64_t)g.N * g.C, NKC = NC * g.K;
    if (NC == 0 || (!dx && !dgamma && !dbeta)) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    arena_mark m = arena_get_mark(&rt->dev);
    double *pdy = (double *)arena_alloc(&rt->dev, (size_t)(2 * NKC + 2 * NC + 2 * NG + 1) * sizeof(double));
    double *pdyx = pdy + NKC, *tdy = pdyx + NKC, *tdyx = tdy + NC, *mg = tdyx + NC, *mgx = mg + NG;
    const float *xd = (const float *)x->data, *sd = (const float *)stats->data, *dyd = (const float *)dy->data;
    const float *gd = gamma ? (const float *)gamma->data : NULL;
    if (g.K > 0) {
        gn_backward_partial_kernel<<<gn_grid(g), dim3(GN_TX, GN_TY), 0, st>>>(g, xd, sd, dyd, pdy, pdyx);
        KERNEL_CHECK(rt->debug_sync, st);
    }
    gn_chunk_total(rt, g, pdy, tdy);
    gn_chunk_total(rt, g, pdyx, tdyx);
    if (dx && g.K > 0) {
        gn_group_grad_kernel<<<cuda_blocks(NG, 256), 256, 0, st>>>(g, gd, tdy, tdyx, mg, mgx);
        KERNEL_CHECK(rt->debug_sync, st);
        gn_dx_kernel<<<gn_grid(g), dim3(GN_TX, GN_TY), 0, st>>>(g, xd, gd, sd, dyd, mg, mgx, (float *)dx->data);
        KERNEL_CHECK(rt->debug_sync, st);
    }
    if (dgamma || dbeta) {
        gn_param_grad_kernel<<<cuda_blocks(g.C, 256), 256, 0, st>>>(g, tdy, tdyx,
                                                                     dgamma ? (float *)dgamma->data : NULL,
                                                                     dbeta ? (float *)dbeta->data : NULL);
        KERNEL_CHECK(rt->debug_sync, st);
    }
    arena_release(&rt->dev, m);
}

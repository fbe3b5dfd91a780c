/* bench_ops.c: conv2d forward and backward rates on the ResNet-50 layer shapes of an
 * 800×1344 input, batch 1 (detectron2's R50: stride in the first 1×1 of a stage), f32 on
 * the CPU, next to the machine's sgemm rate measured the same way (4096³, same threads,
 * median of several runs). Goal (issue 3): forward 3×3 convolutions at >= 60% of sgemm.
 * "GEMM GF/s" is the convolution's GEMM alone (see gemm_only_rate). When a GPU is usable the
 * same table follows for the cuDNN twins (TF32 off), against cuBLAS sgemm.
 * Prints tables; never fails on a number (`make bench`). */
#include "core/arena.h"
#include "core/check.h"
#include "core/runtime.h"
#include "ops/conv.h"
#include "ops/linear.h"
#include "ops/ops_internal.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPS 5

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill(float *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
}

static double sgemm_rate(int n) {
    float *a = malloc(sizeof *a * n * n), *b = malloc(sizeof *b * n * n), *c = malloc(sizeof *c * n * n);
    CHECK(a && b && c, "out of memory for the %d^3 sgemm", n);
    fill(a, (size_t)n * n, 1), fill(b, (size_t)n * n, 2);
    double t[REPS];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n); /* warm-up */
    for (int r = 0; r < REPS; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        t[r] = now_s() - t0;
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * (double)n / median(t, REPS) * 1e-9;
}

/* The GEMM an im2col convolution amounts to, alone: y[P, K] = col[P, RSC] · w[K, RSC]ᵀ in one
 * call on a ready-made col (median of REPS). Its rate next to the convolution's separates
 * the im2col cost from the GEMM shape's own efficiency (narrow K, short RSC). */
static double gemm_only_rate(int P, int K, int RSC) {
    float *a = malloc(sizeof *a * (size_t)P * RSC), *b = malloc(sizeof *b * (size_t)K * RSC);
    float *c = malloc(sizeof *c * (size_t)P * K);
    CHECK(a && b && c, "out of memory for a %dx%dx%d sgemm", P, K, RSC);
    fill(a, (size_t)P * RSC, 6), fill(b, (size_t)K * RSC, 7);
    double t[REPS];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, K, RSC, 1, a, RSC, b, RSC, 0, c, K);
    for (int r = 0; r < REPS; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, K, RSC, 1, a, RSC, b, RSC, 0, c, K);
        t[r] = now_s() - t0;
    }
    free(a), free(b), free(c);
    return 2.0 * P * (double)K * RSC / median(t, REPS) * 1e-9;
}

typedef struct layer {
    const char *name;
    int count;        /* occurrences in R50 */
    int H, W, C, K, k, stride, pad;
    int need_dx;      /* the stem's input is the image: no dx */
} layer;

/* R50 at 800×1344 (reference/architecture.md §2, §12.2). Input sizes are the layer's input. */
static const layer layers[] = {
    {"stem 7x7 s2", 1, 800, 1344, 3, 64, 7, 2, 3, 0},
    {"res2 1x1 64-64", 1, 200, 336, 64, 64, 1, 1, 0, 1},
    {"res2 3x3 64", 3, 200, 336, 64, 64, 3, 1, 1, 1},
    {"res2 1x1 64-256", 4, 200, 336, 64, 256, 1, 1, 0, 1}, /* 3 blocks + shortcut */
    {"res2 1x1 256-64", 2, 200, 336, 256, 64, 1, 1, 0, 1},
    {"res3 1x1 256-128 s2", 1, 200, 336, 256, 128, 1, 2, 0, 1},
    {"res3 3x3 128", 4, 100, 168, 128, 128, 3, 1, 1, 1},
    {"res3 1x1 128-512", 4, 100, 168, 128, 512, 1, 1, 0, 1},
    {"res3 short 256-512 s2", 1, 200, 336, 256, 512, 1, 2, 0, 1},
    {"res3 1x1 512-128", 3, 100, 168, 512, 128, 1, 1, 0, 1},
    {"res4 1x1 512-256 s2", 1, 100, 168, 512, 256, 1, 2, 0, 1},
    {"res4 3x3 256", 6, 50, 84, 256, 256, 3, 1, 1, 1},
    {"res4 1x1 256-1024", 6, 50, 84, 256, 1024, 1, 1, 0, 1},
    {"res4 short 512-1024 s2", 1, 100, 168, 512, 1024, 1, 2, 0, 1},
    {"res4 1x1 1024-256", 5, 50, 84, 1024, 256, 1, 1, 0, 1},
    {"res5 1x1 1024-512 s2", 1, 50, 84, 1024, 512, 1, 2, 0, 1},
    {"res5 3x3 512", 3, 25, 42, 512, 512, 3, 1, 1, 1},
    {"res5 1x1 512-2048", 3, 25, 42, 512, 2048, 1, 1, 0, 1},
    {"res5 short 1024-2048 s2", 1, 50, 84, 1024, 2048, 1, 2, 0, 1},
    {"res5 1x1 2048-512", 2, 25, 42, 2048, 512, 1, 1, 0, 1},
};

/* A tensor on device d filled with fill()'s values (seed); with a gradient buffer when
 * param is set. */
static tensor bench_tensor(device d, const int *shape, int ndim, unsigned seed, int param) {
    tensor h = tensor_alloc(DTYPE_F32, DEVICE_CPU, shape, ndim);
    fill(h.data, (size_t)tensor_numel(&h), seed);
    tensor t = param ? tensor_alloc_param(DTYPE_F32, d, shape, ndim, "bench") : tensor_alloc(DTYPE_F32, d, shape, ndim);
    tensor_copy(&t, &h);
    tensor_free(&h);
    return t;
}

static void sync_if_gpu(const runtime *rt) {
    if (rt->device == DEVICE_CUDA) gpu_synchronize();
}

/* The reference rate on rt's device: sgemm 4096³ (OpenBLAS; on the GPU cuBLAS through
 * linear_forward_gpu, FMA math), median of REPS. */
static double peak_rate(runtime *rt) {
    if (rt->device == DEVICE_CPU) return sgemm_rate(4096);
    tensor a = bench_tensor(rt->device, TSHAPE(4096, 4096), 1, 0), b = bench_tensor(rt->device, TSHAPE(4096, 4096), 2, 0);
    tensor c = tensor_alloc(DTYPE_F32, rt->device, TSHAPE(4096, 4096));
    double t[REPS];
    OPS_CALL(&a, linear_forward, rt, &a, &b, NULL, &c);
    for (int r = 0; r < REPS; r++) {
        sync_if_gpu(rt);
        double t0 = now_s();
        OPS_CALL(&a, linear_forward, rt, &a, &b, NULL, &c);
        sync_if_gpu(rt);
        t[r] = now_s() - t0;
    }
    tensor_free(&a), tensor_free(&b), tensor_free(&c);
    return 2.0 * 4096.0 * 4096.0 * 4096.0 / median(t, REPS) * 1e-9;
}

static void bench_table(runtime *rt) {
    int cpu = rt->device == DEVICE_CPU;
    double peak = peak_rate(rt);
    if (cpu)
        printf("conv2d on the CPU, f32, NHWC/KRSC, im2col + OpenBLAS sgemm, %d threads, batch 1, 800x1344 input\n",
               rt->threads);
    else
        printf("\nconv2d on %s, f32, NHWC/KRSC, cuDNN (FMA math: TF32 off), batch 1, 800x1344 input\n", rt->device_desc);
    printf("sgemm 4096^3, median of %d: %.1f GFLOP/s (the 100%% below)\n\n", REPS, peak);
    printf("%-24s %3s %-17s %7s %9s %9s %6s %9s %9s %6s\n", "layer", "n", "out HxWxK", "GFLOP", "fwd ms",
           "fwd GF/s", "%sgemm", "GEMM GF/s", "bwd GF/s", "%sgemm");
    double tot_fwd_t = 0, tot_fwd_f = 0, tot_bwd_t = 0, tot_bwd_f = 0, f33 = 0, t33 = 0;
    for (size_t li = 0; li < sizeof layers / sizeof layers[0]; li++) {
        const layer *L = &layers[li];
        int Ho = conv2d_out_size(L->H, L->k, L->stride, L->pad), Wo = conv2d_out_size(L->W, L->k, L->stride, L->pad);
        tensor x = bench_tensor(rt->device, TSHAPE(1, L->H, L->W, L->C), 3, 1);
        tensor w = bench_tensor(rt->device, TSHAPE(L->K, L->k, L->k, L->C), 4, 1);
        tensor y = tensor_alloc(DTYPE_F32, rt->device, TSHAPE(1, Ho, Wo, L->K));
        tensor dy = bench_tensor(rt->device, TSHAPE(1, Ho, Wo, L->K), 5, 0);
        tensor dx = x, dw = w;
        dx.data = x.grad, dw.data = w.grad;
        conv2d_args a = {L->stride, L->pad};
        double flop = 2.0 * Ho * Wo * (double)L->K * L->C * L->k * L->k;
        double tf[REPS], tb[REPS];
        /* warm-up: arena blocks, pages, cuDNN's algorithm choice */
        OPS_CALL(&x, conv2d_forward, rt, &a, &x, &w, NULL, &y);
        OPS_CALL(&x, conv2d_backward, rt, &a, &x, &w, &dy, L->need_dx ? &dx : NULL, &dw, NULL);
        for (int r = 0; r < REPS; r++) {
            sync_if_gpu(rt);
            double t0 = now_s();
            OPS_CALL(&x, conv2d_forward, rt, &a, &x, &w, NULL, &y);
            sync_if_gpu(rt);
            tf[r] = now_s() - t0;
            t0 = now_s();
            OPS_CALL(&x, conv2d_backward, rt, &a, &x, &w, &dy, L->need_dx ? &dx : NULL, &dw, NULL);
            sync_if_gpu(rt);
            tb[r] = now_s() - t0;
        }
        double mf = median(tf, REPS), mb = median(tb, REPS), bflop = flop * (L->need_dx ? 2 : 1);
        char out[32], gemm[32] = "-";
        snprintf(out, sizeof out, "%dx%dx%d", Ho, Wo, L->K);
        if (cpu) snprintf(gemm, sizeof gemm, "%.1f", gemm_only_rate(Ho * Wo, L->K, L->k * L->k * L->C));
        printf("%-24s %3d %-17s %7.2f %9.2f %9.1f %5.0f%% %9s %9.1f %5.0f%%\n", L->name, L->count, out, flop * 1e-9,
               mf * 1e3, flop / mf * 1e-9, 100 * flop / mf * 1e-9 / peak, gemm, bflop / mb * 1e-9,
               100 * bflop / mb * 1e-9 / peak);
        tot_fwd_t += L->count * mf, tot_fwd_f += L->count * flop;
        tot_bwd_t += L->count * mb, tot_bwd_f += L->count * bflop;
        if (L->k == 3) t33 += L->count * mf, f33 += L->count * flop;
        tensor_free(&x), tensor_free(&w), tensor_free(&y), tensor_free(&dy);
        runtime_step_end(rt);
    }
    printf("\nR50 backbone convs, weighted by count: forward %.1f GFLOP in %.3f s = %.1f GFLOP/s (%.0f%% of sgemm)\n",
           tot_fwd_f * 1e-9, tot_fwd_t, tot_fwd_f / tot_fwd_t * 1e-9, 100 * tot_fwd_f / tot_fwd_t * 1e-9 / peak);
    printf("  3x3 convs (CPU goal >= 60%% of sgemm): %.1f GFLOP/s = %.0f%%\n", f33 / t33 * 1e-9,
           100 * f33 / t33 * 1e-9 / peak);
    printf("  backward (dx + dw; the stem dw only): %.1f GFLOP in %.3f s = %.1f GFLOP/s (%.0f%% of sgemm)\n",
           tot_bwd_f * 1e-9, tot_bwd_t, tot_bwd_f / tot_bwd_t * 1e-9, 100 * tot_bwd_f / tot_bwd_t * 1e-9 / peak);
    printf("  arena peak %.1f MiB (scratch: im2col on the CPU, cuDNN workspace on the GPU)\n",
           (cpu ? rt->host.peak : rt->dev.peak) / 1048576.0);
}

int main(int argc, char **argv) {
    runtime_config cfg = runtime_config_default();
    cfg.device = "cpu";
    cfg.quiet = 1;
    runtime rt;
    runtime_init(&rt, &cfg);
    bench_table(&rt);
    runtime_free(&rt);
    gpu_info info;
    char why[256];
    if (gpu_built() && gpu_probe(0, &info, why, sizeof why)) {
        cfg.device = "cuda";
        runtime_init(&rt, &cfg);
        bench_table(&rt);
        runtime_free(&rt);
    } else {
        printf("\nconv2d on the GPU: skipped (%s)\n", gpu_built() ? why : "a build without CUDA");
    }
    (void)argc, (void)argv;
    return 0;
}

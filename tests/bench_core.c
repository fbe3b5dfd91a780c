/* bench_core.c: core benchmarks (`make bench`): CPU sgemm at the thread counts of the
 * machine, RNG fill rate (CPU, and GPU when present), arena allocate/reset rate. Prints
 * tables; never fails on a number. */
#include "core/arena.h"
#include "core/check.h"
#include "core/rng.h"
#include "core/runtime.h"
#include "core/selfcheck.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void bench_sgemm(int max_threads) {
    /* thread counts: 1, 2, 4, ... and the machine's own count */
    int counts[16], nc = 0;
    for (int t = 1; t < max_threads && nc < 15; t *= 2) counts[nc++] = t;
    counts[nc++] = max_threads;
    printf("\nsgemm (OpenBLAS OpenMP build, f32, best of 5), GFLOP/s\n%-22s", "M x N x K");
    for (int i = 0; i < nc; i++) printf(" %8d thr", counts[i]);
    printf("\n");
    /* square sizes, and the shapes of a 3x3 conv as im2col GEMM on P2 of an 800x1344 image
     * (M = 200*336 pixels, N = 256 out channels, K = 3*3*256) at reduced M */
    int shapes[][3] = {{256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {2048, 2048, 2048}, {8192, 256, 2304}};
    for (int s = 0; s < 5; s++) {
        char label[64];
        snprintf(label, sizeof label, "%d x %d x %d", shapes[s][0], shapes[s][1], shapes[s][2]);
        printf("%-22s", label);
        for (int i = 0; i < nc; i++) {
            omp_set_num_threads(counts[i]);
            openblas_set_num_threads(counts[i]);
            printf(" %12.1f", selfcheck_sgemm_gflops(shapes[s][0], shapes[s][1], shapes[s][2], 5, NULL));
        }
        printf("\n");
    }
    omp_set_num_threads(max_threads);
    openblas_set_num_threads(max_threads);
}

static void bench_rng(int gpu) {
    enum { N = 1 << 24 };
    float *h = malloc(N * sizeof *h);
    rng r = rng_make(1, 0);
    rng_uniform_cpu(&r, h, N, 0, 1); /* warm-up: first touch of the pages, OpenMP start-up */
    printf("\nRNG fill, %d values, Gvalues/s\n%-10s %10s %10s\n", N, "device", "uniform", "normal");
    double t0 = now_s();
    rng_uniform_cpu(&r, h, N, 0, 1);
    double tu = now_s() - t0;
    t0 = now_s();
    rng_normal_cpu(&r, h, N, 0, 1);
    double tn = now_s() - t0;
    printf("%-10s %10.3f %10.3f   (%d threads)\n", "cpu", N / tu * 1e-9, N / tn * 1e-9, omp_get_max_threads());
    if (gpu) {
        float *d = gpu_malloc(N * sizeof(float), "bench");
        rng_uniform_gpu(&r, d, N, 0, 1); /* warm-up */
        gpu_synchronize();
        t0 = now_s();
        for (int i = 0; i < 10; i++) rng_uniform_gpu(&r, d, N, 0, 1);
        gpu_synchronize();
        tu = (now_s() - t0) / 10;
        t0 = now_s();
        for (int i = 0; i < 10; i++) rng_normal_gpu(&r, d, N, 0, 1);
        gpu_synchronize();
        tn = (now_s() - t0) / 10;
        printf("%-10s %10.3f %10.3f\n", "cuda", N / tu * 1e-9, N / tn * 1e-9);
        gpu_free(d);
    }
    free(h);
}

static void bench_arena(void) {
    arena a;
    arena_init(&a, "host", DEVICE_CPU, 64 << 20, 0);
    enum { STEPS = 2000, PER_STEP = 500 };
    double t0 = now_s();
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < PER_STEP; i++) arena_alloc(&a, 4096 + (size_t)(i % 7) * 1000);
        arena_reset(&a);
    }
    double t = now_s() - t0;
    printf("\narena: %d allocations + %d resets in %.3f s: %.1f ns per allocation, %lld blocks\n",
           STEPS * PER_STEP, STEPS, t, t / (STEPS * PER_STEP) * 1e9, (long long)a.block_allocs);
    arena_free(&a);
}

int main(void) {
    runtime_config cfg = runtime_config_default();
    runtime rt;
    runtime_init(&rt, &cfg);
    printf("bench_core: device %s (%s), %d threads\n", rt.device_desc, rt.device_reason, rt.threads);
    bench_sgemm(rt.threads);
    bench_rng(rt.device == DEVICE_CUDA);
    bench_arena();
    runtime_free(&rt);
    return 0;
}

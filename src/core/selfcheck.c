/* selfcheck.c: a short, real check of the build and the machine: the device choice, the
 * libraries (OpenBLAS OpenMP build, cJSON, TurboJPEG), the RNG's known answers, the arena,
 * and the CPU's sgemm rate. */
#include "selfcheck.h"
#include "arena.h"
#include "check.h"
#include "log.h"
#include "philox.h"
#include "runtime.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <turbojpeg.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double selfcheck_sgemm_gflops(int m, int n, int k, int reps, double *max_rel_err) {
    float *a = malloc((size_t)m * k * sizeof *a), *b = malloc((size_t)k * n * sizeof *b);
    float *c = malloc((size_t)m * n * sizeof *c);
    CHECK(a && b && c, "out of memory for a %dx%dx%d sgemm", m, n, k);
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (size_t i = 0; i < (size_t)k * n; i++) b[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    if (max_rel_err) {
        *max_rel_err = -1;
        if ((double)m * n * k <= (double)(1 << 27)) {
            double worst = 0, scale = 0;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++) s += (double)a[(size_t)i * k + p] * b[(size_t)p * n + j];
                    worst = fmax(worst, fabs(s - c[(size_t)i * n + j]));
                    scale = fmax(scale, fabs(s));
                }
            *max_rel_err = worst / (scale > 0 ? scale : 1);
        }
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * m * n * k / best * 1e-9;
}

static int report(const char *what, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int report(const char *what, int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("  %-10s %s  ", what, ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    return ok ? 0 : 1;
}

static int check_cjson(void) {
    const char *text = "{\"categories\":[{\"id\":3,\"name\":\"aerosol_can\",\"frequency\":\"c\"}],\"n\":1.5}";
    cJSON *j = cJSON_Parse(text);
    int ok = j != NULL;
    const cJSON *cats = cJSON_GetObjectItemCaseSensitive(j, "categories");
    const cJSON *c0 = cJSON_GetArrayItem(cats, 0);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(c0, "name");
    ok = ok && cJSON_IsString(name) && strcmp(name->valuestring, "aerosol_can") == 0;
    char *back = ok ? cJSON_PrintUnformatted(j) : NULL;
    ok = ok && back && strcmp(back, text) == 0;
    free(back);
    cJSON_Delete(j);
    return report("cJSON", ok, "version %s, parse/print round trip", cJSON_Version());
}

static int check_turbojpeg(void) {
    enum { W = 64, H = 48 };
    unsigned char img[W * H * 3], out[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            unsigned char *p = img + 3 * (y * W + x);
            p[0] = (unsigned char)(x * 4), p[1] = (unsigned char)(y * 5), p[2] = (unsigned char)(128 + (x - y));
        }
    tjhandle enc = tjInitCompress(), dec = tjInitDecompress();
    unsigned char *jpeg = NULL;
    unsigned long size = 0;
    int ok = enc && dec && tjCompress2(enc, img, W, 0, H, TJPF_RGB, &jpeg, &size, TJSAMP_444, 95, 0) == 0;
    int w = 0, h = 0, sub = 0, cs = 0;
    ok = ok && tjDecompressHeader3(dec, jpeg, size, &w, &h, &sub, &cs) == 0 && w == W && h == H;
    ok = ok && tjDecompress2(dec, jpeg, size, out, W, 0, H, TJPF_RGB, 0) == 0;
    int worst = 0;
    for (int i = 0; ok && i < W * H * 3; i++) worst = abs(img[i] - out[i]) > worst ? abs(img[i] - out[i]) : worst;
    ok = ok && worst <= 8;
    if (jpeg) tjFree(jpeg);
    if (enc) tjDestroy(enc);
    if (dec) tjDestroy(dec);
    return report("TurboJPEG", ok, "64x48 RGB encode (q95, %lu bytes) + decode, max error %d/255", size, worst);
}

/* Random123's Philox4x32-10 known answer for counter 0, key 0 (tests/test_rng.c has all three). */
static int check_rng(void) {
    uint32_t ctr[4] = {0, 0, 0, 0}, key[2] = {0, 0}, out[4];
    philox4x32_10(ctr, key, out);
    int ok = out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu && out[3] == 0x9b00dbd8u;
    return report("RNG", ok, "Philox4x32-10 known-answer vector");
}

static int check_arena(void) {
    arena a;
    arena_init(&a, "host", DEVICE_CPU, 1 << 16, 0);
    int64_t after_first = 0;
    for (int step = 0; step < 4; step++) {
        for (int i = 0; i < 64; i++) arena_alloc(&a, 1000 + 997 * (size_t)(i % 5));
        arena_reset(&a);
        if (step == 0) after_first = a.block_allocs;
    }
    int ok = a.block_allocs == after_first && a.in_use == 0;
    report("arena", ok, "4 identical steps: %lld blocks after the first, %lld after the last; peak %zu KiB",
           (long long)after_first, (long long)a.block_allocs, a.peak >> 10);
    arena_free(&a);
    return ok ? 0 : 1;
}

int selfcheck_main(int argc, char **argv) {
    runtime_config cfg = runtime_config_default();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: maskrcnn selfcheck [--device auto|cpu|cuda] [--threads N]\n"
                   "Checks the build and the machine: device choice, OpenBLAS (OpenMP build), cJSON,\n"
                   "TurboJPEG, the RNG's known answers, the arena; then measures the CPU sgemm rate.\n");
            return 0;
        } else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            cfg.device = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            cfg.threads = atoi(argv[++i]);
            if (cfg.threads < 1) die("--threads needs a positive number, got '%s'", argv[i]);
        } else {
            die("selfcheck: unknown argument '%s' (see maskrcnn selfcheck --help)", argv[i]);
        }
    }
    double t0 = now_s();
    cfg.quiet = 1;
    runtime rt;
    runtime_init(&rt, &cfg);
    printf("maskrcnn selfcheck\n");
    printf("  build      CUDA %s%s%s\n", gpu_built() ? "yes: " : "no (CPU-only build)", gpu_build_desc(),
#ifdef MRC_DEBUG
           ", DEBUG"
#else
           ""
#endif
    );
    printf("  device     %s (%s)\n", rt.device_desc, rt.device_reason);
    int failed = 0;
    /* runtime_init has already stopped with a message if this is not the OpenMP build. */
    report("OpenBLAS", 1, "%s threading, %d threads: %s", runtime_blas_threading(), rt.threads,
           runtime_blas_config());
    failed += check_cjson();
    failed += check_turbojpeg();
    failed += check_rng();
    failed += check_arena();
    printf("\n  CPU sgemm (OpenBLAS, %d threads, best of 3)\n  %6s %10s %12s\n", rt.threads, "size", "GFLOP/s", "rel. error");
    int sizes[] = {256, 512, 1024, 2048};
    for (int i = 0; i < 4; i++) {
        double err;
        double gf = selfcheck_sgemm_gflops(sizes[i], sizes[i], sizes[i], 3, &err);
        if (err >= 0) {
            printf("  %6d %10.1f %12.2e\n", sizes[i], gf, err);
            if (!(err < 1e-5)) failed += report("sgemm", 0, "error %.2e against a double loop", err);
        } else {
            printf("  %6d %10.1f %12s\n", sizes[i], gf, "-");
        }
    }
    runtime_free(&rt);
    printf("\n%s in %.1f s\n", failed ? "selfcheck FAILED" : "selfcheck passed", now_s() - t0);
    return failed ? 1 : 0;
}

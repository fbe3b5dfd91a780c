/* bench_det.c: detection ops at LVIS sizes (issue 10), CPU (and GPU when one is usable:
 * not yet wired here; the GPU twins are listed in docs/gpu-pending.md):
 *   - RoIAlign over P2..P5 of an 800x1344 input, 256 channels: 512 box RoIs at 7x7 and 128
 *     mask RoIs at 14x14 (aligned, adaptive sampling), forward and backward;
 *   - RPN proposals: top-2000 per level of the 268,569 anchors, then NMS at 0.7 per level
 *     (batched by level);
 *   - LVIS inference: per-class NMS at 0.5 over 1000 boxes x 1203 classes with scores above
 *     1e-4 (about 1.2 M candidates in the worst case; here a realistic share is drawn).
 * Median of a few runs, one line each. Prints a table; never fails on a number. */
#include "core/runtime.h"
#include "ops/nms.h"
#include "ops/roi_align.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rs = 88172645463325252ull;
static float unif(float lo, float hi) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return lo + (hi - lo) * (float)((rs >> 11) * (1.0 / 9007199254740992.0));
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* n random boxes inside w x h, side lengths in [lo, hi] */
static void boxes(float *b, int n, float w, float h, float lo, float hi) {
    for (int i = 0; i < n; i++) {
        float bw = unif(lo, hi), bh = unif(lo, hi), x = unif(0, w - bw), y = unif(0, h - bh);
        b[4 * i] = x, b[4 * i + 1] = y, b[4 * i + 2] = x + bw, b[4 * i + 3] = y + bh;
    }
}

static void bench_roi(runtime *rt, int R, int out, const char *what) {
    static const int hs[4] = {200, 100, 50, 25}, ws[4] = {336, 168, 84, 42};
    tensor feats[4], grads[4];
    const tensor *fp[4];
    tensor *gp[4];
    for (int l = 0; l < 4; l++) {
        feats[l] = tensor_alloc(DTYPE_F32, DEVICE_CPU, (const int[]){1, hs[l], ws[l], 256}, 4);
        grads[l] = tensor_alloc(DTYPE_F32, DEVICE_CPU, (const int[]){1, hs[l], ws[l], 256}, 4);
        float *p = tensor_f32(&feats[l]);
        for (int64_t i = 0; i < tensor_numel(&feats[l]); i++) p[i] = unif(-1, 1);
        tensor_zero(&grads[l]);
        fp[l] = &feats[l], gp[l] = &grads[l];
    }
    tensor rois = tensor_alloc(DTYPE_F32, DEVICE_CPU, (const int[]){R, 5}, 2);
    float *b = malloc((size_t)R * 4 * sizeof(float));
    boxes(b, R, 1344, 800, 16, 700);
    for (int i = 0; i < R; i++) {
        tensor_f32(&rois)[5 * i] = 0;
        memcpy(tensor_f32(&rois) + 5 * i + 1, b + 4 * i, 4 * sizeof(float));
    }
    tensor y = tensor_alloc(DTYPE_F32, DEVICE_CPU, (const int[]){R, out, out, 256}, 4);
    tensor dy = tensor_alloc(DTYPE_F32, DEVICE_CPU, (const int[]){R, out, out, 256}, 4);
    for (int64_t i = 0; i < tensor_numel(&dy); i++) tensor_f32(&dy)[i] = unif(-1, 1);
    roi_align_args a = {out, out, 0, 1};
    double f[5], g[5];
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        roi_align_fpn_forward_cpu(rt, &a, fp, &rois, &y);
        double t1 = now_s();
        roi_align_fpn_backward_cpu(rt, &a, fp, &rois, &dy, gp);
        f[rep] = t1 - t0, g[rep] = now_s() - t1;
    }
    qsort(f, 5, sizeof *f, cmp_d), qsort(g, 5, sizeof *g, cmp_d);
    printf("  %-44s %10.1f %10.1f\n", what, 1e3 * f[2], 1e3 * g[2]);
    for (int l = 0; l < 4; l++) tensor_free(&feats[l]), tensor_free(&grads[l]);
    tensor_free(&rois), tensor_free(&y), tensor_free(&dy), free(b);
}

static double time_nms(runtime *rt, int n, int n_keys, double thr, int *kept) {
    tensor bx = tensor_alloc(DTYPE_F32, DEVICE_CPU, (const int[]){n, 4}, 2);
    tensor sc = tensor_alloc(DTYPE_F32, DEVICE_CPU, (const int[]){n}, 1);
    tensor keys = tensor_alloc(DTYPE_I32, DEVICE_CPU, (const int[]){n}, 1);
    tensor keep = tensor_alloc(DTYPE_I32, DEVICE_CPU, (const int[]){n}, 1);
    /* proposals cluster around objects: 60 objects, boxes jittered around them */
    float obj[60 * 4];
    boxes(obj, 60, 1344, 800, 20, 400);
    for (int i = 0; i < n; i++) {
        const float *o = obj + 4 * (i % 60);
        float j = (o[2] - o[0]) * 0.15f;
        float *p = tensor_f32(&bx) + 4 * i;
        p[0] = o[0] + unif(-j, j), p[1] = o[1] + unif(-j, j), p[2] = o[2] + unif(-j, j), p[3] = o[3] + unif(-j, j);
        tensor_f32(&sc)[i] = unif(0, 1);
        tensor_i32(&keys)[i] = n_keys > 1 ? (int)unif(0, (float)n_keys - 0.001f) : 0;
    }
    double t[3];
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_s();
        *kept = batched_nms_cpu(rt, &bx, &sc, n_keys > 1 ? &keys : NULL, thr, &keep);
        t[rep] = now_s() - t0;
    }
    qsort(t, 3, sizeof *t, cmp_d);
    tensor_free(&bx), tensor_free(&sc), tensor_free(&keys), tensor_free(&keep);
    return t[1];
}

int main(void) {
    runtime rt;
    runtime_config c = runtime_config_default();
    c.device = "cpu", c.quiet = 1;
    runtime_init(&rt, &c);
    printf("detection ops, CPU, %d threads (median of runs)\n", rt.threads);
    printf("  %-44s %10s %10s\n", "RoIAlign P2..P5 (800x1344, 256 ch)", "fwd ms", "bwd ms");
    bench_roi(&rt, 512, 7, "512 box RoIs -> 7x7");
    bench_roi(&rt, 128, 14, "128 mask RoIs -> 14x14");
    printf("  %-44s %10s %10s\n", "NMS", "ms", "kept");
    int kept;
    double t = time_nms(&rt, 5 * 2000, 5, 0.7, &kept);
    printf("  %-44s %10.1f %10d\n", "RPN: 5 levels x 2000, batched by level, 0.7", 1e3 * t, kept);
    t = time_nms(&rt, 200000, 1203, 0.5, &kept);
    printf("  %-44s %10.1f %10d\n", "inference: 200k candidates, 1203 classes, 0.5", 1e3 * t, kept);
    t = time_nms(&rt, 1200000, 1203, 0.5, &kept);
    printf("  %-44s %10.1f %10d\n", "inference worst case: 1.2M, 1203 classes, 0.5", 1e3 * t, kept);
    runtime_free(&rt);
    return 0;
}

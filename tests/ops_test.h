/* ops_test.h: helpers for the op tests (header only, on top of test.h).
 *
 * - ot_runtime: a quiet CPU runtime with a fixed thread count.
 * - ot_param / ot_const: f32 or f64 CPU tensors filled with seeded uniform values
 *   (ot_param: needs a gradient, owns a persistent one).
 * - OT_GRADCHECK: the finite-difference check of an op's backward, in double precision,
 *   through the tape: L = Σ y·r for a fixed random r; the tape's gradients of L with
 *   respect to every input that needs one are compared with central differences.
 *   The gradients start from a random pattern, which is subtracted afterwards: a backward
 *   that writes (=) where it must accumulate (+=) fails.
 *   Elements whose one-sided differences disagree (a kink of ReLU, max pool or L1 within
 *   h of the point) are skipped and counted; a check that skips more than a tenth of an
 *   input fails, so skipping cannot hide a wrong backward. */
#ifndef MRC_OPS_TEST_H
#define MRC_OPS_TEST_H

#include "test.h"

#include "core/check.h"
#include "core/runtime.h"
#include "core/tensor.h"

#include <stdint.h>
#include <string.h>

__attribute__((unused)) static runtime *ot_runtime(int threads) {
    static runtime rt;
    static int made = 0, made_threads = 0;
    if (made && made_threads == threads) return &rt;
    if (made) runtime_free(&rt);
    runtime_config c = runtime_config_default();
    c.device = "cpu";
    c.threads = threads;
    c.quiet = 1;
    runtime_init(&rt, &c);
    made = 1;
    made_threads = threads;
    return &rt;
}

/* splitmix64: a test-local generator, independent of the code under test */
static uint64_t ot_state = 0x9E3779B97F4A7C15ull;
__attribute__((unused)) static void ot_seed(uint64_t s) { ot_state = s * 0x9E3779B97F4A7C15ull + 1; }
__attribute__((unused)) static double ot_uniform(double lo, double hi) {
    uint64_t z = (ot_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * (double)(z >> 11) * 0x1.0p-53;
}

__attribute__((unused)) static double ot_get(const tensor *t, int64_t i) {
    return t->dtype == DTYPE_F64 ? ((double *)t->data)[i] : ((float *)t->data)[i];
}
__attribute__((unused)) static void ot_set(tensor *t, int64_t i, double v) {
    if (t->dtype == DTYPE_F64) ((double *)t->data)[i] = v;
    else ((float *)t->data)[i] = (float)v;
}
__attribute__((unused)) static double ot_grad_get(const tensor *t, int64_t i) {
    return t->dtype == DTYPE_F64 ? ((double *)t->grad)[i] : ((float *)t->grad)[i];
}

__attribute__((unused)) static void ot_fill(tensor *t, double lo, double hi) {
    for (int64_t i = 0; i < tensor_numel(t); i++) ot_set(t, i, ot_uniform(lo, hi));
}

__attribute__((unused)) static tensor *ot_param(dtype dt, const int *shape, int ndim, double lo, double hi) {
    tensor *t = (tensor *)malloc(sizeof *t);
    *t = tensor_alloc_param(dt, DEVICE_CPU, shape, ndim, "test input");
    ot_fill(t, lo, hi);
    return t;
}
__attribute__((unused)) static tensor *ot_const(dtype dt, const int *shape, int ndim, double lo, double hi) {
    tensor *t = (tensor *)malloc(sizeof *t);
    *t = tensor_alloc(dt, DEVICE_CPU, shape, ndim);
    if (dt == DTYPE_F32 || dt == DTYPE_F64) ot_fill(t, lo, hi);
    return t;
}
__attribute__((unused)) static void ot_free(tensor *t) {
    if (!t) return;
    tensor_free(t);
    free(t);
}

/* A copy of a tensor's values as doubles (caller frees). */
__attribute__((unused)) static double *ot_values(const tensor *t) {
    int64_t n = tensor_numel(t);
    double *v = (double *)malloc((size_t)(n ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = ot_get(t, i);
    return v;
}

/* Builds the op's output from the inputs; ctx carries the op's arguments. */
typedef tensor *(*ot_op_fn)(runtime *rt, tensor **in, const void *ctx);

__attribute__((unused)) static double ot_dot_r(const tensor *y, const double *r) {
    double s = 0;
    for (int64_t i = 0; i < tensor_numel(y); i++) s += ot_get(y, i) * r[i];
    return s;
}

__attribute__((unused)) static double ot_eval(runtime *rt, ot_op_fn f, tensor **in, const void *ctx, const double *r) {
    int keep = rt->tape.enabled;
    rt->tape.enabled = 0;
    double v = ot_dot_r(f(rt, in, ctx), r);
    rt->tape.enabled = keep;
    runtime_step_end(rt);
    return v;
}

/* Returns 1 when every input that needs a gradient passes. */
__attribute__((unused)) static int ot_gradcheck(const char *file, int line, const char *what, runtime *rt, ot_op_fn f, const void *ctx,
                        tensor **in, int nin, double h, double atol, double rtol) {
    int ok = 1;
    runtime_step_end(rt);
    double *pattern[16] = {0};
    CHECK(nin <= 16);
    for (int k = 0; k < nin; k++) {
        if (!in[k] || !in[k]->requires_grad || pattern[k]) continue;
        int64_t n = tensor_numel(in[k]);
        pattern[k] = (double *)malloc((size_t)n * sizeof(double));
        for (int64_t i = 0; i < n; i++) ((double *)in[k]->grad)[i] = pattern[k][i] = ot_uniform(-1, 1);
        for (int j = k + 1; j < nin; j++) /* the same tensor passed twice shares the pattern */
            if (in[j] == in[k]) pattern[j] = pattern[k];
    }
    tensor *y = f(rt, in, ctx);
    if (!y->requires_grad) {
        test_fail_at(file, line, "%s: the output does not need a gradient (nothing recorded)", what);
        runtime_step_end(rt);
        return 0;
    }
    int64_t ny = tensor_numel(y);
    double *r = (double *)malloc((size_t)ny * sizeof *r);
    for (int64_t i = 0; i < ny; i++) r[i] = ot_uniform(-1, 1);
    double *g = (double *)tensor_grad(rt, y);
    CHECK(y->dtype == DTYPE_F64, "gradient checks run in f64");
    memcpy(g, r, (size_t)ny * sizeof *r);
    tape_backward(&rt->tape, rt);
    runtime_step_end(rt);
    for (int k = 0; k < nin; k++) {
        if (!in[k] || !in[k]->requires_grad) continue;
        int dup = 0;
        for (int j = 0; j < k; j++) dup |= in[j] == in[k];
        if (dup) continue; /* checked once, with the sum of both uses */
        int64_t n = tensor_numel(in[k]);
        double *ana = (double *)malloc((size_t)n * sizeof *ana), *num = (double *)malloc((size_t)n * sizeof *num);
        int64_t skipped = 0;
        for (int64_t i = 0; i < n; i++) ana[i] = ot_grad_get(in[k], i) - pattern[k][i];
        for (int64_t i = 0; i < n; i++) {
            double keep = ot_get(in[k], i);
            ot_set(in[k], i, keep + h);
            double lp = ot_eval(rt, f, in, ctx, r);
            ot_set(in[k], i, keep - h);
            double lm = ot_eval(rt, f, in, ctx, r);
            ot_set(in[k], i, keep);
            double l0 = ot_eval(rt, f, in, ctx, r);
            num[i] = (lp - lm) / (2 * h);
            /* one-sided slopes that differ by more than smooth curvature allows: a kink */
            if (fabs((lp - l0) - (l0 - lm)) > 1e-3 * h * (1 + fabs(num[i]))) {
                num[i] = ana[i];
                skipped++;
            }
        }
        char label[256];
        snprintf(label, sizeof label, "%s: d/d(input %d)", what, k);
        if (!test_expect_close(file, line, label, ana, num, n, atol, rtol)) ok = 0;
        if (skipped * 10 > n) {
            test_fail_at(file, line, "%s: %ld of %ld elements sit on a kink; choose inputs away from kinks", label,
                         (long)skipped, (long)n);
            ok = 0;
        }
        free(ana);
        free(num);
        free(pattern[k]);
    }
    free(r);
    return ok;
}
#define OT_GRADCHECK(what, rt, f, ctx, in, nin, h, atol, rtol) \
    ot_gradcheck(__FILE__, __LINE__, what, rt, f, ctx, in, nin, h, atol, rtol)

/* Bit-identical comparison of two buffers; reports the first difference. */
__attribute__((unused)) static int ot_same_bits(const char *file, int line, const char *what, const void *a, const void *b, size_t bytes) {
    if (memcmp(a, b, bytes) == 0) return 1;
    size_t i = 0;
    while (((const unsigned char *)a)[i] == ((const unsigned char *)b)[i]) i++;
    test_fail_at(file, line, "%s: runs differ (first differing byte %zu of %zu)", what, i, bytes);
    return 0;
}
#define OT_SAME_BITS(what, a, b, bytes) ot_same_bits(__FILE__, __LINE__, what, a, b, bytes)

#endif

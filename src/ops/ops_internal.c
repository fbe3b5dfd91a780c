/* ops_internal.c: helpers shared by the CPU op families (see ops_internal.h). */
#include "ops/ops_internal.h"

#include "core/arena.h"

#include <omp.h>
#include <string.h>

void ops_expect_real(const char *op, const char *what, const tensor *t) {
    char s[128];
    CHECK(t != NULL, "%s: %s is missing", op, what);
    if (t->dtype == DTYPE_F32 || (t->dtype == DTYPE_F64 && t->device == DEVICE_CPU)) return;
    FATAL("%s: %s must be f32 (or f64 on the CPU), got %s", op, what, tensor_str(t, s, sizeof s));
}

void ops_expect_cpu(const char *op, const tensor *t) {
    char s[128];
    if (t->device != DEVICE_CPU)
        FATAL("%s: the CPU kernel was given %s (the op_* wrappers dispatch by device)", op,
              tensor_str(t, s, sizeof s));
}

void ops_expect_f32_gpu(const char *op, const char *what, const tensor *t) {
    char s[128];
    CHECK(t != NULL, "%s: %s is missing", op, what);
    if (t->dtype != DTYPE_F32 || t->device != DEVICE_CUDA)
        FATAL("%s: %s must be f32 on the GPU, got %s", op, what, tensor_str(t, s, sizeof s));
}

device ops_device(const char *op, const tensor *x) {
    CHECK(x != NULL, "%s: the input is missing", op);
    return x->device;
}

void ops_no_cuda(const char *op) {
    FATAL("%s: a CUDA tensor in a build without CUDA (rebuild with nvcc found, CUDA=1)", op);
}

tensor *ops_grad(runtime *rt, tensor *t, tensor *view) {
    if (!t || !t->requires_grad) return NULL;
    *view = *t;
    view->data = tensor_grad(rt, t);
    view->grad = NULL;
    view->requires_grad = 0;
    return view;
}

void ops_expect_same_shape(const char *op, const tensor *a, const tensor *b) {
    char sa[128], sb[128];
    if (tensor_same_shape(a, b) && a->dtype == b->dtype && a->device == b->device) return;
    FATAL("%s: operands differ: %s vs %s", op, tensor_str(a, sa, sizeof sa), tensor_str(b, sb, sizeof sb));
}

int ops_threads(const runtime *rt) { return rt->threads > 0 ? rt->threads : 1; }

#define REAL_INC "ops/ops_internal_real.inc"
#include "ops/real_instantiate.h"

double ops_sum_f64(runtime *rt, const double *v, int64_t n) {
    if (n <= 0) return 0;
    int64_t nch = (n + OPS_REDUCE_CHUNK - 1) / OPS_REDUCE_CHUNK;
    arena_mark m = arena_get_mark(&rt->host);
    double *part = arena_alloc(&rt->host, (size_t)nch * sizeof *part);
#pragma omp parallel for schedule(static) num_threads(ops_threads(rt))
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t i1 = (ch + 1) * OPS_REDUCE_CHUNK < n ? (ch + 1) * OPS_REDUCE_CHUNK : n;
        double s = 0;
        for (int64_t i = ch * OPS_REDUCE_CHUNK; i < i1; i++) s += v[i];
        part[ch] = s;
    }
    double s = 0;
    for (int64_t ch = 0; ch < nch; ch++) s += part[ch];
    arena_release(&rt->host, m);
    return s;
}

/* tensor.c: shapes, persistent allocation, copies and bf16 conversion (see tensor.h). */
#include "tensor.h"
#include "check.h"
#include "gpu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t dtype_size(dtype t) {
    switch (t) {
    case DTYPE_F32: return 4;
    case DTYPE_BF16: return 2;
    case DTYPE_I32: return 4;
    case DTYPE_U8: return 1;
    case DTYPE_F64: return 8;
    default: FATAL("unknown dtype %d", (int)t);
    }
}

const char *dtype_name(dtype t) {
    static const char *names[DTYPE_COUNT] = {"f32", "bf16", "i32", "u8", "f64"};
    return (t >= 0 && t < DTYPE_COUNT) ? names[t] : "?";
}

const char *device_name(device d) { return d == DEVICE_CUDA ? "cuda" : "cpu"; }

tensor tensor_view(void *data, dtype t, device d, const int *shape, int ndim) {
    CHECK(ndim >= 1 && ndim <= TENSOR_MAX_DIMS, "tensor rank %d (allowed 1..4)", ndim);
    CHECK(t >= 0 && t < DTYPE_COUNT, "unknown dtype %d", (int)t);
    CHECK(!(t == DTYPE_F64 && d == DEVICE_CUDA), "f64 tensors exist on the CPU only");
    tensor r;
    memset(&r, 0, sizeof r);
    r.data = data;
    r.dtype = t;
    r.device = d;
    r.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        CHECK(shape[i] >= 0, "negative dimension %d at axis %d", shape[i], i);
        r.shape[i] = shape[i];
    }
    return r;
}

int64_t tensor_numel(const tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t tensor_bytes(const tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

int tensor_same_shape(const tensor *a, const tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static char *shape_str(const int *shape, int ndim, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++) {
        if (shape[i] < 0) k += (size_t)snprintf(buf + k, n - k, "%s*", i ? "," : "");
        else k += (size_t)snprintf(buf + k, n - k, "%s%d", i ? "," : "", shape[i]);
    }
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

char *tensor_str(const tensor *t, char *buf, size_t n) {
    char s[96];
    snprintf(buf, n, "%s%s@%s", dtype_name(t->dtype), shape_str(t->shape, t->ndim, s, sizeof s),
             device_name(t->device));
    return buf;
}

/* A view shares its base's gradient buffer; a base that needs a gradient but has no buffer
 * yet would leave the view with a separate one and the gradient would never reach the base. */
static void check_view_grad(const tensor *t, const char *what) {
    char s[128];
    CHECK(!(t->requires_grad && !t->grad), "%s of %s, which needs a gradient but has no buffer yet: "
          "use runtime_%s so the gradient reaches the base", what, tensor_str(t, s, sizeof s), what);
}

tensor tensor_reshape(const tensor *t, const int *shape, int ndim) {
    check_view_grad(t, "reshape");
    tensor r = tensor_view(t->data, t->dtype, t->device, shape, ndim);
    char a[128], b[128];
    CHECK(tensor_numel(&r) == tensor_numel(t), "reshape %s to %s changes the element count",
          tensor_str(t, a, sizeof a), tensor_str(&r, b, sizeof b));
    r.grad = t->grad;
    r.requires_grad = t->requires_grad;
    r.name = t->name;
    return r;
}

tensor tensor_rows(const tensor *t, int start, int count) {
    CHECK(start >= 0 && count >= 0 && start + count <= t->shape[0],
          "rows [%d, %d) outside dimension 0 of size %d", start, start + count, t->shape[0]);
    check_view_grad(t, "rows");
    tensor r = *t;
    size_t row_bytes = t->shape[0] ? tensor_bytes(t) / (size_t)t->shape[0] : 0;
    r.shape[0] = count;
    r.data = (char *)t->data + (size_t)start * row_bytes;
    if (t->grad) r.grad = (char *)t->grad + (size_t)start * row_bytes;
    return r;
}

void tensor_expect(const tensor *t, dtype dt, device d, const int *shape, int ndim,
                   const char *what) {
    int ok = t->dtype == dt && t->device == d && t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        if (shape[i] >= 0 && shape[i] != t->shape[i]) ok = 0;
    if (ok) return;
    char got[128], want[96];
    FATAL("%s: expected %s%s@%s, got %s", what, dtype_name(dt), shape_str(shape, ndim, want, sizeof want),
          device_name(d), tensor_str(t, got, sizeof got));
}

static void *raw_alloc(device d, size_t bytes, const char *what) {
    if (d == DEVICE_CUDA) {
        void *p = gpu_malloc(bytes ? bytes : 1, what);
        gpu_memset_zero(p, bytes);
        return p;
    }
    void *p = calloc(1, bytes ? bytes : 1);
    CHECK(p != NULL, "out of host memory allocating %zu bytes for %s", bytes, what);
    return p;
}

static void raw_free(device d, void *p) {
    if (!p) return;
    if (d == DEVICE_CUDA) gpu_free(p);
    else free(p);
}

tensor tensor_alloc(dtype t, device d, const int *shape, int ndim) {
    tensor r = tensor_view(NULL, t, d, shape, ndim);
    r.data = raw_alloc(d, tensor_bytes(&r), "tensor");
    return r;
}

tensor tensor_alloc_param(dtype t, device d, const int *shape, int ndim, const char *name) {
    tensor r = tensor_alloc(t, d, shape, ndim);
    r.grad = raw_alloc(d, tensor_bytes(&r), name ? name : "parameter gradient");
    r.requires_grad = 1;
    r.name = name;
    return r;
}

void tensor_free(tensor *t) {
    raw_free(t->device, t->data);
    raw_free(t->device, t->grad);
    t->data = t->grad = NULL;
}

uint16_t f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) /* NaN: keep sign, force quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb; /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

void tensor_copy(tensor *dst, const tensor *src) {
    char a[128], b[128];
    CHECK(dst->dtype == src->dtype && tensor_numel(dst) == tensor_numel(src),
          "copy %s -> %s needs the same dtype and element count", tensor_str(src, a, sizeof a),
          tensor_str(dst, b, sizeof b));
    size_t n = tensor_bytes(src);
    if (n == 0 || dst->data == src->data) return;
    if (src->device == DEVICE_CPU && dst->device == DEVICE_CPU) memcpy(dst->data, src->data, n);
    else if (src->device == DEVICE_CPU) gpu_memcpy_h2d(dst->data, src->data, n);
    else if (dst->device == DEVICE_CPU) gpu_memcpy_d2h(dst->data, src->data, n);
    else gpu_memcpy_d2d(dst->data, src->data, n);
}

void tensor_cast(tensor *dst, const tensor *src) {
    char a[128], b[128];
    CHECK(dst->device == src->device && tensor_numel(dst) == tensor_numel(src),
          "cast %s -> %s needs one device and the same element count", tensor_str(src, a, sizeof a),
          tensor_str(dst, b, sizeof b));
    if (dst->dtype == src->dtype) {
        tensor_copy(dst, src);
        return;
    }
    int64_t n = tensor_numel(src);
    if (src->dtype == DTYPE_F32 && dst->dtype == DTYPE_BF16) {
        if (src->device == DEVICE_CUDA) gpu_cast_f32_to_bf16(dst->data, src->data, n);
        else
            for (int64_t i = 0; i < n; i++) tensor_bf16(dst)[i] = f32_to_bf16(tensor_f32(src)[i]);
    } else if (src->dtype == DTYPE_BF16 && dst->dtype == DTYPE_F32) {
        if (src->device == DEVICE_CUDA) gpu_cast_bf16_to_f32(dst->data, src->data, n);
        else
            for (int64_t i = 0; i < n; i++) tensor_f32(dst)[i] = bf16_to_f32(tensor_bf16(src)[i]);
    } else {
        FATAL("cast %s -> %s is not supported (f32 <-> bf16 only)", tensor_str(src, a, sizeof a),
              tensor_str(dst, b, sizeof b));
    }
}

void tensor_zero(tensor *t) {
    size_t n = tensor_bytes(t);
    if (n == 0) return;
    if (t->device == DEVICE_CUDA) gpu_memset_zero(t->data, n);
    else memset(t->data, 0, n);
}

/* rng.c: host side of the project RNG (see rng.h; the generator is in philox.h). */
#include "rng.h"
#include "check.h"

#include <math.h>

#include "philox.h"

rng rng_make(uint64_t seed, uint64_t stream) {
    rng r = {seed, stream, 0};
    return r;
}

uint32_t rng_u32(rng *r) { return philox_word(r->seed, r->stream, r->offset++); }

float rng_uniform(rng *r) { return philox_to_uniform(rng_u32(r)); }

uint32_t rng_below(rng *r, uint32_t n) {
    CHECK(n >= 1, "rng_below needs n >= 1");
    return (uint32_t)(((uint64_t)rng_u32(r) * n) >> 32);
}

void rng_shuffle_i32(rng *r, int32_t *idx, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint32_t)i + 1);
        int32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

void rng_uniform_cpu(rng *r, float *out, int64_t n, float lo, float hi) {
    CHECK(n >= 0);
    for (int64_t i = 0; i < n; i++)
        out[i] = philox_affine(philox_to_uniform(philox_word(r->seed, r->stream, r->offset + (uint64_t)i)),
                              hi - lo, lo);
    r->offset += (uint64_t)n;
}

void rng_normal_cpu(rng *r, float *out, int64_t n, float mean, float std) {
    CHECK(n >= 0);
    for (int64_t i = 0; i < n; i++) {
        uint64_t k = r->offset + (uint64_t)(i & ~(int64_t)1);
        float z = philox_to_normal(philox_word(r->seed, r->stream, k),
                                   philox_word(r->seed, r->stream, k + 1), (int)(i & 1));
        out[i] = philox_affine(z, std, mean);
    }
    r->offset += (uint64_t)(n + (n & 1));
}

void rng_fill_uniform(rng *r, tensor *t, float lo, float hi) {
    CHECK(t->dtype == DTYPE_F32, "rng fills f32 tensors, got %s", dtype_name(t->dtype));
    if (t->device == DEVICE_CUDA) rng_uniform_gpu(r, t->data, tensor_numel(t), lo, hi);
    else rng_uniform_cpu(r, t->data, tensor_numel(t), lo, hi);
}

void rng_fill_normal(rng *r, tensor *t, float mean, float std) {
    CHECK(t->dtype == DTYPE_F32, "rng fills f32 tensors, got %s", dtype_name(t->dtype));
    if (t->device == DEVICE_CUDA) rng_normal_gpu(r, t->data, tensor_numel(t), mean, std);
    else rng_normal_cpu(r, t->data, tensor_numel(t), mean, std);
}

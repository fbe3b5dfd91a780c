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

/* Words k0 .. k0+n-1 of the stream into w, one Philox block per four words. */
static void stream_words(const rng *r, uint64_t k0, int n, uint32_t *w) {
    uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    for (int i = 0; i < n;) {
        uint64_t k = k0 + (uint64_t)i, block = k >> 2;
        uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)r->stream,
                           (uint32_t)(r->stream >> 32)};
        uint32_t out[4];
        philox4x32_10(ctr, key, out);
        for (int lane = (int)(k & 3); lane < 4 && i < n; lane++) w[i++] = out[lane];
    }
}

/* Fills are cut into chunks of FILL_CHUNK values that threads compute independently;
 * each value depends only on its word index, so the result does not depend on threads. */
#define FILL_CHUNK 4096

void rng_uniform_cpu(rng *r, float *out, int64_t n, float lo, float hi) {
    CHECK(n >= 0);
    float span = hi - lo;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < n; c += FILL_CHUNK) {
        uint32_t w[FILL_CHUNK];
        int len = (int)(n - c < FILL_CHUNK ? n - c : FILL_CHUNK);
        stream_words(r, r->offset + (uint64_t)c, len, w);
        for (int i = 0; i < len; i++) out[c + i] = philox_affine(philox_to_uniform(w[i]), span, lo);
    }
    r->offset += (uint64_t)n;
}

void rng_normal_cpu(rng *r, float *out, int64_t n, float mean, float std) {
    CHECK(n >= 0);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < n; c += FILL_CHUNK) { /* FILL_CHUNK is even: pairs stay whole */
        uint32_t w[FILL_CHUNK];
        int len = (int)(n - c < FILL_CHUNK ? n - c : FILL_CHUNK);
        int words = len + (len & 1);
        stream_words(r, r->offset + (uint64_t)c, words, w);
        for (int i = 0; i < len; i++)
            out[c + i] = philox_affine(philox_to_normal(w[i & ~1], w[i | 1], i & 1), std, mean);
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

/* rng.h: the project's seeded, counter-based random numbers (Philox4x32-10, philox.h).
 *
 * An rng is (seed, stream, offset): value number k of the stream is a pure function of
 * (seed, stream, k), so the CPU and the GPU produce the same numbers, a fill can be split
 * into chunks without changing them, and the state saved in a checkpoint is three
 * integers. Each consumer owns a stream (weight init, sampler, RPN sampling, ...), so
 * adding draws in one place never shifts the numbers seen in another.
 *
 * Offsets count 32-bit words. Uniform draws use one word each; normal draws use one word
 * each too (pairs of words feed Box-Muller, value 2j is the cosine branch, 2j+1 the sine
 * branch of pair j), and a fill of odd length still consumes an even number of words so
 * that pairs never straddle two calls. */
#ifndef MRC_RNG_H
#define MRC_RNG_H

#include "tensor.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Stream numbers of the consumers (the high 32 bits; a consumer may use the low 32 bits
 * for sub-streams, e.g. one per sampler pass). */
#define RNG_STREAM_SAMPLER (UINT64_C(1) << 32)
#define RNG_STREAM_AUGMENT (UINT64_C(2) << 32)
#define RNG_STREAM_SYNTH (UINT64_C(3) << 32)
#define RNG_STREAM_INIT (UINT64_C(4) << 32)

typedef struct rng {
    uint64_t seed;
    uint64_t stream;
    uint64_t offset; /* words consumed */
} rng;

rng rng_make(uint64_t seed, uint64_t stream);

/* Scalar draws on the host. */
uint32_t rng_u32(rng *r);
float rng_uniform(rng *r);              /* [0, 1) */
/* Uniform integer in [0, n), n >= 1: (word * n) >> 32, one word per draw. Bias below
 * n / 2^32 (under 3e-4 for n = 1e6), accepted for a fixed word count per draw. */
uint32_t rng_below(rng *r, uint32_t n);
/* Fisher-Yates shuffle of idx[0..n) (n-1 draws). */
void rng_shuffle_i32(rng *r, int32_t *idx, int n);

/* Fills on the host (float arrays). */
void rng_uniform_cpu(rng *r, float *out, int64_t n, float lo, float hi);
void rng_normal_cpu(rng *r, float *out, int64_t n, float mean, float std);

/* The same fills on the device (kernels/rng.cu); bit-identical for uniform, within one
 * float ulp for normal. */
void rng_uniform_gpu(rng *r, float *out, int64_t n, float lo, float hi);
void rng_normal_gpu(rng *r, float *out, int64_t n, float mean, float std);

/* Dispatch by the tensor's device; f32 tensors only. */
void rng_fill_uniform(rng *r, tensor *t, float lo, float hi);
void rng_fill_normal(rng *r, tensor *t, float mean, float std);

#ifdef __cplusplus
}
#endif
#endif

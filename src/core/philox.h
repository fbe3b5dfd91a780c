/* philox.h: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011), the counter-based generator behind the project RNG. One source for the host
 * and the device: under nvcc the functions are __host__ __device__, so the CPU and the GPU
 * produce the same bits for the same (key, counter).
 *
 * The word -> number maps are here too, written so that both compilers produce the same
 * floats: uniform floats are exact (24 bits times 2^-24), and the normal map computes in
 * double and rounds once to float (nvcc's FMA contraction is blocked with explicit
 * round-to-nearest intrinsics where it could change a float result). */
#ifndef MRC_PHILOX_H
#define MRC_PHILOX_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define PHILOX_FN __host__ __device__ static inline
#else
#define PHILOX_FN static inline
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

PHILOX_FN void philox4x32_10(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]) {
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Word k of the stream (seed, stream): block k/4 of Philox with
 *   key     = (seed low 32 bits, seed high 32 bits)
 *   counter = (block low, block high, stream low, stream high)
 * lane k%4. Streams are independent sequences for the same seed. */
PHILOX_FN uint32_t philox_word(uint64_t seed, uint64_t stream, uint64_t k) {
    uint64_t block = k >> 2;
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                       (uint32_t)(stream >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    philox4x32_10(ctr, key, out);
    return out[k & 3];
}

/* [0, 1): the top 24 bits times 2^-24, exact in float. */
PHILOX_FN float philox_to_uniform(uint32_t w) { return (float)(w >> 8) * 5.9604644775390625e-08f; }

/* shift + scale * x with one rounding per operation on both compilers (nvcc would
 * otherwise contract it into an FMA and differ from the host in the last bit). */
PHILOX_FN float philox_affine(float x, float scale, float shift) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(shift, __fmul_rn(scale, x));
#else
    volatile float prod = scale * x; /* volatile: no contraction into an FMA */
    return shift + prod;
#endif
}

/* Box-Muller on words (w0, w1): u1 in (0, 1], theta = 2 pi u2; lane 0 is r cos theta,
 * lane 1 is r sin theta. Computed in double and rounded once to float, so the host and the
 * device agree except when libm and CUDA's double functions straddle a float rounding
 * boundary (about one value in 2^28; parity tests allow 1 float ulp). */
PHILOX_FN float philox_to_normal(uint32_t w0, uint32_t w1, int lane) {
    double u1 = ((double)w0 + 1.0) * 2.3283064365386963e-10; /* 2^-32 */
    double u2 = (double)w1 * 2.3283064365386963e-10;
    double r = sqrt(-2.0 * log(u1));
    double theta = 6.283185307179586 * u2;
    return (float)(lane ? r * sin(theta) : r * cos(theta));
}

#endif

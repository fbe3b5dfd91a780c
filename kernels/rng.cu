/* rng.cu: the project RNG's fills on the GPU. Each thread computes its value from
 * (seed, stream, offset + i) through the same philox.h functions as the CPU, so a GPU
 * fill equals the CPU fill (rng.h states the exact guarantee). */
#include "cuda_check.h"

extern "C" {
#include "core/rng.h"
}
#include "core/philox.h"

int gpu_debug_sync(void);

__global__ static void uniform_kernel(float *out, int64_t n, uint64_t seed, uint64_t stream,
                                      uint64_t offset, float lo, float span) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = philox_affine(philox_to_uniform(philox_word(seed, stream, offset + (uint64_t)i)), span, lo);
}

__global__ static void normal_kernel(float *out, int64_t n, uint64_t seed, uint64_t stream,
                                     uint64_t offset, float mean, float std) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint64_t k = offset + (uint64_t)(i & ~(int64_t)1);
    float z = philox_to_normal(philox_word(seed, stream, k), philox_word(seed, stream, k + 1), (int)(i & 1));
    out[i] = philox_affine(z, std, mean);
}

extern "C" void rng_uniform_gpu(rng *r, float *out, int64_t n, float lo, float hi) {
    CHECK(n >= 0);
    if (n > 0) {
        uniform_kernel<<<cuda_blocks(n, 256), 256>>>(out, n, r->seed, r->stream, r->offset, lo, hi - lo);
        KERNEL_CHECK(gpu_debug_sync(), 0);
    }
    r->offset += (uint64_t)n;
}

extern "C" void rng_normal_gpu(rng *r, float *out, int64_t n, float mean, float std) {
    CHECK(n >= 0);
    if (n > 0) {
        normal_kernel<<<cuda_blocks(n, 256), 256>>>(out, n, r->seed, r->stream, r->offset, mean, std);
        KERNEL_CHECK(gpu_debug_sync(), 0);
    }
    r->offset += (uint64_t)(n + (n & 1));
}

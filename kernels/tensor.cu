/* tensor.cu: the core's utility kernels (gpu.h): f32 <-> bf16 casts and a constant fill.
 * The bf16 rounding is the bit-level rule of f32_to_bf16 in src/core/tensor.c. */
#include "cuda_check.h"

extern "C" {
#include "core/gpu.h"
}

int gpu_debug_sync(void);

__device__ static uint16_t f32_to_bf16_dev(float x) {
    uint32_t u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__global__ static void cast_f32_to_bf16_kernel(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = f32_to_bf16_dev(src[i]);
}

__global__ static void cast_bf16_to_f32_kernel(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}

__global__ static void fill_f32_kernel(float *dst, float value, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = value;
}

extern "C" void gpu_cast_f32_to_bf16(uint16_t *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    cast_f32_to_bf16_kernel<<<cuda_blocks(n, 256), 256>>>(dst, src, n);
    KERNEL_CHECK(gpu_debug_sync(), 0);
}

extern "C" void gpu_cast_bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    if (n <= 0) return;
    cast_bf16_to_f32_kernel<<<cuda_blocks(n, 256), 256>>>(dst, src, n);
    KERNEL_CHECK(gpu_debug_sync(), 0);
}

extern "C" void gpu_fill_f32(float *dst, float value, int64_t n) {
    if (n <= 0) return;
    fill_f32_kernel<<<cuda_blocks(n, 256), 256>>>(dst, value, n);
    KERNEL_CHECK(gpu_debug_sync(), 0);
}

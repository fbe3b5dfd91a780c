/* gpu_none.c: the device interface of gpu.h in a build without CUDA (CUDA=0 or no nvcc).
 * Probing says why there is no GPU; anything that would touch one stops with a message,
 * so a GPU code path can never silently run on the CPU. Replaced by kernels/runtime.cu,
 * kernels/tensor.cu and kernels/rng.cu in CUDA builds. */
#include "gpu.h"
#include "check.h"
#include "rng.h"

#include <stdio.h>

#define NO_CUDA "this build has no CUDA (built with CUDA=0 or without nvcc); rebuild on a machine with the CUDA toolkit"

int gpu_built(void) { return 0; }
const char *gpu_build_desc(void) { return ""; }

int gpu_probe(int index, gpu_info *info, char *why, size_t why_n) {
    (void)index;
    (void)info;
    snprintf(why, why_n, "%s", NO_CUDA);
    return 0;
}

void gpu_open(int index, int debug_sync, void **stream, void **copy_stream, void **cublas,
              void **cudnn) {
    (void)index, (void)debug_sync, (void)stream, (void)copy_stream, (void)cublas, (void)cudnn;
    FATAL("gpu_open: %s", NO_CUDA);
}
void gpu_close(void *stream, void *copy_stream, void *cublas, void *cudnn) {
    (void)stream, (void)copy_stream, (void)cublas, (void)cudnn;
}
void *gpu_malloc(size_t bytes, const char *what) {
    FATAL("GPU allocation of %zu bytes for %s: %s", bytes, what, NO_CUDA);
}
void gpu_free(void *p) { (void)p; }
void *gpu_host_alloc(size_t bytes) { (void)bytes; return NULL; }
void gpu_host_free(void *p) { (void)p; }
void gpu_memset_zero(void *p, size_t bytes) { (void)p, (void)bytes; FATAL("gpu_memset_zero: %s", NO_CUDA); }
void gpu_memcpy_h2d(void *d, const void *s, size_t n) { (void)d, (void)s, (void)n; FATAL("gpu_memcpy_h2d: %s", NO_CUDA); }
void gpu_memcpy_d2h(void *d, const void *s, size_t n) { (void)d, (void)s, (void)n; FATAL("gpu_memcpy_d2h: %s", NO_CUDA); }
void gpu_memcpy_d2d(void *d, const void *s, size_t n) { (void)d, (void)s, (void)n; FATAL("gpu_memcpy_d2d: %s", NO_CUDA); }
void gpu_synchronize(void) {}
size_t gpu_mem_used(void) { return 0; }
void gpu_cast_f32_to_bf16(uint16_t *d, const float *s, int64_t n) { (void)d, (void)s, (void)n; FATAL("gpu_cast_f32_to_bf16: %s", NO_CUDA); }
void gpu_cast_bf16_to_f32(float *d, const uint16_t *s, int64_t n) { (void)d, (void)s, (void)n; FATAL("gpu_cast_bf16_to_f32: %s", NO_CUDA); }
void gpu_fill_f32(float *d, float v, int64_t n) { (void)d, (void)v, (void)n; FATAL("gpu_fill_f32: %s", NO_CUDA); }

void rng_uniform_gpu(rng *r, float *out, int64_t n, float lo, float hi) {
    (void)r, (void)out, (void)n, (void)lo, (void)hi;
    FATAL("rng_uniform_gpu: %s", NO_CUDA);
}
void rng_normal_gpu(rng *r, float *out, int64_t n, float mean, float std) {
    (void)r, (void)out, (void)n, (void)mean, (void)std;
    FATAL("rng_normal_gpu: %s", NO_CUDA);
}

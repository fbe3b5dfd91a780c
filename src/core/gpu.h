/* gpu.h: the small device interface the C core needs from CUDA.
 *
 * Implemented in kernels/runtime.cu (CUDA builds) and by src/core/gpu_none.c (CPU-only
 * builds, where every call that would touch a GPU stops with a message saying the build
 * has no CUDA). The C core never includes CUDA headers; handles travel as void *.
 * All calls check their CUDA status and stop with file:line and CUDA's message. */
#ifndef MRC_GPU_H
#define MRC_GPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpu_info {
    int index;
    char name[128];
    int cc_major, cc_minor;
    size_t total_mem;
    int driver_version;  /* CUDA driver API version, e.g. 13000; 0 when no driver */
    int runtime_version; /* cudart version this build uses */
} gpu_info;

/* 1 when this build was compiled with CUDA. */
int gpu_built(void);
/* Library versions compiled in, as "cudart 13.0, cuBLAS 13.0.x, cuDNN 9.19.0" (CPU build: ""). */
const char *gpu_build_desc(void);

/* Whether GPU `index` can run this build. Never stops the program: on 0, `why` says
 * why not (no CUDA in this build, no driver, driver too old, no device, compute
 * capability below the build target, ...). */
int gpu_probe(int index, gpu_info *info, char *why, size_t why_n);

/* Selects the device and creates the compute stream, the copy stream and the cuBLAS and
 * cuDNN handles (returned as opaque pointers). gpu_close destroys them. debug_sync makes
 * the core's utility kernels below synchronise after each launch (ops take the flag from
 * their runtime). */
void gpu_open(int index, int debug_sync, void **stream, void **copy_stream, void **cublas,
              void **cudnn);
void gpu_close(void *stream, void *copy_stream, void *cublas, void *cudnn);

void *gpu_malloc(size_t bytes, const char *what);
void gpu_free(void *p);
void gpu_memset_zero(void *p, size_t bytes);
/* Page-locked host memory for fast, asynchronous uploads (the loader's batch buffers);
 * NULL when it cannot be had (no CUDA, no device, no memory): the caller falls back to
 * malloc and frees with free. */
void *gpu_host_alloc(size_t bytes);
void gpu_host_free(void *p);
void gpu_memcpy_h2d(void *dst, const void *src, size_t bytes);
void gpu_memcpy_d2h(void *dst, const void *src, size_t bytes);
void gpu_memcpy_d2d(void *dst, const void *src, size_t bytes);
void gpu_synchronize(void);
/* Memory in use on the current device (bytes, all processes and the context included, as
 * cudaMemGetInfo reports it), for the progress line. */
size_t gpu_mem_used(void);

/* Utility kernels (kernels/tensor.cu), on the default stream: f32 <-> bf16 conversion of
 * n elements (round to nearest even, as f32_to_bf16) and a constant fill. */
void gpu_cast_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);
void gpu_cast_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);
void gpu_fill_f32(float *dst, float value, int64_t n);

#ifdef __cplusplus
}
#endif
#endif

/* runtime.cu: the CUDA side of gpu.h: probing, streams, library handles, memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"

extern "C" {
#include "core/gpu.h"
}

#ifndef MRC_CUDA_ARCH
#define MRC_CUDA_ARCH 90
#endif

/* Whether the utility kernels (tensor.cu, rng.cu), which take no runtime, synchronise after
 * each launch: set by gpu_open from the runtime; before that, the same default as the
 * runtime's (DEBUG=1 builds, or MRC_SYNC=1). Ops take the flag from their runtime. */
static int g_debug_sync = -1;

int gpu_debug_sync(void) {
    if (g_debug_sync < 0) {
#ifdef MRC_DEBUG
        g_debug_sync = 1;
#else
        const char *env = getenv("MRC_SYNC");
        g_debug_sync = env && strcmp(env, "1") == 0;
#endif
    }
    return g_debug_sync;
}

extern "C" int gpu_built(void) { return 1; }

extern "C" const char *gpu_build_desc(void) {
    static char desc[160];
    int rtv = 0;
    cudaRuntimeGetVersion(&rtv);
    int blas_major = 0, blas_minor = 0, blas_patch = 0;
    cublasGetProperty(MAJOR_VERSION, &blas_major);
    cublasGetProperty(MINOR_VERSION, &blas_minor);
    cublasGetProperty(PATCH_LEVEL, &blas_patch);
    size_t dnn = cudnnGetVersion();
    snprintf(desc, sizeof desc, "cudart %d.%d, cuBLAS %d.%d.%d, cuDNN %zu.%zu.%zu (built with %d.%d.%d), sm_%d",
             rtv / 1000, (rtv % 1000) / 10, blas_major, blas_minor, blas_patch, dnn / 10000,
             (dnn % 10000) / 100, dnn % 100, CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL, MRC_CUDA_ARCH);
    return desc;
}

extern "C" int gpu_probe(int index, gpu_info *info, char *why, size_t why_n) {
    int drv = 0, rtv = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rtv);
    if (drv == 0) {
        snprintf(why, why_n, "no NVIDIA driver found (libcuda could not be loaded)");
        return 0;
    }
    if (drv / 1000 < rtv / 1000) {
        snprintf(why, why_n, "NVIDIA driver too old: it supports CUDA %d.%d, this build needs %d.x",
                 drv / 1000, (drv % 1000) / 10, rtv / 1000);
        return 0;
    }
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(why, why_n, "cudaGetDeviceCount: %s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
        cudaGetLastError(); /* clear it: probing must not poison later calls */
        return 0;
    }
    if (n == 0 || index >= n) {
        snprintf(why, why_n, "no CUDA device %d (the driver sees %d)", index, n);
        return 0;
    }
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, index);
    if (e != cudaSuccess) {
        snprintf(why, why_n, "cudaGetDeviceProperties: %s", cudaGetErrorString(e));
        return 0;
    }
    if (p.major * 10 + p.minor < MRC_CUDA_ARCH) {
        snprintf(why, why_n, "%s has compute capability %d.%d, below this build's target sm_%d "
                 "(rebuild with CUDA_ARCH=%d%d)", p.name, p.major, p.minor, MRC_CUDA_ARCH, p.major, p.minor);
        return 0;
    }
    if (info) {
        memset(info, 0, sizeof *info);
        info->index = index;
        snprintf(info->name, sizeof info->name, "%.127s", p.name);
        info->cc_major = p.major;
        info->cc_minor = p.minor;
        info->total_mem = p.totalGlobalMem;
        info->driver_version = drv;
        info->runtime_version = rtv;
    }
    return 1;
}

extern "C" void gpu_open(int index, int debug_sync, void **stream, void **copy_stream,
                         void **cublas, void **cudnn) {
    g_debug_sync = debug_sync;
    CUDA_CHECK(cudaSetDevice(index));
    cudaStream_t s, c;
    /* Blocking streams: they order with the legacy default stream, which the utility
     * kernels and synchronous copies use. */
    CUDA_CHECK(cudaStreamCreate(&s));
    CUDA_CHECK(cudaStreamCreate(&c));
    cublasHandle_t blas;
    CUBLAS_CHECK(cublasCreate(&blas));
    CUBLAS_CHECK(cublasSetStream(blas, s));
    cudnnHandle_t dnn;
    CUDNN_CHECK(cudnnCreate(&dnn));
    CUDNN_CHECK(cudnnSetStream(dnn, s));
    *stream = s;
    *copy_stream = c;
    *cublas = blas;
    *cudnn = dnn;
}

extern "C" void gpu_close(void *stream, void *copy_stream, void *cublas, void *cudnn) {
    if (cudnn) CUDNN_CHECK(cudnnDestroy((cudnnHandle_t)cudnn));
    if (cublas) CUBLAS_CHECK(cublasDestroy((cublasHandle_t)cublas));
    if (stream) CUDA_CHECK(cudaStreamDestroy((cudaStream_t)stream));
    if (copy_stream) CUDA_CHECK(cudaStreamDestroy((cudaStream_t)copy_stream));
}

extern "C" void *gpu_malloc(size_t bytes, const char *what) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_b, &total_b);
        FATAL("cudaMalloc of %zu MiB for %s failed: %s (%zu of %zu MiB free)", bytes >> 20, what,
              cudaGetErrorString(e), free_b >> 20, total_b >> 20);
    }
    return p;
}

extern "C" void gpu_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}

extern "C" void *gpu_host_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaHostAlloc(&p, bytes, cudaHostAllocPortable) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free error state for the next call */
        return NULL;
    }
    return p;
}

extern "C" void gpu_host_free(void *p) {
    if (p) CUDA_CHECK(cudaFreeHost(p));
}

extern "C" void gpu_memset_zero(void *p, size_t bytes) { CUDA_CHECK(cudaMemset(p, 0, bytes)); }

extern "C" void gpu_memcpy_h2d(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

extern "C" void gpu_memcpy_d2h(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

extern "C" void gpu_memcpy_d2d(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
}

extern "C" void gpu_synchronize(void) { CUDA_CHECK(cudaDeviceSynchronize()); }

extern "C" size_t gpu_mem_used(void) {
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return total_b - free_b;
}

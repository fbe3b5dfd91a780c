/* cuda_check.h: status checks for CUDA, cuBLAS and cuDNN calls, and the launch check.
 *
 * Each stops the program through mrc_fatal (src/core/check.h) with
 *   file:line: <the call> failed: <library's name for the status>: <its message>
 * KERNEL_CHECK(debug_sync, stream) goes after every launch: it catches launch errors
 * at once, and in debug mode (DEBUG=1 builds, MRC_SYNC=1) it also synchronises so an
 * execution error is reported at the launch that caused it. */
#ifndef MRC_CUDA_CHECK_H
#define MRC_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "core/check.h"

#define CUDA_CHECK(call)                                                                    \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess)                                                              \
            mrc_fatal(__FILE__, __LINE__, "%s failed: %s: %s", #call, cudaGetErrorName(e_), \
                      cudaGetErrorString(e_));                                              \
    } while (0)

#define CUBLAS_CHECK(call)                                                                  \
    do {                                                                                    \
        cublasStatus_t s_ = (call);                                                         \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                    \
            mrc_fatal(__FILE__, __LINE__, "%s failed: %s: %s", #call, cublasGetStatusName(s_), \
                      cublasGetStatusString(s_));                                           \
    } while (0)

#define CUDNN_CHECK(call)                                                                   \
    do {                                                                                    \
        cudnnStatus_t s_ = (call);                                                          \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                     \
            mrc_fatal(__FILE__, __LINE__, "%s failed: status %d: %s", #call, (int)s_,       \
                      cudnnGetErrorString(s_));                                             \
    } while (0)

#define KERNEL_CHECK(debug_sync, stream)                                  \
    do {                                                                  \
        CUDA_CHECK(cudaGetLastError());                                   \
        if (debug_sync) CUDA_CHECK(cudaStreamSynchronize(stream));        \
    } while (0)

/* Blocks for a 1-D launch over n elements (n > 0). */
static inline unsigned int cuda_blocks(long long n, int threads) {
    return (unsigned int)((n + threads - 1) / threads);
}

#endif

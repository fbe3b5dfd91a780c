/* runtime.h: everything a step needs, passed explicitly (no globals): the device, the
 * CUDA streams and library handles, the per-step arenas and the tape.
 *
 * Life of a step: ops allocate their outputs with runtime_tensor (struct and data from
 * the step arenas), record backward entries with runtime_record, the loss is
 * differentiated with runtime_backward, and runtime_step_end resets the arenas and the
 * tape. Persistent memory (parameters, optimizer state) uses tensor_alloc instead. */
#ifndef MRC_RUNTIME_H
#define MRC_RUNTIME_H

#include "arena.h"
#include "gpu.h"
#include "tape.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct runtime_config {
    const char *device;      /* "auto" (default), "cpu", "cuda" or "cuda:N" */
    int threads;             /* CPU threads for OpenMP and OpenBLAS; 0: OpenMP's default */
    size_t host_block_bytes; /* arena block sizes (0: 64 MiB host, 256 MiB GPU) */
    size_t gpu_block_bytes;
    size_t gpu_limit_bytes;  /* 0: no limit */
    int debug_sync;          /* synchronise after each GPU launch; -1: DEBUG build or MRC_SYNC=1 */
    int quiet;               /* 1: do not log the device choice */
} runtime_config;

typedef struct runtime {
    device device;           /* where the step runs */
    int gpu_index;           /* -1 on the CPU */
    gpu_info gpu;
    int threads;
    int debug_sync;
    char device_desc[192];   /* "cpu" or "cuda:0 (NVIDIA H100 80GB HBM3, cc 9.0)" */
    char device_reason[256]; /* why this device: "requested", "auto: no CUDA driver (...)" */
    arena host;              /* tensor structs, tape contexts, CPU activations */
    arena dev;               /* GPU activations (unused on the CPU) */
    tape tape;
    void *stream;            /* cudaStream_t for compute */
    void *copy_stream;       /* cudaStream_t for host <-> device copies */
    void *cublas;            /* cublasHandle_t */
    void *cudnn;             /* cudnnHandle_t */
} runtime;

runtime_config runtime_config_default(void);
/* Picks the device (see runtime_config.device), sets thread counts, checks that OpenBLAS
 * is its OpenMP build, creates handles and arenas. A device that was asked for by name
 * and cannot be used stops the program with the reason. */
void runtime_init(runtime *rt, const runtime_config *cfg);
void runtime_free(runtime *rt);
/* The arena for memory on device d. */
arena *runtime_arena(runtime *rt, device d);

/* A step tensor: struct and (uninitialised) data from the step arenas. */
tensor *runtime_tensor(runtime *rt, device d, dtype t, const int *shape, int ndim);
/* Whether an op with these inputs must record a backward (tape on and any input needs it). */
int runtime_needs_grad(const runtime *rt, const tensor *const *inputs, int n);
/* RUNTIME_NEEDS_GRAD(rt, a, b, ...): runtime_needs_grad over the listed tensors. */
#define RUNTIME_NEEDS_GRAD(rt, ...)                                       \
    runtime_needs_grad((rt), (const tensor *const[]){__VA_ARGS__},        \
                       (int)(sizeof((const tensor *[]){__VA_ARGS__}) / sizeof(tensor *)))
/* tape_record with the runtime's tape and host arena. */
void *runtime_record(runtime *rt, const char *name, tape_fn fn, size_t ctx_bytes);
/* Seeds d(loss) = 1 (loss has one element, f32 or f64), runs the tape backward, clears it. */
void runtime_backward(runtime *rt, tensor *loss);
/* Ends the step: clears the tape and resets both arenas. */
void runtime_step_end(runtime *rt);

/* t's gradient buffer; allocated zeroed from the step arena of t's device on first use.
 * Only for tensors that need a gradient (requires_grad): step tensors, whose buffer lives
 * until the step ends, and parameters, which own a persistent one. */
void *tensor_grad(runtime *rt, tensor *t);

/* Views of step tensors inside a recorded forward (see tensor_reshape): when t needs a
 * gradient its buffer is allocated first, so the view and t share it. Returns a step
 * tensor. */
tensor *runtime_reshape(runtime *rt, tensor *t, const int *shape, int ndim);
tensor *runtime_rows(runtime *rt, tensor *t, int start, int count);

/* OpenBLAS: its configuration string and threading ("OpenMP", "pthreads", "sequential"). */
const char *runtime_blas_config(void);
const char *runtime_blas_threading(void);

#ifdef __cplusplus
}
#endif
#endif

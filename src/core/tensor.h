/* tensor.h: the one tensor type of the project.
 *
 * A tensor is contiguous memory plus a shape of at most 4 dimensions, row-major, the last
 * dimension fastest. Activations are NHWC, conv weights KRSC (out, kh, kw, in), linear
 * weights [out, in] (DESIGN §3). There are no strides: a "view" is at most a pointer offset
 * along dimension 0 (tensor_rows) or a reshape with the same element count.
 *
 * Dtypes: f32 (reference), bf16 (GPU fast path; stored as raw uint16 bits), i32, u8 on
 * both devices; f64 on the CPU only, so that gradient checks run in double precision
 * through the same reference code.
 *
 * Autograd fields: `grad` is a buffer of the same dtype, shape and device as `data`, or
 * NULL until a backward pass first needs it (tensor_grad in runtime.h allocates it zeroed
 * from the step arena). `requires_grad` marks parameters and every value computed from
 * them while the tape records. */
#ifndef MRC_TENSOR_H
#define MRC_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TENSOR_MAX_DIMS 4

typedef enum { DTYPE_F32 = 0, DTYPE_BF16, DTYPE_I32, DTYPE_U8, DTYPE_F64, DTYPE_COUNT } dtype;
typedef enum { DEVICE_CPU = 0, DEVICE_CUDA } device;

typedef struct tensor {
    void *data;
    void *grad;
    dtype dtype;
    device device;
    int ndim;
    int shape[TENSOR_MAX_DIMS];
    int requires_grad;
    const char *name; /* optional, for messages (parameter names) */
} tensor;

/* A shape literal for the constructors: tensor_view(p, DTYPE_F32, DEVICE_CPU, TSHAPE(2, 3)).
 * Expands to a pointer and a count. */
#define TSHAPE(...) ((const int[]){__VA_ARGS__}), ((int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)))

size_t dtype_size(dtype t);
const char *dtype_name(dtype t);
const char *device_name(device d);

/* Wraps existing memory; checks the shape (1..4 dims, each >= 0) and, for f64, the device. */
tensor tensor_view(void *data, dtype t, device d, const int *shape, int ndim);
int64_t tensor_numel(const tensor *t);
size_t tensor_bytes(const tensor *t);
int tensor_same_shape(const tensor *a, const tensor *b);
/* "f32[2,3,4,5]@cpu" into buf; returns buf. */
char *tensor_str(const tensor *t, char *buf, size_t n);

/* Views. tensor_reshape: same memory, new shape with the same element count. tensor_rows:
 * rows [start, start+count) of dimension 0, as a pointer offset. A view shares its base's
 * gradient buffer (same offset), so gradients accumulated through the view reach the base.
 * A base that needs a gradient must already have its buffer (parameters always do): for
 * step tensors use runtime_reshape / runtime_rows, which allocate it first; these two stop
 * with a message otherwise rather than lose the gradient. */
tensor tensor_reshape(const tensor *t, const int *shape, int ndim);
tensor tensor_rows(const tensor *t, int start, int count);

/* The shape contract at the head of an op: dtype, device and shape must match; -1 in
 * `shape` matches any size. On mismatch: one line naming `what` and both shapes, exit 1. */
void tensor_expect(const tensor *t, dtype dt, device d, const int *shape, int ndim,
                   const char *what);

/* Persistent tensors (parameters, optimizer state, buffers that outlive a step). Memory
 * is zeroed. tensor_free releases data and grad. */
tensor tensor_alloc(dtype t, device d, const int *shape, int ndim);
/* Also gives the tensor a persistent zeroed gradient buffer and sets requires_grad. */
tensor tensor_alloc_param(dtype t, device d, const int *shape, int ndim, const char *name);
void tensor_free(tensor *t);

/* Element access helpers for CPU code and tests. */
static inline float *tensor_f32(const tensor *t) { return (float *)t->data; }
static inline double *tensor_f64(const tensor *t) { return (double *)t->data; }
static inline int32_t *tensor_i32(const tensor *t) { return (int32_t *)t->data; }
static inline uint16_t *tensor_bf16(const tensor *t) { return (uint16_t *)t->data; }
static inline uint8_t *tensor_u8(const tensor *t) { return (uint8_t *)t->data; }

/* bf16 <-> f32 on the CPU: round to nearest, ties to even; NaN stays NaN (quiet). The GPU
 * twin in kernels/tensor.cu uses the same rule. */
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t b);

/* Data movement on any device pair, ordered on the default CUDA stream. A copy to the host
 * returns when the data is there; a copy from the host returns when the source may be
 * reused; device-to-device copies, casts and zeroing are queued (later work on the default
 * stream or a blocking stream sees their result).
 * tensor_copy: same dtype and element count. tensor_cast: f32 <-> bf16 and same-dtype
 * copies, same device, same element count. tensor_zero: all bits zero. */
void tensor_copy(tensor *dst, const tensor *src);
void tensor_cast(tensor *dst, const tensor *src);
void tensor_zero(tensor *t);

#ifdef __cplusplus
}
#endif
#endif

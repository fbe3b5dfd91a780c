/* ops_internal.h: helpers shared by the CPU op families in src/ops/ (not a public API).
 *
 * - dtype dispatch: the reference kernels exist for f32 and f64 (real_instantiate.h);
 *   OPS_REAL(t, fn, args...) calls fn_f64(args) for f64 tensors and fn_f32(args) otherwise
 *   (the tensors' void data pointers convert to the typed ones).
 * - gradient views: the tape functions hand the _backward_cpu kernels tensors that wrap
 *   the inputs' gradient buffers, or NULL where an input needs no gradient.
 * - deterministic reductions: sums split into chunks of a fixed size (never by thread
 *   count), each chunk summed in double, the partial sums combined in chunk order; so a
 *   result is bit-identical for any thread count (DESIGN §3). */
#ifndef MRC_OPS_INTERNAL_H
#define MRC_OPS_INTERNAL_H

#include "core/check.h"
#include "core/runtime.h"
#include "core/tensor.h"

#include <stdint.h>

#define OPS_REAL(t, fn, ...) ((t)->dtype == DTYPE_F64 ? fn##_f64(__VA_ARGS__) : fn##_f32(__VA_ARGS__))

/* Rows per chunk of the deterministic reductions. */
#define OPS_REDUCE_CHUNK 256

/* Stops unless t is an f32 or f64 tensor on the CPU. `op` and `what` name the op and
 * the argument in the message. */
void ops_expect_real_cpu(const char *op, const char *what, const tensor *t);
/* The device an op runs on: the device of x. An op without a CUDA twin stops here with
 * its name (no silent fallback to the CPU, DESIGN §4). */
device ops_device(const char *op, const tensor *x);
/* A tensor wrapping t's gradient buffer (allocated zeroed on first use) in *view, or NULL
 * when t is NULL or needs no gradient. */
tensor *ops_grad(runtime *rt, tensor *t, tensor *view);
/* Shapes equal in rank and every dimension; otherwise stops naming the op and both. */
void ops_expect_same_shape(const char *op, const tensor *a, const tensor *b);

/* out[c] += sum over r of a[r * cols + c], for r < rows (deterministic, see above).
 * Scratch comes from rt's host arena and is released before returning. */
void ops_colsum_add_f32(runtime *rt, const float *a, int64_t rows, int cols, float *out);
void ops_colsum_add_f64(runtime *rt, const double *a, int64_t rows, int cols, double *out);

/* The sum of v[0..n), deterministic as above (chunks of OPS_REDUCE_CHUNK values). */
double ops_sum_f64(runtime *rt, const double *v, int64_t n);

/* The number of OpenMP threads the ops use (rt->threads, at least 1). */
int ops_threads(const runtime *rt);

#endif

/* select.h: per-RoI selection ops of the RoI heads: one group of a row, or one class
 * channel of a 1×1 convolution, chosen by an i32 index per row.
 *
 * gather_group picks the class-specific box deltas (width 4) of each RoI's class from the
 * box predictor's [R, K·4] output. class_conv1x1 is the mask predictor's 1×1 convolution
 * computed for one class channel per RoI only (LVIS: 1 of 1203), instead of all K channels
 * followed by a gather.
 *
 * The index tensors (idx, cls) are i32 [R] on the device of x and get no gradient. f32 or
 * f64 on the CPU; CUDA twins (f32) in kernels/select.cu. Backward kernels ACCUMULATE into
 * every gradient they are given; a NULL gradient is skipped. The backward reads its inputs
 * again: they must stay unchanged until it has run (tape.h).
 *
 * An index outside its range stops the CPU kernels with one line naming the row and the
 * value, before anything is written. The GPU twins cannot stop without a host sync: they
 * never read or write out of bounds; a bad row's forward output is NaN (so the loss and
 * the training NaN guard catch it) and the row contributes nothing to any gradient. With
 * rt->debug_sync on, the twins read a device flag after the kernel and stop with the
 * CPU's message. */
#ifndef MRC_OPS_SELECT_H
#define MRC_OPS_SELECT_H

#include "core/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* gather_group: x [R, G·width], idx [R] in [0, G) → y [R, width] (written)
 *   y[r, j] = x[r, idx[r]·width + j]
 * Backward: dx[r, idx[r]·width + j] += dy[r, j] (one group per row: no conflicts). */
void gather_group_forward_cpu(runtime *rt, const tensor *x, const tensor *idx, int width, tensor *y);
void gather_group_backward_cpu(runtime *rt, const tensor *idx, int width, const tensor *dy, tensor *dx);
tensor *op_gather_group(runtime *rt, tensor *x, tensor *idx, int width);

/* class_conv1x1: x [R, H, W, C] (NHWC), w [K, 1, 1, C] (KRSC) or [K, C], b [K] or NULL,
 * cls [R] in [0, K) → y [R, H, W, 1] (written)
 *   y[r, p] = Σ_c x[r, p, c]·w[cls_r, c] + b[cls_r]      (sum in double, rounded once)
 * Backward (each gradient optional, accumulated):
 *   dx[r, p, c] += dy[r, p]·w[cls_r, c]
 *   dw[k, c]    += Σ_{r: cls_r = k} Σ_p dy[r, p]·x[r, p, c]
 *   db[k]       += Σ_{r: cls_r = k} Σ_p dy[r, p]
 * Deterministic for any thread count (DESIGN §3): each row's sums over p are taken in
 * double into scratch [R, C+1], then added into dw[cls_r, c] / db[cls_r] in ascending row
 * order (one f32/f64 rounding per row), the same order on the GPU (no atomics). Scratch:
 * R·(C+1) doubles from the host arena (4.2 MB at R = 2048, C = 256), released on return. */
void class_conv1x1_forward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b, const tensor *cls,
                               tensor *y);
void class_conv1x1_backward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *cls, const tensor *dy,
                                tensor *dx, tensor *dw, tensor *db);
tensor *op_class_conv1x1(runtime *rt, tensor *x, tensor *w, tensor *b, tensor *cls);

/* Shape contracts shared by the CPU kernels and the GPU twins (device-agnostic: every
 * operand must match x's dtype and device, the indices i32 on that device). Each stops
 * with one line naming `op`.
 * gather_group_check: x (or dx) [R, G·width], idx [R], y (or dy) [R, width] or NULL;
 * returns G. */
int gather_group_check(const char *op, const tensor *x, const tensor *idx, int width, const tensor *y);
/* class_conv1x1_check: x [R, H, W, C], w [K, 1, 1, C] or [K, C], b [K] or NULL, cls [R],
 * y (or dy) [R, H, W, 1] or NULL; returns K. */
int class_conv1x1_check(const char *op, const tensor *x, const tensor *w, const tensor *b, const tensor *cls,
                        const tensor *y);

/* CUDA twins (kernels/select.cu): the same contracts on f32 CUDA tensors, queued on
 * rt->stream, scratch from rt->dev; defined in CUDA builds only (MRC_CUDA). */
void gather_group_forward_gpu(runtime *rt, const tensor *x, const tensor *idx, int width, tensor *y);
void gather_group_backward_gpu(runtime *rt, const tensor *idx, int width, const tensor *dy, tensor *dx);
void class_conv1x1_forward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b, const tensor *cls, tensor *y);
void class_conv1x1_backward_gpu(runtime *rt, const tensor *x, const tensor *w, const tensor *cls, const tensor *dy, tensor *dx, tensor *dw, tensor *db);

#ifdef __cplusplus
}
#endif
#endif

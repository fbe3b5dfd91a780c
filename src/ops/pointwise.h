/* pointwise.h: ReLU, add, scale and the gradient scale.
 *
 * Any shape; inputs of one op share shape, dtype and device. f32 or f64 on the CPU; CUDA
 * twins in kernels/pointwise.cu. Backward kernels ACCUMULATE into their outputs. */
#ifndef MRC_OPS_POINTWISE_H
#define MRC_OPS_POINTWISE_H

#include "core/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* relu: y = max(x, 0), NaN kept (as PyTorch). Backward from the output: dx += dy where
 * y > 0 (the sub-gradient at 0 is 0, as in PyTorch). */
void relu_forward_cpu(runtime *rt, const tensor *x, tensor *y);
void relu_backward_cpu(runtime *rt, const tensor *y, const tensor *dy, tensor *dx);
tensor *op_relu(runtime *rt, tensor *x);

/* add: y = a + b. Its backward is two axpy calls. */
void add_forward_cpu(runtime *rt, const tensor *a, const tensor *b, tensor *y);
tensor *op_add(runtime *rt, tensor *a, tensor *b);

/* scale: y = s·x. axpy: dx += s·dy (the backward of scale and of grad_scale, and add's with
 * s = 1). */
void scale_forward_cpu(runtime *rt, const tensor *x, double s, tensor *y);
void axpy_cpu(runtime *rt, double s, const tensor *dy, tensor *dx);
tensor *op_scale(runtime *rt, tensor *x, double s);

/* grad_scale: identity forward (the output shares x's data, no copy), backward dx += s·dy.
 * Used to scale a branch's gradient (e.g. a stage's loss weight on shared features). */
tensor *op_grad_scale(runtime *rt, tensor *x, double s);

/* CUDA twins (kernels/pointwise.cu): the same contracts on f32 CUDA tensors, queued on
 * rt->stream, scratch from rt->dev; defined in CUDA builds only (MRC_CUDA). */
void relu_forward_gpu(runtime *rt, const tensor *x, tensor *y);
void relu_backward_gpu(runtime *rt, const tensor *y, const tensor *dy, tensor *dx);
void add_forward_gpu(runtime *rt, const tensor *a, const tensor *b, tensor *y);
void scale_forward_gpu(runtime *rt, const tensor *x, double s, tensor *y);
void axpy_gpu(runtime *rt, double s, const tensor *dy, tensor *dx);

#ifdef __cplusplus
}
#endif
#endif

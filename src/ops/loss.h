/* loss.h: the elementary loss ops the detector's losses are built from.
 *
 * Each reduces to one scalar (shape [1], the dtype of x):
 *   loss = Σ_i w_i · ℓ_i / normaliser
 * with per-element (per-row for cross-entropy) weights w (NULL: all 1) and an explicit
 * normaliser > 0 chosen by the caller (detectron2 divides e.g. the box loss by the number
 * of sampled RoIs, not by the number of foreground ones). Targets, labels and weights
 * receive no gradient. The backward ACCUMULATES dloss · ∂loss/∂x into dx.
 * The backward reads x, the targets (labels) and the weights again: like every op input
 * (tape.h) they must stay unchanged until the backward has run.
 * The sums are deterministic (ops_internal.h) and carried in double.
 * f32 or f64 on the CPU; CUDA twins in kernels/loss.cu. */
#ifndef MRC_OPS_LOSS_H
#define MRC_OPS_LOSS_H

#include "core/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sigmoid binary cross-entropy with logits, any shape; t (targets in [0,1]) and w as x.
 *   ℓ = max(x, 0) − x·t + log(1 + e^−|x|),   ∂ℓ/∂x = σ(x) − t */
void bce_logits_forward_cpu(runtime *rt, const tensor *x, const tensor *t, const tensor *w,
                            double normaliser, tensor *loss);
void bce_logits_backward_cpu(runtime *rt, const tensor *x, const tensor *t, const tensor *w,
                             double normaliser, const tensor *dloss, tensor *dx);
tensor *op_bce_logits(runtime *rt, tensor *x, tensor *t, tensor *w, double normaliser);

/* Softmax cross-entropy: x [R, K] logits, labels i32 [R] in [0, K), w [R] or NULL.
 *   ℓ_r = logsumexp(x_r) − x_r[label_r],   ∂ℓ_r/∂x_r = softmax(x_r) − onehot(label_r)
 * A label outside [0, K) stops with the row and the value. */
void softmax_ce_forward_cpu(runtime *rt, const tensor *x, const tensor *labels, const tensor *w,
                            double normaliser, tensor *loss);
void softmax_ce_backward_cpu(runtime *rt, const tensor *x, const tensor *labels, const tensor *w,
                             double normaliser, const tensor *dloss, tensor *dx);
tensor *op_softmax_ce(runtime *rt, tensor *x, tensor *labels, tensor *w, double normaliser);

/* Smooth L1 of d = x − t, any shape (t and w as x):
 *   ℓ = 0.5·d²/β if |d| < β, else |d| − 0.5·β;   β = 0 is the L1 loss |d|
 * (detectron2's rule: β < 1e-5 means L1). The sub-gradient of |d| at 0 is 0. */
void smooth_l1_forward_cpu(runtime *rt, double beta, const tensor *x, const tensor *t,
                           const tensor *w, double normaliser, tensor *loss);
void smooth_l1_backward_cpu(runtime *rt, double beta, const tensor *x, const tensor *t,
                            const tensor *w, double normaliser, const tensor *dloss, tensor *dx);
tensor *op_smooth_l1(runtime *rt, tensor *x, tensor *t, tensor *w, double beta, double normaliser);
tensor *op_l1(runtime *rt, tensor *x, tensor *t, tensor *w, double normaliser);

/* CUDA twins (kernels/loss.cu): the same contracts on f32 CUDA tensors, queued on
 * rt->stream, scratch from rt->dev; defined in CUDA builds only (MRC_CUDA). */
void bce_logits_forward_gpu(runtime *rt, const tensor *x, const tensor *t, const tensor *w, double normaliser, tensor *loss);
void bce_logits_backward_gpu(runtime *rt, const tensor *x, const tensor *t, const tensor *w, double normaliser, const tensor *dloss, tensor *dx);
void softmax_ce_forward_gpu(runtime *rt, const tensor *x, const tensor *labels, const tensor *w, double normaliser, tensor *loss);
void softmax_ce_backward_gpu(runtime *rt, const tensor *x, const tensor *labels, const tensor *w, double normaliser, const tensor *dloss, tensor *dx);
void smooth_l1_forward_gpu(runtime *rt, double beta, const tensor *x, const tensor *t, const tensor *w, double normaliser, tensor *loss);
void smooth_l1_backward_gpu(runtime *rt, double beta, const tensor *x, const tensor *t, const tensor *w, double normaliser, const tensor *dloss, tensor *dx);

#ifdef __cplusplus
}
#endif
#endif

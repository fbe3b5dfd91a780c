/* optim.h: SGD with momentum and weight decay, the learning-rate schedule, gradient
 * clipping and parameter groups (DESIGN §8 `solver.*`; reference/architecture.md §9.2).
 *
 * Semantics are PyTorch's torch.optim.SGD as detectron2 and mmdet drive it:
 *   g = grad + wd * p;  buf = momentum * buf + g  (buf = g on the first step);  p -= lr * buf
 * with wd chosen per parameter (solver.weight_decay, or weight_decay_norm for
 * normalisation parameters — names with a ".norm." / "_norm." / ".bn" / ".gn" part — or
 * weight_decay_bias for other ".bias" names). Frozen parameters are never touched (no
 * decay, no momentum). Clipping (mmdet's grad_clip, max_norm, L2): the global norm of the
 * trainable gradients, summed in double in parameter order, scales every gradient by
 * max_norm / (norm + 1e-6) when that is below 1, before the decay is added.
 *
 * The schedule is detectron2's WarmupMultiStepLR: at iteration i,
 *   lr = base_lr * warmup(i) * gamma ^ (number of steps <= i),
 *   warmup(i) = f + (1 - f) * i / warmup_iters for i < warmup_iters (linear), else 1.
 * Iteration i's update uses lr(i). */
#ifndef MRC_OPTIM_H
#define MRC_OPTIM_H

#include "core/tensor.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LR_MAX_STEPS 16

typedef struct lr_schedule {
    double base_lr;
    int64_t warmup_iters;
    double warmup_factor;
    int64_t steps[LR_MAX_STEPS];
    int n_steps;
    double gamma;
} lr_schedule;

double lr_at(const lr_schedule *s, int64_t iter);

typedef struct sgd_config {
    double momentum;
    double weight_decay, weight_decay_norm, weight_decay_bias;
    double clip_norm; /* 0: off */
} sgd_config;

/* The parameters a model owns, by name, with their optimizer state. */
typedef struct param_group {
    int n;
    tensor **params;     /* [n] persistent tensors with gradients (tensor_alloc_param) */
    uint8_t *trainable;  /* [n] */
    double *wd;          /* [n] weight decay of each */
    tensor *momentum;    /* [n] momentum buffers (allocated for the trainable ones) */
    int64_t steps;       /* updates done (the first one sets buf = g) */
    void *stream;        /* the CUDA stream of the updates (the runtime's; NULL: default) */
    int debug_sync;      /* synchronise after each launch (the runtime's debug mode) */
} param_group;

/* Glob match of a parameter name: '*' any run, '?' one character. */
int name_matches(const char *pattern, const char *name);

/* Groups params: a parameter trains unless frozen (a `frozen` pattern matches), or when
 * `trainable` patterns are given, unless none matches. 0, or -1 with err (a pattern that
 * matches no parameter is an error: it is almost always a typo). */
int param_group_init(param_group *g, tensor **params, int n, const sgd_config *c, const char *const *trainable,
                     int n_trainable, const char *const *frozen, int n_frozen, char *err, size_t errn);
void param_group_free(param_group *g);

/* The global L2 norm of the trainable gradients (double, parameter order). */
double grad_global_norm(const param_group *g);
/* One SGD update at learning rate lr (clipping first when configured); returns the
 * gradient norm before clipping (0 when clipping is off and not needed). */
double sgd_step(param_group *g, const sgd_config *c, double lr);
/* Zeroes every trainable gradient. */
void param_group_zero_grad(param_group *g);

/* The update on n floats (the CPU reference; the CUDA twin sgd_update_gpu in
 * kernels/optim.cu has the same contract): g' = scale * grad + wd * p; buf = first ? g' :
 * momentum * buf + g'; p -= lr * buf. */
void sgd_update_cpu(float *p, const float *grad, float *buf, int64_t n, float lr, float momentum, float wd, float scale,
                    int first);
void sgd_update_gpu(void *stream, int debug_sync, float *p, const float *grad, float *buf, int64_t n, float lr, float momentum, float wd,
                    float scale, int first);
/* Sum of squares of n floats in double (CPU: one loop in order; GPU: a fixed tree, so
 * deterministic, equal to the CPU's within rounding). The GPU one waits for its stream. */
double sum_squares_cpu(const float *x, int64_t n);
double sum_squares_gpu(void *stream, const float *x, int64_t n);

#ifdef __cplusplus
}
#endif
#endif

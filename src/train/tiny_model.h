/* tiny_model.h: `model.arch = tiny`, the small model the trainer is built and tested
 * against (issue 9: the trainer must not depend on the detector's details).
 *
 * For every ground-truth instance of a batch it takes five fixed features — the mean of
 * the normalised pixels inside the instance's box (three channels, divided by 64) and the
 * box's width and height over its image's — and classifies the instance with a two-layer
 * MLP (fc1: 5 -> 32, ReLU, fc2: 32 -> K) under softmax cross-entropy, averaged over the
 * instances (`loss_cls`). On the synth data set colour and shape decide the class, so the
 * loss falls. Parameters: tiny.fc1.weight/bias, tiny.fc2.weight/bias. */
#ifndef MRC_TINY_MODEL_H
#define MRC_TINY_MODEL_H

#include "core/runtime.h"
#include "data/loader.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TINY_FEATURES 5
#define TINY_HIDDEN 32

typedef struct tiny_model {
    int k;                /* classes */
    tensor fc1_w, fc1_b, fc2_w, fc2_b;
    tensor *params[4];
} tiny_model;

/* Parameters on the runtime's device, initialised from (seed, RNG_STREAM_INIT): weights
 * normal(0, 0.1), biases 0. */
void tiny_model_init(tiny_model *m, runtime *rt, int k, uint64_t seed);
void tiny_model_free(tiny_model *m);

/* Forward on batch b, recording on the tape: returns the loss (one element), or NULL when
 * the batch has no instance (nothing to learn from). */
tensor *tiny_model_loss(tiny_model *m, runtime *rt, const loader_batch *b);

#ifdef __cplusplus
}
#endif
#endif

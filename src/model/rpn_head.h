/* rpn_head.h: the RPN head shared across P2..P6 (architecture.md §5.1, detectron2
 * StandardRPNHead): conv 3×3 C→C (pad 1, bias) + ReLU, then objectness 1×1 C→A and
 * anchor deltas 1×1 C→4A. Delta channel 4a + j holds coordinate j ∈ (dx, dy, dw, dh) of
 * anchor a. Init N(0, 0.01) for the three weights, biases 0 (RNG_STREAM_INIT, sub-stream 1
 * so the backbone's draws are not shifted).
 * Names: proposal_generator.rpn_head.{conv,objectness_logits,anchor_deltas}.{weight,bias}. */
#ifndef MRC_MODEL_RPN_HEAD_H
#define MRC_MODEL_RPN_HEAD_H

#include "model/backbone.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RPN_MAX_LEVELS 5

typedef struct rpn_head {
    int channels, num_anchors;
    nn_conv conv, objectness, deltas;
    param_list params;
} rpn_head;

void rpn_head_init(rpn_head *h, int channels, int num_anchors, dtype dt, device dev, uint64_t seed);
void rpn_head_free(rpn_head *h);

typedef struct rpn_head_out {
    tensor *logits[RPN_MAX_LEVELS]; /* [N, H_l, W_l, A] */
    tensor *deltas[RPN_MAX_LEVELS]; /* [N, H_l, W_l, 4A] */
} rpn_head_out;

/* feats[l] [N, H_l, W_l, C] for l < n_levels (<= RPN_MAX_LEVELS); the same weights on each. */
rpn_head_out rpn_head_forward(runtime *rt, const rpn_head *h, tensor *const *feats, int n_levels);
/* Bytes of the head's outputs (conv, ReLU, logits, deltas) over levels of the given sizes. */
int64_t rpn_head_activation_bytes(const rpn_head *h, const int *hs, const int *ws, int n_levels);

#ifdef __cplusplus
}
#endif
#endif

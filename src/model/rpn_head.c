/* rpn_head.c: the shared RPN head (see rpn_head.h). */
#include "model/rpn_head.h"

#include "core/check.h"
#include "core/rng.h"
#include "ops/pointwise.h"

#include <stdlib.h>
#include <string.h>

static void init_normal(rng *r, tensor *t, float std) {
    if (t->dtype == DTYPE_F32) {
        rng_fill_normal(r, t, 0.0f, std);
        return;
    }
    CHECK(t->dtype == DTYPE_F64 && t->device == DEVICE_CPU, "rpn_head init: f32 or CPU f64 only");
    int64_t n = tensor_numel(t);
    float *tmp = malloc((size_t)n * sizeof *tmp);
    CHECK(tmp, "out of memory");
    rng_normal_cpu(r, tmp, n, 0.0f, std);
    for (int64_t i = 0; i < n; i++) tensor_f64(t)[i] = tmp[i];
    free(tmp);
}

void rpn_head_init(rpn_head *h, int channels, int num_anchors, dtype dt, device dev, uint64_t seed) {
    memset(h, 0, sizeof *h);
    h->channels = channels, h->num_anchors = num_anchors;
    nn_conv_init(&h->conv, &h->params, "proposal_generator.rpn_head.conv", channels, channels, 3, 1, 1, 1, NORM_NONE,
                 1, dt, dev);
    nn_conv_init(&h->objectness, &h->params, "proposal_generator.rpn_head.objectness_logits", channels, num_anchors,
                 1, 1, 0, 1, NORM_NONE, 1, dt, dev);
    nn_conv_init(&h->deltas, &h->params, "proposal_generator.rpn_head.anchor_deltas", channels, 4 * num_anchors, 1,
                 1, 0, 1, NORM_NONE, 1, dt, dev);
    rng r = rng_make(seed, RNG_STREAM_INIT | 1);
    nn_conv *cs[3] = {&h->conv, &h->objectness, &h->deltas};
    for (int i = 0; i < 3; i++) init_normal(&r, &cs[i]->w, 0.01f), tensor_zero(&cs[i]->b);
}

void rpn_head_free(rpn_head *h) {
    nn_conv_free(&h->conv), nn_conv_free(&h->objectness), nn_conv_free(&h->deltas);
    param_list_free(&h->params);
    memset(h, 0, sizeof *h);
}

rpn_head_out rpn_head_forward(runtime *rt, const rpn_head *h, tensor *const *feats, int n_levels) {
    rpn_head_out o;
    memset(&o, 0, sizeof o);
    CHECK(n_levels >= 1 && n_levels <= RPN_MAX_LEVELS, "rpn_head: %d levels", n_levels);
    for (int l = 0; l < n_levels; l++) {
        CHECK(feats[l]->ndim == 4 && feats[l]->shape[3] == h->channels, "rpn_head: level %d has %d channels, want %d",
              l, feats[l]->shape[3], h->channels);
        tensor *t = op_relu(rt, nn_conv_forward(rt, &h->conv, feats[l]));
        o.logits[l] = nn_conv_forward(rt, &h->objectness, t);
        o.deltas[l] = nn_conv_forward(rt, &h->deltas, t);
    }
    return o;
}

int64_t rpn_head_activation_bytes(const rpn_head *h, const int *hs, const int *ws, int n_levels) {
    int64_t total = 0, es = (int64_t)dtype_size(h->conv.w.dtype);
    for (int l = 0; l < n_levels; l++)
        total += (int64_t)hs[l] * ws[l] * es * (2 * h->channels + 5 * h->num_anchors);
    return total;
}

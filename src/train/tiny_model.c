/* tiny_model.c: the trainer's small model (see tiny_model.h). */
#include "train/tiny_model.h"

#include "core/check.h"
#include "core/rng.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/pointwise.h"

#include <math.h>
#include <string.h>


void tiny_model_init(tiny_model *m, runtime *rt, int k, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->k = k;
    device d = rt->device;
    m->fc1_w = tensor_alloc_param(DTYPE_F32, d, (const int[]){TINY_HIDDEN, TINY_FEATURES}, 2, "tiny.fc1.weight");
    m->fc1_b = tensor_alloc_param(DTYPE_F32, d, (const int[]){TINY_HIDDEN}, 1, "tiny.fc1.bias");
    m->fc2_w = tensor_alloc_param(DTYPE_F32, d, (const int[]){k, TINY_HIDDEN}, 2, "tiny.fc2.weight");
    m->fc2_b = tensor_alloc_param(DTYPE_F32, d, (const int[]){k}, 1, "tiny.fc2.bias");
    rng r = rng_make(seed, RNG_STREAM_INIT);
    rng_fill_normal(&r, &m->fc1_w, 0.0f, 0.1f);
    rng_fill_normal(&r, &m->fc2_w, 0.0f, 0.1f);
    tensor_zero(&m->fc1_b), tensor_zero(&m->fc2_b);
    m->params[0] = &m->fc1_w, m->params[1] = &m->fc1_b, m->params[2] = &m->fc2_w, m->params[3] = &m->fc2_b;
}

void tiny_model_free(tiny_model *m) {
    for (int i = 0; i < 4; i++)
        if (m->params[i]) tensor_free(m->params[i]);
    memset(m, 0, sizeof *m);
}

/* The five features of instance g of image k (host pixels; the loader's batch is host memory). */
static void features(const loader_batch *b, int k, int g, float *out) {
    const loader_image *im = &b->img[k];
    const float *box = b->gt_box + 4 * (im->first_gt + g);
    int x0 = (int)floorf(box[0]), y0 = (int)floorf(box[1]), x1 = (int)ceilf(box[2]), y1 = (int)ceilf(box[3]);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > im->w) x1 = im->w;
    if (y1 > im->h) y1 = im->h;
    const float *px = b->pixels + (size_t)k * b->canvas_h * b->canvas_w * 3;
    double s[3] = {0, 0, 0};
    int64_t n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++, n++)
            for (int c = 0; c < 3; c++) s[c] += px[((size_t)y * b->canvas_w + x) * 3 + c];
    for (int c = 0; c < 3; c++) out[c] = n ? (float)(s[c] / (double)n / 64.0) : 0.0f;
    out[3] = (box[2] - box[0]) / (float)im->w;
    out[4] = (box[3] - box[1]) / (float)im->h;
}

tensor *tiny_model_loss(tiny_model *m, runtime *rt, const loader_batch *b) {
    if (b->n_gt == 0) return NULL;
    tensor *x = runtime_tensor(rt, DEVICE_CPU, DTYPE_F32, (const int[]){b->n_gt, TINY_FEATURES}, 2);
    tensor *labels = runtime_tensor(rt, DEVICE_CPU, DTYPE_I32, (const int[]){b->n_gt}, 1);
    int r = 0;
    for (int k = 0; k < b->n; k++)
        for (int g = 0; g < b->img[k].n_gt; g++, r++) {
            features(b, k, g, tensor_f32(x) + (size_t)r * TINY_FEATURES);
            tensor_i32(labels)[r] = b->gt_class[b->img[k].first_gt + g];
        }
    CHECK(rt->device == DEVICE_CPU, "the tiny model runs on the CPU only");
    tensor *h = op_relu(rt, op_linear(rt, x, &m->fc1_w, &m->fc1_b));
    tensor *logits = op_linear(rt, h, &m->fc2_w, &m->fc2_b);
    return op_softmax_ce(rt, logits, labels, NULL, (double)b->n_gt);
}

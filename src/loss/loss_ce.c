/* loss_ce.c: the `ce` entry of the loss table: softmax cross-entropy over K+1 logits
 * (bg = column K), losses.md §1; mmdet's CrossEntropyLoss in BBoxHead.loss with label
 * weights 1 and avg_factor = R, which is detectron2's mean (without mmdet's + f32 eps in
 * the divisor: 1.5e-8 relative at R = 8, below f32 precision).
 *   loss_cls = loss_weight · Σ_r (logsumexp(x_r) − x_r[y_r]) / R
 * d(logits) comes from the softmax CE op's tape entry. No statistics, no state; inference
 * scores are softmax(x_r) over all K+1 columns with the bg column dropped (never
 * multiplied in). */
#include "core/check.h"
#include "loss/loss_table.h"
#include "ops/loss.h"

#include <math.h>

static int ce_num_logits(int K) { return K + 1; }

static void ce_check_logits(const loss_state *s, const tensor *logits, const char *what) {
    char b[128];
    CHECK(logits->ndim == 2 && logits->shape[1] == s->K + 1, "loss ce %s: logits must be [R, %d], got %s", what,
          s->K + 1, tensor_str(logits, b, sizeof b));
}

static loss_terms ce_forward(loss_state *s, runtime *rt, tensor *logits, const loss_rows *rows) {
    ce_check_logits(s, logits, "forward");
    CHECK(rows && rows->labels, "loss ce: the row labels are missing");
    CHECK(rows->R == logits->shape[0] && rows->R > 0, "loss ce: %d rows for %d logit rows", rows->R, logits->shape[0]);
    CHECK(s->params.loss_weight > 0, "loss ce: loss_weight %g must be positive", s->params.loss_weight);
    loss_terms t = {0};
    t.n = 1;
    t.name[0] = "loss_cls";
    /* Σ w·ℓ / (R / loss_weight) = loss_weight · mean */
    t.value[0] = op_softmax_ce(rt, logits, rows->labels, NULL, (double)rows->R / s->params.loss_weight);
    return t;
}

/* out[r, k] = exp(x_rk − max_r) / Σ_j exp(x_rj − max_r) for k < K (= cols − 1); the sum
 * in double, so f32 and f64 differ only by the final rounding. */
#define CE_SCORES(REAL, SFX)                                                              \
    static void ce_scores_##SFX(int R, int cols, const REAL *x, REAL *out) {             \
        _Pragma("omp parallel for schedule(static)")                                      \
        for (int r = 0; r < R; r++) {                                                     \
            const REAL *xr = x + (int64_t)r * cols;                                       \
            double m = xr[0], z = 0;                                                      \
            for (int k = 1; k < cols; k++) m = xr[k] > m ? xr[k] : m;                     \
            for (int k = 0; k < cols; k++) z += exp((double)xr[k] - m);                   \
            for (int k = 0; k + 1 < cols; k++)                                            \
                out[(int64_t)r * (cols - 1) + k] = (REAL)(exp((double)xr[k] - m) / z);    \
        }                                                                                 \
    }
CE_SCORES(float, f32)
CE_SCORES(double, f64)

void ce_scores_cpu(runtime *rt, const tensor *x, tensor *out) {
    (void)rt;
    char b[128];
    CHECK(x->device == DEVICE_CPU && (x->dtype == DTYPE_F32 || x->dtype == DTYPE_F64),
          "ce_scores_cpu: logits must be f32/f64 on the CPU, got %s", tensor_str(x, b, sizeof b));
    CHECK(x->ndim == 2 && x->shape[1] >= 2, "ce_scores_cpu: logits must be [R, K+1], got %s", tensor_str(x, b, sizeof b));
    tensor_expect(out, x->dtype, DEVICE_CPU, TSHAPE(x->shape[0], x->shape[1] - 1), "ce_scores_cpu out [R, K]");
    if (x->dtype == DTYPE_F64) ce_scores_f64(x->shape[0], x->shape[1], x->data, out->data);
    else ce_scores_f32(x->shape[0], x->shape[1], x->data, out->data);
}

static tensor *ce_scores(loss_state *s, runtime *rt, const tensor *logits) {
    ce_check_logits(s, logits, "scores");
    tensor *out = runtime_tensor(rt, logits->device, logits->dtype, TSHAPE(logits->shape[0], s->K));
#if MRC_CUDA
    if (logits->device == DEVICE_CUDA) ce_scores_gpu(rt, logits, out);
    else ce_scores_cpu(rt, logits, out);
#else
    CHECK(logits->device == DEVICE_CPU, "loss ce scores: a CUDA tensor in a build without CUDA");
    ce_scores_cpu(rt, logits, out);
#endif
    return out;
}

const loss_entry loss_entry_ce = {
    .name = "ce",
    .num_logits = ce_num_logits,
    .classifier = LOSS_CLASSIFIER_LINEAR,
    .needs = 0,
    .create = NULL,
    .destroy = NULL,
    .forward = ce_forward,
    .scores = ce_scores,
    .augment_rois = NULL,
    .save = NULL,
    .load = NULL,
};

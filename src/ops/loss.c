/* loss.c: BCE with logits, softmax cross-entropy and smooth L1 / L1 on the CPU (loss.h). */
#include "ops/loss.h"

#include "core/arena.h"
#include "ops/ops_internal.h"

#include <math.h>

#define REAL_INC "ops/loss_real.inc"
#include "ops/real_instantiate.h"

typedef enum { LOSS_BCE, LOSS_CE, LOSS_SMOOTH_L1 } loss_kind;
static const char *loss_name[] = {"bce_logits", "softmax_ce", "smooth_l1"};

/* Checks x and the per-element (per-row for CE) companions, the normaliser and the loss. */
static void loss_check(loss_kind k, const tensor *x, const tensor *t, const tensor *w, double normaliser,
                       const tensor *loss) {
    const char *op = loss_name[k];
    char s[128];
    ops_expect_real(op, "x", x);
    CHECK(t != NULL, "%s: the %s are missing", op, k == LOSS_CE ? "labels" : "targets");
    CHECK(normaliser > 0 && isfinite(normaliser), "%s: the normaliser must be positive, got %g", op, normaliser);
    if (k == LOSS_CE) {
        CHECK(x->ndim == 2 && x->shape[1] > 0, "%s: logits must be [R, K], got %s", op, tensor_str(x, s, sizeof s));
        tensor_expect(t, DTYPE_I32, x->device, TSHAPE(x->shape[0]), "softmax_ce labels [R]");
        if (w) tensor_expect(w, x->dtype, x->device, TSHAPE(x->shape[0]), "softmax_ce weights [R]");
    } else {
        ops_expect_same_shape(op, t, x);
        if (w) ops_expect_same_shape(op, w, x);
    }
    if (loss) tensor_expect(loss, x->dtype, x->device, TSHAPE(1), op);
}

/* The forward of any kind: writes the scalar. Scratch: one double per element (row). */
static void loss_forward(runtime *rt, loss_kind k, double beta, const tensor *x, const tensor *t, const tensor *w,
                         double normaliser, tensor *loss) {
    loss_check(k, x, t, w, normaliser, loss);
    int64_t n = k == LOSS_CE ? x->shape[0] : tensor_numel(x);
    const void *wd = w ? w->data : NULL;
    arena_mark m = arena_get_mark(&rt->host);
    double *buf = arena_alloc(&rt->host, (size_t)(n > 0 ? n : 1) * sizeof *buf), sum;
    if (k == LOSS_BCE) sum = OPS_REAL(x, bce_fwd, rt, n, x->data, t->data, wd, buf);
    else if (k == LOSS_CE) sum = OPS_REAL(x, ce_fwd, rt, (int)n, x->shape[1], x->data, t->data, wd, buf);
    else sum = OPS_REAL(x, sl1_fwd, rt, beta, n, x->data, t->data, wd, buf);
    arena_release(&rt->host, m);
    if (x->dtype == DTYPE_F64) *(double *)loss->data = sum / normaliser;
    else *(float *)loss->data = (float)(sum / normaliser);
}

static void loss_backward(runtime *rt, loss_kind k, double beta, const tensor *x, const tensor *t, const tensor *w,
                          double normaliser, const tensor *dloss, tensor *dx) {
    loss_check(k, x, t, w, normaliser, dloss);
    ops_expect_same_shape("loss backward dx", dx, x);
    double g = (x->dtype == DTYPE_F64 ? *(const double *)dloss->data : *(const float *)dloss->data) / normaliser;
    const void *wd = w ? w->data : NULL;
    if (k == LOSS_BCE) OPS_REAL(x, bce_bwd, rt, tensor_numel(x), x->data, t->data, wd, g, dx->data);
    else if (k == LOSS_CE) OPS_REAL(x, ce_bwd, rt, x->shape[0], x->shape[1], x->data, t->data, wd, g, dx->data);
    else OPS_REAL(x, sl1_bwd, rt, beta, tensor_numel(x), x->data, t->data, wd, g, dx->data);
}

void bce_logits_forward_cpu(runtime *rt, const tensor *x, const tensor *t, const tensor *w, double normaliser,
                            tensor *loss) {
    ops_expect_cpu("bce_logits_forward_cpu", x);
    loss_forward(rt, LOSS_BCE, 0, x, t, w, normaliser, loss);
}
void bce_logits_backward_cpu(runtime *rt, const tensor *x, const tensor *t, const tensor *w, double normaliser,
                             const tensor *dloss, tensor *dx) {
    ops_expect_cpu("bce_logits_backward_cpu", x);
    loss_backward(rt, LOSS_BCE, 0, x, t, w, normaliser, dloss, dx);
}
void softmax_ce_forward_cpu(runtime *rt, const tensor *x, const tensor *labels, const tensor *w, double normaliser,
                            tensor *loss) {
    ops_expect_cpu("softmax_ce_forward_cpu", x);
    loss_forward(rt, LOSS_CE, 0, x, labels, w, normaliser, loss);
}
void softmax_ce_backward_cpu(runtime *rt, const tensor *x, const tensor *labels, const tensor *w,
                             double normaliser, const tensor *dloss, tensor *dx) {
    ops_expect_cpu("softmax_ce_backward_cpu", x);
    loss_backward(rt, LOSS_CE, 0, x, labels, w, normaliser, dloss, dx);
}
void smooth_l1_forward_cpu(runtime *rt, double beta, const tensor *x, const tensor *t, const tensor *w,
                           double normaliser, tensor *loss) {
    ops_expect_cpu("smooth_l1_forward_cpu", x);
    loss_forward(rt, LOSS_SMOOTH_L1, beta, x, t, w, normaliser, loss);
}
void smooth_l1_backward_cpu(runtime *rt, double beta, const tensor *x, const tensor *t, const tensor *w,
                            double normaliser, const tensor *dloss, tensor *dx) {
    ops_expect_cpu("smooth_l1_backward_cpu", x);
    loss_backward(rt, LOSS_SMOOTH_L1, beta, x, t, w, normaliser, dloss, dx);
}

typedef struct loss_ctx {
    loss_kind kind;
    double beta, normaliser;
    tensor *x, *t, *w, *loss;
} loss_ctx;

static void loss_backward_tape(runtime *rt, void *p) {
    loss_ctx *c = p;
    tensor gx, *dx = ops_grad(rt, c->x, &gx);
    if (!c->loss->grad || !dx) return;
    tensor dloss = *c->loss;
    dloss.data = c->loss->grad;
    if (c->kind == LOSS_BCE) OPS_CALL(c->x, bce_logits_backward, rt, c->x, c->t, c->w, c->normaliser, &dloss, dx);
    else if (c->kind == LOSS_CE) OPS_CALL(c->x, softmax_ce_backward, rt, c->x, c->t, c->w, c->normaliser, &dloss, dx);
    else OPS_CALL(c->x, smooth_l1_backward, rt, c->beta, c->x, c->t, c->w, c->normaliser, &dloss, dx);
}

static tensor *loss_op(runtime *rt, loss_kind k, double beta, tensor *x, tensor *t, tensor *w, double normaliser) {
    device d = ops_device(loss_name[k], x);
    CHECK(beta >= 0, "smooth_l1: beta %g must not be negative", beta);
    tensor *loss = runtime_tensor(rt, d, x->dtype, TSHAPE(1));
    if (k == LOSS_BCE) OPS_CALL(x, bce_logits_forward, rt, x, t, w, normaliser, loss);
    else if (k == LOSS_CE) OPS_CALL(x, softmax_ce_forward, rt, x, t, w, normaliser, loss);
    else OPS_CALL(x, smooth_l1_forward, rt, beta, x, t, w, normaliser, loss);
    /* targets, labels and weights get no gradient: only x decides */
    if (RUNTIME_NEEDS_GRAD(rt, x)) {
        loss_ctx *c = runtime_record(rt, loss_name[k], loss_backward_tape, sizeof *c);
        *c = (loss_ctx){k, beta, normaliser, x, t, w, loss};
        loss->requires_grad = 1;
    }
    return loss;
}

tensor *op_bce_logits(runtime *rt, tensor *x, tensor *t, tensor *w, double normaliser) {
    return loss_op(rt, LOSS_BCE, 0, x, t, w, normaliser);
}
tensor *op_softmax_ce(runtime *rt, tensor *x, tensor *labels, tensor *w, double normaliser) {
    return loss_op(rt, LOSS_CE, 0, x, labels, w, normaliser);
}
tensor *op_smooth_l1(runtime *rt, tensor *x, tensor *t, tensor *w, double beta, double normaliser) {
    return loss_op(rt, LOSS_SMOOTH_L1, beta, x, t, w, normaliser);
}
tensor *op_l1(runtime *rt, tensor *x, tensor *t, tensor *w, double normaliser) {
    return loss_op(rt, LOSS_SMOOTH_L1, 0, x, t, w, normaliser);
}

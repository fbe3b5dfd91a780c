/* linear.c: linear, normed_linear and normed_conv1x1 on the CPU (see linear.h). */
#include "ops/linear.h"

#include "core/arena.h"
#include "ops/ops_internal.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define REAL_INC "ops/linear_real.inc"
#include "ops/real_instantiate.h"

/* Checks x [R, C], w [K, C], b [K] and y [R, K] (b and y may be NULL). */
static void linear_check(const char *op, const tensor *x, const tensor *w, const tensor *b, const tensor *y) {
    char s[128];
    char what[96];
    ops_expect_real(op, "x", x);
    CHECK(x->ndim == 2, "%s: x must be [R, C], got %s", op, tensor_str(x, s, sizeof s));
    CHECK(w != NULL, "%s: the weight is missing", op);
    snprintf(what, sizeof what, "%s weight [K, C]", op);
    tensor_expect(w, x->dtype, x->device, TSHAPE(-1, x->shape[1]), what);
    snprintf(what, sizeof what, "%s bias [K]", op);
    if (b) tensor_expect(b, x->dtype, x->device, TSHAPE(w->shape[0]), what);
    snprintf(what, sizeof what, "%s output [R, K]", op);
    if (y) tensor_expect(y, x->dtype, x->device, TSHAPE(x->shape[0], w->shape[0]), what);
}

void linear_forward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b, tensor *y) {
    ops_expect_cpu("linear_forward_cpu", x);
    linear_check("linear", x, w, b, y);
    OPS_REAL(x, linear_fwd, rt, x->shape[0], x->shape[1], w->shape[0], x->data, w->data, b ? b->data : NULL,
             y->data);
}

void linear_backward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *dy,
                         tensor *dx, tensor *dw, tensor *db) {
    ops_expect_cpu("linear_backward_cpu", x);
    linear_check("linear backward", x, w, db, dy);
    if (dx) ops_expect_same_shape("linear backward dx", dx, x);
    if (dw) ops_expect_same_shape("linear backward dw", dw, w);
    OPS_REAL(x, linear_bwd, rt, x->shape[0], x->shape[1], w->shape[0], x->data, w->data, dy->data,
             dx ? dx->data : NULL, dw ? dw->data : NULL, db ? db->data : NULL);
}

void normed_linear_forward_cpu(runtime *rt, const normed_args *a, const tensor *x, const tensor *w,
                               const tensor *b, tensor *y) {
    ops_expect_cpu("normed_linear_forward_cpu", x);
    linear_check("normed_linear", x, w, b, y);
    OPS_REAL(x, normed_fwd, rt, a, x->shape[0], x->shape[1], w->shape[0], x->data, w->data, b ? b->data : NULL,
             y->data);
}

void normed_linear_backward_cpu(runtime *rt, const normed_args *a, const tensor *x, const tensor *w,
                                const tensor *dy, tensor *dx, tensor *dw, tensor *db) {
    ops_expect_cpu("normed_linear_backward_cpu", x);
    linear_check("normed_linear backward", x, w, db, dy);
    if (dx) ops_expect_same_shape("normed_linear backward dx", dx, x);
    if (dw) ops_expect_same_shape("normed_linear backward dw", dw, w);
    OPS_REAL(x, normed_bwd, rt, a, x->shape[0], x->shape[1], w->shape[0], x->data, w->data, dy->data,
             dx ? dx->data : NULL, dw ? dw->data : NULL, db ? db->data : NULL);
}

typedef struct linear_ctx {
    int normed;
    normed_args a;
    tensor *x, *w, *b, *y;
} linear_ctx;

static void linear_backward_tape(runtime *rt, void *p) {
    linear_ctx *c = p;
    if (!c->y->grad) return;
    tensor dy = *c->y, gx, gw, gb;
    dy.data = c->y->grad;
    tensor *dx = ops_grad(rt, c->x, &gx), *dw = ops_grad(rt, c->w, &gw), *db = ops_grad(rt, c->b, &gb);
    if (c->normed) OPS_CALL(c->x, normed_linear_backward, rt, &c->a, c->x, c->w, &dy, dx, dw, db);
    else OPS_CALL(c->x, linear_backward, rt, c->x, c->w, &dy, dx, dw, db);
}

static tensor *linear_op(runtime *rt, tensor *x, tensor *w, tensor *b, int normed, double tau, double eps) {
    const char *name = normed ? "normed_linear" : "linear";
    device d = ops_device(name, x);
    linear_check(name, x, w, b, NULL);
    normed_args a = {tau, eps};
    tensor *y = runtime_tensor(rt, d, x->dtype, TSHAPE(x->shape[0], w->shape[0]));
    if (normed) OPS_CALL(x, normed_linear_forward, rt, &a, x, w, b, y);
    else OPS_CALL(x, linear_forward, rt, x, w, b, y);
    if (RUNTIME_NEEDS_GRAD(rt, x, w, b)) {
        linear_ctx *c = runtime_record(rt, name, linear_backward_tape, sizeof *c);
        *c = (linear_ctx){normed, a, x, w, b, y};
        y->requires_grad = 1;
    }
    return y;
}

tensor *op_linear(runtime *rt, tensor *x, tensor *w, tensor *b) { return linear_op(rt, x, w, b, 0, 1, 0); }

tensor *op_normed_linear(runtime *rt, tensor *x, tensor *w, tensor *b, double tau, double eps) {
    CHECK(tau > 0 && eps > 0, "normed_linear: temperature %g and eps %g must be positive", tau, eps);
    return linear_op(rt, x, w, b, 1, tau, eps);
}

tensor *op_normed_conv1x1(runtime *rt, tensor *x, tensor *w, tensor *b, double tau, double eps) {
    char s[128];
    ops_device("normed_conv1x1", x);
    ops_expect_real("normed_conv1x1", "x", x);
    CHECK(x->ndim == 4, "normed_conv1x1: x must be NHWC, got %s", tensor_str(x, s, sizeof s));
    CHECK(w != NULL, "normed_conv1x1: the weight is missing");
    tensor_expect(w, x->dtype, x->device, TSHAPE(-1, 1, 1, x->shape[3]), "normed_conv1x1 weight [K,1,1,C]");
    int N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3], K = w->shape[0];
    tensor *rows = runtime_reshape(rt, x, TSHAPE(N * H * W, C));
    tensor *w2 = runtime_reshape(rt, w, TSHAPE(K, C));
    tensor *y = op_normed_linear(rt, rows, w2, b, tau, eps);
    return runtime_reshape(rt, y, TSHAPE(N, H, W, K));
}

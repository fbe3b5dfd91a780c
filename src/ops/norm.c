/* norm.c: frozen batch norm and GroupNorm on the CPU (see norm.h). */
#include "ops/norm.h"

#include "core/arena.h"
#include "ops/ops_internal.h"

#include <math.h>
#include <string.h>

#define REAL_INC "ops/norm_real.inc"
#include "ops/real_instantiate.h"

/* ---- frozen batch norm ---------------------------------------------------------------- */

static void frozen_bn_check(const char *op, const tensor *x, const tensor *scale, const tensor *shift) {
    ops_expect_real(op, "x", x);
    int C = x->shape[x->ndim - 1];
    CHECK(scale != NULL, "%s: the scale is missing", op);
    tensor_expect(scale, x->dtype, x->device, TSHAPE(C), "frozen_bn scale [C]");
    if (shift) tensor_expect(shift, x->dtype, x->device, TSHAPE(C), "frozen_bn shift [C]");
}

void frozen_bn_forward_cpu(runtime *rt, const tensor *x, const tensor *scale, const tensor *shift, tensor *y) {
    ops_expect_cpu("frozen_bn_forward_cpu", x);
    CHECK(shift != NULL, "frozen_bn: the shift is missing");
    frozen_bn_check("frozen_bn", x, scale, shift);
    ops_expect_same_shape("frozen_bn output", y, x);
    int C = x->shape[x->ndim - 1];
    OPS_REAL(x, frozen_bn_fwd, rt, tensor_numel(x) / C, C, x->data, scale->data, shift->data, y->data);
}

void frozen_bn_backward_cpu(runtime *rt, const tensor *scale, const tensor *dy, tensor *dx) {
    ops_expect_cpu("frozen_bn_backward_cpu", scale);
    if (!dx) return;
    frozen_bn_check("frozen_bn backward", dy, scale, NULL);
    ops_expect_same_shape("frozen_bn backward dx", dx, dy);
    int C = dy->shape[dy->ndim - 1];
    OPS_REAL(dy, frozen_bn_bwd, rt, tensor_numel(dy) / C, C, scale->data, dy->data, dx->data);
}

typedef struct frozen_bn_ctx {
    tensor *x, *scale, *y;
} frozen_bn_ctx;

static void frozen_bn_backward_tape(runtime *rt, void *p) {
    frozen_bn_ctx *c = p;
    if (!c->y->grad) return;
    tensor dy = *c->y, gx;
    dy.data = c->y->grad;
    OPS_CALL(c->x, frozen_bn_backward, rt, c->scale, &dy, ops_grad(rt, c->x, &gx));
}

tensor *op_frozen_bn(runtime *rt, tensor *x, tensor *scale, tensor *shift) {
    device d = ops_device("frozen_bn", x);
    frozen_bn_check("frozen_bn", x, scale, shift);
    tensor *y = runtime_tensor(rt, d, x->dtype, x->shape, x->ndim);
    OPS_CALL(x, frozen_bn_forward, rt, x, scale, shift, y);
    /* the statistics are frozen: only x can carry a gradient */
    if (RUNTIME_NEEDS_GRAD(rt, x)) {
        frozen_bn_ctx *c = runtime_record(rt, "frozen_bn", frozen_bn_backward_tape, sizeof *c);
        *c = (frozen_bn_ctx){x, scale, y};
        y->requires_grad = 1;
    }
    return y;
}

/* ---- GroupNorm ------------------------------------------------------------------------- */

int group_norm_groups(int channels) { return channels < 32 ? channels : 32; }

static void group_norm_check(const char *op, const group_norm_args *a, const tensor *x, const tensor *gamma,
                             const tensor *beta) {
    char s[128];
    ops_expect_real(op, "x", x);
    CHECK(x->ndim == 4, "%s: x must be NHWC, got %s", op, tensor_str(x, s, sizeof s));
    int C = x->shape[3];
    CHECK(a->groups > 0 && C % a->groups == 0, "%s: %d channels do not split into %d groups", op, C, a->groups);
    CHECK(a->eps > 0, "%s: eps %g must be positive", op, a->eps);
    if (gamma) tensor_expect(gamma, x->dtype, x->device, TSHAPE(C), "group_norm gamma [C]");
    if (beta) tensor_expect(beta, x->dtype, x->device, TSHAPE(C), "group_norm beta [C]");
    CHECK(!gamma == !beta, "%s: gamma and beta come together", op);
}

void group_norm_forward_cpu(runtime *rt, const group_norm_args *a, const tensor *x, const tensor *gamma,
                            const tensor *beta, tensor *y, tensor *stats) {
    ops_expect_cpu("group_norm_forward_cpu", x);
    group_norm_check("group_norm", a, x, gamma, beta);
    ops_expect_same_shape("group_norm output", y, x);
    tensor_expect(stats, x->dtype, x->device, TSHAPE(x->shape[0], a->groups, 2), "group_norm stats [N,G,2]");
    OPS_REAL(x, group_norm_fwd, rt, x->shape[0], (int64_t)x->shape[1] * x->shape[2], x->shape[3], a->groups,
             a->eps, x->data, gamma ? gamma->data : NULL, beta ? beta->data : NULL, y->data, stats->data);
}

void group_norm_backward_cpu(runtime *rt, const group_norm_args *a, const tensor *x, const tensor *gamma,
                             const tensor *stats, const tensor *dy, tensor *dx, tensor *dgamma, tensor *dbeta) {
    ops_expect_cpu("group_norm_backward_cpu", x);
    group_norm_check("group_norm backward", a, x, gamma, gamma);
    ops_expect_same_shape("group_norm backward dy", dy, x);
    if (dx) ops_expect_same_shape("group_norm backward dx", dx, x);
    if (dgamma) tensor_expect(dgamma, x->dtype, x->device, TSHAPE(x->shape[3]), "group_norm dgamma [C]");
    if (dbeta) tensor_expect(dbeta, x->dtype, x->device, TSHAPE(x->shape[3]), "group_norm dbeta [C]");
    tensor_expect(stats, x->dtype, x->device, TSHAPE(x->shape[0], a->groups, 2), "group_norm stats [N,G,2]");
    OPS_REAL(x, group_norm_bwd, rt, x->shape[0], (int64_t)x->shape[1] * x->shape[2], x->shape[3], a->groups,
             x->data, gamma ? gamma->data : NULL, stats->data, dy->data, dx ? dx->data : NULL,
             dgamma ? dgamma->data : NULL, dbeta ? dbeta->data : NULL);
}

typedef struct group_norm_ctx {
    group_norm_args a;
    tensor *x, *gamma, *beta, *y, *stats;
} group_norm_ctx;

static void group_norm_backward_tape(runtime *rt, void *p) {
    group_norm_ctx *c = p;
    if (!c->y->grad) return;
    tensor dy = *c->y, gx, gg, gb;
    dy.data = c->y->grad;
    OPS_CALL(c->x, group_norm_backward, rt, &c->a, c->x, c->gamma, c->stats, &dy, ops_grad(rt, c->x, &gx),
                            ops_grad(rt, c->gamma, &gg), ops_grad(rt, c->beta, &gb));
}

tensor *op_group_norm(runtime *rt, tensor *x, tensor *gamma, tensor *beta, int groups, double eps) {
    group_norm_args a = {groups, eps};
    device d = ops_device("group_norm", x);
    group_norm_check("group_norm", &a, x, gamma, beta);
    tensor *y = runtime_tensor(rt, d, x->dtype, x->shape, x->ndim);
    tensor *stats = runtime_tensor(rt, d, x->dtype, TSHAPE(x->shape[0], groups, 2));
    OPS_CALL(x, group_norm_forward, rt, &a, x, gamma, beta, y, stats);
    if (RUNTIME_NEEDS_GRAD(rt, x, gamma, beta)) {
        group_norm_ctx *c = runtime_record(rt, "group_norm", group_norm_backward_tape, sizeof *c);
        *c = (group_norm_ctx){a, x, gamma, beta, y, stats};
        y->requires_grad = 1;
    }
    return y;
}

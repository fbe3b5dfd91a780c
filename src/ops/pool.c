/* pool.c: max pooling and the nearest 2× upsample on the CPU (see pool.h). */
#include "ops/pool.h"

#include "ops/conv.h"
#include "ops/ops_internal.h"

#include <math.h>
#include <string.h>

#define REAL_INC "ops/pool_real.inc"
#include "ops/real_instantiate.h"

void max_pool_check(const char *op, const pool_args *a, const tensor *x, const tensor *y) {
    char s[128];
    ops_expect_real(op, "x", x);
    CHECK(x->ndim == 4, "%s: x must be NHWC, got %s", op, tensor_str(x, s, sizeof s));
    /* PyTorch's rule; it also guarantees that no window lies entirely in the padding */
    CHECK(a->k > 0 && a->stride > 0 && a->pad >= 0 && 2 * a->pad <= a->k,
          "%s: bad window k %d stride %d pad %d (pad at most k/2)", op, a->k, a->stride, a->pad);
    int Ho = conv2d_out_size(x->shape[1], a->k, a->stride, a->pad);
    int Wo = conv2d_out_size(x->shape[2], a->k, a->stride, a->pad);
    CHECK(Ho > 0 && Wo > 0, "%s: window %d larger than the padded input %s", op, a->k, tensor_str(x, s, sizeof s));
    if (y) tensor_expect(y, x->dtype, x->device, TSHAPE(x->shape[0], Ho, Wo, x->shape[3]), "max_pool output");
}

void max_pool_forward_cpu(runtime *rt, const pool_args *a, const tensor *x, tensor *y) {
    ops_expect_cpu("max_pool_forward_cpu", x);
    max_pool_check("max_pool", a, x, y);
    OPS_REAL(x, max_pool_fwd, rt, a, x->shape[0], x->shape[1], x->shape[2], x->shape[3], y->shape[1], y->shape[2],
             x->data, y->data);
}

void max_pool_backward_cpu(runtime *rt, const pool_args *a, const tensor *x, const tensor *dy, tensor *dx) {
    ops_expect_cpu("max_pool_backward_cpu", x);
    max_pool_check("max_pool backward", a, x, dy);
    ops_expect_same_shape("max_pool backward dx", dx, x);
    OPS_REAL(x, max_pool_bwd, rt, a, x->shape[0], x->shape[1], x->shape[2], x->shape[3], dy->shape[1],
             dy->shape[2], x->data, dy->data, dx->data);
}

typedef struct pool_ctx {
    pool_args a; /* k == 0: upsample2x */
    tensor *x, *y;
} pool_ctx;

static void pool_backward_tape(runtime *rt, void *p) {
    pool_ctx *c = p;
    if (!c->y->grad) return;
    tensor dy = *c->y, gx;
    dy.data = c->y->grad;
    tensor *dx = ops_grad(rt, c->x, &gx);
    if (!dx) return;
    if (c->a.k) OPS_CALL(c->x, max_pool_backward, rt, &c->a, c->x, &dy, dx);
    else OPS_CALL(c->x, upsample2x_backward, rt, &dy, dx);
}

static void pool_record(runtime *rt, const char *name, pool_args a, tensor *x, tensor *y) {
    if (!RUNTIME_NEEDS_GRAD(rt, x)) return;
    pool_ctx *c = runtime_record(rt, name, pool_backward_tape, sizeof *c);
    *c = (pool_ctx){a, x, y};
    y->requires_grad = 1;
}

tensor *op_max_pool(runtime *rt, tensor *x, int k, int stride, int pad) {
    pool_args a = {k, stride, pad};
    device d = ops_device("max_pool", x);
    max_pool_check("max_pool", &a, x, NULL);
    tensor *y = runtime_tensor(rt, d, x->dtype,
                               TSHAPE(x->shape[0], conv2d_out_size(x->shape[1], k, stride, pad),
                                      conv2d_out_size(x->shape[2], k, stride, pad), x->shape[3]));
    OPS_CALL(x, max_pool_forward, rt, &a, x, y);
    pool_record(rt, "max_pool", a, x, y);
    return y;
}

void upsample2x_check(const char *op, const tensor *x, const tensor *y) {
    char s[128];
    ops_expect_real(op, "x", x);
    CHECK(x->ndim == 4, "%s: x must be NHWC, got %s", op, tensor_str(x, s, sizeof s));
    CHECK(y != NULL, "%s: the output is missing", op);
    tensor_expect(y, x->dtype, x->device, TSHAPE(x->shape[0], 2 * x->shape[1], 2 * x->shape[2], x->shape[3]),
                  "upsample2x output [N,2H,2W,C]");
}

void upsample2x_forward_cpu(runtime *rt, const tensor *x, tensor *y) {
    ops_expect_cpu("upsample2x_forward_cpu", x);
    upsample2x_check("upsample2x", x, y);
    OPS_REAL(x, upsample2x_fwd, rt, x->shape[0], x->shape[1], x->shape[2], x->shape[3], x->data, y->data);
}

void upsample2x_backward_cpu(runtime *rt, const tensor *dy, tensor *dx) {
    ops_expect_cpu("upsample2x_backward_cpu", dy);
    upsample2x_check("upsample2x backward", dx, dy);
    OPS_REAL(dx, upsample2x_bwd, rt, dx->shape[0], dx->shape[1], dx->shape[2], dx->shape[3], dy->data, dx->data);
}

tensor *op_upsample2x(runtime *rt, tensor *x) {
    device d = ops_device("upsample2x", x);
    char s[128];
    CHECK(x->ndim == 4, "upsample2x: x must be NHWC, got %s", tensor_str(x, s, sizeof s));
    tensor *y = runtime_tensor(rt, d, x->dtype, TSHAPE(x->shape[0], 2 * x->shape[1], 2 * x->shape[2], x->shape[3]));
    OPS_CALL(x, upsample2x_forward, rt, x, y);
    pool_record(rt, "upsample2x", (pool_args){0, 0, 0}, x, y);
    return y;
}

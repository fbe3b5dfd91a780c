/* pointwise.c: ReLU, add, scale, axpy and the gradient scale on the CPU (see pointwise.h). */
#include "ops/pointwise.h"

#include "core/arena.h"
#include "ops/ops_internal.h"

#define REAL_INC "ops/pointwise_real.inc"
#include "ops/real_instantiate.h"

void relu_forward_cpu(runtime *rt, const tensor *x, tensor *y) {
    ops_expect_cpu("relu_forward_cpu", x);
    ops_expect_real("relu", "x", x);
    ops_expect_same_shape("relu output", y, x);
    OPS_REAL(x, relu_fwd, rt, tensor_numel(x), x->data, y->data);
}

void relu_backward_cpu(runtime *rt, const tensor *y, const tensor *dy, tensor *dx) {
    ops_expect_cpu("relu_backward_cpu", y);
    ops_expect_real("relu backward", "y", y);
    ops_expect_same_shape("relu backward dy", dy, y);
    ops_expect_same_shape("relu backward dx", dx, y);
    OPS_REAL(y, relu_bwd, rt, tensor_numel(y), y->data, dy->data, dx->data);
}

void add_forward_cpu(runtime *rt, const tensor *a, const tensor *b, tensor *y) {
    ops_expect_cpu("add_forward_cpu", a);
    ops_expect_real("add", "a", a);
    ops_expect_same_shape("add", b, a);
    ops_expect_same_shape("add output", y, a);
    OPS_REAL(a, add_fwd, rt, tensor_numel(a), a->data, b->data, y->data);
}

void scale_forward_cpu(runtime *rt, const tensor *x, double s, tensor *y) {
    ops_expect_cpu("scale_forward_cpu", x);
    ops_expect_real("scale", "x", x);
    ops_expect_same_shape("scale output", y, x);
    OPS_REAL(x, scale_fwd, rt, tensor_numel(x), s, x->data, y->data);
}

void axpy_cpu(runtime *rt, double s, const tensor *dy, tensor *dx) {
    ops_expect_cpu("axpy_cpu", dy);
    ops_expect_real("axpy", "dy", dy);
    ops_expect_same_shape("axpy", dx, dy);
    OPS_REAL(dy, axpy, rt, tensor_numel(dy), s, dy->data, dx->data);
}

/* One context for the four ops: y = f(a[, b]); the backward sends s·dy (relu: masked dy)
 * to every input that needs a gradient. */
typedef struct pointwise_ctx {
    int relu;
    double s;
    tensor *a, *b, *y;
} pointwise_ctx;

static void pointwise_backward_tape(runtime *rt, void *p) {
    pointwise_ctx *c = p;
    if (!c->y->grad) return;
    tensor dy = *c->y, g;
    dy.data = c->y->grad;
    dy.requires_grad = 0;
    dy.grad = NULL;
    if (c->relu) {
        tensor *dx = ops_grad(rt, c->a, &g);
        if (dx) OPS_CALL(c->y, relu_backward, rt, c->y, &dy, dx);
        return;
    }
    if (ops_grad(rt, c->a, &g)) OPS_CALL(c->y, axpy, rt, c->s, &dy, &g);
    if (ops_grad(rt, c->b, &g)) OPS_CALL(c->y, axpy, rt, c->s, &dy, &g);
}

static void pointwise_record(runtime *rt, const char *name, int relu, double s, tensor *a, tensor *b, tensor *y) {
    if (!RUNTIME_NEEDS_GRAD(rt, a, b)) return;
    pointwise_ctx *c = runtime_record(rt, name, pointwise_backward_tape, sizeof *c);
    *c = (pointwise_ctx){relu, s, a, b, y};
    y->requires_grad = 1;
}

tensor *op_relu(runtime *rt, tensor *x) {
    device d = ops_device("relu", x);
    tensor *y = runtime_tensor(rt, d, x->dtype, x->shape, x->ndim);
    OPS_CALL(x, relu_forward, rt, x, y);
    pointwise_record(rt, "relu", 1, 1, x, NULL, y);
    return y;
}

tensor *op_add(runtime *rt, tensor *a, tensor *b) {
    device d = ops_device("add", a);
    tensor *y = runtime_tensor(rt, d, a->dtype, a->shape, a->ndim);
    OPS_CALL(a, add_forward, rt, a, b, y);
    pointwise_record(rt, "add", 0, 1, a, b, y);
    return y;
}

tensor *op_scale(runtime *rt, tensor *x, double s) {
    device d = ops_device("scale", x);
    tensor *y = runtime_tensor(rt, d, x->dtype, x->shape, x->ndim);
    OPS_CALL(x, scale_forward, rt, x, s, y);
    pointwise_record(rt, "scale", 0, s, x, NULL, y);
    return y;
}

tensor *op_grad_scale(runtime *rt, tensor *x, double s) {
    ops_device("grad_scale", x);
    ops_expect_real("grad_scale", "x", x);
    /* the same data under a new tensor with its own gradient buffer */
    tensor *y = arena_alloc(&rt->host, sizeof *y);
    *y = *x;
    y->grad = NULL;
    y->requires_grad = 0;
    y->name = NULL;
    pointwise_record(rt, "grad_scale", 0, s, x, NULL, y);
    return y;
}

/* select.c: gather_group and class_conv1x1 on the CPU (see select.h). */
#include "ops/select.h"

#include "core/arena.h"
#include "ops/ops_internal.h"

#include <stdio.h>

#define REAL_INC "ops/select_real.inc"
#include "ops/real_instantiate.h"

/* ---- shape contracts (shared with kernels/select.cu) --------------------------------- */

/* idx is i32 [R] on `d`. */
static void expect_index(const char *op, const char *what, const tensor *idx, device d, int R) {
    char msg[96];
    CHECK(idx != NULL, "%s: the %s are missing", op, what);
    snprintf(msg, sizeof msg, "%s %s [R]", op, what);
    tensor_expect(idx, DTYPE_I32, d, TSHAPE(R), msg);
}

int gather_group_check(const char *op, const tensor *x, const tensor *idx, int width, const tensor *y) {
    char s[128], msg[96];
    ops_expect_real(op, "x", x);
    CHECK(width > 0, "%s: the group width must be positive, got %d", op, width);
    CHECK(x->ndim == 2 && x->shape[1] % width == 0, "%s: x must be [R, G·%d], got %s", op, width,
          tensor_str(x, s, sizeof s));
    expect_index(op, "indices", idx, x->device, x->shape[0]);
    snprintf(msg, sizeof msg, "%s output [R, %d]", op, width);
    if (y) tensor_expect(y, x->dtype, x->device, TSHAPE(x->shape[0], width), msg);
    return x->shape[1] / width;
}

int class_conv1x1_check(const char *op, const tensor *x, const tensor *w, const tensor *b, const tensor *cls,
                        const tensor *y) {
    char s[128], msg[96];
    ops_expect_real(op, "x", x);
    CHECK(x->ndim == 4, "%s: x must be [R, H, W, C], got %s", op, tensor_str(x, s, sizeof s));
    CHECK(w != NULL, "%s: the weight is missing", op);
    int C = x->shape[3];
    snprintf(msg, sizeof msg, "%s weight [K, 1, 1, C] or [K, C]", op);
    if (w->ndim == 2) tensor_expect(w, x->dtype, x->device, TSHAPE(-1, C), msg);
    else tensor_expect(w, x->dtype, x->device, TSHAPE(-1, 1, 1, C), msg);
    int K = w->shape[0];
    snprintf(msg, sizeof msg, "%s bias [K]", op);
    if (b) tensor_expect(b, x->dtype, x->device, TSHAPE(K), msg);
    expect_index(op, "classes", cls, x->device, x->shape[0]);
    snprintf(msg, sizeof msg, "%s output [R, H, W, 1]", op);
    if (y) tensor_expect(y, x->dtype, x->device, TSHAPE(x->shape[0], x->shape[1], x->shape[2], 1), msg);
    return K;
}

/* Every index before any arithmetic; stops naming the first bad row. */
static void select_check_index(const char *op, const char *what, const tensor *idx, int limit) {
    const int32_t *v = idx->data;
    for (int r = 0; r < idx->shape[0]; r++)
        CHECK(v[r] >= 0 && v[r] < limit, "%s: %s %d of row %d is outside [0, %d)", op, what, v[r], r, limit);
}

/* ---- gather_group ------------------------------------------------------------------ */

void gather_group_forward_cpu(runtime *rt, const tensor *x, const tensor *idx, int width, tensor *y) {
    ops_expect_cpu("gather_group_forward_cpu", x);
    int G = gather_group_check("gather_group", x, idx, width, y);
    select_check_index("gather_group", "index", idx, G);
    OPS_REAL(x, gather_fwd, rt, x->shape[0], G, width, x->data, idx->data, y->data);
}

void gather_group_backward_cpu(runtime *rt, const tensor *idx, int width, const tensor *dy, tensor *dx) {
    CHECK(dx != NULL, "gather_group backward: dx is missing");
    ops_expect_cpu("gather_group_backward_cpu", dx);
    CHECK(dy != NULL, "gather_group backward: dy is missing");
    int G = gather_group_check("gather_group backward", dx, idx, width, dy);
    select_check_index("gather_group", "index", idx, G);
    OPS_REAL(dx, gather_bwd, rt, dx->shape[0], G, width, idx->data, dy->data, dx->data);
}

typedef struct gather_ctx {
    int width;
    tensor *x, *idx, *y;
} gather_ctx;

static void gather_backward_tape(runtime *rt, void *p) {
    gather_ctx *c = p;
    tensor gx, *dx = ops_grad(rt, c->x, &gx);
    if (!c->y->grad || !dx) return;
    tensor dy = *c->y;
    dy.data = c->y->grad;
    OPS_CALL(c->x, gather_group_backward, rt, c->idx, c->width, &dy, dx);
}

tensor *op_gather_group(runtime *rt, tensor *x, tensor *idx, int width) {
    device d = ops_device("gather_group", x);
    gather_group_check("gather_group", x, idx, width, NULL);
    tensor *y = runtime_tensor(rt, d, x->dtype, TSHAPE(x->shape[0], width));
    OPS_CALL(x, gather_group_forward, rt, x, idx, width, y);
    if (RUNTIME_NEEDS_GRAD(rt, x)) { /* the indices get no gradient */
        gather_ctx *c = runtime_record(rt, "gather_group", gather_backward_tape, sizeof *c);
        *c = (gather_ctx){width, x, idx, y};
        y->requires_grad = 1;
    }
    return y;
}

/* ---- class_conv1x1 ----------------------------------------------------------------- */

void class_conv1x1_forward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b, const tensor *cls,
                               tensor *y) {
    ops_expect_cpu("class_conv1x1_forward_cpu", x);
    CHECK(y != NULL, "class_conv1x1: the output is missing");
    int K = class_conv1x1_check("class_conv1x1", x, w, b, cls, y);
    select_check_index("class_conv1x1", "class", cls, K);
    OPS_REAL(x, cconv_fwd, rt, x->shape[0], x->shape[1] * x->shape[2], x->shape[3], x->data, w->data,
             b ? b->data : NULL, cls->data, y->data);
}

void class_conv1x1_backward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *cls, const tensor *dy,
                                tensor *dx, tensor *dw, tensor *db) {
    ops_expect_cpu("class_conv1x1_backward_cpu", x);
    CHECK(dy != NULL, "class_conv1x1 backward: dy is missing");
    int K = class_conv1x1_check("class_conv1x1 backward", x, w, db, cls, dy);
    if (dx) ops_expect_same_shape("class_conv1x1 backward dx", dx, x);
    if (dw) ops_expect_same_shape("class_conv1x1 backward dw", dw, w);
    select_check_index("class_conv1x1", "class", cls, K);
    int R = x->shape[0], HW = x->shape[1] * x->shape[2], C = x->shape[3];
    if (dx) OPS_REAL(x, cconv_bwd_dx, rt, R, HW, C, w->data, cls->data, dy->data, dx->data);
    if (!dw && !db) return;
    arena_mark m = arena_get_mark(&rt->host);
    double *part = arena_alloc(&rt->host, ((size_t)R * (size_t)(C + 1) + 1) * sizeof *part);
    OPS_REAL(x, cconv_row_partials, rt, R, HW, C, dw != NULL, x->data, dy->data, part);
    OPS_REAL(x, cconv_combine, rt, R, C, cls->data, part, dw ? dw->data : NULL, db ? db->data : NULL);
    arena_release(&rt->host, m);
}

typedef struct cconv_ctx {
    tensor *x, *w, *b, *cls, *y;
} cconv_ctx;

static void cconv_backward_tape(runtime *rt, void *p) {
    cconv_ctx *c = p;
    if (!c->y->grad) return;
    tensor dy = *c->y, gx, gw, gb;
    dy.data = c->y->grad;
    tensor *dx = ops_grad(rt, c->x, &gx), *dw = ops_grad(rt, c->w, &gw), *db = ops_grad(rt, c->b, &gb);
    if (!dx && !dw && !db) return;
    OPS_CALL(c->x, class_conv1x1_backward, rt, c->x, c->w, c->cls, &dy, dx, dw, db);
}

tensor *op_class_conv1x1(runtime *rt, tensor *x, tensor *w, tensor *b, tensor *cls) {
    device d = ops_device("class_conv1x1", x);
    class_conv1x1_check("class_conv1x1", x, w, b, cls, NULL);
    tensor *y = runtime_tensor(rt, d, x->dtype, TSHAPE(x->shape[0], x->shape[1], x->shape[2], 1));
    OPS_CALL(x, class_conv1x1_forward, rt, x, w, b, cls, y);
    if (RUNTIME_NEEDS_GRAD(rt, x, w, b)) { /* the classes get no gradient */
        cconv_ctx *c = runtime_record(rt, "class_conv1x1", cconv_backward_tape, sizeof *c);
        *c = (cconv_ctx){x, w, b, cls, y};
        y->requires_grad = 1;
    }
    return y;
}

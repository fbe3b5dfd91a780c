/* test_tape.c: the autograd tape on a small chain of toy f64 ops (defined here; the core
 * has no ops): reverse order, accumulation into inputs used twice, parameter gradients
 * accumulating across steps, gradient cuts, and a finite-difference check. */
#include "core/check.h"
#include "core/runtime.h"
#include "test.h"

/* Which backward functions ran, in order. */
static char order_log[256];

static void log_op(const char *name) {
    size_t len = strlen(order_log);
    if (len + strlen(name) + 2 > sizeof order_log) return; /* long runs: keep the start */
    strcat(order_log, name);
    strcat(order_log, " ");
}

/* ---- toy ops (f64, CPU) ---- */
typedef struct { tensor *x, *y; double a; } scale_ctx;
static void scale_backward(runtime *rt, void *p) {
    scale_ctx *c = p;
    log_op("scale");
    if (!c->y->grad) return;
    double *dx = tensor_grad(rt, c->x), *dy = c->y->grad;
    for (int64_t i = 0; i < tensor_numel(c->x); i++) dx[i] += c->a * dy[i];
}
static tensor *toy_scale(runtime *rt, tensor *x, double a) {
    tensor *y = runtime_tensor(rt, DEVICE_CPU, DTYPE_F64, x->shape, x->ndim);
    for (int64_t i = 0; i < tensor_numel(x); i++) tensor_f64(y)[i] = a * tensor_f64(x)[i];
    const tensor *in[] = {x};
    if (runtime_needs_grad(rt, in, 1)) {
        y->requires_grad = 1;
        scale_ctx *c = runtime_record(rt, "scale", scale_backward, sizeof *c);
        c->x = x, c->y = y, c->a = a;
    }
    return y;
}

typedef struct { tensor *a, *b, *y; } bin_ctx;
static void mul_backward(runtime *rt, void *p) {
    bin_ctx *c = p;
    log_op("mul");
    if (!c->y->grad) return;
    double *dy = c->y->grad;
    int64_t n = tensor_numel(c->y);
    if (c->a->requires_grad) {
        double *da = tensor_grad(rt, c->a);
        for (int64_t i = 0; i < n; i++) da[i] += dy[i] * tensor_f64(c->b)[i];
    }
    if (c->b->requires_grad) {
        double *db = tensor_grad(rt, c->b);
        for (int64_t i = 0; i < n; i++) db[i] += dy[i] * tensor_f64(c->a)[i];
    }
}
static void add_backward(runtime *rt, void *p) {
    bin_ctx *c = p;
    log_op("add");
    if (!c->y->grad) return;
    double *dy = c->y->grad;
    int64_t n = tensor_numel(c->y);
    if (c->a->requires_grad) {
        double *da = tensor_grad(rt, c->a);
        for (int64_t i = 0; i < n; i++) da[i] += dy[i];
    }
    if (c->b->requires_grad) {
        double *db = tensor_grad(rt, c->b);
        for (int64_t i = 0; i < n; i++) db[i] += dy[i];
    }
}
static tensor *toy_binary(runtime *rt, tensor *a, tensor *b, int is_mul) {
    tensor *y = runtime_tensor(rt, DEVICE_CPU, DTYPE_F64, a->shape, a->ndim);
    for (int64_t i = 0; i < tensor_numel(a); i++)
        tensor_f64(y)[i] = is_mul ? tensor_f64(a)[i] * tensor_f64(b)[i] : tensor_f64(a)[i] + tensor_f64(b)[i];
    if (RUNTIME_NEEDS_GRAD(rt, a, b)) {
        y->requires_grad = 1;
        bin_ctx *c = runtime_record(rt, is_mul ? "mul" : "add", is_mul ? mul_backward : add_backward, sizeof *c);
        c->a = a, c->b = b, c->y = y;
    }
    return y;
}

typedef struct { tensor *x, *y; } sum_ctx;
static void sum_backward(runtime *rt, void *p) {
    sum_ctx *c = p;
    log_op("sum");
    double dy = *(double *)c->y->grad;
    double *dx = tensor_grad(rt, c->x);
    for (int64_t i = 0; i < tensor_numel(c->x); i++) dx[i] += dy;
}
static tensor *toy_sum(runtime *rt, tensor *x) {
    tensor *y = runtime_tensor(rt, DEVICE_CPU, DTYPE_F64, TSHAPE(1));
    double s = 0;
    for (int64_t i = 0; i < tensor_numel(x); i++) s += tensor_f64(x)[i];
    tensor_f64(y)[0] = s;
    const tensor *in[] = {x};
    if (runtime_needs_grad(rt, in, 1)) {
        y->requires_grad = 1;
        sum_ctx *c = runtime_record(rt, "sum", sum_backward, sizeof *c);
        c->x = x, c->y = y;
    }
    return y;
}

/* A gradient cut: the output is a plain value, nothing is recorded. */
static tensor *toy_detach(runtime *rt, tensor *x) {
    tensor *y = runtime_tensor(rt, DEVICE_CPU, DTYPE_F64, x->shape, x->ndim);
    memcpy(y->data, x->data, tensor_bytes(x));
    return y;
}

/* L(x, w) = sum( (3x) * w + 3x ) with x used by scale, and scale's output used twice. */
static tensor *chain(runtime *rt, tensor *x, tensor *w) {
    tensor *y = toy_scale(rt, x, 3.0);
    tensor *z = toy_binary(rt, y, w, 1);
    tensor *v = toy_binary(rt, z, y, 0);
    return toy_sum(rt, v);
}

static runtime make_rt(void) {
    runtime_config cfg = runtime_config_default();
    cfg.device = "cpu";
    cfg.quiet = 1;
    cfg.host_block_bytes = 1 << 16;
    runtime rt;
    runtime_init(&rt, &cfg);
    return rt;
}

static void test_backward_order_and_accumulation(void) {
    runtime rt = make_rt();
    tensor x = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(4), "x");
    tensor w = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(4), "w");
    double xv[4] = {1, -2, 0.5, 3}, wv[4] = {0.25, 4, -1, 2};
    memcpy(x.data, xv, sizeof xv);
    memcpy(w.data, wv, sizeof wv);
    order_log[0] = 0;
    tensor *loss = chain(&rt, &x, &w);
    EXPECT(rt.tape.count == 4, "4 ops recorded, got %d", rt.tape.count);
    runtime_backward(&rt, loss);
    EXPECT(strcmp(order_log, "sum add mul scale ") == 0, "backward order was '%s'", order_log);
    EXPECT(rt.tape.count == 0, "backward clears the tape");
    /* dL/dx = 3 w + 3 (two paths through y); dL/dw = 3 x, worked out by hand. */
    double gx[4], gw[4], ex[4], ew[4];
    for (int i = 0; i < 4; i++) {
        gx[i] = ((double *)x.grad)[i], gw[i] = ((double *)w.grad)[i];
        ex[i] = 3 * wv[i] + 3, ew[i] = 3 * xv[i];
    }
    EXPECT_CLOSE("dL/dx", gx, ex, 4, 1e-12, 0);
    EXPECT_CLOSE("dL/dw", gw, ew, 4, 1e-12, 0);
    runtime_step_end(&rt);
    /* Parameter gradients accumulate across steps until the optimizer zeroes them. */
    loss = chain(&rt, &x, &w);
    runtime_backward(&rt, loss);
    for (int i = 0; i < 4; i++) ex[i] *= 2, gx[i] = ((double *)x.grad)[i];
    EXPECT_CLOSE("dL/dx after two steps", gx, ex, 4, 1e-12, 0);
    runtime_step_end(&rt);
    tensor_free(&x);
    tensor_free(&w);
    runtime_free(&rt);
}

static void test_cuts_and_no_grad(void) {
    runtime rt = make_rt();
    tensor x = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(3), "x");
    tensor c = tensor_alloc(DTYPE_F64, DEVICE_CPU, TSHAPE(3)); /* a constant */
    for (int i = 0; i < 3; i++) tensor_f64(&x)[i] = i + 1, tensor_f64(&c)[i] = 10;
    /* Constants alone record nothing. */
    toy_binary(&rt, &c, &c, 1);
    EXPECT(rt.tape.count == 0, "an op on constants recorded %d entries", rt.tape.count);
    /* A detached value stops the gradient: L = sum(detach(2x) * x) gives dL/dx = 2x only
     * through the direct path. */
    tensor *d = toy_detach(&rt, toy_scale(&rt, &x, 2.0));
    EXPECT(!d->requires_grad);
    tensor *loss = toy_sum(&rt, toy_binary(&rt, d, &x, 1));
    order_log[0] = 0;
    runtime_backward(&rt, loss);
    EXPECT(strcmp(order_log, "sum mul scale ") == 0, "order '%s'", order_log);
    for (int i = 0; i < 3; i++)
        EXPECT(((double *)x.grad)[i] == 2.0 * (i + 1), "dx[%d] = %g, want %g", i, ((double *)x.grad)[i], 2.0 * (i + 1));
    runtime_step_end(&rt);
    /* With the tape off (inference), nothing records and outputs need no gradient. */
    rt.tape.enabled = 0;
    tensor *y = toy_scale(&rt, &x, 5.0);
    EXPECT(rt.tape.count == 0 && !y->requires_grad);
    rt.tape.enabled = 1;
    runtime_step_end(&rt);
    tensor_free(&x);
    tensor_free(&c);
    runtime_free(&rt);
}

typedef struct { runtime *rt; int n; } fd_ctx;
/* L(x, w) evaluated through the same ops with the tape off; v = [x, w]. */
static double chain_value(const double *v, void *p) {
    fd_ctx *c = p;
    runtime *rt = c->rt;
    arena_mark m = arena_get_mark(&rt->host);
    int enabled = rt->tape.enabled;
    rt->tape.enabled = 0;
    tensor x = tensor_view((double *)v, DTYPE_F64, DEVICE_CPU, TSHAPE(c->n));
    tensor w = tensor_view((double *)v + c->n, DTYPE_F64, DEVICE_CPU, TSHAPE(c->n));
    double r = tensor_f64(chain(rt, &x, &w))[0];
    rt->tape.enabled = enabled;
    arena_release(&rt->host, m);
    return r;
}

static void test_gradient_matches_finite_differences(void) {
    runtime rt = make_rt();
    enum { N = 6 };
    tensor x = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(N), "x");
    tensor w = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(N), "w");
    double v[2 * N], g[2 * N];
    for (int i = 0; i < N; i++) {
        tensor_f64(&x)[i] = v[i] = 0.3 * i - 0.7;
        tensor_f64(&w)[i] = v[N + i] = 1.1 - 0.25 * i;
    }
    runtime_backward(&rt, chain(&rt, &x, &w));
    for (int i = 0; i < N; i++) g[i] = ((double *)x.grad)[i], g[N + i] = ((double *)w.grad)[i];
    fd_ctx c = {&rt, N};
    EXPECT_GRADCHECK("toy chain", chain_value, &c, v, g, 2 * N, 1e-6, 1e-8, 1e-7);
    runtime_step_end(&rt);
    tensor_free(&x);
    tensor_free(&w);
    runtime_free(&rt);
}

static void test_steady_steps_do_not_grow(void) {
    runtime rt = make_rt();
    tensor x = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(64), "x");
    tensor w = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(64), "w");
    runtime_backward(&rt, chain(&rt, &x, &w));
    runtime_step_end(&rt);
    int64_t grows = rt.tape.grows, blocks = rt.host.block_allocs;
    for (int i = 0; i < 50; i++) {
        runtime_backward(&rt, chain(&rt, &x, &w));
        runtime_step_end(&rt);
    }
    EXPECT(rt.tape.grows == grows && rt.host.block_allocs == blocks,
           "steady steps allocated: tape grew %lld times, %lld new arena blocks",
           (long long)(rt.tape.grows - grows), (long long)(rt.host.block_allocs - blocks));
    tensor_free(&x);
    tensor_free(&w);
    runtime_free(&rt);
}

/* Gradients pass through views of step tensors to their base. */
static void test_views_carry_gradients(void) {
    runtime rt = make_rt();
    tensor x = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(4, 2), "x");
    for (int i = 0; i < 8; i++) tensor_f64(&x)[i] = i;
    /* L = sum(reshape(2x)) -> dL/dx = 2 */
    tensor *v = runtime_reshape(&rt, toy_scale(&rt, &x, 2.0), TSHAPE(8));
    runtime_backward(&rt, toy_sum(&rt, v));
    for (int i = 0; i < 8; i++) EXPECT(((double *)x.grad)[i] == 2.0, "reshape: dx[%d] = %g, want 2", i, ((double *)x.grad)[i]);
    runtime_step_end(&rt);
    memset(x.grad, 0, tensor_bytes(&x));
    /* L = sum(rows 1..2 of 3x) -> dL/dx = 3 on rows 1 and 2, 0 elsewhere */
    tensor *r = runtime_rows(&rt, toy_scale(&rt, &x, 3.0), 1, 2);
    runtime_backward(&rt, toy_sum(&rt, r));
    for (int i = 0; i < 8; i++) {
        double want = (i >= 2 && i < 6) ? 3.0 : 0.0;
        EXPECT(((double *)x.grad)[i] == want, "rows: dx[%d] = %g, want %g", i, ((double *)x.grad)[i], want);
    }
    /* Views of a parameter share its persistent gradient directly. */
    tensor pv = tensor_reshape(&x, TSHAPE(8));
    EXPECT(pv.grad == x.grad && pv.requires_grad);
    runtime_step_end(&rt);
    tensor_free(&x);
    runtime_free(&rt);
}

static void plain_view_of_step_tensor(void *arg) {
    (void)arg;
    runtime rt = make_rt();
    tensor x = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(4), "x");
    tensor *y = toy_scale(&rt, &x, 2.0);
    tensor_reshape(y, TSHAPE(2, 2));
}

static void grad_of_constant(void *arg) {
    (void)arg;
    runtime rt = make_rt();
    tensor c = tensor_alloc(DTYPE_F64, DEVICE_CPU, TSHAPE(4));
    tensor_grad(&rt, &c);
}

static void test_gradient_misuse_is_caught(void) {
    char out[2048];
    int st = test_run_child(plain_view_of_step_tensor, NULL, out, sizeof out);
    EXPECT(st == 1 && strstr(out, "reshape of f64[4]@cpu, which needs a gradient but has no buffer yet: use runtime_reshape"),
           "status %d: %s", st, out);
    st = test_run_child(grad_of_constant, NULL, out, sizeof out);
    EXPECT(st == 1 && strstr(out, "gradient asked of f64[4]@cpu, which does not need one"), "status %d: %s", st, out);
}

/* A backward that calls a forward op (as a real op may, e.g. to recompute) records nothing. */
typedef struct { tensor *x, *y; int recorded; } recompute_ctx;
static void recompute_backward(runtime *rt, void *p) {
    recompute_ctx *c = p;
    int before = rt->tape.count;
    tensor *t = toy_scale(rt, c->x, 1.0); /* x requires grad: would record if the tape were on */
    c->recorded = rt->tape.count - before + t->requires_grad;
    double *dx = tensor_grad(rt, c->x);
    for (int64_t i = 0; i < tensor_numel(c->x); i++) dx[i] += *(double *)c->y->grad;
}

static void test_backward_does_not_record(void) {
    runtime rt = make_rt();
    tensor x = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(3), "x");
    tensor *y = runtime_tensor(&rt, DEVICE_CPU, DTYPE_F64, TSHAPE(1));
    tensor_f64(y)[0] = 0;
    y->requires_grad = 1;
    recompute_ctx *c = runtime_record(&rt, "recompute", recompute_backward, sizeof *c);
    c->x = &x, c->y = y;
    runtime_backward(&rt, y);
    EXPECT(c->recorded == 0, "an op run during backward recorded (%d)", c->recorded);
    EXPECT(rt.tape.enabled == 1 && rt.tape.count == 0, "tape state after backward: enabled %d, count %d",
           rt.tape.enabled, rt.tape.count);
    EXPECT(((double *)x.grad)[2] == 1.0);
    runtime_step_end(&rt);
    tensor_free(&x);
    runtime_free(&rt);
}

static void backward_from_vector(void *arg) {
    (void)arg;
    runtime rt = make_rt();
    tensor x = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(3), "x");
    runtime_backward(&rt, toy_scale(&rt, &x, 2.0));
}

static void test_backward_needs_a_scalar(void) {
    char out[2048];
    int st = test_run_child(backward_from_vector, NULL, out, sizeof out);
    EXPECT(st == 1 && strstr(out, "backward starts from a scalar f32/f64 loss, got f64[3]@cpu"),
           "status %d: %s", st, out);
}

int main(void) {
    RUN(test_backward_order_and_accumulation);
    RUN(test_cuts_and_no_grad);
    RUN(test_gradient_matches_finite_differences);
    RUN(test_steady_steps_do_not_grow);
    RUN(test_backward_needs_a_scalar);
    RUN(test_views_carry_gradients);
    RUN(test_gradient_misuse_is_caught);
    RUN(test_backward_does_not_record);
    return test_finish("test_tape");
}

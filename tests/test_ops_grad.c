/* test_ops_grad.c: finite-difference gradient checks (f64, through the tape) of every
 * dense op's backward in src/ops/, with the op variants the detector uses: bias or not,
 * strides, padding, frozen weights, per-element weights and normalisers. */
#include "ops_test.h"

#include "ops/conv.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/pointwise.h"
#include "ops/pool.h"

#define H 1e-6
#define ATOL 1e-7
#define RTOL 1e-5
#define F64 DTYPE_F64

typedef struct args {
    int i[4];
    double d[4];
} args;

static tensor *conv_fn(runtime *rt, tensor **in, const void *c) {
    const args *a = c;
    return op_conv2d(rt, in[0], in[1], in[2], a->i[0], a->i[1]);
}

/* frozen_w: 1 = constant weight; 2 = constant input (the image: dw and db only) */
static void check_conv(int N, int Hh, int W, int C, int K, int k, int stride, int pad, int bias, int frozen_w) {
    runtime *rt = ot_runtime(2);
    tensor *x = frozen_w == 2 ? ot_const(F64, TSHAPE(N, Hh, W, C), -1, 1) : ot_param(F64, TSHAPE(N, Hh, W, C), -1, 1);
    tensor *w = frozen_w == 1 ? ot_const(F64, TSHAPE(K, k, k, C), -1, 1) : ot_param(F64, TSHAPE(K, k, k, C), -1, 1);
    tensor *b = bias ? ot_param(F64, TSHAPE(K), -1, 1) : NULL;
    args a = {.i = {stride, pad}};
    char what[128];
    snprintf(what, sizeof what, "conv2d %dx%d s%d p%d on [%d,%d,%d,%d]->%d%s%s", k, k, stride, pad, N, Hh, W, C, K,
             bias ? " +bias" : "", frozen_w == 1 ? " frozen w" : frozen_w == 2 ? " constant x" : "");
    OT_GRADCHECK(what, rt, conv_fn, &a, ((tensor *[]){x, w, b}), 3, H, ATOL, RTOL);
    ot_free(x), ot_free(w), ot_free(b);
}

static void test_conv2d_grad(void) {
    ot_seed(1);
    check_conv(2, 5, 6, 3, 4, 3, 1, 1, 1, 0);
    check_conv(1, 7, 6, 2, 3, 3, 2, 1, 0, 0);
    check_conv(1, 7, 5, 3, 2, 1, 2, 0, 0, 0); /* projection shortcut */
    check_conv(1, 9, 8, 2, 2, 7, 2, 3, 0, 0); /* stem shape */
    check_conv(2, 4, 3, 5, 3, 1, 1, 0, 1, 0); /* pointwise GEMM path */
    check_conv(1, 6, 6, 3, 2, 3, 1, 0, 1, 1); /* frozen weight: dx and db only */
    check_conv(1, 9, 8, 3, 2, 7, 2, 3, 1, 2); /* the stem: the image needs no gradient */
    /* only the bias trains */
    runtime *rt = ot_runtime(2);
    tensor *x = ot_const(F64, TSHAPE(1, 5, 5, 2), -1, 1), *w = ot_const(F64, TSHAPE(3, 3, 3, 2), -1, 1);
    tensor *b = ot_param(F64, TSHAPE(3), -1, 1);
    args a = {.i = {1, 1}};
    OT_GRADCHECK("conv2d bias only", rt, conv_fn, &a, ((tensor *[]){x, w, b}), 3, H, ATOL, RTOL);
    ot_free(x), ot_free(w), ot_free(b);
}

static tensor *deconv_fn(runtime *rt, tensor **in, const void *c) { return op_deconv2x2(rt, in[0], in[1], in[2]); }

static void test_deconv_grad(void) {
    ot_seed(2);
    runtime *rt = ot_runtime(2);
    for (int bias = 0; bias < 2; bias++) {
        tensor *x = ot_param(F64, TSHAPE(2, 3, 4, 3), -1, 1), *w = ot_param(F64, TSHAPE(4, 2, 2, 3), -1, 1);
        tensor *b = bias ? ot_param(F64, TSHAPE(4), -1, 1) : NULL;
        OT_GRADCHECK(bias ? "deconv2x2 +bias" : "deconv2x2", rt, deconv_fn, NULL, ((tensor *[]){x, w, b}), 3, H, ATOL,
                     RTOL);
        ot_free(x), ot_free(w), ot_free(b);
    }
}

static tensor *linear_fn(runtime *rt, tensor **in, const void *c) { return op_linear(rt, in[0], in[1], in[2]); }
static tensor *normed_fn(runtime *rt, tensor **in, const void *c) {
    const args *a = c;
    return op_normed_linear(rt, in[0], in[1], in[2], a->d[0], a->d[1]);
}
static tensor *normed_conv_fn(runtime *rt, tensor **in, const void *c) {
    const args *a = c;
    return op_normed_conv1x1(rt, in[0], in[1], in[2], a->d[0], a->d[1]);
}

static void test_linear_grad(void) {
    ot_seed(3);
    runtime *rt = ot_runtime(2);
    tensor *x = ot_param(F64, TSHAPE(5, 7), -1, 1), *w = ot_param(F64, TSHAPE(4, 7), -1, 1);
    tensor *b = ot_param(F64, TSHAPE(4), -1, 1);
    OT_GRADCHECK("linear", rt, linear_fn, NULL, ((tensor *[]){x, w, b}), 3, H, ATOL, RTOL);
    OT_GRADCHECK("linear no bias", rt, linear_fn, NULL, ((tensor *[]){x, w, NULL}), 3, H, ATOL, RTOL);
    /* the recipes' temperature 20 and eps 1e-6 (reference/architecture.md §9.3) */
    args a = {.d = {20, 1e-6}};
    OT_GRADCHECK("normed_linear", rt, normed_fn, &a, ((tensor *[]){x, w, b}), 3, H, ATOL, RTOL);
    ot_free(x), ot_free(w), ot_free(b);
    tensor *xc = ot_param(F64, TSHAPE(2, 3, 2, 5), -1, 1), *wc = ot_param(F64, TSHAPE(3, 1, 1, 5), -1, 1);
    tensor *bc = ot_param(F64, TSHAPE(3), -1, 1);
    OT_GRADCHECK("normed_conv1x1", rt, normed_conv_fn, &a, ((tensor *[]){xc, wc, bc}), 3, H, ATOL, RTOL);
    ot_free(xc), ot_free(wc), ot_free(bc);
}

/* At x = 0 the norm has no derivative; the op takes its sub-gradient as 0 (PyTorch), so
 * by hand: y = b and dx = τ/ε · dy·ŵ, with ŵ the unit rows of w. */
static void test_normed_linear_zero_row(void) {
    ot_seed(4);
    runtime *rt = ot_runtime(2);
    runtime_step_end(rt);
    const int C = 4, K = 3;
    const double tau = 20, eps = 1e-6;
    tensor *x = ot_param(F64, TSHAPE(1, C), 0, 0), *w = ot_param(F64, TSHAPE(K, C), -1, 1);
    tensor *b = ot_param(F64, TSHAPE(K), -1, 1);
    tensor *y = op_normed_linear(rt, x, w, b, tau, eps);
    double dy[3] = {0.5, -1.0, 2.0}, want_dx[4] = {0}, got_y[3], want_y[3];
    for (int k = 0; k < K; k++) {
        got_y[k] = ot_get(y, k);
        want_y[k] = ot_get(b, k);
        double nrm = 0;
        for (int c = 0; c < C; c++) nrm += ot_get(w, k * C + c) * ot_get(w, k * C + c);
        nrm = sqrt(nrm) + eps;
        for (int c = 0; c < C; c++) want_dx[c] += tau / eps * dy[k] * ot_get(w, k * C + c) / nrm;
    }
    EXPECT_CLOSE("normed_linear y at x = 0", got_y, want_y, K, 1e-12, 0);
    memcpy(tensor_grad(rt, y), dy, sizeof dy);
    tape_backward(&rt->tape, rt);
    EXPECT_CLOSE("normed_linear dx at x = 0", (double *)x->grad, want_dx, C, 1e-6, 1e-12);
    runtime_step_end(rt);
    ot_free(x), ot_free(w), ot_free(b);
}

static tensor *frozen_bn_fn(runtime *rt, tensor **in, const void *c) { return op_frozen_bn(rt, in[0], in[1], in[2]); }
static tensor *gn_fn(runtime *rt, tensor **in, const void *c) {
    const args *a = c;
    return op_group_norm(rt, in[0], in[1], in[2], a->i[0], 1e-5);
}

static void test_norm_grad(void) {
    ot_seed(5);
    runtime *rt = ot_runtime(2);
    tensor *x = ot_param(F64, TSHAPE(2, 3, 4, 6), -2, 2);
    tensor *s = ot_const(F64, TSHAPE(6), 0.5, 2), *t = ot_const(F64, TSHAPE(6), -1, 1);
    OT_GRADCHECK("frozen_bn", rt, frozen_bn_fn, NULL, ((tensor *[]){x, s, t}), 3, H, ATOL, RTOL);
    tensor *g = ot_param(F64, TSHAPE(6), 0.5, 2), *b = ot_param(F64, TSHAPE(6), -1, 1);
    for (int groups = 1; groups <= 6; groups *= 2) { /* 1, 2 (3 channels each), 4 is skipped */
        if (6 % groups) continue;
        args a = {.i = {groups}};
        char what[64];
        snprintf(what, sizeof what, "group_norm G=%d", groups);
        OT_GRADCHECK(what, rt, gn_fn, &a, ((tensor *[]){x, g, b}), 3, H, ATOL, RTOL);
    }
    args a6 = {.i = {6}};
    OT_GRADCHECK("group_norm G=C", rt, gn_fn, &a6, ((tensor *[]){x, g, b}), 3, H, ATOL, RTOL);
    args a3 = {.i = {3}};
    OT_GRADCHECK("group_norm no affine", rt, gn_fn, &a3, ((tensor *[]){x, NULL, NULL}), 3, H, ATOL, RTOL);
    tensor *gc = ot_const(F64, TSHAPE(6), 0.5, 2);
    OT_GRADCHECK("group_norm frozen gamma", rt, gn_fn, &a3, ((tensor *[]){x, gc, b}), 3, H, ATOL, RTOL);
    ot_free(gc);
    ot_free(x), ot_free(s), ot_free(t), ot_free(g), ot_free(b);
}

static tensor *relu_fn(runtime *rt, tensor **in, const void *c) { return op_relu(rt, in[0]); }
static tensor *add_fn(runtime *rt, tensor **in, const void *c) { return op_add(rt, in[0], in[1]); }
static tensor *scale_fn(runtime *rt, tensor **in, const void *c) { return op_scale(rt, in[0], -2.5); }
/* With s = 1 grad_scale is an exact identity, so the finite differences apply; s != 1 is
 * checked by hand below (its backward is on purpose not its forward's derivative). */
static tensor *grad_scale_fn(runtime *rt, tensor **in, const void *c) {
    return op_relu(rt, op_grad_scale(rt, in[0], 1.0));
}

static void test_pointwise_grad(void) {
    ot_seed(6);
    runtime *rt = ot_runtime(2);
    tensor *x = ot_param(F64, TSHAPE(3, 4, 5), -1, 1), *y = ot_param(F64, TSHAPE(3, 4, 5), -1, 1);
    for (int64_t i = 0; i < tensor_numel(x); i++) /* keep ReLU's inputs away from its kink */
        if (fabs(ot_get(x, i)) < 0.05) ot_set(x, i, 0.1);
    OT_GRADCHECK("relu", rt, relu_fn, NULL, ((tensor *[]){x}), 1, H, ATOL, RTOL);
    OT_GRADCHECK("add", rt, add_fn, NULL, ((tensor *[]){x, y}), 2, H, ATOL, RTOL);
    OT_GRADCHECK("add x + x", rt, add_fn, NULL, ((tensor *[]){x, x}), 2, H, ATOL, RTOL);
    OT_GRADCHECK("scale", rt, scale_fn, NULL, ((tensor *[]){x}), 1, H, ATOL, RTOL);
    OT_GRADCHECK("grad_scale(1) then relu", rt, grad_scale_fn, NULL, ((tensor *[]){x}), 1, H, ATOL, RTOL);
    ot_free(x), ot_free(y);
}

/* grad_scale's backward is not the derivative of its forward (that is the point): check it
 * by hand. dx = s·dy and the forward is the identity on the same memory. The way the
 * detector uses it: scaled features, reshaped, read by two consumers, plus a direct use of
 * x that is not scaled:
 *   L = Σ 2·v + Σ 3·v + Σ x,  v = reshape(grad_scale(x, 0.25))  =>  dL/dx = 0.25·5 + 1. */
static void test_grad_scale_by_hand(void) {
    runtime *rt = ot_runtime(2);
    runtime_step_end(rt);
    tensor *x = ot_param(F64, TSHAPE(2, 3), -1, 1);
    memset(x->grad, 0, tensor_bytes(x));
    tensor *y = op_grad_scale(rt, x, 0.25);
    EXPECT(y->data == x->data, "grad_scale copies its input");
    EXPECT(y->requires_grad, "grad_scale output must record");
    tensor *v = runtime_reshape(rt, y, TSHAPE(6));
    tensor *xs = runtime_reshape(rt, x, TSHAPE(6));
    tensor *two = ot_const(F64, TSHAPE(6), 0, 0), *three = ot_const(F64, TSHAPE(6), 0, 0);
    for (int i = 0; i < 6; i++) ((double *)two->data)[i] = 2, ((double *)three->data)[i] = 3;
    /* Σ c·v through the L1 loss with target 0 and weights c on positive values */
    for (int i = 0; i < 6; i++) ((double *)x->data)[i] = 0.5 + i;
    tensor *zero = ot_const(F64, TSHAPE(6), 0, 0);
    tensor *l = op_add(rt, op_add(rt, op_l1(rt, v, zero, two, 1), op_l1(rt, v, zero, three, 1)),
                       op_l1(rt, xs, zero, NULL, 1));
    runtime_backward(rt, l);
    double want[6];
    for (int i = 0; i < 6; i++) want[i] = 0.25 * 5 + 1;
    EXPECT_CLOSE("grad_scale dx through a view and two consumers", (double *)x->grad, want, 6, 1e-15, 0);
    runtime_step_end(rt);
    ot_free(x), ot_free(two), ot_free(three), ot_free(zero);
}

static tensor *pool_fn(runtime *rt, tensor **in, const void *c) {
    const args *a = c;
    return op_max_pool(rt, in[0], a->i[0], a->i[1], a->i[2]);
}
static tensor *up_fn(runtime *rt, tensor **in, const void *c) { return op_upsample2x(rt, in[0]); }

static void test_pool_grad(void) {
    ot_seed(7);
    runtime *rt = ot_runtime(2);
    /* distinct values at least 0.01 apart, so no window has a near-tie (a kink) */
    tensor *x = ot_param(F64, TSHAPE(2, 7, 6, 3), 0, 0);
    int64_t n = tensor_numel(x);
    for (int64_t i = 0; i < n; i++) ot_set(x, i, 0.01 * (double)((i * 37) % n));
    args a = {.i = {3, 2, 1}}, p6 = {.i = {1, 2, 0}}, s1 = {.i = {3, 1, 1}};
    OT_GRADCHECK("max_pool 3x3 s2 p1", rt, pool_fn, &a, ((tensor *[]){x}), 1, H, ATOL, RTOL);
    OT_GRADCHECK("max_pool 1x1 s2 (P6)", rt, pool_fn, &p6, ((tensor *[]){x}), 1, H, ATOL, RTOL);
    OT_GRADCHECK("max_pool 3x3 s1 p1", rt, pool_fn, &s1, ((tensor *[]){x}), 1, H, ATOL, RTOL);
    OT_GRADCHECK("upsample2x", rt, up_fn, NULL, ((tensor *[]){x}), 1, H, ATOL, RTOL);
    ot_free(x);
}

static tensor *bce_fn(runtime *rt, tensor **in, const void *c) {
    const args *a = c;
    return op_bce_logits(rt, in[0], in[1], in[2], a->d[0]);
}
static tensor *ce_fn(runtime *rt, tensor **in, const void *c) {
    const args *a = c;
    return op_softmax_ce(rt, in[0], in[1], in[2], a->d[0]);
}
static tensor *sl1_fn(runtime *rt, tensor **in, const void *c) {
    const args *a = c;
    return op_smooth_l1(rt, in[0], in[1], in[2], a->d[1], a->d[0]);
}
static tensor *l1_fn(runtime *rt, tensor **in, const void *c) {
    const args *a = c;
    return op_l1(rt, in[0], in[1], in[2], a->d[0]);
}

static void test_loss_grad(void) {
    ot_seed(8);
    runtime *rt = ot_runtime(2);
    tensor *x = ot_param(F64, TSHAPE(6, 5), -4, 4), *t = ot_const(F64, TSHAPE(6, 5), 0, 1);
    tensor *w = ot_const(F64, TSHAPE(6, 5), 0, 2);
    args a = {.d = {3.5, 1.0 / 9}};
    OT_GRADCHECK("bce_logits", rt, bce_fn, &a, ((tensor *[]){x, t, w}), 3, H, ATOL, RTOL);
    OT_GRADCHECK("bce_logits unweighted", rt, bce_fn, &a, ((tensor *[]){x, t, NULL}), 3, H, ATOL, RTOL);
    /* keep |x − t| away from β and from 0 (the kinks) */
    for (int64_t i = 0; i < tensor_numel(x); i++) {
        double d = ot_get(x, i) - ot_get(t, i);
        if (fabs(d) < 0.05 || fabs(fabs(d) - a.d[1]) < 0.05) ot_set(x, i, ot_get(t, i) + 0.5);
    }
    OT_GRADCHECK("smooth_l1 beta 1/9", rt, sl1_fn, &a, ((tensor *[]){x, t, w}), 3, H, ATOL, RTOL);
    OT_GRADCHECK("l1", rt, l1_fn, &a, ((tensor *[]){x, t, w}), 3, H, ATOL, RTOL);
    tensor *labels = ot_const(DTYPE_I32, TSHAPE(6), 0, 0), *rw = ot_const(F64, TSHAPE(6), 0, 2);
    for (int r = 0; r < 6; r++) tensor_i32(labels)[r] = (r * 3) % 5;
    OT_GRADCHECK("softmax_ce", rt, ce_fn, &a, ((tensor *[]){x, labels, rw}), 3, H, ATOL, RTOL);
    OT_GRADCHECK("softmax_ce unweighted", rt, ce_fn, &a, ((tensor *[]){x, labels, NULL}), 3, H, ATOL, RTOL);
    ot_free(x), ot_free(t), ot_free(w), ot_free(labels), ot_free(rw);
}

int main(void) {
    RUN(test_conv2d_grad);
    RUN(test_deconv_grad);
    RUN(test_linear_grad);
    RUN(test_normed_linear_zero_row);
    RUN(test_norm_grad);
    RUN(test_pointwise_grad);
    RUN(test_grad_scale_by_hand);
    RUN(test_pool_grad);
    RUN(test_loss_grad);
    return test_finish("test_ops_grad");
}

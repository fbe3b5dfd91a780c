/* test_ops.c: forward values, multi-chunk paths, f32/f64 agreement, determinism and bad
 * arguments of the dense CPU ops (src/ops/). Gradients: test_ops_grad.c; PyTorch golden
 * values: test_ops_golden.c. */
#include "ops_test.h"

#include "ops/conv.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/ops_internal.h"
#include "ops/pointwise.h"
#include "ops/pool.h"

/* ---- direct-loop references (test-local, straight from the definitions in conv.h) ---- */

static double at4(const tensor *t, int a, int b, int c, int d) {
    return ot_get(t, (((int64_t)a * t->shape[1] + b) * t->shape[2] + c) * t->shape[3] + d);
}

static void conv_direct(const tensor *x, const tensor *w, const tensor *b, int st, int pad, const tensor *dy,
                        double *y, double *dx, double *dw, double *db) {
    int N = x->shape[0], Hh = x->shape[1], W = x->shape[2], C = x->shape[3];
    int K = w->shape[0], R = w->shape[1], S = w->shape[2];
    int Ho = conv2d_out_size(Hh, R, st, pad), Wo = conv2d_out_size(W, S, st, pad);
    memset(dx, 0, sizeof *dx * N * Hh * W * C);
    memset(dw, 0, sizeof *dw * K * R * S * C);
    memset(db, 0, sizeof *db * K);
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++)
                for (int k = 0; k < K; k++) {
                    int64_t o = (((int64_t)n * Ho + oh) * Wo + ow) * K + k;
                    double acc = b ? ot_get(b, k) : 0, g = ot_get(dy, o);
                    db[k] += g;
                    for (int r = 0; r < R; r++)
                        for (int s = 0; s < S; s++) {
                            int ih = oh * st - pad + r, iw = ow * st - pad + s;
                            if (ih < 0 || ih >= Hh || iw < 0 || iw >= W) continue;
                            for (int c = 0; c < C; c++) {
                                int64_t xi = (((int64_t)n * Hh + ih) * W + iw) * C + c;
                                int64_t wi = (((int64_t)k * R + r) * S + s) * C + c;
                                acc += ot_get(x, xi) * ot_get(w, wi);
                                dx[xi] += g * ot_get(w, wi);
                                dw[wi] += g * ot_get(x, xi);
                            }
                        }
                    y[o] = acc;
                }
}

/* conv2d forward and backward against the direct loops, in f64 (exact up to summation
 * order) and f32 (the same inputs rounded; relative error of a sum of RSC products). */
static void check_conv_direct(dtype dt, int N, int Hh, int W, int C, int K, int k, int st, int pad) {
    runtime *rt = ot_runtime(2);
    runtime_step_end(rt);
    tensor *x = ot_param(dt, TSHAPE(N, Hh, W, C), -1, 1), *w = ot_param(dt, TSHAPE(K, k, k, C), -1, 1);
    tensor *b = ot_param(dt, TSHAPE(K), -1, 1);
    memset(x->grad, 0, tensor_bytes(x));
    memset(w->grad, 0, tensor_bytes(w));
    memset(b->grad, 0, tensor_bytes(b));
    tensor *y = op_conv2d(rt, x, w, b, st, pad);
    tensor *dy = ot_const(dt, y->shape, y->ndim, -1, 1);
    memcpy(tensor_grad(rt, y), dy->data, tensor_bytes(dy));
    double *yd = malloc(sizeof *yd * tensor_numel(y)), *dxd = malloc(sizeof *dxd * tensor_numel(x));
    double *dwd = malloc(sizeof *dwd * tensor_numel(w)), dbd[64];
    REQUIRE(K <= 64);
    conv_direct(x, w, b, st, pad, dy, yd, dxd, dwd, dbd);
    tape_backward(&rt->tape, rt);
    double tol = dt == DTYPE_F64 ? 1e-12 : 2e-5 * sqrt((double)k * k * C);
    char what[160];
    snprintf(what, sizeof what, "conv2d %s %dx%d s%d p%d [%d,%d,%d,%d]->%d", dtype_name(dt), k, k, st, pad, N, Hh, W,
             C, K);
    double *got = ot_values(y);
    EXPECT_CLOSE(what, got, yd, tensor_numel(y), tol, tol);
    free(got);
    tensor gx = *x, gw = *w;
    gx.data = x->grad;
    gw.data = w->grad;
    got = ot_values(&gx);
    EXPECT_CLOSE("conv2d dx", got, dxd, tensor_numel(x), tol, tol);
    free(got);
    got = ot_values(&gw);
    EXPECT_CLOSE("conv2d dw", got, dwd, tensor_numel(w), tol * 10, tol);
    free(got);
    double gotb[64]; /* db sums N·Ho·Wo values: several reduction chunks in the big cases */
    for (int i = 0; i < K; i++) gotb[i] = ot_grad_get(b, i);
    EXPECT_CLOSE("conv2d db", gotb, dbd, K, tol * 10, tol);
    free(yd), free(dxd), free(dwd);
    runtime_step_end(rt);
    ot_free(x), ot_free(w), ot_free(b), ot_free(dy);
}

static void test_conv2d_matches_direct_loops(void) {
    ot_seed(11);
    for (int f = 0; f < 2; f++) {
        dtype dt = f ? DTYPE_F32 : DTYPE_F64;
        check_conv_direct(dt, 2, 9, 7, 5, 4, 3, 1, 1);
        check_conv_direct(dt, 1, 9, 8, 3, 4, 3, 2, 1);
        check_conv_direct(dt, 1, 11, 10, 3, 5, 7, 2, 3);
        check_conv_direct(dt, 2, 5, 5, 6, 3, 1, 1, 0);
        check_conv_direct(dt, 1, 8, 9, 4, 6, 1, 2, 0);
        check_conv_direct(dt, 1, 6, 6, 2, 3, 5, 1, 0);
    }
}

/* Big enough that im2col runs in several chunks (16 MiB of scratch each: 3640 f64 rows of
 * 3·3·64 values, here 64·80 = 5120 output pixels), so chunk seams are covered. */
static void test_conv2d_multi_chunk(void) {
    ot_seed(12);
    check_conv_direct(DTYPE_F64, 1, 64, 80, 64, 8, 3, 1, 1);
    check_conv_direct(DTYPE_F32, 1, 100, 80, 64, 8, 3, 1, 1);
}

static void test_deconv_matches_definition(void) {
    ot_seed(13);
    runtime *rt = ot_runtime(2);
    runtime_step_end(rt);
    rt->tape.enabled = 0;
    tensor *x = ot_const(DTYPE_F64, TSHAPE(2, 3, 4, 5), -1, 1), *w = ot_const(DTYPE_F64, TSHAPE(6, 2, 2, 5), -1, 1);
    tensor *b = ot_const(DTYPE_F64, TSHAPE(6), -1, 1);
    tensor *y = op_deconv2x2(rt, x, w, b);
    EXPECT(y->shape[1] == 6 && y->shape[2] == 8 && y->shape[3] == 6, "deconv output shape");
    double worst = 0;
    for (int n = 0; n < 2; n++)
        for (int oh = 0; oh < 6; oh++)
            for (int ow = 0; ow < 8; ow++)
                for (int k = 0; k < 6; k++) {
                    double want = ot_get(b, k);
                    for (int c = 0; c < 5; c++) want += at4(x, n, oh / 2, ow / 2, c) * at4(w, k, oh % 2, ow % 2, c);
                    double d = fabs(at4(y, n, oh, ow, k) - want);
                    worst = d > worst ? d : worst;
                }
    EXPECT(worst < 1e-12, "deconv2x2 differs from its definition by %g", worst);
    rt->tape.enabled = 1;
    runtime_step_end(rt);
    ot_free(x), ot_free(w), ot_free(b);
}

/* Hand-computed: a 3×4 single-channel image, 3×3 stride-2 pad-1 windows. */
static void test_max_pool_by_hand(void) {
    runtime *rt = ot_runtime(2);
    runtime_step_end(rt);
    double v[12] = {1, 5, 2, 0, /**/ 3, -1, 7, 4, /**/ 6, 2, -2, 8};
    tensor *x = ot_param(DTYPE_F64, TSHAPE(1, 3, 4, 1), 0, 0);
    memcpy(x->data, v, sizeof v);
    memset(x->grad, 0, sizeof v);
    tensor *y = op_max_pool(rt, x, 3, 2, 1);
    REQUIRE(y->shape[1] == 2 && y->shape[2] == 2, "3x4 -> 2x2, got %dx%d", y->shape[1], y->shape[2]);
    /* windows: rows {0,1} x cols {0,1} -> 5; rows {0,1} x cols {1,2,3} -> 7;
     *          rows {1,2} x cols {0,1} -> 6; rows {1,2} x cols {1,2,3} -> 8 */
    double want[4] = {5, 7, 6, 8}, dy[4] = {1, 2, 3, 4}, want_dx[12] = {0, 1, 0, 0, 0, 0, 2, 0, 3, 0, 0, 4};
    EXPECT_CLOSE("max_pool y", (double *)y->data, want, 4, 0, 0);
    memcpy(tensor_grad(rt, y), dy, sizeof dy);
    tape_backward(&rt->tape, rt);
    EXPECT_CLOSE("max_pool dx", (double *)x->grad, want_dx, 12, 0, 0);
    runtime_step_end(rt);
    /* a NaN in a window wins, as in PyTorch */
    ((double *)x->data)[1] = NAN;
    rt->tape.enabled = 0;
    y = op_max_pool(rt, x, 3, 2, 1);
    EXPECT(isnan(((double *)y->data)[0]) && isnan(((double *)y->data)[1]) && ((double *)y->data)[3] == 8,
           "NaN must propagate to the windows holding it only");
    rt->tape.enabled = 1;
    runtime_step_end(rt);
    /* backward rules (pool.h): ties go to the first maximum in scan order, NaNs to the last */
    double tie[12] = {2, 9, 9, 0, /**/ 9, 1, 1, 1, /**/ 0, 0, 0, 0};
    memcpy(x->data, tie, sizeof tie);
    tie[6] = NAN, tie[11] = NAN;
    memset(x->grad, 0, sizeof tie);
    y = op_max_pool(rt, x, 3, 2, 1);
    memcpy(tensor_grad(rt, y), dy, sizeof dy);
    tape_backward(&rt->tape, rt);
    /* windows: (0,0) {2,9,9,1} -> index 1 (first 9); (0,1) {9,9,0,1,1,1} -> index 1;
     *          (1,0) {9,1,0,0} -> index 4; (1,1) {1,1,1,0,0,0} -> index 5 */
    double want_tie[12] = {0, 1 + 2, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0};
    EXPECT_CLOSE("max_pool ties dx", (double *)x->grad, want_tie, 12, 0, 0);
    runtime_step_end(rt);
    memcpy(x->data, tie, sizeof tie); /* NaN at 6 and 11 */
    memset(x->grad, 0, sizeof tie);
    y = op_max_pool(rt, x, 3, 2, 1);
    memcpy(tensor_grad(rt, y), dy, sizeof dy);
    tape_backward(&rt->tape, rt);
    /* (0,0) no NaN -> index 1; (0,1) NaN at 6 -> 6; (1,0) -> 4; (1,1) NaNs at 6 and 11 -> the last, 11 */
    double want_nan[12] = {0, 1, 0, 0, 3, 0, 2, 0, 0, 0, 0, 4};
    EXPECT_CLOSE("max_pool NaN dx", (double *)x->grad, want_nan, 12, 0, 0);
    runtime_step_end(rt);
    ot_free(x);
}

/* Hand-computed loss values (each line of arithmetic in the comment). */
static void test_losses_by_hand(void) {
    runtime *rt = ot_runtime(2);
    runtime_step_end(rt);
    rt->tape.enabled = 0;
    /* CE on [[0, ln 3]] label 1: softmax = [1/4, 3/4], loss = ln(4/3); weight 2, norm 4 */
    tensor *x = ot_const(DTYPE_F64, TSHAPE(1, 2), 0, 0), *lab = ot_const(DTYPE_I32, TSHAPE(1), 0, 0);
    tensor *w = ot_const(DTYPE_F64, TSHAPE(1), 0, 0);
    ((double *)x->data)[1] = log(3.0);
    tensor_i32(lab)[0] = 1;
    ((double *)w->data)[0] = 2;
    tensor *l = op_softmax_ce(rt, x, lab, w, 4);
    EXPECT(fabs(ot_get(l, 0) - 2 * log(4.0 / 3) / 4) < 1e-15, "CE = %.17g", ot_get(l, 0));
    /* BCE at x = 0, t = 1: ln 2; at x = 2, t = 0: ln(1 + e²) */
    tensor *xb = ot_const(DTYPE_F64, TSHAPE(2), 0, 0), *tb = ot_const(DTYPE_F64, TSHAPE(2), 0, 0);
    ((double *)xb->data)[1] = 2;
    ((double *)tb->data)[0] = 1;
    l = op_bce_logits(rt, xb, tb, NULL, 1);
    EXPECT(fabs(ot_get(l, 0) - (log(2.0) + log1p(exp(2.0)))) < 1e-15, "BCE = %.17g", ot_get(l, 0));
    /* smooth L1 β = 1 of d = 0.5 and d = −3: 0.125 + 2.5; L1: 0.5 + 3 */
    ((double *)xb->data)[0] = 0.5;
    ((double *)xb->data)[1] = -3;
    ((double *)tb->data)[0] = 0;
    l = op_smooth_l1(rt, xb, tb, NULL, 1.0, 1);
    EXPECT(fabs(ot_get(l, 0) - 2.625) < 1e-15, "smooth L1 = %.17g", ot_get(l, 0));
    l = op_l1(rt, xb, tb, NULL, 2);
    EXPECT(fabs(ot_get(l, 0) - 1.75) < 1e-15, "L1 / 2 = %.17g", ot_get(l, 0));
    rt->tape.enabled = 1;
    runtime_step_end(rt);
    ot_free(x), ot_free(lab), ot_free(w), ot_free(xb), ot_free(tb);
}

/* Sums over many reduction chunks (OPS_REDUCE_CHUNK = 256) against a plain loop. */
static void test_large_loss_sums(void) {
    ot_seed(17);
    runtime *rt = ot_runtime(2);
    runtime_step_end(rt);
    rt->tape.enabled = 0;
    const int n = 5000, R = 1100, K = 7;
    tensor *x = ot_const(DTYPE_F64, TSHAPE(n), -3, 3), *t = ot_const(DTYPE_F64, TSHAPE(n), 0, 1);
    tensor *w = ot_const(DTYPE_F64, TSHAPE(n), 0, 2);
    double want = 0;
    for (int i = 0; i < n; i++) {
        double v = ot_get(x, i);
        want += ot_get(w, i) * (log1p(exp(v)) - v * ot_get(t, i));
    }
    double got = ot_get(op_bce_logits(rt, x, t, w, 1), 0);
    EXPECT(fabs(got - want) < 1e-10 * fabs(want), "BCE over %d: %.17g vs %.17g", n, got, want);
    want = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(ot_get(x, i) - ot_get(t, i));
        want += ot_get(w, i) * (d < 0.5 ? d * d : d - 0.25); /* β = 0.5: 0.5·d²/β = d² */
    }
    got = ot_get(op_smooth_l1(rt, x, t, w, 0.5, 1), 0);
    EXPECT(fabs(got - want) < 1e-10 * fabs(want), "smooth L1 over %d: %.17g vs %.17g", n, got, want);
    tensor *xc = ot_const(DTYPE_F64, TSHAPE(R, K), -5, 5), *lab = ot_const(DTYPE_I32, TSHAPE(R), 0, 0);
    want = 0;
    for (int r = 0; r < R; r++) {
        tensor_i32(lab)[r] = (r * 5) % K;
        double s = 0;
        for (int k = 0; k < K; k++) s += exp(ot_get(xc, r * K + k));
        want += log(s) - ot_get(xc, r * K + tensor_i32(lab)[r]);
    }
    got = ot_get(op_softmax_ce(rt, xc, lab, NULL, 1), 0);
    EXPECT(fabs(got - want) < 1e-10 * fabs(want), "CE over %d rows: %.17g vs %.17g", R, got, want);
    rt->tape.enabled = 1;
    runtime_step_end(rt);
    ot_free(x), ot_free(t), ot_free(w), ot_free(xc), ot_free(lab);
}

/* GroupNorm output: each group has mean 0 and variance var/(var + eps) before the affine. */
static void test_group_norm_statistics(void) {
    ot_seed(14);
    runtime *rt = ot_runtime(2);
    runtime_step_end(rt);
    rt->tape.enabled = 0;
    tensor *x = ot_const(DTYPE_F64, TSHAPE(2, 5, 4, 64), -3, 5);
    tensor *y = op_group_norm(rt, x, NULL, NULL, group_norm_groups(64), 1e-5);
    EXPECT(group_norm_groups(64) == 32 && group_norm_groups(16) == 16, "groups = min(32, C)");
    double worst_mean = 0, worst_var = 0;
    for (int n = 0; n < 2; n++)
        for (int g = 0; g < 32; g++) {
            double s = 0, ss = 0;
            for (int p = 0; p < 20; p++)
                for (int c = 0; c < 2; c++) s += ot_get(y, ((int64_t)n * 20 + p) * 64 + g * 2 + c);
            for (int p = 0; p < 20; p++)
                for (int c = 0; c < 2; c++) {
                    double v = ot_get(y, ((int64_t)n * 20 + p) * 64 + g * 2 + c) - s / 40;
                    ss += v * v;
                }
            worst_mean = fmax(worst_mean, fabs(s / 40));
            worst_var = fmax(worst_var, fabs(ss / 40 - 1));
        }
    EXPECT(worst_mean < 1e-12, "group mean off by %g", worst_mean);
    EXPECT(worst_var < 1e-4, "group variance off by %g (eps 1e-5 allows ~3e-6)", worst_var);
    rt->tape.enabled = 1;
    runtime_step_end(rt);
    ot_free(x);
}

/* ---- determinism --------------------------------------------------------------------- */

/* Runs a small f32 network through every op twice (forward + backward); outputs and all
 * gradients must be bit-identical between runs at a fixed thread count. */
typedef struct net {
    tensor *x, *w1, *b1, *g, *be, *wd, *wl, *bl, *s, *sh, *t;
    tensor *lab;
} net;

static double *net_run(runtime *rt, net *m, size_t *bytes_out) {
    runtime_step_end(rt);
    tensor *all[] = {m->x, m->w1, m->b1, m->g, m->be, m->wd, m->wl, m->bl};
    for (int i = 0; i < 8; i++) memset(all[i]->grad, 0, tensor_bytes(all[i]));
    tensor *h = op_conv2d(rt, m->x, m->w1, m->b1, 1, 1);         /* [2,40,48,32] */
    h = op_relu(rt, op_group_norm(rt, h, m->g, m->be, 8, 1e-5));
    h = op_frozen_bn(rt, h, m->s, m->sh);
    tensor *p = op_max_pool(rt, h, 3, 2, 1);                      /* [2,20,24,32] */
    tensor *u = op_add(rt, op_upsample2x(rt, p), op_scale(rt, h, 0.5));
    tensor *d = op_deconv2x2(rt, op_max_pool(rt, u, 1, 2, 0), m->wd, NULL); /* [2,40,48,8] */
    tensor *bce = op_bce_logits(rt, d, m->t, NULL, 100);
    tensor *flat = runtime_reshape(rt, op_grad_scale(rt, d, 0.5), TSHAPE(2 * 40 * 48, 8));
    tensor *z = op_normed_linear(rt, flat, m->wl, m->bl, 20, 1e-6);
    tensor *ce = op_softmax_ce(rt, z, m->lab, NULL, 3840);
    tensor *sl1 = op_smooth_l1(rt, flat, runtime_reshape(rt, m->t, TSHAPE(3840, 8)), NULL, 1.0 / 9, 50);
    tensor *loss = op_add(rt, op_add(rt, bce, ce), sl1);
    runtime_backward(rt, loss);
    size_t n = 1;
    for (int i = 0; i < 8; i++) n += tensor_numel(all[i]);
    double *out = malloc(n * sizeof *out), *o = out;
    *o++ = ot_get(loss, 0);
    for (int i = 0; i < 8; i++)
        for (int64_t j = 0; j < tensor_numel(all[i]); j++) *o++ = ot_grad_get(all[i], j);
    *bytes_out = n * sizeof *out;
    runtime_step_end(rt);
    return out;
}

static void test_determinism(void) {
    ot_seed(15);
    dtype f = DTYPE_F32;
    net m = {ot_param(f, TSHAPE(2, 40, 48, 16), -1, 1), ot_param(f, TSHAPE(32, 3, 3, 16), -0.2, 0.2),
             ot_param(f, TSHAPE(32), -1, 1), ot_param(f, TSHAPE(32), 0.5, 1.5), ot_param(f, TSHAPE(32), -1, 1),
             ot_param(f, TSHAPE(8, 2, 2, 32), -0.2, 0.2), ot_param(f, TSHAPE(5, 8), -1, 1),
             ot_param(f, TSHAPE(5), -1, 1), ot_const(f, TSHAPE(32), 0.5, 1.5), ot_const(f, TSHAPE(32), -1, 1),
             ot_const(f, TSHAPE(2, 40, 48, 8), 0, 1), ot_const(DTYPE_I32, TSHAPE(3840), 0, 0)};
    for (int i = 0; i < 3840; i++) tensor_i32(m.lab)[i] = (i * 7) % 5;
    size_t b1, b2;
    double *r1 = net_run(ot_runtime(2), &m, &b1), *r2 = net_run(ot_runtime(2), &m, &b2);
    REQUIRE(b1 == b2);
    EXPECT(isfinite(r1[0]) && r1[0] > 0, "loss %g", r1[0]);
    OT_SAME_BITS("2 threads, run 1 vs run 2", r1, r2, b1);
    free(r1), free(r2);
    ot_free(m.x), ot_free(m.w1), ot_free(m.b1), ot_free(m.g), ot_free(m.be), ot_free(m.wd), ot_free(m.wl);
    ot_free(m.bl), ot_free(m.s), ot_free(m.sh), ot_free(m.t), ot_free(m.lab);
}

/* The project's own reductions (GroupNorm, losses, bias sums, pooling and upsample
 * backward) split work by fixed chunks, not by threads: 1 and 2 threads agree bit for bit.
 * (No GEMM in this graph: OpenBLAS's split depends on its thread count. The bias
 * gradients' column sums, ops_colsum_add, are checked directly below.) */
static void gn_loss_run(int threads, tensor *x, tensor *g, tensor *b, tensor *t, double *out) {
    runtime *rt = ot_runtime(threads);
    runtime_step_end(rt);
    memset(x->grad, 0, tensor_bytes(x));
    memset(g->grad, 0, tensor_bytes(g));
    memset(b->grad, 0, tensor_bytes(b));
    tensor *y = op_upsample2x(rt, op_max_pool(rt, op_group_norm(rt, x, g, b, 4, 1e-5), 3, 2, 1));
    tensor *loss = op_bce_logits(rt, y, t, NULL, 7);
    runtime_backward(rt, loss);
    out[0] = ot_get(loss, 0);
    for (int64_t i = 0; i < tensor_numel(x); i++) out[1 + i] = ot_grad_get(x, i);
    for (int i = 0; i < 64; i++) out[1 + tensor_numel(x) + i] = ot_grad_get(g, i) + 3 * ot_grad_get(b, i);
    runtime_step_end(rt);
}

static void test_reductions_independent_of_threads(void) {
    ot_seed(16);
    dtype f = DTYPE_F32;
    tensor *x = ot_param(f, TSHAPE(2, 32, 24, 64), -1, 1), *g = ot_param(f, TSHAPE(64), 0.5, 1.5);
    tensor *b = ot_param(f, TSHAPE(64), -1, 1), *t = ot_const(f, TSHAPE(2, 32, 24, 64), 0, 1);
    size_t n = 1 + tensor_numel(x) + 64;
    double *a1 = malloc(n * sizeof *a1), *a2 = malloc(n * sizeof *a2);
    gn_loss_run(1, x, g, b, t, a1);
    gn_loss_run(2, x, g, b, t, a2);
    OT_SAME_BITS("1 thread vs 2 threads", a1, a2, n * sizeof *a1);
    /* the column sums behind every bias gradient: 10000 rows = 40 chunks */
    float *m = malloc(10000 * 64 * sizeof *m), s1[64] = {0}, s2[64] = {0};
    for (int i = 0; i < 10000 * 64; i++) m[i] = (float)ot_uniform(-1, 1);
    ops_colsum_add_f32(ot_runtime(1), m, 10000, 64, s1);
    ops_colsum_add_f32(ot_runtime(2), m, 10000, 64, s2);
    OT_SAME_BITS("column sums, 1 thread vs 2 threads", s1, s2, sizeof s1);
    double worst = 0;
    for (int c = 0; c < 64; c++) {
        double want = 0;
        for (int r = 0; r < 10000; r++) want += m[r * 64 + c];
        worst = fmax(worst, fabs(s2[c] - want));
    }
    EXPECT(worst < 1e-4, "column sums off by %g", worst);
    free(m);
    ot_runtime(2);
    free(a1), free(a2);
    ot_free(x), ot_free(g), ot_free(b), ot_free(t);
}

/* ---- recording ----------------------------------------------------------------------- */

static void test_records_only_when_needed(void) {
    runtime *rt = ot_runtime(2);
    runtime_step_end(rt);
    tensor *x = ot_const(DTYPE_F32, TSHAPE(1, 4, 4, 3), -1, 1), *w = ot_const(DTYPE_F32, TSHAPE(2, 3, 3, 3), -1, 1);
    tensor *y = op_relu(rt, op_conv2d(rt, x, w, NULL, 1, 1));
    EXPECT(rt->tape.count == 0 && !y->requires_grad, "constants recorded %d entries", rt->tape.count);
    tensor *wp = ot_param(DTYPE_F32, TSHAPE(2, 3, 3, 3), -1, 1);
    rt->tape.enabled = 0;
    y = op_conv2d(rt, x, wp, NULL, 1, 1);
    EXPECT(rt->tape.count == 0 && !y->requires_grad, "tape off recorded %d entries", rt->tape.count);
    rt->tape.enabled = 1;
    y = op_relu(rt, op_conv2d(rt, x, wp, NULL, 1, 1));
    EXPECT(rt->tape.count == 2 && y->requires_grad, "expected conv2d and relu on the tape, got %d", rt->tape.count);
    runtime_step_end(rt);
    ot_free(x), ot_free(w), ot_free(wp);
}

/* ---- bad arguments: one line naming the op and the problem, exit 1 -------------------- */

static void bad_conv_channels(void *arg) {
    runtime *rt = ot_runtime(1);
    tensor *x = ot_const(DTYPE_F32, TSHAPE(1, 4, 4, 3), 0, 1), *w = ot_const(DTYPE_F32, TSHAPE(2, 3, 3, 4), 0, 1);
    op_conv2d(rt, x, w, NULL, 1, 1);
}
static void bad_ce_label(void *arg) {
    runtime *rt = ot_runtime(1);
    tensor *x = ot_const(DTYPE_F32, TSHAPE(3, 5), 0, 1), *lab = ot_const(DTYPE_I32, TSHAPE(3), 0, 0);
    tensor_i32(lab)[2] = 7;
    op_softmax_ce(rt, x, lab, NULL, 1);
}
static void bad_normaliser(void *arg) {
    runtime *rt = ot_runtime(1);
    tensor *x = ot_const(DTYPE_F32, TSHAPE(4), 0, 1), *t = ot_const(DTYPE_F32, TSHAPE(4), 0, 1);
    op_l1(rt, x, t, NULL, 0);
}
static void bad_groups(void *arg) {
    runtime *rt = ot_runtime(1);
    tensor *x = ot_const(DTYPE_F32, TSHAPE(1, 2, 2, 6), 0, 1);
    op_group_norm(rt, x, NULL, NULL, 4, 1e-5);
}
static void bad_dtype(void *arg) {
    runtime *rt = ot_runtime(1);
    tensor *x = ot_const(DTYPE_I32, TSHAPE(4), 0, 0);
    op_relu(rt, x);
}
static void bad_null_weight(void *arg) {
    runtime *rt = ot_runtime(1);
    op_linear(rt, ot_const(DTYPE_F32, TSHAPE(2, 4), 0, 1), NULL, NULL);
}
static void bad_null_targets(void *arg) {
    runtime *rt = ot_runtime(1);
    op_bce_logits(rt, ot_const(DTYPE_F32, TSHAPE(4), 0, 1), NULL, NULL, 1);
}
static void bad_stride(void *arg) {
    runtime *rt = ot_runtime(1);
    op_conv2d(rt, ot_const(DTYPE_F32, TSHAPE(1, 4, 4, 3), 0, 1), ot_const(DTYPE_F32, TSHAPE(2, 3, 3, 3), 0, 1), NULL,
              0, 1);
}
static void bad_add_shapes(void *arg) {
    runtime *rt = ot_runtime(1);
    op_add(rt, ot_const(DTYPE_F32, TSHAPE(4), 0, 1), ot_const(DTYPE_F32, TSHAPE(2, 2), 0, 1));
}

/* Drops the lines a sanitizer adds in a forked child ("==PID==..." and blank lines: LSan
 * notices the parent's OpenMP threads), keeping the program's own output. */
static void drop_sanitizer_lines(char *s) {
    char *w = s;
    for (char *line = s; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line + 1) : strlen(line);
        if (!(line[0] == '=' && line[1] == '=') && line[0] != '\n') {
            memmove(w, line, len);
            w += len;
        }
        line += len;
    }
    *w = 0;
}

static void expect_fails(void (*fn)(void *), const char *what, const char *needle1, const char *needle2) {
    char out[2048];
    int st = test_run_child(fn, NULL, out, sizeof out);
    drop_sanitizer_lines(out);
    EXPECT(st == 1, "%s: exit status %d (want 1); output: %s", what, st, out);
    EXPECT(strstr(out, needle1) && strstr(out, needle2), "%s: message lacks '%s'/'%s': %s", what, needle1, needle2,
           out);
    EXPECT(strchr(out, '\n') == out + strlen(out) - 1, "%s: want exactly one line, got: %s", what, out);
}

static void test_bad_arguments(void) {
    expect_fails(bad_conv_channels, "conv channels", "conv2d weight", "f32[2,3,3,4]");
    expect_fails(bad_ce_label, "CE label", "label 7 of row 2", "[0, 5)");
    expect_fails(bad_normaliser, "normaliser", "smooth_l1", "normaliser must be positive");
    expect_fails(bad_groups, "groups", "group_norm", "6 channels do not split into 4 groups");
    expect_fails(bad_dtype, "dtype", "relu", "must be f32 (or f64 on the CPU)");
    expect_fails(bad_add_shapes, "add shapes", "add", "f32[2,2]");
    expect_fails(bad_null_weight, "NULL weight", "linear", "weight is missing");
    expect_fails(bad_null_targets, "NULL targets", "bce_logits", "targets are missing");
    expect_fails(bad_stride, "stride 0", "conv2d", "bad stride 0");
}

int main(void) {
    RUN(test_conv2d_matches_direct_loops);
    RUN(test_conv2d_multi_chunk);
    RUN(test_deconv_matches_definition);
    RUN(test_max_pool_by_hand);
    RUN(test_losses_by_hand);
    RUN(test_large_loss_sums);
    RUN(test_group_norm_statistics);
    RUN(test_determinism);
    RUN(test_reductions_independent_of_threads);
    RUN(test_records_only_when_needed);
    RUN(test_bad_arguments);
    return test_finish("test_ops");
}

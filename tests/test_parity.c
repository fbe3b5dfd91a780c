/* test_parity.c: every dense op's CUDA twin against its CPU reference (parity.h), and the
 * harness's own tests, which run everywhere: each case through the harness with the CPU on
 * both sides must pass, and deliberately wrong "twins" (a wrong value, an output never
 * written, a gradient overwritten instead of accumulated) must fail. The GPU cases skip
 * without a GPU. */
#include "parity.h"

#include "ops/conv.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/ops_internal.h"
#include "ops/pointwise.h"
#include "ops/pool.h"
#include "ops/select.h"

/* ---- the ops as parity functions: forward into out[0], backward into the rest ---------- */

static void conv_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    const conv2d_args *a = args; /* in: x w b dy; out: y dx dw db */
    OPS_CALL(in[0], conv2d_forward, rt, a, in[0], in[1], in[2], out[0]);
    OPS_CALL(in[0], conv2d_backward, rt, a, in[0], in[1], in[3], out[1], out[2], out[3]);
}
static void deconv_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    OPS_CALL(in[0], deconv2x2_forward, rt, in[0], in[1], in[2], out[0]);
    OPS_CALL(in[0], deconv2x2_backward, rt, in[0], in[1], in[3], out[1], out[2], out[3]);
}
static void linear_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    OPS_CALL(in[0], linear_forward, rt, in[0], in[1], in[2], out[0]);
    OPS_CALL(in[0], linear_backward, rt, in[0], in[1], in[3], out[1], out[2], out[3]);
}
static void normed_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    const normed_args *a = args;
    OPS_CALL(in[0], normed_linear_forward, rt, a, in[0], in[1], in[2], out[0]);
    OPS_CALL(in[0], normed_linear_backward, rt, a, in[0], in[1], in[3], out[1], out[2], out[3]);
}
static void frozen_bn_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    OPS_CALL(in[0], frozen_bn_forward, rt, in[0], in[1], in[2], out[0]);
    OPS_CALL(in[0], frozen_bn_backward, rt, in[1], in[3], out[1]);
}
static void gn_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    const group_norm_args *a = args; /* out: y stats dx dgamma dbeta */
    OPS_CALL(in[0], group_norm_forward, rt, a, in[0], in[1], in[2], out[0], out[1]);
    OPS_CALL(in[0], group_norm_backward, rt, a, in[0], in[1], out[1], in[3], out[2], out[3], out[4]);
}
static void pointwise_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    /* in: x b dy; out: relu(x), relu dx, x + b, 0.7·x, dy axpy */
    OPS_CALL(in[0], relu_forward, rt, in[0], out[0]);
    OPS_CALL(in[0], relu_backward, rt, out[0], in[2], out[1]);
    OPS_CALL(in[0], add_forward, rt, in[0], in[1], out[2]);
    OPS_CALL(in[0], scale_forward, rt, in[0], 0.7, out[3]);
    OPS_CALL(in[0], axpy, rt, -1.3, in[2], out[4]);
}
static void pool_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    OPS_CALL(in[0], max_pool_forward, rt, args, in[0], out[0]);
    OPS_CALL(in[0], max_pool_backward, rt, args, in[0], in[1], out[1]);
}
static void up_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    OPS_CALL(in[0], upsample2x_forward, rt, in[0], out[0]);
    OPS_CALL(in[0], upsample2x_backward, rt, in[1], out[1]);
}
/* losses: in: x, t (or labels), w, dloss [1]; out: loss, dx. args: {normaliser, beta} */
static void bce_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    const double *a = args;
    OPS_CALL(in[0], bce_logits_forward, rt, in[0], in[1], in[2], a[0], out[0]);
    OPS_CALL(in[0], bce_logits_backward, rt, in[0], in[1], in[2], a[0], in[3], out[1]);
}
static void ce_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    const double *a = args;
    OPS_CALL(in[0], softmax_ce_forward, rt, in[0], in[1], in[2], a[0], out[0]);
    OPS_CALL(in[0], softmax_ce_backward, rt, in[0], in[1], in[2], a[0], in[3], out[1]);
}
static void sl1_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    const double *a = args;
    OPS_CALL(in[0], smooth_l1_forward, rt, a[1], in[0], in[1], in[2], a[0], out[0]);
    OPS_CALL(in[0], smooth_l1_backward, rt, a[1], in[0], in[1], in[2], a[0], in[3], out[1]);
}

/* gather_group: in: x, idx, dy; out: y, dx. args: the group width */
static void gather_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    int width = *(const int *)args;
    OPS_CALL(in[0], gather_group_forward, rt, in[0], in[1], width, out[0]);
    OPS_CALL(in[0], gather_group_backward, rt, in[1], width, in[2], out[1]);
}
/* class_conv1x1: in: x, w, b (or NULL), cls, dy; out: y, dx, dw, and db when there is a bias */
static void cconv_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    OPS_CALL(in[0], class_conv1x1_forward, rt, in[0], in[1], in[2], in[3], out[0]);
    OPS_CALL(in[0], class_conv1x1_backward, rt, in[0], in[1], in[3], in[4], out[1], out[2], in[2] ? out[3] : NULL);
}

/* ---- the cases ----------------------------------------------------------------------- */

typedef struct pcase {
    char name[96];
    parity_fn fn;
    int nin, nout;
    tensor *in[PARITY_MAX];
    parity_out out[PARITY_MAX];
    union {
        conv2d_args conv;
        normed_args normed;
        group_norm_args gn;
        pool_args pool;
        double loss[2];
        int width;
    } args;
    double rtol, atol;
} pcase;

#define MAX_CASES 64
static pcase cases[MAX_CASES];
static int ncases;

static parity_out po(const tensor *like, int accumulate) {
    parity_out o = {like->ndim, {0}, accumulate};
    memcpy(o.shape, like->shape, sizeof o.shape);
    return o;
}
static parity_out po_shape(const int *shape, int ndim, int accumulate) {
    parity_out o = {ndim, {0}, accumulate};
    memcpy(o.shape, shape, (size_t)ndim * sizeof *shape);
    return o;
}
static tensor *rnd(const int *shape, int ndim, double lo, double hi) { return ot_const(DTYPE_F32, shape, ndim, lo, hi); }
#define RND(lo, hi, ...) rnd(TSHAPE(__VA_ARGS__), lo, hi)

static pcase *add_case(parity_fn fn, double rtol, double atol, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static pcase *add_case(parity_fn fn, double rtol, double atol, const char *fmt, ...) {
    CHECK(ncases < MAX_CASES);
    pcase *c = &cases[ncases++];
    memset(c, 0, sizeof *c);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
    c->fn = fn, c->rtol = rtol, c->atol = atol;
    return c;
}

/* Convolution-like tolerances grow with the number of terms in each sum (f32 rounding in a
 * different order on each side): 2e-6·√terms for the sums over R·S·C, and 1e-7·terms for
 * dw's sum over N·Ho·Wo pixels, which a GPU algorithm may accumulate in one thread without
 * splitting (error growing with n rather than √n). */
static void add_conv(int N, int H, int W, int C, int K, int k, int s, int p) {
    int Ho = conv2d_out_size(H, k, s, p), Wo = conv2d_out_size(W, k, s, p);
    double atol = 2e-6 * sqrt((double)k * k * C) + 1e-7 * N * Ho * Wo;
    pcase *c = add_case(conv_fn, 1e-4, atol, "conv2d %dx%d s%d p%d [%d,%d,%d,%d]->%d", k, k, s, p, N, H,
                        W, C, K);
    c->nin = 4, c->nout = 4;
    c->in[0] = RND(-1, 1, N, H, W, C), c->in[1] = RND(-1, 1, K, k, k, C), c->in[2] = RND(-1, 1, K);
    c->in[3] = RND(-1, 1, N, Ho, Wo, K);
    c->out[0] = po(c->in[3], 0), c->out[1] = po(c->in[0], 1), c->out[2] = po(c->in[1], 1), c->out[3] = po(c->in[2], 1);
    c->args.conv = (conv2d_args){s, p};
}

static void add_deconv(int N, int H, int W, int C, int K) {
    pcase *c = add_case(deconv_fn, 1e-4, 2e-6 * sqrt(4.0 * K) + 1e-7 * N * H * W, "deconv2x2 [%d,%d,%d,%d]->%d", N, H, W, C, K);
    c->nin = 4, c->nout = 4;
    c->in[0] = RND(-1, 1, N, H, W, C), c->in[1] = RND(-1, 1, K, 2, 2, C), c->in[2] = RND(-1, 1, K);
    c->in[3] = RND(-1, 1, N, 2 * H, 2 * W, K);
    c->out[0] = po(c->in[3], 0), c->out[1] = po(c->in[0], 1), c->out[2] = po(c->in[1], 1), c->out[3] = po(c->in[2], 1);
}

/* normed: 1 = normed_linear, 2 = normed_linear on one all-zero row. There dx = τ/ε·(dy·ŵ)
 * ~ 2e7·g, and g = dy·ŵ is a GEMM result: the two sides agree on g to ~1e-6 absolute, so
 * the zero row gets its own case with atol τ/ε·2e-6 (a relative bound would fail wherever
 * g is small by cancellation). */
static void add_linear(int R, int C, int K, int normed) {
    double atol = normed == 2 ? 20 / 1e-6 * 2e-6 : 2e-6 * sqrt((double)C + R) * (normed ? 20 : 1);
    pcase *c = add_case(normed ? normed_fn : linear_fn, 1e-4, atol, "%s [%d,%d]->%d%s",
                        normed ? "normed_linear" : "linear", R, C, K, normed == 2 ? " zero row" : "");
    c->nin = 4, c->nout = 4;
    c->in[0] = RND(-1, 1, R, C), c->in[1] = RND(-1, 1, K, C), c->in[2] = RND(-1, 1, K), c->in[3] = RND(-1, 1, R, K);
    if (normed == 2) memset(tensor_f32(c->in[0]), 0, (size_t)R * C * sizeof(float));
    c->out[0] = po(c->in[3], 0), c->out[1] = po(c->in[0], 1), c->out[2] = po(c->in[1], 1), c->out[3] = po(c->in[2], 1);
    c->args.normed = (normed_args){20, 1e-6};
}

static void add_frozen_bn(int N, int H, int W, int C) {
    pcase *c = add_case(frozen_bn_fn, 1e-6, 1e-6, "frozen_bn [%d,%d,%d,%d]", N, H, W, C);
    c->nin = 4, c->nout = 2;
    c->in[0] = RND(-2, 2, N, H, W, C), c->in[1] = RND(0.5, 2, C), c->in[2] = RND(-1, 1, C);
    c->in[3] = RND(-1, 1, N, H, W, C);
    c->out[0] = po(c->in[0], 0), c->out[1] = po(c->in[0], 1);
}

static void add_gn(int N, int H, int W, int C, int G) {
    pcase *c = add_case(gn_fn, 1e-4, 2e-6 * sqrt((double)H * W * C / G + N * H * W), "group_norm G=%d [%d,%d,%d,%d]",
                        G, N, H, W, C);
    c->nin = 4, c->nout = 5;
    c->in[0] = RND(-1, 3, N, H, W, C), c->in[1] = RND(0.5, 1.5, C), c->in[2] = RND(-1, 1, C);
    c->in[3] = RND(-1, 1, N, H, W, C);
    c->out[0] = po(c->in[0], 0), c->out[1] = po_shape(TSHAPE(N, G, 2), 0), c->out[2] = po(c->in[0], 1);
    c->out[3] = po(c->in[1], 1), c->out[4] = po(c->in[1], 1);
    c->args.gn = (group_norm_args){G, 1e-5};
}

static void add_pointwise(int N, int H, int W, int C) {
    pcase *c = add_case(pointwise_fn, 1e-6, 1e-6, "relu/add/scale/axpy [%d,%d,%d,%d]", N, H, W, C);
    c->nin = 3, c->nout = 5;
    c->in[0] = RND(-1, 1, N, H, W, C), c->in[1] = RND(-1, 1, N, H, W, C), c->in[2] = RND(-1, 1, N, H, W, C);
    for (int k = 0; k < 5; k++) c->out[k] = po(c->in[0], k == 1 || k == 4);
}

static void add_pool(int N, int H, int W, int C, int k, int s, int p) {
    pcase *c = add_case(pool_fn, 0, 0, "max_pool %dx%d s%d p%d [%d,%d,%d,%d]", k, k, s, p, N, H, W, C);
    int Ho = conv2d_out_size(H, k, s, p), Wo = conv2d_out_size(W, k, s, p);
    c->nin = 2, c->nout = 2;
    c->in[0] = RND(-1, 1, N, H, W, C), c->in[1] = RND(-1, 1, N, Ho, Wo, C);
    c->out[0] = po(c->in[1], 0), c->out[1] = po(c->in[0], 1);
    c->args.pool = (pool_args){k, s, p};
    c->atol = 1e-6; /* each dx is a short sum of dy values: exact up to addition order */
}

static void add_up(int N, int H, int W, int C) {
    pcase *c = add_case(up_fn, 0, 1e-6, "upsample2x [%d,%d,%d,%d]", N, H, W, C);
    c->nin = 2, c->nout = 2;
    c->in[0] = RND(-1, 1, N, H, W, C), c->in[1] = RND(-1, 1, N, 2 * H, 2 * W, C);
    c->out[0] = po(c->in[1], 0), c->out[1] = po(c->in[0], 1);
}

static void add_loss(int kind, int R, int K, double beta) {
    static const char *names[] = {"bce_logits", "softmax_ce", "smooth_l1"};
    static const parity_fn fns[] = {bce_fn, ce_fn, sl1_fn};
    pcase *c = add_case(fns[kind], 1e-5, 1e-6, "%s [%d,%d]%s", names[kind], R, K, kind == 2 && beta == 0 ? " (L1)" : "");
    c->nin = 4, c->nout = 2;
    c->in[0] = RND(-4, 4, R, K);
    if (kind == 1) {
        c->in[1] = ot_const(DTYPE_I32, TSHAPE(R), 0, 0);
        for (int r = 0; r < R; r++) tensor_i32(c->in[1])[r] = (int)ot_uniform(0, K - 1e-9);
        c->in[2] = RND(0, 2, R);
    } else {
        c->in[1] = RND(0, 1, R, K), c->in[2] = RND(0, 2, R, K);
    }
    c->in[3] = RND(0.5, 1.5, 1);
    c->out[0] = po_shape(TSHAPE(1), 0), c->out[1] = po(c->in[0], 1);
    c->args.loss[0] = 0.5 * R, c->args.loss[1] = beta;
}

/* An i32 [R] tensor of indices in [0, n); every third row repeats an earlier row's, so rows
 * share classes even when n is large. */
static tensor *rnd_index(int R, int n) {
    tensor *t = ot_const(DTYPE_I32, TSHAPE(R), 0, 0);
    for (int r = 0; r < R; r++)
        tensor_i32(t)[r] = r % 3 == 2 ? tensor_i32(t)[(int)ot_uniform(0, r - 1e-9)] : (int)ot_uniform(0, n - 1e-9);
    return t;
}

/* gather_group copies (forward) and adds once (backward): exact on both sides. */
static void add_gather(int R, int G, int width) {
    pcase *c = add_case(gather_fn, 0, 0, "gather_group [%d, %d·%d]", R, G, width);
    c->nin = 3, c->nout = 2;
    c->in[0] = RND(-1, 1, R, G * width), c->in[1] = rnd_index(R, G), c->in[2] = RND(-1, 1, R, width);
    c->out[0] = po(c->in[2], 0), c->out[1] = po(c->in[0], 1);
    c->args.width = width;
}

/* class_conv1x1: y is a double sum rounded once to f32 (the GPU adds in another order:
 * at most an ulp apart); dx is one rounded product added once, and dw, db are the CPU's
 * double row sums added in the CPU's row order (kernels/select.cu), so all three are
 * expected bit-identical: the 1e-6 bounds leave room without hiding a wrong sum. */
static void add_cconv(int R, int H, int W, int C, int K, int bias, int flat_w) {
    pcase *c = add_case(cconv_fn, 1e-6, 1e-6, "class_conv1x1 [%d,%d,%d,%d] K=%d%s%s", R, H, W, C, K,
                        bias ? " +bias" : "", flat_w ? " w [K,C]" : "");
    c->nin = 5, c->nout = bias ? 4 : 3;
    c->in[0] = RND(-1, 1, R, H, W, C);
    c->in[1] = flat_w ? RND(-1, 1, K, C) : RND(-1, 1, K, 1, 1, C);
    c->in[2] = bias ? RND(-1, 1, K) : NULL;
    c->in[3] = rnd_index(R, K), c->in[4] = RND(-1, 1, R, H, W, 1);
    c->out[0] = po(c->in[4], 0), c->out[1] = po(c->in[0], 1), c->out[2] = po(c->in[1], 1);
    if (bias) c->out[3] = po(c->in[2], 1);
}

static void build_cases(void) {
    if (ncases) return;
    ot_seed(parity_seed());
    add_conv(1, 1, 1, 3, 5, 1, 1, 0);      /* a 1×1 map */
    add_conv(3, 7, 9, 5, 6, 3, 1, 1);      /* batch 3, channels not a multiple of 8 */
    add_conv(1, 13, 11, 3, 4, 7, 2, 3);    /* the stem's window */
    add_conv(3, 9, 8, 12, 7, 1, 2, 0);     /* projection shortcut */
    add_conv(1, 1, 1, 16, 8, 3, 1, 1);     /* 3×3 on a 1×1 map: all but the centre is padding */
    add_conv(2, 6, 5, 8, 8, 3, 2, 1);
    add_conv(1, 200, 336, 16, 8, 3, 1, 1); /* a P2-sized map */
    add_deconv(1, 1, 1, 3, 5);
    add_deconv(3, 7, 5, 6, 4);
    add_deconv(2, 14, 14, 32, 16);
    add_linear(1, 3, 5, 0);
    add_linear(37, 12, 9, 0);
    add_linear(512, 256, 31, 0);
    add_linear(5, 7, 3, 1);
    add_linear(64, 256, 11, 1);
    add_linear(1, 7, 3, 2);
    add_frozen_bn(1, 1, 1, 3);
    add_frozen_bn(3, 5, 7, 13);
    add_gn(1, 1, 1, 4, 2);
    add_gn(3, 7, 9, 12, 4);
    add_gn(2, 50, 84, 64, 32);
    add_pointwise(1, 1, 1, 1);
    add_pointwise(3, 5, 7, 13);
    add_pool(1, 1, 1, 3, 3, 2, 1);
    add_pool(3, 9, 10, 5, 3, 2, 1);
    add_pool(1, 200, 336, 8, 3, 2, 1);
    add_pool(1, 25, 42, 6, 1, 2, 0);       /* P6 */
    add_up(1, 1, 1, 3);
    add_up(3, 5, 7, 9);
    add_up(1, 100, 168, 8);
    add_loss(0, 1, 1, 0);
    add_loss(0, 300, 29, 0);
    add_loss(1, 1, 2, 0);
    add_loss(1, 513, 1204, 0);             /* LVIS-sized logits: K + 1 = 1204 */
    add_loss(2, 77, 4, 1.0 / 9);
    add_loss(2, 77, 4, 0);
    add_gather(1, 1, 4);
    add_gather(37, 9, 4);
    add_gather(64, 5, 1);
    add_gather(1024, 1203, 4);             /* LVIS box deltas: 4 of 1203·4 per RoI */
    add_cconv(1, 1, 1, 3, 2, 1, 0);
    add_cconv(5, 7, 7, 17, 3, 0, 0);       /* no bias */
    add_cconv(9, 5, 6, 8, 4, 1, 1);        /* the [K, C] weight */
    add_cconv(40, 3, 3, 130, 70, 1, 0);    /* C + 1 crosses a column tile; K > the class chunks */
    add_cconv(2048, 2, 2, 8, 3, 1, 0);     /* rows past one staged tile of classes, ~680 per class */
    add_cconv(256, 28, 28, 256, 1203, 1, 0); /* the LVIS mask predictor, repeated classes */
}

static parity_result run_case(const pcase *c, runtime *twin_rt, parity_fn twin) {
    return parity_run(c->name, ot_runtime(2), c->fn, twin_rt, twin ? twin : c->fn, (tensor **)c->in, c->nin, c->out,
                      c->nout, &c->args, c->rtol, c->atol);
}

/* ---- the harness's own tests (CPU) -------------------------------------------------- */

static void test_harness_cpu_against_itself(void) {
    build_cases();
    runtime *rt = ot_runtime(2);
    for (int i = 0; i < ncases; i++) PARITY_EXPECT(run_case(&cases[i], rt, NULL));
}

/* Wrong twins: each must be caught. */
static void twin_off_by_a_bit(runtime *rt, tensor **in, tensor **out, const void *args) {
    conv_fn(rt, in, out, args);
    tensor_f32(out[0])[tensor_numel(out[0]) / 2] *= 1.001f;
}
static void twin_skips_an_element(runtime *rt, tensor **in, tensor **out, const void *args) {
    float keep = NAN;
    conv_fn(rt, in, out, args);
    tensor_f32(out[0])[tensor_numel(out[0]) - 1] = keep; /* as if the last element were never written */
}
static void twin_overwrites(runtime *rt, tensor **in, tensor **out, const void *args) {
    memset(out[2]->data, 0, tensor_bytes(out[2])); /* dw written instead of accumulated */
    conv_fn(rt, in, out, args);
}
static void twin_loss_scaled(runtime *rt, tensor **in, tensor **out, const void *args) {
    ce_fn(rt, in, out, args);
    tensor_f32(out[0])[0] *= 1.0001f;
}

static void test_harness_catches_wrong_twins(void) {
    build_cases();
    runtime *rt = ot_runtime(2);
    const pcase *conv = &cases[1], *ce = NULL;
    for (int i = 0; i < ncases; i++)
        if (cases[i].fn == ce_fn) ce = &cases[i];
    REQUIRE(conv->fn == conv_fn && ce);
    parity_result r = run_case(conv, rt, twin_off_by_a_bit);
    EXPECT(!r.ok && strstr(r.msg, "output 0: 1 of"), "a 0.1%% error must fail: %s", r.msg);
    r = run_case(conv, rt, twin_skips_an_element);
    EXPECT(!r.ok && strstr(r.msg, "never written"), "an unwritten element must fail: %s", r.msg);
    r = run_case(conv, rt, twin_overwrites);
    EXPECT(!r.ok && strstr(r.msg, "output 2"), "overwriting dw must fail: %s", r.msg);
    r = run_case(ce, rt, twin_loss_scaled);
    EXPECT(!r.ok && strstr(r.msg, "softmax_ce"), "a loss off by 1e-4 must fail: %s", r.msg);
    printf("  (the message of a failure reads: %s)\n", r.msg);
}

/* ---- the GPU twins ------------------------------------------------------------------- */

static void test_gpu_parity(void) {
    REQUIRE_GPU();
    build_cases();
    static runtime gpu;
    static int made = 0;
    if (!made) {
        runtime_config cfg = runtime_config_default();
        cfg.device = "cuda";
        cfg.quiet = 1;
        runtime_init(&gpu, &cfg);
        made = 1;
    }
    for (int i = 0; i < ncases; i++) {
        parity_result r = run_case(&cases[i], &gpu, NULL);
        PARITY_EXPECT(r);
        printf("  %-44s worst |gpu - cpu| %.3g\n", cases[i].name, r.worst);
    }
}

/* The autograd wrappers on the GPU: a small graph through op_* (dispatch, gradient buffers
 * from the GPU arena, the loss seeded on the device) gives the CPU's loss and gradients. */
static void tape_graph(runtime *rt, tensor *x, tensor *w, tensor *b, tensor *t, float *out, int64_t nx, int64_t nw) {
    runtime_step_end(rt);
    /* ReLU after the norm: its zeros tie exactly on both sides, so max pool routes alike */
    tensor *y = op_relu(rt, op_group_norm(rt, op_conv2d(rt, x, w, b, 1, 1), NULL, NULL, 2, 1e-5));
    tensor *p = op_upsample2x(rt, op_max_pool(rt, y, 3, 2, 1));
    tensor *loss = op_bce_logits(rt, op_add(rt, p, op_scale(rt, y, 0.5)), t, NULL, 10);
    runtime_backward(rt, loss);
    tensor hl = tensor_alloc(DTYPE_F32, DEVICE_CPU, TSHAPE(1)), hx = tensor_alloc(DTYPE_F32, DEVICE_CPU, x->shape, 4);
    tensor hw = tensor_alloc(DTYPE_F32, DEVICE_CPU, w->shape, 4);
    tensor gx = *x, gw = *w;
    gx.data = x->grad, gw.data = w->grad;
    tensor_copy(&hl, loss), tensor_copy(&hx, &gx), tensor_copy(&hw, &gw);
    out[0] = tensor_f32(&hl)[0];
    memcpy(out + 1, hx.data, (size_t)nx * sizeof(float));
    memcpy(out + 1 + nx, hw.data, (size_t)nw * sizeof(float));
    tensor_free(&hl), tensor_free(&hx), tensor_free(&hw);
    runtime_step_end(rt);
}

static void test_gpu_tape(void) {
    REQUIRE_GPU();
    runtime gpu;
    runtime_config cfg = runtime_config_default();
    cfg.device = "cuda";
    cfg.quiet = 1;
    runtime_init(&gpu, &cfg);
    ot_seed(parity_seed() + 1);
    tensor *hx = RND(-1, 1, 2, 8, 10, 4), *hw = RND(-0.5, 0.5, 6, 3, 3, 4), *hb = RND(-1, 1, 6), *ht = RND(0, 1, 2, 8, 10, 6);
    tensor *dev[4], *host[4] = {hx, hw, hb, ht};
    for (int i = 0; i < 4; i++) {
        dev[i] = malloc(sizeof(tensor));
        *dev[i] = i < 3 ? tensor_alloc_param(DTYPE_F32, DEVICE_CUDA, host[i]->shape, host[i]->ndim, "p")
                        : tensor_alloc(DTYPE_F32, DEVICE_CUDA, host[i]->shape, host[i]->ndim);
        tensor_copy(dev[i], host[i]);
    }
    tensor *cx = ot_param(DTYPE_F32, hx->shape, 4, 0, 0), *cw = ot_param(DTYPE_F32, hw->shape, 4, 0, 0);
    tensor *cb = ot_param(DTYPE_F32, hb->shape, 1, 0, 0);
    tensor_copy(cx, hx), tensor_copy(cw, hw), tensor_copy(cb, hb);
    int64_t nx = tensor_numel(hx), nw = tensor_numel(hw);
    float *a = malloc((size_t)(1 + nx + nw) * sizeof *a), *g = malloc((size_t)(1 + nx + nw) * sizeof *g);
    tape_graph(ot_runtime(2), cx, cw, cb, ht, a, nx, nw);
    tape_graph(&gpu, dev[0], dev[1], dev[2], dev[3], g, nx, nw);
    double *ad = malloc((size_t)(1 + nx + nw) * sizeof *ad), *gd = malloc((size_t)(1 + nx + nw) * sizeof *gd);
    for (int64_t i = 0; i < 1 + nx + nw; i++) ad[i] = a[i], gd[i] = g[i];
    EXPECT_CLOSE("tape on the GPU: loss", gd, ad, 1, 1e-6, 1e-5);
    EXPECT_CLOSE("tape on the GPU: dx", gd + 1, ad + 1, nx, 1e-5, 1e-3);
    EXPECT_CLOSE("tape on the GPU: dw", gd + 1 + nx, ad + 1 + nx, nw, 1e-5, 1e-3);
    free(a), free(g), free(ad), free(gd);
    for (int i = 0; i < 4; i++) tensor_free(dev[i]), free(dev[i]);
    ot_free(hx), ot_free(hw), ot_free(hb), ot_free(ht), ot_free(cx), ot_free(cw), ot_free(cb);
    runtime_free(&gpu);
}

int main(void) {
    RUN(test_harness_cpu_against_itself);
    RUN(test_harness_catches_wrong_twins);
    RUN(test_gpu_parity);
    RUN(test_gpu_tape);
    for (int i = 0; i < ncases; i++)
        for (int k = 0; k < cases[i].nin; k++) ot_free(cases[i].in[k]);
    return test_finish("test_parity");
}

/* conv.c: conv2d and deconv2x2 on the CPU (see conv.h): shape checks, the f32/f64
 * kernels of conv_real.inc, and the autograd wrappers. */
#include "ops/conv.h"

#include "core/arena.h"
#include "ops/ops_internal.h"

#include <cblas.h>
#include <string.h>

/* A 1×1, stride-1, unpadded convolution is a GEMM on the input as it is. */
static int conv_geom_is_pointwise(const conv_geom *g) {
    return g->R == 1 && g->S == 1 && g->stride == 1 && g->pad == 0;
}

/* Output pixels per im2col chunk: about CONV_CHUNK_BYTES of scratch, enough rows for an
 * efficient GEMM while the chunk stays far smaller than a full im2col (a 3×3 convolution
 * over 200×336×64 would otherwise need 155 MB). */
#define CONV_CHUNK_BYTES ((int64_t)16 << 20)
static int64_t conv_chunk_rows(int64_t row_bytes, int64_t rows) {
    int64_t c = CONV_CHUNK_BYTES / (row_bytes > 0 ? row_bytes : 1);
    if (c < 64) c = 64;
    return c < rows ? c : (rows > 0 ? rows : 1);
}

#define REAL_INC "ops/conv_real.inc"
#include "ops/real_instantiate.h"

int conv2d_out_size(int in, int k, int stride, int pad) {
    CHECK(stride > 0 && pad >= 0 && k > 0, "bad window: k %d stride %d pad %d", k, stride, pad);
    int span = in + 2 * pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

/* Checks the operands of conv2d and returns their geometry (ops_internal.h). */
conv_geom conv2d_check(const char *op, const conv2d_args *a, const tensor *x, const tensor *w, const tensor *b,
                       const tensor *y) {
    char sx[128], sw[128];
    ops_expect_real(op, "x", x);
    CHECK(x->ndim == 4, "%s: x must be NHWC, got %s", op, tensor_str(x, sx, sizeof sx));
    CHECK(w != NULL, "%s: the weight is missing", op);
    tensor_expect(w, x->dtype, x->device, TSHAPE(-1, -1, -1, x->shape[3]), "conv2d weight [K,R,S,C]");
    CHECK(a->stride > 0 && a->pad >= 0, "%s: bad stride %d / pad %d", op, a->stride, a->pad);
    conv_geom g = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[1], w->shape[2],
                   0, 0, a->stride, a->pad};
    g.Ho = conv2d_out_size(g.H, g.R, g.stride, g.pad);
    g.Wo = conv2d_out_size(g.W, g.S, g.stride, g.pad);
    CHECK(g.Ho > 0 && g.Wo > 0, "%s: kernel %s larger than the padded input %s", op,
          tensor_str(w, sw, sizeof sw), tensor_str(x, sx, sizeof sx));
    /* the GEMM calls take int sizes */
    CHECK((int64_t)g.N * g.Ho * g.Wo <= INT32_MAX && (int64_t)g.N * g.H * g.W <= INT32_MAX,
          "%s: %s has more pixels than one GEMM takes", op, tensor_str(x, sx, sizeof sx));
    if (b) tensor_expect(b, x->dtype, x->device, TSHAPE(g.K), "conv2d bias [K]");
    if (y) tensor_expect(y, x->dtype, x->device, TSHAPE(g.N, g.Ho, g.Wo, g.K), "conv2d output [N,Ho,Wo,K]");
    return g;
}

void conv2d_forward_cpu(runtime *rt, const conv2d_args *a, const tensor *x, const tensor *w,
                        const tensor *b, tensor *y) {
    ops_expect_cpu("conv2d_forward_cpu", x);
    conv_geom g = conv2d_check("conv2d", a, x, w, b, y);
    OPS_REAL(x, conv2d_fwd, rt, &g, x->data, w->data, b ? b->data : NULL, y->data);
}

void conv2d_backward_cpu(runtime *rt, const conv2d_args *a, const tensor *x, const tensor *w,
                         const tensor *dy, tensor *dx, tensor *dw, tensor *db) {
    ops_expect_cpu("conv2d_backward_cpu", x);
    conv_geom g = conv2d_check("conv2d backward", a, x, w, db, dy);
    if (dx) ops_expect_same_shape("conv2d backward dx", dx, x);
    if (dw) ops_expect_same_shape("conv2d backward dw", dw, w);
    OPS_REAL(x, conv2d_bwd, rt, &g, x->data, w->data, dy->data, dx ? dx->data : NULL,
                            dw ? dw->data : NULL, db ? db->data : NULL);
}

typedef struct conv2d_ctx {
    conv2d_args a;
    tensor *x, *w, *b, *y;
} conv2d_ctx;

static void conv2d_backward_tape(runtime *rt, void *p) {
    conv2d_ctx *c = p;
    if (!c->y->grad) return; /* nothing downstream used y */
    tensor dy = *c->y, gx, gw, gb;
    dy.data = c->y->grad;
    OPS_CALL(c->x, conv2d_backward, rt, &c->a, c->x, c->w, &dy, ops_grad(rt, c->x, &gx), ops_grad(rt, c->w, &gw),
                        ops_grad(rt, c->b, &gb));
}

tensor *op_conv2d(runtime *rt, tensor *x, tensor *w, tensor *b, int stride, int pad) {
    conv2d_args a = {stride, pad};
    device d = ops_device("conv2d", x);
    conv_geom g = conv2d_check("conv2d", &a, x, w, b, NULL);
    tensor *y = runtime_tensor(rt, d, x->dtype, TSHAPE(g.N, g.Ho, g.Wo, g.K));
    OPS_CALL(x, conv2d_forward, rt, &a, x, w, b, y);
    if (RUNTIME_NEEDS_GRAD(rt, x, w, b)) {
        conv2d_ctx *c = runtime_record(rt, "conv2d", conv2d_backward_tape, sizeof *c);
        *c = (conv2d_ctx){a, x, w, b, y};
        y->requires_grad = 1;
    }
    return y;
}

/* ---- deconv2x2 ------------------------------------------------------------------------ */

void deconv2x2_check(const char *op, const tensor *x, const tensor *w, const tensor *b, const tensor *y) {
    char sx[128];
    ops_expect_real(op, "x", x);
    CHECK(x->ndim == 4, "%s: x must be NHWC, got %s", op, tensor_str(x, sx, sizeof sx));
    CHECK(w != NULL, "%s: the weight is missing", op);
    CHECK((int64_t)x->shape[0] * x->shape[1] * x->shape[2] <= INT32_MAX / 4, "%s: %s has more pixels than one GEMM takes",
          op, tensor_str(x, sx, sizeof sx));
    tensor_expect(w, x->dtype, x->device, TSHAPE(-1, 2, 2, x->shape[3]), "deconv2x2 weight [K,2,2,C]");
    if (b) tensor_expect(b, x->dtype, x->device, TSHAPE(w->shape[0]), "deconv2x2 bias [K]");
    if (y)
        tensor_expect(y, x->dtype, x->device, TSHAPE(x->shape[0], 2 * x->shape[1], 2 * x->shape[2], w->shape[0]),
                      "deconv2x2 output [N,2H,2W,K]");
}

void deconv2x2_forward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *b, tensor *y) {
    ops_expect_cpu("deconv2x2_forward_cpu", x);
    deconv2x2_check("deconv2x2", x, w, b, y);
    OPS_REAL(x, deconv_fwd, rt, x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], x->data, w->data,
                            b ? b->data : NULL, y->data);
}

void deconv2x2_backward_cpu(runtime *rt, const tensor *x, const tensor *w, const tensor *dy,
                            tensor *dx, tensor *dw, tensor *db) {
    ops_expect_cpu("deconv2x2_backward_cpu", x);
    deconv2x2_check("deconv2x2 backward", x, w, db, dy);
    if (dx) ops_expect_same_shape("deconv2x2 backward dx", dx, x);
    if (dw) ops_expect_same_shape("deconv2x2 backward dw", dw, w);
    OPS_REAL(x, deconv_bwd, rt, x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], x->data, w->data,
                            dy->data, dx ? dx->data : NULL, dw ? dw->data : NULL, db ? db->data : NULL);
}

typedef struct deconv_ctx {
    tensor *x, *w, *b, *y;
} deconv_ctx;

static void deconv_backward_tape(runtime *rt, void *p) {
    deconv_ctx *c = p;
    if (!c->y->grad) return;
    tensor dy = *c->y, gx, gw, gb;
    dy.data = c->y->grad;
    OPS_CALL(c->x, deconv2x2_backward, rt, c->x, c->w, &dy, ops_grad(rt, c->x, &gx), ops_grad(rt, c->w, &gw),
                           ops_grad(rt, c->b, &gb));
}

tensor *op_deconv2x2(runtime *rt, tensor *x, tensor *w, tensor *b) {
    device d = ops_device("deconv2x2", x);
    deconv2x2_check("deconv2x2", x, w, b, NULL);
    tensor *y = runtime_tensor(rt, d, x->dtype, TSHAPE(x->shape[0], 2 * x->shape[1], 2 * x->shape[2], w->shape[0]));
    OPS_CALL(x, deconv2x2_forward, rt, x, w, b, y);
    if (RUNTIME_NEEDS_GRAD(rt, x, w, b)) {
        deconv_ctx *c = runtime_record(rt, "deconv2x2", deconv_backward_tape, sizeof *c);
        *c = (deconv_ctx){x, w, b, y};
        y->requires_grad = 1;
    }
    return y;
}

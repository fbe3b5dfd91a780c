/* test_backbone.c: ResNet + FPN + RPN head: parameter counts against architecture.md
 * §12.1 (worked out by hand below), feature shapes, freezing, and a finite-difference
 * gradient check of a tiny ResNet-18 + FPN through the tape (f64). */
#include "ops_test.h"

#include "model/backbone.h"
#include "model/rpn_head.h"

/* R50 conv weights, by hand (no biases, FrozenBN not counted):
 *   stem 7·7·3·64 = 9,408
 *   stage with bottleneck b, out 4b, input cin, n blocks:
 *     block 0: cin·b + 9b² + b·4b + cin·4b (shortcut), blocks 1..n-1: 4b·b + 9b² + 4b² = 17b²
 *   res2 (b 64, cin 64, 3):    73,728 + 2·69,632        =   212,992
 *   res3 (b 128, cin 256, 4):  376,832 + 3·278,528      = 1,212,416
 *   res4 (b 256, cin 512, 6):  1,507,328 + 5·1,114,112  = 7,077,888
 *   res5 (b 512, cin 1024, 3): 6,029,312 + 2·4,456,448  = 14,942,208
 *   total 23,454,912 (§12.1: 23.455 M); frozen at freeze_at 2: 9,408 + 212,992 = 222,400.
 * R101: res4 has 23 blocks: + 17 · 1,114,112 = 42,394,816 (§12.1: 42.395 M).
 * FrozenBN buffers (scale + shift per norm channel): R50 53,120, R101 105,344.
 * FPN: laterals (256+512+1024+2048)·256 + 4·256 = 984,064; outputs 4·(9·256² + 256)
 *   = 2,360,320; total 3,344,384 (§12.1: 3.344 M).
 * RPN head: 9·256² + 256 + (256·3 + 3) + (256·12 + 12) = 593,935 (§12.1: 0.594 M). */
static void test_param_counts(void) {
    const struct {
        int depth;
        int64_t convs, buffers;
    } want[2] = {{50, 23454912, 53120}, {101, 42394816, 105344}};
    for (int i = 0; i < 2; i++) {
        backbone_config c = backbone_config_default();
        c.depth = want[i].depth;
        backbone b;
        backbone_init(&b, &c, DEVICE_CPU);
        int64_t tr = param_list_count(&b.params, "backbone.bottom_up.", PARAM_KIND_TRAINABLE);
        int64_t fr = param_list_count(&b.params, "backbone.bottom_up.", PARAM_KIND_FROZEN);
        int64_t bu = param_list_count(&b.params, "backbone.bottom_up.", PARAM_KIND_BUFFER);
        EXPECT(tr + fr == want[i].convs, "R%d convs %lld, want %lld", c.depth, (long long)(tr + fr),
               (long long)want[i].convs);
        EXPECT(fr == 222400, "R%d frozen %lld", c.depth, (long long)fr);
        EXPECT(bu == want[i].buffers, "R%d FrozenBN buffers %lld", c.depth, (long long)bu);
        int64_t fpn = param_list_count(&b.params, "backbone.fpn_", PARAM_KIND_TRAINABLE);
        EXPECT(fpn == 3344384, "FPN %lld", (long long)fpn);
        /* names follow detectron2 */
        int found = 0;
        for (int k = 0; k < b.params.n; k++) {
            const char *n = b.params.items[k].t->name;
            found += strcmp(n, "backbone.bottom_up.stem.conv1.weight") == 0;
            found += strcmp(n, "backbone.bottom_up.res2.0.shortcut.weight") == 0;
            found += strcmp(n, "backbone.bottom_up.res5.2.conv3.norm.bias") == 0;
            found += strcmp(n, "backbone.fpn_lateral2.weight") == 0;
            found += strcmp(n, "backbone.fpn_output5.bias") == 0;
        }
        EXPECT(found == 5, "found %d of 5 expected names", found);
        backbone_free(&b);
    }
    rpn_head h;
    rpn_head_init(&h, 256, 3, DTYPE_F32, DEVICE_CPU, 0);
    int64_t n = param_list_count(&h.params, "proposal_generator.rpn_head.", PARAM_KIND_TRAINABLE);
    EXPECT(n == 593935, "RPN head %lld", (long long)n);
    EXPECT(strcmp(h.objectness.w.name, "proposal_generator.rpn_head.objectness_logits.weight") == 0);
    rpn_head_free(&h);
}

/* An image with values in [-1, 1]. */
static tensor *image(runtime *rt, dtype dt, int n, int hh, int ww) {
    tensor *x = runtime_tensor(rt, DEVICE_CPU, dt, (const int[]){n, hh, ww, 3}, 4);
    for (int64_t i = 0; i < tensor_numel(x); i++) {
        double v = ot_uniform(-1, 1);
        if (dt == DTYPE_F64) tensor_f64(x)[i] = v;
        else tensor_f32(x)[i] = (float)v;
    }
    x->requires_grad = 0;
    return x;
}

/* R50 at width 4 (1/16) on a full 800×1344 input: C2..C5 and P2..P6 shapes (§3). */
static void test_shapes(void) {
    runtime *rt = ot_runtime(4);
    backbone_config c = backbone_config_default();
    c.width = 4, c.fpn_channels = 8;
    backbone b;
    backbone_init(&b, &c, DEVICE_CPU);
    rt->tape.enabled = 0;
    backbone_out o = backbone_forward(rt, &b, image(rt, DTYPE_F32, 1, 800, 1344));
    const int ph[5] = {200, 100, 50, 25, 13}, pw[5] = {336, 168, 84, 42, 21};
    for (int l = 0; l < 4; l++) {
        const tensor *t = o.c[l];
        EXPECT(t->shape[0] == 1 && t->shape[1] == ph[l] && t->shape[2] == pw[l] && t->shape[3] == 16 << l,
               "C%d [%d,%d,%d,%d]", l + 2, t->shape[0], t->shape[1], t->shape[2], t->shape[3]);
    }
    for (int l = 0; l < 5; l++) {
        const tensor *t = o.p[l];
        EXPECT(t->shape[1] == ph[l] && t->shape[2] == pw[l] && t->shape[3] == 8, "P%d [%d,%d,%d,%d]", l + 2,
               t->shape[0], t->shape[1], t->shape[2], t->shape[3]);
        for (int64_t i = 0; i < tensor_numel(t); i++)
            if (!isfinite(tensor_f32(t)[i])) {
                test_fail_at(__FILE__, __LINE__, "P%d has a non-finite value at %lld", l + 2, (long long)i);
                break;
            }
    }
    rpn_head h;
    rpn_head_init(&h, 8, 3, DTYPE_F32, DEVICE_CPU, 0);
    rpn_head_out r = rpn_head_forward(rt, &h, o.p, 5);
    for (int l = 0; l < 5; l++)
        EXPECT(r.logits[l]->shape[1] == ph[l] && r.logits[l]->shape[3] == 3 && r.deltas[l]->shape[2] == pw[l] &&
                   r.deltas[l]->shape[3] == 12,
               "RPN level %d", l);
    rt->tape.enabled = 1;
    runtime_step_end(rt);
    rpn_head_free(&h);
    backbone_free(&b);
}

/* ResNet-18 / 34 / 101 and stride_in_1x1 = 0, GN: shapes on a small input. */
static void test_variants(void) {
    runtime *rt = ot_runtime(2);
    const int depths[4] = {18, 34, 101, 50};
    for (int v = 0; v < 4; v++) {
        backbone_config c = backbone_config_default();
        c.depth = depths[v], c.width = 2, c.fpn_channels = 4, c.norm = v == 3 ? NORM_GN : NORM_FROZEN_BN;
        c.fpn_norm = v == 3 ? NORM_GN : NORM_NONE, c.stride_in_1x1 = v != 3, c.freeze_at = v % 3;
        backbone b;
        backbone_init(&b, &c, DEVICE_CPU);
        backbone_out o = backbone_forward(rt, &b, image(rt, DTYPE_F32, 2, 64, 96));
        int mult = depths[v] >= 50 ? 4 : 1;
        for (int l = 0; l < 4; l++)
            EXPECT(o.c[l]->shape[0] == 2 && o.c[l]->shape[1] == 16 >> l && o.c[l]->shape[2] == 24 >> l &&
                       o.c[l]->shape[3] == (2 << l) * mult,
                   "R%d C%d", depths[v], l + 2);
        EXPECT(o.p[4]->shape[1] == 1 && o.p[4]->shape[2] == 2, "R%d P6 %dx%d", depths[v], o.p[4]->shape[1],
               o.p[4]->shape[2]);
        runtime_step_end(rt);
        backbone_free(&b);
    }
}

/* freeze_at 2: backward gives gradients to res3+ and the FPN, none to the stem or res2 (which
 * own no gradient buffer), and FrozenBN buffers never need one. */
static void test_freeze(void) {
    runtime *rt = ot_runtime(2);
    backbone_config c = backbone_config_default();
    c.depth = 18, c.width = 2, c.fpn_channels = 4;
    backbone b;
    backbone_init(&b, &c, DEVICE_CPU);
    backbone_out o = backbone_forward(rt, &b, image(rt, DTYPE_F32, 1, 64, 64));
    REQUIRE(o.p[0]->requires_grad);
    for (int l = 0; l < 5; l++) {
        float *g = tensor_grad(rt, o.p[l]);
        for (int64_t i = 0; i < tensor_numel(o.p[l]); i++) g[i] = 1.0f;
    }
    tape_backward(&rt->tape, rt);
    runtime_step_end(rt);
    int n_frozen = 0, n_trained = 0;
    for (int k = 0; k < b.params.n; k++) {
        tensor *t = b.params.items[k].t;
        int early = strstr(t->name, ".stem.") || strstr(t->name, ".res2.");
        param_kind want = strstr(t->name, ".norm.") ? PARAM_KIND_BUFFER : early ? PARAM_KIND_FROZEN
                                                                                 : PARAM_KIND_TRAINABLE;
        EXPECT(b.params.items[k].kind == want, "%s kind %d, want %d", t->name, b.params.items[k].kind, want);
        if (want != PARAM_KIND_TRAINABLE) {
            EXPECT(!t->requires_grad && !t->grad, "%s must not get a gradient", t->name);
            n_frozen++;
            continue;
        }
        double s = 0;
        for (int64_t i = 0; i < tensor_numel(t); i++) s += fabs(((float *)t->grad)[i]);
        /* biases of the FPN sum dy = 1 over pixels: nonzero; every conv weight sees signal */
        EXPECT(s > 0, "%s got no gradient", t->name);
        n_trained++;
    }
    EXPECT(n_frozen > 0 && n_trained > 0, "frozen %d trained %d", n_frozen, n_trained);
    backbone_free(&b);
}

typedef struct gc_ctx {
    backbone *b;
    tensor *x;
    int level; /* which P to return */
} gc_ctx;

static tensor *gc_fn(runtime *rt, tensor **in, const void *ctx) {
    const gc_ctx *g = ctx;
    (void)in;
    return backbone_forward(rt, g->b, g->x).p[g->level];
}

/* Finite differences (f64) through a tiny ResNet-18 + FPN with GN, freeze_at 0: the image and
 * a selection of parameters from every part (stem, a shortcut, res5, laterals, outputs). */
static void test_backbone_gradcheck(void) {
    runtime *rt = ot_runtime(2);
    backbone_config c = backbone_config_default();
    c.depth = 18, c.width = 2, c.fpn_channels = 2, c.norm = NORM_GN, c.fpn_norm = NORM_NONE, c.freeze_at = 0;
    c.dtype = DTYPE_F64, c.seed = 7;
    backbone b;
    backbone_init(&b, &c, DEVICE_CPU);
    tensor *x = ot_param(DTYPE_F64, TSHAPE(1, 32, 32, 3), -1, 1);
    tensor *in[] = {x,
                    &b.stem.w,
                    &b.stem.norm_w,
                    &b.blocks[1][0].shortcut.w,
                    &b.blocks[2][1].conv2.norm_b,
                    &b.blocks[3][1].conv1.w,
                    &b.fpn_lateral[0].w,
                    &b.fpn_lateral[3].b,
                    &b.fpn_output[0].w,
                    &b.fpn_output[0].b};
    gc_ctx g = {&b, x, 0};
    OT_GRADCHECK("R18-FPN P2", rt, gc_fn, &g, in, 10, 1e-6, 1e-6, 1e-4);
    tensor *in6[] = {&b.fpn_output[3].w, &b.fpn_output[3].b, &b.blocks[3][0].conv2.w};
    g.level = 4;
    OT_GRADCHECK("R18-FPN P6", rt, gc_fn, &g, in6, 3, 1e-6, 1e-6, 1e-4);
    ot_free(x);
    backbone_free(&b);
}

int main(void) {
    RUN(test_param_counts);
    RUN(test_shapes);
    RUN(test_variants);
    RUN(test_freeze);
    RUN(test_backbone_gradcheck);
    return test_finish("test_backbone");
}

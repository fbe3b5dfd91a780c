/* test_optim.c: SGD, the schedule, clipping and parameter groups (src/train/optim.h).
 * Expected values are hand computations from the formulas in optim.h (PyTorch's SGD and
 * detectron2's WarmupMultiStepLR), written out next to each check. */
#include "test.h"

#include "core/gpu.h"
#include "train/optim.h"

#include <math.h>

/* One scalar against its expected value (EXPECT_CLOSE compares arrays). */
#define CLOSE1(what, got, want, atol, rtol)                          \
    do {                                                             \
        double g_ = (got), w_ = (want);                              \
        EXPECT_CLOSE(what, &g_, &w_, 1, atol, rtol);                 \
    } while (0)

static void test_schedule(void) {
    /* detectron2's LVIS 1x: 0.02, warmup 1000 from 0.001, x0.1 at 120k and 160k */
    lr_schedule s = {0.02, 1000, 0.001, {120000, 160000}, 2, 0.1};
    CLOSE1("lr(0)", lr_at(&s, 0), 0.02 * 0.001, 1e-18, 1e-12);
    CLOSE1("lr(500)", lr_at(&s, 500), 0.02 * (0.001 * 0.5 + 0.5), 1e-18, 1e-12); /* 0.01001 */
    CLOSE1("lr(1000)", lr_at(&s, 1000), 0.02, 1e-18, 1e-12);
    CLOSE1("lr(119999)", lr_at(&s, 119999), 0.02, 1e-18, 1e-12);
    CLOSE1("lr(120000)", lr_at(&s, 120000), 0.002, 1e-18, 1e-12);
    CLOSE1("lr(160000)", lr_at(&s, 160000), 0.0002, 1e-18, 1e-12);
    lr_schedule none = {0.1, 0, 1, {0}, 0, 0.1};
    EXPECT(lr_at(&none, 0) == 0.1, "no warmup, no steps");
}

static void test_patterns(void) {
    EXPECT(name_matches("backbone.*", "backbone.res2.0.conv1.weight"));
    EXPECT(name_matches("*.bias", "roi_heads.box_predictor.cls_score.bias"));
    EXPECT(!name_matches("*.bias", "roi_heads.box_predictor.cls_score.weight"));
    EXPECT(name_matches("backbone.res?.*", "backbone.res4.5.conv2.weight") && !name_matches("backbone.res?", "backbone.res45"));
    EXPECT(name_matches("*", "") && !name_matches("a", "") && name_matches("a**b", "a.x.b"));
}

typedef struct model {
    tensor w, nw, b, frozen;
    tensor *list[4];
} model;

static void make_model(model *m) {
    m->w = tensor_alloc_param(DTYPE_F32, DEVICE_CPU, (const int[]){2}, 1, "roi_heads.fc1.weight");
    m->nw = tensor_alloc_param(DTYPE_F32, DEVICE_CPU, (const int[]){1}, 1, "backbone.res3.0.conv1.norm.weight");
    m->b = tensor_alloc_param(DTYPE_F32, DEVICE_CPU, (const int[]){1}, 1, "roi_heads.fc1.bias");
    m->frozen = tensor_alloc_param(DTYPE_F32, DEVICE_CPU, (const int[]){1}, 1, "backbone.res2.0.conv1.weight");
    m->list[0] = &m->w, m->list[1] = &m->nw, m->list[2] = &m->b, m->list[3] = &m->frozen;
    for (int i = 0; i < 4; i++) {
        float *p = tensor_f32(m->list[i]), *g = m->list[i]->grad;
        for (int64_t k = 0; k < tensor_numel(m->list[i]); k++) p[k] = 1.0f, g[k] = 0.5f;
    }
}

static void free_model(model *m) {
    for (int i = 0; i < 4; i++) tensor_free(m->list[i]);
}

/* Two steps by hand, lr 0.1, momentum 0.9, gradient 0.5 each time, p = 1 at the start:
 *   wd 0.1:  g1 = 0.5 + 0.1 = 0.6, buf = 0.6, p = 0.94;
 *            g2 = 0.5 + 0.094 = 0.594, buf = 0.54 + 0.594 = 1.134, p = 0.94 - 0.1134 = 0.8266
 *   wd 0:    buf = 0.5, p = 0.95; buf = 0.45 + 0.5 = 0.95, p = 0.855
 *   wd 0.2:  g1 = 0.7, p = 0.93; g2 = 0.5 + 0.186 = 0.686, buf = 0.63 + 0.686 = 1.316, p = 0.7984 */
static void test_sgd_groups(void) {
    model m;
    make_model(&m);
    sgd_config c = {0.9, 0.1, 0.0, 0.2, 0};
    param_group g;
    char err[256] = "";
    const char *frozen[] = {"backbone.res2.*"};
    REQUIRE(param_group_init(&g, m.list, 4, &c, NULL, 0, frozen, 1, err, sizeof err) == 0, "%s", err);
    EXPECT(g.trainable[0] && g.trainable[1] && g.trainable[2] && !g.trainable[3], "groups");
    EXPECT(g.wd[0] == 0.1 && g.wd[1] == 0.0 && g.wd[2] == 0.2, "weight decay by name: %g %g %g", g.wd[0], g.wd[1], g.wd[2]);
    sgd_step(&g, &c, 0.1);
    sgd_step(&g, &c, 0.1);
    CLOSE1("weight", tensor_f32(&m.w)[1], 0.8266, 1e-6, 0);
    CLOSE1("norm weight (no decay)", tensor_f32(&m.nw)[0], 0.855, 1e-6, 0);
    CLOSE1("bias (decay 0.2)", tensor_f32(&m.b)[0], 0.7984, 1e-6, 0);
    EXPECT(tensor_f32(&m.frozen)[0] == 1.0f, "a frozen parameter moved");
    param_group_zero_grad(&g);
    EXPECT(((float *)m.w.grad)[0] == 0 && ((float *)m.frozen.grad)[0] == 0.5f, "zero_grad: trainable only");
    param_group_free(&g);
    /* trainable patterns: only the heads */
    const char *heads[] = {"roi_heads.*"}, *typo[] = {"roi_head.*"};
    REQUIRE(param_group_init(&g, m.list, 4, &c, heads, 1, NULL, 0, err, sizeof err) == 0, "%s", err);
    EXPECT(g.trainable[0] && !g.trainable[1] && g.trainable[2] && !g.trainable[3], "trainable patterns");
    param_group_free(&g);
    EXPECT(param_group_init(&g, m.list, 4, &c, typo, 1, NULL, 0, err, sizeof err) == -1 &&
               strstr(err, "solver.trainable pattern 'roi_head.*' matches no parameter"),
           "%s", err);
    free_model(&m);
}

/* Clipping: gradients (3, 4) on the weight and 0 elsewhere: norm 5; max 1 scales them by
 * 1 / (5 + 1e-6); no decay, lr 1, first step: p = 1 - 3 / (5 + 1e-6), 1 - 4 / (5 + 1e-6). */
static void test_clipping(void) {
    model m;
    make_model(&m);
    float *gw = m.w.grad;
    gw[0] = 3, gw[1] = 4;
    for (int i = 1; i < 4; i++) ((float *)m.list[i]->grad)[0] = 0;
    sgd_config c = {0.9, 0, 0, 0, 1.0};
    param_group g;
    char err[256];
    REQUIRE(param_group_init(&g, m.list, 4, &c, NULL, 0, NULL, 0, err, sizeof err) == 0, "%s", err);
    CLOSE1("global norm", grad_global_norm(&g), 5.0, 1e-12, 0);
    double norm = sgd_step(&g, &c, 1.0);
    CLOSE1("returned norm", norm, 5.0, 1e-12, 0);
    CLOSE1("clipped w0", tensor_f32(&m.w)[0], 1 - 3 / (5 + 1e-6), 1e-6, 0);
    CLOSE1("clipped w1", tensor_f32(&m.w)[1], 1 - 4 / (5 + 1e-6), 1e-6, 0);
    param_group_free(&g);
    /* under the limit nothing is scaled */
    gw[0] = 0.3f, gw[1] = 0.4f;
    tensor_f32(&m.w)[0] = 1, tensor_f32(&m.w)[1] = 1;
    c.clip_norm = 10;
    REQUIRE(param_group_init(&g, m.list, 4, &c, NULL, 0, NULL, 0, err, sizeof err) == 0, "%s", err);
    sgd_step(&g, &c, 1.0);
    CLOSE1("unclipped w0", tensor_f32(&m.w)[0], 0.7, 1e-6, 0);
    param_group_free(&g);
    free_model(&m);
}

/* The CUDA twins against the CPU: the update bit for bit, the sum of squares within
 * rounding (a fixed tree against a sequential sum). */
static void test_gpu_parity(void) {
    REQUIRE_GPU();
    enum { N = 100003 };
    static float p[N], g[N], b[N], p2[N], b2[N];
    for (int i = 0; i < N; i++) p[i] = sinf((float)i), g[i] = cosf(0.37f * (float)i), b[i] = 0.1f * sinf(0.5f * (float)i);
    float *dp = gpu_malloc(N * 4, "p"), *dg = gpu_malloc(N * 4, "g"), *db = gpu_malloc(N * 4, "b");
    gpu_memcpy_h2d(dp, p, N * 4), gpu_memcpy_h2d(dg, g, N * 4), gpu_memcpy_h2d(db, b, N * 4);
    for (int first = 1; first >= 0; first--) {
        sgd_update_cpu(p, g, b, N, 0.02f, 0.9f, 1e-4f, 0.7f, first);
        sgd_update_gpu(NULL, 1, dp, dg, db, N, 0.02f, 0.9f, 1e-4f, 0.7f, first);
    }
    gpu_memcpy_d2h(p2, dp, N * 4), gpu_memcpy_d2h(b2, db, N * 4);
    EXPECT(!memcmp(p, p2, sizeof p) && !memcmp(b, b2, sizeof b), "sgd_update_gpu differs from the CPU");
    double s_cpu = sum_squares_cpu(g, N), s_gpu = sum_squares_gpu(NULL, dg, N);
    CLOSE1("sum of squares", s_gpu, s_cpu, 0, 1e-12);
    gpu_free(dp), gpu_free(dg), gpu_free(db);
}

int main(void) {
    RUN(test_schedule);
    RUN(test_patterns);
    RUN(test_sgd_groups);
    RUN(test_clipping);
    RUN(test_gpu_parity);
    return test_finish("test_optim");
}

/* test_roi_align.c: RoIAlign, one map and the FPN pooler (src/ops/roi_align.h).
 *
 * - golden: torchvision 0.14's roi_align (PyTorch 1.13, float64 autograd) from
 *   tests/golden/roi_align.safetensors (scripts/gen_golden_roi_align.py): outputs and
 *   feature gradients for a random dy; aligned and legacy, sampling ratios 0, 1, 2, 4,
 *   7×7, 14×14 and 5×3 bins, boxes partly or wholly outside, sub-pixel, elongated (400×20
 *   px), two images; the FPN cases with P2..P5 and levels by detectron2's rule.
 *   f64: both sides compute in double and differ only by summation order over at most ~64
 *   samples of O(1) values (~1e-15): atol and rtol 1e-12.
 *   f32: the inputs rounded to f32, the answer compared with torchvision's f64 one. Sample
 *   coordinates reach ~60 feature pixels, so rounding them to f32 moves a sample by up to
 *   ~4e-6 px, which changes a bilinear read by that times the local slope of the features
 *   (random normals: slope < ~4): ~1.5e-5 in the worst element, plus the f32 sums (~1e-6).
 *   Tolerance atol 3e-5, rtol 1e-5.
 * - gradient check in f64 through the tape (OT_GRADCHECK): RoIAlign is linear in the
 *   features, so there are no kinks; aligned and legacy, sampling ratios 0, 1, 2, one map
 *   and the pooler.
 * - the level rule at its boundaries, and the CPU backward's bit-identity across thread
 *   counts.
 * - CPU-vs-GPU parity (parity.h), skipped without a GPU: the GPU backward uses atomicAdd,
 *   so gradients match to f32 rounding of a different summation order (atol 1e-5). */
#include "parity.h"

#include "core/safetensors.h"
#include "ops/ops_internal.h"
#include "ops/roi_align.h"

#define GOLDEN "tests/golden/roi_align.safetensors"
#define F64_TOL 1e-12
#define F32_ATOL 3e-5
#define F32_RTOL 1e-5

/* ---- golden ---- */

static safetensors golden;
static int golden_ok = -1;

static int golden_open(void) {
    if (golden_ok < 0) {
        char err[1024];
        golden_ok = safetensors_open(&golden, GOLDEN, err, sizeof err) == 0;
        if (!golden_ok) printf("  %s (run from the repository root; scripts/gen_golden_roi_align.py makes it)\n", err);
    }
    return golden_ok;
}

/* The entry name as doubles (malloc'd, *n values) or NULL with a failure. */
static double *g_values(const char *name, int64_t *n, const st_tensor **ep) {
    const st_tensor *e = safetensors_find(&golden, name);
    if (!e) {
        test_fail_at(__FILE__, __LINE__, "%s: no tensor %s", GOLDEN, name);
        return NULL;
    }
    int64_t m = 1;
    for (int i = 0; i < e->ndim; i++) m *= e->shape[i];
    double *v = malloc((size_t)(m ? m : 1) * sizeof *v);
    const unsigned char *p = safetensors_data(&golden, e);
    for (int64_t i = 0; i < m; i++) {
        if (e->dtype == DTYPE_I32) {
            int32_t k;
            memcpy(&k, p + 4 * i, 4);
            v[i] = k;
        } else memcpy(&v[i], p + 8 * i, 8);
    }
    *n = m;
    if (ep) *ep = e;
    return v;
}

/* A CPU tensor of dtype dt holding entry name; a parameter when param. */
static tensor *g_tensor(const char *name, dtype dt, int param) {
    int64_t n;
    const st_tensor *e;
    double *v = g_values(name, &n, &e);
    if (!v) return NULL;
    tensor *t = param ? ot_param(dt, e->shape, e->ndim, 0, 0) : ot_const(dt, e->shape, e->ndim, 0, 0);
    for (int64_t i = 0; i < n; i++) ot_set(t, i, v[i]);
    free(v);
    return t;
}

/* Compares n values at got (dtype dt) with entry name. */
static void g_check(const char *label, const char *name, dtype dt, const void *got, int64_t n) {
    int64_t m;
    double *want = g_values(name, &m, NULL);
    if (!want) return;
    char what[300];
    snprintf(what, sizeof what, "%s %s", label, name);
    if (m != n) test_fail_at(__FILE__, __LINE__, "%s: %lld values, the file holds %lld", what, (long long)n, (long long)m);
    else {
        double *have = malloc((size_t)(n ? n : 1) * sizeof *have);
        for (int64_t i = 0; i < n; i++) have[i] = dt == DTYPE_F64 ? ((const double *)got)[i] : ((const float *)got)[i];
        double atol = dt == DTYPE_F64 ? F64_TOL : F32_ATOL, rtol = dt == DTYPE_F64 ? F64_TOL : F32_RTOL;
        EXPECT_CLOSE(what, have, want, n, atol, rtol);
        free(have);
    }
    free(want);
}

static roi_align_args g_args(const char *name) {
    int64_t n;
    double *v = g_values(name, &n, NULL);
    roi_align_args a = {7, 7, 0, 1};
    if (v && n == 4) a = (roi_align_args){(int)v[0], (int)v[1], (int)v[2], (int)v[3]};
    free(v);
    return a;
}

/* Seeds y's gradient with entry dy (rounded to y's dtype) and runs the tape. */
static void g_backward(runtime *rt, tensor *y, const char *name) {
    int64_t n;
    double *dy = g_values(name, &n, NULL);
    if (!dy) return;
    void *g = tensor_grad(rt, y);
    for (int64_t i = 0; i < n && i < tensor_numel(y); i++) {
        if (y->dtype == DTYPE_F64) ((double *)g)[i] = dy[i];
        else ((float *)g)[i] = (float)dy[i];
    }
    tape_backward(&rt->tape, rt);
    free(dy);
}

static int golden_cases(const char *fmt) {
    char name[64];
    int n = 0;
    for (;; n++) {
        snprintf(name, sizeof name, fmt, n);
        if (!safetensors_find(&golden, name)) return n;
    }
}

static void single_case(runtime *rt, int i, dtype dt) {
    char p[32], nm[64], label[48];
    snprintf(p, sizeof p, "roi%d.", i);
    snprintf(label, sizeof label, "%s", dtype_name(dt));
#define NM(f) (snprintf(nm, sizeof nm, "%s%s", p, f), nm)
    tensor *x = g_tensor(NM("x"), dt, 1), *rois = g_tensor(NM("rois"), dt, 0);
    roi_align_args a = g_args(NM("args"));
    int64_t ns;
    double *scale = g_values(NM("scale"), &ns, NULL);
    if (x && rois && scale) {
        tensor *y = op_roi_align(rt, x, rois, &a, scale[0]);
        g_check(label, NM("y"), dt, y->data, tensor_numel(y));
        g_backward(rt, y, NM("dy"));
        g_check(label, NM("dx"), dt, x->grad, tensor_numel(x));
    }
    free(scale);
    runtime_step_end(rt);
    ot_free(x), ot_free(rois);
}

static void fpn_case(runtime *rt, int i, dtype dt) {
    char p[32], nm[64], label[48];
    snprintf(p, sizeof p, "fpn%d.", i);
    snprintf(label, sizeof label, "%s", dtype_name(dt));
    tensor *f[ROI_FPN_LEVELS], *rois = g_tensor(NM("rois"), dt, 0);
    int ok = rois != NULL;
    for (int k = 0; k < ROI_FPN_LEVELS; k++) {
        snprintf(nm, sizeof nm, "fpn.p%d", k + 2);
        ok &= (f[k] = g_tensor(nm, dt, 1)) != NULL;
    }
    roi_align_args a = g_args(NM("args"));
    int64_t nl;
    double *levels = g_values(NM("levels"), &nl, NULL);
    if (ok && levels) {
        for (int r = 0; r < nl; r++) { /* the rule, in f32 (d2's box dtype) */
            int lv = roi_fpn_level((float)ot_get(rois, 5 * r + 1), (float)ot_get(rois, 5 * r + 2),
                                   (float)ot_get(rois, 5 * r + 3), (float)ot_get(rois, 5 * r + 4));
            EXPECT(lv == (int)levels[r], "fpn%d RoI %d: level %d, detectron2's rule gives %d", i, r, lv, (int)levels[r]);
        }
        tensor *y = op_roi_align_fpn(rt, f, rois, &a);
        g_check(label, NM("y"), dt, y->data, tensor_numel(y));
        g_backward(rt, y, NM("dy"));
        for (int k = 0; k < ROI_FPN_LEVELS; k++) {
            char d[16];
            snprintf(d, sizeof d, "dp%d", k + 2);
            g_check(label, NM(d), dt, f[k]->grad, tensor_numel(f[k]));
        }
    }
#undef NM
    free(levels);
    runtime_step_end(rt);
    ot_free(rois);
    for (int k = 0; k < ROI_FPN_LEVELS; k++) ot_free(f[k]);
}

static void test_golden_single(void) {
    REQUIRE(golden_open());
    int n = golden_cases("roi%d.x");
    EXPECT(n >= 10, "%d single-level cases in %s, expected 10", n, GOLDEN);
    const char *tv = safetensors_meta(&golden, "torchvision");
    printf("  golden: torchvision %s, torch %s\n", tv ? tv : "?", safetensors_meta(&golden, "torch") ?: "?");
    runtime *rt = ot_runtime(2);
    for (int i = 0; i < n; i++) single_case(rt, i, DTYPE_F64), single_case(rt, i, DTYPE_F32);
}

static void test_golden_fpn(void) {
    REQUIRE(golden_open());
    int n = golden_cases("fpn%d.rois");
    EXPECT(n >= 2, "%d FPN cases in %s, expected 2", n, GOLDEN);
    runtime *rt = ot_runtime(2);
    for (int i = 0; i < n; i++) fpn_case(rt, i, DTYPE_F64), fpn_case(rt, i, DTYPE_F32);
}

/* ---- the level rule ---- */

static void test_fpn_level_rule(void) {
    /* square boxes of side s: k = floor(4 + log2(s / 224)) */
    struct { float s; int k; } c[] = {{1, 2}, {111, 2}, {113, 3}, {223, 3}, {224, 4}, {447, 4}, {448, 5}, {5000, 5}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        EXPECT(roi_fpn_level(10, 20, 10 + c[i].s, 20 + c[i].s) == c[i].k, "side %g: level %d, expected %d", c[i].s,
               roi_fpn_level(10, 20, 10 + c[i].s, 20 + c[i].s), c[i].k);
    EXPECT(roi_fpn_level(400, 20, 0, 0) == 2, "an inverted box goes to P2"); /* w·h > 0 here: both negative */
    EXPECT(roi_fpn_level(5, 5, 5, 9) == 2, "an empty box goes to P2");
    EXPECT(roi_fpn_level(0, 0, 400, 20) == 2, "400x20 (sqrt 89) goes to P2");
}

/* ---- gradient checks (f64, through the tape) ---- */

typedef struct gc_ctx {
    roi_align_args a;
    double scale; /* 0: the FPN pooler */
    tensor *rois;
} gc_ctx;

static tensor *gc_op(runtime *rt, tensor **in, const void *ctx) {
    const gc_ctx *c = ctx;
    if (c->scale > 0) return op_roi_align(rt, in[0], c->rois, &c->a, c->scale);
    return op_roi_align_fpn(rt, in, c->rois, &c->a);
}

static tensor *make_rois(dtype dt, const double (*b)[5], int n) {
    tensor *t = ot_const(dt, TSHAPE(n, 5), 0, 0);
    for (int r = 0; r < n; r++)
        for (int k = 0; k < 5; k++) ot_set(t, 5 * r + k, b[r][k]);
    return t;
}

static void test_gradcheck_single(void) {
    runtime *rt = ot_runtime(2);
    ot_seed(11);
    /* image 24×28 px at scale 1/4 (map 6×7): inside, partly outside, sub-pixel, elongated */
    static const double b[][5] = {{0, 2.5, 3.0, 20.2, 17.9}, {1, -7.0, -3.0, 9.0, 30.0}, {1, 11.1, 9.3, 11.9, 10.0},
                                  {0, 0.5, 10.0, 27.5, 13.0}, {1, 16.0, 14.0, 33.0, 26.0}};
    tensor *rois = make_rois(DTYPE_F64, b, 5);
    tensor *x = ot_param(DTYPE_F64, TSHAPE(2, 6, 7, 3), -1, 1);
    int srs[] = {0, 1, 2};
    for (int al = 0; al < 2; al++)
        for (int s = 0; s < 3; s++) {
            gc_ctx c = {{3, 4, srs[s], al}, 0.25, rois};
            char what[64];
            snprintf(what, sizeof what, "roi_align aligned=%d sr=%d", al, srs[s]);
            OT_GRADCHECK(what, rt, gc_op, &c, &x, 1, 1e-3, 1e-9, 1e-7);
        }
    ot_free(x), ot_free(rois);
}

static void test_gradcheck_fpn(void) {
    runtime *rt = ot_runtime(2);
    ot_seed(12);
    /* image 256×64 px: P2 16×64 ... P5 2×8; boxes for every level, some outside */
    static const double b[][5] = {{0, 10, 5, 60, 40},    {1, 100, 10, 250, 60},  {0, 20, -50, 200, 120},
                                  {1, 0, -100, 260, 180}, {1, -150, -250, 350, 350}, {0, 200, 30, 280, 70}};
    tensor *rois = make_rois(DTYPE_F64, b, 6);
    tensor *f[ROI_FPN_LEVELS];
    for (int k = 0; k < ROI_FPN_LEVELS; k++) f[k] = ot_param(DTYPE_F64, TSHAPE(2, 16 >> k, 64 >> k, 2), -1, 1);
    int lv[4] = {0};
    for (int r = 0; r < 6; r++) lv[roi_fpn_level(b[r][1], b[r][2], b[r][3], b[r][4]) - 2]++;
    for (int k = 0; k < 4; k++) EXPECT(lv[k] > 0, "no RoI on P%d: the check would not reach it", k + 2);
    for (int al = 0; al < 2; al++) {
        gc_ctx c = {{2, 3, al ? 0 : 2, al}, 0, rois};
        OT_GRADCHECK(al ? "roi_align_fpn aligned sr=0" : "roi_align_fpn legacy sr=2", rt, gc_op, &c, f,
                     ROI_FPN_LEVELS, 1e-3, 1e-9, 1e-7);
    }
    for (int k = 0; k < ROI_FPN_LEVELS; k++) ot_free(f[k]);
    ot_free(rois);
}

/* The CPU backward is bit-identical for 1 and 4 threads (channel slices, RoI order). */
static void test_cpu_deterministic(void) {
    ot_seed(13);
    static const double b[][5] = {{0, 2, 3, 60, 50}, {0, 1, 1, 61, 52}, {0, 10, 8, 30, 40}};
    tensor *rois = make_rois(DTYPE_F32, b, 3);
    tensor *x = ot_const(DTYPE_F32, TSHAPE(1, 16, 16, 64), -1, 1), *dy = ot_const(DTYPE_F32, TSHAPE(3, 7, 7, 64), -1, 1);
    tensor dx1 = tensor_alloc(DTYPE_F32, DEVICE_CPU, x->shape, 4), dx4 = tensor_alloc(DTYPE_F32, DEVICE_CPU, x->shape, 4);
    tensor_zero(&dx1), tensor_zero(&dx4);
    roi_align_args a = {7, 7, 0, 1};
    roi_align_backward_cpu(ot_runtime(1), &a, 0.25, x, rois, dy, &dx1);
    roi_align_backward_cpu(ot_runtime(4), &a, 0.25, x, rois, dy, &dx4);
    OT_SAME_BITS("roi_align backward, 1 vs 4 threads", dx1.data, dx4.data, tensor_bytes(&dx1));
    tensor_free(&dx1), tensor_free(&dx4);
    ot_free(x), ot_free(dy), ot_free(rois);
}

/* ---- CPU-vs-GPU parity ---- */

typedef struct par_args {
    roi_align_args a;
    double scale; /* 0: FPN */
} par_args;

/* single: in x rois dy, out y dx. FPN: in p2..p5 rois dy, out y dp2..dp5. */
static void par_fn(runtime *rt, tensor **in, tensor **out, const void *args) {
    const par_args *p = args;
    if (p->scale > 0) {
        OPS_CALL(in[0], roi_align_forward, rt, &p->a, p->scale, in[0], in[1], out[0]);
        OPS_CALL(in[0], roi_align_backward, rt, &p->a, p->scale, in[0], in[1], in[2], out[1]);
    } else {
        const tensor *const *f = (const tensor *const *)in;
        OPS_CALL(in[0], roi_align_fpn_forward, rt, &p->a, f, in[4], out[0]);
        OPS_CALL(in[0], roi_align_fpn_backward, rt, &p->a, f, in[4], in[5], out + 1);
    }
}

/* n random RoIs on an image of w×h px over nimg images: sizes from 0.3 px to 1.5× the
 * image, centres up to a quarter outside. */
static tensor *random_rois(int n, int nimg, double w, double h) {
    tensor *t = ot_const(DTYPE_F32, TSHAPE(n, 5), 0, 0);
    for (int r = 0; r < n; r++) {
        double cx = ot_uniform(-0.25, 1.25) * w, cy = ot_uniform(-0.25, 1.25) * h;
        double bw = exp(ot_uniform(log(0.3), log(1.5 * w))), bh = exp(ot_uniform(log(0.3), log(1.5 * h)));
        double v[5] = {(double)(int)ot_uniform(0, nimg - 1e-9), cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2};
        for (int k = 0; k < 5; k++) ot_set(t, 5 * r + k, v[k]);
    }
    return t;
}

static void test_gpu_parity(void) {
    REQUIRE_GPU();
    runtime gpu;
    runtime_config cfg = runtime_config_default();
    cfg.device = "cuda";
    cfg.quiet = 1;
    runtime_init(&gpu, &cfg);
    ot_seed(parity_seed());
    struct { int ph, sr, al, R, C; } cs[] = {{7, 0, 1, 64, 32}, {14, 0, 1, 17, 5}, {7, 2, 0, 40, 8}, {7, 1, 1, 3, 1}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        par_args p = {{cs[i].ph, cs[i].ph, cs[i].sr, cs[i].al}, 0.25};
        tensor *in[6] = {0};
        in[0] = ot_const(DTYPE_F32, TSHAPE(2, 25, 34, cs[i].C), -1, 1);
        in[1] = random_rois(cs[i].R, 2, 136, 100);
        in[2] = ot_const(DTYPE_F32, TSHAPE(cs[i].R, cs[i].ph, cs[i].ph, cs[i].C), -1, 1);
        parity_out out[2] = {{4, {cs[i].R, cs[i].ph, cs[i].ph, cs[i].C}, 0}, {4, {2, 25, 34, cs[i].C}, 1}};
        char name[96];
        snprintf(name, sizeof name, "roi_align %dx%d sr%d aligned %d R%d C%d", cs[i].ph, cs[i].ph, cs[i].sr, cs[i].al,
                 cs[i].R, cs[i].C);
        PARITY_EXPECT(parity_run(name, ot_runtime(2), par_fn, &gpu, par_fn, in, 3, out, 2, &p, 1e-5, 1e-5));
        for (int k = 0; k < 3; k++) ot_free(in[k]);
    }
    for (int al = 0; al < 2; al++) { /* the pooler on a 2-image 800×1344-like pyramid, scaled down */
        par_args p = {{al ? 7 : 14, al ? 7 : 14, 0, al}, 0};
        int R = 96, C = 8, ph = p.a.ph;
        tensor *in[6];
        parity_out out[5];
        out[0] = (parity_out){4, {R, ph, ph, C}, 0};
        for (int k = 0; k < 4; k++) {
            in[k] = ot_const(DTYPE_F32, TSHAPE(2, 100 >> k, 168 >> k, C), -1, 1);
            out[k + 1] = (parity_out){4, {2, 100 >> k, 168 >> k, C}, 1};
        }
        in[4] = random_rois(R, 2, 672, 400);
        in[5] = ot_const(DTYPE_F32, TSHAPE(R, ph, ph, C), -1, 1);
        PARITY_EXPECT(parity_run(al ? "roi_align_fpn 7x7" : "roi_align_fpn 14x14 legacy", ot_runtime(2), par_fn, &gpu,
                                 par_fn, in, 6, out, 5, &p, 1e-5, 1e-5));
        for (int k = 0; k < 6; k++) ot_free(in[k]);
    }
    runtime_free(&gpu);
}

int main(void) {
    RUN(test_golden_single);
    RUN(test_golden_fpn);
    RUN(test_fpn_level_rule);
    RUN(test_gradcheck_single);
    RUN(test_gradcheck_fpn);
    RUN(test_cpu_deterministic);
    RUN(test_gpu_parity);
    if (golden_ok > 0) safetensors_close(&golden);
    return test_finish("test_roi_align");
}

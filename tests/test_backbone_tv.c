/* test_backbone_tv.c: our ResNet + FPN forward (src/model/backbone.c) against torchvision.
 *
 * The golden, tests/golden/backbone_tv.safetensors, comes from torchvision 0.14's
 * torchvision.models.detection.backbone_utils.resnet_fpn_backbone (PyTorch 1.13, Debian's
 * python3-torchvision) via scripts/gen_golden_backbone.py: ResNet-50 (bottleneck, stride in
 * the 3×3, our stride_in_1x1 = 0) and ResNet-18 (basic blocks), width 64, 256 FPN channels,
 * FrozenBatchNorm2d, LastLevelMaxPool, on one 64×96 NHWC image; P2..P6 (torchvision's
 * '0', '1', '2', '3', 'pool') in NHWC.
 *
 * The weights are not stored: both sides fill every tensor from the same formula of (our
 * tensor name, flat index in our layout), written out in the script's docstring and in
 * formula() below. torchvision gets them transposed KRSC -> OIHW, FrozenBN as weight =
 * scale, bias = shift, running_mean 0, running_var 1, eps 0 (exactly x·scale + shift, our
 * folded form). The script maps torchvision's names to ours (conv1/bn1 -> stem.conv1(.norm),
 * layerK.j.convM/bnM -> res{K+1}.j.convM(.norm), downsample.0/1 -> shortcut(.norm),
 * fpn.inner_blocks.i / layer_blocks.i -> fpn_lateral{i+2} / fpn_output{i+2}) and checks
 * that every torchvision tensor is filled exactly once; it stores our names and shapes as
 * metadata, and this test checks its param_list against that list, so a tensor on either
 * side without a counterpart fails here. A few formula values are stored too
 * (r<depth>.samples), which tells a formula mismatch apart from a forward mismatch.
 *
 * Tolerance. The golden is torchvision's forward in float64 on the f32 weights and input
 * (exact in f64), rounded to f32 once. Our forward is f32 through ~50 layers (R50) with
 * im2col/GEMM sums of up to 9·512 = 4608 terms, each rounding error of ~2^-24 relative
 * carried on, mostly cancelling, to the outputs. torch's own float32 forward lands at
 * 5e-7 .. 8e-7 of each level's max |value| (the script prints it and stores it as metadata
 * r<depth>.f32_err, printed here). We compare each level as worst |ours − golden| /
 * max|golden over the level| and allow 1e-5: over 10× the f32 error of either
 * implementation (ours measured 4.5e-7 .. 8.3e-7). Deliberate faults, each of which fails
 * (worst level error): one of 590k weights of res4.1.conv2 doubled (3.5e-5) or negated
 * (7e-5), one stem weight × 1.01 (5e-5), an FPN output bias + 1e-3 (8e-5 at P5), two
 * blocks' tensors swapped, a 3×3 kernel's kh/kw transposed, the stride in the 1×1 (0.08 ..
 * 0.3); in the script, bn1/bn2 mapped crosswise or fpn_output2/5 swapped (0.3 .. 1.7). */
#include "ops_test.h"

#include "core/safetensors.h"
#include "model/backbone.h"

#define GOLDEN "tests/golden/backbone_tv.safetensors"
#define LEVEL_TOL 1e-5

static safetensors golden;
static int golden_ok = -1;

static int golden_open(void) {
    if (golden_ok < 0) {
        char err[1024];
        golden_ok = safetensors_open(&golden, GOLDEN, err, sizeof err) == 0;
        if (!golden_ok) printf("  %s (run from the repository root; scripts/gen_golden_backbone.py makes it)\n", err);
    }
    return golden_ok;
}

/* An F32 entry's values as floats (malloc'd, *n of them), or NULL with a failure. */
static float *g_f32(const char *name, int64_t *n, const st_tensor **ep) {
    const st_tensor *e = safetensors_find(&golden, name);
    if (!e || e->dtype != DTYPE_F32) {
        test_fail_at(__FILE__, __LINE__, "%s: no F32 tensor %s", GOLDEN, name);
        return NULL;
    }
    int64_t m = 1;
    for (int i = 0; i < e->ndim; i++) m *= e->shape[i];
    float *v = malloc((size_t)(m ? m : 1) * sizeof *v);
    memcpy(v, safetensors_data(&golden, e), (size_t)m * sizeof *v);
    *n = m;
    if (ep) *ep = e;
    return v;
}

/* ---- the weight formula (the same as scripts/gen_golden_backbone.py) ---- */

static uint32_t fnv1a32(const char *s) {
    uint32_t h = 0x811C9DC5u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x01000193u;
    return h;
}

/* u in [0, 1), a multiple of 2^-24: splitmix64's finaliser of (h << 32 | i). */
static double uniform24(uint32_t h, uint64_t i) {
    uint64_t z = (((uint64_t)h << 32) | i) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 40) * 0x1p-24;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The formula for one tensor: its name's hash, its kind and the conv weights' bound. */
typedef struct wformula {
    uint32_t h;
    int kind;   /* 0 conv weight, 1 FrozenBN scale (.norm.weight), 2 shift or conv bias */
    double a;   /* conv weight bound GAIN·sqrt(6 / fan_in) */
} wformula;

static wformula formula_of(const tensor *t, int depth) {
    wformula f = {fnv1a32(t->name), 0, 0};
    if (ends_with(t->name, ".norm.weight")) f.kind = 1;
    else if (ends_with(t->name, ".bias")) f.kind = 2;
    else {
        /* a conv weight [out, kh, kw, in]; the last conv of a residual branch gets gain 1/4 */
        const char *last = depth >= 50 ? ".conv3.weight" : ".conv2.weight";
        double gain = strstr(t->name, ".bottom_up.res") && ends_with(t->name, last) ? 0.25 : 1.0;
        double fan_in = (double)t->shape[1] * t->shape[2] * t->shape[3];
        f.a = gain * sqrt(6.0 / fan_in);
    }
    return f;
}

/* Value i (flat index in our layout). Every step is exact in double except the divide,
 * sqrt and the multiplies above and here (each correctly rounded, no addition after a
 * multiply, so FMA contraction cannot change them), then one rounding to f32: numpy gets
 * the same bits. */
static float formula(const wformula *f, int64_t i) {
    double u = uniform24(f->h, (uint64_t)i);
    if (f->kind == 1) return (float)(0.5 + u);
    if (f->kind == 2) return (float)(0.2 * (u - 0.5));
    return (float)(f->a * (2.0 * u - 1.0));
}

/* ---- the checks ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Our param_list as "name:d0xd1x..;" sorted by name, as the script writes r<depth>.params. */
static char *param_signature(const backbone *b) {
    char **items = calloc((size_t)b->params.n, sizeof *items);
    size_t total = 1;
    for (int k = 0; k < b->params.n; k++) {
        const tensor *t = b->params.items[k].t;
        char buf[400];
        int len = snprintf(buf, sizeof buf, "%s:", t->name);
        for (int d = 0; d < t->ndim; d++) len += snprintf(buf + len, sizeof buf - (size_t)len, d ? "x%d" : "%d", t->shape[d]);
        snprintf(buf + len, sizeof buf - (size_t)len, ";");
        items[k] = strdup(buf);
        total += strlen(buf);
    }
    qsort(items, (size_t)b->params.n, sizeof *items, cmp_str);
    char *s = malloc(total);
    s[0] = 0;
    for (int k = 0; k < b->params.n; k++) strcat(s, items[k]), free(items[k]);
    free(items);
    return s;
}

/* Fills every tensor of b from the formula; 1 when all are f32 on the CPU. */
static int fill_params(backbone *b, int depth) {
    for (int k = 0; k < b->params.n; k++) {
        tensor *t = b->params.items[k].t;
        if (t->dtype != DTYPE_F32 || t->device != DEVICE_CPU || !t->data) return 0;
        wformula f = formula_of(t, depth);
        for (int64_t i = 0; i < tensor_numel(t); i++) tensor_f32(t)[i] = formula(&f, i);
    }
    return 1;
}

static const tensor *find_param(const backbone *b, const char *name) {
    for (int k = 0; k < b->params.n; k++)
        if (strcmp(b->params.items[k].t->name, name) == 0) return b->params.items[k].t;
    return NULL;
}

static void check_depth(int depth) {
    REQUIRE(golden_open());
    char key[64];
    backbone_config c = backbone_config_default();
    c.depth = depth, c.width = 64, c.norm = NORM_FROZEN_BN, c.stride_in_1x1 = 0, c.fpn_channels = 256;
    c.fpn_norm = NORM_NONE, c.dtype = DTYPE_F32;
    backbone b;
    backbone_init(&b, &c, DEVICE_CPU);

    /* every one of our tensors has a torchvision counterpart and vice versa */
    snprintf(key, sizeof key, "r%d.params", depth);
    const char *want_sig = safetensors_meta(&golden, key);
    char *sig = param_signature(&b);
    if (!want_sig) test_fail_at(__FILE__, __LINE__, "%s: no metadata %s", GOLDEN, key);
    else if (strcmp(sig, want_sig) != 0) {
        size_t at = 0;
        while (sig[at] && sig[at] == want_sig[at]) at++;
        while (at > 0 && sig[at - 1] != ';') at--;
        test_fail_at(__FILE__, __LINE__, "R%d: our tensors differ from torchvision's (mapped) at\n    ours:   %.120s\n"
                     "    golden: %.120s", depth, sig + at, want_sig + at);
    }
    free(sig);

    REQUIRE(fill_params(&b, depth), "parameters must be f32 CPU tensors");

    /* the formula agrees with numpy's bit for bit */
    static const char *sampled[] = {"backbone.bottom_up.stem.conv1.weight", "backbone.bottom_up.stem.conv1.norm.weight",
                                    "backbone.bottom_up.res5.1.conv2.weight", "backbone.bottom_up.res5.1.conv2.norm.bias",
                                    "backbone.bottom_up.res5.0.shortcut.weight", "backbone.fpn_output2.bias"};
    snprintf(key, sizeof key, "r%d.samples", depth);
    int64_t ns;
    float *samples = g_f32(key, &ns, NULL);
    if (samples) {
        EXPECT(ns == 6 * 16, "%s holds %lld values", key, (long long)ns);
        for (int s = 0; s < 6 && ns == 6 * 16; s++) {
            const tensor *t = find_param(&b, sampled[s]);
            if (!t) {
                test_fail_at(__FILE__, __LINE__, "R%d: no tensor %s", depth, sampled[s]);
                continue;
            }
            int64_t step = tensor_numel(t) / 16;
            for (int j = 0; j < 16; j++) {
                float v = tensor_f32(t)[j * step];
                if (memcmp(&v, &samples[s * 16 + j], sizeof v) != 0) {
                    test_fail_at(__FILE__, __LINE__, "R%d formula %s[%lld] = %.9g, the script's %.9g", depth,
                                 sampled[s], (long long)(j * step), v, samples[s * 16 + j]);
                    break;
                }
            }
        }
        free(samples);
    }

    /* the forward */
    runtime *rt = ot_runtime(2);
    int64_t nx;
    const st_tensor *ex;
    float *xv = g_f32("x", &nx, &ex);
    if (!xv) {
        backbone_free(&b);
        return;
    }
    REQUIRE(ex->ndim == 4 && ex->shape[3] == 3, "x must be [N, H, W, 3]");
    tensor *x = runtime_tensor(rt, DEVICE_CPU, DTYPE_F32, ex->shape, 4);
    memcpy(x->data, xv, (size_t)nx * sizeof *xv);
    free(xv);
    x->requires_grad = 0;
    rt->tape.enabled = 0;
    backbone_out o = backbone_forward(rt, &b, x);
    snprintf(key, sizeof key, "r%d.f32_err", depth);
    const char *f32_err = safetensors_meta(&golden, key);
    printf("  R%d (torch f32 vs its f64, per level: %s)\n", depth, f32_err ? f32_err : "?");
    for (int l = 0; l < 5; l++) {
        snprintf(key, sizeof key, "r%d.p%d", depth, l + 2);
        int64_t n;
        const st_tensor *e;
        float *want = g_f32(key, &n, &e);
        if (!want) continue;
        const tensor *p = o.p[l];
        int same_shape = p->ndim == e->ndim;
        for (int d = 0; same_shape && d < e->ndim; d++) same_shape = p->shape[d] == e->shape[d];
        if (!same_shape) {
            test_fail_at(__FILE__, __LINE__, "R%d P%d: ours [%d,%d,%d,%d], golden [%d,%d,%d,%d]", depth, l + 2,
                         p->shape[0], p->shape[1], p->shape[2], p->shape[3], e->shape[0], e->shape[1], e->shape[2],
                         e->shape[3]);
            free(want);
            continue;
        }
        double scale = 0, worst = 0;
        int64_t worst_i = 0;
        for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
        for (int64_t i = 0; i < n; i++) {
            double err = fabs((double)tensor_f32(p)[i] - want[i]) / fmax(fabs(want[i]), scale);
            if (!(err <= worst)) worst = err, worst_i = i;
        }
        printf("  R%d P%d [%d,%d,%d,%d] max|P| %.4g: worst |err|/max|P| %.3g at %lld (ours %.9g, golden %.9g)\n",
               depth, l + 2, e->shape[0], e->shape[1], e->shape[2], e->shape[3], scale, worst, (long long)worst_i,
               tensor_f32(p)[worst_i], want[worst_i]);
        EXPECT(scale > 0 && worst <= LEVEL_TOL, "R%d P%d: worst relative error %.3g > %g", depth, l + 2, worst,
               LEVEL_TOL);
        free(want);
    }
    rt->tape.enabled = 1;
    runtime_step_end(rt);
    backbone_free(&b);
}

static void test_r50_fpn(void) { check_depth(50); }
static void test_r18_fpn(void) { check_depth(18); }

int main(void) {
    RUN(test_r50_fpn);
    RUN(test_r18_fpn);
    if (golden_ok > 0) safetensors_close(&golden);
    return test_finish("test_backbone_tv");
}

/* test_ops_golden.c: the CPU ops against PyTorch, forward and backward, in f64 and f32.
 *
 * The golden values are in tests/golden/ops_*.safetensors, written by
 * scripts/gen_golden_ops.py with PyTorch 1.13.0a0 (Debian's python3-torch, CPython 3.11.2):
 * inputs, a random upstream gradient dy, PyTorch's outputs and autograd gradients, all in
 * float64, converted to our layouts (NHWC, KRSC). Each file's metadata names the torch
 * version that wrote it; the test prints it. The files are committed, so this test needs
 * no Python. A missing file is a failure naming the path (the test runs from the repository
 * root, as scripts/run-tests.sh does).
 *
 * Every case runs twice through the same op:
 *   f64: the inputs as stored. Both sides compute in double, so they differ only by
 *        summation order: a few ulp times the sum of |terms| (at most ~600 terms of size
 *        O(1) here, so ~1e-13). Tolerance rtol 1e-9, atol 1e-11: loose enough for any
 *        order, tight enough that a wrong index, a missing term or a float-only path shows.
 *   f32: the inputs and dy rounded to f32, the result compared with PyTorch's f64 answer
 *        on the unrounded inputs. The error is f32 arithmetic in sums of up to ~150 products
 *        (conv 7x7x3, dw over N·Ho·Wo positions): about sqrt(L)·6e-8 times the sum of
 *        |terms| (which is O(10) here), i.e. ~5e-6 in the worst tensors, plus the input
 *        rounding (6e-8 relative, amplified at most ~10x by GroupNorm's 1/σ and the normed
 *        layers' 1/‖x‖). Tolerance rtol 1e-4, atol 1e-5: values near zero (cancellation)
 *        are held to the absolute bound, everything else to 1e-4 relative. No case sits
 *        near a kink (the generator keeps smooth-L1 residuals 0.02 away from β and 0, and
 *        max-pool inputs are distinct), so rounding cannot flip a branch.
 * At the end the test prints the largest fraction of the tolerance used per precision,
 * with the case, so the margins can be seen. */
#include "core/runtime.h"
#include "core/safetensors.h"
#include "ops/conv.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/pool.h"
#include "test.h"

#include <stdint.h>

#define GOLDEN_DIR "tests/golden/"
#define F64_ATOL 1e-11
#define F64_RTOL 1e-9
#define F32_ATOL 1e-5
#define F32_RTOL 1e-4
#define GC_MAX_OWNED 12

/* The worst use of the tolerance per precision (0: f64, 1: f32), for the closing report. */
static struct {
    double ratio;
    char where[ST_NAME_MAX + 96];
} margin[2];

/* One case of one op at one precision: the file, the names' prefix ("conv3."), the
 * tensors it allocated, and whether a needed entry was missing (the case then stops). */
typedef struct gcase {
    const safetensors *st;
    char prefix[32];
    char label[48]; /* "conv3 f32", for messages */
    dtype dt;
    double atol, rtol;
    int failed;
    tensor owned[GC_MAX_OWNED];
    int nowned;
} gcase;

static void gc_begin(gcase *c, const safetensors *st, const char *family, int i, dtype dt) {
    memset(c, 0, sizeof *c);
    c->st = st;
    c->dt = dt;
    snprintf(c->prefix, sizeof c->prefix, "%s%d.", family, i);
    snprintf(c->label, sizeof c->label, "%s%d %s", family, i, dtype_name(dt));
    c->atol = dt == DTYPE_F64 ? F64_ATOL : F32_ATOL;
    c->rtol = dt == DTYPE_F64 ? F64_RTOL : F32_RTOL;
}

static void gc_end(gcase *c, runtime *rt) {
    for (int k = 0; k < c->nowned; k++) tensor_free(&c->owned[k]);
    c->nowned = 0;
    runtime_step_end(rt);
}

static int gc_has(const gcase *c, const char *field) {
    char name[ST_NAME_MAX];
    snprintf(name, sizeof name, "%s%s", c->prefix, field);
    return safetensors_find(c->st, name) != NULL;
}

/* The file's entry prefix+field, which must have dtype want; NULL (and a failure) if not. */
static const st_tensor *gc_entry(gcase *c, const char *field, dtype want) {
    char name[ST_NAME_MAX];
    snprintf(name, sizeof name, "%s%s", c->prefix, field);
    const st_tensor *e = safetensors_find(c->st, name);
    if (!e) test_fail_at(__FILE__, __LINE__, "%s: %s: no tensor %s", c->label, c->st->path, name);
    else if (e->dtype != want)
        test_fail_at(__FILE__, __LINE__, "%s: %s: %s is %s, expected %s", c->label, c->st->path, name,
                     dtype_name(e->dtype), dtype_name(want));
    else return e;
    c->failed = 1;
    return NULL;
}

static int64_t st_numel(const st_tensor *e) {
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    return n;
}

/* The stored f64 values of prefix+field as doubles (malloc'd; *n their count), or NULL. */
static double *gc_values(gcase *c, const char *field, int64_t *n) {
    const st_tensor *e = gc_entry(c, field, DTYPE_F64);
    if (!e) return NULL;
    *n = st_numel(e);
    double *v = malloc((size_t)(*n > 0 ? *n : 1) * sizeof *v);
    memcpy(v, safetensors_data(c->st, e), e->bytes); /* the mapping may be unaligned */
    return v;
}

/* Stores n doubles into dst of dtype dt (f32: rounded to nearest). */
static void store_real(dtype dt, void *dst, const double *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (dt == DTYPE_F64) ((double *)dst)[i] = v[i];
        else ((float *)dst)[i] = (float)v[i];
    }
}

/* A tensor holding prefix+field: f64 entries become c->dt (f32 rounded), i32 entries stay
 * i32. With shape == NULL the file's shape is used, else shape/ndim (same element count).
 * param: a parameter (needs a gradient, zeroed gradient buffer). */
static tensor *gc_input_shaped(gcase *c, const char *field, int param, const int *shape, int ndim) {
    if (c->failed) return NULL;
    char name[ST_NAME_MAX];
    snprintf(name, sizeof name, "%s%s", c->prefix, field);
    const st_tensor *e = safetensors_find(c->st, name);
    if (!e) {
        gc_entry(c, field, DTYPE_F64); /* reports the missing entry */
        return NULL;
    }
    dtype dt = e->dtype == DTYPE_I32 ? DTYPE_I32 : c->dt;
    if (!shape) shape = e->shape, ndim = e->ndim;
    if (c->nowned == GC_MAX_OWNED) {
        test_fail_at(__FILE__, __LINE__, "%s: more than %d inputs (raise GC_MAX_OWNED)", c->label, GC_MAX_OWNED);
        c->failed = 1;
        return NULL;
    }
    tensor *t = &c->owned[c->nowned++];
    *t = param ? tensor_alloc_param(dt, DEVICE_CPU, shape, ndim, name) : tensor_alloc(dt, DEVICE_CPU, shape, ndim);
    if (tensor_numel(t) != st_numel(e)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s has %lld values, the test expects %lld", c->label, name,
                     (long long)st_numel(e), (long long)tensor_numel(t));
        c->failed = 1;
        return NULL;
    }
    if (dt == DTYPE_I32) {
        memcpy(t->data, safetensors_data(c->st, e), e->bytes);
        return t;
    }
    int64_t n;
    double *v = gc_values(c, field, &n);
    store_real(dt, t->data, v, n);
    free(v);
    return t;
}

static tensor *gc_input(gcase *c, const char *field, int param) { return gc_input_shaped(c, field, param, NULL, 0); }

/* The first n values of an args entry (I32 or F64) as doubles; -1 on failure. */
static int gc_args(gcase *c, const char *field, double *out, int n) {
    if (c->failed) return -1;
    char name[ST_NAME_MAX];
    snprintf(name, sizeof name, "%s%s", c->prefix, field);
    const st_tensor *e = safetensors_find(c->st, name);
    if (!e || st_numel(e) < n || (e->dtype != DTYPE_I32 && e->dtype != DTYPE_F64)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s: %s is missing or holds fewer than %d numbers", c->label,
                     c->st->path, name, n);
        c->failed = 1;
        return -1;
    }
    const unsigned char *p = safetensors_data(c->st, e);
    for (int i = 0; i < n; i++) {
        if (e->dtype == DTYPE_I32) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            out[i] = v;
        } else memcpy(&out[i], p + 8 * i, 8);
    }
    return 0;
}

/* Compares n values at got (dtype c->dt) with prefix+field; shape (when not NULL) must
 * also match the file's. Records the worst use of the tolerance. */
static void gc_check_flat(gcase *c, const char *field, const tensor *shape, const void *got, int64_t n) {
    if (c->failed) return;
    char what[ST_NAME_MAX + 64], name[ST_NAME_MAX];
    snprintf(name, sizeof name, "%s%s", c->prefix, field);
    snprintf(what, sizeof what, "%s: %s", c->label, name);
    int64_t nw;
    double *want = gc_values(c, field, &nw);
    if (!want) return;
    const st_tensor *e = safetensors_find(c->st, name);
    int same = nw == n;
    if (shape) {
        same = same && shape->ndim == e->ndim;
        for (int i = 0; same && i < e->ndim; i++) same = shape->shape[i] == e->shape[i];
    }
    if (!same || !got) {
        char s[128];
        test_fail_at(__FILE__, __LINE__, "%s: %s, the file holds %lld values", what,
                     got ? (shape ? tensor_str(shape, s, sizeof s) : "a different count") : "no gradient was computed",
                     (long long)nw);
        free(want);
        return;
    }
    double *have = malloc((size_t)(n > 0 ? n : 1) * sizeof *have);
    for (int64_t i = 0; i < n; i++)
        have[i] = c->dt == DTYPE_F64 ? ((const double *)got)[i] : (double)((const float *)got)[i];
    EXPECT_CLOSE(what, have, want, n, c->atol, c->rtol);
    int p = c->dt == DTYPE_F64 ? 0 : 1;
    for (int64_t i = 0; i < n; i++) {
        double r = fabs(have[i] - want[i]) / (c->atol + c->rtol * fabs(want[i]));
        if (!(r <= margin[p].ratio)) { /* NaN lands here too */
            margin[p].ratio = r;
            snprintf(margin[p].where, sizeof margin[p].where, "%s[%lld]", what, (long long)i);
        }
    }
    free(have);
    free(want);
}

static void gc_check(gcase *c, const char *field, const tensor *t, const void *got) {
    gc_check_flat(c, field, t, got, tensor_numel(t));
}

/* Seeds y's gradient with the values of prefix+field (rounded to c->dt) and runs the tape. */
static void gc_backward(gcase *c, runtime *rt, tensor *y, const char *field) {
    if (c->failed) return;
    int64_t n;
    double *dy = gc_values(c, field, &n);
    if (!dy) return;
    if (n != tensor_numel(y)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s%s has %lld values, the output %lld", c->label, c->prefix, field,
                     (long long)n, (long long)tensor_numel(y));
        c->failed = 1;
    } else {
        store_real(c->dt, tensor_grad(rt, y), dy, n);
        tape_backward(&rt->tape, rt);
    }
    free(dy);
}

/* For a loss: seeds d(loss) with the scalar dloss and runs the tape. */
static void gc_backward_scalar(gcase *c, runtime *rt, tensor *loss, double dloss) {
    if (c->failed) return;
    store_real(c->dt, tensor_grad(rt, loss), &dloss, 1);
    tape_backward(&rt->tape, rt);
}

/* ---- harness ---- */

static runtime make_rt(void) {
    runtime_config cfg = runtime_config_default();
    cfg.device = "cpu";
    cfg.threads = 2;
    cfg.quiet = 1;
    runtime rt;
    runtime_init(&rt, &cfg);
    return rt;
}

/* Opens tests/golden/<file>; a failure names the path and says how to make the file. */
static int golden_open(safetensors *st, const char *file) {
    char path[256], err[1024];
    snprintf(path, sizeof path, GOLDEN_DIR "%s", file);
    if (safetensors_open(st, path, err, sizeof err) == 0) return 0;
    test_fail_at(__FILE__, __LINE__, "%s (run from the repository root; the file is made by "
                 "scripts/gen_golden_ops.py)", err);
    return -1;
}

/* How many cases family<i>.x the file holds (i = 0, 1, ...). */
static int golden_cases(const safetensors *st, const char *family) {
    char name[ST_NAME_MAX];
    int n = 0;
    for (;; n++) {
        snprintf(name, sizeof name, "%s%d.x", family, n);
        if (!safetensors_find(st, name)) return n;
    }
}

typedef void (*case_fn)(runtime *rt, const safetensors *st, int i, dtype dt);

/* Runs every case of family in file, in f64 and f32; the file must hold at least min_cases. */
static void run_family(const char *file, const char *family, int min_cases, case_fn fn) {
    safetensors st;
    if (golden_open(&st, file) != 0) return;
    int n = golden_cases(&st, family);
    EXPECT(n >= min_cases, "%s: %d %s cases, expected at least %d", st.path, n, family, min_cases);
    runtime rt = make_rt();
    for (int i = 0; i < n; i++) {
        fn(&rt, &st, i, DTYPE_F64);
        fn(&rt, &st, i, DTYPE_F32);
    }
    runtime_free(&rt);
    safetensors_close(&st);
}

/* ---- the cases, one function per op ---- */

static void conv2d_case(runtime *rt, const safetensors *st, int i, dtype dt) {
    gcase c;
    gc_begin(&c, st, "conv", i, dt);
    tensor *x = gc_input(&c, "x", 1), *w = gc_input(&c, "w", 1);
    tensor *b = gc_has(&c, "b") ? gc_input(&c, "b", 1) : NULL;
    double a[2];
    if (gc_args(&c, "args", a, 2) == 0) {
        tensor *y = op_conv2d(rt, x, w, b, (int)a[0], (int)a[1]);
        gc_check(&c, "y", y, y->data);
        gc_backward(&c, rt, y, "dy");
        gc_check(&c, "dx", x, x->grad);
        gc_check(&c, "dw", w, w->grad);
        if (b) gc_check(&c, "db", b, b->grad);
    }
    gc_end(&c, rt);
}

static void deconv_case(runtime *rt, const safetensors *st, int i, dtype dt) {
    gcase c;
    gc_begin(&c, st, "deconv", i, dt);
    tensor *x = gc_input(&c, "x", 1), *w = gc_input(&c, "w", 1), *b = gc_input(&c, "b", 1);
    if (!c.failed) {
        tensor *y = op_deconv2x2(rt, x, w, b);
        gc_check(&c, "y", y, y->data);
        gc_backward(&c, rt, y, "dy");
        gc_check(&c, "dx", x, x->grad);
        gc_check(&c, "dw", w, w->grad);
        gc_check(&c, "db", b, b->grad);
    }
    gc_end(&c, rt);
}

static void group_norm_case(runtime *rt, const safetensors *st, int i, dtype dt) {
    gcase c;
    gc_begin(&c, st, "gn", i, dt);
    tensor *x = gc_input(&c, "x", 1), *gamma = gc_input(&c, "gamma", 1), *beta = gc_input(&c, "beta", 1);
    double groups;
    if (gc_args(&c, "args", &groups, 1) == 0) {
        tensor *y = op_group_norm(rt, x, gamma, beta, (int)groups, 1e-5); /* the generator's eps */
        gc_check(&c, "y", y, y->data);
        gc_backward(&c, rt, y, "dy");
        gc_check(&c, "dx", x, x->grad);
        gc_check(&c, "dgamma", gamma, gamma->grad);
        gc_check(&c, "dbeta", beta, beta->grad);
    }
    gc_end(&c, rt);
}

static void max_pool_case(runtime *rt, const safetensors *st, int i, dtype dt) {
    gcase c;
    gc_begin(&c, st, "pool", i, dt);
    tensor *x = gc_input(&c, "x", 1);
    double a[3];
    if (gc_args(&c, "args", a, 3) == 0) {
        tensor *y = op_max_pool(rt, x, (int)a[0], (int)a[1], (int)a[2]);
        gc_check(&c, "y", y, y->data);
        gc_backward(&c, rt, y, "dy");
        gc_check(&c, "dx", x, x->grad);
    }
    gc_end(&c, rt);
}

static void upsample_case(runtime *rt, const safetensors *st, int i, dtype dt) {
    gcase c;
    gc_begin(&c, st, "up", i, dt);
    tensor *x = gc_input(&c, "x", 1);
    if (!c.failed) {
        tensor *y = op_upsample2x(rt, x);
        gc_check(&c, "y", y, y->data);
        gc_backward(&c, rt, y, "dy");
        gc_check(&c, "dx", x, x->grad);
    }
    gc_end(&c, rt);
}

static void linear_case(runtime *rt, const safetensors *st, int i, dtype dt) {
    gcase c;
    gc_begin(&c, st, "linear", i, dt);
    tensor *x = gc_input(&c, "x", 1), *w = gc_input(&c, "w", 1), *b = gc_input(&c, "b", 1);
    if (!c.failed) {
        tensor *y = op_linear(rt, x, w, b);
        gc_check(&c, "y", y, y->data);
        gc_backward(&c, rt, y, "dy");
        gc_check(&c, "dx", x, x->grad);
        gc_check(&c, "dw", w, w->grad);
        gc_check(&c, "db", b, b->grad);
    }
    gc_end(&c, rt);
}

static void normed_linear_case(runtime *rt, const safetensors *st, int i, dtype dt) {
    gcase c;
    gc_begin(&c, st, "nlin", i, dt);
    tensor *x = gc_input(&c, "x", 1), *w = gc_input(&c, "w", 1), *b = gc_input(&c, "b", 1);
    double a[2];
    if (gc_args(&c, "args", a, 2) == 0) {
        tensor *y = op_normed_linear(rt, x, w, b, a[0], a[1]);
        gc_check(&c, "y", y, y->data);
        gc_backward(&c, rt, y, "dy");
        gc_check(&c, "dx", x, x->grad);
        gc_check(&c, "dw", w, w->grad);
        gc_check(&c, "db", b, b->grad);
    }
    gc_end(&c, rt);
}

/* The same data through normed_conv1x1: the R rows of x as the pixels of a [1, 1, R, C]
 * map, the weight as [K, 1, 1, C] (mmdet's NormedConv2d is the per-pixel NormedLinear). */
static void normed_conv1x1_case(runtime *rt, const safetensors *st, int i, dtype dt) {
    gcase c;
    gc_begin(&c, st, "nlin", i, dt);
    const st_tensor *ex = gc_entry(&c, "x", DTYPE_F64), *ew = gc_entry(&c, "w", DTYPE_F64);
    double a[2];
    if (ex && ew && ex->ndim == 2 && ew->ndim == 2 && gc_args(&c, "args", a, 2) == 0) {
        int R = ex->shape[0], C = ex->shape[1], K = ew->shape[0];
        tensor *x = gc_input_shaped(&c, "x", 1, TSHAPE(1, 1, R, C));
        tensor *w = gc_input_shaped(&c, "w", 1, TSHAPE(K, 1, 1, C)), *b = gc_input(&c, "b", 1);
        if (!c.failed) {
            tensor *y = op_normed_conv1x1(rt, x, w, b, a[0], a[1]);
            gc_check_flat(&c, "y", NULL, y->data, tensor_numel(y));
            gc_backward(&c, rt, y, "dy");
            gc_check_flat(&c, "dx", NULL, x->grad, tensor_numel(x));
            gc_check_flat(&c, "dw", NULL, w->grad, tensor_numel(w));
            gc_check(&c, "db", b, b->grad);
        }
    }
    gc_end(&c, rt);
}

static void softmax_ce_case(runtime *rt, const safetensors *st, int i, dtype dt) {
    gcase c;
    gc_begin(&c, st, "ce", i, dt);
    tensor *x = gc_input(&c, "x", 1), *labels = gc_input(&c, "labels", 0), *w = gc_input(&c, "w", 0);
    double a[2]; /* normaliser, dloss */
    if (gc_args(&c, "args", a, 2) == 0) {
        tensor *loss = op_softmax_ce(rt, x, labels, w, a[0]);
        gc_check(&c, "loss", loss, loss->data);
        gc_backward_scalar(&c, rt, loss, a[1]);
        gc_check(&c, "dx", x, x->grad);
    }
    gc_end(&c, rt);
}

static void bce_case(runtime *rt, const safetensors *st, int i, dtype dt) {
    gcase c;
    gc_begin(&c, st, "bce", i, dt);
    tensor *x = gc_input(&c, "x", 1), *t = gc_input(&c, "t", 0), *w = gc_input(&c, "w", 0);
    double a[2];
    if (gc_args(&c, "args", a, 2) == 0) {
        tensor *loss = op_bce_logits(rt, x, t, w, a[0]);
        gc_check(&c, "loss", loss, loss->data);
        gc_backward_scalar(&c, rt, loss, a[1]);
        gc_check(&c, "dx", x, x->grad);
    }
    gc_end(&c, rt);
}

/* Smooth L1 through op_smooth_l1; the β = 0 cases also through op_l1. */
static void smooth_l1_run(runtime *rt, const safetensors *st, int i, dtype dt, int use_l1) {
    gcase c;
    gc_begin(&c, st, "sl1", i, dt);
    if (use_l1) snprintf(c.label + strlen(c.label), sizeof c.label - strlen(c.label), " op_l1");
    tensor *x = gc_input(&c, "x", 1), *t = gc_input(&c, "t", 0), *w = gc_input(&c, "w", 0);
    double a[3]; /* normaliser, dloss, beta */
    if (gc_args(&c, "args", a, 3) == 0 && (!use_l1 || a[2] == 0)) {
        tensor *loss = use_l1 ? op_l1(rt, x, t, w, a[0]) : op_smooth_l1(rt, x, t, w, a[2], a[0]);
        gc_check(&c, "loss", loss, loss->data);
        gc_backward_scalar(&c, rt, loss, a[1]);
        gc_check(&c, "dx", x, x->grad);
    }
    gc_end(&c, rt);
}
static void smooth_l1_case(runtime *rt, const safetensors *st, int i, dtype dt) { smooth_l1_run(rt, st, i, dt, 0); }
static void l1_case(runtime *rt, const safetensors *st, int i, dtype dt) { smooth_l1_run(rt, st, i, dt, 1); }

/* ---- tests ---- */

static void test_conv2d(void) { run_family("ops_conv.safetensors", "conv", 8, conv2d_case); }
static void test_deconv2x2(void) { run_family("ops_conv.safetensors", "deconv", 2, deconv_case); }
static void test_group_norm(void) { run_family("ops_norm.safetensors", "gn", 4, group_norm_case); }
static void test_max_pool(void) { run_family("ops_pool.safetensors", "pool", 3, max_pool_case); }
static void test_upsample2x(void) { run_family("ops_pool.safetensors", "up", 2, upsample_case); }
static void test_linear(void) { run_family("ops_linear.safetensors", "linear", 2, linear_case); }
static void test_normed_linear(void) { run_family("ops_linear.safetensors", "nlin", 2, normed_linear_case); }
static void test_normed_conv1x1(void) { run_family("ops_linear.safetensors", "nlin", 2, normed_conv1x1_case); }
static void test_softmax_ce(void) { run_family("ops_loss.safetensors", "ce", 2, softmax_ce_case); }
static void test_bce_logits(void) { run_family("ops_loss.safetensors", "bce", 2, bce_case); }
static void test_smooth_l1(void) { run_family("ops_loss.safetensors", "sl1", 3, smooth_l1_case); }
static void test_l1(void) { run_family("ops_loss.safetensors", "sl1", 3, l1_case); }

/* The files say where they come from. */
static void test_provenance(void) {
    static const char *files[] = {"ops_conv.safetensors", "ops_norm.safetensors", "ops_pool.safetensors",
                                  "ops_linear.safetensors", "ops_loss.safetensors"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        safetensors st;
        if (golden_open(&st, files[k]) != 0) continue;
        const char *gen = safetensors_meta(&st, "generator"), *torch = safetensors_meta(&st, "torch");
        EXPECT(gen && strcmp(gen, "scripts/gen_golden_ops.py") == 0, "%s: generator %s", st.path, gen ? gen : "(none)");
        EXPECT(torch != NULL, "%s: no torch version in the metadata", st.path);
        if (k == 0 && torch) printf("golden files: %s, torch %s\n", gen ? gen : "?", torch);
        safetensors_close(&st);
    }
}

int main(void) {
    RUN(test_provenance);
    RUN(test_conv2d);
    RUN(test_deconv2x2);
    RUN(test_group_norm);
    RUN(test_max_pool);
    RUN(test_upsample2x);
    RUN(test_linear);
    RUN(test_normed_linear);
    RUN(test_normed_conv1x1);
    RUN(test_softmax_ce);
    RUN(test_bce_logits);
    RUN(test_smooth_l1);
    RUN(test_l1);
    printf("tolerance used at worst: f64 %.3g (%s), f32 %.3g (%s)\n", margin[0].ratio,
           margin[0].where[0] ? margin[0].where : "-", margin[1].ratio, margin[1].where[0] ? margin[1].where : "-");
    return test_finish("test_ops_golden");
}

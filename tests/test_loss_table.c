/* test_loss_table.c: the loss table (src/loss/loss_table.h): the registry, the entries'
 * shape facts, and the `ce` entry against the official golden numbers in
 * ../shared/golden/losses/{small,medium,lvis}/ce.json (README there; a missing folder is
 * a SKIP, this test runs from the repository root).
 *
 * Each case runs through the interface (find, init, forward, runtime_backward, scores) in
 * f64 and in f32 and compares:
 *   loss       with `loss_sum_over_B_exact` (our divisor is R; the golden `loss` divides
 *              by R + f32 eps);
 *   d(logits)  with `grad_logits` · denominator / R (the same rescaling);
 *   scores     with `activation`[:, :K].
 * Tolerances (golden README §6): small/medium f64 1e-12 of the array's max|value|; f32
 * 1e-6 of it (plus 1e-6 relative for the loss); lvis f64 against the f32-rounded files
 * |err| ≤ 1.2e-7·|ref| + 1e-15·max|ref|, and 1e-12 relative against the exact f64
 * scalars (loss, grad_at_label_f64). */
#include "core/runtime.h"
#include "loss/loss_table.h"
#include "test.h"

#include <cjson/cJSON.h>

#define GOLDEN "../shared/golden/losses/"

static runtime rt;

/* The whole file, NUL-terminated (free it), or NULL. */
static char *read_all(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = n;
    return b;
}

/* rows × cols doubles from a JSON array of rows or a binary descriptor ({file, shape}, f32
 * little-endian, relative to dir). 0 on success. */
static int load_array(const cJSON *node, const char *dir, int rows, int cols, double *out) {
    if (cJSON_IsArray(node)) {
        if (cJSON_GetArraySize(node) != rows) return -1;
        for (int r = 0; r < rows; r++) {
            const cJSON *row = cJSON_GetArrayItem(node, r);
            if (cJSON_GetArraySize(row) != cols) return -1;
            for (int c = 0; c < cols; c++) out[(int64_t)r * cols + c] = cJSON_GetArrayItem(row, c)->valuedouble;
        }
        return 0;
    }
    const cJSON *file = cJSON_GetObjectItem(node, "file");
    if (!cJSON_IsString(file)) return -1;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file->valuestring);
    long len;
    char *b = read_all(path, &len);
    if (!b || len != (long)rows * cols * 4) {
        free(b);
        return -1;
    }
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) {
        float v;
        memcpy(&v, b + 4 * i, 4);
        out[i] = v;
    }
    free(b);
    return 0;
}

static double max_abs(const double *v, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(v[i]) > m ? fabs(v[i]) : m;
    return m;
}

typedef struct golden_ce {
    int K, R, lvis;
    double loss, denominator;
    int32_t *labels;
    double *logits, *grad, *act, *grad_at_label; /* grad_at_label: lvis only */
} golden_ce;

static void golden_free(golden_ce *g) {
    free(g->labels);
    free(g->logits);
    free(g->grad);
    free(g->act);
    free(g->grad_at_label);
    memset(g, 0, sizeof *g);
}

/* 0: loaded; 1: the file is absent; -1: malformed (msg says what). */
static int golden_load(const char *cas, golden_ce *g, char *msg, size_t n) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, GOLDEN "%s", cas);
    snprintf(path, sizeof path, "%s/ce.json", dir);
    memset(g, 0, sizeof *g);
    char *text = read_all(path, NULL);
    if (!text) {
        snprintf(msg, n, "%s is absent", path);
        return 1;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    int rc = -1;
    snprintf(msg, n, "%s: malformed", path);
    if (!j) return -1;
    const cJSON *in = cJSON_GetObjectItem(j, "inputs"), *ex = cJSON_GetObjectItem(j, "expected");
    g->K = cJSON_GetObjectItem(j, "C")->valueint;
    g->R = cJSON_GetObjectItem(j, "B")->valueint;
    g->lvis = strcmp(cas, "lvis") == 0;
    int cols = g->K + 1;
    size_t nel = (size_t)g->R * cols;
    g->labels = malloc(g->R * sizeof *g->labels);
    g->logits = malloc(nel * sizeof(double));
    g->grad = malloc(nel * sizeof(double));
    g->act = malloc(nel * sizeof(double));
    const cJSON *labels = cJSON_GetObjectItem(in, "labels");
    if (!in || !ex || cJSON_GetArraySize(labels) != g->R) goto done;
    for (int r = 0; r < g->R; r++) g->labels[r] = cJSON_GetArrayItem(labels, r)->valueint;
    g->loss = cJSON_GetObjectItem(ex, "loss_sum_over_B_exact")->valuedouble;
    g->denominator = cJSON_GetObjectItem(ex, "denominator")->valuedouble;
    if (load_array(cJSON_GetObjectItem(in, "logits"), dir, g->R, cols, g->logits) ||
        load_array(cJSON_GetObjectItem(ex, "grad_logits"), dir, g->R, cols, g->grad) ||
        load_array(cJSON_GetObjectItem(ex, "activation"), dir, g->R, cols, g->act))
        goto done;
    for (size_t i = 0; i < nel; i++) g->grad[i] *= g->denominator / g->R; /* to sum / R */
    if (g->lvis) {
        const cJSON *gl = cJSON_GetObjectItem(ex, "grad_at_label_f64");
        if (cJSON_GetArraySize(gl) != g->R) goto done;
        g->grad_at_label = malloc(g->R * sizeof(double));
        for (int r = 0; r < g->R; r++)
            g->grad_at_label[r] = cJSON_GetArrayItem(gl, r)->valuedouble * g->denominator / g->R;
    }
    rc = 0;
done:
    cJSON_Delete(j);
    if (rc) golden_free(g);
    return rc;
}

static tensor *step_tensor(dtype dt, const double *v, int rows, int cols) {
    tensor *t = runtime_tensor(&rt, DEVICE_CPU, dt, TSHAPE(rows, cols));
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) {
        if (dt == DTYPE_F64) tensor_f64(t)[i] = v[i];
        else tensor_f32(t)[i] = (float)v[i];
    }
    return t;
}

static void to_double(const tensor *t, const void *p, double *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = t->dtype == DTYPE_F64 ? ((const double *)p)[i] : ((const float *)p)[i];
}

#if MRC_CUDA
static runtime *gpu_runtime(void) {
    static runtime gpu;
    static int made = 0;
    if (!made) {
        runtime_config cfg = runtime_config_default();
        cfg.device = "cuda";
        cfg.quiet = 1;
        runtime_init(&gpu, &cfg);
        made = 1;
    }
    return &gpu;
}
#endif

/* A step tensor on the GPU holding the CPU tensor h's values (gpu = 1), or h itself. */
static tensor *placed(runtime *r, const tensor *h, int gpu) {
    if (!gpu) return (tensor *)h;
    tensor *t = runtime_tensor(r, DEVICE_CUDA, h->dtype, h->shape, h->ndim);
    tensor_copy(t, h);
    return t;
}
/* The values of t (any device) as doubles; p: its data or its gradient buffer. */
static void fetch_double(const tensor *t, const void *p, double *out, int64_t n) {
    if (t->device == DEVICE_CPU) {
        to_double(t, p, out, n);
        return;
    }
    tensor src = tensor_view((void *)p, t->dtype, t->device, TSHAPE((int)n));
    tensor h = tensor_alloc(t->dtype, DEVICE_CPU, TSHAPE((int)n));
    tensor_copy(&h, &src);
    to_double(&h, h.data, out, n);
    tensor_free(&h);
}

/* One golden case at one precision, through the interface; gpu = 1 runs the forward, the
 * backward and the scores on the GPU (f32) against the same golden and tolerances. */
static void run_ce_case_on(const char *cas, dtype dt, int gpu) {
    runtime *r = &rt;
#if MRC_CUDA
    if (gpu) r = gpu_runtime();
#endif
    golden_ce g;
    char msg[512];
    int rc = golden_load(cas, &g, msg, sizeof msg);
    if (rc > 0) SKIP("%s", msg);
    REQUIRE(rc == 0, "%s", msg);
    const loss_entry *e = loss_table_find("ce");
    REQUIRE(e != NULL);
    REQUIRE(e->num_logits(g.K) == g.K + 1);
    loss_state s;
    loss_params p = loss_params_default();
    loss_state_init(&s, e, g.K, 0, &p, -1, NULL);
    int K = g.K, R = g.R, cols = K + 1;
    int64_t nel = (int64_t)R * cols;

    tensor *x = placed(r, step_tensor(dt, g.logits, R, cols), gpu);
    x->requires_grad = 1;
    tensor *labels = runtime_tensor(&rt, DEVICE_CPU, DTYPE_I32, TSHAPE(R));
    memcpy(labels->data, g.labels, R * sizeof(int32_t));
    labels = placed(r, labels, gpu);
    loss_rows rows = {.R = R, .labels = labels, .num_images = 2};
    loss_terms t = e->forward(&s, r, x, &rows);
    REQUIRE(t.n == 1 && strcmp(t.name[0], "loss_cls") == 0, "ce terms: %d, first '%s'", t.n, t.n ? t.name[0] : "");
    double loss;
    fetch_double(t.value[0], t.value[0]->data, &loss, 1);
    REQUIRE(t.value[0]->requires_grad, "the loss is not on the tape");
    runtime_backward(r, t.value[0]);
    REQUIRE(x->grad != NULL, "no d(logits)");
    double *grad = malloc(nel * sizeof *grad), *sc = malloc((size_t)R * K * sizeof *sc),
           *want_sc = malloc((size_t)R * K * sizeof *want_sc);
    fetch_double(x, x->grad, grad, nel);
    tensor *scores = e->scores(&s, r, x);
    REQUIRE(scores->ndim == 2 && scores->shape[0] == R && scores->shape[1] == K);
    REQUIRE(scores->device == x->device, "scores on another device than the logits");
    fetch_double(scores, scores->data, sc, (int64_t)R * K);
    for (int r = 0; r < R; r++)
        for (int k = 0; k < K; k++) want_sc[(int64_t)r * K + k] = g.act[(int64_t)r * cols + k];

    int f64 = dt == DTYPE_F64;
    double frac = f64 ? 1e-12 : 1e-6;              /* of max|ref| (README §6) */
    double rtol = g.lvis ? 1.2e-7 : (f64 ? 0 : 1e-6); /* lvis arrays: f32 rounding */
    double lfloor = g.lvis && f64 ? 1e-15 : frac;
    char what[64];
    snprintf(what, sizeof what, "%s %s%s loss", cas, dtype_name(dt), gpu ? " gpu" : "");
    EXPECT_CLOSE(what, &loss, &g.loss, 1, 0, f64 ? 1e-12 : 1e-6);
    snprintf(what, sizeof what, "%s %s d(logits)", cas, dtype_name(dt));
    EXPECT_CLOSE(what, grad, g.grad, nel, lfloor * max_abs(g.grad, nel), rtol);
    snprintf(what, sizeof what, "%s %s scores", cas, dtype_name(dt));
    EXPECT_CLOSE(what, sc, want_sc, (int64_t)R * K, lfloor * max_abs(want_sc, (int64_t)R * K), rtol);
    if (g.grad_at_label) {
        double *gl = malloc(R * sizeof *gl);
        for (int r = 0; r < R; r++) gl[r] = grad[(int64_t)r * cols + g.labels[r]];
        snprintf(what, sizeof what, "%s %s d(logits) at the labels (exact f64)", cas, dtype_name(dt));
        EXPECT_CLOSE(what, gl, g.grad_at_label, R, 1e-12 * max_abs(g.grad_at_label, R), f64 ? 1e-12 : 1e-6);
        free(gl);
    }
    printf("  %s %s%s: loss %.17g (golden %.17g), d(logits) worst |err| / max %.2g\n", cas, dtype_name(dt),
           gpu ? " gpu" : "", loss, g.loss,
           ({
               double w = 0;
               for (int64_t i = 0; i < nel; i++) w = fmax(w, fabs(grad[i] - g.grad[i]));
               w / max_abs(g.grad, nel);
           }));
    free(grad);
    free(sc);
    free(want_sc);
    loss_state_free(&s);
    runtime_step_end(&rt);
    if (r != &rt) runtime_step_end(r);
    golden_free(&g);
}
static void run_ce_case(const char *cas, dtype dt) { run_ce_case_on(cas, dt, 0); }

static void test_ce_small_f64(void) { run_ce_case("small", DTYPE_F64); }
static void test_ce_small_f32(void) { run_ce_case("small", DTYPE_F32); }
static void test_ce_medium_f64(void) { run_ce_case("medium", DTYPE_F64); }
static void test_ce_medium_f32(void) { run_ce_case("medium", DTYPE_F32); }
static void test_ce_lvis_f64(void) { run_ce_case("lvis", DTYPE_F64); }
static void test_ce_lvis_f32(void) { run_ce_case("lvis", DTYPE_F32); }
/* The CUDA path (softmax CE twin, ce_scores_gpu) against the same golden cases. */
static void test_ce_gpu(void) {
    REQUIRE_GPU();
    run_ce_case_on("small", DTYPE_F32, 1);
    run_ce_case_on("medium", DTYPE_F32, 1);
    run_ce_case_on("lvis", DTYPE_F32, 1);
}

/* loss_weight scales the loss and d(logits); no tape entry when the logits need none. */
static void test_ce_loss_weight_and_no_grad(void) {
    const loss_entry *e = loss_table_require("ce");
    loss_params p = loss_params_default();
    double v[2][3] = {{1, 2, 3}, {0.5, -1, 2}}, l[2];
    for (int i = 0; i < 2; i++) {
        p.loss_weight = i ? 2.5 : 1.0;
        loss_state s;
        loss_state_init(&s, e, 2, 1, &p, -1, NULL);
        tensor *x = step_tensor(DTYPE_F64, &v[0][0], 2, 3);
        tensor *lab = runtime_tensor(&rt, DEVICE_CPU, DTYPE_I32, TSHAPE(2));
        tensor_i32(lab)[0] = 0;
        tensor_i32(lab)[1] = 2;
        loss_rows rows = {.R = 2, .labels = lab};
        loss_terms t = e->forward(&s, &rt, x, &rows);
        l[i] = tensor_f64(t.value[0])[0];
        EXPECT(!t.value[0]->requires_grad && rt.tape.count == 0, "a tape entry without a gradient to take");
        loss_state_free(&s);
        runtime_step_end(&rt);
    }
    EXPECT(fabs(l[1] - 2.5 * l[0]) <= 1e-14 * l[1], "loss_weight 2.5: %.17g vs %.17g", l[1], l[0]);
    /* by hand: row 0 label 0, row 1 label 2 (bg) */
    double want = (log(exp(1) + exp(2) + exp(3)) - 1 + log(exp(0.5) + exp(-1) + exp(2)) - 2) / 2;
    EXPECT(fabs(l[0] - want) <= 1e-14, "loss %.17g, by hand %.17g", l[0], want);
}

static void test_registry(void) {
    const loss_entry *e = loss_table_find("ce");
    REQUIRE(e != NULL, "ce is not in the table");
    EXPECT(strcmp(e->name, "ce") == 0);
    EXPECT(loss_table_find("nope") == NULL);
    EXPECT(loss_table_find("") == NULL);
    EXPECT(loss_table_find(NULL) == NULL);
    EXPECT(loss_table_find("CE") == NULL, "names are case-sensitive");
    char buf[256];
    EXPECT(strcmp(loss_table_names(buf, sizeof buf), "ce") == 0, "names '%s'", buf);
    loss_table_unknown("x", buf, sizeof buf);
    EXPECT(strcmp(buf, "loss.cls 'x' is not one of ce") == 0, "message '%s'", buf);
    EXPECT(e->num_logits(5) == 6 && e->num_logits(1203) == 1204);
    EXPECT(e->classifier == LOSS_CLASSIFIER_LINEAR);
    EXPECT(e->needs == 0, "ce needs no class statistics");
    EXPECT(e->augment_rois == NULL && e->save == NULL && e->load == NULL);
    loss_state s;
    loss_state_init(&s, e, 5, 0, NULL, -1, NULL);
    EXPECT(s.classifier == LOSS_CLASSIFIER_LINEAR && s.K == 5 && s.params.loss_weight == 1.0);
    loss_state_free(&s);
    loss_state_init(&s, e, 5, 2, NULL, LOSS_CLASSIFIER_NORMED, NULL);
    EXPECT(s.classifier == LOSS_CLASSIFIER_NORMED && s.stage == 2, "the config overrides the classifier");
    loss_state_free(&s);
}

static void require_unknown(void *arg) { loss_table_require((const char *)arg); }
static void forward_bad_width(void *arg) {
    (void)arg;
    loss_state s;
    loss_state_init(&s, &loss_entry_ce, 4, 0, NULL, -1, NULL);
    double v[6] = {0};
    tensor *x = step_tensor(DTYPE_F64, v, 2, 3);
    tensor *lab = runtime_tensor(&rt, DEVICE_CPU, DTYPE_I32, TSHAPE(2));
    loss_rows rows = {.R = 2, .labels = lab};
    loss_entry_ce.forward(&s, &rt, x, &rows);
}

static void test_fatal_paths(void) {
    char out[1024];
    int st = test_run_child(require_unknown, (void *)"sesaw", out, sizeof out);
    EXPECT(st != 0 && strstr(out, "loss.cls 'sesaw' is not one of ce"), "status %d, output: %s", st, out);
    st = test_run_child(forward_bad_width, NULL, out, sizeof out);
    EXPECT(st != 0 && strstr(out, "logits must be [R, 5]"), "status %d, output: %s", st, out);
}

int main(void) {
    runtime_config cfg = runtime_config_default();
    cfg.device = "cpu";
    cfg.quiet = 1;
    runtime_init(&rt, &cfg);
    RUN(test_registry);
    RUN(test_fatal_paths);
    RUN(test_ce_loss_weight_and_no_grad);
    RUN(test_ce_small_f64);
    RUN(test_ce_small_f32);
    RUN(test_ce_medium_f64);
    RUN(test_ce_medium_f32);
    RUN(test_ce_lvis_f64);
    RUN(test_ce_lvis_f32);
    RUN(test_ce_gpu);
    runtime_free(&rt);
    return test_finish("test_loss_table");
}

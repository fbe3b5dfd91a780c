/* test_select.c: the selection ops of the RoI heads (ops/select.h) on the CPU:
 * gather_group and class_conv1x1 forward against direct loops, f64 finite-difference
 * gradient checks through the tape (repeated classes, bias or not, R = 1, H·W = 1 and
 * 28×28, both weight layouts, frozen inputs), the backward against a direct f64 loop
 * (rows sharing a class must all contribute), bit-identical results for 1, 2 and 3
 * threads, and the one-line stop on a bad index. The GPU twins are checked against these
 * kernels in test_parity.c. */
#include "ops_test.h"

#include "ops/select.h"

#define H 1e-6
#define ATOL 1e-7
#define RTOL 1e-5
#define F64 DTYPE_F64
#define F32 DTYPE_F32

/* An i32 [R] index tensor with the given values. */
static tensor *index_tensor(int R, const int *v) {
    tensor *t = ot_const(DTYPE_I32, TSHAPE(R > 0 ? R : 0), 0, 0);
    for (int r = 0; r < R; r++) tensor_i32(t)[r] = v[r];
    return t;
}

/* An i32 [R] tensor of indices in [0, n), every third row repeating an earlier row's. */
static tensor *random_index(int R, int n) {
    tensor *t = ot_const(DTYPE_I32, TSHAPE(R), 0, 0);
    for (int r = 0; r < R; r++)
        tensor_i32(t)[r] = r % 3 == 2 ? tensor_i32(t)[(int)ot_uniform(0, r - 1e-9)] : (int)ot_uniform(0, n - 1e-9);
    return t;
}

/* ---- gather_group ----------------------------------------------------------------------- */

static tensor *gather_fn(runtime *rt, tensor **in, const void *ctx) {
    return op_gather_group(rt, in[0], in[1], *(const int *)ctx);
}

static void check_gather_forward(dtype dt, int R, int G, int width) {
    runtime *rt = ot_runtime(2);
    tensor *x = ot_const(dt, TSHAPE(R, G * width), -1, 1), *idx = random_index(R, G);
    tensor *y = op_gather_group(rt, x, idx, width);
    int bad = 0;
    for (int r = 0; r < R; r++)
        for (int j = 0; j < width; j++) {
            int k = tensor_i32(idx)[r];
            double want = ot_get(x, (int64_t)r * G * width + k * width + j), got = ot_get(y, (int64_t)r * width + j);
            if (got != want && bad++ < 3)
                test_fail_at(__FILE__, __LINE__, "gather_group %s [%d, %d·%d]: y[%d, %d] = %g, want %g",
                             dtype_name(dt), R, G, width, r, j, got, want);
        }
    EXPECT(y->shape[0] == R && y->shape[1] == width && y->ndim == 2);
    runtime_step_end(rt);
    ot_free(x), ot_free(idx);
}

static void test_gather_group_forward(void) {
    ot_seed(11);
    check_gather_forward(F64, 1, 1, 4);
    check_gather_forward(F64, 37, 9, 4);
    check_gather_forward(F32, 37, 9, 4);
    check_gather_forward(F32, 5, 3, 1);
    check_gather_forward(F32, 64, 1203, 4); /* LVIS: one class's 4 deltas of 1203 */
    /* no RoIs: an empty output, nothing read */
    runtime *rt = ot_runtime(2);
    tensor *x = ot_const(F32, TSHAPE(0, 12), 0, 0), *idx = index_tensor(0, NULL);
    tensor *y = op_gather_group(rt, x, idx, 4);
    EXPECT(y->shape[0] == 0 && y->shape[1] == 4);
    runtime_step_end(rt);
    ot_free(x), ot_free(idx);
}

static void check_gather_grad(int R, int G, int width, const int *v) {
    runtime *rt = ot_runtime(2);
    tensor *x = ot_param(F64, TSHAPE(R, G * width), -1, 1), *idx = index_tensor(R, v);
    char what[96];
    snprintf(what, sizeof what, "gather_group [%d, %d·%d]", R, G, width);
    OT_GRADCHECK(what, rt, gather_fn, &width, ((tensor *[]){x, idx}), 2, H, ATOL, RTOL);
    ot_free(x), ot_free(idx);
}

static void test_gather_group_grad(void) {
    ot_seed(12);
    check_gather_grad(1, 1, 4, (int[]){0});
    check_gather_grad(6, 5, 4, (int[]){4, 0, 4, 2, 2, 1}); /* repeated groups in different rows */
    check_gather_grad(4, 3, 1, (int[]){2, 2, 0, 1});
}

/* ---- class_conv1x1 ------------------------------------------------------------------------- */

static tensor *cconv_fn(runtime *rt, tensor **in, const void *ctx) {
    return op_class_conv1x1(rt, in[0], in[1], in[2], in[3]);
}

/* y[r, p] by a direct loop in double. */
static double cconv_direct(const tensor *x, const tensor *w, const tensor *b, const tensor *cls, int r, int p) {
    int HW = x->shape[1] * x->shape[2], C = x->shape[3], k = tensor_i32(cls)[r];
    double s = b ? ot_get(b, k) : 0;
    for (int c = 0; c < C; c++) s += ot_get(x, ((int64_t)r * HW + p) * C + c) * ot_get(w, (int64_t)k * C + c);
    return s;
}

static void check_cconv_forward(dtype dt, int R, int Hh, int W, int C, int K, int bias, int flat_w) {
    runtime *rt = ot_runtime(2);
    tensor *x = ot_const(dt, TSHAPE(R, Hh, W, C), -1, 1);
    tensor *w = flat_w ? ot_const(dt, TSHAPE(K, C), -1, 1) : ot_const(dt, TSHAPE(K, 1, 1, C), -1, 1);
    tensor *b = bias ? ot_const(dt, TSHAPE(K), -1, 1) : NULL, *cls = random_index(R, K);
    tensor *y = op_class_conv1x1(rt, x, w, b, cls);
    REQUIRE(y->ndim == 4 && y->shape[0] == R && y->shape[1] == Hh && y->shape[2] == W && y->shape[3] == 1);
    int64_t n = (int64_t)R * Hh * W;
    double *got = malloc((size_t)n * sizeof *got), *want = malloc((size_t)n * sizeof *want);
    for (int64_t q = 0; q < n; q++) got[q] = ot_get(y, q), want[q] = cconv_direct(x, w, b, cls, (int)(q / (Hh * W)), (int)(q % (Hh * W)));
    char what[128];
    snprintf(what, sizeof what, "class_conv1x1 %s [%d,%d,%d,%d] K=%d%s%s", dtype_name(dt), R, Hh, W, C, K,
             bias ? " +bias" : "", flat_w ? " w [K, C]" : "");
    /* f64: the same sum in the same order; f32: the double sum rounded once */
    EXPECT_CLOSE(what, got, want, n, dt == F64 ? 1e-15 : 1e-7, dt == F64 ? 1e-14 : 6e-8);
    free(got), free(want);
    runtime_step_end(rt);
    ot_free(x), ot_free(w), ot_free(b), ot_free(cls);
}

static void test_class_conv1x1_forward(void) {
    ot_seed(21);
    check_cconv_forward(F64, 1, 1, 1, 3, 2, 1, 0);
    check_cconv_forward(F64, 9, 5, 7, 6, 4, 0, 0);
    check_cconv_forward(F64, 9, 5, 7, 6, 4, 1, 1);
    check_cconv_forward(F32, 13, 28, 28, 16, 7, 1, 0);
    check_cconv_forward(F32, 4, 3, 3, 1, 1, 0, 1);
}

/* which: bit 0 x, bit 1 w, bit 2 b need gradients (b absent when no_bias). */
static void check_cconv_grad(int R, int Hh, int W, int C, int K, const int *v, int no_bias, int which, int flat_w) {
    runtime *rt = ot_runtime(2);
    tensor *x = which & 1 ? ot_param(F64, TSHAPE(R, Hh, W, C), -1, 1) : ot_const(F64, TSHAPE(R, Hh, W, C), -1, 1);
    tensor *w;
    if (flat_w) w = which & 2 ? ot_param(F64, TSHAPE(K, C), -1, 1) : ot_const(F64, TSHAPE(K, C), -1, 1);
    else w = which & 2 ? ot_param(F64, TSHAPE(K, 1, 1, C), -1, 1) : ot_const(F64, TSHAPE(K, 1, 1, C), -1, 1);
    tensor *b = no_bias ? NULL : which & 4 ? ot_param(F64, TSHAPE(K), -1, 1) : ot_const(F64, TSHAPE(K), -1, 1);
    tensor *cls = index_tensor(R, v);
    char what[160];
    snprintf(what, sizeof what, "class_conv1x1 [%d,%d,%d,%d] K=%d%s grads%s%s%s%s", R, Hh, W, C, K,
             no_bias ? " no bias" : " +bias", which & 1 ? " x" : "", which & 2 ? " w" : "",
             which & 4 && !no_bias ? " b" : "", flat_w ? " (w [K, C])" : "");
    OT_GRADCHECK(what, rt, cconv_fn, NULL, ((tensor *[]){x, w, b, cls}), 4, H, ATOL, RTOL);
    ot_free(x), ot_free(w), ot_free(b), ot_free(cls);
}

static void test_class_conv1x1_grad(void) {
    ot_seed(22);
    check_cconv_grad(1, 1, 1, 3, 2, (int[]){1}, 0, 7, 0);                    /* R = 1, H·W = 1 */
    check_cconv_grad(1, 1, 1, 3, 2, (int[]){0}, 1, 7, 0);
    check_cconv_grad(5, 3, 4, 4, 3, (int[]){2, 0, 2, 2, 1}, 0, 7, 0);        /* three rows share class 2 */
    check_cconv_grad(5, 3, 4, 4, 3, (int[]){2, 0, 2, 2, 1}, 1, 7, 0);
    check_cconv_grad(4, 2, 3, 5, 6, (int[]){5, 5, 5, 5}, 0, 7, 1);           /* all one class, w [K, C] */
    check_cconv_grad(2, 28, 28, 2, 3, (int[]){1, 1}, 0, 7, 0);               /* the mask head's 28×28 */
    check_cconv_grad(3, 4, 4, 3, 4, (int[]){3, 0, 3}, 0, 6, 0);              /* constant x: dw, db only */
    check_cconv_grad(3, 4, 4, 3, 4, (int[]){3, 0, 3}, 0, 1, 0);              /* frozen weight and bias */
    check_cconv_grad(3, 4, 4, 3, 4, (int[]){3, 0, 3}, 0, 4, 0);              /* only the bias trains */
}

/* The backward against a direct f64 loop, with rows sharing classes and a nonzero start
 * in every gradient (accumulated, not written). Doubling a row that shares its class must
 * double its contribution. */
static void test_class_conv1x1_backward_direct(void) {
    ot_seed(23);
    runtime *rt = ot_runtime(2);
    const int R = 6, Hh = 3, W = 5, C = 4, K = 3, HW = Hh * W;
    int v[6] = {1, 2, 1, 1, 0, 2};
    tensor *x = ot_const(F64, TSHAPE(R, Hh, W, C), -1, 1), *w = ot_const(F64, TSHAPE(K, 1, 1, C), -1, 1);
    tensor *cls = index_tensor(R, v), *dy = ot_const(F64, TSHAPE(R, Hh, W, 1), -1, 1);
    /* row 3 = row 0 (same class 1): its contribution to dw[1] and db[1] equals row 0's */
    memcpy(tensor_f64(x) + 3 * HW * C, tensor_f64(x), (size_t)HW * C * sizeof(double));
    memcpy(tensor_f64(dy) + 3 * HW, tensor_f64(dy), (size_t)HW * sizeof(double));
    tensor *dx = ot_const(F64, x->shape, 4, -1, 1), *dw = ot_const(F64, w->shape, 4, -1, 1);
    tensor *db = ot_const(F64, TSHAPE(K), -1, 1);
    double *wx = ot_values(dx), *ww = ot_values(dw), *wb = ot_values(db), row0_dw[4] = {0}, row0_db = 0;
    for (int r = 0; r < R; r++) {
        int k = v[r];
        for (int p = 0; p < HW; p++) {
            double g = tensor_f64(dy)[r * HW + p];
            wb[k] += g;
            if (r == 0) row0_db += g;
            for (int c = 0; c < C; c++) {
                wx[(r * HW + p) * C + c] += g * tensor_f64(w)[k * C + c];
                ww[k * C + c] += g * tensor_f64(x)[(r * HW + p) * C + c];
                if (r == 0) row0_dw[c] += g * tensor_f64(x)[(r * HW + p) * C + c];
            }
        }
    }
    double *dw_before = ot_values(dw), *db_before = ot_values(db);
    class_conv1x1_backward_cpu(rt, x, w, cls, dy, dx, dw, db);
    EXPECT_CLOSE("class_conv1x1 backward dx vs direct", tensor_f64(dx), wx, R * HW * C, 1e-14, 1e-13);
    EXPECT_CLOSE("class_conv1x1 backward dw vs direct", tensor_f64(dw), ww, K * C, 1e-13, 1e-13);
    EXPECT_CLOSE("class_conv1x1 backward db vs direct", tensor_f64(db), wb, K, 1e-13, 1e-13);
    /* class 1 holds rows 0, 2 and 3; class 1's gain minus row 2's must be twice row 0's */
    for (int c = 0; c < C; c++) {
        double row2 = 0;
        for (int p = 0; p < HW; p++) row2 += tensor_f64(dy)[2 * HW + p] * tensor_f64(x)[(2 * HW + p) * C + c];
        double gain = tensor_f64(dw)[1 * C + c] - dw_before[1 * C + c] - row2;
        EXPECT(fabs(gain - 2 * row0_dw[c]) < 1e-12, "dw[1, %d]: rows 0 and 3 gave %.17g, want 2 × %.17g", c, gain,
               row0_dw[c]);
    }
    double row2_db = 0;
    for (int p = 0; p < HW; p++) row2_db += tensor_f64(dy)[2 * HW + p];
    EXPECT(fabs(tensor_f64(db)[1] - db_before[1] - row2_db - 2 * row0_db) < 1e-12);
    /* dw only, dx and db NULL: the same dw */
    double *dw_full = ot_values(dw);
    memcpy(dw->data, dw_before, (size_t)K * C * sizeof(double));
    class_conv1x1_backward_cpu(rt, x, w, cls, dy, NULL, dw, NULL);
    EXPECT(memcmp(dw->data, dw_full, (size_t)K * C * sizeof(double)) == 0, "dw alone differs from dw with dx, db");
    free(wx), free(ww), free(wb), free(dw_before), free(db_before), free(dw_full);
    ot_free(x), ot_free(w), ot_free(cls), ot_free(dy), ot_free(dx), ot_free(dw), ot_free(db);
}

/* f32 forward and backward with 1, 2 and 3 threads: bit-identical. */
static void test_class_conv1x1_threads(void) {
    ot_seed(24);
    const int R = 67, Hh = 28, W = 28, C = 24, K = 5;
    tensor *x = ot_const(F32, TSHAPE(R, Hh, W, C), -1, 1), *w = ot_const(F32, TSHAPE(K, 1, 1, C), -1, 1);
    tensor *b = ot_const(F32, TSHAPE(K), -1, 1), *cls = random_index(R, K);
    tensor *dy = ot_const(F32, TSHAPE(R, Hh, W, 1), -1, 1);
    tensor *start_w = ot_const(F32, w->shape, 4, -1, 1), *start_b = ot_const(F32, TSHAPE(K), -1, 1);
    tensor *y[3], *dx[3], *dw[3], *db[3];
    for (int t = 0; t < 3; t++) {
        runtime *rt = ot_runtime(t + 1);
        y[t] = ot_const(F32, dy->shape, 4, 0, 0), dx[t] = ot_const(F32, x->shape, 4, 0, 0);
        dw[t] = ot_const(F32, w->shape, 4, 0, 0), db[t] = ot_const(F32, TSHAPE(K), 0, 0);
        tensor_copy(dw[t], start_w), tensor_copy(db[t], start_b);
        class_conv1x1_forward_cpu(rt, x, w, b, cls, y[t]);
        class_conv1x1_backward_cpu(rt, x, w, cls, dy, dx[t], dw[t], db[t]);
    }
    for (int t = 1; t < 3; t++) {
        char what[64];
        snprintf(what, sizeof what, "1 vs %d threads: y", t + 1);
        OT_SAME_BITS(what, y[0]->data, y[t]->data, tensor_bytes(y[0]));
        snprintf(what, sizeof what, "1 vs %d threads: dx", t + 1);
        OT_SAME_BITS(what, dx[0]->data, dx[t]->data, tensor_bytes(dx[0]));
        snprintf(what, sizeof what, "1 vs %d threads: dw", t + 1);
        OT_SAME_BITS(what, dw[0]->data, dw[t]->data, tensor_bytes(dw[0]));
        snprintf(what, sizeof what, "1 vs %d threads: db", t + 1);
        OT_SAME_BITS(what, db[0]->data, db[t]->data, tensor_bytes(db[0]));
    }
    EXPECT(memcmp(dw[0]->data, start_w->data, tensor_bytes(start_w)) != 0, "dw never changed");
    for (int t = 0; t < 3; t++) ot_free(y[t]), ot_free(dx[t]), ot_free(dw[t]), ot_free(db[t]);
    ot_free(x), ot_free(w), ot_free(b), ot_free(cls), ot_free(dy), ot_free(start_w), ot_free(start_b);
    ot_runtime(2);
}

/* ---- bad indices: one line naming the row and the value, exit 1 ---------------------------- */

static void gather_bad_child(void *arg) {
    int backward = *(int *)arg;
    runtime *rt = ot_runtime(1);
    tensor *x = ot_const(F32, TSHAPE(4, 12), -1, 1), *idx = index_tensor(4, (int[]){0, 2, 7, 1});
    if (backward) {
        tensor *dy = ot_const(F32, TSHAPE(4, 4), -1, 1);
        gather_group_backward_cpu(rt, idx, 4, dy, x);
    } else {
        op_gather_group(rt, x, idx, 4);
    }
}

static void cconv_bad_child(void *arg) {
    int backward = *(int *)arg;
    runtime *rt = ot_runtime(1);
    tensor *x = ot_const(F32, TSHAPE(3, 2, 2, 5), -1, 1), *w = ot_const(F32, TSHAPE(4, 1, 1, 5), -1, 1);
    tensor *cls = index_tensor(3, (int[]){3, -1, 0});
    if (backward) {
        tensor *dy = ot_const(F32, TSHAPE(3, 2, 2, 1), -1, 1), *dw = ot_const(F32, w->shape, 4, 0, 0);
        class_conv1x1_backward_cpu(rt, x, w, cls, dy, NULL, dw, NULL);
    } else {
        op_class_conv1x1(rt, x, w, NULL, cls);
    }
}

static void test_bad_index_stops(void) {
    char out[2048];
    for (int backward = 0; backward < 2; backward++) {
        int st = test_run_child(gather_bad_child, &backward, out, sizeof out);
        EXPECT(st == 1 && strstr(out, "gather_group: index 7 of row 2 is outside [0, 3)"),
               "gather_group %s: status %d, output: %s", backward ? "backward" : "forward", st, out);
        EXPECT(!strchr(strchr(out, '\n') ? strchr(out, '\n') + 1 : "", '\n'), "more than one line: %s", out);
        st = test_run_child(cconv_bad_child, &backward, out, sizeof out);
        EXPECT(st == 1 && strstr(out, "class_conv1x1: class -1 of row 1 is outside [0, 4)"),
               "class_conv1x1 %s: status %d, output: %s", backward ? "backward" : "forward", st, out);
    }
    out[strcspn(out, "\n")] = 0;
    printf("  (the message reads: %s)\n", out);
}

/* Shape errors name the op and the operand. */
static void cconv_bad_weight_child(void *arg) {
    (void)arg;
    runtime *rt = ot_runtime(1);
    tensor *x = ot_const(F32, TSHAPE(3, 2, 2, 5), -1, 1), *w = ot_const(F32, TSHAPE(4, 1, 1, 6), -1, 1);
    op_class_conv1x1(rt, x, w, NULL, index_tensor(3, (int[]){0, 0, 0}));
}
static void gather_bad_width_child(void *arg) {
    (void)arg;
    runtime *rt = ot_runtime(1);
    op_gather_group(rt, ot_const(F32, TSHAPE(3, 10), -1, 1), index_tensor(3, (int[]){0, 0, 0}), 4);
}

static void test_bad_shapes_stop(void) {
    char out[2048];
    int st = test_run_child(cconv_bad_weight_child, NULL, out, sizeof out);
    EXPECT(st == 1 && strstr(out, "class_conv1x1 weight"), "status %d, output: %s", st, out);
    st = test_run_child(gather_bad_width_child, NULL, out, sizeof out);
    EXPECT(st == 1 && strstr(out, "gather_group: x must be [R, G·4]"), "status %d, output: %s", st, out);
}

int main(void) {
    RUN(test_gather_group_forward);
    RUN(test_gather_group_grad);
    RUN(test_class_conv1x1_forward);
    RUN(test_class_conv1x1_grad);
    RUN(test_class_conv1x1_backward_direct);
    RUN(test_class_conv1x1_threads);
    RUN(test_bad_index_stops);
    RUN(test_bad_shapes_stop);
    return test_finish("test_select");
}

/* test_tensor.c: shapes, dtypes, views, contracts, allocation, copies, bf16 rounding. */
#include "core/check.h"
#include "core/tensor.h"
#include "test.h"

#include <stdint.h>

static void test_dtype_sizes(void) {
    EXPECT(dtype_size(DTYPE_F32) == 4);
    EXPECT(dtype_size(DTYPE_BF16) == 2);
    EXPECT(dtype_size(DTYPE_I32) == 4);
    EXPECT(dtype_size(DTYPE_U8) == 1);
    EXPECT(dtype_size(DTYPE_F64) == 8);
    EXPECT(strcmp(dtype_name(DTYPE_BF16), "bf16") == 0, "got %s", dtype_name(DTYPE_BF16));
    EXPECT(strcmp(device_name(DEVICE_CUDA), "cuda") == 0);
}

static void test_shape_and_numel(void) {
    float buf[2 * 3 * 4 * 5];
    tensor t = tensor_view(buf, DTYPE_F32, DEVICE_CPU, TSHAPE(2, 3, 4, 5));
    EXPECT(t.ndim == 4);
    EXPECT(t.shape[0] == 2 && t.shape[1] == 3 && t.shape[2] == 4 && t.shape[3] == 5);
    EXPECT(tensor_numel(&t) == 120, "numel %lld", (long long)tensor_numel(&t));
    EXPECT(tensor_bytes(&t) == 480);
    tensor e = tensor_view(NULL, DTYPE_U8, DEVICE_CPU, TSHAPE(0, 7));
    EXPECT(tensor_numel(&e) == 0 && tensor_bytes(&e) == 0, "a zero-size dimension gives an empty tensor");
    char s[64];
    tensor_str(&t, s, sizeof s);
    EXPECT(strcmp(s, "f32[2,3,4,5]@cpu") == 0, "got '%s'", s);
}

static void test_reshape_and_rows(void) {
    int32_t buf[24];
    for (int i = 0; i < 24; i++) buf[i] = i;
    tensor t = tensor_view(buf, DTYPE_I32, DEVICE_CPU, TSHAPE(4, 6));
    tensor r = tensor_reshape(&t, TSHAPE(2, 3, 4));
    EXPECT(r.ndim == 3 && r.shape[2] == 4 && r.data == t.data);
    tensor rows = tensor_rows(&t, 1, 2);
    EXPECT(rows.shape[0] == 2 && rows.shape[1] == 6);
    EXPECT(tensor_i32(&rows)[0] == 6, "row 1 starts at element 6, got %d", tensor_i32(&rows)[0]);
    EXPECT(tensor_i32(&rows)[11] == 17);
}

static void bad_reshape(void *arg) {
    (void)arg;
    float buf[6];
    tensor t = tensor_view(buf, DTYPE_F32, DEVICE_CPU, TSHAPE(2, 3));
    tensor_reshape(&t, TSHAPE(4, 2));
}

static void bad_contract(void *arg) {
    (void)arg;
    float buf[6];
    tensor t = tensor_view(buf, DTYPE_F32, DEVICE_CPU, TSHAPE(1, 2, 3));
    tensor_expect(&t, DTYPE_F32, DEVICE_CPU, TSHAPE(-1, 2, 4), "conv2d input");
}

static void f64_on_gpu(void *arg) {
    (void)arg;
    tensor_view(NULL, DTYPE_F64, DEVICE_CUDA, TSHAPE(3));
}

static void bad_rows(void *arg) {
    (void)arg;
    float buf[6];
    tensor t = tensor_view(buf, DTYPE_F32, DEVICE_CPU, TSHAPE(3, 2));
    tensor_rows(&t, 2, 2);
}

static void test_errors_are_clear(void) {
    char out[2048];
    int st = test_run_child(bad_reshape, NULL, out, sizeof out);
    EXPECT(st == 1, "exit status %d", st);
    EXPECT(strstr(out, "reshape f32[2,3]@cpu to f32[4,2]@cpu changes the element count"), "got: %s", out);
    st = test_run_child(bad_contract, NULL, out, sizeof out);
    EXPECT(st == 1, "exit status %d", st);
    EXPECT(strstr(out, "conv2d input: expected f32[*,2,4]@cpu, got f32[1,2,3]@cpu"), "got: %s", out);
    st = test_run_child(f64_on_gpu, NULL, out, sizeof out);
    EXPECT(st == 1 && strstr(out, "f64 tensors exist on the CPU only"), "status %d: %s", st, out);
    st = test_run_child(bad_rows, NULL, out, sizeof out);
    EXPECT(st == 1 && strstr(out, "rows [2, 4) outside dimension 0 of size 3"), "status %d: %s", st, out);
}

static void test_contract_accepts_wildcards(void) {
    float buf[6];
    tensor t = tensor_view(buf, DTYPE_F32, DEVICE_CPU, TSHAPE(1, 2, 3));
    tensor_expect(&t, DTYPE_F32, DEVICE_CPU, TSHAPE(-1, 2, -1), "x"); /* must not exit */
    EXPECT(1);
}

static void test_alloc_is_zeroed(void) {
    tensor t = tensor_alloc(DTYPE_F32, DEVICE_CPU, TSHAPE(3, 5));
    int nonzero = 0;
    for (int i = 0; i < 15; i++) nonzero += tensor_f32(&t)[i] != 0.0f;
    EXPECT(nonzero == 0, "%d non-zero values in a fresh tensor", nonzero);
    EXPECT(t.grad == NULL && !t.requires_grad);
    tensor p = tensor_alloc_param(DTYPE_F64, DEVICE_CPU, TSHAPE(4), "w");
    EXPECT(p.grad != NULL && p.requires_grad && strcmp(p.name, "w") == 0);
    EXPECT(((double *)p.grad)[3] == 0.0);
    tensor_free(&t);
    tensor_free(&p);
    EXPECT(t.data == NULL && p.grad == NULL);
}

/* Expected bf16 bits worked out by hand from the IEEE-754 encodings: bf16 keeps the top
 * 16 bits of the f32 and rounds the dropped 16 bits to nearest, ties to even. */
static void test_bf16_rounding(void) {
    struct { uint32_t f32; uint16_t bf16; const char *why; } cases[] = {
        {0x3F800000u, 0x3F80, "1.0 is exact"},
        {0xC0490FDBu, 0xC049, "-pi: dropped 0x0FDB < half, rounds down"},
        {0x3F808000u, 0x3F80, "tie, 0x3F80 even: stays"},
        {0x3F818000u, 0x3F82, "tie, 0x3F81 odd: rounds up to even"},
        {0x3F808001u, 0x3F81, "just above the tie rounds up"},
        {0x7F7FFFFFu, 0x7F80, "max float rounds to +inf"},
        {0x7F800000u, 0x7F80, "+inf stays"},
        {0xFF800000u, 0xFF80, "-inf stays"},
        {0x00000001u, 0x0000, "smallest denormal rounds to +0"},
        {0x80000000u, 0x8000, "-0 keeps its sign"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float x;
        memcpy(&x, &cases[i].f32, 4);
        uint16_t b = f32_to_bf16(x);
        EXPECT(b == cases[i].bf16, "%08x -> %04x, want %04x (%s)", cases[i].f32, b, cases[i].bf16, cases[i].why);
    }
    float nan;
    uint32_t nan_bits = 0x7F800001u; /* signalling NaN whose payload lies in the dropped bits */
    memcpy(&nan, &nan_bits, 4);
    uint16_t b = f32_to_bf16(nan);
    EXPECT((b & 0x7F80) == 0x7F80 && (b & 0x7F), "NaN must stay NaN, got %04x", b);
    EXPECT(bf16_to_f32(0x3F82) == 1.015625f, "0x3F82 is 1 + 2/128");
}

static void test_cast_and_copy_cpu(void) {
    float src[5] = {1.0f, -2.5f, 3.14159265f, 65504.0f, 1e-3f};
    uint16_t mid[5];
    float back[5], copy[5];
    tensor a = tensor_view(src, DTYPE_F32, DEVICE_CPU, TSHAPE(5));
    tensor m = tensor_view(mid, DTYPE_BF16, DEVICE_CPU, TSHAPE(5));
    tensor b = tensor_view(back, DTYPE_F32, DEVICE_CPU, TSHAPE(5));
    tensor c = tensor_view(copy, DTYPE_F32, DEVICE_CPU, TSHAPE(1, 5));
    tensor_cast(&m, &a);
    tensor_cast(&b, &m);
    for (int i = 0; i < 5; i++)
        EXPECT(fabsf(back[i] - src[i]) <= fabsf(src[i]) / 256, "bf16 keeps 8 significant bits: %g -> %g", src[i], back[i]);
    tensor_copy(&c, &a);
    EXPECT(memcmp(copy, src, sizeof src) == 0, "copy differs");
    tensor_zero(&c);
    EXPECT(copy[0] == 0.0f && copy[4] == 0.0f);
}

static void test_gpu_copy_and_cast(void) {
    REQUIRE_GPU();
    enum { N = 1000 };
    float h[N], back[N];
    uint16_t hb[N], gb[N];
    for (int i = 0; i < N; i++) h[i] = (float)(i - 500) * 0.0173f + 1e-7f * (float)i;
    /* the cases where the rounding rule matters: ties both ways, overflow to inf, inf,
     * NaN (signalling payload in the dropped bits), denormals, signed zero */
    uint32_t special[] = {0x3F808000u, 0x3F818000u, 0x3F808001u, 0x7F7FFFFFu, 0x7F800000u, 0xFF800000u,
                          0x7F800001u, 0xFFC00000u, 0x00000001u, 0x00018000u, 0x80000000u, 0x00000000u};
    for (int i = 0; i < (int)(sizeof special / sizeof special[0]); i++) memcpy(&h[i], &special[i], 4);
    tensor d = tensor_alloc(DTYPE_F32, DEVICE_CUDA, TSHAPE(N));
    tensor db = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, TSHAPE(N));
    tensor th = tensor_view(h, DTYPE_F32, DEVICE_CPU, TSHAPE(N));
    tensor tb = tensor_view(back, DTYPE_F32, DEVICE_CPU, TSHAPE(N));
    tensor thb = tensor_view(hb, DTYPE_BF16, DEVICE_CPU, TSHAPE(N));
    tensor tgb = tensor_view(gb, DTYPE_BF16, DEVICE_CPU, TSHAPE(N));
    tensor_copy(&d, &th);
    tensor_copy(&tb, &d);
    EXPECT(memcmp(h, back, sizeof h) == 0, "host -> device -> host round trip changed values");
    tensor_cast(&db, &d);
    tensor_copy(&tgb, &db);
    tensor_cast(&thb, &th);
    int diff = 0;
    for (int i = 0; i < N; i++) diff += hb[i] != gb[i];
    EXPECT(diff == 0, "%d of %d bf16 values differ between the CPU and GPU casts (first: %04x vs %04x)", diff, N,
           hb[0], gb[0]);
    /* bf16 -> f32 on the GPU widens exactly */
    tensor_cast(&d, &db);
    tensor_copy(&tb, &d);
    diff = 0;
    for (int i = 0; i < N; i++) {
        float want = bf16_to_f32(hb[i]);
        diff += memcmp(&back[i], &want, 4) != 0;
    }
    EXPECT(diff == 0, "%d of %d values differ after the GPU bf16 -> f32 cast", diff, N);
    gpu_fill_f32(d.data, -3.25f, N);
    tensor_copy(&tb, &d);
    EXPECT(back[0] == -3.25f && back[N - 1] == -3.25f, "fill: %g %g", back[0], back[N - 1]);
    tensor_zero(&d);
    tensor_copy(&tb, &d);
    EXPECT(back[0] == 0.0f && back[N / 2] == 0.0f);
    tensor_free(&d);
    tensor_free(&db);
}

int main(void) {
    RUN(test_dtype_sizes);
    RUN(test_shape_and_numel);
    RUN(test_reshape_and_rows);
    RUN(test_errors_are_clear);
    RUN(test_contract_accepts_wildcards);
    RUN(test_alloc_is_zeroed);
    RUN(test_bf16_rounding);
    RUN(test_cast_and_copy_cpu);
    RUN(test_gpu_copy_and_cast);
    return test_finish("test_tensor");
}

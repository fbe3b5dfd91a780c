/* boxes.cu: the CUDA twins of src/ops/boxes.c: IoU chunk, encode, decode, clip and the
 * nonempty filter on f32 CUDA tensors (boxes.h has the contracts), all on rt->stream.
 *
 * Every value is computed with the CPU's operations in the CPU's order, written with
 * round-to-nearest intrinsics (__fmul_rn, __fadd_rn, ...) so that nvcc cannot contract a
 * multiply and an add into an FMA: IoU, clip and nonempty are bit-identical to the CPU;
 * encode/decode differ only through logf/expf (CUDA's are within 2 ulp, glibc's within 1). */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"

#include "ops/boxes.h"
#include "ops/ops_internal.h"

#define BOX_THREADS 256

#define BOX_LAUNCH(rt, n, kernel, ...)                                                            \
    do {                                                                                          \
        cudaStream_t st_ = (cudaStream_t)(rt)->stream;                                            \
        kernel<<<cuda_blocks((n), BOX_THREADS), BOX_THREADS, 0, st_>>>(__VA_ARGS__);              \
        KERNEL_CHECK((rt)->debug_sync, st_);                                                      \
    } while (0)

static void expect_gpu(const char *op, const tensor *t) { ops_expect_f32_gpu(op, "boxes", t); }

/* One thread per output element (i, j). */
__global__ static void box_iou_kernel(int64_t n, int M, const float *a, const float *b, float *out) {
    int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int64_t i = e / M, j = e % M;
    out[e] = box_iou_one(a + i * 4, b + j * 4);
}

extern "C" void box_iou_gpu(runtime *rt, const tensor *a, const tensor *b, int b0, int b1, tensor *iou) {
    expect_gpu("box_iou", a);
    box_iou_check("box_iou", a, b, b0, b1, iou);
    int64_t n = (int64_t)a->shape[0] * (b1 - b0);
    if (n == 0) return;
    BOX_LAUNCH(rt, n, box_iou_kernel, n, b1 - b0, (const float *)a->data, (const float *)b->data + (int64_t)b0 * 4,
               (float *)iou->data);
}

/* One thread per box: the CPU's box_encode_cpu, operation for operation. */
__global__ static void box_encode_kernel(int R, box_coder c, const float *s, const float *t, float *d) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R) return;
    const float *a = s + (int64_t)r * 4, *b = t + (int64_t)r * 4;
    float sw = __fsub_rn(a[2], a[0]), sh = __fsub_rn(a[3], a[1]);
    float sx = __fadd_rn(a[0], __fmul_rn(0.5f, sw)), sy = __fadd_rn(a[1], __fmul_rn(0.5f, sh));
    float tw = __fsub_rn(b[2], b[0]), th = __fsub_rn(b[3], b[1]);
    float tx = __fadd_rn(b[0], __fmul_rn(0.5f, tw)), ty = __fadd_rn(b[1], __fmul_rn(0.5f, th));
    float *o = d + (int64_t)r * 4;
    o[0] = __fdiv_rn(__fmul_rn(c.wx, __fsub_rn(tx, sx)), sw);
    o[1] = __fdiv_rn(__fmul_rn(c.wy, __fsub_rn(ty, sy)), sh);
    o[2] = __fmul_rn(c.ww, logf(__fdiv_rn(tw, sw)));
    o[3] = __fmul_rn(c.wh, logf(__fdiv_rn(th, sh)));
}

extern "C" void box_encode_gpu(runtime *rt, const box_coder *c, const tensor *src, const tensor *tgt, tensor *deltas) {
    expect_gpu("box_encode", src);
    box_encode_check("box_encode", src, tgt, deltas);
    int R = src->shape[0];
    if (R == 0) return;
    BOX_LAUNCH(rt, R, box_encode_kernel, R, *c, (const float *)src->data, (const float *)tgt->data,
               (float *)deltas->data);
}

/* One thread per decoded box (r, k): the CPU's box_decode_cpu, operation for operation. */
__global__ static void box_decode_kernel(int64_t n, int K, box_coder c, const float *s, const float *d, float *o) {
    int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    const float *a = s + (e / K) * 4, *q = d + e * 4;
    float w = __fsub_rn(a[2], a[0]), h = __fsub_rn(a[3], a[1]);
    float cx = __fadd_rn(a[0], __fmul_rn(0.5f, w)), cy = __fadd_rn(a[1], __fmul_rn(0.5f, h));
    float dx = __fdiv_rn(q[0], c.wx), dy = __fdiv_rn(q[1], c.wy);
    float dw = __fdiv_rn(q[2], c.ww), dh = __fdiv_rn(q[3], c.wh);
    if (dw > c.scale_clamp) dw = c.scale_clamp;
    if (dh > c.scale_clamp) dh = c.scale_clamp;
    if (c.clamp_below && dw < -c.scale_clamp) dw = -c.scale_clamp;
    if (c.clamp_below && dh < -c.scale_clamp) dh = -c.scale_clamp;
    float px = __fadd_rn(__fmul_rn(dx, w), cx), py = __fadd_rn(__fmul_rn(dy, h), cy);
    float pw = __fmul_rn(expf(dw), w), ph = __fmul_rn(expf(dh), h);
    float *b = o + e * 4;
    b[0] = __fsub_rn(px, __fmul_rn(0.5f, pw));
    b[1] = __fsub_rn(py, __fmul_rn(0.5f, ph));
    b[2] = __fadd_rn(px, __fmul_rn(0.5f, pw));
    b[3] = __fadd_rn(py, __fmul_rn(0.5f, ph));
}

extern "C" void box_decode_gpu(runtime *rt, const box_coder *c, const tensor *src, const tensor *deltas, tensor *out) {
    expect_gpu("box_decode", src);
    box_decode_check("box_decode", src, deltas, out);
    int K = deltas->shape[1] / 4;
    int64_t n = (int64_t)src->shape[0] * K;
    if (n == 0) return;
    BOX_LAUNCH(rt, n, box_decode_kernel, n, K, *c, (const float *)src->data, (const float *)deltas->data,
               (float *)out->data);
}

/* One thread per coordinate: even ones are x (into [0, w]), odd ones y (into [0, h]). */
__global__ static void box_clip_kernel(int64_t n, float h, float w, float *b) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float hi = (i & 1) ? h : w, v = b[i];
    if (v < 0.f) v = 0.f;
    if (v > hi) v = hi;
    b[i] = v;
}

extern "C" void box_clip_gpu(runtime *rt, tensor *boxes, float h, float w) {
    expect_gpu("box_clip", boxes);
    box_clip_check("box_clip", boxes);
    int64_t n = tensor_numel(boxes);
    if (n == 0) return;
    BOX_LAUNCH(rt, n, box_clip_kernel, n, h, w, (float *)boxes->data);
}

__global__ static void box_nonempty_kernel(int R, float thr, const float *b, uint8_t *keep) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R) return;
    const float *p = b + (int64_t)r * 4;
    keep[r] = (__fsub_rn(p[2], p[0]) > thr) && (__fsub_rn(p[3], p[1]) > thr);
}

extern "C" void box_nonempty_gpu(runtime *rt, const tensor *boxes, float thr, tensor *keep) {
    expect_gpu("box_nonempty", boxes);
    box_nonempty_check("box_nonempty", boxes, keep);
    int R = boxes->shape[0];
    if (R == 0) return;
    BOX_LAUNCH(rt, R, box_nonempty_kernel, R, thr, (const float *)boxes->data, (uint8_t *)keep->data);
}

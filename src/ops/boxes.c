/* boxes.c: box IoU, the box coder, clipping and the nonempty filter on the CPU (boxes.h). */
#include "ops/boxes.h"

#include "ops/ops_internal.h"

#include <math.h>

box_coder box_coder_make(float wx, float wy, float ww, float wh) {
    return (box_coder){wx, wy, ww, wh, BOX_SCALE_CLAMP, 0};
}
box_coder box_coder_rpn(void) { return box_coder_make(1, 1, 1, 1); }
box_coder box_coder_roi(void) { return box_coder_make(10, 10, 5, 5); }

/* Stops unless t is f32 [R, 4·K] (K >= 1; K == 1 when one4) on `d`. */
static void expect_boxes(const char *op, const char *what, const tensor *t, int one4) {
    char s[128];
    CHECK(t != NULL, "%s: %s is missing", op, what);
    CHECK(t->dtype == DTYPE_F32 && t->ndim == 2 && (one4 ? t->shape[1] == 4 : t->shape[1] % 4 == 0 && t->shape[1] > 0),
          "%s: %s must be f32 [R,%s], got %s", op, what, one4 ? "4" : "4K", tensor_str(t, s, sizeof s));
}

void box_iou_check(const char *op, const tensor *a, const tensor *b, int b0, int b1, const tensor *iou) {
    expect_boxes(op, "a", a, 1);
    expect_boxes(op, "b", b, 1);
    CHECK(0 <= b0 && b0 <= b1 && b1 <= b->shape[0], "%s: column range [%d, %d) outside b's %d boxes", op, b0, b1,
          b->shape[0]);
    CHECK(iou != NULL, "%s: the output is missing", op);
    tensor_expect(iou, DTYPE_F32, a->device, TSHAPE(a->shape[0], b1 - b0), "box_iou output [N, b1 - b0]");
    CHECK(b->device == a->device, "%s: a and b on different devices", op);
}

void box_iou_cpu(runtime *rt, const tensor *a, const tensor *b, int b0, int b1, tensor *iou) {
    ops_expect_cpu("box_iou_cpu", a);
    box_iou_check("box_iou", a, b, b0, b1, iou);
    int N = a->shape[0], M = b1 - b0;
    const float *pa = tensor_f32(a), *pb = tensor_f32(b) + (int64_t)b0 * 4;
    float *out = tensor_f32(iou);
#pragma omp parallel for num_threads(ops_threads(rt)) schedule(static)
    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++) out[(int64_t)i * M + j] = box_iou_one(pa + (int64_t)i * 4, pb + (int64_t)j * 4);
}

void box_encode_check(const char *op, const tensor *src, const tensor *tgt, const tensor *deltas) {
    expect_boxes(op, "src", src, 1);
    expect_boxes(op, "tgt", tgt, 1);
    CHECK(deltas != NULL, "%s: the output is missing", op);
    tensor_expect(tgt, DTYPE_F32, src->device, src->shape, 2, "box_encode tgt [R,4]");
    tensor_expect(deltas, DTYPE_F32, src->device, src->shape, 2, "box_encode deltas [R,4]");
}

void box_encode_cpu(runtime *rt, const box_coder *c, const tensor *src, const tensor *tgt, tensor *deltas) {
    ops_expect_cpu("box_encode_cpu", src);
    box_encode_check("box_encode", src, tgt, deltas);
    const float *s = tensor_f32(src), *t = tensor_f32(tgt);
    float *d = tensor_f32(deltas);
    int R = src->shape[0];
#pragma omp parallel for num_threads(ops_threads(rt)) schedule(static)
    for (int r = 0; r < R; r++) {
        const float *a = s + (int64_t)r * 4, *b = t + (int64_t)r * 4;
        float sw = a[2] - a[0], sh = a[3] - a[1];
        float sx = a[0] + 0.5f * sw, sy = a[1] + 0.5f * sh;
        float tw = b[2] - b[0], th = b[3] - b[1];
        float tx = b[0] + 0.5f * tw, ty = b[1] + 0.5f * th;
        float *o = d + (int64_t)r * 4;
        o[0] = c->wx * (tx - sx) / sw;
        o[1] = c->wy * (ty - sy) / sh;
        o[2] = c->ww * logf(tw / sw);
        o[3] = c->wh * logf(th / sh);
    }
}

void box_decode_check(const char *op, const tensor *src, const tensor *deltas, const tensor *out) {
    expect_boxes(op, "src", src, 1);
    expect_boxes(op, "deltas", deltas, 0);
    CHECK(out != NULL, "%s: the output is missing", op);
    CHECK(deltas->shape[0] == src->shape[0] && deltas->device == src->device,
          "%s: deltas have %d rows for %d source boxes", op, deltas->shape[0], src->shape[0]);
    tensor_expect(out, DTYPE_F32, src->device, deltas->shape, 2, "box_decode output [R,4K]");
}

void box_decode_cpu(runtime *rt, const box_coder *c, const tensor *src, const tensor *deltas, tensor *out) {
    ops_expect_cpu("box_decode_cpu", src);
    box_decode_check("box_decode", src, deltas, out);
    const float *s = tensor_f32(src), *d = tensor_f32(deltas);
    float *o = tensor_f32(out);
    int R = src->shape[0], K = deltas->shape[1] / 4;
#pragma omp parallel for num_threads(ops_threads(rt)) schedule(static)
    for (int r = 0; r < R; r++) {
        const float *a = s + (int64_t)r * 4;
        float w = a[2] - a[0], h = a[3] - a[1];
        float cx = a[0] + 0.5f * w, cy = a[1] + 0.5f * h;
        for (int k = 0; k < K; k++) {
            const float *e = d + ((int64_t)r * K + k) * 4;
            float dx = e[0] / c->wx, dy = e[1] / c->wy, dw = e[2] / c->ww, dh = e[3] / c->wh;
            /* clamp from above (d2; mmdet also from below), a NaN passes (torch.clamp) */
            if (dw > c->scale_clamp) dw = c->scale_clamp;
            if (dh > c->scale_clamp) dh = c->scale_clamp;
            if (c->clamp_below && dw < -c->scale_clamp) dw = -c->scale_clamp;
            if (c->clamp_below && dh < -c->scale_clamp) dh = -c->scale_clamp;
            float px = dx * w + cx, py = dy * h + cy;
            float pw = expf(dw) * w, ph = expf(dh) * h;
            float *b = o + ((int64_t)r * K + k) * 4;
            b[0] = px - 0.5f * pw;
            b[1] = py - 0.5f * ph;
            b[2] = px + 0.5f * pw;
            b[3] = py + 0.5f * ph;
        }
    }
}

void box_clip_check(const char *op, const tensor *boxes) { expect_boxes(op, "boxes", boxes, 0); }

void box_clip_cpu(runtime *rt, tensor *boxes, float h, float w) {
    ops_expect_cpu("box_clip_cpu", boxes);
    box_clip_check("box_clip", boxes);
    float *b = tensor_f32(boxes);
    int64_t n = tensor_numel(boxes);
#pragma omp parallel for num_threads(ops_threads(rt)) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float hi = (i & 1) ? h : w, v = b[i];
        /* min(max(v, 0), hi) with NaN kept, as torch.clamp */
        if (v < 0.f) v = 0.f;
        if (v > hi) v = hi;
        b[i] = v;
    }
}

void box_nonempty_check(const char *op, const tensor *boxes, const tensor *keep) {
    expect_boxes(op, "boxes", boxes, 1);
    CHECK(keep != NULL, "%s: the output is missing", op);
    tensor_expect(keep, DTYPE_U8, boxes->device, TSHAPE(boxes->shape[0]), "box_nonempty keep [R] u8");
}

void box_nonempty_cpu(runtime *rt, const tensor *boxes, float thr, tensor *keep) {
    ops_expect_cpu("box_nonempty_cpu", boxes);
    box_nonempty_check("box_nonempty", boxes, keep);
    const float *b = tensor_f32(boxes);
    uint8_t *k = tensor_u8(keep);
    int R = boxes->shape[0];
    for (int r = 0; r < R; r++) {
        const float *p = b + (int64_t)r * 4;
        k[r] = (p[2] - p[0] > thr) && (p[3] - p[1] > thr);
    }
}

/* boxes.h: box geometry for the detector: the IoU matrix, the box coder (detectron2's
 * Box2BoxTransform, architecture.md §5.2), clipping to the image and the nonempty filter.
 *
 * Boxes are XYXY f32 (x0, y0, x1, y1) in resized-input pixels with no +1 (DESIGN §3):
 * width = x1 − x0, area = (x1 − x0)·(y1 − y0). Box math is f32 on every path (no f64
 * twin). CUDA twins in kernels/boxes.cu have the same contracts on CUDA tensors, queued on
 * rt->stream; they are defined in CUDA builds only (MRC_CUDA).
 *
 * Exactness: the CPU and GPU compute each value with the same f32 operations in the same
 * order (the GPU with explicit round-to-nearest intrinsics, so nvcc cannot fuse a multiply
 * and an add), so the IoU, clip and nonempty results are bit-identical on both devices.
 * encode/decode use logf/expf, whose last bit may differ between glibc and CUDA (≤ 2 ulp). */
#ifndef MRC_OPS_BOXES_H
#define MRC_OPS_BOXES_H

#include "core/runtime.h"

#include <math.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__CUDACC__)
#define BOX_HD __host__ __device__
#else
#define BOX_HD
#endif

/* ln(1000/16): the clamp of dw and dh from above in decode (d2 _DEFAULT_SCALE_CLAMP), as
 * the f32 value torch's clamp uses. */
#define BOX_SCALE_CLAMP 4.135166556742356f

/* Box2BoxTransform weights (wx, wy, ww, wh) and the dw/dh clamp: d2 clamps dw and dh
 * from above only; mmdet's DeltaXYWHBBoxCoder clamps them to [-clamp, +clamp]
 * (clamp_below = 1; architecture.md §5.2, §13). */
typedef struct box_coder {
    float wx, wy, ww, wh;
    float scale_clamp;
    int clamp_below;
} box_coder;

/* RPN: (1, 1, 1, 1); the box head (first cascade stage too): (10, 10, 5, 5); the other
 * cascade stages are (20, 20, 10, 10) and (30, 30, 15, 15) (build those with box_coder_make). */
box_coder box_coder_make(float wx, float wy, float ww, float wh);
box_coder box_coder_rpn(void);
box_coder box_coder_roi(void);

/* The IoU of two boxes (pairwise_iou of detectron2 / box_iou of torchvision):
 *   iw = max(min(a.x1, b.x1) − max(a.x0, b.x0), 0), likewise ih; inter = iw·ih;
 *   iou = inter > 0 ? inter / ((area_a + area_b) − inter) : 0.
 * Touching or disjoint boxes (inter = 0) give exactly 0. A NaN coordinate gives 0 or NaN,
 * which no threshold test (iou > t) passes. */
static inline BOX_HD float box_iou_one(const float *a, const float *b) {
#if defined(__CUDA_ARCH__)
    float iw = __fsub_rn(fminf(a[2], b[2]), fmaxf(a[0], b[0]));
    float ih = __fsub_rn(fminf(a[3], b[3]), fmaxf(a[1], b[1]));
    iw = iw > 0.f ? iw : 0.f;
    ih = ih > 0.f ? ih : 0.f;
    float inter = __fmul_rn(iw, ih);
    float area_a = __fmul_rn(__fsub_rn(a[2], a[0]), __fsub_rn(a[3], a[1]));
    float area_b = __fmul_rn(__fsub_rn(b[2], b[0]), __fsub_rn(b[3], b[1]));
    return inter > 0.f ? __fdiv_rn(inter, __fsub_rn(__fadd_rn(area_a, area_b), inter)) : 0.f;
#else
    float iw = fminf(a[2], b[2]) - fmaxf(a[0], b[0]);
    float ih = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    iw = iw > 0.f ? iw : 0.f;
    ih = ih > 0.f ? ih : 0.f;
    float inter = iw * ih;
    float area_a = (a[2] - a[0]) * (a[3] - a[1]);
    float area_b = (b[2] - b[0]) * (b[3] - b[1]);
    return inter > 0.f ? inter / ((area_a + area_b) - inter) : 0.f;
#endif
}

/* box_iou: a [N,4], b [M,4] f32 -> iou [N, b1 − b0] f32 (written), one chunk of columns:
 *   iou[i, j] = IoU(a[i], b[b0 + j]) for 0 <= b0 <= b1 <= M.
 * The chunk keeps GT × anchors (hundreds × 270k) streamable: the caller walks the anchors
 * in ranges [b0, b1) and never holds more than N·(b1 − b0) values (DESIGN §5). */
void box_iou_cpu(runtime *rt, const tensor *a, const tensor *b, int b0, int b1, tensor *iou);

/* box_encode: src [R,4], tgt [R,4] -> deltas [R,4] (written), d2 get_deltas:
 *   w_s = x1 − x0, c_s = x0 + 0.5·w_s (likewise h, y and the target);
 *   dx = (wx·(c_tx − c_sx)) / w_s, dy likewise, dw = ww·ln(w_t / w_s), dh likewise.
 * A source box with zero width gives inf/NaN (d2 asserts; the caller's boxes are never
 * empty: anchors and nonempty proposals). */
void box_encode_cpu(runtime *rt, const box_coder *c, const tensor *src, const tensor *tgt, tensor *deltas);

/* box_decode: src [R,4], deltas [R,4K] (K boxes per source: class-specific regression)
 * -> out [R,4K] (written), d2 apply_deltas in f32:
 *   dx = delta_x / wx, dy = delta_y / wy, dw = min(delta_w / ww, clamp), dh likewise
 *   (a NaN stays NaN); c = dx·w_s + c_s, w = expf(dw)·w_s;
 *   out = (c_x − 0.5·w, c_y − 0.5·h, c_x + 0.5·w, c_y + 0.5·h). */
void box_decode_cpu(runtime *rt, const box_coder *c, const tensor *src, const tensor *deltas, tensor *out);

/* box_clip: boxes [R,4K] clipped IN PLACE to the image: x into [0, w], y into [0, h]
 * (d2 Boxes.clip; a NaN coordinate stays NaN, as torch.clamp). */
void box_clip_cpu(runtime *rt, tensor *boxes, float h, float w);

/* box_nonempty: boxes [R,4] -> keep [R] u8 (written): 1 when x1 − x0 > thr and y1 − y0 > thr
 * (d2 Boxes.nonempty; RPN MIN_SIZE = 0 drops only empty boxes; NaN boxes give 0). */
void box_nonempty_cpu(runtime *rt, const tensor *boxes, float thr, tensor *keep);

/* CUDA twins (kernels/boxes.cu): same contracts on CUDA tensors, on rt->stream. */
void box_iou_gpu(runtime *rt, const tensor *a, const tensor *b, int b0, int b1, tensor *iou);
void box_encode_gpu(runtime *rt, const box_coder *c, const tensor *src, const tensor *tgt, tensor *deltas);
void box_decode_gpu(runtime *rt, const box_coder *c, const tensor *src, const tensor *deltas, tensor *out);
void box_clip_gpu(runtime *rt, tensor *boxes, float h, float w);
void box_nonempty_gpu(runtime *rt, const tensor *boxes, float thr, tensor *keep);

/* Shape contracts shared by the CPU kernels and the twins (stop with one line naming op). */
void box_iou_check(const char *op, const tensor *a, const tensor *b, int b0, int b1, const tensor *iou);
void box_encode_check(const char *op, const tensor *src, const tensor *tgt, const tensor *deltas);
void box_decode_check(const char *op, const tensor *src, const tensor *deltas, const tensor *out);
void box_clip_check(const char *op, const tensor *boxes);
void box_nonempty_check(const char *op, const tensor *boxes, const tensor *keep);

#ifdef __cplusplus
}
#endif
#endif

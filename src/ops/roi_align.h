/* roi_align.h: RoIAlign (torchvision's roi_align semantics), on one feature map and over
 * the FPN levels P2..P5 with detectron2's level rule (architecture.md §6.2, §14).
 *
 * Layouts (DESIGN §3): features NHWC [N, H, W, C]; rois [R, 5] = (batch index, x0, y0, x1,
 * y1) in input-image pixels, in the features' dtype (the batch index an integral value in
 * [0, N)); output [R, ph, pw, C]. f32 or f64 on the CPU; CUDA twins (f32) in
 * kernels/roi_align.cu. The forwards WRITE y; the backwards ACCUMULATE into the feature
 * gradients (+=). The RoIs get no gradient (proposals are constants, DESIGN §5).
 *
 * One RoI, one map of H×W, scale s = spatial_scale:
 *   x0' = x0·s − o, x1' = x1·s − o (likewise y), o = 0.5 when aligned, else 0;
 *   roi_w = x1' − x0' (aligned: as is, even negative; legacy: max(roi_w, 1)); likewise h;
 *   bin_w = roi_w / pw; gx = sampling_ratio > 0 ? sampling_ratio : ceil(roi_w / pw);
 *   samples x = x0' + j·bin_w + (ix + 0.5)·bin_w / gx, ix < gx (likewise y);
 *   a sample with y < −1, y > H, x < −1 or x > W reads 0; otherwise negative coordinates
 *   become 0, and a coordinate whose floor is >= H − 1 (W − 1) becomes that last row
 *   (column), which then gets all the weight; the rest is bilinear between the 4 taps;
 *   y[r, i, j, c] = Σ samples / max(gy·gx, 1) (out-of-range samples count too).
 * Backward: dy·w_tap / count scattered to the 4 taps of every sample.
 *
 * Determinism (STYLE 13): the CPU backward gives each thread a slice of channels and adds
 * the RoIs' contributions in RoI order, so it is bit-identical for any thread count. The
 * GPU backward scatters with atomicAdd: its summation order, and so its last bits, vary
 * from run to run. */
#ifndef MRC_OPS_ROI_ALIGN_H
#define MRC_OPS_ROI_ALIGN_H

#include "core/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct roi_align_args {
    int ph, pw;         /* output bins (7×7 box head, 14×14 mask head) */
    int sampling_ratio; /* samples per bin along each axis; 0: adaptive ceil(roi / bins) */
    int aligned;        /* 1: the −0.5 pixel offset, no minimum size (ROIAlignV2); 0: legacy */
} roi_align_args;

/* The FPN levels the pooler reads: P2..P5, strides 4, 8, 16, 32 (scale 1/2^k). */
#define ROI_FPN_MIN_LEVEL 2
#define ROI_FPN_MAX_LEVEL 5
#define ROI_FPN_LEVELS 4
/* detectron2's rule: k = floor(4 + log2(sqrt(w·h) / 224 + 1e-8)) clamped to [2, 5], with
 * w = x1 − x0, h = y1 − y0 in image pixels, computed in float (as for d2's f32 boxes).
 * An empty or inverted box (w·h <= 0, NaN) goes to level 2. */
int roi_fpn_level(float x0, float y0, float x1, float y1);

/* Single level: x [N,H,W,C], rois [R,5], y [R,ph,pw,C]; dx like x (accumulated). */
void roi_align_forward_cpu(runtime *rt, const roi_align_args *a, double spatial_scale, const tensor *x,
                           const tensor *rois, tensor *y);
void roi_align_backward_cpu(runtime *rt, const roi_align_args *a, double spatial_scale, const tensor *x,
                            const tensor *rois, const tensor *dy, tensor *dx);

/* Multi-level: feats[k − 2] = P_k [N, H_k, W_k, C] (same N, C, dtype and device; the sizes
 * need not halve exactly), each RoI pooled from its level roi_fpn_level with scale 1/2^k;
 * y [R,ph,pw,C] in the input RoI order. dfeats[k − 2] like feats[k − 2], accumulated; an
 * entry may be NULL (that level's gradient is not wanted; its RoIs add nothing). */
void roi_align_fpn_forward_cpu(runtime *rt, const roi_align_args *a, const tensor *const feats[ROI_FPN_LEVELS],
                               const tensor *rois, tensor *y);
void roi_align_fpn_backward_cpu(runtime *rt, const roi_align_args *a, const tensor *const feats[ROI_FPN_LEVELS],
                                const tensor *rois, const tensor *dy, tensor *const dfeats[ROI_FPN_LEVELS]);

/* Autograd wrappers: y from the step arena; the tape sends y's gradient to the features
 * (not to the RoIs). rois must live until the backward (a step tensor or persistent). */
tensor *op_roi_align(runtime *rt, tensor *x, const tensor *rois, const roi_align_args *a, double spatial_scale);
tensor *op_roi_align_fpn(runtime *rt, tensor *const feats[ROI_FPN_LEVELS], const tensor *rois,
                         const roi_align_args *a);

/* CUDA twins (kernels/roi_align.cu): the same contracts on f32 CUDA tensors, queued on
 * rt->stream; defined in CUDA builds only (MRC_CUDA). The batch indices are not checked on
 * the GPU (that would need a copy back): an RoI whose index is outside [0, N) pools zeros
 * and sends no gradient there, where the CPU stops with an error. The backwards use
 * atomicAdd (not deterministic, see above). */
void roi_align_forward_gpu(runtime *rt, const roi_align_args *a, double spatial_scale, const tensor *x,
                           const tensor *rois, tensor *y);
void roi_align_backward_gpu(runtime *rt, const roi_align_args *a, double spatial_scale, const tensor *x,
                            const tensor *rois, const tensor *dy, tensor *dx);
void roi_align_fpn_forward_gpu(runtime *rt, const roi_align_args *a, const tensor *const feats[ROI_FPN_LEVELS],
                               const tensor *rois, tensor *y);
void roi_align_fpn_backward_gpu(runtime *rt, const roi_align_args *a, const tensor *const feats[ROI_FPN_LEVELS],
                                const tensor *rois, const tensor *dy, tensor *const dfeats[ROI_FPN_LEVELS]);

/* The shape contract shared by the CPU kernels and the twins: the levels (nlev = 1 or 4),
 * rois [R,5] of the features' dtype and device, y (or dy) [R,ph,pw,C] when not NULL.
 * Stops with one line naming op. Returns R. */
int roi_align_check(const char *op, const roi_align_args *a, const tensor *const *feats, int nlev,
                    const tensor *rois, const tensor *y);

#ifdef __cplusplus
}
#endif
#endif

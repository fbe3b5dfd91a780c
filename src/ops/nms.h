/* nms.h: non-maximum suppression (plain and batched by an integer key) and the top k of
 * each segment of a score array (RPN pre-NMS top-k per level and image).
 *
 * Order. Every ranking here is by score descending, equal scores by the lower input
 * index first (a stable sort). torchvision 0.14's CPU nms sorts with
 * scores.sort(stable=True, descending=True), so its ties go the same way; its CUDA nms
 * and torch.topk make no promise about ties, so this is the one definition both of our
 * devices follow. A NaN score ranks above every number (torch's sort order); -0 equals 0.
 *
 * NMS (torchvision nms, architecture.md §5.5): visit the boxes in that order; keep a box
 * unless a kept box overlaps it with IoU > thr (strict: IoU == thr is kept). The IoU is
 * box_iou_one (boxes.h) in f32, compared with thr in double, as torchvision's CPU kernel
 * does (its float IoU against the double threshold); with thr = 0.3, say, the float IoU
 * 0.3f = 0.300000012 is suppressed, which a float compare would keep.
 * Batched NMS (torchvision batched_nms): boxes with different keys never suppress each
 * other; the result is the union of per-key NMS, again sorted by score (ties: index).
 *
 * Outputs: keep [n] i32, the kept input indices in that order, then −1 up to n; the
 * function returns the count. CUDA twins in kernels/nms.cu (CUDA builds only, MRC_CUDA)
 * return the same indices; they synchronise rt->stream once or twice to read the key
 * groups' sizes and the count (documented host syncs). */
#ifndef MRC_OPS_NMS_H
#define MRC_OPS_NMS_H

#include "core/runtime.h"

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__CUDACC__)
#define NMS_HD __host__ __device__
#else
#define NMS_HD
#endif

/* An order-preserving u32 key of a score: a < b as floats <=> key(a) < key(b); NaN maps
 * to the top, −0 to +0's key. */
static inline NMS_HD uint32_t nms_score_key(float s) {
    uint32_t u;
    if (s != s) return 0xFFFFFFFFu;
    if (s == 0.f) s = 0.f;
#if defined(__CUDA_ARCH__)
    u = __float_as_uint(s);
#else
    memcpy(&u, &s, sizeof u);
#endif
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* The rank key of element i: sorting these ascending gives score descending, then index
 * ascending (keys are unique, so any sort gives that one order). The index is the low
 * 32 bits. */
static inline NMS_HD uint64_t nms_rank_key(float s, int32_t i) {
    return ((uint64_t)(~nms_score_key(s)) << 32) | (uint32_t)i;
}

/* nms: boxes [n,4] f32, scores [n] f32, 0 <= thr; keep [n] i32 (written). Returns the
 * number kept. */
int nms_cpu(runtime *rt, const tensor *boxes, const tensor *scores, double thr, tensor *keep);
/* batched_nms: as nms with keys [n] i32 (level id, class id; any values), or keys NULL
 * (one group: plain nms). Works key group by key group: memory O(n) plus, on the GPU,
 * the suppression bitmask of the largest group, n_g·ceil(n_g/64) words of 64 bits. */
int batched_nms_cpu(runtime *rt, const tensor *boxes, const tensor *scores, const tensor *keys, double thr,
                    tensor *keep);

/* topk_segments: scores [n] f32 split into S segments [off[s], off[s+1]) (host array of
 * S + 1 non-decreasing offsets, off[0] = 0, off[S] = n) -> idx [S, k] i32 (written): row s
 * holds the indices (into scores, not the segment) of the segment's min(k, len) best
 * elements in rank order (above), then −1. */
void topk_segments_cpu(runtime *rt, const tensor *scores, const int32_t *off, int S, int k, tensor *idx);

/* CUDA twins (kernels/nms.cu): same contracts, CUDA tensors (off stays a host array). */
int nms_gpu(runtime *rt, const tensor *boxes, const tensor *scores, double thr, tensor *keep);
int batched_nms_gpu(runtime *rt, const tensor *boxes, const tensor *scores, const tensor *keys, double thr,
                    tensor *keep);
void topk_segments_gpu(runtime *rt, const tensor *scores, const int32_t *off, int S, int k, tensor *idx);

/* Shape contracts shared by both devices. */
void nms_check(const char *op, const tensor *boxes, const tensor *scores, const tensor *keys, double thr,
               const tensor *keep);
void topk_segments_check(const char *op, const tensor *scores, const int32_t *off, int S, int k, const tensor *idx);

#ifdef __cplusplus
}
#endif
#endif

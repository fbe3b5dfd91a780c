/* anchors.h: the RPN anchors of detectron2's DefaultAnchorGenerator for the FPN levels
 * P2..P6 (reference/architecture.md §4).
 *
 * Level l (0..4 for P2..P6): stride 4·2^l, one size 32·2^l (sqrt of the area), aspect
 * ratios h/w in the order [0.5, 1, 2] (ANCHOR_PER_LOC = 3 per location).
 * Cell anchor for size s and ratio r: w = sqrt(s²/r), h = r·w, centred at 0 with no
 * rounding: (−w/2, −h/2, w/2, h/2), computed in double and stored as f32 (d2 builds them
 * from Python floats, then torch.tensor -> float32). Offset 0: the anchor at feature cell
 * (y, x) is the cell anchor shifted by (x·stride, y·stride) (an f32 add, as d2's
 * shifts + base_anchors), over the WHOLE padded feature map.
 *
 * Feature map sizes from the padded canvas H×W (what a ResNet-FPN produces): every
 * stride-2 step of the backbone (7×7 s2 p3 stem conv, 3×3 s2 p1 max pool, the s2 conv of
 * res3..res5) maps n to ceil(n/2), so P2 = ceil(H/4), P3..P5 halve with ceil, and P6 is
 * P5 through the k1 s2 max pool, ceil(P5/2). For H a multiple of 32 (the FPN needs it)
 * P2..P5 are exactly H/4..H/32. 800×1344: 200×336, 100×168, 50×84, 25×42, 13×21, i.e.
 * 268,569 anchors.
 *
 * Flattening: level by level P2 -> P6; inside a level row-major (y, x); inside a location
 * the 3 ratios. So anchor index = off[l] + (y·W_l + x)·3 + r. Boxes are XYXY f32. */
#ifndef MRC_MODEL_ANCHORS_H
#define MRC_MODEL_ANCHORS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ANCHOR_LEVELS 5
#define ANCHOR_PER_LOC 3

/* The layout of all anchors for one canvas. */
typedef struct anchor_layout {
    int canvas_h, canvas_w;
    int h[ANCHOR_LEVELS], w[ANCHOR_LEVELS]; /* feature map size of P2..P6 */
    int stride[ANCHOR_LEVELS];              /* 4, 8, 16, 32, 64 */
    float size[ANCHOR_LEVELS];              /* 32, 64, 128, 256, 512 */
    int64_t count[ANCHOR_LEVELS];           /* h·w·3 */
    int64_t off[ANCHOR_LEVELS + 1];         /* first anchor of each level; off[5] = A */
} anchor_layout;

/* The aspect ratios (h/w), in flattening order. */
extern const float anchor_ratios[ANCHOR_PER_LOC];

/* The layout for a padded canvas H×W (both > 0; stops the program otherwise). */
anchor_layout anchor_layout_make(int H, int W);
/* The total number of anchors A = off[ANCHOR_LEVELS]. */
int64_t anchor_total(const anchor_layout *lay);
/* The cell anchor of size s and ratio r (centred at 0), as stored (f32). */
void anchor_cell(float size, float ratio, float out[4]);
/* All anchors: out [A, 4] XYXY f32 (written), A = anchor_total(lay). */
void anchors_fill_cpu(const anchor_layout *lay, float *out);

#ifdef __cplusplus
}
#endif
#endif

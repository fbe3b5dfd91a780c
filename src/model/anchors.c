/* anchors.c: the FPN anchor layout and the anchor boxes (anchors.h). */
#include "model/anchors.h"

#include "core/check.h"

#include <math.h>

const float anchor_ratios[ANCHOR_PER_LOC] = {0.5f, 1.0f, 2.0f};

static int ceil_half(int n) { return (n + 1) / 2; }

anchor_layout anchor_layout_make(int H, int W) {
    CHECK(H > 0 && W > 0, "anchors: canvas %dx%d is empty", H, W);
    anchor_layout lay = {0};
    lay.canvas_h = H;
    lay.canvas_w = W;
    /* stem conv s2, then max pool s2: ceil(ceil(n/2)/2) = ceil(n/4) */
    int h = ceil_half(ceil_half(H)), w = ceil_half(ceil_half(W));
    lay.off[0] = 0;
    for (int l = 0; l < ANCHOR_LEVELS; l++) {
        if (l > 0) { /* res3..res5 s2 convs; P6 = k1 s2 max pool of P5 */
            h = ceil_half(h);
            w = ceil_half(w);
        }
        lay.h[l] = h;
        lay.w[l] = w;
        lay.stride[l] = 4 << l;
        lay.size[l] = (float)(32 << l);
        lay.count[l] = (int64_t)h * w * ANCHOR_PER_LOC;
        lay.off[l + 1] = lay.off[l] + lay.count[l];
    }
    return lay;
}

int64_t anchor_total(const anchor_layout *lay) { return lay->off[ANCHOR_LEVELS]; }

void anchor_cell(float size, float ratio, float out[4]) {
    /* d2 generate_cell_anchors: Python floats (double), then one rounding to f32 */
    double area = (double)size * (double)size;
    double w = sqrt(area / (double)ratio);
    double h = (double)ratio * w;
    out[0] = (float)(-w / 2.0);
    out[1] = (float)(-h / 2.0);
    out[2] = (float)(w / 2.0);
    out[3] = (float)(h / 2.0);
}

void anchors_fill_cpu(const anchor_layout *lay, float *out) {
    for (int l = 0; l < ANCHOR_LEVELS; l++) {
        float cell[ANCHOR_PER_LOC][4];
        for (int r = 0; r < ANCHOR_PER_LOC; r++) anchor_cell(lay->size[l], anchor_ratios[r], cell[r]);
        float *o = out + lay->off[l] * 4;
        for (int y = 0; y < lay->h[l]; y++) {
            float sy = (float)(y * lay->stride[l]);
            for (int x = 0; x < lay->w[l]; x++) {
                float sx = (float)(x * lay->stride[l]);
                for (int r = 0; r < ANCHOR_PER_LOC; r++, o += 4) {
                    o[0] = sx + cell[r][0];
                    o[1] = sy + cell[r][1];
                    o[2] = sx + cell[r][2];
                    o[3] = sy + cell[r][3];
                }
            }
        }
    }
}

/* transform.c: detectron2's training transforms (transform.h).
 *
 * The resize is Pillow 9.4's resampler (libImaging/Resample.c, ImagingResample with the
 * BILINEAR filter on an 8-bit image), re-derived from its documented behaviour and source:
 *
 *   - Each axis is resampled separately: first horizontally (every source row to the new
 *     width), then vertically; a pass whose size does not change is skipped, and the
 *     intermediate image is u8 (rounded and clipped like the output). detectron2 passes no
 *     crop box, so Pillow's box is the whole image (its offsets are 0 below).
 *   - For an axis of in -> out pixels: scale = in / out, filterscale = max(scale, 1),
 *     support = 1 * filterscale (the triangle filter's radius, widened when downscaling so
 *     that every source pixel contributes: antialiasing). Output pixel o has its centre at
 *     (o + 0.5) * scale in source coordinates; its taps are the source pixels
 *     lo = (int)(centre - support + 0.5) (at least 0) up to hi = (int)(centre + support +
 *     0.5) (at most in), exclusive; tap i weighs tri((i - centre + 0.5) / filterscale) with
 *     tri(x) = max(0, 1 - |x|), and the weights are divided by their sum. Pillow computes
 *     all this in float64 in exactly this order; we do the same operations in the same
 *     order, so the doubles are identical (the build has no FMA contraction: -std=c11
 *     turns GCC's fp-contract off, and x86-64 without -march has no FMA anyway).
 *   - Each weight becomes a 22-bit fixed-point integer, (int)(0.5 + w * 2^22) (Pillow's
 *     PRECISION_BITS = 32 - 8 - 2); an output value is (2^21 + sum_i pixel_i * k_i) >> 22,
 *     clipped to 0..255. The sums are exact integers, so their order does not matter.
 *
 * The tables (first tap and tap count per output pixel, then ksize = 2 * ceil(support) + 1
 * integer weights per output pixel, zero past the count) are computed once per call. */
#include "data/transform.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

void resize_shape(int h, int w, int short_side, int max_size, int *nh, int *nw) {
    double size = short_side, scale = size / (h < w ? h : w);
    double fh, fw;
    if (h < w) {
        fh = size;
        fw = scale * w;
    } else {
        fh = scale * h;
        fw = size;
    }
    double longest = fh > fw ? fh : fw;
    if (longest > max_size) {
        scale = max_size / longest;
        fh = fh * scale;
        fw = fw * scale;
    }
    *nh = (int)(fh + 0.5);
    *nw = (int)(fw + 0.5);
}

/* ---- Pillow's bilinear resampler ---- */

#define RS_BITS 22 /* Pillow's PRECISION_BITS */

/* One axis: in -> out pixels. */
typedef struct rs_axis {
    int in, out;
    double scale, filterscale, support;
    int ksize; /* weights stored per output pixel */
} rs_axis;

static rs_axis rs_axis_make(int in, int out) {
    rs_axis a = {.in = in, .out = out};
    a.scale = (double)in / out;
    a.filterscale = a.scale < 1.0 ? 1.0 : a.scale;
    a.support = 1.0 * a.filterscale; /* the triangle's radius is 1 */
    a.ksize = (int)ceil(a.support) * 2 + 1;
    return a;
}

static double rs_triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* bounds[2o] = first tap, bounds[2o + 1] = tap count; k[o * ksize + i] = fixed-point weights. */
static void rs_tables(const rs_axis *a, int32_t *bounds, int32_t *k) {
    double ss = 1.0 / a->filterscale;
    for (int o = 0; o < a->out; o++) {
        double center = (o + 0.5) * a->scale;
        int lo = (int)(center - a->support + 0.5);
        int hi = (int)(center + a->support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > a->in) hi = a->in;
        int n = hi - lo;
        assert(n >= 1 && n <= a->ksize);
        /* The sum first, then each weight again (the same doubles) divided by it: Pillow
         * normalises in place in a float64 buffer; this needs none. */
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += rs_triangle((i + lo - center + 0.5) * ss);
        int32_t *ko = k + (size_t)o * a->ksize;
        for (int i = 0; i < n; i++) {
            double wgt = rs_triangle((i + lo - center + 0.5) * ss);
            if (sum != 0.0) wgt /= sum;
            ko[i] = (int32_t)(0.5 + wgt * (1 << RS_BITS)); /* weights are >= 0 */
        }
        for (int i = n; i < a->ksize; i++) ko[i] = 0;
        bounds[2 * o] = lo;
        bounds[2 * o + 1] = n;
    }
}

static inline uint8_t rs_clip(int32_t acc) {
    if (acc < 0) return 0;
    acc >>= RS_BITS;
    return acc > 255 ? 255 : (uint8_t)acc;
}

/* Each of the h rows of src to the new width. */
static void rs_horizontal(const uint8_t *src, int w, int h, uint8_t *dst, int nw, const int32_t *bounds,
                          const int32_t *k, int ksize) {
    for (int r = 0; r < h; r++) {
        const uint8_t *s = src + (size_t)r * w * 3;
        uint8_t *d = dst + (size_t)r * nw * 3;
        for (int o = 0; o < nw; o++) {
            const uint8_t *p = s + (size_t)bounds[2 * o] * 3;
            const int32_t *ko = k + (size_t)o * ksize;
            int n = bounds[2 * o + 1];
            int32_t a0 = 1 << (RS_BITS - 1), a1 = a0, a2 = a0;
            for (int i = 0; i < n; i++) {
                a0 += p[3 * i + 0] * ko[i];
                a1 += p[3 * i + 1] * ko[i];
                a2 += p[3 * i + 2] * ko[i];
            }
            d[3 * o + 0] = rs_clip(a0);
            d[3 * o + 1] = rs_clip(a1);
            d[3 * o + 2] = rs_clip(a2);
        }
    }
}

/* src is an image w pixels wide, resampled to nh rows; acc is w * 3 int32 of scratch. Row
 * by row, so that the inner loops run along a row. */
static void rs_vertical(const uint8_t *src, int w, uint8_t *dst, int nh, const int32_t *bounds,
                        const int32_t *k, int ksize, int32_t *acc) {
    size_t row = (size_t)w * 3;
    for (int o = 0; o < nh; o++) {
        const int32_t *ko = k + (size_t)o * ksize;
        int lo = bounds[2 * o], n = bounds[2 * o + 1];
        for (size_t x = 0; x < row; x++) acc[x] = 1 << (RS_BITS - 1);
        for (int i = 0; i < n; i++) {
            const uint8_t *s = src + (size_t)(lo + i) * row;
            int32_t c = ko[i];
            for (size_t x = 0; x < row; x++) acc[x] += s[x] * c;
        }
        uint8_t *d = dst + (size_t)o * row;
        for (size_t x = 0; x < row; x++) d[x] = rs_clip(acc[x]);
    }
}

/* The scratch layout: x tables, y tables, the accumulator row, the intermediate image. */
typedef struct rs_layout {
    size_t bx, kx, by, ky, acc, tmp, total;
} rs_layout;

static size_t rs_align(size_t n) { return (n + 63) & ~(size_t)63; }

static rs_layout rs_layout_make(int h, int w, int nh, int nw) {
    rs_axis ax = rs_axis_make(w, nw), ay = rs_axis_make(h, nh);
    rs_layout l;
    l.bx = 0;
    l.kx = l.bx + rs_align((size_t)nw * 2 * sizeof(int32_t));
    l.by = l.kx + rs_align((size_t)nw * ax.ksize * sizeof(int32_t));
    l.ky = l.by + rs_align((size_t)nh * 2 * sizeof(int32_t));
    l.acc = l.ky + rs_align((size_t)nh * ay.ksize * sizeof(int32_t));
    l.tmp = l.acc + rs_align((size_t)nw * 3 * sizeof(int32_t));
    l.total = l.tmp + rs_align((size_t)nw * h * 3);
    return l;
}

size_t image_resize_work_bytes(int h, int w, int nh, int nw) { return rs_layout_make(h, w, nh, nw).total; }

void image_resize_bilinear_work(const uint8_t *src, int h, int w, uint8_t *dst, int nh, int nw, void *work) {
    assert(h >= 1 && w >= 1 && nh >= 1 && nw >= 1);
    if (nh == h && nw == w) {
        memcpy(dst, src, (size_t)h * w * 3);
        return;
    }
    rs_layout l = rs_layout_make(h, w, nh, nw);
    unsigned char *base = work;
    int32_t *bx = (int32_t *)(base + l.bx), *kx = (int32_t *)(base + l.kx);
    int32_t *by = (int32_t *)(base + l.by), *ky = (int32_t *)(base + l.ky);
    int32_t *acc = (int32_t *)(base + l.acc);
    uint8_t *tmp = base + l.tmp;
    rs_axis ax = rs_axis_make(w, nw), ay = rs_axis_make(h, nh);
    if (nh == h) { /* horizontal only */
        rs_tables(&ax, bx, kx);
        rs_horizontal(src, w, h, dst, nw, bx, kx, ax.ksize);
        return;
    }
    rs_tables(&ay, by, ky);
    if (nw == w) { /* vertical only */
        rs_vertical(src, w, dst, nh, by, ky, ay.ksize, acc);
        return;
    }
    /* Both. Pillow's horizontal pass covers only the source rows the vertical taps reach;
     * without a crop box that is every row: output row 0 starts at tap 0 (its centre,
     * scale / 2, is less than the support away from 0) and the last one ends at h. */
    assert(by[0] == 0 && by[2 * (nh - 1)] + by[2 * (nh - 1) + 1] == h);
    rs_tables(&ax, bx, kx);
    rs_horizontal(src, w, h, tmp, nw, bx, kx, ax.ksize);
    rs_vertical(tmp, nw, dst, nh, by, ky, ay.ksize, acc);
}

void image_resize_bilinear(const uint8_t *src, int h, int w, uint8_t *dst, int nh, int nw) {
    size_t n = image_resize_work_bytes(h, w, nh, nw);
    void *work = malloc(n);
    CHECK(work != NULL, "image_resize_bilinear: out of memory (%zu bytes of scratch)", n);
    image_resize_bilinear_work(src, h, w, dst, nh, nw, work);
    free(work);
}

void image_flip_h(uint8_t *img, int h, int w) {
    for (int y = 0; y < h; y++) {
        uint8_t *row = img + (size_t)y * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[3 * a + c];
                row[3 * a + c] = row[3 * b + c];
                row[3 * b + c] = t;
            }
    }
}

/* ---- instance geometry ---- */

void geom_xform_init(geom_xform *t, int h, int w, int nh, int nw, int flip) {
    t->sx = nw * 1.0 / w;
    t->sy = nh * 1.0 / h;
    t->nw = nw;
    t->nh = nh;
    t->flip = flip;
}

void geom_point(const geom_xform *t, double x, double y, double *ox, double *oy) {
    x = x * t->sx;
    if (t->flip) x = t->nw - x;
    *ox = x;
    *oy = y * t->sy;
}

static double clamp_d(double v, double hi) { return v < 0 ? 0 : v > hi ? hi : v; }

int inst_geom_apply(const geom_xform *t, const float bbox_xywh[4], const float *verts, const lvis_poly *polys,
                    int n_poly, float *out_verts, int64_t *out_poly_n, inst_geom *g) {
    /* XYWH -> XYXY in float32, as detectron2's BoxMode.convert does on a list. */
    float x0 = bbox_xywh[0], y0 = bbox_xywh[1];
    float x1 = bbox_xywh[0] + bbox_xywh[2], y1 = bbox_xywh[1] + bbox_xywh[3];
    /* The transform is monotone in each axis, so the corners' min/max come from two of them. */
    double ax, ay, bx, by;
    geom_point(t, x0, y0, &ax, &ay);
    geom_point(t, x1, y1, &bx, &by);
    g->box[0] = (float)clamp_d(ax < bx ? ax : bx, t->nw);
    g->box[1] = (float)clamp_d(ay < by ? ay : by, t->nh);
    g->box[2] = (float)clamp_d(ax < bx ? bx : ax, t->nw);
    g->box[3] = (float)clamp_d(ay < by ? by : ay, t->nh);
    g->n_poly = 0;
    g->n_vert = 0;
    /* Boxes.nonempty(threshold=1e-5): float32 widths compared with 1e-5 as float32. */
    if (!(g->box[2] - g->box[0] > 1e-5f) || !(g->box[3] - g->box[1] > 1e-5f)) return 0;
    int64_t w = 0;
    int kept = 0;
    for (int p = 0; p < n_poly; p++) {
        int64_t n = polys[p].n;
        if (n < 6 || n % 2) continue;
        const float *v = verts + polys[p].vert;
        for (int64_t i = 0; i < n; i += 2) {
            double ox, oy;
            geom_point(t, v[i], v[i + 1], &ox, &oy);
            out_verts[w + i] = (float)ox;
            out_verts[w + i + 1] = (float)oy;
        }
        out_poly_n[kept++] = n;
        w += n;
    }
    if (n_poly > 0 && kept == 0) return 0;
    g->n_poly = kept;
    g->n_vert = w;
    return 1;
}

/* ---- normalisation ---- */

void image_normalize_pad(const uint8_t *img, int h, int w, int bgr, const float mean[3], const float std[3],
                         float *canvas, int canvas_h, int canvas_w) {
    assert(h <= canvas_h && w <= canvas_w);
    int from[3] = {bgr ? 2 : 0, 1, bgr ? 0 : 2};
    for (int y = 0; y < canvas_h; y++) {
        float *row = canvas + (size_t)y * canvas_w * 3;
        int x = 0;
        if (y < h) {
            const uint8_t *s = img + (size_t)y * w * 3;
            for (; x < w; x++)
                for (int c = 0; c < 3; c++) row[3 * x + c] = ((float)s[3 * x + from[c]] - mean[c]) / std[c];
        }
        memset(row + 3 * (size_t)x, 0, (size_t)(canvas_w - x) * 3 * sizeof(float));
    }
}

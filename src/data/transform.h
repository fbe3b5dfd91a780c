/* transform.h: detectron2's training transforms on the CPU (reference/architecture.md §0,
 * §1, §9.1): the resize to a short side (ResizeShortestEdge), PIL's bilinear resize of the
 * pixels, the horizontal flip, the same geometry applied to an instance's box and polygons
 * (with detectron2's clipping and empty-instance filter), and the normalisation into a
 * zero-padded float canvas.
 *
 * Images are uint8 RGB, HWC interleaved: h rows of w * 3 bytes, no row padding. (A BGR
 * image works the same everywhere except image_normalize_pad, which is told the order.)
 *
 * Exactness: image_resize_bilinear reproduces Pillow 9.4's Image.resize(..., BILINEAR) on
 * an RGB image bit for bit (transform.c says how); resize_shape and the instance geometry
 * follow detectron2's arithmetic (float64, with the float32 roundings it does), so boxes
 * come out as the float32 values detectron2 would hold. Everything here is single-threaded
 * and allocation-free except image_resize_bilinear (which allocates its scratch; the
 * loader calls image_resize_bilinear_work with a buffer it keeps): the loader runs one
 * image per thread. */
#ifndef MRC_TRANSFORM_H
#define MRC_TRANSFORM_H

#include "data/lvis.h" /* lvis_poly */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* detectron2 ResizeShortestEdge.get_output_shape, in float64 as there: scale = s / min(h, w);
 * the short side becomes s and the long one scale * long; if that exceeds max_size both are
 * multiplied by max_size / long; then each is rounded as floor(v + 0.5). */
void resize_shape(int h, int w, int short_side, int max_size, int *nh, int *nw);

/* Bilinear resize of an RGB u8 image [h, w, 3] to [nh, nw, 3], equal to Pillow 9.4's
 * Image.resize((nw, nh), Image.BILINEAR), which detectron2's ResizeTransform calls: a
 * triangle filter whose support widens by in/out when downscaling (antialiasing), 22-bit
 * fixed-point coefficients, a horizontal pass then a vertical pass, rounded and clipped to
 * u8 after each. All sizes >= 1; src and dst must not overlap. */
void image_resize_bilinear(const uint8_t *src, int h, int w, uint8_t *dst, int nh, int nw);
/* The same with caller-provided scratch of image_resize_work_bytes(h, w, nh, nw) bytes
 * (coefficient tables and the intermediate image: about nw * h * 3 bytes plus a few KiB
 * for the sizes used in training), aligned for int32_t (as malloc's is). */
size_t image_resize_work_bytes(int h, int w, int nh, int nw);
void image_resize_bilinear_work(const uint8_t *src, int h, int w, uint8_t *dst, int nh, int nw, void *work);

/* Mirrors an RGB u8 image [h, w, 3] left-right in place: pixel x goes to w - 1 - x. */
void image_flip_h(uint8_t *img, int h, int w);

/* The geometry of one image's transform: a resize from (h, w) to (nh, nw), then optionally a
 * horizontal flip at the new width. */
typedef struct geom_xform {
    double sx, sy; /* nw / w, nh / h (detectron2 ResizeTransform scales x and y by these) */
    int nw, nh;    /* the resized image: the flip width and the clip bounds */
    int flip;      /* 1: x -> nw - x after the resize (detectron2 HFlipTransform) */
} geom_xform;

void geom_xform_init(geom_xform *t, int h, int w, int nh, int nw, int flip);
/* One point through t, in float64 (detectron2 apply_coords: x * sx, then nw - x if flipped). */
void geom_point(const geom_xform *t, double x, double y, double *ox, double *oy);

/* One instance after the transform. */
typedef struct inst_geom {
    float box[4];   /* x0, y0, x1, y1 in the resized (flipped) image, clipped to [0, nw] x [0, nh] */
    int n_poly;     /* polygons written (0 for a box-only instance) */
    int64_t n_vert; /* coordinates written to the pool (2 per point) */
} inst_geom;

/* Transforms one instance: its box (LVIS x, y, w, h in original pixels) and its n_poly
 * polygons (polys[i].n coordinates x, y, ... starting at verts + polys[i].vert).
 *
 * The box, as detectron2's transform_instance_annotations: x1 = x + w and y1 = y + h in
 * float32 (BoxMode.convert on a list goes through a float32 tensor), then the four corners
 * through geom_point in float64, their min/max, clipped to [0, nw] x [0, nh], stored as
 * float32. Polygon vertices go through geom_point (not clipped, as detectron2) and are
 * written to out_verts one polygon after another; out_poly_n[k] receives the coordinate
 * count of the k-th polygon written. A polygon with an odd count or fewer than 3 points is
 * not written (detectron2 would reject it; lvis.h's strict read never keeps one).
 *
 * Returns 1 if the instance is kept, 0 if it must be dropped: box width or height <= 1e-5
 * in float32 after clipping (detectron2 filter_empty_instances), or it had polygons and
 * none was written (an empty mask). out_verts must hold the sum of polys[i].n, out_poly_n
 * n_poly entries; on 0 their contents are unspecified and g says nothing was written. */
int inst_geom_apply(const geom_xform *t, const float bbox_xywh[4], const float *verts, const lvis_poly *polys,
                    int n_poly, float *out_verts, int64_t *out_poly_n, inst_geom *g);

/* Writes one image into a float NHWC canvas slot [canvas_h, canvas_w, 3]:
 * (pixel - mean[c]) / std[c] over the image's h x w area (float32 arithmetic, as
 * detectron2's preprocess_image), zeros elsewhere (the padding is zero after the
 * normalisation, at the bottom and right). Output channel c comes from input channel c, or
 * from 2 - c when bgr = 1 (channel 0 is then B, as detectron2's BGR input format); mean
 * and std are in the output order, e.g. detectron2's BGR mean {103.530, 116.280, 123.675}
 * and std {1, 1, 1}. Requires h <= canvas_h and w <= canvas_w. */
void image_normalize_pad(const uint8_t *img, int h, int w, int bgr, const float mean[3], const float std[3],
                         float *canvas, int canvas_h, int canvas_w);

#ifdef __cplusplus
}
#endif
#endif

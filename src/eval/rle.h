/* rle.h: COCO run-length encoded masks (reference/lvis_eval.md §8), bit-exact with the
 * official cocoapi maskApi.c: encode/decode, the compressed string form, area, bounding
 * box, IoU, merge (union), and polygon -> RLE with the COCO rasterizer's exact semantics.
 * The detector's mask targets reuse the rasterizer.
 *
 * Layout: a mask of height h and width w is flattened column-major (pixel (y, x) is index
 * x * h + y); counts alternate starting with a run of 0s (cnts[0] may be 0) and sum to
 * h * w. */
#ifndef MRC_RLE_H
#define MRC_RLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rle {
    int h, w;
    int64_t m;        /* number of counts */
    uint32_t *cnts;   /* [m], malloc'd and owned (rle_free) */
} rle;

void rle_free(rle *r); /* frees cnts, zeroes *r */

/* Encodes a column-major 0/1 mask [w][h] (any non-zero byte counts as 1). 0, or -1 (no memory). */
int rle_encode(rle *r, const uint8_t *mask, int h, int w);
/* Decodes into a column-major mask of h * w bytes (0/1). */
void rle_decode(const rle *r, uint8_t *mask);

/* The compressed string (§8.2) of r into out; returns the length it needs without the
 * NUL. Like snprintf: when cap > 0, out is always NUL-terminated, holding a prefix when the
 * string does not fit (out may be NULL when cap is 0). The string may contain '\\' (see
 * rle_json_escape). */
size_t rle_to_string(const rle *r, char *out, size_t cap);
/* Parses a compressed string s[0..n) for an h x w mask (§8.3), in 64-bit arithmetic. 0, or
 * -1 with a one-line reason in why (a character outside '0'..'o', a value that does not
 * end, a value longer than 12 characters, counts that do not sum to h * w, a negative
 * size) and r zeroed. */
int rle_from_string(rle *r, const char *s, size_t n, int h, int w, char *why, size_t whyn);
/* From uncompressed counts (the JSON list form), copied; -1 with a one-line reason when
 * they do not sum to h * w. */
int rle_from_counts(rle *r, const uint32_t *cnts, int64_t m, int h, int w, char *why, size_t whyn);
/* JSON-escapes a compressed string (only '\\' needs it): returns the escaped length; out
 * as rle_to_string. */
size_t rle_json_escape(const char *s, size_t n, char *out, size_t cap);

uint32_t rle_area(const rle *r);            /* §8.6: sum of the odd counts, unsigned 32-bit */
void rle_bbox(const rle *r, double bb[4]);  /* §8.7: [x, y, w, h], [0,0,0,0] when empty */

/* Box IoU (§7.1): boxes [x, y, w, h], no +1, detection d against ground truth g. */
double bbox_iou(const double d[4], const double g[4]);
/* Mask IoU (§7.2) with both boxes given (rle_bbox): 0 when the boxes do not overlap, -1
 * when the sizes differ, else inter / union counted on the runs. */
double rle_iou(const rle *d, const double bb_d[4], const rle *g, const double bb_g[4]);

/* Union of n same-sized RLEs (§8.5): the canonical encoding of the pixelwise OR; n = 1 is
 * a copy; differing sizes (or n = 0) give an empty 0 x 0 RLE. 0 or -1 (no memory). */
int rle_merge(rle *out, const rle *in, int n);
/* One polygon of k points (xy = x0, y0, x1, y1, ...; k >= 1) rasterised as COCO's
 * rleFrPoly (§8.8, doubles in, exact); k = 0 gives an empty h x w mask. 0, or -1 (no
 * memory, or a coordinate x with |5x + 0.5| >= 2^28 or NaN, where the official's int
 * arithmetic is undefined). */
int rle_from_polygon(rle *out, const double *xy, int k, int h, int w);
/* The union of n polygon parts (part i: n_coords[i] numbers at xy + offset[i]; an odd
 * count drops its last number): COCO's frPyObjects + merge, the GT mask of a multi-part
 * LVIS object (§8.9); n = 0 gives an empty h x w mask. A first part of exactly 4 numbers
 * is rasterised like any other: refusing it (§8.9) is the caller's job. */
int rle_from_polygons(rle *out, const double *xy, const int64_t *offset, const int64_t *n_coords, int n, int h, int w);

#ifdef __cplusplus
}
#endif
#endif

/* postprocess.c: inference post-processing on the CPU (postprocess.h): per-class NMS of the
 * box head's outputs, the rescale to the original image, the mask paste and the LVIS
 * results writer. */
#include "model/postprocess.h"

#include "core/check.h"
#include "ops/nms.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

det_params det_params_lvis(void) {
    return (det_params){.coder = box_coder_roi(), .score_thresh = 1e-4f, .nms_thresh = 0.5, .topk = 300};
}

/* ---- detections_from_head --------------------------------------------------------------- */

#define DET_DECODE_CHUNK 64 /* RoIs decoded at once in the first pass */

/* The heap of rank keys (ascending key = score descending, then candidate index). */
static void heap_sift_down(uint64_t *h, int64_t n, int64_t i) {
    uint64_t v = h[i];
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
}

static void heap_build(uint64_t *h, int64_t n) {
    for (int64_t i = n / 2 - 1; i >= 0; i--) heap_sift_down(h, n, i);
}

static uint64_t heap_pop(uint64_t *h, int64_t *n) {
    uint64_t top = h[0];
    h[0] = h[--*n];
    if (*n > 0) heap_sift_down(h, *n, 0);
    return top;
}

/* The inputs as CPU tensor views (no copies). */
typedef struct det_in {
    tensor proposals, scores, deltas;
    int R, K, D; /* D: deltas per RoI, 4 or 4K */
} det_in;

/* The decoded, clipped box of class k of RoI r (the same box_decode_cpu / box_clip_cpu
 * arithmetic as the first pass, so bit-identical to it). */
static void decode_one(runtime *rt, const box_coder *coder, const det_in *in, int r, int k, float img_h, float img_w,
                       float out[4]) {
    int kd = in->D == 4 ? 0 : k;
    tensor src = tensor_rows(&in->proposals, r, 1);
    tensor d = tensor_view(tensor_f32(&in->deltas) + ((int64_t)r * in->D + 4 * kd), DTYPE_F32, DEVICE_CPU,
                           TSHAPE(1, 4));
    tensor o = tensor_view(out, DTYPE_F32, DEVICE_CPU, TSHAPE(1, 4));
    box_decode_cpu(rt, coder, &src, &d, &o);
    box_clip_cpu(rt, &o, img_h, img_w);
}

/* Pass 1: decode chunk by chunk, drop RoIs with a non-finite box or score, put the rank
 * key of every candidate over the threshold in keys. Returns the number of candidates. */
static int64_t collect_candidates(runtime *rt, const box_coder *coder, const det_in *in, float thr, uint64_t *keys,
                                  int *dropped) {
    int R = in->R, K = in->K, D = in->D;
    const float *s = tensor_f32(&in->scores);
    int chunk = R < DET_DECODE_CHUNK ? R : DET_DECODE_CHUNK;
    float *dec = arena_alloc(&rt->host, (size_t)(chunk ? chunk : 1) * D * sizeof *dec);
    int64_t n = 0;
    for (int r0 = 0; r0 < R; r0 += chunk) {
        int m = R - r0 < chunk ? R - r0 : chunk;
        tensor src = tensor_rows(&in->proposals, r0, m), d = tensor_rows(&in->deltas, r0, m);
        tensor o = tensor_view(dec, DTYPE_F32, DEVICE_CPU, TSHAPE(m, D));
        box_decode_cpu(rt, coder, &src, &d, &o);
        for (int i = 0; i < m; i++) {
            int r = r0 + i, ok = 1;
            for (int j = 0; j < D && ok; j++) ok = isfinite(dec[(int64_t)i * D + j]);
            for (int k = 0; k < K && ok; k++) ok = isfinite(s[(int64_t)r * K + k]);
            if (!ok) {
                (*dropped)++;
                continue;
            }
            for (int k = 0; k < K; k++) {
                float v = s[(int64_t)r * K + k];
                if (v > thr) keys[n++] = nms_rank_key(v, (int32_t)(r * K + k));
            }
        }
    }
    return n;
}

int detections_from_head(runtime *rt, const det_params *p, const float *proposals, const float *scores,
                         const float *deltas, int R, int K, int agnostic, float img_h, float img_w, det_output *out) {
    CHECK(p && out && (R == 0 || (proposals && scores && deltas)), "detections_from_head: missing an argument");
    CHECK(R >= 0 && K >= 1 && p->topk >= 1 && p->nms_thresh >= 0,
          "detections_from_head: need R >= 0, K >= 1, topk >= 1, nms_thresh >= 0; got R %d, K %d, topk %d, %g", R, K,
          p->topk, p->nms_thresh);
    CHECK((int64_t)R * K <= INT32_MAX, "detections_from_head: R·K = %lld pairs exceed the 32-bit candidate index",
          (long long)R * K);
    int D = agnostic ? 4 : 4 * K, topk = p->topk;
    det_in in = {tensor_view((void *)proposals, DTYPE_F32, DEVICE_CPU, TSHAPE(R, 4)),
                 tensor_view((void *)scores, DTYPE_F32, DEVICE_CPU, TSHAPE(R, K)),
                 tensor_view((void *)deltas, DTYPE_F32, DEVICE_CPU, TSHAPE(R, D)), R, K, D};
    out->n = 0, out->dropped_rois = 0;
    arena_mark mark = arena_get_mark(&rt->host);
    uint64_t *keys = arena_alloc(&rt->host, (size_t)((int64_t)R * K + 1) * sizeof *keys);
    int64_t n = collect_candidates(rt, &p->coder, &in, p->score_thresh, keys, &out->dropped_rois);
    /* Per-class lists of kept detections: head[k] -> a kept row -> next[row] -> ... */
    int32_t *head = arena_alloc(&rt->host, (size_t)K * sizeof *head);
    int32_t *next = arena_alloc(&rt->host, (size_t)topk * sizeof *next);
    for (int k = 0; k < K; k++) head[k] = -1;
    heap_build(keys, n);
    int count = 0;
    while (count < topk && n > 0) {
        uint32_t flat = (uint32_t)heap_pop(keys, &n);
        int r = (int)(flat / (uint32_t)K), k = (int)(flat % (uint32_t)K);
        float b[4];
        decode_one(rt, &p->coder, &in, r, k, img_h, img_w, b);
        int suppressed = 0;
        for (int j = head[k]; j >= 0 && !suppressed; j = next[j])
            suppressed = (double)box_iou_one(out->boxes + (int64_t)j * 4, b) > p->nms_thresh;
        if (suppressed) continue;
        memcpy(out->boxes + (int64_t)count * 4, b, sizeof b);
        out->scores[count] = scores[flat];
        out->classes[count] = k;
        out->rois[count] = r;
        next[count] = head[k];
        head[k] = count;
        count++;
    }
    arena_release(&rt->host, mark);
    out->n = count;
    return count;
}

/* ---- detections_rescale ----------------------------------------------------------------- */

int detections_rescale(runtime *rt, float *boxes, float *scores, int32_t *classes, int32_t *rois, int n, int in_h,
                       int in_w, int out_h, int out_w) {
    CHECK(n >= 0 && in_h > 0 && in_w > 0 && out_h > 0 && out_w > 0,
          "detections_rescale: need n >= 0 and positive sizes, got n %d, in %dx%d, out %dx%d", n, in_h, in_w, out_h,
          out_w);
    if (n == 0) return 0;
    float sx = (float)((double)out_w / in_w), sy = (float)((double)out_h / in_h);
    for (int i = 0; i < n; i++) {
        float *b = boxes + (int64_t)i * 4;
        b[0] *= sx, b[1] *= sy, b[2] *= sx, b[3] *= sy;
    }
    tensor bt = tensor_view(boxes, DTYPE_F32, DEVICE_CPU, TSHAPE(n, 4));
    box_clip_cpu(rt, &bt, (float)out_h, (float)out_w);
    arena_mark mark = arena_get_mark(&rt->host);
    tensor keep = tensor_view(arena_alloc(&rt->host, (size_t)n), DTYPE_U8, DEVICE_CPU, TSHAPE(n));
    box_nonempty_cpu(rt, &bt, 0.f, &keep);
    const uint8_t *kp = tensor_u8(&keep);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!kp[i]) continue;
        if (m != i) {
            memmove(boxes + (int64_t)m * 4, boxes + (int64_t)i * 4, 4 * sizeof *boxes);
            if (scores) scores[m] = scores[i];
            if (classes) classes[m] = classes[i];
            if (rois) rois[m] = rois[i];
        }
        m++;
    }
    arena_release(&rt->host, mark);
    return m;
}

/* ---- mask paste ------------------------------------------------------------------------- */

/* One axis of the sampling grid at pixel p: the cell below (i0), the weights toward it (lo)
 * and toward i0 + 1 (hi), and whether each cell is inside 0..M-1 (zero padding). */
typedef struct paste_axis {
    int i0;
    float lo, hi;
    int in0, in1;
} paste_axis;

static paste_axis paste_axis_at(int p, float a0, float a1, int M) {
    float g = (((float)p + 0.5f) - a0) / (a1 - a0) * 2.f - 1.f; /* d2's img_x: f32 torch ops */
    float half = (float)M / 2.f;                               /* grid_sample's scaling_factor */
    float c = (g + 1.f) * half - 0.5f;                         /* unnormalize, align_corners=False */
    float f = floorf(c);
    paste_axis ax;
    ax.hi = c - f;       /* torch: w (x) / n (y) */
    ax.lo = 1.f - ax.hi; /* torch: e (x) / s (y) */
    /* the float tests match torch's int tests of floor(c) and floor(c) + 1 (NaN: outside) */
    ax.in0 = f >= 0.f && f <= (float)(M - 1);
    ax.in1 = f >= -1.f && f <= (float)(M - 2);
    ax.i0 = ax.in0 || ax.in1 ? (int)f : 0;
    return ax;
}

/* The bilinear sample at (x axis ax, y axis ay), in torch's order of operations. */
static float paste_sample(const float *P, int M, const paste_axis *ax, const paste_axis *ay) {
    float nw = ay->lo * ax->lo, ne = ay->lo * ax->hi, sw = ay->hi * ax->lo, se = ay->hi * ax->hi;
    int64_t r0 = (int64_t)ay->i0 * M, r1 = r0 + M;
    float v_nw = ay->in0 && ax->in0 ? P[r0 + ax->i0] : 0.f;
    float v_ne = ay->in0 && ax->in1 ? P[r0 + ax->i0 + 1] : 0.f;
    float v_sw = ay->in1 && ax->in0 ? P[r1 + ax->i0] : 0.f;
    float v_se = ay->in1 && ax->in1 ? P[r1 + ax->i0 + 1] : 0.f;
    return v_nw * nw + v_ne * ne + v_sw * sw + v_se * se;
}

/* d2's window [x0, x1) × [y0, y1) of pixels to sample; 0 when nothing can be set. */
static int paste_window(const float box[4], int H, int W, int win[4]) {
    for (int i = 0; i < 4; i++)
        if (!isfinite(box[i])) return 0;
    if (!(box[2] > box[0] && box[3] > box[1]) || H <= 0 || W <= 0) return 0;
    float lo[2] = {floorf(box[0]) - 1.f, floorf(box[1]) - 1.f};
    float hi[2] = {ceilf(box[2]) + 1.f, ceilf(box[3]) + 1.f};
    float lim[2] = {(float)W, (float)H};
    for (int a = 0; a < 2; a++) {
        lo[a] = lo[a] < 0.f ? 0.f : lo[a] > lim[a] ? lim[a] : lo[a];
        hi[a] = hi[a] > lim[a] ? lim[a] : hi[a] < 0.f ? 0.f : hi[a];
    }
    win[0] = (int)lo[0], win[1] = (int)lo[1], win[2] = (int)hi[0], win[3] = (int)hi[1];
    return win[2] > win[0] && win[3] > win[1];
}

/* Samples the window into soft (f32) or bin (u8 >= 0.5), whichever is given; both
 * outputs are zeroed first. */
static void paste_any(const float *prob, int M, const float box[4], int H, int W, float *soft, uint8_t *bin) {
    CHECK(prob && box && M >= 1 && H >= 0 && W >= 0, "mask_paste: need a map, a box, M >= 1, H, W >= 0 (M %d, %dx%d)",
          M, H, W);
    size_t n = (size_t)H * (size_t)W;
    if (soft) memset(soft, 0, n * sizeof *soft);
    if (bin) memset(bin, 0, n);
    int win[4];
    if (!paste_window(box, H, W, win)) return;
    paste_axis *axs = malloc((size_t)(win[2] - win[0]) * sizeof *axs);
    CHECK(axs, "mask_paste: out of memory for %d columns", win[2] - win[0]);
    for (int x = win[0]; x < win[2]; x++) axs[x - win[0]] = paste_axis_at(x, box[0], box[2], M);
    for (int y = win[1]; y < win[3]; y++) {
        paste_axis ay = paste_axis_at(y, box[1], box[3], M);
        for (int x = win[0]; x < win[2]; x++) {
            float v = paste_sample(prob, M, &axs[x - win[0]], &ay);
            if (soft) soft[(int64_t)y * W + x] = v;
            if (bin) bin[(int64_t)y * W + x] = v >= 0.5f;
        }
    }
    free(axs);
}

void mask_paste(const float *prob, int M, const float box[4], int H, int W, uint8_t *out) {
    paste_any(prob, M, box, H, W, NULL, out);
}

void mask_paste_soft(const float *prob, int M, const float box[4], int H, int W, float *out) {
    paste_any(prob, M, box, H, W, out, NULL);
}

/* ---- results writer --------------------------------------------------------------------- */

struct results_writer {
    FILE *f;
    char path[1024], tmp[1040];
    char err[1400];
    int64_t n;
    char *str, *esc; /* RLE string and its JSON escape, grown as needed */
    size_t str_cap, esc_cap;
};

static void results_fail(results_writer *w, const char *fmt, const char *what) {
    if (!w->err[0]) snprintf(w->err, sizeof w->err, fmt, w->tmp, what);
}

/* The shortest %.Ng (N >= 9) that strtod reads back as v: d2's values (an f32 as a double,
 * written by Python's repr) come back bit for bit. */
static void fmt_double(char *out, size_t n, double v) {
    for (int p = 9; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, v);
        if (strtod(out, NULL) == v) return;
    }
}

results_writer *results_open(const char *path, char *err, size_t errn) {
    results_writer *w = calloc(1, sizeof *w);
    if (!w) {
        if (errn) snprintf(err, errn, "%s: out of memory", path);
        return NULL;
    }
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    w->f = fopen(w->tmp, "wb");
    if (!w->f || fputs("[", w->f) == EOF) {
        if (errn) snprintf(err, errn, "%s: cannot create the results file: %s", w->tmp, strerror(errno));
        if (w->f) fclose(w->f), remove(w->tmp);
        free(w);
        return NULL;
    }
    return w;
}

static int grow(char **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *q = realloc(*p, c);
    if (!q) return -1;
    *p = q, *cap = c;
    return 0;
}

/* The RLE's compressed string, JSON-escaped, in w->esc; -1 on no memory. */
static int results_rle_string(results_writer *w, const rle *m) {
    size_t len = rle_to_string(m, NULL, 0);
    if (grow(&w->str, &w->str_cap, len + 1)) return -1;
    rle_to_string(m, w->str, w->str_cap);
    size_t elen = rle_json_escape(w->str, len, NULL, 0);
    if (grow(&w->esc, &w->esc_cap, elen + 1)) return -1;
    rle_json_escape(w->str, len, w->esc, w->esc_cap);
    return 0;
}

int results_add(results_writer *w, int64_t image_id, int category_id, const float box_xywh[4], float score,
                const rle *mask) {
    if (w->err[0]) return -1;
    int finite = isfinite(score);
    for (int i = 0; i < 4 && box_xywh; i++) finite = finite && isfinite(box_xywh[i]);
    if (!box_xywh && !mask) {
        snprintf(w->err, sizeof w->err, "%s: record %lld: neither a box nor a mask", w->tmp, (long long)w->n);
        return -1;
    }
    if (!finite) {
        snprintf(w->err, sizeof w->err, "%s: record %lld (image %lld, category %d): non-finite bbox or score",
                 w->tmp, (long long)w->n, (long long)image_id, category_id);
        return -1;
    }
    char num[5][32];
    for (int i = 0; i < 4 && box_xywh; i++) fmt_double(num[i], sizeof num[i], box_xywh[i]);
    fmt_double(num[4], sizeof num[4], score);
    int rc = fprintf(w->f, "%s{\"image_id\":%lld,\"category_id\":%d,\"score\":%s", w->n ? ",\n" : "\n",
                     (long long)image_id, category_id, num[4]);
    if (rc >= 0 && box_xywh) rc = fprintf(w->f, ",\"bbox\":[%s,%s,%s,%s]", num[0], num[1], num[2], num[3]);
    if (rc >= 0 && mask) {
        if (results_rle_string(w, mask)) return results_fail(w, "%s: %s", "out of memory for an RLE string"), -1;
        rc = fprintf(w->f, ",\"segmentation\":{\"size\":[%d,%d],\"counts\":\"%s\"}", mask->h, mask->w, w->esc);
    }
    if (rc >= 0) rc = fputc('}', w->f);
    if (rc < 0) return results_fail(w, "%s: write failed: %s", strerror(errno)), -1;
    w->n++;
    return 0;
}

const char *results_error(const results_writer *w) { return w->err; }
int64_t results_count(const results_writer *w) { return w->n; }

int results_close(results_writer *w, char *err, size_t errn) {
    if (!w) return -1;
    if (!w->err[0] && (fputs("\n]\n", w->f) == EOF || fflush(w->f) || ferror(w->f) || fsync(fileno(w->f))))
        results_fail(w, "%s: write failed: %s", strerror(errno));
    if (fclose(w->f)) results_fail(w, "%s: close failed: %s", strerror(errno));
    if (!w->err[0] && rename(w->tmp, w->path))
        snprintf(w->err, sizeof w->err, "%.1000s: cannot rename to the results file: %s", w->path, strerror(errno));
    int rc = w->err[0] ? -1 : 0;
    if (rc) {
        remove(w->tmp);
        if (errn) snprintf(err, errn, "%s", w->err);
    }
    free(w->str), free(w->esc), free(w);
    return rc;
}

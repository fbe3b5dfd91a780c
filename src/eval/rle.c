/* rle.c: COCO run-length encoded masks (see rle.h; the rules are reference/lvis_eval.md
 * §7 and §8, and every function here is written from that text). Counts are unsigned
 * 32-bit as in the official library; sums and positions are carried in 64 bits, so a mask
 * up to 2^32 - 1 pixels is exact. The hot paths are rle_iou (run lists walked together,
 * no decode, no allocation) and rle_from_polygon (one scratch block sized from the traced
 * point count, one exact allocation for the result). */
#include "eval/rle.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Scale of the polygon rasterizer's grid (§8.8: 1/5 pixel). */
#define RLE_UPSAMPLE 5
/* Scaled polygon coordinates are kept within +-2^28 so that the C int arithmetic of §8.8
 * (differences, slopes, the traced points) cannot overflow, and the integer form of the
 * crossing test (rle_crossings) stays exact. */
#define RLE_COORD_MAX 268435456.0
/* A decoded value takes at most 12 characters: 60 bits and the sign extension above them
 * stay inside a 64-bit integer. A real string needs at most 7 (a delta of +-2^32). */
#define RLE_MAX_GROUPS 12

static int rle_why(char *why, size_t whyn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rle_why(char *why, size_t whyn, const char *fmt, ...) {
    if (why && whyn) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whyn, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void rle_free(rle *r) {
    if (!r) return;
    free(r->cnts);
    memset(r, 0, sizeof *r);
}

/* Sets *r to h x w with m counts copied from cnts (NULL: left uninitialised). 0 or -1. */
static int rle_init(rle *r, int h, int w, int64_t m, const uint32_t *cnts) {
    r->h = h;
    r->w = w;
    r->m = m;
    r->cnts = NULL;
    if (m <= 0) {
        r->m = 0;
        return 0;
    }
    r->cnts = malloc((size_t)m * sizeof *r->cnts);
    if (!r->cnts) {
        r->m = 0;
        return -1;
    }
    if (cnts) memcpy(r->cnts, cnts, (size_t)m * sizeof *cnts);
    return 0;
}

/* ---- mask <-> runs (§8.4) ------------------------------------------------------------ */

int rle_encode(rle *r, const uint8_t *mask, int h, int w) {
    int64_t n = (int64_t)h * w;
    if (h < 0 || w < 0) n = 0;
    /* Two passes (count the value changes, then fill) so that the counts are allocated at
     * their exact size rather than at h * w + 1. */
    int64_t m = 1;
    uint8_t prev = 0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t v = mask[i] != 0;
        m += v != prev;
        prev = v;
    }
    if (rle_init(r, h, w, m, NULL)) return -1;
    int64_t k = 0;
    uint32_t run = 0;
    prev = 0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t v = mask[i] != 0;
        if (v != prev) {
            r->cnts[k++] = run;
            run = 0;
            prev = v;
        }
        run++;
    }
    r->cnts[k] = run; /* the last run is always emitted (an empty mask is [h*w]) */
    return 0;
}

void rle_decode(const rle *r, uint8_t *mask) {
    int64_t n = (int64_t)r->h * r->w, p = 0;
    uint8_t v = 0;
    for (int64_t j = 0; j < r->m && p < n; j++, v ^= 1) {
        int64_t c = r->cnts[j];
        if (c > n - p) c = n - p; /* counts that overrun h * w (never from this file) */
        memset(mask + p, v, (size_t)c);
        p += c;
    }
    if (p < n) memset(mask + p, 0, (size_t)(n - p));
}

/* ---- the compressed string (§8.2, §8.3) ---------------------------------------------- */

size_t rle_to_string(const rle *r, char *out, size_t cap) {
    size_t len = 0;
    for (int64_t i = 0; i < r->m; i++) {
        /* the delta starts at index 3, not 2 (the official quirk) */
        int64_t x = (int64_t)r->cnts[i] - (i >= 3 ? (int64_t)r->cnts[i - 2] : 0);
        int more = 1;
        while (more) {
            int c = (int)(x & 0x1f);
            x >>= 5; /* arithmetic: a negative delta stays negative */
            more = (c & 0x10) ? x != -1 : x != 0;
            if (more) c |= 0x20;
            if (len + 1 < cap) out[len] = (char)(c + 48);
            len++;
        }
    }
    if (cap) out[len < cap ? len : cap - 1] = 0;
    return len;
}

int rle_from_string(rle *r, const char *s, size_t n, int h, int w, char *why, size_t whyn) {
    memset(r, 0, sizeof *r);
    if (h < 0 || w < 0) return rle_why(why, whyn, "negative mask size %d x %d", h, w);
    /* First pass: validate the characters and count the values (a value ends at a
     * character without the continue bit 0x20). */
    int64_t m = 0, groups = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < '0' || ch > 'o')
            return rle_why(why, whyn, "character 0x%02x at offset %zu is outside '0'..'o'", ch, i);
        groups++;
        if (!((ch - 48) & 0x20)) {
            m++;
            groups = 0;
        } else if (groups >= RLE_MAX_GROUPS) {
            return rle_why(why, whyn, "value %lld at offset %zu is longer than %d characters", (long long)m, i,
                           RLE_MAX_GROUPS);
        }
    }
    if (groups) return rle_why(why, whyn, "the last value does not end (its last character has the continue bit 0x20)");
    if (rle_init(r, h, w, m, NULL)) return rle_why(why, whyn, "out of memory for %lld counts", (long long)m);
    uint64_t sum = 0;
    size_t p = 0;
    for (int64_t j = 0; j < m; j++) {
        uint64_t x = 0;
        int k = 0, c;
        do {
            c = s[p++] - 48;
            x |= (uint64_t)(c & 0x1f) << (5 * k);
            k++;
        } while (c & 0x20);
        if (c & 0x10) x |= ~(uint64_t)0 << (5 * k); /* sign extension */
        if (j >= 3) x += r->cnts[j - 2];
        r->cnts[j] = (uint32_t)x; /* stored as unsigned 32-bit, as the official does */
        sum += r->cnts[j];
    }
    if (sum != (uint64_t)((int64_t)h * w)) {
        rle_free(r);
        return rle_why(why, whyn, "counts sum to %llu, not h * w = %lld (%d x %d)", (unsigned long long)sum,
                       (long long)h * w, h, w);
    }
    return 0;
}

int rle_from_counts(rle *r, const uint32_t *cnts, int64_t m, int h, int w, char *why, size_t whyn) {
    memset(r, 0, sizeof *r);
    if (h < 0 || w < 0) return rle_why(why, whyn, "negative mask size %d x %d", h, w);
    if (m < 0) return rle_why(why, whyn, "negative number of counts %lld", (long long)m);
    uint64_t sum = 0;
    for (int64_t j = 0; j < m; j++) sum += cnts[j];
    if (sum != (uint64_t)((int64_t)h * w))
        return rle_why(why, whyn, "counts sum to %llu, not h * w = %lld (%d x %d)", (unsigned long long)sum,
                       (long long)h * w, h, w);
    if (rle_init(r, h, w, m, cnts)) return rle_why(why, whyn, "out of memory for %lld counts", (long long)m);
    return 0;
}

size_t rle_json_escape(const char *s, size_t n, char *out, size_t cap) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\') {
            if (len + 1 < cap) out[len] = '\\';
            len++;
        }
        if (len + 1 < cap) out[len] = s[i];
        len++;
    }
    if (cap) out[len < cap ? len : cap - 1] = 0;
    return len;
}

/* ---- area, box, IoU (§7, §8.6, §8.7) ------------------------------------------------- */

uint32_t rle_area(const rle *r) {
    uint32_t a = 0;
    for (int64_t j = 1; j < r->m; j += 2) a += r->cnts[j];
    return a;
}

void rle_bbox(const rle *r, double bb[4]) {
    int64_t m = r->m / 2 * 2; /* an odd last count is a run of 0s: it adds nothing */
    bb[0] = bb[1] = bb[2] = bb[3] = 0;
    if (m == 0 || r->h <= 0 || r->w <= 0) return;
    /* Unsigned 32-bit like the official, so odd inputs (a zero count at j = 1) wrap the
     * same way instead of going negative. */
    uint32_t h = (uint32_t)r->h, cc = 0, xs = (uint32_t)r->w, ys = h, xe = 0, ye = 0, xp = 0;
    for (int64_t j = 0; j < m; j++) {
        cc += r->cnts[j];
        uint32_t t = cc - (uint32_t)(j & 1); /* first pixel of a run of 1s, or its last */
        uint32_t y = t % h, x = t / h;
        if (!(j & 1)) xp = x;
        else if (xp < x) { /* the run crosses into a later column: it covers every row */
            ys = 0;
            ye = h - 1;
        }
        if (x < xs) xs = x;
        if (x > xe) xe = x;
        if (y < ys) ys = y;
        if (y > ye) ye = y;
    }
    bb[0] = xs;
    bb[1] = ys;
    bb[2] = (double)(xe - xs + 1);
    bb[3] = (double)(ye - ys + 1);
}

double bbox_iou(const double d[4], const double g[4]) {
    double iw = fmin(d[0] + d[2], g[0] + g[2]) - fmax(d[0], g[0]);
    if (iw <= 0) return 0;
    double ih = fmin(d[1] + d[3], g[1] + g[3]) - fmax(d[1], g[1]);
    if (ih <= 0) return 0;
    double inter = iw * ih;
    return inter / ((d[2] * d[3] + g[2] * g[3]) - inter); /* areas added first (§7.1) */
}

/* Sum of the odd counts in 64 bits (rle_area wraps at 2^32 like the official). */
static uint64_t rle_ones(const rle *r) {
    uint64_t a = 0;
    for (int64_t j = 1; j < r->m; j += 2) a += r->cnts[j];
    return a;
}

double rle_iou(const rle *d, const double bb_d[4], const rle *g, const double bb_g[4]) {
    if (bbox_iou(bb_d, bb_g) <= 0) return 0; /* tight boxes apart: masks apart (§7.2) */
    if (d->h != g->h || d->w != g->w) return -1;
    /* The intersection walks the two lists of runs of 1s, [s, e) in linear index, always
     * moving the one that ends first; union = area + area - intersection. This visits
     * half the counts of walking every run (twice as fast on 480 x 640 masks), and empty
     * runs (cnts[0] = 0, non-canonical zeros) need no special case. */
    const uint32_t *a = d->cnts, *b = g->cnts;
    int64_t ma = d->m, mb = g->m;
    uint64_t inter = 0;
    if (ma >= 2 && mb >= 2) {
        int64_t ia = 1, ib = 1; /* index of the current run of 1s */
        uint64_t sa = a[0], ea = sa + a[1], sb = b[0], eb = sb + b[1];
        for (;;) {
            uint64_t lo = sa > sb ? sa : sb, hi = ea < eb ? ea : eb;
            if (hi > lo) inter += hi - lo;
            if (ea < eb) {
                if (ia + 2 >= ma) break; /* a has no run left: nothing more overlaps */
                sa = ea + a[ia + 1];
                ea = sa + a[ia + 2];
                ia += 2;
            } else {
                if (ib + 2 >= mb) break;
                sb = eb + b[ib + 1];
                eb = sb + b[ib + 2];
                ib += 2;
            }
        }
    }
    if (inter == 0) return 0;
    uint64_t uni = rle_ones(d) + rle_ones(g) - inter;
    /* counts are unsigned 32-bit in the official; equal to these below 2^32 pixels */
    return (double)(uint32_t)inter / (double)(uint32_t)uni;
}

/* ---- union (§8.5) -------------------------------------------------------------------- */

/* o = the canonical counts of (a OR b), two same-sized run lists; returns the number of
 * counts, at most ma + mb + 1. */
static int64_t rle_or_runs(const uint32_t *a, int64_t ma, const uint32_t *b, int64_t mb, uint32_t *o) {
    int64_t mo = 1, ia = 0, ib = 0;
    unsigned va = 0, vb = 0, vo = 0; /* vo: the value of the run o[mo - 1] */
    uint32_t ra = ma ? a[0] : 0, rb = mb ? b[0] : 0;
    o[0] = 0;
    for (;;) {
        uint32_t c = ra < rb ? ra : rb;
        if (c) {
            unsigned v = va | vb;
            if (v == vo) o[mo - 1] += c;
            else {
                o[mo++] = c;
                vo = v;
            }
        }
        ra -= c;
        rb -= c;
        if (!ra) {
            if (++ia >= ma) break;
            ra = a[ia];
            va ^= 1;
        }
        if (!rb) {
            if (++ib >= mb) break;
            rb = b[ib];
            vb ^= 1;
        }
    }
    return mo;
}

int rle_merge(rle *out, const rle *in, int n) {
    memset(out, 0, sizeof *out);
    if (n <= 0) return 0;
    for (int i = 1; i < n; i++)
        if (in[i].h != in[0].h || in[i].w != in[0].w) return 0; /* empty 0 x 0 */
    if (n == 1) return rle_init(out, in[0].h, in[0].w, in[0].m, in[0].cnts);
    /* Fold left into two buffers taken in turn; every intermediate union has at most
     * (sum of the m so far) + 1 counts. */
    int64_t cap = 1;
    for (int i = 0; i < n; i++) cap += in[i].m;
    uint32_t *buf = malloc(2 * (size_t)cap * sizeof *buf);
    if (!buf) return -1;
    uint32_t *acc = buf, *next = buf + cap;
    int64_t m = rle_or_runs(in[0].cnts, in[0].m, in[1].cnts, in[1].m, acc);
    for (int i = 2; i < n; i++) {
        m = rle_or_runs(acc, m, in[i].cnts, in[i].m, next);
        uint32_t *t = acc;
        acc = next;
        next = t;
    }
    int rc = rle_init(out, in[0].h, in[0].w, m, acc);
    free(buf);
    return rc;
}

/* ---- polygon -> RLE (§8.8, §8.9) ----------------------------------------------------- */

/* Sorts a[0..n) ascending; tmp holds n. LSD radix on bytes, skipping a byte all values
 * share (the top one for any mask under 2^24 pixels); insertion sort when short. qsort
 * took a third of the rasterizer's time. */
static void sort_u32(uint32_t *a, uint32_t *tmp, int64_t n) {
    if (n < 48) {
        for (int64_t i = 1; i < n; i++) {
            uint32_t x = a[i];
            int64_t j = i;
            for (; j > 0 && a[j - 1] > x; j--) a[j] = a[j - 1];
            a[j] = x;
        }
        return;
    }
    uint32_t *src = a, *dst = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        int64_t cnt[256] = {0};
        for (int64_t i = 0; i < n; i++) cnt[(src[i] >> shift) & 255]++;
        if (cnt[(src[0] >> shift) & 255] == n) continue;
        int64_t sum = 0;
        for (int b = 0; b < 256; b++) {
            int64_t c = cnt[b];
            cnt[b] = sum;
            sum += c;
        }
        for (int64_t i = 0; i < n; i++) dst[cnt[(src[i] >> shift) & 255]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
}

/* Traces edge (xs, ys) -> (xe, ye) on the 5x grid into u, v (§8.8 step 2); returns the
 * number of points, max(|dx|, |dy|) + 1, both endpoints included. */
static int64_t rle_trace_edge(int xs, int ys, int xe, int ye, int *u, int *v) {
    int dx = abs(xe - xs), dy = abs(ys - ye);
    if (dx >= dy) {
        int flip = xs > xe;
        if (flip) {
            int t = xs; xs = xe; xe = t;
            t = ys; ys = ye; ye = t;
        }
        /* dx = dy = 0: one point; the official's v is 0/0 there and is never read, so any
         * value does (ys here). */
        double s = dx ? (double)(ye - ys) / dx : 0;
        for (int d = 0; d <= dx; d++) {
            int t = flip ? dx - d : d;
            u[d] = t + xs;
            v[d] = (int)(ys + s * t + .5); /* C truncation toward zero, not floor */
        }
        return (int64_t)dx + 1;
    }
    int flip = ys > ye;
    if (flip) {
        int t = xs; xs = xe; xe = t;
        t = ys; ys = ye; ye = t;
    }
    double s = (double)(xe - xs) / dy;
    for (int d = 0; d <= dy; d++) {
        int t = flip ? dy - d : d;
        v[d] = t + ys;
        u[d] = (int)(xs + s * t + .5);
    }
    return (int64_t)dy + 1;
}

/* The crossings of the traced path with the pixel-column centre lines (§8.8 step 3) as
 * linear indices into a; returns how many.
 *
 * §8.8 writes this step in doubles: with g the grid column left of the crossing,
 * xd = (g + .5) / 5 - .5 must be an integer in [0, w - 1], and the row is
 * ceil(clamp((vmin + .5) / 5 - .5, 0, h)). Exactly, these are (g - 2) / 5 and
 * (vmin - 2) / 5; computed in doubles they are exact when the exact value is an integer
 * (k + .5 is representable, so both operations are exact) and otherwise at least 0.2 from
 * one, far beyond the rounding error for |g|, |vmin| < 2^30. So the same decisions are
 * taken here in integers: g % 5 == 2, and a ceiling division. (tests/test_rle.c holds the
 * literal double form and compares on random polygons.) */
static int64_t rle_crossings(const int *u, const int *v, int64_t np, int h, int w, uint32_t *a) {
    int64_t n = 0;
    for (int64_t j = 1; j < np; j++) {
        if (u[j] == u[j - 1]) continue;
        int g = u[j] < u[j - 1] ? u[j] : u[j] - 1;
        if (g < 0 || g % RLE_UPSAMPLE != 2) continue;
        int x = (g - 2) / RLE_UPSAMPLE;
        if (x > w - 1) continue;
        int vmin = v[j] < v[j - 1] ? v[j] : v[j - 1];
        /* the first row whose centre lies below the crossing, clamped to [0, h] */
        int y = vmin <= 2 ? 0 : (vmin - 2 + RLE_UPSAMPLE - 1) / RLE_UPSAMPLE;
        if (y > h) y = h;
        a[n++] = (uint32_t)x * (uint32_t)h + (uint32_t)y;
    }
    return n;
}

/* Turns the boundary indices a[0..n) (h * w appended, so n >= 1) into counts in place
 * (§8.8 step 4; tmp: n scratch values); returns how many. Equal indices cancel: a zero
 * difference is dropped and the one after it joins the previous count. */
static int64_t rle_runs_from_boundaries(uint32_t *a, uint32_t *tmp, int64_t n) {
    sort_u32(a, tmp, n);
    uint32_t prev = 0;
    for (int64_t j = 0; j < n; j++) {
        uint32_t t = a[j];
        a[j] -= prev;
        prev = t;
    }
    int64_t m = 1, j = 1; /* the first difference is kept as it is, even 0 */
    while (j < n) {
        if (a[j] > 0) a[m++] = a[j++];
        else if (++j < n) a[m - 1] += a[j++];
    }
    return m;
}

int rle_from_polygon(rle *out, const double *xy, int k, int h, int w) {
    memset(out, 0, sizeof *out);
    uint32_t hw = (uint32_t)((int64_t)(h > 0 ? h : 0) * (w > 0 ? w : 0));
    if (k <= 0) return rle_init(out, h, w, 1, &hw); /* no points: an empty mask */
    int *X = malloc(2 * ((size_t)k + 1) * sizeof *X);
    if (!X) return -1;
    int *Y = X + k + 1;
    for (int j = 0; j < k; j++) {
        double x = RLE_UPSAMPLE * xy[2 * j] + .5, y = RLE_UPSAMPLE * xy[2 * j + 1] + .5;
        if (!(fabs(x) < RLE_COORD_MAX && fabs(y) < RLE_COORD_MAX)) { /* NaN too */
            free(X);
            return -1;
        }
        X[j] = (int)x; /* truncation toward zero: (-0.1, ...) goes to 0, not -1 */
        Y[j] = (int)y;
    }
    X[k] = X[0];
    Y[k] = Y[0];
    int64_t np = 0;
    for (int j = 0; j < k; j++) {
        int64_t dx = llabs((int64_t)X[j + 1] - X[j]), dy = llabs((int64_t)Y[j + 1] - Y[j]);
        np += (dx >= dy ? dx : dy) + 1;
    }
    /* One block: the traced points u, v (np each) and the boundary list (at most np - 1
     * crossings, plus h * w). */
    int *u = malloc((size_t)np * (2 * sizeof(int) + sizeof(uint32_t)));
    if (!u) {
        free(X);
        return -1;
    }
    int *v = u + np;
    uint32_t *a = (uint32_t *)(v + np);
    int64_t p = 0;
    for (int j = 0; j < k; j++) p += rle_trace_edge(X[j], Y[j], X[j + 1], Y[j + 1], u + p, v + p);
    free(X);
    int64_t n = rle_crossings(u, v, np, h, w, a);
    a[n++] = hw;
    int64_t m = rle_runs_from_boundaries(a, (uint32_t *)u, n); /* u, v are spent: scratch */
    int rc = rle_init(out, h, w, m, a);
    free(u);
    return rc;
}

int rle_from_polygons(rle *out, const double *xy, const int64_t *offset, const int64_t *n_coords, int n, int h,
                      int w) {
    memset(out, 0, sizeof *out);
    if (n <= 0) return rle_from_polygon(out, NULL, 0, h, w);
    /* An odd count drops the last number (§8.9). */
    if (n == 1) return rle_from_polygon(out, xy + offset[0], (int)(n_coords[0] / 2), h, w);
    rle *parts = calloc((size_t)n, sizeof *parts);
    if (!parts) return -1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = rle_from_polygon(&parts[i], xy + offset[i], (int)(n_coords[i] / 2), h, w);
    if (!rc) rc = rle_merge(out, parts, n);
    for (int i = 0; i < n; i++) rle_free(&parts[i]);
    free(parts);
    return rc;
}

/* test_rle.c: COCO RLE (src/eval/rle.h) against the official pycocotools: the golden file
 * ../shared/golden/lvis_eval/rle_cases.json (300 polygon objects, 50 uncompressed masks;
 * read at test time from the repo root, skipped when absent), the test vectors printed in
 * reference/lvis_eval.md §8.3 and §8.8, and brute force on decoded masks for IoU and merge.
 * Random masks come from a fixed-seed generator, so a failure repeats. */
#include "test.h"

#include "eval/rle.h"

#include <cjson/cJSON.h>
#include <stdint.h>

#define GOLDEN "../shared/golden/lvis_eval/rle_cases.json"

/* ---- helpers ------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) { /* splitmix64, high half */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}
static int rnd_int(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); } /* [lo, hi] */

/* A random column-major h x w mask: mostly a few rectangles and discs, sometimes noise,
 * empty or full. */
static void random_mask(uint8_t *mask, int h, int w) {
    int kind = rnd_int(0, 9);
    memset(mask, 0, (size_t)h * w);
    if (kind == 0) return;
    if (kind == 1) {
        memset(mask, 1, (size_t)h * w);
        return;
    }
    if (kind == 2) {
        for (int i = 0; i < h * w; i++) mask[i] = rnd_int(0, 2) == 0 ? (uint8_t)rnd_int(1, 255) : 0;
        return;
    }
    int shapes = rnd_int(1, 3);
    for (int s = 0; s < shapes; s++) {
        int x0 = rnd_int(0, w - 1), y0 = rnd_int(0, h - 1), x1 = rnd_int(x0, w - 1), y1 = rnd_int(y0, h - 1);
        double cx = (x0 + x1) / 2.0, cy = (y0 + y1) / 2.0, rx = (x1 - x0) / 2.0 + .5, ry = (y1 - y0) / 2.0 + .5;
        int disc = rnd_int(0, 1);
        for (int x = x0; x <= x1; x++)
            for (int y = y0; y <= y1; y++) {
                double ex = (x - cx) / rx, ey = (y - cy) / ry;
                if (!disc || ex * ex + ey * ey <= 1) mask[x * h + y] = 1;
            }
    }
}

static int same_counts(const rle *r, const uint32_t *cnts, int64_t m) {
    return r->m == m && (m == 0 || !memcmp(r->cnts, cnts, (size_t)m * sizeof *cnts));
}

static void format_counts(const uint32_t *c, int64_t m, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int64_t j = 0; j < m && k + 16 < n; j++) k += (size_t)snprintf(buf + k, n - k, "%s%u", j ? "," : "", c[j]);
}

static char *to_string(const rle *r) { /* malloc'd compressed string */
    size_t n = rle_to_string(r, NULL, 0);
    char *s = malloc(n + 1);
    size_t n2 = rle_to_string(r, s, n + 1);
    (void)n2;
    return s;
}

/* ---- the spec's test vectors ------------------------------------------------------- */

/* reference/lvis_eval.md §8.3: the table of strings computed with the official build. */
static void test_spec_string_vectors(void) {
    /* rows [0 1 1; 0 1 0; 1 1 0; 0 0 0], 4 x 3, stored column-major */
    const uint8_t rows[4][3] = {{0, 1, 1}, {0, 1, 0}, {1, 1, 0}, {0, 0, 0}};
    uint8_t mask[12];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 3; x++) mask[x * 4 + y] = rows[y][x];
    rle r;
    REQUIRE(rle_encode(&r, mask, 4, 3) == 0);
    const uint32_t want[] = {2, 1, 1, 3, 1, 1, 3};
    EXPECT(same_counts(&r, want, 7), "counts of the 4x3 mask");
    char s[64], why[128];
    EXPECT(rle_to_string(&r, s, sizeof s) == 7 && !strcmp(s, "21120N2"), "got '%s'", s);
    EXPECT(rle_area(&r) == 5);
    double bb[4];
    rle_bbox(&r, bb);
    EXPECT(bb[0] == 0 && bb[1] == 0 && bb[2] == 3 && bb[3] == 3, "bbox %g %g %g %g", bb[0], bb[1], bb[2], bb[3]);
    rle_free(&r);

    struct {
        uint32_t c[8];
        int m, h, w;
        const char *s;
        double bb[4];
    } v[] = {
        {{0, 12}, 2, 3, 4, "0<", {0, 0, 4, 3}},
        {{12}, 1, 3, 4, "<", {0, 0, 0, 0}},
        {{5, 3, 2, 4, 100, 1}, 6, 23, 5, "5321R3M", {0, 5, 5, 18}},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        REQUIRE(rle_from_counts(&r, v[i].c, v[i].m, v[i].h, v[i].w, why, sizeof why) == 0, "%s", why);
        EXPECT(rle_to_string(&r, s, sizeof s) == strlen(v[i].s) && !strcmp(s, v[i].s), "[%zu] got '%s' want '%s'", i,
               s, v[i].s);
        rle_bbox(&r, bb);
        EXPECT(!memcmp(bb, v[i].bb, sizeof bb), "[%zu] bbox %g %g %g %g", i, bb[0], bb[1], bb[2], bb[3]);
        rle_free(&r);
        REQUIRE(rle_from_string(&r, v[i].s, strlen(v[i].s), v[i].h, v[i].w, why, sizeof why) == 0, "%s", why);
        EXPECT(same_counts(&r, v[i].c, v[i].m), "[%zu] decoded counts", i);
        rle_free(&r);
    }
    /* The spec gives [10,20,5,100000,7] with 1000 x 100, but those counts sum to 100042;
     * the string depends only on the counts, so it is checked on a hand-built RLE and
     * parsed back as 50021 x 2 (= 100042). Index 3 is stored as 100000 - 20. */
    uint32_t c5[] = {10, 20, 5, 100000, 7};
    rle big = {1000, 100, 5, c5};
    EXPECT(rle_to_string(&big, s, sizeof s) == 9 && !strcmp(s, ":d05\\dQ32"), "got '%s'", s);
    REQUIRE(rle_from_string(&r, ":d05\\dQ32", 9, 50021, 2, why, sizeof why) == 0, "%s", why);
    EXPECT(same_counts(&r, c5, 5));
    rle_free(&r);
}

/* reference/lvis_eval.md §8.8 item 6: the rasterizer's test vectors. */
static void test_spec_polygon_vectors(void) {
    struct {
        double xy[8];
        int k, h, w;
        uint32_t c[8];
        int m;
        uint32_t area;
    } v[] = {
        {{1, 1, 4, 1, 4, 3}, 3, 5, 6, {11, 1, 4, 2, 12}, 5, 3},
        {{0, 0, 2, 0, 2, 2, 0, 2}, 4, 4, 4, {0, 2, 2, 2, 10}, 5, 4},
        {{.5, .5, 2.5, .5, 2.5, 2.5, .5, 2.5}, 4, 4, 4, {5, 2, 2, 2, 5}, 5, 4},
        {{.4, .4, 2.6, .4, 2.6, 2.6, .4, 2.6}, 4, 4, 4, {0, 3, 1, 3, 1, 3, 5}, 7, 9},
        {{-1, -1, 3, -1, 3, 3, -1, 3}, 4, 4, 4, {0, 3, 1, 3, 1, 3, 5}, 7, 9},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        /* either orientation, and starting at any vertex, gives the same mask */
        for (int rev = 0; rev < 2; rev++)
            for (int start = 0; start < v[i].k; start++) {
                double xy[8];
                for (int j = 0; j < v[i].k; j++) {
                    int s = (start + (rev ? v[i].k - j : j)) % v[i].k;
                    xy[2 * j] = v[i].xy[2 * s];
                    xy[2 * j + 1] = v[i].xy[2 * s + 1];
                }
                rle r;
                REQUIRE(rle_from_polygon(&r, xy, v[i].k, v[i].h, v[i].w) == 0);
                char got[128];
                format_counts(r.cnts, r.m, got, sizeof got);
                EXPECT(same_counts(&r, v[i].c, v[i].m) && rle_area(&r) == v[i].area && r.h == v[i].h && r.w == v[i].w,
                       "vector %zu (reversed %d, start %d): got [%s]", i, rev, start, got);
                rle_free(&r);
            }
    }
}

/* §8.9: a part with an odd number of numbers drops the last one; parts are united; no
 * points give an empty mask. */
static void test_polygon_parts(void) {
    /* part 0 is the §8.8 triangle plus a stray 7th number; reading an 8th would add the
     * vertex (0, 5) with part 1's first number. Part 1 is the square (5,0)-(6,2). */
    double xy[] = {1, 1, 4, 1, 4, 3, 0, 5, 0, 6, 0, 6, 2, 5, 2};
    int64_t off[] = {0, 7}, nc[] = {7, 8};
    const uint32_t tri[] = {11, 1, 4, 2, 12};
    rle r, sq, both, parts[2];
    REQUIRE(rle_from_polygons(&r, xy, off, nc, 1, 5, 6) == 0);
    EXPECT(same_counts(&r, tri, 5), "odd part: the last number is dropped");
    rle_free(&r);
    /* the union of the triangle and the square equals merging them */
    REQUIRE(rle_from_polygons(&both, xy, off, nc, 2, 5, 6) == 0);
    REQUIRE(rle_from_polygon(&parts[0], xy, 3, 5, 6) == 0 && rle_from_polygon(&parts[1], xy + 7, 4, 5, 6) == 0);
    REQUIRE(rle_merge(&sq, parts, 2) == 0);
    EXPECT(same_counts(&both, sq.cnts, sq.m) && rle_area(&both) == 3 + 2, "union of two parts: area %u",
           rle_area(&both));
    rle_free(&both);
    rle_free(&sq);
    rle_free(&parts[0]);
    rle_free(&parts[1]);
    /* a part with fewer than 2 numbers has no point; no parts at all: an empty h x w mask */
    int64_t one[] = {1};
    const uint32_t empty[] = {30};
    REQUIRE(rle_from_polygons(&r, xy, off, one, 1, 5, 6) == 0);
    EXPECT(same_counts(&r, empty, 1) && r.h == 5 && r.w == 6);
    rle_free(&r);
    REQUIRE(rle_from_polygons(&r, xy, off, nc, 0, 5, 6) == 0);
    EXPECT(same_counts(&r, empty, 1) && r.h == 5 && r.w == 6);
    rle_free(&r);
    /* a coordinate that is not finite is refused, not cast (undefined behaviour in C) */
    double nan_xy[] = {1, 1, NAN, 1, 4, 3};
    EXPECT(rle_from_polygon(&r, nan_xy, 3, 5, 6) == -1 && r.cnts == NULL);
}

/* §8.8 written out literally, in doubles (C casts, floor, ceil, qsort), as the oracle for
 * rle_from_polygon, which takes step 3 in integers and sorts by radix. Returns the counts
 * (malloc'd) and their number in *m. */
static int cmp_u32(const void *p, const void *q) {
    uint32_t a = *(const uint32_t *)p, b = *(const uint32_t *)q;
    return (a > b) - (a < b);
}
static uint32_t *ref_from_polygon(const double *xy, int k, int h, int w, int64_t *m_out) {
    const double S = 5;
    int *X = malloc(sizeof(int) * (k + 1)), *Y = malloc(sizeof(int) * (k + 1));
    for (int j = 0; j < k; j++) {
        X[j] = (int)(S * xy[2 * j] + .5);
        Y[j] = (int)(S * xy[2 * j + 1] + .5);
    }
    X[k] = X[0];
    Y[k] = Y[0];
    int64_t np = 0;
    for (int j = 0; j < k; j++) {
        int dx = abs(X[j + 1] - X[j]), dy = abs(Y[j + 1] - Y[j]);
        np += (dx > dy ? dx : dy) + 1;
    }
    int *u = malloc(sizeof(int) * np), *v = malloc(sizeof(int) * np);
    int64_t p = 0;
    for (int j = 0; j < k; j++) {
        int xs = X[j], xe = X[j + 1], ys = Y[j], ye = Y[j + 1], dx = abs(xe - xs), dy = abs(ys - ye), t;
        int flip = dx >= dy ? xs > xe : ys > ye;
        if (flip) {
            t = xs, xs = xe, xe = t;
            t = ys, ys = ye, ye = t;
        }
        if (dx >= dy) {
            double sl = dx ? (double)(ye - ys) / dx : 0;
            for (int d = 0; d <= dx; d++, p++) {
                t = flip ? dx - d : d;
                u[p] = t + xs;
                v[p] = (int)(ys + sl * t + .5);
            }
        } else {
            double sl = (double)(xe - xs) / dy;
            for (int d = 0; d <= dy; d++, p++) {
                t = flip ? dy - d : d;
                v[p] = t + ys;
                u[p] = (int)(xs + sl * t + .5);
            }
        }
    }
    uint32_t *a = malloc(sizeof(uint32_t) * (np + 1));
    int64_t n = 0;
    for (int64_t j = 1; j < np; j++) {
        if (u[j] == u[j - 1]) continue;
        double xd = u[j] < u[j - 1] ? u[j] : u[j] - 1;
        xd = (xd + .5) / S - .5;
        if (floor(xd) != xd || xd < 0 || xd > w - 1) continue;
        double yd = v[j] < v[j - 1] ? v[j] : v[j - 1];
        yd = (yd + .5) / S - .5;
        if (yd < 0) yd = 0;
        else if (yd > h) yd = h;
        yd = ceil(yd);
        a[n++] = (uint32_t)(int)xd * (uint32_t)h + (uint32_t)(int)yd;
    }
    a[n++] = (uint32_t)h * (uint32_t)w;
    qsort(a, (size_t)n, sizeof *a, cmp_u32);
    uint32_t prev = 0;
    for (int64_t j = 0; j < n; j++) {
        uint32_t t = a[j];
        a[j] -= prev;
        prev = t;
    }
    uint32_t *c = malloc(sizeof(uint32_t) * n);
    int64_t m = 0, j = 0;
    c[m++] = a[j++];
    while (j < n) {
        if (a[j] > 0) c[m++] = a[j++];
        else {
            j++;
            if (j < n) c[m - 1] += a[j++];
        }
    }
    free(X), free(Y), free(u), free(v), free(a);
    *m_out = m;
    return c;
}

/* rle_from_polygon against the literal §8.8 on random polygons: coordinates inside and
 * outside the image (negative ones too), on the x*5+0.5 rounding edges, repeated vertices,
 * and sizes up to 640 x 480 so that the crossing and sort paths see long lists. */
static void test_polygon_vs_reference(void) {
    int bad = 0, nonempty = 0;
    for (int it = 0; it < 4000; it++) {
        int big = it % 10 == 0;
        int h = big ? rnd_int(100, 480) : rnd_int(1, 30), w = big ? rnd_int(100, 640) : rnd_int(1, 30);
        int k = rnd_int(1, 24), style = rnd_int(0, 3);
        double xy[48];
        for (int j = 0; j < 2 * k; j++) {
            double lim = (j & 1 ? h : w) * 1.3;
            double c = -0.15 * lim + (rnd() / 4294967296.0) * lim;
            if (style == 1) c = floor(c * 10) / 10; /* multiples of 0.1: the rounding edges */
            if (style == 2) c = floor(c);
            xy[j] = c;
        }
        if (k > 2 && rnd_int(0, 3) == 0) { /* a repeated vertex: a zero-length edge */
            xy[2] = xy[0];
            xy[3] = xy[1];
        }
        rle r;
        int64_t m;
        REQUIRE(rle_from_polygon(&r, xy, k, h, w) == 0);
        uint32_t *want = ref_from_polygon(xy, k, h, w, &m);
        if (!same_counts(&r, want, m) && bad++ < 5) {
            char got[256], exp[256];
            format_counts(r.cnts, r.m, got, sizeof got);
            format_counts(want, m, exp, sizeof exp);
            EXPECT(0, "iteration %d (%dx%d, %d points): got [%s] want [%s]", it, h, w, k, got, exp);
        }
        nonempty += rle_area(&r) > 0;
        free(want);
        rle_free(&r);
    }
    EXPECT(bad == 0, "%d of 4000 polygons differ from the literal §8.8", bad);
    EXPECT(nonempty > 2000, "only %d non-empty masks", nonempty);
}

/* ---- golden data from the official build ----------------------------------------------- */

static cJSON *golden;
static int golden_tried;

static cJSON *golden_load(void) {
    if (golden_tried) return golden;
    golden_tried = 1;
    FILE *f = fopen(GOLDEN, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (buf && got == (size_t)n) {
        buf[n] = 0;
        golden = cJSON_Parse(buf);
    }
    free(buf);
    return golden;
}

#define REQUIRE_GOLDEN(g)                                                          \
    cJSON *g = golden_load();                                                      \
    do {                                                                           \
        if (!g && golden_tried && access(GOLDEN, F_OK) != 0) SKIP("%s is missing", GOLDEN); \
        REQUIRE(g, "%s does not parse", GOLDEN);                                   \
    } while (0)

static int json_int(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key)->valueint; }

static int bbox_equals(const double bb[4], const cJSON *want) {
    for (int i = 0; i < 4; i++)
        if (bb[i] != cJSON_GetArrayItem(want, i)->valuedouble) return 0;
    return 1;
}

/* Polygon entries: the union of the parts (rle_from_polygons) gives the official string,
 * area and bbox, and each part alone (rle_from_polygon) gives part_counts / part_areas. */
static void test_golden_polygons(void) {
    REQUIRE_GOLDEN(g);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(g, "polygons");
    REQUIRE(cJSON_GetArraySize(cases) == 300, "%d polygon entries", cJSON_GetArraySize(cases));
    int bad = 0, parts_checked = 0;
    for (int ci = 0; ci < cJSON_GetArraySize(cases); ci++) {
        const cJSON *e = cJSON_GetArrayItem(cases, ci), *polys = cJSON_GetObjectItemCaseSensitive(e, "polygons");
        int h = json_int(e, "h"), w = json_int(e, "w"), n = cJSON_GetArraySize(polys);
        const char *kind = cJSON_GetObjectItemCaseSensitive(e, "kind")->valuestring;
        int64_t total = 0, off[64], nc[64];
        REQUIRE(n <= 64);
        for (int p = 0; p < n; p++) {
            off[p] = total;
            nc[p] = cJSON_GetArraySize(cJSON_GetArrayItem(polys, p));
            total += nc[p];
        }
        double *xy = malloc((size_t)total * sizeof *xy);
        for (int p = 0; p < n; p++) {
            const cJSON *part = cJSON_GetArrayItem(polys, p);
            for (int j = 0; j < nc[p]; j++) xy[off[p] + j] = cJSON_GetArrayItem(part, j)->valuedouble;
        }
        rle u;
        REQUIRE(rle_from_polygons(&u, xy, off, nc, n, h, w) == 0);
        char *s = to_string(&u);
        const char *want = cJSON_GetObjectItemCaseSensitive(e, "counts")->valuestring;
        double bb[4];
        rle_bbox(&u, bb);
        int ok = !strcmp(s, want) && u.h == h && u.w == w && rle_area(&u) == (uint32_t)json_int(e, "area") &&
                 bbox_equals(bb, cJSON_GetObjectItemCaseSensitive(e, "bbox"));
        if (!ok && bad++ < 5)
            EXPECT(0, "polygons[%d] (%s, %dx%d, %d parts): got '%.60s' area %u bbox %g %g %g %g, want '%.60s' area %d",
                   ci, kind, h, w, n, s, rle_area(&u), bb[0], bb[1], bb[2], bb[3], want, json_int(e, "area"));
        free(s);
        rle_free(&u);
        const cJSON *pc = cJSON_GetObjectItemCaseSensitive(e, "part_counts"),
                    *pa = cJSON_GetObjectItemCaseSensitive(e, "part_areas");
        for (int p = 0; p < n; p++) {
            rle r;
            REQUIRE(rle_from_polygon(&r, xy + off[p], (int)(nc[p] / 2), h, w) == 0);
            s = to_string(&r);
            const char *pw = cJSON_GetArrayItem(pc, p)->valuestring;
            uint32_t pwa = (uint32_t)cJSON_GetArrayItem(pa, p)->valueint;
            if ((strcmp(s, pw) || rle_area(&r) != pwa) && bad++ < 5)
                EXPECT(0, "polygons[%d] part %d (%s, %dx%d): got '%.60s' area %u, want '%.60s' area %u", ci, p, kind,
                       h, w, s, rle_area(&r), pw, pwa);
            parts_checked++;
            free(s);
            rle_free(&r);
        }
        free(xy);
    }
    EXPECT(bad == 0, "%d mismatches (first 5 above)", bad);
    EXPECT(parts_checked == 427, "%d parts", parts_checked);
}

/* Uncompressed entries: counts -> string, string -> counts, area, bbox, decode/encode. */
static void test_golden_uncompressed(void) {
    REQUIRE_GOLDEN(g);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(g, "uncompressed");
    REQUIRE(cJSON_GetArraySize(cases) == 50, "%d uncompressed entries", cJSON_GetArraySize(cases));
    int bad = 0;
    for (int ci = 0; ci < cJSON_GetArraySize(cases); ci++) {
        const cJSON *e = cJSON_GetArrayItem(cases, ci), *jc = cJSON_GetObjectItemCaseSensitive(e, "counts");
        int h = json_int(e, "h"), w = json_int(e, "w");
        int64_t m = cJSON_GetArraySize(jc);
        const char *want = cJSON_GetObjectItemCaseSensitive(e, "compressed")->valuestring;
        uint32_t *c = malloc((size_t)m * sizeof *c);
        for (int64_t j = 0; j < m; j++) c[j] = (uint32_t)cJSON_GetArrayItem(jc, (int)j)->valuedouble;
        char why[256] = "";
        rle r, back, again;
        REQUIRE(rle_from_counts(&r, c, m, h, w, why, sizeof why) == 0, "uncompressed[%d]: %s", ci, why);
        char *s = to_string(&r);
        EXPECT(!strcmp(s, want), "uncompressed[%d]: got '%.60s' want '%.60s'", ci, s, want);
        REQUIRE(rle_from_string(&back, want, strlen(want), h, w, why, sizeof why) == 0, "uncompressed[%d]: %s", ci,
                why);
        EXPECT(same_counts(&back, c, m), "uncompressed[%d]: the string decodes to other counts", ci);
        double bb[4];
        rle_bbox(&r, bb);
        uint32_t area = rle_area(&r);
        EXPECT(area == (uint32_t)json_int(e, "area") && bbox_equals(bb, cJSON_GetObjectItemCaseSensitive(e, "bbox")),
               "uncompressed[%d]: area %u bbox %g %g %g %g", ci, area, bb[0], bb[1], bb[2], bb[3]);
        uint8_t *mask = malloc((size_t)h * w);
        rle_decode(&r, mask);
        uint64_t sum = 0;
        for (int64_t i = 0; i < (int64_t)h * w; i++) sum += mask[i];
        EXPECT(sum == area, "uncompressed[%d]: decoded %llu pixels, area %u", ci, (unsigned long long)sum, area);
        REQUIRE(rle_encode(&again, mask, h, w) == 0);
        EXPECT(same_counts(&again, c, m), "uncompressed[%d]: decode + encode changed the counts", ci);
        bad += !same_counts(&again, c, m) || strcmp(s, want);
        free(mask);
        free(s);
        free(c);
        rle_free(&r);
        rle_free(&back);
        rle_free(&again);
    }
    EXPECT(bad == 0, "%d mismatches", bad);
}

/* ---- IoU ------------------------------------------------------------------------------- */

/* §7.1 example and touching boxes. */
static void test_bbox_iou(void) {
    double a[4] = {0, 0, 10, 10}, b[4] = {5, 5, 10, 10}, c[4] = {10, 0, 5, 5}, d[4] = {0, 10, 4, 4};
    EXPECT(bbox_iou(a, b) == 25.0 / 175.0 && bbox_iou(a, b) == 0.14285714285714285, "%.17g", bbox_iou(a, b));
    EXPECT(bbox_iou(b, a) == 25.0 / 175.0);
    EXPECT(bbox_iou(a, c) == 0 && bbox_iou(a, d) == 0, "touching boxes: %g %g", bbox_iou(a, c), bbox_iou(a, d));
    EXPECT(bbox_iou(a, a) == 1);
    /* §7.1 adds the two areas first, then subtracts: on fractional boxes the other order
     * rounds differently now and then, so check the exact doubles on random ones */
    int differ = 0, bad = 0;
    for (int i = 0; i < 20000; i++) {
        double p[4], q[4];
        for (int j = 0; j < 4; j++) {
            p[j] = rnd_int(0, 100000) / 100.0;
            q[j] = j < 2 ? p[j] + rnd_int(-5000, 5000) / 100.0 : rnd_int(1, 100000) / 100.0;
        }
        double iw = fmin(p[0] + p[2], q[0] + q[2]) - fmax(p[0], q[0]);
        double ih = fmin(p[1] + p[3], q[1] + q[3]) - fmax(p[1], q[1]);
        if (iw <= 0 || ih <= 0) {
            bad += bbox_iou(p, q) != 0;
            continue;
        }
        double inter = iw * ih, want = inter / ((p[2] * p[3] + q[2] * q[3]) - inter);
        differ += want != inter / (p[2] * p[3] + (q[2] * q[3] - inter));
        bad += bbox_iou(p, q) != want;
    }
    EXPECT(bad == 0, "%d random boxes differ from the §7.1 formula", bad);
    EXPECT(differ > 0, "no random box is sensitive to the order of the sums: the check above tests nothing");
}

/* rle_iou on random masks against counting pixels of the decoded masks. */
static void test_rle_iou_brute_force(void) {
    int checked = 0, nonzero = 0, bad = 0;
    for (int it = 0; it < 3000; it++) {
        int h = rnd_int(1, 24), w = rnd_int(1, 24);
        uint8_t *ma = malloc((size_t)h * w), *mb = malloc((size_t)h * w);
        random_mask(ma, h, w);
        random_mask(mb, h, w);
        rle a, b;
        REQUIRE(rle_encode(&a, ma, h, w) == 0 && rle_encode(&b, mb, h, w) == 0);
        double ba[4], bb[4];
        rle_bbox(&a, ba);
        rle_bbox(&b, bb);
        uint32_t inter = 0, uni = 0;
        for (int i = 0; i < h * w; i++) {
            inter += ma[i] && mb[i];
            uni += ma[i] || mb[i];
        }
        double want = inter ? (double)inter / (double)uni : 0;
        double got = rle_iou(&a, ba, &b, bb), got2 = rle_iou(&b, bb, &a, ba);
        if ((got != want || got2 != want) && bad++ < 5)
            EXPECT(0, "iteration %d (%dx%d): iou %.17g / %.17g, brute force %u/%u", it, h, w, got, got2, inter, uni);
        checked++;
        nonzero += inter > 0;
        rle_free(&a);
        rle_free(&b);
        free(ma);
        free(mb);
    }
    EXPECT(bad == 0, "%d of %d differ", bad, checked);
    EXPECT(nonzero > 1000, "only %d pairs overlap: the random masks test little", nonzero);
    /* 640 x 480 masks of random overlapping polygons: long run lists */
    int h = 480, w = 640;
    uint8_t *ma = malloc((size_t)h * w), *mb = malloc((size_t)h * w);
    bad = nonzero = 0;
    for (int it = 0; it < 40; it++) {
        double xy[2][40];
        double cx = rnd_int(100, 540), cy = rnd_int(100, 380);
        for (int p = 0; p < 2; p++)
            for (int j = 0; j < 20; j++) {
                xy[p][2 * j] = cx + rnd_int(-150, 150) + rnd() / 4294967296.0;
                xy[p][2 * j + 1] = cy + rnd_int(-120, 120) + rnd() / 4294967296.0;
            }
        rle a, b;
        REQUIRE(rle_from_polygon(&a, xy[0], 20, h, w) == 0 && rle_from_polygon(&b, xy[1], 20, h, w) == 0);
        rle_decode(&a, ma);
        rle_decode(&b, mb);
        uint32_t inter = 0, uni = 0;
        for (int i = 0; i < h * w; i++) {
            inter += ma[i] & mb[i];
            uni += ma[i] | mb[i];
        }
        double ba[4], bb[4];
        rle_bbox(&a, ba);
        rle_bbox(&b, bb);
        double want = inter ? (double)inter / (double)uni : 0, got = rle_iou(&a, ba, &b, bb);
        if (got != want && bad++ < 5)
            EXPECT(0, "640x480 pair %d (m %lld, %lld): iou %.17g, brute force %u/%u", it, (long long)a.m,
                   (long long)b.m, got, inter, uni);
        nonzero += inter > 0;
        rle_free(&a);
        rle_free(&b);
    }
    EXPECT(bad == 0 && nonzero > 30, "640x480: %d differ, %d of 40 overlap", bad, nonzero);
    free(ma);
    free(mb);
}

static void test_rle_iou_rules(void) {
    /* full masks of different sizes with overlapping boxes: -1 (never matches) */
    uint32_t c44[] = {0, 16}, c45[] = {0, 20}, d45[] = {18, 2};
    rle a, b, c;
    char why[128];
    REQUIRE(rle_from_counts(&a, c44, 2, 4, 4, why, sizeof why) == 0);
    REQUIRE(rle_from_counts(&b, c45, 2, 4, 5, why, sizeof why) == 0);
    REQUIRE(rle_from_counts(&c, d45, 2, 4, 5, why, sizeof why) == 0); /* pixels (2,4), (3,4) */
    double ba[4], bb[4], bc[4];
    rle_bbox(&a, ba);
    rle_bbox(&b, bb);
    rle_bbox(&c, bc);
    EXPECT(rle_iou(&a, ba, &b, bb) == -1, "sizes differ: %g", rle_iou(&a, ba, &b, bb));
    /* the box test comes first: boxes apart give 0 even when the sizes differ */
    EXPECT(bc[0] == 4 && bc[1] == 2 && rle_iou(&a, ba, &c, bc) == 0, "disjoint boxes: %g", rle_iou(&a, ba, &c, bc));
    EXPECT(rle_iou(&b, bb, &c, bc) == 2.0 / 20.0, "%g", rle_iou(&b, bb, &c, bc));
    /* same size, disjoint boxes */
    uint32_t e45[] = {0, 2, 18};
    rle e;
    REQUIRE(rle_from_counts(&e, e45, 3, 4, 5, why, sizeof why) == 0);
    double be[4];
    rle_bbox(&e, be);
    EXPECT(rle_iou(&e, be, &c, bc) == 0);
    rle_free(&a);
    rle_free(&b);
    rle_free(&c);
    rle_free(&e);
}

/* ---- merge ----------------------------------------------------------------------------- */

static void test_merge(void) {
    int bad = 0;
    for (int it = 0; it < 500; it++) {
        int h = rnd_int(1, 20), w = rnd_int(1, 20), n = rnd_int(2, 5);
        rle in[5], out, want;
        uint8_t *mask = malloc((size_t)h * w), *or = calloc((size_t)h * w, 1);
        for (int i = 0; i < n; i++) {
            random_mask(mask, h, w);
            for (int p = 0; p < h * w; p++) or[p] |= mask[p] != 0;
            REQUIRE(rle_encode(&in[i], mask, h, w) == 0);
        }
        REQUIRE(rle_merge(&out, in, n) == 0);
        REQUIRE(rle_encode(&want, or, h, w) == 0);
        if (!(out.h == h && out.w == w && same_counts(&out, want.cnts, want.m)) && bad++ < 5) {
            char got[256], exp[256];
            format_counts(out.cnts, out.m, got, sizeof got);
            format_counts(want.cnts, want.m, exp, sizeof exp);
            EXPECT(0, "iteration %d (%dx%d, %d masks): got [%s] want [%s]", it, h, w, n, got, exp);
        }
        for (int i = 0; i < n; i++) rle_free(&in[i]);
        rle_free(&out);
        rle_free(&want);
        free(mask);
        free(or);
    }
    EXPECT(bad == 0, "%d of 500 unions differ from the pixelwise OR", bad);

    /* one input: a copy, counts as they are */
    uint32_t c[] = {0, 3, 2, 7}, d[] = {12};
    rle a, b, out;
    char why[128];
    REQUIRE(rle_from_counts(&a, c, 4, 3, 4, why, sizeof why) == 0);
    REQUIRE(rle_merge(&out, &a, 1) == 0);
    EXPECT(out.h == 3 && out.w == 4 && same_counts(&out, c, 4) && out.cnts != a.cnts, "copy");
    rle_free(&out);
    /* differing sizes: an empty 0 x 0 RLE */
    REQUIRE(rle_from_counts(&b, d, 1, 4, 3, why, sizeof why) == 0);
    rle two[2] = {a, b};
    REQUIRE(rle_merge(&out, two, 2) == 0);
    EXPECT(out.h == 0 && out.w == 0 && out.m == 0 && out.cnts == NULL, "sizes differ: %dx%d m %lld", out.h, out.w,
           (long long)out.m);
    rle_free(&a);
    rle_free(&b);
}

/* ---- the string codec: errors, escaping, large values ------------------------------------ */

static void expect_string_error(const char *s, int h, int w, const char *want) {
    rle r;
    char why[256] = "";
    int rc = rle_from_string(&r, s, strlen(s), h, w, why, sizeof why);
    EXPECT(rc == -1, "'%s' was accepted", s);
    EXPECT(strstr(why, want), "'%s': reason '%s', want '%s'", s, why, want);
    EXPECT(why[0] && !strchr(why, '\n'), "one line: '%s'", why);
    EXPECT(r.cnts == NULL && r.m == 0, "'%s': nothing left allocated", s);
}

static void test_from_string_errors(void) {
    expect_string_error("0<p", 3, 4, "outside '0'..'o'");   /* 'p' = 112, just above 'o' */
    expect_string_error("0/<", 3, 4, "outside '0'..'o'");   /* '/' = 47, just below '0' */
    expect_string_error("0< ", 3, 4, "outside '0'..'o'");
    expect_string_error("0<P", 3, 4, "does not end");       /* 'P' - 48 = 0x20: continue bit */
    expect_string_error("0l", 3, 4, "does not end");        /* 'l' - 48 = 0x3c */
    expect_string_error("<", 3, 5, "not h * w = 15");       /* [12] for a 3 x 5 mask */
    expect_string_error("0<1", 3, 4, "sum to 13");
    expect_string_error("", 3, 4, "sum to 0");
    expect_string_error("0PPPPPPPPPPPP0", 3, 4, "longer than 12 characters"); /* 13 groups */
    expect_string_error("0<", -3, 4, "negative");
    /* the empty string is a valid 0-pixel mask */
    rle r;
    char why[128];
    EXPECT(rle_from_string(&r, "", 0, 0, 7, why, sizeof why) == 0 && r.m == 0, "%s", why);
    rle_free(&r);
    /* from_counts refuses a bad sum the same way */
    uint32_t c[] = {3, 4};
    EXPECT(rle_from_counts(&r, c, 2, 2, 2, why, sizeof why) == -1 && strstr(why, "sum to 7"), "%s", why);
}

static void test_json_escape(void) {
    char out[32];
    const char *s = "a\\b\\";
    EXPECT(rle_json_escape(s, 4, out, sizeof out) == 6 && !strcmp(out, "a\\\\b\\\\"), "got '%s'", out);
    EXPECT(rle_json_escape("0<", 2, out, sizeof out) == 2 && !strcmp(out, "0<"));
    /* a real RLE string with a backslash: [44] is one value whose first group is 12 with the
     * continue bit (12 + 32 + 48 = 92 = '\\') */
    uint32_t c[] = {44};
    rle r;
    char why[128], str[16];
    REQUIRE(rle_from_counts(&r, c, 1, 4, 11, why, sizeof why) == 0);
    EXPECT(rle_to_string(&r, str, sizeof str) == 2 && !strcmp(str, "\\1"), "got '%s'", str);
    EXPECT(rle_json_escape(str, 2, out, sizeof out) == 3 && !strcmp(out, "\\\\1"), "got '%s'", out);
    /* too small a buffer: the needed length, a truncated NUL-terminated prefix */
    EXPECT(rle_json_escape(s, 4, out, 4) == 6 && !strcmp(out, "a\\\\"), "got '%s'", out);
    EXPECT(rle_to_string(&r, str, 2) == 2 && !strcmp(str, "\\"), "got '%s'", str);
    rle_free(&r);
}

/* Values > 600000 (multi-character, negative deltas) round-trip, and so do counts that
 * need more than 6 characters (h * w >= 2^28, where the official's int shift would not). */
static void test_large_counts(void) {
    uint32_t c[64];
    int m = 0;
    int64_t sum = 0, hw = 1500 * 2000;
    while (sum < hw - 2000000) {
        c[m] = (m % 3 == 0) ? 600001 + rnd() % 400000 : 1 + rnd() % 50;
        sum += c[m++];
    }
    c[m] = (uint32_t)(hw - sum);
    m++;
    rle r, back;
    char why[128];
    REQUIRE(rle_from_counts(&r, c, m, 1500, 2000, why, sizeof why) == 0, "%s", why);
    char *s = to_string(&r);
    EXPECT(strlen(s) > (size_t)m + 8, "multi-character values: %zu characters for %d counts", strlen(s), m);
    REQUIRE(rle_from_string(&back, s, strlen(s), 1500, 2000, why, sizeof why) == 0, "%s", why);
    EXPECT(same_counts(&back, c, m), "round trip of %d counts", m);
    uint8_t *mask = malloc((size_t)hw);
    rle_decode(&r, mask);
    rle again;
    REQUIRE(rle_encode(&again, mask, 1500, 2000) == 0);
    EXPECT(same_counts(&again, c, m), "decode + encode");
    free(mask);
    free(s);
    rle_free(&r);
    rle_free(&back);
    rle_free(&again);

    uint32_t big[] = {5, 2000000000u, 1000, 3, 1999998992u}; /* sum 4e9 = 50000 x 80000 */
    REQUIRE(rle_from_counts(&r, big, 5, 50000, 80000, why, sizeof why) == 0, "%s", why);
    s = to_string(&r);
    REQUIRE(rle_from_string(&back, s, strlen(s), 50000, 80000, why, sizeof why) == 0, "%s", why);
    EXPECT(same_counts(&back, big, 5), "'%s'", s);
    EXPECT(rle_area(&r) == 2000000003u);
    free(s);
    rle_free(&r);
    rle_free(&back);
}

/* Random masks: decode(encode(mask)) == mask, string round trip, area. */
static void test_encode_decode_random(void) {
    int bad = 0;
    for (int it = 0; it < 1000; it++) {
        int h = rnd_int(1, 30), w = rnd_int(1, 30);
        uint8_t *mask = malloc((size_t)h * w), *back = malloc((size_t)h * w);
        random_mask(mask, h, w);
        rle r, r2;
        REQUIRE(rle_encode(&r, mask, h, w) == 0);
        rle_decode(&r, back);
        uint32_t ones = 0;
        int same = 1;
        for (int i = 0; i < h * w; i++) {
            ones += mask[i] != 0;
            same &= back[i] == (mask[i] != 0);
        }
        char *s = to_string(&r), why[128];
        REQUIRE(rle_from_string(&r2, s, strlen(s), h, w, why, sizeof why) == 0, "%s", why);
        if (!(same && rle_area(&r) == ones && same_counts(&r2, r.cnts, r.m)) && bad++ < 5)
            EXPECT(0, "iteration %d (%dx%d): decode %d, area %u vs %u, string '%s'", it, h, w, same, rle_area(&r),
                   ones, s);
        free(s);
        rle_free(&r);
        rle_free(&r2);
        free(mask);
        free(back);
    }
    EXPECT(bad == 0, "%d of 1000 differ", bad);
}

int main(void) {
    RUN(test_spec_string_vectors);
    RUN(test_spec_polygon_vectors);
    RUN(test_polygon_parts);
    RUN(test_polygon_vs_reference);
    RUN(test_golden_polygons);
    RUN(test_golden_uncompressed);
    RUN(test_bbox_iou);
    RUN(test_rle_iou_brute_force);
    RUN(test_rle_iou_rules);
    RUN(test_merge);
    RUN(test_from_string_errors);
    RUN(test_json_escape);
    RUN(test_large_counts);
    RUN(test_encode_decode_random);
    cJSON_Delete(golden);
    return test_finish("test_rle");
}

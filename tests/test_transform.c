/* test_transform.c: the training transforms (src/data/transform.h).
 *
 *   - resize_shape against values computed by hand from detectron2's rule;
 *   - image_resize_bilinear against Pillow 9.4 (tests/golden/resize/, written by
 *     scripts/gen_resize_golden.py): every byte must match; small cases are stored whole,
 *     full-size LVIS cases as a hash of Pillow's output for an input both sides compute;
 *   - the flip, the box and polygon geometry and the normalisation against values worked
 *     out by hand (in the comments next to them);
 *   - a speed sanity bound on the LVIS-size resize. */
#include "test.h"

#include "data/transform.h"

#include <stdint.h>
#include <time.h>

#define GOLDEN "tests/golden/resize/"

/* ---- resize_shape ---- */

static void expect_shape(int h, int w, int s, int max_size, int want_h, int want_w) {
    int nh = -1, nw = -1;
    resize_shape(h, w, s, max_size, &nh, &nw);
    EXPECT(nh == want_h && nw == want_w, "%dx%d, short %d, max %d: got %dx%d, want %dx%d", h, w, s, max_size, nh, nw,
           want_h, want_w);
}

/* Hand computations (scale = s / short side; long = scale * long side; capped: both times
 * max / long; then floor(v + 0.5)). */
static void test_resize_shape(void) {
    expect_shape(480, 640, 800, 1333, 800, 1067);  /* 640 * 800/480 = 1066.67 -> 1067 */
    expect_shape(640, 480, 800, 1333, 1067, 800);  /* portrait: the same, transposed */
    expect_shape(427, 640, 640, 1333, 640, 959);   /* 640 * 640/427 = 959.25 -> 959 */
    expect_shape(300, 1200, 800, 1333, 333, 1333); /* 3200 > 1333: 800 * 1333/3200 = 333.25 -> 333 */
    expect_shape(1200, 300, 800, 1333, 1333, 333); /* the same, portrait */
    expect_shape(640, 854, 800, 1333, 800, 1068);  /* 854 * 1.25 = 1067.5 exactly: rounds up */
    expect_shape(640, 850, 800, 1333, 800, 1063);  /* 850 * 1.25 = 1062.5 exactly: rounds up too (floor(v + .5)) */
    expect_shape(500, 500, 640, 1333, 640, 640);   /* square: h < w is false, the short side is h */
    expect_shape(480, 640, 640, 1333, 640, 853);   /* 640 * 640/480 = 853.33 -> 853 */
    expect_shape(400, 1000, 800, 1333, 533, 1333); /* 2000 > 1333: 800 * 1333/2000 = 533.2 -> 533 */
    expect_shape(480, 640, 480, 1333, 480, 640);   /* no change */
    expect_shape(1000, 2000, 600, 1000, 500, 1000); /* 1200 > 1000: 600 * 1000/1200 = 500 */
    expect_shape(4, 5, 2, 1000, 2, 3);             /* 5 * 0.5 = 2.5 -> 3 */
}

/* ---- resize against Pillow ---- */

static uint8_t *read_golden(const char *name, size_t want) {
    char path[512];
    snprintf(path, sizeof path, GOLDEN "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("  cannot open %s (run /usr/bin/python3 scripts/gen_resize_golden.py)\n", path);
        return NULL;
    }
    uint8_t *buf = malloc(want + 1);
    size_t got = fread(buf, 1, want + 1, f);
    fclose(f);
    if (got != want) {
        printf("  %s: %zu bytes, want %zu\n", path, got, want);
        free(buf);
        return NULL;
    }
    return buf;
}

/* Exact comparison; on a mismatch reports the count, the largest |difference| and the
 * first few positions. */
static int expect_same_image(const char *what, const uint8_t *got, const uint8_t *want, int h, int w) {
    long bad = 0, n = (long)h * w * 3;
    int worst = 0;
    for (long i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)want[i]);
        if (d) {
            if (bad < 5)
                printf("    %s: y %ld x %ld c %ld: got %d want %d\n", what, i / 3 / w, i / 3 % w, i % 3, got[i],
                       want[i]);
            bad++;
            if (d > worst) worst = d;
        }
    }
    EXPECT(bad == 0, "%s: %ld of %ld bytes differ from Pillow, max |diff| %d", what, bad, n, worst);
    return bad == 0;
}

typedef struct golden_case {
    char kind[8], name[64];
    int h, w, nh, nw;
    unsigned long long hash;
} golden_case;

static int read_cases(golden_case *cs, int max) {
    FILE *f = fopen(GOLDEN "cases.txt", "r");
    if (!f) return -1;
    char line[256];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        golden_case *c = &cs[n];
        c->hash = 0;
        int k = sscanf(line, "%7s %63s %d %d %d %d %llx", c->kind, c->name, &c->h, &c->w, &c->nh, &c->nw, &c->hash);
        if (k < 6 || (!strcmp(c->kind, "big") && k != 7)) {
            printf("  cases.txt: bad line: %s", line);
            fclose(f);
            return -1;
        }
        n++;
    }
    fclose(f);
    return n;
}

static void test_resize_small_vs_pillow(void) {
    golden_case cs[64];
    int n = read_cases(cs, 64), done = 0;
    REQUIRE(n > 0, "cannot read " GOLDEN "cases.txt");
    for (int i = 0; i < n; i++) {
        const golden_case *c = &cs[i];
        if (strcmp(c->kind, "small")) continue;
        char fin[128], fout[160], what[192];
        snprintf(fin, sizeof fin, "img_%s.u8", c->name);
        snprintf(fout, sizeof fout, "out_%s_%dx%d.u8", c->name, c->nh, c->nw);
        snprintf(what, sizeof what, "%s %dx%d -> %dx%d", c->name, c->h, c->w, c->nh, c->nw);
        uint8_t *in = read_golden(fin, (size_t)c->h * c->w * 3);
        uint8_t *want = read_golden(fout, (size_t)c->nh * c->nw * 3);
        uint8_t *got = malloc((size_t)c->nh * c->nw * 3);
        EXPECT(in && want, "%s: golden files missing", what);
        if (in && want) {
            image_resize_bilinear(in, c->h, c->w, got, c->nh, c->nw);
            expect_same_image(what, got, want, c->nh, c->nw);
            done++;
        }
        free(in);
        free(want);
        free(got);
    }
    /* the script writes 18; fewer means a damaged cases.txt */
    EXPECT(done >= 18, "only %d small cases compared", done);
}

/* The big cases' input, as pattern_pixel in scripts/gen_resize_golden.py. */
static uint8_t pattern_pixel(uint32_t y, uint32_t x, uint32_t c) {
    if (((x >> 5) + (y >> 5)) & 1) return (uint8_t)((x * 3 + y * 2 + c * 50) & 255);
    uint32_t v = (x * 73856093u) ^ (y * 19349663u) ^ (c * 83492791u);
    v ^= v >> 13;
    v *= 0x5BD1E995u;
    v ^= v >> 15;
    return (uint8_t)(v & 255);
}

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

static uint8_t *pattern_image(int h, int w) {
    uint8_t *img = malloc((size_t)h * w * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) img[((size_t)y * w + x) * 3 + c] = pattern_pixel(y, x, c);
    return img;
}

static void test_resize_lvis_sizes_vs_pillow(void) {
    golden_case cs[64];
    int n = read_cases(cs, 64), done = 0;
    REQUIRE(n > 0, "cannot read " GOLDEN "cases.txt");
    for (int i = 0; i < n; i++) {
        const golden_case *c = &cs[i];
        if (strcmp(c->kind, "big")) continue;
        uint8_t *in = pattern_image(c->h, c->w), *got = malloc((size_t)c->nh * c->nw * 3);
        image_resize_bilinear(in, c->h, c->w, got, c->nh, c->nw);
        uint64_t hsh = fnv1a64(got, (size_t)c->nh * c->nw * 3);
        EXPECT(hsh == c->hash, "pattern %dx%d -> %dx%d: output hash %016llx, Pillow's %016llx", c->h, c->w, c->nh,
               c->nw, (unsigned long long)hsh, c->hash);
        free(in);
        free(got);
        done++;
    }
    EXPECT(done >= 4, "only %d big cases compared", done);
}

/* The scratch-buffer form gives the same bytes whatever the scratch held before. */
static void test_resize_work_buffer(void) {
    int h = 48, w = 64, nh = 80, nw = 107;
    uint8_t *in = pattern_image(h, w), *a = malloc((size_t)nh * nw * 3), *b = malloc((size_t)nh * nw * 3);
    size_t n = image_resize_work_bytes(h, w, nh, nw);
    EXPECT(n >= (size_t)nw * h * 3 && n < (size_t)nw * h * 3 + 16384, "scratch %zu bytes", n);
    unsigned char *work = malloc(n);
    memset(work, 0xAB, n);
    image_resize_bilinear(in, h, w, a, nh, nw);
    image_resize_bilinear_work(in, h, w, b, nh, nw, work);
    EXPECT(!memcmp(a, b, (size_t)nh * nw * 3), "scratch contents leak into the result");
    /* same size: a copy */
    image_resize_bilinear_work(in, h, w, b, h, w, work);
    EXPECT(!memcmp(in, b, (size_t)h * w * 3), "same-size resize is not a copy");
    free(work);
    free(in);
    free(a);
    free(b);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Sanity, not a benchmark: 480x640 -> 800x1067 takes a few ms on one core (about 4 ms at
 * -O2 on the development machine); the bound is loose so that a loaded machine or the
 * sanitizer build does not fail, yet a per-pixel float path or a per-pixel coefficient
 * recomputation would. */
static void test_resize_speed(void) {
    int h = 480, w = 640, nh = 800, nw = 1067;
    uint8_t *in = pattern_image(h, w), *out = malloc((size_t)nh * nw * 3);
    void *work = malloc(image_resize_work_bytes(h, w, nh, nw));
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = now_ms();
        image_resize_bilinear_work(in, h, w, out, nh, nw, work);
        double t = now_ms() - t0;
        if (t < best) best = t;
    }
#if defined(__SANITIZE_ADDRESS__)
    double limit = 400;
#else
    double limit = 40;
#endif
    EXPECT(best < limit, "480x640 -> 800x1067 took %.1f ms (best of 5), limit %.0f ms", best, limit);
    free(work);
    free(in);
    free(out);
}

/* ---- flip ---- */

static void test_flip(void) {
    /* 2 rows of 3 pixels, pixel (y, x) = (10y + x, 100 + 10y + x, 200 + x) */
    uint8_t img[2 * 3 * 3], want[2 * 3 * 3];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++) {
            uint8_t *p = img + (y * 3 + x) * 3, *q = want + (y * 3 + (2 - x)) * 3;
            p[0] = q[0] = (uint8_t)(10 * y + x);
            p[1] = q[1] = (uint8_t)(100 + 10 * y + x);
            p[2] = q[2] = (uint8_t)(200 + x);
        }
    image_flip_h(img, 2, 3);
    EXPECT(!memcmp(img, want, sizeof img), "odd width: pixel x -> 2 - x, channels kept in order");
    EXPECT(img[0] == 2 && img[1] == 102 && img[2] == 202 && img[3 * 3] == 12, "row 0 starts with old pixel 2");
    /* even width: 1 x 4 */
    uint8_t e[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, ew[12] = {10, 11, 12, 7, 8, 9, 4, 5, 6, 1, 2, 3};
    image_flip_h(e, 1, 4);
    EXPECT(!memcmp(e, ew, 12), "even width");
    /* width 1: unchanged */
    uint8_t one[6] = {1, 2, 3, 4, 5, 6}, one_w[6] = {1, 2, 3, 4, 5, 6};
    image_flip_h(one, 2, 1);
    EXPECT(!memcmp(one, one_w, 6), "width 1");
}

/* ---- instance geometry ---- */

#define EXPECT_BOX(g, a, b, c, d)                                                                             \
    EXPECT((g).box[0] == (float)(a) && (g).box[1] == (float)(b) && (g).box[2] == (float)(c) &&               \
               (g).box[3] == (float)(d),                                                                     \
           "box %.7g %.7g %.7g %.7g, want %.7g %.7g %.7g %.7g", (g).box[0], (g).box[1], (g).box[2], (g).box[3], \
           (double)(a), (double)(b), (double)(c), (double)(d))

/* An image of 100 rows x 200 columns resized 2x to 200 x 400, then flipped: x -> 400 - 2x,
 * y -> 2y (all values below are exact in float). */
static void test_geom_resize2x_flip(void) {
    geom_xform t;
    geom_xform_init(&t, 100, 200, 200, 400, 1);
    EXPECT(t.sx == 2.0 && t.sy == 2.0 && t.nw == 400 && t.nh == 200 && t.flip == 1);
    float verts[] = {10, 20, 40, 20, 40, 60,          /* triangle of the first box */
                     190, 90, 210, 90, 210, 110, 190, 110, /* square past the right/bottom edges */
                     1, 2, 3, 4};                          /* 2 points: degenerate */
    lvis_poly polys[] = {{0, 6}, {6, 8}, {14, 4}};
    float out[32];
    int64_t pn[4];
    inst_geom g;

    /* box (10, 20, 30, 40) xywh = (10, 20, 40, 60) xyxy -> scaled (20, 40, 80, 120) ->
     * flipped x: 400 - 80 = 320, 400 - 20 = 380: (320, 40, 380, 120); the triangle
     * (10,20) (40,20) (40,60) -> (380,40) (320,40) (320,120). */
    float b1[4] = {10, 20, 30, 40};
    EXPECT(inst_geom_apply(&t, b1, verts, polys, 1, out, pn, &g) == 1);
    EXPECT_BOX(g, 320, 40, 380, 120);
    EXPECT(g.n_poly == 1 && g.n_vert == 6 && pn[0] == 6, "%d polygons, %lld coordinates", g.n_poly,
           (long long)g.n_vert);
    float w1[6] = {380, 40, 320, 40, 320, 120};
    EXPECT(!memcmp(out, w1, sizeof w1), "triangle: %g %g %g %g %g %g", out[0], out[1], out[2], out[3], out[4], out[5]);

    /* box (190, 90, 20, 20) -> (190, 90, 210, 110) -> scaled (380, 180, 420, 220) ->
     * flipped x (-20 .. 20) -> clipped to (0, 180, 20, 200). The polygon is not clipped:
     * (190,90) (210,90) (210,110) (190,110) -> (20,180) (-20,180) (-20,220) (20,220). The
     * degenerate 2-point polygon is left out; the square is kept. */
    float b2[4] = {190, 90, 20, 20};
    EXPECT(inst_geom_apply(&t, b2, verts, polys + 1, 2, out, pn, &g) == 1);
    EXPECT_BOX(g, 0, 180, 20, 200);
    EXPECT(g.n_poly == 1 && g.n_vert == 8 && pn[0] == 8);
    float w2[8] = {20, 180, -20, 180, -20, 220, 20, 220};
    EXPECT(!memcmp(out, w2, sizeof w2), "square: %g %g %g %g ...", out[0], out[1], out[2], out[3]);

    /* box (205, 10, 5, 5): x 205..210 -> 410..420 -> flipped -20..-10 -> clipped 0..0:
     * width 0, dropped. */
    float b3[4] = {205, 10, 5, 5};
    EXPECT(inst_geom_apply(&t, b3, NULL, NULL, 0, out, pn, &g) == 0, "a box outside the image is kept: %g %g %g %g",
           g.box[0], g.box[1], g.box[2], g.box[3]);
    EXPECT(g.n_poly == 0 && g.n_vert == 0);
    /* box (50, 100, 10, 5): y 100..105 -> 200..210 -> clipped to 200..200: dropped. */
    float b4[4] = {50, 100, 10, 5};
    EXPECT(inst_geom_apply(&t, b4, NULL, NULL, 0, out, pn, &g) == 0, "a box below the image is kept");
    /* a good box whose only polygon is degenerate: no mask left, dropped */
    EXPECT(inst_geom_apply(&t, b1, verts, polys + 2, 1, out, pn, &g) == 0, "an instance with no valid polygon is kept");
    /* a box-only instance (no polygons) is kept */
    EXPECT(inst_geom_apply(&t, b1, verts, polys, 0, out, pn, &g) == 1 && g.n_poly == 0 && g.n_vert == 0);
}

/* The 1e-5 threshold (detectron2 filter_empty_instances), no flip, scale 2: a box of width
 * 4e-6 at x = 0 becomes 8e-6 wide (<= 1e-5, dropped); width 6e-6 becomes 1.2e-5 (kept).
 * With the flip the same box lands near x = 400, where float32 cannot hold a width of
 * 1.2e-5 (its spacing there is 3.05e-5): it collapses to 0 and is dropped, as in
 * detectron2's float32 Boxes. */
static void test_geom_empty_threshold(void) {
    geom_xform t, tf;
    geom_xform_init(&t, 100, 200, 200, 400, 0);
    geom_xform_init(&tf, 100, 200, 200, 400, 1);
    float out[8];
    int64_t pn[2];
    inst_geom g;
    float thin[4] = {0, 10, 4e-6f, 10}, ok[4] = {0, 10, 6e-6f, 10};
    EXPECT(inst_geom_apply(&t, thin, NULL, NULL, 0, out, pn, &g) == 0, "width %g kept", g.box[2] - g.box[0]);
    EXPECT(inst_geom_apply(&t, ok, NULL, NULL, 0, out, pn, &g) == 1, "width %g dropped", g.box[2] - g.box[0]);
    EXPECT(inst_geom_apply(&tf, ok, NULL, NULL, 0, out, pn, &g) == 0, "flipped: box %.9g..%.9g kept", g.box[0],
           g.box[2]);
}

/* A non-uniform LVIS resize, 480x640 -> 800x1067, no flip: sx = 1067/640 = 1.6671875,
 * sy = 800/480 = 5/3. The point (320, 240) -> (533.5, 400); (640, 480) -> (1067, 800). A
 * box (600, 450, 100, 100) -> xyxy (600, 450, 700, 550) -> (1000.3125, 750, 1167.03, 916.67)
 * -> clipped (1000.3125, 750, 1067, 800). */
static void test_geom_lvis_scale(void) {
    geom_xform t;
    geom_xform_init(&t, 480, 640, 800, 1067, 0);
    double x, y;
    geom_point(&t, 320, 240, &x, &y);
    EXPECT(fabs(x - 533.5) < 1e-9 && fabs(y - 400) < 1e-9, "(320, 240) -> (%.12g, %.12g)", x, y);
    geom_point(&t, 640, 480, &x, &y);
    EXPECT(fabs(x - 1067) < 1e-9 && fabs(y - 800) < 1e-9, "(640, 480) -> (%.12g, %.12g)", x, y);
    float b[4] = {600, 450, 100, 100}, out[4];
    int64_t pn[1];
    inst_geom g;
    EXPECT(inst_geom_apply(&t, b, NULL, NULL, 0, out, pn, &g) == 1);
    double got[4] = {g.box[0], g.box[1], g.box[2], g.box[3]}, want[4] = {1000.3125, 750, 1067, 800};
    EXPECT_CLOSE("box", got, want, 4, 1e-4, 0);
    /* with the flip: x -> 1067 - 1.6671875 x: (600..700) -> (-100.03, 66.6875) -> clipped 0..66.6875 */
    geom_xform_init(&t, 480, 640, 800, 1067, 1);
    EXPECT(inst_geom_apply(&t, b, NULL, NULL, 0, out, pn, &g) == 1);
    double got2[4] = {g.box[0], g.box[1], g.box[2], g.box[3]}, want2[4] = {0, 750, 66.6875, 800};
    EXPECT_CLOSE("flipped box", got2, want2, 4, 1e-4, 0);
}

/* The image flip and the geometry flip agree: pixel column x covers [x, x + 1), which the
 * geometry maps to [W - 1 - x, W - x), the column image_flip_h moves it to. */
static void test_flip_image_and_geometry_agree(void) {
    int h = 2, w = 5;
    uint8_t img[2 * 5 * 3] = {0};
    img[(1 * w + 1) * 3] = 255; /* pixel (y 1, x 1) */
    image_flip_h(img, h, w);
    geom_xform t;
    geom_xform_init(&t, h, w, h, w, 1);
    float b[4] = {1, 1, 1, 1}, out[4];
    int64_t pn[1];
    inst_geom g;
    EXPECT(inst_geom_apply(&t, b, NULL, NULL, 0, out, pn, &g) == 1);
    EXPECT_BOX(g, 3, 1, 4, 2);
    EXPECT(img[(1 * w + 3) * 3] == 255, "flipped pixel not at column 3");
}

/* ---- normalisation ---- */

/* A 2x2 image in a 3x4 canvas. Pixels (R, G, B): (0,0) = (10, 20, 30), (0,1) = (40, 50, 60),
 * (1,0) = (200, 100, 0), (1,1) = (255, 255, 255). */
static void test_normalize_pad(void) {
    const uint8_t img[12] = {10, 20, 30, 40, 50, 60, 200, 100, 0, 255, 255, 255};
    float canvas[3 * 4 * 3];
    /* BGR with detectron2's mean (B, G, R) = (103.530, 116.280, 123.675), std 1:
     * out = (B - 103.53, G - 116.28, R - 123.675). */
    const float mean_bgr[3] = {103.530f, 116.280f, 123.675f}, one[3] = {1, 1, 1};
    for (int i = 0; i < 36; i++) canvas[i] = NAN;
    image_normalize_pad(img, 2, 2, 1, mean_bgr, one, canvas, 3, 4);
    double want_bgr[36] = {0};
    const double px[4][3] = {{30 - 103.53, 20 - 116.28, 10 - 123.675},
                             {60 - 103.53, 50 - 116.28, 40 - 123.675},
                             {0 - 103.53, 100 - 116.28, 200 - 123.675},
                             {255 - 103.53, 255 - 116.28, 255 - 123.675}};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            for (int c = 0; c < 3; c++) want_bgr[(y * 4 + x) * 3 + c] = px[y * 2 + x][c];
    double got[36];
    for (int i = 0; i < 36; i++) got[i] = canvas[i];
    EXPECT_CLOSE("BGR canvas", got, want_bgr, 36, 1e-4, 0);
    EXPECT(canvas[0] == 30.0f - 103.530f, "float32 arithmetic: %.9g", canvas[0]);
    int pad_zero = 1;
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++)
            if (y >= 2 || x >= 2)
                for (int c = 0; c < 3; c++) pad_zero &= canvas[(y * 4 + x) * 3 + c] == 0.0f;
    EXPECT(pad_zero, "padding is not exactly 0");

    /* RGB with mean (1, 2, 3) and std (2, 4, 5): (0,0) -> (4.5, 4.5, 5.4), (0,1) -> (19.5,
     * 12, 11.4), (1,0) -> (99.5, 24.5, -0.6), (1,1) -> (127, 63.25, 50.4); rest 0. */
    const float mean[3] = {1, 2, 3}, stdv[3] = {2, 4, 5};
    for (int i = 0; i < 36; i++) canvas[i] = NAN;
    image_normalize_pad(img, 2, 2, 0, mean, stdv, canvas, 3, 4);
    double want_rgb[36] = {0};
    const double q[4][3] = {{4.5, 4.5, 5.4}, {19.5, 12, 11.4}, {99.5, 24.5, -0.6}, {127, 63.25, 50.4}};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            for (int c = 0; c < 3; c++) want_rgb[(y * 4 + x) * 3 + c] = q[y * 2 + x][c];
    for (int i = 0; i < 36; i++) got[i] = canvas[i];
    EXPECT_CLOSE("RGB canvas", got, want_rgb, 36, 1e-5, 0);
}

int main(void) {
    RUN(test_resize_shape);
    RUN(test_resize_small_vs_pillow);
    RUN(test_resize_lvis_sizes_vs_pillow);
    RUN(test_resize_work_buffer);
    RUN(test_resize_speed);
    RUN(test_flip);
    RUN(test_geom_resize2x_flip);
    RUN(test_geom_empty_threshold);
    RUN(test_geom_lvis_scale);
    RUN(test_flip_image_and_geometry_agree);
    RUN(test_normalize_pad);
    return test_finish("test_transform");
}

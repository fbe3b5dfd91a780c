/* test_loader.c: the training data loader (src/data/loader.h) on a small LVIS-format data
 * set written here: JPEGs encoded with TurboJPEG into a temporary folder, landscape and
 * portrait, plus a missing file, a truncated JPEG, a text file named .jpg and an image
 * whose size disagrees with its annotation.
 *
 * What is checked: batches are bit-identical with 0, 1, 2 and 4 threads; each delivered
 * image sits in its slot of the canvas as decode -> resize -> flip -> normalise would put
 * it, with zero padding; boxes follow the hand formula (x * nw / w, mirrored as nw - x);
 * bad images are counted by kind and never delivered; a wrong image root stops with one
 * line; max_gt is enforced; a cursor resumes the same batches. */
#include "test.h"

#include "data/data_cmd.h"
#include "data/jpeg.h"
#include "data/loader.h"
#include "data/transform.h"

#include <math.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

static char dir[256];
static lvis_data data;

typedef struct img_spec {
    const char *name;
    int w, h;       /* as written in the annotation file */
    int file_w, file_h; /* as encoded (0: no JPEG written) */
    const char *kind; /* "jpeg", "missing", "truncated", "text" */
} img_spec;

/* Images 1..8 good (5 landscape, 3 portrait), 9 missing, 10 truncated, 11 not a JPEG,
 * 12 a 40x30 JPEG annotated as 48x36. */
static const img_spec specs[] = {
    {"a.jpg", 64, 48, 64, 48, "jpeg"},   {"b.jpg", 48, 64, 48, 64, "jpeg"},      {"c.jpg", 80, 40, 80, 40, "jpeg"},
    {"d.jpg", 36, 52, 36, 52, "jpeg"},   {"e.jpg", 57, 43, 57, 43, "jpeg"},      {"f.jpg", 40, 40, 40, 40, "jpeg"},
    {"g.jpg", 70, 50, 70, 50, "jpeg"},   {"h.jpg", 66, 30, 66, 30, "jpeg"},      {"missing.jpg", 50, 40, 0, 0, "missing"},
    {"cut.jpg", 64, 48, 64, 48, "truncated"}, {"text.jpg", 64, 48, 0, 0, "text"}, {"small.jpg", 48, 36, 40, 30, "jpeg"},
};
#define N_IMG (int)(sizeof specs / sizeof *specs)

static void write_jpeg(const char *path, int w, int h, int seed, double keep) {
    unsigned char *px = malloc((size_t)w * h * 3), *jpg = NULL;
    unsigned long size = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                px[(y * w + x) * 3 + c] = (unsigned char)((x * (3 + c) + y * (5 - c) + seed * 40 + ((x / 8 + y / 8) % 2) * 60) & 255);
    tjhandle tj = tjInitCompress();
    REQUIRE(tj && tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, &size, TJSAMP_420, 90, 0) == 0, "encode %s", path);
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "write %s", path);
    fwrite(jpg, 1, (size_t)(size * keep), f);
    fclose(f);
    tjFree(jpg);
    tjDestroy(tj);
    free(px);
}

/* The data set: each image gets 2 annotations of class (i % 3) + 1 with a triangle; image 3
 * (c.jpg) gets a third, box-only one outside the picture (dropped as empty). */
static void write_dataset(void) {
    char path[512];
    for (int i = 0; i < N_IMG; i++) {
        snprintf(path, sizeof path, "%s/img/%s", dir, specs[i].name);
        if (!strcmp(specs[i].kind, "jpeg")) write_jpeg(path, specs[i].file_w, specs[i].file_h, i, 1.0);
        if (!strcmp(specs[i].kind, "truncated")) write_jpeg(path, specs[i].file_w, specs[i].file_h, i, 0.5);
        if (!strcmp(specs[i].kind, "text")) {
            FILE *f = fopen(path, "w");
            fputs("this is not a picture\n", f);
            fclose(f);
        }
    }
    snprintf(path, sizeof path, "%s/ann.json", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fprintf(f, "{\"categories\": [{\"id\": 1, \"name\": \"x\", \"frequency\": \"f\"}, {\"id\": 2, \"name\": \"y\", "
               "\"frequency\": \"c\"}, {\"id\": 3, \"name\": \"z\", \"frequency\": \"r\"}],\n\"images\": [");
    for (int i = 0; i < N_IMG; i++)
        fprintf(f, "%s{\"id\": %d, \"width\": %d, \"height\": %d, \"file_name\": \"img/%s\"}", i ? ",\n" : "", 100 + i,
                specs[i].w, specs[i].h, specs[i].name);
    fprintf(f, "],\n\"annotations\": [");
    int id = 1;
    for (int i = 0; i < N_IMG; i++) {
        float w = (float)specs[i].w, h = (float)specs[i].h;
        for (int k = 0; k < 2; k++) {
            float x = 2.0f + 5 * k, y = 3.0f + 4 * k, bw = w / 2, bh = h / 3;
            fprintf(f, "%s{\"id\": %d, \"image_id\": %d, \"category_id\": %d, \"bbox\": [%g, %g, %g, %g], \"area\": 1, "
                       "\"segmentation\": [[%g, %g, %g, %g, %g, %g]]}",
                    id > 1 ? ",\n" : "", id, 100 + i, i % 3 + 1, x, y, bw, bh, x, y, x + bw, y, x, y + bh);
            id++;
        }
        if (i == 2) fprintf(f, ",\n{\"id\": %d, \"image_id\": 102, \"category_id\": 1, \"bbox\": [90, 10, 5, 5], \"area\": 1}", id++);
    }
    fprintf(f, "]}\n");
    fclose(f);
}

static loader_config small_config(int threads) {
    loader_config c;
    loader_config_default(&c, 3, 1234);
    c.threads = threads, c.prefetch = 2;
    c.n_short = 3, c.short_sizes[0] = 32, c.short_sizes[1] = 48, c.short_sizes[2] = 56;
    c.max_size = 80, c.size_divisibility = 16, c.pinned = 0;
    return c;
}

/* A deep copy of what a batch says, for comparing runs. */
typedef struct snap {
    loader_batch b;
    size_t pix;
} snap;

static snap take(const loader_batch *b) {
    snap s = {*b, (size_t)b->n * b->canvas_h * b->canvas_w * 3};
    s.b.pixels = malloc(s.pix * sizeof(float) + 1), memcpy(s.b.pixels, b->pixels, s.pix * sizeof(float));
    s.b.gt_box = malloc(4 * b->n_gt * sizeof(float) + 1), memcpy(s.b.gt_box, b->gt_box, 4 * b->n_gt * sizeof(float));
    s.b.gt_class = malloc(b->n_gt * sizeof(int32_t) + 1), memcpy(s.b.gt_class, b->gt_class, b->n_gt * sizeof(int32_t));
    s.b.verts = malloc(b->n_vert * sizeof(float) + 1), memcpy(s.b.verts, b->verts, b->n_vert * sizeof(float));
    s.b.gt_first_poly = malloc(b->n_gt * sizeof(int32_t) + 1);
    memcpy(s.b.gt_first_poly, b->gt_first_poly, b->n_gt * sizeof(int32_t));
    s.b.gt_n_poly = malloc(b->n_gt * sizeof(int32_t) + 1), memcpy(s.b.gt_n_poly, b->gt_n_poly, b->n_gt * sizeof(int32_t));
    s.b.poly_first = malloc(b->n_poly * sizeof(int64_t) + 1);
    memcpy(s.b.poly_first, b->poly_first, b->n_poly * sizeof(int64_t));
    s.b.poly_n = malloc(b->n_poly * sizeof(int64_t) + 1), memcpy(s.b.poly_n, b->poly_n, b->n_poly * sizeof(int64_t));
    return s;
}

static void drop(snap *s) {
    free(s->b.pixels), free(s->b.gt_box), free(s->b.gt_class), free(s->b.verts);
    free(s->b.gt_first_poly), free(s->b.gt_n_poly), free(s->b.poly_first), free(s->b.poly_n);
}

static int same(const snap *a, const snap *b) {
    return a->b.index == b->b.index && a->b.n == b->b.n && a->b.canvas_h == b->b.canvas_h &&
           a->b.canvas_w == b->b.canvas_w && !memcmp(a->b.img, b->b.img, sizeof a->b.img) && a->b.n_gt == b->b.n_gt &&
           a->b.n_vert == b->b.n_vert && !memcmp(a->b.pixels, b->b.pixels, a->pix * sizeof(float)) &&
           !memcmp(a->b.gt_box, b->b.gt_box, 4 * a->b.n_gt * sizeof(float)) &&
           !memcmp(a->b.gt_class, b->b.gt_class, a->b.n_gt * sizeof(int32_t)) &&
           !memcmp(a->b.verts, b->b.verts, a->b.n_vert * sizeof(float)) && a->b.n_poly == b->b.n_poly &&
           !memcmp(a->b.gt_first_poly, b->b.gt_first_poly, a->b.n_gt * sizeof(int32_t)) &&
           !memcmp(a->b.gt_n_poly, b->b.gt_n_poly, a->b.n_gt * sizeof(int32_t)) &&
           !memcmp(a->b.poly_first, b->b.poly_first, a->b.n_poly * sizeof(int64_t)) &&
           !memcmp(a->b.poly_n, b->b.poly_n, a->b.n_poly * sizeof(int64_t));
}

#define RUN_BATCHES 16

static void run(int threads, snap *out, loader_counts *counts) {
    loader_config c = small_config(threads);
    char err[512] = "";
    loader *l = loader_new(&data, &c, err, sizeof err);
    REQUIRE(l, "%s", err);
    for (int k = 0; k < RUN_BATCHES; k++) {
        const loader_batch *b = loader_next(l, err, sizeof err);
        REQUIRE(b, "batch %d: %s", k, err);
        out[k] = take(b);
    }
    *counts = *loader_get_counts(l);
    loader_free(l);
}

static int is_good(int index) { return index < 8; }

/* Every delivered image, rebuilt independently from its file and its draws. */
static void check_batch(const loader_batch *b, const loader_config *c) {
    size_t slot = (size_t)b->canvas_h * b->canvas_w * 3;
    EXPECT(b->canvas_h % 16 == 0 && b->canvas_w % 16 == 0, "canvas %dx%d", b->canvas_h, b->canvas_w);
    jpeg_decoder *j = jpeg_decoder_new();
    image_u8 im = {0};
    for (int k = 0; k < b->n; k++) {
        const loader_image *li = &b->img[k];
        EXPECT(is_good(li->index), "batch %lld delivers bad image %d", (long long)b->index, li->index);
        if (!is_good(li->index)) continue;
        int nh, nw;
        resize_shape(li->orig_h, li->orig_w, li->short_side, c->max_size, &nh, &nw);
        EXPECT(nh == li->h && nw == li->w && nh <= b->canvas_h && nw <= b->canvas_w, "image %d: %dx%d", li->index, li->h, li->w);
        char path[512], err[256];
        lvis_image_path(&data, li->index, path, sizeof path);
        REQUIRE(jpeg_read(j, path, &im, err, sizeof err) == JPEG_OK, "%s", err);
        uint8_t *rs = malloc((size_t)nh * nw * 3);
        image_resize_bilinear(im.data, im.h, im.w, rs, nh, nw);
        if (li->flipped) image_flip_h(rs, nh, nw);
        const float *got = b->pixels + k * slot;
        int bad = 0;
        for (int y = 0; y < b->canvas_h && bad < 3; y++)
            for (int x = 0; x < b->canvas_w && bad < 3; x++)
                for (int ch = 0; ch < 3; ch++) {
                    /* BGR: output channel ch holds input channel 2 - ch */
                    float want = y < nh && x < nw ? ((float)rs[(y * nw + x) * 3 + (2 - ch)] - c->mean[ch]) / c->std[ch] : 0.0f;
                    float g = got[(y * b->canvas_w + x) * 3 + ch];
                    if (g != want) {
                        bad++;
                        EXPECT(0, "batch %lld image %d pixel (%d,%d,%d): %g, want %g", (long long)b->index, li->index, y, x, ch, g, want);
                    }
                }
        free(rs);
        /* boxes by hand: annotation k of image i is x = 2 + 5k, y = 3 + 4k, w/2 x h/3 */
        int want_gt = 2;
        EXPECT(li->n_gt == want_gt, "image %d: %d instances, want %d", li->index, li->n_gt, want_gt);
        double sx = (double)nw / li->orig_w, sy = (double)nh / li->orig_h;
        for (int g = 0; g < li->n_gt && g < 2; g++) {
            const float *bx = b->gt_box + 4 * (li->first_gt + g);
            double x0 = (2.0 + 5 * g) * sx, x1 = (2.0 + 5 * g + li->orig_w / 2.0) * sx;
            double y0 = (3.0 + 4 * g) * sy, y1 = (3.0 + 4 * g + li->orig_h / 3.0) * sy;
            if (li->flipped) {
                double t = nw - x1;
                x1 = nw - x0, x0 = t;
            }
            x1 = fmin(x1, nw), y1 = fmin(y1, nh);
            EXPECT(fabs(bx[0] - x0) < 1e-4 && fabs(bx[1] - y0) < 1e-4 && fabs(bx[2] - x1) < 1e-4 && fabs(bx[3] - y1) < 1e-4,
                   "image %d box %d: %g %g %g %g, want %g %g %g %g", li->index, g, bx[0], bx[1], bx[2], bx[3], x0, y0, x1, y1);
            EXPECT(b->gt_class[li->first_gt + g] == li->index % 3, "class %d", b->gt_class[li->first_gt + g]);
            EXPECT(b->gt_n_poly[li->first_gt + g] == 1 && b->poly_n[b->gt_first_poly[li->first_gt + g]] == 6, "image %d instance %d: %d polygons, the first of %lld coordinates", li->index, g, b->gt_n_poly[li->first_gt + g], (long long)b->poly_n[b->gt_first_poly[li->first_gt + g]]);
            const float *v = b->verts + b->poly_first[b->gt_first_poly[li->first_gt + g]];
            double px = (2.0 + 5 * g) * sx;
            if (li->flipped) px = nw - px;
            EXPECT(fabs(v[0] - px) < 1e-4 && fabs(v[1] - y0) < 1e-4, "polygon start %g %g, want %g %g", v[0], v[1], px, y0);
        }
    }
    image_u8_free(&im);
    jpeg_decoder_free(j);
}

static void test_threads_agree_and_content(void) {
    snap ref[RUN_BATCHES], other[RUN_BATCHES];
    loader_counts c0, c;
    run(0, ref, &c0);
    loader_config cfg = small_config(0);
    for (int k = 0; k < RUN_BATCHES; k++) check_batch(&ref[k].b, &cfg);
    int threads[] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        run(threads[t], other, &c);
        for (int k = 0; k < RUN_BATCHES; k++) {
            EXPECT(same(&ref[k], &other[k]), "%d threads: batch %d differs from 0 threads", threads[t], k);
            drop(&other[k]);
        }
        EXPECT(c.images == c0.images && c.failed[JPEG_ERR_TRUNCATED] == c0.failed[JPEG_ERR_TRUNCATED],
               "%d threads: counts differ", threads[t]);
    }
    /* the bad images came up (16 batches of 3 draw every image with RFS off? the sampler is
     * RFS with all classes frequent here, so uniform-like) and were counted by kind */
    EXPECT(c0.failed[JPEG_ERR_OPEN] > 0 && c0.failed[JPEG_ERR_TRUNCATED] > 0 && c0.failed[JPEG_ERR_NOT_JPEG] > 0 &&
               c0.size_mismatch > 0,
           "left out: open %lld, truncated %lld, not JPEG %lld, size %lld", (long long)c0.failed[JPEG_ERR_OPEN],
           (long long)c0.failed[JPEG_ERR_TRUNCATED], (long long)c0.failed[JPEG_ERR_NOT_JPEG], (long long)c0.size_mismatch);
    EXPECT(c0.dropped_gt > 0, "the box outside c.jpg was not dropped");
    int64_t delivered = 0;
    for (int k = 0; k < RUN_BATCHES; k++) delivered += ref[k].b.n;
    EXPECT(c0.images == delivered && c0.batches == RUN_BATCHES, "counts: %lld images, %lld batches", (long long)c0.images,
           (long long)c0.batches);
    for (int k = 0; k < RUN_BATCHES; k++) drop(&ref[k]);
}

/* A coarse canvas_step: one canvas per orientation group, the largest the group can need
 * (short sides up to 56 -> 64, long sides up to 80 -> 80 at divisibility 16), content intact. */
static void test_fixed_canvas(void) {
    loader_config c = small_config(2);
    c.canvas_step = 1024;
    char err[512] = "";
    loader *l = loader_new(&data, &c, err, sizeof err);
    REQUIRE(l, "%s", err);
    for (int k = 0; k < 10; k++) {
        const loader_batch *b = loader_next(l, err, sizeof err);
        REQUIRE(b, "%s", err);
        int want_h = b->group == 0 ? 64 : 80, want_w = b->group == 0 ? 80 : 64;
        EXPECT(b->canvas_h == want_h && b->canvas_w == want_w, "batch %lld (group %d): canvas %dx%d, want %dx%d",
               (long long)b->index, b->group, b->canvas_h, b->canvas_w, want_h, want_w);
        check_batch(b, &c);
    }
    loader_free(l);
    c.canvas_step = 40;
    EXPECT(!loader_new(&data, &c, err, sizeof err) && strstr(err, "canvas_step 40 is not a multiple of size_divisibility 16"),
           "%s", err);
}

static void test_cursor_resume(void) {
    loader_config c = small_config(2);
    char err[512] = "";
    loader *a = loader_new(&data, &c, err, sizeof err);
    REQUIRE(a, "%s", err);
    for (int k = 0; k < 5; k++) REQUIRE(loader_next(a, err, sizeof err), "%s", err);
    sampler_cursor cur;
    int64_t next;
    loader_get_cursor(a, &cur, &next);
    snap want[6];
    for (int k = 0; k < 6; k++) {
        const loader_batch *nb = loader_next(a, err, sizeof err);
        REQUIRE(nb, "%s", err);
        want[k] = take(nb);
    }
    loader *b = loader_new(&data, &c, err, sizeof err);
    REQUIRE(b, "%s", err);
    REQUIRE(loader_next(b, err, sizeof err)); /* in flight: thrown away by the cursor */
    REQUIRE(loader_set_cursor(b, &cur, next, err, sizeof err) == 0, "%s", err);
    for (int k = 0; k < 6; k++) {
        const loader_batch *nb = loader_next(b, err, sizeof err);
        REQUIRE(nb, "%s", err);
        snap got = take(nb);
        EXPECT(same(&got, &want[k]), "resumed batch %d differs", k);
        drop(&got), drop(&want[k]);
    }
    loader_free(a), loader_free(b);
}

static void test_wrong_root_and_limits(void) {
    lvis_data d;
    char err[512] = "", path[512];
    snprintf(path, sizeof path, "%s/ann.json", dir);
    REQUIRE(lvis_load(&d, path, "/nonexistent/images", LVIS_STRICT, err, sizeof err) == 0, "%s", err);
    loader_config c = small_config(2);
    loader *l = loader_new(&d, &c, err, sizeof err);
    REQUIRE(l, "%s", err);
    const loader_batch *b = NULL;
    for (int k = 0; k < 100 && (b = loader_next(l, err, sizeof err)); k++) {
    }
    EXPECT(!b && strstr(err, "no image could be read in the first") && strstr(err, "/nonexistent/images/img/"), "%s", err);
    loader_free(l);
    lvis_free(&d);
    c = small_config(1);
    c.max_gt = 1;
    l = loader_new(&data, &c, err, sizeof err);
    REQUIRE(l, "%s", err);
    b = loader_next(l, err, sizeof err);
    EXPECT(!b && strstr(err, "instances; raise the limit") && strstr(err, "max_gt = 1"), "%s", err);
    loader_free(l);
    c = small_config(1);
    c.prefetch = 0;
    EXPECT(!loader_new(&data, &c, err, sizeof err) && strstr(err, "prefetch 0 is not in [1, 64]"), "%s", err);
}

/* `maskrcnn data` pointed at the folder: batches listed, bad images counted, a dump written. */
static void test_data_command(void) {
    char ann[512], dump[512], out[65536], ppm[600];
    snprintf(ann, sizeof ann, "%s/ann.json", dir);
    snprintf(dump, sizeof dump, "%s/dump", dir);
    char *argv[] = {"data", ann, "--images", dir, "--batches", "12", "--batch", "3", "--threads", "2", "--dump", dump, NULL};
    int st = test_run_main(data_main, argv, out, sizeof out);
    EXPECT(st == 0, "exit %d: %s", st, out);
    const char *sum = strstr(out, "12 batches, ");
    long left = -1, un = -1, nj = -1, tr = -1, co = -1, sz = -1;
    EXPECT(sum && sscanf(strstr(sum, "; ") ? strstr(sum, "; ") + 2 : "", "waiting for data %*f s; %ld images left out (%ld "
                         "unreadable, %ld not JPEG, %ld truncated, %ld corrupt, %ld size mismatch)",
                         &left, &un, &nj, &tr, &co, &sz) == 6,
           "no summary line in: %s", out);
    /* each bad image is left out every time it is drawn: at least once in 36 draws */
    EXPECT(un >= 1 && nj >= 1 && tr >= 1 && co == 0 && sz >= 1 && left == un + nj + tr + sz, "summary: %s", sum ? sum : "");
    EXPECT(strstr(out, "batch 0: ") && strstr(out, "cut.jpg: truncated") && strstr(out, "text.jpg: not a JPEG"),
           "output: %s", out);
    snprintf(ppm, sizeof ppm, "%s/batch0_image0.ppm", dump);
    FILE *f = fopen(ppm, "rb");
    int w = 0, h = 0;
    EXPECT(f && fscanf(f, "P6 %d %d 255", &w, &h) == 2 && w > 0 && h > 0, "no dump at %s", ppm);
    if (f) fclose(f);
    char *bad[] = {"data", ann, NULL};
    st = test_run_main(data_main, bad, out, sizeof out);
    EXPECT(st == 2 && strstr(out, "--images DIR is required"), "exit %d: %s", st, out);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/mrc_test_loader.XXXXXX");
    if (!mkdtemp(dir)) return fprintf(stderr, "test_loader: cannot create %s\n", dir), 1;
    char sub[512], err[512] = "", path[512];
    snprintf(sub, sizeof sub, "%s/img", dir);
    mkdir(sub, 0755);
    write_dataset();
    snprintf(path, sizeof path, "%s/ann.json", dir);
    if (lvis_load(&data, path, dir, LVIS_STRICT, err, sizeof err)) return fprintf(stderr, "test_loader: %s\n", err), 1;
    RUN(test_threads_agree_and_content);
    RUN(test_fixed_canvas);
    RUN(test_cursor_resume);
    RUN(test_wrong_root_and_limits);
    RUN(test_data_command);
    lvis_free(&data);
    test_remove_tmpdir(dir);
    return test_finish("test_loader");
}

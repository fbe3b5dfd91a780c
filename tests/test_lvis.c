/* test_lvis.c: the LVIS reader (src/data/lvis.h) on the fixtures in tests/fixtures/lvis/:
 * what a valid file gives (id <-> index through the table, paths, grouping, counts, skips
 * in strict mode, everything kept in official mode) and one line per bad file. The
 * expected values below are read off the fixture text by hand. */
#include "test.h"

#include "data/lvis.h"
#include "data/stats.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/fixtures/lvis/"

static void test_valid_strict(void) {
    lvis_data d;
    char err[512] = "";
    REQUIRE(lvis_load(&d, FIX "valid.json", "/data/coco", LVIS_STRICT, err, sizeof err) == 0, "%s", err);
    EXPECT(d.n_cat == 2 && d.cats[0].id == 1 && d.cats[1].id == 3, "categories sorted by id");
    EXPECT(lvis_category_index(&d, 3) == 1 && lvis_category_index(&d, 2) == -1, "id 3 -> index 1, not id - 1");
    EXPECT(d.cats[0].freq == LVIS_FREQ_F && d.cats[1].freq == LVIS_FREQ_R);
    EXPECT(!strcmp(lvis_string(&d, d.cats[1].name), "cat3"));
    /* cat1 carries its counts; cat3's are counted from the kept annotations: 1 box-only */
    EXPECT(d.cats[0].image_count == 2 && d.cats[0].instance_count == 3, "file counts kept");
    EXPECT(d.cats[1].image_count == 1 && d.cats[1].instance_count == 1, "computed counts %lld %lld",
           (long long)d.cats[1].image_count, (long long)d.cats[1].instance_count);
    /* what this read kept: cat1 has annotations 1 and 3, both in image 10 */
    EXPECT(d.cats[0].images_loaded == 1 && d.cats[0].instances_loaded == 2, "loaded counts %lld %lld",
           (long long)d.cats[0].images_loaded, (long long)d.cats[0].instances_loaded);
    REQUIRE(d.n_img == 2);
    char buf[256];
    EXPECT(!strcmp(lvis_string(&d, d.imgs[0].path), "train2017/000000000010.jpg"), "coco_url path kept relative: %s",
           lvis_string(&d, d.imgs[0].path));
    EXPECT(!strcmp(lvis_image_path(&d, 0, buf, sizeof buf), "/data/coco/train2017/000000000010.jpg"), "coco_url path: %s", buf);
    EXPECT(!strcmp(lvis_image_path(&d, 1, buf, sizeof buf), "/data/coco/val2017/7.jpg"), "file_name path: %s", buf);
    EXPECT(lvis_image_index(&d, 7) == 1 && lvis_image_index(&d, 8) == -1);
    EXPECT(d.imgs[0].n_neg == 1 && d.cat_pool[d.imgs[0].neg] == 1, "neg ids as category indices");
    EXPECT(d.imgs[1].n_not_exhaustive == 1 && d.cat_pool[d.imgs[1].not_exhaustive] == 0);
    /* strict: annotation 4 (w = 0) and 5 (5 coordinates) skipped and counted */
    EXPECT(d.n_ann == 3 && d.skipped.bad_box == 1 && d.skipped.bad_polygon == 1, "kept %lld, skipped %lld/%lld",
           (long long)d.n_ann, (long long)d.skipped.bad_box, (long long)d.skipped.bad_polygon);
    /* image 10 holds annotations 1 and 3 in file order; image 7 holds 2 (box only) */
    REQUIRE(d.imgs[0].n_ann == 2 && d.imgs[1].n_ann == 1);
    const lvis_ann *a0 = &d.anns[d.ann_order[d.imgs[0].first_ann]], *a1 = &d.anns[d.ann_order[d.imgs[0].first_ann + 1]];
    EXPECT(a0->id == 1 && a1->id == 3 && d.anns[d.ann_order[d.imgs[1].first_ann]].id == 2);
    EXPECT(a0->n_poly == 1 && d.polys[a0->poly].n == 6 && d.verts[d.polys[a0->poly].vert + 3] == 2.0f);
    EXPECT(a1->n_poly == 2 && d.polys[a1->poly + 1].n == 8 && a1->record == 2);
    EXPECT(a0->bbox[2] == 30 && a0->area == 900.5 && a0->category == 0);
    lvis_free(&d);
}

static void test_valid_official_keeps_everything(void) {
    lvis_data d;
    char err[512] = "";
    REQUIRE(lvis_load(&d, FIX "valid.json", NULL, LVIS_OFFICIAL, err, sizeof err) == 0, "%s", err);
    EXPECT(d.n_ann == 5 && d.skipped.bad_box == 0 && d.skipped.bad_polygon == 0, "official kept %lld",
           (long long)d.n_ann);
    EXPECT(!strcmp(lvis_string(&d, d.imgs[0].path), "train2017/000000000010.jpg"), "%s", lvis_string(&d, d.imgs[0].path));
    lvis_free(&d);
    REQUIRE(lvis_load(&d, FIX "box_only.json", NULL, LVIS_STRICT, err, sizeof err) == 0, "%s", err);
    EXPECT(d.n_ann == 4 && d.n_poly == 0, "a box-only file loads (kept %lld)", (long long)d.n_ann);
    lvis_free(&d);
}

/* A bad file: lvis_load fails with one line naming the file, the record and the problem,
 * and `maskrcnn stats` prints exactly that line after "error: " and exits 1. */
static void expect_bad(const char *file, lvis_mode mode, const char *want) {
    lvis_data d;
    char err[512] = "", path[256];
    snprintf(path, sizeof path, FIX "%s", file);
    int r = lvis_load(&d, path, NULL, mode, err, sizeof err);
    EXPECT(r == -1, "%s was accepted", file);
    EXPECT(strstr(err, path) == err && strstr(err, want), "%s: got '%s', want '%s'", file, err, want);
    EXPECT(!strchr(err, '\n'), "one line: %s", err);
    EXPECT(d.anns == NULL && d.imgs == NULL, "%s: nothing left allocated", file);
    char out[1024], line[600];
    char *argv[] = {"stats", path, mode == LVIS_OFFICIAL ? "--official" : "--no-cache", NULL};
    int st = test_run_main(stats_main, argv, out, sizeof out);
    snprintf(line, sizeof line, "error: %s\n", err);
    EXPECT(st == 1 && !strcmp(out, line), "stats %s: exit %d, printed '%s', want '%s'", file, st, out, line);
}

static void test_bad_files(void) {
    expect_bad("nonexistent.json", LVIS_STRICT, "cannot open");
    expect_bad("not_json.json", LVIS_STRICT, "does not start with a JSON object");
    expect_bad("truncated.json", LVIS_STRICT, "unterminated string"); /* cut inside a string */
    expect_bad("missing_annotations.json", LVIS_STRICT, "the top-level key 'annotations' is missing");
    expect_bad("images_not_array.json", LVIS_STRICT, "'images' must be an array");
    expect_bad("unknown_category.json", LVIS_STRICT, "annotations[1]: category_id 9999 is not in categories");
    expect_bad("unknown_image.json", LVIS_STRICT, "annotations[2]: image_id 99 is not in images");
    expect_bad("duplicate_category.json", LVIS_STRICT, "categories: duplicate id 1");
    expect_bad("duplicate_image.json", LVIS_STRICT, "images[1]: duplicate id 10");
    expect_bad("duplicate_annotation.json", LVIS_STRICT, "annotations[2]: duplicate id 1");
    expect_bad("bad_frequency.json", LVIS_STRICT, "categories[1]: frequency 'x' is not r, c or f");
    expect_bad("zero_width.json", LVIS_STRICT, "images[0]: size 0x480 is not positive");
    expect_bad("string_id.json", LVIS_STRICT, "annotations[0]: 'id' must be a number");
    expect_bad("fractional_id.json", LVIS_STRICT, "images[0]: 'id' must be an integer");
    expect_bad("no_path.json", LVIS_STRICT, "images[1]: has neither file_name nor coco_url");
    expect_bad("bad_bbox.json", LVIS_STRICT, "annotations[0]: 'bbox' must be [x, y, w, h]");
    expect_bad("non_finite.json", LVIS_STRICT, "annotations[0]: 'bbox' holds a non-finite");
    expect_bad("unknown_neg_category.json", LVIS_STRICT, "images[0]: neg_category_ids holds category id 42");
    expect_bad("record_not_json.json", LVIS_STRICT, "annotations[1]: not valid JSON");
    expect_bad("missing_neg.json", LVIS_OFFICIAL, "images[1]: 'neg_category_ids' is missing");
    expect_bad("string_coordinate.json", LVIS_STRICT, "annotations[0]: polygon coordinates must be numbers");
    expect_bad("polygon_not_list.json", LVIS_STRICT, "annotations[2]: a polygon must be a list of coordinates");
    /* lvis_eval.md §5.4: the evaluator marks matches by id, so an id 0 would look unmatched */
    expect_bad("zero_ann_id.json", LVIS_OFFICIAL, "annotations[2]: id 0: the LVIS evaluator needs annotation ids >= 1");
}

/* lvis_eval.md §1.1: an optional `ignore`, truthy as Python sees it, marks a GT ignored
 * (official mode only); training has no use for ids, so id 0 loads in strict mode. The
 * fixture sets ignore to true, 1, 0, "" and "x" on annotations 1..5 in order. */
static void test_official_details(void) {
    lvis_data d;
    char err[512] = "";
    REQUIRE(lvis_load(&d, FIX "official_ignore.json", NULL, LVIS_OFFICIAL, err, sizeof err) == 0, "%s", err);
    REQUIRE(d.n_ann == 5);
    int want[5] = {1, 1, 0, 0, 1};
    for (int i = 0; i < 5; i++) EXPECT(d.anns[i].ignore == want[i], "annotation %d: ignore %d", i + 1, d.anns[i].ignore);
    lvis_free(&d);
    REQUIRE(lvis_load(&d, FIX "official_ignore.json", NULL, LVIS_STRICT, err, sizeof err) == 0, "%s", err);
    for (int64_t i = 0; i < d.n_ann; i++) EXPECT(d.anns[i].ignore == 0, "strict mode reads no ignore flag");
    lvis_free(&d);
    REQUIRE(lvis_load(&d, FIX "zero_ann_id.json", NULL, LVIS_STRICT, err, sizeof err) == 0, "strict: %s", err);
    lvis_free(&d);
}

/* Official mode keeps the JSON's doubles (bbox, polygon coordinates) beside the floats:
 * 0.1 as a double is not (double)0.1f. Strict mode has none. */
static void test_official_doubles(void) {
    lvis_data d;
    char err[512] = "";
    REQUIRE(lvis_load(&d, FIX "official_doubles.json", NULL, LVIS_OFFICIAL, err, sizeof err) == 0, "%s", err);
    REQUIRE(d.ann_bbox_d && d.verts_d, "no doubles in official mode");
    const lvis_ann *a = &d.anns[0];
    const double *bb = d.ann_bbox_d;
    EXPECT(bb[0] == 0.1 && bb[1] == 0.2 && bb[2] == 10.3 && bb[3] == 20.7, "bbox %.17g %.17g %.17g %.17g", bb[0], bb[1],
           bb[2], bb[3]);
    EXPECT(a->bbox[0] == 0.1f && (double)a->bbox[0] != 0.1, "the float copy");
    const double *v = d.verts_d + d.polys[a->poly].vert;
    EXPECT(v[0] == 0.1 && v[1] == 0.3 && v[2] == 10.7 && v[5] == 20.9, "coordinates %.17g %.17g", v[0], v[5]);
    /* annotation 3 (record 2) has two polygons: its doubles follow at the same offsets */
    const lvis_ann *a3 = &d.anns[2];
    EXPECT(d.ann_bbox_d[4 * 2 + 2] == 10 && d.verts_d[d.polys[a3->poly + 1].vert + 6] == 4, "annotation 3");
    lvis_free(&d);
    REQUIRE(lvis_load(&d, FIX "official_doubles.json", NULL, LVIS_STRICT, err, sizeof err) == 0, "%s", err);
    EXPECT(!d.ann_bbox_d && !d.verts_d, "strict mode keeps no doubles");
    lvis_free(&d);
}

/* valid.json (strict) skips records 3 (w = 0) and 4 (5 coordinates). */
static void test_skip_summary(void) {
    lvis_data d;
    char err[512] = "", line[512];
    REQUIRE(lvis_load(&d, FIX "valid.json", NULL, LVIS_STRICT, err, sizeof err) == 0, "%s", err);
    const char *want = FIX "valid.json: skipped 2 of 5 annotations: 1 with box w or h <= 0 (first: annotations[3]), "
                           "1 with a bad polygon (first: annotations[4])";
    EXPECT(!strcmp(lvis_skip_summary(&d, line, sizeof line), want), "got '%s'", line);
    lvis_free(&d);
    REQUIRE(lvis_load(&d, FIX "valid.json", NULL, LVIS_OFFICIAL, err, sizeof err) == 0, "%s", err);
    EXPECT(!strcmp(lvis_skip_summary(&d, line, sizeof line), ""), "official skips nothing: '%s'", line);
    lvis_free(&d);
}

/* ---- a generated file: threads, the first error, the cache --------------------------- */

/* What the generator wrote, for checking what was read. Coordinates are written with %.9g
 * of a float, which reads back as that float exactly. */
typedef struct gen_truth {
    int n_img, n_ann, kept, bad_box, bad_poly, first_bad_box, first_bad_poly;
    int *keep_record;   /* the kept annotations' record indices, in file order */
    int *n_coords;      /* per record: coordinates of its first polygon (0: box only) */
    float *first_coord; /* per record: its first coordinate */
} gen_truth;

static uint64_t gen_rng = 1;
static uint32_t gen_next(void) {
    gen_rng ^= gen_rng << 13, gen_rng ^= gen_rng >> 7, gen_rng ^= gen_rng << 17;
    return (uint32_t)(gen_rng >> 11);
}
static float gen_float(void) { return (float)(gen_next() % 1000000) / 997.0f - 3.0f; }

/* n_img images, n_ann annotations over 30 categories; every 97th annotation has w = 0,
 * every 89th an odd polygon, every 13th is box-only; random spacing and member order.
 * error_at: record indices given an unknown category (or -1). */
static void gen_file(const char *path, int n_img, int n_ann, const int *error_at, int n_err, gen_truth *t) {
    FILE *f = fopen(path, "w");
    REQUIRE(f, "cannot write %s", path);
    memset(t, 0, sizeof *t);
    t->n_img = n_img, t->n_ann = n_ann, t->first_bad_box = t->first_bad_poly = -1;
    t->keep_record = calloc((size_t)n_ann, sizeof(int));
    t->n_coords = calloc((size_t)n_ann, sizeof(int));
    t->first_coord = calloc((size_t)n_ann, sizeof(float));
    gen_rng = 20261124;
    fprintf(f, "{\"annotations\": [\n");
    for (int a = 0; a < n_ann; a++) {
        int cat = 1 + (int)(gen_next() % 30), img = 1 + (int)(gen_next() % (uint32_t)n_img);
        for (int e = 0; e < n_err; e++)
            if (error_at[e] == a) cat = 99999;
        int bad_box = a % 97 == 5, box_only = a % 13 == 3, bad_poly = a % 89 == 7 && !bad_box && !box_only;
        char seg[4096] = "";
        int n = 0;
        if (!box_only) {
            int npoly = 1 + (int)(gen_next() % 3);
            n += snprintf(seg + n, sizeof seg - (size_t)n, "\"segmentation\":%s[", gen_next() % 2 ? " " : "\n  ");
            for (int p = 0; p < npoly; p++) {
                int nc = 2 * (3 + (int)(gen_next() % 20));
                if (bad_poly && p == 0) nc -= 1;
                n += snprintf(seg + n, sizeof seg - (size_t)n, "%s[", p ? ", " : "");
                for (int k = 0; k < nc; k++) {
                    float v = gen_float();
                    if (p == 0 && k == 0) t->first_coord[a] = v, t->n_coords[a] = nc;
                    n += snprintf(seg + n, sizeof seg - (size_t)n, "%s%.9g", k ? (gen_next() % 4 ? "," : " ,\n ") : "", v);
                }
                n += snprintf(seg + n, sizeof seg - (size_t)n, "]");
            }
            n += snprintf(seg + n, sizeof seg - (size_t)n, "]");
        }
        char head[256];
        snprintf(head, sizeof head, "\"id\": %d, \"image_id\": %d, \"category_id\": %d, \"bbox\": [1.5, 2, %s, 4], \"area\": 7",
                 a + 1, img, cat, bad_box ? "0" : "3.25");
        if (gen_next() % 2) fprintf(f, "%s{%s%s%s}", a ? ",\n" : "", head, seg[0] ? ", " : "", seg);
        else fprintf(f, "%s{%s%s%s}", a ? "," : "", seg, seg[0] ? ", " : "", head);
        if (bad_box) {
            if (t->first_bad_box < 0) t->first_bad_box = a;
            t->bad_box++;
        } else if (bad_poly) {
            if (t->first_bad_poly < 0) t->first_bad_poly = a;
            t->bad_poly++;
        } else {
            t->keep_record[t->kept++] = a;
        }
    }
    fprintf(f, "],\n\"images\": [");
    for (int i = 0; i < n_img; i++)
        fprintf(f, "%s{\"id\": %d, \"width\": 640, \"height\": 480, \"coco_url\": \"http://x/train2017/%d.jpg\", "
                   "\"neg_category_ids\": [%d], \"not_exhaustive_category_ids\": []}",
                i ? "," : "", i + 1, i + 1, 1 + i % 30);
    fprintf(f, "], \"categories\": [");
    for (int k = 0; k < 30; k++)
        fprintf(f, "%s{\"id\": %d, \"name\": \"c%d\", \"frequency\": \"%c\"}", k ? "," : "", k + 1, k + 1, "rcf"[k % 3]);
    fprintf(f, "]}\n");
    fclose(f);
}

static void gen_free(gen_truth *t) { free(t->keep_record), free(t->n_coords), free(t->first_coord); }

/* What was read against what was written. */
static void expect_truth(const lvis_data *d, const gen_truth *t, const char *what) {
    EXPECT(d->n_img == t->n_img && d->n_cat == 30, "%s: %d images, %d categories", what, d->n_img, d->n_cat);
    EXPECT(d->n_ann == t->kept && d->skipped.bad_box == t->bad_box && d->skipped.bad_polygon == t->bad_poly,
           "%s: kept %lld (want %d), skipped %lld/%lld (want %d/%d)", what, (long long)d->n_ann, t->kept,
           (long long)d->skipped.bad_box, (long long)d->skipped.bad_polygon, t->bad_box, t->bad_poly);
    EXPECT(d->skipped.first_bad_box == t->first_bad_box && d->skipped.first_bad_polygon == t->first_bad_poly,
           "%s: first skips %lld %lld", what, (long long)d->skipped.first_bad_box, (long long)d->skipped.first_bad_polygon);
    int bad = 0;
    for (int64_t i = 0; i < d->n_ann && i < t->kept && bad < 3; i++) {
        const lvis_ann *a = &d->anns[i];
        int r = t->keep_record[i];
        int ok = a->record == r && a->id == r + 1 && a->bbox[0] == 1.5f && a->bbox[2] == 3.25f &&
                 (t->n_coords[r] == 0 ? a->n_poly == 0
                                      : a->n_poly >= 1 && d->polys[a->poly].n == t->n_coords[r] &&
                                            d->verts[d->polys[a->poly].vert] == t->first_coord[r]);
        if (!ok) bad++;
        EXPECT(ok, "%s: annotation %lld (record %d) read wrong", what, (long long)i, r);
    }
    int64_t verts = 0;
    for (int64_t p = 0; p < d->n_poly; p++) {
        EXPECT(d->polys[p].vert == verts, "%s: polygon %lld is not contiguous", what, (long long)p);
        verts += d->polys[p].n;
        if (d->polys[p].vert != verts - d->polys[p].n) break;
    }
    EXPECT(verts == d->n_vert, "%s: polygons cover %lld of %lld coordinates", what, (long long)verts, (long long)d->n_vert);
}

static int same_data(const lvis_data *a, const lvis_data *b) {
#define SAME(f, n) ((n) == 0 || memcmp(a->f, b->f, (size_t)(n) * sizeof *a->f) == 0)
    return a->n_cat == b->n_cat && a->n_img == b->n_img && a->n_ann == b->n_ann && a->n_poly == b->n_poly &&
           a->n_vert == b->n_vert && a->n_cat_pool == b->n_cat_pool && a->n_strings == b->n_strings &&
           !memcmp(&a->skipped, &b->skipped, sizeof a->skipped) && SAME(cats, a->n_cat) && SAME(imgs, a->n_img) &&
           SAME(anns, a->n_ann) && SAME(ann_order, a->n_ann) && SAME(polys, a->n_poly) && SAME(verts, a->n_vert) &&
           SAME(cat_pool, a->n_cat_pool) && SAME(strings, a->n_strings) && SAME(img_ids_sorted, 2 * a->n_img) &&
           !a->ann_bbox_d == !b->ann_bbox_d && !a->verts_d == !b->verts_d &&
           (!a->ann_bbox_d || SAME(ann_bbox_d, 4 * a->n_ann)) && (!a->verts_d || SAME(verts_d, a->n_vert));
#undef SAME
}

static char tmp_dir[256];
static const char *tmp_path(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmp_dir, name);
    return p[k];
}

/* The annotations split between 1, 2, 3 and 8 threads read the same, and as written. */
static void test_threads_agree(void) {
    gen_truth t;
    const char *path = tmp_path("gen.json");
    gen_file(path, 50, 3000, NULL, 0, &t);
    lvis_data one, many;
    char err[512] = "";
    REQUIRE(lvis_parse(&one, path, NULL, LVIS_STRICT, 1, 0, err, sizeof err) == 0, "%s", err);
    expect_truth(&one, &t, "1 thread");
    int threads[] = {2, 3, 8};
    for (int i = 0; i < 3; i++) {
        REQUIRE(lvis_parse(&many, path, NULL, LVIS_STRICT, threads[i], 0, err, sizeof err) == 0, "%s", err);
        EXPECT(same_data(&one, &many), "%d threads read something else than 1", threads[i]);
        lvis_free(&many);
    }
    lvis_free(&one);
    /* official mode, with its doubles */
    REQUIRE(lvis_parse(&one, path, NULL, LVIS_OFFICIAL, 1, 0, err, sizeof err) == 0, "%s", err);
    REQUIRE(lvis_parse(&many, path, NULL, LVIS_OFFICIAL, 3, 0, err, sizeof err) == 0, "%s", err);
    EXPECT(one.verts_d && same_data(&one, &many), "official: 3 threads read something else than 1");
    int64_t v0 = one.polys[one.anns[0].poly].vert;
    EXPECT((float)one.verts_d[v0] == one.verts[v0],
           "the double and the float of a coordinate disagree: %.17g vs %.9g", one.verts_d[v0], one.verts[v0]);
    lvis_free(&one), lvis_free(&many);
    gen_free(&t);
}

/* Two bad records in different threads' parts: the message names the first in the file. */
static void test_first_error_wins(void) {
    gen_truth t;
    const char *path = tmp_path("gen_err.json");
    int at[2] = {2400, 700};
    gen_file(path, 20, 3000, at, 2, &t);
    lvis_data d;
    char err[512] = "";
    for (int threads = 1; threads <= 4; threads++) {
        EXPECT(lvis_parse(&d, path, NULL, LVIS_STRICT, threads, 0, err, sizeof err) == -1, "accepted");
        EXPECT(strstr(err, "annotations[700]: category_id 99999 is not in categories"), "%d threads: %s", threads, err);
    }
    gen_free(&t);
}

typedef struct open_args {
    const char *path, *cache_dir;
    lvis_mode mode;
} open_args;

/* Child: lvis_open with the cache on; prints "from_cache N" and what lvis_open said. */
static void open_child(void *arg) {
    open_args *o = arg;
    lvis_data d;
    char err[512] = "";
    lvis_options opt = {.mode = o->mode, .cache = LVIS_CACHE_ON, .cache_dir = o->cache_dir, .threads = 2};
    if (lvis_open(&d, o->path, &opt, err, sizeof err)) {
        printf("error %s\n", err);
        exit(1);
    }
    printf("from_cache %d n_ann %lld\n", d.from_cache, (long long)d.n_ann);
    lvis_free(&d);
    exit(0);
}

static void open_expect(open_args *o, int from_cache, const char *says, const char *what) {
    char out[2048];
    char want[64];
    int st = test_run_child(open_child, o, out, sizeof out);
    snprintf(want, sizeof want, "from_cache %d", from_cache);
    EXPECT(st == 0 && strstr(out, want), "%s: exit %d, output: %s", what, st, out);
    if (says) EXPECT(strstr(out, says), "%s: want '%s' in: %s", what, says, out);
    else EXPECT(!strstr(out, "warning") && !strstr(out, "note"), "%s: unexpected message: %s", what, out);
}

static void set_mtime(const char *path, time_t sec) {
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};
    REQUIRE(utimensat(AT_FDCWD, path, ts, 0) == 0, "utimensat %s", path);
}

/* The cache: written on the first read, mapped on the next with the very same arrays,
 * rebuilt when the source changes or the cache is damaged, never fatal when unwritable. */
static void test_cache(void) {
    gen_truth t;
    const char *path = tmp_path("cached.json"), *dir = tmp_path("cache");
    gen_file(path, 40, 2000, NULL, 0, &t);
    set_mtime(path, 1700000000);
    char cache[1024], err[512] = "";
    REQUIRE(lvis_cache_path(path, LVIS_STRICT, dir, cache, sizeof cache) == 0);
    EXPECT(strstr(cache, dir) == cache && strstr(cache, "cached.json.") && strstr(cache, ".strict.lvcache"), "%s", cache);
    open_args o = {path, dir, LVIS_STRICT};
    open_expect(&o, 0, NULL, "first read");
    EXPECT(access(cache, R_OK) == 0, "no cache at %s", cache);
    open_expect(&o, 1, NULL, "second read");
    /* the mapped arrays are the parsed ones; the image root is not part of the cache */
    lvis_data parsed, mapped;
    lvis_options opt = {.mode = LVIS_STRICT, .cache = LVIS_CACHE_ON, .cache_dir = dir, .image_root = "/r"};
    REQUIRE(lvis_parse(&parsed, path, NULL, LVIS_STRICT, 1, 0, err, sizeof err) == 0, "%s", err);
    REQUIRE(lvis_open(&mapped, path, &opt, err, sizeof err) == 0, "%s", err);
    EXPECT(mapped.from_cache == 1 && mapped.map != NULL);
    EXPECT(same_data(&parsed, &mapped), "the cache holds something else than the parse");
    expect_truth(&mapped, &t, "from the cache");
    char buf[256];
    EXPECT(!strcmp(lvis_image_path(&mapped, 0, buf, sizeof buf), "/r/train2017/1.jpg"), "%s", buf);
    lvis_free(&parsed), lvis_free(&mapped);
    /* another mode, another cache, with the doubles */
    open_args off = {path, dir, LVIS_OFFICIAL};
    open_expect(&off, 0, NULL, "official, first read");
    open_expect(&off, 1, NULL, "official, second read");
    opt.mode = LVIS_OFFICIAL;
    REQUIRE(lvis_parse(&parsed, path, NULL, LVIS_OFFICIAL, 1, 0, err, sizeof err) == 0, "%s", err);
    REQUIRE(lvis_open(&mapped, path, &opt, err, sizeof err) == 0, "%s", err);
    EXPECT(mapped.from_cache == 1 && mapped.verts_d && same_data(&parsed, &mapped), "official cache differs from the parse");
    lvis_free(&parsed), lvis_free(&mapped);
    /* the source changes: rebuilt */
    set_mtime(path, 1700000100);
    open_expect(&o, 0, "is out of date (the source changed since it was written); rebuilding it", "touched source");
    open_expect(&o, 1, NULL, "after the rebuild");
    /* a flipped byte in the middle (the annotations): checksum */
    FILE *f = fopen(cache, "r+b");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 512 + 40 * 1000, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 512 + 40 * 1000, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    open_expect(&o, 0, "is unusable (damaged (checksum mismatch)); rebuilding it", "flipped byte");
    open_expect(&o, 1, NULL, "after the rebuild");
    /* truncated, then not a cache at all */
    REQUIRE(truncate(cache, size / 2) == 0);
    open_expect(&o, 0, "is unusable (truncated or padded", "truncated cache");
    f = fopen(cache, "wb");
    REQUIRE(f);
    fputs("hello", f);
    fclose(f);
    open_expect(&o, 0, "is unusable (truncated (5 bytes))", "5-byte cache");
    open_expect(&o, 1, NULL, "after the rebuild");
    /* a cache directory that cannot be created (under a regular file): the read still works */
    open_args unwritable = {path, path, LVIS_STRICT}; /* "dir" = the JSON file itself */
    open_expect(&unwritable, 0, "cannot write the cache", "unwritable cache dir");
    gen_free(&t);
}


/* Training does not need the category-id lists: strict mode loads without them. */
static void test_strict_without_lists(void) {
    lvis_data d;
    char err[512] = "";
    REQUIRE(lvis_load(&d, FIX "missing_neg.json", NULL, LVIS_STRICT, err, sizeof err) == 0, "%s", err);
    EXPECT(d.imgs[1].n_neg == 0);
    lvis_free(&d);
}

/* RFS by hand on valid.json (strict): both images hold one class each (cat1 only in image
 * 10 once annotation 5 is skipped, cat3 only in image 7), so f = 1/2 for both classes and
 * r = max(1, sqrt(t / 0.5)): sqrt(1.8) at t = 0.9, 1 at t = 0.001. */
static void test_repeat_factors(void) {
    lvis_data d;
    char err[512] = "";
    REQUIRE(lvis_load(&d, FIX "valid.json", NULL, LVIS_STRICT, err, sizeof err) == 0, "%s", err);
    double r[2];
    EXPECT(lvis_repeat_factors(&d, 0.9, r) == 2);
    EXPECT(fabs(r[0] - sqrt(1.8)) < 1e-12 && fabs(r[1] - sqrt(1.8)) < 1e-12, "r = %g %g", r[0], r[1]);
    lvis_repeat_factors(&d, 0.001, r);
    EXPECT(r[0] == 1 && r[1] == 1, "r = %g %g", r[0], r[1]);
    lvis_free(&d);
}


/* lvis_check, which guards mapped caches: each kind of out-of-range index is named. */
static void test_check_indices(void) {
    lvis_data d;
    char err[512] = "", why[256] = "";
    REQUIRE(lvis_load(&d, FIX "valid.json", NULL, LVIS_STRICT, err, sizeof err) == 0, "%s", err);
    EXPECT(lvis_check(&d, why, sizeof why) == 0, "a fresh read fails the check: %s", why);
    int32_t cat = d.anns[1].category;
    d.anns[1].category = 2;
    EXPECT(lvis_check(&d, why, sizeof why) == -1 && !strcmp(why, "annotations[1] is damaged"), "%s", why);
    d.anns[1].category = cat;
    int64_t n = d.polys[0].n;
    d.polys[0].n = d.n_vert + 1;
    EXPECT(lvis_check(&d, why, sizeof why) == -1 && !strcmp(why, "polygon 0 is damaged"), "%s", why);
    d.polys[0].n = n;
    int first = (int)d.imgs[1].first_ann;
    d.imgs[1].first_ann = d.n_ann;
    EXPECT(lvis_check(&d, why, sizeof why) == -1 && !strcmp(why, "images[1] is damaged"), "%s", why);
    d.imgs[1].first_ann = first;
    d.cat_pool[0] = -1;
    EXPECT(lvis_check(&d, why, sizeof why) == -1 && !strcmp(why, "the category list pool is damaged"), "%s", why);
    lvis_free(&d);
}

/* `maskrcnn stats` prints the same whatever the cache state: parsed and cache written,
 * mapped, and without the cache. */
static void test_stats_same_output(void) {
    const char *path = tmp_path("stats.json");
    gen_truth t;
    gen_file(path, 30, 500, NULL, 0, &t);
    char want[256];
    snprintf(want, sizeof want, "annotations  %d (skipped: %d with box w or h <= 0, %d with a bad polygon)", t.kept,
             t.bad_box, t.bad_poly);
    gen_free(&t);
    setenv("MRC_CACHE_DIR", tmp_path("stats_cache"), 1);
    char out[3][8192];
    char *with[] = {"stats", (char *)path, "--cache", NULL}, *without[] = {"stats", (char *)path, "--no-cache", NULL};
    int st0 = test_run_main(stats_main, with, out[0], sizeof out[0]);
    int st1 = test_run_main(stats_main, with, out[1], sizeof out[1]);
    int st2 = test_run_main(stats_main, without, out[2], sizeof out[2]);
    unsetenv("MRC_CACHE_DIR");
    EXPECT(st0 == 0 && st1 == 0 && st2 == 0, "exits %d %d %d: %s", st0, st1, st2, out[0]);
    EXPECT(strstr(out[0], want), "want '%s' in: %s", want, out[0]);
    EXPECT(!strcmp(out[0], out[1]), "first and cached runs differ:\n%s\n---\n%s", out[0], out[1]);
    EXPECT(!strcmp(out[0], out[2]), "cached and uncached runs differ:\n%s\n---\n%s", out[0], out[2]);
}

static void test_stats_command(void) {
    char out[4096];
    char *ok[] = {"stats", FIX "valid.json", "--rfs-threshold", "0.9", NULL};
    int st = test_run_main(stats_main, ok, out, sizeof out);
    EXPECT(st == 0, "exit %d: %s", st, out);
    EXPECT(strstr(out, "images       2") && strstr(out, "annotations  3 (skipped: 1 with box w or h <= 0, 1 with a bad polygon)") &&
               strstr(out, "    first skipped: annotations[3] (box) annotations[4] (polygon)\n") &&
               strstr(out, "categories   2 (rare 1, common 0, frequent 1)") && strstr(out, "mean r 1.342"),
           "output: %s", out);
    char *bad[] = {"stats", FIX "unknown_category.json", NULL};
    st = test_run_main(stats_main, bad, out, sizeof out);
    EXPECT(st == 1 && !strcmp(out, "error: " FIX "unknown_category.json: annotations[1]: category_id 9999 is not in "
                                   "categories\n"),
           "exit %d: %s", st, out);
    char *badarg[] = {"stats", FIX "valid.json", "--rfs-threshold", "2", NULL};
    st = test_run_main(stats_main, badarg, out, sizeof out);
    EXPECT(st == 2 && strstr(out, "--rfs-threshold wants a number in (0, 1]"), "exit %d: %s", st, out);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mrc_test_lvis.XXXXXX");
    if (!mkdtemp(tmp_dir)) return fprintf(stderr, "test_lvis: cannot create %s\n", tmp_dir), 1;
    RUN(test_valid_strict);
    RUN(test_valid_official_keeps_everything);
    RUN(test_bad_files);
    RUN(test_strict_without_lists);
    RUN(test_repeat_factors);
    RUN(test_stats_command);
    RUN(test_official_details);
    RUN(test_skip_summary);
    RUN(test_official_doubles);
    RUN(test_threads_agree);
    RUN(test_first_error_wins);
    RUN(test_cache);
    RUN(test_check_indices);
    RUN(test_stats_same_output);
    test_remove_tmpdir(tmp_dir);
    return test_finish("test_lvis");
}

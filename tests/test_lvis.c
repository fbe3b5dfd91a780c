/* test_lvis.c: the LVIS reader (src/data/lvis.h) on the fixtures in tests/fixtures/lvis/:
 * what a valid file gives (id <-> index through the table, paths, grouping, counts, skips
 * in strict mode, everything kept in official mode) and one line per bad file. The
 * expected values below are read off the fixture text by hand. */
#include "test.h"

#include "data/lvis.h"
#include "data/stats.h"

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

static void expect_bad(const char *file, lvis_mode mode, const char *want) {
    lvis_data d;
    char err[512] = "", path[256];
    snprintf(path, sizeof path, FIX "%s", file);
    int r = lvis_load(&d, path, NULL, mode, err, sizeof err);
    EXPECT(r == -1, "%s was accepted", file);
    EXPECT(strstr(err, path) == err && strstr(err, want), "%s: got '%s', want '%s'", file, err, want);
    EXPECT(!strchr(err, '\n'), "one line: %s", err);
    EXPECT(d.anns == NULL && d.imgs == NULL, "%s: nothing left allocated", file);
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

static void run_stats(void *arg) {
    char **argv = arg;
    int argc = 0;
    while (argv[argc]) argc++;
    exit(stats_main(argc, argv));
}

static void test_stats_command(void) {
    char out[4096];
    char *ok[] = {"stats", FIX "valid.json", "--rfs-threshold", "0.9", NULL};
    int st = test_run_child(run_stats, ok, out, sizeof out);
    EXPECT(st == 0, "exit %d: %s", st, out);
    EXPECT(strstr(out, "images       2") && strstr(out, "annotations  3 (skipped: 1 with box w or h <= 0, 1 with a bad polygon)") &&
               strstr(out, "categories   2 (rare 1, common 0, frequent 1)") && strstr(out, "mean r 1.342"),
           "output: %s", out);
    char *bad[] = {"stats", FIX "unknown_category.json", NULL};
    st = test_run_child(run_stats, bad, out, sizeof out);
    EXPECT(st == 1 && !strcmp(out, "error: " FIX "unknown_category.json: annotations[1]: category_id 9999 is not in "
                                   "categories\n"),
           "exit %d: %s", st, out);
    char *badarg[] = {"stats", FIX "valid.json", "--rfs-threshold", "2", NULL};
    st = test_run_child(run_stats, badarg, out, sizeof out);
    EXPECT(st == 2 && strstr(out, "--rfs-threshold wants a number in (0, 1]"), "exit %d: %s", st, out);
}

int main(void) {
    RUN(test_valid_strict);
    RUN(test_valid_official_keeps_everything);
    RUN(test_bad_files);
    RUN(test_strict_without_lists);
    RUN(test_repeat_factors);
    RUN(test_stats_command);
    return test_finish("test_lvis");
}

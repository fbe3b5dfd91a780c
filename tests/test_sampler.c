/* test_sampler.c: training-image sampling (src/data/sampler.h) on tests/fixtures/lvis/rfs.json.
 *
 * The fixture, by hand: images 1..10 have annotations, image 11 has none (so N = 10 and
 * it is never sampled); class a is in image 1, b in images 1-5, c in images 1-10; images
 * 1-3 (and 11) are portrait. With t = 0.9: f(a) = 0.1, r(a) = sqrt(9) = 3; f(b) = 0.5,
 * r(b) = sqrt(1.8); f(c) = 1, r(c) = 1. Per image: r(1) = 3, r(2..5) = sqrt(1.8) =
 * 1.3416, r(6..10) = 1. mmdet's pass: 3 + 4 * 2 + 5 = 16 images; detectron2's expected
 * pass: 3 + 4 * sqrt(1.8) + 5 = 13.3666. */
#include "test.h"

#include "data/sampler.h"

#include <math.h>

#define RFS "tests/fixtures/lvis/rfs.json"

static lvis_data data;

static sampler make(sampler_kind kind, int batch, int group, uint64_t seed) {
    sampler s;
    char err[256] = "";
    sampler_config cfg = {kind, 0.9, batch, group, seed};
    int rc = sampler_init(&s, &data, &cfg, err, sizeof err);
    if (rc) {
        EXPECT(0, "sampler_init: %s", err);
        exit(1);
    }
    return s;
}

/* image index (0..10) -> its r(I) by hand (see the top) */
static double r_hand(int i) { return i == 0 ? 3.0 : i <= 4 ? sqrt(1.8) : i <= 9 ? 1.0 : 0.0; }

static void test_repeat_factors_by_hand(void) {
    double r[11];
    EXPECT(lvis_repeat_factors(&data, 0.9, r) == 10, "N counts the images with annotations");
    for (int i = 0; i < 11; i++) EXPECT(fabs(r[i] - r_hand(i)) < 1e-12, "r(image %d) = %.6f, want %.6f", i + 1, r[i], r_hand(i));
    sampler s = make(SAMPLER_RFS_MMDET, 1, 0, 1);
    EXPECT(s.n == 10, "the training set has %d images, want 10", s.n);
    EXPECT(sampler_epoch_images(&s) == 16, "mmdet epoch %.4f, want 16", sampler_epoch_images(&s));
    sampler_free(&s);
    s = make(SAMPLER_RFS_MMDET, 3, 1, 1);
    EXPECT(sampler_epoch_iterations(&s) == 6, "mmdet epoch of batch 3: %lld iterations, want ceil(16 / 3) = 6",
           (long long)sampler_epoch_iterations(&s));
    sampler_free(&s);
    s = make(SAMPLER_RFS_MMDET, 4, 1, 1);
    EXPECT(sampler_epoch_iterations(&s) == 4, "batch 4: %lld, want 16 / 4 = 4", (long long)sampler_epoch_iterations(&s));
    sampler_free(&s);
    s = make(SAMPLER_RFS_D2, 1, 0, 1);
    EXPECT(fabs(sampler_epoch_images(&s) - (8 + 4 * sqrt(1.8))) < 1e-12, "d2 epoch %.6f", sampler_epoch_images(&s));
    sampler_free(&s);
    s = make(SAMPLER_UNIFORM, 1, 0, 1);
    EXPECT(sampler_epoch_images(&s) == 10, "uniform epoch %.4f", sampler_epoch_images(&s));
    sampler_free(&s);
}

/* Counts per image over `passes` whole passes (batch 1, no grouping). */
static void count_passes(sampler_kind kind, int passes, int64_t *count, int64_t *per_pass_min, int64_t *per_pass_max) {
    sampler s = make(kind, 1, 0, 7);
    memset(count, 0, 11 * sizeof *count);
    *per_pass_min = INT64_MAX, *per_pass_max = 0;
    int32_t idx;
    for (int p = 0; p < passes; p++) {
        int64_t n = 0;
        do {
            sampler_next(&s, &idx);
            count[idx]++, n++;
        } while (s.cur.pos < s.pass_len);
        if (n < *per_pass_min) *per_pass_min = n;
        if (n > *per_pass_max) *per_pass_max = n;
    }
    sampler_free(&s);
}

static void test_passes(void) {
    int64_t c[11], lo, hi;
    count_passes(SAMPLER_UNIFORM, 50, c, &lo, &hi);
    EXPECT(lo == 10 && hi == 10, "uniform pass lengths %lld..%lld", (long long)lo, (long long)hi);
    for (int i = 0; i < 11; i++) EXPECT(c[i] == (i < 10 ? 50 : 0), "uniform: image %d sampled %lld times", i + 1, (long long)c[i]);
    count_passes(SAMPLER_RFS_MMDET, 50, c, &lo, &hi);
    EXPECT(lo == 16 && hi == 16, "mmdet pass lengths %lld..%lld", (long long)lo, (long long)hi);
    for (int i = 0; i < 11; i++)
        EXPECT(c[i] == 50 * (int64_t)ceil(r_hand(i)), "mmdet: image %d sampled %lld times", i + 1, (long long)c[i]);
    /* d2: floor(r) copies always, one more with probability frac(r): over P passes the mean
     * is r; for images 2-5 the extra copy is Bernoulli(0.3416), sd 0.474 / sqrt(P) */
    const int P = 4000;
    count_passes(SAMPLER_RFS_D2, P, c, &lo, &hi);
    EXPECT(lo >= 12 && hi <= 16, "d2 pass lengths %lld..%lld (3 + 4 + 5 fixed, 0..4 extra)", (long long)lo, (long long)hi);
    for (int i = 0; i < 10; i++) {
        double mean = (double)c[i] / P, tol = i >= 1 && i <= 4 ? 5 * 0.474 / sqrt(P) : 0;
        EXPECT(fabs(mean - r_hand(i)) <= tol, "d2: image %d mean %.4f, want %.4f +- %.4f", i + 1, mean, r_hand(i), tol);
    }
    EXPECT(c[10] == 0, "the image without annotations was sampled");
}

static void test_grouping(void) {
    sampler s = make(SAMPLER_RFS_MMDET, 3, 1, 11);
    int32_t idx[3];
    int seen[2] = {0};
    for (int b = 0; b < 200; b++) {
        int g = sampler_next(&s, idx);
        seen[g]++;
        for (int i = 0; i < 3; i++) {
            int portrait = data.imgs[idx[i]].width <= data.imgs[idx[i]].height;
            EXPECT(portrait == g, "batch %d mixes orientations (image %d in group %d)", b, idx[i] + 1, g);
        }
    }
    EXPECT(seen[0] > 0 && seen[1] > 0, "groups seen: %d landscape, %d portrait", seen[0], seen[1]);
    /* an mmdet pass holds 9 landscape copies (images 4, 5 twice, 6-10 once) and 7 portrait
     * ones (image 1 three times, 2 and 3 twice): with L and P batches of 3, 3L = 9k + e1 and
     * 3P = 7k + e2 with |e| <= 11 (a partial pass and a partial bucket), so |7L - 9P| <= 59 */
    EXPECT(abs(seen[0] * 7 - seen[1] * 9) <= 59, "landscape %d vs portrait %d batches", seen[0], seen[1]);
    sampler_free(&s);
    /* without grouping the batches are the stream in order: batch 2 starts where 1 ended */
    sampler a = make(SAMPLER_UNIFORM, 4, 0, 3), one = make(SAMPLER_UNIFORM, 1, 0, 3);
    int32_t big[4], small;
    for (int b = 0; b < 10; b++) {
        sampler_next(&a, big);
        for (int i = 0; i < 4; i++) {
            sampler_next(&one, &small);
            EXPECT(big[i] == small, "batch %d element %d: %d vs %d", b, i, big[i], small);
        }
    }
    sampler_free(&a), sampler_free(&one);
}

static void test_determinism_and_cursor(void) {
    sampler a = make(SAMPLER_RFS_D2, 3, 1, 42), b = make(SAMPLER_RFS_D2, 3, 1, 42), c = make(SAMPLER_RFS_D2, 3, 1, 43);
    int32_t x[3], y[3], z[3];
    int differ = 0;
    for (int k = 0; k < 100; k++) {
        sampler_next(&a, x), sampler_next(&b, y), sampler_next(&c, z);
        EXPECT(!memcmp(x, y, sizeof x), "same seed, batch %d differs", k);
        differ += memcmp(x, z, sizeof x) != 0;
    }
    EXPECT(differ > 50, "seeds 42 and 43 gave the same batches %d times of 100", 100 - differ);
    /* a cursor taken mid-pass, with images waiting in the buckets, resumes exactly */
    sampler_cursor cur;
    sampler_get_cursor(&a, &cur);
    EXPECT(cur.batches == 100 && cur.pass > 0, "cursor: %lld batches, pass %lld", (long long)cur.batches, (long long)cur.pass);
    int32_t want[60][3];
    for (int k = 0; k < 60; k++) sampler_next(&a, want[k]);
    sampler r = make(SAMPLER_RFS_D2, 3, 1, 42);
    char err[256] = "";
    REQUIRE(sampler_set_cursor(&r, &cur, err, sizeof err) == 0, "%s", err);
    for (int k = 0; k < 60; k++) {
        sampler_next(&r, x);
        EXPECT(!memcmp(x, want[k], sizeof x), "resumed batch %d differs", k);
    }
    /* a cursor that cannot belong to this sampler */
    sampler_cursor bad = cur;
    bad.pos = 1000;
    EXPECT(sampler_set_cursor(&r, &bad, err, sizeof err) == -1 && strstr(err, "position 1000 is past pass"), "%s", err);
    bad = cur;
    bad.n_bucket[0] = 3;
    EXPECT(sampler_set_cursor(&r, &bad, err, sizeof err) == -1 && strstr(err, "bucket 0 holds 3 images"), "%s", err);
    sampler_free(&a), sampler_free(&b), sampler_free(&c), sampler_free(&r);
}

static void test_bad_config(void) {
    sampler s;
    char err[256] = "";
    sampler_config cfg = {SAMPLER_RFS_D2, 0.001, 0, 1, 1};
    EXPECT(sampler_init(&s, &data, &cfg, err, sizeof err) == -1 && strstr(err, "batch 0 is not in [1, 64]"), "%s", err);
    cfg.batch = 2, cfg.rfs_threshold = 0;
    EXPECT(sampler_init(&s, &data, &cfg, err, sizeof err) == -1 && strstr(err, "RFS threshold 0 is not in (0, 1]"), "%s", err);
    lvis_data empty;
    REQUIRE(lvis_load(&empty, "tests/fixtures/lvis/valid.json", NULL, LVIS_STRICT, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < empty.n_img; i++) empty.imgs[i].n_ann = 0; /* as if nothing were annotated */
    cfg.rfs_threshold = 0.001;
    EXPECT(sampler_init(&s, &empty, &cfg, err, sizeof err) == -1 && strstr(err, "no image has an annotation"), "%s", err);
    lvis_free(&empty);
}

int main(void) {
    char err[512] = "";
    if (lvis_load(&data, RFS, NULL, LVIS_STRICT, err, sizeof err)) {
        fprintf(stderr, "test_sampler: %s\n", err);
        return 1;
    }
    RUN(test_repeat_factors_by_hand);
    RUN(test_passes);
    RUN(test_grouping);
    RUN(test_determinism_and_cursor);
    RUN(test_bad_config);
    lvis_free(&data);
    return test_finish("test_sampler");
}

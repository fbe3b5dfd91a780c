/* test_jpeg.c: the JPEG decoder (src/data/jpeg.h) on the fixtures in tests/fixtures/jpeg/,
 * written by scripts/gen_jpeg_fixtures.py.
 *
 * The golden pixels NAME.rgb come from outside the code under test: they are what PIL 9.4
 * gives for Image.open(NAME.jpg).convert("RGB").tobytes() (h * w * 3 bytes), the way
 * detectron2 reads images. Equality is exact for every fixture: PIL uses the same
 * libjpeg-turbo 2.1.5 with the same settings (accurate IDCT, fancy upsampling), and for
 * CMYK/YCCK jpeg.c reproduces PIL's inversion and integer CMYK -> RGB formula. The sizes
 * below are the script's. Bad files must fail with the right status and one line naming
 * the file and the problem; mutated copies of rgb.jpg (every truncation length, byte
 * flips, patched sizes) must never crash or return a half-decoded image as good. */
#include "test.h"

#include "data/jpeg.h"

#include <pthread.h>
#include <stdint.h>

#define FIX "tests/fixtures/jpeg/"

typedef struct fixture {
    const char *name;
    int w, h;
} fixture;

static const fixture good[] = {
    {"rgb", 37, 23},  {"rgb444", 29, 31}, {"gray", 19, 33}, {"progressive", 37, 23},
    {"exif", 37, 23}, /* EXIF orientation 6, not applied: stored width and height */
    {"cmyk", 35, 21}, {"ycck", 35, 21},
};
#define N_GOOD ((int)(sizeof good / sizeof good[0]))

/* A whole file, or NULL (n = 0) when it cannot be read. */
static uint8_t *slurp(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *b = NULL;
    size_t cap = 0, r;
    do {
        if (*n == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *p = realloc(b, cap);
            if (!p) break;
            b = p;
        }
        r = fread(b + *n, 1, cap - *n, f);
        *n += r;
    } while (r > 0);
    fclose(f);
    return b;
}

static uint8_t *golden(int i, size_t *n) {
    char path[256];
    snprintf(path, sizeof path, FIX "%s.rgb", good[i].name);
    return slurp(path, n);
}

/* Number of bytes of im that differ from want (h x w x 3); prints the first few. */
static long count_diff(const char *what, const image_u8 *im, const uint8_t *want, int h, int w) {
    if (im->h != h || im->w != w) {
        printf("    %s: size %dx%d, want %dx%d (w x h)\n", what, im->w, im->h, w, h);
        return (long)h * w * 3;
    }
    long bad = 0;
    int worst = 0;
    for (long i = 0; i < (long)h * w * 3; i++) {
        int d = abs((int)im->data[i] - (int)want[i]);
        if (!d) continue;
        if (bad < 4)
            printf("    %s: pixel (y %ld, x %ld) channel %ld: %d, want %d\n", what, i / 3 / w, i / 3 % w, i % 3,
                   im->data[i], want[i]);
        bad++;
        worst = d > worst ? d : worst;
    }
    if (bad) printf("    %s: %ld of %ld bytes differ, worst |diff| %d\n", what, bad, (long)h * w * 3, worst);
    return bad;
}

static void test_decode_matches_pil(void) {
    jpeg_decoder *j = jpeg_decoder_new();
    REQUIRE(j, "jpeg_decoder_new");
    image_u8 im = {0};
    for (int i = 0; i < N_GOOD; i++) {
        char path[256], err[512] = "";
        size_t gn, fn;
        snprintf(path, sizeof path, FIX "%s.jpg", good[i].name);
        uint8_t *want = golden(i, &gn), *file = slurp(path, &fn);
        REQUIRE(want && gn == (size_t)good[i].h * good[i].w * 3, "%s.rgb: %zu bytes", good[i].name, gn);
        REQUIRE(file, "%s", path);
        jpeg_status s = jpeg_read(j, path, &im, err, sizeof err);
        EXPECT(s == JPEG_OK, "%s: %s", path, err);
        EXPECT(count_diff(path, &im, want, good[i].h, good[i].w) == 0, "%s differs from PIL", path);
        s = jpeg_decode(j, path, file, fn, &im, err, sizeof err);
        EXPECT(s == JPEG_OK && count_diff("from memory", &im, want, good[i].h, good[i].w) == 0, "%s from memory: %s",
               path, err);
        free(want);
        free(file);
    }
    /* grayscale: R = G = B (also implied by the golden; said outright here) */
    char err[512];
    REQUIRE(jpeg_read(j, FIX "gray.jpg", &im, err, sizeof err) == JPEG_OK, "%s", err);
    int grey = 1, flat = 1;
    for (long p = 0; p < (long)im.h * im.w; p++) {
        grey &= im.data[3 * p] == im.data[3 * p + 1] && im.data[3 * p] == im.data[3 * p + 2];
        flat &= im.data[3 * p] == im.data[0];
    }
    EXPECT(grey && !flat, "gray.jpg: R = G = B everywhere, and not a constant image");
    image_u8_free(&im);
    EXPECT(im.data == NULL && im.cap == 0 && im.h == 0, "image_u8_free zeroes the image");
    jpeg_decoder_free(j);
}

typedef struct bad_case {
    const char *path;
    jpeg_status status;
    const char *says; /* a part of the message after "PATH: " */
} bad_case;

static const bad_case bad_files[] = {
    {FIX "truncated.jpg", JPEG_ERR_TRUNCATED, "truncated: the data ends before the end-of-image marker (libjpeg: "},
    {FIX "corrupt.jpg", JPEG_ERR_CORRUPT, "corrupt JPEG data (libjpeg warning: Corrupt JPEG data: "},
    {FIX "not_jpeg.png", JPEG_ERR_NOT_JPEG, "not a JPEG (starts with 89 50 4E 47: a PNG?)"},
    {FIX "empty.jpg", JPEG_ERR_NOT_JPEG, "empty file"},
    {"scripts/gen_jpeg_fixtures.py", JPEG_ERR_NOT_JPEG,
     "not a JPEG (starts with 23 21 2F 75: text \"#!/usr/bin/env python3\"?)"},
    {FIX "missing.jpg", JPEG_ERR_OPEN, "cannot open: No such file or directory"},
    {FIX, JPEG_ERR_OPEN, "cannot read: Is a directory"},
};
#define N_BAD ((int)(sizeof bad_files / sizeof bad_files[0]))

/* err is "PATH: ..." on one line and contains says */
static int message_ok(const char *err, const char *path, const char *says) {
    size_t pl = strlen(path);
    return !strncmp(err, path, pl) && !strncmp(err + pl, ": ", 2) && strstr(err + pl, says) && !strchr(err, '\n');
}

static void test_bad_files(void) {
    jpeg_decoder *j = jpeg_decoder_new();
    REQUIRE(j);
    image_u8 im = {0};
    char err[512];
    for (int i = 0; i < N_BAD; i++) {
        const bad_case *c = &bad_files[i];
        /* a good decode first: a failure must not leave a stale image looking valid */
        REQUIRE(jpeg_read(j, FIX "rgb.jpg", &im, err, sizeof err) == JPEG_OK, "%s", err);
        err[0] = 0;
        jpeg_status s = jpeg_read(j, c->path, &im, err, sizeof err);
        EXPECT(s == c->status, "%s: status %s, want %s (%s)", c->path, jpeg_status_name(s), jpeg_status_name(c->status),
               err);
        EXPECT(message_ok(err, c->path, c->says), "%s: message \"%s\", want \"%s: ...%s...\"", c->path, err, c->path,
               c->says);
        EXPECT(im.h == 0 && im.w == 0, "%s: failed decode leaves a %dx%d image", c->path, im.w, im.h);
        printf("    %s -> %s\n", jpeg_status_name(s), err);
    }
    /* the decoder recovers after libjpeg's longjmp */
    size_t gn;
    uint8_t *want = golden(0, &gn);
    REQUIRE(want);
    EXPECT(jpeg_read(j, FIX "rgb.jpg", &im, err, sizeof err) == JPEG_OK &&
               count_diff("after failures", &im, want, 23, 37) == 0,
           "%s", err);
    free(want);
    /* a NULL name still gives a line; errn 0 writes nothing */
    EXPECT(jpeg_decode(j, NULL, (const uint8_t *)"", 0, &im, err, sizeof err) == JPEG_ERR_NOT_JPEG &&
               strstr(err, "empty file"),
           "%s", err);
    strcpy(err, "untouched");
    EXPECT(jpeg_decode(j, "x", (const uint8_t *)"\xFF", 1, &im, err, 0) == JPEG_ERR_NOT_JPEG &&
           !strcmp(err, "untouched"));
    EXPECT(!strcmp(jpeg_status_name(JPEG_OK), "ok") && !strcmp(jpeg_status_name(JPEG_ERR_OPEN), "unreadable") &&
           !strcmp(jpeg_status_name(JPEG_ERR_NOT_JPEG), "not a JPEG") &&
           !strcmp(jpeg_status_name(JPEG_ERR_TRUNCATED), "truncated") &&
           !strcmp(jpeg_status_name(JPEG_ERR_CORRUPT), "corrupt") &&
           !strcmp(jpeg_status_name(JPEG_ERR_TOO_BIG), "too big") &&
           !strcmp(jpeg_status_name(JPEG_ERR_MEMORY), "out of memory"));
    image_u8_free(&im);
    jpeg_decoder_free(j);
}

/* Every prefix of rgb.jpg, progressive.jpg (scans with tables between them) and exif.jpg
 * (an APP1 segment): 1 byte is not a JPEG, 2 .. n-1 bytes are truncated (also when the cut
 * is inside the header, where libjpeg's own message says something else), n is ok. */
static void test_every_truncation(void) {
    static const char *files[] = {FIX "rgb.jpg", FIX "progressive.jpg", FIX "exif.jpg"};
    jpeg_decoder *j = jpeg_decoder_new();
    REQUIRE(j);
    image_u8 im = {0};
    char err[512];
    for (int f = 0; f < 3; f++) {
        size_t n;
        uint8_t *file = slurp(files[f], &n);
        REQUIRE(file && n > 600, "%s", files[f]);
        int wrong = 0;
        for (size_t k = 1; k <= n; k++) {
            jpeg_status want = k == 1 ? JPEG_ERR_NOT_JPEG : k < n ? JPEG_ERR_TRUNCATED : JPEG_OK;
            err[0] = 0;
            jpeg_status s = jpeg_decode(j, "cut.jpg", file, k, &im, err, sizeof err);
            int ok = s == want &&
                     (s == JPEG_OK ? im.h == 23 && im.w == 37 : im.h == 0 && message_ok(err, "cut.jpg", ""));
            if (!ok && wrong++ < 5)
                EXPECT(0, "%s cut at %zu of %zu bytes: %s (%s), want %s", files[f], k, n, jpeg_status_name(s), err,
                       jpeg_status_name(want));
        }
        EXPECT(wrong == 0, "%s: %d of %zu cuts misclassified", files[f], wrong, n);
        /* jpeg_size: a cut after the header still gives the size; a cut inside it does not */
        int h = -1, w = -1;
        EXPECT(jpeg_size(j, "cut.jpg", file, n * 9 / 10, &h, &w, err, sizeof err) == JPEG_OK && h == 23 && w == 37,
               "%s: %s", files[f], err);
        EXPECT(jpeg_size(j, "cut.jpg", file, 100, &h, &w, err, sizeof err) == JPEG_ERR_TRUNCATED && h == 0 && w == 0,
               "%s: %s", files[f], err);
        free(file);
    }
    image_u8_free(&im);
    jpeg_decoder_free(j);
}

/* Every byte of rgb.jpg flipped (XOR 0xFF, then 0x01): libjpeg cannot notice every change
 * of entropy-coded data, but nothing may crash, a failure has its line, and a success has
 * the size jpeg_size reads from the same bytes. */
static void test_byte_flips_never_crash(void) {
    size_t n;
    uint8_t *file = slurp(FIX "rgb.jpg", &n);
    REQUIRE(file);
    uint8_t *copy = malloc(n);
    REQUIRE(copy);
    jpeg_decoder *j = jpeg_decoder_new();
    REQUIRE(j);
    image_u8 im = {0};
    char err[512];
    int failed = 0, wrong = 0;
    for (int x = 0; x < 2; x++)
        for (size_t i = 0; i < n; i++) {
            memcpy(copy, file, n);
            copy[i] ^= x ? 0x01 : 0xFF;
            err[0] = 0;
            jpeg_status s = jpeg_decode(j, "flip.jpg", copy, n, &im, err, sizeof err);
            int h = 0, w = 0, sized = jpeg_size(j, "flip.jpg", copy, n, &h, &w, err + 256, sizeof err - 256) == JPEG_OK;
            int ok = s == JPEG_OK ? sized && im.h == h && im.w == w && im.cap >= (size_t)h * w * 3
                                  : im.h == 0 && message_ok(err, "flip.jpg", "");
            failed += s != JPEG_OK;
            if (!ok && wrong++ < 5) EXPECT(0, "byte %zu ^ %s: %s (%s)", i, x ? "01" : "FF", jpeg_status_name(s), err);
        }
    printf("    %d of %zu flipped copies refused\n", failed, 2 * n);
    EXPECT(failed > 0 && wrong == 0);
    /* the SOI marker itself: not a JPEG */
    memcpy(copy, file, n);
    copy[1] = 0xD9;
    EXPECT(jpeg_decode(j, "flip.jpg", copy, n, &im, err, sizeof err) == JPEG_ERR_NOT_JPEG, "%s", err);
    image_u8_free(&im);
    jpeg_decoder_free(j);
    free(copy);
    free(file);
}

/* rgb.jpg with the frame header's size replaced (SOF0: FF C0, length, precision, height, width). */
static void patch_size(uint8_t *b, size_t n, int h, int w) {
    for (size_t i = 2; i + 9 < n; i++)
        if (b[i] == 0xFF && b[i + 1] == 0xC0) {
            b[i + 5] = (uint8_t)(h >> 8), b[i + 6] = (uint8_t)h;
            b[i + 7] = (uint8_t)(w >> 8), b[i + 8] = (uint8_t)w;
            return;
        }
}

static void test_too_big_refused_before_allocating(void) {
    size_t n;
    uint8_t *file = slurp(FIX "rgb.jpg", &n);
    REQUIRE(file);
    jpeg_decoder *j = jpeg_decoder_new();
    REQUIRE(j);
    static const struct { int h, w; jpeg_status want; } cases[] = {
        {23, 16385, JPEG_ERR_TOO_BIG},  {16385, 37, JPEG_ERR_TOO_BIG},   {10000, 10001, JPEG_ERR_TOO_BIG},
        {16384, 6103, JPEG_OK},         {6103, 16384, JPEG_OK},          {16384, 16384, JPEG_ERR_TOO_BIG},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        patch_size(file, n, cases[c].h, cases[c].w);
        char err[512] = "";
        int h = 0, w = 0;
        jpeg_status s = jpeg_size(j, "big.jpg", file, n, &h, &w, err, sizeof err);
        EXPECT(s == cases[c].want && h == cases[c].h && w == cases[c].w, "%dx%d (w x h): jpeg_size %s, %dx%d (%s)",
               cases[c].w, cases[c].h, jpeg_status_name(s), w, h, err);
        if (cases[c].want == JPEG_OK) continue; /* decoding would allocate ~300 MB for nothing */
        EXPECT(message_ok(err, "big.jpg", "over the limit of"), "%s", err);
        image_u8 im = {0};
        s = jpeg_decode(j, "big.jpg", file, n, &im, err, sizeof err);
        EXPECT(s == JPEG_ERR_TOO_BIG && im.data == NULL && im.cap == 0, "%dx%d: %s, cap %zu (%s)", cases[c].w,
               cases[c].h, jpeg_status_name(s), im.cap, err);
        image_u8_free(&im);
    }
    jpeg_decoder_free(j);
    free(file);
}

static void test_size_from_header(void) {
    jpeg_decoder *j = jpeg_decoder_new();
    REQUIRE(j);
    for (int i = 0; i < N_GOOD; i++) {
        char path[256], err[512] = "";
        size_t n;
        snprintf(path, sizeof path, FIX "%s.jpg", good[i].name);
        uint8_t *b = slurp(path, &n);
        REQUIRE(b, "%s", path);
        int h = 0, w = 0;
        EXPECT(jpeg_size(j, path, b, n, &h, &w, err, sizeof err) == JPEG_OK && h == good[i].h && w == good[i].w,
               "%s: %dx%d, want %dx%d (%s)", path, w, h, good[i].w, good[i].h, err);
        free(b);
    }
    size_t n;
    uint8_t *png = slurp(FIX "not_jpeg.png", &n);
    REQUIRE(png);
    char err[512];
    int h = -1, w = -1;
    EXPECT(jpeg_size(j, "p.png", png, n, &h, &w, err, sizeof err) == JPEG_ERR_NOT_JPEG && h == 0 && w == 0, "%s", err);
    free(png);
    jpeg_decoder_free(j);
}

/* One decoder and one image through many decodes of different sizes: the buffer grows to
 * the largest image and is then reused (no reallocation), and every result is exact. */
static void test_reuse(void) {
    jpeg_decoder *j = jpeg_decoder_new();
    REQUIRE(j);
    uint8_t *want[N_GOOD];
    for (int i = 0; i < N_GOOD; i++) {
        size_t gn;
        want[i] = golden(i, &gn);
        REQUIRE(want[i]);
    }
    image_u8 im = {0};
    size_t max_bytes = 0, cap_before = 0;
    const uint8_t *data_at_max = NULL;
    long bad = 0;
    char err[512], path[256];
    for (int round = 0; round < 60; round++) {
        int i = (round * 3 + round / N_GOOD) % N_GOOD; /* a mixed order of sizes */
        snprintf(path, sizeof path, FIX "%s.jpg", good[i].name);
        if (round % 7 == 3) /* failures in between change nothing */
            EXPECT(jpeg_read(j, FIX "truncated.jpg", &im, err, sizeof err) == JPEG_ERR_TRUNCATED);
        REQUIRE(jpeg_read(j, path, &im, err, sizeof err) == JPEG_OK, "round %d: %s", round, err);
        bad += count_diff(path, &im, want[i], good[i].h, good[i].w);
        EXPECT(im.cap >= cap_before, "round %d: capacity shrank from %zu to %zu", round, cap_before, im.cap);
        cap_before = im.cap;
        size_t bytes = (size_t)good[i].h * good[i].w * 3;
        if (bytes > max_bytes) max_bytes = bytes, data_at_max = im.data;
        else if (round >= 2 * N_GOOD)
            EXPECT(im.data == data_at_max, "round %d: reallocated after the largest image", round);
    }
    EXPECT(bad == 0, "%ld bytes differ over the rounds", bad);
    EXPECT(im.cap == max_bytes, "capacity %zu, largest image %zu bytes", im.cap, max_bytes);
    for (int i = 0; i < N_GOOD; i++) free(want[i]);
    image_u8_free(&im);
    jpeg_decoder_free(j);
}

/* Threads, one decoder each, decoding every fixture (good and bad) many times in their own
 * orders: every result must equal PIL's pixels and the single-thread status and message. */
typedef struct thread_job {
    int id;
    uint8_t **want;
    char (*bad_msg)[512];
    const uint8_t *rgb;   /* rgb.jpg's bytes; its first 300 cut inside the Huffman tables */
    const char *cut_msg;  /* the single-thread message for that cut */
    long mismatches;
} thread_job;

static void *decode_thread(void *arg) {
    thread_job *t = arg;
    jpeg_decoder *j = jpeg_decoder_new();
    if (!j) {
        t->mismatches = -1;
        return NULL;
    }
    image_u8 im = {0};
    char err[512], path[256];
    for (int round = 0; round < 40; round++) {
        for (int k = 0; k < N_GOOD + N_BAD; k++) {
            int i = (k + round * (t->id + 1)) % (N_GOOD + N_BAD);
            if (i < N_GOOD) {
                snprintf(path, sizeof path, FIX "%s.jpg", good[i].name);
                jpeg_status s = jpeg_read(j, path, &im, err, sizeof err);
                if (s != JPEG_OK || im.h != good[i].h || im.w != good[i].w ||
                    memcmp(im.data, t->want[i], (size_t)im.h * im.w * 3))
                    t->mismatches++;
            } else {
                const bad_case *c = &bad_files[i - N_GOOD];
                if (jpeg_read(j, c->path, &im, err, sizeof err) != c->status || strcmp(err, t->bad_msg[i - N_GOOD]))
                    t->mismatches++;
            }
        }
        if (jpeg_decode(j, "cut.jpg", t->rgb, 300, &im, err, sizeof err) != JPEG_ERR_TRUNCATED ||
            strcmp(err, t->cut_msg))
            t->mismatches++;
    }
    image_u8_free(&im);
    jpeg_decoder_free(j);
    return NULL;
}

static void test_threads(void) {
    enum { T = 4 };
    uint8_t *want[N_GOOD];
    char bad_msg[N_BAD][512];
    jpeg_decoder *j = jpeg_decoder_new();
    REQUIRE(j);
    image_u8 im = {0};
    for (int i = 0; i < N_GOOD; i++) {
        size_t gn;
        want[i] = golden(i, &gn);
        REQUIRE(want[i]);
    }
    for (int i = 0; i < N_BAD; i++) jpeg_read(j, bad_files[i].path, &im, bad_msg[i], sizeof bad_msg[i]);
    size_t n;
    char cut_msg[512];
    uint8_t *rgb = slurp(FIX "rgb.jpg", &n);
    REQUIRE(rgb && n > 300);
    REQUIRE(jpeg_decode(j, "cut.jpg", rgb, 300, &im, cut_msg, sizeof cut_msg) == JPEG_ERR_TRUNCATED, "%s", cut_msg);
    image_u8_free(&im);
    jpeg_decoder_free(j);
    pthread_t th[T];
    thread_job jobs[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (thread_job){.id = t, .want = want, .bad_msg = bad_msg, .rgb = rgb, .cut_msg = cut_msg};
        REQUIRE(pthread_create(&th[t], NULL, decode_thread, &jobs[t]) == 0);
    }
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < T; t++)
        EXPECT(jobs[t].mismatches == 0, "thread %d: %ld decodes differ from the single-thread results", t,
               jobs[t].mismatches);
    for (int i = 0; i < N_GOOD; i++) free(want[i]);
    free(rgb);
}

int main(void) {
    RUN(test_decode_matches_pil);
    RUN(test_bad_files);
    RUN(test_every_truncation);
    RUN(test_byte_flips_never_crash);
    RUN(test_too_big_refused_before_allocating);
    RUN(test_size_from_header);
    RUN(test_reuse);
    RUN(test_threads);
    return test_finish("test_jpeg");
}

/* synth_cmd.c: `maskrcnn synth` (see synth_cmd.h): renders every image of the plan
 * (synth.h), encodes it with TurboJPEG and writes the LVIS v1 JSON of both splits and a
 * README. Output is a pure function of (seed, --train, --val): no dates, no timings and no
 * host names go into the files, the JSON is written by hand in a fixed order, and numbers
 * are printed with "%.2f" (then trimmed), which is exact for coordinates already rounded
 * to 2 decimals. The JSON files and the README are written to NAME.tmp and renamed. */
#include "data/synth_cmd.h"

#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <turbojpeg.h>

#define JPEG_QUALITY 90
/* 4:4:4: colour is what tells a rare twin from its frequent class, and 4:2:0 would blur
 * the chroma of small objects over 2x2 pixels. */
#define JPEG_SUBSAMP TJSAMP_444

static const char *const split_names[2] = {"train", "val"};

/* ---- a growable text buffer ------------------------------------------------------------- */

typedef struct text {
    char *p;
    int64_t n, cap;
    int oom;
} text;

static void tx_printf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tx_printf(text *t, const char *fmt, ...) {
    if (t->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int64_t room = t->cap - t->n;
        int k = vsnprintf(t->p ? t->p + t->n : NULL, (size_t)(room > 0 ? room : 0), fmt, ap);
        va_end(ap);
        if (k < room) {
            t->n += k;
            return;
        }
        if (MRC_GROW(t->p, t->cap, t->n + k + 1)) {
            t->oom = 1;
            return;
        }
    }
}

/* v with 2 decimals, trailing zeros trimmed ("12.5", "7"). */
static const char *num2(double v, char *buf) {
    snprintf(buf, 32, "%.2f", v);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *e = buf + strlen(buf) - 1;
        while (e > dot && *e == '0') *e-- = 0;
        if (e == dot) *e = 0;
    }
    if (!strcmp(buf, "-0")) strcpy(buf, "0");
    return buf;
}

static void tx_ids(text *t, const int *ids, int n) {
    tx_printf(t, "[");
    for (int k = 0; k < n; k++) tx_printf(t, "%s%d", k ? ", " : "", ids[k]);
    tx_printf(t, "]");
}

/* ---- files -------------------------------------------------------------------------------- */

/* Writes buf[0..n) to path through path.tmp and a rename. */
static int write_file(const char *path, const void *buf, size_t n, char *err, size_t errn) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return mrc_fail(err, errn, "cannot create %s: %s", tmp, strerror(errno));
    int ok = fwrite(buf, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        int e = errno;
        remove(tmp);
        return mrc_fail(err, errn, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

/* mkdir -p */
static int make_dirs(const char *dir, char *err, size_t errn) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) && errno != EEXIST) return mrc_fail(err, errn, "cannot create %s: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0755) && errno != EEXIST) return mrc_fail(err, errn, "cannot create %s: %s", p, strerror(errno));
    return 0;
}

/* 1 when dir exists and holds anything, 0 when it is missing or empty, -1 when it is not a
 * folder or cannot be read. */
static int dir_nonempty(const char *dir, char *err, size_t errn) {
    struct stat st;
    if (stat(dir, &st)) return 0;
    if (!S_ISDIR(st.st_mode)) return mrc_fail(err, errn, "%s exists and is not a folder", dir);
    DIR *d = opendir(dir);
    if (!d) return mrc_fail(err, errn, "cannot read %s: %s", dir, strerror(errno));
    int any = 0;
    for (struct dirent *e; !any && (e = readdir(d));) any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

/* ---- the JSON of one split --------------------------------------------------------------------- */

static void json_head(text *t, const synth_plan *p, int split) {
    const synth_split_plan *tr = &p->split[SYNTH_TRAIN];
    tx_printf(t,
              "{\"info\": {\"description\": \"maskrcnn.c synthetic long-tail demo data set (maskrcnn synth), %s split\", "
              "\"version\": \"1.0\", \"seed\": %llu, \"train_images\": %d, \"val_images\": %d},\n\"licenses\": [],\n"
              "\"categories\": [\n",
              split_names[split], (unsigned long long)p->cfg.seed, p->cfg.n_train, p->cfg.n_val);
    /* LVIS val carries the train counts and groups */
    for (int c = 1; c <= SYNTH_NUM_CLASSES; c++) {
        const synth_class *k = synth_class_get(c);
        tx_printf(t,
                  "{\"id\": %d, \"name\": \"%s\", \"synonyms\": [\"%s\"], \"synset\": \"synth.%s\", \"def\": \"%s %s %s\", "
                  "\"frequency\": \"%c\", \"image_count\": %lld, \"instance_count\": %lld}%s\n",
                  c, k->name, k->name, k->name, strchr("aeiou", k->colour[0]) ? "an" : "a", k->colour, k->shape,
                  synth_frequency(tr->image_count[c]),
                  (long long)tr->image_count[c], (long long)tr->instance_count[c], c < SYNTH_NUM_CLASSES ? "," : "");
    }
    tx_printf(t, "],\n\"images\": [\n");
}

static void json_image(text *t, const synth_image *im, int first) {
    const char *sp = split_names[im->split];
    tx_printf(t,
              "%s{\"id\": %lld, \"width\": %d, \"height\": %d, \"file_name\": \"%s/%06d.jpg\", "
              "\"coco_url\": \"synth://%s/%06d.jpg\", \"neg_category_ids\": ",
              first ? "" : ",\n", (long long)im->id, im->w, im->h, sp, im->index + 1, sp, im->index + 1);
    tx_ids(t, im->neg, im->n_neg);
    tx_printf(t, ", \"not_exhaustive_category_ids\": ");
    tx_ids(t, im->not_exhaustive, im->n_not_exhaustive);
    tx_printf(t, "}");
}

static void json_annotation(text *t, const synth_image *im, const synth_object *ob, int64_t id) {
    char a[32], b[32], c[32], d[32], e[32];
    tx_printf(t, "%s{\"id\": %lld, \"image_id\": %lld, \"category_id\": %d, \"bbox\": [%s, %s, %s, %s], \"area\": %s, "
                 "\"segmentation\": [",
              id > 1 ? ",\n" : "", (long long)id, (long long)im->id, ob->cls, num2(ob->bbox[0], a), num2(ob->bbox[1], b),
              num2(ob->bbox[2], c), num2(ob->bbox[3], d), num2(ob->area, e));
    for (int q = 0; q < ob->n_parts; q++) {
        tx_printf(t, "%s[", q ? ", " : "");
        for (int k = 0; k < 2 * ob->n_points[q]; k++) tx_printf(t, "%s%s", k ? ", " : "", num2(ob->xy[q][k], a));
        tx_printf(t, "]");
    }
    tx_printf(t, "]}");
}

/* ---- writing a split ------------------------------------------------------------------------------ */

typedef struct writer {
    tjhandle tj;
    unsigned char *jpg;
    unsigned long jpg_cap;
    synth_image im;
} writer;

static int write_jpeg(writer *w, const char *path, char *err, size_t errn) {
    unsigned long size = w->jpg_cap;
    if (tjCompress2(w->tj, w->im.rgb, w->im.w, 0, w->im.h, TJPF_RGB, &w->jpg, &size, JPEG_SUBSAMP, JPEG_QUALITY,
                    TJFLAG_NOREALLOC))
        return mrc_fail(err, errn, "%s: JPEG encoding failed: %s", path, tjGetErrorStr2(w->tj));
    FILE *f = fopen(path, "wb");
    if (!f) return mrc_fail(err, errn, "cannot create %s: %s", path, strerror(errno));
    int ok = fwrite(w->jpg, 1, size, f) == size;
    if (fclose(f) || !ok) return mrc_fail(err, errn, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

static int write_split(writer *w, const synth_plan *p, int split, const char *dir, synth_summary *s, char *err,
                       size_t errn) {
    text json = {0}, anns = {0};
    char path[4096];
    int rc = 0;
    int64_t ann_id = 0;
    json_head(&json, p, split);
    for (int i = 0; i < p->split[split].n && !rc; i++) {
        if (synth_render(p, split, i, &w->im)) {
            rc = mrc_fail(err, errn, "cannot render %s image %d (out of memory, or no room for an object)",
                          split_names[split], i);
            break;
        }
        snprintf(path, sizeof path, "%s/%s/%06d.jpg", dir, split_names[split], i + 1);
        rc = write_jpeg(w, path, err, errn);
        json_image(&json, &w->im, i == 0);
        for (int k = 0; k < w->im.n_obj; k++)
            if (w->im.obj[k].annotated) json_annotation(&anns, &w->im, &w->im.obj[k], ++ann_id);
    }
    tx_printf(&json, "],\n\"annotations\": [\n");
    if (!rc && (json.oom || anns.oom)) rc = mrc_fail(err, errn, "out of memory writing the %s JSON", split_names[split]);
    if (!rc) {
        snprintf(path, sizeof path, "%s/lvis_v1_%s.json", dir, split_names[split]);
        /* the head and images, then the annotations and the closing brackets */
        tx_printf(&anns, "\n]}\n");
        int64_t head = json.n;
        if (MRC_GROW(json.p, json.cap, head + anns.n + 1) == 0 && !anns.oom) {
            memcpy(json.p + head, anns.p, (size_t)anns.n);
            rc = write_file(path, json.p, (size_t)(head + anns.n), err, errn);
        } else {
            rc = mrc_fail(err, errn, "out of memory writing %s", path);
        }
    }
    s->images[split] = p->split[split].n;
    s->annotations[split] = ann_id;
    free(json.p), free(anns.p);
    return rc;
}

/* ---- the README ------------------------------------------------------------------------------------- */

static void readme(text *t, const synth_plan *p) {
    const synth_config *c = &p->cfg;
    const synth_split_plan *tr = &p->split[SYNTH_TRAIN], *va = &p->split[SYNTH_VAL];
    tx_printf(t,
              "maskrcnn.c synthetic long-tail demo data set\n"
              "============================================\n\n"
              "Made by:  maskrcnn synth --out DIR --seed %llu --train %d --val %d\n"
              "The same command writes byte-identical files. The train split depends only on --seed\n"
              "and --train, the val split only on --seed and --val.\n\n",
              (unsigned long long)c->seed, c->n_train, c->n_val);
    tx_printf(t,
              "Files (DIR is the image root: file_name is relative to it)\n"
              "  train/NNNNNN.jpg, val/NNNNNN.jpg   %d + %d JPEGs (TurboJPEG, quality %d, 4:4:4)\n"
              "  lvis_v1_train.json                 %lld annotations, image ids 1..%d\n"
              "  lvis_v1_val.json                   %lld annotations, image ids %d..%d\n\n",
              c->n_train, c->n_val, JPEG_QUALITY, (long long)tr->n_annotated, c->n_train, (long long)va->n_annotated,
              SYNTH_VAL_ID_BASE + 1, SYNTH_VAL_ID_BASE + c->n_val);
    tx_printf(t,
              "What is drawn\n"
              "  Images of %d to %d pixels a side on a textured background (a gradient, soft stripes,\n"
              "  blotchy value noise or a faint checkerboard, with pixel noise), holding 1 to 6 objects\n"
              "  of the %d classes below (solid or slightly noisy colours) and 0 to 3 unlabelled\n"
              "  distractors: a class shape in grey, or a bar, trapezoid or half disc in any colour.\n"
              "  Objects are turned, stretched a little and sized with the image; some overlap.\n\n",
              SYNTH_MIN_SIDE, SYNTH_MAX_SIDE, SYNTH_NUM_CLASSES);
    tx_printf(t,
              "Annotations (LVIS v1 layout)\n"
              "  - segmentation: the object's WHOLE outline (amodal): where a later object covers part of\n"
              "    it, the polygon and the mask still include the covered part. Overlaps are moderate:\n"
              "    every object keeps about %.0f%% or more of its area visible.\n"
              "  - A ring is two C-shaped half annuli and a domino two separate squares: COCO polygons\n"
              "    are unioned and have no holes.\n"
              "  - Coordinates are in pixels, rounded to 2 decimals, and lie inside the image. Objects\n"
              "    were drawn by testing pixel centres (x + 0.5, y + 0.5) against these polygons; the\n"
              "    COCO rasteriser's mask of every annotated object agrees with its drawn (amodal) mask\n"
              "    to IoU 0.97 or more (a pose where it would not was drawn again).\n"
              "  - area: the shoelace area summed over the parts; bbox: [x, y, w, h] of the outline.\n"
              "  - neg_category_ids on every image: classes verified absent, always including the\n"
              "    absent twins of the classes present (so a twin mistaken for its frequent class is a\n"
              "    counted false positive) and a few random others.\n"
              "  - not_exhaustive_category_ids on a few images (%lld train, %lld val): the class is\n"
              "    annotated there, and one more instance of it is drawn but not annotated.\n"
              "  - frequency, image_count and instance_count are the train counts, in both files, with\n"
              "    LVIS's groups: r (1-10 train images), c (11-100), f (more than 100).\n\n",
              100 * SYNTH_MIN_VISIBLE, (long long)tr->n_not_exhaustive_images, (long long)va->n_not_exhaustive_images);
    tx_printf(t,
              "Classes (freq: the group from the train counts; design: the group the class was made for;\n"
              "a rare class is a near twin of a frequent one: the same shape in a close colour or a close\n"
              "shape in the same colour)\n\n"
              "  id  name               shape           colour   freq design  train img  train inst  val img  val inst"
              "  twin of\n");
    for (int k = 1; k <= SYNTH_NUM_CLASSES; k++) {
        const synth_class *q = synth_class_get(k);
        char twin[64] = "";
        if (q->twin) snprintf(twin, sizeof twin, "%s (%s)", synth_class_get(q->twin)->name, q->twin_kind);
        tx_printf(t, "  %2d  %-18s %-15s %-8s %c    %c       %9lld  %10lld  %7lld  %8lld  %s\n", k, q->name, q->shape,
                  q->colour, synth_frequency(tr->image_count[k]), q->group, (long long)tr->image_count[k],
                  (long long)tr->instance_count[k], (long long)va->image_count[k], (long long)va->instance_count[k], twin);
    }
}

/* ---- the command ----------------------------------------------------------------------------------- */

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

int synth_write(const synth_config *c, const char *dir, int force, synth_summary *s, char *err, size_t errn) {
    double t0 = now_s();
    memset(s, 0, sizeof *s);
    int full = dir_nonempty(dir, err, errn);
    if (full < 0) return -1;
    if (full && !force) return mrc_fail(err, errn, "%s is not empty (--force writes into it)", dir);
    char sub[4096];
    if (make_dirs(dir, err, errn)) return -1;
    for (int k = 0; k < 2; k++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, split_names[k]);
        if (make_dirs(sub, err, errn)) return -1;
    }
    synth_plan p;
    if (synth_plan_make(&p, c, err, errn)) return -1;
    writer w = {0};
    w.tj = tjInitCompress();
    w.jpg_cap = tjBufSize(SYNTH_MAX_SIDE, SYNTH_MAX_SIDE, JPEG_SUBSAMP);
    w.jpg = w.tj ? tjAlloc((int)w.jpg_cap) : NULL;
    int rc = !w.tj || !w.jpg ? mrc_fail(err, errn, "cannot initialise TurboJPEG: %s", tjGetErrorStr2(w.tj)) : 0;
    for (int k = 0; k < 2 && !rc; k++) rc = write_split(&w, &p, k, dir, s, err, errn);
    if (!rc) {
        text t = {0};
        readme(&t, &p);
        snprintf(sub, sizeof sub, "%s/README", dir);
        rc = t.oom ? mrc_fail(err, errn, "out of memory writing %s", sub) : write_file(sub, t.p, (size_t)t.n, err, errn);
        free(t.p);
    }
    for (int k = 1; k <= SYNTH_NUM_CLASSES; k++) {
        char g = synth_frequency(p.split[SYNTH_TRAIN].image_count[k]);
        s->groups[g == 'r' ? 0 : g == 'c' ? 1 : 2]++;
    }
    synth_image_free(&w.im);
    if (w.jpg) tjFree(w.jpg);
    if (w.tj) tjDestroy(w.tj);
    synth_plan_free(&p);
    s->seconds = now_s() - t0;
    return rc;
}

static void usage(FILE *f) {
    synth_config d;
    synth_config_default(&d);
    fprintf(f,
            "usage: maskrcnn synth --out DIR [--seed N] [--train N] [--val N] [--force]\n"
            "  Writes the built-in long-tail demo data set: %d classes of drawn shapes (8 frequent,\n"
            "  12 common, 10 rare near twins of frequent ones) as JPEGs with LVIS v1 annotations:\n"
            "  DIR/train/*.jpg, DIR/val/*.jpg, DIR/lvis_v1_train.json, DIR/lvis_v1_val.json and\n"
            "  DIR/README (how it was made, the class table). The same options give the same bytes.\n"
            "  --out DIR   where to write (created when missing; the image root of both JSON files)\n"
            "  --seed N    default %llu\n"
            "  --train N   train images (default %d; LVIS's r/c/f groups come out as designed from\n"
            "              about 500 up)\n"
            "  --val N     val images (default %d; every class is in 15+ val images from about 240 up)\n"
            "  --force     write into a DIR that is not empty (files of the same names are replaced)\n",
            SYNTH_NUM_CLASSES, (unsigned long long)d.seed, d.n_train, d.n_val);
}

static int parse_count(const char *flag, const char *v, int *out) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > SYNTH_VAL_ID_BASE - 1) {
        fprintf(stderr, "error: %s wants a whole number in [1, %d], got '%s'\n", flag, SYNTH_VAL_ID_BASE - 1, v);
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* Lines on stderr when these sizes do not give the designed data set. */
static void notes(const synth_config *c) {
    synth_plan p;
    char err[256];
    if (synth_plan_make(&p, c, err, sizeof err)) return;
    int off = 0, thin = 0;
    for (int k = 1; k <= SYNTH_NUM_CLASSES; k++) {
        off += synth_frequency(p.split[SYNTH_TRAIN].image_count[k]) != synth_class_get(k)->group;
        thin += p.split[SYNTH_VAL].image_count[k] < 15;
    }
    if (off)
        fprintf(stderr, "note: with --train %d, %d classes fall outside their designed frequency group\n", c->n_train, off);
    if (thin) fprintf(stderr, "note: with --val %d, %d classes are in fewer than 15 val images\n", c->n_val, thin);
    synth_plan_free(&p);
}

int synth_main(int argc, char **argv) {
    synth_config c;
    synth_config_default(&c);
    const char *out = NULL;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), 0;
        if (!strcmp(a, "--force")) {
            force = 1;
            continue;
        }
        int known = !strcmp(a, "--out") || !strcmp(a, "--seed") || !strcmp(a, "--train") || !strcmp(a, "--val");
        if (!known) {
            fprintf(stderr, "error: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "error: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--train") && parse_count(a, v, &c.n_train)) return 2;
        else if (!strcmp(a, "--val") && parse_count(a, v, &c.n_val)) return 2;
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') {
                fprintf(stderr, "error: --seed wants a whole number >= 0, got '%s'\n", v);
                return 2;
            }
            c.seed = s;
        }
    }
    if (!out || !out[0]) {
        fprintf(stderr, "error: --out DIR is required\n");
        usage(stderr);
        return 2;
    }
    synth_summary s;
    char err[1024];
    if (synth_write(&c, out, force, &s, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    notes(&c);
    printf("synth: wrote %s: train %lld images, %lld annotations; val %lld images, %lld annotations; %d classes "
           "(train groups: r %d, c %d, f %d); seed %llu; %.2f s\n",
           out, (long long)s.images[0], (long long)s.annotations[0], (long long)s.images[1], (long long)s.annotations[1],
           SYNTH_NUM_CLASSES, s.groups[0], s.groups[1], s.groups[2], (unsigned long long)c.seed, s.seconds);
    return 0;
}

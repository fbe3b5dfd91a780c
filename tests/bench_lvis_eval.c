/* bench_lvis_eval.c: `maskrcnn lvis-eval` on LVIS-val-sized data (issue 7).
 *
 * Generates (once; kept in $MRC_BENCH_DIR, default /tmp/mrc-bench) a ground-truth file with
 * LVIS v1 val's counts (19,809 images, about 244,700 polygon annotations, 1203 categories
 * with the r/c/f split of LVIS v1, neg and not-exhaustive lists) and two results files with
 * 300 detections per image (5.94 M): boxes, and masks as compressed RLE without a bbox key
 * (detectron2's convention). Per image: half the detections are jittered copies of its
 * objects (several per object, falling scores), a fifth are in its negative categories, the
 * rest in random categories (dropped by the federated rule, but they use up the 300).
 * Then runs `BIN lvis-eval` on both in a child and reports wall time and the child's peak
 * RSS. Goals on 2 cores: bbox <= 60 s, segm <= 180 s, peak <= 4 GB.
 * usage: bench_lvis_eval [BIN] (default build/maskrcnn). Prints a table; never fails on a number. */
#include "eval/rle.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_IMG 19809
#define N_CAT 1203
#define DETS 300
#define MAX_PTS 24

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs >> 16);
}
static double unif(double lo, double hi) { return lo + (hi - lo) * (rnd() / 4294967296.0); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct obj {
    int cat, n;          /* category id, points */
    double xy[2 * MAX_PTS];
    double box[4];
} obj;

typedef struct image {
    int w, h, n_obj, first;
    int neg[8], n_neg;
    int not_exhaustive;  /* one of its categories (a fifth of the images), or 0 */
} image;

/* A star-shaped polygon around (cx, cy): angles sorted, radii jittered. */
static void make_poly(obj *o, double cx, double cy, double rx, double ry, int w, int h) {
    o->n = 8 + (int)(rnd() % (MAX_PTS - 8));
    double x0 = 1e9, y0 = 1e9, x1 = -1e9, y1 = -1e9;
    for (int k = 0; k < o->n; k++) {
        double a = 2 * M_PI * (k + unif(0, 0.8)) / o->n, r = unif(0.6, 1.0);
        double x = fmin(w, fmax(0, cx + rx * r * cos(a))), y = fmin(h, fmax(0, cy + ry * r * sin(a)));
        x = round(x * 100) / 100, y = round(y * 100) / 100;
        o->xy[2 * k] = x, o->xy[2 * k + 1] = y;
        x0 = fmin(x0, x), y0 = fmin(y0, y), x1 = fmax(x1, x), y1 = fmax(y1, y);
    }
    o->box[0] = x0, o->box[1] = y0, o->box[2] = round((x1 - x0) * 100) / 100, o->box[3] = round((y1 - y0) * 100) / 100;
}

static double shoelace(const obj *o) {
    double s = 0;
    for (int k = 0; k < o->n; k++) {
        int j = (k + 1) % o->n;
        s += o->xy[2 * k] * o->xy[2 * j + 1] - o->xy[2 * j] * o->xy[2 * k + 1];
    }
    return fabs(s) / 2;
}

static char freq_of(int id) { return id <= 337 ? 'r' : id <= 798 ? 'c' : 'f'; } /* LVIS v1: 337 / 461 / 405 */

static void write_gt(const char *path, image *im, obj **objs_out, int *n_obj_out) {
    int cap = 300000, n = 0;
    obj *objs = malloc((size_t)cap * sizeof *objs);
    FILE *f = fopen(path, "w");
    if (!f || !objs) exit(1);
    fprintf(f, "{\"info\": {\"description\": \"LVIS-val-sized evaluation benchmark\"}, \"categories\": [");
    for (int c = 1; c <= N_CAT; c++)
        fprintf(f, "%s{\"id\": %d, \"name\": \"c%d\", \"frequency\": \"%c\", \"image_count\": 1, \"instance_count\": 1}",
                c > 1 ? "," : "", c, c, freq_of(c));
    fprintf(f, "], \"annotations\": [");
    for (int i = 0; i < N_IMG; i++) {
        image *m = &im[i];
        m->w = rnd() % 4 ? 640 : 480, m->h = m->w == 640 ? 480 : 640;
        m->n_obj = 1 + (int)(rnd() % 24); /* mean 12.5: about 247 k objects */
        m->first = n;
        int cats[4];
        int n_cats = 1 + (int)(rnd() % 4);
        for (int k = 0; k < n_cats; k++) cats[k] = 1 + (int)(rnd() % N_CAT);
        for (int k = 0; k < m->n_obj && n < cap; k++, n++) {
            obj *o = &objs[n];
            o->cat = cats[rnd() % n_cats];
            double rx = unif(4, 120), ry = unif(4, 120);
            make_poly(o, unif(0, m->w), unif(0, m->h), rx, ry, m->w, m->h);
            fprintf(f, "%s{\"id\": %d, \"image_id\": %d, \"category_id\": %d, \"bbox\": [%.2f, %.2f, %.2f, %.2f], "
                       "\"area\": %.2f, \"segmentation\": [[",
                    n ? "," : "", n + 1, i + 1, o->cat, o->box[0], o->box[1], o->box[2], o->box[3], shoelace(o));
            for (int p = 0; p < o->n; p++) fprintf(f, "%s%.2f,%.2f", p ? "," : "", o->xy[2 * p], o->xy[2 * p + 1]);
            fprintf(f, "]]}");
        }
        m->n_obj = n - m->first;
        m->not_exhaustive = rnd() % 5 == 0 ? cats[0] : 0;
        m->n_neg = 2 + (int)(rnd() % 6);
        for (int k = 0; k < m->n_neg; k++) m->neg[k] = 1 + (int)(rnd() % N_CAT);
    }
    fprintf(f, "], \"images\": [");
    for (int i = 0; i < N_IMG; i++) {
        image *m = &im[i];
        fprintf(f, "%s{\"id\": %d, \"width\": %d, \"height\": %d, \"coco_url\": \"http://x/val2017/%012d.jpg\", "
                   "\"neg_category_ids\": [",
                i ? "," : "", i + 1, m->w, m->h, i + 1);
        for (int k = 0; k < m->n_neg; k++) fprintf(f, "%s%d", k ? "," : "", m->neg[k]);
        if (m->not_exhaustive) fprintf(f, "], \"not_exhaustive_category_ids\": [%d]}", m->not_exhaustive);
        else fprintf(f, "], \"not_exhaustive_category_ids\": []}");
    }
    fprintf(f, "]}\n");
    if (fclose(f)) exit(1);
    *objs_out = objs, *n_obj_out = n;
}

/* One detection: a jittered object (kind 0), or a random shape in category cat. */
static void make_det(const image *m, const obj *src, obj *d) {
    if (src) {
        double cx = src->box[0] + src->box[2] / 2, cy = src->box[1] + src->box[3] / 2;
        make_poly(d, cx + unif(-6, 6), cy + unif(-6, 6), fmax(2, src->box[2] / 2 * unif(0.8, 1.2)),
                  fmax(2, src->box[3] / 2 * unif(0.8, 1.2)), m->w, m->h);
    } else {
        make_poly(d, unif(0, m->w), unif(0, m->h), unif(4, 100), unif(4, 100), m->w, m->h);
    }
}

static void write_results(const char *bbox_path, const char *segm_path, const image *im, const obj *objs) {
    FILE *fb = fopen(bbox_path, "w"), *fs = fopen(segm_path, "w");
    if (!fb || !fs) exit(1);
    char *str = malloc(1 << 20), *esc = malloc(1 << 21);
    fputc('[', fb), fputc('[', fs);
    long k = 0;
    for (int i = 0; i < N_IMG; i++) {
        const image *m = &im[i];
        for (int j = 0; j < DETS; j++, k++) {
            obj d;
            uint32_t kind = rnd() % 10, cat;
            const obj *src = NULL;
            if (kind < 5 && m->n_obj) src = &objs[m->first + (int)(rnd() % (uint32_t)m->n_obj)], cat = (uint32_t)src->cat;
            else if (kind < 7) cat = (uint32_t)m->neg[rnd() % (uint32_t)m->n_neg];
            else cat = 1 + rnd() % N_CAT;
            make_det(m, src, &d);
            double score = round(unif(0.0001, 1.0) * 10000) / 10000;
            fprintf(fb, "%s{\"image_id\": %d, \"category_id\": %u, \"bbox\": [%.2f, %.2f, %.2f, %.2f], \"score\": %.4f}",
                    k ? "," : "", i + 1, cat, d.box[0], d.box[1], d.box[2], d.box[3], score);
            rle r;
            if (rle_from_polygon(&r, d.xy, d.n, m->h, m->w)) exit(1);
            size_t n = rle_to_string(&r, str, 1 << 20);
            rle_json_escape(str, n, esc, 1 << 21);
            fprintf(fs, "%s{\"image_id\": %d, \"category_id\": %u, \"segmentation\": {\"size\": [%d, %d], \"counts\": \"%s\"}, "
                        "\"score\": %.4f}",
                    k ? "," : "", i + 1, cat, m->h, m->w, esc, score);
            rle_free(&r);
        }
    }
    fputs("]\n", fb), fputs("]\n", fs);
    if (fclose(fb) || fclose(fs)) exit(1);
    free(str), free(esc);
}

/* Runs argv in a child; wall seconds, peak RSS (MiB) and exit status. */
static int run(char **argv, const char *out_path, double *wall, double *rss_mb) {
    fflush(stdout); /* or the child's copy of the buffer is printed twice */
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        FILE *o = freopen(out_path, "w", stdout);
        (void)o;
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0) return -1;
    *wall = now_s() - t0;
    *rss_mb = ru.ru_maxrss / 1024.0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static long file_mb(const char *p) {
    struct stat st;
    return stat(p, &st) ? -1 : (long)(st.st_size >> 20);
}

int main(int argc, char **argv) {
    const char *bin = argc > 1 ? argv[1] : "build/maskrcnn";
    const char *dir = getenv("MRC_BENCH_DIR") ? getenv("MRC_BENCH_DIR") : "/tmp/mrc-bench";
    if (access(bin, X_OK)) return fprintf(stderr, "bench_lvis_eval: %s is not built\n", bin), 1;
    mkdir(dir, 0755);
    char gt[512], rb[512], rsg[512], done[512];
    snprintf(gt, sizeof gt, "%s/lvis_eval_gt.json", dir);
    snprintf(rb, sizeof rb, "%s/lvis_eval_bbox.json", dir);
    snprintf(rsg, sizeof rsg, "%s/lvis_eval_segm.json", dir);
    snprintf(done, sizeof done, "%s/lvis_eval.complete", dir);
    if (access(done, F_OK)) { /* generate (about a minute), then mark complete */
        double t0 = now_s();
        printf("generating LVIS-val-sized ground truth and results in %s ...\n", dir);
        fflush(stdout);
        image *im = calloc(N_IMG, sizeof *im);
        obj *objs;
        int n_obj;
        write_gt(gt, im, &objs, &n_obj);
        write_results(rb, rsg, im, objs);
        FILE *f = fopen(done, "w");
        if (f) fclose(f);
        printf("  %d images, %d objects, %d detections in %.0f s\n", N_IMG, n_obj, N_IMG * DETS, now_s() - t0);
        free(im), free(objs);
    }
    printf("LVIS evaluation benchmark: GT %ld MB, bbox results %ld MB, segm results %ld MB (%d images x %d detections)\n",
           file_mb(gt), file_mb(rb), file_mb(rsg), N_IMG, DETS);
    printf("  %-6s %10s %14s %8s %10s\n", "type", "wall s", "peak RSS MiB", "goal s", "AP");
    const char *types[2] = {"bbox", "segm"}, *res[2] = {rb, rsg};
    double goal[2] = {60, 180};
    for (int t = 0; t < 2; t++) {
        char out[600];
        snprintf(out, sizeof out, "%s/lvis_eval_%s.out", dir, types[t]);
        char *args[] = {(char *)bin, "lvis-eval", "--gt", gt, "--results", (char *)res[t], "--type", (char *)types[t], "--json", NULL};
        double wall = 0, rss = 0;
        int st = run(args, out, &wall, &rss);
        char ap[64] = "?";
        FILE *f = fopen(out, "r");
        char line[8192], last[8192] = "";
        while (f && fgets(line, sizeof line, f)) snprintf(last, sizeof last, "%s", line);
        if (f) fclose(f);
        const char *k = strstr(last, "\"AP\":");
        if (k) snprintf(ap, sizeof ap, "%.4f", strtod(k + 5, NULL));
        printf("  %-6s %10.1f %14.0f %8.0f %10s%s\n", types[t], wall, rss, goal[t], ap, st ? "  (exit status non-zero!)" : "");
    }
    printf("goals: bbox <= 60 s, segm <= 180 s, peak RSS <= 4096 MiB (2-core machine)\n");
    return 0;
}

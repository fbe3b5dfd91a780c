/* stats.c: `maskrcnn stats` (see stats.h). */
#include "data/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_instances_desc(const void *a, const void *b, void *arg) {
    const lvis_data *d = arg;
    const lvis_category *x = &d->cats[*(const int *)a], *y = &d->cats[*(const int *)b];
    if (x->instance_count != y->instance_count) return x->instance_count < y->instance_count ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

static void print_classes(const lvis_data *d, const int *order, int from, int to) {
    static const char freq[] = "rcf";
    for (int i = from; i < to; i++) {
        const lvis_category *k = &d->cats[order[i]];
        printf("    id %-6lld %-28s %c  %8lld instances  %7lld images\n", (long long)k->id,
               lvis_string(d, k->name), freq[k->freq], (long long)k->instance_count, (long long)k->image_count);
    }
}

static void usage(FILE *f) {
    fprintf(f, "usage: maskrcnn stats ANNOTATIONS.json [--rfs-threshold T] [--official] [--[no-]cache] [--threads N]\n"
               "  images, annotations, categories and their r/c/f groups, the most and least frequent\n"
               "  classes, and Repeat Factor Sampling's repeat factors for threshold T (default 0.001).\n"
               "  --official   read as the LVIS evaluator does (keeps degenerate annotations)\n"
               "  --no-cache   neither use nor write the binary cache of a big file (8 MiB+), kept in\n"
               "               $MRC_CACHE_DIR, else $XDG_CACHE_HOME/maskrcnn.c, else ~/.cache/maskrcnn.c\n"
               "  --cache      use and write the cache whatever the file's size\n"
               "  --threads N  parse threads for the first read (default: the CPUs, at most 8)\n");
}

int stats_main(int argc, char **argv) {
    const char *path = NULL;
    double t = 0.001;
    lvis_options opt = {.mode = LVIS_STRICT, .progress = 1};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout), 0;
        if (!strcmp(argv[i], "--official")) opt.mode = LVIS_OFFICIAL;
        else if (!strcmp(argv[i], "--no-cache")) opt.cache = LVIS_CACHE_OFF;
        else if (!strcmp(argv[i], "--cache")) opt.cache = LVIS_CACHE_ON;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 256) {
                fprintf(stderr, "error: --threads wants a whole number in [1, 256], got '%s'\n", argv[i]);
                return 2;
            }
            opt.threads = (int)n;
        }
        else if (!strcmp(argv[i], "--rfs-threshold") && i + 1 < argc) {
            char *end;
            t = strtod(argv[++i], &end);
            if (*end || !(t > 0 && t <= 1)) {
                fprintf(stderr, "error: --rfs-threshold wants a number in (0, 1], got '%s'\n", argv[i]);
                return 2;
            }
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "error: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) return usage(stderr), 2;
    lvis_data d;
    char err[1024];
    if (lvis_open(&d, path, &opt, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    int groups[3] = {0};
    for (int k = 0; k < d.n_cat; k++) groups[d.cats[k].freq]++;
    printf("%s\n  images       %d\n  annotations  %lld (skipped: %lld with box w or h <= 0, %lld with a bad polygon)\n"
           "  categories   %d (rare %d, common %d, frequent %d)\n  polygons     %lld (%lld coordinates)\n",
           path, d.n_img, (long long)d.n_ann, (long long)d.skipped.bad_box, (long long)d.skipped.bad_polygon, d.n_cat,
           groups[0], groups[1], groups[2], (long long)d.n_poly, (long long)d.n_vert);
    if (d.skipped.bad_box || d.skipped.bad_polygon) {
        printf("    first skipped:");
        if (d.skipped.bad_box) printf(" annotations[%lld] (box)", (long long)d.skipped.first_bad_box);
        if (d.skipped.bad_polygon) printf(" annotations[%lld] (polygon)", (long long)d.skipped.first_bad_polygon);
        printf("\n");
    }
    int *order = malloc(((size_t)d.n_cat + 1) * sizeof *order);
    double *r = malloc(((size_t)d.n_img + 1) * sizeof *r);
    if (!order || !r) return fprintf(stderr, "error: out of memory\n"), 1;
    for (int k = 0; k < d.n_cat; k++) order[k] = k;
    qsort_r(order, (size_t)d.n_cat, sizeof *order, by_instances_desc, &d);
    int top = d.n_cat < 5 ? d.n_cat : 5;
    printf("  most frequent classes (instances):\n");
    print_classes(&d, order, 0, top);
    printf("  least frequent classes:\n");
    print_classes(&d, order, d.n_cat - top, d.n_cat);
    int n_with = lvis_repeat_factors(&d, t, r);
    double sum = 0, sum_ceil = 0, max = 0;
    int above = 0;
    for (int i = 0; i < d.n_img; i++) {
        if (r[i] <= 0) continue;
        sum += r[i], sum_ceil += ceil(r[i]), max = fmax(max, r[i]);
        above += r[i] > 1;
    }
    printf("  repeat factor sampling, t = %g, over the %d images with annotations:\n"
           "    images repeated (r > 1) %d, mean r %.3f, max r %.3f\n"
           "    epoch length: %.1f images (detectron2, stochastic rounding, expected), %.0f (mmdet, ceil)\n",
           t, n_with, above, n_with ? sum / n_with : 0, max, sum, sum_ceil);
    free(order), free(r);
    lvis_free(&d);
    return 0;
}

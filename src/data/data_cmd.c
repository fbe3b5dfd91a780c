/* data_cmd.c: `maskrcnn data`, the loader pointed at a data set on disk: draws batches as
 * training would, prints what each holds and the loader's speed, and can write the images
 * of the first batches (de-normalised, instance boxes drawn) as PPM files to look at. */
#include "data/data_cmd.h"

#include "data/loader.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: maskrcnn data ANNOTATIONS.json --images DIR [options]\n"
            "  Runs the training data loader: prints each batch (images, sizes, flips, instances)\n"
            "  and at the end images/s, the time spent waiting for data and the images left out.\n"
            "  --images DIR        the image root (paths in the file are under it)\n"
            "  --batches N         batches to draw (default 10)\n"
            "  --batch B           images per batch (default 2)\n"
            "  --threads T         decode threads (default 2; 0 decodes in the calling thread)\n"
            "  --sampler S         rfs (detectron2, default), rfs_mmdet or uniform (as data.sampler)\n"
            "  --rfs-threshold T   default 0.001\n"
            "  --seed S            default 1\n"
            "  --dump DIR          write the first batch's images as DIR/batchK_imageI.ppm\n"
            "  --quiet             only the summary\n");
}

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

/* Image k of the batch back to RGB bytes, with its instance boxes drawn in yellow. */
static int dump_image(const loader_batch *b, int k, const loader_config *c, const char *path) {
    const loader_image *im = &b->img[k];
    const float *px = b->pixels + (size_t)k * b->canvas_h * b->canvas_w * 3;
    unsigned char *rgb = malloc((size_t)im->h * im->w * 3);
    if (!rgb) return -1;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            for (int ch = 0; ch < 3; ch++) {
                int src = c->bgr ? 2 - ch : ch; /* output RGB from the canvas channel order */
                float v = px[((size_t)y * b->canvas_w + x) * 3 + src] * c->std[src] + c->mean[src];
                rgb[((size_t)y * im->w + x) * 3 + ch] = (unsigned char)fminf(255.0f, fmaxf(0.0f, roundf(v)));
            }
    for (int g = 0; g < im->n_gt; g++) {
        const float *bx = b->gt_box + 4 * (im->first_gt + g);
        int x0 = (int)bx[0], y0 = (int)bx[1], x1 = (int)bx[2], y1 = (int)bx[3];
        for (int x = x0; x <= x1; x++)
            for (int e = 0; e < 2; e++) {
                int y = e ? y1 : y0;
                if (x >= 0 && x < im->w && y >= 0 && y < im->h) memcpy(rgb + ((size_t)y * im->w + x) * 3, "\xff\xff\x00", 3);
            }
        for (int y = y0; y <= y1; y++)
            for (int e = 0; e < 2; e++) {
                int x = e ? x1 : x0;
                if (x >= 0 && x < im->w && y >= 0 && y < im->h) memcpy(rgb + ((size_t)y * im->w + x) * 3, "\xff\xff\x00", 3);
            }
    }
    FILE *f = fopen(path, "wb");
    int ok = f && fprintf(f, "P6\n%d %d\n255\n", im->w, im->h) > 0 &&
             fwrite(rgb, 1, (size_t)im->h * im->w * 3, f) == (size_t)im->h * im->w * 3;
    if (f && fclose(f)) ok = 0;
    free(rgb);
    return ok ? 0 : -1;
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        fprintf(stderr, "error: %s wants a whole number in [%d, %d], got '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = (int)n;
    return 0;
}

int data_main(int argc, char **argv) {
    const char *path = NULL, *images = NULL, *dump = NULL;
    int batches = 10, batch = 2, threads = 2, seed = 1, quiet = 0;
    double t = 0.001;
    sampler_kind kind = SAMPLER_RFS_D2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), 0;
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (a[0] == '-' && !v) {
            fprintf(stderr, "error: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--images")) images = v, i++;
        else if (!strcmp(a, "--dump")) dump = v, i++;
        else if (!strcmp(a, "--batches")) {
            if (parse_int(a, v, 1, 1000000000, &batches)) return 2;
            i++;
        } else if (!strcmp(a, "--batch")) {
            if (parse_int(a, v, 1, SAMPLER_MAX_BATCH, &batch)) return 2;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (parse_int(a, v, 0, 256, &threads)) return 2;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (parse_int(a, v, 0, 2147483647, &seed)) return 2;
            i++;
        } else if (!strcmp(a, "--rfs-threshold")) {
            char *end;
            t = strtod(v, &end);
            if (*end || !(t > 0 && t <= 1)) {
                fprintf(stderr, "error: --rfs-threshold wants a number in (0, 1], got '%s'\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--sampler")) {
            if (sampler_kind_parse(v, &kind)) {
                fprintf(stderr, "error: --sampler wants rfs, rfs_mmdet or uniform, got '%s'\n", v);
                return 2;
            }
            i++;
        } else if (a[0] == '-' || path) {
            fprintf(stderr, "error: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path || !images) {
        fprintf(stderr, "error: %s\n", path ? "--images DIR is required" : "no annotation file given");
        usage(stderr);
        return 2;
    }
    lvis_data d;
    char err[1024];
    lvis_options opt = {.image_root = images, .mode = LVIS_STRICT, .progress = 1};
    if (lvis_open(&d, path, &opt, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    char line[1024];
    if (lvis_skip_summary(&d, line, sizeof line)[0]) fprintf(stderr, "note: %s\n", line);
    loader_config c;
    loader_config_default(&c, batch, (uint64_t)seed);
    c.threads = threads, c.sampler.kind = kind, c.sampler.rfs_threshold = t, c.pinned = 0;
    loader *l = loader_new(&d, &c, err, sizeof err);
    if (!l) {
        fprintf(stderr, "error: %s\n", err);
        lvis_free(&d);
        return 1;
    }
    if (dump && mkdir(dump, 0755) && errno != EEXIST) {
        fprintf(stderr, "error: cannot create %s: %s\n", dump, strerror(errno));
        loader_free(l), lvis_free(&d);
        return 1;
    }
    int rc = 0;
    double t0 = now_s();
    for (int k = 0; k < batches; k++) {
        const loader_batch *b = loader_next(l, err, sizeof err);
        if (!b) {
            fprintf(stderr, "error: %s\n", err);
            rc = 1;
            break;
        }
        if (!quiet) {
            printf("batch %lld: %d images, canvas %dx%d (h x w), %d instances, data_time %.3f s\n", (long long)b->index, b->n,
                   b->canvas_h, b->canvas_w, b->n_gt, loader_get_counts(l)->last_wait_s);
            for (int i = 0; i < b->n; i++) {
                char p[2048];
                const loader_image *im = &b->img[i];
                printf("  image id %-8lld %4dx%-4d -> %4dx%-4d (h x w)%s %3d instances  %s\n", (long long)d.imgs[im->index].id,
                       im->orig_h, im->orig_w, im->h, im->w, im->flipped ? " flipped" : "        ", im->n_gt,
                       lvis_image_path(&d, im->index, p, sizeof p));
            }
        }
        if (dump && k == 0)
            for (int i = 0; i < b->n; i++) {
                char p[4096];
                snprintf(p, sizeof p, "%s/batch%lld_image%d.ppm", dump, (long long)b->index, i);
                if (dump_image(b, i, &c, p)) {
                    fprintf(stderr, "error: cannot write %s\n", p);
                    rc = 1;
                }
            }
    }
    double wall = now_s() - t0;
    const loader_counts *n = loader_get_counts(l);
    int64_t left_out = n->size_mismatch;
    for (int s = 1; s <= JPEG_ERR_MEMORY; s++) left_out += n->failed[s];
    printf("%lld batches, %lld images in %.2f s: %.1f images/s with %d threads; waiting for data %.2f s; "
           "%lld images left out (%lld unreadable, %lld not JPEG, %lld truncated, %lld corrupt, %lld size mismatch); "
           "%lld instances dropped as empty\n",
           (long long)n->batches, (long long)n->images, wall, wall > 0 ? (double)n->images / wall : 0.0, threads,
           n->wait_s, (long long)left_out, (long long)n->failed[JPEG_ERR_OPEN], (long long)n->failed[JPEG_ERR_NOT_JPEG],
           (long long)n->failed[JPEG_ERR_TRUNCATED], (long long)n->failed[JPEG_ERR_CORRUPT], (long long)n->size_mismatch,
           (long long)n->dropped_gt);
    loader_free(l);
    lvis_free(&d);
    return rc;
}

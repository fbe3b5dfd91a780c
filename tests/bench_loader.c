/* bench_loader.c: decoded + augmented images per second at LVIS-like sizes (issue 6).
 *
 * Writes 48 JPEGs of 640x480 (a third portrait 480x640), quality 90, photo-like content
 * (smooth shading, edges and noise), each with 10 polygon instances, into a temporary
 * folder with an LVIS-format file; then
 *   1. one thread, per stage and per image: decode, resize to the 800 short side (800x1067),
 *      flip, normalise into a 800x1088 canvas, the instances;
 *   2. the loader (detectron2's recipe: short side 640..800, max 1333, flip, BGR, batch 8)
 *      with 1 and 2 worker threads and a consumer that does nothing: images/s and per core.
 * Prints tables; never fails on a number (`make bench`). */
#include "data/jpeg.h"
#include "data/loader.h"
#include "data/transform.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <turbojpeg.h>
#include <unistd.h>

#define N_IMAGES 48

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint32_t rnd(uint32_t *s) {
    *s ^= *s << 13, *s ^= *s >> 17, *s ^= *s << 5;
    return *s;
}

/* Photo-like: shading, a few discs and bars, noise of +-12. */
static size_t write_photo(const char *path, int w, int h, uint32_t seed) {
    unsigned char *px = malloc((size_t)w * h * 3), *jpg = NULL;
    unsigned long size = 0;
    double cx[4], cy[4], r[4];
    for (int k = 0; k < 4; k++) cx[k] = rnd(&seed) % w, cy[k] = rnd(&seed) % h, r[k] = 20 + rnd(&seed) % 120;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v = 90 + 60 * sin(x * 0.013 + seed) * cos(y * 0.021);
            for (int k = 0; k < 4; k++)
                if ((x - cx[k]) * (x - cx[k]) + (y - cy[k]) * (y - cy[k]) < r[k] * r[k]) v += 50 - 25 * k;
            if ((x / 37 + y / 53) % 5 == 0) v -= 40;
            for (int c = 0; c < 3; c++) {
                double q = v * (0.7 + 0.15 * c) + (int)(rnd(&seed) % 25) - 12;
                px[((size_t)y * w + x) * 3 + c] = (unsigned char)fmin(255, fmax(0, q));
            }
        }
    tjhandle tj = tjInitCompress();
    if (!tj || tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, &size, TJSAMP_420, 90, 0)) {
        fprintf(stderr, "bench_loader: cannot encode a JPEG\n");
        exit(1);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(jpg, 1, size, f) != size || fclose(f)) {
        fprintf(stderr, "bench_loader: cannot write %s\n", path);
        exit(1);
    }
    tjFree(jpg);
    tjDestroy(tj);
    free(px);
    return size;
}

static void write_dataset(const char *dir, double *mean_kb) {
    char path[512];
    size_t total = 0;
    uint32_t s = 12345;
    snprintf(path, sizeof path, "%s/ann.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) exit(1);
    fprintf(f, "{\"categories\": [{\"id\": 1, \"name\": \"a\", \"frequency\": \"f\"}, {\"id\": 2, \"name\": \"b\", "
               "\"frequency\": \"r\"}], \"images\": [");
    for (int i = 0; i < N_IMAGES; i++) {
        int w = i % 3 == 2 ? 480 : 640, h = i % 3 == 2 ? 640 : 480;
        snprintf(path, sizeof path, "%s/%d.jpg", dir, i);
        total += write_photo(path, w, h, (uint32_t)(i + 1) * 2654435761u);
        fprintf(f, "%s{\"id\": %d, \"width\": %d, \"height\": %d, \"file_name\": \"%d.jpg\"}", i ? "," : "", i + 1, w, h, i);
    }
    fprintf(f, "], \"annotations\": [");
    for (int i = 0, id = 1; i < N_IMAGES; i++)
        for (int k = 0; k < 10; k++, id++) {
            double x = 20 + rnd(&s) % 400, y = 20 + rnd(&s) % 300, bw = 20 + rnd(&s) % 150, bh = 20 + rnd(&s) % 120;
            fprintf(f, "%s{\"id\": %d, \"image_id\": %d, \"category_id\": %d, \"bbox\": [%g, %g, %g, %g], \"area\": 1, "
                       "\"segmentation\": [[",
                    id > 1 ? "," : "", id, i + 1, 1 + k % 2, x, y, bw, bh);
            for (int p = 0; p < 30; p++) {
                double a = 2 * M_PI * p / 30;
                fprintf(f, "%s%.2f,%.2f", p ? "," : "", x + bw / 2 * (1 + cos(a)), y + bh / 2 * (1 + sin(a)));
            }
            fprintf(f, "]]}");
        }
    fprintf(f, "]}\n");
    fclose(f);
    *mean_kb = (double)total / N_IMAGES / 1024;
}

static void stages(const char *dir, const lvis_data *d) {
    jpeg_decoder *j = jpeg_decoder_new();
    image_u8 im = {0};
    uint8_t *rs = malloc(800 * 1088 * 3);
    float *canvas = malloc((size_t)800 * 1088 * 3 * sizeof(float));
    float *verts = malloc(4096 * sizeof(float));
    int64_t poly_n[64];
    void *work = malloc(image_resize_work_bytes(640, 640, 1067, 1067));
    const float mean[3] = {103.53f, 116.28f, 123.675f}, std[3] = {1, 1, 1};
    double t[5] = {0};
    int n = 0;
    for (int rep = 0; rep < 2; rep++)
        for (int i = 0; i < N_IMAGES; i++) {
            if (i % 3 == 2) continue; /* the 640x480 ones: one output size */
            char path[512], err[512];
            snprintf(path, sizeof path, "%s/%d.jpg", dir, i);
            double t0 = now_s();
            if (jpeg_read(j, path, &im, err, sizeof err) != JPEG_OK) {
                fprintf(stderr, "bench_loader: %s\n", err);
                exit(1);
            }
            double t1 = now_s();
            image_resize_bilinear_work(im.data, 480, 640, rs, 800, 1067, work);
            double t2 = now_s();
            image_flip_h(rs, 800, 1067);
            double t3 = now_s();
            image_normalize_pad(rs, 800, 1067, 1, mean, std, canvas, 800, 1088);
            double t4 = now_s();
            geom_xform g;
            geom_xform_init(&g, 480, 640, 800, 1067, 1);
            const lvis_image *li = &d->imgs[i];
            for (int k = 0; k < li->n_ann; k++) {
                const lvis_ann *a = &d->anns[d->ann_order[li->first_ann + k]];
                inst_geom out;
                inst_geom_apply(&g, a->bbox, d->verts, d->polys + a->poly, a->n_poly, verts, poly_n, &out);
            }
            double t5 = now_s();
            if (rep == 1) t[0] += t1 - t0, t[1] += t2 - t1, t[2] += t3 - t2, t[3] += t4 - t3, t[4] += t5 - t4, n++;
        }
    double sum = t[0] + t[1] + t[2] + t[3] + t[4];
    printf("one thread, per 640x480 image -> 800x1067 (mean of %d, after a warm-up pass):\n", n);
    printf("  %-34s %8s %8s\n", "stage", "ms", "share");
    const char *names[5] = {"JPEG decode (TurboJPEG)", "resize (Pillow bilinear)", "flip", "normalise + pad (800x1088)",
                            "10 instances (box + 30-point poly)"};
    for (int k = 0; k < 5; k++) printf("  %-34s %8.2f %7.0f%%\n", names[k], 1e3 * t[k] / n, 100 * t[k] / sum);
    printf("  %-34s %8.2f          -> %.0f images/s per core\n", "total", 1e3 * sum / n, n / sum);
    jpeg_decoder_free(j);
    image_u8_free(&im);
    free(rs), free(canvas), free(verts), free(work);
}

static void loader_rate(const lvis_data *d, int threads, int batches) {
    loader_config c;
    loader_config_default(&c, 8, 7);
    c.threads = threads, c.prefetch = 2, c.pinned = 0;
    c.sampler.kind = SAMPLER_UNIFORM;
    char err[512];
    loader *l = loader_new(d, &c, err, sizeof err);
    if (!l || !loader_next(l, err, sizeof err)) { /* the first batch warms the buffers up */
        fprintf(stderr, "bench_loader: %s\n", err);
        exit(1);
    }
    double t0 = now_s();
    for (int k = 0; k < batches; k++)
        if (!loader_next(l, err, sizeof err)) {
            fprintf(stderr, "bench_loader: %s\n", err);
            exit(1);
        }
    double dt = now_s() - t0;
    int per = threads ? threads : 1;
    printf("  %-8d %10.1f %14.1f %16.3f\n", threads, batches * 8 / dt, batches * 8 / dt / per,
           loader_get_counts(l)->wait_s / (batches + 1));
    loader_free(l);
}

int main(void) {
    char dir[] = "/tmp/mrc_bench_loader.XXXXXX";
    if (!mkdtemp(dir)) return fprintf(stderr, "bench_loader: cannot create a temporary folder\n"), 1;
    double kb;
    write_dataset(dir, &kb);
    lvis_data d;
    char err[512], path[600];
    snprintf(path, sizeof path, "%s/ann.json", dir);
    if (lvis_load(&d, path, dir, LVIS_STRICT, err, sizeof err)) return fprintf(stderr, "bench_loader: %s\n", err), 1;
    printf("loader benchmark: %d photo-like JPEGs (640x480 and 480x640, quality 90, %.0f KB on average), "
           "10 polygon instances each\n\n", N_IMAGES, kb);
    stages(dir, &d);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    printf("\nthe loader (short side 640..800, max 1333, flip 0.5, BGR, batch 8), consumer idle, %ld CPUs:\n", cpus);
    printf("  %-8s %10s %14s %16s\n", "threads", "images/s", "per thread", "wait s / batch");
    loader_rate(&d, 0, 30);
    loader_rate(&d, 1, 30);
    for (int t = 2; t <= cpus && t <= 8; t *= 2) loader_rate(&d, t, 30);
    lvis_free(&d);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) ? 1 : 0;
}

/* test_synth.c: the built-in demo data set (src/data/synth.h, `maskrcnn synth`).
 *
 * The command writes a small set (TRAIN x VAL images, sized so that the designed r/c/f
 * groups still hold) into a temporary folder twice with one seed and once with another;
 * then:
 *   - the same seed gives byte-identical files, another seed different ones;
 *   - train frequency groups are in LVIS's ranges and agree with `frequency`, the counts in
 *     both files are the train annotations' counts, val has every class in 15+ images;
 *   - every polygon lies inside its image; the JSON holds exactly the renderer's annotated
 *     objects; the COCO rasteriser (eval/rle.h) of each annotated object's polygons matches
 *     its amodal pixel mask with IoU >= 0.95; drawn pixels lie inside their object's mask
 *     and have its colour; the JPEGs decode at the JSON's sizes to the rendered pixels;
 *   - both files load with the strict reader with zero skips and with the official one;
 *   - not_exhaustive classes have a drawn, unannotated instance; neg_category_ids never
 *     lists a class drawn in the image;
 *   - `maskrcnn stats` reads the output and shows the r/c/f counts;
 *   - the command's usage and errors. */
#include "test.h"

#include "data/jpeg.h"
#include "data/lvis.h"
#include "data/stats.h"
#include "data/synth.h"
#include "data/synth_cmd.h"
#include "eval/rle.h"

#include <dirent.h>
#include <sys/stat.h>

#define TRAIN 600
#define VAL 240
#define SEED 7

static char dir[256];
static char out_a[300], out_b[300], out_c[300];
static int generated;

/* Runs `maskrcnn synth ARGS...` in a child; its output in out. */
static int synth_child(char *out, size_t n, const char *a0, const char *a1, const char *a2, const char *a3,
                       const char *a4, const char *a5, const char *a6, const char *a7, const char *a8) {
    const char *argv[] = {"synth", a0, a1, a2, a3, a4, a5, a6, a7, a8, NULL};
    return test_run_main(synth_main, (char **)argv, out, n);
}

static void generate(const char *where, int seed) {
    char out[2048], s[32], tr[32], va[32];
    snprintf(s, sizeof s, "%d", seed), snprintf(tr, sizeof tr, "%d", TRAIN), snprintf(va, sizeof va, "%d", VAL);
    int st = synth_child(out, sizeof out, "--out", where, "--seed", s, "--train", tr, "--val", va, NULL);
    REQUIRE(st == 0, "synth into %s: exit %d: %s", where, st, out);
    char want[128];
    snprintf(want, sizeof want, "train %d images", TRAIN);
    EXPECT(strstr(out, want) && strstr(out, "r 10, c 12, f 8"), "summary: %s", out);
    printf("  %s", out);
}

/* Reads a whole file; NULL when it cannot. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)size + 1);
    if (p && fread(p, 1, (size_t)size, f) != (size_t)size) free(p), p = NULL;
    fclose(f);
    *n = (size_t)size;
    return p;
}

/* 1: same bytes, 0: differ, -1: one is missing. */
static int same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *pa = slurp(a, &na), *pb = slurp(b, &nb);
    int r = !pa || !pb ? -1 : na == nb && !memcmp(pa, pb, na);
    free(pa), free(pb);
    return r;
}

static int count_entries(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* The relative path of file k: 0 README, 1-2 the JSON files, then train and val JPEGs. */
static void file_name(int k, char *buf, size_t n) {
    if (k == 0) snprintf(buf, n, "README");
    else if (k == 1) snprintf(buf, n, "lvis_v1_train.json");
    else if (k == 2) snprintf(buf, n, "lvis_v1_val.json");
    else if (k < 3 + TRAIN) snprintf(buf, n, "train/%06d.jpg", k - 3 + 1);
    else snprintf(buf, n, "val/%06d.jpg", k - 3 - TRAIN + 1);
}
#define N_FILES (3 + TRAIN + VAL)

static void test_determinism(void) {
    generate(out_a, SEED);
    generate(out_b, SEED);
    generate(out_c, SEED + 1);
    generated = 1;
    int differ_same = 0, differ_other = 0, missing = 0;
    char rel[64], pa[512], pb[512], pc[512], first[64] = "";
    for (int k = 0; k < N_FILES; k++) {
        file_name(k, rel, sizeof rel);
        snprintf(pa, sizeof pa, "%s/%s", out_a, rel), snprintf(pb, sizeof pb, "%s/%s", out_b, rel);
        snprintf(pc, sizeof pc, "%s/%s", out_c, rel);
        int ab = same_file(pa, pb), ac = same_file(pa, pc);
        if (ab < 0 || ac < 0) missing++;
        if (ab == 0 && !differ_same++) snprintf(first, sizeof first, "%s", rel);
        differ_other += ac == 0;
    }
    EXPECT(missing == 0, "%d files missing", missing);
    EXPECT(differ_same == 0, "same seed: %d of %d files differ (first: %s)", differ_same, N_FILES, first);
    /* another seed: every file differs (the README names the seed) */
    EXPECT(differ_other == N_FILES, "another seed: only %d of %d files differ", differ_other, N_FILES);
    /* nothing but these files */
    snprintf(pa, sizeof pa, "%s/train", out_a), snprintf(pb, sizeof pb, "%s/val", out_a);
    EXPECT(count_entries(out_a) == 5 && count_entries(pa) == TRAIN && count_entries(pb) == VAL,
           "entries: %d top, %d train, %d val", count_entries(out_a), count_entries(pa), count_entries(pb));
}

static void load(lvis_data *d, const char *split, lvis_mode mode) {
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/lvis_v1_%s.json", out_a, split);
    int r = lvis_load(d, path, out_a, mode, err, sizeof err);
    if (r) memset(d, 0, sizeof *d);
    EXPECT(r == 0, "%s", err);
}

static void test_frequency_groups(void) {
    REQUIRE(generated);
    lvis_data tr, va;
    load(&tr, "train", LVIS_STRICT);
    load(&va, "val", LVIS_STRICT);
    REQUIRE(tr.n_cat == SYNTH_NUM_CLASSES && va.n_cat == SYNTH_NUM_CLASSES, "categories %d, %d", tr.n_cat, va.n_cat);
    int groups[3] = {0}, min_val = 1 << 30;
    for (int k = 0; k < tr.n_cat; k++) {
        const lvis_category *c = &tr.cats[k], *v = &va.cats[k];
        const synth_class *s = synth_class_get((int)c->id);
        REQUIRE(s && c->id == k + 1 && v->id == c->id);
        int64_t n = c->images_loaded;
        lvis_freq want = n <= 10 ? LVIS_FREQ_R : n <= 100 ? LVIS_FREQ_C : LVIS_FREQ_F;
        groups[c->freq]++;
        EXPECT(n >= 1, "%s: no train image", s->name);
        EXPECT(c->freq == want, "%s: frequency %d for %lld train images", s->name, c->freq, (long long)n);
        EXPECT("rcf"[c->freq] == s->group, "%s: group %c, designed %c", s->name, "rcf"[c->freq], s->group);
        EXPECT(c->image_count == n && c->instance_count == c->instances_loaded,
               "%s: file counts %lld/%lld, counted %lld/%lld", s->name, (long long)c->image_count,
               (long long)c->instance_count, (long long)n, (long long)c->instances_loaded);
        EXPECT(v->freq == c->freq && v->image_count == c->image_count && v->instance_count == c->instance_count,
               "%s: val does not carry the train counts", s->name);
        EXPECT(v->images_loaded >= 15, "%s: in %lld val images", s->name, (long long)v->images_loaded);
        min_val = v->images_loaded < min_val ? (int)v->images_loaded : min_val;
        if (s->group == 'r') { /* a near twin of a frequent class: one of shape and colour shared */
            const synth_class *t = synth_class_get(s->twin);
            REQUIRE(t, "%s has no twin", s->name);
            EXPECT(t->group == 'f' && (!strcmp(t->shape, s->shape) != !strcmp(t->colour, s->colour)),
                   "%s: twin %s", s->name, t->name);
        }
    }
    EXPECT(groups[0] == 10 && groups[1] == 12 && groups[2] == 8, "groups r %d c %d f %d", groups[0], groups[1], groups[2]);
    printf("  train groups r %d c %d f %d; fewest val images of a class: %d\n", groups[0], groups[1], groups[2], min_val);
    lvis_free(&tr), lvis_free(&va);
}

/* Column-major copy of a row-major mask, for rle_encode. */
static void to_columns(const uint8_t *rows, int h, int w, uint8_t *cols) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) cols[(size_t)x * h + y] = rows[(size_t)y * w + x];
}

typedef struct geo_stats {
    int64_t objects, bad_iou, outside, mismatched, colour_off, stray, bad_jpeg, bad_area, low_visible;
    double min_iou, sum_iou, min_visible, worst_jpeg;
} geo_stats;

/* Annotation a of the JSON against object ob of the render. */
static void check_annotation(const lvis_data *d, const lvis_ann *a, const synth_image *im, const synth_object *ob,
                             uint8_t *cols, geo_stats *g) {
    if ((int)d->cats[a->category].id != ob->cls || a->n_poly != ob->n_parts) {
        g->mismatched++;
        return;
    }
    double xy[2 * SYNTH_MAX_PARTS * SYNTH_MAX_POINTS], area = 0;
    double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
    int64_t off[SYNTH_MAX_PARTS], cnt[SYNTH_MAX_PARTS], at = 0;
    for (int q = 0; q < a->n_poly; q++) {
        const lvis_poly *p = &d->polys[a->poly + q];
        const double *v = d->verts_d + p->vert;
        if (p->n != 2 * ob->n_points[q]) {
            g->mismatched++;
            return;
        }
        double s = 0;
        for (int64_t k = 0; k < p->n; k += 2) {
            int64_t j = (k + 2) % p->n;
            g->outside += !(v[k] >= 0 && v[k] <= im->w && v[k + 1] >= 0 && v[k + 1] <= im->h);
            g->mismatched += v[k] != ob->xy[q][k] || v[k + 1] != ob->xy[q][k + 1];
            s += v[k] * v[j + 1] - v[j] * v[k + 1];
            x0 = fmin(x0, v[k]), x1 = fmax(x1, v[k]), y0 = fmin(y0, v[k + 1]), y1 = fmax(y1, v[k + 1]);
        }
        area += fabs(s) / 2;
        off[q] = at, cnt[q] = p->n;
        memcpy(xy + at, v, (size_t)p->n * sizeof *v);
        at += p->n;
    }
    /* area and bbox as written (2 decimals) against the polygons' shoelace area and extent */
    const double *bb = d->ann_bbox_d + 4 * (a - d->anns);
    g->bad_area += fabs(area - a->area) > 0.006;
    g->bad_area += bb[0] != x0 || bb[1] != y0 || fabs(bb[2] - (x1 - x0)) > 0.006 || fabs(bb[3] - (y1 - y0)) > 0.006;
    rle coco, drawn;
    to_columns(ob->mask, im->h, im->w, cols);
    if (rle_from_polygons(&coco, xy, off, cnt, a->n_poly, im->h, im->w) || rle_encode(&drawn, cols, im->h, im->w)) {
        g->bad_iou++;
        return;
    }
    double bc[4], bd[4];
    rle_bbox(&coco, bc), rle_bbox(&drawn, bd);
    double iou = rle_iou(&coco, bc, &drawn, bd);
    g->objects++, g->sum_iou += iou;
    g->min_iou = iou < g->min_iou ? iou : g->min_iou;
    if (iou < 0.95) {
        if (g->bad_iou++ < 3)
            printf("    image %lld: %s IoU %.4f (%d px)\n", (long long)im->id, synth_class_get(ob->cls)->name, iou,
                   ob->pixels);
    }
    rle_free(&coco), rle_free(&drawn);
}

/* The drawn pixels: each seen pixel of object k lies in k's mask and has k's colour (plus
 * at most 6 of noise); every object keeps a fair part of itself visible. */
static void check_pixels(const synth_image *im, geo_stats *g) {
    for (int k = 0; k < im->n_obj; k++) {
        const synth_object *ob = &im->obj[k];
        int seen = 0;
        for (int i = 0; i < im->w * im->h; i++) {
            if (im->owner[i] != k) continue;
            seen++;
            g->stray += !ob->mask[i];
            for (int ch = 0; ch < 3; ch++) g->colour_off += abs(im->rgb[3 * i + ch] - ob->rgb[ch]) > 6;
        }
        g->stray += seen != ob->visible;
        double f = (double)seen / ob->pixels;
        g->min_visible = f < g->min_visible ? f : g->min_visible;
        g->low_visible += f < SYNTH_MIN_VISIBLE;
    }
}

/* The JPEG decodes at the JSON's size, close to the rendered pixels (quality 90, 4:4:4:
 * the pixel noise of the textures costs up to about 5 of mean error). */
static void check_jpeg(jpeg_decoder *j, const lvis_data *d, int i, const synth_image *im, image_u8 *px, geo_stats *g) {
    char path[1024], err[512];
    if (jpeg_read(j, lvis_image_path(d, i, path, sizeof path), px, err, sizeof err) != JPEG_OK ||
        px->w != d->imgs[i].width || px->h != d->imgs[i].height || px->w != im->w || px->h != im->h) {
        if (g->bad_jpeg++ < 3) printf("    %s: %s (%dx%d)\n", path, err, px->w, px->h);
        return;
    }
    double sum = 0;
    for (int k = 0; k < im->w * im->h * 3; k++) sum += abs(px->data[k] - im->rgb[k]);
    double mean = sum / (im->w * im->h * 3);
    g->worst_jpeg = mean > g->worst_jpeg ? mean : g->worst_jpeg;
    g->bad_jpeg += mean > 8; /* another image would be off by tens */
}

static void check_split(const synth_plan *p, int split, geo_stats *g) {
    lvis_data d;
    load(&d, split == SYNTH_TRAIN ? "train" : "val", LVIS_OFFICIAL);
    REQUIRE(d.n_img == p->split[split].n && d.verts_d, "images %d", d.n_img);
    synth_image im = {0};
    image_u8 px = {0};
    jpeg_decoder *j = jpeg_decoder_new();
    uint8_t *cols = malloc(SYNTH_MAX_SIDE * SYNTH_MAX_SIDE);
    REQUIRE(j && cols);
    for (int i = 0; i < d.n_img; i++) {
        const lvis_image *li = &d.imgs[i];
        if (synth_render(p, split, i, &im) || li->id != im.id || li->width != im.w || li->height != im.h) {
            g->mismatched++;
            continue;
        }
        int k = 0;
        for (int n = 0; n < li->n_ann; n++, k++) {
            while (k < im.n_obj && !im.obj[k].annotated) k++;
            if (k == im.n_obj) {
                g->mismatched++;
                break;
            }
            check_annotation(&d, &d.anns[d.ann_order[li->first_ann + n]], &im, &im.obj[k], cols, g);
        }
        while (k < im.n_obj) g->mismatched += im.obj[k++].annotated; /* annotated objects left out of the JSON */
        check_pixels(&im, g);
        check_jpeg(j, &d, i, &im, &px, g);
    }
    free(cols);
    image_u8_free(&px);
    jpeg_decoder_free(j);
    synth_image_free(&im);
    lvis_free(&d);
}

static void test_geometry_and_pixels(void) {
    REQUIRE(generated);
    synth_config c = {SEED, TRAIN, VAL};
    synth_plan p;
    char err[256];
    REQUIRE(synth_plan_make(&p, &c, err, sizeof err) == 0, "%s", err);
    geo_stats g = {.min_iou = 1, .min_visible = 1};
    check_split(&p, SYNTH_TRAIN, &g);
    check_split(&p, SYNTH_VAL, &g);
    synth_plan_free(&p);
    printf("  %lld annotated objects: IoU(COCO rasteriser, drawn mask) min %.4f mean %.4f; min visible fraction %.3f "
           "(%lld objects below %.2f); worst JPEG mean |error| %.2f\n",
           (long long)g.objects, g.min_iou, g.objects ? g.sum_iou / g.objects : 0, g.min_visible, (long long)g.low_visible,
           SYNTH_MIN_VISIBLE, g.worst_jpeg);
    EXPECT(g.objects > 2000, "only %lld objects checked", (long long)g.objects);
    EXPECT(g.mismatched == 0, "%lld mismatches between the JSON and the renderer", (long long)g.mismatched);
    EXPECT(g.outside == 0, "%lld coordinates outside their image", (long long)g.outside);
    EXPECT(g.bad_area == 0, "%lld areas or boxes differ from the polygons'", (long long)g.bad_area);
    EXPECT(g.bad_iou == 0 && g.min_iou >= 0.95, "%lld objects below IoU 0.95 (min %.4f)", (long long)g.bad_iou, g.min_iou);
    EXPECT(g.stray == 0, "%lld drawn pixels outside their object's mask, or visible counts wrong", (long long)g.stray);
    EXPECT(g.colour_off == 0, "%lld pixel channels off their object's colour by more than 6", (long long)g.colour_off);
    EXPECT(g.bad_jpeg == 0, "%lld JPEGs unreadable, of the wrong size or far from the render", (long long)g.bad_jpeg);
    /* a class object is placed at its best try when no try keeps 70% visible: rare, never below half */
    EXPECT(g.min_visible >= 0.5 && g.low_visible * 100 < g.objects, "visible: min %.3f, %lld below %.2f", g.min_visible,
           (long long)g.low_visible, SYNTH_MIN_VISIBLE);
}

/* Strict and official reads, no skips; the federated lists against what was drawn. */
static void test_readers_and_federated(void) {
    REQUIRE(generated);
    synth_config c = {SEED, TRAIN, VAL};
    synth_plan p;
    char err[256];
    REQUIRE(synth_plan_make(&p, &c, err, sizeof err) == 0, "%s", err);
    synth_image im = {0};
    for (int split = 0; split < 2; split++) {
        const char *name = split ? "val" : "train";
        lvis_data d, o;
        load(&d, name, LVIS_STRICT);
        load(&o, name, LVIS_OFFICIAL);
        EXPECT(d.n_img > 0 && d.skipped.bad_box == 0 && d.skipped.bad_polygon == 0 && d.n_ann == o.n_ann,
               "%s: %lld kept, skipped %lld + %lld", name, (long long)d.n_ann, (long long)d.skipped.bad_box,
               (long long)d.skipped.bad_polygon);
        EXPECT(d.n_ann == p.split[split].n_annotated, "%s: %lld annotations, planned %lld", name, (long long)d.n_ann,
               (long long)p.split[split].n_annotated);
        int ne_images = 0, bad_ne = 0, bad_neg = 0, no_neg = 0;
        for (int i = 0; i < d.n_img; i++) {
            const lvis_image *li = &d.imgs[i];
            if (synth_render(&p, split, i, &im)) {
                bad_neg++;
                continue;
            }
            no_neg += li->n_neg == 0;
            for (int n = 0; n < li->n_neg; n++) {
                int cls = (int)d.cats[d.cat_pool[li->neg + n]].id;
                for (int k = 0; k < im.n_obj; k++) bad_neg += im.obj[k].cls == cls;
                for (int a = 0; a < li->n_ann; a++)
                    bad_neg += d.anns[d.ann_order[li->first_ann + a]].category == d.cat_pool[li->neg + n];
            }
            ne_images += li->n_not_exhaustive > 0;
            for (int n = 0; n < li->n_not_exhaustive; n++) {
                int cls = (int)d.cats[d.cat_pool[li->not_exhaustive + n]].id, unannotated = 0, annotated = 0;
                for (int k = 0; k < im.n_obj; k++) unannotated += im.obj[k].cls == cls && !im.obj[k].annotated;
                for (int a = 0; a < li->n_ann; a++)
                    annotated += (int)d.cats[d.anns[d.ann_order[li->first_ann + a]].category].id == cls;
                bad_ne += !unannotated || !annotated;
            }
        }
        printf("  %s: %d images, %lld annotations, %d with a not-exhaustive class\n", name, d.n_img, (long long)d.n_ann,
               ne_images);
        EXPECT(ne_images >= 3 && ne_images * 10 < d.n_img, "%s: %d not-exhaustive images", name, ne_images);
        EXPECT(bad_ne == 0, "%s: %d not-exhaustive classes without a drawn unannotated and an annotated instance", name,
               bad_ne);
        EXPECT(bad_neg == 0, "%s: %d neg_category_ids drawn in their image", name, bad_neg);
        EXPECT(no_neg == 0, "%s: %d images without neg_category_ids", name, no_neg);
        lvis_free(&d), lvis_free(&o);
    }
    synth_image_free(&im);
    synth_plan_free(&p);
}

static void test_stats_command(void) {
    REQUIRE(generated);
    char path[512], out[8192];
    snprintf(path, sizeof path, "%s/lvis_v1_train.json", out_a);
    char *argv[] = {"stats", path, "--no-cache", NULL};
    int st = test_run_main(stats_main, argv, out, sizeof out);
    EXPECT(st == 0, "stats: exit %d: %s", st, out);
    EXPECT(strstr(out, "categories   30 (rare 10, common 12, frequent 8)"), "stats output: %s", out);
    EXPECT(strstr(out, "skipped: 0 with box w or h <= 0, 0 with a bad polygon"), "stats output: %s", out);
}

/* The API: an image is the same whatever was rendered before it, and a split does not
 * depend on the other split's size. */
static void test_render_independent(void) {
    synth_config a = {3, 50, 20}, b = {3, 50, 35};
    synth_plan pa, pb;
    char err[256];
    REQUIRE(synth_plan_make(&pa, &a, err, sizeof err) == 0 && synth_plan_make(&pb, &b, err, sizeof err) == 0, "%s", err);
    synth_image x = {0}, y = {0};
    REQUIRE(synth_render(&pa, SYNTH_TRAIN, 7, &x) == 0);
    size_t n = (size_t)x.w * x.h * 3;
    uint8_t *first = malloc(n);
    memcpy(first, x.rgb, n);
    int w = x.w, h = x.h, nobj = x.n_obj;
    REQUIRE(synth_render(&pa, SYNTH_VAL, 3, &x) == 0 && synth_render(&pa, SYNTH_TRAIN, 2, &x) == 0);
    REQUIRE(synth_render(&pa, SYNTH_TRAIN, 7, &x) == 0 && synth_render(&pb, SYNTH_TRAIN, 7, &y) == 0);
    EXPECT(x.w == w && x.h == h && x.n_obj == nobj && !memcmp(x.rgb, first, n), "re-render differs");
    EXPECT(y.w == w && y.h == h && !memcmp(y.rgb, first, n), "train image depends on --val");
    EXPECT(synth_render(&pa, SYNTH_TRAIN, 50, &x) == -1 && synth_render(&pa, 2, 0, &x) == -1, "out of range accepted");
    /* every object a rendered image holds: amodal mask pixels counted, parts and points in range */
    int bad = 0;
    for (int i = 0; i < 50; i++) {
        REQUIRE(synth_render(&pa, SYNTH_TRAIN, i, &x) == 0);
        for (int k = 0; k < x.n_obj; k++) {
            int px = 0;
            for (int q = 0; q < x.w * x.h; q++) px += x.obj[k].mask[q];
            bad += px != x.obj[k].pixels || x.obj[k].n_parts < 1 || x.obj[k].n_parts > SYNTH_MAX_PARTS;
        }
    }
    EXPECT(bad == 0, "%d objects with wrong pixel counts or parts", bad);
    free(first);
    synth_image_free(&x), synth_image_free(&y);
    synth_plan_free(&pa), synth_plan_free(&pb);
}

static void test_usage_and_errors(void) {
    char out[4096], where[300], file[320];
    EXPECT(synth_child(out, sizeof out, "--help", 0, 0, 0, 0, 0, 0, 0, 0) == 0 && strstr(out, "usage: maskrcnn synth"),
           "--help: %s", out);
    EXPECT(synth_child(out, sizeof out, 0, 0, 0, 0, 0, 0, 0, 0, 0) == 2 && strstr(out, "--out DIR is required"),
           "no --out: %s", out);
    snprintf(where, sizeof where, "%s/errs", dir);
    const char *bad[][2] = {{"--train", "0"}, {"--train", "x"}, {"--val", "-3"}, {"--seed", "-1"}, {"--seed", "1.5"},
                            {"--bogus", "1"}};
    for (int k = 0; k < 6; k++) {
        int st = synth_child(out, sizeof out, "--out", where, bad[k][0], bad[k][1], 0, 0, 0, 0, 0);
        EXPECT(st == 2 && strstr(out, "error: "), "%s %s: exit %d: %s", bad[k][0], bad[k][1], st, out);
    }
    EXPECT(synth_child(out, sizeof out, "--out", where, "--train", 0, 0, 0, 0, 0, 0) == 2 && strstr(out, "needs a value"),
           "missing value: %s", out);
    EXPECT(count_entries(where) < 0, "a refused command created %s", where);
    /* an existing non-empty folder needs --force; a file is not a folder */
    mkdir(where, 0755);
    snprintf(file, sizeof file, "%s/keep.txt", where);
    FILE *f = fopen(file, "w");
    REQUIRE(f);
    fputs("x\n", f);
    fclose(f);
    int st = synth_child(out, sizeof out, "--out", where, "--train", "2", "--val", "2", 0, 0, 0);
    EXPECT(st == 1 && strstr(out, "is not empty (--force writes into it)") && count_entries(where) == 1,
           "non-empty: exit %d: %s", st, out);
    st = synth_child(out, sizeof out, "--out", where, "--train", "2", "--val", "2", "--force", 0, 0);
    EXPECT(st == 0 && count_entries(where) == 6 && strstr(out, "note: with --train 2"), "--force: exit %d: %s", st, out);
    st = synth_child(out, sizeof out, "--out", file, 0, 0, 0, 0, 0, 0, 0);
    EXPECT(st == 1 && strstr(out, "is not a folder"), "a file as --out: exit %d: %s", st, out);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/mrc_test_synth.XXXXXX");
    if (!mkdtemp(dir)) return fprintf(stderr, "test_synth: cannot create %s\n", dir), 1;
    snprintf(out_a, sizeof out_a, "%s/a", dir), snprintf(out_b, sizeof out_b, "%s/b", dir);
    snprintf(out_c, sizeof out_c, "%s/c", dir);
    RUN(test_usage_and_errors);
    RUN(test_render_independent);
    RUN(test_determinism);
    RUN(test_frequency_groups);
    RUN(test_geometry_and_pixels);
    RUN(test_readers_and_federated);
    RUN(test_stats_command);
    test_remove_tmpdir(dir);
    return test_finish("test_synth");
}

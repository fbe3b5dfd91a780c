/* lvis_eval.c: the official LVIS evaluation (see lvis_eval.h). Section numbers (§) refer
 * to reference/lvis_eval.md.
 *
 * Flow: the ground truth is selected (§4.1) and, for segm, rasterised once per object;
 * the results file is read in two threaded passes over its records (pass 1: image,
 * category, score and which geometry keys a record has; then the per-image cap and the
 * filters; pass 2: the geometry of the surviving records only); then every category is
 * evaluated on its own (threads take categories in turn, so the numbers do not depend on
 * the thread count): per (category, image) bucket the IoUs once and the greedy matching
 * per area range and threshold, then one stable sort of the category's detections over
 * all images and the accumulation (§6). Summaries last (§9). */
#include "eval/lvis_eval.h"

#include "core/util.h"
#include "data/json_scan.h"
#include "eval/rle.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

const char *const lvis_stat_names[LVIS_NUM_STATS] = {"AP",  "AP50", "AP75", "APs",    "APm",     "APl",     "APr",
                                                     "APc", "APf",  "AR@300", "ARs@300", "ARm@300", "ARl@300"};

/* numpy linspace(0.5, 0.95, 10): i * step + 0.5 with step = 0.45 / 9, the last forced to
 * 0.95; these literals are those doubles (the test checks the formula against them). */
const double lvis_iou_thrs[LVIS_EVAL_T] = {0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95};

/* numpy linspace(0, 1, 101): i * 0.01 (not i / 100.0: they differ at ten points), the last 1. */
double lvis_rec_thr(int i) { return i >= LVIS_EVAL_R - 1 ? 1.0 : (double)i * 0.01; }

/* [lo, hi], both inclusive (§3): all, small, medium, large */
const double lvis_area_rng[LVIS_EVAL_A][2] = {{0, 1e10}, {0, 1024}, {1024, 9216}, {9216, 1e10}};

static const double np_eps = 2.220446049250313e-16; /* numpy spacing(1) = 2^-52 (§6.4) */

/* ---- numpy's mean (§9) ------------------------------------------------------------------ */

/* numpy's pairwise summation of float64: a plain loop under 8 values, eight interleaved
 * accumulators up to 128, else the halves (split at a multiple of 8) added. */
static double np_pairwise(const double *a, int64_t n) {
    if (n < 8) {
        double s = 0.;
        for (int64_t i = 0; i < n; i++) s += a[i];
        return s;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        int64_t i;
        for (i = 8; i < n - n % 8; i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) s += a[i];
        return s;
    }
    int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return np_pairwise(a, n2) + np_pairwise(a + n2, n - n2);
}

double lvis_np_mean(const double *v, int64_t n) {
    double s = 0.;
    for (int64_t i = 0; i < n; i += 8192) s += np_pairwise(v + i, n - i < 8192 ? n - i : 8192);
    return s / (double)n;
}

/* ---- small helpers ---------------------------------------------------------------------- */

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

/* Runs fn on n jobs of `size` bytes each, job 0 in this thread; a job whose thread cannot
 * start runs here afterwards, so the work is always done. */
static void par_run(int n, void *jobs, size_t size, void *(*fn)(void *)) {
    pthread_t tid[64];
    int started[64] = {0};
    if (n > 64) n = 64;
    for (int t = 1; t < n; t++) started[t] = pthread_create(&tid[t], NULL, fn, (char *)jobs + (size_t)t * size) == 0;
    fn(jobs);
    for (int t = 1; t < n; t++) {
        if (started[t]) pthread_join(tid[t], NULL);
        else fn((char *)jobs + (size_t)t * size);
    }
}

static int why_fail(char *why, size_t whyn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why_fail(char *why, size_t whyn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (whyn) vsnprintf(why, whyn, fmt, ap);
    va_end(ap);
    return -1;
}

/* The whole span is one JSON number. */
static int span_number(const json_doc *doc, json_span v, double *out) {
    size_t n = v.end - v.begin;
    return n && json_number(doc->data + v.begin, n, out) == n ? 0 : -1;
}

/* The last member named key (Python's json keeps the last of duplicate keys), or -1. */
static int find_member(const json_doc *doc, const json_member *m, int n, const char *key) {
    int found = -1;
    for (int i = 0; i < n; i++)
        if (json_key_is(doc, m[i].key, key)) found = i;
    return found;
}

/* An integral double as an int64 id, or INT64_MIN when it is not one. */
static int64_t as_id(double v) {
    return v == floor(v) && fabs(v) < 9.2e18 ? (int64_t)v : INT64_MIN;
}

/* Drops this process's mapping of doc's pages in [from, to) (whole pages inside only):
 * unwritten pages of a private read-only file mapping come back from the page cache if
 * touched again, so this only keeps the resident size near the records in flight instead
 * of the whole results file (gigabytes for masks). */
static void drop_pages(const json_doc *doc, size_t from, size_t to) {
    static size_t page;
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t base = (uintptr_t)doc->data, a = (base + from + page - 1) / page * page, b = (base + to) / page * page;
    if (doc->mapped && b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}
enum { DROP_EVERY = 64 << 20 }; /* bytes read between drops */

/* Strings appended into big blocks (one pool per thread): the detections' compressed
 * masks, 3-4 times smaller than their counts and without a malloc each. */
typedef struct str_pool {
    char **blocks;
    int64_t n, cap;
    size_t used, size; /* of the last block */
} str_pool;
enum { POOL_BLOCK = 4 << 20 };

static char *pool_alloc(str_pool *p, size_t n) {
    if (!p->n || p->used + n > p->size) {
        size_t size = n > POOL_BLOCK ? n : POOL_BLOCK;
        if (MRC_GROW(p->blocks, p->cap, p->n + 1)) return NULL;
        if (!(p->blocks[p->n] = malloc(size))) return NULL;
        p->n++, p->used = 0, p->size = size;
    }
    char *q = p->blocks[p->n - 1] + p->used;
    p->used += n;
    return q;
}

static void pool_free(str_pool *p) {
    for (int64_t i = 0; i < p->n; i++) free(p->blocks[i]);
    free(p->blocks);
    memset(p, 0, sizeof *p);
}

/* ---- the evaluation's state --------------------------------------------------------------- */

enum { REC_BBOX = 1, REC_SEGM = 2, REC_KEPT = 4 /* survives the per-image cap */ };

typedef struct res_rec { /* pass 1: one results record */
    json_span span;
    double score;
    int32_t img, cat;     /* indices; cat -1: not a GT category (dropped, §4.2) */
    uint32_t flags;
} res_rec;

typedef struct ev_det {
    double score, area;
    double bb[4];         /* the box its IoU uses: the results bbox, or its RLE's (segm: always the RLE's, §7.2) */
    int64_t rec;          /* record index in the results file */
    int32_t img, cat;
    int32_t ne;           /* its category is not exhaustively annotated on its image */
    int32_t valid;        /* area > 0 (§4.2) */
    const char *mask;     /* segm: the mask's compressed string (§8.2) in a str_pool, decoded when matched */
    uint32_t mask_len;
    int32_t h, w;         /* the mask's own size (a size unlike the image's gives IoU -1, §7.2) */
} ev_det;

typedef struct ev_gt {
    double bb[4];         /* bbox: the JSON's; segm: its RLE's */
    double area;          /* the JSON's area field, always (§4.7) */
    int64_t ann;
    int32_t img, cat, ignore;
    rle mask;             /* segm only */
} ev_gt;

typedef struct ev_ctx {
    const lvis_data *gt;
    lvis_iou_type type;
    int threads;
    json_doc doc;
    int box_mode;                         /* the first (regrouped) record has a bbox key (§2.3) */
    int32_t *img_rank;                    /* image index -> rank by ascending id */
    int64_t *allow_off;                   /* per image [off[i], off[i+1]) of allow_cat: P(img) ∪ N(img), sorted */
    int32_t *allow_cat;
    uint8_t *allow_ne;                    /* that category is in NE(img) */
    ev_gt *gts;
    int64_t n_gt;
    res_rec *recs;
    int64_t n_rec;
    ev_det *dets;
    int64_t n_det;
    int64_t *gsort, *gcat_off;            /* GT by (category, image rank, file order) */
    int64_t *dsort, *dcat_off;            /* detections by (category, image rank, score desc, file order) */
    str_pool pools[64];                   /* the detections' masks, one pool per reading thread */
    int64_t next_cat;                     /* the next category a worker takes (atomic) */
    lvis_eval_result *out;
} ev_ctx;

static void ev_free(ev_ctx *c) {
    for (int64_t i = 0; i < c->n_gt; i++) rle_free(&c->gts[i].mask);
    for (int t = 0; t < 64; t++) pool_free(&c->pools[t]);
    free(c->img_rank), free(c->allow_off), free(c->allow_cat), free(c->allow_ne);
    free(c->gts), free(c->recs), free(c->dets);
    free(c->gsort), free(c->gcat_off), free(c->dsort), free(c->dcat_off);
    json_doc_close(&c->doc);
}

/* ---- ground truth (§4.1, §4.3) ------------------------------------------------------------ */

/* Polygon parts -> the union RLE, with pycocotools' rule for the first part (§8.9): a first
 * part of exactly 4 numbers is read as a box list and fails, fewer than 4 are rejected. */
static int polygons_to_rle(const double *xy, const int64_t *off, const int64_t *n, int parts, int h, int w, rle *out,
                           char *why, size_t whyn) {
    if (parts == 0) return why_fail(why, whyn, "the segmentation has no polygon (lvis-api cannot rasterise it)");
    if (n[0] == 4)
        return why_fail(why, whyn,
                        "the first polygon has exactly 4 numbers (pycocotools reads the list as boxes and fails)");
    if (n[0] < 4)
        return why_fail(why, whyn, "the first polygon has %lld numbers (pycocotools needs more than 4)",
                        (long long)n[0]);
    if (rle_from_polygons(out, xy, off, n, parts, h, w))
        return why_fail(why, whyn, "the polygon cannot be rasterised (coordinates out of range, or out of memory)");
    return 0;
}

typedef struct gt_job {
    ev_ctx *c;
    int64_t lo, hi;
    int64_t bad;     /* the first failing GT index, or -1 */
    char why[512];
} gt_job;

static void *gt_raster_job(void *arg) {
    gt_job *j = arg;
    const lvis_data *d = j->c->gt;
    int64_t *off = NULL, *n = NULL, cap_off = 0, cap_n = 0;
    for (int64_t i = j->lo; i < j->hi; i++) {
        ev_gt *g = &j->c->gts[i];
        const lvis_ann *a = &d->anns[g->ann];
        if (MRC_GROW(off, cap_off, a->n_poly + 1) || MRC_GROW(n, cap_n, a->n_poly + 1)) {
            snprintf(j->why, sizeof j->why, "out of memory");
            j->bad = i;
            break;
        }
        for (int p = 0; p < a->n_poly; p++) off[p] = d->polys[a->poly + p].vert, n[p] = d->polys[a->poly + p].n;
        const lvis_image *im = &d->imgs[a->image];
        if (polygons_to_rle(d->verts_d, off, n, a->n_poly, im->height, im->width, &g->mask, j->why, sizeof j->why)) {
            j->bad = i;
            break;
        }
        rle_bbox(&g->mask, g->bb);
    }
    free(off), free(n);
    return NULL;
}

/* The kept GT (0 < area < inf, in file order), rasterised for segm. */
static int prepare_gt(ev_ctx *c, char *err, size_t errn) {
    const lvis_data *d = c->gt;
    c->gts = calloc((size_t)(d->n_ann ? d->n_ann : 1), sizeof *c->gts);
    if (!c->gts) return mrc_fail(err, errn, "out of memory for %lld GT objects", (long long)d->n_ann);
    if (d->n_ann && !d->ann_bbox_d)
        return mrc_fail(err, errn, "%s: was not read in official mode (no double boxes)", d->path);
    for (int64_t j = 0; j < d->n_ann; j++) {
        const lvis_ann *a = &d->anns[j];
        if (!(a->area > 0 && a->area < INFINITY)) continue; /* strict, as get_ann_ids (§4.1) */
        ev_gt *g = &c->gts[c->n_gt++];
        g->area = a->area, g->ann = j, g->img = a->image, g->cat = a->category, g->ignore = a->ignore;
        memcpy(g->bb, d->ann_bbox_d + 4 * j, sizeof g->bb);
    }
    if (c->type != LVIS_IOU_SEGM || !c->n_gt) return 0;
    gt_job jobs[64];
    int T = c->threads;
    for (int t = 0; t < T; t++) jobs[t] = (gt_job){c, c->n_gt * t / T, c->n_gt * (t + 1) / T, -1, ""};
    par_run(T, jobs, sizeof *jobs, gt_raster_job);
    for (int t = 0; t < T; t++)
        if (jobs[t].bad >= 0)
            return mrc_fail(err, errn, "%s: annotations[%lld]: %s", d->path,
                            (long long)d->anns[c->gts[jobs[t].bad].ann].record, jobs[t].why);
    return 0;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Per image, the categories a detection may have (§4.3-4.4): those of its kept GT and its
 * neg_category_ids, sorted and unique, each flagged when it is in not_exhaustive. Also the
 * image ranks by ascending id. */
static int prepare_images(ev_ctx *c, char *err, size_t errn) {
    const lvis_data *d = c->gt;
    int64_t cap = c->n_gt;
    for (int i = 0; i < d->n_img; i++) cap += d->imgs[i].n_neg;
    c->img_rank = malloc(((size_t)d->n_img + 1) * sizeof *c->img_rank);
    c->allow_off = calloc((size_t)d->n_img + 1, sizeof *c->allow_off);
    c->allow_cat = malloc((size_t)(cap + 1) * sizeof *c->allow_cat);
    c->allow_ne = calloc((size_t)(cap + 1), 1);
    if (!c->img_rank || !c->allow_off || !c->allow_cat || !c->allow_ne) return mrc_fail(err, errn, "out of memory");
    for (int r = 0; r < d->n_img; r++) c->img_rank[d->img_ids_sorted[2 * r + 1]] = r;
    /* the kept GT are in file order; count them per image first */
    int64_t *n_pos = calloc((size_t)d->n_img + 1, sizeof *n_pos);
    if (!n_pos) return mrc_fail(err, errn, "out of memory");
    for (int64_t g = 0; g < c->n_gt; g++) n_pos[c->gts[g].img]++;
    int64_t at = 0;
    for (int i = 0; i < d->n_img; i++) {
        c->allow_off[i] = at;
        at += n_pos[i] + d->imgs[i].n_neg;
        n_pos[i] = c->allow_off[i]; /* now the fill position */
    }
    c->allow_off[d->n_img] = at;
    for (int64_t g = 0; g < c->n_gt; g++) c->allow_cat[n_pos[c->gts[g].img]++] = c->gts[g].cat;
    for (int i = 0; i < d->n_img; i++) {
        const lvis_image *im = &d->imgs[i];
        for (int j = 0; j < im->n_neg; j++) c->allow_cat[n_pos[i]++] = d->cat_pool[im->neg + j];
        int32_t *a = c->allow_cat + c->allow_off[i];
        int64_t n = c->allow_off[i + 1] - c->allow_off[i], m = 0;
        qsort(a, (size_t)n, sizeof *a, cmp_i32);
        for (int64_t j = 0; j < n; j++)
            if (m == 0 || a[j] != a[m - 1]) a[m++] = a[j];
        for (int64_t j = m; j < n; j++) a[j] = INT32_MAX; /* duplicates become padding that no index matches */
        for (int j = 0; j < im->n_not_exhaustive; j++) {
            int32_t k = d->cat_pool[im->not_exhaustive + j];
            int32_t *hit = bsearch(&k, a, (size_t)m, sizeof *a, cmp_i32);
            if (hit) c->allow_ne[hit - c->allow_cat] = 1;
        }
    }
    free(n_pos);
    return 0;
}

/* 1 when category k may be detected on image i (§4.4); *ne: it is not exhaustive there. */
static int allowed(const ev_ctx *c, int i, int32_t k, int32_t *ne) {
    const int32_t *a = c->allow_cat + c->allow_off[i];
    const int32_t *hit = bsearch(&k, a, (size_t)(c->allow_off[i + 1] - c->allow_off[i]), sizeof *a, cmp_i32);
    if (!hit) return 0;
    *ne = c->allow_ne[hit - c->allow_cat];
    return 1;
}

/* ---- results, pass 1: image, category, score (§1.2, §2) ----------------------------------- */

typedef struct rec_job {
    ev_ctx *c;
    int64_t lo, hi;  /* records (pass 1) or candidates (pass 2) */
    const int64_t *cand;
    str_pool *pool;
    int64_t bad;     /* the first failing record, or -1 */
    char why[512];
} rec_job;

static int scan_record(const ev_ctx *c, res_rec *r, char *why, size_t whyn) {
    const json_doc *doc = &c->doc;
    json_member m[64];
    int n = 0;
    char msg[512];
    double v;
    if (doc->data[r->span.begin] != '{') return why_fail(why, whyn, "a result must be an object");
    if (json_object_members(doc, r->span, m, 64, &n, msg, sizeof msg)) {
        size_t skip = strlen(doc->path) + 2; /* the scanner's message starts "PATH: " */
        return why_fail(why, whyn, "not valid JSON: %s", strlen(msg) > skip ? msg + skip : msg);
    }
    static const char *keys[3] = {"image_id", "category_id", "score"};
    double val[3];
    for (int k = 0; k < 3; k++) {
        int i = find_member(doc, m, n, keys[k]);
        if (i < 0) return why_fail(why, whyn, "'%s' is missing", keys[k]);
        if (span_number(doc, m[i].value, &v)) return why_fail(why, whyn, "'%s' must be a number", keys[k]);
        val[k] = v;
    }
    int64_t img = as_id(val[0]), cat = as_id(val[1]);
    r->img = img == INT64_MIN ? -1 : lvis_image_index(c->gt, img);
    if (r->img < 0)
        return why_fail(why, whyn, "image_id %.17g is not an image of the ground truth (lvis-api asserts)", val[0]);
    r->cat = cat == INT64_MIN ? -1 : lvis_category_index(c->gt, cat); /* unknown: dropped, as lvis-api does */
    r->score = val[2];
    r->flags = (find_member(doc, m, n, "bbox") >= 0 ? REC_BBOX : 0) |
               (find_member(doc, m, n, "segmentation") >= 0 ? REC_SEGM : 0);
    return 0;
}

static void *scan_job(void *arg) {
    rec_job *j = arg;
    const res_rec *recs = j->c->recs;
    size_t dropped = j->lo < j->hi ? recs[j->lo].span.begin : 0;
    for (int64_t i = j->lo; i < j->hi; i++) {
        if (scan_record(j->c, &j->c->recs[i], j->why, sizeof j->why)) {
            j->bad = i;
            break;
        }
        if (recs[i].span.begin - dropped > DROP_EVERY) {
            drop_pages(&j->c->doc, dropped, recs[i].span.begin);
            dropped = recs[i].span.begin;
        }
    }
    if (j->lo < j->hi) drop_pages(&j->c->doc, dropped, recs[j->hi - 1].span.end);
    return NULL;
}

/* Runs fn over [0, n) in c->threads contiguous parts; the first failure in order (the
 * lowest record, as each part stops at its first) goes to err as "PATH: [i]: problem". */
static int rec_parallel(ev_ctx *c, int64_t n, const int64_t *cand, void *(*fn)(void *), char *err, size_t errn) {
    rec_job jobs[64];
    int T = c->threads;
    for (int t = 0; t < T; t++) jobs[t] = (rec_job){c, n * t / T, n * (t + 1) / T, cand, &c->pools[t], -1, ""};
    par_run(T, jobs, sizeof *jobs, fn);
    for (int t = 0; t < T; t++)
        if (jobs[t].bad >= 0)
            return mrc_fail(err, errn, "%s: [%lld]: %s", c->doc.path, (long long)jobs[t].bad, jobs[t].why);
    return 0;
}

static int read_records(ev_ctx *c, const char *path, char *err, size_t errn) {
    json_span root, e;
    if (json_doc_open(&c->doc, path, err, errn) || json_root(&c->doc, &root, err, errn)) return -1;
    if (c->doc.data[root.begin] != '[')
        return mrc_fail(err, errn, "%s: the results must be a JSON array of detections (lvis-api asserts a list)",
                        path);
    json_array_iter it;
    int64_t cap = 0;
    int r;
    if (json_array_begin(&it, &c->doc, root, err, errn)) return -1;
    size_t dropped = 0;
    while ((r = json_array_next(&it, &e, err, errn)) == 1) {
        if (MRC_GROW(c->recs, cap, c->n_rec + 1)) return mrc_fail(err, errn, "%s: out of memory", path);
        c->recs[c->n_rec++] = (res_rec){.span = e};
        if (e.begin - dropped > DROP_EVERY) {
            drop_pages(&c->doc, dropped, e.begin);
            dropped = e.begin;
        }
    }
    drop_pages(&c->doc, dropped, c->doc.size);
    if (r < 0) return -1;
    if (c->n_rec == 0)
        return mrc_fail(err, errn, "%s: the results list is empty: nothing to evaluate (lvis-api fails on it)", path);
    return rec_parallel(c, c->n_rec, NULL, scan_job, err, errn);
}

/* ---- the per-image cap (§2.1) and the filters (§4.2-4.4) ----------------------------------- */

static int cmp_score_then_index(const void *a, const void *b, void *arg) {
    const res_rec *r = arg;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (r[x].score != r[y].score) return r[x].score > r[y].score ? -1 : 1;
    return (x > y) - (x < y);
}

/* Marks the records that survive the cap (an image's first 300 by a stable sort on
 * descending score, only when it has more); returns the record that heads the regrouped
 * list (its bbox key decides the mode, §2.3), or -1. */
static int64_t apply_cap(ev_ctx *c, char *err, size_t errn) {
    const lvis_data *d = c->gt;
    int64_t *off = calloc((size_t)d->n_img + 1, sizeof *off), *order = malloc((size_t)c->n_rec * sizeof *order);
    if (!off || !order) return free(off), free(order), mrc_fail(err, errn, "out of memory");
    for (int64_t i = 0; i < c->n_rec; i++) off[c->recs[i].img + 1]++;
    for (int i = 0; i < d->n_img; i++) off[i + 1] += off[i];
    int64_t *fill = malloc(((size_t)d->n_img + 1) * sizeof *fill);
    if (!fill) return free(off), free(order), mrc_fail(err, errn, "out of memory");
    memcpy(fill, off, (size_t)d->n_img * sizeof *fill);
    for (int64_t i = 0; i < c->n_rec; i++) order[fill[c->recs[i].img]++] = i; /* file order per image */
    free(fill);
    c->out->n_loaded = 0;
    for (int i = 0; i < d->n_img; i++) {
        int64_t n = off[i + 1] - off[i];
        if (n > LVIS_EVAL_MAX_DETS) {
            qsort_r(order + off[i], (size_t)n, sizeof *order, cmp_score_then_index, c->recs);
            n = LVIS_EVAL_MAX_DETS;
        }
        for (int64_t j = 0; j < n; j++) c->recs[order[off[i] + j]].flags |= REC_KEPT;
        c->out->n_loaded += n;
    }
    int64_t head = order[off[c->recs[0].img]];
    free(off), free(order);
    return head;
}

/* The candidates for pass 2, in file order: kept by the cap, a GT category, allowed on
 * the image by the federated rule. Checks first that every kept record has the geometry
 * the mode needs (lvis-api reads it from every record). */
static int select_candidates(ev_ctx *c, int64_t **cand, int64_t *n_cand, char *err, size_t errn) {
    uint32_t need = c->box_mode ? REC_BBOX : REC_SEGM;
    for (int64_t i = 0; i < c->n_rec; i++)
        if ((c->recs[i].flags & REC_KEPT) && !(c->recs[i].flags & need))
            return mrc_fail(err, errn, "%s: [%lld]: %s", c->doc.path, (long long)i,
                            c->box_mode
                                ? "no 'bbox' (the first result has one, so every result is read as a box)"
                                : "no 'segmentation' (the first result has no 'bbox', so every result needs a mask)");
    *cand = malloc((size_t)c->n_rec * sizeof **cand);
    if (!*cand) return mrc_fail(err, errn, "out of memory");
    *n_cand = 0;
    for (int64_t i = 0; i < c->n_rec; i++) {
        const res_rec *r = &c->recs[i];
        int32_t ne;
        if ((r->flags & REC_KEPT) && r->cat >= 0 && allowed(c, r->img, r->cat, &ne)) (*cand)[(*n_cand)++] = i;
    }
    return 0;
}

/* ---- results, pass 2: geometry (§2.3, §8.9) -------------------------------------------- */

static int parse_box(const json_doc *doc, json_span v, double bb[4], char *why, size_t whyn) {
    cJSON *o = cJSON_ParseWithLength(doc->data + v.begin, v.end - v.begin);
    int ok = cJSON_IsArray(o) && cJSON_GetArraySize(o) == 4, k = 0;
    const cJSON *x;
    if (ok) cJSON_ArrayForEach(x, o) {
            if (!cJSON_IsNumber(x)) ok = 0;
            else bb[k++] = x->valuedouble;
        }
    cJSON_Delete(o);
    return ok ? 0 : why_fail(why, whyn, "'bbox' must be [x, y, w, h], four numbers");
}

/* {size: [h, w], counts: "string" | [n, ...]}: the RLE at its own size (§8.9). */
static int parse_rle(const cJSON *o, rle *out, char *why, size_t whyn) {
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(o, "size");
    const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(o, "counts");
    double hw[2];
    int k = 0;
    const cJSON *x;
    if (!cJSON_IsArray(size) || cJSON_GetArraySize(size) != 2)
        return why_fail(why, whyn, "the mask's 'size' must be [height, width]");
    cJSON_ArrayForEach(x, size) {
        if (!cJSON_IsNumber(x) || as_id(x->valuedouble) < 0 || x->valuedouble > INT_MAX)
            return why_fail(why, whyn, "the mask's 'size' must hold two whole numbers >= 0");
        hw[k++] = x->valuedouble;
    }
    if (hw[0] * hw[1] > (double)UINT32_MAX)
        return why_fail(why, whyn, "the mask size %.0f x %.0f is too large", hw[0], hw[1]);
    int h = (int)hw[0], w = (int)hw[1];
    char msg[256];
    if (cJSON_IsString(cnt)) {
        if (rle_from_string(out, cnt->valuestring, strlen(cnt->valuestring), h, w, msg, sizeof msg))
            return why_fail(why, whyn, "bad RLE string: %s", msg);
        return 0;
    }
    if (!cJSON_IsArray(cnt)) return why_fail(why, whyn, "the mask's 'counts' must be a string or a list of counts");
    int64_t m = cJSON_GetArraySize(cnt), j = 0;
    uint32_t *v = malloc((size_t)(m ? m : 1) * sizeof *v);
    if (!v) return why_fail(why, whyn, "out of memory");
    cJSON_ArrayForEach(x, cnt) {
        if (!cJSON_IsNumber(x) || as_id(x->valuedouble) < 0 || x->valuedouble > UINT32_MAX) {
            free(v);
            return why_fail(why, whyn, "the mask's 'counts' list must hold whole numbers in [0, 2^32)");
        }
        v[j++] = (uint32_t)x->valuedouble;
    }
    int r = rle_from_counts(out, v, m, h, w, msg, sizeof msg);
    free(v);
    return r ? why_fail(why, whyn, "bad RLE counts: %s", msg) : 0;
}

/* A list of polygons, rasterised at the image's size (§8.9). */
static int parse_polygon_list(const cJSON *o, int h, int w, rle *out, char *why, size_t whyn) {
    int parts = cJSON_GetArraySize(o), p = 0;
    int64_t total = 0;
    const cJSON *part, *x;
    cJSON_ArrayForEach(part, o) {
        if (!cJSON_IsArray(part)) return why_fail(why, whyn, "'segmentation' polygons must be lists of numbers");
        total += cJSON_GetArraySize(part);
    }
    double *xy = malloc((size_t)(total + 1) * sizeof *xy);
    int64_t *off = malloc(((size_t)parts + 1) * 2 * sizeof *off), at = 0;
    if (!xy || !off) return free(xy), free(off), why_fail(why, whyn, "out of memory");
    int64_t *n = off + parts + 1;
    int bad = 0;
    cJSON_ArrayForEach(part, o) {
        off[p] = at;
        cJSON_ArrayForEach(x, part) {
            if (!cJSON_IsNumber(x)) bad = 1;
            else xy[at++] = x->valuedouble;
        }
        n[p] = at - off[p];
        p++;
    }
    int r = bad ? why_fail(why, whyn, "'segmentation' polygons must be lists of numbers")
                : polygons_to_rle(xy, off, n, parts, h, w, out, why, whyn);
    free(xy), free(off);
    return r;
}

static int parse_segmentation(const ev_ctx *c, json_span v, int img, rle *out, char *why, size_t whyn) {
    cJSON *o = cJSON_ParseWithLength(c->doc.data + v.begin, v.end - v.begin);
    int r;
    if (cJSON_IsObject(o)) r = parse_rle(o, out, why, whyn);
    else if (cJSON_IsArray(o))
        r = parse_polygon_list(o, c->gt->imgs[img].height, c->gt->imgs[img].width, out, why, whyn);
    else r = why_fail(why, whyn, "'segmentation' must be an RLE {size, counts} or a list of polygons");
    cJSON_Delete(o);
    return r;
}

/* Keeps mask m of detection dt as its compressed string in pool. */
static int keep_mask(str_pool *pool, ev_det *dt, const rle *m, char *why, size_t whyn) {
    size_t n = rle_to_string(m, NULL, 0);
    char *s = n <= UINT32_MAX ? pool_alloc(pool, n + 1) : NULL;
    if (!s) return why_fail(why, whyn, "out of memory for the mask");
    rle_to_string(m, s, n + 1);
    dt->mask = s, dt->mask_len = (uint32_t)n, dt->h = m->h, dt->w = m->w;
    return 0;
}

/* A detection's area, its IoU box and (segm) its mask, as lvis-api's LVISResults and
 * ann_to_rle make them (§2.3); the mask is built in m (the caller frees it). */
static int det_geometry(const ev_ctx *c, const res_rec *r, ev_det *dt, rle *mask, str_pool *pool, char *why,
                        size_t whyn) {
    const json_doc *doc = &c->doc;
    json_member m[64];
    int n = 0;
    char msg[512];
    if (json_object_members(doc, r->span, m, 64, &n, msg, sizeof msg)) return why_fail(why, whyn, "not valid JSON");
    int ib = find_member(doc, m, n, "bbox"), is = find_member(doc, m, n, "segmentation");
    int segm = c->type == LVIS_IOU_SEGM;
    const lvis_image *im = &c->gt->imgs[r->img];
    if (c->box_mode) {
        double bb[4];
        if (parse_box(doc, m[ib].value, bb, why, whyn)) return -1;
        dt->area = bb[2] * bb[3];
        memcpy(dt->bb, bb, sizeof bb);
        if (!segm) return 0;
        if (is >= 0) {
            if (parse_segmentation(c, m[is].value, r->img, mask, why, whyn)) return -1;
        } else { /* the box as the polygon (x1,y1),(x1,y2),(x2,y2),(x2,y1) */
            double x2 = bb[0] + bb[2], y2 = bb[1] + bb[3];
            double xy[8] = {bb[0], bb[1], bb[0], y2, x2, y2, x2, bb[1]};
            if (rle_from_polygon(mask, xy, 4, im->height, im->width))
                return why_fail(why, whyn, "the box cannot be rasterised (coordinates out of range, or out of memory)");
        }
        rle_bbox(mask, dt->bb);
        return dt->area > 0 ? keep_mask(pool, dt, mask, why, whyn) : 0;
    }
    if (parse_segmentation(c, m[is].value, r->img, mask, why, whyn)) return -1;
    dt->area = (double)rle_area(mask);
    if (segm) {
        rle_bbox(mask, dt->bb);
        return dt->area > 0 ? keep_mask(pool, dt, mask, why, whyn) : 0;
    }
    if (ib >= 0) return parse_box(doc, m[ib].value, dt->bb, why, whyn);
    rle_bbox(mask, dt->bb); /* box AP needs only the area and the box */
    return 0;
}

static void *geometry_job(void *arg) {
    rec_job *j = arg;
    ev_ctx *c = j->c;
    size_t dropped = j->lo < j->hi ? c->recs[j->cand[j->lo]].span.begin : 0;
    for (int64_t i = j->lo; i < j->hi; i++) {
        const res_rec *r = &c->recs[j->cand[i]];
        ev_det *dt = &c->dets[i];
        rle mask = {0};
        dt->score = r->score, dt->rec = j->cand[i], dt->img = r->img, dt->cat = r->cat;
        allowed(c, r->img, r->cat, &dt->ne);
        int bad = det_geometry(c, r, dt, &mask, j->pool, j->why, sizeof j->why);
        rle_free(&mask);
        if (bad) {
            j->bad = j->cand[i];
            break;
        }
        dt->valid = dt->area > 0; /* strict (§4.2) */
        if (r->span.begin - dropped > DROP_EVERY) {
            drop_pages(&c->doc, dropped, r->span.begin);
            dropped = r->span.begin;
        }
    }
    return NULL;
}

static int read_results(ev_ctx *c, const char *path, char *err, size_t errn) {
    if (read_records(c, path, err, errn)) return -1;
    c->out->n_records = c->n_rec;
    int64_t head = apply_cap(c, err, errn);
    if (head < 0) return -1;
    c->box_mode = (c->recs[head].flags & REC_BBOX) != 0;
    c->out->det_area_from_box = c->box_mode;
    int64_t *cand = NULL, n_cand = 0;
    if (select_candidates(c, &cand, &n_cand, err, errn)) return free(cand), -1;
    c->dets = calloc((size_t)(n_cand ? n_cand : 1), sizeof *c->dets);
    if (!c->dets) return free(cand), mrc_fail(err, errn, "out of memory for %lld detections", (long long)n_cand);
    c->n_det = n_cand; /* every slot is zeroed, so ev_free may free them all */
    int rc = rec_parallel(c, n_cand, cand, geometry_job, err, errn);
    free(cand);
    if (rc) return -1;
    int64_t m = 0;
    for (int64_t i = 0; i < c->n_det; i++)
        if (c->dets[i].valid) c->dets[m++] = c->dets[i];
    c->n_det = m;
    c->out->n_dets = m;
    ev_det *shrunk = realloc(c->dets, (size_t)(m ? m : 1) * sizeof *c->dets);
    if (shrunk) c->dets = shrunk;
    free(c->recs), c->recs = NULL; /* the spans are not needed any more */
    json_doc_close(&c->doc);
    return 0;
}

/* ---- sorting into buckets ------------------------------------------------------------------ */

typedef struct sort_key {
    int32_t cat, rank;
    double score;   /* 0 for GT */
    int64_t idx;    /* file order */
} sort_key;

static int cmp_key(const void *a, const void *b) {
    const sort_key *x = a, *y = b;
    if (x->cat != y->cat) return x->cat < y->cat ? -1 : 1;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    if (x->score != y->score) return x->score > y->score ? -1 : 1; /* descending */
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* order[] of n items by their keys, and off[k] .. off[k + 1] each category's run. */
static int sort_items(sort_key *keys, int64_t n, int n_cat, int64_t **order, int64_t **off) {
    qsort(keys, (size_t)n, sizeof *keys, cmp_key);
    *order = malloc((size_t)(n ? n : 1) * sizeof **order);
    *off = calloc((size_t)n_cat + 1, sizeof **off);
    if (!*order || !*off) return -1;
    for (int64_t i = 0; i < n; i++) (*order)[i] = keys[i].idx, (*off)[keys[i].cat + 1]++;
    for (int k = 0; k < n_cat; k++) (*off)[k + 1] += (*off)[k];
    return 0;
}

static int build_buckets(ev_ctx *c, char *err, size_t errn) {
    int64_t n = c->n_gt > c->n_det ? c->n_gt : c->n_det;
    sort_key *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    if (!keys) return mrc_fail(err, errn, "out of memory");
    for (int64_t i = 0; i < c->n_gt; i++) keys[i] = (sort_key){c->gts[i].cat, c->img_rank[c->gts[i].img], 0, i};
    int bad = sort_items(keys, c->n_gt, c->gt->n_cat, &c->gsort, &c->gcat_off);
    for (int64_t i = 0; i < c->n_det && !bad; i++)
        keys[i] = (sort_key){c->dets[i].cat, c->img_rank[c->dets[i].img], c->dets[i].score, i};
    if (!bad) bad = sort_items(keys, c->n_det, c->gt->n_cat, &c->dsort, &c->dcat_off);
    free(keys);
    return bad ? mrc_fail(err, errn, "out of memory") : 0;
}

/* ---- matching (§5) and accumulation (§6), one category at a time --------------------------- */

typedef struct ev_scratch {
    double *iou, *rc, *pr;
    int64_t cap_iou, cap_rc, cap_pr;
    int32_t *gperm, *gig, *gm;
    int64_t cap_gperm, cap_gig, cap_gm;
    uint32_t *flags;       /* per detection of the category, per area: TP bits 0-9, FP bits 16-25 */
    int64_t cap_flags;
    int64_t *order;        /* the category's detections in accumulation order */
    int64_t cap_order;
    int64_t npig[LVIS_EVAL_A];
    int oom;
} ev_scratch;

static void scratch_free(ev_scratch *s) {
    free(s->iou), free(s->rc), free(s->pr), free(s->gperm), free(s->gig), free(s->gm), free(s->flags), free(s->order);
}

/* One (category, image) slot: dets[0..nd) (score order), gts[0..ng) (file order). Sets the
 * TP/FP bits of each detection per area range and threshold in flags[d * A + a]. */
static void eval_bucket(const ev_ctx *c, const int64_t *dets, int64_t nd, const int64_t *gts, int64_t ng,
                        uint32_t *flags, ev_scratch *s) {
    if (MRC_GROW(s->iou, s->cap_iou, nd * ng + 1) || MRC_GROW(s->gperm, s->cap_gperm, ng + 1) ||
        MRC_GROW(s->gig, s->cap_gig, ng + 1) || MRC_GROW(s->gm, s->cap_gm, ng + 1)) {
        s->oom = 1;
        return;
    }
    for (int64_t d = 0; d < nd && ng; d++) {
        const ev_det *dt = &c->dets[dets[d]];
        rle m = {0};
        if (c->type == LVIS_IOU_SEGM && rle_from_string(&m, dt->mask, dt->mask_len, dt->h, dt->w, NULL, 0)) {
            s->oom = 1; /* the string was checked when read: only memory can fail */
            return;
        }
        for (int64_t g = 0; g < ng; g++) {
            const ev_gt *gt = &c->gts[gts[g]];
            s->iou[d * ng + g] =
                c->type == LVIS_IOU_SEGM ? rle_iou(&m, dt->bb, &gt->mask, gt->bb) : bbox_iou(dt->bb, gt->bb);
        }
        rle_free(&m);
    }
    for (int a = 0; a < LVIS_EVAL_A; a++) {
        double lo = lvis_area_rng[a][0], hi = lvis_area_rng[a][1];
        /* GT ignored in this range last, file order kept within each group (a stable sort) */
        int64_t np = 0;
        for (int64_t g = 0; g < ng; g++) {
            const ev_gt *gt = &c->gts[gts[g]];
            if (!(gt->ignore || gt->area < lo || gt->area > hi)) s->gperm[np++] = (int32_t)g;
        }
        s->npig[a] += np;
        for (int64_t g = 0, q = np; g < ng; g++) {
            const ev_gt *gt = &c->gts[gts[g]];
            if (gt->ignore || gt->area < lo || gt->area > hi) s->gperm[q++] = (int32_t)g;
        }
        for (int64_t q = 0; q < ng; q++) s->gig[q] = q >= np;
        for (int t = 0; t < LVIS_EVAL_T; t++) {
            double thr = fmin(lvis_iou_thrs[t], 1 - 1e-10);
            memset(s->gm, 0, (size_t)ng * sizeof *s->gm);
            for (int64_t d = 0; d < nd; d++) {
                const ev_det *dt = &c->dets[dets[d]];
                const double *iou = s->iou + d * ng;
                double best = thr;
                int64_t m = -1;
                for (int64_t q = 0; q < ng; q++) {
                    if (s->gm[q]) continue;
                    if (m >= 0 && !s->gig[m] && s->gig[q]) break; /* only ignored GT left */
                    if (iou[s->gperm[q]] < best) continue;       /* equal IoU: the later GT wins */
                    best = iou[s->gperm[q]];
                    m = q;
                }
                int ignored;
                if (m >= 0) {
                    s->gm[m] = 1;
                    ignored = s->gig[m];
                } else {
                    ignored = dt->area < lo || dt->area > hi || dt->ne;
                }
                if (!ignored) flags[d * LVIS_EVAL_A + a] |= m >= 0 ? 1u << t : 1u << (16 + t);
            }
        }
    }
}

static int cmp_acc(const void *a, const void *b, void *arg) {
    const ev_ctx *c = arg;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b; /* positions in dsort */
    double sx = c->dets[c->dsort[x]].score, sy = c->dets[c->dsort[y]].score;
    if (sx != sy) return sx > sy ? -1 : 1;
    return (x > y) - (x < y);
}

/* §6 for category k and each area range with GT: the cumulative TP/FP walk over the
 * category's detections, precision envelope, 101-point sampling. */
static void accumulate(const ev_ctx *c, int k, int64_t d0, int64_t nd, ev_scratch *s) {
    lvis_eval_result *o = c->out;
    int K = o->n_cat;
    if (MRC_GROW(s->order, s->cap_order, nd + 1) || MRC_GROW(s->rc, s->cap_rc, nd + 1) ||
        MRC_GROW(s->pr, s->cap_pr, nd + 1)) {
        s->oom = 1;
        return;
    }
    /* positions in dsort run by (image id, score desc, file order): a sort on descending
     * score with the position as the tie-break is the official stable sort over images
     * concatenated in ascending id */
    for (int64_t i = 0; i < nd; i++) s->order[i] = d0 + i;
    qsort_r(s->order, (size_t)nd, sizeof *s->order, cmp_acc, (void *)c);
    for (int a = 0; a < LVIS_EVAL_A; a++) {
        if (s->npig[a] == 0) continue; /* -1: no GT to recall (§6.3) */
        double npig = (double)s->npig[a];
        for (int t = 0; t < LVIS_EVAL_T; t++) {
            double tp = 0, fp = 0;
            for (int64_t i = 0; i < nd; i++) {
                uint32_t f = s->flags[(s->order[i] - d0) * LVIS_EVAL_A + a];
                tp += (f >> t) & 1;
                fp += (f >> (16 + t)) & 1;
                s->rc[i] = tp / npig;
                s->pr[i] = tp / ((fp + tp) + np_eps);
            }
            o->recall[((int64_t)t * K + k) * LVIS_EVAL_A + a] = nd ? s->rc[nd - 1] : 0;
            for (int64_t i = nd - 1; i > 0; i--)
                if (s->pr[i] > s->pr[i - 1]) s->pr[i - 1] = s->pr[i];
            int64_t i = 0;
            for (int r = 0; r < LVIS_EVAL_R; r++) {
                double thr = lvis_rec_thr(r);
                while (i < nd && s->rc[i] < thr) i++; /* searchsorted, side left */
                o->precision[(((int64_t)t * LVIS_EVAL_R + r) * K + k) * LVIS_EVAL_A + a] = i < nd ? s->pr[i] : 0;
            }
        }
    }
}

static void eval_category(const ev_ctx *c, int k, ev_scratch *s) {
    int64_t d0 = c->dcat_off[k], d1 = c->dcat_off[k + 1], g0 = c->gcat_off[k], g1 = c->gcat_off[k + 1];
    if (MRC_GROW(s->flags, s->cap_flags, (d1 - d0) * LVIS_EVAL_A + 1)) {
        s->oom = 1;
        return;
    }
    memset(s->flags, 0, (size_t)(d1 - d0) * LVIS_EVAL_A * sizeof *s->flags);
    memset(s->npig, 0, sizeof s->npig);
    int64_t i = d0, j = g0;
    while (i < d1 || j < g1) { /* the image slots of this category, ascending id */
        int32_t ri = i < d1 ? c->img_rank[c->dets[c->dsort[i]].img] : INT32_MAX;
        int32_t rj = j < g1 ? c->img_rank[c->gts[c->gsort[j]].img] : INT32_MAX;
        int32_t rank = ri < rj ? ri : rj;
        int64_t di = i, gj = j;
        while (i < d1 && c->img_rank[c->dets[c->dsort[i]].img] == rank) i++;
        while (j < g1 && c->img_rank[c->gts[c->gsort[j]].img] == rank) j++;
        eval_bucket(c, c->dsort + di, i - di, c->gsort + gj, j - gj, s->flags + (di - d0) * LVIS_EVAL_A, s);
        if (s->oom) return;
    }
    accumulate(c, k, d0, d1 - d0, s);
}

typedef struct cat_job {
    ev_ctx *c;
    int oom;
} cat_job;

static void *cat_worker(void *arg) {
    cat_job *j = arg;
    ev_scratch s;
    memset(&s, 0, sizeof s);
    for (;;) {
        int64_t k = __atomic_fetch_add(&j->c->next_cat, 1, __ATOMIC_RELAXED);
        if (k >= j->c->gt->n_cat || s.oom) break;
        eval_category(j->c, (int)k, &s);
    }
    j->oom = s.oom;
    scratch_free(&s);
    return NULL;
}

/* ---- summaries (§9) ---------------------------------------------------------------------- */

/* The mean of the entries > -1 of precision[t][r][k][a] (t_only >= 0: that threshold only;
 * freq >= 0: the categories of that group), flattened t, r, k as numpy does; -1 if none.
 * buf holds T * R * K values. */
static double summarize_ap(const lvis_eval_result *o, const lvis_data *gt, int t_only, int a, int freq, double *buf) {
    int64_t n = 0;
    int K = o->n_cat;
    for (int t = 0; t < LVIS_EVAL_T; t++) {
        if (t_only >= 0 && t != t_only) continue;
        for (int r = 0; r < LVIS_EVAL_R; r++)
            for (int k = 0; k < K; k++) {
                if (freq >= 0 && (int)gt->cats[k].freq != freq) continue;
                double v = o->precision[(((int64_t)t * LVIS_EVAL_R + r) * K + k) * LVIS_EVAL_A + a];
                if (v > -1) buf[n++] = v;
            }
    }
    return n ? lvis_np_mean(buf, n) : -1;
}

/* The same over recall[t][k][a]. */
static double summarize_ar(const lvis_eval_result *o, int a, double *buf) {
    int64_t n = 0;
    for (int t = 0; t < LVIS_EVAL_T; t++)
        for (int k = 0; k < o->n_cat; k++) {
            double v = o->recall[((int64_t)t * o->n_cat + k) * LVIS_EVAL_A + a];
            if (v > -1) buf[n++] = v;
        }
    return n ? lvis_np_mean(buf, n) : -1;
}

static int summarize(lvis_eval_result *o, const lvis_data *gt) {
    int K = o->n_cat;
    double *buf = malloc((size_t)LVIS_EVAL_T * LVIS_EVAL_R * (size_t)(K ? K : 1) * sizeof *buf);
    if (!buf) return -1;
    double *s = o->stats;
    s[LVIS_AP] = summarize_ap(o, gt, -1, 0, -1, buf);
    s[LVIS_AP50] = summarize_ap(o, gt, 0, 0, -1, buf);
    s[LVIS_AP75] = summarize_ap(o, gt, 5, 0, -1, buf);
    for (int a = 1; a < LVIS_EVAL_A; a++) s[LVIS_APS + a - 1] = summarize_ap(o, gt, -1, a, -1, buf);
    for (int f = 0; f < 3; f++) s[LVIS_APR + f] = summarize_ap(o, gt, -1, 0, f, buf);
    for (int a = 0; a < LVIS_EVAL_A; a++) s[LVIS_AR + a] = summarize_ar(o, a, buf);
    for (int k = 0; k < K; k++) { /* per category: precision[:, :, k, all], (t, r) order */
        int64_t n = 0;
        for (int t = 0; t < LVIS_EVAL_T; t++)
            for (int r = 0; r < LVIS_EVAL_R; r++) {
                double v = o->precision[(((int64_t)t * LVIS_EVAL_R + r) * K + k) * LVIS_EVAL_A];
                if (v > -1) buf[n++] = v;
            }
        o->cat_ap[k] = n ? lvis_np_mean(buf, n) : -1;
    }
    free(buf);
    return 0;
}

/* ---- the entry point --------------------------------------------------------------------- */

void lvis_eval_result_free(lvis_eval_result *r) {
    free(r->cat_ap), free(r->precision), free(r->recall);
    memset(r, 0, sizeof *r);
}

static int alloc_result(lvis_eval_result *o, int K) {
    size_t np = (size_t)LVIS_EVAL_T * LVIS_EVAL_R * (size_t)K * LVIS_EVAL_A, nr = (size_t)LVIS_EVAL_T * K * LVIS_EVAL_A;
    o->n_cat = K;
    o->cat_ap = malloc(((size_t)K + 1) * sizeof *o->cat_ap);
    o->precision = malloc((np + 1) * sizeof *o->precision);
    o->recall = malloc((nr + 1) * sizeof *o->recall);
    if (!o->cat_ap || !o->precision || !o->recall) return -1;
    for (size_t i = 0; i < np; i++) o->precision[i] = -1;
    for (size_t i = 0; i < nr; i++) o->recall[i] = -1;
    return 0;
}

static int evaluate(ev_ctx *c, char *err, size_t errn) {
    cat_job jobs[64];
    for (int t = 0; t < c->threads; t++) jobs[t] = (cat_job){c, 0};
    par_run(c->threads, jobs, sizeof *jobs, cat_worker);
    for (int t = 0; t < c->threads; t++)
        if (jobs[t].oom) return mrc_fail(err, errn, "out of memory while evaluating");
    return summarize(c->out, c->gt) ? mrc_fail(err, errn, "out of memory") : 0;
}

int lvis_eval_run(const lvis_data *gt, const char *results_path, lvis_iou_type type, int threads,
                  lvis_eval_result *out, char *err, size_t errn) {
    memset(out, 0, sizeof *out);
    out->type = type;
    if (threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = (int)(cpus < 1 ? 1 : cpus > 8 ? 8 : cpus);
    }
    ev_ctx c;
    memset(&c, 0, sizeof c);
    c.gt = gt, c.type = type, c.threads = threads > 64 ? 64 : threads, c.out = out;
    double t0 = now_s();
    int rc = -1;
    if (gt->mode != LVIS_OFFICIAL) {
        mrc_fail(err, errn, "%s: the ground truth must be read in official mode", gt->path);
        goto done;
    }
    if (alloc_result(out, gt->n_cat)) {
        mrc_fail(err, errn, "out of memory");
        goto done;
    }
    if (prepare_gt(&c, err, errn) || prepare_images(&c, err, errn) || read_results(&c, results_path, err, errn))
        goto done;
    out->n_gt = c.n_gt;
    double t1 = now_s();
    out->t_load = t1 - t0;
    if (build_buckets(&c, err, errn) || evaluate(&c, err, errn)) goto done;
    out->t_eval = now_s() - t1;
    rc = 0;
done:
    ev_free(&c);
    if (rc) lvis_eval_result_free(out);
    return rc;
}

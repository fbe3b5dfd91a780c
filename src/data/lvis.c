/* lvis.c: the LVIS v1 reader (see lvis.h). Sections are parsed in dependency order
 * (categories, images, annotations) whatever their order in the file, one record at a
 * time; ids are resolved through sorted tables. The annotations are split between
 * threads (ann_part); cJSON is used with its default allocator (its hooks are global, so
 * no per-thread allocator is installed), and only the record's non-polygon members go
 * through it: the polygon coordinates, 90% of the file, are read by json_number. */
#include "data/lvis.h"

#include "core/util.h"
#include "data/json_scan.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct lvis_ctx {
    lvis_data *d;
    const json_doc *doc;
    char *err;
    size_t errn;
    const char *section; /* "images", ... ; NULL for file-level messages */
    int64_t index;       /* record index in its section */
} lvis_ctx;

static int lvis_fail(lvis_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lvis_fail(lvis_ctx *c, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!c->errn) return -1;
    if (c->section) snprintf(c->err, c->errn, "%s: %s[%lld]: %s", c->d->path, c->section, (long long)c->index, msg);
    else snprintf(c->err, c->errn, "%s: %s", c->d->path, msg);
    return -1;
}

#define GROW(c, ptr, cap, need) \
    (mrc_grow((void **)&(ptr), &(cap), (need), sizeof *(ptr)) ? lvis_fail((c), "out of memory") : 0)

typedef struct lvis_caps {
    int64_t cats, imgs, anns, polys, verts, pool, strings;
} lvis_caps;

static int64_t add_string(lvis_ctx *c, lvis_caps *caps, const char *s, size_t n) {
    lvis_data *d = c->d;
    if (GROW(c, d->strings, caps->strings, (int64_t)(d->n_strings + n + 1))) return -1;
    int64_t off = (int64_t)d->n_strings;
    memcpy(d->strings + off, s, n);
    d->strings[off + (int64_t)n] = '\0';
    d->n_strings += n + 1;
    return off;
}

/* A member that must be a finite number (integral when `integral`). Returns 0, 1 when
 * absent and optional, -1 on error. */
static int get_number(lvis_ctx *c, const cJSON *o, const char *key, int required, int integral, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return required ? lvis_fail(c, "'%s' is missing", key) : 1;
    if (!cJSON_IsNumber(v)) return lvis_fail(c, "'%s' must be a number", key);
    if (!isfinite(v->valuedouble)) return lvis_fail(c, "'%s' is not a finite number", key);
    if (integral && (v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9007199254740992.0))
        return lvis_fail(c, "'%s' must be an integer, got %.17g", key, v->valuedouble);
    *out = v->valuedouble;
    return 0;
}

/* Parses the record spanning s; NULL after a message. */
static cJSON *parse_record(lvis_ctx *c, json_span s) {
    cJSON *o = cJSON_ParseWithLength(c->doc->data + s.begin, s.end - s.begin);
    if (!o) {
        lvis_fail(c, "not valid JSON (near byte %zu)", s.begin);
        return NULL;
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        lvis_fail(c, "must be an object");
        return NULL;
    }
    return o;
}

/* Calls fn for every record of the array spanning arr. */
typedef int (*record_fn)(lvis_ctx *c, lvis_caps *caps, const cJSON *o);
static int each_record(lvis_ctx *c, lvis_caps *caps, json_span arr, const char *section, record_fn fn) {
    json_array_iter it;
    json_span e;
    int r;
    c->section = NULL;
    if (c->doc->data[arr.begin] != '[') return lvis_fail(c, "'%s' must be an array", section);
    if (json_array_begin(&it, c->doc, arr, c->err, c->errn)) return -1;
    c->section = section;
    while ((r = json_array_next(&it, &e, c->err, c->errn)) == 1) {
        c->index = it.index;
        cJSON *o = parse_record(c, e);
        if (!o) return -1;
        int bad = fn(c, caps, o);
        cJSON_Delete(o);
        if (bad) return -1;
    }
    c->section = NULL;
    return r;
}

/* ---- categories ------------------------------------------------------------------------ */

static int category_record(lvis_ctx *c, lvis_caps *caps, const cJSON *o) {
    lvis_data *d = c->d;
    double id, n;
    if (get_number(c, o, "id", 1, 1, &id)) return -1;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "frequency");
    if (!cJSON_IsString(f)) return lvis_fail(c, "'frequency' must be a string");
    const char *fs = f->valuestring;
    if (strcmp(fs, "r") && strcmp(fs, "c") && strcmp(fs, "f"))
        return lvis_fail(c, "frequency '%s' is not r, c or f", fs);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (name && !cJSON_IsString(name)) return lvis_fail(c, "'name' must be a string");
    if (GROW(c, d->cats, caps->cats, d->n_cat + 1)) return -1;
    lvis_category *k = &d->cats[d->n_cat];
    memset(k, 0, sizeof *k);
    k->id = (int64_t)id;
    k->freq = fs[0] == 'r' ? LVIS_FREQ_R : fs[0] == 'c' ? LVIS_FREQ_C : LVIS_FREQ_F;
    const char *nm = name ? name->valuestring : "";
    if ((k->name = add_string(c, caps, nm, strlen(nm))) < 0) return -1;
    int r = get_number(c, o, "image_count", 0, 1, &n);
    if (r < 0) return -1;
    k->image_count = r == 0 ? (int64_t)n : -1;
    r = get_number(c, o, "instance_count", 0, 1, &n);
    if (r < 0) return -1;
    k->instance_count = r == 0 ? (int64_t)n : -1;
    d->n_cat++;
    return 0;
}

static int cmp_category(const void *a, const void *b) {
    int64_t x = ((const lvis_category *)a)->id, y = ((const lvis_category *)b)->id;
    return (x > y) - (x < y);
}

int lvis_category_index(const lvis_data *d, int64_t id) {
    int lo = 0, hi = d->n_cat - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (d->cats[mid].id == id) return mid;
        if (d->cats[mid].id < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* ---- images ---------------------------------------------------------------------------- */

/* Category-id lists -> category indices in cat_pool. */
static int id_list(lvis_ctx *c, lvis_caps *caps, const cJSON *o, const char *key, int64_t *off, int *count) {
    lvis_data *d = c->d;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    *off = d->n_cat_pool, *count = 0;
    if (!a) return d->mode == LVIS_OFFICIAL ? lvis_fail(c, "'%s' is missing (the LVIS evaluator needs it)", key) : 0;
    if (!cJSON_IsArray(a)) return lvis_fail(c, "'%s' must be a list of category ids", key);
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
            return lvis_fail(c, "'%s' must hold integer category ids", key);
        int k = lvis_category_index(d, (int64_t)v->valuedouble);
        if (k < 0) return lvis_fail(c, "%s holds category id %.0f, which is not in categories", key, v->valuedouble);
        if (GROW(c, d->cat_pool, caps->pool, d->n_cat_pool + 1)) return -1;
        d->cat_pool[d->n_cat_pool++] = k;
        (*count)++;
    }
    return 0;
}

static int image_path(lvis_ctx *c, lvis_caps *caps, const cJSON *o, int64_t *off) {
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(o, "file_name");
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(o, "coco_url");
    char rel[1024];
    if (cJSON_IsString(fn) && fn->valuestring[0]) {
        snprintf(rel, sizeof rel, "%s", fn->valuestring);
    } else if (cJSON_IsString(url) && url->valuestring[0]) {
        /* the last two components: ".../train2017/000000391895.jpg" */
        const char *u = url->valuestring, *last = strrchr(u, '/');
        const char *prev = last;
        while (prev && prev > u && prev[-1] != '/') prev--;
        if (!last || prev == last || !last[1]) return lvis_fail(c, "coco_url '%s' has no directory/file part", u);
        snprintf(rel, sizeof rel, "%s", prev);
    } else {
        return lvis_fail(c, "has neither file_name nor coco_url");
    }
    return (*off = add_string(c, caps, rel, strlen(rel))) < 0 ? -1 : 0;
}

const char *lvis_image_path(const lvis_data *d, int i, char *buf, size_t n) {
    const char *root = d->image_root, *rel = lvis_string(d, d->imgs[i].path);
    size_t r = strlen(root);
    if (r) snprintf(buf, n, "%s%s%s", root, root[r - 1] == '/' ? "" : "/", rel);
    else snprintf(buf, n, "%s", rel);
    return buf;
}

static int image_record(lvis_ctx *c, lvis_caps *caps, const cJSON *o) {
    lvis_data *d = c->d;
    double id, w, h;
    if (get_number(c, o, "id", 1, 1, &id) || get_number(c, o, "width", 1, 1, &w) ||
        get_number(c, o, "height", 1, 1, &h))
        return -1;
    if (w <= 0 || h <= 0 || w > 1e6 || h > 1e6) return lvis_fail(c, "size %.0fx%.0f is not positive", w, h);
    if (GROW(c, d->imgs, caps->imgs, d->n_img + 1)) return -1;
    lvis_image *im = &d->imgs[d->n_img];
    memset(im, 0, sizeof *im);
    im->id = (int64_t)id, im->width = (int)w, im->height = (int)h;
    if (image_path(c, caps, o, &im->path)) return -1;
    if (id_list(c, caps, o, "neg_category_ids", &im->neg, &im->n_neg)) return -1;
    if (id_list(c, caps, o, "not_exhaustive_category_ids", &im->not_exhaustive, &im->n_not_exhaustive)) return -1;
    d->n_img++;
    return 0;
}

static int cmp_pair(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

int lvis_image_index(const lvis_data *d, int64_t id) {
    int lo = 0, hi = d->n_img - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int64_t v = d->img_ids_sorted[2 * mid];
        if (v == id) return (int)d->img_ids_sorted[2 * mid + 1];
        if (v < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* ---- annotations (threads) ------------------------------------------------------------ */

/* What one thread parses: records [lo, hi) of the annotations array, into its own arrays
 * (poly and vert offsets local to the part until the merge). */
typedef struct ann_part {
    lvis_data *d;
    const json_doc *doc;
    const json_span *spans;
    int64_t lo, hi;
    int report;              /* this thread reports progress */
    double t0;
    size_t done_before;      /* bytes before the annotations (for the progress figure) */
    int parts;
    lvis_ann *anns;
    lvis_poly *polys;
    float *verts;
    double *bbox_d, *verts_d; /* official mode: the JSON's doubles */
    int64_t n_ann, n_poly, n_vert, cap_ann, cap_poly, cap_vert, cap_bbox_d, cap_verts_d;
    lvis_skips skipped;
    char *buf;               /* the record without its segmentation, for cJSON */
    int64_t cap_buf;
    int failed;
    char err[1024];
} ann_part;

static size_t ws(const char *s, size_t i, size_t end) {
    while (i < end && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* The segmentation value spanning v (brackets already balanced by the scanner): polygons
 * into the part's pools. 0, 1 for a degenerate polygon in strict mode (rolled back), -1. */
static int parse_polygons(lvis_ctx *c, ann_part *p, json_span v, lvis_ann *a) {
    const char *s = c->doc->data;
    size_t i = v.begin, end = v.end;
    int64_t keep_poly = p->n_poly, keep_vert = p->n_vert;
    int degenerate = 0;
    a->poly = p->n_poly, a->n_poly = 0;
    if (s[i] != '[') return lvis_fail(c, "'segmentation' must be a list of polygons");
    i = ws(s, i + 1, end);
    if (s[i] == ']') return 0;
    for (;;) {
        if (s[i] != '[') return lvis_fail(c, "a polygon must be a list of coordinates");
        i = ws(s, i + 1, end);
        int64_t first = p->n_vert;
        if (s[i] != ']')
            for (;;) {
                double x;
                size_t k = json_number(s + i, end - i, &x);
                if (!k) return lvis_fail(c, "polygon coordinates must be numbers");
                float f = (float)x;
                if (!isfinite(f)) return lvis_fail(c, "a polygon coordinate is not finite");
                if (GROW(c, p->verts, p->cap_vert, p->n_vert + 1)) return -1;
                if (c->d->mode == LVIS_OFFICIAL) {
                    if (GROW(c, p->verts_d, p->cap_verts_d, p->n_vert + 1)) return -1;
                    p->verts_d[p->n_vert] = x;
                }
                p->verts[p->n_vert++] = f;
                i = ws(s, i + k, end);
                if (s[i] == ']') break;
                if (s[i] != ',') return lvis_fail(c, "',' or ']' was expected in a polygon");
                i = ws(s, i + 1, end);
            }
        int64_t n = p->n_vert - first;
        if (n % 2 || n < 6) degenerate = 1;
        if (GROW(c, p->polys, p->cap_poly, p->n_poly + 1)) return -1;
        p->polys[p->n_poly++] = (lvis_poly){first, n};
        a->n_poly++;
        i = ws(s, i + 1, end);
        if (s[i] == ']') break;
        if (s[i] != ',') return lvis_fail(c, "'segmentation' must be a list of polygons");
        i = ws(s, i + 1, end);
    }
    if (degenerate && c->d->mode == LVIS_STRICT) {
        p->n_poly = keep_poly, p->n_vert = keep_vert;
        return 1;
    }
    return 0;
}

/* Python's truthiness of a JSON value (lvis-api tests `ann.get("ignore", 0)` as a bool). */
static int truthy(const cJSON *v) {
    if (!v || cJSON_IsFalse(v) || cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) return v->valuedouble != 0;
    if (cJSON_IsString(v)) return v->valuestring[0] != 0;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return v->child != NULL;
    return 1;
}

static void note_skip(int64_t *count, int64_t *first, int64_t record) {
    if (*count == 0 || record < *first) *first = record;
    (*count)++;
}

static int ann_record(lvis_ctx *c, ann_part *p, json_span rec) {
    lvis_data *d = c->d;
    const char *s = c->doc->data;
    json_member m[256];
    int n = 0;
    char msg[1024];
    if (s[rec.begin] != '{') return lvis_fail(c, "must be an object");
    if (json_object_members(c->doc, rec, m, 256, &n, msg, sizeof msg)) {
        size_t skip = strlen(c->doc->path) + 2; /* the scanner's message starts "PATH: " */
        return lvis_fail(c, "not valid JSON: %s", strlen(msg) > skip ? msg + skip : msg);
    }
    /* everything but the (first) segmentation member goes to cJSON */
    int seg = -1;
    int64_t len = 2;
    for (int i = 0; i < n; i++) {
        if (seg < 0 && json_key_is(c->doc, m[i].key, "segmentation")) seg = i;
        else len += (int64_t)(m[i].value.end - m[i].key.begin) + 2;
    }
    if (GROW(c, p->buf, p->cap_buf, len + 1)) return -1;
    char *b = p->buf;
    int64_t at = 0;
    b[at++] = '{';
    for (int i = 0; i < n; i++) {
        if (i == seg) continue;
        if (at > 1) b[at++] = ',';
        size_t from = m[i].key.begin - 1; /* the opening quote */
        memcpy(b + at, s + from, m[i].value.end - from);
        at += (int64_t)(m[i].value.end - from);
    }
    b[at++] = '}';
    cJSON *o = cJSON_ParseWithLength(b, (size_t)at);
    if (!o) return lvis_fail(c, "not valid JSON (near byte %zu)", rec.begin);
    double id, img, cat, area = 0;
    int bad = -1;
    lvis_ann a;
    memset(&a, 0, sizeof a);
    if (get_number(c, o, "id", 1, 1, &id) || get_number(c, o, "image_id", 1, 1, &img) ||
        get_number(c, o, "category_id", 1, 1, &cat))
        goto out;
    if (d->mode == LVIS_OFFICIAL && id < 1) {
        lvis_fail(c, "id %.0f: the LVIS evaluator needs annotation ids >= 1", id);
        goto out;
    }
    int ii = lvis_image_index(d, (int64_t)img), ci = lvis_category_index(d, (int64_t)cat);
    if (ii < 0) {
        lvis_fail(c, "image_id %.0f is not in images", img);
        goto out;
    }
    if (ci < 0) {
        lvis_fail(c, "category_id %.0f is not in categories", cat);
        goto out;
    }
    const cJSON *bb = cJSON_GetObjectItemCaseSensitive(o, "bbox");
    if (!cJSON_IsArray(bb) || cJSON_GetArraySize(bb) != 4) {
        lvis_fail(c, "'bbox' must be [x, y, w, h]");
        goto out;
    }
    if (get_number(c, o, "area", d->mode == LVIS_OFFICIAL, 0, &area) < 0) goto out;
    int k = 0;
    const cJSON *v;
    double bbox_d[4];
    cJSON_ArrayForEach(v, bb) {
        if (!cJSON_IsNumber(v) || !isfinite((float)v->valuedouble)) {
            lvis_fail(c, "'bbox' holds a non-finite or non-number value");
            goto out;
        }
        bbox_d[k] = v->valuedouble;
        a.bbox[k++] = (float)v->valuedouble;
    }
    a.id = (int64_t)id, a.image = ii, a.category = ci, a.area = area, a.record = c->index;
    a.ignore = d->mode == LVIS_OFFICIAL && truthy(cJSON_GetObjectItemCaseSensitive(o, "ignore"));
    bad = 0;
    if (d->mode == LVIS_STRICT && (a.bbox[2] <= 0 || a.bbox[3] <= 0)) {
        note_skip(&p->skipped.bad_box, &p->skipped.first_bad_box, c->index);
        goto out;
    }
    a.poly = p->n_poly;
    if (seg >= 0) {
        int r = parse_polygons(c, p, m[seg].value, &a);
        if (r < 0) {
            bad = -1;
            goto out;
        }
        if (r == 1) {
            note_skip(&p->skipped.bad_polygon, &p->skipped.first_bad_polygon, c->index);
            goto out;
        }
    }
    if (GROW(c, p->anns, p->cap_ann, p->n_ann + 1) ||
        (d->mode == LVIS_OFFICIAL && GROW(c, p->bbox_d, p->cap_bbox_d, 4 * (p->n_ann + 1)))) {
        bad = -1;
        goto out;
    }
    if (d->mode == LVIS_OFFICIAL) memcpy(p->bbox_d + 4 * p->n_ann, bbox_d, sizeof bbox_d);
    p->anns[p->n_ann++] = a;
out:
    cJSON_Delete(o);
    return bad;
}

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

static void *ann_thread(void *arg) {
    ann_part *p = arg;
    lvis_ctx c = {p->d, p->doc, p->err, sizeof p->err, "annotations", 0};
    for (int64_t r = p->lo; r < p->hi; r++) {
        c.index = r;
        if (ann_record(&c, p, p->spans[r])) {
            p->failed = 1;
            break;
        }
        if (p->report && (r - p->lo) % 16384 == 0 && isatty(2)) {
            /* the other parts move at about this one's pace */
            size_t mine = p->spans[r].begin - p->spans[p->lo].begin;
            double frac = (double)(p->done_before + mine * (size_t)p->parts) / (double)p->doc->size;
            fprintf(stderr, "\r  reading %s: %3.0f%% (%.0f s)", p->d->path, 100 * fmin(frac, 1.0), now_s() - p->t0);
            fflush(stderr);
        }
    }
    return NULL;
}

/* Parses the annotations array with `threads` threads and merges the parts in file order. */
static int parse_annotations(lvis_ctx *c, json_span arr, int threads, int progress, double t0) {
    lvis_data *d = c->d;
    json_span *spans = NULL, e;
    int64_t n = 0, cap = 0;
    json_array_iter it;
    int r;
    if (c->doc->data[arr.begin] != '[') return lvis_fail(c, "'annotations' must be an array");
    if (json_array_begin(&it, c->doc, arr, c->err, c->errn)) return -1;
    while ((r = json_array_next(&it, &e, c->err, c->errn)) == 1) {
        if (GROW(c, spans, cap, n + 1)) return free(spans), -1;
        spans[n++] = e;
    }
    if (r < 0) return free(spans), -1;
    if (threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = (int)(cpus < 1 ? 1 : cpus > 8 ? 8 : cpus);
        int64_t useful = n / 16384 > 0 ? n / 16384 : 1;
        if (threads > useful) threads = (int)useful;
    }
    if (threads > n) threads = n > 0 ? (int)n : 1;
    ann_part *p = calloc((size_t)threads, sizeof *p);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    if (!p || !tid) return free(spans), free(p), free(tid), lvis_fail(c, "out of memory");
    for (int t = 0; t < threads; t++) {
        p[t].d = d, p[t].doc = c->doc, p[t].spans = spans, p[t].parts = threads, p[t].t0 = t0;
        p[t].lo = n * t / threads, p[t].hi = n * (t + 1) / threads;
        p[t].report = t == 0 && progress;
        p[t].done_before = arr.begin;
        p[t].skipped.first_bad_box = p[t].skipped.first_bad_polygon = -1;
    }
    int started = 1;
    for (int t = 1; t < threads; t++, started++)
        if (pthread_create(&tid[t], NULL, ann_thread, &p[t])) break;
    ann_thread(&p[0]);
    for (int t = 1; t < started; t++) pthread_join(tid[t], NULL);
    int rc = 0;
    if (started < threads) rc = lvis_fail(c, "cannot start %d parse threads", threads);
    for (int t = 0; t < threads && !rc; t++)
        if (p[t].failed) { /* the parts are in file order: the first failing one has the first error */
            snprintf(c->err, c->errn, "%s", p[t].err);
            rc = -1;
        }
    /* merge: part 0's arrays grow in place (realloc), the others are appended */
    int64_t na = 0, np = 0, nv = 0;
    for (int t = 0; t < threads; t++) na += p[t].n_ann, np += p[t].n_poly, nv += p[t].n_vert;
    if (!rc) {
        lvis_ann *anns = realloc(p[0].anns, (size_t)(na ? na : 1) * sizeof *anns);
        if (anns) p[0].anns = anns;
        lvis_poly *polys = realloc(p[0].polys, (size_t)(np ? np : 1) * sizeof *polys);
        if (polys) p[0].polys = polys;
        float *verts = realloc(p[0].verts, (size_t)(nv ? nv : 1) * sizeof *verts);
        if (verts) p[0].verts = verts;
        int ok = anns && polys && verts;
        if (d->mode == LVIS_OFFICIAL) {
            double *bb = realloc(p[0].bbox_d, (size_t)(na ? na : 1) * 4 * sizeof *bb);
            if (bb) p[0].bbox_d = bb;
            double *vd = realloc(p[0].verts_d, (size_t)(nv ? nv : 1) * sizeof *vd);
            if (vd) p[0].verts_d = vd;
            ok = ok && bb && vd;
        }
        if (!ok) rc = lvis_fail(c, "out of memory");
    }
    if (!rc) {
        d->anns = p[0].anns, d->polys = p[0].polys, d->verts = p[0].verts;
        d->ann_bbox_d = p[0].bbox_d, d->verts_d = p[0].verts_d;
        p[0].anns = NULL, p[0].polys = NULL, p[0].verts = NULL, p[0].bbox_d = NULL, p[0].verts_d = NULL;
        d->n_ann = p[0].n_ann, d->n_poly = p[0].n_poly, d->n_vert = p[0].n_vert;
        d->skipped = p[0].skipped;
        for (int t = 1; t < threads; t++) {
            for (int64_t i = 0; i < p[t].n_ann; i++) {
                lvis_ann a = p[t].anns[i];
                a.poly += d->n_poly;
                d->anns[d->n_ann + i] = a;
            }
            for (int64_t i = 0; i < p[t].n_poly; i++) {
                lvis_poly q = p[t].polys[i];
                q.vert += d->n_vert;
                d->polys[d->n_poly + i] = q;
            }
            if (p[t].n_vert) memcpy(d->verts + d->n_vert, p[t].verts, (size_t)p[t].n_vert * sizeof *d->verts);
            if (d->mode == LVIS_OFFICIAL) {
                if (p[t].n_ann) memcpy(d->ann_bbox_d + 4 * d->n_ann, p[t].bbox_d, (size_t)p[t].n_ann * 4 * sizeof(double));
                if (p[t].n_vert) memcpy(d->verts_d + d->n_vert, p[t].verts_d, (size_t)p[t].n_vert * sizeof(double));
            }
            d->n_ann += p[t].n_ann, d->n_poly += p[t].n_poly, d->n_vert += p[t].n_vert;
            free(p[t].anns), free(p[t].polys), free(p[t].verts), free(p[t].bbox_d), free(p[t].verts_d);
            p[t].anns = NULL, p[t].polys = NULL, p[t].verts = NULL, p[t].bbox_d = NULL, p[t].verts_d = NULL;
            lvis_skips *k = &d->skipped, *q = &p[t].skipped;
            if (q->bad_box && (!k->bad_box || q->first_bad_box < k->first_bad_box)) k->first_bad_box = q->first_bad_box;
            if (q->bad_polygon && (!k->bad_polygon || q->first_bad_polygon < k->first_bad_polygon))
                k->first_bad_polygon = q->first_bad_polygon;
            k->bad_box += q->bad_box, k->bad_polygon += q->bad_polygon;
        }
    }
    for (int t = 0; t < threads; t++)
        free(p[t].anns), free(p[t].polys), free(p[t].verts), free(p[t].buf), free(p[t].bbox_d), free(p[t].verts_d);
    free(p), free(tid), free(spans);
    return rc;
}

const char *lvis_skip_summary(const lvis_data *d, char *buf, size_t n) {
    const lvis_skips *k = &d->skipped;
    if (!k->bad_box && !k->bad_polygon) {
        if (n) buf[0] = 0;
        return buf;
    }
    char box[128] = "", poly[128] = "";
    if (k->bad_box)
        snprintf(box, sizeof box, "%lld with box w or h <= 0 (first: annotations[%lld])", (long long)k->bad_box,
                 (long long)k->first_bad_box);
    if (k->bad_polygon)
        snprintf(poly, sizeof poly, "%lld with a bad polygon (first: annotations[%lld])", (long long)k->bad_polygon,
                 (long long)k->first_bad_polygon);
    snprintf(buf, n, "%s: skipped %lld of %lld annotations: %s%s%s", d->path, (long long)(k->bad_box + k->bad_polygon),
             (long long)(d->n_ann + k->bad_box + k->bad_polygon), box, box[0] && poly[0] ? ", " : "", poly);
    return buf;
}

/* ---- after the records: id checks, grouping, counts ----------------------------------- */

static int check_unique(lvis_ctx *c, const char *section, int64_t *pairs, int64_t n) {
    qsort(pairs, (size_t)n, 2 * sizeof(int64_t), cmp_pair);
    for (int64_t i = 1; i < n; i++)
        if (pairs[2 * i] == pairs[2 * (i - 1)]) {
            c->section = section;
            c->index = pairs[2 * i + 1] > pairs[2 * i - 1] ? pairs[2 * i + 1] : pairs[2 * i - 1];
            return lvis_fail(c, "duplicate id %lld", (long long)pairs[2 * i]);
        }
    return 0;
}

static int finish(lvis_ctx *c) {
    lvis_data *d = c->d;
    /* annotation ids unique (reported with the file's record index) */
    int64_t *pairs = malloc((size_t)(d->n_ann ? d->n_ann : 1) * 2 * sizeof *pairs);
    if (!pairs) return lvis_fail(c, "out of memory");
    for (int64_t i = 0; i < d->n_ann; i++) pairs[2 * i] = d->anns[i].id, pairs[2 * i + 1] = d->anns[i].record;
    int bad = check_unique(c, "annotations", pairs, d->n_ann);
    free(pairs);
    if (bad) return -1;
    /* group by image, file order kept (a counting sort) */
    d->ann_order = malloc((size_t)(d->n_ann ? d->n_ann : 1) * sizeof *d->ann_order);
    if (!d->ann_order) return lvis_fail(c, "out of memory");
    for (int i = 0; i < d->n_img; i++) d->imgs[i].n_ann = 0;
    for (int64_t i = 0; i < d->n_ann; i++) d->imgs[d->anns[i].image].n_ann++;
    int64_t at = 0;
    for (int i = 0; i < d->n_img; i++) d->imgs[i].first_ann = at, at += d->imgs[i].n_ann, d->imgs[i].n_ann = 0;
    for (int64_t i = 0; i < d->n_ann; i++) {
        lvis_image *im = &d->imgs[d->anns[i].image];
        d->ann_order[im->first_ann + im->n_ann++] = i;
    }
    /* image and instance counts where the file has none */
    int64_t *inst = calloc((size_t)d->n_cat + 1, sizeof *inst), *imgs = calloc((size_t)d->n_cat + 1, sizeof *imgs);
    int32_t *last = malloc(((size_t)d->n_cat + 1) * sizeof *last);
    if (!inst || !imgs || !last) return free(inst), free(imgs), free(last), lvis_fail(c, "out of memory");
    for (int k = 0; k < d->n_cat; k++) last[k] = -1;
    for (int i = 0; i < d->n_img; i++)
        for (int j = 0; j < d->imgs[i].n_ann; j++) {
            int k = d->anns[d->ann_order[d->imgs[i].first_ann + j]].category;
            inst[k]++;
            if (last[k] != i) last[k] = i, imgs[k]++;
        }
    for (int k = 0; k < d->n_cat; k++) {
        d->cats[k].instances_loaded = inst[k], d->cats[k].images_loaded = imgs[k];
        if (d->cats[k].instance_count < 0) d->cats[k].instance_count = inst[k];
        if (d->cats[k].image_count < 0) d->cats[k].image_count = imgs[k];
    }
    free(inst), free(imgs), free(last);
    return 0;
}

int lvis_parse(lvis_data *d, const char *path, const char *image_root, lvis_mode mode, int threads, int progress,
               char *err, size_t errn) {
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "%s", path);
    snprintf(d->image_root, sizeof d->image_root, "%s", image_root ? image_root : "");
    d->skipped.first_bad_box = d->skipped.first_bad_polygon = -1;
    d->mode = mode;
    json_doc doc;
    if (json_doc_open(&doc, path, err, errn)) return -1;
    lvis_ctx c = {d, &doc, err, errn, NULL, 0};
    double t0 = now_s();
    progress = progress && doc.size >= (64u << 20);
    if (progress) {
        fprintf(stderr, "  reading %s (%.0f MB) ...%s", path, (double)doc.size / 1e6, isatty(2) ? "" : "\n");
        fflush(stderr);
    }
    lvis_caps caps = {0};
    json_span root;
    json_member m[64];
    int n = 0, rc = -1;
    const char *names[3] = {"categories", "images", "annotations"};
    json_span spans[3];
    if (json_root(&doc, &root, err, errn) || json_object_members(&doc, root, m, 64, &n, err, errn)) goto out;
    if (doc.data[root.begin] != '{') {
        lvis_fail(&c, "the top level must be an object with images, annotations and categories");
        goto out;
    }
    for (int s = 0; s < 3; s++) {
        int found = -1;
        for (int i = 0; i < n; i++)
            if (json_key_is(&doc, m[i].key, names[s])) found = i;
        if (found < 0) {
            lvis_fail(&c, "the top-level key '%s' is missing", names[s]);
            goto out;
        }
        spans[s] = m[found].value;
    }
    if (each_record(&c, &caps, spans[0], "categories", category_record) < 0) goto out;
    qsort(d->cats, (size_t)d->n_cat, sizeof *d->cats, cmp_category);
    for (int k = 1; k < d->n_cat; k++)
        if (d->cats[k].id == d->cats[k - 1].id) {
            c.section = NULL;
            lvis_fail(&c, "categories: duplicate id %lld", (long long)d->cats[k].id);
            goto out;
        }
    if (each_record(&c, &caps, spans[1], "images", image_record) < 0) goto out;
    d->img_ids_sorted = malloc((size_t)(d->n_img ? d->n_img : 1) * 2 * sizeof(int64_t));
    if (!d->img_ids_sorted) {
        lvis_fail(&c, "out of memory");
        goto out;
    }
    for (int i = 0; i < d->n_img; i++) d->img_ids_sorted[2 * i] = d->imgs[i].id, d->img_ids_sorted[2 * i + 1] = i;
    if (check_unique(&c, "images", d->img_ids_sorted, d->n_img)) goto out;
    if (parse_annotations(&c, spans[2], threads, progress, t0)) goto out;
    rc = finish(&c);
out:
    if (progress)
        fprintf(stderr, "%s  reading %s: %s in %.1f s\n", isatty(2) ? "\r" : "", path, rc ? "failed" : "done", now_s() - t0);
    json_doc_close(&doc);
    if (rc) lvis_free(d);
    else snprintf(d->path, sizeof d->path, "%s", path);
    return rc;
}

int lvis_load(lvis_data *d, const char *path, const char *image_root, lvis_mode mode, char *err, size_t errn) {
    return lvis_parse(d, path, image_root, mode, 0, 0, err, errn);
}

void lvis_free(lvis_data *d) {
    if (d->map) {
        munmap(d->map, d->map_size);
    } else {
        free(d->cats), free(d->imgs), free(d->anns), free(d->ann_order), free(d->polys), free(d->verts);
        free(d->ann_bbox_d), free(d->verts_d);
        free(d->cat_pool), free(d->strings), free(d->img_ids_sorted);
    }
    char path[1024];
    memcpy(path, d->path, sizeof path);
    memset(d, 0, sizeof *d);
    memcpy(d->path, path, sizeof path);
}

/* lvis.c: the LVIS v1 reader (see lvis.h). Sections are parsed in dependency order
 * (categories, images, annotations) whatever their order in the file, one record at a
 * time; ids are resolved through sorted tables. */
#include "data/lvis.h"

#include "data/json_scan.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lvis_ctx {
    lvis_data *d;
    const json_doc *doc;
    char *err;
    size_t errn;
    const char *image_root;
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

/* Grows *p (elements of `elem` bytes, capacity *cap) to hold `need`; 0 or -1 (no memory). */
static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 0;
    int64_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, (size_t)n * elem);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}
#define GROW(c, ptr, cap, need) \
    (grow((void **)&(ptr), &(cap), (need), sizeof *(ptr)) ? lvis_fail((c), "out of memory") : 0)

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
    char full[2048];
    const char *root = c->image_root ? c->image_root : "";
    if (root[0]) snprintf(full, sizeof full, "%s%s%s", root, root[strlen(root) - 1] == '/' ? "" : "/", rel);
    else snprintf(full, sizeof full, "%s", rel);
    return (*off = add_string(c, caps, full, strlen(full))) < 0 ? -1 : 0;
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

/* ---- annotations ----------------------------------------------------------------------- */

/* Polygons into polys/verts; returns 0, 1 for a degenerate polygon (strict: skip), -1. */
static int polygons(lvis_ctx *c, lvis_caps *caps, const cJSON *o, lvis_ann *a) {
    lvis_data *d = c->d;
    const cJSON *seg = cJSON_GetObjectItemCaseSensitive(o, "segmentation");
    a->poly = d->n_poly, a->n_poly = 0;
    if (!seg) return 0; /* a box-only file */
    if (!cJSON_IsArray(seg)) return lvis_fail(c, "'segmentation' must be a list of polygons");
    int64_t keep_poly = d->n_poly, keep_vert = d->n_vert;
    int degenerate = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, seg) {
        if (!cJSON_IsArray(p)) return lvis_fail(c, "a polygon must be a list of coordinates");
        int n = cJSON_GetArraySize(p);
        if (n % 2 || n < 6) degenerate = 1;
        if (GROW(c, d->polys, caps->polys, d->n_poly + 1) || GROW(c, d->verts, caps->verts, d->n_vert + n)) return -1;
        const cJSON *v;
        int k = 0;
        cJSON_ArrayForEach(v, p) {
            if (!cJSON_IsNumber(v)) return lvis_fail(c, "polygon coordinates must be numbers");
            if (!isfinite(v->valuedouble)) return lvis_fail(c, "a polygon coordinate is not finite");
            d->verts[d->n_vert + k++] = (float)v->valuedouble;
        }
        d->polys[d->n_poly] = (lvis_poly){d->n_vert, n};
        d->n_poly++, d->n_vert += n;
        a->n_poly++;
    }
    if (degenerate && d->mode == LVIS_STRICT) {
        d->n_poly = keep_poly, d->n_vert = keep_vert;
        return 1;
    }
    return 0;
}

static int ann_record(lvis_ctx *c, lvis_caps *caps, const cJSON *o) {
    lvis_data *d = c->d;
    double id, img, cat, area = 0;
    if (get_number(c, o, "id", 1, 1, &id) || get_number(c, o, "image_id", 1, 1, &img) ||
        get_number(c, o, "category_id", 1, 1, &cat))
        return -1;
    int ii = lvis_image_index(d, (int64_t)img), ci = lvis_category_index(d, (int64_t)cat);
    if (ii < 0) return lvis_fail(c, "image_id %.0f is not in images", img);
    if (ci < 0) return lvis_fail(c, "category_id %.0f is not in categories", cat);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bbox");
    if (!cJSON_IsArray(b) || cJSON_GetArraySize(b) != 4) return lvis_fail(c, "'bbox' must be [x, y, w, h]");
    if (get_number(c, o, "area", d->mode == LVIS_OFFICIAL, 0, &area) < 0) return -1;
    if (GROW(c, d->anns, caps->anns, d->n_ann + 1)) return -1;
    lvis_ann *a = &d->anns[d->n_ann];
    memset(a, 0, sizeof *a);
    int k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, b) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return lvis_fail(c, "'bbox' holds a non-finite or non-number value");
        a->bbox[k++] = (float)v->valuedouble;
    }
    a->id = (int64_t)id, a->image = ii, a->category = ci, a->area = area, a->record = c->index;
    if (d->mode == LVIS_STRICT && (a->bbox[2] <= 0 || a->bbox[3] <= 0)) {
        d->skipped.bad_box++;
        return 0;
    }
    int r = polygons(c, caps, o, a);
    if (r < 0) return -1;
    if (r == 1) {
        d->skipped.bad_polygon++;
        return 0;
    }
    d->n_ann++;
    return 0;
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

int lvis_load(lvis_data *d, const char *path, const char *image_root, lvis_mode mode, char *err, size_t errn) {
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "%s", path);
    d->mode = mode;
    json_doc doc;
    if (json_doc_open(&doc, path, err, errn)) return -1;
    lvis_ctx c = {d, &doc, err, errn, image_root, NULL, 0};
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
    if (each_record(&c, &caps, spans[2], "annotations", ann_record) < 0) goto out;
    rc = finish(&c);
out:
    json_doc_close(&doc);
    if (rc) lvis_free(d);
    else snprintf(d->path, sizeof d->path, "%s", path);
    return rc;
}

void lvis_free(lvis_data *d) {
    free(d->cats), free(d->imgs), free(d->anns), free(d->ann_order), free(d->polys), free(d->verts);
    free(d->cat_pool), free(d->strings), free(d->img_ids_sorted);
    char path[1024];
    memcpy(path, d->path, sizeof path);
    memset(d, 0, sizeof *d);
    memcpy(d->path, path, sizeof path);
}

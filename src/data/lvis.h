/* lvis.h: LVIS v1 annotation files read into compact arrays (DESIGN §7,
 * reference/architecture.md §11, reference/lvis_eval.md §1).
 *
 * The file is mapped and scanned record by record (json_scan.h); each record is parsed
 * alone with cJSON, so memory stays near the size of the arrays below, not of a JSON tree.
 * Categories are ordered by LVIS id and indexed 0..C-1 in that order; ids map to indices
 * through the table (lvis_category_index), never as id − 1.
 *
 * Modes:
 *   LVIS_STRICT (training): any structural problem stops with one line naming the file, the
 *     record and the problem ("train.json: annotations[1234]: category_id 9999 is not in
 *     categories"); a degenerate annotation (box width or height <= 0, a polygon with an odd
 *     number of coordinates or fewer than 3 points) is skipped and counted.
 *   LVIS_OFFICIAL (evaluation): keeps every annotation, as lvis-api does; it also requires
 *     what lvis-api requires (both category-id lists on every image, an `area` on every
 *     annotation, annotation ids >= 1) and reads the optional `ignore` flag.
 *
 * Scale (lvis_v1_train.json is 1.1 GB): categories and images are parsed first (a record
 * at a time); the annotations array is split between threads, each parsing its records
 * into its own arrays (polygon coordinates by json_number, the rest by cJSON), merged in
 * file order; duplicate ids are checked after. The result can be written to a binary cache
 * (lvis_cache.c) that later runs map instead of parsing: see lvis_open. */
#ifndef MRC_LVIS_H
#define MRC_LVIS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LVIS_STRICT = 0, LVIS_OFFICIAL } lvis_mode;
typedef enum { LVIS_FREQ_R = 0, LVIS_FREQ_C, LVIS_FREQ_F } lvis_freq;

typedef struct lvis_category {
    int64_t id;
    int64_t name;            /* offset into strings */
    lvis_freq freq;
    int64_t image_count;     /* from the file, or counted from the annotations when absent */
    int64_t instance_count;
    int64_t images_loaded;   /* counted from the annotations kept by this read */
    int64_t instances_loaded;
} lvis_category;

typedef struct lvis_image {
    int64_t id;
    int width, height;
    int64_t path;            /* offset into strings: file_name, else the last two parts of coco_url,
                                relative to the image root (lvis_image_path joins them) */
    int64_t neg, not_exhaustive; /* offsets into cat_pool (category indices) */
    int n_neg, n_not_exhaustive;
    int64_t first_ann;       /* into ann_order: this image's annotations, in file order */
    int n_ann;
} lvis_image;

typedef struct lvis_ann {
    int64_t id;
    int64_t record;          /* its index in the file's annotations array */
    int32_t image, category; /* indices */
    float bbox[4];           /* x, y, w, h in original pixels */
    double area;
    int64_t poly;            /* first polygon in polys */
    int32_t n_poly;          /* 0: a box-only annotation */
    int32_t ignore;          /* official mode: the record's optional `ignore` is truthy */
} lvis_ann;

typedef struct lvis_poly {
    int64_t vert;            /* first coordinate in verts (x0, y0, x1, y1, ...) */
    int64_t n;               /* coordinates (2 per point) */
} lvis_poly;

typedef struct lvis_skips {
    int64_t bad_box, bad_polygon;             /* annotations skipped in strict mode */
    int64_t first_bad_box, first_bad_polygon; /* the first such record's index, or -1 */
} lvis_skips;

typedef struct lvis_data {
    char path[1024];
    char image_root[1024];   /* joined to each image's path ("" for none) */
    lvis_mode mode;
    int n_cat, n_img;
    int64_t n_ann, n_poly, n_vert, n_cat_pool;
    lvis_category *cats;     /* by id */
    lvis_image *imgs;        /* file order */
    lvis_ann *anns;          /* file order (skipped ones left out) */
    int64_t *ann_order;      /* annotation indices grouped by image */
    lvis_poly *polys;
    float *verts;
    int32_t *cat_pool;
    char *strings;
    size_t n_strings;
    int64_t *img_ids_sorted; /* (id, index) pairs for lookups: [2 * n_img] */
    /* official mode only (NULL in strict mode): the JSON's doubles, which the evaluator
     * needs for exact agreement with lvis-api (floats change box IoUs and the rasteriser's
     * rounding at x * 5 + 0.5 edges) */
    double *ann_bbox_d;      /* [4 * n_ann] each annotation's bbox x, y, w, h */
    double *verts_d;         /* [n_vert] the polygon coordinates, same offsets as verts */
    lvis_skips skipped;
    void *map;               /* non-NULL: the arrays point into this mapped cache file */
    size_t map_size;
    int from_cache;          /* 1: this read mapped a cache; 0: it parsed the JSON */
} lvis_data;

typedef enum {
    LVIS_CACHE_AUTO = 0, /* use and write a cache for files of 8 MiB or more */
    LVIS_CACHE_ON,       /* whatever the size */
    LVIS_CACHE_OFF,
} lvis_cache_policy;

typedef struct lvis_options {
    const char *image_root; /* NULL or "": image paths as in the file */
    lvis_mode mode;
    int threads;            /* annotation parse threads; 0: the online CPUs, at most 8 */
    lvis_cache_policy cache;
    const char *cache_dir;  /* NULL: $MRC_CACHE_DIR, else $XDG_CACHE_HOME/maskrcnn.c, else ~/.cache/maskrcnn.c */
    int progress;           /* 1: report progress on stderr while a big file (64 MiB+) is parsed */
} lvis_options;

/* Reads PATH: maps its cache when one matches the source (same size and mtime, same mode,
 * same version), else parses the JSON and, by the cache policy, writes the cache (a
 * failure to write is reported on stderr and is not an error). A stale or corrupt cache is
 * reported on stderr and rebuilt. 0, or -1 with one line in err and *d freed. */
int lvis_open(lvis_data *d, const char *path, const lvis_options *o, char *err, size_t errn);
/* Parses PATH without any cache (threads: as lvis_options). */
int lvis_load(lvis_data *d, const char *path, const char *image_root, lvis_mode mode, char *err, size_t errn);
void lvis_free(lvis_data *d);

/* Where the cache of PATH in this mode lives (see lvis_options.cache_dir); 0 or -1. */
int lvis_cache_path(const char *path, lvis_mode mode, const char *cache_dir, char *out, size_t n);
/* Every index in d in range (categories, pools, images, annotations, polygons), so that a
 * damaged cache cannot send a reader out of bounds; 0, or -1 with the first problem in why. */
int lvis_check(const lvis_data *d, char *why, size_t whyn);
/* Image i's full path (the image root joined to its relative path) in buf; returns buf. */
const char *lvis_image_path(const lvis_data *d, int i, char *buf, size_t n);
/* One line for the log when this read skipped annotations ("" when none), e.g.
 * "train.json: skipped 3 of 1270141 annotations: 2 with box w or h <= 0 (first:
 * annotations[17]), 1 with a bad polygon (first: annotations[99])". */
const char *lvis_skip_summary(const lvis_data *d, char *buf, size_t n);

/* Index of the category with LVIS id `id`, or -1. */
int lvis_category_index(const lvis_data *d, int64_t id);
/* Index of the image with id `id`, or -1. */
int lvis_image_index(const lvis_data *d, int64_t id);
/* Parse into d (no cache); threads as lvis_options (used by lvis_open and lvis_load). */
int lvis_parse(lvis_data *d, const char *path, const char *image_root, lvis_mode mode, int threads, int progress,
               char *err, size_t errn);
static inline const char *lvis_string(const lvis_data *d, int64_t off) { return d->strings + off; }

#ifdef __cplusplus
}
#endif
#endif

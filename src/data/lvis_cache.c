/* lvis_cache.c: the binary cache of a parsed LVIS file, and lvis_open (see lvis.h).
 *
 * File layout (little-endian, the host's struct layout; version and struct sizes in the
 * header, so a build with another layout rebuilds instead of misreading):
 *   header (struct cache_header, 512 bytes)
 *   11 sections, each at a 64-byte aligned offset: cats, imgs, anns, ann_order, polys,
 *   verts, cat_pool, strings, img_ids_sorted, and in official mode ann_bbox_d and verts_d
 *   (empty in strict mode) — exactly the arrays of lvis_data, so a later
 *   run maps the file and points lvis_data into it (nothing is parsed or copied).
 * A cache is used only when its header names the same source size and mtime, the same
 * mode, version and layout; then its checksum (every section but the polygon coordinates,
 * float and double, which are most of the bytes) and every index in it are checked, so a damaged cache is
 * reported and rebuilt, never followed out of bounds. Written to a temporary name and
 * renamed, so a reader never sees half a cache. */
#include "data/lvis.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "MRCLVIS\x1a"
#define CACHE_VERSION 2u
#define CACHE_ENDIAN 0x01020304u
#define CACHE_SECTIONS 11
#define CACHE_ALIGN 64
#define CACHE_AUTO_BYTES (8ll << 20)

typedef struct cache_header {
    char magic[8];
    uint32_t version, endian, mode, header_bytes;
    uint32_t struct_bytes[4]; /* lvis_category, lvis_image, lvis_ann, lvis_poly */
    uint64_t source_size;
    int64_t source_mtime_s, source_mtime_ns;
    int64_t n_cat, n_img, n_ann, n_poly, n_vert, n_cat_pool, n_strings;
    lvis_skips skipped;
    uint64_t offset[CACHE_SECTIONS], bytes[CACHE_SECTIONS];
    uint64_t file_bytes;
    uint64_t checksum; /* of the header (this field 0) and every section but verts */
    char pad[512 - 8 - 4 * 4 - 4 * 4 - 8 * 3 - 8 * 7 - sizeof(lvis_skips) - 8 * 2 * CACHE_SECTIONS - 8 * 2];
} cache_header;
_Static_assert(sizeof(cache_header) == 512, "the cache header is 512 bytes");

enum { S_CATS, S_IMGS, S_ANNS, S_ORDER, S_POLYS, S_VERTS, S_POOL, S_STRINGS, S_IDS, S_BBOX_D, S_VERTS_D };

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    /* 64-bit words, multiply-xor (FNV-like); fast enough for ~100 MB in tens of ms */
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The arrays of d as sections: pointer and byte count. */
static void sections(const lvis_data *d, const void **ptr, uint64_t *bytes) {
    ptr[S_CATS] = d->cats, bytes[S_CATS] = (uint64_t)d->n_cat * sizeof *d->cats;
    ptr[S_IMGS] = d->imgs, bytes[S_IMGS] = (uint64_t)d->n_img * sizeof *d->imgs;
    ptr[S_ANNS] = d->anns, bytes[S_ANNS] = (uint64_t)d->n_ann * sizeof *d->anns;
    ptr[S_ORDER] = d->ann_order, bytes[S_ORDER] = (uint64_t)d->n_ann * sizeof *d->ann_order;
    ptr[S_POLYS] = d->polys, bytes[S_POLYS] = (uint64_t)d->n_poly * sizeof *d->polys;
    ptr[S_VERTS] = d->verts, bytes[S_VERTS] = (uint64_t)d->n_vert * sizeof *d->verts;
    ptr[S_POOL] = d->cat_pool, bytes[S_POOL] = (uint64_t)d->n_cat_pool * sizeof *d->cat_pool;
    ptr[S_STRINGS] = d->strings, bytes[S_STRINGS] = (uint64_t)d->n_strings;
    ptr[S_IDS] = d->img_ids_sorted, bytes[S_IDS] = (uint64_t)d->n_img * 2 * sizeof *d->img_ids_sorted;
    int off = d->mode == LVIS_OFFICIAL; /* the doubles exist in official mode only */
    ptr[S_BBOX_D] = d->ann_bbox_d, bytes[S_BBOX_D] = off ? (uint64_t)d->n_ann * 4 * sizeof(double) : 0;
    ptr[S_VERTS_D] = d->verts_d, bytes[S_VERTS_D] = off ? (uint64_t)d->n_vert * sizeof(double) : 0;
}

static uint64_t checksum(const cache_header *h, const void *const *ptr) {
    cache_header c = *h;
    c.checksum = 0;
    uint64_t x = hash_bytes(0xcbf29ce484222325ull, &c, sizeof c);
    for (int s = 0; s < CACHE_SECTIONS; s++)
        if (s != S_VERTS && s != S_VERTS_D && h->bytes[s]) x = hash_bytes(x, ptr[s], h->bytes[s]);
    return x;
}

static void header_from(cache_header *h, const lvis_data *d, const struct stat *src) {
    memset(h, 0, sizeof *h);
    memcpy(h->magic, CACHE_MAGIC, 8);
    h->version = CACHE_VERSION, h->endian = CACHE_ENDIAN, h->mode = (uint32_t)d->mode;
    h->header_bytes = sizeof *h;
    h->struct_bytes[0] = sizeof(lvis_category), h->struct_bytes[1] = sizeof(lvis_image);
    h->struct_bytes[2] = sizeof(lvis_ann), h->struct_bytes[3] = sizeof(lvis_poly);
    h->source_size = (uint64_t)src->st_size;
    h->source_mtime_s = (int64_t)src->st_mtim.tv_sec, h->source_mtime_ns = (int64_t)src->st_mtim.tv_nsec;
    h->n_cat = d->n_cat, h->n_img = d->n_img, h->n_ann = d->n_ann, h->n_poly = d->n_poly;
    h->n_vert = d->n_vert, h->n_cat_pool = d->n_cat_pool, h->n_strings = (int64_t)d->n_strings;
    h->skipped = d->skipped;
}

int lvis_cache_path(const char *path, lvis_mode mode, const char *cache_dir, char *out, size_t n) {
    char dir[PATH_MAX], real[PATH_MAX];
    const char *env;
    if (cache_dir && cache_dir[0]) snprintf(dir, sizeof dir, "%s", cache_dir);
    else if ((env = getenv("MRC_CACHE_DIR")) && env[0]) snprintf(dir, sizeof dir, "%s", env);
    else if ((env = getenv("XDG_CACHE_HOME")) && env[0]) snprintf(dir, sizeof dir, "%s/maskrcnn.c", env);
    else if ((env = getenv("HOME")) && env[0]) snprintf(dir, sizeof dir, "%s/.cache/maskrcnn.c", env);
    else return -1;
    if (!realpath(path, real)) return -1;
    const char *base = strrchr(real, '/');
    base = base ? base + 1 : real;
    uint64_t h = hash_bytes(0xcbf29ce484222325ull, real, strlen(real));
    int w = snprintf(out, n, "%s/%s.%016llx.%s.lvcache", dir, base, (unsigned long long)h,
                     mode == LVIS_OFFICIAL ? "official" : "strict");
    return w > 0 && (size_t)w < n ? 0 : -1;
}

/* mkdir -p of the directory part of file. */
static int make_dirs(const char *file) {
    char p[PATH_MAX + 128];
    snprintf(p, sizeof p, "%s", file);
    char *slash = strrchr(p, '/');
    if (!slash || slash == p) return 0;
    *slash = 0;
    for (char *q = p + 1; *q; q++)
        if (*q == '/') {
            *q = 0;
            if (mkdir(p, 0755) && errno != EEXIST) return -1;
            *q = '/';
        }
    return mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
}

/* Writes d's cache; 0, or -1 with the reason in why. */
static int cache_write(const lvis_data *d, const char *cache, const struct stat *src, char *why, size_t whyn) {
    cache_header h;
    header_from(&h, d, src);
    const void *ptr[CACHE_SECTIONS];
    uint64_t at = sizeof h;
    sections(d, ptr, h.bytes);
    for (int s = 0; s < CACHE_SECTIONS; s++) {
        at = (at + CACHE_ALIGN - 1) / CACHE_ALIGN * CACHE_ALIGN;
        h.offset[s] = at;
        at += h.bytes[s];
    }
    h.file_bytes = at;
    h.checksum = checksum(&h, ptr);
    char tmp[PATH_MAX + 128];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", cache, (long)getpid());
    if (make_dirs(cache)) return snprintf(why, whyn, "cannot create its directory: %s", strerror(errno)), -1;
    FILE *f = fopen(tmp, "wb");
    if (!f) return snprintf(why, whyn, "cannot create a temporary file beside it: %s", strerror(errno)), -1;
    static const char zeros[CACHE_ALIGN] = {0};
    int ok = fwrite(&h, sizeof h, 1, f) == 1;
    uint64_t pos = sizeof h;
    for (int s = 0; s < CACHE_SECTIONS && ok; s++) {
        ok = fwrite(zeros, 1, h.offset[s] - pos, f) == h.offset[s] - pos;
        if (ok && h.bytes[s]) ok = fwrite(ptr[s], 1, h.bytes[s], f) == h.bytes[s];
        pos = h.offset[s] + h.bytes[s];
    }
    int saved = errno;
    if (fclose(f)) ok = 0, saved = errno;
    if (!ok || rename(tmp, cache)) {
        if (ok) saved = errno;
        unlink(tmp);
        return snprintf(why, whyn, "cannot write it: %s", strerror(saved)), -1;
    }
    return 0;
}

#define BAD(...) return snprintf(why, whyn, __VA_ARGS__), -1

int lvis_check(const lvis_data *d, char *why, size_t whyn) {
    if (d->n_strings && d->strings[d->n_strings - 1] != 0) BAD("the string table is not terminated");
    for (int k = 0; k < d->n_cat; k++)
        if (d->cats[k].name < 0 || d->cats[k].name >= (int64_t)d->n_strings || (unsigned)d->cats[k].freq > 2)
            BAD("categories[%d] is damaged", k);
    for (int64_t i = 0; i < d->n_cat_pool; i++)
        if (d->cat_pool[i] < 0 || d->cat_pool[i] >= d->n_cat) BAD("the category list pool is damaged");
    for (int i = 0; i < d->n_img; i++) {
        const lvis_image *im = &d->imgs[i];
        if (im->path < 0 || im->path >= (int64_t)d->n_strings || im->neg < 0 || im->n_neg < 0 ||
            im->neg + im->n_neg > d->n_cat_pool || im->not_exhaustive < 0 || im->n_not_exhaustive < 0 ||
            im->not_exhaustive + im->n_not_exhaustive > d->n_cat_pool || im->first_ann < 0 || im->n_ann < 0 ||
            im->first_ann + im->n_ann > d->n_ann)
            BAD("images[%d] is damaged", i);
        if (d->img_ids_sorted[2 * i + 1] < 0 || d->img_ids_sorted[2 * i + 1] >= d->n_img) BAD("the image id table is damaged");
    }
    for (int64_t i = 0; i < d->n_ann; i++) {
        const lvis_ann *a = &d->anns[i];
        if (a->image < 0 || a->image >= d->n_img || a->category < 0 || a->category >= d->n_cat || a->poly < 0 ||
            a->n_poly < 0 || a->poly + a->n_poly > d->n_poly)
            BAD("annotations[%lld] is damaged", (long long)i);
        if (d->ann_order[i] < 0 || d->ann_order[i] >= d->n_ann) BAD("the per-image annotation order is damaged");
    }
    for (int64_t i = 0; i < d->n_poly; i++)
        if (d->polys[i].vert < 0 || d->polys[i].n < 0 || d->polys[i].vert + d->polys[i].n > d->n_vert)
            BAD("polygon %lld is damaged", (long long)i);
    return 0;
}

/* Maps the cache into d: 0; 1 when there is none; 2 when it is stale (another source
 * size or mtime, mode, version or layout); -1 when it is damaged (why says how). */
static int cache_map(lvis_data *d, const char *cache, const struct stat *src, lvis_mode mode, char *why, size_t whyn) {
    int fd = open(cache, O_RDONLY);
    if (fd < 0) return errno == ENOENT ? 1 : (snprintf(why, whyn, "cannot open it: %s", strerror(errno)), -1);
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) return close(fd), snprintf(why, whyn, "not a regular file"), -1;
    if ((uint64_t)st.st_size < sizeof(cache_header))
        return close(fd), snprintf(why, whyn, "truncated (%lld bytes)", (long long)st.st_size), -1;
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) BAD("cannot map it: %s", strerror(errno));
    const cache_header *h = map;
    cache_header want;
    lvis_data shape = {0};
    shape.mode = mode;
    header_from(&want, &shape, src);
    int rc = 0;
    if (memcmp(h->magic, CACHE_MAGIC, 8) || h->endian != CACHE_ENDIAN || h->header_bytes != sizeof *h)
        rc = -1, snprintf(why, whyn, "not a maskrcnn.c LVIS cache (bad magic)");
    else if (h->version != want.version || memcmp(h->struct_bytes, want.struct_bytes, sizeof want.struct_bytes) ||
             h->mode != want.mode)
        rc = 2, snprintf(why, whyn, "written by another version of maskrcnn.c");
    else if (h->source_size != want.source_size || h->source_mtime_s != want.source_mtime_s ||
             h->source_mtime_ns != want.source_mtime_ns)
        rc = 2, snprintf(why, whyn, "the source changed since it was written");
    else if (h->file_bytes != (uint64_t)st.st_size)
        rc = -1, snprintf(why, whyn, "truncated or padded (%lld bytes, the header says %llu)", (long long)st.st_size,
                          (unsigned long long)h->file_bytes);
    if (rc) return munmap(map, (size_t)st.st_size), rc;
    /* counts, then the sections they imply */
    memset(d, 0, sizeof *d);
    d->mode = mode;
    if (h->n_cat < 0 || h->n_cat > INT_MAX || h->n_img < 0 || h->n_img > INT_MAX || h->n_ann < 0 || h->n_poly < 0 ||
        h->n_vert < 0 || h->n_cat_pool < 0 || h->n_strings < 0)
        rc = -1, snprintf(why, whyn, "damaged header (negative counts)");
    d->n_cat = (int)h->n_cat, d->n_img = (int)h->n_img, d->n_ann = h->n_ann, d->n_poly = h->n_poly;
    d->n_vert = h->n_vert, d->n_cat_pool = h->n_cat_pool, d->n_strings = (size_t)h->n_strings;
    const void *ptr[CACHE_SECTIONS];
    uint64_t bytes[CACHE_SECTIONS];
    sections(d, ptr, bytes);
    for (int s = 0; s < CACHE_SECTIONS && !rc; s++)
        if (h->bytes[s] != bytes[s] || h->offset[s] % CACHE_ALIGN || h->offset[s] < sizeof *h ||
            h->offset[s] > h->file_bytes || h->bytes[s] > h->file_bytes - h->offset[s])
            rc = -1, snprintf(why, whyn, "damaged header (section %d)", s);
    if (rc) return munmap(map, (size_t)st.st_size), memset(d, 0, sizeof *d), rc;
    char *base = map;
    d->cats = (lvis_category *)(base + h->offset[S_CATS]);
    d->imgs = (lvis_image *)(base + h->offset[S_IMGS]);
    d->anns = (lvis_ann *)(base + h->offset[S_ANNS]);
    d->ann_order = (int64_t *)(base + h->offset[S_ORDER]);
    d->polys = (lvis_poly *)(base + h->offset[S_POLYS]);
    d->verts = (float *)(base + h->offset[S_VERTS]);
    d->cat_pool = (int32_t *)(base + h->offset[S_POOL]);
    d->strings = base + h->offset[S_STRINGS];
    d->img_ids_sorted = (int64_t *)(base + h->offset[S_IDS]);
    if (mode == LVIS_OFFICIAL) {
        d->ann_bbox_d = (double *)(base + h->offset[S_BBOX_D]);
        d->verts_d = (double *)(base + h->offset[S_VERTS_D]);
    }
    d->skipped = h->skipped;
    sections(d, ptr, bytes);
    if (checksum(h, ptr) != h->checksum) rc = -1, snprintf(why, whyn, "damaged (checksum mismatch)");
    else rc = lvis_check(d, why, whyn);
    if (rc) return munmap(map, (size_t)st.st_size), memset(d, 0, sizeof *d), rc;
    d->map = map, d->map_size = (size_t)st.st_size, d->from_cache = 1;
    return 0;
}

int lvis_open(lvis_data *d, const char *path, const lvis_options *o, char *err, size_t errn) {
    lvis_options def = {0};
    if (!o) o = &def;
    struct stat st;
    char cache[PATH_MAX + 64] = "", why[256] = "";
    int use = 0;
    if (o->cache != LVIS_CACHE_OFF && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        (o->cache == LVIS_CACHE_ON || st.st_size >= CACHE_AUTO_BYTES))
        use = lvis_cache_path(path, o->mode, o->cache_dir, cache, sizeof cache) == 0;
    if (use) {
        int r = cache_map(d, cache, &st, o->mode, why, sizeof why);
        if (r == 0) {
            snprintf(d->path, sizeof d->path, "%s", path);
            snprintf(d->image_root, sizeof d->image_root, "%s", o->image_root ? o->image_root : "");
            return 0;
        }
        if (r == 2) fprintf(stderr, "note: the cache %s of %s is out of date (%s); rebuilding it\n", cache, path, why);
        if (r < 0) fprintf(stderr, "warning: the cache %s of %s is unusable (%s); rebuilding it\n", cache, path, why);
    }
    if (lvis_parse(d, path, o->image_root, o->mode, o->threads, o->progress, err, errn)) return -1;
    if (use && cache_write(d, cache, &st, why, sizeof why))
        fprintf(stderr, "warning: cannot write the cache %s of %s (%s); the next run parses the file again\n", cache,
                path, why);
    return 0;
}

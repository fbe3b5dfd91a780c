/* safetensors.c: the safetensors reader (see safetensors.h for the format and the checks). */
#include "safetensors.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads little-endian data in place: a big-endian host needs byte swaps"
#endif

/* JSON numbers are doubles: integers above 2^53 cannot be told apart, so none is accepted. */
#define ST_MAX_JSON_INT 9007199254740992.0

/* Where an error goes: the file it is about and the caller's buffer. */
typedef struct st_errctx {
    const char *path;
    char *err;
    size_t errn;
} st_errctx;

/* "PATH: message (tensor NAME)"; name may be NULL. Always returns -1. */
static int st_fail(const st_errctx *e, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int st_fail(const st_errctx *e, const char *name, const char *fmt, ...) {
    if (!e->err || e->errn == 0) return -1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (name) snprintf(e->err, e->errn, "%s: %s (tensor %.300s)", e->path, msg, name);
    else snprintf(e->err, e->errn, "%s: %s", e->path, msg);
    return -1;
}

/* The safetensors dtype names the project can hold, and the ones it knows but cannot. */
static int st_parse_dtype(const char *s, dtype *out) {
    static const struct { const char *name; dtype t; } known[] = {
        {"F32", DTYPE_F32}, {"F64", DTYPE_F64}, {"BF16", DTYPE_BF16}, {"I32", DTYPE_I32}, {"U8", DTYPE_U8},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(s, known[i].name) == 0) {
            *out = known[i].t;
            return 0;
        }
    return -1;
}

static const char *st_dtype_str(dtype t) {
    switch (t) {
    case DTYPE_F32: return "F32";
    case DTYPE_F64: return "F64";
    case DTYPE_BF16: return "BF16";
    case DTYPE_I32: return "I32";
    case DTYPE_U8: return "U8";
    default: return "?";
    }
}

/* A JSON number that is a non-negative integer no larger than max. */
static int st_json_uint(const cJSON *v, double max, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= max) || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int st_parse_shape(const st_errctx *e, const char *name, const cJSON *js, st_tensor *t) {
    if (!cJSON_IsArray(js)) return st_fail(e, name, "\"shape\" is missing or not an array");
    int nd = cJSON_GetArraySize(js);
    if (nd > TENSOR_MAX_DIMS)
        return st_fail(e, name, "shape has %d dimensions, at most %d are supported", nd, TENSOR_MAX_DIMS);
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, js) {
        uint64_t v;
        if (st_json_uint(d, (double)INT_MAX, &v) != 0)
            return st_fail(e, name, "shape entry %d is not an integer in [0, %d]", i, INT_MAX);
        t->shape[i++] = (int)v;
    }
    t->ndim = nd;
    if (nd == 0) { /* a scalar */
        t->ndim = 1;
        t->shape[0] = 1;
    }
    return 0;
}

/* data_offsets [begin, end] inside the data section, matching numel · dtype size. */
static int st_parse_offsets(const st_errctx *e, const char *name, const cJSON *js, size_t data_bytes,
                            st_tensor *t) {
    uint64_t be[2];
    if (!cJSON_IsArray(js) || cJSON_GetArraySize(js) != 2 ||
        st_json_uint(cJSON_GetArrayItem(js, 0), ST_MAX_JSON_INT, &be[0]) != 0 ||
        st_json_uint(cJSON_GetArrayItem(js, 1), ST_MAX_JSON_INT, &be[1]) != 0)
        return st_fail(e, name, "\"data_offsets\" is missing or not two non-negative integers");
    if (be[0] > be[1])
        return st_fail(e, name, "data_offsets [%llu, %llu] end before they begin",
                       (unsigned long long)be[0], (unsigned long long)be[1]);
    if (be[1] > data_bytes)
        return st_fail(e, name, "data_offsets [%llu, %llu] run past the data section (%zu bytes)",
                       (unsigned long long)be[0], (unsigned long long)be[1], data_bytes);
    size_t need = dtype_size(t->dtype);
    int overflow = 0;
    for (int i = 0; i < t->ndim; i++) overflow |= __builtin_mul_overflow(need, (size_t)t->shape[i], &need);
    if (overflow || be[1] - be[0] != need) {
        char shp[64];
        int k = snprintf(shp, sizeof shp, "[");
        for (int i = 0; i < t->ndim && k < (int)sizeof shp; i++)
            k += snprintf(shp + k, sizeof shp - (size_t)k, "%s%d", i ? "," : "", t->shape[i]);
        if (k < (int)sizeof shp) snprintf(shp + k, sizeof shp - (size_t)k, "]");
        if (overflow)
            return st_fail(e, name, "shape %s of %s needs more bytes than a size_t holds", shp,
                           st_dtype_str(t->dtype));
        return st_fail(e, name, "data_offsets [%llu, %llu] hold %llu bytes but %s %s needs %zu",
                       (unsigned long long)be[0], (unsigned long long)be[1],
                       (unsigned long long)(be[1] - be[0]), st_dtype_str(t->dtype), shp, need);
    }
    t->offset = (size_t)be[0];
    t->bytes = (size_t)(be[1] - be[0]);
    return 0;
}

static int st_parse_entry(const st_errctx *e, const cJSON *js, size_t data_bytes, st_tensor *t) {
    const char *name = js->string;
    if (!name[0]) return st_fail(e, NULL, "a tensor has an empty name");
    if (strlen(name) >= ST_NAME_MAX) {
        char head[64];
        snprintf(head, sizeof head, "%.48s...", name);
        return st_fail(e, head, "name is longer than %d bytes", ST_NAME_MAX - 1);
    }
    memcpy(t->name, name, strlen(name) + 1);
    if (!cJSON_IsObject(js)) return st_fail(e, name, "entry is not a JSON object");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(js, "dtype");
    if (!cJSON_IsString(dt)) return st_fail(e, name, "\"dtype\" is missing or not a string");
    if (st_parse_dtype(dt->valuestring, &t->dtype) != 0)
        return st_fail(e, name, "dtype %.40s is not supported (F32, F64, BF16, I32, U8 are)", dt->valuestring);
    if (st_parse_shape(e, name, cJSON_GetObjectItemCaseSensitive(js, "shape"), t) != 0) return -1;
    return st_parse_offsets(e, name, cJSON_GetObjectItemCaseSensitive(js, "data_offsets"), data_bytes, t);
}

static int st_parse_metadata(const st_errctx *e, const cJSON *js, safetensors *st) {
    if (!cJSON_IsObject(js)) return st_fail(e, NULL, "\"__metadata__\" is not a JSON object");
    if (st->meta_keys) return st_fail(e, NULL, "\"__metadata__\" appears twice in the header");
    int n = cJSON_GetArraySize(js);
    st->meta_keys = calloc((size_t)n + 1, sizeof *st->meta_keys);
    st->meta_values = calloc((size_t)n + 1, sizeof *st->meta_values);
    if (!st->meta_keys || !st->meta_values) return st_fail(e, NULL, "out of memory for the metadata");
    const cJSON *kv;
    cJSON_ArrayForEach(kv, js) {
        if (!cJSON_IsString(kv))
            return st_fail(e, NULL, "metadata value of key '%.100s' is not a string", kv->string);
        st->meta_keys[st->meta_count] = strdup(kv->string);
        st->meta_values[st->meta_count] = strdup(kv->valuestring);
        st->meta_count++;
        if (!st->meta_keys[st->meta_count - 1] || !st->meta_values[st->meta_count - 1])
            return st_fail(e, NULL, "out of memory for the metadata");
    }
    return 0;
}

static int st_cmp_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* A tensor's place in the data section, for the overlap check. */
typedef struct st_span {
    size_t offset;
    int index;
} st_span;

static int st_cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->index - y->index;
}

/* Unique names (tensors sorted by name) and no two tensors sharing a byte. */
static int st_check_layout(const st_errctx *e, const safetensors *st) {
    for (int i = 1; i < st->count; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return st_fail(e, st->tensors[i].name, "the name appears twice in the header");
    st_span *spans = malloc(((size_t)st->count + 1) * sizeof *spans);
    if (!spans) return st_fail(e, NULL, "out of memory for %d tensors", st->count);
    int n = 0;
    for (int i = 0; i < st->count; i++)
        if (st->tensors[i].bytes > 0) /* an empty tensor overlaps nothing */
            spans[n++] = (st_span){st->tensors[i].offset, i};
    qsort(spans, (size_t)n, sizeof *spans, st_cmp_span);
    int rc = 0;
    for (int k = 1; k < n && rc == 0; k++) {
        const st_tensor *p = &st->tensors[spans[k - 1].index], *t = &st->tensors[spans[k].index];
        if (t->offset < p->offset + p->bytes)
            rc = st_fail(e, t->name, "bytes [%zu, %zu) overlap those of tensor %s [%zu, %zu)", t->offset,
                         t->offset + t->bytes, p->name, p->offset, p->offset + p->bytes);
    }
    free(spans);
    return rc;
}

/* Parses the JSON header at st->map + 8 (hlen bytes) into st's tensors and metadata. */
static int st_parse_header(const st_errctx *e, safetensors *st, size_t hlen) {
    const char *h = (const char *)st->map + 8, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= h && end <= h + hlen ? (size_t)(end - h) : 0;
        return st_fail(e, NULL, "header is not valid JSON (parse error near byte %zu of %zu)", at, hlen);
    }
    int rc = 0;
    for (const char *p = end; p < h + hlen && rc == 0; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0')
            rc = st_fail(e, NULL, "unexpected bytes after the JSON header, at byte %zu of %zu",
                         (size_t)(p - h), hlen);
    if (rc == 0 && !cJSON_IsObject(root)) rc = st_fail(e, NULL, "header is not a JSON object");
    int n = 0;
    const cJSON *it;
    if (rc == 0) cJSON_ArrayForEach(it, root) n += strcmp(it->string, "__metadata__") != 0;
    if (rc == 0 && !(st->tensors = calloc((size_t)n + 1, sizeof *st->tensors)))
        rc = st_fail(e, NULL, "out of memory for %d tensors", n);
    if (rc == 0) {
        cJSON_ArrayForEach(it, root) {
            if (strcmp(it->string, "__metadata__") == 0) rc = st_parse_metadata(e, it, st);
            else rc = st_parse_entry(e, it, st->data_bytes, &st->tensors[st->count++]);
            if (rc != 0) break;
        }
    }
    cJSON_Delete(root);
    if (rc != 0) return rc;
    qsort(st->tensors, (size_t)st->count, sizeof *st->tensors, st_cmp_name);
    return st_check_layout(e, st);
}

/* Maps the file read-only into st->map / st->map_bytes. */
static int st_map(const st_errctx *e, safetensors *st, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return st_fail(e, NULL, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int rc = st_fail(e, NULL, "not a regular file");
        close(fd);
        return rc;
    }
    if (sb.st_size < 8) {
        close(fd);
        return st_fail(e, NULL, "file is %lld bytes, shorter than the 8-byte header length",
                       (long long)sb.st_size);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (m == MAP_FAILED) return st_fail(e, NULL, "cannot map %lld bytes: %s", (long long)sb.st_size, strerror(saved));
    st->map = m;
    st->map_bytes = (size_t)sb.st_size;
    return 0;
}

int safetensors_open(safetensors *st, const char *path, char *err, size_t errn) {
    memset(st, 0, sizeof *st);
    st_errctx e = {path, err, errn};
    if (errn) err[0] = 0;
    if (strlen(path) >= sizeof st->path) return st_fail(&e, NULL, "path is too long");
    snprintf(st->path, sizeof st->path, "%s", path);
    if (st_map(&e, st, path) != 0) return -1;
    uint64_t hlen;
    memcpy(&hlen, st->map, 8);
    if (hlen > st->map_bytes - 8) {
        st_fail(&e, NULL, "header length %llu runs past the end of the file (%zu bytes after the length field)",
                (unsigned long long)hlen, st->map_bytes - 8);
        safetensors_close(st);
        return -1;
    }
    st->data = st->map + 8 + hlen;
    st->data_bytes = st->map_bytes - 8 - (size_t)hlen;
    if (st_parse_header(&e, st, (size_t)hlen) != 0) {
        safetensors_close(st);
        return -1;
    }
    return 0;
}

void safetensors_close(safetensors *st) {
    if (st->map) munmap((void *)st->map, st->map_bytes);
    for (int i = 0; i < st->meta_count; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->tensors);
    memset(st, 0, sizeof *st);
}

const st_tensor *safetensors_find(const safetensors *st, const char *name) {
    int lo = 0, hi = st->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->tensors[mid].name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const void *safetensors_data(const safetensors *st, const st_tensor *t) { return st->data + t->offset; }

const char *safetensors_meta(const safetensors *st, const char *key) {
    for (int i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

int safetensors_read(const safetensors *st, const char *name, tensor *dst, char *err, size_t errn) {
    st_errctx e = {st->path, err, errn};
    const st_tensor *t = safetensors_find(st, name);
    if (!t) return st_fail(&e, name, "no such tensor in the file");
    char want[128];
    tensor_str(dst, want, sizeof want);
    tensor got = tensor_view(NULL, t->dtype, DEVICE_CPU, t->shape, t->ndim);
    if (dst->device != DEVICE_CPU) return st_fail(&e, name, "destination %s is not on the CPU", want);
    if (got.dtype != dst->dtype || !tensor_same_shape(&got, dst)) {
        char have[128];
        return st_fail(&e, name, "file holds %s, expected %s", tensor_str(&got, have, sizeof have), want);
    }
    if (t->bytes) memcpy(dst->data, safetensors_data(st, t), t->bytes);
    return 0;
}

/* ---- writing ---------------------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += w, n -= (size_t)w;
    }
    return 0;
}

int safetensors_write(const char *path, const st_entry *e, int n, const char *const *meta_keys,
                      const char *const *meta_values, int n_meta, char *err, size_t errn) {
    cJSON *h = cJSON_CreateObject();
    if (!h) return mrc_fail(err, errn, "%s: out of memory", path);
    if (n_meta) {
        cJSON *m = cJSON_AddObjectToObject(h, "__metadata__");
        for (int i = 0; i < n_meta; i++) cJSON_AddStringToObject(m, meta_keys[i], meta_values[i]);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (!e[i].name || !e[i].name[0] || strlen(e[i].name) >= ST_NAME_MAX || !strcmp(e[i].name, "__metadata__"))
            return cJSON_Delete(h), mrc_fail(err, errn, "%s: tensor %d has an empty, reserved or too long name", path, i);
        if (cJSON_GetObjectItemCaseSensitive(h, e[i].name))
            return cJSON_Delete(h), mrc_fail(err, errn, "%s: two tensors named %s", path, e[i].name);
        if (e[i].ndim < 1 || e[i].ndim > TENSOR_MAX_DIMS || !strcmp(st_dtype_str(e[i].dtype), "?"))
            return cJSON_Delete(h), mrc_fail(err, errn, "%s: tensor %s has a bad shape or dtype", path, e[i].name);
        uint64_t bytes = dtype_size(e[i].dtype);
        cJSON *t = cJSON_AddObjectToObject(h, e[i].name), *shape = cJSON_AddArrayToObject(t, "shape");
        cJSON_AddStringToObject(t, "dtype", st_dtype_str(e[i].dtype));
        for (int d = 0; d < e[i].ndim; d++) {
            if (e[i].shape[d] < 0) return cJSON_Delete(h), mrc_fail(err, errn, "%s: tensor %s has a negative dimension", path, e[i].name);
            cJSON_AddItemToArray(shape, cJSON_CreateNumber(e[i].shape[d]));
            bytes *= (uint64_t)e[i].shape[d];
        }
        cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *json = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!json) return mrc_fail(err, errn, "%s: out of memory", path);
    size_t jn = strlen(json), padded = (jn + 7) / 8 * 8;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return free(json), mrc_fail(err, errn, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    unsigned char len[8];
    for (int b = 0; b < 8; b++) len[b] = (unsigned char)((uint64_t)padded >> (8 * b));
    int ok = write_all(fd, len, 8) == 0 && write_all(fd, json, jn) == 0;
    for (size_t k = jn; ok && k < padded; k++) ok = write_all(fd, " ", 1) == 0;
    off = 0;
    for (int i = 0; ok && i < n; i++) {
        uint64_t bytes = dtype_size(e[i].dtype);
        for (int d = 0; d < e[i].ndim; d++) bytes *= (uint64_t)e[i].shape[d];
        if (bytes) ok = write_all(fd, e[i].data, (size_t)bytes) == 0;
    }
    int saved = errno;
    if (ok && fsync(fd)) ok = 0, saved = errno;
    if (close(fd) && ok) ok = 0, saved = errno;
    free(json);
    if (!ok || rename(tmp, path)) {
        if (ok) saved = errno;
        unlink(tmp);
        return mrc_fail(err, errn, "%s: cannot write: %s", path, strerror(saved));
    }
    /* the rename itself must reach the disk before the caller relies on it */
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    int dfd = open(slash ? (dir[0] ? dir : "/") : ".", O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) fsync(dfd), close(dfd);
    return 0;
}

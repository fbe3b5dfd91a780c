/* safetensors.h: reading safetensors files (checkpoints, golden test data; DESIGN §10).
 *
 * The format: an 8-byte little-endian u64 N, then N bytes of JSON, then the data. The JSON
 * object maps each tensor name to {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}
 * with byte offsets relative to the first byte after the header, and may hold one
 * "__metadata__" object of string -> string. Data is raw little-endian, row-major.
 *
 * safetensors_open maps the file read-only and checks every entry before returning:
 *   - the file holds at least the 8-byte length, and N fits in what follows;
 *   - the header is one JSON object (trailing spaces, the official writer's padding, are
 *     allowed; anything else after it is an error);
 *   - each entry has a supported dtype: F32, F64, BF16, I32, U8 (the project's dtypes);
 *     others (F16, I64, BOOL, ...) are an error naming the tensor and its dtype;
 *   - a shape of 0..4 non-negative integers; a scalar (shape []) is read as shape [1];
 *   - data_offsets [begin, end] with begin <= end <= the data size and end - begin equal
 *     to numel · dtype size;
 *   - no two tensors share a byte (an overlap means a broken writer, and loading both would
 *     alias); gaps between tensors are allowed (alignment padding), although the official
 *     writer never leaves any;
 *   - names are unique, non-empty and shorter than ST_NAME_MAX; metadata values are strings.
 * A failure returns -1 with one line "PATH: problem (tensor NAME)" in err (the tensor part
 * when the problem belongs to one) and leaves nothing open; nothing is printed.
 *
 * Data pointers point into the mapping and are NOT necessarily aligned for their dtype (the
 * header length is arbitrary): read them with memcpy, or with safetensors_read, which copies
 * into a tensor after checking dtype and shape. The mapping lives until safetensors_close;
 * the file must not be truncated while it is open (the kernel would raise SIGBUS).
 * Little-endian hosts only (checked at build time). */
#ifndef MRC_SAFETENSORS_H
#define MRC_SAFETENSORS_H

#include "tensor.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ST_NAME_MAX 256

typedef struct st_tensor {
    char name[ST_NAME_MAX];
    dtype dtype;
    int ndim;                     /* 1..4 (a scalar is [1]) */
    int shape[TENSOR_MAX_DIMS];
    size_t offset, bytes;         /* in the data section (after the header) */
} st_tensor;

typedef struct safetensors {
    char path[1024];
    const unsigned char *map;     /* the whole file, read-only */
    size_t map_bytes;
    const unsigned char *data;    /* first byte after the header */
    size_t data_bytes;
    int count;
    st_tensor *tensors;           /* sorted by name */
    int meta_count;
    char **meta_keys, **meta_values;
} safetensors;

/* 0 on success; -1 with one line in err (errn bytes, may be 0) and *st zeroed otherwise. */
int safetensors_open(safetensors *st, const char *path, char *err, size_t errn);
/* Unmaps and frees; a zeroed or already closed struct is fine. */
void safetensors_close(safetensors *st);
/* The entry named name, or NULL. Binary search (entries are sorted by name). */
const st_tensor *safetensors_find(const safetensors *st, const char *name);
/* t's bytes inside the mapping (t->bytes of them; possibly unaligned, see above). */
const void *safetensors_data(const safetensors *st, const st_tensor *t);
/* The metadata value for key, or NULL when absent. */
const char *safetensors_meta(const safetensors *st, const char *key);
/* Copies tensor `name` into dst (a CPU tensor with data) after checking that it exists and
 * has dst's dtype and shape; 0, or -1 with "PATH: problem (tensor NAME)" in err. */
int safetensors_read(const safetensors *st, const char *name, tensor *dst, char *err, size_t errn);

/* Writing. One entry per tensor: its name, dtype, shape and host data (the bytes follow
 * from the dtype and the shape). */
typedef struct st_entry {
    const char *name;
    dtype dtype;
    int ndim;
    int shape[TENSOR_MAX_DIMS];
    const void *data;
} st_entry;

/* Writes a safetensors file: the header (entries in the given order, data offsets packed
 * back to back, `__metadata__` from the key/value pairs, padded with spaces so the data
 * starts 8-byte aligned), then the data. Atomic: written to a temporary file beside path,
 * fsynced, renamed over path, and the directory fsynced, so a crash at any moment leaves
 * either the old file or the complete new one under path. 0, or -1 with one line in err
 * (duplicate or empty names, a bad shape, I/O errors naming the path). */
int safetensors_write(const char *path, const st_entry *e, int n, const char *const *meta_keys,
                      const char *const *meta_values, int n_meta, char *err, size_t errn);

#ifdef __cplusplus
}
#endif
#endif

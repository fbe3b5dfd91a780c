/* json_scan.h: finding record bounds in a large JSON file without parsing it (DESIGN §7).
 *
 * lvis_v1_train.json is 1.1 GB; one cJSON tree of it would take several GB. The reader
 * maps the file, and this scanner walks it once, string-aware (brackets and quotes inside
 * strings, escapes), to give the byte span of each top-level member and of each element
 * of an array; cJSON then parses one record (one image, one annotation) at a time.
 *
 * The scanner checks structure only (balanced brackets, terminated strings, commas and
 * colons where they belong); scalars are checked by cJSON when their record is parsed.
 * Errors fill `err` with one line "PATH: byte B (line L): problem" and return -1. */
#ifndef MRC_JSON_SCAN_H
#define MRC_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct json_span {
    size_t begin, end; /* [begin, end) in the document */
} json_span;

typedef struct json_doc {
    char path[1024];
    const char *data; /* the whole file, read-only (mapped) */
    size_t size;
    int mapped;       /* 1: json_doc_open mapped it (json_doc_close unmaps) */
} json_doc;

/* Maps the file; 0, or -1 with "PATH: problem" in err (missing, unreadable, empty). */
int json_doc_open(json_doc *d, const char *path, char *err, size_t errn);
void json_doc_close(json_doc *d);
/* A document over memory the caller keeps alive (tests, small buffers). */
json_doc json_doc_from_memory(const char *name, const char *data, size_t size);

/* One member of an object: the key (the span inside the quotes, raw, escapes kept) and
 * the value's span. */
typedef struct json_member {
    json_span key, value;
} json_member;

/* The span of the document's root value; it must be an object or an array. */
int json_root(const json_doc *d, json_span *root, char *err, size_t errn);
/* The end of the value starting at (or after whitespace from) `pos`: *value gets its span. */
int json_skip_value(const json_doc *d, size_t pos, json_span *value, char *err, size_t errn);

/* Members of the object spanning `obj`, in file order, into m[0..max); *n gets the count
 * (an object with more than max members is an error naming max). */
int json_object_members(const json_doc *d, json_span obj, json_member *m, int max, int *n, char *err,
                        size_t errn);
/* Whether key span k equals the plain string s (no escapes in s). */
int json_key_is(const json_doc *d, json_span k, const char *s);

/* Iterates the elements of the array spanning `arr`:
 *   json_array_iter it; json_array_begin(&it, d, arr);
 *   while ((r = json_array_next(&it, &elem, err, errn)) == 1) { ... it.index ... }
 *   r is 0 at the end, -1 on a structural error. */
typedef struct json_array_iter {
    const json_doc *d;
    size_t pos, end;
    int64_t index; /* of the element last returned */
    int state;     /* 0: before the first element, 1: after an element, 2: done */
} json_array_iter;

int json_array_begin(json_array_iter *it, const json_doc *d, json_span arr, char *err, size_t errn);
int json_array_next(json_array_iter *it, json_span *elem, char *err, size_t errn);

/* Parses one JSON number (RFC 8259 grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?)
 * at s[0..n): the bytes it used, or 0 when s does not start with one. *out is the double
 * strtod gives for the same text (correctly rounded; exact fast path for up to 19 digits
 * and |exponent| <= 22, strtod otherwise); an out-of-range number gives +-inf like strtod. */
size_t json_number(const char *s, size_t n, double *out);

/* The 1-based line of byte `pos` (for messages; counts newlines, O(pos)). */
int64_t json_line_of(const json_doc *d, size_t pos);

#ifdef __cplusplus
}
#endif
#endif

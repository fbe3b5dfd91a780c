/* json_scan.c: the string-aware record scanner (see json_scan.h). */
#include "data/json_scan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static int scan_error(const json_doc *d, size_t pos, char *err, size_t errn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int scan_error(const json_doc *d, size_t pos, char *err, size_t errn, const char *fmt, ...) {
    if (errn) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(err, errn, "%s: byte %zu (line %lld): %s", d->path, pos, (long long)json_line_of(d, pos), msg);
    }
    return -1;
}

int json_doc_open(json_doc *d, const char *path, char *err, size_t errn) {
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (errn) snprintf(err, errn, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (errn) snprintf(err, errn, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_size == 0) {
        if (errn) snprintf(err, errn, "%s: the file is empty", path);
        close(fd);
        return -1;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        if (errn) snprintf(err, errn, "%s: cannot map: %s", path, strerror(errno));
        return -1;
    }
    madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL);
    d->data = p;
    d->size = (size_t)st.st_size;
    d->mapped = 1;
    return 0;
}

void json_doc_close(json_doc *d) {
    if (d->mapped) munmap((void *)d->data, d->size);
    memset(d, 0, sizeof *d);
}

json_doc json_doc_from_memory(const char *name, const char *data, size_t size) {
    json_doc d;
    memset(&d, 0, sizeof d);
    snprintf(d.path, sizeof d.path, "%s", name);
    d.data = data;
    d.size = size;
    return d;
}

int64_t json_line_of(const json_doc *d, size_t pos) {
    int64_t line = 1;
    if (pos > d->size) pos = d->size;
    for (const char *p = d->data, *e = d->data + pos; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++) line++;
    return line;
}

static size_t skip_ws(const json_doc *d, size_t pos) {
    while (pos < d->size) {
        char c = d->data[pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        pos++;
    }
    return pos;
}

/* pos at the opening quote; returns the position after the closing quote, or 0. */
static size_t skip_string(const json_doc *d, size_t pos) {
    const char *s = d->data;
    for (size_t i = pos + 1; i < d->size;) {
        const char *q = memchr(s + i, '"', d->size - i);
        if (!q) return 0;
        size_t at = (size_t)(q - s), bs = 0;
        while (at - bs > pos && s[at - bs - 1] == '\\') bs++; /* an even run of backslashes escapes nothing */
        if (bs % 2 == 0) return at + 1;
        i = at + 1;
    }
    return 0;
}

/* The first of '"', '{', '}', '[', ']' at or after i (n when none): 16 bytes per step with
 * SSE2 — records are mostly digits and commas, so most steps find nothing. */
static size_t next_structural(const char *s, size_t i, size_t n) {
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), ob = _mm_set1_epi8('{'), cb = _mm_set1_epi8('}');
    const __m128i os = _mm_set1_epi8('['), cs = _mm_set1_epi8(']');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, ob)),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, cb), _mm_or_si128(_mm_cmpeq_epi8(v, os),
                                                                                    _mm_cmpeq_epi8(v, cs))));
        int m = _mm_movemask_epi8(hit);
        if (m) return i + (size_t)__builtin_ctz((unsigned)m);
    }
#endif
    for (; i < n; i++) {
        char c = s[i];
        if (c == '"' || c == '{' || c == '}' || c == '[' || c == ']') return i;
    }
    return n;
}

int json_skip_value(const json_doc *d, size_t pos, json_span *value, char *err, size_t errn) {
    pos = skip_ws(d, pos);
    if (pos >= d->size) return scan_error(d, pos, err, errn, "a value was expected, the file ends");
    const char *s = d->data;
    value->begin = pos;
    char c = s[pos];
    if (c == '"') {
        size_t e = skip_string(d, pos);
        if (!e) return scan_error(d, pos, err, errn, "unterminated string");
        value->end = e;
        return 0;
    }
    if (c != '{' && c != '[') { /* a scalar: up to the next delimiter (cJSON checks it later) */
        size_t e = pos;
        while (e < d->size && !strchr(",]} \t\r\n", s[e])) e++;
        if (e == pos) return scan_error(d, pos, err, errn, "a value was expected, found '%c'", c);
        value->end = e;
        return 0;
    }
    /* a container: count depth, jumping over strings; a stack of opening brackets checks
     * that each closing one matches (records nest only a few levels) */
    char stack[256];
    int depth = 0;
    for (size_t i = pos; i < d->size; i++) {
        i = next_structural(s, i, d->size);
        if (i >= d->size) break;
        char ch = s[i];
        if (ch == '"') {
            size_t e = skip_string(d, i);
            if (!e) return scan_error(d, i, err, errn, "unterminated string");
            i = e - 1;
        } else if (ch == '{' || ch == '[') {
            if (depth == (int)sizeof stack) return scan_error(d, i, err, errn, "nesting deeper than %d", depth);
            stack[depth++] = ch;
        } else if (ch == '}' || ch == ']') {
            char want = ch == '}' ? '{' : '[';
            if (depth == 0 || stack[depth - 1] != want)
                return scan_error(d, i, err, errn, "'%c' does not close the open '%c'", ch, depth ? stack[depth - 1] : '?');
            if (--depth == 0) {
                value->end = i + 1;
                return 0;
            }
        }
    }
    return scan_error(d, pos, err, errn, "this '%c' is never closed (the file ends first)", c);
}

int json_root(const json_doc *d, json_span *root, char *err, size_t errn) {
    size_t pos = skip_ws(d, 0);
    if (pos >= d->size) return scan_error(d, pos, err, errn, "no JSON value in the file");
    if (d->data[pos] != '{' && d->data[pos] != '[')
        return scan_error(d, pos, err, errn, "the file does not start with a JSON object or array");
    if (json_skip_value(d, pos, root, err, errn)) return -1;
    size_t after = skip_ws(d, root->end);
    if (after < d->size) return scan_error(d, after, err, errn, "text after the end of the JSON value");
    return 0;
}

int json_key_is(const json_doc *d, json_span k, const char *s) {
    size_t n = strlen(s);
    return k.end - k.begin == n && memcmp(d->data + k.begin, s, n) == 0;
}

int json_object_members(const json_doc *d, json_span obj, json_member *m, int max, int *n, char *err,
                        size_t errn) {
    *n = 0;
    if (d->data[obj.begin] != '{') return scan_error(d, obj.begin, err, errn, "an object was expected");
    size_t pos = skip_ws(d, obj.begin + 1);
    if (d->data[pos] == '}') return 0;
    for (;;) {
        if (d->data[pos] != '"') return scan_error(d, pos, err, errn, "a member name in quotes was expected");
        size_t kend = skip_string(d, pos);
        if (!kend || kend > obj.end) return scan_error(d, pos, err, errn, "unterminated member name");
        json_member mem = {{pos + 1, kend - 1}, {0, 0}};
        pos = skip_ws(d, kend);
        if (d->data[pos] != ':') return scan_error(d, pos, err, errn, "':' was expected after a member name");
        if (json_skip_value(d, pos + 1, &mem.value, err, errn)) return -1;
        if (*n == max) return scan_error(d, mem.key.begin, err, errn, "more than %d members", max);
        m[(*n)++] = mem;
        pos = skip_ws(d, mem.value.end);
        if (d->data[pos] == '}') return 0;
        if (d->data[pos] != ',') return scan_error(d, pos, err, errn, "',' or '}' was expected");
        pos = skip_ws(d, pos + 1);
    }
}

int json_array_begin(json_array_iter *it, const json_doc *d, json_span arr, char *err, size_t errn) {
    memset(it, 0, sizeof *it);
    it->d = d;
    it->index = -1;
    if (arr.end <= arr.begin || d->data[arr.begin] != '[')
        return scan_error(d, arr.begin, err, errn, "an array was expected");
    it->pos = arr.begin + 1;
    it->end = arr.end - 1; /* the closing ']' */
    return 0;
}

int json_array_next(json_array_iter *it, json_span *elem, char *err, size_t errn) {
    const json_doc *d = it->d;
    if (it->state == 2) return 0;
    size_t pos = skip_ws(d, it->pos);
    if (it->state == 1) {
        if (pos == it->end) {
            it->state = 2;
            return 0;
        }
        if (d->data[pos] != ',') return scan_error(d, pos, err, errn, "',' or ']' was expected");
        pos = skip_ws(d, pos + 1);
    } else if (pos == it->end) {
        it->state = 2; /* [] */
        return 0;
    }
    if (pos >= it->end) return scan_error(d, pos, err, errn, "a value was expected before ']'");
    if (json_skip_value(d, pos, elem, err, errn)) return -1;
    it->pos = elem->end;
    it->state = 1;
    it->index++;
    return 1;
}

size_t json_number(const char *s, size_t n, double *out) {
    static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') neg = 1, i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return 0;
    uint64_t m = 0;
    int digits = 0, exp10 = 0; /* significant digits kept in m; value = m * 10^exp10 */
    int exact = 1;             /* m holds every significant digit */
    if (s[i] == '0') i++;
    else
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (digits < 19) m = m * 10 + (uint64_t)(s[i] - '0'), digits += m != 0;
            else exp10++, exact &= s[i] == '0';
        }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (digits < 19) m = m * 10 + (uint64_t)(s[i] - '0'), digits += m != 0, exp10--;
            else exact &= s[i] == '0';
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0, e = 0;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i] == '-', i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 100000) e = e * 10 + (s[i] - '0');
        exp10 += eneg ? -e : e;
    }
    if (exact && m <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
        /* both operands exact, one rounding: the correctly rounded result (Clinger's fast path) */
        double v = exp10 >= 0 ? (double)m * pow10[exp10] : (double)m / pow10[-exp10];
        *out = neg ? -v : v;
        return i;
    }
    char small[64], *buf = i < sizeof small ? small : malloc(i + 1);
    if (!buf) return 0;
    memcpy(buf, s, i);
    buf[i] = '\0';
    *out = strtod(buf, NULL);
    if (buf != small) free(buf);
    return i;
}

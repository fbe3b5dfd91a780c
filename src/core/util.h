/* util.h: two small helpers the readers and the loader share: a growable array and a
 * one-line error into a caller's buffer. */
#ifndef MRC_UTIL_H
#define MRC_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Grows *p (elements of `elem` bytes, capacity *cap) to hold `need`, doubling from 64;
 * 0, or -1 when out of memory (*p and *cap unchanged). */
static inline int mrc_grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 0;
    int64_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, (size_t)n * elem);
    if (!q) return -1;
    *p = q, *cap = n;
    return 0;
}
#define MRC_GROW(ptr, cap, need) mrc_grow((void **)&(ptr), &(cap), (need), sizeof *(ptr))

/* Formats one line into err[errn] (nothing when errn is 0); returns -1, for
 * `return mrc_fail(err, errn, "...", ...);`. */
static inline int mrc_fail(char *err, size_t errn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline int mrc_fail(char *err, size_t errn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (errn) vsnprintf(err, errn, fmt, ap);
    va_end(ap);
    return -1;
}

#endif

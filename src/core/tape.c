/* tape.c: recording and reverse replay of backward functions (see tape.h). */
#include "tape.h"
#include "check.h"

#include <stdlib.h>

void tape_init(tape *t) {
    t->entries = NULL;
    t->count = t->capacity = 0;
    t->enabled = 1;
    t->grows = 0;
}

void tape_free(tape *t) {
    free(t->entries);
    tape_init(t);
}

void tape_clear(tape *t) { t->count = 0; }

void *tape_record(tape *t, arena *host, const char *name, tape_fn fn, size_t ctx_bytes) {
    CHECK(host->device == DEVICE_CPU, "tape contexts live in host memory");
    if (t->count == t->capacity) {
        int cap = t->capacity ? 2 * t->capacity : 256;
        tape_entry *e = realloc(t->entries, (size_t)cap * sizeof *e);
        CHECK(e != NULL, "out of host memory growing the tape to %d entries", cap);
        t->entries = e;
        t->capacity = cap;
        t->grows++;
    }
    void *ctx = ctx_bytes ? arena_calloc(host, ctx_bytes) : NULL;
    t->entries[t->count++] = (tape_entry){fn, ctx, name};
    return ctx;
}

void tape_backward(tape *t, struct runtime *rt) {
    /* Recording is off while replaying: a backward that reuses forward ops must not append
     * to the tape being walked. */
    int enabled = t->enabled;
    t->enabled = 0;
    for (int i = t->count - 1; i >= 0; i--) t->entries[i].fn(rt, t->entries[i].ctx);
    t->enabled = enabled;
    tape_clear(t);
}

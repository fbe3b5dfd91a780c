/* tape.h: the autograd tape (DESIGN §5).
 *
 * A forward op that needs a backward records one entry: a function and a context block
 * (allocated from the step's host arena, so it lives until the step ends). backward walks
 * the entries in reverse order of recording. Ops whose output needs no gradient (nothing
 * upstream requires one, or the op cuts gradients on purpose: proposals, sampled targets,
 * refined cascade boxes) record nothing.
 *
 * Gradient convention: a backward reads its outputs' `grad` (skipping when NULL: nothing
 * downstream used the output) and accumulates (+=) into its inputs' gradients, obtained
 * through tensor_grad() which allocates them zeroed on first use. An op that writes (=)
 * instead must say so in its shape contract. Parameter gradients always accumulate.
 *
 * An entry keeps pointers to its op's inputs and outputs, and a backward may read their
 * values again (max pool recomputes its argmax, the losses read their targets): every
 * tensor an op was given must stay alive and unchanged until tape_backward has run. Step
 * tensors (runtime_tensor) and parameters do; a tensor struct on the caller's stack, or a
 * buffer refilled before the backward, does not.
 *
 * The entry array grows during warm-up and keeps its capacity across steps, so a steady
 * step does not allocate. */
#ifndef MRC_TAPE_H
#define MRC_TAPE_H

#include "arena.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct runtime;
typedef void (*tape_fn)(struct runtime *rt, void *ctx);

typedef struct tape_entry {
    tape_fn fn;
    void *ctx;
    const char *name; /* the op, for debugging and error messages */
} tape_entry;

typedef struct tape {
    tape_entry *entries;
    int count, capacity;
    int enabled;        /* 0: forward ops record nothing (inference, no_grad sections) */
    int64_t grows;      /* times the entry array grew (a steady step keeps this fixed) */
} tape;

void tape_init(tape *t);
void tape_free(tape *t);
void tape_clear(tape *t);
/* Appends an entry; returns its context, ctx_bytes zeroed bytes from `host`. */
void *tape_record(tape *t, arena *host, const char *name, tape_fn fn, size_t ctx_bytes);
/* Calls every entry's function, last recorded first, with recording off, then clears the
 * tape. */
void tape_backward(tape *t, struct runtime *rt);

#ifdef __cplusplus
}
#endif
#endif

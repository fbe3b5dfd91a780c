/* arena.h: the per-step memory arena (DESIGN §5), one per device.
 *
 * A list of large blocks that never move, bump-allocated and reset at the end of each
 * step. Allocation walks the blocks in order: when a request does not fit in the rest of
 * the current block, the next block that can hold it is used, and a new block is added
 * only when no later block can. Because new blocks are only ever appended, a sequence of
 * requests that fitted once fits again after a reset: a loop over a few fixed shapes
 * (the canvas sizes) stops allocating after it has seen each of them once.
 *
 * Pointers stay valid until the next arena_reset (tape contexts rely on this). Every
 * allocation is aligned to ARENA_ALIGN bytes. The high-water mark (`peak`) is the most
 * bytes handed out at once, alignment included; `reserved` is what the blocks hold. */
#ifndef MRC_ARENA_H
#define MRC_ARENA_H

#include "tensor.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ARENA_ALIGN 256

typedef struct arena_block {
    char *base;
    size_t size;
    size_t used;
} arena_block;

typedef struct arena {
    const char *name;    /* for messages: "host", "cuda" */
    device device;       /* where the blocks live */
    size_t block_bytes;  /* size of a new block (a larger request gets its own size) */
    size_t limit_bytes;  /* 0: no limit; else the most `reserved` may reach */
    arena_block *blocks;
    int nblocks, capacity;
    int cur;             /* block being bumped */
    size_t in_use;       /* bytes handed out since the last reset */
    size_t peak;         /* high-water mark of in_use over the arena's life */
    size_t reserved;     /* sum of block sizes */
    int64_t block_allocs; /* blocks allocated over the arena's life */
} arena;

/* A position to return to with arena_release (scratch memory inside an op). */
typedef struct arena_mark {
    int block;
    size_t used, in_use;
} arena_mark;

void arena_init(arena *a, const char *name, device d, size_t block_bytes, size_t limit_bytes);
void arena_free(arena *a);
/* Never returns NULL; stops with a message naming the arena, the request and the limit
 * when the limit would be exceeded or the device is out of memory. */
void *arena_alloc(arena *a, size_t bytes);
void *arena_calloc(arena *a, size_t bytes); /* zeroed (device memset on the GPU) */
void arena_reset(arena *a);
arena_mark arena_get_mark(const arena *a);
void arena_release(arena *a, arena_mark m);

#ifdef __cplusplus
}
#endif
#endif

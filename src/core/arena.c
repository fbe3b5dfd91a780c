/* arena.c: per-step bump allocator over blocks that never move (see arena.h). */
#include "arena.h"
#include "check.h"
#include "gpu.h"

#include <stdlib.h>
#include <string.h>

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

void arena_init(arena *a, const char *name, device d, size_t block_bytes, size_t limit_bytes) {
    memset(a, 0, sizeof *a);
    a->name = name;
    a->device = d;
    a->block_bytes = round_up(block_bytes ? block_bytes : ((size_t)64 << 20), ARENA_ALIGN);
    a->limit_bytes = limit_bytes;
}

void arena_free(arena *a) {
    for (int i = 0; i < a->nblocks; i++) {
        if (a->device == DEVICE_CUDA) gpu_free(a->blocks[i].base);
        else free(a->blocks[i].base);
    }
    free(a->blocks);
    a->blocks = NULL;
    a->nblocks = a->capacity = a->cur = 0;
    a->in_use = a->reserved = 0;
}

static void add_block(arena *a, size_t min_bytes) {
    size_t size = round_up(min_bytes > a->block_bytes ? min_bytes : a->block_bytes, ARENA_ALIGN);
    if (a->limit_bytes && a->reserved + size > a->limit_bytes)
        FATAL("%s arena: a step needs more than its limit of %zu MiB (reserved %zu MiB, request %zu "
              "bytes); raise the limit or lower the per-image maxima",
              a->name, a->limit_bytes >> 20, a->reserved >> 20, min_bytes);
    if (a->nblocks == a->capacity) {
        a->capacity = a->capacity ? 2 * a->capacity : 8;
        a->blocks = realloc(a->blocks, (size_t)a->capacity * sizeof *a->blocks);
        CHECK(a->blocks != NULL, "out of host memory for the %s arena's block list", a->name);
    }
    arena_block *b = &a->blocks[a->nblocks];
    if (a->device == DEVICE_CUDA) {
        b->base = gpu_malloc(size, a->name);
    } else {
        b->base = aligned_alloc(ARENA_ALIGN, size);
        CHECK(b->base != NULL, "out of host memory: %s arena block of %zu MiB", a->name, size >> 20);
    }
    b->size = size;
    b->used = 0;
    a->nblocks++;
    a->reserved += size;
    a->block_allocs++;
}

void *arena_alloc(arena *a, size_t bytes) {
    size_t need = round_up(bytes, ARENA_ALIGN);
    if (a->nblocks == 0) add_block(a, need);
    /* Current block first, then later blocks in order, then a new block at the end. */
    while (a->blocks[a->cur].used + need > a->blocks[a->cur].size) {
        if (a->cur + 1 == a->nblocks) add_block(a, need);
        a->cur++;
    }
    arena_block *b = &a->blocks[a->cur];
    void *p = b->base + b->used;
    b->used += need;
    a->in_use += need;
    if (a->in_use > a->peak) a->peak = a->in_use;
    return p;
}

void *arena_calloc(arena *a, size_t bytes) {
    void *p = arena_alloc(a, bytes);
    if (a->device == DEVICE_CUDA) gpu_memset_zero(p, bytes);
    else memset(p, 0, bytes);
    return p;
}

void arena_reset(arena *a) {
    for (int i = 0; i < a->nblocks; i++) a->blocks[i].used = 0;
    a->cur = 0;
    a->in_use = 0;
}

arena_mark arena_get_mark(const arena *a) {
    arena_mark m = {a->cur, a->nblocks ? a->blocks[a->cur].used : 0, a->in_use};
    return m;
}

void arena_release(arena *a, arena_mark m) {
    CHECK(m.block <= a->cur && m.in_use <= a->in_use, "%s arena: release to a mark taken after the "
          "current position", a->name);
    for (int i = m.block + 1; i <= a->cur; i++) a->blocks[i].used = 0;
    a->cur = m.block;
    if (a->nblocks) a->blocks[m.block].used = m.used;
    a->in_use = m.in_use;
}

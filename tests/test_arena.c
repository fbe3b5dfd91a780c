/* test_arena.c: the per-step arena (DESIGN §5) on the CPU, and on the GPU when present. */
#include "core/arena.h"
#include "core/check.h"
#include "test.h"

#include <stdint.h>

#define KIB ((size_t)1024)

static void test_alignment_and_zero_size(void) {
    arena a;
    arena_init(&a, "host", DEVICE_CPU, 64 * KIB, 0);
    size_t sizes[] = {1, 3, 255, 256, 257, 0, 1000};
    char *prev = NULL;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = arena_alloc(&a, sizes[i]);
        EXPECT(p != NULL);
        EXPECT(((uintptr_t)p % ARENA_ALIGN) == 0, "allocation %zu (%zu bytes) misaligned: %p", i, sizes[i], (void *)p);
        if (prev && sizes[i - 1]) EXPECT(p >= prev + sizes[i - 1], "allocation %zu overlaps the previous one", i);
        prev = p;
    }
    arena_free(&a);
}

/* Every pointer handed out keeps its contents while the arena grows new blocks. */
static void test_pointers_survive_growth(void) {
    arena a;
    arena_init(&a, "host", DEVICE_CPU, 4 * KIB, 0);
    enum { N = 200 };
    unsigned char *ptr[N];
    size_t len[N];
    for (int i = 0; i < N; i++) {
        len[i] = 100 + (size_t)(i * 37) % 3000 + (i % 50 == 0 ? 10000 : 0); /* some exceed a block */
        ptr[i] = arena_alloc(&a, len[i]);
        memset(ptr[i], i & 0xff, len[i]);
    }
    EXPECT(a.nblocks > 10, "the test must force growth: %d blocks", a.nblocks);
    int damaged = -1;
    for (int i = 0; i < N && damaged < 0; i++)
        for (size_t k = 0; k < len[i]; k++)
            if (ptr[i][k] != (i & 0xff)) {
                damaged = i;
                break;
            }
    EXPECT(damaged < 0, "allocation %d was overwritten after the arena grew", damaged);
    /* Each pointer lies inside exactly one block. */
    for (int i = 0; i < N; i++) {
        int inside = 0;
        for (int b = 0; b < a.nblocks; b++)
            inside += ptr[i] >= (unsigned char *)a.blocks[b].base &&
                      ptr[i] + len[i] <= (unsigned char *)a.blocks[b].base + a.blocks[b].size;
        EXPECT(inside == 1, "allocation %d lies in %d blocks", i, inside);
    }
    arena_free(&a);
}

static void test_reset_frees_everything(void) {
    arena a;
    arena_init(&a, "host", DEVICE_CPU, 8 * KIB, 0);
    char *first = arena_alloc(&a, 100);
    for (int i = 0; i < 20; i++) arena_alloc(&a, 3000);
    EXPECT(a.in_use > 20 * 3000);
    size_t peak = a.peak;
    arena_reset(&a);
    EXPECT(a.in_use == 0, "in_use %zu after reset", a.in_use);
    EXPECT(a.peak == peak, "the high-water mark survives a reset");
    char *again = arena_alloc(&a, 100);
    EXPECT(again == first, "after reset the first allocation reuses the first block's start");
    int64_t blocks = a.block_allocs;
    for (int i = 0; i < 20; i++) arena_alloc(&a, 3000);
    EXPECT(a.block_allocs == blocks, "the same requests after reset allocated %lld new blocks",
           (long long)(a.block_allocs - blocks));
    arena_free(&a);
}

/* A training loop over a few canvas sizes: each "step" allocates a shape-dependent list of
 * buffers. After every shape has been seen once, no step may add a block. */
static void run_step(arena *a, int shape) {
    static const size_t base[3] = {5000, 12000, 800};
    for (int layer = 0; layer < 30; layer++) {
        size_t n = base[shape] * (size_t)(1 + layer % 4) + (size_t)layer * 17;
        unsigned char *p = arena_alloc(a, n);
        p[0] = p[n - 1] = (unsigned char)layer; /* touch both ends (ASan checks the bounds) */
    }
    if (shape == 1) arena_alloc(a, 70 * KIB); /* one request larger than a block */
}

static void test_steady_loop_stops_allocating(void) {
    arena a;
    arena_init(&a, "host", DEVICE_CPU, 32 * KIB, 0);
    for (int shape = 0; shape < 3; shape++) {
        run_step(&a, shape);
        arena_reset(&a);
    }
    int64_t after_warmup = a.block_allocs;
    size_t reserved = a.reserved;
    int order[] = {2, 0, 1, 1, 0, 2, 0, 2, 1};
    for (int it = 0; it < 300; it++) {
        run_step(&a, order[it % 9]);
        arena_reset(&a);
    }
    EXPECT(after_warmup > 1, "the test needs more than one block (%lld)", (long long)after_warmup);
    EXPECT(a.block_allocs == after_warmup, "steady loop allocated %lld blocks after warm-up",
           (long long)(a.block_allocs - after_warmup));
    EXPECT(a.reserved == reserved);
    arena_free(&a);
}

static void test_peak_is_the_high_water_mark(void) {
    arena a;
    arena_init(&a, "host", DEVICE_CPU, 64 * KIB, 0);
    arena_alloc(&a, 1000); /* 1024 with alignment */
    arena_alloc(&a, 256);
    EXPECT(a.in_use == 1280, "in_use %zu", a.in_use);
    arena_reset(&a);
    arena_alloc(&a, 512);
    EXPECT(a.peak == 1280, "peak %zu, want 1280 (1024 + 256)", a.peak);
    EXPECT(a.reserved == 64 * KIB);
    arena_free(&a);
}

static void test_mark_and_release(void) {
    arena a;
    arena_init(&a, "host", DEVICE_CPU, 4 * KIB, 0);
    arena_alloc(&a, 1000);
    arena_mark m = arena_get_mark(&a);
    char *scratch = arena_alloc(&a, 500);
    for (int i = 0; i < 10; i++) arena_alloc(&a, 3000); /* spills into new blocks */
    arena_release(&a, m);
    EXPECT(a.in_use == 1024, "in_use %zu after release", a.in_use);
    char *again = arena_alloc(&a, 500);
    EXPECT(again == scratch, "release returns to the marked position");
    arena_free(&a);
}

static void over_limit(void *arg) {
    (void)arg;
    arena a;
    arena_init(&a, "cuda-test", DEVICE_CPU, 4 * KIB, 16 * KIB);
    for (int i = 0; i < 10; i++) arena_alloc(&a, 3000);
}

static void test_limit_gives_a_clear_error(void) {
    char out[2048];
    int st = test_run_child(over_limit, NULL, out, sizeof out);
    EXPECT(st == 1, "exit status %d", st);
    EXPECT(strstr(out, "cuda-test arena: a step needs more than its limit"), "got: %s", out);
    EXPECT(strstr(out, "arena.c:"), "the message names the source line: %s", out);
}

static void test_gpu_arena(void) {
    REQUIRE_GPU();
    arena a;
    arena_init(&a, "cuda", DEVICE_CUDA, 1 << 20, 0);
    float host[256], back[256];
    for (int i = 0; i < 256; i++) host[i] = (float)i;
    float *first = arena_alloc(&a, sizeof host);
    gpu_memcpy_h2d(first, host, sizeof host);
    for (int i = 0; i < 8; i++) arena_alloc(&a, 700 * 1024); /* grow */
    gpu_memcpy_d2h(back, first, sizeof back);
    EXPECT(memcmp(host, back, sizeof host) == 0, "device data moved or was overwritten during growth");
    float *z = arena_calloc(&a, sizeof back);
    gpu_memcpy_d2h(back, z, sizeof back);
    EXPECT(back[0] == 0.0f && back[255] == 0.0f, "arena_calloc on the GPU must zero");
    int64_t blocks = a.block_allocs;
    for (int it = 0; it < 5; it++) {
        arena_reset(&a);
        arena_alloc(&a, sizeof host);
        for (int i = 0; i < 8; i++) arena_alloc(&a, 700 * 1024);
    }
    EXPECT(a.block_allocs == blocks, "steady GPU loop allocated blocks");
    arena_free(&a);
}

int main(void) {
    RUN(test_alignment_and_zero_size);
    RUN(test_pointers_survive_growth);
    RUN(test_reset_frees_everything);
    RUN(test_steady_loop_stops_allocating);
    RUN(test_peak_is_the_high_water_mark);
    RUN(test_mark_and_release);
    RUN(test_limit_gives_a_clear_error);
    RUN(test_gpu_arena);
    return test_finish("test_arena");
}

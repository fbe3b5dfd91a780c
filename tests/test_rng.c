/* test_rng.c: the project RNG. Known-answer vectors for the generator come from outside
 * (Random123's kat_vectors, quoted below); the stream layout and the word -> float maps are
 * checked against those words by hand-written formulas; the rest are properties. */
#include "core/check.h"
#include "core/philox.h"
#include "core/rng.h"
#include "test.h"

#include <stdint.h>

/* Philox4x32-10 known answers, from tests/kat_vectors of the Random123 distribution
 * (D. E. Shaw Research, release 1.14): counter words, key words, output words. */
static const uint32_t KAT[3][10] = {
    {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
     0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
    {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
     0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
    {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
     0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
};

static void test_philox_known_answers(void) {
    for (int v = 0; v < 3; v++) {
        uint32_t out[4];
        philox4x32_10(KAT[v], KAT[v] + 4, out);
        for (int i = 0; i < 4; i++)
            EXPECT(out[i] == KAT[v][6 + i], "vector %d word %d: got %08x, want %08x", v, i, out[i], KAT[v][6 + i]);
    }
}

/* rng.h's layout: key = seed (low, high), counter = (block low, block high, stream low,
 * stream high). So seed 0, stream 0, words 0..3 are vector 0's output; and the seed/stream
 * of vector 2 with its block number gives vector 2's words. */
static void test_stream_layout(void) {
    rng r = rng_make(0, 0);
    for (int i = 0; i < 4; i++) {
        uint32_t w = rng_u32(&r);
        EXPECT(w == KAT[0][6 + i], "seed 0 stream 0 word %d: got %08x, want %08x", i, w, KAT[0][6 + i]);
    }
    uint64_t seed = ((uint64_t)KAT[2][5] << 32) | KAT[2][4];
    uint64_t stream = ((uint64_t)KAT[2][3] << 32) | KAT[2][2];
    /* Vector 2's own block number (0x85a308d3243f6a88) exceeds the 2^62 blocks a word
     * offset can address, so the layout is checked at another block, against the
     * block function verified above. */
    uint64_t small_block = 0x0123456789abcdefull >> 4;
    uint32_t ctr[4] = {(uint32_t)small_block, (uint32_t)(small_block >> 32), KAT[2][2], KAT[2][3]};
    uint32_t out[4];
    philox4x32_10(ctr, KAT[2] + 4, out);
    rng s = rng_make(seed, stream);
    s.offset = small_block * 4;
    for (int i = 0; i < 4; i++) {
        uint32_t w = rng_u32(&s);
        EXPECT(w == out[i], "lane %d: got %08x, want %08x", i, w, out[i]);
    }
}

/* uniform = (word >> 8) * 2^-24: for word 0x6627e8d5 that is 0x6627e8 / 2^24 = 6694888 / 16777216. */
static void test_uniform_map(void) {
    rng r = rng_make(0, 0);
    float u[4];
    rng_uniform_cpu(&r, u, 4, 0.0f, 1.0f);
    EXPECT(u[0] == 6694888.0f / 16777216.0f, "u[0] = %.9g", u[0]);
    for (int i = 0; i < 4; i++) {
        float want = (float)(KAT[0][6 + i] >> 8) / 16777216.0f;
        EXPECT(u[i] == want, "u[%d] = %.9g, want %.9g", i, u[i], want);
    }
    EXPECT(r.offset == 4);
    /* [lo, hi): lo + (hi - lo) * u */
    rng s = rng_make(0, 0);
    float v[2];
    rng_uniform_cpu(&s, v, 2, -2.0f, 6.0f);
    EXPECT(v[0] == -2.0f + 8.0f * u[0] && v[1] == -2.0f + 8.0f * u[1], "ranges: %.9g %.9g", v[0], v[1]);
}

/* Box-Muller on words 0 and 1 of seed 0 stream 0, computed here from the formula. */
static void test_normal_map(void) {
    rng r = rng_make(0, 0);
    float z[2];
    rng_normal_cpu(&r, z, 2, 0.0f, 1.0f);
    double u1 = ((double)KAT[0][6] + 1.0) / 4294967296.0, u2 = (double)KAT[0][7] / 4294967296.0;
    double rad = sqrt(-2.0 * log(u1));
    EXPECT(z[0] == (float)(rad * cos(2 * M_PI * u2)), "z0 = %.9g", z[0]);
    EXPECT(z[1] == (float)(rad * sin(2 * M_PI * u2)), "z1 = %.9g", z[1]);
    rng s = rng_make(0, 0);
    float y[3];
    rng_normal_cpu(&s, y, 3, 0.0f, 1.0f);
    EXPECT(s.offset == 4, "an odd fill consumes an even number of words: offset %llu", (unsigned long long)s.offset);
    float m[2];
    rng t = rng_make(0, 0);
    rng_normal_cpu(&t, m, 2, 1.5f, 0.5f);
    EXPECT(m[0] == 1.5f + 0.5f * z[0], "mean + std * z: %.9g vs %.9g", m[0], 1.5f + 0.5f * z[0]);
}

/* The bulk fills use the same words as the scalar draws, at any seed, stream and offset,
 * across the fills' internal chunk boundaries (4096 values). */
static void test_fills_match_words(void) {
    enum { N = 9000 };
    static float u[N], z[N];
    rng a = rng_make(0x0123456789abcdefull, 0xfedcba9876543210ull), b = a;
    a.offset = b.offset = 5;
    rng_uniform_cpu(&a, u, N, 0, 1);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += u[i] != philox_to_uniform(rng_u32(&b));
    EXPECT(bad == 0, "%d uniform values differ from the word sequence", bad);
    rng c = rng_make(77, 3), d = c;
    c.offset = d.offset = 2;
    rng_normal_cpu(&c, z, N - 1, 0, 1);
    bad = 0;
    for (int i = 0; i < N - 1; i += 2) {
        uint32_t w0 = rng_u32(&d), w1 = rng_u32(&d);
        bad += z[i] != philox_to_normal(w0, w1, 0);
        if (i + 1 < N - 1) bad += z[i + 1] != philox_to_normal(w0, w1, 1);
    }
    EXPECT(bad == 0, "%d normal values differ from the word sequence", bad);
    EXPECT(c.offset == d.offset, "offsets %llu vs %llu", (unsigned long long)c.offset, (unsigned long long)d.offset);
}

static void test_chunks_equal_whole(void) {
    enum { N = 1001 };
    static float whole[N], parts[N], nwhole[N], nparts[N];
    rng a = rng_make(42, 7), b = rng_make(42, 7);
    rng_uniform_cpu(&a, whole, N, 0, 1);
    rng_uniform_cpu(&b, parts, 10, 0, 1);
    rng_uniform_cpu(&b, parts + 10, 333, 0, 1);
    rng_uniform_cpu(&b, parts + 343, N - 343, 0, 1);
    EXPECT(memcmp(whole, parts, sizeof whole) == 0, "chunked uniform fill differs");
    EXPECT(a.offset == b.offset);
    rng c = rng_make(42, 8), d = rng_make(42, 8);
    rng_normal_cpu(&c, nwhole, 1000, 0, 1);
    rng_normal_cpu(&d, nparts, 400, 0, 1);
    rng_normal_cpu(&d, nparts + 400, 600, 0, 1);
    EXPECT(memcmp(nwhole, nparts, 1000 * sizeof(float)) == 0, "chunked normal fill (even chunks) differs");
}

static void test_streams_and_seeds_differ(void) {
    uint32_t w[4][64];
    rng r[4] = {rng_make(1, 0), rng_make(1, 1), rng_make(2, 0), rng_make(1, 0)};
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 64; i++) w[k][i] = rng_u32(&r[k]);
    int same01 = 0, same02 = 0;
    for (int i = 0; i < 64; i++) same01 += w[0][i] == w[1][i], same02 += w[0][i] == w[2][i];
    EXPECT(same01 == 0 && same02 == 0, "streams share %d words, seeds share %d words", same01, same02);
    EXPECT(memcmp(w[0], w[3], sizeof w[0]) == 0, "the same seed and stream must repeat");
}

/* Statistical sanity with bounds of many standard errors (these fail for a broken map,
 * not by chance: 6 sigma). */
static void test_distributions(void) {
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof *x);
    rng r = rng_make(123, 0);
    rng_uniform_cpu(&r, x, N, 0, 1);
    double s = 0, s2 = 0, lo = 1, hi = 0;
    for (int i = 0; i < N; i++) s += x[i], s2 += (double)x[i] * x[i], lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
    double mean = s / N, var = s2 / N - mean * mean;
    EXPECT(fabs(mean - 0.5) < 6 * sqrt(1.0 / 12 / N), "uniform mean %g", mean);
    EXPECT(fabs(var - 1.0 / 12) < 0.002, "uniform variance %g", var);
    EXPECT(lo >= 0 && hi < 1, "range [%g, %g]", lo, hi);
    rng_normal_cpu(&r, x, N, 0, 1);
    s = s2 = 0;
    double s4 = 0;
    for (int i = 0; i < N; i++) s += x[i], s2 += (double)x[i] * x[i], s4 += pow(x[i], 4);
    mean = s / N, var = s2 / N - mean * mean;
    EXPECT(fabs(mean) < 6 / sqrt(N), "normal mean %g", mean);
    EXPECT(fabs(var - 1) < 6 * sqrt(2.0 / N), "normal variance %g", var);
    EXPECT(fabs(s4 / N - 3) < 0.05, "normal fourth moment %g (3 for a Gaussian)", s4 / N);
    free(x);
}

static void test_below_and_shuffle(void) {
    rng r = rng_make(9, 3);
    int count[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint32_t k = rng_below(&r, 7);
        REQUIRE(k < 7, "rng_below(7) gave %u", k);
        count[k]++;
    }
    for (int k = 0; k < 7; k++) EXPECT(abs(count[k] - 10000) < 600, "value %d drawn %d times of 70000", k, count[k]);
    int32_t idx[100];
    int seen[100] = {0};
    for (int i = 0; i < 100; i++) idx[i] = i;
    rng_shuffle_i32(&r, idx, 100);
    int moved = 0;
    for (int i = 0; i < 100; i++) seen[idx[i]]++, moved += idx[i] != i;
    for (int i = 0; i < 100; i++) EXPECT(seen[i] == 1, "shuffle lost or duplicated %d", i);
    EXPECT(moved > 80, "a shuffle of 100 left %d in place", 100 - moved);
}

static void test_cpu_equals_gpu(void) {
    REQUIRE_GPU();
    enum { N = 100003 };
    float *h = malloc(N * sizeof *h), *g = malloc(N * sizeof *g);
    void *d = gpu_malloc(N * sizeof(float), "rng test");
    rng a = rng_make(2024, 5), b = rng_make(2024, 5);
    a.offset = b.offset = 13; /* an offset that is not a multiple of 4 */
    rng_uniform_cpu(&a, h, N, -1, 3);
    rng_uniform_gpu(&b, d, N, -1, 3);
    gpu_memcpy_d2h(g, d, N * sizeof(float));
    long diff = 0;
    for (long i = 0; i < N; i++) diff += h[i] != g[i];
    EXPECT(diff == 0, "%ld of %d uniform values differ between CPU and GPU", diff, N);
    EXPECT(a.offset == b.offset);
    rng_normal_cpu(&a, h, N, 0.5f, 2.0f);
    rng_normal_gpu(&b, d, N, 0.5f, 2.0f);
    gpu_memcpy_d2h(g, d, N * sizeof(float));
    long off_by_more = 0, not_equal = 0;
    for (long i = 0; i < N; i++) {
        not_equal += h[i] != g[i];
        off_by_more += fabsf(h[i] - g[i]) > fabsf(h[i]) * 1.2e-7f + 1e-30f;
    }
    EXPECT(off_by_more == 0, "%ld normal values differ by more than one float ulp", off_by_more);
    printf("  normal fill: %ld of %d values not bit-identical (1 ulp allowed)\n", not_equal, N);
    gpu_free(d);
    free(h);
    free(g);
}

int main(void) {
    RUN(test_philox_known_answers);
    RUN(test_stream_layout);
    RUN(test_uniform_map);
    RUN(test_normal_map);
    RUN(test_fills_match_words);
    RUN(test_chunks_equal_whole);
    RUN(test_streams_and_seeds_differ);
    RUN(test_distributions);
    RUN(test_below_and_shuffle);
    RUN(test_cpu_equals_gpu);
    return test_finish("test_rng");
}

/* nms.c: greedy NMS, batched NMS by key and the per-segment top k on the CPU (nms.h).
 *
 * The reference is the plain algorithm: rank the boxes (nms_rank_key: score descending,
 * index ascending), walk them, keep a box unless an earlier kept box of the same key
 * overlaps it with IoU > thr, suppress the later ones it overlaps. Scratch comes from
 * rt->host and is released before returning. */
#include "ops/nms.h"

#include "ops/boxes.h"
#include "ops/ops_internal.h"

#include <stdlib.h>

void nms_check(const char *op, const tensor *boxes, const tensor *scores, const tensor *keys, double thr,
               const tensor *keep) {
    char s[128];
    CHECK(boxes && scores && keep, "%s: boxes, scores and keep are required", op);
    CHECK(boxes->dtype == DTYPE_F32 && boxes->ndim == 2 && boxes->shape[1] == 4, "%s: boxes must be f32 [n,4], got %s",
          op, tensor_str(boxes, s, sizeof s));
    int n = boxes->shape[0];
    tensor_expect(scores, DTYPE_F32, boxes->device, TSHAPE(n), "nms scores [n]");
    if (keys) tensor_expect(keys, DTYPE_I32, boxes->device, TSHAPE(n), "batched_nms keys [n] i32");
    tensor_expect(keep, DTYPE_I32, boxes->device, TSHAPE(n), "nms keep [n] i32");
    CHECK(thr >= 0, "%s: IoU threshold %g must be >= 0", op, thr);
}

/* (key, rank) of one box, for the grouping sort. */
typedef struct nms_item {
    uint32_t key; /* the i32 key with the sign bit flipped: unsigned order = signed order */
    uint64_t rank;
} nms_item;

static int item_cmp(const void *pa, const void *pb) {
    const nms_item *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return a->rank < b->rank ? -1 : a->rank > b->rank;
}

static int u64_cmp(const void *pa, const void *pb) {
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

/* Greedy NMS over one group: it[0..m) in rank order; sets kept[p] for the survivors. */
static void nms_group(const float *boxes, const nms_item *it, int m, double thr, uint8_t *kept) {
    for (int p = 0; p < m; p++) kept[p] = 1;
    for (int p = 0; p < m; p++) {
        if (!kept[p]) continue;
        const float *a = boxes + (int64_t)(uint32_t)it[p].rank * 4;
        for (int q = p + 1; q < m; q++)
            if (kept[q] && (double)box_iou_one(a, boxes + (int64_t)(uint32_t)it[q].rank * 4) > thr) kept[q] = 0;
    }
}

int batched_nms_cpu(runtime *rt, const tensor *boxes, const tensor *scores, const tensor *keys, double thr,
                    tensor *keep) {
    ops_expect_cpu("batched_nms_cpu", boxes);
    nms_check("batched_nms", boxes, scores, keys, thr, keep);
    int n = boxes->shape[0];
    int32_t *out = tensor_i32(keep);
    if (n == 0) return 0;
    arena_mark mark = arena_get_mark(&rt->host);
    nms_item *it = arena_alloc(&rt->host, (size_t)n * sizeof *it);
    uint8_t *kept = arena_alloc(&rt->host, (size_t)n);
    uint64_t *ranks = arena_alloc(&rt->host, (size_t)n * sizeof *ranks);
    const float *s = tensor_f32(scores);
    for (int i = 0; i < n; i++) {
        it[i].key = keys ? (uint32_t)tensor_i32(keys)[i] ^ 0x80000000u : 0;
        it[i].rank = nms_rank_key(s[i], i);
    }
    qsort(it, (size_t)n, sizeof *it, item_cmp);
    for (int g0 = 0, g1; g0 < n; g0 = g1) { /* one key group at a time */
        for (g1 = g0 + 1; g1 < n && it[g1].key == it[g0].key;) g1++;
        nms_group(tensor_f32(boxes), it + g0, g1 - g0, thr, kept + g0);
    }
    int count = 0;
    for (int p = 0; p < n; p++)
        if (kept[p]) ranks[count++] = it[p].rank;
    qsort(ranks, (size_t)count, sizeof *ranks, u64_cmp); /* merge the groups by rank */
    for (int p = 0; p < n; p++) out[p] = p < count ? (int32_t)(uint32_t)ranks[p] : -1;
    arena_release(&rt->host, mark);
    return count;
}

int nms_cpu(runtime *rt, const tensor *boxes, const tensor *scores, double thr, tensor *keep) {
    return batched_nms_cpu(rt, boxes, scores, NULL, thr, keep);
}

void topk_segments_check(const char *op, const tensor *scores, const int32_t *off, int S, int k, const tensor *idx) {
    char s[128];
    CHECK(scores && idx && off, "%s: scores, offsets and idx are required", op);
    CHECK(scores->dtype == DTYPE_F32 && scores->ndim == 1, "%s: scores must be f32 [n], got %s", op,
          tensor_str(scores, s, sizeof s));
    CHECK(S >= 1 && k >= 1, "%s: need S >= 1 segments and k >= 1, got S %d, k %d", op, S, k);
    CHECK(off[0] == 0 && off[S] == scores->shape[0], "%s: offsets must run from 0 to n = %d, got %d..%d", op,
          scores->shape[0], off[0], off[S]);
    for (int i = 0; i < S; i++) CHECK(off[i] <= off[i + 1], "%s: offsets decrease at segment %d", op, i);
    tensor_expect(idx, DTYPE_I32, scores->device, TSHAPE(S, k), "topk_segments idx [S,k] i32");
}

void topk_segments_cpu(runtime *rt, const tensor *scores, const int32_t *off, int S, int k, tensor *idx) {
    ops_expect_cpu("topk_segments_cpu", scores);
    topk_segments_check("topk_segments", scores, off, S, k, idx);
    const float *v = tensor_f32(scores);
    int32_t *out = tensor_i32(idx);
    int longest = 0;
    for (int s = 0; s < S; s++)
        if (off[s + 1] - off[s] > longest) longest = off[s + 1] - off[s];
    arena_mark mark = arena_get_mark(&rt->host);
    uint64_t *r = arena_alloc(&rt->host, (size_t)(longest ? longest : 1) * sizeof *r);
    for (int s = 0; s < S; s++) {
        int len = off[s + 1] - off[s], m = len < k ? len : k;
        for (int i = 0; i < len; i++) r[i] = nms_rank_key(v[off[s] + i], off[s] + i);
        qsort(r, (size_t)len, sizeof *r, u64_cmp);
        for (int j = 0; j < k; j++) out[(int64_t)s * k + j] = j < m ? (int32_t)(uint32_t)r[j] : -1;
    }
    arena_release(&rt->host, mark);
}

/* checkpoint.c: training checkpoints (see checkpoint.h). */
#include "train/checkpoint.h"

#include "core/gpu.h"
#include "core/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOMENTUM_PREFIX "optimizer.momentum."

void checkpoint_meta_free(checkpoint_meta *m) {
    free(m->config_json);
    m->config_json = NULL;
}

/* A host pointer to t's data: t's own, or a malloc'd copy of a device tensor (*owned). */
static const void *host_data(const tensor *t, void **owned) {
    *owned = NULL;
    if (t->device != DEVICE_CUDA) return t->data;
    *owned = malloc(tensor_bytes(t) ? tensor_bytes(t) : 1);
    if (*owned) gpu_memcpy_d2h(*owned, t->data, tensor_bytes(t));
    return *owned;
}

static char *cursor_json(const sampler_cursor *c, int64_t next_batch) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "pass", (double)c->pass);
    cJSON_AddNumberToObject(o, "pos", (double)c->pos);
    cJSON_AddNumberToObject(o, "batches", (double)c->batches);
    cJSON_AddNumberToObject(o, "next_batch", (double)next_batch);
    cJSON *b = cJSON_AddArrayToObject(o, "buckets");
    for (int g = 0; g < 2; g++) cJSON_AddItemToArray(b, cJSON_CreateIntArray(c->bucket[g], c->n_bucket[g]));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int parse_cursor(const char *s, sampler_cursor *c, int64_t *next_batch) {
    cJSON *o = cJSON_Parse(s);
    memset(c, 0, sizeof *c);
    const cJSON *p = cJSON_GetObjectItem(o, "pass"), *q = cJSON_GetObjectItem(o, "pos"), *n = cJSON_GetObjectItem(o, "batches"),
                *nb = cJSON_GetObjectItem(o, "next_batch"), *b = cJSON_GetObjectItem(o, "buckets");
    int ok = cJSON_IsNumber(p) && cJSON_IsNumber(q) && cJSON_IsNumber(n) && cJSON_IsNumber(nb) && cJSON_IsArray(b) &&
             cJSON_GetArraySize(b) == 2;
    if (ok) {
        c->pass = (int64_t)p->valuedouble, c->pos = (int64_t)q->valuedouble, c->batches = (int64_t)n->valuedouble;
        *next_batch = (int64_t)nb->valuedouble;
        for (int g = 0; g < 2 && ok; g++) {
            const cJSON *arr = cJSON_GetArrayItem(b, g), *v;
            ok = cJSON_IsArray(arr) && cJSON_GetArraySize(arr) <= SAMPLER_MAX_BATCH;
            cJSON_ArrayForEach(v, arr) {
                if (!ok) break;
                ok = cJSON_IsNumber(v);
                if (ok) c->bucket[g][c->n_bucket[g]++] = (int32_t)v->valuedouble;
            }
        }
    }
    cJSON_Delete(o);
    return ok ? 0 : -1;
}

int checkpoint_save(const char *path, const param_group *g, const st_entry *extra, int n_extra, const checkpoint_meta *m,
                    char *err, size_t errn) {
    int cap = 2 * g->n + n_extra + 1;
    st_entry *e = calloc((size_t)cap, sizeof *e);
    void **owned = calloc((size_t)cap, sizeof *owned);
    char **names = calloc((size_t)cap, sizeof *names);
    int n = 0, rc = -1;
    if (!e || !owned || !names) goto out;
    for (int i = 0; i < g->n; i++) {
        const tensor *p = g->params[i];
        e[n] = (st_entry){p->name, p->dtype, p->ndim, {0}, host_data(p, &owned[n])};
        memcpy(e[n].shape, p->shape, sizeof p->shape);
        if (!e[n].data) goto out;
        n++;
        if (!g->trainable[i]) continue;
        size_t len = strlen(MOMENTUM_PREFIX) + strlen(p->name) + 1;
        if (!(names[n] = malloc(len))) goto out;
        snprintf(names[n], len, "%s%s", MOMENTUM_PREFIX, p->name);
        e[n] = (st_entry){names[n], DTYPE_F32, p->ndim, {0}, host_data(&g->momentum[i], &owned[n])};
        memcpy(e[n].shape, p->shape, sizeof p->shape);
        if (!e[n].data) goto out;
        n++;
    }
    for (int i = 0; i < n_extra; i++) e[n++] = extra[i];
    char ver[16], it[32], steps[32], seed[32], threads[16];
    snprintf(ver, sizeof ver, "%d", CHECKPOINT_VERSION);
    snprintf(it, sizeof it, "%lld", (long long)m->iteration);
    snprintf(steps, sizeof steps, "%lld", (long long)m->optimizer_steps);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)m->seed);
    snprintf(threads, sizeof threads, "%d", m->threads);
    char *cur = cursor_json(&m->cursor, m->next_batch);
    if (!cur) goto out;
    const char *keys[] = {"format", "version", "config", "iteration", "optimizer_steps", "seed", "threads", "sampler"};
    const char *vals[] = {CHECKPOINT_FORMAT, ver, m->config_json ? m->config_json : "{}", it, steps, seed, threads, cur};
    rc = safetensors_write(path, e, n, keys, vals, 8, err, errn);
    free(cur);
out:
    if (rc && !err[0]) mrc_fail(err, errn, "%s: out of memory", path);
    for (int i = 0; owned && names && i < cap; i++) free(owned[i]), free(names[i]);
    free(e), free(owned), free(names);
    return rc;
}

/* Appends ", name" (or a first "name") to a report list, keeping it bounded. */
static void list_add(char *list, size_t n, int *count, const char *item) {
    size_t len = strlen(list);
    if (*count < 8 && len + strlen(item) + 3 < n) snprintf(list + len, n - len, "%s%s", *count ? ", " : "", item);
    else if (*count == 8 && len + 6 < n) snprintf(list + len, n - len, ", ...");
    (*count)++;
}

/* Copies the file's tensor into t (host or device). */
static void copy_in(const safetensors *st, const st_tensor *s, tensor *t) {
    const void *src = safetensors_data(st, s);
    if (t->device == DEVICE_CUDA) gpu_memcpy_h2d(t->data, src, s->bytes);
    else memcpy(t->data, src, s->bytes);
}

static int same_shape(const st_tensor *s, const tensor *t) {
    if (s->dtype != t->dtype || s->ndim != t->ndim) return 0;
    for (int d = 0; d < s->ndim; d++)
        if (s->shape[d] != t->shape[d]) return 0;
    return 1;
}

static const char *meta_or(const safetensors *st, const char *key) { return safetensors_meta(st, key); }

int checkpoint_load(const char *path, param_group *g, checkpoint_mode mode, checkpoint_meta *m, char *report,
                    size_t reportn, char *err, size_t errn) {
    safetensors st;
    if (safetensors_open(&st, path, err, errn)) return -1;
    const char *fmt = meta_or(&st, "format");
    if (mode == CHECKPOINT_RESUME && (!fmt || strcmp(fmt, CHECKPOINT_FORMAT)))
        return safetensors_close(&st), mrc_fail(err, errn, "%s: not a maskrcnn.c training checkpoint (no format metadata); "
                                                          "use model.weights= to start from its weights",
                                                path);
    char missing[600] = "", misshapen[600] = "", unexpected[600] = "";
    int n_missing = 0, n_misshapen = 0, n_unexpected = 0, loaded = 0;
    for (int i = 0; i < g->n; i++) {
        tensor *p = g->params[i];
        const st_tensor *s = safetensors_find(&st, p->name);
        if (!s) {
            list_add(missing, sizeof missing, &n_missing, p->name);
            continue;
        }
        if (!same_shape(s, p)) {
            char item[512], a[64] = "", b[64] = "";
            for (int d = 0; d < s->ndim; d++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%d", d ? "," : "", s->shape[d]);
            for (int d = 0; d < p->ndim; d++) snprintf(b + strlen(b), sizeof b - strlen(b), "%s%d", d ? "," : "", p->shape[d]);
            snprintf(item, sizeof item, "%.200s %s[%s] in the file, %s[%s] in the model", p->name, dtype_name(s->dtype), a,
                     dtype_name(p->dtype), b);
            list_add(misshapen, sizeof misshapen, &n_misshapen, item);
            continue;
        }
        copy_in(&st, s, p);
        loaded++;
        if (mode != CHECKPOINT_RESUME || !g->trainable[i]) continue;
        char name[ST_NAME_MAX + 32];
        snprintf(name, sizeof name, "%s%s", MOMENTUM_PREFIX, p->name);
        const st_tensor *ms = safetensors_find(&st, name);
        if (!ms || !same_shape(ms, &g->momentum[i])) list_add(missing, sizeof missing, &n_missing, name);
        else copy_in(&st, ms, &g->momentum[i]);
    }
    for (int k = 0; k < st.count; k++) {
        const char *name = st.tensors[k].name;
        if (!strncmp(name, "optimizer.", 10) || !strncmp(name, "loss.", 5)) continue;
        int known = 0;
        for (int i = 0; i < g->n && !known; i++) known = !strcmp(g->params[i]->name, name);
        if (!known) list_add(unexpected, sizeof unexpected, &n_unexpected, name);
    }
    if (reportn)
        snprintf(report, reportn, "%s: loaded %d of %d parameters%s%s%s%s%s%s%s%s%s", path, loaded, g->n,
                 n_missing ? "; missing: " : "", missing, n_unexpected ? "; unexpected: " : "", unexpected,
                 n_misshapen ? "; misshapen: " : "", misshapen, mode == CHECKPOINT_RESUME ? " (resume: weights, momentum, "
                                                                                         "schedule, data order)"
                                                                                       : " (weights only)",
                 "", "");
    int rc = 0;
    if (mode == CHECKPOINT_RESUME && (n_missing || n_misshapen))
        rc = mrc_fail(err, errn, "%s: cannot resume: %d missing and %d misshapen tensors (%s%s%s)", path, n_missing,
                      n_misshapen, missing, n_missing && n_misshapen ? "; " : "", misshapen);
    else if (mode == CHECKPOINT_WEIGHTS && loaded == 0 && g->n > 0)
        rc = mrc_fail(err, errn, "%s: no tensor matches a parameter of this model (missing: %s)", path, missing);
    if (!rc && mode == CHECKPOINT_RESUME && m) {
        const char *it = meta_or(&st, "iteration"), *steps = meta_or(&st, "optimizer_steps"), *seed = meta_or(&st, "seed"),
                   *threads = meta_or(&st, "threads"), *cur = meta_or(&st, "sampler"), *cfg = meta_or(&st, "config");
        memset(m, 0, sizeof *m);
        if (!it || !steps || !seed || !threads || !cur || !cfg || parse_cursor(cur, &m->cursor, &m->next_batch))
            rc = mrc_fail(err, errn, "%s: the checkpoint's metadata is incomplete (iteration, optimizer_steps, seed, threads, "
                                     "sampler, config)",
                          path);
        else {
            m->iteration = strtoll(it, NULL, 10), m->optimizer_steps = strtoll(steps, NULL, 10);
            m->seed = strtoull(seed, NULL, 10), m->threads = atoi(threads);
            m->config_json = strdup(cfg);
            g->steps = m->optimizer_steps;
        }
    }
    safetensors_close(&st);
    return rc;
}

int checkpoint_read_extra(const char *path, const char *name, tensor *dst, char *err, size_t errn) {
    safetensors st;
    if (safetensors_open(&st, path, err, errn)) return -1;
    int rc = safetensors_read(&st, name, dst, err, errn);
    safetensors_close(&st);
    return rc;
}

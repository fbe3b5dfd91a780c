/* sampler.c: training-image sampling (see sampler.h). */
#include "data/sampler.h"

#include "core/rng.h"
#include "core/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lvis_repeat_factors(const lvis_data *d, double threshold, double *r_img) {
    int n_with = 0;
    for (int i = 0; i < d->n_img; i++) n_with += d->imgs[i].n_ann > 0;
    for (int i = 0; i < d->n_img; i++) {
        double r = 0;
        for (int j = 0; j < d->imgs[i].n_ann; j++) {
            const lvis_category *k = &d->cats[d->anns[d->ann_order[d->imgs[i].first_ann + j]].category];
            double f = (double)k->images_loaded / n_with;
            r = fmax(r, fmax(1.0, sqrt(threshold / f)));
        }
        r_img[i] = r;
    }
    return n_with;
}

/* Copies of training image i in a pass; d2 draws one uniform per image per pass. */
static int copies(const sampler *s, int i, rng *r) {
    double rep = s->repeat[i];
    switch (s->cfg.kind) {
    case SAMPLER_RFS_D2: {
        double whole = floor(rep);
        return (int)whole + (rng_uniform(r) < rep - whole);
    }
    case SAMPLER_RFS_MMDET: return (int)ceil(rep);
    default: return 1;
    }
}

/* Pass e into s->pass: the copies, then a Fisher-Yates shuffle, all from stream (SAMPLER, e). */
static int make_pass(sampler *s, int64_t e) {
    rng r = rng_make(s->cfg.seed, RNG_STREAM_SAMPLER + (uint64_t)e);
    int64_t len = 0;
    for (int i = 0; i < s->n; i++) {
        int c = copies(s, i, &r);
        if (len + c > s->pass_cap) {
            int64_t cap = s->pass_cap ? 2 * s->pass_cap : 1024;
            while (cap < len + c) cap *= 2;
            int32_t *p = realloc(s->pass, (size_t)cap * sizeof *p);
            if (!p) return -1;
            s->pass = p, s->pass_cap = cap;
        }
        for (int k = 0; k < c; k++) s->pass[len++] = i;
    }
    if (len > INT32_MAX) return -1;
    if (s->cfg.kind != SAMPLER_SEQUENTIAL) rng_shuffle_i32(&r, s->pass, (int)len);
    s->pass_len = len;
    return 0;
}

int sampler_init(sampler *s, const lvis_data *d, const sampler_config *cfg, char *err, size_t errn) {
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    if (cfg->batch < 1 || cfg->batch > SAMPLER_MAX_BATCH)
        return mrc_fail(err, errn, "sampler: batch %d is not in [1, %d]", cfg->batch, SAMPLER_MAX_BATCH);
    int plain = cfg->kind == SAMPLER_UNIFORM || cfg->kind == SAMPLER_SEQUENTIAL;
    if (!plain && !(cfg->rfs_threshold > 0 && cfg->rfs_threshold <= 1))
        return mrc_fail(err, errn, "sampler: the RFS threshold %g is not in (0, 1]", cfg->rfs_threshold);
    double *r = malloc(((size_t)d->n_img + 1) * sizeof *r);
    s->image = malloc(((size_t)d->n_img + 1) * sizeof *s->image);
    s->repeat = malloc(((size_t)d->n_img + 1) * sizeof *s->repeat);
    s->group = malloc((size_t)d->n_img + 1);
    if (!r || !s->image || !s->repeat || !s->group) {
        free(r), sampler_free(s);
        return mrc_fail(err, errn, "sampler: out of memory");
    }
    lvis_repeat_factors(d, plain ? 1.0 : cfg->rfs_threshold, r);
    for (int i = 0; i < d->n_img; i++) {
        if (d->imgs[i].n_ann == 0 && cfg->kind != SAMPLER_SEQUENTIAL) continue;
        s->image[s->n] = i;
        s->repeat[s->n] = plain ? 1.0 : r[i];
        s->group[s->n] = d->imgs[i].width > d->imgs[i].height ? 0 : 1;
        s->n++;
    }
    free(r);
    if (s->n == 0) {
        sampler_free(s);
        if (cfg->kind == SAMPLER_SEQUENTIAL) return mrc_fail(err, errn, "%s: no image", d->path);
        return mrc_fail(err, errn, "%s: no image has an annotation to train on", d->path);
    }
    if (make_pass(s, 0)) {
        sampler_free(s);
        return mrc_fail(err, errn, "sampler: out of memory");
    }
    return 0;
}

void sampler_free(sampler *s) {
    free(s->image), free(s->repeat), free(s->group), free(s->pass);
    memset(s, 0, sizeof *s);
}

int sampler_next(sampler *s, int32_t *idx) {
    sampler_cursor *c = &s->cur;
    const int b = s->cfg.batch;
    for (;;) {
        if (c->pos >= s->pass_len) {
            /* out of memory here would only repeat: the pass size never grows past pass 0's
             * by much (d2's rounding) and the buffer is reused */
            if (make_pass(s, c->pass + 1)) {
                fprintf(stderr, "sampler: out of memory for pass %lld\n", (long long)(c->pass + 1));
                abort();
            }
            c->pass++, c->pos = 0;
        }
        int32_t k = s->pass[c->pos++];
        int g = s->cfg.group_aspect ? s->group[k] : 0;
        c->bucket[g][c->n_bucket[g]++] = k;
        if (c->n_bucket[g] == b) {
            for (int i = 0; i < b; i++) idx[i] = s->image[c->bucket[g][i]];
            c->n_bucket[g] = 0;
            c->batches++;
            return g;
        }
    }
}

void sampler_get_cursor(const sampler *s, sampler_cursor *c) { *c = s->cur; }

int sampler_set_cursor(sampler *s, const sampler_cursor *c, char *err, size_t errn) {
    if (c->pass < 0 || c->pos < 0 || c->batches < 0) return mrc_fail(err, errn, "sampler cursor: negative position");
    for (int g = 0; g < 2; g++) {
        if (c->n_bucket[g] < 0 || c->n_bucket[g] >= s->cfg.batch || (g == 1 && !s->cfg.group_aspect && c->n_bucket[g]))
            return mrc_fail(err, errn, "sampler cursor: bucket %d holds %d images (batch %d)", g, c->n_bucket[g], s->cfg.batch);
        for (int i = 0; i < c->n_bucket[g]; i++)
            if (c->bucket[g][i] < 0 || c->bucket[g][i] >= s->n)
                return mrc_fail(err, errn, "sampler cursor: bucket entry %d is not a training image", c->bucket[g][i]);
    }
    if (make_pass(s, c->pass)) return mrc_fail(err, errn, "sampler: out of memory");
    if (c->pos > s->pass_len) {
        make_pass(s, s->cur.pass);
        return mrc_fail(err, errn, "sampler cursor: position %lld is past pass %lld's %lld images (another data set or seed?)",
                    (long long)c->pos, (long long)c->pass, (long long)s->pass_len);
    }
    s->cur = *c;
    return 0;
}

double sampler_epoch_images(const sampler *s) {
    double sum = 0;
    for (int i = 0; i < s->n; i++)
        sum += s->cfg.kind == SAMPLER_RFS_D2 ? s->repeat[i] : s->cfg.kind == SAMPLER_RFS_MMDET ? ceil(s->repeat[i]) : 1;
    return sum;
}

int64_t sampler_epoch_iterations(const sampler *s) { return (int64_t)ceil(sampler_epoch_images(s) / s->cfg.batch - 1e-9); }

int sampler_kind_parse(const char *name, sampler_kind *out) {
    if (!strcmp(name, "rfs")) *out = SAMPLER_RFS_D2;
    else if (!strcmp(name, "rfs_mmdet") || !strcmp(name, "rfs-mmdet")) *out = SAMPLER_RFS_MMDET;
    else if (!strcmp(name, "uniform")) *out = SAMPLER_UNIFORM;
    else return -1;
    return 0;
}

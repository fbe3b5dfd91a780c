/* loader.c: the training data loader (see loader.h).
 *
 * A ring of `prefetch` slots, each holding one batch in preparation or in the caller's
 * hands. Dispatching batch k into a slot (always in the caller's thread, in batch order):
 * draw the images from the sampler and each image's short side and flip, compute the
 * resized sizes from the annotation's size (no decode needed), hence the canvas, and queue
 * one task per image. A task (a worker thread, or the caller when threads = 0) decodes,
 * resizes, flips and normalises straight into the slot's canvas and transforms the
 * instances into the image's own staging arrays. loader_next waits for its slot's tasks,
 * then assembles: failed images are logged and squeezed out, the instances concatenated. */
#include "data/loader.h"

#include "core/gpu.h"
#include "core/rng.h"
#include "core/util.h"
#include "data/transform.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* What one image's task produced. */
typedef struct stage {
    int32_t index;
    int nh, nw, short_side, flip;
    jpeg_status status;   /* JPEG_OK, or why the image failed */
    int size_mismatch;
    int too_many;         /* more kept instances than max_gt */
    char err[2400];       /* a path (up to 2 KB) and the problem */
    int n_gt, dropped;
    float *box;           /* [max_gt * 4] */
    int32_t *cls, *npoly; /* [max_gt] */
    int64_t *poly_n;
    int64_t n_poly, cap_poly;
    float *verts;
    int64_t n_vert, cap_vert;
} stage;

typedef struct slot {
    loader_batch b;
    stage st[SAMPLER_MAX_BATCH];
    int n;                /* images dispatched */
    int pending;          /* tasks not finished (under the loader's mutex) */
    sampler_cursor cursor_before; /* the sampler just before this batch was drawn */
    size_t pixel_cap;     /* floats */
    int pinned;           /* pixels from gpu_host_alloc */
    int64_t cap_box, cap_cls, cap_first, cap_npoly, cap_pfirst, cap_pn, cap_vert;
} slot;

/* Per-thread decode resources. */
typedef struct worker {
    jpeg_decoder *jpeg;
    image_u8 decoded;
    uint8_t *resized;
    size_t resized_cap;
    void *work;
    size_t work_cap;
} worker;

typedef struct task {
    int slot, image;
} task;

struct loader {
    const lvis_data *d;
    loader_config cfg;
    sampler smp;
    slot *slots;
    int ring;             /* prefetch + 1 slots: one in the caller's hands */
    int64_t next_dispatch, next_return; /* batch numbers */
    loader_counts counts;
    uint8_t *logged;      /* [n_img]: this image's failure was logged */
    int64_t tried, succeeded; /* for the "no image at all" check */
    char first_err[2400];
    /* threads */
    int n_threads;
    pthread_t *tid;
    worker *workers;      /* n_threads, or 1 for threads = 0 */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    task *queue;
    int q_head, q_len, q_cap;
    int stop;
};

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

void loader_config_default(loader_config *c, int batch, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->sampler = (sampler_config){SAMPLER_RFS_D2, 0.001, batch, 1, seed};
    c->threads = 2, c->prefetch = 2;
    c->n_short = 6;
    for (int i = 0; i < 6; i++) c->short_sizes[i] = 640 + 32 * i;
    c->max_size = 1333, c->flip_prob = 0.5, c->bgr = 1;
    c->mean[0] = 103.530f, c->mean[1] = 116.280f, c->mean[2] = 123.675f;
    c->std[0] = c->std[1] = c->std[2] = 1.0f;
    c->size_divisibility = 32, c->max_gt = 1000, c->pinned = 1;
}

#define GROW(ptr, cap, need) MRC_GROW(ptr, cap, need)

/* ---- one image ------------------------------------------------------------------------- */

static int worker_buffers(worker *w, int h, int wd, int nh, int nw) {
    size_t need = (size_t)nh * (size_t)nw * 3, work = image_resize_work_bytes(h, wd, nh, nw);
    if (need > w->resized_cap) {
        free(w->resized);
        if (!(w->resized = malloc(need))) return w->resized_cap = 0, -1;
        w->resized_cap = need;
    }
    if (work > w->work_cap) {
        free(w->work);
        if (!(w->work = malloc(work))) return w->work_cap = 0, -1;
        w->work_cap = work;
    }
    return 0;
}

/* The instances of image st->index through the image's transform into st. */
static void image_instances(loader *l, stage *st, const geom_xform *t) {
    const lvis_data *d = l->d;
    const lvis_image *im = &d->imgs[st->index];
    st->n_gt = 0, st->dropped = 0, st->n_poly = 0, st->n_vert = 0;
    for (int j = 0; j < im->n_ann; j++) {
        const lvis_ann *a = &d->anns[d->ann_order[im->first_ann + j]];
        int64_t coords = 0;
        for (int p = 0; p < a->n_poly; p++) coords += d->polys[a->poly + p].n;
        if (GROW(st->verts, st->cap_vert, st->n_vert + coords) ||
            GROW(st->poly_n, st->cap_poly, st->n_poly + a->n_poly)) {
            st->status = JPEG_ERR_MEMORY;
            snprintf(st->err, sizeof st->err, "out of memory for the instances of image id %lld", (long long)im->id);
            return;
        }
        inst_geom g;
        if (!inst_geom_apply(t, a->bbox, d->verts, d->polys + a->poly, a->n_poly, st->verts + st->n_vert,
                             st->poly_n + st->n_poly, &g)) {
            st->dropped++;
            continue;
        }
        if (st->n_gt == l->cfg.max_gt) {
            st->too_many = 1;
            return;
        }
        memcpy(st->box + 4 * st->n_gt, g.box, sizeof g.box);
        st->cls[st->n_gt] = a->category;
        st->npoly[st->n_gt] = g.n_poly;
        st->n_gt++;
        st->n_poly += g.n_poly, st->n_vert += g.n_vert;
    }
}

static void run_task(loader *l, worker *w, task tk) {
    slot *s = &l->slots[tk.slot];
    stage *st = &s->st[tk.image];
    const lvis_image *im = &l->d->imgs[st->index];
    char path[2048];
    lvis_image_path(l->d, st->index, path, sizeof path);
    st->status = jpeg_read(w->jpeg, path, &w->decoded, st->err, sizeof st->err);
    if (st->status != JPEG_OK) return;
    if (w->decoded.h != im->height || w->decoded.w != im->width) {
        st->size_mismatch = 1;
        snprintf(st->err, sizeof st->err, "%s: the image is %dx%d (w x h), the annotations say %dx%d", path,
                 w->decoded.w, w->decoded.h, im->width, im->height);
        return;
    }
    if (worker_buffers(w, im->height, im->width, st->nh, st->nw)) {
        st->status = JPEG_ERR_MEMORY;
        snprintf(st->err, sizeof st->err, "%s: out of memory for the resize", path);
        return;
    }
    image_resize_bilinear_work(w->decoded.data, im->height, im->width, w->resized, st->nh, st->nw, w->work);
    if (st->flip) image_flip_h(w->resized, st->nh, st->nw);
    float *canvas = s->b.pixels + (size_t)tk.image * (size_t)s->b.canvas_h * (size_t)s->b.canvas_w * 3;
    image_normalize_pad(w->resized, st->nh, st->nw, l->cfg.bgr, l->cfg.mean, l->cfg.std, canvas, s->b.canvas_h,
                        s->b.canvas_w);
    geom_xform t;
    geom_xform_init(&t, im->height, im->width, st->nh, st->nw, st->flip);
    image_instances(l, st, &t);
}

/* ---- threads --------------------------------------------------------------------------- */

static void *worker_main(void *arg) {
    loader *l = ((void **)arg)[0];
    worker *w = ((void **)arg)[1];
    free(arg);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->q_len == 0) pthread_cond_wait(&l->work_cv, &l->mu);
        if (l->stop) break;
        task tk = l->queue[l->q_head];
        l->q_head = (l->q_head + 1) % l->q_cap, l->q_len--;
        pthread_mutex_unlock(&l->mu);
        run_task(l, w, tk);
        pthread_mutex_lock(&l->mu);
        if (--l->slots[tk.slot].pending == 0) pthread_cond_broadcast(&l->done_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- dispatch and assembly ------------------------------------------------------------- */

static int ceil_to(int v, int m) { return (v + m - 1) / m * m; }

/* Batch l->next_dispatch into slot s: images, draws, canvas, tasks. */
static int dispatch(loader *l, slot *s, char *err, size_t errn) {
    const loader_config *c = &l->cfg;
    int32_t idx[SAMPLER_MAX_BATCH];
    sampler_get_cursor(&l->smp, &s->cursor_before);
    s->b.group = sampler_next(&l->smp, idx);
    s->b.index = l->next_dispatch++;
    s->n = c->sampler.batch;
    int ch = 0, cw = 0;
    for (int i = 0; i < s->n; i++) {
        stage *st = &s->st[i];
        const lvis_image *im = &l->d->imgs[idx[i]];
        /* two words per image slot: the short side, then the flip */
        rng r = rng_make(c->sampler.seed, RNG_STREAM_AUGMENT);
        r.offset = ((uint64_t)s->b.index * SAMPLER_MAX_BATCH + (uint64_t)i) * 2;
        st->index = idx[i];
        st->short_side = c->short_sizes[rng_below(&r, (uint32_t)c->n_short)];
        st->flip = rng_uniform(&r) < c->flip_prob;
        resize_shape(im->height, im->width, st->short_side, c->max_size, &st->nh, &st->nw);
        st->status = JPEG_OK, st->size_mismatch = 0, st->too_many = 0, st->err[0] = 0;
        st->n_gt = 0, st->dropped = 0;
        if (st->nh > ch) ch = st->nh;
        if (st->nw > cw) cw = st->nw;
    }
    /* the largest canvas this batch's group can need: landscape images (w > h) have the
     * short side as height, portrait and square ones as width; ungrouped batches mix both */
    int max_short = 0;
    for (int k = 0; k < c->n_short; k++)
        if (c->short_sizes[k] > max_short) max_short = c->short_sizes[k];
    int short_cap = ceil_to(max_short < c->max_size ? max_short : c->max_size, c->size_divisibility);
    int long_cap = ceil_to(c->max_size, c->size_divisibility);
    int cap_h = !c->sampler.group_aspect ? long_cap : s->b.group == 0 ? short_cap : long_cap;
    int cap_w = !c->sampler.group_aspect ? long_cap : s->b.group == 0 ? long_cap : short_cap;
    int step = c->canvas_step ? c->canvas_step : c->size_divisibility;
    ch = ceil_to(ch, c->size_divisibility), cw = ceil_to(cw, c->size_divisibility);
    int sh = ceil_to(ch, step), sw = ceil_to(cw, step);
    s->b.canvas_h = sh < cap_h ? sh : ch > cap_h ? ch : cap_h;
    s->b.canvas_w = sw < cap_w ? sw : cw > cap_w ? cw : cap_w;
    size_t need = (size_t)s->n * (size_t)s->b.canvas_h * (size_t)s->b.canvas_w * 3;
    if (need > s->pixel_cap) { /* grows during warm-up only: the canvas sizes are bounded */
        if (s->pinned) gpu_host_free(s->b.pixels);
        else free(s->b.pixels);
        s->b.pixels = c->pinned ? gpu_host_alloc(need * sizeof(float)) : NULL;
        s->pinned = s->b.pixels != NULL;
        if (!s->b.pixels) s->b.pixels = malloc(need * sizeof(float));
        if (!s->b.pixels) return s->pixel_cap = 0, mrc_fail(err, errn, "loader: out of memory for a %zu MB batch", need * 4 >> 20);
        s->pixel_cap = need;
    }
    if (l->n_threads == 0) {
        for (int i = 0; i < s->n; i++) run_task(l, &l->workers[0], (task){(int)(s - l->slots), i});
        return 0;
    }
    pthread_mutex_lock(&l->mu);
    s->pending = s->n;
    for (int i = 0; i < s->n; i++) {
        l->queue[(l->q_head + l->q_len) % l->q_cap] = (task){(int)(s - l->slots), i};
        l->q_len++;
    }
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

static void wait_slot(loader *l, slot *s) {
    if (l->n_threads == 0) return;
    pthread_mutex_lock(&l->mu);
    while (s->pending > 0) pthread_cond_wait(&l->done_cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

/* Failed images out (logged once each), instances concatenated. 1: a batch; 0: every image
 * failed; -1: the loader must stop (err). */
static int assemble(loader *l, slot *s, char *err, size_t errn) {
    loader_batch *b = &s->b;
    size_t img_floats = (size_t)b->canvas_h * (size_t)b->canvas_w * 3;
    int from[SAMPLER_MAX_BATCH];
    int64_t n_gt = 0, n_poly = 0, n_vert = 0;
    b->n = 0;
    for (int i = 0; i < s->n; i++) {
        stage *st = &s->st[i];
        l->tried++;
        if (st->too_many) {
            char path[2048];
            return mrc_fail(err, errn, "%s: image id %lld has more than max_gt = %d instances; raise the limit",
                        lvis_image_path(l->d, st->index, path, sizeof path), (long long)l->d->imgs[st->index].id,
                        l->cfg.max_gt);
        }
        if (st->status != JPEG_OK || st->size_mismatch) {
            if (st->size_mismatch) l->counts.size_mismatch++;
            else l->counts.failed[st->status]++;
            if (!l->first_err[0]) snprintf(l->first_err, sizeof l->first_err, "%s", st->err);
            if (!l->logged[st->index]) {
                l->logged[st->index] = 1;
                fprintf(stderr, "warning: %s; left out of training (%lld images left out so far)\n", st->err,
                        (long long)(l->tried - l->succeeded));
            }
            continue;
        }
        l->succeeded++;
        if (i != b->n)
            memmove(b->pixels + (size_t)b->n * img_floats, b->pixels + (size_t)i * img_floats, img_floats * sizeof(float));
        const lvis_image *im = &l->d->imgs[st->index];
        b->img[b->n] = (loader_image){st->index, st->nh, st->nw, im->height, im->width, st->short_side, st->flip,
                                      (int32_t)n_gt, st->n_gt};
        from[b->n++] = i;
        n_gt += st->n_gt, n_poly += st->n_poly, n_vert += st->n_vert;
        l->counts.dropped_gt += st->dropped;
    }
    memset(b->img + b->n, 0, (size_t)(SAMPLER_MAX_BATCH - b->n) * sizeof *b->img); /* no stale entries */
    if (l->succeeded == 0 && l->tried >= 64)
        return mrc_fail(err, errn, "no image could be read in the first %lld tried (is the image root right?); the first: %s",
                    (long long)l->tried, l->first_err);
    if (GROW(b->gt_box, s->cap_box, 4 * n_gt) || GROW(b->gt_class, s->cap_cls, n_gt) ||
        GROW(b->gt_first_poly, s->cap_first, n_gt) || GROW(b->gt_n_poly, s->cap_npoly, n_gt) ||
        GROW(b->poly_first, s->cap_pfirst, n_poly) || GROW(b->poly_n, s->cap_pn, n_poly) ||
        GROW(b->verts, s->cap_vert, n_vert))
        return mrc_fail(err, errn, "loader: out of memory");
    b->n_gt = 0, b->n_poly = 0, b->n_vert = 0;
    for (int k = 0; k < b->n; k++) {
        const stage *st = &s->st[from[k]];
        int64_t p = 0, v = 0;
        for (int g = 0; g < st->n_gt; g++) {
            memcpy(b->gt_box + 4 * b->n_gt, st->box + 4 * g, 4 * sizeof(float));
            b->gt_class[b->n_gt] = st->cls[g];
            b->gt_first_poly[b->n_gt] = (int32_t)b->n_poly;
            b->gt_n_poly[b->n_gt] = st->npoly[g];
            for (int q = 0; q < st->npoly[g]; q++, p++) {
                b->poly_first[b->n_poly] = b->n_vert;
                b->poly_n[b->n_poly] = st->poly_n[p];
                memcpy(b->verts + b->n_vert, st->verts + v, (size_t)st->poly_n[p] * sizeof(float));
                b->n_vert += st->poly_n[p], v += st->poly_n[p];
                b->n_poly++;
            }
            b->n_gt++;
        }
    }
    return b->n > 0;
}

const loader_batch *loader_next(loader *l, char *err, size_t errn) {
    double t0 = now_s();
    for (;;) {
        /* the slot returned last time is free again: keep `prefetch` batches in flight */
        while (l->next_dispatch < l->next_return + l->ring)
            if (dispatch(l, &l->slots[l->next_dispatch % l->ring], err, errn)) return NULL;
        slot *s = &l->slots[l->next_return % l->ring];
        wait_slot(l, s);
        int r = assemble(l, s, err, errn);
        l->next_return++;
        if (r < 0) return NULL;
        if (r == 0) continue; /* every image failed: on to the next batch */
        double w = now_s() - t0;
        l->counts.last_wait_s = w, l->counts.wait_s += w;
        l->counts.images += s->b.n, l->counts.batches++;
        return &s->b; /* the caller's until the next call, which dispatches into it again */
    }
}

const loader_counts *loader_get_counts(const loader *l) { return &l->counts; }

int64_t loader_epoch_iterations(const loader *l) { return sampler_epoch_iterations(&l->smp); }

/* ---- life cycle ------------------------------------------------------------------------ */

static int check_config(const loader_config *c, char *err, size_t errn) {
    if (c->threads < 0 || c->threads > 256) return mrc_fail(err, errn, "loader: threads %d is not in [0, 256]", c->threads);
    if (c->prefetch < 1 || c->prefetch > 64) return mrc_fail(err, errn, "loader: prefetch %d is not in [1, 64]", c->prefetch);
    if (c->n_short < 1 || c->n_short > LOADER_MAX_SIZES)
        return mrc_fail(err, errn, "loader: %d short sizes (want 1..%d)", c->n_short, LOADER_MAX_SIZES);
    for (int i = 0; i < c->n_short; i++)
        if (c->short_sizes[i] < 1 || c->short_sizes[i] > 8192)
            return mrc_fail(err, errn, "loader: short size %d is not in [1, 8192]", c->short_sizes[i]);
    if (c->max_size < 1 || c->max_size > 8192) return mrc_fail(err, errn, "loader: max_size %d is not in [1, 8192]", c->max_size);
    if (!(c->flip_prob >= 0 && c->flip_prob <= 1)) return mrc_fail(err, errn, "loader: flip probability %g is not in [0, 1]", c->flip_prob);
    if (c->size_divisibility < 1 || c->size_divisibility > 1024)
        return mrc_fail(err, errn, "loader: size divisibility %d is not in [1, 1024]", c->size_divisibility);
    if (c->canvas_step < 0 || (c->canvas_step && c->canvas_step % c->size_divisibility))
        return mrc_fail(err, errn, "loader: canvas_step %d is not a multiple of size_divisibility %d", c->canvas_step,
                    c->size_divisibility);
    if (c->max_gt < 1 || c->max_gt > 100000) return mrc_fail(err, errn, "loader: max_gt %d is not in [1, 100000]", c->max_gt);
    for (int k = 0; k < 3; k++)
        if (!(c->std[k] > 0) || !isfinite(c->mean[k]))
            return mrc_fail(err, errn, "loader: channel %d: std %g must be > 0 and mean finite", k, c->std[k]);
    return 0;
}

/* Drains every task (the ring is then idle). */
static void drain(loader *l) {
    for (int i = 0; i < l->ring; i++) wait_slot(l, &l->slots[i]);
}

loader *loader_new(const lvis_data *d, const loader_config *cfg, char *err, size_t errn) {
    if (check_config(cfg, err, errn)) return NULL;
    loader *l = calloc(1, sizeof *l);
    if (!l) return mrc_fail(err, errn, "loader: out of memory"), NULL;
    l->d = d, l->cfg = *cfg, l->ring = cfg->prefetch + 1;
    if (sampler_init(&l->smp, d, &cfg->sampler, err, errn)) return free(l), NULL;
    l->n_threads = cfg->threads;
    int nw = cfg->threads ? cfg->threads : 1;
    l->slots = calloc((size_t)l->ring, sizeof *l->slots);
    l->workers = calloc((size_t)nw, sizeof *l->workers);
    l->logged = calloc((size_t)d->n_img + 1, 1);
    l->q_cap = l->ring * SAMPLER_MAX_BATCH;
    l->queue = calloc((size_t)l->q_cap, sizeof *l->queue);
    int bad = !l->slots || !l->workers || !l->logged || !l->queue;
    for (int s = 0; s < l->ring && !bad; s++)
        for (int i = 0; i < SAMPLER_MAX_BATCH && !bad; i++) {
            stage *st = &l->slots[s].st[i];
            st->box = malloc((size_t)cfg->max_gt * 4 * sizeof(float));
            st->cls = malloc((size_t)cfg->max_gt * sizeof(int32_t));
            st->npoly = malloc((size_t)cfg->max_gt * sizeof(int32_t));
            bad = !st->box || !st->cls || !st->npoly;
        }
    for (int t = 0; t < nw && !bad; t++) bad = !(l->workers[t].jpeg = jpeg_decoder_new());
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);
    if (bad) {
        l->n_threads = 0;
        loader_free(l);
        return mrc_fail(err, errn, "loader: out of memory (or TurboJPEG could not start)"), NULL;
    }
    l->tid = calloc((size_t)nw, sizeof *l->tid);
    for (int t = 0; t < l->n_threads; t++) {
        void **arg = malloc(2 * sizeof *arg);
        if (arg) arg[0] = l, arg[1] = &l->workers[t];
        if (!l->tid || !arg || pthread_create(&l->tid[t], NULL, worker_main, arg)) {
            free(arg);
            l->n_threads = t;
            loader_free(l);
            return mrc_fail(err, errn, "loader: cannot start %d threads", cfg->threads), NULL;
        }
    }
    return l;
}

void loader_free(loader *l) {
    if (!l) return;
    if (l->n_threads) {
        drain(l);
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->work_cv);
        pthread_mutex_unlock(&l->mu);
        for (int t = 0; t < l->n_threads; t++) pthread_join(l->tid[t], NULL);
    }
    for (int s = 0; l->slots && s < l->ring; s++) {
        slot *sl = &l->slots[s];
        if (sl->pinned) gpu_host_free(sl->b.pixels);
        else free(sl->b.pixels);
        free(sl->b.gt_box), free(sl->b.gt_class), free(sl->b.gt_first_poly), free(sl->b.gt_n_poly);
        free(sl->b.poly_first), free(sl->b.poly_n), free(sl->b.verts);
        for (int i = 0; i < SAMPLER_MAX_BATCH; i++) {
            stage *st = &sl->st[i];
            free(st->box), free(st->cls), free(st->npoly), free(st->poly_n), free(st->verts);
        }
    }
    int nw = l->cfg.threads ? l->cfg.threads : 1;
    for (int t = 0; l->workers && t < nw; t++) {
        worker *w = &l->workers[t];
        if (w->jpeg) jpeg_decoder_free(w->jpeg);
        image_u8_free(&w->decoded);
        free(w->resized), free(w->work);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work_cv);
    pthread_cond_destroy(&l->done_cv);
    sampler_free(&l->smp);
    free(l->slots), free(l->workers), free(l->logged), free(l->queue), free(l->tid);
    free(l);
}

void loader_get_cursor(const loader *l, sampler_cursor *c, int64_t *next_batch) {
    /* the next batch to return was drawn already when it is in flight */
    if (l->next_dispatch > l->next_return) *c = l->slots[l->next_return % l->ring].cursor_before;
    else sampler_get_cursor(&l->smp, c);
    *next_batch = l->next_return;
}

int loader_set_cursor(loader *l, const sampler_cursor *c, int64_t next_batch, char *err, size_t errn) {
    if (next_batch < 0) return mrc_fail(err, errn, "loader cursor: negative batch number %lld", (long long)next_batch);
    drain(l); /* batches in flight are thrown away */
    if (sampler_set_cursor(&l->smp, c, err, errn)) return -1;
    l->next_dispatch = l->next_return = next_batch;
    return 0;
}

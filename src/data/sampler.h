/* sampler.h: which training images go into which batch (reference/architecture.md §9.1,
 * §10; DESIGN §5, §7).
 *
 * The training set is the images with at least one annotation (detectron2's
 * FILTER_EMPTY_ANNOTATIONS). The sampler turns it into an endless stream of passes:
 *   SAMPLER_UNIFORM   each pass is a shuffle of the set;
 *   SAMPLER_RFS_D2    Repeat Factor Sampling, detectron2's RepeatFactorTrainingSampler:
 *                     each pass holds image I floor(r(I)) times plus once more with
 *                     probability frac(r(I)) (stochastic rounding, drawn anew every pass),
 *                     shuffled;
 *   SAMPLER_RFS_MMDET mmdet's ClassBalancedDataset: ceil(r(I)) copies every pass, shuffled
 *                     (one pass is mmdet's "epoch").
 * With aspect-ratio grouping (detectron2's AspectRatioGroupedDataset) the stream is dealt
 * into two buckets, landscape (w > h) and portrait (w <= h), and a batch is emitted when a
 * bucket fills; buckets carry over from one pass to the next. Without grouping, batches
 * are consecutive stream elements.
 *
 * Determinism: pass e is a pure function of (seed, e) through the counter-based rng
 * (stream RNG_STREAM_SAMPLER, sub-stream e), so the cursor (pass, position, bucket
 * contents) is all a checkpoint needs to resume the exact same batches. */
#ifndef MRC_SAMPLER_H
#define MRC_SAMPLER_H

#include "data/lvis.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAMPLER_MAX_BATCH 64

/* SAMPLER_SEQUENTIAL (inference, not a data.sampler value): every image of the set, with
 * or without annotations, once per pass in file order (no shuffle, no repeats). */
typedef enum { SAMPLER_UNIFORM = 0, SAMPLER_RFS_D2, SAMPLER_RFS_MMDET, SAMPLER_SEQUENTIAL } sampler_kind;

typedef struct sampler_config {
    sampler_kind kind;
    double rfs_threshold; /* t of RFS (0.001 for LVIS) */
    int batch;            /* images per batch, 1..SAMPLER_MAX_BATCH */
    int group_aspect;     /* 1: every batch holds one orientation group */
    uint64_t seed;
} sampler_config;

/* Where the stream stands: enough to resume it exactly (a plain struct for checkpoints). */
typedef struct sampler_cursor {
    int64_t pass;     /* the pass being consumed */
    int64_t pos;      /* next element of that pass */
    int64_t batches;  /* batches emitted so far */
    int32_t n_bucket[2];
    int32_t bucket[2][SAMPLER_MAX_BATCH];
} sampler_cursor;

typedef struct sampler {
    sampler_config cfg;
    int n;              /* training images (with annotations) */
    int32_t *image;     /* [n] their indices in the lvis_data */
    double *repeat;     /* [n] r(I) (1 for uniform) */
    uint8_t *group;     /* [n] 0: landscape (w > h), 1: portrait */
    int32_t *pass;      /* the current pass: positions into image[] */
    int64_t pass_len, pass_cap;
    sampler_cursor cur;
} sampler;

/* Builds the training set of d (strict-mode data: repeat factors from the kept
 * annotations). 0, or -1 with one line in err (no image with annotations, bad config). */
int sampler_init(sampler *s, const lvis_data *d, const sampler_config *cfg, char *err, size_t errn);
void sampler_free(sampler *s);

/* The next batch: cfg.batch lvis image indices into idx; returns the group (0/1, or 0
 * without grouping). */
int sampler_next(sampler *s, int32_t *idx);

void sampler_get_cursor(const sampler *s, sampler_cursor *c);
/* Resumes from a cursor taken by sampler_get_cursor on a sampler with the same data and
 * config; 0, or -1 with err when the cursor cannot belong to it. */
int sampler_set_cursor(sampler *s, const sampler_cursor *c, char *err, size_t errn);

/* Images in one pass: n (uniform), the expected sum of r(I) (d2) or sum of ceil(r(I))
 * (mmdet). The trainer converts epochs to iterations with it: epoch_images / batch. */
double sampler_epoch_images(const sampler *s);
/* Iterations in one epoch: ceil(epoch_images / batch) (mmdet's len(dataloader) when one
 * process holds the whole batch). */
int64_t sampler_epoch_iterations(const sampler *s);

/* The kind named by the config's data.sampler: "rfs", "rfs_mmdet" (also written
 * "rfs-mmdet") or "uniform"; 0, or -1 for another name. */
int sampler_kind_parse(const char *name, sampler_kind *out);

/* RFS repeat factors (detectron2's rule): over the images with at least one annotation (N),
 * f(c) = images holding c / N, r(c) = max(1, sqrt(t / f(c))), r(I) = max over I's classes.
 * Fills r_img[n_img] (0 for images without annotations); returns N. */
int lvis_repeat_factors(const lvis_data *d, double threshold, double *r_img);

#ifdef __cplusplus
}
#endif
#endif

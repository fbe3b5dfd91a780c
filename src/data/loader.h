/* loader.h: from annotation records to training batches (DESIGN §7, reference/
 * architecture.md §0, §1, §9.1).
 *
 * Each batch: the sampler picks the images (sampler.h); for every image a short side is
 * drawn from the configured list and a flip with probability flip_prob; the JPEG is read
 * and decoded (jpeg.h), resized (PIL's bilinear, detectron2's size rule), flipped,
 * normalised and written into the batch's zero-padded canvas; its instances are
 * transformed with it and those left empty are dropped (transform.h). The canvas is the
 * batch's largest resized height and width, each rounded up to size_divisibility (or to
 * canvas_step, see there).
 *
 * Determinism: the draws for image slot i of batch k come from the counter-based rng at a
 * position fixed by (seed, k, i), and the sampler is consumed in batch order by one thread,
 * so batches are bit-identical whatever the number of threads and however they are
 * scheduled.
 *
 * Threads: `threads` workers decode and transform images of the next `prefetch` batches
 * while the caller trains on the current one (threads = 0: everything happens inside
 * loader_next). A batch returned by loader_next stays valid until the next call.
 *
 * Bad images: an image that cannot be read (missing, not a JPEG, truncated, corrupt, or a
 * size other than the annotation's) is left out of its batch, counted by kind and logged
 * once with its path; training goes on with a smaller batch (a batch whose images all
 * failed is skipped). If none of the first 64 images can be read the loader stops with the
 * first error: that is a wrong image root, not a few bad files. An image with more kept
 * instances than max_gt stops the loader with a message naming it (a config limit). */
#ifndef MRC_LOADER_H
#define MRC_LOADER_H

#include "data/jpeg.h"
#include "data/lvis.h"
#include "data/sampler.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOADER_MAX_SIZES 16

typedef struct loader_config {
    sampler_config sampler; /* batch size, RFS, grouping, seed */
    int threads;            /* decode workers; 0: decode inside loader_next */
    int prefetch;           /* batches prepared ahead, >= 1 */
    int short_sizes[LOADER_MAX_SIZES];
    int n_short;            /* the short-side choices, e.g. 640, 672, ..., 800 */
    int max_size;           /* the long side's cap, 1333 */
    double flip_prob;       /* 0.5 */
    int bgr;                /* 1: channel 0 is blue (detectron2's BGR format) */
    float mean[3], std[3];  /* in the output channel order */
    int size_divisibility;  /* 32 */
    int canvas_step;        /* canvas sides rounded up to a multiple of this (a multiple of
                               size_divisibility; 0: size_divisibility, detectron2's per-batch
                               canvas), capped at the largest canvas the batch's orientation
                               group can need: a coarse step gives a few canvas shapes that
                               repeat (DESIGN §5), a huge one a single canvas per group */
    int max_gt;             /* instances kept per image, at most */
    int pinned;             /* 1: page-locked batch buffers when CUDA can give them */
} loader_config;

/* detectron2's LVIS recipe: RFS t = 0.001, grouping, short side 640..800 step 32, max 1333,
 * flip 0.5, BGR with mean 103.530, 116.280, 123.675 and std 1, divisibility 32. */
void loader_config_default(loader_config *c, int batch, uint64_t seed);

typedef struct loader_image {
    int32_t index;           /* in the lvis_data */
    int h, w;                /* resized, unpadded: the clip and "inside the image" bounds */
    int orig_h, orig_w;
    int short_side, flipped;
    int32_t first_gt, n_gt;  /* into the batch's instance arrays */
} loader_image;

typedef struct loader_batch {
    int64_t index;           /* its number in the stream (skipped batches leave gaps) */
    int n;                   /* images */
    int group;               /* the sampler's orientation group */
    int canvas_h, canvas_w;
    float *pixels;           /* [n, canvas_h, canvas_w, 3] normalised, zero-padded */
    loader_image img[SAMPLER_MAX_BATCH];
    int32_t n_gt;
    float *gt_box;           /* [n_gt, 4] x0, y0, x1, y1 in its image's resized pixels */
    int32_t *gt_class;       /* [n_gt] contiguous category indices */
    int32_t *gt_first_poly;  /* [n_gt] into poly_first/poly_n */
    int32_t *gt_n_poly;      /* [n_gt] 0 for a box-only instance */
    int64_t n_poly, n_vert;
    int64_t *poly_first;     /* [n_poly] first coordinate in verts */
    int64_t *poly_n;         /* [n_poly] coordinates (2 per point) */
    float *verts;            /* [n_vert] x, y, ... */
} loader_batch;

typedef struct loader_counts {
    int64_t images;          /* images delivered */
    int64_t batches;         /* batches delivered */
    int64_t failed[JPEG_ERR_MEMORY + 1]; /* images left out, by jpeg_status */
    int64_t size_mismatch;   /* images whose pixels do not have the annotation's size */
    int64_t dropped_gt;      /* instances dropped as empty after the transform */
    double wait_s;           /* the caller's total time waiting in loader_next */
    double last_wait_s;      /* the last call's wait: the step's data_time */
} loader_counts;

typedef struct loader loader;

/* Starts the loader on d (strict-mode data, kept alive by the caller) with its images
 * under d->image_root. NULL with one line in err on a bad config or no memory. */
loader *loader_new(const lvis_data *d, const loader_config *cfg, char *err, size_t errn);
void loader_free(loader *l);

/* The next batch (valid until the next call), or NULL with one line in err when the
 * loader must stop (see the top). */
const loader_batch *loader_next(loader *l, char *err, size_t errn);

const loader_counts *loader_get_counts(const loader *l);
/* Iterations in one epoch of this loader's sampler (sampler_epoch_iterations). */
int64_t loader_epoch_iterations(const loader *l);
/* The sampler cursor of the next batch not yet returned (for a checkpoint); resuming from
 * it with loader_set_cursor on a fresh loader gives the same batches. */
void loader_get_cursor(const loader *l, sampler_cursor *c, int64_t *next_batch);
int loader_set_cursor(loader *l, const sampler_cursor *c, int64_t next_batch, char *err, size_t errn);

#ifdef __cplusplus
}
#endif
#endif

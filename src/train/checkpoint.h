/* checkpoint.h: training checkpoints in safetensors (DESIGN §10).
 *
 * Tensors: every parameter under its own name (detectron2's names), the optimizer's
 * momentum as "optimizer.momentum.<name>" (trainable parameters only), and the loss
 * module's state under the names its hook gives ("loss.<...>"). `__metadata__` holds:
 *   format "maskrcnn.c checkpoint", version, config (the resolved config as JSON),
 *   iteration (the next iteration to run), optimizer_steps, seed, threads, and the
 *   sampler cursor (pass, pos, batches, buckets) with the loader's next batch number.
 * Written atomically (safetensors_write). Loading names every missing, unexpected and
 * misshapen tensor. */
#ifndef MRC_CHECKPOINT_H
#define MRC_CHECKPOINT_H

#include "core/safetensors.h"
#include "data/sampler.h"
#include "train/optim.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHECKPOINT_FORMAT "maskrcnn.c checkpoint"
#define CHECKPOINT_VERSION 1

typedef struct checkpoint_meta {
    int64_t iteration;       /* the next iteration to run */
    int64_t optimizer_steps;
    uint64_t seed;
    int threads;
    sampler_cursor cursor;
    int64_t next_batch;
    char *config_json;       /* load: malloc'd copy (checkpoint_meta_free); save: the caller's */
} checkpoint_meta;

void checkpoint_meta_free(checkpoint_meta *m);

/* Saves the parameters and momentum of g (host copies of device tensors are made), the
 * extra tensors (loss state; may be NULL) and m. 0 or -1 with err. */
int checkpoint_save(const char *path, const param_group *g, const st_entry *extra, int n_extra, const checkpoint_meta *m,
                    char *err, size_t errn);

typedef enum {
    CHECKPOINT_RESUME = 0, /* everything must be there with the right shapes: weights, momentum, metadata */
    CHECKPOINT_WEIGHTS,    /* weights only: missing and misshapen ones are reported and left as they are */
} checkpoint_mode;

/* Loads path into g's parameters (and momentum, in RESUME mode) and *m (RESUME mode; NULL
 * otherwise). `report` gets a summary like "loaded 812 tensors; missing: a, b; unexpected:
 * c; misshapen: d [3,4] in the file, [5,4] in the model". RESUME fails on any missing or
 * misshapen tensor or metadata; WEIGHTS fails only when nothing at all matches. 0 or -1. */
int checkpoint_load(const char *path, param_group *g, checkpoint_mode mode, checkpoint_meta *m, char *report,
                    size_t reportn, char *err, size_t errn);

/* Reads a loss-state tensor saved as `name` into dst (a CPU tensor of the right shape). */
int checkpoint_read_extra(const char *path, const char *name, tensor *dst, char *err, size_t errn);

#ifdef __cplusplus
}
#endif
#endif

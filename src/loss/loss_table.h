/* loss_table.h: the table of box-classification losses (DESIGN §6, reference/losses.md).
 *
 * The box predictor never branches on the loss name (`loss.cls`): it finds the entry once
 * and asks it everything that depends on the loss: how many logits per RoI, which
 * classifier, which class statistics to gather, the loss terms and d(logits) of a step,
 * the class scores at inference, extra RoIs before the box head, and the state to keep in
 * a checkpoint. Entries: ce (this file's first); federated, seesaw, loce, ecm follow.
 *
 * Letters (STYLE.md): R rows (sampled RoIs, memory rows included), K foreground classes.
 * Labels run 0..K-1 for the foreground and K for the background, in every entry.
 * Logits are [R, num_logits(K)] (f32/f64 on the CPU, f32 on the GPU); every loss is
 * normalised by R, background and memory rows included, never by the positive count
 * (losses.md §0; the mmdet `+ f32 eps` in the divisor is left out: sum / R is
 * detectron2's mean, 1.5e-8 relative from mmdet's value at R = 8). */
#ifndef MRC_LOSS_TABLE_H
#define MRC_LOSS_TABLE_H

#include "core/runtime.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LOSS_CLASSIFIER_LINEAR = 0, LOSS_CLASSIFIER_NORMED } loss_classifier;

/* What an entry needs from the training set (loss_entry.needs, a bit set). */
enum {
    LOSS_NEEDS_INSTANCE_COUNTS = 1 << 0, /* ECM: n_c */
    LOSS_NEEDS_IMAGE_COUNTS = 1 << 1,    /* Federated: image_count_c (sampling weight) */
};

/* The per-class statistics of the training set, host memory owned by the caller; an array
 * an entry does not need may be NULL. */
typedef struct loss_class_stats {
    int K;
    const int64_t *instance_counts; /* [K] annotations per class */
    const int64_t *image_counts;    /* [K] training images containing the class */
} loss_class_stats;

/* Hyperparameters of every entry (the `loss.*` config keys; defaults from losses.md); an
 * entry reads only its own. */
typedef struct loss_params {
    double loss_weight;              /* 1.0: multiplies every term */
    int federated_num_classes;       /* 50 */
    double federated_freq_power;     /* 0.5 */
    double seesaw_p, seesaw_q, seesaw_eps; /* 0.8, 2.0, 1e-2 */
    double loce_alpha, loce_bg_score;      /* 0.9, 0.01 */
    int loce_queue_size;             /* 80 */
} loss_params;
loss_params loss_params_default(void);

/* The rows of one call (one box head / cascade stage, one step). */
typedef struct loss_rows {
    int R;
    /* i32 [R] on the logits' device, 0..K-1 fg, K bg. The backward reads it again: it must
     * stay alive and unchanged until the tape has run (a step tensor). */
    tensor *labels;
    /* Host arrays [R], NULL where the entry does not need them (ce needs none): */
    const int32_t *gt_index;    /* matched GT within its image, -1 for bg and memory rows */
    const int32_t *image_index; /* 0..num_images-1, -1 for memory rows */
    const uint8_t *is_memory;   /* 1: a memory row (LOCE MFS), appended after the RoIs */
    int num_images;
    int64_t step;               /* the global step: the counter of counter-based draws */
} loss_rows;

/* One named scalar of the loss: a [1] step tensor, recorded on the tape when the logits
 * need a gradient, so runtime_backward on the sum of the terms reaches d(logits). */
#define LOSS_MAX_TERMS 4
typedef struct loss_terms {
    int n;
    const char *name[LOSS_MAX_TERMS]; /* "loss_cls", "loss_cls_objectness", ... */
    tensor *value[LOSS_MAX_TERMS];
} loss_terms;

/* A tensor of the persistent state, named for checkpoints ("cum_samples", "mean_score"). */
typedef struct loss_named_tensor {
    const char *name;
    tensor *t;
} loss_named_tensor;

/* The RoIs entering the box head; defined with the box head (LOCE's MFS appends memory
 * features, labels and regression targets to it). */
struct loss_roi_batch;

struct loss_entry;
/* One per loss instance (one per cascade stage). `priv` belongs to the entry. */
typedef struct loss_state {
    const struct loss_entry *entry;
    int K, stage;
    loss_params params;
    loss_classifier classifier; /* the one in use (the entry's default or the config's) */
    void *priv;
} loss_state;

typedef struct loss_entry {
    const char *name; /* the `loss.cls` value */
    int (*num_logits)(int K);
    loss_classifier classifier; /* default; `loss.classifier` may override it */
    unsigned needs;             /* LOSS_NEEDS_* */
    /* Fills the entry's part of s (s->entry, K, stage, params, classifier are set);
     * stats has what `needs` asks for. NULL: nothing to do. */
    void (*create)(loss_state *s, const loss_class_stats *stats);
    void (*destroy)(loss_state *s); /* NULL: nothing to free */
    /* The loss terms of one call; may update the state first (Seesaw counts, LOCE means).
     * logits [R, num_logits(K)], rows as above. */
    loss_terms (*forward)(loss_state *s, runtime *rt, tensor *logits, const loss_rows *rows);
    /* Inference: [R, K] class scores (a step tensor, no tape entry), bg dropped. */
    tensor *(*scores)(loss_state *s, runtime *rt, const tensor *logits);
    /* Optional (NULL): extra rows before the box head (LOCE's memory features). */
    void (*augment_rois)(loss_state *s, runtime *rt, struct loss_roi_batch *rois);
    /* Optional (NULL: no state to keep): the state's tensors, at most max, into out;
     * returns the count. They are views of the state: a checkpoint writes them. */
    int (*save)(loss_state *s, loss_named_tensor *out, int max);
    /* Optional: takes the state from named tensors (as save named them); 0, or -1 with
     * one line in err (a missing name, a wrong shape). */
    int (*load)(loss_state *s, const loss_named_tensor *in, int n, char *err, size_t errn);
} loss_entry;

/* The entry named `name`, or NULL. */
const loss_entry *loss_table_find(const char *name);
/* "ce, federated, ..." into buf; returns buf. */
char *loss_table_names(char *buf, size_t n);
/* "loss.cls 'x' is not one of ce, ..." into buf; returns buf. */
char *loss_table_unknown(const char *name, char *buf, size_t n);
/* loss_table_find, or stops with loss_table_unknown's line. */
const loss_entry *loss_table_require(const char *name);

/* A state for entry e: classifier < 0 takes the entry's default. Stops with one line when
 * stats lack what e->needs or K < 1. loss_state_free releases it. */
void loss_state_init(loss_state *s, const loss_entry *e, int K, int stage, const loss_params *p, int classifier,
                     const loss_class_stats *stats);
void loss_state_free(loss_state *s);

extern const loss_entry loss_entry_ce;

/* ce's inference scores (loss_ce.c): out[r, k] = softmax(x_r)[k] for k < K, x [R, K+1],
 * out [R, K]. CPU f32/f64; the CUDA twin (kernels/loss_ce.cu, f32, on rt->stream) is
 * defined in CUDA builds only. */
void ce_scores_cpu(runtime *rt, const tensor *x, tensor *out);
void ce_scores_gpu(runtime *rt, const tensor *x, tensor *out);

#ifdef __cplusplus
}
#endif
#endif

/* loss_table.c: the registry of box-classification losses and the state's life cycle
 * (loss_table.h). Adding a loss: define its loss_entry in src/loss/loss_<name>.c and list
 * it in `entries` below; nothing outside src/loss names it. */
#include "loss/loss_table.h"

#include "core/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const loss_entry *const entries[] = {&loss_entry_ce};
#define NUM_ENTRIES ((int)(sizeof entries / sizeof entries[0]))

loss_params loss_params_default(void) {
    return (loss_params){
        .loss_weight = 1.0,
        .federated_num_classes = 50,
        .federated_freq_power = 0.5,
        .seesaw_p = 0.8,
        .seesaw_q = 2.0,
        .seesaw_eps = 1e-2,
        .loce_alpha = 0.9,
        .loce_bg_score = 0.01,
        .loce_queue_size = 80,
    };
}

const loss_entry *loss_table_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < NUM_ENTRIES; i++)
        if (strcmp(entries[i]->name, name) == 0) return entries[i];
    return NULL;
}

char *loss_table_names(char *buf, size_t n) {
    size_t k = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < NUM_ENTRIES && k < n; i++) {
        int w = snprintf(buf + k, n - k, "%s%s", i ? ", " : "", entries[i]->name);
        if (w < 0) break;
        k += (size_t)w;
    }
    return buf;
}

char *loss_table_unknown(const char *name, char *buf, size_t n) {
    char names[256];
    snprintf(buf, n, "loss.cls '%s' is not one of %s", name ? name : "(null)",
             loss_table_names(names, sizeof names));
    return buf;
}

const loss_entry *loss_table_require(const char *name) {
    const loss_entry *e = loss_table_find(name);
    if (!e) {
        char msg[320];
        FATAL("%s", loss_table_unknown(name, msg, sizeof msg));
    }
    return e;
}

void loss_state_init(loss_state *s, const loss_entry *e, int K, int stage, const loss_params *p, int classifier,
                     const loss_class_stats *stats) {
    CHECK(e != NULL, "loss_state_init: no entry");
    CHECK(K >= 1, "loss %s: K = %d classes, need at least 1", e->name, K);
    CHECK(classifier < 0 || classifier == LOSS_CLASSIFIER_LINEAR || classifier == LOSS_CLASSIFIER_NORMED,
          "loss %s: classifier %d is neither linear nor normed", e->name, classifier);
    if (e->needs) CHECK(stats != NULL && stats->K == K, "loss %s needs the class statistics of the %d classes", e->name, K);
    if (e->needs & LOSS_NEEDS_INSTANCE_COUNTS)
        CHECK(stats->instance_counts != NULL, "loss %s needs the per-class instance counts", e->name);
    if (e->needs & LOSS_NEEDS_IMAGE_COUNTS)
        CHECK(stats->image_counts != NULL, "loss %s needs the per-class image counts", e->name);
    memset(s, 0, sizeof *s);
    s->entry = e;
    s->K = K;
    s->stage = stage;
    s->params = p ? *p : loss_params_default();
    s->classifier = classifier < 0 ? e->classifier : (loss_classifier)classifier;
    if (e->create) e->create(s, stats);
}

void loss_state_free(loss_state *s) {
    if (s->entry && s->entry->destroy) s->entry->destroy(s);
    memset(s, 0, sizeof *s);
}

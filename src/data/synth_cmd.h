/* synth_cmd.h: `maskrcnn synth --out DIR`: writes the built-in long-tail demo data set
 * (synth.h) as JPEG images and LVIS v1 JSON files, plus a README describing it. */
#ifndef MRC_SYNTH_CMD_H
#define MRC_SYNTH_CMD_H

#include <stddef.h>

#include "data/synth.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct synth_summary {
    int64_t images[2], annotations[2]; /* by split */
    int groups[3];                     /* train frequency groups: r, c, f */
    double seconds;
} synth_summary;

/* Writes the data set of c into dir (created when missing; an existing non-empty dir is
 * refused unless force). Files: dir/train/NNNNNN.jpg, dir/val/NNNNNN.jpg,
 * dir/lvis_v1_train.json, dir/lvis_v1_val.json, dir/README. 0, or -1 with one line in err. */
int synth_write(const synth_config *c, const char *dir, int force, synth_summary *s, char *err, size_t errn);

int synth_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif

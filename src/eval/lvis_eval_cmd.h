/* lvis_eval_cmd.h: `maskrcnn lvis-eval`: the official LVIS box or mask AP of a results
 * file against an LVIS ground-truth file (lvis_eval.h). */
#ifndef MRC_LVIS_EVAL_CMD_H
#define MRC_LVIS_EVAL_CMD_H

#ifdef __cplusplus
extern "C" {
#endif

#include "eval/lvis_eval.h"

#include <stddef.h>

int lvis_eval_main(int argc, char **argv);

/* The shortest %.Ng (15..17 digits) that reads back as v. */
void lvis_fmt_double(char *buf, size_t n, double v);
/* The stats [from, to) as a markdown table on stdout, percentages ("-": none). */
void lvis_print_table(const lvis_eval_result *r, int from, int to);

#ifdef __cplusplus
}
#endif
#endif

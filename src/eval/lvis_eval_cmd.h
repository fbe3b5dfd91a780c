/* lvis_eval_cmd.h: `maskrcnn lvis-eval`: the official LVIS box or mask AP of a results
 * file against an LVIS ground-truth file (lvis_eval.h). */
#ifndef MRC_LVIS_EVAL_CMD_H
#define MRC_LVIS_EVAL_CMD_H

#ifdef __cplusplus
extern "C" {
#endif

int lvis_eval_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif

/* eval_cmd.h: `maskrcnn eval CONFIG --weights CKPT`: inference over the validation split,
 * LVIS results streamed to files, the official LVIS box and mask evaluation, eval.json. */
#ifndef MRC_EVAL_CMD_H
#define MRC_EVAL_CMD_H

#ifdef __cplusplus
extern "C" {
#endif

int eval_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif

/* train_cmd.h: `maskrcnn train [CONFIG] [key=value ...] [--out DIR] [--resume]` (DESIGN §9). */
#ifndef MRC_TRAIN_CMD_H
#define MRC_TRAIN_CMD_H

#ifdef __cplusplus
extern "C" {
#endif

int train_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif

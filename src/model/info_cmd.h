/* info_cmd.h: `maskrcnn info [CONFIG] [key=value ...]`: the model a config builds, its
 * parameter counts per module (trainable, frozen, FrozenBN buffers) and a rough activation
 * memory estimate per 800×1344 image. */
#ifndef MRC_MODEL_INFO_CMD_H
#define MRC_MODEL_INFO_CMD_H

int info_main(int argc, char **argv);

#endif

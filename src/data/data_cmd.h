/* data_cmd.h: `maskrcnn data ANNOTATIONS.json --images DIR`: the training data loader run on
 * a data set on disk (batches, speed, images left out; --dump writes images to look at). */
#ifndef MRC_DATA_CMD_H
#define MRC_DATA_CMD_H

#ifdef __cplusplus
extern "C" {
#endif

int data_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif

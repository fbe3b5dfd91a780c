/* stats.h: `maskrcnn stats ANNOTATIONS.json`: what a data set holds, per class frequency
 * group, and what Repeat Factor Sampling would do with it (reference/architecture.md §10). */
#ifndef MRC_STATS_H
#define MRC_STATS_H

#include "data/lvis.h"
#include "data/sampler.h" /* lvis_repeat_factors */

#ifdef __cplusplus
extern "C" {
#endif

int stats_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif

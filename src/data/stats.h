/* stats.h: `maskrcnn stats ANNOTATIONS.json`: what a data set holds, per class frequency
 * group, and what Repeat Factor Sampling would do with it (reference/architecture.md §10). */
#ifndef MRC_STATS_H
#define MRC_STATS_H

#include "data/lvis.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RFS repeat factors (detectron2's rule): over the images with at least one annotation (N),
 * f(c) = images holding c / N, r(c) = max(1, sqrt(t / f(c))), r(I) = max over I's classes.
 * Fills r_img[n_img] (0 for images without annotations); returns N. */
int lvis_repeat_factors(const lvis_data *d, double threshold, double *r_img);

int stats_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif

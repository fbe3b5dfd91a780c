/* selfcheck.h: `maskrcnn selfcheck` (what `make demo` runs until the detector exists) and
 * the measurements it shares with the benchmarks. */
#ifndef MRC_SELFCHECK_H
#define MRC_SELFCHECK_H

#ifdef __cplusplus
extern "C" {
#endif

/* C = A B for square-ish f32 matrices through OpenBLAS; returns GFLOP/s (best of reps)
 * and, when max_rel_err is given, the largest error against a double-precision loop
 * relative to the largest |C| (only computed when m*n*k <= 2^27). */
double selfcheck_sgemm_gflops(int m, int n, int k, int reps, double *max_rel_err);

/* Runs every check, prints a report to stdout; returns the process exit status. */
int selfcheck_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif

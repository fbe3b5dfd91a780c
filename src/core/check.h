/* check.h: fatal checks that name the source file and line.
 *
 * CHECK(cond) / CHECK(cond, fmt, ...) stops the program with one line on stderr
 *   file:line: check failed: cond: message
 * and exit status 1. Use it for conditions the program cannot continue without,
 * bad input included (with a message naming the file and record). `assert` is only
 * for impossibilities. FATAL(fmt, ...) is the unconditional form.
 *
 * The CUDA forms (CUDA_CHECK, CUBLAS_CHECK, CUDNN_CHECK) live in kernels/cuda_check.h
 * and report through the same mrc_fatal(). */
#ifndef MRC_CHECK_H
#define MRC_CHECK_H

#ifdef __cplusplus
extern "C" {
#endif

/* Prints "file:line: <formatted message>" to stderr, flushes the log, exits 1 (abort()
 * instead when the environment has MRC_ABORT=1, for a debugger or a core dump). */
void mrc_fatal(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#define FATAL(...) mrc_fatal(__FILE__, __LINE__, __VA_ARGS__)

/* Prints "file:line: check failed: expr: message" and exits like mrc_fatal. */
void mrc_check_failed(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* The "" before the optional format makes CHECK(cond) and CHECK(cond, "fmt", ...)
 * both work; the message must then be a string literal. */
#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) mrc_check_failed(__FILE__, __LINE__, #cond, "" __VA_ARGS__); \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif

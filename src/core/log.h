/* log.h: progress and diagnostic messages.
 *
 * Messages go to stderr as "[HH:MM:SS] text" and, when a run directory is open, to its
 * log.txt as well. The sink is process-wide state (like stderr itself): it is the one
 * piece of mutable state outside the runtime struct, kept here so that every module can
 * report without threading a handle through every call. Tables and results meant for
 * the user are printed to stdout by the commands, not through this module. */
#ifndef MRC_LOG_H
#define MRC_LOG_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR } log_level;

void log_set_level(log_level level);
/* Mirror every message into f as well (NULL stops mirroring). The caller owns f. */
void log_set_file(FILE *f);
void log_flush(void);
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

/* A user-facing failure (bad input, bad option): "error: <message>" on stderr, exit 1.
 * Use CHECK/FATAL for broken internal invariants, which also name the source line. */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif
#endif

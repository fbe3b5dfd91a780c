/* log.c: message sink (see log.h) and the fatal-exit paths of check.h. */
#include "log.h"
#include "check.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static log_level g_level = LOG_LEVEL_INFO;
static FILE *g_mirror = NULL;

void log_set_level(log_level level) { g_level = level; }
void log_set_file(FILE *f) { g_mirror = f; }

void log_flush(void) {
    fflush(stdout);
    fflush(stderr);
    if (g_mirror) fflush(g_mirror);
}

static const char *level_tag(log_level level) {
    switch (level) {
    case LOG_LEVEL_DEBUG: return "debug: ";
    case LOG_LEVEL_WARN: return "warning: ";
    case LOG_LEVEL_ERROR: return "error: ";
    default: return "";
    }
}

static void emit(FILE *f, log_level level, const char *fmt, va_list ap) {
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    fprintf(f, "[%02d:%02d:%02d] %s", tm.tm_hour, tm.tm_min, tm.tm_sec, level_tag(level));
    vfprintf(f, fmt, ap);
    fputc('\n', f);
}

void log_msg(log_level level, const char *fmt, ...) {
    if (level < g_level) return;
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout); /* keep stdout tables and stderr messages in order on a terminal */
    emit(stderr, level, fmt, ap);
    va_end(ap);
    if (g_mirror) {
        va_start(ap, fmt);
        emit(g_mirror, level, fmt, ap);
        va_end(ap);
    }
}

/* Writes one line to stderr and the mirror; prefix is printed before fmt. */
static void vline(const char *prefix, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    fflush(stdout);
    fputs(prefix, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    if (g_mirror) {
        fputs(prefix, g_mirror);
        vfprintf(g_mirror, fmt, ap2);
        fputc('\n', g_mirror);
    }
    va_end(ap2);
    log_flush();
}

/* MRC_ABORT=1 turns internal fatal errors into abort() so a debugger stops there (and a
 * core dump is written); the default is exit status 1, the same in every build. */
__attribute__((noreturn)) static void terminate(void) {
    const char *env = getenv("MRC_ABORT");
    if (env && strcmp(env, "1") == 0) abort();
    exit(1);
}

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline("error: ", fmt, ap);
    va_end(ap);
    exit(1);
}

void mrc_fatal(const char *file, int line, const char *fmt, ...) {
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vline(prefix, fmt, ap);
    va_end(ap);
    terminate();
}

void mrc_check_failed(const char *file, int line, const char *expr, const char *fmt, ...) {
    char prefix[1024];
    snprintf(prefix, sizeof prefix, "%s:%d: check failed: %s%s", file, line, expr,
             fmt[0] ? ": " : "");
    va_list ap;
    va_start(ap, fmt);
    vline(prefix, fmt, ap);
    va_end(ap);
    terminate();
}

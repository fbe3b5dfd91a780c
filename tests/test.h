/* test.h: the test harness shared by every test binary (header only).
 *
 *   static void test_something(void) { EXPECT(x == 3, "x = %d", x); }
 *   int main(void) { RUN(test_something); return test_finish("test_file"); }
 *
 * Each case prints PASS, FAIL (with every failed expectation: file:line and message) or
 * SKIP (with the reason); test_finish prints "NAME: P passed, F failed, S skipped" as the
 * last line, which scripts/run-tests.sh adds up, and returns non-zero on any failure.
 * A case stops at its first failed REQUIRE; EXPECT records the failure and goes on. */
#ifndef MRC_TEST_H
#define MRC_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/gpu.h"

static struct {
    int passed, failed, skipped;
    int case_failures;
    int case_skipped;
    const char *case_name;
} test_state;

__attribute__((unused)) static void test_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
__attribute__((unused)) static void test_fail_at(const char *file, int line, const char *fmt, ...) {
    if (test_state.case_failures++ == 0) printf("FAIL %s\n", test_state.case_name);
    printf("  %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* "expected <expr>[: message]" */
__attribute__((unused)) static void test_fail_cond(const char *file, int line, const char *kind, const char *expr,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
__attribute__((unused)) static void test_fail_cond(const char *file, int line, const char *kind, const char *expr,
                           const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    test_fail_at(file, line, "%s %s%s%s", kind, expr, msg[0] ? ": " : "", msg);
}

#define EXPECT(cond, ...)                                                               \
    do {                                                                                \
        if (!(cond)) test_fail_cond(__FILE__, __LINE__, "expected", #cond, "" __VA_ARGS__); \
    } while (0)
#define REQUIRE(cond, ...)                                                              \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            test_fail_cond(__FILE__, __LINE__, "required", #cond, "" __VA_ARGS__);      \
            return;                                                                     \
        }                                                                               \
    } while (0)
#define SKIP(...)                                                                     \
    do {                                                                              \
        test_state.case_skipped = 1;                                                  \
        printf("SKIP %s: ", test_state.case_name);                                    \
        printf(__VA_ARGS__);                                                          \
        printf("\n");                                                                 \
        return;                                                                       \
    } while (0)

__attribute__((unused)) static void test_run(const char *name, void (*fn)(void)) {
    test_state.case_name = name;
    test_state.case_failures = 0;
    test_state.case_skipped = 0;
    fn();
    if (test_state.case_failures) test_state.failed++;
    else if (test_state.case_skipped) test_state.skipped++;
    else {
        test_state.passed++;
        printf("PASS %s\n", name);
    }
    fflush(stdout);
}
#define RUN(fn) test_run(#fn, fn)

__attribute__((unused)) static int test_finish(const char *binary) {
    printf("%s: %d passed, %d failed, %d skipped\n", binary, test_state.passed, test_state.failed,
           test_state.skipped);
    return test_state.failed ? 1 : 0;
}

/* Compares n values; on failure prints the worst error and the first few mismatches.
 * A value matches when |got - want| <= atol + rtol * |want| (NaN never matches). */
#define EXPECT_CLOSE(what, got, want, n, atol, rtol) \
    test_expect_close(__FILE__, __LINE__, what, got, want, n, atol, rtol)
__attribute__((unused)) static int test_expect_close(const char *file, int line, const char *what, const double *got,
                             const double *want, long n, double atol, double rtol) {
    long bad = 0, worst_i = -1, first[5];
    double worst = 0;
    for (long i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        int ok = err <= atol + rtol * fabs(want[i]);
        if (!ok) {
            if (bad < 5) first[bad] = i;
            bad++;
        }
        if (!(err <= worst)) {
            worst = err;
            worst_i = i;
        }
    }
    if (!bad) return 1;
    test_fail_at(file, line, "%s: %ld of %ld values differ (atol %g, rtol %g); worst |err| %g at %ld "
                 "(got %.9g, want %.9g)", what, bad, n, atol, rtol, worst, worst_i,
                 worst_i >= 0 ? got[worst_i] : 0.0, worst_i >= 0 ? want[worst_i] : 0.0);
    for (long k = 0; k < bad && k < 5; k++)
        printf("    [%ld] got %.9g want %.9g\n", first[k], got[first[k]], want[first[k]]);
    return 0;
}

/* Runs fn(arg) in a child process with stdout and stderr captured into buf (NUL-terminated,
 * truncated to n-1 bytes); returns the child's exit status (-signal when killed, -1000 when
 * no child could be started). For testing fatal paths. */
__attribute__((unused)) static int test_run_child(void (*fn)(void *), void *arg, char *buf, size_t n) {
    int fd[2];
    buf[0] = 0;
    if (pipe(fd) != 0) return -1000;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        snprintf(buf, n, "fork failed");
        return -1000;
    }
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        dup2(fd[1], 1);
        fn(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    }
    close(fd[1]);
    size_t k = 0;
    ssize_t r;
    char spill[256];
    /* Read to the end (a child writing more than buf holds must not die of SIGPIPE). */
    while ((r = k + 1 < n ? read(fd[0], buf + k, n - 1 - k) : read(fd[0], spill, sizeof spill)) > 0)
        if (k + 1 < n) k += (size_t)r;
    buf[k] = 0;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* Runs a command's entry point `fn(argc, argv)` (argv NULL-terminated, argv[0] the command
 * name) in a child, as test_run_child does: its output in buf, its exit status returned. */
typedef struct test_main_call {
    int (*fn)(int, char **);
    char **argv;
} test_main_call;
__attribute__((unused)) static void test_main_child(void *arg) {
    test_main_call *c = (test_main_call *)arg;
    int argc = 0;
    while (c->argv[argc]) argc++;
    exit(c->fn(argc, c->argv));
}
__attribute__((unused)) static int test_run_main(int (*fn)(int, char **), char **argv, char *buf, size_t n) {
    test_main_call c = {fn, argv};
    return test_run_child(test_main_child, &c, buf, n);
}

/* A fresh temporary folder /tmp/mrc_NAME.XXXXXX into dir (NULL when none can be made), and
 * its removal with everything in it. */
__attribute__((unused)) static char *test_make_tmpdir(char *dir, size_t n, const char *name) {
    snprintf(dir, n, "/tmp/mrc_%s.XXXXXX", name);
    return mkdtemp(dir);
}
__attribute__((unused)) static void test_remove_tmpdir(const char *dir) {
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
}

/* For tests of fatal paths that check the reported source line: TEST_AT_LINE(stmt) prints
 * "line N" (N = the line it stands on, which is also stmt's __LINE__) and runs stmt;
 * test_child_line reads N back from the captured output. */
#define TEST_AT_LINE(stmt)             \
    do {                               \
        printf("line %d\n", __LINE__); \
        fflush(stdout);                \
        stmt;                          \
    } while (0)
__attribute__((unused)) static int test_child_line(const char *out) {
    int line = -1;
    sscanf(out, "line %d", &line);
    return line;
}

/* 1 when a usable GPU is present; otherwise 0 and the reason in why. The probe runs in a
 * child process, once per binary: CUDA must not be initialised in a process before it
 * forks children that use CUDA (test_run_child), and probing initialises it. */
static void test_probe_child(void *arg) {
    (void)arg;
    char why[256] = "";
    int ok = gpu_probe(0, NULL, why, sizeof why);
    printf("%s", ok ? "" : why);
    fflush(stdout);
    _exit(ok ? 0 : 3);
}
__attribute__((unused)) static int test_have_gpu(char *why, size_t n) {
    static int probed = 0, have = 0;
    static char reason[256];
    if (!probed) {
        int st = test_run_child(test_probe_child, NULL, reason, sizeof reason);
        have = st == 0;
        if (st != 0 && st != 3) snprintf(reason, sizeof reason, "GPU probe crashed (status %d)", st);
        probed = 1;
    }
    snprintf(why, n, "%s", reason);
    return have;
}
#define REQUIRE_GPU()                                          \
    do {                                                       \
        char why_[256];                                        \
        if (!test_have_gpu(why_, sizeof why_)) SKIP("no GPU: %s", why_); \
    } while (0)

/* Finite-difference gradient check in double precision. loss(x, ctx) evaluates the scalar
 * loss at x (n values); grad holds the analytic gradient at x. Central differences with
 * step h; each component must match within atol + rtol * |numeric|. x is restored. */
__attribute__((unused)) static int test_gradcheck(const char *file, int line, const char *what,
                          double (*loss)(const double *x, void *ctx), void *ctx, double *x,
                          const double *grad, long n, double h, double atol, double rtol) {
    double *num = (double *)malloc((size_t)n * sizeof *num);
    for (long i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double lp = loss(x, ctx);
        x[i] = keep - h;
        double lm = loss(x, ctx);
        x[i] = keep;
        num[i] = (lp - lm) / (2 * h);
    }
    int ok = test_expect_close(file, line, what, grad, num, n, atol, rtol);
    free(num);
    return ok;
}
#define EXPECT_GRADCHECK(what, loss, ctx, x, grad, n, h, atol, rtol) \
    test_gradcheck(__FILE__, __LINE__, what, loss, ctx, x, grad, n, h, atol, rtol)

#endif

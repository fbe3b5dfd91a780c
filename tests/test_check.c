/* test_check.c: CHECK, FATAL and die print one line naming the source file and line (or
 * "error:" for user-facing failures) and exit with status 1. */
#include "core/check.h"
#include "core/log.h"
#include "test.h"

static void failing_check(void *arg) {
    int n = *(int *)arg;
    TEST_AT_LINE(CHECK(n < 3, "n is %d, the limit is %d", n, 3));
}

static void failing_check_no_message(void *arg) {
    (void)arg;
    int ready = 0;
    TEST_AT_LINE(CHECK(ready));
}

static void failing_fatal(void *arg) {
    (void)arg;
    TEST_AT_LINE(FATAL("cannot read %s: %s", "weights.safetensors", "truncated header"));
}

static void failing_die(void *arg) {
    (void)arg;
    die("%s: record %d: bbox has negative width", "lvis_v1_val.json", 17);
}

static void passing_check(void *arg) {
    (void)arg;
    CHECK(1 + 1 == 2, "arithmetic");
    printf("still running\n");
}

static void test_check_message(void) {
    char out[2048], want[256];
    int n = 5;
    int st = test_run_child(failing_check, &n, out, sizeof out);
    EXPECT(st == 1, "exit status %d", st);
    snprintf(want, sizeof want, "test_check.c:%d: check failed: n < 3: n is 5, the limit is 3\n", test_child_line(out));
    EXPECT(strstr(out, want) != NULL, "want '%s', got '%s'", want, out);
    st = test_run_child(failing_check_no_message, NULL, out, sizeof out);
    snprintf(want, sizeof want, "test_check.c:%d: check failed: ready\n", test_child_line(out));
    EXPECT(st == 1 && strstr(out, want) != NULL, "status %d, want '%s', got '%s'", st, want, out);
}

static void test_fatal_and_die(void) {
    char out[2048], want[256];
    int st = test_run_child(failing_fatal, NULL, out, sizeof out);
    snprintf(want, sizeof want, "test_check.c:%d: cannot read weights.safetensors: truncated header\n", test_child_line(out));
    EXPECT(st == 1 && strstr(out, want) != NULL, "status %d, want '%s', got '%s'", st, want, out);
    st = test_run_child(failing_die, NULL, out, sizeof out);
    EXPECT(st == 1, "exit status %d", st);
    EXPECT(strcmp(out, "error: lvis_v1_val.json: record 17: bbox has negative width\n") == 0, "got '%s'", out);
}

static void test_passing_check_continues(void) {
    char out[256];
    int st = test_run_child(passing_check, NULL, out, sizeof out);
    EXPECT(st == 0 && strcmp(out, "still running\n") == 0, "status %d, output '%s'", st, out);
}

/* Messages reach the mirror file with their level tag; levels below the threshold do not. */
static void test_log_mirror_and_levels(void) {
    FILE *f = tmpfile();
    REQUIRE(f != NULL);
    log_set_file(f);
    log_info("epoch %d of %d", 1, 12);
    log_warn("skipped %d images", 3);
    log_debug("hidden");
    log_set_level(LOG_LEVEL_WARN);
    log_info("also hidden");
    log_set_level(LOG_LEVEL_INFO);
    log_set_file(NULL);
    log_info("not mirrored");
    rewind(f);
    char text[1024];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    EXPECT(strstr(text, "] epoch 1 of 12\n") != NULL, "mirror: '%s'", text);
    EXPECT(strstr(text, "] warning: skipped 3 images\n") != NULL, "mirror: '%s'", text);
    EXPECT(!strstr(text, "hidden") && !strstr(text, "not mirrored"), "mirror: '%s'", text);
    EXPECT(text[0] == '[' && text[3] == ':' && text[6] == ':' && text[9] == ']', "timestamp: '%s'", text);
}

int main(void) {
    RUN(test_check_message);
    RUN(test_fatal_and_die);
    RUN(test_passing_check_continues);
    RUN(test_log_mirror_and_levels);
    return test_finish("test_check");
}

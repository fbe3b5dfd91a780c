/* test_json_scan.c: the string-aware record scanner (src/data/json_scan.h): member and
 * element spans on tricky but valid JSON, and one clear line for each structural error. */
#include "test.h"

#include "data/json_scan.h"

static json_doc doc(const char *text) { return json_doc_from_memory("t.json", text, strlen(text)); }

static void span_is(const json_doc *d, json_span s, const char *want, const char *what) {
    size_t n = s.end - s.begin;
    EXPECT(n == strlen(want) && memcmp(d->data + s.begin, want, n) == 0, "%s: got '%.*s', want '%s'", what, (int)n,
           d->data + s.begin, want);
}

static void test_members_in_any_order(void) {
    const char *t = " {\"info\": {\"a\": [1, {\"b\": \"}]\\\"{\"}]},\n \"annotations\": [{\"id\": 1, \"s\": \"x\\\\\"}, "
                    "{\"id\": 2}],\"images\":[ ] , \"n\": -1.5e3, \"t\": true}\n";
    json_doc d = doc(t);
    char err[256] = "";
    json_span root;
    REQUIRE(json_root(&d, &root, err, sizeof err) == 0, "%s", err);
    json_member m[8];
    int n = 0;
    REQUIRE(json_object_members(&d, root, m, 8, &n, err, sizeof err) == 0, "%s", err);
    REQUIRE(n == 5, "members: %d", n);
    EXPECT(json_key_is(&d, m[0].key, "info") && json_key_is(&d, m[1].key, "annotations") &&
           json_key_is(&d, m[2].key, "images") && json_key_is(&d, m[3].key, "n") && json_key_is(&d, m[4].key, "t"));
    /* brackets and an escaped quote inside a string do not end the value */
    span_is(&d, m[0].value, "{\"a\": [1, {\"b\": \"}]\\\"{\"}]}", "info");
    span_is(&d, m[3].value, "-1.5e3", "number");
    span_is(&d, m[4].value, "true", "literal");
    json_array_iter it;
    json_span e;
    REQUIRE(json_array_begin(&it, &d, m[1].value, err, sizeof err) == 0, "%s", err);
    REQUIRE(json_array_next(&it, &e, err, sizeof err) == 1, "%s", err);
    span_is(&d, e, "{\"id\": 1, \"s\": \"x\\\\\"}", "element 0 (a string ending in an escaped backslash)");
    REQUIRE(json_array_next(&it, &e, err, sizeof err) == 1, "%s", err);
    span_is(&d, e, "{\"id\": 2}", "element 1");
    EXPECT(it.index == 1);
    EXPECT(json_array_next(&it, &e, err, sizeof err) == 0, "end of the array");
    EXPECT(json_array_next(&it, &e, err, sizeof err) == 0, "end stays the end");
    REQUIRE(json_array_begin(&it, &d, m[2].value, err, sizeof err) == 0, "%s", err);
    EXPECT(json_array_next(&it, &e, err, sizeof err) == 0, "an empty array with spaces");
    REQUIRE(json_array_begin(&it, &d, m[3].value, err, sizeof err) == -1, "a number is not an array");
    EXPECT(strstr(err, "an array was expected") != NULL, "%s", err);
}

static void test_scalar_arrays(void) {
    json_doc d = doc("[1, 2.5 ,\"a,b\",[3,4],null]");
    char err[256] = "";
    json_span root, e;
    REQUIRE(json_root(&d, &root, err, sizeof err) == 0, "%s", err);
    json_array_iter it;
    REQUIRE(json_array_begin(&it, &d, root, err, sizeof err) == 0, "%s", err);
    const char *want[] = {"1", "2.5", "\"a,b\"", "[3,4]", "null"};
    for (int i = 0; i < 5; i++) {
        REQUIRE(json_array_next(&it, &e, err, sizeof err) == 1, "element %d: %s", i, err);
        span_is(&d, e, want[i], "scalar element");
    }
    EXPECT(json_array_next(&it, &e, err, sizeof err) == 0);
}

/* Each malformed text: the call fails with one line naming the file, the line and the
 * problem. */
static void expect_bad(const char *text, const char *needle, long line) {
    json_doc d = doc(text);
    char err[256] = "";
    json_span root;
    int r = json_root(&d, &root, err, sizeof err);
    if (r == 0) { /* structure fine at the root: walk the members and arrays */
        json_member m[8];
        int n = 0;
        r = json_object_members(&d, root, m, 8, &n, err, sizeof err);
        for (int i = 0; r == 0 && i < n; i++) {
            if (d.data[m[i].value.begin] != '[') continue;
            json_array_iter it;
            json_span e;
            r = json_array_begin(&it, &d, m[i].value, err, sizeof err);
            int k;
            while (r == 0 && (k = json_array_next(&it, &e, err, sizeof err)) == 1) {}
            if (r == 0 && k < 0) r = -1;
        }
    }
    EXPECT(r == -1, "'%s' was accepted", text);
    char want_line[32];
    snprintf(want_line, sizeof want_line, "(line %ld)", line);
    EXPECT(strstr(err, "t.json: byte ") == err && strstr(err, want_line) && strstr(err, needle),
           "'%s': message '%s' lacks '%s' or '%s'", text, err, needle, want_line);
    EXPECT(!strchr(err, '\n'), "one line: %s", err);
}

static void test_bad_structure(void) {
    expect_bad("", "no JSON value", 1);
    expect_bad("  42", "does not start with a JSON object or array", 1);
    expect_bad("{\"a\": [1, 2}", "'}' does not close the open '['", 1);
    expect_bad("{\"a\": \"x}", "unterminated string", 1);
    expect_bad("{\"a\": [1,\n2,\n3", "never closed", 1);
    expect_bad("{\"a\": 1} x", "text after the end", 1);
    expect_bad("{\"a\" 1}", "':' was expected", 1);
    expect_bad("{a: 1}", "member name in quotes", 1);
    expect_bad("{\"a\": 1 \"b\": 2}", "',' or '}' was expected", 1);
    expect_bad("{\"a\": [1\n 2]}", "',' or ']' was expected", 2);
    expect_bad("{\"a\": [1,\n\n ]}", "a value was expected before ']'", 3);
    expect_bad("{\"a\": ,}", "a value was expected", 1);
}

static void test_file_errors(void) {
    json_doc d;
    char err[256] = "";
    EXPECT(json_doc_open(&d, "/nonexistent/x.json", err, sizeof err) == -1);
    EXPECT(strstr(err, "/nonexistent/x.json: cannot open: No such file") != NULL, "%s", err);
    char path[] = "/tmp/mrc_json_scan_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    EXPECT(json_doc_open(&d, path, err, sizeof err) == -1);
    EXPECT(strstr(err, "the file is empty") != NULL, "%s", err);
    FILE *f = fopen(path, "w");
    fputs("{\"images\": [{\"id\": 1}]}", f);
    fclose(f);
    REQUIRE(json_doc_open(&d, path, err, sizeof err) == 0, "%s", err);
    json_span root;
    EXPECT(json_root(&d, &root, err, sizeof err) == 0 && root.end == d.size, "%s", err);
    json_doc_close(&d);
    unlink(path);
}

int main(void) {
    RUN(test_members_in_any_order);
    RUN(test_scalar_arrays);
    RUN(test_bad_structure);
    RUN(test_file_errors);
    return test_finish("test_json_scan");
}

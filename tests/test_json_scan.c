/* test_json_scan.c: the string-aware record scanner (src/data/json_scan.h): member and
 * element spans on tricky but valid JSON, and one clear line for each structural error;
 * json_number against the C library's strtod (the reference: correctly rounded). */
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

/* Structural characters at every offset around the scanner's 16-byte steps. */
static void test_block_boundaries(void) {
    char t[256], err[256] = "";
    for (int k = 0; k < 40; k++) {
        int n = snprintf(t, sizeof t, "[");
        for (int i = 0; i < k; i++) n += snprintf(t + n, sizeof t - (size_t)n, "%d,", i % 10);
        n += snprintf(t + n, sizeof t - (size_t)n, "\"]}[{\\\"\",[7],{\"a\":[]}] ");
        json_doc d = json_doc_from_memory("t.json", t, (size_t)n);
        json_span v;
        EXPECT(json_skip_value(&d, 0, &v, err, sizeof err) == 0 && v.end == (size_t)n - 1,
               "k = %d: end %zu, want %d (%s)", k, v.end, n - 1, err);
    }
}

static int same_double(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void number_is(const char *text, size_t want_len) {
    double got = -12345, ref = strtod(text, NULL);
    size_t n = json_number(text, strlen(text), &got);
    EXPECT(n == want_len, "'%s': used %zu bytes, want %zu", text, n, want_len);
    if (want_len && want_len == strlen(text))
        EXPECT(same_double(got, ref), "'%s': %.17g, strtod gives %.17g", text, got, ref);
}

static void test_numbers(void) {
    /* valid, whole text: the value must be strtod's, bit for bit */
    const char *ok[] = {"0", "-0", "7", "-12.5", "0.1", "640", "123.45", "1e22", "1e23", "-1E-22", "9007199254740992",
                        "9007199254740993", "123456789012345678901234567890", "0.000000000000000000000000000001",
                        "1.7976931348623157e308", "1e309", "-1e400", "4.9e-324", "1e-400", "12.34e-5", "5e+2",
                        "1234567890123456789", "12345678901234567890", "0.30000000000000004", "100000000000000000000000"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) number_is(ok[i], strlen(ok[i]));
    /* not JSON numbers (0), or a number followed by something else */
    const char *bad[] = {"", "-", "+1", ".5", "1.", "1e", "1e+", "-a", "x", "Infinity", "NaN", "-.5", "1.e5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) number_is(bad[i], 0);
    number_is("01", 1);
    number_is("1.5x", 3);
    number_is("2,3", 1);
    number_is("-7]", 2);
    /* random decimal texts: up to 25 integer and 25 fraction digits, exponents to +-330 */
    uint64_t st = 88172645463325252ull;
    char t[96];
    int fails = 0;
    for (int it = 0; it < 200000 && fails < 5; it++) {
        int n = 0;
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        uint64_t r = st;
        if (r & 1) t[n++] = '-';
        int idig = (int)((r >> 1) % 26), fdig = (int)((r >> 6) % 26), ex = (int)((r >> 11) % 4);
        if (idig == 0 || (r >> 16) % 4 == 0) t[n++] = '0';
        else
            for (int i = 0; i < idig; i++) {
                st ^= st << 13, st ^= st >> 7, st ^= st << 17;
                t[n++] = (char)('0' + (i == 0 ? 1 + st % 9 : st % 10));
            }
        if (fdig && (r >> 18) % 3) {
            t[n++] = '.';
            for (int i = 0; i < fdig; i++) {
                st ^= st << 13, st ^= st >> 7, st ^= st << 17;
                t[n++] = (char)('0' + st % 10);
            }
        }
        if (ex) {
            t[n++] = (r >> 20) & 1 ? 'e' : 'E';
            if (ex >= 2) t[n++] = (r >> 21) & 1 ? '-' : '+';
            n += snprintf(t + n, sizeof t - (size_t)n, "%d", (int)((r >> 22) % (ex == 3 ? 331 : 23)));
        }
        t[n] = 0;
        double got = 0, ref = strtod(t, NULL);
        size_t used = json_number(t, (size_t)n, &got);
        if (used != (size_t)n || !same_double(got, ref)) {
            fails++;
            EXPECT(0, "'%s': used %zu of %d bytes, %.17g, strtod gives %.17g", t, used, n, got, ref);
        }
    }
}

int main(void) {
    RUN(test_members_in_any_order);
    RUN(test_scalar_arrays);
    RUN(test_bad_structure);
    RUN(test_file_errors);
    RUN(test_block_boundaries);
    RUN(test_numbers);
    return test_finish("test_json_scan");
}

/* test_safetensors.c: the safetensors reader on small files written here: every dtype, a
 * scalar, an empty tensor, metadata; then one case per kind of malformed file, each checking
 * that the error is one line naming the file, the tensor (when there is one) and the
 * problem. KEEP_TMP=1 leaves the written files in the temporary folder for a look. */
#include "core/safetensors.h"
#include "test.h"

#include <signal.h>
#include <sys/wait.h>

#include <stdint.h>
#include <sys/stat.h>

static char tmpdir[256];

/* tmpdir/name into buf. */
static const char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmpdir, name);
    return buf;
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* A safetensors file: the length of `header` (declared as hlen, or its real length when
 * hlen < 0), the header, then ndata bytes of data. */
static int write_st(const char *path, const char *header, long long hlen, const void *data, size_t ndata) {
    size_t h = strlen(header);
    uint64_t len = hlen < 0 ? (uint64_t)h : (uint64_t)hlen;
    size_t total = 8 + h + ndata;
    unsigned char *buf = malloc(total);
    memcpy(buf, &len, 8); /* little-endian host, as the reader requires */
    memcpy(buf + 8, header, h);
    if (ndata) memcpy(buf + 8 + h, data, ndata);
    int rc = write_bytes(path, buf, total);
    free(buf);
    return rc;
}

/* Opens a file that must be rejected; the error must name the file and contain each
 * non-NULL needle, and be one line. */
static void expect_rejected(const char *file, const char *header, long long hlen, const void *data,
                            size_t ndata, const char *needle1, const char *needle2) {
    char path[512], err[1024];
    tmp_path(path, sizeof path, file);
    REQUIRE(write_st(path, header, hlen, data, ndata) == 0, "cannot write %s", path);
    safetensors st;
    int rc = safetensors_open(&st, path, err, sizeof err);
    EXPECT(rc == -1, "%s was accepted", file);
    EXPECT(st.tensors == NULL && st.map == NULL && st.count == 0, "%s: struct not cleared on failure", file);
    EXPECT(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':', "error does not start with the path: %s", err);
    EXPECT(!strchr(err, '\n'), "error is not one line: %s", err);
    if (needle1) EXPECT(strstr(err, needle1), "error lacks '%s': %s", needle1, err);
    if (needle2) EXPECT(strstr(err, needle2), "error lacks '%s': %s", needle2, err);
    safetensors_close(&st); /* harmless on a failed open */
}

/* Every supported dtype, a scalar, an empty tensor, a gap, metadata, padding spaces. */
static void test_read_back(void) {
    unsigned char data[128];
    memset(data, 0xee, sizeof data);
    float a[6] = {1, -2, 3.5f, 4, 5, 6e-8f};
    double s = -0.125;
    uint16_t h[4] = {0x3f80, 0xc000, 0x0000, 0x7f80}; /* 1, -2, 0, inf */
    int32_t i[4] = {7, -8, 2147483647, -2147483647 - 1};
    uint8_t u[3] = {0, 128, 255};
    memcpy(data + 0, a, 24);
    memcpy(data + 24, &s, 8);
    memcpy(data + 32, h, 8);
    memcpy(data + 40, i, 16);
    memcpy(data + 64, u, 3); /* 56..64 is a gap */
    const char *hdr =
        "{\"__metadata__\":{\"format\":\"mrc-1\",\"iteration\":\"90000\"},"
        "\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"scalar\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[24,32]},"
        "\"h\":{\"dtype\":\"BF16\",\"shape\":[1,1,2,2],\"data_offsets\":[32,40]},"
        "\"i\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[40,56]},"
        "\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[64,67]},"
        "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[67,67]}}      ";
    char path[512], err[1024];
    tmp_path(path, sizeof path, "good.safetensors");
    REQUIRE(write_st(path, hdr, -1, data, 67) == 0);
    safetensors st;
    REQUIRE(safetensors_open(&st, path, err, sizeof err) == 0, "%s", err);
    EXPECT(st.count == 6, "count %d", st.count);
    const st_tensor *t = safetensors_find(&st, "a.weight");
    REQUIRE(t, "a.weight not found");
    EXPECT(t->dtype == DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->bytes == 24);
    float got[6];
    memcpy(got, safetensors_data(&st, t), sizeof got);
    EXPECT(memcmp(got, a, sizeof a) == 0, "a.weight data differ");
    t = safetensors_find(&st, "scalar");
    REQUIRE(t);
    EXPECT(t->dtype == DTYPE_F64 && t->ndim == 1 && t->shape[0] == 1, "a scalar reads as [1]");
    double sv;
    memcpy(&sv, safetensors_data(&st, t), 8);
    EXPECT(sv == -0.125, "scalar %g", sv);
    t = safetensors_find(&st, "h");
    REQUIRE(t);
    EXPECT(t->dtype == DTYPE_BF16 && t->ndim == 4 && t->shape[3] == 2);
    EXPECT(memcmp(safetensors_data(&st, t), h, 8) == 0);
    t = safetensors_find(&st, "i");
    REQUIRE(t);
    EXPECT(t->dtype == DTYPE_I32 && memcmp(safetensors_data(&st, t), i, 16) == 0);
    t = safetensors_find(&st, "u");
    REQUIRE(t);
    EXPECT(t->dtype == DTYPE_U8 && t->offset == 64 && memcmp(safetensors_data(&st, t), u, 3) == 0);
    t = safetensors_find(&st, "empty");
    REQUIRE(t);
    EXPECT(t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 5 && t->bytes == 0);
    EXPECT(safetensors_find(&st, "missing") == NULL);
    EXPECT(safetensors_find(&st, "") == NULL);
    EXPECT(safetensors_meta(&st, "format") && strcmp(safetensors_meta(&st, "format"), "mrc-1") == 0);
    EXPECT(safetensors_meta(&st, "iteration") && strcmp(safetensors_meta(&st, "iteration"), "90000") == 0);
    EXPECT(safetensors_meta(&st, "a.weight") == NULL, "tensor names are not metadata");
    safetensors_close(&st);
    safetensors_close(&st); /* twice is fine */
}

/* safetensors_read checks dtype and shape before copying. */
static void test_read_into_tensor(void) {
    double v[6] = {1, 2, 3, 4, 5, 6};
    const char *hdr = "{\"w\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]}}";
    char path[512], err[1024];
    tmp_path(path, sizeof path, "read.safetensors");
    REQUIRE(write_st(path, hdr, -1, v, sizeof v) == 0);
    safetensors st;
    REQUIRE(safetensors_open(&st, path, err, sizeof err) == 0, "%s", err);
    double buf[6] = {0};
    tensor ok = tensor_view(buf, DTYPE_F64, DEVICE_CPU, TSHAPE(2, 3));
    EXPECT(safetensors_read(&st, "w", &ok, err, sizeof err) == 0, "%s", err);
    EXPECT(memcmp(buf, v, sizeof v) == 0);
    tensor wrong_shape = tensor_view(buf, DTYPE_F64, DEVICE_CPU, TSHAPE(3, 2));
    EXPECT(safetensors_read(&st, "w", &wrong_shape, err, sizeof err) == -1);
    EXPECT(strstr(err, path) && strstr(err, "file holds f64[2,3]@cpu, expected f64[3,2]@cpu") && strstr(err, "(tensor w)"),
           "got: %s", err);
    float fbuf[6];
    tensor wrong_dtype = tensor_view(fbuf, DTYPE_F32, DEVICE_CPU, TSHAPE(2, 3));
    EXPECT(safetensors_read(&st, "w", &wrong_dtype, err, sizeof err) == -1);
    EXPECT(strstr(err, "expected f32[2,3]@cpu"), "got: %s", err);
    EXPECT(safetensors_read(&st, "nope", &ok, err, sizeof err) == -1);
    EXPECT(strstr(err, "no such tensor in the file (tensor nope)"), "got: %s", err);
    safetensors_close(&st);
}

static void test_empty_header(void) {
    char path[512], err[1024];
    tmp_path(path, sizeof path, "empty.safetensors");
    REQUIRE(write_st(path, "{}", -1, NULL, 0) == 0);
    safetensors st;
    REQUIRE(safetensors_open(&st, path, err, sizeof err) == 0, "%s", err);
    EXPECT(st.count == 0 && safetensors_find(&st, "x") == NULL && safetensors_meta(&st, "x") == NULL);
    safetensors_close(&st);
}

static void test_missing_file(void) {
    char path[512], err[1024];
    tmp_path(path, sizeof path, "does-not-exist.safetensors");
    safetensors st;
    EXPECT(safetensors_open(&st, path, err, sizeof err) == -1);
    EXPECT(strncmp(err, path, strlen(path)) == 0 && strstr(err, "cannot open: No such file"), "got: %s", err);
    EXPECT(safetensors_open(&st, tmpdir, err, sizeof err) == -1);
    EXPECT(strstr(err, "not a regular file"), "a directory: %s", err);
}

static void test_truncated_file(void) {
    char path[512], err[1024];
    tmp_path(path, sizeof path, "short.safetensors");
    REQUIRE(write_bytes(path, "\x10\0\0\0\0", 5) == 0);
    safetensors st;
    EXPECT(safetensors_open(&st, path, err, sizeof err) == -1);
    EXPECT(strncmp(err, path, strlen(path)) == 0 && strstr(err, "file is 5 bytes, shorter than the 8-byte header length"),
           "got: %s", err);
    REQUIRE(write_bytes(path, "", 0) == 0);
    EXPECT(safetensors_open(&st, path, err, sizeof err) == -1);
    EXPECT(strstr(err, "file is 0 bytes"), "empty file: %s", err);
}

/* The declared header length runs past the file (a file cut short, or garbage). */
static void test_bad_header_length(void) {
    expect_rejected("hlen.safetensors", "{}", 1000, NULL, 0,
                    "header length 1000 runs past the end of the file (2 bytes after the length field)", NULL);
    expect_rejected("hlen-huge.safetensors", "{}", (long long)0x7fffffffffffffffLL, NULL, 0, "runs past the end", NULL);
    /* A length shorter than the JSON cuts it: a parse error, not a crash. */
    expect_rejected("hlen-short.safetensors", "{\"a\":{}}", 4, NULL, 0, "header is not valid JSON", NULL);
    expect_rejected("hlen-zero.safetensors", "", 0, NULL, 0, "header is not valid JSON", NULL);
}

/* The data section is shorter than the offsets say (a truncated download). */
static void test_truncated_data(void) {
    float d[3] = {1, 2, 3};
    expect_rejected("cut.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", -1, d,
                    sizeof d, "data_offsets [0, 24] run past the data section (12 bytes)", "(tensor x)");
}

static void test_bad_json(void) {
    expect_rejected("json.safetensors", "{\"x\": {\"dtype\": \"F32\", ", -1, NULL, 0, "header is not valid JSON",
                    "parse error near byte");
    expect_rejected("json-array.safetensors", "[1, 2]", -1, NULL, 0, "header is not a JSON object", NULL);
    expect_rejected("json-trail.safetensors", "{} xyz", -1, NULL, 0, "unexpected bytes after the JSON header, at byte 3",
                    NULL);
    expect_rejected("json-entry.safetensors", "{\"x\": 3}", -1, NULL, 0, "entry is not a JSON object", "(tensor x)");
    expect_rejected("json-meta.safetensors", "{\"__metadata__\": {\"step\": 3}}", -1, NULL, 0,
                    "metadata value of key 'step' is not a string", NULL);
    expect_rejected("json-meta2.safetensors", "{\"__metadata__\": [\"a\"]}", -1, NULL, 0,
                    "\"__metadata__\" is not a JSON object", NULL);
    expect_rejected("json-meta3.safetensors", "{\"__metadata__\": {\"a\":\"1\"}, \"__metadata__\": {\"b\":\"2\"}}", -1,
                    NULL, 0, "\"__metadata__\" appears twice in the header", NULL);
}

static void test_missing_fields(void) {
    char d[8] = {0};
    expect_rejected("nodtype.safetensors", "{\"x\":{\"shape\":[2],\"data_offsets\":[0,8]}}", -1, d, 8,
                    "\"dtype\" is missing or not a string", "(tensor x)");
    expect_rejected("noshape.safetensors", "{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", -1, d, 8,
                    "\"shape\" is missing or not an array", "(tensor x)");
    expect_rejected("nooffs.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", -1, d, 8,
                    "\"data_offsets\" is missing or not two non-negative integers", "(tensor x)");
    expect_rejected("noname.safetensors", "{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, d, 8,
                    "a tensor has an empty name", NULL);
}

static void test_wrong_offsets(void) {
    double d[8] = {0};
    expect_rejected("offs-size.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,8]}}", -1, d,
                    sizeof d, "data_offsets [0, 8] hold 8 bytes but F32 [2,3] needs 24", "(tensor w)");
    expect_rejected("offs-rev.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,4]}}", -1, d,
                    sizeof d, "data_offsets [8, 4] end before they begin", "(tensor w)");
    expect_rejected("offs-neg.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]}}", -1, d,
                    sizeof d, "not two non-negative integers", "(tensor w)");
    expect_rejected("offs-frac.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0.5,4.5]}}", -1,
                    d, sizeof d, "not two non-negative integers", "(tensor w)");
    expect_rejected("offs-three.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4,8]}}", -1,
                    d, sizeof d, "not two non-negative integers", "(tensor w)");
    /* Shapes whose byte count overflows size_t must not wrap around to a small number. */
    expect_rejected("offs-huge.safetensors",
                    "{\"w\":{\"dtype\":\"F64\",\"shape\":[2147483647,2147483647,2147483647,2147483647],"
                    "\"data_offsets\":[0,64]}}", -1, d, sizeof d, "shape [2147483647,2147483647,2147483647,2147483647] of F64 needs more bytes than a size_t holds", "(tensor w)");
    expect_rejected("overlap.safetensors",
                    "{\"a\":{\"dtype\":\"F64\",\"shape\":[4],\"data_offsets\":[0,32]},"
                    "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[24,40]}}", -1, d, sizeof d,
                    "bytes [24, 40) overlap those of tensor a [0, 32)", "(tensor b)");
    expect_rejected("dup.safetensors",
                    "{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                    "\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]}}", -1, d, sizeof d,
                    "the name appears twice in the header", "(tensor a)");
}

static void test_unknown_dtype(void) {
    int64_t d[4] = {0};
    expect_rejected("i64.safetensors", "{\"anchors.count\":{\"dtype\":\"I64\",\"shape\":[4],\"data_offsets\":[0,32]}}", -1,
                    d, sizeof d, "dtype I64 is not supported (F32, F64, BF16, I32, U8 are)", "(tensor anchors.count)");
    expect_rejected("f16.safetensors", "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", -1, d, 8,
                    "dtype F16 is not supported", "(tensor h)");
    expect_rejected("dt-num.safetensors", "{\"h\":{\"dtype\":4,\"shape\":[4],\"data_offsets\":[0,8]}}", -1, d, 8,
                    "\"dtype\" is missing or not a string", "(tensor h)");
}

static void test_too_many_dims(void) {
    float d[1] = {0};
    expect_rejected("dims.safetensors", "{\"t5\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", -1,
                    d, sizeof d, "shape has 5 dimensions, at most 4 are supported", "(tensor t5)");
    expect_rejected("dim-neg.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,-1],\"data_offsets\":[0,4]}}", -1, d,
                    sizeof d, "shape entry 1 is not an integer in [0, 2147483647]", "(tensor t)");
    expect_rejected("dim-big.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[3000000000],\"data_offsets\":[0,4]}}",
                    -1, d, sizeof d, "shape entry 0 is not an integer", "(tensor t)");
    expect_rejected("dim-str.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", -1,
                    d, sizeof d, "shape entry 0 is not an integer", "(tensor t)");
}

/* A name longer than the struct holds is an error, not a silent truncation. */
static void test_long_name(void) {
    char name[400], hdr[600];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    snprintf(hdr, sizeof hdr, "{\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", name);
    expect_rejected("longname.safetensors", hdr, -1, "x", 1, "name is longer than 255 bytes", "(tensor nnnn");
}

/* A small or absent error buffer truncates the message, never overflows. */
static void test_small_error_buffer(void) {
    char path[512], err[16];
    tmp_path(path, sizeof path, "small-err.safetensors");
    REQUIRE(write_st(path, "nonsense", -1, NULL, 0) == 0);
    safetensors st;
    memset(err, 'z', sizeof err);
    EXPECT(safetensors_open(&st, path, err, sizeof err) == -1);
    EXPECT(memchr(err, 0, sizeof err) != NULL, "message not terminated");
    EXPECT(safetensors_open(&st, path, NULL, 0) == -1);
}

static void remove_tmpdir(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* ---- writing ---------------------------------------------------------------------------- */

static void test_write_round_trip(void) {
    char path[] = "/tmp/mrc_st_write_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    float w[6] = {1.5f, -2, 3, 4.25f, 5, 6};
    int32_t ids[4] = {7, -8, 9, 2147483647};
    uint8_t bytes[5] = {0, 1, 2, 254, 255};
    st_entry e[3] = {{"model.w", DTYPE_F32, 2, {2, 3}, w}, {"ids", DTYPE_I32, 1, {4}, ids}, {"b", DTYPE_U8, 1, {5}, bytes}};
    const char *keys[2] = {"iteration", "config"}, *vals[2] = {"1234", "{\"solver\": {\"lr\": 0.02}}"};
    char err[512] = "";
    REQUIRE(safetensors_write(path, e, 3, keys, vals, 2, err, sizeof err) == 0, "%s", err);
    safetensors st;
    REQUIRE(safetensors_open(&st, path, err, sizeof err) == 0, "written file does not read back: %s", err);
    EXPECT(st.count == 3 && (size_t)(st.data - st.map) % 8 == 0, "%d tensors, data at %zu", st.count, (size_t)(st.data - st.map));
    const st_tensor *t = safetensors_find(&st, "model.w");
    EXPECT(t && t->ndim == 2 && t->shape[1] == 3 && !memcmp(safetensors_data(&st, t), w, sizeof w), "model.w");
    t = safetensors_find(&st, "ids");
    EXPECT(t && t->dtype == DTYPE_I32 && !memcmp(safetensors_data(&st, t), ids, sizeof ids), "ids");
    t = safetensors_find(&st, "b");
    EXPECT(t && t->dtype == DTYPE_U8 && !memcmp(safetensors_data(&st, t), bytes, sizeof bytes), "b");
    EXPECT(safetensors_meta(&st, "iteration") && !strcmp(safetensors_meta(&st, "iteration"), "1234"), "metadata");
    EXPECT(safetensors_meta(&st, "config") && !strcmp(safetensors_meta(&st, "config"), vals[1]), "metadata with quotes");
    safetensors_close(&st);
    /* the independent reader (tests/st_check.py, stdlib Python) agrees, when python3 exists */
    if (system("command -v python3 > /dev/null 2>&1") == 0) {
        char cmd[256], out[2048] = "";
        snprintf(cmd, sizeof cmd, "python3 tests/st_check.py %s 2>&1", path);
        FILE *p = popen(cmd, "r");
        REQUIRE(p);
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = 0;
        int st_rc = pclose(p);
        EXPECT(st_rc == 0 && strstr(out, "model.w F32 2x3 17.75\n") && strstr(out, "ids I32 4 2147483655.0\n") &&
                   strstr(out, "b U8 5 512.0\n") && strstr(out, "meta iteration=1234\n"),
               "st_check.py says (exit %d):\n%s", st_rc, out);
    }
    unlink(path);
}

static void test_write_errors(void) {
    float x = 1;
    st_entry dup[2] = {{"a", DTYPE_F32, 1, {1}, &x}, {"a", DTYPE_F32, 1, {1}, &x}};
    char err[512] = "";
    EXPECT(safetensors_write("/tmp/mrc_st_dup.safetensors", dup, 2, NULL, NULL, 0, err, sizeof err) == -1 &&
               strstr(err, "two tensors named a"),
           "%s", err);
    EXPECT(safetensors_write("/nonexistent-dir/x.safetensors", dup, 1, NULL, NULL, 0, err, sizeof err) == -1 &&
               strstr(err, "/nonexistent-dir/x.safetensors: cannot create"),
           "%s", err);
    EXPECT(access("/tmp/mrc_st_dup.safetensors", F_OK) != 0, "a refused write left a file");
}

/* Crash safety: a child rewrites one file in a loop (version k: every value k, metadata
 * version=k) and is killed with SIGKILL at random moments; the file under the final name
 * must always open and be one complete version. */
static void writer_loop(const char *path) {
    enum { N = 1 << 20 }; /* 4 MB per write: a write takes a while */
    static float v[N];
    for (int k = 1;; k++) {
        for (int i = 0; i < N; i++) v[i] = (float)k;
        char ver[32];
        snprintf(ver, sizeof ver, "%d", k);
        const char *key = "version", *val = ver;
        st_entry e = {"v", DTYPE_F32, 1, {N}, v};
        if (safetensors_write(path, &e, 1, &key, &val, 1, NULL, 0)) _exit(3);
    }
}

static void test_kill_during_writes(void) {
    char dir[] = "/tmp/mrc_st_kill_XXXXXX", path[256];
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    unsigned seed = 12345;
    int complete = 0;
    for (int round = 0; round < 25; round++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) writer_loop(path);
        seed = seed * 1103515245u + 12345u;
        usleep(5000 + (seed >> 8) % 60000);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        safetensors st;
        char err[512] = "";
        if (access(path, F_OK) != 0) continue; /* killed before the first rename */
        REQUIRE(safetensors_open(&st, path, err, sizeof err) == 0, "round %d: the file under the final name is broken: %s",
                round, err);
        const st_tensor *t = safetensors_find(&st, "v");
        const char *ver = safetensors_meta(&st, "version");
        int ok = t && ver && t->shape[0] == 1 << 20;
        const float *v = ok ? safetensors_data(&st, t) : NULL;
        float want = ver ? (float)atoi(ver) : -1;
        for (int i = 0; ok && i < t->shape[0]; i += 4099) ok = v[i] == want;
        ok = ok && v[t->shape[0] - 1] == want;
        EXPECT(ok, "round %d: the file mixes versions (metadata %s)", round, ver ? ver : "none");
        complete += ok;
        safetensors_close(&st);
    }
    EXPECT(complete > 0, "no round got as far as one complete file");
    test_remove_tmpdir(dir);
}

int main(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/test_safetensors.XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temporary folder under %s\n", base);
        return 1;
    }
    RUN(test_read_back);
    RUN(test_read_into_tensor);
    RUN(test_empty_header);
    RUN(test_missing_file);
    RUN(test_truncated_file);
    RUN(test_bad_header_length);
    RUN(test_truncated_data);
    RUN(test_bad_json);
    RUN(test_missing_fields);
    RUN(test_wrong_offsets);
    RUN(test_unknown_dtype);
    RUN(test_too_many_dims);
    RUN(test_long_name);
    RUN(test_small_error_buffer);
    RUN(test_write_round_trip);
    RUN(test_write_errors);
    RUN(test_kill_during_writes);
    if (!getenv("KEEP_TMP")) remove_tmpdir();
    return test_finish("test_safetensors");
}

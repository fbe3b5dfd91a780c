/* config.c: run configuration (see config.h). Configs are small: cJSON trees throughout. */
#include "train/config.h"

#include "core/check.h"
#include "core/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BASE_DEPTH 16

static const config_key *find_key(const char *name) {
    for (const config_key *k = config_keys; k->name; k++)
        if (!strcmp(k->name, name)) return k;
    return NULL;
}

/* Whether `name` is a section: some key starts with "name.". */
static int is_section(const char *name) {
    size_t n = strlen(name);
    for (const config_key *k = config_keys; k->name; k++)
        if (!strncmp(k->name, name, n) && k->name[n] == '.') return 1;
    return 0;
}

static int edit_distance(const char *a, const char *b) {
    size_t m = strlen(a), n = strlen(b);
    int row[256];
    if (n >= 255) return 1 << 20;
    for (size_t j = 0; j <= n; j++) row[j] = (int)j;
    for (size_t i = 1; i <= m; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= n; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up, row[j] = best;
        }
    }
    return row[n];
}

const char *config_nearest_key(const char *key) {
    const char *best = NULL;
    int bd = 1 << 30;
    for (const config_key *k = config_keys; k->name; k++) {
        int d = edit_distance(key, k->name);
        if (d < bd) bd = d, best = k->name;
    }
    return best;
}

static const char *type_name(const config_key *k) {
    switch (k->type) {
    case CFG_INT: return "an integer";
    case CFG_FLOAT: return "a number";
    case CFG_BOOL: return "true or false";
    case CFG_STRING: return "a string";
    case CFG_ENUM: return "one of";
    case CFG_INT_LIST: return "a list of integers";
    case CFG_FLOAT_LIST: return "a list of numbers";
    case CFG_STRING_LIST: return "a list of strings";
    }
    return "?";
}

static int is_int(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) <= 9007199254740992.0;
}

static int value_ok(const config_key *k, const cJSON *v) {
    const cJSON *e;
    switch (k->type) {
    case CFG_INT: return is_int(v);
    case CFG_FLOAT: return cJSON_IsNumber(v) && isfinite(v->valuedouble);
    case CFG_BOOL: return cJSON_IsBool(v);
    case CFG_STRING: return cJSON_IsString(v);
    case CFG_ENUM: {
        if (!cJSON_IsString(v)) return 0;
        size_t n = strlen(v->valuestring);
        for (const char *c = k->choices; c && *c;) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && !strncmp(c, v->valuestring, n)) return 1;
            c = bar ? bar + 1 : c + len;
        }
        return 0;
    }
    case CFG_INT_LIST:
    case CFG_FLOAT_LIST:
    case CFG_STRING_LIST:
        if (!cJSON_IsArray(v)) return 0;
        cJSON_ArrayForEach(e, v) {
            if (k->type == CFG_INT_LIST && !is_int(e)) return 0;
            if (k->type == CFG_FLOAT_LIST && !(cJSON_IsNumber(e) && isfinite(e->valuedouble))) return 0;
            if (k->type == CFG_STRING_LIST && !cJSON_IsString(e)) return 0;
        }
        return 1;
    }
    return 0;
}

/* "KEY must be TYPE, got VALUE" */
static int type_error(const char *where, const config_key *k, const cJSON *v, char *err, size_t errn) {
    char *got = cJSON_PrintUnformatted(v);
    char choices[256] = "";
    if (k->type == CFG_ENUM) {
        snprintf(choices, sizeof choices, " %s", k->choices);
        for (char *p = choices; *p; p++)
            if (*p == '|') *p = ',';
    }
    mrc_fail(err, errn, "%s: %s must be %s%s, got %.200s", where, k->name, type_name(k), choices, got ? got : "?");
    free(got);
    return -1;
}

static int unknown_key(const char *where, const char *name, char *err, size_t errn) {
    const char *near = config_nearest_key(name);
    return mrc_fail(err, errn, "%s: unknown key '%s'%s%s%s (maskrcnn train --help-config lists them)", where, name,
                    near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
}

/* Every member of object o (at dotted prefix) is a declared key of the right type or a
 * section holding such keys. */
static int validate(const char *where, const cJSON *o, const char *prefix, char *err, size_t errn) {
    const cJSON *m;
    cJSON_ArrayForEach(m, o) {
        char name[512];
        if (!prefix[0] && !strcmp(m->string, "_base_")) continue;
        snprintf(name, sizeof name, "%s%s%s", prefix, prefix[0] ? "." : "", m->string);
        const config_key *k = find_key(name);
        if (k) {
            if (!value_ok(k, m)) return type_error(where, k, m, err, errn);
        } else if (is_section(name)) {
            if (!cJSON_IsObject(m)) return mrc_fail(err, errn, "%s: %s is a section and must be an object", where, name);
            if (validate(where, m, name, err, errn)) return -1;
        } else {
            return unknown_key(where, name, err, errn);
        }
    }
    return 0;
}

/* src on top of dst: objects merge member by member, anything else replaces. */
static void merge(cJSON *dst, const cJSON *src) {
    const cJSON *m;
    cJSON_ArrayForEach(m, src) {
        if (!strcmp(m->string, "_base_")) continue;
        cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, m->string);
        if (d && cJSON_IsObject(d) && cJSON_IsObject(m)) {
            merge(d, m);
        } else {
            cJSON *copy = cJSON_Duplicate(m, 1);
            CHECK(copy, "out of memory");
            if (d) cJSON_ReplaceItemInObjectCaseSensitive(dst, m->string, copy);
            else cJSON_AddItemToObject(dst, m->string, copy);
        }
    }
}

/* Sets the dotted key in tree t to v (taken), creating sections. */
static void put(cJSON *t, const char *key, cJSON *v) {
    char part[256];
    const char *dot;
    while ((dot = strchr(key, '.'))) {
        snprintf(part, sizeof part, "%.*s", (int)(dot - key), key);
        cJSON *s = cJSON_GetObjectItemCaseSensitive(t, part);
        if (!s) s = cJSON_AddObjectToObject(t, part);
        CHECK(s && cJSON_IsObject(s), "config: %s is not a section", part);
        t = s, key = dot + 1;
    }
    if (cJSON_GetObjectItemCaseSensitive(t, key)) cJSON_ReplaceItemInObjectCaseSensitive(t, key, v);
    else cJSON_AddItemToObject(t, key, v);
}

static cJSON *get(const cJSON *t, const char *key) {
    char part[256];
    const char *dot;
    while (t && (dot = strchr(key, '.'))) {
        snprintf(part, sizeof part, "%.*s", (int)(dot - key), key);
        t = cJSON_GetObjectItemCaseSensitive(t, part);
        key = dot + 1;
    }
    return t ? cJSON_GetObjectItemCaseSensitive(t, key) : NULL;
}

static cJSON *defaults(void) {
    cJSON *t = cJSON_CreateObject();
    for (const config_key *k = config_keys; k->name; k++) {
        cJSON *v = cJSON_Parse(k->def);
        CHECK(v && value_ok(k, v), "config_keys.c: the default of %s is not %s", k->name, type_name(k));
        put(t, k->name, v);
    }
    return t;
}

static char *read_file(const char *path, size_t *n, char *err, size_t errn) {
    FILE *f = fopen(path, "rb");
    if (!f) return mrc_fail(err, errn, "%s: cannot open: %s", path, strerror(errno)), NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0, r;
    do {
        if (len + 4096 > cap) {
            char *q = realloc(buf, cap = 2 * cap + 8192);
            if (!q) return free(buf), fclose(f), mrc_fail(err, errn, "%s: out of memory", path), NULL;
            buf = q;
        }
        r = fread(buf + len, 1, cap - len - 1, f);
        len += r;
    } while (r > 0);
    fclose(f);
    buf[len] = 0;
    *n = len;
    return buf;
}

/* path with its bases, merged, into *out (a new tree). */
static int load_tree(const char *path, int depth, const char **stack, cJSON **out, char *err, size_t errn) {
    char real[PATH_MAX];
    if (!realpath(path, real)) return mrc_fail(err, errn, "%s: cannot open: %s", path, strerror(errno));
    for (int i = 0; i < depth; i++)
        if (!strcmp(stack[i], real)) return mrc_fail(err, errn, "%s: _base_ cycle (the file includes itself)", path);
    if (depth == MAX_BASE_DEPTH) return mrc_fail(err, errn, "%s: _base_ chain deeper than %d", path, MAX_BASE_DEPTH);
    size_t n;
    char *text = read_file(path, &n, err, errn);
    if (!text) return -1;
    const char *end = NULL;
    cJSON *t = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!t) {
        int line = 1;
        for (const char *p = text; end && p < end; p++) line += *p == '\n';
        free(text);
        return mrc_fail(err, errn, "%s: line %d: not valid JSON", path, line);
    }
    free(text);
    if (!cJSON_IsObject(t)) return cJSON_Delete(t), mrc_fail(err, errn, "%s: a config must be a JSON object", path);
    if (validate(path, t, "", err, errn)) return cJSON_Delete(t), -1;
    cJSON *merged = cJSON_CreateObject();
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(t, "_base_");
    if (base && !cJSON_IsString(base) && !cJSON_IsArray(base))
        return cJSON_Delete(t), cJSON_Delete(merged), mrc_fail(err, errn, "%s: _base_ must be a path or a list of paths", path);
    stack[depth] = real;
    const cJSON *b = cJSON_IsArray(base) ? base->child : base;
    for (; b; b = cJSON_IsArray(base) ? b->next : NULL) {
        if (!cJSON_IsString(b))
            return cJSON_Delete(t), cJSON_Delete(merged), mrc_fail(err, errn, "%s: _base_ must list paths (strings)", path);
        char full[PATH_MAX + 256];
        const char *slash = strrchr(path, '/');
        if (b->valuestring[0] == '/' || !slash) snprintf(full, sizeof full, "%s", b->valuestring);
        else snprintf(full, sizeof full, "%.*s/%s", (int)(slash - path), path, b->valuestring);
        cJSON *bt;
        if (load_tree(full, depth + 1, stack, &bt, err, errn)) return cJSON_Delete(t), cJSON_Delete(merged), -1;
        merge(merged, bt);
        cJSON_Delete(bt);
    }
    merge(merged, t);
    cJSON_Delete(t);
    *out = merged;
    return 0;
}

int config_set(config *c, const char *a, char *err, size_t errn) {
    char where[300], key[256];
    snprintf(where, sizeof where, "override '%.250s'", a);
    const char *eq = strchr(a, '=');
    if (!eq || eq == a) return mrc_fail(err, errn, "%s: an override is key=value, e.g. solver.lr=0.01", where);
    snprintf(key, sizeof key, "%.*s", (int)(eq - a), a);
    const config_key *k = find_key(key);
    if (!k) return is_section(key) ? mrc_fail(err, errn, "%s: %s is a section; set one of its keys", where, key)
                                   : unknown_key(where, key, err, errn);
    cJSON *v = cJSON_Parse(eq + 1);
    if (!v) v = cJSON_CreateString(eq + 1); /* not JSON: a string */
    if (!value_ok(k, v)) {
        type_error(where, k, v, err, errn);
        cJSON_Delete(v);
        return -1;
    }
    put(c->root, key, v);
    return 0;
}

int config_load(config *c, const char *path, char *const *overrides, int n_overrides, char *err, size_t errn) {
    c->root = defaults();
    if (path) {
        const char *stack[MAX_BASE_DEPTH + 1];
        cJSON *t;
        if (load_tree(path, 0, stack, &t, err, errn)) return config_free(c), -1;
        merge(c->root, t);
        cJSON_Delete(t);
    }
    for (int i = 0; i < n_overrides; i++)
        if (config_set(c, overrides[i], err, errn)) return config_free(c), -1;
    return 0;
}

void config_free(config *c) {
    cJSON_Delete(c->root);
    c->root = NULL;
}

static const cJSON *typed(const config *c, const char *key, cfg_type want1, cfg_type want2) {
    const config_key *k = find_key(key);
    CHECK(k && (k->type == want1 || k->type == want2), "config: %s is not a declared key of that type", key);
    const cJSON *v = get(c->root, key);
    CHECK(v && value_ok(k, v), "config: %s is missing from the resolved config", key);
    return v;
}

int64_t config_int(const config *c, const char *key) { return (int64_t)typed(c, key, CFG_INT, CFG_INT)->valuedouble; }
double config_float(const config *c, const char *key) { return typed(c, key, CFG_FLOAT, CFG_FLOAT)->valuedouble; }
int config_bool(const config *c, const char *key) { return cJSON_IsTrue(typed(c, key, CFG_BOOL, CFG_BOOL)); }
const char *config_string(const config *c, const char *key) { return typed(c, key, CFG_STRING, CFG_ENUM)->valuestring; }

int config_int_list(const config *c, const char *key, int64_t *out, int max) {
    const cJSON *v = typed(c, key, CFG_INT_LIST, CFG_INT_LIST), *e;
    int n = 0;
    cJSON_ArrayForEach(e, v) {
        if (n < max) out[n] = (int64_t)e->valuedouble;
        n++;
    }
    return n;
}

int config_float_list(const config *c, const char *key, double *out, int max) {
    const cJSON *v = typed(c, key, CFG_FLOAT_LIST, CFG_FLOAT_LIST), *e;
    int n = 0;
    cJSON_ArrayForEach(e, v) {
        if (n < max) out[n] = e->valuedouble;
        n++;
    }
    return n;
}

int config_string_list(const config *c, const char *key, const char **out, int max) {
    const cJSON *v = typed(c, key, CFG_STRING_LIST, CFG_STRING_LIST), *e;
    int n = 0;
    cJSON_ArrayForEach(e, v) {
        if (n < max) out[n] = e->valuestring;
        n++;
    }
    return n;
}

char *config_to_json(const config *c) { return cJSON_Print(c->root); }

int config_save(const config *c, const char *path, char *err, size_t errn) {
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    char *text = config_to_json(c);
    if (!text) return mrc_fail(err, errn, "%s: out of memory", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    size_t n = strlen(text);
    int ok = fd >= 0 && write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0 && close(fd)) ok = 0, saved = errno;
    free(text);
    if (!ok || rename(tmp, path)) {
        if (ok) saved = errno;
        unlink(tmp);
        return mrc_fail(err, errn, "%s: cannot write: %s", path, strerror(saved));
    }
    return 0;
}

void config_print_help(FILE *f) {
    fprintf(f, "Configuration keys (JSON config files, \"_base_\" to inherit, KEY=VALUE overrides):\n");
    char section[64] = "";
    for (const config_key *k = config_keys; k->name; k++) {
        size_t len = (size_t)(strchr(k->name, '.') - k->name);
        if (strlen(section) != len || strncmp(section, k->name, len)) {
            snprintf(section, sizeof section, "%.*s", (int)len, k->name);
            fprintf(f, "\n[%s]\n", section);
        }
        fprintf(f, "  %-36s %-22s %s\n", k->name, k->def, k->help);
    }
}

/* config.h: run configuration (DESIGN §8-§9).
 *
 * A config is JSON. `"_base_": "path"` or a list of paths (relative to the file holding
 * them) are loaded first and deep-merged in order, then the file itself on top: objects
 * merge key by key, anything else replaces. Command-line overrides `solver.lr=0.01` come
 * last (the value is parsed as JSON, else taken as a string). Every key, its type and
 * default live in one table (config_keys.c); unknown keys are errors naming the nearest
 * valid key, type errors name the key and the expected type, and every message names
 * the file (or the override) it comes from. The resolved config holds every key, defaults
 * filled in; it is what runs print at start and save as OUT/config.json, and loading that
 * file again reproduces the run. */
#ifndef MRC_CONFIG_H
#define MRC_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CFG_INT = 0, CFG_FLOAT, CFG_BOOL, CFG_STRING, CFG_ENUM, CFG_INT_LIST, CFG_FLOAT_LIST, CFG_STRING_LIST } cfg_type;

typedef struct config_key {
    const char *name;    /* dotted: "solver.lr" */
    cfg_type type;
    const char *def;     /* the default as JSON text */
    const char *help;
    const char *choices; /* CFG_ENUM: "a|b|c" */
} config_key;

extern const config_key config_keys[]; /* ends with a NULL name */

typedef struct config {
    struct cJSON *root;  /* the resolved tree: every key of config_keys */
} config;

/* Defaults, then `path` (NULL: none) with its bases, then the overrides "key=value".
 * 0, or -1 with one line in err. */
int config_load(config *c, const char *path, char *const *overrides, int n_overrides, char *err, size_t errn);
void config_free(config *c);
/* One more override on a loaded config ("solver.lr=0.01"). */
int config_set(config *c, const char *assignment, char *err, size_t errn);

/* Typed reads of a declared key (an undeclared key or a wrong type is a programming error
 * and stops with a message). */
int64_t config_int(const config *c, const char *key);
double config_float(const config *c, const char *key);
int config_bool(const config *c, const char *key);
const char *config_string(const config *c, const char *key); /* CFG_STRING and CFG_ENUM */
/* Lists: up to max values into out; returns the list's length (may exceed max). */
int config_int_list(const config *c, const char *key, int64_t *out, int max);
int config_float_list(const config *c, const char *key, double *out, int max);
int config_string_list(const config *c, const char *key, const char **out, int max);

/* The resolved config as indented JSON (malloc'd, NUL-terminated). */
char *config_to_json(const config *c);
/* Writes it to path atomically (temporary file, fsync, rename). 0 or -1 with err. */
int config_save(const config *c, const char *path, char *err, size_t errn);
/* Every key with its type, default and meaning (`maskrcnn train --help-config`). */
void config_print_help(FILE *f);
/* The declared key nearest to `key` by edit distance (for messages), or NULL. */
const char *config_nearest_key(const char *key);

#ifdef __cplusplus
}
#endif
#endif

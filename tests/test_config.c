/* test_config.c: run configuration (src/train/config.h) on tests/fixtures/config/: defaults,
 * _base_ chains (a path, a list, relative to the including file), deep merge, overrides,
 * and one line naming the file and the key for every kind of mistake. Expected values are
 * read off the fixture files and config_keys.c by hand. */
#include "test.h"

#include "train/config.h"

#include <math.h>

#define FIX "tests/fixtures/config/"

static void test_defaults(void) {
    config c;
    char err[512] = "";
    REQUIRE(config_load(&c, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    EXPECT(config_float(&c, "solver.lr") == 0.02 && config_int(&c, "solver.max_iter") == 180000, "solver defaults");
    EXPECT(!strcmp(config_string(&c, "loss.cls"), "ce") && config_bool(&c, "data.aspect_grouping") == 1);
    int64_t sizes[8];
    EXPECT(config_int_list(&c, "data.min_size_train", sizes, 8) == 6 && sizes[0] == 640 && sizes[5] == 800,
           "min_size_train default");
    double mean[3];
    EXPECT(config_float_list(&c, "data.pixel_mean", mean, 3) == 3 && mean[2] == 123.675, "pixel mean");
    /* every declared key is present in the resolved tree with a value of its type */
    for (const config_key *k = config_keys; k->name; k++) {
        switch (k->type) {
        case CFG_INT: (void)config_int(&c, k->name); break;
        case CFG_FLOAT: (void)config_float(&c, k->name); break;
        case CFG_BOOL: (void)config_bool(&c, k->name); break;
        case CFG_STRING:
        case CFG_ENUM: (void)config_string(&c, k->name); break;
        case CFG_INT_LIST: (void)config_int_list(&c, k->name, NULL, 0); break;
        case CFG_FLOAT_LIST: (void)config_float_list(&c, k->name, NULL, 0); break;
        case CFG_STRING_LIST: (void)config_string_list(&c, k->name, NULL, 0); break;
        }
    }
    config_free(&c);
}

/* sub/grandchild.json <- [../child.json <- _base.json, ../_extra.json], then itself. */
static void test_bases_and_merge(void) {
    config c;
    char err[512] = "";
    REQUIRE(config_load(&c, FIX "sub/grandchild.json", NULL, 0, err, sizeof err) == 0, "%s", err);
    EXPECT(config_float(&c, "solver.lr") == 0.05, "_extra.json comes after child.json: lr %g", config_float(&c, "solver.lr"));
    EXPECT(config_int(&c, "solver.max_iter") == 2000, "child.json overrides _base.json");
    double steps[4];
    EXPECT(config_float_list(&c, "solver.steps", steps, 4) == 2 && steps[0] == 600, "lists come from _base.json whole");
    EXPECT(!strcmp(config_string(&c, "data.train.json"), "a.json") && !strcmp(config_string(&c, "data.train.image_root"), "imgs"),
           "data.train merged member by member");
    EXPECT(!strcmp(config_string(&c, "loss.cls"), "ecm") && config_int(&c, "train.seed") == 7);
    EXPECT(config_float(&c, "solver.momentum") == 0.9, "untouched keys keep their defaults");
    config_free(&c);
}

static void test_overrides(void) {
    config c;
    char err[512] = "";
    char *ov[] = {"solver.lr=0.001", "loss.cls=seesaw", "data.min_size_train=[100,200,300]", "model.weights=w.safetensors",
                  "train.deterministic=false"};
    REQUIRE(config_load(&c, FIX "child.json", ov, 5, err, sizeof err) == 0, "%s", err);
    EXPECT(config_float(&c, "solver.lr") == 0.001 && !strcmp(config_string(&c, "loss.cls"), "seesaw"));
    int64_t s[4];
    EXPECT(config_int_list(&c, "data.min_size_train", s, 4) == 3 && s[2] == 300, "a list override replaces the list");
    EXPECT(!strcmp(config_string(&c, "model.weights"), "w.safetensors"), "a non-JSON value is a string");
    EXPECT(config_bool(&c, "train.deterministic") == 0);
    const struct {
        const char *override, *want;
    } bad[] = {
        {"solver.lrr=0.1", "override 'solver.lrr=0.1': unknown key 'solver.lrr' (did you mean 'solver.lr'?)"},
        {"solver.lr=fast", "override 'solver.lr=fast': solver.lr must be a number, got \"fast\""},
        {"solver.max_iter=1.5", "solver.max_iter must be an integer, got 1.5"},
        {"loss.cls=focal", "loss.cls must be one of ce,federated,seesaw,loce,ecm, got \"focal\""},
        {"solver", "an override is key=value"},
        {"solver={}", "solver is a section; set one of its keys"},
        {"data.min_size_train=[1.5]", "data.min_size_train must be a list of integers"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        EXPECT(config_set(&c, bad[i].override, err, sizeof err) == -1 && strstr(err, bad[i].want),
               "%s: got '%s', want '%s'", bad[i].override, err, bad[i].want);
        EXPECT(!strchr(err, '\n'), "one line: %s", err);
    }
    EXPECT(config_float(&c, "solver.lr") == 0.001, "a refused override changes nothing");
    config_free(&c);
}

static void test_bad_files(void) {
    const struct {
        const char *file, *want;
    } bad[] = {
        {"unknown_key.json", FIX "unknown_key.json: unknown key 'solver.lrr' (did you mean 'solver.lr'?)"},
        {"type_error.json", FIX "type_error.json: solver.max_iter must be an integer, got 10.5"},
        {"bad_enum.json", FIX "bad_enum.json: loss.cls must be one of"},
        {"bad_json.json", FIX "bad_json.json: line 2: not valid JSON"},
        {"section_not_object.json", FIX "section_not_object.json: solver is a section and must be an object"},
        {"cycle_a.json", "_base_ cycle"},
        {"missing_base.json", FIX "nope.json: cannot open"},
        {"nonexistent.json", FIX "nonexistent.json: cannot open"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        config c = {0};
        char err[512] = "", path[256];
        snprintf(path, sizeof path, FIX "%s", bad[i].file);
        EXPECT(config_load(&c, path, NULL, 0, err, sizeof err) == -1, "%s was accepted", bad[i].file);
        EXPECT(strstr(err, bad[i].want) && !strchr(err, '\n'), "%s: got '%s', want '%s'", bad[i].file, err, bad[i].want);
        EXPECT(c.root == NULL, "%s: a failed load leaves nothing", bad[i].file);
    }
}

/* The saved resolved config loads back to the same tree: `maskrcnn train OUT/config.json`
 * reproduces the run. */
static void test_save_reload(void) {
    config a, b;
    char err[512] = "", path[] = "/tmp/mrc_test_config_XXXXXX";
    char *ov[] = {"solver.lr=0.003", "loss.cls=ecm"};
    REQUIRE(config_load(&a, FIX "sub/grandchild.json", ov, 2, err, sizeof err) == 0, "%s", err);
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    REQUIRE(config_save(&a, path, err, sizeof err) == 0, "%s", err);
    REQUIRE(config_load(&b, path, NULL, 0, err, sizeof err) == 0, "the saved config does not load: %s", err);
    char *ja = config_to_json(&a), *jb = config_to_json(&b);
    EXPECT(ja && jb && !strcmp(ja, jb), "reloaded config differs");
    free(ja), free(jb);
    config_free(&a), config_free(&b);
    unlink(path);
}

static void test_help_and_nearest(void) {
    char buf[65536] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    REQUIRE(f);
    config_print_help(f);
    fclose(f);
    int keys = 0;
    for (const config_key *k = config_keys; k->name; k++, keys++)
        EXPECT(strstr(buf, k->name), "--help-config misses %s", k->name);
    EXPECT(keys > 60 && strstr(buf, "[solver]") && strstr(buf, "[data]"), "%d keys", keys);
    EXPECT(!strcmp(config_nearest_key("data.min_size"), "data.min_size_test") ||
               !strcmp(config_nearest_key("data.min_size"), "data.min_size_train"),
           "nearest of data.min_size: %s", config_nearest_key("data.min_size"));
    EXPECT(!strcmp(config_nearest_key("sovler.momentum"), "solver.momentum"), "%s", config_nearest_key("sovler.momentum"));
}

int main(void) {
    RUN(test_defaults);
    RUN(test_bases_and_merge);
    RUN(test_overrides);
    RUN(test_bad_files);
    RUN(test_save_reload);
    RUN(test_help_and_nearest);
    return test_finish("test_config");
}

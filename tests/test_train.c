/* test_train.c: `maskrcnn train` with the tiny model on a small synth data set: the run
 * directory, exact resume (from a periodic checkpoint, and after SIGINT at a random
 * moment) giving bit-identical weights and losses to a straight run, weights-only init,
 * the guard against overwriting a run, and config errors. */
#include "test.h"

#include "core/safetensors.h"
#include "data/synth_cmd.h"
#include "train/train_cmd.h"

#include <signal.h>
#include <sys/wait.h>

static char dir[] = "/tmp/mrc_test_train_XXXXXX";

static const char *path(const char *name) {
    static char p[8][400];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* train CONFIG-less with overrides into out; extra args appended. */
static int train(const char *out, const char *extra1, const char *extra2, char *buf, size_t n) {
    char json[400], root[400], o[400];
    snprintf(json, sizeof json, "data.train.json=%s/data/lvis_v1_train.json", dir);
    snprintf(root, sizeof root, "data.train.image_root=%s/data", dir);
    snprintf(o, sizeof o, "%s/%s", dir, out);
    char *argv[] = {"train", "model.arch=tiny", json, root, "data.min_size_train=[160,192]", "data.max_size_train=320",
                    "solver.batch=4", "solver.lr=0.05", "solver.max_iter=60", "solver.warmup_iters=10", "solver.steps=[40]",
                    "train.log_period=1", "train.checkpoint_period=20", "train.threads=1", "train.keep_checkpoints=2",
                    "--out", o, (char *)extra1, (char *)extra2, NULL};
    return test_run_main(train_main, argv, buf, n);
}

/* The bytes of tensor `name` in a checkpoint, into buf (n floats at most); element count. */
static int read_tensor(const char *file, const char *name, float *buf, int n) {
    safetensors st;
    char err[512];
    if (safetensors_open(&st, file, err, sizeof err)) return -1;
    const st_tensor *t = safetensors_find(&st, name);
    int count = t ? (int)(t->bytes / 4) : -1;
    if (t && count <= n) memcpy(buf, safetensors_data(&st, t), t->bytes);
    safetensors_close(&st);
    return count;
}

static int same_final(const char *a, const char *b) {
    const char *names[] = {"tiny.fc1.weight", "tiny.fc1.bias", "tiny.fc2.weight", "tiny.fc2.bias"};
    static float x[8192], y[8192];
    for (int i = 0; i < 4; i++) {
        int n = read_tensor(a, names[i], x, 8192), m = read_tensor(b, names[i], y, 8192);
        if (n <= 0 || n != m || memcmp(x, y, (size_t)n * 4)) return 0;
    }
    return 1;
}

/* The total_loss of iteration it in a metrics.jsonl (the last record for it), or NAN. */
static double loss_at(const char *metrics, int it) {
    FILE *f = fopen(metrics, "r");
    char line[1024];
    double v = NAN;
    while (f && fgets(line, sizeof line, f)) {
        int i;
        double l;
        if (sscanf(line, "{\"iteration\": %d, \"total_loss\": %lf", &i, &l) == 2 && i == it) v = l;
    }
    if (f) fclose(f);
    return v;
}

static void test_run_directory(void) {
    char out[65536];
    int st = train("straight", NULL, NULL, out, sizeof out);
    REQUIRE(st == 0, "exit %d: %s", st, out);
    EXPECT(access(path("straight/config.json"), R_OK) == 0 && access(path("straight/log.txt"), R_OK) == 0 &&
               access(path("straight/metrics.jsonl"), R_OK) == 0 && access(path("straight/model_final.safetensors"), R_OK) == 0,
           "run directory incomplete");
    /* keep_checkpoints = 2 with a period of 20 over 60 iterations: 20 and 40 remain */
    EXPECT(access(path("straight/model_0000020.safetensors"), F_OK) == 0 &&
               access(path("straight/model_0000040.safetensors"), F_OK) == 0,
           "periodic checkpoints");
    FILE *f = fopen(path("straight/last_checkpoint"), "r");
    char last[128] = "";
    if (f) fgets(last, sizeof last, f), fclose(f);
    EXPECT(!strcmp(last, "model_final.safetensors\n"), "last_checkpoint: '%s'", last);
    EXPECT(strstr(out, "iter 60/60") && strstr(out, "data_time") && strstr(out, "lr "), "progress line: %.500s", out);
    double l0 = loss_at(path("straight/metrics.jsonl"), 0), l59 = loss_at(path("straight/metrics.jsonl"), 59);
    EXPECT(l0 > l59 && l0 > 2.0, "the loss does not fall: %g -> %g", l0, l59);
    /* a second run into the same directory is refused */
    st = train("straight", NULL, NULL, out, sizeof out);
    EXPECT(st == 1 && strstr(out, "already holds a run") && strstr(out, "--resume"), "exit %d: %.400s", st, out);
}

/* Resume from the periodic checkpoint at 20: iterations 20..59 again, bit-identical. */
static void test_resume_from_checkpoint(void) {
    char out[65536];
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp -r %s/straight %s/again && cd %s/again && rm model_final.safetensors && "
                              "echo model_0000020.safetensors > last_checkpoint",
             dir, dir, dir);
    REQUIRE(system(cmd) == 0);
    int st = train("again", "--resume", NULL, out, sizeof out);
    REQUIRE(st == 0, "resume: exit %d: %.2000s", st, out);
    EXPECT(strstr(out, "resumed from") && strstr(out, "at iteration 20"), "%.300s", out);
    EXPECT(same_final(path("straight/model_final.safetensors"), path("again/model_final.safetensors")),
           "resumed weights differ from the straight run");
    for (int it = 20; it < 60; it++) {
        double a = loss_at(path("straight/metrics.jsonl"), it), b = loss_at(path("again/metrics.jsonl"), it);
        if (a != b) {
            EXPECT(0, "iteration %d: loss %.17g straight, %.17g resumed", it, a, b);
            break;
        }
    }
}

static int lines_in(const char *file) {
    FILE *f = fopen(file, "r");
    int n = 0, c;
    while (f && (c = fgetc(f)) != EOF) n += c == '\n';
    if (f) fclose(f);
    return n;
}

/* SIGINT in the middle of a longer run (sent once its metrics show 30 iterations): a
 * checkpoint and exit 130; --resume finishes with the straight run's final weights. */
static void test_interrupt_and_resume(void) {
    char out[65536];
    int st = train("straight400", "solver.max_iter=400", NULL, out, sizeof out);
    REQUIRE(st == 0, "exit %d: %.500s", st, out);
    char o[400], json[400], root[400];
    snprintf(o, sizeof o, "%s/interrupted", dir);
    snprintf(json, sizeof json, "data.train.json=%s/data/lvis_v1_train.json", dir);
    snprintf(root, sizeof root, "data.train.image_root=%s/data", dir);
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(99);
        char *argv[] = {"train", "model.arch=tiny", json, root, "data.min_size_train=[160,192]", "data.max_size_train=320",
                        "solver.batch=4", "solver.lr=0.05", "solver.max_iter=60", "solver.warmup_iters=10",
                        "solver.steps=[40]", "train.log_period=1", "train.checkpoint_period=20", "train.threads=1",
                        "train.keep_checkpoints=2", "--out", o, "solver.max_iter=400", NULL};
        _exit(train_main(18, argv));
    }
    int status = 0, done = 0;
    for (int k = 0; k < 4000 && !done; k++) { /* up to 20 s */
        if (lines_in(path("interrupted/metrics.jsonl")) >= 30) break;
        done = waitpid(pid, &status, WNOHANG) == pid;
        usleep(5000);
    }
    if (!done) {
        kill(pid, SIGINT);
        waitpid(pid, &status, 0);
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    REQUIRE(code == 130, "exit %d: the run was not interrupted (it ended before the signal?)", code);
    FILE *f = fopen(path("interrupted/last_checkpoint"), "r");
    char last[128] = "";
    if (f) {
        if (!fgets(last, sizeof last, f)) last[0] = 0;
        fclose(f);
    }
    EXPECT(strncmp(last, "model_", 6) == 0 && strcmp(last, "model_final.safetensors\n"), "last_checkpoint '%s'", last);
    st = train("interrupted", "solver.max_iter=400", "--resume", out, sizeof out);
    EXPECT(st == 0, "resume after SIGINT: exit %d: %.1000s", st, out);
    EXPECT(same_final(path("straight400/model_final.safetensors"), path("interrupted/model_final.safetensors")),
           "interrupted (at %s) and resumed weights differ from the straight run", last);
}

static void test_weights_and_errors(void) {
    char out[65536], w[500];
    snprintf(w, sizeof w, "model.weights=%s/straight/model_final.safetensors", dir);
    int st = train("fromweights", w, NULL, out, sizeof out);
    EXPECT(st == 0 && strstr(out, "initial weights from") && strstr(out, "loaded 4 of 4 parameters (weights only)") &&
               strstr(out, "starting at iteration 0"),
           "exit %d: %.600s", st, out);
    /* a learning rate that blows up: the run stops naming the term, the iteration and the
     * images, and keeps its last good checkpoint; with nan_policy=skip it goes on */
    st = train("nan", "solver.lr=1e30", NULL, out, sizeof out);
    EXPECT(st == 1 && strstr(out, "non-finite total_loss = ") && strstr(out, " at iteration ") && strstr(out, "image ids ") &&
               strstr(out, "the last good checkpoint is kept"),
           "exit %d: %.800s", st, out);
    EXPECT(access(path("nan/model_final.safetensors"), F_OK) != 0, "a NaN run wrote model_final");
    st = train("nanskip", "solver.lr=1e30", "train.nan_policy=skip", out, sizeof out);
    EXPECT(st == 0 && strstr(out, "warning: skipped the update of a non-finite total_loss"), "exit %d: %.800s", st, out);
    st = train("bad", "solver.lrr=1", NULL, out, sizeof out);
    EXPECT(st == 1 && strstr(out, "unknown key 'solver.lrr' (did you mean 'solver.lr'?)"), "exit %d: %.300s", st, out);
    st = train("nothing", "--resume", NULL, out, sizeof out);
    EXPECT(st == 1 && strstr(out, "nothing to resume"), "exit %d: %.300s", st, out);
    char *help[] = {"train", "--help-config", NULL};
    st = test_run_main(train_main, help, out, sizeof out);
    EXPECT(st == 0 && strstr(out, "solver.lr") && strstr(out, "train.keep_checkpoints"), "--help-config: %.200s", out);
}

int main(void) {
    if (!mkdtemp(dir)) return fprintf(stderr, "test_train: cannot create %s\n", dir), 1;
    char out[4096], data[400];
    snprintf(data, sizeof data, "%s/data", dir);
    char *synth[] = {"synth", "--out", data, "--train", "200", "--val", "40", NULL};
    int st = test_run_main(synth_main, synth, out, sizeof out);
    if (st) return fprintf(stderr, "test_train: synth failed (%d): %s\n", st, out), 1;
    RUN(test_run_directory);
    RUN(test_resume_from_checkpoint);
    RUN(test_interrupt_and_resume);
    RUN(test_weights_and_errors);
    test_remove_tmpdir(dir);
    return test_finish("test_train");
}

/* train_cmd.c: `maskrcnn train` (DESIGN §9-§10): the configuration, the run directory, the
 * loop (loader -> model -> backward -> clip -> SGD at the scheduled lr), the progress line,
 * metrics.jsonl and log.txt, the NaN/Inf guard, checkpoints (periodic keeping the last K,
 * model_final, last_checkpoint), SIGINT/SIGTERM and exact resume.
 *
 * Today's models: `tiny` (tiny_model.h); the detectors plug in here as they arrive. */
#include "train/train_cmd.h"

#include "core/check.h"
#include "core/runtime.h"
#include "data/loader.h"
#include "data/lvis.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/optim.h"
#include "train/tiny_model.h"
#include "model/detector.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int s) { stop_signal = s; }

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

typedef struct run {
    char out[1024];
    FILE *log, *metrics;
    config cfg;
    lvis_data data;
    loader *ld;
    runtime rt;
    int tiny;                 /* model.arch = tiny (else the detector) */
    tiny_model model;
    detector det;
    int det_ready;
    tensor **params;          /* the model's tensors for the optimizer and checkpoints */
    int n_params;
    param_group pg;
    sgd_config sgd;
    lr_schedule sched;
    int64_t iter, max_iter;
} run;

/* A line to stdout and log.txt. */
static void say(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(run *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (r->log) {
        va_start(ap, fmt);
        vfprintf(r->log, fmt, ap);
        va_end(ap);
        fflush(r->log);
    }
}

static void usage(FILE *f) {
    fprintf(f, "usage: maskrcnn train [CONFIG.json] [key=value ...] [--out DIR] [--resume] [--force] [--help-config]\n"
               "  Trains as CONFIG says (defaults: maskrcnn train --help-config), with key=value overrides\n"
               "  (e.g. solver.lr=0.01; the value is JSON, else a string). The run directory DIR (default\n"
               "  output) receives config.json (the resolved config: `maskrcnn train DIR/config.json` runs\n"
               "  it again), log.txt, metrics.jsonl, checkpoints model_NNNNNNN.safetensors (the last\n"
               "  train.keep_checkpoints), model_final.safetensors and last_checkpoint.\n"
               "  --resume    continue the run in DIR from its last checkpoint: weights, optimizer,\n"
               "              schedule, data order and random streams, bit-exactly on the CPU\n"
               "  --force     start over in a DIR that already holds a run (its checkpoints are replaced)\n"
               "  model.weights=FILE only initialises the weights (the run starts at iteration 0).\n"
               "  Ctrl-C (SIGINT) or SIGTERM writes a checkpoint and stops; --resume continues.\n");
}

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

/* The name in DIR/last_checkpoint, or "" (none). */
static void read_last(const char *out, char *name, size_t n) {
    char p[1100];
    snprintf(p, sizeof p, "%s/last_checkpoint", out);
    name[0] = 0;
    FILE *f = fopen(p, "r");
    if (!f) return;
    if (fgets(name, (int)n, f)) name[strcspn(name, "\r\n")] = 0;
    fclose(f);
}

static int write_last(const char *out, const char *name, char *err, size_t errn) {
    char p[1100], tmp[1200];
    snprintf(p, sizeof p, "%s/last_checkpoint", out);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%s\n", name) > 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f)) ok = 0;
    if (!ok || rename(tmp, p)) return snprintf(err, errn, "%s: cannot write: %s", p, strerror(errno)), -1;
    return 0;
}

/* A checkpoint whose next iteration to run is `next`. */
static int save(run *r, const char *name, int64_t next, char *err, size_t errn) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", r->out, name);
    checkpoint_meta m = {0};
    m.iteration = next, m.optimizer_steps = r->pg.steps, m.seed = (uint64_t)config_int(&r->cfg, "train.seed");
    m.threads = r->rt.threads;
    loader_get_cursor(r->ld, &m.cursor, &m.next_batch);
    m.config_json = config_to_json(&r->cfg);
    int rc = checkpoint_save(path, &r->pg, NULL, 0, &m, err, errn);
    free(m.config_json);
    return rc ? rc : write_last(r->out, name, err, errn);
}

/* Periodic checkpoints older than the last `keep` (the newest written at `next`) are
 * removed; model_final never is. */
static void rotate(run *r, int64_t next, int64_t keep) {
    int64_t period = config_int(&r->cfg, "train.checkpoint_period");
    for (int64_t it = next - keep * period; it > 0 && period > 0; it -= period) {
        char p[1200];
        snprintf(p, sizeof p, "%s/model_%07lld.safetensors", r->out, (long long)it);
        if (!file_exists(p)) break;
        unlink(p);
    }
}

static int setup_data(run *r, char *err, size_t errn) {
    const char *json = config_string(&r->cfg, "data.train.json");
    if (!json[0]) return snprintf(err, errn, "data.train.json is empty: give an LVIS file (e.g. one written by "
                                             "maskrcnn synth)"),
                      -1;
    lvis_options o = {.image_root = config_string(&r->cfg, "data.train.image_root"), .mode = LVIS_STRICT, .progress = 1};
    if (lvis_open(&r->data, json, &o, err, errn)) return -1;
    loader_config c;
    loader_config_default(&c, (int)config_int(&r->cfg, "solver.batch"), (uint64_t)config_int(&r->cfg, "train.seed"));
    CHECK(sampler_kind_parse(config_string(&r->cfg, "data.sampler"), &c.sampler.kind) == 0, "data.sampler: not validated");
    c.sampler.rfs_threshold = config_float(&r->cfg, "data.rfs.threshold");
    c.sampler.group_aspect = config_bool(&r->cfg, "data.aspect_grouping");
    int64_t sizes[LOADER_MAX_SIZES];
    c.n_short = config_int_list(&r->cfg, "data.min_size_train", sizes, LOADER_MAX_SIZES);
    if (c.n_short > LOADER_MAX_SIZES) return snprintf(err, errn, "data.min_size_train: at most %d sizes", LOADER_MAX_SIZES), -1;
    for (int i = 0; i < c.n_short; i++) c.short_sizes[i] = (int)sizes[i];
    c.max_size = (int)config_int(&r->cfg, "data.max_size_train");
    c.flip_prob = config_float(&r->cfg, "data.flip");
    c.bgr = !strcmp(config_string(&r->cfg, "data.format"), "BGR");
    double v[3];
    if (config_float_list(&r->cfg, "data.pixel_mean", v, 3) != 3) return snprintf(err, errn, "data.pixel_mean needs 3 values"), -1;
    for (int k = 0; k < 3; k++) c.mean[k] = (float)v[k];
    if (config_float_list(&r->cfg, "data.pixel_std", v, 3) != 3) return snprintf(err, errn, "data.pixel_std needs 3 values"), -1;
    for (int k = 0; k < 3; k++) c.std[k] = (float)v[k];
    c.size_divisibility = (int)config_int(&r->cfg, "data.size_divisibility");
    c.canvas_step = (int)config_int(&r->cfg, "data.canvas_step");
    c.max_gt = (int)config_int(&r->cfg, "data.max_gt");
    c.threads = (int)config_int(&r->cfg, "data.workers");
    c.prefetch = (int)config_int(&r->cfg, "data.prefetch");
    c.pinned = r->rt.device == DEVICE_CUDA;
    r->ld = loader_new(&r->data, &c, err, errn);
    return r->ld ? 0 : -1;
}

static int setup_solver(run *r, char *err, size_t errn) {
    const config *c = &r->cfg;
    r->sgd = (sgd_config){config_float(c, "solver.momentum"), config_float(c, "solver.weight_decay"),
                          config_float(c, "solver.weight_decay_norm"), config_float(c, "solver.weight_decay_bias"),
                          config_float(c, "solver.clip_grad_norm")};
    const char *tr[64], *fr[64];
    int nt = config_string_list(c, "solver.trainable", tr, 64), nf = config_string_list(c, "solver.frozen", fr, 64);
    if (nt > 64 || nf > 64) return snprintf(err, errn, "solver.trainable/frozen: at most 64 patterns"), -1;
    if (param_group_init(&r->pg, r->params, r->n_params, &r->sgd, tr, nt, fr, nf, err, errn)) return -1;
    /* the length: iterations, or epochs of the sampler (mmdet counts RFS epochs) */
    double epochs = config_float(c, "solver.epochs");
    int64_t per_epoch = 0;
    if (epochs > 0) per_epoch = loader_epoch_iterations(r->ld);
    r->max_iter = epochs > 0 ? (int64_t)llround(epochs * (double)per_epoch) : config_int(c, "solver.max_iter");
    r->sched = (lr_schedule){config_float(c, "solver.lr"), config_int(c, "solver.warmup_iters"),
                             config_float(c, "solver.warmup_factor"), {0}, 0, config_float(c, "solver.gamma")};
    double steps[LR_MAX_STEPS];
    int ns = config_float_list(c, "solver.steps", steps, LR_MAX_STEPS);
    if (ns > LR_MAX_STEPS) return snprintf(err, errn, "solver.steps: at most %d steps", LR_MAX_STEPS), -1;
    r->sched.n_steps = ns;
    for (int i = 0; i < ns; i++)
        r->sched.steps[i] = epochs > 0 ? (int64_t)llround(steps[i] * (double)per_epoch) : (int64_t)steps[i];
    if (epochs > 0) say(r, "run length: %g epochs x %lld iterations = %lld iterations\n", epochs, (long long)per_epoch,
                        (long long)r->max_iter);
    return 0;
}

/* One line per logged iteration to stdout/log.txt and one JSON object to metrics.jsonl:
 * the total and every named term of the step. */
static void log_iteration(run *r, double loss, int n_terms, const char *const *names, const double *values, double lr,
                          double iter_s, double data_s, double t_start, int64_t it0) {
    double done = (double)(r->iter + 1 - it0), left = (double)(r->max_iter - r->iter - 1);
    double eta = done > 0 ? (now_s() - t_start) / done * left : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double mem_mb = ru.ru_maxrss / 1024.0;
    char terms[512] = "";
    int o = 0;
    for (int i = 0; i < n_terms && o < (int)sizeof terms - 64; i++)
        o += snprintf(terms + o, sizeof terms - (size_t)o, "  %s %.4f", names[i], values[i]);
    say(r, "iter %lld/%lld  eta %02d:%02d:%02d  total_loss %.4f%s  lr %.6g  time %.3f  data_time %.3f  max_mem %.0fM\n",
        (long long)(r->iter + 1), (long long)r->max_iter, (int)(eta / 3600), (int)fmod(eta / 60, 60), (int)fmod(eta, 60),
        loss, terms, lr, iter_s, data_s, mem_mb);
    if (r->metrics) {
        fprintf(r->metrics, "{\"iteration\": %lld, \"total_loss\": %.17g", (long long)r->iter, loss);
        for (int i = 0; i < n_terms; i++) fprintf(r->metrics, ", \"%s\": %.17g", names[i], values[i]);
        fprintf(r->metrics, ", \"lr\": %.17g, \"time\": %.6f, \"data_time\": %.6f, \"eta_seconds\": %.1f, \"max_mem\": %.0f}\n",
                lr, iter_s, data_s, eta, mem_mb);
        fflush(r->metrics);
    }
}

/* A [1] loss tensor's value on the host. */
static double scalar(const tensor *t) {
    if (t->device == DEVICE_CPU) return t->dtype == DTYPE_F64 ? tensor_f64(t)[0] : (double)tensor_f32(t)[0];
    float v;
    tensor h = tensor_view(&v, DTYPE_F32, DEVICE_CPU, TSHAPE(1));
    tensor_copy(&h, t);
    return v;
}

static int loop(run *r, char *err, size_t errn) {
    int64_t log_period = config_int(&r->cfg, "train.log_period"), ck_period = config_int(&r->cfg, "train.checkpoint_period");
    int64_t keep = config_int(&r->cfg, "train.keep_checkpoints");
    int skip_nan = !strcmp(config_string(&r->cfg, "train.nan_policy"), "skip");
    double t_start = now_s();
    int64_t it0 = r->iter;
    int bad = 0; /* a non-finite loss since the last check (the flag a GPU step would keep on the device) */
    char bad_what[512] = "";
    for (; r->iter < r->max_iter; r->iter++) {
        double t0 = now_s();
        const loader_batch *b = loader_next(r->ld, err, errn);
        if (!b) return -1;
        double data_s = loader_get_counts(r->ld)->last_wait_s;
        double lr = lr_at(&r->sched, r->iter), loss = 0, values[DETECTOR_MAX_TERMS];
        const char *names[DETECTOR_MAX_TERMS];
        int n_terms = 0;
        tensor *l;
        if (r->tiny) {
            l = tiny_model_loss(&r->model, &r->rt, b);
            if (l) names[0] = "loss_cls", values[0] = scalar(l), n_terms = 1;
        } else {
            detector_losses dl = detector_train_forward(&r->rt, &r->det, b, (uint64_t)config_int(&r->cfg, "train.seed"),
                                                        (uint64_t)r->iter);
            l = dl.total;
            for (int i = 0; i < dl.n; i++) names[i] = dl.name[i], values[i] = scalar(dl.term[i]);
            n_terms = dl.n;
        }
        if (l) {
            loss = scalar(l);
            if (!isfinite(loss) && !bad) {
                bad = 1;
                int n = snprintf(bad_what, sizeof bad_what, "total_loss = %g at iteration %lld (batch %lld, image ids", loss,
                                 (long long)r->iter, (long long)b->index);
                for (int k = 0; k < b->n && n < (int)sizeof bad_what - 24; k++)
                    n += snprintf(bad_what + n, sizeof bad_what - (size_t)n, " %lld", (long long)r->data.imgs[b->img[k].index].id);
                snprintf(bad_what + n, sizeof bad_what - (size_t)n, ")");
            }
            if (!bad || !skip_nan) {
                runtime_backward(&r->rt, l);
                sgd_step(&r->pg, &r->sgd, lr);
            }
            param_group_zero_grad(&r->pg);
        }
        runtime_step_end(&r->rt);
        if (bad && !skip_nan) /* checked every step on the CPU; the GPU path reads the flag at the log period */
            return snprintf(err, errn, "non-finite %s; stopped (the last good checkpoint is kept)", bad_what), -1;
        if (bad && skip_nan) say(r, "warning: skipped the update of a non-finite %s\n", bad_what), bad = 0;
        if ((r->iter + 1) % log_period == 0 || r->iter + 1 == r->max_iter)
            log_iteration(r, loss, n_terms, names, values, lr, now_s() - t0, data_s, t_start, it0);
        int64_t next = r->iter + 1;
        if (ck_period > 0 && next % ck_period == 0 && next < r->max_iter) {
            char name[64];
            snprintf(name, sizeof name, "model_%07lld.safetensors", (long long)next);
            if (save(r, name, next, err, errn)) return -1;
            rotate(r, next, keep);
        }
        if (stop_signal && next < r->max_iter) {
            char name[64];
            snprintf(name, sizeof name, "model_%07lld.safetensors", (long long)next);
            if (save(r, name, next, err, errn)) return -1;
            say(r, "stopped by signal %d after iteration %lld: wrote %s; --resume continues\n", (int)stop_signal,
                (long long)next, name);
            return 128 + (int)stop_signal;
        }
    }
    if (save(r, "model_final.safetensors", r->max_iter, err, errn)) return -1;
    say(r, "done: %lld iterations; %s/model_final.safetensors\n", (long long)r->max_iter, r->out);
    return 0;
}

static int parse_args(int argc, char **argv, const char **cfg_path, char **ov, int *n_ov, const char **out, int *resume,
                      int *force) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), 0;
        if (!strcmp(a, "--help-config")) return config_print_help(stdout), 0;
        if (!strcmp(a, "--resume")) *resume = 1;
        else if (!strcmp(a, "--force")) *force = 1;
        else if (!strcmp(a, "--out") && i + 1 < argc) *out = argv[++i];
        else if (a[0] == '-') return fprintf(stderr, "error: unknown option '%s'\n", a), usage(stderr), 2;
        else if (strchr(a, '=')) ov[(*n_ov)++] = argv[i];
        else if (!*cfg_path) *cfg_path = a;
        else return fprintf(stderr, "error: unexpected argument '%s' (one config file; overrides are key=value)\n", a), 2;
    }
    return -1; /* go on */
}

int train_main(int argc, char **argv) {
    const char *cfg_path = NULL, *out = "output";
    char **ov = calloc((size_t)argc + 1, sizeof *ov), err[2048] = "";
    int n_ov = 0, resume = 0, force = 0;
    int pa = parse_args(argc, argv, &cfg_path, ov, &n_ov, &out, &resume, &force);
    if (pa >= 0) return free(ov), pa;
    run r;
    int rt_ready = 0;
    memset(&r, 0, sizeof r);
    snprintf(r.out, sizeof r.out, "%s", out);
    char last[256], saved_cfg[1100];
    read_last(out, last, sizeof last);
    snprintf(saved_cfg, sizeof saved_cfg, "%s/config.json", out);
    if (resume && !last[0]) return free(ov), fprintf(stderr, "error: %s: nothing to resume (no last_checkpoint)\n", out), 1;
    if (!resume && last[0] && !force)
        return free(ov), fprintf(stderr, "error: %s already holds a run (last_checkpoint: %s); --resume continues it, "
                                         "--force starts over\n",
                                 out, last),
               1;
    /* --resume without a config runs the saved one */
    if (config_load(&r.cfg, cfg_path ? cfg_path : resume ? saved_cfg : NULL, ov, n_ov, err, sizeof err))
        return free(ov), fprintf(stderr, "error: %s\n", err), 1;
    free(ov);
    int rc = 1;
    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "error: cannot create %s: %s\n", out, strerror(errno));
        goto done;
    }
    char p[1100];
    snprintf(p, sizeof p, "%s/log.txt", out);
    r.log = fopen(p, resume ? "a" : "w");
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    r.metrics = fopen(p, resume ? "a" : "w");
    if (!r.log || !r.metrics || config_save(&r.cfg, saved_cfg, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err[0] ? err : "cannot write the run directory");
        goto done;
    }
    char *text = config_to_json(&r.cfg);
    say(&r, "resolved config (saved as %s):\n%s\n", saved_cfg, text);
    free(text);
    const char *arch = config_string(&r.cfg, "model.arch");
    r.tiny = !strcmp(arch, "tiny");
    if (!r.tiny && strcmp(arch, "mask_rcnn")) {
        fprintf(stderr, "error: model.arch %s is not trainable yet (cascade comes with a later issue); mask_rcnn and "
                        "tiny are\n",
                arch);
        goto done;
    }
    runtime_config rc_cfg = runtime_config_default();
    rc_cfg.device = r.tiny ? "cpu" : config_string(&r.cfg, "train.device"); /* the tiny model is CPU-only */
    rc_cfg.threads = (int)config_int(&r.cfg, "train.threads");
    runtime_init(&r.rt, &rc_cfg);
    rt_ready = 1;
    if (setup_data(&r, err, sizeof err)) goto fail;
    if (r.tiny) {
        tiny_model_init(&r.model, &r.rt, r.data.n_cat, (uint64_t)config_int(&r.cfg, "train.seed"));
        r.params = r.model.params, r.n_params = 4;
    } else {
        detector_config dc;
        if (detector_config_from(&r.cfg, r.data.n_cat, &dc, err, sizeof err)) goto fail;
        detector_init(&r.det, &dc, NULL, DTYPE_F32, r.rt.device);
        r.det_ready = 1;
        r.params = r.det.tensors, r.n_params = r.det.n_tensors;
    }
    if (setup_solver(&r, err, sizeof err)) goto fail;
    const char *weights = config_string(&r.cfg, "model.weights");
    char report[2048] = "";
    if (resume) {
        checkpoint_meta m;
        snprintf(p, sizeof p, "%s/%s", out, last);
        if (checkpoint_load(p, &r.pg, CHECKPOINT_RESUME, &m, report, sizeof report, err, sizeof err)) goto fail;
        r.iter = m.iteration;
        int lrc = loader_set_cursor(r.ld, &m.cursor, m.next_batch, err, sizeof err);
        if (m.threads != r.rt.threads)
            say(&r, "note: the checkpoint was written with %d threads, this run has %d: CPU results may differ in the "
                    "last bits\n",
                m.threads, r.rt.threads);
        checkpoint_meta_free(&m);
        if (lrc) goto fail;
        say(&r, "resumed from %s at iteration %lld\n", report, (long long)r.iter);
    } else if (weights[0]) {
        if (checkpoint_load(weights, &r.pg, CHECKPOINT_WEIGHTS, NULL, report, sizeof report, err, sizeof err)) goto fail;
        say(&r, "initial weights from %s; starting at iteration 0\n", report);
    }
    say(&r, "training %s on %s (%d images, %d classes), device %s, %d threads, %lld iterations\n",
        config_string(&r.cfg, "model.arch"), config_string(&r.cfg, "data.train.json"), r.data.n_img, r.data.n_cat,
        r.rt.device_desc, r.rt.threads, (long long)r.max_iter);
    signal(SIGINT, on_signal), signal(SIGTERM, on_signal);
    rc = loop(&r, err, sizeof err);
    signal(SIGINT, SIG_DFL), signal(SIGTERM, SIG_DFL);
    if (rc < 0) goto fail;
    goto done;
fail:
    fprintf(stderr, "error: %s\n", err);
    if (r.log) fprintf(r.log, "error: %s\n", err);
    rc = 1;
done:
    if (r.pg.params) param_group_free(&r.pg);
    if (r.model.params[0]) tiny_model_free(&r.model);
    if (r.det_ready) detector_free(&r.det);
    if (r.ld) loader_free(r.ld);
    if (r.data.cats) lvis_free(&r.data);
    if (rt_ready) runtime_free(&r.rt);
    if (r.log) fclose(r.log);
    if (r.metrics) fclose(r.metrics);
    config_free(&r.cfg);
    return rc;
}

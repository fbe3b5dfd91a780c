/* eval_cmd.c: `maskrcnn eval CONFIG --weights CKPT` (eval_cmd.h). */
#include "eval/eval_cmd.h"

#include "core/check.h"
#include "core/runtime.h"
#include "core/safetensors.h"
#include "data/loader.h"
#include "data/lvis.h"
#include "eval/lvis_eval.h"
#include "eval/lvis_eval_cmd.h"
#include "eval/rle.h"
#include "model/detector.h"
#include "model/postprocess.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/optim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

static void usage(FILE *f) {
    fprintf(f, "usage: maskrcnn eval CONFIG --weights CKPT [--out DIR] [key=value ...]\n"
               "  Runs the model of CONFIG with the weights of CKPT on data.val (data.val.json,\n"
               "  data.val.image_root): short side data.min_size_test, long side at most\n"
               "  data.max_size_test, no flip; detections above eval.score_thresh, per-class NMS at\n"
               "  eval.nms_thresh, the best eval.max_dets per image; masks pasted into the original\n"
               "  image. Streams the LVIS results to DIR/inference/lvis_results_{bbox,segm}.json, runs\n"
               "  the official LVIS evaluation on both and writes DIR/eval.json:\n"
               "    {\"bbox\": {AP, AP50, ...}, \"segm\": {...}, \"iteration\": N, \"weights\": CKPT}\n"
               "  (fractions, -1 where there is no value). DIR defaults to the folder of CKPT.\n"
               "  eval.subset=N runs the first N images only (a quick look: the AP still counts the\n"
               "  objects of the other images as missed).\n");
}

/* The loader settings of inference: sequential, one image per batch, no flip. */
static int test_loader_config(const config *c, loader_config *o, char *err, size_t errn) {
    loader_config_default(o, 1, (uint64_t)config_int(c, "train.seed"));
    o->sampler.kind = SAMPLER_SEQUENTIAL;
    o->sampler.group_aspect = 0;
    o->n_short = 1;
    o->short_sizes[0] = (int)config_int(c, "data.min_size_test");
    o->max_size = (int)config_int(c, "data.max_size_test");
    o->flip_prob = 0;
    o->bgr = !strcmp(config_string(c, "data.format"), "BGR");
    double v[3];
    if (config_float_list(c, "data.pixel_mean", v, 3) != 3) return snprintf(err, errn, "data.pixel_mean needs 3 values"), -1;
    for (int k = 0; k < 3; k++) o->mean[k] = (float)v[k];
    if (config_float_list(c, "data.pixel_std", v, 3) != 3) return snprintf(err, errn, "data.pixel_std needs 3 values"), -1;
    for (int k = 0; k < 3; k++) o->std[k] = (float)v[k];
    o->size_divisibility = (int)config_int(c, "data.size_divisibility");
    o->canvas_step = 0;
    o->max_gt = 100000; /* inference ignores the instances (the loader's cap) */
    o->threads = (int)config_int(c, "data.workers");
    o->prefetch = (int)config_int(c, "data.prefetch");
    return 0;
}

static int mkdir_p(const char *dir) { return mkdir(dir, 0755) && errno != EEXIST ? -1 : 0; }

static void json_metrics(FILE *f, const lvis_eval_result *r) {
    char v[40];
    fprintf(f, "{");
    for (int i = 0; i < LVIS_NUM_STATS; i++) {
        lvis_fmt_double(v, sizeof v, r->stats[i]);
        fprintf(f, "%s\"%s\": %s", i ? ", " : "", lvis_stat_names[i], v);
    }
    fprintf(f, "}");
}

/* Writes PATH atomically: {"bbox": ..., "segm": ..., "iteration": N, "weights": "..."}. */
static int write_eval_json(const char *path, const lvis_eval_result *box, const lvis_eval_result *segm, int64_t iter,
                           const char *weights, char *err, size_t errn) {
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%.1200s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return snprintf(err, errn, "%s: cannot write: %s", tmp, strerror(errno)), -1;
    fprintf(f, "{\"bbox\": ");
    json_metrics(f, box);
    if (segm) fprintf(f, ", \"segm\": "), json_metrics(f, segm);
    fprintf(f, ", \"iteration\": %lld, \"weights\": \"", (long long)iter);
    for (const char *p = weights; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', f);
        if ((unsigned char)*p >= 0x20) fputc(*p, f);
    }
    fprintf(f, "\"}\n");
    if (fclose(f) || rename(tmp, path)) return snprintf(err, errn, "%s: cannot write: %s", path, strerror(errno)), -1;
    return 0;
}

typedef struct eval_run {
    config cfg;
    lvis_data data, gt;
    int data_ok, gt_ok, rt_ok, det_ok, pg_ok;
    runtime rt;
    detector det;
    param_group pg;
    loader *ld;
    results_writer *wb, *ws;
} eval_run;

static void eval_free(eval_run *e) {
    if (e->wb) results_close(e->wb, NULL, 0);
    if (e->ws) results_close(e->ws, NULL, 0);
    if (e->ld) loader_free(e->ld);
    if (e->pg_ok) param_group_free(&e->pg);
    if (e->det_ok) detector_free(&e->det);
    if (e->rt_ok) runtime_free(&e->rt);
    if (e->gt_ok) lvis_free(&e->gt);
    if (e->data_ok) lvis_free(&e->data);
    config_free(&e->cfg);
}

/* Inference over the images into the two results files. */
static int infer_all(eval_run *e, int n_images, char *err, size_t errn) {
    detector *d = &e->det;
    int mask_on = d->roi.cfg.mask_on, M = MASK_TARGET_SIZE;
    detector_dets dets;
    detector_dets_alloc(&dets, d->cfg.max_dets, mask_on);
    uint8_t *bitmap = NULL, *colmaj = NULL;
    size_t bitmap_cap = 0;
    int32_t *rows = malloc((size_t)d->cfg.max_dets * sizeof *rows);
    CHECK(rows, "out of memory");
    double t0 = now_s(), last = t0;
    int64_t n_dets = 0;
    int rc = 0;
    int last_index = -1;
    for (int done = 0; done < n_images && rc == 0;) {
        const loader_batch *b = loader_next(e->ld, err, errn);
        if (!b) return detector_dets_free(&dets), free(bitmap), free(colmaj), free(rows), -1;
        /* the sequential sampler starts over after the last image: an image the loader left
         * out (unreadable, counted and named by it) shortens the pass */
        if (b->img[0].index <= last_index) break;
        last_index = b->img[0].index;
        detector_infer(&e->rt, d, b, &dets);
        const loader_image *im = &b->img[0];
        const lvis_image *li = &e->data.imgs[im->index];
        /* rows[i]: the detection's row before the rescale dropped empty boxes (its mask) */
        for (int i = 0; i < dets.n; i++) rows[i] = i;
        int n = detections_rescale(&e->rt, dets.boxes, dets.scores, dets.classes, rows, dets.n, im->h, im->w,
                                   im->orig_h, im->orig_w);
        size_t need = (size_t)im->orig_h * im->orig_w;
        if (mask_on && need > bitmap_cap) {
            free(bitmap), free(colmaj);
            bitmap = malloc(need), colmaj = malloc(need);
            CHECK(bitmap && colmaj, "out of memory for a %dx%d mask", im->orig_w, im->orig_h);
            bitmap_cap = need;
        }
        for (int i = 0; i < n && rc == 0; i++) {
            const float *bx = dets.boxes + 4 * i;
            float xywh[4] = {bx[0], bx[1], bx[2] - bx[0], bx[3] - bx[1]};
            int cat = (int)e->data.cats[dets.classes[i]].id;
            rc = results_add(e->wb, li->id, cat, xywh, dets.scores[i], NULL);
            if (rc || !mask_on) continue;
            int H = im->orig_h, W = im->orig_w;
            mask_paste(dets.masks + (size_t)rows[i] * M * M, M, bx, H, W, bitmap);
            for (int y = 0; y < H; y++) /* RLE is column-major */
                for (int x = 0; x < W; x++) colmaj[(size_t)x * H + y] = bitmap[(size_t)y * W + x];
            rle r = {0};
            if (rle_encode(&r, colmaj, H, W)) {
                rc = -1;
                snprintf(err, errn, "out of memory encoding a mask");
                break;
            }
            rc = results_add(e->ws, li->id, cat, NULL, dets.scores[i], &r);
            rle_free(&r);
        }
        n_dets += n;
        runtime_step_end(&e->rt);
        done++;
        double t = now_s();
        if (t - last > 5 || done == n_images) {
            double eta = (t - t0) / done * (n_images - done);
            printf("inference: %d/%d images, %.3f s/image, %lld detections, eta %02d:%02d:%02d\n", done, n_images,
                   (t - t0) / done, (long long)n_dets, (int)(eta / 3600), (int)fmod(eta / 60, 60), (int)fmod(eta, 60));
            fflush(stdout);
            last = t;
        }
    }
    if (rc && !err[0]) snprintf(err, errn, "%s", results_error(e->wb)[0] ? results_error(e->wb) : results_error(e->ws));
    detector_dets_free(&dets);
    free(bitmap), free(colmaj), free(rows);
    return rc;
}

int eval_main(int argc, char **argv) {
    const char *cfg_path = NULL, *weights = NULL, *out = NULL;
    char **ov = calloc((size_t)argc + 1, sizeof *ov), err[2048] = "";
    int n_ov = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return free(ov), usage(stdout), 0;
        if (!strcmp(a, "--weights") && i + 1 < argc) weights = argv[++i];
        else if (!strcmp(a, "--out") && i + 1 < argc) out = argv[++i];
        else if (a[0] == '-') return free(ov), fprintf(stderr, "error: unknown option '%s'\n", a), usage(stderr), 2;
        else if (strchr(a, '=')) ov[n_ov++] = argv[i];
        else if (!cfg_path) cfg_path = a;
        else return free(ov), fprintf(stderr, "error: unexpected argument '%s'\n", a), 2;
    }
    if (!cfg_path || !weights) return free(ov), usage(stderr), 2;
    eval_run e;
    memset(&e, 0, sizeof e);
    int rc = 1;
    if (config_load(&e.cfg, cfg_path, ov, n_ov, err, sizeof err)) {
        free(ov);
        fprintf(stderr, "error: %s\n", err);
        config_free(&e.cfg);
        return 1;
    }
    free(ov);
    char dir[1024], inf_dir[1100], p_box[1200], p_segm[1200], p_eval[1200];
    if (out) snprintf(dir, sizeof dir, "%s", out);
    else {
        snprintf(dir, sizeof dir, "%s", weights);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    snprintf(inf_dir, sizeof inf_dir, "%s/inference", dir);
    snprintf(p_box, sizeof p_box, "%s/lvis_results_bbox.json", inf_dir);
    snprintf(p_segm, sizeof p_segm, "%s/lvis_results_segm.json", inf_dir);
    snprintf(p_eval, sizeof p_eval, "%s/eval.json", dir);
    const char *json = config_string(&e.cfg, "data.val.json");
    if (!json[0]) {
        snprintf(err, sizeof err, "data.val.json is empty: give the LVIS validation file");
        goto fail;
    }
    if (strcmp(config_string(&e.cfg, "model.arch"), "mask_rcnn")) {
        snprintf(err, sizeof err, "model.arch %s: eval runs mask_rcnn today", config_string(&e.cfg, "model.arch"));
        goto fail;
    }
    lvis_options so = {.image_root = config_string(&e.cfg, "data.val.image_root"), .mode = LVIS_STRICT, .progress = 0};
    if (lvis_open(&e.data, json, &so, err, sizeof err)) goto fail;
    e.data_ok = 1;
    lvis_options go = {.mode = LVIS_OFFICIAL};
    if (lvis_open(&e.gt, json, &go, err, sizeof err)) goto fail;
    e.gt_ok = 1;
    runtime_config rc_cfg = runtime_config_default();
    rc_cfg.device = config_string(&e.cfg, "train.device");
    rc_cfg.threads = (int)config_int(&e.cfg, "train.threads");
    runtime_init(&e.rt, &rc_cfg);
    e.rt_ok = 1;
    detector_config dc;
    if (detector_config_from(&e.cfg, e.data.n_cat, &dc, err, sizeof err)) goto fail;
    detector_init(&e.det, &dc, NULL, DTYPE_F32, e.rt.device);
    e.det_ok = 1;
    sgd_config sg = {0};
    if (param_group_init(&e.pg, e.det.tensors, e.det.n_tensors, &sg, NULL, 0, NULL, 0, err, sizeof err)) goto fail;
    e.pg_ok = 1;
    char report[2048];
    if (checkpoint_load(weights, &e.pg, CHECKPOINT_WEIGHTS, NULL, report, sizeof report, err, sizeof err)) goto fail;
    printf("weights: %s\n", report);
    if (strstr(report, "; missing: ") || strstr(report, "; misshapen: ")) {
        snprintf(err, sizeof err, "%s: the checkpoint does not hold every tensor of the model (see the line above)", weights);
        goto fail;
    }
    int64_t iteration = -1;
    {
        safetensors st;
        if (safetensors_open(&st, weights, err, sizeof err) == 0) {
            const char *it = safetensors_meta(&st, "iteration");
            if (it) iteration = strtoll(it, NULL, 10);
            safetensors_close(&st);
        }
        err[0] = 0;
    }
    loader_config lc;
    if (test_loader_config(&e.cfg, &lc, err, sizeof err)) goto fail;
    lc.pinned = e.rt.device == DEVICE_CUDA;
    e.ld = loader_new(&e.data, &lc, err, sizeof err);
    if (!e.ld) goto fail;
    int n_images = e.data.n_img;
    int64_t subset = config_int(&e.cfg, "eval.subset");
    if (subset > 0 && subset < n_images) n_images = (int)subset;
    if (mkdir_p(dir) || mkdir_p(inf_dir)) {
        snprintf(err, sizeof err, "cannot create %s: %s", inf_dir, strerror(errno));
        goto fail;
    }
    if (!(e.wb = results_open(p_box, err, sizeof err))) goto fail;
    if (e.det.roi.cfg.mask_on && !(e.ws = results_open(p_segm, err, sizeof err))) goto fail;
    printf("evaluating %s on %s: %d images, %d classes, device %s\n", weights, json, n_images, e.data.n_cat,
           e.rt.device_desc);
    if (infer_all(&e, n_images, err, sizeof err)) goto fail;
    int64_t nb = results_count(e.wb), ns = e.ws ? results_count(e.ws) : 0;
    int rb = results_close(e.wb, err, sizeof err);
    e.wb = NULL;
    if (rb) goto fail;
    if (e.ws) {
        int rs = results_close(e.ws, err, sizeof err);
        e.ws = NULL;
        if (rs) goto fail;
    }
    if (nb == 0) {
        snprintf(err, sizeof err, "no detections at all on %d images: nothing to evaluate (lvis-api refuses an empty "
                                  "results file); is the model trained?", n_images);
        goto fail;
    }
    lvis_eval_result rbox, rseg;
    memset(&rseg, 0, sizeof rseg);
    if (lvis_eval_run(&e.gt, p_box, LVIS_IOU_BBOX, 0, &rbox, err, sizeof err)) goto fail;
    printf("Evaluation results for bbox (%%), %lld detections:\n", (long long)nb);
    lvis_print_table(&rbox, LVIS_AP, LVIS_AR);
    lvis_print_table(&rbox, LVIS_AR, LVIS_NUM_STATS);
    int have_segm = e.det.roi.cfg.mask_on && ns > 0;
    if (have_segm) {
        if (lvis_eval_run(&e.gt, p_segm, LVIS_IOU_SEGM, 0, &rseg, err, sizeof err)) {
            lvis_eval_result_free(&rbox);
            goto fail;
        }
        printf("Evaluation results for segm (%%):\n");
        lvis_print_table(&rseg, LVIS_AP, LVIS_AR);
        lvis_print_table(&rseg, LVIS_AR, LVIS_NUM_STATS);
    }
    int wr = write_eval_json(p_eval, &rbox, have_segm ? &rseg : NULL, iteration, weights, err, sizeof err);
    lvis_eval_result_free(&rbox);
    if (have_segm) lvis_eval_result_free(&rseg);
    if (wr) goto fail;
    printf("wrote %s\n", p_eval);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "error: %s\n", err);
    rc = 1;
done:
    eval_free(&e);
    return rc;
}

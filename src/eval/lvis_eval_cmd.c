/* lvis_eval_cmd.c: `maskrcnn lvis-eval` (see lvis_eval_cmd.h): reads the ground truth in
 * official mode, evaluates, prints detectron2's tables (percentages, 3 decimals) and, with
 * --json, one JSON object as the last line of stdout (fractions that round-trip). */
#include "eval/lvis_eval_cmd.h"

#include "eval/lvis_eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: maskrcnn lvis-eval --gt GT.json --results RESULTS.json --type bbox|segm [--json]\n"
            "                          [--per-category FILE.csv] [--threads N] [--no-cache]\n"
            "  The official LVIS v1 evaluation (lvis-api's numbers): AP, AP50, AP75, APs/m/l, APr/c/f and\n"
            "  AR@300 (s/m/l), at most 300 detections per image (the highest scores, ties in file order).\n"
            "  RESULTS is a JSON array of {image_id, category_id, score, bbox: [x, y, w, h]} or\n"
            "  {..., segmentation: {size: [h, w], counts: RLE}}; when the first result has a 'bbox' the\n"
            "  detection areas are box areas, otherwise mask areas (write masks without 'bbox').\n"
            "  --json              end stdout with one line: a JSON object of the numbers as fractions\n"
            "                      (-1 where there is no value)\n"
            "  --per-category F    write category_id,name,frequency,AP (AP over area all; -1: no GT) as CSV\n"
            "  --threads N         threads for reading and evaluating (default: the CPUs, at most 8);\n"
            "                      the numbers do not depend on it\n"
            "  --no-cache          neither use nor write the binary cache of a big ground-truth file\n");
}

/* The shortest %.Ng (15..17 digits) that reads back as v. */
void lvis_fmt_double(char *buf, size_t n, double v) {
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* A table row of columns: header line, separator and values as percentages ("-": none). */
void lvis_print_table(const lvis_eval_result *r, int from, int to) {
    char cell[32];
    for (int i = from; i < to; i++) printf("| %-8s", lvis_stat_names[i]);
    printf("|\n");
    for (int i = from; i < to; i++) printf("|:--------");
    printf("|\n");
    for (int i = from; i < to; i++) {
        if (r->stats[i] > -1) snprintf(cell, sizeof cell, "%.3f", 100 * r->stats[i]);
        else snprintf(cell, sizeof cell, "-");
        printf("| %-8s", cell);
    }
    printf("|\n");
}

static void print_json(const lvis_eval_result *r, const lvis_data *gt) {
    char v[40];
    printf("{\"iou_type\":\"%s\"", r->type == LVIS_IOU_SEGM ? "segm" : "bbox");
    for (int i = 0; i < LVIS_NUM_STATS; i++) {
        lvis_fmt_double(v, sizeof v, r->stats[i]);
        printf(",\"%s\":%s", lvis_stat_names[i], v);
    }
    printf(",\"max_dets\":%d,\"num_images\":%d,\"num_categories\":%d,\"num_results\":%lld,"
           "\"num_results_loaded_after_max_dets\":%lld,\"num_detections_evaluated\":%lld,\"num_gt_evaluated\":%lld,"
           "\"det_area_from_box\":%s}\n",
           LVIS_EVAL_MAX_DETS, gt->n_img, gt->n_cat, (long long)r->n_records, (long long)r->n_loaded,
           (long long)r->n_dets, (long long)r->n_gt, r->det_area_from_box ? "true" : "false");
}

static int write_csv(const char *path, const lvis_eval_result *r, const lvis_data *gt) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "category_id,name,frequency,AP\n");
    for (int k = 0; k < gt->n_cat; k++) {
        const char *name = lvis_string(gt, gt->cats[k].name);
        char v[40];
        lvis_fmt_double(v, sizeof v, r->cat_ap[k]);
        fprintf(f, "%lld,", (long long)gt->cats[k].id);
        if (strpbrk(name, ",\"\n\r")) { /* RFC 4180 quoting */
            fputc('"', f);
            for (const char *p = name; *p; p++) {
                if (*p == '"') fputc('"', f);
                fputc(*p, f);
            }
            fputc('"', f);
        } else {
            fputs(name, f);
        }
        fprintf(f, ",%c,%s\n", "rcf"[gt->cats[k].freq], v);
    }
    return fclose(f) ? -1 : 0;
}

typedef struct eval_args {
    const char *gt, *results, *csv;
    lvis_iou_type type;
    int json, threads, no_cache;
} eval_args;

/* 0, 1 for --help, 2 after a usage message. */
static int parse_args(int argc, char **argv, eval_args *a) {
    int have_type = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) return usage(stdout), 1;
        if (!strcmp(s, "--json")) a->json = 1;
        else if (!strcmp(s, "--no-cache")) a->no_cache = 1;
        else if (!strcmp(s, "--gt") && has_value) a->gt = argv[++i];
        else if (!strcmp(s, "--results") && has_value) a->results = argv[++i];
        else if (!strcmp(s, "--per-category") && has_value) a->csv = argv[++i];
        else if (!strcmp(s, "--type") && has_value) {
            const char *t = argv[++i];
            if (!strcmp(t, "bbox")) a->type = LVIS_IOU_BBOX;
            else if (!strcmp(t, "segm")) a->type = LVIS_IOU_SEGM;
            else return fprintf(stderr, "error: --type wants bbox or segm, got '%s'\n", t), 2;
            have_type = 1;
        } else if (!strcmp(s, "--threads") && has_value) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 64)
                return fprintf(stderr, "error: --threads wants a whole number in [1, 64], got '%s'\n", argv[i]), 2;
            a->threads = (int)n;
        } else {
            fprintf(stderr, "error: unexpected argument '%s'\n", s);
            usage(stderr);
            return 2;
        }
    }
    if (!a->gt || !a->results || !have_type) {
        fprintf(stderr, "error: --gt, --results and --type are required\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

int lvis_eval_main(int argc, char **argv) {
    eval_args a = {0};
    int r = parse_args(argc, argv, &a);
    if (r) return r == 1 ? 0 : 2;
    lvis_data gt;
    lvis_eval_result res;
    char err[1024];
    lvis_options opt = {.mode = LVIS_OFFICIAL, .cache = a.no_cache ? LVIS_CACHE_OFF : LVIS_CACHE_AUTO,
                        .progress = 1, .threads = a.threads};
    if (lvis_open(&gt, a.gt, &opt, err, sizeof err)) return fprintf(stderr, "error: %s\n", err), 1;
    struct stat st;
    if (stat(a.results, &st) == 0 && st.st_size >= (64 << 20)) /* a big file: say what is going on */
        fprintf(stderr, "  evaluating %s (%.0f MB) ...\n", a.results, (double)st.st_size / 1e6);
    if (lvis_eval_run(&gt, a.results, a.type, a.threads, &res, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        lvis_free(&gt);
        return 1;
    }
    const char *type = a.type == LVIS_IOU_SEGM ? "segm" : "bbox";
    printf("LVIS evaluation (%s), at most %d detections per image\n", type, LVIS_EVAL_MAX_DETS);
    printf("  ground truth  %s: %d images, %d categories, %lld objects (%lld with 0 < area < inf)\n", a.gt, gt.n_img,
           gt.n_cat, (long long)gt.n_ann, (long long)res.n_gt);
    printf("  results       %s: %lld records, %lld after the per-image cap, %lld evaluated (GT category, "
           "federated, area > 0); detection areas from %s\n",
           a.results, (long long)res.n_records, (long long)res.n_loaded, (long long)res.n_dets,
           res.det_area_from_box ? "the boxes" : "the masks");
    printf("  time          %.2f s reading, %.2f s evaluating\n", res.t_load, res.t_eval);
    printf("Evaluation results for %s (%%):\n", type);
    lvis_print_table(&res, LVIS_AP, LVIS_AR);
    lvis_print_table(&res, LVIS_AR, LVIS_NUM_STATS);
    int rc = 0;
    if (a.csv && write_csv(a.csv, &res, &gt)) {
        fprintf(stderr, "error: %s: cannot write the per-category CSV\n", a.csv);
        rc = 1;
    } else if (a.csv) {
        printf("  per-category AP written to %s\n", a.csv);
    }
    if (a.json) print_json(&res, &gt);
    lvis_eval_result_free(&res);
    lvis_free(&gt);
    return rc;
}

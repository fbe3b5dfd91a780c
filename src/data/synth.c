/* synth.c: the built-in long-tail demo data set (see synth.h): the class table, the plan
 * (which classes each image holds), and the renderer (one image's geometry and pixels).
 *
 * Randomness: the project RNG only (core/rng.h), stream SYNTH_STREAM. Sub-stream
 * PLAN_SUBSTREAM + split plans a split; IMAGE_SUBSTREAM | split << 30 | index renders one
 * image, so an image's draws never depend on another image. Per-pixel noise words come
 * from the image's stream at offset NOISE_OFFSET, away from the geometry draws, so adding a
 * geometry draw never shifts the texture and the other way round. */
#include "data/synth.h"

#include "core/philox.h"
#include "core/rng.h"
#include "core/util.h"
#include "eval/rle.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* This module's RNG stream (rng.h), with sub-streams for the plan and each image. */
#define SYNTH_STREAM RNG_STREAM_SYNTH
#define PLAN_SUBSTREAM UINT64_C(0)
#define IMAGE_SUBSTREAM (UINT64_C(1) << 31)
#define NOISE_OFFSET (UINT64_C(1) << 40)

/* ---- the class table ---------------------------------------------------------------------- */

enum {
    SH_CIRCLE, SH_ELLIPSE, SH_SQUARE, SH_RECTANGLE, SH_TRIANGLE, SH_DIAMOND, SH_PENTAGON, SH_HEXAGON, SH_OCTAGON,
    SH_STAR5, SH_STAR6, SH_CROSS, SH_SALTIRE, SH_RING, SH_DOMINO, SH_CRESCENT, SH_ARROW, SH_LSHAPE,
    /* distractor shapes, never a class */
    SH_BAR, SH_TRAPEZOID, SH_SEMICIRCLE, SH_COUNT
};
static const char *const shape_names[SH_COUNT] = {
    "circle", "ellipse", "square", "rectangle", "triangle", "diamond", "pentagon", "hexagon", "octagon", "star",
    "six-point star", "cross", "saltire", "ring", "domino", "crescent", "arrow", "L-shape", "bar", "trapezoid",
    "semicircle"};

/* Shapes whose identity depends on orientation (a square turned 45 degrees is a diamond, a
 * cross turned 45 degrees a saltire) turn at most MAX_TURN_SMALL; the others turn freely. */
#define MAX_TURN_SMALL (15.0 * M_PI / 180.0)
static int shape_turns_freely(int s) {
    return !(s == SH_SQUARE || s == SH_DIAMOND || s == SH_CROSS || s == SH_SALTIRE);
}

typedef struct colour {
    const char *name;
    uint8_t rgb[3];
} colour;
enum { C_RED, C_SCARLET, C_BLUE, C_NAVY, C_GREEN, C_LIME, C_YELLOW, C_PURPLE, C_ORANGE, C_AMBER, C_TEAL, C_PINK,
       C_MAGENTA, C_BROWN, C_COUNT };
/* Twins differ from their frequent class by 45-90 in one or two channels: well above the
 * per-instance jitter (COLOUR_JITTER) and pixel noise, well below the gaps between the
 * base colours. */
static const colour colours[C_COUNT] = {
    {"red", {210, 40, 40}},     {"scarlet", {240, 95, 35}}, {"blue", {40, 80, 210}},   {"navy", {35, 40, 140}},
    {"green", {45, 160, 60}},   {"lime", {135, 205, 40}},   {"yellow", {235, 210, 40}}, {"purple", {130, 55, 180}},
    {"orange", {240, 140, 30}}, {"amber", {245, 185, 60}},  {"teal", {30, 150, 150}},  {"pink", {240, 125, 185}},
    {"magenta", {195, 35, 155}}, {"brown", {130, 80, 40}},
};

typedef struct class_def {
    int shape, colour;
    char group;
    int twin;          /* rare: the frequent twin's id */
    int twin_by_shape; /* 1: close shape, same colour; 0: same shape, close colour */
    int train_target;  /* train images to hold the class (frequent: a floor, more come from the fill) */
    int val_target;    /* val images (frequent: a floor) */
    double weight;     /* frequent: share of the free slots */
} class_def;

/* Train targets: rare 1..10 images, common 12..95 (LVIS's r: 1-10, c: 11-100); a frequent
 * class gets FREQ_FLOOR images first and then a share of every slot left. Val holds every
 * class in 16+ images so that AP is measurable per class (APr included). */
#define FREQ_FLOOR_TRAIN 105
#define FREQ_FLOOR_VAL 20
static const class_def class_defs[SYNTH_NUM_CLASSES] = {
    /* frequent */
    {SH_CIRCLE, C_RED, 'f', 0, 0, FREQ_FLOOR_TRAIN, FREQ_FLOOR_VAL, 1.00},
    {SH_SQUARE, C_BLUE, 'f', 0, 0, FREQ_FLOOR_TRAIN, FREQ_FLOOR_VAL, 0.90},
    {SH_TRIANGLE, C_GREEN, 'f', 0, 0, FREQ_FLOOR_TRAIN, FREQ_FLOOR_VAL, 0.80},
    {SH_STAR5, C_YELLOW, 'f', 0, 0, FREQ_FLOOR_TRAIN, FREQ_FLOOR_VAL, 0.75},
    {SH_HEXAGON, C_PURPLE, 'f', 0, 0, FREQ_FLOOR_TRAIN, FREQ_FLOOR_VAL, 0.70},
    {SH_RING, C_ORANGE, 'f', 0, 0, FREQ_FLOOR_TRAIN, FREQ_FLOOR_VAL, 0.60},
    {SH_CROSS, C_TEAL, 'f', 0, 0, FREQ_FLOOR_TRAIN, FREQ_FLOOR_VAL, 0.55},
    {SH_DIAMOND, C_PINK, 'f', 0, 0, FREQ_FLOOR_TRAIN, FREQ_FLOOR_VAL, 0.50},
    /* common */
    {SH_CIRCLE, C_BLUE, 'c', 0, 0, 95, 30, 0},
    {SH_SQUARE, C_RED, 'c', 0, 0, 80, 28, 0},
    {SH_RING, C_GREEN, 'c', 0, 0, 68, 26, 0},
    {SH_TRIANGLE, C_YELLOW, 'c', 0, 0, 57, 25, 0},
    {SH_CROSS, C_PURPLE, 'c', 0, 0, 47, 24, 0},
    {SH_PENTAGON, C_ORANGE, 'c', 0, 0, 38, 22, 0},
    {SH_DOMINO, C_TEAL, 'c', 0, 0, 30, 21, 0},
    {SH_ELLIPSE, C_BROWN, 'c', 0, 0, 24, 20, 0},
    {SH_CRESCENT, C_PINK, 'c', 0, 0, 19, 19, 0},
    {SH_ARROW, C_RED, 'c', 0, 0, 16, 18, 0},
    {SH_LSHAPE, C_YELLOW, 'c', 0, 0, 14, 18, 0},
    {SH_ARROW, C_BROWN, 'c', 0, 0, 12, 18, 0},
    /* rare: near twins of the frequent classes */
    {SH_CIRCLE, C_SCARLET, 'r', 1, 0, 10, 20, 0},
    {SH_OCTAGON, C_RED, 'r', 1, 1, 9, 19, 0},
    {SH_SQUARE, C_NAVY, 'r', 2, 0, 8, 19, 0},
    {SH_RECTANGLE, C_BLUE, 'r', 2, 1, 7, 18, 0},
    {SH_TRIANGLE, C_LIME, 'r', 3, 0, 6, 18, 0},
    {SH_STAR6, C_YELLOW, 'r', 4, 1, 5, 17, 0},
    {SH_OCTAGON, C_PURPLE, 'r', 5, 1, 4, 17, 0},
    {SH_RING, C_AMBER, 'r', 6, 0, 3, 16, 0},
    {SH_SALTIRE, C_TEAL, 'r', 7, 1, 2, 16, 0},
    {SH_DIAMOND, C_MAGENTA, 'r', 8, 0, 1, 16, 0},
};

static synth_class class_table[SYNTH_NUM_CLASSES];
static char class_names[SYNTH_NUM_CLASSES][48];

/* The public table, filled once from class_defs (names are colour_shape, LVIS style). */
static void class_table_fill(void) {
    for (int i = 0; i < SYNTH_NUM_CLASSES; i++) {
        const class_def *d = &class_defs[i];
        synth_class *k = &class_table[i];
        const char *sh = d->shape == SH_STAR5 ? "star" : d->shape == SH_STAR6 ? "star6"
                         : d->shape == SH_LSHAPE ? "l_shape" : shape_names[d->shape];
        snprintf(class_names[i], sizeof class_names[i], "%s_%s", colours[d->colour].name, sh);
        k->id = i + 1;
        k->name = class_names[i];
        k->shape = shape_names[d->shape];
        k->colour = colours[d->colour].name;
        memcpy(k->rgb, colours[d->colour].rgb, 3);
        k->group = d->group;
        k->twin = d->twin;
        k->twin_kind = d->twin ? (d->twin_by_shape ? "shape" : "colour") : "";
    }
}

static void class_table_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, class_table_fill);
}

const synth_class *synth_class_get(int id) {
    if (id < 1 || id > SYNTH_NUM_CLASSES) return NULL;
    class_table_init();
    return &class_table[id - 1];
}

void synth_config_default(synth_config *c) {
    c->seed = 1;
    c->n_train = 1500;
    c->n_val = 400;
}

char synth_frequency(int64_t image_count) { return image_count <= 10 ? 'r' : image_count <= 100 ? 'c' : 'f'; }

/* ---- the plan ----------------------------------------------------------------------------- */

#define MAX_INST 6    /* class instances drawn per image */
#define NE_RATE 0.03  /* images that get a not-exhaustive class */
#define SECOND_INSTANCE 0.2 /* a targeted class takes a second slot of the image */

typedef struct plan_image {
    int budget, used;
    synth_inst inst[MAX_INST];
} plan_image;

static int plan_has(const plan_image *im, int cls) {
    for (int k = 0; k < im->used; k++)
        if (im->inst[k].cls == cls) return 1;
    return 0;
}

static void plan_add(plan_image *im, int cls, int annotated) {
    im->inst[im->used].cls = (int16_t)cls;
    im->inst[im->used].annotated = (int16_t)annotated;
    im->used++;
}

/* Objects per image: 1..6, mean about 3.3. */
static int draw_budget(rng *r) {
    static const int cum[MAX_INST] = {14, 34, 56, 74, 88, 100};
    int u = (int)rng_below(r, 100);
    int k = 0;
    while (u >= cum[k]) k++;
    return k + 1;
}

/* Class cls goes into `target` distinct images drawn uniformly from those with a free slot
 * that do not hold it yet (all of them when fewer are eligible). */
static void plan_target(plan_image *ims, int n, int cls, int target, int *scratch, rng *r) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (ims[i].used < ims[i].budget && !plan_has(&ims[i], cls)) scratch[m++] = i;
    int take = target < m ? target : m;
    for (int k = 0; k < take; k++) { /* partial Fisher-Yates */
        int j = k + (int)rng_below(r, (uint32_t)(m - k));
        int t = scratch[k];
        scratch[k] = scratch[j], scratch[j] = t;
        plan_image *im = &ims[scratch[k]];
        plan_add(im, cls, 1);
        if (class_defs[cls - 1].group != 'f' && im->used < im->budget && rng_uniform(r) < SECOND_INSTANCE)
            plan_add(im, cls, 1);
    }
}

/* A frequent class drawn by weight. */
static int draw_frequent(rng *r) {
    double total = 0;
    for (int c = 0; c < SYNTH_NUM_CLASSES; c++) total += class_defs[c].weight;
    double u = rng_uniform(r) * total;
    int last = 0;
    for (int c = 0; c < SYNTH_NUM_CLASSES; c++) {
        if (class_defs[c].weight <= 0) continue;
        last = c;
        if (u < class_defs[c].weight) return c + 1;
        u -= class_defs[c].weight;
    }
    return last + 1;
}

/* A few images get one more, unannotated instance of a non-rare class they hold: the image
 * lists that class as not exhaustive. */
static void plan_not_exhaustive(plan_image *im, rng *r) {
    if (!(rng_uniform(r) < NE_RATE) || im->used >= MAX_INST) return;
    int cand[MAX_INST], m = 0;
    for (int k = 0; k < im->used; k++) {
        int c = im->inst[k].cls;
        if (class_defs[c - 1].group == 'r') continue;
        int dup = 0;
        for (int j = 0; j < m; j++) dup |= cand[j] == c;
        if (!dup) cand[m++] = c;
    }
    if (m) plan_add(im, cand[rng_below(r, (uint32_t)m)], 0);
}

static int plan_split(synth_split_plan *sp, uint64_t seed, int split, int n, char *err, size_t errn) {
    memset(sp, 0, sizeof *sp);
    plan_image *ims = calloc((size_t)n, sizeof *ims);
    int *scratch = malloc((size_t)n * sizeof *scratch);
    if (!ims || !scratch) {
        free(ims), free(scratch);
        return mrc_fail(err, errn, "out of memory planning %d images", n);
    }
    rng r = rng_make(seed, SYNTH_STREAM | (PLAN_SUBSTREAM + (uint64_t)split));
    for (int i = 0; i < n; i++) ims[i].budget = draw_budget(&r);
    /* Targets, smallest first, so the rare classes always find room. */
    int order[SYNTH_NUM_CLASSES];
    for (int c = 0; c < SYNTH_NUM_CLASSES; c++) order[c] = c;
    for (int a = 1; a < SYNTH_NUM_CLASSES; a++)
        for (int b = a; b > 0; b--) {
            const class_def *x = &class_defs[order[b - 1]], *y = &class_defs[order[b]];
            int tx = split == SYNTH_TRAIN ? x->train_target : x->val_target;
            int ty = split == SYNTH_TRAIN ? y->train_target : y->val_target;
            if (tx < ty || (tx == ty && order[b - 1] < order[b])) break;
            int t = order[b];
            order[b] = order[b - 1], order[b - 1] = t;
        }
    for (int k = 0; k < SYNTH_NUM_CLASSES; k++) {
        int c = order[k];
        plan_target(ims, n, c + 1, split == SYNTH_TRAIN ? class_defs[c].train_target : class_defs[c].val_target,
                    scratch, &r);
    }
    for (int i = 0; i < n; i++)
        while (ims[i].used < ims[i].budget) plan_add(&ims[i], draw_frequent(&r), 1);
    for (int i = 0; i < n; i++) plan_not_exhaustive(&ims[i], &r);
    free(scratch);

    int64_t total = 0;
    for (int i = 0; i < n; i++) total += ims[i].used;
    sp->n = n;
    sp->first = malloc(((size_t)n + 1) * sizeof *sp->first);
    sp->inst = malloc((size_t)total * sizeof *sp->inst);
    if (!sp->first || !sp->inst) {
        free(ims);
        return mrc_fail(err, errn, "out of memory planning %d images", n);
    }
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        sp->first[i] = at;
        int seen[SYNTH_NUM_CLASSES + 1] = {0};
        for (int k = 0; k < ims[i].used; k++) {
            synth_inst s = ims[i].inst[k];
            sp->inst[at++] = s;
            if (!s.annotated) {
                sp->n_unannotated++;
                sp->n_not_exhaustive_images++;
                continue;
            }
            sp->n_annotated++;
            sp->instance_count[s.cls]++;
            if (!seen[s.cls]++) sp->image_count[s.cls]++;
        }
    }
    sp->first[n] = at;
    free(ims);
    return 0;
}

void synth_plan_free(synth_plan *p) {
    for (int s = 0; s < 2; s++) {
        free(p->split[s].first);
        free(p->split[s].inst);
    }
    memset(p, 0, sizeof *p);
}

int synth_plan_make(synth_plan *p, const synth_config *c, char *err, size_t errn) {
    memset(p, 0, sizeof *p);
    class_table_init();
    if (c->n_train < 1 || c->n_val < 1 || c->n_train > SYNTH_VAL_ID_BASE - 1 || c->n_val > SYNTH_VAL_ID_BASE - 1)
        return mrc_fail(err, errn, "image counts must be in [1, %d], got train %d, val %d", SYNTH_VAL_ID_BASE - 1,
                        c->n_train, c->n_val);
    p->cfg = *c;
    if (plan_split(&p->split[SYNTH_TRAIN], c->seed, SYNTH_TRAIN, c->n_train, err, errn) ||
        plan_split(&p->split[SYNTH_VAL], c->seed, SYNTH_VAL, c->n_val, err, errn)) {
        synth_plan_free(p);
        return -1;
    }
    return 0;
}

/* ---- shapes -------------------------------------------------------------------------------- */

/* An outline in unit coordinates (extent about 1), before the object's size, turn and place. */
typedef struct outline {
    int n_parts;
    int n[SYNTH_MAX_PARTS];
    double p[SYNTH_MAX_PARTS][2 * SYNTH_MAX_POINTS];
} outline;

static void put(outline *o, int part, double x, double y) {
    int k = o->n[part]++;
    o->p[part][2 * k] = x;
    o->p[part][2 * k + 1] = y;
}

/* Points on the ellipse (cx + rx cos a, cy + ry sin a) for a from a0 to a1, `n` points. */
static void arc(outline *o, int part, double cx, double cy, double rx, double ry, double a0, double a1, int n) {
    for (int k = 0; k < n; k++) {
        double a = a0 + (a1 - a0) * k / (n - 1);
        put(o, part, cx + rx * cos(a), cy + ry * sin(a));
    }
}

static void regular(outline *o, int sides, double r_out, double r_in, double start) {
    int n = r_in > 0 ? 2 * sides : sides;
    for (int k = 0; k < n; k++) {
        double a = start + 2 * M_PI * k / n, r = (r_in > 0 && (k & 1)) ? r_in : r_out;
        put(o, 0, r * cos(a), r * sin(a));
    }
}

static void poly(outline *o, int part, const double *xy, int n) {
    for (int k = 0; k < n; k++) put(o, part, xy[2 * k], xy[2 * k + 1]);
}

static void make_outline(int shape, outline *o) {
    memset(o, 0, sizeof *o);
    o->n_parts = 1;
    static const double square[] = {-0.8, -0.8, 0.8, -0.8, 0.8, 0.8, -0.8, 0.8};
    static const double rect[] = {-1, -0.5, 1, -0.5, 1, 0.5, -1, 0.5};
    static const double diamond[] = {0, -1, 0.68, 0, 0, 1, -0.68, 0};
    static const double arrow[] = {-1, -0.22, 0.2, -0.22, 0.2, -0.6, 1, 0, 0.2, 0.6, 0.2, 0.22, -1, 0.22};
    static const double lshape[] = {-0.7, -1, -0.15, -1, -0.15, 0.45, 0.7, 0.45, 0.7, 1, -0.7, 1};
    static const double bar[] = {-1, -0.12, 1, -0.12, 1, 0.12, -1, 0.12};
    static const double trapezoid[] = {-1, 0.45, 1, 0.45, 0.5, -0.45, -0.5, -0.45};
    static const double domino[2][8] = {{-1, -0.42, -0.12, -0.42, -0.12, 0.42, -1, 0.42},
                                        {0.12, -0.42, 1, -0.42, 1, 0.42, 0.12, 0.42}};
    const double a = 0.3; /* cross arm half-width */
    const double cross[] = {-a, -1, a, -1, a, -a, 1, -a, 1, a, a, a, a, 1, -a, 1, -a, a, -1, a, -1, -a, -a, -a};
    switch (shape) {
    case SH_CIRCLE: arc(o, 0, 0, 0, 1, 1, 0, 2 * M_PI * 39 / 40, 40); break;
    case SH_ELLIPSE: arc(o, 0, 0, 0, 1, 0.55, 0, 2 * M_PI * 39 / 40, 40); break;
    case SH_SQUARE: poly(o, 0, square, 4); break;
    case SH_RECTANGLE: poly(o, 0, rect, 4); break;
    case SH_TRIANGLE: regular(o, 3, 1, 0, -M_PI / 2); break;
    case SH_DIAMOND: poly(o, 0, diamond, 4); break;
    case SH_PENTAGON: regular(o, 5, 1, 0, -M_PI / 2); break;
    case SH_HEXAGON: regular(o, 6, 1, 0, 0); break;
    case SH_OCTAGON: regular(o, 8, 1, 0, M_PI / 8); break;
    case SH_STAR5: regular(o, 5, 1, 0.45, -M_PI / 2); break;
    case SH_STAR6: regular(o, 6, 1, 0.55, -M_PI / 2); break;
    case SH_CROSS: poly(o, 0, cross, 12); break;
    case SH_SALTIRE:
        for (int k = 0; k < 12; k++) /* the cross turned 45 degrees, scaled to the same extent */
            put(o, 0, (cross[2 * k] - cross[2 * k + 1]) * 0.75, (cross[2 * k] + cross[2 * k + 1]) * 0.75);
        break;
    case SH_RING: /* two C-shaped half annuli: COCO unions parts, it has no holes */
        o->n_parts = 2;
        for (int h = 0; h < 2; h++) {
            arc(o, h, 0, 0, 1, 1, h * M_PI, (h + 1) * M_PI, 25);
            arc(o, h, 0, 0, 0.6, 0.6, (h + 1) * M_PI, h * M_PI, 25);
        }
        break;
    case SH_DOMINO: /* two separate parts of one object */
        o->n_parts = 2;
        poly(o, 0, domino[0], 4);
        poly(o, 1, domino[1], 4);
        break;
    case SH_CRESCENT: { /* the unit disc less a disc of radius 0.85 centred at (0.5, 0) */
        double xi = (1 + 0.25 - 0.85 * 0.85) / 1.0, yi = sqrt(1 - xi * xi);
        double ta = atan2(yi, xi), tb = atan2(yi, xi - 0.5);
        arc(o, 0, 0, 0, 1, 1, ta, 2 * M_PI - ta, 28);
        arc(o, 0, 0.5, 0, 0.85, 0.85, 2 * M_PI - tb, tb, 28);
        break;
    }
    case SH_ARROW: poly(o, 0, arrow, 7); break;
    case SH_LSHAPE: poly(o, 0, lshape, 6); break;
    case SH_BAR: poly(o, 0, bar, 4); break;
    case SH_TRAPEZOID: poly(o, 0, trapezoid, 4); break;
    case SH_SEMICIRCLE: arc(o, 0, 0, 0.4, 1, 1, M_PI, 2 * M_PI, 24); break;
    default: break;
    }
}

/* ---- geometry of one object: place, round, rasterise ------------------------------------- */

static double round2(double v) { return round(v * 100.0) / 100.0; }

/* The outline scaled by `radius` (x stretched by sqrt(aspect), y shrunk by it), turned by
 * `turn`, moved to (cx, cy) and rounded to 2 decimals, into ob's parts. */
static void pose(synth_object *ob, const outline *o, double radius, double aspect, double turn, double cx, double cy) {
    double sx = radius * sqrt(aspect), sy = radius / sqrt(aspect), c = cos(turn), s = sin(turn);
    ob->n_parts = o->n_parts;
    for (int q = 0; q < o->n_parts; q++) {
        ob->n_points[q] = o->n[q];
        for (int k = 0; k < o->n[q]; k++) {
            double x = o->p[q][2 * k] * sx, y = o->p[q][2 * k + 1] * sy;
            ob->xy[q][2 * k] = round2(cx + c * x - s * y);
            ob->xy[q][2 * k + 1] = round2(cy + s * x + c * y);
        }
    }
}

/* Bounding box and shoelace area of ob's parts (area rounded to 2 decimals, as written). */
static void measure(synth_object *ob) {
    double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY, area = 0;
    for (int q = 0; q < ob->n_parts; q++) {
        const double *p = ob->xy[q];
        int n = ob->n_points[q];
        double a = 0;
        for (int k = 0; k < n; k++) {
            int j = (k + 1) % n;
            a += p[2 * k] * p[2 * j + 1] - p[2 * j] * p[2 * k + 1];
            x0 = fmin(x0, p[2 * k]), x1 = fmax(x1, p[2 * k]);
            y0 = fmin(y0, p[2 * k + 1]), y1 = fmax(y1, p[2 * k + 1]);
        }
        area += fabs(a) / 2;
    }
    ob->bbox[0] = x0, ob->bbox[1] = y0, ob->bbox[2] = round2(x1 - x0), ob->bbox[3] = round2(y1 - y0);
    ob->area = round2(area);
}

/* The pixels of ob into mask (w x h, row-major, all 0 on entry): a pixel is in when its
 * centre (x + 0.5, y + 0.5) is inside a part by the even-odd rule (a centre exactly on a
 * left edge is in, on a right edge out); parts are unioned. Scan lines: each row's edge
 * crossings, sorted, bound the runs of inside centres. Returns the pixel count. */
static int rasterise(const synth_object *ob, uint8_t *mask, int w, int h) {
    int count = 0;
    int y0 = (int)floor(ob->bbox[1]), y1 = (int)ceil(ob->bbox[1] + ob->bbox[3]);
    if (y0 < 0) y0 = 0;
    if (y1 > h - 1) y1 = h - 1;
    for (int y = y0; y <= y1; y++) {
        double yc = y + 0.5;
        for (int q = 0; q < ob->n_parts; q++) {
            const double *p = ob->xy[q];
            int n = ob->n_points[q], m = 0;
            double xs[SYNTH_MAX_POINTS];
            for (int k = 0; k < n; k++) {
                int j = (k + 1) % n;
                double xa = p[2 * k], ya = p[2 * k + 1], xb = p[2 * j], yb = p[2 * j + 1];
                if ((ya > yc) == (yb > yc)) continue;
                double x = xa + (yc - ya) * (xb - xa) / (yb - ya);
                int at = m++; /* insertion sort: a handful of crossings per row */
                while (at > 0 && xs[at - 1] > x) xs[at] = xs[at - 1], at--;
                xs[at] = x;
            }
            for (int k = 0; k + 1 < m; k += 2) {
                int xa = (int)ceil(xs[k] - 0.5), xb = (int)ceil(xs[k + 1] - 0.5); /* centres in [xs[k], xs[k+1]) */
                if (xa < 0) xa = 0;
                if (xb > w) xb = w;
                uint8_t *row = mask + (size_t)y * w;
                for (int x = xa; x < xb; x++) count += !row[x], row[x] = 1;
            }
        }
    }
    return count;
}

/* The pixel rows and columns ob's outline can touch, clipped to the image. */
static void pixel_box(const synth_object *ob, int w, int h, int *x0, int *x1, int *y0, int *y1) {
    *x0 = (int)floor(ob->bbox[0]), *x1 = (int)ceil(ob->bbox[0] + ob->bbox[2]);
    *y0 = (int)floor(ob->bbox[1]), *y1 = (int)ceil(ob->bbox[1] + ob->bbox[3]);
    *x0 = *x0 < 0 ? 0 : *x0, *y0 = *y0 < 0 ? 0 : *y0;
    *x1 = *x1 > w - 1 ? w - 1 : *x1, *y1 = *y1 > h - 1 ? h - 1 : *y1;
}

static void clear_mask(const synth_object *ob, uint8_t *mask, int w, int h) {
    int x0, x1, y0, y1;
    pixel_box(ob, w, h, &x0, &x1, &y0, &y1);
    if (y1 >= y0) memset(mask + (size_t)y0 * w, 0, (size_t)(y1 - y0 + 1) * w);
}

/* IoU of ob's mask (rows of width w) with COCO's rasterisation of its polygons (rle.h),
 * counted over ob's pixel box. The rasteriser works on a 1/5-pixel grid and decides the
 * pixels whose centre lies within 0.2 px of the outline its own way, which on a small
 * object with a long edge near 0 or 45 degrees can flip a whole edge's worth of pixels;
 * such poses are drawn again (see place). The polygons are rasterised in the full image
 * frame, as an evaluator does: the rasteriser's rounding of x * 5 + 0.5 would differ for
 * shifted coordinates. coco: room for w * h bytes. -1 when out of memory. */
static double coco_agreement(const synth_object *ob, const uint8_t *mask, int w, int h, uint8_t *coco) {
    double xy[2 * SYNTH_MAX_PARTS * SYNTH_MAX_POINTS];
    int64_t off[SYNTH_MAX_PARTS], cnt[SYNTH_MAX_PARTS], at = 0;
    for (int q = 0; q < ob->n_parts; q++) {
        off[q] = at, cnt[q] = 2 * ob->n_points[q];
        memcpy(xy + at, ob->xy[q], (size_t)cnt[q] * sizeof *xy);
        at += cnt[q];
    }
    rle r;
    if (rle_from_polygons(&r, xy, off, cnt, ob->n_parts, h, w)) return -1;
    rle_decode(&r, coco); /* column-major */
    rle_free(&r);
    int x0, x1, y0, y1;
    int64_t inter = 0, uni = 0;
    pixel_box(ob, w, h, &x0, &x1, &y0, &y1);
    for (int x = x0; x <= x1; x++)
        for (int y = y0; y <= y1; y++) {
            int c = coco[(size_t)x * h + y] != 0, m = mask[(size_t)y * w + x] != 0;
            inter += c & m, uni += c | m;
        }
    return uni ? (double)inter / uni : 1;
}

/* ---- placing objects ------------------------------------------------------------------------ */

typedef struct obj_spec {
    int cls, annotated, shape;
    uint8_t rgb[3];
    int noise; /* pixel noise amplitude */
} obj_spec;

#define PLACE_TRIES 60
#define PLACE_STRICT_TRIES 20 /* objects that avoid overlaps try this long for a free spot */
#define SHRINK_AFTER 30
#define MIN_RADIUS 13.0 /* px: the thinnest parts (ring wall, star points) stay 5+ px wide */
#define MIN_PIXELS 40
#define MIN_COCO_IOU 0.97 /* a class object's mask against COCO's rasterisation of its polygons */

/* The smallest visible fraction among objects 0..k-1 if ob (mask in `mask`) were drawn on
 * top of them; hidden[j] gets what ob would cover of object j, *covered the sum. */
static double worst_visible(const synth_image *im, int k, const uint8_t *mask, const synth_object *ob, int *hidden,
                            int *covered) {
    for (int j = 0; j < k; j++) hidden[j] = 0;
    int w = im->w, x0, x1, y0, y1;
    pixel_box(ob, im->w, im->h, &x0, &x1, &y0, &y1);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            size_t i = (size_t)y * w + x;
            if (mask[i] && im->owner[i] >= 0) hidden[im->owner[i]]++;
        }
    double worst = 1;
    *covered = 0;
    for (int j = 0; j < k; j++) {
        double v = (double)(im->obj[j].visible - hidden[j]) / im->obj[j].pixels;
        worst = v < worst ? v : worst;
        *covered += hidden[j];
    }
    return worst;
}

/* One random pose of s that fits inside the image with a 1 px margin; 0 when this radius
 * cannot fit (the caller shrinks). */
static int random_pose(synth_object *ob, const obj_spec *s, const outline *o, double radius, int w, int h, rng *r) {
    double turn = shape_turns_freely(s->shape) ? 2 * M_PI * rng_uniform(r) : MAX_TURN_SMALL * (2 * rng_uniform(r) - 1);
    double aspect = exp(0.15 * (2 * rng_uniform(r) - 1));
    pose(ob, o, radius, aspect, turn, 0, 0);
    measure(ob);
    double lo_x = 1 - ob->bbox[0], hi_x = w - 1 - (ob->bbox[0] + ob->bbox[2]);
    double lo_y = 1 - ob->bbox[1], hi_y = h - 1 - (ob->bbox[1] + ob->bbox[3]);
    double ux = rng_uniform(r), uy = rng_uniform(r);
    if (hi_x < lo_x || hi_y < lo_y) return 0;
    pose(ob, o, radius, aspect, turn, lo_x + (hi_x - lo_x) * ux, lo_y + (hi_y - lo_y) * uy);
    measure(ob);
    /* rounding to 2 decimals may step a coordinate by 0.005 px: still inside the margin */
    return ob->bbox[0] >= 0 && ob->bbox[1] >= 0 && ob->bbox[0] + ob->bbox[2] <= w && ob->bbox[1] + ob->bbox[3] <= h;
}

/* Places object k (drawn on top of 0..k-1) so that every object keeps SYNTH_MIN_VISIBLE of
 * its pixels visible; most objects (`avoid`) look for a spot that covers nothing first, so
 * overlaps stay occasional. A class object is always placed: when no try keeps the rule
 * it takes the try that hid the least (so the plan's counts hold); a distractor that does
 * not fit is dropped. Returns 1 when placed. */
static int place(synth_image *im, int k, const obj_spec *s, int n_total, rng *r) {
    synth_object *ob = &im->obj[k], best = *ob;
    outline o;
    make_outline(s->shape, &o);
    double m = im->w < im->h ? im->w : im->h;
    double r_hi = m * fmax(0.1, 0.22 - 0.012 * n_total), r_lo = fmax(MIN_RADIUS, 0.07 * m);
    if (!s->cls) r_hi *= 0.85;
    int avoid = rng_uniform(r) < 0.7, hidden[SYNTH_MAX_OBJECTS], covered;
    double best_score = -1;
    ob->cls = s->cls, ob->annotated = s->annotated;
    memcpy(ob->rgb, s->rgb, 3);
    for (int t = 0; t < PLACE_TRIES; t++) {
        double u = rng_uniform(r);
        double radius = r_lo + (r_hi - r_lo) * u * u;
        if (t >= SHRINK_AFTER) radius = fmax(MIN_RADIUS, radius * (1 - 0.02 * (t - SHRINK_AFTER)));
        if (!random_pose(ob, s, &o, radius, im->w, im->h, r)) continue;
        ob->pixels = rasterise(ob, ob->mask, im->w, im->h);
        int usable = ob->pixels >= MIN_PIXELS &&
                     (!s->cls || coco_agreement(ob, ob->mask, im->w, im->h, im->scratch) >= MIN_COCO_IOU);
        double score = usable ? worst_visible(im, k, ob->mask, ob, hidden, &covered) : -1;
        clear_mask(ob, ob->mask, im->w, im->h);
        if (score < 0) continue;
        if (covered == 0 || (score >= SYNTH_MIN_VISIBLE && (!avoid || t >= PLACE_STRICT_TRIES))) {
            best = *ob, best_score = 2; /* accepted */
            break;
        }
        if (score > best_score) best = *ob, best_score = score;
    }
    if (best_score < 0 || (!s->cls && best_score < SYNTH_MIN_VISIBLE)) return 0;
    *ob = best;
    ob->pixels = rasterise(ob, ob->mask, im->w, im->h);
    worst_visible(im, k, ob->mask, ob, hidden, &covered);
    for (int j = 0; j < k; j++) im->obj[j].visible -= hidden[j];
    ob->visible = ob->pixels;
    int x0, x1, y0, y1;
    pixel_box(ob, im->w, im->h, &x0, &x1, &y0, &y1);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            if (ob->mask[(size_t)y * im->w + x]) im->owner[(size_t)y * im->w + x] = (int8_t)k;
    return 1;
}

/* ---- pixels --------------------------------------------------------------------------------- */

/* Words off..off+n-1 of r's stream (as rng_u32 would give them), four per Philox block. */
static void stream_fill(const rng *r, uint64_t off, uint32_t *w, size_t n) {
    uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    for (size_t i = 0; i < n;) {
        uint64_t k = off + i, block = k >> 2;
        uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)r->stream, (uint32_t)(r->stream >> 32)};
        uint32_t out[4];
        philox4x32_10(ctr, key, out);
        for (int lane = (int)(k & 3); lane < 4 && i < n; lane++) w[i++] = out[lane];
    }
}

static uint8_t clamp8(double v) { return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)(v + 0.5); }

/* Byte b of a noise word as a value in [-amp, amp]. */
static int noise_of(uint32_t word, int b, int amp) {
    return (int)((((word >> (8 * b)) & 255u) * (uint32_t)(2 * amp + 1)) >> 8) - amp;
}

/* A muted colour: random, pulled 50-75% of the way toward its own grey. */
static void muted(rng *r, double c[3]) {
    double v[3], g = 0, pull = 0.5 + 0.25 * rng_uniform(r);
    for (int i = 0; i < 3; i++) v[i] = 40 + 180 * rng_uniform(r), g += v[i] / 3;
    for (int i = 0; i < 3; i++) c[i] = v[i] + (g - v[i]) * pull;
}

static double smooth(double t) { return t * t * (3 - 2 * t); }

enum { BG_GRADIENT, BG_STRIPES, BG_BLOTCHES, BG_CHECKER, BG_COUNT };
#define BG_GRID_MAX 16 /* value-noise nodes per side: 256 px / 24 px cells, plus 2 */

/* Background into im->rgb: a gradient, soft stripes, value-noise blotches or a low-contrast
 * checkerboard between two muted colours, plus pixel noise. */
static void background(synth_image *im, rng *r, const uint32_t *noise) {
    int kind = (int)rng_below(r, BG_COUNT), w = im->w, h = im->h;
    double c0[3], c1[3];
    muted(r, c0);
    muted(r, c1);
    int amp = 3 + (int)rng_below(r, 8);
    double ang = 2 * M_PI * rng_uniform(r), ca = cos(ang), sa = sin(ang);
    double period = 8 + 16 * rng_uniform(r), cell = 24 + 40 * rng_uniform(r), check = 10 + 20 * rng_uniform(r);
    double node[BG_GRID_MAX][BG_GRID_MAX];
    int gw = (int)(w / cell) + 2, gh = (int)(h / cell) + 2;
    if (kind == BG_BLOTCHES)
        for (int j = 0; j < gh; j++)
            for (int i = 0; i < gw; i++) node[j][i] = rng_uniform(r);
    double half = 0.5 * (w * fabs(ca) + h * fabs(sa));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double t, d = (x - w / 2.0) * ca + (y - h / 2.0) * sa;
            if (kind == BG_GRADIENT) t = 0.5 + 0.5 * d / half;
            else if (kind == BG_STRIPES) {
                double f = d / period - floor(d / period);
                t = smooth(fabs(2 * f - 1));
            } else if (kind == BG_BLOTCHES) {
                double gx = x / cell, gy = y / cell;
                int i = (int)gx, j = (int)gy;
                double fx = smooth(gx - i), fy = smooth(gy - j);
                t = (node[j][i] * (1 - fx) + node[j][i + 1] * fx) * (1 - fy) +
                    (node[j + 1][i] * (1 - fx) + node[j + 1][i + 1] * fx) * fy;
            } else {
                t = (((int)(x / check) + (int)(y / check)) & 1) ? 0.35 : 0.65;
            }
            uint8_t *px = im->rgb + ((size_t)y * w + x) * 3;
            uint32_t nw = noise[(size_t)y * w + x];
            for (int ch = 0; ch < 3; ch++) px[ch] = clamp8(c0[ch] + (c1[ch] - c0[ch]) * t + noise_of(nw, ch, amp));
        }
}

/* Each pixel owned by an object takes the object's colour plus its pixel noise. */
static void paint_objects(synth_image *im, const obj_spec *specs, const uint32_t *noise) {
    for (size_t i = 0; i < (size_t)im->w * im->h; i++) {
        int o = im->owner[i];
        if (o < 0) continue;
        const uint8_t *c = im->obj[o].rgb;
        for (int ch = 0; ch < 3; ch++) im->rgb[3 * i + ch] = clamp8(c[ch] + noise_of(noise[i], ch, specs[o].noise));
    }
}

/* ---- one image -------------------------------------------------------------------------------- */

#define COLOUR_JITTER 6 /* per instance and channel, +- */
#define MAX_DISTRACTORS 3

static int ensure_buffers(synth_image *im, size_t pixels) {
    if (pixels <= im->cap) return 0;
    uint8_t *rgb = realloc(im->rgb, pixels * 3);
    if (rgb) im->rgb = rgb;
    int8_t *owner = realloc(im->owner, pixels);
    if (owner) im->owner = owner;
    uint8_t *masks = realloc(im->obj[0].mask, pixels * SYNTH_MAX_OBJECTS);
    if (masks) im->obj[0].mask = masks;
    uint8_t *scratch = realloc(im->scratch, pixels);
    if (scratch) im->scratch = scratch;
    if (!rgb || !owner || !masks || !scratch) return -1;
    im->cap = pixels;
    return 0;
}

/* An unlabelled distractor: a class shape in a neutral grey, or a non-class shape in any
 * colour (never a class's shape in a class's colour). */
static void distractor(obj_spec *s, rng *r) {
    s->cls = 0, s->annotated = 0;
    if (rng_uniform(r) < 0.5) {
        static const int class_shapes[] = {SH_CIRCLE, SH_SQUARE, SH_TRIANGLE, SH_STAR5, SH_HEXAGON, SH_RING, SH_CROSS};
        s->shape = class_shapes[rng_below(r, sizeof class_shapes / sizeof *class_shapes)];
        uint8_t g = (uint8_t)(20 + rng_below(r, 216));
        s->rgb[0] = s->rgb[1] = s->rgb[2] = g;
    } else {
        static const int other_shapes[] = {SH_BAR, SH_TRAPEZOID, SH_SEMICIRCLE};
        s->shape = other_shapes[rng_below(r, 3)];
        for (int ch = 0; ch < 3; ch++) s->rgb[ch] = (uint8_t)(30 + rng_below(r, 211));
    }
}

static void instance(obj_spec *s, synth_inst in, rng *r) {
    const class_def *d = &class_defs[in.cls - 1];
    s->cls = in.cls, s->annotated = in.annotated, s->shape = d->shape;
    for (int ch = 0; ch < 3; ch++)
        s->rgb[ch] = clamp8(colours[d->colour].rgb[ch] + (int)rng_below(r, 2 * COLOUR_JITTER + 1) - COLOUR_JITTER);
}

static int is_twin(int a, int b) { return class_defs[a - 1].twin == b || class_defs[b - 1].twin == a; }

/* neg_category_ids: the absent twins of every class present (so a twin mistaken for its
 * frequent class, or the other way round, is a counted false positive), then random absent
 * classes up to 3..7 in all. not_exhaustive_category_ids: classes with an unannotated
 * instance. Both ascending. */
static void federated_lists(synth_image *im, rng *r) {
    int present[SYNTH_NUM_CLASSES + 1] = {0}, neg[SYNTH_NUM_CLASSES + 1] = {0}, ne[SYNTH_NUM_CLASSES + 1] = {0};
    for (int k = 0; k < im->n_obj; k++) {
        present[im->obj[k].cls] = 1;
        if (im->obj[k].cls && !im->obj[k].annotated) ne[im->obj[k].cls] = 1;
    }
    int n = 0, want = 3 + (int)rng_below(r, 5);
    for (int c = 1; c <= SYNTH_NUM_CLASSES; c++)
        for (int p = 1; p <= SYNTH_NUM_CLASSES && !present[c] && !neg[c]; p++)
            if (present[p] && is_twin(c, p)) neg[c] = 1, n++;
    int absent = 0;
    for (int c = 1; c <= SYNTH_NUM_CLASSES; c++) absent += !present[c] && !neg[c];
    while (n < want && absent > 0) {
        int pick = (int)rng_below(r, (uint32_t)absent);
        for (int c = 1; c <= SYNTH_NUM_CLASSES; c++)
            if (!present[c] && !neg[c] && pick-- == 0) {
                neg[c] = 1, n++, absent--;
                break;
            }
    }
    im->n_neg = im->n_not_exhaustive = 0;
    for (int c = 1; c <= SYNTH_NUM_CLASSES; c++) {
        if (neg[c]) im->neg[im->n_neg++] = c;
        if (ne[c]) im->not_exhaustive[im->n_not_exhaustive++] = c;
    }
}

int synth_render(const synth_plan *p, int split, int index, synth_image *im) {
    if (split < 0 || split > 1 || index < 0 || index >= p->split[split].n) return -1;
    const synth_split_plan *sp = &p->split[split];
    rng r = rng_make(p->cfg.seed, SYNTH_STREAM | IMAGE_SUBSTREAM | (uint64_t)split << 30 | (uint64_t)index);
    im->split = split, im->index = index;
    im->id = split == SYNTH_TRAIN ? index + 1 : SYNTH_VAL_ID_BASE + index + 1;
    im->w = SYNTH_MIN_SIDE + (int)rng_below(&r, SYNTH_MAX_SIDE - SYNTH_MIN_SIDE + 1);
    im->h = SYNTH_MIN_SIDE + (int)rng_below(&r, SYNTH_MAX_SIDE - SYNTH_MIN_SIDE + 1);
    size_t pixels = (size_t)SYNTH_MAX_SIDE * SYNTH_MAX_SIDE, npx = (size_t)im->w * im->h;
    uint32_t *noise = malloc(npx * sizeof *noise);
    if (!noise || ensure_buffers(im, pixels)) {
        free(noise);
        return -1;
    }
    for (int k = 0; k < SYNTH_MAX_OBJECTS; k++) im->obj[k].mask = im->obj[0].mask + (size_t)k * npx;
    memset(im->obj[0].mask, 0, npx * SYNTH_MAX_OBJECTS);
    memset(im->owner, -1, npx);
    stream_fill(&r, NOISE_OFFSET, noise, npx);
    background(im, &r, noise);

    /* planned instances and distractors, in a random drawing order */
    obj_spec specs[SYNTH_MAX_OBJECTS];
    int n = 0;
    for (int64_t k = sp->first[index]; k < sp->first[index + 1]; k++) instance(&specs[n++], sp->inst[k], &r);
    int nd = (int)rng_below(&r, MAX_DISTRACTORS + 1);
    for (int k = 0; k < nd && n < SYNTH_MAX_OBJECTS; k++) distractor(&specs[n++], &r);
    for (int k = n - 1; k > 0; k--) {
        int j = (int)rng_below(&r, (uint32_t)k + 1);
        obj_spec t = specs[k];
        specs[k] = specs[j], specs[j] = t;
    }
    for (int k = 0; k < n; k++) specs[k].noise = rng_uniform(&r) < 0.5 ? 0 : 2 + (int)rng_below(&r, 5);
    im->n_obj = 0;
    for (int k = 0; k < n; k++) {
        if (place(im, im->n_obj, &specs[k], n, &r)) specs[im->n_obj++] = specs[k];
        else if (specs[k].cls) { /* cannot happen at these sizes (see place); never drop a planned object */
            free(noise);
            return -1;
        }
    }
    paint_objects(im, specs, noise);
    federated_lists(im, &r);
    free(noise);
    return 0;
}

void synth_image_free(synth_image *im) {
    free(im->rgb);
    free(im->owner);
    free(im->obj[0].mask);
    free(im->scratch);
    memset(im, 0, sizeof *im);
}

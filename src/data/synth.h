/* synth.h: the built-in long-tail demo data set (DESIGN §7, `maskrcnn synth`): drawn
 * objects of 30 classes (shapes x colours) on textured backgrounds, with LVIS v1
 * annotations whose train frequency groups (reference/architecture.md §11) are designed:
 * 8 frequent, 12 common, 10 rare classes, each rare class a near twin of a frequent one.
 *
 * Two stages, both pure functions of (seed, options):
 *   synth_plan_make  which class instances each image holds (a whole-split decision, so
 *                    that the per-class image counts hit their targets; one RNG stream per
 *                    split). The train plan depends only on (seed, n_train), the val plan
 *                    only on (seed, n_val).
 *   synth_render     one image from the plan: size, background, distractors, the geometry
 *                    of every object, the pixels, the federated lists. One RNG stream per
 *                    image, so an image never depends on another image's draws.
 *
 * Geometry contract (what the annotations mean):
 *   - A polygon part is a closed outline in pixel-corner coordinates (pixel (x, y) covers
 *     [x, x+1) x [y, y+1)), its coordinates rounded to 2 decimals exactly as written to the
 *     JSON. An object is the union of its parts (COCO semantics: parts are unioned, there
 *     are no holes), e.g. a ring is two C-shaped half annuli, a domino two separate squares.
 *   - The outline is the object's WHOLE (amodal) outline: where a later object covers it,
 *     the mask still holds the covered pixels. Placement keeps overlaps moderate: every
 *     object keeps at least SYNTH_MIN_VISIBLE of its pixels visible (see synth.c).
 *   - A pixel belongs to an object when its centre (x + 0.5, y + 0.5) lies inside one of
 *     the parts (even-odd rule within a part), which is what the COCO rasteriser
 *     (eval/rle.h, rle_from_polygons) approximates on its 1/5-pixel grid; a class object's
 *     pose is redrawn until the two agree to IoU 0.97 (they differ only on pixels whose
 *     centre is within 0.2 px of the outline). */
#ifndef MRC_SYNTH_H
#define MRC_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SYNTH_NUM_CLASSES 30
#define SYNTH_MAX_OBJECTS 12 /* per image: at most 6 class instances (a not-exhaustive extra among them) and 3 distractors */
#define SYNTH_MAX_PARTS 2
#define SYNTH_MAX_POINTS 64  /* per part */
#define SYNTH_MIN_SIDE 160
#define SYNTH_MAX_SIDE 256
#define SYNTH_MIN_VISIBLE 0.7 /* each object keeps this fraction of its pixels visible (best effort, see synth.c) */
#define SYNTH_VAL_ID_BASE 1000000 /* val image ids are SYNTH_VAL_ID_BASE + index + 1; train ids index + 1 */

enum { SYNTH_TRAIN = 0, SYNTH_VAL = 1 };

typedef struct synth_config {
    uint64_t seed;
    int n_train, n_val; /* images per split, >= 1 */
} synth_config;

void synth_config_default(synth_config *c); /* seed 1, 1500 train, 400 val images */

/* One class of the built-in table; ids are 1..SYNTH_NUM_CLASSES, index = id - 1 here (the
 * table is ours; readers of the JSON map ids through their own table). */
typedef struct synth_class {
    int id;
    const char *name;       /* e.g. "red_circle" */
    const char *shape;      /* e.g. "circle" */
    const char *colour;     /* e.g. "red" */
    uint8_t rgb[3];
    char group;             /* the designed train frequency group: 'r', 'c' or 'f' */
    int twin;               /* rare classes: id of the frequent class it is a near twin of; else 0 */
    const char *twin_kind;  /* "colour" (same shape, close colour) or "shape" (close shape, same colour) */
} synth_class;

const synth_class *synth_class_get(int id); /* NULL when id is out of range */

/* The plan: per split and image, the class instances to draw. */
typedef struct synth_inst {
    int16_t cls;       /* class id */
    int16_t annotated; /* 0: drawn but left out of the JSON (the image lists the class as not exhaustive) */
} synth_inst;

typedef struct synth_split_plan {
    int n;               /* images */
    int64_t *first;      /* [n + 1]: image i's instances are inst[first[i] .. first[i+1]) */
    synth_inst *inst;
    int64_t image_count[SYNTH_NUM_CLASSES + 1];    /* by class id: images with an annotated instance */
    int64_t instance_count[SYNTH_NUM_CLASSES + 1]; /* by class id: annotated instances */
    int64_t n_annotated, n_unannotated, n_not_exhaustive_images;
} synth_split_plan;

typedef struct synth_plan {
    synth_config cfg;
    synth_split_plan split[2];
} synth_plan;

/* 0, or -1 with one line in err (bad sizes, no memory) and *p freed. */
int synth_plan_make(synth_plan *p, const synth_config *c, char *err, size_t errn);
void synth_plan_free(synth_plan *p);
/* LVIS's frequency group of a class with n train images: 'r' (<= 10), 'c' (<= 100), 'f'. */
char synth_frequency(int64_t image_count);

typedef struct synth_object {
    int cls;                /* class id, or 0 for an unlabelled distractor */
    int annotated;          /* 1: written to the JSON (distractors and not-exhaustive instances: 0) */
    int n_parts;
    int n_points[SYNTH_MAX_PARTS];
    double xy[SYNTH_MAX_PARTS][2 * SYNTH_MAX_POINTS]; /* x0, y0, x1, y1, ... rounded to 2 decimals */
    double bbox[4];         /* x, y, w, h of the outline (w, h rounded to 2 decimals) */
    double area;            /* shoelace area summed over the parts (they never overlap) */
    uint8_t rgb[3];         /* the base colour it is painted with */
    int pixels;             /* pixels in mask */
    int visible;            /* pixels where it is the top object (owner == its index) */
    uint8_t *mask;          /* [h * w] row-major, 1 where the pixel centre is inside the outline (amodal) */
} synth_object;

typedef struct synth_image {
    int split, index;
    int64_t id;
    int w, h;
    uint8_t *rgb;           /* [h * w * 3] row-major RGB, what is JPEG-encoded */
    int8_t *owner;          /* [h * w] index into obj of the object seen at each pixel, -1: background */
    int n_obj;              /* in drawing order (later objects cover earlier ones) */
    synth_object obj[SYNTH_MAX_OBJECTS];
    int n_neg, n_not_exhaustive;
    int neg[SYNTH_NUM_CLASSES];            /* class ids verified absent, ascending */
    int not_exhaustive[SYNTH_NUM_CLASSES]; /* class ids with a drawn, unannotated instance, ascending */
    size_t cap;             /* pixels the buffers hold (they are reused between renders) */
    uint8_t *scratch;       /* [cap] the renderer's own */
} synth_image;

/* Renders image `index` of `split` into *out (zero-initialise it before the first use;
 * buffers are reused). 0, or -1 when out of memory, the index is out of range, or a
 * planned object found no place (which the sizes used here rule out; see synth.c). */
int synth_render(const synth_plan *p, int split, int index, synth_image *out);
void synth_image_free(synth_image *im);

#ifdef __cplusplus
}
#endif
#endif

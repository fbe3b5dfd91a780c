/* roi_align.c: RoIAlign on the CPU, one map or the FPN levels P2..P5 (see roi_align.h).
 * The typed kernels are in roi_align_real.inc (f32 and f64, real_instantiate.h). */
#include "ops/roi_align.h"

#include "ops/ops_internal.h"

#include <math.h>
#include <string.h>

/* detectron2 computes the level from f32 boxes in f32: the same operations in float. */
int roi_fpn_level(float x0, float y0, float x1, float y1) {
    float area = (x1 - x0) * (y1 - y0);
    float k = floorf(4.0f + log2f(sqrtf(area) / 224.0f + 1e-8f));
    if (!(k >= ROI_FPN_MIN_LEVEL)) return ROI_FPN_MIN_LEVEL; /* also NaN: an inverted box */
    return k > ROI_FPN_MAX_LEVEL ? ROI_FPN_MAX_LEVEL : (int)k;
}

/* f64 RoIs (gradient checks, goldens): the rule in double, as PyTorch does for f64 boxes. */
static int roi_fpn_level_f64_rule(double x0, double y0, double x1, double y1) {
    double k = floor(4.0 + log2(sqrt((x1 - x0) * (y1 - y0)) / 224.0 + 1e-8));
    if (!(k >= ROI_FPN_MIN_LEVEL)) return ROI_FPN_MIN_LEVEL;
    return k > ROI_FPN_MAX_LEVEL ? ROI_FPN_MAX_LEVEL : (int)k;
}
static int roi_fpn_level_of_f32(const float *r) { return roi_fpn_level(r[1], r[2], r[3], r[4]); }
static int roi_fpn_level_of_f64(const double *r) { return roi_fpn_level_f64_rule(r[1], r[2], r[3], r[4]); }

#define REAL_INC "ops/roi_align_real.inc"
#include "ops/real_instantiate.h"

int roi_align_check(const char *op, const roi_align_args *a, const tensor *const *feats, int nlev,
                    const tensor *rois, const tensor *y) {
    char s[128], s2[128];
    CHECK(a->ph > 0 && a->pw > 0 && a->sampling_ratio >= 0, "%s: bad output %dx%d or sampling ratio %d", op, a->ph,
          a->pw, a->sampling_ratio);
    const tensor *x = feats[0];
    ops_expect_real(op, "the features", x);
    CHECK(x->ndim == 4 && x->shape[1] > 0 && x->shape[2] > 0, "%s: features must be NHWC with H, W > 0, got %s", op,
          tensor_str(x, s, sizeof s));
    for (int k = 1; k < nlev; k++) {
        const tensor *f = feats[k];
        CHECK(f != NULL, "%s: level P%d is missing", op, k + ROI_FPN_MIN_LEVEL);
        CHECK(f->ndim == 4 && f->shape[0] == x->shape[0] && f->shape[3] == x->shape[3] && f->shape[1] > 0 &&
                  f->shape[2] > 0 && f->dtype == x->dtype && f->device == x->device,
              "%s: P%d is %s, P2 is %s (same N, C, dtype and device expected)", op, k + ROI_FPN_MIN_LEVEL,
              tensor_str(f, s, sizeof s), tensor_str(x, s2, sizeof s2));
    }
    CHECK(rois != NULL, "%s: rois are missing", op);
    CHECK(rois->ndim == 2 && rois->shape[1] == 5 && rois->dtype == x->dtype && rois->device == x->device,
          "%s: rois must be [R,5] like the features (%s), got %s", op, tensor_str(x, s2, sizeof s2),
          tensor_str(rois, s, sizeof s));
    int R = rois->shape[0];
    if (y) tensor_expect(y, x->dtype, x->device, TSHAPE(R, a->ph, a->pw, x->shape[3]), "roi_align output [R,ph,pw,C]");
    return R;
}

/* Batch indices are data: a bad one is a clear error, not an out-of-bounds read. */
static void roi_check_batch_cpu(const char *op, const tensor *rois, int N) {
    for (int r = 0; r < rois->shape[0]; r++) {
        double b = rois->dtype == DTYPE_F64 ? tensor_f64(rois)[5 * r] : tensor_f32(rois)[5 * r];
        CHECK(b >= 0 && b < N && b == floor(b), "%s: RoI %d has batch index %g, the batch holds %d images", op, r, b,
              N);
    }
}

/* The maps as the kernels see them (roi_align_real.inc); scale[k] = spatial scale of level k. */
#define ROI_MAPS(T, m, feats, dfeats, nlev_, scales)                                             \
    do {                                                                                         \
        memset(&(m), 0, sizeof(m));                                                              \
        (m).nlev = (nlev_), (m).N = (feats)[0]->shape[0], (m).C = (feats)[0]->shape[3];          \
        for (int k_ = 0; k_ < (nlev_); k_++) {                                                   \
            (m).x[k_] = (const T *)(feats)[k_]->data;                                            \
            (m).dx[k_] = (dfeats) && (dfeats)[k_] ? (T *)(dfeats)[k_]->data : NULL;              \
            (m).H[k_] = (feats)[k_]->shape[1], (m).W[k_] = (feats)[k_]->shape[2];                \
            (m).scale[k_] = (scales)[k_];                                                        \
        }                                                                                        \
    } while (0)

/* Runs the forward (dy == NULL) or the backward of nlev maps, after the checks. */
static void roi_run_cpu(runtime *rt, const char *op, const roi_align_args *a, const tensor *const *feats,
                        tensor *const *dfeats, int nlev, const double *scales, const tensor *rois, const tensor *dy,
                        tensor *y) {
    ops_expect_cpu(op, feats[0]);
    int R = roi_align_check(op, a, feats, nlev, rois, dy ? dy : y);
    CHECK(dy || y, "%s: the output is missing", op);
    for (int k = 0; dfeats && k < nlev; k++)
        if (dfeats[k]) ops_expect_same_shape(op, dfeats[k], feats[k]);
    roi_check_batch_cpu(op, rois, feats[0]->shape[0]);
    if (feats[0]->dtype == DTYPE_F64) {
        roi_maps_f64 m;
        ROI_MAPS(double, m, feats, dfeats, nlev, scales);
        if (dy) roi_bwd_f64(rt, a, &m, R, tensor_f64(rois), tensor_f64(dy));
        else roi_fwd_f64(rt, a, &m, R, tensor_f64(rois), tensor_f64(y));
    } else {
        roi_maps_f32 m;
        ROI_MAPS(float, m, feats, dfeats, nlev, scales);
        if (dy) roi_bwd_f32(rt, a, &m, R, tensor_f32(rois), tensor_f32(dy));
        else roi_fwd_f32(rt, a, &m, R, tensor_f32(rois), tensor_f32(y));
    }
}

static const double fpn_scales[ROI_FPN_LEVELS] = {1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32};

void roi_align_forward_cpu(runtime *rt, const roi_align_args *a, double spatial_scale, const tensor *x,
                           const tensor *rois, tensor *y) {
    roi_run_cpu(rt, "roi_align_forward_cpu", a, &x, NULL, 1, &spatial_scale, rois, NULL, y);
}

void roi_align_backward_cpu(runtime *rt, const roi_align_args *a, double spatial_scale, const tensor *x,
                            const tensor *rois, const tensor *dy, tensor *dx) {
    CHECK(dy != NULL && dx != NULL, "roi_align_backward_cpu: dy or dx is missing");
    roi_run_cpu(rt, "roi_align_backward_cpu", a, &x, &dx, 1, &spatial_scale, rois, dy, NULL);
}

void roi_align_fpn_forward_cpu(runtime *rt, const roi_align_args *a, const tensor *const feats[ROI_FPN_LEVELS],
                               const tensor *rois, tensor *y) {
    roi_run_cpu(rt, "roi_align_fpn_forward_cpu", a, feats, NULL, ROI_FPN_LEVELS, fpn_scales, rois, NULL, y);
}

void roi_align_fpn_backward_cpu(runtime *rt, const roi_align_args *a, const tensor *const feats[ROI_FPN_LEVELS],
                                const tensor *rois, const tensor *dy, tensor *const dfeats[ROI_FPN_LEVELS]) {
    CHECK(dy != NULL, "roi_align_fpn_backward_cpu: dy is missing");
    roi_run_cpu(rt, "roi_align_fpn_backward_cpu", a, feats, dfeats, ROI_FPN_LEVELS, fpn_scales, rois, dy, NULL);
}

/* ---- autograd ---- */

typedef struct roi_ctx {
    roi_align_args a;
    double scale; /* single level only */
    int nlev;     /* 1: op_roi_align, 4: op_roi_align_fpn */
    tensor *feats[ROI_FPN_LEVELS];
    const tensor *rois;
    tensor *y;
} roi_ctx;

static void roi_backward_tape(runtime *rt, void *p) {
    roi_ctx *c = p;
    if (!c->y->grad) return;
    tensor dy = *c->y, views[ROI_FPN_LEVELS], *d[ROI_FPN_LEVELS] = {0};
    dy.data = c->y->grad;
    int any = 0;
    for (int k = 0; k < c->nlev; k++) any |= (d[k] = ops_grad(rt, c->feats[k], &views[k])) != NULL;
    if (!any) return;
    const tensor *const *f = (const tensor *const *)c->feats;
    if (c->nlev == 1) OPS_CALL(f[0], roi_align_backward, rt, &c->a, c->scale, f[0], c->rois, &dy, d[0]);
    else OPS_CALL(f[0], roi_align_fpn_backward, rt, &c->a, f, c->rois, &dy, d);
}

static tensor *roi_op(runtime *rt, const char *name, tensor *const *feats, int nlev, const tensor *rois,
                      const roi_align_args *a, double scale) {
    device d = ops_device(name, feats[0]);
    int R = roi_align_check(name, a, (const tensor *const *)feats, nlev, rois, NULL);
    tensor *y = runtime_tensor(rt, d, feats[0]->dtype, TSHAPE(R, a->ph, a->pw, feats[0]->shape[3]));
    const tensor *const *f = (const tensor *const *)feats;
    if (nlev == 1) OPS_CALL(f[0], roi_align_forward, rt, a, scale, f[0], rois, y);
    else OPS_CALL(f[0], roi_align_fpn_forward, rt, a, f, rois, y);
    int needs = 0;
    for (int k = 0; k < nlev; k++) needs |= RUNTIME_NEEDS_GRAD(rt, feats[k]);
    if (!needs) return y;
    roi_ctx *c = runtime_record(rt, name, roi_backward_tape, sizeof *c);
    memset(c, 0, sizeof *c);
    c->a = *a, c->scale = scale, c->nlev = nlev, c->rois = rois, c->y = y;
    for (int k = 0; k < nlev; k++) c->feats[k] = feats[k];
    y->requires_grad = 1;
    return y;
}

tensor *op_roi_align(runtime *rt, tensor *x, const tensor *rois, const roi_align_args *a, double spatial_scale) {
    return roi_op(rt, "roi_align", &x, 1, rois, a, spatial_scale);
}

tensor *op_roi_align_fpn(runtime *rt, tensor *const feats[ROI_FPN_LEVELS], const tensor *rois,
                         const roi_align_args *a) {
    return roi_op(rt, "roi_align_fpn", feats, ROI_FPN_LEVELS, rois, a, 0);
}

/* roi_align.cu: the CUDA twins of src/ops/roi_align.c: RoIAlign on f32 NHWC CUDA tensors,
 * one map or the FPN levels P2..P5 (roi_align.h has the contracts), on rt->stream.
 *
 * Forward: one thread per output element (r, i, j, c), c fastest, so a warp reads 32
 * neighbouring channels of one tap. Each thread finds its RoI's level and geometry itself
 * (a few flops, no scratch, no host synchronisation).
 * Backward: one thread per dy element, scattering dy·w/count to the 4 taps of every sample
 * with atomicAdd. NOT deterministic: the order of the additions into one dx element varies
 * from run to run (DESIGN §3 allows it for RoIAlign; the CPU reference is deterministic). */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"

#include "ops/ops_internal.h"
#include "ops/roi_align.h"

#define ROI_THREADS 256

/* The maps passed by value: nlev = 1 (scale[0] given) or 4 (P2..P5). */
typedef struct roi_maps_gpu {
    int nlev, N, C;
    const float *x[ROI_FPN_LEVELS];
    float *dx[ROI_FPN_LEVELS];
    int H[ROI_FPN_LEVELS], W[ROI_FPN_LEVELS];
    double scale[ROI_FPN_LEVELS];
} roi_maps_gpu;

/* roi_fpn_level (roi_align.c) in float, with the same operations. */
__device__ static int roi_level_dev(const roi_maps_gpu &m, const float *roi) {
    if (m.nlev == 1) return 0;
    float area = (roi[3] - roi[1]) * (roi[4] - roi[2]);
    float k = floorf(4.0f + log2f(sqrtf(area) / 224.0f + 1e-8f));
    if (!(k >= ROI_FPN_MIN_LEVEL)) return 0;
    return (k > ROI_FPN_MAX_LEVEL ? ROI_FPN_MAX_LEVEL : (int)k) - ROI_FPN_MIN_LEVEL;
}

struct roi_geom_dev {
    float y0, x0, bin_h, bin_w, count;
    int gy, gx;
};

/* roi_geometry of roi_align_real.inc: products in double rounded to float, as the CPU. */
__device__ static roi_geom_dev roi_geometry_dev(int ph, int pw, int sr, int aligned, double scale, const float *roi) {
    roi_geom_dev g;
    double off = aligned ? 0.5 : 0.0;
    float x0 = (float)(roi[1] * scale - off), y0 = (float)(roi[2] * scale - off);
    float x1 = (float)(roi[3] * scale - off), y1 = (float)(roi[4] * scale - off);
    float rw = x1 - x0, rh = y1 - y0;
    if (!aligned) {
        rw = fmaxf(rw, 1.0f);
        rh = fmaxf(rh, 1.0f);
    }
    g.y0 = y0, g.x0 = x0, g.bin_h = rh / ph, g.bin_w = rw / pw;
    g.gy = sr > 0 ? sr : (int)ceilf(rh / ph);
    g.gx = sr > 0 ? sr : (int)ceilf(rw / pw);
    int n = g.gy * g.gx;
    g.count = (float)(n > 1 ? n : 1);
    return g;
}

/* roi_taps of roi_align_real.inc. */
__device__ static bool roi_taps_dev(float y, float x, int H, int W, int64_t p[4], float w[4]) {
    if (y < -1.0f || y > (float)H || x < -1.0f || x > (float)W) return false;
    if (y <= 0) y = 0;
    if (x <= 0) x = 0;
    int yl = (int)y, xl = (int)x, yh, xh;
    if (yl >= H - 1) {
        yh = yl = H - 1;
        y = (float)yl;
    } else yh = yl + 1;
    if (xl >= W - 1) {
        xh = xl = W - 1;
        x = (float)xl;
    } else xh = xl + 1;
    float ly = y - yl, lx = x - xl, hy = 1.0f - ly, hx = 1.0f - lx;
    p[0] = (int64_t)yl * W + xl, p[1] = (int64_t)yl * W + xh;
    p[2] = (int64_t)yh * W + xl, p[3] = (int64_t)yh * W + xh;
    w[0] = hy * hx, w[1] = hy * lx, w[2] = ly * hx, w[3] = ly * lx;
    return true;
}

/* One element (r, i, j, c) of y (forward) or dy (backward, dy != NULL). */
__global__ static void roi_align_kernel(int64_t n, roi_maps_gpu m, int ph, int pw, int sr, int aligned,
                                        const float *rois, const float *dy, float *y) {
    int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int C = m.C, c = (int)(e % C);
    int64_t q = e / C;
    int j = (int)(q % pw), i = (int)(q / pw % ph);
    int64_t r = q / pw / ph;
    const float *roi = rois + 5 * r;
    int lev = roi_level_dev(m, roi), H = m.H[lev], W = m.W[lev];
    int b = (int)roi[0];
    bool valid = roi[0] >= 0 && b < m.N && (float)b == roi[0]; /* see roi_align.h: zeros otherwise */
    roi_geom_dev g = roi_geometry_dev(ph, pw, sr, aligned, m.scale[lev], roi);
    if (dy && (!valid || !m.dx[lev])) return;
    float acc = 0, d = dy ? dy[e] : 0;
    int64_t base = ((int64_t)b * H * W) * C + c;
    for (int iy = 0; valid && iy < g.gy; iy++) {
        float sy = g.y0 + i * g.bin_h + (float)(iy + 0.5) * g.bin_h / (float)g.gy;
        for (int ix = 0; ix < g.gx; ix++) {
            float sx = g.x0 + j * g.bin_w + (float)(ix + 0.5) * g.bin_w / (float)g.gx;
            int64_t p[4];
            float w[4];
            if (!roi_taps_dev(sy, sx, H, W, p, w)) continue;
            if (dy) {
                for (int k = 0; k < 4; k++) atomicAdd(m.dx[lev] + base + p[k] * C, d * w[k] / g.count);
            } else {
                const float *img = m.x[lev] + base;
                acc += w[0] * img[p[0] * C] + w[1] * img[p[1] * C] + w[2] * img[p[2] * C] + w[3] * img[p[3] * C];
            }
        }
    }
    if (!dy) y[e] = acc / g.count;
}

static void roi_run_gpu(runtime *rt, const char *op, const roi_align_args *a, const tensor *const *feats,
                        tensor *const *dfeats, int nlev, const double *scales, const tensor *rois, const tensor *dy,
                        tensor *y) {
    ops_expect_f32_gpu(op, "the features", feats[0]);
    int R = roi_align_check(op, a, feats, nlev, rois, dy ? dy : y);
    CHECK(dy || y, "%s: the output is missing", op);
    roi_maps_gpu m;
    memset(&m, 0, sizeof m);
    m.nlev = nlev, m.N = feats[0]->shape[0], m.C = feats[0]->shape[3];
    for (int k = 0; k < nlev; k++) {
        if (dfeats && dfeats[k]) ops_expect_same_shape(op, dfeats[k], feats[k]);
        m.x[k] = (const float *)feats[k]->data;
        m.dx[k] = dfeats && dfeats[k] ? (float *)dfeats[k]->data : NULL;
        m.H[k] = feats[k]->shape[1], m.W[k] = feats[k]->shape[2], m.scale[k] = scales[k];
    }
    int64_t n = (int64_t)R * a->ph * a->pw * m.C;
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    roi_align_kernel<<<cuda_blocks(n, ROI_THREADS), ROI_THREADS, 0, st>>>(
        n, m, a->ph, a->pw, a->sampling_ratio, a->aligned, (const float *)rois->data,
        dy ? (const float *)dy->data : NULL, y ? (float *)y->data : NULL);
    KERNEL_CHECK(rt->debug_sync, st);
}

static const double fpn_scales_gpu[ROI_FPN_LEVELS] = {1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32};

extern "C" void roi_align_forward_gpu(runtime *rt, const roi_align_args *a, double spatial_scale, const tensor *x,
                                      const tensor *rois, tensor *y) {
    roi_run_gpu(rt, "roi_align_forward_gpu", a, &x, NULL, 1, &spatial_scale, rois, NULL, y);
}

extern "C" void roi_align_backward_gpu(runtime *rt, const roi_align_args *a, double spatial_scale, const tensor *x,
                                       const tensor *rois, const tensor *dy, tensor *dx) {
    CHECK(dy != NULL && dx != NULL, "roi_align_backward_gpu: dy or dx is missing");
    roi_run_gpu(rt, "roi_align_backward_gpu", a, &x, &dx, 1, &spatial_scale, rois, dy, NULL);
}

extern "C" void roi_align_fpn_forward_gpu(runtime *rt, const roi_align_args *a,
                                          const tensor *const feats[ROI_FPN_LEVELS], const tensor *rois, tensor *y) {
    roi_run_gpu(rt, "roi_align_fpn_forward_gpu", a, feats, NULL, ROI_FPN_LEVELS, fpn_scales_gpu, rois, NULL, y);
}

extern "C" void roi_align_fpn_backward_gpu(runtime *rt, const roi_align_args *a,
                                           const tensor *const feats[ROI_FPN_LEVELS], const tensor *rois,
                                           const tensor *dy, tensor *const dfeats[ROI_FPN_LEVELS]) {
    CHECK(dy != NULL, "roi_align_fpn_backward_gpu: dy is missing");
    roi_run_gpu(rt, "roi_align_fpn_backward_gpu", a, feats, dfeats, ROI_FPN_LEVELS, fpn_scales_gpu, rois, dy, NULL);
}

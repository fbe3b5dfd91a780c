/* loss.cu: the CUDA twins of src/ops/loss.c: BCE with logits, softmax cross-entropy and
 * smooth L1 / L1 on f32 CUDA tensors (loss.h has the contracts), all on rt->stream.
 *
 * The forward writes the scalar loss [1] on the device; nothing comes back to the host.
 * Its sum is deterministic without float atomics: per-element (per-row) terms in double,
 * a fixed grid (its size a function of the element count only) whose blocks sum a fixed
 * subset each in a fixed tree order, then one block sums the block results in order.
 * The backward reads dloss from device memory inside its kernel (no host sync).
 *
 * Labels are i32 on the device. An out-of-range label cannot be reported without a sync:
 * its row's loss is NaN (and its row of dx gets NaN), so the training NaN guard stops the
 * run; with rt->debug_sync on, a device flag is read after the kernel and the program stops
 * with the CPU's message. */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"

#include "core/arena.h"
#include "ops/loss.h"
#include "ops/ops_internal.h"

#define LOSS_THREADS 256     /* threads per block of every loss kernel */
#define LOSS_MAX_BLOCKS 1024 /* blocks of the partial sums (fewer for small inputs) */
#define CE_ROWS_PER_BLOCK (LOSS_THREADS / 32) /* softmax CE: one warp per row */

typedef enum { LOSS_BCE, LOSS_CE, LOSS_SMOOTH_L1 } loss_kind;
static const char *const loss_name[] = {"bce_logits", "softmax_ce", "smooth_l1"};

/* ---- the deterministic sum ---------------------------------------------------------------- */

/* The block's sum of v: a shuffle tree inside each warp, then the warp sums in warp order.
 * Valid in thread 0. Called once per kernel by every thread of a LOSS_THREADS block. */
__device__ static double block_sum(double v) {
    __shared__ double warp_sums[LOSS_THREADS / 32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = v;
    __syncthreads();
    double s = 0;
    if (threadIdx.x == 0)
        for (int w = 0; w < LOSS_THREADS / 32; w++) s += warp_sums[w];
    return s;
}

/* partial[b] = Σ term(i) over the elements i of block b (grid-stride, fixed by n and the
 * grid size). */
template <class Term>
__global__ static void loss_partial_kernel(Term term, int64_t n, double *partial) {
    double acc = 0;
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) acc += term(i);
    double s = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* loss = Σ partial / normaliser, rounded once to f32 (one block). */
__global__ static void loss_final_kernel(const double *partial, int nblocks, double normaliser, float *loss) {
    double acc = 0;
    for (int b = threadIdx.x; b < nblocks; b += blockDim.x) acc += partial[b];
    double s = block_sum(acc);
    if (threadIdx.x == 0) loss[0] = (float)(s / normaliser);
}

/* Writes loss = Σ_{i<n} term(i) / normaliser. Scratch: one double per partial block. */
template <class Term>
static void loss_reduce(runtime *rt, Term term, int64_t n, double normaliser, float *loss) {
    cudaStream_t st = (cudaStream_t)rt->stream;
    int64_t want = (n + LOSS_THREADS - 1) / LOSS_THREADS;
    int nblocks = (int)(want < LOSS_MAX_BLOCKS ? want : LOSS_MAX_BLOCKS);
    arena_mark m = arena_get_mark(&rt->dev);
    double *partial = (double *)arena_alloc(&rt->dev, (size_t)(nblocks + 1) * sizeof(double));
    if (nblocks > 0) {
        loss_partial_kernel<<<nblocks, LOSS_THREADS, 0, st>>>(term, n, partial);
        KERNEL_CHECK(rt->debug_sync, st);
    }
    /* n = 0 (no RoIs) gives 0, as the CPU's empty sum */
    loss_final_kernel<<<1, LOSS_THREADS, 0, st>>>(partial, nblocks, normaliser, loss);
    KERNEL_CHECK(rt->debug_sync, st);
    arena_release(&rt->dev, m); /* later users are queued on the same stream */
}

/* ---- per-element terms (in double, as the CPU) ------------------------------------------ */

__device__ static double weight_at(const float *w, int64_t i) { return w ? (double)w[i] : 1.0; }

/* ℓ = max(x, 0) − x·t + log(1 + e^−|x|): log(1 + e^x) − x·t with no overflow. */
struct bce_term {
    const float *x, *t, *w;
    __device__ double operator()(int64_t i) const {
        double v = x[i];
        return weight_at(w, i) * ((v > 0 ? v : 0) - __dmul_rn(v, (double)t[i]) + log1p(exp(-fabs(v))));
    }
};

/* detectron2's smooth_l1_loss: β below 1e-5 is the plain L1 loss. */
struct sl1_term {
    const float *x, *t, *w;
    double beta;
    __device__ double operator()(int64_t i) const {
        double d = fabs((double)x[i] - t[i]);
        double l = beta < 1e-5 ? d : (d < beta ? 0.5 * d * d / beta : d - 0.5 * beta);
        return weight_at(w, i) * l;
    }
};

/* Per-row values already in a buffer (softmax CE). */
struct buffer_term {
    const double *v;
    __device__ double operator()(int64_t i) const { return v[i]; }
};

/* ---- checks -------------------------------------------------------------------------------- */

/* The CPU's loss_check on GPU tensors; `scalar` is the loss (forward) or dloss (backward). */
static void loss_check_gpu(loss_kind k, const tensor *x, const tensor *t, const tensor *w, double normaliser,
                           const tensor *scalar) {
    const char *op = loss_name[k];
    char s[128];
    CHECK(x != NULL, "%s: x is missing", op);
    if (x->dtype != DTYPE_F32 || x->device != DEVICE_CUDA)
        FATAL("%s: x must be f32 on the GPU, got %s", op, tensor_str(x, s, sizeof s));
    CHECK(t != NULL, "%s: the %s are missing", op, k == LOSS_CE ? "labels" : "targets");
    CHECK(normaliser > 0 && isfinite(normaliser), "%s: the normaliser must be positive, got %g", op, normaliser);
    if (k == LOSS_CE) {
        CHECK(x->ndim == 2 && x->shape[1] > 0, "%s: logits must be [R, K], got %s", op, tensor_str(x, s, sizeof s));
        const int rows[1] = {x->shape[0]}; /* TSHAPE is C only (compound literal) */
        tensor_expect(t, DTYPE_I32, DEVICE_CUDA, rows, 1, "softmax_ce labels [R]");
        if (w) tensor_expect(w, DTYPE_F32, DEVICE_CUDA, rows, 1, "softmax_ce weights [R]");
    } else {
        ops_expect_same_shape(op, t, x);
        if (w) ops_expect_same_shape(op, w, x);
    }
    const int one[1] = {1};
    CHECK(scalar != NULL, "%s: the loss scalar is missing", op);
    tensor_expect(scalar, DTYPE_F32, DEVICE_CUDA, one, 1, op);
}

static void loss_backward_check(loss_kind k, const tensor *x, const tensor *t, const tensor *w, double normaliser,
                                const tensor *dloss, const tensor *dx) {
    loss_check_gpu(k, x, t, w, normaliser, dloss);
    CHECK(dx != NULL, "%s backward: dx is missing", loss_name[k]);
    ops_expect_same_shape("loss backward dx", dx, x);
}

static const float *data_or_null(const tensor *t) { return t ? (const float *)t->data : NULL; }

/* ---- BCE with logits ------------------------------------------------------------------------ */

/* dx += dloss/normaliser · w · (σ(x) − t), σ written so that e^ never overflows. */
__global__ static void bce_backward_kernel(int64_t n, const float *x, const float *t, const float *w,
                                           const float *dloss, double normaliser, float *dx) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double g = (double)dloss[0] / normaliser;
    double v = x[i], sig = v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v));
    dx[i] += (float)(g * weight_at(w, i) * (sig - t[i]));
}

extern "C" void bce_logits_forward_gpu(runtime *rt, const tensor *x, const tensor *t, const tensor *w,
                                       double normaliser, tensor *loss) {
    loss_check_gpu(LOSS_BCE, x, t, w, normaliser, loss);
    bce_term term = {(const float *)x->data, (const float *)t->data, data_or_null(w)};
    loss_reduce(rt, term, tensor_numel(x), normaliser, (float *)loss->data);
}

extern "C" void bce_logits_backward_gpu(runtime *rt, const tensor *x, const tensor *t, const tensor *w,
                                        double normaliser, const tensor *dloss, tensor *dx) {
    loss_backward_check(LOSS_BCE, x, t, w, normaliser, dloss, dx);
    int64_t n = tensor_numel(x);
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    bce_backward_kernel<<<cuda_blocks(n, LOSS_THREADS), LOSS_THREADS, 0, st>>>(
        n, (const float *)x->data, (const float *)t->data, data_or_null(w), (const float *)dloss->data, normaliser,
        (float *)dx->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

/* ---- smooth L1 ---------------------------------------------------------------------------------- */

/* dx += dloss/normaliser · w · ∂ℓ/∂d: d/β inside the quadratic zone, else sign(d) (0 at 0). */
__global__ static void sl1_backward_kernel(int64_t n, double beta, const float *x, const float *t, const float *w,
                                           const float *dloss, double normaliser, float *dx) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double g = (double)dloss[0] / normaliser;
    double d = (double)x[i] - t[i];
    double dl = beta >= 1e-5 && fabs(d) < beta ? d / beta : (double)((d > 0) - (d < 0));
    dx[i] += (float)(g * weight_at(w, i) * dl);
}

extern "C" void smooth_l1_forward_gpu(runtime *rt, double beta, const tensor *x, const tensor *t, const tensor *w,
                                      double normaliser, tensor *loss) {
    loss_check_gpu(LOSS_SMOOTH_L1, x, t, w, normaliser, loss);
    sl1_term term = {(const float *)x->data, (const float *)t->data, data_or_null(w), beta};
    loss_reduce(rt, term, tensor_numel(x), normaliser, (float *)loss->data);
}

extern "C" void smooth_l1_backward_gpu(runtime *rt, double beta, const tensor *x, const tensor *t, const tensor *w,
                                       double normaliser, const tensor *dloss, tensor *dx) {
    loss_backward_check(LOSS_SMOOTH_L1, x, t, w, normaliser, dloss, dx);
    int64_t n = tensor_numel(x);
    if (n == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    sl1_backward_kernel<<<cuda_blocks(n, LOSS_THREADS), LOSS_THREADS, 0, st>>>(
        n, beta, (const float *)x->data, (const float *)t->data, data_or_null(w), (const float *)dloss->data,
        normaliser, (float *)dx->data);
    KERNEL_CHECK(rt->debug_sync, st);
}

/* ---- softmax cross-entropy ------------------------------------------------------------------ */

/* The row's max and Σ e^(x − max) over one warp: each lane takes every 32nd class, then a
 * shuffle tree in a fixed order; every lane gets both. */
__device__ static void ce_row_stats(const float *xr, int K, double *m_out, double *s_out) {
    int lane = threadIdx.x & 31;
    float m = -INFINITY;
    for (int k = lane; k < K; k += 32) m = xr[k] > m ? xr[k] : m;
    for (int o = 16; o > 0; o >>= 1) {
        float other = __shfl_xor_sync(0xffffffffu, m, o);
        m = other > m ? other : m;
    }
    double s = 0;
    for (int k = lane; k < K; k += 32) s += exp((double)xr[k] - m);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    *m_out = m;
    *s_out = s;
}

/* Whether the label is usable; if not, records the row for the debug check: bad[0] keeps
 * the largest R − r, i.e. the first bad row (integer atomics: the result is exact). */
__device__ static bool ce_label_ok(int label, int K, int r, int R, int *bad) {
    if (label >= 0 && label < K) return true;
    if (bad) atomicMax(bad, R - r);
    return false;
}

/* buf[r] = w_r · (logsumexp(x_r) − x_r[label_r]), NaN for a bad label. One warp per row. */
__global__ static void ce_forward_kernel(int R, int K, const float *x, const int32_t *labels, const float *w,
                                         double *buf, int *bad) {
    int r = blockIdx.x * CE_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (r >= R) return; /* whole warps leave together: the shuffles stay full */
    const float *xr = x + (int64_t)r * K;
    double m, s;
    ce_row_stats(xr, K, &m, &s);
    if ((threadIdx.x & 31) != 0) return;
    int label = labels[r];
    buf[r] = ce_label_ok(label, K, r, R, bad) ? weight_at(w, r) * (m + log(s) - xr[label]) : (double)NAN;
}

/* dx_r += dloss/normaliser · w_r · (softmax(x_r) − onehot(label_r)); a bad label's row gets NaN. */
__global__ static void ce_backward_kernel(int R, int K, const float *x, const int32_t *labels, const float *w,
                                          const float *dloss, double normaliser, float *dx, int *bad) {
    int r = blockIdx.x * CE_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (r >= R) return;
    const float *xr = x + (int64_t)r * K;
    float *dr = dx + (int64_t)r * K;
    double m, s;
    ce_row_stats(xr, K, &m, &s);
    int label = labels[r];
    bool ok = ce_label_ok(label, K, r, R, (threadIdx.x & 31) == 0 ? bad : NULL);
    double gr = (double)dloss[0] / normaliser * weight_at(w, r);
    for (int k = threadIdx.x & 31; k < K; k += 32)
        dr[k] += ok ? (float)(gr * (exp((double)xr[k] - m) / s - (k == label))) : NAN;
}

/* Debug mode only (it synchronises): stops with the CPU's message if a kernel flagged a label. */
static void ce_debug_label_check(runtime *rt, const int *bad_dev, const tensor *labels, int K) {
    cudaStream_t st = (cudaStream_t)rt->stream;
    int bad = 0;
    CUDA_CHECK(cudaMemcpyAsync(&bad, bad_dev, sizeof bad, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    if (!bad) return;
    int r = labels->shape[0] - bad;
    int32_t label = 0;
    CUDA_CHECK(cudaMemcpyAsync(&label, (const int32_t *)labels->data + r, sizeof label, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    FATAL("softmax_ce: label %d of row %d is outside [0, %d)", label, r, K);
}

/* The device flag for ce_label_ok: zeroed scratch in debug mode, NULL otherwise. */
static int *ce_bad_flag(runtime *rt) {
    if (!rt->debug_sync) return NULL;
    int *bad = (int *)arena_alloc(&rt->dev, sizeof(int));
    CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(int), (cudaStream_t)rt->stream));
    return bad;
}

extern "C" void softmax_ce_forward_gpu(runtime *rt, const tensor *x, const tensor *labels, const tensor *w,
                                       double normaliser, tensor *loss) {
    loss_check_gpu(LOSS_CE, x, labels, w, normaliser, loss);
    int R = x->shape[0], K = x->shape[1];
    cudaStream_t st = (cudaStream_t)rt->stream;
    arena_mark m = arena_get_mark(&rt->dev);
    double *buf = (double *)arena_alloc(&rt->dev, ((size_t)R + 1) * sizeof(double));
    int *bad = ce_bad_flag(rt);
    if (R > 0) {
        ce_forward_kernel<<<cuda_blocks(R, CE_ROWS_PER_BLOCK), LOSS_THREADS, 0, st>>>(
            R, K, (const float *)x->data, (const int32_t *)labels->data, data_or_null(w), buf, bad);
        KERNEL_CHECK(rt->debug_sync, st);
        if (bad) ce_debug_label_check(rt, bad, labels, K);
    }
    buffer_term term = {buf};
    loss_reduce(rt, term, R, normaliser, (float *)loss->data);
    arena_release(&rt->dev, m);
}

extern "C" void softmax_ce_backward_gpu(runtime *rt, const tensor *x, const tensor *labels, const tensor *w,
                                        double normaliser, const tensor *dloss, tensor *dx) {
    loss_backward_check(LOSS_CE, x, labels, w, normaliser, dloss, dx);
    int R = x->shape[0], K = x->shape[1];
    if (R == 0) return;
    cudaStream_t st = (cudaStream_t)rt->stream;
    arena_mark m = arena_get_mark(&rt->dev);
    int *bad = ce_bad_flag(rt);
    ce_backward_kernel<<<cuda_blocks(R, CE_ROWS_PER_BLOCK), LOSS_THREADS, 0, st>>>(
        R, K, (const float *)x->data, (const int32_t *)labels->data, data_or_null(w), (const float *)dloss->data,
        normaliser, (float *)dx->data, bad);
    KERNEL_CHECK(rt->debug_sync, st);
    if (bad) ce_debug_label_check(rt, bad, labels, K);
    arena_release(&rt->dev, m);
}

/* ops_util.cu: GPU helpers shared by the op twins (ops_internal.h), the CUDA side of
 * src/ops/ops_internal.c.
 *
 * ops_colsum_add_gpu: out[c] += Σ_r a[r·cols + c], the bias gradient of every layer with a
 * bias. Deterministic by construction (DESIGN §3, STYLE 13): no atomics, and every sum is
 * taken in an order fixed by the shape alone, never by scheduling:
 *   1. colsum_chunks_kernel: block (chunk, tile) sums rows [chunk·256, chunk·256 + 256)
 *      of 32 columns into part[chunk, c]; inside the block, row lane ty (0..7) sums rows
 *      ty, ty + 8, ... of the chunk in order, and lane 0 adds the 8 lane sums in order.
 *   2. colsum_finish_kernel: one block per tile sums part[0..nchunks) the same way and
 *      adds the total to out[c].
 * Accumulation is in double (H100's f64 rate is ample for a memory-bound reduction), so
 * the only f32 rounding is the final out[c] += (float)total, as in the CPU reference. The
 * partial sums are not the CPU's, so GPU and CPU agree to rounding, not bit for bit. */
#include "cuda_check.h"

#include "core/arena.h"
#include "ops/ops_internal.h"

#define COLSUM_TILE 32              /* columns per block: a warp reads 128 contiguous bytes */
#define COLSUM_LANES 8              /* row lanes per block (blockDim.y) */
#define COLSUM_CHUNK OPS_REDUCE_CHUNK /* rows per partial sum, as on the CPU */
#define GRID_Y_MAX 65535

/* The sum over rows [r0, r1) of column c of a [*, cols] for the block's thread (tx, ty),
 * c = tile·32 + tx; valid in the threads with ty == 0. All threads of the block must call
 * it (it synchronises), including those whose c is past the last column. */
template <typename T>
__device__ static double tile_colsum(const T *a, int64_t r0, int64_t r1, int cols, int c,
                                     double (*sh)[COLSUM_TILE]) {
    const int tx = threadIdx.x, ty = threadIdx.y;
    double s = 0;
    if (c < cols)
        for (int64_t r = r0 + ty; r < r1; r += COLSUM_LANES) s += (double)a[r * cols + c];
    sh[ty][tx] = s;
    __syncthreads();
    double total = 0;
    if (ty == 0)
        for (int l = 0; l < COLSUM_LANES; l++) total += sh[l][tx];
    __syncthreads(); /* sh is reused by the caller's next tile */
    return total;
}

/* part [nchunks, cols] (double): part[chunk, c] = Σ of a's column c over the chunk's rows.
 * grid.x = chunk; grid.y strides over the column tiles. */
__global__ static void colsum_chunks_kernel(const float *a, int64_t rows, int cols, double *part) {
    __shared__ double sh[COLSUM_LANES][COLSUM_TILE];
    const int64_t chunk = blockIdx.x;
    const int64_t r0 = chunk * COLSUM_CHUNK;
    const int64_t r1 = r0 + COLSUM_CHUNK < rows ? r0 + COLSUM_CHUNK : rows;
    const int ntiles = (cols + COLSUM_TILE - 1) / COLSUM_TILE;
    for (int tile = blockIdx.y; tile < ntiles; tile += gridDim.y) { /* uniform per block */
        const int c = tile * COLSUM_TILE + threadIdx.x;
        double s = tile_colsum(a, r0, r1, cols, c, sh);
        if (threadIdx.y == 0 && c < cols) part[chunk * cols + c] = s;
    }
}

/* out[c] += (float)Σ_chunk part[chunk, c], chunks combined as in tile_colsum. grid.x = tile. */
__global__ static void colsum_finish_kernel(const double *part, int64_t nchunks, int cols, float *out) {
    __shared__ double sh[COLSUM_LANES][COLSUM_TILE];
    const int c = blockIdx.x * COLSUM_TILE + threadIdx.x;
    double s = tile_colsum(part, 0, nchunks, cols, c, sh);
    if (threadIdx.y == 0 && c < cols) out[c] += (float)s;
}

/* a [rows, cols] f32, out [cols] f32 accumulated; both on the GPU. Scratch: nchunks·cols
 * doubles from rt->dev (538 KB for FPN P2 of an 800×1344 canvas, 67,200 × 256), released
 * on return: later users of that memory queue on the same stream, so the reuse is ordered
 * after these kernels. */
extern "C" void ops_colsum_add_gpu(runtime *rt, const float *a, int64_t rows, int cols, float *out) {
    CHECK(rows >= 0 && cols >= 0, "ops_colsum_add_gpu: bad shape [%lld, %d]", (long long)rows, cols);
    if (rows == 0 || cols == 0) return;
    const int64_t nchunks = (rows + COLSUM_CHUNK - 1) / COLSUM_CHUNK;
    const int ntiles = (cols + COLSUM_TILE - 1) / COLSUM_TILE;
    CHECK(nchunks <= INT32_MAX, "ops_colsum_add_gpu: %lld rows are more than one launch covers",
          (long long)rows);
    cudaStream_t stream = (cudaStream_t)rt->stream;
    arena_mark m = arena_get_mark(&rt->dev);
    double *part = (double *)arena_alloc(&rt->dev, (size_t)nchunks * (size_t)cols * sizeof(double));
    const dim3 block(COLSUM_TILE, COLSUM_LANES);
    const dim3 grid1((unsigned int)nchunks, (unsigned int)(ntiles < GRID_Y_MAX ? ntiles : GRID_Y_MAX));
    colsum_chunks_kernel<<<grid1, block, 0, stream>>>(a, rows, cols, part);
    KERNEL_CHECK(rt->debug_sync, stream);
    colsum_finish_kernel<<<(unsigned int)ntiles, block, 0, stream>>>(part, nchunks, cols, out);
    KERNEL_CHECK(rt->debug_sync, stream);
    arena_release(&rt->dev, m);
}

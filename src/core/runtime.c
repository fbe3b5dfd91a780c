/* runtime.c: device choice, threads, OpenBLAS check, arenas and step helpers. */
#include "runtime.h"
#include "check.h"
#include "log.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

runtime_config runtime_config_default(void) {
    runtime_config c;
    memset(&c, 0, sizeof c);
    c.device = "auto";
    c.debug_sync = -1;
    return c;
}

const char *runtime_blas_config(void) { return openblas_get_config(); }

const char *runtime_blas_threading(void) {
    switch (openblas_get_parallel()) {
    case 0: return "sequential";
    case 1: return "pthreads";
    case 2: return "OpenMP";
    default: return "unknown";
    }
}

/* DESIGN §1: Debian's pthread OpenBLAS oversubscribes inside our OpenMP regions and breaks
 * the fixed-thread-count determinism, and it wins the alternatives links when both builds
 * are installed. The build links the OpenMP one by path; this catches any other route. */
static void check_blas(void) {
    if (openblas_get_parallel() != 2)
        die("OpenBLAS in use is the %s build (%s); maskrcnn needs the OpenMP build: install "
            "libopenblas-openmp-dev and rebuild (the Makefile links it by path), or check "
            "LD_LIBRARY_PATH", runtime_blas_threading(), openblas_get_config());
}

/* "cuda" or "cuda:N" -> N; -1 when the string is not a CUDA device name. */
static int parse_cuda_index(const char *s) {
    if (strcmp(s, "cuda") == 0) return 0;
    if (strncmp(s, "cuda:", 5) != 0) return -1;
    char *end;
    long v = strtol(s + 5, &end, 10);
    return (*end == 0 && end != s + 5 && v >= 0 && v < 64) ? (int)v : -1;
}

static void choose_device(runtime *rt, const char *want) {
    char why[200];
    rt->device = DEVICE_CPU;
    rt->gpu_index = -1;
    if (strcmp(want, "cpu") == 0) {
        snprintf(rt->device_reason, sizeof rt->device_reason, "requested");
        return;
    }
    int index = strcmp(want, "auto") == 0 ? 0 : parse_cuda_index(want);
    if (index < 0) die("unknown device '%s' (expected auto, cpu, cuda or cuda:N)", want);
    if (!gpu_probe(index, &rt->gpu, why, sizeof why)) {
        if (strcmp(want, "auto") != 0) die("device %s was requested but cannot be used: %s", want, why);
        snprintf(rt->device_reason, sizeof rt->device_reason, "auto: no usable GPU: %s", why);
        return;
    }
    rt->device = DEVICE_CUDA;
    rt->gpu_index = index;
    snprintf(rt->device_reason, sizeof rt->device_reason, "%s", strcmp(want, "auto") == 0 ?
             "auto: a usable GPU was found" : "requested");
}

/* DEBUG=1 builds synchronise after every GPU launch; MRC_SYNC=1 does it in any build. */
static int default_debug_sync(void) {
#ifdef MRC_DEBUG
    return 1;
#else
    const char *env = getenv("MRC_SYNC");
    return env && strcmp(env, "1") == 0;
#endif
}

void runtime_init(runtime *rt, const runtime_config *cfg) {
    runtime_config def = runtime_config_default();
    if (!cfg) cfg = &def;
    memset(rt, 0, sizeof *rt);
    check_blas();
    if (cfg->threads > 0) {
        omp_set_num_threads(cfg->threads);
        openblas_set_num_threads(cfg->threads);
    }
    rt->threads = omp_get_max_threads();
    rt->debug_sync = cfg->debug_sync >= 0 ? cfg->debug_sync : default_debug_sync();
    choose_device(rt, cfg->device ? cfg->device : "auto");
    if (rt->device == DEVICE_CUDA) {
        gpu_open(rt->gpu_index, rt->debug_sync, &rt->stream, &rt->copy_stream, &rt->cublas, &rt->cudnn);
        snprintf(rt->device_desc, sizeof rt->device_desc, "cuda:%d (%s, cc %d.%d)", rt->gpu_index,
                 rt->gpu.name, rt->gpu.cc_major, rt->gpu.cc_minor);
    } else {
        snprintf(rt->device_desc, sizeof rt->device_desc, "cpu");
    }
    arena_init(&rt->host, "host", DEVICE_CPU, cfg->host_block_bytes, 0);
    arena_init(&rt->dev, "cuda", DEVICE_CUDA, cfg->gpu_block_bytes ? cfg->gpu_block_bytes :
               ((size_t)256 << 20), cfg->gpu_limit_bytes);
    tape_init(&rt->tape);
    if (!cfg->quiet)
        log_info("device: %s (%s); %d CPU threads; OpenBLAS %s", rt->device_desc, rt->device_reason,
                 rt->threads, runtime_blas_threading());
}

void runtime_free(runtime *rt) {
    tape_free(&rt->tape);
    arena_free(&rt->host);
    arena_free(&rt->dev);
    if (rt->device == DEVICE_CUDA) gpu_close(rt->stream, rt->copy_stream, rt->cublas, rt->cudnn);
    rt->stream = rt->copy_stream = rt->cublas = rt->cudnn = NULL;
}

arena *runtime_arena(runtime *rt, device d) {
    CHECK(d == DEVICE_CPU || rt->device == DEVICE_CUDA, "GPU memory requested on a CPU runtime");
    return d == DEVICE_CUDA ? &rt->dev : &rt->host;
}

tensor *runtime_tensor(runtime *rt, device d, dtype t, const int *shape, int ndim) {
    tensor *x = arena_alloc(&rt->host, sizeof *x);
    *x = tensor_view(NULL, t, d, shape, ndim);
    x->data = arena_alloc(runtime_arena(rt, d), tensor_bytes(x));
    return x;
}

int runtime_needs_grad(const runtime *rt, const tensor *const *inputs, int n) {
    if (!rt->tape.enabled) return 0;
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i]->requires_grad) return 1;
    return 0;
}

void *runtime_record(runtime *rt, const char *name, tape_fn fn, size_t ctx_bytes) {
    return tape_record(&rt->tape, &rt->host, name, fn, ctx_bytes);
}

void *tensor_grad(runtime *rt, tensor *t) {
    char s[128];
    CHECK(t->requires_grad, "gradient asked of %s%s%s, which does not need one", t->name ? t->name : "",
          t->name ? " " : "", tensor_str(t, s, sizeof s));
    if (!t->grad) t->grad = arena_calloc(runtime_arena(rt, t->device), tensor_bytes(t));
    return t->grad;
}

tensor *runtime_reshape(runtime *rt, tensor *t, const int *shape, int ndim) {
    if (t->requires_grad) tensor_grad(rt, t);
    tensor *v = arena_alloc(&rt->host, sizeof *v);
    *v = tensor_reshape(t, shape, ndim);
    return v;
}

tensor *runtime_rows(runtime *rt, tensor *t, int start, int count) {
    if (t->requires_grad) tensor_grad(rt, t);
    tensor *v = arena_alloc(&rt->host, sizeof *v);
    *v = tensor_rows(t, start, count);
    return v;
}

void runtime_backward(runtime *rt, tensor *loss) {
    char s[128];
    CHECK(tensor_numel(loss) == 1 && (loss->dtype == DTYPE_F32 || loss->dtype == DTYPE_F64),
          "backward starts from a scalar f32/f64 loss, got %s", tensor_str(loss, s, sizeof s));
    CHECK(loss->requires_grad, "backward from a loss that does not depend on any parameter");
    void *g = tensor_grad(rt, loss);
    if (loss->dtype == DTYPE_F64) {
        CHECK(loss->device == DEVICE_CPU);
        *(double *)g = 1.0;
    } else if (loss->device == DEVICE_CUDA) {
        gpu_fill_f32(g, 1.0f, 1);
    } else {
        *(float *)g = 1.0f;
    }
    tape_backward(&rt->tape, rt);
}

void runtime_step_end(runtime *rt) {
    tape_clear(&rt->tape);
    arena_reset(&rt->host);
    arena_reset(&rt->dev);
}

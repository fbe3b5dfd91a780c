/* test_runtime.c: device choice and its reasons, thread setup, the OpenBLAS build check,
 * step tensors and gradients from the arenas. */
#include "core/check.h"
#include "core/runtime.h"
#include "test.h"

#include <omp.h>

static void test_cpu_runtime(void) {
    runtime_config cfg = runtime_config_default();
    cfg.device = "cpu";
    cfg.threads = 2;
    cfg.quiet = 1;
    runtime rt;
    runtime_init(&rt, &cfg);
    EXPECT(rt.device == DEVICE_CPU && rt.gpu_index == -1);
    EXPECT(strcmp(rt.device_reason, "requested") == 0, "reason '%s'", rt.device_reason);
    EXPECT(rt.threads == 2 && omp_get_max_threads() == 2, "threads %d", rt.threads);
    EXPECT(strcmp(runtime_blas_threading(), "OpenMP") == 0, "OpenBLAS threading: %s (%s)",
           runtime_blas_threading(), runtime_blas_config());
    tensor *t = runtime_tensor(&rt, DEVICE_CPU, DTYPE_F32, TSHAPE(2, 8, 8, 3));
    EXPECT(t->data != NULL && tensor_numel(t) == 384 && t->grad == NULL && !t->requires_grad);
    EXPECT(rt.host.in_use >= 384 * 4);
    t->requires_grad = 1; /* as an op does for an output that depends on a parameter */
    float *g = tensor_grad(&rt, t);
    EXPECT(g == t->grad && g[0] == 0.0f && g[383] == 0.0f, "gradients start at zero");
    EXPECT(tensor_grad(&rt, t) == g, "a second tensor_grad returns the same buffer");
    runtime_step_end(&rt);
    EXPECT(rt.host.in_use == 0);
    runtime_free(&rt);
}

/* auto picks the GPU when it is usable, and otherwise says why not. */
static void test_auto_explains_its_choice(void) {
    runtime_config cfg = runtime_config_default();
    cfg.quiet = 1;
    runtime rt;
    runtime_init(&rt, &cfg);
    char why[256];
    int have = test_have_gpu(why, sizeof why);
    if (have) {
        EXPECT(rt.device == DEVICE_CUDA && rt.cublas && rt.cudnn && rt.stream, "auto with a GPU");
        EXPECT(strncmp(rt.device_desc, "cuda:0 (", 8) == 0, "desc '%s'", rt.device_desc);
    } else {
        EXPECT(rt.device == DEVICE_CPU);
        EXPECT(strncmp(rt.device_reason, "auto: no usable GPU: ", 21) == 0 && strstr(rt.device_reason, why),
               "reason '%s' must include the probe's '%s'", rt.device_reason, why);
        printf("  auto chose the CPU: %s\n", rt.device_reason);
    }
    runtime_free(&rt);
}

static void init_with_device(void *arg) {
    runtime_config cfg = runtime_config_default();
    cfg.device = arg;
    cfg.quiet = 1;
    runtime rt;
    runtime_init(&rt, &cfg);
    runtime_free(&rt);
}

static void test_bad_device_names(void) {
    char out[2048];
    int st = test_run_child(init_with_device, "tpu", out, sizeof out);
    EXPECT(st == 1 && strstr(out, "error: unknown device 'tpu' (expected auto, cpu, cuda or cuda:N)"),
           "status %d: %s", st, out);
    st = test_run_child(init_with_device, "cuda:x", out, sizeof out);
    EXPECT(st == 1 && strstr(out, "unknown device 'cuda:x'"), "status %d: %s", st, out);
}

static void test_requested_gpu_without_one(void) {
    char why[256], out[2048];
    if (test_have_gpu(why, sizeof why)) {
        int st = test_run_child(init_with_device, "cuda:63", out, sizeof out);
        EXPECT(st == 1 && strstr(out, "device cuda:63 was requested but cannot be used"), "status %d: %s", st, out);
        return;
    }
    int st = test_run_child(init_with_device, "cuda", out, sizeof out);
    EXPECT(st == 1, "exit status %d", st);
    EXPECT(strstr(out, "error: device cuda was requested but cannot be used: ") && strstr(out, why),
           "got: %s", out);
}

static void test_gpu_runtime_tensors(void) {
    REQUIRE_GPU();
    runtime_config cfg = runtime_config_default();
    cfg.device = "cuda";
    cfg.quiet = 1;
    runtime rt;
    runtime_init(&rt, &cfg);
    tensor *t = runtime_tensor(&rt, DEVICE_CUDA, DTYPE_F32, TSHAPE(4, 4));
    EXPECT(rt.dev.in_use >= 64);
    t->requires_grad = 1;
    float *g = tensor_grad(&rt, t), host[16];
    gpu_memcpy_d2h(host, g, sizeof host);
    EXPECT(host[0] == 0.0f && host[15] == 0.0f, "GPU gradients start at zero");
    runtime_step_end(&rt);
    EXPECT(rt.dev.in_use == 0);
    runtime_free(&rt);
}

int main(void) {
    RUN(test_cpu_runtime);
    /* The fork-based tests first: after CUDA is initialised in this process (auto picks
     * the GPU when there is one), children must not use CUDA. */
    RUN(test_bad_device_names);
    RUN(test_requested_gpu_without_one);
    RUN(test_auto_explains_its_choice);
    RUN(test_gpu_runtime_tensors);
    return test_finish("test_runtime");
}

/* test_check_cuda.cu: CUDA_CHECK, CUBLAS_CHECK, CUDNN_CHECK and KERNEL_CHECK stop with
 * "file:line: <call> failed: <status name>: <message>" and exit status 1. The status
 * strings come from the libraries themselves (cudaGetErrorName, cublasGetStatusName,
 * cudnnGetErrorString); the tests need no GPU except the launch check. */
#include "cuda_check.h"

extern "C" {
#include "test.h"
}

static void cuda_fail(void *) { TEST_AT_LINE(CUDA_CHECK(cudaErrorMemoryAllocation)); }
static void cublas_fail(void *) { TEST_AT_LINE(CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE)); }
static void cudnn_fail(void *) { TEST_AT_LINE(CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM)); }
/* A real call that fails with or without a GPU: an invalid copy direction (without a
 * driver, cudart reports the missing driver first). */
static void cuda_real_fail(void *) {
    int x = 0;
    TEST_AT_LINE(CUDA_CHECK(cudaMemcpy(&x, &x, sizeof x, (cudaMemcpyKind)77)));
}

__global__ static void noop_kernel() {}
static void bad_launch(void *) {
    noop_kernel<<<1, 4096>>>(); /* more threads per block than any GPU allows */
    TEST_AT_LINE(KERNEL_CHECK(1, 0));
}

static void expect_message(void (*fn)(void *), const char *tail) {
    char out[4096], want[512];
    int st = test_run_child(fn, NULL, out, sizeof out);
    EXPECT(st == 1, "exit status %d, output: %s", st, out);
    snprintf(want, sizeof want, "test_check_cuda.cu:%d: %s", test_child_line(out), tail);
    EXPECT(strstr(out, want) != NULL, "want '%s' in '%s'", want, out);
}

static void test_cuda_check(void) {
    expect_message(cuda_fail, "cudaErrorMemoryAllocation failed: cudaErrorMemoryAllocation: out of memory\n");
    char why[256], want[256];
    int gpu = test_have_gpu(why, sizeof why);
    snprintf(want, sizeof want, "cudaMemcpy(&x, &x, sizeof x, (cudaMemcpyKind)77) failed: %s: ",
             gpu ? "cudaErrorInvalidMemcpyDirection" : "cudaErrorInsufficientDriver");
    expect_message(cuda_real_fail, want);
}

static void test_cublas_check(void) {
    expect_message(cublas_fail, "CUBLAS_STATUS_INVALID_VALUE failed: CUBLAS_STATUS_INVALID_VALUE: ");
}

static void test_cudnn_check(void) {
    expect_message(cudnn_fail, "CUDNN_STATUS_BAD_PARAM failed: status 2000: CUDNN_STATUS_BAD_PARAM");
}

static void test_kernel_check(void) {
    REQUIRE_GPU();
    expect_message(bad_launch, "cudaGetLastError() failed: cudaErrorInvalidConfiguration: ");
}

int main(void) {
    RUN(test_cuda_check);
    RUN(test_cublas_check);
    RUN(test_cudnn_check);
    RUN(test_kernel_check);
    return test_finish("test_check_cuda");
}

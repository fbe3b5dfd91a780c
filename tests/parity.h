/* parity.h: the CPU-vs-GPU parity harness (header only, on top of test.h and ops_test.h).
 *
 * A parity case runs one op twice on the same inputs: the reference (the CPU kernels) and
 * the twin (the same op on another runtime, normally the GPU), then compares every output
 * by relative error: |twin − ref| <= atol + rtol·|ref|.
 *   - inputs are f32, drawn fresh each run (the seed is printed; PARITY_SEED=N repeats it);
 *   - outputs the op WRITES are poisoned with NaN before the run on both sides, so an
 *     output element the twin never writes fails;
 *   - outputs the op ACCUMULATES into (gradients) start from the same random pattern on both
 *     sides, so a twin that overwrites instead of adding fails;
 *   - on failure: the case, the output, the worst error and the first mismatches.
 * A case function receives the inputs and the outputs on one device and must only call the
 * op (through OPS_CALL, which picks the _cpu or _gpu kernel by the tensors' device).
 * fp32 parity runs with TF32 off (the twins use FMA math, DESIGN §3). */
#ifndef MRC_PARITY_H
#define MRC_PARITY_H

#include "ops_test.h"

#include <time.h>

#define PARITY_MAX 8

typedef void (*parity_fn)(runtime *rt, tensor **in, tensor **out, const void *args);

typedef struct parity_out {
    int ndim, shape[TENSOR_MAX_DIMS];
    int accumulate; /* 0: written (poisoned with NaN), 1: accumulated (random start) */
} parity_out;

typedef struct parity_result {
    int ok;
    double worst; /* the largest |twin − ref| over all outputs */
    char msg[640];
} parity_result;

static uint64_t parity_seed(void) {
    static uint64_t seed = 0;
    if (!seed) {
        const char *e = getenv("PARITY_SEED");
        seed = e ? strtoull(e, NULL, 10) : ((uint64_t)time(NULL) << 16) ^ (uint64_t)getpid();
        if (!seed) seed = 1;
        printf("parity seed %llu (PARITY_SEED=%llu repeats this run)\n", (unsigned long long)seed,
               (unsigned long long)seed);
    }
    return seed;
}

static tensor parity_on(device d, const tensor *host) {
    tensor t = tensor_alloc(host->dtype, d, host->shape, host->ndim);
    tensor_copy(&t, host);
    return t;
}

/* Runs ref on the CPU runtime and twin on twin_rt (inputs copied to its device), compares.
 * host_in: f32/i32 CPU tensors. Returns the result; records nothing (see PARITY_EXPECT). */
static parity_result parity_run(const char *what, runtime *ref_rt, parity_fn ref, runtime *twin_rt, parity_fn twin,
                                tensor **host_in, int nin, const parity_out *outs, int nout, const void *args,
                                double rtol, double atol) {
    parity_result res = {1, 0, ""};
    device d = twin_rt->device;
    tensor tin[PARITY_MAX], *tinp[PARITY_MAX], rout[PARITY_MAX], *routp[PARITY_MAX], tout[PARITY_MAX],
        *toutp[PARITY_MAX];
    CHECK(nin <= PARITY_MAX && nout <= PARITY_MAX);
    for (int i = 0; i < nin; i++) {
        tinp[i] = NULL;
        if (host_in[i]) tin[i] = parity_on(d, host_in[i]), tinp[i] = &tin[i];
    }
    for (int k = 0; k < nout; k++) {
        rout[k] = tensor_alloc(DTYPE_F32, DEVICE_CPU, outs[k].shape, outs[k].ndim);
        for (int64_t i = 0; i < tensor_numel(&rout[k]); i++)
            tensor_f32(&rout[k])[i] = outs[k].accumulate ? (float)ot_uniform(-1, 1) : NAN;
        tout[k] = parity_on(d, &rout[k]);
        routp[k] = &rout[k], toutp[k] = &tout[k];
    }
    ref(ref_rt, host_in, routp, args);
    twin(twin_rt, tinp, toutp, args);
    if (d == DEVICE_CUDA) gpu_synchronize();
    runtime_step_end(ref_rt);
    runtime_step_end(twin_rt);
    for (int k = 0; k < nout && res.ok; k++) {
        tensor back = tensor_alloc(DTYPE_F32, DEVICE_CPU, outs[k].shape, outs[k].ndim);
        tensor_copy(&back, &tout[k]);
        int64_t n = tensor_numel(&back), bad = 0, worst_i = -1, first[3];
        double worst = -1;
        for (int64_t i = 0; i < n; i++) {
            double a = tensor_f32(&back)[i], b = tensor_f32(&rout[k])[i], err = fabs(a - b);
            if (isnan(err)) err = INFINITY; /* a surviving poison, or a NaN on one side */
            if (!(err <= atol + rtol * fabs(b))) {
                if (bad < 3) first[bad] = i;
                bad++;
            }
            if (err > worst) worst = err, worst_i = i;
        }
        if (worst > res.worst) res.worst = worst;
        if (bad) {
            res.ok = 0;
            int m = snprintf(res.msg, sizeof res.msg,
                             "%s: output %d: %lld of %lld values differ (rtol %g, atol %g); worst at %lld: twin %.9g, "
                             "reference %.9g%s; first:",
                             what, k, (long long)bad, (long long)n, rtol, atol, (long long)worst_i,
                             (double)tensor_f32(&back)[worst_i], (double)tensor_f32(&rout[k])[worst_i],
                             isnan(tensor_f32(&back)[worst_i]) ? " (NaN: an element never written?)" : "");
            for (int j = 0; j < bad && j < 3 && m > 0 && (size_t)m < sizeof res.msg; j++)
                m += snprintf(res.msg + m, sizeof res.msg - (size_t)m, " [%lld] %.9g vs %.9g", (long long)first[j],
                              (double)tensor_f32(&back)[first[j]], (double)tensor_f32(&rout[k])[first[j]]);
        }
        tensor_free(&back);
    }
    for (int i = 0; i < nin; i++)
        if (tinp[i]) tensor_free(&tin[i]);
    for (int k = 0; k < nout; k++) tensor_free(&rout[k]), tensor_free(&tout[k]);
    return res;
}

#define PARITY_EXPECT(res)                                                     \
    do {                                                                       \
        parity_result r_ = (res);                                              \
        if (!r_.ok) test_fail_at(__FILE__, __LINE__, "%s", r_.msg);            \
    } while (0)

#endif

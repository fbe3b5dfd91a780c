/* optim.c: SGD, the schedule, clipping and parameter groups (see optim.h). */
#include "train/optim.h"

#include "core/check.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double lr_at(const lr_schedule *s, int64_t iter) {
    double f = 1.0;
    if (iter < s->warmup_iters) {
        double alpha = (double)iter / (double)s->warmup_iters;
        f = s->warmup_factor * (1.0 - alpha) + alpha;
    }
    for (int k = 0; k < s->n_steps; k++)
        if (s->steps[k] <= iter) f *= s->gamma; /* bisect_right: a step applies from its own iteration */
    return s->base_lr * f;
}

int name_matches(const char *p, const char *s) {
    for (; *p; p++, s++) {
        if (*p == '*') {
            while (p[1] == '*') p++;
            if (!p[1]) return 1;
            for (; *s; s++)
                if (name_matches(p + 1, s)) return 1;
            return 0;
        }
        if (!*s || (*p != '?' && *p != *s)) return 0;
    }
    return *s == 0;
}

static int is_norm_param(const char *name) {
    return strstr(name, ".norm.") || strstr(name, "_norm.") || strstr(name, ".bn") || strstr(name, ".gn");
}

static int is_bias(const char *name) {
    size_t n = strlen(name);
    return n >= 5 && !strcmp(name + n - 5, ".bias");
}

int param_group_init(param_group *g, tensor **params, int n, const sgd_config *c, const char *const *trainable,
                     int n_trainable, const char *const *frozen, int n_frozen, char *err, size_t errn) {
    memset(g, 0, sizeof *g);
    g->n = n, g->params = params;
    g->trainable = calloc((size_t)n + 1, 1);
    g->wd = calloc((size_t)n + 1, sizeof *g->wd);
    g->momentum = calloc((size_t)n + 1, sizeof *g->momentum);
    if (!g->trainable || !g->wd || !g->momentum) return param_group_free(g), mrc_fail(err, errn, "optimizer: out of memory");
    /* every pattern must match something */
    for (int k = 0; k < n_trainable + n_frozen; k++) {
        const char *pat = k < n_trainable ? trainable[k] : frozen[k - n_trainable];
        int hit = 0;
        for (int i = 0; i < n && !hit; i++) hit = name_matches(pat, params[i]->name ? params[i]->name : "");
        if (!hit)
            return param_group_free(g), mrc_fail(err, errn, "solver.%s pattern '%s' matches no parameter",
                                                 k < n_trainable ? "trainable" : "frozen", pat);
    }
    for (int i = 0; i < n; i++) {
        const char *name = params[i]->name ? params[i]->name : "";
        int train = n_trainable == 0;
        for (int k = 0; k < n_trainable; k++) train |= name_matches(trainable[k], name);
        for (int k = 0; k < n_frozen; k++)
            if (name_matches(frozen[k], name)) train = 0;
        g->trainable[i] = (uint8_t)(train && params[i]->grad != NULL);
        g->wd[i] = is_norm_param(name) ? c->weight_decay_norm : is_bias(name) ? c->weight_decay_bias : c->weight_decay;
        if (g->trainable[i]) {
            CHECK(params[i]->dtype == DTYPE_F32, "optimizer: %s is not f32", name);
            g->momentum[i] = tensor_alloc(DTYPE_F32, params[i]->device, params[i]->shape, params[i]->ndim);
            tensor_zero(&g->momentum[i]);
        }
    }
    return 0;
}

void param_group_free(param_group *g) {
    for (int i = 0; g->momentum && i < g->n; i++)
        if (g->momentum[i].data) tensor_free(&g->momentum[i]);
    free(g->trainable), free(g->wd), free(g->momentum);
    memset(g, 0, sizeof *g);
}

#if !MRC_CUDA
/* A build without CUDA has no GPU tensors; these only keep the dispatch below linkable. */
void sgd_update_gpu(void *stream, int debug_sync, float *p, const float *grad, float *buf, int64_t n, float lr, float momentum, float wd,
                    float scale, int first) {
    (void)stream, (void)debug_sync, (void)p, (void)grad, (void)buf, (void)n, (void)lr, (void)momentum, (void)wd, (void)scale, (void)first;
    FATAL("sgd_update_gpu: this build has no CUDA");
}
double sum_squares_gpu(void *stream, const float *x, int64_t n) {
    (void)stream, (void)x, (void)n;
    FATAL("sum_squares_gpu: this build has no CUDA");
}
#endif

double sum_squares_cpu(const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

double grad_global_norm(const param_group *g) {
    double s = 0;
    for (int i = 0; i < g->n; i++) {
        if (!g->trainable[i]) continue;
        const tensor *p = g->params[i];
        int64_t n = tensor_numel(p);
        s += p->device == DEVICE_CUDA ? sum_squares_gpu(g->stream, p->grad, n) : sum_squares_cpu(p->grad, n);
    }
    return sqrt(s);
}

void sgd_update_cpu(float *p, const float *grad, float *buf, int64_t n, float lr, float momentum, float wd, float scale,
                    int first) {
    for (int64_t i = 0; i < n; i++) {
        float gi = scale * grad[i] + wd * p[i];
        float b = first ? gi : momentum * buf[i] + gi;
        buf[i] = b;
        p[i] = p[i] - lr * b;
    }
}

double sgd_step(param_group *g, const sgd_config *c, double lr) {
    double norm = 0, scale = 1;
    if (c->clip_norm > 0) {
        norm = grad_global_norm(g);
        double coef = c->clip_norm / (norm + 1e-6);
        if (coef < 1) scale = coef;
    }
    for (int i = 0; i < g->n; i++) {
        if (!g->trainable[i]) continue;
        tensor *p = g->params[i];
        float lr_f = (float)lr, mom = (float)c->momentum, wd = (float)g->wd[i], sc = (float)scale;
        if (p->device == DEVICE_CUDA)
            sgd_update_gpu(g->stream, g->debug_sync, p->data, p->grad, g->momentum[i].data, tensor_numel(p), lr_f, mom, wd, sc, g->steps == 0);
        else
            sgd_update_cpu(p->data, p->grad, g->momentum[i].data, tensor_numel(p), lr_f, mom, wd, sc, g->steps == 0);
    }
    g->steps++;
    return norm;
}

void param_group_zero_grad(param_group *g) {
    for (int i = 0; i < g->n; i++) {
        if (!g->trainable[i]) continue;
        tensor t = *g->params[i];
        t.data = t.grad;
        tensor_zero(&t);
    }
}

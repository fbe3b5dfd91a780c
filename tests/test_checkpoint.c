/* test_checkpoint.c: training checkpoints (src/train/checkpoint.h): everything a resume needs
 * comes back exactly; weights-only loads name what is missing, unexpected or misshapen;
 * truncated, corrupted and foreign files get one clear line. */
#include "test.h"

#include "train/checkpoint.h"

#include <unistd.h>

static char dir[] = "/tmp/mrc_test_ckpt_XXXXXX";

static const char *tmp(const char *name) {
    static char p[4][300];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

typedef struct model {
    tensor t[4];
    tensor *list[4];
} model;

/* Four parameters; `head` may change the classifier's shape (another class count). */
static void make(model *m, int head, float base) {
    const char *names[4] = {"backbone.res2.0.conv1.weight", "backbone.res3.0.conv1.norm.weight", "roi_heads.cls_score.weight",
                            "roi_heads.cls_score.bias"};
    int shapes[4][2] = {{3, 2}, {4, 1}, {head, 5}, {head, 1}};
    for (int i = 0; i < 4; i++) {
        m->t[i] = tensor_alloc_param(DTYPE_F32, DEVICE_CPU, shapes[i], i == 3 ? 1 : 2, names[i]);
        for (int64_t k = 0; k < tensor_numel(&m->t[i]); k++)
            tensor_f32(&m->t[i])[k] = base + (float)(i * 100 + k), ((float *)m->t[i].grad)[k] = 0.01f * (float)(k + 1);
        m->list[i] = &m->t[i];
    }
}

static void unmake(model *m) {
    for (int i = 0; i < 4; i++) tensor_free(&m->t[i]);
}

static int same_values(const tensor *a, const tensor *b) {
    return tensor_numel(a) == tensor_numel(b) && !memcmp(a->data, b->data, tensor_bytes(a));
}

static void test_resume_round_trip(void) {
    model a, b;
    make(&a, 3, 1), make(&b, 3, -50);
    sgd_config c = {0.9, 1e-4, 0, 1e-4, 0};
    const char *frozen[] = {"backbone.res2.*"};
    param_group ga, gb;
    char err[512] = "", report[1024] = "";
    REQUIRE(param_group_init(&ga, a.list, 4, &c, NULL, 0, frozen, 1, err, sizeof err) == 0, "%s", err);
    REQUIRE(param_group_init(&gb, b.list, 4, &c, NULL, 0, frozen, 1, err, sizeof err) == 0, "%s", err);
    sgd_step(&ga, &c, 0.1), sgd_step(&ga, &c, 0.1); /* momentum non-zero */
    float cum[5] = {1, 2, 3, 4, 5};
    st_entry extra = {"loss.seesaw.cum_samples", DTYPE_F32, 1, {5}, cum};
    checkpoint_meta m = {1234, 2, 42, 2, {0}, 77, "{\"solver\": {\"lr\": 0.02}}"};
    m.cursor.pass = 3, m.cursor.pos = 17, m.cursor.batches = 76, m.cursor.n_bucket[0] = 2, m.cursor.bucket[0][0] = 5,
    m.cursor.bucket[0][1] = 9, m.cursor.n_bucket[1] = 1, m.cursor.bucket[1][0] = 4;
    REQUIRE(checkpoint_save(tmp("a.safetensors"), &ga, &extra, 1, &m, err, sizeof err) == 0, "%s", err);
    checkpoint_meta back;
    REQUIRE(checkpoint_load(tmp("a.safetensors"), &gb, CHECKPOINT_RESUME, &back, report, sizeof report, err, sizeof err) == 0,
            "%s", err);
    for (int i = 0; i < 4; i++) EXPECT(same_values(&a.t[i], &b.t[i]), "parameter %s", a.t[i].name);
    for (int i = 1; i < 4; i++) EXPECT(same_values(&ga.momentum[i], &gb.momentum[i]), "momentum of %s", a.t[i].name);
    EXPECT(gb.steps == 2 && back.iteration == 1234 && back.optimizer_steps == 2 && back.seed == 42 && back.threads == 2 &&
               back.next_batch == 77,
           "metadata: it %lld steps %lld seed %llu", (long long)back.iteration, (long long)back.optimizer_steps,
           (unsigned long long)back.seed);
    EXPECT(!memcmp(&back.cursor, &m.cursor, sizeof m.cursor), "sampler cursor");
    EXPECT(back.config_json && !strcmp(back.config_json, m.config_json), "config");
    EXPECT(strstr(report, "loaded 4 of 4 parameters (resume"), "%s", report);
    float got[5] = {0};
    tensor g5 = tensor_view(got, DTYPE_F32, DEVICE_CPU, (const int[]){5}, 1);
    REQUIRE(checkpoint_read_extra(tmp("a.safetensors"), "loss.seesaw.cum_samples", &g5, err, sizeof err) == 0, "%s", err);
    EXPECT(!memcmp(got, cum, sizeof cum), "loss state");
    checkpoint_meta_free(&back);
    /* the next step from the resumed state equals the next step of the original */
    sgd_step(&ga, &c, 0.1), sgd_step(&gb, &c, 0.1);
    for (int i = 0; i < 4; i++) EXPECT(same_values(&a.t[i], &b.t[i]), "after one more step: %s", a.t[i].name);
    param_group_free(&ga), param_group_free(&gb);
    unmake(&a), unmake(&b);
}

/* model.weights= from a model with another class count and one parameter more: the
 * classifier is misshapen, the extra one unexpected, the rest loaded. */
static void test_weights_only(void) {
    model a, b;
    make(&a, 3, 1), make(&b, 7, -50);
    sgd_config c = {0.9, 0, 0, 0, 0};
    param_group ga, gb;
    char err[512] = "", report[2048] = "";
    REQUIRE(param_group_init(&ga, a.list, 4, &c, NULL, 0, NULL, 0, err, sizeof err) == 0, "%s", err);
    tensor more = tensor_alloc_param(DTYPE_F32, DEVICE_CPU, (const int[]){2}, 1, "roi_heads.extra.weight");
    tensor *biglist[5] = {a.list[0], a.list[1], a.list[2], a.list[3], &more};
    param_group gbig;
    REQUIRE(param_group_init(&gbig, biglist, 5, &c, NULL, 0, NULL, 0, err, sizeof err) == 0, "%s", err);
    checkpoint_meta m = {0};
    REQUIRE(checkpoint_save(tmp("w.safetensors"), &gbig, NULL, 0, &m, err, sizeof err) == 0, "%s", err);
    REQUIRE(param_group_init(&gb, b.list, 4, &c, NULL, 0, NULL, 0, err, sizeof err) == 0, "%s", err);
    REQUIRE(checkpoint_load(tmp("w.safetensors"), &gb, CHECKPOINT_WEIGHTS, NULL, report, sizeof report, err, sizeof err) == 0,
            "%s", err);
    EXPECT(same_values(&a.t[0], &b.t[0]) && same_values(&a.t[1], &b.t[1]), "matching parameters loaded");
    EXPECT(tensor_f32(&b.t[2])[0] == -50 + 200, "a misshapen parameter is left as it was");
    EXPECT(strstr(report, "loaded 2 of 4 parameters") && strstr(report, "unexpected: roi_heads.extra.weight") &&
               strstr(report, "misshapen: roi_heads.cls_score.weight f32[3,5] in the file, f32[7,5] in the model") &&
               strstr(report, "(weights only)"),
           "report: %s", report);
    /* resuming from it must fail: the classifier does not fit */
    EXPECT(checkpoint_load(tmp("w.safetensors"), &gb, CHECKPOINT_RESUME, NULL, report, sizeof report, err, sizeof err) == -1 &&
               strstr(err, "cannot resume") && strstr(err, "misshapen"),
           "%s", err);
    param_group_free(&ga), param_group_free(&gb), param_group_free(&gbig);
    tensor_free(&more);
    unmake(&a), unmake(&b);
}

static void test_bad_files(void) {
    model a;
    make(&a, 3, 1);
    sgd_config c = {0.9, 0, 0, 0, 0};
    param_group g;
    char err[512] = "", report[512];
    REQUIRE(param_group_init(&g, a.list, 4, &c, NULL, 0, NULL, 0, err, sizeof err) == 0, "%s", err);
    checkpoint_meta m = {0};
    REQUIRE(checkpoint_save(tmp("ok.safetensors"), &g, NULL, 0, &m, err, sizeof err) == 0, "%s", err);
    /* truncated: the last bytes of the data are gone */
    FILE *f = fopen(tmp("ok.safetensors"), "rb");
    REQUIRE(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(tmp("cut.safetensors"), "wb");
    fwrite(buf, 1, n - 7, f);
    fclose(f);
    EXPECT(checkpoint_load(tmp("cut.safetensors"), &g, CHECKPOINT_RESUME, NULL, report, sizeof report, err, sizeof err) == -1 &&
               strstr(err, "cut.safetensors: ") && !strchr(err, '\n'),
           "truncated: %s", err);
    /* corrupted header */
    buf[10] = '#';
    f = fopen(tmp("bad.safetensors"), "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    EXPECT(checkpoint_load(tmp("bad.safetensors"), &g, CHECKPOINT_WEIGHTS, NULL, report, sizeof report, err, sizeof err) == -1 &&
               strstr(err, "bad.safetensors: "),
           "corrupted: %s", err);
    /* a plain safetensors file (no training metadata) cannot be resumed from */
    float x[6] = {0};
    st_entry e = {"backbone.res2.0.conv1.weight", DTYPE_F32, 2, {3, 2}, x};
    REQUIRE(safetensors_write(tmp("plain.safetensors"), &e, 1, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    EXPECT(checkpoint_load(tmp("plain.safetensors"), &g, CHECKPOINT_RESUME, NULL, report, sizeof report, err, sizeof err) == -1 &&
               strstr(err, "not a maskrcnn.c training checkpoint"),
           "%s", err);
    EXPECT(checkpoint_load(tmp("plain.safetensors"), &g, CHECKPOINT_WEIGHTS, NULL, report, sizeof report, err, sizeof err) == 0 &&
               strstr(report, "loaded 1 of 4"),
           "weights from a plain file: %s %s", err, report);
    param_group_free(&g);
    unmake(&a);
}

int main(void) {
    if (!mkdtemp(dir)) return fprintf(stderr, "test_checkpoint: cannot create %s\n", dir), 1;
    RUN(test_resume_round_trip);
    RUN(test_weights_only);
    RUN(test_bad_files);
    test_remove_tmpdir(dir);
    return test_finish("test_checkpoint");
}

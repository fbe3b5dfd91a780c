/* main.c: the `maskrcnn` command; subcommand dispatch only. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/selfcheck.h"
#include "data/data_cmd.h"
#include "data/stats.h"
#include "train/train_cmd.h"
#include "data/synth_cmd.h"
#include "eval/lvis_eval_cmd.h"
#include "model/info_cmd.h"
#include "eval/eval_cmd.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"selfcheck", selfcheck_main, "check the build, the libraries and the device; CPU sgemm rate"},
    {"stats", stats_main, "what an LVIS annotation file holds: counts, r/c/f, RFS repeat factors"},
    {"train", train_main, "train a model from a config (run directory, checkpoints, --resume)"},
    {"data", data_main, "run the training data loader on a data set: batches, speed, bad images"},
    {"lvis-eval", lvis_eval_main, "the official LVIS box or mask AP of a results file"},
    {"eval", eval_main, "evaluate a checkpoint on the validation split: LVIS box and mask AP, eval.json"},
    {"info", info_main, "the model a config builds: parameter counts per module, activation memory"},
    {"synth", synth_main, "write the built-in long-tail demo data set (JPEG + LVIS v1 JSON)"},
};
enum { NUM_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f) {
    fprintf(f, "usage: maskrcnn COMMAND [ARGS...]   (maskrcnn COMMAND --help for details)\n\ncommands:\n");
    for (int i = 0; i < NUM_COMMANDS; i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < NUM_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

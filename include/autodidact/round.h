/* round.h: the self-distillation loop of `autodidact run`. Round 0 trains the student on
 * ground truth; every later round draws prompts, lets the teacher generate candidates,
 * scores and selects them, retrains the student (train.objective: SFT on the selected
 * sequences, a distillation loss, or a preference loss on chosen/rejected pairs), evaluates
 * exact-match accuracy by length, and commits the round to the run file and a checkpoint.
 * A killed run resumes from its last complete round with the same numbers. The math
 * lives in the other modules; this one only sequences them. */
#ifndef AUTODIDACT_ROUND_H
#define AUTODIDACT_ROUND_H

#include "autodidact/experiment.h"

typedef struct {
    int quiet;          /* 1: no progress lines */
    int stop_after;     /* > 0: stop after committing this many rounds in this call (tests) */
} AdRunOptions;

/* Starts a new run as described by cfg (the run file must not exist yet unless
 * overwrite). config_original is the config text as given (stored in the run file). */
AdStatus ad_run_start(const AdExperimentConfig *cfg, const char *config_original, int overwrite,
                      const AdRunOptions *o);
/* Continues the run in run_file from its last complete round, with its stored config
 * (overrides may extend it, e.g. rounds.count). */
AdStatus ad_run_resume(const char *run_file, const char *const *overrides, int n_overrides,
                       const AdRunOptions *o);
/* The dry run: opens every input the run reads (model.init_from, model.tokenizer_from,
 * rounds.teacher_path, task.path) and checks what the run would check before round 0
 * (teacher tokenizer, vocabulary and context against the student, prompts and round 0's
 * examples against the rows), then prints what the run would do: the student and teacher
 * as loaded, the prompts, the rounds and their budgets. Runs nothing and writes nothing;
 * returns the first error, naming the key and file. */
AdStatus ad_run_plan(const AdExperimentConfig *cfg, FILE *f);
/* Prints the per-round summary table of a run file. */
AdStatus ad_run_report(const char *run_file, FILE *f);

#endif

/* runlog.h: the HDF5 run file of `autodidact run` (layout: docs/RUNFILE.md). The file is
 * kept in memory while the run goes on and written atomically (temp + fsync + rename)
 * after every round, so readers and resumes only ever see complete rounds. This is the
 * only module besides the checkpoints that touches HDF5. No policy here. */
#ifndef AUTODIDACT_RUNLOG_H
#define AUTODIDACT_RUNLOG_H

#include "autodidact/common.h"
#include "autodidact/score.h"
#include "autodidact/train.h"

#define AD_RUN_FORMAT "autodidact-run"
#define AD_RUN_VERSION 1

typedef struct {
    int64_t file;          /* HDF5 file id (in-memory image), private */
    char path[1024];
    int n_eval;            /* E, the evaluation grid size */
    int rounds_complete;
} AdRunLog;

typedef struct {
    int round;
    int length_lo, length_hi;
    long n_prompts, n_candidates, n_selected;
    double acceptance, label_accuracy, candidate_accuracy;
    long train_examples, train_steps;
    double train_loss;
    const double *eval_accuracy;  /* (E) */
    const double *eval_loss;      /* (E) */
    const long *eval_n;           /* (E) */
    int frontier_90;
    double time_generate, time_score, time_train, time_eval, time_total;
    double gen_tokens_per_s, train_tokens_per_s;
    const char *teacher;
    /* preference rounds (0, 0 and NAN otherwise) */
    long n_pairs, pairs_dropped;  /* pairs trained on; prompts without a usable pair */
    double pair_accuracy;         /* share of the pairs, among those the verifier can judge,
                                     whose chosen answer is right and rejected one wrong */
    double time_write;            /* seconds writing the round's checkpoint and run-file
                                     datasets before the commit */
} AdRoundSummary;

/* The pairs of a preference round, one entry per pair. */
typedef struct {
    long n;
    char *const *prompt, *const *chosen, *const *rejected;  /* (n) UTF-8 */
    const double *chosen_score, *rejected_score;  /* what the pair builder ranked by */
    const int *chosen_correct, *rejected_correct; /* 1 right, 0 wrong, -1 unknown */
    const double *ref_chosen, *ref_rejected;      /* reference log-prob sums of the answers */
    const int *chosen_tokens, *rejected_tokens;   /* answer tokens (with <eos>) */
} AdPairLog;

/* One update of a preference round: TRL's DPOTrainer metrics (means over the pairs). */
typedef struct {
    long step;
    double loss, rewards_chosen, rewards_rejected, rewards_margins, rewards_accuracies;
    double logps_chosen, logps_rejected;
} AdPrefRecord;

/* The samples of an RL (grpo) round, one entry per sample (prompt i / G's group). */
typedef struct {
    long n;
    const double *reward, *advantage;
    const double *old_logp;       /* the sampling policy's log-prob sum of the answer */
    const int *tokens;            /* answer tokens (with <eos>) */
} AdRlLog;

/* What an RL round's generation measured (TRL's GRPOTrainer names, one value per round). */
typedef struct {
    double reward, reward_std;    /* mean and (unbiased) std of all samples' rewards */
    double frac_reward_zero_std;  /* share of groups whose rewards are all equal */
    double accuracy;              /* share of samples right, where a verifier knows (else NAN) */
    double mean_length;           /* completions/mean_length: answer tokens with <eos> */
} AdRlRound;

/* One update of an RL round: TRL's GRPOTrainer metrics (token means over the update). */
typedef struct {
    long step;
    double loss, kl, entropy, clip_low, clip_high, clip_region, ratio;
} AdRlRecord;

/* Takes the run's lock: an exclusive flock on the file <path>.lock (holding its pid), held
 * until ad_runlog_unlock or the end of the process, however it ends, so a killed run never
 * leaves a stale lock (only, at worst, the file, which the next holder reuses). A second
 * process asking for the same run gets AD_ERR_IO naming the run and the holder's pid.
 * *fd receives the lock's descriptor. */
AdStatus ad_runlog_lock(const char *path, int *fd);
/* Under MPI (dist.h) rank 0 alone takes the lock and writes the file; every rank builds
 * the same file in memory, and all learn the outcome of rank 0's lock and commits. */
/* Releases a lock taken by ad_runlog_lock for path and removes its file (fd < 0: nothing). */
void ad_runlog_unlock(const char *path, int fd);

/* Creates a new run (in memory; nothing on disk until the first ad_runlog_commit_round):
 * root attributes, config strings, the evaluation grid, empty summary tables. */
AdStatus ad_runlog_create(AdRunLog *r, const char *path, const char *config_json,
                          const char *config_original, uint64_t seed, int threads,
                          const int *eval_lengths, int n_eval);
/* Opens an existing run for resuming: checks format and version, reads it into memory,
 * checks its consistency as ad_runlog_check does, and reports rounds_complete. Summary
 * rows or round groups beyond rounds_complete (which a finished file never has) are
 * dropped. */
AdStatus ad_runlog_open(AdRunLog *r, const char *path);
/* Checks a run file read-only: format and version, rounds_complete within [0, 10^6],
 * every /summary column with at least rounds_complete rows, and every round
 * 0..rounds_complete-1 with its /rounds/NNN group and datasets, whose lengths agree with
 * each other, with /eval_lengths and with the summary's n_prompts and n_candidates.
 * AD_ERR_FORMAT names the first missing or mismatched object. *rounds_complete (may be
 * NULL) receives the count. */
AdStatus ad_runlog_check(const char *path, int *rounds_complete);
/* The resolved config JSON stored in a run file (caller frees). */
AdStatus ad_runlog_read_config(const char *path, char **config_json);

/* Per-round contents of round rounds_complete; each may be called once per round before
 * commit (another round or a second call is AD_ERR_ARG). What a round leaves out is
 * written at commit: no candidates (c may be NULL) and no training as length-0 datasets,
 * the evaluation from the summary. */
AdStatus ad_runlog_write_candidates(AdRunLog *r, int round, const AdCandidates *c);
AdStatus ad_runlog_write_train_curve(AdRunLog *r, int round, const AdTrainRecord *recs, long n);
AdStatus ad_runlog_write_eval(AdRunLog *r, int round, const int *lengths, const double *accuracy,
                              const double *loss, const long *n, int n_eval);
/* The pairs/ and preference/ groups of a preference round (layout: docs/RUNFILE.md). */
AdStatus ad_runlog_write_pairs(AdRunLog *r, int round, const AdPairLog *p,
                               const AdPrefRecord *curve, long n_steps);
/* The rl/ and grpo/ groups of an RL round (layout: docs/RUNFILE.md). */
AdStatus ad_runlog_write_rl(AdRunLog *r, int round, const AdRlLog *p, const AdRlRound *sum,
                            const AdRlRecord *curve, long n_steps);
/* Appends the summary row, sets the round group's attributes and rounds_complete, and
 * writes the whole file atomically. On failure (e.g. disk full) the previous file on disk
 * is intact, the error names the path, and the same round may be committed again. */
AdStatus ad_runlog_commit_round(AdRunLog *r, const AdRoundSummary *s);
void ad_runlog_close(AdRunLog *r);

#endif

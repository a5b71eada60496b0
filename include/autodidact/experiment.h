/* experiment.h: the self-distillation experiment config (`autodidact run`): the student
 * model, the task and its evaluation grid, round 0 (training on ground truth), and the
 * rounds (prompts, teacher, generation, scorers, selection, retraining loss). Parsed with
 * the same schema engine as the train config: unknown keys, wrong types and out-of-range
 * values are errors naming the key path; "--set a.b=v" overrides; the resolved config
 * is written into the run file. Reads JSON only. */
#ifndef AUTODIDACT_EXPERIMENT_H
#define AUTODIDACT_EXPERIMENT_H

#include "autodidact/config.h"

/* Optimisation settings of one training phase (round 0, or each later round). */
typedef struct {
    int steps;
    int batch_size;
    int seq_len;            /* 0: the model's max_seq_len */
    int grad_accum;
    double lr, min_lr;
    char schedule[16];      /* constant | cosine | linear | wsd */
    int warmup_steps, decay_steps;
    double weight_decay, beta1, beta2, eps, grad_clip;
    int log_every;
    char loss[16];          /* sft | fkl | rkl | jsd | tvd | skl | srkl (distillation losses
                               need a teacher distribution: rounds.teacher != self) */
    double beta;            /* JSD beta in [0, 1] (0 = forward KL, 1 = reverse KL exactly) */
    double alpha;           /* skew KL / skew reverse KL mixing in (0, 1) (DistiLLM: 0.1) */
    double temperature;     /* distillation temperature > 0 */
    double on_policy;       /* GKD lambda: fraction of distillation sequences the student
                               generates (the rest are the selected teacher outputs) */
} AdPhaseConfig;

typedef struct {
    uint64_t seed;
    int threads;
    char run_file[AD_PATH_MAX];   /* the HDF5 run file; checkpoints go to <run_file>.ckpt/ */
    int keep_checkpoints;         /* round checkpoints kept (the last N; 0 = all) */

    char family[16];
    AdModelConfig model;          /* vocab_size 0: from the tokenizer */
    char init_from[AD_PATH_MAX];  /* "": new model; else a checkpoint to start from */
    int init;                     /* AdInitKind of a new model's random weights */
    char tokenizer_from[AD_PATH_MAX]; /* new model's tokenizer: "" = the task's characters
                                     (source task) or bytes; "teacher" = rounds.teacher_path's;
                                     else a checkpoint whose tokenizer the student takes */

    struct {
        char source[16];          /* task (built-in tasks) | file (one prompt per line) |
                                     jsonl (one {"prompt": ...} object per line) | bos */
        char name[32];            /* task name */
        char path[AD_PATH_MAX];   /* prompts file when source == file or jsonl */
        int train_min_len, train_max_len; /* ground-truth lengths used in round 0 */
        int eval_min_len, eval_max_len;   /* evaluation grid (exact-match accuracy per length) */
        int eval_per_len;                 /* evaluation prompts per length */
        int pad_answer;           /* 1: add/radd/mul answers zero-padded to their longest length
                                     (AD_TASK_PADDED) in training, labels and evaluation */
        int seed_examples;        /* > 0: round 0 trains on only this many ground-truth
                                     examples (seed-set augmentation: the rounds grow the data
                                     at the same lengths) */
    } task;

    AdPhaseConfig pretrain;       /* round 0 */

    struct {
        int count;                /* rounds after round 0 */
        int prompts;              /* prompts labelled per round */
        int length_start;         /* difficulty of round 1 (0: train_max_len + 1) */
        int length_step;          /* difficulty added per round (0: the same lengths each round) */
        int length_span;          /* each round's prompts cover [d, d + span] */
        char teacher[16];         /* self | snapshot | ema | checkpoint */
        char teacher_path[AD_PATH_MAX]; /* checkpoint teacher (classic distillation) */
        double ema_decay;         /* teacher = EMA of the student's weights */
        char init[16];            /* continue (from the last weights) | restart (from round 0) */
        int keep_history;         /* 1: train on every earlier round's selected data too */
        double replay_frac;       /* fraction of each training batch drawn from the ground-
                                     truth data of round 0 (-1: in proportion to its size) */
        char prompt_source[16];   /* task (fresh prompts at the round's lengths) | seed (the
                                     prompts of round 0's task.seed_examples) */
    } rounds;

    struct {
        int samples;              /* candidates per prompt */
        float temperature;        /* 0: greedy */
        int top_k;
        float top_p, min_p;
        int max_new_tokens;       /* 0: enough for the task at that length */
        int batch;                /* sequences decoded together */
    } generate;

    struct {
        int length;               /* length filter scorer */
        int majority;             /* self-consistency: agreement among a prompt's samples */
        int logprob;              /* mean and minimum token log-probability under the teacher,
                                     and perplexity */
        int self_judge;           /* log p(verdict | judge prompt) under the teacher */
        char judge_template[256]; /* "{prompt}" and "{answer}" are replaced */
        char judge_verdict[32];   /* text of the verdict; "" = <eos> */
        int ensemble;             /* extra models trained with other seeds in round 0; their
                                     agreement with each candidate is a scorer (0: off) */
    } score;

    struct {
        int length_filter;        /* drop candidates failing the length filter */
        double min_agreement;     /* drop candidates whose majority share is below this */
        double min_ensemble;      /* drop candidates whose ensemble agreement is below this */
        char policy[16];          /* all | threshold | topk | best_of_n | top_frac | random | oracle */
        char scorer[32];          /* scorer the policy ranks by */
        double threshold;
        int k;
        double frac;
        int one_per_prompt;       /* keep at most one (the best-scored) candidate per prompt */
    } select;

    AdPhaseConfig train;          /* retraining in each round */
    char objective[16];           /* train.objective: what the rounds train on: sft (selected
                                     sequences), distillation (the teacher's distributions),
                                     preference (chosen/rejected pairs), grpo (online RL on
                                     rl.reward); "auto" resolves to sft
                                     or distillation by train.loss */

    struct {                      /* rounds with train.objective "preference" */
        char loss[16];            /* dpo | ipo | simpo */
        double beta, label_smoothing, gamma, sft_alpha;
        char pairs[16];           /* best_worst (by scorer) | verifier (right vs wrong) |
                                     spin (ground truth vs own sample) */
        char scorer[32];          /* what best_worst ranks by */
        double min_margin;        /* best_worst: best minus worst score must exceed this */
        char reference[16];       /* previous (the student at the round's start) | teacher */
    } preference;

    struct {                      /* rounds with train.objective "grpo" */
        char baseline[8];         /* mean (GRPO, Dr. GRPO) | rloo (leave-one-out) */
        int scale_rewards;        /* divide advantages by the group's std (GRPO; Dr. GRPO: no) */
        int mu;                   /* optimisation passes over each round's samples */
        double beta;              /* k3 KL weight to the round-start model (0: none) */
        double epsilon, epsilon_high; /* ratio clip [1 - epsilon, 1 + epsilon_high] */
        char norm[16];            /* sequence | token | constant */
        char reward[32];          /* the scorer whose value is the reward */
    } rl;
} AdExperimentConfig;

void ad_experiment_config_defaults(AdExperimentConfig *c);
AdStatus ad_experiment_config_parse(AdExperimentConfig *c, const char *json_text,
                                    const char *source_name, const char *const *overrides,
                                    int n_overrides);
AdStatus ad_experiment_config_load(AdExperimentConfig *c, const char *path,
                                   const char *const *overrides, int n_overrides);
/* Every key, defaults included; numbers reload exactly. Caller frees. */
char *ad_experiment_config_to_json(const AdExperimentConfig *c);
void ad_experiment_config_print_keys(FILE *f);

#endif

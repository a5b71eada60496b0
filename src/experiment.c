/* experiment.c: the self-distillation experiment config (AdExperimentConfig) as one schema
 * table, plus what a table cannot express: "0 = automatic" values and the rules that tie
 * keys together. First step of `autodidact run`; it reads JSON text only and leaves what
 * the values mean (generation, scoring, selection, training) to the round loop. */
#include "autodidact/experiment.h"

#include <stddef.h>
#include <string.h>

#include "autodidact/losses.h"
#include "autodidact/optim.h"
#include "autodidact/preference.h"
#include "autodidact/rl.h"
#include "autodidact/score.h"
#include "autodidact/tasks.h"

#include "config_schema.h"

#define MAX_TASK_LEN 512 /* the range of every task length key */

/* Names owned by other modules: the rows take them from their name/parse functions. */
static const char *task_name(int k) { return ad_task_name((AdTaskKind)k); }
static const char *sched_name(int k) { return ad_sched_name((AdSchedKind)k); }
static const char *loss_name(int k) { return ad_loss_name((AdLossKind)k); }
static const char *policy_name(int k) { return ad_select_name((AdSelectPolicy)k); }

static const char *const source_names[] = {"task", "file", "bos", "jsonl", NULL};
static const char *const teacher_names[] = {"self", "snapshot", "ema", "checkpoint", NULL};
static const char *const init_names[] = {"continue", "restart", NULL};
static const char *const prompt_source_names[] = {"task", "seed", NULL};
static const char *const objective_names[] = {"auto", "sft", "distillation", "preference", "grpo",
                                               NULL};
static const char *const baseline_names[] = {"mean", "rloo", NULL};
static const char *rl_norm_name(int k) { return ad_rl_norm_name((AdRlNorm)k); }
static const char *const pair_names[] = {"best_worst", "verifier", "spin", NULL};
static const char *const reference_names[] = {"previous", "teacher", NULL};
static const char *pref_name(int k) { return ad_pref_name((AdPrefKind)k); }

static AdStatus apply_family(void *target, const char *source) {
    AdExperimentConfig *c = target;
    return ad_config_model_family(&c->model, c->family, source);
}

#define OFF(f) offsetof(AdExperimentConfig, f)
#define CAP(f) sizeof(((AdExperimentConfig *)0)->f)
#define INT(k, f, lo, hi, d, h)                                                                    \
    {.key = k, .type = AD_SCHEMA_INT, .offset = OFF(f), .min = lo, .max = hi, .def = d, .help = h}
#define NUM(k, f, lo, hi, fl, d, h)                                                                \
    {.key = k, .type = AD_SCHEMA_DOUBLE, .offset = OFF(f), .min = lo, .max = hi, .flags = fl,      \
     .def = d, .help = h}
#define FLT(k, f, lo, hi, fl, d, h)                                                                \
    {.key = k, .type = AD_SCHEMA_FLOAT, .offset = OFF(f), .min = lo, .max = hi, .flags = fl,       \
     .def = d, .help = h}
#define BOOL(k, f, d, h) {.key = k, .type = AD_SCHEMA_BOOL, .offset = OFF(f), .def = d, .help = h}
#define STR(k, f, d, h)                                                                            \
    {.key = k, .type = AD_SCHEMA_STRING, .offset = OFF(f), .cap = CAP(f), .def = d, .help = h}
#define CHOICE(k, f, names, d, h)                                                                  \
    {.key = k, .type = AD_SCHEMA_CHOICE, .offset = OFF(f), .cap = CAP(f), .choices = names,        \
     .def = d, .help = h}
#define NAMED(k, f, parse, name, n, d, h)                                                          \
    {.key = k, .type = AD_SCHEMA_CHOICE, .offset = OFF(f), .cap = CAP(f), .enum_parse = parse,     \
     .enum_name = name, .n_enum = n, .def = d, .help = h}

/* The keys of one training phase P ("pretrain" or "train", struct member f); the
 * defaults that differ between the two are arguments. */
#define PHASE_ROWS(P, f, d_steps, d_lr, d_min_lr, d_warmup)                                        \
    INT(P ".steps", f.steps, 0, 100000000, d_steps,                                               \
        "optimizer updates (0: no training in this phase, e.g. round 0 of an imported model)"),   \
    INT(P ".batch_size", f.batch_size, 1, 1 << 20, "64", "sequences per micro-batch"),             \
    INT(P ".seq_len", f.seq_len, 0, 1 << 16, "0",                                                  \
        "tokens per training sequence; <= model.max_seq_len; 0 = model.max_seq_len"),              \
    INT(P ".grad_accum", f.grad_accum, 1, 1 << 16, "1", "micro-batches per update"),               \
    NUM(P ".lr", f.lr, 0, 10, AD_SCHEMA_MIN_OPEN, d_lr, "peak learning rate"),                     \
    NUM(P ".min_lr", f.min_lr, 0, 10, 0, d_min_lr,                                                 \
        "learning rate at the end of the decay; <= " P ".lr"),                                     \
    NAMED(P ".schedule", f.schedule, ad_sched_parse, sched_name, AD_SCHED_WSD + 1, "cosine",       \
          "learning-rate schedule after warmup"),                                                  \
    INT(P ".warmup_steps", f.warmup_steps, 0, 100000000, d_warmup, "linear warmup steps"),         \
    INT(P ".decay_steps", f.decay_steps, 0, 100000000, "0",                                        \
        "wsd: steps of the final linear decay to min_lr"),                                         \
    NUM(P ".weight_decay", f.weight_decay, 0, 10, 0, "0.1",                                        \
        "AdamW decoupled weight decay (matrices only)"),                                           \
    NUM(P ".beta1", f.beta1, 0, 1, AD_SCHEMA_MAX_OPEN, "0.9", "AdamW beta1"),                      \
    NUM(P ".beta2", f.beta2, 0, 1, AD_SCHEMA_MAX_OPEN, "0.98", "AdamW beta2"),                     \
    NUM(P ".eps", f.eps, 0, 1, AD_SCHEMA_MIN_OPEN, "1e-8", "AdamW epsilon"),                       \
    NUM(P ".grad_clip", f.grad_clip, 0, 1e6, 0, "1.0",                                             \
        "maximum global gradient norm; 0 = no clipping"),                                          \
    INT(P ".log_every", f.log_every, 0, 100000000, "100",                                          \
        "steps between progress lines; 0 = never"),                                                \
    NAMED(P ".loss", f.loss, ad_loss_parse, loss_name, AD_LOSS_SRKL + 1, "sft",                    \
          "sft: cross-entropy on the sequences' tokens; fkl, rkl, jsd, tvd, skl, srkl: a "         \
          "divergence from the teacher's distribution (needs rounds.teacher other than self)"),    \
    NUM(P ".beta", f.beta, 0, 1, 0, "0.5",                                                         \
        "jsd: beta (0 = forward KL, 1 = reverse KL, exactly)"),                                    \
    NUM(P ".alpha", f.alpha, 0, 1, AD_SCHEMA_MIN_OPEN | AD_SCHEMA_MAX_OPEN, "0.1",                 \
        "skl, srkl: skew mixing weight (DistiLLM: 0.1)"),                                          \
    NUM(P ".temperature", f.temperature, 0, 100, AD_SCHEMA_MIN_OPEN, "1.0",                        \
        "distillation temperature of teacher and student distributions"),                          \
    NUM(P ".on_policy", f.on_policy, 0, 1, 0, "0",                                                 \
        "distillation: fraction of sequences the student generates (GKD lambda); the rest "        \
        "are the teacher's selected outputs")

static const AdSchemaRow experiment_rows[] = {
    {.key = "seed", .type = AD_SCHEMA_U64, .offset = OFF(seed), .def = "1337",
     .help = "seed of every random stream; above 2^53 give it as a decimal string"},
    INT("threads", threads, 0, 1024, "0", "OpenMP/BLAS threads; 0 = the OpenMP default"),
    STR("run_file", run_file, "runs/run.h5",
        "HDF5 run file; round checkpoints go to <run_file>.ckpt/"),
    INT("keep_checkpoints", keep_checkpoints, 0, 1000000, "2",
        "round checkpoints kept (the last N); 0 = all"),

    AD_CONFIG_MODEL_ROWS(AdExperimentConfig, apply_family, "64", "none"),
    STR("model.tokenizer_from", tokenizer_from, "",
        "tokenizer of a new student: \"\" = the task's characters (task.source task) or "
        "bytes; \"teacher\" = the one rounds.teacher_path carries; else the path of a "
        "checkpoint whose tokenizer (any kind, BPE included) the student takes (a student "
        "from model.init_from keeps that checkpoint's)"),

    CHOICE("task.source", task.source, source_names, "task",
           "prompts: task (built-in task with verifier), file (one prompt per line), "
           "jsonl (one {\"prompt\": \"...\"} object per line), bos (unconditional: the "
           "prompt is <bos> alone)"),
    NAMED("task.name", task.name, ad_task_parse, task_name, AD_TASK_COUNT, "copy",
          "built-in task (ground truth of round 0, evaluation, verifier)"),
    BOOL("task.pad_answer", task.pad_answer, "false",
         "add, radd, mul: write every answer at its longest length, zero-padded on the most "
         "significant side (radd 5+3 -> \"80\"), in ground truth, evaluation and the "
         "verifier; a model trained so answers in that form"),
    STR("task.path", task.path, "",
        "prompts file; required when task.source is \"file\" or \"jsonl\""),
    INT("task.train_min_len", task.train_min_len, 1, MAX_TASK_LEN, "1",
        "shortest ground-truth length of round 0"),
    INT("task.train_max_len", task.train_max_len, 1, MAX_TASK_LEN, "8",
        "longest ground-truth length of round 0; >= task.train_min_len"),
    INT("task.eval_min_len", task.eval_min_len, 1, MAX_TASK_LEN, "1",
        "shortest evaluated length"),
    INT("task.eval_max_len", task.eval_max_len, 1, MAX_TASK_LEN, "16",
        "longest evaluated length; >= task.eval_min_len"),
    INT("task.eval_per_len", task.eval_per_len, 1, 10000000, "100",
        "evaluation prompts per length (exact-match accuracy)"),
    INT("task.seed_examples", task.seed_examples, 0, 100000000, "0",
        "> 0: round 0 trains on only this many ground-truth examples (the rounds grow the "
        "data at the same lengths); 0 = no limit"),

    PHASE_ROWS("pretrain", pretrain, "2000", "2e-3", "2e-4", "100"),

    INT("rounds.count", rounds.count, 0, 10000, "4", "rounds after round 0"),
    INT("rounds.prompts", rounds.prompts, 1, 100000000, "2000", "prompts labelled per round"),
    INT("rounds.length_start", rounds.length_start, 0, MAX_TASK_LEN, "0",
        "length of round 1's prompts; 0 = task.train_max_len + 1"),
    INT("rounds.length_step", rounds.length_step, 0, MAX_TASK_LEN, "1",
        "length added per round; 0 = the same lengths every round"),
    INT("rounds.length_span", rounds.length_span, 0, MAX_TASK_LEN, "0",
        "each round's prompts have lengths d .. d + length_span"),
    CHOICE("rounds.teacher", rounds.teacher, teacher_names, "self",
           "who labels the prompts: self (the current student), snapshot (the student at the "
           "start of the round), ema (an average of the student's weights), checkpoint "
           "(rounds.teacher_path)"),
    STR("rounds.teacher_path", rounds.teacher_path, "",
        "teacher checkpoint; required when rounds.teacher is \"checkpoint\""),
    NUM("rounds.ema_decay", rounds.ema_decay, 0, 1, AD_SCHEMA_MAX_OPEN, "0.99",
        "ema teacher: weight of the old average per update"),
    CHOICE("rounds.init", rounds.init, init_names, "continue",
           "each round trains from the last weights (continue) or from round 0's (restart)"),
    BOOL("rounds.keep_history", rounds.keep_history, "true",
         "train on every earlier round's selected data too"),
    NUM("rounds.replay_frac", rounds.replay_frac, -1, 1, 0, "-1",
        "fraction of each batch drawn from round 0's ground truth; -1 = in proportion to "
        "its size"),
    CHOICE("rounds.prompt_source", rounds.prompt_source, prompt_source_names, "task",
           "the rounds' prompts: task (fresh ones at the round's lengths) or seed (drawn from "
           "round 0's task.seed_examples, e.g. SPIN on the same limited data)"),

    INT("generate.samples", generate.samples, 1, 1024, "1", "candidates per prompt"),
    FLT("generate.temperature", generate.temperature, 0, 100, 0, "0",
        "sampling temperature; 0 = greedy"),
    INT("generate.top_k", generate.top_k, 0, 1 << 21, "0", "keep the k likeliest tokens; 0 = all"),
    FLT("generate.top_p", generate.top_p, 0, 1, AD_SCHEMA_MIN_OPEN, "1",
        "nucleus sampling mass; 1 = off"),
    FLT("generate.min_p", generate.min_p, 0, 1, 0, "0",
        "drop tokens below min_p times the likeliest one's probability; 0 = off"),
    INT("generate.max_new_tokens", generate.max_new_tokens, 0, 1 << 16, "0",
        "answer token limit; 0 = enough for the task at the prompt's length (without a task: "
        "64, or what fits the training rows after the longest prompt)"),
    INT("generate.batch", generate.batch, 1, 1 << 16, "128", "sequences decoded together"),

    BOOL("score.length", score.length, "true",
         "length filter scorer: the answer length is one the task allows"),
    BOOL("score.majority", score.majority, "true",
         "self-consistency: share of the prompt's samples with the same answer"),
    BOOL("score.logprob", score.logprob, "true",
         "mean and minimum token log-probability and perplexity under the teacher"),
    BOOL("score.self_judge", score.self_judge, "false",
         "log p(judge_verdict | judge_template) under the teacher"),
    STR("score.judge_template", score.judge_template, "{prompt}{answer}",
        "self-judge text; {prompt} and {answer} are replaced"),
    STR("score.judge_verdict", score.judge_verdict, "",
        "self-judge verdict text; \"\" = <eos>"),
    INT("score.ensemble", score.ensemble, 0, 64, "0",
        "extra models trained with other seeds in round 0, whose agreement is a scorer; "
        "0 = off"),

    BOOL("select.length_filter", select.length_filter, "true",
         "drop candidates that fail the length filter"),
    NUM("select.min_agreement", select.min_agreement, 0, 1, 0, "0",
        "drop candidates whose majority share is below this; 0 = off"),
    NUM("select.min_ensemble", select.min_ensemble, 0, 1, 0, "0",
        "drop candidates whose ensemble agreement is below this; 0 = off"),
    NAMED("select.policy", select.policy, ad_select_parse, policy_name, AD_SELECT_ORACLE + 1,
          "all",
          "what survives the filters: all, threshold (score >= threshold), topk (k best per "
          "prompt), best_of_n, top_frac (best frac of all), random (frac, a baseline), oracle "
          "(the verifier's choice, an upper bound)"),
    NAMED("select.scorer", select.scorer, ad_score_parse, ad_score_name, AD_SCORE_COUNT,
          "logprob_mean",
          "scorer the policy and one_per_prompt rank by (perplexity: lower is better); must "
          "be enabled by the score.* keys"),
    NUM("select.threshold", select.threshold, -1e9, 1e9, 0, "0", "threshold policy: minimum score"),
    INT("select.k", select.k, 0, 1 << 20, "1", "topk policy: candidates kept per prompt"),
    NUM("select.frac", select.frac, 0, 1, 0, "1", "top_frac and random policies: fraction kept"),
    BOOL("select.one_per_prompt", select.one_per_prompt, "true",
         "keep at most one candidate per prompt: the best by select.scorer"),

    PHASE_ROWS("train", train, "400", "1e-3", "1e-4", "20"),
    CHOICE("train.objective", objective, objective_names, "auto",
           "what the rounds train on: sft (the selected sequences, cross-entropy), distillation "
           "(the teacher's distributions, train.loss), preference (chosen/rejected pairs, "
           "preference.*), grpo (online RL: G = generate.samples answers per prompt, "
           "group-relative advantages of rl.reward, rl.*); auto = distillation when train.loss "
           "is a divergence, else sft"),

    NAMED("preference.loss", preference.loss, ad_pref_parse, pref_name, AD_PREF_SIMPO + 1, "dpo",
          "dpo (sigmoid on summed log-prob ratios against the reference), ipo (squared, on "
          "per-token means), simpo (per-token means, no reference, margin preference.gamma)"),
    NUM("preference.beta", preference.beta, 0, 1000, AD_SCHEMA_MIN_OPEN, "0.1",
        "beta of dpo, ipo and simpo (TRL's beta)"),
    NUM("preference.label_smoothing", preference.label_smoothing, 0, 0.5, AD_SCHEMA_MAX_OPEN, "0",
        "dpo, simpo: assumed share of flipped preference labels (conservative DPO)"),
    NUM("preference.gamma", preference.gamma, -1000, 1000, 0, "0.5",
        "simpo: target margin between the chosen and rejected per-token log-probs (x beta)"),
    NUM("preference.sft_alpha", preference.sft_alpha, 0, 1000, 0, "0",
        "weight of the mean negative log-likelihood of the chosen tokens (TRL's rpo_alpha)"),
    CHOICE("preference.pairs", preference.pairs, pair_names, "best_worst",
           "pairs per prompt: best_worst (the best vs the worst sample by preference.scorer: "
           "self-rewarding with scorer judge), verifier (a right vs a wrong sample, task "
           "only), spin (the ground truth vs the model's own first sample, task only)"),
    NAMED("preference.scorer", preference.scorer, ad_score_parse, ad_score_name, AD_SCORE_COUNT,
          "logprob_mean",
          "best_worst: the scorer that ranks a prompt's samples (perplexity: lower is better); "
          "must be enabled by the score.* keys"),
    NUM("preference.min_margin", preference.min_margin, 0, 1e9, 0, "0",
        "best_worst: a prompt makes a pair only when best minus worst score exceeds this"),
    CHOICE("preference.reference", preference.reference, reference_names, "previous",
           "the frozen reference of dpo and ipo: previous (the student as the round starts, "
           "i.e. the previous round's model) or teacher (the round's teacher, e.g. a fixed "
           "rounds.teacher_path checkpoint)"),

    CHOICE("rl.baseline", rl.baseline, baseline_names, "mean",
           "grpo rounds: the advantage's baseline: mean (the group's mean reward: GRPO, Dr. GRPO) "
           "or rloo (the mean of the other samples of the prompt)"),
    BOOL("rl.scale_rewards", rl.scale_rewards, "true",
         "divide advantages by the group's reward std (GRPO); false: Dr. GRPO"),
    INT("rl.mu", rl.mu, 1, 1000, "1",
        "optimisation passes over each round's samples (1: on-policy, ratio 1)"),
    NUM("rl.beta", rl.beta, 0, 1000, 0, "0",
        "weight of the k3 KL to the model as the round starts (0: no KL term)"),
    NUM("rl.epsilon", rl.epsilon, 0, 1, AD_SCHEMA_MIN_OPEN, "0.2",
        "lower clip of the importance ratio: 1 - epsilon"),
    NUM("rl.epsilon_high", rl.epsilon_high, 0, 100, 0, "0",
        "upper clip of the importance ratio: 1 + epsilon_high (0: epsilon)"),
    NAMED("rl.norm", rl.norm, ad_rl_norm_parse, rl_norm_name, AD_RL_NORM_CONSTANT + 1, "sequence",
          "loss normalisation: sequence (mean of per-answer token means: GRPO), token (over the "
          "update's tokens: DAPO) or constant (over updates x row length: Dr. GRPO)"),
    NAMED("rl.reward", rl.reward, ad_score_parse, ad_score_name, AD_SCORE_COUNT, "verifier",
          "grpo rounds: the scorer whose value is each sample's reward (verifier: exact match; "
          "majority: label-free agreement; must be computed by the score.* keys)"),
};

static const AdSchema experiment_schema = {
    experiment_rows, (int)(sizeof experiment_rows / sizeof experiment_rows[0])};

const AdSchema *ad_experiment_config_schema(void) { return &experiment_schema; }

/* ---- rules beyond the table ---- */

/* Tokens of the longest "<bos> prompt answer <eos>" of a task at length n, one token per
 * character: the prompt is "d..d=" (n + 1) or "a..a+b..b=" (2n + 2). */
static int example_tokens(AdTaskKind k, int n) {
    int two_operands = k == AD_TASK_ADD || k == AD_TASK_RADD || k == AD_TASK_MUL;
    int prompt = two_operands ? 2 * n + 2 : n + 1;
    return 1 + prompt + ad_task_max_answer_len(k, n) + 1;
}

/* The longest prompt length the rounds use (0 without rounds). */
static int rounds_max_len(const AdExperimentConfig *c) {
    if (c->rounds.count == 0) return 0;
    return c->rounds.length_start + (c->rounds.count - 1) * c->rounds.length_step +
           c->rounds.length_span;
}

static void resolve(void *cfg) {
    AdExperimentConfig *c = cfg;
    ad_config_model_resolve(&c->model);
    /* a student from a checkpoint has the checkpoint's context: seq_len 0 stays 0 and the
     * run resolves it when it has loaded the model */
    if (c->pretrain.seq_len == 0 && !c->init_from[0]) c->pretrain.seq_len = c->model.max_seq_len;
    if (c->train.seq_len == 0 && !c->init_from[0]) c->train.seq_len = c->model.max_seq_len;
    if (c->rounds.length_start == 0) c->rounds.length_start = c->task.train_max_len + 1;
    if (!strcmp(c->objective, "auto"))
        snprintf(c->objective, sizeof c->objective, "%s",
                 ad_loss_parse(c->train.loss) != AD_LOSS_SFT ? "distillation" : "sft");
}

static AdStatus check_phase(const AdExperimentConfig *c, const AdPhaseConfig *p, const char *name,
                            const char *src) {
    if (!c->init_from[0] && p->seq_len > c->model.max_seq_len)
        return ad_fail(AD_ERR_CONFIG, "%s: %s.seq_len: %d exceeds model.max_seq_len (%d)", src,
                       name, p->seq_len, c->model.max_seq_len);
    if (p->min_lr > p->lr)
        return ad_fail(AD_ERR_CONFIG, "%s: %s.min_lr: %g is greater than %s.lr (%g)", src, name,
                       p->min_lr, name, p->lr);
    int distill = ad_loss_parse(p->loss) != AD_LOSS_SFT;
    if (distill && strcmp(c->rounds.teacher, "self") == 0)
        return ad_fail(AD_ERR_CONFIG,
                       "%s: %s.loss: \"%s\" is a divergence from the teacher's distribution, but "
                       "rounds.teacher is \"self\": the teacher would be the student itself, "
                       "whose distribution equals the student's, so the loss and its gradient "
                       "are zero; set rounds.teacher to snapshot, ema or checkpoint, or use "
                       "loss \"sft\"", src, name, p->loss);
    if (!distill && p->on_policy > 0)
        return ad_fail(AD_ERR_CONFIG, "%s: %s.on_policy: %g needs a distillation loss (%s.loss "
                       "is \"sft\", which has no teacher to score the student's sequences)",
                       src, name, p->on_policy, name);
    return AD_OK;
}

/* model.max_seq_len must hold the longest example of round 0, the evaluation grid and
 * the rounds; the message names the longest one and the size it needs. */
static AdStatus check_lengths(const AdExperimentConfig *c, const char *src) {
    int rmax = rounds_max_len(c);
    if (rmax > MAX_TASK_LEN)
        return ad_fail(AD_ERR_CONFIG, "%s: rounds.count: the rounds reach length %d (rounds."
                       "length_start %d + (rounds.count %d - 1) * rounds.length_step %d + "
                       "rounds.length_span %d), beyond the longest task length %d", src, rmax,
                       c->rounds.length_start, c->rounds.count, c->rounds.length_step,
                       c->rounds.length_span, MAX_TASK_LEN);
    /* prompts from a file or <bos> have no task lengths; a student from a checkpoint has
     * its own context, against which the run (and the dry run) checks these lengths */
    if (strcmp(c->task.source, "task") != 0 || c->init_from[0]) return AD_OK;
    struct { const char *what; int len; } use[] = {
        {"the longest evaluation example (task.eval_max_len", c->task.eval_max_len},
        {"the longest training example (task.train_max_len", c->task.train_max_len},
        {"the longest prompt of the rounds (rounds.length_start + (rounds.count - 1) * "
         "rounds.length_step + rounds.length_span =", rmax},
    };
    int worst = 0;
    for (int i = 1; i < 3; i++)
        if (use[i].len > use[worst].len) worst = i;
    AdTaskKind k = (AdTaskKind)ad_task_parse(c->task.name);
    int need = example_tokens(k, use[worst].len);
    if (need > c->model.max_seq_len)
        return ad_fail(AD_ERR_CONFIG, "%s: model.max_seq_len: %d is too short for %s %d): "
                       "task %s at length %d takes %d tokens (<bos> prompt answer <eos>); set "
                       "model.max_seq_len to at least %d", src, c->model.max_seq_len,
                       use[worst].what, use[worst].len, c->task.name, use[worst].len, need, need);
    return AD_OK;
}

/* 1 if select.scorer is computed under the score.* switches; *needs names the switch. */
static int scorer_enabled(const AdExperimentConfig *c, const char *scorer, const char **needs) {
    switch (ad_score_parse(scorer)) {
    case AD_SCORE_MAJORITY: *needs = "score.majority = true"; return c->score.majority;
    case AD_SCORE_ENSEMBLE: *needs = "score.ensemble > 0"; return c->score.ensemble > 0;
    case AD_SCORE_JUDGE: *needs = "score.self_judge = true"; return c->score.self_judge;
    case AD_SCORE_LOGPROB_MEAN:
    case AD_SCORE_LOGPROB_MIN:
    case AD_SCORE_PERPLEXITY: *needs = "score.logprob = true"; return c->score.logprob;
    default: *needs = ""; return 1; /* verifier, length: always computed */
    }
}

static AdStatus check_select(const AdExperimentConfig *c, const char *src) {
    AdSelectPolicy policy = (AdSelectPolicy)ad_select_parse(c->select.policy);
    if (c->select.min_agreement > 0 && c->generate.samples == 1)
        return ad_fail(AD_ERR_CONFIG, "%s: select.min_agreement: %g needs generate.samples > 1 "
                       "(with one sample per prompt each answer agrees only with itself)", src,
                       c->select.min_agreement);
    if (c->select.min_agreement > 0 && !c->score.majority)
        return ad_fail(AD_ERR_CONFIG, "%s: select.min_agreement: %g needs score.majority = true",
                       src, c->select.min_agreement);
    if (c->select.min_ensemble > 0 && c->score.ensemble == 0)
        return ad_fail(AD_ERR_CONFIG, "%s: select.min_ensemble: %g needs score.ensemble > 0", src,
                       c->select.min_ensemble);
    /* the policies that rank, and one_per_prompt, order candidates by select.scorer */
    int ranks = policy == AD_SELECT_THRESHOLD || policy == AD_SELECT_TOPK ||
                policy == AD_SELECT_BEST_OF_N || policy == AD_SELECT_TOP_FRAC ||
                c->select.one_per_prompt;
    const char *needs;
    if (ranks && !scorer_enabled(c, c->select.scorer, &needs))
        return ad_fail(AD_ERR_CONFIG, "%s: select.scorer: \"%s\" is not computed; it needs %s",
                       src, c->select.scorer, needs);
    if (policy == AD_SELECT_TOPK && c->select.k < 1)
        return ad_fail(AD_ERR_CONFIG, "%s: select.k: %d must be >= 1 for select.policy \"topk\"",
                       src, c->select.k);
    if ((policy == AD_SELECT_TOP_FRAC || policy == AD_SELECT_RANDOM) && !(c->select.frac > 0))
        return ad_fail(AD_ERR_CONFIG, "%s: select.frac: %g must be in (0, 1] for select.policy "
                       "\"%s\"", src, c->select.frac, c->select.policy);
    return AD_OK;
}

/* train.objective against train.loss, and what each preference pair builder needs. */
static AdStatus check_objective(const AdExperimentConfig *c, const char *src) {
    int divergence = ad_loss_parse(c->train.loss) != AD_LOSS_SFT;
    if (!strcmp(c->objective, "sft") && divergence)
        return ad_fail(AD_ERR_CONFIG, "%s: train.objective: \"sft\" trains with cross-entropy, but "
                       "train.loss is the divergence \"%s\"; set train.objective to "
                       "\"distillation\" or train.loss to \"sft\"", src, c->train.loss);
    if (!strcmp(c->objective, "distillation") && !divergence)
        return ad_fail(AD_ERR_CONFIG, "%s: train.objective: \"distillation\" needs a divergence "
                       "in train.loss (fkl, rkl, jsd, tvd, skl, srkl), not \"sft\"", src);
    if (!strcmp(c->objective, "grpo")) {
        const char *needs;
        if (divergence)
            return ad_fail(AD_ERR_CONFIG, "%s: train.loss: \"%s\" is a distillation loss; grpo "
                           "rounds use the clipped RL objective: leave train.loss \"sft\"", src,
                           c->train.loss);
        if (strcmp(c->rounds.teacher, "self") != 0)
            return ad_fail(AD_ERR_CONFIG, "%s: rounds.teacher: grpo rounds sample from the policy "
                           "they train (on-policy): use \"self\", not \"%s\"", src,
                           c->rounds.teacher);
        if (c->generate.samples < 2)
            return ad_fail(AD_ERR_CONFIG, "%s: generate.samples: grpo compares the samples of a "
                           "prompt and needs a group of >= 2 (it is %d)", src, c->generate.samples);
        if (!scorer_enabled(c, c->rl.reward, &needs))
            return ad_fail(AD_ERR_CONFIG, "%s: rl.reward: \"%s\" is not computed; it needs %s",
                           src, c->rl.reward, needs);
        if (!strcmp(c->rl.reward, "verifier") && strcmp(c->task.source, "task") != 0)
            return ad_fail(AD_ERR_CONFIG, "%s: rl.reward: \"verifier\" needs a task (task.source "
                           "\"task\", not \"%s\")", src, c->task.source);
        return AD_OK;
    }
    if (strcmp(c->objective, "preference") != 0) return AD_OK;
    if (divergence)
        return ad_fail(AD_ERR_CONFIG, "%s: train.loss: \"%s\" is a distillation loss; preference "
                       "rounds (train.objective \"preference\") use preference.loss: leave "
                       "train.loss \"sft\"", src, c->train.loss);
    if (!strcmp(c->rounds.teacher, "ema"))
        return ad_fail(AD_ERR_CONFIG, "%s: rounds.teacher: \"ema\" averages the student's updates "
                       "of sft and distillation rounds; preference rounds do not keep it: use "
                       "self, snapshot or checkpoint", src);
    const char *pairs = c->preference.pairs, *needs;
    if (strcmp(pairs, "spin") != 0 && c->generate.samples < 2)
        return ad_fail(AD_ERR_CONFIG, "%s: preference.pairs: \"%s\" compares samples of one prompt "
                       "and needs generate.samples >= 2 (it is %d)", src, pairs, c->generate.samples);
    if (strcmp(pairs, "best_worst") != 0 && strcmp(c->task.source, "task") != 0)
        return ad_fail(AD_ERR_CONFIG, "%s: preference.pairs: \"%s\" needs the ground truth of a "
                       "task (task.source \"task\", not \"%s\")", src, pairs, c->task.source);
    if (!strcmp(pairs, "best_worst") && !scorer_enabled(c, c->preference.scorer, &needs))
        return ad_fail(AD_ERR_CONFIG, "%s: preference.scorer: \"%s\" is not computed; it needs %s",
                       src, c->preference.scorer, needs);
    return AD_OK;
}

/* model.tokenizer_from is for a new student, and "teacher" needs a checkpoint teacher. */
static AdStatus check_tokenizer_from(const AdExperimentConfig *c, const char *src) {
    if (c->tokenizer_from[0] == '\0') return AD_OK;
    if (c->init_from[0])
        return ad_fail(AD_ERR_CONFIG, "%s: model.tokenizer_from: \"%s\" is for a new student; "
                       "a student from model.init_from (%s) keeps that checkpoint's tokenizer: "
                       "leave model.tokenizer_from empty", src, c->tokenizer_from, c->init_from);
    if (!strcmp(c->tokenizer_from, "teacher") && strcmp(c->rounds.teacher, "checkpoint") != 0)
        return ad_fail(AD_ERR_CONFIG, "%s: model.tokenizer_from: \"teacher\" takes the tokenizer "
                       "of rounds.teacher_path, but rounds.teacher is \"%s\", not \"checkpoint\"",
                       src, c->rounds.teacher);
    return AD_OK;
}

/* Rules that tie several keys together, on a resolved config. */
static AdStatus check(const void *cfg, const char *src) {
    const AdExperimentConfig *c = cfg;
    AdStatus st = ad_config_model_check(&c->model, src);
    if (st == AD_OK) st = check_phase(c, &c->pretrain, "pretrain", src);
    if (st == AD_OK) st = check_phase(c, &c->train, "train", src);
    if (st != AD_OK) return st;

    if (c->task.train_min_len > c->task.train_max_len)
        return ad_fail(AD_ERR_CONFIG, "%s: task.train_min_len: %d is greater than "
                       "task.train_max_len (%d)", src, c->task.train_min_len,
                       c->task.train_max_len);
    if (c->task.eval_min_len > c->task.eval_max_len)
        return ad_fail(AD_ERR_CONFIG, "%s: task.eval_min_len: %d is greater than "
                       "task.eval_max_len (%d)", src, c->task.eval_min_len, c->task.eval_max_len);
    int from_file = !strcmp(c->task.source, "file") || !strcmp(c->task.source, "jsonl");
    if (from_file && c->task.path[0] == '\0')
        return ad_fail(AD_ERR_CONFIG, "%s: task.path: required when task.source is \"%s\"", src,
                       c->task.source);
    if ((st = check_lengths(c, src)) != AD_OK) return st;

    if ((st = check_tokenizer_from(c, src)) != AD_OK) return st;
    if (strcmp(c->rounds.teacher, "checkpoint") == 0 && c->rounds.teacher_path[0] == '\0')
        return ad_fail(AD_ERR_CONFIG, "%s: rounds.teacher_path: required when rounds.teacher is "
                       "\"checkpoint\"", src);
    if (c->rounds.replay_frac != -1.0 && c->rounds.replay_frac < 0)
        return ad_fail(AD_ERR_CONFIG, "%s: rounds.replay_frac: %g must be -1 (in proportion to "
                       "the ground truth's size) or in [0, 1]", src, c->rounds.replay_frac);

    if (!strcmp(c->rounds.prompt_source, "seed") && (from_file || c->task.seed_examples == 0 ||
                                                      strcmp(c->task.source, "task") != 0))
        return ad_fail(AD_ERR_CONFIG, "%s: rounds.prompt_source: \"seed\" draws the rounds' prompts "
                       "from round 0's task.seed_examples; it needs task.source \"task\" and "
                       "task.seed_examples > 0", src);
    if (c->generate.samples > 1 && c->generate.temperature == 0)
        return ad_fail(AD_ERR_CONFIG, "%s: generate.samples: %d samples at "
                       "generate.temperature 0 (greedy) are all the same answer; set a "
                       "temperature > 0 or samples 1", src, c->generate.samples);
    if (c->score.self_judge && !strstr(c->score.judge_template, "{answer}"))
        return ad_fail(AD_ERR_CONFIG, "%s: score.judge_template: has no \"{answer}\" for the "
                       "self-judge to see", src);
    if ((st = check_objective(c, src)) != AD_OK) return st;
    return check_select(c, src);
}

/* ---- public ---- */

static const AdConfigSpec experiment_spec = {
    .schema = &experiment_schema, .size = sizeof(AdExperimentConfig),
    .default_source = "experiment", .parse_name = "ad_experiment_config_parse",
    .resolve = resolve, .check = check};

void ad_experiment_config_defaults(AdExperimentConfig *c) {
    ad_config_spec_defaults(&experiment_spec, c);
}

AdStatus ad_experiment_config_parse(AdExperimentConfig *c, const char *json_text,
                                    const char *source_name, const char *const *overrides,
                                    int n_overrides) {
    return ad_config_spec_parse(&experiment_spec, c, json_text, source_name, overrides,
                                n_overrides);
}

AdStatus ad_experiment_config_load(AdExperimentConfig *c, const char *path,
                                   const char *const *overrides, int n_overrides) {
    return ad_config_spec_load(&experiment_spec, c, path, overrides, n_overrides);
}

char *ad_experiment_config_to_json(const AdExperimentConfig *c) {
    return ad_schema_to_json(&experiment_schema, c);
}

void ad_experiment_config_print_keys(FILE *f) {
    AdExperimentConfig d;
    memset(&d, 0, sizeof d);
    ad_schema_defaults(&experiment_schema, &d); /* unresolved: shows 0 for the automatic values */
    ad_schema_print_keys(&experiment_schema, &d, f);
}

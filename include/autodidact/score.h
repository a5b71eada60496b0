/* score.h: the candidates of one round, the scorers that rate them and the selection
 * policies that choose what the student trains on. Candidates are answers (text and
 * tokens) to prompts, several samples per prompt. A scorer fills one float per
 * candidate (NAN where it does not apply); selection turns scores into a keep mask.
 * No training and no generation here (log-probability scorers take a model and run a
 * forward pass). */
#ifndef AUTODIDACT_SCORE_H
#define AUTODIDACT_SCORE_H

#include "autodidact/model.h"
#include "autodidact/rng.h"
#include "autodidact/tasks.h"
#include "autodidact/tokenizer.h"

enum {
    AD_SCORE_VERIFIER = 0, /* 1/0: the task verifier (ground truth; for evaluation and the
                              oracle-filter baseline), NAN when the task has none */
    AD_SCORE_LENGTH,       /* 1/0: the answer's length is one the task allows at this prompt */
    AD_SCORE_MAJORITY,     /* share of the prompt's samples whose answer equals this one */
    AD_SCORE_ENSEMBLE,     /* share of the ensemble models' answers equal to this one */
    AD_SCORE_LOGPROB_MEAN, /* mean token log-probability of the answer (+ <eos>) under the teacher */
    AD_SCORE_LOGPROB_MIN,  /* minimum token log-probability under the teacher */
    AD_SCORE_PERPLEXITY,   /* exp(-mean log-probability) */
    AD_SCORE_JUDGE,        /* log p(verdict | judge prompt) under the teacher */
    AD_SCORE_COUNT
};

const char *ad_score_name(int scorer); /* "verifier", "length", "majority", "ensemble",
                                          "logprob_mean", "logprob_min", "perplexity", "judge" */
int ad_score_parse(const char *s);     /* -1 if unknown */

typedef struct {
    long n_prompts;
    int samples;              /* candidates per prompt (K) */
    long n;                   /* candidates = n_prompts * samples; candidate c belongs to
                                 prompt c / samples */
    char **prompt;            /* (n_prompts) owned, NUL-terminated */
    int *length;              /* (n_prompts) difficulty of each prompt (-1 unknown) */
    char **answer;            /* (n) owned decoded answers, without <eos> */
    int *ended;               /* (n) 1 if the candidate ended with <eos> */
    float *scores[AD_SCORE_COUNT]; /* (n) each, owned; NAN until scored */
    unsigned char *selected;  /* (n) 0/1 */
    signed char *correct;     /* (n) 1 right, 0 wrong, -1 unknown: ground truth, for logging */
} AdCandidates;

/* Allocates for n_prompts x samples candidates with empty strings and NAN scores. */
AdStatus ad_candidates_init(AdCandidates *c, long n_prompts, int samples);
void ad_candidates_free(AdCandidates *c);
/* Copies a prompt / an answer string into the table. */
AdStatus ad_candidates_set_prompt(AdCandidates *c, long p, const char *text, int length);
AdStatus ad_candidates_set_answer(AdCandidates *c, long i, const char *text, int ended);

/* Verifier and correctness (task known): scores[VERIFIER] and correct[]. */
void ad_score_verifier(AdCandidates *c, AdTaskKind task);
/* Length filter: 1 if ad_task_answer_length_ok(task, prompt, answer). */
void ad_score_length(AdCandidates *c, AdTaskKind task);
/* Self-consistency among each prompt's samples. */
void ad_score_majority(AdCandidates *c);
/* Agreement with other models' answers: others[m][p] is model m's answer to prompt p. */
void ad_score_ensemble(AdCandidates *c, char *const *const *others, int n_models);

/* Log-probability scorers under `model`: each sequence "<bos> prompt answer <eos>" (the
 * <eos> only if the candidate ended) is run through a forward pass in batches of
 * batch_size rows of seq_len tokens (batch_size is cut to the number of candidates, so
 * a large value costs no memory beyond the work); fills LOGPROB_MEAN, LOGPROB_MIN,
 * PERPLEXITY over the answer tokens. */
AdStatus ad_score_logprobs(AdCandidates *c, AdModel *model, const AdTokenizer *tok,
                           int batch_size, int seq_len);
/* Self-judging: log p(verdict | template) under `model`, where template has "{prompt}"
 * and "{answer}" replaced; verdict "" means the <eos> token. */
AdStatus ad_score_judge(AdCandidates *c, AdModel *model, const AdTokenizer *tok,
                        const char *judge_template, const char *verdict, int batch_size,
                        int seq_len);

typedef enum {
    AD_SELECT_ALL = 0,   /* keep every survivor of the filters */
    AD_SELECT_THRESHOLD, /* score >= threshold */
    AD_SELECT_TOPK,      /* the k best-scored candidates of each prompt */
    AD_SELECT_BEST_OF_N, /* the best-scored candidate of each prompt */
    AD_SELECT_TOP_FRAC,  /* the best frac of all candidates */
    AD_SELECT_RANDOM,    /* each candidate with probability frac (baseline) */
    AD_SELECT_ORACLE     /* candidates the verifier accepts (upper-bound baseline) */
} AdSelectPolicy;

const char *ad_select_name(AdSelectPolicy p);
int ad_select_parse(const char *s);

typedef struct {
    int length_filter;      /* drop LENGTH == 0 */
    double min_agreement;   /* drop MAJORITY < this (0: off) */
    double min_ensemble;    /* drop ENSEMBLE < this (0: off) */
    AdSelectPolicy policy;
    int scorer;             /* what THRESHOLD/TOPK/BEST_OF_N/TOP_FRAC rank by (higher is
                               better; PERPLEXITY is ranked lower-is-better) */
    double threshold;
    int k;
    double frac;
    int one_per_prompt;     /* then keep at most one candidate per prompt: the best by
                               `scorer`, ties to the lowest sample index */
} AdSelectConfig;

/* Fills c->selected: filters first, then the policy over the survivors. Candidates with
 * a NAN score under the ranking scorer are never selected by a ranking policy. Ties are
 * broken by candidate index, so selection is deterministic. rng is used by RANDOM only.
 * Returns the number selected. */
long ad_select(AdCandidates *c, const AdSelectConfig *s, AdRng *rng);

#endif

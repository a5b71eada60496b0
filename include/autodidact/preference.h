/* preference.h: the DPO family of losses on sequence log-probabilities (DPO with label
 * smoothing, IPO, SimPO, an optional SFT term on the chosen answers), TRL's metrics, and
 * the two bridges to token logits: per-sequence log-probability sums of a forward pass, and
 * the logit gradient of a loss given its derivative by sequence. No sampling, no models,
 * no allocation. */
#ifndef AUTODIDACT_PREFERENCE_H
#define AUTODIDACT_PREFERENCE_H
#include "autodidact/common.h"

typedef enum {
    AD_PREF_DPO = 0, /* -(1-e) log s(b h) - e log s(-b h), h = (pc - rc) - (pr - rr) on sums
                        (Rafailov et al.; e = label smoothing, conservative DPO) */
    AD_PREF_IPO,     /* (h - 1/(2b))^2 with h on per-token means (Azar et al.; as TRL) */
    AD_PREF_SIMPO    /* -(1-e) log s(z) - e log s(-z), z = b (pc/lc - pr/lr) - gamma; no
                        reference (Meng et al.; TRL's CPO loss_type simpo) */
} AdPrefKind;
const char *ad_pref_name(AdPrefKind k); /* "dpo", "ipo", "simpo" */
int ad_pref_parse(const char *s);       /* -1 if unknown */

typedef struct {
    AdPrefKind kind;
    double beta;            /* DPO / IPO / SimPO beta (> 0) */
    double label_smoothing; /* DPO and SimPO: assumed share of flipped labels, in [0, 0.5) */
    double gamma;           /* SimPO's target margin (TRL's simpo_gamma) */
    double sft_alpha;       /* weight of the mean NLL of the chosen tokens (TRL's rpo_alpha) */
} AdPrefLoss;

/* TRL's DPOTrainer metrics, as sums over pairs (divide by n for TRL's means). For IPO and
 * SimPO the log-probabilities are per-token means, as the loss sees them. */
typedef struct {
    double loss;               /* the loss itself (already a mean: not a sum) */
    double rewards_chosen;     /* sum of b (pc - rc)   (SimPO: b pc) */
    double rewards_rejected;   /* sum of b (pr - rr)   (SimPO: b pr) */
    double rewards_margins;    /* sum of chosen - rejected rewards */
    double rewards_accuracies; /* count of pairs with chosen reward > rejected reward */
    double logps_chosen, logps_rejected;
    long n;                    /* pairs summed */
} AdPrefMetrics;

/* The loss of n pairs, part of a batch of n_total pairs whose chosen answers hold
 * chosen_tokens_total tokens:
 *   (1 / n_total) sum_i loss_i  +  sft_alpha * (sum_i -pc_i) / chosen_tokens_total
 * so that the parts of an accumulated batch add up to its mean. pc, pr: the policy's
 * log-probability sums of the chosen and rejected answers; lc, lr: their token counts
 * (>= 1); rc, rr: the reference's sums (ignored by SimPO; may then be NULL).
 * d_pc, d_pr (may be NULL) receive d(loss)/d(pc_i), d(loss)/d(pr_i). metrics (may be
 * NULL) are added to (loss included). Returns this part's loss. */
double ad_pref_loss(double *d_pc, double *d_pr, AdPrefMetrics *metrics, const AdPrefLoss *L,
                    const double *pc, const double *pr, const int *lc, const int *lr,
                    const double *rc, const double *rr, int n, long n_total,
                    long chosen_tokens_total);

/* Per-row sums of log p(target) over the unmasked targets (>= 0) of logits (B, T, V):
 * logp[b] and count[b] (count may be NULL). */
void ad_pref_seq_logps(double *logp, int *count, const float *logits, const int *targets, int B,
                       int T, int V);
/* dlogits (B, T, V) = d_seq[b] * d(logp_b)/d(logits): d_seq[b] (onehot(target) - softmax) at
 * unmasked positions, zero elsewhere. */
void ad_pref_seq_dlogits(float *dlogits, const float *logits, const int *targets,
                         const double *d_seq, int B, int T, int V);
/* Per-token bridges (the RL objective, rl.h): logp (B, T) = log p(target) at unmasked
 * positions, 0 elsewhere; entropy (B, T; may be NULL) the softmax's entropy there, 0
 * elsewhere. dlogits (B, T, V) = d_tok[b, t] (onehot(target) - softmax) at unmasked
 * positions, zero elsewhere. */
void ad_pref_token_logps(double *logp, double *entropy, const float *logits, const int *targets,
                         int B, int T, int V);
void ad_pref_token_dlogits(float *dlogits, const float *logits, const int *targets,
                           const double *d_tok, int B, int T, int V);
#endif

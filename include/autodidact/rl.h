/* rl.h: the policy-gradient objective of online RL on verifiable rewards: group-relative
 * advantages (GRPO, Dr. GRPO, RLOO), the clipped per-token importance ratio, the k3 KL to a
 * frozen reference and the loss normalisations the papers differ on, with the derivative by
 * per-token log-probability and TRL's GRPOTrainer metrics. Works on log-probabilities the
 * caller computed (preference.h bridges them to logits); no model, no sampling, no allocation. */
#ifndef AUTODIDACT_RL_H
#define AUTODIDACT_RL_H
#include "autodidact/common.h"

typedef enum {
    AD_RL_BASELINE_MEAN = 0, /* the group mean (GRPO, Shao et al. 2024; Dr. GRPO) */
    AD_RL_BASELINE_RLOO      /* the mean of the other G - 1 rewards (Ahmadian et al. 2024) */
} AdRlBaseline;

/* Advantages of n_groups groups of G >= 2 rewards (group g = reward[g*G .. g*G + G - 1]):
 * adv_i = r_i - baseline_i, divided by (std_g + 1e-4) when scale_std (std_g the unbiased
 * standard deviation of the group, as torch.std and TRL's scale_rewards; Dr. GRPO turns it
 * off). A group of equal rewards gets zero advantages. Returns the number of such groups
 * (TRL's frac_reward_zero_std times n_groups). */
long ad_rl_advantages(double *adv, const double *reward, long n_groups, int G,
                      AdRlBaseline baseline, int scale_std);

typedef enum {
    AD_RL_NORM_SEQUENCE = 0, /* mean over sequences of each one's token mean (GRPO; TRL "grpo") */
    AD_RL_NORM_TOKEN,        /* sum over the batch's tokens / their count (DAPO; TRL "bnpo") */
    AD_RL_NORM_CONSTANT      /* sum over tokens / (sequences * max_len) (Dr. GRPO; TRL "dr_grpo") */
} AdRlNorm;
const char *ad_rl_norm_name(AdRlNorm k); /* "sequence", "token", "constant" */
int ad_rl_norm_parse(const char *s);     /* -1 if unknown */

typedef struct {
    double epsilon;      /* the ratio is clipped to [1 - epsilon, 1 + epsilon_high] */
    double epsilon_high; /* <= 0: epsilon (symmetric clip) */
    double beta;         /* weight of the k3 KL to the reference; 0: no reference needed */
    AdRlNorm norm;
    int max_len;         /* AD_RL_NORM_CONSTANT's per-sequence token budget (>= 1) */
} AdRlLoss;

/* TRL's GRPOTrainer metrics, as sums over the unmasked tokens (divide by `tokens`). */
typedef struct {
    double loss;        /* the loss itself (already normalised, not a sum) */
    double kl;          /* sum of the k3 estimates (computed whenever ref is given) */
    double clip_low;    /* tokens with ratio < 1 - epsilon and advantage < 0 */
    double clip_high;   /* tokens with ratio > 1 + epsilon_high and advantage > 0 */
    double ratio;       /* sum of the ratios */
    long tokens;
} AdRlMetrics;

/* The clipped surrogate of B sequences of T positions, part of a batch of n_seq_total
 * sequences holding n_tok_total unmasked tokens (the parts of an accumulated batch add up to
 * the whole's loss). Position (b, t) counts when targets[b*T + t] >= 0; logp, old, ref (B, T)
 * are the policy's, the sampling policy's and the reference's log-probabilities of that
 * target (ref may be NULL when beta is 0); adv (B) the sequences' advantages. Per token,
 * with ratio r = exp(logp - old) and c = clip(r, 1 - eps, 1 + eps_high):
 *   l = -min(r A, c A) + beta (exp(ref - logp) - (ref - logp) - 1)
 * weighted by 1 / (len_b n_seq_total) (sequence), 1 / n_tok_total (token) or
 * 1 / (n_seq_total max_len) (constant), len_b the sequence's unmasked tokens.
 * d_logp (B, T; may be NULL) receives d loss / d logp (0 at masked positions); metrics (may
 * be NULL) are added to. Returns this part's loss. */
double ad_rl_loss(double *d_logp, AdRlMetrics *metrics, const AdRlLoss *L, const double *logp,
                  const double *old, const double *ref, const int *targets, const double *adv,
                  int B, int T, long n_seq_total, long n_tok_total);
#endif

/* losses.h: token losses on logits, each returning the summed loss over unmasked
 * tokens and writing dlogits already scaled by `scale` (1 / number of unmasked
 * tokens in the whole accumulated batch). A target < 0 marks a masked token (prompt
 * or padding): it contributes no loss and a zero gradient. No sampling here. */
#ifndef AUTODIDACT_LOSSES_H
#define AUTODIDACT_LOSSES_H

#include "autodidact/common.h"

/* Cross-entropy with hard labels.
 * logits, dlogits: (N, V); targets: (N). dlogits may be NULL (evaluation only).
 * token_loss (N, may be NULL) receives -log p(target) (0 where masked).
 * Returns the sum of token losses (double) over unmasked tokens. */
double ad_loss_ce(float *dlogits, float *token_loss, const float *logits, const int *targets,
                  int N, int V, float scale);

typedef enum {
    AD_LOSS_SFT = 0, /* cross-entropy on hard labels (ad_loss_ce) */
    AD_LOSS_FKL,     /* forward KL  sum p log(p/q)            (mode covering; classic KD) */
    AD_LOSS_RKL,     /* reverse KL  sum q log(q/p)            (mode seeking; MiniLLM) */
    AD_LOSS_JSD,     /* beta KL(p||m) + (1-beta) KL(q||m), m = beta p + (1-beta) q (GKD);
                        beta = 0 is exactly forward KL, beta = 1 exactly reverse KL */
    AD_LOSS_TVD,     /* 1/2 sum |p - q| */
    AD_LOSS_SKL,     /* skew KL: KL(p || a p + (1-a) q)          (DistiLLM) */
    AD_LOSS_SRKL     /* skew reverse KL: KL(q || (1-a) p + a q)  (DistiLLM) */
} AdLossKind;

const char *ad_loss_name(AdLossKind k); /* "sft", "fkl", "rkl", "jsd", "tvd", "skl", "srkl" */
int ad_loss_parse(const char *s);       /* -1 if unknown */

/* Token-level divergence between the teacher p = softmax(teacher_logits / tau) and the
 * student q = softmax(student_logits / tau) at every row whose target is >= 0 (the target
 * value itself is not used). param is beta (JSD) or alpha (SKL, SRKL); ignored otherwise.
 * dlogits (may be NULL) receives scale * d(divergence)/d(student_logits), including the
 * 1/tau of the temperature; masked rows get zeros. token_loss (may be NULL) receives each
 * row's divergence. Returns the sum over unmasked rows. No allocation: rows are processed
 * in a few passes over the logits. kind must not be AD_LOSS_SFT. */
double ad_loss_divergence(float *dlogits, float *token_loss, const float *student_logits,
                          const float *teacher_logits, const int *targets, int N, int V,
                          AdLossKind kind, float param, float tau, float scale);

/* Number of unmasked targets (targets[i] >= 0). */
long ad_count_targets(const int *targets, long n);

#endif

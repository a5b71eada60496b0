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

/* Number of unmasked targets (targets[i] >= 0). */
long ad_count_targets(const int *targets, long n);

#endif

/* method_update.c: the update step shared by the round methods that run their own training
 * loop over a loss of their own (preference, grpo): checks the loss and the gradient norm,
 * clips, applies AdamW. The losses, batches and curves stay with each method. */
#include <math.h>

#include "round_method.h"

AdStatus ad_method_update(Run *r, int round, const char *what, long step, double loss, float lr,
                          float *gnorm) {
    const AdPhaseConfig *p = &r->cfg->train;
    if (!isfinite(loss))
        return ad_fail(AD_ERR_NAN, "round %d: %s step %ld: the loss is %g; stopping before the "
                       "update", round, what, step + 1, loss);
    *gnorm = ad_grad_clip(&r->student, (float)p->grad_clip);
    if (!isfinite(*gnorm))
        return ad_fail(AD_ERR_NAN, "round %d: %s step %ld: the gradient norm is %g; stopping "
                       "before the update", round, what, step + 1, *gnorm);
    ad_adamw_step(&r->opt_state, &r->student, lr);
    return AD_OK;
}

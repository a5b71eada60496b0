/* method_kd.c: the "distillation" round method: the pool as in SFT (method_sft.c), trained
 * with the divergence train.loss between the teacher's and the student's distributions,
 * plus GKD's on-policy share: train.on_policy x (selected) sequences the student samples
 * itself, used by this round's student update only. */
#include <string.h>

#include "round_method.h"

/* The on-policy share: the student answers its own prompts (stream round + 500000, one
 * sample at temperature 1); these rows carry origin AD_ON_POLICY_ORIGIN + round and are
 * dropped after the student's update (ad_method_pool_train). */
static AdStatus add_on_policy(Run *r, RoundBatch *b) {
    const AdExperimentConfig *cfg = r->cfg;
    if (cfg->train.on_policy <= 0) return AD_OK;
    long n_own = (long)(cfg->train.on_policy * (b->n_selected > 0 ? b->n_selected : cfg->rounds.prompts));
    AdCandidates own;
    memset(&own, 0, sizeof own);
    long own_tokens = 0;
    AdStatus st = ad_round_candidates(r, b->round + 500000, b->lo, b->hi, n_own > 0 ? n_own : 1,
                                      &r->student, 1, 1.0f, &own, &own_tokens);
    for (long i = 0; i < own.n && !st; i++)
        st = ad_data_pool_add_cut(&r->pool, own.prompt[i], own.answer[i],
                                  AD_ON_POLICY_ORIGIN + b->round, ad_round_answer_was_cut(r, &own, i));
    ad_candidates_free(&own);
    return st;
}

static AdStatus kd_build(Run *r, RoundBatch *b) {
    AdStatus st = ad_method_pool_build(r, b);
    return st ? st : add_on_policy(r, b);
}

const RoundMethod ad_method_distillation = {"distillation", 1, kd_build, ad_method_pool_train,
                                            NULL, NULL};

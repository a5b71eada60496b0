/* method_sft.c: the "sft" round method: the selected candidates join the example pool and
 * the student is fine-tuned on the pool with cross-entropy (rounds.replay_frac of fresh
 * ground truth for a task). The pool helpers are shared with distillation (method_kd.c).
 * Generation, scoring and selection happen before, in the loop. */
#include <string.h>

#include "round_method.h"

AdStatus ad_method_pool_build(Run *r, RoundBatch *b) {
    const AdCandidates *c = b->cand;
    AdStatus st = AD_OK;
    if (!r->cfg->rounds.keep_history) ad_data_pool_remove(&r->pool, 1, b->round - 1);
    for (long i = 0; i < c->n && !st; i++)
        if (c->selected[i])
            st = ad_data_pool_add_cut(&r->pool, c->prompt[i / c->samples], c->answer[i], b->round,
                                      ad_round_answer_was_cut(r, c, i));
    return st;
}

static const char *replay_share(const Run *r, char *buf, size_t cap) {
    if (!r->is_task) snprintf(buf, cap, "%s", "");
    else snprintf(buf, cap, " (%.0f%% of rows fresh ground truth at lengths %d..%d)",
                  100.0 * r->pool.replay_frac, r->cfg->task.train_min_len, r->cfg->task.train_max_len);
    return buf;
}

AdStatus ad_method_pool_train(Run *r, RoundBatch *b) {
    const AdExperimentConfig *cfg = r->cfg;
    double replay = cfg->rounds.replay_frac;
    if (replay < 0) replay = 0.5;
    r->pool.replay_frac = r->is_task ? replay : 0.0;
    char what[128];
    ad_round_say(r, "round %d | retraining on %ld examples%s, %d steps, loss %s", b->round,
                 r->pool.n_ex, replay_share(r, what, sizeof what), cfg->train.steps, cfg->train.loss);
    AdStatus st = ad_round_train_phase(r, b->round, 0, &r->student, &r->opt_state, &r->pool,
                                       b->teacher, &b->curve, &b->loss, &b->tps);
    ad_data_pool_remove(&r->pool, AD_ON_POLICY_ORIGIN, AD_ON_POLICY_ORIGIN + 1000000);
    if (!st && r->n_members) st = ad_round_train_members(r, b->round, &r->pool, b->teacher);
    b->n_examples = r->pool.n_ex;
    return st;
}

const RoundMethod ad_method_sft = {"sft", 1, ad_method_pool_build, ad_method_pool_train, NULL, NULL};

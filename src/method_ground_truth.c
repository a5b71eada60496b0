/* method_ground_truth.c: round 0's method: the student (and every ensemble model) trains
 * on the task's ground truth (or task.seed_examples fixed examples, which start the pool)
 * with the pretrain settings; afterwards the restart weights and the EMA teacher start
 * from it. Generates nothing. */
#include <string.h>

#include "round_method.h"

static AdStatus gt_build(Run *r, RoundBatch *b) {
    const AdExperimentConfig *cfg = r->cfg;
    const AdPhaseConfig *p = &cfg->pretrain;
    if (p->steps > 0)
        ad_round_say(r, "round 0 | training on ground truth, lengths %d..%d, %d steps", b->lo, b->hi,
                     p->steps);
    else
        ad_round_say(r, "round 0 | no training (pretrain.steps 0)");
    b->n_examples = cfg->task.seed_examples > 0 ? cfg->task.seed_examples : (long)p->steps * p->batch_size;
    if (cfg->task.seed_examples > 0) {
        /* seed-set: a fixed small set of ground-truth examples */
        AdRng rng;
        ad_rng_init(&rng, cfg->seed, AD_STREAM_DATA, 1000000);
        char prompt[AD_TASK_MAX_TEXT], answer[AD_TASK_MAX_TEXT];
        AdStatus st = AD_OK;
        for (int i = 0; i < cfg->task.seed_examples && !st; i++) {
            int len = b->lo + (int)ad_rng_below(&rng, (uint32_t)(b->hi - b->lo + 1));
            st = ad_task_example(r->task, len, &rng, prompt, answer);
            if (!st) st = ad_data_pool_add(&r->pool, prompt, answer, 0);
        }
        b->data = r->pool; /* a view of the pool */
        b->data_borrowed = 1;
        return st;
    }
    if (p->steps > 0) return ad_data_init_task(&b->data, &r->tok, r->task, b->lo, b->hi, r->T);
    return AD_OK;
}

/* dst = a weights-only copy of src. */
static AdStatus copy_model(AdModel *dst, const AdModel *src) {
    ad_model_free(dst);
    AdStatus st = ad_model_init(dst, &src->cfg, 0);
    return st ? st : ad_model_copy_params(dst, src);
}

static AdStatus gt_train(Run *r, RoundBatch *b) {
    AdStatus st = ad_round_train_phase(r, 0, 0, &r->student, &r->opt_state, &b->data, NULL,
                                       &b->curve, &b->loss, &b->tps);
    if (!st && r->n_members) {
        ad_round_say(r, "round 0 | training %d ensemble model(s) with other seeds", r->n_members);
        st = ad_round_train_members(r, 0, &b->data, NULL);
    }
    if (!st && !strcmp(r->cfg->rounds.init, "restart")) st = copy_model(&r->base, &r->student);
    if (!st && !strcmp(r->cfg->rounds.teacher, "ema")) st = copy_model(&r->ema, &r->student);
    return st;
}

static void gt_release(Run *r, RoundBatch *b) {
    if (!b->data_borrowed) ad_data_free(&b->data);
    memset(&b->data, 0, sizeof b->data);
}

const RoundMethod ad_method_ground_truth = {"ground_truth", 0, gt_build, gt_train, NULL, gt_release};

/* train.c: the training loop (train.h): micro-batches -> forward -> loss -> backward,
 * accumulation, clipping, AdamW and the schedule, with a NaN guard, progress lines,
 * validation and checkpoints. Used by the CLI's train command and by the rounds.
 * Owns no model math and no file format. */
#include "autodidact/train.h"

#include <math.h>
#include <string.h>

#include "autodidact/checkpoint.h"
#include "autodidact/dist.h"
#include "autodidact/losses.h"

void ad_train_state_free(AdTrainState *s) {
    ad_adamw_free(&s->opt);
    free(s->config_json);
    memset(s, 0, sizeof *s);
}

void ad_format_duration(double s, char *buf, size_t cap) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, cap, "%lds", t);
}

int ad_trim_batch(int *tokens, int *targets, int B, int T) {
    int Tb = 1;
    for (int b = 0; b < B; b++)
        for (int t = T - 1; t >= Tb; t--)
            if (targets[(size_t)b * T + t] >= 0) {
                Tb = t + 1;
                break;
            }
    if (Tb < T)
        for (int b = 1; b < B; b++) {
            memmove(tokens + (size_t)b * Tb, tokens + (size_t)b * T, sizeof(int) * Tb);
            memmove(targets + (size_t)b * Tb, targets + (size_t)b * T, sizeof(int) * Tb);
        }
    return Tb;
}

AdStatus ad_eval_loss(AdModel *m, AdActs *acts, const AdData *data, uint64_t seed, int B,
                      int n_batches, int split, double *mean_loss, long *tokens) {
    int T = data->T;
    int *tok = ad_calloc((size_t)B * T * 2, sizeof(int), "evaluation batch");
    if (!tok) return AD_ERR_NOMEM;
    int *tgt = tok + (size_t)B * T;
    AdRng rng;
    ad_rng_init(&rng, seed, AD_STREAM_EVAL, 0);
    double sum = 0.0;
    long count = 0;
    AdStatus st = AD_OK;
    for (int i = 0; i < n_batches && !st; i++) {
        st = ad_data_batch(data, &rng, split, tok, tgt, B);
        if (st) break;
        int Tb = data->kind == AD_DATA_TEXT ? T : ad_trim_batch(tok, tgt, B, T);
        ad_model_forward(m, acts, tok, B, Tb);
        sum += ad_loss_ce(NULL, NULL, acts->logits, tgt, B * Tb, m->cfg.vocab_size, 1.0f);
        count += ad_count_targets(tgt, (long)B * Tb);
    }
    free(tok);
    if (st) return st;
    *mean_loss = count ? sum / count : 0.0;
    if (tokens) *tokens = count;
    return AD_OK;
}

/* Appends one micro-batch to a batch dump (train.h). */
static AdStatus dump_batch(FILE *f, long step, int a, int A, int B, int T, const int *tokens,
                           const int *targets) {
    int32_t head[5] = {(int32_t)step, a, A, B, T};
    size_t n = (size_t)B * T;
    int ok = fwrite(head, sizeof head, 1, f) == 1;
    for (size_t i = 0; ok && i < n; i++) ok = fwrite(&(int32_t){tokens[i]}, 4, 1, f) == 1;
    for (size_t i = 0; ok && i < n; i++) ok = fwrite(&(int32_t){targets[i]}, 4, 1, f) == 1;
    return ok ? AD_OK : ad_fail(AD_ERR_IO, "writing the batch dump failed at step %ld", step);
}

AdStatus ad_train(AdModel *m, AdTrainState *st, const AdData *data, const AdTrainOptions *o) {
    int B = o->batch_size, T = o->seq_len, A = o->grad_accum > 0 ? o->grad_accum : 1;
    int V = m->cfg.vocab_size;
    if (!m->grads_mem) return ad_fail(AD_ERR_ARG, "training needs a model with gradients");
    if (!st->opt.m) return ad_fail(AD_ERR_ARG, "training needs initialised optimizer state");
    if (T != data->T) return ad_fail(AD_ERR_ARG, "data rows of %d tokens, training seq_len %d", data->T, T);
    if (o->teacher && (o->teacher->cfg.vocab_size != V || o->teacher->cfg.max_seq_len < T))
        return ad_fail(AD_ERR_ARG, "the teacher's vocabulary (%d) must equal the student's (%d) and "
                       "its context (%d) hold seq_len %d", o->teacher->cfg.vocab_size, V,
                       o->teacher->cfg.max_seq_len, T);
    AdActs acts, tacts;
    memset(&tacts, 0, sizeof tacts);
    AdStatus rc = ad_acts_init(&acts, &m->cfg, B, T);
    if (rc) return rc;
    if (o->teacher && (rc = ad_acts_init(&tacts, &o->teacher->cfg, B, T))) {
        ad_acts_free(&acts);
        return rc;
    }
    size_t per = (size_t)B * T;
    int *tokens = ad_calloc(per * A * 2 + A, sizeof(int), "training batches");
    if (!tokens) {
        ad_acts_free(&acts);
        ad_acts_free(&tacts);
        return AD_ERR_NOMEM;
    }
    int *targets = tokens + per * A, *Tb = targets + per * A; /* rows used per micro-batch */
    long tokens_done = 0, tokens_at_log = 0;

    double t_start = ad_time_now(), t_last = t_start;
    long step_start = st->step;
    char eta[32];
    long row_lo, row_hi; /* this rank's rows of every micro-batch (data parallel) */
    ad_dist_range(B, &row_lo, &row_hi);
    while (st->step < o->steps) {
        long step = st->step;
        float lr = ad_schedule_lr(&o->sched, step);
        long count = 0;
        for (int a = 0; a < A && !rc; a++) {
            rc = ad_data_batch(data, &st->data_rng, 0, tokens + per * a, targets + per * a, B);
            if (rc) break;
            Tb[a] = data->kind == AD_DATA_TEXT ? T : ad_trim_batch(tokens + per * a, targets + per * a, B, T);
            count += ad_count_targets(targets + per * a, (long)B * Tb[a]);
            if (o->batch_dump) rc = dump_batch(o->batch_dump, step + 1, a, A, B, Tb[a],
                                               tokens + per * a, targets + per * a);
            tokens_done += (long)B * Tb[a];
        }
        if (rc) break;
        float scale = count ? 1.0f / (float)count : 0.0f;
        ad_model_zero_grad(m);
        double loss_sum = 0.0;
        for (int a = 0; a < A && row_hi > row_lo; a++) {
            int Bl = (int)(row_hi - row_lo);
            const int *tk = tokens + per * a + row_lo * Tb[a], *tg = targets + per * a + row_lo * Tb[a];
            int n = Bl * Tb[a];
            ad_model_forward(m, &acts, tk, Bl, Tb[a]);
            if (o->teacher) {
                ad_model_forward(o->teacher, &tacts, tk, Bl, Tb[a]);
                loss_sum += ad_loss_divergence(acts.dlogits, NULL, acts.logits, tacts.logits, tg, n, V,
                                               o->loss, o->loss_param, o->tau, scale);
            } else {
                loss_sum += ad_loss_ce(acts.dlogits, NULL, acts.logits, tg, n, V, scale);
            }
            ad_model_backward(m, &acts, tk, Bl, Tb[a]);
        }
        /* every rank's share summed: the gradient and loss of the whole batch everywhere */
        if ((rc = ad_dist_sum_floats(m->grads_mem, m->n_params)) || (rc = ad_dist_sum_doubles(&loss_sum, 1)))
            break;
        float loss = count ? (float)(loss_sum / count) : 0.0f;
        if (!isfinite(loss)) {
            rc = ad_fail(AD_ERR_NAN, "step %ld: the training loss is %g; stopping before the update "
                         "(weights and checkpoints from before this step are intact)", step + 1, loss);
            break;
        }
        float gnorm = ad_grad_clip(m, o->grad_clip);
        if (!isfinite(gnorm)) {
            rc = ad_fail(AD_ERR_NAN, "step %ld: the gradient norm is %g; stopping before the update "
                         "(weights and checkpoints from before this step are intact)", step + 1, gnorm);
            break;
        }
        ad_adamw_step(&st->opt, m, lr);
        if (o->ema) {
            float d = o->ema_decay, *e = o->ema->params_mem;
            const float *p = m->params_mem;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < m->n_params; i++) e[i] = d * e[i] + (1.0f - d) * p[i];
        }
        st->step++;
        st->tokens_seen += (double)count;

        double now = ad_time_now();
        int log_now = o->log_every > 0 && (st->step % o->log_every == 0 || st->step == o->steps);
        if (log_now || o->observer) {
            double tps = (double)(tokens_done - tokens_at_log) / (now - t_last + 1e-12);
            AdTrainRecord r = {st->step, loss, lr, gnorm, tps, now - t_start};
            if (o->observer) o->observer(&r, o->observer_user);
            if (log_now) {
                double rate = (now - t_start) / (double)(st->step - step_start);
                ad_format_duration(rate * (double)(o->steps - st->step), eta, sizeof eta);
                if (!o->quiet)
                    ad_log(AD_LOG_INFO, "%s%sstep %5ld/%ld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | ETA %s",
                           o->label ? o->label : "", o->label ? " | " : "", st->step, o->steps,
                           loss, lr, gnorm, tps, eta);
                t_last = now;
                tokens_at_log = tokens_done;
            }
        }
        if (o->eval_every > 0 && st->step % o->eval_every == 0 && o->eval_batches > 0) {
            int split = data->kind == AD_DATA_TEXT && data->n_ids > data->n_train ? 1 : 0;
            double vl;
            rc = ad_eval_loss(m, &acts, data, o->seed, B, o->eval_batches, split, &vl, NULL);
            if (rc) break;
            if (!o->quiet)
                ad_log(AD_LOG_INFO, "step %5ld | %s loss %.4f | perplexity %.3f", st->step,
                       split ? "validation" : "held-out", vl, exp(vl));
            t_last = ad_time_now();
            tokens_at_log = tokens_done;
        }
        if (o->ckpt_path && ((o->ckpt_every > 0 && st->step % o->ckpt_every == 0) || st->step == o->steps)) {
            rc = ad_dist_agree(ad_dist_is_root() ? ad_checkpoint_save(o->ckpt_path, m, o->tok, st) : AD_OK);
            if (rc) break;
            t_last = ad_time_now();
            tokens_at_log = tokens_done;
        }
    }
    free(tokens);
    ad_acts_free(&acts);
    ad_acts_free(&tacts);
    return rc;
}

/* data.c: turns task examples and text files into (tokens, targets) batches for the
 * training loop; targets of -1 mask prompt and padding positions. Knows nothing of
 * models or optimizers. */
#include "autodidact/data.h"

#include <errno.h>
#include <string.h>

int ad_data_pad_id(const AdTokenizer *tok) {
    if (tok->pad_id >= 0) return tok->pad_id;
    return tok->eos_id >= 0 ? tok->eos_id : 0;
}

AdStatus ad_data_encode_example(const AdTokenizer *tok, const char *prompt, const char *answer,
                                int T, int *tokens, int *targets, int *n_prompt) {
    /* seq = <bos> prompt answer <eos>; inputs seq[0..T), targets seq[1..T] */
    int seq[2 * AD_TASK_MAX_TEXT + 4];
    int cap = (int)(sizeof seq / sizeof seq[0]) - 2, np = 0, na = 0;
    seq[0] = tok->bos_id;
    AdStatus st = ad_tokenizer_encode(tok, prompt, strlen(prompt), seq + 1, cap, &np);
    if (st) return ad_fail_context(st, "encoding prompt \"%s\"", prompt);
    if (answer) {
        st = ad_tokenizer_encode_continuation(tok, answer, strlen(answer), seq + 1 + np, cap - np,
                                              &na);
        if (st) return ad_fail_context(st, "encoding answer \"%s\"", answer);
        seq[1 + np + na] = tok->eos_id;
    }
    int n = 1 + np + (answer ? na + 1 : 0); /* sequence length */
    int pad = ad_data_pad_id(tok);
    if (n - 1 > T || (!answer && n > T))
        return ad_fail(AD_ERR_ARG, "example \"%s%s\" needs %d tokens, more than seq_len %d", prompt,
                       answer ? answer : "", answer ? n - 1 : n, T);
    for (int t = 0; t < T; t++) {
        tokens[t] = t < n ? seq[t] : pad;
        int is_target = answer && t + 1 < n && t + 1 >= 1 + np;
        targets[t] = is_target ? seq[t + 1] : -1;
    }
    if (n_prompt) *n_prompt = 1 + np;
    return AD_OK;
}

AdStatus ad_data_init_task(AdData *d, const AdTokenizer *tok, AdTaskKind task, int min_len,
                           int max_len, int T) {
    memset(d, 0, sizeof *d);
    if (tok->bos_id < 0 || tok->eos_id < 0)
        return ad_fail(AD_ERR_ARG, "task data needs a tokenizer with <bos> and <eos> (this %s "
                       "vocabulary of %d pieces has %s)", ad_tok_kind_name(tok->kind),
                       tok->vocab_size, tok->bos_id < 0 && tok->eos_id < 0 ? "neither"
                       : tok->bos_id < 0 ? "no <bos>" : "no <eos>");
    if (min_len < 1 || max_len < min_len)
        return ad_fail(AD_ERR_ARG, "task length range [%d, %d] is empty", min_len, max_len);
    d->kind = AD_DATA_TASK, d->tok = tok, d->T = T;
    d->task = task, d->min_len = min_len, d->max_len = max_len;
    /* The longest example must fit: try one at max_len. */
    char prompt[AD_TASK_MAX_TEXT], answer[AD_TASK_MAX_TEXT];
    AdRng probe;
    ad_rng_init(&probe, 0, 0, 0);
    AdStatus st = ad_task_example(task, max_len, &probe, prompt, answer);
    if (st) return st;
    int *tk = ad_calloc((size_t)T * 2, sizeof(int), "example probe");
    if (!tk) return AD_ERR_NOMEM;
    st = ad_data_encode_example(tok, prompt, answer, T, tk, tk + T, NULL);
    free(tk);
    if (st)
        return ad_fail_context(st, "task %s at length %d does not fit in rows of %d tokens "
                               "(raise the sequence length or the model's max_seq_len)",
                               ad_task_name(task), max_len, T);
    return AD_OK;
}

AdStatus ad_data_init_text(AdData *d, const AdTokenizer *tok, const char *text, size_t len, int T,
                           double val_frac) {
    memset(d, 0, sizeof *d);
    d->kind = AD_DATA_TEXT, d->tok = tok, d->T = T;
    if (len > (size_t)1 << 31) return ad_fail(AD_ERR_ARG, "text of %zu bytes is too large", len);
    d->ids = ad_calloc(len + 1, sizeof(int), "encoded text");
    if (!d->ids) return AD_ERR_NOMEM;
    int n = 0;
    AdStatus st = ad_tokenizer_encode(tok, text, len, d->ids, (int)len + 1, &n);
    if (st) {
        ad_data_free(d);
        return st;
    }
    d->n_ids = n;
    d->n_train = (long)((1.0 - val_frac) * n);
    if (d->n_train < T + 1 || (val_frac > 0 && d->n_ids - d->n_train < T + 1)) {
        ad_data_free(d);
        if (!(val_frac > 0))
            return ad_fail(AD_ERR_ARG, "text of %d tokens is too short for seq_len %d (it needs "
                           "at least seq_len + 1 tokens)", n, T);
        return ad_fail(AD_ERR_ARG,
                       "text of %d tokens is too short for seq_len %d with val_frac %g "
                       "(each split needs at least seq_len + 1 tokens)", n, T, val_frac);
    }
    return AD_OK;
}

AdStatus ad_data_init_pool(AdData *d, const AdTokenizer *tok, int T, double replay_frac,
                           AdTaskKind task, int min_len, int max_len) {
    memset(d, 0, sizeof *d);
    d->kind = AD_DATA_POOL, d->tok = tok, d->T = T;
    d->replay_frac = replay_frac;
    d->task = task, d->min_len = min_len, d->max_len = max_len;
    if (tok->bos_id < 0 || tok->eos_id < 0)
        return ad_fail(AD_ERR_ARG, "example pools need a tokenizer with <bos> and <eos>");
    if (replay_frac > 0 && (min_len < 1 || max_len < min_len))
        return ad_fail(AD_ERR_ARG, "replay length range [%d, %d] is empty", min_len, max_len);
    return AD_OK;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *p = ad_malloc(n + 1, "example text");
    if (p) memcpy(p, s, n + 1);
    return p;
}

AdStatus ad_data_pool_add(AdData *d, const char *prompt, const char *answer, int origin) {
    return ad_data_pool_add_cut(d, prompt, answer, origin, 0);
}

AdStatus ad_data_pool_add_cut(AdData *d, const char *prompt, const char *answer, int origin,
                              int cut) {
    AD_ASSERT(d->kind == AD_DATA_POOL);
    int tk[2 * AD_TASK_MAX_TEXT + 4], *buf = tk;
    if (d->T > AD_TASK_MAX_TEXT + 2) {
        buf = ad_calloc((size_t)d->T * 2, sizeof(int), "example check");
        if (!buf) return AD_ERR_NOMEM;
    }
    AdStatus st = ad_data_encode_example(d->tok, prompt, answer, d->T, buf, buf + d->T, NULL);
    if (buf != tk) free(buf);
    if (st) return st;
    if (d->n_ex == d->cap_ex) {
        long cap = d->cap_ex ? 2 * d->cap_ex : 1024;
        AdExample *ex = realloc(d->ex, (size_t)cap * sizeof *ex);
        if (!ex) return ad_fail(AD_ERR_NOMEM, "out of memory growing the example pool to %ld", cap);
        d->ex = ex, d->cap_ex = cap;
    }
    AdExample *e = &d->ex[d->n_ex];
    e->prompt = dup_str(prompt);
    e->answer = dup_str(answer);
    e->origin = origin;
    e->cut = cut != 0;
    if (!e->prompt || !e->answer) {
        free(e->prompt);
        free(e->answer);
        return AD_ERR_NOMEM;
    }
    d->n_ex++;
    return AD_OK;
}

void ad_data_pool_remove(AdData *d, int origin_lo, int origin_hi) {
    long k = 0;
    for (long i = 0; i < d->n_ex; i++) {
        AdExample *e = &d->ex[i];
        if (e->origin >= origin_lo && e->origin <= origin_hi) {
            free(e->prompt);
            free(e->answer);
        } else {
            d->ex[k++] = *e;
        }
    }
    d->n_ex = k;
}

void ad_data_free(AdData *d) {
    free(d->ids);
    for (long i = 0; i < d->n_ex; i++) {
        free(d->ex[i].prompt);
        free(d->ex[i].answer);
    }
    free(d->ex);
    memset(d, 0, sizeof *d);
}

/* A cut-off answer's row: its last target (the appended <eos>) is masked. */
static void drop_eos_target(int *targets, int T) {
    for (int t = T - 1; t >= 0; t--)
        if (targets[t] >= 0) {
            targets[t] = -1;
            return;
        }
}

AdStatus ad_data_batch(const AdData *d, AdRng *rng, int split, int *tokens, int *targets, int B) {
    int T = d->T;
    if (d->kind == AD_DATA_TEXT) {
        long lo = split ? d->n_train : 0, hi = split ? d->n_ids : d->n_train;
        long span = hi - lo - T; /* window start in [lo, lo + span) */
        if (span < 1) return ad_fail(AD_ERR_ARG, "no %s text to draw from", split ? "validation" : "training");
        for (int b = 0; b < B; b++) {
            long s = lo + (long)(ad_rng_uniform_double(rng) * (double)span);
            for (int t = 0; t < T; t++) {
                tokens[(size_t)b * T + t] = d->ids[s + t];
                targets[(size_t)b * T + t] = d->ids[s + t + 1];
            }
        }
        return AD_OK;
    }
    char prompt[AD_TASK_MAX_TEXT], answer[AD_TASK_MAX_TEXT];
    if (d->kind == AD_DATA_POOL) {
        for (int b = 0; b < B; b++) {
            AdStatus st;
            int fresh = d->n_ex == 0 || (d->replay_frac > 0 && ad_rng_uniform_double(rng) < d->replay_frac);
            if (fresh) {
                if (!(d->replay_frac > 0)) return ad_fail(AD_ERR_ARG, "the example pool is empty");
                int len = d->min_len + (int)ad_rng_below(rng, (uint32_t)(d->max_len - d->min_len + 1));
                st = ad_task_example(d->task, len, rng, prompt, answer);
                if (!st)
                    st = ad_data_encode_example(d->tok, prompt, answer, T, tokens + (size_t)b * T,
                                                targets + (size_t)b * T, NULL);
            } else {
                const AdExample *e = &d->ex[ad_rng_below(rng, (uint32_t)d->n_ex)];
                int *tg = targets + (size_t)b * T;
                st = ad_data_encode_example(d->tok, e->prompt, e->answer, T, tokens + (size_t)b * T,
                                            tg, NULL);
                if (!st && e->cut) drop_eos_target(tg, T);
            }
            if (st) return st;
        }
        return AD_OK;
    }
    for (int b = 0; b < B; b++) {
        int len = d->min_len + (int)ad_rng_below(rng, (uint32_t)(d->max_len - d->min_len + 1));
        AdStatus st = ad_task_example(d->task, len, rng, prompt, answer);
        if (!st)
            st = ad_data_encode_example(d->tok, prompt, answer, T, tokens + (size_t)b * T,
                                        targets + (size_t)b * T, NULL);
        if (st) return st;
    }
    return AD_OK;
}

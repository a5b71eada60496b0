/* generate.c: batched KV-cache decoding and the samplers (generate.h). Sequences in a
 * chunk advance one token per step through ad_model_forward_step; sampling is per row
 * with the row's own RNG stream. Knows nothing of scoring or selection. */
#include "autodidact/generate.h"
#include "autodidact/kernels.h"
#include "fastmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

void ad_sample_config_default(AdSampleConfig *s) {
    memset(s, 0, sizeof *s);
    s->max_new_tokens = 64;
    s->temperature = 1.0f;
    s->top_p = 1.0f;
    s->repetition_penalty = 1.0f;
    s->stop_at_eos = 1;
}

/* A sequence never holds more than max_seq positions, so no more new tokens than that. */
static int cap_new(int max_new, int max_seq) { return max_new < max_seq ? max_new : max_seq; }

double ad_generator_bytes(const AdModelConfig *c, int max_batch, int max_seq, int max_new) {
    double B = max_batch, V = c->vocab_size, N = cap_new(max_new, max_seq);
    /* probs (4) + keys (8) + seen (4) per vocabulary entry; tokens, log-probs, entropies */
    return ad_kvcache_bytes(c, max_batch, max_seq) + B * V * 16.0 + B * N * 12.0;
}

AdStatus ad_generator_init(AdGenerator *g, const AdModel *m, int max_batch, int max_seq, int max_new,
                           int want_entropy) {
    memset(g, 0, sizeof *g);
    if (max_new < 1) return ad_fail(AD_ERR_ARG, "max_new_tokens must be at least 1, got %d", max_new);
    if (max_batch < 1 || max_seq < 1)
        return ad_fail(AD_ERR_ARG, "generator for %d sequences of %d positions", max_batch, max_seq);
    max_new = cap_new(max_new, max_seq);
    AdStatus st = ad_mem_check(ad_generator_bytes(&m->cfg, max_batch, max_seq, max_new),
                               "decoding %d sequences at once (KV cache of %d positions, %d new "
                               "tokens each)", max_batch, max_seq, max_new);
    if (st) return st;
    st = ad_kvcache_init(&g->cache, &m->cfg, max_batch, max_seq);
    if (st) return st;
    size_t V = m->cfg.vocab_size, B = max_batch;
    g->model = m;
    g->max_batch = max_batch, g->max_seq = max_seq, g->max_new = max_new;
    g->want_entropy = want_entropy;
    g->probs = ad_alloc_floats(B * V, "sampling scratch");
    g->keys = ad_calloc(B * V, sizeof(uint64_t), "sampling scratch");
    g->seen = ad_calloc(B * V, sizeof(int), "repetition counts");
    g->out_tokens = ad_calloc(B * max_new, sizeof(int), "generated tokens");
    g->out_logprobs = ad_alloc_floats(B * max_new, "generated log-probabilities");
    g->out_entropy = ad_alloc_floats(B * max_new, "generated entropies");
    if (!g->probs || !g->keys || !g->seen || !g->out_tokens || !g->out_logprobs || !g->out_entropy) {
        ad_generator_free(g);
        return AD_ERR_NOMEM;
    }
    return AD_OK;
}

void ad_generator_free(AdGenerator *g) {
    ad_kvcache_free(&g->cache);
    free(g->probs);
    free(g->keys);
    free(g->seen);
    free(g->out_tokens);
    free(g->out_logprobs);
    free(g->out_entropy);
    memset(g, 0, sizeof *g);
}

static int cmp_desc_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

int ad_sample_token(const float *logits, int V, const AdSampleConfig *sc, const int *seen,
                    AdRng *rng, float *probs, uint64_t *keys, float *logprob, float *entropy) {
    /* log-probability and entropy under the model itself (temperature 1, no filters) */
    float mx = logits[0];
    for (int j = 1; j < V; j++) mx = logits[j] > mx ? logits[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < V; j++) sum += ad_expf(logits[j] - mx);
    float lse = mx + logf(sum);
    if (entropy) {
        /* H = lse - sum p l */
        float pl = 0.0f;
        for (int j = 0; j < V; j++) pl += ad_expf(logits[j] - lse) * logits[j];
        *entropy = lse - pl;
    }
    /* sampling logits: repetition penalty, then temperature */
    float pen = sc->repetition_penalty;
    for (int j = 0; j < V; j++) {
        float z = logits[j];
        if (seen && seen[j] && pen != 1.0f) z = z > 0.0f ? z / pen : z * pen;
        probs[j] = z;
    }
    int tok = 0;
    if (sc->temperature <= 0.0f) {
        for (int j = 1; j < V; j++)
            if (probs[j] > probs[tok]) tok = j;
    } else {
        float zmax = probs[0];
        for (int j = 1; j < V; j++) zmax = probs[j] > zmax ? probs[j] : zmax;
        float inv_t = 1.0f / sc->temperature, total_f = 0.0f;
        for (int j = 0; j < V; j++) {
            probs[j] = ad_expf((probs[j] - zmax) * inv_t);
            total_f += probs[j];
        }
        double total = total_f;
        int filtered = (sc->top_k > 0 && sc->top_k < V) || sc->top_p < 1.0f || sc->min_p > 0.0f;
        if (!filtered) {
            double u = ad_rng_uniform_double(rng) * total, c = 0.0;
            tok = -1;
            for (int j = 0; j < V; j++) {
                c += probs[j];
                if (probs[j] > 0.0f) tok = j;
                if (u < c && probs[j] > 0.0f) break;
            }
        } else {
            /* sort by probability, descending; ties by lower token id first */
            for (int j = 0; j < V; j++) {
                uint32_t bits;
                float p = probs[j];
                memcpy(&bits, &p, sizeof bits);
                keys[j] = ((uint64_t)bits << 32) | (uint32_t)(0xFFFFFFFFu - (uint32_t)j);
            }
            qsort(keys, V, sizeof keys[0], cmp_desc_u64);
#define KEY_TOKEN(k) ((int)(0xFFFFFFFFu - (uint32_t)(k)))
            int keep = V;
            if (sc->top_k > 0 && sc->top_k < keep) keep = sc->top_k;
            if (sc->top_p < 1.0f) {
                double c = 0.0, target = sc->top_p * total;
                int k = 0;
                while (k < keep) {
                    c += probs[KEY_TOKEN(keys[k])];
                    k++;
                    if (c >= target) break;
                }
                keep = k;
            }
            if (sc->min_p > 0.0f) {
                float floor_p = sc->min_p * probs[KEY_TOKEN(keys[0])];
                int k = 1;
                while (k < keep && probs[KEY_TOKEN(keys[k])] >= floor_p) k++;
                keep = k;
            }
            double kept = 0.0;
            for (int k = 0; k < keep; k++) kept += probs[KEY_TOKEN(keys[k])];
            double u = ad_rng_uniform_double(rng) * kept, c = 0.0;
            tok = KEY_TOKEN(keys[keep - 1]);
            for (int k = 0; k < keep; k++) {
                c += probs[KEY_TOKEN(keys[k])];
                if (u < c) {
                    tok = KEY_TOKEN(keys[k]);
                    break;
                }
            }
#undef KEY_TOKEN
        }
        if (tok < 0) tok = 0;
    }
    *logprob = (float)(logits[tok] - lse);
    return tok;
}

typedef struct {
    long req;
    int plen, p;      /* prompt length; next position to feed */
    int last;         /* last sampled token */
    int done;
    AdRng rng;
    AdGenOutput out;
} Slot;

static int hit_stop_string(const AdTokenizer *tok, const AdGenOutput *o, const char *stop,
                           char *buf, size_t cap) {
    ad_tokenizer_decode(tok, o->tokens, o->n, buf, cap);
    return strstr(buf, stop) != NULL;
}

AdStatus ad_generate(AdGenerator *g, const AdTokenizer *tok, const AdGenRequest *reqs, long n,
                     const AdSampleConfig *sc, AdGenSink sink, void *sink_user,
                     AdGenProgress progress, void *progress_user) {
    const AdModel *m = g->model;
    int V = m->cfg.vocab_size, S = g->max_seq;
    int max_new = sc->max_new_tokens < g->max_new ? sc->max_new_tokens : g->max_new;
    if (max_new < 1) return ad_fail(AD_ERR_ARG, "max_new_tokens must be at least 1");
    for (long r = 0; r < n; r++) {
        if (reqs[r].prompt_len < 1)
            return ad_fail(AD_ERR_ARG, "request %ld has an empty prompt (start it with <bos>)", r);
        if (reqs[r].prompt_len >= S)
            return ad_fail(AD_ERR_ARG, "request %ld: prompt of %d tokens leaves no room in a "
                           "context of %d positions", r, reqs[r].prompt_len, S);
        for (int t = 0; t < reqs[r].prompt_len; t++)
            if (reqs[r].prompt[t] < 0 || reqs[r].prompt[t] >= V)
                return ad_fail(AD_ERR_ARG, "request %ld: token %d at position %d is outside the "
                               "vocabulary of %d", r, reqs[r].prompt[t], t, V);
    }
    int eos = sc->stop_at_eos ? tok->eos_id : -1;
    ad_kvcache_pack(&g->cache, m); /* the weights as they are now */
    Slot *slots = ad_calloc(g->max_batch, sizeof(Slot), "generation slots");
    int *rows = ad_calloc((size_t)g->max_batch * 4, sizeof(int), "generation rows");
    size_t stop_cap = sc->stop ? (size_t)max_new * 64 + 1 : 1;
    char *stop_buf = sc->stop ? ad_malloc(stop_cap * g->max_batch, "stop-string buffer") : NULL;
    if (!slots || !rows || (sc->stop && !stop_buf)) {
        free(slots);
        free(rows);
        free(stop_buf);
        return AD_ERR_NOMEM;
    }
    int *row_tok = rows, *row_pos = rows + g->max_batch, *row_slot = rows + 2 * g->max_batch;
    double t0 = ad_time_now();
    long generated = 0;
    for (long start = 0; start < n; start += g->max_batch) {
        int nb = (int)(n - start < g->max_batch ? n - start : g->max_batch);
        for (int s = 0; s < nb; s++) {
            Slot *sl = &slots[s];
            const AdGenRequest *rq = &reqs[start + s];
            memset(sl, 0, sizeof *sl);
            sl->req = start + s;
            sl->plen = rq->prompt_len;
            /* one stream per (prompt, sample): distinct for indices below 2^32 */
            ad_rng_init(&sl->rng, sc->seed, AD_STREAM_SAMPLE,
                        ((uint64_t)(uint32_t)rq->prompt_index << 32) | (uint32_t)rq->sample_index);
            sl->out.tokens = g->out_tokens + (size_t)s * g->max_new;
            sl->out.logprobs = g->out_logprobs + (size_t)s * g->max_new;
            sl->out.entropy = sc->want_entropy && g->want_entropy ? g->out_entropy + (size_t)s * g->max_new : NULL;
            int *seen = g->seen + (size_t)s * V;
            memset(seen, 0, sizeof(int) * V);
            for (int t = 0; t < rq->prompt_len; t++) seen[rq->prompt[t]]++;
        }
        for (;;) {
            int nr = 0;
            for (int s = 0; s < nb; s++) {
                Slot *sl = &slots[s];
                if (sl->done) continue;
                row_tok[nr] = sl->p < sl->plen ? reqs[sl->req].prompt[sl->p] : sl->last;
                row_pos[nr] = sl->p;
                row_slot[nr] = s;
                nr++;
            }
            if (nr == 0) break;
            ad_model_forward_step(m, &g->cache, row_tok, row_pos, row_slot, nr);
#pragma omp parallel for schedule(dynamic, 1) if(nr > 1)
            for (int r = 0; r < nr; r++) {
                int s = row_slot[r];
                Slot *sl = &slots[s];
                int fed = sl->p++;
                if (fed + 1 < sl->plen) continue; /* still reading the prompt */
                int *seen = g->seen + (size_t)s * V;
                float lp, ent;
                int t = ad_sample_token(g->cache.logits + (size_t)r * V, V, sc, seen, &sl->rng,
                                        g->probs + (size_t)s * V, g->keys + (size_t)s * V, &lp,
                                        sl->out.entropy ? &ent : NULL);
                AdGenOutput *o = &sl->out;
                o->tokens[o->n] = t;
                o->logprobs[o->n] = lp;
                if (o->entropy) o->entropy[o->n] = ent;
                o->n++;
                seen[t]++;
                sl->last = t;
                if (t == eos) {
                    o->stop = AD_STOP_EOS;
                    sl->done = 1;
                } else if (sc->stop && hit_stop_string(tok, o, sc->stop, stop_buf + (size_t)s * stop_cap, stop_cap)) {
                    o->stop = AD_STOP_STRING;
                    sl->done = 1;
                } else if (o->n >= max_new || sl->p >= S - 1) { /* the next token would not fit */
                    o->stop = AD_STOP_LENGTH;
                    sl->done = 1;
                }
            }
        }
        for (int s = 0; s < nb; s++) {
            generated += slots[s].out.n;
            if (sink) sink(slots[s].req, &slots[s].out, sink_user);
        }
        if (progress) progress(start + nb, n, generated, ad_time_now() - t0, progress_user);
    }
    free(slots);
    free(rows);
    free(stop_buf);
    return AD_OK;
}

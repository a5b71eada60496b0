/* score.c: the candidate table of a round, the scorers that rate its answers (verifier,
 * length, majority, ensemble, teacher log-probabilities, self-judging) and the selection
 * that turns scores into the training mask. It runs forward passes but never trains or
 * generates; it does not decide which scorers a round runs. */
#include "autodidact/score.h"

#include <math.h>
#include <string.h>

#include "autodidact/data.h"
#include "autodidact/dist.h"
#include "autodidact/losses.h"

static const char *const SCORE_NAMES[AD_SCORE_COUNT] = {
    "verifier", "length", "majority", "ensemble", "logprob_mean", "logprob_min", "perplexity",
    "judge"};

static const char *const SELECT_NAMES[] = {"all",      "threshold", "topk",  "best_of_n",
                                           "top_frac", "random",    "oracle"};
#define N_SELECT ((int)(sizeof SELECT_NAMES / sizeof SELECT_NAMES[0]))

const char *ad_score_name(int scorer) {
    return scorer >= 0 && scorer < AD_SCORE_COUNT ? SCORE_NAMES[scorer] : "unknown";
}

int ad_score_parse(const char *s) {
    if (!s) return -1;
    for (int i = 0; i < AD_SCORE_COUNT; i++)
        if (strcmp(s, SCORE_NAMES[i]) == 0) return i;
    return -1;
}

const char *ad_select_name(AdSelectPolicy p) {
    return (int)p >= 0 && (int)p < N_SELECT ? SELECT_NAMES[p] : "unknown";
}

int ad_select_parse(const char *s) {
    if (!s) return -1;
    for (int i = 0; i < N_SELECT; i++)
        if (strcmp(s, SELECT_NAMES[i]) == 0) return i;
    return -1;
}

/* ---- the candidate table ---- */

static char *copy_string(const char *s, const char *what) {
    size_t n = strlen(s);
    char *p = ad_malloc(n + 1, what);
    if (p) memcpy(p, s, n + 1);
    return p;
}

AdStatus ad_candidates_init(AdCandidates *c, long n_prompts, int samples) {
    memset(c, 0, sizeof *c);
    if (n_prompts < 0 || samples < 1 || n_prompts > (long)(SIZE_MAX / 64) / samples)
        return ad_fail(AD_ERR_ARG, "candidates: %ld prompts x %d samples is not a valid table size",
                       n_prompts, samples);
    long n = n_prompts * samples;
    c->n_prompts = n_prompts, c->samples = samples, c->n = n;
    c->prompt = ad_calloc((size_t)n_prompts, sizeof(char *), "candidate prompts");
    c->length = ad_calloc((size_t)n_prompts, sizeof(int), "candidate prompt lengths");
    c->answer = ad_calloc((size_t)n, sizeof(char *), "candidate answers");
    c->ended = ad_calloc((size_t)n, sizeof(int), "candidate ended flags");
    c->selected = ad_calloc((size_t)n, 1, "candidate selection mask");
    c->correct = ad_calloc((size_t)n, 1, "candidate correctness");
    int ok = c->prompt && c->length && c->answer && c->ended && c->selected && c->correct;
    for (int s = 0; ok && s < AD_SCORE_COUNT; s++) {
        c->scores[s] = ad_alloc_floats((size_t)n, "candidate scores");
        ok = c->scores[s] != NULL;
    }
    for (long p = 0; ok && p < n_prompts; p++) {
        c->length[p] = -1;
        ok = (c->prompt[p] = copy_string("", "candidate prompt")) != NULL;
    }
    for (long i = 0; ok && i < n; i++) {
        c->correct[i] = -1;
        for (int s = 0; s < AD_SCORE_COUNT; s++) c->scores[s][i] = NAN;
        ok = (c->answer[i] = copy_string("", "candidate answer")) != NULL;
    }
    if (!ok) {
        ad_candidates_free(c);
        return AD_ERR_NOMEM;
    }
    return AD_OK;
}

void ad_candidates_free(AdCandidates *c) {
    if (c->prompt)
        for (long p = 0; p < c->n_prompts; p++) free(c->prompt[p]);
    if (c->answer)
        for (long i = 0; i < c->n; i++) free(c->answer[i]);
    free(c->prompt);
    free(c->length);
    free(c->answer);
    free(c->ended);
    for (int s = 0; s < AD_SCORE_COUNT; s++) free(c->scores[s]);
    free(c->selected);
    free(c->correct);
    memset(c, 0, sizeof *c);
}

AdStatus ad_candidates_set_prompt(AdCandidates *c, long p, const char *text, int length) {
    if (p < 0 || p >= c->n_prompts || !text)
        return ad_fail(AD_ERR_ARG, "candidates: prompt %ld is outside [0, %ld) or NULL", p,
                       c->n_prompts);
    char *s = copy_string(text, "candidate prompt");
    if (!s) return AD_ERR_NOMEM;
    free(c->prompt[p]);
    c->prompt[p] = s;
    c->length[p] = length;
    return AD_OK;
}

AdStatus ad_candidates_set_answer(AdCandidates *c, long i, const char *text, int ended) {
    if (i < 0 || i >= c->n || !text)
        return ad_fail(AD_ERR_ARG, "candidates: answer %ld is outside [0, %ld) or NULL", i, c->n);
    char *s = copy_string(text, "candidate answer");
    if (!s) return AD_ERR_NOMEM;
    free(c->answer[i]);
    c->answer[i] = s;
    c->ended[i] = ended != 0;
    return AD_OK;
}

static const char *prompt_of(const AdCandidates *c, long i) { return c->prompt[i / c->samples]; }

/* ---- scorers without a model ---- */

/* A prompt the task cannot parse has no known answer: NAN and correct -1. */
void ad_score_verifier(AdCandidates *c, AdTaskKind task) {
    for (long i = 0; i < c->n; i++) {
        if (ad_task_length(task, prompt_of(c, i)) < 0) {
            c->scores[AD_SCORE_VERIFIER][i] = NAN;
            c->correct[i] = -1;
            continue;
        }
        int ok = ad_task_check(task, prompt_of(c, i), c->answer[i]);
        c->scores[AD_SCORE_VERIFIER][i] = ok ? 1.0f : 0.0f;
        c->correct[i] = (signed char)ok;
    }
}

/* An unknown task gives NAN everywhere. */
void ad_score_length(AdCandidates *c, AdTaskKind task) {
    int known = (int)task >= 0 && task < AD_TASK_COUNT;
    for (long i = 0; i < c->n; i++) {
        int ok = known && ad_task_answer_length_ok(task, prompt_of(c, i), c->answer[i]);
        c->scores[AD_SCORE_LENGTH][i] = !known ? NAN : ok ? 1.0f : 0.0f;
    }
}

void ad_score_majority(AdCandidates *c) {
    int K = c->samples;
    for (long p = 0; p < c->n_prompts; p++)
        for (int a = 0; a < K; a++) {
            const char *ans = c->answer[p * K + a];
            int same = 0;
            for (int b = 0; b < K; b++) same += strcmp(ans, c->answer[p * K + b]) == 0;
            c->scores[AD_SCORE_MAJORITY][p * K + a] = (float)same / (float)K;
        }
}

/* NULL answers among `others` agree with nothing; no models at all gives NAN. */
void ad_score_ensemble(AdCandidates *c, char *const *const *others, int n_models) {
    for (long i = 0; i < c->n; i++) {
        if (!others || n_models < 1) {
            c->scores[AD_SCORE_ENSEMBLE][i] = NAN;
            continue;
        }
        long p = i / c->samples;
        int same = 0;
        for (int m = 0; m < n_models; m++)
            same += others[m] && others[m][p] && strcmp(others[m][p], c->answer[i]) == 0;
        c->scores[AD_SCORE_ENSEMBLE][i] = (float)same / (float)n_models;
    }
}

/* ---- scorers under a model: rows "<bos> context continuation <eos>" in batches ---- */

#define SCORE_ACTS_BUDGET (512.0 * 1024 * 1024) /* bytes of activations a scorer sizes for */

typedef enum { ROWS_LOGPROB, ROWS_JUDGE } RowsMode;

/* Batch state, sized once per scorer call for at most as many rows as there are
 * candidates (a larger batch_size is cut to that). Rows are encoded at full width T into
 * row_tok/row_tgt, then packed to the width of the longest row of the batch. */
typedef struct {
    AdModel *model;
    const AdTokenizer *tok;
    RowsMode mode;
    int B, T, V;
    AdActs acts;
    int *row_tok, *row_tgt; /* (T) one encoded row */
    int *tok_full, *tgt_full; /* (B, T) rows of the pending batch at full width */
    int *width;             /* (B) input positions each pending row needs */
    long *cand;             /* (B) the candidate of each pending row */
    int *tokens, *targets;  /* (B, Tb) the packed batch */
    float *loss;            /* (B, Tb) -log p of each target */
    int *scratch;           /* (scratch_cap) token count probe, grown as needed */
    size_t scratch_cap;
    int rows;               /* pending rows */
} Rows;

static void rows_free(Rows *r) {
    ad_acts_free(&r->acts);
    free(r->row_tok);
    free(r->row_tgt);
    free(r->tok_full);
    free(r->tgt_full);
    free(r->width);
    free(r->cand);
    free(r->tokens);
    free(r->targets);
    free(r->loss);
    free(r->scratch);
    memset(r, 0, sizeof *r);
}

static AdStatus rows_init(Rows *r, AdModel *model, const AdTokenizer *tok, RowsMode mode,
                          int batch_size, int seq_len, long n_rows, const char *who) {
    memset(r, 0, sizeof *r);
    if (batch_size < 1 || seq_len < 1)
        return ad_fail(AD_ERR_ARG, "%s: batch_size %d and seq_len %d must be >= 1", who, batch_size,
                       seq_len);
    if (tok->bos_id < 0 || tok->eos_id < 0)
        return ad_fail(AD_ERR_ARG, "%s: the tokenizer has no <bos> or <eos> token", who);
    if (tok->vocab_size > model->cfg.vocab_size)
        return ad_fail(AD_ERR_ARG, "%s: tokenizer vocabulary %d is larger than the model's %d", who,
                       tok->vocab_size, model->cfg.vocab_size);
    if (n_rows < batch_size) batch_size = n_rows > 0 ? (int)n_rows : 1; /* no bigger than the work */
    /* Scoring is forward passes alone, whose speed a few rows already saturate: rows beyond
     * SCORE_ACTS_BUDGET bytes of activations (the logits of a large vocabulary dominate:
     * 64 rows x 256 positions x 32000 tokens are 2 GiB) would only hold memory. The cut
     * depends on the config alone, so a run stays reproducible. */
    while (batch_size > 1 && ad_acts_bytes(&model->cfg, batch_size, seq_len) > SCORE_ACTS_BUDGET)
        batch_size /= 2;
    r->model = model, r->tok = tok, r->mode = mode;
    r->B = batch_size, r->T = seq_len, r->V = model->cfg.vocab_size;
    AdStatus st = ad_acts_init(&r->acts, &model->cfg, batch_size, seq_len);
    if (st) {
        rows_free(r);
        return ad_fail_context(st, "%s", who);
    }
    size_t BT = (size_t)batch_size * (size_t)seq_len, T = (size_t)seq_len;
    r->row_tok = ad_calloc(T, sizeof(int), "score row");
    r->row_tgt = ad_calloc(T, sizeof(int), "score row");
    r->tok_full = ad_calloc(BT, sizeof(int), "score batch");
    r->tgt_full = ad_calloc(BT, sizeof(int), "score batch");
    r->width = ad_calloc((size_t)batch_size, sizeof(int), "score batch");
    r->cand = ad_calloc((size_t)batch_size, sizeof(long), "score batch");
    r->tokens = ad_calloc(BT, sizeof(int), "score batch");
    r->targets = ad_calloc(BT, sizeof(int), "score batch");
    r->loss = ad_alloc_floats(BT, "score token losses");
    if (!r->row_tok || !r->row_tgt || !r->tok_full || !r->tgt_full || !r->width || !r->cand ||
        !r->tokens || !r->targets || !r->loss) {
        rows_free(r);
        return AD_ERR_NOMEM;
    }
    return AD_OK;
}

/* Token count of text encoded alone, as ad_data_encode_example encodes it. The scratch
 * grows to one token per byte plus one (SPM's leading space), the most any text needs,
 * so an error here is a character the vocabulary lacks. */
static AdStatus count_tokens(Rows *r, const char *text, int continuation, int *n) {
    size_t len = strlen(text);
    if (len > (size_t)1 << 28)
        return ad_fail(AD_ERR_ARG, "a text of %zu bytes is too long to score", len);
    if (len + 2 > r->scratch_cap) {
        free(r->scratch);
        r->scratch_cap = 2 * len + 2;
        r->scratch = ad_calloc(r->scratch_cap, sizeof(int), "score token count");
        if (!r->scratch) {
            r->scratch_cap = 0;
            return AD_ERR_NOMEM;
        }
    }
    if (continuation)
        return ad_tokenizer_encode_continuation(r->tok, text, len, r->scratch,
                                                (int)r->scratch_cap, n);
    return ad_tokenizer_encode(r->tok, text, len, r->scratch, (int)r->scratch_cap, n);
}

static void write_row_score(AdCandidates *c, RowsMode mode, long i, double sum, double worst,
                            long count) {
    if (mode == ROWS_JUDGE) {
        c->scores[AD_SCORE_JUDGE][i] = (float)-sum;
        return;
    }
    double mean = -sum / (double)count;
    c->scores[AD_SCORE_LOGPROB_MEAN][i] = (float)mean;
    c->scores[AD_SCORE_LOGPROB_MIN][i] = (float)-worst;
    c->scores[AD_SCORE_PERPLEXITY][i] = (float)exp(-mean);
}

/* Runs the pending rows through the model and writes their scores. */
static void rows_flush(Rows *r, AdCandidates *c) {
    if (r->rows == 0) return;
    int nb = r->rows, Tb = 1;
    for (int b = 0; b < nb; b++) Tb = r->width[b] > Tb ? r->width[b] : Tb;
    size_t row = sizeof(int) * (size_t)Tb;
    for (int b = 0; b < nb; b++) {
        memcpy(r->tokens + (size_t)b * Tb, r->tok_full + (size_t)b * r->T, row);
        memcpy(r->targets + (size_t)b * Tb, r->tgt_full + (size_t)b * r->T, row);
    }
    ad_model_forward(r->model, &r->acts, r->tokens, nb, Tb);
    ad_loss_ce(NULL, r->loss, r->acts.logits, r->targets, nb * Tb, r->V, 1.0f);
    for (int b = 0; b < nb; b++) {
        double sum = 0.0, worst = -INFINITY;
        long count = 0;
        for (int t = 0; t < Tb; t++) {
            size_t k = (size_t)b * Tb + t;
            if (r->targets[k] < 0) continue;
            double l = r->loss[k];
            sum += l;
            worst = l > worst || isnan(l) ? l : worst;
            count++;
        }
        write_row_score(c, r->mode, r->cand[b], sum, worst, count);
    }
    r->rows = 0;
}

/* Encodes the row of candidate i, "<bos> context cont <eos>", into row_tok/row_tgt, with
 * the <eos> target kept only if keep_eos. *width receives the input positions it needs, or
 * 0 when the row does not fit T or has no target left: such a candidate scores NAN (left as
 * is). Fitting means bos + context + cont tokens <= T, the room ad_data_encode_example
 * asks for. */
static AdStatus row_encode(Rows *r, long i, const char *context, const char *cont, int keep_eos,
                           int *width_out) {
    int nc = 0, na = 0;
    *width_out = 0;
    AdStatus st = count_tokens(r, context, 0, &nc);
    if (!st) st = count_tokens(r, cont, 1, &na);
    if (st) return ad_fail_context(st, "scoring candidate %ld", i);
    if ((long)1 + nc + na > r->T) return AD_OK;
    st = ad_data_encode_example(r->tok, context, cont, r->T, r->row_tok, r->row_tgt, NULL);
    if (st) {
        /* It counted as fitting, so only encode_example's own length bound is left. */
        ad_log(AD_LOG_WARN, "scoring candidate %ld: %s (scored NAN)", i, ad_errmsg());
        return AD_OK;
    }
    /* the targets are the continuation's tokens, then <eos> as the last one */
    int width = 0, n_targets = 0;
    for (int t = 0; t < r->T; t++) {
        if (r->row_tok[t] < 0) r->row_tok[t] = 0; /* no <pad> id: any id will do after the end */
        if (r->row_tgt[t] >= 0) width = t + 1, n_targets++;
    }
    if (!keep_eos && n_targets > 0) {
        r->row_tgt[width - 1] = -1; /* the targets are contiguous: width shrinks by one */
        width--, n_targets--;
    }
    if (n_targets > 0) *width_out = width;
    return AD_OK;
}

/* Adds the encoded row of candidate i to the pending batch, running it when full. */
static void row_push(Rows *r, AdCandidates *c, long i, int width) {
    int b = r->rows++;
    memcpy(r->tok_full + (size_t)b * r->T, r->row_tok, sizeof(int) * (size_t)r->T);
    memcpy(r->tgt_full + (size_t)b * r->T, r->row_tgt, sizeof(int) * (size_t)r->T);
    r->width[b] = width;
    r->cand[b] = i;
    if (r->rows == r->B) rows_flush(r, c);
}

/* The (context, continuation, keep <eos>) text of candidate i's row. */
typedef AdStatus (*RowText)(void *user, const AdCandidates *c, long i, const char **context,
                            const char **cont, int *keep_eos);

/* This rank's candidates [*lo, *hi) when several ranks score (dist.h): whole batches of
 * the one-process order, so that every row runs in the same batch, and scores the same,
 * as on one process. Finding the batch boundaries encodes every row once more. */
static AdStatus batch_shard(Rows *r, const AdCandidates *c, RowText text, void *user, long *lo,
                            long *hi) {
    *lo = 0, *hi = c->n;
    if (ad_dist_size() == 1) return AD_OK;
    long *kept = ad_calloc((size_t)(c->n > 0 ? c->n : 1), sizeof(long), "scored rows");
    if (!kept) return AD_ERR_NOMEM;
    long n_kept = 0;
    AdStatus st = AD_OK;
    for (long i = 0; i < c->n && !st; i++) {
        const char *context, *cont;
        int keep_eos, width;
        st = text(user, c, i, &context, &cont, &keep_eos);
        if (!st) st = row_encode(r, i, context, cont, keep_eos, &width);
        if (!st && width > 0) kept[n_kept++] = i;
    }
    if (!st) {
        long nb = (n_kept + r->B - 1) / r->B, blo, bhi;
        ad_dist_range(nb, &blo, &bhi);
        *lo = blo == 0 ? 0 : kept[blo * r->B];
        *hi = bhi == nb ? c->n : kept[bhi * r->B];
    }
    free(kept);
    return st;
}

/* Scores candidates through rows of text(): this rank's share (batch_shard), then every
 * rank's scores to all ranks. */
static AdStatus score_rows(Rows *r, AdCandidates *c, RowText text, void *user) {
    long lo, hi;
    AdStatus st = batch_shard(r, c, text, user, &lo, &hi);
    for (long i = lo; i < hi && !st; i++) {
        const char *context, *cont;
        int keep_eos, width;
        st = text(user, c, i, &context, &cont, &keep_eos);
        if (!st) st = row_encode(r, i, context, cont, keep_eos, &width);
        if (!st && width > 0) row_push(r, c, i, width);
    }
    if (!st) rows_flush(r, c);
    int first = r->mode == ROWS_JUDGE ? AD_SCORE_JUDGE : AD_SCORE_LOGPROB_MEAN;
    int last = r->mode == ROWS_JUDGE ? AD_SCORE_JUDGE : AD_SCORE_PERPLEXITY;
    for (int k = first; k <= last; k++) st = ad_dist_gather_floats(st, c->scores[k], lo, hi);
    return st;
}

static AdStatus logprob_text(void *user, const AdCandidates *c, long i, const char **context,
                             const char **cont, int *keep_eos) {
    *context = prompt_of(c, i), *cont = c->answer[i], *keep_eos = c->ended[i];
    return AD_OK;
}

AdStatus ad_score_logprobs(AdCandidates *c, AdModel *model, const AdTokenizer *tok,
                           int batch_size, int seq_len) {
    for (long i = 0; i < c->n; i++)
        c->scores[AD_SCORE_LOGPROB_MEAN][i] = c->scores[AD_SCORE_LOGPROB_MIN][i] =
            c->scores[AD_SCORE_PERPLEXITY][i] = NAN;
    Rows r;
    AdStatus st = rows_init(&r, model, tok, ROWS_LOGPROB, batch_size, seq_len, c->n, "log-prob scorer");
    if (st) return st;
    st = score_rows(&r, c, logprob_text, NULL);
    rows_free(&r);
    return st;
}

/* Length of template with every "{prompt}" and "{answer}" replaced; writes the text
 * when out is not NULL. */
static size_t fill_template(char *out, const char *tmpl, const char *prompt, const char *answer) {
    size_t n = 0, lp = strlen(prompt), la = strlen(answer);
    for (const char *s = tmpl; *s;) {
        const char *put = NULL;
        size_t len = 0, skip = 0;
        if (strncmp(s, "{prompt}", 8) == 0)
            put = prompt, len = lp, skip = 8;
        else if (strncmp(s, "{answer}", 8) == 0)
            put = answer, len = la, skip = 8;
        else
            put = s, len = 1, skip = 1;
        if (out) memcpy(out + n, put, len);
        n += len;
        s += skip;
    }
    if (out) out[n] = '\0';
    return n;
}

typedef struct {
    const char *tmpl, *verdict;
    char *text; /* the filled template, grown as needed */
    size_t cap;
} JudgeText;

static AdStatus judge_text(void *user, const AdCandidates *c, long i, const char **context,
                           const char **cont, int *keep_eos) {
    JudgeText *j = user;
    size_t need = fill_template(NULL, j->tmpl, prompt_of(c, i), c->answer[i]) + 1;
    if (need > j->cap) {
        free(j->text);
        j->cap = need * 2;
        j->text = ad_malloc(j->cap, "judge text");
        if (!j->text) {
            j->cap = 0;
            return AD_ERR_NOMEM;
        }
    }
    fill_template(j->text, j->tmpl, prompt_of(c, i), c->answer[i]);
    /* an empty verdict is the <eos> token: the row's only target; otherwise the verdict's
     * tokens are the targets and its <eos> is not */
    *context = j->text, *cont = j->verdict, *keep_eos = j->verdict[0] == '\0';
    return AD_OK;
}

AdStatus ad_score_judge(AdCandidates *c, AdModel *model, const AdTokenizer *tok,
                        const char *judge_template, const char *verdict, int batch_size,
                        int seq_len) {
    for (long i = 0; i < c->n; i++) c->scores[AD_SCORE_JUDGE][i] = NAN;
    if (!judge_template || !verdict)
        return ad_fail(AD_ERR_ARG, "judge scorer: the template and the verdict must not be NULL");
    Rows r;
    AdStatus st = rows_init(&r, model, tok, ROWS_JUDGE, batch_size, seq_len, c->n, "judge scorer");
    if (st) return st;
    JudgeText j = {judge_template, verdict, NULL, 0};
    st = score_rows(&r, c, judge_text, &j);
    free(j.text);
    rows_free(&r);
    return st;
}

/* ---- selection ---- */

/* The ranking key of candidate i under scorer: higher is better (perplexity negated);
 * NAN where the scorer has no value or is not a scorer. */
static double rank_key(const AdCandidates *c, int scorer, long i) {
    if (scorer < 0 || scorer >= AD_SCORE_COUNT) return NAN;
    double v = c->scores[scorer][i];
    return scorer == AD_SCORE_PERPLEXITY ? -v : v;
}

typedef struct {
    double key;
    long i;
} Ranked;

/* Best first; equal keys by lower candidate index. */
static int ranked_cmp(const void *pa, const void *pb) {
    const Ranked *a = pa, *b = pb;
    if (a->key != b->key) return a->key > b->key ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Collects the alive candidates of [lo, hi) with a non-NAN key, sorted best first. */
static long rank_range(const AdCandidates *c, int scorer, const unsigned char *alive, long lo,
                       long hi, Ranked *out) {
    long m = 0;
    for (long i = lo; i < hi; i++) {
        if (!alive[i]) continue;
        double k = rank_key(c, scorer, i);
        if (isnan(k)) continue;
        out[m].key = k, out[m].i = i, m++;
    }
    qsort(out, (size_t)m, sizeof *out, ranked_cmp);
    return m;
}

/* The filters leave survivors in c->selected; the policy then clears the ones it does not
 * keep. THRESHOLD keeps key >= threshold, so for PERPLEXITY it keeps perplexity <=
 * threshold. TOP_FRAC keeps floor(frac * m) of the m survivors that have a score.
 * RANDOM without an rng keeps nothing. */
long ad_select(AdCandidates *c, const AdSelectConfig *s, AdRng *rng) {
    long n = c->n;
    int K = c->samples;
    unsigned char *sel = c->selected;
    if (n <= 0) return 0;
    for (long i = 0; i < n; i++) {
        int keep = 1;
        if (s->length_filter && !(c->scores[AD_SCORE_LENGTH][i] != 0.0f &&
                                  !isnan(c->scores[AD_SCORE_LENGTH][i])))
            keep = 0;
        if (s->min_agreement > 0 && !(c->scores[AD_SCORE_MAJORITY][i] >= s->min_agreement))
            keep = 0;
        if (s->min_ensemble > 0 && !(c->scores[AD_SCORE_ENSEMBLE][i] >= s->min_ensemble))
            keep = 0;
        sel[i] = (unsigned char)keep;
    }

    switch (s->policy) {
    case AD_SELECT_ALL: break;
    case AD_SELECT_THRESHOLD: {
        double thr = s->scorer == AD_SCORE_PERPLEXITY ? -s->threshold : s->threshold;
        for (long i = 0; i < n; i++)
            if (sel[i] && !(rank_key(c, s->scorer, i) >= thr)) sel[i] = 0;
        break;
    }
    case AD_SELECT_TOPK:
    case AD_SELECT_BEST_OF_N:
    case AD_SELECT_TOP_FRAC: {
        int per_prompt = s->policy != AD_SELECT_TOP_FRAC;
        Ranked *rk = ad_calloc(per_prompt ? (size_t)K : (size_t)n, sizeof *rk, "selection ranking");
        if (!rk) {
            ad_log(AD_LOG_ERROR, "selection: %s; nothing selected", ad_errmsg());
            memset(sel, 0, (size_t)n);
            break;
        }
        if (per_prompt) {
            int k = s->policy == AD_SELECT_TOPK ? s->k : 1;
            for (long p = 0; p < c->n_prompts; p++) {
                long m = rank_range(c, s->scorer, sel, p * K, (p + 1) * K, rk);
                memset(sel + p * K, 0, (size_t)K);
                for (long j = 0; j < m && j < k; j++) sel[rk[j].i] = 1;
            }
        } else {
            long m = rank_range(c, s->scorer, sel, 0, n, rk);
            double want = s->frac > 0 ? floor(s->frac * (double)m + 1e-9) : 0;
            long keep = want >= (double)m ? m : (long)want;
            memset(sel, 0, (size_t)n);
            for (long j = 0; j < keep; j++) sel[rk[j].i] = 1;
        }
        free(rk);
        break;
    }
    case AD_SELECT_RANDOM:
        for (long i = 0; i < n; i++)
            if (sel[i]) sel[i] = rng && ad_rng_uniform_double(rng) < s->frac;
        break;
    case AD_SELECT_ORACLE:
        for (long i = 0; i < n; i++)
            if (sel[i] && !(c->scores[AD_SCORE_VERIFIER][i] == 1.0f)) sel[i] = 0;
        break;
    default: memset(sel, 0, (size_t)n); break;
    }

    if (s->one_per_prompt)
        for (long p = 0; p < c->n_prompts; p++) {
            long best = -1;
            double best_key = NAN;
            for (long i = p * K; i < (p + 1) * K; i++) {
                if (!sel[i]) continue;
                double k = rank_key(c, s->scorer, i);
                if (best < 0 || (!isnan(k) && (isnan(best_key) || k > best_key)))
                    best = i, best_key = k;
            }
            for (long i = p * K; i < (p + 1) * K; i++) sel[i] = i == best;
        }

    long count = 0;
    for (long i = 0; i < n; i++) count += sel[i];
    return count;
}

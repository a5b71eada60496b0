/* optim.c: AdamW (decoupled weight decay, bias correction), learning-rate schedules and
 * global-norm clipping over the model's flat parameter and gradient blocks. Reductions
 * use fixed per-thread partial sums so a fixed thread count gives identical results.
 * Knows tensors only through AdTensorInfo; no model internals. */
#include "autodidact/optim.h"
#include "autodidact/kernels.h"

#include <math.h>
#include <string.h>

#include <omp.h>

#define MAX_THREADS 256

AdStatus ad_adamw_init(AdAdamW *o, const AdAdamWConfig *cfg, size_t n_params) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n_params;
    o->m = ad_alloc_floats(n_params, "AdamW first moment");
    o->v = ad_alloc_floats(n_params, "AdamW second moment");
    if (!o->m || !o->v) {
        ad_adamw_free(o);
        return AD_ERR_NOMEM;
    }
    return AD_OK;
}

void ad_adamw_free(AdAdamW *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void ad_adamw_step(AdAdamW *o, AdModel *model, float lr) {
    AD_ASSERT(o->n == model->n_params && model->grads_mem);
    o->step++;
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    const float c1 = 1.0f / (float)(1.0 - pow(b1, (double)o->step));
    const float c2 = 1.0f / (float)(1.0 - pow(b2, (double)o->step));
    size_t off = 0;
    for (int t = 0; t < AD_P_COUNT; t++) {
        size_t n = model->info[t].size;
        if (!n) continue;
        const float wd = model->info[t].decay ? o->cfg.weight_decay : 0.0f;
        float *p = model->params_mem + off, *g = model->grads_mem + off;
        float *m = o->m + off, *v = o->v + off;
#pragma omp parallel for schedule(static) if(n >= AD_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float gi = g[i];
            float mi = b1 * m[i] + (1.0f - b1) * gi;
            float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            float mhat = mi * c1, vhat = vi * c2;
            p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
        }
        off += n;
    }
}

static const char *sched_names[] = {"constant", "cosine", "linear", "wsd"};

const char *ad_sched_name(AdSchedKind k) { return (unsigned)k < 4 ? sched_names[k] : "?"; }

int ad_sched_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, sched_names[i]) == 0) return i;
    return -1;
}

float ad_schedule_lr(const AdSchedule *s, long step) {
    if (s->warmup_steps > 0 && step < s->warmup_steps)
        return s->lr_max * (float)(step + 1) / (float)s->warmup_steps;
    long total = s->total_steps, w = s->warmup_steps > 0 ? s->warmup_steps : 0;
    double frac; /* progress of the decay phase in [0, 1] */
    switch (s->kind) {
    case AD_SCHED_CONSTANT:
        return s->lr_max;
    case AD_SCHED_COSINE:
    case AD_SCHED_LINEAR:
        if (total <= w) return s->lr_max;
        frac = (double)(step - w) / (double)(total - w);
        break;
    case AD_SCHED_WSD: {
        long d = s->decay_steps > 0 ? s->decay_steps : 0, start = total - d;
        if (start < w) start = w;
        if (step < start || total <= start) return s->lr_max;
        frac = (double)(step - start) / (double)(total - start);
        break;
    }
    default:
        return s->lr_max;
    }
    if (frac > 1.0) frac = 1.0;
    if (frac < 0.0) frac = 0.0;
    double k = s->kind == AD_SCHED_COSINE ? 0.5 * (1.0 + cos(3.14159265358979323846 * frac)) : 1.0 - frac;
    return (float)(s->lr_min + k * (s->lr_max - s->lr_min));
}

float ad_grad_norm(const AdModel *m) {
    double partial[MAX_THREADS] = {0};
    int nthreads = 1, want = omp_get_max_threads();
    if (want > MAX_THREADS) want = MAX_THREADS;
    const float *g = m->grads_mem;
    size_t n = m->n_params;
#pragma omp parallel num_threads(want) if(n >= AD_PAR_MIN)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        if (id == 0) nthreads = nt;
        size_t i0 = n * id / nt, i1 = n * (id + 1) / nt;
        double acc = 0.0;
        for (size_t i = i0; i < i1; i++) acc += (double)g[i] * g[i];
        partial[id] = acc;
    }
    double total = 0.0;
    for (int t = 0; t < nthreads; t++) total += partial[t];
    return (float)sqrt(total);
}

float ad_grad_clip(AdModel *m, float max_norm) {
    float norm = ad_grad_norm(m);
    if (max_norm > 0.0f && norm > max_norm && isfinite(norm)) {
        float k = max_norm / (norm + 1e-6f);
        float *g = m->grads_mem;
#pragma omp parallel for schedule(static) if(m->n_params >= AD_PAR_MIN)
        for (size_t i = 0; i < m->n_params; i++) g[i] *= k;
    }
    return norm;
}

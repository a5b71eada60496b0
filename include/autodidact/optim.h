/* optim.h: AdamW with decoupled weight decay and bias correction, learning-rate
 * schedules, global-norm gradient clipping. Knows parameters only as tensors with
 * a decay flag (AdTensorInfo); nothing of model internals. */
#ifndef AUTODIDACT_OPTIM_H
#define AUTODIDACT_OPTIM_H

#include "autodidact/model.h"

typedef struct {
    float beta1, beta2, eps, weight_decay;
} AdAdamWConfig;

typedef struct {
    AdAdamWConfig cfg;
    size_t n;      /* number of parameters */
    float *m;      /* (n) first moment, owned */
    float *v;      /* (n) second moment, owned */
    long step;     /* updates applied so far */
} AdAdamW;

AdStatus ad_adamw_init(AdAdamW *o, const AdAdamWConfig *cfg, size_t n_params);
void ad_adamw_free(AdAdamW *o);
/* One update of every parameter tensor of m with learning rate lr:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  mhat = m/(1-b1^t); vhat = v/(1-b2^t)
 *   p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p)   (wd only where info.decay) */
void ad_adamw_step(AdAdamW *o, AdModel *m, float lr);

typedef enum {
    AD_SCHED_CONSTANT = 0, /* warmup then lr_max */
    AD_SCHED_COSINE,       /* warmup, then cosine from lr_max to lr_min at total_steps */
    AD_SCHED_LINEAR,       /* warmup, then linear from lr_max to lr_min */
    AD_SCHED_WSD           /* warmup, stable at lr_max, linear decay to lr_min over the
                              last decay_steps steps */
} AdSchedKind;

typedef struct {
    AdSchedKind kind;
    float lr_max, lr_min;
    long warmup_steps, total_steps, decay_steps;
} AdSchedule;

const char *ad_sched_name(AdSchedKind k);
int ad_sched_parse(const char *s); /* -1 if unknown */
/* Learning rate for update number `step` (0-based). Warmup is linear from
 * lr_max/warmup_steps at step 0 to lr_max at step warmup_steps-1. */
float ad_schedule_lr(const AdSchedule *s, long step);

/* Global L2 norm of all gradients (accumulated in double, deterministic for a fixed
 * thread count). */
float ad_grad_norm(const AdModel *m);
/* Scales gradients so their global norm is at most max_norm (<= 0: no clipping);
 * returns the norm before clipping. */
float ad_grad_clip(AdModel *m, float max_norm);

#endif

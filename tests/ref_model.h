/* ref_model.h: an independent double-precision reference of the transformer described
 * in docs/MODEL.md, for tests only: naive loops, no BLAS, no shared code with src/model.c.
 * It reads the same contiguous float32 parameter block as AdModel but computes its own
 * tensor offsets from the documented table. */
#ifndef AD_REF_MODEL_H
#define AD_REF_MODEL_H

#include <stddef.h>

#include "autodidact/model.h"

/* Where each parameter tensor lives in the contiguous block, derived from the table in
 * docs/MODEL.md (indexed by the AD_P_* enum; absent tensors have size 0). */
typedef struct {
    const char *name[AD_P_COUNT];
    size_t offset[AD_P_COUNT];
    size_t size[AD_P_COUNT];
    int ndim[AD_P_COUNT];
    int shape[AD_P_COUNT][3]; /* as documented, even when the tensor is absent */
    size_t total;
} RefLayout;

void ref_layout(const AdModelConfig *c, RefLayout *lay);

/* Forward pass in double over tokens (B, T) with positions 0..T-1. Writes the logits
 * (B, T, V) to logits_out when it is not NULL and returns the mean cross-entropy over
 * targets >= 0 (targets of -1 are masked; 0 when every target is masked). */
double ref_forward_loss(const AdModelConfig *c, const float *params, const int *tokens,
                        const int *targets, int B, int T, double *logits_out);
/* The same with double parameters (the layout of ref_layout). */
double ref_forward_loss_d(const AdModelConfig *c, const double *params, const int *tokens,
                          const int *targets, int B, int T, double *logits_out);

/* Central finite differences (L(p + h e_i) - L(p - h e_i)) / 2h of ref_forward_loss_d
 * with respect to every parameter, in double. grad_out has ref_layout().total entries. */
void ref_grad_fd(const AdModelConfig *c, const float *params, const int *tokens,
                 const int *targets, int B, int T, double step, double *grad_out);

#endif

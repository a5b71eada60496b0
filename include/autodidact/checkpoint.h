/* checkpoint.h: model checkpoints in HDF5 (format "autodidact-checkpoint", version 1).
 * One dataset per weight under /weights with its documented name and shape, the model
 * config as attributes of /model, the tokenizer under /tokenizer, and (for exact
 * resume) optimizer moments, step and RNG state under /train. Saving writes a
 * temporary file, fsyncs, and renames it over the target, so a crash never leaves a
 * half-written checkpoint under the real name. This is the only module besides the
 * run log that touches HDF5. HDF5 files from strangers are untrusted input. */
#ifndef AUTODIDACT_CHECKPOINT_H
#define AUTODIDACT_CHECKPOINT_H

#include "autodidact/model.h"
#include "autodidact/tokenizer.h"
#include "autodidact/train.h"

#define AD_CHECKPOINT_FORMAT "autodidact-checkpoint"
/* The newest format version this program reads and writes. Version 2 adds the /model
 * attributes of later families (qkv_bias, sliding_window, rope_scaling and its factors);
 * a model that uses none of them is written as version 1, which older programs read. */
#define AD_CHECKPOINT_VERSION 2

/* tok and st may be NULL (no tokenizer / weights only). A model or moment holding a NaN
 * or infinity is refused (AD_ERR_NAN naming the tensor and index), as loading would. */
AdStatus ad_checkpoint_save(const char *path, const AdModel *m, const AdTokenizer *tok,
                            const AdTrainState *st);
/* Initialises m (ad_model_init with with_grads) from the file; if tok is non-NULL the
 * tokenizer is loaded (AD_ERR_FORMAT if the file has none); if st is non-NULL the
 * training state is loaded (moments are left NULL if the file has none).
 * Any mismatch (missing dataset, wrong shape, wrong format/version, checksum failure)
 * is an error naming the file and object, and so is a weight or AdamW moment that is
 * NaN or infinite (AD_ERR_NAN, naming the tensor and its first bad index); nothing is
 * left allocated on failure. */
AdStatus ad_checkpoint_load(const char *path, AdModel *m, int with_grads, AdTokenizer *tok,
                            AdTrainState *st);
/* Reads only the model config. */
AdStatus ad_checkpoint_read_config(const char *path, AdModelConfig *c);

#endif

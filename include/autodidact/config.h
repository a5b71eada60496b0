/* config.h: JSON experiment configs -> plain structs. Every key a config may hold is
 * a row of a schema (key path, type, range or choices, default, help); unknown keys,
 * duplicate keys, wrong types and out-of-range values are AD_ERR_CONFIG errors naming
 * the key path. "--set a.b=v" overrides apply before validation. The resolved config
 * (every key, defaults included) is written back as JSON so a run file can reload
 * it to the same values. Reads JSON only. */
#ifndef AUTODIDACT_CONFIG_H
#define AUTODIDACT_CONFIG_H

#include "autodidact/common.h"
#include "autodidact/model.h"

#define AD_PATH_MAX 1024

typedef struct {
    /* "model" */
    char family[16];        /* "gpt2" | "llama": switches preset before other model keys apply */
    AdModelConfig model;    /* vocab_size 0 = take it from the tokenizer */
    char init_from[AD_PATH_MAX]; /* "" = random init; else a checkpoint to start from */
    int init;               /* AdInitKind of a random init */
    char tokenizer_from[AD_PATH_MAX]; /* "" = data.tokenizer; else a checkpoint whose tokenizer
                                         a new model takes (any kind, BPE included) */
    /* "data" */
    struct {
        char source[16];    /* "task" | "text" */
        char task[32];      /* task name (tasks.h) when source == "task" */
        int min_len, max_len; /* task difficulty range for training examples */
        int pad_answer;     /* 1: add/radd/mul answers zero-padded (AD_TASK_PADDED) */
        char path[AD_PATH_MAX]; /* text file when source == "text" */
        char tokenizer[16]; /* "char" | "byte" */
        double val_frac;    /* fraction of a text file held out for evaluation */
    } data;
    /* "train" */
    struct {
        int steps;
        int batch_size;     /* sequences per micro-batch */
        int seq_len;        /* T */
        int grad_accum;     /* micro-batches per update */
        double lr, min_lr;
        char schedule[16];  /* constant | cosine | linear | wsd */
        int warmup_steps, decay_steps;
        double weight_decay, beta1, beta2, eps, grad_clip;
        int log_every, eval_every, ckpt_every;
        int eval_batches;   /* batches (or task examples / batch_size) per evaluation */
    } train;
    uint64_t seed;          /* 0 .. 2^53 (JSON number) or a decimal string for larger */
    int threads;            /* 0 = OpenMP default */
    char out_dir[AD_PATH_MAX];
} AdTrainConfig;

/* Fills every field with its documented default. */
void ad_train_config_defaults(AdTrainConfig *c);
/* Parses JSON text (source_name is used in messages, e.g. the file path), applies the
 * overrides ("a.b=v": v parsed as JSON if it parses, else taken as a string), and
 * validates. On error nothing is guaranteed about *c except that it is safe to reuse. */
AdStatus ad_train_config_parse(AdTrainConfig *c, const char *json_text, const char *source_name,
                               const char *const *overrides, int n_overrides);
/* Reads a file and calls ad_train_config_parse. */
AdStatus ad_train_config_load(AdTrainConfig *c, const char *path, const char *const *overrides,
                              int n_overrides);
/* The resolved config as pretty JSON (every key, numbers printed with %.17g);
 * caller frees with free(). NULL on allocation failure. */
char *ad_train_config_to_json(const AdTrainConfig *c);
/* Prints every key with its type, default and help text (for --help). */
void ad_train_config_print_keys(FILE *f);

#endif

/* importers.h: open-model files -> AdModel (+ AdTokenizer).
 * Four formats: llama2.c legacy .bin checkpoints, GGUF v2/v3 (llama architecture,
 * F32/F16/BF16 tensors), llm.c GPT-2 checkpoints (version 3 fp32, version 5 bf16) and
 * Hugging Face safetensors + config.json for LlamaForCausalLM (F32/F16/BF16).
 * Files are untrusted input: every count, length and shape is checked against the file
 * size before anything is allocated, and errors name the file and the field or tensor.
 * Writing these formats, quantized tensors and sharded checkpoints are out of scope. */
#ifndef AUTODIDACT_IMPORTERS_H
#define AUTODIDACT_IMPORTERS_H

#include "autodidact/common.h"
#include "autodidact/model.h"
#include "autodidact/tokenizer.h"

typedef enum {
    AD_IMPORT_AUTO = 0,        /* detect with ad_import_detect */
    AD_IMPORT_LLAMA2C = 1,     /* llama2.c legacy checkpoint (7 int32 header, fp32) */
    AD_IMPORT_GGUF = 2,        /* GGUF, general.architecture = "llama" */
    AD_IMPORT_LLMC = 3,        /* llm.c GPT-2 checkpoint (magic 20240326) */
    AD_IMPORT_SAFETENSORS = 4  /* Hugging Face safetensors + config.json (Llama) */
} AdImportFormat;

/* "auto", "llama2c", "gguf", "llmc", "safetensors" ("?" when out of range). */
const char *ad_import_format_name(AdImportFormat f);
/* Parses the names above; returns -1 when unknown. */
int ad_import_format_parse(const char *s);

/* Tells the format of a file by its first bytes: "GGUF" magic; int32 20240326 (llm.c);
 * an 8-byte little-endian header length that fits the file followed by '{'
 * (safetensors); seven plausible int32 llama2.c header fields. Failing those, by the
 * name's ending (.gguf, .safetensors). AD_ERR_IO if unreadable, AD_ERR_FORMAT (naming
 * the file) if nothing matches. */
AdStatus ad_import_detect(const char *path, AdImportFormat *fmt);

typedef struct {
    AdImportFormat format;      /* AD_IMPORT_AUTO: detect */
    const char *tokenizer_path; /* NULL: the file's embedded vocabulary, or none */
    const char *config_path;    /* safetensors only: config.json; NULL: the one beside path */
    int max_seq_len;            /* > 0: replaces the file's context length (0: keep it) */
} AdImportOptions;

/* Reads a model file into m, which is initialised inside (ad_model_init(m, &cfg, 0),
 * no gradients) with the file's configuration mapped to a family:
 * - llama2.c, GGUF, safetensors -> "llama" switches: RMSNorm, SwiGLU, RoPE on interleaved
 *   pairs (llama2.c's layout; Hugging Face's rotate-half q/k rows are permuted back),
 *   no biases; qkv_w rows [wq | wk | wv], fc_w rows [w1 (gate) | w3 (up)], fcproj_w = w2.
 *   Later families set their switches (model.h): Qwen2 (GGUF qwen2, Qwen2ForCausalLM)
 *   qkv_bias; Mistral (config.json sliding_window, GGUF {arch}.attention.sliding_window)
 *   sliding_window; Llama 3.1+ (config.json rope_scaling llama3, GGUF rope_freqs.weight or
 *   {arch}.rope.scaling.*) rope_scaling. GGUF Q8_0, Q4_0, Q4_K, Q5_K, Q6_K tensors are
 *   dequantized to F32.
 * - llm.c -> "gpt2" switches, tied, with the padded vocabulary rows dropped.
 * The classifier is tied when the file shares it (llama2.c vocab_size > 0, GGUF without
 * output.weight, safetensors without lm_head.weight or with tie_word_embeddings) and
 * also when a stored classifier is byte-identical to the token embedding (as in GGUF
 * files converted from tied llama2.c models).
 * tok (may be NULL) receives the vocabulary: from tokenizer_path when given (a llama2.c
 * tokenizer file, an llm.c GPT-2 tokenizer file recognised by its magic 20240328, or a
 * Hugging Face tokenizer.json, with the tokenizer_config.json beside it if any), else
 * from the file itself (GGUF tokenizer.ggml.*; SPM pieces get their U+2581 turned into
 * spaces as in llama2.c) or, for safetensors, the tokenizer.json in the model's
 * directory; when there is none, *tok is left zeroed
 * (vocab_size == 0). The vocabulary may not exceed the model's vocab_size.
 * A context length beyond the model's limits is an error unless opt->max_seq_len
 * replaces it; for learned positions (llm.c) it may only shrink the table.
 * A weight that is NaN or infinite is refused (AD_ERR_NAN naming the tensor and index).
 * On error nothing stays allocated: m (and tok) are left zeroed. */
AdStatus ad_import_opts(const char *path, const AdImportOptions *opt, AdModel *m,
                        AdTokenizer *tok);
/* ad_import_opts with {fmt, tokenizer_path} and every other option at its default. */
AdStatus ad_import(const char *path, AdImportFormat fmt, const char *tokenizer_path,
                   AdModel *m, AdTokenizer *tok);
/* Reads only the vocabulary of a file import reads: a GGUF's tokenizer.ggml.* (the file
 * may hold no tensors, as vocabulary-only GGUF files), a tokenizer.json (path ending in
 * .json), else the embedded or neighbouring vocabulary of a whole import. AD_ERR_FORMAT naming the file when it has none; on error
 * tok is left zeroed. */
AdStatus ad_import_vocab(const char *path, AdTokenizer *tok);

#endif

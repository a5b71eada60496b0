/* tokenizer.h: text <-> token ids. Byte-level (256 bytes + specials),
 * character-level (Unicode code points seen in the data + specials), llama2.c-style
 * sentencepiece BPE (SPM) and GPT-2 byte-level BPE vocabularies;
 * the vocabulary is plain data (pieces + scores, and GPT-2's merges) so checkpoints can
 * store it.
 * No model math here. A tokenizer is read-only after init: threads may share it. */
#ifndef AUTODIDACT_TOKENIZER_H
#define AUTODIDACT_TOKENIZER_H

#include "autodidact/common.h"

typedef enum {
    AD_TOK_BYTE = 0,  /* ids 0..3 specials, then one id per byte value */
    AD_TOK_CHAR = 1,  /* ids 0..3 specials, then one id per code point, sorted */
    AD_TOK_SPM = 2,   /* sentencepiece-style BPE as in llama2.c (scores, byte fallback) */
    AD_TOK_GPT2 = 3   /* byte-level BPE (GPT-2 and its descendants) */
} AdTokKind;

/* Pre-tokenizer of a byte-level BPE vocabulary: GGUF's tokenizer.ggml.pre values, each
 * the expression list llama.cpp's llama-vocab.cpp applies (see pretokenize.c). */
typedef enum {
    AD_PRE_GPT2 = 0,        /* "gpt-2" */
    AD_PRE_LLAMA3,          /* "llama-bpe" (Llama 3): numbers in threes, whole-word lookup */
    AD_PRE_QWEN2,           /* "qwen2": as llama-bpe with single digits */
    AD_PRE_DEEPSEEK_LLM,    /* "deepseek-llm" */
    AD_PRE_DEEPSEEK_CODER,  /* "deepseek-coder" */
    AD_PRE_FALCON,          /* "falcon" */
    AD_PRE_MPT,             /* "mpt": as gpt-2 */
    AD_PRE_STARCODER,       /* "starcoder": single digits, then gpt-2 */
    AD_PRE_REFACT,          /* "refact": as starcoder */
    AD_PRE_SMOLLM,          /* "smollm": as starcoder */
    AD_PRE_DEFAULT          /* "default": llama.cpp's fallback list */
} AdPreTok;
#define AD_PRE_COUNT 11

/* Token types, GGUF's tokenizer.ggml.token_type values. */
typedef enum {
    AD_TT_UNDEFINED = 0,    /* treated as normal */
    AD_TT_NORMAL = 1,
    AD_TT_UNKNOWN = 2,      /* the <unk> piece: decodes as stored, never matched in text */
    AD_TT_CONTROL = 3,      /* special: decodes to nothing, never matched in text */
    AD_TT_USER_DEFINED = 4, /* added token: matched in the raw text before pre-tokenizing,
                             * longest first; stored and decoded as raw text */
    AD_TT_UNUSED = 5,       /* decodes as stored, never produced by encode */
    AD_TT_BYTE = 6          /* SPM "<0xNN>" byte piece */
} AdTokType;

typedef struct {
    AdTokKind kind;
    int vocab_size;
    char **pieces;     /* (vocab_size) owned; piece i's bytes, NUL-terminated */
    int *piece_len;    /* (vocab_size) byte length of each piece (pieces may hold NUL) */
    float *scores;     /* (vocab_size) merge scores (SPM); 0 otherwise */
    int bos_id, eos_id, pad_id, sep_id; /* -1 when the vocabulary has none */
    int n_merges;      /* GPT-2: entries of merges; 0 otherwise */
    int *merges;       /* (n_merges, 2) GPT-2, owned: the merge of rank r (0 first) joins
                        * pieces merges[2r] and merges[2r+1]. NULL when the tokenizer has
                        * no merge table (then it decodes but cannot encode) */
    unsigned char *types; /* (vocab_size) owned AdTokType of each piece; NULL: all normal */
    int unk_id;        /* -1 when the vocabulary has none */
    AdPreTok pre;      /* GPT-2 kind: the pre-tokenizer (AD_PRE_GPT2 unless set) */
    int add_bos, add_eos; /* the vocabulary asks for BOS / EOS around a text (0 or 1);
                           * informational: encode never adds them */
    int add_space_prefix; /* SPM: prepend " " to a text (llama2.c does, the default) */
    int nfc;           /* texts are put in Unicode NFC before encoding (tokenizer.json) */
    void *impl;        /* private lookup tables, owned */
} AdTokenizer;

/* Byte-level: specials <pad>=0 <bos>=1 <eos>=2 <sep>=3, then byte b is id 4+b. */
AdStatus ad_tokenizer_init_byte(AdTokenizer *t);
/* Character-level over the UTF-8 code points that occur in text (plus specials,
 * same ids as above); invalid UTF-8 is an AD_ERR_FORMAT naming the byte offset. */
AdStatus ad_tokenizer_init_char(AdTokenizer *t, const char *text, size_t len);
/* Reads a llama2.c tokenizer file (int32 max_token_length, then per id: float32 score,
 * int32 length, bytes) as an AD_TOK_SPM vocabulary of vocab_size pieces. As in llama2.c,
 * bos_id = 1 ("<s>") and eos_id = 2 ("</s>"); id 0 is "<unk>"; pad_id is the id of a
 * "<pad>" piece if there is one, else -1; sep_id = -1. Byte-fallback pieces "<0xNN>"
 * encode and decode byte NN. A short file, a length beyond the file or beyond
 * max_token_length, or bytes left after the last piece is AD_ERR_FORMAT naming the file
 * and the token index. */
AdStatus ad_tokenizer_load_llama2c(AdTokenizer *t, const char *path, int vocab_size);
/* Reads a Hugging Face GPT-2 tokenizer: vocab.json (an object piece -> id, the ids
 * exactly 0..V-1, each once; pieces in GPT-2's byte-to-unicode form, each of the 256
 * byte characters among them) and merges.txt (an optional first line "#version...",
 * then one merge "a b" per line, rank 0 first; both pieces and their concatenation in
 * vocab.json, no merge twice; blank lines are skipped). "<|endoftext|>", if present, is
 * both bos_id and eos_id; pad_id = sep_id = -1. A malformed file is AD_ERR_FORMAT naming
 * the file and the line or key; a missing one AD_ERR_IO. */
AdStatus ad_tokenizer_load_gpt2(AdTokenizer *t, const char *vocab_json_path,
                                const char *merges_txt_path);
/* Reads a Hugging Face tokenizer.json with a byte-level BPE model: model.vocab (piece ->
 * id), model.merges ("a b" strings or ["a", "b"] pairs, rank 0 first), added_tokens
 * (special ones become control pieces, the others user-defined, matched before BPE), the
 * pre_tokenizer (ByteLevel -> gpt-2; Sequence[Split on the llama-bpe or qwen2 expression,
 * ByteLevel] -> llama-bpe / qwen2; Sequence[Digits individual, ByteLevel] -> starcoder) and
 * the normalizer (none, or NFC: texts are put in NFC before encoding). A special token
 * that the post_processor's TemplateProcessing puts before (after) the text is the BOS
 * (EOS) to add. config_path (may be NULL or absent) is a tokenizer_config.json whose
 * bos/eos/pad/unk_token and add_bos_token / add_eos_token take precedence. Anything else
 * (a byte_fallback or subword-prefix BPE, other normalizers and pre-tokenizers) is
 * AD_ERR_FORMAT naming the file and the part; ids no entry names become empty unused
 * pieces. */
AdStatus ad_tokenizer_load_hf_json(AdTokenizer *t, const char *path, const char *config_path);
/* Rebuilds a tokenizer from stored pieces (as written to a checkpoint). Copies inputs;
 * scores may be NULL (all 0). A byte vocabulary must hold each byte value as exactly one
 * one-byte piece, a char vocabulary one code point per piece, both apart from the
 * special ids; AD_ERR_FORMAT otherwise. A GPT-2 vocabulary is byte-level when each of
 * the 256 byte characters of GPT-2's bytes_to_unicode() is a non-special piece and every
 * non-special piece is made of such characters (the form of vocab.json); it decodes to
 * the raw bytes, and encodes once ad_tokenizer_set_merges gave it merges. Any other
 * GPT-2 vocabulary (llm.c's tokenizer files store raw bytes) is accepted as decode-only:
 * pieces decode as stored. A GPT-2 tokenizer comes back without a merge table. */
AdStatus ad_tokenizer_init_from_pieces(AdTokenizer *t, AdTokKind kind, int vocab_size,
                                       const char *const *pieces, const int *piece_len,
                                       const float *scores, int bos_id, int eos_id,
                                       int pad_id, int sep_id);
/* Everything a vocabulary file can say, for ad_tokenizer_init_spec. */
typedef struct {
    AdTokKind kind;
    int vocab_size;
    const char *const *pieces;  /* (vocab_size) bytes of each piece */
    const int *piece_len;       /* (vocab_size) */
    const float *scores;        /* (vocab_size) or NULL (all 0) */
    const unsigned char *types; /* (vocab_size) AdTokType or NULL (all normal) */
    int bos_id, eos_id, pad_id, sep_id, unk_id; /* -1: none */
    AdPreTok pre;
    int add_bos, add_eos, add_space_prefix, nfc;
    int n_merges;
    const int *merges;          /* (n_merges, 2) GPT-2 merge table, or NULL */
} AdTokSpec;

/* Builds a tokenizer from a full description (copied), as ad_tokenizer_init_from_pieces
 * followed by ad_tokenizer_set_merges, with token types, the unk id, the pre-tokenizer
 * and the flags. Control pieces are special like bos/eos/pad/sep. A GPT-2 vocabulary is
 * byte-level when every normal piece is in byte-to-unicode form (control, user-defined,
 * unknown and unused pieces may hold anything); a byte without a piece then makes encode
 * fail, naming that byte, only for a text that holds it. A type outside 0..6 or a
 * pre-tokenizer outside AdPreTok is AD_ERR_ARG. */
AdStatus ad_tokenizer_init_spec(AdTokenizer *t, const AdTokSpec *spec);
/* "gpt-2", "llama-bpe", ... as listed at AdPreTok ("?" when out of range). */
const char *ad_pretok_name(AdPreTok p);
/* Parses a tokenizer.ggml.pre value; "llama3", "llama-v3" (llama-bpe), "qwen2.5",
 * "qwen-2.5", "deepseek-r1-qwen" (qwen2) are taken as their families; -1 if unknown. */
int ad_pretok_parse(const char *s);

/* Gives a GPT-2 tokenizer its merge table: merges[2r], merges[2r+1] are the ids joined by
 * the merge of rank r, r < n_merges (copied; merges may be NULL when n_merges is 0).
 * Replaces any earlier table. More than zero merges need a byte-level vocabulary; each
 * merge must join two non-empty, non-special pieces whose concatenation is a non-special
 * piece, and no pair may repeat (AD_ERR_FORMAT naming the merge); another kind, a
 * negative count or an id outside [0, vocab_size) is AD_ERR_ARG. On error t is unchanged.
 * Part of initialisation: not to be called while other threads use t. */
AdStatus ad_tokenizer_set_merges(AdTokenizer *t, int n_merges, const int *merges);
/* GPT-2 kind: the id of the non-special piece with these bytes (the lowest of equal
 * ones), or -1 (also for other kinds). */
int ad_tokenizer_piece_id(const AdTokenizer *t, const char *s, int len);
void ad_tokenizer_free(AdTokenizer *t);
const char *ad_tok_kind_name(AdTokKind k);
int ad_tok_kind_parse(const char *s); /* -1 if unknown */

/* Encodes text (no BOS/EOS added) into out[0..cap); *n_out receives the count.
 * A character missing from a char vocabulary is AD_ERR_ARG naming it; running out
 * of room is AD_ERR_ARG; invalid UTF-8 given to a char vocabulary is AD_ERR_FORMAT
 * naming the byte offset. SPM follows llama2.c's encode(): a " " is prepended to
 * non-empty text, each code point is looked up (bytes without a piece fall back to
 * "<0xNN>" pieces), then the adjacent pair whose concatenation has the highest score
 * is merged (ties: leftmost) until none is in the vocabulary; any byte string is
 * accepted. SPM and GPT-2 first cut the vocabulary's user-defined pieces out of the text
 * (longest first, leftmost first; SPM then gives each stretch after one its dummy " "), and
 * a vocabulary with nfc set puts the text in NFC first. GPT-2 (byte-level BPE) splits each
 * stretch into pre-tokens by t->pre (the expressions llama.cpp's llama-vocab.cpp applies,
 * over Unicode 15 classes: see pretokenize.c); llama-bpe takes a pre-token that is a whole
 * piece as it is; otherwise its bytes become byte pieces, then the adjacent pair of lowest
 * merge rank is merged, all its occurrences left to right (OpenAI's encoder.py), until no
 * pair has a rank. Any byte string is accepted (bytes that are not UTF-8 are in no Unicode
 * class) unless it holds a byte the vocabulary has no piece for: AD_ERR_ARG naming the
 * byte and its offset. Control pieces in the text ("<|endoftext|>") are encoded as plain
 * text. A GPT-2 vocabulary that is not byte-level or has no merge table is AD_ERR_ARG.
 * Encoding allocates O(len) scratch per call; byte and char encode allocate nothing. */
AdStatus ad_tokenizer_encode(const AdTokenizer *t, const char *text, size_t len, int *out,
                             int cap, int *n_out);
/* As ad_tokenizer_encode, for text that continues an earlier one (an answer after its
 * prompt): SPM does not prepend its dummy " ", so that a continuation decoded from
 * generated ids (which keeps the leading space of its first piece) encodes back to the
 * same pieces. Every other kind encodes exactly as ad_tokenizer_encode. */
AdStatus ad_tokenizer_encode_continuation(const AdTokenizer *t, const char *text, size_t len,
                                          int *out, int cap, int *n_out);
/* Appends the decoded bytes of ids into buf (NUL-terminated, truncated to cap);
 * special tokens decode to nothing. Returns the number of bytes that were needed.
 * Writing starts at buf[0]; the count excludes the NUL, so the text is complete iff it
 * is < cap (as with snprintf). Special ids (bos/eos/pad/sep) and ids outside
 * [0, vocab_size) decode to nothing. SPM, as llama2.c's decode(): "<0xNN>" pieces decode
 * to byte NN, and a piece right after BOS loses its leading space; so for SPM,
 * decode(BOS + encode(s)) == s, while decode(encode(s)) == " " + s for non-empty s.
 * GPT-2 byte-level pieces map back through bytes_to_unicode() to raw bytes, so
 * decode(encode(s)) == s for any bytes; decode-only GPT-2 pieces are copied as stored. */
size_t ad_tokenizer_decode(const AdTokenizer *t, const int *ids, int n, char *buf, size_t cap);

#endif

/* tokenizer.h: text <-> token ids. Byte-level (256 bytes + specials),
 * character-level (Unicode code points seen in the data + specials) and llama2.c-style
 * sentencepiece BPE (SPM) vocabularies;
 * the vocabulary is plain data (pieces + scores) so checkpoints can store it.
 * No model math here. A tokenizer is read-only after init: threads may share it. */
#ifndef AUTODIDACT_TOKENIZER_H
#define AUTODIDACT_TOKENIZER_H

#include "autodidact/common.h"

typedef enum {
    AD_TOK_BYTE = 0,  /* ids 0..3 specials, then one id per byte value */
    AD_TOK_CHAR = 1,  /* ids 0..3 specials, then one id per code point, sorted */
    AD_TOK_SPM = 2,   /* sentencepiece-style BPE as in llama2.c (scores, byte fallback) */
    AD_TOK_GPT2 = 3   /* GPT-2 byte-level BPE */
} AdTokKind;

typedef struct {
    AdTokKind kind;
    int vocab_size;
    char **pieces;     /* (vocab_size) owned; piece i's bytes, NUL-terminated */
    int *piece_len;    /* (vocab_size) byte length of each piece (pieces may hold NUL) */
    float *scores;     /* (vocab_size) merge scores (SPM); 0 otherwise */
    int bos_id, eos_id, pad_id, sep_id; /* -1 when the vocabulary has none */
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
/* Rebuilds a tokenizer from stored pieces (as written to a checkpoint). Copies inputs;
 * scores may be NULL (all 0). A byte vocabulary must hold each byte value as exactly one
 * one-byte piece, a char vocabulary one code point per piece, both apart from the
 * special ids; AD_ERR_FORMAT otherwise. */
AdStatus ad_tokenizer_init_from_pieces(AdTokenizer *t, AdTokKind kind, int vocab_size,
                                       const char *const *pieces, const int *piece_len,
                                       const float *scores, int bos_id, int eos_id,
                                       int pad_id, int sep_id);
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
 * accepted. SPM encode allocates O(len) scratch per call (O(len log len) time); byte
 * and char encode allocate nothing. GPT-2 encode is not implemented (AD_ERR_ARG). */
AdStatus ad_tokenizer_encode(const AdTokenizer *t, const char *text, size_t len, int *out,
                             int cap, int *n_out);
/* Appends the decoded bytes of ids into buf (NUL-terminated, truncated to cap);
 * special tokens decode to nothing. Returns the number of bytes that were needed.
 * Writing starts at buf[0]; the count excludes the NUL, so the text is complete iff it
 * is < cap (as with snprintf). Special ids (bos/eos/pad/sep) and ids outside
 * [0, vocab_size) decode to nothing. SPM, as llama2.c's decode(): "<0xNN>" pieces decode
 * to byte NN, and a piece right after BOS loses its leading space; so for SPM,
 * decode(BOS + encode(s)) == s, while decode(encode(s)) == " " + s for non-empty s.
 * GPT-2 pieces are copied as stored (no byte-unicode mapping yet). */
size_t ad_tokenizer_decode(const AdTokenizer *t, const int *ids, int n, char *buf, size_t cap);

#endif

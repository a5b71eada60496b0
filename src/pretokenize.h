/* pretokenize.h: what happens to a text before BPE: the NFC normalizer and the
 * pre-tokenizers of byte-level BPE vocabularies (text -> pre-tokens that BPE then merges
 * within); internal to tokenizer.c. */
#ifndef AUTODIDACT_PRETOKENIZE_H
#define AUTODIDACT_PRETOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "autodidact/tokenizer.h"

/* Decodes one well-formed UTF-8 sequence (no overlongs, surrogates or values past
 * U+10FFFF) from s[0..n); returns its length, or 0 if it is invalid. */
int ad_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Splits s[0..len) into the pre-tokens of pre, writing the end offset of each (ascending,
 * the last = len) to ends, which has room for len entries; returns their count (0 for
 * empty text). scratch has room for len entries too. A byte that does not start a valid
 * UTF-8 sequence is one unit of its own, in no Unicode class. Allocates nothing. */
size_t ad_pretok_split(AdPreTok pre, const unsigned char *s, size_t len, size_t *ends,
                       size_t *scratch);

/* Unicode NFC of s[0..len) into *out (malloc'd, *out_len bytes; bytes that are not UTF-8
 * pass through). Returns 0, or -1 when out of memory. (normalize.c) */
int ad_unicode_nfc(const unsigned char *s, size_t len, unsigned char **out, size_t *out_len);

#endif

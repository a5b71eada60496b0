/* tokenizer_internal.h: what tokenizer.c shares with tokenizer_json.c. Not a public
 * header. */
#ifndef AUTODIDACT_TOKENIZER_INTERNAL_H
#define AUTODIDACT_TOKENIZER_INTERNAL_H

#include <cjson/cJSON.h>

#include "autodidact/common.h"

enum { TOK_MAX_VOCAB = 1 << 21 }; /* bound on vocab_size from a caller or a file */

/* Parses a whole JSON file (at most 1 GiB) into *root (NULL on error; malformed JSON is
 * AD_ERR_FORMAT naming the file, line and column). The caller deletes *root. */
AdStatus ad_tok_read_json(const char *path, cJSON **root);

#endif

/* fuzz_tokenizer.c: the tokenizer loaders and the encoders they build. The first byte picks
 * the loader (llama2.c tokenizer file; a GPT-2 vocab.json whose merges.txt is the part
 * after a NUL byte; a Hugging Face tokenizer.json, or a GGUF vocabulary, each the part
 * before the first NUL); the text after the second NUL, if any, is encoded and decoded
 * back. */
#include "autodidact/importers.h"
#include "autodidact/tokenizer.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    if (size < 2) return 0;
    int kind = data[0] & 3, vocab = 1 + data[1] * 4;
    data += 2, size -= 2;
    const uint8_t *nul = memchr(data, 0, size);
    size_t first = nul ? (size_t)(nul - data) : size;
    const uint8_t *rest = nul ? nul + 1 : data + size;
    size_t rest_n = size - first - (nul ? 1 : 0);
    const uint8_t *nul2 = memchr(rest, 0, rest_n);
    size_t second = nul2 ? (size_t)(nul2 - rest) : rest_n;
    AdTokenizer t;
    AdStatus st;
    if (kind == 0) {
        const char *p = fuzz_file(data, size, ".tok"); /* the whole input: binary */
        st = ad_tokenizer_load_llama2c(&t, p, vocab);
        unlink(p);
        nul2 = NULL;
    } else if (kind >= 2) {
        const char *p = fuzz_file(data, first, kind == 2 ? ".json" : ".gguf");
        st = kind == 2 ? ad_tokenizer_load_hf_json(&t, p, NULL) : ad_import_vocab(p, &t);
        unlink(p);
    } else {
        char vpath[600];
        snprintf(vpath, sizeof vpath, "%s", fuzz_file(data, first, ".vocab.json"));
        const char *mpath = fuzz_file(rest, second, ".merges.txt");
        st = ad_tokenizer_load_gpt2(&t, vpath, mpath);
        unlink(vpath);
        unlink(mpath);
    }
    if (st != AD_OK) return 0;
    if (nul2) {
        const char *text = (const char *)nul2 + 1;
        size_t n = rest_n - second - 1;
        int *ids = malloc(sizeof(int) * (n + 4));
        int count = 0;
        if (ids && ad_tokenizer_encode(&t, text, n, ids, (int)n + 4, &count) == AD_OK) {
            char *back = malloc(64 * (size_t)count + 1);
            if (back) ad_tokenizer_decode(&t, ids, count, back, 64 * (size_t)count + 1);
            free(back);
        }
        free(ids);
    }
    ad_tokenizer_free(&t);
    return 0;
}

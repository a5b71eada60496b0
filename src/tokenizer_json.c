/* tokenizer_json.c: Hugging Face tokenizer.json vocabularies (byte-level BPE model, merges,
 * added tokens, pre-tokenizer and normalizer, with tokenizer_config.json's special tokens)
 * into an AdTokenizer; read beside safetensors models. Encoding itself is tokenizer.c's. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autodidact/tokenizer.h"
#include "tokenizer_internal.h"

/* The Split regular expressions of the pre-tokenizers tokenizer.json files use. */
static const struct {
    const char *regex;
    AdPreTok pre;
} HF_SPLITS[] = {
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
     AD_PRE_GPT2},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
     "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", AD_PRE_LLAMA3},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
     "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", AD_PRE_QWEN2},
};

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Is o a ByteLevel pre-tokenizer (no prefix space) that applies GPT-2's regex iff regex? */
static int hf_is_byte_level(const cJSON *o, int regex) {
    const char *type = json_str(o, "type");
    const cJSON *pfx = cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(o, "use_regex");
    int use_regex = re ? cJSON_IsTrue(re) : 1;
    return type && !strcmp(type, "ByteLevel") && !cJSON_IsTrue(pfx) && use_regex == regex;
}

/* Maps the pre_tokenizer object to one of ours: ByteLevel (GPT-2's regex); Sequence of a
 * Split on a known regex (Isolated) and a ByteLevel without regex; Sequence of Digits
 * (individual) and a ByteLevel with regex (starcoder, smollm). */
static AdStatus hf_pretokenizer(const char *path, const cJSON *o, AdPreTok *pre) {
    if (o && hf_is_byte_level(o, 1)) {
        *pre = AD_PRE_GPT2;
        return AD_OK;
    }
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
    const char *type = o ? json_str(o, "type") : NULL;
    if (type && !strcmp(type, "Sequence") && cJSON_GetArraySize(seq) == 2) {
        const cJSON *a = cJSON_GetArrayItem(seq, 0), *b = cJSON_GetArrayItem(seq, 1);
        const char *ta = json_str(a, "type");
        if (ta && !strcmp(ta, "Split") && hf_is_byte_level(b, 0)) {
            const char *re = json_str(cJSON_GetObjectItemCaseSensitive(a, "pattern"), "Regex");
            const char *beh = json_str(a, "behavior");
            for (size_t k = 0; re && beh && !strcmp(beh, "Isolated") &&
                               !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "invert")) &&
                               k < sizeof HF_SPLITS / sizeof HF_SPLITS[0]; k++)
                if (!strcmp(re, HF_SPLITS[k].regex)) {
                    *pre = HF_SPLITS[k].pre;
                    return AD_OK;
                }
            return ad_fail(AD_ERR_FORMAT, "%s: pre_tokenizer Split on \"%.300s\" is not one of "
                           "the supported expressions (gpt-2, llama-bpe, qwen2)", path,
                           re ? re : "(no Regex)");
        }
        if (ta && !strcmp(ta, "Digits") &&
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "individual_digits")) &&
            hf_is_byte_level(b, 1)) {
            *pre = AD_PRE_STARCODER;
            return AD_OK;
        }
    }
    char *txt = o ? cJSON_PrintUnformatted(o) : NULL;
    AdStatus st = ad_fail(AD_ERR_FORMAT, "%s: pre_tokenizer %.300s is not supported (ByteLevel; "
                          "Split on the llama-bpe or qwen2 expression + ByteLevel; Digits + "
                          "ByteLevel)", path, txt ? txt : "null");
    free(txt);
    return st;
}

/* BOS/EOS from a TemplateProcessing post_processor (alone or in a Sequence): a special
 * token before the text ("single"'s first item) is a BOS to add, one after it an EOS. */
static void hf_template_specials(const cJSON *pp, const char *const *pieces, int V, int *bos,
                                 int *eos) {
    const char *type = json_str(pp, "type");
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pp, "processors"))
            hf_template_specials(e, pieces, V, bos, eos);
        return;
    }
    if (!type || strcmp(type, "TemplateProcessing")) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    int n = cJSON_GetArraySize(single);
    for (int end = 0; end < 2 && n > 1; end++) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(single, end ? n - 1 : 0), "SpecialToken");
        const char *name = json_str(sp, "id");
        for (int i = 0; name && i < V; i++)
            if (pieces[i] && !strcmp(pieces[i], name)) {
                *(end ? eos : bos) = i;
                break;
            }
    }
}

/* The id of a special token named in tokenizer_config.json (a string or an object with
 * "content"), or -1. */
static int hf_config_token(const cJSON *cfg, const char *key, const char *const *pieces,
                           int V) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : json_str(v, "content");
    for (int i = 0; s && i < V; i++)
        if (pieces[i] && !strcmp(pieces[i], s)) return i;
    return -1;
}

AdStatus ad_tokenizer_load_hf_json(AdTokenizer *t, const char *path, const char *config_path) {
    memset(t, 0, sizeof *t);
    cJSON *root = NULL, *cfg = NULL;
    const char **pieces = NULL;
    int *lens = NULL, *pairs = NULL;
    unsigned char *types = NULL;
    AdStatus st = ad_tok_read_json(path, &root);
    if (st == AD_OK && config_path) {
        FILE *f = fopen(config_path, "rb");
        if (f) {
            fclose(f);
            st = ad_tok_read_json(config_path, &cfg);
        }
    }
    if (st != AD_OK) goto cleanup;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mtype = json_str(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if ((mtype && strcmp(mtype, "BPE")) || !cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        st = ad_fail(AD_ERR_FORMAT, "%s: model is not a BPE model with a vocab object and a "
                     "merges array (type \"%s\")", path, mtype ? mtype : "none");
        goto cleanup;
    }
    const char *sub = json_str(model, "continuing_subword_prefix");
    const char *suf = json_str(model, "end_of_word_suffix");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")) || (sub && *sub) ||
        (suf && *suf)) {
        st = ad_fail(AD_ERR_FORMAT, "%s: a BPE model with byte_fallback, a continuing-subword "
                     "prefix or an end-of-word suffix is not supported (byte-level BPE only)",
                     path);
        goto cleanup;
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const char *ntype = cJSON_IsNull(norm) || !norm ? NULL : json_str(norm, "type");
    if (ntype && strcmp(ntype, "NFC")) {
        st = ad_fail(AD_ERR_FORMAT, "%s: normalizer \"%s\" is not supported (none, or NFC)",
                     path, ntype);
        goto cleanup;
    }
    if (!(cJSON_IsNull(norm) || !norm) && !ntype) {
        st = ad_fail(AD_ERR_FORMAT, "%s: normalizer has no type", path);
        goto cleanup;
    }
    AdPreTok pre = AD_PRE_GPT2;
    if ((st = hf_pretokenizer(path, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"),
                              &pre)) != AD_OK)
        goto cleanup;
    /* ids: the vocab's and the added tokens', each below TOK_MAX_VOCAB */
    int V = 0;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (int pass = 0; pass < 2; pass++)
        for (const cJSON *e = pass ? (added ? added->child : NULL) : vocab->child; e; e = e->next) {
            const cJSON *idv = pass ? cJSON_GetObjectItemCaseSensitive(e, "id") : e;
            const char *txt = pass ? json_str(e, "content") : e->string;
            double v = cJSON_IsNumber(idv) ? idv->valuedouble : -1;
            if (!txt || !(v >= 0 && v < TOK_MAX_VOCAB) || v != floor(v)) {
                st = ad_fail(AD_ERR_FORMAT, "%s: %s \"%.200s\" has no integer id in [0, %d)", path,
                             pass ? "added token" : "vocab entry", txt ? txt : "?", TOK_MAX_VOCAB);
                goto cleanup;
            }
            if ((int)v + 1 > V) V = (int)v + 1;
        }
    pieces = ad_calloc((size_t)V, sizeof *pieces, "tokenizer.json pieces");
    lens = ad_calloc((size_t)V, sizeof *lens, "tokenizer.json piece lengths");
    types = ad_malloc((size_t)V, "tokenizer.json token types");
    if (!pieces || !lens || !types) {
        st = AD_ERR_NOMEM;
        goto cleanup;
    }
    memset(types, AD_TT_UNUSED, (size_t)V); /* ids nobody names stay empty and unused */
    for (int pass = 0; pass < 2; pass++)
        for (const cJSON *e = pass ? (added ? added->child : NULL) : vocab->child; e; e = e->next) {
            int id = (int)(pass ? cJSON_GetObjectItemCaseSensitive(e, "id") : e)->valuedouble;
            const char *txt = pass ? json_str(e, "content") : e->string;
            if (!pass && pieces[id]) {
                st = ad_fail(AD_ERR_FORMAT, "%s: vocab entries \"%.200s\" and \"%.200s\" share id "
                             "%d", path, pieces[id], txt, id);
                goto cleanup;
            }
            pieces[id] = txt;
            lens[id] = (int)strlen(txt);
            types[id] = !pass ? AD_TT_NORMAL
                      : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"))
                          ? AD_TT_CONTROL : AD_TT_USER_DEFINED;
        }
    for (int i = 0; i < V; i++)
        if (!pieces[i]) pieces[i] = "";
    /* BOS/EOS: the post_processor's template adds them; tokenizer_config.json names them
     * and may say otherwise */
    int tpl_bos = -1, tpl_eos = -1;
    hf_template_specials(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), pieces, V,
                         &tpl_bos, &tpl_eos);
    int bos = hf_config_token(cfg, "bos_token", pieces, V);
    int eos = hf_config_token(cfg, "eos_token", pieces, V);
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    int add_bos = ab ? cJSON_IsTrue(ab) : tpl_bos >= 0;
    int add_eos = ae ? cJSON_IsTrue(ae) : tpl_eos >= 0;
    if (bos < 0) bos = tpl_bos;
    if (eos < 0) eos = tpl_eos;
    const AdTokSpec spec = {
        .kind = AD_TOK_GPT2, .vocab_size = V, .pieces = pieces, .piece_len = lens,
        .types = types, .bos_id = bos, .eos_id = eos,
        .pad_id = hf_config_token(cfg, "pad_token", pieces, V), .sep_id = -1,
        .unk_id = hf_config_token(cfg, "unk_token", pieces, V), .pre = pre,
        .add_bos = add_bos && bos >= 0, .add_eos = add_eos && eos >= 0, .nfc = ntype != NULL};
    if ((st = ad_tokenizer_init_spec(t, &spec)) != AD_OK) {
        ad_fail_context(st, "%s", path);
        goto cleanup;
    }
    /* merges: "a b" strings (split at the first space after the first byte) or [a, b] */
    int n = cJSON_GetArraySize(merges), r = 0;
    pairs = ad_malloc(2 * (size_t)(n > 0 ? n : 1) * sizeof *pairs, "tokenizer.json merges");
    if (!pairs) {
        st = AD_ERR_NOMEM;
        goto cleanup;
    }
    for (const cJSON *e = merges->child; e; e = e->next, r++) {
        const char *a = NULL, *b = NULL;
        int la = 0, lb = 0;
        if (cJSON_IsString(e)) {
            const char *sp = e->valuestring[0] ? strchr(e->valuestring + 1, ' ') : NULL;
            if (sp) {
                a = e->valuestring, la = (int)(sp - a);
                b = sp + 1, lb = (int)strlen(b);
            }
        } else if (cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            a = e->child->valuestring, la = (int)strlen(a);
            b = e->child->next->valuestring, lb = (int)strlen(b);
        }
        pairs[2 * r] = a ? ad_tokenizer_piece_id(t, a, la) : -1;
        pairs[2 * r + 1] = b ? ad_tokenizer_piece_id(t, b, lb) : -1;
        if (pairs[2 * r] < 0 || pairs[2 * r + 1] < 0) {
            char *txt = cJSON_PrintUnformatted(e);
            st = ad_fail(AD_ERR_FORMAT, "%s: merges[%d] = %.200s is not two pieces of the vocab",
                         path, r, txt ? txt : "?");
            free(txt);
            goto cleanup;
        }
    }
    if ((st = ad_tokenizer_set_merges(t, n, pairs)) != AD_OK)
        ad_fail_context(st, "%s: merges", path);
cleanup:
    if (st != AD_OK) ad_tokenizer_free(t);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    free(pieces);
    free(lens);
    free(types);
    free(pairs);
    return st;
}

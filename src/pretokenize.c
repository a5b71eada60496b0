/* pretokenize.c: the pre-tokenizers named by GGUF's tokenizer.ggml.pre (gpt-2, llama-bpe,
 * qwen2, deepseek-llm, deepseek-coder, falcon, mpt, starcoder, refact, smollm, default):
 * each is the list of regular expressions llama.cpp's llama-vocab.cpp applies in turn,
 * written out by hand over Unicode classes from unicode_tables.c. No BPE here. */
#include "pretokenize.h"

#include "unicode_tables.h"

/* ---- UTF-8 and classes ---- */

int ad_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if ((size_t)len > n || s[1] < lo || s[1] > hi) return 0;
    uint32_t v = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

enum { NO_CP = 0xFFFFFFFFu }; /* the code point of a byte that is not valid UTF-8 */

/* The text being split: s[0..end) of the current segment. */
typedef struct {
    const unsigned char *s;
    size_t end;
} Seg;

/* Code point at i (< seg end) and its byte length. */
static int unit(const Seg *g, size_t i, uint32_t *cp) {
    int k = ad_utf8_decode(g->s + i, g->end - i, cp);
    if (k == 0) {
        *cp = NO_CP;
        return 1;
    }
    return k;
}

static int category(uint32_t c) {
    if (c == NO_CP) return AD_UC_OTHER;
    return ad_unicode_lookup(ad_unicode_categories, ad_unicode_n_categories, c);
}
static int is_space(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return c != NO_CP && ad_unicode_lookup(ad_unicode_white_space, ad_unicode_n_white_space, c);
}
static int is_letter(uint32_t c) { return category(c) == AD_UC_LETTER; }
static int is_number(uint32_t c) { return category(c) == AD_UC_NUMBER; }
static int is_punct(uint32_t c) { return category(c) == AD_UC_PUNCT; }
/* [^\s\p{L}\p{N}] */
static int is_other(uint32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); }
static int is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }
static int is_ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }
/* falcon: [\p{P}\$\+<=>\^~\|`] */
static int is_falcon_punct(uint32_t c) {
    return is_punct(c) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' ||
           c == '^' || c == '~' || c == '|' || c == '`';
}
/* default: [\p{P}\$\+<=>\^~\|] */
static int is_default_punct(uint32_t c) { return c != '`' && is_falcon_punct(c); }
/* deepseek-llm's explicit letter set */
static int is_dsl_letter(uint32_t c) {
    return c != NO_CP && ad_unicode_lookup(ad_unicode_deepseek_llm_letters,
                                           ad_unicode_n_deepseek_llm_letters, c);
}
/* deepseek-llm: [!-/:-~！-／：-～‘-‟　-。] */
static int is_dsl_punct(uint32_t c) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x7E) || (c >= 0xFF01 && c <= 0xFF0F) ||
           (c >= 0xFF1A && c <= 0xFF5E) || (c >= 0x2018 && c <= 0x201F) ||
           (c >= 0x3000 && c <= 0x3002);
}
/* deepseek: [一-龥ࠀ-一가-퟿] */
static int is_cjk(uint32_t c) {
    return (c >= 0x0800 && c <= 0x9FA5) || (c >= 0xAC00 && c <= 0xD7FF);
}

/* ---- matchers: each returns the end of the match that starts at i (< g->end), or i
 * when none does; alternatives are tried in order and quantifiers are greedy with
 * backtracking, as in ECMAScript regular expressions. ---- */

typedef size_t (*Matcher)(const Seg *g, size_t i);

/* End of the run of units satisfying pred from i. */
static size_t run(const Seg *g, size_t i, int (*pred)(uint32_t)) {
    while (i < g->end) {
        uint32_t c;
        int k = unit(g, i, &c);
        if (!pred(c)) break;
        i += (size_t)k;
    }
    return i;
}

/* PRE? CLASS+ where PRE is one unit satisfying pre (NULL: none). */
static size_t opt_then_run(const Seg *g, size_t i, int (*pre)(uint32_t), int (*cls)(uint32_t)) {
    uint32_t c0, c1;
    int k0 = unit(g, i, &c0);
    if (pre && pre(c0) && i + (size_t)k0 < g->end) {
        unit(g, i + (size_t)k0, &c1);
        if (cls(c1)) return run(g, i + (size_t)k0, cls);
    }
    return cls(c0) ? run(g, i, cls) : i;
}

static int is_blank(uint32_t c) { return c == ' '; }

/* 's|'t|'re|'ve|'m|'ll|'d, case-insensitively when fold (ASCII letters only). */
static size_t contraction(const Seg *g, size_t i, int fold) {
    const unsigned char *s = g->s;
    if (s[i] != '\'' || i + 1 >= g->end) return i;
    unsigned a = s[i + 1], b = i + 2 < g->end ? s[i + 2] : 0;
    if (fold) {
        if (a >= 'A' && a <= 'Z') a += 32;
        if (b >= 'A' && b <= 'Z') b += 32;
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    return i;
}

/* \s+(?!\S): a run of white space that does not end right before a non-space; so a run
 * followed by a non-space gives up its last unit (failing if that was all of it). */
static size_t space_not_before_nonspace(const Seg *g, size_t i) {
    size_t j = i, last = i;
    while (j < g->end) {
        uint32_t c;
        int k = unit(g, j, &c);
        if (!is_space(c)) break;
        last = j;
        j += (size_t)k;
    }
    if (j == i) return i;
    return j < g->end ? last : j;
}

/* gpt-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
static size_t m_gpt2(const Seg *g, size_t i) {
    size_t e = contraction(g, i, 0);
    if (e > i) return e;
    if ((e = opt_then_run(g, i, is_blank, is_letter)) > i) return e;
    if ((e = opt_then_run(g, i, is_blank, is_number)) > i) return e;
    if ((e = opt_then_run(g, i, is_blank, is_other)) > i) return e;
    return space_not_before_nonspace(g, i);
}

/* llama-bpe (digits 3) and qwen2 (digits 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,digits}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static int not_crlf_letter_number(uint32_t c) {
    return !is_crlf(c) && !is_letter(c) && !is_number(c);
}
static size_t m_llama3_digits(const Seg *g, size_t i, int digits) {
    size_t e = contraction(g, i, 1);
    if (e > i) return e;
    if ((e = opt_then_run(g, i, not_crlf_letter_number, is_letter)) > i) return e;
    uint32_t c;
    int k = unit(g, i, &c);
    if (is_number(c)) {
        e = i;
        for (int n = 0; n < digits && e < g->end; n++) {
            k = unit(g, e, &c);
            if (!is_number(c)) break;
            e += (size_t)k;
        }
        return e;
    }
    if ((e = opt_then_run(g, i, is_blank, is_other)) > i) return run(g, e, is_crlf);
    /* \s*[\r\n]+: the white space up to and including its last \r or \n */
    size_t j = i, after_crlf = i;
    while (j < g->end) {
        k = unit(g, j, &c);
        if (!is_space(c)) break;
        j += (size_t)k;
        if (is_crlf(c)) after_crlf = j;
    }
    if (after_crlf > i) return after_crlf;
    if ((e = space_not_before_nonspace(g, i)) > i) return e;
    return run(g, i, is_space);
}
static size_t m_llama3(const Seg *g, size_t i) { return m_llama3_digits(g, i, 3); }
static size_t m_qwen2(const Seg *g, size_t i) { return m_llama3_digits(g, i, 1); }

/* [\r\n] */
static size_t m_crlf(const Seg *g, size_t i) { return is_crlf(g->s[i]) ? i + 1 : i; }
/* \s?[deepseek-llm letters]+ */
static size_t m_dsl_letters(const Seg *g, size_t i) {
    return opt_then_run(g, i, is_space, is_dsl_letter);
}
/* \s?[!-/:-~！-／：-～‘-‟　-。]+ */
static size_t m_dsl_punct(const Seg *g, size_t i) {
    return opt_then_run(g, i, is_space, is_dsl_punct);
}
/* \s+$ */
static size_t m_space_at_end(const Seg *g, size_t i) {
    size_t e = run(g, i, is_space);
    return e == g->end ? e : i;
}
/* [一-龥ࠀ-一가-퟿]+ */
static size_t m_cjk(const Seg *g, size_t i) { return run(g, i, is_cjk); }
/* \p{N}+ */
static size_t m_numbers(const Seg *g, size_t i) { return run(g, i, is_number); }
/* \p{N} */
static size_t m_number(const Seg *g, size_t i) {
    uint32_t c;
    int k = unit(g, i, &c);
    return is_number(c) ? i + (size_t)k : i;
}
/* \s?\p{L}+ and \s?\p{P}+ */
static size_t m_space_letters(const Seg *g, size_t i) {
    return opt_then_run(g, i, is_space, is_letter);
}
static size_t m_space_punct(const Seg *g, size_t i) {
    return opt_then_run(g, i, is_space, is_punct);
}
/* [\p{P}\$\+<=>\^~\|`]+ and [\p{P}\$\+<=>\^~\|]+ */
static size_t m_falcon_punct(const Seg *g, size_t i) { return run(g, i, is_falcon_punct); }
static size_t m_default_punct(const Seg *g, size_t i) { return run(g, i, is_default_punct); }
/* [0-9][0-9][0-9] */
static size_t m_three_digits(const Seg *g, size_t i) {
    if (i + 3 > g->end) return i;
    for (int k = 0; k < 3; k++)
        if (!is_ascii_digit(g->s[i + (size_t)k])) return i;
    return i + 3;
}

/* ---- the expression lists ---- */

enum { MAX_RULES = 6 };
typedef struct {
    int n;
    Matcher m[MAX_RULES];
} RuleList;

static RuleList rules_of(AdPreTok pre) {
    switch (pre) {
    case AD_PRE_GPT2:
    case AD_PRE_MPT: return (RuleList){1, {m_gpt2}};
    case AD_PRE_LLAMA3: return (RuleList){1, {m_llama3}};
    case AD_PRE_QWEN2: return (RuleList){1, {m_qwen2}};
    case AD_PRE_DEEPSEEK_LLM:
        return (RuleList){6, {m_crlf, m_dsl_letters, m_dsl_punct, m_space_at_end, m_cjk,
                              m_numbers}};
    case AD_PRE_DEEPSEEK_CODER:
        return (RuleList){5, {m_crlf, m_space_letters, m_space_punct, m_cjk, m_number}};
    case AD_PRE_FALCON: return (RuleList){3, {m_falcon_punct, m_gpt2, m_three_digits}};
    case AD_PRE_STARCODER:
    case AD_PRE_REFACT:
    case AD_PRE_SMOLLM: return (RuleList){2, {m_number, m_gpt2}};
    case AD_PRE_DEFAULT: break;
    }
    return (RuleList){4, {m_default_punct, m_gpt2, m_numbers, m_three_digits}};
}

/* Each expression splits every current piece into its matches (leftmost, searched again
 * after each match) and the unmatched stretches between them, as llama.cpp's
 * unicode_regex_split does; an expression sees one piece at a time, so its $ and
 * look-ahead stop at the piece's end. */
size_t ad_pretok_split(AdPreTok pre, const unsigned char *s, size_t len, size_t *ends,
                       size_t *scratch) {
    if (len == 0) return 0;
    RuleList rl = rules_of(pre);
    /* ping-pong between the two buffers so that the last pass writes ends */
    size_t *cur = rl.n % 2 ? scratch : ends, *nxt = rl.n % 2 ? ends : scratch;
    size_t n = 1;
    cur[0] = len;
    for (int r = 0; r < rl.n; r++) {
        size_t m = 0, a = 0;
        for (size_t p = 0; p < n; p++) {
            Seg g = {s, cur[p]};
            size_t i = a, gap = a;
            while (i < g.end) {
                size_t e = rl.m[r](&g, i);
                if (e > i) {
                    if (i > gap) nxt[m++] = i;
                    nxt[m++] = e;
                    i = gap = e;
                } else {
                    uint32_t c;
                    i += (size_t)unit(&g, i, &c);
                }
            }
            if (gap < g.end) nxt[m++] = g.end;
            a = g.end;
        }
        size_t *t = cur;
        cur = nxt;
        nxt = t;
        n = m;
    }
    return n;
}

/* tasks.c: the built-in digit tasks (copy, reverse, add, reverse add, reverse multiply,
 * sort): example generation from an AdRng stream, exact solutions on digit arrays (any
 * length that fits AD_TASK_MAX_TEXT) and answer checking. Text only: the data and round
 * modules tokenize it; no training, no scoring policy. */
#include "autodidact/tasks.h"

#include <string.h>

static const char *const TASK_NAMES[AD_TASK_COUNT] = {"copy", "reverse", "add",
                                                      "radd", "mul",     "sort"};

/* Prompts and answers of every task use this one alphabet, so tasks can be mixed
 * under one char vocabulary. */
static const char TASK_ALPHABET[] = "0123456789+*=";

/* The kind without the AD_TASK_PADDED flag; 1 if that flag is set. */
static AdTaskKind base(AdTaskKind k) { return (AdTaskKind)((unsigned)k & ~(unsigned)AD_TASK_PADDED); }
static int padded(AdTaskKind k) { return ((unsigned)k & AD_TASK_PADDED) != 0; }

static int task_valid(AdTaskKind k) { return (int)base(k) >= 0 && base(k) < AD_TASK_COUNT; }

/* 1 for the tasks whose prompt is "<digits><op><digits>=". */
static int two_operands(AdTaskKind k) {
    k = base(k);
    return k == AD_TASK_ADD || k == AD_TASK_RADD || k == AD_TASK_MUL;
}

/* Largest length whose prompt and answer (with their NULs) fit AD_TASK_MAX_TEXT:
 * one operand: "d..d=" is length + 2 bytes; two: "a..a+b..b=" is 2 * length + 3 and
 * the longest answer (a product) 2 * length + 1. */
static int max_length(AdTaskKind k) {
    return two_operands(k) ? (AD_TASK_MAX_TEXT - 3) / 2 : AD_TASK_MAX_TEXT - 2;
}

const char *ad_task_name(AdTaskKind k) { return task_valid(k) ? TASK_NAMES[base(k)] : "unknown"; }

int ad_task_parse(const char *s) {
    if (!s) return -1;
    for (int k = 0; k < AD_TASK_COUNT; k++)
        if (strcmp(s, TASK_NAMES[k]) == 0) return k;
    return -1;
}

const char *ad_task_alphabet(AdTaskKind k) { return task_valid(k) ? TASK_ALPHABET : ""; }

/* ---- parsing ---- */

/* A prompt split into its operands: a = prompt[0..na), b = prompt[nb_start..+nb). */
typedef struct {
    const char *a, *b;
    int na, nb;
} Operands;

static int count_digits(const char *s) {
    int n = 0;
    while (s[n] >= '0' && s[n] <= '9') n++;
    return n;
}

/* Splits a prompt of task k; 0 if it is not of the form the task reads ("<digits>=" or
 * "<digits><op><digits>=", each run non-empty, nothing after '=', shorter than
 * AD_TASK_MAX_TEXT). */
static int parse_prompt(AdTaskKind k, const char *prompt, Operands *op) {
    if (!task_valid(k) || !prompt) return 0;
    int len = 0;
    while (len < AD_TASK_MAX_TEXT && prompt[len]) len++;
    if (len == AD_TASK_MAX_TEXT) return 0;
    memset(op, 0, sizeof *op);
    op->a = prompt;
    op->na = count_digits(prompt);
    if (op->na == 0) return 0;
    const char *p = prompt + op->na;
    if (two_operands(k)) {
        if (*p != (base(k) == AD_TASK_MUL ? '*' : '+')) return 0;
        op->b = p + 1;
        op->nb = count_digits(op->b);
        if (op->nb == 0) return 0;
        p = op->b + op->nb;
    }
    return p[0] == '=' && p[1] == '\0';
}

/* ---- digit arithmetic (digit arrays, least significant first) ---- */

/* Fills d[0..n) with the value of the written digits s[0..n), least significant first;
 * `reversed` says that s itself is written least significant first. */
static void load_digits(int *d, const char *s, int n, int reversed) {
    for (int i = 0; i < n; i++) d[i] = s[reversed ? i : n - 1 - i] - '0';
}

/* Writes the number d[0..n) (least significant first) without leading zeros ("0" for
 * zero), or with all n digits when pad is set, most significant first, or reversed (least
 * significant first); NUL-terminates. */
static void write_number(char *out, const int *d, int n, int reversed, int pad) {
    while (!pad && n > 1 && d[n - 1] == 0) n--;
    for (int i = 0; i < n; i++) out[i] = (char)('0' + d[reversed ? i : n - 1 - i]);
    out[n] = '\0';
}

/* ---- public ---- */

AdStatus ad_task_solve(AdTaskKind k, const char *prompt, char *answer) {
    Operands op;
    if (!parse_prompt(k, prompt, &op)) {
        answer[0] = '\0';
        return ad_fail(AD_ERR_ARG, "task %s: cannot parse prompt \"%.*s\"", ad_task_name(k), 64,
                       prompt ? prompt : "(null)");
    }
    int n = op.na;
    switch (base(k)) {
    case AD_TASK_COPY:
        memcpy(answer, op.a, (size_t)n);
        answer[n] = '\0';
        return AD_OK;
    case AD_TASK_REVERSE:
        for (int i = 0; i < n; i++) answer[i] = op.a[n - 1 - i];
        answer[n] = '\0';
        return AD_OK;
    case AD_TASK_SORT: {
        int count[10] = {0};
        for (int i = 0; i < n; i++) count[op.a[i] - '0']++;
        int j = 0;
        for (int dgt = 0; dgt < 10; dgt++)
            for (int c = 0; c < count[dgt]; c++) answer[j++] = (char)('0' + dgt);
        answer[j] = '\0';
        return AD_OK;
    }
    case AD_TASK_ADD:
    case AD_TASK_RADD: {
        int reversed = base(k) == AD_TASK_RADD;
        int a[AD_TASK_MAX_TEXT] = {0}, b[AD_TASK_MAX_TEXT] = {0}, sum[AD_TASK_MAX_TEXT];
        load_digits(a, op.a, op.na, reversed);
        load_digits(b, op.b, op.nb, reversed);
        int len = (op.na > op.nb ? op.na : op.nb) + 1, carry = 0;
        for (int i = 0; i < len; i++) {
            int s = a[i] + b[i] + carry;
            sum[i] = s % 10;
            carry = s / 10;
        }
        write_number(answer, sum, len, reversed, padded(k));
        return AD_OK;
    }
    case AD_TASK_MUL: {
        int a[AD_TASK_MAX_TEXT], b[AD_TASK_MAX_TEXT], prod[AD_TASK_MAX_TEXT] = {0};
        load_digits(a, op.a, op.na, 1);
        load_digits(b, op.b, op.nb, 1);
        int len = op.na + op.nb; /* < AD_TASK_MAX_TEXT: the prompt holds both and "*=" */
        for (int i = 0; i < op.na; i++) {
            int carry = 0;
            for (int j = 0; j < op.nb; j++) {
                int v = prod[i + j] + a[i] * b[j] + carry;
                prod[i + j] = v % 10;
                carry = v / 10;
            }
            prod[i + op.nb] += carry; /* still zero: row i has not reached it yet */
        }
        write_number(answer, prod, len, 1, padded(k));
        return AD_OK;
    }
    case AD_TASK_COUNT: break;
    }
    return ad_fail(AD_ERR_INTERNAL, "task %d has no solver", (int)k);
}

int ad_task_check(AdTaskKind k, const char *prompt, const char *answer) {
    char truth[AD_TASK_MAX_TEXT];
    if (!answer || ad_task_solve(k, prompt, truth) != AD_OK) return 0;
    return strcmp(truth, answer) == 0;
}

/* For two-operand tasks the length is that of the longer operand (generated prompts
 * have operands of equal length). */
int ad_task_length(AdTaskKind k, const char *prompt) {
    Operands op;
    if (!parse_prompt(k, prompt, &op)) return -1;
    return op.na > op.nb ? op.na : op.nb;
}

/* Writes `n` random digits; the digit at position `nonzero_at` (or none if -1) is 1-9. */
static char *random_digits(char *p, int n, int nonzero_at, AdRng *rng) {
    for (int i = 0; i < n; i++)
        p[i] = (char)(i == nonzero_at ? '1' + ad_rng_below(rng, 9) : '0' + ad_rng_below(rng, 10));
    return p + n;
}

AdStatus ad_task_example(AdTaskKind k, int length, AdRng *rng, char *prompt, char *answer) {
    if (!task_valid(k)) return ad_fail(AD_ERR_ARG, "unknown task %d", (int)k);
    if (length < 1 || length > max_length(k))
        return ad_fail(AD_ERR_ARG, "task %s: length %d is outside [1, %d]", ad_task_name(k),
                       length, max_length(k));
    char *p = prompt;
    if (two_operands(k)) {
        /* Operands have exactly `length` digits: the most significant one is nonzero
         * unless length is 1. It is written first for add, last for radd and mul. */
        int lead = length == 1 ? -1 : (base(k) == AD_TASK_ADD ? 0 : length - 1);
        p = random_digits(p, length, lead, rng);
        *p++ = base(k) == AD_TASK_MUL ? '*' : '+';
        p = random_digits(p, length, lead, rng);
    } else {
        p = random_digits(p, length, -1, rng);
    }
    p[0] = '=';
    p[1] = '\0';
    return ad_task_solve(k, prompt, answer);
}

/* Answers must be all digits and of a length the operands allow. A correct answer to a
 * prompt whose operands carry leading zeros ("000+000=" -> "0") can fail this rule;
 * generated prompts never have them (apart from length-1 operands, where the rule holds). */
int ad_task_answer_length_ok(AdTaskKind k, const char *prompt, const char *answer) {
    Operands op;
    if (!answer || !parse_prompt(k, prompt, &op)) return 0;
    int n = count_digits(answer);
    if (answer[n] != '\0') return 0;
    switch (base(k)) {
    case AD_TASK_COPY:
    case AD_TASK_REVERSE:
    case AD_TASK_SORT: return n == op.na;
    case AD_TASK_ADD:
    case AD_TASK_RADD: {
        int m = op.na > op.nb ? op.na : op.nb;
        return n == m + 1 || (n == m && !padded(k));
    }
    case AD_TASK_MUL: return n == op.na + op.nb || (n == op.na + op.nb - 1 && !padded(k));
    case AD_TASK_COUNT: break;
    }
    return 0;
}

/* 0 for an unknown task or a length below 1. */
int ad_task_max_answer_len(AdTaskKind k, int length) {
    if (!task_valid(k) || length < 1) return 0;
    k = base(k);
    if (k == AD_TASK_MUL) return 2 * length;
    if (k == AD_TASK_ADD || k == AD_TASK_RADD) return length + 1;
    return length;
}

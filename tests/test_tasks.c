/* test_tasks.c: hand-computed answers for each task, the generator's formats, a property
 * test (the solved answer checks, a corrupted one does not), radd/mul against 64-bit
 * arithmetic, 200-digit operands, determinism and argument checks; the answer-length rule
 * and maximum answer length on hand cases and generated examples. */
#include "autodidact/tasks.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void expect_solve(AdTaskKind k, const char *prompt, const char *want) {
    char got[AD_TASK_MAX_TEXT];
    ck_assert_msg(ad_task_solve(k, prompt, got) == AD_OK, "%s %s: %s", ad_task_name(k), prompt,
                  ad_errmsg());
    ck_assert_msg(strcmp(got, want) == 0, "%s %s: got %s, expected %s", ad_task_name(k), prompt,
                  got, want);
    ck_assert(ad_task_check(k, prompt, want));
}

START_TEST(test_hand_examples) {
    expect_solve(AD_TASK_COPY, "3141=", "3141");
    expect_solve(AD_TASK_COPY, "0070=", "0070");
    expect_solve(AD_TASK_REVERSE, "3141=", "1413");
    expect_solve(AD_TASK_REVERSE, "120=", "021");
    expect_solve(AD_TASK_SORT, "3141=", "1134");
    expect_solve(AD_TASK_SORT, "9081726354=", "0123456789");
    expect_solve(AD_TASK_ADD, "123+45=", "168");
    expect_solve(AD_TASK_ADD, "999+1=", "1000");
    expect_solve(AD_TASK_ADD, "0+0=", "0");
    expect_solve(AD_TASK_ADD, "500+500=", "1000");
    /* radd: 123 + 45 = 168; 999 + 1 = 1000; 5 + 5 = 10; 50 + 50 = 100 */
    expect_solve(AD_TASK_RADD, "321+54=", "861");
    expect_solve(AD_TASK_RADD, "999+1=", "0001");
    expect_solve(AD_TASK_RADD, "5+5=", "01");
    expect_solve(AD_TASK_RADD, "05+05=", "001");
    expect_solve(AD_TASK_RADD, "0+0=", "0");
    /* mul: 12 * 3 = 36; 99 * 99 = 9801; 10 * 10 = 100; 25 * 4 = 100; 0 * 7 = 0 */
    expect_solve(AD_TASK_MUL, "21*3=", "63");
    expect_solve(AD_TASK_MUL, "99*99=", "1089");
    expect_solve(AD_TASK_MUL, "01*01=", "001");
    expect_solve(AD_TASK_MUL, "52*4=", "001");
    expect_solve(AD_TASK_MUL, "0*7=", "0");
    expect_solve(AD_TASK_MUL, "000*7=", "0");
    /* 1234 * 5678 = 7006652 */
    expect_solve(AD_TASK_MUL, "4321*8765=", "2566007");

    ck_assert(!ad_task_check(AD_TASK_ADD, "123+45=", "169"));
    ck_assert(!ad_task_check(AD_TASK_ADD, "123+45=", "0168"));
    ck_assert(!ad_task_check(AD_TASK_ADD, "123+45=", "168 "));
    ck_assert(!ad_task_check(AD_TASK_ADD, "123+45=", ""));
    ck_assert(!ad_task_check(AD_TASK_ADD, "123+45=", NULL));
    ck_assert(!ad_task_check(AD_TASK_RADD, "5+5=", "010"));
}
END_TEST

/* AD_TASK_PADDED: hand answers at their longest length; only that form checks; the length
 * rule wants exactly that length; generated examples are the unpadded answer padded, and the
 * same stream gives the same prompts with and without the flag; other tasks ignore it. */
START_TEST(test_padded_answers) {
    const AdTaskKind P = (AdTaskKind)AD_TASK_PADDED;
    expect_solve(AD_TASK_ADD | P, "5+3=", "08");
    expect_solve(AD_TASK_ADD | P, "123+45=", "0168");
    expect_solve(AD_TASK_ADD | P, "999+1=", "1000");
    expect_solve(AD_TASK_RADD | P, "5+3=", "80");
    expect_solve(AD_TASK_RADD | P, "321+54=", "8610");
    expect_solve(AD_TASK_RADD | P, "5+5=", "01");
    expect_solve(AD_TASK_RADD | P, "0+0=", "00");
    expect_solve(AD_TASK_MUL | P, "2*3=", "60");
    expect_solve(AD_TASK_MUL | P, "21*3=", "630");
    expect_solve(AD_TASK_MUL | P, "99*99=", "1089");
    expect_solve(AD_TASK_MUL | P, "0*7=", "00");
    expect_solve(AD_TASK_COPY | P, "3141=", "3141");
    ck_assert_str_eq(ad_task_name(AD_TASK_RADD | P), "radd");
    ck_assert(!ad_task_check(AD_TASK_RADD | P, "5+3=", "8"));
    ck_assert(!ad_task_check(AD_TASK_RADD, "5+3=", "80"));
    ck_assert(!ad_task_check(AD_TASK_MUL | P, "2*3=", "6"));
    ck_assert(ad_task_answer_length_ok(AD_TASK_RADD | P, "5+3=", "80"));
    ck_assert(!ad_task_answer_length_ok(AD_TASK_RADD | P, "5+3=", "8"));
    ck_assert(ad_task_answer_length_ok(AD_TASK_RADD, "5+3=", "8"));
    ck_assert(!ad_task_answer_length_ok(AD_TASK_MUL | P, "12*34=", "804"));
    ck_assert(ad_task_answer_length_ok(AD_TASK_MUL | P, "12*34=", "8040"));
    ck_assert_int_eq(ad_task_max_answer_len(AD_TASK_RADD | P, 5), 6);
    ck_assert_int_eq(ad_task_max_answer_len(AD_TASK_MUL | P, 5), 10);
    for (int kk = 0; kk < 3; kk++) {
        AdTaskKind k = kk == 0 ? AD_TASK_RADD : kk == 1 ? AD_TASK_MUL : AD_TASK_ADD;
        AdRng r1, r2;
        ad_rng_init(&r1, 9, AD_STREAM_EVAL, 1);
        ad_rng_init(&r2, 9, AD_STREAM_EVAL, 1);
        for (int rep = 0; rep < 500; rep++) {
            int length = 1 + rep % 9;
            char p1[AD_TASK_MAX_TEXT], a1[AD_TASK_MAX_TEXT], p2[AD_TASK_MAX_TEXT], a2[AD_TASK_MAX_TEXT];
            ck_assert_int_eq(ad_task_example(k, length, &r1, p1, a1), AD_OK);
            ck_assert_int_eq(ad_task_example(k | P, length, &r2, p2, a2), AD_OK);
            ck_assert_str_eq(p1, p2);
            int n1 = (int)strlen(a1), n2 = (int)strlen(a2), z = n2 - n1;
            ck_assert_int_eq(n2, ad_task_max_answer_len(k, length));
            ck_assert(z >= 0);
            for (int i = 0; i < z; i++) /* zeros on the most significant side */
                ck_assert_int_eq(a2[k == AD_TASK_ADD ? i : n1 + i], '0');
            ck_assert(memcmp(a1, a2 + (k == AD_TASK_ADD ? z : 0), (size_t)n1) == 0);
            ck_assert(ad_task_check(k | P, p2, a2));
            ck_assert(ad_task_answer_length_ok(k | P, p2, a2));
        }
    }
}
END_TEST

START_TEST(test_parse_and_length) {
    ck_assert_int_eq(ad_task_length(AD_TASK_COPY, "3141="), 4);
    ck_assert_int_eq(ad_task_length(AD_TASK_ADD, "123+45="), 3);
    ck_assert_int_eq(ad_task_length(AD_TASK_MUL, "21*3="), 2);
    ck_assert_int_eq(ad_task_length(AD_TASK_MUL, "21+3="), -1);
    ck_assert_int_eq(ad_task_length(AD_TASK_ADD, "21*3="), -1);
    const char *bad[] = {"", "=", "12", "12=3", "1a=", "+1=", "12+=", "+=", "1+2", "1+2+3=",
                         "-1+2=", " 1+2="};
    char ans[AD_TASK_MAX_TEXT];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(ad_task_length(AD_TASK_ADD, bad[i]), -1);
        ck_assert_int_eq(ad_task_solve(AD_TASK_ADD, bad[i], ans), AD_ERR_ARG);
        ck_assert(!ad_task_check(AD_TASK_ADD, bad[i], ""));
    }
    ck_assert_int_eq(ad_task_length(AD_TASK_COPY, "1+2="), -1);
    ck_assert_int_eq(ad_task_length(AD_TASK_SORT, "="), -1);
    ck_assert_int_eq(ad_task_length(AD_TASK_COUNT, "12="), -1);
    ck_assert_int_eq(ad_task_solve(AD_TASK_ADD, "1x+2=", ans), AD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "1x+2="));
    /* a prompt that does not end within AD_TASK_MAX_TEXT */
    char longp[AD_TASK_MAX_TEXT + 2];
    memset(longp, '7', AD_TASK_MAX_TEXT);
    strcpy(longp + AD_TASK_MAX_TEXT, "=");
    ck_assert_int_eq(ad_task_length(AD_TASK_COPY, longp), -1);

    for (int k = 0; k < AD_TASK_COUNT; k++) {
        ck_assert_int_eq(ad_task_parse(ad_task_name((AdTaskKind)k)), k);
        ck_assert_str_eq(ad_task_alphabet((AdTaskKind)k), "0123456789+*=");
    }
    ck_assert_str_eq(ad_task_name(AD_TASK_RADD), "radd");
    ck_assert_int_eq(ad_task_parse("division"), -1);
}
END_TEST

/* Checks that a generated example has the documented format. */
static void check_format(AdTaskKind k, int length, const char *prompt, const char *answer) {
    const char *alpha = ad_task_alphabet(k);
    for (const char *p = prompt; *p; p++) ck_assert(strchr(alpha, *p));
    for (const char *p = answer; *p; p++) ck_assert(strchr(alpha, *p));
    size_t plen = strlen(prompt);
    ck_assert_int_eq(prompt[plen - 1], '=');
    if (k == AD_TASK_ADD || k == AD_TASK_RADD || k == AD_TASK_MUL) {
        ck_assert_uint_eq(plen, (size_t)(2 * length + 2));
        ck_assert_int_eq(prompt[length], k == AD_TASK_MUL ? '*' : '+');
        const char *ops[2] = {prompt, prompt + length + 1};
        for (int o = 0; o < 2; o++) {
            char lead = k == AD_TASK_ADD ? ops[o][0] : ops[o][length - 1];
            if (length > 1) ck_assert_msg(lead != '0', "%s: operand %d has a leading zero", prompt, o);
        }
        size_t alen = strlen(answer);
        if (alen > 1) {
            char top = k == AD_TASK_ADD ? answer[0] : answer[alen - 1];
            ck_assert_msg(top != '0', "%s -> %s: leading zero", prompt, answer);
        }
    } else {
        ck_assert_uint_eq(plen, (size_t)(length + 1));
        ck_assert_uint_eq(strlen(answer), (size_t)length);
    }
}

START_TEST(test_property_random) {
    AdRng rng;
    ad_rng_init(&rng, 42, AD_STREAM_DATA, 0);
    const int lengths[] = {1, 2, 3, 5, 8, 13, 40, 200};
    for (int k = 0; k < AD_TASK_COUNT; k++)
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
            for (int rep = 0; rep < 60; rep++) {
                int length = lengths[li];
                char prompt[AD_TASK_MAX_TEXT], answer[AD_TASK_MAX_TEXT], solved[AD_TASK_MAX_TEXT];
                ck_assert_int_eq(ad_task_example((AdTaskKind)k, length, &rng, prompt, answer), AD_OK);
                check_format((AdTaskKind)k, length, prompt, answer);
                ck_assert_int_eq(ad_task_length((AdTaskKind)k, prompt), length);
                ck_assert_int_eq(ad_task_solve((AdTaskKind)k, prompt, solved), AD_OK);
                ck_assert_str_eq(solved, answer);
                ck_assert(ad_task_check((AdTaskKind)k, prompt, solved));
                /* change one digit of the answer: it must fail */
                size_t alen = strlen(solved);
                size_t pos = ad_rng_below(&rng, (uint32_t)alen);
                int delta = 1 + (int)ad_rng_below(&rng, 9);
                solved[pos] = (char)('0' + (solved[pos] - '0' + delta) % 10);
                ck_assert_msg(!ad_task_check((AdTaskKind)k, prompt, solved), "%s %s accepted %s",
                              ad_task_name((AdTaskKind)k), prompt, solved);
                /* a dropped or an extra digit must fail too */
                ck_assert(!ad_task_check((AdTaskKind)k, prompt, answer + 1));
                strcat(answer, "0");
                ck_assert(!ad_task_check((AdTaskKind)k, prompt, answer));
            }
}
END_TEST

/* Reads the reversed digits s[0..n) as a number, with strtoull on the re-reversed text. */
static unsigned long long reversed_value(const char *s, size_t n) {
    char buf[32];
    ck_assert_uint_lt(n, sizeof buf);
    for (size_t i = 0; i < n; i++) buf[i] = s[n - 1 - i];
    buf[n] = '\0';
    return strtoull(buf, NULL, 10);
}

START_TEST(test_radd_mul_against_integers) {
    AdRng rng;
    ad_rng_init(&rng, 7, AD_STREAM_EVAL, 3);
    for (int length = 1; length <= 8; length++)
        for (int rep = 0; rep < 300; rep++)
            for (int kk = 0; kk < 3; kk++) {
                AdTaskKind k = kk == 0 ? AD_TASK_RADD : kk == 1 ? AD_TASK_MUL : AD_TASK_ADD;
                char prompt[AD_TASK_MAX_TEXT], answer[AD_TASK_MAX_TEXT];
                ck_assert_int_eq(ad_task_example(k, length, &rng, prompt, answer), AD_OK);
                const char *op = strpbrk(prompt, "+*");
                unsigned long long a, b, got;
                if (k == AD_TASK_ADD) {
                    a = strtoull(prompt, NULL, 10);
                    b = strtoull(op + 1, NULL, 10);
                    got = strtoull(answer, NULL, 10);
                } else {
                    a = reversed_value(prompt, (size_t)(op - prompt));
                    b = reversed_value(op + 1, strlen(op + 1) - 1);
                    got = reversed_value(answer, strlen(answer));
                }
                unsigned long long want = k == AD_TASK_MUL ? a * b : a + b;
                ck_assert_msg(got == want, "%s: %llu, expected %llu", prompt, got, want);
                /* the written answer is the canonical one: printing want gives it back */
                char canon[32];
                snprintf(canon, sizeof canon, "%llu", want);
                if (k != AD_TASK_ADD) {
                    size_t n = strlen(canon);
                    for (size_t i = 0; i < n / 2; i++) {
                        char c = canon[i];
                        canon[i] = canon[n - 1 - i];
                        canon[n - 1 - i] = c;
                    }
                }
                ck_assert_str_eq(answer, canon);
                if (length > 1) {
                    unsigned long long lo = 1;
                    for (int i = 1; i < length; i++) lo *= 10;
                    ck_assert(a >= lo && a < lo * 10 && b >= lo && b < lo * 10);
                }
            }
}
END_TEST

START_TEST(test_long_operands) {
    /* 10^200 - 1 plus 1 is 10^200; (10^100 - 1)^2 = 10^200 - 2 * 10^100 + 1, which is
     * 99 nines, an 8, 99 zeros and a 1 (most significant first). */
    char prompt[AD_TASK_MAX_TEXT], answer[AD_TASK_MAX_TEXT], want[AD_TASK_MAX_TEXT];
    memset(prompt, '9', 200);
    strcpy(prompt + 200, "+1=");
    want[0] = '1';
    memset(want + 1, '0', 200);
    want[201] = '\0';
    expect_solve(AD_TASK_ADD, prompt, want);
    /* reversed: "1" then 200 zeros reads as "000...01" */
    memset(want, '0', 200);
    strcpy(want + 200, "1");
    expect_solve(AD_TASK_RADD, prompt, want);

    memset(prompt, '9', 100);
    prompt[100] = '*';
    memset(prompt + 101, '9', 100);
    strcpy(prompt + 201, "=");
    /* product least significant first: 1, 99 zeros, 8, 99 nines */
    want[0] = '1';
    memset(want + 1, '0', 99);
    want[100] = '8';
    memset(want + 101, '9', 99);
    want[200] = '\0';
    expect_solve(AD_TASK_MUL, prompt, want);

    /* the longest generated lengths still fit the buffers */
    AdRng rng;
    ad_rng_init(&rng, 5, AD_STREAM_DATA, 1);
    ck_assert_int_eq(ad_task_example(AD_TASK_MUL, 254, &rng, prompt, answer), AD_OK);
    ck_assert(ad_task_check(AD_TASK_MUL, prompt, answer));
    ck_assert_int_eq(ad_task_example(AD_TASK_COPY, 510, &rng, prompt, answer), AD_OK);
    ck_assert_uint_eq(strlen(answer), 510);
}
END_TEST

START_TEST(test_determinism) {
    for (int k = 0; k < AD_TASK_COUNT; k++) {
        AdRng r1, r2, r3;
        ad_rng_init(&r1, 2024, AD_STREAM_DATA, 5);
        ad_rng_init(&r2, 2024, AD_STREAM_DATA, 5);
        ad_rng_init(&r3, 2025, AD_STREAM_DATA, 5);
        int differs = 0;
        for (int i = 0; i < 20; i++) {
            char p1[AD_TASK_MAX_TEXT], a1[AD_TASK_MAX_TEXT], p2[AD_TASK_MAX_TEXT],
                a2[AD_TASK_MAX_TEXT], p3[AD_TASK_MAX_TEXT], a3[AD_TASK_MAX_TEXT];
            ck_assert_int_eq(ad_task_example((AdTaskKind)k, 6, &r1, p1, a1), AD_OK);
            ck_assert_int_eq(ad_task_example((AdTaskKind)k, 6, &r2, p2, a2), AD_OK);
            ck_assert_int_eq(ad_task_example((AdTaskKind)k, 6, &r3, p3, a3), AD_OK);
            ck_assert_str_eq(p1, p2);
            ck_assert_str_eq(a1, a2);
            differs |= strcmp(p1, p3) != 0;
        }
        ck_assert(differs);
    }
}
END_TEST

START_TEST(test_length_out_of_range) {
    AdRng rng;
    ad_rng_init(&rng, 1, AD_STREAM_DATA, 0);
    char p[AD_TASK_MAX_TEXT], a[AD_TASK_MAX_TEXT];
    for (int k = 0; k < AD_TASK_COUNT; k++) {
        ck_assert_int_eq(ad_task_example((AdTaskKind)k, 0, &rng, p, a), AD_ERR_ARG);
        ck_assert_int_eq(ad_task_example((AdTaskKind)k, -3, &rng, p, a), AD_ERR_ARG);
        ck_assert_int_eq(ad_task_example((AdTaskKind)k, AD_TASK_MAX_TEXT, &rng, p, a), AD_ERR_ARG);
        ck_assert_ptr_nonnull(strstr(ad_errmsg(), ad_task_name((AdTaskKind)k)));
        ck_assert_int_eq(ad_task_example((AdTaskKind)k, 200, &rng, p, a), AD_OK);
    }
    /* two operands of 255 digits need 513 bytes of prompt */
    ck_assert_int_eq(ad_task_example(AD_TASK_ADD, 255, &rng, p, a), AD_ERR_ARG);
    ck_assert_int_eq(ad_task_example(AD_TASK_ADD, 254, &rng, p, a), AD_OK);
    ck_assert_uint_eq(strlen(p), 510);
    ck_assert_int_eq(ad_task_example(AD_TASK_SORT, 511, &rng, p, a), AD_ERR_ARG);
    ck_assert_int_eq(ad_task_example(AD_TASK_COUNT, 3, &rng, p, a), AD_ERR_ARG);
}
END_TEST

START_TEST(test_answer_length_ok) {
    struct {
        AdTaskKind k;
        const char *prompt, *answer;
        int ok;
    } cases[] = {
        /* one operand: exactly the input length, digits only */
        {AD_TASK_COPY, "3141=", "3141", 1},
        {AD_TASK_COPY, "3141=", "9999", 1},
        {AD_TASK_COPY, "3141=", "314", 0},
        {AD_TASK_COPY, "3141=", "31410", 0},
        {AD_TASK_COPY, "3141=", "31a1", 0},
        {AD_TASK_COPY, "3141=", "", 0},
        {AD_TASK_COPY, "0=", "0", 1},
        {AD_TASK_REVERSE, "120=", "021", 1},
        {AD_TASK_REVERSE, "120=", "21", 0},
        {AD_TASK_REVERSE, "120=", "02 ", 0},
        {AD_TASK_SORT, "3141=", "1134", 1},
        {AD_TASK_SORT, "3141=", "113", 0},
        {AD_TASK_SORT, "3141=", "11=4", 0},
        /* add / radd: the longer operand's length or one more */
        {AD_TASK_ADD, "0+0=", "0", 1},
        {AD_TASK_ADD, "0+0=", "00", 1},
        {AD_TASK_ADD, "0+0=", "000", 0},
        {AD_TASK_ADD, "0+0=", "", 0},
        {AD_TASK_ADD, "123+45=", "168", 1},
        {AD_TASK_ADD, "123+45=", "1680", 1},
        {AD_TASK_ADD, "123+45=", "16", 0},
        {AD_TASK_ADD, "123+45=", "16800", 0},
        {AD_TASK_ADD, "123+45=", "+68", 0},
        {AD_TASK_ADD, "123+45=", "-168", 0},
        {AD_TASK_ADD, "999+1=", "1000", 1},
        {AD_TASK_ADD, "45+123=", "168", 1},
        {AD_TASK_RADD, "5+5=", "01", 1},
        {AD_TASK_RADD, "5+5=", "1", 1},
        {AD_TASK_RADD, "5+5=", "010", 0},
        {AD_TASK_RADD, "999+1=", "0001", 1},
        {AD_TASK_RADD, "999+1=", "00010", 0},
        /* mul: the sum of the operand lengths or one less */
        {AD_TASK_MUL, "99*99=", "1089", 1},  /* 99 * 99 = 9801: carries fill 4 digits */
        {AD_TASK_MUL, "99*99=", "108", 1},
        {AD_TASK_MUL, "99*99=", "10", 0},
        {AD_TASK_MUL, "99*99=", "10890", 0},
        {AD_TASK_MUL, "99*9=", "198", 1},    /* 99 * 9 = 891 */
        {AD_TASK_MUL, "21*3=", "63", 1},     /* 12 * 3 = 36: no carry, one less */
        {AD_TASK_MUL, "21*3=", "6", 0},
        {AD_TASK_MUL, "0*7=", "0", 1},
        {AD_TASK_MUL, "0*7=", "00", 1},
        {AD_TASK_MUL, "0*7=", "", 0},
        {AD_TASK_MUL, "4321*8765=", "2566007", 1},
        {AD_TASK_MUL, "4321*8765=", "256600", 0},
        {AD_TASK_MUL, "4321*8765=", "25660*7", 0},
        /* prompts of another task or none */
        {AD_TASK_MUL, "1+2=", "3", 0},
        {AD_TASK_ADD, "1*2=", "2", 0},
        {AD_TASK_ADD, "12+=", "12", 0},
        {AD_TASK_COPY, "12", "12", 0},
        {AD_TASK_COUNT, "12=", "12", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(ad_task_answer_length_ok(cases[i].k, cases[i].prompt, cases[i].answer) ==
                          cases[i].ok,
                      "%s \"%s\" -> \"%s\": expected %d", ad_task_name(cases[i].k),
                      cases[i].prompt, cases[i].answer, cases[i].ok);
    ck_assert_int_eq(ad_task_answer_length_ok(AD_TASK_ADD, "1+2=", NULL), 0);
    ck_assert_int_eq(ad_task_answer_length_ok(AD_TASK_ADD, NULL, "3"), 0);

    /* every generated answer passes and has at most the maximum length; the maxima are
     * reached at length 3 by 999 + 999 = 1998 and 999 * 999 = 998001 */
    ck_assert_int_eq(ad_task_max_answer_len(AD_TASK_COPY, 5), 5);
    ck_assert_int_eq(ad_task_max_answer_len(AD_TASK_REVERSE, 1), 1);
    ck_assert_int_eq(ad_task_max_answer_len(AD_TASK_SORT, 7), 7);
    ck_assert_int_eq(ad_task_max_answer_len(AD_TASK_ADD, 5), 6);
    ck_assert_int_eq(ad_task_max_answer_len(AD_TASK_RADD, 1), 2);
    ck_assert_int_eq(ad_task_max_answer_len(AD_TASK_MUL, 3), 6);
    ck_assert_int_eq(ad_task_max_answer_len(AD_TASK_MUL, 0), 0);
    ck_assert_int_eq(ad_task_max_answer_len(AD_TASK_COUNT, 3), 0);
    char ans[AD_TASK_MAX_TEXT];
    ck_assert_int_eq(ad_task_solve(AD_TASK_ADD, "999+999=", ans), AD_OK);
    ck_assert_uint_eq(strlen(ans), (size_t)ad_task_max_answer_len(AD_TASK_ADD, 3));
    ck_assert_int_eq(ad_task_solve(AD_TASK_MUL, "999*999=", ans), AD_OK);
    ck_assert_uint_eq(strlen(ans), (size_t)ad_task_max_answer_len(AD_TASK_MUL, 3));
    AdRng rng;
    ad_rng_init(&rng, 9, AD_STREAM_DATA, 4);
    const int lengths[] = {1, 2, 3, 7, 30, 200};
    for (int k = 0; k < AD_TASK_COUNT; k++)
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
            for (int rep = 0; rep < 50; rep++) {
                char prompt[AD_TASK_MAX_TEXT], answer[AD_TASK_MAX_TEXT];
                ck_assert_int_eq(ad_task_example((AdTaskKind)k, lengths[li], &rng, prompt, answer),
                                 AD_OK);
                ck_assert_msg(ad_task_answer_length_ok((AdTaskKind)k, prompt, answer),
                              "%s %s -> %s", ad_task_name((AdTaskKind)k), prompt, answer);
                ck_assert_int_le((int)strlen(answer),
                                 ad_task_max_answer_len((AdTaskKind)k, lengths[li]));
                size_t n = strlen(answer);
                answer[n] = '7', answer[n + 1] = '\0'; /* one digit too many... */
                int longer_ok = ad_task_answer_length_ok((AdTaskKind)k, prompt, answer);
                answer[n - 1] = '\0'; /* ...or one too few */
                int shorter_ok = ad_task_answer_length_ok((AdTaskKind)k, prompt, answer);
                if (k == AD_TASK_COPY || k == AD_TASK_REVERSE || k == AD_TASK_SORT)
                    ck_assert(!longer_ok && !shorter_ok);
                else /* exactly one of the two neighbours of a true length is allowed */
                    ck_assert_int_eq(longer_ok + shorter_ok, 1);
            }
}
END_TEST

static Suite *tasks_suite(void) {
    Suite *s = suite_create("tasks");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_hand_examples);
    tcase_add_test(tc, test_padded_answers);
    tcase_add_test(tc, test_parse_and_length);
    tcase_add_test(tc, test_property_random);
    tcase_add_test(tc, test_radd_mul_against_integers);
    tcase_add_test(tc, test_long_operands);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_length_out_of_range);
    tcase_add_test(tc, test_answer_length_ok);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return ad_test_run(tasks_suite()); }

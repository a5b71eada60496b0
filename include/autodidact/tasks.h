/* tasks.h: built-in algorithmic tasks with a difficulty knob (length in digits or
 * symbols) and an exact verifier. A task produces (prompt, answer) text pairs such as
 * "123+45=" / "168"; the data and round modules turn them into tokens. No training. */
#ifndef AUTODIDACT_TASKS_H
#define AUTODIDACT_TASKS_H

#include "autodidact/common.h"
#include "autodidact/rng.h"

typedef enum {
    AD_TASK_COPY = 0,  /* "3141=" -> "3141" */
    AD_TASK_REVERSE,   /* "3141=" -> "1413" */
    AD_TASK_ADD,       /* "123+45=" -> "168" (most significant digit first) */
    AD_TASK_RADD,      /* reverse addition: operands and sum least significant digit first,
                          "321+54=" -> "861" (123 + 45 = 168) */
    AD_TASK_MUL,       /* reverse multiplication, "21*3=" -> "63" (12 * 3 = 36) */
    AD_TASK_SORT,      /* "3141=" -> "1134" */
    AD_TASK_COUNT
} AdTaskKind;

/* A flag or-ed into a task kind: answers of add, radd and mul are written at their longest
 * length, zero-padded on the most significant side ("5+3=" -> "08" for add; "5+3=" ->
 * "80" for radd; "2*3=" -> "60" for mul). Such answers always have
 * ad_task_max_answer_len(k, length) digits, so the model never has to decide where a sum
 * ends. ad_task_check then accepts only the padded form. No effect on the other tasks. */
#define AD_TASK_PADDED 0x100

#define AD_TASK_MAX_TEXT 512

const char *ad_task_name(AdTaskKind k); /* the name without the padding flag */
int ad_task_parse(const char *s); /* -1 if unknown */
/* Every character a prompt or answer of this task may contain (for char vocabularies). */
const char *ad_task_alphabet(AdTaskKind k);

/* Draws one example of the given difficulty (length >= 1: digits per operand, or
 * symbols to copy/reverse/sort) into NUL-terminated prompt/answer buffers of
 * AD_TASK_MAX_TEXT bytes. Returns AD_ERR_ARG if the length does not fit. */
AdStatus ad_task_example(AdTaskKind k, int length, AdRng *rng, char *prompt, char *answer);
/* 1 if `answer` is the exact correct answer to `prompt`, else 0. */
int ad_task_check(AdTaskKind k, const char *prompt, const char *answer);
/* Writes the correct answer for a prompt (ground truth); AD_ERR_ARG if unparseable. */
AdStatus ad_task_solve(AdTaskKind k, const char *prompt, char *answer);
/* The difficulty (length) of a prompt, or -1 if it is not a prompt of this task.
 * For two operands it is the digit count of the longer one. */
int ad_task_length(AdTaskKind k, const char *prompt);

/* 1 if an answer of this length is possible for the prompt (copy/reverse/sort: the input
 * length; add/radd: the longer operand's length or one more; mul: the sum of the operand
 * lengths or one less), else 0. The length filter scorer uses it. */
int ad_task_answer_length_ok(AdTaskKind k, const char *prompt, const char *answer);
/* The longest answer (in characters) a prompt of this task and length can have. */
int ad_task_max_answer_len(AdTaskKind k, int length);

#endif

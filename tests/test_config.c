/* test_config.c: the training config and the schema engine under it. Expected values
 * are literals from the documented defaults and contracts, never re-derived from the
 * code under test; error tests assert on the message text, which must name the key. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "autodidact/config.h"
#include "testutil.h"

#include "../src/config_schema.h"

#define SRC "config.json"

/* Parses `json` with overrides and asserts an AD_ERR_CONFIG whose message contains
 * `needle`. */
#define EXPECT_ERR_OV(json, ov, n, needle)                                                   \
    do {                                                                                     \
        AdTrainConfig c_;                                                                    \
        AdStatus st_ = ad_train_config_parse(&c_, (json), SRC, (ov), (n));                   \
        ck_assert_msg(st_ == AD_ERR_CONFIG, "status %d for %s (message: %s)", (int)st_,       \
                      (json), ad_errmsg());                                                  \
        ck_assert_msg(strstr(ad_errmsg(), (needle)) != NULL, "message \"%s\" lacks \"%s\"", \
                      ad_errmsg(), (needle));                                                \
    } while (0)
#define EXPECT_ERR(json, needle) EXPECT_ERR_OV(json, NULL, 0, needle)
/* The whole message, exactly. */
#define EXPECT_MSG(json, msg)                                                                \
    do {                                                                                     \
        AdTrainConfig c_;                                                                    \
        AdStatus st_ = ad_train_config_parse(&c_, (json), SRC, NULL, 0);                     \
        ck_assert_int_eq(st_, AD_ERR_CONFIG);                                                \
        ck_assert_str_eq(ad_errmsg(), (msg));                                                \
    } while (0)

static AdTrainConfig parse_ok_ov(const char *json, const char *const *ov, int n) {
    AdTrainConfig c;
    memset(&c, 0xAB, sizeof c);
    AdStatus st = ad_train_config_parse(&c, json, SRC, ov, n);
    ck_assert_msg(st == AD_OK, "parse failed: %s (json %s)", ad_errmsg(), json);
    return c;
}
static AdTrainConfig parse_ok(const char *json) { return parse_ok_ov(json, NULL, 0); }

/* ---- defaults ---- */

START_TEST(test_schema_table_is_sound) {
    AdStatus st = ad_schema_check(ad_train_config_schema());
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
}
END_TEST

START_TEST(test_defaults) {
    AdTrainConfig c;
    ad_train_config_defaults(&c);
    ck_assert_str_eq(c.family, "gpt2");
    ck_assert_int_eq(c.model.d_model, 128);
    ck_assert_int_eq(c.model.n_layer, 4);
    ck_assert_int_eq(c.model.n_head, 4);
    ck_assert_int_eq(c.model.n_kv_head, 4); /* 0 resolved to n_head */
    ck_assert_int_eq(c.model.d_ff, 512);    /* 0 resolved to 4 * d_model for gelu */
    ck_assert_int_eq(c.model.max_seq_len, 128);
    ck_assert_int_eq(c.model.vocab_size, 0);
    ck_assert_int_eq(c.model.norm, AD_NORM_LAYERNORM);
    ck_assert_int_eq(c.model.mlp, AD_MLP_GELU);
    ck_assert_int_eq(c.model.pos, AD_POS_LEARNED);
    ck_assert_int_eq(c.model.bias, 1);
    ck_assert_int_eq(c.model.tied, 1);
    ck_assert_str_eq(c.init_from, "");
    ck_assert_str_eq(c.data.source, "task");
    ck_assert_str_eq(c.data.task, "radd");
    ck_assert_int_eq(c.data.min_len, 1);
    ck_assert_int_eq(c.data.max_len, 5);
    ck_assert_str_eq(c.data.path, "");
    ck_assert_str_eq(c.data.tokenizer, "char");
    ck_assert(c.data.val_frac == 0.05);
    ck_assert_int_eq(c.train.steps, 1000);
    ck_assert_int_eq(c.train.batch_size, 16);
    ck_assert_int_eq(c.train.seq_len, 128); /* 0 resolved to max_seq_len */
    ck_assert_int_eq(c.train.grad_accum, 1);
    ck_assert(c.train.lr == 1e-3);
    ck_assert(c.train.min_lr == 1e-4);
    ck_assert_str_eq(c.train.schedule, "cosine");
    ck_assert_int_eq(c.train.warmup_steps, 100);
    ck_assert_int_eq(c.train.decay_steps, 0);
    ck_assert(c.train.weight_decay == 0.1);
    ck_assert(c.train.beta1 == 0.9);
    ck_assert(c.train.beta2 == 0.95);
    ck_assert(c.train.eps == 1e-8);
    ck_assert(c.train.grad_clip == 1.0);
    ck_assert_int_eq(c.train.log_every, 10);
    ck_assert_int_eq(c.train.eval_every, 200);
    ck_assert_int_eq(c.train.ckpt_every, 500);
    ck_assert_int_eq(c.train.eval_batches, 8);
    ck_assert(c.seed == 1337);
    ck_assert_int_eq(c.threads, 0);
    ck_assert_str_eq(c.out_dir, "runs/train");

    /* an empty config is the defaults, bit for bit */
    AdTrainConfig e = parse_ok("{}");
    ck_assert(memcmp(&c, &e, sizeof c) == 0);
    AdTrainConfig w = parse_ok(" \n\t{ }\n");
    ck_assert(memcmp(&c, &w, sizeof c) == 0);
}
END_TEST

/* ---- a full valid config ---- */

/* Every key with a non-default value. */
static void full_json(char *buf, size_t cap) {
    snprintf(buf, cap,
             "{\n"
             "  \"model\": {\"family\": \"gpt2\", \"vocab_size\": 50, \"max_seq_len\": 96,\n"
             "    \"n_layer\": 6, \"n_head\": 8, \"n_kv_head\": 2, \"d_model\": 256, \"d_ff\": 700,\n"
             "    \"norm\": \"%s\", \"mlp\": \"%s\", \"pos\": \"%s\", \"bias\": false,\n"
             "    \"tied\": false, \"norm_eps\": 1e-6, \"rope_theta\": 500000,\n"
             "    \"init_from\": \"ckpt/round0.h5\"},\n"
             "  \"data\": {\"source\": \"text\", \"task\": \"mul\", \"min_len\": 2, \"max_len\": 9,\n"
             "    \"path\": \"data/tiny.txt\", \"tokenizer\": \"byte\", \"val_frac\": 0.2},\n"
             "  \"train\": {\"steps\": 3000, \"batch_size\": 128, \"seq_len\": 64,\n"
             "    \"grad_accum\": 4, \"lr\": 2e-3, \"min_lr\": 2e-5, \"schedule\": \"wsd\",\n"
             "    \"warmup_steps\": 50, \"decay_steps\": 300, \"weight_decay\": 0.05,\n"
             "    \"beta1\": 0.8, \"beta2\": 0.99, \"eps\": 1e-6, \"grad_clip\": 0.5,\n"
             "    \"log_every\": 5, \"eval_every\": 100, \"ckpt_every\": 0, \"eval_batches\": 3},\n"
             "  \"seed\": 42, \"threads\": 2, \"out_dir\": \"runs/x\"\n"
             "}\n",
             ad_norm_name(AD_NORM_RMSNORM), ad_mlp_name(AD_MLP_SWIGLU), ad_pos_name(AD_POS_NONE));
}

static void check_full(const AdTrainConfig *c) {
    ck_assert_str_eq(c->family, "gpt2");
    ck_assert_int_eq(c->model.vocab_size, 50);
    ck_assert_int_eq(c->model.max_seq_len, 96);
    ck_assert_int_eq(c->model.n_layer, 6);
    ck_assert_int_eq(c->model.n_head, 8);
    ck_assert_int_eq(c->model.n_kv_head, 2);
    ck_assert_int_eq(c->model.d_model, 256);
    ck_assert_int_eq(c->model.d_ff, 700);
    ck_assert_int_eq(c->model.norm, AD_NORM_RMSNORM);
    ck_assert_int_eq(c->model.mlp, AD_MLP_SWIGLU);
    ck_assert_int_eq(c->model.pos, AD_POS_NONE);
    ck_assert_int_eq(c->model.bias, 0);
    ck_assert_int_eq(c->model.tied, 0);
    ck_assert(c->model.norm_eps == 1e-6f);
    ck_assert(c->model.rope_theta == 500000.0f);
    ck_assert_str_eq(c->init_from, "ckpt/round0.h5");
    ck_assert_str_eq(c->data.source, "text");
    ck_assert_str_eq(c->data.task, "mul");
    ck_assert_int_eq(c->data.min_len, 2);
    ck_assert_int_eq(c->data.max_len, 9);
    ck_assert_str_eq(c->data.path, "data/tiny.txt");
    ck_assert_str_eq(c->data.tokenizer, "byte");
    ck_assert(c->data.val_frac == 0.2);
    ck_assert_int_eq(c->train.steps, 3000);
    ck_assert_int_eq(c->train.batch_size, 128);
    ck_assert_int_eq(c->train.seq_len, 64);
    ck_assert_int_eq(c->train.grad_accum, 4);
    ck_assert(c->train.lr == 2e-3);
    ck_assert(c->train.min_lr == 2e-5);
    ck_assert_str_eq(c->train.schedule, "wsd");
    ck_assert_int_eq(c->train.warmup_steps, 50);
    ck_assert_int_eq(c->train.decay_steps, 300);
    ck_assert(c->train.weight_decay == 0.05);
    ck_assert(c->train.beta1 == 0.8);
    ck_assert(c->train.beta2 == 0.99);
    ck_assert(c->train.eps == 1e-6);
    ck_assert(c->train.grad_clip == 0.5);
    ck_assert_int_eq(c->train.log_every, 5);
    ck_assert_int_eq(c->train.eval_every, 100);
    ck_assert_int_eq(c->train.ckpt_every, 0);
    ck_assert_int_eq(c->train.eval_batches, 3);
    ck_assert(c->seed == 42);
    ck_assert_int_eq(c->threads, 2);
    ck_assert_str_eq(c->out_dir, "runs/x");
}

START_TEST(test_full_config) {
    char json[4096];
    full_json(json, sizeof json);
    AdTrainConfig c = parse_ok(json);
    check_full(&c);
}
END_TEST

/* ---- error kinds ---- */

START_TEST(test_wrong_types) {
    EXPECT_MSG("{\"train\": {\"lr\": \"fast\"}}",
               "config.json: train.lr: expected a number, got string \"fast\"");
    EXPECT_MSG("{\"train\": {\"steps\": true}}",
               "config.json: train.steps: expected an integer, got true");
    EXPECT_ERR("{\"train\": {\"steps\": null}}", "train.steps: expected an integer, got null");
    EXPECT_ERR("{\"model\": {\"bias\": 1}}", "model.bias: expected true or false, got number 1");
    EXPECT_ERR("{\"data\": {\"path\": 5}}", "data.path: expected a string, got number 5");
    EXPECT_ERR("{\"model\": {\"family\": 5}}", "model.family: expected one of the strings");
    EXPECT_ERR("{\"model\": {\"norm\": 0}}", "model.norm: expected one of the strings");
    EXPECT_ERR("{\"seed\": true}", "seed: expected an integer or a decimal string, got true");
    EXPECT_ERR("{\"seed\": 1.5}", "seed: expected an integer or a decimal string, got number 1.5");
}
END_TEST

START_TEST(test_object_scalar_mismatch) {
    EXPECT_MSG("{\"train\": 5}", "config.json: train: expected an object, got number 5");
    EXPECT_ERR("{\"model\": []}", "model: expected an object, got an array");
    EXPECT_ERR("{\"model\": \"llama\"}", "model: expected an object, got string \"llama\"");
    EXPECT_MSG("{\"train\": {\"lr\": {\"value\": 0.1}}}",
               "config.json: train.lr: expected a number, got an object");
    EXPECT_ERR("{\"train\": {\"lr\": [0.1]}}", "train.lr: expected a number, got an array");
    EXPECT_ERR("{\"out_dir\": {}}", "out_dir: expected a string, got an object");
    EXPECT_ERR("{\"seed\": {}}", "seed: expected an integer or a decimal string, got an object");
}
END_TEST

START_TEST(test_unknown_keys) {
    EXPECT_MSG("{\"train\": {\"lrr\": 0.1}}",
               "config.json: unknown key \"train.lrr\" (did you mean train.lr?)");
    EXPECT_ERR("{\"trian\": {\"lr\": 0.1}}", "unknown key \"trian\" (did you mean train?)");
    EXPECT_ERR("{\"model\": {\"d_modle\": 64}}", "unknown key \"model.d_modle\" (did you mean "
                                                 "model.d_model?)");
    /* a key in the wrong group: suggested by its last component */
    EXPECT_ERR("{\"lr\": 0.1}", "unknown key \"lr\" (did you mean train.lr?)");
    EXPECT_ERR("{\"model\": {\"n_kv\": 1}}", "unknown key \"model.n_kv\" (did you mean "
                                             "model.n_kv_head?)");
    EXPECT_MSG("{\"zzzzzz\": 1}", "config.json: unknown key \"zzzzzz\"");
    /* dotted names are not a second spelling of nesting */
    EXPECT_ERR("{\"train.lr\": 0.1}", "unknown key \"train.lr\"");
    EXPECT_ERR("{\"\": 1}", "unknown key");
    /* case matters */
    EXPECT_ERR("{\"Seed\": 1}", "unknown key \"Seed\"");
}
END_TEST

START_TEST(test_duplicate_keys) {
    EXPECT_MSG("{\"seed\": 1, \"threads\": 2, \"seed\": 3}", "config.json: duplicate key \"seed\"");
    EXPECT_MSG("{\"train\": {\"lr\": 0.1, \"steps\": 5, \"lr\": 0.2}}",
               "config.json: duplicate key \"train.lr\"");
    EXPECT_ERR("{\"train\": {\"lr\": 0.1}, \"train\": {\"steps\": 5}}", "duplicate key \"train\"");
    /* identical values are still a duplicate */
    EXPECT_ERR("{\"model\": {\"d_model\": 64, \"d_model\": 64}}", "duplicate key \"model.d_model\"");
    /* the early pass (model.family) sees duplicates too */
    EXPECT_ERR("{\"model\": {\"family\": \"gpt2\", \"family\": \"llama\"}}",
               "duplicate key \"model.family\"");
}
END_TEST

START_TEST(test_ranges_and_integers) {
    EXPECT_MSG("{\"train\": {\"steps\": -5}}",
               "config.json: train.steps: -5 is out of range [1, 100000000]");
    EXPECT_MSG("{\"train\": {\"steps\": 3.5}}",
               "config.json: train.steps: expected an integer, got number 3.5");
    EXPECT_ERR("{\"train\": {\"steps\": 1e20}}", "train.steps: 1e+20 is out of range [1, 100000000]");
    EXPECT_ERR("{\"model\": {\"n_layer\": 2147483648}}", "model.n_layer: 2147483648 is out of range");
    EXPECT_ERR("{\"model\": {\"n_layer\": 0}}", "model.n_layer: 0 is out of range [1, 1024]");
    EXPECT_MSG("{\"train\": {\"lr\": 0}}", "config.json: train.lr: 0 is out of range (0, 10]");
    EXPECT_ERR("{\"train\": {\"lr\": 10.5}}", "train.lr: 10.5 is out of range (0, 10]");
    EXPECT_ERR("{\"train\": {\"beta1\": 1}}", "train.beta1: 1 is out of range [0, 1)");
    EXPECT_ERR("{\"train\": {\"beta2\": -0.1}}", "train.beta2: -0.1 is out of range [0, 1)");
    EXPECT_ERR("{\"train\": {\"lr\": 1e999}}", "train.lr: inf is out of range");
    /* a float field: 1e-50 underflows to 0, outside (0, 1] */
    EXPECT_ERR("{\"model\": {\"norm_eps\": 1e-50}}", "model.norm_eps: 1e-50 is out of range (0, 1]");
    /* boundaries that are inside */
    AdTrainConfig c = parse_ok("{\"train\": {\"steps\": 100000000, \"lr\": 10, \"beta1\": 0}}");
    ck_assert_int_eq(c.train.steps, 100000000);
    ck_assert(c.train.lr == 10.0);
    ck_assert(c.train.beta1 == 0.0);
    c = parse_ok("{\"train\": {\"steps\": 7.0}}"); /* an integral number is an integer */
    ck_assert_int_eq(c.train.steps, 7);
}
END_TEST

START_TEST(test_seed) {
    /* JSON numbers: exact below 2^53, refused at or above it */
    AdTrainConfig c = parse_ok("{\"seed\": 9007199254740991}");
    ck_assert(c.seed == 9007199254740991ULL);
    c = parse_ok("{\"seed\": 0}");
    ck_assert(c.seed == 0);
    EXPECT_ERR("{\"seed\": 9007199254740992}", "seed: a JSON number at or above 2^53");
    EXPECT_ERR("{\"seed\": 9007199254740993}", "decimal string");
    EXPECT_ERR("{\"seed\": 18446744073709551615}", "seed: a JSON number at or above 2^53");
    EXPECT_ERR("{\"seed\": -1}", "seed: -1 is out of range");
    /* decimal strings: the full uint64 range, exactly */
    c = parse_ok("{\"seed\": \"9007199254740993\"}");
    ck_assert(c.seed == 9007199254740993ULL);
    c = parse_ok("{\"seed\": \"18446744073709551615\"}");
    ck_assert(c.seed == UINT64_MAX);
    c = parse_ok("{\"seed\": \"12345678901234567890\"}");
    ck_assert(c.seed == 12345678901234567890ULL);
    EXPECT_ERR("{\"seed\": \"18446744073709551616\"}", "seed: \"18446744073709551616\" is out of range");
    EXPECT_ERR("{\"seed\": \"99999999999999999999999\"}", "seed: \"99999999999999999999999\" is out");
    EXPECT_ERR("{\"seed\": \"12a\"}", "seed: expected a decimal integer string, got \"12a\"");
    EXPECT_ERR("{\"seed\": \"-1\"}", "seed: expected a decimal integer string");
    EXPECT_ERR("{\"seed\": \" 1\"}", "seed: expected a decimal integer string");
    EXPECT_ERR("{\"seed\": \"\"}", "seed: expected a decimal integer string");

    /* written back as a string when a JSON number could not hold it */
    char *json = ad_train_config_to_json(&c);
    ck_assert_ptr_nonnull(json);
    ck_assert_msg(strstr(json, "\"seed\":\t\"12345678901234567890\"") != NULL, "%s", json);
    free(json);
    c.seed = 1337;
    json = ad_train_config_to_json(&c);
    ck_assert_msg(strstr(json, "\"seed\":\t1337") != NULL, "%s", json);
    free(json);
}
END_TEST

START_TEST(test_strings_and_choices) {
    char big[1200 + 64];
    char path[1101];
    memset(path, 'a', 1100);
    path[1100] = '\0';
    snprintf(big, sizeof big, "{\"data\": {\"path\": \"%s\"}}", path);
    EXPECT_ERR(big, "data.path: string of 1100 bytes is longer than the limit of 1023");
    path[1023] = '\0'; /* exactly the capacity minus the NUL: fits */
    snprintf(big, sizeof big, "{\"data\": {\"path\": \"%s\"}}", path);
    AdTrainConfig c = parse_ok(big);
    ck_assert_uint_eq(strlen(c.data.path), 1023);

    EXPECT_MSG("{\"train\": {\"schedule\": \"cosin\"}}",
               "config.json: train.schedule: \"cosin\" is not one of constant, cosine, linear, wsd");
    EXPECT_ERR("{\"data\": {\"task\": \"divide\"}}",
               "data.task: \"divide\" is not one of copy, reverse, add, radd, mul, sort");
    EXPECT_ERR("{\"data\": {\"tokenizer\": \"bpe\"}}", "data.tokenizer: \"bpe\" is not one of");
    EXPECT_ERR("{\"data\": {\"source\": \"TASK\"}}", "data.source: \"TASK\" is not one of");
    EXPECT_ERR("{\"model\": {\"family\": \"gpt3\"}}", "model.family: \"gpt3\" is not one of");
    EXPECT_ERR("{\"model\": {\"norm\": \"batchnorm\"}}", "model.norm: \"batchnorm\" is not one of");
    EXPECT_ERR("{\"model\": {\"pos\": \"alibi\"}}", "model.pos: \"alibi\" is not one of");
    EXPECT_ERR("{\"out_dir\": \"\xff\xfe\"}", "out_dir: string \"\\xFF\\xFE\" is not valid UTF-8");
    /* valid multi-byte UTF-8 is fine */
    c = parse_ok("{\"out_dir\": \"runs/\xc3\xa9t\xc3\xa9\"}");
    ck_assert_str_eq(c.out_dir, "runs/\xc3\xa9t\xc3\xa9");
    /* every task name of tasks.h is accepted */
    const char *tasks[] = {"copy", "reverse", "add", "radd", "mul", "sort"};
    for (int i = 0; i < 6; i++) {
        char j[128];
        snprintf(j, sizeof j, "{\"data\": {\"task\": \"%s\"}}", tasks[i]);
        c = parse_ok(j);
        ck_assert_str_eq(c.data.task, tasks[i]);
    }
}
END_TEST

START_TEST(test_malformed_json) {
    /* trailing comma: the parser stops at the '}' on line 4, column 3 */
    EXPECT_ERR("{\n  \"train\": {\n    \"lr\": 0.1,\n  }\n}",
               "config.json: line 4, column 3: malformed JSON near \"}\"");
    /* trailing garbage after the object */
    EXPECT_ERR("{} x", "config.json: line 1, column 4: malformed JSON near \"x\"");
    /* unterminated */
    EXPECT_ERR("{\"seed\": 1", "config.json: line 1, column 11: malformed JSON (unexpected end of text)");
    EXPECT_ERR("", "config.json: line 1, column 1: malformed JSON");
    EXPECT_ERR("{\"seed\": 1}\n\n  {", "config.json: line 3, column 3");
    EXPECT_ERR("[1, 2]", "config.json: the top level must be a JSON object, got an array");
    EXPECT_ERR("7", "config.json: the top level must be a JSON object, got number 7");
}
END_TEST

START_TEST(test_cross_field) {
    EXPECT_MSG("{\"data\": {\"min_len\": 6, \"max_len\": 5}}",
               "config.json: data.min_len: 6 is greater than data.max_len (5)");
    EXPECT_MSG("{\"model\": {\"d_model\": 130}}",
               "config.json: model.d_model: 130 is not divisible by model.n_head (4)");
    EXPECT_MSG("{\"model\": {\"n_head\": 4, \"n_kv_head\": 3}}",
               "config.json: model.n_kv_head: 3 does not divide model.n_head (4)");
    EXPECT_ERR("{\"model\": {\"n_head\": 4, \"n_kv_head\": 8}}", "model.n_kv_head: 8 does not divide");
    EXPECT_MSG("{\"train\": {\"seq_len\": 256}}",
               "config.json: train.seq_len: 256 exceeds model.max_seq_len (128)");
    EXPECT_MSG("{\"data\": {\"source\": \"text\"}}",
               "config.json: data.path: required when data.source is \"text\"");
    EXPECT_ERR("{\"train\": {\"lr\": 1e-4, \"min_lr\": 1e-3}}", "train.min_lr");
    {
        char j[256];
        snprintf(j, sizeof j, "{\"model\": {\"d_model\": 132, \"n_head\": 4, \"pos\": \"%s\"}}",
                 ad_pos_name(AD_POS_ROPE));
        EXPECT_ERR(j, "model.pos: rope needs an even head size");
    }
    AdTrainConfig c = parse_ok("{\"data\": {\"source\": \"text\", \"path\": \"a.txt\"}}");
    ck_assert_str_eq(c.data.path, "a.txt");
    c = parse_ok("{\"data\": {\"min_len\": 5, \"max_len\": 5}, \"train\": {\"seq_len\": 128}}");
    ck_assert_int_eq(c.data.min_len, 5);
    /* seq_len follows an explicit max_seq_len when left automatic */
    c = parse_ok("{\"model\": {\"max_seq_len\": 300}}");
    ck_assert_int_eq(c.train.seq_len, 300);
    /* the task list is checked whatever the source */
    EXPECT_ERR("{\"data\": {\"source\": \"text\", \"path\": \"a\", \"task\": \"nope\"}}", "data.task");
}
END_TEST

/* ---- overrides ---- */

START_TEST(test_overrides) {
    /* a key absent from the file, its group absent too */
    const char *o1[] = {"train.lr=0.01", "data.task=copy"};
    AdTrainConfig c = parse_ok_ov("{}", o1, 2);
    ck_assert(c.train.lr == 0.01);
    ck_assert_str_eq(c.data.task, "copy"); /* not JSON: taken as a string */

    /* replacing a value the file holds, next to keys that stay */
    const char *o2[] = {"train.lr=0.25"};
    c = parse_ok_ov("{\"train\": {\"lr\": 0.5, \"steps\": 77}}", o2, 1);
    ck_assert(c.train.lr == 0.25);
    ck_assert_int_eq(c.train.steps, 77);

    /* typed values */
    const char *o3[] = {"model.bias=false", "seed=42", "train.schedule=\"wsd\"", "model.n_layer=6",
                        "out_dir=runs/o", "train.schedule=linear", "data.val_frac=0.125"};
    c = parse_ok_ov("{}", o3, 7);
    ck_assert_int_eq(c.model.bias, 0);
    ck_assert(c.seed == 42);
    ck_assert_str_eq(c.train.schedule, "linear"); /* the later override wins */
    ck_assert_int_eq(c.model.n_layer, 6);
    ck_assert_str_eq(c.out_dir, "runs/o");
    ck_assert(c.data.val_frac == 0.125);

    /* a seed beyond 2^53 given as digits stays exact */
    const char *o4[] = {"seed=18446744073709551615"};
    c = parse_ok_ov("{\"seed\": 5}", o4, 1);
    ck_assert(c.seed == UINT64_MAX);

    /* an empty value is the empty string */
    const char *o5[] = {"model.init_from=ckpt.h5", "model.init_from="};
    c = parse_ok_ov("{}", o5, 2);
    ck_assert_str_eq(c.init_from, "");
}
END_TEST

START_TEST(test_bad_overrides) {
    const char *o1[] = {"train.lrr=1"};
    EXPECT_ERR_OV("{}", o1, 1, "--set train.lrr=1: unknown key \"train.lrr\" (did you mean train.lr?)");
    const char *o2[] = {"train.lr=fast"};
    EXPECT_ERR_OV("{}", o2, 1, "--set train.lr=fast: train.lr: expected a number, got string \"fast\"");
    const char *o3[] = {"trainlr"};
    EXPECT_ERR_OV("{}", o3, 1, "--set trainlr: expected key=value");
    const char *o4[] = {"=5"};
    EXPECT_ERR_OV("{}", o4, 1, "--set =5: expected key=value");
    const char *o5[] = {"train=5"};
    EXPECT_ERR_OV("{}", o5, 1, "--set train=5: \"train\" is a group of keys");
    const char *o6[] = {"train.lr=1"};
    EXPECT_ERR_OV("{\"train\": 5}", o6, 1, "--set train.lr=1: the config holds number 5 at \"train\"");
    const char *o7[] = {"train.steps=0"};
    EXPECT_ERR_OV("{}", o7, 1, "--set train.steps=0: train.steps: 0 is out of range [1, 100000000]");
    const char *o8[] = {"seed=99999999999999999999"};
    EXPECT_ERR_OV("{}", o8, 1, "--set seed=99999999999999999999: seed: \"99999999999999999999\" is out of range");
    const char *o9[] = {"model.family=gpt5"};
    EXPECT_ERR_OV("{}", o9, 1, "--set model.family=gpt5: model.family: \"gpt5\" is not one of");
    /* an override of a key the file repeats does not hide the duplicate */
    const char *o10[] = {"seed=3"};
    EXPECT_ERR_OV("{\"seed\": 1, \"seed\": 2}", o10, 1, "config.json: duplicate key \"seed\"");
    /* the file's own errors still name the file */
    const char *o11[] = {"seed=3"};
    EXPECT_ERR_OV("{\"train\": {\"lr\": \"x\"}}", o11, 1, "config.json: train.lr: expected a number");
}
END_TEST

/* ---- family presets ---- */

START_TEST(test_llama_preset) {
    AdTrainConfig c = parse_ok("{\"model\": {\"family\": \"llama\", \"n_kv_head\": 2}}");
    ck_assert_str_eq(c.family, "llama");
    ck_assert_int_eq(c.model.norm, AD_NORM_RMSNORM);
    ck_assert_int_eq(c.model.mlp, AD_MLP_SWIGLU);
    ck_assert_int_eq(c.model.pos, AD_POS_ROPE);
    ck_assert_int_eq(c.model.bias, 0);
    ck_assert_int_eq(c.model.tied, 0);
    ck_assert(c.model.rope_theta == 10000.0f);
    ck_assert_int_eq(c.model.n_kv_head, 2);
    /* sizes keep the config defaults, not the preset's */
    ck_assert_int_eq(c.model.d_model, 128);
    ck_assert_int_eq(c.model.n_head, 4);
    ck_assert_int_eq(c.model.n_layer, 4);
    ck_assert_int_eq(c.model.max_seq_len, 128);
    /* Llama's d_ff rule: 2/3 * 4 * 128 = 341, rounded up to a multiple of 32 */
    ck_assert_int_eq(c.model.d_ff, 352);

    /* the family applies first wherever it appears; explicit switches win */
    char j[256];
    snprintf(j, sizeof j,
             "{\"model\": {\"norm\": \"%s\", \"bias\": true, \"d_model\": 96, \"family\": \"llama\"}}",
             ad_norm_name(AD_NORM_LAYERNORM));
    c = parse_ok(j);
    ck_assert_int_eq(c.model.norm, AD_NORM_LAYERNORM);
    ck_assert_int_eq(c.model.bias, 1);
    ck_assert_int_eq(c.model.mlp, AD_MLP_SWIGLU);
    ck_assert_int_eq(c.model.d_model, 96);
    ck_assert_int_eq(c.model.d_ff, 256); /* 2/3 * 384 = 256, already a multiple of 32 */
    c = parse_ok("{\"model\": {\"family\": \"llama\", \"d_model\": 200, \"n_head\": 4}}");
    ck_assert_int_eq(c.model.d_ff, 544); /* 2/3 * 800 = 533 -> 544 */
    c = parse_ok("{\"model\": {\"family\": \"llama\", \"d_ff\": 1000}}");
    ck_assert_int_eq(c.model.d_ff, 1000);

    /* the family from an override, over a gpt2 file */
    const char *ov[] = {"model.family=llama", "model.n_kv_head=1"};
    c = parse_ok_ov("{\"model\": {\"family\": \"gpt2\", \"n_layer\": 2}}", ov, 2);
    ck_assert_str_eq(c.family, "llama");
    ck_assert_int_eq(c.model.mlp, AD_MLP_SWIGLU);
    ck_assert_int_eq(c.model.n_kv_head, 1);
    ck_assert_int_eq(c.model.n_layer, 2);

    /* and back: gpt2 switches from llama */
    c = parse_ok("{\"model\": {\"family\": \"gpt2\"}}");
    ck_assert_int_eq(c.model.norm, AD_NORM_LAYERNORM);
    ck_assert_int_eq(c.model.tied, 1);
}
END_TEST

/* ---- writing back ---- */

START_TEST(test_round_trip_full) {
    char json[4096];
    full_json(json, sizeof json);
    AdTrainConfig a = parse_ok(json);
    char *text = ad_train_config_to_json(&a);
    ck_assert_ptr_nonnull(text);
    AdTrainConfig b = parse_ok(text);
    check_full(&b);
    ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "round trip differs:\n%s", text);
    /* printing is a fixed point */
    char *text2 = ad_train_config_to_json(&b);
    ck_assert_str_eq(text, text2);
    free(text);
    free(text2);

    /* defaults too */
    ad_train_config_defaults(&a);
    text = ad_train_config_to_json(&a);
    b = parse_ok(text);
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
    ck_assert_msg(strstr(text, "\"lr\":\t0.001,") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"out_dir\":\t\"runs/train\"") != NULL, "%s", text);
    free(text);
}
END_TEST

START_TEST(test_round_trip_awkward_doubles) {
    volatile double point1 = 0.1, point2 = 0.2;
    AdTrainConfig a;
    ad_train_config_defaults(&a);
    a.train.lr = point1 + point2;        /* 0.30000000000000004, not 0.3 */
    a.train.eps = 1e-8;
    a.train.min_lr = 3e-4;
    a.train.weight_decay = 1.0 / 3.0;
    a.train.beta2 = nextafter(0.95, 1.0);
    a.train.beta1 = nextafter(0.9, 0.0);
    a.data.val_frac = 4.9406564584124654e-324; /* the smallest subnormal */
    a.train.grad_clip = 123456.78901234567;
    a.model.norm_eps = 1e-5f;
    a.model.rope_theta = 123456.789f;
    a.seed = UINT64_MAX - 1;
    ck_assert(a.train.lr != 0.3);

    char *text = ad_train_config_to_json(&a);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "0.30000000000000004") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"eps\":\t1e-08") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"min_lr\":\t0.0003") != NULL, "%s", text);
    AdTrainConfig b = parse_ok(text);
    ck_assert(b.train.lr == point1 + point2);
    ck_assert(b.train.eps == 1e-8);
    ck_assert(b.train.min_lr == 3e-4);
    ck_assert(b.train.weight_decay == 1.0 / 3.0);
    ck_assert(b.train.beta2 == nextafter(0.95, 1.0));
    ck_assert(b.data.val_frac == 4.9406564584124654e-324);
    ck_assert(b.model.rope_theta == 123456.789f);
    ck_assert(b.seed == UINT64_MAX - 1);
    ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "round trip differs:\n%s", text);
    free(text);

    /* negative zero keeps its sign (a range that admits it) */
    a.train.min_lr = -0.0;
    text = ad_train_config_to_json(&a);
    b = parse_ok(text);
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
    free(text);
}
END_TEST

START_TEST(test_print_keys) {
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ad_train_config_print_keys(f);
    long n = ftell(f);
    ck_assert(n > 0);
    char *buf = malloc((size_t)n + 1);
    rewind(f);
    ck_assert_int_eq((long)fread(buf, 1, (size_t)n, f), n);
    buf[n] = '\0';
    fclose(f);
    const char *keys[] = {"model.family", "model.vocab_size", "model.max_seq_len", "model.n_layer",
                          "model.n_head", "model.n_kv_head", "model.d_model", "model.d_ff",
                          "model.norm", "model.mlp", "model.pos", "model.bias", "model.tied",
                          "model.norm_eps", "model.rope_theta", "model.qkv_bias",
                          "model.sliding_window", "model.rope_scaling", "model.rope_factor",
                          "model.rope_low_freq_factor", "model.rope_high_freq_factor",
                          "model.rope_original_max_pos", "model.init_from", "model.init",
                          "model.tokenizer_from", "data.source",
                          "data.task", "data.min_len", "data.max_len", "data.pad_answer", "data.path",
                          "data.tokenizer", "data.val_frac", "train.steps", "train.batch_size",
                          "train.seq_len", "train.grad_accum", "train.lr", "train.min_lr",
                          "train.schedule", "train.warmup_steps", "train.decay_steps",
                          "train.weight_decay", "train.beta1", "train.beta2", "train.eps",
                          "train.grad_clip", "train.log_every", "train.eval_every",
                          "train.ckpt_every", "train.eval_batches", "seed", "threads", "out_dir"};
    int nkeys = (int)(sizeof keys / sizeof keys[0]);
    for (int i = 0; i < nkeys; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "  %s ", keys[i]);
        ck_assert_msg(strstr(buf, needle) != NULL, "help lacks %s:\n%s", keys[i], buf);
    }
    ck_assert_int_eq(ad_train_config_schema()->n_rows, nkeys);
    ck_assert_msg(strstr(buf, "gpt2|llama, default \"gpt2\"") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "int [1, 100000000], default 1000") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "number (0, 10], default 0.001") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "peak learning rate") != NULL, "%s", buf);
    free(buf);
}
END_TEST

START_TEST(test_load_file) {
    const char *dir = ad_test_tmpdir();
    const char *path = ad_test_path(dir, "cfg.json");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"train\": {\"steps\": 12}, \"seed\": \"77\"}\n", f);
    fclose(f);
    const char *ov[] = {"train.lr=0.002"};
    AdTrainConfig c;
    ck_assert_int_eq(ad_train_config_load(&c, path, ov, 1), AD_OK);
    ck_assert_int_eq(c.train.steps, 12);
    ck_assert(c.seed == 77);
    ck_assert(c.train.lr == 0.002);

    /* messages name the file */
    const char *bad = ad_test_path(dir, "bad.json");
    f = fopen(bad, "w");
    fputs("{\n \"train\": {\"lr\": \"fast\"}\n}\n", f);
    fclose(f);
    ck_assert_int_eq(ad_train_config_load(&c, bad, NULL, 0), AD_ERR_CONFIG);
    char want[512];
    snprintf(want, sizeof want, "%s: train.lr: expected a number, got string \"fast\"", bad);
    ck_assert_str_eq(ad_errmsg(), want);

    const char *missing = ad_test_path(dir, "missing.json");
    ck_assert_int_eq(ad_train_config_load(&c, missing, NULL, 0), AD_ERR_IO);
    ck_assert_msg(strstr(ad_errmsg(), missing) != NULL, "%s", ad_errmsg());

    const char *nul = ad_test_path(dir, "nul.json");
    f = fopen(nul, "wb");
    fwrite("{}\0{}", 1, 5, f);
    fclose(f);
    ck_assert_int_eq(ad_train_config_load(&c, nul, NULL, 0), AD_ERR_CONFIG);
    ck_assert_msg(strstr(ad_errmsg(), "NUL byte") != NULL, "%s", ad_errmsg());

    /* the struct is reusable after a failure */
    ck_assert_int_eq(ad_train_config_load(&c, path, NULL, 0), AD_OK);
    ck_assert_int_eq(c.train.steps, 12);
}
END_TEST

/* ---- the engine on its own, with a toy table ---- */

typedef struct {
    int level;
    int applied_level; /* copy of `level` taken by the early hook */
    uint64_t id;
    char name[8];
    double x;
} Toy;

static AdStatus toy_hook(void *target, const char *source) {
    Toy *t = target;
    t->applied_level = t->level;
    t->x = 100.0 * t->level; /* a preset that later keys may refine */
    return AD_OK;
}

static const char *const toy_names[] = {"ab", "cd", NULL};

static const AdSchemaRow toy_rows[] = {
    {.key = "a.b.c.id", .type = AD_SCHEMA_U64, .offset = offsetof(Toy, id), .def = "7", .help = "id"},
    {.key = "a.x", .type = AD_SCHEMA_DOUBLE, .offset = offsetof(Toy, x), .min = -1e9, .max = 1e9,
     .def = "0.5", .help = "x"},
    {.key = "a.level", .type = AD_SCHEMA_INT, .offset = offsetof(Toy, level), .min = 0, .max = 9,
     .flags = AD_SCHEMA_EARLY, .def = "1", .on_set = toy_hook, .help = "level"},
    {.key = "name", .type = AD_SCHEMA_CHOICE, .offset = offsetof(Toy, name),
     .cap = sizeof(((Toy *)0)->name), .choices = toy_names, .def = "ab", .help = "name"},
};
static const AdSchema toy = {toy_rows, 4};

START_TEST(test_engine_toy) {
    ck_assert_int_eq(ad_schema_check(&toy), AD_OK);
    Toy t;
    memset(&t, 0, sizeof t);
    ad_schema_defaults(&toy, &t);
    ck_assert(t.id == 7);
    ck_assert(t.x == 0.5); /* the hook ran (x = 100) before a.x's default */
    ck_assert_int_eq(t.applied_level, 1);
    ck_assert_str_eq(t.name, "ab");

    /* the EARLY row applies before a.x although it comes later in the JSON */
    cJSON *root = NULL;
    ck_assert_int_eq(ad_schema_parse_text("{\"a\": {\"x\": 2.5, \"level\": 3}}", "toy", &root), AD_OK);
    const char *ov[] = {"a.b.c.id=123", "name=cd"};
    ck_assert_int_eq(ad_schema_apply_overrides(&toy, root, ov, 2), AD_OK);
    /* intermediate objects were created */
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "a");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(a, "b");
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(b, "c");
    ck_assert(cJSON_IsObject(b) && cJSON_IsObject(cc));
    ck_assert_int_eq(ad_schema_parse(&toy, &t, root, "toy"), AD_OK);
    cJSON_Delete(root);
    ck_assert_int_eq(t.level, 3);
    ck_assert_int_eq(t.applied_level, 3);
    ck_assert(t.x == 2.5);
    ck_assert(t.id == 123);
    ck_assert_str_eq(t.name, "cd");

    /* JSON text: nested, every row, reloads to the same bytes */
    char *text = ad_schema_to_json(&toy, &t);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "\"id\":\t123") != NULL, "%s", text);
    Toy u;
    memset(&u, 0, sizeof u);
    ad_schema_defaults(&toy, &u);
    ck_assert_int_eq(ad_schema_parse_text(text, "toy2", &root), AD_OK);
    ck_assert_int_eq(ad_schema_parse(&toy, &u, root, "toy2"), AD_OK);
    cJSON_Delete(root);
    ck_assert(memcmp(&t, &u, sizeof t) == 0);
    free(text);

    /* "a.b" is a group: a scalar there is an error naming it */
    ck_assert_int_eq(ad_schema_parse_text("{\"a\": {\"b\": 1}}", "toy", &root), AD_OK);
    ck_assert_int_eq(ad_schema_parse(&toy, &u, root, "toy"), AD_ERR_CONFIG);
    ck_assert_str_eq(ad_errmsg(), "toy: a.b: expected an object, got number 1");
    cJSON_Delete(root);

    /* a string longer than its field */
    ck_assert_int_eq(ad_schema_parse_text("{}", "toy", &root), AD_OK);
    const char *bad[] = {"name=abcdefghij"};
    ck_assert_int_eq(ad_schema_apply_overrides(&toy, root, bad, 1), AD_ERR_CONFIG);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_engine_rejects_bad_tables) {
    static const AdSchemaRow out_of_range[] = {
        {.key = "n", .type = AD_SCHEMA_INT, .offset = 0, .min = 1, .max = 5, .def = "9", .help = "n"},
    };
    AdSchema s1 = {out_of_range, 1};
    ck_assert_int_eq(ad_schema_check(&s1), AD_ERR_INTERNAL);
    ck_assert_msg(strstr(ad_errmsg(), "schema row n") != NULL, "%s", ad_errmsg());

    static const AdSchemaRow leaf_and_group[] = {
        {.key = "a", .type = AD_SCHEMA_INT, .offset = 0, .min = 0, .max = 5, .def = "1", .help = "a"},
        {.key = "a.b", .type = AD_SCHEMA_INT, .offset = 4, .min = 0, .max = 5, .def = "1", .help = "b"},
    };
    AdSchema s2 = {leaf_and_group, 2};
    ck_assert_int_eq(ad_schema_check(&s2), AD_ERR_INTERNAL);

    static const AdSchemaRow twice[] = {
        {.key = "a", .type = AD_SCHEMA_INT, .offset = 0, .min = 0, .max = 5, .def = "1", .help = "a"},
        {.key = "a", .type = AD_SCHEMA_INT, .offset = 4, .min = 0, .max = 5, .def = "1", .help = "b"},
    };
    AdSchema s3 = {twice, 2};
    ck_assert_int_eq(ad_schema_check(&s3), AD_ERR_INTERNAL);

    static const AdSchemaRow bad_key[] = {
        {.key = "a..b", .type = AD_SCHEMA_INT, .offset = 0, .min = 0, .max = 5, .def = "1", .help = "a"},
    };
    AdSchema s4 = {bad_key, 1};
    ck_assert_int_eq(ad_schema_check(&s4), AD_ERR_INTERNAL);
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_schema_table_is_sound);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_full_config);
    tcase_add_test(tc, test_wrong_types);
    tcase_add_test(tc, test_object_scalar_mismatch);
    tcase_add_test(tc, test_unknown_keys);
    tcase_add_test(tc, test_duplicate_keys);
    tcase_add_test(tc, test_ranges_and_integers);
    tcase_add_test(tc, test_seed);
    tcase_add_test(tc, test_strings_and_choices);
    tcase_add_test(tc, test_malformed_json);
    tcase_add_test(tc, test_cross_field);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_bad_overrides);
    tcase_add_test(tc, test_llama_preset);
    tcase_add_test(tc, test_round_trip_full);
    tcase_add_test(tc, test_round_trip_awkward_doubles);
    tcase_add_test(tc, test_print_keys);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_engine_toy);
    tcase_add_test(tc, test_engine_rejects_bad_tables);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return ad_test_run(config_suite()); }

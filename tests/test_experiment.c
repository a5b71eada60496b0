/* test_experiment.c: the experiment config (experiment.h) and the shipped experiments/
 * files. Expected values are literals from the documented defaults and rules, never
 * re-derived from the code under test; error tests assert on the message text, which
 * must name the key. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "autodidact/experiment.h"
#include "autodidact/losses.h"
#include "autodidact/optim.h"
#include "autodidact/score.h"
#include "autodidact/tasks.h"
#include "testutil.h"

#include "../src/config_schema.h"

#define SRC "exp.json"

#define EXPECT_ERR_OV(json, ov, n, needle)                                                   \
    do {                                                                                     \
        AdExperimentConfig c_;                                                               \
        AdStatus st_ = ad_experiment_config_parse(&c_, (json), SRC, (ov), (n));              \
        ck_assert_msg(st_ == AD_ERR_CONFIG, "status %d for %s (message: %s)", (int)st_,       \
                      (json), ad_errmsg());                                                  \
        ck_assert_msg(strstr(ad_errmsg(), (needle)) != NULL, "message \"%s\" lacks \"%s\"", \
                      ad_errmsg(), (needle));                                                \
    } while (0)
#define EXPECT_ERR(json, needle) EXPECT_ERR_OV(json, NULL, 0, needle)
#define EXPECT_MSG(json, msg)                                                                \
    do {                                                                                     \
        AdExperimentConfig c_;                                                               \
        AdStatus st_ = ad_experiment_config_parse(&c_, (json), SRC, NULL, 0);                \
        ck_assert_msg(st_ == AD_ERR_CONFIG, "status %d (message: %s)", (int)st_, ad_errmsg()); \
        ck_assert_str_eq(ad_errmsg(), (msg));                                                \
    } while (0)

static AdExperimentConfig parse_ok_ov(const char *json, const char *const *ov, int n) {
    AdExperimentConfig c;
    memset(&c, 0xAB, sizeof c);
    AdStatus st = ad_experiment_config_parse(&c, json, SRC, ov, n);
    ck_assert_msg(st == AD_OK, "parse failed: %s (json %s)", ad_errmsg(), json);
    return c;
}
static AdExperimentConfig parse_ok(const char *json) { return parse_ok_ov(json, NULL, 0); }

/* ---- the table and the defaults ---- */

START_TEST(test_schema_table_is_sound) {
    AdStatus st = ad_schema_check(ad_experiment_config_schema());
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
}
END_TEST

static void check_phase_common(const AdPhaseConfig *p) {
    ck_assert_int_eq(p->batch_size, 64);
    ck_assert_int_eq(p->seq_len, 64); /* 0 resolved to model.max_seq_len */
    ck_assert_int_eq(p->grad_accum, 1);
    ck_assert_str_eq(p->schedule, "cosine");
    ck_assert_int_eq(p->decay_steps, 0);
    ck_assert(p->weight_decay == 0.1);
    ck_assert(p->beta1 == 0.9);
    ck_assert(p->beta2 == 0.98);
    ck_assert(p->eps == 1e-8);
    ck_assert(p->grad_clip == 1.0);
    ck_assert_int_eq(p->log_every, 100);
    ck_assert_str_eq(p->loss, "sft");
    ck_assert(p->beta == 0.5);
    ck_assert(p->alpha == 0.1);
    ck_assert(p->temperature == 1.0);
    ck_assert(p->on_policy == 0.0);
}

START_TEST(test_defaults) {
    AdExperimentConfig c;
    memset(&c, 0x5A, sizeof c);
    ad_experiment_config_defaults(&c);
    ck_assert(c.seed == 1337);
    ck_assert_int_eq(c.threads, 0);
    ck_assert_str_eq(c.run_file, "runs/run.h5");
    ck_assert_int_eq(c.keep_checkpoints, 2);

    ck_assert_str_eq(c.family, "gpt2");
    ck_assert_int_eq(c.model.pos, AD_POS_NONE);
    ck_assert_int_eq(c.model.norm, AD_NORM_LAYERNORM); /* the gpt2 preset */
    ck_assert_int_eq(c.model.mlp, AD_MLP_GELU);
    ck_assert_int_eq(c.model.bias, 1);
    ck_assert_int_eq(c.model.tied, 1);
    ck_assert_int_eq(c.model.d_model, 128);
    ck_assert_int_eq(c.model.n_layer, 4);
    ck_assert_int_eq(c.model.n_head, 4);
    ck_assert_int_eq(c.model.n_kv_head, 4); /* 0 resolved to n_head */
    ck_assert_int_eq(c.model.max_seq_len, 64);
    ck_assert_int_eq(c.model.d_ff, 512); /* 0 resolved to 4 * d_model for gelu */
    ck_assert_int_eq(c.model.vocab_size, 0);
    ck_assert_str_eq(c.init_from, "");

    ck_assert_str_eq(c.task.source, "task");
    ck_assert_str_eq(c.task.name, "copy");
    ck_assert_str_eq(c.task.path, "");
    ck_assert_int_eq(c.task.train_min_len, 1);
    ck_assert_int_eq(c.task.train_max_len, 8);
    ck_assert_int_eq(c.task.eval_min_len, 1);
    ck_assert_int_eq(c.task.eval_max_len, 16);
    ck_assert_int_eq(c.task.eval_per_len, 100);
    ck_assert_int_eq(c.task.seed_examples, 0);

    ck_assert_int_eq(c.pretrain.steps, 2000);
    ck_assert(c.pretrain.lr == 2e-3);
    ck_assert(c.pretrain.min_lr == 2e-4);
    ck_assert_int_eq(c.pretrain.warmup_steps, 100);
    check_phase_common(&c.pretrain);
    ck_assert_int_eq(c.train.steps, 400);
    ck_assert(c.train.lr == 1e-3);
    ck_assert(c.train.min_lr == 1e-4);
    ck_assert_int_eq(c.train.warmup_steps, 20);
    check_phase_common(&c.train);

    ck_assert_int_eq(c.rounds.count, 4);
    ck_assert_int_eq(c.rounds.prompts, 2000);
    ck_assert_int_eq(c.rounds.length_start, 9); /* 0 resolved to train_max_len + 1 */
    ck_assert_int_eq(c.rounds.length_step, 1);
    ck_assert_int_eq(c.rounds.length_span, 0);
    ck_assert_str_eq(c.rounds.teacher, "self");
    ck_assert_str_eq(c.rounds.teacher_path, "");
    ck_assert(c.rounds.ema_decay == 0.99);
    ck_assert_str_eq(c.rounds.init, "continue");
    ck_assert_int_eq(c.rounds.keep_history, 1);
    ck_assert(c.rounds.replay_frac == -1.0);

    ck_assert_int_eq(c.generate.samples, 1);
    ck_assert(c.generate.temperature == 0.0f);
    ck_assert_int_eq(c.generate.top_k, 0);
    ck_assert(c.generate.top_p == 1.0f);
    ck_assert(c.generate.min_p == 0.0f);
    ck_assert_int_eq(c.generate.max_new_tokens, 0);
    ck_assert_int_eq(c.generate.batch, 128);

    ck_assert_int_eq(c.score.length, 1);
    ck_assert_int_eq(c.score.majority, 1);
    ck_assert_int_eq(c.score.logprob, 1);
    ck_assert_int_eq(c.score.self_judge, 0);
    ck_assert_str_eq(c.score.judge_template, "{prompt}{answer}");
    ck_assert_str_eq(c.score.judge_verdict, "");
    ck_assert_int_eq(c.score.ensemble, 0);

    ck_assert_int_eq(c.select.length_filter, 1);
    ck_assert(c.select.min_agreement == 0.0);
    ck_assert(c.select.min_ensemble == 0.0);
    ck_assert_str_eq(c.select.policy, "all");
    ck_assert_str_eq(c.select.scorer, "logprob_mean");
    ck_assert(c.select.threshold == 0.0);
    ck_assert_int_eq(c.select.k, 1);
    ck_assert(c.select.frac == 1.0);
    ck_assert_int_eq(c.select.one_per_prompt, 1);

    /* an empty config is the defaults, bit for bit (padding included) */
    AdExperimentConfig e = parse_ok("{}");
    ck_assert(memcmp(&c, &e, sizeof c) == 0);
}
END_TEST

/* The names the config accepts are the modules' own. */
START_TEST(test_names_follow_modules) {
    for (int k = 0; k < AD_TASK_COUNT; k++) {
        char j[128];
        snprintf(j, sizeof j, "{\"task\": {\"name\": \"%s\", \"eval_max_len\": 5}}",
                 ad_task_name((AdTaskKind)k));
        AdExperimentConfig c = parse_ok(j);
        ck_assert_str_eq(c.task.name, ad_task_name((AdTaskKind)k));
    }
    EXPECT_MSG("{\"task\": {\"name\": \"divide\"}}",
               "exp.json: task.name: \"divide\" is not one of copy, reverse, add, radd, mul, sort");
    EXPECT_ERR("{\"task\": {\"name\": \"Copy\"}}", "task.name: \"Copy\" is not one of");
    EXPECT_ERR("{\"task\": {\"name\": 3}}", "task.name: expected one of the strings copy, reverse");
    for (int k = AD_SCHED_CONSTANT; k <= AD_SCHED_WSD; k++) {
        char j[128];
        snprintf(j, sizeof j, "{\"train\": {\"schedule\": \"%s\"}}", ad_sched_name((AdSchedKind)k));
        AdExperimentConfig c = parse_ok(j);
        ck_assert_str_eq(c.train.schedule, ad_sched_name((AdSchedKind)k));
    }
    EXPECT_ERR("{\"pretrain\": {\"schedule\": \"cosin\"}}",
               "pretrain.schedule: \"cosin\" is not one of constant, cosine, linear, wsd");

    for (int k = AD_LOSS_SFT; k <= AD_LOSS_SRKL; k++) {
        char j[256];
        snprintf(j, sizeof j, "{\"pretrain\": {\"loss\": \"%s\"}, \"rounds\": {\"teacher\": "
                 "\"snapshot\"}}", ad_loss_name((AdLossKind)k));
        AdExperimentConfig c = parse_ok(j);
        ck_assert_str_eq(c.pretrain.loss, ad_loss_name((AdLossKind)k));
    }
    for (int k = AD_SELECT_ALL; k <= AD_SELECT_ORACLE; k++) {
        char j[256];
        snprintf(j, sizeof j, "{\"select\": {\"policy\": \"%s\"}}",
                 ad_select_name((AdSelectPolicy)k));
        AdExperimentConfig c = parse_ok(j);
        ck_assert_str_eq(c.select.policy, ad_select_name((AdSelectPolicy)k));
    }
    for (int k = 0; k < AD_SCORE_COUNT; k++) {
        char j[256];
        snprintf(j, sizeof j, "{\"select\": {\"scorer\": \"%s\"}, \"score\": {\"self_judge\": "
                 "true, \"ensemble\": 1}}", ad_score_name(k));
        AdExperimentConfig c = parse_ok(j);
        ck_assert_str_eq(c.select.scorer, ad_score_name(k));
    }

    /* losses.h, score.h: every documented name, and nothing else */
    const char *losses[] = {"sft", "fkl", "rkl", "jsd", "tvd", "skl", "srkl"};
    for (int i = 0; i < 7; i++) {
        char j[256];
        snprintf(j, sizeof j, "{\"train\": {\"loss\": \"%s\"}, \"rounds\": {\"teacher\": \"ema\"}}",
                 losses[i]);
        AdExperimentConfig c = parse_ok(j);
        ck_assert_str_eq(c.train.loss, losses[i]);
    }
    EXPECT_ERR("{\"train\": {\"loss\": \"kl\"}}",
               "train.loss: \"kl\" is not one of sft, fkl, rkl, jsd, tvd, skl, srkl");
    EXPECT_ERR("{\"select\": {\"policy\": \"best\"}}",
               "select.policy: \"best\" is not one of all, threshold, topk, best_of_n, top_frac, "
               "random, oracle");
    EXPECT_ERR("{\"select\": {\"scorer\": \"lp\"}}",
               "select.scorer: \"lp\" is not one of verifier, length, majority, ensemble, "
               "logprob_mean, logprob_min, perplexity, judge");
}
END_TEST

/* ---- a full valid config ---- */

static const char *const full_json =
    "{\n"
    "  \"seed\": 42, \"threads\": 2, \"run_file\": \"runs/x.h5\", \"keep_checkpoints\": 0,\n"
    "  \"model\": {\"family\": \"llama\", \"vocab_size\": 20, \"max_seq_len\": 96, \"n_layer\": 3,\n"
    "    \"n_head\": 8, \"n_kv_head\": 2, \"d_model\": 64, \"d_ff\": 200, \"norm\": \"layernorm\",\n"
    "    \"mlp\": \"gelu\", \"pos\": \"rope\", \"bias\": true, \"tied\": true, \"norm_eps\": 1e-6,\n"
    "    \"rope_theta\": 500000, \"init_from\": \"ckpt/a.h5\"},\n"
    "  \"task\": {\"source\": \"file\", \"name\": \"mul\", \"path\": \"prompts.txt\",\n"
    "    \"train_min_len\": 2, \"train_max_len\": 4, \"eval_min_len\": 3, \"eval_max_len\": 9,\n"
    "    \"eval_per_len\": 50, \"seed_examples\": 500},\n"
    "  \"pretrain\": {\"steps\": 3000, \"batch_size\": 32, \"seq_len\": 80, \"grad_accum\": 2,\n"
    "    \"lr\": 3e-3, \"min_lr\": 3e-5, \"schedule\": \"wsd\", \"warmup_steps\": 50,\n"
    "    \"decay_steps\": 300, \"weight_decay\": 0.05, \"beta1\": 0.8, \"beta2\": 0.99,\n"
    "    \"eps\": 1e-6, \"grad_clip\": 0.5, \"log_every\": 10, \"loss\": \"fkl\", \"beta\": 0.25,\n"
    "    \"alpha\": 0.2, \"temperature\": 2, \"on_policy\": 0.25},\n"
    "  \"train\": {\"steps\": 500, \"batch_size\": 16, \"seq_len\": 60, \"grad_accum\": 3,\n"
    "    \"lr\": 5e-4, \"min_lr\": 0, \"schedule\": \"linear\", \"warmup_steps\": 5,\n"
    "    \"decay_steps\": 7, \"weight_decay\": 0, \"beta1\": 0.85, \"beta2\": 0.95, \"eps\": 1e-7,\n"
    "    \"grad_clip\": 0, \"log_every\": 0, \"loss\": \"srkl\", \"beta\": 1, \"alpha\": 0.5,\n"
    "    \"temperature\": 0.5, \"on_policy\": 1},\n"
    "  \"rounds\": {\"count\": 7, \"prompts\": 300, \"length_start\": 3, \"length_step\": 2,\n"
    "    \"length_span\": 1, \"teacher\": \"checkpoint\", \"teacher_path\": \"t.h5\",\n"
    "    \"ema_decay\": 0.5, \"init\": \"restart\", \"keep_history\": false, \"replay_frac\": 0.25},\n"
    "  \"generate\": {\"samples\": 8, \"temperature\": 0.7, \"top_k\": 5, \"top_p\": 0.9,\n"
    "    \"min_p\": 0.05, \"max_new_tokens\": 30, \"batch\": 64},\n"
    "  \"score\": {\"length\": false, \"majority\": true, \"logprob\": false, \"self_judge\": true,\n"
    "    \"judge_template\": \"Q {prompt} A {answer} ok?\", \"judge_verdict\": \" yes\",\n"
    "    \"ensemble\": 3},\n"
    "  \"select\": {\"length_filter\": false, \"min_agreement\": 0.5, \"min_ensemble\": 0.25,\n"
    "    \"policy\": \"topk\", \"scorer\": \"judge\", \"threshold\": -2.5, \"k\": 2, \"frac\": 0.5,\n"
    "    \"one_per_prompt\": false}\n"
    "}\n";

static void check_full(const AdExperimentConfig *c) {
    ck_assert(c->seed == 42);
    ck_assert_int_eq(c->threads, 2);
    ck_assert_str_eq(c->run_file, "runs/x.h5");
    ck_assert_int_eq(c->keep_checkpoints, 0);
    ck_assert_str_eq(c->family, "llama");
    ck_assert_int_eq(c->model.vocab_size, 20);
    ck_assert_int_eq(c->model.max_seq_len, 96);
    ck_assert_int_eq(c->model.n_layer, 3);
    ck_assert_int_eq(c->model.n_head, 8);
    ck_assert_int_eq(c->model.n_kv_head, 2);
    ck_assert_int_eq(c->model.d_model, 64);
    ck_assert_int_eq(c->model.d_ff, 200);
    ck_assert_int_eq(c->model.norm, AD_NORM_LAYERNORM);
    ck_assert_int_eq(c->model.mlp, AD_MLP_GELU);
    ck_assert_int_eq(c->model.pos, AD_POS_ROPE);
    ck_assert_int_eq(c->model.bias, 1);
    ck_assert_int_eq(c->model.tied, 1);
    ck_assert(c->model.norm_eps == 1e-6f);
    ck_assert(c->model.rope_theta == 500000.0f);
    ck_assert_str_eq(c->init_from, "ckpt/a.h5");

    ck_assert_str_eq(c->task.source, "file");
    ck_assert_str_eq(c->task.name, "mul");
    ck_assert_str_eq(c->task.path, "prompts.txt");
    ck_assert_int_eq(c->task.train_min_len, 2);
    ck_assert_int_eq(c->task.train_max_len, 4);
    ck_assert_int_eq(c->task.eval_min_len, 3);
    ck_assert_int_eq(c->task.eval_max_len, 9);
    ck_assert_int_eq(c->task.eval_per_len, 50);
    ck_assert_int_eq(c->task.seed_examples, 500);

    const AdPhaseConfig *p = &c->pretrain;
    ck_assert_int_eq(p->steps, 3000);
    ck_assert_int_eq(p->batch_size, 32);
    ck_assert_int_eq(p->seq_len, 80);
    ck_assert_int_eq(p->grad_accum, 2);
    ck_assert(p->lr == 3e-3);
    ck_assert(p->min_lr == 3e-5);
    ck_assert_str_eq(p->schedule, "wsd");
    ck_assert_int_eq(p->warmup_steps, 50);
    ck_assert_int_eq(p->decay_steps, 300);
    ck_assert(p->weight_decay == 0.05);
    ck_assert(p->beta1 == 0.8);
    ck_assert(p->beta2 == 0.99);
    ck_assert(p->eps == 1e-6);
    ck_assert(p->grad_clip == 0.5);
    ck_assert_int_eq(p->log_every, 10);
    ck_assert_str_eq(p->loss, "fkl");
    ck_assert(p->beta == 0.25);
    ck_assert(p->alpha == 0.2);
    ck_assert(p->temperature == 2.0);
    ck_assert(p->on_policy == 0.25);

    p = &c->train;
    ck_assert_int_eq(p->steps, 500);
    ck_assert_int_eq(p->batch_size, 16);
    ck_assert_int_eq(p->seq_len, 60);
    ck_assert_int_eq(p->grad_accum, 3);
    ck_assert(p->lr == 5e-4);
    ck_assert(p->min_lr == 0.0);
    ck_assert_str_eq(p->schedule, "linear");
    ck_assert_int_eq(p->warmup_steps, 5);
    ck_assert_int_eq(p->decay_steps, 7);
    ck_assert(p->weight_decay == 0.0);
    ck_assert(p->beta1 == 0.85);
    ck_assert(p->beta2 == 0.95);
    ck_assert(p->eps == 1e-7);
    ck_assert(p->grad_clip == 0.0);
    ck_assert_int_eq(p->log_every, 0);
    ck_assert_str_eq(p->loss, "srkl");
    ck_assert(p->beta == 1.0);
    ck_assert(p->alpha == 0.5);
    ck_assert(p->temperature == 0.5);
    ck_assert(p->on_policy == 1.0);

    ck_assert_int_eq(c->rounds.count, 7);
    ck_assert_int_eq(c->rounds.prompts, 300);
    ck_assert_int_eq(c->rounds.length_start, 3);
    ck_assert_int_eq(c->rounds.length_step, 2);
    ck_assert_int_eq(c->rounds.length_span, 1);
    ck_assert_str_eq(c->rounds.teacher, "checkpoint");
    ck_assert_str_eq(c->rounds.teacher_path, "t.h5");
    ck_assert(c->rounds.ema_decay == 0.5);
    ck_assert_str_eq(c->rounds.init, "restart");
    ck_assert_int_eq(c->rounds.keep_history, 0);
    ck_assert(c->rounds.replay_frac == 0.25);

    ck_assert_int_eq(c->generate.samples, 8);
    ck_assert(c->generate.temperature == 0.7f);
    ck_assert_int_eq(c->generate.top_k, 5);
    ck_assert(c->generate.top_p == 0.9f);
    ck_assert(c->generate.min_p == 0.05f);
    ck_assert_int_eq(c->generate.max_new_tokens, 30);
    ck_assert_int_eq(c->generate.batch, 64);

    ck_assert_int_eq(c->score.length, 0);
    ck_assert_int_eq(c->score.majority, 1);
    ck_assert_int_eq(c->score.logprob, 0);
    ck_assert_int_eq(c->score.self_judge, 1);
    ck_assert_str_eq(c->score.judge_template, "Q {prompt} A {answer} ok?");
    ck_assert_str_eq(c->score.judge_verdict, " yes");
    ck_assert_int_eq(c->score.ensemble, 3);

    ck_assert_int_eq(c->select.length_filter, 0);
    ck_assert(c->select.min_agreement == 0.5);
    ck_assert(c->select.min_ensemble == 0.25);
    ck_assert_str_eq(c->select.policy, "topk");
    ck_assert_str_eq(c->select.scorer, "judge");
    ck_assert(c->select.threshold == -2.5);
    ck_assert_int_eq(c->select.k, 2);
    ck_assert(c->select.frac == 0.5);
    ck_assert_int_eq(c->select.one_per_prompt, 0);
}

START_TEST(test_full_config) {
    AdExperimentConfig c = parse_ok(full_json);
    check_full(&c);
}
END_TEST

/* ---- errors ---- */

START_TEST(test_unknown_and_wrong_keys) {
    EXPECT_MSG("{\"rounds\": {\"cout\": 3}}",
               "exp.json: unknown key \"rounds.cout\" (did you mean rounds.count?)");
    EXPECT_ERR("{\"_comment\": \"a note\"}", "unknown key \"_comment\"");
    EXPECT_ERR("{\"data\": {\"task\": \"copy\"}}", "unknown key \"data\""); /* a train config key */
    EXPECT_ERR("{\"samples\": 4}", "unknown key \"samples\" (did you mean generate.samples?)");
    EXPECT_ERR("{\"select\": {\"policy\": \"all\", \"policy\": \"topk\"}}",
               "duplicate key \"select.policy\"");
    EXPECT_ERR("{\"score\": {\"majority\": 1}}", "score.majority: expected true or false, got number 1");
    EXPECT_ERR("{\"generate\": {\"samples\": 0}}", "generate.samples: 0 is out of range [1, 1024]");
    EXPECT_ERR("{\"generate\": {\"top_p\": 0}}", "generate.top_p: 0 is out of range (0, 1]");
    EXPECT_ERR("{\"pretrain\": {\"beta\": 1.5}}", "pretrain.beta: 1.5 is out of range [0, 1]");
    EXPECT_ERR("{\"train\": {\"alpha\": 0}}", "train.alpha: 0 is out of range (0, 1)");
    EXPECT_ERR("{\"train\": {\"alpha\": 1}}", "train.alpha: 1 is out of range (0, 1)");
    EXPECT_ERR("{\"train\": {\"temperature\": 0}}", "train.temperature: 0 is out of range (0, 100]");
    EXPECT_ERR("{\"pretrain\": {\"on_policy\": 1.5}}", "pretrain.on_policy: 1.5 is out of range [0, 1]");
    EXPECT_ERR("{\"rounds\": {\"replay_frac\": 2}}", "rounds.replay_frac: 2 is out of range [-1, 1]");
    EXPECT_ERR("{\"rounds\": {\"teacher\": \"oracle\"}}",
               "rounds.teacher: \"oracle\" is not one of self, snapshot, ema, checkpoint");
    EXPECT_ERR("{\"rounds\": {\"init\": \"fresh\"}}", "rounds.init: \"fresh\" is not one of continue, restart");
    EXPECT_ERR("{\"task\": {\"source\": \"text\"}}", "task.source: \"text\" is not one of task, file, bos");
    EXPECT_ERR("{\"score\": {\"judge_verdict\": \"0123456789012345678901234567890123\"}}",
               "score.judge_verdict: string of 34 bytes is longer than the limit of 31");
}
END_TEST

START_TEST(test_cross_field) {
    EXPECT_MSG("{\"task\": {\"train_min_len\": 6, \"train_max_len\": 5}}",
               "exp.json: task.train_min_len: 6 is greater than task.train_max_len (5)");
    EXPECT_MSG("{\"task\": {\"eval_min_len\": 3, \"eval_max_len\": 2}}",
               "exp.json: task.eval_min_len: 3 is greater than task.eval_max_len (2)");
    EXPECT_MSG("{\"rounds\": {\"teacher\": \"checkpoint\"}}",
               "exp.json: rounds.teacher_path: required when rounds.teacher is \"checkpoint\"");
    EXPECT_MSG("{\"task\": {\"source\": \"file\"}}",
               "exp.json: task.path: required when task.source is \"file\"");
    EXPECT_ERR("{\"pretrain\": {\"seq_len\": 65}}", "pretrain.seq_len: 65 exceeds model.max_seq_len (64)");
    EXPECT_ERR("{\"train\": {\"seq_len\": 100}}", "train.seq_len: 100 exceeds model.max_seq_len (64)");
    EXPECT_ERR("{\"train\": {\"lr\": 1e-4, \"min_lr\": 1e-3}}",
               "train.min_lr: 0.001 is greater than train.lr (0.0001)");
    EXPECT_ERR("{\"pretrain\": {\"lr\": 1e-4}}", "pretrain.min_lr: 0.0002 is greater than pretrain.lr");
    /* model sizes as in the train config */
    EXPECT_MSG("{\"model\": {\"d_model\": 130}}",
               "exp.json: model.d_model: 130 is not divisible by model.n_head (4)");
    EXPECT_ERR("{\"model\": {\"n_kv_head\": 3}}", "model.n_kv_head: 3 does not divide model.n_head (4)");
    EXPECT_ERR("{\"model\": {\"d_model\": 132, \"pos\": \"rope\"}}",
               "model.pos: rope needs an even head size");

    /* distillation needs a teacher other than the student */
    EXPECT_ERR("{\"train\": {\"loss\": \"jsd\"}}", "train.loss: \"jsd\" is a divergence");
    EXPECT_ERR("{\"train\": {\"loss\": \"fkl\"}}", "distribution equals the student's");
    EXPECT_ERR("{\"pretrain\": {\"loss\": \"tvd\"}}", "pretrain.loss: \"tvd\"");
    EXPECT_ERR("{\"pretrain\": {\"loss\": \"skl\"}, \"rounds\": {\"teacher\": \"self\"}}",
               "rounds.teacher is \"self\"");
    parse_ok("{\"train\": {\"loss\": \"rkl\"}, \"rounds\": {\"teacher\": \"snapshot\"}}");
    parse_ok("{\"pretrain\": {\"loss\": \"jsd\"}, \"rounds\": {\"teacher\": \"checkpoint\", "
             "\"teacher_path\": \"t.h5\"}}");
    EXPECT_ERR("{\"train\": {\"on_policy\": 0.5}}", "train.on_policy: 0.5 needs a distillation loss");

    /* agreement needs several samples (majority as a scorer with one sample is allowed) */
    EXPECT_MSG("{\"select\": {\"min_agreement\": 0.5}}",
               "exp.json: select.min_agreement: 0.5 needs generate.samples > 1 (with one sample "
               "per prompt each answer agrees only with itself)");
    parse_ok("{\"select\": {\"scorer\": \"majority\", \"policy\": \"best_of_n\"}}");
    parse_ok("{\"select\": {\"min_agreement\": 0.5}, \"generate\": {\"samples\": 3, "
             "\"temperature\": 1}}");
    EXPECT_ERR("{\"select\": {\"min_agreement\": 0.5}, \"generate\": {\"samples\": 3, "
               "\"temperature\": 1}, \"score\": {\"majority\": false}}",
               "select.min_agreement: 0.5 needs score.majority = true");
    EXPECT_ERR("{\"select\": {\"min_ensemble\": 0.5}}", "select.min_ensemble: 0.5 needs score.ensemble > 0");
    EXPECT_ERR("{\"generate\": {\"samples\": 4}}",
               "generate.samples: 4 samples at generate.temperature 0 (greedy)");

    /* the ranking scorer must be computed */
    EXPECT_MSG("{\"score\": {\"logprob\": false}}",
               "exp.json: select.scorer: \"logprob_mean\" is not computed; it needs score.logprob = true");
    EXPECT_ERR("{\"select\": {\"scorer\": \"perplexity\"}, \"score\": {\"logprob\": false}}",
               "select.scorer: \"perplexity\" is not computed; it needs score.logprob = true");
    EXPECT_ERR("{\"select\": {\"scorer\": \"logprob_min\"}, \"score\": {\"logprob\": false}}",
               "it needs score.logprob = true");
    EXPECT_ERR("{\"select\": {\"scorer\": \"majority\"}, \"score\": {\"majority\": false}}",
               "select.scorer: \"majority\" is not computed; it needs score.majority = true");
    EXPECT_ERR("{\"select\": {\"scorer\": \"judge\"}}",
               "select.scorer: \"judge\" is not computed; it needs score.self_judge = true");
    EXPECT_ERR("{\"select\": {\"scorer\": \"ensemble\"}}",
               "select.scorer: \"ensemble\" is not computed; it needs score.ensemble > 0");
    parse_ok("{\"select\": {\"scorer\": \"ensemble\"}, \"score\": {\"ensemble\": 2}}");
    parse_ok("{\"select\": {\"scorer\": \"judge\"}, \"score\": {\"self_judge\": true}}");
    /* verifier and length are always there */
    parse_ok("{\"select\": {\"scorer\": \"verifier\"}, \"score\": {\"length\": false, \"majority\": "
             "false, \"logprob\": false}}");
    parse_ok("{\"select\": {\"scorer\": \"length\", \"policy\": \"threshold\", \"threshold\": 1}, "
             "\"score\": {\"logprob\": false}}");
    /* a scorer no policy ranks by need not be computed */
    parse_ok("{\"select\": {\"policy\": \"all\", \"one_per_prompt\": false}, "
             "\"score\": {\"logprob\": false}}");
    EXPECT_ERR("{\"select\": {\"policy\": \"topk\", \"one_per_prompt\": false}, "
               "\"score\": {\"logprob\": false}}", "select.scorer");
    EXPECT_ERR("{\"score\": {\"self_judge\": true, \"judge_template\": \"{prompt} ok?\"}}",
               "score.judge_template: has no \"{answer}\"");

    /* policy parameters */
    EXPECT_MSG("{\"select\": {\"policy\": \"topk\", \"k\": 0}}",
               "exp.json: select.k: 0 must be >= 1 for select.policy \"topk\"");
    parse_ok("{\"select\": {\"policy\": \"all\", \"k\": 0}}");
    EXPECT_MSG("{\"select\": {\"policy\": \"top_frac\", \"frac\": 0}}",
               "exp.json: select.frac: 0 must be in (0, 1] for select.policy \"top_frac\"");
    EXPECT_ERR("{\"select\": {\"policy\": \"random\", \"frac\": 0}}",
               "select.frac: 0 must be in (0, 1] for select.policy \"random\"");
    parse_ok("{\"select\": {\"policy\": \"random\", \"frac\": 1}}");

    /* replay: -1 or a fraction */
    EXPECT_MSG("{\"rounds\": {\"replay_frac\": -0.5}}",
               "exp.json: rounds.replay_frac: -0.5 must be -1 (in proportion to the ground "
               "truth's size) or in [0, 1]");
    AdExperimentConfig c = parse_ok("{\"rounds\": {\"replay_frac\": 0}}");
    ck_assert(c.rounds.replay_frac == 0.0);
}
END_TEST

/* model.max_seq_len against the longest example: <bos> prompt answer <eos>, one token
 * per character. copy n=16: 1 + 17 + 16 + 1 = 35; radd n=10: 1 + 22 + 11 + 1 = 35;
 * mul n=5: 1 + 12 + 10 + 1 = 24. */
START_TEST(test_max_seq_len_rule) {
    parse_ok("{\"model\": {\"max_seq_len\": 35}, \"rounds\": {\"count\": 0}}");
    EXPECT_MSG("{\"model\": {\"max_seq_len\": 34}, \"rounds\": {\"count\": 0}}",
               "exp.json: model.max_seq_len: 34 is too short for the longest evaluation example "
               "(task.eval_max_len 16): task copy at length 16 takes 35 tokens (<bos> prompt "
               "answer <eos>); set model.max_seq_len to at least 35");
    const char *tasks[] = {"reverse", "sort"};
    for (int i = 0; i < 2; i++) {
        char j[256];
        snprintf(j, sizeof j, "{\"model\": {\"max_seq_len\": 34}, \"task\": {\"name\": \"%s\"}}",
                 tasks[i]);
        EXPECT_ERR(j, "set model.max_seq_len to at least 35");
    }
    parse_ok("{\"model\": {\"max_seq_len\": 35}, \"task\": {\"name\": \"radd\", "
             "\"train_max_len\": 5, \"eval_max_len\": 10}}");
    EXPECT_ERR("{\"model\": {\"max_seq_len\": 34}, \"task\": {\"name\": \"radd\", "
               "\"train_max_len\": 5, \"eval_max_len\": 10}}", "at least 35");
    EXPECT_ERR("{\"model\": {\"max_seq_len\": 34}, \"task\": {\"name\": \"add\", "
               "\"train_max_len\": 5, \"eval_max_len\": 10}}", "task add at length 10 takes 35 tokens");
    parse_ok("{\"model\": {\"max_seq_len\": 24}, \"task\": {\"name\": \"mul\", "
             "\"train_max_len\": 3, \"eval_max_len\": 5}, \"rounds\": {\"count\": 2}}");
    EXPECT_ERR("{\"model\": {\"max_seq_len\": 23}, \"task\": {\"name\": \"mul\", "
               "\"train_max_len\": 3, \"eval_max_len\": 5}, \"rounds\": {\"count\": 2}}",
               "at least 24");
    /* the rounds go further than the evaluation: 9 + (12 - 1) * 1 = 20, copy: 43 tokens */
    parse_ok("{\"rounds\": {\"count\": 12}, \"model\": {\"max_seq_len\": 43}}");
    EXPECT_ERR("{\"rounds\": {\"count\": 12}, \"model\": {\"max_seq_len\": 42}}",
               "model.max_seq_len: 42 is too short for the longest prompt of the rounds "
               "(rounds.length_start + (rounds.count - 1) * rounds.length_step + "
               "rounds.length_span = 20): task copy at length 20 takes 43 tokens");
    /* 9 + 22 = 31: 65 tokens, one more than the default 64 */
    EXPECT_ERR("{\"rounds\": {\"count\": 23}}", "set model.max_seq_len to at least 65");
    parse_ok("{\"rounds\": {\"count\": 22}}");
    /* so does round 0's training */
    EXPECT_ERR("{\"task\": {\"train_max_len\": 20, \"eval_max_len\": 20}, \"rounds\": {\"count\": 0},"
               " \"model\": {\"max_seq_len\": 42}}", "at least 43");
    /* prompts from a file or <bos> alone have no task lengths to check */
    parse_ok("{\"model\": {\"max_seq_len\": 8}, \"task\": {\"source\": \"bos\"}}");
    EXPECT_ERR("{\"rounds\": {\"count\": 600}, \"task\": {\"source\": \"bos\"}}",
               "rounds.count: the rounds reach length 608");
}
END_TEST

/* ---- resolution, overrides, round trips ---- */

START_TEST(test_resolution) {
    AdExperimentConfig c = parse_ok("{\"task\": {\"train_max_len\": 5}}");
    ck_assert_int_eq(c.rounds.length_start, 6);
    c = parse_ok("{\"task\": {\"train_max_len\": 5}, \"rounds\": {\"length_start\": 2}}");
    ck_assert_int_eq(c.rounds.length_start, 2);
    c = parse_ok("{\"model\": {\"max_seq_len\": 50}, \"train\": {\"seq_len\": 40}}");
    ck_assert_int_eq(c.pretrain.seq_len, 50);
    ck_assert_int_eq(c.train.seq_len, 40);
    c = parse_ok("{\"model\": {\"family\": \"llama\", \"n_kv_head\": 2}}");
    ck_assert_int_eq(c.model.d_ff, 352); /* 2/3 * 512 = 341 -> 352 */
    ck_assert_int_eq(c.model.pos, AD_POS_ROPE); /* the family preset resets the switches */
    ck_assert_int_eq(c.model.n_kv_head, 2);
    c = parse_ok("{\"model\": {\"family\": \"gpt2\", \"pos\": \"none\", \"d_model\": 64}}");
    ck_assert_int_eq(c.model.pos, AD_POS_NONE);
    ck_assert_int_eq(c.model.d_ff, 256);
}
END_TEST

START_TEST(test_overrides) {
    const char *o1[] = {"rounds.count=6", "task.name=radd", "generate.temperature=0.5",
                        "generate.samples=5", "select.min_agreement=0.6", "seed=18446744073709551615",
                        "rounds.teacher=ema", "train.loss=jsd", "task.eval_max_len=10"};
    AdExperimentConfig c = parse_ok_ov("{\"rounds\": {\"count\": 2}}", o1, 9);
    ck_assert_int_eq(c.rounds.count, 6);
    ck_assert_str_eq(c.task.name, "radd");
    ck_assert(c.generate.temperature == 0.5f);
    ck_assert_int_eq(c.generate.samples, 5);
    ck_assert(c.select.min_agreement == 0.6);
    ck_assert(c.seed == UINT64_MAX);
    ck_assert_str_eq(c.rounds.teacher, "ema");
    ck_assert_str_eq(c.train.loss, "jsd");
    /* an override can make the config consistent, or break it */
    const char *o2[] = {"rounds.teacher=self"};
    EXPECT_ERR_OV("{\"train\": {\"loss\": \"jsd\"}, \"rounds\": {\"teacher\": \"ema\"}}", o2, 1,
                  "train.loss");
    const char *o3[] = {"rounds.teacher_path=t.h5"};
    c = parse_ok_ov("{\"rounds\": {\"teacher\": \"checkpoint\"}}", o3, 1);
    ck_assert_str_eq(c.rounds.teacher_path, "t.h5");
    /* length_start follows an overridden train_max_len when left automatic */
    const char *o4[] = {"task.train_max_len=3"};
    c = parse_ok_ov("{}", o4, 1);
    ck_assert_int_eq(c.rounds.length_start, 4);
    const char *o5[] = {"rounds.cnt=3"};
    EXPECT_ERR_OV("{}", o5, 1, "--set rounds.cnt=3: unknown key \"rounds.cnt\" (did you mean "
                              "rounds.count?)");
    const char *o6[] = {"select.policy=best"};
    EXPECT_ERR_OV("{}", o6, 1, "--set select.policy=best: select.policy: \"best\" is not one of");
    const char *o7[] = {"task.name=nope"};
    EXPECT_ERR_OV("{}", o7, 1, "--set task.name=nope: task.name: \"nope\" is not one of copy");
    const char *o8[] = {"score.logprob=false"};
    EXPECT_ERR_OV("{}", o8, 1, "select.scorer: \"logprob_mean\" is not computed");
}
END_TEST

START_TEST(test_round_trip) {
    AdExperimentConfig a = parse_ok(full_json);
    char *text = ad_experiment_config_to_json(&a);
    ck_assert_ptr_nonnull(text);
    AdExperimentConfig b = parse_ok(text);
    check_full(&b);
    ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "round trip differs:\n%s", text);
    char *text2 = ad_experiment_config_to_json(&b);
    ck_assert_str_eq(text, text2);
    free(text);
    free(text2);

    /* defaults, with every key written */
    ad_experiment_config_defaults(&a);
    text = ad_experiment_config_to_json(&a);
    ck_assert_ptr_nonnull(text);
    b = parse_ok(text);
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
    ck_assert_msg(strstr(text, "\"length_start\":\t9") != NULL, "%s", text); /* resolved */
    ck_assert_msg(strstr(text, "\"replay_frac\":\t-1") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"pos\":\t\"none\"") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"scorer\":\t\"logprob_mean\"") != NULL, "%s", text);
    free(text);

    /* numbers that print badly with %g reload to the same bits */
    volatile double point1 = 0.1, point2 = 0.2;
    ad_experiment_config_defaults(&a);
    a.pretrain.lr = point1 + point2;
    a.train.min_lr = 1.0 / 3.0 * 1e-4;
    a.rounds.ema_decay = nextafter(0.99, 1.0);
    a.select.threshold = -1.0 / 7.0;
    a.generate.temperature = 0.7f;
    a.generate.top_p = nextafterf(0.9f, 1.0f);
    a.seed = UINT64_MAX - 1;
    text = ad_experiment_config_to_json(&a);
    b = parse_ok(text);
    ck_assert(b.pretrain.lr == point1 + point2);
    ck_assert(b.rounds.ema_decay == nextafter(0.99, 1.0));
    ck_assert(b.generate.top_p == nextafterf(0.9f, 1.0f));
    ck_assert(b.seed == UINT64_MAX - 1);
    ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "round trip differs:\n%s", text);
    free(text);
}
END_TEST

START_TEST(test_print_keys) {
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ad_experiment_config_print_keys(f);
    long n = ftell(f);
    ck_assert(n > 0);
    char *buf = malloc((size_t)n + 1);
    rewind(f);
    ck_assert_int_eq((long)fread(buf, 1, (size_t)n, f), n);
    buf[n] = '\0';
    fclose(f);
    static const char *const top[] = {"seed", "threads", "run_file", "keep_checkpoints"};
    static const char *const model[] = {"family", "vocab_size", "max_seq_len", "n_layer",
                                        "n_head", "n_kv_head", "d_model", "d_ff", "norm", "mlp",
                                        "pos", "bias", "tied", "norm_eps", "rope_theta",
                                        "qkv_bias", "sliding_window", "rope_scaling",
                                        "rope_factor", "rope_low_freq_factor",
                                        "rope_high_freq_factor", "rope_original_max_pos",
                                        "init_from", "init", "tokenizer_from"};
    static const char *const task[] = {"source", "name", "path", "train_min_len",
                                       "train_max_len", "eval_min_len", "eval_max_len",
                                       "eval_per_len", "seed_examples", "pad_answer"};
    static const char *const phase[] = {"steps", "batch_size", "seq_len", "grad_accum", "lr",
                                        "min_lr", "schedule", "warmup_steps", "decay_steps",
                                        "weight_decay", "beta1", "beta2", "eps", "grad_clip",
                                        "log_every", "loss", "beta", "alpha", "temperature",
                                        "on_policy"};
    static const char *const rounds[] = {"count", "prompts", "length_start", "length_step",
                                         "length_span", "teacher", "teacher_path", "ema_decay",
                                         "init", "keep_history", "replay_frac", "prompt_source"};
    static const char *const train_only[] = {"objective"};
    static const char *const preference[] = {"loss", "beta", "label_smoothing", "gamma",
                                             "sft_alpha", "pairs", "scorer", "min_margin",
                                             "reference"};
    static const char *const rl[] = {"baseline", "scale_rewards", "mu", "beta", "epsilon",
                                     "epsilon_high", "norm", "reward"};
    static const char *const generate[] = {"samples", "temperature", "top_k", "top_p", "min_p",
                                           "max_new_tokens", "batch"};
    static const char *const score[] = {"length", "majority", "logprob", "self_judge",
                                        "judge_template", "judge_verdict", "ensemble"};
    static const char *const select[] = {"length_filter", "min_agreement", "min_ensemble",
                                         "policy", "scorer", "threshold", "k", "frac",
                                         "one_per_prompt"};
    struct { const char *group; const char *const *keys; int n; } groups[] = {
        {"", top, 4},          {"model.", model, 25},       {"task.", task, 10},
        {"pretrain.", phase, 20}, {"train.", phase, 20},    {"rounds.", rounds, 12},
        {"generate.", generate, 7}, {"score.", score, 7},   {"select.", select, 9},
        {"train.", train_only, 1}, {"preference.", preference, 9}, {"rl.", rl, 8},
    };
    int total = 0;
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        for (int i = 0; i < groups[g].n; i++) {
            char needle[96];
            snprintf(needle, sizeof needle, "  %s%s ", groups[g].group, groups[g].keys[i]);
            ck_assert_msg(strstr(buf, needle) != NULL, "help lacks %s", needle);
            total++;
        }
    }
    ck_assert_int_eq(ad_experiment_config_schema()->n_rows, total);
    ck_assert_msg(strstr(buf, "rounds.length_start") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "int [0, 512], default 0") != NULL, "%s", buf); /* unresolved */
    ck_assert_msg(strstr(buf, "self|snapshot|ema|checkpoint, default \"self\"") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "copy|reverse|add|radd|mul|sort, default \"copy\"") != NULL, "%s",
                  buf);
    free(buf);
}
END_TEST

START_TEST(test_load_file) {
    const char *dir = ad_test_tmpdir();
    const char *path = ad_test_path(dir, "exp.json");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"rounds\": {\"count\": 2}, \"seed\": \"77\"}\n", f);
    fclose(f);
    const char *ov[] = {"train.lr=0.002"};
    AdExperimentConfig c;
    ck_assert_int_eq(ad_experiment_config_load(&c, path, ov, 1), AD_OK);
    ck_assert_int_eq(c.rounds.count, 2);
    ck_assert(c.seed == 77);
    ck_assert(c.train.lr == 0.002);

    const char *bad = ad_test_path(dir, "bad.json");
    f = fopen(bad, "w");
    fputs("{\n \"select\": {\"k\": \"two\"}\n}\n", f);
    fclose(f);
    ck_assert_int_eq(ad_experiment_config_load(&c, bad, NULL, 0), AD_ERR_CONFIG);
    char want[512];
    snprintf(want, sizeof want, "%s: select.k: expected an integer, got string \"two\"", bad);
    ck_assert_str_eq(ad_errmsg(), want);
    ck_assert_int_eq(c.rounds.count, 2); /* untouched by the failure */

    const char *missing = ad_test_path(dir, "missing.json");
    ck_assert_int_eq(ad_experiment_config_load(&c, missing, NULL, 0), AD_ERR_IO);
    ck_assert_msg(strstr(ad_errmsg(), missing) != NULL, "%s", ad_errmsg());
}
END_TEST

/* ---- the engine's list-less CHOICE rows ---- */

static const char *const toy_names[] = {"red", "green"};
static const char *toy_name(int k) { return k >= 0 && k < 2 ? toy_names[k] : "?"; }
static int toy_parse(const char *s) {
    for (int i = 0; i < 2; i++)
        if (strcmp(s, toy_names[i]) == 0) return i;
    return -1;
}
static int toy_parse_broken(const char *s) { return strcmp(s, "red") == 0 ? 0 : -1; }

START_TEST(test_engine_named_choice) {
    typedef struct { char colour[6]; } Toy;
    const AdSchemaRow ok_rows[] = {
        {.key = "colour", .type = AD_SCHEMA_CHOICE, .offset = offsetof(Toy, colour),
         .cap = sizeof(((Toy *)0)->colour), .enum_parse = toy_parse, .enum_name = toy_name,
         .n_enum = 2, .def = "green", .help = "c"},
    };
    AdSchema ok = {ok_rows, 1};
    ck_assert_int_eq(ad_schema_check(&ok), AD_OK);
    Toy t;
    memset(&t, 0, sizeof t);
    ad_schema_defaults(&ok, &t);
    ck_assert_str_eq(t.colour, "green");
    cJSON *root = NULL;
    ck_assert_int_eq(ad_schema_parse_text("{\"colour\": \"blue\"}", "toy", &root), AD_OK);
    ck_assert_int_eq(ad_schema_parse(&ok, &t, root, "toy"), AD_ERR_CONFIG);
    ck_assert_str_eq(ad_errmsg(), "toy: colour: \"blue\" is not one of red, green");
    cJSON_Delete(root);

    AdSchemaRow rows[1];
    memcpy(rows, ok_rows, sizeof rows);
    rows[0].enum_parse = toy_parse_broken; /* "green" does not map back */
    AdSchema broken = {rows, 1};
    ck_assert_int_eq(ad_schema_check(&broken), AD_ERR_INTERNAL);
    memcpy(rows, ok_rows, sizeof rows);
    rows[0].cap = 5; /* "green" does not fit */
    ck_assert_int_eq(ad_schema_check(&broken), AD_ERR_INTERNAL);
    ck_assert_msg(strstr(ad_errmsg(), "does not fit") != NULL, "%s", ad_errmsg());
    memcpy(rows, ok_rows, sizeof rows);
    rows[0].enum_name = NULL; /* neither a list nor name functions */
    ck_assert_int_eq(ad_schema_check(&broken), AD_ERR_INTERNAL);
}
END_TEST

/* ---- the shipped experiment files ---- */

/* The experiments/ directory of the source tree, found from this file's path. */
static const char *experiments_dir(void) {
    static char buf[4096];
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    const char *cands[3];
    int n = 0;
    if (slash) {
        snprintf(buf, sizeof buf, "%.*s/../experiments", (int)(slash - file), file);
        cands[n++] = buf;
    }
    cands[n++] = "experiments";
    cands[n++] = "../experiments";
    for (int i = 0; i < n; i++) {
        DIR *d = opendir(cands[i]);
        if (d) {
            closedir(d);
            return cands[i];
        }
    }
    return NULL;
}

static AdExperimentConfig load_ok(const char *name) {
    const char *dir = experiments_dir();
    ck_assert_msg(dir != NULL, "experiments/ not found");
    AdExperimentConfig c;
    AdStatus st = ad_experiment_config_load(&c, ad_test_path(dir, name), NULL, 0);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    return c;
}

/* Every experiments/ *.json that is not a train config ("train_*") is a valid experiment. */
START_TEST(test_experiment_files_parse) {
    const char *dir = experiments_dir();
    ck_assert_msg(dir != NULL, "experiments/ not found");
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n_experiments = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
        if (strncmp(e->d_name, "train_", 6) == 0) continue;
        const char *path = ad_test_path(dir, e->d_name);
        AdExperimentConfig c;
        AdStatus st = ad_experiment_config_load(&c, path, NULL, 0);
        ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
        n_experiments++;
    }
    closedir(d);
    ck_assert_int_ge(n_experiments, 6);
}
END_TEST

/* The files hold what experiments/README.md says they do. */
START_TEST(test_experiment_files_content) {
    AdExperimentConfig def;
    ad_experiment_config_defaults(&def);

    AdExperimentConfig c = load_ok("length_generalization.json");
    ck_assert_str_eq(c.task.name, "copy");
    ck_assert_int_eq(c.rounds.count, 6);
    ck_assert_int_eq(c.model.pos, AD_POS_NONE);
    ck_assert_int_eq(c.task.train_max_len, 8);
    ck_assert_int_eq(c.task.eval_max_len, 16);
    ck_assert_int_eq(c.task.eval_per_len, 200);
    ck_assert_int_eq(c.rounds.prompts, 4000);
    ck_assert_int_eq(c.rounds.length_start, 9);
    ck_assert_int_eq(c.rounds.length_step, 1);
    ck_assert_int_eq(c.select.length_filter, 1);
    ck_assert_str_eq(c.select.policy, "top_frac");
    ck_assert(c.select.frac == 0.5);
    ck_assert_str_eq(c.select.scorer, "logprob_mean");
    ck_assert_int_eq(c.train.steps, 500);
    ck_assert_str_eq(c.train.loss, "sft");

    c = load_ok("length_generalization_lengthfilter.json");
    ck_assert_str_eq(c.select.policy, "all");
    ck_assert_int_eq(c.select.length_filter, 1);
    ck_assert_int_eq(c.rounds.prompts, 2000);
    ck_assert_int_eq(c.train.steps, 400);

    c = load_ok("length_generalization_radd.json");
    ck_assert_str_eq(c.task.name, "radd");
    ck_assert_int_eq(c.task.train_min_len, 1);
    ck_assert_int_eq(c.task.train_max_len, 5);
    ck_assert_int_eq(c.task.eval_min_len, 1);
    ck_assert_int_eq(c.task.eval_max_len, 12);
    ck_assert_int_eq(c.task.pad_answer, 1);
    ck_assert_int_eq(c.pretrain.steps, 3000);
    ck_assert_str_eq(c.init_from, "");
    ck_assert_int_eq(c.init, AD_INIT_TORCH);
    ck_assert_int_eq(c.model.tied, 0);
    ck_assert_int_eq(c.model.bias, 0);
    ck_assert(c.pretrain.beta2 == 0.98 && c.train.beta2 == 0.98);
    ck_assert(c.pretrain.weight_decay == 0.01 && c.train.weight_decay == 0.01);
    ck_assert_int_eq(c.rounds.count, 6);
    ck_assert_int_eq(c.rounds.length_start, 6);
    ck_assert_int_eq(c.generate.samples, 5);
    ck_assert(c.generate.temperature == 0.7f);
    ck_assert_int_eq(c.score.majority, 1);
    ck_assert_str_eq(c.select.scorer, "majority");
    ck_assert(c.select.min_agreement == 0.6);
    ck_assert_int_eq(c.model.pos, AD_POS_NONE);

    c = load_ok("length_generalization_nofilter.json");
    ck_assert_str_eq(c.task.name, "copy");
    ck_assert_int_eq(c.select.length_filter, 0);
    ck_assert_int_eq(c.select.one_per_prompt, 0);
    ck_assert_str_eq(c.select.policy, "all");
    ck_assert_int_eq(c.model.pos, AD_POS_NONE);

    c = load_ok("distill_kd.json");
    ck_assert_str_eq(c.rounds.teacher, "checkpoint");
    ck_assert_str_eq(c.rounds.teacher_path, "runs/teacher/checkpoint.h5");
    ck_assert_int_eq(c.model.d_model, 64);
    ck_assert_int_eq(c.model.n_layer, 2);
    ck_assert_str_eq(c.train.loss, "jsd");
    ck_assert(c.train.beta == 0.5);
    ck_assert(c.train.on_policy == 0.5);
    ck_assert_str_eq(c.task.name, "radd");
    ck_assert_int_eq(c.task.train_min_len, 1);
    ck_assert_int_eq(c.task.train_max_len, 5);
    ck_assert_int_eq(c.rounds.count, 3);
    ck_assert_int_eq(c.rounds.prompts, 1000);
    ck_assert_int_eq(c.rounds.length_step, 0);
    /* the rounds' prompts cover the training lengths 1..5 */
    ck_assert_int_eq(c.rounds.length_start, 1);
    ck_assert_int_eq(c.rounds.length_span, 4);

    /* stories260K as its own teacher, and as the teacher of a smaller student */
    c = load_ok("stories260K_self.json");
    ck_assert_str_eq(c.init_from, "runs/stories260K.h5");
    ck_assert_str_eq(c.task.source, "bos");
    ck_assert_int_eq(c.pretrain.steps, 0);
    ck_assert_str_eq(c.rounds.teacher, "self");
    ck_assert_int_eq(c.rounds.count, 3);
    ck_assert_int_eq(c.rounds.prompts, 64);
    ck_assert_int_eq(c.generate.samples, 4);
    ck_assert_int_eq(c.generate.max_new_tokens, 96);
    ck_assert_str_eq(c.select.scorer, "logprob_mean");
    ck_assert_int_eq(c.select.one_per_prompt, 1);
    ck_assert_int_eq(c.train.steps, 30);
    c = load_ok("stories260K_distill.json");
    ck_assert_str_eq(c.init_from, "");
    ck_assert_str_eq(c.tokenizer_from, "teacher");
    ck_assert_str_eq(c.rounds.teacher, "checkpoint");
    ck_assert_str_eq(c.rounds.teacher_path, "runs/stories260K.h5");
    ck_assert_str_eq(c.task.source, "bos");
    ck_assert_int_eq(c.model.d_model, 32);
    ck_assert_int_eq(c.model.n_layer, 2);
    ck_assert_int_eq(c.model.n_kv_head, 2);
    ck_assert_str_eq(c.train.loss, "fkl");
    ck_assert_int_eq(c.train.steps, 60);
    ck_assert_int_eq(c.rounds.count, 3);
}
END_TEST

static Suite *experiment_suite(void) {
    Suite *s = suite_create("experiment");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_schema_table_is_sound);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_names_follow_modules);
    tcase_add_test(tc, test_full_config);
    tcase_add_test(tc, test_unknown_and_wrong_keys);
    tcase_add_test(tc, test_cross_field);
    tcase_add_test(tc, test_max_seq_len_rule);
    tcase_add_test(tc, test_resolution);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_print_keys);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_engine_named_choice);
    tcase_add_test(tc, test_experiment_files_parse);
    tcase_add_test(tc, test_experiment_files_content);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return ad_test_run(experiment_suite()); }

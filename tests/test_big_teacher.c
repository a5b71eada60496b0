/* test_big_teacher.c: the path to the larger tinyllamas is proven at stories15M's exact
 * shape: a random-weight llama2.c file of 60,816,028 bytes (dim 288, hidden 768, 6 layers,
 * 6 heads, vocabulary 32000, context 256) is written here, imported with the shared
 * 32000-piece tokenizer.bin, generates through the CLI, and teaches a small student one
 * round of `run` (generation, log-prob scoring under the teacher, forward-KL training).
 * Skips, saying why, when ../shared/models (or AD_SHARED_MODELS) lacks tokenizer.bin. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/h5util.h"
#include "autodidact/checkpoint.h"
#include "autodidact/experiment.h"
#include "autodidact/importers.h"
#include "autodidact/round.h"
#include "testutil.h"

enum { DIM = 288, HIDDEN = 768, LAYERS = 6, HEADS = 6, KV = 6, VOCAB = 32000, CTX = 256 };

/* Writes n floats: value (if scale is 0) or uniform in [-scale, scale) from a 64-bit LCG. */
static void put_floats(FILE *f, size_t n, float value, float scale, uint64_t *state) {
    static float buf[4096];
    while (n > 0) {
        size_t k = n < 4096 ? n : 4096;
        for (size_t i = 0; i < k; i++) {
            *state = *state * 6364136223846793005ull + 1442695040888963407ull;
            float u = (float)((*state >> 40) * (1.0 / 16777216.0)); /* [0, 1) */
            buf[i] = scale == 0.0f ? value : (2.0f * u - 1.0f) * scale;
        }
        ck_assert_uint_eq(fwrite(buf, sizeof(float), k, f), k);
        n -= k;
    }
}

/* The llama2.c legacy layout: header, embedding, per-layer tensors grouped by kind, final
 * norm, then the unused RoPE tables (CTX x head_size/2, twice); the classifier is shared. */
static void write_stories15m_shape(const char *path) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    int32_t h[7] = {DIM, HIDDEN, LAYERS, HEADS, KV, VOCAB, CTX};
    ck_assert_uint_eq(fwrite(h, sizeof h, 1, f), 1);
    uint64_t s = 15;
    size_t L = LAYERS, hs = DIM / HEADS;
    put_floats(f, (size_t)VOCAB * DIM, 0, 0.02f, &s);    /* token embedding */
    put_floats(f, L * DIM, 1.0f, 0, &s);                  /* rms_att */
    put_floats(f, L * DIM * DIM * 4, 0, 0.02f, &s);       /* wq, wk, wv, wo */
    put_floats(f, L * DIM, 1.0f, 0, &s);                  /* rms_ffn */
    put_floats(f, L * HIDDEN * DIM * 3, 0, 0.02f, &s);    /* w1, w2, w3 */
    put_floats(f, DIM, 1.0f, 0, &s);                      /* rms_final */
    put_floats(f, (size_t)CTX * hs, 0.0f, 0, &s);         /* freq_cis_real, freq_cis_imag */
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_stories15m_shape_teacher) {
    const char *models = ad_test_models_dir();
    char tokp[4200];
    snprintf(tokp, sizeof tokp, "%s/tokenizer.bin", models ? models : ".");
    if (!models || access(tokp, R_OK) != 0) {
        printf("test_stories15m_shape_teacher: skipped: no tokenizer.bin (the 32000-piece "
               "vocabulary) under AD_SHARED_MODELS or ../shared/models\n");
        return;
    }
    const char *dir = ad_test_tmpdir();
    char bin[600], ck[600], run_file[600];
    snprintf(bin, sizeof bin, "%s/stories15M_random.bin", dir);
    snprintf(ck, sizeof ck, "%s/stories15M_random.h5", dir);
    snprintf(run_file, sizeof run_file, "%s/big.h5", dir);
    write_stories15m_shape(bin);
    struct stat sb;
    ck_assert_int_eq(stat(bin, &sb), 0);
    ck_assert_int_eq((long long)sb.st_size, 60816028LL);

    AdModel m;
    AdTokenizer tok;
    ck_assert_msg(ad_import(bin, AD_IMPORT_AUTO, tokp, &m, &tok) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(m.cfg.vocab_size, VOCAB);
    ck_assert_int_eq(m.cfg.d_model, DIM);
    ck_assert_int_eq(m.cfg.d_ff, HIDDEN);
    ck_assert_int_eq(m.cfg.max_seq_len, CTX);
    ck_assert_int_eq(m.cfg.tied, 1);
    ck_assert_int_eq(tok.vocab_size, VOCAB);
    ck_assert_int_eq(tok.kind, AD_TOK_SPM);
    ck_assert_msg(ad_checkpoint_save(ck, &m, &tok, NULL) == AD_OK, "%s", ad_errmsg());
    ad_model_free(&m);
    ad_tokenizer_free(&tok);

    /* generate through the CLI, as a user would */
    const char *bin_cli = ad_test_bin();
    if (bin_cli) {
        char cmd[2400], out[700];
        snprintf(out, sizeof out, "%s/gen.jsonl", dir);
        snprintf(cmd, sizeof cmd, "%s generate --model %s --prompt 'Once upon a time' -n 8 "
                 "--samples 2 --json > %s 2>/dev/null", bin_cli, ck, out);
        int rc = system(cmd);
        ck_assert_msg(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s", cmd);
        char *text = NULL;
        size_t len = 0;
        ck_assert_int_eq(ad_read_file(out, 1 << 20, &text, &len), AD_OK);
        ck_assert_msg(strstr(text, "\"sample_index\": 1") && strstr(text, "\"logprobs\": [-"), "%s",
                      text);
        free(text);
    }

    /* one round: the teacher generates and scores, a small student with its tokenizer learns */
    char ov[2][700];
    snprintf(ov[0], sizeof ov[0], "run_file=%s", run_file);
    snprintf(ov[1], sizeof ov[1], "rounds.teacher_path=%s", ck);
    const char *ovp[] = {ov[0], ov[1]};
    const char *json =
        "{\"seed\": 3, \"threads\": 2, \"model\": {\"family\": \"llama\", \"d_model\": 32,"
        " \"n_layer\": 1, \"n_head\": 2, \"max_seq_len\": 32, \"tokenizer_from\": \"teacher\"},"
        " \"task\": {\"source\": \"bos\"}, \"pretrain\": {\"steps\": 0},"
        " \"rounds\": {\"count\": 1, \"prompts\": 4, \"teacher\": \"checkpoint\"},"
        " \"generate\": {\"samples\": 1, \"temperature\": 1.0, \"max_new_tokens\": 12, \"batch\": 4},"
        " \"score\": {\"majority\": false}, \"select\": {\"policy\": \"all\", \"one_per_prompt\": false},"
        " \"train\": {\"steps\": 2, \"batch_size\": 4, \"log_every\": 0, \"warmup_steps\": 1,"
        "  \"loss\": \"fkl\"}}";
    AdExperimentConfig c;
    ck_assert_msg(ad_experiment_config_parse(&c, json, "big", ovp, 2) == AD_OK, "%s", ad_errmsg());
    AdRunOptions o = {1, 0};
    ck_assert_msg(ad_run_start(&c, json, 1, &o) == AD_OK, "%s", ad_errmsg());
    hid_t f;
    ck_assert_int_eq(ad_h5_open(run_file, 0, &f), AD_OK);
    int64_t done = 0;
    ck_assert_int_eq(ad_h5_attr_read_i64(f, "rounds_complete", &done), AD_OK);
    ck_assert_int_eq(done, 2);
    float lp[4];
    hsize_t four[1] = {4};
    ck_assert_int_eq(ad_h5_read_array(f, "rounds/001/scores/logprob_mean", AD_H5_F32, 1, four, lp),
                     AD_OK);
    /* random weights of scale 0.02 give a near-uniform teacher: about -ln 32000 = -10.4 */
    for (int i = 0; i < 4; i++)
        ck_assert_msg(isfinite(lp[i]) && lp[i] < -5.0f && lp[i] > -20.0f, "candidate %d: %g", i, lp[i]);
    double loss[2];
    hsize_t two[1] = {2};
    ck_assert_int_eq(ad_h5_read_array(f, "rounds/001/train/loss", AD_H5_F64, 1, two, loss), AD_OK);
    ck_assert_msg(isfinite(loss[0]) && loss[0] > 0, "forward KL %g", loss[0]);
    ad_h5_close_quietly(f);
    AdModelConfig sc;
    char sck[700];
    snprintf(sck, sizeof sck, "%s.ckpt/round_001.h5", run_file);
    ck_assert_msg(ad_checkpoint_read_config(sck, &sc) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(sc.vocab_size, VOCAB);
    remove(bin);
    remove(ck);
}
END_TEST

int main(void) {
    Suite *s = suite_create("big teacher");
    const AdTestCase cases[] = {{"stories15M-shape teacher", test_stories15m_shape_teacher}};
    ad_test_add_cases(s, cases, 1, 600);
    return ad_test_run(s);
}

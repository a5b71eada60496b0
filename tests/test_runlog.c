/* test_runlog.c: the HDF5 run file. Runs are written through the runlog API and read back
 * with raw HDF5 calls, every dataset of docs/RUNFILE.md checked for name, type, shape and
 * value against values set here; the file on disk must be complete after each commit,
 * resumable (uncommitted rounds dropped), refused with a clear message when foreign, and
 * intact after a failed commit. h5py, where installed, checks the documented contract. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../src/h5util.h" /* brings <hdf5.h> (see the note there on the 1.8 API default) */
#include "autodidact/round.h"
#include "autodidact/runlog.h"
#include "autodidact/score.h"
#include "autodidact/train.h"
#include "testutil.h"

#define TIMEOUT 60
#define E 3
#define SEED 0xF123456789ABCDEFull /* above 2^63: the attribute must keep all 64 bits */

static const int GRID[E] = {3, 5, 8};
static const char *const CONFIG_ORIGINAL = "{\"name\": \"t\"}\n--set train.lr=0.002";

/* ---- expected contents, all defined here -------------------------------------------- */

/* The resolved config: longer than the 64 KiB attribute limit, with UTF-8 in it. */
static char *make_json(void) {
    size_t approx = 70000;
    char *s = malloc(approx + 64);
    ck_assert_ptr_nonnull(s);
    size_t n = (size_t)sprintf(s, "{\"note\": \"gr\xc3\xbc\xc3\x9f \xe2\x9c\x93\", \"pad\": \"");
    for (; n < approx; n++) s[n] = (char)('a' + n % 26);
    strcpy(s + n, "\"}");
    return s;
}

static double eval_acc(int round, int e) { return 1.0 - 0.125 * e + 0.0625 * round; }
static double eval_loss(int round, int e) { return 0.25 + 0.5 * e - 0.03125 * round; }
static long eval_n(int round, int e) { return 100 + 10 * e + round; }

/* Summary of `round`; the eval pointers refer to the caller's (E) arrays. */
static AdRoundSummary make_summary(int round, double *acc, double *loss, long *n) {
    for (int e = 0; e < E; e++) {
        acc[e] = eval_acc(round, e);
        loss[e] = eval_loss(round, e);
        n[e] = eval_n(round, e);
    }
    AdRoundSummary s;
    memset(&s, 0, sizeof s);
    s.round = round;
    s.length_lo = 1 + round, s.length_hi = 5 + round;
    s.n_prompts = round ? 2 : 0, s.n_candidates = round ? 6 : 0, s.n_selected = round ? 3 : 0;
    s.acceptance = round ? 0.5 : NAN;
    s.label_accuracy = round ? 2.0 / 3.0 : NAN;
    s.candidate_accuracy = round ? 0.5 : NAN;
    s.train_examples = 1000 + round, s.train_steps = 40 + round;
    s.train_loss = 1.5 / (round + 1);
    s.eval_accuracy = acc, s.eval_loss = loss, s.eval_n = n;
    s.frontier_90 = 5 + round;
    s.time_generate = 1.25 + round, s.time_score = 2.5 + round, s.time_train = 3.75 + round;
    s.time_eval = 5.0 + round, s.time_total = 12.5 + 4 * round;
    s.gen_tokens_per_s = 1000.5 + round, s.train_tokens_per_s = 2000.25 + round;
    s.teacher = round ? "self" : NULL;
    s.n_pairs = 7 * round, s.pairs_dropped = round;
    s.pair_accuracy = round ? 0.75 : NAN;
    s.time_write = 0.125 + round;
    return s;
}

/* Training curve of `round`: round + 2 records. */
static long make_curve(int round, AdTrainRecord *recs) {
    long n = round + 2;
    for (long i = 0; i < n; i++) {
        recs[i].step = i + 1;
        recs[i].loss = 3.0f - 0.25f * (float)i - 0.125f * (float)round;
        recs[i].lr = 0.001f * (float)(i + 1);
        recs[i].grad_norm = 0.5f + (float)i;
        recs[i].tokens_per_s = 500.0 + i;
        recs[i].elapsed_s = 0.1 * i;
    }
    return n;
}

/* Round 1's candidates: 2 prompts x 3 samples, UTF-8 text, some scorers partly NaN,
 * some entirely NaN (those must not be written). */
static const char *const PROMPTS[2] = {"12+34=", "gr\xc3\xbc\xc3\x9f 5+6="};
static const int PROMPT_LEN[2] = {2, 1};
static const char *const ANSWERS[6] = {"46", "47", "", "11", "11", "\xc3\xbc" "1"};
static const int ENDED[6] = {1, 1, 0, 1, 1, 0};
static const unsigned char SELECTED[6] = {1, 0, 0, 1, 1, 0};
static const signed char CORRECT[6] = {1, 0, -1, 1, 1, 0};
static const float VERIFIER[6] = {1, 0, NAN, 1, 1, 0};
static const float MAJORITY[6] = {1.0f / 3, 1.0f / 3, 1.0f / 3, 2.0f / 3, 2.0f / 3, 1.0f / 3};
static const float LOGPROB_MEAN[6] = {NAN, NAN, NAN, NAN, NAN, -0.5f};

static void make_candidates(AdCandidates *c) {
    ck_assert_int_eq(ad_candidates_init(c, 2, 3), AD_OK);
    for (int p = 0; p < 2; p++)
        ck_assert_int_eq(ad_candidates_set_prompt(c, p, PROMPTS[p], PROMPT_LEN[p]), AD_OK);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(ad_candidates_set_answer(c, i, ANSWERS[i], ENDED[i]), AD_OK);
        c->selected[i] = SELECTED[i];
        c->correct[i] = CORRECT[i];
        c->scores[AD_SCORE_VERIFIER][i] = VERIFIER[i];
        c->scores[AD_SCORE_MAJORITY][i] = MAJORITY[i];
        c->scores[AD_SCORE_LOGPROB_MEAN][i] = LOGPROB_MEAN[i];
    }
}

static void assert_ok(AdStatus s) {
    if (s != AD_OK) ck_abort_msg("[%s] %s", ad_status_name(s), ad_errmsg());
}

static void assert_msg_has(const char *needle) {
    const char *msg = ad_errmsg();
    if (!strstr(msg, needle))
        ck_abort_msg("error message \"%s\" does not mention \"%s\"", msg, needle);
}

/* With AD_TEST_SHOW_ERRORS set, prints the messages of expected failures for review. */
static void show_error(AdStatus s) {
    if (getenv("AD_TEST_SHOW_ERRORS")) fprintf(stderr, "[%s] %s\n", ad_status_name(s), ad_errmsg());
}

static const char *scratch(const char *name) { return ad_test_path(ad_test_tmpdir(), name); }

static void create_run(AdRunLog *r, const char *path) {
    char *json = make_json();
    assert_ok(ad_runlog_create(r, path, json, CONFIG_ORIGINAL, SEED, 2, GRID, E));
    free(json);
}

/* Writes and commits `round`: round 0 without candidates and with the evaluation only
 * in the summary, later rounds with everything. */
static void write_round(AdRunLog *r, int round) {
    AdTrainRecord recs[64];
    double acc[E], loss[E];
    long n[E];
    AdRoundSummary s = make_summary(round, acc, loss, n);
    if (round > 0) {
        AdCandidates c;
        make_candidates(&c);
        assert_ok(ad_runlog_write_candidates(r, round, &c));
        ad_candidates_free(&c);
        assert_ok(ad_runlog_write_eval(r, round, GRID, acc, loss, n, E));
    }
    assert_ok(ad_runlog_write_train_curve(r, round, recs, make_curve(round, recs)));
    assert_ok(ad_runlog_commit_round(r, &s));
}

/* A run file with `rounds` committed rounds, closed. */
static const char *make_run(const char *name, int rounds) {
    const char *path = scratch(name);
    AdRunLog r;
    create_run(&r, path);
    for (int k = 0; k < rounds; k++) write_round(&r, k);
    ck_assert_int_eq(r.rounds_complete, rounds);
    ad_runlog_close(&r);
    return path;
}

/* ---- raw HDF5 readers ------------------------------------------------------------------ */

static hid_t open_ro(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) ck_abort_msg("raw H5Fopen of %s failed", path);
    return f;
}

static int has_link(hid_t loc, const char *name) {
    htri_t r = H5Lexists(loc, name, H5P_DEFAULT);
    return r > 0;
}

static int64_t attr_i64(hid_t obj, const char *name) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) ck_abort_msg("no attribute %s", name);
    hid_t t = H5Aget_type(a);
    ck_assert_int_eq(H5Tget_class(t), H5T_INTEGER);
    int64_t v = 0;
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_INT64, &v), 0);
    H5Tclose(t);
    H5Aclose(a);
    return v;
}

static double attr_f64(hid_t obj, const char *name) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) ck_abort_msg("no attribute %s", name);
    hid_t t = H5Aget_type(a);
    ck_assert_int_eq(H5Tget_class(t), H5T_FLOAT);
    double v = 0;
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_DOUBLE, &v), 0);
    H5Tclose(t);
    H5Aclose(a);
    return v;
}

/* A vlen UTF-8 string type (caller closes). */
static hid_t vlen_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static void assert_vlen_utf8(hid_t ftype, const char *name) {
    if (H5Tget_class(ftype) != H5T_STRING || H5Tis_variable_str(ftype) <= 0 ||
        H5Tget_cset(ftype) != H5T_CSET_UTF8)
        ck_abort_msg("%s is not a variable-length UTF-8 string", name);
}

/* A string attribute (malloc'd copy). */
static char *attr_str(hid_t obj, const char *name) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) ck_abort_msg("no attribute %s", name);
    hid_t ft = H5Aget_type(a), mt = vlen_utf8();
    assert_vlen_utf8(ft, name);
    char *v = NULL;
    ck_assert_int_ge(H5Aread(a, mt, &v), 0);
    char *copy = strdup(v ? v : "");
    H5free_memory(v);
    H5Tclose(mt);
    H5Tclose(ft);
    H5Aclose(a);
    return copy;
}

/* Opens dataset loc/name, asserting its file type equals want_type and its shape. */
static hid_t open_checked(hid_t loc, const char *name, hid_t want_type, int rank,
                          const hsize_t *shape) {
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) ck_abort_msg("missing dataset %s", name);
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    if (want_type >= 0 && H5Tequal(t, want_type) <= 0)
        ck_abort_msg("dataset %s has another element type", name);
    if (want_type < 0) assert_vlen_utf8(t, name);
    int r = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[8];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    if (r != rank) ck_abort_msg("dataset %s has rank %d, expected %d", name, r, rank);
    for (int i = 0; i < rank; i++)
        if (dims[i] != shape[i])
            ck_abort_msg("dataset %s dim %d is %llu, expected %llu", name, i,
                         (unsigned long long)dims[i], (unsigned long long)shape[i]);
    H5Tclose(t);
    H5Sclose(sp);
    return d;
}

/* Reads a whole numeric dataset of file type ftype and shape (n) or (n, m) as mtype. */
static void read_num(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                     hsize_t n, hsize_t m, void *out) {
    hsize_t shape[2] = {n, m};
    hid_t d = open_checked(loc, name, ftype, rank, shape);
    if (n * (rank == 2 ? m : 1) > 0) ck_assert_int_ge(H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), 0);
    H5Dclose(d);
}

static void check_i64(hid_t loc, const char *name, hsize_t n, const int64_t *want) {
    int64_t got[64];
    ck_assert_uint_le(n, 64);
    read_num(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, n, 0, got);
    for (hsize_t i = 0; i < n; i++)
        if (got[i] != want[i])
            ck_abort_msg("%s[%llu] = %lld, expected %lld", name, (unsigned long long)i,
                         (long long)got[i], (long long)want[i]);
}

/* Compares doubles bit-exactly, NaN equal to NaN. */
static void check_f64(hid_t loc, const char *name, int rank, hsize_t n, hsize_t m,
                      const double *want) {
    double got[64];
    hsize_t total = n * (rank == 2 ? m : 1);
    ck_assert_uint_le(total, 64);
    read_num(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rank, n, m, got);
    for (hsize_t i = 0; i < total; i++)
        if (!(got[i] == want[i] || (isnan(got[i]) && isnan(want[i]))))
            ck_abort_msg("%s[%llu] = %.17g, expected %.17g", name, (unsigned long long)i, got[i],
                         want[i]);
}

static void check_f32(hid_t loc, const char *name, hsize_t n, const float *want) {
    float got[64];
    read_num(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, n, 0, got);
    for (hsize_t i = 0; i < n; i++)
        if (!(got[i] == want[i] || (isnan(got[i]) && isnan(want[i]))))
            ck_abort_msg("%s[%llu] = %g, expected %g", name, (unsigned long long)i, got[i], want[i]);
}

static void check_strings(hid_t loc, const char *name, hsize_t n, const char *const *want) {
    hid_t d = open_checked(loc, name, -1, 1, &n), mt = vlen_utf8();
    char *got[64] = {0};
    ck_assert_uint_le(n, 64);
    if (n > 0) ck_assert_int_ge(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, got), 0);
    for (hsize_t i = 0; i < n; i++)
        if (strcmp(got[i] ? got[i] : "", want[i]) != 0)
            ck_abort_msg("%s[%llu] = \"%s\", expected \"%s\"", name, (unsigned long long)i,
                         got[i] ? got[i] : "(null)", want[i]);
    if (n > 0) {
        hid_t sp = H5Dget_space(d);
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, got);
        H5Sclose(sp);
    }
    H5Tclose(mt);
    H5Dclose(d);
}

static char *read_string_dataset(hid_t loc, const char *name) {
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) ck_abort_msg("missing dataset %s", name);
    hid_t ft = H5Dget_type(d), mt = vlen_utf8(), sp = H5Dget_space(d);
    assert_vlen_utf8(ft, name);
    ck_assert_int_eq(H5Sget_simple_extent_type(sp), H5S_SCALAR);
    char *v = NULL;
    ck_assert_int_ge(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v), 0);
    char *copy = strdup(v ? v : "");
    H5free_memory(v);
    H5Sclose(sp);
    H5Tclose(mt);
    H5Tclose(ft);
    H5Dclose(d);
    return copy;
}

static hsize_t n_links(hid_t loc, const char *group) {
    hid_t g = H5Gopen2(loc, group, H5P_DEFAULT);
    if (g < 0) ck_abort_msg("missing group %s", group);
    H5G_info_t info;
    ck_assert_int_ge(H5Gget_info(g, &info), 0);
    H5Gclose(g);
    return info.nlinks;
}

/* ---- checking a whole file -------------------------------------------------------------- */

static void check_summary(hid_t f, int rounds) {
    int64_t ints[11][64];
    double floats[13][64], acc[64 * E], loss[64 * E];
    for (int k = 0; k < rounds; k++) {
        double a[E], l[E];
        long n[E];
        AdRoundSummary s = make_summary(k, a, l, n);
        const int64_t iv[11] = {s.round,          s.length_lo,   s.length_hi,
                                s.n_prompts,      s.n_candidates, s.n_selected,
                                s.train_examples, s.train_steps, s.frontier_90,
                                s.n_pairs,        s.pairs_dropped};
        const double fv[13] = {s.acceptance,    s.label_accuracy, s.candidate_accuracy,
                               s.train_loss,    s.time_generate,  s.time_score,
                               s.time_train,    s.time_eval,      s.time_total,
                               s.gen_tokens_per_s, s.train_tokens_per_s, s.pair_accuracy,
                               s.time_write};
        for (int i = 0; i < 11; i++) ints[i][k] = iv[i];
        for (int i = 0; i < 13; i++) floats[i][k] = fv[i];
        for (int e = 0; e < E; e++) acc[k * E + e] = a[e], loss[k * E + e] = l[e];
    }
    const char *inames[11] = {"round",          "length_lo",   "length_hi",
                              "n_prompts",      "n_candidates", "n_selected",
                              "train_examples", "train_steps", "frontier_90",
                              "n_pairs",        "pairs_dropped"};
    const char *fnames[13] = {"acceptance", "label_accuracy", "candidate_accuracy", "train_loss",
                              "time_generate", "time_score", "time_train", "time_eval",
                              "time_total", "gen_tokens_per_s", "train_tokens_per_s",
                              "pair_accuracy", "time_write"};
    char name[64];
    for (int i = 0; i < 11; i++) {
        snprintf(name, sizeof name, "summary/%s", inames[i]);
        check_i64(f, name, (hsize_t)rounds, ints[i]);
    }
    for (int i = 0; i < 13; i++) {
        snprintf(name, sizeof name, "summary/%s", fnames[i]);
        check_f64(f, name, 1, (hsize_t)rounds, 0, floats[i]);
    }
    check_f64(f, "summary/eval_accuracy", 2, (hsize_t)rounds, E, acc);
    check_f64(f, "summary/eval_loss", 2, (hsize_t)rounds, E, loss);
    ck_assert_uint_eq(n_links(f, "summary"), 11 + 13 + 2);
}

static void check_round_group(hid_t f, int k) {
    char gname[32];
    snprintf(gname, sizeof gname, "rounds/%03d", k);
    hid_t g = H5Gopen2(f, gname, H5P_DEFAULT);
    if (g < 0) ck_abort_msg("missing group %s", gname);
    double a[E], l[E];
    long n[E];
    AdRoundSummary s = make_summary(k, a, l, n);
    /* attributes */
    ck_assert_int_eq(attr_i64(g, "round"), k);
    ck_assert_int_eq(attr_i64(g, "length_lo"), s.length_lo);
    ck_assert_int_eq(attr_i64(g, "length_hi"), s.length_hi);
    ck_assert_int_eq(attr_i64(g, "n_selected"), s.n_selected);
    char *teacher = attr_str(g, "teacher");
    ck_assert_str_eq(teacher, k ? "self" : "none");
    free(teacher);
    double la = attr_f64(g, "label_accuracy");
    ck_assert(la == s.label_accuracy || (isnan(la) && isnan(s.label_accuracy)));
    ck_assert(attr_f64(g, "time_generate") == s.time_generate);
    ck_assert(attr_f64(g, "time_score") == s.time_score);
    ck_assert(attr_f64(g, "time_train") == s.time_train);
    ck_assert(attr_f64(g, "time_eval") == s.time_eval);
    ck_assert(attr_f64(g, "time_total") == s.time_total);
    ck_assert(attr_f64(g, "time_write") == s.time_write);
    /* candidates */
    hsize_t p = k ? 2 : 0, c = k ? 6 : 0;
    check_strings(g, "prompts", p, PROMPTS);
    const int64_t plen[2] = {PROMPT_LEN[0], PROMPT_LEN[1]};
    check_i64(g, "prompt_length", p, plen);
    check_strings(g, "candidates", c, ANSWERS);
    const int64_t cprompt[6] = {0, 0, 0, 1, 1, 1}, csample[6] = {0, 1, 2, 0, 1, 2};
    check_i64(g, "candidate_prompt", c, cprompt);
    check_i64(g, "candidate_sample", c, csample);
    uint8_t u8[6];
    int8_t i8[6];
    read_num(g, "candidate_ended", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, c, 0, u8);
    for (hsize_t i = 0; i < c; i++) ck_assert_int_eq(u8[i], ENDED[i]);
    read_num(g, "selected", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, c, 0, u8);
    for (hsize_t i = 0; i < c; i++) ck_assert_int_eq(u8[i], SELECTED[i]);
    read_num(g, "correct", H5T_STD_I8LE, H5T_NATIVE_INT8, 1, c, 0, i8);
    for (hsize_t i = 0; i < c; i++) ck_assert_int_eq(i8[i], CORRECT[i]);
    if (k) {
        ck_assert_uint_eq(n_links(g, "scores"), 3); /* the all-NaN scorers are left out */
        check_f32(g, "scores/verifier", c, VERIFIER);
        check_f32(g, "scores/majority", c, MAJORITY);
        check_f32(g, "scores/logprob_mean", c, LOGPROB_MEAN);
    } else {
        ck_assert_uint_eq(n_links(g, "scores"), 0);
    }
    /* training curve */
    AdTrainRecord recs[64];
    long nr = make_curve(k, recs);
    int64_t step[64];
    double loss[64], lr[64], gn[64], tps[64];
    for (long i = 0; i < nr; i++) {
        step[i] = recs[i].step, loss[i] = recs[i].loss, lr[i] = recs[i].lr;
        gn[i] = recs[i].grad_norm, tps[i] = recs[i].tokens_per_s;
    }
    check_i64(g, "train/step", (hsize_t)nr, step);
    check_f64(g, "train/loss", 1, (hsize_t)nr, 0, loss);
    check_f64(g, "train/lr", 1, (hsize_t)nr, 0, lr);
    check_f64(g, "train/grad_norm", 1, (hsize_t)nr, 0, gn);
    check_f64(g, "train/tokens_per_s", 1, (hsize_t)nr, 0, tps);
    ck_assert_uint_eq(n_links(g, "train"), 5);
    /* evaluation */
    const int64_t grid[E] = {GRID[0], GRID[1], GRID[2]};
    int64_t en[E];
    for (int e = 0; e < E; e++) en[e] = n[e];
    check_i64(g, "eval/length", E, grid);
    check_f64(g, "eval/accuracy", 1, E, 0, a);
    check_f64(g, "eval/loss", 1, E, 0, l);
    check_i64(g, "eval/n", E, en);
    ck_assert_uint_eq(n_links(g, "eval"), 4);
    /* nothing beyond the documented datasets */
    ck_assert_uint_eq(n_links(f, gname), 11);
    H5Gclose(g);
}

/* Checks the whole file at path: root, summary and every round group. */
static void check_file(const char *path, int rounds) {
    hid_t f = open_ro(path);
    char *fmt = attr_str(f, "format");
    ck_assert_str_eq(fmt, "autodidact-run");
    free(fmt);
    ck_assert_int_eq(attr_i64(f, "format_version"), 1);
    ck_assert_int_eq(attr_i64(f, "rounds_complete"), rounds);
    ck_assert_int_eq(attr_i64(f, "threads"), 2);
    uint64_t seed = 0;
    hid_t a = H5Aopen(f, "seed", H5P_DEFAULT);
    ck_assert_int_ge(a, 0);
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_UINT64, &seed), 0);
    H5Aclose(a);
    ck_assert(seed == SEED);
    char *json = make_json(), *config = read_string_dataset(f, "config");
    ck_assert_str_eq(config, json);
    free(json);
    free(config);
    char *orig = read_string_dataset(f, "config_original");
    ck_assert_str_eq(orig, CONFIG_ORIGINAL);
    free(orig);
    const int64_t grid[E] = {GRID[0], GRID[1], GRID[2]};
    check_i64(f, "eval_lengths", E, grid);
    check_summary(f, rounds);
    ck_assert_uint_eq(n_links(f, "rounds"), (hsize_t)rounds);
    for (int k = 0; k < rounds; k++) check_round_group(f, k);
    ck_assert_int_ge(H5Fclose(f), 0);
}

/* ---- layout -------------------------------------------------------------------------- */

START_TEST(test_layout) {
    const char *path = scratch("layout.h5");
    AdRunLog r;
    create_run(&r, path);
    ck_assert_int_ne(access(path, F_OK), 0); /* nothing on disk before the first commit */
    ck_assert_int_eq(r.n_eval, E);
    ck_assert_int_eq(r.rounds_complete, 0);
    write_round(&r, 0);
    ck_assert_int_eq(r.rounds_complete, 1);
    write_round(&r, 1);
    ck_assert_int_eq(r.rounds_complete, 2);
    ad_runlog_close(&r);
    ad_runlog_close(&r); /* twice is harmless */
    check_file(path, 2);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0);
}
END_TEST

START_TEST(test_root_metadata) {
    const char *path = make_run("root.h5", 1);
    hid_t f = open_ro(path);
    char *v = attr_str(f, "program_version");
    ck_assert_str_eq(v, AD_VERSION_STRING);
    free(v);
    v = attr_str(f, "git_commit");
    ck_assert_int_gt(strlen(v), 0);
    free(v);
    v = attr_str(f, "blas");
    ck_assert_str_eq(v, ad_blas_info());
    free(v);
    /* start_time: ISO-8601 UTC ("YYYY-MM-DDTHH:MM:SSZ"), within a few minutes before now;
     * such strings sort in time order */
    v = attr_str(f, "start_time");
    ck_assert_uint_eq(strlen(v), 20);
    int fields[6];
    char z = 0;
    ck_assert_int_eq(sscanf(v, "%4d-%2d-%2dT%2d:%2d:%2d%c", &fields[0], &fields[1], &fields[2],
                            &fields[3], &fields[4], &fields[5], &z), 7);
    ck_assert_int_eq(z, 'Z');
    char lo[32], hi[32];
    time_t now = time(NULL), before = now - 300;
    struct tm tm;
    strftime(lo, sizeof lo, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&before, &tm));
    strftime(hi, sizeof hi, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    if (strcmp(v, lo) < 0 || strcmp(v, hi) > 0)
        ck_abort_msg("start_time %s is not between %s and %s", v, lo, hi);
    free(v);
    /* cpu: the first "model name" of /proc/cpuinfo, found here with another parser */
    char want[512] = "unknown", line[512];
    FILE *fp = fopen("/proc/cpuinfo", "r");
    while (fp && fgets(line, sizeof line, fp))
        if (sscanf(line, "model name : %511[^\n]", want) == 1) break;
    if (fp) fclose(fp);
    v = attr_str(f, "cpu");
    ck_assert_str_eq(v, want);
    free(v);
    ck_assert_int_ge(H5Fclose(f), 0);
    /* read_config gives back the resolved config */
    char *json = make_json(), *got = NULL;
    assert_ok(ad_runlog_read_config(path, &got));
    ck_assert_str_eq(got, json);
    free(got);
    free(json);
}
END_TEST

/* The file on disk holds exactly the committed rounds while the next is prepared. */
START_TEST(test_disk_file_complete_between_rounds) {
    const char *path = scratch("between.h5");
    AdRunLog r;
    create_run(&r, path);
    write_round(&r, 0);
    AdCandidates c;
    make_candidates(&c);
    assert_ok(ad_runlog_write_candidates(&r, 1, &c));
    ad_candidates_free(&c);
    AdTrainRecord recs[8];
    assert_ok(ad_runlog_write_train_curve(&r, 1, recs, make_curve(1, recs)));
    check_file(path, 1); /* no /rounds/001 on disk yet */
    char *config = NULL;
    assert_ok(ad_runlog_read_config(path, &config));
    free(config);
    double acc[E], loss[E];
    long n[E];
    AdRoundSummary s = make_summary(1, acc, loss, n);
    assert_ok(ad_runlog_write_eval(&r, 1, GRID, acc, loss, n, E));
    assert_ok(ad_runlog_commit_round(&r, &s));
    check_file(path, 2);
    ad_runlog_close(&r);
}
END_TEST

/* ---- resume -------------------------------------------------------------------------- */

START_TEST(test_resume) {
    const char *path = make_run("resume.h5", 2);
    AdRunLog r;
    assert_ok(ad_runlog_open(&r, path));
    ck_assert_int_eq(r.rounds_complete, 2);
    ck_assert_int_eq(r.n_eval, E);
    ck_assert_str_eq(r.path, path);
    write_round(&r, 2);
    ck_assert_int_eq(r.rounds_complete, 3);
    ad_runlog_close(&r);
    check_file(path, 3);
    /* and once more, from the file just written */
    assert_ok(ad_runlog_open(&r, path));
    ck_assert_int_eq(r.rounds_complete, 3);
    write_round(&r, 3);
    ad_runlog_close(&r);
    check_file(path, 4);
}
END_TEST

/* A file written before the preference and write-time columns existed: resume adds them, 0
 * pairs and NaN pair accuracy and write time for its rounds, and the next round's row follows. */
START_TEST(test_resume_adds_pair_columns) {
    const char *path = make_run("old_format.h5", 2);
    hid_t f;
    assert_ok(ad_h5_open(path, 1, &f));
    const char *later[] = {"summary/n_pairs", "summary/pairs_dropped", "summary/pair_accuracy",
                           "summary/time_write"};
    for (int i = 0; i < 4; i++) ck_assert_int_ge(H5Ldelete(f, later[i], H5P_DEFAULT), 0);
    ad_h5_close_file(f);
    /* read-only, such a file passes the check and reports (with "-" for the missing times) */
    assert_ok(ad_runlog_check(path, NULL));
    FILE *out = tmpfile();
    ck_assert_ptr_nonnull(out);
    assert_ok(ad_run_report(path, out));
    long len = ftell(out);
    char text[8192] = {0};
    rewind(out);
    ck_assert(fread(text, 1, sizeof text - 1, out) > 0 && len > 0);
    fclose(out);
    ck_assert_msg(strstr(text, "seconds per phase") && strstr(text, "        -"), "%s", text);
    AdRunLog r;
    assert_ok(ad_runlog_open(&r, path));
    write_round(&r, 2);
    ad_runlog_close(&r);
    assert_ok(ad_h5_open(path, 0, &f));
    const int64_t np[3] = {0, 0, 14}, nd[3] = {0, 0, 2};
    const double pa[3] = {NAN, NAN, 0.75};
    check_i64(f, "summary/n_pairs", 3, np);
    check_i64(f, "summary/pairs_dropped", 3, nd);
    check_f64(f, "summary/pair_accuracy", 1, 3, 0, pa);
    const double tw[3] = {NAN, NAN, 2.125};
    check_f64(f, "summary/time_write", 1, 3, 0, tw);
    ad_h5_close_quietly(f);
}
END_TEST

/* The pairs and the preference curve land under TRL's names, and once per round only. */
START_TEST(test_pairs_layout) {
    const char *path = make_run("pairs.h5", 1);
    AdRunLog r;
    assert_ok(ad_runlog_open(&r, path));
    char *prompt[2] = {"1+2=", "3+4="}, *chosen[2] = {"3", "7"}, *rejected[2] = {"4", "8"};
    const double sc[2] = {1, 0.5}, sr[2] = {0, 0.25}, rc[2] = {-1.5, -2}, rr[2] = {-3, -4};
    const int cc[2] = {1, 1}, cr[2] = {0, -1}, tc[2] = {2, 2}, tr[2] = {2, 3};
    AdPairLog p = {2, prompt, chosen, rejected, sc, sr, cc, cr, rc, rr, tc, tr};
    AdPrefRecord curve[3];
    for (int i = 0; i < 3; i++)
        curve[i] = (AdPrefRecord){i + 1, 0.7 - 0.1 * i, 0.1 * i, -0.1 * i, 0.2 * i, 0.5, -1.0 - i, -2.0 - i};
    assert_ok(ad_runlog_write_pairs(&r, 1, &p, curve, 3));
    ck_assert_int_eq(ad_runlog_write_pairs(&r, 1, &p, curve, 3), AD_ERR_ARG);
    write_round(&r, 1);
    ad_runlog_close(&r);
    hid_t f;
    assert_ok(ad_h5_open(path, 0, &f));
    const int64_t want_cr[2] = {0, -1}, want_tr[2] = {2, 3}, steps[3] = {1, 2, 3};
    check_i64(f, "rounds/001/pairs/rejected_correct", 2, want_cr);
    check_i64(f, "rounds/001/pairs/rejected_tokens", 2, want_tr);
    check_f64(f, "rounds/001/pairs/ref_logp_rejected", 1, 2, 0, rr);
    check_i64(f, "rounds/001/preference/step", 3, steps);
    const double margins[3] = {0, 0.2, 0.4}, lr[3] = {-2, -3, -4};
    check_f64(f, "rounds/001/preference/rewards/margins", 1, 3, 0, margins);
    check_f64(f, "rounds/001/preference/logps/rejected", 1, 3, 0, lr);
    ad_h5_close_quietly(f);
}
END_TEST

/* Appends one row holding `v` to the 1-D int64 table name of f (raw calls). */
static void raw_append_i64(hid_t f, const char *name, int64_t v) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    hid_t sp = H5Dget_space(d);
    hsize_t n;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    H5Sclose(sp);
    hsize_t grown = n + 1, one = 1;
    ck_assert_int_ge(H5Dset_extent(d, &grown), 0);
    sp = H5Dget_space(d);
    hid_t ms = H5Screate_simple(1, &one, NULL);
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, &n, NULL, &one, NULL);
    ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_INT64, ms, sp, H5P_DEFAULT, &v), 0);
    H5Sclose(ms);
    H5Sclose(sp);
    H5Dclose(d);
}

/* A file with an incomplete /rounds/002 and a third summary row, rounds_complete 2:
 * both are dropped on open, and round 2 is written afresh. */
START_TEST(test_resume_drops_uncommitted) {
    const char *path = make_run("partial.h5", 2);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t g = H5Gcreate2(f, "rounds/002", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(g, 0);
    hsize_t three = 3;
    const int64_t junk[3] = {7, 7, 7};
    ck_assert_int_eq(ad_h5_write_array(g, "junk", AD_H5_I64, 1, &three, junk), AD_OK);
    H5Gclose(g);
    raw_append_i64(f, "summary/round", 99);
    raw_append_i64(f, "summary/n_prompts", 99);
    ck_assert_int_ge(H5Fclose(f), 0);

    AdRunLog r;
    assert_ok(ad_runlog_open(&r, path));
    ck_assert_int_eq(r.rounds_complete, 2);
    ck_assert(!has_link(r.file, "rounds/002"));
    ck_assert(has_link(r.file, "rounds/001"));
    const int64_t rounds[2] = {0, 1};
    check_i64(r.file, "summary/round", 2, rounds);
    write_round(&r, 2);
    ad_runlog_close(&r);
    check_file(path, 3); /* counts every link of /rounds/002: "junk" is gone */
}
END_TEST

/* A run without an evaluation grid (E = 0, e.g. a text corpus): the (R, E) tables have
 * no columns but one row a round, and the file resumes like any other. */
START_TEST(test_no_eval_grid) {
    const char *path = scratch("no_eval.h5");
    AdRunLog r;
    assert_ok(ad_runlog_create(&r, path, "{}", NULL, 7, 1, NULL, 0));
    ck_assert_int_eq(r.n_eval, 0);
    AdRoundSummary s;
    memset(&s, 0, sizeof s);
    for (int k = 0; k < 2; k++) {
        s.round = k;
        assert_ok(ad_runlog_commit_round(&r, &s));
    }
    ad_runlog_close(&r);
    assert_ok(ad_runlog_open(&r, path));
    ck_assert_int_eq(r.rounds_complete, 2);
    ck_assert_int_eq(r.n_eval, 0);
    s.round = 2;
    assert_ok(ad_runlog_commit_round(&r, &s));
    ad_runlog_close(&r);
    hid_t f = open_ro(path);
    hsize_t zero = 0, three_by_zero[2] = {3, 0};
    H5Dclose(open_checked(f, "eval_lengths", H5T_STD_I64LE, 1, &zero));
    H5Dclose(open_checked(f, "summary/eval_accuracy", H5T_IEEE_F64LE, 2, three_by_zero));
    H5Dclose(open_checked(f, "summary/eval_loss", H5T_IEEE_F64LE, 2, three_by_zero));
    H5Dclose(open_checked(f, "rounds/002/eval/accuracy", H5T_IEEE_F64LE, 1, &zero));
    const int64_t rounds[3] = {0, 1, 2};
    check_i64(f, "summary/round", 3, rounds);
    H5Fclose(f);
}
END_TEST

/* ---- foreign files --------------------------------------------------------------------- */

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
}

/* A plain HDF5 file with the given root attributes (format NULL: none). */
static void write_foreign(const char *path, const char *format, int64_t version) {
    hid_t f;
    ck_assert_int_eq(ad_h5_create(path, &f), AD_OK);
    if (format) ck_assert_int_eq(ad_h5_attr_write_str(f, "format", format), AD_OK);
    if (version) ck_assert_int_eq(ad_h5_attr_write_i64(f, "format_version", version), AD_OK);
    ck_assert_int_eq(ad_h5_attr_write_i64(f, "rounds_complete", 0), AD_OK);
    ck_assert_int_eq(ad_h5_close_file(f), AD_OK);
}

/* Both readers refuse path with status want and a message naming path and `about`. */
static void expect_refused(const char *path, AdStatus want, const char *about) {
    AdRunLog r;
    memset(&r, 0x5a, sizeof r);
    AdStatus s = ad_runlog_open(&r, path);
    show_error(s);
    if (s != want)
        ck_abort_msg("opening %s: status %s, expected %s (%s)", path, ad_status_name(s),
                     ad_status_name(want), ad_errmsg());
    assert_msg_has(path);
    if (about) assert_msg_has(about);
    ck_assert_int_le(r.file, 0);
    ad_runlog_close(&r); /* safe after a failed open */
    char *config = (char *)1;
    s = ad_runlog_read_config(path, &config);
    show_error(s);
    ck_assert_int_eq(s, want);
    ck_assert_ptr_null(config);
    assert_msg_has(path);
    if (about) assert_msg_has(about);
}

START_TEST(test_foreign_files) {
    expect_refused(scratch("missing.h5"), AD_ERR_IO, "No such file");
    const char *text = scratch("text.h5");
    write_text(text, "this is not an HDF5 file, although its name says so\n");
    expect_refused(text, AD_ERR_FORMAT, "not a readable HDF5 file");
    const char *empty = scratch("empty.h5");
    write_text(empty, "");
    expect_refused(empty, AD_ERR_FORMAT, NULL);
    const char *plain = scratch("plain.h5");
    write_foreign(plain, NULL, 0);
    expect_refused(plain, AD_ERR_FORMAT, "no root attribute \"format\"");
    const char *ckpt = scratch("ckpt.h5");
    write_foreign(ckpt, "autodidact-checkpoint", 1);
    expect_refused(ckpt, AD_ERR_FORMAT, "autodidact-checkpoint");
    const char *newer = scratch("newer.h5");
    write_foreign(newer, AD_RUN_FORMAT, AD_RUN_VERSION + 1);
    expect_refused(newer, AD_ERR_FORMAT, "use a newer autodidact");
    const char *zero = scratch("zero.h5");
    write_foreign(zero, AD_RUN_FORMAT, -3);
    expect_refused(zero, AD_ERR_FORMAT, "invalid format_version");
    /* a run file cut short */
    const char *whole = make_run("whole.h5", 2), *cut = scratch("cut.h5");
    FILE *in = fopen(whole, "rb"), *out = fopen(cut, "wb");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
    AdRunLog r;
    AdStatus s = ad_runlog_open(&r, cut);
    show_error(s);
    ck_assert_int_eq(s, AD_ERR_FORMAT);
    assert_msg_has(cut);
    /* a directory */
    expect_refused(ad_test_tmpdir(), AD_ERR_IO, "not a regular file");
}
END_TEST

/* ---- misuse ---------------------------------------------------------------------------- */

START_TEST(test_misuse) {
    const char *path = scratch("misuse.h5");
    AdRunLog r;
    memset(&r, 0, sizeof r);
    ad_runlog_close(&r); /* zeroed: harmless */
    double acc[E], loss[E];
    long n[E];
    AdRoundSummary s = make_summary(0, acc, loss, n);
    ck_assert_int_eq(ad_runlog_commit_round(&r, &s), AD_ERR_ARG); /* not open */
    ck_assert_int_eq(ad_runlog_create(&r, path, "{}", NULL, 1, 1, GRID, -1), AD_ERR_ARG);
    ck_assert_int_eq(ad_runlog_create(&r, path, "{}", NULL, 1, 1, NULL, E), AD_ERR_ARG);
    ck_assert_int_eq(ad_runlog_create(&r, path, NULL, NULL, 1, 1, GRID, E), AD_ERR_ARG);
    ck_assert_int_eq(ad_runlog_create(&r, "", "{}", NULL, 1, 1, GRID, E), AD_ERR_ARG);
    assert_ok(ad_runlog_create(&r, path, "{}", NULL, 1, 1, GRID, E));
    AdTrainRecord recs[8];
    long nr = make_curve(0, recs);
    /* only the round being prepared */
    ck_assert_int_eq(ad_runlog_write_train_curve(&r, 1, recs, nr), AD_ERR_ARG);
    assert_msg_has("round 1");
    assert_ok(ad_runlog_write_train_curve(&r, 0, recs, nr));
    ck_assert_int_eq(ad_runlog_write_train_curve(&r, 0, recs, nr), AD_ERR_ARG); /* twice */
    assert_msg_has("already");
    /* the evaluation must use the run's grid */
    const int other[E] = {3, 6, 8};
    ck_assert_int_eq(ad_runlog_write_eval(&r, 0, other, acc, loss, n, E), AD_ERR_ARG);
    ck_assert_int_eq(ad_runlog_write_eval(&r, 0, GRID, acc, loss, n, E - 1), AD_ERR_ARG);
    /* an inconsistent candidate table */
    AdCandidates c;
    make_candidates(&c);
    c.n = 5;
    ck_assert_int_eq(ad_runlog_write_candidates(&r, 0, &c), AD_ERR_ARG);
    c.n = 6;
    ad_candidates_free(&c);
    s.round = 1;
    ck_assert_int_eq(ad_runlog_commit_round(&r, &s), AD_ERR_ARG);
    ck_assert_int_ne(access(path, F_OK), 0);
    s.round = 0;
    assert_ok(ad_runlog_commit_round(&r, &s));
    ck_assert_int_eq(ad_runlog_write_train_curve(&r, 0, recs, nr), AD_ERR_ARG); /* committed */
    ad_runlog_close(&r);
    ck_assert_int_eq(ad_runlog_write_train_curve(&r, 1, recs, nr), AD_ERR_ARG); /* closed */
}
END_TEST

/* ---- failed commits keep the previous file --------------------------------------------- */

START_TEST(test_failed_commit_tmp_is_dir) {
    const char *path = scratch("keep_dir.h5");
    AdRunLog r;
    create_run(&r, path);
    write_round(&r, 0);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_eq(mkdir(tmp, 0755), 0);
    AdCandidates c;
    make_candidates(&c);
    assert_ok(ad_runlog_write_candidates(&r, 1, &c));
    ad_candidates_free(&c);
    double acc[E], loss[E];
    long n[E];
    AdRoundSummary s = make_summary(1, acc, loss, n);
    assert_ok(ad_runlog_write_eval(&r, 1, GRID, acc, loss, n, E));
    AdTrainRecord recs[8];
    assert_ok(ad_runlog_write_train_curve(&r, 1, recs, make_curve(1, recs)));
    AdStatus st = ad_runlog_commit_round(&r, &s);
    show_error(st);
    ck_assert_int_eq(st, AD_ERR_IO);
    assert_msg_has(path);
    assert_msg_has(tmp);
    ck_assert_int_eq(r.rounds_complete, 1);
    struct stat sb;
    ck_assert_int_eq(stat(tmp, &sb), 0); /* someone else's directory is left alone */
    ck_assert(S_ISDIR(sb.st_mode));
    check_file(path, 1);
    /* with the obstacle gone the same round commits, with one summary row */
    ck_assert_int_eq(rmdir(tmp), 0);
    assert_ok(ad_runlog_commit_round(&r, &s));
    ck_assert_int_eq(r.rounds_complete, 2);
    ad_runlog_close(&r);
    check_file(path, 2);
}
END_TEST

START_TEST(test_failed_commit_disk_full) {
    /* Runs in Check's forked child: the file-size limit stays in this process. */
    const char *path = scratch("keep_full.h5");
    AdRunLog r;
    create_run(&r, path);
    write_round(&r, 0);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    /* a round big enough that its file cannot fit the old file's size */
    AdCandidates c;
    ck_assert_int_eq(ad_candidates_init(&c, 300, 4), AD_OK);
    char text[128];
    for (long i = 0; i < c.n; i++) {
        snprintf(text, sizeof text, "%ld: answer text long enough to take some room in the file", i);
        ck_assert_int_eq(ad_candidates_set_answer(&c, i, text, 1), AD_OK);
        c.scores[AD_SCORE_LENGTH][i] = 1;
    }
    assert_ok(ad_runlog_write_candidates(&r, 1, &c));
    ad_candidates_free(&c);
    double acc[E], loss[E];
    long n[E];
    AdRoundSummary s = make_summary(1, acc, loss, n);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)sb.st_size;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    AdStatus st = ad_runlog_commit_round(&r, &s);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    show_error(st);
    ck_assert_int_eq(st, AD_ERR_IO);
    assert_msg_has(path);
    ck_assert_int_eq(r.rounds_complete, 1);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0); /* the partial file is gone */
    check_file(path, 1);
    /* a second log of the same file, opened while the first is open, is independent:
     * dropping its uncommitted /rounds/001 must not touch the first one's */
    AdRunLog back;
    assert_ok(ad_runlog_open(&back, path));
    ck_assert_int_eq(back.rounds_complete, 1);
    ad_runlog_close(&back);
    /* room again: the round commits */
    assert_ok(ad_runlog_commit_round(&r, &s));
    ad_runlog_close(&r);
    hid_t f = open_ro(path);
    ck_assert_int_eq(attr_i64(f, "rounds_complete"), 2);
    const int64_t rounds[2] = {0, 1};
    check_i64(f, "summary/round", 2, rounds);
    ck_assert_uint_eq(n_links(f, "rounds/001/scores"), 1);
    H5Fclose(f);
}
END_TEST

/* ---- the h5py contract --------------------------------------------------------------- */

static const char H5PY_SCRIPT[] =
    "import json, sys\n"
    "import h5py\n"
    "f = h5py.File(sys.argv[1], 'r')\n"
    "a = f.attrs\n"
    "for k in ('format', 'program_version', 'git_commit', 'start_time', 'blas', 'cpu'):\n"
    "    assert isinstance(a[k], str), (k, type(a[k]))\n"
    "assert a['format'] == 'autodidact-run'\n"
    "assert int(a['format_version']) == 1 and int(a['rounds_complete']) == 2\n"
    "assert int(a['seed']) == 0xF123456789ABCDEF and int(a['threads']) == 2\n"
    "cfg = json.loads(f['config'].asstr()[()])\n"
    "assert cfg['note'] == 'gr\\u00fc\\u00df \\u2713', cfg['note']\n"
    "assert f['config_original'].asstr()[()].startswith('{\"name\": \"t\"}')\n"
    "assert f['eval_lengths'][:].tolist() == [3, 5, 8]\n"
    "s = f['summary']\n"
    "assert s['round'][:].tolist() == [0, 1]\n"
    "assert s['eval_accuracy'].shape == (2, 3) and s['eval_loss'].shape == (2, 3)\n"
    "assert s['eval_accuracy'].maxshape == (None, 3) and s['round'].maxshape == (None,)\n"
    "assert abs(s['eval_accuracy'][1, 2] - (1 - 0.25 + 0.0625)) < 1e-12\n"
    "r0, r1 = f['rounds/000'], f['rounds/001']\n"
    "assert r0['candidates'].shape == (0,) and r0['prompts'].shape == (0,)\n"
    "assert len(r0['scores']) == 0 and r0.attrs['teacher'] == 'none'\n"
    "assert r1.attrs['teacher'] == 'self' and int(r1.attrs['n_selected']) == 3\n"
    "assert r1['prompts'].asstr()[:].tolist() == ['12+34=', 'gr\\u00fc\\u00df 5+6=']\n"
    "assert r1['candidates'].asstr()[:].tolist() == ['46', '47', '', '11', '11', '\\u00fc1']\n"
    "assert r1['candidate_prompt'][:].tolist() == [0, 0, 0, 1, 1, 1]\n"
    "assert sorted(r1['scores']) == ['logprob_mean', 'majority', 'verifier']\n"
    "assert r1['scores/verifier'].dtype == 'float32'\n"
    "assert r1['correct'].dtype == 'int8' and r1['correct'][:].tolist() == [1, 0, -1, 1, 1, 0]\n"
    "assert r1['selected'].dtype == 'uint8' and r1['candidate_ended'].dtype == 'uint8'\n"
    "assert r1['train/step'][:].tolist() == [1, 2, 3]\n"
    "assert r1['eval/n'][:].tolist() == [101, 111, 121]\n"
    "print('h5py reads the run file as documented')\n";

START_TEST(test_h5py_contract) {
    if (system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") != 0) {
        printf("test_h5py_contract skipped: /usr/bin/python3 with h5py is not available\n");
        return;
    }
    const char *path = make_run("h5py.h5", 2);
    const char *script = scratch("check_runfile.py");
    write_text(script, H5PY_SCRIPT);
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", script, path);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *runlog_suite(void) {
    Suite *s = suite_create("runlog");
    TCase *tc = tcase_create("layout");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_root_metadata);
    tcase_add_test(tc, test_disk_file_complete_between_rounds);
    tcase_add_test(tc, test_h5py_contract);
    suite_add_tcase(s, tc);
    tc = tcase_create("resume");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_resume);
    tcase_add_test(tc, test_resume_drops_uncommitted);
    tcase_add_test(tc, test_resume_adds_pair_columns);
    tcase_add_test(tc, test_pairs_layout);
    tcase_add_test(tc, test_no_eval_grid);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_foreign_files);
    tcase_add_test(tc, test_misuse);
    tcase_add_test(tc, test_failed_commit_tmp_is_dir);
    tcase_add_test(tc, test_failed_commit_disk_full);
    suite_add_tcase(s, tc);
    return s;
}

/* Removes the files of the scratch directory and the directory itself. */
static void remove_scratch(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(ad_test_path(dir, e->d_name));
    closedir(d);
    rmdir(dir);
}

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the tests' own raw calls probe for absence */
    const char *dir = ad_test_tmpdir();    /* made here, so every forked test shares it */
    int rc = ad_test_run(runlog_suite());
    if (rc == 0) remove_scratch(dir);      /* kept for inspection when something failed */
    return rc;
}

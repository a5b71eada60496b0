/* runlog.c: the HDF5 run file of `autodidact run` (layout in docs/RUNFILE.md): root
 * metadata, one summary row and one /rounds/NNN group per finished round. The file lives in
 * memory (HDF5 core driver) for the whole run and its image is written atomically after
 * every round, so HDF5 itself never writes to disk. It decides nothing about the run. */
#include "autodidact/runlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "autodidact/dist.h"
#include "h5util.h"


/* Bounds on what is read from a file, checked before anything is allocated. */
#define RUN_MAX_FILE_BYTES ((int64_t)16 << 30)   /* a run file read for resuming */
#define RUN_MAX_ROUNDS 1000000                   /* rounds_complete */
#define RUN_MAX_EVAL (1 << 20)                   /* evaluation grid size E */
#define RUN_MAX_NAME 256                         /* short string attributes */
#define RUN_MAX_CONFIG_JSON ((size_t)64 << 20)   /* the resolved config text */

enum {
    SUMMARY_CHUNK_ROWS = 64,  /* rows per chunk of a summary table */
    MEM_NAME_LEN = sizeof(((AdRunLog *)0)->path) + 16,
    ROUND_NAME_LEN = 32
};

/* The /summary columns, in AdRoundSummary's order. */
static const char *const INT_COLS[] = {"round",          "length_lo",   "length_hi",
                                       "n_prompts",      "n_candidates", "n_selected",
                                       "train_examples", "train_steps", "frontier_90",
                                       "n_pairs",        "pairs_dropped"};
static const char *const FLOAT_COLS[] = {
    "acceptance", "label_accuracy", "candidate_accuracy", "train_loss",
    "time_generate", "time_score", "time_train", "time_eval", "time_total",
    "gen_tokens_per_s", "train_tokens_per_s", "pair_accuracy", "time_write"};
static const char *const EVAL_COLS[] = {"eval_accuracy", "eval_loss"}; /* (R, E) */
enum {
    N_INT_COLS = sizeof INT_COLS / sizeof INT_COLS[0],
    N_FLOAT_COLS = sizeof FLOAT_COLS / sizeof FLOAT_COLS[0],
    N_EVAL_COLS = sizeof EVAL_COLS / sizeof EVAL_COLS[0],
    FIRST_TIME_COL = 4, /* FLOAT_COLS[4..8] are the timings, also round attributes */
    N_TIME_COLS = 5,
    FIRST_LATER_INT = 9,   /* INT_COLS[9..]: columns added after format version 1 first */
    FIRST_LATER_FLOAT = 11 /* shipped, which older run files lack (added on open) */
};

/* ================================================================ small helpers */

static void round_name(int round, char *out) { snprintf(out, ROUND_NAME_LEN, "rounds/%03d", round); }

/* The name the in-memory file of `path` carries in HDF5's messages: "<path> (in memory)",
 * numbered from the second in-memory file of the process on. It must differ from the name
 * of every HDF5 file open in the process (the core driver would hand back that file instead
 * of a new one), which a process-wide count guarantees without asking HDF5 about its open
 * files (a file HDF5 failed to close after reading a damaged image can crash such a
 * query), and must not name a file on disk (the core driver refuses to open an image under
 * such a name). HDF5 runs on one thread at a time (PITFALLS.md), and so does this. */
static AdStatus mem_name(const char *path, char *out) {
    static unsigned long count = 0;
    for (int tries = 0; tries < 1000; tries++) {
        unsigned long k = ++count;
        if (k == 1) snprintf(out, MEM_NAME_LEN, "%s (in memory)", path);
        else snprintf(out, MEM_NAME_LEN, "%s (in memory %lu)", path, k);
        if (access(out, F_OK) != 0) return AD_OK;
    }
    return ad_fail(AD_ERR_ARG, "%s: a thousand files on disk are named like its in-memory image", path);
}

static AdStatus check_path(const char *path, const char *what) {
    if (!path || !path[0]) return ad_fail(AD_ERR_ARG, "%s: empty path", what);
    if (strlen(path) >= sizeof(((AdRunLog *)0)->path))
        return ad_fail(AD_ERR_ARG, "%s: path %.64s... is longer than %zu bytes", what, path,
                       sizeof(((AdRunLog *)0)->path) - 1);
    return AD_OK;
}

static AdStatus check_open(const AdRunLog *r, const char *what) {
    if (!r || r->file <= 0) return ad_fail(AD_ERR_ARG, "%s: the run log is not open", what);
    return AD_OK;
}

/* Ends ad_runlog_create or ad_runlog_open: r takes the in-memory file f, or, if s
 * carries an error, f is closed and the message says what was being done. */
static AdStatus adopt_file(AdRunLog *r, hid_t f, const char *path, int n_eval, int rounds,
                           AdStatus s, const char *doing) {
    if (s != AD_OK) {
        ad_h5_close_quietly(f);
        return ad_fail_context(s, "%s run file %s", doing, path);
    }
    r->file = f;
    snprintf(r->path, sizeof r->path, "%s", path);
    r->n_eval = n_eval;
    r->rounds_complete = rounds;
    return AD_OK;
}

/* Per-round writers only accept the round being prepared (= rounds_complete). */
static AdStatus check_round(const AdRunLog *r, int round, const char *what) {
    AdStatus s = check_open(r, what);
    if (s != AD_OK) return s;
    if (round != r->rounds_complete)
        return ad_fail(AD_ERR_ARG, "%s %s: round %d given, but the round being written is %d",
                       r->path, what, round, r->rounds_complete);
    return AD_OK;
}

/* Opens /rounds/NNN of the round being prepared, creating it if needed. */
static AdStatus round_group(AdRunLog *r, int round, hid_t *g) {
    char name[ROUND_NAME_LEN];
    round_name(round, name);
    int has;
    AdStatus s = ad_h5_exists(r->file, name, &has);
    if (s != AD_OK) return s;
    return has ? ad_h5_group_open(r->file, name, g) : ad_h5_group_create(r->file, name, g);
}

/* AD_ERR_ARG if the round group already holds `name` (each writer runs once a round). */
static AdStatus refuse_rewrite(const AdRunLog *r, hid_t g, int round, const char *name,
                               const char *what) {
    int has;
    AdStatus s = ad_h5_exists(g, name, &has);
    if (s == AD_OK && has)
        s = ad_fail(AD_ERR_ARG, "%s %s: round %d already has its %s", r->path, what, round, name);
    return s;
}

static AdStatus write_i64(hid_t loc, const char *name, long n, const int64_t *v) {
    hsize_t dims = (hsize_t)n;
    return ad_h5_write_array(loc, name, AD_H5_I64, 1, &dims, v);
}

static AdStatus write_f64(hid_t loc, const char *name, long n, const double *v) {
    hsize_t dims = (hsize_t)n;
    return ad_h5_write_array(loc, name, AD_H5_F64, 1, &dims, v);
}

/* ================================================================ creating */

/* New objects use HDF5 1.10's formats: their chunk indexes need no B-tree nodes, which
 * makes a run file about a third the size. Readers need HDF5 1.10 or later. */
static AdStatus use_v110_formats(hid_t f, const char *path) {
    if (H5Fset_libver_bounds(f, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0)
        return ad_h5_fail(AD_ERR_HDF5, f, NULL, "cannot select the HDF5 1.10 object formats "
                          "for run file %s", path);
    return AD_OK;
}

/* The first "model name" of /proc/cpuinfo, or "unknown". */
static void cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) return;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) continue;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        size_t n = strcspn(v, "\r\n");
        if (n >= cap) n = cap - 1;
        if (n > 0) {
            memcpy(out, v, n);
            out[n] = '\0';
        }
        break;
    }
    fclose(fp);
}

static AdStatus write_root(hid_t f, uint64_t seed, int threads) {
    char start[32] = "unknown", cpu[256];
    time_t now = time(NULL);
    struct tm tm;
    if (now != (time_t)-1 && gmtime_r(&now, &tm)) strftime(start, sizeof start, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cpu_model(cpu, sizeof cpu);
    AdStatus s = ad_h5_attr_write_str(f, "format", AD_RUN_FORMAT);
    if (s == AD_OK) s = ad_h5_attr_write_i64(f, "format_version", AD_RUN_VERSION);
    if (s == AD_OK) s = ad_h5_attr_write_str(f, "program_version", AD_VERSION_STRING);
    if (s == AD_OK) s = ad_h5_attr_write_str(f, "git_commit", ad_git_commit());
    if (s == AD_OK) s = ad_h5_attr_write_str(f, "start_time", start);
    if (s == AD_OK) s = ad_h5_attr_write_u64(f, "seed", seed);
    if (s == AD_OK) s = ad_h5_attr_write_i64(f, "threads", threads);
    if (s == AD_OK) s = ad_h5_attr_write_i64(f, "ranks", ad_dist_size());
    if (s == AD_OK) s = ad_h5_attr_write_str(f, "blas", ad_blas_info());
    if (s == AD_OK) s = ad_h5_attr_write_str(f, "cpu", cpu);
    if (s == AD_OK) s = ad_h5_attr_write_i64(f, "rounds_complete", 0);
    return s;
}

/* A (R, E) summary table. With E = 0 (a run without an evaluation grid) its rows are
 * empty: h5util's tables need a column, so it is made here, unfiltered. */
static AdStatus create_eval_table(hid_t g, const char *name, int n_eval) {
    if (n_eval > 0) return ad_h5_table_create(g, name, AD_H5_F64, (hsize_t)n_eval, SUMMARY_CHUNK_ROWS);
    AdStatus s;
    hsize_t dims[2] = {0, 0}, maxdims[2] = {H5S_UNLIMITED, H5S_UNLIMITED};
    hsize_t chunk[2] = {SUMMARY_CHUNK_ROWS, 1};
    hid_t space = H5Screate_simple(2, dims, maxdims), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 2, chunk) < 0)
        s = ad_h5_fail(AD_ERR_HDF5, g, name, "cannot set up the dataspace of the table");
    else
        s = ad_h5_dataset_write(g, name, H5T_IEEE_F64LE, -1, space, dcpl, NULL, "table");
    ad_h5_close_quietly(dcpl);
    ad_h5_close_quietly(space);
    return s;
}

/* Appends one row to a (R, E) summary table; with E = 0 the table only grows. */
static AdStatus append_eval_row(hid_t g, const char *name, int n_eval, const double *row) {
    if (n_eval > 0) return ad_h5_table_append(g, name, AD_H5_F64, 1, (hsize_t)n_eval, row);
    hsize_t rows;
    AdStatus s = ad_h5_table_rows(g, name, &rows);
    if (s != AD_OK) return s;
    hsize_t grown[2] = {rows + 1, 0};
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0 || H5Dset_extent(d, grown) < 0) s = ad_h5_fail(AD_ERR_IO, g, name, "cannot extend table");
    ad_h5_close_quietly(d);
    return s;
}

static AdStatus create_summary(hid_t f, int n_eval) {
    hid_t g;
    AdStatus s = ad_h5_group_create(f, "summary", &g);
    if (s != AD_OK) return s;
    for (int i = 0; i < N_INT_COLS && s == AD_OK; i++)
        s = ad_h5_table_create(g, INT_COLS[i], AD_H5_I64, 0, SUMMARY_CHUNK_ROWS);
    for (int i = 0; i < N_FLOAT_COLS && s == AD_OK; i++)
        s = ad_h5_table_create(g, FLOAT_COLS[i], AD_H5_F64, 0, SUMMARY_CHUNK_ROWS);
    for (int i = 0; i < N_EVAL_COLS && s == AD_OK; i++)
        s = create_eval_table(g, EVAL_COLS[i], n_eval);
    return ad_h5_close_after(g, s);
}

static AdStatus lock_file(const char *path, int *fd) {
    char lock[PATH_MAX + 8];
    *fd = -1;
    if (snprintf(lock, sizeof lock, "%s.lock", path) >= (int)sizeof lock)
        return ad_fail(AD_ERR_ARG, "run file path too long: %s", path);
    for (int attempt = 0; attempt < 100; attempt++) {
        int f = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (f < 0) return ad_fail(AD_ERR_IO, "cannot create the lock %s: %s", lock, strerror(errno));
        if (flock(f, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            char pid[32] = "";
            ssize_t n = pread(f, pid, sizeof pid - 1, 0);
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            close(f);
            if (err == EWOULDBLOCK)
                return ad_fail(AD_ERR_IO, "%s is in use by another autodidact process (pid %s, "
                               "lock %s): wait for it to end, or give this run another run_file",
                               path, pid[0] ? pid : "unknown", lock);
            return ad_fail(AD_ERR_IO, "cannot lock %s: %s", lock, strerror(err));
        }
        /* the holder before us may have removed the file between our open and flock: then
         * this lock guards nothing, so take the one now at the path */
        struct stat a, b;
        if (fstat(f, &a) != 0 || stat(lock, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            close(f);
            continue;
        }
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(f, 0) != 0 || pwrite(f, pid, (size_t)n, 0) != n) {
            /* the lock holds without the pid; only a refusal's message would lack it */
        }
        *fd = f;
        return AD_OK;
    }
    return ad_fail(AD_ERR_IO, "cannot lock %s: it keeps being replaced", lock);
}

/* Rank 0 holds the lock for the whole job; the other ranks learn whether it got it. */
AdStatus ad_runlog_lock(const char *path, int *fd) {
    *fd = -1;
    return ad_dist_agree(ad_dist_is_root() ? lock_file(path, fd) : AD_OK);
}

void ad_runlog_unlock(const char *path, int fd) {
    if (fd < 0) return;
    char lock[PATH_MAX + 8];
    if (snprintf(lock, sizeof lock, "%s.lock", path) < (int)sizeof lock) unlink(lock);
    close(fd); /* releases the flock; a waiter that opened the old file sees it unlinked */
}

AdStatus ad_runlog_create(AdRunLog *r, const char *path, const char *config_json,
                          const char *config_original, uint64_t seed, int threads,
                          const int *eval_lengths, int n_eval) {
    memset(r, 0, sizeof *r);
    r->file = -1;
    AdStatus s = check_path(path, "run file create");
    if (s != AD_OK) return s;
    if (!config_json)
        return ad_fail(AD_ERR_ARG, "run file %s: no resolved config to store", path);
    if (n_eval < 0 || n_eval > RUN_MAX_EVAL || (n_eval > 0 && !eval_lengths))
        return ad_fail(AD_ERR_ARG, "run file %s: evaluation grid of %d lengths%s (0..%d expected)",
                       path, n_eval, eval_lengths ? "" : " and no array", RUN_MAX_EVAL);
    int64_t *lengths = ad_malloc((size_t)(n_eval > 0 ? n_eval : 1) * sizeof *lengths,
                                 "run file eval_lengths");
    if (!lengths) return AD_ERR_NOMEM;
    for (int i = 0; i < n_eval; i++) lengths[i] = eval_lengths[i];
    char name[MEM_NAME_LEN];
    size_t hint = strlen(config_json) + (config_original ? strlen(config_original) : 0);
    hid_t f = -1, g = -1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    s = mem_name(path, name);
    if (s == AD_OK) s = ad_h5_create_mem(name, hint + (1u << 20), &f);
    if (s == AD_OK) s = use_v110_formats(f, path);
    if (s == AD_OK) s = write_root(f, seed, threads);
    if (s == AD_OK) s = ad_h5_write_string(f, "config", config_json);
    if (s == AD_OK) s = ad_h5_write_string(f, "config_original", config_original ? config_original : "");
    if (s == AD_OK) s = write_i64(f, "eval_lengths", n_eval, lengths);
    if (s == AD_OK) s = create_summary(f, n_eval);
    if (s == AD_OK) s = ad_h5_group_create(f, "rounds", &g);
    if (s == AD_OK) s = ad_h5_close(g);
    free(lengths);
    return adopt_file(r, f, path, n_eval, 0, s, "creating");
}

/* ================================================================ per-round contents */

static AdStatus check_candidates(const AdRunLog *r, const AdCandidates *c) {
    if (c->n_prompts < 0 || c->samples < 0 || c->n < 0 ||
        (c->samples > 0 && c->n_prompts > LONG_MAX / c->samples) ||
        c->n != c->n_prompts * (long)c->samples)
        return ad_fail(AD_ERR_ARG, "%s: candidates table of %ld prompts x %d samples holds %ld "
                       "candidates", r->path, c->n_prompts, c->samples, c->n);
    const char *missing = NULL;
    if (c->n_prompts > 0 && !c->prompt) missing = "prompt";
    else if (c->n_prompts > 0 && !c->length) missing = "length";
    else if (c->n > 0 && !c->answer) missing = "answer";
    else if (c->n > 0 && !c->ended) missing = "ended";
    else if (c->n > 0 && !c->selected) missing = "selected";
    else if (c->n > 0 && !c->correct) missing = "correct";
    if (missing)
        return ad_fail(AD_ERR_ARG, "%s: candidates table has no %s array", r->path, missing);
    return AD_OK;
}

/* A scorer is written if it has at least one value that is not NaN. */
static int scorer_ran(const AdCandidates *c, int k) {
    if (!c || !c->scores[k]) return 0;
    for (long i = 0; i < c->n; i++)
        if (!isnan(c->scores[k][i])) return 1;
    return 0;
}

/* Writes every candidate dataset of a round group; c NULL (or empty) gives length 0. */
static AdStatus write_candidate_sets(hid_t g, const AdCandidates *c) {
    long p = c ? c->n_prompts : 0, n = c ? c->n : 0;
    size_t pn = (size_t)(p > 0 ? p : 1), nn = (size_t)(n > 0 ? n : 1);
    int64_t *plen = ad_calloc(pn, sizeof *plen, "run file prompt lengths");
    int64_t *cprompt = ad_calloc(nn, sizeof *cprompt, "run file candidate prompts");
    int64_t *csample = ad_calloc(nn, sizeof *csample, "run file candidate samples");
    uint8_t *ended = ad_malloc(nn, "run file candidate_ended");
    uint8_t *selected = ad_malloc(nn, "run file selection mask");
    int8_t *correct = ad_malloc(nn, "run file correctness");
    hid_t sg = -1;
    AdStatus s = plen && cprompt && csample && ended && selected && correct ? AD_OK : AD_ERR_NOMEM;
    if (s == AD_OK) {
        for (long i = 0; i < p; i++) plen[i] = c->length[i];
        for (long i = 0; i < n; i++) {
            cprompt[i] = i / c->samples;
            csample[i] = i % c->samples;
            ended[i] = c->ended[i] != 0;
            selected[i] = c->selected[i] != 0;
            correct[i] = (int8_t)(c->correct[i] > 0 ? 1 : c->correct[i] == 0 ? 0 : -1);
        }
        s = ad_h5_write_strings(g, "prompts", (size_t)p, c ? c->prompt : NULL);
    }
    hsize_t dn = (hsize_t)n;
    if (s == AD_OK) s = write_i64(g, "prompt_length", p, plen);
    if (s == AD_OK) s = ad_h5_write_strings(g, "candidates", (size_t)n, c ? c->answer : NULL);
    if (s == AD_OK) s = write_i64(g, "candidate_prompt", n, cprompt);
    if (s == AD_OK) s = write_i64(g, "candidate_sample", n, csample);
    if (s == AD_OK) s = ad_h5_write_array(g, "candidate_ended", AD_H5_U8, 1, &dn, ended);
    if (s == AD_OK) s = ad_h5_write_array(g, "selected", AD_H5_U8, 1, &dn, selected);
    if (s == AD_OK) s = ad_h5_write_array(g, "correct", AD_H5_I8, 1, &dn, correct);
    if (s == AD_OK) s = ad_h5_group_create(g, "scores", &sg);
    for (int k = 0; k < AD_SCORE_COUNT && s == AD_OK; k++) {
        if (!scorer_ran(c, k)) continue;
        const char *name = ad_score_name(k);
        if (!name || !name[0])
            s = ad_fail(AD_ERR_INTERNAL, "run file: scorer %d has no name", k);
        else
            s = ad_h5_write_floats(sg, name, 1, &dn, c->scores[k]);
    }
    if (sg >= 0) s = ad_h5_close_after(sg, s);
    free(plen);
    free(cprompt);
    free(csample);
    free(ended);
    free(selected);
    free(correct);
    return s;
}

AdStatus ad_runlog_write_candidates(AdRunLog *r, int round, const AdCandidates *c) {
    AdStatus s = check_round(r, round, "candidates");
    if (s == AD_OK && c) s = check_candidates(r, c);
    if (s != AD_OK) return s;
    hid_t g;
    s = round_group(r, round, &g);
    if (s != AD_OK) return s;
    s = refuse_rewrite(r, g, round, "candidates", "candidates");
    if (s == AD_OK) s = write_candidate_sets(g, c);
    return ad_h5_close_after(g, s);
}

/* Writes the train/ group of a round group from n records (n may be 0). */
static AdStatus write_train_sets(hid_t g, const AdTrainRecord *recs, long n) {
    size_t nn = (size_t)(n > 0 ? n : 1);
    int64_t *step = ad_calloc(nn, sizeof *step, "run file train steps");
    double *col = ad_calloc(nn, 4 * sizeof *col, "run file training curve");
    hid_t tg = -1;
    AdStatus s = step && col ? AD_OK : AD_ERR_NOMEM;
    if (s == AD_OK) {
        double *loss = col, *lr = col + nn, *gn = col + 2 * nn, *tps = col + 3 * nn;
        for (long i = 0; i < n; i++) {
            step[i] = recs[i].step;
            loss[i] = recs[i].loss;
            lr[i] = recs[i].lr;
            gn[i] = recs[i].grad_norm;
            tps[i] = recs[i].tokens_per_s;
        }
        s = ad_h5_group_create(g, "train", &tg);
        if (s == AD_OK) s = write_i64(tg, "step", n, step);
        if (s == AD_OK) s = write_f64(tg, "loss", n, loss);
        if (s == AD_OK) s = write_f64(tg, "lr", n, lr);
        if (s == AD_OK) s = write_f64(tg, "grad_norm", n, gn);
        if (s == AD_OK) s = write_f64(tg, "tokens_per_s", n, tps);
        if (tg >= 0) s = ad_h5_close_after(tg, s);
    }
    free(step);
    free(col);
    return s;
}

AdStatus ad_runlog_write_train_curve(AdRunLog *r, int round, const AdTrainRecord *recs, long n) {
    AdStatus s = check_round(r, round, "training curve");
    if (s != AD_OK) return s;
    if (n < 0 || (n > 0 && !recs))
        return ad_fail(AD_ERR_ARG, "%s: training curve of %ld records%s", r->path, n,
                       recs ? "" : " and no array");
    hid_t g;
    s = round_group(r, round, &g);
    if (s != AD_OK) return s;
    s = refuse_rewrite(r, g, round, "train", "training curve");
    if (s == AD_OK) s = write_train_sets(g, recs, n);
    return ad_h5_close_after(g, s);
}

static AdStatus write_pair_sets(hid_t g, const AdPairLog *p) {
    long n = p->n;
    size_t nn = (size_t)(n > 0 ? n : 1);
    int64_t *iv = ad_calloc(nn, sizeof *iv, "run file pairs");
    hid_t pg = -1;
    AdStatus s = iv ? ad_h5_group_create(g, "pairs", &pg) : AD_ERR_NOMEM;
    if (s == AD_OK) s = ad_h5_write_strings(pg, "prompt", (size_t)n, p->prompt);
    if (s == AD_OK) s = ad_h5_write_strings(pg, "chosen", (size_t)n, p->chosen);
    if (s == AD_OK) s = ad_h5_write_strings(pg, "rejected", (size_t)n, p->rejected);
    if (s == AD_OK) s = write_f64(pg, "chosen_score", n, p->chosen_score);
    if (s == AD_OK) s = write_f64(pg, "rejected_score", n, p->rejected_score);
    if (s == AD_OK) s = write_f64(pg, "ref_logp_chosen", n, p->ref_chosen);
    if (s == AD_OK) s = write_f64(pg, "ref_logp_rejected", n, p->ref_rejected);
    const char *names[4] = {"chosen_correct", "rejected_correct", "chosen_tokens", "rejected_tokens"};
    const int *cols[4] = {p->chosen_correct, p->rejected_correct, p->chosen_tokens, p->rejected_tokens};
    for (int c = 0; c < 4 && s == AD_OK; c++) {
        for (long i = 0; i < n; i++) iv[i] = cols[c][i];
        s = write_i64(pg, names[c], n, iv);
    }
    free(iv);
    return pg >= 0 ? ad_h5_close_after(pg, s) : s;
}

/* One double field of a record type, written as the dataset `name` of sub-group `group`
 * (-1: the curve's own group). */
typedef struct {
    int group;
    const char *name;
    size_t off;
} RecordColumn;

/* Writes the n_cols columns of n records (stride bytes apart) into g or sub[group], through
 * the scratch col (n). */
static AdStatus write_record_columns(hid_t g, const hid_t *sub, const void *rec, size_t stride,
                                     long n, const RecordColumn *cols, size_t n_cols, double *col) {
    AdStatus s = AD_OK;
    for (size_t c = 0; c < n_cols && s == AD_OK; c++) {
        for (long i = 0; i < n; i++)
            memcpy(&col[i], (const char *)rec + (size_t)i * stride + cols[c].off, sizeof(double));
        s = write_f64(cols[c].group < 0 ? g : sub[cols[c].group], cols[c].name, n, col);
    }
    return s;
}

/* preference/: the curve under TRL's metric names (rewards/chosen is the dataset chosen
 * in the group rewards). */
static AdStatus write_pref_curve(hid_t g, const AdPrefRecord *rec, long n) {
    size_t nn = (size_t)(n > 0 ? n : 1);
    int64_t *step = ad_calloc(nn, sizeof *step, "run file preference curve");
    double *col = ad_calloc(nn, sizeof *col, "run file preference curve");
    hid_t pg = -1, sub[2] = {-1, -1};
    AdStatus s = step && col ? ad_h5_group_create(g, "preference", &pg) : AD_ERR_NOMEM;
    if (s == AD_OK) s = ad_h5_group_create(pg, "rewards", &sub[0]);
    if (s == AD_OK) s = ad_h5_group_create(pg, "logps", &sub[1]);
    for (long i = 0; i < n; i++) step[i] = rec[i].step;
    if (s == AD_OK) s = write_i64(pg, "step", n, step);
    static const RecordColumn cols[] = {
        {-1, "loss", offsetof(AdPrefRecord, loss)},
        {0, "chosen", offsetof(AdPrefRecord, rewards_chosen)},
        {0, "rejected", offsetof(AdPrefRecord, rewards_rejected)},
        {0, "margins", offsetof(AdPrefRecord, rewards_margins)},
        {0, "accuracies", offsetof(AdPrefRecord, rewards_accuracies)},
        {1, "chosen", offsetof(AdPrefRecord, logps_chosen)},
        {1, "rejected", offsetof(AdPrefRecord, logps_rejected)}};
    if (s == AD_OK)
        s = write_record_columns(pg, sub, rec, sizeof *rec, n, cols, sizeof cols / sizeof cols[0], col);
    for (int k = 0; k < 2; k++)
        if (sub[k] >= 0) s = ad_h5_close_after(sub[k], s);
    if (pg >= 0) s = ad_h5_close_after(pg, s);
    free(step);
    free(col);
    return s;
}

AdStatus ad_runlog_write_pairs(AdRunLog *r, int round, const AdPairLog *p,
                               const AdPrefRecord *curve, long n_steps) {
    AdStatus s = check_round(r, round, "preference pairs");
    if (s != AD_OK) return s;
    hid_t g;
    s = round_group(r, round, &g);
    if (s != AD_OK) return s;
    s = refuse_rewrite(r, g, round, "pairs", "preference pairs");
    if (s == AD_OK) s = write_pair_sets(g, p);
    if (s == AD_OK) s = write_pref_curve(g, curve, n_steps);
    return ad_h5_close_after(g, s);
}

/* rl/: the samples; grpo/: the round's generation metrics (one value each) and the curve
 * under TRL's names (clip_ratio/low_mean is the dataset low_mean in the group clip_ratio). */
static AdStatus write_rl_sets(hid_t g, const AdRlLog *p, const AdRlRound *sum,
                              const AdRlRecord *rec, long n) {
    size_t nn = (size_t)(p->n > n ? p->n : n > 0 ? n : 1);
    int64_t *iv = ad_calloc(nn, sizeof *iv, "run file rl");
    double *col = ad_calloc(nn, sizeof *col, "run file rl");
    hid_t rg = -1, pg = -1, sub[2] = {-1, -1};
    AdStatus s = iv && col ? ad_h5_group_create(g, "rl", &rg) : AD_ERR_NOMEM;
    if (s == AD_OK) s = write_f64(rg, "reward", p->n, p->reward);
    if (s == AD_OK) s = write_f64(rg, "advantage", p->n, p->advantage);
    if (s == AD_OK) s = write_f64(rg, "old_logp", p->n, p->old_logp);
    for (long i = 0; i < p->n; i++) iv[i] = p->tokens[i];
    if (s == AD_OK) s = write_i64(rg, "tokens", p->n, iv);
    if (s == AD_OK) s = ad_h5_group_create(g, "grpo", &pg);
    if (s == AD_OK) s = ad_h5_group_create(pg, "clip_ratio", &sub[0]);
    if (s == AD_OK) s = ad_h5_group_create(pg, "completions", &sub[1]);
    if (s == AD_OK) s = write_f64(pg, "reward", 1, &sum->reward);
    if (s == AD_OK) s = write_f64(pg, "reward_std", 1, &sum->reward_std);
    if (s == AD_OK) s = write_f64(pg, "frac_reward_zero_std", 1, &sum->frac_reward_zero_std);
    if (s == AD_OK) s = write_f64(pg, "accuracy", 1, &sum->accuracy);
    if (s == AD_OK) s = write_f64(sub[1], "mean_length", 1, &sum->mean_length);
    for (long i = 0; i < n; i++) iv[i] = rec[i].step;
    if (s == AD_OK) s = write_i64(pg, "step", n, iv);
    static const RecordColumn cols[] = {
        {-1, "loss", offsetof(AdRlRecord, loss)},
        {-1, "kl", offsetof(AdRlRecord, kl)},
        {-1, "entropy", offsetof(AdRlRecord, entropy)},
        {-1, "ratio", offsetof(AdRlRecord, ratio)},
        {0, "low_mean", offsetof(AdRlRecord, clip_low)},
        {0, "high_mean", offsetof(AdRlRecord, clip_high)},
        {0, "region_mean", offsetof(AdRlRecord, clip_region)}};
    if (s == AD_OK)
        s = write_record_columns(pg, sub, rec, sizeof *rec, n, cols, sizeof cols / sizeof cols[0], col);
    for (int k = 0; k < 2; k++)
        if (sub[k] >= 0) s = ad_h5_close_after(sub[k], s);
    if (pg >= 0) s = ad_h5_close_after(pg, s);
    if (rg >= 0) s = ad_h5_close_after(rg, s);
    free(iv);
    free(col);
    return s;
}

AdStatus ad_runlog_write_rl(AdRunLog *r, int round, const AdRlLog *p, const AdRlRound *sum,
                            const AdRlRecord *curve, long n_steps) {
    AdStatus s = check_round(r, round, "rl samples");
    if (s != AD_OK) return s;
    hid_t g;
    s = round_group(r, round, &g);
    if (s != AD_OK) return s;
    s = refuse_rewrite(r, g, round, "rl", "rl samples");
    if (s == AD_OK) s = write_rl_sets(g, p, sum, curve, n_steps);
    return ad_h5_close_after(g, s);
}

/* Reads the evaluation grid of the file into lengths (r->n_eval values). */
static AdStatus read_grid(const AdRunLog *r, int64_t *lengths) {
    hsize_t e = (hsize_t)r->n_eval;
    return ad_h5_read_array(r->file, "eval_lengths", AD_H5_I64, 1, &e, lengths);
}

/* Writes the eval/ group of a round group; accuracy and loss may be NULL (NaN), n too (0). */
static AdStatus write_eval_sets(hid_t g, int E, const int64_t *lengths, const double *accuracy,
                                const double *loss, const long *n) {
    size_t cap = (size_t)(E > 0 ? E : 1);
    double *acc = ad_malloc(2 * cap * sizeof *acc, "run file evaluation");
    int64_t *cnt = ad_malloc(cap * sizeof *cnt, "run file evaluation counts");
    hid_t eg = -1;
    AdStatus s = acc && cnt ? AD_OK : AD_ERR_NOMEM;
    if (s == AD_OK) {
        for (int i = 0; i < E; i++) {
            acc[i] = accuracy ? accuracy[i] : NAN;
            acc[E + i] = loss ? loss[i] : NAN;
            cnt[i] = n ? n[i] : 0;
        }
        s = ad_h5_group_create(g, "eval", &eg);
        if (s == AD_OK) s = write_i64(eg, "length", E, lengths);
        if (s == AD_OK) s = write_f64(eg, "accuracy", E, acc);
        if (s == AD_OK) s = write_f64(eg, "loss", E, acc + E);
        if (s == AD_OK) s = write_i64(eg, "n", E, cnt);
        if (eg >= 0) s = ad_h5_close_after(eg, s);
    }
    free(acc);
    free(cnt);
    return s;
}

AdStatus ad_runlog_write_eval(AdRunLog *r, int round, const int *lengths, const double *accuracy,
                              const double *loss, const long *n, int n_eval) {
    AdStatus s = check_round(r, round, "evaluation");
    if (s != AD_OK) return s;
    if (n_eval != r->n_eval || (n_eval > 0 && (!lengths || !accuracy || !loss || !n)))
        return ad_fail(AD_ERR_ARG, "%s: evaluation of %d lengths given (arrays %s), the run's "
                       "grid has %d", r->path, n_eval,
                       lengths && accuracy && loss && n ? "present" : "missing", r->n_eval);
    int64_t *grid = ad_malloc((size_t)(n_eval > 0 ? n_eval : 1) * sizeof *grid,
                              "run file eval_lengths");
    if (!grid) return AD_ERR_NOMEM;
    s = read_grid(r, grid);
    for (int i = 0; i < n_eval && s == AD_OK; i++)
        if (grid[i] != lengths[i])
            s = ad_fail(AD_ERR_ARG, "%s: evaluation length %d is %d, the run's grid has %lld",
                        r->path, i, lengths[i], (long long)grid[i]);
    hid_t g = -1;
    if (s == AD_OK) s = round_group(r, round, &g);
    if (s == AD_OK) {
        s = refuse_rewrite(r, g, round, "eval", "evaluation");
        if (s == AD_OK) s = write_eval_sets(g, n_eval, grid, accuracy, loss, n);
        s = ad_h5_close_after(g, s);
    }
    free(grid);
    return s;
}

/* ================================================================ committing */

/* Cuts every /summary table to `rows` rows. A table with fewer rows, or a missing one, is
 * AD_ERR_FORMAT: the file does not hold the rounds it claims. */
static AdStatus truncate_summary(hid_t f, const char *path, int rows, int n_eval) {
    hid_t g;
    AdStatus s = ad_h5_group_open(f, "summary", &g);
    if (s != AD_OK) return s;
    for (int i = 0; i < N_INT_COLS + N_FLOAT_COLS + N_EVAL_COLS && s == AD_OK; i++) {
        const char *name = i < N_INT_COLS ? INT_COLS[i]
                         : i < N_INT_COLS + N_FLOAT_COLS ? FLOAT_COLS[i - N_INT_COLS]
                         : EVAL_COLS[i - N_INT_COLS - N_FLOAT_COLS];
        int want_rank = i < N_INT_COLS + N_FLOAT_COLS ? 1 : 2, rank;
        hsize_t dims[2];
        s = ad_h5_array_shape(g, name, 2, &rank, dims);
        if (s != AD_OK) break;
        if (rank != want_rank) {
            s = ad_fail(AD_ERR_FORMAT, "%s:/summary/%s has rank %d, expected %d", path, name, rank,
                        want_rank);
            break;
        }
        if (rank == 2 && dims[1] != (hsize_t)n_eval) {
            s = ad_fail(AD_ERR_FORMAT, "%s:/summary/%s has %llu columns, but /eval_lengths has %d "
                        "lengths", path, name, (unsigned long long)dims[1], n_eval);
            break;
        }
        if (dims[0] < (hsize_t)rows) {
            s = ad_fail(AD_ERR_FORMAT, "%s:/summary/%s has %llu rows, but rounds_complete is %d",
                        path, name, (unsigned long long)dims[0], rows);
            break;
        }
        if (dims[0] == (hsize_t)rows) continue;
        hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
        dims[0] = (hsize_t)rows;
        if (d < 0 || H5Dset_extent(d, dims) < 0)
            s = ad_h5_fail(AD_ERR_FORMAT, g, name, "cannot cut the table to %d rows", rows);
        ad_h5_close_quietly(d);
    }
    return ad_h5_close_after(g, s);
}

static AdStatus append_summary(hid_t f, const AdRoundSummary *s, int n_eval) {
    const int64_t ints[N_INT_COLS] = {s->round,          s->length_lo,   s->length_hi,
                                      s->n_prompts,      s->n_candidates, s->n_selected,
                                      s->train_examples, s->train_steps, s->frontier_90,
                                      s->n_pairs,        s->pairs_dropped};
    const double floats[N_FLOAT_COLS] = {
        s->acceptance,    s->label_accuracy, s->candidate_accuracy, s->train_loss,
        s->time_generate, s->time_score,     s->time_train,         s->time_eval,
        s->time_total,    s->gen_tokens_per_s, s->train_tokens_per_s, s->pair_accuracy,
        s->time_write};
    double *row = ad_malloc((size_t)(n_eval > 0 ? n_eval : 1) * sizeof *row, "run file summary row");
    if (!row) return AD_ERR_NOMEM;
    hid_t g;
    AdStatus st = ad_h5_group_open(f, "summary", &g);
    for (int i = 0; i < N_INT_COLS && st == AD_OK; i++)
        st = ad_h5_table_append(g, INT_COLS[i], AD_H5_I64, 1, 0, &ints[i]);
    for (int i = 0; i < N_FLOAT_COLS && st == AD_OK; i++)
        st = ad_h5_table_append(g, FLOAT_COLS[i], AD_H5_F64, 1, 0, &floats[i]);
    const double *eval[N_EVAL_COLS] = {s->eval_accuracy, s->eval_loss};
    for (int c = 0; c < N_EVAL_COLS && st == AD_OK; c++) {
        for (int i = 0; i < n_eval; i++) row[i] = eval[c] ? eval[c][i] : NAN;
        st = append_eval_row(g, EVAL_COLS[c], n_eval, row);
    }
    free(row);
    return ad_h5_close_after(g, st);
}

static AdStatus write_round_attrs(hid_t g, const AdRoundSummary *s) {
    const double times[N_TIME_COLS] = {s->time_generate, s->time_score, s->time_train,
                                       s->time_eval, s->time_total};
    AdStatus st = ad_h5_attr_write_i64(g, "round", s->round);
    if (st == AD_OK) st = ad_h5_attr_write_i64(g, "length_lo", s->length_lo);
    if (st == AD_OK) st = ad_h5_attr_write_i64(g, "length_hi", s->length_hi);
    if (st == AD_OK) st = ad_h5_attr_write_str(g, "teacher", s->teacher ? s->teacher : "none");
    if (st == AD_OK) st = ad_h5_attr_write_i64(g, "n_selected", s->n_selected);
    if (st == AD_OK) st = ad_h5_attr_write_f64(g, "label_accuracy", s->label_accuracy);
    for (int i = 0; i < N_TIME_COLS && st == AD_OK; i++)
        st = ad_h5_attr_write_f64(g, FLOAT_COLS[FIRST_TIME_COL + i], times[i]);
    if (st == AD_OK) st = ad_h5_attr_write_f64(g, "time_write", s->time_write);
    return st;
}

/* Completes the round group: datasets the round did not write (no candidates, no
 * training, evaluation only in the summary) are written empty or from the summary. */
static AdStatus finish_round_group(AdRunLog *r, const AdRoundSummary *s) {
    hid_t g;
    AdStatus st = round_group(r, s->round, &g);
    if (st != AD_OK) return st;
    int has = 0;
    st = ad_h5_exists(g, "candidates", &has);
    if (st == AD_OK && !has) st = write_candidate_sets(g, NULL);
    if (st == AD_OK) st = ad_h5_exists(g, "train", &has);
    if (st == AD_OK && !has) st = write_train_sets(g, NULL, 0);
    if (st == AD_OK) st = ad_h5_exists(g, "eval", &has);
    if (st == AD_OK && !has) {
        int64_t *grid = ad_malloc((size_t)(r->n_eval > 0 ? r->n_eval : 1) * sizeof *grid,
                                  "run file eval_lengths");
        st = grid ? read_grid(r, grid) : AD_ERR_NOMEM;
        if (st == AD_OK)
            st = write_eval_sets(g, r->n_eval, grid, s->eval_accuracy, s->eval_loss, s->eval_n);
        free(grid);
    }
    if (st == AD_OK) st = write_round_attrs(g, s);
    return ad_h5_close_after(g, st);
}

/* Writes the image of the in-memory file to `path` (see ad_h5_write_image_atomic);
 * *renamed tells whether `path` now holds it. */
static AdStatus write_image(hid_t f, const char *path, int *renamed) {
    *renamed = 0;
    void *image = NULL;
    size_t size = 0;
    AdStatus s = ad_h5_mem_image(f, &image, &size);
    if (s == AD_OK) s = ad_h5_write_image_atomic(path, image, size, renamed);
    free(image);
    if (s != AD_OK && *renamed) ad_fail_context(s, "%s was written, but", path);
    return s;
}

/* Commit protocol: the round group is completed (see finish_round_group), the summary
 * row appended and rounds_complete set, all in memory; then the image goes to disk. If
 * any of it fails before the file is renamed into place, the summary and rounds_complete
 * are put back, so the same round can be committed again (its datasets stay). A failure
 * to sync the directory after the rename is reported, but the round counts as
 * committed: the file on disk holds it. */
AdStatus ad_runlog_commit_round(AdRunLog *r, const AdRoundSummary *s) {
    AdStatus st = check_open(r, "commit round");
    if (st != AD_OK) return st;
    if (!s) return ad_fail(AD_ERR_ARG, "%s: commit without a round summary", r->path);
    st = check_round(r, s->round, "commit");
    if (st != AD_OK) return st;
    if (r->rounds_complete >= RUN_MAX_ROUNDS)
        return ad_fail(AD_ERR_ARG, "%s: more than %d rounds", r->path, RUN_MAX_ROUNDS);
    int R = r->rounds_complete, renamed = 0;
    st = truncate_summary(r->file, r->path, R, r->n_eval); /* leftovers of a failed commit */
    if (st == AD_OK) st = finish_round_group(r, s);
    if (st == AD_OK) st = append_summary(r->file, s, r->n_eval);
    if (st == AD_OK) st = ad_h5_attr_write_i64(r->file, "rounds_complete", R + 1);
    if (st == AD_OK) st = ad_h5_attr_write_i64(r->file, "ranks", ad_dist_size());
    /* every rank builds the file in memory; rank 0 alone writes it, and all learn how */
    if (st == AD_OK && ad_dist_is_root()) st = write_image(r->file, r->path, &renamed);
    st = ad_dist_agree(st);
    if (!ad_dist_is_root()) renamed = st == AD_OK;
    if (renamed) {
        r->rounds_complete = R + 1;
    } else if (st != AD_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ad_errmsg());
        AdStatus back = truncate_summary(r->file, r->path, R, r->n_eval);
        if (back == AD_OK) back = ad_h5_attr_write_i64(r->file, "rounds_complete", R);
        if (back != AD_OK)
            ad_log(AD_LOG_WARN, "%s: cannot undo the summary row of round %d in memory: %s",
                   r->path, R, ad_errmsg());
        ad_fail(st, "%s", msg);
    }
    if (st != AD_OK) ad_fail_context(st, "committing round %d to run file %s", R, r->path);
    return st;
}

void ad_runlog_close(AdRunLog *r) {
    if (!r) return;
    if (r->file > 0) ad_h5_close_quietly(r->file); /* in memory: nothing reaches the disk */
    memset(r, 0, sizeof *r);
    r->file = -1;
}

/* ================================================================ opening */

static AdStatus check_format(hid_t f, const char *path) {
    int has;
    AdStatus s = ad_h5_attr_exists(f, "format", &has);
    if (s != AD_OK) return s;
    if (!has)
        return ad_fail(AD_ERR_FORMAT, "%s is not an autodidact run file (it has no root "
                       "attribute \"format\")", path);
    char *fmt = NULL;
    s = ad_h5_attr_read_str(f, "format", RUN_MAX_NAME, &fmt);
    if (s != AD_OK) return ad_fail_context(AD_ERR_FORMAT, "%s is not an autodidact run file", path);
    int ok = strcmp(fmt, AD_RUN_FORMAT) == 0;
    if (!ok)
        s = ad_fail(AD_ERR_FORMAT, "%s is not an autodidact run file (its format is \"%.64s\", "
                    "expected \"%s\")", path, fmt, AD_RUN_FORMAT);
    free(fmt);
    if (!ok) return s;
    int64_t version;
    s = ad_h5_attr_read_i64(f, "format_version", &version);
    if (s != AD_OK) return ad_fail_context(AD_ERR_FORMAT, "%s", path);
    if (version > AD_RUN_VERSION)
        return ad_fail(AD_ERR_FORMAT, "%s is an autodidact run file of format version %lld; this "
                       "program (autodidact %s) reads version %d: use a newer autodidact", path,
                       (long long)version, AD_VERSION_STRING, AD_RUN_VERSION);
    if (version < 1)
        return ad_fail(AD_ERR_FORMAT, "%s has an invalid format_version %lld (this program reads "
                       "version %d)", path, (long long)version, AD_RUN_VERSION);
    return AD_OK;
}

/* Reads the whole file into *buf (malloc'd): missing or unreadable is AD_ERR_IO. */
static AdStatus read_file(const char *path, void **buf, size_t *size) {
    *buf = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ad_fail(AD_ERR_IO, "cannot open run file %s: %s", path, strerror(errno));
    struct stat sb;
    AdStatus s = AD_OK;
    if (fstat(fd, &sb) != 0)
        s = ad_fail(AD_ERR_IO, "cannot stat run file %s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        s = ad_fail(AD_ERR_IO, "cannot open run file %s: not a regular file", path);
    else if (sb.st_size == 0)
        s = ad_fail(AD_ERR_FORMAT, "run file %s is empty", path);
    else if ((int64_t)sb.st_size > RUN_MAX_FILE_BYTES)
        s = ad_fail(AD_ERR_FORMAT, "run file %s is %lld bytes, more than the %lld a run file may "
                    "have", path, (long long)sb.st_size, (long long)RUN_MAX_FILE_BYTES);
    char *b = NULL;
    size_t n = (size_t)sb.st_size, got = 0;
    if (s == AD_OK) {
        b = ad_malloc(n, "run file image");
        if (!b) s = AD_ERR_NOMEM;
    }
    while (s == AD_OK && got < n) {
        ssize_t k = read(fd, b + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) s = ad_fail(AD_ERR_IO, "cannot read run file %s: %s", path, strerror(errno));
        else if (k == 0) s = ad_fail(AD_ERR_IO, "run file %s shrank while being read", path);
        else got += (size_t)k;
    }
    close(fd);
    if (s != AD_OK) {
        free(b);
        return s;
    }
    *buf = b;
    *size = n;
    return AD_OK;
}

static herr_t innermost_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    if (e->desc && e->desc[0]) snprintf(data, 256, "%s", e->desc);
    return 0;
}

/* The most specific description on the calling thread's HDF5 error stack ("" if none). */
static void h5_reason(char out[256]) {
    out[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, innermost_cb, out);
}

/* Opens a file image as a writable in-memory HDF5 file (the library copies the bytes). */
static AdStatus open_image(const char *path, const void *buf, size_t size, hid_t *file) {
    *file = -1;
    char name[MEM_NAME_LEN];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    AdStatus s = mem_name(path, name);
    if (s != AD_OK) return s;
    size_t increment = size < (1u << 20) ? (1u << 20) : size / 4;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_fapl_core(fapl, increment, 0) < 0 ||
        H5Pset_file_image(fapl, (void *)buf, size) < 0) {
        char why[256];
        h5_reason(why);
        ad_h5_close_quietly(fapl);
        return ad_fail(AD_ERR_HDF5, "cannot set up opening run file %s in memory: %s", path, why);
    }
    hid_t f = H5Fopen(name, H5F_ACC_RDWR, fapl);
    if (f < 0) {
        char why[256];
        h5_reason(why);
        s = ad_fail(AD_ERR_FORMAT, "%s is not a readable HDF5 file (damaged, truncated or of "
                    "another format): %s", path, why);
    }
    ad_h5_close_quietly(fapl);
    *file = f;
    return s;
}

/* Reads rounds_complete and the grid size E, checking both against their bounds. */
static AdStatus read_counts(hid_t f, const char *path, int *rounds, int *n_eval) {
    int64_t v;
    AdStatus s = ad_h5_attr_read_i64(f, "rounds_complete", &v);
    if (s != AD_OK) return ad_fail_context(AD_ERR_FORMAT, "%s", path);
    if (v < 0 || v > RUN_MAX_ROUNDS)
        return ad_fail(AD_ERR_FORMAT, "%s: attribute rounds_complete = %lld is outside [0, %d]",
                       path, (long long)v, RUN_MAX_ROUNDS);
    *rounds = (int)v;
    int rank;
    hsize_t dims[AD_H5_MAX_RANK];
    s = ad_h5_array_shape(f, "eval_lengths", AD_H5_MAX_RANK, &rank, dims);
    if (s != AD_OK) return s;
    if (rank != 1 || dims[0] > RUN_MAX_EVAL)
        return ad_fail(AD_ERR_FORMAT, "%s:/eval_lengths has rank %d and %llu lengths (one "
                       "dimension of 0..%d expected)", path, rank,
                       (unsigned long long)(rank >= 1 ? dims[0] : 0), RUN_MAX_EVAL);
    *n_eval = (int)dims[0];
    return AD_OK;
}

/* ================================================================ consistency */

/* Length of the rank-1 dataset `name` under g into *n; missing or of another rank is
 * AD_ERR_FORMAT naming `where`/name. */
static AdStatus vector_length(hid_t g, const char *path, const char *where, const char *name,
                              hsize_t *n) {
    int has = 0, rank = 0;
    hsize_t dims[AD_H5_MAX_RANK];
    AdStatus s = ad_h5_exists(g, name, &has);
    if (s == AD_OK && !has)
        return ad_fail(AD_ERR_FORMAT, "%s: %s/%s is missing", path, where, name);
    if (s == AD_OK) s = ad_h5_array_shape(g, name, AD_H5_MAX_RANK, &rank, dims);
    if (s != AD_OK) return ad_fail_context(AD_ERR_FORMAT, "%s: %s/%s", path, where, name);
    if (rank != 1)
        return ad_fail(AD_ERR_FORMAT, "%s: %s/%s has rank %d, expected 1", path, where, name, rank);
    *n = dims[0];
    return AD_OK;
}

/* Checks that every dataset in `names` under g has length `want` (the first one found
 * sets it when *want is (hsize_t)-1). */
static AdStatus same_lengths(hid_t g, const char *path, const char *where,
                             const char *const *names, int n_names, hsize_t *want,
                             const char *what) {
    for (int i = 0; i < n_names; i++) {
        hsize_t n = 0;
        AdStatus s = vector_length(g, path, where, names[i], &n);
        if (s != AD_OK) return s;
        if (*want == (hsize_t)-1) *want = n;
        else if (n != *want)
            return ad_fail(AD_ERR_FORMAT, "%s: %s/%s has %llu entries, but %s is %llu", path, where,
                           names[i], (unsigned long long)n, what, (unsigned long long)*want);
    }
    return AD_OK;
}

/* One committed round group: its candidate, score, training and evaluation datasets
 * exist with lengths that agree with each other, with the grid (E) and with the
 * summary's n_prompts and n_candidates of the round. */
static AdStatus check_round_group(hid_t f, const char *path, int round, int rounds, int n_eval,
                                  int64_t n_prompts, int64_t n_cand) {
    char where[ROUND_NAME_LEN + 2];
    snprintf(where, sizeof where, "/");
    round_name(round, where + 1);
    int has = 0;
    AdStatus s = ad_h5_exists(f, where + 1, &has);
    if (s == AD_OK && !has)
        return ad_fail(AD_ERR_FORMAT, "%s: %s is missing, but rounds_complete = %d says rounds "
                       "0..%d were committed", path, where, rounds, rounds - 1);
    hid_t g;
    if (s == AD_OK) s = ad_h5_group_open(f, where + 1, &g);
    if (s != AD_OK) return ad_fail_context(AD_ERR_FORMAT, "%s: %s", path, where);
    static const char *const per_prompt[] = {"prompts", "prompt_length"};
    static const char *const per_cand[] = {"candidates", "candidate_prompt", "candidate_sample",
                                           "candidate_ended", "selected", "correct"};
    static const char *const curve[] = {"train/step", "train/loss", "train/lr", "train/grad_norm",
                                        "train/tokens_per_s"};
    static const char *const eval[] = {"eval/length", "eval/accuracy", "eval/loss", "eval/n"};
    static const char *const groups[] = {"scores", "train", "eval"};
    hsize_t P = (hsize_t)n_prompts, N = (hsize_t)n_cand, K = (hsize_t)-1, E = (hsize_t)n_eval;
    for (int i = 0; i < 3 && s == AD_OK; i++) {
        s = ad_h5_exists(g, groups[i], &has);
        if (s == AD_OK && !has) s = ad_fail(AD_ERR_FORMAT, "%s: %s/%s is missing", path, where, groups[i]);
    }
    if (s == AD_OK) s = same_lengths(g, path, where, per_prompt, 2, &P, "/summary/n_prompts");
    if (s == AD_OK) s = same_lengths(g, path, where, per_cand, 6, &N, "/summary/n_candidates");
    if (s == AD_OK) s = same_lengths(g, path, where, curve, 5, &K, "train/step's length");
    if (s == AD_OK) s = same_lengths(g, path, where, eval, 4, &E, "the length of /eval_lengths");
    hid_t sg = -1;
    if (s == AD_OK) s = ad_h5_group_open(g, "scores", &sg);
    H5G_info_t info;
    if (s == AD_OK && H5Gget_info(sg, &info) < 0)
        s = ad_h5_fail(AD_ERR_FORMAT, sg, NULL, "cannot list the scores of %s", where);
    for (hsize_t k = 0; s == AD_OK && k < info.nlinks; k++) {
        char name[RUN_MAX_NAME];
        if (H5Lget_name_by_idx(sg, ".", H5_INDEX_NAME, H5_ITER_INC, k, name, sizeof name,
                               H5P_DEFAULT) < 0) {
            s = ad_h5_fail(AD_ERR_FORMAT, sg, NULL, "cannot list the scores of %s", where);
            break;
        }
        const char *one[1] = {name};
        char sw[ROUND_NAME_LEN + 16];
        snprintf(sw, sizeof sw, "%s/scores", where);
        s = same_lengths(sg, path, sw, one, 1, &N, "/summary/n_candidates");
    }
    if (sg >= 0) ad_h5_close_quietly(sg);
    return ad_h5_close_after(g, s);
}

/* 1 if summary column i (INT_COLS, then FLOAT_COLS) was added after format version 1 first
 * shipped, so that files written before it lack it. */
static int is_later_column(int i) {
    return (i >= FIRST_LATER_INT && i < N_INT_COLS) ||
           (i >= N_INT_COLS + FIRST_LATER_FLOAT && i < N_INT_COLS + N_FLOAT_COLS);
}

/* Read-only consistency check of an open run file holding `rounds` committed rounds:
 * every summary column has at least that many rows (rank and width as documented), and
 * every round 0..rounds-1 has a complete group (check_round_group). The first missing or
 * mismatched object is named. */
static AdStatus check_consistency(hid_t f, const char *path, int rounds, int n_eval) {
    hid_t g;
    AdStatus s = ad_h5_group_open(f, "summary", &g);
    if (s != AD_OK) return ad_fail_context(AD_ERR_FORMAT, "%s: /summary", path);
    for (int i = 0; i < N_INT_COLS + N_FLOAT_COLS + N_EVAL_COLS && s == AD_OK; i++) {
        const char *name = i < N_INT_COLS ? INT_COLS[i]
                         : i < N_INT_COLS + N_FLOAT_COLS ? FLOAT_COLS[i - N_INT_COLS]
                         : EVAL_COLS[i - N_INT_COLS - N_FLOAT_COLS];
        int want_rank = i < N_INT_COLS + N_FLOAT_COLS ? 1 : 2, rank = 0, has = 0;
        hsize_t dims[AD_H5_MAX_RANK];
        s = ad_h5_exists(g, name, &has);
        if (s == AD_OK && !has && is_later_column(i)) continue; /* an older file: open adds it */
        if (s == AD_OK && !has) s = ad_fail(AD_ERR_FORMAT, "%s: /summary/%s is missing", path, name);
        if (s == AD_OK) s = ad_h5_array_shape(g, name, AD_H5_MAX_RANK, &rank, dims);
        if (s == AD_OK && (rank != want_rank || (rank == 2 && dims[1] != (hsize_t)n_eval)))
            s = ad_fail(AD_ERR_FORMAT, "%s: /summary/%s has rank %d%s, expected rank %d%s", path,
                        name, rank, rank == 2 ? " and another width" : "", want_rank,
                        want_rank == 2 ? " and one column per /eval_lengths entry" : "");
        if (s == AD_OK && dims[0] < (hsize_t)rounds)
            s = ad_fail(AD_ERR_FORMAT, "%s: /summary/%s has %llu rows, but rounds_complete is %d",
                        path, name, (unsigned long long)dims[0], rounds);
    }
    ad_h5_close_quietly(g);
    size_t n = (size_t)(rounds > 0 ? rounds : 1);
    int64_t *col = s == AD_OK ? ad_calloc(2 * n, sizeof *col, "run file check") : NULL;
    if (s == AD_OK && !col) s = AD_ERR_NOMEM;
    /* the first `rounds` rows of n_prompts and n_candidates */
    const char *cols[2] = {"summary/n_prompts", "summary/n_candidates"};
    for (int c = 0; c < 2 && s == AD_OK && rounds > 0; c++) {
        hid_t d = H5Dopen2(f, cols[c], H5P_DEFAULT);
        hid_t fs = d >= 0 ? H5Dget_space(d) : -1;
        hsize_t start[1] = {0}, count[1] = {(hsize_t)rounds};
        hid_t ms = H5Screate_simple(1, count, NULL);
        if (d < 0 || fs < 0 || ms < 0 ||
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, col + (size_t)c * n) < 0)
            s = ad_h5_fail(AD_ERR_FORMAT, f, cols[c], "cannot read");
        ad_h5_close_quietly(ms);
        ad_h5_close_quietly(fs);
        ad_h5_close_quietly(d);
    }
    for (int r = 0; r < rounds && s == AD_OK; r++) {
        if (col[r] < 0 || col[n + r] < 0)
            s = ad_fail(AD_ERR_FORMAT, "%s: /summary row %d has %lld prompts and %lld candidates",
                        path, r, (long long)col[r], (long long)col[n + r]);
        else
            s = check_round_group(f, path, r, rounds, n_eval, col[r], col[n + r]);
    }
    free(col);
    return s;
}

/* Deletes /rounds/NNN for every NNN >= rounds (groups of a round never committed). */
static AdStatus drop_rounds_from(hid_t f, const char *path, int rounds) {
    hid_t g;
    AdStatus s = ad_h5_group_open(f, "rounds", &g);
    if (s != AD_OK) return s;
    H5G_info_t info;
    if (H5Gget_info(g, &info) < 0) {
        s = ad_h5_fail(AD_ERR_FORMAT, g, NULL, "cannot list the round groups");
        ad_h5_close_quietly(g);
        return s;
    }
    /* Walk backwards by index, so that a deletion does not move links not yet seen. */
    for (hsize_t i = info.nlinks; i-- > 0 && s == AD_OK;) {
        char name[ROUND_NAME_LEN];
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                         H5P_DEFAULT);
        if (len < 0) {
            s = ad_h5_fail(AD_ERR_FORMAT, g, NULL, "cannot read the name of round group %llu",
                           (unsigned long long)i);
            break;
        }
        if (len == 0 || (size_t)len >= sizeof name || strspn(name, "0123456789") != (size_t)len)
            continue; /* not a round group: left alone */
        long round = len > 9 ? LONG_MAX : strtol(name, NULL, 10);
        if (round < rounds) continue;
        ad_log(AD_LOG_INFO, "%s: dropping /rounds/%s of a round that was never committed", path,
               name);
        if (H5Ldelete(g, name, H5P_DEFAULT) < 0)
            s = ad_h5_fail(AD_ERR_HDF5, g, name, "cannot drop the uncommitted round group");
    }
    return ad_h5_close_after(g, s);
}

/* A run file written before the preference and write-time columns existed gets them, with
 * `rows` rows of 0 (counts) and NAN (pair accuracy, write time): those rounds had no pairs,
 * and their write time was not measured. */
static AdStatus add_later_columns(hid_t f, int rows) {
    hid_t g;
    AdStatus s = ad_h5_group_open(f, "summary", &g);
    if (s != AD_OK) return AD_OK; /* check_consistency names what is missing */
    size_t n = (size_t)(rows > 0 ? rows : 1);
    int64_t *zeros = ad_calloc(n, sizeof *zeros, "run file columns");
    double *nans = ad_calloc(n, sizeof *nans, "run file columns");
    if (!zeros || !nans) s = AD_ERR_NOMEM;
    for (size_t i = 0; nans && i < n; i++) nans[i] = NAN;
    for (int i = FIRST_LATER_INT; i < N_INT_COLS + N_FLOAT_COLS && s == AD_OK; i++) {
        if (!is_later_column(i)) continue;
        int is_int = i < N_INT_COLS, has = 0;
        const char *name = is_int ? INT_COLS[i] : FLOAT_COLS[i - N_INT_COLS];
        s = ad_h5_exists(g, name, &has);
        if (s != AD_OK || has) continue;
        s = ad_h5_table_create(g, name, is_int ? AD_H5_I64 : AD_H5_F64, 0, SUMMARY_CHUNK_ROWS);
        if (s == AD_OK && rows > 0)
            s = ad_h5_table_append(g, name, is_int ? AD_H5_I64 : AD_H5_F64, (hsize_t)rows, 0,
                                   is_int ? (const void *)zeros : (const void *)nans);
    }
    free(zeros);
    free(nans);
    return ad_h5_close_after(g, s);
}

AdStatus ad_runlog_open(AdRunLog *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->file = -1;
    AdStatus s = check_path(path, "run file open");
    if (s != AD_OK) return s;
    void *buf;
    size_t size;
    s = read_file(path, &buf, &size);
    if (s != AD_OK) return s;
    hid_t f;
    s = open_image(path, buf, size, &f);
    free(buf);
    if (s != AD_OK) return s;
    int rounds = 0, n_eval = 0;
    s = check_format(f, path);
    if (s == AD_OK) s = use_v110_formats(f, path);
    if (s == AD_OK) s = read_counts(f, path, &rounds, &n_eval);
    if (s == AD_OK) s = add_later_columns(f, rounds);
    if (s == AD_OK) s = check_consistency(f, path, rounds, n_eval);
    if (s == AD_OK) s = truncate_summary(f, path, rounds, n_eval);
    if (s == AD_OK) s = drop_rounds_from(f, path, rounds);
    return adopt_file(r, f, path, n_eval, rounds, s, "opening");
}

AdStatus ad_runlog_check(const char *path, int *rounds_complete) {
    AdStatus s = check_path(path, "run file check");
    if (s != AD_OK) return s;
    hid_t f;
    s = ad_h5_open(path, 0, &f);
    if (s != AD_OK) return s;
    int rounds = 0, n_eval = 0;
    s = check_format(f, path);
    if (s == AD_OK) s = read_counts(f, path, &rounds, &n_eval);
    if (s == AD_OK) s = check_consistency(f, path, rounds, n_eval);
    ad_h5_close_quietly(f);
    if (s == AD_OK && rounds_complete) *rounds_complete = rounds;
    return s;
}

AdStatus ad_runlog_read_config(const char *path, char **config_json) {
    *config_json = NULL;
    AdStatus s = check_path(path, "run file read config");
    if (s != AD_OK) return s;
    hid_t f;
    s = ad_h5_open(path, 0, &f);
    if (s != AD_OK) return s;
    s = check_format(f, path);
    if (s == AD_OK) s = ad_h5_read_string(f, "config", RUN_MAX_CONFIG_JSON, config_json);
    if (s == AD_OK) {
        s = ad_h5_close_file(f);
    } else {
        ad_h5_close_quietly(f);
        free(*config_json);
        *config_json = NULL;
    }
    return s;
}

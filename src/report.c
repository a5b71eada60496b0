/* report.c: `autodidact report`: the per-round summary table of a run file (round.h), read
 * after the file's consistency check. It reads the run file only; the loop that writes it
 * is round.c. */
#include "autodidact/round.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodidact/runlog.h"
#include "autodidact/train.h"
#include "h5util.h"

/* A summary column as doubles, whether it is stored as integers or floats. */
static AdStatus read_column(hid_t file, const char *name, hsize_t rows, double *out) {
    hsize_t shape[1] = {rows};
    if (ad_h5_read_array(file, name, AD_H5_F64, 1, shape, out) == AD_OK) return AD_OK;
    int64_t *tmp = ad_calloc(rows ? rows : 1, sizeof(int64_t), "report column");
    if (!tmp) return AD_ERR_NOMEM;
    AdStatus st = ad_h5_read_array(file, name, AD_H5_I64, 1, shape, tmp);
    for (hsize_t i = 0; !st && i < rows; i++) out[i] = (double)tmp[i];
    free(tmp);
    return st;
}

AdStatus ad_run_report(const char *run_file, FILE *f) {
    AdStatus st = ad_runlog_check(run_file, NULL);
    if (st) return st;
    hid_t file;
    st = ad_h5_open(run_file, 0, &file);
    if (st) return st;
    char *fmt = NULL;
    int64_t done = 0;
    hsize_t rows = 0;
    if ((st = ad_h5_attr_read_str(file, "format", 256, &fmt)) || strcmp(fmt, AD_RUN_FORMAT)) {
        free(fmt);
        ad_h5_close_quietly(file);
        return ad_fail(AD_ERR_FORMAT, "%s is not an autodidact run file", run_file);
    }
    free(fmt);
    if ((st = ad_h5_attr_read_i64(file, "rounds_complete", &done)) ||
        (st = ad_h5_table_rows(file, "summary/round", &rows))) {
        ad_h5_close_quietly(file);
        return st;
    }
    if ((int64_t)rows > done) rows = (hsize_t)done;
    /* processes and threads per process (run files from before MPI have no "ranks": 1) */
    int64_t ranks = 1, threads = 0;
    int has_ranks = 0;
    if (!(st = ad_h5_attr_exists(file, "ranks", &has_ranks)) && has_ranks)
        st = ad_h5_attr_read_i64(file, "ranks", &ranks);
    if (!st) st = ad_h5_attr_read_i64(file, "threads", &threads);
    if (st) {
        ad_h5_close_quietly(file);
        return st;
    }
    const char *cols[] = {"summary/round", "summary/length_lo", "summary/length_hi", "summary/n_candidates",
                          "summary/n_selected", "summary/label_accuracy", "summary/candidate_accuracy",
                          "summary/train_loss", "summary/frontier_90", "summary/time_total"};
    enum { NC = 10 };
    double *v = ad_calloc((size_t)NC * (rows ? rows : 1), sizeof(double), "report");
    if (!v) {
        ad_h5_close_quietly(file);
        return AD_ERR_NOMEM;
    }
    for (int k = 0; k < NC && !st; k++) st = read_column(file, cols[k], rows, v + (size_t)k * rows);
    /* seconds per phase (time_write is absent from files written before it existed) */
    const char *tcols[] = {"summary/time_generate", "summary/time_score", "summary/time_train",
                           "summary/time_eval", "summary/time_write", "summary/time_total"};
    enum { NT = 6 };
    double *tv = ad_calloc((size_t)NT * (rows ? rows : 1), sizeof(double), "report");
    if (!tv) st = AD_ERR_NOMEM;
    for (int k = 0; k < NT && !st; k++) {
        int has = 0;
        st = ad_h5_exists(file, tcols[k], &has);
        if (!st && has) st = read_column(file, tcols[k], rows, tv + (size_t)k * rows);
        else for (hsize_t i = 0; i < rows; i++) tv[(size_t)k * rows + i] = NAN;
    }
    /* accuracy by length */
    int rank = 0;
    hsize_t eshape[2] = {0, 0};
    double *acc = NULL;
    int64_t *elen = NULL;
    if (!st && !(st = ad_h5_array_shape(file, "summary/eval_accuracy", 2, &rank, eshape)) && rank == 2 &&
        eshape[0] >= rows && eshape[1] > 0) {
        acc = ad_calloc(eshape[0] * eshape[1], sizeof(double), "report");
        elen = ad_calloc(eshape[1], sizeof(int64_t), "report");
        hsize_t lshape[1] = {eshape[1]};
        if (!acc || !elen) st = AD_ERR_NOMEM;
        if (!st) st = ad_h5_read_array(file, "summary/eval_accuracy", AD_H5_F64, 2, eshape, acc);
        if (!st) st = ad_h5_read_array(file, "eval_lengths", AD_H5_I64, 1, lshape, elen);
    }
    /* preference rounds (files written before these columns have none) */
    double *pv = NULL;
    int has_pairs = 0;
    if (!st && !ad_h5_exists(file, "summary/n_pairs", &has_pairs) && has_pairs) {
        const char *pcols[] = {"summary/n_pairs", "summary/pairs_dropped", "summary/pair_accuracy"};
        pv = ad_calloc(3 * (size_t)(rows ? rows : 1), sizeof(double), "report");
        if (!pv) st = AD_ERR_NOMEM;
        for (int k = 0; k < 3 && !st; k++) st = read_column(file, pcols[k], rows, pv + (size_t)k * rows);
        has_pairs = 0;
        for (hsize_t i = 0; !st && i < rows; i++) has_pairs |= pv[i] > 0 || pv[rows + i] > 0;
    }
    ad_h5_close_quietly(file);
    if (!st) {
        fprintf(f, "run %s: %lld complete round(s); %lld rank(s) x %lld thread(s)\n\n", run_file,
                (long long)done, (long long)ranks, (long long)threads);
        fprintf(f, "%5s %9s %10s %9s %9s %9s %10s %8s %8s\n", "round", "lengths", "candidates",
                "selected", "label acc", "cand acc", "train loss", "frontier", "time");
        for (hsize_t i = 0; i < rows; i++) {
#define COL(k) v[(size_t)(k) * rows + i]
            char lens[32], la[16], ca[16];
            if (COL(1) == 0 && COL(2) == 0) snprintf(lens, sizeof lens, "-");
            else snprintf(lens, sizeof lens, "%.0f..%.0f", COL(1), COL(2));
            if (isnan(COL(5))) snprintf(la, sizeof la, "-"); else snprintf(la, sizeof la, "%.1f%%", 100 * COL(5));
            if (isnan(COL(6))) snprintf(ca, sizeof ca, "-"); else snprintf(ca, sizeof ca, "%.1f%%", 100 * COL(6));
            char dur[32];
            ad_format_duration(COL(9), dur, sizeof dur);
            fprintf(f, "%5.0f %9s %10.0f %9.0f %9s %9s %10.4f %8.0f %8s\n", COL(0), lens, COL(3), COL(4),
                    la, ca, COL(7), COL(8), dur);
#undef COL
        }
        if (has_pairs) {
            fprintf(f, "\npreference pairs by round\n%5s %9s %9s %9s\n", "round", "pairs", "dropped",
                    "pair acc");
            for (hsize_t i = 0; i < rows; i++) {
                if (pv[i] == 0 && pv[rows + i] == 0) continue;
                char pa[16];
                if (isnan(pv[2 * rows + i])) snprintf(pa, sizeof pa, "-");
                else snprintf(pa, sizeof pa, "%.1f%%", 100 * pv[2 * rows + i]);
                fprintf(f, "%5llu %9.0f %9.0f %9s\n", (unsigned long long)i, pv[i], pv[rows + i], pa);
            }
        }
        fprintf(f, "\nseconds per phase\n%5s %9s %9s %9s %9s %9s %9s\n", "round", "generate",
                "score", "train", "evaluate", "write", "total");
        for (hsize_t i = 0; i < rows; i++) {
            fprintf(f, "%5llu", (unsigned long long)i);
            for (int k = 0; k < NT; k++) {
                double x = tv[(size_t)k * rows + i];
                if (isnan(x)) fprintf(f, " %9s", "-");
                else fprintf(f, " %9.1f", x);
            }
            fprintf(f, "\n");
        }
        if (acc) {
            fprintf(f, "\nexact-match accuracy (%%) by round (rows) and length (columns)\n%5s", "");
            for (hsize_t e = 0; e < eshape[1]; e++) fprintf(f, " %4lld", (long long)elen[e]);
            fprintf(f, "\n");
            for (hsize_t i = 0; i < rows; i++) {
                fprintf(f, "%5llu", (unsigned long long)i);
                for (hsize_t e = 0; e < eshape[1]; e++) fprintf(f, " %4.0f", 100 * acc[i * eshape[1] + e]);
                fprintf(f, "\n");
            }
        }
    }
    free(v);
    free(tv);
    free(pv);
    free(acc);
    free(elen);
    return st;
}

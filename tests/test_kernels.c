/* test_kernels.c: every op of kernels.h checked three ways: the fast kernels against their
 * naive twins on odd shapes, every backward against central finite differences of a
 * double-precision forward written here (independent of kernels.c), and the vectorisable
 * exp/tanh of fastmath.h against libm. The composed model is tested in test_model.c. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "../src/fastmath.h"
#include "autodidact/common.h"
#include "autodidact/kernels.h"
#include "autodidact/rng.h"
#include "testutil.h"

/* ---- tolerances ----------------------------------------------------------------
 * EPS32 = FLT_EPSILON = 2u (u = 2^-24, the float32 unit roundoff).
 *
 * Fast vs naive (matmul, attention): a float sum of n products carries an error of at most
 * gamma_n = n u / (1 - n u) times the sum of the absolute values of its terms, whatever the
 * summation order (blocked sgemm, FMA). The naive twins round a double sum once. Each
 * entry is therefore checked against (n + k) * EPS32 * sum|terms|, which is the worst-case
 * bound with a margin of 2; sum|terms| is computed here in double. A wrong index, a
 * missing or doubled term changes an entry by O(|terms|) and fails by orders of magnitude.
 *
 * Gradients: central differences of the double forward written in this file, step
 * FD_H * max(1, |x|): truncation error h^2 |f'''| / 6 ~ 1e-11 and roundoff 1e-16 |L| / h
 * ~ 1e-10 for these O(1..100) losses, so the finite difference is exact at float scale.
 * The analytic (float) gradient must match it entrywise within GRAD_TOL * max|g_fd| over
 * that array. Float backward ops sum at most a few hundred terms (error <= ~1e-5 of
 * the scale, measured below 1e-6), so 1e-4 leaves a margin of 10 or more while a wrong sign or
 * factor of 2 (error ~ max|g|) or a dropped term (the norm tests show those are >= 1e-2
 * of max|g|) fails. The float forward is separately checked against the same double
 * forward, so the chain float forward -> double forward -> FD -> float backward closes.
 *
 * Forward ops vs the double forward: FWD_TOL * max|ref| (sums of <= 130 float terms:
 * gamma_130 ~ 8e-6 of sum|terms|, which for these ops is within a few times max|out|). */
#define EPS32 ((double)FLT_EPSILON)
#define PI 3.14159265358979323846
#define EULER_E 2.71828182845904523536
#define FD_H 1e-5
#define GRAD_TOL 1e-4
#define FWD_TOL 1e-5
#define TIMEOUT 60

static int verbose(void) { return getenv("AD_TEST_VERBOSE") != NULL; }

/* ---- buffers and random fills ----------------------------------------------------- */

static float *fbuf(size_t n) {
    float *p = ad_alloc_floats(n ? n : 1, "test buffer");
    ck_assert_ptr_nonnull(p);
    return p;
}

static double *dbuf(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

static void fill_normal(float *x, size_t n, AdRng *r, float mean, float std) {
    for (size_t i = 0; i < n; i++) x[i] = mean + std * ad_rng_normal(r);
}

static void fill_value(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

static void to_double(double *d, const float *f, size_t n) {
    for (size_t i = 0; i < n; i++) d[i] = f[i];
}

static double max_abs(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* ---- comparison that names the worst entry ---------------------------------------- */

typedef struct {
    char what[160];
    double worst; /* worst |got - want| / tol seen (NaN or > 1 fails) */
    size_t at;
    double got, want, tol;
    int bad;
} Cmp;

static void cmp_init(Cmp *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cmp_init(Cmp *c, const char *fmt, ...) {
    memset(c, 0, sizeof *c);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->what, sizeof c->what, fmt, ap);
    va_end(ap);
}

static void cmp_add(Cmp *c, size_t i, double got, double want, double tol) {
    double e = fabs(got - want), r = e / tol;
    int fail = !(e <= tol);
    if ((fail && !c->bad) || (fail == c->bad && !(r <= c->worst))) {
        c->worst = isnan(r) ? INFINITY : r;
        c->at = i, c->got = got, c->want = want, c->tol = tol;
        c->bad = c->bad || fail;
    }
}

static void cmp_check(const Cmp *c) {
    if (verbose()) printf("%-60s worst |diff|/tol %.3g\n", c->what, c->worst);
    ck_assert_msg(!c->bad, "%s: entry %zu got %.9g want %.9g (|diff| %.3g > tol %.3g)", c->what,
                  c->at, c->got, c->want, fabs(c->got - c->want), c->tol);
}

/* max|got - want| / max|want|: the gradient error measure (see GRAD_TOL). */
static double grad_err(const double *got, const double *want, size_t n) {
    double e = 0, s = max_abs(want, n);
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        if (!(d <= e)) e = isnan(d) ? INFINITY : d;
    }
    return e / s;
}

/* Compares an analytic gradient with a finite-difference one. `pre` (may be NULL) is what
 * the gradient buffer held before an accumulating backward: the op must have added to it. */
static void expect_grad(const char *what, const float *got, const float *pre, const double *fd,
                        size_t n) {
    double scale = max_abs(fd, n);
    ck_assert_msg(scale > 1e-3, "%s: finite-difference gradient is ~0 (%.3g): test is vacuous",
                  what, scale);
    Cmp c;
    cmp_init(&c, "%s", what);
    for (size_t i = 0; i < n; i++)
        cmp_add(&c, i, (double)got[i] - (pre ? (double)pre[i] : 0.0), fd[i], GRAD_TOL * scale);
    cmp_check(&c);
}

/* Forward output against the double reference, within FWD_TOL * max|ref|. */
static void expect_fwd(const char *what, const float *got, const double *ref, size_t n) {
    double tol = FWD_TOL * fmax(max_abs(ref, n), 1e-30);
    Cmp c;
    cmp_init(&c, "%s", what);
    for (size_t i = 0; i < n; i++) cmp_add(&c, i, got[i], ref[i], tol);
    cmp_check(&c);
}

/* ---- double-precision reference forwards ------------------------------------------
 * Written from the textbook definitions, not from kernels.c. RefOp holds an op's inputs
 * (which the finite differences perturb in place), its sizes and a random projection R
 * of its output: the scalar loss is L = sum(out * R). */

enum { OP_ENCODER, OP_LAYERNORM, OP_RMSNORM, OP_MATMUL, OP_ROPE, OP_ATTENTION, OP_GELU,
       OP_SWIGLU };

typedef struct {
    int op;
    double *a, *b, *c; /* inputs: see ref_forward for each op */
    const int *tok;
    int B, T, C, N, OC, H, Hkv, hs, pos0, F;
    double eps, theta;
    const double *R;
    double *out;
    size_t nout;
} RefOp;

static double gelu_ref(double x) {
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / PI) * (x + 0.044715 * x * x * x)));
}

static double gelu_ref_grad(double x) {
    double k = sqrt(2.0 / PI), t = tanh(k * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

/* llama2.c's RoPE (run.c): pair j of every q and k head at position pos is rotated by
 * pos * freq, freq = 1 / theta^(2j / hs). */
static void rope_ref(double *qkv, int B, int T, int H, int Hkv, int hs, int pos0, double theta) {
    int QKV = (H + 2 * Hkv) * hs;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H + Hkv; h++)
                for (int i = 0; i < hs; i += 2) {
                    double freq = 1.0 / pow(theta, (double)i / hs);
                    double val = (pos0 + t) * freq, fcr = cos(val), fci = sin(val);
                    double *v = qkv + ((size_t)b * T + t) * QKV + (size_t)h * hs + i;
                    double v0 = v[0], v1 = v[1];
                    v[0] = v0 * fcr - v1 * fci;
                    v[1] = v0 * fci + v1 * fcr;
                }
}

/* Causal multi-head attention with grouped keys/values; att (B,H,T,T) may be NULL. */
static void attention_ref(double *out, double *att, const double *qkv, int B, int T, int H,
                          int Hkv, int hs) {
    int QKV = (H + 2 * Hkv) * hs, C = H * hs;
    double *p = dbuf((size_t)T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h * Hkv / H; /* the kv head of query head h */
            for (int i = 0; i < T; i++) {
                const double *q = qkv + ((size_t)b * T + i) * QKV + (size_t)h * hs;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * QKV + C + (size_t)g * hs;
                    double s = 0;
                    for (int d = 0; d < hs; d++) s += q[d] * k[d];
                    p[j] = s / sqrt((double)hs);
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j <= i; j++) sum += (p[j] = exp(p[j] - mx));
                double *o = out + ((size_t)b * T + i) * C + (size_t)h * hs;
                for (int d = 0; d < hs; d++) o[d] = 0;
                for (int j = 0; j <= i; j++) {
                    p[j] /= sum;
                    if (att) att[(((size_t)b * H + h) * T + i) * T + j] = p[j];
                    const double *v = qkv + ((size_t)b * T + j) * QKV + C + (size_t)(Hkv + g) * hs;
                    for (int d = 0; d < hs; d++) o[d] += p[j] * v[d];
                }
            }
        }
    free(p);
}

static void ref_forward(RefOp *o) {
    double *out = o->out;
    switch (o->op) {
    case OP_ENCODER: /* a = wte (V,C), b = wpe (T,C) or NULL */
        for (int bt = 0; bt < o->B * o->T; bt++)
            for (int c = 0; c < o->C; c++)
                out[(size_t)bt * o->C + c] = o->a[(size_t)o->tok[bt] * o->C + c] +
                                             (o->b ? o->b[(size_t)(bt % o->T) * o->C + c] : 0.0);
        break;
    case OP_LAYERNORM: /* a = x (N,C), b = w (C), c = bias (C) or NULL */
    case OP_RMSNORM:   /* a = x, b = w */
        for (int i = 0; i < o->N; i++) {
            const double *x = o->a + (size_t)i * o->C;
            double mean = 0, var = 0;
            if (o->op == OP_LAYERNORM) {
                for (int c = 0; c < o->C; c++) mean += x[c] / o->C;
            }
            for (int c = 0; c < o->C; c++) var += (x[c] - mean) * (x[c] - mean) / o->C;
            double s = 1.0 / sqrt(var + o->eps);
            for (int c = 0; c < o->C; c++)
                out[(size_t)i * o->C + c] = (x[c] - mean) * s * o->b[c] + (o->c ? o->c[c] : 0.0);
        }
        break;
    case OP_MATMUL: /* a = x (N,C), b = w (OC,C), c = bias (OC) or NULL */
        for (int i = 0; i < o->N; i++)
            for (int k = 0; k < o->OC; k++) {
                double s = o->c ? o->c[k] : 0.0;
                for (int c = 0; c < o->C; c++)
                    s += o->a[(size_t)i * o->C + c] * o->b[(size_t)k * o->C + c];
                out[(size_t)i * o->OC + k] = s;
            }
        break;
    case OP_ROPE: /* a = qkv; out = rotated copy */
        memcpy(out, o->a, sizeof(double) * o->nout);
        rope_ref(out, o->B, o->T, o->H, o->Hkv, o->hs, o->pos0, o->theta);
        break;
    case OP_ATTENTION: /* a = qkv */
        attention_ref(out, NULL, o->a, o->B, o->T, o->H, o->Hkv, o->hs);
        break;
    case OP_GELU: /* a = x (n) */
        for (size_t i = 0; i < o->nout; i++) out[i] = gelu_ref(o->a[i]);
        break;
    case OP_SWIGLU: /* a = inp (N, 2F) rows [gate | up] */
        for (int i = 0; i < o->N; i++)
            for (int j = 0; j < o->F; j++) {
                const double *row = o->a + (size_t)i * 2 * o->F;
                double g = row[j], u = row[o->F + j];
                out[(size_t)i * o->F + j] = g / (1.0 + exp(-g)) * u;
            }
        break;
    default:
        ck_abort_msg("unknown op %d", o->op);
    }
}

static double ref_loss(RefOp *o) {
    ref_forward(o);
    double L = 0;
    for (size_t i = 0; i < o->nout; i++) L += o->out[i] * o->R[i];
    return L;
}

/* g = dL/dx by central differences, x being one of o's input arrays. */
static void fd_grad(double *g, double *x, size_t n, RefOp *o) {
    for (size_t i = 0; i < n; i++) {
        double xi = x[i], h = FD_H * fmax(1.0, fabs(xi));
        x[i] = xi + h;
        double lp = ref_loss(o);
        x[i] = xi - h;
        double lm = ref_loss(o);
        x[i] = xi;
        g[i] = (lp - lm) / (2 * h);
    }
}

/* R: random projection of an output, as float (the dout fed to the backward) and double. */
static void make_proj(float **Rf, double **Rd, size_t n, AdRng *rng) {
    *Rf = fbuf(n);
    *Rd = dbuf(n);
    fill_normal(*Rf, n, rng, 0.0f, 1.0f);
    to_double(*Rd, *Rf, n);
}

/* ==================================================================== matmul */

static const int MM_N[] = {1, 7, 33, 130}, MM_C[] = {1, 3, 17}, MM_OC[] = {1, 5, 40};

START_TEST(test_matmul_forward_vs_naive) {
    AdRng rng;
    ad_rng_init(&rng, 11, 100, 0);
    for (int in = 0; in < 4; in++)
        for (int ic = 0; ic < 3; ic++)
            for (int io = 0; io < 3; io++)
                for (int variant = 0; variant < 4; variant++) {
                    int N = MM_N[in], C = MM_C[ic], OC = MM_OC[io];
                    int bias = variant & 1, acc = variant >> 1;
                    float *x = fbuf((size_t)N * C), *w = fbuf((size_t)OC * C), *b = fbuf(OC);
                    float *out0 = fbuf((size_t)N * OC), *fast = fbuf((size_t)N * OC),
                          *naive = fbuf((size_t)N * OC);
                    fill_normal(x, (size_t)N * C, &rng, 0.0f, 1.0f);
                    fill_normal(w, (size_t)OC * C, &rng, 0.0f, 1.0f);
                    fill_normal(b, OC, &rng, 0.0f, 1.0f);
                    /* Not accumulating: garbage that must be overwritten. */
                    if (acc)
                        fill_normal(out0, (size_t)N * OC, &rng, 0.0f, 1.0f);
                    else
                        fill_value(out0, (size_t)N * OC, NAN);
                    memcpy(fast, out0, sizeof(float) * N * OC);
                    memcpy(naive, out0, sizeof(float) * N * OC);
                    ad_matmul_forward(fast, x, w, bias ? b : NULL, N, C, OC, acc);
                    ad_matmul_forward_naive(naive, x, w, bias ? b : NULL, N, C, OC, acc);
                    Cmp c;
                    cmp_init(&c, "matmul forward N=%d C=%d OC=%d bias=%d accumulate=%d", N, C,
                             OC, bias, acc);
                    for (int i = 0; i < N; i++)
                        for (int o = 0; o < OC; o++) {
                            size_t k = (size_t)i * OC + o;
                            double absum = (bias ? fabs(b[o]) : 0) + (acc ? fabs(out0[k]) : 0);
                            double exact = (bias ? b[o] : 0) + (acc ? out0[k] : 0);
                            for (int j = 0; j < C; j++) {
                                absum += fabs((double)x[(size_t)i * C + j] * w[(size_t)o * C + j]);
                                exact += (double)x[(size_t)i * C + j] * w[(size_t)o * C + j];
                            }
                            double tol = (C + 3) * EPS32 * absum + 1e-30;
                            cmp_add(&c, k, fast[k], naive[k], tol);
                            /* The naive twin itself is checked once against the exact sum. */
                            ck_assert_msg(fabs(naive[k] - exact) <= 2 * EPS32 * absum + 1e-30,
                                          "%s: naive twin wrong at %zu", c.what, k);
                        }
                    cmp_check(&c);
                    free(x), free(w), free(b), free(out0), free(fast), free(naive);
                }
}
END_TEST

/* The decoding product: against the naive twin like sgemm, and each row bit for bit the
 * same computed alone, among N rows, or on another thread count (its promise). */
START_TEST(test_matmul_packed) {
    static const int PN[] = {1, 2, 3, 4, 5, 7, 9, 33, 130}, PC[] = {1, 3, 17, 64},
                     PO[] = {1, 5, 17, 40};
    AdRng rng;
    ad_rng_init(&rng, 12, 100, 0);
    long rows = 0;
    for (int in = 0; in < 9; in++)
        for (int ic = 0; ic < 4; ic++)
            for (int io = 0; io < 4; io++)
                for (int variant = 0; variant < 4; variant++) {
                    int N = PN[in], C = PC[ic], OC = PO[io], bias = variant & 1, acc = variant >> 1;
                    float *x = fbuf((size_t)N * C), *w = fbuf((size_t)OC * C), *b = fbuf(OC);
                    float *wp = fbuf(ad_packed_size(OC, C)), *out0 = fbuf((size_t)N * OC);
                    float *fast = fbuf((size_t)N * OC), *naive = fbuf((size_t)N * OC),
                          *one = fbuf(OC);
                    fill_normal(x, (size_t)N * C, &rng, 0.0f, 1.0f);
                    fill_normal(w, (size_t)OC * C, &rng, 0.0f, 1.0f);
                    fill_normal(b, OC, &rng, 0.0f, 1.0f);
                    if (acc)
                        fill_normal(out0, (size_t)N * OC, &rng, 0.0f, 1.0f);
                    else
                        fill_value(out0, (size_t)N * OC, NAN);
                    fill_value(wp, ad_packed_size(OC, C), NAN);
                    ad_pack_panels(wp, w, OC, C);
                    memcpy(fast, out0, sizeof(float) * N * OC);
                    memcpy(naive, out0, sizeof(float) * N * OC);
                    ad_set_threads(2);
                    ad_matmul_forward_packed(fast, x, wp, bias ? b : NULL, N, C, OC, acc);
                    ad_matmul_forward_naive(naive, x, w, bias ? b : NULL, N, C, OC, acc);
                    Cmp c;
                    cmp_init(&c, "packed matmul N=%d C=%d OC=%d bias=%d accumulate=%d", N, C, OC,
                             bias, acc);
                    for (int i = 0; i < N; i++)
                        for (int o = 0; o < OC; o++) {
                            size_t k = (size_t)i * OC + o;
                            double absum = (bias ? fabs(b[o]) : 0) + (acc ? fabs(out0[k]) : 0);
                            for (int j = 0; j < C; j++)
                                absum += fabs((double)x[(size_t)i * C + j] * w[(size_t)o * C + j]);
                            cmp_add(&c, k, fast[k], naive[k], (C + 3) * EPS32 * absum + 1e-30);
                        }
                    cmp_check(&c);
                    ad_set_threads(1);
                    for (int i = 0; i < N; i++) {
                        memcpy(one, out0 + (size_t)i * OC, sizeof(float) * OC);
                        ad_matmul_forward_packed(one, x + (size_t)i * C, wp, bias ? b : NULL, 1, C,
                                                 OC, acc);
                        ck_assert_msg(memcmp(one, fast + (size_t)i * OC, sizeof(float) * OC) == 0,
                                      "%s: row %d alone on 1 thread differs from the batch on 2",
                                      c.what, i);
                        rows++;
                    }
                    ad_set_threads(2);
                    free(x), free(w), free(b), free(wp), free(out0), free(fast), free(naive);
                    free(one);
                }
    printf("packed matmul: %ld rows bit-identical alone and batched\n", rows);
}
END_TEST

START_TEST(test_matmul_backward_vs_naive) {
    AdRng rng;
    ad_rng_init(&rng, 12, 100, 0);
    for (int in = 0; in < 4; in++)
        for (int ic = 0; ic < 3; ic++)
            for (int io = 0; io < 3; io++)
                for (int variant = 0; variant < 4; variant++) {
                    int N = MM_N[in], C = MM_C[ic], OC = MM_OC[io];
                    int with_dinp = variant & 1, with_db = variant >> 1;
                    size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
                    float *x = fbuf(nx), *w = fbuf(nw), *dout = fbuf(no);
                    float *dinp_f = fbuf(nx), *dinp_n = fbuf(nx);
                    float *dw0 = fbuf(nw), *dw_f = fbuf(nw), *dw_n = fbuf(nw);
                    float *db0 = fbuf(OC), *db_f = fbuf(OC), *db_n = fbuf(OC);
                    fill_normal(x, nx, &rng, 0.0f, 1.0f);
                    fill_normal(w, nw, &rng, 0.0f, 1.0f);
                    fill_normal(dout, no, &rng, 0.0f, 1.0f);
                    fill_value(dinp_f, nx, NAN); /* dinp is overwritten */
                    fill_value(dinp_n, nx, NAN);
                    fill_normal(dw0, nw, &rng, 0.0f, 1.0f); /* dw, db accumulate */
                    fill_normal(db0, OC, &rng, 0.0f, 1.0f);
                    memcpy(dw_f, dw0, sizeof(float) * nw), memcpy(dw_n, dw0, sizeof(float) * nw);
                    memcpy(db_f, db0, sizeof(float) * OC), memcpy(db_n, db0, sizeof(float) * OC);
                    ad_matmul_backward(with_dinp ? dinp_f : NULL, dw_f, with_db ? db_f : NULL,
                                       dout, x, w, N, C, OC);
                    ad_matmul_backward_naive(with_dinp ? dinp_n : NULL, dw_n,
                                             with_db ? db_n : NULL, dout, x, w, N, C, OC);
                    char tag[96];
                    snprintf(tag, sizeof tag, "N=%d C=%d OC=%d dinp=%d db=%d", N, C, OC,
                             with_dinp, with_db);
                    Cmp c;
                    if (with_dinp) {
                        cmp_init(&c, "matmul backward dinp %s", tag);
                        for (int i = 0; i < N; i++)
                            for (int j = 0; j < C; j++) {
                                double absum = 0;
                                for (int o = 0; o < OC; o++)
                                    absum += fabs((double)dout[(size_t)i * OC + o] *
                                                  w[(size_t)o * C + j]);
                                size_t k = (size_t)i * C + j;
                                cmp_add(&c, k, dinp_f[k], dinp_n[k],
                                        (OC + 3) * EPS32 * absum + 1e-30);
                            }
                        cmp_check(&c);
                    } else {
                        for (size_t i = 0; i < nx; i++)
                            ck_assert_msg(isnan(dinp_f[i]), "%s: dinp NULL but written", tag);
                    }
                    cmp_init(&c, "matmul backward dw %s", tag);
                    for (int o = 0; o < OC; o++)
                        for (int j = 0; j < C; j++) {
                            double absum = fabs(dw0[(size_t)o * C + j]);
                            for (int i = 0; i < N; i++)
                                absum += fabs((double)dout[(size_t)i * OC + o] *
                                              x[(size_t)i * C + j]);
                            cmp_add(&c, (size_t)o * C + j, dw_f[(size_t)o * C + j],
                                    dw_n[(size_t)o * C + j], (N + 3) * EPS32 * absum);
                        }
                    cmp_check(&c);
                    cmp_init(&c, "matmul backward db %s", tag);
                    for (int o = 0; o < OC; o++) {
                        double absum = fabs(db0[o]);
                        for (int i = 0; i < N; i++) absum += fabs(dout[(size_t)i * OC + o]);
                        if (with_db)
                            cmp_add(&c, o, db_f[o], db_n[o], (N + 3) * EPS32 * absum);
                        else
                            cmp_add(&c, o, db_f[o], db0[o], 0.0); /* untouched */
                    }
                    cmp_check(&c);
                    free(x), free(w), free(dout), free(dinp_f), free(dinp_n);
                    free(dw0), free(dw_f), free(dw_n), free(db0), free(db_f), free(db_n);
                }
}
END_TEST

/* Finite differences of L = sum((x w^T + b) * R) with respect to x, w and b. */
START_TEST(test_matmul_grad_fd) {
    AdRng rng;
    ad_rng_init(&rng, 13, 100, 0);
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 4}, {7, 17, 5}};
    for (int s = 0; s < 3; s++)
        for (int bias = 0; bias < 2; bias++) {
            int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
            size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
            float *x = fbuf(nx), *w = fbuf(nw), *b = fbuf(OC), *out = fbuf(no);
            fill_normal(x, nx, &rng, 0.0f, 1.0f);
            fill_normal(w, nw, &rng, 0.0f, 1.0f);
            fill_normal(b, OC, &rng, 0.0f, 1.0f);
            float *Rf;
            double *Rd;
            make_proj(&Rf, &Rd, no, &rng);
            double *xd = dbuf(nx), *wd = dbuf(nw), *bd = dbuf(OC), *od = dbuf(no);
            to_double(xd, x, nx), to_double(wd, w, nw), to_double(bd, b, OC);
            RefOp op = {.op = OP_MATMUL, .a = xd, .b = wd, .c = bias ? bd : NULL, .N = N, .C = C,
                        .OC = OC, .R = Rd, .out = od, .nout = no};
            char tag[64];
            snprintf(tag, sizeof tag, "N=%d C=%d OC=%d bias=%d", N, C, OC, bias);
            char what[128];

            ad_matmul_forward(out, x, w, bias ? b : NULL, N, C, OC, 0);
            ref_forward(&op);
            snprintf(what, sizeof what, "matmul forward vs double %s", tag);
            expect_fwd(what, out, od, no);

            float *dx = fbuf(nx), *dw = fbuf(nw), *db = fbuf(OC), *dw0 = fbuf(nw), *db0 = fbuf(OC);
            fill_value(dx, nx, NAN);
            fill_normal(dw0, nw, &rng, 0.0f, 1.0f);
            fill_normal(db0, OC, &rng, 0.0f, 1.0f);
            memcpy(dw, dw0, sizeof(float) * nw), memcpy(db, db0, sizeof(float) * OC);
            ad_matmul_backward(dx, dw, bias ? db : NULL, Rf, x, w, N, C, OC);
            double *g = dbuf(nx > nw ? nx : nw);
            fd_grad(g, xd, nx, &op);
            snprintf(what, sizeof what, "matmul dinp (overwrite) %s", tag);
            expect_grad(what, dx, NULL, g, nx);
            fd_grad(g, wd, nw, &op);
            snprintf(what, sizeof what, "matmul dw (+=) %s", tag);
            expect_grad(what, dw, dw0, g, nw);
            if (bias) {
                fd_grad(g, bd, OC, &op);
                snprintf(what, sizeof what, "matmul db (+=) %s", tag);
                expect_grad(what, db, db0, g, OC);
            }
            free(x), free(w), free(b), free(out), free(Rf), free(Rd), free(xd), free(wd);
            free(bd), free(od), free(dx), free(dw), free(db), free(dw0), free(db0), free(g);
        }
}
END_TEST

/* ==================================================================== attention */

typedef struct {
    int B, T, H, Hkv, hs;
} AttShape;

static size_t att_qkv_size(AttShape s) { return (size_t)s.B * s.T * (s.H + 2 * s.Hkv) * s.hs; }
static size_t att_out_size(AttShape s) { return (size_t)s.B * s.T * s.H * s.hs; }
static size_t att_p_size(AttShape s) { return (size_t)s.B * s.H * s.T * s.T; }
/* Per-thread attention-backward scratch as kernels.h sizes it. */
static size_t att_scratch_n(AttShape s) { return (size_t)omp_get_max_threads() * AD_ATT_SCRATCH(s.T); }
static float *att_scratch(AttShape s) { return fbuf(att_scratch_n(s)); }

/* q, k scaled by 1.5 so the softmax is far from uniform; v ~ N(0, 1). */
static void att_fill_qkv(float *qkv, AttShape s, AdRng *rng) {
    int C = s.H * s.hs, QKV = (s.H + 2 * s.Hkv) * s.hs;
    for (size_t r = 0; r < (size_t)s.B * s.T; r++)
        for (int j = 0; j < QKV; j++)
            qkv[r * QKV + j] = (j < C + s.Hkv * s.hs ? 1.5f : 1.0f) * ad_rng_normal(rng);
}

static const int ATT_T[] = {1, 5, 63, 64, 65, 129};
static const int ATT_HH[][2] = {{1, 1}, {4, 4}, {4, 2}, {6, 3}, {8, 1}};

/* Fast forward vs naive twin. Error model (see the top): a score s = q.k / sqrt(hs) is a
 * float sum of hs products, off by delta <= (hs+1) EPS32 sum|q k| / sqrt(hs); subtracting
 * the row max adds EPS32 |s - max|; exp adds 2 ulp; normalising by a float sum of <= T terms
 * adds gamma_T. So each probability has relative error E <= 2 delta + EPS32 (2 max|s| + T + 8),
 * and each output (a float sum of T terms p v) is off by (E + (T+4) EPS32) * sum p|v|. The
 * upper triangle of att is outside the contract and not compared; the outputs and att are
 * pre-filled with NaN so that any read of an unwritten entry shows. */
START_TEST(test_attention_forward_vs_naive) {
    AdRng rng;
    ad_rng_init(&rng, 21, 100, 0);
    const int HS[] = {8, 3};
    for (int it = 0; it < 6; it++)
        for (int ih = 0; ih < 5; ih++)
            for (int is = 0; is < 2; is++) {
                AttShape s = {it % 2 ? 2 : 1, ATT_T[it], ATT_HH[ih][0], ATT_HH[ih][1], HS[is]};
                int T = s.T, H = s.H, Hkv = s.Hkv, hs = s.hs, C = H * hs, QKV = (H + 2 * Hkv) * hs;
                size_t nq = att_qkv_size(s), no = att_out_size(s), np = att_p_size(s);
                float *qkv = fbuf(nq), *of = fbuf(no), *on = fbuf(no);
                float *pf = fbuf(np), *pn = fbuf(np);
                att_fill_qkv(qkv, s, &rng);
                fill_value(of, no, NAN), fill_value(on, no, NAN);
                fill_value(pf, np, NAN), fill_value(pn, np, NAN);
                int W = ih % 2 ? 3 : 0; /* every other shape with a sliding window of 3 */
                ad_attention_forward(of, pf, qkv, s.B, T, H, Hkv, hs, W);
                ad_attention_forward_naive(on, pn, qkv, s.B, T, H, Hkv, hs, W);
                double delta = 0, smax = 0, vmax = 0;
                for (int b = 0; b < s.B; b++)
                    for (int h = 0; h < H; h++)
                        for (int i = 0; i < T; i++)
                            for (int j = 0; j <= i; j++) {
                                const float *q = qkv + ((size_t)b * T + i) * QKV + h * hs;
                                const float *k =
                                    qkv + ((size_t)b * T + j) * QKV + C + (h * Hkv / H) * hs;
                                double a = 0, sc = 0;
                                for (int d = 0; d < hs; d++) {
                                    a += fabs((double)q[d] * k[d]);
                                    sc += (double)q[d] * k[d];
                                }
                                delta = fmax(delta, (hs + 1) * EPS32 * a / sqrt(hs));
                                smax = fmax(smax, fabs(sc / sqrt(hs)));
                            }
                for (size_t r = 0; r < (size_t)s.B * T; r++)
                    for (int j = C + Hkv * hs; j < QKV; j++)
                        vmax = fmax(vmax, fabs(qkv[r * QKV + j]));
                double E = 2 * delta + EPS32 * (2 * smax + T + 8);
                char tag[96];
                snprintf(tag, sizeof tag, "B=%d T=%d H=%d Hkv=%d hs=%d window=%d", s.B, T, H, Hkv, hs, W);
                Cmp c;
                cmp_init(&c, "attention forward att (j <= i) %s", tag);
                for (int bh = 0; bh < s.B * H; bh++)
                    for (int i = 0; i < T; i++)
                        for (int j = 0; j <= i; j++) {
                            size_t k = ((size_t)bh * T + i) * T + j;
                            cmp_add(&c, k, pf[k], pn[k], E * pn[k] + 4 * FLT_MIN);
                            /* outside the window: exactly zero (backward relies on it) */
                            if (W && j <= i - W)
                                ck_assert_msg(pf[k] == 0.0f && pn[k] == 0.0f, "%s: att[%d][%d] "
                                              "= %g outside the window", tag, i, j, pf[k]);
                        }
                cmp_check(&c);
                cmp_init(&c, "attention forward out %s", tag);
                for (size_t k = 0; k < no; k++)
                    cmp_add(&c, k, of[k], on[k], (E + (T + 4) * EPS32) * vmax);
                cmp_check(&c);
                free(qkv), free(of), free(on), free(pf), free(pn);
            }
}
END_TEST

/* Double backward of the attention from given probabilities P (float, as the kernels take
 * them), with `ab` = the first-order worst-case float error coefficient of each entry: the
 * sum of the absolute values of every term and intermediate that a float implementation
 * rounds, so that |float - exact| <= gamma_n * ab with n the longest chain of sums. */
static void attention_backward_ref(double *g, double *ab, const float *dout, const float *qkv,
                                   const float *att, AttShape s) {
    int T = s.T, H = s.H, Hkv = s.Hkv, hs = s.hs, C = H * hs, QKV = (H + 2 * Hkv) * hs;
    double scale = 1.0 / sqrt((double)hs);
    size_t nq = att_qkv_size(s);
    memset(g, 0, sizeof(double) * nq), memset(ab, 0, sizeof(double) * nq);
    double *dP = dbuf(T), *A = dbuf(T);
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < H; h++) {
            int gk = h * Hkv / H;
            const float *P = att + ((size_t)b * H + h) * T * T;
            for (int i = 0; i < T; i++) {
                const float *dO = dout + ((size_t)b * T + i) * C + h * hs;
                const float *q = qkv + ((size_t)b * T + i) * QKV + h * hs;
                size_t qi = ((size_t)b * T + i) * QKV + h * hs;
                double dot = 0, D = 0;
                for (int j = 0; j <= i; j++) {
                    const float *v = qkv + ((size_t)b * T + j) * QKV + C + (Hkv + gk) * hs;
                    size_t vj = ((size_t)b * T + j) * QKV + C + (Hkv + gk) * hs;
                    dP[j] = 0, A[j] = 0;
                    for (int d = 0; d < hs; d++) {
                        dP[j] += (double)dO[d] * v[d];
                        A[j] += fabs((double)dO[d] * v[d]);
                        g[vj + d] += P[(size_t)i * T + j] * (double)dO[d];
                        ab[vj + d] += fabs(P[(size_t)i * T + j] * (double)dO[d]);
                    }
                    dot += P[(size_t)i * T + j] * dP[j];
                    D += P[(size_t)i * T + j] * (fabs(dP[j]) + A[j]);
                }
                for (int j = 0; j <= i; j++) {
                    double p = P[(size_t)i * T + j];
                    double ds = p * (dP[j] - dot) * scale;
                    double S = p * scale * (A[j] + D + fabs(dP[j]) + fabs(dot)) + fabs(ds);
                    const float *k = qkv + ((size_t)b * T + j) * QKV + C + gk * hs;
                    size_t kj = ((size_t)b * T + j) * QKV + C + gk * hs;
                    for (int d = 0; d < hs; d++) {
                        g[qi + d] += ds * k[d];
                        ab[qi + d] += S * fabs(k[d]);
                        g[kj + d] += ds * q[d];
                        ab[kj + d] += S * fabs(q[d]);
                    }
                }
            }
        }
    free(dP), free(A);
}

/* One decoding query against keys stored transposed and values as rows (strided), in
 * double: the same bound as the full attention above. */
START_TEST(test_attention_decode) {
    static const int NP[] = {1, 5, 8, 31, 33, 70}, HSS[] = {1, 3, 8, 10, 16};
    AdRng rng;
    ad_rng_init(&rng, 23, 100, 0);
    for (int ip = 0; ip < 6; ip++)
        for (int ih = 0; ih < 5; ih++) {
            int np = NP[ip], hs = HSS[ih], ldk = np + 3, ldv = hs + 2;
            float *q = fbuf(hs), *kt = fbuf((size_t)hs * ldk), *v = fbuf((size_t)np * ldv);
            float *out = fbuf(hs), *sc = fbuf(np);
            fill_normal(q, hs, &rng, 0.0f, 1.0f);
            fill_normal(kt, (size_t)hs * ldk, &rng, 0.0f, 1.0f);
            fill_normal(v, (size_t)np * ldv, &rng, 0.0f, 1.0f);
            fill_value(out, hs, NAN);
            ad_attention_decode(out, sc, q, kt, v, np, hs, ldk, ldv);
            double *p = dbuf(np), mx = -INFINITY, sum = 0, delta = 0, smax = 0, vmax = 0;
            for (int j = 0; j < np; j++) {
                double a = 0, z = 0;
                for (int d = 0; d < hs; d++) {
                    z += (double)q[d] * kt[(size_t)d * ldk + j];
                    a += fabs((double)q[d] * kt[(size_t)d * ldk + j]);
                }
                p[j] = z / sqrt(hs);
                mx = fmax(mx, p[j]);
                delta = fmax(delta, (hs + 1) * EPS32 * a / sqrt(hs));
                smax = fmax(smax, fabs(p[j]));
                for (int d = 0; d < hs; d++) vmax = fmax(vmax, fabs(v[(size_t)j * ldv + d]));
            }
            for (int j = 0; j < np; j++) sum += (p[j] = exp(p[j] - mx));
            double E = (2 * delta + EPS32 * (2 * smax + np + 8)) * vmax;
            for (int d = 0; d < hs; d++) {
                double ref = 0;
                for (int j = 0; j < np; j++) ref += p[j] / sum * v[(size_t)j * ldv + d];
                ck_assert_msg(fabs(out[d] - ref) <= E, "decode attention np=%d hs=%d channel %d: "
                              "%.9g vs %.9g (bound %.2e)", np, hs, d, out[d], ref, E);
            }
            free(q), free(kt), free(v), free(out), free(sc), free(p);
        }
}
END_TEST

START_TEST(test_attention_backward_vs_naive) {
    AdRng rng;
    ad_rng_init(&rng, 22, 100, 0);
    const int HS[] = {8, 3};
    for (int it = 0; it < 6; it++)
        for (int ih = 0; ih < 5; ih++)
            for (int is = 0; is < 2; is++) {
                AttShape s = {it % 2 ? 1 : 2, ATT_T[it], ATT_HH[ih][0], ATT_HH[ih][1], HS[is]};
                size_t nq = att_qkv_size(s), no = att_out_size(s), np = att_p_size(s);
                float *qkv = fbuf(nq), *out = fbuf(no), *att = fbuf(np), *dout = fbuf(no);
                float *gf = fbuf(nq), *gn = fbuf(nq), *scratch = att_scratch(s);
                double *gd = dbuf(nq), *ab = dbuf(nq);
                att_fill_qkv(qkv, s, &rng);
                fill_normal(dout, no, &rng, 0.0f, 1.0f);
                int W = ih % 2 ? 3 : 0; /* every other shape with a sliding window of 3 */
                ad_attention_forward(out, att, qkv, s.B, s.T, s.H, s.Hkv, s.hs, W);
                fill_value(gf, nq, NAN), fill_value(gn, nq, NAN); /* dqkv is overwritten */
                fill_value(scratch, att_scratch_n(s), NAN);
                ad_attention_backward(gf, scratch, dout, qkv, att, s.B, s.T, s.H, s.Hkv, s.hs);
                ad_attention_backward_naive(gn, dout, qkv, att, s.B, s.T, s.H, s.Hkv, s.hs);
                attention_backward_ref(gd, ab, dout, qkv, att, s);
                /* Longest float chain: dk, dv sum group*T terms, each from sums of hs and T. */
                double gamma = ((s.H / s.Hkv) * s.T + s.hs + s.T + 8) * EPS32;
                char tag[96];
                snprintf(tag, sizeof tag, "B=%d T=%d H=%d Hkv=%d hs=%d window=%d", s.B, s.T, s.H,
                         s.Hkv, s.hs, W);
                Cmp cf, cn, c2;
                cmp_init(&cf, "attention backward fast vs exact %s", tag);
                cmp_init(&cn, "attention backward naive vs exact %s", tag);
                cmp_init(&c2, "attention backward fast vs naive %s", tag);
                for (size_t k = 0; k < nq; k++) {
                    double tol = gamma * ab[k] + 1e-30;
                    cmp_add(&cf, k, gf[k], gd[k], tol);
                    cmp_add(&cn, k, gn[k], gd[k], tol);
                    cmp_add(&c2, k, gf[k], gn[k], 2 * tol);
                }
                cmp_check(&cf), cmp_check(&cn), cmp_check(&c2);
                free(qkv), free(out), free(att), free(dout), free(gf), free(gn), free(scratch);
                free(gd), free(ab);
            }
}
END_TEST

/* kernels.h: att is read only where j <= i. Entries above the diagonal are set to NaN
 * between forward and backward; the backward must give the same dqkv bit for bit. */
START_TEST(test_attention_backward_reads_lower_triangle_only) {
    AdRng rng;
    ad_rng_init(&rng, 23, 100, 0);
    const AttShape shapes[] = {{1, 5, 2, 1, 4}, {2, 65, 4, 2, 8}};
    for (int si = 0; si < 2; si++) {
        AttShape s = shapes[si];
        size_t nq = att_qkv_size(s), no = att_out_size(s), np = att_p_size(s);
        float *qkv = fbuf(nq), *out = fbuf(no), *att = fbuf(np), *dout = fbuf(no);
        float *g1 = fbuf(nq), *g2 = fbuf(nq), *scratch = att_scratch(s);
        att_fill_qkv(qkv, s, &rng);
        fill_normal(dout, no, &rng, 0.0f, 1.0f);
        ad_attention_forward(out, att, qkv, s.B, s.T, s.H, s.Hkv, s.hs, 0);
        ad_attention_backward(g1, scratch, dout, qkv, att, s.B, s.T, s.H, s.Hkv, s.hs);
        for (int bh = 0; bh < s.B * s.H; bh++)
            for (int i = 0; i < s.T; i++)
                for (int j = i + 1; j < s.T; j++) att[((size_t)bh * s.T + i) * s.T + j] = NAN;
        ad_attention_backward(g2, scratch, dout, qkv, att, s.B, s.T, s.H, s.Hkv, s.hs);
        size_t nbad = 0, first = 0;
        for (size_t k = 0; k < nq; k++)
            if (memcmp(&g1[k], &g2[k], sizeof(float)) != 0 && !nbad++) first = k;
        ck_assert_msg(nbad == 0,
                      "attention backward B=%d T=%d H=%d Hkv=%d hs=%d reads att above the "
                      "diagonal: with NaN there, %zu of %zu dqkv entries change (first at %zu: "
                      "%g -> %g)",
                      s.B, s.T, s.H, s.Hkv, s.hs, nbad, nq, first, g1[first], g2[first]);
        free(qkv), free(out), free(att), free(dout), free(g1), free(g2), free(scratch);
    }
}
END_TEST

/* FD through a random projection of the output: L = sum(out * R), over q, k and v. */
START_TEST(test_attention_grad_fd) {
    AdRng rng;
    ad_rng_init(&rng, 24, 100, 0);
    const AttShape shapes[] = {{1, 1, 1, 1, 2}, {2, 9, 4, 2, 4}, {1, 6, 6, 3, 3},
                               {1, 7, 8, 1, 2}, {1, 67, 2, 1, 2}};
    for (int si = 0; si < 5; si++) {
        AttShape s = shapes[si];
        size_t nq = att_qkv_size(s), no = att_out_size(s), np = att_p_size(s);
        float *qkv = fbuf(nq), *out = fbuf(no), *att = fbuf(np), *dqkv = fbuf(nq);
        float *scratch = att_scratch(s), *Rf;
        double *Rd, *qd = dbuf(nq), *od = dbuf(no), *g = dbuf(nq), *pd = dbuf(np);
        att_fill_qkv(qkv, s, &rng);
        make_proj(&Rf, &Rd, no, &rng);
        to_double(qd, qkv, nq);
        RefOp op = {.op = OP_ATTENTION, .a = qd, .B = s.B, .T = s.T, .H = s.H, .Hkv = s.Hkv,
                    .hs = s.hs, .R = Rd, .out = od, .nout = no};
        char what[128];
        ad_attention_forward(out, att, qkv, s.B, s.T, s.H, s.Hkv, s.hs, 0);
        attention_ref(od, pd, qd, s.B, s.T, s.H, s.Hkv, s.hs);
        snprintf(what, sizeof what, "attention forward vs double B=%d T=%d H=%d Hkv=%d hs=%d",
                 s.B, s.T, s.H, s.Hkv, s.hs);
        expect_fwd(what, out, od, no);
        fill_value(dqkv, nq, NAN);
        ad_attention_backward(dqkv, scratch, Rf, qkv, att, s.B, s.T, s.H, s.Hkv, s.hs);
        fd_grad(g, qd, nq, &op);
        if (s.T == 1) {
            /* One position: out = v, so dq = dk = 0 exactly and dv = R. */
            ck_assert_msg(max_abs(g, (size_t)(s.H + s.Hkv) * s.hs) < 1e-9, "T=1 FD dq/dk not 0");
        }
        snprintf(what, sizeof what, "attention dqkv (overwrite) B=%d T=%d H=%d Hkv=%d hs=%d", s.B,
                 s.T, s.H, s.Hkv, s.hs);
        expect_grad(what, dqkv, NULL, g, nq);
        free(qkv), free(out), free(att), free(dqkv), free(scratch), free(Rf), free(Rd);
        free(qd), free(od), free(g), free(pd);
    }
}
END_TEST

/* ==================================================================== encoder */

START_TEST(test_encoder) {
    AdRng rng;
    ad_rng_init(&rng, 31, 100, 0);
    const int B = 2, T = 7, C = 5, V = 4; /* 14 tokens over 4 ids: repeats guaranteed */
    int tok[14];
    for (int i = 0; i < B * T; i++) tok[i] = (int)ad_rng_below(&rng, V);
    tok[3] = tok[4] = tok[10] = 2; /* the same id at several positions and sequences */
    for (int with_wpe = 0; with_wpe < 2; with_wpe++) {
        size_t ne = (size_t)V * C, np = (size_t)T * C, no = (size_t)B * T * C;
        float *wte = fbuf(ne), *wpe = fbuf(np), *out = fbuf(no), *Rf;
        double *Rd, *ed = dbuf(ne), *pd = dbuf(np), *od = dbuf(no), *g = dbuf(ne + np);
        fill_normal(wte, ne, &rng, 0.0f, 1.0f);
        fill_normal(wpe, np, &rng, 0.0f, 1.0f);
        make_proj(&Rf, &Rd, no, &rng);
        to_double(ed, wte, ne), to_double(pd, wpe, np);
        RefOp op = {.op = OP_ENCODER, .a = ed, .b = with_wpe ? pd : NULL, .tok = tok, .B = B,
                    .T = T, .C = C, .R = Rd, .out = od, .nout = no};
        fill_value(out, no, NAN);
        ad_encoder_forward(out, tok, wte, with_wpe ? wpe : NULL, B, T, C);
        ref_forward(&op);
        for (size_t i = 0; i < no; i++) /* one float addition: correctly rounded */
            ck_assert_msg(out[i] == (float)od[i], "encoder forward wpe=%d entry %zu: %.9g vs %.9g",
                          with_wpe, i, out[i], od[i]);
        float *dwte = fbuf(ne), *dwpe = fbuf(np), *dwte0 = fbuf(ne), *dwpe0 = fbuf(np);
        fill_normal(dwte0, ne, &rng, 0.0f, 1.0f);
        fill_normal(dwpe0, np, &rng, 0.0f, 1.0f);
        memcpy(dwte, dwte0, sizeof(float) * ne), memcpy(dwpe, dwpe0, sizeof(float) * np);
        ad_encoder_backward(dwte, with_wpe ? dwpe : NULL, Rf, tok, B, T, C);
        fd_grad(g, ed, ne, &op);
        expect_grad(with_wpe ? "encoder dwte (+=), with wpe" : "encoder dwte (+=), no wpe", dwte,
                    dwte0, g, ne);
        if (with_wpe) {
            fd_grad(g, pd, np, &op);
            expect_grad("encoder dwpe (+=)", dwpe, dwpe0, g, np);
        } else {
            ck_assert(memcmp(dwpe, dwpe0, sizeof(float) * np) == 0);
        }
        free(wte), free(wpe), free(out), free(Rf), free(Rd), free(ed), free(pd), free(od);
        free(g), free(dwte), free(dwpe), free(dwte0), free(dwpe0);
    }
}
END_TEST

/* ==================================================================== norms */

/* LayerNorm (with and without bias) and RMSNorm: forward vs double, dinp/dw/db vs FD, all
 * accumulating onto a pre-filled gradient. Also shows the gradient bound is sharp enough:
 * the mean-subtraction and the projection terms of dinp are each far above GRAD_TOL. */
START_TEST(test_norms) {
    AdRng rng;
    ad_rng_init(&rng, 41, 100, 0);
    const int shapes[][2] = {{1, 3}, {7, 17}, {4, 130}};
    const float eps = 1e-5f;
    for (int kind = 0; kind < 3; kind++) /* 0 layernorm+bias, 1 layernorm, 2 rmsnorm */
        for (int si = 0; si < 3; si++) {
            int N = shapes[si][0], C = shapes[si][1], rms = kind == 2, bias = kind == 0;
            size_t nx = (size_t)N * C;
            float *x = fbuf(nx), *w = fbuf(C), *b = fbuf(C), *out = fbuf(nx), *mean = fbuf(N),
                  *rstd = fbuf(N), *Rf;
            fill_normal(x, nx, &rng, 0.5f, 2.0f);
            fill_normal(w, C, &rng, 1.0f, 0.3f);
            fill_normal(b, C, &rng, 0.0f, 0.2f);
            double *Rd, *xd = dbuf(nx), *wd = dbuf(C), *bd = dbuf(C), *od = dbuf(nx),
                        *g = dbuf(nx);
            make_proj(&Rf, &Rd, nx, &rng);
            to_double(xd, x, nx), to_double(wd, w, C), to_double(bd, b, C);
            RefOp op = {.op = rms ? OP_RMSNORM : OP_LAYERNORM, .a = xd, .b = wd,
                        .c = bias ? bd : NULL, .N = N, .C = C, .eps = eps, .R = Rd, .out = od,
                        .nout = nx};
            const char *name = rms ? "rmsnorm" : bias ? "layernorm+bias" : "layernorm";
            char what[128];
            if (rms)
                ad_rmsnorm_forward(out, rstd, x, w, N, C, eps);
            else
                ad_layernorm_forward(out, mean, rstd, x, w, bias ? b : NULL, N, C, eps);
            ref_forward(&op);
            snprintf(what, sizeof what, "%s forward N=%d C=%d", name, N, C);
            expect_fwd(what, out, od, nx);

            float *dx = fbuf(nx), *dw = fbuf(C), *db = fbuf(C), *dx0 = fbuf(nx), *dw0 = fbuf(C),
                  *db0 = fbuf(C);
            fill_normal(dx0, nx, &rng, 0.0f, 1.0f);
            fill_normal(dw0, C, &rng, 0.0f, 1.0f);
            fill_normal(db0, C, &rng, 0.0f, 1.0f);
            memcpy(dx, dx0, sizeof(float) * nx), memcpy(dw, dw0, sizeof(float) * C);
            memcpy(db, db0, sizeof(float) * C);
            if (rms)
                ad_rmsnorm_backward(dx, dw, Rf, x, w, rstd, N, C);
            else
                ad_layernorm_backward(dx, dw, bias ? db : NULL, Rf, x, w, mean, rstd, N, C);
            fd_grad(g, xd, nx, &op);
            snprintf(what, sizeof what, "%s dinp (+=) N=%d C=%d", name, N, C);
            expect_grad(what, dx, dx0, g, nx);
            if (C > 3) {
                /* Sharpness: drop the term through the mean (LayerNorm) or through rstd. */
                double *mut = dbuf(nx);
                for (int i = 0; i < N; i++) {
                    double mu = 0, ss = 0, dot = 0, sum_wd = 0;
                    for (int c = 0; c < C; c++) mu += xd[i * C + c] / C;
                    if (rms) mu = 0;
                    for (int c = 0; c < C; c++)
                        ss += (xd[i * C + c] - mu) * (xd[i * C + c] - mu) / C;
                    double s = 1.0 / sqrt(ss + eps);
                    for (int c = 0; c < C; c++) {
                        double wdc = wd[c] * Rd[i * C + c];
                        sum_wd += wdc / C;
                        dot += wdc * (xd[i * C + c] - mu) * s / C;
                    }
                    for (int c = 0; c < C; c++) /* add back the dropped term */
                        mut[i * C + c] = g[i * C + c] + (rms ? dot * (xd[i * C + c] - mu) * s * s
                                                              : sum_wd * s);
                }
                ck_assert_msg(grad_err(mut, g, nx) > 100 * GRAD_TOL,
                              "%s: a dropped term changes dinp by only %.3g of max|g|", what,
                              grad_err(mut, g, nx));
                free(mut);
            }
            fd_grad(g, wd, C, &op);
            snprintf(what, sizeof what, "%s dw (+=) N=%d C=%d", name, N, C);
            expect_grad(what, dw, dw0, g, C);
            if (bias) {
                fd_grad(g, bd, C, &op);
                snprintf(what, sizeof what, "%s db (+=) N=%d C=%d", name, N, C);
                expect_grad(what, db, db0, g, C);
            } else {
                ck_assert(memcmp(db, db0, sizeof(float) * C) == 0);
            }
            free(x), free(w), free(b), free(out), free(mean), free(rstd), free(Rf), free(Rd);
            free(xd), free(wd), free(bd), free(od), free(g), free(dx), free(dw), free(db);
            free(dx0), free(dw0), free(db0);
        }
}
END_TEST

/* ==================================================================== RoPE */

/* The tables against cos/sin of t / theta^(2j/hs) in double. The table stores the float
 * frequency, so the angle may differ by t * freq * 2^-24: tolerance 1e-7 + 1.2e-7 * angle. */
START_TEST(test_rope_tables) {
    const int maxT = 300, hs = 16, half = hs / 2;
    const float theta = 10000.0f;
    float *cs = fbuf((size_t)maxT * half), *sn = fbuf((size_t)maxT * half);
    ad_rope_tables(cs, sn, maxT, hs, theta, NULL);
    Cmp c;
    cmp_init(&c, "rope tables maxT=%d hs=%d", maxT, hs);
    for (int t = 0; t < maxT; t++)
        for (int j = 0; j < half; j++) {
            double a = t / pow(theta, 2.0 * j / hs), tol = 1e-7 + 1.2e-7 * a;
            cmp_add(&c, (size_t)t * half + j, cs[t * half + j], cos(a), tol);
            cmp_add(&c, (size_t)t * half + j, sn[t * half + j], sin(a), tol);
        }
    cmp_check(&c);
    free(cs), free(sn);
}
END_TEST

/* Forward against llama2.c's formula (rope_ref) at positions pos0..pos0+T-1, with v
 * untouched; backward against FD (it is the transpose), the adjoint identity
 * <fwd(x), y> = <x, bwd(y)>, and bwd(fwd(x)) = x (the rotation is orthogonal). */
START_TEST(test_rope) {
    AdRng rng;
    ad_rng_init(&rng, 51, 100, 0);
    const int shapes[][6] = {/* B, T, H, Hkv, hs, pos0 */ {1, 1, 1, 1, 2, 0},
                             {2, 5, 4, 2, 8, 3},
                             {1, 9, 6, 3, 4, 40}};
    const float theta = 10000.0f;
    for (int si = 0; si < 3; si++) {
        int B = shapes[si][0], T = shapes[si][1], H = shapes[si][2], Hkv = shapes[si][3],
            hs = shapes[si][4], pos0 = shapes[si][5], maxT = pos0 + T + 2;
        int QKV = (H + 2 * Hkv) * hs;
        size_t n = (size_t)B * T * QKV;
        float *cs = fbuf((size_t)maxT * hs / 2), *sn = fbuf((size_t)maxT * hs / 2);
        float *x = fbuf(n), *y = fbuf(n), *x0 = fbuf(n), *Rf;
        double *Rd, *xd = dbuf(n), *od = dbuf(n), *g = dbuf(n);
        ad_rope_tables(cs, sn, maxT, hs, theta, NULL);
        fill_normal(x0, n, &rng, 0.0f, 1.0f);
        memcpy(x, x0, sizeof(float) * n);
        make_proj(&Rf, &Rd, n, &rng);
        to_double(xd, x0, n);
        RefOp op = {.op = OP_ROPE, .a = xd, .B = B, .T = T, .H = H, .Hkv = Hkv, .hs = hs,
                    .pos0 = pos0, .theta = theta, .R = Rd, .out = od, .nout = n};
        char tag[96], what[160];
        snprintf(tag, sizeof tag, "B=%d T=%d H=%d Hkv=%d hs=%d pos0=%d", B, T, H, Hkv, hs, pos0);

        ad_rope_forward(x, cs, sn, B, T, H, Hkv, hs, pos0);
        ref_forward(&op);
        Cmp c;
        cmp_init(&c, "rope forward vs llama2.c formula %s", tag);
        /* Angles up to ~50 rad: float table error 50 * 2^-24 ~ 3e-6, |x| ~ 3. */
        for (size_t i = 0; i < n; i++) cmp_add(&c, i, x[i], od[i], 2e-5);
        cmp_check(&c);
        for (size_t r = 0; r < (size_t)B * T; r++) /* v heads are not rotated */
            ck_assert(memcmp(x + r * QKV + (H + Hkv) * hs, x0 + r * QKV + (H + Hkv) * hs,
                             sizeof(float) * Hkv * hs) == 0);

        memcpy(y, Rf, sizeof(float) * n);
        ad_rope_backward(y, cs, sn, B, T, H, Hkv, hs, pos0);
        fd_grad(g, xd, n, &op);
        snprintf(what, sizeof what, "rope backward vs FD %s", tag);
        expect_grad(what, y, NULL, g, n);
        double lhs = 0, rhs = 0, scale = 0;
        for (size_t i = 0; i < n; i++) {
            lhs += (double)x[i] * Rf[i]; /* <fwd(x0), R> */
            rhs += (double)x0[i] * y[i]; /* <x0, bwd(R)> */
            scale += fabs((double)x[i] * Rf[i]);
        }
        ck_assert_msg(fabs(lhs - rhs) <= 1e-6 * scale, "rope adjoint %s: %.9g vs %.9g", tag, lhs,
                      rhs);
        ad_rope_backward(x, cs, sn, B, T, H, Hkv, hs, pos0);
        cmp_init(&c, "rope bwd(fwd(x)) = x %s", tag);
        for (size_t i = 0; i < n; i++) cmp_add(&c, i, x[i], x0[i], 4 * EPS32 * (fabs(x0[i]) + 1));
        cmp_check(&c);
        free(cs), free(sn), free(x), free(y), free(x0), free(Rf), free(Rd), free(xd), free(od);
        free(g);
    }
}
END_TEST

/* ==================================================================== activations */

/* GELU forward over a dense sweep against the exact tanh formula in double. Error model:
 * ad_tanhf is within 2.5e-7 absolutely (test_fastmath), and the float rounding of its
 * argument u moves tanh by <= 4 u |u| (1 - t^2) <= 2 u; scaled by 0.5 |x|, plus 4 ulp of the
 * result: tol = |x| (1.25e-7 + EPS32) + 2 EPS32 |ref|. The derivative likewise, with the
 * tanh error amplified by |d g / d t| <= 0.5 + |x| |t| u'. */
START_TEST(test_gelu_exact) {
    const long n = 400001;
    float *x = fbuf(n), *y = fbuf(n), *ones = fbuf(n), *dx = fbuf(n);
    for (long i = 0; i < n; i++) x[i] = (float)(-10.0 + 20.0 * i / (n - 1));
    fill_value(ones, n, 1.0f);
    fill_value(dx, n, NAN);
    ad_gelu_forward(y, x, n);
    ad_gelu_backward(dx, ones, x, n);
    Cmp cf, cb;
    cmp_init(&cf, "gelu forward vs exact tanh formula on [-10, 10]");
    cmp_init(&cb, "gelu derivative vs exact formula on [-10, 10]");
    for (long i = 0; i < n; i++) {
        double xi = x[i], ref = gelu_ref(xi), k = sqrt(2.0 / PI);
        double t = tanh(k * (xi + 0.044715 * xi * xi * xi)), du = k * (1 + 3 * 0.044715 * xi * xi);
        cmp_add(&cf, i, y[i], ref, fabs(xi) * (1.25e-7 + EPS32) + 2 * EPS32 * fabs(ref) + 1e-30);
        double gref = gelu_ref_grad(xi);
        double tolg = (2.5e-7 + 4 * EPS32) * (0.5 + fabs(xi) * fabs(t) * du) +
                      4 * EPS32 * (0.5 * (1 + fabs(t)) + 0.5 * fabs(xi) * (1 + t * t) * du);
        cmp_add(&cb, i, dx[i], gref, tolg);
    }
    cmp_check(&cf), cmp_check(&cb);
    free(x), free(y), free(ones), free(dx);
}
END_TEST

START_TEST(test_gelu_swiglu_grad_fd) {
    AdRng rng;
    ad_rng_init(&rng, 61, 100, 0);
    for (int which = 0; which < 2; which++) { /* 0 gelu, 1 swiglu */
        const int N = 5, F = 7;
        size_t nin = which ? (size_t)N * 2 * F : (size_t)N * F, no = (size_t)N * F;
        float *x = fbuf(nin), *out = fbuf(no), *dx = fbuf(nin), *Rf;
        double *Rd, *xd = dbuf(nin), *od = dbuf(no), *g = dbuf(nin);
        fill_normal(x, nin, &rng, 0.0f, 2.0f);
        make_proj(&Rf, &Rd, no, &rng);
        to_double(xd, x, nin);
        RefOp op = {.op = which ? OP_SWIGLU : OP_GELU, .a = xd, .N = N, .F = F, .R = Rd,
                    .out = od, .nout = no};
        if (which)
            ad_swiglu_forward(out, x, N, F);
        else
            ad_gelu_forward(out, x, (long)no);
        ref_forward(&op);
        expect_fwd(which ? "swiglu forward vs double" : "gelu forward vs double", out, od, no);
        fill_value(dx, nin, NAN); /* both overwrite dinp */
        if (which)
            ad_swiglu_backward(dx, Rf, x, N, F);
        else
            ad_gelu_backward(dx, Rf, x, (long)no);
        fd_grad(g, xd, nin, &op);
        expect_grad(which ? "swiglu dinp (overwrite)" : "gelu dinp (overwrite)", dx, NULL, g, nin);
        free(x), free(out), free(dx), free(Rf), free(Rd), free(xd), free(od), free(g);
    }
}
END_TEST

/* Softmax rows against double, including large and spread-out logits and V = 1. The
 * relative error of each entry is <= EPS32 (2 max|x - max| + V + 8) (see attention);
 * entries below FLT_MIN may come out as FLT_MIN / sum (the exp clamp), hence + 2 FLT_MIN. */
START_TEST(test_softmax_rows) {
    AdRng rng;
    ad_rng_init(&rng, 71, 100, 0);
    const int shapes[][2] = {{1, 1}, {3, 7}, {4, 300}};
    for (int si = 0; si < 3; si++) {
        int N = shapes[si][0], V = shapes[si][1];
        size_t n = (size_t)N * V;
        float *x = fbuf(n), *p = fbuf(n);
        fill_normal(x, n, &rng, 0.0f, 3.0f);
        if (N > 2) x[V] = 120.0f, x[2 * V + 1] = -150.0f; /* overflow / underflow on naive exp */
        fill_value(p, n, NAN);
        ad_softmax_rows(p, x, N, V);
        Cmp c;
        cmp_init(&c, "softmax rows N=%d V=%d", N, V);
        for (int i = 0; i < N; i++) {
            double mx = -INFINITY, sum = 0, range = 0;
            for (int j = 0; j < V; j++) mx = fmax(mx, x[i * V + j]);
            for (int j = 0; j < V; j++) {
                sum += exp(x[i * V + j] - mx);
                range = fmax(range, mx - x[i * V + j]);
            }
            for (int j = 0; j < V; j++) {
                double ref = exp(x[i * V + j] - mx) / sum;
                cmp_add(&c, (size_t)i * V + j, p[i * V + j], ref,
                        ref * EPS32 * (2 * range + V + 8) + 2 * FLT_MIN);
            }
        }
        cmp_check(&c);
        free(x), free(p);
    }
}
END_TEST

/* ==================================================================== fastmath */

/* ad_expf over [-87, 88] in steps of 2e-6 (87.5 million points) against exp() in double.
 * Measured maximum relative error: 8.4e-8 (1.4 ulp) with -march=native, 8.2e-8 without;
 * the bound asserted is 1.5e-7 (2.5 ulp of 2^-24 relative). */
START_TEST(test_fastmath_expf) {
    double worst = 0, at = 0;
    for (long i = 0;; i++) {
        double xd = -87.0 + 2e-6 * i;
        if (xd > 88.0) break;
        float x = (float)xd;
        double e = exp((double)x), r = fabs(ad_expf(x) - e) / e;
        if (!(r <= worst)) worst = r, at = x;
    }
    if (verbose()) printf("ad_expf max relative error %.3g at %.9g\n", worst, at);
    ck_assert_msg(worst <= 1.5e-7, "ad_expf relative error %.3g at x = %.9g", worst, at);
    /* Exact points. */
    ck_assert(ad_expf(0.0f) == 1.0f);
    ck_assert(fabs(ad_expf(1.0f) - EULER_E) <= 2 * EPS32 * EULER_E);
    /* NaN in, NaN out (volatile: evaluated at run time, not folded). */
    volatile float qnan = NAN;
    ck_assert(isnan(ad_expf(qnan)));
    ck_assert(isnan(ad_expf(-qnan)));
    /* Saturation (documented behaviour): arguments are clamped to [-87.3365, 88.3763], so
     * large arguments and +inf give 2.406e38 (finite, not inf), and small arguments and -inf
     * give exp(-87.3365479) = 1.1754907e-38, just below FLT_MIN (not 0). Callers subtract
     * the row max first, so both ends only matter as "huge" and "negligible". */
    float big = ad_expf(INFINITY), tiny = ad_expf(-INFINITY);
    ck_assert_msg(isfinite(big) && big > 2.4e38f, "ad_expf(+inf) = %g", big);
    ck_assert_msg(ad_expf(100.0f) == big && ad_expf(88.5f) == big, "ad_expf(100) = %g",
                  ad_expf(100.0f));
    ck_assert_msg(fabs(tiny - exp(-87.3365478515625)) <= 1e-6 * FLT_MIN, "ad_expf(-inf) = %.9g",
                  tiny);
    ck_assert_msg(ad_expf(-100.0f) == tiny, "ad_expf(-100) = %.9g", ad_expf(-100.0f));
    /* Monotone across the whole range including the clamps. */
    float prev = ad_expf(-200.0f);
    for (float x = -200.0f; x < 200.0f; x += 0.01f) {
        float e = ad_expf(x);
        ck_assert_msg(e >= prev, "ad_expf not monotone at %g", x);
        prev = e;
    }
}
END_TEST

/* ad_tanhf over [-20, 20] in steps of 1e-6 against tanh() in double. Measured: absolute
 * error <= 1.8e-7 everywhere; relative error <= 2.2e-5, the worst just above |x| = 0.005
 * where 1 - 2/(e^2x + 1) cancels (below it the series x - x^3/3 is used and is within
 * 1e-7 relative). Asserted: 2.5e-7 absolute, 3e-5 relative, 2e-7 relative on the series. */
START_TEST(test_fastmath_tanhf) {
    double wabs = 0, wrel = 0, wsmall = 0, aa = 0, ar = 0;
    for (long i = 0;; i++) {
        double xd = -20.0 + 1e-6 * i;
        if (xd > 20.0) break;
        float x = (float)xd;
        double t = tanh((double)x), e = fabs(ad_tanhf(x) - t);
        if (!(e <= wabs)) wabs = e, aa = x;
        if (t != 0) {
            double r = e / fabs(t);
            if (!(r <= wrel)) wrel = r, ar = x;
            if (fabsf(x) < 0.005f && !(r <= wsmall)) wsmall = r; /* the series branch */
        }
    }
    if (verbose()) printf("ad_tanhf max abs %.3g at %g, max rel %.3g at %g, below 0.005 %.3g\n",
                          wabs, aa, wrel, ar, wsmall);
    ck_assert_msg(wabs <= 2.5e-7, "ad_tanhf absolute error %.3g at %.9g", wabs, aa);
    ck_assert_msg(wrel <= 3e-5, "ad_tanhf relative error %.3g at %.9g", wrel, ar);
    ck_assert_msg(wsmall <= 2e-7, "ad_tanhf relative error %.3g below |x| = 0.005", wsmall);
    ck_assert(ad_tanhf(0.0f) == 0.0f);
    ck_assert(ad_tanhf(1e-30f) == 1e-30f);
    volatile float qnan = NAN;
    ck_assert(isnan(ad_tanhf(qnan)));
    /* +-inf and large arguments saturate to exactly +-1. */
    ck_assert(ad_tanhf(INFINITY) == 1.0f && ad_tanhf(-INFINITY) == -1.0f);
    ck_assert(ad_tanhf(50.0f) == 1.0f && ad_tanhf(-50.0f) == -1.0f);
    /* Odd symmetry within one rounding. */
    for (float x = 0.001f; x < 10.0f; x *= 1.01f)
        ck_assert_msg(fabs(ad_tanhf(-x) + ad_tanhf(x)) <= 2.5e-7, "ad_tanhf(-%g)", x);
}
END_TEST

/* ==================================================================== determinism */

/* Two runs of the attention and LayerNorm backward on the same inputs give the same bits,
 * whatever the scratch held before (it is re-filled with different garbage). */
START_TEST(test_backward_determinism) {
    AdRng rng;
    ad_rng_init(&rng, 81, 100, 0);
    AttShape s = {3, 129, 6, 3, 8};
    size_t nq = att_qkv_size(s), no = att_out_size(s), np = att_p_size(s);
    size_t nscr = att_scratch_n(s);
    float *qkv = fbuf(nq), *out = fbuf(no), *att = fbuf(np), *dout = fbuf(no);
    float *g1 = fbuf(nq), *g2 = fbuf(nq), *scratch = att_scratch(s);
    att_fill_qkv(qkv, s, &rng);
    fill_normal(dout, no, &rng, 0.0f, 1.0f);
    ad_attention_forward(out, att, qkv, s.B, s.T, s.H, s.Hkv, s.hs, 0);
    fill_value(scratch, nscr, 1e30f);
    ad_attention_backward(g1, scratch, dout, qkv, att, s.B, s.T, s.H, s.Hkv, s.hs);
    fill_value(scratch, nscr, -7.0f);
    fill_value(g2, nq, NAN);
    ad_attention_backward(g2, scratch, dout, qkv, att, s.B, s.T, s.H, s.Hkv, s.hs);
    ck_assert_msg(memcmp(g1, g2, sizeof(float) * nq) == 0, "attention backward not deterministic");

    const int N = 300, C = 130; /* N C above AD_PAR_MIN: the threaded path */
    size_t nx = (size_t)N * C;
    float *x = fbuf(nx), *w = fbuf(C), *b = fbuf(C), *y = fbuf(nx), *mean = fbuf(N),
          *rstd = fbuf(N), *d = fbuf(nx);
    fill_normal(x, nx, &rng, 0.0f, 1.0f);
    fill_normal(w, C, &rng, 1.0f, 0.3f);
    fill_normal(b, C, &rng, 0.0f, 0.3f);
    fill_normal(d, nx, &rng, 0.0f, 1.0f);
    ad_layernorm_forward(y, mean, rstd, x, w, b, N, C, 1e-5f);
    float *grads[2][3];
    for (int run = 0; run < 2; run++) {
        AdRng same;
        ad_rng_init(&same, 82, 100, 0); /* the same pre-filled gradients both runs */
        for (int k = 0; k < 3; k++) {
            size_t n = k == 0 ? nx : (size_t)C;
            grads[run][k] = fbuf(n);
            fill_normal(grads[run][k], n, &same, 0.0f, 1.0f);
        }
        ad_layernorm_backward(grads[run][0], grads[run][1], grads[run][2], d, x, w, mean, rstd,
                              N, C);
    }
    ck_assert_msg(memcmp(grads[0][0], grads[1][0], sizeof(float) * nx) == 0, "layernorm dinp");
    ck_assert_msg(memcmp(grads[0][1], grads[1][1], sizeof(float) * C) == 0, "layernorm dw");
    ck_assert_msg(memcmp(grads[0][2], grads[1][2], sizeof(float) * C) == 0, "layernorm db");
    for (int run = 0; run < 2; run++)
        for (int k = 0; k < 3; k++) free(grads[run][k]);
    free(qkv), free(out), free(att), free(dout), free(g1), free(g2), free(scratch);
    free(x), free(w), free(b), free(y), free(mean), free(rstd), free(d);
}
END_TEST

/* ==================================================================== threading */

static void expect_same(const char *what, const float *got, const float *ref, size_t n) {
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    Cmp c;
    cmp_init(&c, "%s", what);
    for (size_t i = 0; i < n; i++) cmp_add(&c, i, got[i], ref[i], 8 * EPS32 * scale + 1e-30);
    cmp_check(&c);
}

/* Shapes above AD_PAR_MIN elements (kernels.h), so the ops run on every thread, against the
 * same op applied one row, token or sequence at a time (below the threshold: one thread).
 * The row-parallel ops and the channel-split weight-gradient sums must agree: a channel or
 * row range dropped, or done twice, by one thread shows as an O(1) error. The channel sums
 * run over the rows in the same order either way, so 8 EPS32 of the scale is slack. */
START_TEST(test_threaded_vs_rowwise) {
    AdRng rng;
    ad_rng_init(&rng, 91, 100, 0);
    const int N = 300, C = 130, F = 64, V = 7;
    size_t nx = (size_t)N * C;
    float *x = fbuf(nx), *w = fbuf(C), *b = fbuf(C), *d = fbuf(nx), *mean = fbuf(N),
          *rstd = fbuf(N), *y1 = fbuf(nx), *y2 = fbuf(nx), *g1 = fbuf(nx), *g2 = fbuf(nx),
          *dw1 = fbuf(C), *dw2 = fbuf(C), *db1 = fbuf(C), *db2 = fbuf(C);
    fill_normal(x, nx, &rng, 0.3f, 1.5f);
    fill_normal(w, C, &rng, 1.0f, 0.3f);
    fill_normal(b, C, &rng, 0.0f, 0.3f);
    fill_normal(d, nx, &rng, 0.0f, 1.0f);

    for (int rms = 0; rms < 2; rms++) {
        const char *name = rms ? "rmsnorm" : "layernorm";
        char what[96];
        if (rms)
            ad_rmsnorm_forward(y1, rstd, x, w, N, C, 1e-5f);
        else
            ad_layernorm_forward(y1, mean, rstd, x, w, b, N, C, 1e-5f);
        for (int i = 0; i < N; i++) {
            if (rms)
                ad_rmsnorm_forward(y2 + (size_t)i * C, rstd + i, x + (size_t)i * C, w, 1, C, 1e-5f);
            else
                ad_layernorm_forward(y2 + (size_t)i * C, mean + i, rstd + i, x + (size_t)i * C, w,
                                     b, 1, C, 1e-5f);
        }
        snprintf(what, sizeof what, "%s forward threaded vs rowwise", name);
        expect_same(what, y1, y2, nx);
        memset(g1, 0, sizeof(float) * nx), memset(g2, 0, sizeof(float) * nx);
        memset(dw1, 0, sizeof(float) * C), memset(dw2, 0, sizeof(float) * C);
        memset(db1, 0, sizeof(float) * C), memset(db2, 0, sizeof(float) * C);
        if (rms)
            ad_rmsnorm_backward(g1, dw1, d, x, w, rstd, N, C);
        else
            ad_layernorm_backward(g1, dw1, db1, d, x, w, mean, rstd, N, C);
        for (int i = 0; i < N; i++) {
            size_t o = (size_t)i * C;
            if (rms)
                ad_rmsnorm_backward(g2 + o, dw2, d + o, x + o, w, rstd + i, 1, C);
            else
                ad_layernorm_backward(g2 + o, dw2, db2, d + o, x + o, w, mean + i, rstd + i, 1, C);
        }
        snprintf(what, sizeof what, "%s dinp threaded vs rowwise", name);
        expect_same(what, g1, g2, nx);
        snprintf(what, sizeof what, "%s dw threaded vs rowwise", name);
        expect_same(what, dw1, dw2, C);
        if (!rms) expect_same("layernorm db threaded vs rowwise", db1, db2, C);
    }

    /* matmul db (channel split) with OC = C; dw goes to a scratch buffer. */
    float *wm = fbuf((size_t)C * C), *dwm = fbuf((size_t)C * C);
    fill_normal(wm, (size_t)C * C, &rng, 0.0f, 1.0f);
    memset(db1, 0, sizeof(float) * C), memset(db2, 0, sizeof(float) * C);
    ad_matmul_backward(NULL, dwm, db1, d, x, wm, N, C, C);
    for (int i = 0; i < N; i++)
        ad_matmul_backward(NULL, dwm, db2, d + (size_t)i * C, x + (size_t)i * C, wm, 1, C, C);
    expect_same("matmul db threaded vs rowwise", db1, db2, C);

    /* Encoder: B = 4 sequences of T = 75 over V = 7 ids (channel split, repeated rows). */
    const int B = 4, T = 75;
    int tok[300];
    for (int i = 0; i < B * T; i++) tok[i] = (int)ad_rng_below(&rng, V);
    float *wte = fbuf((size_t)V * C), *wpe = fbuf((size_t)T * C);
    float *e1 = fbuf((size_t)V * C), *e2 = fbuf((size_t)V * C), *p1 = fbuf((size_t)T * C),
          *p2 = fbuf((size_t)T * C);
    fill_normal(wte, (size_t)V * C, &rng, 0.0f, 1.0f);
    fill_normal(wpe, (size_t)T * C, &rng, 0.0f, 1.0f);
    ad_encoder_forward(y1, tok, wte, wpe, B, T, C);
    for (int bb = 0; bb < B; bb++)
        ad_encoder_forward(y2 + (size_t)bb * T * C, tok + bb * T, wte, wpe, 1, T, C);
    expect_same("encoder forward threaded vs per sequence", y1, y2, nx);
    ad_encoder_backward(e1, p1, d, tok, B, T, C);
    for (int bb = 0; bb < B; bb++)
        ad_encoder_backward(e2, p2, d + (size_t)bb * T * C, tok + bb * T, 1, T, C);
    expect_same("encoder dwte threaded vs per sequence", e1, e2, (size_t)V * C);
    expect_same("encoder dwpe threaded vs per sequence", p1, p2, (size_t)T * C);

    /* Elementwise and row ops: gelu (n = N C), swiglu (N, F), softmax (N, C). */
    ad_gelu_forward(y1, x, (long)nx);
    ad_gelu_backward(g1, d, x, (long)nx);
    for (int i = 0; i < N; i++) {
        ad_gelu_forward(y2 + (size_t)i * C, x + (size_t)i * C, C);
        ad_gelu_backward(g2 + (size_t)i * C, d + (size_t)i * C, x + (size_t)i * C, C);
    }
    expect_same("gelu forward threaded vs rowwise", y1, y2, nx);
    expect_same("gelu backward threaded vs rowwise", g1, g2, nx);
    ad_swiglu_forward(y1, x, N, F); /* x read as (N, 2F): 2F = 128 <= C per row */
    ad_swiglu_backward(g1, d, x, N, F);
    for (int i = 0; i < N; i++) {
        ad_swiglu_forward(y2 + (size_t)i * F, x + (size_t)i * 2 * F, 1, F);
        ad_swiglu_backward(g2 + (size_t)i * 2 * F, d + (size_t)i * F, x + (size_t)i * 2 * F, 1, F);
    }
    expect_same("swiglu forward threaded vs rowwise", y1, y2, (size_t)N * F);
    expect_same("swiglu backward threaded vs rowwise", g1, g2, (size_t)N * 2 * F);
    ad_softmax_rows(y1, x, N, C);
    for (int i = 0; i < N; i++) ad_softmax_rows(y2 + (size_t)i * C, x + (size_t)i * C, 1, C);
    expect_same("softmax rows threaded vs rowwise", y1, y2, nx);

    /* RoPE: B = 2, T = 100, H = Hkv = 4, hs = 16 (one token per call: pos0 = t). */
    {
        const int RB = 2, RT = 100, RH = 4, RKV = 4, hs = 16, QKV = (RH + 2 * RKV) * hs;
        size_t n = (size_t)RB * RT * QKV;
        float *cs = fbuf((size_t)RT * hs / 2), *sn = fbuf((size_t)RT * hs / 2);
        float *q1 = fbuf(n), *q2 = fbuf(n);
        ad_rope_tables(cs, sn, RT, hs, 10000.0f, NULL);
        fill_normal(q1, n, &rng, 0.0f, 1.0f);
        memcpy(q2, q1, sizeof(float) * n);
        ad_rope_forward(q1, cs, sn, RB, RT, RH, RKV, hs, 0);
        for (int r = 0; r < RB * RT; r++)
            ad_rope_forward(q2 + (size_t)r * QKV, cs, sn, 1, 1, RH, RKV, hs, r % RT);
        expect_same("rope forward threaded vs per token", q1, q2, n);
        free(cs), free(sn), free(q1), free(q2);
    }
    free(x), free(w), free(b), free(d), free(mean), free(rstd), free(y1), free(y2), free(g1);
    free(g2), free(dw1), free(dw2), free(db1), free(db2), free(wm), free(dwm), free(wte);
    free(wpe), free(e1), free(e2), free(p1), free(p2);
}
END_TEST

/* ==================================================================== suite */

static Suite *kernels_suite(void) {
    Suite *s = suite_create("kernels");
    const AdTestCase cases[] = {
        {"matmul_forward_vs_naive", test_matmul_forward_vs_naive},
        {"matmul_packed", test_matmul_packed},
        {"matmul_backward_vs_naive", test_matmul_backward_vs_naive},
        {"matmul_grad_fd", test_matmul_grad_fd},
        {"attention_forward_vs_naive", test_attention_forward_vs_naive},
        {"attention_decode", test_attention_decode},
        {"attention_backward_vs_naive", test_attention_backward_vs_naive},
        {"attention_backward_reads_lower_triangle_only",
         test_attention_backward_reads_lower_triangle_only},
        {"attention_grad_fd", test_attention_grad_fd},
        {"encoder", test_encoder},
        {"norms", test_norms},
        {"rope_tables", test_rope_tables},
        {"rope", test_rope},
        {"gelu_exact", test_gelu_exact},
        {"gelu_swiglu_grad_fd", test_gelu_swiglu_grad_fd},
        {"softmax_rows", test_softmax_rows},
        {"fastmath_expf", test_fastmath_expf},
        {"fastmath_tanhf", test_fastmath_tanhf},
        {"backward_determinism", test_backward_determinism},
        {"threaded_vs_rowwise", test_threaded_vs_rowwise},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], TIMEOUT);
    return s;
}

int main(void) { return ad_test_run(kernels_suite()); }

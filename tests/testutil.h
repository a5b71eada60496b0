/* testutil.h: helpers shared by the Check suites: where the shared model files are,
 * a scratch directory, running a suite and returning a failing exit code. */
#ifndef AD_TESTUTIL_H
#define AD_TESTUTIL_H

#include <check.h>

/* Directory of the shared pretrained model files (env AD_SHARED_MODELS, else
 * ../shared/models relative to the source tree), or NULL if it has no stories260K.bin. */
const char *ad_test_models_dir(void);
/* A fresh temporary directory for this test process (created once). */
const char *ad_test_tmpdir(void);
/* Joins dir and name into a static per-call buffer (rotating among 8). */
const char *ad_test_path(const char *dir, const char *name);
/* Path of the autodidact CLI binary (env AD_BIN), or NULL. */
const char *ad_test_bin(void);
/* One named test: a tcase of its own per entry (so each gets its own timeout and fork). */
typedef struct {
    const char *name;
    const TTest *fn;
} AdTestCase;
/* Adds n cases to s, each in a tcase named after it with the given timeout (seconds). */
void ad_test_add_cases(Suite *s, const AdTestCase *cases, size_t n, double timeout);

/* Overwrites element i (flat index) of the float dataset /weights/NAME of a checkpoint with v,
 * through HDF5 so that the dataset's filters and checksum stay valid (asserts on failure). */
void ad_test_poke_weight(const char *path, const char *name, size_t i, float v);

/* Runs the suite; returns 0 if every test passed, 1 otherwise (use as main's value). */
int ad_test_run(Suite *s);

#endif

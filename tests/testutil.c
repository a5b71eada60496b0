/* testutil.c: see testutil.h. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

const char *ad_test_models_dir(void) {
    static char buf[4096];
    const char *env = getenv("AD_SHARED_MODELS");
    const char *cands[] = {env, "../shared/models", "../../shared/models", "../../../shared/models"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (!cands[i]) continue;
        snprintf(buf, sizeof buf, "%s/stories260K.bin", cands[i]);
        if (access(buf, R_OK) == 0) {
            snprintf(buf, sizeof buf, "%s", cands[i]);
            return buf;
        }
    }
    return NULL;
}

const char *ad_test_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/ad_test_XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            abort();
        }
    }
    return dir;
}

const char *ad_test_path(const char *dir, const char *name) {
    static char bufs[8][4096];
    static int next = 0;
    char *b = bufs[next++ & 7];
    snprintf(b, 4096, "%s/%s", dir, name);
    return b;
}

const char *ad_test_bin(void) { return getenv("AD_BIN"); }

void ad_test_add_cases(Suite *s, const AdTestCase *cases, size_t n, double timeout) {
    for (size_t i = 0; i < n; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, timeout);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
}

int ad_test_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

void ad_test_poke_weight(const char *path, const char *name, size_t i, float v) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", path);
    char full[128];
    snprintf(full, sizeof full, "weights/%s", name);
    hid_t d = H5Dopen2(f, full, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s has no %s", path, full);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    ck_assert_msg(n > 0 && (size_t)n > i, "%s: element %zu of %lld", full, i, (long long)n);
    float *buf = malloc((size_t)n * sizeof *buf);
    ck_assert_ptr_nonnull(buf);
    ck_assert(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    buf[i] = v;
    ck_assert(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    free(buf);
    H5Dclose(d);
    ck_assert(H5Fclose(f) >= 0);
}

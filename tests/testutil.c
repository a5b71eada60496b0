/* testutil.c: see testutil.h. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

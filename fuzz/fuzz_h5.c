/* fuzz_h5.c: the checkpoint and run-file readers on arbitrary files. HDF5 itself parses
 * the container (and is not instrumented: Debian's build); what is fuzzed is everything
 * this project reads out of it: formats, versions, attributes, shapes, counts. */
#include "autodidact/checkpoint.h"
#include "autodidact/model.h"
#include "autodidact/round.h"
#include "autodidact/runlog.h"
#include "autodidact/tokenizer.h"
#include "autodidact/train.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    const char *path = fuzz_file(data, size, ".h5");
    AdModel m;
    AdTokenizer tok;
    AdTrainState st;
    memset(&st, 0, sizeof st);
    if (ad_checkpoint_load(path, &m, 1, &tok, &st) == AD_OK) {
        ad_model_free(&m);
        ad_tokenizer_free(&tok);
        ad_train_state_free(&st);
    }
    AdRunLog r;
    memset(&r, 0, sizeof r);
    if (ad_runlog_open(&r, path) == AD_OK) ad_runlog_close(&r);
    FILE *devnull = fopen("/dev/null", "w");
    ad_run_report(path, devnull);
    fclose(devnull);
    unlink(path);
    return 0;
}

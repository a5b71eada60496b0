/* fuzz_config.c: the experiment and training config parsers with overrides. The input is a
 * config text; lines after a line "--set" are overrides (key=value), at most 16. */
#include "autodidact/config.h"
#include "autodidact/experiment.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    char *text = fuzz_text(data, size);
    const char *ov[16];
    int nov = 0;
    char *cut = strstr(text, "\n--set\n");
    if (cut) {
        *cut = '\0';
        for (char *l = strtok(cut + 7, "\n"); l && nov < 16; l = strtok(NULL, "\n")) ov[nov++] = l;
    }
    AdExperimentConfig e;
    if (ad_experiment_config_parse(&e, text, "fuzz", ov, nov) == AD_OK) {
        char *json = ad_experiment_config_to_json(&e);
        AdExperimentConfig again; /* the resolved config must reload */
        if (json && ad_experiment_config_parse(&again, json, "resolved", NULL, 0) != AD_OK) abort();
        free(json);
    }
    AdTrainConfig t;
    if (ad_train_config_parse(&t, text, "fuzz", ov, nov) == AD_OK) {
        char *json = ad_train_config_to_json(&t);
        AdTrainConfig again;
        if (json && ad_train_config_parse(&again, json, "resolved", NULL, 0) != AD_OK) abort();
        free(json);
    }
    free(text);
    return 0;
}

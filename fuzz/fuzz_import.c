/* fuzz_import.c: every importer through format detection (llama2.c, GGUF, llm.c,
 * safetensors): the input is the model file. The first byte picks the ending of the file
 * name (detection falls back on it); a safetensors file is read with a fixed config.json. */
#include "autodidact/importers.h"
#include "autodidact/model.h"
#include "autodidact/tokenizer.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    if (size < 1) return 0;
    static const char *endings[] = {".bin", ".gguf", ".safetensors", ""};
    static int configured = 0;
    if (!configured) { /* the config.json a safetensors file is read with */
        static const char cfg[] =
            "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 16, "
            "\"intermediate_size\": 12, \"num_attention_heads\": 4, \"num_hidden_layers\": 2, "
            "\"num_key_value_heads\": 2, \"vocab_size\": 11, \"max_position_embeddings\": 6, "
            "\"rms_norm_eps\": 1e-5}";
        char p[512];
        snprintf(p, sizeof p, "%s/config.json", fuzz_dir());
        FILE *f = fopen(p, "w");
        if (!f || fputs(cfg, f) < 0 || fclose(f) != 0) abort();
        configured = 1;
    }
    const char *path = fuzz_file(data + 1, size - 1, endings[data[0] & 3]);
    AdModel m;
    AdTokenizer tok;
    if (ad_import(path, AD_IMPORT_AUTO, NULL, &m, &tok) == AD_OK) {
        ad_model_free(&m);
        ad_tokenizer_free(&tok);
    }
    unlink(path);
    return 0;
}

#!/bin/bash
# model_doc_check.sh: trains tiny models briefly with the later families' switches (q/k/v
# biases, a sliding window shorter than the sequence, Llama 3 RoPE scaling; and GPT-2 with a
# window), then checks that a numpy forward pass written from docs/MODEL.md alone
# (tests/model_doc_check.py) reproduces `autodidact eval --logprobs` on their checkpoints.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${AD_BIN:?set AD_BIN to the autodidact binary}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/model_doc_check.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
for i in $(seq 1 60); do echo "the quick brown fox $i jumps over the lazy dog, twice."; done > "$TMP/text.txt"
fail=0
run() { # run NAME MODEL_JSON
    local name=$1 model=$2
    cat > "$TMP/$name.json" <<JSON
{"model": $model,
 "data": {"source": "text", "path": "$TMP/text.txt", "tokenizer": "byte"},
 "train": {"steps": 3, "batch_size": 4, "seq_len": 24, "lr": 1e-2, "warmup_steps": 0,
           "log_every": 0, "eval_every": 0, "ckpt_every": 0},
 "seed": 7, "out_dir": "$TMP/$name"}
JSON
    "$BIN" train "$TMP/$name.json" > "$TMP/$name.log" 2>&1 || { echo "FAIL $name: train"; cat "$TMP/$name.log"; fail=1; return; }
    "$BIN" eval --model "$TMP/$name/checkpoint.h5" --text "$TMP/text.txt" --batches 1 \
        --batch-size 2 --seq-len 24 --logprobs "$TMP/$name.jsonl" > /dev/null 2>&1 \
        || { echo "FAIL $name: eval"; fail=1; return; }
    if /usr/bin/python3 "$HERE/tests/model_doc_check.py" "$TMP/$name/checkpoint.h5" "$TMP/$name.jsonl"; then
        echo "ok   $name"
    else
        echo "FAIL $name"; fail=1
    fi
}
run llama_all '{"family": "llama", "d_model": 32, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "max_seq_len": 32,
  "qkv_bias": true, "sliding_window": 5, "rope_scaling": "llama3", "rope_factor": 4,
  "rope_low_freq_factor": 1, "rope_high_freq_factor": 4, "rope_original_max_pos": 16}'
run gpt2_window '{"family": "gpt2", "d_model": 32, "n_layer": 2, "n_head": 2, "max_seq_len": 32, "sliding_window": 3}'
run llama_plain '{"family": "llama", "d_model": 32, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "max_seq_len": 32}'
exit $fail

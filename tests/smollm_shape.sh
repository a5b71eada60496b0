#!/bin/bash
# smollm_shape.sh: a random-weight model of SmolLM2's kind (Llama architecture, grouped-query
# attention, tied classifier; scripts/random_gguf.py --preset smollm2-tiny, a small shape for
# CI) written as GGUF Q8_0 with the GPT-2 test vocabulary from ../shared/vocab: it imports,
# samples (seeded) with per-token log-probs (generate --json), and its imported checkpoint
# samples the same tokens with the same log-probs. Skips (exit 0, with the reason) without the vocabulary.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${AD_BIN:?set AD_BIN to the autodidact binary}
VOCAB=${AD_SHARED_VOCAB:-$HERE/../shared/vocab}/ggml-vocab-gpt-2.gguf
if [ ! -f "$VOCAB" ]; then
    echo "smollm_shape skipped: no $VOCAB"
    exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/smollm_shape.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL $*"; exit 1; }

/usr/bin/python3 "$HERE/scripts/random_gguf.py" --preset smollm2-tiny --vocab "$VOCAB" \
    "$TMP/m.gguf" || fail "random_gguf.py"
"$BIN" generate --model "$TMP/m.gguf" --prompt "" -n 24 --temperature 1 --seed 3 --no-eos --json \
    > "$TMP/a.json" || fail "generate from the GGUF"
"$BIN" import "$TMP/m.gguf" -o "$TMP/m.h5" > /dev/null || fail "import"
"$BIN" generate --model "$TMP/m.h5" --prompt "" -n 24 --temperature 1 --seed 3 --no-eos --json \
    > "$TMP/b.json" || fail "generate from the checkpoint"
/usr/bin/python3 - "$TMP/a.json" "$TMP/b.json" <<'PY' || exit 1
import json, math, sys
a, b = (json.loads(open(p).read()) for p in sys.argv[1:3])
toks, lps = a["tokens"], a["logprobs"]
assert len(toks) == 24 and len(lps) == 24, (len(toks), len(lps))
assert all(0 <= t < 50257 for t in toks), toks
assert all(math.isfinite(x) and x <= 0 for x in lps), lps
assert len(set(toks)) > 4, toks  # sampled at temperature 1 from a near-uniform model
assert a["tokens"] == b["tokens"] and a["logprobs"] == b["logprobs"], "checkpoint differs"
assert isinstance(a["text"], str) and len(a["text"]) > 0
print(f"ok   24 sampled tokens, mean log-prob {sum(lps) / len(lps):.3f}; checkpoint identical")
PY

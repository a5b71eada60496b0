#!/usr/bin/env bash
# vocab_vectors.sh: runs every llama.cpp tokenizer test vector in ../shared/vocab through
# 'autodidact tokenize --ids --no-bos --file' and compares the ids exactly (as llama.cpp's
# test-tokenizer-0: no BOS, no special-token parsing, each distinct string once).
# Usage: vocab_vectors.sh AUTODIDACT_BINARY [VOCAB_DIR]. Skips (exit 77) without the folder.
set -u
bin=$1
dir=${AD_SHARED_VOCAB:-${2:-}}
if [ ! -d "$dir" ]; then
    echo "skipped: no vocabulary test folder at ${dir:-(none given)} (set AD_SHARED_VOCAB)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
total_fail=0
total_pass=0
for inp in "$dir"/*.gguf.inp; do
    gguf=${inp%.inp}
    name=$(basename "$gguf" .gguf)
    out=$gguf.out
    # split the .inp on its separator lines; the separator's own newline ends no string
    /usr/bin/python3 - "$inp" "$out" "$tmp/$name" <<'PY'
import sys, os
inp, out, base = sys.argv[1:4]
texts = open(inp, 'rb').read().split(b'\n__ggml_vocab_test__\n')
ids = open(out, 'rb').read().split(b'\n')
seen = set()
os.makedirs(base, exist_ok=True)
k = 0
for i, t in enumerate(texts):
    if t in seen: continue
    seen.add(t)
    open(f'{base}/{k}.txt', 'wb').write(t)
    open(f'{base}/{k}.ids', 'wb').write(ids[i].strip() + b'\n')
    k += 1
PY
    pass=0 fail=0
    for t in "$tmp/$name"/*.txt; do
        want=$(cat "${t%.txt}.ids")
        got=$("$bin" tokenize --model "$gguf" --file "$t" --no-bos --ids 2>"$tmp/err")
        if [ "$got" == "$want" ]; then
            pass=$((pass + 1))
        else
            fail=$((fail + 1))
            echo "FAIL $name $(basename "$t"): $(head -c 80 "$t" | od -An -c | head -2 | tr -s ' ')"
            echo "  want: $want"
            echo "  got:  $got $(cat "$tmp/err")"
        fi
    done
    echo "$name: $pass/$((pass + fail)) vectors pass"
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]

#!/usr/bin/env bash
# bad_inputs.sh: the malformed-input corpus. Every case gives the CLI one bad input (config,
# --set override, checkpoint, importer file, tokenizer, prompt file, run file, output path)
# and requires: a non-zero exit that is not a crash or a hang (exit < 124, no sanitizer
# report), a message naming the file or key and the problem, and no output left under the
# real name. The inputs are made here from a tiny trained checkpoint, a tiny run file and,
# when ../shared/models is present, stories260K. Prints "N passed, M failed".
set -u
BIN=${AD_BIN:?AD_BIN must name the autodidact binary}
MODELS=${AD_SHARED_MODELS:-}
PY=/usr/bin/python3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
pass=0 fail=0

# check NAME [--absent PATH]... -- EXPECTED... -- COMMAND...
# EXPECTED are fixed strings that must all appear in the output.
check() {
  local name=$1; shift
  local absent=() expect=()
  while [ "$1" = --absent ]; do absent+=("$2"); shift 2; done
  [ "$1" = -- ] && shift
  while [ "$1" != -- ]; do expect+=("$1"); shift; done
  shift
  local out rc
  out=$(timeout 120 "$@" 2>&1 </dev/null)
  rc=$?
  local why=""
  if [ $rc -eq 0 ]; then why="exit 0"
  elif [ $rc -ge 124 ]; then why="exit $rc (crash, signal or hang)"
  elif grep -qE "AddressSanitizer|runtime error:|LeakSanitizer|Segmentation" <<<"$out"; then
    why="sanitizer report"
  fi
  for e in "${expect[@]}"; do
    [ -z "$why" ] && ! grep -qF -- "$e" <<<"$out" && why="message lacks \"$e\""
  done
  for a in "${absent[@]}"; do
    [ -z "$why" ] && [ -e "$a" ] && why="left $a behind"
  done
  if [ -z "$why" ]; then
    pass=$((pass + 1))
    printf 'ok   %-34s %s\n' "$name" "$(tail -n 1 <<<"$out" | cut -c1-150)"
  else
    fail=$((fail + 1))
    printf 'FAIL %-34s %s\n     output: %s\n' "$name" "$why" "$(tail -n 3 <<<"$out")"
  fi
}

# ---- valid material to break
cat >tiny.json <<'EOF'
{"seed": 3, "threads": 2, "run_file": "good.h5",
 "model": {"family": "gpt2", "pos": "none", "d_model": 32, "n_layer": 2, "n_head": 2, "max_seq_len": 24},
 "task": {"name": "copy", "train_min_len": 1, "train_max_len": 3, "eval_min_len": 1, "eval_max_len": 4, "eval_per_len": 4},
 "pretrain": {"steps": 4, "batch_size": 8, "log_every": 0, "warmup_steps": 1},
 "train": {"steps": 2, "batch_size": 8, "log_every": 0, "warmup_steps": 1},
 "rounds": {"count": 1, "prompts": 8}}
EOF
cat >train.json <<'EOF'
{"model": {"family": "gpt2", "d_model": 32, "n_layer": 2, "n_head": 2, "max_seq_len": 16},
 "data": {"source": "task", "task": "copy", "min_len": 1, "max_len": 3},
 "train": {"steps": 4, "batch_size": 8, "warmup_steps": 1, "log_every": 0, "eval_every": 0},
 "seed": 1, "out_dir": "tr"}
EOF
"$BIN" train train.json --quiet >/dev/null 2>&1 || { echo "setup: training the tiny checkpoint failed"; exit 1; }
"$BIN" run tiny.json --quiet >/dev/null 2>&1 || { echo "setup: the tiny run failed"; exit 1; }
CK=tr/checkpoint.h5
test -f "$CK" && test -f good.h5 || { echo "setup: no checkpoint or run file"; exit 1; }

# ---- configs (run and train)
printf '{"seed": 1,' >c_trunc.json
printf '{"seed": 1, "seed": 2}' >c_dup.json
printf '{"seed": "x"}' >c_type.json
printf '{"seed": NaN}' >c_nan.json
printf '{"pretrain": {"lr": 1e999}}' >c_inf.json
printf '{"pretrain": {"batch_size": -4}}' >c_neg.json
printf '{"pretrain": {"batch_size": 0}}' >c_zero.json
printf '{"model": {"d_model": 99999999999}}' >c_huge.json
$PY -c "print('[' * 100000 + ']' * 100000)" >c_deep.json
printf '{"run_file": "a\xff\xfe.h5"}' >c_utf8.json
: >c_empty.json
mkdir -p c_dir.json
printf '{"rounds": {"cont": 3}}' >c_unknown.json
printf '{"a": 1}\0{}' >c_nul.json
printf '[1, 2]' >c_array.json
printf '{"model": {"n_head": 3, "d_model": 32}}' >c_nodiv.json
head -c 20000000 /dev/zero >c_big.json
printf '{"data": {"source": "task", "task": "copy", "min_len": 5, "max_len": 2}}' >t_range.json
check "config: malformed JSON" -- c_trunc.json "malformed JSON" -- "$BIN" run c_trunc.json
check "config: duplicate key" -- c_dup.json 'duplicate key "seed"' -- "$BIN" run c_dup.json
check "config: wrong type" -- c_type.json seed -- "$BIN" run c_type.json
check "config: NaN literal" -- c_nan.json "malformed JSON" -- "$BIN" run c_nan.json
check "config: infinite number" -- c_inf.json pretrain.lr "out of range" -- "$BIN" run c_inf.json
check "config: negative size" -- c_neg.json pretrain.batch_size "out of range" -- "$BIN" run c_neg.json
check "config: zero size" -- c_zero.json pretrain.batch_size "out of range" -- "$BIN" run c_zero.json
check "config: huge size" -- c_huge.json model.d_model "out of range" -- "$BIN" run c_huge.json
check "config: deep nesting" -- c_deep.json "malformed JSON" -- "$BIN" run c_deep.json
check "config: non-UTF-8 string" -- c_utf8.json "not valid UTF-8" -- "$BIN" run c_utf8.json
check "config: empty file" -- c_empty.json "malformed JSON" -- "$BIN" run c_empty.json
check "config: a directory" -- c_dir.json "is a directory" -- "$BIN" run c_dir.json
check "config: unknown key" -- c_unknown.json rounds.cont "did you mean rounds.count" -- "$BIN" run c_unknown.json
check "config: NUL byte" -- c_nul.json "NUL byte" -- "$BIN" run c_nul.json
check "config: not an object" -- c_array.json -- "$BIN" run c_array.json
check "config: heads do not divide" -- c_nodiv.json model.n_head -- "$BIN" run c_nodiv.json --dry-run
check "config: over 16 MiB" -- c_big.json "beyond the limit" -- "$BIN" run c_big.json
check "config: missing file" -- nope.json "No such file" -- "$BIN" run nope.json
check "train config: min_len > max_len" -- t_range.json data. -- "$BIN" train t_range.json
check "train config: a directory" -- tr "is a directory" -- "$BIN" train tr

# ---- --set overrides
check "--set: no '='" -- "--set seed" "key=value" -- "$BIN" run tiny.json --dry-run --set seed
check "--set: unknown key" -- nokey.x "unknown key" -- "$BIN" run tiny.json --dry-run --set nokey.x=1
check "--set: wrong type" -- rounds.count "expected an integer" -- "$BIN" run tiny.json --dry-run --set rounds.count=abc
check "--set: negative count" -- rounds.count "out of range" -- "$BIN" run tiny.json --dry-run --set rounds.count=-1
check "--set: nan" -- train.lr -- "$BIN" run tiny.json --dry-run --set train.lr=nan
check "--set: infinity" -- train.lr "out of range" -- "$BIN" run tiny.json --dry-run --set train.lr=1e999
check "--set: huge width" -- model.d_model "out of range" -- "$BIN" run tiny.json --dry-run --set model.d_model=1e12
check "--set: negative temperature" -- generate.temperature "out of range" -- "$BIN" run tiny.json --dry-run --set generate.temperature=-1
check "--set: train steps negative" -- train.steps -- "$BIN" train train.json --set train.steps=-5

# ---- checkpoints
sz=$(stat -c %s "$CK")
head -c 100 "$CK" >k_100.h5
head -c $((sz / 2)) "$CK" >k_half.h5
head -c $((sz - 10)) "$CK" >k_end.h5
: >k_empty.h5
# a flipped byte inside a weight dataset (fletcher32 must catch it)
cp "$CK" k_flip.h5
off=$($PY -c "import h5py; print(h5py.File('$CK','r')['weights/fc_w'].id.get_chunk_info(0).byte_offset + 100)")
printf '\x5a' | dd of=k_flip.h5 bs=1 seek="$off" conv=notrunc 2>/dev/null
# valid HDF5 files that are not checkpoints, or lie about their shapes
$PY - "$CK" <<'EOF'
import sys, shutil, h5py, numpy as np
ck = sys.argv[1]
with h5py.File('k_plain.h5', 'w') as f:
    f['x'] = np.arange(3)
shutil.copy(ck, 'k_shape.h5')
with h5py.File('k_shape.h5', 'a') as f:
    w = f['weights/qkv_w'][...]
    del f['weights/qkv_w']
    f['weights/qkv_w'] = w[:, :-1, :]
shutil.copy(ck, 'k_absurd.h5')
with h5py.File('k_absurd.h5', 'a') as f:
    g = f['model'] if 'model' in f else f
    for k in ('n_layer',):
        if k in g.attrs:
            g.attrs[k] = np.int64(1 << 40)
shutil.copy(ck, 'k_nan.h5')
with h5py.File('k_nan.h5', 'a') as f:
    w = f['weights/fc_w'][...]
    w.flat[7] = np.nan
    del f['weights/fc_w']
    f['weights/fc_w'] = w
EOF
check "checkpoint: first 100 bytes" -- k_100.h5 "not a readable HDF5 file" -- "$BIN" eval --model k_100.h5 --task copy
check "checkpoint: half" -- k_half.h5 "truncated" -- "$BIN" eval --model k_half.h5 --task copy
check "checkpoint: last 10 bytes cut" -- k_end.h5 "truncated" -- "$BIN" eval --model k_end.h5 --task copy
check "checkpoint: empty file" -- k_empty.h5 -- "$BIN" eval --model k_empty.h5 --task copy
check "checkpoint: flipped byte" -- k_flip.h5 "checksum" -- "$BIN" eval --model k_flip.h5 --task copy
check "checkpoint: plain HDF5 file" -- k_plain.h5 "not an autodidact checkpoint" -- "$BIN" eval --model k_plain.h5 --task copy
check "checkpoint: a run file" -- good.h5 "not an autodidact checkpoint" -- "$BIN" generate --model good.h5 --prompt 1
check "checkpoint: wrong weight shape" -- k_shape.h5 qkv_w -- "$BIN" eval --model k_shape.h5 --task copy
check "checkpoint: absurd n_layer" -- k_absurd.h5 n_layer -- "$BIN" eval --model k_absurd.h5 --task copy
check "checkpoint: NaN weight" -- k_nan.h5 "fc_w" "nan" -- "$BIN" eval --model k_nan.h5 --task copy
check "checkpoint: a directory" -- tr "not a regular file" -- "$BIN" eval --model tr --task copy
check "checkpoint: truncated, train --resume" -- k_half.h5 "truncated" -- "$BIN" train --resume k_half.h5
check "checkpoint: as init_from" -- k_half.h5 model.init_from -- "$BIN" run tiny.json --set model.init_from=k_half.h5 --set run_file=i.h5

# a checkpoint whose weights are finite but make training diverge: round 0 (no training)
# is committed, round 1 stops at its first step naming both, and the run file stays readable
$PY -c "
import h5py, shutil
shutil.copy('$CK', 'k_diverge.h5')
f = h5py.File('k_diverge.h5', 'a')
w = f['weights/qkv_w'][...] * 1e25
del f['weights/qkv_w']
f['weights/qkv_w'] = w
"
cat >div.json <<'EOF'
{"seed": 3, "threads": 2, "run_file": "div.h5", "model": {"init_from": "k_diverge.h5"},
 "task": {"name": "copy", "train_min_len": 1, "train_max_len": 3, "eval_min_len": 1, "eval_max_len": 4, "eval_per_len": 4},
 "pretrain": {"steps": 0, "seq_len": 16},
 "train": {"steps": 2, "seq_len": 16, "batch_size": 8, "log_every": 0, "warmup_steps": 1},
 "rounds": {"count": 1, "prompts": 8}}
EOF
check "training diverges in round 1" -- "round 1" "div.h5 keeps rounds 0..0" "step 1: the training loss is" -- "$BIN" run div.json
if "$BIN" report div.h5 >/dev/null 2>&1; then
  pass=$((pass + 1)); echo "ok   ...its run file still reports round 0"
else
  fail=$((fail + 1)); echo "FAIL ...its run file does not report after the divergence"
fi

# ---- importers and tokenizer files
if [ -n "$MODELS" ] && [ -f "$MODELS/stories260K.bin" ] && [ -f "$MODELS/tok512.bin" ] && [ -f "$MODELS/stories260K.gguf" ]; then
  $PY - "$MODELS" <<'EOF'
import sys, struct, os, json
m = sys.argv[1]
src = open(m + '/stories260K.bin', 'rb').read()
h = list(struct.unpack('7i', src[:28]))
def w(name, i, val):
    v = h[:]; v[i] = val
    open(name, 'wb').write(struct.pack('7i', *v) + src[28:])
open('l_hdr.bin', 'wb').write(src[:28])
open('l_half.bin', 'wb').write(src[:len(src) // 2])
w('l_dim.bin', 0, 1 << 30); w('l_layers.bin', 2, -3); w('l_heads.bin', 3, 0); w('l_seq.bin', 6, 0)
g = open(m + '/stories260K.gguf', 'rb').read()
open('g_magic.gguf', 'wb').write(b'XXXX' + g[4:])
open('g_third.gguf', 'wb').write(g[:len(g) // 3])
open('g_hdr.gguf', 'wb').write(g[:20])
for name, off, val in (('g_tensors.gguf', 8, 1 << 60), ('g_kv.gguf', 16, 1 << 60)):
    b = bytearray(g); b[off:off + 8] = struct.pack('<Q', val); open(name, 'wb').write(b)
b = bytearray(g); b[4:8] = struct.pack('<I', 99); open('g_version.gguf', 'wb').write(b)
t = open(m + '/tok512.bin', 'rb').read()
open('t_half.bin', 'wb').write(t[:len(t) // 2])
open('t_hdr.bin', 'wb').write(t[:2])
b = bytearray(t); b[0:4] = struct.pack('<i', -5); open('t_max.bin', 'wb').write(b)
b = bytearray(t); b[8:12] = struct.pack('<i', 1 << 30); open('t_len.bin', 'wb').write(b)
open('c_magic.bin', 'wb').write(struct.pack('256i', *([1234] + [0] * 255)))
open('c_short.bin', 'wb').write(struct.pack('256i', *([20240326, 3, 1024, 50257, 12, 12, 768, 50304] + [0] * 248)))
open('c_huge.bin', 'wb').write(struct.pack('256i', *([20240326, 3, 1 << 30, 50257, 12, 12, 768, 50304] + [0] * 248)))
cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172,
       "num_attention_heads": 8, "num_hidden_layers": 5, "num_key_value_heads": 4,
       "vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e-5}
for d, body in (('s_len', struct.pack('<Q', 10**9) + b'{}'),
                ('s_json', struct.pack('<Q', 5) + b'{"a":'),
                ('s_data', None)):
    os.makedirs(d, exist_ok=True)
    if body is None:
        j = json.dumps({"model.embed_tokens.weight": {"dtype": "F32", "shape": [512, 64],
                                                      "data_offsets": [0, 131072]}}).encode()
        body = struct.pack('<Q', len(j)) + j + b'\0' * 100
    open(d + '/model.safetensors', 'wb').write(body)
    json.dump(cfg, open(d + '/config.json', 'w'))
os.makedirs('s_noconfig', exist_ok=True)
open('s_noconfig/model.safetensors', 'wb').write(open('s_data/model.safetensors', 'rb').read())
EOF
  T="--tokenizer $MODELS/tok512.bin"
  check "llama2.c: header only" --absent o1.h5 -- l_hdr.bin truncated -- "$BIN" import l_hdr.bin $T -o o1.h5
  check "llama2.c: half the file" --absent o2.h5 -- l_half.bin truncated -- "$BIN" import l_half.bin $T -o o2.h5
  check "llama2.c: absurd dim" --absent o3.h5 -- l_dim.bin "not a recognised model file" -- "$BIN" import l_dim.bin $T -o o3.h5
  check "llama2.c: negative layers" --absent o4.h5 -- l_layers.bin "not a recognised" -- "$BIN" import l_layers.bin $T -o o4.h5
  check "llama2.c: zero heads" --absent o5.h5 -- l_heads.bin "not a recognised" -- "$BIN" import l_heads.bin $T -o o5.h5
  check "llama2.c: zero context" --absent o6.h5 -- l_seq.bin "not a recognised" -- "$BIN" import l_seq.bin $T -o o6.h5
  check "llama2.c: forced format, absurd" --absent o7.h5 -- l_dim.bin -- "$BIN" import l_dim.bin --format llama2c $T -o o7.h5
  check "GGUF: bad magic" --absent o8.h5 -- g_magic.gguf "GGUF magic" -- "$BIN" import g_magic.gguf --format gguf -o o8.h5
  check "GGUF: a third of the file" --absent o9.h5 -- g_third.gguf "past the end" -- "$BIN" import g_third.gguf -o o9.h5
  check "GGUF: header only" --absent o10.h5 -- g_hdr.gguf "truncated GGUF" -- "$BIN" import g_hdr.gguf -o o10.h5
  check "GGUF: absurd tensor count" --absent o11.h5 -- g_tensors.gguf "tensor count" -- "$BIN" import g_tensors.gguf -o o11.h5
  check "GGUF: absurd metadata count" --absent o12.h5 -- g_kv.gguf "metadata count" -- "$BIN" import g_kv.gguf -o o12.h5
  check "GGUF: unknown version" --absent o13.h5 -- g_version.gguf "version 99" -- "$BIN" import g_version.gguf -o o13.h5
  check "tokenizer: half the file" --absent o14.h5 -- t_half.bin -- "$BIN" import "$MODELS/stories260K.bin" --tokenizer t_half.bin -o o14.h5
  check "tokenizer: header cut" --absent o15.h5 -- t_hdr.bin "too short" -- "$BIN" import "$MODELS/stories260K.bin" --tokenizer t_hdr.bin -o o15.h5
  check "tokenizer: negative max length" --absent o16.h5 -- t_max.bin max_token_length -- "$BIN" import "$MODELS/stories260K.bin" --tokenizer t_max.bin -o o16.h5
  check "tokenizer: absurd piece length" --absent o17.h5 -- t_len.bin "token 0" -- "$BIN" import "$MODELS/stories260K.bin" --tokenizer t_len.bin -o o17.h5
  check "llm.c: wrong magic" --absent o18.h5 -- c_magic.bin magic -- "$BIN" import c_magic.bin --format llmc -o o18.h5
  check "llm.c: header only" --absent o19.h5 -- c_short.bin truncated -- "$BIN" import c_short.bin --format llmc -o o19.h5
  check "llm.c: absurd context" --absent o20.h5 -- c_huge.bin max_seq_len -- "$BIN" import c_huge.bin --format llmc -o o20.h5
  check "safetensors: header beyond file" --absent o21.h5 -- s_len/model.safetensors "header length" -- "$BIN" import s_len/model.safetensors -o o21.h5
  check "safetensors: bad JSON header" --absent o22.h5 -- s_json/model.safetensors JSON -- "$BIN" import s_json/model.safetensors -o o22.h5
  check "safetensors: data past the end" --absent o23.h5 -- s_data/model.safetensors data_offsets -- "$BIN" import s_data/model.safetensors -o o23.h5
  check "safetensors: no config.json" --absent o24.h5 -- config.json -- "$BIN" import s_noconfig/model.safetensors -o o24.h5
  check "import: output is a directory" -- tr "directory" -- "$BIN" import "$MODELS/stories260K.bin" $T -o tr
  check "import: output under a file" -- c_trunc.json -- "$BIN" import "$MODELS/stories260K.bin" $T -o c_trunc.json/x.h5
else
  echo "skip importer cases: ../shared/models (stories260K.bin, tok512.bin, stories260K.gguf) not found"
fi

# ---- vocabularies for tokenize (GGUF without tensors, tokenizer.json)
$PY - <<'EOF'
import struct, json
def s(x): return struct.pack('<Q', len(x)) + x
def kv_str(k, v): return s(k) + struct.pack('<I', 8) + s(v)
def kv_arr(k, t, items):
    body = b''.join(s(i) if t == 8 else struct.pack('<i', i) for i in items)
    return s(k) + struct.pack('<II', 9, t) + struct.pack('<Q', len(items)) + body
def gguf(name, kvs):
    open(name, 'wb').write(b'GGUF' + struct.pack('<IQQ', 3, 0, len(kvs)) + b''.join(kvs))
toks = [bytes([c]) for c in range(0x21, 0x7F)] + [b'ab']
gguf('v_none.gguf', [kv_str(b'general.architecture', b'llama')])
base = [kv_str(b'tokenizer.ggml.model', b'gpt2'), kv_arr(b'tokenizer.ggml.tokens', 8, toks)]
gguf('v_pre.gguf', base + [kv_str(b'tokenizer.ggml.pre', b'nonsense')])
gguf('v_merge.gguf', base + [kv_arr(b'tokenizer.ggml.merges', 8, [b'a zz'])])
gguf('v_type.gguf', base + [kv_arr(b'tokenizer.ggml.token_type', 5, [9] * len(toks))])
open('v_trunc.json', 'w').write('{"model": {"type": "BPE", "vocab": {"a": 0')
open('v_split.json', 'w').write(json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
    "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "x+"}, "behavior": "Isolated"}}))
EOF
check "tokenize: GGUF without vocabulary" -- v_none.gguf "no vocabulary" -- "$BIN" tokenize --model v_none.gguf --text hi
check "tokenize: unknown pre-tokenizer" -- v_pre.gguf 'tokenizer.ggml.pre = "nonsense"' -- "$BIN" tokenize --model v_pre.gguf --text hi
check "tokenize: merge of unknown piece" -- v_merge.gguf "tokenizer.ggml.merges[0]" -- "$BIN" tokenize --model v_merge.gguf --text hi
check "tokenize: bad token type" -- v_type.gguf "token_type[0] = 9" -- "$BIN" tokenize --model v_type.gguf --text hi
check "tokenize: truncated tokenizer.json" -- v_trunc.json "malformed JSON" -- "$BIN" tokenize --model v_trunc.json --text hi
check "tokenize: unknown Split regex" -- v_split.json pre_tokenizer -- "$BIN" tokenize --model v_split.json --text hi
check "tokenize: missing --file" -- nope.txt "No such file" -- "$BIN" tokenize --model v_pre.gguf --file nope.txt

# ---- prompt and text files
printf 'abc\n' >p_ok.txt
: >p_empty.txt
check "prompts: a directory" -- tr "is a directory" -- "$BIN" generate --model "$CK" --prompts tr
check "prompts: missing" -- nope.txt "No such file" -- "$BIN" generate --model "$CK" --prompts nope.txt
check "prompts: empty" -- p_empty.txt "no prompts" -- "$BIN" generate --model "$CK" --prompts p_empty.txt
check "task.path: missing" --absent f.h5 -- task.path nope.txt -- "$BIN" run tiny.json --set run_file=f.h5 --set task.source=file --set task.path=nope.txt
check "task.path: empty" --absent g.h5 -- p_empty.txt -- "$BIN" run tiny.json --set run_file=g.h5 --set task.source=file --set task.path=p_empty.txt
check "eval --text: a directory" -- tr "is a directory" -- "$BIN" eval --model "$CK" --text tr

# ---- run files for resume and report
sz=$(stat -c %s good.h5)
head -c 3000 good.h5 >r_cut.h5
head -c $((sz - 7)) good.h5 >r_end.h5
cp good.h5 r_hole.h5
$PY -c "import h5py; f = h5py.File('r_hole.h5', 'a'); del f['rounds/000']"
cp good.h5 r_neg.h5
$PY -c "import h5py, numpy as np; f = h5py.File('r_neg.h5', 'a'); f.attrs['rounds_complete'] = np.int64(-3)"
for cmd in resume report; do
  check "$cmd: truncated" -- r_cut.h5 "not a readable HDF5 file" -- "$BIN" $cmd r_cut.h5
  check "$cmd: last bytes cut" -- r_end.h5 -- "$BIN" $cmd r_end.h5
  check "$cmd: a checkpoint" -- "$CK" "not an autodidact run file" -- "$BIN" $cmd "$CK"
  check "$cmd: a plain HDF5 file" -- k_plain.h5 -- "$BIN" $cmd k_plain.h5
  check "$cmd: a round missing" -- r_hole.h5 "/rounds/000" -- "$BIN" $cmd r_hole.h5
  check "$cmd: negative round count" -- r_neg.h5 rounds_complete -- "$BIN" $cmd r_neg.h5
  check "$cmd: a directory" -- tr -- "$BIN" $cmd tr
  check "$cmd: missing" -- nope.h5 -- "$BIN" $cmd nope.h5
done

# ---- output paths
check "run_file: a directory" --absent tr.ckpt -- run_file "directory" -- "$BIN" run tiny.json --set run_file=tr
check "run_file: existing run" -- good.h5 "already exists" -- "$BIN" run tiny.json
check "eval --logprobs: a directory" -- tr "directory" -- "$BIN" eval --model "$CK" --task copy --logprobs tr

echo "bad_inputs: $pass passed, $fail failed"
[ $fail -eq 0 ]

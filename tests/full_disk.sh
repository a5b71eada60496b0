#!/usr/bin/env bash
# full_disk.sh: runs whose disk fills up, and runs into a read-only directory. A short run
# writes into a tmpfs of each of several sizes, so that the disk fills while it writes the
# run file, a checkpoint or the example pool of different rounds. Each run must either
# finish, or fail with a message naming the file and "No space left on device", leaving
# every committed round readable (`report`) and the run resumable: once the tmpfs is
# enlarged, `resume` finishes it with exactly the numbers of a run that never failed. A run
# into a read-only file system fails before any work, naming the path. Needs root (mount);
# skips with a reason otherwise. Needs AD_BIN.
set -u
BIN=${AD_BIN:?AD_BIN must name the autodidact binary}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
D="$W/disk"
mkdir -p "$D"
cleanup() { umount "$D" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=64k tmpfs "$D" 2>/dev/null; then
  echo "full_disk: skipped: mounting a small tmpfs needs root (uid $(id -u))"
  exit 0
fi
umount "$D"
cd "$W"
cat >fd.json <<'EOF'
{"seed": 5, "threads": 2, "keep_checkpoints": 0,
 "model": {"family": "gpt2", "pos": "none", "d_model": 32, "n_layer": 2, "n_head": 2, "max_seq_len": 24},
 "task": {"name": "copy", "train_min_len": 1, "train_max_len": 4, "eval_min_len": 1, "eval_max_len": 6,
          "eval_per_len": 8},
 "pretrain": {"steps": 30, "batch_size": 16, "log_every": 0, "warmup_steps": 5},
 "train": {"steps": 10, "batch_size": 16, "log_every": 0, "warmup_steps": 2},
 "rounds": {"count": 3, "prompts": 32},
 "generate": {"samples": 2, "temperature": 0.8}}
EOF
"$BIN" run fd.json --quiet --set run_file=ref.h5 >/dev/null 2>&1 || { echo "full_disk: the reference run failed"; exit 1; }
need=$(du -sk ref.h5 ref.h5.ckpt | awk '{s += $1} END {print s}')
echo "full_disk: a whole run writes ${need} KiB"

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

SAME="$PY $HERE/same_run.py"

for kb in 100 300 500 700 900 1100 1300; do
  mount -t tmpfs -o size=${kb}k tmpfs "$D" || { bad "mount ${kb}k"; continue; }
  out=$("$BIN" run fd.json --quiet --set run_file="$D/r.h5" 2>&1)
  rc=$?
  case_name="tmpfs of ${kb} KiB"
  if [ $rc -eq 0 ]; then
    if $SAME ref.h5 "$D/r.h5" >/dev/null; then ok "$case_name: the run fit and is complete"; else bad "$case_name: finished but differs"; fi
  elif [ $rc -ge 124 ] || ! grep -q "No space left on device" <<<"$out" || ! grep -q "$D" <<<"$out"; then
    bad "$case_name: exit $rc, message: $(tail -n 1 <<<"$out")"
  else
    done_rounds=0
    if [ -f "$D/r.h5" ]; then
      if ! "$BIN" report "$D/r.h5" >report.txt 2>&1; then
        bad "$case_name: the run file left behind is not readable: $(tail -n 1 report.txt)"
        umount "$D"; continue
      fi
      done_rounds=$($PY -c "import h5py; print(h5py.File('$D/r.h5','r').attrs['rounds_complete'])")
    fi
    ls "$D" "$D"/r.h5.ckpt 2>/dev/null | grep -q '\.tmp$' && { bad "$case_name: a .tmp file was left behind"; umount "$D"; continue; }
    mount -o remount,size=20m "$D"
    if [ -f "$D/r.h5" ]; then
      "$BIN" resume "$D/r.h5" --quiet >/dev/null 2>&1
    else
      "$BIN" run fd.json --quiet --set run_file="$D/r.h5" >/dev/null 2>&1
    fi
    if [ $? -eq 0 ] && $SAME ref.h5 "$D/r.h5" >/dev/null; then
      ok "$case_name: failed after $done_rounds committed round(s) with \"$(tail -n 1 <<<"$out" | cut -c1-110)...\"; resumed to the reference's numbers"
    else
      bad "$case_name: resuming after the disk was enlarged did not reproduce the reference"
    fi
  fi
  umount "$D"
done

# a read-only file system: refused before any work
mount -t tmpfs -o size=1m,ro tmpfs "$D"
out=$("$BIN" run fd.json --quiet --set run_file="$D/r.h5" 2>&1)
rc=$?
if [ $rc -ne 0 ] && [ $rc -lt 124 ] && grep -q "$D" <<<"$out" && [ -z "$(ls -A "$D")" ]; then
  ok "read-only file system: $(tail -n 1 <<<"$out" | cut -c1-140)"
else
  bad "read-only file system: exit $rc, $(tail -n 1 <<<"$out")"
fi
umount "$D"

echo "full_disk: $pass passed, $fail failed"
[ $fail -eq 0 ]

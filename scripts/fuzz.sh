#!/usr/bin/env bash
# Builds the libFuzzer harnesses in fuzz/ (clang, ASan + UBSan, the project's own sources)
# and runs each for a bounded time from its seed corpus in fuzz/corpus/NAME.
# Usage: scripts/fuzz.sh [--seconds N] [--keep] [NAME ...]   (default: 30 s each, all harnesses)
#   --keep   grow fuzz/corpus/NAME with what the run finds (default: a scratch copy)
# Findings (crashes, leaks, timeouts, out-of-memory) are written to build-fuzz/findings/NAME/
# and make the script exit non-zero. Installs clang, libFuzzer and libomp with apt if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=30 keep=0 names=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) names+=("$1"); shift ;;
  esac
done
[ ${#names[@]} -gt 0 ] || names=(config import tokenizer h5)

# the project's packages and build (scripts/setup.sh), plus clang, libFuzzer and libomp
scripts/setup.sh clang libclang-rt-14-dev libomp-14-dev >/dev/null

out=build-fuzz
mkdir -p "$out/generated" "$out/findings"
echo '#define AD_GIT_COMMIT "fuzz"' >"$out/generated/ad_build_info.h"
srcs=$(ls src/*.c | grep -v '/main\.c$')
flags=(-O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fopenmp
       -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc -I"$out/generated"
       $(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
       $(pkg-config --cflags libcjson openblas) -w)
libs=($(pkg-config --libs hdf5 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5)
      $(pkg-config --libs libcjson openblas) -lm)
# the library's objects once, then one link per harness
objs=()
for s in $srcs; do
  o="$out/$(basename "${s%.c}").o"
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ]; then
    clang "${flags[@]/-fsanitize=fuzzer,address,undefined/-fsanitize=fuzzer-no-link,address,undefined}" -c "$s" -o "$o"
  fi
  objs+=("$o")
done

pass=0 fail=0
for n in "${names[@]}"; do
  [ -f "fuzz/fuzz_$n.c" ] || { echo "fuzz: no harness fuzz/fuzz_$n.c"; exit 2; }
  clang "${flags[@]}" "fuzz/fuzz_$n.c" "${objs[@]}" "${libs[@]}" -o "$out/fuzz_$n"
  corpus="fuzz/corpus/$n"
  if [ $keep -eq 0 ]; then
    corpus="$out/corpus_$n"
    rm -rf "$corpus"
    cp -r "fuzz/corpus/$n" "$corpus"
  fi
  rm -rf "$out/findings/$n"
  mkdir -p "$out/findings/$n"
  log="$out/fuzz_$n.log"
  # Each input runs in a child (-fork), so that fuzzing goes on past a finding; every
  # finding is then judged by where it happened (below).
  set +e
  OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 "$out/fuzz_$n" -fork=1 -ignore_crashes=1 \
    -ignore_timeouts=1 -ignore_ooms=1 -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
    -max_len=262144 -print_final_stats=1 -artifact_prefix="$out/findings/$n/" "$corpus" >"$log" 2>&1
  set -e
  # the last fork-mode status line: "#EXECS: cov: ... oom/timeout/crash: O/T/C ..."
  status=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n 1 || true)
  execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$status")
  otc=$(sed -nE 's|.*oom/timeout/crash: ([0-9/]+).*|\1|p' <<<"$status")
  # Fork mode keeps only each finding's input: run each again alone to get its report, and
  # judge it by where it happened (fuzz/classify.py): a finding inside libhdf5 is HDF5's own
  # (Debian's 1.10.8 parsing a crafted file: see the README's note on untrusted HDF5 files);
  # any other is ours and fails the run.
  repro=()
  for a in "$out/findings/$n"/*; do
    [ -f "$a" ] && [ "${a%.report}" = "$a" ] || continue
    r="$a.report"
    [ -f "$r" ] || OMP_NUM_THREADS=1 timeout 60 "$out/fuzz_$n" -runs=1 -timeout=5 -rss_limit_mb=2048 \
      "$a" >"$r" 2>&1 || true
    repro+=("$r")
  done
  read -r ours hdf5 unrepro < <(/usr/bin/python3 fuzz/classify.py "${repro[@]}" | head -n 1)
  if [ "$ours" -eq 0 ]; then
    pass=$((pass + 1))
    echo "fuzz $n: ${execs:-0} executions in ${seconds} s (oom/timeout/crash ${otc:-0/0/0}); no findings in autodidact, $hdf5 inside libhdf5, $unrepro not reproducible alone"
  else
    fail=$((fail + 1))
    echo "fuzz $n: $ours FINDING(S) in autodidact after ${execs:-0} executions (oom/timeout/crash ${otc:-?}; $hdf5 inside libhdf5); see $log and $out/findings/$n/"
    /usr/bin/python3 fuzz/classify.py "${repro[@]}" | tail -n +2 | while read -r r; do
      echo "    $r:"; grep -m3 -E "ERROR|SUMMARY|runtime error" "$r" | sed 's/^/      /'
    done
  fi
done
echo "fuzz: $pass passed, $fail failed"
[ $fail -eq 0 ]

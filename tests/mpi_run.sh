#!/usr/bin/env bash
# mpi_run.sh: short runs on 1, 2 and 3 MPI ranks (one thread each), checking that
#  - with a fixed teacher, the candidates, scores, selections and evaluation of a 2-rank (and
#    a 3-rank) run equal a 1-rank run's bit for bit, and its training losses to relative TRAIN_RTOL
#    (the gradient sums of two ranks add in another order);
#  - a 2-rank run is bit-identical to itself on rerun (self-teaching, several scorers);
#  - a run started on 2 ranks resumes on 1 and the other way round;
#  - a rank killed mid-run ends the job with a message, leaves the run file with its last
#    complete round and no lock that stops a resume, and the resumed run equals an
#    uninterrupted one bit for bit.
# Needs AD_BIN (a build with -DAD_MPI=ON) and AD_MPIRUN (mpirun).
set -u
BIN=${AD_BIN:?AD_BIN must name the autodidact binary}
MPIRUN=${AD_MPIRUN:-mpirun}
PY=/usr/bin/python3
SAME="$PY $(cd "$(dirname "$0")" && pwd)/same_run.py"
TRAIN_RTOL=1e-5
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
fail() { echo "mpi_run: $*"; exit 1; }
# --bind-to none: the ranks share the machine's cores with their OpenMP threads
mpi() { local np=$1; shift; "$MPIRUN" --oversubscribe --allow-run-as-root --bind-to none -np "$np" "$BIN" "$@"; }

cat >base.json <<'EOF'
{"seed": 11, "threads": 1, "keep_checkpoints": 0,
 "model": {"family": "gpt2", "pos": "none", "d_model": 32, "n_layer": 2, "n_head": 2, "max_seq_len": 24},
 "task": {"name": "copy", "train_min_len": 1, "train_max_len": 4, "eval_min_len": 1, "eval_max_len": 6,
          "eval_per_len": 8},
 "pretrain": {"steps": 40, "batch_size": 16, "log_every": 0, "warmup_steps": 5},
 "train": {"steps": 20, "batch_size": 15, "log_every": 0, "warmup_steps": 2},
 "rounds": {"count": 2, "prompts": 33},
 "generate": {"samples": 2, "temperature": 0.8, "batch": 16},
 "score": {"self_judge": true, "logprob": true, "majority": true}}
EOF
# the fixed teacher: round 0 of a one-process run (no mpirun)
"$BIN" run base.json --quiet --set rounds.count=0 --set pretrain.steps=150 --set run_file=teacher.h5 \
  >/dev/null 2>&1 || fail "the teacher run failed"
FIXED=(--set rounds.teacher=checkpoint --set rounds.teacher_path=teacher.h5.ckpt/round_000.h5)

mpi 1 run base.json --quiet "${FIXED[@]}" --set run_file=one.h5 >/dev/null || fail "the 1-rank run failed"
mpi 2 run base.json --quiet "${FIXED[@]}" --set run_file=two.h5 >report.txt || fail "the 2-rank run failed"
grep -q "2 rank(s) x 1 thread(s)" report.txt || fail "the report does not give 2 ranks: $(head -1 report.txt)"
[ "$(grep -c "complete round" report.txt)" = 1 ] || fail "the report was printed by more than one rank"
$SAME --train-rtol $TRAIN_RTOL one.h5 two.h5 || fail "1 and 2 ranks differ"
mpi 2 run base.json --quiet "${FIXED[@]}" --set run_file=two_again.h5 >/dev/null || fail "the 2-rank rerun failed"
$SAME two.h5 two_again.h5 || fail "a 2-rank run differs from itself"
# 3 ranks: blocks of unequal size (33 prompts x 2 samples, 15 rows a batch) and a 3-way sum
mpi 3 run base.json --quiet "${FIXED[@]}" --set run_file=three.h5 >/dev/null || fail "the 3-rank run failed"
$SAME --train-rtol $TRAIN_RTOL one.h5 three.h5 || fail "1 and 3 ranks differ"

# self-teaching: the student trained on 2 ranks generates; a rerun is the same bit for bit
for f in self_a self_b; do
  mpi 2 run base.json --quiet --set run_file=$f.h5 >/dev/null || fail "the 2-rank self-teaching run $f failed"
done
$SAME self_a.h5 self_b.h5 || fail "a 2-rank self-teaching run differs from itself"

# resume on another rank count
mpi 2 run base.json --quiet "${FIXED[@]}" --set run_file=part2.h5 --stop-after 2 >/dev/null || fail "2-rank part failed"
mpi 1 resume part2.h5 --quiet >/dev/null || fail "resuming a 2-rank run on 1 rank failed"
$SAME --train-rtol $TRAIN_RTOL one.h5 part2.h5 || fail "2 ranks then 1 differ from 1 rank"
mpi 1 run base.json --quiet "${FIXED[@]}" --set run_file=part1.h5 --stop-after 1 >/dev/null || fail "1-rank part failed"
mpi 2 resume part1.h5 --quiet >/dev/null || fail "resuming a 1-rank run on 2 ranks failed"
$SAME --train-rtol $TRAIN_RTOL one.h5 part1.h5 || fail "1 rank then 2 differ from 1 rank"

# a rank dies after the first committed round
LONG=("${FIXED[@]}" --set rounds.count=4 --set train.steps=150)
mpi 2 run base.json --quiet "${LONG[@]}" --set run_file=whole.h5 >/dev/null || fail "the long 2-rank run failed"
"$MPIRUN" --oversubscribe --allow-run-as-root --bind-to none -np 2 "$BIN" run base.json --quiet "${LONG[@]}" \
  --set run_file=killed.h5 >killed.out 2>killed.err &
launcher=$!
for _ in $(seq 600); do [ -f killed.h5 ] && break; sleep 0.05; done
[ -f killed.h5 ] || fail "the run to kill wrote no round"
ranks=($(pgrep -P $launcher))
[ ${#ranks[@]} = 2 ] || fail "expected 2 rank processes under mpirun $launcher, found: ${ranks[*]}"
kill -9 "${ranks[1]}"
wait $launcher && fail "the job went on after a rank was killed"
grep -q "the run file keeps its last complete round" killed.err || grep -q "exited on signal 9" killed.err ||
  fail "no message on a killed rank: $(cat killed.err)"
"$BIN" report killed.h5 >/dev/null || fail "the run file of the killed job does not read back"
mpi 2 resume killed.h5 --quiet >/dev/null || fail "resuming the killed run failed"
$SAME whole.h5 killed.h5 || fail "the killed and resumed run differs from an uninterrupted one"
echo "mpi_run: all checks passed"

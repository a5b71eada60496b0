#!/usr/bin/env bash
# kill_resume.sh [KILLS] [SEED] [preference|grpo]: SIGKILLs a short multi-round run KILLS times (default 5) at
# random moments (generation, scoring, training, evaluation, writing the run file and
# checkpoints all happen in it), resuming it after each kill (starting it again while no run
# file exists), then lets it finish and checks that the run file equals an uninterrupted
# run's: every summary column, every round's candidates, scores, selections and training
# curve, and the evaluation, bit for bit (timings and throughput excepted). Needs AD_BIN.
set -u
BIN=${AD_BIN:?AD_BIN must name the autodidact binary}
KILLS=${1:-5}
SEED=${2:-$RANDOM}
SETS=() # "preference": the same run with SPIN preference rounds (pairs, stored reference)
[ "${3:-}" = preference ] && SETS=(--set train.objective=preference --set preference.pairs=spin \
                                  --set train.batch_size=8)
# "grpo": RL rounds (groups of 4, two passes, KL term) on the label-free majority reward
[ "${3:-}" = grpo ] && SETS=(--set train.objective=grpo --set generate.samples=4 --set rl.mu=2 \
                            --set rl.beta=0.04 --set rl.reward=majority --set score.majority=true \
                            --set train.batch_size=8)
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
cat >kill.json <<'EOF'
{"seed": 11, "threads": 2, "keep_checkpoints": 0,
 "model": {"family": "gpt2", "pos": "none", "d_model": 32, "n_layer": 2, "n_head": 2, "max_seq_len": 24},
 "task": {"name": "copy", "train_min_len": 1, "train_max_len": 4, "eval_min_len": 1, "eval_max_len": 6,
          "eval_per_len": 8},
 "pretrain": {"steps": 40, "batch_size": 16, "log_every": 0, "warmup_steps": 5},
 "train": {"steps": 20, "batch_size": 16, "log_every": 0, "warmup_steps": 2},
 "rounds": {"count": 3, "prompts": 32},
 "generate": {"samples": 2, "temperature": 0.8, "batch": 16},
 "score": {"self_judge": true}}
EOF
t0=$(date +%s.%N)
"$BIN" run kill.json "${SETS[@]}" --quiet --set run_file=ref.h5 >/dev/null 2>&1 || { echo "kill_resume: the reference run failed"; exit 1; }
t1=$(date +%s.%N)
ref_ms=$($PY -c "print(int(($t1 - $t0) * 1000))")
echo "kill_resume: reference run took ${ref_ms} ms; $KILLS kills, seed $SEED"

RANDOM=$SEED
kills=0 starts=0 completed_early=0 span_ms=$((ref_ms * 6 / 10))
while [ $kills -lt "$KILLS" ]; do
  if [ -f killed.h5 ]; then
    "$BIN" resume killed.h5 --quiet >/dev/null 2>&1 &
  else
    "$BIN" run kill.json "${SETS[@]}" --quiet --overwrite --set run_file=killed.h5 >/dev/null 2>&1 &
  fi
  pid=$!
  starts=$((starts + 1))
  # anywhere in the first span_ms of the run (60% of the reference at first, halved each
  # time a run outpaces it on a less busy machine): every phase and every write gets hit
  delay_ms=$(( (RANDOM * 32768 + RANDOM) % (span_ms + 1) ))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null
    kills=$((kills + 1))
  else
    wait "$pid"
    rc=$?
    [ $rc -eq 0 ] || { echo "kill_resume: a resumed run failed with exit $rc"; exit 1; }
    completed_early=$((completed_early + 1))
    span_ms=$((span_ms / 2 + 1))
    rm -rf killed.h5 killed.h5.ckpt killed.h5.lock # finished before the kill: start over
  fi
done
# let it finish
if [ -f killed.h5 ]; then
  "$BIN" resume killed.h5 --quiet >/dev/null 2>&1 || { echo "kill_resume: the final resume failed"; exit 1; }
else
  "$BIN" run kill.json "${SETS[@]}" --quiet --overwrite --set run_file=killed.h5 >/dev/null 2>&1 || { echo "kill_resume: the final run failed"; exit 1; }
fi
echo "kill_resume: $kills kills over $starts starts ($completed_early runs finished before their kill and were started over)"

$PY "$HERE/same_run.py" ref.h5 killed.h5
rc=$?
if [ $rc -eq 0 ]; then echo "kill_resume: 1 passed, 0 failed"; else echo "kill_resume: 0 passed, 1 failed"; fi
exit $rc

#!/bin/bash
# spin.sh: experiments/spin.json (SPIN: ground truth vs the model's own answer, DPO against the
# previous round's model) side by side with continued SFT on the same seed examples for the
# same number of steps, from the same round 0. Prints wall times and accuracy by round.
# Usage: experiments/spin.sh [BIN] (default build/autodidact); writes runs/spin*.h5.
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build/autodidact}
CFG=experiments/spin.json
run() { # run NAME [--set ...]: one arm, timed
    local name=$1; shift
    local t0=$(date +%s.%N)
    nice -n 10 "$BIN" run "$CFG" --quiet --overwrite --set run_file=runs/$name.h5 "$@"
    echo "$name: $(/usr/bin/python3 -c "print(f'{$(date +%s.%N) - $t0:.0f}')") s wall"
}
run spin
run spin_sft --set train.objective=sft
run spin_rpo --set preference.sft_alpha=1
run spin_lowlr --set train.lr=1e-5 --set train.min_lr=1e-6
/usr/bin/python3 analysis/compare_runs.py runs/spin.h5 runs/spin_sft.h5 runs/spin_rpo.h5 runs/spin_lowlr.h5 \
    -o runs/spin_compare.png --length 2 >/dev/null
for n in spin spin_sft spin_rpo spin_lowlr; do
    echo "== $n"; /usr/bin/python3 analysis/summary_table.py runs/$n.h5 --markdown
done

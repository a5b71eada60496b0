#!/bin/bash
# self_rewarding.sh: experiments/self_rewarding.json (the model ranks its own samples by
# self-consistency, no ground truth in the pairs; best vs worst with DPO against the previous
# round's model) side by side with SFT on the self-selected best answer, and DPO with an SFT
# term on the chosen answers, from the same round 0. Prints wall times, pair accuracy and
# accuracy by round. Usage: experiments/self_rewarding.sh [BIN]; writes runs/self_rewarding*.h5.
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build/autodidact}
CFG=experiments/self_rewarding.json
run() { # run NAME [--set ...]: one arm, timed
    local name=$1; shift
    local t0=$(date +%s.%N)
    nice -n 10 "$BIN" run "$CFG" --quiet --overwrite --set run_file=runs/$name.h5 "$@"
    echo "$name: $(/usr/bin/python3 -c "print(f'{$(date +%s.%N) - $t0:.0f}')") s wall"
}
run self_rewarding
run self_rewarding_sft --set train.objective=sft
run self_rewarding_rpo --set preference.sft_alpha=1
run self_rewarding_lowlr --set train.lr=1e-5 --set train.min_lr=1e-6
/usr/bin/python3 analysis/compare_runs.py runs/self_rewarding.h5 runs/self_rewarding_sft.h5 \
    runs/self_rewarding_rpo.h5 runs/self_rewarding_lowlr.h5 -o runs/self_rewarding_compare.png --length 4 >/dev/null
for n in self_rewarding self_rewarding_sft self_rewarding_rpo self_rewarding_lowlr; do
    echo "== $n"; "$BIN" report runs/$n.h5 | sed -n '/pairs by round/,$p;/label acc/,/^$/p'
done

#!/bin/bash
# preference.sh NAME [BIN]: runs experiments/NAME.json (spin or self_rewarding) in four arms
# from the same round 0; each prints its report (autodidact run does), then its wall time:
#   NAME         the config as written (DPO pairs against the previous round's model)
#   NAME_sft     train.objective sft, the same steps (spin: continued SFT on the same seed
#                examples, nothing selected; self_rewarding: SFT on the self-selected best answer)
#   NAME_rpo     the preference loss plus the SFT term on the chosen answers (sft_alpha 1)
#   NAME_lowlr   the preference loss at a tenth of the learning rate
# Writes runs/NAME*.h5 and runs/NAME_compare.png. BIN defaults to build/autodidact.
set -eu
cd "$(dirname "$0")/.."
NAME=${1:?usage: experiments/preference.sh spin|self_rewarding [BIN]}
BIN=${2:-build/autodidact}
CFG=experiments/$NAME.json
[ -f "$CFG" ] || { echo "preference.sh: no $CFG" >&2; exit 2; }
case $NAME in spin) LEN=2 ;; *) LEN=4 ;; esac # the accuracy panel of compare_runs.py
run() { # run ARM [--set ...]: one arm, timed
    local arm=$1; shift
    local t0=$(date +%s.%N)
    nice -n 10 "$BIN" run "$CFG" --quiet --overwrite --set run_file=runs/$arm.h5 "$@"
    echo "$arm: $(/usr/bin/python3 -c "print(f'{$(date +%s.%N) - $t0:.0f}')") s wall"
}
run "$NAME"
run "${NAME}_sft" --set train.objective=sft
run "${NAME}_rpo" --set preference.sft_alpha=1
run "${NAME}_lowlr" --set train.lr=1e-5 --set train.min_lr=1e-6
/usr/bin/python3 analysis/compare_runs.py runs/$NAME.h5 runs/${NAME}_sft.h5 runs/${NAME}_rpo.h5 \
    runs/${NAME}_lowlr.h5 -o runs/${NAME}_compare.png --length $LEN >/dev/null

#!/usr/bin/env bash
# Sets up (apt packages, build) and runs the default experiment, experiments/default.json:
# a small self-distillation run on the copy task (round 0 on lengths 1..6, then two rounds
# that label lengths 7 and 8 themselves), about a minute on 2 idle cores (2 minutes on busy ones). Then plots it.
# Extra arguments go to `autodidact run`, e.g. scripts/run.sh --set rounds.count=4
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
run_file=$(build/autodidact run experiments/default.json --dry-run "$@" | sed -n 's/^run file *\([^ ]*\).*/\1/p')
plots="${run_file%.*}_plots"
if [ -e "$plots" ] && [ ! -d "$plots" ]; then # checked before the run, not after it
    echo "run.sh: $plots (where the plots go) exists and is not a directory" >&2
    exit 1
fi
build/autodidact run experiments/default.json --overwrite "$@"
/usr/bin/python3 analysis/plot_run.py "$run_file"

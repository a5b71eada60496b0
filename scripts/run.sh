#!/usr/bin/env bash
# Sets up (apt packages, build) and runs the default experiment:
# experiments/default.json, a small run on a built-in task that finishes in minutes.
# Extra arguments are passed on, e.g. scripts/run.sh --set train.steps=100
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/autodidact train experiments/default.json "$@"

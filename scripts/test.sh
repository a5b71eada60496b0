#!/usr/bin/env bash
# Sets up (apt packages, build) and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --output-on-failure "$@"

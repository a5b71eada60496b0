#!/usr/bin/env bash
# Sets up (apt packages, build) and runs the whole test suite with ctest.
# Usage: scripts/test.sh [--sanitize | --mpi] [ctest arguments...]
#   --sanitize   build with AddressSanitizer and UBSan into build-asan/ and run the suite there
#   --mpi        install OpenMPI, build with -DAD_MPI=ON into build-mpi/ and run the MPI tests
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --mpi ]; then
  shift
  scripts/setup.sh libopenmpi-dev openmpi-bin
  cmake -S . -B build-mpi -DCMAKE_BUILD_TYPE=Release -DAD_MPI=ON >/dev/null
  cmake --build build-mpi -j "$(nproc)" 2>&1 | grep -E "error|warning" || true
  echo "test: MPI build in build-mpi"
  cd build-mpi
  ctest --output-on-failure -L mpi "$@"
  exit
fi
scripts/setup.sh
dir=build
if [ "${1:-}" = --sanitize ]; then
  shift
  dir=build-asan
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAD_SANITIZE=ON >/dev/null
  cmake --build "$dir" -j "$(nproc)" 2>&1 | grep -E "error|warning" || true
  echo "test: sanitizer build in $dir"
fi
cd "$dir"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --output-on-failure "$@"

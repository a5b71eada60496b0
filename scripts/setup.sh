#!/usr/bin/env bash
# Installs what autodidact needs on Debian 12 (only the missing packages) and builds it
# into build/. Usage: scripts/setup.sh [extra apt packages...]
set -euo pipefail
cd "$(dirname "$0")/.."

need=(build-essential cmake pkg-config libopenblas-openmp-dev libhdf5-dev libcjson-dev check
      python3-h5py python3-numpy python3-matplotlib unicode-data bzip2 "$@")
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" 2>&1 | grep -E "error|warning" || true
test -x build/autodidact || { echo "setup: build failed" >&2; exit 1; }
echo "setup: built build/autodidact"

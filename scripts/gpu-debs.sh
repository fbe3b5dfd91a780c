#!/usr/bin/env bash
# gpu-debs.sh [DIR]: download (not install) the Debian packages a GPU machine without apt
# needs: cJSON, TurboJPEG and OpenBLAS's OpenMP build with its Fortran runtime, about
# 13 MB, into DIR (default .deps/debs, ignored by git). Run it on a machine with apt, then
# carry .deps to the GPU machine; scripts/gpu-check.sh unpacks them into .deps/prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.deps/debs}
mkdir -p "$dir"
cd "$dir"
apt-get download libcjson1 libcjson-dev libturbojpeg0 libturbojpeg0-dev \
    libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libquadmath0 2>&1 | grep -v "^W: Download is performed unsandboxed" || true
ls -la

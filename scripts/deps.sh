#!/usr/bin/env bash
# deps.sh: install the libraries the build did not find (called by `make deps`).
#
# Arguments: the paths the Makefile found for cJSON (header, library), TurboJPEG (header,
# library) and OpenBLAS's OpenMP build (header, library); an empty argument means "not
# found where the build variables point". Only what is missing is installed, from Debian's
# packages after one `apt-get update`, and only when running as root with apt-get;
# otherwise this prints what is missing and the exact command, and fails.
set -u
cjson_h=$1 cjson_l=$2 tj_h=$3 tj_l=$4 blas_h=$5 blas_l=$6

pkgs=()
[ -n "$cjson_h" ] && [ -n "$cjson_l" ] || pkgs+=(libcjson-dev)
[ -n "$tj_h" ] && [ -n "$tj_l" ] || pkgs+=(libturbojpeg0-dev)
[ -n "$blas_h" ] && [ -n "$blas_l" ] || pkgs+=(libopenblas-openmp-dev)

if [ ${#pkgs[@]} -eq 0 ]; then
    echo "deps: cJSON, TurboJPEG and OpenBLAS (OpenMP) found; nothing to install"
    exit 0
fi

cmd="apt-get update && apt-get install -y --no-install-recommends ${pkgs[*]}"
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: missing: ${pkgs[*]}" >&2
    echo "deps: install them with:  sudo sh -c '$cmd'" >&2
    echo "deps: or point the build at existing copies: make EXTRA_INC=DIR EXTRA_LIB=DIR OPENBLAS_INC=DIR OPENBLAS_LIB=DIR (or DEPS_PREFIX=PREFIX for unpacked .deb files)" >&2
    exit 1
fi

echo "deps: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq; then
    echo "deps: apt-get update failed; cannot install ${pkgs[*]}" >&2
    exit 1
fi
log=$(mktemp)
if ! apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    echo "deps: apt-get install ${pkgs[*]} failed (log above)" >&2
    exit 1
fi
rm -f "$log"
echo "deps: installed ${pkgs[*]}"

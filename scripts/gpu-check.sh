#!/usr/bin/env bash
# gpu-check.sh LOGDIR: on a GPU machine, build and run everything GPU-side in one go and
# write the logs to LOGDIR:
#   env.txt        nvidia-smi, nvcc, where each library was found
#   build.log      the CUDA build (make CUDA=1)
#   tests.log      every test binary; GPU parity tests run instead of being skipped
#   bench.log      every benchmark binary
#   sanitizer.log  compute-sanitizer memcheck and racecheck over the test binaries (if present)
#   summary.txt    one line per step
# Works without system packages (docs/gpu.md): cuDNN and cuBLAS may come from NVIDIA's pip
# packages (found through python3), cJSON/TurboJPEG/OpenBLAS from .deb files unpacked into
# .deps/prefix (scripts/gpu-debs.sh downloads them where apt works). Exit status: non-zero
# when the build, a test, a benchmark or a sanitizer run failed, or a GPU test was skipped.
set -u
logdir=${1:?usage: scripts/gpu-check.sh LOGDIR}
mkdir -p "$logdir"
logdir=$(cd "$logdir" && pwd)
cd "$(dirname "$0")/.."
summary="$logdir/summary.txt"
: >"$summary"
step() { echo "$*" | tee -a "$summary"; }

# ---- environment ---------------------------------------------------------------------------
{
    date -u
    nvidia-smi 2>&1 || echo "nvidia-smi: not found"
    command -v nvcc && nvcc --version | tail -n 2
} >"$logdir/env.txt" 2>&1
make_args=(CUDA=1)
nvcc_path=$(command -v nvcc || true)
[ -z "$nvcc_path" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc_path=/usr/local/cuda/bin/nvcc
if [ -z "$nvcc_path" ]; then
    step "FAIL no nvcc on PATH or in /usr/local/cuda"
    exit 1
fi
cuda_home=$(dirname "$(dirname "$(readlink -f "$nvcc_path")")")
make_args+=(CUDA_HOME="$cuda_home")
ld_extra=""

pip_dir() { # the folder of an NVIDIA pip package (nvidia.cudnn, nvidia.cublas), or nothing
    python3 -c "import importlib, sys; m = importlib.import_module('$1'); print(list(m.__path__)[0])" 2>/dev/null
}
if [ ! -f "$cuda_home/include/cudnn.h" ]; then
    d=$(pip_dir nvidia.cudnn)
    if [ -n "$d" ] && [ -f "$d/include/cudnn.h" ]; then
        make_args+=(CUDNN_HOME="$d")
        ld_extra="$ld_extra:$d/lib"
    fi
fi
if ! ls "$cuda_home"/lib64/libcublas.so* >/dev/null 2>&1; then
    d=$(pip_dir nvidia.cublas)
    if [ -n "$d" ]; then
        make_args+=(EXTRA_INC="$d/include" EXTRA_LIB="$d/lib")
        ld_extra="$ld_extra:$d/lib"
    fi
fi
# cJSON, TurboJPEG, OpenBLAS: system packages if present, else the carried .deb files.
if [ ! -f /usr/include/cjson/cJSON.h ] || [ ! -d /usr/lib/x86_64-linux-gnu/openblas-openmp ] || [ ! -f /usr/include/turbojpeg.h ]; then
    if ls .deps/debs/*.deb >/dev/null 2>&1; then
        prefix=$(pwd)/.deps/prefix
        mkdir -p "$prefix"
        for f in .deps/debs/*.deb; do
            if command -v dpkg >/dev/null; then dpkg -x "$f" "$prefix"
            else ar p "$f" data.tar.xz | tar -xJ -C "$prefix" # Debian 12 packages use xz
            fi
        done
        make_args+=(DEPS_PREFIX="$prefix")
        ld_extra="$ld_extra:$prefix/usr/lib/x86_64-linux-gnu:$prefix/usr/lib/x86_64-linux-gnu/openblas-openmp"
    else
        step "note: cJSON/TurboJPEG/OpenBLAS not installed and no .deps/debs/*.deb carried (scripts/gpu-debs.sh)"
    fi
fi
# Join without empty entries (an empty entry would put the current directory on the path).
ld_path=$(printf '%s' "${ld_extra#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" | sed -E 's/:+/:/g; s/^://; s/:$//')
if [ -n "$ld_path" ]; then export LD_LIBRARY_PATH="$ld_path"; else unset LD_LIBRARY_PATH; fi
echo "make ${make_args[*]}" >>"$logdir/env.txt"
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" >>"$logdir/env.txt"
failures=0

# ---- build ---------------------------------------------------------------------------------
if make -j"$(nproc)" "${make_args[@]}" all >"$logdir/build.log" 2>&1; then
    step "ok   build ($(grep -c '^  NVCC' "$logdir/build.log") CUDA sources compiled)"
else
    step "FAIL build (see build.log)"
    tail -n 30 "$logdir/build.log"
    exit 1
fi
head -n 8 "$logdir/build.log" >>"$logdir/env.txt"
./build/maskrcnn selfcheck >>"$logdir/env.txt" 2>&1

# ---- tests ---------------------------------------------------------------------------------
OMP_NUM_THREADS=$(nproc) make --no-print-directory "${make_args[@]}" run-tests >"$logdir/tests.log" 2>&1
tests_rc=$?
step "$([ $failures = 0 ] && echo "ok  " || echo "FAIL") tests: $(grep -E '^[0-9]+ passed, ' "$logdir/tests.log" | tail -n 1)"
[ $failures = 0 ] || failures=$((failures + 1))
cp build/tests/logs/*.log "$logdir/" 2>/dev/null
# On a GPU machine no GPU test may be skipped: a skip means the probe failed here.
gpu_skips=$(grep -h "^SKIP .*no GPU" build/tests/logs/*.log 2>/dev/null | wc -l)
if [ "$gpu_skips" -gt 0 ]; then
    step "FAIL $gpu_skips GPU tests skipped on this GPU machine: $(grep -h '^SKIP .*no GPU' build/tests/logs/*.log | head -n 1)"
    failures=$((failures + 1))
fi

# ---- benchmarks ----------------------------------------------------------------------------
: >"$logdir/bench.log"
for b in build/bench/*; do
    [ -x "$b" ] || continue
    echo "== $b" >>"$logdir/bench.log"
    if ! timeout 300 "$b" >>"$logdir/bench.log" 2>&1; then
        step "FAIL bench $b"
        failures=$((failures + 1))
    fi
done
step "done benchmarks (bench.log)"

# ---- compute-sanitizer -----------------------------------------------------------------------
cs=$(command -v compute-sanitizer || ls "$cuda_home"/bin/compute-sanitizer 2>/dev/null || true)
if [ -n "$cs" ]; then
    : >"$logdir/sanitizer.log"
    bad=0
    for t in build/tests/test_*; do
        [ -x "$t" ] && [ "${t%.o}" = "$t" ] && [ "${t%.d}" = "$t" ] || continue
        for tool in memcheck racecheck; do
            echo "== $tool $t" >>"$logdir/sanitizer.log"
            timeout 600 "$cs" --tool "$tool" --error-exitcode 99 "$t" >>"$logdir/sanitizer.log" 2>&1
            rc=$?
            if [ $rc != 0 ]; then # 99: sanitizer errors; anything else: the test failed, crashed or timed out under it
                bad=$((bad + 1))
                echo "ERRORS: $tool $t (status $rc)" >>"$logdir/sanitizer.log"
            fi
        done
    done
    step "$([ $bad = 0 ] && echo "ok  " || echo "FAIL") compute-sanitizer: $bad runs with errors or a non-zero status"
    [ $bad = 0 ] || failures=$((failures + 1))
else
    step "note: compute-sanitizer not found"
fi
[ $failures = 0 ]

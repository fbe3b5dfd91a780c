#!/usr/bin/env bash
# usage: scripts/bench-lvis.sh [--scale S] [--no-python] [--keep] [BIN]   (BIN: build/maskrcnn)
#
# LVIS reader scale benchmark: times `BIN stats` on a generated file with LVIS v1 train's
# counts (../shared/tools/gen_lvis_like.py; about 1.03 GB at scale 1) on its first load
# (parse + write the cache), its cached load, parse-only loads with 1 and the default
# threads, and Python's json.load on the same file; prints wall seconds and peak RSS, then
# whether the goals are met (first load <= 10 s and <= 3 GB, cached load <= 1 s).
#
# The data file goes to ${MRC_BENCH_DIR:-/tmp/mrc-bench}/lvis_like_S.json and is generated
# only when missing; the cache goes to a fresh temporary MRC_CACHE_DIR (removed at exit
# unless --keep). Python: ${PYTHON:-python3}. Exits 0 whatever the timings (a benchmark,
# not a test), 0 with a "skipped" line when the generator is missing, non-zero only when
# `BIN stats` fails or the data file cannot be made.
set -euo pipefail

usage() { sed -n 2p "$0" | sed 's/^# //'; }

scale=1 python_row=1 keep=0 bin=build/maskrcnn
while [ $# -gt 0 ]; do
    case $1 in
        --scale) [ $# -ge 2 ] || { usage >&2; exit 2; }; scale=$2; shift 2 ;;
        --no-python) python_row=0; shift ;;
        --keep) keep=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "bench-lvis: unknown option '$1'" >&2; usage >&2; exit 2 ;;
        *) bin=$1; shift ;;
    esac
done
if ! [[ $scale =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || awk -v s="$scale" 'BEGIN { exit !(s <= 0) }'; then
    echo "bench-lvis: --scale wants a positive number, got '$scale'" >&2; exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
gen=$root/../shared/tools/gen_lvis_like.py
python=${PYTHON:-python3}
data_dir=${MRC_BENCH_DIR:-/tmp/mrc-bench}
data=$data_dir/lvis_like_$scale.json

echo "== LVIS reader scale benchmark (scripts/bench-lvis.sh, scale $scale)"
if [ ! -x "$bin" ]; then
    echo "bench-lvis: $bin is not an executable; build it first (make)" >&2; exit 1
fi

# ---- the data file ---------------------------------------------------------------------
if [ ! -s "$data" ]; then
    if [ ! -f "$gen" ]; then
        echo "skipped: the generator $gen is missing (../shared not on this machine)"; exit 0
    fi
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "skipped: $python (PYTHON) not found, needed to run the generator"; exit 0
    fi
    mkdir -p "$data_dir"
    echo "generating $data (about $(awk -v s="$scale" 'BEGIN { printf "%.0f", 1030 * s }') MB) ..."
    # Written under a temporary name, so an interrupted run leaves no truncated file behind.
    partial=$data.partial.$$
    trap 'rm -f "$partial"' EXIT
    if ! "$python" "$gen" "$partial" --scale "$scale"; then
        echo "bench-lvis: the generator failed (disk space in $data_dir? set MRC_BENCH_DIR, or LVIS_BENCH=0 for make bench)" >&2
        exit 1
    fi
    mv "$partial" "$data"
    trap - EXIT
fi

# ---- scratch: the cache (MRC_CACHE_DIR), an empty dir for the --no-cache rows, logs -----
work=$(mktemp -d "${TMPDIR:-/tmp}/mrc-bench-lvis.XXXXXX")
# shellcheck disable=SC2317  # called by the trap
cleanup() { if [ "$keep" = 1 ]; then echo "kept: $work (cache in $work/cache, outputs in $work/*.out)"; else rm -rf "$work"; fi; }
trap cleanup EXIT
mkdir -p "$work/cache" "$work/nocache"

# GNU time gives wall seconds and peak RSS; without it, wall time from date and RSS "n/a".
gnu_time=0
if [ -x /usr/bin/time ] && /usr/bin/time -f '%e %M' -o /dev/null true >/dev/null 2>&1; then gnu_time=1; fi

# measure NAME CMD...: runs CMD with stdout in $work/NAME.out and stderr in $work/NAME.err;
# sets rc, wall (s) and rss (MiB, or n/a).
measure() {
    local name=$1; shift
    rc=0
    if [ "$gnu_time" = 1 ]; then
        /usr/bin/time -f '%e %M' -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
        # On a non-zero exit GNU time writes "Command exited with ..." first: the figures are last.
        read -r wall rss_kb < <(tail -n 1 "$work/$name.time")
        rss=$(awk -v k="$rss_kb" 'BEGIN { printf "%.0f", k / 1024 }')
    else
        local t0 t1
        t0=$(date +%s.%N)
        "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
        t1=$(date +%s.%N)
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
        rss=n/a
    fi
}

rows=()
# row LABEL: appends the last measurement to the table.
row() { rows+=("$(printf '%-44s %9s %14s' "$1" "$wall" "$rss")"); }

# stats NAME LABEL ARGS...: one `BIN stats` row; its failure ends the benchmark with its status.
stats() {
    local name=$1 label=$2; shift 2
    measure "$name" "$bin" stats "$data" "$@"
    if [ "$rc" != 0 ]; then
        echo "bench-lvis: '$bin stats $data $*' failed (exit $rc):" >&2
        cat "$work/$name.err" >&2
        exit "$rc"
    fi
    row "$label"
}

# ---- the rows --------------------------------------------------------------------------
# The file is read once first, so every row sees it in the page cache (the same for all).
cat "$data" >/dev/null
# --cache so the small files of a --scale < 1 run are cached as well (the default for big ones).
export MRC_CACHE_DIR=$work/cache
stats first "first load (parse + write cache)" --cache
first_wall=$wall first_rss=$rss
cache_written=no
[ -n "$(ls -A "$work/cache")" ] && cache_written=yes
stats cached "cached load (maps the cache)" --cache
cached_wall=$wall
export MRC_CACHE_DIR=$work/nocache
stats parse1 "parse only, --no-cache --threads 1" --no-cache --threads 1
stats parse "parse only, --no-cache (default threads)" --no-cache

py_note=
if [ "$python_row" = 0 ]; then
    py_note="Python json.load: not run (--no-python)"
elif ! command -v "$python" >/dev/null 2>&1; then
    py_note="Python json.load: not run ($python not found)"
else
    # json.load peaks at about 6.7x the file's size (7.5x with a margin): not run where that would not fit.
    size=$(stat -c %s "$data")
    avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo 2>/dev/null || true)
    if [ -n "$avail_kb" ] && awk -v s="$size" -v a="$avail_kb" 'BEGIN { exit !(s * 7.5 > a * 1024) }'; then
        py_note="Python json.load: not run (needs about $(awk -v s="$size" 'BEGIN { printf "%.1f", s * 7.5 / 2^30 }') GiB, $(awk -v a="$avail_kb" 'BEGIN { printf "%.1f", a / 2^20 }') GiB available)"
    else
        py_info=$("$python" -c 'import platform, sys; print(sys.executable, platform.python_version())' 2>/dev/null || echo "$python")
        measure python "$python" -c 'import json,sys; json.load(open(sys.argv[1]))' "$data"
        if [ "$rc" = 0 ]; then
            row "Python json.load"
            py_wall=$wall
        else
            py_note="Python json.load: failed (exit $rc): $(tail -n 1 "$work/python.err")"
        fi
    fi
fi

# What any run of BIN costs before it reads anything (start-up, shared libraries).
measure baseline "$bin" stats --help
base_wall=$wall base_rss=$rss
[ "$base_rss" = n/a ] && base_rss="RSS n/a" || base_rss="$base_rss MiB"

# ---- the table -------------------------------------------------------------------------
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && ! git -C "$root" diff --quiet HEAD -- 2>/dev/null; then commit="$commit+dirty"; fi
bytes=$(stat -c %s "$data")
echo
echo "file:   $data ($(awk -v b="$bytes" 'BEGIN { if (b >= 1e9) printf "%.2f GB", b / 1e9; else printf "%.1f MB", b / 1e6 }'), $bytes bytes; read warm, from the page cache)"
echo "date:   $(date '+%Y-%m-%d %H:%M:%S %z')   machine: $(uname -m), nproc $(nproc)   commit: $commit   bin: $bin"
echo
printf '%-44s %9s %14s\n' "load" "wall s" "peak RSS MiB"
printf '%-44s %9s %14s\n' "--------------------------------------------" "------" "------------"
printf '%s\n' "${rows[@]}"
[ -z "$py_note" ] || echo "$py_note"
[ -z "${py_info:-}" ] || echo "python: $py_info"
echo "for reference, '$bin stats --help' alone: $base_wall s, $base_rss (start-up and shared libraries)"
echo

# ---- checks and goals ------------------------------------------------------------------
same=yes
cmp -s "$work/first.out" "$work/cached.out" && cmp -s "$work/first.out" "$work/parse.out" || same=no
echo "stats output identical across cache states: $same"
same_t=yes
cmp -s "$work/parse1.out" "$work/parse.out" || same_t=no
echo "stats output identical with 1 and the default threads: $same_t"
[ "$cache_written" = yes ] || echo "warning: the first load wrote no cache in $work/cache, so the cached load parsed again"
[ -z "$(ls -A "$work/nocache")" ] || echo "warning: a --no-cache run wrote into MRC_CACHE_DIR: $(ls "$work/nocache")"

# goal LABEL VALUE LIMIT UNIT
goal() {
    local verdict
    if [ "$2" = n/a ]; then verdict="n/a (no GNU time)"; set -- "$1" n/a "$3" ""
    elif awk -v v="$2" -v l="$3" 'BEGIN { exit !(v <= l) }'; then verdict="met"
    else verdict="NOT met"; fi
    printf 'goal %-34s %-24s %s\n' "$1" "($2${4:+ $4}, limit $3)" "$verdict"
}
awk -v s="$scale" 'BEGIN { exit !(s == 1) }' && echo "goals:" || echo "goals (set for scale 1; this is scale $scale):"
goal "first load <= 10 s:" "$first_wall" 10 s
goal "first load peak RSS <= 3 GB:" "$first_rss" 3072 MiB
goal "cached load <= 1 s:" "$cached_wall" 1 s
if [ -n "${py_wall:-}" ]; then
    # Ratios only where the times are above GNU time's 0.01 s resolution.
    awk -v p="$py_wall" -v f="$first_wall" -v c="$cached_wall" 'BEGIN {
        if (f >= 0.1) printf "json.load vs first load: %.1fx the time", p / f
        if (f >= 0.1 && c >= 0.05) printf "; vs cached load: %.0fx", p / c
        if (f >= 0.1) printf "\n" }'
fi
exit 0

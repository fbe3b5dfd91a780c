#!/usr/bin/env bash
# run-tests.sh DIR [BINARY...]: run the given test binaries (default: every DIR/test_*),
# print one line per binary, and end with
#   N passed, N failed, N skipped
# counting test cases. Each binary prints its own counts as its last line
# ("test_x: P passed, F failed, S skipped", see tests/test.h). A binary that is missing,
# crashes, hangs (TEST_TIMEOUT seconds, default 600), exits non-zero without reporting
# failures, or never prints that line counts as one failed case. Full output of each binary: DIR/logs/NAME.log.
set -u
dir=${1:?usage: run-tests.sh BUILD/tests [BINARY...]}
shift
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=("$dir"/test_*)
timeout_s=${TEST_TIMEOUT:-600}
mkdir -p "$dir/logs"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

total_p=0 total_f=0 total_s=0
failed_bins=()
for bin in "${bins[@]}"; do
    case "$bin" in *.o|*.d) continue ;; esac
    name=$(basename "$bin")
    if [ ! -x "$bin" ]; then
        echo "FAIL $name: $bin is missing or not executable"
        total_f=$((total_f + 1))
        failed_bins+=("$name")
        continue
    fi
    log="$dir/logs/$name.log"
    start=$(date +%s%N)
    timeout "$timeout_s" "$bin" >"$log" 2>&1
    rc=$?
    tenths=$((($(date +%s%N) - start) / 100000000))
    secs="$((tenths / 10)).$((tenths % 10))"
    summary=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$" "$log" | tail -n 1)
    if [ -n "$summary" ]; then
        read -r p f s <<<"$(echo "$summary" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')"
    else
        p=0 f=0 s=0
    fi
    if { [ $rc -ne 0 ] && [ "$f" -eq 0 ]; } || [ -z "$summary" ]; then
        f=$((f > 0 ? f : 1))
        if [ $rc -eq 124 ]; then why="timed out after ${timeout_s}s"
        elif [ -z "$summary" ]; then why="exited with status $rc without its '$name: N passed, N failed, N skipped' line"
        else why="exited with status $rc without reporting a failure"; fi
        echo "FAIL $name: $why (log: $log)"
        tail -n 15 "$log" | sed 's/^/    /'
    fi
    total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
    if [ "$f" -gt 0 ]; then
        failed_bins+=("$name")
        grep -E "^(FAIL|  )" "$log" | head -n 20 | sed 's/^/    /'
    fi
    printf '%-28s %3d passed %3d failed %3d skipped  %6ss\n' "$name" "$p" "$f" "$s" "$secs"
    grep -E "^SKIP" "$log" | sed 's/^/    /'
done
[ ${#failed_bins[@]} -gt 0 ] && echo "failed: ${failed_bins[*]}"
echo "$total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" -eq 0 ]

#!/bin/sh
# Runs the couchjobs micro-benchmark of the embedded engine.
#
#   bench/run.sh                  the full run (several minutes; needs ~1 GB
#                                 of free disk for the 1M-job store)
#   bench/run.sh --quick          a fast smoke run with small N
#   bench/run.sh --sections add,latency
#                                 only some sections (add, drain, latency, scale)
#   bench/run.sh --help           every option of the bench program
#
# It configures and builds a Release build in build-bench/ when needed,
# then runs build-bench/cj_bench with the given options. Stores go to a
# temporary directory under $CJ_BENCH_DIR (default: $TMPDIR, else /var/tmp),
# which is removed afterwards. Put it on the disk you want to measure: a
# tmpfs makes sync=full meaningless.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build="$root/build-bench"

mkdir -p "$build"
log="$build/bench-build.log"
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$log" 2>&1 ||
		{ cat "$log" >&2; exit 1; }
fi
cmake --build "$build" --target cj_bench -j2 >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
rm -f "$log"

parent=${CJ_BENCH_DIR:-${TMPDIR:-/var/tmp}}
work=$(mktemp -d "$parent/cj_bench_run.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

"$build/cj_bench" --dir "$work" "$@"

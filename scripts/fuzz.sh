#!/bin/sh
# Builds the libFuzzer harnesses (test/fuzz, clang) and runs each one.
#
#   scripts/fuzz.sh              a short run: 5 seconds each (the test command)
#   CJ_FUZZ_SECONDS=3600 scripts/fuzz.sh [NAME...]   a long run
#
# Each harness starts from its seed corpus, test/fuzz/corpus/NAME (read
# only), and keeps what it finds in build-fuzz/corpus/NAME, which later runs
# start from too. A failing input is written to build-fuzz/crash-*; run
# `build-fuzz/fuzz_NAME FILE` to see it again, and add it to the seed
# corpus with the fix.
set -eu
cd "$(dirname "$0")/.."
secs=${CJ_FUZZ_SECONDS:-5}
names=${*:-tuple jobvalue json pgurl cli cron}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCJ_FUZZ=ON -DCJ_WERROR=ON >/dev/null
targets=
for n in $names; do targets="$targets fuzz_$n"; done
# shellcheck disable=SC2086
cmake --build build-fuzz -j2 --target $targets
export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
for n in $names; do
	mkdir -p "build-fuzz/corpus/$n"
	log=build-fuzz/fuzz_$n.log
	# -close_fd_mask=1: the CLI harness prints help and usage lines
	if ! (cd build-fuzz && "./fuzz_$n" -max_total_time="$secs" -close_fd_mask=1 \
		-print_final_stats=0 "corpus/$n" "../test/fuzz/corpus/$n") >"$log" 2>&1; then
		tail -n 40 "$log"
		echo "fuzz.sh: fuzz_$n failed (log: $log)" >&2
		exit 1
	fi
	echo "fuzz_$n: $(grep -E '^Done' "$log" || echo done)"
done

#!/bin/sh
# Builds the libFuzzer harnesses (test/fuzz, clang) and runs each one.
#
#   scripts/fuzz.sh              a short run: 5 seconds each (the test command),
#                                as many at once as there are cores
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
# the harnesses run side by side, as many at once as there are cores: each
# still gets its seconds of a core of its own
lanes=$(nproc 2>/dev/null || echo 2)
fuzz_one() {
	mkdir -p "build-fuzz/corpus/$1"
	# -close_fd_mask=1: the CLI harness prints help and usage lines
	(cd build-fuzz && "./fuzz_$1" -max_total_time="$secs" -close_fd_mask=1 \
		-print_final_stats=0 "corpus/$1" "../test/fuzz/corpus/$1") >"build-fuzz/fuzz_$1.log" 2>&1
}
failed=
# shellcheck disable=SC2086
set -- $names
while [ $# -gt 0 ]; do
	batch='' k=0
	while [ $# -gt 0 ] && [ "$k" -lt "$lanes" ]; do
		fuzz_one "$1" &
		eval "pid_$k=\$!"
		batch="$batch $1" k=$((k + 1))
		shift
	done
	k=0
	for n in $batch; do
		if eval "wait \$pid_$k"; then
			echo "fuzz_$n: $(grep -E '^Done' "build-fuzz/fuzz_$n.log" || echo 'done')"
		else
			tail -n 40 "build-fuzz/fuzz_$n.log"
			echo "fuzz.sh: fuzz_$n failed (log: build-fuzz/fuzz_$n.log)" >&2
			failed="$failed $n"
		fi
		k=$((k + 1))
	done
	[ -z "$failed" ] || exit 1
done

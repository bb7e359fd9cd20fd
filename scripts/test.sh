#!/bin/sh
# Installs what is needed, builds, and runs every test.
#
#   scripts/test.sh            everything: clang with ASan+UBSan (all tests),
#                              a gcc -O2 -Werror build of everything, the
#                              library and cjobs in every build type with
#                              gcc and clang, tests and benchmarks too where
#                              the warnings may differ
#                              (scripts/build-matrix.sh), and a
#                              smoke run of the speed comparison
#                              (bench/compare.sh --smoke: installs beanstalkd
#                              and redis-server, under a minute), and a short
#                              run of each fuzzer (scripts/fuzz.sh)
#   scripts/test.sh --quick    one plain gcc build, all tests on the
#                              embedded engine only
#
# Build trees: build-test (sanitizers), build-gcc, build-matrix/*, build-fuzz.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
# each stage's heading says when it started (UTC) and how long into the run,
# so that a log shows where the time goes
start=$(date +%s)
stage() {
	echo "== $* ($(date -u +%T), +$(($(date +%s) - start)) s)"
}
stage "dependencies (scripts/deps.sh --test, npm ci)"
sh scripts/deps.sh --test

jobs=$(nproc 2>/dev/null || echo 2)
mode=${1:-full}

# puppeteer-core for the dashboard's browser test, at the version pinned in
# test/ui/package-lock.json, into test/ui/node_modules (once per lock file)
if ! cmp -s test/ui/package-lock.json test/ui/node_modules/.installed-lock 2>/dev/null; then
	(cd test/ui && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	cp test/ui/package-lock.json test/ui/node_modules/.installed-lock
fi
# without it, or without Chromium, that test fails rather than skips
export CJ_UI_REQUIRED=1

if [ "$mode" = "--quick" ]; then
	cmake -S . -B build-quick -DCMAKE_BUILD_TYPE=Debug -DCJ_WERROR=ON >/dev/null
	cmake --build build-quick -j"$jobs"
	(cd build-quick && ctest --output-on-failure -j2)
	exit $?
fi

stage "clang, -Werror, ASan + UBSan: build (the tests run below)"
CC=clang cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DCJ_SANITIZE=ON -DCJ_WERROR=ON >/dev/null
cmake --build build-test -j"$jobs"

stage "gcc, -Werror, optimised: build everything"
CC=gcc cmake -S . -B build-gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCJ_WERROR=ON >/dev/null
cmake --build build-gcc -j"$jobs"

stage "every build type (Debug, Release, RelWithDebInfo, MinSizeRel) with gcc and clang, -Werror"
# (gcc RelWithDebInfo with -Werror is build-gcc, just built)
CJ_MATRIX_SKIP=gcc-RelWithDebInfo sh scripts/build-matrix.sh build-matrix

stage "house rules"
sh scripts/check-source.sh build-gcc

stage "the README's library example compiles warning-free"
cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/quickstart.c \
	build-gcc/libcouchjobs.a -llmdb -ljansson -lpq -lpthread -o build-gcc/quickstart

stage "the README's quick starts run as shown (scripts/readme-check.sh)"
sh scripts/readme-check.sh build-gcc

stage "the README's demo runs and ends well"
sh scripts/demo.sh >build-gcc/demo.log 2>&1 || {
	tail -n 30 build-gcc/demo.log
	echo "test.sh: scripts/demo.sh failed (log: build-gcc/demo.log)" >&2
	exit 1
}
grep -q "demo         0         0       301       301" build-gcc/demo.log || {
	tail -n 30 build-gcc/demo.log
	echo "test.sh: the demo did not finish its 301 jobs" >&2
	exit 1
}

stage "tests on the embedded engine (ASan + UBSan)"
# leaks fail the run; a slow machine gets more time
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export CJ_TEST_TIMEOUT_MULTIPLIER="${CJ_TEST_TIMEOUT_MULTIPLIER:-2}"
(cd build-test && ctest --output-on-failure -j2)

stage "the same tests on PostgreSQL (ASan + UBSan), on a private server over TCP"
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/cjpg.XXXXXX")
chmod 755 "$pgdir"
trap 'sh "$root/scripts/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"' EXIT INT TERM
CJ_PG_TCP=1 sh scripts/pg.sh start "$pgdir"
CJ_TEST_URL=$(sh scripts/pg.sh url "$pgdir")
export CJ_TEST_URL
(cd build-test && ctest --output-on-failure -j2)

stage "fuzzing: a short run of each libFuzzer harness (scripts/fuzz.sh)"
sh scripts/fuzz.sh

stage "smoke run of the speed comparison (a few hundred jobs per system; not a measurement)"
smoke_log=build-gcc/compare-smoke.log
if ! sh bench/compare.sh --smoke --prog build-gcc/cj_compare 2>"$smoke_log"; then
	tail -n 40 "$smoke_log"
	echo "test.sh: the comparison's smoke run failed (log: $smoke_log)" >&2
	exit 1
fi
stage "all tests passed"

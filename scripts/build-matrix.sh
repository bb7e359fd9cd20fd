#!/bin/sh
# Builds everything (library, cjobs, tests, benchmarks) in every build type
# a user is likely to pick, with gcc and with clang, warnings as errors, so
# that no configuration breaks unseen.
#
#   scripts/build-matrix.sh [DIR]   build trees under DIR (default:
#                                   build-matrix), one per compiler and type
#
#   CJ_MATRIX_SKIP="gcc-Release ..."  configurations not to build (test.sh
#                                   names the one it has built already as
#                                   build-gcc, with the same options)
#
# Exits non-zero on the first configuration that does not build cleanly,
# naming it.
set -eu
cd "$(dirname "$0")/.."
top=${1:-build-matrix}
jobs=$(nproc 2>/dev/null || echo 2)
for cc in gcc clang; do
	for type in Debug Release RelWithDebInfo MinSizeRel; do
		dir="$top/$cc-$type"
		case " ${CJ_MATRIX_SKIP:-} " in
		*" $cc-$type "*)
			echo "build-matrix: $cc $type: built elsewhere"
			continue
			;;
		esac
		if ! { CC=$cc cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DCJ_WERROR=ON \
			>"$top.log" 2>&1 && cmake --build "$dir" -j"$jobs" >>"$top.log" 2>&1; }; then
			grep -E 'error|warning' "$top.log" | head -n 20 >&2 || tail -n 20 "$top.log" >&2
			echo "build-matrix: $cc $type does not build cleanly (log: $top.log)" >&2
			exit 1
		fi
		echo "build-matrix: $cc $type: ok"
	done
done
rm -f "$top.log"

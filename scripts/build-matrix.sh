#!/bin/sh
# Builds the library and cjobs in every build type a user is likely to
# pick, with gcc and with clang, warnings as errors, so that no
# configuration breaks unseen; the tests and benchmarks too where the
# compiler may warn about them otherwise than in scripts/test.sh's two full
# builds.
#
#   scripts/build-matrix.sh [DIR]   build trees under DIR (default:
#                                   build-matrix), one per compiler and type
#
#   CJ_MATRIX_SKIP="gcc-Release ..."  configurations not to build (test.sh
#                                   names the one it has built already as
#                                   build-gcc, with the same options)
#   CJ_MATRIX_FULL="gcc-Debug ..."  configurations that build everything
#                                   (tests and benchmarks too); "all": every
#                                   one. Default: gcc-Release gcc-MinSizeRel
#
# Why those two: gcc's flow-based warnings (-Wmaybe-uninitialized,
# -Wstringop-*, -Warray-bounds, -Wformat-truncation, ...) come from its
# optimiser, so -O3 and -Os may warn where build-gcc's -O2 does not, and
# -O0 (Debug) warns about a subset of what -O2 does. Clang's warnings come
# from its front end whatever the optimisation, and test.sh's build-test
# (clang, Debug) builds everything. The library and cjobs are built in
# every configuration all the same: they are what users build. Each line
# says how long its build took.
#
# Exits non-zero on the first configuration that does not build cleanly,
# naming it.
set -eu
cd "$(dirname "$0")/.."
top=${1:-build-matrix}
jobs=$(nproc 2>/dev/null || echo 2)
full=${CJ_MATRIX_FULL-gcc-Release gcc-MinSizeRel}
for cc in gcc clang; do
	for type in Debug Release RelWithDebInfo MinSizeRel; do
		dir="$top/$cc-$type"
		case " ${CJ_MATRIX_SKIP:-} " in
		*" $cc-$type "*)
			echo "build-matrix: $cc $type: built elsewhere"
			continue
			;;
		esac
		case " $full " in
		*" $cc-$type "* | *" all "*)
			targets=
			what=everything
			;;
		*)
			targets="--target couchjobs couchjobs_static cjobs"
			what="the library and cjobs"
			;;
		esac
		t0=$(date +%s)
		# shellcheck disable=SC2086
		if ! { CC=$cc cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DCJ_WERROR=ON \
			>"$top.log" 2>&1 && cmake --build "$dir" -j"$jobs" $targets >>"$top.log" 2>&1; }; then
			grep -E 'error|warning' "$top.log" | head -n 20 >&2 || tail -n 20 "$top.log" >&2
			echo "build-matrix: $cc $type does not build cleanly (log: $top.log)" >&2
			exit 1
		fi
		echo "build-matrix: $cc $type: ok, $what ($(($(date +%s) - t0)) s)"
	done
done
rm -f "$top.log"

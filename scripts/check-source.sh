#!/bin/sh
# Checks the house rules that a compiler does not (CONTRIBUTING.md):
#  - every global symbol of the library starts with cj_ (public) or cj__
#    (internal);
#  - engine feature macros (HAVE_LMDB, HAVE_LIBPQ) appear only in
#    src/engine/engine.c;
#  - front ends and tests (other than the white-box ones listed below) use
#    only the public header.
# Usage: scripts/check-source.sh BUILD_DIR
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
fail=0

bad=$(nm -g --defined-only "$build/libcouchjobs.a" 2>/dev/null |
	awk 'NF == 3 && $2 ~ /[TDBR]/ {print $3}' | grep -v '^cj_' || true)
if [ -n "$bad" ]; then
	echo "check-source: global symbols without the cj_ prefix:" $bad
	fail=1
fi

macros=$(grep -ln 'HAVE_LMDB\|HAVE_LIBPQ' src/*.c src/*.h src/os/*.c src/engine/*.h \
	src/engine/lmdb.c src/engine/pg*.c src/engine/pg_int.h 2>/dev/null || true)
if [ -n "$macros" ]; then
	echo "check-source: engine macros outside src/engine/engine.c:" $macros
	fail=1
fi

# white-box tests, which may: the tuple codec's, the embedded log file's
# (test_log: its CRC), the store format's, the
# fault-injection tests (they arm the library's internal switches and hold
# points: test_fault, test_flush and test_xhold with their held.c,
# test_owner, test_xgate, test_xspill, test_prune_race, test_powerloss's
# leader killed before its flush, writer killed after its commit and spill
# guard's counts, and
# test_pg's first wait of a handle) and the checker's (it damages stores
# with raw engine writes to see each kind of damage found)
whitebox="test/test_tuple.c test/test_log.c test/test_format.c test/test_fault.c test/test_flush.c test/test_owner.c test/test_xhold.c test/test_xgate.c test/test_xspill.c test/held.c test/test_prune_race.c test/test_pg.c test/test_verify.c test/test_powerloss.c"
private=$(for f in tools/*.c tools/*.h server/*.c server/*.h bench/*.c bench/compare/*.c test/*.c test/*.h; do
	case " $whitebox " in *" $f "*) continue ;; esac
	grep -ln '"cj_int.h"\|engine/engine.h\|"engine/lmdb_log.h"\|"tuple.h"' "$f" 2>/dev/null || true
done)
if [ -n "$private" ]; then
	echo "check-source: front ends or tests including private headers:" $private
	fail=1
fi

[ $fail = 0 ] && echo "check-source: ok"
exit $fail

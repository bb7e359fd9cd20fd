#!/bin/sh
# Runs the README's quick starts as they stand and compares what they print
# with what the README shows, locks and times masked:
#
#   scripts/readme-check.sh BUILD_DIR
#
# - the library quick start: the README's program is examples/quickstart.c,
#   word for word; its `cc` line (with build/ read as BUILD_DIR/) compiles
#   it, and the program prints what the README shows;
# - the command-line sessions between <!-- readme-cli:begin --> and
#   <!-- readme-cli:end -->, readme-fail's, readme-limits' and readme-sched's: the `$ ` lines of each run
#   in order in one shell, from
#   the checkout's root, with BUILD_DIR's cjobs first on PATH; the session
#   printed (commands, standard output and error) must be the README's.
#
# Exits 0 when both match, else prints the differences and exits 1.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
cd "$(dirname "$0")/.."
root=$(pwd)
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
status=0

# block NAME: the lines between the README's begin and end markers of NAME,
# without the ``` fences
block() {
	awk -v b="<!-- readme-$1:begin -->" -v e="<!-- readme-$1:end -->" '
		$0 == b { on = 1; next }
		$0 == e { on = 0 }
		on && !/^```/ { print }' README.md
}

mask() {
	sed -E -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<lock>/g' \
	       -e 's/"sched_time":[1-9][0-9]*/"sched_time":<time>/g' \
	       -e 's/"(added_ms|finished_ms|fence|time)":[1-9][0-9]*/"\1":<n>/g' \
	       -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z/<utc>/g'
}

# the session of a block, run: each `$ ` line is echoed, then run, its
# standard error with its output
run_block() {
	# ($? is kept across the echo of the next line, for `echo $?`)
	awk 'BEGIN { print "rc=0" }
		/^\$ / {
			cmd = substr($0, 3)
			q = cmd; gsub(/'\''/, "'\''\\'\'''\''", q)
			print "printf '\''%s\\n'\'' '\''$ " q "'\''"
			print "(exit $rc); " cmd " 2>&1; rc=$?"
		}' >"$tmp/session.sh"
	(PATH="$build:$PATH" sh "$tmp/session.sh")
}

check() { # NAME: compares the block NAME with its run
	block "$1" | mask >"$tmp/want"
	block "$1" | run_block | mask >"$tmp/got" || true
	if ! diff -u "$tmp/want" "$tmp/got" >"$tmp/diff"; then
		echo "readme-check: the README's $1 session prints otherwise (- README, + run):" >&2
		head -n 60 "$tmp/diff" >&2
		status=1
	fi
}

# the library quick start: the program shown is examples/quickstart.c
awk '/^```c$/ { on = 1; next } on && /^```$/ { exit } on { print }' README.md >"$tmp/shown.c"
if ! diff -u examples/quickstart.c "$tmp/shown.c" >"$tmp/diff"; then
	echo "readme-check: the README's program differs from examples/quickstart.c:" >&2
	head -n 60 "$tmp/diff" >&2
	status=1
fi
# its cc line builds in $tmp (where ./quickstart then runs), from the root
mkdir -p "$tmp/lib"
block lib | sed -e "s#build/#$build/#g" -e "s#-o quickstart#-o $tmp/lib/quickstart#" \
	-e "s#examples/#$root/examples/#g" -e "s#-Iinclude#-I$root/include#" \
	-e 's#^\$ \./quickstart$#$ cd '"$tmp/lib"' \&\& ./quickstart#' >"$tmp/lib.block"
(cd "$tmp/lib" && run_block <"$tmp/lib.block" | grep -v '^\$ ' >"$tmp/lib.got") || true
block lib | grep -v '^\$ ' >"$tmp/lib.want"
if ! diff -u "$tmp/lib.want" "$tmp/lib.got" >"$tmp/diff"; then
	echo "readme-check: the README's library quick start prints otherwise:" >&2
	head -n 60 "$tmp/diff" >&2
	status=1
fi

check cli
check fail
check limits
check sched
[ $status = 0 ] && echo "readme-check: the README's quick starts run as shown"
exit $status

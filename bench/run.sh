#!/bin/sh
# Runs the couchjobs micro-benchmark on the embedded (LMDB) engine, on the
# PostgreSQL engine, or on both, and puts the two side by side.
#
#   bench/run.sh                  both engines, the full run (about 6 to 8
#                                 minutes; ~300 MB of disk)
#   bench/run.sh --quick          a fast smoke run of both engines with small N
#   bench/run.sh --engine lmdb|pg|both
#                                 which engine (default: both)
#   bench/run.sh --sections add,latency
#                                 only some sections (add, drain, latency, scale,
#                                 subs, lost, threads, wake)
#   bench/run.sh --url URL        PostgreSQL: use the server at URL instead of
#                                 a private one (schemas cjbench_* are created
#                                 in its database and dropped afterwards)
#   bench/run.sh --pg-tcp         the private server also listens on
#                                 127.0.0.1 and the benchmark connects over
#                                 TCP, as processors on other machines would
#                                 (port: $CJ_PG_PORT, default one from the PID)
#   bench/run.sh --help           every option of the bench program
#
# It configures and builds a Release build in build-bench/ when needed,
# then runs build-bench/cj_bench. Everything goes to a temporary directory
# under $CJ_BENCH_DIR (default: $TMPDIR, else /var/tmp), removed afterwards.
# Put it on the disk you want to measure: a tmpfs makes sync=full
# meaningless.
#
# PostgreSQL: unless --url is given, a private server is started with
# scripts/pg.sh in that directory (on a unix socket only, unless --pg-tcp; with
# fsync=on and synchronous_commit=on) and stopped on exit. The server runs
# on this machine and shares its CPUs with the benchmark. With --engine both
# (the default), the PostgreSQL half is skipped, with a notice, when the
# build has no PostgreSQL engine or no server is installed; with --engine pg
# that is an error.
#
# Other options go to cj_bench (and so to both engines, e.g. --big N).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build="$root/build-bench"

usage() {
	sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'
}

engine=both
url=""
tcp=0
n=$#
i=0
want_help=0
while [ "$i" -lt "$n" ]; do
	a=$1
	shift
	i=$((i + 1))
	case $a in
	--engine | --url)
		if [ "$i" -ge "$n" ]; then
			echo "run.sh: $a needs a value" >&2
			exit 2
		fi
		v=$1
		shift
		i=$((i + 1))
		if [ "$a" = --engine ]; then engine=$v; else url=$v; fi
		;;
	--engine=*) engine=${a#--engine=} ;;
	--pg-tcp) tcp=1 ;;
	--url=*) url=${a#--url=} ;;
	--help | -h)
		want_help=1
		set -- "$@" "$a"
		;;
	*) set -- "$@" "$a" ;;
	esac
done
case $engine in
lmdb | pg | both) ;;
*)
	echo "run.sh: --engine lmdb, pg or both, not \"$engine\"" >&2
	exit 2
	;;
esac

mkdir -p "$build"
log="$build/bench-build.log"
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$log" 2>&1 ||
		{ cat "$log" >&2; exit 1; }
fi
cmake --build "$build" --target cj_bench -j2 >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
rm -f "$log"

if [ "$want_help" = 1 ]; then
	usage
	echo
	"$build/cj_bench" --help
	exit 0
fi

# the revision measured: the engines change, the figures with them
if rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null); then
	if [ -n "$(git -C "$root" status --porcelain --untracked-files=no -- src include 2>/dev/null)" ]; then
		rev="$rev, with uncommitted changes in src/ or include/"
	fi
	echo "revision: $rev"
	echo
fi

parent=${CJ_BENCH_DIR:-${TMPDIR:-/var/tmp}}
work=$(mktemp -d "$parent/cj_bench_run.XXXXXX")
pgdir=""
cleanup() {
	if [ -n "$pgdir" ]; then
		sh "$root/scripts/pg.sh" stop "$pgdir" ||
			echo "run.sh: could not stop the PostgreSQL server in $pgdir" >&2
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Can this run do PostgreSQL? Prints why not, and fails, if it cannot.
pg_possible() {
	if ! grep -q '^LIBPQ_FOUND:INTERNAL=1' "$build/CMakeCache.txt"; then
		echo "the build has no PostgreSQL engine (libpq not found; apt-get install libpq-dev)"
		return 1
	fi
	[ -n "$url" ] && return 0
	# where scripts/pg.sh looks for the server
	for d in ${CJ_PG_BIN:-} /usr/lib/postgresql/*/bin \
		$(command -v pg_config >/dev/null 2>&1 && pg_config --bindir); do
		[ -x "$d/pg_ctl" ] && return 0
	done
	echo "no PostgreSQL server installed (apt-get install postgresql)"
	return 1
}

run_lmdb() {
	echo "=== engine: lmdb (embedded) ==="
	"$build/cj_bench" --dir "$work" --tsv "$work/lmdb.tsv" "$@"
	echo
}

run_pg() {
	echo "=== engine: postgresql ==="
	if [ -z "$url" ]; then
		pgdir="$work/pg"
		# as root the server runs as the user postgres, which must reach pgdir
		chmod 711 "$work"
		echo "starting a private PostgreSQL server in $pgdir"
		if [ "$tcp" = 1 ]; then
			# a TCP port is shared by the whole machine: one of our own
			CJ_PG_PORT=${CJ_PG_PORT:-$((40000 + $$ % 20000))}
			export CJ_PG_PORT CJ_PG_TCP=1
			echo "(listening on 127.0.0.1:$CJ_PG_PORT, the benchmark connects over TCP;"
		else
			echo "(unix socket only;"
		fi
		echo " durability as configured by scripts/pg.sh: fsync=on, synchronous_commit=on)"
		sh "$root/scripts/pg.sh" start "$pgdir"
		url=$(sh "$root/scripts/pg.sh" url "$pgdir")
	fi
	"$build/cj_bench" --dir "$work" --url "$url" --tsv "$work/pg.tsv" "$@"
	echo
}

# The two engines' rows side by side, joined on section, label and sync.
side_by_side() {
	awk -F '\t' '
	FNR == 1 { f++; prev = "" }
	{
		key = $2 FS $3 FS $4
		if (f == 1) a[key] = $5; else b[key] = $5
		if (!(key in seen)) {
			# a row of the second engine only goes after the row before it
			seen[key] = 1
			at = n + 1
			for (j = 1; j <= n; j++) if (order[j] == prev) at = j + 1
			for (j = n; j >= at; j--) order[j + 1] = order[j]
			order[at] = key
			n++
		}
		prev = key
	}
	function w(i, s) { if (length(s) > width[i]) width[i] = length(s) }
	function line(c1, c2, c3, c4, c5) {
		printf "| %-*s | %-*s | %-*s | %*s | %*s |\n", width[1], c1, width[2], c2,
			width[3], c3, width[4], c4, width[5], c5
	}
	END {
		split("section figure sync lmdb postgresql", h, " ")
		for (i = 1; i <= 5; i++) width[i] = length(h[i])
		for (j = 1; j <= n; j++) {
			split(order[j], k, FS)
			w(1, k[1]); w(2, k[2]); w(3, k[3])
			w(4, order[j] in a ? a[order[j]] : "-")
			w(5, order[j] in b ? b[order[j]] : "-")
		}
		line(h[1], h[2], h[3], h[4], h[5])
		s = "|"
		for (i = 1; i <= 5; i++) {
			d = ""
			for (c = 0; c < width[i]; c++) d = d "-"
			s = s (i >= 4 ? "-" d ":|" : ":" d "-|")
		}
		print s
		for (j = 1; j <= n; j++) {
			split(order[j], k, FS)
			line(k[1], k[2], k[3], order[j] in a ? a[order[j]] : "-",
				order[j] in b ? b[order[j]] : "-")
		}
	}' "$work/lmdb.tsv" "$work/pg.tsv"
}

pg_skipped=""
case $engine in
lmdb) run_lmdb "$@" ;;
pg)
	if ! why=$(pg_possible); then
		echo "run.sh: --engine pg: $why" >&2
		exit 1
	fi
	run_pg "$@"
	;;
both)
	run_lmdb "$@"
	if why=$(pg_possible); then
		run_pg "$@"
	else
		pg_skipped=$why
	fi
	;;
esac

if [ -n "$pg_skipped" ]; then
	echo "=== PostgreSQL SKIPPED: $pg_skipped ==="
elif [ "$engine" = both ]; then
	echo "=== both engines side by side (values; the notes are in the tables above) ==="
	echo
	side_by_side
	echo
	echo "sync=full:    lmdb: fdatasync at every commit; postgresql: synchronous_commit=on"
	echo "              (COMMIT waits for its WAL flush), fsync=on"
	echo "sync=relaxed: CJ_SYNC_RELAXED; lmdb: no flush at commit; postgresql: the"
	echo "              engine sets synchronous_commit=off on its sessions"
fi

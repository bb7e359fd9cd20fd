#!/bin/sh
# couchjobs side by side with beanstalkd, Redis, a plain PostgreSQL SKIP
# LOCKED queue and an SQLite queue: the one command.
#
#   bench/compare.sh                  the full run (about 20 minutes on a
#                                     2-core VM: the run in BENCHMARKS.md
#                                     took 17 min 16 s; ~10 GB of disk at
#                                     its peak), then
#                                     writes the table into BENCHMARKS.md
#   bench/compare.sh --quick          a smoke run with small N, a 3 s mixed
#                                     window and scale at 10k and 100k only
#                                     (about 2 minutes; not a measurement)
#   bench/compare.sh --smoke          a few hundred jobs per system and
#                                     workload, nothing written (under a
#                                     minute; the test command runs it so the
#                                     harness never rots)
#   bench/compare.sh --prog PATH      use this cj_compare binary instead of
#                                     building one
#   bench/compare.sh --no-write       print the table, leave BENCHMARKS.md alone
#   bench/compare.sh --only LIST      systems, comma-separated: cj-lmdb,
#                                     cj-lmdb-batch, cj-pg, cj-pg-batch,
#                                     cj-http, beanstalkd, redis, pgqueue,
#                                     sqlite; "couchjobs" stands for the four
#                                     library columns (cj-http: `cjobs
#                                     serve` over HTTP)
#   bench/compare.sh --workloads LIST enqueue, drain, mixed, latency, scale
#   bench/compare.sh --help
#
# What it does, in order:
#  1. Installs what is missing from Debian's packages: the build
#     dependencies (scripts/deps.sh) and the peers (beanstalkd, redis-server,
#     postgresql). Debian's packages start their own services on the default
#     ports (11300, 6379, 5432) where the init system lets them; this script
#     neither uses nor touches those. Its own servers listen on 127.0.0.1
#     only, on ports of their own: beanstalkd 11391, Redis 63791, PostgreSQL
#     54339 (it fails if one of these is taken; CJ_COMPARE_BS_PORT,
#     CJ_COMPARE_RD_PORT and CJ_COMPARE_PG_PORT choose others).
#  2. Builds a Release build of the library, bench/compare/ (the
#     program cj_compare) and cjobs (for cj-http) in build-compare/.
#  3. Makes a scratch directory under $CJ_BENCH_DIR (default /var/tmp),
#     which must be on the disk to measure (a tmpfs makes durable mode
#     meaningless), and starts a private PostgreSQL server in it with
#     scripts/pg.sh (TCP on 127.0.0.1:54339; fsync=on). That one server
#     serves both durability modes: synchronous_commit is set per session.
#  4. Runs cj_compare once per system, durability mode and workload. For
#     beanstalkd and Redis every run gets a freshly started server with an
#     empty data directory; PostgreSQL-based runs get a fresh table or
#     schema; embedded couchjobs stores a fresh directory, SQLite a fresh
#     database file, and cj-http a fresh store with its own `cjobs serve`
#     (started and stopped by cj_compare, on a port the kernel picks).
#  5. Stops everything it started (by PID, on exit, however it exits),
#     removes the scratch directory, prints the table and, unless
#     --no-write, writes it into BENCHMARKS.md between the markers
#     <!-- compare:begin --> and <!-- compare:end --> (the section is created
#     near the top when missing).
#
# Durability modes, like with like:
#   durable: beanstalkd -b DIR -f 0 (binlog fsynced before each reply);
#            Redis --appendonly yes --appendfsync always; PostgreSQL
#            synchronous_commit=on; SQLite synchronous=FULL; couchjobs
#            CJ_SYNC_FULL (the default; `cjobs serve` answers a request
#            once its commit is on disk).
#   relaxed: beanstalkd without a binlog (memory only); Redis --appendonly
#            yes --appendfsync everysec; PostgreSQL synchronous_commit=off;
#            SQLite synchronous=OFF; couchjobs CJ_SYNC_RELAXED (`cjobs
#            serve --relaxed`).
# The scale workload runs in relaxed mode only: durable flushes would hide
# the growth it looks for; not for cj-http (the store's growth is the
# embedded column's).
#
# CJ_COMPARE_DRAIN_JOBS sets the jobs of each drain (full run: 20000), for a
# machine whose disk is too busy for full-size durable drains; the table
# says what it was.
#
# Progress goes to stderr, the table to stdout.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build="$root/build-compare"
prog="$build/cj_compare"

BS_PORT=${CJ_COMPARE_BS_PORT:-11391}
RD_PORT=${CJ_COMPARE_RD_PORT:-63791}
PG_PORT=${CJ_COMPARE_PG_PORT:-54339}

ALL_SYSTEMS="cj-lmdb cj-lmdb-batch cj-pg cj-pg-batch cj-http beanstalkd redis pgqueue sqlite"
ALL_WORKLOADS="enqueue drain mixed latency scale"

die() {
	echo "compare.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
}

# ---- options -----------------------------------------------------------------

quick=0
smoke=0
write=1
prog_given=""
only_given=0
workloads_given=0
systems=$ALL_SYSTEMS
workloads=$ALL_WORKLOADS
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--smoke)
		smoke=1
		write=0
		;;
	--prog)
		[ $# -ge 2 ] || die "--prog needs a path"
		[ -x "$2" ] || die "--prog: $2 is not an executable file"
		prog_given=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
		shift
		;;
	--no-write) write=0 ;;
	--only | --workloads)
		[ $# -ge 2 ] || die "$1 needs a comma-separated list"
		list=$(echo "$2" | tr ',' ' ')
		if [ "$1" = --only ]; then
			only_given=1
			systems=""
			for s in $list; do
				case $s in
				couchjobs) systems="$systems cj-lmdb cj-lmdb-batch cj-pg cj-pg-batch" ;;
				cj-lmdb | cj-lmdb-batch | cj-pg | cj-pg-batch | cj-http | beanstalkd | redis | pgqueue | sqlite)
					systems="$systems $s" ;;
				*) die "--only: unknown system $s (one of: couchjobs $ALL_SYSTEMS)" ;;
				esac
			done
		else
			workloads_given=1
			workloads=""
			for w in $list; do
				case " $ALL_WORKLOADS " in
				*" $w "*) workloads="$workloads $w" ;;
				*) die "--workloads: unknown workload $w (one of: $ALL_WORKLOADS)" ;;
				esac
			done
		fi
		shift
		;;
	--help | -h)
		usage
		exit 0
		;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done
[ -n "$(echo $systems)" ] || die "--only: no system"
[ -n "$(echo $workloads)" ] || die "--workloads: no workload"

has() { # has WORD LIST
	case " $2 " in *" $1 "*) return 0 ;; esac
	return 1
}

# ---- sizes -------------------------------------------------------------------

if [ "$smoke" = 1 ]; then
	ENQ_SECONDS=0.2
	DRAIN_JOBS=300
	WARMUP=0.2
	WINDOW=0.5
	SAMPLES=20
	SCALE_SIZES="1000 2000"
	SCALE_SIZES_CJPG="1000"
	SCALE_DRAIN=300
elif [ "$quick" = 1 ]; then
	ENQ_SECONDS=1
	DRAIN_JOBS=500
	WARMUP=0.5
	WINDOW=3
	SAMPLES=50
	SCALE_SIZES="10000 100000"
	SCALE_SIZES_CJPG="10000"
	SCALE_DRAIN=2000
else
	ENQ_SECONDS=5
	DRAIN_JOBS=20000
	WARMUP=2
	WINDOW=10
	SAMPLES=300
	SCALE_SIZES="10000 1000000 10000000"
	SCALE_SIZES_CJPG="10000 100000"
	SCALE_DRAIN=20000
fi
DRAIN_JOBS=${CJ_COMPARE_DRAIN_JOBS:-$DRAIN_JOBS}
case $DRAIN_JOBS in
'' | *[!0-9]*) die "CJ_COMPARE_DRAIN_JOBS: not a number: $DRAIN_JOBS" ;;
esac

# the embedded batched column drains that many times more in the scale
# workload, so that its timed part lasts about as long as the others'
SCALE_BATCH_TIMES=8

# ---- installs and build ------------------------------------------------------

started=$(date +%s)
SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || SUDO=none
	[ "$SUDO" = none ] || SUDO=sudo
fi

need_pg=0
need_bs=0
need_rd=0
for s in $systems; do
	case $s in
	cj-pg* | pgqueue) need_pg=1 ;;
	beanstalkd) need_bs=1 ;;
	redis) need_rd=1 ;;
	esac
done

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

sh "$root/scripts/deps.sh" || die "could not install the build dependencies"
missing=""
[ "$need_bs" = 0 ] || installed beanstalkd || missing="$missing beanstalkd"
[ "$need_rd" = 0 ] || installed redis-server || missing="$missing redis-server"
[ "$need_pg" = 0 ] || installed postgresql || missing="$missing postgresql"
if [ -n "$missing" ]; then
	[ "$SUDO" != none ] || die "need root to install:$missing"
	echo "installing$missing (Debian may start their services on the default ports;" \
		"this script does not use them)" >&2
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq >/dev/null || die "apt-get update failed"
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
		die "apt-get install$missing failed"
fi

if [ -n "$prog_given" ]; then
	prog=$prog_given
else
	mkdir -p "$build"
	log="$build/compare-build.log"
	if [ ! -f "$build/CMakeCache.txt" ]; then
		cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$log" 2>&1 ||
			{ cat "$log" >&2; die "cmake failed"; }
	fi
	cmake --build "$build" --target cj_compare cjobs -j2 >"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; die "the build failed"; }
	rm -f "$log"
fi
[ -x "$prog" ] || die "no $prog (the build has no libpq? apt-get install libpq-dev)"
# cj-http measures the cjobs built next to cj_compare
cjobs_bin=$(dirname "$prog")/cjobs
if has cj-http "$systems" && [ ! -x "$cjobs_bin" ]; then
	die "cj-http needs $cjobs_bin (the build has no libmicrohttpd?)"
fi

# ---- scratch directory and cleanup -------------------------------------------

parent=${CJ_BENCH_DIR:-/var/tmp}
[ -d "$parent" ] || die "$parent: no such directory"
work=$(mktemp -d "$parent/cmp-XXXXXX") || die "cannot make a directory in $parent"
chmod 711 "$work" # as root, the PostgreSQL server runs as postgres and must reach its dir
pgdir=""
srv_pid=""

stop_server() {
	if [ -n "$srv_pid" ]; then
		kill -TERM "$srv_pid" 2>/dev/null || true
		wait "$srv_pid" 2>/dev/null || true
		srv_pid=""
	fi
}

cleanup() {
	stop_server
	if [ -n "$pgdir" ]; then
		CJ_PG_PORT=$PG_PORT sh "$root/scripts/pg.sh" stop "$pgdir" ||
			echo "compare.sh: could not stop the PostgreSQL server in $pgdir" >&2
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fstype=$(df -PT "$work" | awk 'NR == 2 {print $2}')
if [ "$fstype" = tmpfs ]; then
	echo "compare.sh: WARNING: $work is on a tmpfs: durable figures mean nothing there" \
		"(set CJ_BENCH_DIR to a directory on disk)" >&2
fi

port_free() {
	! "$prog" --ping tcp --port "$1" 2>/dev/null
}

# waits for a server: wait_ready PROTOCOL PORT
wait_ready() {
	i=0
	while ! "$prog" --ping "$1" --port "$2" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 200 ]; then
			die "$1 did not answer on port $2 (log: $(tail -n 3 "$work/srv/log" 2>/dev/null))"
		fi
		if ! kill -0 "$srv_pid" 2>/dev/null; then
			die "$1 exited at start: $(tail -n 3 "$work/srv/log" 2>/dev/null)"
		fi
		sleep 0.05
	done
}

# A fresh server for one run: start_server SYSTEM MODE (nothing for systems
# without a server of their own).
start_server() {
	rm -rf "$work/srv"
	mkdir -p "$work/srv"
	case $1 in
	beanstalkd)
		port_free $BS_PORT || die "port $BS_PORT is in use: cannot start beanstalkd"
		if [ "$2" = durable ]; then
			mkdir -p "$work/srv/binlog"
			beanstalkd -l 127.0.0.1 -p $BS_PORT -b "$work/srv/binlog" -f 0 >"$work/srv/log" 2>&1 &
		else
			beanstalkd -l 127.0.0.1 -p $BS_PORT >"$work/srv/log" 2>&1 &
		fi
		srv_pid=$!
		wait_ready beanstalkd $BS_PORT
		;;
	redis)
		port_free $RD_PORT || die "port $RD_PORT is in use: cannot start redis"
		fsync=always
		[ "$2" = durable ] || fsync=everysec
		redis-server --port $RD_PORT --bind 127.0.0.1 --dir "$work/srv" --daemonize no \
			--save '' --appendonly yes --appendfsync $fsync >"$work/srv/log" 2>&1 &
		srv_pid=$!
		wait_ready redis $RD_PORT
		;;
	esac
}

# ---- PostgreSQL --------------------------------------------------------------

url=""
if [ "$need_pg" = 1 ]; then
	port_free $PG_PORT || die "port $PG_PORT is in use: cannot start PostgreSQL"
	pgdir="$work/pg"
	echo "starting a private PostgreSQL server in $pgdir (127.0.0.1:$PG_PORT)" >&2
	CJ_PG_TCP=1 CJ_PG_PORT=$PG_PORT sh "$root/scripts/pg.sh" start "$pgdir" >&2 ||
		die "could not start PostgreSQL"
	url=$(CJ_PG_TCP=1 CJ_PG_PORT=$PG_PORT sh "$root/scripts/pg.sh" url "$pgdir")
fi

# ---- the runs ----------------------------------------------------------------

tsv="$work/results.tsv"
: >"$tsv"
mkdir -p "$work/stores"
timing=""

# run SYSTEM MODE WORKLOAD [cj_compare options]
run() {
	s=$1
	m=$2
	w=$3
	shift 3
	start_server "$s" "$m"
	port=0
	case $s in beanstalkd) port=$BS_PORT ;; redis) port=$RD_PORT ;; esac
	cj=""
	[ "$s" != cj-http ] || cj=$cjobs_bin
	"$prog" --system "$s" --mode "$m" --workload "$w" --dir "$work/stores" \
		${url:+--url "$url"} ${cj:+--cjobs "$cj"} --port $port --tsv "$tsv" "$@" ||
		die "cj_compare failed: $s, $m, $w $* (see above)"
	stop_server
}

# phase NAME: times the phases of the run
phase_start=$(date +%s)
phase() {
	now=$(date +%s)
	timing="$timing$1: $((now - phase_start)) s
"
	phase_start=$now
}
phase "install and build"
load_start=$(cut -d ' ' -f 1-3 /proc/loadavg)

for mode in durable relaxed; do
	for s in $systems; do
		for w in $workloads; do
			case $w in
			enqueue) run "$s" $mode enqueue --seconds $ENQ_SECONDS ;;
			drain)
				run "$s" $mode drain --jobs $DRAIN_JOBS --procs 1
				run "$s" $mode drain --jobs $DRAIN_JOBS --procs 4
				;;
			mixed) run "$s" $mode mixed --warmup $WARMUP --window $WINDOW ;;
			latency) run "$s" $mode latency --samples $SAMPLES ;;
			esac
		done
		phase "$mode, $s"
	done
done

if has scale "$workloads"; then
	for s in $systems; do
		[ "$s" != cj-http ] || continue
		sizes=$SCALE_SIZES
		case $s in cj-pg*) sizes=$SCALE_SIZES_CJPG ;; esac
		drain=$SCALE_DRAIN
		case $s in cj-lmdb-batch) drain=$((SCALE_DRAIN * SCALE_BATCH_TIMES)) ;; esac
		for p in $sizes; do
			run "$s" relaxed scale --size $p --scale-drain $drain
		done
		phase "scale, $s"
	done
fi

elapsed=$(($(date +%s) - started))
load_end=$(cut -d ' ' -f 1-3 /proc/loadavg)

# ---- the table ---------------------------------------------------------------

# Columns in this order; the ratio is best couchjobs embedded / best peer.
make_table() {
	awk -F '\t' -v sizes="$SCALE_SIZES" -v cjpg_sizes="$SCALE_SIZES_CJPG" -v drain="$SCALE_DRAIN" \
		-v times="$SCALE_BATCH_TIMES" '
	{ v[$1 FS $2 FS $3] = $4 }
	function has(s, m, k) { return (s FS m FS k) in v }
	# a scale size the PostgreSQL engine skips (footnote 1)
	function unmeasured(c, k) {
		return c ~ /^cj-pg/ && k ~ /^scale_/ && index(" " cjpg_sizes " ", " " substr(k, 7) " ") == 0
	}
	function val(s, m, k) { return v[s FS m FS k] }
	function fmt(x, dec) { return sprintf("%." (dec + 0) "f", x) }
	# best of a list: max for rates, min for latencies
	function best(list, m, k, lower,   n, a, i, b, s) {
		n = split(list, a, " "); b = ""; bname = ""
		for (i = 1; i <= n; i++) {
			s = a[i]
			if (!has(s, m, k)) continue
			if (b == "" || (lower ? val(s, m, k) < b : val(s, m, k) > b)) { b = val(s, m, k); bname = s }
		}
		return b
	}
	function row(label, m, k, lower, dec,   i, c, line, cj, peer, pn, ht) {
		line = "| " label " | " m " |"
		any = 0
		for (i = 1; i <= ncol; i++) {
			c = col[i]
			if (has(c, m, k)) { line = line " " fmt(val(c, m, k), dec) " |"; any = 1 }
			else line = line " " (unmeasured(c, k) ? "-" footnote : "-") " |"
		}
		cj = best("cj-lmdb cj-lmdb-batch", m, k, lower)
		peer = best("beanstalkd redis pgqueue sqlite", m, k, lower); pn = bname
		ht = best("cj-http", m, k, lower)
		if (k == "idle_cpu") line = line " - | - |" # fractions of a millisecond: no ratio
		else {
			if (cj != "" && peer != "" && peer > 0) line = line sprintf(" x%.2f (%s) |", cj / peer, pn)
			else line = line " - |"
			if (ht != "" && peer != "" && peer > 0) line = line sprintf(" x%.2f (%s) |", ht / peer, pn)
			else line = line " - |"
		}
		if (any) print line
	}
	function costrow(label, p,   i, c, line, r0, r1, any) {
		line = "| " label " | relaxed |"
		any = 0
		for (i = 1; i <= ncol; i++) {
			c = col[i]
			if (has(c, "relaxed", "scale_10000") && has(c, "relaxed", "scale_" p)) {
				r0 = val(c, "relaxed", "scale_10000"); r1 = val(c, "relaxed", "scale_" p)
				line = line sprintf(" x%.2f |", r0 / r1); any = 1
			} else line = line " " (unmeasured(c, "scale_" p) ? "-" footnote : "-") " |"
		}
		if (any) print line " - | - |"
	}
	function human(p) {
		if (p >= 1000000 && p % 1000000 == 0) return (p / 1000000) "M"
		if (p >= 1000 && p % 1000 == 0) return (p / 1000) "k"
		return p
	}
	END {
		ncol = split("cj-lmdb cj-lmdb-batch cj-pg cj-pg-batch cj-http beanstalkd redis pgqueue sqlite", col, " ")
		footnote = "¹"
		print "| workload | mode | couchjobs embedded (1 per tx) | couchjobs embedded (batched, 64) | couchjobs pg engine (1 per tx) | couchjobs pg engine (batched, 64) | couchjobs over HTTP (cjobs serve, 1 per request) | beanstalkd | redis | pg queue | sqlite | best couchjobs embedded / best peer | couchjobs over HTTP / best peer |"
		print "|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|:--|:--|"
		nm = split("durable relaxed", modes, " ")
		for (j = 1; j <= nm; j++) {
			m = modes[j]
			row("enqueue, jobs/s (1 producer)", m, "enqueue", 0)
			row("drain, jobs/s (1 processor)", m, "drain1", 0)
			row("drain, jobs/s (4 processors)", m, "drain4", 0)
			row("mixed, jobs completed/s (1 producer, 2 processors)", m, "mixed", 0)
			row("mixed, jobs enqueued/s (same run)", m, "mixed_enqueue", 0)
			row("latency p50, us (enqueue to claim)", m, "latency_p50", 1)
			row("latency p99, us (enqueue to claim)", m, "latency_p99", 1)
			row("idle processor, % of a core (1 s waiting in claim)", m, "idle_cpu", 1, 2)
		}
		n = split(sizes " " cjpg_sizes, sz, " ")
		for (i = 1; i <= n; i++) if (!(sz[i] in seen)) { seen[sz[i]] = 1; order[++no] = sz[i] + 0 }
		# sizes in increasing order
		for (i = 1; i <= no; i++) for (j = i + 1; j <= no; j++) if (order[j] < order[i]) { t = order[i]; order[i] = order[j]; order[j] = t }
		for (i = 1; i <= no; i++)
			row("scale, jobs/s draining " human(drain) " (embedded batched: " human(drain * times) ") with " human(order[i]) " pending", "relaxed", "scale_" order[i], 0)
		for (i = 1; i <= no; i++)
			if (order[i] != 10000)
				costrow("scale, per-job cost at " human(order[i]) " vs 10k pending", order[i])
	}' "$tsv"
}

table=$(make_table)
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]; then rev="$rev, dirty"; fi
cpu=$(awk -F ': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
cores=$(nproc)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
kernel=$(uname -srm)
fs=$(df -PT "$parent" | awk 'NR == 2 {print $2 " (" $1 ", mounted on " $7 ")"}')
v_bs=$(beanstalkd -v 2>/dev/null || echo "not installed")
v_rd=$(redis-server --version 2>/dev/null | awk '{print "Redis", $3}' | sed 's/v=//')
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n | tail -n 1)
v_pg=$("$pgbin/postgres" --version 2>/dev/null || echo "not installed")
v_cj=$("$prog" --version)
when=$(date -u '+%Y-%m-%d %H:%M UTC')
kind="full run"
[ "$quick" = 1 ] && kind="--quick run (small N: a smoke run, not a measurement)"
[ "$smoke" = 1 ] && kind="--smoke run (a few hundred jobs: not a measurement)"
[ "$only_given" = 0 ] || kind="$kind, only:$systems"
[ "$workloads_given" = 0 ] || kind="$kind, workloads:$workloads"

section() {
	cat <<EOF
## Side by side: beanstalkd, Redis, a PostgreSQL queue and an SQLite queue

\`bench/compare.sh\` measures couchjobs against four other job queues on
the same machine, with the same jobs and the same workloads, and writes
this section (re-running it replaces it; \`--quick\` gives a smoke run,
\`--no-write\` leaves this file alone, \`--help\` says more). The program
is \`bench/compare/\` (\`cj_compare\`): one C program with a client of its
own for each system (beanstalkd's text protocol and Redis' RESP on plain
sockets, libpq for PostgreSQL, the SQLite library in-process, the public
API for couchjobs), one
request in flight per connection, and every worker forked before it opens
its connection. Every reply is checked; every drain checks that exactly
the N jobs added were completed, each once, and that nothing is left.

\`\`\`
date:       $when
run:        $kind, $((elapsed / 60)) min $((elapsed % 60)) s
cpu:        $cpu
cores:      $cores online
memory:     $mem
kernel:     $kernel
filesystem: $fs (every server's data and every store)
loadavg:    $load_start (at start), $load_end (at the end; the run itself is about 1 to 2)
versions:   couchjobs $v_cj (revision $rev)
            $v_bs
            $v_rd
            $v_pg
servers:    on this machine, clients over TCP on 127.0.0.1; PostgreSQL as
            scripts/pg.sh sets it up (fsync=on, shared_buffers=64MB)
\`\`\`

$table

¹ In the two couchjobs pg engine columns, the 1M and 10M rows: not
measured, because filling a store of a million jobs or more through the
PostgreSQL engine (its own \`cj_add\`, ~3.5k jobs/s) would take from 5
minutes to an hour per store. A plain "-" marks a row a system was not
run at (the 100k row is measured for the pg engine only).

**The systems.** A job is a JSON object of about 50 bytes
(\`{"n":123,"t":0,"pad":"xxx..."}\`) with an id \`p<proc>-<seq>\`.
- *couchjobs embedded*: the LMDB engine, a store in a directory;
  \`cj_add\` / \`cj_accept\` / \`cj_finish\`, each in its own transaction.
  *Batched, 64*: 64 \`cj_add\` in one transaction, \`cj_accept_many\` of
  up to 64 jobs, and their 64 \`cj_finish\` in one transaction. The
  batched columns are the only ones where a request carries more than one
  job.
- *couchjobs pg engine*: the same calls on the PostgreSQL engine, a fresh
  schema of the server below per run.
- *couchjobs over HTTP*: \`cjobs serve\` (\`--relaxed\` in relaxed mode)
  in front of an embedded store, one job per request on a keep-alive
  HTTP/1.1 connection per process: \`PUT /v1/jobs/cmp/<id>\`, \`POST
  /v1/types/cmp/accept\` (a long poll), \`POST .../finish\` with the
  lock. Each request is its own transaction; the client is C on a plain
  socket, as for beanstalkd and Redis.
- *beanstalkd*: \`put\` / \`reserve-with-timeout\` / \`delete\`.
- *redis*: enqueue \`MULTI, HSET job:<id> data <json>, LPUSH queue <id>,
  EXEC\`; claim \`BLMOVE queue processing RIGHT LEFT <timeout>\` then
  \`HGET job:<id> data\`; complete \`MULTI, LREM processing 1 <id>, DEL
  job:<id>, EXEC\` (the reliable-queue pattern).
- *pg queue*: a table \`jobs(id, state, data jsonb, locked_at)\` with a
  partial index on pending jobs; enqueue is one statement inserting the
  row and calling \`pg_notify\`; claim is \`UPDATE ... WHERE id = (SELECT
  id ... WHERE state = 'pending' ORDER BY id FOR UPDATE SKIP LOCKED LIMIT
  1) RETURNING id, data\`, and when the queue is empty, \`LISTEN\` and a
  wait for a notification; complete sets \`state = 'finished'\`. Prepared
  statements, each its own transaction.
- *sqlite*: what a C program would otherwise embed: SQLite in-process,
  one database file in WAL mode shared by every worker process, a table
  \`jobs(id, state, data, locked_at)\` with a partial index on pending
  jobs; enqueue is one \`INSERT\`; claim is \`BEGIN IMMEDIATE\`, \`UPDATE
  ... WHERE id = (SELECT id ... WHERE state = 0 ORDER BY id LIMIT 1)
  RETURNING id, data\`, \`COMMIT\`, and when the queue is empty, a
  read-only look for a pending job every millisecond (SQLite cannot wake
  a waiter in another process); complete is one \`UPDATE\`. Writers that
  find the file locked wait in SQLite's busy handler.

**Durability modes.** *durable*: every enqueue and completion is on disk
before it is acknowledged: beanstalkd \`-b DIR -f 0\`, Redis
\`appendfsync always\`, PostgreSQL \`synchronous_commit=on\`, SQLite
\`synchronous=FULL\`, couchjobs \`CJ_SYNC_FULL\` (the default). *relaxed*: a crash of the machine may lose
the last moments: beanstalkd without a binlog (memory only: a crash of the
server loses everything), Redis \`appendfsync everysec\`, PostgreSQL
\`synchronous_commit=off\` (per session; one server for both modes),
SQLite \`synchronous=OFF\`, couchjobs \`CJ_SYNC_RELAXED\`. beanstalkd's reservations are not logged,
so a restarted server hands reserved jobs out again, as couchjobs' do
after their timeout.

**The workloads.** Each run starts from an empty queue (a fresh server for
beanstalkd and Redis).
- *enqueue*: one producer enqueues one job per call ($ENQ_SECONDS s;
  batched: 64 per call).
- *drain*: $DRAIN_JOBS jobs preloaded (not timed: pipelined or bulk, then
  \`sync\`, and for PostgreSQL \`VACUUM ANALYZE\` and \`CHECKPOINT\`),
  then 1 or 4 processor processes claim and complete until all are done:
  jobs / (last completion - first start).
- *mixed*: 1 producer and 2 processors at once; $WARMUP s of warm-up, then
  completions (and enqueues) over a $WINDOW s window. The producer goes
  as fast as it can but pauses (0.2 ms at a time) while 10,000 jobs are
  waiting unclaimed, the same rule for every system, so that the window
  is a steady state (what goes in comes out) and not a producer filling
  a queue faster than it is drained.
- *latency*: one processor waits in claim; the producer adds one job at a
  time carrying CLOCK_MONOTONIC, taken just before its enqueue call, and
  waits for its completion and 3 ms more before the next. Latency is the
  processor's clock when claim returns minus that stamp, so it includes
  the enqueue's own commit; $SAMPLES samples after 20 not counted.
  Before the first job the processor waits 1 s in claim; its CPU time
  over that wait (user + system, all its threads) is the *idle* row.
- *scale* (relaxed only): P jobs pending plus the $SCALE_DRAIN timed
  ($((SCALE_DRAIN * SCALE_BATCH_TIMES)) for the embedded batched column,
  whose drains are that much faster) and 200 warm-up ones, preloaded; one
  processor claims and completes the 200, then the timed ones, from the
  head of the queue (at least P stay pending). The cost rows are the per-job time at P over that at
  10k pending (x1.00: no growth).

The first ratio column divides the better of the two embedded couchjobs
columns by the best of beanstalkd, Redis, the pg queue and SQLite (named)
on that row, the second the HTTP column by the same: above 1 couchjobs is
faster, for latencies below 1 it is quicker. The idle row of the HTTP
column is the client's CPU (it waits in a socket read); the server's own
idle cost is 0 wakeups while long polls wait (test/server: case idle).
EOF
}

echo
echo "$table"
echo
printf 'time per phase:\n%s' "$timing" >&2
echo "total: $((elapsed / 60)) min $((elapsed % 60)) s" >&2

if [ "$write" = 1 ]; then
	md="$root/BENCHMARKS.md"
	[ -f "$md" ] || die "no $md"
	body="$work/section.md"
	{
		echo "<!-- compare:begin -->"
		section
		echo "<!-- compare:end -->"
	} >"$body"
	if grep -q '^<!-- compare:begin -->$' "$md"; then
		grep -q '^<!-- compare:end -->$' "$md" || die "$md has a begin marker without an end marker"
		# replace what is between the markers, markers included
		awk -v body="$body" '
			/^<!-- compare:begin -->$/ { while ((getline l < body) > 0) print l; skip = 1; next }
			/^<!-- compare:end -->$/ { skip = 0; next }
			!skip { print }' "$md" >"$work/new.md"
	else
		# a new section before the first second-level heading
		awk -v body="$body" '
			!done && /^## / { while ((getline l < body) > 0) print l; print ""; done = 1 }
			{ print }
			END { if (!done) { print ""; while ((getline l < body) > 0) print l } }' "$md" >"$work/new.md"
	fi
	cat "$work/new.md" >"$md"
	echo "wrote the table into $md" >&2
fi

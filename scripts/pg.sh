#!/bin/sh
# A private PostgreSQL server for tests, listening on a unix socket only.
#
#   scripts/pg.sh start DIR   create the cluster in DIR if new, start it and
#                             make sure the database "cjtest" exists
#   scripts/pg.sh stop DIR    stop it (fast shutdown); nothing if not running
#   scripts/pg.sh url DIR     print the URL of its "cjtest" database
#
# DIR holds the cluster (DIR/data), the log (DIR/log) and the socket
# (DIR/.s.PGSQL.PORT). Nothing listens on the network, unless CJ_PG_TCP=1
# at start: then the server also listens on 127.0.0.1:PORT and `url` gives
# a TCP URL (clients then connect as processors on other machines would).
# As root, the server
# runs as the user "postgres" and DIR is given to it; the directories above
# DIR must be searchable by that user (/tmp is fine).
#
# Environment: CJ_PG_PORT (default 54329; it only names the socket),
# CJ_PG_BIN (the server's bin directory; default: the newest of
# /usr/lib/postgresql/*/bin, else what pg_config says).
#
# Needs the server packages: apt-get install postgresql libpq-dev
set -eu

usage() {
	echo "usage: $0 start|stop|url DIR" >&2
	exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
port=${CJ_PG_PORT:-54329}

find_bin() {
	if [ -n "${CJ_PG_BIN:-}" ]; then
		echo "$CJ_PG_BIN"
		return
	fi
	best=""
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/pg_ctl" ] && best="$best$d
"
	done
	# the newest version: /usr/lib/postgresql/VERSION/bin, by number
	best=$(printf '%s' "$best" | sort -t/ -k5,5n | tail -n 1)
	if [ -z "$best" ] && command -v pg_config >/dev/null 2>&1; then
		best=$(pg_config --bindir)
	fi
	if [ -z "$best" ] || [ ! -x "$best/pg_ctl" ]; then
		echo "pg.sh: no PostgreSQL server found (apt-get install postgresql)" >&2
		exit 1
	fi
	echo "$best"
}

# Runs a command as the server's user (from /, which it can enter: the
# caller's directory may be closed to it; every path given is absolute).
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

abs_dir() {
	(cd "$1" && pwd)
}

case "$cmd" in
start)
	bin=$(find_bin)
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || {
			echo "pg.sh: running as root needs the user postgres" >&2
			exit 1
		}
		install -d -m 0700 -o postgres -g postgres "$dir"
	else
		install -d -m 0700 "$dir"
	fi
	dir=$(abs_dir "$dir")
	sock="$dir/.s.PGSQL.$port"
	if [ ${#sock} -gt 100 ]; then
		echo "pg.sh: $dir is too long a path for a unix socket" >&2
		exit 1
	fi
	as_pg test -x "$dir" || {
		echo "pg.sh: the server's user cannot reach $dir (check the parents' modes)" >&2
		exit 1
	}
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
			--locale=C >"$dir/initdb.log" 2>&1 || {
			cat "$dir/initdb.log" >&2
			exit 1
		}
		listen=""
		[ "${CJ_PG_TCP:-0}" = 1 ] && listen=127.0.0.1
		cat >>"$dir/data/postgresql.conf" <<EOF

# scripts/pg.sh: a private server for tests
listen_addresses = '$listen'
unix_socket_directories = '$dir'
port = $port
fsync = on
synchronous_commit = on
max_connections = 200
shared_buffers = 64MB
log_min_messages = warning
EOF
	fi
	if as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		echo "pg.sh: already running in $dir" >&2
	else
		as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start >/dev/null || {
			tail -n 20 "$dir/log" >&2
			exit 1
		}
	fi
	if ! as_pg "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -tAq \
		-c "SELECT 1 FROM pg_database WHERE datname = 'cjtest'" | grep -q 1; then
		as_pg "$bin/createdb" -h "$dir" -p "$port" -U postgres cjtest
	fi
	;;
stop)
	[ -d "$dir" ] || exit 0
	dir=$(abs_dir "$dir")
	[ -f "$dir/data/PG_VERSION" ] || exit 0
	bin=$(find_bin)
	if as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
	fi
	;;
url)
	dir=$(abs_dir "$dir")
	if grep -q "^listen_addresses = '127.0.0.1'" "$dir/data/postgresql.conf" 2>/dev/null; then
		echo "postgresql://postgres@127.0.0.1:$port/cjtest"
	else
		echo "postgresql:///cjtest?host=$dir&port=$port&user=postgres"
	fi
	;;
*)
	usage
	;;
esac

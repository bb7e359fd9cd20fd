#!/bin/sh
# The demo's job command: reads {"n": N} on stdin, prints {"n":N,"square":N*N}.
# The job "big-report" is slow the first time it runs (the demo kills the
# worker running it); it records its pid so the demo can end it too.
set -eu
data=$(cat)
n=$(printf '%s' "$data" | sed -n 's/.*"n": *\([0-9][0-9]*\).*/\1/p')
if [ "$CJ_JOB_ID" = "big-report" ] && [ ! -e "$DEMO_DIR/big-report.started" ]; then
	echo $$ >"$DEMO_DIR/big-report.started"
	exec sleep 600
fi
sleep 0.02
printf '{"n":%s,"square":%s,"by":"worker pid %s"}\n' "$n" "$((n * n))" "$PPID"

#!/bin/sh
# The main job: a demo of couchjobs on the embedded engine.
#
# Installs what is needed, builds the cjobs tool, then: 300 jobs are
# processed by three `cjobs work` processes; a fourth worker is killed
# (SIGKILL) in the middle of a job, which comes back after the type timeout
# and is finished by another worker; `cjobs stats` shows the result.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
sh scripts/deps.sh
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-demo -j"$(nproc 2>/dev/null || echo 2)" --target cjobs >/dev/null

DEMO_DIR=$(mktemp -d /tmp/couchjobs-demo.XXXXXX)
export DEMO_DIR
export CJOBS_DB="$DEMO_DIR/store"
CJOBS="$top/build-demo/cjobs"
cjobs() { "$CJOBS" "$@"; }
task="$top/examples/demo-task.sh"
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	if [ -s "$DEMO_DIR/big-report.started" ]; then
		kill "$(cat "$DEMO_DIR/big-report.started")" 2>/dev/null || true
	fi
	rm -rf "$DEMO_DIR"
}
trap cleanup EXIT INT TERM

# wait_for SECONDS COMMAND...: until COMMAND succeeds, checking every 0.1 s
wait_for() {
	limit=$(($1 * 10)); shift
	while ! "$@" >/dev/null 2>&1; do
		limit=$((limit - 1))
		[ "$limit" -gt 0 ] || { echo "demo: gave up waiting for: $*" >&2; exit 1; }
		sleep 0.1
	done
}
state_is() { cjobs get demo "$1" | grep -q "\"state\":\"$2\""; }

echo "== store: $CJOBS_DB (embedded engine)"
echo "\$ cjobs timeout demo 2"
cjobs timeout demo 2

echo "\$ cjobs add demo big-report '{\"n\":1000}'"
cjobs add demo big-report '{"n":1000}'
"$CJOBS" work demo -- "$task" 2>"$DEMO_DIR/doomed.log" &
doomed=$!
pids="$pids $doomed"
wait_for 30 test -s "$DEMO_DIR/big-report.started"
echo "worker $doomed took big-report:"
cjobs get demo big-report

echo "== adding 300 jobs"
i=1
while [ $i -le 300 ]; do
	cjobs add demo "job-$i" "{\"n\":$i}"
	i=$((i + 1))
done

echo "== starting 3 workers, 2 jobs at a time each"
for w in 1 2 3; do
	"$CJOBS" work demo -j 2 --timeout-exit 5s -- "$task" 2>"$DEMO_DIR/worker$w.log" &
	pids="$pids $!"
	eval "worker$w=\$!"
done

echo "== killing worker $doomed (kill -9) in the middle of big-report"
kill -9 "$doomed"
wait "$doomed" 2>/dev/null || true
kill "$(cat "$DEMO_DIR/big-report.started")" 2>/dev/null || true # its orphaned command
echo "big-report is still 'running', held by a dead worker, until its timeout passes:"
cjobs get demo big-report

wait_for 60 state_is big-report finished
echo "== big-report came back after the 2 s timeout and was finished by another worker:"
cjobs get demo big-report

for w in 1 2 3; do
	eval "wait \$worker$w"
done
pids=""
echo "== the workers ran out of jobs and exited:"
for w in 1 2 3; do
	echo "worker $w finished $(grep -c ': finished' "$DEMO_DIR/worker$w.log") jobs"
done
echo "\$ cjobs get demo job-7"
cjobs get demo job-7
echo "\$ cjobs stats"
cjobs stats

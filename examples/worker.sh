#!/bin/sh
# A couchjobs worker over the HTTP API (`cjobs serve`) in POSIX shell with
# curl. Takes jobs of TYPE, reports progress, and finishes each one; a job
# whose data holds "fail":true is failed instead, with an error: its type's
# retry policy gives it another attempt later, or it is dead.
#
#   sh examples/worker.sh URL TYPE [--idle-exit]
#   (token: $CJ_TOKEN; the long poll's length: $CJ_POLL_MS, default 5000)
#
# It reads the id and lock from accept's answer with sed, which relies on
# the answer's key order (type, id, lock, ...) and on ids without '"' or
# '\'; ids are put into URLs as they are, so use URL-safe ids.
set -u
url=$1
type=$2
idle_exit=${3:-}
auth=""
[ -n "${CJ_TOKEN:-}" ] && auth="Authorization: Bearer $CJ_TOKEN"

nl='
'
call() { # METHOD PATH BODY -> sets $body and $status
	out=$(curl -sS -X "$1" -H "Content-Type: application/json" ${auth:+-H "$auth"} \
		--data-binary "$3" -w '\n%{http_code}' "$url$2") || exit 1
	status=${out##*"$nl"}
	body=${out%"$nl"*}
}

stop=0
trap 'stop=1' TERM INT
done=0
failed=0
while [ $stop = 0 ]; do
	call POST "/v1/types/$type/accept" "{\"timeout_ms\":${CJ_POLL_MS:-5000}}"
	job=$body
	if [ "$status" = 204 ]; then
		[ "$idle_exit" = --idle-exit ] && break
		continue
	fi
	[ "$status" = 200 ] || { echo "worker.sh: accept: $status $job" >&2; exit 1; }
	idlock=$(printf '%s' "$job" |
		sed -n 's/^{"type":"[^"]*","id":"\([^"]*\)","lock":"\([^"]*\)".*/\1 \2/p')
	id=${idlock% *}
	lock=${idlock#* }
	call POST "/v1/jobs/$type/$id/update" "{\"lock\":\"$lock\",\"data\":{\"progress\":\"started\"}}"
	[ "$status" = 409 ] && continue # halted: not ours now
	case $job in
	*'"fail":true'*) end=fail end_body='"error":{"message":"asked to fail"}' ;;
	*) end=finish end_body='"data":{"result":"done"}' ;;
	esac
	call POST "/v1/jobs/$type/$id/$end" "{\"lock\":\"$lock\",$end_body}"
	case $status in
	200) [ $end = finish ] && done=$((done + 1)) || failed=$((failed + 1)) ;;
	409) ;; # no longer ours: drop it
	*) echo "worker.sh: $end: $status $body" >&2; exit 1 ;;
	esac
done
echo "worker.sh: finished $done jobs, failed $failed" >&2

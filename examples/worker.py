#!/usr/bin/env python3
"""A couchjobs worker over the HTTP API (`cjobs serve`), standard library only.

Takes jobs of one type, reports progress with an update, and finishes each
one. A job whose work raises (here: a job whose data has "fail": true) is
failed with the error instead: its type's retry policy gives it another
attempt later, or it is dead, kept until it is retried or removed.

    python3 examples/worker.py --url http://127.0.0.1:8075 --type email
    (token: --token-file FILE or $CJ_TOKEN; --idle-exit: stop when no job
    arrived within one long poll)
"""
import argparse
import json
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


def call(base, token, method, path, body=None, timeout=90):
    """Sends one request; returns (status, parsed JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


def job_path(job, action):
    q = urllib.parse.quote
    return "/v1/jobs/%s/%s/%s" % (q(job["type"], safe=""), q(job["id"], safe=""), action)


def work(job):
    """The job itself: here, doubling a number."""
    data = job["data"]
    if data.get("fail"):
        raise ValueError("asked to fail")
    return {"result": data.get("n", 0) * 2}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8075")
    ap.add_argument("--type", required=True)
    ap.add_argument("--token-file")
    ap.add_argument("--poll-ms", type=int, default=5000)
    ap.add_argument("--idle-exit", action="store_true")
    a = ap.parse_args()
    token = os.environ.get("CJ_TOKEN")
    if a.token_file:
        with open(a.token_file) as f:
            token = f.read().strip()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    accept = "/v1/types/%s/accept" % urllib.parse.quote(a.type, safe="")
    done = failed = 0
    while not stopping:
        st, job = call(a.url, token, "POST", accept, {"timeout_ms": a.poll_ms})
        if st == 204:
            if a.idle_exit:
                break
            continue
        if st != 200:
            print("worker: accept: %d %s" % (st, job), file=sys.stderr)
            return 1
        lock = job["lock"]
        st, b = call(a.url, token, "POST", job_path(job, "update"),
                     {"lock": lock, "data": dict(job["data"], progress="started")})
        if st == 409:  # CJ_HALT: the job is no longer ours; drop it
            continue
        try:
            end, body = "finish", {"lock": lock, "data": work(job)}
        except Exception as e:
            end, body = "fail", {"lock": lock, "error": {"message": str(e)}}
        st, b = call(a.url, token, "POST", job_path(job, end), body)
        if st == 200:
            if end == "finish":
                done += 1
            else:
                failed += 1
        elif st != 409:  # 409: no longer ours, drop it
            print("worker: %s: %d %s" % (end, st, b), file=sys.stderr)
            return 1
    print("worker: finished %d jobs, failed %d" % (done, failed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Load client for `cjobs serve`: one job per request, keep-alive.

    python3 bench/http_load.py --url http://127.0.0.1:8075 [--producers 1]
        [--workers 2] [--jobs 2000] [--type load] [--token-file FILE]

Sets the type's timeout (one hour), then runs, at once, PRODUCERS threads
adding JOBS jobs between them (PUT /v1/jobs/TYPE/ID, one per request) and
WORKERS threads each taking one job at a time (POST .../accept, long poll)
and finishing it (POST .../finish), until all JOBS are finished: the mixed
workload of bench/compare.sh, through the HTTP API. Each thread keeps one
connection open (HTTP/1.1 keep-alive), as a client library would.
--producers 0 drains jobs added beforehand (--prefill); --workers 0
measures adds alone.

Prints one line, for scripts (jobs/s counts finished jobs, or added ones
when --workers 0):
    jobs=N seconds=S jobs_per_s=R adds_per_s=A
and exits non-zero if any request got an unexpected answer.
Python's standard library only.
"""
import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse


class Client:
    def __init__(self, url, token):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit("--url: want http://HOST:PORT")
        self.host, self.port = u.hostname, u.port or 80
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = "Bearer " + token
        self.conn = None

    def call(self, method, path, body=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                data = json.dumps(body).encode() if body is not None else None
                self.conn.request(method, path, body=data, headers=self.headers)
                r = self.conn.getresponse()
                text = r.read()
                return r.status, (json.loads(text) if text else None)
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8075")
    ap.add_argument("--producers", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--type", default="load")
    ap.add_argument("--prefill", action="store_true",
                    help="add the jobs before the clock starts (for --producers 0)")
    ap.add_argument("--token-file")
    a = ap.parse_args()
    token = open(a.token_file).read().strip() if a.token_file else None
    if a.producers < 0 or a.workers < 0 or a.producers + a.workers == 0 or a.jobs <= 0:
        raise SystemExit("need jobs > 0 and at least one producer or worker")
    if a.producers == 0 and not a.prefill:
        raise SystemExit("--producers 0 needs --prefill")

    t = urllib.parse.quote(a.type, safe="")
    run = "%x" % int(time.time() * 1000)
    c = Client(a.url, token)
    st, body = c.call("PUT", "/v1/types/%s" % t, {"timeout": 3600})
    if st != 200:
        raise SystemExit("setting the type timeout: %d %s" % (st, body))
    if a.prefill:
        for i in range(a.jobs):
            st, body = c.call("PUT", "/v1/jobs/%s/%s-%d" % (t, run, i), {"data": {"i": i}})
            if st not in (200, 201):
                raise SystemExit("prefill: %d %s" % (st, body))

    lock = threading.Lock()
    counts = {"added": 0, "finished": 0, "errors": 0}
    next_id = [0]
    start = threading.Barrier(a.producers + a.workers + 1)
    added_end = [0.0]

    def bad(what, st, body):
        with lock:
            counts["errors"] += 1
        sys.stderr.write("http_load: %s: %d %s\n" % (what, st, body))

    def producer():
        cl = Client(a.url, token)
        start.wait()
        while True:
            with lock:
                i = next_id[0]
                if i >= a.jobs:
                    return
                next_id[0] += 1
            st, body = cl.call("PUT", "/v1/jobs/%s/%s-%d" % (t, run, i), {"data": {"i": i}})
            if st not in (200, 201):
                bad("add", st, body)
                continue
            with lock:
                counts["added"] += 1
                if counts["added"] == a.jobs:
                    added_end[0] = time.monotonic()

    def worker():
        cl = Client(a.url, token)
        start.wait()
        while True:
            with lock:
                if counts["finished"] + counts["errors"] >= a.jobs:
                    return
            st, job = cl.call("POST", "/v1/types/%s/accept" % t, {"timeout_ms": 200})
            if st == 204:
                continue
            if st != 200:
                bad("accept", st, job)
                continue
            path = "/v1/jobs/%s/%s/finish" % (t, urllib.parse.quote(job["id"], safe=""))
            st, body = cl.call("POST", path, {"lock": job["lock"]})
            if st != 200:
                bad("finish", st, body)
                continue
            with lock:
                counts["finished"] += 1

    threads = [threading.Thread(target=producer) for _ in range(a.producers)]
    threads += [threading.Thread(target=worker) for _ in range(a.workers)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.monotonic()
    for th in threads:
        th.join()
    sec = time.monotonic() - t0
    done = counts["finished"] if a.workers else counts["added"]
    adds = counts["added"] / ((added_end[0] or time.monotonic()) - t0) if a.producers else 0
    print("jobs=%d seconds=%.2f jobs_per_s=%.0f adds_per_s=%.0f" % (done, sec, done / sec, adds))
    return 1 if counts["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`cjobs serve` over real sockets: every route with good and bad input,
the status map, auth, job events across processes, graceful stop, abuse,
/metrics, the OpenAPI document and the curl examples of doc/http-api.md,
and the example workers.

    test_server.py CJOBS [CASE...]
"""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

from srvtest import ROOT, Fail, Server, bound, check, eq, run, store_url, wait_for

LOCK0 = "00000000-0000-4000-8000-000000000000"


def fresh(cjobs, scratch, **kw):
    s = Server(cjobs, store_url(scratch), **kw)
    return s


def q(s):
    return urllib.parse.quote(s, safe="")


# ---- jobs --------------------------------------------------------------------

def case_jobs(cjobs, scratch):
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    eq(s.ok("PUT", "/v1/jobs/t/a", {"data": {"x": 1}}), {"ok": True}, "add")
    t0 = int(time.time() * 1000)
    job = s.ok("GET", "/v1/jobs/t/a")
    added = job.pop("added_ms")
    check(t0 - 60000 <= added <= int(time.time() * 1000), "added_ms %r", added)
    eq(job, {"type": "t", "id": "a", "state": "pending", "sched_time": 0,
             "resubmit": False, "data": {"x": 1}, "attempt": 0, "fence": 0, "errors": [],
             "finished_ms": 0, "own_policy": False}, "get")
    # no data: an empty object; a scheduled time
    s.ok("PUT", "/v1/jobs/t/b", {"sched_time": 4102444800})
    eq(s.ok("GET", "/v1/jobs/t/b")["sched_time"], 4102444800, "sched_time")
    # an id that needs escaping: "/" and a space stay inside the segment
    odd = "a/b c?d%"
    s.ok("PUT", "/v1/jobs/t/" + q(odd), {"data": {"odd": True}})
    eq(s.ok("GET", "/v1/jobs/t/" + q(odd))["id"], odd, "escaped id")
    # deep nesting within jansson's limit is fine
    eq(s.req("PUT", "/v1/jobs/t/deep", raw='{"data":{"a":%s%s}}' % ("[" * 500, "]" * 500))[0],
       200, "deep nesting")
    # "unique": the add is refused with 409 CJ_EXISTS and changes nothing
    st, b, _ = s.req("PUT", "/v1/jobs/t/a", {"data": {"x": 2}, "unique": "id"})
    eq((st, b["error"]), (409, "CJ_EXISTS"), "unique id on a pending job")
    st, b, _ = s.req("PUT", "/v1/jobs/t/a", {"data": {"x": 2}, "unique": "active"})
    eq((st, b["error"]), (409, "CJ_EXISTS"), "unique active on a pending job")
    eq(s.ok("GET", "/v1/jobs/t/a")["data"], {"x": 1}, "a refused add changed nothing")
    eq(s.ok("PUT", "/v1/jobs/t/a", {"data": {"x": 1}, "unique": "none"}), {"ok": True},
       "unique none is the plain add")
    eq(s.ok("PUT", "/v1/jobs/t/new", {"unique": "id"}), {"ok": True}, "unique id on a new job")
    s.ok("DELETE", "/v1/jobs/t/new")
    st, b, _ = s.req("PUT", "/v1/jobs/t/u2", {"unique": "both"})
    eq((st, b["error"]), (400, "CJ_INVALID"), "an unknown unique policy")
    # another process sees it: the store is the same
    check('"id":"a/b c?d%"' in s.cli("get", "t", odd), "the CLI sees the job")
    # listing: filters and paging
    st, b, _ = s.req("PUT", "/v1/jobs/u/00", {})
    eq(st, 422, "a type without a timeout is CJ_NO_TYPE_TIMEOUT")
    eq(b["error"], "CJ_NO_TYPE_TIMEOUT", "error name")
    s.ok("PUT", "/v1/types/u", {"timeout": 30})
    for i in range(25):
        s.ok("PUT", "/v1/jobs/u/%02d" % i, {"data": {"i": i}})
    seen, cursor, pages = [], None, 0
    while True:
        path = "/v1/jobs?type=u&limit=10" + ("&cursor=" + cursor if cursor else "")
        b = s.ok("GET", path)
        seen += [j["id"] for j in b["jobs"]]
        pages += 1
        cursor = b["next"]
        if not cursor:
            break
    eq(seen, ["%02d" % i for i in range(25)], "paged ids")
    eq(pages, 3, "pages")
    b = s.ok("GET", "/v1/jobs?state=pending&limit=1000")
    eq(len(b["jobs"]), 29, "every pending job")
    eq(b["next"], None, "one page")
    eq(s.ok("GET", "/v1/jobs?state=running")["jobs"], [], "no running job")
    # a page with a state filter reads at most 100 jobs per job of its limit:
    # past the 25 pending jobs of u the only running one is still found,
    # by following "next" through short pages
    for i in range(25, 130):
        s.ok("PUT", "/v1/jobs/u/%03d" % i, {})
    s.ok("PUT", "/v1/jobs/v/run", {}, want=422)
    s.ok("PUT", "/v1/types/v", {"timeout": 30})
    s.ok("PUT", "/v1/jobs/v/run", {})
    s.ok("POST", "/v1/types/v/accept", {"timeout_ms": 0})
    found, cursor, pages = [], None, 0
    while True:
        b = s.ok("GET", "/v1/jobs?state=running&limit=1" + ("&cursor=" + cursor if cursor else ""))
        found += [j["id"] for j in b["jobs"]]
        pages += 1
        cursor = b["next"]
        if not cursor:
            break
    eq(found, ["run"], "the running job, found through short pages")
    check(pages >= 2, "the first page stopped at its bound (%d pages)", pages)
    # a cursor of a type and id the store refuses
    for c in ("7400", "00" + "61" * 4):
        eq(s.req("GET", "/v1/jobs?cursor=" + c)[0], 400, "cursor %s" % c)
    # remove
    s.ok("DELETE", "/v1/jobs/t/a")
    eq(s.req("GET", "/v1/jobs/t/a")[0], 404, "removed")
    eq(s.req("DELETE", "/v1/jobs/t/a")[0], 404, "removed twice")
    # bad input
    bad = [
        ("PUT", "/v1/jobs/t/x", '{"data":', 400, "CJ_JSON"),
        ("PUT", "/v1/jobs/t/x", '[1]', 400, "CJ_JSON"),
        ("PUT", "/v1/jobs/t/x", '{"data":[1]}', 400, "CJ_JSON"),
        ("PUT", "/v1/jobs/t/x", '{"data":{},"data":{}}', 400, "CJ_JSON"),
        ("PUT", "/v1/jobs/t/x", '{"sched_time":-1}', 400, "CJ_INVALID"),
        ("PUT", "/v1/jobs/t/x", '{"sched_time":"soon"}', 400, "CJ_INVALID"),
        ("PUT", "/v1/jobs/t/" + "i" * 1025, '{}', 400, "CJ_INVALID"),
        ("PUT", "/v1/jobs/" + "t" * 256 + "/x", '{}', 400, "CJ_INVALID"),
        ("PUT", "/v1/jobs/t/a%00b", '{}', 400, "CJ_INVALID"),
        ("PUT", "/v1/jobs/t/x", '{"data":{"a":%s%s}}' % ("[" * 100000, "]" * 100000), 400,
         "CJ_JSON"),
        ("GET", "/v1/jobs?state=done", None, 400, "CJ_INVALID"),
        ("GET", "/v1/jobs?limit=0", None, 400, "CJ_INVALID"),
        ("GET", "/v1/jobs?limit=1001", None, 400, "CJ_INVALID"),
        ("GET", "/v1/jobs?cursor=zz", None, 400, "CJ_INVALID"),
        ("GET", "/v1/jobs/t/nope", None, 404, "CJ_NOT_FOUND"),
        ("POST", "/v1/jobs/t/a", '{}', 405, "method_not_allowed"),
        ("GET", "/v1/nothing", None, 404, "no_route"),
        ("GET", "/v1/jobs/t//x", None, 404, "no_route"),
    ]
    for method, path, raw, status, name in bad:
        st, b, _ = s.req(method, path, raw=raw)
        eq((st, b.get("error") if isinstance(b, dict) else b), (status, name),
           "%s %s %r" % (method, path[:60], raw))
    eq(s.req("GET", "/v1/jobs/t/x")[0], 404, "nothing was added by bad input")
    s.stop()


# ---- types -------------------------------------------------------------------

def case_types(cjobs, scratch):
    s = fresh(cjobs, scratch)
    eq(s.req("GET", "/v1/types/t")[0], 404, "no timeout yet")
    eq(s.ok("PUT", "/v1/types/t", {"timeout": 30}),
       {"type": "t", "timeout": 30, "retry_policy": None, "limits": None, "retention": None}, "set")
    eq(s.ok("GET", "/v1/types/t"),
       {"type": "t", "timeout": 30, "retry_policy": None, "limits": None, "retention": None}, "get")
    for body in ({}, {"timeout": 0}, {"timeout": "30"}, {"timeout": 366 * 86400 + 1}):
        st, b, _ = s.req("PUT", "/v1/types/t", body)
        eq((st, b["error"]), (400, "CJ_INVALID"), "bad timeout %r" % body)
    eq(s.ok("GET", "/v1/types/t")["timeout"], 30, "unchanged by bad input")
    # the type's limits: set (left-out fields are 0), read, kept, cleared
    lim = {"max_running": 3, "rate": 10, "rate_period_ms": 1000}
    eq(s.ok("PUT", "/v1/types/t", {"timeout": 30, "limits": lim})["limits"], lim, "limits set")
    eq(s.ok("GET", "/v1/types/t")["limits"], lim, "limits read")
    for bad in (5, {"max_running": "3"}, {"color": 1}, {"max_running": -1},
                {"max_running": 10001}, {"rate": 10}, {"rate_period_ms": 1000}):
        st, b, _ = s.req("PUT", "/v1/types/t", {"timeout": 60, "limits": bad})
        eq((st, b["error"]), (400, "CJ_INVALID"), "bad limits %r" % (bad,))
    eq(s.ok("GET", "/v1/types/t"),
       {"type": "t", "timeout": 30, "retry_policy": None, "limits": lim, "retention": None},
       "unchanged by bad limits")
    eq(s.ok("PUT", "/v1/types/t", {"timeout": 30})["limits"], lim, "absent: kept")
    eq(s.ok("PUT", "/v1/types/t", {"timeout": 30, "limits": {"max_running": 1}})["limits"],
       {"max_running": 1, "rate": 0, "rate_period_ms": 0}, "left out: 0")
    eq(s.ok("PUT", "/v1/types/t", {"timeout": 30, "limits": None})["limits"], None,
       "limits cleared")
    s.ok("PUT", "/v1/jobs/t/p1", {})
    s.ok("PUT", "/v1/jobs/t/p2", {})
    s.ok("PUT", "/v1/jobs/t/later", {"sched_time": 4102444800})
    s.ok("PUT", "/v1/jobs/t/run", {"sched_time": 1})
    s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0, "max_sched_time": 1})
    s.cli("add", "t", "fin")
    out = json.loads(s.cli("accept", "t", "--timeout", "0"))
    s.cli("finish", "t", out["id"], out["lock"])
    t0 = int(time.time())
    types = s.ok("GET", "/v1/types")["types"]
    age = types[0].pop("oldest_pending_age")
    eq(types, [{"type": "t", "timeout": 30,
                "counts": {"pending": 2, "scheduled": 1, "running": 1, "finished": 1,
                           "dead": 0},
                "oldest_due": 1, "pending_untimed": 1, "retrying": 0, "limits": None,
                "retention": None}],
       "counts")
    # p1 (no time) was accepted, p2 (no time) and run (due at 1) wait
    check(t0 - 1 <= age <= int(time.time()) - 1, "oldest pending age %r", age)
    s.ok("PUT", "/v1/jobs/t/run", {"sched_time": 4102444800})  # not due any more
    t = s.ok("GET", "/v1/types")["types"][0]
    eq((t["oldest_due"], t["oldest_pending_age"], t["counts"]["scheduled"]), (None, None, 2),
       "no due job with a time")
    s.ok("DELETE", "/v1/types/t")
    eq(s.req("DELETE", "/v1/types/t")[0], 404, "cleared twice")
    types = s.ok("GET", "/v1/types")["types"]
    eq(types[0]["timeout"], None, "a type with jobs and no timeout is listed")
    s.stop()


# ---- processing --------------------------------------------------------------

def case_process(cjobs, scratch):
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    # an empty long poll ends in time with 204
    t0 = time.monotonic()
    eq(s.req("POST", "/v1/types/t/accept", {"timeout_ms": 300})[0], 204, "nothing")
    check(time.monotonic() - t0 >= 0.25, "the long poll waited")
    # a long poll is woken by another process's add
    res = {}
    th = threading.Thread(target=lambda: res.update(
        r=s.req("POST", "/v1/types/t/accept", {"timeout_ms": int(bound(30) * 1000)})))
    th.start()
    time.sleep(0.3)
    s.cli("add", "t", "j1", '{"n":1}')
    th.join(bound(60))
    st, job, _ = res["r"]
    eq(st, 200, "accept")
    eq((job["type"], job["id"], job["data"], job["resubmit"]), ("t", "j1", {"n": 1}, False),
       "accepted job")
    check(re.fullmatch(r"[0-9a-f-]{36}", job["lock"]), "a lock: %r", job["lock"])
    lock = job["lock"]
    eq(s.ok("GET", "/v1/jobs/t/j1")["state"], "running", "running")
    # update with the lock, then with a wrong one: 409 with a body to act on
    eq(s.ok("POST", "/v1/jobs/t/j1/update", {"lock": lock, "data": {"p": 50}}),
       {"ok": True, "resubmit": False}, "update")
    eq(s.ok("GET", "/v1/jobs/t/j1")["data"], {"p": 50}, "updated data")
    st, b, _ = s.req("POST", "/v1/jobs/t/j1/update", {"lock": LOCK0})
    eq((st, b["error"], b["code"]), (409, "CJ_HALT", -2), "wrong lock")
    check("stop" in b["action"], "the halt says what to do: %r", b)
    st, b, _ = s.req("POST", "/v1/jobs/t/j1/finish", {"lock": LOCK0})
    eq(st, 409, "finish with a wrong lock")
    for body, name in (({}, "CJ_INVALID"), ({"lock": "nope"}, "CJ_INVALID"),
                       ({"lock": lock, "data": 5}, "CJ_JSON")):
        st, b, _ = s.req("POST", "/v1/jobs/t/j1/finish", body)
        eq((st, b["error"]), (400, name), "bad finish %r" % body)
    eq(s.ok("GET", "/v1/jobs/t/j1")["state"], "running", "still running")
    # resubmit while running, then finish: pending again
    eq(s.ok("POST", "/v1/jobs/t/j1/resubmit", {"lock": lock})["resubmit"], True, "flagged")
    s.ok("POST", "/v1/jobs/t/j1/finish", {"lock": lock, "data": {"done": 1}})
    eq(s.ok("GET", "/v1/jobs/t/j1")["state"], "pending", "resubmitted job is pending")
    job = s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0})
    s.ok("POST", "/v1/jobs/t/j1/finish", {"lock": job["lock"]})
    eq(s.ok("GET", "/v1/jobs/t/j1")["state"], "finished", "finished")
    st, b, _ = s.req("POST", "/v1/jobs/t/j1/finish", {"lock": job["lock"]})
    eq(st, 409, "finish twice")
    # a removed job halts its processor
    s.ok("PUT", "/v1/jobs/t/j2", {})
    job = s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0})
    s.cli("rm", "t", "j2")
    eq(s.req("POST", "/v1/jobs/t/j2/update", {"lock": job["lock"]})[0], 409, "removed")
    # a client that gives up its long poll does not take a job with it
    gone = socket.create_connection((s.host, s.port))
    body = b'{"timeout_ms":30000}'
    gone.sendall(b"POST /v1/types/g/accept HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))
    time.sleep(0.2)
    gone.close()
    s.ok("PUT", "/v1/types/g", {"timeout": 30})
    time.sleep(0.1)
    s.cli("add", "g", "left")
    job = s.ok("POST", "/v1/types/g/accept", {"timeout_ms": int(bound(10) * 1000)})
    eq(job["id"], "left", "the job the gone client would have taken")
    # scheduled jobs and accept options
    s.ok("PUT", "/v1/jobs/t/later", {"sched_time": 4102444800})
    eq(s.req("POST", "/v1/types/t/accept", {"timeout_ms": 0})[0], 204, "not due")
    eq(s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0, "max_sched_time": "any"})["id"],
       "later", "any time")
    for body in ({"timeout_ms": -1}, {"timeout_ms": 60001}, {"max_sched_time": "soon"},
                 {"no_schedule": 1}, {"no_schedule": True, "max_sched_time": "any"}):
        st, b, _ = s.req("POST", "/v1/types/t/accept", body)
        eq((st, b["error"]), (400, "CJ_INVALID"), "bad accept %r" % body)
    eq(s.req("POST", "/v1/types/" + "t" * 256 + "/accept", {"timeout_ms": 0})[0], 400,
       "over-long type")
    s.stop()


# ---- failures: fail, retry, retry policies -----------------------------------

def case_failure(cjobs, scratch):
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    # the retry policy of a type: set (left-out fields take the defaults), read
    pol = {"max_attempts": 2, "backoff_min": 0, "backoff_max": 0, "multiplier": 1,
           "jitter": "none"}
    eq(s.ok("PUT", "/v1/types/t", {"timeout": 30, "retry_policy": pol})["retry_policy"], pol,
       "policy set")
    eq(s.ok("GET", "/v1/types/t")["retry_policy"], pol, "policy read")
    eq(s.ok("PUT", "/v1/types/d", {"timeout": 30, "retry_policy": {"max_attempts": 3}})
       ["retry_policy"], {"max_attempts": 3, "backoff_min": 10, "backoff_max": 3600,
                          "multiplier": 2, "jitter": "equal"}, "defaults")
    for bad in (5, {"max_attempts": "2"}, {"jitter": "some"}, {"color": 1},
                {"max_attempts": -1}, {"backoff_min": 10, "backoff_max": 5},
                {"multiplier": 0}):
        st, b, _ = s.req("PUT", "/v1/types/t", {"timeout": 60, "retry_policy": bad})
        eq((st, b["error"]), (400, "CJ_INVALID"), "bad policy %r" % (bad,))
    eq(s.ok("GET", "/v1/types/t"),
       {"type": "t", "timeout": 30, "retry_policy": pol, "limits": None,
        "retention": None},
       "unchanged by bad input")
    eq(s.ok("PUT", "/v1/types/d", {"timeout": 30, "retry_policy": None})["retry_policy"],
       None, "policy cleared")
    eq(s.ok("PUT", "/v1/types/t", {"timeout": 30})["retry_policy"], pol, "absent: kept")
    # fail with the lock: the policy gives it another attempt, recorded in the job
    s.ok("PUT", "/v1/jobs/t/j", {"data": {"n": 1}})
    job = s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0})
    for body, name in (({}, "CJ_INVALID"), ({"lock": job["lock"], "error": "boom"}, "CJ_JSON"),
                       ({"lock": job["lock"], "error": [1]}, "CJ_JSON")):
        st, b, _ = s.req("POST", "/v1/jobs/t/j/fail", body)
        eq((st, b["error"]), (400, name), "bad fail %r" % body)
    st, b, _ = s.req("POST", "/v1/jobs/t/j/fail",
                     {"lock": job["lock"], "error": {"e": "x" * 4096}})
    eq((st, b["error"]), (413, "CJ_TOO_LARGE"), "an error over the limit")
    eq(s.ok("GET", "/v1/jobs/t/j")["state"], "running", "bad fails change nothing")
    eq(s.ok("POST", "/v1/jobs/t/j/fail", {"lock": job["lock"], "error": {"why": "boom"}}),
       {"ok": True}, "fail")
    j = s.ok("GET", "/v1/jobs/t/j")
    eq((j["state"], j["attempt"], j["data"], j["finished_ms"], j["own_policy"]),
       ("pending", 1, {"n": 1}, 0, False), "pending again, data kept")
    eq(len(j["errors"]), 1, "one error: %r" % j["errors"])
    eq((j["errors"][0]["attempt"], j["errors"][0]["ended"], j["errors"][0]["error"]),
       (1, "failed", {"why": "boom"}), "the error")
    check(j["fence"] > 0 and j["added_ms"] > 0, "fence and times: %r", j)
    types = {t["type"]: t for t in s.ok("GET", "/v1/types")["types"]}
    eq(types["t"]["retrying"], 1, "retrying counted")
    # a stale lock is the halt
    st, b, _ = s.req("POST", "/v1/jobs/t/j/fail", {"lock": job["lock"]})
    eq((st, b["error"]), (409, "CJ_HALT"), "stale lock")
    check("stop" in b["action"], "the halt says what to do: %r", b)
    # the second failure uses up the attempts: dead
    job = s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0})
    s.ok("POST", "/v1/jobs/t/j/fail", {"lock": job["lock"]})
    j = s.ok("GET", "/v1/jobs/t/j")
    eq((j["state"], j["attempt"], len(j["errors"])), ("dead", 2, 2), "dead")
    eq(j["errors"][1]["error"], {}, "no error given: {}")
    check(j["finished_ms"] > 0, "died at a time")
    eq([x["id"] for x in s.ok("GET", "/v1/jobs?state=dead")["jobs"]], ["j"], "dead filter")
    eq(s.req("POST", "/v1/types/t/accept", {"timeout_ms": 0})[0], 204, "never handed out")
    # without a policy a failure is dead at once
    s.ok("PUT", "/v1/types/n", {"timeout": 30})
    s.ok("PUT", "/v1/jobs/n/k", {})
    job = s.ok("POST", "/v1/types/n/accept", {"timeout_ms": 0})
    s.ok("POST", "/v1/jobs/n/k/fail", {"lock": job["lock"], "error": {"e": 1}})
    eq(s.ok("GET", "/v1/jobs/n/k")["state"], "dead", "no policy: dead")
    m = parse_metrics(s.req("GET", "/metrics")[1])
    eq(m[("couchjobs_jobs", frozenset({("type", "t"), ("state", "dead")}))], 1, "dead gauge")
    eq(m[("couchjobs_retrying_jobs", frozenset({("type", "t")}))], 0, "retrying gauge")
    eq(m[("couchjobs_server_jobs_failed_total", frozenset())], 3, "failed counter")
    # retry: bad bodies, then the dead job is pending again
    for body in ({"keep_attempts": 1}, {"keep_attempts": "yes"}):
        st, b, _ = s.req("POST", "/v1/jobs/t/j/retry", body)
        eq((st, b["error"]), (400, "CJ_INVALID"), "bad retry %r" % body)
    eq(s.ok("GET", "/v1/jobs/t/j")["state"], "dead", "bad retries change nothing")
    eq(s.ok("POST", "/v1/jobs/t/j/retry", {"keep_attempts": True}), {"ok": True}, "retry")
    j = s.ok("GET", "/v1/jobs/t/j")
    eq((j["state"], j["attempt"], j["data"]), ("pending", 2, {"n": 1}), "kept its attempts")
    # one more attempt with the kept count: dead again; a retry resets it
    job = s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0})
    s.ok("POST", "/v1/jobs/t/j/fail", {"lock": job["lock"]})
    eq(s.ok("GET", "/v1/jobs/t/j")["state"], "dead", "dead again")
    s.ok("POST", "/v1/jobs/t/j/retry", {})
    eq(s.ok("GET", "/v1/jobs/t/j")["attempt"], 0, "attempts reset")
    # a job that is not dead: 409; no such job: 404
    st, b, _ = s.req("POST", "/v1/jobs/t/j/retry", {})
    eq((st, b["error"]), (409, "not_dead"), "retry of a pending job")
    eq(s.req("POST", "/v1/jobs/t/none/retry", {})[0], 404, "no such job")
    m = parse_metrics(s.req("GET", "/metrics")[1])
    eq(m[("couchjobs_server_jobs_retried_total", frozenset())], 2, "retried counter")
    s.stop()


def case_redrive(cjobs, scratch):
    """A job's own retry policy, and a type's dead jobs redriven at once."""
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    for i in range(3):
        s.ok("PUT", "/v1/jobs/t/j%d" % i, {"data": {"n": i}})
    # a job's own policy: none yet, set (left-out fields take the defaults),
    # read back, and it overrides the type's (none: dead at once)
    eq(s.ok("GET", "/v1/jobs/t/j0/policy"), {"type": "t", "id": "j0", "retry_policy": None},
       "no policy of its own")
    pol = {"max_attempts": 2, "backoff_min": 3600, "backoff_max": 3600, "multiplier": 1,
           "jitter": "none"}
    eq(s.ok("PUT", "/v1/jobs/t/j0/policy", pol)["retry_policy"], pol, "set")
    eq(s.ok("GET", "/v1/jobs/t/j0/policy")["retry_policy"], pol, "read")
    eq(s.ok("PUT", "/v1/jobs/t/j1/policy", {"max_attempts": 7})["retry_policy"],
       {"max_attempts": 7, "backoff_min": 10, "backoff_max": 3600, "multiplier": 2,
        "jitter": "equal"}, "defaults")
    eq(s.ok("GET", "/v1/jobs/t/j1")["own_policy"], True, "the job says it has one")
    for bad in ({"max_attempts": "2"}, {"jitter": "some"}, {"color": 1},
                {"max_attempts": -1}, {"backoff_min": 10, "backoff_max": 5}):
        st, b, _ = s.req("PUT", "/v1/jobs/t/j0/policy", bad)
        eq((st, b["error"]), (400, "CJ_INVALID"), "bad policy %r" % (bad,))
    st, b, _ = s.req("PUT", "/v1/jobs/t/j0/policy", raw="{")
    eq((st, b["error"]), (400, "CJ_JSON"), "malformed JSON")
    eq(s.ok("GET", "/v1/jobs/t/j0/policy")["retry_policy"], pol, "unchanged by bad input")
    for method in ("GET", "PUT", "DELETE"):
        st, b, _ = s.req(method, "/v1/jobs/t/none/policy", {} if method == "PUT" else None)
        eq((st, b["error"]), (404, "CJ_NOT_FOUND"), "%s: no such job" % method)
    eq(s.ok("DELETE", "/v1/jobs/t/j1/policy"), {"ok": True}, "cleared")
    eq(s.ok("GET", "/v1/jobs/t/j1/policy")["retry_policy"], None, "cleared: none")
    # j0 gets another attempt (in an hour) by its own policy; j1 and j2 die
    # at once
    for _ in range(3):
        job = s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0})
        s.ok("POST", "/v1/jobs/t/%s/fail" % job["id"], {"lock": job["lock"]})
    eq([s.ok("GET", "/v1/jobs/t/j%d" % i)["state"] for i in range(3)],
       ["pending", "dead", "dead"], "the own policy applied")
    # redrive the type: bad bodies change nothing, then every dead job
    for body in ({"keep_attempts": 1}, {"keep_attempts": "yes"}):
        st, b, _ = s.req("POST", "/v1/types/t/retry", body)
        eq((st, b["error"]), (400, "CJ_INVALID"), "bad redrive %r" % (body,))
    eq(s.ok("GET", "/v1/jobs/t/j1")["state"], "dead", "bad redrives change nothing")
    eq(s.ok("POST", "/v1/types/t/retry", {"keep_attempts": True}), {"retried": 2}, "redrive")
    eq([(j["state"], j["attempt"]) for j in
        (s.ok("GET", "/v1/jobs/t/j%d" % i) for i in range(3))],
       [("pending", 1)] * 3, "pending again, attempts kept")
    eq(s.ok("POST", "/v1/types/t/retry", {}), {"retried": 0}, "none dead")
    eq(s.ok("POST", "/v1/types/unknown/retry", {}), {"retried": 0}, "a type without jobs")
    st, b, _ = s.req("POST", "/v1/types/%s/retry" % ("x" * 300), {})
    eq((st, b["error"]), (400, "CJ_INVALID"), "over-long type")
    m = parse_metrics(s.req("GET", "/metrics")[1])
    eq(m[("couchjobs_server_jobs_retried_total", frozenset())], 2, "retried counter")
    s.stop()


# ---- the status map ----------------------------------------------------------
# ---- schedules, retention, limits --------------------------------------------

def token_server(cjobs, scratch):
    """A server with a token file; its requests carry the token."""
    tok = os.path.join(scratch, "token")
    with open(tok, "w") as f:
        f.write("s3cret-token\n")
    s = fresh(cjobs, scratch, token_file=tok)
    s.token = "s3cret-token"
    return s


def declared_too_large(s, method, path):
    """A body declared over the server's limit is refused (413) before it is
    sent: the answer is read without sending it, since the server may close
    the connection while a client would still be writing it."""
    c = socket.create_connection((s.host, s.port))
    c.settimeout(bound(30))
    auth = b"Authorization: Bearer %s\r\n" % s.token.encode() if s.token else b""
    c.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
              b"Content-Length: %d\r\n\r\n" % (method.encode(), path.encode(), auth, 2 << 20))
    answer = b""
    while b"CJ_TOO_LARGE" not in answer:
        more = c.recv(4096)
        if not more:
            break
        answer += more
    c.close()
    check(answer.startswith(b"HTTP/1.1 413") and b"CJ_TOO_LARGE" in answer,
          "413 CJ_TOO_LARGE for a declared oversized body: %r", answer[:200])


def bad(s, method, path, body=None, raw=None, want=400, error="CJ_INVALID", what=""):
    st, b, _ = s.req(method, path, body, raw=raw)
    eq((st, b["error"]), (want, error), "%s %s %s" % (method, path, what or body or raw))


def case_schedules(cjobs, scratch):
    s = token_server(cjobs, scratch)
    eq(s.ok("GET", "/v1/schedules"), {"schedules": []}, "none yet")
    bad(s, "GET", "/v1/schedules/nightly", want=404, error="CJ_NOT_FOUND")
    bad(s, "DELETE", "/v1/schedules/nightly", want=404, error="CJ_NOT_FOUND")
    nightly = {"cron": "0 2 * * *", "zone": "Europe/Paris", "type": "t",
               "data": {"report": "daily"}, "catch_up": "last"}
    bad(s, "PUT", "/v1/schedules/nightly", nightly, want=422, error="CJ_NO_TYPE_TIMEOUT")
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    t0 = int(time.time())
    got = s.ok("PUT", "/v1/schedules/nightly", nightly)
    nxt = got.pop("next")
    served = got.pop("served")
    eq(got, {"name": "nightly", "cron": "0 2 * * *", "zone": "Europe/Paris", "every_s": 0,
             "anchor": 0, "type": "t", "data": {"report": "daily"}, "catch_up": "last",
             "disabled": False, "fired": None}, "created")
    check(t0 - 1 <= served <= int(time.time()) + 1, "served from now: %r", served)
    # 02:00 in Paris is 00:00 or 01:00 UTC, within a day
    check(t0 < nxt <= t0 + 86400 + 3600 and nxt % 3600 == 0 and
          time.gmtime(nxt).tm_hour in (0, 1), "next tick %r", nxt)
    got["next"], got["served"] = nxt, served
    eq(s.ok("GET", "/v1/schedules/nightly"), got, "read back")
    # good and bad input: nothing bad changes the schedule
    for body in ({"cron": "0 25 * * *", "type": "t"},                   # bad cron
                 {"cron": "0 2 * * *", "zone": "Mars/Base", "type": "t"},  # bad zone
                 {"cron": "0 2 30 2 *", "type": "t"},                   # never fires
                 {"cron": "0 2 * * *", "every_s": 60, "type": "t"},     # both
                 {"type": "t"},                                         # neither
                 {"every_s": 0, "type": "t"}, {"every_s": 366 * 86400 + 1, "type": "t"},
                 {"every_s": 60, "zone": "UTC", "type": "t"},           # zone with every
                 {"every_s": "60", "type": "t"}, {"cron": 5, "type": "t"},
                 {"cron": "0 2 * * *"},                                 # no type
                 {"cron": "0 2 * * *", "type": "t", "catch_up": "all"},
                 {"cron": "0 2 * * *", "type": "t", "disabled": 1},
                 {"cron": "0 2 * * *", "type": "t", "color": "red"},
                 {"cron": "0 2 * * *", "type": "t", "anchor": -1}):
        bad(s, "PUT", "/v1/schedules/nightly", body)
    bad(s, "PUT", "/v1/schedules/nightly", {"cron": "0 2 * * *", "type": "t", "data": [1]},
        error="CJ_JSON")
    bad(s, "PUT", "/v1/schedules/nightly", raw='{"cron":', error="CJ_JSON", what="malformed")
    bad(s, "PUT", "/v1/schedules/nightly", raw="[]", error="CJ_JSON", what="not an object")
    bad(s, "PUT", "/v1/schedules/" + "n" * 256, {"every_s": 60, "type": "t"},
        what="a name over the limit")
    big = json.dumps({"every_s": 60, "type": "t", "data": {"s": "x" * (1 << 20)}})
    bad(s, "PUT", "/v1/schedules/nightly", raw=big, want=413, error="CJ_TOO_LARGE")
    st, _, _ = s.req("PUT", "/v1/schedules/nightly", {"every_s": 60, "type": "t"},
                     headers={"Authorization": "Bearer wrong"})
    eq(st, 401, "a write with a wrong token")
    eq(s.ok("GET", "/v1/schedules/nightly"), got, "unchanged by bad input")
    # one made by another process (the CLI) is listed; names are any UTF-8
    s.cli("schedule", "add", "<b>\"q\"", "--every", "1h", "--type", "t")
    names = [x["name"] for x in s.ok("GET", "/v1/schedules")["schedules"]]
    eq(names, ["<b>\"q\"", "nightly"], "listed in name order")
    every = s.ok("GET", "/v1/schedules/" + q("<b>\"q\""))
    eq((every["cron"], every["zone"], every["every_s"], every["anchor"], every["catch_up"]),
       (None, None, 3600, 0, "skip"), "an interval")
    eq(every["next"] % 3600, 0, "aligned to the interval")
    # null members take their defaults
    eq(s.ok("PUT", "/v1/schedules/nulls", {"every_s": 60, "anchor": None, "cron": None,
                                            "zone": None, "catch_up": None, "data": None,
                                            "type": "t"})["data"], {}, "nulls")
    s.ok("DELETE", "/v1/schedules/nulls")
    # an interval schedule fires through the server's own scheduler
    s.ok("PUT", "/v1/schedules/tick", {"every_s": 1, "type": "t", "data": {"n": 1}})

    def fired():
        jobs = s.ok("GET", "/v1/jobs?type=t")["jobs"]
        return [j for j in jobs if j["id"].startswith("tick@")]
    job = wait_for(fired, 30, "a tick's job")[0]
    eq(job["data"], {"n": 1}, "the tick's data")
    f = wait_for(lambda: s.ok("GET", "/v1/schedules/tick")["fired"], 30, "fired recorded")
    s.ok("GET", "/v1/jobs/t/" + q("tick@" + time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                           time.gmtime(f))))  # its job
    eq(s.ok("DELETE", "/v1/schedules/tick"), {"ok": True}, "removed")
    bad(s, "GET", "/v1/schedules/tick", want=404, error="CJ_NOT_FOUND")
    eq(s.cli("schedule", "list").count("\n"), 2, "the CLI sees the removal")
    s.stop()


def case_retention(cjobs, scratch):
    s = token_server(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    eq(s.ok("GET", "/v1/types/t/retention"), {"type": "t", "retention": None}, "none yet")
    bad(s, "DELETE", "/v1/types/t/retention", want=404, error="CJ_NOT_FOUND")
    st, b, _ = s.req("POST", "/v1/types/t/prune")
    eq((st, b["error"], b.get("removed")), (404, "CJ_NOT_FOUND", 0),
       "no retention: a failed prune says what it removed before the error")
    keep = {"keep_ms": None, "keep_max": 2, "dead_keep_ms": 86400000, "dead_keep_max": None}
    eq(s.ok("PUT", "/v1/types/t/retention", {"keep_max": 2, "dead_keep_ms": 86400000}),
       {"type": "t", "retention": keep}, "set")
    eq(s.ok("GET", "/v1/types/t/retention")["retention"], keep, "read")
    eq(s.ok("GET", "/v1/types/t")["retention"], keep, "in the type")
    eq(s.ok("GET", "/v1/types")["types"][0]["retention"], keep, "in the list")
    for body in ({}, {"keep_max": None}, {"keep_max": -1}, {"keep_max": "2"},
                 {"keep_max": 1.5}, {"color": 1}):
        bad(s, "PUT", "/v1/types/t/retention", body)
    bad(s, "PUT", "/v1/types/t/retention", raw="{", error="CJ_JSON", what="malformed")
    bad(s, "PUT", "/v1/types/" + "t" * 1025 + "/retention", {"keep_max": 1},
        what="a type over the limit")
    declared_too_large(s, "PUT", "/v1/types/t/retention")
    st, _, _ = s.req("PUT", "/v1/types/t/retention", {"keep_max": 0},
                     headers={"Authorization": "Bearer wrong"})
    eq(st, 401, "a write with a wrong token")
    eq(s.ok("GET", "/v1/types/t/retention")["retention"], keep, "unchanged by bad input")
    # the type's PUT sets, keeps (absent) and clears (null) it too
    for bad_body in ({"timeout": 30, "retention": 5}, {"timeout": 30, "retention": {}}):
        bad(s, "PUT", "/v1/types/t", bad_body)
    eq(s.ok("GET", "/v1/types/t")["retention"], keep, "unchanged by a bad type PUT")
    eq(s.ok("PUT", "/v1/types/t", {"timeout": 30})["retention"], keep, "absent: kept")
    eq(s.ok("PUT", "/v1/types/t", {"timeout": 30, "retention": None})["retention"], None,
       "cleared by the type's PUT")
    s.ok("PUT", "/v1/types/t", {"timeout": 30, "retention": {"keep_max": 2}})
    # prune: five finished jobs (a retention the monitor leaves them under),
    # pruned by the body's limits, by the type's own, then all
    s.ok("PUT", "/v1/types/t/retention", {"keep_max": 1000})
    for i in range(5):
        s.ok("PUT", "/v1/jobs/t/j%d" % i, {})
        a = s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0})
        s.ok("POST", "/v1/jobs/t/%s/finish" % a["id"], {"lock": a["lock"]})
    s.ok("PUT", "/v1/jobs/t/waiting", {})
    for body in ({"retention": {}}, {"retention": 3}, {"keep_max": 1},
                 {"retention": {"keep_max": -1}}):
        bad(s, "POST", "/v1/types/t/prune", body)
    bad(s, "POST", "/v1/types/t/prune", raw="{]", error="CJ_JSON", what="malformed")
    eq(s.ok("POST", "/v1/types/t/prune", {"retention": {"keep_max": 3}}),
       {"type": "t", "removed": 2}, "pruned by the body's limits")
    eq(s.ok("POST", "/v1/types/t/prune"), {"type": "t", "removed": 0},
       "by the type's own retention")
    eq(s.ok("POST", "/v1/types/t/prune", {"retention": None}), {"type": "t", "removed": 0},
       "null: the type's own")
    eq(s.ok("POST", "/v1/types/t/prune", {"retention": {"keep_max": 0}})["removed"], 3,
       "the rest")
    eq([j["id"] for j in s.ok("GET", "/v1/jobs?type=t")["jobs"]], ["waiting"],
       "pending jobs are never pruned")
    eq(s.ok("DELETE", "/v1/types/t/retention"), {"ok": True}, "cleared")
    eq(s.ok("GET", "/v1/types/t")["retention"], None, "gone from the type")
    s.stop()


def case_limits(cjobs, scratch):
    s = token_server(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    eq(s.ok("GET", "/v1/types/t/limits"), {"type": "t", "limits": None}, "none yet")
    bad(s, "DELETE", "/v1/types/t/limits", want=404, error="CJ_NOT_FOUND")
    lim = {"max_running": 2, "rate": 0, "rate_period_ms": 0}
    eq(s.ok("PUT", "/v1/types/t/limits", {"max_running": 2}), {"type": "t", "limits": lim},
       "set (left out: 0)")
    eq(s.ok("GET", "/v1/types/t")["limits"], lim, "in the type")
    eq(s.ok("GET", "/v1/types")["types"][0]["limits"], lim, "in the list")
    for body in ({"max_running": -1}, {"max_running": "2"}, {"rate": 10}, {"color": 1}):
        bad(s, "PUT", "/v1/types/t/limits", body)
    bad(s, "PUT", "/v1/types/t/limits", raw="{", error="CJ_JSON", what="malformed")
    st, _, _ = s.req("DELETE", "/v1/types/t/limits", headers={"Authorization": "Bearer no"})
    eq(st, 401, "a clear with a wrong token")
    eq(s.ok("GET", "/v1/types/t/limits")["limits"], lim, "unchanged by bad input")
    # the limit holds: two run, the third waits
    for i in range(3):
        s.ok("PUT", "/v1/jobs/t/j%d" % i, {})
    for _ in range(2):
        s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0})
    eq(s.req("POST", "/v1/types/t/accept", {"timeout_ms": 0})[0], 204, "over max_running")
    eq(s.ok("DELETE", "/v1/types/t/limits"), {"ok": True}, "cleared")
    s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0})
    s.stop()


def doc_status_map():
    """The table of doc/http-api.md: CJ name -> HTTP status."""
    with open(os.path.join(ROOT, "doc", "http-api.md")) as f:
        text = f.read()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^\| `(CJ_[A-Z_]+)` \| (\d{3}) \|", text, re.M)}


def case_status_map(cjobs, scratch):
    with open(os.path.join(ROOT, "include", "couchjobs.h")) as f:
        codes = re.findall(r"XX\((\w+), -\d+,", f.read())
    table = doc_status_map()
    eq(sorted(table), sorted("CJ_" + c for c in codes), "every code is in the doc's map")
    check(len(set(table.values())) >= 6, "codes map to distinct statuses")
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    s.ok("PUT", "/v1/jobs/t/a", {})
    big = '{"data":{"s":"%s"}}' % ("x" * (1 << 20))
    seen = {
        "CJ_NOT_FOUND": s.req("GET", "/v1/jobs/t/none"),
        "CJ_HALT": s.req("POST", "/v1/jobs/t/a/finish", {"lock": LOCK0}),
        "CJ_NO_TYPE_TIMEOUT": s.req("PUT", "/v1/jobs/u/a", {}),
        "CJ_JSON": s.req("PUT", "/v1/jobs/t/a", raw="{"),
        "CJ_INVALID": s.req("PUT", "/v1/jobs/t/" + "i" * 1025, {}),
        "CJ_TOO_LARGE": s.req("PUT", "/v1/jobs/t/a", raw=big),
    }
    with open(os.path.join(ROOT, "include", "couchjobs.h")) as f:
        numbers = {"CJ_" + n: -int(v) for n, v in re.findall(r"XX\((\w+), -(\d+),", f.read())}
    for name, (st, b, _) in seen.items():
        eq((st, b["error"], b["code"]), (table[name], name, numbers[name]), "status of " + name)
    eq(s.ok("GET", "/v1/jobs/t/a")["data"], {}, "the oversized add changed nothing")
    s.stop()


# ---- auth --------------------------------------------------------------------

def case_auth(cjobs, scratch):
    tok = os.path.join(scratch, "token")
    with open(tok, "w") as f:
        f.write("s3cret-token\n")
    s = fresh(cjobs, scratch, token_file=tok)
    for hdr in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer s3cret"},
                {"Authorization": "Bearer s3cret-token-"}, {"Authorization": "s3cret-token"}):
        st, b, h = s.req("GET", "/v1/types", headers=hdr)
        eq(st, 401, "token %r" % hdr)
        eq(h.get("WWW-Authenticate"), "Bearer", "challenge")
        check("s3cret" not in json.dumps(b), "the token is not echoed")
    eq(s.req("GET", "/metrics")[0], 401, "metrics need the token too")
    eq(s.req("PUT", "/v1/types/t", {"timeout": 5}, headers={"Authorization": "Bearer x"})[0],
       401, "a write without the token")
    s.token = "s3cret-token"
    eq(s.req("GET", "/v1/types/t")[0], 404, "the write did not happen")
    s.ok("PUT", "/v1/types/t", {"timeout": 5})
    s.ok("GET", "/metrics")
    s.stop()
    # refused token files: a symlink, an empty one, a missing one
    link = os.path.join(scratch, "link")
    os.symlink(tok, link)
    empty = os.path.join(scratch, "empty")
    open(empty, "w").close()
    for bad in (link, empty, os.path.join(scratch, "missing")):
        r = subprocess.run([cjobs, "--db", store_url(scratch), "serve", "--listen",
                            "127.0.0.1:0", "--token-file", bad], capture_output=True,
                           timeout=bound(60))
        eq(r.returncode, 2, "token file %s" % bad)
        eq(r.stderr.decode().count("\n"), 1, "one line: %r" % r.stderr)
    # IPv6 loopback is loopback too
    s = Server(cjobs, s.db, listen="[::1]:0")
    check(s.url.startswith("http://[::1]:"), "an IPv6 URL: %s", s.url)
    eq(s.ok("GET", "/v1/types/t"),
       {"type": "t", "timeout": 5, "retry_policy": None, "limits": None, "retention": None}, "over ::1")
    s.stop()
    for listen in ("nowhere", "127.0.0.1", "127.0.0.1:99999", "[::1:80", "localhost:80"):
        r = subprocess.run([cjobs, "--db", store_url(scratch), "serve", "--listen", listen],
                           capture_output=True, timeout=bound(60))
        eq(r.returncode, 2, "--listen %s" % listen)


# ---- events ------------------------------------------------------------------

class Events:
    """A Server-Sent Events client over one connection."""

    def __init__(self, s, path, last_id=None, timeout=30):
        self.c = s.conn(timeout=bound(timeout))
        h = {"Accept": "text/event-stream"}
        if last_id:
            h["Last-Event-ID"] = last_id
        if s.token:
            h["Authorization"] = "Bearer " + s.token
        self.c.request("GET", path, headers=h)
        self.r = self.c.getresponse()
        eq(self.r.status, 200, "events")
        eq(self.r.getheader("Content-Type"), "text/event-stream", "content type")

    def next(self):
        """The next event as (id, data dict), or None at the end."""
        ev = {}
        while True:
            line = self.r.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                if "data" in ev:
                    self.event = ev.get("event", "message")
                    return ev.get("id"), json.loads(ev["data"])
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(": ")
            ev[k] = v

    def close(self):
        self.c.close()


def case_events(cjobs, scratch):
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    s.ok("PUT", "/v1/jobs/t/j", {"data": {"v": 0}})
    eq(s.req("GET", "/v1/jobs/t/none/events")[0], 404, "events of no job")
    ev = Events(s, "/v1/jobs/t/j/events")
    eid, d = ev.next()
    eq(d, {"type": "t", "id": "j", "state": "pending", "data": {"v": 0}}, "current state")
    # another process accepts and updates the job: its commits reach us
    job = json.loads(s.cli("accept", "t", "--timeout", "0"))
    eid, d = ev.next()
    eq(d["state"], "running", "running, from another process")
    s.cli("update", "t", "j", job["lock"], '{"v":1}')
    while d["data"] != {"v": 1}:
        eid, d = ev.next()
    ev.close()
    last = eid
    # reconnect with the last id: no repeat of what was seen
    ev = Events(s, "/v1/jobs/t/j/events", last_id=last)
    s.cli("update", "t", "j", job["lock"], '{"v":2}')
    eid, d = ev.next()
    eq(d["data"], {"v": 2}, "the next change, not the one seen")
    ev.close()
    # changes made while disconnected: the latest state arrives first
    s.cli("finish", "t", "j", job["lock"], '{"v":3}')
    ev = Events(s, "/v1/jobs/t/j/events", last_id=eid)
    eid, d = ev.next()
    eq((d["state"], d["data"]), ("finished", {"v": 3}), "missed change delivered")
    eq(ev.next(), None, "the stream ends after finished")
    ev.close()
    # clients that leave free their place at once (not at the next ping)
    s.ok("PUT", "/v1/jobs/t/w", {})
    streams = [Events(s, "/v1/jobs/t/w/events") for _ in range(3)]

    def waiting():
        st, text, _ = s.req("GET", "/metrics")
        return parse_metrics(text)[("couchjobs_server_waiting_requests", frozenset())]
    eq(waiting(), 3, "three streams open")
    for ev in streams:
        ev.close()
    wait_for(lambda: waiting() == 0, 5, "the streams to be let go")
    # removed: the event, then the end
    s.ok("PUT", "/v1/jobs/t/k", {})
    ev = Events(s, "/v1/jobs/t/k/events")
    ev.next()
    s.cli("rm", "t", "k")
    eid, d = ev.next()
    eq((d["state"], d["data"]), ("removed", None), "removed")
    eq(ev.next(), None, "end after removed")
    ev.close()
    s.stop()


def case_type_events(cjobs, scratch):
    """A type's changes, made by other processes, reach a client; one that
    reconnects with its last event id misses nothing; one that cannot be
    resumed is told to list again."""
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    s.ok("PUT", "/v1/types/other", {"timeout": 30})
    s.ok("PUT", "/v1/jobs/t/j0", {"data": {"v": 0}})
    eq(s.req("GET", "/v1/types/" + "t" * 256 + "/events")[0], 400, "a bad type")
    ev = Events(s, "/v1/types/t/events")
    eid, d = ev.next()
    eq((ev.event, d), ("open", {"type": "t"}), "the stream opens")

    def job_event():
        eid, d = ev.next()
        eq(ev.event, "job", "a job event")
        return eid, (d["id"], d["change"], d["state"])
    # another process adds, accepts, finishes, removes; another type is not seen
    s.cli("add", "other", "x")
    s.cli("add", "t", "j1", '{"v":1}')
    eq(job_event()[1], ("j1", "added", "pending"), "added")
    job = json.loads(s.cli("accept", "t", "--timeout", "0"))  # j0 comes first
    eq(job_event()[1], ("j0", "accepted", "running"), "accepted")
    s.cli("finish", "t", "j0", job["lock"])
    eq(job_event()[1], ("j0", "finished", "finished"), "finished")
    s.cli("rm", "t", "j1")
    eid, got = job_event()
    eq(got, ("j1", "removed", "removed"), "removed")
    ev.close()
    # changes while no client listens: a reconnect gets them all, in order
    s.cli("add", "t", "j2")
    s.cli("add", "t", "j3", "--in", "1h")
    s.cli("add", "t", "j0")  # finished, added again
    ev = Events(s, "/v1/types/t/events", last_id=eid)
    eq(ev.next()[1], {"type": "t"}, "open")
    got = sorted(job_event()[1] for _ in range(3))
    eq(got, [("j0", "added", "pending"), ("j2", "added", "pending"),
             ("j3", "added", "pending")], "the changes missed while away")
    # a second client from the same point sees the same; a live change
    # reaches both
    ev2 = Events(s, "/v1/types/t/events", last_id=eid)
    ev2.next()
    eq(sorted(ev2.next()[1]["id"] for _ in range(3)), ["j0", "j2", "j3"], "the same for another")
    s.cli("rm", "t", "j3")
    eq(job_event()[1], ("j3", "removed", "removed"), "live, first client")
    eq(ev2.next()[1]["id"], "j3", "live, second client")
    ev2.close()
    ev.close()
    # an id of another run (or a made-up one): a reset, then live changes
    for bad in ("000000000000-5", "nonsense"):
        ev = Events(s, "/v1/types/t/events", last_id=bad)
        eid, d = ev.next()
        eq(ev.event, "reset", "reset for %r" % bad)
        check("list" in d["reason"], "the reset says what to do: %r", d)
        s.cli("add", "t", "after-" + bad)
        eq(job_event()[1], ("after-" + bad, "added", "pending"), "live after the reset")
        ev.close()
    s.stop()


def fill_store(s, type_, n, prefix):
    """Adds n pending jobs of type_ (ids prefix0000000, prefix0000001, ...)
    straight to the server's store, thousands per transaction
    (test/server/fill.c, its path in CJ_TEST_FILL): one HTTP request and
    one commit per job made the fill most of a test's time. The server sees
    them as it sees any other process's commits."""
    prog = os.environ.get("CJ_TEST_FILL", "")
    check(prog and os.path.exists(prog), "CJ_TEST_FILL names no program: %r", prog)
    r = subprocess.run([prog, s.db, type_, str(n), prefix], capture_output=True,
                       timeout=bound(600))
    if r.returncode != 0:
        raise Fail("cj_test_fill: exit %d: %s" % (r.returncode, r.stderr.decode()))


def case_type_events_big(cjobs, scratch):
    """A type with more jobs than any fixed bound (200,000 was one) still
    streams its changes: the stream opens, and changes made by another
    process reach it."""
    s = fresh(cjobs, scratch, extra=["--relaxed"])
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    n = 200001
    t0 = time.monotonic()
    fill_store(s, "t", n, "j")
    eq([t["counts"]["pending"] for t in s.ok("GET", "/v1/types")["types"]], [n],
       "the jobs added")
    print("  %d jobs added in %.1f s" % (n, time.monotonic() - t0))
    # each batch of changes costs the stream a scan of the type, and the
    # next scan waits five times as long as the last took (server/feed.c):
    # over 200,001 jobs on PostgreSQL under the sanitizers and a loaded
    # machine, that took longer than the other streams' 30 s
    t0 = time.monotonic()
    ev = Events(s, "/v1/types/t/events", timeout=300)
    eid, d = ev.next()
    eq((ev.event, d), ("open", {"type": "t"}), "the stream of a big type opens")
    print("  the stream opened in %.1f s" % (time.monotonic() - t0))
    t0 = time.monotonic()
    s.cli("add", "t", "new")
    eid, d = ev.next()
    eq((ev.event, d["id"], d["change"]), ("job", "new", "added"), "an add reaches it")
    print("  the add reached it in %.1f s" % (time.monotonic() - t0))
    t0 = time.monotonic()
    s.cli("rm", "t", "j0000007")
    eid, d = ev.next()
    eq((ev.event, d["id"], d["change"]), ("job", "j0000007", "removed"), "a removal too")
    print("  the removal reached it in %.1f s" % (time.monotonic() - t0))
    ev.close()
    s.stop()


# ---- graceful stop -----------------------------------------------------------

def case_stop(cjobs, scratch):
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    s.ok("PUT", "/v1/jobs/t/j", {})
    res = {}
    poll = threading.Thread(target=lambda: res.update(
        poll=s.req("POST", "/v1/types/u/accept", {"timeout_ms": 60000})))
    poll.start()
    ev = Events(s, "/v1/jobs/t/j/events")
    ev.next()
    wait_for(lambda: "couchjobs_server_http" in (s.req("GET", "/metrics")[1] or ""), 30,
             "metrics")
    time.sleep(0.3)  # the long poll is waiting in the server
    t0 = time.monotonic()
    s.stop()
    poll.join(bound(30))
    check("poll" in res, "the long poll was not answered when the server stopped")
    eq(res["poll"][0], 204, "the long poll was answered")
    eq(ev.next(), None, "the event stream ended")
    check(time.monotonic() - t0 < bound(15), "stopped in time")
    ev.close()
    # a new connection is refused once it stopped
    try:
        socket.create_connection((s.host, s.port), timeout=2).close()
        raise Fail("still listening")
    except OSError:
        pass


# ---- idle ---------------------------------------------------------------------

def ctx_switches(pid):
    """Context switches (voluntary and not) of every thread of pid so far."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:",
                                        "nonvoluntary_ctxt_switches:")):
                        total += int(line.split()[1])
        except OSError:
            pass  # a thread that just ended
    return total


def idle_wakeups(pid, seconds):
    """Waits (up to a minute) until pid has not run for a whole second, then
    counts its wakeups over `seconds`."""
    end = time.monotonic() + bound(60)
    before = ctx_switches(pid)
    while True:
        time.sleep(1)
        now = ctx_switches(pid)
        if now == before:
            break
        before = now
        check(time.monotonic() < end, "the server never went idle")
    time.sleep(seconds)
    return ctx_switches(pid) - before


def case_idle(cjobs, scratch):
    """Open long polls and event streams sleep in the library until
    something happens: the idle server wakes for nothing. A client that
    hangs up frees its place at once, and a stop answers the long polls at
    once."""
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 3600})
    s.ok("PUT", "/v1/jobs/t/j", {"sched_time": 4102444800})  # pending, not due
    res = []

    def poll():
        res.append(s.req("POST", "/v1/types/u/accept", {"timeout_ms": 60000}))
    polls = [threading.Thread(target=poll) for _ in range(4)]
    for th in polls:
        th.start()
    streams = [Events(s, "/v1/jobs/t/j/events") for _ in range(3)]
    streams.append(Events(s, "/v1/types/t/events"))
    for ev in streams:
        ev.next()

    def waiting():
        st, text, _ = s.req("GET", "/metrics")
        return parse_metrics(text)[("couchjobs_server_waiting_requests", frozenset())]
    wait_for(lambda: waiting() == 8, 30, "four long polls and four streams")
    n = idle_wakeups(s.p.pid, 3)
    print("  idle over 3 s with 4 long polls and 4 event streams (one of a type): "
          "%d wakeups" % n)
    check(n <= 2, "the idle server woke %d times" % n)
    # a long poll whose client hangs up is let go at once
    c = s.conn()
    c.request("POST", "/v1/types/u/accept", body=json.dumps({"timeout_ms": 60000}),
              headers={"Content-Type": "application/json"})
    wait_for(lambda: waiting() == 9, 30, "the ninth waiter")
    c.close()
    wait_for(lambda: waiting() == 8, 5, "the hung-up long poll to be let go")
    # and the waits still end on an event: a job added reaches a long poll
    s.ok("PUT", "/v1/types/u", {"timeout": 3600})
    s.ok("PUT", "/v1/jobs/u/x", {})
    wait_for(lambda: len(res) == 1, 10, "a long poll to take the job")
    eq((res[0][0], res[0][1]["id"]), (200, "x"), "the long poll took the job")
    t0 = time.monotonic()
    s.stop()
    for th in polls:
        th.join(bound(30))
    elapsed = time.monotonic() - t0
    eq(sorted(r[0] for r in res), [200, 204, 204, 204], "the long polls were answered")
    for ev in streams:
        eq(ev.next(), None, "the event stream ended")
        ev.close()
    check(elapsed < bound(2), "stopped in %.1f s, not at once" % elapsed)


def voluntary_switches(pid):
    """Voluntary context switches (the thread slept) of each thread of pid."""
    d = {}
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        d[t] = int(line.split()[1])
        except OSError:
            pass  # a thread that just ended
    return d


def case_ui_schedules(cjobs, scratch):
    """The dashboard's overview stream carries the schedules: one set or
    removed by another process (the CLI) sends a new overview at once,
    without a poll (a schedule's change wakes the stream as a job's
    does)."""
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    ev = Events(s, "/ui/events")
    _, d = ev.next()
    eq((ev.event, d.get("schedules")), ("types", []), "the overview, no schedule yet")
    t0 = time.monotonic()
    s.cli("schedule", "add", "tick", "--every", "1h", "--type", "t")
    _, d = ev.next()
    eq([x["name"] for x in d["schedules"]], ["tick"], "the schedule added by the CLI")
    eq(d["schedules"][0], s.ok("GET", "/v1/schedules/tick"), "as GET /v1/schedules/tick has it")
    s.cli("schedule", "rm", "tick")
    _, d = ev.next()
    eq(d["schedules"], [], "removed by the CLI")
    # sooner than the stream's look without commits (30 s)
    check(time.monotonic() - t0 < bound(20), "the changes came late: %.1f s", time.monotonic() - t0)
    ev.close()
    s.stop()


def case_ui_busy(cjobs, scratch):
    """The dashboard's overview stream on a busy store: a change that comes
    before its next look may run (a second after the last) waits for that
    time asleep, not in naps: its thread sleeps a few times per overview."""
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    ev = Events(s, "/ui/events")
    ev.next()
    before = voluntary_switches(s.p.pid)
    for i in range(3):
        s.cli("add", "t", "a%d" % i)  # by another process; looked at at once
        eq(ev.next()[1]["types"][0]["counts"]["pending"], 2 * i + 1, "the first add")
        s.cli("add", "t", "b%d" % i)  # under a second later: waits for the look
        eq(ev.next()[1]["types"][0]["counts"]["pending"], 2 * i + 2, "the second add")
    after = voluntary_switches(s.p.pid)
    most = max(after[t] - before.get(t, 0) for t in after)
    print("  6 overviews, 3 of them held back: the busiest thread slept %d times" % most)
    # on the embedded engine a look reads without sleeping, so the count is
    # the stream's waits alone (naps made it 50 and more); over PostgreSQL
    # every query of a look sleeps on the network, so the count says nothing
    if store_url(scratch).startswith("lmdb:"):
        check(most <= 24, "the overview's thread slept %d times for 6 overviews" % most)
    ev.close()
    s.stop()


# ---- abuse -------------------------------------------------------------------

def case_abuse(cjobs, scratch):
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    s.ok("PUT", "/v1/jobs/t/j", {})
    base = s.rss_kb()
    idle = [socket.create_connection((s.host, s.port)) for _ in range(200)]
    # a slow client: one byte a second of headers
    slow = socket.create_connection((s.host, s.port))
    stop = threading.Event()

    def trickle():
        for ch in b"GET /v1/types HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            if stop.is_set():
                return
            try:
                slow.send(bytes([ch]))
            except OSError:
                return
            time.sleep(1)
    th = threading.Thread(target=trickle)
    th.start()
    # a declared body over the limit is refused at once
    c = socket.create_connection((s.host, s.port))
    c.sendall(b"PUT /v1/jobs/t/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100000000\r\n\r\n")
    c.settimeout(bound(30))
    head = c.recv(4096)
    check(head.startswith(b"HTTP/1.1 413"), "413 for a declared oversized body: %r", head[:60])
    c.close()
    # a chunked body over the limit: read, dropped, refused
    c = socket.create_connection((s.host, s.port))
    c.sendall(b"PUT /v1/jobs/t/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    try:
        for _ in range(20):
            c.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        c.sendall(b"0\r\n\r\n")
        c.settimeout(bound(30))
        head = c.recv(4096)
        check(head.startswith(b"HTTP/1.1 413"), "413 for a chunked body: %r", head[:60])
    except ConnectionError:
        pass  # refused while sending: as good
    c.close()
    eq(s.req("GET", "/v1/jobs/t/big")[0], 404, "nothing was added")
    # over-long headers and URLs
    eq(s.req("GET", "/v1/types", headers={"X-Big": "a" * 40000})[0], 431, "long header")
    eq(s.req("GET", "/v1/jobs/t/" + "a" * 40000)[0], 414, "long URL")
    # meanwhile others are served promptly, many times over
    for i in range(50):
        t0 = time.monotonic()
        s.ok("GET", "/v1/jobs/t/j")
        check(time.monotonic() - t0 < bound(5), "a request took %.1fs", time.monotonic() - t0)
    grown = s.rss_kb() - base
    print("  memory: %d KiB more with 200 idle connections and a slow client" % grown)
    check(grown < 128 * 1024, "memory grew by %d KiB", grown)
    stop.set()
    for c in idle:
        c.close()
    slow.close()
    th.join(bound(30))
    s.ok("GET", "/v1/types")
    s.stop()


def waiting(s):
    """The server's gauge of waiting requests (long polls, event streams)."""
    m = re.search(r"^couchjobs_server_waiting_requests (\d+)$", s.ok("GET", "/metrics"), re.M)
    check(m, "no waiting gauge in /metrics")
    return int(m.group(1))


def case_waiters(cjobs, scratch):
    """Long polls and event streams hold at most 500 slots (SRV_MAX_WAITERS):
    one more accept that would wait is refused with 503, while a job that is
    ready is still handed out, since taking it waits for nothing."""
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    s.ok("PUT", "/v1/types/idle", {"timeout": 30})
    body = b'{"timeout_ms":60000}'
    head = (b"POST /v1/types/idle/accept HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    polls = []
    try:
        for _ in range(500):
            c = socket.create_connection((s.host, s.port))
            c.sendall(head + body)
            polls.append(c)
        wait_for(lambda: waiting(s) == 500, 60, "500 long polls to take every slot")
        eq(s.req("POST", "/v1/types/idle/accept", {"timeout_ms": 1000})[0], 503,
           "one more wait is refused")
        s.ok("PUT", "/v1/jobs/t/ready", {"data": {"n": 1}})
        st, job, _ = s.req("POST", "/v1/types/t/accept", {"timeout_ms": 1000})
        eq(st, 200, "a ready job is taken with every slot in use")
        eq((job["id"], job["data"]), ("ready", {"n": 1}), "the ready job")
        eq(s.req("POST", "/v1/types/t/accept", {"timeout_ms": 1000})[0], 503,
           "an accept that has to wait is still refused")
    finally:
        for c in polls:
            c.close()
    # the slots come back as their clients hang up
    wait_for(lambda: waiting(s) == 0, 60, "the slots of the closed long polls")
    eq(s.req("POST", "/v1/types/t/accept", {"timeout_ms": 1})[0], 204, "a wait again")
    s.stop()


# ---- metrics -----------------------------------------------------------------

METRIC_LINE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? '
    r'(-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$')


def unescape_label(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def reference_parse(text):
    """The samples as Prometheus' own Python client reads them (Debian's
    python3-prometheus-client, its parser of the text format):
    {(name, frozenset(labels, unescaped)): value}. It raises on what it
    cannot read."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:  # a Python of its own, not Debian's: use Debian's package
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            raise Fail("needs Debian's python3-prometheus-client (scripts/deps.sh --test)")
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            check(key not in out, "the client parser reads %r twice", key)
            out[key] = s.value
    return out


def parse_metrics(text):
    """A strict parser of Prometheus' text format 0.0.4: returns
    {(name, frozenset(labels)): value} and checks HELP/TYPE and histograms.
    Every exposition is also read by Prometheus' own client parser
    (reference_parse), which must find the same samples and values.
    (Not promtool: Debian has it only in the prometheus package, the whole
    server, whose install starts a service listening on port 9090 of every
    interface; too much for the test command.)"""
    types, samples, helps = {}, {}, set()
    check(text.endswith("\n"), "ends with a line break")
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            check(name not in helps, "HELP twice for %s", name)
            check(name not in types, "HELP after TYPE for %s", name)
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            check(kind in ("counter", "gauge", "histogram"), "type %s", kind)
            check(name not in types, "TYPE twice for %s", name)
            check(re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", name), "metric name %r", name)
            check(name in helps, "TYPE without HELP for %s", name)
            check(kind == "counter" or not name.endswith("_total"), "%s %s ends in _total",
                  kind, name)
            check(not any(k[0] == name or k[0].startswith(name + "_") and
                          re.sub(r"_(bucket|sum|count)$", "", k[0]) == name for k in samples),
                  "samples of %s before its TYPE", name)
            types[name] = kind
            continue
        m = METRIC_LINE.match(line)
        check(m, "not a sample line: %r", line)
        name, labels = m.group(1), m.group(3) or ""
        lab = frozenset(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', labels))
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        kind = types.get(name) or types.get(family)
        check(kind, "sample before its TYPE: %s", name)
        if kind == "counter":
            check(name.endswith("_total"), "counter without _total: %s", name)
        key = (name, lab)
        check(key not in samples, "sample twice: %r", key)
        samples[key] = float(m.group(4))
    for name, kind in types.items():
        if kind != "histogram":
            continue
        series = {}  # the labels other than le -> [(le, value)]
        for (n, l), v in samples.items():
            if n == name + "_bucket":
                d = dict(l)
                le = d.pop("le")
                series.setdefault(frozenset(d.items()), []).append((float(le), v))
        for lab, buckets in series.items():
            buckets.sort()
            what = "%s%s" % (name, sorted(lab))
            check(buckets[-1][0] == float("inf"), "+Inf bucket of %s", what)
            check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "cumulative %s", what)
            eq(samples[(name + "_count", lab)], buckets[-1][1], what + " count")
            check((name + "_sum", lab) in samples, "sum of %s", what)
        for (n, l), v in samples.items():
            if n in (name + "_count", name + "_sum"):
                check(l in series, "%s without buckets", n)
    mine = {(n, frozenset((k, unescape_label(lv)) for k, lv in l)): v
            for (n, l), v in samples.items()}
    eq(reference_parse(text), mine, "the samples Prometheus' client parser reads")
    return samples


def case_metrics(cjobs, scratch):
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    s.ok("PUT", "/v1/types/we\"ird\\type", {"timeout": 30})
    for i in range(5):
        s.ok("PUT", "/v1/jobs/t/%d" % i, {})
    s.ok("PUT", "/v1/jobs/t/later", {"sched_time": 4102444800})
    s.cli("add", "t", "cli")  # by another process: in the gauges, not the counters
    for _ in range(3):
        job = s.ok("POST", "/v1/types/t/accept", {"timeout_ms": 0})
    s.ok("POST", "/v1/jobs/t/%s/finish" % job["id"], {"lock": job["lock"]})
    s.req("POST", "/v1/jobs/t/0/finish", {"lock": LOCK0})
    s.req("POST", "/v1/types/%s/accept" % q('we"ird\\type'), {"timeout_ms": 10})
    st, text, h = s.req("GET", "/metrics")
    eq(st, 200, "metrics")
    check(h["Content-Type"].startswith("text/plain; version=0.0.4"), "content type")
    m = parse_metrics(text)

    def g(name, **labels):
        return m[(name, frozenset(labels.items()))]
    eq([g("couchjobs_jobs", type="t", state=st) for st in
        ("pending", "scheduled", "running", "finished")], [3, 1, 2, 1], "gauges")
    counts = s.ok("GET", "/v1/types")["types"][0]["counts"]
    eq(g("couchjobs_jobs", type="t", state="running"), counts["running"], "as the store")
    eq(g("couchjobs_jobs", type='we\\"ird\\\\type', state="pending"), 0, "escaped label")
    eq(g("couchjobs_server_jobs_added_total"), 6, "added")
    eq(g("couchjobs_server_jobs_accepted_total"), 3, "accepted")
    eq(g("couchjobs_server_jobs_finished_total"), 1, "finished")
    eq(g("couchjobs_server_jobs_halted_total"), 1, "halted")
    eq(g("couchjobs_server_accept_empty_total"), 1, "empty polls")
    eq(g("couchjobs_server_accept_wait_seconds_count"), 3, "wait histogram")
    eq(g("couchjobs_server_job_wait_seconds_count", type="t"), 3, "due-to-accept histogram")
    eq(g("couchjobs_server_job_run_seconds_count", type="t"), 1, "run histogram")
    eq(g("couchjobs_type_timeout_seconds", type="t"), 30, "timeout gauge")
    eq(g("couchjobs_pending_untimed_jobs", type="t"), 3, "untimed pending jobs")
    check(("couchjobs_oldest_pending_age_seconds", frozenset({("type", "t")})) not in m,
          "no age without a job added with a time")
    s.ok("PUT", "/v1/jobs/t/old", {"sched_time": 1000})
    t = s.ok("GET", "/v1/types")["types"][0]
    m = parse_metrics(s.req("GET", "/metrics")[1])
    age = g("couchjobs_oldest_pending_age_seconds", type="t")
    check(t["oldest_pending_age"] <= age <= t["oldest_pending_age"] + 5,
          "the age as the store has it: %r %r", age, t)
    s.stop()


def case_metrics_hist(cjobs, scratch):
    """The wait from due to accept and the run time, per type, in seconds."""
    s = fresh(cjobs, scratch)
    wait, run = "couchjobs_server_job_wait_seconds", "couchjobs_server_job_run_seconds"

    def h(m, name, typ, le=None):
        if le is None:
            return (m[(name + "_count", frozenset({("type", typ)}))],
                    m[(name + "_sum", frozenset({("type", typ)}))])
        return m[(name + "_bucket", frozenset({("type", typ), ("le", le)}))]
    # a job that waited over five seconds before a worker came: the wait
    # counts from its add, not from the accept call (which found it at
    # once). Five, the bucket's bound, so that the other two waits stay
    # under it however loaded the machine is
    s.ok("PUT", "/v1/types/w", {"timeout": 30})
    s.ok("PUT", "/v1/jobs/w/a", {})
    time.sleep(5.2)
    job = s.ok("POST", "/v1/types/w/accept", {"timeout_ms": 0})
    # a job scheduled in the past waits from its add; one scheduled later
    # (accepted early with max_sched_time "any") has waited nothing
    s.ok("PUT", "/v1/jobs/w/past", {"sched_time": 1000})
    s.ok("PUT", "/v1/jobs/w/later", {"sched_time": int(time.time()) + 3600})
    past = s.ok("POST", "/v1/types/w/accept", {"timeout_ms": 0})
    eq(past["id"], "past", "the job due first")
    s.ok("POST", "/v1/types/w/accept", {"timeout_ms": 0, "max_sched_time": "any"})
    time.sleep(0.6)
    s.ok("POST", "/v1/jobs/w/a/finish", {"lock": job["lock"]})
    m = parse_metrics(s.req("GET", "/metrics")[1])
    n, total = h(m, wait, "w")
    eq(n, 3, "three accepts")
    check(5.2 <= total < 5.2 + bound(30), "the waits add up to the five seconds: %r", total)
    eq(h(m, wait, "w", "5"), 2, "two waited under five seconds")
    eq(h(m, wait, "w", "+Inf"), 3, "+Inf")
    n, total = h(m, run, "w")
    eq(n, 1, "one run ended")
    check(0.6 <= total, "the run took its time: %r", total)
    eq(h(m, run, "w", "0.5"), 0, "not under half a second")
    # a failed attempt ends a run too; a stale lock's refusal does not
    s.ok("POST", "/v1/jobs/w/past/fail", {"lock": past["lock"]})
    eq(s.req("POST", "/v1/jobs/w/past/fail", {"lock": past["lock"]})[0], 409, "stale")
    eq(h(parse_metrics(s.req("GET", "/metrics")[1]), run, "w")[0], 2, "fail ends a run")
    # a type of its own per type, up to the cap; later types share type=""
    cap = 64
    for i in range(cap + 2):
        s.ok("PUT", "/v1/types/c%02d" % i, {"timeout": 30})
        s.ok("PUT", "/v1/jobs/c%02d/j" % i, {})
        s.ok("POST", "/v1/types/c%02d/accept" % i, {"timeout_ms": 0})
    m = parse_metrics(s.req("GET", "/metrics")[1])
    typed = {dict(l)["type"] for (name, l) in m if name == wait + "_count"}
    eq(len(typed), cap + 1, "the cap's types and the shared series: %r" % sorted(typed))
    check("w" in typed and "" in typed, "w has its own series, later types share")
    eq(h(m, wait, "")[0], 3, "types beyond the cap, together")
    s.stop()


# ---- the OpenAPI document ----------------------------------------------------

def resolve(doc, schema):
    while "$ref" in schema:
        node = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def validate(doc, schema, v, where):
    """Checks `v` against the subset of JSON Schema the document uses."""
    schema = resolve(doc, schema)
    if schema.get("nullable") and v is None:
        return
    for part in schema.get("allOf", []):
        validate(doc, part, v, where)
    if "oneOf" in schema:
        errs = []
        for alt in schema["oneOf"]:
            try:
                validate(doc, alt, v, where)
                return
            except Fail as e:
                errs.append(str(e))
        raise Fail("%s: matches no alternative: %s" % (where, errs))
    t = schema.get("type")
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool}
    if t in kinds:
        check(isinstance(v, kinds[t]), "%s: want %s, got %r", where, t, v)
    elif t == "integer":
        check(isinstance(v, int) and not isinstance(v, bool), "%s: want integer: %r", where, v)
    if "enum" in schema:
        check(v in schema["enum"], "%s: %r not in %r", where, v, schema["enum"])
    if t == "object":
        for k in schema.get("required", []):
            check(k in v, "%s: missing %s in %r", where, k, v)
        for k, sub in schema.get("properties", {}).items():
            if k in v:
                validate(doc, sub, v[k], where + "." + k)
    if t == "array":
        for i, item in enumerate(v):
            validate(doc, schema.get("items", {}), item, "%s[%d]" % (where, i))


def case_openapi(cjobs, scratch):
    with open(os.path.join(ROOT, "doc", "openapi.json")) as f:
        doc = json.load(f)
    check(doc["openapi"].startswith("3."), "OpenAPI 3")
    s = fresh(cjobs, scratch)
    # good input for every operation, in an order that makes each one succeed
    s.ok("PUT", "/v1/types/t", {"timeout": 30})
    s.ok("PUT", "/v1/jobs/t/j", {"data": {"n": 1}})
    s.ok("PUT", "/v1/types/ft", {"timeout": 30})
    s.ok("PUT", "/v1/jobs/ft/f", {})
    state = {}

    def lock():
        return state["lock"]
    calls = [
        ("put", "/v1/types/{type}", {"type": "t"},
         {"timeout": 30, "retry_policy": {"max_attempts": 3}}),
        ("get", "/v1/types/{type}", {"type": "t"}, None),
        ("get", "/v1/types", {}, None),
        ("put", "/v1/jobs/{type}/{id}", {"type": "t", "id": "k"}, {"data": {"n": 2}}),
        ("get", "/v1/jobs/{type}/{id}", {"type": "t", "id": "k"}, None),
        ("get", "/v1/jobs", {}, None),
        ("post", "/v1/types/{type}/accept", {"type": "t"}, {"timeout_ms": 0}),
        ("post", "/v1/jobs/{type}/{id}/update", {"type": "t", "id": "j"}, "lock"),
        ("post", "/v1/jobs/{type}/{id}/resubmit", {"type": "t", "id": "j"}, "lock"),
        ("post", "/v1/jobs/{type}/{id}/finish", {"type": "t", "id": "j"}, "lock"),
        # a type without a policy: the failed job is dead, then retried
        ("post", "/v1/types/{type}/accept", {"type": "ft"}, {"timeout_ms": 0}),
        ("post", "/v1/jobs/{type}/{id}/fail", {"type": "ft", "id": "f"},
         lambda: {"lock": lock(), "error": {"why": "test"}}),
        ("get", "/v1/jobs/{type}/{id}", {"type": "ft", "id": "f"}, None),
        ("post", "/v1/jobs/{type}/{id}/retry", {"type": "ft", "id": "f"}, {}),
        ("post", "/v1/types/{type}/retry", {"type": "ft"}, {"keep_attempts": True}),
        ("put", "/v1/jobs/{type}/{id}/policy", {"type": "ft", "id": "f"}, {"max_attempts": 3}),
        ("get", "/v1/jobs/{type}/{id}/policy", {"type": "ft", "id": "f"}, None),
        ("delete", "/v1/jobs/{type}/{id}/policy", {"type": "ft", "id": "f"}, None),
        ("get", "/v1/jobs/{type}/{id}/events", {"type": "t", "id": "j"}, None),
        ("get", "/v1/types/{type}/events", {"type": "t"}, None),
        ("get", "/metrics", {}, None),
        ("put", "/v1/types/{type}/limits", {"type": "t"}, {"max_running": 4}),
        ("get", "/v1/types/{type}/limits", {"type": "t"}, None),
        ("put", "/v1/types/{type}/retention", {"type": "t"}, {"keep_max": 10}),
        ("get", "/v1/types/{type}/retention", {"type": "t"}, None),
        ("get", "/v1/types/{type}", {"type": "t"}, None),
        ("get", "/v1/types", {}, None),
        ("post", "/v1/types/{type}/prune", {"type": "t"}, {"retention": {"keep_max": 0}}),
        ("delete", "/v1/types/{type}/retention", {"type": "t"}, None),
        ("delete", "/v1/types/{type}/limits", {"type": "t"}, None),
        ("put", "/v1/schedules/{name}", {"name": "n"},
         {"cron": "0 2 * * *", "zone": "Europe/Paris", "type": "t", "data": {"n": 1}}),
        ("get", "/v1/schedules/{name}", {"name": "n"}, None),
        ("get", "/v1/schedules", {}, None),
        ("delete", "/v1/schedules/{name}", {"name": "n"}, None),
        ("delete", "/v1/jobs/{type}/{id}", {"type": "t", "id": "k"}, None),
        ("delete", "/v1/types/{type}", {"type": "t"}, None),
    ]
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops
                  if m in ("get", "put", "post", "delete")}
    eq(documented, {(m, p) for m, p, _, _ in calls}, "documented operations are tested")
    for method, tmpl, params, body in calls:
        op = doc["paths"][tmpl][method]
        path = tmpl
        for k, v in params.items():
            path = path.replace("{%s}" % k, q(v))
        if body == "lock":
            body = {"lock": lock()}
        elif callable(body):
            body = body()
        if tmpl == "/v1/types/{type}/events":
            events = op["responses"]["200"]["content"]["text/event-stream"]["x-events"]
            ev = Events(s, path)
            _, d = ev.next()
            validate(doc, events[ev.event], d, ev.event)
            s.ok("PUT", "/v1/jobs/t/typed", {})
            _, d = ev.next()
            validate(doc, events[ev.event], d, ev.event)
            eq(ev.event, "job", "a job event")
            ev.close()
            continue
        if tmpl.endswith("/events"):
            ev = Events(s, path)  # the job is finished: one event, then the end
            _, d = ev.next()
            ev.close()
            resp = op["responses"]["200"]["content"]["text/event-stream"]
            validate(doc, resp["x-event-data"], d, "event")
            continue
        st, b, h = s.req(method.upper(), path, body)
        check(str(st) in op["responses"], "%s %s: %d undocumented", method, tmpl, st)
        eq(st, 200, "%s %s: %s" % (method, tmpl, b))
        content = op["responses"]["200"].get("content", {})
        ctype = h["Content-Type"].split(";")[0]
        check(ctype in content, "%s %s: content type %s undocumented", method, tmpl, ctype)
        if ctype == "application/json":
            validate(doc, content[ctype]["schema"], b, "%s %s" % (method, tmpl))
        if tmpl.endswith("/accept"):
            state["lock"] = b["lock"]
    # error answers have the documented shape and statuses
    st, b, _ = s.req("GET", "/v1/jobs/t/none")
    check("404" in doc["paths"]["/v1/jobs/{type}/{id}"]["get"]["responses"], "404 documented")
    validate(doc, {"$ref": "#/components/schemas/Error"}, b, "error")
    st, b, _ = s.req("POST", "/v1/types/t/accept", {"timeout_ms": 0})
    check("204" in doc["paths"]["/v1/types/{type}/accept"]["post"]["responses"], "204")
    for method, tmpl, path, body in (("put", "/v1/schedules/{name}", "/v1/schedules/n",
                                      {"cron": "0 99 * * *", "type": "t"}),
                                     ("get", "/v1/schedules/{name}", "/v1/schedules/none",
                                      None),
                                     ("post", "/v1/types/{type}/prune", "/v1/types/t/prune",
                                      None),
                                     ("put", "/v1/types/{type}/retention",
                                      "/v1/types/t/retention", {})):
        st, b, _ = s.req(method.upper(), path, body)
        check(str(st) in doc["paths"][tmpl][method]["responses"], "%s %s: %d undocumented",
              method, tmpl, st)
        validate(doc, {"$ref": "#/components/schemas/Error"}, b, "error of " + path)
    s.stop()


# ---- the curl examples of doc/http-api.md ------------------------------------

def case_doc(cjobs, scratch):
    """Runs every `$ curl ...` of the doc's examples in order, and compares
    its output with the text below it (locks may differ)."""
    with open(os.path.join(ROOT, "doc", "http-api.md")) as f:
        text = f.read()
    blocks = re.findall(r"```console\n(.*?)```", text, re.S)
    check(len(blocks) >= 5, "examples found: %d", len(blocks))
    s = fresh(cjobs, scratch)
    env = dict(os.environ, CJ=s.url)
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    # times in ms, fencing tokens (the engine's counter, shared by all jobs)
    # and a schedule's times (seconds since the epoch)
    ms = re.compile(r'("(?:added_ms|finished_ms|time)":[1-9][0-9]{12}|"fence":[1-9][0-9]*'
                    r'|"(?:served|next)":[1-9][0-9]{9})\b')
    def num(m):
        return m.group(0).split(":")[0] + ":N"
    n = 0
    lock = None
    for block in blocks:
        lines = block.split("\n")
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                i += 1
                continue
            cmd = lines[i][2:]
            i += 1
            want = []
            while i < len(lines) and not lines[i].startswith("$ "):
                want.append(lines[i])
                i += 1
            want = "\n".join(want).strip()
            if lock:
                cmd = cmd.replace("$LOCK", lock)
            r = subprocess.run(["sh", "-c", cmd], capture_output=True, env=env,
                               timeout=bound(60))
            got = r.stdout.decode().strip()
            m = uuid.search(got)
            if m and '"lock"' in got:
                lock = m.group(0)
            eq(ms.sub(num, uuid.sub("LOCK", got)),
               ms.sub(num, uuid.sub("LOCK", want.replace("$LOCK", "LOCK"))),
               "doc example `%s`" % cmd)
            n += 1
    check(n >= 10, "ran %d examples", n)
    s.stop()


# ---- the example workers -----------------------------------------------------

def case_examples(cjobs, scratch):
    s = fresh(cjobs, scratch)
    s.ok("PUT", "/v1/types/py", {"timeout": 30})
    s.ok("PUT", "/v1/types/sh", {"timeout": 30})
    # the shell worker runs three curl processes per job: it gets fewer
    n = {"py": 150, "sh": 60}
    for t, count in n.items():
        for i in range(count):
            s.ok("PUT", "/v1/jobs/%s/%s%03d" % (t, t[0], i),
                 {"data": {"n": i, "fail": i % 10 == 0}})
    ex = os.path.join(ROOT, "examples")
    procs = [
        subprocess.Popen([sys.executable, os.path.join(ex, "worker.py"), "--url", s.url,
                          "--type", "py", "--idle-exit", "--poll-ms", "1000"],
                         stderr=subprocess.PIPE),
        subprocess.Popen(["sh", os.path.join(ex, "worker.sh"), s.url, "sh", "--idle-exit"],
                         stderr=subprocess.PIPE, env=dict(os.environ, CJ_POLL_MS="1000")),
    ]
    for p in procs:
        t0 = time.monotonic()
        _, err = p.communicate(timeout=bound(300))
        eq(p.returncode, 0, "worker: %s" % err.decode())
        print("  %s: %.1fs" % (err.decode().strip(), time.monotonic() - t0))
    jobs = []
    cursor = None
    while True:
        b = s.ok("GET", "/v1/jobs?limit=1000" + ("&cursor=" + cursor if cursor else ""))
        jobs += b["jobs"]
        cursor = b["next"]
        if not cursor:
            break
    eq(len(jobs), sum(n.values()), "every job")
    for j in jobs:
        # the types have no retry policy: a failed job is dead at once
        failed = int(j["id"][1:]) % 10 == 0
        eq(j["state"], "dead" if failed else "finished", "job %s" % j["id"])
        if failed:
            eq([(e["ended"], e["error"]) for e in j["errors"]],
               [("failed", {"message": "asked to fail"})], "failure of %s" % j["id"])
        else:
            eq(j["errors"], [], "no failure of %s" % j["id"])
    py = [j for j in jobs if j["type"] == "py" and "result" in j["data"]]
    check(all(j["data"]["result"] == 2 * int(j["id"][1:]) for j in py), "python results")
    s.stop()


CASES = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}

if __name__ == "__main__":
    sys.exit(run(CASES))

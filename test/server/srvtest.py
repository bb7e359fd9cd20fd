"""Helpers of the server tests: a live `cjobs serve` on a fresh store, HTTP
requests over real sockets, and generous event-driven waits.

Environment: CJ_TEST_URL picks the engine as for the C tests (unset: the
embedded engine in a scratch directory); CJ_TEST_TIMEOUT_MULTIPLIER
stretches every bound on a slow machine.
"""
import http.client
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MULT = float(os.environ.get("CJ_TEST_TIMEOUT_MULTIPLIER", "1") or 1)


def bound(seconds):
    return seconds * MULT


class Fail(Exception):
    pass


def check(cond, msg, *args):
    if not cond:
        raise Fail(msg % args if args else msg)


def eq(got, want, what=""):
    if got != want:
        raise Fail("%s: got %r, want %r" % (what, got, want))


def store_url(scratch):
    u = os.environ.get("CJ_TEST_URL", "")
    if not u or u == "lmdb" or u.startswith("lmdb:"):
        return "lmdb:" + os.path.join(scratch, "store")
    sep = "&" if "?" in u else "?"
    return "%s%sschema=cjs_%d_%08x" % (u, sep, os.getpid(), random.getrandbits(32))


class Server:
    """`cjobs serve` on port 0 of 127.0.0.1; the bound port is read back."""

    # started and not stopped: run() ends those a failed case leaves behind
    live = []

    def __init__(self, cjobs, db, token_file=None, listen="127.0.0.1:0", extra=()):
        self.cjobs, self.db = cjobs, db
        args = [cjobs, "--db", db, "serve", "--listen", listen] + list(extra)
        if token_file:
            args += ["--token-file", token_file]
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.err)
        r, _, _ = select.select([self.p.stdout], [], [], bound(60))
        line = self.p.stdout.readline().decode() if r else ""
        if not line.startswith("listening on http://"):
            self.p.kill()
            self.p.wait()
            raise Fail("cjobs serve did not start: %r %s" % (line, self.stderr()))
        self.url = line.split()[-1]
        hostport = self.url[len("http://"):]
        self.host, port = hostport.rsplit(":", 1)
        self.host = self.host.strip("[]")
        self.port = int(port)
        self.token = None
        Server.live.append(self)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def conn(self, timeout=None):
        return http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout or bound(60))

    def req(self, method, path, body=None, headers=None, raw=None, conn=None):
        """Returns (status, parsed JSON or None, response headers)."""
        c = conn or self.conn()
        h = {"Content-Type": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        if not conn:
            c.close()
        ctype = r.getheader("Content-Type", "")
        parsed = json.loads(text) if text and ctype.startswith("application/json") else (
            text.decode() if text else None)
        return r.status, parsed, dict(r.getheaders())

    def ok(self, method, path, body=None, want=200):
        st, b, _ = self.req(method, path, body)
        eq(st, want, "%s %s (%s)" % (method, path, b))
        return b

    def cli(self, *args, check_rc=True):
        r = subprocess.run([self.cjobs, "--db", self.db] + list(args),
                           capture_output=True, timeout=bound(120))
        if check_rc and r.returncode != 0:
            raise Fail("cjobs %s: exit %d: %s" % (args, r.returncode, r.stderr.decode()))
        return r.stdout.decode()

    def stop(self, want_rc=0):
        """SIGTERM, then waits for a graceful exit (ASan checks leaks there)."""
        if self in Server.live:
            Server.live.remove(self)
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=bound(60))
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise Fail("cjobs serve did not stop on SIGTERM")
        self.p.stdout.close()
        if rc != want_rc:
            raise Fail("cjobs serve exited %d: %s" % (rc, self.stderr()))

    def rss_kb(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def wait_for(pred, seconds, what):
    deadline = time.monotonic() + bound(seconds)
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise Fail("timed out waiting for " + what)


def run(cases):
    """Runs the case named on the command line (or every case) with
    argv[1] the cjobs binary; each case gets a scratch directory."""
    if len(sys.argv) < 2:
        print("usage: %s CJOBS [CASE...]" % sys.argv[0], file=sys.stderr)
        return 2
    cjobs = os.path.abspath(sys.argv[1])
    names = sys.argv[2:] or list(cases)
    failed = 0
    for name in names:
        scratch = tempfile.mkdtemp(prefix="cjs-%s-" % name)
        t0 = time.monotonic()
        try:
            cases[name](cjobs, scratch)
            print("ok   %s (%.1fs)" % (name, time.monotonic() - t0))
            shutil.rmtree(scratch, ignore_errors=True)
        except Exception as e:  # noqa: BLE001 (report every kind of failure)
            failed += 1
            import traceback
            traceback.print_exc()
            print("FAIL %s: %s (scratch kept: %s)" % (name, e, scratch))
        # a case that failed before its stop() leaves its servers running
        for s in Server.live:
            if s.p.poll() is None:
                s.p.kill()
                s.p.wait()
        Server.live.clear()
    return 1 if failed else 0

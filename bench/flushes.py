#!/usr/bin/env python3
"""Where a durable one-job-per-call run of the embedded engine spends its
disk: flushes, commits and calls per job, and the disk's idle time.

    python3 bench/flushes.py CJ_COMPARE WORKLOAD [--procs N] [--jobs N]
        [--seconds S] [--dir DIR] [--trace FILE]

WORKLOAD is enqueue, drain or mixed. Runs `CJ_COMPARE --system cj-lmdb
--mode durable --workload WORKLOAD` (bench/compare/, a Release build)
under `perf trace` (Debian's linux-perf; as root: it reads the kernel's
system call tracepoints), which records every fdatasync and every write of data.mdb with
its time and duration, in all the run's processes, at a few microseconds
each (strace stops each process at each call and changes what it
measures). From the trace:

  - a commit is a meta page written (a 120-byte write at offset 32 or
    4128); the writes of its process since its last flush before it are
    its extents (one write call per run of adjacent pages);
  - a "data" flush is the one LMDB makes inside mdb_txn_commit, under the
    writer lock, between a commit's extents and its meta page; a "meta"
    flush is any other (lme_durable: a commit that no later commit's data
    flush covered);
  - calls per commit: the run's calls (enqueue 1 a job, drain 2, mixed 3)
    over its commits;
  - the disk is "idle" where no flush is under way in any process.

Jobs are the run's own count (drain: --jobs; enqueue and mixed: its rate
times the traced span), so the preload of a drain (10,000 jobs a commit)
counts for almost nothing. Prints the accounting and the bound: at the
mean flush time t of the run, with c calls in flight (1 producer: 1;
drain with N processors: N; mixed: 3), a commit flushes its data and then
needs one more flush after its meta page, so a call takes at least two
flushes from post to answer and the best any sharing can do is c/2 calls
a flush: c / (2 t) calls/s, divided by the calls of a job.
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

LINE = re.compile(r'^\s*([\d.]+) \(\s*([\d.]+) ms\): (?:\S+/(\d+) )?(\w+)\((.*)\)\s+=\s+(-?\d+)')
META = re.compile(r'count: 120, pos: (32|4128)$')
CALLS = {'enqueue': 1, 'drain': 2, 'mixed': 3}


def parse(path):
    """The trace's calls, in time order: (start s, duration s, pid, name, args)."""
    ev = []
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            # a call interrupted by the end of the trace has no duration
            if m and float(m.group(2)) < 1e4:
                ev.append((float(m.group(1)) / 1e3, float(m.group(2)) / 1e3,
                           m.group(3), m.group(4), m.group(5)))
    ev.sort()
    return ev


def account(ev):
    flushes, kinds, commits, extents = [], collections.Counter(), 0, 0
    last = {}  # pid -> index of its last flush, while no write followed it
    for t, dur, pid, name, args in ev:
        if name == 'fdatasync':
            last[pid] = len(flushes)
            flushes.append([t, t + dur, 'meta'])
        elif META.search(args):
            commits += 1
            if last.get(pid) is not None:
                flushes[last[pid]][2] = 'data'
            last[pid] = None
        else:
            extents += 1
            last[pid] = None
    for f in flushes:
        kinds[f[2]] += 1
    busy, start, end = 0.0, None, None
    for a, b, _ in sorted(flushes):
        if start is None:
            start, end = a, b
        elif a <= end:
            end = max(end, b)
        else:
            busy += end - start
            start, end = a, b
    busy += end - start
    span = max(b for _, b, _ in flushes) - min(a for a, _, _ in flushes)
    total = sum(b - a for a, b, _ in flushes)
    mean = {k: sum(b - a for a, b, kk in flushes if kk == k) / max(kinds[k], 1)
            for k in ('data', 'meta')}
    return dict(flushes=len(flushes), data=kinds['data'], meta=kinds['meta'],
                commits=commits, extents=extents, busy=busy, span=span,
                mean=total / len(flushes), mean_data=mean['data'],
                mean_meta=mean['meta'], overlap=total / busy)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('prog')
    ap.add_argument('workload', choices=sorted(CALLS))
    ap.add_argument('--procs', type=int, default=1)
    ap.add_argument('--jobs', type=int, default=4000)
    ap.add_argument('--seconds', type=float, default=4)
    ap.add_argument('--dir', default=os.environ.get('CJ_BENCH_DIR', '/var/tmp'))
    ap.add_argument('--trace', help='keep the perf trace here')
    a = ap.parse_args()
    if not shutil.which('perf'):
        sys.exit('flushes.py: perf is missing (apt-get install linux-perf)')
    scratch = tempfile.mkdtemp(prefix='cj-flushes-', dir=a.dir)
    try:
        trace = a.trace or os.path.join(scratch, 'trace')
        store = os.path.join(scratch, 'store')
        os.mkdir(store)
        cmd = [a.prog, '--system', 'cj-lmdb', '--mode', 'durable', '--workload',
               a.workload, '--dir', store]
        if a.workload == 'drain':
            cmd += ['--procs', str(a.procs), '--jobs', str(a.jobs)]
        elif a.workload == 'enqueue':
            cmd += ['--seconds', str(a.seconds)]
        else:
            cmd += ['--warmup', '1', '--window', str(a.seconds)]
        run = subprocess.run(['perf', 'trace', '-o', trace, '-e',
                              'fdatasync,pwrite64,writev,pwritev', '--'] + cmd,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        result = [l.strip() for l in run.stdout.splitlines() if '=>' in l]
        if run.returncode != 0 or not result:
            sys.exit('flushes.py: the run failed:\n' + run.stdout)
        rate = float(re.search(r': ([\d.]+) \(', result[0]).group(1))
        r = account(parse(trace))
    finally:
        shutil.rmtree(scratch)
    jobs = a.jobs if a.workload == 'drain' else rate * r['span']
    calls = CALLS[a.workload]
    inflight = a.procs if a.workload == 'drain' else (3 if a.workload == 'mixed' else 1)
    bound = inflight / (2 * r['mean']) / calls
    print(result[0])
    print('per job: %.2f flushes (%.2f data, %.2f meta), %.2f commits; '
          '%.2f calls a commit; %.1f extents a commit'
          % (r['flushes'] / jobs, r['data'] / jobs, r['meta'] / jobs,
             r['commits'] / jobs, jobs * calls / max(r['commits'], 1),
             r['extents'] / max(r['commits'], 1)))
    print('flush mean %.0f us (data %.0f, meta %.0f); flushes under way at once %.2f'
          % (1e6 * r['mean'], 1e6 * r['mean_data'], 1e6 * r['mean_meta'], r['overlap']))
    print('disk flushing %.0f%% of %.2f s; idle %.0f us a job'
          % (100 * r['busy'] / r['span'], r['span'], 1e6 * (r['span'] - r['busy']) / jobs))
    print('bound (%d calls in flight, 2 flushes a call, %.0f us a flush): %.0f jobs/s; '
          'this run %.0f (x%.2f of it)' % (inflight, 1e6 * r['mean'], bound, rate, rate / bound))


if __name__ == '__main__':
    main()

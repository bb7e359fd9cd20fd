#!/usr/bin/env python3
"""Pages and separate extents that a lone cj_add, cj_accept and cj_finish write
to an embedded store, and the B-tree each page belongs to.

    python3 bench/pages.py BUILD_DIR [durable|relaxed] [--jobs N] [--calls N]

Runs BUILD_DIR/cj_pages (bench/cj_pages.c) under strace, which dumps every
write to data.mdb; a commit is the writes up to its meta page (a 120-byte
write). LMDB writes a commit's dirty pages in page order, one write call
(pwrite64, or writev after an lseek) per run of adjacent pages: an
"extent". Each page is named by its header and its first key: the meta
page, the free list (8-byte binary keys), the main database (the named
databases' records), "cj_engine", or the jobs space (the subspace of its
first key: a branch page covers more than that subspace).
"""
import argparse
import collections
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

P_BRANCH, P_OVERFLOW, P_META = 0x01, 0x04, 0x08


def classify(p):
    if len(p) < 16:
        return 'short write'
    flags = struct.unpack_from('<H', p, 10)[0]
    if flags & P_META:
        return 'meta'
    if flags & P_OVERFLOW:
        return 'overflow'
    lower = struct.unpack_from('<H', p, 12)[0]
    keys = []
    for i in range(min(max((lower - 16) // 2, 0), 3)):
        ptr = struct.unpack_from('<H', p, 16 + 2 * i)[0]
        if ptr + 8 > len(p):
            break
        ks = struct.unpack_from('<H', p, ptr + 6)[0]
        if ks:
            keys.append(bytes(p[ptr + 8:ptr + 8 + ks]))
    kind = 'branch' if flags & P_BRANCH else 'leaf'
    if not keys:
        return kind + ' (empty)'
    k = keys[0]
    if len(k) == 8 and not re.fullmatch(rb'[\x20-\x7e]+', k):
        return kind + ': free list'
    if k in (b'cj_engine', b'jobs', b'user'):
        return kind + ': main database'
    if k in (b'commit', b'layout') or re.fullmatch(rb'r..', k, re.S):
        return kind + ': cj_engine'
    words = re.findall(rb'[\x20-\x7e]{3,}', k)
    sub = words[1].decode() if len(words) > 1 and words[0] == b'couch_jobs' else '?'
    return '%s: jobs ("%s" first)' % (kind, sub)


def parse(trace):
    """[(phase, [commit]), ...]: each commit a list of extents, each a list of page names."""
    fds, phase, calls, cur = set(), 'open', [], None
    call = re.compile(r'^\d+\s+(\w+)\((\d+)?(.*)$')
    for ln in trace:
        if ln.startswith(' | '):
            if cur is not None:
                off = int(ln[3:8], 16)
                data = bytes.fromhex(ln[10:59].replace(' ', ''))
                if off == 0:
                    cur[2].append(bytearray())
                if cur[2]:
                    cur[2][-1] += data
            continue
        if ln.startswith(' * '):
            continue
        m = call.match(ln)
        if not m:
            continue
        if cur is not None:
            calls.append(cur)
            cur = None
        name, fd, rest = m.group(1), m.group(2), m.group(3)
        ret = re.search(r'= (-?\d+)$', ln)
        if name == 'openat' and 'data.mdb' in rest and ret:
            fds.add(int(ret.group(1)))
        elif name == 'write' and fd == '2' and '@@PHASE' in rest:
            phase = re.search(r'@@PHASE (\w+)', rest).group(1)
        elif fd and int(fd) in fds and name in ('pwrite64', 'writev', 'pwritev'):
            cur = [phase, int(ret.group(1)) if ret else 0, []]
    if cur is not None:
        calls.append(cur)
    commits, extents = [], []
    for phase, n, pages in calls:
        if 0 < n < 4096:  # the meta page's 120 bytes: the commit is written
            commits.append((phase, extents))
            extents = []
        else:
            extents.append([classify(p) for p in pages])
    return commits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('build')
    ap.add_argument('mode', nargs='?', default='durable', choices=('durable', 'relaxed'))
    ap.add_argument('--jobs', type=int, default=2000, help='jobs in the store first')
    ap.add_argument('--calls', type=int, default=100, help='calls of each kind')
    a = ap.parse_args()
    exe = os.path.join(a.build, 'cj_pages')
    if not shutil.which('strace'):
        sys.exit('pages.py: strace is needed (apt-get install strace)')
    tmp = tempfile.mkdtemp(prefix='cj-pages-')
    try:
        out = os.path.join(tmp, 'trace')
        subprocess.run(['strace', '-f', '-qq', '-o', out, '-e',
                        'trace=openat,pwrite64,pwritev,writev,fdatasync,write', '-e', 'write=all',
                        exe, os.path.join(tmp, 'store'), a.mode, str(a.jobs), str(a.calls)],
                       check=True, stderr=subprocess.DEVNULL)
        with open(out, errors='replace') as f:
            commits = parse(f.read().split('\n'))
    finally:
        shutil.rmtree(tmp)
    print('%s, %d jobs in the store, %d calls of each (pages and extents per commit, '
          'without the meta page)' % (a.mode, a.jobs, a.calls))
    for phase in ('add', 'accept', 'finish'):
        cs = [e for p, e in commits if p == phase]
        if not cs:
            continue
        n = len(cs)
        pages = sum(len(p) for e in cs for p in e) / n
        ext = sum(len(e) for e in cs) / n
        print('cj_%-7s %4d commits  %5.2f pages  %5.2f extents' % (phase, n, pages, ext))
        by = collections.Counter(name for e in cs for p in e for name in p)
        for name, c in sorted(by.items(), key=lambda x: (-x[1], x[0])):
            print('    %-40s %5.2f' % (name, c / n))


if __name__ == '__main__':
    main()

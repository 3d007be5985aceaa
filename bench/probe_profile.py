#!/usr/bin/env python3
"""Where a vantage-probe's CPU goes, by component, from a perf profile.

    perf record -F 1999 -g --call-graph dwarf,16384 -p PID -o probe.data -- sleep 20
    perf script -i probe.data -F tid,period,ip,sym,dso --no-inline > probe.script
    bench/probe_profile.py probe.script

Each sample is given to one component by its call stack: on the probe's
event-loop thread (the busiest thread) the frame nearest the leaf that
names a component wins (so a malloc called by the HTTP parser counts for the
parser, the kernel under connect() for the connect); samples of the other
threads (the streamer and gRPC's) go to the streamer. Each component's share
is split into user space, malloc/free, kernel work, and context switches (the
kernel in the scheduler: sleeping, being preempted). bench/README.md, "Where
the probe's CPU goes", has the figures and what they mean.
"""
import collections
import re
import sys

# (pattern on a frame's symbol, component) for the event-loop thread, tried
# on each frame from the leaf up; the first frame that matches any decides.
IO_THREAD_RULES = [
    (r'Spool::', 'spool: append (io thread)'),
    (r'prometheus::|ProbeMetrics', 'metrics: prometheus-cpp counters/histograms'),
    (r'vantage::log::', 'logging'),
    (r'resolve_host|resolve_target|ares_|DnsResolver', 'DNS (resolve_target)'),
    (r'ResponseParser', 'HTTP parser (ResponseParser)'),
    (r'recognise_edge|cloudflare_ranges|AddressRanges', 'edge recogniser, Cloudflare ranges'),
    (r'boost::asio::ssl|^SSL_|^ssl\d?_|^tls\d*_|^EVP_', 'TLS (OpenSSL)'),
    (r'range_connect_op|start_connect_op|^__socket$|__libc_connect|reactive_socket_connect_op',
     'HTTP attempt: socket + connect'),
    (r'write_some_op|reactive_socket_send_op|__libc_sendmsg|Connection::write', 'HTTP attempt: write request'),
    (r'reactive_socket_recv_op|read_some|__libc_recvmsg|Connection::read_some', 'HTTP attempt: read response'),
    (r'shutdown', 'HTTP attempt: shutdown'),
    (r'Connection::~Connection|^__close$', 'HTTP attempt: close (~Connection)'),
    (r'^epoll_wait$', 'event loop: epoll_wait'),
    (r'timerfd_settime|timer_queue|expires_after|expires_at|basic_waitable_timer|deadline_timer',
     'timers (Beast stream timeouts, scheduler wake)'),
    (r'^epoll_ctl$|register_descriptor|deregister_descriptor', 'epoll_ctl (register sockets)'),
]
MALLOC = re.compile(r'^(malloc|_int_malloc|_int_free|cfree.*|free|malloc_consolidate|unlink_chunk.*|_int_realloc|'
                    r'realloc|calloc|_int_memalign|sysmalloc|operator new.*|operator delete.*)$')
KERNEL = '[kernel.kallsyms]'


def samples(path):
    """(tid, period, [(symbol, dso), ...] leaf first) for each sample."""
    tid, period, frames = None, 0, []
    for line in open(path, errors='replace'):
        line = line.rstrip('\n')
        if not line.strip():
            if tid is not None:
                yield tid, period, frames
            tid, frames = None, []
        elif not line[0].isspace() or re.match(r'^\s*\d+\s+\d+\s*$', line):
            parts = line.split()
            tid, period, frames = int(parts[0]), int(parts[1]), []
        else:
            m = re.match(r'\s*[0-9a-f]+ (.*) \((.*)\)$', line)
            if m:
                frames.append((m.group(1), m.group(2)))
    if tid is not None:
        yield tid, period, frames


def component(frames, tid, io_tid):
    symbols = [s for s, _ in frames]
    if tid != io_tid:
        if any('Spool::' in s for s in symbols):
            return 'streamer threads: spool (next_unsent, ack)'
        if any('libprotobuf' in d for _, d in frames) or any('vantage::v1::' in s for s in symbols):
            return 'streamer threads: protobuf (serialize, destroy results)'
        return 'streamer threads: gRPC (HTTP/2, polling, locks)'
    for s in symbols:
        for pattern, name in IO_THREAD_RULES:
            if re.search(pattern, s):
                return name
    if any('Scheduler::' in s for s in symbols):
        if any(re.search(r'ParseFrom|_InternalParse|MergeFrom', s) for s in symbols):
            return 'scheduler: parse the serialized Check'
        return 'scheduler: other (due heap, task map, ready queue, results)'
    if any(s.startswith('vantage::probe::run_http_attempt') for s in symbols):
        return 'run_http_attempt: other (LegResult fields, request, strings)'
    if any(s.startswith('vantage::probe::run_attempt') or 'edge_target' in s for s in symbols):
        return 'run_attempt: other (CheckResult, edge_target)'
    if any('boost::asio' in s or 'co_spawn' in s or 'awaitable' in s for s in symbols):
        return 'Asio: event loop, handlers, coroutine frames'
    return 'other'


def kind(frames):
    if frames and frames[0][1] == KERNEL:
        kernel = [s for s, d in frames if d == KERNEL]
        if any(s in ('finish_task_switch.isra.0', 'finish_task_switch', '__schedule', 'schedule') for s in kernel):
            return 'ctxsw'
        return 'kernel'
    if frames and MALLOC.match(frames[0][0]):
        return 'malloc'
    return 'user'


def main():
    data = list(samples(sys.argv[1]))
    total = sum(p for _, p, _ in data) or 1
    by_tid = collections.Counter()
    for tid, p, _ in data:
        by_tid[tid] += p
    io_tid = by_tid.most_common(1)[0][0]
    rows = collections.defaultdict(collections.Counter)
    for tid, p, frames in data:
        c = component(frames, tid, io_tid)
        rows[c][kind(frames)] += p
        rows[c]['all'] += p
    columns = ['all', 'user', 'malloc', 'kernel', 'ctxsw']
    print(f'{len(data)} samples, event-loop thread {io_tid} ({100 * by_tid[io_tid] / total:.1f} %)')
    print('| component | all | user space | malloc/free | kernel | context switches |')
    print('|---|---|---|---|---|---|')
    sums = collections.Counter()
    for name, counts in sorted(rows.items(), key=lambda kv: -kv[1]['all']):
        print(f'| {name} | ' + ' | '.join(f'{100 * counts[c] / total:.1f} %' for c in columns) + ' |')
        for c in columns:
            sums[c] += counts[c]
    print('| total | ' + ' | '.join(f'{100 * sums[c] / total:.1f} %' for c in columns) + ' |')


if __name__ == '__main__':
    main()

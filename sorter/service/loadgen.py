"""Load generator for the scan-decision service: paced SCAN telegrams, answer latencies.

Each connection sends its share of ``rate`` scans/s on a schedule (open loop: a late
answer does not slow the sender down), several scans in one write when more than one is
due, and times every answer from the moment its telegram was written to the socket.
``rate=0`` sends as fast as the service answers, with at most ``window`` scans in
flight per connection (closed loop), to find the maximum.
"""
from __future__ import annotations

import asyncio
import csv
import io
import time

import numpy as np

__all__ = ["MAX_SCANS", "load_destinations", "run_load", "format_report", "scans_per_connection"]

_perf = time.perf_counter

#: Most scans a paced run (``rate * seconds``) may send: every scan keeps two float64
#: timings, so this bounds the run's memory (16 bytes a scan, 800 MB at most).
MAX_SCANS = 50_000_000
#: ``rate=0``: scans recorded over all connections (at most 2,000,000 per connection).
_MAX_SCANS_CLOSED = 20_000_000
#: Destinations drawn per connection; scan ``i`` sends draw ``i % _DRAW_BLOCK``.
_DRAW_BLOCK = 1 << 14


def scans_per_connection(rate, seconds, connections) -> int:
    """How many scans each connection may send (the size of its timing arrays).

    ``rate * seconds`` shared out for a paced run; for ``rate=0`` 2,000,000 per connection,
    at most 20,000,000 over all of them, so memory stays bounded whatever the options.
    """
    if rate > 0:
        return int(np.ceil(rate / connections * seconds))
    return max(1, min(2_000_000, _MAX_SCANS_CLOSED // connections))


def load_destinations(plan_csv) -> list:
    """Destination codes of a plan CSV (header ``destination,chutes``).

    Raises :class:`~sorter.errors.InputError` naming the file for a file that cannot be
    read, a bad header or no usable code (codes must fit a telegram: printable ASCII
    without ``|``, at most 64 characters; others are left out).
    """
    from sorter.errors import InputError

    from sorter.plan import first_data_row, read_input_bytes

    form = "a plan CSV with header destination,chutes"
    try:
        text = read_input_bytes(plan_csv, field="--plan", expected=form).decode("utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""))
        header = first_data_row(reader)     # '#' comment and blank lines skipped, as the plan's
        line = max(reader.line_num, 1)
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", path=plan_csv,
                         field="--plan", expected=form) from None
    if header is None or [h.strip() for h in header[:1]] != ["destination"]:
        raise InputError(f"bad header {header or ''!r}", path=plan_csv, line=line,
                         field="header", expected=form)
    # (a '# ...' comment row was sent as a destination code)
    codes = [r[0].strip() for r in rows if r and r[0].strip() and not r[0].lstrip().startswith("#")]
    codes = [c for c in codes if len(c) <= 64 and c.isascii() and c.isprintable() and "|" not in c]
    if not codes:
        raise InputError("no destination codes", path=plan_csv, field="destination", expected=form)
    return codes


def _seq(text, n):
    """The index of an answer's seq field if it names one of ``n`` telegrams, else None."""
    if text.isdigit() and len(text) < 19:
        i = int(text)
        if i < n:
            return i
    return None


class _Client(asyncio.Protocol):
    def __init__(self, n):
        self.send_t = np.zeros(n, dtype=np.float64)
        self.lat = np.full(n, np.nan, dtype=np.float64)
        self.answered = 0
        self.late = 0
        self.errors = 0
        self.buf = b""
        self.transport = None
        self.progress = asyncio.Event()
        self.closed = asyncio.get_running_loop().create_future()
        self.closed_by_service = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        t = _perf()
        if self.buf:
            data = self.buf + data
        lines = data.split(b"\n")
        self.buf = lines.pop()
        lat = self.lat
        send_t = self.send_t
        n = len(lat)
        for line in lines:
            f = line.split(b"|")
            # an echo server's answer (the SCAN line itself) counts too, so the same run
            # against a raw asyncio echo server gives the baseline round trip
            if (f[0] == b"DEST" and len(f) == 5) or (f[0] == b"SCAN" and len(f) == 6):
                i = _seq(f[1], n)
                if i is None:
                    self.errors += 1
                    continue
                lat[i] = t - send_t[i]
                if f[-1] == b"late":
                    self.late += 1
            else:
                self.errors += 1
                if f[0] != b"ERR" or len(f) < 4 or _seq(f[1], n) is None:
                    continue          # not an answer to a telegram of ours (a wrong port?)
            self.answered += 1
        self.progress.set()

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(exc)
        self.progress.set()


async def _one_connection(host, port, c, n, rate_c, seconds, codes, tag, window, t0):
    loop = asyncio.get_running_loop()
    _, cl = await loop.create_connection(lambda: _Client(n), host, port)
    dest = codes
    nd = len(dest)
    sent = 0
    write = cl.transport.write
    send_t = cl.send_t
    prefix = f"{tag}{c}-"
    # nothing before the common start: int() of the negative (now - t0) * rate rounded up
    # to 0, so the first scan left before t0 and fell out of the figures (a one-scan run
    # reported no latency and 1,000,000,000 scans/s)
    wait = t0 - _perf()
    if wait > 0:
        await asyncio.sleep(wait)
    while _perf() < t0:                 # (a timer may fire a hair early)
        await asyncio.sleep(0)
    if rate_c > 0:
        while sent < n and not cl.closed.done():
            now = _perf()
            due = min(n, int((now - t0) * rate_c) + 1)
            if due > sent:
                write("".join([f"SCAN|{i}|{prefix}{i}|{dest[i % nd]}|0|1\n" for i in range(sent, due)])
                      .encode())
                send_t[sent:due] = now
                sent = due
            wait = t0 + sent / rate_c - _perf()
            await asyncio.sleep(wait if wait > 0 else 0)
    else:
        t_end = t0 + seconds
        while sent < n and not cl.closed.done():
            now = _perf()
            if now >= t_end:
                break
            upto = min(n, cl.answered + window)
            if upto > sent:
                write("".join([f"SCAN|{i}|{prefix}{i}|{dest[i % nd]}|0|1\n" for i in range(sent, upto)])
                      .encode())
                send_t[sent:upto] = now
                sent = upto
            cl.progress.clear()
            # no later than the end of the run: a service that stops answering (stalled,
            # stopped with SIGSTOP, or not the service at all) hung the run for ever
            try:
                await asyncio.wait_for(cl.progress.wait(), max(t_end - _perf(), 0.0))
            except asyncio.TimeoutError:
                pass
    # collect the remaining answers (give up 5 s after the last send)
    t_give_up = _perf() + 5.0
    while cl.answered < sent and _perf() < t_give_up and not cl.closed.done():
        cl.progress.clear()
        try:
            await asyncio.wait_for(cl.progress.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
    cl.closed_by_service = cl.closed.done()   # before our close: the run was cut short
    cl.transport.close()
    return cl, sent


def run_load(host="127.0.0.1", port=7070, *, rate=1000.0, seconds=5.0, connections=1,
             destinations=None, seed=0, no_read=0.005, window=256, warmup=0.0) -> dict:
    """Drive a running service; returns throughput and latency figures.

    Parameters
    ----------
    rate : float
        Scans per second over all connections; 0 = as fast as the service answers.
    seconds : float
        How long to send.
    connections : int
        Parallel connections (each one client).
    destinations : list of str, optional
        Destination codes to draw from (default: the demo plan's).
    seed : int
        Seeds the destination draw (``numpy.random.default_rng``).
    no_read : float
        Share of scans sent with an empty destination.
    window : int
        ``rate=0``: scans in flight per connection.
    warmup : float
        Seconds at the start left out of the latency figures.

    Returns
    -------
    dict
        ``sent``, ``answered``, ``elapsed_s``, ``scans_per_s``, ``p50_us``, ``p99_us``,
        ``p999_us``, ``max_us``, ``late``, ``errors``, ``unanswered``,
        ``closed_by_service`` (connections the service closed before the run ended: it was
        cut short), plus the arguments.
    """
    if rate < 0 or seconds <= 0 or connections < 1 or window < 1:
        raise ValueError("rate must be >= 0, seconds > 0, connections >= 1, window >= 1")
    if rate * seconds > MAX_SCANS:
        raise ValueError(f"rate x seconds = {rate * seconds:,.0f} scans; at most {MAX_SCANS:,}")
    if destinations is None:
        from sorter.resources import seed_path
        destinations = load_destinations(seed_path("plan/demo_plan.csv"))
    rng = np.random.default_rng(seed)
    codes = np.array(list(destinations) + [""], dtype=object)
    rate_c = rate / connections
    n = scans_per_connection(rate, seconds, connections)
    nd = min(n, _DRAW_BLOCK)          # drawn once, used in turn: memory does not grow with n
    picks = rng.integers(0, len(codes) - 1, size=(connections, nd))
    picks[rng.random((connections, nd)) < no_read] = len(codes) - 1
    tag = np.base_repr(time.time_ns() // 1000, 36)     # distinct parcel ids per run

    async def main():
        t0 = _perf() + 0.05
        tasks = [_one_connection(host, port, c, n, rate_c, seconds, codes[picks[c]], tag,
                                 window, t0) for c in range(connections)]
        res = await asyncio.gather(*tasks)
        return res, t0

    res, t0 = asyncio.run(main())
    sent = sum(s for _, s in res)
    answered = sum(cl.answered for cl, _ in res)
    t_last = max((np.nanmax(cl.send_t[:s] + np.nan_to_num(cl.lat[:s])) for cl, s in res if s),
                 default=t0)
    elapsed = max(t_last - t0, 1e-9)
    lats = []
    for cl, s in res:
        keep = cl.send_t[:s] >= t0 + warmup
        lats.append(cl.lat[:s][keep])
    lat = np.concatenate(lats) if lats else np.empty(0)
    lat = lat[~np.isnan(lat)] * 1e6
    # no answer timed: None (JSON null), not NaN, which `--json` would print and JSON does not allow
    q = ([round(float(x), 1) for x in np.percentile(lat, [50, 99, 99.9])] if lat.size
         else [None] * 3)
    return {
        "rate": rate, "seconds": seconds, "connections": connections,
        "sent": int(sent), "answered": int(answered), "elapsed_s": round(float(elapsed), 3),
        "scans_per_s": round(answered / elapsed, 1),
        "p50_us": q[0], "p99_us": q[1],
        "p999_us": q[2], "max_us": round(float(lat.max()), 1) if lat.size else None,
        "late": int(sum(cl.late for cl, _ in res)), "errors": int(sum(cl.errors for cl, _ in res)),
        "unanswered": int(sent - answered),
        "closed_by_service": int(sum(cl.closed_by_service for cl, _ in res)),
    }


def format_report(r) -> str:
    """One line of figures."""
    target = "max" if not r["rate"] else f"{r['rate']:g}/s"

    def us(x):
        return "-" if x is None else f"{x:.0f}"
    return (f"target {target:>10}  conns {r['connections']}  sent {r['sent']}  answered {r['answered']}"
            f"  -> {r['scans_per_s']:,.0f} scans/s  latency p50 {us(r['p50_us'])} us  "
            f"p99 {us(r['p99_us'])} us  p99.9 {us(r['p999_us'])} us  max {us(r['max_us'])} us  "
            f"late {r['late']}  errors {r['errors']}  unanswered {r['unanswered']}"
            + (f"  CUT SHORT: the service closed {r['closed_by_service']} connection(s)"
               if r.get("closed_by_service") else ""))

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

__all__ = ["load_destinations", "run_load", "format_report"]

_perf = time.perf_counter


def load_destinations(plan_csv) -> list:
    """Destination codes of a plan CSV (header ``destination,chutes``).

    Raises :class:`~sorter.errors.InputError` naming the file for a file that cannot be
    read, a bad header or no usable code (codes must fit a telegram: printable ASCII
    without ``|``, at most 64 characters; others are left out).
    """
    from sorter.errors import InputError

    from sorter.plan import read_input_bytes

    form = "a plan CSV with header destination,chutes"
    try:
        text = read_input_bytes(plan_csv, field="--plan", expected=form).decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", path=plan_csv,
                         field="--plan", expected=form) from None
    if not rows or [h.strip() for h in rows[0][:1]] != ["destination"]:
        raise InputError(f"bad header {rows[0] if rows else ''!r}", path=plan_csv, line=1,
                         field="header", expected=form)
    codes = [r[0].strip() for r in rows[1:] if r and r[0].strip()]
    codes = [c for c in codes if len(c) <= 64 and c.isascii() and c.isprintable() and "|" not in c]
    if not codes:
        raise InputError("no destination codes", path=plan_csv, field="destination", expected=form)
    return codes


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
        for line in lines:
            f = line.split(b"|")
            # an echo server's answer (the SCAN line itself) counts too, so the same run
            # against a raw asyncio echo server gives the baseline round trip
            if (f[0] == b"DEST" and len(f) == 5) or (f[0] == b"SCAN" and len(f) == 6):
                i = int(f[1])
                lat[i] = t - send_t[i]
                if f[-1] == b"late":
                    self.late += 1
            else:
                self.errors += 1
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
    sent = 0
    write = cl.transport.write
    send_t = cl.send_t
    prefix = f"{tag}{c}-"
    if rate_c > 0:
        while sent < n and not cl.closed.done():
            now = _perf()
            due = min(n, int((now - t0) * rate_c) + 1)
            if due > sent:
                write("".join([f"SCAN|{i}|{prefix}{i}|{dest[i]}|0|1\n" for i in range(sent, due)])
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
                write("".join([f"SCAN|{i}|{prefix}{i}|{dest[i]}|0|1\n" for i in range(sent, upto)])
                      .encode())
                send_t[sent:upto] = now
                sent = upto
            cl.progress.clear()
            await cl.progress.wait()
    # collect the remaining answers (give up 5 s after the last send)
    t_give_up = _perf() + 5.0
    while cl.answered < sent and _perf() < t_give_up and not cl.closed.done():
        cl.progress.clear()
        try:
            await asyncio.wait_for(cl.progress.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
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
        ``p999_us``, ``max_us``, ``late``, ``errors``, plus the arguments.
    """
    if rate < 0 or seconds <= 0 or connections < 1 or window < 1:
        raise ValueError("rate must be >= 0, seconds > 0, connections >= 1, window >= 1")
    if destinations is None:
        from sorter.resources import seed_path
        destinations = load_destinations(seed_path("plan/demo_plan.csv"))
    rng = np.random.default_rng(seed)
    codes = np.array(list(destinations) + [""], dtype=object)
    rate_c = rate / connections
    n = int(np.ceil(rate_c * seconds)) if rate > 0 else 2_000_000
    picks = rng.integers(0, len(codes) - 1, size=(connections, n))
    picks[rng.random((connections, n)) < no_read] = len(codes) - 1
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
    q = (np.percentile(lat, [50, 99, 99.9]) if lat.size else [np.nan] * 3)
    return {
        "rate": rate, "seconds": seconds, "connections": connections,
        "sent": int(sent), "answered": int(answered), "elapsed_s": round(float(elapsed), 3),
        "scans_per_s": round(answered / elapsed, 1),
        "p50_us": round(float(q[0]), 1), "p99_us": round(float(q[1]), 1),
        "p999_us": round(float(q[2]), 1), "max_us": round(float(lat.max()), 1) if lat.size else None,
        "late": int(sum(cl.late for cl, _ in res)), "errors": int(sum(cl.errors for cl, _ in res)),
        "unanswered": int(sent - answered),
    }


def format_report(r) -> str:
    """One line of figures."""
    target = "max" if not r["rate"] else f"{r['rate']:g}/s"
    return (f"target {target:>10}  conns {r['connections']}  sent {r['sent']}  answered {r['answered']}"
            f"  -> {r['scans_per_s']:,.0f} scans/s  latency p50 {r['p50_us']:.0f} us  "
            f"p99 {r['p99_us']:.0f} us  p99.9 {r['p999_us']:.0f} us  max {r['max_us']} us  "
            f"late {r['late']}  errors {r['errors']}  unanswered {r['unanswered']}")

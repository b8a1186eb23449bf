"""Scan-decision service speed, each against a baseline measured in the same run.

    pytest bench/bench_service.py --benchmark-only

* group ``telegram``: handling 1,000 SCAN telegrams in one read through
  :meth:`Service.feed` (dedupe lookup, parse and validate, deadline check, compiled
  ``assign``, format, journal append, one write) against a naive handler (``str.split``,
  the plain-Python oracle ``tests/naive.py`` for the decision, an f-string) that does no
  validation, no dedupe and no journalling; plus the parser alone against a plain
  ``str.split`` parser building the same ``Scan`` tuples without any check.
* group ``roundtrip``: one SCAN -> DEST round trip over loopback to a `sorter serve`
  subprocess (batch journal) against the same round trip to a raw asyncio echo server
  (the floor set by the kernel, the event loop and the client).

As a script, the raw asyncio echo server alone (the baseline of the load figures: point
``sorter loadgen --port PORT`` at it)::

    python bench/bench_service.py echo [PORT]     # PORT 0 or none: any free port, printed
"""
from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import DISABLED, record, timing
from naive import NaiveSorter
from sorter import Sorter
from sorter.resources import seed_path
from sorter.service.protocol import Scan, parse_line
from sorter.service.server import Connection, Service
from service_fakes import ListJournal as _ListJournal

PLAN = seed_path("plan/demo_plan.csv")
CHUTES = seed_path("plan/demo_chutes.toml")
N = 1000
RESULTS: dict = {}


class _Transport:
    def __init__(self):
        self.n = 0

    def write(self, data):
        self.n += len(data)

    def is_closing(self):
        return False


def _lines(seed=1):
    s = Sorter.from_files(PLAN, CHUTES)
    dests = list(s.sort_plan.routes)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(dests), size=N)
    return s, [f"SCAN|{i}|P{i:07d}|{dests[k]}|0|1\n".encode() for i, k in enumerate(pick)]


def _per_telegram(benchmark, name):
    """Keep the median per telegram under ``name``; None under --benchmark-disable."""
    med = timing(benchmark)
    RESULTS[name] = None if med is None else med / N
    if med is not None:
        benchmark.extra_info["per_telegram_us"] = RESULTS[name] * 1e6
    return RESULTS[name]


def _ratio(a, b):
    ra, rb = RESULTS.get(a), RESULTS.get(b)
    return f"x{rb / ra:.2f}" if ra and rb else "n/a"


def _record_pair(title, ours, base, base_name, unit_note, verdict):
    """Record ``ours`` against its same-run baseline ``base`` (per telegram), or DISABLED when
    either was not timed (--benchmark-disable); ``verdict`` takes the ratio."""
    if RESULTS.get(base) is None or RESULTS.get(ours, 0) is None:
        record(title, DISABLED)
        return
    record(title, f"{RESULTS.get(ours, float('nan')) * 1e6:.2f} us vs {base_name}"
                  f"{RESULTS[base] * 1e6:.2f} us{unit_note}: " + verdict.format(_ratio(ours, base)))


@pytest.mark.benchmark(group="telegram")
def test_telegram_service_feed(benchmark):
    s, lines = _lines()
    state = s.state_dict()
    seq = [0]

    def setup():
        # fresh parcels every round so nothing is answered from the dedupe table
        seq[0] += 1
        tag = f"R{seq[0]}-".encode()
        data = b"".join(l.replace(b"|P", b"|" + tag, 1) for l in lines)
        svc = Service(Sorter.from_state(state), journal=_ListJournal(), deadline_ms=60_000,
                      snapshot_every=10 ** 9)
        conn = Connection(svc)
        conn.connection_made(_Transport())
        return (svc, conn, data), {}

    benchmark.pedantic(lambda svc, conn, data: svc.feed(conn, data), setup=setup, rounds=200)
    _per_telegram(benchmark, "service")


@pytest.mark.benchmark(group="telegram")
def test_telegram_naive_split_dict(benchmark):
    """Baseline: split, plain-Python decision, f-string; no validation, dedupe or journal."""
    s, lines = _lines()
    plan = s.sort_plan
    ref = NaiveSorter(plan.routes, {c.id: (c.kind, c.capacity) for c in s.chute_table},
                      plan.reject, plan.overflow, plan.strategy, plan.max_recirculation)
    data = b"".join(lines)

    def naive():
        out = []
        for line in data.split(b"\n")[:-1]:
            f = line.decode().split("|")
            d = ref.assign(f[3] or None, int(f[4] or 0), f[5] != "0")
            out.append(f"DEST|{f[1]}|{f[2]}|{d[0]}|{d[1]}\n")
        return "".join(out).encode()

    benchmark.pedantic(naive, rounds=200)
    _per_telegram(benchmark, "naive")
    _record_pair("service: handling one SCAN telegram (Service.feed, 1,000 per read)",
                 "service", "naive", "naive split/dict ", "", "service is {} the naive speed")


@pytest.mark.benchmark(group="telegram")
def test_telegram_parse_only(benchmark):
    _, lines = _lines()
    stripped = [l[:-1] for l in lines]
    benchmark(lambda: [parse_line(l) for l in stripped])
    if _per_telegram(benchmark, "parse") is None:
        record("service: parse_line alone", DISABLED)
        return
    record("service: parse_line alone", f"{RESULTS['parse'] * 1e6:.2f} us per telegram")


@pytest.mark.benchmark(group="telegram")
def test_telegram_parse_split_baseline(benchmark):
    """Baseline of the parser alone: ``str.split`` into the same ``Scan`` tuples (same lines),
    no checks at all (length, ASCII, field count, numbers, names)."""
    _, lines = _lines()
    stripped = [l[:-1] for l in lines]

    def split(line):
        f = line.decode().split("|")
        return Scan(int(f[1]), f[2], f[3] or None, int(f[4]), f[5] != "0")

    assert [split(l) for l in stripped] == [parse_line(l) for l in stripped]
    benchmark(lambda: [split(l) for l in stripped])
    _per_telegram(benchmark, "split")
    _record_pair("service: parse_line vs str.split", "parse", "split", "", " per telegram",
                 "parse_line is {} the str.split speed")


# -- round trips ------------------------------------------------------------------------------
_ECHO = r"""
import asyncio, sys
class Echo(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d): self.t.write(d)
async def main():
    srv = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
    print("listening on 127.0.0.1:%d," % srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def _spawn(args, tmp):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp)
    line = p.stdout.readline()
    port = int(line.split("listening on ")[1].split(",")[0].rsplit(":", 1)[1])
    return p, port


def _roundtrip(benchmark, port, name):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    i = [0]

    def once():
        i[0] += 1
        sock.sendall(b"SCAN|%d|RT%d|01422|0|1\n" % (i[0], i[0]))
        buf = sock.recv(4096)
        while not buf.endswith(b"\n"):
            buf += sock.recv(4096)

    for _ in range(200):
        once()
    benchmark.pedantic(once, rounds=5000, warmup_rounds=100)
    RESULTS[name] = timing(benchmark)                 # None under --benchmark-disable
    if RESULTS[name] is not None:
        benchmark.extra_info["median_us"] = RESULTS[name] * 1e6
    sock.close()


@pytest.mark.benchmark(group="roundtrip")
def test_roundtrip_raw_asyncio_echo(benchmark, tmp_path):
    p, port = _spawn([sys.executable, "-c", _ECHO], tmp_path)
    try:
        _roundtrip(benchmark, port, "echo")
    finally:
        p.terminate()
        p.wait(30)


@pytest.mark.benchmark(group="roundtrip")
def test_roundtrip_sorter_serve(benchmark, tmp_path):
    args = [sys.executable, "-c", "import sys; from sorter.cli import main; sys.exit(main())",
            "serve", "--plan", str(PLAN), "--chutes", str(CHUTES), "--port", "0",
            "--journal", str(tmp_path / "b.db")]
    p, port = _spawn(args, tmp_path)
    try:
        _roundtrip(benchmark, port, "serve")
    finally:
        p.terminate()
        p.wait(30)
    if RESULTS["serve"] is None or RESULTS.get("echo", 0) is None:
        record("service: SCAN->DEST round trip over loopback (median)", DISABLED)
        return
    record("service: SCAN->DEST round trip over loopback (median)",
           f"sorter serve {RESULTS['serve'] * 1e6:.0f} us vs raw asyncio echo "
           f"{RESULTS.get('echo', float('nan')) * 1e6:.0f} us: the service adds "
           f"{(RESULTS['serve'] - RESULTS.get('echo', float('nan'))) * 1e6:.0f} us")


if __name__ == "__main__":
    if sys.argv[1:2] != ["echo"] or len(sys.argv) > 3:     # used to exit 0 silently
        sys.exit(__doc__)
    port = sys.argv[2] if len(sys.argv) > 2 else "0"
    exec(_ECHO.replace('"127.0.0.1", 0)', f'"127.0.0.1", {int(port)})'))

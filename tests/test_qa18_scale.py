"""QA round 18 (`scale`): costs of the service that grow with history or size.

Behaviour, not timing: which work a snapshot repeats, that the export goes in batches, that
the per-client tables stay bounded over many scans.
"""
from __future__ import annotations

import json

import pytest

from sorter import Sorter
from sorter.resources import seed_path
from sorter.service.server import Connection, Service, open_service
from service_fakes import FakeTransport, ListJournal

PLAN = seed_path("plan/demo_plan.csv")
WAVE2 = seed_path("plan/demo_plan_wave2.csv")
CHUTES = seed_path("plan/demo_chutes.toml")


class _SnapJournal(ListJournal):
    """A journal stand-in that keeps the snapshots as queued."""

    def __init__(self):
        super().__init__()
        self.snaps = []

    def append_snapshot(self, upto, state):
        self.snaps.append(state)


def _counting_state_dict(monkeypatch):
    calls = []
    real = Sorter.state_dict

    def counted(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(Sorter, "state_dict", counted)
    return calls, real


def test_a_snapshot_encodes_the_plan_once_per_plan_in_force(monkeypatch):
    """Was: every snapshot (each --snapshot-every rows) rebuilt Sorter.state_dict() on the
    event loop and JSON-encoded it (plan, destinations and all) under the GIL: with a
    100,000-destination plan each snapshot stalled every client ~0.35 s (answers 300-400 ms
    late at the PLC), ~4.7 s at 1,000,000 destinations. The plan part is now encoded once
    per plan in force; the snapshot text stays exactly json.dumps(state_dict())."""
    eng = Sorter.from_files(PLAN, CHUTES, strategy="round_robin")
    jr = _SnapJournal()
    svc = Service(eng, journal=jr, snapshot_every=10 ** 6)
    calls, real = _counting_state_dict(monkeypatch)
    codes = list(eng.sort_plan.routes)
    want = []
    for k in range(5):
        for d in codes[k * 7:k * 7 + 20]:
            eng.assign(d)                       # round-robin cursors and fill move
        eng.set_state("C00%d" % (k + 1), "blocked")
        eng.discharged("C010")
        svc.snapshot()
        want.append(json.dumps(real(eng)))
    assert len(calls) == 1, "the plan was encoded again for a snapshot under the same plan"
    assert jr.snaps == want                     # the journal format is unchanged
    eng.switch_plan(WAVE2)                      # a new plan in force: encoded once more
    eng.assign(codes[0])
    svc.snapshot()
    svc.snapshot()
    assert jr.snaps[-1] == json.dumps(real(eng))
    assert len(calls) == 2
    eng.switch_plan({"NEW1": ["C001", "C002"], **{d: ["C003"] for d in codes[:5]}})
    eng.assign("NEW1")                          # a new code interned: destinations grow
    svc.snapshot()
    assert json.loads(jr.snaps[-1]) == real(eng)
    assert Sorter.from_state(json.loads(jr.snaps[-1])).state_dict() == real(eng)


def test_the_first_snapshot_after_a_plan_telegram_reuses_the_plans_json(monkeypatch):
    """Was: the first snapshot after a PLAN rebuilt and encoded the whole state on the event
    loop (4.3 s for a 1,000,000-destination plan, every client waiting), though the worker
    thread had just encoded the same plan for the journal row; it now reuses that text."""
    import concurrent.futures as cf

    from sorter.service.protocol import parse_line
    from sorter.service.server import _prepare_plan
    eng = Sorter.from_files(PLAN, CHUTES)
    jr = _SnapJournal()
    svc = Service(eng, journal=jr, snapshot_every=10 ** 6)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    svc.snapshot()
    calls, real = _counting_state_dict(monkeypatch)
    line = b"PLAN|4|" + str(WAVE2).encode()
    tg = parse_line(line)
    fut = cf.Future()
    fut.set_result(_prepare_plan(eng, tg.path))      # what the worker thread hands back
    svc._plan_read(conn, tg, line, 0.0, fut)
    assert conn.transport.lines() == ["ACK|4"]
    eng.assign(next(iter(eng.sort_plan.routes)))
    svc.snapshot()
    assert calls == [], "the first snapshot after the PLAN rebuilt the whole state"
    assert jr.snaps[-1] == json.dumps(real(eng))
    eng.set_state("C001", "blocked")
    svc.snapshot()                              # and the next ones encode no plan at all
    assert jr.snaps[-1] == json.dumps(real(eng))
    assert calls == []


def test_a_plans_json_is_encoded_in_chunks_to_the_same_text(monkeypatch):
    """Was: the PLAN worker encoded the new plan in one json.dumps call, which holds the GIL
    throughout: the event loop stood still ~2.4 s for a 1,000,000-destination plan while
    the docs promise other clients keep getting decisions. Now a chunk of routes per call,
    the text unchanged (older journals and newer ones hold the same plan JSON)."""
    import sorter.service.journal as jr
    plan = Sorter.from_files(PLAN, CHUTES).sort_plan
    whole = json.dumps({"name": plan.name, "strategy": plan.strategy,
                        "max_recirculation": int(plan.max_recirculation),
                        "overflow": list(plan.overflow), "reject": dict(plan.reject),
                        "routes": {d: list(r) for d, r in plan.routes.items()}})
    monkeypatch.setattr(jr, "_JSON_CHUNK", 50, raising=False)
    sizes = []
    real = json.dumps

    def dumps(obj, *a, **k):
        sizes.append(len(obj["routes"]) if "routes" in obj else len(obj))
        return real(obj, *a, **k)

    monkeypatch.setattr(jr.json, "dumps", dumps)
    text = jr._plan_to_json(plan)
    monkeypatch.setattr(jr.json, "dumps", real)
    assert text == whole
    assert len(plan.routes) > 200 and max(sizes) <= 50, sizes
    assert jr._plan_from_json(text).routes == plan.routes


def test_text_snapshots_restore_and_dict_snapshots_still_write(tmp_path):
    """The service queues snapshots as JSON text now; a restart restores from them, and a
    snapshot queued as a dict (older callers, the tests' journal builders) is still written."""
    from sorter.service.journal import Journal, restore
    path = tmp_path / "j.db"
    svc, _ = open_service(PLAN, CHUTES, journal=str(path), snapshot_every=7)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    lines = b"".join(b"SCAN|%d|P%d|%s|0|1\n" % (i, i, d.encode())
                     for i, d in enumerate(list(svc.engine.sort_plan.routes)[:30], 1))
    svc.feed(conn, lines + b"CHUTE|31|C001|full\nDISCHARGED|32|P1|C002\n")
    svc.snapshot()
    want = svc.engine.state_dict()
    svc.journal.close()
    r = restore(path)
    assert (r.snapshot_upto, r.replayed) == (32, 0)
    assert r.sorter.state_dict() == want
    j = Journal(path, "batch")
    j.append_snapshot(32, Sorter.from_files(PLAN, CHUTES).state_dict())
    assert j.close(30)
    assert restore(path).sorter.counters()["by_reason"]["ok"] == 0


def test_export_goes_in_batches_not_the_whole_journal(tmp_path, monkeypatch):
    """The export reads and writes the journal in chunks (constant memory: measured 113 MB
    CSV / 255 MB Parquet peak at 0.5, 1 and 2 million rows)."""
    pq = pytest.importorskip("pyarrow.parquet")
    import sorter.service.journal as jr
    path = tmp_path / "j.db"
    j = jr.Journal(path, "batch")
    for i in range(1, 24):
        j.append((i, 1.0 + i, "plc", i, "discharged", f"P{i}", None, None, None, "C001", None,
                  b"DISCHARGED|%d|P%d|C001" % (i, i), None))
    assert j.close(30)
    real = jr.read_records
    sizes = []

    def small(path, kinds=None, *, chunk=50_000):
        for rows in real(path, kinds, chunk=5):
            sizes.append(len(rows))
            yield rows

    monkeypatch.setattr(jr, "read_records", small)
    assert jr.export(path, tmp_path / "a.parquet") == 23
    assert sizes == [5, 5, 5, 5, 3]
    assert pq.ParquetFile(tmp_path / "a.parquet").metadata.num_row_groups == 5
    sizes.clear()
    assert jr.export(path, tmp_path / "a.csv") == 23
    assert sizes == [5, 5, 5, 5, 3]


def test_per_client_tables_stay_bounded_over_many_scans():
    """Many scans from a few clients: the replay tables hold at most --dedupe-window lines
    in all, whoever sent them, and the per-client state does not grow with the scans."""
    svc = Service(Sorter.from_files(PLAN, CHUTES), deadline_ms=60_000.0, dedupe_window=100)
    conns = []
    for name in (b"plc-a", b"plc-b", b"plc-c"):
        c = Connection(svc)
        c.connection_made(FakeTransport())
        svc.feed(c, b"HELLO|0|" + name + b"\n")
        conns.append(c)
    codes = [d.encode() for d in svc.engine.sort_plan.routes]
    for i in range(1, 3001):
        c = conns[i % 3]
        svc.feed(c, b"SCAN|%d|P%d|%s|0|1\n" % (i, i, codes[i % len(codes)]))
        if i % 500 == 0:
            svc.feed(c, b"CONTAINER|%d|C001\n" % (10 ** 6 + i))
    assert svc.n_scans == 3000
    assert len(svc._dd_order) == 100
    assert sum(len(a) for a, _ in svc._dedupe.values()) == 100
    assert sum(len(r) for _, r in svc._dedupe.values()) == 100
    assert set(svc._dedupe) == {"", "plc-a", "plc-b", "plc-c"}
    assert len(svc.last_seq) == 3
    # the newest lines are still replays, the oldest forgotten
    n = svc.n_replayed
    svc.feed(conns[2999 % 3], b"SCAN|2999|P2999|%s|0|1\n" % codes[2999 % len(codes)])
    assert svc.n_replayed == n + 1
    svc.feed(conns[1], b"SCAN|1|P1|%s|0|1\n" % codes[1])
    assert svc.n_replayed == n + 1 and svc.n_scans == 3001

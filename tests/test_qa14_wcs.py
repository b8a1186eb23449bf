"""QA session 14: a warehouse-control (WCS) integration engineer's view of the chute engine
and the scan-decision service, written from README.md, docs/service.md and the docstrings.

* ``WcsModel`` below is an independent plain-Python model of the documented decision rules
  (README "Rules, in order", the reject fallback order, the three strategies, discharges,
  container changes, plan switches); the compiled engine is compared with it decision by
  decision on long random days (hypothesis), with plan files of our own (CSV + TOML).
* ``assign_many`` batches must agree exactly with one-by-one ``assign``; ``state_dict`` /
  ``from_state`` restarts mid-wave continue identically.
* ``sorter serve`` is driven by a client written from docs/service.md alone: its answers
  equal the embedded engine's for the same sequence, and after ``kill -9`` nothing answered
  is lost (``--durability sync``).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sorter import Sorter
from sorter.constants import REASONS
from sorter.errors import InputError

REJECT_ORDER = ["no_read", "unknown_destination", "max_recirculation", "no_chute_available",
                "not_sortable", "late"]
STATE_NAMES = ["open", "full", "container_change", "blocked", "disabled"]


# --------------------------------------------------------------------------- the model
class WcsModel:
    """The documented rules, as a WCS engineer reads them (no code shared with the engine)."""

    def __init__(self, routes, chutes, reject, overflow, strategy, max_rc):
        self.routes = {d: list(r) for d, r in routes.items()}
        self.capacity = {c["id"]: c.get("capacity", 40) for c in chutes}
        self.reject = dict(reject)
        self.overflow = list(overflow)
        self.strategy = strategy
        self.max_rc = max_rc
        self.state = {c: "open" for c in self.capacity}
        self.fill = {c: 0 for c in self.capacity}
        self.last = {}             # round robin: destination -> position of the last chute taken

    def switch(self, routes):
        self.routes = {d: list(r) for d, r in routes.items()}
        self.last = {}             # "round-robin positions restart"

    def _reject(self, reason):
        own = self.reject[reason]
        if self.state[own] == "open":
            return own
        for r in REJECT_ORDER:
            if self.state[self.reject[r]] == "open":
                return self.reject[r]
        return own

    def _pick(self, dest):
        route = self.routes[dest]
        open_ = [i for i, c in enumerate(route) if self.state[c] == "open"]
        if not open_:
            return None
        if self.strategy == "fill_first":
            return route[open_[0]]
        if self.strategy == "least_loaded":
            return route[min(open_, key=lambda i: (self.fill[route[i]], i))]
        # round robin: the next open chute after the one taken last, in plan order, cyclic
        prev = self.last.get(dest, -1)
        after = [i for i in open_ if i > prev]
        i = after[0] if after else open_[0]
        self.last[dest] = i
        return route[i]

    def assign(self, dest, rc=0, sortable=True):
        if not sortable:
            reason = "not_sortable"
        elif dest is None or dest == "":
            reason = "no_read"
        elif rc > self.max_rc:
            reason = "max_recirculation"
        elif dest not in self.routes:
            reason = "unknown_destination"
        else:
            c = self._pick(dest)
            if c is not None:
                return c, "ok"
            for c in self.overflow:
                if self.state[c] == "open":
                    return c, "overflow"
            reason = "no_chute_available"
        return self._reject(reason), reason

    def discharged(self, c, n=1):
        self.fill[c] += n
        if self.fill[c] >= self.capacity[c] and self.state[c] == "open":
            self.state[c] = "full"

    def set_state(self, c, s):
        self.state[c] = s

    def container_changed(self, c):
        self.fill[c] = 0
        self.state[c] = "open"


# --------------------------------------------------------------------------- plan files
def write_files(tmp, routes, chutes, reject, overflow=(), strategy="fill_first", max_rc=3,
                name="wave-a", plan_name="plan.csv"):
    """A plan CSV and a chute TOML as the README describes them."""
    tmp = Path(tmp)
    lines = ["destination,chutes", "# a comment line"]
    lines += [f"{d},{';'.join(str(c) for c in r)}" for d, r in routes.items()]
    (tmp / plan_name).write_text("\n".join(lines) + "\n")
    q = lambda v: f'"{v}"' if isinstance(v, str) else str(v)   # noqa: E731
    toml = ["[plan]", f'name = "{name}"', f'strategy = "{strategy}"',
            f"max_recirculation = {max_rc}", "overflow = [" + ", ".join(q(c) for c in overflow) + "]",
            "", "[reject]"]
    toml += [f"{r} = {q(c)}" for r, c in reject.items()]
    for c in chutes:
        toml += ["", "[[chute]]", f"id = {q(c['id'])}"]
        if "kind" in c:
            toml.append(f'kind = "{c["kind"]}"')
        if "capacity" in c:
            toml.append(f"capacity = {c['capacity']}")
    (tmp / "chutes.toml").write_text("\n".join(toml) + "\n")
    return tmp / plan_name, tmp / "chutes.toml"


def random_setup(rng, strategy, n_dest=8, n_dest_chutes=10, n_over=2, n_rej=3, cap_hi=6):
    """Random chutes (small capacities so chutes fill), routes with alternates, rejects."""
    chutes = [{"id": f"D{i}", "capacity": int(rng.integers(1, cap_hi + 1))} for i in range(n_dest_chutes)]
    chutes += [{"id": f"O{i}", "kind": "overflow", "capacity": int(rng.integers(1, cap_hi + 1))}
               for i in range(n_over)]
    chutes += [{"id": f"R{i}", "kind": "reject", "capacity": int(rng.integers(2, 3 * cap_hi))}
               for i in range(n_rej)]
    order = rng.permutation(len(chutes))
    chutes = [chutes[i] for i in order]        # table order is not plan order
    dest_ids = [f"D{i}" for i in range(n_dest_chutes)]
    routes = {}
    for k in range(n_dest):
        m = int(rng.integers(1, 4))
        routes[f"{10000 + 7 * k:05d}"] = list(rng.choice(dest_ids, m, replace=False))
    reject = {r: f"R{int(rng.integers(0, n_rej))}" for r in REJECT_ORDER}
    overflow = [f"O{i}" for i in range(n_over)]
    return routes, chutes, reject, overflow


def random_day(rng, routes, chutes, n):
    """Scans and chute events, as a WCS sees them in a wave."""
    codes = list(routes) + ["99999", None, ""]
    ids = [c["id"] for c in chutes]
    ev = []
    for _ in range(n):
        u = rng.random()
        if u < 0.6:
            ev.append(("scan", codes[int(rng.integers(len(codes)))], int(rng.integers(0, 6)),
                       bool(rng.random() > 0.05)))
        elif u < 0.85:
            ev.append(("discharged", ids[int(rng.integers(len(ids)))], 1))
        elif u < 0.93:
            ev.append(("container", ids[int(rng.integers(len(ids)))]))
        else:
            ev.append(("state", ids[int(rng.integers(len(ids)))],
                       STATE_NAMES[int(rng.integers(len(STATE_NAMES)))]))
    return ev


def apply(engine, ev):
    k = ev[0]
    if k == "scan":
        return tuple(engine.assign(ev[1], ev[2], ev[3]))
    if k == "discharged":
        engine.discharged(ev[1], ev[2])
    elif k == "container":
        engine.container_changed(ev[1])
    elif k == "state":
        engine.set_state(ev[1], ev[2])
    return None


# --------------------------------------------------------------------------- 1. embedded
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), strategy=st.sampled_from(["fill_first", "round_robin",
                                                                    "least_loaded"]),
       max_rc=st.integers(0, 4))
def test_engine_matches_documented_rules_on_random_days(tmp_path_factory, seed, strategy, max_rc):
    rng = np.random.default_rng(seed)
    routes, chutes, reject, overflow = random_setup(rng, strategy)
    tmp = tmp_path_factory.mktemp("day")
    plan_csv, toml = write_files(tmp, routes, chutes, reject, overflow, strategy, max_rc)
    s = Sorter.from_files(plan_csv, toml)
    m = WcsModel(routes, chutes, reject, overflow, strategy, max_rc)
    for i, ev in enumerate(random_day(rng, routes, chutes, 400)):
        got, want = apply(s, ev), apply(m, ev)
        assert got == want, (i, ev)
        if ev[0] != "scan":
            assert s.chute_state(ev[1]) == m.state[ev[1]], (i, ev)
            assert s.chute_fill(ev[1]) == m.fill[ev[1]], (i, ev)
    # a plan switch between waves: routes change, states and fill carry over
    routes2, _, _, _ = random_setup(rng, strategy)
    plan2 = tmp / "wave2.csv"
    plan2.write_text("destination,chutes\n" + "".join(
        f"{d},{';'.join(r)}\n" for d, r in routes2.items()))
    s.switch_plan(s.prepare_plan(plan2))
    m.switch(routes2)
    assert s.plan_name == "wave2"
    for i, ev in enumerate(random_day(rng, routes2, chutes, 300)):
        assert apply(s, ev) == apply(m, ev), ("wave2", i, ev)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), strategy=st.sampled_from(["fill_first", "round_robin",
                                                                    "least_loaded"]),
       via=st.sampled_from(["json", "pickle", "dict"]))
def test_restart_mid_wave_continues_identically(tmp_path_factory, seed, strategy, via):
    """state_dict / from_state (through JSON, pickle or as is) at a random point of a day with
    int chute labels: the restarted engine decides exactly as the documented rules."""
    import pickle
    rng = np.random.default_rng(seed)
    routes, chutes, reject, overflow = random_setup(rng, strategy)
    ren = {c["id"]: 100 + i for i, c in enumerate(chutes)}       # integer chute ids
    chutes = [dict(c, id=ren[c["id"]]) for c in chutes]
    routes = {d: [ren[c] for c in r] for d, r in routes.items()}
    reject = {k: ren[v] for k, v in reject.items()}
    overflow = [ren[c] for c in overflow]
    p, t = write_files(tmp_path_factory.mktemp("restart"), routes, chutes, reject, overflow,
                       strategy, 2)
    s = Sorter.from_files(p, t)
    m = WcsModel(routes, chutes, reject, overflow, strategy, 2)
    day = random_day(rng, routes, chutes, 500)
    cuts = set(rng.integers(0, 500, 3).tolist())
    for i, ev in enumerate(day):
        if i in cuts:
            state = s.state_dict()
            s = (Sorter.from_state(json.loads(json.dumps(state))) if via == "json"
                 else pickle.loads(pickle.dumps(s)) if via == "pickle" else Sorter.from_state(state))
            assert s.state_dict() == state
        assert apply(s, ev) == apply(m, ev), (i, ev)


def _odd_values():
    return st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30), st.binary(max_size=30), st.text(min_size=5000, max_size=6000),
        st.sampled_from([np.int64(-5), np.uint64(2**64 - 1), np.float32("nan"), np.int8(7),
                         np.float64("inf"), np.str_("01422"), np.bytes_(b"0"), np.bool_(False),
                         np.array([1, 2]), np.array(3), [1], {"a": 1}, object(), 1 + 2j,
                         bytearray(b"no"), "9" * 5000, "Ⅻ", "٣", " 0 ", "FALSE", "inf"]),
        st.lists(st.integers(), max_size=3))


_PAIR = []


def _odd_pair():
    """Two engines kept in step (one decides one by one, the other in batches of one)."""
    if not _PAIR:
        from sorter.resources import seed_path
        a = Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"),
                              strategy="round_robin")
        _PAIR.extend([a, Sorter.from_state(a.state_dict())])
    return _PAIR


@settings(max_examples=300, deadline=None)
@given(dest=_odd_values(), rc=_odd_values(), sortable=_odd_values())
def test_assign_never_raises_and_batch_agrees(dest, rc, sortable):
    """Whatever it is handed, assign answers a chute of the table and a documented reason;
    assign_many on the same (interned) parcel gives the same decision."""
    a, b = _odd_pair()
    d = a.assign(dest, rc, sortable)
    assert d.chute in a.chute_ids and d.reason in REASONS
    try:
        ids = b.destination_ids([dest])
    except (TypeError, ValueError):              # not a code at all (bytes, a 2-D array)
        assert tuple(b.assign(dest, rc, sortable)) == tuple(d)     # (keeps the pair in step)
        return
    sv = np.empty(1, dtype=object)
    sv[0] = sortable
    rv = np.empty(1, dtype=object)
    rv[0] = rc
    ch, rs = b.assign_many(ids, rv, sv)
    assert (b.chute_ids[ch[0]], REASONS[rs[0]]) == tuple(d)
    assert a.counters()["by_reason"] == b.counters()["by_reason"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), strategy=st.sampled_from(["fill_first", "round_robin",
                                                                    "least_loaded"]))
def test_assign_many_batches_equal_one_by_one(tmp_path_factory, seed, strategy):
    """Batches of interned ids between chute events decide exactly as one-by-one assign calls,
    also across a plan switch (ids interned before it stay valid) and a restart."""
    rng = np.random.default_rng(seed)
    routes, chutes, reject, overflow = random_setup(rng, strategy)
    p, t = write_files(tmp_path_factory.mktemp("batch"), routes, chutes, reject, overflow,
                       strategy, 2)
    one, many = Sorter.from_files(p, t), Sorter.from_files(p, t)
    codes = list(routes) + ["99999", None, ""]
    ids = many.destination_ids(codes)
    for step in range(30):
        if step == 15:                           # a new wave: half the routes change
            new = dict(list(routes.items())[::2])
            new["77777"] = routes[next(iter(routes))]
            one.switch_plan(new)
            many.switch_plan(many.prepare_plan(new))
            codes.append("77777")
            ids = np.concatenate([ids, many.destination_ids(["77777"])])
        if step == 20:
            many = Sorter.from_state(json.loads(json.dumps(many.state_dict())))
        n = int(rng.integers(0, 40))
        pick = rng.integers(0, len(codes), n)
        rc = rng.integers(0, 5, n)
        so = rng.random(n) > 0.1
        ch, rs = many.assign_many(ids[pick], rc, so)
        got = [(many.chute_ids[c], REASONS[r]) for c, r in zip(ch, rs)]
        want = [tuple(one.assign(codes[k], int(r), bool(s))) for k, r, s in zip(pick, rc, so)]
        assert got == want, step
        for ev in random_day(rng, routes, chutes, 10):
            if ev[0] != "scan":
                apply(one, ev), apply(many, ev)
    assert one.counters() == many.counters()


# --------------------------------------------------------------------------- 2. service
class LineClient:
    """A WCS-side client written from docs/service.md: one line out, one line back."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def send(self, text):
        self.s.sendall(text.encode() if isinstance(text, str) else text)

    def line(self):
        while b"\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                return None
            self.buf += data
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.decode("ascii")

    def ask(self, text):
        self.send(text + "\n")
        return self.line()

    def close(self):
        self.s.close()


def serve(args, cwd):
    """``sorter serve --port 0 ...`` in a subprocess; returns (process, port)."""
    proc = subprocess.Popen([sys.executable, "-m", "sorter", "serve", "--port", "0", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    if "listening on" not in first:
        proc.kill()
        pytest.fail(first + proc.stderr.read())
    return proc, int(first.split("listening on ")[1].split(",")[0].rsplit(":", 1)[1])


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    return err


def telegram(seq, ev):
    if ev[0] == "scan":
        dest = "" if ev[1] is None else f" {ev[1]}  "       # fixed-width padding is dropped
        return f"SCAN|{seq:03d}|P{seq}|{dest}|{ev[2]}|{1 if ev[3] else 0}"
    if ev[0] == "discharged":
        return f"DISCHARGED|{seq:03d}|P{seq}|{ev[1]}"
    if ev[0] == "container":
        return f"CONTAINER|{seq:03d}|{ev[1]}"
    return f"CHUTE|{seq:03d}|{ev[1]} |{ev[2]}"


def test_service_answers_as_the_engine_and_loses_nothing_answered_on_kill9(tmp_path):
    """One PLC, a day of scans and chute events with a plan switch in the middle (sync
    journal, frequent snapshots): the answers are the embedded engine's, ``kill -9`` loses no
    answered telegram, re-sent ones keep their answers, the export holds every decision."""
    rng = np.random.default_rng(14)
    routes, chutes, reject, overflow = random_setup(rng, "round_robin")
    plan, toml = write_files(tmp_path, routes, chutes, reject, overflow, "round_robin", 2)
    routes2 = dict(list(routes.items())[1:])
    routes2["55555"] = [c["id"] for c in chutes if c.get("kind") is None][:2]
    (tmp_path / "wave2.csv").write_text("destination,chutes\n" + "".join(
        f"{d},{';'.join(r)}\n" for d, r in routes2.items()))
    day = random_day(rng, routes, chutes, 700)
    lines, want = [], []
    ref = Sorter.from_files(plan, toml)
    for i, ev in enumerate(day, start=1):
        if i == 350:
            lines.append(f"PLAN|{i:03d}|wave2.csv")
            ref.switch_plan(tmp_path / "wave2.csv")
            want.append(f"ACK|{i:03d}")
            continue
        lines.append(telegram(i, ev))
        d = apply(ref, ev)
        want.append(f"DEST|{i:03d}|P{i}|{d[0]}|{d[1]}" if d else f"ACK|{i:03d}")
    args = ["--plan", str(plan), "--chutes", str(toml), "--journal", "j.db", "--durability",
            "sync", "--snapshot-every", "37", "--deadline-ms", "60000"]
    proc, port = serve(args, tmp_path)
    c = LineClient(port)
    assert c.ask("HELLO|0|plc-north") == "HELLO|0|plc-north|-"
    c.send("".join(ln + "\n" for ln in lines[:500]))
    got = [c.line() for _ in range(450)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    while (ln := c.line()) is not None:          # whatever left before the kill
        got.append(ln)
    c.close()
    assert got == want[:len(got)]
    proc, port = serve(args, tmp_path)           # --plan/--chutes ignored: the journal wins
    c = LineClient(port)
    last = c.ask("HELLO|0|plc-north").split("|")[-1]
    assert int(last) >= len(got)                 # sync: every answered telegram is held
    c.send("".join(ln + "\n" for ln in lines[int(last):]))
    rest = [c.line() for _ in lines[int(last):]]
    assert rest == want[int(last):]
    # re-sent telegrams from before the crash: their original answers, not applied again
    before = c.ask("STATUS|9001")
    assert [c.ask(lines[k]) for k in (0, 100, 349, 449)] == [want[k] for k in (0, 100, 349, 449)]
    c.close()
    stop(proc)
    from sorter.service import export, restore
    assert restore(tmp_path / "j.db").sorter.state_dict() == ref.state_dict()
    assert "scans=" in before
    n = export(tmp_path / "j.db", tmp_path / "d.csv", kinds=["scan"])
    import csv
    rows = list(csv.DictReader(open(tmp_path / "d.csv")))
    assert n == len(rows) == sum(w.startswith("DEST") for w in want)
    assert [f"DEST|{int(r['seq']):03d}|{r['parcel']}|{r['chute']}|{r['reason']}" for r in rows] \
        == [w for w in want if w.startswith("DEST")]
    r = subprocess.run([sys.executable, "-m", "sorter", "journal", "export", "j.db", "--out",
                        "all.parquet"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith(f"{len(lines)} rows"), r
    import pyarrow.parquet as pq
    t = pq.read_table(tmp_path / "all.parquet").to_pydict()
    assert t["telegram"] == lines and t["client"] == ["plc-north"] * len(lines)
    assert t["kind"][349] == "plan" and t["plan"][349] == "wave2.csv"


def test_hello_waits_for_the_commit_in_sync_mode():
    """Regression: in sync mode HELLO's ``last`` acknowledges the client's telegrams up to it,
    so it may only leave once they are committed. A PLC whose connection dropped while its
    scan's row was in flight reconnected, was told ``last`` = that scan's seq before the
    commit, and after a crash at that moment would never have re-sent the lost scan."""
    sys.path.insert(0, str(Path(__file__).parent))
    from service_fakes import FakeTransport, ListJournal

    from sorter.resources import seed_path
    from sorter.service.server import Connection, Service

    class SyncJournal(ListJournal):
        sync = True
        durability = "sync"

    eng = Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))
    svc = Service(eng, journal=SyncJournal())
    c1 = Connection(svc)
    c1.connection_made(FakeTransport())
    svc.feed(c1, b"HELLO|1|plc\nSCAN|2|P1|01422|0|1\n")
    assert c1.transport.lines() == []            # waits for its commit
    c1.connection_lost(None)                     # the PLC's link drops
    c2 = Connection(svc)
    c2.connection_made(FakeTransport())
    svc.feed(c2, b"HELLO|3|plc\n")
    assert c2.transport.lines() == []            # row 2 not committed yet: no `last` = 2
    svc.on_commit(2)
    assert c2.transport.lines() == ["HELLO|3|plc|2"]
    c3 = Connection(svc)                         # nothing in flight: answered at once
    c3.connection_made(FakeTransport())
    svc.feed(c3, b"HELLO|4|plc\n")
    assert c3.transport.lines() == ["HELLO|4|plc|2"]


def test_from_state_refuses_a_round_robin_position_past_the_route():
    """Regression: ``from_state`` let through any rr_cursor up to 2**31 - 1; the compiled
    round-robin loop then overflowed ``start + k`` and read before its array (a segfault of
    the WCS, or of ``sorter serve`` restoring a damaged snapshot). Run in a child process so
    a crash fails this test instead of ending the run."""
    code = """if True:
        from sorter import Sorter
        from sorter.errors import InputError
        from sorter.plan import Chute, SortPlan
        rej = dict.fromkeys(["no_read", "unknown_destination", "max_recirculation",
                             "no_chute_available", "not_sortable", "late"], "R")
        s = Sorter(SortPlan({"X": ["A", "B", "C"]}, rej, strategy="round_robin"),
                   [Chute("A"), Chute("B"), Chute("C"), Chute("R", kind="reject")])
        for _ in range(4):
            s.assign("X")
        st = s.state_dict()
        assert st["rr_cursor"] == [1]          # state_dict writes a place in the route
        Sorter.from_state(st)
        for bad in (3, 2**31 - 1):
            st["rr_cursor"] = [bad]
            try:
                s2 = Sorter.from_state(st)
            except InputError as e:
                assert e.field == "rr_cursor" and "'X'" in str(e), e
            else:
                s2.set_state("B", "blocked")
                print([s2.assign("X") for _ in range(3)])
                raise SystemExit("accepted")
        print("refused")
    """
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "refused", (r.returncode, r.stdout, r.stderr)


def test_late_answers_count_decisions_only():
    """Regression: ``late_answers`` (STATUS) counted every answer line that left after the
    deadline, acknowledgements and STATUS lines too, though only a scan has a deadline."""
    sys.path.insert(0, str(Path(__file__).parent))
    from service_fakes import FakeTransport

    from sorter.resources import seed_path
    from sorter.service.server import Connection, Service
    eng = Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))
    svc = Service(eng, deadline_ms=50.0)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    old = time.perf_counter() - 5.0             # read five seconds ago
    svc.feed(conn, b"HB|1\nHELLO|2|plc\nSCAN|3|PDEST|01422|0|1\nCHUTE|4|C001|open\nSTATUS|5\n"
                   b"SCAN|6|P2|01422|0|1\nDEST|7\n", t=old)
    lines = conn.transport.lines()
    assert [ln.split("|")[0] for ln in lines] == ["ACK", "HELLO", "DEST", "ACK", "STATUS", "DEST",
                                                  "ERR"]
    assert lines[2].endswith("|late") and svc.n_late == 2
    assert svc.n_late_answers == 2
    svc.feed(conn, b"SCAN|8|P3|01422|0|1\n")     # read now: in time
    assert svc.n_late_answers == 2 and conn.transport.lines()[-1].endswith("|ok")


def test_zero_padded_fixed_width_seq_is_a_seq():
    """Regression: docs/service.md allows leading zeros in ``seq`` and refuses only values
    >= 10**18, but a seq text longer than 18 characters was ``bad_seq`` whatever its value,
    so a PLC with a zero-padded 20-digit counter got ERR for every telegram."""
    sys.path.insert(0, str(Path(__file__).parent))
    from service_fakes import FakeTransport

    from sorter.resources import seed_path
    from sorter.service.protocol import TelegramError, parse_line
    from sorter.service.server import Connection, Service
    assert parse_line(b"SCAN|00000000000000000042|P1|01422|0|1").seq == 42
    assert parse_line(b"HB|" + b"0" * 30).seq == 0
    for bad in (b"HB|1000000000000000000", b"HB|001000000000000000000", b"HB|-0000000000000000001"):
        with pytest.raises(TelegramError) as e:
            parse_line(bad)
        assert e.value.code == "bad_seq"
    eng = Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))
    ref = Sorter.from_state(eng.state_dict())
    svc = Service(eng)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    svc.feed(conn, b"HELLO|00000000000000000001|plc\nSCAN|00000000000000000042|P1|01422|0|1\n"
                   b"CHUTE|00000000000000000043|C001|blocked\nSCAN|00000000000000000044|P2|01422|0|1\n"
                   b"HELLO|00000000000000000045|plc\n")
    d1 = ref.assign("01422")
    ref.set_state("C001", "blocked")
    d2 = ref.assign("01422")
    assert conn.transport.lines() == [
        "HELLO|00000000000000000001|plc|-", f"DEST|00000000000000000042|P1|{d1.chute}|ok",
        "ACK|00000000000000000043", f"DEST|00000000000000000044|P2|{d2.chute}|ok",
        "HELLO|00000000000000000045|plc|44"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_service_stream_with_malformed_telegrams_and_replays_matches_engine(seed):
    """Two PLC connections, scans and chute events with malformed lines and retransmissions
    mixed in, fed in random chunks (partial frames): every line gets exactly one answer, in
    order; valid ones the engine's (kept in step beside it), malformed ones the documented
    ERR code with nothing applied, retransmissions their first answer and no second effect."""
    sys.path.insert(0, str(Path(__file__).parent))
    from service_fakes import FakeTransport

    from sorter.service.server import Connection, Service
    rng = np.random.default_rng(seed)
    routes, chutes, reject, overflow = random_setup(rng, "round_robin")
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        p, t = write_files(tmp, routes, chutes, reject, overflow, "round_robin", 2)
        eng = Sorter.from_files(p, t)
    ref = Sorter.from_state(eng.state_dict())
    svc = Service(eng, deadline_ms=3_600_000)
    conns = []
    for k in range(2):                             # two named PLCs (anonymous clients would
        c = Connection(svc)                        # share their de-duplication table)
        c.connection_made(FakeTransport())
        svc.feed(c, f"HELLO|0|plc{k}\n".encode())
        conns.append(c)
    sent = [[], []]                                # per connection: (line, expected answer)
    fed = [[f"HELLO|0|plc{k}|-"] for k in range(2)]    # answers to the lines fed as they came
    seqs = [0, 0]
    ids = [c["id"] for c in chutes]
    for ev in random_day(rng, routes, chutes, 250):
        k = int(rng.integers(0, 2))
        seqs[k] += 1
        seq = seqs[k]
        u = rng.random()
        if u < 0.1 and sent[k]:                    # a retransmission of an applied telegram
            old = [x for x in sent[k] if not x[1].startswith("ERR")]
            if old:
                sent[k].append(old[int(rng.integers(0, len(old)))])
                continue
        if u < 0.25:                               # malformed: nothing applied
            bad, code = [(f"SCAN|{seq}|P{k}-{seq}|00000|0|2", "bad_sortable"),
                         (f"SCAN|{seq}|P{k}-{seq}|00000|-1|1", "bad_recirculation"),
                         (f"SCAN|{seq}|P{k}-{seq}|00000|0", "field_count"),
                         (f"scan|{seq}|P|00000|0|1", "unknown_type"),
                         (f"CHUTE|{seq}|NOPE|open", "unknown_chute"),
                         (f"CHUTE|{seq}|{ids[0]}|closed", "bad_state"),
                         (f"DISCHARGED|{seq}|P|", "bad_chute"),
                         (f"SCAN|{seq}||00000|0|1", "bad_parcel")][int(rng.integers(0, 8))]
            sent[k].append((bad, f"ERR|{seq}|{code}|"))
            continue
        line = telegram(seq, ev).replace(f"P{seq}", f"P{k}-{seq}")
        d = apply(ref, ev)
        sent[k].append((line, f"DEST|{seq:03d}|P{k}-{seq}|{d[0]}|{d[1]}" if d else f"ACK|{seq:03d}"))
        # feed this line now (engine order = feed order), split into random chunks
        data = (line + ("\r\n" if rng.random() < 0.3 else "\n")).encode()
        cut = sorted(rng.integers(0, len(data), 2).tolist())
        for part in (data[:cut[0]], data[cut[0]:cut[1]], data[cut[1]:]):
            if part:
                svc.feed(conns[k], part)
        fed[k].append(sent[k][-1][1])
    # the malformed lines and retransmissions were not fed above: feed every connection's
    # whole stream again in order on fresh connections of the same clients
    for k in range(2):
        fresh = Connection(svc)
        fresh.connection_made(FakeTransport())
        before = svc.engine.state_dict()
        svc.feed(fresh, f"HELLO|1|plc{k}\n".encode()
                 + "".join(x[0] + "\n" for x in sent[k]).encode())
        got = fresh.transport.lines()[1:]
        assert len(got) == len(sent[k])
        for g, x in zip(got, sent[k]):
            assert g.startswith(x[1]) if x[1].startswith("ERR") else g == x[1], (g, x)
        assert svc.engine.state_dict() == before         # all replays or errors: no effect
        assert conns[k].transport.lines() == fed[k]
    assert svc.engine.state_dict() == ref.state_dict()


def test_loadgen_short_paced_run_times_its_first_scan():
    """Regression: a paced ``sorter loadgen`` run sent its first scan up to 50 ms before the
    common start (``int()`` of a negative count rounded up to one scan due), so that scan fell
    out of the latency figures and the rate: ``--rate 5 --seconds 0.1`` (one scan) reported
    no latency at all and 1,000,000,000 scans/s."""
    import threading

    from sorter.service.loadgen import format_report, run_load
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def echo():                                  # answers each SCAN line with itself
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
    th = threading.Thread(target=echo, daemon=True)
    th.start()
    try:
        r = run_load("127.0.0.1", port, rate=5, seconds=0.1, connections=1,
                     destinations=["01422"])
    finally:
        srv.close()
    assert r["sent"] == r["answered"] == 1 and r["errors"] == 0
    assert r["p50_us"] is not None and r["max_us"] is not None
    assert 0 < r["scans_per_s"] <= 1.01e6 / r["p50_us"]    # one scan takes >= its round trip
    assert "None" not in format_report(dict(r, max_us=None, p50_us=None))


def test_a_wave_as_the_readme_tells_it(tmp_path):
    """A small sorter through a wave, each step the outcome the README's rules name:
    primary, alternate when the primary is full at capacity, overflow, no_chute_available in
    its reject chute, the first open reject chute (in [reject]'s order) while that one is
    full, back to the primary after a container change; a plan switch keeps fill and states."""
    plan, toml = write_files(
        tmp_path, {"10115": ["A1", "A2"], "20095": ["B1"]},
        [{"id": "A1", "capacity": 2}, {"id": "A2", "capacity": 1}, {"id": "B1"},
         {"id": "OV", "kind": "overflow", "capacity": 1},
         {"id": "RX", "kind": "reject", "capacity": 1}, {"id": "RY", "kind": "reject"},
         {"id": "RZ", "kind": "reject"}],
        {"no_read": "RY", "unknown_destination": "RZ", "max_recirculation": "RZ",
         "no_chute_available": "RX", "not_sortable": "RZ", "late": "RY"},
        overflow=["OV"], strategy="fill_first", max_rc=1)
    s = Sorter.from_files(plan, toml)
    assert s.assign("10115") == ("A1", "ok")
    s.discharged("A1")
    s.discharged("A1")                               # capacity 2: full
    assert s.chute_state("A1") == "full"
    assert s.assign("10115") == ("A2", "ok")
    s.discharged("A2")
    assert s.assign("10115") == ("OV", "overflow")
    s.discharged("OV")
    assert s.assign("10115") == ("RX", "no_chute_available")
    s.discharged("RX")                               # the reject chute fills too
    # first open reject chute in the order no_read, unknown_destination, ...: RY
    assert s.assign("10115") == ("RY", "no_chute_available")
    s.set_state("RY", "blocked")
    assert s.assign("10115") == ("RZ", "no_chute_available")
    s.set_state("RZ", "disabled")
    assert s.assign("10115") == ("RX", "no_chute_available")    # none open: its own
    assert s.assign(None) == ("RY", "no_read")
    assert s.assign("20095", 2) == ("RZ", "max_recirculation")
    assert s.assign("20095", 1, sortable=False) == ("RZ", "not_sortable")
    s.container_changed("A1")
    assert s.assign("10115") == ("A1", "ok") and s.chute_fill("A1") == 0
    s.set_state("A1", "container_change")
    (tmp_path / "wave2.csv").write_text("destination,chutes\n10115,A2;A1\n30000,B1\n")
    s.switch_plan(s.prepare_plan(tmp_path / "wave2.csv"))
    assert s.plan_name == "wave2" and s.chute_state("A1") == "container_change"
    assert s.chute_fill("A2") == 1 and s.chute_state("A2") == "full"
    # A2 full, A1 in container change, OV full, every reject chute closed: RX, its own
    assert s.assign("10115") == ("RX", "no_chute_available")
    assert s.assign("20095") == ("RZ", "unknown_destination")
    assert s.assign("30000") == ("B1", "ok")
    assert s.reject("late") == ("RY", "late")
    c = s.counters()["by_reason"]
    assert c["no_chute_available"] == 5 and c["ok"] == 4 and sum(c.values()) == 15


def test_replay_reads_recirculation_as_plain_digits(tmp_path):
    """Regression: ``sorter assign`` read an events row's recirculation with ``int()``, so
    ``1_0`` counted 10 and ``٣`` (an Arabic-Indic three) 3 laps, where a telegram refuses
    both; now they are bad rows naming line and field, as a negative count is."""
    from sorter.replay import replay_events
    from sorter.resources import seed_path
    ev = tmp_path / "ev.csv"
    ev.write_text("t,event,parcel,destination,recirculation,sortable,chute,plan\n"
                  "0,scan,P1,01422,1_0,1,,\n0,scan,P2,01422,\u0663,1,,\n"
                  "0,scan,P3,01422, 2 ,1,,\n0,scan,P4,01422,99999999999,1,,\n", encoding="utf-8")
    s = Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))
    out = []
    res = replay_events(s, ev, on_error="skip", write=lambda *a: out.append(a))
    assert [ln for ln, _ in res.skipped] == [2, 3]
    assert all("field 'recirculation'" in m for _, m in res.skipped)
    assert [(p, r) for p, _, r in out] == [("P3", "ok"), ("P4", "max_recirculation")]
    with pytest.raises(InputError) as e:
        replay_events(Sorter.from_state(s.state_dict()), ev)
    assert e.value.line == 2 and e.value.field == "recirculation"


def test_reject_decision_is_checked_like_reject():
    """Regression: ``Sorter.reject_decision`` (public, inherited from the compiled engine)
    took any reason: ``reject_decision("ok")`` counted an ``ok`` decision into the no-read
    reject chute, and junk raised a bare ``tuple.index`` ValueError."""
    from sorter.resources import seed_path
    s = Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))
    before = s.counters()
    for bad in ("ok", "overflow", None, "LATE", ["late"]):
        with pytest.raises(InputError) as e:
            s.reject_decision(bad)
        assert e.value.field == "reason"
    assert s.counters() == before
    assert s.reject_decision("late") == s.reject("late") == ("R1", "late")
    assert s.counters()["by_reason"]["late"] == 2

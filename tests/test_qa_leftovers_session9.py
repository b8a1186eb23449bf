"""QA session 9: small defects earlier sweeps noticed and left alone, in the scan-decision
service, the journal export and the chute engine.

Each test pins one problem (input -> what went wrong) and failed before its fix.
In-process where possible; live sockets only on ephemeral localhost ports.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from naive import NaiveSorter
from plan_gen import random_ops, random_plan
from service_fakes import exchange, FakeTransport
from sorter import Sorter
from sorter.constants import REASONS, REJECT_REASONS
from sorter.errors import InputError
from sorter.plan import Chute, SortPlan
from sorter.resources import seed_path
from sorter.service import protocol as P
from sorter.service.journal import JournalError, export
from sorter.service.server import Connection, Service, open_service

PLAN = str(seed_path("plan/demo_plan.csv"))
CHUTES = str(seed_path("plan/demo_chutes.toml"))
TIMEOUT = 30.0


def _conn(svc):
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    return conn


# -- 1. the answer echoes seq exactly as received ---------------------------------------------

def test_answers_echo_the_seq_text_as_received(tmp_path):
    """A PLC with a fixed-width counter sends `SCAN|018|...`; the answer said `DEST|18|...`,
    so a client matching answers to requests by the seq text never matched. Now every
    answer (DEST, ACK, HELLO, STATUS, ERR, a replayed answer, also after a restart) echoes
    the seq field as it came."""
    db = tmp_path / "j.db"
    svc, _ = open_service(PLAN, CHUTES, journal=str(db), deadline_ms=60_000)
    conn = _conn(svc)
    svc.feed(conn, b"HELLO|000|plc-north\nSCAN|018|P1|01422|0|1\nHB|007\nCHUTE|0009|C001|blocked\n"
                   b"DISCHARGED|010|P1|C002\nCONTAINER|0011|C002\nSTATUS|05\n"
                   b"SCAN|012|P2|01422|-1|1\nCHUTE|013|C999|open\n"
                   b"SCAN|014|" + b"x" * 5000 + b"\nSCAN|018|P1|01422|0|1\nSCAN|18|P1|01422|0|1\n")
    out = conn.transport.lines()
    assert out[0] == "HELLO|000|plc-north|-"
    assert out[1].startswith("DEST|018|P1|C001|ok")
    assert out[2:6] == ["ACK|007", "ACK|0009", "ACK|010", "ACK|0011"]
    assert out[6].startswith("STATUS|05|telegrams=")
    assert out[7].startswith("ERR|012|bad_recirculation|")
    assert out[8].startswith("ERR|013|unknown_chute|")
    assert out[9].startswith("ERR|014|too_long|")
    assert out[10] == out[1]                       # a retransmission: the original answer
    assert out[11].startswith("DEST|18|P1|") and svc.engine.counters()["by_reason"]["ok"] == 2
    svc.shutdown()
    # a restart rebuilds the replay answers from the journal: still the seq as received
    again, msg = open_service(None, None, journal=str(db))
    assert msg.startswith("restored")
    conn = _conn(again)
    again.feed(conn, b"HELLO|1|plc-north\nSCAN|018|P1|01422|0|1\nHB|007\n")
    assert conn.transport.lines() == ["HELLO|1|plc-north|18", out[1], "ACK|007"]
    assert again.n_replayed == 1
    again.shutdown()


# -- 2. a last telegram without its newline ---------------------------------------------------

def test_final_line_without_newline_gets_an_err_answer_and_is_not_applied():
    """`printf 'SCAN|1|...\\nSCAN|2|P2|01422|0|1' | nc`: the second telegram had no `\\n` when
    the client closed its side, and it got no answer at all. A line cut off at the end of
    the input may be a truncated telegram (`...|0|` for `...|0|0`), so it is not applied,
    but it is answered: `ERR|seq|unterminated|...`, then the connection closes."""
    svc = Service(Sorter.from_files(PLAN, CHUTES), deadline_ms=60_000)
    conn = _conn(svc)
    svc.feed(conn, b"SCAN|1|P1|01422|0|1\nSCAN|002|P2|01422|0|")
    assert conn.eof_received() is None             # nothing held: close once written
    out = conn.transport.lines()
    assert out[0].startswith("DEST|1|P1|") and out[1].startswith("ERR|002|unterminated|")
    assert sum(svc.engine.counters()["by_reason"].values()) == 1
    assert "unterminated" in P.ERR_CODES
    # a seq that ends the cut-off line may itself be cut (HB|12 of HB|123): not echoed
    conn = _conn(svc)
    svc.feed(conn, b"HB|12")
    conn.eof_received()
    assert conn.transport.lines()[0].startswith("ERR|-|unterminated|")
    # an over-long line cut off by the end of the input: its too_long answer still comes
    conn = _conn(svc)
    svc.feed(conn, b"HB|5\nSCAN|6|" + b"y" * 5000)
    conn.eof_received()
    assert conn.transport.lines() == ["ACK|5", f"ERR|6|too_long|line longer than {P.MAX_LINE} bytes"]
    # a bare "\r" or nothing after the last newline is no telegram: no answer
    for tail in (b"", b"\r"):
        conn = _conn(svc)
        svc.feed(conn, b"HB|7\n" + tail)
        conn.eof_received()
        assert conn.transport.lines() == ["ACK|7"]


def test_final_line_without_newline_live_after_a_plan_switch(tmp_path):
    """Live: the unterminated last line arrives while a PLAN of the same connection is still
    loading (its bytes are held); every telegram, that one included, gets its answer, in
    order and with the seq as sent, before the service closes the connection."""
    p2 = tmp_path / "p2.csv"
    p2.write_text("destination,chutes\n01422,C010\n")
    svc, _ = open_service(PLAN, CHUTES, deadline_ms=60_000)

    out = exchange(svc, f"PLAN|012|{p2}\nSCAN|013|P1|01422|0|1\nSCAN|014|P2|01422|0|".encode(), TIMEOUT)
    assert out[0] == "ACK|012" and out[1] == "DEST|013|P1|C010|ok"
    assert out[2].startswith("ERR|014|unterminated|") and len(out) == 3
    assert svc.engine.counters()["by_reason"]["ok"] == 1


# -- 3. journal export: no partial file --------------------------------------------------------

def _journal_damaged_late(path, n=3000):
    """A journal whose first pages read but whose later pages are damaged: the export fails
    part-way (after the output was opened)."""
    from test_qa_service_session8 import journal_with_scans
    journal_with_scans(path, n)
    data = bytearray(path.read_bytes())
    pages = len(data) // 4096
    for page in range(pages // 2, pages):
        data[page * 4096 + 100: page * 4096 + 200] = b"\xff" * 100
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_of_a_damaged_journal_leaves_no_partial_file(tmp_path, capsys, suffix):
    """`sorter journal export j.db --out audit.csv` on a journal damaged part-way failed with
    one line, but left a half-written audit.csv (or a Parquet file without its footer)
    behind, which looks like a complete export. Now the export is written beside the target
    and renamed on success: a failure leaves nothing new, and an earlier export is kept."""
    from test_qa_regressions import one_error_line
    db = tmp_path / "j.db"
    _journal_damaged_late(db)
    out = tmp_path / f"audit{suffix}"
    with pytest.raises(JournalError):
        export(db, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.db", "j.db-shm", "j.db-wal"]
    one_error_line(capsys, ["journal", "export", str(db), "--out", str(out)], str(db), "damaged")
    assert not out.exists()
    out.write_bytes(b"an earlier export\n")
    with pytest.raises(JournalError):
        export(db, out)
    assert out.read_bytes() == b"an earlier export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["j.db", "j.db-shm", "j.db-wal",
                                                                 out.name])


def test_export_still_writes_and_replaces(tmp_path):
    from test_qa_service_session8 import journal_with_scans
    db = tmp_path / "j.db"
    journal_with_scans(db, 7)
    out = tmp_path / "sub" / "audit.csv"
    out.parent.mkdir()
    out.write_text("old\n")
    assert export(db, out) == 7
    lines = out.read_text().splitlines()
    assert lines[0].startswith("id,time,client,seq,kind") and len(lines) == 8
    assert [p.name for p in out.parent.iterdir()] == ["audit.csv"]


# -- 4. a reject chute that cannot take parcels --------------------------------------------------

def _demo():
    return Sorter.from_files(PLAN, CHUTES)


def test_closed_reject_chute_sends_its_rejects_to_another_open_reject_chute():
    """`set_state("R1", "blocked")` was accepted and R1 kept being named for every no-read,
    unknown destination and late parcel, as though a blocked chute took parcels. Now a
    reject chute that is not open is passed over: the parcel goes to the plan's first open
    reject chute (reasons in REASONS order), keeping its reason; when no reject chute of the
    plan is open, the reason's own chute is named (last resort: a decision always names a
    chute)."""
    s = _demo()
    assert s.assign(None) == ("R1", "no_read")
    s.set_state("R1", "blocked")
    assert s.assign(None) == ("R2", "no_read")
    assert s.assign("99999") == ("R2", "unknown_destination")
    assert s.reject("late") == ("R2", "late")
    assert s.assign("01422", recirculation=9) == ("R2", "max_recirculation")
    assert s.assign("01422", sortable=False) == ("R3", "not_sortable")
    s.set_state("R2", "full")
    assert s.assign(None) == ("R3", "no_read")
    assert s.assign("01422", recirculation=9) == ("R3", "max_recirculation")
    s.set_state("R3", "disabled")
    assert s.assign(None) == ("R1", "no_read")          # none open: the reason's own chute
    assert s.assign("01422", recirculation=9) == ("R2", "max_recirculation")
    assert s.reject("late") == ("R1", "late")
    s.container_changed("R2")
    assert s.assign(None) == ("R2", "no_read")
    c = s.counters()
    assert c["by_reason"]["no_read"] == 5 and c["by_chute"]["R2"]["assigned"] == 6
    # a reject chute filled by its discharges turns full like any other, and is passed over
    s = _demo()
    s.discharged("R1", 200)
    assert s.chute_state("R1") == "full" and s.assign(None) == ("R2", "no_read")
    s.container_changed("R1")
    assert s.assign(None) == ("R1", "no_read")


def _reject_heavy_ops(rng, chutes, n):
    """Random operations with many events on the reject chutes and many rejected scans."""
    rejects = [c.id for c in chutes if c.kind == "reject"]
    ops = random_ops(rng, chutes, n)
    out = []
    for op in ops:
        out.append(op)
        u = rng.random()
        if u < 0.25:
            out.append(("set_state", rejects[int(rng.integers(0, len(rejects)))],
                        ["open", "full", "container_change", "blocked", "disabled"][
                            int(rng.integers(0, 5))]))
        elif u < 0.35:
            out.append(("container_changed", rejects[int(rng.integers(0, len(rejects)))]))
        elif u < 0.6:
            out.append(("scan", [None, "", "D99"][int(rng.integers(0, 3))],
                        int(rng.integers(0, 6)), bool(rng.random() > 0.3)))
        elif u < 0.65:
            out.append(("late",))
    return out


def _naive_of(plan, table):
    return NaiveSorter(plan.routes, {c.id: (c.kind, c.capacity) for c in table}, plan.reject,
                       plan.overflow, plan.strategy, plan.max_recirculation)


@pytest.mark.parametrize("seed", range(4))
def test_closed_reject_chutes_engine_agrees_with_the_oracle(seed):
    """The engine against tests/naive.py on random plans whose reject chutes (one to three,
    shared by reasons at random) are blocked, filled and reopened while parcels are
    rejected; assign_many gives the same decisions as assign."""
    rng = np.random.default_rng(9000 + seed)
    for _ in range(60):
        plan, chutes = random_plan(rng)
        rejects = [c.id for c in chutes if c.kind == "reject"]
        plan.reject = {r: rejects[int(rng.integers(0, len(rejects)))] for r in REJECT_REASONS}
        s = Sorter(plan, chutes)
        ref = _naive_of(plan, chutes)
        for op in _reject_heavy_ops(rng, list(chutes), 50):
            if op[0] == "scan":
                d = s.assign(op[1], op[2], op[3])
                assert (d.chute, d.reason) == ref.assign(op[1], op[2], op[3]), op
                if d.reason not in ("ok", "overflow") and ref.state[d.chute] != "open":
                    assert all(ref.state[c] != "open" for c in set(ref.reject.values()))
                    assert d.chute == ref.reject[d.reason]
            elif op[0] == "late":
                d = s.reject("late")
                assert (d.chute, d.reason) == ref.reject_decision("late")
            elif op[0] == "discharged":
                s.discharged(op[1], op[2])
                ref.discharged(op[1], op[2])
            elif op[0] == "set_state":
                s.set_state(op[1], op[2])
                ref.set_state(op[1], op[2])
            elif op[0] == "container_changed":
                s.container_changed(op[1])
                ref.container_changed(op[1])
            else:
                s.switch_plan(op[1])
                ref.switch_plan(op[1])
        assert s.counters()["by_reason"] == ref.by_reason
        # the batch path: same decisions as one by one on a copy
        twin = Sorter.from_state(s.state_dict())
        codes = [None, "", "D99"] + list(s.sort_plan.routes)
        dests = [codes[int(i)] for i in rng.integers(0, len(codes), 40)]
        rc = rng.integers(0, 6, 40)
        so = rng.random(40) > 0.3
        chutes_out, reasons_out = s.assign_many(s.destination_ids(dests), rc, so)
        one = [twin.assign(d, int(r), bool(x)) for d, r, x in zip(dests, rc, so)]
        assert [(s.chute_ids[c], REASONS[r]) for c, r in zip(chutes_out, reasons_out)] == \
            [(d.chute, d.reason) for d in one]


def test_closed_reject_chute_in_the_service():
    """`CHUTE|seq|R1|blocked` from the PLC now moves the no-reads to the next open reject
    chute, and a restart from the journal re-makes those decisions exactly."""
    svc = Service(_demo(), deadline_ms=60_000)
    conn = _conn(svc)
    svc.feed(conn, b"CHUTE|1|R1|blocked\nSCAN|2|P1||0|1\nCHUTE|3|R1|open\nSCAN|4|P2||0|1\n")
    assert conn.transport.lines() == ["ACK|1", "DEST|2|P1|R2|no_read", "ACK|3",
                                      "DEST|4|P2|R1|no_read"]


# -- 5. an empty plan ------------------------------------------------------------------------------

@pytest.mark.parametrize("empty", [{}, "mapping-plan", "sortplan"])
def test_empty_plan_is_refused_everywhere(tmp_path, empty):
    """`switch_plan({})` was accepted (every parcel then went to reject as an unknown
    destination) while the CSV loader refused a plan without destinations. Now every way in
    refuses it with an InputError naming the field, and the plan in force stays."""
    s = _demo()
    before = s.assign("01422")
    if empty == "mapping-plan":
        empty = {}
    elif empty == "sortplan":
        empty = SortPlan(routes={}, reject=dict(s.sort_plan.reject))
    with pytest.raises(InputError) as exc:
        s.switch_plan(empty)
    assert exc.value.field == "routes" and "destination" in str(exc.value)
    assert s.plan_name == "wave-1" and s.assign("01422").reason == before.reason == "ok"
    with pytest.raises(InputError, match="no destinations"):
        Sorter(SortPlan(routes={}, reject={r: "R" for r in REJECT_REASONS}),
               [Chute("A1"), Chute("R", "reject")])
    csv_plan = tmp_path / "empty.csv"
    csv_plan.write_text("destination,chutes\n")
    with pytest.raises(InputError, match="no destinations"):
        s.switch_plan(csv_plan)


# -- 6. a scenario's settings: one set of checks for files and code ----------------------------

def _base_scenario(tmp_path, old=None, new=None):
    from test_scenario import BASE
    p = tmp_path / "scen.toml"
    p.write_text(BASE if old is None else BASE.replace(old, new, 1))
    return p


@pytest.mark.parametrize("old, new, change", [
    ("seed = 3", "seed = -1", lambda sc: dict(seed=-1)),
    ("shift_hours = 1.0", "shift_hours = 200", lambda sc: dict(shift_hours=200)),
    ("rate_per_hour = 5000", "rate_per_hour = 5000\nbatch_size = 0",
     lambda sc: dict(waves=[replace(sc.waves[0], batch_size=0)] + sc.waves[1:])),
    ("rate_per_hour = 4000", "rate_per_hour = 4000\nunload_per_hour = -5",
     lambda sc: dict(waves=sc.waves[:1] + [replace(sc.waves[1], unload_per_hour=-5)])),
    ('mix = "zipf"', 'mix = "zipf"\nzipf_s = 11', lambda sc: dict(
        destinations=replace(sc.destinations, zipf_s=11))),
    ('mix = "zipf"', 'mix = "split"\nvolume_shares = [0.5, 0.6]\ndestination_shares = [0.5, 0.5]',
     lambda sc: dict(destinations=replace(sc.destinations, mix="split", volume_shares=(0.5, 0.6),
                                          destination_shares=(0.5, 0.5)))),
    ("no_read_rate = 0.01", "no_read_rate = 1.5", lambda sc: dict(scan=replace(sc.scan, no_read_rate=1.5))),
    ("reaction_time_s = 20", "reaction_time_s = 20\ncapacity = 0",
     lambda sc: dict(containers=replace(sc.containers, capacity=0))),
    ("random_per_hour = 1.0", "random_per_hour = 1e9",
     lambda sc: dict(blockages=replace(sc.blockages, random_per_hour=1e9))),
])
def test_a_setting_is_checked_by_the_same_rule_in_a_file_and_in_code(tmp_path, old, new, change):
    """The numeric checks of a scenario existed twice, in the TOML parser and in
    Scenario._check_settings, and could drift apart. Now both call one function per table;
    a bad value gives the same one-line error, naming the file and its key, either way."""
    from sorter.sim.scenario import load_scenario
    good = load_scenario(_base_scenario(tmp_path))
    with pytest.raises(InputError) as from_file:
        load_scenario(_base_scenario(tmp_path, old, new))
    with pytest.raises(InputError) as from_code:
        replace(good, **change(good))
    # (the file's error also names the line of its key: a Scenario built in code has none)
    assert str(from_file.value).replace(f":{from_file.value.line}:", ":", 1) == \
        str(from_code.value)
    assert str(tmp_path / "scen.toml") in str(from_file.value)


@pytest.mark.parametrize("where", ["containers", "scheduled"])
def test_a_duration_too_long_names_the_files_own_key(tmp_path, where):
    """`reaction_time_s = 1e12` passed the file's check (a number had no upper bound) and
    was then refused by the second check for code-built scenarios, naming a key the file
    does not have (`containers.reaction_time_s.value`). One check now: the file's key."""
    from sorter.sim.scenario import load_scenario
    old, new, field = (("reaction_time_s = 20", "reaction_time_s = 1e12", "containers.reaction_time_s")
                       if where == "containers" else
                       ("duration_s = 300", "duration_s = 1e12", "blockages.scheduled[0].duration_s"))
    with pytest.raises(InputError) as exc:
        load_scenario(_base_scenario(tmp_path, old, new))
    assert exc.value.field == field

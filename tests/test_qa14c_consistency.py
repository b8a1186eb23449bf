"""One chute engine, several doors: the same scans and chute events get the same decisions.

The doors: an embedded :class:`sorter.Sorter` (``assign``, ``assign_many``, ``from_state``),
``sorter assign`` (:func:`sorter.replay.replay_events`), ``sorter serve`` (the in-process
:class:`~sorter.service.server.Service` and its journal recovery), the loop-sorter shift
simulation (``sorter run``: the compiled tick loop calling the engine at C level) and the
robot sorting floor (:class:`sorter.agv.floor_sim.FloorSim`).

A loop shift is run tick by tick on seeded random scenarios (random strategies, plan switches
at wave starts, blockages, tiny containers, unknown destinations, no-reads): every scan the
engine saw (parcel, destination, recirculation, sortable), every discharge, container change
and chute state is recorded from the outside, then replayed through the other doors; chutes
and reasons must match scan by scan, and the engines' full states at the end. Within one tick
the kernel applies chute events, then discharges, then the scan (its documented order): the
recorded events keep that order.
"""
from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest

from sorter import Sorter
from sorter.constants import REASONS, STATES
from sorter.errors import InputError
from sorter.replay import replay_events
from service_fakes import FakeTransport

# -- a seeded random loop scenario ---------------------------------------------------------
_REJECT = ("no_read", "unknown_destination", "max_recirculation", "no_chute_available",
           "not_sortable", "late")


def _plan_csv(path, routes):
    path.write_text("destination,chutes\n" + "".join(f"{d},{';'.join(r)}\n"
                                                      for d, r in routes.items()))


def random_scenario(tmp, seed):
    """A small loop (120 m, 150 carriers) with 2-4 waves, plan switches, blockages, small
    containers, a random strategy and max_recirculation; returns the scenario TOML path."""
    rng = np.random.default_rng(seed)
    nd, nov, nrj = int(rng.integers(8, 20)), int(rng.integers(0, 3)), int(rng.integers(1, 4))
    n_dest_chutes = nd + int(rng.integers(0, 8))
    ids = ([f"C{i:02d}" for i in range(n_dest_chutes)] + [f"OV{i}" for i in range(nov)]
           + [f"R{i}" for i in range(nrj)])
    kinds = ["destination"] * n_dest_chutes + ["overflow"] * nov + ["reject"] * nrj
    perm = rng.permutation(len(ids))
    lines = [f'[plan]\nname = "p0"\nstrategy = "{rng.choice(["fill_first", "round_robin", "least_loaded"])}"\n'
             f"max_recirculation = {int(rng.integers(0, 4))}\n"
             "overflow = [" + ", ".join(f'"OV{i}"' for i in range(nov)) + "]\n[reject]\n"]
    lines += [f'{r} = "R{int(rng.integers(nrj))}"\n' for r in _REJECT]
    for cid, kind, p in zip(ids, kinds, perm):
        lines.append(f'[[chute]]\nid = "{cid}"\nkind = "{kind}"\ncapacity = {int(rng.integers(1, 12))}\n'
                     f'position = {10 + 2.2 * (p // 2):.1f}\nside = "{"right" if p % 2 else "left"}"\n')
    (tmp / "chutes.toml").write_text("".join(lines))
    dests = [f"D{i:03d}" for i in range(nd)]
    sortable = ids[:n_dest_chutes + nov]

    def routes(sub):
        return {d: list(rng.choice(sortable, int(rng.integers(1, 4)), replace=False)) for d in sub}
    _plan_csv(tmp / "p0.csv", routes(dests))
    hours = 0.12
    n_waves = int(rng.integers(2, 5))
    cuts = [0.0] + sorted(rng.uniform(0.01, hours - 0.01, n_waves - 1).tolist()) + [hours]
    s = [f'[scenario]\nname = "rand"\nseed = {seed}\nshift_hours = {hours}\ninterval_minutes = 2\n',
         '[loop]\nname = "L"\nlength_m = 120.0\nspeed_mps = 2.0\npitch_m = 0.8\nscanner_m = 4.0\n'
         'chutes = "chutes.toml"\nplan = "p0.csv"\n']
    for i in range(int(rng.integers(1, 4))):
        s.append(f'[[loop.induct]]\nid = "I{i}"\nposition_m = {1.0 + 0.8 * i:.1f}\n'
                 'max_rate_per_hour = 3000\nkind = "automatic"\n')
    for w in range(n_waves):
        s.append(f'[[wave]]\nname = "w{w}"\nstart_h = {cuts[w]:.5f}\nend_h = {cuts[w + 1]:.5f}\n'
                 f"rate_per_hour = {int(rng.integers(3000, 9000))}\n")
        if w:
            _plan_csv(tmp / f"w{w}.csv", routes([d for d in dests if rng.random() < 0.8] or dests[:1]))
            s.append(f'plan = "w{w}.csv"\n')
    s.append(f'[destinations]\nmix = "zipf"\nunknown_rate = {rng.uniform(0, 0.05):.3f}\n'
             f"[scan]\nno_read_rate = {rng.uniform(0, 0.05):.3f}\n"
             f"not_sortable_rate = {rng.uniform(0, 0.03):.3f}\n"
             '[containers]\nchange_time_s = { dist = "uniform", low = 10, high = 40 }\n'
             'reaction_time_s = { dist = "exponential", mean = 10 }\n'
             f"[blockages]\nrandom_per_hour = {rng.uniform(5, 40):.1f}\n"
             'duration_s = { dist = "uniform", low = 10, high = 100 }\n')
    (tmp / "scenario.toml").write_text("".join(s))
    return tmp / "scenario.toml"


def record_shift(scenario, seed):
    """Run loop 0 of ``scenario`` one tick at a time as :func:`sorter.sim.loop.simulate` does,
    recording from the outside what the engine saw. Returns ``(parcels, ids, start, log,
    sorter, raw)``; ``log`` holds ``("switch", plan)``, ``("cc", k)`` (container changed),
    ``("dis", k, n)``, ``("states", array)`` and ``("scan", parcel, recirculation, reason,
    chute)``, in the kernel's order within a tick."""
    from sorter.sim.arrivals import draw_parcels
    from sorter.sim.loop import prepare_loop
    rng = np.random.default_rng(seed)
    parcels = draw_parcels(scenario, rng)
    sorter, kernel, ids, switches = prepare_loop(scenario, 0, parcels, rng)
    start = sorter.state_dict()
    raw = kernel.results(copy=False)            # the kernel's own arrays: live views
    on_carrier, recirc = raw["on_carrier"], raw["recirculations"]
    layout = scenario.loops[0].layout
    scanner, n_carriers = int(layout.slot(layout.scanner_m)), len(on_carrier)
    before = sorter._arrays()
    pending, log = list(switches), []
    for t in range(kernel.n_ticks):
        while pending and pending[0][0] <= t:
            log.append(("switch", pending.pop(0)[1]))
            sorter.switch_plan(log[-1][1])
        kernel.run(t + 1)
        now = sorter._arrays()
        n_dis = now["discharged"] - before["discharged"]
        for k in np.flatnonzero((n_dis > 0) | (now["fill"] != before["fill"])):
            if now["fill"][k] != before["fill"][k] + n_dis[k]:
                assert now["fill"][k] == n_dis[k]       # emptied, then n_dis discharges
                log.append(("cc", int(k)))
            if n_dis[k]:
                log.append(("dis", int(k), int(n_dis[k])))
        log.append(("states", now["state"].copy()))
        d_reason = now["reason_count"] - before["reason_count"]
        assert d_reason.sum() in (0, 1)                 # one scanner: at most one decision
        if d_reason.sum():
            p = int(on_carrier[(scanner - t) % n_carriers])
            chute = int(np.flatnonzero(now["assigned"] - before["assigned"])[0])
            log.append(("scan", p, int(recirc[p]), int(np.flatnonzero(d_reason)[0]), chute))
        before = now
    results = {k: np.array(v) for k, v in kernel.results().items() if isinstance(v, np.ndarray)}
    return parcels, ids, start, log, sorter, results


def _scan_fields(parcels, ids, p):
    g = ids[p]
    dest = ("" if parcels.no_read[g] else
            parcels.codes[parcels.dest[g]] if parcels.dest[g] >= 0 else "?unknown")
    return f"P{g}", dest, bool(parcels.sortable[g])


def drive(engine, parcels, ids, log):
    """Replay ``log`` into ``engine`` event by event; returns its decisions
    ``[(chute, reason)]`` and the recorded ones."""
    labels = engine.chute_ids
    got, want = [], []
    for ev in log:
        if ev[0] == "switch":
            engine.switch_plan(ev[1])
        elif ev[0] == "cc":
            engine.container_changed(labels[ev[1]])
        elif ev[0] == "dis":
            engine.discharged(labels[ev[1]], ev[2])
        elif ev[0] == "states":
            cur = engine._arrays()["state"]
            for k in np.flatnonzero(cur != ev[1]):
                engine.set_state(labels[k], STATES[ev[1][k]])
        else:
            _, p, rc, reason, chute = ev
            _, dest, sortable = _scan_fields(parcels, ids, p)
            got.append(tuple(engine.assign(dest or None, rc, sortable)))
            want.append((labels[chute], REASONS[reason]))
    return got, want


def events_rows(engine, parcels, ids, log, names):
    """The log as ``sorter assign`` event rows (a mirror engine says which chute states the
    rows must set: a discharge that fills a chute closes it by itself, as in every door)."""
    labels = engine.chute_ids
    rows = []
    for ev in log:
        if ev[0] == "switch":
            rows.append(("", "switch_plan", "", "", "", "", "", names[id(ev[1])]))
            engine.switch_plan(ev[1])
        elif ev[0] == "cc":
            rows.append(("", "container_changed", "", "", "", "", labels[ev[1]], ""))
            engine.container_changed(labels[ev[1]])
        elif ev[0] == "dis":
            rows += [("", "discharged", "", "", "", "", labels[ev[1]], "")] * ev[2]
            engine.discharged(labels[ev[1]], ev[2])
        elif ev[0] == "states":
            cur = engine._arrays()["state"]
            for k in np.flatnonzero(cur != ev[1]):
                rows.append(("", STATES[ev[1][k]], "", "", "", "", labels[k], ""))
                engine.set_state(labels[k], STATES[ev[1][k]])
        else:
            _, p, rc, _, _ = ev
            parcel, dest, sortable = _scan_fields(parcels, ids, p)
            rows.append(("", "scan", parcel, dest, rc, int(sortable), "", ""))
    return rows


def telegram(i, row):
    _, ev, parcel, dest, rc, sortable, chute, plan = row
    if ev == "scan":
        return f"SCAN|{i}|{parcel}|{dest}|{rc}|{sortable}\n"
    if ev == "discharged":
        return f"DISCHARGED|{i}||{chute}\n"
    if ev == "container_changed":
        return f"CONTAINER|{i}|{chute}\n"
    if ev == "switch_plan":
        return f"PLAN|{i}|{plan}\n"
    return f"CHUTE|{i}|{chute}|{ev}\n"


def _comparable(state):
    """A state_dict without what legitimately differs between doors: the interning order of
    destination codes (the simulation interns every wave's plan up front) and the plan's
    name (a plan CSV switched to is named by its file stem)."""
    s = dict(state)
    s["rr_cursor"] = {d: c for d, c in zip(s.pop("destinations"), state["rr_cursor"]) if c}
    s["plan"] = {k: v for k, v in state["plan"].items() if k != "name"}
    return s


@pytest.fixture(scope="module", params=[3, 14])
def shift(request, tmp_path_factory):
    from sorter.sim.scenario import load_scenario
    tmp = tmp_path_factory.mktemp(f"shift{request.param}")
    scenario = load_scenario(random_scenario(tmp, request.param))
    rec = record_shift(scenario, request.param)
    write_event_files(tmp, rec)
    return tmp, scenario, request.param, rec


def write_event_files(tmp, rec):
    """``base.csv`` (the plan in force at the start), one CSV per plan switch and
    ``events.csv``: the recorded shift as ``sorter assign`` input."""
    parcels, ids, start, log, _, _ = rec
    mirror = Sorter.from_state(start)
    plan = mirror.sort_plan
    _plan_csv(tmp / "base.csv", {d: [str(c) for c in r] for d, r in plan.routes.items()})
    assert f'strategy = "{plan.strategy}"' in (tmp / "chutes.toml").read_text()
    names = {}
    for ev in log:
        if ev[0] == "switch":
            names[id(ev[1])] = f"switch{len(names)}.csv"
            _plan_csv(tmp / names[id(ev[1])], {d: [str(c) for c in r] for d, r in ev[1].routes.items()})
    assert names                                                     # plan switches happen
    rows = events_rows(mirror, parcels, ids, log, names)
    with open(tmp / "events.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("t", "event", "parcel", "destination", "recirculation", "sortable", "chute", "plan"))
        w.writerows(rows)


def test_recorded_shift_is_the_simulated_shift(shift):
    """The tick-by-tick run is ``simulate``'s run, and each parcel's output row (the last
    decision, its recirculations) is its last scan: a parcel that found its chute closed was
    decided again at the scanner with one more recirculation."""
    from sorter.sim.loop import simulate
    _, scenario, seed, (parcels, ids, _, log, _, raw) = shift
    res = simulate(scenario, seed=seed)
    for key in ("chute", "reason", "recirculations", "induct_tick", "discharge_tick", "state_ticks"):
        assert np.array_equal(res.loops[0].raw[key], raw[key]), key
    cols = res.parcel_columns()
    labels = res.loops[0].chute_ids
    scans = {}
    for ev in log:
        if ev[0] == "scan":
            scans.setdefault(ev[1], []).append(ev)
    assert sum(map(len, scans.values())) > 300 and len(set(e[3] for v in scans.values() for e in v)) >= 4
    for p, evs in scans.items():
        g = ids[p]
        assert [e[2] for e in evs] == list(range(len(evs)))         # recirculation 0, 1, 2, ...
        _, _, _, reason, chute = evs[-1]
        assert (cols["chute"][g], cols["reason"][g]) == (str(labels[chute]), REASONS[reason])
        if cols["status"][g] != "on_loop":
            assert cols["recirculations"][g] == len(evs) - 1


def test_shift_decisions_through_an_embedded_sorter(shift):
    """The shift's engine state at the start, restored with ``from_state`` (through JSON and
    pickle) and driven with the recorded events, decides every scan as the compiled loop did,
    and ends in the very same state."""
    _, _, _, (parcels, ids, start, log, sorter, _) = shift
    eng = pickle.loads(pickle.dumps(Sorter.from_state(json.loads(json.dumps(start)))))
    got, want = drive(eng, parcels, ids, log)
    assert got == want
    assert eng.state_dict() == sorter.state_dict()
    # restarted mid-shift from its own state (after plan switches and container changes)
    eng = Sorter.from_state(start)
    half = len(log) // 2
    got1, want1 = drive(eng, parcels, ids, log[:half])
    eng = Sorter.from_state(json.loads(json.dumps(eng.state_dict())))
    got2, want2 = drive(eng, parcels, ids, log[half:])
    assert got1 + got2 == want1 + want2 == want
    assert eng.state_dict() == sorter.state_dict()


def test_shift_decisions_through_sorter_assign_and_sorter_serve(shift):
    """The same scans and chute events as an events CSV for ``sorter assign`` and as telegrams
    for ``sorter serve`` (plans switched by file: only the routes change, the rest carries
    over, as the simulation's wave plans do): the same decisions, parcel by parcel."""
    from sorter.plan import load_plan
    from sorter.service.server import Connection, Service
    tmp, _, _, (_, _, _, log, sorter, _) = shift
    rows = list(csv.reader(open(tmp / "events.csv")))[1:]
    want = [(str(sorter.chute_ids[e[4]]), REASONS[e[3]]) for e in log if e[0] == "scan"]

    replayed = Sorter(*load_plan(tmp / "base.csv", tmp / "chutes.toml"))
    out = []
    res = replay_events(replayed, tmp / "events.csv", write=lambda p, c, r: out.append((str(c), r)))
    assert out == want and not res.skipped

    svc = Service(Sorter(*load_plan(tmp / "base.csv", tmp / "chutes.toml")))
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    data = "".join(telegram(i + 1, r).replace("|switch", f"|{tmp}/switch") for i, r in enumerate(rows))
    svc.feed(conn, data.encode())
    answers = conn.transport.lines()
    assert not [a for a in answers if a.startswith("ERR")]
    assert [tuple(a.split("|")[3:]) for a in answers if a.startswith("DEST")] == want
    for eng in (replayed, svc.engine):
        assert _comparable(eng.state_dict()) == _comparable(sorter.state_dict())


def test_journal_recovery_continues_the_shift(shift, tmp_path):
    """``sorter serve`` stopped part-way (journal snapshots every few rows) and restarted from
    its journal continues exactly as the uninterrupted engine: the same decisions after the
    restart and the same state at the end."""
    from sorter.plan import load_plan
    from sorter.service.journal import restore
    from sorter.service.server import Connection, open_service
    tmp, _, _, (_, _, _, log, sorter, _) = shift
    rows = list(csv.reader(open(tmp / "events.csv")))[1:]
    lines = [telegram(i + 1, r).replace("|switch", f"|{tmp}/switch") for i, r in enumerate(rows)]
    want = [(str(sorter.chute_ids[e[4]]), REASONS[e[3]]) for e in log if e[0] == "scan"]
    db = tmp_path / "j.db"
    answers = []
    cut = len(lines) * 2 // 5
    for part, args in ((lines[:cut], (tmp / "base.csv", tmp / "chutes.toml")),
                       (lines[cut:], (None, None))):
        svc, _ = open_service(*args, journal=db, snapshot_every=53, deadline_ms=3_600_000)
        conn = Connection(svc)
        conn.connection_made(FakeTransport())
        svc.feed(conn, "".join(part).encode())
        assert svc.journal.flush(60.0)
        answers += conn.transport.lines()
        svc.journal.close()
    assert [tuple(a.split("|")[3:]) for a in answers if a.startswith("DEST")] == want
    ref = Sorter(*load_plan(tmp / "base.csv", tmp / "chutes.toml"))
    replay_events(ref, tmp / "events.csv")
    assert restore(db).sorter.state_dict() == ref.state_dict()


# -- the robot sorting floor -----------------------------------------------------------------
@pytest.mark.parametrize("seed", [5, 21])
def test_floor_parcels_go_where_an_embedded_sorter_sends_them(seed):
    """A robot floor with operator chute events, faults, no-reads and tiny containers: every
    engine call FloorSim makes, replayed into a fresh Sorter, gives the same decisions; every
    parcel is dropped into the chute of its last decision, with its reason, at that chute's
    station, never into a closed destination/overflow chute (a closed reject chute only as the
    engine's last resort: no reject chute open when it was routed); drops per chute are the
    engine's discharges."""
    from sorter.agv.floor_sim import FloorSimOptions
    from sorter.agv.lifelong import make_run
    from sorter.layout.generate import sortation_floor
    rng = np.random.default_rng(seed)
    floor = sortation_floor(18, 26, 2, 9, seed=seed)
    opt = FloorSimOptions(chute_capacity=3, container_change_steps=int(rng.integers(0, 8)),
                          fault_rate=0.01, repair_steps=8, strategy="round_robin",
                          max_recirculation=1, no_read_rate=0.1)
    planner, fs = make_run(floor, 10, seed=seed, floor_sim=opt)
    eng = fs.sorter
    start, calls, last, drops = eng.state_dict(), [], {}, []
    for name in ("assign_many", "discharged", "set_state", "container_changed"):
        def wrapped(*a, _f=getattr(eng, name), _n=name):
            out = _f(*a)
            calls.append((_n, a, out))
            return out
        setattr(eng, name, wrapped)
    route, drop = fs._route, fs._drop

    def my_route(robots, goals):
        st = eng._arrays()
        route(robots, goals)
        reject_open = bool(((st["kind"] == 2) & (st["state"] == 0)).any())
        for r in robots:
            last[int(r)] = (int(fs.chute[r]), int(fs.reason[r]), reject_open)

    def my_drop(planner, robots, goals, t):
        chute, reason, state = fs.chute.copy(), fs.reason.copy(), eng._arrays()["state"]
        drop(planner, robots, goals, t)
        for r in robots[fs.chute[robots] == -1]:
            drops.append((int(r), int(chute[r]), int(reason[r]), int(state[chute[r]]),
                          int(planner.positions[r])))
    fs._route, fs._drop = my_route, my_drop
    goals = fs.start(planner)
    planner.prepare(goals)
    labels = eng.chute_ids
    for _ in range(500):
        if rng.random() < 0.06:
            fs.set_chute_state(labels[int(rng.integers(len(labels)))], str(rng.choice(STATES)))
            goals = fs._goals
        fs.pre_step(planner, goals)
        planner.step(goals)
        goals = fs.update(planner)
        for r, c, reason, state, pos in drops:
            assert (c, reason) == last[r][:2]
            assert pos in set(int(x) for x in floor.chutes[fs.eng2floor[c]].cells)
            assert state == 0 or (fs.kind[c] == 2 and not last[r][2]), (labels[c], STATES[state])
        drops.clear()
    assert fs.dropped > 100 and fs.drops_by_reason[2:].sum() > 0
    ref = Sorter.from_state(start)
    n = 0
    for name, a, out in calls:
        res = getattr(ref, name)(*a)
        if name == "assign_many":
            assert np.array_equal(res[0], out[0]) and np.array_equal(res[1], out[1])
            n += len(out[0])
    assert n > fs.dropped and ref.state_dict() == eng.state_dict()
    by_chute = eng.counters()["by_chute"]
    assert [by_chute[c]["discharged"] for c in labels] == fs.drops_by_chute.tolist()


# -- regressions -------------------------------------------------------------------------------
def test_replay_recirculation_of_thousands_of_digits_is_over_the_limit(tmp_path):
    """Regression: an events row whose recirculation had more than 4,300 digits stopped
    ``sorter assign`` with int()'s bare ValueError (no file, line or field), even with
    ``--on-error skip``; ``sorter serve`` refuses that one telegram and carries on. Now the
    count reads as over any limit, as ``99999999999`` does, and a zero-padded count reads as
    its value."""
    from sorter.resources import seed_path
    ev = tmp_path / "ev.csv"
    ev.write_text("t,event,parcel,destination,recirculation,sortable,chute,plan\n"
                  f"0,scan,P1,01422,{'7' * 5000},1,,\n"
                  f"0,scan,P2,01422,{'0' * 5000}2,1,,\n"
                  "0,scan,P3,01422,00000000001,1,,\n")
    s = Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))
    ref = Sorter.from_state(s.state_dict())
    out = []
    res = replay_events(s, ev, on_error="skip", write=lambda *a: out.append(a))
    assert not res.skipped
    assert out == [("P1", *ref.assign("01422", 10**9)), ("P2", *ref.assign("01422", 2)),
                   ("P3", *ref.assign("01422", 1))]
    assert out[0][2] == "max_recirculation" and out[2][2] == "ok"


@pytest.mark.parametrize("which", ["chutes", "scenario"])
def test_toml_number_of_thousands_of_digits_is_an_input_error(tmp_path, which):
    """Regression: a chute table or scenario TOML holding a number of more than 4,300 digits
    failed with ``tomllib``'s bare ValueError from int() (no file, no line); now it is an
    :class:`InputError` naming the file and the line."""
    from sorter.plan import load_chutes
    from sorter.resources import seed_path
    from sorter.sim.scenario import load_scenario
    src = seed_path("plan/demo_chutes.toml" if which == "chutes" else "scenarios/small.toml")
    text = src.read_text()
    key = "capacity = 40" if which == "chutes" else "seed = 11"
    assert key in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(key, key.split("=")[0] + "= " + "9" * 5000, 1))
    with pytest.raises(InputError) as e:
        (load_chutes if which == "chutes" else load_scenario)(bad)
    assert str(bad) in str(e.value) and e.value.line == text[:text.index(key)].count("\n") + 1

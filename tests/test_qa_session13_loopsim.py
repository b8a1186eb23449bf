"""QA session 13: the loop-sorter shift simulation against an independent tick model.

``tests/naive_loop13.py`` is a slow plain-Python loop sorter written from the documented
rules (a rotating list of carriers, chute states derived on demand, decisions by the
``Sorter`` rules). Fed the simulator's own pre-drawn inputs it must agree with
``sorter.sim.simulate`` parcel by parcel (induct tick, discharge tick, chute, reason,
recirculations) and KPI by KPI. Small hand-made scenarios with deterministic arrivals pin
the documented behaviour outright: capacity-1 containers whose change is longer than a
lap, max recirculation 0/1/2, a chute blocked for a window, a plan switch between waves,
two inducts competing for carriers, an overflow chute, a full reject chute.

Loop of the hand-made scenarios: 60 m at 2 m/s, 0.6 m pitch: 100 carriers, 0.3 s a tick,
30 s a lap. Induct I1 at 2 m (slot 3), scanner at 10 m (slot 16): a parcel placed at tick t
is scanned at tick t + 13. Chute slots: 30 m -> 50, 45 m -> 75, 54 m -> 90, 57 m -> 95.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

import sorter.sim.loop as simloop
from naive_loop13 import REASONS, naive_kpis, run_naive
from sorter.constants import REJECT_REASONS
from sorter.layout.loop import Induct, LoopSorter, generate_loop_plan
from sorter.plan import Chute, ChuteTable, SortPlan
from sorter.sim import compute_kpis, load_scenario, simulate
from sorter.sim.arrivals import Parcels
from sorter.sim.scenario import (Blockage, Blockages, Containers, DestinationMix, Distribution,
                                 LoopSpec, ScanRates, Scenario, Wave)
from sorter.resources import seed_path

DT = 0.3


def const(x):
    return Distribution("const", {"value": float(x)})


def _layout(chutes, inducts=((2.0, 3600.0),)):
    table = ChuteTable([Chute(cid, kind, cap, pos, side) for cid, kind, cap, pos, side in chutes])
    ind = tuple(Induct(f"I{i + 1}", pos, rate) for i, (pos, rate) in enumerate(inducts))
    return LoopSorter(length_m=60.0, speed_mps=2.0, pitch_m=0.6, inducts=ind, scanner_m=10.0,
                      chutes=table, name="L")


def _plan(routes, *, max_rec=1, overflow=(), strategy="fill_first", reject=None, name="p1"):
    reject = reject or {r: "R" for r in REJECT_REASONS}
    return SortPlan(routes=routes, reject=reject, overflow=tuple(overflow), strategy=strategy,
                    max_recirculation=max_rec, name=name)


_CHUTES = [("D", "destination", 1, 30.0, "left"), ("R", "reject", 1000, 54.0, "left")]


def _scenario(layout, plan, *, shift_s=300.0, change=60.0, react=0.0, blocks=(), waves=None):
    waves = waves or [Wave("w", 0.0, shift_s, 0.0)]
    return Scenario(loops=[LoopSpec(layout, plan)], waves=waves, shift_hours=shift_s / 3600.0,
                    interval_minutes=1.0, scan=ScanRates(0.0, 0.0),
                    destinations=DestinationMix("uniform"),
                    containers=Containers(const(change), const(react)),
                    blockages=Blockages(0.0, const(1.0), tuple(blocks)))


def _parcels(sc, items):
    """items: (arrival s, induct index, code | None = unknown, no_read, sortable)."""
    codes = sorted({c for lp in sc.loops for c in lp.plan.routes}
                   | {c for w in sc.waves for p in w.plans.values() for c in p.routes})
    items = sorted(items, key=lambda x: x[0])
    n = len(items)
    return Parcels(
        arrival_s=np.array([x[0] for x in items], dtype=np.float64),
        loop=np.zeros(n, dtype=np.int16),
        induct=np.array([x[1] for x in items], dtype=np.int16),
        dest=np.array([codes.index(x[2]) if x[2] is not None else -1 for x in items],
                      dtype=np.int32),
        no_read=np.array([x[3] if len(x) > 3 else False for x in items], dtype=bool),
        sortable=np.array([x[4] if len(x) > 4 else True for x in items], dtype=bool),
        wave=np.zeros(n, dtype=np.int16), codes=codes)


def _run(sc, monkeypatch=None, parcels=None, seed=0):
    """Simulate and run the oracle on the same inputs; check they agree; return both."""
    if parcels is not None:
        real = simloop.draw_parcels

        def fake(scenario, rng):
            real(scenario, rng)                # the same random numbers used up
            return parcels
        monkeypatch.setattr(simloop, "draw_parcels", fake)
    res = simulate(sc, seed=seed)
    k = compute_kpis(res)
    rows, loops = run_naive(sc, seed, parcels=parcels)
    _agree(res, k, sc, rows, loops)
    return res, k, rows


def _agree(res, k, sc, rows, loops):
    cols = res.parcel_columns()
    assert len(rows) == len(cols["status"])
    for lr, st in zip(res.loops, loops):
        raw = lr.raw
        for j, g in enumerate(lr.parcel_ids):
            r = rows[g]
            got = (int(raw["induct_tick"][j]), int(raw["discharge_tick"][j]), cols["chute"][g],
                   cols["reason"][g], int(raw["recirculations"][j]), cols["status"][g],
                   REASONS[raw["first_reason"][j]] if raw["first_reason"][j] >= 0 else "")
            want = (r["induct_tick"], r["discharge_tick"], r["chute"], r["reason"],
                    r["recirculations"], r["status"], r["first_reason"])
            assert got == want, f"parcel {g}: simulator {got}, oracle {want}"
        assert raw["induct_blocked"].sum(0).tolist() == st["blocked"]
        assert raw["induct_starved"].sum(0).tolist() == st["starved"]
        assert int(raw["full_events"]) == st["full_events"]
        assert int(raw["series"][:, 6].sum()) == st["container_changes"]
        assert int(raw["series"][:, 4].sum()) == st["loaded_ticks"]
        names = ("open", "full", "container_change", "blocked")
        for ci, cid in enumerate(lr.chute_ids):
            assert raw["state_ticks"][ci, :4].tolist() == \
                [st["state_ticks"][str(cid)][s] for s in names], cid
    nk = naive_kpis(sc, rows, loops)
    for key, v in nk.items():
        if isinstance(v, dict):
            assert k[key] == v, key
        else:
            assert math.isclose(k[key], v, rel_tol=1e-9, abs_tol=1e-9), (key, k[key], v)
    # the time series: row i counts what happened in [start_s[i], start_s[i + 1])
    ts = k["intervals"]
    edges = list(ts["start_s"]) + [math.inf]
    for col, key, want in (("inducted", "induct_t", None), ("sorted", "discharge_t", "sorted"),
                           ("rejected", "discharge_t", "rejected")):
        times = [r[key] for r in rows if not math.isnan(r[key])
                 and (want is None or r["status"] == want)]
        assert ts[col] == [sum(a - 1e-6 <= x < b - 1e-6 for x in times)
                           for a, b in zip(edges[:-1], edges[1:])], col
    loop_names = [lp.name for lp in sc.loops]
    for c in k["chutes"]:
        assert c["discharged"] == sum(r["status"] in ("sorted", "rejected") and r["chute"] ==
                                      str(c["id"]) and r["loop"] == loop_names.index(c["loop"])
                                      for r in rows)


def _row(res, i):
    cols = res.parcel_columns()
    lr = res.loops[0]
    j = int(np.flatnonzero(lr.parcel_ids == i)[0])
    return (int(lr.raw["induct_tick"][j]), int(lr.raw["discharge_tick"][j]), cols["chute"][i],
            cols["reason"][i], int(cols["recirculations"][i]))


# ------------------------------------------------------------------ hand-pinned scenarios

@pytest.mark.parametrize("max_rec", [0, 1, 2])
def test_capacity_one_container_change_longer_than_a_lap(monkeypatch, max_rec):
    """One induct, one destination chute D of capacity 1, a 60 s change (two laps), no
    overflow. P0 (0 s): placed tick 0, scanned 13, into D at 47, D full; the change runs
    from tick 48 to 248. P1 (5 s): placed tick 17, scanned 30 while D was still open, finds
    D changing at tick 64: one lap round, rescanned at 130 with one recirculation -> with
    max 0 a max_recirculation reject, else D is still changing: no_chute_available; into R
    (slot 90) at tick 204. P2 (10 s): placed 34, scanned 47 just after P0 filled D: a
    no_chute_available reject at once, no lap. P3 (80 s, after the change): sorted."""
    sc = _scenario(_layout(_CHUTES), _plan({"X": ("D",)}, max_rec=max_rec), shift_s=300.0)
    parcels = _parcels(sc, [(0.0, 0, "X"), (5.0, 0, "X"), (10.0, 0, "X"), (80.0, 0, "X")])
    res, k, _ = _run(sc, monkeypatch, parcels)
    assert _row(res, 0) == (0, 47, "D", "ok", 0)
    reason = "max_recirculation" if max_rec == 0 else "no_chute_available"
    assert _row(res, 1) == (17, 204, "R", reason, 1)
    assert _row(res, 2) == (34, 34 + 13 + 74, "R", "no_chute_available", 0)
    p3 = int(math.ceil(80.0 / DT))
    assert _row(res, 3) == (p3, p3 + 47, "D", "ok", 0)
    assert k["sorted"] == 2 and k["rejected"] == 2 and k["recirculations"] == 1
    assert k["first_pass_sort_pct"] == 50.0 and k["recirculation_pct"] == 25.0
    # two changes of 200 ticks (from ticks 48 and 315) in the 1,000-tick shift
    assert k["chutes"][0]["container_change_pct"] == pytest.approx(100 * 400 / 1000)


@pytest.mark.parametrize("max_rec", [0, 1, 2])
def test_max_recirculation_decides_a_parcel_whose_chute_reopened(monkeypatch, max_rec):
    """A 10 s change (34 ticks, under a lap): P1 (1 s, placed tick 4, scanned 17) finds D
    changing at tick 51 and is rescanned at 117 with D open again: with max 0 it is a
    max_recirculation reject (into R at 191); with max 1 or 2 it is sorted into D at 151,
    one lap late (induct to chute 147 ticks)."""
    sc = _scenario(_layout(_CHUTES), _plan({"X": ("D",)}, max_rec=max_rec), shift_s=120.0,
                   change=10.0)
    res, k, _ = _run(sc, monkeypatch, _parcels(sc, [(0.0, 0, "X"), (1.0, 0, "X")]))
    assert _row(res, 0) == (0, 47, "D", "ok", 0)
    if max_rec == 0:
        assert _row(res, 1) == (4, 191, "R", "max_recirculation", 1)
        assert k["rejects_by_reason"]["max_recirculation"] == 1
    else:
        assert _row(res, 1) == (4, 151, "D", "ok", 1)
        assert k["induct_to_chute_s_p50"] == pytest.approx((47 + 147) / 2 * DT)
    assert k["laps_per_parcel"] == 1.5


def test_a_recirculating_parcel_meets_max_recirculation_after_that_many_laps(monkeypatch):
    """Capacity 1 and a steady stream: parcels keep finding D refilled by the parcel just
    ahead; every parcel sorted has at most max recirculations, and each max_recirculation
    reject has exactly max + 1 (the lap that exceeded it)."""
    for max_rec in (0, 1, 2):
        sc = _scenario(_layout(_CHUTES), _plan({"X": ("D",)}, max_rec=max_rec), shift_s=240.0,
                       change=3.0)
        parcels = _parcels(sc, [(1.0 * i, 0, "X") for i in range(150)])
        res, k, rows = _run(sc, monkeypatch, parcels)
        rec = [r["recirculations"] for r in rows if r["reason"] == "max_recirculation"
               and r["status"] == "rejected"]
        assert rec and set(rec) == {max_rec + 1}
        assert max(r["recirculations"] for r in rows if r["status"] == "sorted") <= max_rec
        monkeypatch.undo()


def test_plan_switch_takes_effect_at_the_first_tick_at_or_after_the_wave_start(monkeypatch):
    """The second wave starts at 55.0 s = tick 183.3. Its plan is in force from its start:
    tick 184 (55.2 s), not tick 183 (54.9 s, the nearest tick, before the wave). P0 is
    scanned at tick 183 under the first plan (D), P1 at tick 184 under the second (E);
    P2, scanned before the switch, keeps D when it is discharged after it."""
    chutes = _CHUTES[:1] + [("E", "destination", 1000, 45.0, "left")] + _CHUTES[1:]
    chutes[0] = ("D", "destination", 1000, 30.0, "left")
    p1, p2 = _plan({"X": ("D",)}), _plan({"X": ("E",)}, name="p2")
    lay = _layout(chutes, inducts=((2.0, 36000.0),))       # ready again after 0.1 s
    sc = _scenario(lay, p1, shift_s=120.0,
                   waves=[Wave("a", 0.0, 55.0, 0.0), Wave("b", 55.0, 120.0, 0.0, plans={"L": p2})])
    parcels = _parcels(sc, [(170 * DT, 0, "X"), (171 * DT - 0.01, 0, "X"), (160 * DT, 0, "X")])
    res, k, _ = _run(sc, monkeypatch, parcels)
    assert _row(res, 0)[:3] == (160, 160 + 47, "D")        # scanned 173, before the switch
    assert _row(res, 1)[:3] == (170, 170 + 47, "D")        # scanned 183 = 54.9 s < 55 s
    assert _row(res, 2)[:3] == (171, 171 + 13 + 59, "E")   # scanned 184 = 55.2 s
    assert k["loops"][0]["plan_switches"] == [{"t_s": 0.0, "plan": "p1"},
                                              {"t_s": round(184 * DT, 3), "plan": "p2"}]


def test_a_chute_blocked_for_a_window(monkeypatch):
    """D blocked from 20 s (tick 67) for 30 s (to tick 167), overflow O at 45 m. A parcel
    scanned before the blockage and reaching D inside it recirculates; parcels scanned in
    the window go to the overflow chute; after it D takes parcels again."""
    chutes = [("D", "destination", 1000, 30.0, "left"), ("O", "overflow", 1000, 45.0, "left"),
              ("R", "reject", 1000, 54.0, "left")]
    blk = Blockage("L", "D", 20.0, const(30.0))
    sc = _scenario(_layout(chutes), _plan({"X": ("D",)}, overflow=("O",)), shift_s=150.0,
                   blocks=[blk])
    parcels = _parcels(sc, [(i * 2.0, 0, "X") for i in range(40)])
    res, k, rows = _run(sc, monkeypatch, parcels)
    blocked = range(67, 167)
    for r in rows:
        if r["status"] != "sorted":
            continue
        scan = r["induct_tick"] + 13
        if r["recirculations"] == 0:
            assert r["chute"] == ("O" if scan in blocked else "D"), r
            if r["chute"] == "D":
                assert r["discharge_tick"] not in blocked
    assert any(r["recirculations"] == 1 for r in rows)         # reached D in the window
    assert k["sorted_to_overflow"] > 0 and k["sorted_to_destination"] > 0
    d = next(c for c in k["chutes"] if c["id"] == "D")
    assert d["blocked_pct"] == pytest.approx(100 * 100 / 500)


def test_two_inducts_compete_for_carriers(monkeypatch):
    """I1 at 2 m (slot 3) places a parcel on every carrier (12,000/h on 0.3 s ticks), I2 at
    3.6 m (slot 6, 6,000/h) just downstream only gets the two carriers that were past I1
    when the shift began (ticks 0 and 2): from then on every carrier reaching it is taken,
    so I2 is blocked whenever it is ready; I1 never is (D empties the carriers before they
    are back)."""
    chutes = [("D", "destination", 10**6, 30.0, "left"), ("R", "reject", 1000, 54.0, "left")]
    lay = _layout(chutes, inducts=((2.0, 12000.0), (3.6, 6000.0)))
    sc = _scenario(lay, _plan({"X": ("D",)}), shift_s=60.0)
    items = [(0.0, i % 2, "X") for i in range(400)]
    res, k, rows = _run(sc, monkeypatch, _parcels(sc, items))
    ind = k["loops"][0]["inducts"]
    assert (ind[0]["inducted"], ind[1]["inducted"]) == (200, 2)
    assert ind[0]["blocking_pct"] == 0 and ind[1]["blocking_pct"] == pytest.approx(100 * 196 / 200)
    assert ind[0]["starvation_pct"] == 0 and k["queued_at_end"] == 198


def test_overflow_then_full_reject_chute_keeps_the_reason(monkeypatch):
    """D and overflow O have capacity 1 and a long change; rejects go to R1 (capacity 2),
    and R2 takes them while R1 is full or changing (reason kept); no-reads and unsortable
    parcels go to their own reject chutes at once."""
    chutes = [("D", "destination", 1, 30.0, "left"), ("O", "overflow", 1, 45.0, "left"),
              ("R1", "reject", 2, 54.0, "left"), ("R2", "reject", 1000, 57.0, "left")]
    reject = {r: "R1" for r in REJECT_REASONS}
    reject["not_sortable"] = "R2"
    sc = _scenario(_layout(chutes), _plan({"X": ("D",)}, overflow=("O",), reject=reject),
                   shift_s=200.0, change=100.0)
    items = [(3.0 * i, 0, "X") for i in range(40)] + [(30.5, 0, "X", True),
                                                      (31.5, 0, "X", False, False)]
    res, k, rows = _run(sc, monkeypatch, _parcels(sc, items))
    assert k["sorted_to_destination"] >= 1 and k["sorted_to_overflow"] >= 1
    assert k["first_pass_to_destination_pct"] < k["first_pass_sort_pct"]
    r1 = [r for r in rows if r["chute"] == "R1" and r["status"] == "rejected"]
    r2 = [r for r in rows if r["chute"] == "R2" and r["status"] == "rejected"]
    assert len(r1) >= 2 and any(r["reason"] != "not_sortable" for r in r2)
    assert k["rejects_by_reason"]["no_read"] == 1 and k["rejects_by_reason"]["not_sortable"] == 1
    assert k["chute_full_events_per_hour"] * 200 / 3600 >= 3      # D, O and R1 filled


# ------------------------------------------------------------------ random scenarios

def _random_scenario(seed):
    rng = np.random.default_rng(1000 + seed)
    pick = lambda xs: xs[int(rng.integers(0, len(xs)))]          # noqa: E731
    n_ind = int(rng.integers(1, 4))
    base = LoopSorter.generate(length_m=pick([40.0, 60.0, 90.0]), speed_mps=2.0, pitch_m=0.6,
                               n_chutes=int(rng.integers(6, 14)),
                               n_overflow=int(rng.integers(0, 3)),
                               n_reject=int(rng.integers(1, 3)), capacity=pick([1, 2, 4, 10]),
                               n_inducts=n_ind, induct_rate=pick([1500.0, 3000.0, 7000.0]))
    n_dc = sum(c.kind == "destination" for c in base.chutes)
    strat = pick(["fill_first", "round_robin", "least_loaded"])
    plan = generate_loop_plan(base.chutes, max(1, n_dc - 1), strategy=strat,
                              max_recirculation=int(rng.integers(0, 3)), busy=0.5, seed=seed)
    plan2 = generate_loop_plan(base.chutes, max(1, n_dc // 2), strategy=strat,
                               max_recirculation=int(rng.integers(0, 3)), seed=seed + 1,
                               name="second")
    shift = pick([240.0, 420.0])
    split = float(rng.uniform(0.3, 0.7)) * shift
    rate = pick([2000.0, 5000.0, 12000.0])
    plans = {base.name: plan2} if rng.random() < 0.7 else {}
    waves = [Wave("a", 0.0, split, rate), Wave("b", split, shift, rate * 0.7, plans=plans)]
    dist = pick([const(pick([0.0, 4.0, 20.0])), Distribution("uniform", {"low": 2.0, "high": 40.0}),
                 Distribution("exponential", {"mean": 10.0})])
    return Scenario(loops=[LoopSpec(base, plan)], waves=waves, shift_hours=shift / 3600.0,
                    interval_minutes=1.0, seed=seed, max_recirculation=pick([None, None, 0, 2]),
                    destinations=DestinationMix(pick(["zipf", "uniform", "split"]),
                                                unknown_rate=pick([0.0, 0.05])),
                    scan=ScanRates(pick([0.0, 0.05]), pick([0.0, 0.02])),
                    containers=Containers(dist, pick([const(0.0), const(5.0), dist])),
                    blockages=Blockages(pick([0.0, 30.0]), Distribution("uniform",
                                                                       {"low": 5.0, "high": 60.0})))


@pytest.mark.parametrize("block", range(4))
def test_random_small_scenarios_agree_parcel_by_parcel(block):
    """1-3 inducts, capacity 1-10, every strategy, max recirculation 0-2, overflow or not,
    1-2 reject chutes, random and constant container times (0 s too), random blockages,
    no-reads, unsortables, unknown codes, a plan switch to a plan serving fewer codes."""
    for seed in range(block * 15, block * 15 + 15):
        _run(_random_scenario(seed), seed=seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_shipped_small_scenario_agrees_parcel_by_parcel(seed):
    sc = load_scenario(seed_path("scenarios/small.toml"))
    res, k, _ = _run(sc, seed=seed)
    assert k["recirculations"] > 0 and k["rejects_by_reason"]["no_chute_available"] > 0


def test_the_shipped_hub_first_6_minutes_agree_parcel_by_parcel():
    sc = load_scenario(seed_path("scenarios/hub.toml"))
    sc = replace(sc, shift_hours=0.1, waves=[w for w in sc.waves if w.start_s < 360.0])
    _run(sc, seed=2)


def test_an_induct_rated_one_parcel_per_carrier_fills_every_carrier(monkeypatch):
    """12,000/h on 0.3 s carriers is one parcel per carrier: a busy induct places 6,000 in
    30 minutes, on consecutive carriers. Its ready time is a running sum of 0.3 s cycles,
    which drifted a few ulps past the tick's time and skipped a carrier now and then (5,997)."""
    chutes = [("D", "destination", 10**6, 30.0, "left"), ("R", "reject", 1000, 54.0, "left")]
    sc = _scenario(_layout(chutes, inducts=((2.0, 12000.0),)), _plan({"X": ("D",)}),
                   shift_s=1800.0)
    real = simloop.draw_parcels
    parcels = _parcels(sc, [(0.0, 0, "X")] * 6100)
    monkeypatch.setattr(simloop, "draw_parcels", lambda s, rng: (real(s, rng), parcels)[1])
    res = simulate(sc)
    it = res.loops[0].raw["induct_tick"]
    assert np.array_equal(np.sort(it[it >= 0]), np.arange(6000))
    assert compute_kpis(res)["loops"][0]["inducts"][0]["blocking_pct"] == 0


def test_the_shipped_default_shift_first_20_minutes_agree_parcel_by_parcel():
    sc = load_scenario(seed_path("scenarios/default.toml"))
    sc = replace(sc, shift_hours=1 / 3, waves=[w for w in sc.waves if w.start_s < 1200.0])
    _run(sc, seed=4)

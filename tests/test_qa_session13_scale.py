"""QA session 13, scale: behaviour that must not grow faster than the input.

No timing assertions: each test checks the algorithm (how often a helper runs, what memory a
step allocates, results at size equal to a plain oracle). Figures: bench/RESULTS.md, "Scale".
"""
from __future__ import annotations

import csv
import math
import tomllib
import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sorter.sweep as sweep_mod
from sorter.sim import kpis as kpis_mod
from sorter.sim.kpis import compute_kpis
from sorter.sim.loop import simulate
from sorter.sim.scenario import load_scenario, parse_scenario


SMALL = "seeds/scenarios/small.toml"


def _many_waves(path, n_waves, *, interval_minutes=None):
    """The scenario of ``path`` with its one wave cut into ``n_waves`` waves of varying rate."""
    sc = load_scenario(path)
    w0 = sc.waves[0]
    span = (w0.end_s - w0.start_s) / n_waves
    waves = [replace(w0, name=f"w{i}", start_s=w0.start_s + i * span,
                     end_s=w0.start_s + (i + 1) * span,
                     rate_per_hour=w0.rate_per_hour * (0.6 + 0.2 * (i % 4)))
             for i in range(n_waves)]
    sc = replace(sc, waves=waves)
    if interval_minutes is not None:
        sc = replace(sc, interval_minutes=interval_minutes)
    return sc


# --------------------------------------------------------------------------- sorter run: KPIs

@given(st.lists(st.one_of(st.floats(-5, 105), st.just(float("nan"))), max_size=60),
       st.floats(-10, 110), st.floats(-10, 110))
@settings(max_examples=200, deadline=None)
def test_count_in_matches_mask_oracle(values, a, b):
    x = np.array(values, dtype=float)
    want = int(np.sum((x >= a) & (x < b)))
    assert kpis_mod._count_in(np.sort(x), a, b) == want


def test_per_wave_rates_at_many_waves_equal_the_mask_oracle(monkeypatch):
    """Hundreds of waves: per-wave rates are two binary searches per wave (not a pass over
    every parcel per wave), and equal the per-parcel mask computation exactly."""
    sc = _many_waves(SMALL, 120)
    res = simulate(sc, seed=4)
    calls = []
    real = kpis_mod._count_in
    monkeypatch.setattr(kpis_mod, "_count_in", lambda *a: calls.append(1) or real(*a))
    k = compute_kpis(res)
    assert len(calls) == 3 * len(sc.waves)
    cols = res.parcel_columns()
    status = cols["status"]
    assert len(k["per_wave"]) == 120
    for w, pw in zip(res.scenario.waves, k["per_wave"]):
        a, b = w.start_s, min(w.end_s, res.scenario.shift_s)
        hours = max(b - a, 1e-9) / 3600.0
        it, dt_ = cols["induct_t"], cols["discharge_t"]
        assert pw["offered_per_hour"] == float(
            np.sum((cols["arrival_t"] >= a) & (cols["arrival_t"] < b)) / hours)
        assert pw["inducted_per_hour"] == float(np.sum((it >= a) & (it < b)) / hours)
        assert pw["sorted_per_hour"] == float(
            np.sum((status == "sorted") & (dt_ >= a) & (dt_ < b)) / hours)
    # conservation over the waves: every parcel arrived in exactly one wave's hours
    offered = sum(pw["offered_per_hour"] * (pw["end_h"] - pw["start_h"]) for pw in k["per_wave"])
    assert math.isclose(offered, k["offered"], rel_tol=1e-9)


def _long_fine_scenario():
    """24 h of 1-minute intervals on a loop of 1,200 chutes at a low rate: the interval x
    chute arrays dwarf the parcel arrays."""
    raw = tomllib.loads(open("seeds/scenarios/bench_8h.toml").read())
    raw["scenario"].update(shift_hours=24, interval_minutes=1)
    raw["loop"].update(n_chutes=1200, length_m=1200.0, n_destinations=1000)
    raw["wave"][0].update(end_h=24.0, rate_per_hour=300)
    return parse_scenario(raw)


def test_long_fine_grained_shift_holds_interval_arrays_once():
    """simulate keeps the kernel's interval x chute arrays (no copy of them beside the
    kernel's), and compute_kpis allocates far less than one of them (no copy of the
    non-reject columns)."""
    sc = _long_fine_scenario()
    tracemalloc.start()
    try:
        res = simulate(sc, seed=1)
        _, peak_sim = tracemalloc.get_traced_memory()
        raw = res.loops[0].raw
        big = raw["unavail_ticks"].nbytes + raw["chute_sorted"].nbytes
        assert raw["unavail_ticks"].shape == (24 * 60, 1200)
        assert peak_sim < 1.5 * big        # a copy of both would make it >= 2x
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        k = compute_kpis(res)
        _, peak_k = tracemalloc.get_traced_memory()
        assert peak_k - base < 0.5 * raw["unavail_ticks"].nbytes
    finally:
        tracemalloc.stop()
    # the figures are those of the plain formula (reject chutes left out)
    lr = res.loops[0]
    from sorter.sim.loop import interval_bounds
    ticks = np.maximum(np.diff(interval_bounds(res.n_intervals, res.interval_s, lr.dt,
                                               lr.n_ticks)), 1)
    served = lr.chute_kind != 2
    want = lr.raw["unavail_ticks"][:, served].sum(1) / ticks
    assert k["intervals"]["chutes_unavailable"] == want.tolist()
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    assert k["offered"] == k["inducted"] + k["queued_at_end"]


def test_results_without_copy_are_the_same_figures():
    """LoopKernel.results(copy=False) hands out the kernel's own arrays; simulate uses it
    and the KPIs equal a run whose results were copied."""
    from sorter.sim.arrivals import draw_parcels
    from sorter.sim.loop import prepare_loop
    sc = load_scenario(SMALL)
    rng = np.random.default_rng(3)
    parcels = draw_parcels(sc, rng)
    _, kernel, _, switches = prepare_loop(sc, 0, parcels, rng)
    assert not switches
    kernel.run(kernel.n_ticks)
    a, b = kernel.results(), kernel.results(copy=False)
    c = kernel.results(copy=False)
    for key, v in a.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, b[key])
            assert not np.shares_memory(v, b[key])
            assert np.shares_memory(b[key], c[key])
        else:
            assert v == b[key]
    k1 = compute_kpis(simulate(sc, seed=3))
    k2 = compute_kpis(simulate(sc, seed=3))
    k1.pop("wall_s"), k2.pop("wall_s")
    assert k1 == k2


def test_hub_conservation_at_moderate_size():
    res = simulate("seeds/scenarios/hub.toml", seed=2)
    k = compute_kpis(res)
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    assert k["offered"] == k["inducted"] + k["queued_at_end"] == len(res.parcels)
    assert sum(lp["offered"] for lp in k["loops"]) == k["offered"]
    assert sum(lp["sorted"] for lp in k["loops"]) == k["sorted"]
    assert sum(c["discharged"] for c in k["chutes"]) == k["sorted"] + k["rejected"]
    assert sum(k["intervals"]["sorted"]) == k["sorted"]


# --------------------------------------------------------------------------- sorter sweep

def test_t_quantile_bisects_once_per_df(monkeypatch):
    """Hundreds of points x many KPIs ask the same quantile: the O(df) CDF bisection runs
    once per (p, df), and the cached value is the bisection's own."""
    sweep_mod._t_quantile.cache_clear()
    calls = []
    real = sweep_mod._t_cdf
    monkeypatch.setattr(sweep_mod, "_t_cdf", lambda t, df: calls.append(df) or real(t, df))
    rng = np.random.default_rng(0)
    first = sweep_mod.mean_ci(rng.normal(size=30))
    n_one = len(calls)
    assert n_one > 0
    for _ in range(300):
        sweep_mod.mean_ci(rng.normal(size=30))
    assert len(calls) == n_one
    sweep_mod._t_quantile.cache_clear()
    x = rng.normal(size=30)
    m, h = sweep_mod.mean_ci(x)
    sd = np.std(x, ddof=1)
    assert h == pytest.approx(sweep_mod._t_quantile.__wrapped__(0.975, 29) * sd / math.sqrt(30),
                              rel=1e-12)
    assert sweep_mod.t_quantile(0.025, 29) == -sweep_mod.t_quantile(0.975, 29)
    assert math.isfinite(first[1])


# --------------------------------------------------------------------------- sorter mapf

def test_floor_sim_chute_map_on_a_floor_of_thousands_of_chutes():
    """The engine -> floor chute map equals labels.index per chute (the former, quadratic,
    code) on a floor of 2,401 chutes."""
    from sorter.agv.floor_sim import FloorSim
    from sorter.layout.generate import lattice_capacity, sortation_floor
    cap = lattice_capacity(200, 200)
    floor = sortation_floor(200, 200, 40, cap, seed=0)
    assert len(floor.chutes) >= 2000
    sim = FloorSim(floor, 20, 0, n_destinations=len(floor.chutes) // 2)
    labels = [s.label for s in floor.chutes]
    want = np.array([labels.index(str(c)) for c in sim.sorter.chute_ids])
    np.testing.assert_array_equal(sim.eng2floor, want)
    assert len(set(sim.eng2floor.tolist())) == len(sim.eng2floor)
    np.testing.assert_array_equal(sim.floor2eng[sim.eng2floor], np.arange(len(want)))


# --------------------------------------------------------------------------- sorter assign

def test_assign_counts_conserved_on_a_big_event_file(tmp_path):
    """200,000 events: one decision row per scan, the reason counts sum to it, and a bad row
    deep in the file is one error naming its line."""
    from sorter.cli import main
    plan = "seeds/plan/demo_plan.csv"
    dests = [r["destination"] for r in csv.DictReader(open(plan))]
    rng = np.random.default_rng(5)
    n = 200_000
    d = rng.integers(0, len(dests), n)
    u = rng.random(n)
    c = rng.integers(1, 301, n)
    ev = tmp_path / "ev.csv"
    scans = 0
    with open(ev, "w") as fh:
        fh.write("t,event,parcel,destination,recirculation,sortable,chute,plan\n")
        for i in range(n):
            if u[i] < 0.8:
                scans += 1
                dst = "" if u[i] < 0.01 else dests[d[i]]
                fh.write(f"{i},scan,P{i},{dst},0,1,,\n")
            elif u[i] < 0.97:
                fh.write(f"{i},discharged,,,,,C{c[i]:03d},\n")
            else:
                fh.write(f"{i},container_changed,,,,,C{c[i]:03d},\n")
    out = tmp_path / "dec.csv"
    rc = main(["assign", "--plan", plan, "--chutes", "seeds/plan/demo_chutes.toml",
               "--events", str(ev), "--out", str(out)])
    assert rc == 0
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["parcel", "chute", "reason"]
    assert len(rows) - 1 == scans
    from sorter import Sorter
    from sorter.replay import replay_events
    res = replay_events(Sorter.from_files(plan, "seeds/plan/demo_chutes.toml"), ev)
    assert res.decisions == scans == sum(res.by_reason.values())
    assert res.events == n
    # a bad row near the end: one InputError naming that line
    with open(ev, "a") as fh:
        fh.write("x,scan,P9,01422,0,1,,\n")
    from sorter.errors import InputError
    with pytest.raises(InputError) as ei:
        replay_events(Sorter.from_files(plan, "seeds/plan/demo_chutes.toml"), ev)
    assert f":{n + 2}" in str(ei.value) and "\n" not in str(ei.value)

"""QA session 15: shift KPIs recounted from the per-parcel outputs, on unusual but legal shifts.

Scenarios are written from scratch as a planner new to the tool would (README only): a shift
crossing midnight on clock times, one wave, many short waves, waves with no parcels, 100%
no-reads, one destination, more destination chutes than destinations, containers of one item
(chutes constantly full), max_recirculation 0, a plan switch between waves (and back), a
1-minute and a 3-day shift, a hub of two loops. For each, every KPI is recounted here with
pandas/numpy from the parcel rows (the columns of ``parcels.parquet``) and the time series
(``timeseries.csv``) -- never through ``sorter.sim.kpis`` -- and compared with ``kpis.json``.
One scenario goes the whole CLI way (``sorter run --out``: files, printed summary = kpis.json,
report without warnings); a robot floor with faults and arrival waves and a small seeded
sweep are checked the same way.
"""
from __future__ import annotations

import csv
import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from sorter.cli import main
from sorter.resources import seed_path
from sorter.sim import simulate
from sorter.sim.kpis import compute_kpis
from sorter.sim.scenario import load_scenario

REASONS = ("no_read", "unknown_destination", "max_recirculation", "no_chute_available",
           "not_sortable", "late")
PLAN = seed_path("plan")

# -- scenario writing ---------------------------------------------------------------------------


def _loop(name="L1", *, n_chutes=40, n_overflow=2, n_reject=2, capacity=12, n_dest=30,
          n_inducts=3, induct_rate=2500, table="[loop]"):
    return (f'{table}\nname = "{name}"\nlength_m = 120.0\nspeed_mps = 2.0\npitch_m = 0.8\n'
            f"n_chutes = {n_chutes}\nn_overflow = {n_overflow}\nn_reject = {n_reject}\n"
            f"capacity = {capacity}\nn_inducts = {n_inducts}\ninduct_rate = {induct_rate}\n"
            f"n_destinations = {n_dest}\n")


def _wave(name, a, b, rate=6500, extra=""):
    return (f'\n[[wave]]\nname = "{name}"\nstart_h = {a}\nend_h = {b}\n'
            f"rate_per_hour = {rate}\n{extra}\n")


def _scenario(hours, waves, *, seed=3, interval=5, head="", loop=None, mix='mix = "split"',
              no_read=0.02, not_sortable=0.005, extra=""):
    return (f'[scenario]\nname = "qa15"\nseed = {seed}\nshift_hours = {hours}\n'
            f"interval_minutes = {interval}\n{head}\n" + (loop or _loop()) + waves
            + f"\n[destinations]\n{mix}\n\n[scan]\nno_read_rate = {no_read}\n"
            f"not_sortable_rate = {not_sortable}\n\n[containers]\n"
            'change_time_s = { dist = "uniform", low = 40, high = 80 }\n'
            'reaction_time_s = { dist = "exponential", mean = 20 }\n' + extra)


def _plan_switch_scenario():
    inducts = "".join(f'[[loop.induct]]\nid = "I{i}"\nposition_m = {2 * i}.0\n'
                      "max_rate_per_hour = 3000\n" for i in range(1, 7))
    return (
        '[scenario]\nname = "switch and back"\nseed = 5\nshift_hours = 1.5\n'
        'shift_start = "23:30"\ninterval_minutes = 10\n'
        f'[loop]\nname = "CB1"\nscanner_m = 16.0\nchutes = "{PLAN / "demo_chutes.toml"}"\n'
        f'plan = "{PLAN / "demo_plan.csv"}"\n' + inducts
        + '[[wave]]\nname = "a"\nstart = "23:30"\nend = "00:00"\nrate_per_hour = 12000\n'
        + '[[wave]]\nname = "b"\nstart = "00:00"\nend = "00:40"\nrate_per_hour = 12000\n'
        + f'plan = "{PLAN / "demo_plan_wave2.csv"}"\n'
        + '[[wave]]\nname = "c"\nstart = "00:40"\nend = "01:00"\nrate_per_hour = 12000\n'
        + f'plan = "{PLAN / "demo_plan.csv"}"\n'
        + '[destinations]\nmix = "zipf"\nzipf_s = 0.8\nunknown_rate = 0.01\n'
        + "[scan]\nno_read_rate = 0.015\nnot_sortable_rate = 0.003\n")


def _many_destinations_scenario():
    """500 destinations on 10 destination chutes: a plan CSV beside the scenario (written by
    :func:`_write`)."""
    inducts = "".join(f'[[loop.induct]]\nid = "I{i}"\nposition_m = {2 * i}.0\n'
                      "max_rate_per_hour = 3000\n" for i in range(1, 5))
    return ('[scenario]\nname = "many destinations"\nseed = 2\nshift_hours = 1\n'
            f'[loop]\nname = "CB1"\nscanner_m = 16.0\nchutes = "{PLAN / "demo_chutes.toml"}"\n'
            'plan = "many_destinations.csv"\n' + inducts
            + _wave("a", 0, 1, 9000) + '[destinations]\nmix = "uniform"\n')


SCENARIOS = {
    "more_destinations_than_chutes": (1, _many_destinations_scenario),
    "single_wave": (1, lambda: _scenario(1, _wave("w", 0, 1))),
    "midnight_clock_waves": (4, lambda: _scenario(
        4, '\n[[wave]]\nname = "late"\nstart = "22:00"\nend = "00:30"\nrate_per_hour = 6000\n'
           '[[wave]]\nname = "night"\nstart = "00:30"\nend = "02:00"\nrate_per_hour = 5000\n',
        head='shift_start = "22:00"',
        extra='\n[blockages]\n[[blockages.scheduled]]\nchute = "C002"\nstart = "01:00"\n'
              "duration_s = 600\n")),
    "many_short_waves_and_empty_ones": (2, lambda: _scenario(
        2, "".join(_wave(f"w{i}", round(i * 0.1, 3), round(i * 0.1 + 0.05, 3),
                         0 if i % 4 == 3 else 7000) for i in range(20)), interval=1)),
    "all_no_reads": (0.5, lambda: _scenario(0.5, _wave("w", 0, 0.5), no_read=1.0)),
    "one_destination": (0.5, lambda: _scenario(0.5, _wave("w", 0, 0.5), mix='mix = "uniform"',
                                               loop=_loop(n_dest=1))),
    "one_destination_chute": (0.5, lambda: _scenario(0.5, _wave("w", 0, 0.5), loop=_loop(
        n_chutes=4, n_overflow=2, n_reject=1, n_dest=1))),
    "more_chutes_than_destinations": (0.5, lambda: _scenario(0.5, _wave("w", 0, 0.5),
                                                             loop=_loop(n_chutes=60, n_dest=3))),
    "containers_of_one": (0.5, lambda: _scenario(0.5, _wave("w", 0, 0.5),
                                                 loop=_loop(capacity=1))),
    "max_recirculation_0": (0.5, lambda: _scenario(0.5, _wave("w", 0, 0.5),
                                                   head="max_recirculation = 0")),
    "one_minute": (1 / 60, lambda: _scenario(1 / 60, _wave("w", 0, 1 / 60), interval=1)),
    "odd_tick_trucks_past_the_end": (1.3, lambda: (
        '[scenario]\nname = "odd"\nseed = 9\nshift_hours = 1.3\ninterval_minutes = 7\n'
        '[loop]\nname = "X"\nlength_m = 300.0\nspeed_mps = 2.2\npitch_m = 0.7\nn_chutes = 50\n'
        "n_overflow = 3\nn_reject = 2\ncapacity = 15\nn_inducts = 4\ninduct_rate = 3000\n"
        "n_destinations = 40\n"
        + _wave("a", 0, 0.4, 9000)
        + _wave("b", 0.6, 2.0, 11000, 'arrivals = "batched"\nbatch_size = 150\n'
                                       "unload_per_hour = 5000")
        + '[destinations]\nmix = "zipf"\nzipf_s = 1.2\nunknown_rate = 0.05\n'
        "[scan]\nno_read_rate = 0.03\nnot_sortable_rate = 0.01\n"
        "[blockages]\nrandom_per_hour = 6\n")),
    "plan_switch_and_back": (1.5, _plan_switch_scenario),
    "hub_of_two_loops": (1.5, lambda: (
        '[scenario]\nname = "mini hub"\nseed = 4\nshift_hours = 1.5\nshift_start = "23:30"\n'
        "interval_minutes = 10\n" + _loop("A", n_chutes=30, n_dest=20, capacity=10,
                                          table="[[loop]]")
        + _loop("B", n_chutes=30, n_dest=25, capacity=10, table="[[loop]]")
        + '[[wave]]\nname = "x"\nstart = "23:30"\nend = "00:15"\nrate_per_hour = 9000\n'
        + '[[wave]]\nname = "y"\nstart = "00:15"\nend = "01:00"\nrate_per_hour = 11000\n'
        + '[destinations]\nmix = "uniform"\nunknown_rate = 0.01\n[hub]\n'
          'split = "by_destination"\n')),
}


def _write(tmp_path, name):
    hours, text = SCENARIOS[name]
    path = tmp_path / f"{name}.toml"
    path.write_text(text())
    (tmp_path / "many_destinations.csv").write_text(
        "destination,chutes\n" + "".join(f"D{i:04d},C{i % 10 + 1:03d}\n" for i in range(500)))
    return hours, path


def _run_api(path, seed=None):
    """The KPIs and the parcel / interval tables exactly as ``sorter run --out`` writes them
    (kpis.json is ``compute_kpis``; parcels.parquet is ``parcel_columns``)."""
    res = simulate(path, seed=seed)
    k = json.loads(json.dumps({a: b for a, b in compute_kpis(res).items() if a != "wall_s"}))
    parcels = pd.DataFrame(res.parcel_columns())
    ts = pd.DataFrame(k["intervals"])
    chutes = pd.DataFrame(k["chutes"])
    caps = {(lp.name, c.id): c.capacity for lp in res.scenario.loops for c in lp.layout.chutes}
    return k, parcels, ts, chutes, caps


# -- the independent recount ---------------------------------------------------------------------


def _pct(a, b):
    return 100.0 * a / b if b else 0.0


def _pq(x, q):
    return float(np.percentile(x, q)) if len(x) else 0.0


def recount(k, p, ts, ch, hours, caps):
    """Every KPI of kpis.json from the parcels and the interval rows, with numpy/pandas."""
    shift_s = hours * 3600.0
    kind = {(r.loop, r.id): r.kind for r in ch.itertuples()}
    pk = np.array([kind.get((a, b), "") for a, b in zip(p["loop"], p["chute"])], dtype=object)
    inducted = p.induct_t.notna().to_numpy()
    left = p.discharge_t.notna().to_numpy()
    # the outcome from the times and the chute's kind alone (not the status column)
    status = np.where(~inducted, "queued", np.where(~left, "on_loop",
                      np.where(pk == "reject", "rejected", "sorted")))
    assert (status == p.status.to_numpy()).all()
    reason = p.reason.to_numpy()
    srt, rej, onl = status == "sorted", status == "rejected", status == "on_loop"
    done = srt | rej
    assert set(reason[srt]) <= {"ok", "overflow"}
    assert not set(reason[rej]) & {"ok", "overflow"}
    assert (pk[srt & (reason == "ok")] == "destination").all()
    assert (pk[srt & (reason == "overflow")] == "overflow").all()
    rec = p.recirculations.to_numpy()
    n_done = int(done.sum())
    exp = {
        "offered": len(p), "inducted": int(inducted.sum()), "sorted": int(srt.sum()),
        "rejected": int(rej.sum()), "on_loop_at_end": int(onl.sum()),
        "queued_at_end": int((~inducted).sum()),
        "sorted_to_destination": int((srt & (reason == "ok")).sum()),
        "sorted_to_overflow": int((srt & (reason == "overflow")).sum()),
        "recirculations": int(rec.sum()),
    }
    for key, v in exp.items():
        assert k[key] == v, key
    # conservation: every inducted parcel in exactly one outcome
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    assert k["offered"] == k["inducted"] + k["queued_at_end"]
    approx = {
        "sorted_per_hour": srt.sum() / hours, "offered_per_hour": len(p) / hours,
        "inducted_per_hour": inducted.sum() / hours,
        "recirculation_pct": _pct((done & (rec > 0)).sum(), n_done),
        "laps_per_parcel": float(np.mean(1 + rec[done])) if n_done else 0.0,
        "first_pass_sort_pct": _pct((srt & (rec == 0)).sum(), n_done),
        "first_pass_to_destination_pct": _pct((srt & (rec == 0) & (reason == "ok")).sum(),
                                              n_done),
        "reject_pct": _pct(rej.sum(), n_done),
        "chute_full_events_per_hour": ts.chute_full_events.sum() / hours,
        "container_changes_per_hour": ts.container_changes.sum() / hours,
    }
    t_ic = (p.discharge_t - p.induct_t).to_numpy()[done]
    for q in (50, 95, 99):
        approx[f"induct_to_chute_s_p{q}"] = _pq(t_ic, q)
    wait = np.where(inducted, p.induct_t.to_numpy(), shift_s) - p.arrival_t.to_numpy()
    approx["induct_wait_s_p95"] = _pq(wait, 95)
    for key, v in approx.items():
        assert k[key] == pytest.approx(v, rel=1e-9, abs=1e-9), key
    # rejects by reason: every reason of the README, and they add up
    assert set(k["rejects_by_reason"]) == set(REASONS)
    for r in REASONS:
        assert k["rejects_by_reason"][r] == int((rej & (reason == r)).sum()), r
    assert sum(k["rejects_by_reason"].values()) == k["rejected"]
    # times inside the shift and in order
    assert ((p.arrival_t >= 0) & (p.arrival_t < shift_s)).all()
    assert not (p.induct_t < p.arrival_t).any() and not (p.discharge_t < p.induct_t).any()
    assert not (p.discharge_t >= shift_s).any()
    # throughput per interval: row i counts [start_s[i], start_s[i + 1])
    edges = np.append(ts.start_s.to_numpy(), shift_s)
    width_h = np.diff(edges) / 3600.0
    for col, times in (("offered", p.arrival_t.to_numpy()),
                       ("inducted", p.induct_t.to_numpy()[inducted]),
                       ("sorted", p.discharge_t.to_numpy()[srt]),
                       ("rejected", p.discharge_t.to_numpy()[rej])):
        n = np.array([np.sum((times >= a) & (times < b)) for a, b in zip(edges[:-1], edges[1:])])
        assert (ts[col].to_numpy() == n).all(), col
        assert np.allclose(ts[col + "_per_hour"], np.where(width_h > 0, n / width_h, 0.0)), col
    assert ts.recirculations.sum() == rec.sum()
    assert (ts.queued_at_inducts_end == np.cumsum(ts.offered) - np.cumsum(ts.inducted)).all()
    # chute-full events: a destination/overflow chute stops taking parcels at its capacity, so
    # it filled discharged // capacity times; reject chutes keep taking (and add their own)
    per_chute = p[done].groupby(["loop", "chute"]).size()
    for r in ch.itertuples():
        assert r.discharged == int(per_chute.get((r.loop, r.id), 0)), r.id
    lower = sum(r.discharged // caps[(r.loop, r.id)] for r in ch.itertuples() if r.kind != "reject")
    reject_filled = any(r.discharged >= caps[(r.loop, r.id)] for r in ch.itertuples()
                        if r.kind == "reject")
    full = int(ts.chute_full_events.sum())
    assert full >= lower and (reject_filled or full == lower)
    assert ts.container_changes.sum() <= full
    served = ch[ch.kind != "reject"]
    not_open = (served.full_pct + served.container_change_pct + served.blocked_pct).to_numpy()
    assert k["chute_not_open_pct_mean"] == pytest.approx(not_open.mean(), abs=1e-9)
    assert k["chute_not_open_pct_max"] == pytest.approx(not_open.max(), abs=1e-9)
    # carrier fill: a parcel loads its carrier from its induct tick to its discharge tick
    num = den = 0.0
    for lp in k["loops"]:
        m = (p["loop"] == lp["name"]).to_numpy() & inducted
        dt = lp["lap_time_s"] / lp["carriers"]
        n_ticks = round(shift_s / dt)
        a = np.round(p.induct_t.to_numpy()[m] / dt)
        b = np.round(np.nan_to_num(p.discharge_t.to_numpy()[m], nan=n_ticks * dt) / dt)
        assert lp["carrier_fill_pct"] == pytest.approx(
            100 * (b - a).sum() / (n_ticks * lp["carriers"]), abs=1e-9)
        num += (b - a).sum() * dt
        den += n_ticks * dt * lp["carriers"]
        lm = (p["loop"] == lp["name"]).to_numpy()
        for key, v in (("offered", lm.sum()), ("inducted", (lm & inducted).sum()),
                       ("sorted", (lm & srt).sum()), ("rejected", (lm & rej).sum()),
                       ("on_loop_at_end", (lm & onl).sum())):
            assert lp[key] == v, (lp["name"], key)
        for ind in lp["inducts"]:
            assert ind["inducted"] == int((lm & inducted & (p.induct == ind["id"])).sum())
    assert k["carrier_fill_pct"] == pytest.approx(100 * num / den, abs=1e-9)
    # peak 15 minutes (a shift under 15 minutes: its mean rate)
    t_sorted = p.discharge_t.to_numpy()[srt]
    if shift_s < 900:
        peak = srt.sum() / hours
    else:
        starts15 = np.arange(0.0, shift_s - 900 + 1e-6, 900.0)
        peak = max(np.sum((t_sorted >= a) & (t_sorted < a + 900)) for a in starts15) / 0.25
        if shift_s % 900:
            peak = max(peak, np.sum(t_sorted >= shift_s - 900) / 0.25)
    assert k["peak_15min_sorted_per_hour"] == pytest.approx(peak)
    # per wave: what arrived / was inducted / was sorted in the wave's own hours
    for w in k["per_wave"]:
        a, b = w["start_h"] * 3600, w["end_h"] * 3600
        h = max(b - a, 1e-9) / 3600
        assert w["offered_per_hour"] == pytest.approx(
            np.sum((p.arrival_t >= a) & (p.arrival_t < b)) / h)
        assert w["inducted_per_hour"] == pytest.approx(
            np.sum((p.induct_t >= a) & (p.induct_t < b)) / h)
        assert w["sorted_per_hour"] == pytest.approx(np.sum((t_sorted >= a) & (t_sorted < b)) / h)
    # scans: a no-read / not-sortable parcel is rejected for that reason, nothing else
    scan = p.scan.to_numpy()
    assert set(scan[reason == "no_read"]) <= {"no_read"}
    assert set(scan[reason == "not_sortable"]) <= {"not_sortable"}
    assert not (srt & (scan != "read")).any()


# -- the loop scenarios ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_kpis_equal_the_recount(tmp_path, name):
    hours, path = _write(tmp_path, name)
    k, p, ts, ch, caps = _run_api(path)
    recount(k, p, ts, ch, hours, caps)


@pytest.mark.parametrize("name", ["single_wave", "plan_switch_and_back", "hub_of_two_loops"])
def test_same_seed_same_outputs(tmp_path, name):
    _, path = _write(tmp_path, name)
    a, pa, *_ = _run_api(path, seed=17)
    b, pb, *_ = _run_api(path, seed=17)
    c, *_ = _run_api(path, seed=18)
    assert a == b and pa.equals(pb)
    assert a != c


def test_edge_shifts_read_as_the_readme_says(tmp_path):
    """The figures each unusual shift must show, beyond agreeing with the recount."""
    def run(name):
        return _run_api(_write(tmp_path, name)[1])
    k, p, *_ = run("all_no_reads")
    assert k["sorted"] == 0 and k["rejected"] > 0
    assert set(p.reason[p.status == "rejected"]) == {"no_read", "not_sortable"}
    assert k["sorted_per_hour"] == 0 and k["recirculation_pct"] == 0   # reject chutes take all
    k, p, *_ = run("max_recirculation_0")
    # a parcel that found its chute closed is decided again with 1 recirculation > 0: rejected
    assert set(p.recirculations[p.status == "sorted"]) == {0}
    assert set(p.recirculations[p.reason == "max_recirculation"]) == {1}
    assert k["rejects_by_reason"]["max_recirculation"] > 0
    k, p, ts, ch, caps = run("containers_of_one")
    dest = ch[ch.kind == "destination"]
    assert k["chute_not_open_pct_mean"] > 30                 # closed most of the time
    assert k["chute_full_events_per_hour"] * 0.5 >= dest.discharged.sum()
    k, p, *_ = run("one_minute")
    assert len(k["intervals"]["start_s"]) == 1
    assert k["peak_15min_sorted_per_hour"] == pytest.approx(k["sorted"] * 60)
    k, p, *_ = run("midnight_clock_waves")
    assert [(w["start_h"], w["end_h"]) for w in k["per_wave"]] == [(0.0, 2.5), (2.5, 4.0)]
    c002 = next(c for c in k["chutes"] if c["id"] == "C002")
    assert c002["blocked_pct"] == pytest.approx(100 * 600 / (4 * 3600), rel=0.01)
    k, p, *_ = run("many_short_waves_and_empty_ones")
    empty = [w for i, w in enumerate(k["per_wave"]) if i % 4 == 3]
    assert all(w["offered_per_hour"] == 0 for w in empty)
    assert not (p.wave % 4 == 3).any()


def test_plan_switch_decides_by_the_plan_in_force(tmp_path):
    _, path = _write(tmp_path, "plan_switch_and_back")
    k, p, *_ = _run_api(path)

    def plan(name):
        with open(PLAN / name) as f:
            return {r[0]: r[1].split(";") for r in csv.reader(x for x in f if x[0] != "#")}
    p1, p2 = plan("demo_plan.csv"), plan("demo_plan_wave2.csv")
    assert [s["plan"] for s in k["loops"][0]["plan_switches"]] == [
        "demo_plan", "demo_plan_wave2", "demo_plan"]
    # first-pass parcels scanned well inside each wave (the scanner is 16 m past the inducts)
    first = (p.status == "sorted") & (p.reason == "ok") & (p.recirculations == 0)
    # (waves: 23:30-00:00 plan 1, 00:00-00:40 plan 2, 00:40-01:00 plan 1 again)
    for lo, hi, expected, other in ((60, 1790, p1, p2), (1860, 4190, p2, p1),
                                    (4260, 5390, p1, p2)):
        m = first & (p.induct_t >= lo) & (p.discharge_t < hi)
        pairs = list(zip(p.destination[m], p.chute[m]))
        assert len(pairs) > 500
        assert all(c in expected[d] for d, c in pairs)
        if expected is p2:   # the switch really changed decisions
            assert sum(c not in other.get(d, []) for d, c in pairs) > 50


@pytest.mark.slow
def test_three_day_shift_recount(tmp_path):
    waves = "".join(_wave(f"d{d}w{i}", d * 24 + i * 8, d * 24 + i * 8 + 6, 4000)
                    for d in range(3) for i in range(3))
    path = tmp_path / "three_days.toml"
    path.write_text(_scenario(72, waves, interval=60))
    k, p, ts, ch, caps = _run_api(path)
    recount(k, p, ts, ch, 72, caps)
    assert len(ts) == 72 and k["on_loop_at_end"] == 0 and k["queued_at_end"] == 0


# -- the whole CLI way ----------------------------------------------------------------------------


def _table(text):
    num = {}
    for label in ("offered", "inducted", "sorted", "rejected"):
        m = re.search(rf"^\s+{label}\s+([\d,]+)\s+([\d,]+)", text, re.M)
        num[label] = int(m.group(1).replace(",", ""))
        num[label + "_per_hour"] = int(m.group(2).replace(",", ""))
    for label, key in (("on the loop at the end", "on_loop_at_end"),
                       ("queued at inducts at end", "queued_at_end")):
        num[key] = int(re.search(rf"{label}\s+([\d,]+)", text).group(1).replace(",", ""))
    num["recirculation_pct"] = float(re.search(r"recirculation\s+([\d.]+) %", text).group(1))
    num["p95"] = float(re.search(r"p95\s+([\d.]+) s\s+p99", text).group(1))
    num["rejects"] = re.search(r"rejects by reason: (.*)", text).group(1).strip()
    num["waves"] = re.findall(r"^  (\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)",
                              text, re.M)
    return num


def test_cli_out_files_summary_and_report(tmp_path, capsys):
    hours, path = _write(tmp_path, "odd_tick_trucks_past_the_end")
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # plots and report without a warning
        assert main(["run", str(path), "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "warn" not in cap.err.lower()
    for name in ("kpis.json", "parcels.parquet", "timeseries.csv", "chutes.csv",
                 "throughput.png", "recirculation.png", "chute_occupancy.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
    k = json.loads((out / "kpis.json").read_text())
    p = pd.read_parquet(out / "parcels.parquet")
    ts = pd.read_csv(out / "timeseries.csv")
    ch = pd.read_csv(out / "chutes.csv", keep_default_na=False)
    caps = {(lp.name, c.id): c.capacity for lp in load_scenario(path).loops
            for c in lp.layout.chutes}
    recount(k, p, ts, ch, hours, caps)
    # the printed summary says what kpis.json says
    t = _table(cap.out)
    for key in ("offered", "inducted", "sorted", "rejected", "on_loop_at_end", "queued_at_end"):
        assert t[key] == k[key], key
    assert t["sorted_per_hour"] == round(k["sorted_per_hour"])
    assert t["recirculation_pct"] == pytest.approx(k["recirculation_pct"], abs=0.005)
    assert t["p95"] == pytest.approx(k["induct_to_chute_s_p95"], abs=0.05)
    assert t["rejects"] == ", ".join(f"{r} {n:,}" for r, n in k["rejects_by_reason"].items() if n)
    assert [(w[0], float(w[1]), float(w[2])) for w in t["waves"]] == [
        (w["name"], round(w["start_h"], 2), round(w["end_h"], 2)) for w in k["per_wave"]]
    assert [int(w[5].replace(",", "")) for w in t["waves"]] == [
        round(w["sorted_per_hour"]) for w in k["per_wave"]]
    html = (out / "report.html").read_text()
    text = re.sub(r'<img [^>]*>', "", html)
    assert f"{k['sorted']:,}" in text and not re.search(r"\bnan\b", text, re.I)
    # --json is kpis.json without the bulky lists
    assert main(["run", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        a: b for a, b in k.items() if a not in ("chutes", "intervals")}


def test_default_shift_is_plausible_against_figures():
    """FIGURES.md: net sustained ~90% of nameplate at most, no-reads 0.1-2% go to reject."""
    k = json.loads(json.dumps(compute_kpis(simulate(seed_path("scenarios/default.toml")))))
    assert k["nameplate_per_hour"] == pytest.approx(15000)
    assert k["peak_15min_sorted_per_hour"] <= 0.9 * k["nameplate_per_hour"]
    assert 0.5 * k["nameplate_per_hour"] < k["sorted_per_hour"] <= k["offered_per_hour"]
    no_read_share = k["rejects_by_reason"]["no_read"] / (k["sorted"] + k["rejected"])
    assert 0.001 <= no_read_share <= 0.02
    assert k["recirculation_pct"] < 10


# -- a robot floor with faults and arrival waves ----------------------------------------------------


def test_robot_floor_kpis_add_up(tmp_path, capsys):
    floor = seed_path("floors/small_12x20.txt")
    args = ["mapf", str(floor), "--robots", "8", "--steps", "400", "--scenario", "sorting",
            "--fault-rate", "0.005", "--repair-steps", "20", "--repair-dist", "fixed",
            "--no-read-rate", "0.05",
            "--arrival-rate", "2000,0@150,3000@250", "--json"]
    runs = []
    for i in range(2):
        assert main(args + ["--out", str(tmp_path / f"r{i}")]) == 0
        runs.append(json.loads(capsys.readouterr().out))
    k = runs[0]
    by = k["parcels_by_reason"]
    rejected = sum(v for r, v in by.items() if r not in ("ok", "overflow"))
    hours = k["steps"] * k["seconds_per_step"] / 3600
    assert sum(by.values()) == k["parcels_sorted"] == sum(k["sorted_per_chute"].values())
    assert k["parcels_rejected"] == rejected and k["rejects_by_reason"] == {
        r: v for r, v in by.items() if r not in ("ok", "overflow")}
    assert k["sorted_per_hour"] == pytest.approx(k["parcels_sorted"] / hours)
    assert k["net_sorted_per_hour"] == pytest.approx((k["parcels_sorted"] - rejected) / hours)
    assert k["net_sorted_per_robot_hour"] == pytest.approx(k["net_sorted_per_hour"] / 8)
    assert k["parcels_picked"] == k["parcels_sorted"] + k["parcels_carried"]
    assert k["parcels_offered"] == k["parcels_picked"] + k["parcels_waiting_at_inducts"]
    assert k["robot_faults"] - k["robot_repairs"] == k["robots_faulted_at_end"]
    assert k["robot_faults"] > 0
    u = k["robot_utilisation"]
    assert sum(u.values()) == pytest.approx(1.0) and u["faulted"] > 0
    # fixed repairs of 20 steps: every repaired fault held its robot 20 steps, an open one fewer
    faulted_steps = round(u["faulted"] * 8 * 400)
    assert (k["robot_faults"] - k["robots_faulted_at_end"]) * 20 <= faulted_steps
    assert faulted_steps <= k["robot_faults"] * 20
    pos = np.load(tmp_path / "r0" / "paths.npz")["positions"]
    assert pos.shape == (401, 8)
    # a robot that changed cell was carrying, moving empty or nudged about at its induct
    assert (pos[1:] != pos[:-1]).mean() <= u["carrying"] + u["moving_empty"] + u["starved"] + 1e-9
    assert len(k["induct_wait_p95_by_wave"]) == 3 and k["induct_wait_p95_by_wave"][1] is None
    timing = {"ms_per_step_p50", "ms_per_step_p99", "ms_per_step_max", "kernel_ms_p50",
              "kernel_ms_p99", "preprocess_s", "peak_rss_mb", "distance_tables_computed",
              "distance_table_mb"}
    assert {a: b for a, b in runs[0].items() if a not in timing} == {
        a: b for a, b in runs[1].items() if a not in timing}
    assert np.array_equal(pos, np.load(tmp_path / "r1" / "paths.npz")["positions"])


# -- a small seeded sweep -----------------------------------------------------------------------------


def test_seeded_sweep_points_equal_single_runs(tmp_path, capsys):
    _, path = _write(tmp_path, "single_wave")
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--vary", "wave.0.rate_per_hour=3000,7000",
                 "--vary", "containers.capacity=5,20", "--seeds", "2", "--workers", "1",
                 "--set", "scenario.shift_hours=0.5", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    runs = pd.read_parquet(out / "sweep.parquet")
    summary = pd.read_csv(out / "summary.csv")
    assert len(runs) == 8 and sorted(set(runs.seed)) == [3, 4]
    # each run is the single shift with those settings and that seed
    row = runs[(runs["wave.0.rate_per_hour"] == 7000) & (runs["containers.capacity"] == 5)
               & (runs.seed == 4)].iloc[0]
    text = path.read_text().replace("shift_hours = 1", "shift_hours = 0.5").replace(
        "end_h = 1", "end_h = 0.5").replace("rate_per_hour = 6500", "rate_per_hour = 7000") \
        .replace("[containers]", "[containers]\ncapacity = 5")
    one = tmp_path / "one.toml"
    one.write_text(text)
    k, p, ts, ch, caps = _run_api(one, seed=4)
    recount(k, p, ts, ch, 0.5, caps)
    for key in ("offered", "sorted", "rejected", "sorted_per_hour", "recirculation_pct",
                "induct_to_chute_s_p95"):
        assert row[key] == pytest.approx(k[key]), key
    for r in REASONS:
        assert row[f"rejected_{r}"] == k["rejects_by_reason"][r]
    # mean and Student-t 95% half-width over the two seeds
    for point, g in runs.groupby("point"):
        s = summary[summary.point == point].iloc[0]
        x = g.sorted_per_hour.to_numpy()
        assert s.sorted_per_hour_mean == pytest.approx(x.mean())
        assert s.sorted_per_hour_ci95 == pytest.approx(12.7062047 * x.std(ddof=1) / np.sqrt(2))

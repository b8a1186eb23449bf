"""QA session 18 (shiftkpi): `sorter run` numbers a planner must trust, from the files it writes.

New scenarios (none of the earlier rounds' loops): a 60 m ring with inducts all round the loop
(one downstream of every chute, one at a chute's slot), a chute at the scanner's own slot, a
plan switch to a plan that drops half the destinations, a 50/50 split over 10/90 % of the
destinations; a 30 m loop of 14 carriers (pitch that does not divide the length, 3 s ticks,
2-minute intervals); constant container times (so every container's closed time is known);
overlapping scheduled blockages. Checked against ``parcels.parquet`` / ``chutes.csv`` /
``timeseries.csv`` as ``sorter run --out`` writes them, never through ``sorter.sim.kpis``:

* every parcel's induct-to-chute time is exactly the carrier path: induct to scanner, scanner
  to its last chute, plus one lap per recirculation;
* no destination or overflow chute takes more than its capacity between container changes,
  and its full / container-change % of the shift is exactly its fills times the constant times;
* the time series' means, weighted by their intervals' ticks, are the shift KPIs and the
  chutes.csv figures; overlapping blockages count their union;
* sorted + rejected never beat one parcel per carrier passing the scanner.

Regressions: a generated loop's ``capacity`` up to the stated 1e9 (was refused naming chute
OV1, the generator's doubled overflow capacity); a generated loop whose inducts leave no room
for chutes names the loop's length, not ``n_chutes``; limits checked but unstated in the
expected form (induct rates, truck sizes, unload rates, distribution seconds, capacities,
blockage rates) are stated.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sorter.errors import InputError
from sorter.layout.loop import LoopSorter
from sorter.report import _write_outputs
from sorter.sim import simulate
from sorter.sim.kpis import compute_kpis
from sorter.sim.loop import interval_bounds
from sorter.sim.scenario import load_scenario

_POS = (0.0, 5.0, 12.0, 18.5, 28.9, 30.0, 31.5, 44.0, 45.0, 52.0, 58.6)


def _ring(tmp_path, *, blockages=""):
    """A 60 m ring, 86 carriers, scanner at 30 m; inducts at 5, 25, 45 and 59.6 m."""
    ids, out = [], ['[plan]\nname = "ring"\nstrategy = "least_loaded"\nmax_recirculation = 3\n'
                    'overflow = ["OV"]\n[reject]\nno_read = "RA"\nunknown_destination = "RA"\n'
                    'max_recirculation = "RB"\nno_chute_available = "RB"\nnot_sortable = "RA"\n'
                    'late = "RB"\n']
    for i, p in enumerate(_POS):
        for side in ("left", "right"):
            ids.append(f"K{i:02d}{side[0]}")
            out.append(f'[[chute]]\nid = "{ids[-1]}"\ncapacity = {3 + i}\nposition = {p}\n'
                       f'side = "{side}"\n')
    out.append('[[chute]]\nid = "OV"\nkind = "overflow"\ncapacity = 7\nposition = 40.0\n'
               'side = "left"\n[[chute]]\nid = "RA"\nkind = "reject"\ncapacity = 9\n'
               'position = 40.0\nside = "right"\n[[chute]]\nid = "RB"\nkind = "reject"\n'
               'capacity = 4\nposition = 38.5\nside = "right"\n')
    (tmp_path / "ring_chutes.toml").write_text("\n".join(out))
    (tmp_path / "ring_plan.csv").write_text("destination,chutes\n" + "".join(
        f"P{d:02d},{ids[d % len(ids)]}" + (f";{ids[(d * 7 + 3) % len(ids)]}\n" if d % 3 else "\n")
        for d in range(30)))
    (tmp_path / "ring_plan2.csv").write_text("destination,chutes\n" + "".join(
        f"P{d:02d},{ids[(d * 5 + 1) % len(ids)]}\n" for d in range(0, 30, 2)))
    inducts = "".join(f'[[loop.induct]]\nid = "{n}"\nposition_m = {p}\nmax_rate_per_hour = {r}\n'
                      for n, p, r in (("N", 5.0, 1800), ("E", 25.0, 2400), ("S", 45.0, 1200),
                                      ("W", 59.6, 3000)))
    path = tmp_path / "ring.toml"
    path.write_text(
        '[scenario]\nname = "ring"\nseed = 77\nshift_hours = 0.6\ninterval_minutes = 7\n'
        'shift_start = "05:50"\n[loop]\nname = "R"\nlength_m = 60.0\nspeed_mps = 1.5\n'
        'pitch_m = 0.7\nscanner_m = 30.0\nchutes = "ring_chutes.toml"\nplan = "ring_plan.csv"\n'
        + inducts + '[[wave]]\nname = "early"\nstart = "05:50"\nend = "06:10"\n'
        "induct_rates_per_hour = [1500, 2600, 900, 0]\n"
        '[[wave]]\nname = "late"\nstart = "06:10"\nend = "06:26"\nrate_per_hour = 6000\n'
        'plan = "ring_plan2.csv"\n[destinations]\nmix = "split"\nvolume_shares = [0.5, 0.5]\n'
        "destination_shares = [0.1, 0.9]\nunknown_rate = 0.05\n"
        "[scan]\nno_read_rate = 0.04\nnot_sortable_rate = 0.01\n"
        '[containers]\nchange_time_s = { dist = "const", value = 25 }\n'
        'reaction_time_s = { dist = "const", value = 7 }\n' + blockages)
    return path


def _tiny(tmp_path):
    """30 m at 0.7 m/s, pitch 2.2 m: 14 carriers (effective pitch 2.14 m), 3.06 s ticks."""
    path = tmp_path / "tiny.toml"
    path.write_text(
        '[scenario]\nname = "tiny"\nseed = 5\nshift_hours = 0.25\ninterval_minutes = 2\n'
        '[loop]\nname = "T"\nlength_m = 30.0\nspeed_mps = 0.7\npitch_m = 2.2\nn_chutes = 8\n'
        "n_overflow = 1\nn_reject = 1\ncapacity = 3\nn_inducts = 2\ninduct_rate = 900\n"
        'n_destinations = 5\n[[wave]]\nname = "w"\nstart_h = 0.0\nend_h = 0.25\n'
        'rate_per_hour = 2000\n[destinations]\nmix = "zipf"\nzipf_s = 3.0\n'
        "[scan]\nno_read_rate = 0.1\nnot_sortable_rate = 0.05\n"
        "[containers]\nchange_time_s = 20\nreaction_time_s = 5\n")
    return path


def _files(path, out):
    """Run the shift and read back the files `sorter run --out` writes (no plots)."""
    res = simulate(path)
    k = compute_kpis(res)
    out.mkdir()
    names = ("kpis.json", "parcels.parquet", "timeseries.csv", "chutes.csv", "throughput.png",
             "recirculation.png", "chute_occupancy.png", "report.html")
    tmp = {n: out / n for n in names}
    import sorter.report as report
    saved = (report.plot_throughput, report.plot_recirculation, report.plot_chute_occupancy,
             report.write_html_report)
    report.plot_throughput = report.plot_recirculation = lambda *a, **k: None
    report.plot_chute_occupancy = report.write_html_report = lambda *a, **k: None
    try:
        _write_outputs(res, k, tmp)
    finally:
        (report.plot_throughput, report.plot_recirculation, report.plot_chute_occupancy,
         report.write_html_report) = saved
    return (res.scenario, json.loads((out / "kpis.json").read_text()),
            pd.read_parquet(out / "parcels.parquet"), pd.read_csv(out / "timeseries.csv"),
            pd.read_csv(out / "chutes.csv", keep_default_na=False))


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    d = tmp_path_factory.mktemp("ring")
    return _files(_ring(d), d / "out")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    return _files(_tiny(d), d / "out")


def _const_ticks(sc, dt):
    c = sc.containers
    return tuple(max(1, math.ceil(d.params["value"] / dt))
                 for d in (c.reaction_time_s, c.change_time_s))


@pytest.mark.parametrize("which", ["ring", "tiny"])
def test_induct_to_chute_is_the_carrier_path_plus_whole_laps(which, request):
    sc, k, p, ts, ch = request.getfixturevalue(which)
    lay = sc.loops[0].layout
    n, dt = lay.n_carriers, lay.tick_s
    done = p.status.isin(["sorted", "rejected"]).to_numpy()
    assert done.sum() > 200 and (p.recirculations[done] > 0).sum() > 10
    scanner = lay.slot(lay.scanner_m)
    islot = {i.id: lay.slot(i.position_m) for i in lay.inducts}
    cslot = dict(zip([c.id for c in lay.chutes], lay.slot(lay.chute_positions()).tolist()))
    ticks = np.round((p.discharge_t - p.induct_t).to_numpy()[done] / dt).astype(np.int64)
    to_scanner = (scanner - np.array([islot[i] for i in p.induct[done]])) % n
    to_chute = (np.array([cslot[c] for c in p.chute[done]]) - scanner) % n
    to_chute[to_chute == 0] = n            # a chute at the scanner's slot: a whole lap on
    assert (ticks == to_scanner + to_chute + n * p.recirculations.to_numpy()[done]).all()
    # a parcel's times are whole ticks, and the p95 of the KPIs is numpy's linear one
    t_ic = (p.discharge_t - p.induct_t).to_numpy()[done]
    assert k["induct_to_chute_s_p95"] == pytest.approx(np.percentile(t_ic, 95), abs=1e-9)


@pytest.mark.parametrize("which", ["ring", "tiny"])
def test_no_chute_takes_more_than_its_container_between_changes(which, request):
    sc, k, p, ts, ch = request.getfixturevalue(which)
    lay = sc.loops[0].layout
    dt = lay.tick_s
    n_ticks = round(sc.shift_s / dt)
    react, change = _const_ticks(sc, dt)
    checked = 0
    for c in lay.chutes:
        if c.kind == "reject":
            continue
        t = p.discharge_t[(p.chute == c.id) & p.discharge_t.notna()].to_numpy()
        t = np.sort(np.round(t / dt).astype(np.int64))
        fills = t[c.capacity - 1::c.capacity]      # the parcel that filled each container
        after = t[c.capacity::c.capacity]          # the first parcel into the next one
        # closed from the filling parcel until the operator came and changed the container
        assert (after - fills[:len(after)] >= react + change).all(), c.id
        checked += len(after)
        row = ch[ch.id == c.id].iloc[0]
        assert row.discharged == len(t)
        left = n_ticks - fills                     # a fill near the end: cut at the shift's end
        assert row.full_pct == pytest.approx(100 * np.minimum(react, left).sum() / n_ticks)
        assert row.container_change_pct == pytest.approx(
            100 * np.clip(left - react, 0, change).sum() / n_ticks)
    assert checked > 20
    assert k["chute_full_events_per_hour"] * sc.shift_hours == ts.chute_full_events.sum()


@pytest.mark.parametrize("which", ["ring", "tiny"])
def test_time_series_means_are_the_shift_figures(which, request):
    """Per-interval %s and means, weighted by each interval's ticks (a 2-minute interval of a
    3.06 s tick loop holds 39 or 40 ticks), are the KPIs and chutes.csv."""
    sc, k, p, ts, ch = request.getfixturevalue(which)
    lay = sc.loops[0].layout
    n_ticks = round(sc.shift_s / lay.tick_s)
    w = np.diff(interval_bounds(len(ts), sc.interval_minutes * 60.0, lay.tick_s, n_ticks))
    assert (ts.carrier_fill_pct * w).sum() / n_ticks == pytest.approx(k["carrier_fill_pct"])
    assert (ts.induct_blocking_pct * w).sum() / n_ticks == pytest.approx(k["induct_blocking_pct"])
    served = ch[ch.kind != "reject"]
    closed = (served.full_pct + served.container_change_pct + served.blocked_pct).sum() / 100
    assert (ts.chutes_unavailable * w).sum() / n_ticks == pytest.approx(closed)
    assert closed / len(served) == pytest.approx(k["chute_not_open_pct_mean"] / 100)
    # every parcel accounted for, and the rates are the counts over the shift's hours
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    assert sum(k["rejects_by_reason"].values()) == k["rejected"] == ts.rejected.sum()
    assert k["sorted_per_hour"] == pytest.approx(ts.sorted.sum() / sc.shift_hours)
    assert ch.discharged.sum() == k["sorted"] + k["rejected"]


@pytest.mark.parametrize("which", ["ring", "tiny"])
def test_never_more_than_one_parcel_per_carrier_passing_the_scanner(which, request):
    sc, k, p, ts, ch = request.getfixturevalue(which)
    lay = sc.loops[0].layout
    dt = lay.tick_s
    t = np.sort(np.round(p.discharge_t.dropna().to_numpy() / dt).astype(np.int64))
    # each discharge follows its own scan within a lap: in any window of w ticks at most
    # w + carriers parcels leave the loop, and at most one a tick per induct comes on
    for w in (1, lay.n_carriers, 10 * lay.n_carriers):
        assert (np.searchsorted(t, t + w) - np.arange(len(t))).max() <= w + lay.n_carriers
    for ind in lay.inducts:
        ti = np.round(p.induct_t[p.induct == ind.id].dropna().to_numpy() / dt)
        assert (np.diff(np.sort(ti)) >= 1).all()
        assert len(ti) <= ind.max_rate_per_hour * sc.shift_hours + 1
    assert k["sorted_per_hour"] + k["rejected"] / sc.shift_hours <= 3600 / dt


def test_overlapping_scheduled_blockages_count_their_union(tmp_path):
    blockages = ("[blockages]\n" + "".join(
        f'[[blockages.scheduled]]\nchute = "{c}"\nstart_h = {s}\nduration_s = {d}\n'
        for c, s, d in (("K10r", 0.1, 600), ("K10r", 0.15, 600), ("K10r", 0.0, 60),
                        ("OV", 0.5, 3600), ("K09l", 0.3, 0))))
    sc, k, p, ts, ch = _files(_ring(tmp_path, blockages=blockages), tmp_path / "out")
    dt = sc.loops[0].layout.tick_s
    blocked = dict(zip(ch.id, ch.blocked_pct))
    shift = sc.shift_s
    assert blocked["K10r"] == pytest.approx(100 * (60 + 780) / shift, abs=100 * 2 * dt / shift)
    assert blocked["OV"] == pytest.approx(100 * 0.1 * 3600 / shift, abs=100 * 2 * dt / shift)
    assert 0 < blocked["K09l"] <= 100 * 2 * dt / shift       # a 0 s blockage: a tick
    for cid in ("K10r", "OV"):
        # nothing went into a blocked chute
        t = p.discharge_t[p.chute == cid].to_numpy()
        spans = [(0.1 * 3600, 0.15 * 3600 + 600)] if cid == "K10r" else [(0.5 * 3600, shift)]
        for a, b in spans:
            assert not ((t >= a + dt) & (t < b - dt)).any(), cid


# -- regressions ------------------------------------------------------------------------------


def _generated(tmp_path, **loop):
    keys = dict(length_m=120.0, speed_mps=2.0, pitch_m=0.8, n_chutes=20, n_overflow=2,
                n_reject=2, capacity=12, n_inducts=3, induct_rate=2500, n_destinations=10)
    keys.update(loop)
    path = tmp_path / "gen.toml"
    path.write_text(
        '[scenario]\nname = "gen"\nshift_hours = 0.05\n[loop]\nname = "G"\n'
        + "".join(f"{a} = {b!r}\n" for a, b in keys.items() if b is not None)
        + '[[wave]]\nname = "w"\nstart_h = 0\nend_h = 0.05\nrate_per_hour = 3000\n')
    return path


@pytest.mark.parametrize("capacity", [200_000_001, 500_000_000, 1_000_000_000])
def test_generated_loop_takes_capacities_up_to_the_stated_bound(tmp_path, capacity):
    """`capacity` says "an integer from 1 to 1,000,000,000"; the generator doubles it for
    overflow and quintuples it for reject chutes, so anything over 2e8 was refused with
    "field 'capacity': chute 'OV1': bad capacity 2000000000" (a chute the user never wrote).
    Now those containers are the largest a chute has (1e9): never full in a shift."""
    loop = LoopSorter.generate(n_chutes=20, n_overflow=2, n_reject=2, capacity=capacity)
    caps = {c.kind: c.capacity for c in loop.chutes}
    assert caps == {"destination": capacity, "overflow": min(2 * capacity, 10**9),
                    "reject": min(5 * capacity, 10**9)}
    k = compute_kpis(simulate(_generated(tmp_path, capacity=capacity)))
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"] > 0
    assert k["chute_full_events_per_hour"] == 0
    # the generator's own bound is unchanged
    with pytest.raises(InputError) as e:
        LoopSorter.generate(capacity=10**9 + 1)
    assert e.value.field == "loop.capacity"


@pytest.mark.parametrize("loop", [dict(length_m=30.0, pitch_m=2.2, n_inducts=20, n_chutes=8),
                                  dict(length_m=30.0, pitch_m=15.0, n_inducts=2, n_chutes=8)])
def test_no_room_for_chutes_names_the_loop_length_not_n_chutes(tmp_path, loop):
    """Inducts (max(2 m, pitch) apart) and the scanner past where the chutes must end: was
    "6 destination chutes do not fit (field loop.n_chutes)", which no n_chutes cures."""
    with pytest.raises(InputError) as e:
        load_scenario(_generated(tmp_path, n_overflow=1, n_reject=1, n_destinations=None,
                                 **loop))
    msg = str(e.value)
    assert e.value.field == "loop.length_m", msg
    assert "no room for destination chutes" in msg and "n_inducts" in msg
    assert "gen.toml" in msg and "\n" not in msg
    # and fewer inducts on that loop do fit (the message's advice works)
    if loop["n_inducts"] > 2:
        load_scenario(_generated(tmp_path, n_overflow=1, n_reject=1, n_destinations=None,
                                 **dict(loop, n_inducts=2)))


_WAVE = '[[wave]]\nname = "w"\nstart_h = 0\nend_h = 0.05\nrate_per_hour = 3000\n'


@pytest.mark.parametrize("old,new,field,bound", [
    ("induct_rate = 2500", "induct_rate = 2000000", "loop.induct_rate", "1,000,000"),
    (_WAVE, _WAVE.replace("rate_per_hour = 3000", "induct_rates_per_hour = [2000000, 1, 1]"),
     "wave[0].induct_rates_per_hour", "1,000,000"),
    (_WAVE, _WAVE + 'arrivals = "batched"\nbatch_size = 2000000\n', "wave[0].batch_size",
     "1,000,000"),
    (_WAVE, _WAVE + 'arrivals = "batched"\nunload_per_hour = 2e7\n', "wave[0].unload_per_hour",
     "10,000,000"),
    (_WAVE, _WAVE + "[containers]\nchange_time_s = 2e7\n", "containers.change_time_s", "1e7"),
    (_WAVE, _WAVE + '[containers]\nreaction_time_s = { dist = "exponential", mean = 2e7 }\n',
     "containers.reaction_time_s.mean", "1e7"),
    (_WAVE, _WAVE + "[containers]\ncapacity = 2000000000\n", "containers.capacity", "1e9"),
    (_WAVE, _WAVE + "[blockages]\nrandom_per_hour = 20000\n", "blockages.random_per_hour",
     "10,000"),
], ids=lambda v: v if isinstance(v, str) and "\n" not in v and "." in v else "")
def test_checked_upper_bounds_are_in_the_expected_form(tmp_path, old, new, field, bound):
    """A value over a limit the loader checks was refused as "(expected items per hour > 0)"
    or "(expected parcels per truck, an integer >= 1)": a form the value meets."""
    path = _generated(tmp_path)
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert e.value.field.startswith(field), str(e.value)
    assert bound in str(e.value).split("expected", 1)[1], str(e.value)


def test_chute_file_loop_capacity_and_induct_rate_state_their_bounds(tmp_path):
    """The same for a loop with a chute file: `capacity` and an induct's max_rate_per_hour."""
    base = _ring(tmp_path).read_text()
    for old, new, field, bound in (
            ('plan = "ring_plan.csv"\n', 'plan = "ring_plan.csv"\ncapacity = 2000000000\n',
             "loop.capacity", "1e9"),
            ("max_rate_per_hour = 1800", "max_rate_per_hour = 2000000",
             "loop.induct[0].max_rate_per_hour", "1,000,000")):
        path = tmp_path / "edit.toml"
        path.write_text(base.replace(old, new, 1))
        with pytest.raises(InputError) as e:
            load_scenario(path)
        assert e.value.field == field, str(e.value)
        assert bound in str(e.value).split("expected", 1)[1], str(e.value)

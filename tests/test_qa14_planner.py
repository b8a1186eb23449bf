"""QA 14: a sortation planner sizing a shift from the docs alone (`sorter run`, `sorter sweep`).

Own scenarios (not the seeds): a 250 m loop with automatic and manual inducts and small
containers, a hub of two generated loops with a plan switch for one loop, long shifts.
Every figure a planner reads is recomputed here from the run's own per-parcel columns, and
the mistakes a planner makes in the files get one clear error line.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sorter.errors import InputError
from sorter.sim.kpis import compute_kpis, time_series
from sorter.sim.loop import interval_bounds, simulate, tick_times
from sorter.sim.scenario import load_scenario, parse_scenario


def _doc(*, hours=2.0, interval=20, loops=None, waves=None, seed=3, **extra):
    """A scenario document (as tomllib returns it) on generated loops."""
    d = {"scenario": {"name": "qa14", "seed": seed, "shift_hours": hours,
                      "interval_minutes": interval},
         "loop": loops if loops is not None else {
             "name": "North", "length_m": 300.0, "speed_mps": 2.2, "pitch_m": 0.7,
             "n_chutes": 60, "n_overflow": 2, "n_reject": 2, "capacity": 15, "n_inducts": 4,
             "induct_rate": 2800, "n_destinations": 50},
         "wave": waves if waves is not None else [
             {"name": "all", "start_h": 0.0, "end_h": hours, "rate_per_hour": 9000}],
         "containers": {"change_time_s": 40, "reaction_time_s": 10}}
    d.update(extra)
    return d


# --------------------------------------------------------------------------- time series

@pytest.mark.parametrize("interval_s, dt", [
    (1200.0, 300 / 429 / 2.2),       # tick 18876: 5999.999999999999 s in floating point
    (1800.0, 0.24),
    (900.0, 400 / 667 / 2.5),
    (60.0, 0.3),
    (60.0, 0.1),
    (600.0, 1 / 3),
])
def test_each_tick_is_counted_in_the_interval_its_written_time_falls_in(interval_s, dt):
    """Tick ``t`` is written to parcels.parquet as :func:`tick_times` and timeseries.csv
    says row ``i`` counts ``[start_s[i], start_s[i + 1])``: the kernel's interval of every
    tick (from :func:`interval_bounds`) must be the one its written time falls in, by plain
    float comparisons. (The parquet had ``t * dt``, 5999.999999999999 s for a tick the time
    series counts at 6000 s.)"""
    n_ticks = int(round(4 * 3 * interval_s / dt))
    n_int = int(math.ceil(n_ticks * dt / interval_s - 1e-9))
    b = interval_bounds(n_int, interval_s, dt, n_ticks).tolist()
    assert b[0] == 0 and b[-1] == n_ticks and b == sorted(b)
    times = tick_times(np.arange(n_ticks), dt).tolist()
    edges = [i * interval_s for i in range(n_int)] + [math.inf]
    near = {t for x in b for t in range(x - 3, x + 3) if 0 <= t < n_ticks}
    for t in sorted(near):
        kernel = next(i for i in range(n_int) if b[i] <= t < b[i + 1])
        written = next(i for i in range(n_int) if edges[i] <= times[t] < edges[i + 1])
        assert kernel == written, (t, times[t], kernel, written)
    # the times are the ticks' instants: never more than float rounding off t * dt
    raw = np.arange(n_ticks) * dt
    assert np.allclose(times, raw, rtol=1e-14, atol=0)


def test_timeseries_counts_equal_counts_over_the_parcel_times():
    """A loop whose tick lands on an interval boundary up to float rounding (300 m, 2.2 m/s,
    0.7 m pitch: tick 18876 at 5999.999999999999 s): timeseries.csv's inducted/sorted/rejected
    per interval equal the counts of parcels.parquet's times in ``[start_s, next start_s)``.
    (Before the fix the kernel put that tick after 6000 s and the two differed by a parcel.)"""
    sc = parse_scenario(_doc(hours=2.0, interval=20))
    res = simulate(sc, seed=3)
    lr = res.loops[0]
    assert abs(18876 * lr.dt - 6000.0) < 1e-9 and 18876 * lr.dt < 6000.0
    cols = res.parcel_columns()
    ts = time_series(res)
    edges = list(ts["start_s"]) + [sc.shift_s]
    st = cols["status"]
    it, dt_ = cols["induct_t"], cols["discharge_t"]
    at_edge = 0
    for i in range(len(edges) - 1):
        a, b = edges[i], edges[i + 1]
        ind = sum(1 for x, s in zip(it, st) if s != "queued" and a <= x < b)
        srt = sum(1 for x, s in zip(dt_, st) if s == "sorted" and a <= x < b)
        rej = sum(1 for x, s in zip(dt_, st) if s == "rejected" and a <= x < b)
        assert (ts["inducted"][i], ts["sorted"][i], ts["rejected"][i]) == (ind, srt, rej), i
    at_edge = int(np.sum(np.isclose(dt_, 6000.0, atol=1e-6)) + np.sum(np.isclose(it, 6000.0, atol=1e-6)))
    assert at_edge > 0          # the case the test is about happened


# --------------------------------------------------------------------------- hub routing

def _hub_doc(tmp_path, *, hours=1.0):
    """Two generated loops; loop B serves D0001-D0020 from its own plan and, from the second
    wave, also D0021-D0030 (which loop A serves all shift)."""
    plan = tmp_path / "b_wave2.csv"
    plan.write_text("destination,chutes\n" + "".join(
        f"D{i:04d},C{i:03d}\n" for i in range(1, 31)), encoding="utf-8")
    loops = [
        {"name": "A", "length_m": 200.0, "n_chutes": 60, "n_overflow": 2, "n_reject": 2,
         "capacity": 30, "n_inducts": 3, "n_destinations": 40},
        {"name": "B", "length_m": 150.0, "n_chutes": 40, "n_overflow": 2, "n_reject": 2,
         "capacity": 30, "n_inducts": 2, "n_destinations": 20},
    ]
    waves = [{"name": "w1", "start_h": 0.0, "end_h": hours / 2, "rate_per_hour": 8000},
             {"name": "w2", "start_h": hours / 2, "end_h": hours, "rate_per_hour": 8000,
              "plan": {"B": "b_wave2.csv"}}]
    return _doc(hours=hours, interval=10, loops=loops, waves=waves,
                destinations={"mix": "uniform"}, scan={"no_read_rate": 0.0,
                                                       "not_sortable_rate": 0.0})


def test_hub_sends_a_parcel_only_to_loops_whose_plan_in_force_serves_it(tmp_path):
    """Before its wave plan adds D0021-D0030 to loop B, those parcels all go to loop A (which
    serves them), not half of them to B, where they could only be unknown-destination rejects;
    in the second wave they are spread over both loops."""
    sc = parse_scenario(_hub_doc(tmp_path), base_dir=tmp_path)
    res = simulate(sc, seed=4)
    cols = res.parcel_columns()
    late = np.isin(cols["destination"], [f"D{i:04d}" for i in range(21, 31)])
    w1, w2 = cols["wave"] == 0, cols["wave"] == 1
    assert (late & w1).sum() > 50
    assert set(cols["loop"][late & w1]) == {"A"}
    assert set(cols["loop"][late & w2]) == {"A", "B"}
    k = compute_kpis(res)
    assert k["rejects_by_reason"]["unknown_destination"] == 0
    # a code only a later plan serves anywhere still goes to that loop (it is unknown there now)
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]


def test_hub_without_wave_plans_routes_as_before(tmp_path):
    """Without plan switches the per-wave routing is the all-shift one: parcels of codes both
    loops serve go to both, each loop sorts only codes its plan serves."""
    doc = _hub_doc(tmp_path)
    del doc["wave"][1]["plan"]
    sc = parse_scenario(doc, base_dir=tmp_path)
    res = simulate(sc, seed=4)
    cols = res.parcel_columns()
    both = np.isin(cols["destination"], [f"D{i:04d}" for i in range(1, 21)])
    only_a = np.isin(cols["destination"], [f"D{i:04d}" for i in range(21, 41)])
    assert set(cols["loop"][both]) == {"A", "B"}
    assert set(cols["loop"][only_a]) == {"A"}


# --------------------------------------------------------------------------- sweep keys

def test_sweep_names_the_full_key_of_a_shortened_one(monkeypatch):
    """``--vary wave.1.rate=...`` in a three-wave scenario: the nearest keys must include
    ``wave.1.rate_per_hour`` (by spelling alone wave.1.name, wave.1.end, wave.2.name and
    wave.0.name came first and the hint left it out)."""
    import sorter.sweep as sw
    from sorter.sweep import capacity_sweep

    def boom(task):
        raise AssertionError("no point may run before every key is validated")
    monkeypatch.setattr(sw, "_run_point", boom)
    waves = [{"name": n, "start": a, "end": b, "rate_per_hour": 6000}
             for n, a, b in (("early", "22:00", "22:06"), ("peak", "22:06", "22:12"),
                             ("trucks", "22:12", "22:18"))]
    doc = _doc(hours=0.3, interval=5, waves=waves)
    doc["scenario"]["shift_start"] = "22:00"
    for key, near in (("wave.1.rate", "wave.1.rate_per_hour"),
                      ("wave[1].rate", "wave.1.rate_per_hour"),
                      ("loop.induct_r", "loop.induct_rate"),
                      ("containers.change", "containers.change_time_s")):
        with pytest.raises(InputError) as ei:
            capacity_sweep(doc, {key: [1]}, seeds=1, n_workers=1)
        assert near in str(ei.value), (key, str(ei.value))
        assert ei.value.field == key


# --------------------------------------------------------------------------- input files

def _hub_a(tmp_path, volumes_text):
    (tmp_path / "vol.csv").write_text(volumes_text, encoding="utf-8", newline="")
    doc = _doc(hours=0.25, interval=5, destinations={"mix": "csv", "volumes": "vol.csv"})
    return doc


def test_volumes_csv_takes_comment_lines_as_the_plan_csv_does(tmp_path):
    """A forecast file with a comment line before the header and one between rows reads as the
    same file without them (the plan CSV already skips ``#`` lines; a volumes CSV failed with
    'bad header' / 'expected two columns')."""
    plain = "destination,volume\nD0001,50\nD0002,30\nD0003,20\n"
    ref = parse_scenario(_hub_a(tmp_path, plain), base_dir=tmp_path).destinations.volumes
    commented = ("# forecast week 48, made by planning\n\ndestination,volume\r\nD0001,50\r\n"
                 "# the two small ones\r\nD0002,30\r\nD0003,20\r\n")
    got = parse_scenario(_hub_a(tmp_path, commented), base_dir=tmp_path).destinations.volumes
    assert got == ref == {"D0001": 50.0, "D0002": 30.0, "D0003": 20.0}


@pytest.mark.parametrize("text, line, words", [
    ("", 1, "no header"),
    ("# only a comment\n", 1, "no header"),
    ("\n# note\nDestination,Volume\nD0001,5\n", 3, "bad header"),
    ("destination,volume\n", None, "no volume"),
    ("destination;volume\nD0001;5\n", 1, "bad header"),
    ("destination,volume\nD0001,5%\n", 2, "bad volume"),
])
def test_bad_volumes_csv_names_file_line_and_form(tmp_path, text, line, words):
    with pytest.raises(InputError) as ei:
        parse_scenario(_hub_a(tmp_path, text), base_dir=tmp_path)
    e = ei.value
    assert words in str(e) and "vol.csv" in str(e) and e.line == line
    assert e.expected


def test_clock_wave_on_the_second_day_says_to_use_start_h(tmp_path):
    """A 36 h shift from 06:00 with waves 06:00-18:00, 18:00-06:00, 06:00-18:00: the third
    wave's clock time reads as hour 0, so it 'overlapped' the night wave with no word on why;
    now the error names the wave's start and the form that works (start_h/end_h)."""
    text = """
[scenario]
name = "two days"
shift_hours = 36
shift_start = "06:00"
[loop]
n_chutes = 60
n_inducts = 2
[[wave]]
name = "day1"
start = "06:00"
end = "18:00"
rate_per_hour = 3000
[[wave]]
name = "night1"
start = "18:00"
end = "06:00"
rate_per_hour = 1000
[[wave]]
name = "day2"
start = "06:00"
end = "18:00"
rate_per_hour = 3000
"""
    p = tmp_path / "days.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as ei:
        load_scenario(p)
    e = ei.value
    assert e.field == "wave[2].start" and e.line == 21 and "start_h" in e.expected
    assert "day2" in str(e) and "first 24 h" in str(e)
    # written with hours, the same shift loads, the third wave from hour 24
    p.write_text(text.replace('start = "06:00"\nend = "18:00"\nrate_per_hour = 3000\n',
                              "start_h = 24\nend_h = 36\nrate_per_hour = 3000\n")
                 .replace('start_h = 24\nend_h = 36', 'start = "06:00"\nend = "18:00"', 1),
                 encoding="utf-8")
    sc = load_scenario(p)
    assert [(w.start_s / 3600, w.end_s / 3600) for w in sc.waves] == [(0, 12), (12, 24), (24, 36)]


def test_overlapping_clock_waves_in_a_day_shift_keep_the_plain_overlap_error(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("""
[scenario]
shift_hours = 3
shift_start = "22:00"
[loop]
n_chutes = 60
n_inducts = 2
[[wave]]
start = "22:00"
end = "23:00"
rate_per_hour = 3000
[[wave]]
start = "22:30"
end = "00:30"
rate_per_hour = 3000
""", encoding="utf-8")
    with pytest.raises(InputError) as ei:
        load_scenario(p)
    assert "overlaps" in str(ei.value) and ei.value.field == "wave[1].start_h"


# --------------------------------------------------------------------------- KPIs by hand

def test_planner_kpis_recomputed_from_the_parcel_columns(tmp_path):
    """One loop, five inducts (two manual), small containers, three waves with a plan switch
    and truck unloads, a volumes forecast: every headline KPI again from the per-parcel
    columns with plain Python (type-7 percentiles by hand), and the physical limits hold."""
    chutes = ['[plan]', 'name = "early"', 'strategy = "round_robin"', 'max_recirculation = 2',
              'overflow = ["OF1", "OF2"]', '[reject]', 'no_read = "RJ1"',
              'unknown_destination = "RJ1"', 'max_recirculation = "RJ2"',
              'no_chute_available = "RJ2"', 'not_sortable = "RJ1"', 'late = "RJ1"']
    ids = []
    for i in range(24):
        ids.append(f"D{i + 1:02d}")
        chutes += ['[[chute]]', f'id = "{ids[-1]}"', f'capacity = {6 + i % 3 * 2}',
                   f'position = {30.0 + (i // 2) * 2.5}', f'side = "{"left" if i % 2 else "right"}"']
    for j, kind, cap in ((1, "overflow", 20), (2, "overflow", 20)):
        chutes += ['[[chute]]', f'id = "OF{j}"', f'kind = "{kind}"', f'capacity = {cap}',
                   f'position = {70.0 + j * 2.5}', 'side = "left"']
    for j in (1, 2):
        chutes += ['[[chute]]', f'id = "RJ{j}"', 'kind = "reject"', 'capacity = 50',
                   f'position = {80.0 + j * 2.5}', 'side = "right"']
    (tmp_path / "chutes.toml").write_text("\n".join(chutes) + "\n", encoding="utf-8")
    (tmp_path / "early.csv").write_text("destination,chutes\n" + "".join(
        f"Z{k:02d},{ids[2 * k]};{ids[2 * k + 1]}\n" for k in range(12)), encoding="utf-8")
    (tmp_path / "late.csv").write_text("destination,chutes\n" + "".join(
        f"Z{k:02d},{ids[k]}\n" for k in range(10)), encoding="utf-8")
    (tmp_path / "vol.csv").write_text("destination,volume\n" + "".join(
        f"Z{k:02d},{100 // (k + 1)}\n" for k in range(12)), encoding="utf-8")
    inducts = [{"id": f"I{i}", "position_m": 2.0 + 2 * i, "max_rate_per_hour": r, "kind": k}
               for i, (r, k) in enumerate(((2500, "automatic"), (2500, "automatic"),
                                           (2500, "automatic"), (1200, "manual"),
                                           (1200, "manual")))]
    doc = {"scenario": {"name": "kpis", "seed": 8, "shift_hours": 0.75, "interval_minutes": 5,
                        "max_recirculation": 2},
           "loop": {"name": "L1", "length_m": 100.0, "speed_mps": 2.0, "pitch_m": 0.8,
                    "scanner_m": 14.0, "chutes": "chutes.toml", "plan": "early.csv",
                    "induct": inducts},
           "wave": [{"name": "early", "start_h": 0.0, "end_h": 0.25, "rate_per_hour": 5000},
                    {"name": "peak", "start_h": 0.25, "end_h": 0.5, "rate_per_hour": 11000},
                    {"name": "trucks", "start_h": 0.5, "end_h": 0.75, "rate_per_hour": 6000,
                     "arrivals": "batched", "batch_size": 100, "unload_per_hour": 2500,
                     "plan": "late.csv"}],
           "destinations": {"mix": "csv", "volumes": "vol.csv", "unknown_rate": 0.01},
           "scan": {"no_read_rate": 0.03, "not_sortable_rate": 0.01},
           "containers": {"change_time_s": {"dist": "triangular", "low": 30, "mode": 50,
                                            "high": 100},
                          "reaction_time_s": {"dist": "exponential", "mean": 30}},
           "blockages": {"random_per_hour": 2.0}}
    sc = parse_scenario(doc, base_dir=tmp_path)
    res = simulate(sc, seed=8)
    k = compute_kpis(res)
    c = {key: list(v) for key, v in res.parcel_columns().items()}
    n = len(c["id"])
    st, rs, rec = c["status"], c["reason"], c["recirculations"]
    H = 0.75
    done = [i for i in range(n) if st[i] in ("sorted", "rejected")]
    assert k["offered"] == n
    assert k["sorted"] == st.count("sorted") and k["rejected"] == st.count("rejected")
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    assert k["sorted_per_hour"] == pytest.approx(st.count("sorted") / H)
    by_reason = {}
    for i in done:
        if st[i] == "rejected":
            by_reason[rs[i]] = by_reason.get(rs[i], 0) + 1
    assert sum(k["rejects_by_reason"].values()) == k["rejected"]
    assert {r: v for r, v in k["rejects_by_reason"].items() if v} == by_reason
    assert k["recirculation_pct"] == pytest.approx(
        100 * sum(1 for i in done if rec[i] > 0) / len(done))

    def p(xs, q):
        xs = sorted(xs)
        h = (len(xs) - 1) * q / 100
        lo = math.floor(h)
        return xs[lo] + (h - lo) * (xs[min(lo + 1, len(xs) - 1)] - xs[lo])
    t_ic = [c["discharge_t"][i] - c["induct_t"][i] for i in done]
    assert k["induct_to_chute_s_p95"] == pytest.approx(p(t_ic, 95), rel=1e-9)
    # limits a planner relies on
    ind_cap = sum(i["max_rate_per_hour"] for i in inducts)
    assert k["sorted_per_hour"] <= min(k["nameplate_per_hour"], k["offered_per_hour"])
    assert k["inducted_per_hour"] <= ind_cap
    for ind in k["loops"][0]["inducts"]:
        assert ind["inducted"] <= ind["max_rate_per_hour"] * H + 1
    # per wave, the wave's own hours
    for w in k["per_wave"]:
        a, b = w["start_h"] * 3600, w["end_h"] * 3600
        hrs = (b - a) / 3600
        assert w["sorted_per_hour"] == pytest.approx(sum(
            1 for i in range(n) if st[i] == "sorted" and a <= c["discharge_t"][i] < b) / hrs)
    # the plan switch: parcels inducted after the trucks' start that were sorted OK went to a
    # chute of the late plan (Z10, Z11 are unknown there)
    late = {f"Z{k_:02d}": ids[k_] for k_ in range(10)}
    after = [i for i in done if c["induct_t"][i] > 0.5 * 3600 and rs[i] == "ok"]
    assert after and all(c["chute"][i] == late[c["destination"][i]] for i in after)
    assert any(rs[i] == "unknown_destination" and c["destination"][i] in ("Z10", "Z11")
               for i in done if c["induct_t"][i] > 0.5 * 3600)
    # chutes fill and containers change in so small a shift
    assert k["container_changes_per_hour"] > 0 and k["chute_full_events_per_hour"] > 0


@pytest.mark.parametrize("written, words", [
    ("data\\\\vol.csv", "write it with / ('data/vol.csv')"),
    ("C:\\\\plans\\\\vol.csv", "a Windows drive path"),
    ("nope.csv", "relative to the scenario"),
])
def test_missing_volumes_file_names_the_scenario_line_and_windows_separators(tmp_path, written,
                                                                               words):
    """A scenario written on Windows (``volumes = "data\\\\vol.csv"``) on Linux: the error
    names the scenario file, the line of ``volumes`` and the form that works (it named the
    CSV path only, with no line and no word on the separator)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "vol.csv").write_text("destination,volume\nD0001,5\n", encoding="utf-8")
    p = tmp_path / "s.toml"
    p.write_text(f"""[scenario]
shift_hours = 0.2
[loop]
n_chutes = 40
n_inducts = 2
[[wave]]
start_h = 0
end_h = 0.2
rate_per_hour = 2000
[destinations]
mix = "csv"
volumes = "{written}"
""", encoding="utf-8")
    with pytest.raises(InputError) as ei:
        load_scenario(p)
    e = ei.value
    assert e.path == str(p) and e.line == 12 and e.field == "destinations.volumes"
    assert words in e.expected and "not found" in str(e)
    p.write_text(p.read_text().replace(written, "data/vol.csv"), encoding="utf-8")
    assert load_scenario(p).destinations.volumes == {"D0001": 5.0}


# --------------------------------------------------------------------------- sweep templates

_TEMPLATE = """[scenario]
name = "template"
seed = 4
shift_hours = 0.2
[loop]
n_chutes = 40
n_inducts = 2
[[wave]]
name = "only"
start_h = 0
end_h = 0.2
{rate}
"""


def test_sweep_of_a_template_without_the_swept_value(tmp_path):
    """A planner's template leaves out (or holds a placeholder for) the value every point sets:
    ``--vary wave.0.rate_per_hour=...`` sweeps it (the sweep refused the file as written: 'wave
    has no rate', although no run ever uses the file's value). The runs equal the same file
    with each value written in."""
    from sorter.sweep import capacity_sweep
    for rate in ("", "rate_per_hour = -1"):
        p = tmp_path / "t.toml"
        p.write_text(_TEMPLATE.format(rate=rate), encoding="utf-8")
        res = capacity_sweep(p, {"wave.0.rate_per_hour": [1500, 3000]}, seeds=2, n_workers=1)
        assert [r["seed"] for r in res.rows] == [4, 5, 4, 5]
        full = tmp_path / "full.toml"
        full.write_text(_TEMPLATE.format(rate="rate_per_hour = 3000"), encoding="utf-8")
        k = compute_kpis(simulate(load_scenario(full), seed=5))
        assert res.rows[3]["sorted"] == k["sorted"] and res.rows[3]["offered"] == k["offered"]
    # a value no point sets is still the file's error, with the file's line
    p.write_text(_TEMPLATE.format(rate="rate_per_hour = -1"), encoding="utf-8")
    with pytest.raises(InputError) as ei:
        capacity_sweep(p, {"loop.speed_mps": [2.0]}, seeds=1, n_workers=1)
    assert ei.value.field == "wave[0].rate_per_hour" and ei.value.line == 12
    # and a bad varied value fails at its point, before any run
    with pytest.raises(InputError) as ei:
        capacity_sweep(p, {"wave.0.rate_per_hour": [1500, -2]}, seeds=1, n_workers=1)
    assert "point 1" in str(ei.value) and ei.value.field == "wave[0].rate_per_hour"


def test_sweep_names_the_line_of_a_bad_value_in_the_file(tmp_path):
    """`sorter run` names the line of a bad value; `sorter sweep` on the same file named the
    key only."""
    from sorter.cli import main
    p = tmp_path / "t.toml"
    p.write_text(_TEMPLATE.format(rate="rate_per_hour = 2000").replace(
        "n_inducts = 2", "n_inducts = 2\nspeed_mps = -2"), encoding="utf-8")
    with pytest.raises(InputError) as ei:
        load_scenario(p)
    assert ei.value.line == 8
    from sorter.sweep import capacity_sweep
    with pytest.raises(InputError) as ei:
        capacity_sweep(p, {"wave.0.rate_per_hour": [1000]}, seeds=1, n_workers=1)
    assert ei.value.line == 8 and ei.value.field == "loop.speed_mps"
    assert main(["sweep", str(p), "--vary", "wave.0.rate_per_hour=1000", "--seeds", "1",
                 "--workers", "1", "--no-progress"]) == 2


def test_sweep_refuses_a_varied_wave_that_a_shortened_shift_leaves_out(tmp_path):
    """``--vary wave.1.rate_per_hour=... --set scenario.shift_hours=1`` where wave 1 starts at
    1 h: the wave is left out at every point, so the sweep printed points identical in all but
    their label (a planner reads 'the peak rate does not matter'). Refused before any run,
    naming the key; a wave that runs at some point of the sweep is swept as before."""
    from sorter.sweep import capacity_sweep
    waves = [{"name": "a", "start_h": 0.0, "end_h": 0.1, "rate_per_hour": 3000},
             {"name": "b", "start_h": 0.1, "end_h": 0.3, "rate_per_hour": 3000}]
    doc = _doc(hours=0.3, interval=5, waves=waves)
    with pytest.raises(InputError) as ei:
        capacity_sweep(doc, {"wave.1.rate_per_hour": [2000, 6000]}, seeds=1, n_workers=1,
                       overrides={"scenario.shift_hours": 0.1})
    assert ei.value.field == "wave.1.rate_per_hour" and "changes nothing" in str(ei.value)
    with pytest.raises(InputError):
        capacity_sweep(doc, {"wave[1].rate_per_hour": [2000, 6000],
                             "scenario.shift_hours": [0.05, 0.1]}, seeds=1, n_workers=1)
    res = capacity_sweep(doc, {"wave.1.rate_per_hour": [2000, 6000],
                               "scenario.shift_hours": [0.1, 0.3]}, seeds=1, n_workers=1)
    rows = {(r["wave.1.rate_per_hour"], r["scenario.shift_hours"]): r for r in res.rows}
    assert rows[(2000, 0.1)]["offered"] == rows[(6000, 0.1)]["offered"]    # wave b left out
    assert rows[(2000, 0.3)]["offered"] < rows[(6000, 0.3)]["offered"]


def test_the_scenario_table_of_seeds_readme_states_the_defaults():
    """seeds/scenarios/README.md tells a planner each key's default: a scenario that sets
    almost nothing gets those values."""
    from sorter.resources import seed_path
    readme = (seed_path("scenarios") / "README.md").read_text(encoding="utf-8")
    assert "## Writing your own scenario" in readme
    sc = parse_scenario({"loop": {}, "wave": [{"start_h": 0, "end_h": 1, "rate_per_hour": 100,
                                               "arrivals": "batched"}]})
    assert (sc.seed, sc.shift_hours, sc.interval_minutes, sc.max_recirculation) == (0, 8, 15, None)
    lay = sc.loops[0].layout
    assert (lay.length_m, lay.speed_mps, lay.pitch_m) == (400, 2.5, 0.6)
    kinds = [c.kind for c in lay.chutes]
    assert (len(kinds), kinds.count("overflow"), kinds.count("reject")) == (400, 4, 3)
    assert {c.capacity for c in lay.chutes if c.kind == "destination"} == {40}
    assert [i.max_rate_per_hour for i in lay.inducts] == [4000] * 6
    assert len(sc.loops[0].plan.routes) == int(kinds.count("destination") * 0.9)
    w = sc.waves[0]
    assert (w.batch_size, w.unload_per_hour) == (200, 6000)
    d = sc.destinations
    assert (d.mix, d.zipf_s, d.unknown_rate) == ("zipf", 1.0, 0)
    assert (d.volume_shares, d.destination_shares) == ((0.7, 0.2, 0.1), (0.2, 0.3, 0.5))
    assert (sc.scan.no_read_rate, sc.scan.not_sortable_rate) == (0.01, 0.002)
    c = sc.containers
    assert (c.change_time_s.dist, c.change_time_s.params) == ("lognormal", {"mean": 45, "sd": 15})
    assert (c.reaction_time_s.dist, c.reaction_time_s.params) == ("exponential", {"mean": 30})
    b = sc.blockages
    assert (b.random_per_hour, b.duration_s.dist, b.duration_s.params) == \
        (0, "uniform", {"low": 60, "high": 300})
    manual = parse_scenario({"loop": {"induct_kind": "manual", "n_inducts": 2},
                             "wave": [{"start_h": 0, "end_h": 1, "rate_per_hour": 1}]})
    assert [i.max_rate_per_hour for i in manual.loops[0].layout.inducts] == [1500] * 2


def test_the_output_columns_of_seeds_readme_are_the_files_columns(tmp_path):
    """The columns seeds/scenarios/README.md lists for parcels.parquet, timeseries.csv and
    chutes.csv are those `sorter run --out` writes, in that order."""
    import csv
    import re

    import pyarrow.parquet as pq

    from sorter.report import write_outputs
    from sorter.resources import seed_path
    readme = (seed_path("scenarios") / "README.md").read_text(encoding="utf-8")
    part = readme[readme.index("### What `sorter run --out DIR` writes"):]
    sc = parse_scenario(_doc(hours=0.1, interval=2))
    res = simulate(sc, seed=1)
    write_outputs(res, compute_kpis(res), tmp_path)

    def listed(name):
        block = part[part.index(f"* `{name}`"):]
        block = block[:block.index("\n* ") if "\n* " in block else len(block)]
        values = ("sorted", "rejected", "on_loop", "queued", "read", "no_read", "not_sortable")
        return [w for w in re.findall(r"`([a-z_]+)`", block) if w not in
                ("interval_minutes", "_per_hour") and not (name == "parcels.parquet"
                                                           and w in values)]
    cols = pq.read_table(tmp_path / "parcels.parquet").column_names
    assert [c for c in listed("parcels.parquet") if c in cols] == cols
    assert set(listed("parcels.parquet")) >= set(cols)
    with open(tmp_path / "timeseries.csv", newline="") as f:
        ts = next(csv.reader(f))
    want = [c for c in ts if not c.endswith("_per_hour") and c not in ("start_s", "start_h")]
    assert [c for c in listed("timeseries.csv") if c in ts] == want
    with open(tmp_path / "chutes.csv", newline="") as f:
        assert next(csv.reader(f)) == listed("chutes.csv")


def test_the_small_sweep_table_of_docs_sweep_md_is_what_the_sweep_gives():
    """docs/sweep.md shows the table of its first command; its figures had drifted from what
    the command prints (3,708 sorted/h where a planner gets 3,683). Each row shown is checked
    against a serial run of the same sweep."""
    from sorter.resources import seed_path
    from sorter.sweep import capacity_sweep
    from pathlib import Path
    doc = Path(__file__).resolve().parents[1] / "docs" / "sweep.md"
    if not doc.is_file():
        pytest.skip("docs/sweep.md is not beside the tests (an installed package)")
    text = doc.read_text(encoding="utf-8")
    block = text[text.index("sweep: small busy loop"):]
    block = block[:block.index("```")]
    shown = [ln.split() for ln in block.splitlines() if ln.strip()[:1].isdigit()]
    assert len(shown) == 5
    res = capacity_sweep(seed_path("scenarios/small.toml"),
                         {"wave.0.rate_per_hour": [4000, 6000, 8000, 10000, 12000],
                          "loop.speed_mps": [2.0, 2.5]}, seeds=5, n_workers=1)
    summ = {(s["wave.0.rate_per_hour"], s["loop.speed_mps"]): s for s in res.summary()}
    for row in shown:
        s = summ[(int(row[0]), float(row[1]))]
        want = [row[2], row[3], row[5], row[6], row[7], row[9], row[10], row[11], row[12]]
        got = [str(s["n_seeds"]), f"{s['sorted_per_hour_mean']:,.0f}",
               f"{s['sorted_per_hour_ci95']:,.0f}", f"{s['offered_per_hour_mean']:,.0f}",
               f"{s['recirculation_pct_mean']:.2f}", f"{s['recirculation_pct_ci95']:.2f}",
               f"{s['induct_to_chute_s_p95_mean']:.1f}", f"{s['induct_blocking_pct_mean']:.2f}",
               f"{s['reject_pct_mean']:.2f}"]
        assert got == want, (row[:2], got, want)

"""QA (session 14b): the files and JSON every command writes, at the edges of their inputs.

Outside checks parse ``sorter run --json`` / ``kpis.json``, ``sorter mapf --out``, ``sorter sweep
--out`` and ``sorter assign --out`` with strict parsers; these tests do the same: strict JSON
(no NaN / Infinity tokens), stable types, the documented keys and columns, the printed summary
equal to the file, files whole after a failure part-way, and stale files replaced or named.
"""
import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from sorter.cli import main
from sorter.resources import seed_path


def strict_json(text):
    """``json.loads`` refusing NaN / Infinity (what a strict consumer does)."""
    def bad(c):
        raise ValueError(f"non-standard JSON token {c}")
    return json.loads(text, parse_constant=bad)


def scenario(path, *, name="edge", shift_hours=0.1, rate=6000, no_read=0.0, n_chutes=40,
             n_overflow=2, n_reject=2, n_destinations=30, extra=""):
    """A small generated loop, one wave over the whole shift."""
    path.write_text(f"""[scenario]
name = "{name}"
seed = 1
shift_hours = {shift_hours}
interval_minutes = 5
{extra}
[loop]
name = "S1"
length_m = 120.0
speed_mps = 2.0
pitch_m = 0.8
n_chutes = {n_chutes}
n_overflow = {n_overflow}
n_reject = {n_reject}
capacity = 12
n_inducts = 3
induct_rate = 2500
n_destinations = {n_destinations}

[[wave]]
name = "all"
start_h = 0.0
end_h = {shift_hours}
rate_per_hour = {rate}

[scan]
no_read_rate = {no_read}
not_sortable_rate = 0.0
""")
    return path


# ----------------------------------------------------------------------- sorter run

EDGES = {
    "no_parcels": dict(rate=0),
    "shorter_than_an_interval": dict(shift_hours=0.02),
    "all_no_reads": dict(no_read=1.0),
    "one_destination_chute": dict(n_chutes=4, n_overflow=0, n_reject=3, n_destinations=1),
    "max_recirculation_0": dict(extra="max_recirculation = 0"),
}
COUNTS = ("offered", "inducted", "sorted", "rejected", "on_loop_at_end", "queued_at_end",
          "sorted_to_destination", "sorted_to_overflow", "recirculations", "seed")
README_KEYS = {"offered", "inducted", "sorted", "rejected", "on_loop_at_end", "sorted_per_hour",
               "nameplate_per_hour", "recirculation_pct", "rejects_by_reason",
               "induct_to_chute_s_p95", "shift_hours", "seed"}


@pytest.mark.parametrize("case", sorted(EDGES))
def test_run_edges_strict_json_equal_to_kpis_json(case, tmp_path, capsys):
    path = scenario(tmp_path / f"{case}.toml", name=case, **EDGES[case])
    assert main(["run", str(path), "--json", "--out", str(tmp_path / "out")]) == 0
    printed = strict_json(capsys.readouterr().out)
    k = strict_json((tmp_path / "out" / "kpis.json").read_text())
    assert README_KEYS <= set(printed)
    # the printed object is the file without its bulky lists
    assert printed == {key: v for key, v in k.items() if key not in ("chutes", "intervals")}
    for key in COUNTS:                        # counts are ints, not 3.0
        assert type(k[key]) is int, key
    assert all(type(v) is int for v in k["rejects_by_reason"].values())
    for key, v in k.items():                  # every other scalar KPI a finite number
        if isinstance(v, float):
            assert np.isfinite(v), key
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    if k["sorted"] + k["rejected"] == 0:      # documented: 0 over no parcels, not null
        for key in ("recirculation_pct", "reject_pct", "first_pass_sort_pct", "laps_per_parcel",
                    "induct_to_chute_s_p50", "induct_to_chute_s_p95", "induct_to_chute_s_p99"):
            assert k[key] == 0.0, key
    # every output file is there and agrees with the KPIs
    out = tmp_path / "out"
    table = pq.read_table(out / "parcels.parquet")
    assert table.num_rows == k["offered"]
    assert table.schema.field("id").type == "int64"
    rows = list(csv.DictReader(open(out / "timeseries.csv", newline="")))
    assert len(rows) == len(k["intervals"]["start_s"])
    assert sum(int(r["sorted"]) for r in rows) == k["sorted"]
    chutes = list(csv.DictReader(open(out / "chutes.csv", newline="")))
    assert sum(int(c["discharged"]) for c in chutes) == k["sorted"] + k["rejected"]
    if case == "all_no_reads":
        assert k["sorted"] == 0 and k["rejected"] == k["rejects_by_reason"]["no_read"] > 0


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_run_outputs_failing_part_way_leave_the_earlier_files_whole(tmp_path, monkeypatch):
    # was: kpis.json, parcels.parquet and the CSVs were written in place one after the
    # other, so a run failing at its plots (or a full disk) left this run's kpis.json beside
    # the earlier run's report.html, or a truncated timeseries.csv
    import sorter.report as report
    from sorter.sim import compute_kpis, simulate
    from sorter.sim.scenario import load_scenario

    sc = load_scenario(scenario(tmp_path / "s.toml"))
    out = tmp_path / "out"
    first = simulate(sc, seed=1)
    report.write_outputs(first, compute_kpis(first), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    second = simulate(sc, seed=2)
    k2 = compute_kpis(second)
    assert k2["offered"] != compute_kpis(first)["offered"]      # the runs differ

    def boom(*a, **kw):
        raise RuntimeError("plot failed")
    monkeypatch.setattr(report, "plot_chute_occupancy", boom)
    with pytest.raises(RuntimeError):
        report.write_outputs(second, k2, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a CSV failing mid-way: no truncated file either
    monkeypatch.undo()
    calls = {"n": 0}
    real_fmt = report._fmt

    def fmt(v):
        calls["n"] += 1
        if calls["n"] > 40:
            raise OSError(28, "No space left on device")
        return real_fmt(v)
    monkeypatch.setattr(report, "_fmt", fmt)
    with pytest.raises(ValueError, match="No space left"):     # an InputError naming it
        report.write_outputs(second, k2, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(out) == []
    monkeypatch.undo()
    paths = report.write_outputs(second, k2, out)               # then a normal re-run
    assert strict_json(paths["kpis"].read_text())["offered"] == k2["offered"]
    assert sorted(p.name for p in out.iterdir()) == sorted(report.RUN_FILES)


# ----------------------------------------------------------------------- sorter sweep

def test_floor_sweep_wave_columns_present_when_a_wave_has_no_parcels(tmp_path):
    # was: induct_wait_p95_wave<i> was left out of a row whose wave got no parcel during the
    # run, and with it the column (docs/sweep.md names it): a reader of the column failed
    from sorter.floor_sweep import floor_sweep

    res = floor_sweep(seed_path("floors/small_12x20.txt"), {"robots": [2]}, seeds=1,
                      overrides={"steps": 5, "arrival_rate": [[0, 3000], [2, 20], [100, 30]]},
                      n_workers=1)
    res.write_parquet(tmp_path / "sweep.parquet")
    res.write_csv(tmp_path / "summary.csv")
    t = pq.read_table(tmp_path / "sweep.parquet")
    for i in range(3):
        assert f"induct_wait_p95_wave{i}" in t.column_names
        assert str(t.schema.field(f"induct_wait_p95_wave{i}").type) == "double"
    assert t.column("induct_wait_p95_wave2").to_pylist() == [None]     # no parcel: null
    assert t.column("induct_wait_p95_wave0").to_pylist()[0] is not None
    summary = list(csv.DictReader(open(tmp_path / "summary.csv", newline="")))
    assert summary[0]["induct_wait_p95_wave2_mean"] == "nan"
    assert summary[0]["induct_wait_p95_wave0_ci95"] == "nan"           # one seed: no CI


def test_sweep_out_failing_part_way_keeps_the_earlier_files(tmp_path, monkeypatch):
    # was: sweep.parquet and summary.csv were replaced before sweep.png failed, beside the
    # earlier sweep's plot
    from sorter.sweep import SweepResult

    path = scenario(tmp_path / "s.toml", shift_hours=0.05)
    out = tmp_path / "out"
    argv = ["sweep", str(path), "--seeds", "1", "--workers", "1", "--no-progress", "--out",
            str(out)]
    assert main(argv + ["--vary", "wave.0.rate_per_hour=3000"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["summary.csv", "sweep.parquet", "sweep.png"]

    def boom(self, path, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(SweepResult, "plot", boom)
    assert main(argv + ["--vary", "wave.0.rate_per_hour=5000"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.undo()
    assert main(argv + ["--vary", "wave.0.rate_per_hour=5000"]) == 0
    t = pq.read_table(out / "sweep.parquet")
    assert t.column("wave.0.rate_per_hour").to_pylist() == [5000]
    assert _leftovers(out) == []


# ----------------------------------------------------------------------- sorter mapf

def test_mapf_out_failing_part_way_and_stale_figures(tmp_path, monkeypatch, capsys):
    # was: paths.npz and kpis.json were replaced before a drawing failed; and a heatmap.png
    # or animation.gif of an earlier run stayed beside new paths without a word
    import sorter.layout.draw as draw

    floor = str(seed_path("floors/small_12x20.txt"))
    out = tmp_path / "m"
    base = ["mapf", floor, "--robots", "3", "--seed", "1", "--out", str(out), "--json"]
    assert main(base + ["--steps", "6", "--heatmap"]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(draw, "congestion_heatmap", boom)
    assert main(base + ["--steps", "4", "--heatmap"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.undo()
    capsys.readouterr()
    assert main(base + ["--steps", "0"]) == 0           # 0 steps: positions are the starts
    cap = capsys.readouterr()
    k = strict_json(cap.out)
    assert k == strict_json((out / "kpis.json").read_text())
    assert k["steps"] == 0 and type(k["tasks_completed"]) is int
    with np.load(out / "paths.npz") as z:
        assert z["positions"].shape == (1, 3) and z["positions"].dtype == np.int32
    assert "heatmap.png is an earlier run's" in cap.err
    assert _leftovers(out) == []


# ----------------------------------------------------------------------- sorter assign

def test_assign_events_without_scans_writes_the_header_only(tmp_path, capsys):
    events = tmp_path / "ev.csv"
    events.write_text("t,event,parcel,destination,recirculation,sortable,chute,plan\n"
                      "0,blocked,,,,,C001,\n1,open,,,,,C001,\n")
    out = tmp_path / "d.csv"
    assert main(["assign", "--plan", str(seed_path("plan/demo_plan.csv")), "--chutes",
                 str(seed_path("plan/demo_chutes.toml")), "--events", str(events), "--out",
                 str(out)]) == 0
    assert list(csv.reader(open(out, newline=""))) == [["parcel", "chute", "reason"]]
    assert "0 decisions, 2 events applied" in capsys.readouterr().out


def test_run_csv_values_are_the_json_values(tmp_path):
    # was: timeseries.csv and chutes.csv rounded floats to 6 significant digits: a long
    # shift's start_h (100.016666... h -> 100.017) and rates differed from kpis.json's
    text = scenario(tmp_path / "s.toml", shift_hours=0.2).read_text()
    (tmp_path / "s.toml").write_text(text.replace("interval_minutes = 5", "interval_minutes = 1.01"))
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o")]) == 0
    k = strict_json((tmp_path / "o" / "kpis.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "o" / "timeseries.csv", newline="")))
    for key, col in k["intervals"].items():
        assert [float(r[key]) for r in rows] == col, key
    assert any(not float(v).is_integer() for v in k["intervals"]["start_h"])
    chutes = list(csv.DictReader(open(tmp_path / "o" / "chutes.csv", newline="")))
    for c, row in zip(k["chutes"], chutes):
        for key in ("full_pct", "container_change_pct", "blocked_pct"):
            assert float(row[key]) == c[key]
        assert int(row["discharged"]) == c["discharged"]


def test_mapf_report_failing_part_way_leaves_the_earlier_run_whole(tmp_path, monkeypatch):
    # was: paths.npz, kpis.json and the first plots were replaced before a later plot of the
    # report failed: this run's KPIs beside the earlier run's report.html
    import sorter.agv.report as floor_report

    floor = str(seed_path("floors/small_12x20.txt"))
    out = tmp_path / "m"
    base = ["mapf", floor, "--robots", "3", "--seed", "1", "--out", str(out), "--json",
            "--scenario", "sorting", "--report"]
    assert main(base + ["--steps", "30"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"report.html", "kpis.json", "paths.npz", "chutes.png"} <= set(before)

    def boom(*a, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(floor_report, "plot_waiting", boom)
    assert main(base + ["--steps", "20"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.undo()
    assert main(base + ["--steps", "1"]) == 0         # no parcel yet: chutes.png says so
    assert (out / "chutes.png").read_bytes() != before["chutes.png"]   # (not the earlier one)
    assert strict_json((out / "kpis.json").read_text())["steps"] == 1
    assert _leftovers(out) == []


def test_floor_sweep_table_without_an_arrival_rate_at_a_point_shows_a_dash():
    # was: "nan" in the offered/h and wait columns of the point with arrival_rate=0
    from sorter.floor_sweep import floor_sweep

    res = floor_sweep(seed_path("floors/small_12x20.txt"), {"arrival_rate": [0, 3000]},
                      seeds=1, overrides={"steps": 10, "robots": 2}, n_workers=1)
    text = res.format_table()
    assert "nan" not in text
    first = text.splitlines()[4].split()
    assert first[0] == "0" and first[-3:-1] == ["-", "-"]


def test_mapf_kpis_hold_the_printed_net_per_robot_hour(tmp_path, capsys):
    # was: the summary and the report printed parcels per robot-hour net of rejects, a figure
    # kpis.json did not hold (only the gross sorted_per_robot_hour)
    floor = str(seed_path("floors/small_12x20.txt"))
    out = tmp_path / "m"
    assert main(["mapf", floor, "--robots", "3", "--steps", "60", "--scenario", "sorting",
                 "--no-read-rate", "0.3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    k = strict_json((out / "kpis.json").read_text())
    assert k["net_sorted_per_robot_hour"] == pytest.approx(k["net_sorted_per_hour"] / 3)
    assert k["net_sorted_per_robot_hour"] < k["sorted_per_robot_hour"]     # rejects left out
    assert f"{k['net_sorted_per_robot_hour']:.1f} per robot-hour)" in text

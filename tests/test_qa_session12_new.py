"""QA session 12 (new features): ``sorter mapf --report`` and ``sorter sweep FLOOR``, on inputs
nobody had tried: a folder named like a report file, rotation runs, flat floors, runs without
goals, rejects in some seeds only, a floor too small for the default fleet."""
from __future__ import annotations

import numpy as np
import pytest

from sorter.layout import Floor

TINY = "I.D\n.DC\nDC.\n"                  # 7 free cells: the default 100 robots do not fit


def _keep_figure(monkeypatch):
    """Let a plot function's figure survive its plt.close, to inspect it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.close("all")
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    return plt


def test_report_folder_named_like_a_report_file_fails_before_the_run(tmp_path, capsys):
    from sorter.cli import main
    from sorter.resources import seed_path
    out = tmp_path / "out"
    (out / "report.html").mkdir(parents=True)
    rc = main(["mapf", str(seed_path("floors/small_12x20.txt")), "--scenario", "sorting",
               "--robots", "3", "--steps", "5", "--out", str(out), "--report"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "report.html" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (out / "paths.npz").exists()           # refused before the run, not after it


def _naive_waits(positions, headings, n_cells):
    out = [0] * n_cells
    for t in range(1, len(positions)):
        for r in range(len(positions[0])):
            if positions[t][r] == positions[t - 1][r] and (
                    headings is None or headings[t][r] == headings[t - 1][r]):
                out[positions[t][r]] += 1
    return out


def test_waiting_counts_leave_turns_in_place_out():
    from sorter.agv.report import waiting_counts
    f = Floor.from_ascii(".....\n.....")
    rng = np.random.default_rng(3)
    pos = rng.integers(0, 3, (30, 4))                 # many stays on 3 cells
    hd = rng.integers(0, 4, (30, 4))
    got = waiting_counts(f, pos, headings=hd)
    assert got.tolist() == _naive_waits(pos.tolist(), hd.tolist(), f.n_cells)
    assert got.sum() < waiting_counts(f, pos).sum()   # some stays were turns


def test_report_of_a_rotation_run_counts_no_turn_as_waiting(tmp_path, monkeypatch):
    from sorter.agv import report
    from sorter.agv.lifelong import make_run, simulate
    from sorter.resources import seed_path
    from sorter.layout import load_floor
    floor = load_floor(seed_path("floors/small_12x20.txt"))
    p, s = make_run(floor, 6, seed=1, tasks="random", rotation=True)
    res = simulate(p, s, 60, record=True)
    seen = {}
    real = report.plot_waiting
    monkeypatch.setattr(report, "plot_waiting", lambda fl, counts, *a, **k: (
        seen.setdefault("counts", counts), seen.setdefault("note", k.get("note")),
        real(fl, counts, *a, **k)))
    report.write_floor_report(floor, res, res.kpis(), tmp_path)
    want = _naive_waits(res.positions.tolist(), res.headings.tolist(), floor.n_cells)
    assert seen["counts"].tolist() == want
    assert "turns left out" in seen["note"]


def test_throughput_plot_of_a_run_without_goals_reads_0_to_1(tmp_path, monkeypatch):
    from sorter.agv.report import plot_throughput
    plt = _keep_figure(monkeypatch)
    series = {"edges": np.array([0, 1, 2]), "window": 1, "tasks_per_step": np.zeros(2),
              "parcels_per_step": np.zeros(2)}
    plot_throughput(series, tmp_path / "t.png", sorting=True, title="t")
    assert plt.gcf().axes[0].get_ylim() == (0.0, 1.0)      # was 0 .. 1e-9


def test_waiting_plot_of_a_flat_floor_keeps_the_colour_bar_label_inside(tmp_path, monkeypatch):
    from sorter.agv.report import plot_waiting
    plt = _keep_figure(monkeypatch)
    w = 300
    floor = Floor.from_ascii("I" + "." * (w - 2) + "I\n" + ".D" * (w // 2) + "\n" + ".C" * (w // 2))
    plot_waiting(floor, np.ones(floor.n_cells, np.int64), 10, tmp_path / "w.png")
    fig = plt.gcf()
    fig.canvas.draw()
    box = fig.bbox
    cb_label = fig.axes[1].yaxis.label.get_window_extent()
    assert box.y0 - 1 <= cb_label.y0 and cb_label.y1 <= box.y1 + 1     # not cut off


def test_floor_sweep_rows_count_a_reject_reason_that_did_not_occur_as_0():
    from sorter.constants import REJECT_REASONS
    from sorter.floor_sweep import _flat
    from sorter.sweep import SweepResult
    base = {"net_sorted_per_hour": 100.0, "parcels_rejected": 0, "parcels_sorted": 10,
            "robot_utilisation": {"waiting": 0.1}}
    rows = [_flat({**base, "rejects_by_reason": {}}, 2),
            _flat({**base, "parcels_rejected": 4, "rejects_by_reason": {"no_read": 4}}, 2)]
    for r in rows:
        assert {f"rejected_{x}" for x in REJECT_REASONS} <= set(r)
    res = SweepResult(rows=[{"point": 0, "robots": 2, "seed": i, **r} for i, r in enumerate(rows)],
                      vary={"robots": [2]}, points=[{"robots": 2}], seeds=[0, 1], kind="floor")
    assert res.summary()[0]["rejected_no_read_mean"] == 2.0    # (0 + 4) / 2, was 4


def test_floor_sweep_varies_robots_on_a_floor_smaller_than_the_default_fleet():
    from sorter.floor_sweep import floor_sweep
    floor = Floor.from_ascii(TINY, name="tiny")
    res = floor_sweep(floor, {"robots": [1, 2]}, seeds=1, overrides={"steps": 20}, n_workers=1)
    assert [r["robots"] for r in res.rows] == [1, 2]


def test_floor_sweep_default_fleet_too_big_names_the_defaults():
    from sorter.errors import InputError
    from sorter.floor_sweep import floor_sweep
    floor = Floor.from_ascii(TINY, name="tiny")
    with pytest.raises(InputError, match="default settings"):
        floor_sweep(floor, {"steps": [10]}, seeds=1, n_workers=1)

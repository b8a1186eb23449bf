"""The robot-floor report (sorter.agv.report, ``sorter mapf --report``): its series against
plain per-step loops, the files it writes, and the command line."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sorter.agv.lifelong import RunResult, make_run, simulate
from sorter.agv.report import REPORT_FILES, floor_time_series, waiting_counts, write_floor_report
from sorter.errors import InputError
from sorter.layout import Floor, load_floor
from sorter.resources import seed_path

MEDIUM = "floors/medium_33x57.txt"


def _naive_series(completed_at, delivered_at, positions, headings, w):
    """Window by window with plain loops: mean goals / parcels per step, and the shares of
    robot-steps moving / turning / staying."""
    steps = len(completed_at)
    out = {"tasks": [], "parcels": [], "moving": [], "turning": [], "staying": []}
    for a in range(0, steps, w):
        b = min(steps, a + w)
        c_sum = d_sum = mv = tn = tot = 0
        for t in range(a, b):
            c_sum += completed_at[t] - (completed_at[t - 1] if t else 0)
            d_sum += delivered_at[t] - (delivered_at[t - 1] if t else 0)
            for r in range(len(positions[0])):
                tot += 1
                if positions[t + 1][r] != positions[t][r]:
                    mv += 1
                elif headings is not None and headings[t + 1][r] != headings[t][r]:
                    tn += 1
        out["tasks"].append(c_sum / (b - a))
        out["parcels"].append(d_sum / (b - a))
        out["moving"].append(mv / tot)
        out["turning"].append(tn / tot)
        out["staying"].append(1 - (mv + tn) / tot)
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 5), st.integers(1, 12), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_time_series_matches_plain_loops(steps, robots, w, rotation, seed):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 4, size=(steps + 1, robots)).astype(np.int32)
    heads = rng.integers(0, 4, size=(steps + 1, robots)).astype(np.int8) if rotation else None
    done = np.cumsum(rng.integers(0, 3, steps))
    drops = np.cumsum(rng.integers(0, 2, steps))
    r = RunResult(positions=pos, step_ms=np.zeros(steps), tasks_completed=int(done[-1]),
                  delivered=int(drops[-1]), preprocess_s=0.0, steps=steps, robots=robots,
                  headings=heads, completed_at=done, delivered_at=drops)
    s = floor_time_series(r, window=w)
    ref = _naive_series(done.tolist(), drops.tolist(), pos.tolist(),
                        None if heads is None else heads.tolist(), w)
    assert s["edges"][0] == 0 and s["edges"][-1] == steps
    np.testing.assert_allclose(s["tasks_per_step"], ref["tasks"])
    np.testing.assert_allclose(s["parcels_per_step"], ref["parcels"])
    np.testing.assert_allclose(s["states"]["moving"], ref["moving"])
    np.testing.assert_allclose(s["states"]["staying"], ref["staying"])
    if rotation:
        np.testing.assert_allclose(s["states"]["turning"], ref["turning"])
    else:
        assert "turning" not in s["states"]


def test_waiting_counts_match_plain_loop():
    f = load_floor(seed_path(MEDIUM))
    rng = np.random.default_rng(3)
    free = f.free_cells
    pos = free[rng.integers(0, free.size, size=(40, 30))]
    pos[1::2] = pos[0::2][: pos[1::2].shape[0]]            # many stays
    ref = np.zeros(f.n_cells, np.int64)
    for t in range(1, pos.shape[0]):
        for r in range(pos.shape[1]):
            if pos[t, r] == pos[t - 1, r]:
                ref[pos[t, r]] += 1
    assert ref.sum() > 0
    np.testing.assert_array_equal(waiting_counts(f, pos), ref)
    drops = f.cells == 3
    cut = waiting_counts(f, pos, drops=False)
    assert cut[drops].sum() == 0
    np.testing.assert_array_equal(cut[~drops], ref[~drops])


def test_floor_sim_state_series_add_up_to_its_kpis(tmp_path):
    from sorter.agv.floor_sim import UTIL_STATES, FloorSimOptions
    f = load_floor(seed_path(MEDIUM))
    pl, stream = make_run(f, 60, seed=1, tasks="sorting", floor_sim=FloorSimOptions())
    res = simulate(pl, stream, 120)
    u = np.asarray(stream.util_steps)
    assert u.shape == (120, len(UTIL_STATES))
    assert (u.sum(axis=1) == 60).all()                    # every robot in one state per step
    np.testing.assert_array_equal(u.sum(axis=0), stream.util)
    s = floor_time_series(res, window=30, util_steps=u)
    k = stream.kpis(120)["robot_utilisation"]
    for name in UTIL_STATES:                               # equal windows: mean of shares
        assert s["states"][name].mean() == pytest.approx(k[name])
    assert res.completed_at[-1] == res.tasks_completed
    assert res.delivered_at[-1] == res.delivered
    files = write_floor_report(f, res, {**res.kpis(), **res.extra, "dwell_chute": 5,
                                        "dwell_induct": 1}, tmp_path, util_steps=u)
    assert set(files) == set(REPORT_FILES)
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "parcels sorted per hour" in page and "Robot floor report: medium_33x57" in page
    assert f"{res.kpis()['tasks_completed']:,}" in page


def test_report_of_a_plain_run_has_no_chute_plot(tmp_path):
    f = Floor.from_ascii("......\n......\n......\n......")
    pl, stream = make_run(f, 5, seed=0, tasks="random", rotation=True)
    res = simulate(pl, stream, 40)
    files = write_floor_report(f, res, res.kpis(), tmp_path)
    assert "chutes.png" not in files and (tmp_path / "report.html").is_file()
    assert "goals reached per step" in (tmp_path / "report.html").read_text()


def test_report_needs_a_recorded_run(tmp_path):
    f = Floor.from_ascii("....\n....")
    pl, stream = make_run(f, 2, seed=0, tasks="random")
    res = simulate(pl, stream, 5, record=False)
    with pytest.raises(InputError, match="record=True"):
        write_floor_report(f, res, res.kpis(), tmp_path)
    pl, stream = make_run(f, 2, seed=0, tasks="random")
    res = simulate(pl, stream, 5)
    with pytest.raises(InputError, match="window"):
        floor_time_series(res, window=0)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "sorter", "mapf", *args], cwd=cwd,
                          capture_output=True, text=True)


def test_cli_report(tmp_path):
    r = _cli(str(seed_path(MEDIUM)), "--scenario", "sorting", "--robots", "40", "--steps", "60",
             "--out", "out", "--report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in REPORT_FILES:
        assert (tmp_path / "out" / name).is_file(), name
    assert "report.html" in r.stdout
    k = json.loads((tmp_path / "out" / "kpis.json").read_text())
    assert k["steps"] == 60
    r = _cli(str(seed_path(MEDIUM)), "--robots", "10", "--steps", "5", "--report", cwd=tmp_path)
    assert r.returncode != 0 and "--out" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("steps", [0, 1])
def test_report_of_a_run_of_zero_or_one_step(tmp_path, steps):
    f = load_floor(seed_path(MEDIUM))
    pl, stream = make_run(f, 3, seed=0, tasks="sorting", rotation=True)
    res = simulate(pl, stream, steps)
    files = write_floor_report(f, res, res.kpis(), tmp_path)
    assert "report.html" in files and "waiting.png" in files
    assert "robot_states.png" in files               # 0 steps: a plot saying so


def test_chute_plot_counts_the_chutes_that_got_no_parcel(tmp_path, monkeypatch):
    from sorter.agv import report
    f = load_floor(seed_path(MEDIUM))
    pl, stream = make_run(f, 2, seed=0, tasks="sorting")
    res = simulate(pl, stream, 20)
    seen = {}
    orig = report.plot_chutes
    monkeypatch.setattr(report, "plot_chutes",
                        lambda pc, path, **kw: (seen.update(pc), orig(pc, path, **kw)))
    report.write_floor_report(f, res, {**res.kpis(), "sorted_per_chute": {"C1": 3}}, tmp_path)
    assert len(seen) == len(f.chutes) and seen["C1"] == 3 and sum(seen.values()) == 3


def test_waiting_map_leaves_faulted_robots_out():
    f = Floor.from_ascii("....\n....")
    pos = np.array([[0, 5], [0, 5], [0, 5], [1, 5]])
    assert waiting_counts(f, pos).tolist()[:6] == [2, 0, 0, 0, 0, 3]
    faulted = [np.array([1]), np.array([0]), np.array([0, 1])]        # per step
    assert waiting_counts(f, pos, faulted_steps=faulted).tolist()[:6] == [1, 0, 0, 0, 0, 1]


def test_floor_sim_records_faulted_robots_per_step():
    from sorter.agv.floor_sim import FloorSimOptions
    f = load_floor(seed_path(MEDIUM))
    pl, stream = make_run(f, 30, seed=0, tasks="sorting",
                          floor_sim=FloorSimOptions(fault_rate=0.01, repair_steps=20))
    simulate(pl, stream, 80)
    fs = stream.faulted_steps
    assert len(fs) == 80
    from sorter.agv.floor_sim import UTIL_STATES
    faulted_col = np.asarray(stream.util_steps)[:, UTIL_STATES.index("faulted")]
    assert [len(x) for x in fs] == faulted_col.tolist() and faulted_col.sum() > 0

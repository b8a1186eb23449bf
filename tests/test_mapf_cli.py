"""`sorter mapf`: output files (names, shapes, keys), valid plans on every shared floor, errors."""
import json

import numpy as np
import pytest

from sorter.agv.validate import check_paths
from sorter.cli import main
from sorter.layout import load_floor
from sorter.resources import shared_path

FLOOR = """
I..........I
..CD..CD..CD
............
.DC..DC..DC.
I..........I
"""

KPI_KEYS = {"robots", "steps", "tasks_completed", "tasks_per_step", "ms_per_step_p50",
            "ms_per_step_p99", "preprocess_s"}


def _check_outputs(out, floor, robots, steps, starts=None):
    assert sorted(p.name for p in out.iterdir()) >= ["kpis.json", "paths.npz"]
    with np.load(out / "paths.npz") as z:
        assert set(z.files) >= {"positions", "width", "height"}
        pos = z["positions"]
        assert pos.dtype == np.int32 and pos.shape == (steps + 1, robots)
        assert int(z["width"]) == floor.width and int(z["height"]) == floor.height
    k = json.loads((out / "kpis.json").read_text())
    assert KPI_KEYS <= set(k)
    assert k["robots"] == robots and k["steps"] == steps
    assert k["tasks_per_step"] == pytest.approx(k["tasks_completed"] / steps)
    if starts is not None:
        assert np.array_equal(pos[0], starts)
    check_paths(floor, pos[0], pos)
    return pos, k


def test_mapf_on_an_ascii_floor_writes_the_outputs(tmp_path, capsys):
    fl = tmp_path / "floor.txt"
    fl.write_text(FLOOR)
    out = tmp_path / "run"
    assert main(["mapf", str(fl), "--robots", "10", "--steps", "60", "--seed", "3",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tasks completed" in text and "ms/step" in text and "preprocessing" in text
    assert "Numba kernels" in text      # compiled before the timed steps, reported apart
    pos, k = _check_outputs(out, load_floor(fl), 10, 60)
    assert k["tasks_completed"] > 0
    # same seed -> same plan
    out2 = tmp_path / "run2"
    main(["mapf", str(fl), "--robots", "10", "--steps", "60", "--seed", "3", "--out", str(out2)])
    with np.load(out2 / "paths.npz") as z:
        assert np.array_equal(z["positions"], pos)


def test_mapf_figures(tmp_path):
    fl = tmp_path / "floor.txt"
    fl.write_text(FLOOR)
    out = tmp_path / "fig"
    assert main(["mapf", str(fl), "--robots", "6", "--steps", "12", "--out", str(out),
                 "--animate", "2:6", "--heatmap"]) == 0
    assert (out / "animation.gif").stat().st_size > 0
    assert (out / "heatmap.png").stat().st_size > 0


def test_mapf_errors(tmp_path, capsys):
    fl = tmp_path / "floor.txt"
    fl.write_text(FLOOR)
    assert main(["mapf", str(fl), "--robots", "6", "--steps", "10", "--animate", "2:6"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["mapf", str(fl), "--robots", "6", "--steps", "10", "--animate", "8:3",
                 "--out", str(tmp_path / "x")]) == 2
    assert main(["mapf", str(fl), "--robots", "999"]) == 2
    assert "fit" in capsys.readouterr().err
    assert main(["mapf", str(tmp_path / "missing.map")]) == 2
    agents = tmp_path / "a.agents"
    agents.write_text("2\n0\n0\n")
    assert main(["mapf", str(fl), "--agents", str(agents), "--steps", "5"]) == 2
    assert "distinct" in capsys.readouterr().err


def _shared_floors():
    out = []
    for parts in [("rhcr", "sorting_map.grid"), ("rhcr", "kiva.map"),
                  ("movingai", "warehouse-10-20-10-2-1.map"),
                  ("movingai", "warehouse-20-40-10-2-1.map"),
                  ("lorr2023", "example_instances", "warehouse.domain", "maps", "sortation_large.map"),
                  ("lorr2023", "example_instances", "warehouse.domain", "maps", "warehouse_large.map"),
                  ("lorr2023", "example_instances", "warehouse.domain", "EI23-warehouse_small_50.json")]:
        out.append(pytest.param(parts, id=parts[-1]))
    return out


@pytest.mark.parametrize("parts", _shared_floors())
def test_mapf_on_shared_benchmark_floors(parts, tmp_path):
    p = shared_path("benchmarks", *parts)
    if p is None:
        pytest.skip(f"../shared/benchmarks/{'/'.join(parts)} not present")
    out = tmp_path / "o"
    robots = [] if p.suffix == ".json" else ["--robots", "60"]
    assert main(["mapf", str(p), *robots, "--steps", "40", "--out", str(out), "--json"]) == 0
    floor = load_floor(p)
    n = 50 if p.suffix == ".json" else 60
    starts = None
    if p.suffix == ".json":
        from sorter.layout.lorr import load_lorr_problem
        starts = load_lorr_problem(p).starts
    pos, k = _check_outputs(out, floor, n, 40, starts)
    assert k["tasks_completed"] >= 0


def test_mapf_lorr_agents_and_tasks_files(tmp_path):
    base = shared_path("benchmarks", "lorr2023", "example_instances", "warehouse.domain")
    if base is None:
        pytest.skip("../shared/benchmarks/lorr2023 not present")
    out = tmp_path / "o"
    assert main(["mapf", str(base / "maps" / "warehouse_small.map"),
                 "--agents", str(base / "agents" / "warehouse_small_10.agents"),
                 "--tasks", str(base / "tasks" / "warehouse_small.tasks"),
                 "--steps", "100", "--out", str(out)]) == 0
    floor = load_floor(base / "maps" / "warehouse_small.map")
    pos, k = _check_outputs(out, floor, 10, 100)
    assert k["tasks_completed"] > 0


def test_mapf_rotation_writes_headings(tmp_path):
    fl = tmp_path / "floor.txt"
    fl.write_text(FLOOR)
    out = tmp_path / "rot"
    assert main(["mapf", str(fl), "--robots", "8", "--steps", "50", "--rotation",
                 "--out", str(out)]) == 0
    floor = load_floor(fl)
    pos, k = _check_outputs(out, floor, 8, 50)
    with np.load(out / "paths.npz") as z:
        h = z["headings"]
    assert h.shape == pos.shape
    moved = pos[1:] != pos[:-1]
    # a robot moves only along its heading, and turns only while it stays
    assert (floor.moves[pos[:-1][moved], h[:-1][moved]] == pos[1:][moved]).all()
    assert (h[1:][moved] == h[:-1][moved]).all()
    assert k["rotation"] is True and k["tasks_completed"] > 0


def test_mapf_table_mb_bounds_the_cache_and_reports_memory(tmp_path, capsys):
    fl = tmp_path / "floor.txt"
    fl.write_text(FLOOR)
    ks = []
    for mb in ("512", "0"):
        out = tmp_path / f"mb{mb}"
        assert main(["mapf", str(fl), "--robots", "6", "--steps", "80", "--seed", "1",
                     "--scenario", "random", "--table-mb", mb, "--out", str(out)]) == 0
        assert "peak memory" in capsys.readouterr().out
        pos, k = _check_outputs(out, load_floor(fl), 6, 80)
        ks.append((pos, k))
    (p1, k1), (p0, k0) = ks
    assert k1["table_mb_bound"] == 512 and k0["table_mb_bound"] == 0
    assert k0["peak_rss_mb"] > 0
    assert np.array_equal(p1, p0)              # the cache bound changes time, never moves
    assert k0["distance_tables_computed"] > k1["distance_tables_computed"]   # recomputed
    for bad in ("-1", "nan", "inf"):
        assert main(["mapf", str(fl), "--robots", "6", "--steps", "5", "--table-mb", bad]) == 2
        assert "table_mb" in capsys.readouterr().err


def test_mapf_default_table_bound_is_0_for_multi_errand_tasks(tmp_path, capsys):
    # LoRR 2024-style task files (several errands per task, anywhere on the floor): no idle
    # tables kept by default; single-errand files and other runs keep the 512 MB default
    fl = tmp_path / "floor.txt"
    fl.write_text(FLOOR)
    floor = load_floor(fl)
    free = [int(c) for c in floor.free_cells]
    multi = tmp_path / "multi.tasks"
    multi.write_text("3\n" + "\n".join(f"{free[i]},{free[-1 - i]}" for i in range(3)) + "\n")
    single = tmp_path / "single.tasks"
    single.write_text("3\n" + "\n".join(str(free[i]) for i in range(3)) + "\n")
    bounds = {}
    for name, tasks in (("multi", multi), ("single", single)):
        assert main(["mapf", str(fl), "--robots", "2", "--steps", "5", "--tasks", str(tasks),
                     "--json"]) == 0
        bounds[name] = json.loads(capsys.readouterr().out)["table_mb_bound"]
    assert bounds == {"multi": 0, "single": 512}
    assert main(["mapf", str(fl), "--robots", "2", "--steps", "5", "--tasks", str(multi),
                 "--table-mb", "64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["table_mb_bound"] == 64


def test_warm_up_compiles_the_step_kernels_and_leaves_runs_unchanged(tmp_path):
    """In a fresh interpreter the step kernels have no compiled signature until warm_up (which
    compiles them or loads them from Numba's cache); a run before and after it plans the same
    paths (no state carried over)."""
    import subprocess
    import sys
    from sorter.agv.lifelong import make_run, simulate, warm_up
    from sorter.layout.ascii import parse_ascii
    # cwd elsewhere: the installed package, not the source tree (no compiled engine there in CI)
    probe = ("from sorter.agv import pibt, distance; from sorter.agv.lifelong import warm_up; "
             "ks = (pibt._pibt_step, pibt._gather, pibt._watch); {}; "
             "print(all(k.signatures for k in ks), "
             "any(k.signatures for k in (distance._bfs_into, distance._dial_into)))")
    cold = subprocess.run([sys.executable, "-c", probe.format("pass")], capture_output=True,
                          text=True, check=True, cwd=tmp_path).stdout.split()
    warm = subprocess.run([sys.executable, "-c", probe.format("warm_up()")], capture_output=True,
                          text=True, check=True, cwd=tmp_path).stdout.split()
    assert cold == ["False", "False"] and warm == ["True", "True"]
    fl = parse_ascii(FLOOR)
    before = simulate(*make_run(fl, 6, seed=2), 40).positions
    s = warm_up()
    assert np.isfinite(s) and s >= 0
    after = simulate(*make_run(fl, 6, seed=2), 40).positions
    assert np.array_equal(before, after)


def test_paths_npz_writer_reads_back_as_numpy_savez_does(tmp_path):
    """`sorter mapf` writes paths.npz at zlib level 1 with its own writer: numpy.load gives the
    same keys, dtypes, shapes and values as from numpy.savez_compressed."""
    from sorter.commands.mapf import _save_npz
    rng = np.random.default_rng(0)
    arrays = {"positions": rng.integers(0, 10**6, (31, 17)).astype(np.int32),
              "width": np.int64(500), "height": np.int64(140),
              "headings": rng.integers(0, 4, (31, 17)).astype(np.int8)}
    _save_npz(tmp_path / "a.npz", **arrays)
    np.savez_compressed(tmp_path / "b.npz", **arrays)
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert a.files == b.files
        for k in a.files:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
            assert np.array_equal(a[k], b[k])


@pytest.mark.parametrize("kw", [{"seed": -1}, {"seed": 1.5}, {"steps": 1.5}, {"steps": "3"},
                                {"steps": None}, {"steps": True}])
def test_make_run_and_simulate_name_a_bad_seed_or_step_count(kw):
    """A float step count ran its floor (1.5 -> 1 step) and a negative seed failed inside NumPy
    without naming the field: both are InputErrors naming it."""
    from sorter.agv.lifelong import make_run, simulate
    from sorter.errors import InputError
    from sorter.layout.ascii import parse_ascii
    fl = parse_ascii(FLOOR)
    with pytest.raises(InputError) as e:
        p, s = make_run(fl, 4, seed=kw.get("seed", 0))
        simulate(p, s, kw.get("steps", 5), record=False)
    assert e.value.field == next(iter(kw))


def test_a_run_without_report_into_a_folder_with_an_older_report_says_so(tmp_path, capsys):
    """paths.npz and kpis.json are rewritten; an earlier run's report.html beside them is not:
    the command says so on stderr (and leaves the file alone)."""
    fl = tmp_path / "floor.txt"
    fl.write_text(FLOOR)
    out = tmp_path / "run"
    args = ["mapf", str(fl), "--robots", "4", "--steps", "10", "--scenario", "sorting",
            "--out", str(out)]
    assert main(args + ["--report"]) == 0
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "earlier run's report" in err and (out / "report.html").is_file()
    assert main(args + ["--report"]) == 0
    assert "earlier run's report" not in capsys.readouterr().err

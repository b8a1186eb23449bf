"""QA 14f: valid-looking inputs that would hang, take hours or exhaust memory are refused up
front with an InputError naming the field and the limit (never by allocating the huge thing).

Each test builds only the small description of the huge input (a header, a sparse file, a
list length) and checks the refusal; the limits are also checked against what the shipped
seeds use, so a limit can not creep down onto real inputs.
"""
from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys

import pytest

from sorter.errors import InputError
from sorter.resources import seed_path


# -- sweep grids: the product of the --vary lists -----------------------------------------

def test_sweep_refuses_a_product_of_ranges_before_building_points(monkeypatch):
    """Two ranges of 1,001 and 2,001 values are 2 million points (each range alone is
    allowed): refused before any point is validated, naming both lists and the limit."""
    from sorter import sweep as sw

    def boom(*a, **k):                       # no point may be built for a refused grid
        raise AssertionError("a point was built")
    monkeypatch.setattr(sw, "_point_scenario", boom)
    vary = {"wave.0.rate_per_hour": list(range(1000, 2001)),
            "loop.speed_mps": [1 + i / 1000 for i in range(2001)]}
    with pytest.raises(InputError) as ei:
        sw.capacity_sweep(seed_path("scenarios/small.toml"), vary, seeds=1, n_workers=1)
    msg = str(ei.value)
    assert "2,003,001 points" in msg and f"{sw.MAX_POINTS:,}" in msg
    assert "1,001 (wave.0.rate_per_hour)" in msg and "2,001 (loop.speed_mps)" in msg


def test_sweep_refuses_points_times_seeds_over_the_run_limit(monkeypatch):
    from sorter import sweep as sw
    monkeypatch.setattr(sw, "_point_scenario",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("built")))
    n_points = sw.MAX_RUNS // 50 + 1
    assert n_points <= sw.MAX_POINTS
    with pytest.raises(InputError, match=r"runs") as ei:
        sw.capacity_sweep(seed_path("scenarios/small.toml"),
                          {"wave.0.rate_per_hour": list(range(n_points))}, seeds=50, n_workers=1)
    assert ei.value.field == "seeds" and f"{sw.MAX_RUNS:,}" in str(ei.value)
    # an explicit list of seeds counts the same
    with pytest.raises(InputError, match=r"runs"):
        sw.capacity_sweep(seed_path("scenarios/small.toml"),
                          {"wave.0.rate_per_hour": list(range(n_points))},
                          seeds=list(range(50)), n_workers=1)


def test_check_grid_size_boundaries():
    from sorter.sweep import MAX_POINTS, MAX_RUNS, check_grid_size
    check_grid_size({"a": MAX_POINTS}, MAX_RUNS // MAX_POINTS)       # exactly at both limits
    with pytest.raises(InputError):
        check_grid_size({"a": MAX_POINTS + 1}, 1)
    with pytest.raises(InputError):
        check_grid_size({"a": 100, "b": MAX_POINTS // 100 + 1}, 1)
    with pytest.raises(InputError):
        check_grid_size({"a": MAX_POINTS}, MAX_RUNS // MAX_POINTS + 1)
    # the shipped examples (README / --help): 5 x 2 points x 5 seeds, 5 x 2 x 3, ...
    check_grid_size({"wave.0.rate_per_hour": 5, "loop.speed_mps": 2}, 5)
    check_grid_size({"robots": 5, "fault_rate": 2}, 3)


def test_floor_sweep_refuses_a_huge_grid_before_checking_values(monkeypatch):
    from sorter import floor_sweep as fs
    calls = []
    real = fs._check_value
    monkeypatch.setattr(fs, "_check_value", lambda *a: calls.append(a) or real(*a))
    with pytest.raises(InputError, match=r"20,000 points"):
        fs.floor_sweep(seed_path("floors/small_12x20.txt"),
                       {"robots": range(1, 101), "dwell_chute": range(1, 201)}, seeds=1,
                       n_workers=1)
    assert calls == []


def test_sweep_cli_names_the_grid_limit(tmp_path):
    """The CLI path: `--vary a=1000:2000:1 --vary b=1:3:0.001` exits 2 with one line."""
    r = subprocess.run([sys.executable, "-m", "sorter", "sweep",
                        str(seed_path("scenarios/small.toml")),
                        "--vary", "wave.0.rate_per_hour=1000:2000:1",
                        "--vary", "loop.speed_mps=1:3:0.001", "--no-progress"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "2,003,001 points" in r.stderr and "Traceback" not in r.stderr


# -- floors: cells = rows x cols, from the header or the text -----------------------------

def test_movingai_header_of_a_huge_map_is_refused_from_the_header():
    """A 20,000 x 20,000 header is refused at its line, before any row is parsed (the file
    holds one short row: a parse would complain of missing rows instead)."""
    from sorter.layout._common import MAX_FLOOR_CELLS
    from sorter.layout.movingai import parse_movingai_map
    text = "type octile\nheight 20000\nwidth 20000\nmap\n..........\n"
    with pytest.raises(InputError) as ei:
        parse_movingai_map(text, name="huge")
    assert ei.value.line == 2 and "400,000,000 cells" in str(ei.value)
    assert f"{MAX_FLOOR_CELLS:,}" in str(ei.value)


def test_rhcr_and_kiva_headers_of_huge_maps_are_refused():
    from sorter.layout.rhcr import parse_kiva_map, parse_rhcr_grid
    with pytest.raises(InputError, match="cells") as ei:
        parse_rhcr_grid("Grid size (x, y)\n20000,20000\n" + "x" * 10 + "\n", name="g")
    assert ei.value.line == 2
    with pytest.raises(InputError, match="cells") as ei:
        parse_kiva_map("20000,20000\n1\n1\n1\n....\n", name="k")
    assert ei.value.line == 1


def test_ascii_floor_over_the_cell_limit_is_refused(monkeypatch):
    """A text floor with more cells than the limit (here the limit is lowered so the test
    stays small) is refused before any per-cell array is built."""
    from sorter.layout import _common, ascii as asc
    monkeypatch.setattr(_common, "MAX_FLOOR_CELLS", 12 * 20 - 1)
    monkeypatch.setattr(asc, "_build", lambda *a, **k: pytest.fail("floor built"))
    text = seed_path("floors/small_12x20.txt").read_text()
    with pytest.raises(InputError, match=r"12 rows x 20 columns = 240 cells"):
        asc.parse_ascii(text, name="small")
    monkeypatch.setattr(_common, "MAX_FLOOR_CELLS", 12 * 20)
    monkeypatch.undo()
    assert asc.parse_ascii(text, name="small").n_cells == 240


def test_generated_floor_limit_is_the_loaders_limit():
    from sorter.layout import generate
    from sorter.layout._common import MAX_FLOOR_CELLS
    assert generate.MAX_CELLS == MAX_FLOOR_CELLS
    with pytest.raises(InputError, match="cells"):
        generate._check_size(20_000, 20_000)
    generate._check_size(2000, MAX_FLOOR_CELLS // 2000)


def test_every_shipped_floor_is_far_under_the_cell_limit():
    from sorter.layout import load_floor
    from sorter.layout._common import MAX_FLOOR_CELLS
    from sorter.resources import shared_path
    floors = sorted(seed_path("floors").glob("*.txt"))
    big = shared_path("benchmarks/rhcr/sorting_map.grid")
    if big is not None:
        floors.append(big)
    for p in floors:
        f = load_floor(p)
        assert f.height * f.width * 10 <= MAX_FLOOR_CELLS, p


# -- sorter assign: an events file's lines ------------------------------------------------

def _plan_args():
    return seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml")


def test_events_file_with_a_giant_line_is_refused_without_reading_it(tmp_path):
    """A 100 GB sparse file (NULs, no newline) is refused at line 2 after reading ~1 MB."""
    from sorter import Sorter
    from sorter.replay import MAX_LINE_CHARS, replay_events
    p = tmp_path / "events.csv"
    p.write_text("t,event,parcel,destination,recirculation,sortable,chute,plan\n")
    try:
        os.truncate(p, 100 * 2**30)           # sparse: no disk used
    except OSError as exc:                    # pragma: no cover - a filesystem without holes
        pytest.skip(f"no sparse files here: {exc}")
    s = Sorter.from_files(*_plan_args())
    with pytest.raises(InputError) as ei:
        replay_events(s, p)
    assert ei.value.line == 2 and f"{MAX_LINE_CHARS:,}" in str(ei.value)


def test_a_long_line_within_the_limit_is_a_normal_bad_row(tmp_path):
    """Below the line limit a long row is an ordinary row (csv's own field limit, skipped)."""
    from sorter import Sorter
    from sorter.replay import replay_events
    p = tmp_path / "events.csv"
    p.write_text("t,event,parcel,destination,recirculation,sortable,chute,plan\n"
                 "0,scan,P1,01422,0,1,,\n"
                 + "0,scan,P" + "x" * 200_000 + ",01422,0,1,,\n"
                 + "1,scan,P2,01422,0,1,,\n")
    res = replay_events(Sorter.from_files(*_plan_args()), p, on_error="skip")
    assert res.decisions == 2 and res.n_skipped == 1 and res.skipped[0][0] == 3


def test_skip_mode_keeps_a_bounded_list_of_skipped_rows(tmp_path, monkeypatch):
    """A file of bad rows keeps the first MAX_SKIPPED_KEPT messages and counts the rest."""
    from sorter import Sorter, replay
    monkeypatch.setattr(replay, "MAX_SKIPPED_KEPT", 5)
    p = tmp_path / "events.csv"
    rows = "".join(f"{i},scan,P{i},01422,x,1,,\n" for i in range(40))
    p.write_text("t,event,parcel,destination,recirculation,sortable,chute,plan\n" + rows
                 + "99,scan,P99,01422,0,1,,\n")
    res = replay.replay_events(Sorter.from_files(*_plan_args()), p, on_error="skip")
    assert res.n_skipped == 40 and len(res.skipped) == 5
    assert [ln for ln, _ in res.skipped] == [2, 3, 4, 5, 6]
    assert res.decisions == 1


def test_assign_cli_reports_every_skipped_row(tmp_path, monkeypatch):
    from sorter import replay
    from sorter.cli import main
    monkeypatch.setattr(replay, "MAX_SKIPPED_KEPT", 3)
    p = tmp_path / "events.csv"
    p.write_text("t,event,parcel,destination,recirculation,sortable,chute,plan\n"
                 + "".join(f"{i},scan,P{i},01422,x,1,,\n" for i in range(10)))
    plan, chutes = _plan_args()
    out = tmp_path / "d.csv"
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["assign", "--plan", str(plan), "--chutes", str(chutes), "--events", str(p),
                   "--out", str(out), "--on-error", "skip"])
    assert rc in (0, None) and "10 rows skipped" in buf.getvalue()


# -- the engine: chutes per table ---------------------------------------------------------

def test_chute_table_refuses_ten_million_chutes_from_the_length():
    """A list of 10^7 (the same dict repeated: no memory) is refused from its length."""
    from sorter.plan import MAX_CHUTES, ChuteTable
    with pytest.raises(InputError) as ei:
        ChuteTable([{"id": "C1"}] * (10 * MAX_CHUTES))
    assert f"{10 * MAX_CHUTES:,} chutes" in str(ei.value) and ei.value.field == "chute"


def test_chute_table_refuses_an_endless_iterator(monkeypatch):
    from sorter import plan
    monkeypatch.setattr(plan, "MAX_CHUTES", 50)
    with pytest.raises(InputError, match="more than 50 chutes"):
        plan.ChuteTable({"id": f"C{i}", "kind": "destination"} for i in itertools.count())
    assert len(plan.ChuteTable([{"id": f"C{i}", "kind": "destination"}
                                for i in range(50)])) == 50


def test_shipped_chute_tables_are_far_under_the_limit():
    from sorter.plan import MAX_CHUTES, load_chutes
    t = load_chutes(seed_path("plan/demo_chutes.toml"))
    t = t[0] if isinstance(t, tuple) else t
    assert 100 * len(t) <= MAX_CHUTES


# -- plans: destinations per plan ---------------------------------------------------------

def test_plan_csv_over_the_destination_limit_is_refused_at_the_first_extra_row(monkeypatch):
    from sorter import plan
    monkeypatch.setattr(plan, "MAX_DESTINATIONS", 3)
    text = "destination,chutes\n" + "".join(f"D{i},C{i}\n" for i in range(10))
    with pytest.raises(InputError) as ei:
        plan.parse_plan_csv(text, path="p.csv")
    assert ei.value.line == 5 and ei.value.field == "destination"
    assert "more than 3 destinations" in str(ei.value)
    first3 = "".join(text.splitlines(True)[:4])           # the header and 3 rows: at the limit
    assert len(plan.parse_plan_csv(first3, path="p.csv")) == 3


def test_sort_plan_with_too_many_routes_is_refused_from_its_length(monkeypatch):
    from sorter import Sorter, plan
    from sorter.constants import REJECT_REASONS
    monkeypatch.setattr(plan, "MAX_DESTINATIONS", 2)
    sp = plan.SortPlan(routes={f"D{i}": ["C1"] for i in range(3)},
                       reject={r: "R1" for r in REJECT_REASONS})
    chutes = [{"id": "C1", "kind": "destination"}, {"id": "R1", "kind": "reject"}]
    with pytest.raises(InputError, match="3 destinations"):
        Sorter(sp, chutes)


def test_shipped_plans_are_far_under_the_destination_limit():
    from sorter.plan import MAX_DESTINATIONS, load_plan_routes
    for p in sorted(seed_path("plan").glob("*.csv")):
        if p.read_text().startswith("destination"):
            assert 1000 * len(load_plan_routes(p)) <= MAX_DESTINATIONS, p


# -- robot floors: destinations of the generated plan -------------------------------------

def test_destination_mix_refuses_a_huge_count_before_its_arrays():
    from sorter.agv.tasks import MAX_MIX_DESTINATIONS, DestinationMix
    from sorter.plan import MAX_DESTINATIONS
    assert MAX_MIX_DESTINATIONS <= MAX_DESTINATIONS       # a mix never outgrows its plan
    with pytest.raises(InputError, match="100,000,000") as ei:
        DestinationMix(10**8, "zipf")
    assert ei.value.field == "destinations"
    assert DestinationMix(1000, "721").p.size == 1000


def test_sorting_tasks_check_destinations_against_chutes_before_the_mix(monkeypatch):
    """--destinations 10^8 on an 8-chute floor: the chute-count error, with no mix built."""
    import numpy as np

    from sorter.agv import tasks
    from sorter.layout import load_floor
    f = load_floor(seed_path("floors/small_12x20.txt"))
    monkeypatch.setattr(tasks, "DestinationMix",
                        lambda *a, **k: pytest.fail("mix built before the check"))
    with pytest.raises(InputError, match=f"for {len(f.chutes)} chutes") as ei:
        tasks.SortingTasks(f, 5, np.random.default_rng(0), n_destinations=10**8)
    assert ei.value.expected == f"1..{len(f.chutes)}"


# -- sorter run: interval x chute arrays, hubs --------------------------------------------

def _small_doc():
    import tomllib
    return tomllib.loads(seed_path("scenarios/small.toml").read_text())


def test_week_of_minutes_on_a_huge_loop_is_refused_before_any_array(monkeypatch):
    """10,080 one-minute intervals x 90,000 chutes asked 6.8 GiB at once: refused while
    the scenario is validated (the limit is lowered here so the loop stays small)."""
    from sorter.sim import scenario as scn
    doc = _small_doc()                     # 0.5 h / 5 min = 6 intervals, 44 chutes
    n_chutes = len(scn.parse_scenario(doc).loops[0].layout.chutes)
    monkeypatch.setattr(scn, "MAX_INTERVAL_CELLS", 6 * n_chutes - 1)
    with pytest.raises(InputError) as ei:
        scn.parse_scenario(_small_doc(), path="small.toml")
    msg = str(ei.value)
    assert f"6 intervals x {n_chutes} chutes = {6 * n_chutes} chute-intervals" in msg
    assert ei.value.field == "scenario.interval_minutes"
    monkeypatch.setattr(scn, "MAX_INTERVAL_CELLS", 6 * n_chutes)
    scn.parse_scenario(_small_doc())       # exactly at the limit: accepted


def test_interval_limit_counts_every_loop_of_a_hub(monkeypatch):
    from sorter.sim import scenario as scn
    sc = scn.load_scenario(seed_path("scenarios/hub.toml"))
    total = sum(len(lp.layout.chutes) for lp in sc.loops)
    n_int = math.ceil(sc.shift_hours * 60 / sc.interval_minutes)
    monkeypatch.setattr(scn, "MAX_INTERVAL_CELLS", n_int * total - 1)
    with pytest.raises(InputError, match=f"{total:,} chutes"):
        scn.load_scenario(seed_path("scenarios/hub.toml"))


def test_hub_chute_total_is_refused_at_the_loop_that_passes_it(monkeypatch):
    from sorter.sim import scenario as scn
    sc = scn.load_scenario(seed_path("scenarios/hub.toml"))
    sizes = [len(lp.layout.chutes) for lp in sc.loops]
    monkeypatch.setattr(scn, "MAX_HUB_CHUTES", sizes[0] + sizes[1] - 1)
    built = []
    real = scn._loop_plan
    monkeypatch.setattr(scn, "_loop_plan", lambda *a, **k: built.append(1) or real(*a, **k))
    with pytest.raises(InputError, match=f"{sizes[0] + sizes[1]:,} chutes on the first 2 "
                                         "loops") as ei:
        scn.load_scenario(seed_path("scenarios/hub.toml"))
    assert ei.value.field == "loop.1.n_chutes" and len(built) == 1   # loop C never built


def test_too_many_loops_are_refused_before_any_is_built(monkeypatch):
    from sorter.sim import scenario as scn
    doc = _small_doc()
    doc["loop"] = [dict(doc["loop"], name=f"L{i}") for i in range(scn.MAX_LOOPS + 1)]
    monkeypatch.setattr(scn.LoopSorter, "from_dict",
                        classmethod(lambda *a, **k: pytest.fail("a loop was built")))
    with pytest.raises(InputError, match=f"{scn.MAX_LOOPS + 1:,} \\[\\[loop\\]\\] tables"):
        scn.parse_scenario(doc)


def test_every_shipped_scenario_is_far_under_the_run_limits():
    from sorter.sim import scenario as scn
    for p in sorted(seed_path("scenarios").glob("*.toml")):
        sc = scn.load_scenario(p)
        total = sum(len(lp.layout.chutes) for lp in sc.loops)
        n_int = math.ceil(sc.shift_hours * 60 / sc.interval_minutes - 1e-9)
        assert 10 * n_int * total <= scn.MAX_INTERVAL_CELLS, p
        assert 10 * total <= scn.MAX_HUB_CHUTES and len(sc.loops) * 10 <= scn.MAX_LOOPS, p


# -- sorter mapf: the distance-table reserve ----------------------------------------------


def _make_run_fails(monkeypatch, code, text):
    """`make_run` raises OSError(code) for the run (warm_up's own 6-robot run goes through)."""
    from sorter.agv import lifelong
    real = lifelong.make_run

    def refuse(floor, n_robots, *a, **k):
        if n_robots == 6:
            return real(floor, n_robots, *a, **k)
        raise OSError(code, text)
    monkeypatch.setattr(lifelong, "make_run", refuse)

def test_mapf_turns_an_unmappable_table_reserve_into_an_input_error(monkeypatch, capsys):
    """The planner's table pool is reserved address space (two rows a robot); the system
    refuses it for 10^5 robots on a big floor ("Cannot allocate memory", no field): the CLI
    names --robots. Here the refusal is simulated (no big map is made)."""
    import errno

    from sorter.cli import main
    _make_run_fails(monkeypatch, errno.ENOMEM, "Cannot allocate memory")
    rc = main(["mapf", str(seed_path("floors/small_12x20.txt")), "--robots", "50",
               "--steps", "5"])
    err = capsys.readouterr().err
    assert rc == 2 and "field 'robots'" in err and "50 robots on 232 free cells" in err
    assert "GiB of address space" in err


def test_mapf_other_os_errors_are_not_reported_as_memory(monkeypatch, capsys):
    import errno

    from sorter.cli import main
    _make_run_fails(monkeypatch, errno.EACCES, "Permission denied")
    rc = main(["mapf", str(seed_path("floors/small_12x20.txt")), "--robots", "5", "--steps", "5"])
    err = capsys.readouterr().err
    assert rc != 0 and "address space" not in err


# -- sweep: local worker processes --------------------------------------------------------

def test_sweep_refuses_a_thousand_worker_processes(monkeypatch):
    from sorter import sweep as sw
    monkeypatch.setattr(sw, "_point_scenario", lambda *a, **k: pytest.fail("point built"))
    assert sw.max_workers() >= 32
    with pytest.raises(InputError, match="1,000 worker processes") as ei:
        sw.capacity_sweep(seed_path("scenarios/small.toml"), {"wave.0.rate_per_hour": [1000]},
                          seeds=1, n_workers=1000)
    assert ei.value.field == "n_workers"
    sw.check_backend(None, sw.max_workers())              # at the limit: accepted
    sw.check_backend(None, 2)                             # the tests' and docs' values


def test_sweep_cli_refuses_many_workers_before_any_cluster(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sorter", "sweep",
                        str(seed_path("scenarios/small.toml")),
                        "--vary", "wave.0.rate_per_hour=1000,2000", "--workers", "100000",
                        "--dask", "local", "--no-progress"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and "--workers 100,000" in r.stderr and "Traceback" not in r.stderr

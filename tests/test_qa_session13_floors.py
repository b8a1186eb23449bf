"""QA session 13: "a warehouse engineer brings their own floor" -- hand-made floors of odd
topology in every format (ASCII, MovingAI / LoRR maps, LoRR problems, RHCR grids), generated
floors with edge-case arguments, driven through ``sorter mapf``, ``sorter sweep FLOOR`` and the
library, every plan read back from ``paths.npz`` and checked by ``sorter.agv.validate``.

Regressions (input -> what went wrong before the fix):

* ``sorter mapf FLOOR --robots N`` on a sorting floor where some free cells cannot reach the
  inducts (a walled-off pocket, a one-way dead end): the starts drawn beyond the part holding
  the stations landed there without a word, and those robots idled the whole run (a start
  given in an agents file there was refused; so were robots beyond the errands' part of a
  LoRR run). ``sorter sweep FLOOR --vary robots=...`` ran such points too.
* ``--arrival-rate 0,0@600`` (waves whose rates are all 0, i.e. breaks only) ran as an
  unlimited supply: every induct always had a parcel, parcels were sorted and no offered
  count was reported; the docs say a 0 in waves is a break, not unlimited.
* an ASCII floor whose first row ends in a stray invisible character (a no-break space, a
  vertical tab, a line separator pasted from a document): the error blamed the *next* row
  ("row has 4 cells but the first row has 5", line 2) instead of naming the character on
  line 1; a tab-indented floor under a header got "header says width 4 but rows have 5".
* ``Floor(cells)`` with ragged rows raised NumPy's "setting an array element with a
  sequence ... inhomogeneous shape" instead of an InputError naming ``cells``.

The other tests pin what the pass checked and found right: one floor written in three formats
plans the same, a LoRR problem run from another directory, odd floors (one row, one cell,
as many robots as free cells, zero steps) with the report and figures, bad files of every
format as one-line errors, parcel conservation and per-chute drops recomputed from the
recorded positions on generated floors, and byte-identical outputs for a seed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings, strategies as st

from naive_mapf import naive_reach
from sorter.agv.floor_sim import FloorSimOptions
from sorter.agv.lifelong import default_starts, make_run, simulate, working_cells
from sorter.agv.validate import validate
from sorter.cli import main
from sorter.errors import InputError
from sorter.layout import Floor, lattice_capacity, load_floor, sortation_floor
from sorter.layout.ascii import format_ascii

TIMING = {"ms_per_step_p50", "ms_per_step_p99", "ms_per_step_max", "kernel_ms_p50",
          "kernel_ms_p99", "preprocess_s", "peak_rss_mb"}

# two chutes and one induct on the left; a walled-off pocket of 4 cells on the right
POCKET = "I.D.D@..\n..C.C@..\n"
# the same stations; a one-way street (east) ends in a dead end: 3 cells no robot leaves
TRAP = "I.D.D.>>>\n..C.C.@@@\n"


# ----------------------------------------------------------------------- helpers (oracles)
def _err(capsys, argv):
    """Run the CLI expecting a user error: exit 2, ONE line on stderr, no traceback."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _run(capsys, floor_file, out, *args):
    """Run ``sorter mapf`` into ``out``; return (positions, kpis), the plan validated
    against the floor as the file gives it."""
    capsys.readouterr()
    rc = main(["mapf", str(floor_file), "--out", str(out), *[str(a) for a in args]])
    assert rc == 0, capsys.readouterr().err
    with np.load(out / "paths.npz") as z:
        pos, width, height = z["positions"], int(z["width"]), int(z["height"])
    k = json.loads((out / "kpis.json").read_text())
    floor = load_floor(floor_file) if Path(floor_file).suffix != ".json" else None
    if floor is not None:
        assert (width, height) == (floor.width, floor.height)
        assert validate(floor, pos[0], pos) is None
    assert pos.dtype == np.int32 and pos.shape == (k["steps"] + 1, k["robots"])
    return pos, k


def _stays(pos, cells, k):
    """Per-robot maximal runs on one cell of ``cells`` lasting at least ``k + 1`` rows (a drop
    needs the robot on the drop cell for its dwell; between two drops it visits an induct)."""
    cells = set(int(c) for c in cells)
    n = 0
    for i in range(pos.shape[1]):
        col = [int(c) for c in pos[:, i]]
        run = 0
        for t, c in enumerate(col):
            run = run + 1 if t and c == col[t - 1] else 1
            if c in cells and run == k + 1:
                n += 1
    return n


# ------------------------------------------------- robots drawn beyond the stations' part
@pytest.mark.parametrize("text,room", [(POCKET, 8), (TRAP, 10)])
def test_sorting_run_refuses_drawn_robots_beyond_the_part_with_the_stations(tmp_path, capsys,
                                                                             text, room):
    fl = tmp_path / "f.txt"
    fl.write_text(text)
    floor = load_floor(fl)
    assert working_cells(floor).size == room < floor.free_cells.size
    # room robots: every start where it can reach an induct (they may well jam: their floor)
    pos, _ = _run(capsys, fl, tmp_path / "o", "--robots", room, "--steps", 5)
    assert set(pos[0].tolist()) <= set(working_cells(floor).tolist())
    # one more: was a robot silently parked in the pocket / the dead end for the whole run
    for extra in (["--scenario", "sorting"], []):
        line = _err(capsys, ["mapf", fl, "--robots", room + 1, "--steps", 5, *extra])
        assert f"--robots {room + 1}" in line and f"only {room} of the floor's " \
            f"{floor.free_cells.size} free cells" in line and f"at most {room} robots" in line
        assert "f.txt" in line
    # beyond the free cells: the plain message
    line = _err(capsys, ["mapf", fl, "--robots", floor.free_cells.size + 1, "--steps", 5])
    assert "do not fit" in line


def test_floor_sweep_refuses_robots_beyond_the_part_with_the_stations(tmp_path, capsys):
    fl = tmp_path / "f.txt"
    fl.write_text(POCKET)
    line = _err(capsys, ["sweep", fl, "--vary", "robots=2,9", "--set", "steps=10",
                         "--seeds", 1, "--workers", 1])
    assert "9 robots" in line and "only 8 of the floor's 12 free cells" in line
    from sorter.floor_sweep import floor_sweep
    with pytest.raises(InputError, match="at most 8"):
        floor_sweep(fl, {"robots": [9]}, seeds=1, overrides={"steps": 5}, n_workers=1)
    res = floor_sweep(fl, {"robots": [2]}, seeds=1, overrides={"steps": 40}, n_workers=1)
    assert res.rows[0]["robots"] == 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(5, 7), cols=st.integers(5, 9), seed=st.integers(0, 2**32),
       side=st.lists(st.sampled_from(".@><^v"), min_size=3, max_size=18), wall=st.booleans())
def test_working_cells_are_those_that_reach_and_are_reached_by_the_stations(rows, cols, seed,
                                                                              side, wall):
    """A generated floor with a strip of random cells glued to its right side (walled off or
    open; arrows make one-way traps): ``working_cells`` (where drawn starts go first) is the
    set a plain BFS finds reaching an induct and reached from one."""
    base = sortation_floor(rows, cols, 1, 1, seed=seed, margin=0)
    grid = format_ascii(base).splitlines()
    strip = ("".join(side) * rows)[:rows * 2]
    text = "\n".join(g + ("@" if wall else ".") + strip[2 * r:2 * r + 2]
                     for r, g in enumerate(grid))
    try:
        floor = Floor.from_ascii(text)
    except InputError:
        assume(False)                           # arrows that cut the stations apart: refused
    induct = [int(c) for s in floor.inducts for c in s.cells]
    both = naive_reach(floor, induct) & naive_reach(floor, induct, backward=True)
    free = set(int(c) for c in floor.free_cells)
    got = set(working_cells(floor).tolist())
    event("cells that idle" if got != free else "one part")
    assert got == (both & free)
    starts = default_starts(floor, len(got), np.random.default_rng(seed))
    assert set(starts.tolist()) == got


# ------------------------------------------------------------ waves of rate 0: breaks only
def test_arrival_waves_all_zero_are_breaks_not_an_unlimited_supply(tmp_path, capsys):
    assert FloorSimOptions(arrival_rate=[(0, 0), (600, 0)]).supply_limited
    assert FloorSimOptions(arrival_rate=[(0, 0), (10, 500)]).supply_limited
    assert not FloorSimOptions(arrival_rate=0).supply_limited          # a number 0: unlimited
    assert not FloorSimOptions(arrival_rate=[(0, 0)]).supply_limited   # one wave: the number
    fl = tmp_path / "f.txt"
    fl.write_text("ID.D\n.CDC\n")
    _, k = _run(capsys, fl, tmp_path / "o", "--robots", 1, "--steps", 30, "--scenario",
                "sorting", "--arrival-rate", "0,0@10", "--report")
    # was: parcels_offered None, 3 parcels picked and 2 sorted (every induct had a parcel)
    assert k["parcels_offered"] == k["parcels_picked"] == k["parcels_sorted"] == 0
    assert k["parcels_waiting_at_inducts"] == 0 and k["tasks_completed"] == 0
    assert k["robot_utilisation"]["starved"] > 0.5
    _, u = _run(capsys, fl, tmp_path / "u", "--robots", 1, "--steps", 30, "--scenario",
                "sorting", "--arrival-rate", "0")
    assert u["parcels_offered"] is None and u["parcels_sorted"] > 0    # 0 alone: unlimited


# ------------------------------------------------------- one floor, three formats, one plan
def _grid_csv(rows, station):
    """RHCR ``.grid`` text of an ASCII-like layout (``I`` induct, ``E`` eject, ``@``
    obstacle, ``.`` travel; all moves between free cells allowed)."""
    h, w = len(rows), len(rows[0])
    out = ["Grid size (x, y)", f"{w},{h}", "id,type,station,x,y,weight_to_NORTH,weight_to_WEST,"
           "weight_to_SOUTH,weight_to_EAST,weight_for_WAIT"]
    for x in range(w):
        for y in range(h):
            ch = rows[y][x]
            kind = {".": "Travel", "@": "Obstacle", "I": "Induct", "E": "Eject"}[ch]

            def wt(yy, xx):
                ok = ch != "@" and 0 <= yy < h and 0 <= xx < w and rows[yy][xx] != "@"
                return "1" if ok else "inf"
            ws = [wt(y + 1, x), wt(y, x - 1), wt(y - 1, x), wt(y, x + 1)]
            out.append(f"{x * h + y},{kind},{station.get((y, x), 'None')},{x},{y},"
                       f"{','.join(ws)},1")
    return "\n".join(out) + "\n"


def test_one_floor_in_three_formats_gives_the_same_floor_and_plan(tmp_path, capsys):
    asc = ["I.....", ".D..D.", ".C..C.", ".D..D.", "....I."]
    (tmp_path / "f.txt").write_text("\n".join(asc) + "\n")
    grid_rows = [r.replace("D", "E").replace("C", "@") for r in asc]
    st_ids = {(0, 0): 100, (4, 4): 101, (1, 1): 1, (3, 1): 1, (1, 4): 2, (3, 4): 2}
    (tmp_path / "f.grid").write_text(_grid_csv(grid_rows, st_ids))
    lorr = [r.replace("I", "E").replace("D", "S").replace("C", "@") for r in asc]
    (tmp_path / "f.map").write_text("type octile\nheight 5\nwidth 6\nmap\n" + "\n".join(lorr)
                                    + "\n")
    floors = {e: load_floor(tmp_path / f"f.{e}") for e in ("txt", "grid", "map")}
    ref = floors["txt"]
    for f in floors.values():
        assert np.array_equal(f.cells, ref.cells) and np.array_equal(f.moves, ref.moves)
        assert [s.cells.tolist() for s in f.inducts] == [s.cells.tolist() for s in ref.inducts]
        assert [s.cells.tolist() for s in f.chutes] == [s.cells.tolist() for s in ref.chutes]
    plans = {e: _run(capsys, tmp_path / f"f.{e}", tmp_path / e, "--robots", 4, "--steps", 60,
                     "--seed", 3)[0] for e in floors}
    assert all(np.array_equal(plans["txt"], p) for p in plans.values())


# ------------------------------------------- a LoRR problem run from another directory
def test_lorr_problem_relative_files_resolve_against_the_json_not_the_cwd(tmp_path, capsys):
    prob = tmp_path / "prob"
    for d in ("maps", "agents", "tasks"):
        (prob / d).mkdir(parents=True)
    (prob / "maps" / "m.map").write_text("type octile\nheight 3\nwidth 6\nmap\n"
                                         "E....S\n.@@@@.\nS....E\n")
    (prob / "agents" / "a.agents").write_text("2\n1\n16\n")
    (prob / "tasks" / "t.tasks").write_text("4\n0\n5\n12\n17\n")
    (prob / "p.json").write_text(json.dumps({
        "mapFile": "maps/m.map", "agentFile": "agents/a.agents", "taskFile": "tasks/t.tasks",
        "teamSize": 2, "numTasksReveal": 1, "taskAssignmentStrategy": "roundrobin"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "maps").mkdir()                     # a decoy: must not be read
    cwd = os.getcwd()
    outs = []
    try:
        for i, (where, arg) in enumerate([(elsewhere, prob / "p.json"),
                                          (prob / "maps", "../p.json"),
                                          (elsewhere, "../prob/p.json")]):
            os.chdir(where)
            out = tmp_path / f"o{i}"
            outs.append(_run(capsys, arg, out, "--steps", 40))
    finally:
        os.chdir(cwd)
    floor = load_floor(prob / "maps" / "m.map")
    for pos, k in outs:
        assert pos[0].tolist() == [1, 16]
        assert validate(floor, pos[0], pos) is None and k["tasks_completed"] > 0
        assert np.array_equal(pos, outs[0][0])


# --------------------------------------------------- odd floors: plans, report, figures
ODD = {
    "row": ("CD.I.DC", ["--robots", 1, "--scenario", "sorting"]),
    "column": ("I\n.\nD\nC", ["--robots", 1]),
    "one-cell": ("I", ["--robots", 1]),
    "full": ("I..D\n...C", ["--robots", 7]),                 # as many robots as free cells
    "full-sorting": ("CD.I.DC", ["--robots", 5, "--scenario", "sorting"]),
    "dead-end-induct": ("@@@@@@\nI..D.D\n@@@CDC", ["--robots", 2, "--scenario", "sorting",
                                                    "--fault-rate", "0.05", "--repair-steps", 3]),
    "one-way-ring": (">>>>>>v\n^IDCDCv\n^<<<<<<", ["--robots", 3, "--rotation"]),
    "queue": ("..QQI..\n.DCD.DC\n.......", ["--robots", 3, "--scenario", "sorting",
                                            "--arrival-rate", "2000,0@20,4000@40"]),
    "no-stations": (".@.\n...", ["--robots", 2]),
}


@pytest.mark.parametrize("name", list(ODD))
def test_odd_floors_write_valid_plans_and_every_figure(tmp_path, capsys, name):
    text, args = ODD[name]
    fl = tmp_path / "f.txt"
    fl.write_text(text + "\n")
    steps = 40
    out = tmp_path / "o"
    pos, k = _run(capsys, fl, out, *args, "--steps", steps, "--report", "--heatmap",
                  "--animate", f"0:{steps}")
    for f in ("report.html", "heatmap.png", "animation.gif"):
        assert (out / f).stat().st_size > 0
    assert set(TIMING - {"peak_rss_mb"}) <= set(k)
    assert k["tasks_per_step"] == k["tasks_completed"] / steps
    # zero steps: the plan is the starts alone, and the report still renders
    z = tmp_path / "z"
    pos0, k0 = _run(capsys, fl, z, *args, "--steps", 0, "--report", "--heatmap")
    assert pos0.shape[0] == 1 and k0["tasks_completed"] == 0 and k0["tasks_per_step"] == 0
    assert (z / "report.html").exists() and (z / "heatmap.png").exists()


# ----------------------------------------------- bad files of every format: one clear line
BAD = [
    ("f.txt", "I.\t.D\n....C\n", ["f.txt:1", "column 3", "'\\t'"]),
    ("f.txt", "I..D\n..\u00b7C\n", ["f.txt:2", "column 3", "unknown character"]),
    ("f.txt", "I..D\n..\x00C\n", ["f.txt:2", "column 3"]),
    ("f.txt", b"I..D\n..\xe9C\n", ["f.txt:2", "UTF-8"]),
    ("f.txt", "I..D\n...C\n".encode("utf-16"), ["f.txt:1", "UTF-8"]),
    ("f.txt", "I...D\n....C\n...\n", ["f.txt:3"]),                       # ragged
    ("f.txt", "I..@D\n...@C\n", ["cannot reach", "column 5"]),          # drop cells walled off
    ("f.grid", "Grid size (x, y)\n4,1,7\nid,type,station,x,y,weight_to_NORTH,weight_to_WEST,"
               "weight_to_SOUTH,weight_to_EAST,weight_for_WAIT\n", ["f.grid:2", "grid size"]),
    ("f.map", "type octile\nheight 2\nwidth 3\nmap\n...\n..\n", ["f.map:6"]),
    ("f.map", "type octile\nheight x\nwidth 3\nmap\n...\n", ["f.map:2", "height"]),
]


@pytest.mark.parametrize("name,content,parts", BAD)
def test_bad_floor_files_are_one_line_errors_naming_file_line_and_column(tmp_path, capsys,
                                                                         name, content, parts):
    fl = tmp_path / name
    if isinstance(content, bytes):
        fl.write_bytes(content)
    else:
        fl.write_text(content)
    line = _err(capsys, ["mapf", fl, "--robots", 1, "--steps", 5])
    for p in parts:
        assert p in line, line
    assert "expected" in line


@pytest.mark.parametrize("text,line,col,ch", [
    ("I..D\u00a0\n...C\n", 1, 5, "\\xa0"),            # no-break space after row 1
    ("I..D\x0b\n...C\n", 1, 5, "\\x0b"),              # vertical tab
    ("I..D\u2028...C\n", 1, 5, "\\u2028"),             # Unicode line separator
    ("type octile\nheight 2\nwidth 4\nmap\n\tI..D\n\t...C\n", 5, 1, "\\t"),   # tab indent
    ("I..D\n...C\n\x1a", 3, 1, "\\x1a"),             # DOS end-of-file mark
])
def test_a_stray_character_is_named_where_it_is_not_as_a_ragged_next_row(tmp_path, capsys,
                                                                            text, line, col, ch):
    fl = tmp_path / "f.txt"
    fl.write_text(text, encoding="utf-8")
    msg = _err(capsys, ["mapf", fl, "--robots", 1, "--steps", 3])
    assert f"f.txt:{line}: column {col}: unknown character '{ch}'" in msg, msg
    # a plainly ragged floor still gets the ragged-row error
    fl.write_text("I..D\n...C\n..\n")
    assert "f.txt:3: column 3: row has 2 cells but the first row has 4" in \
        _err(capsys, ["mapf", fl, "--robots", 1, "--steps", 3])


def test_floor_cells_with_ragged_rows_are_an_input_error_naming_cells():
    with pytest.raises(InputError, match="field 'cells'.*not a rectangular grid"):
        Floor([[1, 1], [1]])
    with pytest.raises(InputError, match="field 'cells'"):
        Floor([[None, 1]])
    assert Floor([[2, 1], [1, 3]], check=False).free_cells.size == 4


def test_bad_rhcr_weights_and_lorr_fields_name_the_field(tmp_path, capsys):
    rows = ["I..E"]
    good = _grid_csv(rows, {(0, 0): 1, (0, 3): 2}).splitlines()
    for bad in ("nan", "-1", "0", "x", ""):
        parts = good[4].split(",")
        parts[8] = bad
        (tmp_path / "g.grid").write_text("\n".join(good[:4] + [",".join(parts)] + good[5:])
                                         + "\n")
        line = _err(capsys, ["mapf", tmp_path / "g.grid", "--robots", 1, "--steps", 5])
        assert "g.grid:5" in line and "weight_to_EAST" in line and repr(bad) in line
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "m.map").write_text("type octile\nheight 1\nwidth 4\nmap\nE..S\n")
    doc = {"mapFile": "maps/m.map", "agentFile": "a.agents", "taskFile": "t.tasks",
           "teamSize": 1, "numTasksReveal": 1, "taskAssignmentStrategy": "roundrobin"}
    for key, value, want in (("mapFile", "maps", "not a regular file"),
                             ("numTasksReveal", 0, "numTasksReveal 0"),
                             ("teamSize", float("nan"), "nan is not an integer"),
                             ("taskAssignmentStrategy", "fifo", "unknown strategy")):
        (tmp_path / "p.json").write_text(json.dumps({**doc, key: value}))
        line = _err(capsys, ["mapf", tmp_path / "p.json", "--steps", 5])
        assert f"field '{key}'" in line and want in line and "p.json" in line


# ---------------------------------------- generated floors, every FloorSim option, oracles
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_edge_floors_conserve_parcels_and_drop_only_where_robots_dwell(data):
    """``sortation_floor`` with edge-case arguments (margin 0, gap 0, long blocks, one or
    three drop sides, queues), a sorting run with faults, waves, no-reads, tiny containers,
    rotation: the plan is valid, parcels are conserved, each chute's drops are at most the
    dwells of robots on its drop cells (recomputed from the recorded positions), and the
    same seed gives the same plan and KPIs."""
    rows, cols = data.draw(st.integers(3, 10)), data.draw(st.integers(3, 12))
    kw = dict(margin=data.draw(st.integers(0, 1)),
              block=(data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))),
              gap=(data.draw(st.integers(0, 1)), data.draw(st.integers(0, 1))),
              drop_sides=data.draw(st.sampled_from(["n", "e", "ew", "nes", "nesw"])),
              queue=data.draw(st.sampled_from([0, 0, 1, 2])))
    cap = lattice_capacity(rows, cols, **{a: b for a, b in kw.items() if a != "queue"})
    assume(cap >= 2)
    try:
        floor = sortation_floor(rows, cols, data.draw(st.integers(1, 3)),
                                data.draw(st.integers(2, min(cap, 6))),
                                seed=data.draw(st.integers(0, 2**63 - 1)), **kw)
    except InputError:
        assume(False)                       # a queue too long for the ring: refused, named
    room = working_cells(floor).size
    n = data.draw(st.integers(1, max(1, room // 2)))
    waves = data.draw(st.sampled_from([0.0, 500.0, [(0.0, 3000.0), (30.0, 0.0), (60.0, 2000.0)],
                                       [(0.0, 0.0), (40.0, 6000.0)]]))
    opt = FloorSimOptions(
        fault_rate=data.draw(st.sampled_from([0.0, 0.02])),
        repair_steps=data.draw(st.integers(1, 10)),
        repair_dist=data.draw(st.sampled_from(["fixed", "exp", "uniform"])),
        chute_capacity=data.draw(st.sampled_from([0, 1, 3])),
        container_change_steps=data.draw(st.integers(0, 10)),
        no_read_rate=data.draw(st.sampled_from([0.0, 0.3, 1.0])),
        arrival_rate=waves).validate()
    dc = data.draw(st.integers(0, 3))
    args = dict(seed=data.draw(st.integers(0, 2**40)), tasks="sorting", floor_sim=opt,
                rotation=data.draw(st.booleans()), dwell_chute=dc,
                dwell_induct=data.draw(st.integers(0, 2)),
                guidance=data.draw(st.sampled_from(["none", "lanes+flow"])))
    steps = data.draw(st.integers(0, 90))
    pl, stream = make_run(floor, n, **args)
    res = simulate(pl, stream, steps)
    event("parcels sorted" if res.extra["parcels_sorted"] else "none sorted")
    pos = res.positions
    assert validate(floor, pos[0], pos) is None
    k = {**res.kpis(), **res.extra}
    assert k["parcels_picked"] == k["parcels_sorted"] + k["parcels_carried"]
    assert k["parcels_carried"] <= n
    assert k["parcels_sorted"] == (k["parcels_sorted_ok"] + k["sorted_to_overflow"]
                                   + k["parcels_rejected"])
    assert sum(k["parcels_by_reason"].values()) == k["parcels_sorted"]
    assert sum(k["sorted_per_chute"].values()) == k["parcels_sorted"]
    if k["parcels_offered"] is not None:
        assert k["parcels_offered"] == k["parcels_picked"] + k["parcels_waiting_at_inducts"]
    if steps:
        assert abs(sum(k["robot_utilisation"].values()) - 1.0) < 1e-9
    for s in floor.chutes:
        assert k["sorted_per_chute"].get(s.label, 0) <= _stays(pos, s.cells, dc), s.label
    pl2, stream2 = make_run(floor, n, **args)
    res2 = simulate(pl2, stream2, steps)
    assert np.array_equal(res2.positions, pos)
    k2 = {**res2.kpis(), **res2.extra}
    assert {a: b for a, b in k2.items() if a not in TIMING} == \
        {a: b for a, b in k.items() if a not in TIMING}


# -------------------------------------------------------- same seed, byte-identical files
def test_same_seed_writes_byte_identical_paths_and_the_same_kpis(tmp_path, capsys):
    fl = tmp_path / "f.txt"
    fl.write_text(format_ascii(sortation_floor(5, 12, 3, 3, seed=3, margin=0, gap=0,
                                               drop_sides="ew")))
    args = ["--robots", 5, "--steps", 120, "--seed", 2**64 + 5, "--fault-rate", "0.02",
            "--arrival-rate", "3000,0@40,5000@80", "--no-read-rate", "0.2",
            "--chute-capacity", 4, "--rotation"]
    runs = [_run(capsys, fl, tmp_path / f"o{i}", *args) for i in range(2)]
    a, b = ((tmp_path / f"o{i}" / "paths.npz").read_bytes() for i in range(2))
    assert a == b
    ka, kb = ({x: y for x, y in k.items() if x not in TIMING} for _, k in runs)
    assert ka == kb and ka["seed"] == 2**64 + 5
    # a seed beyond 64 bits is its own seed, not wrapped onto a small one
    other, _ = _run(capsys, fl, tmp_path / "o2", *args[:5], 5, *args[6:])
    assert not np.array_equal(other, runs[0][0])


def test_format_ascii_names_the_station_that_cannot_be_written():
    """Two chutes whose bodies touch read back from ASCII as one: the refusal names the chute,
    its cells and what it reads back as (it gave no reason before)."""
    from sorter.layout.floor import Station
    cells = np.array([[2, 1, 1, 1], [1, 3, 3, 1], [1, 0, 0, 1]])
    body = np.full(12, -1, np.int32)
    body[9], body[10] = 0, 1
    f = Floor(cells, inducts=[Station(0, "I1", "induct", np.array([0]))],
              chutes=[Station(0, "C1", "chute", np.array([5])),
                      Station(1, "C2", "chute", np.array([6]))], chute_body=body)
    with pytest.raises(ValueError, match=r"chute 'C1' \(cells \[5\]\) reads back as cells \[5, 6\]"):
        format_ascii(f)

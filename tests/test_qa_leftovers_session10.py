"""QA session 10: small defects earlier sweeps noticed and left alone, in drawing, the floor
loaders, `sorter run`, the loop simulation, scenario files and `sorter mapf`'s imports.

Each test pins one problem (input -> what went wrong) and failed before its fix.
"""
from __future__ import annotations

import ast
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sorter.cli import main
from sorter.errors import InputError
from sorter.layout import Floor
from sorter.resources import seed_path

sys.path.insert(0, str(Path(__file__).parent))
from simpy_loop import simulate_simpy  # noqa: E402

SMALL = str(seed_path("scenarios/small.toml"))


# -- 1. drawing robots on obstacle cells ------------------------------------------------------

def test_draw_and_animate_refuse_robots_on_obstacle_cells(tmp_path):
    """`Floor.draw(robots=[0, 5])` drew a robot inside the chute block (cell 5 is an obstacle),
    and `animate` / the heat map took such positions too: a plan that puts a robot on an
    obstacle is wrong, and the picture hid it. Now they are refused naming the field and the
    expected form (free cell ids)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sorter.layout.draw import animate, congestion_heatmap, visit_counts
    f = Floor.from_ascii("I...\n.CD.\n....")
    blocked = int(np.flatnonzero(f.cells == 0)[0])           # the chute body 'C'
    assert blocked == 5
    with pytest.raises(InputError) as e:
        f.draw(robots=[0, blocked])
    assert e.value.field == "robots" and "free cell" in e.value.expected
    assert "obstacle" in str(e.value) and "row 1, col 1" in str(e.value)
    pos = np.array([[0, 3], [1, blocked], [2, 7]], np.int32)
    for call in (lambda: animate(f, pos, 0, 3, tmp_path / "a.gif"),
                 lambda: congestion_heatmap(f, pos, tmp_path / "h.png"),
                 lambda: visit_counts(f, pos)):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.field == "positions" and "free cell" in e.value.expected
        assert "step 1" in str(e.value) and "robot 1" in str(e.value)
    assert not (tmp_path / "a.gif").exists() and not (tmp_path / "h.png").exists()
    # free cells (travel, induct, drop) are still drawn
    ax = f.draw(robots=[0, 6, 11])
    assert ax.collections[-1].get_offsets().tolist() == [[0.0, 0.0], [2.0, 1.0], [3.0, 2.0]]
    ok = np.array([[0, 3], [1, 7]], np.int32)
    assert animate(f, ok, 0, 2, tmp_path / "b.gif").stat().st_size > 0
    plt.close("all")


# -- 2. a .scen header 'version x' ------------------------------------------------------------

@pytest.mark.parametrize("header", ["version x", "version 2", "version -1", "version 1x"])
def test_scen_refuses_an_unknown_version_header(tmp_path, header):
    """`version x` (any text) was accepted as a MovingAI scenario header. The format's header is
    `version 1` (`version 1.0` in some copies); anything else is refused with file, line 1,
    field and expected form."""
    from sorter.layout.movingai import load_scen
    agent = "0\tm.map\t4\t2\t1\t0\t3\t1\t3\n"
    p = tmp_path / "a.scen"
    p.write_text(f"{header}\n{agent}")
    with pytest.raises(InputError) as e:
        load_scen(p)
    assert (e.value.path, e.value.line, e.value.field) == (str(p), 1, "version")
    assert "version 1" in e.value.expected
    for good in ("version 1", "version 1.0", "version   1"):
        p.write_text(f"{good}\n{agent}")
        s = load_scen(p)
        assert len(s) == 1 and s.first_line == 2


# -- 3. LoRR S cells beside the border wall ---------------------------------------------------

_WALLED = """type octile
height 7
width 7
map
@@@@@@@
@S.E.S@
@..@..@
@.S@S.@
@..@..@
@E.S..@
@@@@@@@
"""


def test_lorr_s_cells_beside_the_border_wall_are_not_one_chute(tmp_path):
    """The border wall is one 4-connected obstacle block, so every `S` cell touching it (here
    (1,1) and (1,5), at opposite ends of the map) became ONE chute whose body was the whole
    wall, and (5,3), beside both the wall and a shelf, served that chute too. The wall (the
    obstacles reaching the map's edge) is not a chute body: an `S` cell that touches only it
    is a one-cell chute of its own, as one touching no obstacle; shelves inside stay chutes."""
    from sorter.layout.lorr import load_lorr_map
    p = tmp_path / "walled.map"
    p.write_text(_WALLED)
    f = load_lorr_map(p)
    w = f.width
    got = {s.label: sorted(int(c) for c in s.cells) for s in f.chutes}
    assert got == {"C0": [3 * w + 2, 3 * w + 4, 5 * w + 3],          # the shelf in the middle
                   "S1_1": [1 * w + 1], "S1_5": [1 * w + 5]}
    grid = f.cells.reshape(f.height, f.width)
    body = f.chute_body.reshape(f.height, f.width)
    wall = np.zeros_like(grid, dtype=bool)
    wall[[0, -1], :] = wall[:, [0, -1]] = True
    assert (grid[wall] == 0).all() and (body[wall] == -1).all()      # the wall is no chute
    assert body[2, 3] == body[3, 3] == body[4, 3] == 0
    assert f.reachability_problem() is None


# -- 4. sorter run --seed past the scenario file's bound --------------------------------------

def test_run_seed_flag_has_the_scenario_seeds_bound(capsys):
    """`sorter run --seed 2**64` ran (the flag took any size) while `seed = 2**64` in the
    scenario file is refused (0 .. 2**63 - 1, the int64 seed column of the outputs). The
    flag now has the same bound and the same one-line error, before any simulation."""
    for bad in (str(2**63), str(2**70), "-1"):
        assert main(["run", SMALL, "--seed", bad, "--json"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1
        assert "field '--seed'" in err and "2**63 - 1" in err and "Traceback" not in err
    assert main(["run", SMALL, "--seed", str(2**63 - 1), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 2**63 - 1


# -- 5. an induct at the scanner --------------------------------------------------------------

def _induct_at_scanner_scenario():
    from sorter.layout.loop import LoopSorter, generate_loop_plan
    from sorter.sim.scenario import LoopSpec, Scenario, ScanRates, Wave
    base = LoopSorter.generate(length_m=150.0, speed_mps=2.5, pitch_m=0.6, n_chutes=40,
                               n_inducts=1, induct_rate=3000)
    layout = replace(base, inducts=(replace(base.inducts[0], position_m=base.scanner_m),))
    assert layout.slot(layout.inducts[0].position_m) == layout.slot(layout.scanner_m)
    n_dest = sum(c.kind == "destination" for c in layout.chutes)
    plan = generate_loop_plan(layout.chutes, n_dest - 2)
    # a 36 s shift on a 60 s loop: a parcel scanned a lap late is never sorted within it
    return Scenario(loops=[LoopSpec(layout, plan)], shift_hours=0.01,
                    waves=[Wave("w", 0.0, 36.0, 3000.0)], scan=ScanRates(0.0, 0.0))


@pytest.mark.parametrize("seed", [0, 1])
def test_parcel_inducted_at_the_scanner_is_scanned_there_not_a_lap_later(seed):
    """An induct at the scanner's carrier slot placed a parcel after that tick's scan, so the
    parcel went a full lap (60 s here) before its first scan; the SimPy oracle did the same
    for an induct at exactly the scanner's position. A parcel placed at the scanner is now
    scanned as it is placed (carriers move rigidly: discharge tick = induct tick +
    recirculations x carriers + slots from scanner to chute), in both models."""
    from sorter.sim.kpis import compute_kpis
    from sorter.sim.loop import simulate
    sc = _induct_at_scanner_scenario()
    res = simulate(sc, seed=seed)
    lr = res.loops[0]
    layout, N, raw = lr.spec.layout, lr.spec.layout.n_carriers, lr.raw
    it, dk, rec, ch = raw["induct_tick"], raw["discharge_tick"], raw["recirculations"], raw["chute"]
    done = dk >= 0
    assert done.sum() > 0
    d_sc = (layout.slot(layout.chute_positions())[ch[done]] - layout.slot(layout.scanner_m)) % N
    d_sc[d_sc == 0] = N
    assert np.array_equal(dk[done] - it[done], rec[done] * N + d_sc)
    k = compute_kpis(res)
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    s = simulate_simpy(sc, seed)           # (the models may differ by a parcel at the edges)
    assert s.sorted > 0 and abs(s.inducted - k["inducted"]) <= 2
    assert s.inducted == s.sorted + s.rejected + s.on_loop_at_end


# -- 6. scheduled blockages after the shift ---------------------------------------------------

_SCEN = """[scenario]
name = "late blockage"
shift_hours = 1.0
{start}
[loop]
length_m = 120.0
n_chutes = 30
n_inducts = 2
[[wave]]
name = "all"
start_h = 0.0
end_h = 1.0
rate_per_hour = 2000
[[blockages.scheduled]]
chute = "C005"
{when}
duration_s = 60
"""


@pytest.mark.parametrize("start, when, field", [
    ("", "start_h = 1.5", "blockages.scheduled[0].start_h"),
    ("", "start_h = 1.0", "blockages.scheduled[0].start_h"),
    ('shift_start = "06:00"', 'start = "08:30"', "blockages.scheduled[0].start"),
])
def test_scenario_refuses_a_scheduled_blockage_after_the_shift(tmp_path, start, when, field):
    """A `[[blockages.scheduled]]` starting at or after the shift's end was accepted and
    silently never happened (a typo in start_h, or a shift shortened in the file). It is
    refused, as a wave starting after the shift already is, with file, field (the key the
    file used) and expected form. (`sorter sweep` drops such blockages from a point that
    shortens the shift, as before.)"""
    from sorter.sim.scenario import load_scenario
    p = tmp_path / "s.toml"
    p.write_text(_SCEN.format(start=start, when=when))
    with pytest.raises(InputError) as e:
        load_scenario(p)
    assert e.value.path == str(p) and e.value.field == field
    assert "starts after the shift ends" in str(e.value) and "1 h" in e.value.expected
    # inside the shift: accepted
    p.write_text(_SCEN.format(start=start, when=when.replace("1.5", "0.5").replace("1.0", "0.5")
                              .replace("08:30", "06:30")))
    assert load_scenario(p).blockages.scheduled[0].start_s == 1800.0


def test_scenario_shortened_in_code_keeps_its_blockages_idle():
    """The refusal is the file's: a Scenario shortened in code (`replace(sc, shift_hours=...)`,
    as `sorter sweep` and tests do) still keeps its scheduled blockages, which stay idle past
    the end (the same runs as before)."""
    from sorter.sim.kpis import compute_kpis
    from sorter.sim.loop import simulate
    from sorter.sim.scenario import load_scenario
    sc = load_scenario(seed_path("scenarios/default.toml"))       # a blockage at 2 h, shift 8 h
    assert [b.start_s for b in sc.blockages.scheduled] == [7200.0]
    short = replace(sc, shift_hours=0.05, waves=[replace(sc.waves[0], start_s=0.0, end_s=180.0)])
    assert short.blockages == sc.blockages
    k = compute_kpis(simulate(short, seed=1))
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]


# -- 7. sorter mapf imports no private helpers ------------------------------------------------

def test_mapf_command_imports_only_public_names():
    """`sorter/commands/mapf.py` imported `lorr._read_cell_list`, `lorr._comment_lines`,
    `tasks._parts`, `tasks._strong_parts` and `load._sniff`. They have public names now (in
    `__all__`, with docstrings); the old names still work for the modules that use them."""
    import sorter.commands.mapf as mapf
    from sorter.agv import tasks
    from sorter.layout import load, lorr
    tree = ast.parse(Path(mapf.__file__).read_text())
    private = [(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
               for a in n.names if a.name.startswith("_")]
    assert private == []
    for mod, new, old in ((lorr, "read_cell_list", "_read_cell_list"),
                          (lorr, "count_comment_lines", "_comment_lines"),
                          (tasks, "connected_parts", "_parts"),
                          (tasks, "strongly_connected_parts", "_strong_parts"),
                          (load, "floor_format", "_sniff")):
        fn = getattr(mod, new)
        assert new in mod.__all__ and fn.__doc__ and "Examples" in fn.__doc__
        assert getattr(mod, old) is fn
    f = Floor.from_ascii("I..#.\n.CD#.\n...#.")
    part = tasks.connected_parts(f.moves)
    assert len(set(part[f.free_cells].tolist())) == 2
    assert np.array_equal(tasks.strongly_connected_parts(f.moves), part)


def test_simulate_refuses_a_seed_beyond_int64():
    """``simulate(seed=...)`` in code has the bound of the file's seed and of ``--seed``: a
    larger seed used to run the whole shift and then fail writing the int64 outputs."""
    from sorter.sim.loop import simulate
    from sorter.sim.scenario import default_scenario_path
    with pytest.raises(InputError, match="2\\*\\*63 - 1"):
        simulate(default_scenario_path(), seed=2**63)

"""QA session 9: `sorter mapf` and the floor loaders on hand-made inputs nobody had tried.

Each test pins one problem found by the pass (input -> what went wrong before the fix):

* starts given in a file (``--agents``, a LoRR agents file) from which no induct can be reached
  (a walled-off pocket, a one-way trap) ran silently with robots that never worked;
* an errand on a one-way floor that the other errands cannot reach, or cannot leave (a cell
  with no way out), was accepted: the robot sent there stayed for the rest of the run;
* RHCR ``weight_for_WAIT = inf`` (no waiting in that cell) was read and ignored;
* ``Floor`` / ``Station`` silently truncated or wrapped non-integer and out-of-range ids
  (``Station(..., [0.7])`` -> cell 0, a move to ``2**32 + 1`` -> cell 1, ``cell(1.5, 0)``);
* ``sortation_floor`` took ``seed=None`` (a different floor every call) and raised NumPy's
  errors for a negative or non-integer seed; ``lattice_capacity`` answered for a negative
  margin or drop sides outside ``"nesw"`` instead of refusing them.
"""
import numpy as np
import pytest

from sorter.agv.validate import validate
from sorter.cli import main
from sorter.errors import InputError
from sorter.layout import Floor, Station, lattice_capacity, load_floor, parse_ascii, sortation_floor
from sorter.layout.rhcr import parse_rhcr_grid

# 5 x 7, one-way cell (row 1, col 6): '>' at the east edge between two obstacles: robots may
# enter it (moving east) but never leave it
SINK = "I.....@\n......>\n.CD.DC@\n.......\nI......\n"
# a LoRR-style map with a walled-off right column (cells 6, 13, 20, 27)
POCKET = "type octile\nheight 4\nwidth 7\nmap\nE....@.\n.@@S.@.\n.....@.\n.....@.\n"


def _err(capsys, argv):
    """Run the CLI expecting a user error: exit code 2, ONE line on stderr, no traceback."""
    assert main(["mapf"] + argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _ok(capsys, tmp_path, argv):
    """Run the CLI expecting success; return (floor, positions) and check the plan."""
    out = tmp_path / "out"
    assert main(["mapf"] + argv + ["--out", str(out)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    d = np.load(out / "paths.npz")
    floor = load_floor(argv[0])
    pos = d["positions"]
    assert pos.dtype == np.int32 and (int(d["width"]), int(d["height"])) == (floor.width, floor.height)
    assert validate(floor, pos[0], pos) is None
    return floor, pos


# ---------------------------------------------------------------- starts that cannot work
def test_sorting_run_refuses_agents_in_a_walled_off_pocket(tmp_path, capsys):
    m = tmp_path / "pocket.map"
    m.write_text(POCKET)
    a = tmp_path / "pocket.agents"
    a.write_text("2\n0\n6\n")                 # robot 1 in the pocket, on line 3
    line = _err(capsys, [str(m), "--agents", str(a), "--steps", "5"])
    assert "pocket.agents:3" in line and "'start'" in line and "robot 1" in line, line
    # the same start with random goals is fine (goals are drawn within its own part)
    _ok(capsys, tmp_path, [str(m), "--agents", str(a), "--steps", "5", "--scenario", "random"])
    # and starts that can reach the stations run
    a.write_text("2\n0\n7\n")
    _ok(capsys, tmp_path, [str(m), "--agents", str(a), "--steps", "5"])


def test_a_lorr_start_cut_off_from_the_others_names_the_agents_file_line(tmp_path, capsys):
    (tmp_path / "m.map").write_text(POCKET)
    (tmp_path / "a.agents").write_text("# v\n3\n0\n1\n13\n")    # robot 2 in the pocket
    (tmp_path / "t.tasks").write_text("2\n2\n14\n")
    p = tmp_path / "p.json"
    p.write_text('{"mapFile": "m.map", "agentFile": "a.agents", "taskFile": "t.tasks", '
                 '"teamSize": 3}')
    for extra in ([], ["--scenario", "sorting", "--router", "table"]):
        line = _err(capsys, [str(p), "--steps", "5"] + extra)
        assert "a.agents:5" in line and "robot 2" in line and "'start'" in line, line


def test_an_errand_no_robot_can_reach_names_its_line_of_the_tasks_file(tmp_path, capsys):
    (tmp_path / "m.map").write_text(POCKET)
    (tmp_path / "a.agents").write_text("2\n0\n1\n")
    (tmp_path / "t.tasks").write_text("# v\n# w\n3\n2\n14\n27\n")      # task 2 in the pocket
    p = tmp_path / "p.json"
    p.write_text('{"mapFile": "m.map", "agentFile": "a.agents", "taskFile": "t.tasks", '
                 '"teamSize": 2}')
    line = _err(capsys, [str(p), "--steps", "5"])
    assert "t.tasks:6" in line and "task 2" in line and "'task'" in line, line
    line = _err(capsys, [str(tmp_path / "m.map"), "--tasks", str(tmp_path / "t.tasks"),
                         "--robots", "2", "--steps", "5"])
    assert "t.tasks:6" in line and "task 2" in line, line


def test_sorting_run_refuses_a_start_in_a_one_way_trap(tmp_path, capsys):
    fl = tmp_path / "sink.txt"
    fl.write_text(SINK)
    floor = load_floor(fl)
    trap = floor.cell(1, 6)
    assert floor.neighbours(trap) == []        # the floor really has a cell with no way out
    a = tmp_path / "a.agents"
    a.write_text(f"# a comment\n2\n{floor.cell(3, 3)}\n{trap}\n")
    line = _err(capsys, [str(fl), "--agents", str(a), "--steps", "5"])
    assert "a.agents:4" in line and "robot 1" in line and f"cell {trap}" in line, line


def test_errand_in_a_one_way_trap_is_refused(tmp_path, capsys):
    fl = tmp_path / "sink.txt"
    fl.write_text(SINK)
    floor = load_floor(fl)
    trap = floor.cell(1, 6)
    t = tmp_path / "t.tasks"
    t.write_text(f"# a comment\n3\n0\n{trap}\n{floor.cell(4, 0)}\n")
    a = tmp_path / "a.agents"
    a.write_text(f"2\n{floor.cell(3, 3)}\n{floor.cell(3, 4)}\n")
    line = _err(capsys, [str(fl), "--tasks", str(t), "--agents", str(a), "--steps", "5"])
    assert "t.tasks:4" in line and "task 1" in line and f"{trap}" in line, line
    # a start in the trap with good errands: the agents file line is named
    t.write_text(f"3\n0\n{floor.cell(3, 3)}\n{floor.cell(4, 0)}\n")
    a.write_text(f"2\n{trap}\n{floor.cell(3, 4)}\n")
    line = _err(capsys, [str(fl), "--tasks", str(t), "--agents", str(a), "--steps", "5"])
    assert "a.agents:2" in line and "robot 0" in line, line
    # good errands and starts run, and the plan is valid
    a.write_text(f"2\n{floor.cell(3, 0)}\n{floor.cell(3, 4)}\n")
    _ok(capsys, tmp_path, [str(fl), "--tasks", str(t), "--agents", str(a), "--steps", "20"])


def test_rhcr_forbidden_wait_is_refused_not_ignored():
    rows = ["I..", ".E@", "..."]
    X, Y = 3, 3
    lines = ["Grid size (x, y)", f"{X},{Y}",
             "id,type,station,x,y,weight_to_NORTH,weight_to_WEST,weight_to_SOUTH,"
             "weight_to_EAST,weight_for_WAIT"]
    types = {".": "Travel", "@": "Obstacle", "I": "Induct", "E": "Eject"}
    for x in range(X):
        for y in range(Y):
            ch = rows[y][x]
            w = []
            for dx, dy in ((0, 1), (-1, 0), (0, -1), (1, 0)):
                tx, ty = x + dx, y + dy
                ok = ch != "@" and 0 <= tx < X and 0 <= ty < Y and rows[ty][tx] != "@"
                w.append("1" if ok else "inf")
            wait = "inf" if (x, y) == (1, 2) else "1"
            st = {"I": "A", "E": "B"}.get(ch, "None")
            lines.append(",".join([str(x * Y + y), types[ch], st, str(x), str(y)] + w + [wait]))
    text = "\n".join(lines) + "\n"
    with pytest.raises(InputError) as e:
        parse_rhcr_grid(text, name="g")
    msg = str(e.value)
    line = 4 + 1 * Y + 2                     # the cell (x=1, y=2)
    assert f":{line}:" in msg and "weight_for_WAIT" in msg, msg
    # finite waits load (the same grid with every wait 1)
    f = parse_rhcr_grid(text.replace(",inf\n", ",1\n"), name="g")
    assert (f.height, f.width, len(f.inducts), len(f.chutes)) == (3, 3, 1, 1)


# ---------------------------------------------------------------- Floor / Station API
def test_station_cells_must_be_integer_ids_in_range():
    grid = np.ones((2, 3), int)
    grid[0, 0] = 2
    with pytest.raises(InputError, match="cells"):
        Station(0, "I0", "induct", [0.7])               # was: silently cell 0
    with pytest.raises(InputError, match="cells"):
        Station(0, "I0", "induct", [True])
    with pytest.raises(InputError, match="cells"):
        Station(0, "I0", "induct", [2 ** 33])           # was: OverflowError
    assert Station(0, "I0", "induct", np.array([0], np.int64)).cells.tolist() == [0]
    assert Station(0, "I0", "induct", []).cells.size == 0   # empty: refused by Floor later
    Floor(grid, inducts=[Station(0, "I0", "induct", [0])])


def test_floor_moves_must_be_integer_and_in_range():
    grid = np.ones((1, 2), int)
    ok = np.array([[1, -1, -1, -1], [-1, -1, 0, -1]])
    assert Floor(grid, moves=ok).moves.tolist() == ok.tolist()
    wrap = ok.copy()
    wrap[0, 0] = 2 ** 32 + 1                            # was: wrapped to cell 1, accepted
    with pytest.raises(InputError, match="moves"):
        Floor(grid, moves=wrap)
    with pytest.raises(InputError, match="moves"):
        Floor(grid, moves=ok.astype(float) - 0.5)        # was: -1.5 -> -1, 0.5 -> 0
    with pytest.raises(InputError, match="moves"):
        Floor(grid, moves=np.full((2, 4), -2))


@pytest.mark.parametrize("call", [
    lambda f: f.cell(1.5, 0), lambda f: f.cell(0, 2.9), lambda f: f.cell(True, 0),
    lambda f: f.cell("1", 0), lambda f: f.rc(2.7), lambda f: f.rc("3"), lambda f: f.rc(None),
    lambda f: f.neighbours(1.9), lambda f: f.neighbours("x"),
])
def test_floor_cell_queries_refuse_non_integers(call):
    f = parse_ascii("I..\n.CD\n...")
    with pytest.raises(InputError):
        call(f)
    # integers of any kind still work
    assert f.cell(np.int64(1), 2) == 5 and f.rc(np.int32(5)) == (1, 2) and f.neighbours(0) == [1, 3]


# ---------------------------------------------------------------- the generator
@pytest.mark.parametrize("seed", [None, -1, 1.5, "a"])
def test_sortation_floor_seed_must_be_a_seed(seed):
    with pytest.raises(InputError, match="seed"):
        sortation_floor(14, 14, 4, 4, seed=seed)
    a = sortation_floor(14, 14, 4, 4, seed=3)
    b = sortation_floor(14, 14, 4, 4, seed=np.random.default_rng(3))
    assert np.array_equal(a.cells, b.cells)


@pytest.mark.parametrize("kw", [dict(margin=-5), dict(drop_sides="xyz"), dict(drop_sides=""),
                                dict(drop_sides="nn")])
def test_lattice_capacity_validates_like_the_generator(kw):
    with pytest.raises(InputError):
        sortation_floor(14, 14, 4, 1, **kw)
    with pytest.raises(InputError):
        lattice_capacity(14, 14, **kw)
    n = lattice_capacity(14, 14)                     # valid settings still answer, exactly
    assert len(sortation_floor(14, 14, 4, n).chutes) == n
    with pytest.raises(InputError, match="n_chutes"):
        sortation_floor(14, 14, 4, n + 1)


def test_sortation_floor_refuses_a_floor_too_big_for_int32_cell_ids():
    with pytest.raises(InputError, match="rows"):
        sortation_floor(50_000, 50_000, 1, 1)            # was: tried to allocate it

"""QA session 6: `sorter mapf` on hand-made inputs an outside checker would write.

Each test pins one problem found by the sweep (input -> what went wrong) so that it stays fixed.
Outputs are read back and checked with a small plain-Python checker written here (moves of at
most one grid step, no shared cell, no swap, row 0 = the expected starts), beside the
project's own validator.
"""
import json

import numpy as np

from sorter.agv.validate import validate
from sorter.cli import main
from sorter.errors import InputError
from sorter.layout import load_floor
from sorter.layout.lorr import load_lorr_problem

MAP = ("type octile\nheight 6\nwidth 8\nmap\n"
       "E.......\n........\n.S@@S...\n.S@@S..E\n........\n........\n")
V2024 = "# version for LoRR 2024\n"


def load_floor_text(text):
    """A MovingAI map from its text (via a temporary file)."""
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.map"
        p.write_text(text)
        return load_floor(p)


def _err(capsys, argv):
    """Run the CLI expecting a user error: exit code 2, ONE line on stderr, no traceback."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _check_paths(out, floor_file, starts):
    """Independent checks of paths.npz / kpis.json (the issue's output contract)."""
    with np.load(out / "paths.npz") as z:
        pos, width, height = z["positions"], int(z["width"]), int(z["height"])
    k = json.loads((out / "kpis.json").read_text())
    floor = load_floor(floor_file)
    assert pos.dtype == np.int32 and pos.shape == (k["steps"] + 1, k["robots"])
    assert (width, height) == (floor.width, floor.height)
    assert pos[0].tolist() == list(starts)
    assert k["tasks_per_step"] == k["tasks_completed"] / max(1, k["steps"])
    r, c = np.divmod(pos.astype(np.int64), width)
    for t in range(1, pos.shape[0]):
        assert (np.abs(r[t] - r[t - 1]) + np.abs(c[t] - c[t - 1]) <= 1).all(), t
        assert len(set(pos[t].tolist())) == pos.shape[1], t
        before = {int(x): i for i, x in enumerate(pos[t - 1])}
        for i, x in enumerate(pos[t]):
            j = before.get(int(x))
            assert j is None or j == i or int(pos[t, j]) != int(pos[t - 1, i]), (t, i, j)
    assert validate(floor, pos[0], pos) is None


def _problem(tmp_path, agents, *, team=3, version=False):
    for d in ("maps", "agents", "tasks"):
        (tmp_path / d).mkdir(exist_ok=True)
    (tmp_path / "maps" / "m.map").write_text(MAP)
    head = V2024 if version else ""
    (tmp_path / "agents" / "a.agents").write_text(head + f"{len(agents)}\n"
                                                  + "".join(f"{a}\n" for a in agents))
    (tmp_path / "tasks" / "t.tasks").write_text(head + "3\n17\n0\n25\n")
    doc = {"mapFile": "maps/m.map", "agentFile": "agents/a.agents", "taskFile": "tasks/t.tasks",
           "teamSize": team, "numTasksReveal": 1, "taskAssignmentStrategy": "roundrobin"}
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    return p


# ------------------------------------------------------------- line numbers after '#' lines
def test_duplicate_start_names_its_line_after_version_comment_lines(tmp_path, capsys):
    # was: a 2024 agents file ('# version' line first) with two robots on one cell was
    # reported one line too early (the comment line was not counted), in the JSON's agents
    # file and in --agents FILE alike
    p = _problem(tmp_path, [1, 10, 1, 46], version=True)    # line 5 repeats line 3's cell
    with_json = _err(capsys, ["mapf", str(p), "--steps", "2"])
    assert "a.agents:5:" in with_json and "'start'" in with_json
    m = tmp_path / "maps" / "m.map"
    given = _err(capsys, ["mapf", str(m), "--agents", str(tmp_path / "agents" / "a.agents"),
                          "--steps", "2"])
    assert "a.agents:5:" in given and "'start'" in given
    try:
        load_lorr_problem(p)
    except InputError as e:
        assert e.line == 5
    else:                                                     # pragma: no cover
        raise AssertionError("duplicate starts accepted")


def test_team_size_beyond_the_agents_file_names_the_count_line(tmp_path, capsys):
    # the count line is line 2 of a 2024 file (after '# version'), not line 1
    p = _problem(tmp_path, [1, 10], team=3, version=True)
    line = _err(capsys, ["mapf", str(p), "--steps", "2"])
    assert "a.agents:2:" in line and "teamSize is 3" in line


# ------------------------------------------------------------- --robots beyond teamSize
def test_robots_beyond_team_size_start_on_the_files_next_agents(tmp_path, capsys):
    # was: with teamSize 3 and 5 agents listed, --robots 5 put robots 3 and 4 on random cells
    # (the file's agents 3 and 4 ignored) and the note said the problem "has 3 agents"
    p = _problem(tmp_path, [1, 10, 20, 46, 33], team=3)
    out = tmp_path / "o5"
    assert main(["mapf", str(p), "--robots", "5", "--steps", "20", "--out", str(out)]) == 0
    _check_paths(out, tmp_path / "maps" / "m.map", [1, 10, 20, 46, 33])
    # beyond the file: its agents keep their cells, the rest are drawn; the note counts the file
    capsys.readouterr()
    out = tmp_path / "o7"
    assert main(["mapf", str(p), "--robots", "7", "--steps", "20", "--out", str(out)]) == 0
    assert "5 agents" in capsys.readouterr().err
    with np.load(out / "paths.npz") as z:
        row0 = z["positions"][0].tolist()
    assert row0[:5] == [1, 10, 20, 46, 33] and len(set(row0)) == 7
    _check_paths(out, tmp_path / "maps" / "m.map", row0)


def test_robots_beyond_team_size_refuse_a_repeated_agent_of_the_file(tmp_path, capsys):
    # the agents past teamSize are checked like the first ones once they are used
    p = _problem(tmp_path, [1, 10, 20, 10], team=3, version=True)
    assert main(["mapf", str(p), "--steps", "2"]) == 0           # teamSize 3: line 6 unused
    line = _err(capsys, ["mapf", str(p), "--robots", "4", "--steps", "2"])
    assert "a.agents:6:" in line and "'start'" in line


# ------------------------------------------------------------- --out and --scenario hints
def test_out_under_a_file_fails_before_the_run(tmp_path, capsys):
    # was: "f.txt/o: Not a directory" after the whole run had been computed (no field, no
    # expected form); now refused up front, naming --out
    fl = tmp_path / "f.txt"
    fl.write_text("I...\n.DC.\n....\n")
    line = _err(capsys, ["mapf", str(fl), "--robots", "2", "--steps", "3",
                         "--out", str(fl / "o")])
    assert "'out'" in line and "f.txt" in line and "directory" in line
    assert "tasks completed" not in capsys.readouterr().out


def test_scenario_sorting_without_stations_says_so_before_the_chute_engine(tmp_path, capsys):
    # was: "needs a reject chute ... 0 chute (expected ... or --router table)"; following that
    # hint only led to a second error (no inducts / chutes at all)
    m = tmp_path / "open.map"
    m.write_text("type octile\nheight 2\nwidth 3\nmap\n...\n...\n")
    line = _err(capsys, ["mapf", str(m), "--robots", "2", "--steps", "2",
                         "--scenario", "sorting"])
    assert "open.map" in line and "0 inducts and 0 chutes" in line
    assert "--router table" not in line


def test_a_huge_errand_cell_is_quoted_as_written(tmp_path):
    # was: "4611686018427387904 is out of range" (the clamped value) for a 23-digit cell id
    from sorter.layout.lorr import load_task_list
    fl = tmp_path / "m.map"
    fl.write_text(MAP)
    t = tmp_path / "t.tasks"
    t.write_text("2\n0,99999999999999999999999\n25\n")
    try:
        load_task_list(t, load_floor(fl))
    except InputError as e:
        assert e.line == 2 and "99999999999999999999999 is out of range" in str(e)
    else:                                                     # pragma: no cover
        raise AssertionError("accepted")


def test_space_separated_scenario_under_another_extension(tmp_path, capsys):
    # was: load_scen reads space-separated agent lines, but under another extension only a
    # 'version' line or tabs made --agents FILE a scenario, so such a file was read as a LoRR
    # agents file: "'0 m.map 3 2 ...' is not an integer (expected a ... count)"
    m = tmp_path / "m.map"
    m.write_text("type octile\nheight 2\nwidth 3\nmap\n...\n...\n")
    sc = tmp_path / "agents.txt"
    sc.write_text("0 m.map 3 2 2 0 0 1 3\n0 m.map 3 2 0 1 2 0 3\n")
    out = tmp_path / "o"
    assert main(["mapf", str(m), "--agents", str(sc), "--steps", "8", "--out", str(out)]) == 0
    _check_paths(out, m, [2, 3])


def test_agents_or_tasks_file_given_as_the_floor(tmp_path, capsys):
    # was: read as an ASCII floor: "a.agents:3: column 2: row has 2 cells but the first row
    # has 1" -- nothing said the file was the wrong kind
    for name, text in (("a.agents", "2\n1\n10\n"), ("t.tasks", V2024 + "1\n0,17\n")):
        f = tmp_path / name
        f.write_text(text)
        line = _err(capsys, ["mapf", str(f), "--steps", "2"])
        assert name in line and "not a floor" in line and "--agents / --tasks" in line


def test_capitalised_map_header_gets_the_header_error(tmp_path, capsys):
    # was: 'Type octile' sent the file to the ASCII reader: "x.map:2: column 9: row has 8
    # cells but the first row has 11"; now the MovingAI reader names the header line
    m = tmp_path / "x.map"
    m.write_text("Type octile\nheight 2\nwidth 3\nmap\n...\n...\n")
    line = _err(capsys, ["mapf", str(m), "--steps", "2"])
    assert "x.map:1:" in line and "'type'" in line and "'type octile'" in line


def test_induct_choice_outside_sorting_runs_is_refused(tmp_path, capsys):
    # was: --induct-choice balanced on random goals / LoRR errands silently did nothing (as
    # --mix and --destinations did before they were refused)
    m = tmp_path / "open.map"
    m.write_text("type octile\nheight 2\nwidth 3\nmap\n...\n...\n")
    line = _err(capsys, ["mapf", str(m), "--robots", "2", "--steps", "2",
                         "--induct-choice", "balanced"])
    assert "--induct-choice" in line and "random goals" in line and "'induct_choice'" in line
    fl = tmp_path / "f.txt"
    fl.write_text("I...\n.DC.\n....\n")                      # sorting tasks: it applies
    assert main(["mapf", str(fl), "--robots", "2", "--steps", "3",
                 "--induct-choice", "balanced"]) == 0


def test_ascii_floor_with_its_documented_header_loads(tmp_path, capsys):
    # was: the ASCII form allows a MovingAI-style header ('type ...', 'height', 'width',
    # 'map'), but load_floor sent every file starting 'type' to the MovingAI reader:
    # "f.txt:5: column 1: unknown character 'I' (expected one of . G @ O T W E S)"
    f = tmp_path / "f.txt"
    f.write_text("type octile\nheight 3\nwidth 4\nmap\nI...\n.DC.\n....\n")
    floor = load_floor(f)
    assert (floor.height, floor.width, len(floor.inducts), len(floor.chutes)) == (3, 4, 1, 1)
    out = tmp_path / "o"
    assert main(["mapf", str(f), "--robots", "2", "--steps", "10", "--seed", "1",
                 "--out", str(out)]) == 0
    with np.load(out / "paths.npz") as z:
        starts = z["positions"][0].tolist()
    _check_paths(out, f, starts)
    # and a real MovingAI map with a stray ASCII letter still gets the MovingAI error
    m = tmp_path / "m.map"
    m.write_text("type octile\nheight 1\nwidth 3\nmap\nE.I\n")
    line = _err(capsys, ["mapf", str(m), "--steps", "2"])
    assert "m.map:5:" in line and "'I'" in line and ". G @ O T W E S" in line


# --- found by the sweep in sorter/agv/ (fixed there) ---------------------------------------

def test_robots_alone_in_one_cell_pockets_complete_nothing(tmp_path, capsys):
    # was: every goal drawn was the robot's own cell, so 4 robots that never move
    # "completed" 400 tasks in 100 steps
    fl = tmp_path / "iso.map"
    fl.write_text("type octile\nheight 3\nwidth 3\nmap\n.@.\n@@@\n.@.\n")
    out = tmp_path / "o"
    assert main(["mapf", str(fl), "--robots", "4", "--steps", "100", "--out", str(out)]) == 0
    k = json.loads((out / "kpis.json").read_text())
    assert k["tasks_completed"] == 0


def test_random_goals_are_never_the_robots_own_cell():
    from sorter.agv.tasks import RandomTasks, _parts
    f = load_floor_text("type octile\nheight 4\nwidth 6\nmap\n..@...\n..@...\n@@@...\n.@....\n")
    part = _parts(f.moves)
    free = np.asarray(f.free_cells)

    class P:
        positions = free.copy()
        finished = np.ones(free.size, bool)

    t = RandomTasks(free, free.size, np.random.default_rng(3), moves=f.moves)
    goals = t.start(P)
    for _ in range(200):
        mates = np.array([(part[free] == part[c]).sum() for c in P.positions])
        many = mates > 1
        assert (goals[many] != P.positions[many]).all()
        assert (part[goals] == part[P.positions]).all()
        goals = t.update(P)
    alone = free == 18                                       # the one-cell pocket
    assert t.completed == 200 * (free.size - int(alone.sum())) + 0


def test_default_starts_prefer_the_part_with_stations(tmp_path):
    from sorter.agv.lifelong import default_starts
    fl = tmp_path / "pocket.map"
    fl.write_text("type octile\nheight 5\nwidth 7\nmap\n"
                  "E......\n..S@S..\n...@...\n@@@@@@@\n..@....\n")
    f = load_floor(fl)
    s = default_starts(f, 12, np.random.default_rng(0))
    assert len(set(s.tolist())) == 12 and (s < 3 * 7).all()    # rows 0-2 hold E and S
    # a floor in one part: the draw is the plain one (travel cells first)
    g = load_floor_text("type octile\nheight 3\nwidth 5\nmap\n.....\n.E.S.\n.....\n")
    free = np.asarray(g.free_cells)
    travel = free[g.cells[free] == 1]
    assert default_starts(g, 5, np.random.default_rng(7)).tolist() == \
        np.random.default_rng(7).choice(travel, 5, replace=False).tolist()


def test_errands_or_robots_cut_off_from_each_other_are_refused(tmp_path, capsys):
    # was: a robot sent to an errand in a walled-off part (or starting in one) waited for the
    # rest of the run, without a word
    for d in ("maps", "agents", "tasks"):
        (tmp_path / d).mkdir()
    (tmp_path / "maps" / "m.map").write_text("type octile\nheight 3\nwidth 5\nmap\n"
                                             ".....\n@@@@@\n..E.S\n")
    (tmp_path / "agents" / "a.agents").write_text("2\n0\n1\n")
    prob = tmp_path / "p.json"
    prob.write_text(json.dumps({"mapFile": "maps/m.map", "agentFile": "agents/a.agents",
                                "taskFile": "tasks/t.tasks", "teamSize": 2,
                                "numTasksReveal": 1, "taskAssignmentStrategy": "roundrobin"}))
    (tmp_path / "tasks" / "t.tasks").write_text("3\n2\n3\n12\n")      # cell 12: below the wall
    line = _err(capsys, ["mapf", str(prob), "--steps", "5"])
    assert "task 2" in line and "cell 12 (row 2, col 2)" in line and "'task'" in line
    (tmp_path / "tasks" / "t.tasks").write_text("3\n2\n3\n4\n")
    assert main(["mapf", str(prob), "--steps", "5"]) == 0
    (tmp_path / "agents" / "a.agents").write_text("2\n0\n11\n")        # robot 1 below the wall
    line = _err(capsys, ["mapf", str(prob), "--steps", "5"])
    assert "robot 1" in line and "cell 11" in line and "'start'" in line

"""QA regressions for the robot-floor user surface: `sorter mapf`, the floor loaders, task files.

Each test pins one problem found by the QA pass (input -> what went wrong), so that it stays
fixed: a hang, a traceback, an unclear message or a wrong result on an input a user would write.
"""
import json
import os

import numpy as np
import pytest

from sorter.agv.tasks import ErrandTasks
from sorter.agv.validate import validate
from sorter.cli import main
from sorter.errors import InputError
from sorter.layout import load_floor
from sorter.layout.lorr import load_lorr_problem
from sorter.layout.movingai import load_scen

FLOOR = "I..D\n...C\n"
MAP = "type octile\nheight 2\nwidth 4\nmap\n....\n....\n"


def _err(capsys, argv):
    """Run the CLI expecting a user error: exit code 2, ONE line on stderr, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _lorr_problem(tmp_path, **over):
    (tmp_path / "maps").mkdir(exist_ok=True)
    (tmp_path / "agents").mkdir(exist_ok=True)
    (tmp_path / "tasks").mkdir(exist_ok=True)
    (tmp_path / "maps" / "m.map").write_text(MAP)
    (tmp_path / "agents" / "a.agents").write_text("2\n0\n1\n")
    (tmp_path / "tasks" / "t.tasks").write_text("3\n2\n3\n7\n")
    doc = {"mapFile": "maps/m.map", "agentFile": "agents/a.agents", "taskFile": "tasks/t.tasks",
           "teamSize": 2, "numTasksReveal": 1, "taskAssignmentStrategy": "roundrobin"}
    doc.update(over)
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    return p


# ---------------------------------------------------------------- files that are not files
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_a_fifo_given_as_floor_or_agents_fails_at_once(tmp_path, capsys):
    # was: read_bytes() on a pipe with no writer blocked forever
    fifo = tmp_path / "pipe.map"
    os.mkfifo(fifo)
    line = _err(capsys, ["mapf", str(fifo), "--robots", "1", "--steps", "1"])
    assert "pipe.map" in line and "named pipe" in line and "regular" in line
    fl = tmp_path / "f.txt"
    fl.write_text(FLOOR)
    line = _err(capsys, ["mapf", str(fl), "--agents", str(fifo), "--steps", "1"])
    assert "named pipe" in line


def test_a_directory_given_as_floor_or_map_file(tmp_path, capsys):
    d = tmp_path / "floor.map"
    d.mkdir()
    line = _err(capsys, ["mapf", str(d), "--robots", "1", "--steps", "1"])
    assert "floor.map" in line and "directory" in line
    # LoRR JSON whose mapFile names a directory: was "does not exist"
    p = _lorr_problem(tmp_path, mapFile="maps")
    with pytest.raises(InputError, match="mapFile.*not a regular file"):
        load_lorr_problem(p)
    p = _lorr_problem(tmp_path, mapFile="")
    with pytest.raises(InputError, match="mapFile.*empty"):
        load_lorr_problem(p)


def test_empty_map_file_says_empty(tmp_path, capsys):
    f = tmp_path / "e.map"
    f.write_text("")
    line = _err(capsys, ["mapf", str(f), "--robots", "1", "--steps", "1"])
    assert "e.map:1" in line and "empty file" in line


# ---------------------------------------------------------------- byte-order marks, blanks
@pytest.mark.parametrize("name, text", [
    ("bom.map", MAP),
    ("bom.txt", FLOOR),
])
def test_utf8_bom_is_ignored_in_floors(tmp_path, name, text):
    # was: the BOM became part of the first row / header ("row has 8 cells", ASCII fallback)
    f = tmp_path / name
    f.write_bytes(b"\xef\xbb\xbf" + text.encode())
    plain = tmp_path / ("plain" + f.suffix)
    plain.write_text(text)
    a, b = load_floor(f), load_floor(plain)
    assert np.array_equal(a.cells, b.cells) and np.array_equal(a.moves, b.moves)


def test_utf8_bom_is_ignored_in_scen_json_and_grid(tmp_path):
    fl = tmp_path / "m.map"
    fl.write_text(MAP)
    floor = load_floor(fl)
    scen = tmp_path / "s.scen"
    scen.write_bytes(b"\xef\xbb\xbfversion 1\n0\tm.map\t4\t2\t1\t0\t3\t1\t3\n")
    s = load_scen(scen, floor)
    assert s.starts.tolist() == [1] and s.first_line == 2
    p = _lorr_problem(tmp_path)
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    assert load_lorr_problem(p).team_size == 2
    grid = tmp_path / "g.grid"
    grid.write_bytes(b"\xef\xbb\xbf" + (
        "Grid size (x, y)\n2,1\nid,type,station,x,y,weight_to_NORTH,weight_to_WEST,"
        "weight_to_SOUTH,weight_to_EAST,weight_for_WAIT\n"
        "0,Induct,i0,0,0,inf,inf,inf,1,1\n1,Eject,e0,1,0,inf,1,inf,inf,1\n").encode())
    g = load_floor(grid)
    assert (len(g.inducts), len(g.chutes)) == (1, 1)


def test_trailing_blanks_after_rows_are_not_cells(tmp_path):
    # was: "row has 7 cells but the header's width says 4" for an editor's trailing spaces
    m = tmp_path / "t.map"
    m.write_text(MAP.replace("....\n....\n", "....   \n....\t\n"))
    assert load_floor(m).free_cells.size == 8
    a = tmp_path / "t.txt"
    a.write_text("I..D  \n...C\t\r\n")
    f = load_floor(a)
    assert (f.height, f.width, len(f.chutes)) == (2, 4, 1)
    # a tab inside a row is still an unknown character, at its column
    a.write_text("I.\t.D\n....C\n")
    with pytest.raises(InputError, match=r"t.txt:1: column 3: unknown character"):
        load_floor(a)


def test_blank_line_inside_a_map_grid_is_named(tmp_path):
    # was: "header says height 2 but there are more rows" on the line after the blank one
    m = tmp_path / "b.map"
    m.write_text("type octile\nheight 2\nwidth 4\nmap\n....\n\n....\n")
    with pytest.raises(InputError, match=r"b.map:6: .*blank line inside the grid"):
        load_floor(m)


# ---------------------------------------------------------------- command-line values
def test_bad_seed_steps_and_out_are_one_line_errors(tmp_path, capsys):
    fl = tmp_path / "f.txt"
    fl.write_text(FLOOR)
    # was: numpy's "expected non-negative integer" with no field
    line = _err(capsys, ["mapf", str(fl), "--robots", "1", "--steps", "1", "--seed", "-1"])
    assert "'seed'" in line and ">= 0" in line
    # was: numpy's "Maximum allowed dimension exceeded"
    line = _err(capsys, ["mapf", str(fl), "--robots", "1", "--steps", str(10 ** 20)])
    assert "'steps'" in line
    # --out naming an existing file: was a bare "File exists"
    f = tmp_path / "afile"
    f.write_text("x")
    line = _err(capsys, ["mapf", str(fl), "--robots", "1", "--steps", "1", "--out", str(f)])
    assert "'out'" in line and "directory" in line


def test_recorded_run_too_big_for_memory_is_refused_before_running(tmp_path, capsys):
    from sorter.commands.mapf import _check_memory
    with pytest.raises(InputError, match="steps.*GiB"):
        _check_memory(10 ** 8, 10 ** 6, record=True, rotation=False)
    _check_memory(1000, 1000, record=True, rotation=True)      # small: fine


@pytest.mark.parametrize("suffix, body, line", [
    (".agents", "3\n0\n1\n0\n", 4),
    (".scen", "version 1\n" + "".join(f"0\tm.map\t4\t2\t{x}\t0\t3\t1\t3\n" for x in (0, 1, 0)), 4),
    (".scen", "".join(f"0\tm.map\t4\t2\t{x}\t0\t3\t1\t3\n" for x in (2, 2)), 2),
])
def test_duplicate_start_cells_name_the_line(tmp_path, capsys, suffix, body, line):
    # was: "two agents start on one cell" with no line
    fl = tmp_path / "m.map"
    fl.write_text(MAP)
    a = tmp_path / ("a" + suffix)
    a.write_text(body)
    msg = _err(capsys, ["mapf", str(fl), "--agents", str(a), "--steps", "1"])
    assert f"a{suffix}:{line}:" in msg and "both start on cell" in msg


# ---------------------------------------------------------------- LoRR greedy assignment
def test_errand_tasks_greedy_hands_out_the_file_in_order():
    class P:
        finished = np.zeros(3, bool)

    t = ErrandTasks([10, 11, 12, 13, 14], 3, strategy="greedy")
    assert t.start(P).tolist() == [10, 11, 12]
    P.finished = np.array([False, True, True])
    assert t.update(P).tolist() == [10, 13, 14]            # robots 1, 2 in index order
    P.finished = np.array([True, False, True])
    assert t.update(P).tolist() == [10, 13, 11]            # the file cycles: 10, then 11
    assert t.completed == 4
    # round-robin unchanged: robot i gets errands i, i + n, ...
    r = ErrandTasks([10, 11, 12, 13, 14], 3)
    P.finished = np.zeros(3, bool)
    assert r.start(P).tolist() == [10, 11, 12]
    P.finished = np.array([False, True, True])
    assert r.update(P).tolist() == [10, 14, 10]
    with pytest.raises(InputError, match="taskAssignmentStrategy"):
        ErrandTasks([1], 1, strategy="fifo")


def test_mapf_runs_a_greedy_lorr_problem(tmp_path, capsys):
    # was: "task assignment 'greedy' is not supported" although the loader accepts it
    p = _lorr_problem(tmp_path, taskAssignmentStrategy="greedy")
    out = tmp_path / "o"
    assert main(["mapf", str(p), "--steps", "20", "--out", str(out)]) == 0
    k = json.loads((out / "kpis.json").read_text())
    assert k["task_assignment"] == "greedy" and k["robots"] == 2 and k["tasks_completed"] > 0
    with np.load(out / "paths.npz") as z:
        pos = z["positions"]
    floor = load_lorr_problem(p).floor
    assert pos[0].tolist() == [0, 1]
    assert validate(floor, pos[0], pos) is None


def test_kpis_json_is_strict_json():
    from sorter.commands.mapf import _finite
    k = _finite({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2.5}, "e": 3})
    assert k == {"a": None, "b": [1.0, None], "c": {"d": 2.5}, "e": 3}
    json.dumps(k, allow_nan=False)


# ---------------------------------------------------------------- formats under other names
GRID = ("Grid size (x, y)\n2,1\nid,type,station,x,y,weight_to_NORTH,weight_to_WEST,"
        "weight_to_SOUTH,weight_to_EAST,weight_for_WAIT\n"
        "0,Induct,i0,0,0,inf,inf,inf,1,1\n1,Eject,e0,1,0,inf,1,inf,inf,1\n")


@pytest.mark.parametrize("name, text, shape", [
    ("grid.csv", GRID, (1, 2)),                             # was: ASCII "unknown character 'G'"
    ("kiva.txt", "2,3\n1\n1\n100\nr.e\n...\n", (2, 3)),     # was: ASCII "unknown character '2'"
    ("floor", MAP, (2, 4)),
])
def test_floor_format_follows_the_content_under_another_extension(tmp_path, name, text, shape):
    f = tmp_path / name
    f.write_text(text)
    fl = load_floor(f)
    assert (fl.height, fl.width) == shape


def test_lorr_problem_and_scen_under_another_extension(tmp_path, capsys):
    # a LoRR problem saved as .txt keeps its agents and tasks (was: read as an ASCII floor)
    p = _lorr_problem(tmp_path)
    txt = tmp_path / "problem.txt"
    txt.write_text(p.read_text())
    out = tmp_path / "o"
    assert main(["mapf", str(txt), "--steps", "5", "--out", str(out)]) == 0
    k = json.loads((out / "kpis.json").read_text())
    assert k["robots"] == 2 and k["tasks"] == "ErrandTasks"
    with np.load(out / "paths.npz") as z:
        assert z["positions"][0].tolist() == [0, 1]
    capsys.readouterr()
    # a MovingAI scenario saved as .txt is read as one (was: "'version 1' is not an integer")
    fl = tmp_path / "m.map"
    fl.write_text(MAP)
    sc = tmp_path / "agents.txt"
    sc.write_text("version 1\n0\tm.map\t4\t2\t3\t1\t0\t0\t3\n")
    out2 = tmp_path / "o2"
    assert main(["mapf", str(fl), "--agents", str(sc), "--steps", "3", "--out", str(out2)]) == 0
    with np.load(out2 / "paths.npz") as z:
        assert z["positions"][0].tolist() == [1 * 4 + 3]


def test_dwell_beyond_int32_is_refused(tmp_path, capsys):
    # was: --dwell-induct 4294967297 silently wrapped to 1 in the planner's int32 counters
    fl = tmp_path / "f.txt"
    fl.write_text(FLOOR)
    line = _err(capsys, ["mapf", str(fl), "--robots", "1", "--steps", "1",
                         "--dwell-induct", str(2 ** 32 + 1)])
    assert "'dwell_induct'" in line
    line = _err(capsys, ["mapf", str(fl), "--robots", "1", "--steps", "1", "--dwell-chute", "-1"])
    assert "'dwell_chute'" in line


# ---------------------------------------------------------------- LoRR 2024 task files
def _is_subsequence(seq, of):
    it = iter(of)
    return all(any(x == y for y in it) for x in seq)


def test_lorr_2024_problem_multi_errand_tasks_and_float_reveal(tmp_path, capsys):
    # was: "'2,7' is not an integer" and "numTasksReveal 1.5 (expected a positive integer)"
    p = _lorr_problem(tmp_path, taskFile="tasks/t24.tasks", numTasksReveal=1.5)
    (tmp_path / "tasks" / "t24.tasks").write_text("3\n2,7\n3\n6,1,0\n")
    doc = json.loads(p.read_text())
    del doc["taskAssignmentStrategy"]                      # 2024 files have none
    p.write_text(json.dumps(doc))
    prob = load_lorr_problem(p)
    assert prob.tasks.tolist() == [2, 7, 3, 6, 1, 0]
    assert prob.task_offsets.tolist() == [0, 2, 3, 6] and prob.num_tasks_reveal == 1.5
    out = tmp_path / "o"
    assert main(["mapf", str(p), "--steps", "60", "--out", str(out)]) == 0
    k = json.loads((out / "kpis.json").read_text())
    with np.load(out / "paths.npz") as z:
        pos = z["positions"]
    assert validate(prob.floor, pos[0], pos) is None
    assert 0 < k["lorr_tasks_finished"] < k["errands_completed"] == k["tasks_completed"]
    # round-robin over tasks: robot 0 gets tasks 0, 2, 1, ... and visits their errands in order
    assert _is_subsequence([2, 7, 6, 1, 0], pos[:, 0].tolist())


def test_lorr_2024_files_with_version_lines_get_the_nearest_scheduler(tmp_path, capsys):
    # was: "field 'count': '# version for LoRR 2024' is not an integer" (the Start-Kit's files)
    doc = json.loads(_lorr_problem(tmp_path).read_text())
    del doc["taskAssignmentStrategy"]
    doc.update(version="2024 LoRR", numTasksReveal=2, taskFile="tasks/t24.tasks")
    p = tmp_path / "p24.json"
    p.write_text(json.dumps(doc))
    (tmp_path / "agents" / "a.agents").write_text("# version for LoRR 2024\n2\n0\n1\n")
    (tmp_path / "tasks" / "t24.tasks").write_text("# version for LoRR 2024\n3\n7,3\n1,2\n6,5\n")
    prob = load_lorr_problem(p)
    assert prob.starts.tolist() == [0, 1] and prob.strategy == "nearest"
    assert prob.task_offsets.tolist() == [0, 2, 4, 6]
    out = tmp_path / "o"
    assert main(["mapf", str(p), "--steps", "40", "--out", str(out)]) == 0
    assert "LoRR tasks done" in capsys.readouterr().out
    k = json.loads((out / "kpis.json").read_text())
    assert k["task_assignment"] == "nearest" and k["lorr_tasks_finished"] > 0
    with np.load(out / "paths.npz") as z:
        pos = z["positions"]
    assert validate(prob.floor, pos[0], pos) is None
    # robot 0 on cell 0 takes the task starting next to it, [1, 2], not the file's first
    assert _is_subsequence([1, 2], pos[:, 0].tolist()) and pos[1, 0] == 1
    assert main(["mapf", str(p), "--steps", "40", "--assign", "roundrobin", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["task_assignment"] == "roundrobin"
    # an error after the comment line names the file's own line number
    (tmp_path / "tasks" / "t24.tasks").write_text("# version for LoRR 2024\n2\n7,3\n1,x\n")
    with pytest.raises(InputError, match=r"t24.tasks:4: field 'task': 'x' is not an integer"):
        load_lorr_problem(p)
    (tmp_path / "agents" / "a.agents").write_text("# v\n# w\n2\n0\n")
    with pytest.raises(InputError, match=r"a.agents:4: .*line 3 says 2 entries but 1 follow"):
        load_lorr_problem(p)
    (tmp_path / "agents" / "a.agents").write_text("# only a comment\n")
    with pytest.raises(InputError, match=r"a.agents:2: .*no count line"):
        load_lorr_problem(p)
    fl = tmp_path / "maps" / "m.map"
    line = _err(capsys, ["mapf", str(fl), "--robots", "2", "--steps", "1", "--assign", "nearest"])
    assert "--assign applies to LoRR errands" in line


def test_more_robots_than_free_cells_on_a_lorr_problem_is_a_clear_error(tmp_path, capsys):
    # was: NameError (InputError not imported) when --robots exceeded the problem's agents
    p = _lorr_problem(tmp_path)
    line = _err(capsys, ["mapf", str(p), "--robots", "50", "--steps", "1"])
    assert "--robots 50 do not fit on 8 free cells" in line


def test_task_list_errors_name_the_line(tmp_path):
    from sorter.layout.lorr import load_task_list
    fl = tmp_path / "m.map"
    fl.write_text(MAP)
    floor = load_floor(fl)
    t = tmp_path / "t.tasks"
    for body, pattern in [("2\n2,x\n3\n", r"t.tasks:2: field 'task': 'x' is not an integer"),
                          ("2\n3\n2,\n", r"t.tasks:3: .*empty errand"),
                          ("2\n2,1\n9,3\n", r"t.tasks:3: .*9 is out of range"),
                          ("3\n2,1\n3\n", r"t.tasks:3: field 'count'")]:
        t.write_text(body)
        with pytest.raises(InputError, match=pattern):
            load_task_list(t, floor)
    t.write_text("2\n2, 1\r\n3\r\n")
    e, off = load_task_list(t, floor)
    assert e.tolist() == [2, 1, 3] and off.tolist() == [0, 2, 3]
    t.write_text("2\n2\n3\n")
    e, off = load_task_list(t, floor)
    assert e.tolist() == [2, 3] and off is None


def test_errand_tasks_with_multi_errand_tasks():
    class P:
        finished = np.zeros(2, bool)

    # tasks: [10, 11], [12], [13, 14, 15]
    # round-robin: robot i's k-th task is (i + 2k) % 3; greedy: the file's next task
    for strategy, want in [("roundrobin", [[10, 12], [11, 10], [13, 10]]),
                           ("greedy", [[10, 12], [11, 13], [10, 13]])]:
        t = ErrandTasks([10, 11, 12, 13, 14, 15], 2, strategy=strategy, offsets=[0, 2, 3, 6])
        P.finished = np.zeros(2, bool)
        assert t.start(P).tolist() == want[0]
        P.finished = np.array([True, True])    # robot 0: errand 10 of task 0; robot 1: task 1 done
        assert t.update(P).tolist() == want[1], strategy
        P.finished = np.array([True, False])   # robot 0 finishes task 0
        assert t.update(P).tolist() == want[2], strategy
        assert (t.completed, t.tasks_finished) == (3, 2)
    with pytest.raises(InputError, match="offsets"):
        ErrandTasks([1, 2], 1, offsets=[0, 3])


def test_old_mac_cr_line_ends_and_bad_bytes_after_a_bom(tmp_path):
    # was: a CR-only file was one long row ("unknown character '\r'")
    a = tmp_path / "cr.txt"
    a.write_bytes(FLOOR.replace("\n", "\r").encode())
    m = tmp_path / "cr.map"
    m.write_bytes(MAP.replace("\n", "\r").encode())
    assert load_floor(a).height == 2 and load_floor(m).free_cells.size == 8
    ag = tmp_path / "cr.agents"
    ag.write_bytes(b"2\r0\r1\r")
    from sorter.layout.lorr import load_cell_list
    assert load_cell_list(ag, load_floor(m), field="start").tolist() == [0, 1]
    # the byte offset of a non-UTF-8 byte counts the BOM too (it is the file's offset)
    b = tmp_path / "bad.txt"
    b.write_bytes(b"\xef\xbb\xbfI..D\n..\xff.C\n")
    with pytest.raises(InputError, match=r"bad.txt:2: byte 10 is not UTF-8"):
        load_floor(b)


def test_robots_with_agents_takes_the_first_n_and_refuses_too_few(tmp_path, capsys):
    # was: argparse refused --robots with --agents (a usage dump); MovingAI's convention is
    # "the first k agents of the scenario"; asking for more than the file has is one clear line
    fl = tmp_path / "m.map"
    fl.write_text(MAP)
    sc = tmp_path / "s.scen"
    sc.write_text("".join(f"0\tm.map\t4\t2\t{x}\t{y}\t0\t0\t1\n" for x, y in ((3, 1), (0, 0), (2, 1))))
    out = tmp_path / "o"
    assert main(["mapf", str(fl), "--agents", str(sc), "--robots", "2", "--steps", "2",
                 "--out", str(out)]) == 0
    with np.load(out / "paths.npz") as z:
        assert z["positions"][0].tolist() == [7, 0]
    capsys.readouterr()
    line = _err(capsys, ["mapf", str(fl), "--agents", str(sc), "--robots", "5", "--steps", "1"])
    assert "s.scen" in line and "'robots'" in line and "3 agents" in line


def test_scenario_sorting_on_a_one_chute_floor_suggests_the_table(tmp_path, capsys):
    # was: "1 chutes for 1 destinations" with no file and no way out named
    fl = tmp_path / "f.txt"
    fl.write_text(FLOOR)
    line = _err(capsys, ["mapf", str(fl), "--robots", "2", "--steps", "2", "--scenario", "sorting"])
    assert "f.txt" in line and "'chutes'" in line and "--router table" in line
    assert main(["mapf", str(fl), "--robots", "2", "--steps", "2", "--scenario", "sorting",
                 "--router", "table"]) == 0


# ---------------------------------------------------------------- flags that would do nothing
def test_sorting_flags_outside_sorting_runs_are_refused(tmp_path, capsys):
    # was: --destinations / --mix were silently ignored on errand and random-goal runs
    m = tmp_path / "open.map"
    m.write_text(MAP)
    line = _err(capsys, ["mapf", str(m), "--robots", "2", "--steps", "3", "--destinations", "5"])
    assert "--destinations" in line and "sorting" in line and "random goals" in line
    p = _lorr_problem(tmp_path)
    line = _err(capsys, ["mapf", str(p), "--steps", "3", "--mix", "721"])
    assert "--mix" in line and "LoRR errands" in line
    fl = tmp_path / "f.txt"
    fl.write_text(FLOOR)                     # inducts and chutes: sorting tasks, flags apply
    assert main(["mapf", str(fl), "--robots", "1", "--steps", "3", "--mix", "721",
                 "--destinations", "1"]) == 0


@pytest.mark.parametrize("key, want", [("taskAssignmentStratgy", "taskAssignmentStrategy"),
                                       ("numtasksreveal", "numTasksReveal"),
                                       ("Version", "version")])
def test_lorr_misspelt_key_is_refused_not_ignored(tmp_path, key, want):
    # was: a misspelt optional key was ignored, so the run silently used round robin / one
    # revealed task instead of what the file meant; keys unlike ours stay allowed
    doc = json.loads(_lorr_problem(tmp_path).read_text())
    doc.pop(want, None)
    doc[key] = "greedy" if "Strat" in key else 2
    doc["comment"] = "made by hand"
    p = tmp_path / "typo.json"
    p.write_text(json.dumps(doc, indent=1))
    with pytest.raises(InputError, match=rf"typo.json:\d+: field '{key}': unknown key '{key}' "
                                         rf"\(did you mean '{want}'\?\)"):
        load_lorr_problem(p)
    doc[want] = doc.pop(key)
    p.write_text(json.dumps(doc, indent=1))
    assert load_lorr_problem(p).team_size == doc["teamSize"]

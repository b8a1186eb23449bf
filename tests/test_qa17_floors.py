"""QA session 17 (qa-floors): `sorter mapf` and the floor loaders on new hand-made floors.

Each test pins one problem found by the pass (input -> what went wrong before the fix):

* a LoRR agents file whose leading ``#`` comment line has nine words was read as a MovingAI
  scenario (``'#' is not an integer``, field ``bucket``), whatever its extension;
* errand runs with starts in two parts of the floor: the part "most robots start in" decided
  which robot was blamed, so with robots split evenly (or most of them in a pocket) the error
  named the one robot beside the errands, i.e. the wrong line of the agents file;
* a LoRR problem whose ``numTasksReveal`` (greedy) is too many held tasks for the fleet was
  refused naming neither the JSON nor its line;
* an RHCR station id the chute engine cannot take as a chute id (``;`` in it) loaded, then
  ``--scenario sorting`` failed naming no file.

Also pinned: an RHCR grid's line order, line ends and spelling of ``inf`` / weights change
neither the floor nor the run (checked against the file's own moves, independently).
"""
import json

import numpy as np

from sorter.cli import main
from test_qa_mapf_session9 import _err  # one CLI-error helper for the mapf tests

# 6 x 7: a walled-off pocket top left (rows 0-1, cols 0-2), the rest one part
DISC = ("type octile\nheight 6\nwidth 7\nmap\n"
        "...@...\n...@...\n@@@@...\n...@...\n...@@@@\n.......\n")
BORDER = "type octile\nheight 5\nwidth 6\nmap\n@@@@@@\n@....@\n@.@@.@\n@....@\n@@@@@@\n"


def test_agents_file_with_a_nine_word_comment_line_is_not_a_scenario(tmp_path, capsys):
    (tmp_path / "b.map").write_text(BORDER)
    for name in ("a.agents", "a.txt"):
        a = tmp_path / name
        a.write_text("# agents for border map made by generator v2\n2\n7\n8\n")
        out = tmp_path / ("o" + name)
        assert main(["mapf", str(tmp_path / "b.map"), "--agents", str(a), "--steps", "3",
                     "--out", str(out)]) == 0, capsys.readouterr().err
        capsys.readouterr()
        pos = np.load(out / "paths.npz")["positions"]
        assert pos[0].tolist() == [7, 8]
    # a real scenario is still read as one (tab- or space-separated, with its version line)
    s = tmp_path / "b.txt"
    s.write_text("version 1\n0 b.map 6 5 1 1 4 3 5\n")
    out = tmp_path / "os"
    assert main(["mapf", str(tmp_path / "b.map"), "--agents", str(s), "--steps", "2",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert np.load(out / "paths.npz")["positions"][0].tolist() == [7]


def test_a_start_cut_off_from_the_errands_is_the_one_named(tmp_path, capsys):
    (tmp_path / "d.map").write_text(DISC)
    (tmp_path / "t.tasks").write_text("2\n35\n41\n")          # both errands in the main part
    # robot 0 in the pocket (cell 1), robot 1 beside the errands (cell 36): a tie, which
    # blamed robot 1 (line 3)
    (tmp_path / "a.agents").write_text("2\n1\n36\n")
    line = _err(capsys, [str(tmp_path / "d.map"), "--agents", str(tmp_path / "a.agents"),
                         "--tasks", str(tmp_path / "t.tasks"), "--steps", "3"])
    assert "a.agents:2" in line and "robot 0 " in line and "cell 1 " in line, line
    # two robots in the pocket, one beside the errands: robot 2 (the only one that works) was
    # blamed
    (tmp_path / "a3.agents").write_text("3\n1\n2\n36\n")
    line = _err(capsys, [str(tmp_path / "d.map"), "--agents", str(tmp_path / "a3.agents"),
                         "--tasks", str(tmp_path / "t.tasks"), "--steps", "3"])
    assert "a3.agents:2" in line and "robot 0 " in line, line
    # all robots together, one errand in the pocket: still the errand's line
    (tmp_path / "t3.tasks").write_text("3\n35\n1\n41\n")
    (tmp_path / "m.agents").write_text("2\n35\n36\n")
    line = _err(capsys, [str(tmp_path / "d.map"), "--agents", str(tmp_path / "m.agents"),
                         "--tasks", str(tmp_path / "t3.tasks"), "--steps", "3"])
    assert "t3.tasks:3" in line and "task 1 " in line and "'task'" in line, line


def _loop_grid(order=None, weight="1", infs=("inf",), nl="\n"):
    """An RHCR grid (9 x 5) of one-way lanes round two rows of stations: east on row 0, west
    on row 4, north up column 0, south down column 8 (middle rows both ways)."""
    X, Y = 9, 5
    lay = ["TTTTTTTTT", "TEOEOEOIT", "TTTTTTTTT", "TIOEOEOET", "TTTTTTTTT"]

    def ok(x, y):
        return 0 <= x < X and 0 <= y < Y and lay[y][x] != "O"

    def allowed(x, y, dx, dy):
        if not (ok(x, y) and ok(x + dx, y + dy)):
            return False
        if dy == 0:
            return {0: dx == 1, 4: dx == -1, 2: True}.get(y, False)
        return {0: dy == -1, X - 1: dy == 1}.get(x, True)

    cells = [(x, y) for x in range(X) for y in range(Y)]
    if order is not None:
        cells = [cells[i] for i in order]
    lines = []
    for k, (x, y) in enumerate(cells):
        t = {"T": "Travel", "O": "Obstacle", "E": "Eject", "I": "Induct"}[lay[y][x]]
        st = "None" if t in ("Travel", "Obstacle") else f"{lay[y][x]}{x}_{y}"
        # columns NORTH, WEST, SOUTH, EAST are the moves to y + 1, x - 1, y - 1, x + 1
        ws = [weight if allowed(x, y, dx, dy) else infs[k % len(infs)]
              for dx, dy in ((0, 1), (-1, 0), (0, -1), (1, 0))]
        lines.append(f"{x * Y + y},{t},{st},{x},{y}," + ",".join(ws)
                     + ("," + ("inf" if t == "Obstacle" else "1")))
    head = ["Grid size (x, y)", f"{X},{Y}", "id,type,station,x,y,weight_to_NORTH,weight_to_WEST,"
            "weight_to_SOUTH,weight_to_EAST,weight_for_WAIT"]
    return nl.join(head + lines) + nl, allowed, X


def test_rhcr_grid_in_any_line_order_and_spelling_is_the_same_floor_and_run(tmp_path, capsys):
    plain, allowed, X = _loop_grid()
    order = np.random.default_rng(3).permutation(45)
    other, _, _ = _loop_grid(order=order, weight="2.5", infs=("INF", "Infinity", "inf", "+inf"),
                             nl="\r\n")
    runs = []
    for name, text in (("a.grid", plain), ("b.grid", other)):
        (tmp_path / name).write_bytes(text.encode())
        out = tmp_path / ("o" + name)
        assert main(["mapf", str(tmp_path / name), "--robots", "4", "--steps", "60",
                     "--scenario", "sorting", "--out", str(out)]) == 0
        capsys.readouterr()
        runs.append(np.load(out / "paths.npz")["positions"])
    assert np.array_equal(runs[0], runs[1])
    pos = runs[0]
    # every step an allowed move of the file (or a wait), no vertex or swap conflicts
    for t in range(pos.shape[0] - 1):
        a, b = pos[t], pos[t + 1]
        assert np.unique(b).size == b.size
        for x, y in zip(a.tolist(), b.tolist()):
            if x != y:
                (r, c), (r2, c2) = divmod(x, X), divmod(y, X)
                assert allowed(c, r, c2 - c, r2 - r), (t, x, y)
                assert not ((b == x) & (a == y)).any(), (t, x, y)
    k = json.loads((tmp_path / "oa.grid" / "kpis.json").read_text())
    assert k["tasks_completed"] > 0 and k["parcels_delivered"] > 0


def test_too_many_revealed_tasks_for_the_fleet_names_the_problem_json(tmp_path, capsys):
    (tmp_path / "open.map").write_text("type octile\nheight 20\nwidth 20\nmap\n"
                                       + ("." * 20 + "\n") * 20)
    (tmp_path / "a.agents").write_text("100\n" + "".join(f"{c}\n" for c in range(100, 200)))
    (tmp_path / "t.tasks").write_text("2\n5\n77\n")
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"mapFile": "open.map", "agentFile": "a.agents",
                             "taskFile": "t.tasks", "teamSize": 100, "numTasksReveal": 999999,
                             "taskAssignmentStrategy": "greedy"}, indent=1))
    # 100 robots x 999,999 held tasks is past the scheduler's bound: the error named no file
    line = _err(capsys, [str(p), "--steps", "1"])
    assert line.startswith(f"sorter mapf: error: {p}:6: field 'numTasksReveal'"), line
    assert "at most" in line, line


def test_a_station_id_the_chute_engine_cannot_take_names_the_floor_file(tmp_path, capsys):
    text, _, _ = _loop_grid()
    assert ",E1_1," in text
    g = tmp_path / "semi.grid"
    g.write_text(text.replace(",E1_1,", ",E;1,"))
    # the floor itself loads (plain runs use it); the chute engine's plan needs plain ids:
    # the error named neither the floor file nor where the id came from
    out = tmp_path / "o"
    assert main(["mapf", str(g), "--robots", "2", "--steps", "5", "--out", str(out)]) == 0
    capsys.readouterr()
    line = _err(capsys, [str(g), "--robots", "2", "--steps", "5", "--scenario", "sorting"])
    assert line.startswith(f"sorter mapf: error: {g}: field 'chutes'"), line
    assert "'E;1'" in line, line

"""QA of what `sorter mapf` reports on robot floors: the numbers recomputed from paths.npz.

Every count here is recomputed by a small oracle written for this file (no planner code):
LoRR errands as the LoRR Start-Kit counts them (an errand is done at the first timestep >= 1
after which the robot stands on its cell, at most one per robot per step, the next errand
handed out at once), station goals with their dwell (the robot arrives at row t, stays on the
cell through row t + k, the goal counts at row t + k), and plain move legality.
"""
import json

import numpy as np
import pytest

from sorter.agv.lifelong import make_run, simulate
from sorter.agv.validate import validate
from sorter.cli import main
from sorter.layout import load_floor, sortation_floor
from sorter.layout.lorr import load_lorr_problem
from sorter.resources import shared_path

LORR_MAP = """type octile
height 5
width 8
map
E......E
.@@.@@..
...S....
.@@.@@S.
E.......
"""
STARTS = [8, 22, 35, 33, 32, 2]
# robot 0 starts on its first errand (8); robot 1's first two errands are the same cell (6)
TASKS = [8, 6, 39, 36, 38, 32, 17, 6, 39, 1, 32, 35, 0, 36, 21, 18, 6, 24, 1, 1, 1, 0, 32]


# ---------------------------------------------------------------- independent oracles
def _legal(floor, pos):
    """First illegal thing in a plan, by a plain loop (None if legal)."""
    n = pos.shape[1]
    for t in range(pos.shape[0]):
        row = [int(c) for c in pos[t]]
        if any(not 0 <= c < floor.n_cells or floor.cells[c] == 0 for c in row):
            return "cell", t
        if len(set(row)) != n:
            return "vertex", t
        if t:
            prev = [int(c) for c in pos[t - 1]]
            moves = {(a, b) for a, b in zip(prev, row) if a != b}
            if any(b not in floor.moves[a].tolist() for a, b in moves):
                return "move", t
            if any((b, a) in moves for a, b in moves):
                return "swap", t
    return None


def _errands_recount(pos, errands, team):
    """LoRR round-robin errands reached (Start-Kit counting)."""
    done = 0
    for i in range(pos.shape[1]):
        k = 0
        for t in range(1, pos.shape[0]):
            if pos[t, i] == errands[(i + k * team) % len(errands)]:
                done += 1
                k += 1
    return done


def _greedy_recount(pos, errands):
    n = pos.shape[1]
    goal = [errands[i % len(errands)] for i in range(n)]
    nxt, done = n % len(errands), 0
    for t in range(1, pos.shape[0]):
        for i in range(n):                     # robots of one step in index order
            if pos[t, i] == goal[i]:
                done += 1
                goal[i], nxt = errands[nxt], (nxt + 1) % len(errands)
    return done


def _station_recount(floor, pos, goals, dwell_chute, dwell_induct):
    """Station goals (any cell of the goal's station) with dwell; ``goals[t]`` = goals of step
    t + 1. Returns (completions, per-robot completion rows, robots that left during a dwell)."""
    def station(g):
        s, kind = int(floor.station_of_cell[g]), int(floor.cells[g])
        if s >= 0 and kind == 3:
            return set(floor.chutes[s].cells.tolist())
        if s >= 0 and kind == 2:
            return set(floor.inducts[s].cells.tolist())
        return {int(g)}

    count, left_early = 0, 0
    rows = [[] for _ in range(pos.shape[1])]
    for i in range(pos.shape[1]):
        prev, fresh, wait, cells = None, True, 0, set()
        for t in range(1, pos.shape[0]):
            g = int(goals[t - 1][i])
            if g != prev or fresh:
                prev, wait, cells, arrived = g, 0, station(g), False
            fresh = False
            p = int(pos[t, i])
            if wait:
                left_early += p != int(pos[t - 1, i])
                wait -= 1
                if not wait:
                    count, fresh = count + 1, True
                    rows[i].append(t)
            elif not arrived and p in cells:
                arrived = True
                kind = int(floor.cells[p])
                wait = dwell_chute if kind == 3 else (dwell_induct if kind == 2 else 0)
                if not wait:
                    count, fresh = count + 1, True
                    rows[i].append(t)
    return count, rows, left_early


class _Recorder:
    """A task stream wrapper recording the goals handed to every planner step."""

    def __init__(self, inner):
        self.inner, self.goals = inner, []

    def start(self, planner):
        g = self.inner.start(planner)
        self.goals.append(np.array(g))
        return g

    def update(self, planner):
        g = self.inner.update(planner)
        self.goals.append(np.array(g))
        return g

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _lorr(tmp_path, strategy="roundrobin"):
    (tmp_path / "maps").mkdir(exist_ok=True)
    (tmp_path / "maps" / "m.map").write_text(LORR_MAP)
    (tmp_path / "a.agents").write_text(f"{len(STARTS)}\n" + "\n".join(map(str, STARTS)) + "\n")
    (tmp_path / "t.tasks").write_text(f"{len(TASKS)}\n" + "\n".join(map(str, TASKS)) + "\n")
    p = tmp_path / f"{strategy}.json"
    p.write_text(json.dumps({"mapFile": "maps/m.map", "agentFile": "a.agents",
                             "taskFile": "t.tasks", "teamSize": len(STARTS),
                             "numTasksReveal": 1, "taskAssignmentStrategy": strategy}))
    return p


def _run(argv, out):
    assert main(["mapf", *argv, "--out", str(out), "--json"]) == 0
    with np.load(out / "paths.npz") as z:
        files = {k: z[k] for k in z.files}
    return files, json.loads((out / "kpis.json").read_text())


# ---------------------------------------------------------------- the checks
@pytest.mark.parametrize("strategy,rotation", [("roundrobin", False), ("roundrobin", True),
                                               ("greedy", False)])
def test_lorr_errands_in_kpis_equal_a_recount_from_the_positions(tmp_path, capsys, strategy,
                                                                 rotation):
    p = _lorr(tmp_path, strategy)
    floor = load_lorr_problem(p).floor
    z, k = _run([str(p), "--steps", "150", "--seed", "1"] + (["--rotation"] if rotation else []),
                tmp_path / "o")
    pos = z["positions"]
    assert pos.dtype == np.int32 and pos.shape == (151, len(STARTS))
    assert (int(z["width"]), int(z["height"])) == (8, 5)
    assert pos[0].tolist() == STARTS
    assert validate(floor, pos[0], pos) is None and _legal(floor, pos) is None
    want = (_errands_recount(pos, TASKS, len(STARTS)) if strategy == "roundrobin"
            else _greedy_recount(pos, TASKS))
    assert k["tasks_completed"] == want > 20
    assert k["robots"] == len(STARTS) and k["steps"] == 150
    assert k["tasks_per_step"] == pytest.approx(want / 150)
    assert k["ms_per_step_p50"] <= k["ms_per_step_p99"] <= k["ms_per_step_max"]
    assert k["preprocess_s"] > 0
    if rotation:
        h = z["headings"]
        assert h.shape == pos.shape and (h[0] == 0).all()
        a, b, h0, h1 = pos[:-1], pos[1:], h[:-1].astype(int), h[1:].astype(int)
        moved = a != b
        assert (floor.moves[a[moved], h0[moved]] == b[moved]).all()     # forward only
        assert (h0[moved] == h1[moved]).all()
        assert ((h1 - h0) % 4 != 2).all()                                # one quarter turn


def test_a_robot_on_its_first_errand_and_a_repeated_errand_count_as_the_start_kit_does(tmp_path,
                                                                                       capsys):
    p = _lorr(tmp_path)
    # one step: robot 0 starts on its first errand (cell 8); waiting there completes it at
    # step 1 (the Start-Kit checks after every action, a wait included), not at step 0
    z, k = _run([str(p), "--steps", "1", "--guidance", "none"], tmp_path / "one")
    pos = z["positions"]
    assert pos[1, 0] == 8 and k["tasks_completed"] == _errands_recount(pos, TASKS, 6) >= 1
    z, k = _run([str(p), "--steps", "30", "--seed", "1", "--guidance", "none"], tmp_path / "o")
    pos = z["positions"]
    assert k["tasks_completed"] == _errands_recount(pos, TASKS, len(STARTS))
    # robot 1's first two errands are both cell 6: done at two consecutive rows (it stays)
    t6 = np.flatnonzero(pos[:, 1] == 6)
    assert t6.size >= 2 and t6[1] == t6[0] + 1


def test_rhcr_sorting_kpis_equal_a_recount_and_robots_dwell_k_steps(tmp_path, capsys):
    g = shared_path("benchmarks", "rhcr", "sorting_map.grid")
    if g is None:
        pytest.skip("../shared/benchmarks/rhcr/sorting_map.grid not present")
    floor = load_floor(g)
    z, k = _run([str(g), "--robots", "150", "--steps", "150", "--seed", "2"], tmp_path / "o")
    pos = z["positions"]
    assert validate(floor, pos[0], pos) is None and _legal(floor, pos) is None
    # the same run through the API, recording the goals of every step
    planner, stream = make_run(floor, 150, None, seed=2, guidance="lanes+flow")
    rec = _Recorder(stream)
    res = simulate(planner, rec, 150)
    assert np.array_equal(res.positions, pos)
    count, rows, left_early = _station_recount(floor, pos, rec.goals, 5, 1)
    assert left_early == 0                                # a dwelling robot stays put
    assert k["tasks_completed"] == count > 100
    drops = sum(int(floor.cells[pos[t, i]] == 3) for i, r in enumerate(rows) for t in r)
    assert k["parcels_delivered"] == drops
    for i, r in enumerate(rows):                          # induct -> chute -> induct ...
        kinds = [int(floor.cells[pos[t, i]]) for t in r]
        assert kinds == [2, 3] * (len(kinds) // 2) + [2] * (len(kinds) % 2)
        for t in r:                                       # on the cell through the dwell
            d = 5 if floor.cells[pos[t, i]] == 3 else 1
            assert (pos[t - d:t + 1, i] == pos[t, i]).all()
    moving = (pos[75:] != pos[75]).any(axis=0)
    assert moving.all()                                   # nobody stuck in the second half


def test_robots_beyond_a_lorr_problems_team_keep_its_starts(tmp_path, capsys):
    # was: --robots 8 on a 6-robot problem replaced every start of the problem by random cells
    p = _lorr(tmp_path)
    z, k = _run([str(p), "--robots", "8", "--steps", "5"], tmp_path / "o8")
    row0 = z["positions"][0].tolist()
    assert row0[:6] == STARTS and len(set(row0)) == 8       # the problem's agents, then 2 more
    assert "6 agents" in capsys.readouterr().err
    z, k = _run([str(p), "--robots", "4", "--steps", "5"], tmp_path / "o")
    assert z["positions"][0].tolist() == STARTS[:4]


def test_engine_tasks_completed_counts_induct_visits_and_real_drops_only():
    # was: a robot that found its chute full on arrival (re-routed) counted as a completed task
    from sorter.agv.floor_sim import FloorSimOptions
    f = sortation_floor(14, 24, 4, 10, seed=1)
    planner, stream = make_run(f, 80, None, seed=0, tasks="sorting", dwell_chute=2,
                               floor_sim=FloorSimOptions(chute_capacity=1,
                                                         container_change_steps=10))
    k = simulate(planner, stream, 200, record=False).kpis()
    assert k["reroutes_by_cause"]["no_room_on_arrival"] > 0
    assert k["tasks_completed"] == k["parcels_picked"] + k["parcels_sorted"]


def test_a_robot_dwelling_at_its_induct_is_not_stranded_nor_sent_elsewhere():
    # was: a stale "no way round" flag re-picked the induct of a robot already dwelling there
    from sorter.agv.floor_sim import FloorSimOptions
    f = sortation_floor(14, 24, 4, 10, seed=1)
    planner, stream = make_run(f, 60, None, seed=0, tasks="sorting", guidance="lanes+flow",
                               floor_sim=FloorSimOptions(chute_capacity=0, fault_rate=0.02,
                                                         repair_steps=10))
    bad = []
    update = stream.update

    def checked(pl):
        dwelling, before, fin = pl.dwelling.copy(), stream._goals.copy(), pl.finished.copy()
        assert not (pl.stranded & dwelling).any()
        goals = update(pl)
        bad.extend(np.flatnonzero(dwelling & ~fin & (goals != before)).tolist())
        return goals

    stream.update = checked
    simulate(planner, stream, 300, record=False)
    assert stream.faults > 50 and stream.induct_repicks > 0
    assert bad == []


def test_same_seed_same_bytes_and_kpis_and_figures_agree_with_positions(tmp_path, capsys):
    from PIL import Image

    from sorter.layout.draw import visit_counts
    f = sortation_floor(12, 20, 4, 6, seed=1)
    fl = tmp_path / "f.txt"
    fl.write_text(f.to_ascii())
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / name
        extra = ["--heatmap", "--animate", "5:9"] if name == "a" else []
        runs.append(_run([str(fl), "--robots", "120", "--steps", "80", "--seed", str(seed),
                          *extra], out))
    same = [(tmp_path / x / "paths.npz").read_bytes() for x in "ab"]
    assert same[0] == same[1]
    timing = {"ms_per_step_p50", "ms_per_step_p99", "ms_per_step_max", "kernel_ms_p50",
              "kernel_ms_p99", "preprocess_s", "peak_rss_mb"}   # measurements
    ka, kb = ({x: v for x, v in r[1].items() if x not in timing} for r in runs[:2])
    assert ka == kb
    assert not np.array_equal(runs[0][0]["positions"], runs[2][0]["positions"])
    pos = runs[0][0]["positions"]
    assert validate(f, pos[0], pos) is None
    # an animation of steps 5..9 has 5 frames; the heat map opens; counts = visits per cell
    with Image.open(tmp_path / "a" / "animation.gif") as gif:
        assert gif.n_frames == 5
    with Image.open(tmp_path / "a" / "heatmap.png") as png:
        assert png.size[0] > 100
    own = np.zeros(f.n_cells, np.int64)
    for row in pos:
        for c in row:
            own[c] += 1
    assert np.array_equal(visit_counts(f, pos), own) and own.sum() == pos.size


def test_validator_names_a_forbidden_move_of_the_rhcr_grid():
    g = shared_path("benchmarks", "rhcr", "sorting_map.grid")
    if g is None:
        pytest.skip("../shared/benchmarks/rhcr/sorting_map.grid not present")
    f = load_floor(g)
    w = f.width
    # a free neighbour pair with an `inf` weight one way and a finite one back
    for c in f.free_cells:
        c = int(c)
        for d, nb in enumerate((c + 1, c + w, c - 1, c - w)):
            if (f.moves[c, d] == -1 and 0 <= nb < f.n_cells and f.cells[nb] != 0
                    and abs(nb % w - c % w) + abs(nb // w - c // w) == 1 and c in f.moves[nb]):
                break
        else:
            continue
        break
    v = validate(f, [c], np.array([[c], [nb]]))
    assert (v.kind, v.step, v.robots, v.cells) == ("one_way", 1, (0,), (c, nb))
    assert validate(f, [nb], np.array([[nb], [c]])) is None      # the other way is allowed


@pytest.mark.parametrize("engine", [False, True])
def test_a_parcel_for_a_chute_whose_drop_cells_are_all_shared_is_tipped_beside_that_chute(engine):
    # was: chute C1's only drop cell (row 1, col 3) also serves C0, so the planner read the goal
    # as "station C0" and robots carrying C1's parcels tipped them at C0's other cell (1, 1)
    from sorter.agv.floor_sim import FloorSimOptions
    from sorter.layout import Floor
    f = Floor.from_ascii("""
I.......
.DCDC...
........
""")
    assert [s.cells.tolist() for s in f.chutes] == [[9, 11], [11]]
    planner, stream = make_run(f, 2, [23, 20], seed=0, tasks="sorting", dwell_chute=0,
                               dwell_induct=0, mix="uniform", n_destinations=2,
                               floor_sim=FloorSimOptions(chute_capacity=0) if engine else None)
    wrong, drops = [], [0, 0]
    update = stream.update

    def checked(pl):
        for i in np.flatnonzero(pl.finished & (stream.heading == 1)):
            ch = int(stream.target[i])
            drops[ch] += 1
            if pl.positions[i] not in f.chutes[ch].cells:
                wrong.append((int(i), ch, int(pl.positions[i])))
        return update(pl)

    stream.update = checked
    simulate(planner, stream, 120, record=False)
    assert drops[1] > 0 and wrong == []


def test_random_goals_on_a_map_with_walled_off_parts_stay_reachable(tmp_path, capsys):
    # was: goals drawn from every free cell; a robot given a cell of the other part never
    # completed it and wandered for the rest of the run (10 goals in 300 steps for 10 robots)
    m = tmp_path / "island.map"
    m.write_text("type octile\nheight 6\nwidth 10\nmap\n..........\n..........\n@@@@@@@@@@\n"
                 "..........\n..........\n@@@@@@@..@\n")
    floor = load_floor(m)
    planner, stream = make_run(floor, 10, None, seed=0)
    rec = _Recorder(stream)
    res = simulate(planner, rec, 300)
    pos = res.positions
    top = lambda c: np.asarray(c) < 20                                    # noqa: E731
    for g in rec.goals:                                                   # same part as the robot
        assert (top(g) == top(pos[0])).all()
    count, _, _ = _station_recount(floor, pos, rec.goals, 0, 0)
    assert res.tasks_completed == count > 300
    # a floor in one part draws exactly as before (goals from all free cells, same stream)
    from sorter.agv.tasks import RandomTasks
    f = sortation_floor(12, 20, 4, 6, seed=1)
    a, b = (RandomTasks(f.free_cells, 5, np.random.default_rng(3), moves=mv)
            for mv in (f.moves, None))
    pl = make_run(f, 5, None, seed=0, tasks="random")[0]
    assert np.array_equal(a.start(pl), b.start(pl))

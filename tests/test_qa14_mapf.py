"""QA pass 14 (a researcher benchmarking robot fleets with `sorter mapf` and the Python API):
regressions for what it found. Every test recounts from the written positions with a plain
Python oracle of the LoRR 2023 task systems (a robot completes the front errand of its list
when it stands on its cell; one errand per robot per step), independent of sorter's code.
"""
import json
from collections import deque

import numpy as np
import pytest

from sorter.agv.tasks import ErrandTasks
from sorter.agv.validate import validate
from sorter.cli import main
from sorter.layout import load_floor

# a small LoRR map: E emitters on the border, S service cells beside 1x1 shelves
MAP = """type octile
height 7
width 11
map
E.........E
.S@S.S@S.G.
.S@S.S@S...
...........
.S@S.O@S.T.
.S@S.S@S.W.
E.........E
"""
AGENTS = [69, 31, 2, 73, 63, 9, 54, 34]
TASKS = [31, 47, 40, 5, 1, 68, 58, 66, 39, 63, 23, 33, 62, 8, 22, 8, 33, 75, 8, 29, 30, 70, 14,
         37, 19, 1, 58, 4, 20, 36, 36, 7, 75, 58, 74, 6, 55, 21, 39, 72]


def _problem(tmp_path, **over):
    for d in ("maps", "agents", "tasks"):
        (tmp_path / d).mkdir(exist_ok=True)
    (tmp_path / "maps" / "w.map").write_text(MAP)
    (tmp_path / "agents" / "w.agents").write_text(f"{len(AGENTS)}\n" + "\n".join(map(str, AGENTS)) + "\n")
    (tmp_path / "tasks" / "w.tasks").write_text(f"{len(TASKS)}\n" + "\n".join(map(str, TASKS)) + "\n")
    doc = {"mapFile": "maps/w.map", "agentFile": "agents/w.agents", "taskFile": "tasks/w.tasks",
           "teamSize": 6, "numTasksReveal": 1, "taskAssignmentStrategy": "roundrobin"}
    doc.update(over)
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    return p


def _run(tmp_path, argv):
    out = tmp_path / "out"
    assert main(["mapf", *map(str, argv), "--out", str(out), "--json"]) == 0
    d = np.load(out / "paths.npz")
    k = json.loads((out / "kpis.json").read_text())
    return d["positions"], k


def _free_cells(text):
    rows = text.splitlines()[4:]
    return {r * len(row) + c for r, row in enumerate(rows) for c, ch in enumerate(row) if ch in ".GES"}


def _legal(pos, free, width):
    """Plain checks: free cells, unit moves, no vertex or swap conflicts."""
    assert all(int(c) in free for c in np.unique(pos))
    for t in range(1, pos.shape[0]):
        a, b = pos[t - 1].astype(int), pos[t].astype(int)
        assert len(set(b.tolist())) == b.size
        assert (abs(a // width - b // width) + abs(a % width - b % width) <= 1).all()
        moved = {(int(x), int(y)) for x, y in zip(a, b) if x != y}
        assert not any((y, x) in moved for x, y in moved)


def _recount_fixed(pos, errands):
    """LoRR 2023 FixedAssignSystem: robot i does errands i, i + n, ... once each."""
    n = pos.shape[1]
    k = [0] * n
    for t in range(1, pos.shape[0]):
        for i in range(n):
            j = i + k[i] * n
            if j < len(errands) and pos[t, i] == errands[j]:
                k[i] += 1
    return sum(k), k


def _recount_greedy(pos, errands, reveal):
    """LoRR 2023 TaskAssignSystem (file re-read from the top, as sorter documents): each robot
    holds ``reveal`` errands, in the order it got them; robots refill in index order."""
    n = pos.shape[1]
    queue = [deque() for _ in range(n)]
    nxt = 0

    def fill(i):
        nonlocal nxt
        while len(queue[i]) < reveal:
            queue[i].append(errands[nxt % len(errands)])
            nxt += 1

    for i in range(n):
        fill(i)
    done = 0
    for t in range(1, pos.shape[0]):
        freed = []
        for i in range(n):
            if pos[t, i] == queue[i][0]:
                queue[i].popleft()
                done += 1
                freed.append(i)
        for i in freed:
            fill(i)
    return done


def _recount_roundrobin(pos, errands):
    n = pos.shape[1]
    k = [0] * n
    done = 0
    for t in range(1, pos.shape[0]):
        for i in range(n):
            if pos[t, i] == errands[(i + k[i] * n) % len(errands)]:
                k[i] += 1
                done += 1
    return done


# ------------------------------------------------------- LoRR 2023 'roundrobin_fixed' problems
def test_roundrobin_fixed_problem_runs_each_robots_errands_once(tmp_path):
    # was: "unknown strategy 'roundrobin_fixed'" although the LoRR 2023 start-kit runs it
    # (FixedAssignSystem: robot i gets errands i, i+n, ... and nothing after them)
    p = _problem(tmp_path, taskAssignmentStrategy="roundrobin_fixed")
    pos, k = _run(tmp_path, [p, "--steps", 150, "--seed", 1])
    assert pos.shape == (151, 6) and pos[0].tolist() == AGENTS[:6]
    _legal(pos, _free_cells(MAP), 11)
    assert validate(load_floor(p), pos[0], pos) is None
    total, per_robot = _recount_fixed(pos, TASKS)
    assert k["tasks_completed"] == total and k["task_assignment"] == "roundrobin_fixed"
    # 40 errands over 6 robots: robots 0-3 have 7, robots 4-5 have 6; once done, they park
    assert total <= len(TASKS)
    if per_robot == [7, 7, 7, 7, 6, 6]:
        assert k["robots_out_of_tasks"] == 6


def test_roundrobin_fixed_robot_without_errands_stays_put():
    # more robots than errands: robots n_tasks.. have none from the start and count nothing
    t = ErrandTasks([5, 6], 4, strategy="roundrobin_fixed")

    class P:
        n_robots = 4
        positions = np.array([0, 1, 2, 3])
        finished = np.array([True, True, True, True])
    goals = t.start(P)
    assert goals.tolist() == [5, 6, 2, 3] and t.idle == 2
    t.update(P)                                  # every robot "finished": only 0 and 1 count
    assert t.completed == 2 and t.idle == 4 and t.kpis(1)["robots_out_of_tasks"] == 4


# ------------------------------------------------------- greedy with numTasksReveal > 1
def test_greedy_robots_hold_num_tasks_reveal_errands(tmp_path):
    # was: numTasksReveal ignored under greedy (robot i started on errand i, not on errand
    # i * reveal), so the errand sequence and the count differed from the LoRR 2023 system
    p = _problem(tmp_path, taskAssignmentStrategy="greedy", numTasksReveal=3)
    pos, k = _run(tmp_path, [p, "--steps", 200, "--seed", 1])
    _legal(pos, _free_cells(MAP), 11)
    assert k["tasks_completed"] == _recount_greedy(pos, TASKS, 3)
    assert k["tasks_completed"] != _recount_greedy(pos, TASKS, 1)


def test_greedy_reveal_one_unchanged_and_list_order():
    t = ErrandTasks([10, 11, 12, 13, 14, 15, 16], 2, strategy="greedy", reveal=2)

    class P:
        n_robots = 2
        positions = np.array([0, 1])
        finished = np.array([False, False])
    assert t.start(P).tolist() == [10, 12]           # robot 0 holds 10, 11; robot 1 12, 13
    P.finished = np.array([True, True])
    assert t.update(P).tolist() == [11, 13]          # fronts popped; 14 and 15 to the backs
    assert t.update(P).tolist() == [14, 15]
    with pytest.raises(ValueError, match="numTasksReveal"):
        ErrandTasks([1, 2], 2, strategy="greedy", reveal=0.5)


# ------------------------------------------------------- errands reached during a rescue
# a 18 x 2 corridor map with 16 robots: PIBT locks up, LaCAM rescues move robots
CORRIDOR = ("type octile\nheight 18\nwidth 2\nmap\n"
            + "\n".join(["..", "..", "..", "..", "@.", ".@", "@.", "..", "..", "..", "..", "..",
                         "..", "..", ".@", "..", "..", ".@"]) + "\n")
C_AGENTS = [30, 24, 25, 33, 16, 26, 14, 34, 13, 23, 21, 22, 18, 28, 27, 15]
C_TASKS = [16, 19, 30, 26, 27, 13, 30, 28, 17, 25, 28, 14, 14, 17, 13, 25, 16, 25, 30, 18, 24,
           26, 25, 18, 25, 17, 26, 18, 19, 34, 28, 15, 13, 14, 20, 32, 14, 15, 15, 18, 32, 19,
           25, 13, 30, 24, 25, 34, 25, 14, 30, 24, 26]


def test_robot_moved_onto_its_errand_by_a_rescue_completes_it(tmp_path):
    # was: robots moved by a rescue plan (forced) skipped the arrival check, so one standing on
    # its errand cell for steps did not complete it: kpis.json's tasks_completed (136) was
    # below the count from paths.npz (140)
    (tmp_path / "c.map").write_text(CORRIDOR)
    (tmp_path / "a.agents").write_text(f"{len(C_AGENTS)}\n" + "\n".join(map(str, C_AGENTS)) + "\n")
    (tmp_path / "t.tasks").write_text(f"{len(C_TASKS)}\n" + "\n".join(map(str, C_TASKS)) + "\n")
    pos, k = _run(tmp_path, [tmp_path / "c.map", "--agents", tmp_path / "a.agents",
                             "--tasks", tmp_path / "t.tasks", "--steps", 600, "--seed", 9])
    assert k["rescues"] > 0, "no rescue happened: the test no longer covers forced robots"
    _legal(pos, _free_cells(CORRIDOR), 2)
    assert pos[0].tolist() == C_AGENTS
    assert k["tasks_completed"] == _recount_roundrobin(pos, C_TASKS)


# ------------------------------------------------------- the goal streams against LoRR's systems
class _Fake:
    """A planner stand-in: robots stand where the test says; ``finished`` as given."""

    def __init__(self, n):
        self.n_robots = n
        self.positions = np.arange(n) + 1000
        self.finished = np.zeros(n, bool)


def _oracle_goals(strategy, errands, n, reveal, finished_steps):
    """Goals step by step of LoRR 2023's InfAssignSystem / FixedAssignSystem / TaskAssignSystem
    (None: a robot with no task), given which robots finish at each step."""
    m = len(errands)
    queue = [deque() for _ in range(n)]
    k = [0] * n
    nxt = 0

    def fill(i):
        nonlocal nxt
        if strategy == "greedy":
            while len(queue[i]) < reveal:
                queue[i].append(errands[nxt % m])
                nxt += 1
        elif not queue[i]:
            j = i + k[i] * n
            if strategy == "roundrobin":
                queue[i].append(errands[j % m])
            elif j < m:
                queue[i].append(errands[j])

    for i in range(n):
        fill(i)
    out = [[q[0] if q else None for q in queue]]
    for fin in finished_steps:
        done = [i for i in range(n) if fin[i] and queue[i]]
        for i in done:
            queue[i].popleft()
            k[i] += 1
        for i in done:
            fill(i)
        out.append([q[0] if q else None for q in queue])
    return out


@pytest.mark.parametrize("strategy", ["roundrobin", "roundrobin_fixed", "greedy"])
def test_errand_goals_follow_the_lorr_2023_task_systems(strategy):
    hyp = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hyp.settings(max_examples=60, deadline=None)
    @hyp.given(errands=st.lists(st.integers(0, 30), min_size=1, max_size=12),
               n=st.integers(1, 5), reveal=st.integers(1, 3), data=st.data())
    def check(errands, n, reveal, data):
        steps = data.draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), max_size=15))
        t = ErrandTasks(errands, n, strategy=strategy, reveal=reveal, prefetch=False)
        p = _Fake(n)
        want = _oracle_goals(strategy, errands, n, reveal, steps)
        goals = t.start(p)
        done = 0
        for s, fin in enumerate([None] + steps):
            if fin is not None:
                p.finished = np.array(fin)
                done += sum(1 for i in range(n) if fin[i] and want[s - 1][i] is not None)
                goals = t.update(p)
            for i in range(n):
                if want[s][i] is None:          # parked: it keeps the goal it had
                    assert t.task[i] < 0
                else:
                    assert goals[i] == want[s][i], (s, i)
            assert t.completed == done

    check()


def test_roundrobin_fixed_parked_robots_come_to_rest(tmp_path):
    # two robots whose last errands are one cell: the first parked there was pushed off, the
    # second finished there, and the two pushed each other to and fro for the rest of the run
    (tmp_path / "m.map").write_text("type octile\nheight 5\nwidth 7\nmap\n.......\n.@@.@@.\n"
                                    "..G.T..\n.O@.W@.\n.......\n")
    (tmp_path / "a.agents").write_text("2\n0\n6\n")
    (tmp_path / "t.tasks").write_text("5\n3\n30\n1\n3\n3\n")
    (tmp_path / "p.json").write_text(json.dumps({
        "mapFile": "m.map", "agentFile": "a.agents", "taskFile": "t.tasks", "teamSize": 2,
        "taskAssignmentStrategy": "roundrobin_fixed"}))
    pos, k = _run(tmp_path, [tmp_path / "p.json", "--steps", 80])
    total, per_robot = _recount_fixed(pos, [3, 30, 1, 3, 3])
    assert k["tasks_completed"] == total == 5 and k["robots_out_of_tasks"] == 2
    assert (pos[-30:] == pos[-1]).all()                 # at rest once the errands ran out


@pytest.mark.parametrize("strategy", ["greedy", "roundrobin_fixed"])
def test_prefetch_of_the_next_errand_changes_no_plan(tmp_path, strategy):
    # the errand after the current one is now known for greedy lists (reveal > 1) and fixed
    # lists: its table is asked for ahead; plans must be the same as without prefetching
    from sorter.agv.lifelong import make_run, simulate
    from sorter.layout.lorr import load_lorr_problem
    prob = load_lorr_problem(_problem(tmp_path))
    runs = []
    for prefetch in (False, True):
        planner, _ = make_run(prob.floor, 6, prob.starts, seed=0, errands=prob.tasks,
                              dwell_chute=0, dwell_induct=0)
        tasks = ErrandTasks(prob.tasks, 6, strategy=strategy, prefetch=prefetch, reveal=3)
        r = simulate(planner, tasks, 150)
        runs.append((r.positions, r.tasks_completed, planner.tables.prefetched))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert runs[1][2] > 0                                # tables were asked for ahead
    assert runs[0][1] == (_recount_greedy(runs[0][0], TASKS, 3) if strategy == "greedy"
                          else _recount_fixed(runs[0][0], TASKS)[0])

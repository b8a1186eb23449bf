"""Rescues (``sorter/agv/lacam.py``): the compiled successor generator against its plain-Python
oracle, the search against an exhaustive search over joint configurations (found exactly when
one exists), every plan through the validator, and the planner's liveness on crowded floors
with dead ends where PIBT alone gridlocks."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from naive_lacam import crowded_floor, generate, reachable, search_reference
from naive_pibt import bfs_distances
from sorter.agv import MoveGraph, Planner
from sorter.agv.lacam import _generate, bfs_tables, search, shortcut
from sorter.agv.tasks import strongly_connected_parts
from sorter.agv.validate import check_paths
from sorter.errors import InputError
from sorter.layout import Floor
from test_planner import check_rotation_plan


def random_grid(rng, h, w, p_block):
    cells = np.where(rng.random((h, w)) < p_block, 0, 1).astype(np.int8)
    if cells.sum() < 2:
        cells[0, :2] = 1
    return Floor(cells, check=False)


def one_step_legal(fadj, a, b):
    """Every robot waits or takes one move; distinct cells; no swaps."""
    if len(set(b.tolist())) != b.size:
        return False
    for i in range(a.size):
        if a[i] != b[i] and b[i] not in fadj[a[i]]:
            return False
    where = {int(c): i for i, c in enumerate(a)}
    for i in range(a.size):
        j = where.get(int(b[i]))
        if j is not None and j != i and b[j] == a[i]:
            return False
    return True


# ------------------------------------------------------------------ successor generator
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 6), w=st.integers(2, 7),
       density=st.floats(0.1, 1.0), n_cons=st.integers(0, 4), goals=st.booleans())
def test_generator_matches_plain_python(seed, h, w, density, n_cons, goals):
    rng = np.random.default_rng(seed)
    f = random_grid(rng, h, w, 0.2)
    g = MoveGraph.of(f)
    n = max(1, min(g.n_free - 1 if g.n_free > 1 else 1, int(density * g.n_free)))
    cfg = rng.choice(g.n_free, n, replace=False).astype(np.int32)
    order = rng.permutation(n).astype(np.int64)
    # constraints: random robots to random neighbours or their own cell (may conflict)
    who = rng.choice(n, min(n, n_cons), replace=False)
    at = []
    for i in who:
        opts = [int(cfg[i])] + [int(u) for u in g.fadj[cfg[i]] if u >= 0]
        at.append(opts[rng.integers(len(opts))])
    dist = bfs_tables(g.radj, [[int(c)] for c in rng.choice(g.n_free, 3)])
    grow = (rng.integers(-1, 3, n) if goals else np.full(n, -1)).astype(np.int32)
    salt = int(rng.integers(0, 2**63))
    out = np.empty(n, np.int32)
    args = [np.full(g.n_free, -1, np.int32) for _ in range(2)]
    st_a, st_c = np.empty(n + 1, np.int64), np.empty((n + 1, 5, 2), np.int64)
    st_n, st_k = np.empty(n + 1, np.int64), np.empty(n + 1, np.int64)
    ok = _generate(g.fadj, dist, grow, cfg, order, np.asarray(who, np.int64),
                   np.asarray(at, np.int64), np.uint64(salt), out, *args, st_a, st_c, st_n, st_k)
    want = generate(g.fadj.tolist(), dist.tolist(), grow.tolist(), cfg.tolist(), order.tolist(),
                    list(zip(who.tolist(), at)), salt)
    assert ok == (want is not None)
    assert (args[0] == -1).all() and (args[1] == -1).all()       # scratch left clean
    if ok:
        assert out.tolist() == want
        assert one_step_legal(g.fadj, cfg, out)
        assert all(out[i] == c for i, c in zip(who, at))


# ------------------------------------------------------------------ the search
@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 3), w=st.integers(2, 4),
       n=st.integers(2, 3), oneway=st.booleans())
def test_search_finds_a_plan_exactly_when_one_exists(seed, h, w, n, oneway):
    """Completeness, checked by brute force on tiny floors: found <=> reachable; "none" only
    when no joint plan brings the robot to its goal; every step of a found plan legal."""
    rng = np.random.default_rng(seed)
    cells = np.where(rng.random((h, w)) < 0.2, 0, 1).astype(np.int8)
    f = Floor(cells, check=False)
    moves = f.moves.copy()
    if oneway:
        moves[(rng.random(moves.shape) < 0.25) & (moves >= 0)] = -1
    g = MoveGraph(moves, np.where(cells.ravel() > 0, 1, 0))
    if g.n_free <= n:
        return
    start = rng.choice(g.n_free, n, replace=False).astype(np.int32)
    goal = int(rng.integers(g.n_free))
    dist = bfs_tables(g.radj, [[goal]])
    grow = np.full(n, -1, np.int32)
    grow[0] = 0
    fixed = [1] if n == 3 and rng.random() < 0.3 else []
    path, outcome, _ = search(g.fadj, dist, grow, start, 0, fixed, seed=seed,
                              max_calls=10**6)
    truth = reachable(g.fadj.tolist(), dist[0].tolist(), start.tolist(), 0, fixed)
    assert outcome == ("found" if truth else "none")
    if truth:
        assert np.array_equal(path[0], start) and dist[0][path[-1][0]] == 0
        for a, b in zip(path, path[1:]):
            assert one_step_legal(g.fadj, a, b)
            assert all(a[i] == b[i] for i in fixed)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(2, 6), w=st.integers(2, 7),
       density=st.floats(0.2, 0.95), oneway=st.booleans(), n_fixed=st.integers(0, 2),
       budget=st.sampled_from([3, 50, 2000]))
def test_compiled_search_equals_the_plain_python_loop(seed, h, w, density, oneway, n_fixed,
                                                      budget):
    """The compiled LaCAM loop (hash table, linked constraint queues) takes exactly the steps
    of the plain-Python one: same outcome, generations and configurations."""
    rng = np.random.default_rng(seed)
    cells = np.where(rng.random((h, w)) < 0.2, 0, 1).astype(np.int8)
    f = Floor(cells, check=False)
    moves = f.moves.copy()
    if oneway:
        moves[(rng.random(moves.shape) < 0.2) & (moves >= 0)] = -1
    g = MoveGraph(moves, np.where(cells.ravel() > 0, 1, 0))
    if g.n_free < 3:
        return
    n = max(2, min(g.n_free - 1, int(density * g.n_free)))
    start = rng.choice(g.n_free, n, replace=False).astype(np.int32)
    dist = bfs_tables(g.radj, [[int(rng.integers(g.n_free))]])
    grow = np.full(n, -1, np.int32)
    grow[0] = 0
    fixed = list(range(1, 1 + min(n_fixed, n - 1)))
    part = strongly_connected_parts(g.fadj) if oneway else None
    a = search(g.fadj, dist, grow, start, 0, fixed, seed=seed, max_calls=budget, part=part,
               shorten=False)
    b = search_reference(g.fadj, dist, grow, start, 0, fixed, seed=seed, max_calls=budget,
                         part=part)
    assert a[1:] == b[1:]
    assert (a[0] is None) == (b[0] is None)
    if a[0] is not None:
        assert len(a[0]) == len(b[0]) and all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))


def test_search_gets_a_robot_into_a_filled_pocket():
    """The pocket PIBT cannot solve: the target's goal is the end of a dead end filled by two
    robots whose only way out is past the target."""
    f = Floor.from_ascii("""
    @.@@@@
    @.@@@@
    ......
    .@@@@.
    ......
    """)
    g = MoveGraph.of(f)
    start = g.fidx[[f.cell(2, 4), f.cell(1, 1), f.cell(0, 1)]].astype(np.int32)
    dist = bfs_tables(g.radj, [[int(g.fidx[f.cell(0, 1)])]])
    grow = np.array([0, -1, -1], np.int32)
    path, outcome, calls = search(g.fadj, dist, grow, start, 0, seed=1)
    assert outcome == "found" and dist[0][path[-1][0]] == 0
    cells = np.array([g.free_cells[p] for p in path])
    check_paths(f, cells[0], cells)
    # plain PIBT (the planner without rescues) leaves the robot short of it
    p = Planner(f, 3, g.free_cells[start], seed=0, dwell_chute=0, dwell_induct=0,
                rescue_after=0)
    goals = g.free_cells[start].copy()
    goals[0] = f.cell(0, 1)
    for _ in range(200):
        p.step(goals)
    assert p.positions[0] != f.cell(0, 1)


def test_search_ends_without_a_plan_on_a_line_where_robots_cannot_pass():
    f = Floor.from_ascii("....")
    g = MoveGraph.of(f)
    start = np.array([0, 1], np.int32)          # robot 0 left of robot 1; goal: the right end
    dist = bfs_tables(g.radj, [[3]])
    path, outcome, _ = search(g.fadj, dist, np.array([0, -1], np.int32), start, 1 - 1,
                              seed=0, max_calls=10**5)
    # robot 0 can reach cell 3 only if robot 1 leaves the line: impossible, it is a line
    assert path is None and outcome == "none"


def test_search_gives_up_at_its_budget():
    f = Floor.from_ascii("....")
    g = MoveGraph.of(f)
    dist = bfs_tables(g.radj, [[3]])
    path, outcome, calls = search(g.fadj, dist, np.array([0, -1], np.int32),
                                  np.array([0, 1], np.int32), 0, seed=0, max_calls=5)
    assert path is None and outcome == "budget" and calls == 5


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(2, 60))
def test_shortcut_keeps_ends_and_legal_steps(seed, length):
    """Random legal walks of configurations (single robots stepping) are shortened to legal
    one-step sequences with the same ends."""
    rng = np.random.default_rng(seed)
    f = random_grid(rng, 4, 5, 0.15)
    g = MoveGraph.of(f)
    if g.n_free < 3:
        return
    cfg = rng.choice(g.n_free, 2, replace=False).astype(np.int32)
    path = [cfg.copy()]
    for _ in range(length):
        i = rng.integers(2)
        opts = [u for u in g.fadj[cfg[i]] if u >= 0 and u not in cfg]
        if opts:
            cfg = cfg.copy()
            cfg[i] = opts[rng.integers(len(opts))]
            path.append(cfg)
    short = shortcut(g.fadj, path, window=int(rng.integers(2, 80)))
    assert np.array_equal(short[0], path[0]) and np.array_equal(short[-1], path[-1])
    assert len(short) <= len(path)
    for a, b in zip(short, short[1:]):
        assert one_step_legal(g.fadj, a, b)


def test_bfs_tables_match_plain_bfs():
    rng = np.random.default_rng(3)
    f = random_grid(rng, 7, 9, 0.25)
    g = MoveGraph.of(f)
    goals = [rng.choice(g.n_free, k, replace=False) for k in (1, 2, 3)]
    d = bfs_tables(g.radj, goals)
    for row, gs in zip(d, goals):
        want = bfs_distances(f.moves.tolist(), [int(g.free_cells[c]) for c in gs])
        for c in range(g.n_free):
            assert (row[c] >= 1 << 30) == (int(g.free_cells[c]) not in want)
            if row[c] < 1 << 30:
                assert row[c] == want[int(g.free_cells[c])]


# ------------------------------------------------------------------ the planner's rescues
def lifelong(f, cells, starts, rng, steps, **kw):
    n = starts.size
    p = Planner(f, n, starts, seed=1, dwell_chute=0, dwell_induct=0, **kw)
    goals = rng.choice(cells, n).astype(np.int32)
    last = np.zeros(n, np.int64)
    path, heads = [p.positions.copy()], [p.headings]
    for t in range(1, steps + 1):
        path.append(p.step(goals).copy())
        heads.append(p.headings)
        fin = np.flatnonzero(p.finished)
        last[fin] = t
        goals = goals.copy()
        goals[fin] = rng.choice(cells, fin.size)
    return p, last, np.array(path), np.array(heads)


@pytest.mark.parametrize("case", [(55, 8, 11, 0.1, 0.3), (0, 6, 9, 0.3, 0.7),
                                  (20, 11, 9, 0.3, 0.5)])
def test_rescues_keep_every_robot_working_where_pibt_gridlocks(case):
    """Floors with pockets where PIBT (with its swap) leaves robots stuck for good: with
    rescues every robot keeps finishing tasks to the end, and the plan stays legal."""
    steps = 1500
    stuck = {}
    for after in (0, 128):
        f, cells, starts, rng = crowded_floor(*case)
        p, last, path, _ = lifelong(f, cells, starts, rng, steps, rescue_after=after)
        check_paths(f, starts, path)
        stuck[after] = int((steps - last > steps // 2).sum())
        if after:
            assert p.rescues > 0
    assert stuck[0] > 0 and stuck[128] == 0, stuck


def test_rescues_with_rotations_follow_the_action_model():
    f, cells, starts, rng = crowded_floor(28, 9, 11, 0.3, 0.5)
    steps = 2500
    p, last, path, heads = lifelong(f, cells, starts, rng, steps, rotation=True)
    check_paths(f, starts, path)
    check_rotation_plan(f, path, heads)
    assert p.rescues > 0
    assert (last > 0).all()                        # every robot finished a task


def test_rescues_are_deterministic_and_off_when_asked():
    runs = []
    for after in (128, 128, 0):
        f, cells, starts, rng = crowded_floor(55, 8, 11, 0.1, 0.3)
        p, _, path, _ = lifelong(f, cells, starts, rng, 600, rescue_after=after)
        runs.append((path, p.rescues))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1] > 0
    assert runs[2][1] == 0 and not np.array_equal(runs[0][0], runs[2][0])


def test_rescue_plan_is_dropped_when_a_robot_is_held():
    """A fault (hold) mid-rescue ends the plan; the held robot stays put and plans stay legal."""
    f, cells, starts, rng = crowded_floor(55, 8, 11, 0.1, 0.3)
    n = starts.size
    p = Planner(f, n, starts, seed=1, dwell_chute=0, dwell_induct=0, rescue_after=128)
    goals = rng.choice(cells, n).astype(np.int32)
    path = [p.positions.copy()]
    held_at = None
    for t in range(1, 1200):
        if held_at is None and p._plan is not None:
            victim = int(np.flatnonzero(p._forced >= 0)[0]) if (p._forced >= 0).any() else 0
            p.hold([victim])
            held_at = (t, victim, int(p.positions[victim]))
            assert p._plan is None and (p._forced == -1).all() and not p._keep_out.any()
        path.append(p.step(goals).copy())
        fin = np.flatnonzero(p.finished)
        goals = goals.copy()
        goals[fin] = rng.choice(cells, fin.size)
        if held_at is not None and t == held_at[0] + 50:
            p.release([held_at[1]])
    assert held_at is not None
    path = np.array(path)
    check_paths(f, starts, path)
    t0, victim, cell = held_at
    assert (path[t0:t0 + 50, victim] == cell).all()


def test_rescue_after_is_validated():
    f = Floor.from_ascii("....")
    for bad in (-1, 1.5, "8", True):
        with pytest.raises(InputError, match="rescue_after"):
            Planner(f, 1, [0], rescue_after=bad)


MAZE = """
@@@@@@@@@@@@@
@.@.........@
@.@.@@@@@@@.@
@.@.@.....@.@
@.@.@@@.@.@.@
@.@.....@.@.@
@.@@@@@@@@@.@
@...........@
@@@@@@@@@@@.@
@...........@
@.@@@@@@@@@@@
@...........@
@@@@@@@@@@@@@
"""


def test_sorter_mapf_rescues_robots_in_a_maze(tmp_path, capsys):
    """A tree-like maze (a DFS maze: no cycles) with 14 robots and random goals: PIBT alone
    locks up; with rescues (the default) robots keep finishing tasks. Paths stay legal."""
    import json

    from sorter.cli import main
    fl = tmp_path / "maze.txt"
    fl.write_text(MAZE.strip() + "\n")
    floor = Floor.from_ascii(MAZE)
    got = {}
    for after in ("0", None):
        out = tmp_path / f"run{after}"
        extra = [] if after is None else ["--rescue-after", after]
        assert main(["mapf", str(fl), "--robots", "14", "--steps", "1500", "--scenario", "random",
                     "--seed", "3", "--out", str(out)] + extra) == 0
        k = json.loads((out / "kpis.json").read_text())
        with np.load(out / "paths.npz") as z:
            check_paths(floor, z["positions"][0], z["positions"])
        got[after] = k
    assert got["0"]["rescues"] == 0 and got[None]["rescues"] > 0
    assert got[None]["rescue_after"] == 128
    assert got[None]["tasks_completed"] > 2 * got["0"]["tasks_completed"]
    assert "rescues" in capsys.readouterr().out
    assert main(["mapf", str(fl), "--robots", "4", "--rescue-after", "-1"]) == 2
    assert "--rescue-after" in capsys.readouterr().err


def test_default_patience_is_doubled_with_rotation():
    """Rotation queues are slower (every turn costs a step): the default patience is two
    steps per robot (at one, ordinary queues of 400-500 robots on the medium sorting floor
    were rescued and the floor sorted half as much); off above RESCUE_ROBOTS."""
    from sorter.agv.pibt import RESCUE_ROBOTS
    f = Floor.from_ascii("\n".join(["." * 30] * 30))
    free = np.asarray(f.free_cells)
    for n, rot, want in [(10, False, 128), (10, True, 128), (100, True, 200),
                         (300, False, 300), (300, True, 600)]:
        p = Planner(f, n, free[:n], rotation=rot)
        assert p.rescue_after == want, (n, rot)
    big = Floor.from_ascii("\n".join(["." * 40] * 30))
    n = RESCUE_ROBOTS + 1
    assert Planner(big, n, np.asarray(big.free_cells)[:n], rotation=True).rescue_after == 0
    assert Planner(f, 10, free[:10], rotation=True, rescue_after=50).rescue_after == 50

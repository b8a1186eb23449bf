"""QA18 (research): the robot planner on floors nobody tried, as a MAPF researcher drives the
Python API (``Planner``, ``make_run``, ``simulate``, ``validate``, task streams).

Floors: one free cell, 2 x 1 and 1 x 2, 1-wide corridors with dead ends, rings, combs, floors
full of robots (robots = free cells, and free cells - 1), directed floors with sinks, a
1 x 5000 / 5000 x 1 corridor; robots starting on inducts, drop cells or their own goals, all
sharing one goal, goals changing every step or never, headings under ``rotation=True``.

Every plan is checked by the checker of this file (written here, not ``sorter.agv.validate``):
free cells only, one move of ``floor.moves`` or a wait per step, no vertex or swap conflicts,
and with rotations a move only along the heading, a turn of at most 90 degrees per step.
Liveness is held against an exhaustive search over joint configurations of tiny floors: every
robot whose goal some reachable configuration puts it on reaches that goal.
"""
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sorter.agv import ErrandTasks, Planner, SortingTasks, make_run, simulate
from sorter.agv.validate import validate
from sorter.errors import InputError
from sorter.layout import Floor

_STEP = ((0, 1), (1, 0), (0, -1), (-1, 0))       # east, south, west, north


# ------------------------------------------------------------------ the independent checker
def plan_problems(floor, paths, headings=None, starts=None):
    """Everything illegal in a plan, as tuples (empty: legal). Plain Python, cell by cell."""
    P = np.asarray(paths)
    h, w = floor.height, floor.width
    kinds = np.asarray(floor.cells).ravel()
    moves = np.asarray(floor.moves)
    out = []
    if starts is not None and [int(c) for c in P[0]] != [int(c) for c in starts]:
        out.append(("start",))
    for t in range(P.shape[0]):
        row = [int(c) for c in P[t]]
        out += [("cell", t, i, c) for i, c in enumerate(row) if not 0 <= c < h * w or kinds[c] == 0]
        if len(set(row)) != len(row):
            out.append(("vertex", t))
        if t == 0:
            continue
        prev = [int(c) for c in P[t - 1]]
        where = {c: i for i, c in enumerate(prev)}
        for i, (a, b) in enumerate(zip(prev, row)):
            if a == b:
                if headings is not None and (int(headings[t, i]) - int(headings[t - 1, i])) % 4 == 2:
                    out.append(("u-turn", t, i))
                continue
            (r, c), (r2, c2) = divmod(a, w), divmod(b, w)
            d = next((k for k, (dr, dc) in enumerate(_STEP) if (r + dr, c + dc) == (r2, c2)), None)
            if d is None:
                out.append(("jump", t, i, a, b))
                continue
            if moves[a, d] != b:
                out.append(("one-way", t, i, a, b))
            if headings is not None and not int(headings[t - 1, i]) == int(headings[t, i]) == d:
                out.append(("heading", t, i))
            j = where.get(b)
            if j is not None and j != i and row[j] == a:
                out.append(("swap", t, i, j))
    return out


def drive(floor, n, starts, goals_of, steps, **kw):
    """Run a planner ``steps`` steps; ``goals_of(planner, t, last_goals)`` gives the goals."""
    p = Planner(floor, n, np.asarray(starts), **kw)
    path, heads, fins = [p.positions.copy()], [p.headings], []
    goals = np.asarray(goals_of(p, 0, None), np.int64)
    for t in range(steps):
        path.append(p.step(goals).copy())
        heads.append(p.headings)
        fins.append(p.finished)
        goals = np.asarray(goals_of(p, t + 1, goals), np.int64)
    path, heads = np.array(path), np.array(heads)
    assert plan_problems(floor, path, heads if kw.get("rotation") else None, starts) == []
    assert validate(floor, np.asarray(starts), path) is None
    return p, path, heads, np.array(fins).reshape(steps, n)


def joint_reach(moves, starts, goals, limit=60_000):
    """For each robot: does a configuration reachable from ``starts`` (all robots moving at
    once: a wait or a move each, no two on a cell, no two swapping) put it on its goal?"""
    start = tuple(int(c) for c in starts)
    n = len(start)
    opts = {}
    seen = {start}
    todo = deque([start])
    can = [start[i] == goals[i] for i in range(n)]
    while todo:
        s = todo.popleft()
        occ = {c: i for i, c in enumerate(s)}
        nxt = [0] * n

        def rec(i, used):
            if i == n:
                t = tuple(nxt)
                if t not in seen and not any(
                        t[k] != s[k] and occ.get(t[k], k) != k and t[occ[t[k]]] == s[k]
                        for k in range(n)):
                    seen.add(t)
                    todo.append(t)
                    for k in range(n):
                        can[k] = can[k] or t[k] == goals[k]
                return
            c = s[i]
            if c not in opts:
                opts[c] = [c] + [int(u) for u in moves[c] if u >= 0]
            for u in opts[c]:
                if u not in used:
                    nxt[i] = u
                    used.add(u)
                    rec(i + 1, used)
                    used.discard(u)

        rec(0, set())
        assert len(seen) <= limit
    return can


def test_joint_reach_oracle_on_known_cases():
    line = Floor.from_ascii("....")
    assert joint_reach(line.moves, [0, 1], [2, 0]) == [True, False]     # cannot pass on a line
    assert joint_reach(line.moves, [0, 1], [3, 3]) == [False, True]
    assert joint_reach(line.moves, [0, 1], [2, 3]) == [True, True]
    ring = Floor.from_ascii("..\n..")
    assert joint_reach(ring.moves, [0, 1, 3, 2], [1, 3, 2, 0]) == [True] * 4   # full: rotate


# ------------------------------------------------------------------ tiny and degenerate floors
TINY = {
    "one_cell": ".",
    "one_cell_walled": "@@@\n@.@\n@@@",
    "2x1": ".\n.",
    "1x2": "..",
    "ring": "...\n.@.\n...",
    "corridor_dead_ends": "@.@@\n....\n@@.@",
    "comb": ".....\n.@.@.\n.@.@.",
    "line": "......",
}


def _goal_modes(free, starts, n, rng):
    g0 = rng.choice(free, n)
    share = np.full(n, rng.choice(free))

    def lifelong(p, t, g):
        if g is None:
            return g0
        g = g.copy()
        fin = np.flatnonzero(p.finished)
        g[fin] = rng.choice(free, fin.size)
        return g
    return {"fixed": lambda p, t, g: g0, "own": lambda p, t, g: starts,
            "shared": lambda p, t, g: share, "every_step": lambda p, t, g: rng.choice(free, n),
            "lifelong": lifelong}


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("rotation", [False, True])
def test_plans_on_tiny_floors_are_legal_in_every_goal_mode(name, rotation):
    f = Floor.from_ascii(TINY[name])
    free = f.free_cells
    for n in sorted({1, max(1, free.size // 2), max(1, free.size - 1), free.size}):
        for mode in ("fixed", "own", "shared", "every_step", "lifelong"):
            rng = np.random.default_rng(n * 7 + len(mode))
            starts = rng.choice(free, n, replace=False)
            goals_of = _goal_modes(free, starts, n, rng)[mode]
            p, path, _, fins = drive(f, n, starts, goals_of, 40, rotation=rotation,
                                     dwell_chute=0, dwell_induct=0, rescue_after=8,
                                     guidance="lanes+flow" if n % 2 else "none")
            if mode == "own":             # on its goal from the start: done at every step
                assert fins.all(), (name, n)
                assert (path == starts).all()


def test_a_full_ring_rotates_and_keeps_finishing():
    """Robots on every cell of a ring: only whole-cycle rotations move them (legal: no two
    robots swap), and they keep completing goals."""
    f = Floor.from_ascii(".....\n.@@@.\n.....")
    free = f.free_cells
    rng = np.random.default_rng(0)
    starts = rng.permutation(free)
    goals_of = _goal_modes(free, starts, free.size, rng)["lifelong"]
    p, path, _, fins = drive(f, free.size, starts, goals_of, 300, dwell_chute=0,
                             dwell_induct=0)
    assert (fins.sum(axis=0) >= 5).all()
    moved = (path[1:] != path[:-1]).all(axis=1)
    assert moved.any()                      # some steps move every robot at once


# ------------------------------------------------------------------ liveness against the oracle
@st.composite
def tiny_instances(draw):
    h, w = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    free = np.array(draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w)))
    free[draw(st.integers(0, h * w - 1))] = True
    free[draw(st.integers(0, h * w - 1))] = True
    grid = free.reshape(h, w).astype(np.int8)
    f = Floor(grid, check=False)
    cells = f.free_cells
    n = draw(st.integers(1, min(4, cells.size)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return f, rng.choice(cells, n, replace=False), rng.choice(cells, n), draw(st.booleans())


@settings(max_examples=25, deadline=None)
@given(tiny_instances())
def test_every_robot_that_can_reach_its_goal_does(inst):
    """Goals that never change: each robot some reachable configuration puts on its goal
    finishes it within 500 steps (rescues after 16 steps without progress), and no robot
    the exhaustive search rules out ever does."""
    f, starts, goals, rotation = inst
    can = joint_reach(f.moves, starts, goals.tolist())
    p, _, _, fins = drive(f, starts.size, starts, lambda p, t, g: goals, 500,
                          rotation=rotation, dwell_chute=0, dwell_induct=0, rescue_after=16)
    assert fins.any(axis=0).tolist() == can, (f.to_ascii(), starts, goals, p.rescues)


@pytest.mark.parametrize("seed", [1, 5, 9])
def test_liveness_with_the_default_patience_in_a_dead_end_corridor(seed):
    """Default ``rescue_after`` (128): two robots that must pass in a long dead end where the
    swap cannot reach the branching cell (too far for PIBT+'s pull) are both served."""
    L = 30
    f = Floor.from_ascii(".@" + "@" * (L - 2) + "\n" + "." * L + "\n" + ".@" + "@" * (L - 2))
    starts = [2 * L - 1, L + 1]                 # deep in the dead end / at its mouth
    goals = np.array([2 * L, 2 * L - 1])        # out below the branch / the dead end
    p, _, _, fins = drive(f, 2, starts, lambda p, t, g: goals, 600, seed=seed,
                          dwell_chute=0, dwell_induct=0)
    assert fins.any(axis=0).all()


# ------------------------------------------------------------------ thin and directed floors
@pytest.mark.parametrize("shape", [(1, 5000), (5000, 1)])
def test_huge_thin_floor_robots_arrive_after_exactly_their_distance(shape):
    f = Floor(np.ones(shape, np.int8))
    starts, goals = [0, 2500, 4999], np.array([2499, 4998, 4999])
    for rotation in (False, True):
        p, _, heads, fins = drive(f, 3, starts, lambda p, t, g: goals, 2520,
                                  rotation=rotation, dwell_chute=0, dwell_induct=0)
        first = fins.argmax(axis=0) + 1
        turn = 1 if rotation and shape[1] == 1 else 0     # heading east, the way is south
        assert first.tolist() == [2499 + turn, 2498 + turn, 1]
        if rotation:
            assert heads[-1, :2].tolist() == [0 if shape[0] == 1 else 1] * 2


def test_directed_floor_with_a_sink():
    """``...>>>``: the right end is a sink. A robot there never reaches a goal to the left
    (distance -1, it waits); the robot headed into the sink arrives."""
    f = Floor.from_ascii("...>>>")
    assert f.neighbours(5) == []
    p, path, _, fins = drive(f, 2, [5, 1], lambda p, t, g: np.array([0, 4]), 30,
                             dwell_chute=0, dwell_induct=0, rescue_after=4)
    assert p.distance(0) == -1 and (path[:, 0] == 5).all()
    assert fins[:, 1].any() and not fins[:, 0].any()
    assert p.rescues == 0 and p.rescue_failures == 0     # no search for an unreachable goal


# ------------------------------------------------------------------ stations and dwell
def test_robots_starting_on_inducts_and_drop_cells_that_are_their_goals():
    """A robot on its own goal completes at once and then every dwell + 1 steps: on an
    induct (dwell 1) every 2nd step, on a drop cell (dwell 5) every 6th."""
    f = Floor.from_ascii("I.....I\n..C.C..\n..D.D..\n.......")
    starts = np.array([s.cells[0] for s in f.inducts] + [s.cells[0] for s in f.chutes])
    for station_goals in (False, True):
        for rotation in (False, True):
            p, path, _, fins = drive(f, 4, starts, lambda p, t, g: starts, 30,
                                     station_goals=station_goals, rotation=rotation)
            assert fins.sum(axis=0).tolist() == [15, 15, 5, 5]
            assert (path == starts).all()


def test_all_robots_share_one_drop_cell_with_dwell():
    f = Floor.from_ascii("I.....I\n..C.C..\n..D.D..\n.......")
    starts = np.array([0, 6, 16, 18])
    goal = np.full(4, f.chutes[0].cells[0])
    for rotation in (False, True):
        p, _, _, fins = drive(f, 4, starts, lambda p, t, g: goal, 200, rotation=rotation,
                              dwell_chute=3, dwell_induct=1)
        assert (fins.sum(axis=0) >= 5).all()          # each gets its turn, again and again


# ------------------------------------------------------------------ lifelong, determinism
@pytest.mark.parametrize("rotation", [False, True])
def test_lifelong_sorting_keeps_completing_on_a_crowded_small_floor(rotation):
    f = Floor.from_ascii("I...\n.CD.\n....")
    pl, stream = make_run(f, 10, seed=1, rotation=rotation, guidance="none")
    r = simulate(pl, stream, 400)
    assert plan_problems(f, r.positions, r.headings) == []
    assert r.completed_at[199] >= 20 and r.tasks_completed - r.completed_at[199] >= 20
    assert r.delivered >= 20


def test_same_seed_same_plan_on_edge_floors_with_rescues_and_holds():
    f = Floor.from_ascii("@.@@\n....\n@@.@\n@@..")

    def once(seed):
        rng = np.random.default_rng(3)
        free = f.free_cells
        starts = rng.choice(free, 5, replace=False)
        life = _goal_modes(free, starts, 5, rng)["lifelong"]

        def goals_of(p, t, g):
            if t == 20:
                p.hold([1])
            if t == 60:
                p.release([1])
            return life(p, t, g)
        p, path, heads, _ = drive(f, 5, starts, goals_of, 150, seed=seed, rotation=True,
                                  rescue_after=8, dwell_chute=0, dwell_induct=0)
        return path, heads, p.rescues
    a, b = once(4), once(4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


# ------------------------------------------------------------------ validate on broken plans
def test_validate_names_the_first_violation_of_hand_broken_planner_plans():
    """A legal planner plan on a one-column floor with a one-way stretch, then broken by hand
    at step 5 in each way: validate() names kind, step, robots and cells, and the checker of
    this file sees the same step."""
    f = Floor.from_ascii(".\n.\nv\nv\n.\n.\n.\n@\n.")      # 9 x 1: rows 2-3 one way south
    starts = np.array([0, 6])
    p, path, _, _ = drive(f, 2, starts, lambda p, t, g: np.array([5, 6]), 8,
                          dwell_chute=0, dwell_induct=0)
    assert path[5].tolist() == [5, 6]               # down the one-way stretch in 5 moves
    cases = {
        "obstacle": ([5, 7], ("obstacle", 5, (1,), (7,))),
        "jump": ([5, 8], ("jump", 5, (1,), (6, 8))),
        "vertex": ([5, 5], ("vertex", 5, (0, 1), (5,))),
        "off_grid": ([5, 9], ("off_grid", 5, (1,), (9,))),
    }
    for what, (row, want) in cases.items():
        bad = path.copy()
        bad[5] = row
        v = validate(f, starts, bad)
        assert (v.kind, v.step, v.robots, v.cells) == want, what
        assert str(v).startswith("step 5: ")
        if what != "off_grid":
            assert min(x[1] for x in plan_problems(f, bad) if len(x) > 1) == 5
    # swap: robots side by side exchange cells; one-way: north over the one-way stretch
    bad = np.array([[4, 5], [5, 4]])
    v = validate(f, [4, 5], bad)
    assert (v.kind, v.step, v.robots, v.cells) == ("swap", 1, (0, 1), (4, 5))
    v = validate(f, [4, 0], np.array([[4, 0], [3, 0]]))
    assert (v.kind, v.step, v.robots, v.cells) == ("one_way", 1, (0,), (4, 3))
    assert [x[0] for x in plan_problems(f, [[4, 5], [5, 4]])] == ["swap", "swap"]
    assert [x[0] for x in plan_problems(f, [[4, 0], [3, 0]])] == ["one-way"]


# ------------------------------------------------------------------ boundary errors (bugs fixed)
def test_errand_cells_beyond_int32_are_refused_not_wrapped():
    """``ErrandTasks`` cast errands to int32: 2**32 + 3 became cell 3 and make_run's check
    passed it, so the robot ran to a cell the file never named. Negative cells are refused
    there too (they failed at the first step, named as 'goals')."""
    f = Floor.from_ascii("....")
    for bad in (2**32 + 3, 2**31, -1):
        with pytest.raises(InputError, match=f"errand cell {bad}") as e:
            ErrandTasks(np.array([bad, 2], np.int64), 1)
        assert e.value.field == "tasks" and "cell ids >= 0" in str(e.value)
        with pytest.raises(InputError, match=f"errand cell {bad}"):
            make_run(f, 1, starts=[0], errands=np.array([bad, 2], np.int64))
    assert ErrandTasks(np.array([3, 2], np.uint64), 1).errands.tolist() == [3, 2]


def test_simulate_and_sorting_tasks_name_a_missing_planner_stream_or_floor():
    """``simulate(None, stream, n)``, ``simulate(planner, None, n)`` and
    ``SortingTasks(None, ...)`` raised AttributeError; now an InputError (a ValueError) that
    names the argument and the expected form."""
    f = Floor.from_ascii("I...\n.CD.\n....")
    planner, stream = make_run(f, 2, seed=0)
    with pytest.raises(ValueError, match="field 'planner'.*Planner"):
        simulate(None, stream, 3)
    with pytest.raises(ValueError, match="field 'stream'.*start\\(planner\\)"):
        simulate(planner, None, 3)
    with pytest.raises(ValueError, match="field 'floor'.*Floor"):
        SortingTasks(None, 2, np.random.default_rng(0))
    assert simulate(planner, stream, 3).steps == 3    # (the checks refused nothing good)


def test_uint64_cells_beyond_int64_are_named_as_given():
    """A uint64 goal or start of 2**64 - 1 was reported as 'cell -1 is outside the grid'."""
    f = Floor.from_ascii("....")
    with pytest.raises(InputError, match="cell 18446744073709551615 is outside") as e:
        Planner(f, 1, np.array([2**64 - 1], np.uint64))
    assert e.value.field == "starts"
    p = Planner(f, 1, [0])
    with pytest.raises(InputError, match="cell 9223372036854775808 is outside") as e:
        p.step(np.array([2**63], np.uint64))
    assert e.value.field == "goals"
    assert p.step(np.array([3], np.uint64)).tolist() == [1]

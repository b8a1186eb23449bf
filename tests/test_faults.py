"""Held (faulted) robots: blocked-cell tables vs a plain BFS/Dijkstra, the cut-off check vs a
plain walk enumeration, detours around held robots, hold/release through the validator."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from naive_pibt import bfs_distances, dijkstra_distances
from sorter.agv import DistanceTables, MoveGraph, Planner
from sorter.agv.detour import cut_off
from sorter.agv.guidance import lane_costs
from sorter.agv.validate import check_paths
from sorter.errors import InputError
from sorter.layout import Floor
from test_planner import random_floor

# a wall with two gaps: the one in column 3 is the short way from row 0 to row 4
WALL = """
.......
.......
#.#.###
.......
.......
"""


def without(moves, blocked_cells):
    """The move table with every move into or out of ``blocked_cells`` removed."""
    m = np.array(moves, copy=True)
    b = set(int(c) for c in blocked_cells)
    for c in range(m.shape[0]):
        for d in range(4):
            if c in b or int(m[c, d]) in b:
                m[c, d] = -1
    return m


def table(tabs, goal, blocked_cells):
    g = tabs.graph
    mask = np.zeros(g.n_free, np.uint8)
    mask[g.fidx[np.asarray(blocked_cells, np.int64)]] = 1
    row = tabs.acquire(("t", tuple(goal), tuple(blocked_cells)), goal, blocked=mask)
    t = tabs.values(row).astype(np.int64)
    out = np.full(g.n_cells, -1, np.int64)
    out[g.free_cells] = np.where(t == tabs.unreachable, -1, t)
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 8), w=st.integers(1, 8),
       weighted=st.booleans())
def test_blocked_tables_match_plain_search_without_the_blocked_cells(seed, h, w, weighted):
    rng = np.random.default_rng(seed)
    f = random_floor(rng, h, w)
    free = f.free_cells
    if free.size == 0:
        return
    goal = [int(x) for x in rng.choice(free, min(2, free.size), replace=False)]
    blocked = [int(x) for x in rng.choice(free, int(rng.integers(0, free.size + 1)), replace=False)]
    m = without(f.moves, blocked)
    if weighted:
        costs = rng.integers(1, 6, size=f.moves.shape).astype(np.uint8)
        got = table(DistanceTables(f, costs=costs), goal, blocked)
        want = dijkstra_distances(m, costs, [c for c in goal if c not in blocked])
    else:
        got = table(DistanceTables(f), goal, blocked)
        want = bfs_distances(m, [c for c in goal if c not in blocked])
    for c in range(f.n_cells):
        exp = -1 if c in blocked else want.get(c, -1)
        assert got[c] == exp, (c, got[c], exp)


def naive_cut_off(fadj, dist, unreach, v0, blocked, horizon):
    """True if every walk of strictly decreasing ``dist`` from ``v0`` meets a blocked cell
    within ``horizon`` moves before the goal (plain recursion over all walks)."""
    d0 = dist[v0]
    if d0 == 0 or d0 == unreach:
        return False

    def clear(v, left):
        if dist[v] == 0 or left == 0:
            return True
        return any(clear(u, left - 1) for u in fadj[v]
                   if u >= 0 and not blocked[u] and dist[u] < dist[v])
    return not clear(v0, horizon)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(2, 7), w=st.integers(2, 7),
       horizon=st.integers(1, 8))
def test_cut_off_matches_plain_walk_enumeration(seed, h, w, horizon):
    rng = np.random.default_rng(seed)
    f = random_floor(rng, h, w, p_block=0.15)
    g = MoveGraph.of(f)
    if g.n_free < 2:
        return
    tabs = DistanceTables(f, costs=lane_costs(f, int(rng.integers(0, 3))))
    goal = [int(rng.choice(f.free_cells))]
    row = tabs.acquire(("g",), goal)
    blocked = (rng.random(g.n_free) < 0.3).astype(np.uint8)
    n = g.n_free
    slot = np.full(n, row, np.int32)
    pos = np.arange(n, dtype=np.int32)
    cut, stamp = cut_off(g.fadj, tabs.pool, tabs.unreachable, slot, pos, np.arange(n), blocked,
                         horizon, np.zeros(n, np.int64), 0, np.empty(n, np.int32),
                         np.empty(n, np.int32))
    dist = tabs.values(row)
    for v in range(n):
        assert cut[v] == naive_cut_off(g.fadj, dist, tabs.unreachable, v, blocked, horizon), v
    assert stamp >= 0


def test_a_robot_takes_the_far_gap_when_a_held_robot_blocks_the_near_one():
    f = Floor.from_ascii(WALL)
    w = f.width
    s, gap, goal = 0 * w + 3, 2 * w + 3, 4 * w + 3
    want = bfs_distances(without(f.moves, [gap]), [goal])[s]     # round by the far gap
    assert want > bfs_distances(f.moves, [goal])[s]
    for horizon, arrives in ((0, False), (12, True)):
        p = Planner(f, 2, [s, gap], seed=0, dwell_chute=0, dwell_induct=0,
                    detour_horizon=horizon)
        p.hold([1])
        goals = np.array([goal, gap])
        path = [p.positions.copy()]
        for _ in range(3 * want):
            path.append(p.step(goals).copy())
            if p.finished[0]:
                break
        path = np.array(path)
        check_paths(f, path[0], path)
        assert (path[:, 1] == gap).all()              # the held robot never moves
        assert bool(p.finished[0]) == arrives
        if arrives:
            assert len(path) - 1 == want              # the shortest way round, at once
            assert p.detours == 1


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(3, 8), w=st.integers(3, 8),
       guidance=st.sampled_from(["none", "lanes+flow"]), rotation=st.booleans())
def test_held_robots_stay_put_and_plans_stay_valid(seed, h, w, guidance, rotation):
    rng = np.random.default_rng(seed)
    f = random_floor(rng, h, w, p_block=0.15, p_oneway=0.0)
    free = f.free_cells
    n = min(free.size, int(rng.integers(2, 9)))
    if n < 2:
        return
    starts = rng.choice(free, n, replace=False)
    p = Planner(f, n, starts, seed=seed, guidance=guidance, rotation=rotation, dwell_chute=2,
                dwell_induct=1)
    goals = rng.choice(free, n).astype(np.int32)
    out = [p.positions.copy()]
    held_at = {}
    for t in range(40):
        if t % 7 == 0:                                # hold some, release some
            r = int(rng.integers(n))
            if p.held[r]:
                p.release([r])
                held_at.pop(r)
            else:
                p.hold([r])
                held_at[r] = int(p.positions[r])
        out.append(p.step(goals).copy())
        for r, c in held_at.items():
            assert out[-1][r] == c
            assert not p.finished[r]
        fin = np.flatnonzero(p.finished)
        goals = goals.copy()
        goals[fin] = rng.choice(free, fin.size)
    out = np.array(out)
    check_paths(f, out[0], out)


def test_a_lone_robot_always_reaches_a_goal_it_can_reach_around_held_robots():
    rng = np.random.default_rng(7)
    done = exact = 0
    for trial in range(60):
        f = random_floor(rng, 7, 7, p_block=0.1, p_oneway=0.1)
        free = f.free_cells
        if free.size < 6:
            continue
        cells = rng.choice(free, 5, replace=False)
        start, goal, held = int(cells[0]), int(cells[1]), [int(c) for c in cells[2:]]
        want = bfs_distances(without(f.moves, held), [goal]).get(start)
        if want is None:
            continue
        p = Planner(f, 4, [start] + held, seed=trial, dwell_chute=0, dwell_induct=0,
                    detour_horizon=1000)
        p.hold([1, 2, 3])
        goals = np.array([goal] + held)
        for t in range(want + free.size):
            p.step(goals)
            if p.finished[0]:
                break
        assert p.finished[0], (trial, want)
        assert t + 1 >= want                           # never shorter than the way round
        exact += t + 1 == want
        done += 1
    assert exact >= done // 2
    assert done >= 20


def test_a_held_robot_keeps_its_dwell_and_resumes_it_when_released():
    f = Floor.from_ascii("""
I....
.CD..
.....
""")
    drop = int(np.flatnonzero(f.cells == 3)[0])
    p = Planner(f, 1, [drop], seed=0, dwell_chute=3, dwell_induct=0)
    g = np.array([drop])
    p.step(g)                                         # arrives: 3 steps of dwell start
    assert p.dwelling[0]
    p.hold([0])
    for _ in range(10):
        p.step(g)
        assert p.dwelling[0] and not p.finished[0]
    p.release(np.array([True]))
    fin = [bool((p.step(g), p.finished[0])[1]) for _ in range(3)]
    assert fin == [False, False, True]


def test_bad_hold_input_is_rejected():
    f = Floor.from_ascii(WALL)
    p = Planner(f, 2, [0, 1], seed=0)
    for bad in ([2], [-1], [[0]], [0.5], np.array([True])):
        with pytest.raises(InputError):
            p.hold(bad)
    with pytest.raises(InputError):
        p.release([5])
    with pytest.raises(InputError):
        Planner(f, 1, [0], detour_horizon=-1)


def test_faults_on_a_sorting_floor_cost_less_with_detours():
    from sorter.agv.floor_sim import FloorSimOptions
    from sorter.agv.lifelong import make_run, simulate
    from sorter.layout import sortation_floor
    f = sortation_floor(21, 31, 6, 24, seed=3)
    got = {}
    for h in (0, 12):
        opt = FloorSimOptions(chute_capacity=0, fault_rate=0.003, repair_steps=60)
        pl, st = make_run(f, 60, seed=2, tasks="sorting", guidance="lanes+flow", floor_sim=opt,
                          detour_horizon=h)
        res = simulate(pl, st, 600, record=True)
        check_paths(f, res.positions[0], res.positions)
        assert st.faults > 20 and st.repairs > 10
        got[h] = (st.dropped, pl.detours)
    assert got[0][1] == 0 and got[12][1] > 0
    assert got[12][0] > got[0][0], got


def test_an_empty_robot_cut_off_from_its_induct_goes_to_another():
    from sorter.agv.floor_sim import FloorSimOptions
    from sorter.agv.lifelong import make_run
    f = Floor.from_ascii("""
I..@@@@@@@
@@.......I
@@.CD.CD..
@@........
""")
    w = f.width
    corridor, start = 0 * w + 2, 1 * w + 3           # induct 0 is only reached via (0, 2)
    got = {}
    for held in (False, True):
        pl, st = make_run(f, 2, [corridor, start], seed=0, tasks="sorting",
                          floor_sim=FloorSimOptions(chute_capacity=0))
        goals = st.start(pl)
        assert st.target[1] == 0                      # the nearest induct is the corridor's
        if held:
            pl.hold([0])
        for _ in range(40):
            st.pre_step(pl, goals)
            pl.step(goals)
            goals = st.update(pl)
        got[held] = (st.induct_repicks, st.picked, bool(pl.stranded[1]))
    assert got[False][0] == 0
    repicks, picked, stranded = got[True]
    assert repicks >= 1 and picked >= 1 and not stranded   # it loaded at the other induct


def test_a_stranded_robot_that_is_held_itself_is_not_stranded():
    """A robot cut off by a held robot is stranded; once it is held itself it waits for its
    own release, not for a way round, and ``stranded`` no longer lists it."""
    f = Floor.from_ascii(".....")
    p = Planner(f, 2, [0, 2], seed=0, dwell_chute=0, dwell_induct=0, rescue_after=0)
    p.hold([1])
    goals = np.array([4, 2])
    for _ in range(3):
        p.step(goals)
    assert p.stranded.tolist() == [True, False]
    p.hold([0])
    p.step(goals)
    assert p.stranded.tolist() == [False, False]
    p.release([0])                      # robot 1 still held: cut off again
    p.step(goals)
    assert p.stranded.tolist() == [True, False]


def test_no_robot_stays_stranded_once_every_fault_is_repaired():
    """`stranded` means "no way round the held robots now": in a step planned with nobody held,
    nobody is stranded (before, the flag was cleared only for goals whose newest detour table a
    released cell shortened, and robots kept it for hundreds of steps after the repairs)."""
    from sorter.agv.floor_sim import FloorSimOptions
    from sorter.agv.lifelong import make_run
    f = Floor.from_ascii("@@@@@\nI...D\n@@@.C\n@@D..\n@@C@@")
    p, s = make_run(f, 4, seed=1, tasks="sorting",
                    floor_sim=FloorSimOptions(chute_capacity=0, fault_rate=0.02, repair_steps=5))
    goals = s.start(p)
    p.prepare(goals)
    free_steps = stranded_steps = 0
    for _ in range(600):
        s.pre_step(p, goals)
        held_during = p.held.any()
        p.step(goals)
        if not held_during:
            free_steps += 1
            stranded_steps += bool(p.stranded.any())
        goals = s.update(p)
    assert free_steps > 50 and stranded_steps == 0

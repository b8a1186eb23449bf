"""Bounded distance tables (DistanceTables.acquire(..., near=v)) and the planner that widens them.

Oracles: plain-Python BFS / Dijkstra (tests/naive_pibt.py) for the values inside the bound, and the
planner with complete tables for the moves: bounding must never change a plan.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from naive_pibt import bfs_distances, dijkstra_distances
from sorter.agv import DistanceTables, Planner
from sorter.agv.guidance import lane_costs
from sorter.agv.tasks import ErrandTasks
from sorter.agv.validate import check_paths
from sorter.layout import Floor
from test_prefetch import random_floor


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 14), st.integers(2, 14), st.booleans(),
       st.sampled_from([0, 1, 3, 16]), st.booleans())
def test_bounded_table_is_exact_inside_its_bound(seed, h, w, weighted, slack, grid):
    f = random_floor(seed, h, w)
    free = f.free_cells
    if free.size < 2:
        return
    rng = np.random.default_rng(seed)
    costs = lane_costs(f, 2) if weighted else None
    if not grid:        # a bare moves table: cells with no move at all count as obstacles
        free = free[(f.moves[free] >= 0).any(axis=1) | np.isin(free, f.moves[f.moves >= 0])]
        if free.size < 2:
            return
    goal, near = (int(c) for c in rng.choice(free, 2, replace=False))
    want = (dijkstra_distances(f.moves, costs, [goal]) if weighted
            else bfs_distances(f.moves, [goal]))
    # grid: the A* band (the floor's geometry known); else the disc of 1.5 d + slack
    tabs = DistanceTables(f if grid else f.moves, costs=costs)
    tabs.slack = slack
    g = tabs.graph
    assert (g.rows is not None) == grid
    row = tabs.acquire(("cell", goal), [goal], near=g.fidx[near])
    got = tabs.values(row)
    if near not in want:                                         # unreachable: searched out
        assert not tabs.partial[row]
    if tabs.partial[row]:
        d = want[near]

        def kept(c):
            if grid:                                             # f = g + Manhattan to near
                r0, c0 = divmod(int(c), f.width)
                r1, c1 = divmod(near, f.width)
                return want[int(c)] + abs(r0 - r1) + abs(c0 - c1) <= d + slack
            return want[int(c)] <= d + slack + d // 2
        for c in free:
            v = got[g.fidx[c]]
            if int(c) in want and kept(c):
                assert v == want[int(c)], int(c)
            else:
                assert v == tabs.unsettled, int(c)
        assert tabs.glim[row] == max(want[int(c)] for c in free if int(c) in want and kept(c))
    else:
        for c in free:
            assert got[g.fidx[c]] == want.get(int(c), tabs.unreachable)
    tabs.release(row)
    # without near, the same key gives the complete table
    row = tabs.acquire(("cell", goal), [goal])
    assert not tabs.partial[row]
    for c in free:
        assert tabs.values(row)[g.fidx[c]] == want.get(int(c), tabs.unreachable)


def errand_run(seed, n, steps, *, bounded, slack, rotation, hold_at=None):
    f = random_floor(seed, 10 + seed % 4, 14 + seed % 5, density=0.12)
    free = f.free_cells
    rng = np.random.default_rng(seed)
    starts = rng.choice(free, n, replace=False)
    errands = rng.choice(free, 8 * n)
    offsets = np.arange(0, errands.size + 1, 2)                  # two-errand tasks
    p = Planner(f, n, starts, seed=seed, dwell_chute=0, dwell_induct=0, guidance="lanes+flow",
                rotation=rotation)
    p.tables.bounded, p.tables.slack = bounded, slack
    s = ErrandTasks(errands, n, strategy="nearest", offsets=offsets, width=f.width, reveal=2)
    goals = s.start(p)
    path = [p.positions.copy()]
    partial_seen = 0
    for t in range(steps):
        if hold_at is not None and t == hold_at:
            p.hold([0])
        partial_seen += int(p.tables.partial.sum())
        path.append(p.step(goals).copy())
        goals = s.update(p)
    p.tables.wait_prefetched(timeout=30)
    check_paths(f, starts, np.array(path))
    return np.array(path), partial_seen, s.tasks_finished


@pytest.mark.parametrize("seed, rotation, slack", [(1, False, 0), (2, True, 0), (3, True, 4),
                                                   (4, False, 16)])
def test_bounded_tables_make_the_same_moves(seed, rotation, slack):
    n = 45                                                       # crowded: pushes leave bounds
    full, _, done = errand_run(seed, n, 150, bounded=False, slack=slack, rotation=rotation)
    part, seen, done_b = errand_run(seed, n, 150, bounded=True, slack=slack, rotation=rotation)
    assert seen > 0                                              # bounded tables were in use
    assert np.array_equal(full, part) and done == done_b > 0


def test_holding_a_robot_completes_bounded_tables_and_stops_bounding():
    full, _, _ = errand_run(5, 30, 80, bounded=False, slack=0, rotation=False, hold_at=40)
    part, _, _ = errand_run(5, 30, 80, bounded=True, slack=0, rotation=False, hold_at=40)
    assert np.array_equal(full, part)
    f = Floor.from_ascii("." * 30)
    p = Planner(f, 1, [0], seed=0, dwell_chute=0, dwell_induct=0)
    p.tables.slack = 0
    p.step(np.array([3]))
    assert p.tables.partial.any()
    p.hold([0])
    assert not p.tables.partial.any() and not p.tables.bounded


def test_widened_table_keeps_what_was_settled():
    f = Floor.from_ascii("." * 40)
    tabs = DistanceTables(f)
    tabs.slack = 0
    row = tabs.acquire(("cell", 0), [0], near=3)                 # A* band: g + |c - 3| <= 3
    assert tabs.partial[row] and tabs.values(row)[:5].tolist() == [0, 1, 2, 3, tabs.unsettled]
    tabs.widen(row, 10)             # its search goes on until 10 and its neighbours are settled
    assert tabs.values(row)[:13].tolist() == list(range(12)) + [tabs.unsettled]
    assert tabs.glim[row] == 11 and tabs.resumed == 1
    tabs.acquire(("cell", 0), [0], near=5)                       # a second user, inside it
    tabs.widen(row, 20)                                          # shared: the same
    assert tabs.values(row)[:23].tolist() == list(range(22)) + [tabs.unsettled]
    tabs.complete(row)
    assert tabs.values(row).tolist() == list(range(40)) and not tabs.partial[row]
    # a cached bounded table nobody uses is re-bounded around its next robot
    tabs.release(row)
    tabs.release(row)
    row2 = tabs.acquire(("cell", 39), [39], near=36)
    tabs.release(row2)
    assert tabs.acquire(("cell", 39), [39], near=2) == row2
    assert tabs.values(row2)[2] == 37 and tabs.partial[row2]


def test_a_second_robot_elsewhere_widens_the_band_toward_it():
    f = Floor.from_ascii("." * 40)
    tabs = DistanceTables(f)
    tabs.slack = 0
    a = tabs.acquire(("cell", 20), [20], near=17)               # band: cells 17..20
    assert tabs.values(a)[30] == tabs.unsettled
    searched = tabs.cells_searched
    b = tabs.acquire(("cell", 20), [20], near=30)               # outside it, a in use
    assert a == b and tabs.partial[a] and tabs.resumed == 1
    assert tabs.values(a)[17] == 3 and tabs.values(a)[29:32].tolist() == [9, 10, 11]
    assert tabs.values(a)[12] == tabs.unsettled                   # not a disc: only toward 30
    assert tabs.cells_searched - searched == 11                 # cells 21..31, nothing again
    assert tabs.acquire(("cell", 20), [20], near=18) == a       # inside it: shared
    assert tabs.lookup(("cell", 20), [20])[:40].tolist() == [abs(c - 20) for c in range(40)]


def test_prefetch_for_a_robot_outside_a_cached_bounded_table_is_found_by_acquire():
    f = Floor.from_ascii("." * 40)
    tabs = DistanceTables(f)
    tabs.slack = 0
    a = tabs.acquire(("cell", 20), [20], near=17)               # in use, band 17..20
    assert tabs.prefetch(("cell", 20), [20], near=30)          # a table of its own, ahead
    assert tabs.wait_prefetched(timeout=30)
    before = tabs.bfs_count
    b = tabs.acquire(("cell", 20), [20], near=30)
    assert b != a and tabs.bfs_count == before and tabs.values(b)[30] == 10


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 14), st.integers(2, 14), st.booleans(),
       st.sampled_from([0, 1, 3]), st.integers(1, 6), st.booleans())
def test_widening_a_band_goes_on_with_its_search_and_stays_exact(seed, h, w, weighted, slack,
                                                                 n_widen, shared):
    """Each widening that goes on with the band's search (the robot's cell moved beyond the
    band) settles that cell and its neighbours and keeps every value the band held; whichever
    way a table is widened, every settled value is the exact distance (plain-Python Dijkstra /
    BFS), and a band searched out becomes a complete table."""
    f = random_floor(seed, h, w)
    free = f.free_cells
    if free.size < 3:
        return
    rng = np.random.default_rng(seed)
    costs = lane_costs(f, 2) if weighted else None
    goal, near = (int(c) for c in rng.choice(free, 2, replace=False))
    want = (dijkstra_distances(f.moves, costs, [goal]) if weighted
            else bfs_distances(f.moves, [goal]))
    tabs = DistanceTables(f, costs=costs)
    tabs.slack = slack
    g = tabs.graph
    row = tabs.acquire(("cell", goal), [goal], near=g.fidx[near])
    if shared:
        tabs.acquire(("cell", goal), [goal])    # a second user: widening never starts anew
    for v in rng.choice(free, n_widen):
        before = tabs.values(row).copy()
        settled = before < tabs.unsettled
        vi = int(g.fidx[v])
        resumed = tabs.resumed
        if tabs.partial[row] and not tabs._covers(row, vi):
            tabs.widen(row, vi)
        resumed = tabs.resumed > resumed
        got = tabs.values(row)
        if resumed:
            assert np.array_equal(got[settled], before[settled])   # nothing settled is lost
        for c in free:
            x = int(got[g.fidx[c]])
            if x == tabs.unsettled:
                assert tabs.partial[row]
            elif int(c) in want:
                assert x == want[int(c)], (int(c), x, want[int(c)])
            else:
                assert x == tabs.unreachable
        if resumed and tabs.partial[row]:
            assert tabs._covers(row, vi)


def test_widening_searches_only_beyond_the_band():
    """One cell beside a long band: going on with the search costs a fraction of a new band."""
    f = Floor.from_ascii("\n".join(["." * 60] * 9))
    tabs = DistanceTables(f)
    tabs.slack = 4
    g = tabs.graph
    goal, near = 4 * 60 + 2, 4 * 60 + 57                       # one row, 55 cells apart
    row = tabs.acquire(("cell", goal), [goal], near=g.fidx[near])
    first = tabs.cells_searched
    v = int(g.fidx[1 * 60 + 40])                                # 3 rows off the band's middle
    assert not tabs._covers(row, v)
    tabs.widen(row, v)
    assert tabs._covers(row, v) and tabs.resumed == 1
    assert 0 < tabs.cells_searched - first < first / 2
    fresh = DistanceTables(f)
    fresh.slack = 4
    fresh.acquire(("cell", goal), [goal], near=v)               # what a new band would cost
    assert tabs.cells_searched - first < fresh.cells_searched


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ops=st.integers(1, 400))
def test_frontier_store_keeps_every_slice_through_compactions(seed, ops):
    """``_FrontStore`` (one shared array of frontier slices, compacted when full) against a
    plain dict of arrays: random puts (new and replaced rows) and drops, from a tiny array so
    that it compacts and grows often."""
    from sorter.agv.distance import _FrontStore
    rng = np.random.default_rng(seed)
    fs = _FrontStore(cap=8)
    model = {}
    for _ in range(ops):
        row = int(rng.integers(0, 30))
        if rng.random() < 0.3:
            fs.drop(row)
            model.pop(row, None)
        else:
            cells = rng.integers(0, 1000, int(rng.integers(0, 12))).astype(np.int32)
            fs.put(row, cells)
            model[row] = cells
        assert fs.live == sum(a.size for a in model.values())
    for row in range(30):
        got = fs.get(row)
        assert (got is None) == (row not in model)
        if got is not None:
            assert np.array_equal(got, model[row])

"""Distance tables computed ahead by the background thread (DistanceTables.prefetch).

The oracle is the table computed on demand on the caller's thread (itself checked against plain
BFS / Dijkstra in test_planner.py): a prefetched table must be identical, whatever the eviction
pressure, and a planner fed by a prefetching task stream must make the very same moves.
"""
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sorter.agv import DistanceTables, Planner
from sorter.agv.guidance import lane_costs
from sorter.agv.tasks import ErrandTasks
from sorter.agv.validate import check_paths
from sorter.errors import InputError
from sorter.layout import Floor


def random_floor(seed, h, w, density=0.2):
    rng = np.random.default_rng(seed)
    grid = np.where(rng.random((h, w)) < density, "@", ".")
    return Floor.from_ascii("\n".join("".join(r) for r in grid))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 12), st.integers(3, 12), st.booleans(),
       st.integers(1, 8))
def test_prefetched_tables_equal_tables_computed_on_demand(seed, h, w, weighted, max_rows):
    f = random_floor(seed, h, w)
    free = f.free_cells
    if free.size < 2:
        return
    costs = lane_costs(f, 2) if weighted else None
    row_mb = free.size * 2 / 2**20
    tabs = DistanceTables(f, costs=costs, max_mb=row_mb * max_rows)   # eviction pressure
    ref = DistanceTables(f, costs=costs)
    rng = np.random.default_rng(seed)
    goals = rng.choice(free, min(free.size, 12), replace=False)
    for c in goals:
        tabs.prefetch(("cell", int(c)), [int(c)])
    held = []
    for c in goals[::2]:                  # acquire some while the thread works
        held.append(tabs.acquire(("cell", int(c)), [int(c)]))
    assert tabs.wait_prefetched(timeout=30)
    for c in goals:
        key = ("cell", int(c))
        row = tabs.acquire(key, [int(c)])
        want = ref.values(ref.acquire(key, [int(c)]))
        assert np.array_equal(tabs.values(row), want), int(c)
        tabs.release(row)
    for r in held:
        tabs.release(r)


def test_prefetch_skips_known_keys_and_refuses_bad_cells():
    f = Floor.from_ascii("....\n.@..\n....")
    tabs = DistanceTables(f)
    assert tabs.prefetch(("cell", 0), [0]) is True
    assert tabs.prefetch(("cell", 0), [0]) is False          # queued or cached already
    assert tabs.wait_prefetched(timeout=10)
    assert tabs.cached_row(("cell", 0)) >= 0 and tabs.prefetched == 1
    assert tabs.prefetch(("cell", 0), [0]) is False          # cached
    with pytest.raises(InputError, match="obstacle"):
        tabs.prefetch(("cell", 5), [5])
    p = Planner(f, 1, [0])
    with pytest.raises(InputError, match="obstacle"):
        p.prefetch([5])


def test_prefetch_thread_ends_when_idle():
    f = Floor.from_ascii("....\n....")
    tabs = DistanceTables(f)
    tabs.prefetch_idle_s = 0.05
    tabs.prefetch(("cell", 3), [3])
    assert tabs.wait_prefetched(timeout=10)
    t_end = time.perf_counter() + 10
    while tabs._worker is not None and time.perf_counter() < t_end:
        time.sleep(0.01)
    assert tabs._worker is None
    assert tabs.prefetch(("cell", 4), [4])                   # a new thread starts
    assert tabs.wait_prefetched(timeout=10) and tabs.cached_row(("cell", 4)) >= 0


def errand_paths(seed, n, steps, *, rotation=False, hold=None, release=None, cached=30):
    """The positions of one errand run with and without prefetching (same floor, same seed);
    ``hold`` robots are held from step ``hold[0]`` to ``release``."""
    f = random_floor(seed, 12 + seed % 3, 16 + seed % 3, density=0.12)
    free = f.free_cells
    rng = np.random.default_rng(seed)
    starts = rng.choice(free, n, replace=False)
    errands = rng.choice(free, 12 * n)
    paths = []
    for prefetch in (False, True):
        p = Planner(f, n, starts, seed=seed, dwell_chute=0, dwell_induct=0, guidance="lanes+flow",
                    rotation=rotation, max_table_mb=free.size * 2 * cached / 2**20)
        s = ErrandTasks(errands, n, prefetch=prefetch)
        goals = s.start(p)
        path = [p.positions.copy()]
        for t in range(steps):
            if hold is not None and t == hold[0]:
                p.hold(hold[1])
            if hold is not None and t == release:
                p.release(hold[1])
            path.append(p.step(goals).copy())
            goals = s.update(p)
        paths.append(np.array(path))
        if prefetch:
            assert p.tables.prefetched > 0
    check_paths(f, starts, paths[1])
    return paths


@pytest.mark.parametrize("rotation", [False, True])
def test_errand_run_with_prefetching_makes_the_same_moves(rotation):
    without, with_ = errand_paths(3, 40, 120, rotation=rotation)
    assert np.array_equal(without, with_)


def test_following_errand_is_the_next_one_the_robot_will_get():
    """_following (what is prefetched) against the errands the stream then really hands out."""
    errands = np.arange(100, 111)
    offsets = np.array([0, 2, 3, 6, 7, 9, 11])              # 6 tasks of 2, 1, 3, 1, 2, 2 errands
    for strategy in ("roundrobin", "greedy"):
        t = ErrandTasks(errands, 3, strategy=strategy, offsets=offsets)

        class P:                                             # a planner stand-in
            finished = np.zeros(3, bool)
        p = P()
        t.prefetch = False
        t.start(p)
        for _ in range(12):
            robots = np.arange(3)
            want = t._following(robots)
            p.finished = np.ones(3, bool)
            got = t.update(p)
            known = want >= 0
            assert np.array_equal(got[known], want[known]), strategy
            if strategy == "roundrobin":
                assert known.all()


def test_prefetching_with_held_robots_makes_the_same_moves():
    """Detours peek at cached tables: the prefetch thread must not change them meanwhile."""
    without, with_ = errand_paths(5, 35, 150, hold=(20, np.arange(0, 35, 5)), release=90,
                                  cached=25)
    assert np.array_equal(without, with_)


def _wait(tabs):
    assert tabs.wait_prefetched(timeout=30)


def test_prefetched_table_waits_for_its_robot_under_lru_pressure():
    # LRU room for one table: every new table evicts an idle one; a prefetched table is
    # promised to a robot and must survive until it is acquired (was: evicted by the next
    # table computed, so at 10,000 robots nearly every prefetched table was computed again)
    f = random_floor(3, 8, 10, density=0.1)
    free = [int(c) for c in f.free_cells]
    tabs = DistanceTables(f, max_mb=free.__len__() * 2 / 2**20)
    assert tabs.max_rows == 1
    tabs.prefetch(("cell", free[0]), [free[0]])
    _wait(tabs)
    for c in free[1:6]:                        # five other goals come and go
        tabs.release(tabs.acquire(("cell", c), [c]))
    assert tabs.cached_row(("cell", free[0])) >= 0
    before = tabs.bfs_count
    row = tabs.acquire(("cell", free[0]), [free[0]])
    assert tabs.bfs_count == before            # served by the prefetched table
    assert tabs.values(row)[tabs.graph.fidx[free[0]]] == 0
    tabs.release(row)                          # now an ordinary idle table: evictable
    for c in free[7:9]:
        tabs.release(tabs.acquire(("cell", c), [c]))
    assert tabs.cached_row(("cell", free[0])) == -1


def test_prefetched_tables_wait_in_a_bounded_number():
    f = random_floor(4, 8, 10, density=0.1)
    free = [int(c) for c in f.free_cells]
    tabs = DistanceTables(f)
    tabs.pin_limit = 2
    for c in free[:3]:
        tabs.prefetch(("cell", c), [c])
        _wait(tabs)
    assert tabs.prefetched == 2 and tabs.prefetch_dropped == 1
    assert tabs.cached_row(("cell", free[2])) == -1
    # a promised table nobody took for 4 x pin_limit acquisitions stops being promised
    for c in free[10:19]:
        tabs.release(tabs.acquire(("cell", c), [c]))
    tabs.prefetch(("cell", free[2]), [free[2]])
    _wait(tabs)
    assert tabs.cached_row(("cell", free[2])) >= 0 and tabs.prefetch_dropped == 1
    assert len(tabs._pinned) == 2 and tabs.cached_row(("cell", free[0])) >= 0


def test_errand_stream_asks_for_the_next_table_shortly_before_it_is_needed():
    # one robot in a corridor: its errand is 100 cells away, the one after it at cell 5. The
    # next table is asked for only once the robot is prefetch_ahead (48) from its errand, and
    # is ready before it gets there
    f = Floor.from_ascii("." * 120)
    p = Planner(f, 1, [0], seed=0, dwell_chute=0, dwell_induct=0)
    s = ErrandTasks(np.array([100, 5, 110]), 1)
    goals = s.start(p)
    asked_at = None
    for t in range(100):
        p.step(goals)
        goals = s.update(p)
        left = int(p.distance_left()[0])
        cached = p.tables.cached_row(("cell", 5)) >= 0 or ("cell", 5) in p.tables._inflight
        if asked_at is None and cached:
            asked_at = left
        if left > s.prefetch_ahead:
            assert not cached, left
        if int(p.positions[0]) == 100:
            break
    assert asked_at is not None and 0 < asked_at <= s.prefetch_ahead
    assert p.tables.wait_prefetched(timeout=30) and p.tables.prefetched == 1


def test_prefetch_of_a_cached_idle_table_keeps_it_for_its_robot():
    # the goal's table is cached but idle when its robot's next errand is asked for: it must
    # then wait (pinned) like a computed one, not be evicted by the next new table
    f = random_floor(5, 8, 10, density=0.1)
    free = [int(c) for c in f.free_cells]
    tabs = DistanceTables(f, max_mb=len(free) * 2 / 2**20)        # LRU room for one table
    tabs.release(tabs.acquire(("cell", free[0]), [free[0]]))       # cached, idle
    assert tabs.prefetch(("cell", free[0]), [free[0]]) is False    # nothing to compute
    for c in free[1:6]:
        tabs.release(tabs.acquire(("cell", c), [c]))
    assert tabs.cached_row(("cell", free[0])) >= 0
    before = tabs.bfs_count
    tabs.release(tabs.acquire(("cell", free[0]), [free[0]]))
    assert tabs.bfs_count == before


def test_urgent_prefetches_go_before_the_queued_ones():
    f = random_floor(6, 8, 10, density=0.1)
    free = [int(c) for c in f.free_cells]
    tabs = DistanceTables(f)
    with tabs.frozen():                        # the thread cannot take jobs meanwhile
        tabs.prefetch_many([(("cell", c), [c], None) for c in free[:3]])
        tabs.prefetch_many([(("cell", c), [c], None) for c in free[3:5]], urgent=True)
        # one already queued as an ordinary job moves to the front when asked for urgently
        tabs.prefetch_many([(("cell", free[1]), [free[1]], None)], urgent=True)
        order = [key[1] for key, _, _ in tabs._jobs]
    assert order == [free[1]] + free[3:5] + [free[0], free[2]]
    _wait(tabs)
    assert tabs.prefetched == 5


def test_pick_ahead_serves_new_tasks_from_prefetched_tables():
    # "nearest" with pick-ahead: the first errand of a robot's next task is computed by the
    # background thread, so the caller's thread computes far fewer tables; the plan is valid
    f = random_floor(7, 14, 20, density=0.1)
    free = f.free_cells
    rng = np.random.default_rng(7)
    n = 12
    starts = rng.choice(free, n, replace=False)
    errands = rng.choice(free, 400)
    offsets = np.arange(0, errands.size + 1, 2)
    counts = []
    for ahead in (-1, 2):
        p = Planner(f, n, starts, seed=1, dwell_chute=0, dwell_induct=0)
        s = ErrandTasks(errands, n, strategy="nearest", offsets=offsets, width=f.width, reveal=2)
        s.pick_ahead = ahead
        goals = s.start(p)
        path = [p.positions.copy()]
        for _ in range(200):
            path.append(p.step(goals).copy())
            goals = s.update(p)
            p.tables.wait_prefetched(timeout=30)   # the thread keeps up (as on a spare core)
        check_paths(f, starts, np.array(path))
        assert s.tasks_finished > 20
        counts.append(p.tables.bfs_count - n)      # beyond the first goals' tables
    assert counts[1] < counts[0] / 2, counts


def test_release_many_is_release_one_by_one():
    """The same references and the same least-recently-used order of idle tables."""
    f = random_floor(4, 8, 8)
    free = [int(c) for c in f.free_cells]
    a, b = DistanceTables(f), DistanceTables(f)
    keys = [free[k % 5] for k in range(9)]                 # repeats: shared tables
    rows_a = [a.acquire(("cell", c), [c]) for c in keys]
    rows_b = [b.acquire(("cell", c), [c]) for c in keys]
    assert rows_a == rows_b
    drop = [rows_a[k] for k in (3, 0, 5, 8, 1, 3)] + [-1]
    for r in drop:
        a.release(r)
    b.release_many(drop)
    assert np.array_equal(a._refs, b._refs)
    assert list(a._idle) == list(b._idle)

"""Online congestion costs (sorter.agv.congestion): the tables robots read, against a plain-Python
model of the schedule and Dijkstra; plans legal, deterministic and live; options checked.

The PIBT kernel is unchanged by congestion costs (its oracle tests run with
``congestion_period=0``); what changes is which distance table each robot reads, so the oracle
here is a plain-Python model of that: waits counted per cell, levels blended every period, the
move costs of each version, the slices of goals refreshed each step, and the step at which the
robots take them -- and every robot's distance checked against Dijkstra under those costs.
"""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from naive_pibt import dijkstra_distances
from sorter.agv import DistanceTables, Planner
from sorter.agv.congestion import count_waits, weighted_costs
from sorter.agv.guidance import lane_costs
from sorter.agv.lifelong import make_run, simulate
from sorter.agv.validate import check_paths
from sorter.errors import InputError
from sorter.layout import Floor
from test_planner import check_rotation_plan

# inducts (I) along the top row, where robots queue; two chutes below
FLOOR = """
I.I.I.I.I.I
...........
.CD.....CD.
...........
.CD.....CD.
...........
"""


def _reverse(floor, fwd):
    """Reverse costs (the pool's layout) of forward move costs: rc[v, k] = cost of the move
    radj[v, k] -> v."""
    g = DistanceTables(floor).graph
    rc = np.zeros((g.n_free, 4), np.uint8)
    for v in range(g.n_free):
        for k in range(4):
            u = g.radj[v, k]
            if u >= 0:
                rc[v, k] = fwd[g.free_cells[u], (k + 2) % 4]
    return rc


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0, 60), st.integers(1, 20))
def test_weighted_costs_and_wait_counts_match_plain_python(seed, cost, n):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 6, (30, 4)).astype(np.uint8)
    level = rng.random(30) * rng.integers(0, 2, 30)
    out = np.empty_like(base)
    weighted_costs(base, level, cost, out)
    for v in range(30):
        extra = math.floor(cost * level[v] + 0.5)
        for k in range(4):
            want = 0 if base[v, k] == 0 else min(int(base[v, k]) + extra, 250)
            assert out[v, k] == want
    pos = rng.integers(0, 30, n).astype(np.int32)
    nxt = np.where(rng.random(n) < 0.5, pos, rng.integers(0, 30, n)).astype(np.int32)
    local = rng.integers(0, 3, (n, 5)).astype(np.uint16)
    counts = np.zeros(30, np.int64)
    count_waits(pos, nxt, local, counts)
    want = np.zeros(30, np.int64)
    for i in range(n):
        if nxt[i] == pos[i] and local[i, 4] != 0:
            want[pos[i]] += 1
    assert counts.tolist() == want.tolist()


@pytest.mark.parametrize("thread", [False, True])
def test_versioned_tables_are_dijkstra_under_their_costs(thread):
    f = Floor.from_ascii(FLOOR)
    fwd = lane_costs(f, 2, carriageway=4)
    tabs = DistanceTables(f, costs=fwd)
    rng = np.random.default_rng(3)
    extra = np.where(rng.random(f.cells.size) < 0.3, rng.integers(1, 9, f.cells.size), 0)
    fwd2 = fwd.astype(np.int64).copy()
    for c in f.free_cells:                       # a move into cell t costs extra[t] more
        for d in range(4):
            t = f.moves[c, d]
            if t >= 0:
                fwd2[c, d] += extra[t]
    tabs.set_weights(1, _reverse(f, fwd2))
    for goal in (0, 4, 10):
        key = ("wcell", goal, 1)
        if thread:
            assert tabs.prefetch_many([(key, (goal,), None)], force=True) == 1
            tabs.wait_forced()
        row = tabs.acquire(key, (goal,), near=5)     # complete whatever ``near`` says
        want = dijkstra_distances(f.moves, fwd2, [goal])
        got = tabs.values(row)
        for c in f.free_cells:
            assert got[tabs.graph.fidx[c]] == want.get(int(c), tabs.unreachable), (goal, c)
        base = tabs.lookup(("cell", goal), (goal,))   # the pool's own costs untouched
        plain = dijkstra_distances(f.moves, fwd, [goal])
        assert all(base[c] == plain[int(c)] for c in f.free_cells)
        tabs.release(row)
        assert tabs.forget(key) and not tabs.forget(key)
    tabs.drop_weights(1)
    with pytest.raises(InputError, match="version 1"):
        tabs.acquire(("wcell", 0, 1), (0,))
    assert tabs.prefetch_many([(("wcell", 0, 1), (0,), None)], force=True) == 1
    tabs.wait_forced()                            # dropped by the thread, not computed
    assert tabs.cached_row(("wcell", 0, 1)) == -1


def _weighted_setup(seed=3):
    f = Floor.from_ascii(FLOOR)
    fwd = lane_costs(f, 2, carriageway=4)
    tabs = DistanceTables(f, costs=fwd)
    rng = np.random.default_rng(seed)
    extra = np.where(rng.random(f.cells.size) < 0.3, rng.integers(1, 9, f.cells.size), 0)
    fwd2 = fwd.astype(np.int64).copy()
    for c in f.free_cells:
        for d in range(4):
            t = f.moves[c, d]
            if t >= 0:
                fwd2[c, d] += extra[t]
    tabs.set_weights(1, _reverse(f, fwd2))
    return f, fwd2, tabs


@pytest.mark.parametrize("real_thread", [False, True])
def test_wait_forced_shares_the_queued_tables_between_the_threads(real_thread):
    """Forced jobs left in the queue are computed by the waiting thread itself (outside the
    lock); with the prefetch thread running both take some, each table computed once and
    right. ``real_thread=False``: a thread that takes no job, so the caller computes all."""
    import threading
    f, fwd2, tabs = _weighted_setup()
    goals = [int(c) for c in f.free_cells]
    if not real_thread:
        tabs._worker = threading.Thread(target=lambda: None)    # never takes a job
    jobs = [(("wcell", g, 1), (g,), None) for g in goals]
    assert tabs.prefetch_many(jobs, force=True) == len(goals)
    tabs.wait_forced()
    assert not tabs._forced and not tabs._inflight
    assert tabs.bfs_count + tabs.prefetched == len(goals)   # each computed once
    if not real_thread:
        assert tabs.bfs_count == len(goals)
    for g in goals:
        row = tabs.cached_row(("wcell", g, 1))
        assert row >= 0
        want = dijkstra_distances(f.moves, fwd2, [g])
        got = tabs.values(row)
        for c in f.free_cells:
            assert got[tabs.graph.fidx[c]] == want.get(int(c), tabs.unreachable), (g, c)


def test_acquire_with_several_references():
    """``acquire(..., refs=k)``: k references at once (the robots switching to a refreshed
    table together), each released on its own; bad counts rejected."""
    f, _, tabs = _weighted_setup()
    key = ("wcell", 4, 1)
    row = tabs.acquire(key, (4,), refs=3)
    for _ in range(2):
        tabs.release(row)
        assert not tabs.forget(key)              # still in use: kept
    tabs.release(row)
    assert tabs.forget(key)
    for bad in (0, -1, 1.5, True, "2", None):
        with pytest.raises(InputError, match="refs"):
            tabs.acquire(key, (4,), refs=bad)


def way_cost(moves, dist, costs, a):
    """Plain Python: the cost under ``costs[cell][direction]`` of the way down the table
    ``dist`` (cell -> distance) from cell ``a``: each step to the neighbour with the lowest
    distance, the first of equals in direction order."""
    cost = 0
    while dist[a] > 0:
        best, low = None, dist[a]
        for d in range(4):
            t = int(moves[a, d])
            if t >= 0 and t in dist and dist[t] < low:
                best, low = d, dist[t]
        if best is None:
            break
        cost += int(costs[a, best])
        a = int(moves[a, best])
    return cost


class NaiveSchedule:
    """Plain-Python model of which costs each robot's table has (sorter.agv.congestion)."""

    def __init__(self, floor, base_fwd, period, cost, lag=2):
        self.f, self.base, self.period, self.cost, self.lag = floor, base_fwd, period, cost, lag
        self.every = max(1, period // 10)                 # levels blended every this many steps
        self.keep = (1 - 1 / period) ** self.every        # (an average over ~period steps)
        self.counts = {}
        self.level = {int(c): 0.0 for c in floor.free_cells}
        self.steps = 0
        self.versions = {0: base_fwd}
        self.last = base_fwd
        self.version = 0
        self.table_version = {}
        self.pending = []
        self.inducts = sorted(int(c) for c in np.flatnonzero(floor.cells == 2))
        self.per_step = -(-len(self.inducts) // period)
        self.cursor = 0
        self.kept = 0

    def costlier(self, c, had, pos, goals):
        """Some robot bound for goal ``c``: does its way down the table of version ``had``
        (from its cell, each step to the neighbour with the lowest distance, the first of
        equals in direction order) cost more under the latest costs than the table says, by
        over 25% of that + 5?"""
        dist = dijkstra_distances(self.f.moves, self.versions[had], [c])
        now = self.versions[self.version]
        bound = np.flatnonzero(np.asarray(goals) == c)
        for i in bound[::max(1, -(-bound.size // 64))]:     # (at most 64 robots, evenly spread)
            a = int(pos[i])
            if a not in dist:
                continue
            told, cost = dist[a], way_cost(self.f.moves, dist, now, a)
            if cost > told + int(0.25 * told) + 5:
                return True
        return False

    def before_step(self, s, goals, pos):
        for due, jobs in [p for p in self.pending if p[0] <= s]:
            for c, v in jobs:
                self.table_version[c] = v
        self.pending = [p for p in self.pending if p[0] > s]
        if s and s % self.every == 0:
            for c in self.level:
                share = self.counts.get(c, 0) / max(1, self.steps)
                self.level[c] = self.keep * self.level[c] + (1 - self.keep) * share
            self.counts, self.steps = {}, 0
            fwd = self.base.astype(np.int64).copy()
            for c in self.f.free_cells:
                for d in range(4):
                    t = int(self.f.moves[c, d])
                    if t >= 0:
                        fwd[c, d] = min(fwd[c, d] + math.floor(self.cost * self.level[t] + 0.5),
                                        250)
            if not np.array_equal(fwd, self.last):
                self.version += 1
                self.versions[self.version] = self.last = fwd
        if self.version:
            live = sorted({int(g) for g in goals} & set(self.inducts))
            if live:
                j = next((k for k, c in enumerate(live) if c >= self.cursor), 0)
                pick = [live[(j + k) % len(live)] for k in range(min(self.per_step, len(live)))]
                self.cursor = pick[-1] + 1
                due = []
                for c in pick:
                    had = self.table_version.get(c, 0)
                    if had == self.version:
                        continue                        # latest costs already
                    if had and not self.costlier(c, had, pos, goals):
                        self.kept += 1                  # its ways cost what it says still
                        continue
                    due.append(c)                       # (first costs: always)
                if due:
                    self.pending.append((s + self.lag, [(c, self.version) for c in due]))

    def after_step(self, before, after, goals):
        for a, b, g in zip(before, after, goals):
            if a == b and a != g:
                self.counts[int(a)] = self.counts.get(int(a), 0) + 1
        self.steps += 1

    def distance(self, goal, cell):
        v = self.table_version.get(int(goal), 0)
        return dijkstra_distances(self.f.moves, self.versions[v], [int(goal)]).get(int(cell), -1)


@pytest.mark.parametrize("seed,period,cost", [(0, 5, 8.0), (1, 3, 30.0), (2, 25, 6.0)])
def test_each_robot_reads_the_table_of_the_schedule(seed, period, cost):
    f = Floor.from_ascii(FLOOR)
    rng = np.random.default_rng(seed)
    free = f.free_cells
    inducts = np.flatnonzero(f.cells == 2)
    n = int(0.45 * free.size)
    starts = rng.choice(free, n, replace=False)
    p = Planner(f, n, starts, seed=seed, dwell_chute=0, dwell_induct=0, guidance="lanes+flow",
                rotation=True, congestion_period=period, congestion_cost=cost)
    model = NaiveSchedule(f, lane_costs(f, 2, dock_penalty=2, carriageway=4), period, cost)
    # half the goals on inducts, so robots queue there
    goals = np.where(rng.random(n) < 0.5, rng.choice(inducts, n), rng.choice(free, n))
    goals = goals.astype(np.int32)
    path, heads = [p.positions.copy()], [p.headings]
    for s in range(90):
        before = p.positions.copy()
        model.before_step(s, goals, before)
        after = p.step(goals).copy()
        model.after_step(before, after, goals)
        for i in range(n):          # the table it read this step, at its new cell
            assert p.distance(i) == model.distance(goals[i], after[i]), (s, i)
        path.append(after)
        heads.append(p.headings)
        fin = np.flatnonzero(p.finished)
        goals = goals.copy()
        goals[fin] = np.where(rng.random(fin.size) < 0.5, rng.choice(inducts, fin.size),
                              rng.choice(free, fin.size))
    assert model.version >= 1                  # robots did queue: costs changed
    assert p._cong.switched > 0
    assert p._cong.kept == model.kept
    check_paths(f, starts, np.array(path))
    check_rotation_plan(f, np.array(path), np.array(heads))


def _errand_run(period, steps=300, cost=4.0, record=True):
    f = Floor.from_ascii(FLOOR)
    rng = np.random.default_rng(5)
    errands = np.where(rng.random(400) < 0.5, rng.choice(np.flatnonzero(f.cells == 2), 400),
                       rng.choice(f.free_cells, 400))
    p, s = make_run(f, 24, seed=5, errands=errands, dwell_chute=0, dwell_induct=0,
                    rotation=True, congestion_period=period)
    p.congestion_cost = cost
    if p._cong is not None:
        p._cong.cost = cost
    return f, p, simulate(p, s, steps, record=record)


def test_plans_are_legal_deterministic_and_differ_from_static_tables():
    # errand streams prefetch tables in the background thread, as congestion refreshes do:
    # the thread's timing must not change a plan
    f, p, a = _errand_run(10, cost=30.0)
    _, _, b = _errand_run(10, cost=30.0)
    _, _, off = _errand_run(0)
    assert np.array_equal(a.positions, b.positions)
    assert p._cong.version >= 1 and p._cong.switched > 0
    assert not np.array_equal(a.positions, off.positions)
    check_paths(f, a.positions[0], a.positions)
    assert a.tasks_completed > 50


def test_old_versions_do_not_pile_up():
    f, p, r = _errand_run(2, steps=400, cost=30.0, record=False)
    c = p._cong
    assert c.version > 20
    tabs = p.tables
    # only versions some goal cell's table has, or a queued refresh, or the latest: at most
    # one per induct cell besides those (a table whose ways cost what it says keeps its own)
    held = ({c.version} | set(c.table_version.values())
            | {v for _, jobs in c.pending for _, v in jobs})
    assert set(tabs._weights) <= held
    assert len(tabs._weights) <= np.count_nonzero(f.cells == 2) + c.lag * c.per_step + 1
    assert c.kept > 0
    wrows = [k for k in tabs._row_of if k[0] == "wcell"]
    assert len(wrows) <= 2 * np.count_nonzero(f.cells == 2)
    assert {k[2] for k in wrows} <= set(tabs._weights)


def test_defaults_and_bad_options():
    f = Floor.from_ascii(FLOOR)
    starts = f.free_cells[:3]
    assert Planner(f, 3, starts, guidance="lanes+flow", rotation=True).congestion_period == 50
    assert Planner(f, 3, starts, guidance="lanes+flow").congestion_period == 0
    assert Planner(f, 3, starts, rotation=True).congestion_period == 0    # plain PIBT
    assert Planner(f, 3, starts, guidance="lanes", congestion_period=9)._cong.per_step == 1
    for kw in ({"congestion_period": -1}, {"congestion_period": 2.5},
               {"congestion_period": "50"}, {"congestion_cost": -1},
               {"congestion_cost": float("nan")}, {"congestion_cost": True}):
        name = next(iter(kw))
        with pytest.raises(InputError, match=name):
            Planner(f, 3, starts, guidance="lanes", **kw)


def test_sorter_mapf_congestion_flag(tmp_path, capsys):
    from sorter.cli import main
    fl = tmp_path / "floor.txt"
    fl.write_text(FLOOR.strip() + "\n")
    runs = {}
    for flag in ([], ["--congestion-period", "0"], ["--congestion-period", "3"]):
        out = tmp_path / ("o" + "".join(flag).replace("-", ""))
        assert main(["mapf", str(fl), "--robots", "20", "--steps", "150", "--rotation",
                     "--scenario", "random", "--out", str(out)] + flag) == 0
        k = json.loads((out / "kpis.json").read_text())
        pos = np.load(out / "paths.npz")["positions"]
        check_paths(Floor.from_ascii(FLOOR), pos[0], pos)
        runs[tuple(flag)] = (k, pos)
    k, _ = runs[()]
    assert k["congestion_period"] == 50
    assert "congestion_period" not in runs[("--congestion-period", "0")][0]
    k3, pos3 = runs[("--congestion-period", "3")]
    assert k3["congestion_period"] == 3 and k3["congestion_versions"] >= 1
    assert k3["congestion_tables_refreshed"] > 0
    assert not np.array_equal(pos3, runs[("--congestion-period", "0")][1])
    capsys.readouterr()
    assert main(["mapf", str(fl), "--robots", "5", "--steps", "5",
                 "--congestion-period", "-2"]) == 2
    assert "congestion_period" in capsys.readouterr().err


def test_off_where_there_is_no_induct_cell_goal():
    """Station goals (inducts are stations) or a floor without induct cells: no goal would
    take congestion tables, so none is kept (no blends, no versions, no KPI keys)."""
    from sorter.layout import sortation_floor
    f = sortation_floor(12, 16, 2, 3, seed=0)
    p = Planner(f, 6, f.free_cells[:6], seed=0, rotation=True, guidance="lanes",
                station_goals=True, congestion_period=10)
    assert p._cong is None
    plain = Floor.from_ascii("......\n.#..#.\n......")
    p = Planner(plain, 3, plain.free_cells[:3], seed=0, rotation=True, guidance="lanes",
                congestion_period=10)
    assert p._cong is None
    p = Planner(Floor.from_ascii(FLOOR), 3, [6, 7, 8], seed=0, rotation=True, guidance="lanes",
                congestion_period=10)
    assert p._cong is not None                  # single-cell goals on induct cells


def test_wait_forced_returns_when_the_thread_is_gone_and_bad_keys_are_named():
    """A forced job the (dead) thread held is not waited for forever; the queued ones are
    computed by the caller. drop_weights / forget name a bad argument."""
    import threading
    f, _, tabs = _weighted_setup()
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    tabs._worker = dead
    assert tabs.prefetch_many([(("wcell", 0, 1), (0,), None)], force=True) == 1
    with tabs._lock:                    # as if the thread had taken it and then died
        job = tabs._jobs.popleft()
    assert job[0] == ("wcell", 0, 1)
    assert tabs.prefetch_many([(("wcell", 4, 1), (4,), None)], force=True) == 1
    waiter = threading.Thread(target=tabs.wait_forced, daemon=True)
    waiter.start()                      # (a daemon: a regression fails here, not hangs)
    waiter.join(timeout=20)
    assert not waiter.is_alive()        # returned; the queued one computed by the caller
    assert tabs.cached_row(("wcell", 4, 1)) >= 0 and not tabs._forced
    with pytest.raises(InputError, match="version"):
        tabs.drop_weights("x")
    with pytest.raises(InputError, match="hashable"):
        tabs.forget(["cell", 0])


def test_wait_forced_for_some_keys_leaves_the_others_to_the_thread():
    """``wait_forced(keys)``: the caller computes (and waits for) only those forced jobs; the
    others stay queued for the thread (the next slice overlaps the step)."""
    import threading
    f, fwd2, tabs = _weighted_setup()
    tabs._worker = threading.Thread(target=lambda: None)    # never takes a job
    due = [("wcell", g, 1) for g in (0, 2, 4)]
    later = [("wcell", g, 1) for g in (6, 8)]
    assert tabs.prefetch_many([(k, (k[1],), None) for k in due + later], force=True) == 5
    tabs.wait_forced(due)
    assert all(tabs.cached_row(k) >= 0 for k in due)
    assert all(tabs.cached_row(k) == -1 for k in later)
    assert tabs._forced == set(later) and [j[0] for j in tabs._jobs] == later
    for k in due:
        want = dijkstra_distances(f.moves, fwd2, [k[1]])
        got = tabs.values(tabs.cached_row(k))
        assert all(got[tabs.graph.fidx[c]] == want.get(int(c), tabs.unreachable)
                   for c in f.free_cells)
    tabs.wait_forced()                              # then all
    assert all(tabs.cached_row(k) >= 0 for k in later) and not tabs._forced


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), rise=st.sampled_from([0.0, 0.25, 1.0]),
       slack=st.integers(0, 6), one_way=st.booleans())
def test_costlier_way_matches_plain_python(seed, rise, slack, one_way):
    """:func:`costlier_way` (the stale-table test of a refresh) against a plain walk down a
    Dijkstra table on random floors, old and new move costs, robots anywhere (some with no
    way to the goal)."""
    from sorter.agv.congestion import costlier_way
    from sorter.agv.distance import MoveGraph
    rng = np.random.default_rng(seed)
    h, w = (int(x) for x in rng.integers(3, 9, 2))
    grid = (rng.random((h, w)) > 0.25).astype(np.int8)
    if grid.sum() < 2:
        grid[0, :2] = 1
    f = Floor(grid, check=False)
    moves = np.asarray(f.moves).copy()
    if one_way:                                  # some moves forbidden: not every way back
        moves[rng.random(moves.shape) < 0.15] = -1
    g = MoveGraph(moves, np.asarray(f.cells).ravel())
    free = np.asarray(g.free_cells)
    old = rng.integers(1, 4, moves.shape)        # forward costs [cell, direction]
    new = old + rng.integers(0, 5, moves.shape) * (rng.random(moves.shape) < 0.4)
    goal = int(rng.choice(free))
    dist = dijkstra_distances(moves, old, [goal])
    unreach = 65535
    pool = np.full((1, free.size), unreach, np.uint16)
    for c, dv in dist.items():
        pool[0, g.fidx[c]] = dv
    rcost = np.zeros((free.size, 4), np.uint8)  # rcost[u, k]: the move radj[u, k] -> u
    for c in free:
        for d in range(4):
            t = int(moves[c, d])
            if t >= 0:
                rcost[g.fidx[t], (d + 2) % 4] = new[c, d]
    n = int(rng.integers(1, 5))
    at = rng.choice(free, n)
    want = False
    for a in at.tolist():
        if a not in dist:
            continue
        told, cost = dist[a], way_cost(moves, dist, new, a)
        want = want or cost > told + int(rise * told) + slack
    span = np.array([[0, free.size]], np.int64)
    got = costlier_way(pool, span, np.zeros(n, np.int64), g.fidx[at].astype(np.int64),
                       np.arange(n), g.fadj, rcost, unreach, rise, slack)
    assert got == want


def test_costlier_way_reads_a_bounded_table_only_inside_its_span():
    """Cells outside a row's written span hold stale content from an earlier table: the walk
    must not step there (it counts them unsettled), whatever they hold."""
    from sorter.agv.congestion import costlier_way
    from sorter.agv.distance import MoveGraph
    f = Floor(np.ones((1, 6), np.int8))             # a corridor, free cells 0..5, goal 0
    g = MoveGraph(np.asarray(f.moves), np.asarray(f.cells).ravel())
    pool = np.array([[0, 0, 2, 3, 4, 5]], np.uint16)  # cell 1: stale (0) outside the span
    span = np.array([[2, 6]], np.int64)
    rcost = np.ones((6, 4), np.uint8)
    rcost[1, 0] = 50                                  # the move 2 -> 1 (into 1 from the east)
    args = (g.fadj, rcost, 65535, 0.0, 0)
    robot_at_3 = (np.zeros(1, np.int64), np.array([3]), np.arange(1))
    assert not costlier_way(pool, span, *robot_at_3, *args)     # stops at the bound: cost 1
    whole = np.array([[0, 6]], np.int64)
    assert costlier_way(pool, whole, *robot_at_3, *args)        # (read as written: 1 + 50)


def test_stale_check_prices_at_most_stale_robots_per_goal(monkeypatch):
    """Many robots bound for one goal: the stale check walks at most ``STALE_ROBOTS`` of them,
    spread over all of them (its work per goal is bounded)."""
    from sorter.agv import congestion
    seen = []
    real = congestion.costlier_way

    def spy(pool, span, slot, pos, robots, *rest):
        seen.append(robots.copy())
        return real(pool, span, slot, pos, robots, *rest)

    monkeypatch.setattr(congestion, "costlier_way", spy)
    f = Floor.from_ascii("\n".join(["I" + "." * 29] + ["." * 30] * 11))
    n = 150
    starts = np.asarray(f.free_cells)[-n:]
    p = Planner(f, n, starts, seed=0, dwell_chute=0, dwell_induct=0, guidance="lanes+flow",
                rotation=True, congestion_period=3, congestion_cost=30.0)
    goals = np.full(n, int(np.flatnonzero(f.cells == 2)[0]), np.int32)
    for _ in range(40):
        p.step(goals)
    assert seen, "no stale check ran"
    for robots in seen:
        assert 0 < robots.size <= congestion.STALE_ROBOTS
    big = max(seen, key=len)
    assert big.size > 32 and big[-1] - big[0] > n // 2    # spread, not the first 64

"""QA sweep of rescues (``Planner(rescue_after=...)``, :mod:`sorter.agv.lacam`), as a user
embedding the planner would drive it: faults (hold / release) at random times during rescue
plans, station goals with dwell, rotations with and without guidance, goals changed by the
caller mid-plan, one robot, unreachable goals, one goal for all, LoRR errand streams with
prefetch, determinism, ``rescue_after=0`` = plain PIBT, and the KPIs. Every plan goes through
the independent validator (and the rotation check where headings apply).

Small floors (random with one-way moves, DFS mazes, pockets) and a small ``rescue_after`` so
that many rescues happen within a few hundred steps."""
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sorter.agv import Planner
from sorter.agv.lifelong import make_run, simulate
from sorter.agv.tasks import ErrandTasks
from sorter.agv.validate import check_paths
from sorter.layout import Floor
from naive_lacam import dfs_maze as naive_dfs_maze
from test_planner import check_rotation_plan, random_floor


def dfs_maze(rng, h, w):
    """A perfect maze (a tree: no cycles) of ``h x w`` rooms, walls between them."""
    return Floor(naive_dfs_maze(rng, h, w), check=False)


# ------------------------------------------------------------------ one-way floors
def lost_reachability(seed, steps=60, after=8):
    """Lifelong random goals on a random one-way floor; the first step where a robot whose
    goal (unchanged) could be reached from its cell stands where it no longer can, or None."""
    rng = np.random.default_rng(seed)
    f = random_floor(rng, int(rng.integers(3, 7)), int(rng.integers(3, 8)), p_oneway=0.25)
    free = f.free_cells
    if free.size < 3:
        return None, None
    n = max(2, int(0.45 * free.size))
    starts = rng.choice(free, n, replace=False)
    p = Planner(f, n, starts, seed=seed, dwell_chute=0, dwell_induct=0, rescue_after=after)
    goals = rng.choice(free, n).astype(np.int32)
    path = [p.positions.copy()]
    reach = prev = None
    for t in range(steps):
        with cheap_searches():
            path.append(p.step(goals).copy())
        d = np.array([p.distance(i) for i in range(n)])
        if reach is not None:
            lost = np.flatnonzero(reach & (d < 0) & (goals == prev))
            if lost.size:
                return (t, lost.tolist()), p
        reach, prev = d >= 0, goals.copy()
        fin = np.flatnonzero(p.finished)
        goals = goals.copy()
        goals[fin] = rng.choice(free, fin.size)
    check_paths(f, starts, np.array(path))
    return None, p


@pytest.mark.parametrize("seed", [3, 10, 13, 15])
def test_rescue_never_strands_a_bystander_in_a_one_way_trap(seed):
    """PIBT never moves a robot into a cell its goal cannot be reached from; a rescue plan
    must not either (it did: the robots it moves "only make way", wherever, so on floors with
    one-way moves it parked bystanders in traps they can never leave: their goal gone for
    good). Seeds found by the sweep below."""
    lost, p = lost_reachability(seed)
    assert lost is None, f"robots {lost[1]} lost their goal at step {lost[0]}"
    assert p.rescues + p.rescue_failures > 0           # rescues were tried


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_rescue_never_strands_a_bystander_random(seed):
    lost, _ = lost_reachability(seed, steps=100)
    assert lost is None, f"robots {lost[1]} lost their goal at step {lost[0]}"


# ------------------------------------------------------------------ a checked lifelong run
@contextmanager
def cheap_searches():
    """Searches that give up sooner (failed ones dominate the run time on tiny floors)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sorter.agv.pibt.RESCUE_CALLS", 3000)
        yield


class Run:
    """Drives a planner step by step and checks, every step: held robots stay put; robots
    reported finished stand on a cell of their goal (their station) and stayed there for
    their dwell; no robot a rescue plan still forces finishes where it must dwell; robots
    outside the plan never enter the cells it keeps them out of; ``stranded`` robots are not on their goal;
    ``tasks_completed`` adds up."""

    def __init__(self, floor, p):
        self.floor, self.p = floor, p
        self.path, self.heads = [p.positions.copy()], [p.headings]
        self.held = {}
        self.fin = 0
        self.plan_steps = 0

    def hold(self, r):
        self.p.hold([r])
        self.held.setdefault(r, int(self.p.positions[r]))

    def release(self, r):
        self.p.release([r])
        self.held.pop(r, None)

    def step(self, goals):
        p = self.p
        before = p.positions.copy()
        pos = p.step(goals).copy()
        for r, c in self.held.items():
            assert pos[r] == c, ("held robot moved", p.step_no, r)
        if p._plan is not None:
            self.plan_steps += 1
            cell_type = self.floor.cells[pos]
            dwell = np.where(cell_type == 3, p.dwell_chute,
                             np.where(cell_type == 2, p.dwell_induct, 0))
            assert not (p.finished & (p._forced >= 0) & (dwell > 0)).any(), \
                "a forced robot finished where it must dwell"
            entered = (p._forced < 0) & (pos != before) & (p._keep_out[p.graph.fidx[pos]] > 0)
            assert not entered.any(), ("entered a kept-out cell", p.step_no, np.flatnonzero(entered))
        for i in np.flatnonzero(p.finished):
            assert pos[i] in p.goal_key(int(goals[i]))[1], ("finished off its goal", p.step_no, i)
            t = int(self.floor.cells[pos[i]])
            k = p.dwell_chute if t == 3 else (p.dwell_induct if t == 2 else 0)
            assert len(self.path) > k and all(self.path[-j][i] == pos[i] for j in range(1, k + 1)), \
                ("finished before its dwell was over", p.step_no, i)
        strand = np.flatnonzero(p.stranded)          # (a held robot may be stranded too)
        assert all(p.distance(int(i)) != 0 for i in strand)
        self.fin += int(p.finished.sum())
        assert self.fin == p.tasks_completed
        self.path.append(pos)
        self.heads.append(p.headings)
        return pos

    def check(self):
        path = np.array(self.path)
        check_paths(self.floor, path[0], path)
        if self.p.rotation:
            check_rotation_plan(self.floor, path, np.array(self.heads))
        return path


def small_floor(rng, kind):
    if kind == "maze":
        return dfs_maze(rng, int(rng.integers(2, 4)), int(rng.integers(2, 5)))
    return random_floor(rng, int(rng.integers(3, 7)), int(rng.integers(3, 8)),
                        p_oneway=0.15 if kind == "oneway" else 0.0)


def crowded_small_floor(seed, kind):
    """A small floor of ``kind`` with robots on 30-60% of its free cells: ``(rng, floor,
    free cells, robots, starts)``, or None if it has fewer than 3 free cells."""
    rng = np.random.default_rng(seed)
    f = small_floor(rng, kind)
    free = f.free_cells
    if free.size < 3:
        return None
    n = max(2, int(rng.uniform(0.3, 0.6) * free.size))
    return rng, f, free, n, rng.choice(free, n, replace=False)


# ------------------------------------------------------------------ faults during rescues
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31), kind=st.sampled_from(["random", "oneway", "maze"]),
       rotation=st.booleans(), lanes=st.booleans(), after=st.sampled_from([4, 8, 16]),
       p_fault=st.sampled_from([0.02, 0.1]))
def test_holds_and_releases_during_rescues(seed, kind, rotation, lanes, after, p_fault):
    """Holds and releases at random times, often of the robots a plan moves (its target
    among them): a held robot never moves, plans stay legal, the invariants of
    :class:`Run` hold."""
    got = crowded_small_floor(seed, kind)
    if got is None:
        return
    rng, f, free, n, starts = got
    with cheap_searches():
        p = Planner(f, n, starts, seed=seed, dwell_chute=0,
                    dwell_induct=0, rescue_after=after, rotation=rotation,
                    guidance="lanes+flow" if lanes else "none")
        run = Run(f, p)
        goals = rng.choice(free, n).astype(np.int32)
        for _ in range(120):
            if rng.random() < p_fault:
                moving = np.flatnonzero(p._forced >= 0)
                r = int(rng.choice(moving)) if moving.size and rng.random() < 0.7 \
                    else int(rng.integers(n))
                (run.release if r in run.held else run.hold)(r)
                if p._plan is not None and r in run.held:
                    # a hold ends the plan if the plan moves the robot or crosses its cell
                    P, k = p._plan.configs, p._plan.k
                    inv = np.flatnonzero((P[k + 1:] != P[k]).any(axis=0))
                    assert r not in inv and r != p._plan.robot
                    assert not np.isin(p._pos[r], P[k:, inv]).any()
            run.step(goals)
            fin = np.flatnonzero(p.finished)
            goals = goals.copy()
            goals[fin] = rng.choice(free, fin.size)
    run.check()


def test_a_hold_of_the_target_mid_plan_keeps_it_in_place_then_rescues_go_on():
    """A crowded DFS maze: hold the target of the first plan halfway through it for 30 steps
    (it must not move, the plan is dropped), release it; rescues go on and the run stays
    legal."""
    rng = np.random.default_rng(5)
    f = dfs_maze(rng, 3, 4)
    free = f.free_cells
    n = int(0.45 * free.size)
    p = Planner(f, n, rng.choice(free, n, replace=False), seed=2, dwell_chute=0,
                dwell_induct=0, rescue_after=8)
    run = Run(f, p)
    goals = rng.choice(free, n).astype(np.int32)
    target = held_at = None
    with cheap_searches():
        for t in range(300):
            if target is None and p._plan is not None and p._plan.k > 0:
                target, held_at = p._plan.robot, t
                run.hold(target)
                assert p._plan is None and (p._forced < 0).all() and not p._keep_out.any()
            if held_at is not None and t == held_at + 30:
                run.release(target)
            run.step(goals)
            fin = np.flatnonzero(p.finished)
            goals = goals.copy()
            goals[fin] = rng.choice(free, fin.size)
    assert target is not None and p.rescues > 1
    run.check()


# ------------------------------------------------------------------ stations and dwell
POCKETS = """
@C@@C@@C@
@D@@D@@D@
@.@@.@@.@
I.......I
@.@@.@@.@
@D@@D@@D@
@C@@C@@C@
"""

LOOPED = """
I.D.D.I
@.CCC.@
@.DDD.@
"""


@pytest.mark.parametrize("layout,n", [(POCKETS, 9), (LOOPED, 6)])
@pytest.mark.parametrize("rotation,guidance", [(False, "none"), (True, "none"),
                                               (True, "lanes+flow")])
def test_sorting_with_dwell_counts_every_arrival_once(layout, n, rotation, guidance):
    """``make_run(tasks="sorting", dwell_chute=5, dwell_induct=1)`` on floors with drop
    cells at the end of alcoves: robots dwell while plans run, rescued robots arrive at their
    station (dwelling there first); every finish is on a cell of the goal's station after the
    dwell, counted once: the stream's count, the planner's and the step-by-step sum agree."""
    f = Floor.from_ascii(layout)
    with cheap_searches():
        p, stream = make_run(f, n, tasks="sorting", dwell_chute=5, dwell_induct=1, seed=3,
                             rescue_after=8, rotation=rotation, guidance=guidance)
        run = Run(f, p)
        goals = stream.start(p)
        p.prepare(goals)
        rescued = []
        for _ in range(250):
            if p._plan is not None and p._plan.k == p._plan.configs.shape[0] - 2:
                rescued.append(p._plan.robot)              # its plan ends in this step
            run.step(goals)
            goals = stream.update(p)
    run.check()
    assert p.rescues > 0 and rescued
    assert stream.completed == p.tasks_completed == run.fin > 0
    assert stream.delivered > 0


def test_kpis_report_rescues():
    f = Floor.from_ascii(POCKETS)
    with cheap_searches():
        p, stream = make_run(f, 9, tasks="sorting", seed=3, rescue_after=8)
        k = simulate(p, stream, 150).kpis()
    assert k["rescues"] == p.rescues > 0
    assert k["rescue_failures"] == p.rescue_failures
    assert k["rescue_after"] == 8
    p, stream = make_run(f, 9, tasks="sorting", seed=3)                  # the default
    assert simulate(p, stream, 1).kpis()["rescue_after"] == 128 == p.rescue_after
    free = Floor(np.ones((40, 40), np.int8))
    assert Planner(free, 1024, free.free_cells[:1024]).rescue_after == 1024
    assert Planner(free, 1025, free.free_cells[:1025]).rescue_after == 0   # off above


# ------------------------------------------------------------------ goals set by the caller
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31), kind=st.sampled_from(["random", "oneway", "maze"]),
       rotation=st.booleans())
def test_goals_changed_mid_plan(seed, kind, rotation):
    """The caller changes goals at will, often of the robots a plan moves: its target (the
    plan ends at once), a robot it forces (the plan goes on), to another cell or to the
    robot's own cell (then it finishes there, unless a plan forces it)."""
    got = crowded_small_floor(seed, kind)
    if got is None:
        return
    rng, f, free, n, starts = got
    with cheap_searches():
        p = Planner(f, n, starts, seed=seed, dwell_chute=0,
                    dwell_induct=0, rescue_after=8, rotation=rotation)
        run = Run(f, p)
        goals = rng.choice(free, n).astype(np.int32)
        for _ in range(120):
            goals = goals.copy()
            changed_target = None
            if p._plan is not None and rng.random() < 0.15:
                moving = np.flatnonzero(p._forced >= 0)
                r = int(p._plan.robot) if rng.random() < 0.5 else int(rng.choice(moving))
                own = rng.random() < 0.4
                new = int(p.positions[r]) if own else int(rng.choice(free))
                if new != goals[r]:
                    goals[r] = new
                    changed_target = r if r == p._plan.robot else None
            elif rng.random() < 0.05:
                r = int(rng.integers(n))
                goals[r] = p.positions[r]
            before = p.positions.copy()
            run.step(goals)
            if changed_target is not None:
                assert p._plan is None                  # its goal changed: plan dropped
                r = changed_target
                if goals[r] == before[r]:           # on its new goal: done, unless pushed off
                    assert p.finished[r] or p.positions[r] != before[r]
            fin = np.flatnonzero(p.finished)
            goals[fin] = rng.choice(free, fin.size)
    run.check()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31), kind=st.sampled_from(["random", "oneway", "maze"]),
       rotation=st.booleans(), after=st.sampled_from([1, 2, 8]))
def test_a_single_robot_needs_no_failed_rescue(seed, kind, rotation, after):
    """One robot, random goals (on one-way floors some unreachable): it never fails a
    search (alone, it is never stuck where its goal can be reached; a robot whose goal
    cannot be reached is not searched for), and without rotations never even needs one
    (every step takes it closer). Reachable goals are all reached."""
    rng = np.random.default_rng(seed)
    f = small_floor(rng, kind)
    free = f.free_cells
    p = Planner(f, 1, free[:1], seed=seed, dwell_chute=0, dwell_induct=0,
                rescue_after=after, rotation=rotation)
    run = Run(f, p)
    goal = np.array([rng.choice(free)], np.int32)
    left = 0
    for _ in range(120):
        run.step(goal)
        d = p.distance(0)
        if p.finished[0] or d < 0:                # done, or unreachable: next goal
            goal = np.array([rng.choice(free)], np.int32)
            left = 0
        else:
            left += 1
            assert left <= 3 * f.free_cells.size  # a reachable goal is reached
    run.check()
    assert p.rescue_failures == 0
    if not rotation:
        assert p.rescues == 0


@pytest.mark.parametrize("kind", ["maze", "random"])
def test_all_robots_share_one_goal(kind):
    """Every robot has the same goal cell (given again after each finish): rescues bring
    robots through the queue; plans legal, finishes on the goal."""
    rng = np.random.default_rng(7)
    f = dfs_maze(rng, 3, 3) if kind == "maze" else random_floor(rng, 5, 6, p_oneway=0.0)
    free = f.free_cells
    n = int(0.4 * free.size)
    g = int(free[free.size // 2])
    starts = rng.choice(free[free != g], n, replace=False)
    with cheap_searches():
        p = Planner(f, n, starts, seed=1, dwell_chute=0, dwell_induct=0, rescue_after=8)
        run = Run(f, p)
        goals = np.full(n, g, np.int32)
        for _ in range(150):
            run.step(goals)
    run.check()
    assert p.tasks_completed > 0 and p.rescues + p.rescue_failures > 0


# ------------------------------------------------------------------ LoRR errands with prefetch
@pytest.mark.parametrize("strategy", ["roundrobin", "greedy"])
def test_errand_streams_with_prefetch_and_rescues(strategy):
    """LoRR errands on a maze with rescues: the prefetching stream (tables asked for ahead in
    a background thread) plans exactly what the plain one does, rescues included; every
    errand reached is counted once. Tasks of three errands (greedy hands out the next task
    only on arrival: the next errand is known within a task)."""
    rng = np.random.default_rng(11)
    f = dfs_maze(rng, 3, 4)
    free = f.free_cells
    errands = rng.choice(free, 60).astype(np.int32)
    n = int(0.35 * free.size)
    out = []
    for prefetch in (True, False):
        with cheap_searches():
            p, _ = make_run(f, n, errands=errands, seed=4, rescue_after=8)
            stream = ErrandTasks(errands, n, strategy=strategy, prefetch=prefetch,
                                 offsets=np.arange(0, 61, 3))      # tasks of 3 errands
            stream.prefetch_ahead = 4
            run = Run(f, p)
            goals = stream.start(p)
            for _ in range(200):
                run.step(goals)
                goals = stream.update(p)
        out.append((run.check(), p.rescues, stream.completed, p.tables.prefetched))
        assert stream.completed == p.tasks_completed == run.fin
        assert stream.tasks_finished > 0
    (a, ra, ca, pa), (b, rb, cb, pb) = out
    assert np.array_equal(a, b) and ra == rb > 0 and ca == cb > 0
    assert pa > 0 and pb == 0                      # prefetching did happen


def test_make_run_errands_simulate_with_rescues():
    rng = np.random.default_rng(2)
    f = dfs_maze(rng, 3, 3)
    with cheap_searches():
        p, stream = make_run(f, 7, errands=rng.choice(f.free_cells, 30), seed=1,
                             rescue_after=8)
        res = simulate(p, stream, 150)
    check_paths(f, res.positions[0], res.positions)
    k = res.kpis()
    assert k["rescues"] == p.rescues > 0 and k["errands_completed"] == p.tasks_completed > 0


# ------------------------------------------------------------------ determinism, rescues off
def lifelong(f, starts, seed, steps, **kw):
    rng = np.random.default_rng(seed)
    free = f.free_cells
    n = starts.size
    p = Planner(f, n, starts, seed=seed, dwell_chute=0, dwell_induct=0, **kw)
    goals = rng.choice(free, n).astype(np.int32)
    path, first = [p.positions.copy()], None
    with cheap_searches():
        for t in range(steps):
            tried = p.rescues + p.rescue_failures
            path.append(p.step(goals).copy())
            if first is None and p.rescues:
                first = t                               # the step the first plan started
            if p.rescue_failures + p.rescues > tried:
                assert p.rescue_after and p.step_no - 1 >= p.rescue_after
            fin = np.flatnonzero(p.finished)
            goals = goals.copy()
            goals[fin] = rng.choice(free, fin.size)
    path = np.array(path)
    check_paths(f, starts, path)
    return p, path, first


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31), kind=st.sampled_from(["random", "oneway", "maze"]),
       rotation=st.booleans())
def test_same_seed_same_plans_and_rescues_off_is_plain_pibt(seed, kind, rotation):
    """Same seed, same paths (rescues included). ``rescue_after=0`` plans exactly what a
    planner with rescues does until its first rescue plan (failed searches change nothing),
    and exactly what one whose ``rescue_after`` is never reached does."""
    rng = np.random.default_rng(seed)
    f = small_floor(rng, kind)
    free = f.free_cells
    if free.size < 3:
        return
    n = max(2, int(rng.uniform(0.3, 0.6) * free.size))
    starts = rng.choice(free, n, replace=False)
    p1, a, first = lifelong(f, starts, seed, 120, rescue_after=8, rotation=rotation)
    p2, b, _ = lifelong(f, starts, seed, 120, rescue_after=8, rotation=rotation)
    assert np.array_equal(a, b) and p1.rescues == p2.rescues
    assert p1.rescue_failures == p2.rescue_failures
    p0, c, _ = lifelong(f, starts, seed, 120, rescue_after=0, rotation=rotation)
    assert p0.rescues == p0.rescue_failures == 0
    upto = a.shape[0] if first is None else first + 1       # rows before the first plan
    assert np.array_equal(a[:upto], c[:upto])
    _, d, _ = lifelong(f, starts, seed, 120, rescue_after=10**6, rotation=rotation)
    assert np.array_equal(c, d)


# ------------------------------------------------------------------ the search's part limit
def reachable_in_parts(fadj, d0, start, target, part):
    """Brute force over joint configurations (all moves / waits, distinct cells, no swaps),
    robots other than ``target`` kept in their start's part: can ``target`` reach d0 == 0?"""
    from itertools import product
    n = len(start)
    opts = lambda i, v: [v] + [u for u in fadj[v] if u >= 0 and (i == target
                                                                 or part[u] == part[start[i]])]
    seen = {tuple(start)}
    todo = [tuple(start)]
    while todo:
        cfg = todo.pop()
        if d0[cfg[target]] == 0:
            return True
        for nxt in product(*[opts(i, cfg[i]) for i in range(n)]):
            if len(set(nxt)) < n or nxt in seen:
                continue
            if any(nxt[i] == cfg[j] and nxt[j] == cfg[i] for i in range(n) for j in range(i)):
                continue
            seen.add(nxt)
            todo.append(nxt)
    return False


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 3), w=st.integers(2, 4),
       n=st.integers(2, 3))
def test_search_within_parts_is_complete(seed, h, w, n):
    """``lacam.search(part=...)`` on tiny one-way floors: a plan is found exactly when one
    exists that keeps the other robots in their strongly connected part, and a found plan
    does keep them there."""
    from sorter.agv import MoveGraph
    from sorter.agv.lacam import bfs_tables, search
    from sorter.agv.tasks import strongly_connected_parts
    rng = np.random.default_rng(seed)
    cells = np.where(rng.random((h, w)) < 0.15, 0, 1).astype(np.int8)
    moves = Floor(cells, check=False).moves.copy()
    moves[(rng.random(moves.shape) < 0.3) & (moves >= 0)] = -1
    g = MoveGraph(moves, np.where(cells.ravel() > 0, 1, 0))
    if g.n_free <= n:
        return
    part = strongly_connected_parts(g.fadj)
    start = rng.choice(g.n_free, n, replace=False).astype(np.int32)
    dist = bfs_tables(g.radj, [[int(rng.integers(g.n_free))]])
    grow = np.full(n, -1, np.int32)
    grow[0] = 0
    path, outcome, _ = search(g.fadj, dist, grow, start, 0, seed=seed, max_calls=10**6,
                              part=part)
    truth = reachable_in_parts(g.fadj.tolist(), dist[0].tolist(), start.tolist(), 0,
                               part.tolist())
    assert outcome == ("found" if truth else "none")
    if truth:
        P = np.array(path)
        assert (part[P[:, 1:]] == part[start[1:]]).all()
        check_paths(Floor(cells, moves=moves, check=False), g.free_cells[start],
                    g.free_cells[P])

"""The robot planner: distance tables vs a plain BFS, PIBT vs the plain-Python oracle,
every plan through the independent validator, determinism, liveness on a crowded floor."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from naive_pibt import NaivePIBT, bfs_distances, dijkstra_distances
from sorter.agv import DistanceTables, MoveGraph, Planner, distance_table
from sorter.agv.guidance import dock_mask, lane_costs, lane_directions
from sorter.agv.lifelong import make_run, simulate
from sorter.agv.validate import check_paths
from sorter.errors import InputError
from sorter.layout import Floor

ONE_WAY = """
I.....>>>>>......
.CD.CD.....CD.CD.
.................
.CD.CD.<<<<.CD.CD
I................
"""

OPEN = """
I.......
.CD..CD.
........
.CD..CD.
.......I
"""


def random_floor(rng, h, w, p_block=0.25, p_oneway=0.2):
    """A random grid with obstacles and some directed edges removed (one-way moves)."""
    cells = np.where(rng.random((h, w)) < p_block, 0, 1)
    f = Floor(cells, check=False)
    moves = f.moves.copy()
    drop = (rng.random(moves.shape) < p_oneway) & (moves >= 0)
    moves[drop] = -1
    return Floor(cells, moves=moves, check=False)


def run_plan(floor, planner, rng, steps, goal_cells=None):
    """Lifelong run with random goals; returns the positions [steps + 1, n]."""
    cells = floor.free_cells if goal_cells is None else goal_cells
    n = planner.n_robots
    goals = rng.choice(cells, n).astype(np.int32)
    out = [planner.positions.copy()]
    for _ in range(steps):
        out.append(planner.step(goals).copy())
        fin = np.flatnonzero(planner.finished)
        goals = goals.copy()
        goals[fin] = rng.choice(cells, fin.size)
    return np.array(out)


# ---------------------------------------------------------------- distance tables
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 9), w=st.integers(1, 9),
       k=st.integers(1, 3))
def test_distance_table_matches_plain_bfs(seed, h, w, k):
    rng = np.random.default_rng(seed)
    f = random_floor(rng, h, w)
    free = f.free_cells
    if free.size == 0:
        return
    goal = rng.choice(free, min(k, free.size), replace=False)
    want = bfs_distances(f.moves, goal)
    got = distance_table(f, goal)
    for c in range(f.n_cells):
        assert got[c] == want.get(c, -1), (c, got[c], want.get(c))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 9), w=st.integers(1, 9),
       penalty=st.integers(0, 4))
def test_weighted_tables_match_dijkstra(seed, h, w, penalty):
    rng = np.random.default_rng(seed)
    f = random_floor(rng, h, w)
    free = f.free_cells
    if free.size == 0:
        return
    costs = lane_costs(f, penalty)
    if rng.random() < 0.5:                       # arbitrary costs too
        costs = rng.integers(1, 6, size=costs.shape).astype(np.uint8)
    goal = rng.choice(free, min(2, free.size), replace=False)
    want = dijkstra_distances(f.moves, costs, goal)
    got = DistanceTables(f, costs=costs).lookup("g", goal)
    for c in range(f.n_cells):
        assert got[c] == want.get(c, -1), (c, got[c], want.get(c))


def test_lanes_alternate_on_corridors():
    f = Floor.from_ascii("""
    .........
    .@.@.@.@.
    .........
    .@.@.@.@.
    .........
    """)
    c = lane_costs(f, 2)
    east, west = 0, 2
    rows = [0, 2, 4]                              # corridor rows alternate east / west
    pref = ["east" if c[f.cell(r, 4), east] == 1 else "west" for r in rows]
    assert pref == ["east", "west", "east"]
    assert all(c[f.cell(r, 4), west if p == "east" else east] == 3 for r, p in zip(rows, pref))


def test_carriageways_group_adjacent_corridor_rows():
    """An open band of six rows becomes two 3-row carriageways; the streets between blocks
    below it still alternate one by one; columns likewise."""
    f = Floor.from_ascii("\n".join(["." * 11] * 6 + [".@.@.@.@.@.", "." * 11,
                                                       ".@.@.@.@.@.", "." * 11]))
    h1, _ = lane_directions(f)
    h4, v4 = lane_directions(f, carriageway=4)
    rows = lambda h: ["EW"[int(h[f.cell(r, 4)] == 2)] for r in range(f.height)]
    assert "".join(rows(h1)) == "EWEWEWWEEW"          # every corridor row alternates
    assert "".join(rows(h4)) == "EEEWWWWEEW"          # band 3 + 3, then streets alternate
    cols = ["SN"[int(v4[f.cell(0, c)] == 3)] for c in range(f.width)]
    assert "".join(cols) == "SSSSNNNNSSS"             # 11 corridor columns: 4 + 4 + 3
    for bad in (0, 65, 2.5, "3", True):
        with pytest.raises(InputError, match="carriageway"):
            lane_directions(f, carriageway=bad)
    with pytest.raises(InputError, match="carriageway"):
        Planner(f, 1, [0], guidance="lanes", carriageway=2.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=30), st.integers(1, 5))
def test_carriageway_groups_properties(corr, k):
    """Direction groups: inside a run of m adjacent corridor lines, groups of at most
    min(k, ceil(m/2)) lines, consecutive groups alternate; k = 1 is the plain alternation."""
    from sorter.agv.guidance import _group_index
    corr = np.array(corr, bool)
    g = _group_index(corr, k)
    plain = np.cumsum(corr) - 1
    if k == 1:
        first = np.argmax(corr) if corr.any() else corr.size
        assert g[first:].tolist() == plain[first:].tolist()
    r = 0
    while r < corr.size:
        if not corr[r]:
            assert g[r] == (g[r - 1] if r else 0)          # follows the last group
            r += 1
            continue
        e = r
        while e < corr.size and corr[e]:
            e += 1
        run = g[r:e]
        assert all(b - a in (0, 1) for a, b in zip(run, run[1:]))
        sizes = np.unique(run, return_counts=True)[1]
        assert sizes.max() <= max(1, min(k, (e - r + 1) // 2))
        r = e


def test_distance_pool_lru_evicts_and_recomputes_exactly():
    rng = np.random.default_rng(3)
    f = random_floor(rng, 12, 14, p_oneway=0.1)
    free = f.free_cells
    # room for ~3 idle tables: eviction happens, answers stay exact
    tabs = DistanceTables(f, max_mb=3 * free.size * 2 / 2**20)
    held = [tabs.acquire(("cell", int(c)), [int(c)]) for c in free[:4]]
    for c in rng.choice(free, 40):
        want = bfs_distances(f.moves, [int(c)])
        got = tabs.lookup(("cell", int(c)), [int(c)])
        assert all(got[x] == want.get(x, -1) for x in range(f.n_cells))
    # the held tables were never evicted
    for r, c in zip(held, free[:4]):
        row = tabs.values(r)
        want = bfs_distances(f.moves, [int(c)])
        g = MoveGraph.of(f)
        assert all(int(row[g.fidx[x]]) == want.get(x, tabs.unreachable) for x in free)
    assert tabs.n_cached <= 4 + 4      # bounded: held + the idle allowance (+ rounding)


def test_precompute_matches_lazy_tables():
    f = Floor.from_ascii(ONE_WAY)
    tabs = DistanceTables(f)
    goals = {("chute", s.index): s.cells for s in f.chutes}
    tabs.precompute(goals)
    for s in f.chutes:
        want = bfs_distances(f.moves, s.cells)
        got = tabs.lookup(("chute", s.index), s.cells)
        assert all(got[x] == want.get(x, -1) for x in range(f.n_cells))


# dead ends and one-wide corridors, where robots must swap (PIBT+'s swap, on by default)
DEAD_ENDS = """
..@....@..
.@@.@@.@@.
....@.....
@@.@@.@@.@
..........
"""


# ---------------------------------------------------------------- PIBT vs the oracle
def _lockstep(p, q, goals, pool, steps, rng):
    """Step the planner ``p`` and the oracle ``q`` together, asserting the same moves at every
    step; a robot that finishes gets a new goal drawn from ``pool``. Returns the path."""
    path = [p.positions.copy()]
    for t in range(steps):
        for i in range(goals.size):
            q.set_goal(i, int(goals[i]), [int(goals[i])])
        got = p.step(goals)
        assert got.tolist() == q.step(), f"step {t}"
        path.append(got.copy())
        fin = np.flatnonzero(p.finished)
        goals = goals.copy()
        goals[fin] = rng.choice(pool, fin.size)
    return np.array(path)


@pytest.mark.parametrize("layout", [ONE_WAY, OPEN, DEAD_ENDS])
@pytest.mark.parametrize("guidance", ["none", "flow", "lanes+flow"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planner_matches_naive_pibt(layout, guidance, seed):
    f = Floor.from_ascii(layout)
    rng = np.random.default_rng(seed)
    free = f.free_cells
    n = int((0.3 if layout is DEAD_ENDS else 0.45) * free.size)
    starts = rng.choice(free, n, replace=False)
    p = Planner(f, n, starts, seed=seed, dwell_chute=2, dwell_induct=1, guidance=guidance,
                flow_halflife=8)
    plain = Planner(f, n, starts, seed=seed, dwell_chute=2, dwell_induct=1, guidance=guidance,
                    flow_halflife=8, swap=False)
    differs = False
    costs = lane_costs(f, 2) if "lanes" in guidance else None
    q = NaivePIBT(f.moves, f.cells, starts, seed, 2, 1, flow="flow" in guidance, flow_halflife=8,
                  costs=costs, junction_order=p.junction_order)
    goals = rng.choice(free, n).astype(np.int32)
    path = [p.positions.copy()]
    for t in range(120):
        for i in range(n):
            q.set_goal(i, int(goals[i]), [int(goals[i])])
        got = p.step(goals)
        want = q.step()
        assert got.tolist() == want, f"step {t}"
        if not differs:                 # until the swap first changes a move
            differs = plain.step(goals).tolist() != want
        assert p.finished.tolist() == q.finished
        path.append(got.copy())
        fin = np.flatnonzero(p.finished)
        goals = goals.copy()
        goals[fin] = rng.choice(free, fin.size)
    assert p.tasks_completed > n // 2
    if layout is DEAD_ENDS:
        assert differs                  # the swap was used, the same way as the oracle's
    check_paths(f, starts, np.array(path))


def test_station_goals_match_naive_multi_source():
    f = Floor.from_ascii(ONE_WAY)
    rng = np.random.default_rng(5)
    free = f.free_cells
    n = 20
    starts = rng.choice(free, n, replace=False)
    p = Planner(f, n, starts, seed=5, dwell_chute=3, dwell_induct=1, station_goals=True)
    q = NaivePIBT(f.moves, f.cells, starts, 5, 3, 1)
    stations = [("chute", s.index, s.cells) for s in f.chutes] + \
               [("induct", s.index, s.cells) for s in f.inducts]
    pick = rng.integers(len(stations), size=n)
    for t in range(150):
        goals = np.array([int(stations[k][2][0]) for k in pick], np.int32)
        for i in range(n):
            kind, idx, cells = stations[pick[i]]
            q.set_goal(i, (kind, idx), [int(c) for c in cells])
        assert p.step(goals).tolist() == q.step(), f"step {t}"
        fin = np.flatnonzero(p.finished)
        pick = pick.copy()
        pick[fin] = rng.integers(len(stations), size=fin.size)
    assert p.tasks_completed > 0


# ---------------------------------------------------------------- validity, determinism
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), density=st.floats(0.1, 0.9))
def test_plans_are_valid_on_random_floors(seed, density):
    rng = np.random.default_rng(seed)
    f = random_floor(rng, 8, 10, p_block=0.2, p_oneway=0.15)
    free = f.free_cells
    if free.size < 2:
        return
    n = max(1, int(density * free.size))
    starts = rng.choice(free, n, replace=False)
    p = Planner(f, n, starts, seed=seed, dwell_chute=0, dwell_induct=0,
                guidance=["none", "flow", "lanes", "lanes+flow"][seed % 4])
    check_paths(f, starts, run_plan(f, p, rng, 40))


def test_deterministic_for_a_seed_and_seed_matters():
    f = Floor.from_ascii(OPEN)
    free = f.free_cells
    runs = {}
    for seed in (7, 7, 8, 9):
        rng = np.random.default_rng(0)              # same starts and goals for every run
        starts = rng.choice(free, 18, replace=False)
        p = Planner(f, 18, starts, seed=seed, dwell_chute=1, guidance="flow")
        runs.setdefault(seed, []).append(run_plan(f, p, rng, 80))
    assert np.array_equal(runs[7][0], runs[7][1])
    assert not (np.array_equal(runs[7][0], runs[8][0]) and np.array_equal(runs[7][0], runs[9][0]))


# ---------------------------------------------------------------- liveness
@pytest.mark.parametrize("guidance", ["none", "lanes+flow"])
def test_no_robot_stuck_forever_on_a_crowded_floor(guidance):
    f = Floor.from_ascii("""
    ........
    .@@..@@.
    ........
    .@@..@@.
    ........
    """)
    free = f.free_cells
    rng = np.random.default_rng(11)
    n = int(0.7 * free.size)
    starts = rng.choice(free, n, replace=False)
    p = Planner(f, n, starts, seed=11, dwell_chute=0, dwell_induct=0, guidance=guidance)
    goals = rng.choice(free, n).astype(np.int32)
    done_per_robot = np.zeros(n, np.int64)
    last_done = np.zeros(n, np.int64)
    path = [p.positions.copy()]
    for t in range(1, 1500):
        path.append(p.step(goals).copy())
        fin = np.flatnonzero(p.finished)
        done_per_robot[fin] += 1
        last_done[fin] = t
        goals = goals.copy()
        goals[fin] = rng.choice(free, fin.size)
    assert (done_per_robot >= 3).all(), done_per_robot.min()
    assert (1500 - last_done).max() < 500          # nobody idles at the end either
    check_paths(f, starts, np.array(path))


def test_dwell_keeps_a_robot_on_its_drop_cell():
    f = Floor.from_ascii("I..D\n...C")
    drop = f.chutes[0].cells[0]
    p = Planner(f, 1, [f.cell(0, 0)], seed=0, dwell_chute=4, dwell_induct=0)
    seen = []
    for _ in range(10):
        seen.append(int(p.step(np.array([drop]))[0]))
        if p.finished[0]:
            break
    # reach the drop cell after 3 moves, then stay 4 more steps before the goal is done
    assert seen[2] == drop and seen[-1] == drop and len(seen) == 7
    assert p.tasks_completed == 1


# ---------------------------------------------------------------- boundary
def test_bad_input_is_rejected():
    f = Floor.from_ascii("..@..")
    with pytest.raises(InputError, match="obstacle"):
        Planner(f, 1, [2])
    with pytest.raises(InputError, match="distinct"):
        Planner(f, 2, [0, 0])
    with pytest.raises(InputError, match="outside"):
        Planner(f, 1, [99])
    with pytest.raises(InputError, match="starts"):
        Planner(f, 2, [0])
    with pytest.raises(InputError, match="guidance"):
        Planner(f, 1, [0], guidance="magic")
    with pytest.raises(InputError, match="turn_weight"):
        Planner(f, 1, [0], rotation=True, turn_weight=-1)
    p = Planner(f, 1, [0])
    with pytest.raises(InputError, match="shape"):
        p.step(np.array([1, 1]))
    with pytest.raises(InputError, match="obstacle"):
        p.step(np.array([2]))
    with pytest.raises(InputError):
        distance_table(f, [])


def test_unreachable_goal_robot_waits_and_plan_stays_valid():
    f = Floor.from_ascii("..@..")
    starts = np.array([0, 4])
    p = Planner(f, 2, starts, seed=0, dwell_chute=0, dwell_induct=0)
    path = [p.positions.copy()]
    for _ in range(5):
        path.append(p.step(np.array([3, 1])).copy())     # both goals behind the wall
    assert p.tasks_completed == 0
    assert p.distance(0) == -1
    check_paths(f, starts, np.array(path))


# ---------------------------------------------------------------- rotation action model
def check_rotation_plan(floor, paths, headings):
    """Each step a robot moves one cell along its heading, or stays and turns 90 degrees / waits."""
    for t in range(1, paths.shape[0]):
        for i in range(paths.shape[1]):
            a, b = int(paths[t - 1, i]), int(paths[t, i])
            h0, h1 = int(headings[t - 1, i]), int(headings[t, i])
            if a != b:
                assert floor.moves[a, h0] == b and h1 == h0, (t, i)
            else:
                assert (h1 - h0) % 4 in (0, 1, 3), (t, i)


@pytest.mark.parametrize("layout", [ONE_WAY, OPEN])
@pytest.mark.parametrize("guidance", ["none", "lanes+flow"])
@pytest.mark.parametrize("turn_weight,hold", [(0, False), (2, False), (2, True)])
def test_rotation_model_matches_naive_and_is_legal(layout, guidance, turn_weight, hold):
    f = Floor.from_ascii(layout)
    rng = np.random.default_rng(4)
    free = f.free_cells
    n = int(0.4 * free.size)
    starts = rng.choice(free, n, replace=False)
    # the kernel against its oracle: congestion costs (which tables, tests/test_congestion.py) off
    p = Planner(f, n, starts, seed=4, dwell_chute=1, dwell_induct=0, guidance=guidance,
                rotation=True, flow_halflife=8, turn_weight=turn_weight, hold_on_turn=hold,
                congestion_period=0)
    costs = lane_costs(f, 2, carriageway=4) if "lanes" in guidance else None   # rotation default
    q = NaivePIBT(f.moves, f.cells, starts, 4, 1, 0, flow="flow" in guidance, flow_halflife=8,
                  costs=costs, rotation=True, turn_weight=turn_weight, hold_on_turn=hold)
    goals = rng.choice(free, n).astype(np.int32)
    path, heads = [p.positions.copy()], [p.headings]
    for t in range(150):
        for i in range(n):
            q.set_goal(i, int(goals[i]), [int(goals[i])])
        got = p.step(goals)
        assert got.tolist() == q.step(), f"step {t}"
        assert p.headings.tolist() == q.heading
        path.append(got.copy())
        heads.append(p.headings)
        fin = np.flatnonzero(p.finished)
        goals = goals.copy()
        goals[fin] = rng.choice(free, fin.size)
    assert p.tasks_completed > n // 2
    path = np.array(path)
    check_paths(f, starts, path)
    check_rotation_plan(f, path, np.array(heads))


def rotation_run(floor, planner, rng, steps, goal_cells=None):
    """Lifelong run with random goals under the rotation model: (positions, headings)."""
    cells = floor.free_cells if goal_cells is None else goal_cells
    n = planner.n_robots
    goals = rng.choice(cells, n).astype(np.int32)
    path, heads = [planner.positions.copy()], [planner.headings]
    for _ in range(steps):
        path.append(planner.step(goals).copy())
        heads.append(planner.headings)
        fin = np.flatnonzero(planner.finished)
        goals = goals.copy()
        goals[fin] = rng.choice(cells, fin.size)
    return np.array(path), np.array(heads)


def test_rotation_helper_rejects_illegal_moves():
    """The heading check itself: a sideways move, a move against the heading, a U-turn in one
    step are rejected; forward moves and quarter turns pass."""
    f = Floor.from_ascii("...\n...")
    c = f.cell
    ok = np.array([[c(0, 0)], [c(0, 1)], [c(0, 1)], [c(1, 1)]])
    check_rotation_plan(f, ok, np.array([[0], [0], [1], [1]]))   # E, forward, turn S, forward
    bad = [(np.array([[c(0, 0)], [c(1, 0)]]), np.array([[0], [0]])),  # sideways (facing E)
           (np.array([[c(0, 1)], [c(0, 0)]]), np.array([[0], [0]])),  # backward
           (np.array([[c(0, 0)], [c(0, 0)]]), np.array([[0], [2]])),  # U-turn in one step
           (np.array([[c(0, 0)], [c(0, 1)]]), np.array([[0], [1]]))]  # move and turn at once
    for paths, heads in bad:
        with pytest.raises(AssertionError):
            check_rotation_plan(f, paths, heads)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), density=st.floats(0.1, 0.7),
       turn_weight=st.integers(0, 4), hold=st.booleans())
def test_rotation_plans_are_valid_and_legal_on_random_floors(seed, density, turn_weight, hold):
    rng = np.random.default_rng(seed)
    f = random_floor(rng, 7, 9, p_block=0.2, p_oneway=0.1)
    free = f.free_cells
    if free.size < 2:
        return
    n = max(1, int(density * free.size))
    starts = rng.choice(free, n, replace=False)
    heads0 = rng.integers(0, 4, n)
    guidance = ["none", "flow", "lanes", "lanes+flow"][seed % 4]
    p = Planner(f, n, starts, seed=seed, dwell_chute=seed % 3, dwell_induct=0, guidance=guidance,
                rotation=True, headings=heads0, turn_weight=turn_weight, hold_on_turn=hold)
    path, heads = rotation_run(f, p, rng, 40)
    assert heads[0].tolist() == heads0.tolist()
    check_paths(f, starts, path)                  # the validator knows nothing of headings
    check_rotation_plan(f, path, heads)


@pytest.mark.parametrize("turn_weight,hold", [(0, False), (2, True)])
def test_rotation_no_robot_stuck_forever_on_a_crowded_floor(turn_weight, hold):
    f = Floor.from_ascii("""
    ........
    .@@..@@.
    ........
    .@@..@@.
    ........
    """)
    free = f.free_cells
    rng = np.random.default_rng(12)
    n = int(0.5 * free.size)
    starts = rng.choice(free, n, replace=False)
    p = Planner(f, n, starts, seed=12, dwell_chute=0, dwell_induct=0, guidance="lanes+flow",
                rotation=True, turn_weight=turn_weight, hold_on_turn=hold)
    path, heads = rotation_run(f, p, rng, 1500)
    check_paths(f, starts, path)
    check_rotation_plan(f, path, heads)
    moved = path[1:] != path[:-1]
    last_move = np.array([np.flatnonzero(moved[:, i]).max() for i in range(n)])
    assert (moved.sum(0) >= 20).all()
    assert (1500 - last_move).max() < 500


def test_turn_weight_makes_pushed_robots_move_on():
    """A robot pushed from behind, facing east with a free cell ahead (one step farther from
    its goal) and a free cell beside it (one step nearer): with turn weight 2 it moves on east
    and its pusher follows this step; with weight 0 it turns toward its goal and both wait."""
    f = Floor.from_ascii("....\n....")
    c = f.cell
    starts = [c(0, 0), c(0, 1)]                   # robot 0 pushes robot 1 (both facing east)
    goals = np.array([c(0, 2), c(1, 0)], np.int32)   # robot 1's goal is back south-west
    got = {}
    for w in (0, 2):
        p = Planner(f, 2, starts, seed=0, dwell_chute=0, dwell_induct=0, rotation=True,
                    turn_weight=w, hold_on_turn=False)
        p.prepare(goals)
        p._elapsed[0] = 100                        # robot 0 plans first (pushes robot 1)
        got[w] = p.step(goals).tolist()
    assert got[2] == [c(0, 1), c(0, 2)]
    assert got[0] == [c(0, 0), c(0, 1)]


def test_hold_on_turn_keeps_a_turning_robot_cell_for_the_others():
    """Robot 1 (planning first) must turn north toward its goal; robot 0 behind it wants its
    cell (east; north is as short). Holding: robot 0 sees the cell taken while planning and
    turns toward its other way at once; without holding it plans to follow and is stopped
    afterwards (waits facing east)."""
    f = Floor.from_ascii("...\n...")
    c = f.cell
    starts = [c(1, 0), c(1, 1)]
    goals = np.array([c(0, 2), c(0, 1)], np.int32)   # robot 0: east or north; robot 1: north
    heads = {}
    for hold in (False, True):
        p = Planner(f, 2, starts, seed=0, dwell_chute=0, dwell_induct=0, rotation=True,
                    hold_on_turn=hold)
        p.prepare(goals)
        p._elapsed[1] = 100                        # robot 1 plans first
        pos = p.step(goals).tolist()
        assert pos == starts                       # both stay this step
        heads[hold] = p.headings.tolist()
    assert heads[False] == [0, 3]                  # robot 0 still faces east
    assert heads[True] == [3, 3]                   # robot 0 turned north (its detour)


def test_dock_mask_marks_moves_along_a_line_of_inducts():
    f = Floor.from_ascii("""
    I.I.I.I
    .......
    I......
    .......
    I......
    """)
    m = dock_mask(f)
    E, S, W, N = 0, 1, 2, 3
    c = f.cell
    # along row 0 into an inner induct of the line: marked, from either side
    assert m[c(0, 1), E] and m[c(0, 3), W] and m[c(0, 3), E] and m[c(0, 5), W]
    # into a line induct from below (its "dock" side), or leaving one: not marked
    assert not m[c(1, 2), N] and not m[c(0, 2), E] and not m[c(0, 2), S]
    # the end cells of a line count (one induct two cells on), the column line too
    assert m[c(0, 1), W] and m[c(1, 0), S] and m[c(3, 0), N]
    # nothing else
    want = {(c(0, 1), E), (c(0, 3), W), (c(0, 3), E), (c(0, 5), W), (c(0, 5), E),
            (c(0, 1), W), (c(1, 0), S), (c(1, 0), N), (c(3, 0), S), (c(3, 0), N)}
    assert {(int(a), int(d)) for a, d in zip(*np.nonzero(m))} == want
    base = lane_costs(f, 2)
    docked = lane_costs(f, 2, dock_penalty=3)
    assert (docked - base == np.where(m, 3, 0)).all()
    with pytest.raises(InputError, match="dock"):
        lane_costs(f, 2, dock_penalty=-1)


def test_docks_only_change_rotation_plans_with_lanes():
    """dock_penalty shapes the tables of a rotation planner with lanes, never the 4-connected
    planner (its behaviour and figures stay as they were)."""
    f = Floor.from_ascii("I.I.I.I\n.......\n.......")
    for rotation in (False, True):
        p = Planner(f, 1, [f.cell(2, 0)], guidance="lanes", rotation=rotation)
        q = Planner(f, 1, [f.cell(2, 0)], guidance="lanes", rotation=rotation, dock_penalty=0)
        key = ("cell", f.cell(0, 4))
        same = np.array_equal(p.tables.lookup(key, [f.cell(0, 4)]),
                              q.tables.lookup(key, [f.cell(0, 4)]))
        assert same != rotation


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(0, 2**32), st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_incremental_priority_order_is_argsort(n, seed, reset_rates):
    # the kernel's O(n) order (previous order merged with the robots whose wait did not
    # just grow by one) against a plain argsort of the keys, over steps of random resets
    from sorter.agv.pibt import _priority_order
    rng = np.random.default_rng(seed)
    waited = rng.integers(0, 50, n)
    h = rng.integers(0, 2**20, n)
    ost = np.empty((3, n), np.int64)
    ost[1] = -2
    for rate in reset_rates:
        key = (waited << 40) | (h << 20) | np.arange(n)
        assert _priority_order(key, waited, ost).tolist() == np.argsort(key).tolist()
        waited = np.where(rng.random(n) < rate, rng.integers(0, 3, n), waited + 1)
        waited[rng.random(n) < rate / 4] -= 1            # held: no growth
        waited = np.maximum(waited, 0)


# ---------------------------------------------------------------- swaps in dead ends
ALCOVE = """
I......
.......
@@.@@@@
@@.@@@@
@@D@@@@
@@C@@@@
"""


@pytest.mark.parametrize("guidance", ["none", "lanes+flow"])
@pytest.mark.parametrize("rotation", [False, True])
def test_robots_pass_each_other_in_a_dead_end_alcove(guidance, rotation):
    """A drop cell at the end of a one-wide alcove: the robot leaving it and the one coming in
    must swap. Plain PIBT forbids swaps and the pair waits for ever (checked: it stops after
    a few tasks); with the swap both keep working, and the plan stays valid. (Rescues off:
    this is the swap alone; ``tests/test_lacam.py`` has the rescues.)"""
    f = Floor.from_ascii(ALCOVE)
    done = {}
    for swap in (False, True):
        planner, stream = make_run(f, 2, seed=0, guidance=guidance, rotation=rotation)
        planner.swap = swap
        planner.rescue_after = 0
        res = simulate(planner, stream, 400)
        check_paths(f, res.positions[0], res.positions)
        if rotation:
            check_rotation_plan(f, res.positions, res.headings)
        done[swap] = res.tasks_completed
        last = np.flatnonzero((res.positions[1:] != res.positions[:-1]).any(axis=1))
        if swap:
            assert last.size and last[-1] > 350            # still moving at the end
    assert done[False] <= 6 and done[True] >= 20, done


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 9), st.integers(3, 9), st.floats(0.15, 0.4),
       st.booleans())
def test_swap_matches_the_oracle_on_random_floors(seed, h, w, density, rotation):
    """Random floors full of dead ends and one-wide corridors (obstacle density 15-40%): the
    compiled planner with the swap makes the same moves as the plain-Python oracle, step by
    step, with and without rotations, and its plan is valid."""
    rng = np.random.default_rng(seed)
    grid = np.where(rng.random((h, w)) < density, "@", ".")
    f = Floor.from_ascii("\n".join("".join(r) for r in grid))
    free = f.free_cells
    if free.size < 4:
        return
    n = max(2, free.size // 4)
    starts = rng.choice(free, n, replace=False)
    p = Planner(f, n, starts, seed=seed, dwell_chute=0, dwell_induct=0, rotation=rotation)
    q = NaivePIBT(f.moves, f.cells, starts, seed, 0, 0, rotation=rotation,
                  turn_weight=p.turn_weight, hold_on_turn=p.hold_on_turn)
    path = _lockstep(p, q, rng.choice(free, n).astype(np.int32), free, 40, rng)
    check_paths(f, starts, path)


# ---------------------------------------------------------------- junction order (one-way floors)
def manhattan_moves(h, w, holes=()):
    """A grid of one-way streets (RHCR's kind): row r runs east when r is even, else west;
    column c south when c is even, else north; ``holes`` are obstacle cells. Every move is
    one-way; with even h and w and no holes the grid is strongly connected."""
    moves = np.full((h * w, 4), -1, np.int64)
    for r in range(h):
        for c in range(w):
            v = r * w + c
            if v in holes:
                continue
            for d, (dr, dc) in enumerate(((0, 1), (1, 0), (0, -1), (-1, 0))):
                rr, cc = r + dr, c + dc
                if not (0 <= rr < h and 0 <= cc < w) or rr * w + cc in holes:
                    continue
                if (d == 0 and r % 2 == 0) or (d == 2 and r % 2 == 1) \
                        or (d == 1 and c % 2 == 0) or (d == 3 and c % 2 == 1):
                    moves[v, d] = rr * w + cc
    return moves


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([2, 4, 6]), st.sampled_from([2, 4, 6, 8]),
       st.floats(0.2, 0.7), st.sampled_from(["none", "flow"]))
def test_junction_order_matches_the_oracle_on_one_way_grids(seed, h, w, density, guidance):
    """One-way street grids: with the junction order (robots on crossings first, those leaving
    the crossing before them; straight on before a turn) the compiled planner makes the same
    moves as the plain-Python oracle step by step, and the plan is valid."""
    moves = manhattan_moves(h, w)
    cells = np.ones(h * w, np.int8)
    rng = np.random.default_rng(seed)
    n = max(1, int(density * h * w))
    starts = rng.choice(h * w, n, replace=False)
    p = Planner(moves, n, starts, seed=seed, dwell_chute=0, dwell_induct=0, guidance=guidance,
                flow_halflife=8, junction_order=True)
    q = NaivePIBT(moves, cells, starts, seed, 0, 0, flow=guidance == "flow", flow_halflife=8,
                  junction_order=True)
    path = _lockstep(p, q, rng.choice(h * w, n).astype(np.int32), np.arange(h * w), 60, rng)
    check_paths(Floor(np.ones((h, w), np.int8), moves=moves), starts, path)


def test_junction_order_changes_plans_and_its_default():
    """On by default only for the improved planner on a floor of one-way moves without
    rotations; it changes the plan there (so the oracle test above tests something), and is
    refused with the rotation model."""
    moves = manhattan_moves(6, 8)
    starts = np.arange(0, 48, 2)
    goals = ((starts * 7 + 5) % 48).astype(np.int32)
    on = Planner(moves, starts.size, starts, seed=1, guidance="flow")
    assert on.junction_order and on.one_way
    assert not Planner(moves, starts.size, starts, seed=1).junction_order       # plain PIBT
    off = Planner(moves, starts.size, starts, seed=1, guidance="flow", junction_order=False)
    a = [on.step(goals).tolist() for _ in range(30)]
    b = [off.step(goals).tolist() for _ in range(30)]
    assert a != b
    two_way = Floor.from_ascii(OPEN)
    st_ = two_way.free_cells[:4]
    assert not Planner(two_way, 4, st_, guidance="lanes+flow").junction_order
    with pytest.raises(InputError, match="junction_order"):
        Planner(moves, 2, [0, 1], guidance="flow", rotation=True, junction_order=True)

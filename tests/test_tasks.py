"""Lifelong task streams: LoRR errands, sorting floors, destination mixes; tasks keep completing."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sorter.agv import Planner
from sorter.agv.lifelong import default_starts, make_run, simulate
from sorter.agv.tasks import ChuteTable, DestinationMix, ErrandTasks, RandomTasks, SortingTasks
from sorter.agv.validate import check_paths
from sorter.errors import InputError
from sorter.layout import Floor, sortation_floor
from sorter.resources import shared_path

SMALL = """
I..........I
..CD..CD..CD
............
.DC..DC..DC.
I..........I
"""


def test_errands_are_handed_out_round_robin_and_cycle():
    f = Floor.from_ascii("." * 12 + "\n" + "." * 12)      # two lanes: robots can pass
    errands = np.array([3, 7, 11, 1, 5])
    n = 2
    p = Planner(f, n, [0, 10], seed=0, dwell_chute=0, dwell_induct=0)
    t = ErrandTasks(errands, n)
    goals = t.start(p)
    seen = {0: [int(goals[0])], 1: [int(goals[1])]}
    for _ in range(200):
        p.step(goals)
        goals = t.update(p)
        for i in np.flatnonzero(p.finished):
            seen[int(i)].append(int(goals[i]))
    # robot i's k-th errand is errands[(i + k n) % len]
    for i in range(n):
        want = [int(errands[(i + k * n) % errands.size]) for k in range(len(seen[i]))]
        assert seen[i] == want
    assert t.completed == p.tasks_completed > 10


def test_same_errand_twice_in_a_row_completes_twice():
    f = Floor.from_ascii("....")
    p = Planner(f, 1, [0], seed=0, dwell_chute=0, dwell_induct=0)
    t = ErrandTasks([2, 2, 3], 1)
    goals = t.start(p)
    for _ in range(10):
        p.step(goals)
        goals = t.update(p)
    assert t.completed >= 4          # 2, 2, 3, 2, 2, 3 ... never stuck on a repeated errand


def test_destination_mixes():
    m = DestinationMix(10, "721")
    assert m.p[:2].sum() == pytest.approx(0.7)
    assert m.p[2:5].sum() == pytest.approx(0.2)
    assert m.p[5:].sum() == pytest.approx(0.1)
    z = DestinationMix(50, "zipf", s=1.0)
    assert np.all(np.diff(z.p) < 0) and z.p.sum() == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    draws = z.draw(rng, 20000)
    freq = np.bincount(draws, minlength=50) / draws.size
    assert np.abs(freq - z.p).max() < 0.02
    assert DestinationMix(7, "uniform").p == pytest.approx(np.full(7, 1 / 7))
    with pytest.raises(InputError):
        DestinationMix(5, "pareto")


def test_chute_table_covers_every_destination():
    t = ChuteTable(40, 7, chutes_per_destination=3)
    rng = np.random.default_rng(1)
    for d in range(7):
        assert t.per_dest[d].size >= 2
        assert t.route(d, rng) in set(t.per_dest[d].tolist())
    allc = np.concatenate(t.per_dest)
    assert np.unique(allc).size == allc.size
    with pytest.raises(InputError):
        ChuteTable(3, 5)


@pytest.mark.parametrize("induct_choice", ["nearest", "balanced"])
def test_sorting_tasks_alternate_induct_and_chute(induct_choice):
    f = Floor.from_ascii(SMALL)
    rng = np.random.default_rng(3)
    n = 12
    starts = default_starts(f, n, rng)
    p = Planner(f, n, starts, seed=3, dwell_chute=2, dwell_induct=1, station_goals=True)
    t = SortingTasks(f, n, rng, mix="721", induct_choice=induct_choice)
    goals = t.start(p)
    assert (f.cells[goals] == 2).all()                 # everyone first fetches a parcel
    path = [p.positions.copy()]
    kinds = [[] for _ in range(n)]
    for _ in range(400):
        path.append(p.step(goals).copy())
        for i in np.flatnonzero(p.finished):
            kinds[i].append(int(f.cells[p.positions[i]]))
        goals = t.update(p)
        assert (t.load >= 0).all() and t.load.sum() == (t.heading == 0).sum()
    for k in kinds:
        assert len(k) >= 4
        assert k[0::2] == [2] * len(k[0::2]) and k[1::2] == [3] * len(k[1::2])
    assert t.delivered == sum(len(k[1::2]) for k in kinds)
    assert t.completed == p.tasks_completed
    check_paths(f, starts, np.array(path))


def test_lifelong_tasks_keep_completing_on_a_generated_floor():
    f = sortation_floor(20, 30, 8, 24, seed=2)
    p, s = make_run(f, 120, seed=2, guidance="lanes+flow")
    r = simulate(p, s, 600)
    per_window = [np.diff(r.positions[a:a + 100], axis=0).any(axis=0).sum() for a in range(0, 600, 100)]
    assert all(w > 0 for w in per_window)
    assert r.tasks_completed > 120 and r.delivered > 40
    check_paths(f, r.positions[0], r.positions)
    # count tasks per 100-step window via a second, identical run: completion never stops
    p2, s2 = make_run(f, 120, seed=2, guidance="lanes+flow")
    goals = s2.start(p2)
    done = []
    for t in range(600):
        p2.step(goals)
        goals = s2.update(p2)
        done.append(int(p2.finished.sum()))
    assert s2.completed == r.tasks_completed                      # deterministic
    assert min(sum(done[a:a + 100]) for a in range(0, 600, 100)) > 0


def test_random_tasks_on_a_map_without_roles():
    f = Floor.from_ascii("""
    ........
    .@@..@@.
    ........
    """)
    assert not f.inducts and not f.chutes
    p, s = make_run(f, 6, seed=4)
    assert isinstance(s, RandomTasks)
    r = simulate(p, s, 100)
    assert r.tasks_completed > 6
    with pytest.raises(InputError, match="induct"):
        SortingTasks(f, 6, np.random.default_rng(0))


def test_lorr_warehouse_small_errands_complete():
    path = shared_path("benchmarks", "lorr2023", "example_instances", "warehouse.domain",
                       "EI23-warehouse_small_50.json")
    if path is None:
        pytest.skip("../shared/benchmarks (LoRR 2023) not present")
    from sorter.layout.lorr import load_lorr_problem
    prob = load_lorr_problem(path)
    p, s = make_run(prob.floor, prob.team_size, prob.starts, seed=0, errands=prob.tasks,
                    dwell_chute=0, dwell_induct=0)
    r = simulate(p, s, 200)
    assert r.tasks_completed > prob.team_size
    # every completed errand is one of the file's cells in round-robin order
    k = s.k
    assert k.sum() == r.tasks_completed
    check_paths(prob.floor, prob.starts, r.positions)


def test_default_starts_prefer_travel_cells():
    f = Floor.from_ascii(SMALL)
    rng = np.random.default_rng(0)
    s = default_starts(f, 10, rng)
    assert (f.cells[s] == 1).all() and np.unique(s).size == 10
    with pytest.raises(InputError, match="fit"):
        default_starts(f, f.free_cells.size + 1, rng)


class _FakePlanner:
    """Stands in for a Planner: positions and the robots that finished an errand."""

    def __init__(self, positions):
        self.positions = np.asarray(positions, np.int32)
        self.finished = np.zeros(self.positions.size, bool)


def _nearest_case(data):
    """A small grid (width w), 1-12 tasks of 1-3 errands, 1-6 robots, a reveal factor, the
    robots' cells, and the tasks as ErrandTasks takes them (errands, offsets)."""
    w = data.draw(st.integers(1, 9))
    h = data.draw(st.integers(1, 9))
    cells = st.integers(0, w * h - 1)
    tasks = data.draw(st.lists(st.lists(cells, min_size=1, max_size=3), min_size=1, max_size=12))
    n = data.draw(st.integers(1, 6))
    reveal = data.draw(st.sampled_from([1, 1.5, 2, 3]))
    pos = data.draw(st.lists(cells, min_size=n, max_size=n))
    errands = np.array([c for t in tasks for c in t])
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in tasks])])
    return w, tasks, n, reveal, pos, errands, offsets


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_nearest_assignment_matches_plain_python_scheduler(data):
    from naive import NaiveNearestTasks
    w, tasks, n, reveal, pos, errands, offsets = _nearest_case(data)
    t = ErrandTasks(errands, n, strategy="nearest", offsets=offsets, width=w, reveal=reveal,
                    prefetch=False)
    fake = _FakePlanner(pos)
    oracle = NaiveNearestTasks(tasks, n, w, reveal)
    assert t.start(fake).tolist() == oracle.start(pos)
    for _ in range(data.draw(st.integers(1, 8))):
        fin = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
        goals = t._goals
        fake.finished[:] = False
        fake.finished[fin] = True
        new_pos = fake.positions.copy()
        new_pos[fin] = goals[fin]                  # a robot that finishes stands on its errand
        fake.positions = new_pos
        assert t.update(fake).tolist() == oracle.update(fin, new_pos.tolist())
        assert t.tasks_finished == oracle.finished


class _NearPlanner(_FakePlanner):
    """A stand-in with what pick-ahead reads: goals, distances left, and prefetch requests."""

    def __init__(self, positions):
        super().__init__(positions)
        self.goals = np.full(self.positions.size, -1, np.int32)
        self.left = np.full(self.positions.size, -1, np.int64)
        self.asked = []

    def distance_left(self, robots):
        return self.left[robots]

    def prefetch(self, cells, near=None, urgent=False):
        self.asked.append((np.asarray(cells).tolist(), urgent))
        return len(cells)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_pick_ahead_matches_plain_python_scheduler(data):
    # robots within pick_ahead of their task's last errand take their next task early, as from
    # that errand; on finishing they start it (the oracle: naive.NaiveNearestTasks, near=)
    from naive import NaiveNearestTasks
    w, tasks, n, reveal, pos, errands, offsets = _nearest_case(data)
    t = ErrandTasks(errands, n, strategy="nearest", offsets=offsets, width=w, reveal=reveal)
    fake = _NearPlanner(pos)
    oracle = NaiveNearestTasks(tasks, n, w, reveal)
    goals = t.start(fake)
    assert goals.tolist() == oracle.start(pos)
    for _ in range(data.draw(st.integers(1, 10))):
        fin = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
        fake.goals = goals.copy()                  # the planner steered to these
        fake.left = np.array(data.draw(st.lists(st.integers(-1, 4), min_size=n, max_size=n)))
        fake.finished[:] = False
        fake.finished[fin] = True
        new_pos = fake.positions.copy()
        new_pos[fin] = goals[fin]
        fake.positions = new_pos
        near = [i for i in range(n) if 0 <= fake.left[i] <= t.pick_ahead]
        goals = t.update(fake)
        assert goals.tolist() == oracle.update(fin, new_pos.tolist(), near)
        assert t.tasks_finished == oracle.finished
        queued = [int(q) if q >= 0 else None for q in t._queued]
        assert queued == oracle.queued
    for cells_asked, urgent in fake.asked:
        if urgent:                                 # a task taken ahead: its first errand
            assert all(c in errands for c in cells_asked)


def test_nearest_assignment_takes_short_near_tasks_on_a_floor():
    # a robot at the west end takes the task that starts near it and is short, not file order
    f = Floor.from_ascii("." * 10 + "\n" + "." * 10)
    far_long, near_short = [9, 19, 0], [1, 2]
    errands = np.array(far_long + near_short)
    t = ErrandTasks(errands, 1, strategy="nearest", offsets=[0, 3, 5], width=10, reveal=2)
    p = Planner(f, 1, [0], seed=0, dwell_chute=0, dwell_induct=0)
    goals = t.start(p)
    assert goals.tolist() == [1]
    for _ in range(60):
        p.step(goals)
        goals = t.update(p)
    assert t.tasks_finished >= 3 and t.completed >= 7


def test_nearest_needs_width_and_reveal():
    with pytest.raises(InputError, match="width"):
        ErrandTasks([1, 2], 1, strategy="nearest")
    with pytest.raises(InputError, match="numTasksReveal"):
        ErrandTasks([1, 2], 1, strategy="nearest", width=4, reveal=0.5)


# a one-way trap: cell (1, 6) is entered from (1, 5) ('>' only leads east) and has no way out
TRAP = """
I.....@
......>
.CD.DC@
.......
I......
"""


def test_strong_parts_match_plain_reachability():
    """Strongly connected parts = cells that reach each other (plain BFS both ways), on
    random floors with one-way moves."""
    from naive_mapf import naive_reach
    from sorter.agv.tasks import _strong_parts
    rng = np.random.default_rng(3)
    for _ in range(30):
        h, w = rng.integers(2, 7, size=2)
        rows = ["".join(rng.choice(list("....@><^v"), w)) for _ in range(h)]
        f = Floor.from_ascii("\n".join(rows))
        lab = _strong_parts(f.moves)
        free = [int(c) for c in f.free_cells]
        for a in free[:8]:
            same = naive_reach(f, [a]) & naive_reach(f, [a], backward=True)
            assert {c for c in free if lab[c] == lab[a]} == same
            assert lab[a] == min(same)


def test_one_way_trap_gets_no_start_and_no_random_goal():
    from sorter.agv.lifelong import make_run, simulate
    f = Floor.from_ascii(TRAP)
    trap = f.cell(1, 6)
    assert not any(t >= 0 for t in f.moves[trap])              # no way out
    planner, stream = make_run(f, 20, seed=0, tasks="random")
    assert trap not in planner.positions.tolist()
    res = simulate(planner, stream, 300)
    assert not (res.positions == trap).any()                   # nobody is ever sent there
    assert res.tasks_completed > 100


def test_balanced_induct_choice_is_the_default_and_spreads_a_skewed_mix():
    """With a Zipf mix the robots leaving the busiest chutes all made for the same nearest
    inducts; ``balanced`` (the default now) spreads them: more parcels on the 33x57 floor."""
    from sorter.agv.lifelong import make_run, simulate
    from sorter.layout import load_floor
    from sorter.resources import seed_path
    f = load_floor(seed_path("floors/medium_33x57.txt"))
    out = {}
    for ic in (None, "nearest"):
        kw = {} if ic is None else {"induct_choice": ic}
        p, s = make_run(f, 200, seed=0, tasks="sorting", guidance="lanes+flow", **kw)
        if ic is None:
            assert s.induct_choice == "balanced"
        out[ic] = simulate(p, s, 1200, record=False).kpis()["tasks_per_step"]
    assert out[None] > 1.1 * out["nearest"], out


def test_make_run_defaults_match_the_cli():
    """``make_run`` builds what ``sorter mapf`` runs by default: lanes+flow guidance and the
    balanced induct choice (the Planner's own default stays plain PIBT)."""
    from sorter.agv.lifelong import make_run
    from sorter.agv.pibt import Planner
    from sorter.layout import load_floor
    from sorter.resources import seed_path
    f = load_floor(seed_path("floors/small_12x20.txt"))
    p, s = make_run(f, 10, seed=0)
    assert p.guidance == "lanes+flow" and s.induct_choice == "balanced"
    assert Planner(f, 10, p.positions).guidance == "none"

"""QA session 8: the robot-floor library (`sorter.agv`, `sorter.layout`) called as a user would.

Each test pins one problem found by the sweep (input -> what went wrong) so that it stays fixed;
each failed before its fix. Plans made along the way are checked with the project's validator.
"""
import numpy as np
import pytest

from sorter.agv import (DistanceTables, Planner, RandomTasks, SortingTasks, distance_table,
                        make_run, simulate)
from sorter.agv.validate import validate
from sorter.errors import InputError
from sorter.layout import Floor, sortation_floor

ROOM = "....\n.#..\n...."          # 3 x 4, cell 5 an obstacle
TWO_ROOMS = "..#..\n..#.."          # no way between the left and the right room


def _planner(text=ROOM, n=2, starts=(0, 1), **kw):
    return Planner(Floor.from_ascii(text), n, list(starts), dwell_chute=0, dwell_induct=0, **kw)


def _run(p, goals, steps):
    rows = [p.positions]
    for _ in range(steps):
        rows.append(p.step(goals))
    return np.array(rows)


# ----------------------------------------------------------------------------- Planner
def test_first_goals_with_minus_one_are_rejected():
    """step([2, -1]) on a new planner: -1 equals the internal "no goal yet" marker, so robot 1
    was never validated nor given a table, and silently followed table row 0 (robot 0's goal)."""
    p = _planner()
    with pytest.raises(InputError) as e:
        p.step([2, -1])
    assert e.value.field == "goals"
    with pytest.raises(InputError):
        _planner().prepare(np.array([-1, -1]))
    # the planner is still usable after the rejected call, and its plan is valid
    path = _run(p, [2, 3], 4)
    assert validate(p.floor, path[0], path) is None
    assert path[-1].tolist() == [2, 3]


def test_distance_checks_the_robot_and_is_minus_one_before_a_goal():
    """distance(0) before any goal returned garbage (5632: an unwritten pool row); distance(5)
    raised IndexError, distance(-1) silently answered for the last robot."""
    p = _planner()
    assert p.distance(0) == -1
    for bad in (2, -1, 0.5, "0"):
        with pytest.raises(InputError) as e:
            p.distance(bad)
        assert e.value.field == "robot"
    p.step([2, 3])
    assert p.distance(np.int64(0)) == 1 and p.distance(1) == 1


def test_distance_left_unreachable_is_minus_one_like_distance():
    """A robot whose goal is in another room: distance() said -1 but distance_left() returned
    65535 (the table's internal "unreachable" sentinel)."""
    p = _planner(TWO_ROOMS, 2, (0, 1))
    p.step([4, 0])                     # robot 0 cannot reach cell 4
    assert p.distance(0) == -1
    left = p.distance_left()
    assert left.dtype == np.int64 and left[0] == -1 and left[1] >= 0


def test_distance_left_takes_a_mask_and_checks_indices():
    """distance_left(mask) read the bool mask as indices 1/0 (silently the wrong robots);
    distance_left(1) raised TypeError, distance_left([5]) IndexError."""
    p = _planner(n=3, starts=(0, 1, 2))
    p.step([8, 3, 11])
    full = p.distance_left()
    assert p.distance_left(np.array([False, True, True])).tolist() == full[[1, 2]].tolist()
    assert p.distance_left(1).tolist() == [full[1]]
    for bad in ([5], [-1], [0.5], np.array([True, False])):
        with pytest.raises(InputError):
            p.distance_left(bad)


def test_planner_n_robots_and_seed_must_be_integers():
    """Planner(f, 1.5, ...) and Planner(f, '2', ...) were taken as 1 and 2 robots, seed=1.5 as
    seed 1; seed=None / a Generator raised a bare TypeError naming no field."""
    f = Floor.from_ascii(ROOM)
    for n in (1.5, "2", True):
        with pytest.raises(InputError) as e:
            Planner(f, n, [0])
        assert e.value.field == "n_robots"
    for seed in (None, 1.5, np.random.default_rng(0)):
        with pytest.raises(InputError) as e:
            Planner(f, 1, [0], seed=seed)
        assert e.value.field == "seed"
    assert Planner(f, np.int64(1), [0], seed=np.int32(3)).seed == 3


def test_table_bound_nan_inf_negative():
    """max_table_mb=inf ("no bound", a plausible choice) and nan raised a bare ValueError
    ("cannot convert float NaN to integer"); a negative bound was silently taken as 0."""
    f = Floor.from_ascii(ROOM)
    p = Planner(f, 1, [0], max_table_mb=float("inf"), dwell_chute=0, dwell_induct=0)
    assert p.step([3]).tolist() == [1]
    for bad in (float("nan"), -1.0, "lots"):
        with pytest.raises(InputError) as e:
            DistanceTables(f, max_mb=bad)
        assert e.value.field == "max_mb"
    with pytest.raises(InputError):
        Planner(f, 1, [0], max_table_mb=float("nan"))


# ----------------------------------------------------------------------------- tables
def test_distance_table_2d_goal_cells():
    """distance_table(floor, [[0, 1]]) crashed in the compiled BFS with a numba TypingError."""
    f = Floor.from_ascii(ROOM)
    with pytest.raises(InputError) as e:
        distance_table(f, [[0, 1]])
    assert e.value.field == "goal_cells"
    assert distance_table(f, [0, 1]).tolist()[:4] == [0, 0, 1, 2]


def test_acquire_checks_the_blocked_mask():
    """DistanceTables.acquire(..., blocked=<3 flags for 11 free cells>) was handed to the
    compiled BFS as is, which read past the array (no error, undefined result)."""
    f = Floor.from_ascii(ROOM)
    t = DistanceTables(f)
    with pytest.raises(InputError) as e:
        t.acquire("k", [0], blocked=np.ones(3, np.uint8))
    assert e.value.field == "blocked"
    # a bool mask of the right length is accepted: blocking free cell 1 (grid cell 1)
    b = np.zeros(t.graph.n_free, np.bool_)
    b[1] = True
    row = t.acquire("k2", [0], blocked=b)
    oracle = distance_table(Floor.from_ascii(".#..\n.#..\n...."), [0])   # cell 1 a wall
    got = t.values(row).astype(np.int64)
    got[got == t.unreachable] = -1
    keep = t.graph.free_cells != 1
    assert got[keep].tolist() == oracle[t.graph.free_cells[keep]].tolist()


# ----------------------------------------------------------------------------- runs, tasks
def test_make_run_checks_n_robots():
    """make_run(floor, -1) raised numpy's "negative dimensions are not allowed", make_run(floor,
    5.5) a TypeError from Generator.choice: neither named the field."""
    f = sortation_floor(12, 16, 2, 4, seed=0)
    for bad in (-1, 5.5, "3"):
        with pytest.raises(InputError) as e:
            make_run(f, bad)
        assert e.value.field == "n_robots"


def test_task_streams_take_an_integer_seed():
    """RandomTasks(cells, n, 0) / SortingTasks(floor, n, 0): an int seed where a Generator is
    documented raised AttributeError ('int' object has no attribute 'choice') mid-run.
    An integer now seeds a Generator (the same stream as default_rng(seed)); others raise."""
    f = sortation_floor(12, 16, 2, 4, seed=0)
    starts = f.free_cells[:4]

    def run(stream, station):
        p = Planner(f, 4, starts, seed=1, station_goals=station)
        return simulate(p, stream, 30).positions

    a = run(RandomTasks(f.free_cells, 4, 5), False)
    b = run(RandomTasks(f.free_cells, 4, np.random.default_rng(5)), False)
    assert np.array_equal(a, b) and validate(f, a[0], a) is None
    c = run(SortingTasks(f, 4, 5), True)
    d = run(SortingTasks(f, 4, np.random.default_rng(5)), True)
    assert np.array_equal(c, d) and validate(f, c[0], c) is None
    for bad in (None, 1.5, "seed"):
        with pytest.raises(InputError) as e:
            RandomTasks(f.free_cells, 4, bad)
        assert e.value.field == "rng"


def test_task_stream_for_another_team_size():
    """RandomTasks for 3 robots started with a planner of 2: IndexError inside the draw.
    ErrandTasks(errands, 1.5) was silently a team of 1."""
    from sorter.agv import ErrandTasks
    f = sortation_floor(12, 16, 2, 4, seed=0)
    p = Planner(f, 2, f.free_cells[:2])
    with pytest.raises(InputError) as e:
        simulate(p, RandomTasks(f.free_cells, 3, np.random.default_rng(0)), 3)
    assert e.value.field == "n_robots"
    with pytest.raises(InputError):
        ErrandTasks([int(c) for c in f.free_cells[:3]], 1.5)


# ----------------------------------------------------------------------------- floors, figures
def test_floor_rc_and_neighbours_off_the_floor():
    """Floor.rc(10) on a 2 x 2 floor answered (5, 0) and rc(-1) (-1, 1) (silently off the
    floor, while Floor.cell checks); neighbours(10) raised IndexError."""
    f = Floor(np.ones((2, 2), np.int8))
    assert f.rc(3) == (1, 1)
    for bad in (4, 10, -1):
        with pytest.raises(InputError):
            f.rc(bad)
        with pytest.raises(InputError):
            f.neighbours(bad)


def test_draw_rejects_masks_and_float_robots():
    """Floor.draw(robots=planner.held) (a bool mask) drew dots on cells 0 and 1 for every robot;
    float cell ids were truncated silently."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    f = Floor.from_ascii("I...\n.CD.\n....")
    for bad in (np.array([True, False] * 6), [1.7, 2.2]):
        with pytest.raises(InputError) as e:
            f.draw(robots=bad)
        assert e.value.field == "robots"
    ax = f.draw(robots=np.array([3, 7], np.uint32))
    assert ax.collections[-1].get_offsets().tolist() == [[3.0, 0.0], [3.0, 1.0]]
    plt.close("all")


def test_animate_fps_zero(tmp_path):
    """animate(..., fps=0) raised ZeroDivisionError from the GIF writer."""
    from sorter.layout.draw import animate
    f = Floor.from_ascii("I...\n.CD.\n....")
    pos = np.array([[0, 3], [1, 7]], np.int32)
    with pytest.raises(InputError) as e:
        animate(f, pos, 0, 2, tmp_path / "a.gif", fps=0)
    assert e.value.field == "fps"
    assert not (tmp_path / "a.gif").exists()

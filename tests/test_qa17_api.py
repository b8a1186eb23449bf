"""QA session 17 (qa-api): the embedded Python API of the robot side (``sorter.agv``,
``sorter.layout``) called as a researcher or a WCS engineer would, with the argument shapes a
user plausibly passes. Each test names the input, and what happened before the fix."""
import numpy as np
import pytest

from sorter.agv import Planner, RandomTasks, SortingTasks, make_run, simulate
from sorter.agv.floor_sim import FloorSim
from sorter.agv.validate import validate
from sorter.errors import InputError
from sorter.layout import Floor, load_floor, sortation_floor

ROOM = "I....\n.....\n.CD..\n....."


@pytest.fixture(scope="module")
def sfloor():
    return sortation_floor(12, 20, 4, 6, seed=1)


@pytest.mark.parametrize("seed", [-3, -1, np.int64(-7)])
def test_planner_refuses_a_negative_seed_as_make_run_and_the_cli_do(seed):
    """Planner(seed=-3) was accepted (its tie-breaks the same as seed 2**64 - 3) while
    make_run and ``sorter mapf --seed`` refuse negative seeds."""
    f = Floor.from_ascii(ROOM)
    with pytest.raises(InputError) as e:
        Planner(f, 1, [0], seed=seed)
    assert e.value.field == "seed" and ">= 0" in str(e.value)
    assert Planner(f, 1, [0], seed=0).seed == 0
    assert Planner(f, 1, [0], seed=np.uint64(2**63)).seed == 2**63


def test_headings_without_rotation_are_refused_not_ignored():
    """headings=[...] without rotation=True was kept (read back by .headings) and never used:
    the plans were those of robots without headings."""
    f = Floor.from_ascii(ROOM)
    with pytest.raises(InputError) as e:
        Planner(f, 2, [0, 1], headings=[1, 3])
    assert e.value.field == "headings" and "rotation=True" in str(e.value)
    p = Planner(f, 2, [0, 1], rotation=True, headings=np.array([1, 3], np.uint8))
    assert p.headings.tolist() == [1, 3]
    assert Planner(f, 2, [0, 1]).headings.tolist() == [0, 0]     # no headings: as before


def test_float_goals_are_refused_at_every_step_not_only_when_a_goal_changes():
    """Float goals were refused at the first step and whenever a goal changed or a robot
    finished, but taken silently at a step where they equalled the current goals: a loop fed
    float goals ran for a while, then failed at whichever step a robot finished."""
    f = Floor.from_ascii(ROOM)
    p = Planner(f, 2, [0, 1], dwell_chute=0, dwell_induct=0)
    goals = np.array([14, 19])
    p.step(goals)
    with pytest.raises(InputError) as e:
        p.step(goals.astype(float))
    assert e.value.field == "goals" and "float64" in str(e.value)
    with pytest.raises(InputError) as e:
        p.prepare(goals.astype(float))
    assert e.value.field == "goals"
    assert p.step(goals.astype(np.int32)).shape == (2,)      # integers of any width still do
    assert p.step(goals.tolist()).shape == (2,)


def test_prefetch_urgent_takes_a_bool_only():
    """prefetch(cells, urgent="no") was taken as urgent (a non-empty string is truthy)."""
    f = Floor.from_ascii(ROOM)
    p = Planner(f, 1, [0])
    with pytest.raises(InputError) as e:
        p.prefetch([5], urgent="no")
    assert e.value.field == "urgent"
    assert p.prefetch([5], urgent=np.bool_(True)) == 1


def test_guidance_given_as_a_numpy_string_reads_back_as_text():
    """guidance=np.str_("flow") was kept as an np.str_: repr showed guidance=np.str_('flow')."""
    p = Planner(Floor.from_ascii(ROOM), 1, [0], guidance=np.str_("flow"))
    assert type(p.guidance) is str and "guidance='flow'" in repr(p)


@pytest.mark.parametrize("make", [
    lambda f: RandomTasks(f.free_cells, 4, -1),
    lambda f: SortingTasks(f, 4, -1),
    lambda f: FloorSim(f, 4, -1),
])
def test_task_streams_refuse_a_negative_seed_naming_rng(sfloor, make):
    """An integer rng < 0 raised NumPy's bare ValueError 'expected non-negative integer'."""
    with pytest.raises(InputError) as e:
        make(sfloor)
    assert e.value.field == "rng" and ">= 0" in str(e.value)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, None])
def test_floor_sim_seed_must_be_an_integer_at_least_zero(sfloor, seed):
    """FloorSim(seed=1.5) ran as seed 1, "3" as 3, True as 1; None raised a TypeError from
    int() and -1 NumPy's ValueError, neither naming the field."""
    with pytest.raises(InputError) as e:
        FloorSim(sfloor, 4, 0, seed=seed)
    assert e.value.field == "seed"
    assert FloorSim(sfloor, 4, 0, seed=np.int64(3)).n == 4


@pytest.mark.parametrize("options", [{"fault_rate": 0.1}, "fault_rate=0.1"])
def test_floor_sim_options_of_another_kind_name_the_field(sfloor, options):
    """FloorSim(options={...}) and make_run(floor_sim={...}) raised AttributeError: 'dict'
    object has no attribute 'validate'."""
    with pytest.raises(InputError) as e:
        FloorSim(sfloor, 4, 0, options)
    assert e.value.field == "options"
    with pytest.raises(InputError) as e:
        make_run(sfloor, 4, floor_sim=options)
    assert e.value.field == "floor_sim" and "FloorSimOptions" in str(e.value)


@pytest.mark.parametrize("floor", [None, "small_12x20.txt", "moves"])
def test_make_run_names_a_floor_that_is_no_floor(sfloor, floor):
    """make_run(floor.moves, ...) / make_run(None, ...) / a file name raised AttributeError
    ('... has no attribute inducts')."""
    arg = sfloor.moves if floor == "moves" else floor
    with pytest.raises(InputError) as e:
        make_run(arg, 4)
    assert e.value.field == "floor" and "load_floor" in str(e.value)


@pytest.mark.parametrize("path", [None, 5, b"seeds/floors/small_12x20.txt"])
def test_load_floor_of_no_path_names_the_field(path):
    """load_floor(None) / load_floor(5) / bytes raised pathlib's TypeError, naming nothing."""
    with pytest.raises(InputError) as e:
        load_floor(path)
    assert e.value.field == "floor" and type(path).__name__ in str(e.value)


def test_same_seed_same_positions_and_the_validator_agrees(sfloor):
    """Determinism and validity through the public entry points (seeds as numpy ints too)."""
    runs = []
    for seed in (np.int64(7), 7, 8):
        planner, stream = make_run(sfloor, 12, seed=seed, rotation=False)
        runs.append(simulate(planner, stream, 60).positions)
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    for pos in runs:
        assert validate(sfloor, pos[0], pos) is None


def test_held_robots_stay_put_and_the_plan_validates():
    f = load_floor_small()
    rng = np.random.default_rng(0)
    starts = rng.choice(f.free_cells, 12, replace=False)
    p = Planner(f, 12, starts, seed=3, guidance="lanes+flow")
    goals = rng.choice(f.free_cells, 12)
    path = [starts]
    for t in range(120):
        if t == 10:
            p.hold((1, 2))                      # a tuple of indices
        if t == 70:
            p.release(np.arange(12) < 3)        # a bool mask, robot 0 not held
        path.append(p.step(goals))
        done = p.finished
        goals[done] = rng.choice(f.free_cells, done.sum())
    path = np.array(path)
    assert (path[11:71, 1:3] == path[11, 1:3]).all()
    assert not p.held.any()
    assert validate(f, starts, path) is None


def load_floor_small():
    from pathlib import Path
    p = Path(__file__).resolve().parents[1] / "seeds" / "floors" / "small_12x20.txt"
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return load_floor(p)


@pytest.mark.parametrize("positions, field", [
    (np.array([[0, 1], [0, 1]], float), "positions"),        # NumPy's cast error before
    (np.full((3, 2), 10**6), "positions"),                   # counts 1,000,001 long before
    (np.full((3, 2), -1), "positions"),                      # bincount's error before
    ([[0, 1], [0]], "positions"),                             # ragged
    (np.array([0, 0, 1]), "positions"),                       # 1-D: read as one robot's path
])
def test_waiting_counts_checks_the_positions(positions, field):
    from sorter.agv.report import waiting_counts
    f = Floor.from_ascii(ROOM)
    with pytest.raises(InputError) as e:
        waiting_counts(f, positions)
    assert e.value.field == field


def test_waiting_counts_headings_must_match_the_positions():
    """headings of another shape raised NumPy's broadcast error (or broadcast silently)."""
    from sorter.agv.report import waiting_counts
    f = Floor.from_ascii(ROOM)
    pos = np.array([[0, 1], [0, 1], [0, 2]])
    with pytest.raises(InputError) as e:
        waiting_counts(f, pos, headings=np.zeros((3, 1), np.int8))
    assert e.value.field == "headings"
    got = waiting_counts(f, pos.tolist(), headings=np.array([[0, 0], [1, 0], [1, 0]], np.int8))
    assert got[0] == 1 and got[1] == 1 and got.sum() == 2       # robot 0 turned at step 1


@pytest.mark.parametrize("window", [1.5, "3", True])
def test_time_series_window_must_be_an_integer(window):
    """floor_time_series(window=1.5) ran with windows of 1 step, "3" with 3, True with 1."""
    from sorter.agv.report import floor_time_series
    f = sortation_floor(9, 12, 2, 2, seed=0)
    r = simulate(*make_run(f, 4, seed=0), 6)
    with pytest.raises(InputError) as e:
        floor_time_series(r, window=window)
    assert e.value.field == "window"
    assert floor_time_series(r, window=np.int64(3))["window"] == 3


def test_simulate_record_takes_a_bool_only():
    """simulate(..., record="no") recorded the positions ("no" is truthy)."""
    f = sortation_floor(9, 12, 2, 2, seed=0)
    with pytest.raises(InputError) as e:
        simulate(*make_run(f, 4, seed=0), 3, record="no")
    assert e.value.field == "record"
    assert simulate(*make_run(f, 4, seed=0), 3, record=np.False_).positions is None

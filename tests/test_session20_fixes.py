"""Session 20 regression tests (each fails on the code before its fix)."""
import numpy as np

from sorter.agv import Planner, simulate
from sorter.agv.tasks import RandomTasks
from sorter.layout import Floor


def _floor(text):
    return Floor.from_ascii(text)


def test_random_tasks_with_repeated_cells_never_hand_a_robot_its_own_cell():
    # was: cells [a, a, b] drew a for a robot on a, and "the next goal cell" was the copy of a,
    # so the robot finished a task without a move (tasks counted that never happened)
    f = _floor("....\n....")
    a, b = int(f.free_cells[0]), int(f.free_cells[5])
    cells = np.array([a, a, a, b], np.int32)            # weighted towards a, as given
    p = Planner(f, 1, np.array([a]), seed=0)
    stream = RandomTasks(cells, 1, 0)
    res = simulate(p, stream, 200)
    pos = res.positions[:, 0]
    visits_b = int(np.sum((pos[1:] == b) & (pos[:-1] != b)))
    # every finished task is a trip a -> b or b -> a: never more tasks than arrivals at a or b
    arrivals = visits_b + int(np.sum((pos[1:] == a) & (pos[:-1] != a)))
    assert res.tasks_completed > 10
    assert res.tasks_completed <= arrivals


def test_random_tasks_one_distinct_cell_repeated_counts_nothing():
    # a pocket whose goal cells are one cell given twice: the robot standing there is alone
    f = _floor("....")
    a = int(f.free_cells[2])
    p = Planner(f, 1, np.array([a]), seed=0)
    res = simulate(p, RandomTasks(np.array([a, a], np.int32), 1, 0), 50)
    assert res.tasks_completed == 0


def test_random_tasks_without_repeats_draw_as_before():
    # guard: the fix leaves the stream of a list without repeats as it was
    f = _floor(".....\n.....")
    cells = f.free_cells
    s = RandomTasks(cells, 3, 7)
    p = Planner(f, 3, cells[:3], seed=0)
    g = s.start(p)
    rng = np.random.default_rng(7)
    want = rng.choice(cells, 3)
    for i, (x, w) in enumerate(zip(g, want)):     # a draw on its own cell moves to the next
        assert x == (w if w != cells[i] else cells[(np.flatnonzero(cells == w)[0] + 1) % cells.size])

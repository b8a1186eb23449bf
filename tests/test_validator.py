"""The plan validator (sorter.agv.validate) against hand-made plans and a naive oracle."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naive_mapf import naive_validate
from sorter.agv.validate import KINDS, PlanError, Violation, check_paths, validate
from sorter.errors import InputError, SorterError
from sorter.layout import Floor
from sorter.layout._grid import grid_moves

# a 3 x 4 floor: (0,0) (0,1) (0,2) (0,3) / (1,0) @ (1,2) (1,3) / (2,0) (2,1) (2,2) (2,3)
OPEN = Floor.from_ascii("""
....
.@..
....
""")
# one-way: row 0 is an eastward lane
LANE = Floor.from_ascii("""
>>>.
....
""")


def cells(f, *rcs):
    return [f.cell(r, c) for r, c in rcs]


def test_legal_plan_passes():
    s = cells(OPEN, (0, 0), (2, 3))
    p = np.array([s, cells(OPEN, (0, 1), (2, 2)), cells(OPEN, (0, 2), (2, 1)),
                  cells(OPEN, (0, 2), (2, 1))])
    assert validate(OPEN, s, p) is None
    check_paths(OPEN, s, p)


def test_following_and_rotation_are_legal():
    # robot 0 follows robot 1 into the cell it leaves
    s = cells(OPEN, (0, 0), (0, 1))
    p = np.array([s, cells(OPEN, (0, 1), (0, 2))])
    assert validate(OPEN, s, p) is None
    # four robots rotate around a 2x2 square (no obstacle on this floor)
    f = Floor.from_ascii("..\n..")
    s = [0, 1, 3, 2]                       # clockwise: (0,0) (0,1) (1,1) (1,0)
    p = np.array([s, [1, 3, 2, 0]])
    assert validate(f, s, p) is None


@pytest.mark.parametrize("case", [
    # kind, floor, starts, paths rows, expected step, robots
    ("start", OPEN, [0, 3], [[0, 2]], 0, (1,)),
    ("off_grid", OPEN, [0, 3], [[0, 3], [1, 12]], 1, (1,)),
    ("off_grid", OPEN, [0, 3], [[0, 3], [-1, 3]], 1, (0,)),
    ("obstacle", OPEN, [1, 3], [[1, 3], [5, 3]], 1, (0,)),
    ("obstacle", OPEN, [5, 3], [[5, 3]], 0, (0,)),
    ("jump", OPEN, [0, 3], [[0, 3], [0, 3], [2, 3]], 2, (0,)),
    ("jump", OPEN, [3, 0], [[3, 0], [4, 0]], 1, (0,)),           # wraps a row end: not adjacent
    ("jump", OPEN, [0, 3], [[0, 3], [0, 6]], 1, (1,)),           # diagonal
    ("one_way", LANE, [2, 5], [[2, 5], [1, 5]], 1, (0,)),        # west on an eastward lane
    ("one_way", LANE, [3, 5], [[3, 5], [2, 5]], 1, (0,)),        # entering the lane against it
    ("vertex", OPEN, [0, 2, 3], [[0, 2, 3], [1, 1, 3]], 1, (0, 1)),
    ("vertex", OPEN, [0, 0], [[0, 0]], 0, (0, 1)),
    ("swap", OPEN, [0, 1, 3], [[0, 1, 3], [0, 1, 3], [1, 0, 3]], 2, (0, 1)),
])
def test_each_kind_is_rejected_with_step_and_robots(case):
    kind, f, s, rows, step, robots = case
    v = validate(f, s, np.array(rows))
    assert v is not None and v.kind == kind and v.step == step and v.robots == robots
    assert naive_validate(f, s, rows)[:3] == (kind, step, robots)
    with pytest.raises(PlanError) as e:
        check_paths(f, s, np.array(rows))
    assert e.value.violation == v
    assert f"step {step}" in str(e.value) and isinstance(e.value, SorterError)


def test_first_violation_is_earliest_then_kind_then_robot():
    # step 1: vertex (robots 1, 2) and a jump (robot 2); the jump's kind comes first
    s = [0, 2, 8]
    rows = [s, [0, 3, 3]]
    v = validate(OPEN, s, np.array(rows))
    assert (v.kind, v.robots) == ("jump", (2,))
    # an earlier step wins over an earlier kind: a swap at step 1, off the grid at step 2
    s = [0, 1, 8]
    v = validate(OPEN, s, np.array([s, [1, 0, 8], [1, 0, -1]]))
    assert (v.kind, v.step, v.robots, v.cells) == ("swap", 1, (0, 1), (0, 1))


def test_shape_errors_are_input_errors():
    with pytest.raises(InputError):
        validate(OPEN, [0, 1], np.zeros((3, 3), dtype=int))
    with pytest.raises(InputError):
        validate(OPEN, [0], np.zeros((2, 1)))           # float paths
    with pytest.raises(InputError):
        validate(OPEN, [0], np.zeros(3, dtype=int))      # 1-D paths


def test_long_plan_in_blocks(monkeypatch):
    # the block scan must not miss a violation on a block boundary
    import sorter.agv.validate as mod
    monkeypatch.setattr(mod, "_CHUNK", 6)              # 3 rows per block for 2 robots
    s = [0, 2]
    rows = [s] * 8 + [[1, 1]]                          # vertex at step 8 (rows 5..8 in a block)
    v = validate(OPEN, s, np.array(rows))
    assert v == Violation("vertex", 8, (0, 1), (1,))
    assert naive_validate(OPEN, s, rows)[:3] == ("vertex", 8, (0, 1))
    # a move whose two rows (5 and 6) fall in different blocks
    rows2 = [s] * 6 + [[0, 11]]
    v = validate(OPEN, s, np.array(rows2))
    assert (v.kind, v.step, v.robots) == ("jump", 6, (1,))


@st.composite
def plans(draw):
    h = draw(st.integers(1, 4))
    w = draw(st.integers(1, 5))
    n = h * w
    free = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    free[draw(st.integers(0, n - 1))] = True
    grid = np.where(free.reshape(h, w), 1, 0)
    moves = grid_moves(grid != 0)
    if draw(st.booleans()):                          # forbid some moves: a directed floor
        drop = np.array(draw(st.lists(st.booleans(), min_size=4 * n, max_size=4 * n)))
        moves[drop.reshape(n, 4)] = -1
    floor = Floor(grid, moves=moves, check=False)
    fc = np.flatnonzero(free)
    R = draw(st.integers(1, min(5, fc.size + 1)))
    T = draw(st.integers(0, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    starts = rng.choice(fc, size=R, replace=R > fc.size)
    full = grid_moves(grid != 0)
    rows = [starts.copy()]
    p_bad = draw(st.sampled_from([0.0, 0.05, 0.2]))
    for _ in range(T):
        cur = rows[-1].copy()
        for i in range(R):
            u = rng.random()
            if u < p_bad:                             # anything, even off the grid
                cur[i] = rng.integers(-1, n + 1)
            elif u < 0.6 and 0 <= cur[i] < n:
                opts = [int(t) for t in full[cur[i]] if t >= 0]
                if opts:
                    cur[i] = opts[rng.integers(len(opts))]
        rows.append(cur)
    paths = np.array(rows, dtype=np.int64)
    if draw(st.integers(0, 9)) == 0:
        paths[0, 0] = rng.integers(0, n)
    return floor, starts, paths


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans())
def test_matches_naive_oracle(plan):
    floor, starts, paths = plan
    v = validate(floor, starts, paths)
    want = naive_validate(floor, starts, paths)
    got = None if v is None else (v.kind, v.step, v.robots, v.cells)
    assert got == want
    if v is not None:
        assert v.kind in KINDS

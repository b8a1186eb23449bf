"""The Floor contract, the ASCII form, the generator and the pictures."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naive_mapf import naive_components, naive_mutually_reachable, naive_reach
from sorter.errors import InputError
from sorter.layout import (
    DROP, EAST, INDUCT, NORTH, OBSTACLE, SOUTH, TRAVEL, WEST, Floor, Station, lattice_capacity,
    load_floor, parse_ascii, sortation_floor,
)
from sorter.layout._grid import label_components, reach
from sorter.resources import seed_path

SMALL = """
I...
.CD.
.CD.
...I
"""


def check_contract(f):
    """Invariants every floor (from any loader) must satisfy."""
    n = f.height * f.width
    assert f.n_cells == n
    assert f.cells.dtype == np.int8 and f.cells.shape == (n,)
    assert f.moves.dtype == np.int32 and f.moves.shape == (n, 4)
    assert f.station_of_cell.dtype == np.int32 and f.station_of_cell.shape == (n,)
    assert set(np.unique(f.cells)) <= {OBSTACLE, TRAVEL, INDUCT, DROP}
    # every move goes to the geometric neighbour, which is free; obstacles never move
    rows, cols = np.divmod(np.arange(n), f.width)
    for d, (dr, dc) in enumerate(((0, 1), (1, 0), (0, -1), (-1, 0))):
        t = f.moves[:, d]
        ok = t >= 0
        assert (t[ok] == (rows[ok] + dr) * f.width + cols[ok] + dc).all()
        assert (f.cells[t[ok]] != OBSTACLE).all()
        assert (f.cells[ok] != OBSTACLE).all()
    assert (f.free_cells == np.flatnonzero(f.cells != OBSTACLE)).all()
    for kind, stations, code in (("induct", f.inducts, INDUCT), ("chute", f.chutes, DROP)):
        if not stations:
            continue
        assert [s.index for s in stations] == list(range(len(stations)))
        assert {s.kind for s in stations} == {kind}
        assert all(s.cells.dtype == np.int32 and s.cells.size for s in stations)
        allc = np.concatenate([s.cells for s in stations])
        owner = np.repeat(np.arange(len(stations)), [s.cells.size for s in stations])
        assert (f.cells[allc] == code).all()
        assert (f.station_of_cell[allc] >= 0).all()
        assert (f.station_of_cell[allc] <= owner).all()          # lowest index on shared cells
        # the owner named by station_of_cell really lists the cell
        first = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(first, allc, owner)
        assert (f.station_of_cell[allc] == first[allc]).all()
    rng = np.random.default_rng(0)
    for c in rng.integers(0, n, size=min(n, 200)):
        assert f.cell(*f.rc(c)) == c


def test_from_ascii_basics():
    f = Floor.from_ascii(SMALL, name="small")
    check_contract(f)
    assert (f.height, f.width, f.name) == (4, 4, "small")
    assert len(f.inducts) == 2 and [s.cells.tolist() for s in f.inducts] == [[0], [15]]
    assert len(f.chutes) == 1 and f.chutes[0].cells.tolist() == [6, 10]
    assert f.cells[f.cell(1, 1)] == OBSTACLE and f.chute_body[f.cell(1, 1)] == 0
    assert f.moves[0].tolist() == [1, 4, -1, -1]              # east, south, west, north
    assert f.moves[f.cell(1, 0)].tolist() == [-1, 8, -1, 0]   # east is the chute body
    assert (EAST, SOUTH, WEST, NORTH) == (0, 1, 2, 3)
    assert not f.is_directed
    assert f.neighbours(0) == [1, 4]
    assert f.station_of_cell[6] == 0 and f.station_of_cell[0] == 0 and f.station_of_cell[1] == -1
    assert f.induct_cells.tolist() == [0, 15] and f.drop_cells.tolist() == [6, 10]
    # reverse moves invert moves
    rev = f.reverse_moves
    for c in range(f.n_cells):
        for d in range(4):
            if rev[c, d] >= 0:
                assert f.moves[rev[c, d], d] == c


def test_shared_drop_cell_serves_both_chutes():
    f = Floor.from_ascii("I....\n.CDC.\n.....")
    assert len(f.chutes) == 2
    assert f.chutes[0].cells.tolist() == [7] and f.chutes[1].cells.tolist() == [7]
    assert f.station_of_cell[7] == 0


def test_one_way_rule():
    f = Floor.from_ascii("I.>..\n....D\n...CC")
    check_contract(f)
    c = f.cell(0, 2)
    assert f.is_directed
    assert f.moves[c, EAST] == c + 1                     # along the arrow
    assert f.moves[c, WEST] == -1                        # never back
    assert f.moves[c, SOUTH] == f.cell(1, 2)             # turning off sideways
    assert f.moves[c + 1, WEST] == -1                    # no entering against the arrow
    assert f.moves[c - 1, EAST] == c                     # entering along it
    assert f.moves[f.cell(1, 2), NORTH] == c             # entering from the side


@pytest.mark.parametrize("text, line, column, words", [
    ("I..\n..\n", 2, 3, "row has 2 cells"),
    ("I.D\n.Cx\n", 2, 3, "unknown character 'x'"),
    ("height 3\nwidth 3\nmap\nI.D\n.C.\n", 5, None, "height 3"),
    ("height 2\nwidth 4\nmap\nI.D\n.C.\n", 4, 4, "width 4"),
    ("I.C\n...\n", 1, 3, "no drop cell"),
    ("I.D\n...\n", 1, 3, "touches no chute"),
    ("I.D\n.CC\n...\n@@@\nI..\n", 5, 1, "induct I1 cannot reach"),
    ("I>DC\n@@@@\n", 1, 3, "drop cell of chute C0 cannot reach induct I0"),
    ("\n\n", 1, None, "no rows"),
])
def test_ascii_errors_name_line_and_column(text, line, column, words):
    with pytest.raises(InputError) as e:
        parse_ascii(text, name="bad")
    msg = str(e.value)
    assert words in msg and "<bad>" in msg
    if line is not None:
        assert e.value.line == line
    if column is not None:
        assert f"column {column}" in msg


def test_unreachable_chute_is_rejected():
    # chute 1 sits in a walled-off pocket
    text = "I......\n.CD.@@@\n....@DC\n....@@@\n"
    with pytest.raises(InputError, match="cannot reach drop cell of chute C1"):
        parse_ascii(text)


@st.composite
def ascii_floors(draw):
    h = draw(st.integers(1, 6))
    w = draw(st.integers(1, 7))
    chars = draw(st.lists(st.lists(st.sampled_from("....@CDI><^v"), min_size=w, max_size=w),
                          min_size=h, max_size=h))
    return "\n".join("".join(r) for r in chars)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ascii_floors())
def test_ascii_random_floors_parse_or_fail_cleanly_and_round_trip(text):
    try:
        f = parse_ascii(text)
    except InputError as e:
        assert e.line is not None
        return
    check_contract(f)
    # the reachability check agrees with a plain BFS oracle
    assert naive_mutually_reachable(f)
    back = parse_ascii(f.to_ascii())
    assert np.array_equal(back.moves, f.moves) and np.array_equal(back.cells, f.cells)
    assert [s.cells.tolist() for s in back.chutes] == [s.cells.tolist() for s in f.chutes]


@pytest.mark.parametrize("text", ["^<\n><", "><\n^<", "v>\n<^"])
def test_arrow_floors_that_need_a_second_choice_round_trip(text):
    """The first free arrow choice can be wrong (found by hypothesis): the writer backtracks."""
    f = parse_ascii(text)
    back = parse_ascii(f.to_ascii())
    assert np.array_equal(back.moves, f.moves) and np.array_equal(back.cells, f.cells)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_reachability_check_matches_naive_bfs(h, w, seed):
    rng = np.random.default_rng(seed)
    grid = rng.choice([OBSTACLE, TRAVEL, TRAVEL, INDUCT, DROP], size=(h, w))
    n = h * w
    from sorter.layout._grid import grid_moves
    moves = grid_moves(grid != OBSTACLE)
    moves[rng.random((n, 4)) < 0.15] = -1
    ind = np.flatnonzero(grid.ravel() == INDUCT)
    drp = np.flatnonzero(grid.ravel() == DROP)
    inducts = [Station(k, f"I{k}", "induct", [c]) for k, c in enumerate(ind)]
    chutes = [Station(k, f"C{k}", "chute", [c]) for k, c in enumerate(drp)]
    f = Floor(grid, moves=moves, inducts=inducts, chutes=chutes, check=False)
    assert (f.reachability_problem() is None) == naive_mutually_reachable(f)
    if ind.size:
        assert set(np.flatnonzero(reach(f.moves, ind))) == naive_reach(f, ind)
        assert set(np.flatnonzero(reach(f.moves, ind, backward=True))) == \
            naive_reach(f, ind, backward=True)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(0, 2**32 - 1), st.floats(0.1, 0.9))
def test_label_components_matches_flood_fill(h, w, seed, p):
    mask = np.random.default_rng(seed).random((h, w)) < p
    labels, k = label_components(mask)
    want = naive_components(mask.tolist())
    assert k == (max(want.values()) + 1 if want else 0)
    for r in range(h):
        for c in range(w):
            assert labels[r * w + c] == want.get((r, c), -1)


def test_floor_constructor_validates():
    grid = np.ones((2, 3), dtype=np.int8)
    with pytest.raises(InputError):
        Floor(np.zeros(5))                                   # not 2-D
    with pytest.raises(InputError):
        Floor(grid * 7)                                      # unknown code
    bad = np.full((6, 4), -1, dtype=np.int32)
    bad[0, EAST] = 2                                         # not the east neighbour
    with pytest.raises(InputError, match="move east"):
        Floor(grid, moves=bad)
    with pytest.raises(InputError, match="travel cell"):
        Floor(grid, chutes=[Station(0, "C0", "chute", [1])])  # station on a travel cell
    with pytest.raises(InputError):
        Station(0, "X", "robot", [1])


def test_sortation_floor_is_seeded_and_valid():
    a = sortation_floor(20, 30, 6, 10, seed=5)
    b = sortation_floor(20, 30, 6, 10, seed=5)
    c = sortation_floor(20, 30, 6, 10, seed=6)
    check_contract(a)
    assert np.array_equal(a.cells, b.cells) and np.array_equal(a.moves, b.moves)
    assert not np.array_equal(a.cells, c.cells)
    assert len(a.inducts) == 6 and len(a.chutes) == 10
    assert all(s.cells.size == 4 for s in a.chutes)
    assert a.reachability_problem() is None and naive_mutually_reachable(a)
    # inducts lie on the border
    for s in a.inducts:
        r, col = a.rc(s.cells[0])
        assert r in (0, a.height - 1) or col in (0, a.width - 1)
    full = sortation_floor(20, 30, 4, lattice_capacity(20, 30), seed=0)
    assert len(full.chutes) == lattice_capacity(20, 30)
    two = sortation_floor(15, 30, 4, 6, block=(2, 1), gap=(1, 2), drop_sides="ew", seed=1)
    check_contract(two)
    assert all(s.cells.size == 4 for s in two.chutes)


@pytest.mark.parametrize("kw, field", [
    (dict(rows=10, cols=10, n_inducts=2, n_chutes=99), "n_chutes"),
    (dict(rows=5, cols=5, n_inducts=99, n_chutes=1), "n_inducts"),
    (dict(rows=2, cols=10, n_inducts=1, n_chutes=1), "rows"),
    (dict(rows=20, cols=20, n_inducts=1, n_chutes=1, drop_sides="x"), "drop_sides"),
    (dict(rows=20, cols=20, n_inducts=0, n_chutes=1), "n_inducts"),
    (dict(rows=20, cols=20, n_inducts=1, n_chutes=1, block=(0, 1)), "block"),
])
def test_sortation_floor_errors(kw, field):
    with pytest.raises(InputError) as e:
        sortation_floor(**kw)
    assert e.value.field == field


@pytest.mark.parametrize("name", ["small_12x20.txt", "medium_33x57.txt", "oneway_7x16.txt"])
def test_seed_floors_load(name):
    f = load_floor(seed_path(f"floors/{name}"))
    check_contract(f)
    assert f.inducts and f.chutes and f.reachability_problem() is None
    assert f.is_directed == (name == "oneway_7x16.txt")


def test_draw_animate_heatmap(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from sorter.layout.draw import animate, congestion_heatmap, visit_counts

    f = load_floor(seed_path("floors/oneway_7x16.txt"))
    robots = f.free_cells[:5]
    ax = f.draw(robots=robots)
    assert ax.collections                                   # the robots' dots
    png = tmp_path / "floor.png"
    ax.figure.savefig(png)
    assert png.stat().st_size > 1000
    pos = np.array([robots, robots, f.free_cells[5:10]], dtype=np.int32)
    out = animate(f, pos, 0, 3, tmp_path / "a.gif")
    assert out.stat().st_size > 1000 and out.read_bytes()[:3] == b"GIF"
    counts = congestion_heatmap(f, pos, tmp_path / "heat.png")
    assert (tmp_path / "heat.png").read_bytes()[:4] == b"\x89PNG"
    assert counts.sum() == pos.size and np.array_equal(counts, visit_counts(f, pos))
    assert counts[robots[0]] == 2
    with pytest.raises(InputError):
        animate(f, pos, 2, 2, tmp_path / "b.gif")
    with pytest.raises(InputError):
        animate(f, pos, 0, 2, tmp_path / "b.mp4")
    with pytest.raises(InputError):
        congestion_heatmap(f, pos + 1000, tmp_path / "c.png")

"""Induct queues: ``Q`` cells in the ASCII form, ``Station.queue``, one-way moves onward, and
robots that reach an induct only through its queue (checked on planned paths)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sorter.agv.lifelong import make_run, simulate
from sorter.agv.validate import validate
from sorter.errors import InputError
from sorter.layout import Floor, load_floor
from sorter.layout.ascii import format_ascii, parse_ascii
from sorter.layout.floor import Station
from sorter.resources import seed_path

SMALL = """
.........
.IQQQ....
.........
..CD.....
.........
IQQ......
..Q......
"""


def _neighbours(f, c):
    r, col = f.rc(c)
    out = []
    for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        if 0 <= r + dr < f.height and 0 <= col + dc < f.width:
            out.append(f.cell(r + dr, col + dc))
    return out


def _check_queue_moves(f):
    """The queue rules, checked cell by cell against the move table (a plain restatement)."""
    for s in f.inducts:
        q = s.queue.tolist()
        if not q:
            continue
        ind = [c for c in s.cells.tolist() if c in _neighbours(f, q[-1])][0]
        onward = q[1:] + [ind]
        for j, c in enumerate(q):
            assert [x for x in f.moves[c].tolist() if x >= 0] == [onward[j]]
            into = [x for x in range(f.n_cells) if c in f.moves[x].tolist()]
            if j:
                assert into == [q[j - 1]]
            else:
                assert into and not set(into) & (set(q) | {ind})
        assert [x for x in range(f.n_cells) if ind in f.moves[x].tolist()] == [q[-1]]


def test_q_lines_become_the_inducts_queues_tail_first():
    f = Floor.from_ascii(SMALL)
    assert [[f.rc(c) for c in s.queue] for s in f.inducts] == [
        [(1, 4), (1, 3), (1, 2)], [(6, 2), (5, 2), (5, 1)]]
    assert all(s.queue.dtype == np.int32 for s in f.inducts)
    assert f.chutes[0].queue.size == 0
    _check_queue_moves(f)
    assert "queue=<3 cells>" in repr(f.inducts[0])


def test_ascii_round_trip_keeps_queues_and_moves():
    f = Floor.from_ascii(SMALL)
    text = format_ascii(f)
    assert text.count("Q") == 6
    g = parse_ascii(text)
    assert np.array_equal(g.moves, f.moves)
    assert [s.queue.tolist() for s in g.inducts] == [s.queue.tolist() for s in f.inducts]


def test_station_queue_given_in_python_makes_the_same_floor():
    f = Floor.from_ascii(SMALL.replace("Q", "."))
    ascii_f = Floor.from_ascii(SMALL)
    inducts = [Station(s.index, s.label, "induct", s.cells, queue=q.queue)
               for s, q in zip(f.inducts, ascii_f.inducts)]
    g = Floor(f.cells.reshape(f.height, f.width), inducts=inducts, chutes=f.chutes,
              chute_body=f.chute_body)
    assert np.array_equal(g.moves, ascii_f.moves)


@pytest.mark.parametrize("text, message, line, column", [
    (".QQ\n.Q.\n.QI\nCD.", "drop cell of chute", None, None),          # unreachable via queue
    ("IQ..\nQQ..\nCD..", "two inducts", 2, 1),
    ("..Q.\n....\nI.CD", "lead to no induct", 1, 3),
    ("IQI\n...\nCD.", "two inducts", 1, 2),
    ("QQQ\nQIQ\nQQQ\nCD.", "loop", 1, 1),
    (".Q.\nQQQ\n.QI\nCD.", "4 queue neighbours", 2, 2),
    ("QQQ\n.I.\nCD.", "middle", 1, 2),
    (".Q.\nQI.\n...\nCD.", "two queues", 2, 1),
    ("@@@@\n@QI.\n@@..\nCD..", "no free cell beside it", 2, 2),
])
def test_bad_queues_name_line_and_column(text, message, line, column):
    with pytest.raises(InputError) as e:
        parse_ascii(text, name="q")
    msg = str(e.value)
    assert message in msg, msg
    if line is not None:
        assert f"<q>:{line}:" in msg and f"column {column}" in msg, msg


@pytest.mark.parametrize("queue, message", [
    ([22], "travel cells"),                         # (2, 4) is the drop cell
    ([13, 11], "not beside"),
    ([23, 24], "beside no cell of the induct"),
])
def test_bad_station_queues_are_refused(queue, message):
    f = Floor.from_ascii(".........\n.I.......\n....D....\n....C....")
    ind = [Station(0, "I0", "induct", f.inducts[0].cells, queue=queue)]
    with pytest.raises(InputError, match=message):
        Floor(f.cells.reshape(f.height, f.width), inducts=ind, chutes=f.chutes,
              chute_body=f.chute_body)


def test_a_chute_has_no_queue():
    with pytest.raises(InputError, match="inducts only"):
        Station(0, "C0", "chute", [5], queue=[4])


@settings(max_examples=30, deadline=None)
@given(length=st.integers(1, 6), row=st.integers(0, 4), seed=st.integers(0, 10**6))
def test_planned_robots_reach_an_induct_only_through_its_queue(length, row, seed):
    """A queue of random length in a random row; robots on sorting tasks: every plan is legal
    (the validator knows the one-way moves) and every arrival on the induct comes from the
    queue's head."""
    w = 14
    rows = ["." * w for _ in range(6)]
    rows[row] = "." * (12 - length) + "Q" * length + "I."
    rows.append("..D....D....D.")
    rows.append("..C....C....C.")
    rows.append("." * w)
    f = Floor.from_ascii("\n".join(rows))
    _check_queue_moves(f)
    head = int(f.inducts[0].queue[-1])
    ind = int(f.inducts[0].cells[0])
    pl, tasks = make_run(f, 6, seed=seed, tasks="sorting", dwell_chute=1, dwell_induct=1)
    res = simulate(pl, tasks, 150)
    P = res.positions
    assert validate(f, P[0], P) is None
    came = P[:-1][(P[1:] == ind) & (P[:-1] != ind)]
    assert came.size > 0 and (came == head).all()


def test_the_shipped_queue_floor_runs_through_the_cli(tmp_path):
    from sorter.cli import main
    path = seed_path("floors/queues_11x29.txt")
    f = load_floor(path)
    assert [s.queue.size for s in f.inducts] == [4, 4, 4, 4]
    out = tmp_path / "q"
    assert main(["mapf", str(path), "--robots", "30", "--steps", "200", "--scenario", "sorting",
                 "--out", str(out)]) == 0
    P = np.load(out / "paths.npz")["positions"]
    assert validate(f, P[0], P) is None
    heads = {int(s.cells[0]): int(s.queue[-1]) for s in f.inducts}
    for c, h in heads.items():
        came = P[:-1][(P[1:] == c) & (P[:-1] != c)]
        assert (came == h).all()
    assert sum(((P[1:] == c) & (P[:-1] != c)).sum() for c in heads) > 0


def test_drawing_colours_queue_cells():
    import matplotlib
    matplotlib.use("Agg")
    from sorter.layout.draw import ROLE_COLOURS, _role_image
    f = Floor.from_ascii(SMALL)
    img = _role_image(f).ravel()
    roles = list(ROLE_COLOURS)
    assert set(img[f.inducts[0].queue]) == {roles.index("queue")}
    f.draw()


def test_floor_sim_reports_robots_in_each_queue():
    """``induct_queue_mean`` / ``_max`` equal a count over the recorded positions."""
    from sorter.agv.floor_sim import FloorSimOptions
    f = load_floor(seed_path("floors/queues_11x29.txt"))
    pl, tasks = make_run(f, 30, seed=2, tasks="sorting", floor_sim=FloorSimOptions())
    steps = 250
    res = simulate(pl, tasks, steps)
    k = res.kpis()
    for s in f.inducts:
        per_step = np.isin(res.positions[1:], s.queue).sum(axis=1)
        assert k["induct_queue_mean"][s.label] == pytest.approx(per_step.mean())
        assert k["induct_queue_max"][s.label] == per_step.max() <= s.queue.size
    assert sum(k["induct_queue_max"].values()) > 0
    # a floor without queues has no such keys
    plain = load_floor(seed_path("floors/small_12x20.txt"))
    pl, tasks = make_run(plain, 10, seed=2, tasks="sorting", floor_sim=FloorSimOptions())
    assert "induct_queue_mean" not in simulate(pl, tasks, 20).kpis()


def test_generated_floor_with_queues():
    from sorter.layout import sortation_floor
    f = sortation_floor(12, 20, 4, 8, seed=1, queue=3)
    plain = sortation_floor(12, 20, 4, 8, seed=1)
    assert [s.cells.tolist() for s in f.inducts] == [s.cells.tolist() for s in plain.inducts]
    for s in f.inducts:
        assert s.queue.size == 3
        border = [c for c in s.queue.tolist()
                  if f.rc(c)[0] in (0, f.height - 1) or f.rc(c)[1] in (0, f.width - 1)]
        assert border == s.queue.tolist()
    _check_queue_moves(f)
    assert np.array_equal(parse_ascii(format_ascii(f)).moves, f.moves)
    pl, tasks = make_run(f, 20, seed=3, tasks="sorting")
    P = simulate(pl, tasks, 200).positions
    assert validate(f, P[0], P) is None
    with pytest.raises(InputError, match="queue = 15 does not fit"):
        sortation_floor(12, 20, 4, 8, seed=1, queue=15)
    with pytest.raises(InputError, match="queue"):
        sortation_floor(12, 20, 4, 8, seed=1, queue=-1)


@settings(max_examples=150, deadline=None)
@given(h=st.integers(2, 6), w=st.integers(2, 7), data=st.data())
def test_random_floors_with_q_cells_load_or_fail_cleanly(h, w, data):
    """Random grids of . @ I Q > cells: either a one-line InputError naming line and
    column, or a floor whose queues obey the rules and survive the ASCII round trip."""
    chars = data.draw(st.lists(st.sampled_from(list("....@IQQ>")), min_size=h * w,
                               max_size=h * w))
    text = "\n".join("".join(chars[r * w:(r + 1) * w]) for r in range(h))
    try:
        f = parse_ascii(text, name="fuzz")
    except InputError as e:
        assert "\n" not in str(e) and "<fuzz>:" in str(e)
        return
    _check_queue_moves(f)
    assert sum(s.queue.size for s in f.inducts) == text.count("Q")
    try:
        back = parse_ascii(format_ascii(f))
    except ValueError:
        return                          # one-way moves not expressible as arrows: refused
    assert np.array_equal(back.moves, f.moves)
    assert [s.queue.tolist() for s in back.inducts] == [s.queue.tolist() for s in f.inducts]


def test_a_queue_whose_onward_move_is_forbidden_is_refused():
    # an explicit moves table that forbids the step from the tail to the next queue cell
    f = Floor.from_ascii(".....\n.I...\n.....\n..CD.")
    moves = f.moves.copy()
    tail, mid = f.cell(1, 3), f.cell(1, 2)
    moves[tail, 2] = -1                                  # west from the tail
    ind = [Station(0, "I0", "induct", f.inducts[0].cells, queue=[tail, mid])]
    with pytest.raises(InputError, match="cannot move on from .row 1, col 3.: the move west"):
        Floor(f.cells.reshape(f.height, f.width), moves=moves, inducts=ind, chutes=f.chutes,
              chute_body=f.chute_body)


def test_station_errors_say_a_or_an():
    f = Floor.from_ascii(".....\n.I...\n...D.\n...C.")
    ind = [Station(0, "I0", "induct", f.inducts[0].cells, queue=[f.cell(1, 0)])]
    ok = Floor(f.cells.reshape(f.height, f.width), inducts=ind, chutes=f.chutes,
               chute_body=f.chute_body)
    assert ok.inducts[0].queue.tolist() == [f.cell(1, 0)]
    bad = [Station(0, "I0", "induct", f.inducts[0].cells, queue=[f.cell(2, 3), f.cell(1, 3),
                                                                   f.cell(1, 2)])]
    with pytest.raises(InputError, match="is a drop cell"):
        Floor(f.cells.reshape(f.height, f.width), inducts=bad, chutes=f.chutes,
              chute_body=f.chute_body)
    with pytest.raises(InputError, match="is an induct cell"):
        Floor(f.cells.reshape(f.height, f.width),
              chutes=[Station(0, "C0", "chute", [f.cell(1, 1)])], chute_body=f.chute_body)


def test_plain_sorting_tasks_report_queues_too():
    """Without the chute engine (SortingTasks, the default of `sorter mapf` on a sorting
    floor) the queue KPIs are there as well, equal to a count over the positions."""
    from sorter.agv.tasks import SortingTasks
    f = load_floor(seed_path("floors/queues_11x29.txt"))
    pl, tasks = make_run(f, 30, seed=4, tasks="sorting")
    assert type(tasks) is SortingTasks
    res = simulate(pl, tasks, 200)
    k = res.kpis()
    for s in f.inducts:
        per_step = np.isin(res.positions[1:], s.queue).sum(axis=1)
        assert k["induct_queue_mean"][s.label] == pytest.approx(per_step.mean())
        assert k["induct_queue_max"][s.label] == per_step.max()

"""QA pass over the features of session 11 (induct queues, the generator's queue option):
regression tests for the bugs found, each failing on the code before its fix."""
import numpy as np
import pytest

from sorter.errors import InputError
from sorter.layout import Floor, sortation_floor
from sorter.layout.ascii import format_ascii, parse_ascii
from sorter.layout.floor import Station


def _beside(f, a, b):
    (r1, c1), (r2, c2) = f.rc(a), f.rc(b)
    return abs(r1 - r2) + abs(c1 - c2) == 1


@pytest.mark.parametrize("rows, cols, n_inducts, n_chutes, seed, margin", [
    (8, 11, 6, 2, 56, 1), (9, 9, 4, 1, 49, 2), (12, 17, 6, 6, 93, 1), (12, 20, 4, 8, 1, 1),
    (9, 8, 6, 1, 93, 1), (5, 5, 1, 1, 0, 0)])
def test_the_longest_generated_queue_survives_the_ascii_round_trip(rows, cols, n_inducts,
                                                                    n_chutes, seed, margin):
    """The longest queue ``sortation_floor`` accepts leaves a free border cell before each
    tail: a tail beside the induct before it read back as 'a queue leads to two inducts', so
    the generated floor could not be written in the ASCII form (found: queue=4 on an 8 x 11
    floor with 6 inducts)."""
    longest = None
    for q in range(1, 2 * (rows + cols)):
        try:
            f = sortation_floor(rows, cols, n_inducts, n_chutes, seed=seed, margin=margin, queue=q)
        except InputError as e:
            assert "does not fit" in str(e) and e.field == "queue"
            break
        longest = f
    assert longest is not None
    ind = [int(s.cells[0]) for s in longest.inducts]
    for s in longest.inducts:
        others = [c for c in ind if c != int(s.cells[0])]
        assert not any(_beside(longest, int(s.queue[0]), c) for c in others)
    back = parse_ascii(format_ascii(longest))
    assert np.array_equal(back.moves, longest.moves)
    assert [s.queue.tolist() for s in back.inducts] == [s.queue.tolist() for s in longest.inducts]


def test_a_queue_that_cuts_a_margin_0_floor_is_named():
    """On a three-row floor with margin 0 the one-way border queues cut the floor; the error
    names the queue option, not only the stations the generator placed."""
    args = dict(seed=82, margin=0, drop_sides="ew")
    sortation_floor(3, 9, 2, 2, **args)                       # fine without queues
    with pytest.raises(InputError) as e:
        sortation_floor(3, 9, 2, 2, queue=7, **args)
    assert e.value.field == "queue" and "queue = 7 cuts the floor" in str(e.value)
    assert "margin" in str(e.value)


def test_a_queue_on_a_multi_cell_induct_is_refused():
    """Only the induct cell beside the queue's head was closed: robots reached the induct's
    other cells from anywhere, round the queue."""
    b = Floor.from_ascii(".......\n.II....\n.......\n..CD...")
    ind = [Station(0, "I0", "induct", [b.cell(1, 1), b.cell(1, 2)],
                   queue=[b.cell(1, 4), b.cell(1, 3)])]
    with pytest.raises(InputError, match="one-cell induct") as e:
        Floor(b.cells.reshape(b.height, b.width), inducts=ind, chutes=b.chutes,
              chute_body=b.chute_body)
    assert e.value.field == "queue"
    # a one-cell induct with the same queue is fine
    one = [Station(0, "I0", "induct", [b.cell(1, 2)], queue=[b.cell(1, 4), b.cell(1, 3)])]
    f = Floor(b.cells.reshape(b.height, b.width), inducts=one, chutes=b.chutes,
              chute_body=b.chute_body)
    assert [x for x in range(f.n_cells) if b.cell(1, 2) in f.moves[x].tolist()] == [b.cell(1, 3)]


def test_arrows_that_keep_robots_out_of_a_queue_tail_name_line_and_column():
    """A ``<`` beside the tail keeps its only free neighbour from moving in: the error came from
    ``Floor`` without file, line or column."""
    text = ".@@@@@\n<QQI..\n.@@...\n......\n..CD.."
    with pytest.raises(InputError) as e:
        parse_ascii(text, name="t")
    msg = str(e.value)
    assert "<t>:2:" in msg and "column 2" in msg and "tail" in msg, msg
    # the same floor with an arrow that lets robots step east into the tail loads
    f = parse_ascii(text.replace("<", "^"), name="t")
    assert f.inducts[0].queue.size == 2


def test_queues_the_ascii_form_cannot_hold_are_refused_as_such():
    """Two Python queues side by side read back as one branching Q line: ``format_ascii``
    raised the parse error of its own text (line and column of a text nobody wrote)."""
    b = Floor.from_ascii(".........\n.....I...\n.....I...\n.........\n..CD.....")
    c = b.cell
    ind = [Station(0, "I0", "induct", [c(1, 5)], queue=[c(1, 2), c(1, 3), c(1, 4)]),
           Station(1, "I1", "induct", [c(2, 5)], queue=[c(2, 2), c(2, 3), c(2, 4)])]
    f = Floor(b.cells.reshape(b.height, b.width), inducts=ind, chutes=b.chutes,
              chute_body=b.chute_body)
    with pytest.raises(ValueError, match="cannot be written in the ASCII form"):
        format_ascii(f)


def test_a_cell_listed_twice_in_one_queue_is_named_as_such():
    """The error said 'is in another queue too' for a cell repeated in the same queue."""
    b = Floor.from_ascii(".........\n.I.......\n.........\n..CD.....")
    c = b.cell
    ind = [Station(0, "I0", "induct", b.inducts[0].cells, queue=[c(1, 3), c(1, 3), c(1, 2)])]
    with pytest.raises(InputError, match="twice in this queue"):
        Floor(b.cells.reshape(b.height, b.width), inducts=ind, chutes=b.chutes,
              chute_body=b.chute_body)

"""QA session 21 (cong): online congestion costs (sorter.agv.congestion) and the distance-table
pool's weight versions (sorter.agv.distance), on inputs tests/test_congestion.py does not try."""
import numpy as np
import pytest

from sorter.agv import DistanceTables, Planner
from sorter.agv.validate import check_paths
from sorter.layout import Floor

# inducts (I) along the top row, where robots queue; two chutes below (tests/test_congestion.py)
FLOOR = """
I.I.I.I.I.I
...........
.CD.....CD.
...........
.CD.....CD.
...........
"""


def _planner(f, seed, cost, tables=None, n=25, period=3):
    rng = np.random.default_rng(seed)
    starts = rng.choice(f.free_cells, n, replace=False)
    return Planner(f, n, starts, seed=seed, dwell_chute=0, dwell_induct=0, guidance="lanes",
                   rotation=True, congestion_period=period, congestion_cost=cost, tables=tables)


def _stepper(f, p, seed, steps, out):
    """Steps planner ``p`` (goals: 60% induct cells), yielding after each step; the positions
    land in ``out``."""
    rng = np.random.default_rng(seed)
    inducts = np.flatnonzero(f.cells == 2)
    n = p.n_robots
    goals = np.where(rng.random(n) < 0.6, rng.choice(inducts, n),
                     rng.choice(f.free_cells, n)).astype(np.int32)
    out.append(p.positions.copy())
    for _ in range(steps):
        out.append(p.step(goals).copy())
        yield
        fin = np.flatnonzero(p.finished)
        goals = goals.copy()
        goals[fin] = np.where(rng.random(fin.size) < 0.6, rng.choice(inducts, fin.size),
                              rng.choice(f.free_cells, fin.size))


def _run(f, p, seed, steps):
    out = []
    for _ in _stepper(f, p, seed, steps, out):
        pass
    return np.array(out)


def test_planners_sharing_a_pool_keep_their_own_congestion_versions():
    """Each planner numbered its congestion costs 1, 2, 3, ... and registered them in the pool
    under those numbers: two planners sharing a pool (``Planner(tables=...)``) overwrote each
    other's costs (one's robots read tables of the other's costs), and one's drop_weights of
    a number the other still used made the other's next acquire raise InputError ("no move
    costs registered as version 19") in the middle of a run."""
    f = Floor.from_ascii(FLOOR)
    steps = 60
    own_a = _run(f, _planner(f, 1, 30.0), 1, steps)
    own_b = _run(f, _planner(f, 2, 10.0), 2, steps)
    pa = _planner(f, 1, 30.0)
    pb = _planner(f, 2, 10.0, tables=pa.tables)
    a, b = [], []
    ga, gb = _stepper(f, pa, 1, steps, a), _stepper(f, pb, 2, steps, b)
    for _ in range(steps):                       # alternately, on one pool
        next(ga)
        next(gb)
    assert pa._cong.versions >= 1 and pb._cong.versions >= 1
    assert np.array_equal(np.array(a), own_a)
    assert np.array_equal(np.array(b), own_b)
    check_paths(f, own_b[0], np.array(b))
    # a planner started later on the same pool (the first one gone) takes new numbers too
    pc = _planner(f, 2, 10.0, tables=pa.tables)
    assert np.array_equal(_run(f, pc, 2, steps), own_b)
    tabs = DistanceTables(f)
    v = tabs.new_version()
    tabs.set_weights(v + 5, np.ones((tabs.graph.n_free, 4), np.uint8))
    assert tabs.new_version() == v + 6           # past every number registered by hand


def test_congestion_never_lowers_a_pools_own_move_costs():
    """A pool's own move costs may be 1..255 (``DistanceTables(costs=...)``, shared with a
    planner by ``tables=``); the congestion costs were capped at 250 *below* them, so with
    ``congestion_cost=0`` (no extra anywhere) the first blend registered a version whose moves
    cost 250 instead of 255, and robots bound for inducts read tables of those costs."""
    from sorter.agv.congestion import weighted_costs
    base = np.array([[255, 0, 249, 1]], np.uint8)
    out = np.empty_like(base)
    weighted_costs(base, np.array([0.0]), 0.0, out)
    assert out.tolist() == base.tolist()
    weighted_costs(base, np.array([1.0]), 3.0, out)
    assert out.tolist() == [[255, 0, 250, 4]]
    f = Floor.from_ascii(FLOOR)
    tabs = DistanceTables(f, costs=np.full((f.cells.size, 4), 255))
    p = Planner(f, 5, f.free_cells[12:17], guidance="lanes", rotation=True, tables=tabs,
                congestion_period=2, congestion_cost=0, dwell_chute=0, dwell_induct=0)
    goals = np.array([0, 2, 4, 6, 8], np.int32)
    for _ in range(12):
        p.step(goals)
    assert p._cong.versions == 0 and not tabs._weights


def test_set_weights_checks_costs_and_version_numbers():
    """``set_weights`` cast costs to uint8 unchecked: 256 became a free move, -1 a 255 one,
    0 (or 1.7 -> 1, True -> 1) were taken, and every table of that version read 0 where the
    costs wrapped (no way down it for a robot). A number registered again with other costs
    kept serving the tables cached under the first costs."""
    from sorter.errors import InputError
    f = Floor.from_ascii("....\n.@..\n....")
    tabs = DistanceTables(f)
    rc = (tabs.graph.radj >= 0).astype(np.int64)
    for bad in (rc * 256, rc * -1, rc * 0, rc * 1.7, rc.astype(bool), rc[:3]):
        with pytest.raises(InputError, match="costs"):
            tabs.set_weights(1, bad)
    for bad in ("1", None, 1.5, True, -1):
        with pytest.raises(InputError, match="version"):
            tabs.set_weights(bad, rc)
    tabs.set_weights(1, rc * 2)
    tabs.set_weights(np.int64(1), (rc * 2).astype(np.uint8))     # the same costs again: fine
    assert tabs.lookup(("wcell", 0, 1), (0,))[:4].tolist() == [0, 2, 4, 6]
    with pytest.raises(InputError, match="version 1 was registered before"):
        tabs.set_weights(1, rc * 3)
    tabs.drop_weights(1)
    with pytest.raises(InputError, match="version 1 was registered before"):
        tabs.set_weights(1, rc * 2)
    tabs.set_weights(tabs.new_version(), rc * 3)
    assert tabs.lookup(("wcell", 0, 2), (0,))[:4].tolist() == [0, 3, 6, 9]


@pytest.mark.parametrize("urgent,force", [(False, True), (True, False), (False, False)])
def test_prefetch_many_with_a_bad_cell_queues_nothing(urgent, force):
    """A bad goal cell in a later job of ``prefetch_many`` raised InputError after the earlier
    jobs were queued but before the thread was started: those keys stayed "in flight" for
    ever (never computed; ``prefetch`` of them refused; ``wait_prefetched()`` never returned
    True; ``wait_forced`` returned with the forced table not computed). An urgent job moved
    out of the queue was lost the same way."""
    from sorter.errors import InputError
    f = Floor.from_ascii("....\n.@..\n....")
    tabs = DistanceTables(f)
    if urgent:                                      # one queued already, then raised urgent
        assert tabs.prefetch_many([(("cell", 2), (2,), None)]) == 1
    with pytest.raises(InputError, match="obstacle"):
        tabs.prefetch_many([(("cell", 0), (0,), None), (("cell", 2), (2,), None),
                            (("cell", 5), (5,), None)], urgent=urgent, force=force)
    tabs.wait_forced()
    assert tabs.wait_prefetched(timeout=5)
    assert ("cell", 0) not in tabs._inflight and not tabs._forced
    assert tabs.prefetch(("cell", 0), (0,))         # not refused as in flight
    assert tabs.wait_prefetched(timeout=5)
    for c in (0, 2) if urgent else (0,):
        assert tabs.cached_row(("cell", c)) >= 0

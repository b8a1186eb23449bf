"""The planner re-gathers only the robots whose cell, table row or row content changed since the
last step (``Planner._gather_local``); every other robot's ``_local`` must still be what a full
gather would copy. Checked before every kernel call against a plain-Python read of the tables,
under the conditions that change rows: bounded tables widened and completed, an LRU bound of 0
(rows evicted and reused at once), congestion refreshes, held robots and detours."""
import numpy as np
import pytest

from sorter.agv import Planner
from sorter.agv.lifelong import make_run, simulate
from sorter.agv.tasks import ErrandTasks
from sorter.layout import Floor
from test_congestion import FLOOR
from test_prefetch import random_floor


def full_gather_matches(p):
    """Every robot's ``_local`` against the tables read in plain Python (directions with no move
    are never read by the kernel, so not compared)."""
    tabs, g = p.tables, p.graph
    bad = []
    for i in range(p.n_robots):
        row, v = int(p._slot[i]), int(p._pos[i])
        lo, hi = tabs.span[row]

        def at(u):
            return int(tabs.pool[row, u]) if lo <= u < hi else tabs.unsettled
        if int(p._local[i, 4]) != at(v):
            bad.append((i, 4))
        for d in range(4):
            u = int(g.fadj[v, d])
            if u >= 0 and int(p._local[i, d]) != at(u):
                bad.append((i, d))
    return bad


def checked(p):
    """Wrap the planner's kernel call with the check; returns the list of steps checked."""
    seen = []
    kernel = p._kernel_step

    def step():
        bad = full_gather_matches(p)
        assert not bad, (p.step_no, bad[:5])
        seen.append(p.step_no)
        kernel()
    p._kernel_step = step
    return seen


@pytest.mark.parametrize("seed, rotation, mb", [(1, False, 0.0), (2, True, 0.0), (3, True, 512.0),
                                                (4, False, 0.05)])
def test_local_is_a_full_gather_with_bounded_tables_and_row_reuse(seed, rotation, mb):
    f = random_floor(seed, 10 + seed % 4, 14 + seed % 5, density=0.12)
    n = 40
    rng = np.random.default_rng(seed)
    starts = rng.choice(f.free_cells, n, replace=False)
    errands = rng.choice(f.free_cells, 8 * n)
    p = Planner(f, n, starts, seed=seed, dwell_chute=0, dwell_induct=0, guidance="lanes+flow",
                rotation=rotation, max_table_mb=mb)
    p.tables.slack = 0                              # narrow bands: widened often
    s = ErrandTasks(errands, n, strategy="nearest", offsets=np.arange(0, errands.size + 1, 2),
                    width=f.width, reveal=2)
    seen = checked(p)
    goals = s.start(p)
    moved = 0
    for t in range(120):
        if t == 50:
            p.hold([0, 1])                          # faults: detours, complete tables
        if t == 80:
            p.release([0])
        before = p._pos.copy()
        p.step(goals)
        moved += int((p._pos != before).sum())
        goals = s.update(p)
    p.tables.wait_prefetched(timeout=30)
    assert len(seen) == 120 and moved > 0 and s.tasks_finished > 0
    assert p.tables.resumed + p.tables.bfs_count > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_local_is_a_full_gather_with_congestion_refreshes(seed):
    f = Floor.from_ascii(FLOOR)
    rng = np.random.default_rng(seed)
    inducts = np.flatnonzero(f.cells == 2)
    errands = np.where(rng.random(400) < 0.5, rng.choice(inducts, 400),
                       rng.choice(f.free_cells, 400))
    p, s = make_run(f, 24, seed=seed, errands=errands, dwell_chute=0, dwell_induct=0,
                    rotation=True, congestion_period=10, max_table_mb=0.0)
    p._cong.cost = 30.0                             # costs change every few steps
    seen = checked(p)
    simulate(p, s, 200, record=False)
    assert len(seen) == 200
    assert p._cong.version > 1 and p._cong.switched > 0

"""QA session 21 (review): the session's changes to the table pool (sorter.agv.distance:
``wait_forced`` computing forced jobs on the caller's thread, ``prefetch_many`` checking its jobs
before queuing) and the planner's incremental gather (``Planner._gather_local``), on cases the
session's own tests do not try."""
import subprocess
import sys
import threading

import numpy as np
import pytest

from naive_pibt import dijkstra_distances
from sorter.agv import DistanceTables, Planner
from sorter.agv.tasks import ErrandTasks
from sorter.errors import InputError
from sorter.layout import Floor
from test_congestion import _weighted_setup
from test_incremental_gather import full_gather_matches
from test_prefetch import random_floor

_BAD_NEAR = """
import sys
from sorter.agv import DistanceTables
from sorter.errors import InputError
from sorter.layout import Floor
tabs = DistanceTables(Floor.from_ascii("......\\n.#..#.\\n......"))
try:
    if sys.argv[1] == "acquire":
        tabs.acquire(("cell", 0), (0,), near=int(sys.argv[2]))
    else:
        tabs.prefetch(("cell", 0), (0,), near=int(sys.argv[2]))
        tabs.wait_prefetched(10)
except InputError as e:
    print("InputError", e)
"""


@pytest.mark.parametrize("how", ["acquire", "prefetch"])
def test_a_near_cell_off_the_floor_is_refused_not_a_crash(how):
    """``acquire(..., near=)`` / ``prefetch(..., near=)`` with a free-cell index beyond the floor
    went unchecked into the compiled A* band (it indexes without bounds checks): the process
    died of a segmentation fault (in the prefetch thread for ``prefetch``, after it had
    returned True). A negative one silently bounded the table toward a wrapped-around cell.
    Now InputError naming ``near``. (Run in a subprocess: the old code crashes the
    interpreter.)"""
    r = subprocess.run([sys.executable, "-c", _BAD_NEAR, how, str(10**7)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr[-500:])
    assert "InputError" in r.stdout and "near" in r.stdout, r.stdout


def test_near_checks_keep_good_values_and_queue_nothing_on_a_bad_one():
    f = Floor.from_ascii("......\n.#..#.\n......")
    tabs = DistanceTables(f)
    n = tabs.graph.n_free
    row = tabs.acquire(("cell", 0), (0,), near=np.int32(n - 1))     # numpy ints fine
    tabs.release(row)
    for bad in (1.5, True, "3", n, -3):
        with pytest.raises(InputError, match="near"):
            tabs.acquire(("cell", 5), (5,), near=bad)
        with pytest.raises(InputError, match="near"):      # the good first job not queued
            tabs.prefetch_many([(("cell", 2), (2,), 2), (("cell", 3), (3,), bad)])
        assert not tabs._jobs and not tabs._inflight


def test_wait_forced_files_right_tables_when_the_pool_grows_during_the_callers_search():
    """The caller computes a forced job outside the lock into a row of the pool it saw; the
    pool may grow (by copying) meanwhile (the prefetch thread taking rows): the table filed
    must be the one computed, in the new pool."""
    f, fwd2, tabs = _weighted_setup()
    goals = [int(c) for c in f.free_cells][:12]
    tabs._worker = threading.Thread(target=lambda: None)   # takes no job: the caller does all
    fill, calls = tabs._fill, []

    def growing_fill(*a, **k):
        calls.append(1)
        if len(calls) in (2, 5):                # as if the other thread grew the pool now
            with tabs._lock:
                tabs._grow()
        return fill(*a, **k)
    tabs._fill = growing_fill
    rows0 = tabs.pool.shape[0]
    assert tabs.prefetch_many([(("wcell", g, 1), (g,), None) for g in goals],
                              force=True) == len(goals)
    tabs.wait_forced()
    assert tabs.pool.shape[0] == 4 * rows0 and len(calls) == len(goals)
    assert not tabs._forced and not tabs._inflight
    for g in goals:
        row = tabs.cached_row(("wcell", g, 1))
        want = dijkstra_distances(f.moves, fwd2, [g])
        got = tabs.values(row)
        assert all(got[tabs.graph.fidx[c]] == want.get(int(c), tabs.unreachable)
                   for c in f.free_cells), g


@pytest.mark.parametrize("seed, mb", [(0, 0.0), (1, 512.0)])
def test_incremental_gather_with_two_planners_sharing_a_pool(seed, mb):
    """Two planners on one pool, stepped in turn, bound for a few goals (shared bounded rows):
    one planner's widening, completing (a hold) and row reuse change rows the other's robots
    read between its steps. Before every kernel call each planner's ``_local`` must be what a
    full gather would copy."""
    f = random_floor(seed, 10, 14, density=0.12)
    rng = np.random.default_rng(seed)
    tabs = DistanceTables(f, max_mb=mb)
    tabs.slack = 0                              # narrow bands: widened often
    n, runs, bad = 16, [], []
    for k in range(2):
        p = Planner(f, n, rng.choice(f.free_cells, n, replace=False), seed=seed + k,
                    dwell_chute=0, dwell_induct=0, tables=tabs, rotation=bool(k))
        errands = rng.choice(f.free_cells[:10], 8 * n)
        s = ErrandTasks(errands, n, strategy="nearest", offsets=np.arange(0, errands.size + 1, 2),
                        width=f.width, reveal=2)
        kernel = p._kernel_step

        def step(p=p, kernel=kernel):
            bad.extend(full_gather_matches(p))
            kernel()
        p._kernel_step = step
        runs.append([p, s, s.start(p)])
    for t in range(70):
        for k, run in enumerate(runs):
            p, s, goals = run
            if t == 30 and k == 1:
                p.hold([0])                     # complete_all: every shared row completed
            p.step(goals)
            run[2] = s.update(p)
    tabs.wait_prefetched(timeout=30)
    assert not bad, bad[:5]
    assert tabs.resumed > 0

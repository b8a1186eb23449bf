"""QA round 19 (longrun): what a run of weeks does to the engine, the planner and the floor sim.

Long runs were measured apart (scripts and figures in the session report); these tests hold the
two bugs found, by putting counters at their limits rather than running 2**31 steps:

* ``Planner(guidance="flow", flow_halflife=0)`` (counts never halved): an edge's int32 traffic
  count wrapped negative after 2**31 moves across it; a negative contra-flow count made the move
  against it the best candidate, and a robot in a corridor shuttled between two cells for ever
  instead of reaching its goal. The count now stops at 2**30 - 1 (it is read clamped at 4,095, so
  no decision changes). (``sorter.agv.pibt``)
* ``FloorSim`` (``sorter mapf --scenario sorting``, also without ``--out``) kept a NumPy array per
  step for the robot states and another for the faulted robots (~290 bytes a step: ~140 MB more
  peak RSS for 200,000 steps of 6 robots; gigabytes for a run of millions of steps, which
  ``sorter mapf``'s memory check puts at 16 bytes a step). ``util_steps`` is now rows of one
  int64 buffer (48 bytes a step) and a step with no robot faulted shares one empty array.
  (``sorter.agv.floor_sim``)

And, as guards: the chute engine's per-destination tables do not grow with unknown destinations,
no-reads or plan switches that reuse destination codes; its counters are 64-bit.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from sorter import Sorter
from sorter.resources import seed_path


def _demo():
    return Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))


# -- planner: traffic counts that are never halved --------------------------------------------
def test_flow_counts_never_halved_stop_short_of_wrapping():
    from sorter.agv import Planner
    from sorter.layout import Floor

    f = Floor(np.ones((1, 6), np.int8))                 # a corridor, cells 0..5
    p = Planner(f, 1, [2], seed=0, guidance="flow", flow_halflife=0, dwell_chute=0,
                dwell_induct=0)
    east, west = 0, 2
    idx = p.graph.fidx
    # 2**31 - 1 moves so far along 1 -> 2 and 2 -> 1 (a run of weeks at full speed)
    p._flow[idx[1], east] = 2**31 - 1
    p._flow[idx[2], west] = 2**31 - 1
    goal = np.array([0])
    path = [2]
    for _ in range(6):
        path.append(int(p.step(goal)[0]))
        if p.finished[0]:
            goal = np.array([5 if goal[0] == 0 else 0])
    assert p._flow.min() >= 0, "a traffic count wrapped negative"
    # (was [2, 1, 2, 1, 2, 1, 2]: the wrapped count pulled the robot back east for ever)
    assert path == [2, 1, 0, 1, 2, 3, 4]


# -- floor simulation: what it keeps per step --------------------------------------------------
def _footprint(objs) -> int:
    """Bytes held by distinct arrays among ``objs`` (a view counts its base's data)."""
    seen, total = set(), 0
    for a in objs:
        b = a.base if isinstance(a, np.ndarray) and a.base is not None else a
        if id(b) in seen:
            continue
        seen.add(id(b))
        total += sys.getsizeof(b) + (b.nbytes if isinstance(b, np.ndarray) and not b.flags.owndata
                                     else 0)
    return total


def test_floor_sim_history_per_step_is_compact():
    from sorter.agv.floor_sim import UTIL_STATES, FloorSimOptions
    from sorter.agv.lifelong import make_run, simulate
    from sorter.layout import load_floor

    floor = load_floor(seed_path("floors/small_12x20.txt"))
    steps = 600
    planner, stream = make_run(floor, 6, seed=0,
                               floor_sim=FloorSimOptions(fault_rate=0.002, repair_steps=20))
    simulate(planner, stream, steps, record=False)
    u = stream.util_steps
    # the same figures as before: one row per step, the states summing to the totals
    assert np.asarray(u).shape == (steps, len(UTIL_STATES))
    assert np.asarray(u).sum(axis=0).tolist() == stream.util.tolist()
    assert (np.asarray(u).sum(axis=1) == 6).all()
    fs = stream.faulted_steps
    assert len(fs) == steps
    assert [len(x) for x in fs] == np.asarray(u)[:, UTIL_STATES.index("faulted")].tolist()
    # ... kept compactly: was a list of 600 arrays per history, ~290 bytes a step
    util_bytes = _footprint([u]) if isinstance(u, np.ndarray) else _footprint(u) + sys.getsizeof(u)
    fault_bytes = _footprint(fs)
    assert util_bytes / steps < 100, f"{util_bytes / steps:.0f} bytes a step for util_steps"
    n_faulted = sum(1 for x in fs if len(x))
    assert n_faulted < steps // 2           # (most steps have no robot faulted)
    assert fault_bytes < 200 * (n_faulted + 1), f"{fault_bytes} bytes for {n_faulted} faulted steps"


def test_floor_sim_util_steps_is_read_only():
    """``util_steps`` is a view of the buffer the sim writes: a caller cannot corrupt it."""
    from sorter.agv.floor_sim import FloorSimOptions
    from sorter.agv.lifelong import make_run, simulate
    from sorter.layout import load_floor

    floor = load_floor(seed_path("floors/small_12x20.txt"))
    planner, stream = make_run(floor, 4, seed=1, floor_sim=FloorSimOptions())
    simulate(planner, stream, 100, record=False)
    u = stream.util_steps
    with pytest.raises(ValueError):
        u[0, 0] = 99
    assert stream.faulted_steps[0].size == 0
    with pytest.raises(ValueError):
        stream.faulted_steps[0].resize(3)


# -- the chute engine over a long day ----------------------------------------------------------
def test_engine_tables_do_not_grow_with_unknowns_noreads_or_reused_plans():
    from sorter.plan import SortPlan

    s = _demo()
    base = s.sort_plan
    n0 = len(s._dest_codes())
    for k in range(20):
        for i in range(500):
            s.assign(f"unknown-{k}-{i}")
            s.assign(None)
            s.assign("")
        s.destination_ids([f"never-{k}-{i}" for i in range(500)])
        routes = dict(zip(reversed(list(base.routes)), base.routes.values()))
        s.switch_plan(SortPlan(routes=routes, reject=dict(base.reject),
                               overflow=tuple(base.overflow), strategy="round_robin",
                               max_recirculation=3, name=f"wave-{k}"))
        s.switch_plan(seed_path("plan/demo_plan_wave2.csv"))
    assert len(s._dest_codes()) == n0 == len(base.routes)
    assert s.plan_in_force.n_dest == n0
    assert len(s.state_dict()["rr_cursor"]) == n0


def test_engine_counters_are_64_bit_and_fill_stops_at_int32():
    s = _demo()
    a = s._arrays()
    for k in ("assigned", "discharged", "reason_count"):
        assert a[k].dtype == np.int64, k          # 2**31 parcels do not wrap them
    assert a["fill"].dtype == np.int32
    for _ in range(3):                            # 3 x 2**30 items into one container
        s.discharged("C001", 2**30)
    assert s.chute_fill("C001") == 2**31 - 1
    assert s.counters()["by_chute"]["C001"]["discharged"] == 3 * 2**30
    assert s.assign("01422").reason in ("ok", "overflow")

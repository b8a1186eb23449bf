"""Regression tests for the fixes of session 16 (each fails on the code before it)."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from sorter import Chute, Decision, SortPlan, Sorter
from sorter.constants import REJECT_REASONS
from sorter.errors import InputError


def _small():
    chutes = [Chute("A1", capacity=9), Chute("A2", capacity=9), Chute("B1", capacity=9),
              Chute("OV", "overflow", 9), Chute("R1", "reject", 99), Chute("R2", "reject", 99)]
    reject = {r: "R1" for r in REJECT_REASONS}
    plan = SortPlan(routes={"A": ("A1", "A2"), "B": ("B1",)}, reject=reject, overflow=("OV",),
                    strategy="fill_first", max_recirculation=3, name="w1")
    return plan, chutes


def test_prepared_routes_take_the_settings_in_force_at_the_switch():
    # a plan prepared from a mapping kept the settings in force when it was prepared: a
    # whole-plan switch in between was undone for max recirculation and the reject chutes
    plan, chutes = _small()
    s = Sorter(plan, chutes)
    prepared = s.prepare_plan({"A": ["A2"], "B": ["B1"]})
    reject2 = {r: "R2" for r in REJECT_REASONS}
    s.switch_plan(dataclasses.replace(plan, max_recirculation=1, reject=reject2, name="w2"))
    s.switch_plan(prepared)
    assert s.sort_plan.max_recirculation == 1
    assert s.assign("A", 2) == Decision("R2", "max_recirculation")
    assert s.assign("A", 1) == Decision("A2", "ok")
    assert s.assign("zz") == Decision("R2", "unknown_destination")
    # a whole SortPlan prepared keeps its own settings
    s.switch_plan(s.prepare_plan(plan))
    assert s.assign("A", 2) == Decision("A1", "ok")


def test_prepared_routes_take_the_overflow_chutes_in_force_at_the_switch():
    plan, chutes = _small()
    s = Sorter(plan, chutes)
    prepared = s.prepare_plan({"A": ["A1"], "B": ["A2"]})
    # the plan in force now sends overflow to A2, which the prepared routes use as a
    # destination chute (the checker allows it)
    other = dataclasses.replace(plan, overflow=("A2",))
    s.switch_plan(other)
    s.switch_plan(prepared)
    assert s.sort_plan.overflow == ("A2",)
    assert s.sort_plan.routes["B"] == ("A2",)


@pytest.mark.parametrize("bad", [True, False, 7.0, np.float64(1.0), np.bool_(True)])
def test_chute_events_refuse_bool_and_float_ids(bad):
    # True == 1 and 7.0 == 7: they found chutes 1 and 7 of a table with int ids
    chutes = [Chute(i, capacity=5) for i in range(1, 9)] + [Chute(99, "reject", 99)]
    plan = SortPlan(routes={"A": (1, 7)}, reject={r: 99 for r in REJECT_REASONS})
    s = Sorter(plan, chutes)
    for call in (lambda: s.set_state(bad, "blocked"), lambda: s.chute_state(bad),
                 lambda: s.discharged(bad), lambda: s.container_changed(bad)):
        with pytest.raises(InputError, match="chute"):
            call()
    assert s.chute_state(7) == "open" and s.chute_state(np.int64(1)) == "open"


def test_ascii_floor_with_millions_of_rows_is_refused_before_splitting(tmp_path):
    from sorter.layout import load_floor
    from sorter.layout._common import MAX_FLOOR_CELLS
    p = tmp_path / "tall.txt"
    p.write_text("I\n" + ".\n" * (MAX_FLOOR_CELLS + 40) + "C\n")
    with pytest.raises(InputError, match=r"tall\.txt.*lines of rows"):
        load_floor(p)
    # blank lines around a floor do not count
    from sorter.layout.ascii import _check_line_count
    _check_line_count("\n" * (MAX_FLOOR_CELLS + 40) + "I.C\n" + "\n" * 40, "x")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_symlink_loop_is_named_as_such(tmp_path):
    from sorter.layout import load_floor
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(InputError, match="symbolic link"):
        load_floor(a)


def test_floor_sweep_unknown_setting_names_the_floor_file():
    from sorter.floor_sweep import floor_sweep
    from sorter.resources import seed_path
    p = seed_path("floors/small_12x20.txt")
    with pytest.raises(InputError, match=r"small_12x20\.txt.*robts"):
        floor_sweep(p, {"robts": [5]}, seeds=1, n_workers=1)
    with pytest.raises(InputError, match=r"small_12x20\.txt.*stps"):
        floor_sweep(p, {"robots": [5]}, seeds=1, overrides={"stps": 9}, n_workers=1)


@pytest.mark.parametrize("bad", [10**30, -10**30, 2**31, "x", None, 3.0, True,
                                 np.uint64(2**63), [1]])
def test_assign_id_never_raises(bad):
    # assign_id took C ints: an id or count past 2**31 raised OverflowError, junk TypeError
    from sorter.constants import REASONS
    plan, chutes = _small()
    s = Sorter(plan, chutes)
    c, r = s.assign_id(bad)
    assert (s.chute_ids[c], REASONS[r]) == ("R1", "unknown_destination")
    a = int(s.destination_ids(["A"])[0])
    c, r = s.assign_id(a, 10**40)
    assert (s.chute_ids[c], REASONS[r]) == ("R1", "max_recirculation")
    c, r = s.assign_id(a, "1", "no")
    assert REASONS[r] == "not_sortable"


def test_assign_id_agrees_with_assign_on_valid_ids():
    plan, chutes = _small()
    s1, s2 = Sorter(plan, chutes), Sorter(plan, chutes)
    codes = ["A", "B", "zz", None, "A", "B", "A"] * 5
    ids = s2.destination_ids(codes)
    for k, (code, i) in enumerate(zip(codes, ids)):
        d = s1.assign(code, k % 4)
        c, r = s2.assign_id(int(i), k % 4)
        from sorter.constants import REASONS
        assert (s2.chute_ids[c], REASONS[r]) == (d.chute, d.reason)
        if d.reason in ("ok", "overflow"):
            s1.discharged(d.chute)
            s2.discharged(d.chute)


def test_lorr_json_with_a_key_given_twice_is_refused(tmp_path):
    # json keeps the last value silently: "teamSize": 10, "teamSize": 20 ran 20 robots
    from sorter.layout.lorr import load_lorr_problem
    p = tmp_path / "dup.json"
    p.write_text('{\n  "mapFile": "x.map",\n  "teamSize": 10,\n  "teamSize": 20\n}\n')
    with pytest.raises(InputError, match=r"dup\.json:4: field 'teamSize'.*given twice"):
        load_lorr_problem(p)


def _cost_reference(st, d):
    """The induct cost as SortingTasks / FloorSim wrote it before the compiled loop."""
    if st.induct_choice == "balanced":
        d = d + st.balance_weight * st.load
    if getattr(st, "_supply", False):
        lam = max(st._arrival_per_step(), 1e-9)
        d = d + np.maximum(0, st.load - st.supply + 1) / lam
        if st._prev_pos is not None and st.fault_left.any():
            k = st.induct_area[st._prev_pos[st.fault_left > 0]]
            d = d.copy()
            d[k[k >= 0]] += 1e6
    return d


def _pick_reference(stream, planner, robots, pos, avoid=None):
    """The induct choice as it was written before the compiled loop: per robot, the costs
    over NumPy, ``np.argmin``, the choice counted before the next robot's."""
    rows = stream._induct_tables(planner)
    out = np.empty(len(robots), np.int64)
    for j, c in enumerate(pos):
        fc = planner.graph.fidx[c]
        d = planner.tables.pool[rows, fc].astype(np.float64)
        assert (stream._induct_cost(d) == _cost_reference(stream, d)).all()
        d = _cost_reference(stream, d)
        if avoid is not None and d.size > 1:
            d[avoid[j]] = np.inf
        k = int(np.argmin(d))
        out[j] = k
        stream.load[k] += 1
    return out


@pytest.mark.parametrize("supply", [False, True])
@pytest.mark.parametrize("choice", ["balanced", "nearest"])
def test_compiled_induct_choice_equals_the_numpy_formula(supply, choice):
    from sorter.agv.floor_sim import FloorSimOptions
    from sorter.agv.lifelong import make_run
    from sorter.resources import seed_path
    from sorter.layout import load_floor
    floor = load_floor(seed_path("floors/medium_33x57.txt"))
    opts = FloorSimOptions(arrival_rate=2000.0, fault_rate=0.01) if supply else FloorSimOptions()
    p, s = make_run(floor, 80, seed=3, floor_sim=opts, induct_choice=choice)
    goals = s.start(p)
    rng = np.random.default_rng(7)
    n_ind = len(floor.inducts)
    penalised = 0
    for t in range(120):
        if hasattr(s, "pre_step"):
            s.pre_step(p, goals)
        p.step(goals)
        goals = s.update(p)
        if t % 10:
            continue
        m = int(rng.integers(1, 12))
        robots = rng.choice(p.n_robots, m, replace=False)
        pos = p.positions[robots]
        kept = s.load.copy(), s.supply.copy() if supply else None     # the run's own state
        penalised += supply and s._cost_terms()[4] is not None
        if supply:
            s.supply[:] = rng.integers(0, 4, n_ind)
        s.load[:] = rng.integers(0, 6, n_ind)
        for avoid in (None, rng.integers(0, n_ind, m), rng.random((m, n_ind)) < 0.5,
                      np.ones((m, n_ind), bool)):
            before = s.load.copy()
            got = s._pick_inducts(p, robots, pos, avoid=avoid)
            got_load = s.load.copy()
            s.load[:] = before
            want = _pick_reference(s, p, robots, pos, avoid=avoid)
            assert got.tolist() == want.tolist()
            assert got_load.tolist() == s.load.tolist()
            s.load[:] = before
        s.load[:] = kept[0]
        if supply:
            s.supply[:] = kept[1]
    assert s.completed > 0
    assert penalised or not supply          # inducts behind a faulted robot were priced too


def test_dask_result_lost_with_its_worker_and_no_worker_left_stops_in_bounded_time(monkeypatch):
    """A run reported done whose worker was then killed is computed again; with no worker
    left, waiting for its result blocked for ever (``Future.result()`` without a timeout:
    a CI run hung in tests/test_qa15_dask_deploy.py). Now waited for in slices."""
    import time as _time
    distributed = pytest.importorskip("distributed")
    import sorter.sweep as sw

    class LostFuture:                  # done once, then lost with its worker: pending for ever
        status = "pending"

        def __init__(self, key):
            self.key = key

        def result(self, timeout=None):
            if timeout is None:
                raise AssertionError("waited without a timeout (for ever)")
            _time.sleep(min(timeout, 0.05))
            raise TimeoutError

    class NoWorkersLeft:
        def wait_for_workers(self, n, timeout=None):
            return None                # there was one at the start

        def run(self, fn, on_error="return"):
            return {}

        def map(self, fn, tasks, pure=False):
            return [LostFuture(f"run-{t[0]}") for t in tasks]

        def nthreads(self):
            return {}                  # ... and none now

        def cancel(self, futs):
            pass

    class Completed:                   # as_completed: every future reported done at once
        def __init__(self, futs):
            self.left = list(futs)

        def is_empty(self):
            return not self.left

        def next_batch(self, block=False):
            out, self.left = self.left[:1], self.left[1:]
            return out

    monkeypatch.setattr(distributed, "as_completed", Completed)
    monkeypatch.setattr(sw, "DASK_NO_WORKERS_S", 0.5)
    tasks = [(0, None, 0), (1, None, 1)]
    t0 = _time.monotonic()
    with pytest.raises(InputError, match="every Dask worker left part-way"):
        sw._run_dask(NoWorkersLeft(), tasks, [None, None], [None, None], None,
                     [{"robots": 5}], [0, 1])
    assert _time.monotonic() - t0 < 10

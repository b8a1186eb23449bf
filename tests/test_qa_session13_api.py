"""Session 13 QA: the public Python API as an embedder uses it.

A WCS embedding :class:`sorter.Sorter`, a planner scripting :mod:`sorter.sim`, a researcher
scripting :mod:`sorter.layout` / :mod:`sorter.agv`: the docstring examples of the public
modules run as written; wrong types at the boundary are refused naming the parameter (never an
AttributeError / IndexError from deep inside, never a silent wrong answer); objects survive
refused calls, copies and pickling; two instances never share state.
"""
from __future__ import annotations

import copy
import dataclasses
import doctest
import importlib
import json
import pickle
import threading

import numpy as np
import pytest

from sorter import Chute, ChuteTable, InputError, SortPlan, Sorter, load_plan, load_plan_routes
from sorter.constants import REASONS

PLAN = "seeds/plan/demo_plan.csv"
CHUTES = "seeds/plan/demo_chutes.toml"
WAVE2 = "seeds/plan/demo_plan_wave2.csv"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch, request):
    """The examples use paths relative to the repository root (as the README says)."""
    monkeypatch.chdir(request.config.rootpath)


# --------------------------------------------------------------------------- doctests

#: Modules whose docstring examples document the public API (nothing else runs them).
DOCTEST_MODULES = [
    "sorter", "sorter.engine", "sorter.plan", "sorter.constants", "sorter.errors",
    "sorter.sim", "sorter.sim.scenario", "sorter.sim.loop", "sorter.sim.kpis",
    "sorter.sim.arrivals", "sorter.layout", "sorter.layout.floor", "sorter.layout.ascii",
    "sorter.layout.load", "sorter.layout.generate", "sorter.layout.loop", "sorter.layout.lorr",
    "sorter.layout.movingai", "sorter.layout.rhcr", "sorter.layout.draw", "sorter.agv",
    "sorter.agv.pibt", "sorter.agv.distance", "sorter.agv.tasks", "sorter.agv.validate",
    "sorter.agv.lifelong", "sorter.agv.floor_sim", "sorter.service.protocol", "sorter.sweep",
    "sorter.floor_sweep",
]


def _doctests():
    finder = doctest.DocTestFinder()
    out = []
    for name in DOCTEST_MODULES:
        mod = importlib.import_module(name)
        for t in finder.find(mod):
            if t.examples and t.name.startswith(name):      # its own, not re-exported ones
                out.append(pytest.param(name, t.name, id=t.name))
    return out


@pytest.mark.parametrize("module, test_name", _doctests())
def test_docstring_examples_run_as_written(module, test_name, monkeypatch):
    """Every ``Examples`` section of the public modules prints what it says. They ran nowhere
    (no ``--doctest-modules`` in pyproject.toml, no test collecting them)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    mod = importlib.import_module(module)
    (t,) = [t for t in doctest.DocTestFinder().find(mod) if t.name == test_name]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    runner.run(t, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_every_public_name_has_a_docstring():
    import sorter
    import sorter.agv
    import sorter.floor_sweep
    import sorter.layout
    import sorter.sim
    import sorter.sweep
    missing = []
    for mod in (sorter, sorter.sim, sorter.layout, sorter.agv, sorter.sweep, sorter.floor_sweep):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj) and not (obj.__doc__ or "").strip():
                missing.append(f"{mod.__name__}.{name}")
    assert not missing, missing


# --------------------------------------------------------------------------- chute engine

@pytest.fixture
def engine():
    return Sorter.from_files(PLAN, CHUTES)


def test_chute_positions_from_numpy_are_plain_numbers():
    """A chute table read from NumPy/pandas: ``position=np.int64(3)`` or ``np.float32`` was
    refused as "bad position ... (expected a finite number of metres >= 0)" (it is one)."""
    for pos in (np.int64(3), np.float32(2.5), np.float64(7.25), np.uint16(4)):
        t = ChuteTable([Chute("A", position=pos), {"id": "B", "position": pos}])
        for c in t:
            assert type(c.position) is float and c.position == float(pos)
        json.dumps(t.as_dicts())
    with pytest.raises(InputError, match="position"):
        ChuteTable([Chute("A", position=np.float32("nan"))])
    with pytest.raises(InputError, match="position"):
        ChuteTable([Chute("A", position=np.int64(-1))])


@pytest.mark.parametrize("chutes", [None, 5, "C001", {"C001": Chute("C001")},
                                    {Chute("C001")}])
def test_a_chute_table_that_is_no_table_is_a_type_error_naming_chutes(chutes):
    """``Sorter(plan, None)`` said "'NoneType' object is not iterable"; a dict of chutes
    said "chute #1 is not a table"; ``plan.validate(list_of_chutes)`` and
    ``load_plan_routes(csv, list_of_chutes)`` raised AttributeError 'lookup'."""
    plan, _ = load_plan(PLAN, CHUTES)
    with pytest.raises(TypeError, match="chutes must be a ChuteTable"):
        Sorter(plan, chutes)
    with pytest.raises(TypeError, match="chutes must be a ChuteTable"):
        plan.validate(chutes)
    if chutes is not None:       # None there means "no table": ids unchecked
        with pytest.raises(TypeError, match="chutes must be a ChuteTable"):
            load_plan_routes(PLAN, chutes)


def test_a_list_of_chutes_is_taken_wherever_a_table_is():
    plan, table = load_plan(PLAN, CHUTES)
    assert plan.validate(list(table)) is plan
    assert load_plan_routes(PLAN, list(table)) == load_plan_routes(PLAN, table)
    assert Sorter(plan, table.as_dicts()).assign("01422") == Sorter(plan, table).assign("01422")
    assert Sorter(plan, (c for c in table)).chute_ids == table.ids


@pytest.mark.parametrize("codes, exc", [
    (None, TypeError), (5, TypeError), (b"01422", TypeError), (bytearray(b"01"), TypeError),
    (np.array([["01422"], ["99999"]]), ValueError),
])
def test_destination_ids_refuse_what_is_not_one_list_of_codes(engine, codes, exc):
    """``destination_ids(b"01422")`` gave five ids (one per byte, all unknown) and a 2-D
    array (``df[["dest"]].to_numpy()``) one unknown id per row: silent wrong answers."""
    with pytest.raises(exc, match="codes"):
        engine.destination_ids(codes)


def test_destination_ids_refuse_a_table_of_codes(engine):
    """A 2-D table-like object (a DataFrame iterates over its column names) is refused."""
    class Frame:                    # the two attributes of a pandas DataFrame that matter
        ndim = 2

        def __iter__(self):
            return iter(["dest"])

    with pytest.raises(ValueError, match="codes must be 1-D"):
        engine.destination_ids(Frame())


def test_destination_ids_still_take_lists_arrays_and_iterables(engine):
    want = engine.destination_ids(["01422", "99999", None, ""]).tolist()
    assert want[2:] == [-2, -2] and want[1] == -1 and want[0] >= 0
    assert engine.destination_ids(np.array(["01422", "99999"])).tolist() == want[:2]
    assert engine.destination_ids(iter(["01422", "99999"])).tolist() == want[:2]
    assert engine.destination_ids(("01422",)).tolist() == want[:1]


@pytest.mark.parametrize("rc", [np.array([1 + 0j]), np.array(["2020-01-01"], "datetime64[D]"),
                                np.array([5], "timedelta64[s]")])
def test_assign_many_refuses_recirculation_that_is_no_count(engine, rc):
    """Complex recirculation was read as its real part (a ComplexWarning), datetimes failed in
    NumPy's clip: both now a TypeError naming ``recirculation``; the counters are untouched."""
    ids = engine.destination_ids(["01422"])
    before = engine.counters()
    with pytest.raises(TypeError, match="recirculation"):
        engine.assign_many(ids, recirculation=rc)
    assert engine.counters() == before


def test_assign_many_reads_bools_and_nan_as_assign_does():
    s = Sorter.from_files(PLAN, CHUTES, max_recirculation=0)
    ids = s.destination_ids(["01422"])
    for rc in (True, False):
        c, r = s.assign_many(ids, recirculation=[rc])
        assert (s.chute_ids[c[0]], REASONS[r[0]]) == tuple(s.assign("01422", rc))
    for sv in (np.nan, 0.0, 2.0, -1.0):
        c, r = s.assign_many(ids, sortable=np.array([sv]))
        assert REASONS[r[0]] == s.assign("01422", 0, sv).reason


def test_from_state_names_an_unknown_chute_state_and_a_route_saved_as_text(engine):
    """A hand-edited state with ``"jammed"`` said "incomplete sorter state: KeyError('jammed')";
    a route saved as ``"C001"`` said "unknown chute 'C'" (split into characters)."""
    sd = engine.state_dict()
    sd["state"][3] = "jammed"
    with pytest.raises(InputError, match="unknown chute state 'jammed'") as e:
        Sorter.from_state(sd)
    assert e.value.field == "state"
    sd = engine.state_dict()
    dest = next(iter(sd["plan"]["routes"]))
    sd["plan"]["routes"][dest] = "C001"
    with pytest.raises(InputError, match="are a str"):
        Sorter.from_state(sd)


def test_a_refused_call_leaves_the_engine_as_it_was(engine):
    """Every refused call (bad chute, state, count, plan, batch) changes nothing."""
    engine.assign("01422")
    engine.discharged("C001", 3)
    engine.set_state("C002", "blocked")
    before = json.dumps(engine.state_dict(), sort_keys=True)
    ids = engine.destination_ids(["01422"])
    bad = [
        lambda: engine.set_state("nope", "open"), lambda: engine.set_state("C001", "OPEN"),
        lambda: engine.discharged("C001", 1.0), lambda: engine.discharged("C001", -1),
        lambda: engine.container_changed(None), lambda: engine.reject("ok"),
        lambda: engine.switch_plan({}), lambda: engine.switch_plan({"X": "C001"}),
        lambda: engine.switch_plan("no/such/plan.csv"), lambda: engine.switch_plan(None),
        lambda: engine.assign_many(ids, recirculation=[1, 2]),
        lambda: engine.assign_many(ids, sortable=[True, False]), lambda: engine.assign_many([0.5]),
        lambda: engine.destination_ids(b"x"),
    ]
    for call in bad:
        with pytest.raises((InputError, TypeError, ValueError)):
            call()
        assert json.dumps(engine.state_dict(), sort_keys=True) == before


def test_two_engines_from_the_same_files_share_nothing():
    a, b = Sorter.from_files(PLAN, CHUTES), Sorter.from_files(PLAN, CHUTES)
    fresh = json.dumps(b.state_dict(), sort_keys=True)
    for _ in range(50):
        a.assign("01422")
    a.set_state("C001", "disabled")
    a.discharged("C002", 7)
    a.switch_plan(WAVE2)
    a.destination_ids(["NEW-CODE-ONLY-IN-A"])
    assert json.dumps(b.state_dict(), sort_keys=True) == fresh
    assert b.plan_name != a.plan_name


def test_copies_and_pickles_continue_identically_and_independently(engine):
    rng = np.random.default_rng(5)
    codes = list(engine.sort_plan.routes)[:20] + ["99999", None]
    for _ in range(200):
        engine.assign(codes[rng.integers(len(codes))], int(rng.integers(0, 5)))
    engine.set_state("C003", "full")
    copies = [copy.copy(engine), copy.deepcopy(engine), pickle.loads(pickle.dumps(engine)),
              Sorter.from_state(json.loads(json.dumps(engine.state_dict())))]
    seq = [(codes[rng.integers(len(codes))], int(rng.integers(0, 5))) for _ in range(300)]
    want = [engine.assign(d, r) for d, r in seq]
    for c in copies:
        assert [c.assign(d, r) for d, r in seq] == want
        assert c.counters() == engine.counters()
    copies[0].set_state("C001", "blocked")
    assert engine.chute_state("C001") == "open"


def test_a_plan_switch_from_another_thread_is_atomic(engine):
    """The docs allow a plan switch from another thread while one thread decides: every
    decision then follows one plan or the other, never a mix or a crash."""
    plan1 = dict(engine.sort_plan.routes)
    engine.switch_plan(WAVE2)
    plan2 = dict(engine.sort_plan.routes)
    engine.switch_plan(PLAN)
    codes = sorted(set(plan1) & set(plan2))[:50]
    assert codes
    stop = threading.Event()
    errors = []

    def switcher():
        try:
            while not stop.is_set():
                engine.switch_plan(WAVE2)
                engine.switch_plan(PLAN)
        except Exception as exc:          # pragma: no cover - the failure being tested
            errors.append(exc)

    th = threading.Thread(target=switcher)
    th.start()
    try:
        seen = []
        for i in range(20000):
            d = codes[i % len(codes)]
            seen.append((d, engine.assign(d)))
    finally:
        stop.set()
        th.join()
    assert not errors
    for d, dec in seen:
        assert dec.reason in ("ok", "overflow", "no_chute_available")
        if dec.reason == "ok":
            assert dec.chute in plan1[d] or dec.chute in plan2[d]


def test_state_dict_and_counters_are_plain_json(engine):
    engine.assign("01422")
    engine.reject("late")
    for obj in (engine.state_dict(), engine.counters()):
        assert json.loads(json.dumps(obj, allow_nan=False)) == obj
    assert "Sorter(" in repr(engine) and "wave-1" in repr(engine)
    d = engine.assign("01422")
    assert type(d.chute) is str and type(d.reason) is str


# --------------------------------------------------------------------------- sim

@pytest.fixture(scope="module")
def small():
    from sorter.sim import load_scenario
    return load_scenario("seeds/scenarios/small.toml")


@pytest.mark.parametrize("name", [None, 5, "", "  "])
def test_a_wave_named_in_code_is_checked_as_a_files_wave_name(small, name):
    """``replace(wave, name=None)`` passed the Scenario's checks and the shift ran, then
    ``format_table(kpis)`` failed with "'NoneType' object is not subscriptable" (a file's
    ``name = 5`` is refused at load)."""
    from sorter.sim import Scenario, simulate
    w = dataclasses.replace(small.waves[0], name=name)
    with pytest.raises(InputError, match="bad wave name") as e:
        Scenario(loops=small.loops, waves=[w], shift_hours=small.shift_hours)
    assert e.value.field == "wave[0].name"
    sc = dataclasses.replace(small)
    sc.waves = [w]                       # changed after building: simulate checks again
    with pytest.raises(InputError, match="bad wave name"):
        simulate(sc)


@pytest.mark.parametrize("doc", [None, [], "scenario.toml", 5])
def test_parse_scenario_of_no_mapping_names_the_document(doc):
    """``parse_scenario([])`` raised AttributeError 'list' object has no attribute 'get'."""
    from sorter.sim import parse_scenario
    with pytest.raises(InputError, match="scenario document"):
        parse_scenario(doc)


def test_simulate_results_are_plain_json_and_reproducible(small):
    from sorter.sim import compute_kpis, format_table, simulate
    sc = dataclasses.replace(small, shift_hours=0.1)
    a = compute_kpis(simulate(sc, seed=np.uint64(4)))
    b = compute_kpis(simulate(sc, seed=4))

    def plain(o):
        if isinstance(o, dict):
            return all(type(k) is str and plain(v) for k, v in o.items())
        if isinstance(o, list):
            return all(plain(v) for v in o)
        return o is None or type(o) in (int, float, str, bool)

    assert plain(a)
    for k in (a, b):
        k.pop("wall_s", None)           # the run's own time
    assert json.dumps(a, allow_nan=False, sort_keys=True) == json.dumps(b, allow_nan=False,
                                                                        sort_keys=True)
    assert "offered" in format_table(a)
    assert pickle.loads(pickle.dumps(sc)).offered_per_hour == sc.offered_per_hour


# --------------------------------------------------------------------------- layout

def _floor():
    from sorter.layout import load_floor
    return load_floor("seeds/floors/small_12x20.txt")


@pytest.mark.parametrize("kw", [dict(inducts=[None]), dict(inducts="ab"), dict(chutes=[5]),
                                dict(inducts={"I0": None}), dict(chutes=3)])
def test_floor_stations_that_are_no_stations_name_the_field(kw):
    """``Floor(cells, inducts=[None])`` raised AttributeError 'NoneType' has no 'cells'."""
    from sorter.layout import Floor
    field = next(iter(kw))
    with pytest.raises(InputError, match=field) as e:
        Floor(np.ones((2, 2), np.int8), **kw)
    assert e.value.field == field


@pytest.mark.parametrize("floor", [None, "floor.txt", np.ones((2, 2), np.int8)])
def test_format_ascii_of_no_floor_is_a_type_error(floor):
    """``format_ascii(None)`` raised AttributeError 'NoneType' object has no attribute 'height'."""
    from sorter.layout import format_ascii
    with pytest.raises(TypeError, match="floor must be a sorter.layout.Floor"):
        format_ascii(floor)


def test_floors_copy_pickle_and_round_trip():
    from sorter.layout import parse_ascii
    f = _floor()
    for g in (copy.deepcopy(f), pickle.loads(pickle.dumps(f))):
        assert np.array_equal(g.moves, f.moves) and np.array_equal(g.cells, f.cells)
        assert [s.cells.tolist() for s in g.chutes] == [s.cells.tolist() for s in f.chutes]
    g = parse_ascii(f.to_ascii())
    assert np.array_equal(g.moves, f.moves)
    assert "small_12x20" in repr(f) and "Station(" in repr(f.inducts[0])


# --------------------------------------------------------------------------- agv

def test_planner_tables_of_another_kind_name_the_field():
    """``Planner(..., tables="x")`` raised AttributeError 'str' object has no attribute 'rcost'."""
    from sorter.agv import Planner
    f = _floor()
    starts = f.free_cells[:3]
    with pytest.raises(InputError, match="tables") as e:
        Planner(f, 3, starts, tables="x")
    assert e.value.field == "tables"
    p = Planner(f, 3, starts)
    q = Planner(f, 3, f.free_cells[3:6], tables=p.tables)       # sharing still works
    assert q.tables is p.tables


@pytest.mark.parametrize("cell", [None, -5, 1.0, True, 10 ** 6, "3"])
@pytest.mark.parametrize("station_goals", [False, True])
def test_goal_key_refuses_what_is_no_cell(cell, station_goals):
    """``goal_key(None)`` raised int()'s TypeError, ``goal_key(-5)`` answered a key for a cell
    off the floor, and with station goals ``goal_key(10**6)`` an IndexError."""
    from sorter.agv import Planner
    f = _floor()
    p = Planner(f, 2, f.free_cells[:2], station_goals=station_goals)
    with pytest.raises(InputError, match="goal cell"):
        p.goal_key(cell)
    key, cells = p.goal_key(np.int64(f.inducts[0].cells[0]))
    assert key[0] == ("induct" if station_goals else "cell")


def test_planner_repr_is_readable():
    from sorter.agv import Planner
    f = _floor()
    p = Planner(f, 3, f.free_cells[:3], guidance="lanes+flow")
    p.step(np.array([s.cells[0] for s in f.inducts[:3]]))
    r = repr(p)
    assert r.startswith("Planner(") and "robots=3" in r and "step=1" in r and "lanes+flow" in r


def test_two_planners_stepped_in_turn_plan_as_each_alone():
    """No state is shared between planners (tables, caches, module globals): stepping two in
    turn gives each the positions it has when run alone."""
    from sorter.agv import make_run
    from sorter.agv import simulate as run
    from sorter.agv.validate import validate
    f = _floor()
    alone = []
    for seed in (1, 2):
        p, s = make_run(f, 8, seed=seed)
        alone.append(run(p, s, 60).positions)
    pa, sa = make_run(f, 8, seed=1)
    pb, sb = make_run(f, 8, seed=2)
    ga, gb = sa.start(pa), sb.start(pb)
    pos = [[pa.positions.copy()], [pb.positions.copy()]]
    for _ in range(60):
        pos[0].append(pa.step(ga).copy())
        pos[1].append(pb.step(gb).copy())
        ga, gb = sa.update(pa), sb.update(pb)
    for k in range(2):
        got = np.array(pos[k])
        assert np.array_equal(got, alone[k])
        assert validate(f, got[0], got) is None


def test_refused_goals_leave_the_planner_as_it_was():
    from sorter.agv import Planner
    f = _floor()
    goals = np.array([s.cells[0] for s in f.inducts[:4]])
    a = Planner(f, 4, f.free_cells[[0, 5, 30, 60]], seed=3)
    b = Planner(f, 4, f.free_cells[[0, 5, 30, 60]], seed=3)
    a.step(goals)
    b.step(goals)
    obstacle = int(np.flatnonzero(f.cells == 0)[0])
    for bad in (goals[:3], goals.astype(float) + 0.5, np.where(np.arange(4) == 1, obstacle, goals),
                np.full(4, f.n_cells), None, goals[None, :]):
        with pytest.raises(InputError, match="goals"):
            a.step(bad)
    for _ in range(20):
        assert np.array_equal(a.step(goals), b.step(goals))
        assert np.array_equal(a.finished, b.finished)


@pytest.mark.parametrize("cells", [None, [1.5, 2.7], np.array([True, False]), [-1, 3],
                                   np.zeros((2, 2), np.int64)])
def test_random_tasks_cells_must_be_cell_ids(cells):
    """``RandomTasks([1.5, 2.7], ...)`` drew goals 1 and 2 (floats truncated), ``[-1, 3]`` sent
    robots to cell -1 (refused only by the planner, mid-run, as 'goals'); None was NumPy's
    TypeError."""
    from sorter.agv import RandomTasks
    with pytest.raises(InputError, match="cell") as e:
        RandomTasks(cells, 2, 0)
    assert e.value.field == "cells"


@pytest.mark.parametrize("args, kw, field", [
    ((5.7,), {}, "destinations"), ((True,), {}, "destinations"), (("5",), {}, "destinations"),
    ((5,), {"s": float("nan")}, "s"), ((5,), {"s": -1.0}, "s"), ((5,), {"s": float("inf")}, "s"),
])
def test_destination_mix_numbers(args, kw, field):
    """``DestinationMix(5.7)`` was 5 destinations, ``DestinationMix(True)`` one, ``s=nan`` gave
    NaN probabilities (every draw the last destination)."""
    from sorter.agv import DestinationMix
    with pytest.raises(InputError) as e:
        DestinationMix(*args, **kw)
    assert e.value.field == field


def test_destination_mix_draw_needs_a_generator():
    from sorter.agv import DestinationMix
    m = DestinationMix(5, "721")
    with pytest.raises(InputError, match="Generator"):
        m.draw(0, 3)
    with pytest.raises(InputError, match="Generator"):
        m.draw(None, 3)
    a = m.draw(np.random.default_rng(1), 1000)
    b = m.draw(np.random.default_rng(1), 1000)
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() < 5
    # 70% of parcels to the top 20% (one destination of five): a loose band around 0.7
    assert 0.6 < (a == 0).mean() < 0.8


@pytest.mark.parametrize("args, kw, field", [
    ((4.0, 3), {}, "n_chutes"), ((4, 3.0), {}, "destinations"), ((4, 3), {"rng": "x"}, "rng"),
    ((4, 3), {"chutes_per_destination": 1.5}, "chutes_per_destination"), ((0, 3), {}, "n_chutes"),
])
def test_agv_chute_table_arguments(args, kw, field):
    """``ChuteTable(4.0, 3)`` failed in np.zeros; ``rng=0`` (a seed, as the task streams take)
    raised AttributeError 'permutation'."""
    from sorter.agv import ChuteTable as PlainTable
    with pytest.raises(InputError) as e:
        PlainTable(*args, **kw)
    assert e.value.field == field


def test_agv_chute_table_takes_a_seed_and_checks_its_indices():
    """``route(5, rng)`` on 3 destinations raised IndexError and ``route(-1, rng)`` answered a
    chute of the last destination; ``dropped(9)``/``dropped(-1)`` likewise."""
    from sorter.agv import ChuteTable as PlainTable
    a = PlainTable(10, 3, rng=7)
    b = PlainTable(10, 3, rng=np.random.default_rng(7))
    assert [x.tolist() for x in a.per_dest] == [x.tolist() for x in b.per_dest]
    rng = np.random.default_rng(0)
    for d in (3, -1, 1.5):
        with pytest.raises(InputError, match="destination"):
            a.route(d, rng)
    for c in (10, -1):
        with pytest.raises(InputError, match="chute"):
            a.dropped(c)
    for d in range(3):
        assert int(a.route(np.int64(d), rng)) in a.per_dest[d].tolist()
    a.dropped(np.int64(2))
    assert a.drops.tolist() == [0, 0, 1] + [0] * 7


@pytest.mark.parametrize("kw, field", [
    (dict(n_destinations=1.5), "destinations"), (dict(balance_weight=float("nan")), "balance_weight"),
    (dict(balance_weight=-1), "balance_weight"),
])
def test_sorting_tasks_arguments(kw, field):
    """``balance_weight=nan`` sent every empty robot to induct 0 (argmin of NaNs);
    ``n_destinations=1.5`` was 1."""
    from sorter.agv import SortingTasks
    with pytest.raises(InputError) as e:
        SortingTasks(_floor(), 4, 0, **kw)
    assert e.value.field == field


@pytest.mark.parametrize("router", ["x", object()])
def test_a_router_without_route_and_dropped_is_named_when_used(router):
    """``SortingTasks(..., router="x")`` failed at the first parcel with AttributeError."""
    from sorter.agv import SortingTasks
    from sorter.agv import simulate as run
    from sorter.agv.lifelong import make_run
    f = _floor()
    p, _ = make_run(f, 4, seed=0)
    with pytest.raises(InputError, match="router is a") as e:
        run(p, SortingTasks(f, 4, 0, router=router), 200)
    assert e.value.field == "router"


class _Router:
    """A WCS adapter answering chute indices (here a fixed, wrong one)."""

    def __init__(self, answer):
        self.answer = answer
        self.drops = []

    def route(self, destination, rng):
        return self.answer

    def dropped(self, chute):
        self.drops.append(chute)


@pytest.mark.parametrize("answer", [-1, 8, 100])
def test_a_router_answering_a_chute_off_the_floor_is_named(answer):
    """A custom router's -1 sent robots silently to the last chute; 8 on an 8-chute floor
    raised IndexError in the task stream."""
    from sorter.agv import simulate as run
    from sorter.agv.lifelong import make_run
    f = _floor()
    p, _ = make_run(f, 4, seed=0)
    from sorter.agv import SortingTasks
    s = SortingTasks(f, 4, 0, router=_Router(answer))
    with pytest.raises(InputError, match="router chose chute") as e:
        run(p, s, 200)
    assert e.value.field == "router"


def test_a_router_with_good_answers_is_used():
    from sorter.agv import SortingTasks
    from sorter.agv import simulate as run
    from sorter.agv.lifelong import make_run
    f = _floor()
    p, _ = make_run(f, 4, seed=0)
    r = _Router(len(f.chutes) - 1)
    s = SortingTasks(f, 4, 0, router=r)
    res = run(p, s, 150)
    assert res.delivered == len(r.drops) > 0
    assert set(r.drops) == {len(f.chutes) - 1}


def test_run_kpis_are_plain_json():
    from sorter.agv import make_run
    from sorter.agv import simulate as run
    p, s = make_run(_floor(), 6, seed=0)
    k = run(p, s, 30).kpis()
    assert json.loads(json.dumps(k, allow_nan=False)) == k


def test_sort_plan_of_arrays_and_numpy_codes_is_saved_as_plain_json():
    """Routes given as NumPy arrays (a plan built from a DataFrame) sort and save as lists."""
    _, table = load_plan(PLAN, CHUTES)
    plan = SortPlan(routes={"A": np.array(["C001", "C002"])}, reject=load_plan(PLAN, CHUTES)[0].reject)
    s = Sorter(plan, table)
    assert s.assign("A") == ("C001", "ok")
    sd = s.state_dict()
    assert json.loads(json.dumps(sd)) == sd
    assert sd["plan"]["routes"]["A"] == ["C001", "C002"]


# --------------------------------------------------------------------------- docs

def _numpydoc_parameters(doc):
    """Names of a numpydoc ``Parameters`` section (``a, b : int`` gives both), or None."""
    import re
    m = re.search(r"\n\s*Parameters\n\s*-+\n(.*?)(\n\s*(Returns|Raises|Yields|Attributes|Notes|"
                  r"Examples|See Also)\n\s*-+|\Z)", "\n" + doc, re.S)
    if not m:
        return None
    lines = [ln for ln in m.group(1).split("\n") if ln.strip()]
    indent = min(len(ln) - len(ln.lstrip()) for ln in lines)
    names = []
    for ln in lines:
        if len(ln) - len(ln.lstrip()) == indent:
            names += [n.strip().lstrip("*") for n in ln.strip().split(" : ")[0].split(",")]
    return names


#: Reported, in files other helpers own this session: make_run does not document seed and
#: max_table_mb (sorter/agv/lifelong.py).
_KNOWN_UNDOCUMENTED = {"sorter.agv.make_run": {"seed", "max_table_mb"}}


def test_documented_parameters_exist_and_exist_documented():
    """Every public callable with a Parameters section documents exactly its parameters
    (RandomTasks' closing paragraph sat inside its Parameters section: four 'parameters')."""
    import inspect
    bad = []
    for mname in ("sorter", "sorter.sim", "sorter.layout", "sorter.agv", "sorter.service",
                  "sorter.sweep", "sorter.floor_sweep"):
        mod = importlib.import_module(mname)
        for name in mod.__all__:
            obj = getattr(mod, name)
            items = [(f"{mname}.{name}", obj)]
            if inspect.isclass(obj):
                items += [(f"{mname}.{name}.{k}", getattr(v, "__func__", v))
                          for k, v in vars(obj).items()
                          if not k.startswith("_") and (inspect.isfunction(v)
                                                        or isinstance(v, classmethod))]
            for qual, o in items:
                names = _numpydoc_parameters(inspect.getdoc(o) or "")
                if names is None or not callable(o):
                    continue
                sig = inspect.signature(o.__init__ if inspect.isclass(o) else o)
                ps = {k: p for k, p in sig.parameters.items() if k not in ("self", "cls")}
                if any(p.kind == p.VAR_KEYWORD for p in ps.values()):
                    continue
                real = {k for k, p in ps.items() if p.kind != p.VAR_POSITIONAL}
                missing = real - set(names) - _KNOWN_UNDOCUMENTED.get(qual, set())
                extra = set(names) - real
                if missing or extra:
                    bad.append(f"{qual}: undocumented {sorted(missing)}, not a parameter "
                               f"{sorted(extra)}")
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- layout (2)

@pytest.mark.parametrize("body, needle", [
    (np.full(9, 0.5), "dtype"), (np.full(9, 7), "chute the floor does not have"),
    (np.full(9, -3), "chute the floor does not have"), ("x", "dtype"),
])
def test_chute_body_must_name_the_floors_chutes(body, needle):
    """``Floor(..., chute_body=np.full(n, 0.5))`` was truncated to chute 0 everywhere and
    ``chute_body=7`` on a one-chute floor was taken (then ``to_ascii`` refused the floor's
    stations and the drawing coloured a body of no chute); text was int()'s ValueError."""
    from sorter.layout import DROP, Floor, Station
    cells = np.array([[2, 1, 1], [1, 0, 3], [1, 1, 1]], np.int8)
    st = dict(inducts=[Station(0, "I0", "induct", [0])], chutes=[Station(0, "C0", "chute", [5])])
    with pytest.raises(InputError, match=needle) as e:
        Floor(cells, chute_body=body, **st)
    assert e.value.field == "chute_body"
    ok = np.full(9, -1)
    ok[4] = 0
    f = Floor(cells, chute_body=ok, **st)
    assert f.chute_body.tolist() == ok.tolist() and f.cells[5] == DROP
    assert f.to_ascii() == "I..\n.CD\n...\n"


def test_loaders_name_a_floor_that_is_no_floor(tmp_path):
    """``load_scen(p, floor="x")`` and ``load_task_list(p, None)`` raised AttributeError
    ('width', 'n_cells')."""
    from sorter.layout import load_scen, load_task_list
    scen = tmp_path / "a.scen"
    scen.write_text("version 1\n0\tm.map\t3\t3\t0\t0\t2\t2\t4\n")
    tasks = tmp_path / "t.tasks"
    tasks.write_text("1\n3\n")
    with pytest.raises(TypeError, match="floor must be a sorter.layout.Floor"):
        load_scen(scen, "x")
    assert len(load_scen(scen)) == 1
    for bad in (None, "map.map", 5):
        with pytest.raises(TypeError, match="floor must be a sorter.layout.Floor"):
            load_task_list(tasks, bad)
    f = _floor()
    assert load_task_list(tasks, f)[0].tolist() == [3]


def test_round_robin_task_for_checks_robot_and_k(tmp_path):
    """``task_for(0.5, 0)`` answered robot 0's errand, ``task_for(-1, 0)`` and
    ``task_for(team_size, 0)`` wrapped round onto other robots' errands."""
    from sorter.layout import LorrProblem
    f = _floor()
    free = f.free_cells
    p = LorrProblem(floor=f, starts=free[:3], tasks=free[10:17].astype(np.int32), team_size=3,
                    num_tasks_reveal=1, strategy="roundrobin")
    tasks = p.tasks.tolist()
    assert p.task_for(np.arange(3), 2).tolist() == [tasks[(i + 6) % 7] for i in range(3)]
    assert p.task_for(np.int64(1), np.arange(3)).tolist() == [tasks[1], tasks[4], tasks[0]]
    for robot, k, field in ((0.5, 0, "robot"), (-1, 0, "robot"), (3, 0, "robot"),
                            (np.array([0, 3]), 0, "robot"), (0, -1, "k"), (0, 1.5, "k"),
                            (True, 0, "robot")):
        with pytest.raises(InputError) as e:
            p.task_for(robot, k)
        assert e.value.field == field


# --------------------------------------------------------------------------- shared tables

def _detour_run(f, tables, hold_cells, steps=14):
    """Robot 0 crosses the 3 x 7 floor ``f`` along the middle row while robots stand held on
    ``hold_cells``: it must detour. Returns the planner and the positions, step by step."""
    from sorter.agv import Planner
    starts = [7] + list(hold_cells)
    p = Planner(f, len(starts), starts, dwell_chute=0, dwell_induct=0, tables=tables,
                rescue_after=0)
    p.hold(np.arange(1, len(starts)))
    goals = np.array([13] + list(hold_cells))
    return p, [p.step(goals).tolist() for _ in range(steps)]


def test_a_planner_sharing_tables_with_dead_planners_plans_as_with_its_own():
    """Detour tables were cached in a shared pool under ``("detour", id(planner), n, goal)``.
    CPython reuses the id of a planner that is gone (a WCS restarting its planner on a shared
    pool): the new planner then got the dead one's detour, computed around *its* held robots,
    and its robot walked toward cells held now (plans differed from a planner with a pool of
    its own)."""
    import gc
    from sorter.agv import DistanceTables
    from sorter.layout import Floor
    f = Floor(np.ones((3, 7), np.int8))
    pool = DistanceTables(f)
    fresh = {}
    for hold in ((10,), (10, 3)):
        fresh[hold] = _detour_run(Floor(np.ones((3, 7), np.int8)), None, hold)[1]
    assert fresh[(10,)] != fresh[(10, 3)]            # the two detours differ
    dead_ids = set()
    for trial in range(20):
        # a planner detouring round cell 10 only, then gone
        p, plan = _detour_run(f, pool, (10,))
        assert plan == fresh[(10,)]
        dead_ids.add(id(p))
        del p
        gc.collect()
        # a planner whose robot must also avoid cell 3 (the dead one's detour passes there)
        q, plan = _detour_run(f, pool, (10, 3))
        reused = id(q) in dead_ids
        assert plan == fresh[(10, 3)], f"trial {trial}: id reused: {reused}"
        del q
        gc.collect()


def test_draw_checks_its_arguments_before_drawing():
    """``floor.draw(ax="x")`` raised AttributeError 'imshow'; ``draw(ax=ax, robots=[0.5])``
    refused the robots only after painting the floor into the caller's axes (and with
    ``ax=None`` left a new pyplot figure open on every refused call)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sorter.layout.draw import draw_floor
    f = _floor()
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        f.draw(ax="x")
    with pytest.raises(TypeError, match="floor must be"):
        draw_floor("floor.txt")
    fig, ax = plt.subplots()
    try:
        n_figs = len(plt.get_fignums())
        obstacle = int(np.flatnonzero(f.cells == 0)[0])
        for bad in ([0.5], np.ones(f.n_cells, bool), [f.n_cells], [obstacle]):
            with pytest.raises(InputError, match="robot"):
                f.draw(ax=ax, robots=bad)
            assert not ax.images and not ax.collections
            with pytest.raises(InputError, match="robot"):
                f.draw(robots=bad)
            assert len(plt.get_fignums()) == n_figs
        assert f.draw(ax=ax, robots=f.free_cells[:3]) is ax and ax.images
    finally:
        plt.close("all")


@pytest.mark.parametrize("name", ["rotation", "station_goals", "swap", "hold_on_turn"])
def test_planner_switches_read_alike(name):
    """``rotation=0`` was taken and ``swap=0`` refused ("expected True or False"): every
    on/off keyword now takes True/False (NumPy's too) and 1/0, and refuses text and others."""
    from sorter.agv import Planner
    f = _floor()
    for ok in (True, False, np.bool_(True), 1, 0, np.int64(1)):
        Planner(f, 2, f.free_cells[:2], **{name: ok})
    for bad in ("no", "False", 2, 0.5) + ((None,) if name != "hold_on_turn" else ()):
        with pytest.raises(InputError) as e:       # (hold_on_turn=None: the default by guidance)
            Planner(f, 2, f.free_cells[:2], **{name: bad})
        assert e.value.field == name


def test_finished_flags_logged_step_by_step_add_up_to_the_tasks_completed():
    """``planner.finished`` was the kernel's own buffer, overwritten at every step: a research
    script's ``log.append(p.finished)`` held the last step's flags in every row (and writing
    into it reached the planner). Now a copy, as ``positions``, ``held`` and ``goals`` are."""
    from sorter.agv import make_run
    p, s = make_run(_floor(), 8, seed=4)
    goals = s.start(p)
    log = []
    for _ in range(120):
        p.step(goals)
        log.append(p.finished)
        goals = s.update(p)
    log = np.array(log)
    assert log.sum() == p.tasks_completed > 0
    assert len({row.tobytes() for row in log}) > 2
    p.finished[:] = True                  # a copy: the planner is not touched
    assert not p.finished.all() or log[-1].all()

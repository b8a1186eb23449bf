"""Sorting floor driven by the chute engine (sorter.agv.floor_sim): decisions, re-routing, faults, KPIs."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sorter.agv.floor_sim import UTIL_STATES, FloorSim, FloorSimOptions, floor_plan
from sorter.agv.lifelong import make_run, simulate
from sorter.agv.tasks import DestinationMix
from sorter.agv.validate import check_paths
from sorter.cli import main
from sorter.constants import REASONS
from sorter.errors import InputError
from sorter.layout import load_floor, sortation_floor
from sorter.layout.ascii import format_ascii

FLOOR = sortation_floor(17, 25, 4, 12, seed=3)


def _run(opt, robots=30, steps=300, seed=1, floor=FLOOR, hook=None, **kw):
    """Step by hand (pre_step, step, update) and check invariants after every step."""
    pl, st = make_run(floor, robots, seed=seed, tasks="sorting", guidance="lanes+flow",
                      floor_sim=opt, **kw)
    assert isinstance(st, FloorSim)
    eng = st.sorter
    pos = np.empty((steps + 1, robots), np.int32)
    pos[0] = pl.positions
    goals = st.start(pl)
    pl.prepare(goals)
    log = {"frozen": [], "drops": 0}
    for t in range(steps):
        if hook is not None:
            hook(t, st, pl)
        st.pre_step(pl, goals)
        frozen = np.flatnonzero(st.fault_left > 0)
        carrying_to = np.where(st.heading == 1, st.target, -1)
        was_loaded = st.heading == 1
        pos[t + 1] = pl.step(goals)
        goals = st.update(pl)
        log["frozen"].append(frozen)
        # faulted robots keep their cell
        assert np.array_equal(pos[t + 1, frozen], pos[t, frozen])
        # a robot that dropped stands on a drop cell of the chute it carried the parcel to
        dropped = np.flatnonzero(was_loaded & (st.heading == 0))
        for r in dropped:
            assert pos[t + 1, r] in floor.chutes[carrying_to[r]].cells
        log["drops"] += dropped.size
        # invariant: nobody carries a parcel to a closed chute (unless it is a reject chute)
        state = eng._arrays()["state"]
        c = st.chute[st.heading == 1]
        assert ((state[c] == 0) | (st.kind[c] == 2)).all()
        # conservation and the engine's view
        assert st.picked == st.dropped + int((st.heading == 1).sum())
    check_paths(floor, pos[0], pos)
    return pl, st, pos, log


def _engine_agrees(st, log):
    counters = st.sorter.counters()["by_chute"]
    disc = np.array([counters[lab]["discharged"] for lab in st.labels])
    fill = np.array([counters[lab]["fill"] for lab in st.labels])
    assert np.array_equal(disc, st.drops_by_chute)
    assert np.array_equal(fill, st.fill)
    assert disc.sum() == st.dropped == log["drops"] == st.drops_by_reason.sum()
    # decisions: parcels routed (incl. re-routes) = engine decisions
    assert sum(st.sorter.counters()["by_reason"].values()) == st.picked + st.reroutes
    # a destination chute never holds more than its capacity
    assert (st.fill[st.kind != 2] <= st.capacity[st.kind != 2]).all()


def test_floor_plan_spreads_busy_destinations():
    w = DestinationMix(6, "zipf").p
    plan, table = floor_plan(FLOOR, w, capacity=20, rng=np.random.default_rng(0))
    ids = [c.id for c in table]
    assert sorted(ids) == sorted(s.label for s in FLOOR.chutes)        # every station, once
    kinds = {c.id: c.kind for c in table}
    assert {kinds[v] for v in plan.reject.values()} == {"reject"}
    assert plan.overflow and all(kinds[c] == "overflow" for c in plan.overflow)
    D = w.size
    routes = [plan.routes[f"D{d:03d}"] for d in range(D)]
    # every destination ends with the next one's primary as a last alternate
    assert all(r[-1] == routes[(d + 1) % D][0] for d, r in enumerate(routes))
    own = [r[:-1] for r in routes]
    assert len({c for r in own for c in r}) == sum(map(len, own))   # own chutes are disjoint
    assert all(kinds[c] == "destination" for r in own for c in r)
    n_own = [len(r) for r in own]
    # chutes follow volume: busier destinations never get fewer, the busiest gets several
    assert all(a >= b for a, b in zip(n_own, n_own[1:])) and n_own[0] > 1
    assert sum(n_own) == sum(kinds[c] == "destination" for c in kinds)
    assert all(c.capacity == 20 for c in table if c.kind != "reject")
    with pytest.raises(InputError):
        floor_plan(sortation_floor(12, 20, 4, 1, seed=0), [1.0])


def test_drops_agree_with_engine_and_closed_chutes_get_nothing():
    opt = FloorSimOptions(chute_capacity=6, container_change_steps=25)
    calls = []

    def hook(t, st, pl):
        if t == 0:       # wrap the engine's discharged: never into a chute that is not open
            orig = st.sorter.discharged

            def checked(label, n=1):
                c = st.sorter._chute(label)
                if st.kind[c] != 2:
                    assert st.sorter.chute_state(label) == "open"
                    assert st.sorter.chute_fill(label) + n <= st.capacity[c]
                calls.append(n)
                return orig(label, n)
            st.sorter.discharged = checked

    pl, st, pos, log = _run(opt, hook=hook)
    _engine_agrees(st, log)
    assert sum(calls) == st.dropped > 50
    k = st.kpis(300)
    assert k["chute_full_events"] > 0 and k["container_changes"] > 0
    assert k["reroutes"] > 0
    assert k["container_changes"] <= k["chute_full_events"]


def test_blocked_chute_receives_no_drops_after_it_closes():
    blocked = {}

    def hook(t, st, pl):
        if t == 100:
            c = st.chute[(st.heading == 1)]
            c = c[st.kind[c] == 0]
            busiest = int(np.bincount(c).argmax())     # the chute most robots are heading to
            lab = st.labels[busiest]
            blocked["c"], blocked["before"] = busiest, int(st.drops_by_chute[busiest])
            blocked["heading"] = int(((st.heading == 1) & (st.chute == busiest)).sum())
            st.set_chute_state(lab, "blocked")

    pl, st, pos, log = _run(FloorSimOptions(chute_capacity=0), steps=250, hook=hook)
    c = blocked["c"]
    assert blocked["heading"] > 0
    assert st.drops_by_chute[c] == blocked["before"]
    assert st.sorter.chute_state(st.labels[c]) == "blocked"
    assert st.reroutes_by_cause["chute_closed"] >= blocked["heading"]
    _engine_agrees(st, log)


def test_rerouting_goes_to_alternates_overflow_then_reject():
    # tiny containers, long changes, no re-route allowed: parcels end at overflow / reject
    opt = FloorSimOptions(chute_capacity=2, container_change_steps=200, max_recirculation=0)
    pl, st, pos, log = _run(opt, steps=300)
    k = st.kpis(300)
    by = k["parcels_by_reason"]
    assert set(by) == set(REASONS)
    assert by["overflow"] > 0
    assert by["max_recirculation"] + by["no_chute_available"] > 0
    # overflow is sorted (to an overflow chute), as `sorter run` counts it, not a reject
    assert k["rejects_by_reason"] == {r: v for r, v in by.items()
                                      if r not in ("ok", "overflow")}
    assert k["sorted_to_overflow"] == by["overflow"]
    assert k["parcels_rejected"] == sum(k["rejects_by_reason"].values())
    assert k["parcels_rejected"] + by["ok"] + by["overflow"] == k["parcels_sorted"]
    hours = 300 * k["seconds_per_step"] / 3600
    assert k["net_sorted_per_hour"] == pytest.approx((by["ok"] + by["overflow"]) / hours)
    assert k["chute_capacity"] == 2
    # the default capacity of a generated plan is reported as the value in force, not None
    pl, st, pos, log = _run(FloorSimOptions(), steps=5)
    assert st.kpis(5)["chute_capacity"] == 50
    _engine_agrees(st, log)
    # generous recirculation: re-routed parcels first go to alternates (ok)
    opt = FloorSimOptions(chute_capacity=4, container_change_steps=60, max_recirculation=5)
    pl, st, pos, log = _run(opt, steps=300)
    assert st.reroutes > 0 and st.kpis(300)["parcels_by_reason"]["ok"] > 0
    _engine_agrees(st, log)


def test_faults_freeze_robots_plans_stay_valid_and_robots_resume():
    opt = FloorSimOptions(chute_capacity=0, fault_rate=0.01, repair_steps=15, repair_dist="fixed")
    pl, st, pos, log = _run(opt, robots=40, steps=300)
    assert st.faults > 20 and st.repairs > 0
    # fixed repair: every completed fault froze its robot for exactly 15 consecutive steps
    frozen = np.zeros((300, 40), bool)
    for t, f in enumerate(log["frozen"]):
        frozen[t, f] = True
    for r in range(40):
        runs = np.diff(np.concatenate([[0], frozen[:, r].astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(runs == 1), np.flatnonzero(runs == -1)
        for a, b in zip(starts, ends):
            if b < 300:
                assert b - a in (15, 30, 45)          # back-to-back faults are possible
    # repaired robots move again
    repaired = [r for r in range(40) if frozen[:200, r].any() and not frozen[200:, r].any()]
    assert repaired
    for r in repaired:
        assert len(set(pos[200:, r].tolist())) > 1
    k = st.kpis(300)
    u = k["robot_utilisation"]
    assert set(u) == set(UTIL_STATES) and sum(u.values()) == pytest.approx(1.0)
    assert u["faulted"] == pytest.approx(frozen.sum() / frozen.size)
    _engine_agrees(st, log)


def test_faulted_robot_keeps_its_parcel_and_is_rerouted_if_its_chute_closes():
    opt = FloorSimOptions(chute_capacity=3, container_change_steps=100, fault_rate=0.01,
                          repair_steps=40, repair_dist="fixed")
    seen = {"prev": None, "carrying_faulted": 0, "rerouted_faulted": 0}

    def hook(t, st, pl):
        f = st.fault_left > 0
        if seen["prev"] is not None:
            pc, pf = seen["prev"]
            both = f & pf & (pc >= 0)               # faulted over the last step with a parcel
            assert (st.heading[both] == 1).all()     # the parcel stayed with it
            seen["carrying_faulted"] += int(both.sum())
            seen["rerouted_faulted"] += int((both & (st.chute != pc)).sum())
        seen["prev"] = (np.where(st.heading == 1, st.chute, -1), f)

    pl, st, pos, log = _run(opt, robots=40, steps=300, hook=hook)
    _engine_agrees(st, log)
    assert seen["carrying_faulted"] > 0 and seen["rerouted_faulted"] > 0


def test_same_seed_same_run_and_fault_free_matches_plain_parcels():
    opt = FloorSimOptions(chute_capacity=5, container_change_steps=20, fault_rate=0.005,
                          repair_steps=10)

    def go(seed):
        pl, st = make_run(FLOOR, 30, seed=seed, tasks="sorting", floor_sim=opt)
        r = simulate(pl, st, 200)
        k = r.kpis()
        return r.positions, {x: v for x, v in k.items() if "ms" not in x and "_s" not in x}

    p1, k1 = go(4)
    p2, k2 = go(4)
    p3, _ = go(5)
    assert np.array_equal(p1, p2) and json.dumps(k1, sort_keys=True) == json.dumps(k2, sort_keys=True)
    assert not np.array_equal(p1, p3)


def test_loaded_plan_files_map_chutes_by_label(tmp_path):
    floor = FLOOR
    labs = [s.label for s in floor.chutes]
    plan = tmp_path / "p.csv"
    plan.write_text("destination,chutes\n" + "".join(
        f"Z{d},{labs[2 + d]};{labs[2 + (d + 1) % 6]}\n" for d in range(6)))
    toml = tmp_path / "c.toml"
    rej = "\n".join(f'{r} = "{labs[0]}"' for r in REASONS[2:])
    toml.write_text(f'[plan]\nname = "t"\nstrategy = "fill_first"\noverflow = ["{labs[1]}"]\n'
                    f"[reject]\n{rej}\n"
                    f'[[chute]]\nid = "{labs[0]}"\nkind = "reject"\ncapacity = 100000\n'
                    f'[[chute]]\nid = "{labs[1]}"\nkind = "overflow"\ncapacity = 10\n'
                    + "".join(f'[[chute]]\nid = "{labs[2 + d]}"\ncapacity = 8\n' for d in range(6)))
    opt = FloorSimOptions(plan_csv=plan, chutes_toml=toml, container_change_steps=30)
    pl, st, pos, log = _run(opt, steps=250)
    _engine_agrees(st, log)
    used = {s for s in range(len(labs)) if st.drops_by_station[s]}
    assert used <= set(range(8)) and len(used) > 3          # only the plan's chutes
    assert st.sorter.plan_name == "t" and st.full_events > 0
    # capacity override from the options
    st2 = FloorSim(floor, 10, np.random.default_rng(0),
                   FloorSimOptions(plan_csv=plan, chutes_toml=toml, chute_capacity=3))
    assert set(st2.capacity[st2.kind != 2].tolist()) == {3}
    # a chute id that is not a floor label
    bad = tmp_path / "bad.toml"
    bad.write_text(toml.read_text().replace(f'id = "{labs[5]}"', 'id = "NOPE"'))
    (tmp_path / "bad.csv").write_text(plan.read_text().replace(labs[5], "NOPE"))
    with pytest.raises(InputError, match="NOPE") as e:
        FloorSim(floor, 10, np.random.default_rng(0),
                 FloorSimOptions(plan_csv=tmp_path / "bad.csv", chutes_toml=bad))
    assert "bad.toml" in str(e.value)


@pytest.mark.parametrize("opt", [dict(plan_csv="x.csv"), dict(chute_capacity=-1),
                                 dict(fault_rate=1.5), dict(repair_steps=0),
                                 dict(repair_dist="weibull"), dict(seconds_per_step=0),
                                 dict(strategy="random")])
def test_bad_options(opt):
    with pytest.raises(InputError):
        FloorSimOptions(**opt).validate()


KEYS = {"parcels_sorted", "sorted_per_hour", "sorted_per_chute", "parcels_by_reason",
        "rejects_by_reason", "robot_utilisation", "chute_full_events", "induct_to_drop_p50",
        "induct_to_drop_p95", "robot_faults", "reroutes"}


def test_cli_sorting_scenario_kpis(tmp_path, capsys):
    fl = tmp_path / "floor.txt"
    fl.write_text(format_ascii(FLOOR))
    floor = load_floor(fl)
    out = tmp_path / "o"
    args = ["mapf", str(fl), "--scenario", "sorting", "--robots", "25", "--steps", "150",
            "--chute-capacity", "5", "--container-change-steps", "20", "--fault-rate", "0.005",
            "--repair-steps", "10", "--seconds-per-step", "2", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "sorted/hour" in text and "utilisation" in text
    k = json.loads((out / "kpis.json").read_text())
    assert KEYS <= set(k)
    assert {"robots", "steps", "tasks_completed", "tasks_per_step", "ms_per_step_p50",
            "ms_per_step_p99", "preprocess_s"} <= set(k)
    assert k["sorted_per_hour"] == pytest.approx(k["parcels_sorted"] / (150 * 2 / 3600))
    assert sum(k["sorted_per_chute"].values()) == k["parcels_sorted"] == sum(k["parcels_by_reason"].values())
    assert k["parcels_delivered"] == k["parcels_sorted"]
    with np.load(out / "paths.npz") as z:
        pos = z["positions"]
    assert pos.shape == (151, 25) and pos.dtype == np.int32
    check_paths(floor, pos[0], pos)
    # without --scenario: the plain table (unchanged behaviour, no engine KPIs)
    assert main(["mapf", str(fl), "--robots", "25", "--steps", "20", "--json"]) == 0
    k2 = json.loads(capsys.readouterr().out)
    assert "sorted_per_hour" not in k2
    # errors: half a plan, engine flags with the table router
    assert main(["mapf", str(fl), "--plan", "x.csv", "--steps", "5"]) == 2
    assert main(["mapf", str(fl), "--router", "table", "--fault-rate", "0.1", "--steps", "5"]) == 2
    assert main(["mapf", str(fl), "--scenario", "random", "--router", "engine", "--steps", "5"]) == 2


_FLOORS = {k: sortation_floor(17, 25, 4, k, seed=k) for k in (2, 5, 9, 12)}


@settings(max_examples=60, deadline=None)
@given(k=st.sampled_from(sorted(_FLOORS)), d=st.integers(1, 30),
       kind=st.sampled_from(["zipf", "721", "uniform"]), cap=st.integers(0, 100),
       seed=st.integers(0, 5))
def test_floor_plan_properties(k, d, kind, cap, seed):
    floor = _FLOORS[k]
    w = DestinationMix(d, kind).p
    plan, table = floor_plan(floor, w, capacity=cap, rng=np.random.default_rng(seed))
    kinds = {c.id: c.kind for c in table}
    assert sorted(kinds) == sorted(s.label for s in floor.chutes)
    assert len(plan.routes) == d
    assert all(kinds[v] == "reject" for v in plan.reject.values())
    # every destination has a destination chute first; lists have no repeats
    for r in plan.routes.values():
        assert r and kinds[r[0]] == "destination" and len(set(r)) == len(r)
    # every destination chute serves someone as primary
    dest_chutes = {c for c, kd in kinds.items() if kd == "destination"}
    routes = [plan.routes[f"D{i:03d}"] for i in range(d)]
    if d > 1 and len(dest_chutes) > 1:        # last alternate: the next destination's primary
        assert all(r[-1] == routes[(i + 1) % d][0] for i, r in enumerate(routes))
        routes = [r[:-1] if len(r) > 1 and r[-1] != r[0] else r for r in routes]
    assert {c for r in routes for c in r} == dest_chutes
    assert all(c.capacity == (cap or 1_000_000_000) for c in table if c.kind != "reject")


def test_floor_sim_takes_an_integer_seed_like_the_other_task_streams():
    # was: AttributeError ('int' object has no attribute 'permutation') before the run began
    from sorter.agv.pibt import Planner
    paths = []
    for rng in (5, np.random.default_rng(5)):
        st = FloorSim(FLOOR, 8, rng, FloorSimOptions(chute_capacity=6))
        p = Planner(FLOOR, 8, FLOOR.free_cells[:8], seed=1, station_goals=True)
        goals = st.start(p)
        path = [p.positions.copy()]
        for _ in range(60):
            st.pre_step(p, goals)
            path.append(p.step(goals).copy())
            goals = st.update(p)
        paths.append((np.array(path), st.picked, st.dropped))
    assert np.array_equal(paths[0][0], paths[1][0]) and paths[0][1:] == paths[1][1:]
    with pytest.raises(InputError, match="rng"):
        FloorSim(FLOOR, 8, 2.5)

"""QA session 14: the robot sorting floor (``sorter.agv.floor_sim.FloorSim``, ``sorter mapf
--scenario sorting``, ``sorter.floor_sweep``) against an independent bookkeeping model
(``tests/naive_floor14.py``): every KPI recomputed from the recorded positions, goals and
faults; the validator; determinism; no parcel lost; no drop into a closed chute; the CLI's
kpis.json and a sweep row against the Python API."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from naive_floor14 import compare, naive_floor, record_run
from sorter.agv.floor_sim import FloorSimOptions
from sorter.agv.lifelong import make_run, simulate
from sorter.agv.validate import validate
from sorter.cli import main
from sorter.errors import InputError
from sorter.layout import load_floor, sortation_floor
from sorter.resources import seed_path

SMALL = sortation_floor(17, 25, 4, 12, seed=3)
SEED_FLOORS = ["small_12x20.txt", "queues_11x29.txt", "oneway_7x16.txt", "medium_33x57.txt"]


def _check(floor, robots, opt, **kw):
    """Record a run, replay it through the model, and check everything the model checks."""
    rec, sim, pl = record_run(floor, robots, opt, **kw)
    assert validate(floor, rec.positions[0], rec.positions) is None
    model, problems = naive_floor(floor, rec)
    assert problems == []
    assert model["_finish_mismatch_steps"] == 0
    assert compare(model, sim.kpis(rec.steps)) == {}
    # tasks: every induct visit that loads a parcel and every drop (RunResult.tasks_completed)
    assert sim.completed == model["parcels_picked"] + model["parcels_sorted"]
    assert sim.delivered == model["parcels_sorted"]
    return rec, sim, model


# -- the model agrees on random floors ----------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(9, 19), cols=st.integers(12, 26), inducts=st.integers(1, 4),
       chutes=st.integers(2, 9), queue=st.integers(0, 2), fseed=st.integers(0, 50),
       robots=st.integers(1, 40), cap=st.sampled_from([0, 1, 2, 3, 6]),
       change=st.sampled_from([0, 1, 7, 30]),
       strategy=st.sampled_from(["least_loaded", "fill_first", "round_robin"]),
       recirc=st.integers(0, 3), faults=st.sampled_from([0.0, 0.005, 0.03]),
       repair=st.sampled_from(["fixed", "exp", "uniform"]), dwell=st.tuples(
           st.integers(0, 5), st.integers(0, 2)), no_read=st.sampled_from([0.0, 0.2]),
       seed=st.integers(0, 500))
def test_kpis_match_the_bookkeeping_model_on_random_floors(rows, cols, inducts, chutes, queue,
                                                           fseed, robots, cap, change, strategy,
                                                           recirc, faults, repair, dwell,
                                                           no_read, seed):
    try:
        floor = sortation_floor(rows, cols, inducts, chutes, seed=fseed, queue=queue)
    except InputError:
        assume(False)
    robots = min(robots, len(floor.free_cells) // 3)
    assume(robots >= 1)
    opt = FloorSimOptions(chute_capacity=cap, container_change_steps=change, strategy=strategy,
                          max_recirculation=recirc, fault_rate=faults, repair_steps=9,
                          repair_dist=repair, no_read_rate=no_read)
    _check(floor, robots, opt, steps=150, seed=seed, dwell_chute=dwell[0], dwell_induct=dwell[1])


@pytest.mark.parametrize("name", SEED_FLOORS)
@pytest.mark.parametrize("case", ["fills", "faults", "supply"])
def test_kpis_match_the_model_on_the_seed_floors(name, case):
    floor = load_floor(seed_path(f"floors/{name}"))
    robots = {"medium_33x57.txt": 150, "small_12x20.txt": 25}.get(name, 15)
    opt = {"fills": FloorSimOptions(chute_capacity=4, container_change_steps=25,
                                    max_recirculation=1),
           "faults": FloorSimOptions(chute_capacity=5, container_change_steps=10,
                                     fault_rate=0.01, repair_steps=15, repair_dist="fixed"),
           "supply": FloorSimOptions(chute_capacity=6, arrival_rate=2500, no_read_rate=0.1,
                                     fault_rate=0.003, repair_steps=20)}[case]
    rec, sim, model = _check(floor, robots, opt, steps=250, seed=3)
    k = sim.kpis(rec.steps)
    assert k["parcels_sorted"] > 0
    if case == "fills":                                   # chutes did fill and re-route
        assert k["chute_full_events"] > 0 and k["reroutes"] > 0


@pytest.mark.parametrize("rescue_after", [4, 16])
def test_kpis_match_the_model_with_rescues(rescue_after):
    """A crowd on a floor with one induct: LaCAM rescues move robots (they arrive only at
    the plan's end); faults and container changes on top."""
    floor = sortation_floor(12, 19, 1, 3, seed=1)
    opt = FloorSimOptions(chute_capacity=3, container_change_steps=5, fault_rate=0.01,
                          repair_steps=5)
    rec, sim, model = _check(floor, 50, opt, steps=200, seed=1, rescue_after=rescue_after)
    assert rec.rescues > 10


def test_the_recorder_changes_nothing_and_same_seed_same_run():
    """``record_run`` steps as ``simulate`` does: the same positions and KPIs; twice the same."""
    opt = FloorSimOptions(chute_capacity=3, container_change_steps=5, fault_rate=0.01,
                          repair_steps=10, arrival_rate=4000, no_read_rate=0.1)
    rec, sim, _ = record_run(SMALL, 30, opt, steps=200, seed=7)
    rec2, sim2, _ = record_run(SMALL, 30, opt, steps=200, seed=7)
    pl, stream = make_run(SMALL, 30, seed=7, tasks="sorting", floor_sim=opt)
    res = simulate(pl, stream, 200)
    assert np.array_equal(rec.positions, res.positions)
    assert np.array_equal(rec.positions, rec2.positions)
    assert sim.kpis(200) == sim2.kpis(200) == stream.kpis(200)
    assert validate(SMALL, res.positions[0], res.positions) is None


def test_no_parcel_is_lost_and_nobody_carries_to_a_closed_chute():
    opt = FloorSimOptions(chute_capacity=2, container_change_steps=40, max_recirculation=2,
                          arrival_rate=6000, fault_rate=0.01, repair_steps=12)
    rec, sim, model = _check(SMALL, 40, opt, steps=300, seed=11)
    k = sim.kpis(300)
    assert k["parcels_offered"] == (k["parcels_sorted"] + k["parcels_carried"]
                                    + k["parcels_waiting_at_inducts"])
    assert k["parcels_picked"] == k["parcels_sorted"] + k["parcels_carried"]
    assert k["chute_full_events"] > 0 and k["reroutes_by_cause"]["chute_closed"] > 0


# -- regressions ---------------------------------------------------------------------------

def test_zero_change_steps_take_every_robot_arriving_at_a_full_chute():
    """container_change_steps=0 changes a full container at once: robots arriving with the
    one that filled it tip into the new one (was: re-routed as 'no_room_on_arrival', 3 here,
    their parcels sent to alternates or, past max_recirculation, to reject)."""
    opt = FloorSimOptions(chute_capacity=4, container_change_steps=0)
    rec, sim, model = _check(SMALL, 30, opt, steps=300, seed=2)
    k = sim.kpis(300)
    assert k["reroutes"] == 0 and k["reroutes_by_cause"]["no_room_on_arrival"] == 0
    assert k["chute_full_events"] == k["container_changes"] > 0
    assert k["chutes_closed_at_end"] == 0
    # the engine saw every parcel; no container holds more than its capacity
    assert (sim.fill[sim.kind != 2] < sim.capacity[sim.kind != 2]).all()
    disc = sim.sorter.counters()["by_chute"]
    assert sum(v["discharged"] for v in disc.values()) == k["parcels_sorted"]


def test_zero_change_steps_with_many_robots_at_one_chute_in_one_step():
    # a crowd on a small floor with a tiny container: several robots finish at a chute together
    floor = sortation_floor(10, 12, 3, 2, seed=1)
    opt = FloorSimOptions(chute_capacity=2, container_change_steps=0, max_recirculation=0)
    rec, sim, model = _check(floor, 17, opt, steps=300, seed=460, dwell_chute=4,
                             dwell_induct=1)
    k = sim.kpis(300)
    assert k["reroutes"] == 0 and k["parcels_rejected"] == 0    # was 22 and 20
    assert not any(k["rejects_by_reason"].values())
    assert k["chute_full_events"] == k["container_changes"] == k["parcels_sorted"] // 2


def _loads_before_the_induct_dwell(rec):
    """Loads of robots that had not completed their induct goal (arrival + dwell) since the
    goal was set: the planner's completions, read from the recording."""
    bad = []
    n = rec.robots
    done_since_set = np.zeros(n, bool)
    for t in range(1, rec.steps + 1):
        g = rec.goals[t - 1]
        if t > 1:
            done_since_set[g != rec.goals[t - 2]] = False
        done_since_set |= rec.finished[t - 1]
        for r in rec.loads[t - 1]:
            if not done_since_set[r]:
                bad.append((t, r))
    return bad


def test_a_robot_sent_to_another_induct_dwells_there_before_it_loads():
    """With an arrival rate, a robot waiting in vain is sent on to an induct where parcels
    wait; it loads there after its induct dwell, as every robot does (was: it took a parcel
    the step it reached that induct, its dwell skipped: robot 19 at step 67 here)."""
    opt = FloorSimOptions(chute_capacity=5, arrival_rate=3000, no_read_rate=0.1)
    rec, sim, model = _check(SMALL, 20, opt, steps=300, seed=4)
    assert sim.induct_repicks > 0                       # robots were sent on
    assert _loads_before_the_induct_dwell(rec) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_disabling_a_reject_chute_reroutes_the_robots_carrying_to_it(seed):
    """set_chute_state(reject, 'disabled') re-routes robots carrying parcels there to the
    other reject chute (was: 5 of them tipped into the disabled chute, seed 0)."""
    opt = FloorSimOptions(no_read_rate=0.5)
    _, probe, _ = record_run(SMALL, 30, opt, steps=1, seed=seed)
    lab = probe.sorter.sort_plan.reject["no_read"]
    other = probe.sorter.sort_plan.reject["max_recirculation"]
    assert lab != other
    rec, sim, model = _check(SMALL, 30, opt, steps=200, seed=seed,
                             events={40: [(lab, "disabled")]})
    # nobody finished at the disabled chute after it closed
    cells = set(int(c) for c in SMALL.chutes[[s.label for s in SMALL.chutes].index(lab)].cells)
    late = [(t, i) for t in range(41, 201) for i in np.flatnonzero(rec.finished[t - 1])
            if int(rec.goals[t - 1, i]) in cells]
    assert late == []
    assert sim.kpis(200)["reroutes_by_cause"]["chute_closed"] > 0


def test_every_reject_chute_disabled_the_parcels_still_go_somewhere():
    """No open reject chute: the engine sends rejects to the reason's own chute anyway; the
    robots tip there (no endless re-routing) and no parcel is lost."""
    opt = FloorSimOptions(no_read_rate=0.5)
    _, probe, _ = record_run(SMALL, 30, opt, steps=1, seed=0)
    rejects = sorted(set(probe.sorter.sort_plan.reject.values()))
    rec, sim, model = _check(SMALL, 30, opt, steps=200, seed=0,
                             events={30: [(c, "disabled") for c in rejects]})
    k = sim.kpis(200)
    assert k["parcels_picked"] == k["parcels_sorted"] + k["parcels_carried"]
    assert k["rejects_by_reason"].get("no_read", 0) > 0
    assert k["reroutes"] < 200


def test_operator_events_on_destination_chutes_match_the_model():
    floor = load_floor(seed_path("floors/medium_33x57.txt"))
    opt = FloorSimOptions(chute_capacity=8, container_change_steps=20, max_recirculation=1)
    _, probe, _ = record_run(floor, 60, opt, steps=1, seed=1)
    rej = sorted(set(probe.sorter.sort_plan.reject.values()))
    dests = list(probe.sorter.sort_plan.routes.values())
    ev = {30: [(dests[0][0], "disabled"), (rej[0], "disabled")], 60: [(dests[0][0], "open")],
          90: [(rej[0], "open"), (dests[1][0], "blocked")], 100: [(rej[-1], "disabled")]}
    _check(floor, 60, opt, steps=250, seed=1, events=ev)


# -- the CLI and the sweep say what the Python API says ------------------------------------

_TIMES = ("ms_per_step", "kernel_ms", "preprocess_s", "peak_rss_mb", "numba", "jit")


def _no_times(d):
    return {k: v for k, v in d.items() if not any(x in k for x in _TIMES)}


def test_cli_kpis_json_equals_the_python_api(tmp_path):
    path = seed_path("floors/small_12x20.txt")
    out = tmp_path / "run"
    assert main(["mapf", str(path), "--robots", "20", "--steps", "200", "--seed", "5",
                 "--scenario", "sorting", "--chute-capacity", "3", "--container-change-steps",
                 "0", "--fault-rate", "0.01", "--repair-steps", "10", "--arrival-rate", "5000",
                 "--out", str(out)]) == 0
    k_cli = json.loads((out / "kpis.json").read_text())
    floor = load_floor(path)
    opt = FloorSimOptions(chute_capacity=3, container_change_steps=0, fault_rate=0.01,
                          repair_steps=10, arrival_rate=5000)
    pl, stream = make_run(floor, 20, seed=5, tasks="sorting", floor_sim=opt)
    res = simulate(pl, stream, 200)
    k_api = json.loads(json.dumps(_no_times(res.kpis())))
    cli = _no_times(k_cli)
    for key, v in k_api.items():
        assert cli[key] == v, key
    paths = np.load(out / "paths.npz")
    assert np.array_equal(paths["positions"], res.positions)
    # and the model agrees with the file's figures
    rec, sim, model = _check(floor, 20, opt, steps=200, seed=5)
    assert np.array_equal(rec.positions, paths["positions"])
    for key in ("parcels_sorted", "sorted_per_hour", "induct_to_drop_p95", "parcels_offered",
                "induct_wait_p95", "robot_faults", "reroutes"):
        assert math.isclose(model[key], cli[key]), key


def test_a_sweep_row_is_what_the_model_computes():
    from sorter.floor_sweep import FLOOR_DEFAULTS, _point, run_floor_point
    floor = load_floor(seed_path("floors/small_12x20.txt"))
    settings_ = {"robots": 20, "steps": 200, "chute_capacity": 3, "container_change_steps": 10,
                 "fault_rate": 0.01, "repair_steps": 8, "no_read_rate": 0.1}
    row = run_floor_point(_point(floor, {**FLOOR_DEFAULTS, **settings_}), 2)
    opt = FloorSimOptions(chute_capacity=3, container_change_steps=10, fault_rate=0.01,
                          repair_steps=8, no_read_rate=0.1)
    rec, sim, model = _check(floor, 20, opt, steps=200, seed=2)
    assert row["parcels_sorted"] == model["parcels_sorted"]
    assert math.isclose(row["net_sorted_per_hour"], model["net_sorted_per_hour"])
    assert math.isclose(row["induct_to_drop_p95"], model["induct_to_drop_p95"])
    assert row["reroutes"] == model["reroutes"]
    assert row["robot_faults"] == model["robot_faults"]
    assert row["rejected_no_read"] == model["parcels_by_reason"]["no_read"]
    for s, share in model["robot_utilisation"].items():
        assert math.isclose(row[f"util_{s}"], share)


@pytest.mark.parametrize("strategy,cap", [("round_robin", None), ("fill_first", 2),
                                          ("least_loaded", 0)])
def test_a_loaded_plan_matches_the_model(tmp_path, strategy, cap):
    """--plan / --chutes with the floor's chute labels: a reject chute of the TOML's small
    capacity still takes every parcel; chutes the plan does not name stay idle."""
    floor = SMALL
    labs = [s.label for s in floor.chutes]
    plan = tmp_path / "p.csv"
    plan.write_text("destination,chutes\n" + "".join(
        f"Z{d},{labs[3 + d]};{labs[3 + (d + 1) % 7]}\n" for d in range(7)))
    toml = tmp_path / "c.toml"
    rej = "\n".join(f'{r} = "{labs[0] if r == "no_read" else labs[1]}"'
                    for r in ("no_read", "unknown_destination", "max_recirculation",
                              "no_chute_available", "not_sortable", "late"))
    toml.write_text(f'[plan]\nname = "t"\nstrategy = "{strategy}"\nmax_recirculation = 1\n'
                    f'overflow = ["{labs[2]}"]\n[reject]\n{rej}\n'
                    f'[[chute]]\nid = "{labs[0]}"\nkind = "reject"\ncapacity = 3\n'
                    f'[[chute]]\nid = "{labs[1]}"\nkind = "reject"\ncapacity = 3\n'
                    f'[[chute]]\nid = "{labs[2]}"\nkind = "overflow"\ncapacity = 4\n'
                    + "".join(f'[[chute]]\nid = "{labs[3 + d]}"\ncapacity = 3\n'
                              for d in range(7)))
    opt = FloorSimOptions(plan_csv=plan, chutes_toml=toml, container_change_steps=40,
                          chute_capacity=cap, no_read_rate=0.1)
    rec, sim, model = _check(floor, 30, opt, steps=250, seed=6, n_destinations=6)
    k = sim.kpis(250)
    assert set(k["sorted_per_chute"]) <= set(labs[:10])
    assert k["sorted_per_chute"].get(labs[0], 0) > 3          # past the TOML's capacity
    assert "Z6" not in {p[0] for step in rec.loads for p in step.values()}


def test_report_headline_figures_are_the_models(tmp_path):
    """``sorter mapf --report``: the page's headline boxes are the figures the model
    recomputes."""
    import re
    path = seed_path("floors/small_12x20.txt")
    out = tmp_path / "rep"
    assert main(["mapf", str(path), "--robots", "20", "--steps", "200", "--seed", "4",
                 "--scenario", "sorting", "--chute-capacity", "4", "--fault-rate", "0.01",
                 "--out", str(out), "--report"]) == 0
    page = (out / "report.html").read_text()
    floor = load_floor(path)
    opt = FloorSimOptions(chute_capacity=4, fault_rate=0.01)
    rec, sim, model = _check(floor, 20, opt, steps=200, seed=4)
    boxes = dict((b, a) for a, b in re.findall(r"<div><b>([^<]*)</b><span>([^<]*)</span>", page))
    assert boxes["parcels sorted per hour (net of rejects)"] == \
        f"{model['net_sorted_per_hour']:,.0f}"
    assert boxes["parcels per robot-hour (net)"] == f"{model['net_sorted_per_hour'] / 20:.1f}"
    assert boxes["induct to drop, p95 (steps)"] == f"{model['induct_to_drop_p95']:.0f}"
    assert boxes["robot-steps waiting"] == \
        f"{100 * model['robot_utilisation']['waiting']:.1f} %"
    assert f"{model['parcels_sorted']:,} (" in page


@pytest.mark.parametrize("change", [100, 0])
def test_opening_a_full_chute_without_a_container_change_is_a_fill(change):
    """set_chute_state(c, 'open') on a chute whose container is full: it is full again, its
    container is changed after container_change_steps (was: 'open' with no room for the
    rest of the run: the engine kept choosing it, 293 robots re-routed on arrival here and the
    chutes got nothing more)."""
    opt = FloorSimOptions(chute_capacity=3, container_change_steps=100)
    _, probe, _ = record_run(SMALL, 30, opt, steps=60, seed=0)
    full = [probe.labels[c] for c in np.flatnonzero(probe.closed)]
    assert len(full) >= 3
    opt = FloorSimOptions(chute_capacity=3, container_change_steps=change)
    ev = {60: [(c, "blocked") for c in full], 61: [(c, "open") for c in full]}
    rec, sim, model = _check(SMALL, 30, opt, steps=300, seed=0, events=ev)
    k = sim.kpis(300)
    assert k["reroutes_by_cause"]["no_room_on_arrival"] < 20
    for c in full:                                  # no chute left open with a full container
        assert sim.sorter.chute_state(c) != "open" or sim.sorter.chute_fill(c) < 3


@pytest.mark.parametrize("key,val", [("fault_rate", "0.01"), ("no_read_rate", "0.1"),
                                     ("seconds_per_step", "2")])
def test_numeric_text_options_are_refused_before_the_run(key, val):
    """Text is no number: FloorSimOptions refuses it with the field's name, and a sweep
    before its first run (was: accepted, then TypeError '>' between str and int mid-run,
    in a worker)."""
    from sorter.floor_sweep import floor_sweep
    with pytest.raises(InputError, match=key):
        FloorSimOptions(**{key: val}).validate()
    with pytest.raises(InputError, match=r"point 0"):
        floor_sweep(seed_path("floors/small_12x20.txt"), {key: [val]}, seeds=1,
                    overrides={"steps": 20, "robots": 4}, n_workers=1)


def test_cli_sweep_files_hold_the_models_figures(tmp_path):
    """``sorter sweep FLOOR``: every row of sweep.parquet and the means of summary.csv are
    the figures the model recomputes for that point and seed."""
    import csv
    import pyarrow.parquet as pq
    path = seed_path("floors/small_12x20.txt")
    out = tmp_path / "sw"
    assert main(["sweep", str(path), "--vary", "chute_capacity=3,0", "--set", "steps=150",
                 "--set", "robots=15", "--set", "fault_rate=0.01", "--set", "repair_steps=6",
                 "--seeds", "2", "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    rows = pq.read_table(out / "sweep.parquet").to_pylist()
    floor = load_floor(path)
    assert len(rows) == 4
    models = {}
    for row in rows:
        opt = FloorSimOptions(chute_capacity=int(row["chute_capacity"]), fault_rate=0.01,
                              repair_steps=6)
        rec, sim, model = _check(floor, 15, opt, steps=150, seed=int(row["seed"]))
        models.setdefault(int(row["point"]), []).append(model)
        assert row["parcels_sorted"] == model["parcels_sorted"]
        assert row["reroutes"] == model["reroutes"]
        assert row["chute_full_events"] == model["chute_full_events"]
        assert row["robot_faults"] == model["robot_faults"]
        for key in ("net_sorted_per_hour", "induct_to_drop_p95"):
            assert math.isclose(row[key], model[key]), key
        assert math.isclose(row["util_waiting"], model["robot_utilisation"]["waiting"])
    with open(out / "summary.csv", newline="") as fh:
        summary = list(csv.DictReader(fh))
    for s in summary:
        ms = models[int(s["point"])]
        mean = sum(m["net_sorted_per_hour"] for m in ms) / len(ms)
        assert math.isclose(float(s["net_sorted_per_hour_mean"]), mean, rel_tol=1e-9)

"""QA of the shift simulation as a library a capacity planner calls (``sorter.sim``), session 8.

Each test pins one problem found (input -> what went wrong) and failed before its fix; the
last test is a randomised sweep of small scenarios built in code, whose KPIs are recomputed
independently from the run's per-parcel output.

* A :class:`Scenario` built in code (``Scenario(...)``, ``dataclasses.replace``) checked only
  its loops and wave order, none of the numbers a file is checked for: ``shift_hours`` nan /
  inf / "0.2" -> raw ``ValueError`` / ``OverflowError`` / ``TypeError`` from deep inside;
  ``shift_hours = 0`` -> an error blaming ``wave[0].start_h``; a negative or NaN wave rate,
  a negative blockage rate -> numpy's "lam < 0"; ``batch_size`` 0 or 2.5, ``unload_per_hour``
  0 -> ``ZeroDivisionError`` / ``IndexError``; ``unload_per_hour`` < 0, ``arrivals = "bogus"``
  (ran as truck batches), ``mix = "bogus"`` (ran as a 70/20/10 split), ``no_read_rate`` 1.5
  or -0.1 or NaN, ``unknown_rate`` 2, ``zipf_s`` -1, share lists of different lengths,
  ``interval_minutes`` -5, a const change time of -5 / NaN / inf, 10**9 blockages/h -> ran
  and reported numbers; ``mix = "csv"`` without volumes, an unknown distribution ->
  ``TypeError`` / ``KeyError``; volumes naming no planned destination -> every parcel
  rejected without a word.
* A setting changed after the scenario was built (``sc.scan = ScanRates(1.5, 0)``, an
  overlapping wave appended, ``sc.shift_hours = nan``) -> ``simulate`` ran without a check.
* ``Containers(capacity=3)`` set in code -> silently ignored (the file's ``[containers]
  capacity`` sets every destination chute's container).
* numpy scalars: ``shift_hours=np.int64(1)`` -> ``compute_kpis`` output no longer
  ``json.dumps``-able; ``induct_rates_per_hour=np.array(...)`` -> "truth value of an array is
  ambiguous"; ``max_recirculation=np.int64(2)`` (scenario or ``generate_loop_plan``) -> refused.
* A wave with ``induct_rates_per_hour`` built in code (``rate_per_hour=0``) -> its KPI
  ``offered_rate_per_hour`` read 0.
* ``sc.shift_hours`` shortened in code -> the KPIs listed the waves after the shift "from
  1.00 h to 0.50 h" (``sorter sweep`` drops them; now ``simulate`` does too).
* ``simulate(None)`` / ``step_minutes=nan`` -> a ``TypeError`` about ``os.PathLike`` / a raw
  ``ValueError`` instead of naming the argument.
* ``LoopSorter.generate(n_inducts=0)`` or ``capacity=0`` -> an error naming ``loop.n_reject``.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sorter.constants import REJECT_REASONS
from sorter.errors import InputError
from sorter.layout.loop import LoopSorter, generate_loop_plan
from sorter.resources import seed_path
from sorter.sim import compute_kpis, load_scenario, simulate
from sorter.sim.scenario import (Blockages, Containers, DestinationMix, Distribution, LoopSpec,
                                 Scenario, ScanRates, Wave)


def _scenario(**kw) -> Scenario:
    layout = LoopSorter.generate(length_m=100, n_chutes=20, n_inducts=2, capacity=10,
                                 induct_rate=1500)
    plan = generate_loop_plan(layout.chutes, 10)
    args = dict(loops=[LoopSpec(layout, plan)], waves=[Wave("w", 0.0, 600.0, 3000.0)],
                shift_hours=0.2)
    args.update(kw)
    return Scenario(**args)


def _kpis(sc, seed=1) -> dict:
    k = compute_kpis(simulate(sc, seed=seed))
    k.pop("wall_s")
    return k


def _wave(**kw):
    return [Wave(**{"name": "w", "start_s": 0.0, "end_s": 600.0, "rate_per_hour": 3000.0, **kw})]


BAD = [
    # (label, Scenario keyword arguments, field named)
    ("shift nan", dict(shift_hours=float("nan")), "scenario.shift_hours"),
    ("shift inf", dict(shift_hours=float("inf")), "scenario.shift_hours"),
    ("shift str", dict(shift_hours="0.2"), "scenario.shift_hours"),
    ("shift 0", dict(shift_hours=0), "scenario.shift_hours"),
    ("interval -5", dict(interval_minutes=-5), "scenario.interval_minutes"),
    ("interval 0", dict(interval_minutes=0), "scenario.interval_minutes"),
    ("rate -5", dict(waves=_wave(rate_per_hour=-5.0)), "wave[0].rate_per_hour"),
    ("rate nan", dict(waves=_wave(rate_per_hour=float("nan"))), "wave[0].rate_per_hour"),
    ("rate str", dict(waves=_wave(rate_per_hour="3000")), "wave[0].rate_per_hour"),
    ("start nan", dict(waves=_wave(start_s=float("nan"))), "wave[0].start_s"),
    ("batch 0", dict(waves=_wave(arrivals="batched", batch_size=0)), "wave[0].batch_size"),
    ("batch 2.5", dict(waves=_wave(arrivals="batched", batch_size=2.5)), "wave[0].batch_size"),
    ("unload 0", dict(waves=_wave(arrivals="batched", unload_per_hour=0.0)),
     "wave[0].unload_per_hour"),
    ("unload -5", dict(waves=_wave(arrivals="batched", unload_per_hour=-5.0)),
     "wave[0].unload_per_hour"),
    ("arrivals bogus", dict(waves=_wave(arrivals="bogus")), "wave[0].arrivals"),
    ("induct rate -100", dict(waves=_wave(rate_per_hour=0.0, induct_rates_per_hour=(-100.0, 200.0))),
     "wave[0].induct_rates_per_hour"),
    ("no_read 1.5", dict(scan=ScanRates(1.5, 0.0)), "scan.no_read_rate"),
    ("no_read -0.1", dict(scan=ScanRates(-0.1, 0.0)), "scan.no_read_rate"),
    ("no_read nan", dict(scan=ScanRates(float("nan"), 0.0)), "scan.no_read_rate"),
    ("not_sortable 2", dict(scan=ScanRates(0.0, 2.0)), "scan.not_sortable_rate"),
    ("mix bogus", dict(destinations=DestinationMix("bogus")), "destinations.mix"),
    ("zipf -1", dict(destinations=DestinationMix("zipf", -1.0)), "destinations.zipf_s"),
    ("zipf nan", dict(destinations=DestinationMix("zipf", float("nan"))), "destinations.zipf_s"),
    ("shares lengths", dict(destinations=DestinationMix("split", volume_shares=(0.5, 0.5),
                                                        destination_shares=(1.0,))),
     "destinations.destination_shares"),
    ("shares negative", dict(destinations=DestinationMix("split", volume_shares=(1.5, -0.5),
                                                         destination_shares=(0.5, 0.5))),
     "destinations.volume_shares"),
    ("csv without volumes", dict(destinations=DestinationMix("csv")), "destinations.volumes"),
    ("csv unknown codes", dict(destinations=DestinationMix("csv", volumes={"NOPE": 5.0})),
     "destinations.volumes"),
    ("unknown_rate 2", dict(destinations=DestinationMix(unknown_rate=2.0)),
     "destinations.unknown_rate"),
    ("capacity 0", dict(containers=Containers(capacity=0)), "containers.capacity"),
    ("change time -5", dict(containers=Containers(Distribution("const", {"value": -5.0}))),
     "containers.change_time_s.value"),
    ("change time nan", dict(containers=Containers(Distribution("const", {"value": float("nan")}))),
     "containers.change_time_s.value"),
    ("change time inf", dict(containers=Containers(Distribution("const", {"value": float("inf")}))),
     "containers.change_time_s.value"),
    ("unknown distribution", dict(containers=Containers(Distribution("bogus", {}))),
     "containers.change_time_s.dist"),
    ("blockages -1/h", dict(blockages=Blockages(-1.0)), "blockages.random_per_hour"),
    ("blockages nan/h", dict(blockages=Blockages(float("nan"))), "blockages.random_per_hour"),
    ("blockages 1e9/h", dict(blockages=Blockages(1e9)), "blockages.random_per_hour"),
]


@pytest.mark.parametrize("label, change, field", BAD, ids=[b[0] for b in BAD])
def test_a_scenario_built_in_code_is_checked_like_a_file(label, change, field):
    with pytest.raises(InputError) as exc:
        sc = _scenario(**change)
        simulate(sc, seed=1)              # before: some of these ran and reported numbers
    assert exc.value.field == field
    assert field in str(exc.value) and "expected" in str(exc.value)


@pytest.mark.parametrize("change, field", [
    (lambda sc: setattr(sc, "scan", ScanRates(1.5, 0.0)), "scan.no_read_rate"),
    (lambda sc: sc.waves.append(Wave("late", 300.0, 700.0, 3000.0)), "wave[1].start_h"),
    (lambda sc: setattr(sc, "shift_hours", float("nan")), "scenario.shift_hours"),
    (lambda sc: setattr(sc, "destinations", DestinationMix("bogus")), "destinations.mix"),
])
def test_a_setting_changed_after_building_is_checked_when_simulated(change, field):
    sc = _scenario()
    change(sc)
    with pytest.raises(InputError) as exc:
        simulate(sc, seed=1)
    assert exc.value.field == field


def test_containers_capacity_set_in_code_takes_effect_as_in_a_file(tmp_path):
    """``replace(sc, containers=Containers(capacity=3))`` was ignored; a file's
    ``[containers] capacity = 3`` gives the same shift."""
    text = seed_path("scenarios/small.toml").read_text()
    p = tmp_path / "cap.toml"
    p.write_text(text.replace("[containers]\n", "[containers]\ncapacity = 3\n"))
    from_file = load_scenario(p)
    base = load_scenario(seed_path("scenarios/small.toml"))
    in_code = replace(base, containers=replace(base.containers, capacity=3))
    res = simulate(in_code, seed=2)
    lr = res.loops[0]
    assert set(lr.chute_capacity[lr.chute_kind == 0].tolist()) == {3}
    k_code, k_file = _kpis(in_code, 2), _kpis(from_file, 2)
    k_code["scenario"] = k_file["scenario"]
    assert k_code == k_file
    assert k_code != _kpis(base, 2)
    # the scenario it was made from keeps its own chutes
    assert all(c.capacity == 12 for c in base.loops[0].layout.chutes if c.kind == "destination")


def test_kpis_of_a_scenario_with_numpy_numbers_are_json(tmp_path):
    sc = _scenario(shift_hours=np.int64(1), interval_minutes=np.float32(15),
                   waves=_wave(rate_per_hour=np.int64(500), end_s=np.float64(3600.0)))
    k = compute_kpis(simulate(sc, seed=np.int64(3)))
    back = json.loads(json.dumps(k))
    assert back["shift_hours"] == 1 and back["offered"] == k["offered"] > 0


def test_induct_rates_as_a_numpy_array_are_a_list_of_rates():
    as_tuple = _scenario(waves=_wave(rate_per_hour=0.0, induct_rates_per_hour=(1000.0, 2000.0)))
    as_array = _scenario(waves=_wave(rate_per_hour=0.0,
                                     induct_rates_per_hour=np.array([1000.0, 2000.0])))
    assert _kpis(as_array) == _kpis(as_tuple)


def test_numpy_max_recirculation_is_an_integer():
    k2 = _kpis(_scenario(max_recirculation=2))
    assert _kpis(_scenario(max_recirculation=np.int64(2))) == k2
    layout = LoopSorter.generate(length_m=100, n_chutes=20, n_inducts=2)
    plan = generate_loop_plan(layout.chutes, 5, max_recirculation=np.int64(2))
    assert plan.max_recirculation == 2 and type(plan.max_recirculation) is int


def test_a_wave_of_induct_rates_reports_its_offered_rate():
    sc = _scenario(waves=_wave(rate_per_hour=0.0, induct_rates_per_hour=(1000.0, 2000.0)))
    k = _kpis(sc)
    assert k["per_wave"][0]["offered_rate_per_hour"] == pytest.approx(3000.0)
    # a rate_per_hour that disagrees with the per-induct rates is refused, not ignored
    with pytest.raises(InputError) as exc:
        _scenario(waves=_wave(rate_per_hour=500.0, induct_rates_per_hour=(1000.0, 2000.0)))
    assert exc.value.field == "wave[0].rate_per_hour"


def test_a_shift_shortened_in_code_drops_the_waves_after_it():
    sc = load_scenario(seed_path("scenarios/default.toml"))
    sc.shift_hours = 0.5
    k = _kpis(sc, 4)
    assert k["per_wave"] and all(w["start_h"] < w["end_h"] for w in k["per_wave"])
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    assert len(sc.waves) > len(k["per_wave"])          # the caller's scenario is left as it was


@pytest.mark.parametrize("call, exc_type, needle", [
    (lambda: simulate(None), TypeError, "Scenario"),
    (lambda: simulate({"loop": {}}), TypeError, "Scenario"),
    (lambda: simulate(_scenario(), step_minutes=float("nan")), InputError, "step_minutes"),
])
def test_simulate_names_its_bad_arguments(call, exc_type, needle):
    with pytest.raises(exc_type, match=needle):
        call()


# --------------------------------------------------------------------------- randomised sweep

@st.composite
def small_scenarios(draw):
    n_ind = draw(st.integers(1, 3))
    capacity = draw(st.sampled_from([1, 2, 10]))
    layout = LoopSorter.generate(length_m=draw(st.floats(40, 150)), speed_mps=draw(st.floats(0.5, 3)),
                                 pitch_m=draw(st.floats(0.4, 1.2)), n_chutes=12, n_inducts=n_ind,
                                 capacity=capacity, induct_rate=draw(st.floats(300, 3000)))
    n_dc = sum(c.kind == "destination" for c in layout.chutes)
    plan = generate_loop_plan(layout.chutes, draw(st.integers(1, n_dc)),
                              max_recirculation=draw(st.integers(0, 2)))
    shift_s = draw(st.sampled_from([1.0, 2.0, 60.0, 300.0, 900.0]))
    waves, t = [], 0.0
    for i in range(draw(st.integers(1, 3))):
        start = t + draw(st.sampled_from([0.0, shift_s / 10]))
        end = start + draw(st.sampled_from([shift_s / 4, shift_s / 2, shift_s]))
        if start >= shift_s:
            break
        kind = draw(st.sampled_from(["poisson", "batched", "per_induct"]))
        rate = draw(st.sampled_from([0.0, 200.0, 6000.0, 60000.0]))
        if kind == "per_induct":
            rates = tuple(draw(st.sampled_from([0.0, 500.0, 4000.0])) for _ in range(n_ind))
            waves.append(Wave(f"w{i}", start, end, 0.0, induct_rates_per_hour=rates))
        else:
            waves.append(Wave(f"w{i}", start, end, rate, kind, draw(st.integers(1, 40)),
                              draw(st.floats(100, 20000))))
        t = end
    mix = draw(st.sampled_from(["zipf", "uniform", "split"]))
    return Scenario(
        loops=[LoopSpec(layout, plan)], waves=waves, shift_hours=np.float64(shift_s / 3600),
        interval_minutes=draw(st.sampled_from([1, 5, 15])),
        destinations=DestinationMix(mix, draw(st.sampled_from([0.0, 1.0, 10.0])),
                                    unknown_rate=draw(st.sampled_from([0.0, 0.1, 1.0]))),
        scan=ScanRates(draw(st.sampled_from([0.0, 0.05, 1.0])), draw(st.sampled_from([0.0, 1.0]))),
        containers=Containers(Distribution("uniform", {"low": 0.0, "high": 30.0}),
                              Distribution("const", {"value": 0.0})),
        blockages=Blockages(draw(st.sampled_from([0.0, 200.0])),
                            Distribution("uniform", {"low": 1.0, "high": 60.0})))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=small_scenarios(), seed=st.integers(0, 2**32))
def test_kpis_agree_with_the_runs_own_parcel_rows(sc, seed):
    res = simulate(sc, seed=seed)
    k = compute_kpis(res)
    c = res.parcel_columns()
    status, reason, rec = c["status"], c["reason"], c["recirculations"]
    shift_s = sc.shift_hours * 3600
    n = len(status)
    # conservation, from the parcel rows
    assert set(status) <= {"sorted", "rejected", "on_loop", "queued"}
    assert k["offered"] == n
    assert k["inducted"] == int(np.sum(status != "queued"))
    assert k["sorted"] == int(np.sum(status == "sorted"))
    assert k["rejected"] == int(np.sum(status == "rejected"))
    assert k["on_loop_at_end"] == int(np.sum(status == "on_loop"))
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    # every reject has a reason, and the reasons add up
    assert set(reason[status == "rejected"]) <= set(REJECT_REASONS)
    assert k["rejects_by_reason"] == {r: int(np.sum((status == "rejected") & (reason == r)))
                                      for r in REJECT_REASONS}
    assert sum(k["rejects_by_reason"].values()) == k["rejected"]
    # rates and shares
    assert k["sorted_per_hour"] == pytest.approx(k["sorted"] * 3600 / shift_s)
    done = (status == "sorted") | (status == "rejected")
    assert k["recirculation_pct"] == pytest.approx(
        100 * np.sum(done & (rec > 0)) / done.sum() if done.any() else 0.0)
    t_ic = (c["discharge_t"] - c["induct_t"])[done]
    assert np.all(t_ic > 0)
    assert k["induct_to_chute_s_p95"] == pytest.approx(
        float(np.percentile(t_ic, 95)) if done.any() else 0.0)
    # times inside the shift; intervals add up to the totals
    assert np.all((c["arrival_t"] >= 0) & (c["arrival_t"] < shift_s))
    assert np.all(c["discharge_t"][done] <= shift_s + 1e-6)
    iv = k["intervals"]
    for key in ("offered", "inducted", "sorted", "rejected"):
        assert sum(iv[key]) == k[key]
    assert all(w["start_h"] < w["end_h"] for w in k["per_wave"])
    json.dumps(k)
    # same seed, same KPIs
    k2 = compute_kpis(simulate(sc, seed=seed))
    k.pop("wall_s"), k2.pop("wall_s")
    assert k == k2


@pytest.mark.parametrize("key", ["n_inducts", "capacity"])
def test_a_generated_loop_with_a_zero_count_names_that_count(key):
    """``LoopSorter.generate(n_inducts=0)`` (or ``capacity=0``) blamed ``loop.n_reject``."""
    with pytest.raises(InputError) as exc:
        LoopSorter.generate(**{"length_m": 100, "n_chutes": 20, "n_inducts": 2, key: 0})
    assert exc.value.field == f"loop.{key}"

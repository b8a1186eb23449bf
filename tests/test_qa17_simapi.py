"""QA of the loop-sorter shift simulation as a notebook calls it (``sorter.sim``,
``sorter.layout.loop``, ``sorter.report``), session 17 (qa-simapi).

Each test below the first pins one problem found (input -> what went wrong) and failed
before its fix:

* ``generate_loop_plan(chutes, True)`` -> a plan of 1 destination (True read as 1);
  ``busy=nan`` -> "cannot convert float NaN to integer"; ``busy=2`` / ``-1`` -> ran (a share);
  ``seed=-1`` -> numpy's "expected non-negative integer"; ``chutes=None`` -> "'NoneType' object
  is not iterable".
* ``LoopSorter.generate(speed_mps=np.float32(2.5))`` or ``induct_rate=np.float32(3000)`` ->
  numpy numbers kept in the layout, the loop computed in float32, ``json.dumps(compute_kpis(...))``
  refused; ``LoopSorter.generate(name=None)`` (or ``5``, ``""``) -> accepted.
* A ``[[loop.induct]]`` table with ``id = None`` (or 1.5) -> an induct named "None".
* ``change_time_s = np.int64(40)`` (any numpy number but float64) -> "bad distribution".
* A scenario dict whose file keys are ``Path`` objects (``loop.chutes``, ``loop.plan``,
  ``destinations.volumes``) -> refused as "bad chutes PosixPath(...)"; waves / scheduled
  blockages as a tuple -> "no waves" / "bad scheduled blockages"; ``wave`` a single table ->
  "no waves".
* ``load_scenario(dict)`` / ``(None)`` -> Path()'s TypeError naming nothing;
  ``compute_kpis(scenario)`` -> AttributeError; ``write_outputs(result, compact(kpis), out)``
  or ``plot_throughput(compact(kpis), ...)`` -> KeyError 'intervals'; ``format_table({})`` ->
  KeyError.
"""
from __future__ import annotations

import copy
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from sorter.errors import InputError
from sorter.layout.loop import LoopSorter, generate_loop_plan
from sorter.resources import seed_path
from sorter.sim import compute_kpis, format_table, load_scenario, parse_scenario, simulate
from sorter.sim.kpis import compact
from sorter.sim.scenario import LoopSpec, Scenario, Wave

DOC = {
    "scenario": {"name": "t", "seed": 3, "shift_hours": 0.05, "interval_minutes": 1},
    "loop": {"name": "S1", "length_m": 120.0, "speed_mps": 2.0, "pitch_m": 0.8, "n_chutes": 40,
             "n_overflow": 2, "n_reject": 2, "capacity": 12, "n_inducts": 3,
             "induct_rate": 2500, "n_destinations": 30},
    "wave": [{"name": "all", "start_h": 0.0, "end_h": 0.05, "rate_per_hour": 6500}],
    "destinations": {"mix": "split"},
    "scan": {"no_read_rate": 0.02, "not_sortable_rate": 0.005},
    "containers": {"change_time_s": {"dist": "uniform", "low": 40, "high": 80},
                   "reaction_time_s": {"dist": "exponential", "mean": 20}},
    "blockages": {"random_per_hour": 4.0,
                  "duration_s": {"dist": "uniform", "low": 30, "high": 120}},
}
TOML = """
[scenario]
name = "t"
seed = 3
shift_hours = 0.05
interval_minutes = 1
[loop]
name = "S1"
length_m = 120.0
speed_mps = 2.0
pitch_m = 0.8
n_chutes = 40
n_overflow = 2
n_reject = 2
capacity = 12
n_inducts = 3
induct_rate = 2500
n_destinations = 30
[[wave]]
name = "all"
start_h = 0.0
end_h = 0.05
rate_per_hour = 6500
[destinations]
mix = "split"
[scan]
no_read_rate = 0.02
not_sortable_rate = 0.005
[containers]
change_time_s = { dist = "uniform", low = 40, high = 80 }
reaction_time_s = { dist = "exponential", mean = 20 }
[blockages]
random_per_hour = 4.0
duration_s = { dist = "uniform", low = 30, high = 120 }
"""


def _k(sc, seed=None) -> dict:
    return compact(compute_kpis(simulate(sc, seed=seed)))


def test_a_dict_runs_as_its_toml_through_sorter_run_and_leaves_its_inputs_alone(tmp_path, capsys):
    """(Found fine, kept as a guard.) A dict scenario gives the KPIs of the same TOML through
    ``sorter run --json``; a Scenario reused for two runs gives the same KPIs and is not
    changed by them; numpy seeds are seeds."""
    from sorter.cli import main
    (tmp_path / "s.toml").write_text(TOML, encoding="utf-8")
    doc = copy.deepcopy(DOC)
    sc = parse_scenario(doc)
    assert doc == DOC
    before = repr(sc)
    k1 = _k(sc)
    assert main(["run", str(tmp_path / "s.toml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == k1
    assert _k(sc, seed=np.int64(3)) == k1 and repr(sc) == before
    assert k1["offered"] > 0 and k1["inducted"] == k1["sorted"] + k1["rejected"] + k1["on_loop_at_end"]


# --------------------------------------------------------------------------- layout

@pytest.mark.parametrize("kw, field", [
    (dict(n_destinations=True), "loop.n_destinations"),
    (dict(n_destinations=5, busy=float("nan")), "busy"),
    (dict(n_destinations=5, busy=2), "busy"),
    (dict(n_destinations=5, busy=-1), "busy"),
    (dict(n_destinations=5, seed=-1), "seed"),
])
def test_generate_loop_plan_names_a_bad_argument(kw, field):
    chutes = LoopSorter.generate(length_m=100, n_chutes=20).chutes
    with pytest.raises(InputError) as exc:
        generate_loop_plan(chutes, **kw)
    assert exc.value.field == field


def test_generate_loop_plan_wants_a_chute_table():
    with pytest.raises(TypeError, match="ChuteTable"):
        generate_loop_plan(None, 5)
    chutes = LoopSorter.generate(length_m=100, n_chutes=20).chutes
    # a list of the table's chutes is still the table (as before)
    assert generate_loop_plan(list(chutes), 5).routes == generate_loop_plan(chutes, 5).routes


@pytest.mark.parametrize("kw", [dict(speed_mps=np.float32(2.5)),
                                dict(induct_rate=np.float32(3000)),
                                dict(length_m=np.int64(100), pitch_m=np.float32(0.5))])
def test_numpy_numbers_of_a_loop_give_the_kpis_of_plain_numbers(kw):
    plain = {k: float(v) for k, v in kw.items()}

    def run(**over):
        args = dict(length_m=100.0, n_chutes=20, n_inducts=2, speed_mps=2.5, pitch_m=0.5)
        args.update(over)
        layout = LoopSorter.generate(**args)
        sc = Scenario(loops=[LoopSpec(layout, generate_loop_plan(layout.chutes, 10))],
                      waves=[Wave("w", 0.0, 180.0, 6000.0)], shift_hours=0.05)
        return compute_kpis(simulate(sc, seed=1)), layout

    k, layout = run(**kw)
    assert all(type(getattr(layout, a)) is float for a in ("length_m", "speed_mps", "pitch_m",
                                                            "scanner_m"))
    assert all(type(i.max_rate_per_hour) is float for i in layout.inducts)
    json.dumps(k)                            # before: "float32 is not JSON serializable"
    k.pop("wall_s")
    k0, _ = run(**plain)
    k0.pop("wall_s")
    assert k == k0


@pytest.mark.parametrize("name", [None, 5, "", "  "])
def test_a_generated_loop_needs_a_name(name):
    with pytest.raises(InputError) as exc:
        LoopSorter.generate(n_chutes=20, length_m=100, name=name)
    assert exc.value.field == "loop.name"


@pytest.mark.parametrize("iid", [None, 1.5, True])
def test_an_induct_id_of_no_string_is_refused(iid):
    with pytest.raises(InputError) as exc:
        LoopSorter.from_dict({"induct": [{"position_m": 2.0, "id": iid}]})
    assert exc.value.field == "loop.induct[0].id"
    # an integer id reads as its digits, as a TOML file's
    assert LoopSorter.from_dict({"induct": [{"position_m": 2.0, "id": 7}]}).inducts[0].id == "7"


# --------------------------------------------------------------------------- scenario dicts

@pytest.mark.parametrize("value", [np.int64(40), np.float32(40.0), np.int32(40)])
def test_a_numpy_number_is_a_constant_duration(value):
    doc = copy.deepcopy(DOC)
    doc["containers"]["change_time_s"] = value
    d = parse_scenario(doc).containers.change_time_s
    assert d.dist == "const" and d.params["value"] == 40.0


def _manual_doc():
    return tomllib.loads(seed_path("scenarios/manual_inducts.toml").read_text(encoding="utf-8"))


def test_file_keys_given_as_paths_read_as_their_strings():
    base = seed_path("scenarios")
    doc = _manual_doc()
    assert {"chutes", "plan"} <= set(doc["loop"]) and "volumes" in doc["destinations"]
    ref = _k(parse_scenario(copy.deepcopy(doc), base_dir=base), seed=1)
    rel = copy.deepcopy(doc)
    for k in ("chutes", "plan"):
        rel["loop"][k] = Path(rel["loop"][k])
    rel["destinations"]["volumes"] = Path(rel["destinations"]["volumes"])
    kept = repr(rel)
    assert _k(parse_scenario(rel, base_dir=base), seed=1) == ref
    assert repr(rel) == kept                     # the caller's dict is left as it was
    absolute = copy.deepcopy(doc)
    absolute["loop"]["chutes"] = base / doc["loop"]["chutes"]
    absolute["loop"]["plan"] = base / doc["loop"]["plan"]
    absolute["destinations"]["volumes"] = base / doc["destinations"]["volumes"]
    assert _k(parse_scenario(absolute), seed=1) == ref
    # LoopSorter.from_dict alone too
    loop = LoopSorter.from_dict({**doc["loop"], "chutes": Path(doc["loop"]["chutes"])},
                                base_dir=base)
    assert len(loop.chutes) == len(LoopSorter.from_dict(doc["loop"], base_dir=base).chutes)


def test_waves_and_blockages_as_tuples_and_one_wave_table():
    doc = copy.deepcopy(DOC)
    doc["wave"] = tuple(doc["wave"])
    doc["blockages"]["scheduled"] = ({"chute": "C001", "start_h": 0.01, "duration_s": 60},)
    sc = parse_scenario(doc)
    assert len(sc.waves) == 1 and sc.blockages.scheduled[0].chute == "C001"
    one = copy.deepcopy(DOC)
    one["wave"] = one["wave"][0]
    with pytest.raises(InputError, match=r"\[\[wave\]\]") as exc:
        parse_scenario(one)
    assert exc.value.field == "wave" and "no waves" not in str(exc.value)


# --------------------------------------------------------------------------- wrong arguments

def test_load_scenario_and_simulate_point_a_dict_to_parse_scenario():
    for call in (load_scenario, simulate):
        with pytest.raises(TypeError, match="parse_scenario"):
            call(copy.deepcopy(DOC))
    with pytest.raises(TypeError, match="path is a NoneType"):
        load_scenario(None)


def test_kpi_consumers_name_a_wrong_argument(tmp_path):
    from sorter import report
    res = simulate(parse_scenario(copy.deepcopy(DOC)))
    k = compute_kpis(res)
    with pytest.raises(TypeError, match="ShiftResult"):
        compute_kpis(res.scenario)
    with pytest.raises(TypeError, match="ShiftResult"):
        report.write_outputs(k, res, tmp_path / "a")
    with pytest.raises(InputError, match="intervals"):
        report.write_outputs(res, compact(k), tmp_path / "b")
    assert not (tmp_path / "b").exists()             # refused before anything is made
    for plot in (report.plot_throughput, report.plot_recirculation):
        with pytest.raises(InputError, match="intervals"):
            plot(compact(k), res.scenario, tmp_path / "p.png")
    with pytest.raises(TypeError, match="compute_kpis"):
        format_table(res)
    with pytest.raises(InputError, match="offered"):
        format_table({})
    assert "sorted" in format_table(compact(k))       # the --json KPIs still print
    assert math.isfinite(k["sorted_per_hour"])

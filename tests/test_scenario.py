"""Scenario files (sorter.sim.scenario) and pre-drawn arrivals (sorter.sim.arrivals)."""
from __future__ import annotations

import tomllib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sorter.errors import InputError
from sorter.resources import seed_path
from sorter.sim.arrivals import draw_floor_events, draw_parcels
from sorter.sim.scenario import Distribution, load_scenario, parse_scenario

PLAN = seed_path("plan/demo_plan.csv").as_posix()
PLAN2 = seed_path("plan/demo_plan_wave2.csv").as_posix()
CHUTES = seed_path("plan/demo_chutes.toml").as_posix()

BASE = f"""
[scenario]
name = "test"
seed = 3
shift_hours = 1.0

[loop]
name = "L"
length_m = 400.0
speed_mps = 2.5
pitch_m = 0.6
scanner_m = 16.0
chutes = "{CHUTES}"
plan = "{PLAN}"
[[loop.induct]]
id = "I1"
position_m = 2.0
max_rate_per_hour = 3000
[[loop.induct]]
id = "I2"
position_m = 4.0
max_rate_per_hour = 3000

[[wave]]
name = "a"
start_h = 0.0
end_h = 0.5
rate_per_hour = 5000

[[wave]]
name = "b"
start_h = 0.5
end_h = 1.0
rate_per_hour = 4000
plan = "{PLAN2}"

[destinations]
mix = "zipf"

[scan]
no_read_rate = 0.01

[containers]
change_time_s = {{ dist = "uniform", low = 30, high = 60 }}
reaction_time_s = 20

[blockages]
random_per_hour = 1.0

[[blockages.scheduled]]
chute = "C010"
start_h = 0.2
duration_s = 300
"""


def write(tmp_path, text, name="scen.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_base_and_shipped_scenarios_load(tmp_path):
    sc = load_scenario(write(tmp_path, BASE))
    assert sc.loops[0].layout.n_carriers == 667
    assert [w.name for w in sc.waves] == ["a", "b"]
    assert "L" in sc.waves[1].plans and sc.waves[1].plans["L"].name == "demo_plan_wave2"
    assert sc.containers.reaction_time_s.mean == 20
    for name in ("default", "small", "peak", "bench_8h", "hub"):
        s = load_scenario(seed_path(f"scenarios/{name}.toml"))
        assert s.shift_hours > 0 and s.loops


@pytest.mark.parametrize("old, new, field", [
    ("speed_mps = 2.5", "speed_mps = 0", "loop.speed_mps"),
    ("pitch_m = 0.6", "pitch_m = -0.6", "loop.pitch_m"),
    ("length_m = 400.0", "length_m = 300.0", "chute.position"),           # chutes past the end
    ("scanner_m = 16.0", "scanner_m = 401.0", "loop.scanner_m"),
    ("position_m = 4.0", "position_m = 2.1", "loop.induct[1].position_m"),
    ("shift_hours = 1.0", "shift_hours = 0", "scenario.shift_hours"),
    ("seed = 3", "seed = -1", "scenario.seed"),
    ("seed = 3", 'seed = "x"', "scenario.seed"),
    ("end_h = 0.5\nrate_per_hour = 5000", "end_h = 0.0\nrate_per_hour = 5000", "wave[0].end_h"),
    ("start_h = 0.5", "start_h = 0.4", "wave[1].start_h"),                 # overlap
    ("rate_per_hour = 4000", "rate_per_hour = -1", "wave[1].rate_per_hour"),
    ("rate_per_hour = 4000", 'rate_per_hour = 4000\narrivals = "drones"', "wave[1].arrivals"),
    ("rate_per_hour = 4000", "rate_per_hour = 4000\ninduct_rates_per_hour = [1, 2, 3]",
     "wave[1].induct_rates_per_hour"),
    ('mix = "zipf"', 'mix = "pareto"', "destinations.mix"),
    ('mix = "zipf"', 'mix = "split"\nvolume_shares = [0.5, 0.2]\ndestination_shares = [0.5, 0.5]',
     "destinations.volume_shares"),
    ('mix = "zipf"', 'mix = "csv"', "destinations.volumes"),
    ("no_read_rate = 0.01", "no_read_rate = 1.5", "scan.no_read_rate"),
    ('dist = "uniform", low = 30, high = 60', 'dist = "weibull", low = 30, high = 60',
     "containers.change_time_s.dist"),
    ('dist = "uniform", low = 30, high = 60', 'dist = "uniform", low = 60, high = 30',
     "containers.change_time_s.low"),
    ('dist = "uniform", low = 30, high = 60', 'dist = "uniform", low = 30',
     "containers.change_time_s.high"),
    ("reaction_time_s = 20", "reaction_time_s = -20", "containers.reaction_time_s"),
    ("random_per_hour = 1.0", "random_per_hour = -1", "blockages.random_per_hour"),
    ('chute = "C010"', 'chute = "C999"', "blockages.scheduled[0].chute"),
    ("[scan]", "[scanner]", "scanner"),
    ("[scan]", "[scan]\nno_reads = 1", "scan.no_reads"),
    (f'plan = "{PLAN}"', 'plan = "missing.csv"', None),
    (f'plan = "{PLAN2}"', 'plan = { other = "x.csv" }', "wave[1].plan"),
])
def test_malformed_scenarios_name_file_and_field(tmp_path, old, new, field):
    assert old in BASE
    p = write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(InputError) as exc:
        load_scenario(p)
    msg = str(exc.value)
    assert "\n" not in msg
    if field is None:        # a missing referenced file: the message names that file
        assert "missing.csv" in msg
    else:
        assert exc.value.field == field, msg
        assert f"'{field}'" in msg
        assert str(p) in msg
        assert "expected" in msg


def test_toml_syntax_error_names_the_line(tmp_path):
    p = write(tmp_path, BASE.replace("speed_mps = 2.5", "speed_mps = = 2.5"))
    with pytest.raises(InputError) as exc:
        load_scenario(p)
    assert exc.value.line is not None and str(p) in str(exc.value)


def test_missing_file_and_bad_volume_csv(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_scenario(tmp_path / "nope.toml")
    vol = tmp_path / "vol.csv"
    vol.write_text("destination,volume\n01422,10\n02194,abc\n")
    p = write(tmp_path, BASE.replace('mix = "zipf"', 'mix = "csv"\nvolumes = "vol.csv"'))
    with pytest.raises(InputError) as exc:
        load_scenario(p)
    assert exc.value.line == 3 and exc.value.field == "volume" and "vol.csv" in str(exc.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_junk_values_give_input_errors_never_tracebacks(tmp_path, data):
    doc = tomllib.loads(BASE)
    junk = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                     st.lists(st.integers(-5, 5), max_size=3),
                     st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
    # replace one leaf somewhere in the document with junk
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list) and node and isinstance(node[0], dict):
            for i, v in enumerate(node):
                walk(v, path + [i])
        else:
            paths.append(path)
    walk(doc, [])
    path = data.draw(st.sampled_from(paths))
    value = data.draw(junk)
    node = doc
    for k in path[:-1]:
        node = node[k]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    try:
        sc = parse_scenario(doc, path=tmp_path / "fuzz.toml")
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert sc.loops and sc.waves


# --------------------------------------------------------------------------- draws


def test_distributions_have_their_means():
    rng = np.random.default_rng(0)
    for dist, params in [("const", {"value": 7.0}), ("uniform", {"low": 10.0, "high": 30.0}),
                         ("exponential", {"mean": 20.0}), ("lognormal", {"mean": 45.0, "sd": 15.0}),
                         ("triangular", {"low": 10.0, "mode": 20.0, "high": 60.0}),
                         ("normal", {"mean": 50.0, "sd": 5.0})]:
        d = Distribution(dist, params)
        x = d.draw(rng, 40_000)
        assert x.min() >= 0
        assert x.mean() == pytest.approx(d.mean, rel=0.03), dist


def test_arrivals_follow_the_waves_and_the_mix(tmp_path):
    sc = load_scenario(write(tmp_path, BASE.replace('mix = "zipf"', 'mix = "split"')))
    p = draw_parcels(sc, np.random.default_rng(1))
    a = p.arrival_s
    assert np.all(np.diff(a) >= 0) and a.min() >= 0 and a.max() < sc.shift_s
    n_a = np.sum(a < 1800)
    n_b = np.sum(a >= 1800)
    assert abs(n_a - 2500) < 5 * np.sqrt(2500)
    assert abs(n_b - 2000) < 5 * np.sqrt(2000)
    assert np.array_equal(p.wave, (a >= 1800).astype(np.int16))
    # 70/20/10: the first 20% of destinations get about 70% of parcels
    n_codes = len(p.codes)
    top = np.sum((p.dest >= 0) & (p.dest < round(0.2 * n_codes))) / len(p)
    assert top == pytest.approx(0.7, abs=0.03)
    assert p.no_read.mean() == pytest.approx(0.01, abs=0.005)
    # inducts share by max rate (equal here)
    assert np.bincount(p.induct)[0] / len(p) == pytest.approx(0.5, abs=0.04)


def test_batched_arrivals_come_in_truckloads(tmp_path):
    text = BASE.replace("rate_per_hour = 5000",
                        'rate_per_hour = 5000\narrivals = "batched"\nbatch_size = 100\n'
                        "unload_per_hour = 3600")
    sc = load_scenario(write(tmp_path, text))
    p = draw_parcels(sc, np.random.default_rng(4))
    first = p.wave == 0
    t = p.arrival_s[first]
    # whole truckloads (the shift outlasts every unload), each truck 1 s per parcel on one induct:
    # the parcels of one truck share the fractional part of their arrival times
    assert len(t) % 100 == 0 and len(t) > 0
    frac = np.round(t % 1.0, 9)
    keys, counts = np.unique(frac, return_counts=True)
    assert len(keys) == len(t) // 100 and np.all(counts == 100)
    for key in keys:
        assert len(set(p.induct[first][frac == key].tolist())) == 1


def test_same_seed_same_draws(tmp_path):
    sc = load_scenario(write(tmp_path, BASE))
    a = draw_parcels(sc, np.random.default_rng(9))
    b = draw_parcels(sc, np.random.default_rng(9))
    for f in ("arrival_s", "loop", "induct", "dest", "no_read", "sortable", "wave"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    fa = draw_floor_events(sc, 0, len(a), np.random.default_rng(2))
    fb = draw_floor_events(sc, 0, len(a), np.random.default_rng(2))
    assert np.array_equal(fa.change_s, fb.change_s) and np.array_equal(fa.block_start_s, fb.block_start_s)
    # the scheduled blockage is there, with its duration
    k = sc.loops[0].layout.chutes.index("C010")
    m = fa.block_chute == k
    assert np.any(np.isclose(fa.block_start_s[m], 720.0) & np.isclose(fa.block_end_s[m], 1020.0))


def test_scenarios_pickle_for_process_pools(tmp_path):
    import pickle

    from sorter.sim import compute_kpis, simulate
    sc = load_scenario(write(tmp_path, BASE))
    sc.shift_hours = 0.25
    back = pickle.loads(pickle.dumps(sc))
    a, b = compute_kpis(simulate(sc, seed=1)), compute_kpis(simulate(back, seed=1))
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b

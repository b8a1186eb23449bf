"""Capacity sweeps (sorter.sweep) and `sorter sweep`: points, determinism, backends, errors."""
from __future__ import annotations

import copy
import math
import statistics
import subprocess
import sys
import tomllib

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings, strategies as st

from sorter.cli import main
from sorter.errors import InputError
from sorter.resources import seed_path
from sorter.sim import compute_kpis, parse_scenario, simulate
from sorter import sweep as sw
from sorter.sweep import capacity_sweep, mean_ci, parse_key, parse_values, set_key, t_quantile

SMALL = seed_path("scenarios/small.toml")
SHORT = {"scenario.shift_hours": 0.1}          # 6 simulated minutes: a few ms per run
VARY = {"wave.0.rate_per_hour": [3000, 7000, 11000], "loop.speed_mps": [2.0, 2.5]}


def _doc(path=SMALL):
    with open(path, "rb") as fh:
        return tomllib.load(fh)


@pytest.fixture(scope="module")
def serial():
    return capacity_sweep(SMALL, VARY, seeds=2, overrides=SHORT, n_workers=1)


def test_points_are_the_product_times_seeds(serial):
    assert len(serial.rows) == 3 * 2 * 2
    assert serial.points == [{"wave.0.rate_per_hour": r, "loop.speed_mps": s}
                             for r in (3000, 7000, 11000) for s in (2.0, 2.5)]
    base_seed = _doc()["scenario"]["seed"]
    assert serial.seeds == [base_seed, base_seed + 1]
    for i, row in enumerate(serial.rows):
        p, j = divmod(i, 2)
        assert row["point"] == p and row["seed"] == serial.seeds[j]
        assert {k: row[k] for k in VARY} == serial.points[p]
        # the varied speed reached the layout: nameplate = speed x 3600 / pitch (0.8 m)
        assert row["nameplate_per_hour"] == pytest.approx(row["loop.speed_mps"] * 3600 / 0.8)
        assert row["shift_hours"] == pytest.approx(0.1)
        # conservation holds in every row
        assert row["inducted"] == row["sorted"] + row["rejected"] + row["on_loop_at_end"]
        assert row["rejected"] == sum(v for k, v in row.items() if k.startswith("rejected_"))


def test_rows_match_a_direct_simulation(serial):
    """Oracle: edit the TOML document by hand, parse, simulate, compute the KPIs."""
    for i in (0, 5, 9):
        row = serial.rows[i]
        doc = _doc()
        doc["scenario"]["shift_hours"] = 0.1
        doc["wave"][0]["rate_per_hour"] = row["wave.0.rate_per_hour"]
        doc["loop"]["speed_mps"] = row["loop.speed_mps"]
        k = compute_kpis(simulate(parse_scenario(doc, path=SMALL), seed=row["seed"]))
        for name in ("offered", "inducted", "sorted", "rejected", "sorted_per_hour",
                     "recirculation_pct", "induct_to_chute_s_p95", "induct_blocking_pct"):
            assert row[name] == k[name], name
        assert row["rejected_no_read"] == k["rejects_by_reason"]["no_read"]


def test_higher_offered_load_offers_more(serial):
    summ = serial.summary()
    for speed in VARY["loop.speed_mps"]:
        offered = [s["offered_mean"] for s in summ if s["loop.speed_mps"] == speed]
        assert offered == sorted(offered) and len(set(offered)) == len(offered)
        assert offered[-1] > 2 * offered[0]


def test_deterministic_and_backends_agree(serial):
    again = capacity_sweep(SMALL, VARY, seeds=2, overrides=SHORT, n_workers=1)
    assert again.rows == serial.rows
    pool = capacity_sweep(SMALL, VARY, seeds=2, overrides=SHORT, n_workers=2)
    assert pool.backend == "processes"
    assert pool.rows == serial.rows
    from dask.distributed import Client, LocalCluster
    with LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dk = capacity_sweep(SMALL, VARY, seeds=2, overrides=SHORT, client=client)
    assert dk.backend == "dask"
    assert dk.rows == serial.rows


def test_explicit_seeds_and_dict_input():
    doc = _doc()
    res = capacity_sweep(doc, {"loop.speed_mps": [2.0]}, seeds=[5, 3], overrides=SHORT,
                         base_dir=SMALL.parent, n_workers=1)
    assert [r["seed"] for r in res.rows] == [5, 3]
    assert doc == _doc()                       # the caller's document is not modified
    ref = capacity_sweep(SMALL, {"loop.speed_mps": [2.0]}, seeds=[3], overrides=SHORT,
                         n_workers=1)
    assert res.rows[1] == {**ref.rows[0]}


@pytest.mark.parametrize("key, near", [
    ("wave.0.rate_per_hr", "wave.0.rate_per_hour"),
    ("loop.sped_mps", "loop.speed_mps"),
    ("loops.0.speed_mps", "loop.speed_mps"),
    ("wave.rate_per_hour", "wave.0.rate_per_hour"),
    ("loop.0.speed_mps", "loop.speed_mps"),
    ("wave.4.rate_per_hour", "0 to 0"),
    ("scan.no_read", "scan.no_read_rate"),
    ("scenario.seed", "seeds"),
])
def test_bad_key_names_it_and_the_nearest(key, near, monkeypatch):
    def boom(task):
        raise AssertionError("no point may run before every key is validated")
    monkeypatch.setattr(sw, "_run_point", boom)
    with pytest.raises(InputError) as ei:
        capacity_sweep(SMALL, {"loop.speed_mps": [2.0], key: [1]}, seeds=1, overrides=SHORT,
                       n_workers=1)
    msg = str(ei.value)
    assert key in msg and near in msg
    assert ei.value.field == key


def test_bad_value_at_a_late_point_fails_before_any_run(monkeypatch):
    def boom(task):
        raise AssertionError("no point may run before every point is validated")
    monkeypatch.setattr(sw, "_run_point", boom)
    with pytest.raises(InputError) as ei:
        capacity_sweep(SMALL, {"wave.0.rate_per_hour": [3000, 4000],
                               "loop.speed_mps": [2.0, 2.5, 0.0]}, seeds=3, overrides=SHORT,
                       n_workers=1)
    assert "loop.speed_mps" in str(ei.value) and "point 2" in str(ei.value)


def test_new_but_valid_key_is_accepted():
    assert "capacity" not in _doc()["containers"]
    res = capacity_sweep(SMALL, {"containers.capacity": [3, 200]}, seeds=1, overrides=SHORT,
                         n_workers=1)
    full = [r["chute_full_events_per_hour"] for r in res.rows]
    assert full[0] > full[1]                   # small containers fill more often


@pytest.mark.parametrize("kwargs", [dict(seeds=0), dict(seeds=[1, 1]), dict(seeds=[-1]),
                                    dict(n_workers=0), dict(client=object()),
                                    dict(overrides={"loop.speed_mps": -1})])
def test_bad_arguments(kwargs):
    kw = dict(seeds=1, overrides=SHORT, n_workers=1) | kwargs
    with pytest.raises(InputError):
        capacity_sweep(SMALL, {"loop.speed_mps": [2.0]}, **kw)


def test_empty_or_duplicate_vary():
    for vary in ({"loop.speed_mps": []}, {"loop.speed_mps": [2.0], "loop[0].x": [1]},
                 {"wave.0.rate_per_hour": [1], "wave[0].rate_per_hour": [2]}, ["loop.speed_mps"]):
        with pytest.raises(InputError):
            capacity_sweep(SMALL, vary, seeds=1, overrides=SHORT, n_workers=1)


def test_hub_keys():
    doc = _doc(seed_path("scenarios/hub.toml"))
    set_key(doc, "loop.1.speed_mps", 3.0)
    assert doc["loop"][1]["speed_mps"] == 3.0
    set_key(doc, "loop[2].n_chutes", 100)
    assert doc["loop"][2]["n_chutes"] == 100
    with pytest.raises(InputError, match="loop.0.speed_mps"):
        set_key(copy.deepcopy(doc), "loop.speed_mps", 3.0)


def test_parse_key_and_values():
    assert parse_key("a[2].b.3") == ("a", 2, "b", 3)
    for bad in ("", "a..b", ".a"):
        with pytest.raises(InputError):
            parse_key(bad)
    assert parse_values("1,2,3") == [1, 2, 3]
    assert parse_values("2.0:3.0:0.5") == [2.0, 2.5, 3.0]
    assert parse_values("[1, 2],[3, 4]") == [[1, 2], [3, 4]]
    assert parse_values('zipf,"split",true') == ["zipf", "split", True]
    for bad in ("", "1,,2", "5:1:1", "1:5:0"):
        with pytest.raises(InputError):
            parse_values(bad)


# published two-sided 95% critical values of Student's t (t_{0.975, df})
T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 9: 2.2622, 10: 2.2281,
        19: 2.0930, 29: 2.0452, 30: 2.0423, 60: 2.0003, 120: 1.9799, 100000: 1.9600}


def test_t_quantile_against_tables():
    for df, t in T975.items():
        assert t_quantile(0.975, df) == pytest.approx(t, abs=6e-4), df
    assert t_quantile(0.95, 10) == pytest.approx(1.8125, abs=2e-4)
    assert t_quantile(0.025, 7) == pytest.approx(-t_quantile(0.975, 7))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=30))
def test_mean_ci_matches_the_formula(xs):
    m, h = mean_ci(xs)
    assert m == pytest.approx(statistics.fmean(xs), rel=1e-9, abs=1e-6)
    expect = t_quantile(0.975, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))
    assert h == pytest.approx(expect, rel=1e-6, abs=1e-6)


def test_summary(serial):
    summ = serial.summary()
    assert len(summ) == len(serial.points)
    for s in summ:
        vals = [r["sorted_per_hour"] for r in serial.rows if r["point"] == s["point"]]
        assert s["n_seeds"] == 2
        assert s["sorted_per_hour_mean"] == pytest.approx(statistics.fmean(vals))
        assert s["sorted_per_hour_ci95"] == pytest.approx(
            12.7062 * statistics.stdev(vals) / math.sqrt(2), rel=1e-4)
    one = capacity_sweep(SMALL, {"loop.speed_mps": [2.0]}, seeds=1, overrides=SHORT,
                         n_workers=1).summary()
    assert math.isnan(one[0]["sorted_per_hour_ci95"])
    text = serial.format_table()
    assert "sorted/h" in text and len(text.splitlines()) == 4 + len(serial.points)


def test_cli_writes_the_named_files(tmp_path, capsys):
    out = tmp_path / "sw"
    rc = main(["sweep", str(SMALL), "--vary", "wave.0.rate_per_hour=3000,9000",
               "--vary", "loop.speed_mps=2.0:2.5:0.5", "--set", "scenario.shift_hours=0.1",
               "--seeds", "2", "--workers", "1", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "sorted/h" in text and "sweep.parquet" in text
    table = pq.read_table(out / "sweep.parquet")
    assert table.num_rows == 2 * 2 * 2
    assert {"point", "seed", "wave.0.rate_per_hour", "loop.speed_mps", "sorted_per_hour",
            "recirculation_pct", "induct_to_chute_s_p95"} <= set(table.column_names)
    summary = pcsv.read_csv(out / "summary.csv")
    assert summary.num_rows == 4
    assert {"sorted_per_hour_mean", "sorted_per_hour_ci95", "n_seeds"} <= set(summary.column_names)
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_key_is_one_line(capsys):
    rc = main(["sweep", str(SMALL), "--vary", "loop.sped_mps=2,3", "--workers", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "loop.sped_mps" in err and "loop.speed_mps" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["sweep", str(SMALL), "--vary", "loop.speed_mps"]) == 2


def test_dask_is_imported_only_when_asked(tmp_path):
    code = ("import sys; from sorter.sweep import capacity_sweep; "
            f"capacity_sweep({str(SMALL)!r}, {{'loop.speed_mps': [2.0]}}, seeds=1, "
            "overrides={'scenario.shift_hours': 0.05}, n_workers=1); "
            "assert not any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules)")
    # run outside the repo root, whose sorter/ source folder would shadow the installed package
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=tmp_path)


def test_a_shorter_shift_drops_the_waves_and_blockages_that_start_after_it():
    """The default shift has four clock-time waves (14:00-22:00) and a blockage at 2 h: a
    point at 1.5 h keeps the first two waves, runs, and offers only what they offer."""
    path = seed_path("scenarios/default.toml")
    res = capacity_sweep(path, {"scenario.shift_hours": [0.25, 1.5]}, seeds=1, n_workers=1)
    short, longer = res.rows
    assert short["shift_hours"] == 0.25 and longer["shift_hours"] == 1.5
    doc = _doc(path)
    doc["scenario"]["shift_hours"] = 1.5
    doc["wave"] = doc["wave"][:2]                     # ramp-up 14:00-15:00, peak from 15:00
    doc["blockages"]["scheduled"] = [b for b in doc["blockages"]["scheduled"]
                                     if b["start_h"] < 1.5]
    k = compute_kpis(simulate(parse_scenario(doc, path=path), seed=longer["seed"]))
    assert longer["offered"] == k["offered"] and longer["sorted"] == k["sorted"]
    with pytest.raises(InputError, match="starts after the shift ends"):
        doc = _doc(path)
        doc["scenario"]["shift_hours"] = 1.5              # a file as written still must agree
        parse_scenario(doc, path=path)

"""Robot-floor capacity sweeps (sorter.floor_sweep, ``sorter sweep FLOOR``): rows against
``sorter mapf --json`` runs, backends, summaries, errors and the command line."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sorter.errors import InputError
from sorter.floor_sweep import floor_sweep
from sorter.layout import Floor
from sorter.resources import seed_path
from sorter.sweep import mean_ci

SMALL = seed_path("floors/small_12x20.txt")
VARY = {"robots": [6, 12], "fault_rate": [0.0, 0.01]}
FIXED = {"steps": 150}


@pytest.fixture(scope="module")
def serial():
    return floor_sweep(SMALL, VARY, seeds=2, overrides=FIXED, n_workers=1)


def _mapf_json(*args):
    r = subprocess.run([sys.executable, "-m", "sorter", "mapf", str(SMALL), "--scenario",
                        "sorting", "--json", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_rows_are_what_sorter_mapf_reports(serial):
    assert [(r["robots"], r["fault_rate"], r["seed"]) for r in serial.rows] == [
        (6, 0.0, 0), (6, 0.0, 1), (6, 0.01, 0), (6, 0.01, 1),
        (12, 0.0, 0), (12, 0.0, 1), (12, 0.01, 0), (12, 0.01, 1)]
    for row in (serial.rows[3], serial.rows[4]):          # an independent path: the CLI
        k = _mapf_json("--robots", str(row["robots"]), "--steps", "150", "--seed",
                       str(row["seed"]), "--fault-rate", str(row["fault_rate"]))
        for key in ("net_sorted_per_hour", "sorted_per_hour", "tasks_per_step",
                    "induct_to_drop_p95", "chute_full_events", "robot_faults", "parcels_rejected"):
            assert row[key] == pytest.approx(k[key]), key
        for state, share in k["robot_utilisation"].items():
            assert row[f"util_{state}"] == pytest.approx(share)
        assert row["net_sorted_per_robot_hour"] == pytest.approx(
            k["net_sorted_per_hour"] / row["robots"])
    assert any(r["robot_faults"] > 0 for r in serial.rows if r["fault_rate"] > 0)
    assert all(r["robot_faults"] == 0 for r in serial.rows if r["fault_rate"] == 0)


def test_backends_agree(serial):
    pool = floor_sweep(SMALL, VARY, seeds=2, overrides=FIXED, n_workers=2)
    assert pool.backend == "processes" and pool.rows == serial.rows
    from dask.distributed import Client, LocalCluster
    with LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dk = floor_sweep(SMALL, {"robots": [6]}, seeds=2, overrides=FIXED, client=client)
    assert dk.backend == "dask"
    assert dk.rows == [{k: v for k, v in r.items() if k != "fault_rate"} for r in serial.rows[:2]]


def test_summary_and_table(serial, tmp_path):
    summ = serial.summary()
    assert len(summ) == 4 and all(s["n_seeds"] == 2 for s in summ)
    for s in summ:
        vals = [r["net_sorted_per_hour"] for r in serial.rows if r["point"] == s["point"]]
        m, h = mean_ci(vals)
        assert s["net_sorted_per_hour_mean"] == pytest.approx(m)
        assert s["net_sorted_per_hour_ci95"] == pytest.approx(h, nan_ok=True)
    text = serial.format_table()
    assert "per robot-h" in text and "4 points x 2 seeds = 8 runs" in text
    assert serial.kind == "floor"
    png = serial.plot(tmp_path / "s.png")
    assert png.stat().st_size > 1000


def test_errors_before_any_run():
    with pytest.raises(InputError, match="robots"):
        floor_sweep(SMALL, {"robot": [1]})
    with pytest.raises(InputError) as e:
        floor_sweep(SMALL, {"robots": [5]}, overrides={"steps": 10, "repair_dist": "weibull"})
    assert e.value.field == "repair_dist"
    with pytest.raises(InputError) as e:
        floor_sweep(SMALL, {"robots": [5, 100000]})
    assert e.value.field == "robots" and "do not fit" in str(e.value)
    with pytest.raises(InputError, match="both varied and fixed"):
        floor_sweep(SMALL, {"steps": [5]}, overrides={"steps": 10})
    with pytest.raises(InputError, match="point 1"):
        floor_sweep(SMALL, {"fault_rate": [0.0, 3.0]}, overrides={"steps": 5}, n_workers=1)
    with pytest.raises(InputError, match="inducts"):
        floor_sweep(Floor.from_ascii("....\n...."), {"robots": [1]})
    with pytest.raises(InputError, match="nothing to vary"):
        floor_sweep(SMALL, {})


def test_cli_floor_sweep(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sorter", "sweep", str(SMALL), "--vary",
                        "robots=4:8:4", "--vary", "mix=721,zipf", "--set", "steps=60",
                        "--seeds", "2", "--workers", "1", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "sorted/h ± 95% CI" in r.stdout and "4 points x 2 seeds" in r.stdout
    for name in ("sweep.parquet", "summary.csv", "sweep.png"):
        assert (tmp_path / "o" / name).is_file()
    import pyarrow.parquet as pq
    t = pq.read_table(tmp_path / "o" / "sweep.parquet").to_pylist()
    assert [row["mix"] for row in t][:4] == ["721", "721", "zipf", "zipf"]
    bad = subprocess.run([sys.executable, "-m", "sorter", "sweep", str(SMALL), "--vary",
                          "robots=4", "--set", "rotation=maybe"], capture_output=True, text=True)
    assert bad.returncode != 0 and "rotation" in bad.stderr and "Traceback" not in bad.stderr


def test_numpy_values_as_a_user_would_pass_them():
    import numpy as np
    res = floor_sweep(SMALL, {"robots": np.arange(4, 9, 4), "fault_rate": np.array([0.0, 0.01]),
                              "rotation": np.array([False])}, seeds=1, overrides={"steps": 20},
                      n_workers=1)
    assert [(p["robots"], p["fault_rate"]) for p in res.points] == [
        (4, 0.0), (4, 0.01), (8, 0.0), (8, 0.01)]
    assert all(type(p["robots"]) is int and type(p["fault_rate"]) is float
               and type(p["rotation"]) is bool for p in res.points)

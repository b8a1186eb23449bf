"""Capacity-sweep wall time: serial (baseline) vs the local process pool vs Dask (LocalCluster),
on the same sweep in the same run; every backend must give the same rows.

    pytest bench/bench_sweep.py --benchmark-only

The sweep: the 8-hour benchmark shift (`seeds/scenarios/bench_8h.toml`: 400 m loop, 667
carriers, 400 chutes, ~110,000 parcels at 14,000/h) with the offered rate at 4 values x
the loop speed at 2 values x 2 seeds = 16 shifts. The pool is started inside the timed call
(what a user pays); the Dask LocalCluster (2 worker processes, 1 thread each) is started
once outside the timing, as a user's cluster would be, and its start-up time is reported.
"""
from __future__ import annotations

import os
import time

import pytest

from conftest import DISABLED, record, timing
from sorter.resources import seed_path
from sorter.sweep import capacity_sweep

SCENARIO = seed_path("scenarios/bench_8h.toml")
VARY = {"wave.0.rate_per_hour": [10000, 12000, 14000, 16000], "loop.speed_mps": [2.0, 2.5]}
SEEDS = 2
WORKERS = min(2, os.cpu_count() or 1)
TIMES: dict = {}
ROWS: dict = {}
CPU: dict = {}    # workers' CPU seconds for simulate + KPIs (last round; process-wide in Dask)


def _sweep(**kw):
    return capacity_sweep(SCENARIO, VARY, seeds=SEEDS, **kw)


def _run(benchmark, name, **kw):
    res = benchmark.pedantic(lambda: _sweep(**kw), rounds=3, iterations=1, warmup_rounds=0)
    TIMES[name] = timing(benchmark, "min")             # None under --benchmark-disable
    ROWS[name] = res.rows
    CPU[name] = sum(res.run_cpu_s)
    return res


@pytest.mark.benchmark(group="sweep")
def test_sweep_serial(benchmark):
    res = _run(benchmark, "serial", n_workers=1)
    assert res.backend == "serial" and len(res.rows) == 4 * 2 * SEEDS
    if TIMES["serial"] is None:
        record("sweep serial", DISABLED)
        return
    per_run = sum(res.run_wall_s) / len(res.run_wall_s)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    record("sweep serial", f"{len(res.rows)} 8-hour shifts in {TIMES['serial']:.2f} s, run CPU "
                           f"{CPU['serial']:.2f} s (simulate alone {per_run * 1e3:.0f} ms per "
                           f"shift; the rest is KPIs); load average {load}")


@pytest.mark.benchmark(group="sweep")
def test_sweep_process_pool(benchmark):
    res = _run(benchmark, "pool", n_workers=WORKERS)
    assert res.backend == "processes"
    if "serial" in ROWS:
        assert res.rows == ROWS["serial"]
        if TIMES["pool"] is None or TIMES["serial"] is None:
            record("sweep process pool", DISABLED)
            return
        record("sweep process pool", f"{WORKERS} workers {TIMES['pool']:.2f} s, "
                                     f"x{TIMES['serial'] / TIMES['pool']:.2f} vs serial, run CPU "
                                     f"{CPU['pool']:.2f} s")


@pytest.mark.benchmark(group="sweep")
def test_sweep_dask_local(benchmark):
    distributed = pytest.importorskip("dask.distributed")
    t0 = time.perf_counter()
    with distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        start = time.perf_counter() - t0
        _sweep(client=client)                     # warm the workers' imports
        res = _run(benchmark, "dask", client=client)
    assert res.backend == "dask"
    if "serial" in ROWS:
        assert res.rows == ROWS["serial"]
        if TIMES["dask"] is None or TIMES["serial"] is None:
            record("sweep dask LocalCluster", DISABLED)
            return
        record("sweep dask LocalCluster", f"{WORKERS} workers {TIMES['dask']:.2f} s, "
                                          f"x{TIMES['serial'] / TIMES['dask']:.2f} vs serial, "
                                          f"worker CPU {CPU['dask']:.2f} s "
                                          f"(cluster start-up {start:.1f} s, not timed)")

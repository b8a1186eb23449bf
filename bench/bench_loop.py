"""Loop-sorter shift simulation speed: the compiled simulation (sorter.sim.simulate) against
the independent SimPy model of the same sorter (tests/simpy_loop.py), in the same run.

    pytest bench/bench_loop.py --benchmark-only

Shifts:
* ``bench_8h``: 400 m loop at 2.5 m/s, 0.6 m pitch (15,000 items/h nameplate, 667 carriers),
  6 automatic inducts, 400 chutes, offered 14,000 items/h for 8 hours (~112,000 parcels);
* ``hub``: three loops fed from one stream, up to 40,000 items/h, a 16-hour day (~527,000 parcels);
  its baseline is the same SimPy model of the three loops (since session 19).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import DISABLED, record, timing
from simpy_loop import simulate_simpy
from sorter.resources import seed_path
from sorter.sim import compute_kpis, load_scenario, simulate
from sorter.sim.arrivals import draw_parcels
from sorter.sim.loop import prepare_loop

BENCH = load_scenario(seed_path("scenarios/bench_8h.toml"))
HUB = load_scenario(seed_path("scenarios/hub.toml"))
RESULTS: dict = {}


def _figures(k):
    return {"offered": k["offered"], "sorted": k["sorted"], "sorted_per_hour": round(k["sorted_per_hour"]),
            "recirculation_pct": round(k["recirculation_pct"], 2),
            "induct_blocking_pct": round(k["induct_blocking_pct"], 2)}


@pytest.mark.benchmark(group="loop-8h")
def test_shift_8h_compiled(benchmark):
    simulate(BENCH)                                   # warm caches (imports, plan compile)
    res = benchmark.pedantic(simulate, args=(BENCH,), rounds=5, iterations=1)
    k = compute_kpis(res)
    RESULTS["compiled"] = timing(benchmark)            # None under --benchmark-disable
    benchmark.extra_info.update(_figures(k))
    # the tick loop alone (arrivals and set-up excluded)
    times = []
    for _ in range(5):                                # min of 5: the 2 cores are shared
        rng = np.random.default_rng(BENCH.seed)
        parcels = draw_parcels(BENCH, rng)
        _, kernel, _, _ = prepare_loop(BENCH, 0, parcels, rng)
        t0 = time.perf_counter()
        kernel.run(kernel.n_ticks)
        times.append(time.perf_counter() - t0)
    RESULTS["kernel_only"] = min(times)
    benchmark.extra_info["kernel_only_s"] = RESULTS["kernel_only"]


@pytest.mark.benchmark(group="loop-8h")
def test_shift_8h_simpy(benchmark):
    res = benchmark.pedantic(simulate_simpy, args=(BENCH, BENCH.seed), rounds=1, iterations=1)
    RESULTS["simpy"] = timing(benchmark)
    benchmark.extra_info.update({"offered": res.offered, "sorted": res.sorted,
                                 "sorted_per_hour": round(res.sorted_per_hour),
                                 "recirculation_pct": round(res.recirculation_pct, 2)})
    if RESULTS["simpy"] is None or RESULTS.get("compiled", 0) is None:    # --benchmark-disable
        record("loop 8-hour shift", DISABLED)
    elif "compiled" in RESULTS:
        ratio = RESULTS["simpy"] / RESULTS["compiled"]
        record("loop 8-hour shift",
               f"compiled {RESULTS['compiled'] * 1e3:.0f} ms (tick loop alone, min of 5: "
               f"{RESULTS['kernel_only'] * 1e3:.0f} ms), SimPy {RESULTS['simpy']:.1f} s: "
               f"{ratio:.0f}x faster; SimPy sorted {res.sorted_per_hour:,.0f}/h, "
               f"recirculation {res.recirculation_pct:.2f} %")


@pytest.mark.benchmark(group="loop-hub")
def test_hub_day_compiled(benchmark):
    res = benchmark.pedantic(simulate, args=(HUB,), rounds=3, iterations=1)
    k = compute_kpis(res)
    benchmark.extra_info.update(_figures(k))
    RESULTS["hub_compiled"] = timing(benchmark)
    if RESULTS["hub_compiled"] is None:                # --benchmark-disable
        record("hub day (3 loops, 16 h)", DISABLED)
        return
    record("hub day (3 loops, 16 h)",
           f"{RESULTS['hub_compiled']:.2f} s for {k['offered']:,} parcels, sorted "
           f"{k['sorted_per_hour']:,.0f}/h")


@pytest.mark.benchmark(group="loop-hub")
def test_hub_day_simpy(benchmark):
    """Baseline of the hub day: the SimPy model (tests/simpy_loop.py) of the same three loops,
    same seed, one round (tens of seconds)."""
    res = benchmark.pedantic(simulate_simpy, args=(HUB, HUB.seed), rounds=1, iterations=1)
    RESULTS["hub_simpy"] = timing(benchmark)
    benchmark.extra_info.update({"offered": res.offered, "sorted": res.sorted,
                                 "sorted_per_hour": round(res.sorted_per_hour),
                                 "recirculation_pct": round(res.recirculation_pct, 2)})
    if RESULTS["hub_simpy"] is None or RESULTS.get("hub_compiled", 0) is None:
        record("hub day vs SimPy", DISABLED)
    elif "hub_compiled" in RESULTS:
        c, s = RESULTS["hub_compiled"], RESULTS["hub_simpy"]
        record("hub day vs SimPy", f"compiled {c:.2f} s, SimPy {s:.1f} s: {s / c:.0f}x faster; "
                                   f"SimPy sorted {res.sorted_per_hour:,.0f}/h")

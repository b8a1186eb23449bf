"""Chute engine speed: one `assign` from Python, and `assign_many` batches, each against the
plain-Python reference (tests/naive.py) in the same run.

    pytest bench/bench_chutes.py --benchmark-only
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import DISABLED, record, timing
from naive import NaiveSorter
from sorter import Sorter
from sorter.resources import seed_path

RESULTS: dict = {}


def _setup():
    s = Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))
    plan = s.sort_plan
    ref = NaiveSorter(plan.routes, {c.id: (c.kind, c.capacity) for c in s.chute_table},
                      plan.reject, plan.overflow, plan.strategy, plan.max_recirculation)
    rng = np.random.default_rng(1)
    dests = list(plan.routes)
    w = 1.0 / np.arange(1, len(dests) + 1) ** 0.8
    codes = [dests[i] for i in rng.choice(len(dests), 1_000_000, p=w / w.sum())]
    for i in rng.choice(len(codes), 15_000, replace=False):       # 1.5% no-reads
        codes[i] = None
    # a realistic moment of the shift: some chutes full, one blocked
    for k, c in enumerate(s.chute_ids[:300:7]):
        for target in (s, ref):
            target.set_state(c, "full" if k % 3 else "blocked")
    return s, ref, codes


S, REF, CODES = _setup()


def _per_call_stats(fn, codes, n=100_000):
    """Median and p99 of single calls (ns), each timed alone, minus the timer's own cost."""
    pc = time.perf_counter_ns
    empty = np.empty(n)
    for i in range(n):
        t0 = pc()
        empty[i] = pc() - t0
    times = np.empty(n)
    for i in range(n):
        d = codes[i]
        t0 = pc()
        fn(d)
        times[i] = pc() - t0
    overhead = float(np.median(empty))
    return (float(np.median(times)) - overhead, float(np.percentile(times, 99)) - overhead)


@pytest.mark.benchmark(group="assign-single")
def test_assign_single_engine(benchmark):
    chunk = CODES[:1000]
    assign = S.assign

    def run():
        for d in chunk:
            assign(d)
    benchmark.pedantic(run, rounds=200, iterations=1)
    med, p99 = _per_call_stats(assign, CODES)
    RESULTS["single_engine"] = (med, p99)
    benchmark.extra_info.update(median_ns_per_call=med, p99_ns_per_call=p99)


@pytest.mark.benchmark(group="assign-single")
def test_assign_single_reference(benchmark):
    chunk = CODES[:1000]
    assign = REF.assign

    def run():
        for d in chunk:
            assign(d)
    benchmark.pedantic(run, rounds=50, iterations=1)
    med, p99 = _per_call_stats(assign, CODES, n=20_000)
    RESULTS["single_ref"] = (med, p99)
    benchmark.extra_info.update(median_ns_per_call=med, p99_ns_per_call=p99)
    if "single_engine" in RESULTS:
        e = RESULTS["single_engine"]
        record("assign (one call from Python)",
               f"engine median {e[0]:.0f} ns, p99 {e[1]:.0f} ns; reference median {med:.0f} ns, "
               f"p99 {p99:.0f} ns; speed-up x{med / e[0]:.1f}")


@pytest.mark.benchmark(group="assign-batch")
def test_assign_many_engine(benchmark):
    ids = S.destination_ids(CODES)
    rc = np.zeros(len(ids), dtype=np.int32)
    benchmark.pedantic(S.assign_many, args=(ids, rc), rounds=20, iterations=1)
    med = timing(benchmark)
    if med is None:                                   # --benchmark-disable
        RESULTS["batch_engine"] = None
        return
    rate = len(ids) / med
    RESULTS["batch_engine"] = rate
    benchmark.extra_info["decisions_per_s"] = rate


@pytest.mark.benchmark(group="assign-batch")
def test_assign_many_reference(benchmark):
    codes = CODES[:100_000]
    assign = REF.assign

    def run():
        for d in codes:
            assign(d, 0, True)
    benchmark.pedantic(run, rounds=3, iterations=1)
    med = timing(benchmark)
    if med is None or RESULTS.get("batch_engine", 0) is None:     # --benchmark-disable
        record("assign_many (batch of 1,000,000)", DISABLED)
        return
    rate = len(codes) / med
    benchmark.extra_info["decisions_per_s"] = rate
    if "batch_engine" in RESULTS:
        e = RESULTS["batch_engine"]
        record("assign_many (batch of 1,000,000)",
               f"engine {e / 1e6:.1f} M decisions/s; reference {rate / 1e6:.2f} M/s; "
               f"speed-up x{e / rate:.0f}")

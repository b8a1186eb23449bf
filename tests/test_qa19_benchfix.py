"""QA session 19 (benchfix): the benchmarks under ``--benchmark-disable``, and the new baselines.

* ``pytest bench/<file>.py --benchmark-disable`` (pytest-benchmark's smoke mode: every
  benchmarked function runs once, ``benchmark.stats`` is None) crashed in nearly every
  benchmark with ``AttributeError: 'NoneType' object has no attribute 'stats'``: the code read
  ``benchmark.stats.stats.median`` for its ratios. Now every file goes through
  ``bench/conftest.py``'s ``timing()`` (None when disabled) and records ``DISABLED``.
* New same-run baselines: parse_line against a plain ``str.split`` parser, the preprocessing
  against a NumPy BFS per goal (equal values asserted), the hub day against SimPy, the step time
  against the plain-Python PIBT.

The bench modules are loaded here with a fake ``benchmark`` fixture (disabled: ``stats`` None;
enabled: fixed stats, to hold the printed format), except one real run of pytest-benchmark.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def conf(monkeypatch):
    """A fresh bench/conftest.py, installed as ``conftest`` while bench modules import it."""
    if not (BENCH / "conftest.py").exists():
        pytest.skip("bench/ not present")
    mod = _load("qa19_benchfix_conftest", BENCH / "conftest.py")
    monkeypatch.setitem(sys.modules, "conftest", mod)
    return mod


@pytest.fixture
def load(conf):
    def f(file):
        return _load(f"qa19_benchfix_{file}", BENCH / f"{file}.py")
    return f


class FakeBenchmark:
    """What pytest-benchmark's fixture gives: disabled (``stats`` None, the body run once,
    setup called once) or enabled with fixed statistics (seconds)."""

    def __init__(self, median=None, data=None):
        self.extra_info = {}
        self.calls = 0
        if median is None:
            self.disabled, self.stats = True, None
        else:
            self.disabled = False
            st = SimpleNamespace(median=median, min=median, data=data or [median] * 3)
            self.stats = SimpleNamespace(stats=st)

    def pedantic(self, target, args=(), kwargs=None, setup=None, teardown=None, rounds=1,
                 warmup_rounds=0, iterations=1):
        kwargs = kwargs or {}
        if setup is not None:
            got = setup()
            if got:
                args, kwargs = got
        self.calls += 1
        return target(*args, **kwargs)

    def __call__(self, fn, *args, **kwargs):
        self.calls += 1
        return fn(*args, **kwargs)


def test_no_bench_file_reads_benchmark_stats_directly():
    """The AttributeError's source: ``benchmark.stats`` read outside ``timing()``."""
    files = sorted(BENCH.glob("bench_*.py"))
    if not files:
        pytest.skip("bench/ not present")
    bad = [f"{f.name}:{i}" for f in files
           for i, line in enumerate(f.read_text().splitlines(), 1) if "benchmark.stats" in line]
    assert not bad, bad


def test_timing_and_record_pair(conf):
    assert conf.timing(FakeBenchmark()) is None
    fb = FakeBenchmark(median=0.002, data=[0.001, 0.002, 0.004])
    assert conf.timing(fb) == 0.002 and conf.timing(fb, "data") == [0.001, 0.002, 0.004]
    store = {}
    conf.record_pair("pair", store, "old", None, "new", "old")
    conf.record_pair("pair", store, "new", None, "new", "old")
    assert conf.RATIOS == [("pair", conf.DISABLED)]
    store = {}
    conf.record_pair("pair2", store, "old", 0.004, "new", "old")
    conf.record_pair("pair2", store, "new", 0.002, "new", "old")    # the enabled format, as before
    assert conf.RATIOS[-1] == ("pair2", "new 2.000 ms vs old 4.000 ms (x2.00)")


def test_service_telegram_benchmarks_disabled(conf, load):
    bs = load("bench_service")
    for name in ("test_telegram_service_feed", "test_telegram_naive_split_dict",
                 "test_telegram_parse_only", "test_telegram_parse_split_baseline"):
        fb = FakeBenchmark()
        getattr(bs, name)(fb)                       # used to raise AttributeError
        assert fb.calls == 1, name
    lines = dict(conf.RATIOS)
    assert lines["service: parse_line alone"] == conf.DISABLED
    assert lines["service: parse_line vs str.split"] == conf.DISABLED
    assert lines["service: handling one SCAN telegram (Service.feed, 1,000 per read)"] == conf.DISABLED


def test_service_parse_lines_enabled_format(conf, load):
    bs = load("bench_service")
    bs.test_telegram_parse_only(FakeBenchmark(median=bs.N * 1.05e-6))
    bs.test_telegram_parse_split_baseline(FakeBenchmark(median=bs.N * 0.5e-6))
    lines = dict(conf.RATIOS)
    assert lines["service: parse_line alone"] == "1.05 us per telegram"    # as RESULTS.md quotes
    assert lines["service: parse_line vs str.split"] == \
        "1.05 us vs 0.50 us per telegram: parse_line is x0.48 the str.split speed"


def test_mapf_pairs_disabled(conf, load):
    bm = load("bench_mapf")
    for how in ("argsort", "incremental"):
        bm.test_priority_order(FakeBenchmark(), how)
    for how in ("numpy-scan", "sorted-pool"):
        bm.test_nearest_pick(FakeBenchmark(), how)
    assert [t for _, t in conf.RATIOS] == [conf.DISABLED] * 2


def test_mapf_numpy_bfs_baseline_equals_distance_table(conf, load):
    """The preprocessing baseline computes the same table as ``distance_table`` (one-way moves
    respected, several goal cells, an unreachable pocket)."""
    import numpy as np
    from sorter.agv.distance import MoveGraph, distance_table
    bm = load("bench_mapf")
    # 0 <-> 1 -> 2 -> 3, 3 -> 1 one way; 4 alone
    moves = np.array([[1, -1, -1, -1], [-1, 2, 0, -1], [-1, 3, -1, -1], [-1, -1, -1, 1],
                      [-1, -1, -1, -1]])
    g = MoveGraph.of(moves)
    for goal in ([0], [3], [2, 0]):
        want = distance_table(moves, goal)
        got = bm._numpy_bfs(g.radj, g.fidx[np.array(goal)], 99)
        got = np.where(got == 99, -1, got)
        assert got[g.fidx[g.free_cells]].tolist() == want[g.free_cells].tolist(), goal


def test_loop_compiled_shift_disabled(conf, load):
    bl = load("bench_loop")
    fb = FakeBenchmark()
    bl.test_shift_8h_compiled(fb)                   # used to raise AttributeError
    assert fb.calls == 1 and bl.RESULTS["compiled"] is None and "kernel_only_s" in fb.extra_info


def test_real_pytest_benchmark_disable_run(tmp_path):
    """One real ``--benchmark-disable`` run of pytest-benchmark (the telegram group)."""
    if not (BENCH / "bench_service.py").exists():
        pytest.skip("bench/ not present")
    pytest.importorskip("pytest_benchmark", reason="pytest-benchmark not installed (bench extra)")
    r = subprocess.run([sys.executable, "-m", "pytest", "bench/bench_service.py",
                        "--benchmark-disable", "-k", "telegram", "-p", "no:cacheprovider", "-q",
                        "-n", "0"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert re.search(r"4 passed", r.stdout), r.stdout[-2000:]
    assert "service: parse_line alone: disabled" in r.stdout

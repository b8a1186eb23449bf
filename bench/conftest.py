"""Shared benchmark helpers: ratio tables printed at the end of the run.

Run: pytest bench/ --benchmark-only   (bench/ is outside the default test run)
Smoke: pytest bench/ --benchmark-disable -k ...   (each benchmarked body once, untimed; the
summary lines say "disabled": read figures through ``timing()``, never ``benchmark.stats``)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))   # tests/naive.py

RATIOS: list[tuple[str, str]] = []

# what a summary line says under ``--benchmark-disable`` (pytest-benchmark's smoke mode: each
# benchmarked function runs once, untimed, and ``benchmark.stats`` is None)
DISABLED = "disabled (--benchmark-disable: ran once, not timed)"


def pytest_xdist_auto_num_workers(config):
    """Benchmarks run in one process: the test run's ``-n auto`` (pyproject's addopts) gets
    no workers here, as pytest-benchmark turns itself off under pytest-xdist."""
    return 0


def timing(benchmark, stat: str = "median"):
    """``benchmark.stats.stats.<stat>`` (seconds: ``median``, ``min``, ...; ``data``: every
    round's seconds), or None under ``--benchmark-disable``, where there are no stats: the caller
    then records ``DISABLED`` instead of its figures."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else getattr(stats.stats, stat)


def record(name: str, text: str) -> None:
    """Add one line to the summary printed after the benchmarks."""
    RATIOS.append((name, text))


def pytest_terminal_summary(terminalreporter):
    if RATIOS:
        terminalreporter.section("sorter benchmark summary (ratios measured in this run)")
        for name, text in RATIOS:
            terminalreporter.write_line(f"{name}: {text}")


def record_pair(name: str, store: dict, key: str, median: float, new: str, old: str) -> None:
    """Keep ``median`` (seconds) under ``key``; once both ``new`` and ``old`` are in ``store``,
    record "new x ms vs old y ms (x old/new)"; ``DISABLED`` if either median is None
    (``--benchmark-disable``)."""
    store[key] = median
    if new in store and old in store:
        a, b = store[new], store[old]
        if a is None or b is None:
            record(name, DISABLED)
            return
        record(name, f"{new} {a * 1e3:.3f} ms vs {old} {b * 1e3:.3f} ms (x{b / a:.2f})")


"""Shared benchmark helpers: ratio tables printed at the end of the run.

Run: pytest bench/ --benchmark-only   (bench/ is outside the default test run)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))   # tests/naive.py

RATIOS: list[tuple[str, str]] = []


def record(name: str, text: str) -> None:
    """Add one line to the summary printed after the benchmarks."""
    RATIOS.append((name, text))


def pytest_terminal_summary(terminalreporter):
    if RATIOS:
        terminalreporter.section("sorter benchmark summary (ratios measured in this run)")
        for name, text in RATIOS:
            terminalreporter.write_line(f"{name}: {text}")

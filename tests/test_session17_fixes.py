"""Regression tests for the fixes of session 17 (each fails on the code before its fix)."""
from __future__ import annotations

import pytest

import sorter.sweep as sw
from sorter.errors import InputError


class _FakeClient:
    """What `_dask_check_workers` asks of a client: one worker that answers the probe
    with `answer(probe)`."""

    class scheduler:
        address = "tcp://127.0.0.1:1"

    def __init__(self, answer):
        self.answer = answer

    def wait_for_workers(self, n, timeout=None):
        return None

    def run(self, fn, on_error="raise"):
        return {"tcp://127.0.0.1:2": self.answer(fn)}


def test_a_dask_worker_with_other_sorter_code_is_refused():
    """Was: a worker running another version (or an edited checkout) of sorter computed its
    share of the sweep silently, mixing its results with this version's."""
    same = _FakeClient(lambda probe: probe())
    sw._dask_check_workers(same, 1.0)           # the same code: accepted
    other = _FakeClient(lambda probe: (None, "0" * 64))
    with pytest.raises(InputError, match="run other sorter code than this client") as e:
        sw._dask_check_workers(other, 1.0)
    assert e.value.field == "client" and "tcp://127.0.0.1:2" in str(e.value)


def test_source_fingerprint_reads_the_package_sources(tmp_path, monkeypatch):
    fp = sw.source_fingerprint()
    assert len(fp) == 64 and fp == sw.source_fingerprint()
    # the same function on a copy with one changed byte gives another fingerprint
    import shutil
    from pathlib import Path
    root = Path(sw.__file__).resolve().parent
    copy = tmp_path / "sorter"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so", "seeds"))
    monkeypatch.setattr(sw, "__file__", str(copy / "sweep.py"))
    sw.source_fingerprint.cache_clear()
    try:
        assert sw.source_fingerprint() == fp
        sw.source_fingerprint.cache_clear()
        (copy / "constants.py").write_text((copy / "constants.py").read_text() + "\n# edited\n")
        assert sw.source_fingerprint() != fp
    finally:
        sw.source_fingerprint.cache_clear()


@pytest.mark.parametrize("argv", [
    ["--vary", "loop.induct.0.max_rate_per_hour=3000"],          # a table the scenario lacks
    ["--vary", "wave.9.rate_per_hour=3000"],                     # an index out of range
    ["--vary", "loop.speed_mps=2", "--set", "loop.x.y=3"],       # a fixed key likewise
])
def test_a_sweep_key_error_names_the_scenario_file(argv, capsys):
    """Was: `field 'loop.induct.0.max_rate_per_hour': unknown key ...` with no file, while
    an unknown last key (loop.nope) named it."""
    from sorter.cli import main
    from sorter.resources import seed_path
    small = seed_path("scenarios/small.toml")
    assert main(["sweep", str(small), *argv, "--seeds", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sorter sweep: error: {small}: field '") and "unknown key" in err, err
    assert len(err.splitlines()) == 1


def test_simulate_twice_on_one_planner_is_refused():
    """Was: a second simulate() on the same planner and stream started the stream again and
    counted tasks from the first run (tasks_per_step 17.0 over 0 steps)."""
    from sorter.agv.lifelong import make_run, simulate
    from sorter.layout.generate import sortation_floor
    floor = sortation_floor(9, 12, 2, 2, seed=0)
    p, s = make_run(floor, 6, seed=0)
    first = simulate(p, s, 40, record=False)
    assert first.steps == 40
    with pytest.raises(InputError, match="has run 40 steps already") as e:
        simulate(p, s, 0, record=False)
    assert e.value.field == "planner"


@pytest.mark.parametrize("bad,what", [(-1, "outside the grid"), (10**7, "outside the grid"),
                                      (None, "obstacle")])
def test_make_run_names_errands_off_the_free_cells(bad, what):
    """Was: accepted, then refused at the first step as field 'goals'."""
    import numpy as np
    from sorter.agv.lifelong import make_run
    from sorter.layout.generate import sortation_floor
    floor = sortation_floor(9, 12, 2, 2, seed=0)
    if bad is None:
        bad = int(np.flatnonzero(floor.cells == 0)[0])      # an obstacle cell
    errands = [int(floor.free_cells[0]), bad, int(floor.free_cells[3])]
    with pytest.raises(InputError, match=what) as e:
        make_run(floor, 2, seed=0, errands=errands)
    assert e.value.field == "errands"

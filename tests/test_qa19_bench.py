"""QA session 19 (bench): the benchmark scripts' command lines, as bench/RESULTS.md quotes them.

* ``bench/bench_mapf.py``: ``-h`` / ``--help`` printed "unknown subcommand"; ``--only=`` took
  any value (a typo ran nothing, exit 0); ``--steps=0`` ran the default 5,000 steps (10,000
  robots on the MR23 instances); ``--match=`` matching no instance ran nothing, exit 0;
  ``throughput --only=rhcr`` ignored ``--guidance=`` (both planners ran) and ``--match`` /
  ``--rotation`` (LoRR only); without ``../shared`` ``throughput``, ``startkit`` and
  ``validate-all`` printed an empty table or nothing instead of saying what they skipped.
* ``bench/bench_service.py`` run without ``echo`` exited 0 silently.

No ../shared needed: the bench module's ``shared_path`` and run function are replaced here.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SMALL = ROOT / "seeds" / "floors" / "small_12x20.txt"


@pytest.fixture
def bm(monkeypatch):
    """A fresh copy of bench/bench_mapf.py as a module (its script half: no pytest-benchmark)."""
    if not (BENCH / "bench_mapf.py").exists():
        pytest.skip("bench/ not present")
    spec = importlib.util.spec_from_file_location("qa19_bench_mapf", BENCH / "bench_mapf.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _argv(*a):
    return ["bench_mapf.py", *a]


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_prints_usage(bm, capsys, flag):
    assert bm.main(_argv(flag)) == 0
    out = capsys.readouterr()
    assert "python bench/bench_mapf.py throughput" in out.out and "unknown" not in out.err


@pytest.mark.parametrize("args, words", [
    (("throughput", "--only=LoRR"), "--only"),
    (("throughput", "--only="), "--only"),
    (("throughput", "--steps=0"), "positive"),
    (("rhcr-one-cell", "--steps=-5"), "positive"),
    (("liveness", "--steps=1,2"), "positive"),
    (("startkit", "--sizes=10,0"), "positive"),
    (("throughput", "--only=lorr", "--match=MR24"), "matches no LoRR instance"),
    (("throughput", "--only=rhcr", "--rotation"), "LoRR instances only"),
    (("throughput", "--only=rhcr", "--match=MR23"), "LoRR instances only"),
    (("throughput", "--only=rhcr", "--no-hold"), "LoRR instances only"),
])
def test_values_a_run_would_ignore_are_refused(bm, monkeypatch, args, words):
    ran = []
    for name in ("throughput", "rhcr_one_cell", "liveness", "startkit_like", "startkit_greedy"):
        monkeypatch.setattr(bm, name, lambda *a, _n=name, **k: ran.append(_n))
    with pytest.raises(SystemExit) as e:
        bm.main(_argv(*args))
    assert words in str(e.value) and args[-1].split("=")[0] in str(e.value)
    assert ran == []                                    # nothing started


def test_quoted_throughput_forms_reach_the_run(bm, monkeypatch):
    """RESULTS' throughput command forms (tiny --steps) parse to the run they describe."""
    calls = []
    monkeypatch.setattr(bm, "throughput", lambda **k: calls.append(k))
    assert bm.main(_argv("throughput", "--only=lorr", "--rotation", "--match=MR23-I-10",
                         "--steps=3", "--guidance=lanes+flow", "--no-hold")) == 0
    assert bm.main(_argv("throughput", "--only=rhcr", "--steps=3", "--guidance=none")) == 0
    assert bm.main(_argv("throughput", "--quick", "--only=lorr", "--turn-weight=0")) == 0
    a, b, c = calls
    assert (a["only"], a["rotation"], a["match"], a["steps"], a["guidances"], a["hold_on_turn"]) \
        == ("lorr", True, "MR23-I-10", 3, ("lanes+flow",), False)
    assert (b["only"], b["steps"], b["guidances"], b["rotation"]) == ("rhcr", 3, ("none",), False)
    assert (c["quick"], c["steps"], c["turn_weight"]) == (True, None, 0)


def test_rhcr_rows_honour_guidance(bm, monkeypatch, capsys):
    """``throughput --only=rhcr --guidance=none`` used to run lanes+flow rows too."""
    seen = []
    k = dict(steps=2, tasks_completed=0, tasks_per_step=0.0, ms_per_step_p50=0.0,
             ms_per_step_p99=0.0, kernel_ms_p50=0.0, preprocess_s=0.0, distance_table_mb=0.0)

    def fake_run(floor, n, steps, *, guidance, **kw):
        seen.append(guidance)
        return k

    monkeypatch.setattr(bm, "_run", fake_run)
    monkeypatch.setattr(bm, "shared_path", lambda *parts: SMALL)    # any floor: runs are fake
    bm.throughput(only="rhcr", steps=2, guidances=("none",))
    assert seen and set(seen) == {"none"}
    seen.clear()
    bm.throughput(only="rhcr", steps=2, guidances=("lanes+flow",))
    assert seen and set(seen) == {"lanes+flow"}
    assert "| rhcr sorting_map" in capsys.readouterr().out


def test_absent_shared_is_said(bm, monkeypatch, capsys):
    """Without ../shared every script run that needs it says what it skipped (stderr)."""
    monkeypatch.setattr(bm, "shared_path", lambda *parts: None)
    monkeypatch.setattr(bm, "_CACHE", {})
    bm.throughput(steps=1)
    err = capsys.readouterr().err
    for stem in ("TR23-warehouse_large", "TR23-sortation_large", "MR23-I-06", "MR23-I-10",
                 "sorting_map.grid"):
        assert f"{stem}" in err and "not present: skipped" in err
    bm.throughput(steps=1, only="lorr", match="MR23-I-06")
    err = capsys.readouterr().err
    assert "MR23-I-06" in err and "MR23-I-10" not in err and "sorting_map" not in err
    for run in (lambda: bm.startkit_like(sizes=(5,)), lambda: bm.startkit_greedy(sizes=(5,)),
                lambda: bm.validate_all(robots=2, steps=1)):
        run()
        err = capsys.readouterr().err
        assert "not present: skipped" in err, run


def test_bench_service_script_without_echo_says_usage(tmp_path):
    if not (BENCH / "bench_service.py").exists():
        pytest.skip("bench/ not present")
    r = subprocess.run([sys.executable, str(BENCH / "bench_service.py"), "ech0"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "bench_service.py echo [PORT]" in r.stderr
    assert list(tmp_path.iterdir()) == []

"""QA session 9: `sorter run` and `sorter sweep` driven from the command line with scenario
files a planner writes (odd but legal values, broken ones), and the files they write."""
from __future__ import annotations

import html
import json
import tomllib

import pyarrow.parquet as pq
import pytest
from pathlib import Path

from sorter.cli import main
from sorter.errors import InputError
from sorter.resources import seed_path
from sorter.sweep import capacity_sweep

SMALL = seed_path("scenarios/small.toml")


def _small_text(**head) -> str:
    """small.toml with some [scenario] values replaced (e.g. a name, a shorter shift)."""
    text = SMALL.read_text(encoding="utf-8")
    assert set(head) <= set(tomllib.loads(text)["scenario"])
    lines, table = [], None
    for line in text.splitlines():
        if line.startswith("["):
            table = line.strip()
        key = line.split("=")[0].strip()
        if table == "[scenario]" and key in head and line.startswith(key):
            line = f"{key} = {json.dumps(head[key])}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _scenario(tmp_path, text, name="sc.toml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# --------------------------------------------------------------------------- seeds past int64

def test_sweep_seeds_past_int64_fail_before_simulating(tmp_path, capsys):
    # the scenario's seed is accepted up to ~2**63; `--seeds N` counts up from it, and a seed
    # past the int64 `seed` column of sweep.parquet crashed with a traceback after the sweep
    sc = _scenario(tmp_path, _small_text(shift_hours=0.0003))
    base = 2**63 - 1100
    rc = main(["sweep", str(sc), "--vary", "scan.no_read_rate=0.01", "--seeds", "1200",
               "--set", f"scenario.seed={base}", "--workers", "1", "--no-progress",
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "seeds" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "sweep.parquet").exists()


def test_capacity_sweep_refuses_a_seed_list_past_int64():
    with pytest.raises(InputError) as ei:
        capacity_sweep(SMALL, {"scan.no_read_rate": [0.01]}, seeds=[1, 2**63],
                       overrides={"scenario.shift_hours": 0.001}, n_workers=1)
    assert ei.value.field == "seeds"


def test_sweep_seeds_up_to_the_int64_limit_still_write(tmp_path):
    res = capacity_sweep(SMALL, {"scan.no_read_rate": [0.01]}, seeds=[2**63 - 1, 5],
                         overrides={"scenario.shift_hours": 0.001}, n_workers=1)
    out = res.write_parquet(tmp_path / "s.parquet")
    assert pq.read_table(out).column("seed").to_pylist() == [2**63 - 1, 5]


# --------------------------------------------------------------------------- --set conflicts

def test_sweep_set_twice_is_refused(tmp_path, capsys):
    # `--set K=a --set K=b` kept b silently (while `--vary K` twice is refused)
    rc = main(["sweep", str(SMALL), "--vary", "scan.no_read_rate=0.01",
               "--set", "wave.0.rate_per_hour=3000", "--set", "wave[0].rate_per_hour=2000",
               "--set", "scenario.shift_hours=0.05", "--seeds", "1", "--workers", "1",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "--set" in err and "twice" in err


def test_sweep_key_both_set_and_varied_is_refused(tmp_path, capsys):
    # `--vary K=... --set K=v` dropped the --set value without a word
    rc = main(["sweep", str(SMALL), "--vary", "wave.0.rate_per_hour=4000",
               "--set", "wave.0.rate_per_hour=3000", "--set", "scenario.shift_hours=0.05",
               "--seeds", "1", "--workers", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "wave.0.rate_per_hour" in err and "both" in err


def test_capacity_sweep_key_in_overrides_and_vary_is_refused():
    with pytest.raises(InputError) as ei:
        capacity_sweep(SMALL, {"wave[0].rate_per_hour": [4000, 5000]}, seeds=1,
                       overrides={"scenario.shift_hours": 0.05, "wave.0.rate_per_hour": 3000},
                       n_workers=1)
    assert ei.value.field == "wave[0].rate_per_hour"


# --------------------------------------------------------------------------- $ in names

DOLLAR_WAVE = "peak $\\alpha_{$ wave"        # a pair of $: matplotlib read it as math


def test_run_out_with_dollar_signs_in_names(tmp_path, capsys):
    text = _small_text(name="US$ 5 and US$ 6 lane", shift_hours=0.05)
    text = text.replace('name = "all"', f"name = {json.dumps(DOLLAR_WAVE)}")
    sc = _scenario(tmp_path, text)
    out = tmp_path / "o"
    rc = main(["run", str(sc), "--out", str(out), "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    for f in ("throughput.png", "recirculation.png", "chute_occupancy.png", "report.html"):
        assert (out / f).stat().st_size > 0
    assert html.escape(DOLLAR_WAVE) in (out / "report.html").read_text(encoding="utf-8")


def test_sweep_plot_with_dollar_signs_in_the_name(tmp_path):
    sc = _scenario(tmp_path, _small_text(name="lane $x^{$ test", shift_hours=0.02))
    res = capacity_sweep(sc, {"scan.no_read_rate": [0.0, 0.1]}, seeds=1, n_workers=1)
    p = res.plot(tmp_path / "s.png")
    assert p.stat().st_size > 0



# --------------------------------------------------------------------------- clock times

@pytest.mark.parametrize("where", ["shift_start", "wave"])
def test_clock_time_past_midnight_is_refused(tmp_path, capsys, where):
    # "24:30" passed as 00:30: a typo for 14:30 moved a wave by ten hours without a word
    text = _small_text(shift_hours=0.25)
    text = text.replace("interval_minutes = 5", 'interval_minutes = 5\nshift_start = "'
                        + ("24:30" if where == "shift_start" else "14:00") + '"')
    if where == "wave":
        text = text.replace("start_h = 0.0\nend_h = 0.5", 'start = "24:30"\nend = "14:15"')
    sc = _scenario(tmp_path, text)
    rc = main(["run", str(sc), "--json"])
    err = capsys.readouterr().err
    assert rc == 2 and "24:30" in err and "HH:MM" in err, err
    assert ("scenario.shift_start" if where == "shift_start" else "wave[0].start") in err


def test_clock_time_midnight_is_accepted(tmp_path, capsys):
    text = _small_text(shift_hours=0.25).replace(
        "interval_minutes = 5", 'interval_minutes = 5\nshift_start = "24:00"')
    rc = main(["run", str(_scenario(tmp_path, text)), "--json"])
    assert rc == 0, capsys.readouterr().err


def test_an_output_name_taken_by_a_folder_fails_before_the_run(tmp_path):
    """`sorter run --out D` where D/report.html (its last file) is a folder: refused at once
    (exit 2, one line), not after the simulation with the other files written; and the names
    checked are the files the run writes."""
    import subprocess
    import sys
    from sorter.report import RUN_FILES
    (tmp_path / "report.html").mkdir()
    r = subprocess.run([sys.executable, "-m", "sorter", "run", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "report.html" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]    # nothing written
    ok = tmp_path / "ok"
    r = subprocess.run([sys.executable, "-m", "sorter", "run", "--out", str(ok)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in ok.iterdir()} <= set(RUN_FILES)
    assert {p.name for p in ok.iterdir()} >= {"kpis.json", "report.html"}


def test_a_missing_wave_plan_file_names_the_wave_field(tmp_path):
    from sorter.errors import InputError
    from sorter.sim.scenario import load_scenario
    root = Path(__file__).resolve().parent.parent / "seeds" / "scenarios"
    text = (root / "default.toml").read_text().replace('plan = "../plan/demo_plan.csv"\n\n[[wave]]',
                                                      'plan = "nope.csv"\n\n[[wave]]', 1)
    assert "nope.csv" in text
    import shutil
    shutil.copytree(root.parent / "plan", tmp_path / "plan")     # the files it refers to
    sc = tmp_path / "s" / "x.toml"
    sc.parent.mkdir()
    sc.write_text(text)
    with pytest.raises(InputError, match=r"wave\[0\]\.plan|wave\.0\.plan") as e:
        load_scenario(sc)
    assert "nope.csv" in str(e.value)

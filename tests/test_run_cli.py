"""`sorter run`: the KPI table, --json, --seed, --out (files, plots, report)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sorter.cli import main
from sorter.resources import seed_path

REQUIRED = ("offered", "inducted", "sorted", "rejected", "on_loop_at_end", "sorted_per_hour",
            "nameplate_per_hour", "recirculation_pct", "rejects_by_reason",
            "induct_to_chute_s_p95", "shift_hours", "seed")
SMALL = str(seed_path("scenarios/small.toml"))


def run_json(capsys, *args):
    assert main(["run", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1          # ONE JSON object on one line
    return json.loads(out)


def test_default_run_json_has_the_contract_keys(capsys):
    k = run_json(capsys)
    for key in REQUIRED:
        assert key in k, key
    assert k["shift_hours"] == 8 and k["seed"] == 1
    assert k["nameplate_per_hour"] == pytest.approx(15000)
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    assert k["offered"] >= k["inducted"]
    assert k["sorted_per_hour"] == pytest.approx(k["sorted"] / k["shift_hours"])
    assert set(k["rejects_by_reason"]) >= {"no_read", "unknown_destination", "max_recirculation",
                                          "no_chute_available", "not_sortable", "late"}
    assert sum(k["rejects_by_reason"].values()) == k["rejected"]
    assert all(isinstance(k[c], int) for c in ("offered", "inducted", "sorted", "rejected",
                                               "on_loop_at_end"))


def test_seed_reproduces_and_changes(capsys):
    a = run_json(capsys, SMALL, "--seed", "3")
    b = run_json(capsys, SMALL, "--seed", "3")
    c = run_json(capsys, SMALL, "--seed", "4")
    assert a == b
    assert a["seed"] == 3 and c["seed"] == 4
    assert a != c


def test_table_output(capsys):
    assert main(["run", SMALL]) == 0
    out = capsys.readouterr().out
    for word in ("offered", "inducted", "sorted", "recirculation", "induct blocking",
                 "induct to chute", "rejects by reason", "wave"):
        assert word in out


def test_out_writes_files_plots_and_report(tmp_path, capsys):
    import pyarrow.parquet as pq
    out = tmp_path / "o"
    k = run_json(capsys, SMALL, "--out", str(out))
    for name in ("kpis.json", "parcels.parquet", "timeseries.csv", "chutes.csv", "throughput.png",
                 "recirculation.png", "chute_occupancy.png", "report.html"):
        assert (out / name).is_file(), name
    full = json.loads((out / "kpis.json").read_text())
    assert full["sorted"] == k["sorted"] and "chutes" in full and "intervals" in full
    t = pq.read_table(out / "parcels.parquet")
    assert t.num_rows == k["offered"]
    for col in ("id", "destination", "induct", "induct_t", "scan", "chute", "reason",
                "discharge_t", "recirculations"):
        assert col in t.column_names
    status = t.column("status").to_pylist()
    assert status.count("sorted") == k["sorted"] and status.count("rejected") == k["rejected"]
    for png in ("throughput.png", "recirculation.png", "chute_occupancy.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "small busy loop" in html
    lines = (out / "timeseries.csv").read_text().splitlines()
    assert lines[0].startswith("start_s,") and len(lines) == 1 + 6     # 30 min in 5-min steps


def test_bad_scenario_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(open(SMALL).read().replace("speed_mps = 2.0", "speed_mps = 0"))
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "loop.speed_mps" in err and err.count("\n") == 1
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


def test_json_stdout_is_clean_in_a_real_process(tmp_path):
    p = subprocess.run([sys.executable, "-c", "import sys; from sorter.cli import main; "
                        "sys.exit(main())", "run", SMALL, "--json"],
                       capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)   # not the repo root: its sorter/ must not shadow the install
    assert p.returncode == 0, p.stderr
    k = json.loads(p.stdout)
    assert k["offered"] > 0 and p.stderr == ""


def test_python_dash_m_sorter_is_the_sorter_command(tmp_path):
    p = subprocess.run([sys.executable, "-m", "sorter", "--version"], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().startswith("sorter ")
    p = subprocess.run([sys.executable, "-m", "sorter", "run", "--no-such-flag"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2 and "--no-such-flag" in p.stderr


def test_source_folder_takes_the_compiled_modules_of_the_installed_copy(tmp_path, monkeypatch):
    # Python started in the repository root after a plain `pip install .` imports the source
    # folder, which has no compiled engine: the installed copy's `_chutes` must be found
    import importlib.util
    import sorter
    inst = tmp_path / "site" / "sorter"
    inst.mkdir(parents=True)
    (inst / "_chutes.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.setattr(sys, "path", [str(tmp_path / "elsewhere"), str(tmp_path / "site")])
    monkeypatch.setattr(sorter, "__path__", list(sorter.__path__))
    before = list(sorter.__path__)
    sorter._compiled_from_installed_copy()
    assert sorter.__path__ == before + [str(inst)]

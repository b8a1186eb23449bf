"""Session 15 contract audit: the names issues 3, 4, 5 and 6 promise, checked as an outside check
would use them (public imports, the `sorter` command, files written by our own small inputs).

The one mismatch found: ``LoopSorter`` (issue 5) was importable only from ``sorter.layout.loop``;
the packages that hold loop sorters (``sorter.layout``) and shift simulations (``sorter.sim``,
the README's Python entry for ``sorter run``) now re-export it.
"""
from __future__ import annotations

import inspect
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sorter
from sorter import Decision, Sorter
from sorter.cli import main

REPO = Path(__file__).resolve().parents[1]

PLAN = "destination,chutes\nA,C1;C2\nB,C2\n"
CHUTES = """\
[plan]
name = "audit"
strategy = "fill_first"
max_recirculation = 2
overflow = ["OV1"]
[reject]
no_read = "R1"
unknown_destination = "R1"
max_recirculation = "R2"
no_chute_available = "R2"
not_sortable = "R3"
late = "R1"
[[chute]]
id = "C1"
kind = "destination"
capacity = 2
position = 20.0
side = "left"
[[chute]]
id = "C2"
capacity = 3
position = 30.0
side = "left"
[[chute]]
id = "OV1"
kind = "overflow"
capacity = 10
position = 40.0
side = "right"
[[chute]]
id = "R1"
kind = "reject"
capacity = 100
position = 50.0
side = "right"
[[chute]]
id = "R2"
kind = "reject"
capacity = 100
position = 52.0
side = "right"
[[chute]]
id = "R3"
kind = "reject"
capacity = 100
position = 54.0
side = "right"
"""
REASONS = ("ok", "overflow", "no_read", "unknown_destination", "max_recirculation",
           "no_chute_available", "not_sortable", "late")


@pytest.fixture
def files(tmp_path):
    (tmp_path / "plan.csv").write_text(PLAN)
    (tmp_path / "chutes.toml").write_text(CHUTES)
    return tmp_path


# ------------------------------------------------------------------ issue 5: LoopSorter (the fix)

def test_loop_sorter_is_importable_where_loop_sorters_live():
    """Issue 5 names ``LoopSorter``; it was reachable only as ``sorter.layout.loop.LoopSorter``
    (``from sorter.layout import LoopSorter`` / ``from sorter.sim import LoopSorter`` failed)."""
    from sorter.layout import LoopSorter
    from sorter.layout.loop import LoopSorter as original
    from sorter.sim import LoopSorter as from_sim
    import sorter.layout
    import sorter.sim
    assert LoopSorter is original is from_sim
    assert "LoopSorter" in sorter.layout.__all__ and "LoopSorter" in sorter.sim.__all__
    loop = LoopSorter.generate(length_m=400, speed_mps=2.5, pitch_m=0.6)
    assert loop.lap_time_s == pytest.approx(160.0)             # "a 400 m loop at 2.5 m/s laps in 160 s"
    assert loop.nameplate_per_hour == pytest.approx(2.5 * 3600 / 0.6)
    with pytest.raises(ValueError, match="speed_mps"):
        LoopSorter.generate(speed_mps=0)


# ------------------------------------------------------------------ issue 3: the chute engine

def test_engine_names_and_signatures(files):
    sig = inspect.signature(Sorter)
    assert list(sig.parameters)[:2] == ["plan", "chutes"]
    assert {p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY} >= {
        "strategy", "max_recirculation"}
    assert list(inspect.signature(Sorter.from_files).parameters)[:2] == ["plan_csv", "chutes_toml"]
    p = inspect.signature(Sorter.assign).parameters
    assert list(p)[1:] == ["destination", "recirculation", "sortable"]
    assert p["recirculation"].default == 0 and p["sortable"].default is True
    for name, params in {"assign_many": ["dest_ids", "recirculation", "sortable"],
                         "destination_ids": ["codes"], "set_state": ["chute", "state"],
                         "discharged": ["chute", "n"], "container_changed": ["chute"],
                         "switch_plan": ["new_plan"], "state_dict": []}.items():
        assert list(inspect.signature(getattr(Sorter, name)).parameters)[1:] == params, name
    assert inspect.signature(Sorter.discharged).parameters["n"].default == 1
    assert tuple(sorter.REASONS) == REASONS
    assert tuple(sorter.STATES) == ("open", "full", "container_change", "blocked", "disabled")
    assert set(sorter.STRATEGIES) == {"fill_first", "round_robin", "least_loaded"}
    assert issubclass(sorter.InputError, ValueError)

    s = Sorter.from_files(files / "plan.csv", files / "chutes.toml")
    d = s.assign("A")
    assert isinstance(d, Decision) and (d.chute, d.reason) == ("C1", "ok")
    assert tuple(s.assign(None)) == ("R1", "no_read")
    assert tuple(s.assign("A", sortable=False)) == ("R3", "not_sortable")
    assert tuple(s.assign("A", recirculation=3)) == ("R2", "max_recirculation")
    assert tuple(s.assign("nope")) == ("R1", "unknown_destination")
    ids = s.destination_ids(["A", "nope", "", None])
    assert ids[1] == -1 and ids[2] == ids[3] == sorter.DEST_NO_READ
    chutes, reasons = s.assign_many(ids)
    assert chutes.dtype == np.int32 and reasons.dtype == np.int8
    assert [sorter.REASONS[r] for r in reasons] == ["ok", "unknown_destination", "no_read", "no_read"]
    s.discharged("C1", n=2)                                      # full at capacity
    assert tuple(s.assign("A")) == ("C2", "ok")
    s.container_changed("C1")
    assert tuple(s.assign("A")) == ("C1", "ok")
    s.set_state("C1", "blocked")
    s.set_state("C2", "disabled")
    assert tuple(s.assign("A")) == ("OV1", "overflow")
    s2 = Sorter.from_state(json.loads(json.dumps(s.state_dict())))
    assert [tuple(s2.assign(x)) for x in ("A", "B", None)] == [tuple(s.assign(x)) for x in ("A", "B", None)]


def test_assign_command_names(files, capsys):
    (files / "p2.csv").write_text("destination,chutes\nZ,C1\n")
    (files / "events.csv").write_text(
        "t,event,parcel,destination,recirculation,sortable,chute,plan\n"
        "0,scan,P1,A,0,1,,\n1,discharged,,,,,C1,\n2,discharged,,,,,C1,\n3,scan,P2,A,0,,,\n"
        "4,scan,P3,,0,1,,\n5,open,,,,,C1,\n6,scan,P4,A,0,1,,\n7,switch_plan,,,,,,p2.csv\n"
        "8,scan,P5,Z,0,1,,\n9,scan,P6,A,0,0,,\n")
    rc = main(["assign", "--plan", str(files / "plan.csv"), "--chutes", str(files / "chutes.toml"),
               "--events", str(files / "events.csv"), "--out", str(files / "d.csv")])
    assert rc in (0, None)
    out = capsys.readouterr().out
    assert all(r in out for r in REASONS)                        # counts by reason
    rows = (files / "d.csv").read_text().splitlines()
    assert rows == ["parcel,chute,reason", "P1,C1,ok", "P2,C2,ok", "P3,R1,no_read", "P4,C1,ok",
                    "P5,C1,ok", "P6,R3,not_sortable"]


# ------------------------------------------------------------------ issue 5: sorter run

def test_run_json_and_out_names(files, capsys):
    (files / "scen.toml").write_text("""\
[scenario]
name = "audit"
seed = 5
shift_hours = 0.1
[loop]
length_m = 60.0
speed_mps = 2.0
pitch_m = 1.0
scanner_m = 10.0
chutes = "chutes.toml"
plan = "plan.csv"
[[loop.induct]]
id = "I1"
position_m = 2.0
max_rate_per_hour = 3000
kind = "automatic"
[[wave]]
name = "w"
start_h = 0.0
end_h = 0.1
rate_per_hour = 2000
""")
    assert main(["run", str(files / "scen.toml"), "--seed", "9", "--json",
                 "--out", str(files / "out")]) in (0, None)
    k = json.loads(capsys.readouterr().out)
    for key in ("offered", "inducted", "sorted", "rejected", "on_loop_at_end", "sorted_per_hour",
                "nameplate_per_hour", "recirculation_pct", "rejects_by_reason",
                "induct_to_chute_s_p95", "shift_hours", "seed"):
        assert key in k, key
    assert k["seed"] == 9 and k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    assert k["nameplate_per_hour"] == pytest.approx(7200.0)
    assert set(REASONS) - {"ok", "overflow"} <= set(k["rejects_by_reason"])
    out = files / "out"
    for name in ("kpis.json", "parcels.parquet", "report.html"):
        assert (out / name).is_file(), name
    assert list(out.glob("*.png")) and list(out.glob("*.csv"))
    import pyarrow.parquet as pq
    cols = set(pq.read_schema(out / "parcels.parquet").names)
    assert {"id", "destination", "induct", "induct_t", "chute", "reason", "discharge_t",
            "recirculations"} <= cols


# ------------------------------------------------------------------ issue 4: sorter mapf

def test_mapf_out_names(tmp_path, capsys):
    from sorter.layout import format_ascii, load_floor, sortation_floor
    from sorter.agv import Planner
    from sorter.agv.validate import validate
    floor_file = tmp_path / "f.txt"
    floor_file.write_text(format_ascii(sortation_floor(12, 20, 4, 8, seed=2)))
    assert list(inspect.signature(Planner).parameters)[:3] == ["floor", "n_robots", "starts"]
    assert inspect.signature(Planner).parameters["seed"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(validate).parameters) == ["floor", "starts", "paths"]
    assert main(["mapf", str(floor_file), "--robots", "12", "--steps", "40", "--seed", "3",
                 "--out", str(tmp_path / "o")]) in (0, None)
    printed = capsys.readouterr().out
    for word in ("tasks completed", "tasks/step", "ms/step", "p50", "p99", "max"):
        assert word in printed, word
    z = np.load(tmp_path / "o" / "paths.npz")
    pos = z["positions"]
    floor = load_floor(floor_file)
    assert pos.dtype == np.int32 and pos.shape == (41, 12)
    assert int(z["width"]) == floor.width and int(z["height"]) == floor.height
    assert validate(floor, pos[0], pos) is None                   # row 0 = starts, legal moves
    k = json.loads((tmp_path / "o" / "kpis.json").read_text())
    for key in ("robots", "steps", "tasks_completed", "tasks_per_step", "ms_per_step_p50",
                "ms_per_step_p99", "preprocess_s"):
        assert key in k, key
    assert k["robots"] == 12 and k["steps"] == 40


# ------------------------------------------------------------------ issue 6: sorter serve

def test_serve_telegram_names(files):
    proc = subprocess.Popen([sys.executable, "-m", "sorter", "serve", "--plan", "plan.csv",
                             "--chutes", "chutes.toml", "--port", "0", "--journal", "j.db"],
                            cwd=files, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(line.rsplit(":", 1)[1].split(",")[0])
        telegrams = ["SCAN|1|P1|A|0|1", "SCAN|2|P2||0|1", "CHUTE|3|C1|blocked",
                     "DISCHARGED|4|P1|C2", "CONTAINER|5|C1", "PLAN|6|plan.csv", "HB|7",
                     "SCAN|8|P3|A|x|1", "SCAN|9|P4|A|0|1"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall("".join(t + "\n" for t in telegrams).encode())
            buf, deadline = b"", time.monotonic() + 10
            while buf.count(b"\n") < len(telegrams) and time.monotonic() < deadline:
                buf += s.recv(65536)
        answers = buf.decode().splitlines()
        assert answers[:7] == ["DEST|1|P1|C1|ok", "DEST|2|P2|R1|no_read", "ACK|3", "ACK|4",
                               "ACK|5", "ACK|6", "ACK|7"]
        assert answers[7].startswith("ERR|8|")
        assert answers[8] == "DEST|9|P4|C1|ok"                    # the connection stayed open
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    out = files / "d.csv"
    assert main(["journal", "export", str(files / "j.db"), "--out", str(out)]) in (0, None)
    assert out.read_text().splitlines()[0].split(",")[:1] == ["id"]


# ------------------------------------------------------------------ README

def test_readme_opens_with_the_two_setup_commands():
    text = (REPO / "README.md").read_text()
    block = text.split("```", 2)[1]
    lines = [ln for ln in block.splitlines()[1:] if ln.strip()]
    assert lines == ["pip install . && sorter run", "pip install '.[test]' && pytest -q"]

"""Session 12 fixes outside the QA files: padded telegram fields, the loop pitch message."""
from __future__ import annotations

import pytest

from sorter.errors import InputError
from sorter.layout.loop import LoopSorter
from sorter.service.protocol import ChuteState, Container, Discharged, Scan, parse_line


@pytest.mark.parametrize("line, want", [
    (b"SCAN|1|P1|A   |0|1", "A"),          # fixed-width PLC field, padded right
    (b"SCAN|1|P1|  A|0|1", "A"),
    (b"SCAN|1|P1|     |0|1", None),         # spaces only: a no-read, as an empty field
    (b"SCAN|1|P1|A B|0|1", "A B"),          # inner spaces stay
])
def test_scan_destination_padding_is_dropped(line, want):
    t = parse_line(line)
    assert isinstance(t, Scan) and t.destination == want


def test_chute_fields_padding_is_dropped():
    assert parse_line(b"CHUTE|2| C001 |full") == ChuteState(2, "C001", "full")
    assert parse_line(b"DISCHARGED|3|P1|C001  ") == Discharged(3, "P1", "C001")
    assert parse_line(b"CONTAINER|4|  C9") == Container(4, "C9")
    with pytest.raises(Exception) as e:
        parse_line(b"CHUTE|5|   |full")
    assert e.value.code == "bad_chute"


def test_loop_pitch_error_names_the_half_loop_bound():
    with pytest.raises(InputError) as e:
        LoopSorter.generate(length_m=1.0, pitch_m=0.8)
    assert e.value.field == "loop.pitch_m" and "half the loop's length_m (0.5)" in str(e.value)


@pytest.mark.parametrize("kw, field", [
    (dict(dwell_chute=None), "dwell_chute"),
    (dict(dwell_induct="3"), "dwell_induct"),
    (dict(flow_halflife=2.5), "flow_halflife"),
    (dict(w_occ=float("nan")), "w_occ"),
    (dict(lane_penalty=1.5, guidance="lanes"), "lane_penalty"),
    (dict(lane_penalty="2"), "lane_penalty"),
    (dict(dock_penalty=99), "dock_penalty"),
    (dict(rotation="no"), "rotation"),
    (dict(station_goals="no"), "station_goals"),
    (dict(hold_on_turn="yes"), "hold_on_turn"),
    (dict(max_table_mb="5"), "max_table_mb"),
    (dict(max_table_mb=True), "max_table_mb"),
    (dict(turn_weight=-1), "turn_weight"),
    (dict(detour_horizon=None), "detour_horizon"),
])
def test_planner_keywords_are_checked_by_name(kw, field):
    from sorter.agv.pibt import Planner
    from sorter.layout import Floor
    f = Floor.from_ascii("I..\n.CD\n...")
    with pytest.raises(InputError) as e:
        Planner(f, 1, [0], **kw)
    assert e.value.field == field
    assert repr(next(iter(kw.values()))) in str(e.value)


def test_planner_keywords_still_take_what_they_did():
    import numpy as np
    from sorter.agv.pibt import Planner
    from sorter.layout import Floor
    f = Floor.from_ascii("I..\n.CD\n...")
    p = Planner(f, 1, [0], dwell_chute=5.0, dwell_induct=np.int64(2), rotation=1,
                station_goals=np.bool_(True), max_table_mb=float("inf"), lane_penalty=3,
                guidance="lanes")
    assert (p.dwell_chute, p.dwell_induct, p.rotation, p.lane_penalty) == (5, 2, True, 3)


@pytest.mark.parametrize("cmd", [["run", "--out", ""],
                                 ["sweep", "seeds/scenarios/small.toml", "--vary",
                                  "loop.speed_mps=2", "--out", " "]])
def test_an_empty_out_folder_is_refused(cmd):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-m", "sorter", *cmd], capture_output=True, text=True,
                       cwd=root)
    assert r.returncode == 2 and "--out" in r.stderr and "not empty" in r.stderr


@pytest.mark.parametrize("name, text, line", [
    ("u.agents", "2\n1_2\n3\n", 2),
    ("u.tasks", "2\n4\n1_1\n", 3),
    ("v.tasks", "2\n4,5\n1_1,2\n", 3),
    ("w.agents", "2\n1\n\u0663\n", 3),          # Arabic-Indic 3: int() reads it as 3
    ("w.tasks", "2\n4,\u0665\n1,2\n", 2),
])
def test_numbers_with_underscores_are_not_cell_ids(tmp_path, name, text, line):
    import subprocess
    import sys
    (tmp_path / "u.map").write_text("type octile\nheight 2\nwidth 3\nmap\n...\n...\n")
    (tmp_path / name).write_text(text)
    opt = "--agents" if name.endswith(".agents") else "--tasks"
    r = subprocess.run([sys.executable, "-m", "sorter", "mapf", "u.map", opt, name, "--steps",
                        "2", "--robots", "2"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stdout
    assert f"{name}:{line}:" in r.stderr and "is not an integer" in r.stderr


def test_service_warns_of_destinations_no_telegram_can_carry(tmp_path):
    from sorter.resources import seed_path
    from sorter.service.server import open_service
    plan = tmp_path / "p.csv"
    rows = seed_path("plan/demo_plan.csv").read_text(encoding="utf-8").splitlines()
    first_chute = rows[1].split(",", 1)[1]
    rows += [f"Zürich,{first_chute}", f"A|B,{first_chute}"]
    plan.write_text("\n".join(rows) + "\n", encoding="utf-8")
    svc, msg = open_service(plan, seed_path("plan/demo_chutes.toml"))
    assert "warning: 2 destination(s)" in msg and "'Zürich'" in msg and "'A|B'" in msg
    svc, msg = open_service(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))
    assert "warning" not in msg


@pytest.mark.parametrize("value", ["X'FF00'", "X''"])
def test_journal_show_with_a_row_kind_that_reads_as_no_text_is_damaged(tmp_path, capsys, value):
    """Damaged pages need not make SQLite fail: a kind may read back as NULL, bytes or a
    number (seen once in CI after the page-damage test); `journal show` then crashed sorting
    the kinds. Now the one line of a damaged journal."""
    import sqlite3
    from test_qa_regressions import one_error_line
    from test_qa_service_session8 import journal_with_scans
    db = tmp_path / "j.db"
    journal_with_scans(db, 5)
    con = sqlite3.connect(db)
    try:
        con.execute(f"UPDATE journal SET kind = {value} WHERE id = 2")     # bytes, not text
        con.commit()
    finally:
        con.close()
    one_error_line(capsys, ["journal", "show", str(db)], str(db), "damaged")


@pytest.mark.parametrize("args", [["seeds/floors/small_12x20.txt", "--vary", "robots=5,5",
                                   "--set", "steps=5"],
                                  ["seeds/scenarios/small.toml", "--vary",
                                   "loop.speed_mps=2,2.0"]])
def test_a_value_varied_twice_is_refused(args):
    """`--vary robots=5,5` ran the same points twice (a typo, and twice the time)."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-m", "sorter", "sweep", *args], capture_output=True,
                       text=True, cwd=root)
    assert r.returncode == 2 and "given twice" in r.stderr and "Traceback" not in r.stderr


def test_capacity_sweep_takes_numpy_values():
    """`capacity_sweep(..., {"loop.speed_mps": np.array([2.0, 2.5])})` said 'no values'."""
    import numpy as np
    from sorter.resources import seed_path
    from sorter.sweep import capacity_sweep
    res = capacity_sweep(seed_path("scenarios/small.toml"),
                         {"loop.speed_mps": np.array([2.0, 2.5]),
                          "wave.0.rate_per_hour": [np.int64(4000)]}, seeds=1,
                         overrides={"scenario.shift_hours": 0.05}, n_workers=1)
    assert res.points == [{"loop.speed_mps": 2.0, "wave.0.rate_per_hour": 4000},
                          {"loop.speed_mps": 2.5, "wave.0.rate_per_hour": 4000}]
    assert all(type(p["wave.0.rate_per_hour"]) is int for p in res.points)


def test_first_pass_to_destination_against_the_parcel_rows(tmp_path):
    """`first_pass_sort_pct` counts overflow as sorted (the issue's 'sorted'); the stricter
    `first_pass_to_destination_pct` counts a parcel's own destination chute only."""
    import json
    import subprocess
    import sys
    import pyarrow.parquet as pq
    from sorter.resources import seed_path
    r = subprocess.run([sys.executable, "-m", "sorter", "run", str(seed_path("scenarios/small.toml")),
                        "--seed", "3", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    k = json.loads((tmp_path / "o" / "kpis.json").read_text())
    rows = pq.read_table(tmp_path / "o" / "parcels.parquet").to_pylist()
    left = [p for p in rows if p["status"] in ("sorted", "rejected")]
    first = [p for p in left if p["status"] == "sorted" and p["recirculations"] == 0]
    own = [p for p in first if p["reason"] == "ok"]
    assert len(own) < len(first)                     # the scenario does use overflow
    assert k["first_pass_sort_pct"] == pytest.approx(100 * len(first) / len(left))
    assert k["first_pass_to_destination_pct"] == pytest.approx(100 * len(own) / len(left))

"""QA session 22 (walk): an outside user's walk through the README on inputs made by hand --
a plan with unicode codes and an overflow-only destination, a tiny loop with its own chute file
and a wave plan switch, a hand-drawn RHCR ``.grid`` with a one-way row, a tiny LoRR problem run
with rotations -- checking that the documented outputs agree with each other."""
import json

import numpy as np
import pandas as pd
import pytest

from sorter import Sorter
from sorter.agv.validate import validate
from sorter.cli import main
from sorter.layout import load_floor
from sorter.layout.lorr import load_lorr_problem

CHUTES = """\
[plan]
name = "uni"
strategy = "least_loaded"
max_recirculation = 2
overflow = ["UB"]
[reject]
no_read = "RJ"
unknown_destination = "RJ"
max_recirculation = "RJ"
no_chute_available = "RJ"
not_sortable = "RJ"
late = "RJ"
[[chute]]
id = "Z1"
capacity = 5
position = 20.0
side = "left"
[[chute]]
id = "Z2"
capacity = 5
position = 20.0
side = "right"
[[chute]]
id = "K1"
capacity = 5
position = 25.0
side = "left"
[[chute]]
id = "UB"
kind = "overflow"
capacity = 5
position = 30.0
[[chute]]
id = "RJ"
kind = "reject"
capacity = 1000
position = 35.0
"""

SCENARIO = """\
[scenario]
name = "unicode loop"
seed = 1
shift_hours = 0.1
interval_minutes = 2

[loop]
name = "L"
length_m = 50.0
speed_mps = 1.5
pitch_m = 1.0
scanner_m = 10.0
chutes = "chutes.toml"
plan = "plan.csv"
[[loop.induct]]
id = "I1"
position_m = 2.0
max_rate_per_hour = 2000
kind = "manual"

[[wave]]
name = "w1"
start_h = 0.0
end_h = 0.05
rate_per_hour = 1500

[[wave]]
name = "w2"
start_h = 0.05
end_h = 0.1
rate_per_hour = 1500
plan = "plan2.csv"

[destinations]
mix = "csv"
volumes = "vol.csv"

[scan]
no_read_rate = 0.0
not_sortable_rate = 0.0

[containers]
change_time_s = 30
reaction_time_s = 0

[[blockages.scheduled]]
chute = "K1"
start_h = 0.01
duration_s = 60
"""


def _write_loop(tmp_path):
    (tmp_path / "chutes.toml").write_text(CHUTES, encoding="utf-8")
    (tmp_path / "plan.csv").write_text("destination,chutes\nZürich,Z1;Z2\n東京,K1\nOVONLY,UB\n",
                                       encoding="utf-8")
    (tmp_path / "plan2.csv").write_text("destination,chutes\nZürich,K1\n東京,Z1;Z2\nOVONLY,UB\n",
                                        encoding="utf-8")
    (tmp_path / "vol.csv").write_text("destination,volume\n東京,10\nZürich,1\nOVONLY,1\nNowhere,1\n",
                                      encoding="utf-8")
    (tmp_path / "s.toml").write_text(SCENARIO, encoding="utf-8")
    return tmp_path / "s.toml"


def test_unicode_plan_with_an_overflow_only_destination_decides_as_documented(tmp_path):
    _write_loop(tmp_path)
    s = Sorter.from_files(tmp_path / "plan.csv", tmp_path / "chutes.toml")
    assert s.assign("OVONLY") == ("UB", "ok")         # its own chute, which is an overflow one
    assert s.assign("東京") == ("K1", "ok")
    assert s.assign("zürich").reason == "unknown_destination"      # codes are exact
    for _ in range(5):
        s.discharged("K1")                            # capacity 5: full
    assert s.assign("東京") == ("UB", "overflow")
    ids = s.destination_ids(["Zürich", "東京", None, "?"])
    chutes, reasons = s.assign_many(ids)
    assert [s.chute_ids[c] for c in chutes[2:]] == ["RJ", "RJ"]


def test_hand_made_loop_counts_add_up_and_repeat(tmp_path, capsys):
    scen = _write_loop(tmp_path)
    outs = []
    for name in ("a", "b"):
        assert main(["run", str(scen), "--out", str(tmp_path / name)]) == 0
        outs.append(tmp_path / name)
    capsys.readouterr()
    k = json.loads((outs[0] / "kpis.json").read_text())
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    assert k["offered"] == k["inducted"] + k["queued_at_end"]
    assert sum(k["rejects_by_reason"].values()) == k["rejected"]
    assert k["rejects_by_reason"]["unknown_destination"] > 0          # 'Nowhere' of vol.csv
    ch = pd.read_csv(outs[0] / "chutes.csv")
    assert ch.loc[ch.kind != "reject", "discharged"].sum() == k["sorted"]
    assert ch.loc[ch.kind == "reject", "discharged"].sum() == k["rejected"]
    blocked = ch.set_index("id").loc["K1", "blocked_pct"]
    assert blocked == pytest.approx(100 * 60 / 360)                   # 60 s of a 0.1 h shift
    ts = pd.read_csv(outs[0] / "timeseries.csv")
    for col in ("offered", "inducted", "sorted", "rejected"):
        assert ts[col].sum() == k[col]
    p = pd.read_parquet(outs[0] / "parcels.parquet")
    assert (p.status == "sorted").sum() == k["sorted"]
    assert p.recirculations.sum() == k["recirculations"]
    assert set(p.destination) >= {"Zürich", "東京"}
    # the same seed, the same files
    for f in ("chutes.csv", "timeseries.csv"):
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes()
    assert json.loads((outs[1] / "kpis.json").read_text()) == k


_GRID_ROWS = ["I.....",
              ".E@E.@",
              ">>>>>>",
              ".....I"]


def _rhcr_grid(path):
    """A hand-made RHCR .grid: row y=2 one way east, a dead end at (x=5, y=0)."""
    h, w = len(_GRID_ROWS), len(_GRID_ROWS[0])
    out = ["Grid size (x, y)", f"{w},{h}",
           "id,type,station,x,y,weight_to_NORTH,weight_to_WEST,weight_to_SOUTH,weight_to_EAST,"
           "weight_for_WAIT"]
    n_ind = n_ej = 0
    for x in range(w):
        for y in range(h):
            ch = _GRID_ROWS[y][x]
            typ = {".": "Travel", ">": "Travel", "@": "Obstacle", "I": "Induct", "E": "Eject"}[ch]
            station = "None"
            if ch == "I":
                station, n_ind = str(1000 + n_ind), n_ind + 1
            elif ch == "E":
                station, n_ej = str(10000 + n_ej), n_ej + 1
            ws = []
            # the file's columns move to y + 1, x - 1, y - 1, x + 1 (sorter.layout.rhcr)
            for dx, dy in ((0, 1), (-1, 0), (0, -1), (1, 0)):
                nx, ny = x + dx, y + dy
                ok = (ch != "@" and 0 <= nx < w and 0 <= ny < h and _GRID_ROWS[ny][nx] != "@"
                      and not (dx == -1 and (ch == ">" or _GRID_ROWS[ny][nx] == ">")))
                ws.append("1" if ok else "inf")
            ws.append("inf" if ch == "@" else "1")
            out.append(f"{x * h + y},{typ},{station},{x},{y}," + ",".join(ws))
    path.write_text("\n".join(out) + "\n")
    return path


def test_hand_made_rhcr_grid_loads_one_way_and_runs_legal_paths(tmp_path, capsys):
    g = _rhcr_grid(tmp_path / "t.grid")
    f = load_floor(g)
    assert (f.height, f.width) == (4, 6) and f.is_directed
    assert [s.label for s in f.inducts] == ["1000", "1001"]
    assert [s.label for s in f.chutes] == ["10000", "10001"]
    assert [list(s.cells) for s in f.chutes] == [[7], [9]]
    out = tmp_path / "out"
    assert main(["mapf", str(g), "--robots", "3", "--steps", "150", "--out", str(out),
                 "--json"]) == 0
    k = json.loads(capsys.readouterr().out)
    assert k["tasks_completed"] > 0
    assert k["tasks_per_step"] == pytest.approx(k["tasks_completed"] / k["steps"])
    P = np.load(out / "paths.npz")["positions"]
    assert P.shape == (151, 3)
    assert validate(f, P[0], P) is None
    # never a westward move on the one-way row y = 2 (cells 12..17)
    for t in range(1, len(P)):
        west = (P[t] == P[t - 1] - 1)
        assert not (west & (((P[t - 1] >= 12) & (P[t - 1] <= 17)) | ((P[t] >= 12) & (P[t] <= 17)))).any()


def test_hand_made_rhcr_plan_names_the_floor_labels(tmp_path, capsys):
    g = _rhcr_grid(tmp_path / "t.grid")
    (tmp_path / "p.csv").write_text("destination,chutes\nA,C0\n")
    (tmp_path / "c.toml").write_text(
        '[plan]\nname = "x"\nstrategy = "fill_first"\nmax_recirculation = 2\n[reject]\n'
        + "".join(f'{r} = "C1"\n' for r in ("no_read", "unknown_destination", "max_recirculation",
                                           "no_chute_available", "not_sortable", "late"))
        + '[[chute]]\nid = "C0"\n[[chute]]\nid = "C1"\nkind = "reject"\n')
    assert main(["mapf", str(g), "--robots", "2", "--steps", "5", "--plan",
                 str(tmp_path / "p.csv"), "--chutes", str(tmp_path / "c.toml")]) == 2
    err = capsys.readouterr().err
    assert "c.toml" in err and "'C0'" in err and "10000" in err     # names the real labels


def _lorr(tmp_path, tasks, version=None):
    for d in ("maps", "agents", "tasks"):
        (tmp_path / d).mkdir(exist_ok=True)
    (tmp_path / "maps" / "m.map").write_text(
        "type octile\nheight 5\nwidth 6\nmap\n.E..E.\n......\n.@@@..\n......\nS.S..S\n")
    (tmp_path / "agents" / "a.agents").write_text("3\n0\n12\n29\n")
    (tmp_path / "tasks" / "t.tasks").write_text(tasks)
    doc = {"mapFile": "maps/m.map", "agentFile": "agents/a.agents", "teamSize": 3,
           "taskFile": "tasks/t.tasks", "numTasksReveal": 1}
    if version:
        doc["version"] = version
    (tmp_path / "p.json").write_text(json.dumps(doc))
    return tmp_path / "p.json"


def test_lorr_strategy_default_follows_the_version(tmp_path):
    p = _lorr(tmp_path, "2\n1,24\n4,26\n")
    assert load_lorr_problem(p).strategy == "roundrobin"
    p = _lorr(tmp_path, "2\n1,24\n4,26\n", version="2024 LoRR")
    assert load_lorr_problem(p).strategy == "nearest"


def test_tiny_lorr_problem_with_rotation_turns_before_it_moves(tmp_path, capsys):
    p = _lorr(tmp_path, "5\n1\n24\n4\n26\n11\n")
    out = tmp_path / "out"
    assert main(["mapf", str(p), "--steps", "80", "--rotation", "--out", str(out), "--json"]) == 0
    k = json.loads(capsys.readouterr().out)
    assert k["rotation"] and k["tasks_completed"] > 0
    z = np.load(out / "paths.npz")
    P, H, W = z["positions"], z["headings"], int(z["width"])
    f = load_floor(tmp_path / "maps" / "m.map")
    assert validate(f, P[0], P) is None
    code = {1: 0, W: 1, -1: 2, -W: 3}                  # east, south, west, north
    for t in range(1, len(P)):
        d = P[t] - P[t - 1]
        moved = d != 0
        assert not (moved & (H[t] != H[t - 1])).any()  # a step moves or turns, not both
        for r in np.flatnonzero(moved):
            assert H[t - 1][r] == code[int(d[r])]      # forward only
        assert not (((H[t] - H[t - 1]) % 4) == 2).any()  # quarter turns


def test_hand_drawn_floor_sorting_kpis_agree(tmp_path, capsys):
    floor = tmp_path / "tiny.txt"
    floor.write_text("@@@@@@@@@@\n@I.....D.@\n@.@@@@DCD@\n@.@CD..D.@\n@.@.@@@@.@\n"
                     "@>>>>>>>.@\n@.@@@@@@.@\n@I.......@\n@@@@@@@@@@\n")
    assert main(["mapf", str(floor), "--robots", "3", "--steps", "200", "--scenario", "sorting",
                 "--no-read-rate", "0.3", "--arrival-rate", "4000", "--json"]) == 0
    k = json.loads(capsys.readouterr().out)
    assert k["tasks_per_step"] == pytest.approx(k["tasks_completed"] / 200)
    assert sum(k["parcels_by_reason"].values()) == k["parcels_sorted"]
    assert sum(k["sorted_per_chute"].values()) == k["parcels_sorted"]
    assert sum(k["rejects_by_reason"].values()) == k["parcels_rejected"]
    assert k["rejects_by_reason"]["no_read"] == k["parcels_rejected"] > 0
    assert k["parcels_picked"] == k["parcels_sorted"] + k["parcels_carried"]
    assert k["parcels_picked"] == k["parcels_offered"] - k["parcels_waiting_at_inducts"]
    assert sum(k["robot_utilisation"].values()) == pytest.approx(1.0)

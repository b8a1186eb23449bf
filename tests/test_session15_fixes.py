"""Session 15: the lead's own fixes, each with a test that fails on the old code."""
from __future__ import annotations

import numpy as np
import pytest

from sorter.cli import main

from test_assign_cli import write_case


@pytest.mark.parametrize("t", ["nan", "inf", "-inf", "1_0", "\uff11"])
def test_event_time_must_be_a_finite_plain_number(tmp_path, capsys, t):
    # float() read these, so an events file with a mangled time column replayed silently
    write_case(tmp_path, np.random.default_rng(5))
    lines = (tmp_path / "e.csv").read_text().splitlines()
    lines.insert(2, f"{t},scan,P-t,D1,0,1,,")
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    rc = main(["assign", "--plan", str(tmp_path / "p.csv"), "--chutes", str(tmp_path / "c.toml"),
               "--events", str(tmp_path / "e.csv"), "--out", str(tmp_path / "d.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "e.csv:3:" in err and "field 't'" in err and "finite" in err


def test_waves_listed_out_of_order_are_named_as_such(tmp_path):
    # was "wave 'late' overlaps wave 'early'" though the two do not overlap in time
    from sorter.errors import InputError
    from sorter.sim import load_scenario
    p = tmp_path / "s.toml"
    body = """
[scenario]
shift_hours = 4
[loop]
n_chutes = 60
n_inducts = 2
[[wave]]
name = "late"
start_h = 2
end_h = 3
rate_per_hour = 3000
[[wave]]
name = "early"
start_h = 0
end_h = 1
rate_per_hour = 3000
"""
    p.write_text(body, encoding="utf-8")
    with pytest.raises(InputError) as ei:
        load_scenario(p)
    msg = str(ei.value)
    assert "'early' (0-1 h) is listed after wave 'late' (2-3 h)" in msg and "overlaps" not in msg
    p.write_text(body.replace("start_h = 0\nend_h = 1", "start_h = 2.5\nend_h = 3.5"), encoding="utf-8")
    with pytest.raises(InputError) as ei:
        load_scenario(p)
    assert "'early' (2.5-3.5 h) overlaps wave 'late' (2-3 h)" in str(ei.value)


def test_floor_rejects_by_reason_lists_every_reason_as_the_loop_does():
    # the robot floor listed only the reasons that occurred; `sorter run`'s loop KPIs list all
    from sorter.agv.floor_sim import FloorSim, FloorSimOptions
    from sorter.agv.lifelong import make_run, simulate
    from sorter.constants import REJECT_REASONS
    from sorter.layout import sortation_floor
    floor = sortation_floor(14, 20, n_inducts=2, n_chutes=4, seed=0)
    planner, _ = make_run(floor, 6, tasks="sorting", seed=0)
    sim = FloorSim(floor, 6, np.random.default_rng(0), FloorSimOptions(no_read_rate=0.3), seed=0)
    simulate(planner, sim, 300, record=False)
    k = sim.kpis(300)
    assert k["rejects_by_reason"]["no_read"] > 0
    assert list(k["rejects_by_reason"]) == list(REJECT_REASONS)
    assert sum(k["rejects_by_reason"].values()) == k["parcels_rejected"]


def test_out_folder_left_by_a_killed_run_is_cleaned_at_the_next_write(tmp_path):
    # `kill -9` during `--out` left a hidden .sorter-writing-PID folder behind for good
    import os
    import subprocess
    import sys

    from sorter.report import written_together
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    old = tmp_path / f".sorter-writing-{dead}"
    old.mkdir()
    (old / "kpis.json").write_text("{}")
    young = tmp_path / ".sorter-writing-999999999"      # no such process, but just written
    young.mkdir()
    alive = tmp_path / f".sorter-writing-{os.getppid()}"  # a live process: never touched
    alive.mkdir()
    for d in (old, alive):
        os.utime(d, (1, 1))                             # written long ago
    with written_together(tmp_path, ["a.txt"]) as tmp:
        tmp["a.txt"].write_text("x")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert old.name not in names
    assert young.name in names and alive.name in names and "a.txt" in names

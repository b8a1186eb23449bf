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


def _bfs(moves, sources, backward=False):
    """Plain breadth-first search over the moves table (the oracle)."""
    from collections import deque
    n = moves.shape[0]
    adj = [[] for _ in range(n)]
    for v in range(n):
        for u in moves[v]:
            if u >= 0:
                (adj[u] if backward else adj[v]).append(v if backward else int(u))
    seen = [False] * n
    q = deque(int(s) for s in sources)
    for s in q:
        seen[s] = True
    while q:
        v = q.popleft()
        for u in adj[v]:
            if not seen[u]:
                seen[u] = True
                q.append(u)
    return np.array(seen, dtype=bool)


def test_reach_agrees_with_plain_bfs_on_mazes_corridors_and_one_way_grids():
    # reach() went one NumPy round per step of a maze's length (2.5 s to load a 601 x 601
    # maze); narrow fronts now go in plain Python: the same cells either way
    from sorter.layout._grid import grid_moves, reach, reverse_moves
    rng = np.random.default_rng(15)
    for k in range(120):
        h, w = (int(x) for x in rng.integers(1, 30, size=2))
        free = rng.random((h, w)) < (0.55 if k % 2 else 0.9)
        if k % 4 == 0:                       # a one-cell corridor: the narrowest front
            free = np.zeros((h, w), bool)
            free[0, :] = True
            free[:, -1] = True
        allowed = rng.random((h * w, 4)) < 0.8 if k % 3 == 0 else None
        moves = grid_moves(free, allowed)
        cells = np.flatnonzero(free.ravel())
        if not cells.size:
            continue
        src = rng.choice(cells, size=int(rng.integers(1, min(40, cells.size) + 1)), replace=False)
        assert (reach(moves, src) == _bfs(moves, src)).all()
        assert (reach(moves, src, backward=True, rev=reverse_moves(moves))
                == _bfs(moves, src, backward=True)).all()


def test_text_recirculation_with_a_point_counts_its_laps():
    # "2.0" laps read as 0 (int() reads no point): a parcel past its limit was sorted ok
    from sorter.engine import recirculation_count
    assert [recirculation_count(x) for x in ("2.0", " 3.0 ", b"4.0", "1e1", "inf", "nan", "x")] \
        == [2, 3, 4, 10, 1 << 30, 0, 0]


def test_assign_many_takes_one_sortable_flag_for_the_whole_batch():
    # recirculation took one value for all, sortable raised ValueError
    from sorter import Sorter
    from sorter.constants import REASONS
    from sorter.resources import seed_path
    s = Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))
    ids = s.destination_ids(["01422"] * 3)
    _, r = s.assign_many(ids, sortable=False)
    assert [REASONS[i] for i in r] == ["not_sortable"] * 3
    _, r = s.assign_many(ids, sortable="no")
    assert [REASONS[i] for i in r] == ["not_sortable"] * 3
    _, r = s.assign_many(ids, sortable="yes")
    assert [REASONS[i] for i in r] == ["ok"] * 3


def test_validate_works_however_it_is_imported():
    # `from sorter.agv import validate` gave the module: "'module' object is not callable"
    import importlib

    from sorter.agv import validate as v_mod
    from sorter.agv.validate import validate as v_fn
    from sorter.layout import parse_ascii
    floor = parse_ascii("...\n...\n")
    starts = np.array([0, 2])
    good = np.array([[0, 2], [1, 5]])
    bad = np.array([[0, 2], [1, 1]])                 # both robots in cell 1
    assert v_mod(floor, starts, good) is None and v_fn(floor, starts, good) is None
    assert v_mod(floor, starts, bad) is not None
    m = importlib.import_module("sorter.agv.validate")
    assert m.check_paths and m.validate is v_fn

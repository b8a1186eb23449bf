"""Regression tests of the lead's own fixes in session 14."""
import pytest

from sorter.errors import InputError
from sorter.plan import parse_plan_csv


def test_plan_csv_comment_and_blank_lines_before_the_header_are_skipped():
    # the README says '#' lines are comments; one before the header was a "bad header"
    text = ("# plan of wave 1\n\n#  exported by the WMS\ndestination,chutes\n"
            "X1,C001;C002\n# a comment between rows\nX2,C003\n")
    assert parse_plan_csv(text) == {"X1": ("C001", "C002"), "X2": ("C003",)}


def test_plan_csv_bad_header_after_comments_names_its_own_line():
    with pytest.raises(InputError) as e:
        parse_plan_csv("# c\n\ndest,chute\nX1,C001\n", path="p.csv")
    assert e.value.line == 3 and e.value.field == "header"


def test_plan_csv_of_only_comments_says_there_is_no_header():
    with pytest.raises(InputError, match="no header line"):
        parse_plan_csv("# nothing yet\n\n", path="p.csv")


def test_floor_refuses_two_chutes_with_one_label():
    # the chute engine refused the repeat only when a sorting floor was run
    import numpy as np
    from sorter.layout.floor import Floor, Station
    cells = np.array([[1, 3, 1, 3], [2, 1, 1, 1]], np.int8)
    chutes = [Station(0, "C1", "chute", [1]), Station(1, "C1", "chute", [3])]
    inducts = [Station(0, "I1", "induct", [4])]
    with pytest.raises(InputError, match="both labelled 'C1'") as e:
        Floor(cells, inducts=inducts, chutes=chutes)
    assert e.value.field == "chutes"
    chutes[1] = Station(1, "C2", "chute", [3])
    assert [s.label for s in Floor(cells, inducts=inducts, chutes=chutes).chutes] == ["C1", "C2"]


def test_planner_pickle_says_why_it_cannot():
    import copy
    import pickle
    from sorter.agv.pibt import Planner
    from sorter.layout import Floor
    p = Planner(Floor.from_ascii("....\n...."), 2, [0, 5], seed=0)
    for attempt in (pickle.dumps, copy.deepcopy, copy.copy):
        with pytest.raises(TypeError, match="build one per process"):
            attempt(p)


def test_numbers_past_ints_limit_name_their_file_line_or_flag(tmp_path):
    # Python's int() refuses 4,301+ digits with a bare ValueError (no file, no line)
    from sorter.layout.lorr import load_lorr_problem
    from sorter.sweep import capacity_sweep, parse_values
    big = "1" * 5000
    p = tmp_path / "p.json"
    p.write_text('{\n "mapFile": "m.map",\n "teamSize": ' + big + "\n}\n")
    with pytest.raises(InputError) as e:
        load_lorr_problem(p)
    assert e.value.line == 3
    s = tmp_path / "s.toml"
    s.write_text("[scenario]\nseed = " + big + "\n")
    with pytest.raises(InputError) as e:
        capacity_sweep(s, {"seed": [1, 2]}, seeds=1, n_workers=1)
    assert e.value.line == 2
    with pytest.raises(InputError, match="4,300 digits"):
        parse_values(big)


def test_help_states_every_default_once(capsys):
    from sorter.cli import main
    with pytest.raises(SystemExit):
        main(["loadgen", "--help"])
    out = " ".join(capsys.readouterr().out.split())      # (argparse wraps lines)
    assert "(default: 7070)" in out and "(default: 1111.0)" in out
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: [])" not in out and "(default: 5)" in out
    # an option whose help already says its default gets no second one
    assert "the LocalCluster's workers (default" not in out


def test_out_of_memory_is_one_line_not_a_traceback(monkeypatch, capsys):
    import sorter.commands.run as run_cmd
    from sorter.cli import main

    def boom(args):
        raise MemoryError()
    monkeypatch.setattr(run_cmd, "run", boom)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sorter run: error: out of memory") and "Traceback" not in err


def test_plots_say_the_clock_time_of_the_shift_start(tmp_path, monkeypatch):
    # a planner reads a shift by the clock: "0 = 14:00" beside "hours into the shift"
    import dataclasses
    from plot_capture import capture
    from sorter.report import write_outputs
    from sorter.resources import seed_path
    from sorter.sim import load_scenario, simulate
    from sorter.sim.kpis import compute_kpis
    sc = load_scenario(seed_path("scenarios/default.toml"))
    assert sc.shift_start_h == 14.0
    sc = dataclasses.replace(sc, shift_hours=1.0, waves=sc.waves[:1])
    figs = capture(monkeypatch)
    res = simulate(sc)
    write_outputs(res, compute_kpis(res), tmp_path)
    assert figs["throughput.png"].axes[0].get_xlabel().endswith("; 0 = 14:00")
    monkeypatch.undo()                  # (capture keeps figures open)
    import matplotlib.pyplot as plt
    plt.close("all")
    with pytest.raises(InputError) as e:
        dataclasses.replace(sc, shift_start_h=24.0)
    assert e.value.field == "shift_start_h"

"""QA session 22 (polish): small defects found by the walkthrough --

* ``sorter mapf --scenario sorting --report`` of a run that sorted no parcel (or ran 0 steps)
  left ``chutes.png`` / ``robot_states.png`` out, though the README lists them: now written,
  saying there is nothing to plot, and never an earlier run's file left as if current;
* counts printed with a plural noun whatever the count ("1 inducts", "1 robots, 1 steps");
* ``timeseries.csv``'s rates as ``1799.9999999999998``;
* a blank line in a LoRR ``.agents`` / ``.tasks`` file counted as an entry
  ("says 2 entries but 3 follow"): now named as the error, at its line, by both loaders.
"""
from __future__ import annotations

import csv
import json
import re

import pytest

from plot_capture import capture
from sorter.cli import main
from sorter.errors import InputError
from sorter.layout import Floor
from sorter.layout.lorr import load_cell_list, load_task_list
from sorter.resources import seed_path

SMALL = seed_path("floors/small_12x20.txt")


def _mapf(out, steps, *extra):
    return main(["mapf", str(SMALL), "--robots", "3", "--steps", str(steps), "--seed", "1",
                 "--out", str(out), "--report", *extra])


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


# ------------------------------------------------------------ 1. the report's empty plots
def test_sorting_report_of_a_run_that_sorted_nothing_writes_chutes_png_saying_so(
        tmp_path, capsys, monkeypatch):
    """3 steps with the chute engine: no parcel reaches a chute yet. chutes.png was left out
    (and an earlier run's deleted); now written with every chute at 0 and a plain note."""
    figs = capture(monkeypatch)
    out = tmp_path / "m"
    assert _mapf(out, 3, "--scenario", "sorting") == 0
    assert "chutes.png" in capsys.readouterr().out        # the 'wrote ...' line names it
    k = json.loads((out / "kpis.json").read_text())
    assert k["parcels_sorted"] == 0 and k["sorted_per_chute"] == {}
    assert (out / "chutes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = figs["chutes.png"]
    assert "no parcels sorted in this run" in _texts(fig)
    ax = fig.axes[0]
    assert len(ax.get_xticklabels()) == 8                  # small_12x20's chutes, all at 0
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1"]   # not 0, 0, 0, 1, 1
    page = (out / "report.html").read_text()
    assert "Parcels per chute" in page and page.count("data:image/png;base64,") == 4


def test_sorting_report_into_a_folder_of_an_earlier_run_keeps_no_stale_chute_plot(
        tmp_path, capsys, monkeypatch):
    """A 60-step sorting run, then a 1-step one into the same folder: chutes.png is this
    run's (saying no parcel was sorted), not the earlier bars; a plain run then drops it."""
    out = tmp_path / "m"
    assert _mapf(out, 60, "--scenario", "sorting") == 0
    before = (out / "chutes.png").read_bytes()
    figs = capture(monkeypatch)
    assert _mapf(out, 1, "--scenario", "sorting") == 0
    assert (out / "chutes.png").read_bytes() != before
    assert "no parcels sorted in this run" in _texts(figs["chutes.png"])
    assert _mapf(out, 1, "--scenario", "random") == 0      # no chute engine: no chute plot
    assert not (out / "chutes.png").exists()
    capsys.readouterr()


@pytest.mark.parametrize("scenario", ["sorting", "random"])
def test_report_of_zero_steps_writes_robot_states_png_saying_so(tmp_path, capsys, monkeypatch,
                                                                scenario):
    """0 steps: robot_states.png was left out (an earlier one deleted); now written, saying
    that no step was run, and shown on the page like the other plots."""
    figs = capture(monkeypatch)
    out = tmp_path / "z"
    assert _mapf(out, 0, "--scenario", scenario) == 0
    capsys.readouterr()
    assert (out / "robot_states.png").is_file()
    assert "no steps run: no robot states to plot" in _texts(figs["robot_states.png"])
    page = (out / "report.html").read_text()
    assert "Robot states" in page
    assert (out / "chutes.png").is_file() == (scenario == "sorting")


# ------------------------------------------------------------------------ 2. plurals
def test_floor_report_says_1_induct_1_robot_1_step(tmp_path, capsys):
    floor = tmp_path / "one.txt"
    floor.write_text("I....\n.....\n.CC..\n.CCD.\n.....\n")
    assert main(["mapf", str(floor), "--robots", "1", "--steps", "1", "--out",
                 str(tmp_path / "o"), "--report"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("one: 1 robot, 1 step, ")                     # was "1 robots, 1 steps"
    page = " ".join((tmp_path / "o" / "report.html").read_text().split())
    assert "1 induct, 1 chute; 1 robot, 1 step," in page                  # was "1 inducts, ..."
    assert "1 robot, 1 step</td>" in page                                 # the key figures' row
    # (the dwells' "5 / 1 steps" is a unit after a pair)
    assert not re.search(r"(?<!/ )\b1 (inducts|chutes|robots|steps)\b", page)


TINY = """\
[scenario]
name = "tiny"
seed = 3
shift_hours = 0.02
interval_minutes = 1

[loop]
name = "L"
length_m = 40.0
speed_mps = 1.0
pitch_m = 1.0
n_chutes = 3
n_overflow = 1
n_reject = 1
capacity = 1
n_inducts = 1
induct_rate = 3000
n_destinations = 1

[[wave]]
name = "w"
start_h = 0.0
end_h = 0.02
rate_per_hour = 3000

[destinations]
mix = "zipf"
zipf_s = 8.0

[scan]
no_read_rate = 0.0
not_sortable_rate = 0.0
"""


def _tiny_run(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    out = tmp_path / "o"
    assert main(["run", str(tmp_path / "tiny.toml"), "--out", str(out)]) == 0
    return out


def test_loop_report_says_1_induct(tmp_path, capsys):
    """The shift report's loop line said "1 inducts"."""
    page = (_tiny_run(tmp_path) / "report.html").read_text()
    capsys.readouterr()
    assert "1 induct;" in page and "1 inducts" not in page


def test_loop_timeseries_rates_to_fixed_precision(tmp_path, capsys):
    """A 72 s shift in 1-minute intervals: timeseries.csv's last interval (12 s, 6 parcels
    offered) said offered_per_hour 1799.9999999999998. The CSV still equals kpis.json and
    its counts still add up to the totals."""
    out = _tiny_run(tmp_path)
    capsys.readouterr()
    text = (out / "timeseries.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    k = json.loads((out / "kpis.json").read_text())
    assert rows[-1]["offered"] == "6" and rows[-1]["offered_per_hour"] == "1800"
    for key in ("offered_per_hour", "inducted_per_hour", "sorted_per_hour", "rejected_per_hour"):
        assert [float(r[key]) for r in rows] == k["intervals"][key]
        assert all(round(float(r[key]), 3) == float(r[key]) for r in rows)
        assert not any(re.search(r"(99999|00000)\d", r[key]) for r in rows), key
    for key in ("offered", "inducted", "sorted", "rejected"):
        assert sum(int(r[key]) for r in rows) == k[key]


def test_assign_summary_says_1_decision_1_event(tmp_path, capsys):
    ev = tmp_path / "ev.csv"
    ev.write_text("t,event,parcel,destination,recirculation,sortable,chute,plan\n"
                  "0.1,scan,P1,01422,0,1,,\n")
    assert main(["assign", "--plan", str(seed_path("plan/demo_plan.csv")), "--chutes",
                 str(seed_path("plan/demo_chutes.toml")), "--events", str(ev), "--out",
                 str(tmp_path / "d.csv")]) == 0
    assert capsys.readouterr().out.startswith("1 decision, 1 event applied\n")


def test_journal_lines_say_1_row(tmp_path, capsys, monkeypatch):
    import sorter.service.journal as journal
    monkeypatch.setattr(journal, "export", lambda *a, **k: 1)
    monkeypatch.setattr(journal, "journal_info", lambda *a, **k: {
        "rows": 1, "last_id": 1, "snapshots": [], "by_kind": {"scan": 1}, "by_reason": {},
        "clients": {}})
    monkeypatch.setattr(journal, "restore", lambda *a, **k: None)
    assert main(["journal", "export", str(tmp_path / "j.db"), "--out", "x.csv"]) == 0
    assert capsys.readouterr().out == "1 row -> x.csv\n"
    assert main(["journal", "show", str(tmp_path / "j.db")]) == 0
    assert ": 1 row (last id 1)" in capsys.readouterr().out


# --------------------------------------------------------------- 4. LoRR blank lines
FLOOR = Floor.from_ascii("......\n......\n......")


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("load,body,noun", [
    (lambda p: load_cell_list(p, FLOOR, field="start"), "0\n\n2\n", "entries"),
    (lambda p: load_task_list(p, FLOOR), "0\n\n2\n", "entries"),
    (lambda p: load_task_list(p, FLOOR), "0,1\n\n2,3\n", "tasks"),
])
def test_lorr_blank_line_among_the_entries_is_the_error_named(tmp_path, load, body, noun, count):
    """'2' then two cells with a blank line between: "line 1 says 2 entries but 3 follow"
    (the blank counted as an entry, the error on line 4); with '3', "'' is not an integer" or
    "task '' has an empty errand". Now both loaders name the blank line, on line 3."""
    p = tmp_path / "a.agents"
    p.write_text(f"{count}\n{body}")
    with pytest.raises(InputError) as e:
        load(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:3: ") and f"blank line among the {noun}" in msg, msg
    assert "follow" not in msg and "no blank lines" in msg
    p.write_text(f"# version for LoRR 2024\n2\n{body}")       # after a comment line: line 4
    with pytest.raises(InputError, match=r"a.agents:4: .*blank line among"):
        load(p)
    p.write_text(f"2\n{body.replace(chr(10) * 2, chr(10))}\n\n")   # trailing blanks: fine
    load(p)

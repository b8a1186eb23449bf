"""QA session 7: `sorter run`, `sorter assign` and `sorter sweep` driven with hand-written inputs.

Each test pins a problem found by an outside-style sweep (a traceback, a silently lost value
or an input file overwritten) and failed before its fix. Small files, in-process CLI calls.
"""
from __future__ import annotations

import csv

import pytest

from sorter.cli import main
from sorter.errors import InputError
from sorter.plan import load_plan_routes, parse_plan_csv

CHUTES = """
[plan]
name = "w1"
strategy = "fill_first"
max_recirculation = 1
overflow = ["OV"]
[reject]
no_read = "R1"
unknown_destination = "R1"
max_recirculation = "R1"
no_chute_available = "R1"
not_sortable = "R1"
late = "R1"
[[chute]]
id = "A"
capacity = 1
position = 20.0
[[chute]]
id = "B"
capacity = 5
position = 25.0
[[chute]]
id = "OV"
kind = "overflow"
capacity = 5
position = 30.0
[[chute]]
id = "R1"
kind = "reject"
capacity = 100
position = 40.0
"""

HEADER = "t,event,parcel,destination,recirculation,sortable,chute,plan\n"

SCENARIO = """
[scenario]
name = "qa7"
seed = 5
shift_hours = 0.05
[loop]
length_m = 50.0
speed_mps = 2.0
pitch_m = 1.0
scanner_m = 10.0
chutes = "chutes.toml"
plan = "plan.csv"
[[loop.induct]]
id = "I1"
position_m = 2.0
max_rate_per_hour = 3000
[[wave]]
start_h = 0.0
end_h = 0.05
rate_per_hour = 1500
[destinations]
mix = "csv"
volumes = "volumes.csv"
"""


def one_error_line(capsys, argv, *needles):
    """Run the CLI; it must fail with exit 2 and ONE error line naming every needle."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sorter {argv[0]}: error: "), err
    for n in needles:
        assert n in lines[0], (n, err)
    return lines[0]


@pytest.fixture()
def floor(tmp_path):
    (tmp_path / "chutes.toml").write_text(CHUTES)
    (tmp_path / "plan.csv").write_text("destination,chutes\nX1,A;B\nX2,B\n")
    (tmp_path / "volumes.csv").write_text("destination,volume\nX1,5\nX2,3\n")
    (tmp_path / "sc.toml").write_text(SCENARIO)
    return tmp_path


# --------------------------------------------------------------------------- plan CSV


def test_plan_row_with_alternates_after_a_comma_is_refused_not_cut(floor, capsys):
    """``X1,A,B`` (alternate after a ',' instead of ';') used to load as X1 -> A only."""
    plan = floor / "bad.csv"
    plan.write_text("destination,chutes\nX2,B\nX1,A,B\n")
    ev = floor / "ev.csv"
    ev.write_text(HEADER + "1,scan,P1,X1,,,,\n")
    err = one_error_line(capsys, ["assign", "--plan", str(plan), "--chutes", str(floor / "chutes.toml"),
                                  "--events", str(ev), "--out", str(floor / "d.csv")],
                         f"{plan}:3", "chutes", "';'")
    assert "3 fields" in err
    with pytest.raises(InputError, match="3 fields"):
        parse_plan_csv("destination,chutes\nX1,A,B\n")


def test_plan_rows_with_empty_trailing_fields_still_load(tmp_path):
    # spreadsheets often write a trailing empty column: nothing is lost, so it stays accepted
    p = tmp_path / "plan.csv"
    p.write_bytes(b'\xef\xbb\xbfdestination,chutes,\r\n"X1","A;B",\r\n\r\nX2,B,,\r\n')
    assert load_plan_routes(p) == {"X1": ("A", "B"), "X2": ("B",)}


# --------------------------------------------------------------------------- volumes CSV


def test_volumes_csv_with_an_oversized_field_is_one_line(floor, capsys):
    """A field over the csv module's limit used to end `sorter run` with a traceback."""
    (floor / "volumes.csv").write_text('destination,volume\nX1,5\nX2,"' + "9" * 200_000 + '"\n')
    one_error_line(capsys, ["run", str(floor / "sc.toml"), "--json"], "volumes.csv:3", "bad CSV")


def test_volumes_with_a_thousands_separator_are_refused(floor, capsys):
    """``X1,1,000`` used to read as a volume of 1 (the '000' silently dropped)."""
    (floor / "volumes.csv").write_text("destination,volume\nX2,300\nX1,1,000\n")
    err = one_error_line(capsys, ["run", str(floor / "sc.toml"), "--json"], "volumes.csv:3", "volume")
    assert "3 fields" in err


def test_volumes_with_bom_crlf_and_quotes_still_load(floor, capsys):
    (floor / "volumes.csv").write_bytes(b'\xef\xbb\xbfdestination,volume\r\n"X1","5"\r\n\r\nX2,3,\r\n')
    assert main(["run", str(floor / "sc.toml"), "--json"]) == 0
    assert '"offered"' in capsys.readouterr().out


# --------------------------------------------------------------------------- events CSV


def test_event_row_with_more_fields_than_the_header_names_its_line(floor, capsys, caplog):
    """An unquoted ',' shifts the columns: the row is refused (or skipped), never guessed."""
    ev = floor / "ev.csv"
    ev.write_text(HEADER + "1,scan,P1,X1,,,,\n2,scan,P2,X1,0,1,,,extra\n3,scan,P3,X2,,,,,\n")
    args = ["assign", "--plan", str(floor / "plan.csv"), "--chutes", str(floor / "chutes.toml"),
            "--events", str(ev), "--out", str(floor / "d.csv")]
    one_error_line(capsys, args, f"{ev}:3", "9 fields")
    assert main(args + ["--on-error", "skip"]) == 0
    rows = list(csv.DictReader((floor / "d.csv").open()))
    assert [r["parcel"] for r in rows] == ["P1", "P3"]        # an empty 9th field is harmless
    assert f"{ev}:3" in caplog.text


# --------------------------------------------------------------------------- assign --out


@pytest.mark.parametrize("which", ["--plan", "--chutes", "--events"])
def test_assign_out_onto_an_input_file_is_refused_and_the_input_kept(floor, capsys, which):
    """``--out plan.csv`` used to replace the plan (or events, chutes) with the decisions."""
    ev = floor / "ev.csv"
    ev.write_text(HEADER + "1,scan,P1,X1,,,,\n")
    files = {"--plan": floor / "plan.csv", "--chutes": floor / "chutes.toml", "--events": ev}
    before = files[which].read_bytes()
    argv = ["assign"]
    for flag, p in files.items():
        argv += [flag, str(p)]
    target = floor / "." / files[which].name          # another spelling of the same file
    one_error_line(capsys, argv + ["--out", str(target)], "--out", which)
    assert files[which].read_bytes() == before
    assert sorted(p.name for p in floor.iterdir()) == ["chutes.toml", "ev.csv", "plan.csv",
                                                       "sc.toml", "volumes.csv"]


# --------------------------------------------------------------------------- scenario keys


def test_wave_with_both_rate_kinds_is_refused(floor, capsys):
    """``rate_per_hour`` beside ``induct_rates_per_hour`` used to be ignored without a word
    (and a sweep varying it produced identical rows)."""
    text = SCENARIO.replace("rate_per_hour = 1500\n",
                            "rate_per_hour = 1500\ninduct_rates_per_hour = [100]\n")
    (floor / "sc.toml").write_text(text)
    err = one_error_line(capsys, ["run", str(floor / "sc.toml"), "--json"], "sc.toml",
                         "wave[0].induct_rates_per_hour", "rate_per_hour")
    assert "not both" in err
    (floor / "sc.toml").write_text(text.replace("rate_per_hour = 1500\n", "", 1))
    assert main(["run", str(floor / "sc.toml"), "--json"]) == 0     # either one alone is fine


def test_volumes_without_a_mix_are_used(floor):
    """``volumes = ...`` without ``mix`` used to draw a Zipf mix (the default) and ignore the
    volumes file without a word; the volumes now make ``csv`` the default mix."""
    (floor / "sc.toml").write_text(SCENARIO)
    out_csv = floor / "with_mix"
    assert main(["run", str(floor / "sc.toml"), "--out", str(out_csv)]) == 0
    (floor / "sc2.toml").write_text(SCENARIO.replace('mix = "csv"\n', ""))
    out_none = floor / "no_mix"
    assert main(["run", str(floor / "sc2.toml"), "--out", str(out_none)]) == 0
    assert (out_csv / "parcels.parquet").read_bytes() == (out_none / "parcels.parquet").read_bytes()
    # an explicit other mix stays allowed (a sweep may vary mix over csv and zipf)
    (floor / "sc.toml").write_text(SCENARIO.replace('mix = "csv"', 'mix = "zipf"'))
    assert main(["run", str(floor / "sc.toml"), "--json"]) == 0


def test_sweep_seeds_beyond_the_cap_are_refused(capsys):
    # was: --seeds 100000000 started a sweep that would run for years, silently with
    # --no-progress
    from sorter.commands.sweep import MAX_SEEDS
    capsys.readouterr()
    from pathlib import Path
    small = Path(__file__).resolve().parent.parent / "seeds" / "scenarios" / "small.toml"
    assert main(["sweep", str(small), "--vary", "loop.speed_mps=2.0",
                 "--seeds", str(MAX_SEEDS + 1), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seeds" in err[0] and f"1..{MAX_SEEDS:,}" in err[0]

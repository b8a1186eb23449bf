"""Regression tests for the fixes of session 18 (each fails on the code before its fix)."""
from __future__ import annotations

import pytest

from sorter.agv import make_run, simulate
from sorter.errors import InputError
from sorter.layout import Floor, sortation_floor


def test_simulate_refuses_a_progress_that_is_not_callable():
    """Was: `simulate(..., progress=5)` ran the first step, then failed with "'int' object
    is not callable" and no field named."""
    f = sortation_floor(12, 20, n_inducts=2, n_chutes=4, seed=0)
    with pytest.raises(InputError, match="progress") as e:
        simulate(*make_run(f, 4, seed=0), 3, progress=5)
    assert e.value.field == "progress" and "callable" in str(e.value)
    seen = []
    simulate(*make_run(f, 4, seed=0), 3, progress=seen.append)
    assert seen == [0, 1, 2]


def test_a_floor_named_none_is_called_floor():
    """Was: Floor(..., name=None) was named 'None' in reports and repr."""
    f = Floor([[1, 1], [1, 1]], name=None)
    assert f.name == "floor" and "'None'" not in repr(f)
    assert Floor([[1, 1]], name="bay 3").name == "bay 3"


@pytest.mark.parametrize("argv", [
    ["run", "seeds/scenarios/peak.toml"],
    ["mapf", "seeds/floors/small_12x20.txt", "--robots", "2", "--steps", "2"],
    ["assign", "--plan", "seeds/plan/demo_plan.csv", "--chutes", "seeds/plan/demo_chutes.toml",
     "--events", "seeds/plan/demo_events.csv", "--out", "d.csv"],
])
def test_a_seeds_path_outside_the_repository_says_where_the_installed_copy_is(
        argv, tmp_path, monkeypatch, capsys):
    """Was: the docs' `seeds/...` examples run outside the repository root said only "file
    not found"; now the error names the working folder and the installed seed file."""
    from sorter.cli import main
    from sorter.resources import seed_hint, seed_path
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert "file not found here" in err and "relative to the repository root" in err
    name = "plan/demo_chutes.toml" if argv[0] == "assign" else argv[1].split("/", 1)[1]
    assert f"installed copy of this one is {seed_path(name)}" in err
    assert seed_hint("seeds/no/such.csv") == "" and seed_hint(tmp_path / "seeds" / "x") == ""


def _journal_with_rows(path, rows):
    """A journal of `discharged` rows (client, seq) and a snapshot after the last one."""
    from sorter.engine import Sorter
    from sorter.resources import seed_path
    from sorter.service.journal import Journal
    s = Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))
    j = Journal(path, "batch")
    for i, (client, seq) in enumerate(rows, 1):
        j.append((i, 0.0, client, seq, "discharged", None, None, None, None, "C001", None,
                  b"x", None))
        if i % 3 == 0:
            assert j.flush(30)
    j.append_snapshot(len(rows), s.state_dict())
    assert j.close(30)


def test_a_restart_reads_each_clients_last_seq_without_scanning_the_journal(tmp_path,
                                                                             monkeypatch):
    """Was: restore() ran `SELECT client, MAX(seq) ... GROUP BY client` over the whole
    journal (2.6 s of a restart at 2,000,000 rows, growing with the shift); the writer now
    keeps each client's highest seq in a `clients` table with its rows."""
    import sqlite3

    import sorter.service.journal as jr
    rows = [("plc1", 5), ("plc2", 1), ("plc1", 3), ("", 7), ("plc2", 9), ("plc1", 4), ("", 2)]
    path = tmp_path / "j.db"
    _journal_with_rows(path, rows)
    want = {"plc1": 5, "plc2": 9, "": 7}
    seen = []
    real = jr._connect_ro

    def traced(p):
        con = real(p)
        con.set_trace_callback(seen.append)
        return con

    monkeypatch.setattr(jr, "_connect_ro", traced)
    assert jr.restore(path).last_seq == want
    assert not [q for q in seen if "GROUP BY" in q.upper()], seen
    assert jr.journal_info(path)["clients"] == want
    # a journal written before the table: read from the rows, filled when next opened
    con = sqlite3.connect(path)
    con.execute("DROP TABLE clients")
    con.execute("DELETE FROM meta WHERE key = 'clients'")
    con.commit()
    con.close()
    assert jr.restore(path).last_seq == want
    jr.Journal(path, "batch").close(30)
    seen.clear()
    assert jr.restore(path).last_seq == want
    assert not [q for q in seen if "GROUP BY" in q.upper()], seen


@pytest.mark.parametrize("flag", ["--dwell-chute", "--dwell-induct"])
def test_a_dwell_on_a_floor_without_such_cells_is_refused(flag, tmp_path, capsys):
    """Was: taken, printed in the summary ("dwell chute/induct 3/0") and without effect: a
    floor with no stations has no drop or induct cell to dwell at. 0 stays accepted."""
    from sorter.cli import main
    floor = tmp_path / "open.txt"
    floor.write_text("....\n....\n....\n")

    def run(*extra):
        try:
            return main(["mapf", str(floor), "--robots", "2", "--steps", "3", *extra])
        except SystemExit as e:
            return e.code

    assert run(flag, "3") == 2
    assert f"{flag} 3: floor 'open' has no" in capsys.readouterr().err
    assert run(flag, "0") == 0

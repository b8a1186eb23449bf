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

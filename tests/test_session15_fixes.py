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

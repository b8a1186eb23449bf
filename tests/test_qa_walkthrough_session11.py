"""QA session 11: a fresh user's walk through README.md, docs/ and seeds/README.md.

Regressions for what the walk-through found in the command help texts.
"""
import re

import pytest

from sorter.cli import main
from sorter.resources import seed_path


def _help(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def _option_help(text, option):
    """The help paragraph of one option in an argparse help text (wrapped lines joined)."""
    m = re.search(rf"^  {re.escape(option)}\b.*?(?=^  -|\Z)", text, re.M | re.S)
    assert m, f"{option} not in the help text"
    return " ".join(m.group(0).split())


def test_run_out_help_names_every_file_it_writes(tmp_path, capsys):
    # `sorter run --help`: the --out option listed kpis.json, parcels.parquet, timeseries.csv,
    # plots and report.html but not chutes.csv, which --out writes too (README lists it)
    out = tmp_path / "run"
    assert main(["run", str(seed_path("scenarios/small.toml")), "--out", str(out)]) == 0
    capsys.readouterr()
    written = {p.name for p in out.iterdir()}
    assert {"kpis.json", "chutes.csv", "report.html"} <= written
    opt = _option_help(_help(capsys, "run"), "--out DIR")
    for name in sorted(written):
        if name.endswith(".png"):
            assert "plots" in opt
        else:
            assert name in opt, f"--out writes {name} but its help does not say so: {opt!r}"


def test_sweep_help_installs_dask_extra_from_the_checkout(capsys):
    # `pip install 'sorter[dask]'` on a Dask worker without this package installs PyPI's
    # unrelated `sorter` project; the help must name the checkout's extra instead
    text = _help(capsys, "sweep")
    example = text[text.index("example:"):]
    assert "--dask tcp://" in example
    assert "sorter[dask]" not in text
    assert "pip install '.[dask]'" in " ".join(example.split())


def test_sweep_table_columns_line_up_and_counts_read_right():
    # the table's widths were fixed: a CI with two digits before the point shifted its row;
    # the header said "1 seeds"
    from sorter.sweep import capacity_sweep
    res = capacity_sweep(seed_path("scenarios/small.toml"),
                         {"wave.0.rate_per_hour": [4000, 30000]}, seeds=[0, 1], n_workers=1)
    lines = res.format_table().splitlines()
    table = [ln for ln in lines[2:] if ln and not set(ln) <= {"-"}]
    assert len(table) == 3 and len({len(ln) for ln in table}) == 1, lines
    assert "2 seeds" in lines[0]
    one = capacity_sweep(seed_path("scenarios/small.toml"), {"wave.0.rate_per_hour": [4000]},
                         seeds=[0], n_workers=1)
    head = one.format_table().splitlines()[0]
    assert "1 point x 1 seed = 1 run," in head

"""QA session 12: a fresh user's walk through the README's robot floors and docs/sweep.md.

Regressions for what the walk-through found: the documented floor-sweep settings, report files
and offered-load KPIs must be the ones the code accepts and writes.
"""
import json
import re
from pathlib import Path

import pytest

from sorter.cli import main
from sorter.resources import seed_path

ROOT = Path(__file__).resolve().parents[1]


def _text(rel):
    path = ROOT / rel
    if not path.is_file():
        pytest.skip(f"{rel} not beside the tests (installed without the checkout)")
    return " ".join(path.read_text(encoding="utf-8").split())


def _listed_settings(text, start, stop):
    """Backticked (or bare) setting names between two phrases of a text."""
    part = text[text.index(start):text.index(stop, text.index(start))]
    return set(re.findall(r"\b([a-z]+(?:_[a-z]+)*)\b", part))


def test_floor_sweep_settings_in_docs_and_help_are_the_accepted_ones():
    from sorter.commands import sweep as sweep_cmd
    from sorter.floor_sweep import FLOOR_SETTINGS
    docs = _text("docs/sweep.md")
    named = _listed_settings(docs, "The keys are `sorter mapf`'s settings", "Seeds are 0")
    missing = set(FLOOR_SETTINGS) - named
    assert not missing, f"docs/sweep.md does not list the floor settings {sorted(missing)}"
    helptext = " ".join(sweep_cmd.__doc__.split())
    named = _listed_settings(helptext, "The keys are sorter mapf's settings", "The table")
    missing = set(FLOOR_SETTINGS) - named
    assert not missing, f"sorter sweep --help does not list the floor settings {sorted(missing)}"


def test_readme_report_files_and_offered_load_kpis_are_written(tmp_path, capsys):
    # README "Outputs": --report adds report.html with its PNGs beside it; with
    # --arrival-rate kpis.json has the offered-load KPIs it names
    from sorter.agv.report import REPORT_FILES
    readme = _text("README.md")
    outputs = readme[readme.index("**Outputs.**"):readme.index("**Embedding the planner**")]
    for name in REPORT_FILES:
        assert f"`{name}`" in outputs, f"README's Outputs do not name {name}"
    out = tmp_path / "o"
    assert main(["mapf", str(seed_path("floors/small_12x20.txt")), "--robots", "6",
                 "--steps", "60", "--arrival-rate", "3000", "--out", str(out), "--report"]) == 0
    capsys.readouterr()
    written = {p.name for p in out.iterdir()}
    assert set(REPORT_FILES) <= written
    kpis = json.loads((out / "kpis.json").read_text())
    named = re.findall(r"`([a-z_0-9]+)`", outputs[outputs.index("--arrival-rate"):])
    for key in ("parcels_offered", "offered_per_hour", "parcels_waiting_at_inducts",
                "induct_wait_p95"):
        assert key in named and key in kpis, key
    assert kpis["parcels_offered"] is not None
    assert "starved" in kpis["robot_utilisation"] and "starved" in outputs


def test_readme_queue_kpis_come_with_induct_queues(tmp_path, capsys):
    # README: `induct_queue_mean` / `induct_queue_max` on floors with induct queues (not on
    # every sorting floor)
    readme = _text("README.md")
    assert "on floors with induct queues `induct_queue_mean`" in readme
    for floor, has in (("floors/queues_11x29.txt", True), ("floors/small_12x20.txt", False)):
        out = tmp_path / floor.split("/")[1]
        assert main(["mapf", str(seed_path(floor)), "--robots", "6", "--steps", "40",
                     "--scenario", "sorting", "--out", str(out)]) == 0
        capsys.readouterr()
        kpis = json.loads((out / "kpis.json").read_text())
        assert ("induct_queue_mean" in kpis) is has and ("induct_queue_max" in kpis) is has

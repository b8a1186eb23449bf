"""QA session 13: a fresh machine and the command-line documentation.

An outside user has Python 3.11, pip and gcc and reads README.md, docs/*.md and each
``sorter COMMAND --help``. These tests check what that user relies on and what can run quickly:

* packaging: the README's install block, the metadata in pyproject.toml / meson.build /
  ``sorter.__version__``, the seed files the built-in defaults need, and that no ``__pycache__``
  of any package folder leaks into the wheel (meson's ``install_subdir`` copies whatever lies in
  the source folder, so each folder's ``__pycache__`` must be excluded by name);
* every ``sorter ...`` command shown in a shell block of the docs or in a ``--help`` example
  block parses with the real CLI, and the seed files it names exist;
* the documented outputs (file names, CSV columns, JSON keys, npz arrays, the export columns)
  are the ones the commands write, on short runs;
* the service transcripts of README.md and docs/service.md are what a fresh service answers.
"""
from __future__ import annotations

import csv
import json
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sorter.cli import COMMANDS, build_parser, main
from sorter.resources import shared_path

ROOT = Path(__file__).resolve().parents[1]


def _doc(rel):
    path = ROOT / rel
    if not path.is_file():
        pytest.skip(f"{rel} not beside the tests (installed without the checkout)")
    return path.read_text(encoding="utf-8")


def _docs():
    names = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))
    return {name: _doc(name) for name in names}


def _join_continuations(text):
    return re.sub(r"\\\n\s*", "", text)


def _strip_comment(line):
    # drop a trailing `  # ...` comment (the docs put one after two or more spaces)
    return re.split(r"\s{2,}#|^#", line, maxsplit=1)[0].rstrip()


def _commands_in(text):
    """`sorter ...` lines of a text (continuations joined, comments and a trailing & dropped)."""
    out = []
    for line in _join_continuations(text).splitlines():
        line = _strip_comment(line.strip())
        if line.startswith("sorter "):
            out.append(line.rstrip("&").strip())
    return out


def _doc_commands():
    cmds = []
    for name, text in _docs().items():
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            cmds += [(name, c) for c in _commands_in(block)]
    return cmds


def _help_commands():
    cmds = []
    for name, (module, _) in COMMANDS.items():
        doc = __import__(module, fromlist=["_"]).__doc__ or ""
        assert "example:" in doc, f"sorter {name} --help has no example block"
        cmds += [(f"sorter {name} --help", c) for c in _commands_in(doc.split("example:", 1)[1])]
    return cmds


def _parse(cmd):
    argv = shlex.split(cmd, comments=True)[1:]
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:       # argparse refused it
        pytest.fail(f"documented command does not parse ({exc.code}): {cmd}")


# ----------------------------------------------------------------------------------- packaging


def test_readme_first_block_is_the_two_install_lines():
    readme = _doc("README.md")
    first = re.search(r"```(\w*)\n(.*?)```", readme, flags=re.S)
    assert first.group(1) == "bash"
    lines = first.group(2).strip().splitlines()
    assert lines == ["pip install . && sorter run", "pip install '.[test]' && pytest -q"]


def test_metadata_name_version_license_python_and_entry_point_agree():
    tomllib = pytest.importorskip("tomllib")
    import sorter
    pyproject = tomllib.loads(_doc("pyproject.toml"))
    project = pyproject["project"]
    meson = _doc("meson.build")
    meson_version = re.search(r"version:\s*'([^']+)'", meson).group(1)
    meson_license = re.search(r"license:\s*'([^']+)'", meson).group(1)
    assert project["name"] == "sorter"
    assert project["version"] == meson_version == sorter.__version__
    assert project["license"]["text"] == meson_license
    assert project["requires-python"] == ">=3.11"
    assert project["scripts"] == {"sorter": "sorter.cli:main"}
    assert callable(main)
    extras = project["optional-dependencies"]
    # README's `pip install '.[test]'` and docs/sweep.md's `pip install '.[dask]'`
    assert set(extras["dask"]) <= set(extras["test"])
    assert any(r.startswith("dask[distributed]") for r in extras["dask"])
    for dep in ("pytest", "hypothesis", "simpy", "pytest-benchmark"):
        assert any(re.match(re.escape(dep) + r"\b", r) for r in extras["test"]), dep
    # the build needs what the meson files use
    requires = " ".join(pyproject["build-system"]["requires"])
    for tool in ("meson-python", "cython", "numpy", "ninja"):
        assert tool in requires


def _meson_excludes(meson, subdir):
    call = re.search(r"install_subdir\(\s*'" + re.escape(subdir) + r"'(.*?)\)\n", meson, flags=re.S)
    assert call, f"meson.build installs no {subdir}/"
    block = re.search(r"exclude_directories:\s*\[(.*?)\]", call.group(1), flags=re.S)
    return set(re.findall(r"'([^']+)'", block.group(1))) if block else set()


@pytest.mark.parametrize("subdir", ["sorter", "seeds"])
def test_no_pycache_of_any_package_folder_goes_into_the_wheel_regression(subdir):
    # `pip install .` from a checkout where the code ran once shipped
    # sorter/commands/__pycache__/*.pyc and seeds/*/__pycache__ (make_*.py) in the wheel:
    # install_subdir copies the folder as it is and excludes only the folders it names
    meson = _doc("meson.build")
    excludes = _meson_excludes(meson, subdir)
    base = ROOT / subdir
    folders = {p.parent for p in base.rglob("*.py")}
    missing = []
    for folder in folders:
        if "__pycache__" in folder.parts:
            continue
        rel = folder.relative_to(base).as_posix()
        want = "__pycache__" if rel == "." else f"{rel}/__pycache__"
        if want not in excludes:
            missing.append(want)
    assert not missing, f"meson.build's install_subdir('{subdir}') does not exclude {missing}"


def test_the_seed_files_scenarios_name_are_beside_them_and_ship():
    # meson installs seeds/ whole as sorter/seeds; a scenario naming a plan or volumes file
    # must find it there (relative to the scenario file)
    from sorter.resources import seed_path
    from sorter.sim.scenario import load_scenario
    assert "install_subdir('seeds'" in _doc("meson.build").replace("(\n  'seeds'", "('seeds'")
    default = seed_path("scenarios/default.toml")
    load_scenario(default)                      # the built-in `sorter run` shift loads
    for toml in sorted((ROOT / "seeds" / "scenarios").glob("*.toml")):
        for name in re.findall(r"=\s*\"([^\"]+\.(?:csv|toml))\"", toml.read_text()):
            assert (toml.parent / name).is_file(), f"{toml.name} names {name}, which is absent"


# ------------------------------------------------------------- documented commands parse


DOC_COMMANDS = _doc_commands() if (ROOT / "README.md").is_file() else []


def test_docs_show_commands_for_every_subcommand():
    shown = {shlex.split(c, comments=True)[1] for _, c in ALL_COMMANDS}
    assert set(COMMANDS) <= shown, f"no example of {sorted(set(COMMANDS) - shown)}"


ALL_COMMANDS = DOC_COMMANDS + _help_commands()


@pytest.mark.parametrize("where,cmd", ALL_COMMANDS,
                         ids=[f"{w.split()[-1] if w.endswith('--help') else w}-{i}"
                              for i, (w, _) in enumerate(ALL_COMMANDS)])
def test_every_documented_command_parses_and_names_existing_seeds(where, cmd):
    args = _parse(cmd)
    assert args.command in COMMANDS
    for word in shlex.split(cmd, comments=True):
        value = word.split("=", 1)[-1]
        if value.startswith("seeds/"):
            assert (ROOT / value).exists(), f"{where}: {cmd!r} names {value}, which is absent"
        if value.startswith("../shared/"):
            parts = value.split("/")[2:]
            if shared_path(*parts[:2]) is not None:      # the benchmark folder is there
                assert shared_path(*parts) is not None, f"{where}: {value} is absent"


def test_top_level_help_examples_parse(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    cmds = _commands_in(text.split("examples:", 1)[1])
    assert len(cmds) >= 3
    for cmd in cmds:
        _parse(cmd)


# ------------------------------------------------------------ documented outputs, short runs


def test_assign_writes_decisions_and_prints_counts_by_reason(tmp_path, capsys):
    from sorter.constants import REASONS
    out = tmp_path / "decisions.csv"
    plan = ROOT / "seeds/plan"
    assert main(["assign", "--plan", str(plan / "demo_plan.csv"), "--chutes",
                 str(plan / "demo_chutes.toml"), "--events", str(plan / "demo_events.csv"),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["parcel", "chute", "reason"]         # README: `parcel,chute,reason`
    with open(plan / "demo_events.csv", newline="") as f:
        scans = sum(1 for r in csv.DictReader(f) if r["event"] == "scan")
    assert len(rows) - 1 == scans
    counts = {}
    for reason in REASONS:
        m = re.search(rf"^\s*{reason}\s+(\d+)\s", printed, flags=re.M)
        assert m, f"no count for {reason} in: {printed}"
        counts[reason] = int(m.group(1))
    assert counts == {r: sum(1 for row in rows[1:] if row[2] == r) for r in REASONS}


def test_the_demo_event_stream_has_the_documented_header_and_events():
    readme = " ".join(_doc("README.md").split())
    part = readme[readme.index("**Replaying an event stream**"):]
    header = re.search(r"header `([^`]*)`", part).group(1)
    events = re.findall(r"`([a-z_]+)`", part[part.index("events "):part.index("(the plan CSV")])
    with open(ROOT / "seeds/plan/demo_events.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert ",".join(rows[0]) == header
    assert {r["event"] for r in rows} <= set(events)


def test_readme_python_examples_run_elsewhere_with_seed_path(tmp_path, monkeypatch):
    # README: elsewhere, give the seed files' full paths; sorter.resources.seed_path gives them
    from sorter.resources import seed_path
    readme = _doc("README.md")
    assert "sorter.resources.seed_path(" in readme
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        block = re.sub(r'"seeds/([^"]+)"', lambda m: repr(str(seed_path(m.group(1)))), block)
        assert '"seeds/' not in block
        exec(compile(block, f"README.md python block {i}", "exec"), {"__name__": "readme"})


def test_run_json_keys_and_out_files_are_the_documented_ones(tmp_path, capsys):
    readme = " ".join(_doc("README.md").split())
    part = readme[readme.index("`--json` prints one object"):readme.index("## Robot sorting floors")]
    keys = re.findall(r"`([a-z_0-9]+)`", part[:part.index("(counts in parcels")])
    assert "offered" in keys and "seed" in keys
    out = tmp_path / "small"
    assert main(["run", str(ROOT / "seeds/scenarios/small.toml"), "--seed", "3", "--json",
                 "--out", str(out)]) == 0
    kpis = json.loads(capsys.readouterr().out)           # stdout is the JSON alone
    assert not [k for k in keys if k not in kpis]
    assert kpis["seed"] == 3
    assert kpis["inducted"] == kpis["sorted"] + kpis["rejected"] + kpis["on_loop_at_end"]
    files = re.findall(r"`([a-z_]+\.(?:json|parquet|csv|html))`", part[part.index("`--out DIR`"):])
    assert set(files) == {"kpis.json", "parcels.parquet", "timeseries.csv", "chutes.csv",
                          "report.html"}
    written = {p.name for p in out.iterdir()}
    assert set(files) <= written and any(n.endswith(".png") for n in written)
    assert json.loads((out / "kpis.json").read_text())["sorted"] == kpis["sorted"]
    pq = pytest.importorskip("pyarrow.parquet")
    assert pq.read_table(out / "parcels.parquet").num_rows == kpis["offered"]   # one per parcel


def test_mapf_outputs_are_the_documented_ones(tmp_path, capsys):
    np = pytest.importorskip("numpy")
    readme = " ".join(_doc("README.md").split())
    outputs = readme[readme.index("**Outputs.**"):readme.index("**Embedding the planner**")]
    listed = re.findall(r"`([a-z_0-9]+)`", outputs[outputs.index("`kpis.json` ("):
                                                    outputs.index("on sorting floors")])
    assert {"robots", "steps", "tasks_completed", "peak_rss_mb"} <= set(listed)
    floor = str(ROOT / "seeds/floors/small_12x20.txt")
    for extra, out in (([], tmp_path / "a"), (["--rotation"], tmp_path / "b")):
        assert main(["mapf", floor, "--robots", "6", "--steps", "30", "--scenario", "sorting",
                     "--out", str(out), "--heatmap", *extra]) == 0
        capsys.readouterr()
        kpis = json.loads((out / "kpis.json").read_text())
        assert not [k for k in listed if k not in kpis]
        assert kpis["robots"] == 6 and kpis["steps"] == 30
        z = np.load(out / "paths.npz")
        assert z["positions"].dtype == np.int32 and z["positions"].shape == (31, 6)
        assert int(z["width"]) == kpis["width"] and int(z["height"]) == kpis["height"]
        assert ("headings" in z.files) is bool(extra)            # `with --rotation also headings`
        assert (out / "heatmap.png").is_file()
        cells = z["positions"]
        assert cells.min() >= 0 and cells.max() < int(z["width"]) * int(z["height"])


def test_sweep_out_files_and_columns_are_the_documented_ones(tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "sweep"
    assert main(["sweep", str(ROOT / "seeds/scenarios/small.toml"),
                 "--vary", "loop.speed_mps=2.0,2.5", "--set", "scenario.shift_hours=1",
                 "--seeds", "2", "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 points x 2 seeds = 4 runs" in printed
    assert {p.name for p in out.iterdir()} == {"sweep.parquet", "summary.csv", "sweep.png"}
    table = pq.read_table(out / "sweep.parquet")
    cols = table.column_names
    assert table.num_rows == 4
    assert cols[:3] == ["point", "loop.speed_mps", "seed"]
    assert "rejected_no_read" in cols and "recirculation_pct" in cols
    with open(out / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == 2 and [r["point"] for r in summary] == ["0", "1"]
    for kpi in ("sorted_per_hour", "recirculation_pct", "rejected_no_read"):
        assert f"{kpi}_mean" in summary[0] and f"{kpi}_ci95" in summary[0]


# ------------------------------------------------------------------------- the service


def _transcripts(text):
    """(sent, expected) telegram lists of each `> ... / < ...` block of a document."""
    found = []
    for block in re.findall(r"```\n(> .*?)```", text, flags=re.S):
        sent, want = [], []
        for line in block.splitlines():
            line = re.sub(r"\s{2,}\(.*\)$", "", line)       # `(a retransmission: ...)` notes
            if line.startswith("> "):
                sent.append(line[2:])
            elif line.startswith("< "):
                want.append(line[2:])
        assert len(sent) == len(want)
        found.append((sent, want))
    return found


class _Service:
    def __init__(self, tmp_path, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sorter", "serve", *args, "--port", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on ([\d.]+):(\d+)", line)
        if not m:
            self.stop()
            pytest.fail(f"sorter serve did not start: {line!r} {self.proc.stderr.read()}")
        self.address = (m.group(1), int(m.group(2)))

    def talk(self, lines):
        with socket.create_connection(self.address, timeout=20) as s:
            f = s.makefile("rb")
            got = []
            for line in lines:
                s.sendall(line.encode() + b"\n")
                got.append(f.readline().decode().rstrip("\n"))
            return got

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.stderr.read()


@pytest.mark.parametrize("doc", ["README.md", "docs/service.md"])
def test_the_documented_sessions_are_what_a_fresh_service_answers(doc, tmp_path):
    sessions = _transcripts(_doc(doc))
    assert sessions, f"{doc} shows no session"
    plan = "seeds/plan/demo_plan.csv"                  # the service runs in the repo root
    for i, (sent, want) in enumerate(sessions):
        svc = _Service(tmp_path, "--plan", plan, "--chutes", "seeds/plan/demo_chutes.toml",
                       "--journal", str(tmp_path / f"s{i}.db"), "--durability", "sync")
        try:
            got = svc.talk(sent)
        finally:
            err = svc.stop()
        assert got == want, f"{doc} session {i}"
        assert "stopped" in err


def test_try_it_line_export_columns_and_restart_message(tmp_path, capsys):
    text = " ".join(_doc("docs/service.md").split())
    try_it = re.search(r"Try it: `printf '([^']*)' \| nc[^`]*` \(a fresh service answers `([^`]*)` "
                       r"and `([^`]*)`", text)
    assert try_it
    journal = tmp_path / "sorter.db"
    svc = _Service(tmp_path, "--plan", "seeds/plan/demo_plan.csv",
                   "--chutes", "seeds/plan/demo_chutes.toml", "--journal", str(journal))
    try:
        assert svc.talk(try_it.group(1).split("\\n")[:-1]) == [try_it.group(2), try_it.group(3)]
        assert svc.talk(["CHUTE|3|C001|blocked", "DISCHARGED|4|P1|C001"]) == ["ACK|3", "ACK|4"]
    finally:
        svc.stop()
    # restart on the journal alone, as docs/service.md says, prints what it restored
    svc = _Service(tmp_path, "--journal", str(journal))
    try:
        assert svc.talk(["SCAN|5|P2|01422|0|1"]) == ["DEST|5|P2|C002|ok"]   # C001 still blocked
    finally:
        err = svc.stop()
    assert f"restored from journal {journal}" in err
    # `sorter journal export`: the documented columns, in order
    cols = re.search(r"Export columns: `([^`]*)`", text).group(1)
    cols = [c.strip().split(" ")[0] for c in cols.split(",")]
    out = tmp_path / "audit.csv"
    assert main(["journal", "export", str(journal), "--out", str(out)]) == 0
    assert main(["journal", "export", str(journal), "--out", str(tmp_path / "d.csv"),
                 "--kind", "scan"]) == 0
    assert main(["journal", "show", str(journal)]) == 0
    printed = capsys.readouterr().out
    assert "decisions by reason" in printed and "last seq by client" in printed
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == cols
    assert [r[cols.index("kind")] for r in rows[1:]] == ["scan", "chute", "discharged", "scan"]
    with open(tmp_path / "d.csv", newline="") as f:
        assert [r["kind"] for r in csv.DictReader(f)] == ["scan", "scan"]


def test_loadgen_reports_what_docs_say_against_a_service(tmp_path, capsys):
    svc = _Service(tmp_path, "--plan", "seeds/plan/demo_plan.csv",
                   "--chutes", "seeds/plan/demo_chutes.toml")
    try:
        code = main(["loadgen", "--port", str(svc.address[1]), "--rate", "200",
                     "--seconds", "1", "--json"])
    finally:
        svc.stop()
    figures = json.loads(capsys.readouterr().out)
    assert code == 0
    for key in ("scans_per_s", "p50_us", "p99_us", "p999_us", "errors", "unanswered"):
        assert key in figures
    assert figures["answered"] == figures["sent"] > 0 and figures["errors"] == 0

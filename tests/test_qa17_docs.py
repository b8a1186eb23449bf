"""QA session 17: documented examples no other test runs, checked against what they print.

* README's ``sorter.Sorter`` block: the decisions its comments show are what the calls return
  (tests/test_readme_examples.py only runs the block);
* docs/service.md: the two start-up lines, the STATUS keys and the error-code table are what
  the service prints and knows; its Python API block runs (``run_server`` stood in for);
* docs/sweep.md: the quoted validation errors are what ``sorter sweep`` says, and the robot-floor
  tables' first rows are what ``sorter sweep`` prints (slow: 6 runs of 2,000 steps).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from sorter.cli import main
from service_fakes import ask_served
from test_qa_session13_docs import _doc  # one reader of the docs beside the tests

ROOT = Path(__file__).resolve().parents[1]


def _seeds_beside(tmp_path):
    """A working directory where the docs' relative ``seeds/...`` paths resolve."""
    if not (ROOT / "seeds").is_dir():
        pytest.skip("seeds/ not beside the tests")
    (tmp_path / "seeds").symlink_to(ROOT / "seeds", target_is_directory=True)
    return tmp_path


# ---------------------------------------------------------------- README: sorter.Sorter


def test_readme_sorter_block_comments_show_what_the_calls_return(monkeypatch):
    block = re.findall(r"```python\n(.*?)```", _doc("README.md"), flags=re.S)[0]
    assert "Sorter.from_files" in block
    monkeypatch.chdir(ROOT)
    ns = {"__name__": "readme"}
    shown = 0
    for line in block.splitlines():
        code, _, comment = line.partition("#")
        m = re.search(r"Decision\(.*?\)", comment)
        if m:                                   # `s.assign("01422")   # Decision(chute=..., ...)`
            assert repr(eval(code.strip(), ns)) == m.group(0), line
            shown += 1
        elif code.strip():
            exec(code, ns)
    assert shown == 2
    # `# chutes: int32 indices into s.chute_ids; reasons: int8 codes into sorter.constants.REASONS`
    from sorter.constants import REASONS
    chutes, reasons = ns["chutes"], ns["reasons"]
    assert chutes.dtype.name == "int32" and reasons.dtype.name == "int8"
    # ["01422", "99999", None] under the wave-2 plan: a destination, unknown, a no-read
    assert [REASONS[r] for r in reasons] == ["ok", "unknown_destination", "no_read"]
    assert ns["s"].chute_ids[chutes[2]] == "R1"          # the no-read chute of [reject]
    assert ns["s2"].state_dict() == ns["s"].state_dict()


# ---------------------------------------------------------------- docs/service.md


def _documented_status_keys(text):
    row = next(ln for ln in text.splitlines() if ln.startswith("| `STATUS"))
    counters = re.search(r"a restart sets them to 0; the engine's own counters are restored\): "
                         r"([^|]*)\|", row)
    assert counters, row
    names = re.sub(r"\([^)]*\)", "", counters.group(1)).replace("and ", "")
    return [n.strip() for n in re.split(r"[,;]", names) if n.strip()]


def test_service_start_lines_and_status_keys_are_the_documented_ones(tmp_path):
    text = _doc("docs/service.md")
    start = text[text.index("## Starting it"):]
    start = start[start.index("```bash"):]
    start = start[:start.index("```", 3)]
    shown = {}
    for line in start.splitlines():
        m = re.match(r"# (sorter serve: .*?)\s+\((stderr|stdout)\)$", line)
        if m:
            shown[m.group(2)] = m.group(1)
    assert set(shown) == {"stderr", "stdout"}, start
    cwd = _seeds_beside(tmp_path)
    listening, status, _, err = ask_served(
        [sys.executable, "-m", "sorter", "serve", "--plan", "seeds/plan/demo_plan.csv",
         "--chutes", "seeds/plan/demo_chutes.toml", "--port", "0", "--journal", "sorter.db",
         "--durability", "sync"], cwd, b"STATUS|1\n")
    port = int(re.search(r":(\d+),", listening).group(1))
    assert listening == shown["stdout"].replace(":7070,", f":{port},")
    assert err.splitlines()[0] == shown["stderr"]
    assert (tmp_path / "sorter.db").is_file()
    assert status.startswith("STATUS|1|")
    keys = [kv.split("=")[0] for kv in status.split("|", 2)[2].split(";")]
    assert keys == _documented_status_keys(text)


def test_service_error_code_table_is_protocol_err_codes():
    from sorter.service.protocol import ERR_CODES
    text = _doc("docs/service.md")
    table = text[text.index("Error codes (`sorter.service.protocol.ERR_CODES`)"):]
    table = table[:table.index("\n\n", table.index("| code"))]
    codes = []
    for row in table.splitlines()[3:]:
        codes += re.findall(r"`([a-z_]+)`", row.split("|")[1])
    assert sorted(codes) == sorted(ERR_CODES)


def test_service_python_api_block_runs_as_written(tmp_path, monkeypatch):
    import sorter.service
    text = _doc("docs/service.md")
    block = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    assert "run_server(svc" in block
    served = []

    def run_server(service, host="127.0.0.1", port=7070, **kw):   # stands in: no socket, no wait
        served.append((host, port))
        service.shutdown()                                        # as after SIGTERM
        return 0

    monkeypatch.setattr(sorter.service, "run_server", run_server)
    monkeypatch.chdir(_seeds_beside(tmp_path))
    ns = {"__name__": "docs_service"}
    exec(compile(block, "docs/service.md python block 0", "exec"), ns)
    assert served == [("127.0.0.1", 7070)]
    assert ns["message"] == "plan 'wave-1' from seeds/plan/demo_plan.csv"   # the start line
    assert set(ns["counters"]) >= {"by_reason", "by_chute"}
    assert (tmp_path / "decisions.parquet").is_file()
    shown = re.search(r"parse_line\((b\"[^\"]*\")\)\s+# (.*?), \.\.\.\)", block)
    assert repr(ns["parse_line"](eval(shown.group(1)))).startswith(shown.group(2))


# ---------------------------------------------------------------- docs/sweep.md


def test_sweep_validation_errors_are_the_quoted_ones(capsys):
    text = " ".join(_doc("docs/sweep.md").split())
    small = str(ROOT / "seeds/scenarios/small.toml")
    unknown = re.search(r"\(`(unknown key 'loop\.sped_mps' \(expected nearest valid keys: "
                        r"loop\.speed_mps), \.\.\.\)`\)", text)
    bad = re.search(r"\(`--vary (loop\.speed_mps=2\.0,0)`: `([^`]*)`\)", text)
    assert unknown and bad
    assert main(["sweep", small, "--vary", "loop.sped_mps=2.0", "--workers", "1",
                 "--no-progress"]) == 2
    assert unknown.group(1) in capsys.readouterr().err
    # the first command of docs/sweep.md with the bad speed: point 1 is (4000, 0)
    assert main(["sweep", small, "--vary", "wave.0.rate_per_hour=4000:12000:2000",
                 "--vary", bad.group(1), "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert bad.group(2) in err and len(err.strip().splitlines()) == 1


def _table(text, head):
    """(header tokens, first row tokens) of the sweep table that starts with ``head``."""
    block = text[text.index(head):]
    block = block[:block.index("```")]
    lines = [ln for ln in block.splitlines() if ln.strip()]
    return lines[1].split(), lines[3].split()


@pytest.mark.slow
def test_floor_sweep_tables_first_rows_are_what_sorter_sweep_prints(capsys):
    text = _doc("docs/sweep.md")
    floor = str(ROOT / "seeds/floors/medium_33x57.txt")
    head_cap, row_cap = _table(text, "sweep: medium_33x57  (10 points x 3 seeds")
    head_off, row_off = _table(text, "sweep: medium_33x57  (5 points x 3 seeds")
    assert row_cap[:2] == ["100", "0"] and row_off[0] == "40"
    runs = [(["--vary", "robots=100", "--vary", "fault_rate=0"], head_cap, row_cap),
            (["--vary", "robots=40", "--set", "arrival_rate=6000"], head_off, row_off)]
    for args, head, row in runs:
        assert main(["sweep", floor, *args, "--set", "steps=2000", "--seeds", "3",
                     "--workers", "1", "--no-progress"]) == 0
        lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
        assert lines[1].split() == head
        assert lines[3].split() == row, args

"""`sorter assign` replays event streams exactly as the plain-Python oracle does."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from sorter.cli import main
from sorter.constants import REASONS

from naive import NaiveSorter, read_plan_csv, replay
from plan_gen import random_plan, random_routes

TOML_HEAD = """[plan]
name = "{name}"
strategy = "{strategy}"
max_recirculation = {maxr}
overflow = [{overflow}]
[reject]
{reject}
"""


def write_case(tmp_path, rng):
    """A random plan + chute TOML + event stream with every event kind and plan switches."""
    plan, chutes = random_plan(rng)
    reject = "\n".join(f'{r} = "{c}"' for r, c in plan.reject.items())
    toml = TOML_HEAD.format(name="w", strategy=plan.strategy, maxr=plan.max_recirculation,
                            overflow=", ".join(f'"{c}"' for c in plan.overflow), reject=reject)
    toml += "".join(f'[[chute]]\nid = "{c.id}"\nkind = "{c.kind}"\ncapacity = {c.capacity}\n'
                    for c in chutes)
    (tmp_path / "c.toml").write_text(toml)

    def plan_csv(routes):
        return "destination,chutes\n" + "".join(f"{d},{';'.join(r)}\n" for d, r in routes.items())

    (tmp_path / "p.csv").write_text(plan_csv(plan.routes))
    sub = tmp_path / "plans"
    sub.mkdir(exist_ok=True)
    rows = ["t,event,parcel,destination,recirculation,sortable,chute,plan"]
    ids = [c.id for c in chutes]
    n_switch = 0
    for i in range(int(rng.integers(5, 80))):
        u = rng.random()
        c = ids[int(rng.integers(0, len(ids)))]
        if u < 0.55:
            dest = "" if rng.random() < 0.08 else f"D{int(rng.integers(0, 14))}"
            rc = "" if rng.random() < 0.3 else str(int(rng.integers(0, 5)))
            so = ["", "1", "0"][int(rng.choice(3, p=[0.4, 0.5, 0.1]))]
            rows.append(f"{i},scan,P{i},{dest},{rc},{so},,")
        elif u < 0.95:
            ev = ["discharged", "full", "open", "blocked", "disabled", "container_change",
                  "container_changed"][int(rng.integers(0, 7))]
            rows.append(f"{i},{ev},,,,,{c},")
        else:
            n_switch += 1
            (sub / f"w{n_switch}.csv").write_text(plan_csv(random_routes(rng, chutes)))
            rows.append(f"{i},switch_plan,,,,,,plans/w{n_switch}.csv")
    (tmp_path / "e.csv").write_text("\n".join(rows) + "\n")
    naive = NaiveSorter(read_plan_csv(tmp_path / "p.csv"),
                        {c.id: (c.kind, c.capacity) for c in chutes}, plan.reject, plan.overflow,
                        plan.strategy, plan.max_recirculation)
    return naive


def run_cli(tmp_path, *extra):
    out = tmp_path / "d.csv"
    rc = main(["assign", "--plan", str(tmp_path / "p.csv"), "--chutes", str(tmp_path / "c.toml"),
               "--events", str(tmp_path / "e.csv"), "--out", str(out), *extra])
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    return rc, rows


@pytest.mark.parametrize("seed", range(4))
def test_cli_agrees_with_naive_on_random_streams(tmp_path, seed, capsys):
    """200 random plans and event streams per seed (800 in all), file by file."""
    rng = np.random.default_rng(seed)
    for k in range(200):
        case = tmp_path / f"case{k}"
        case.mkdir()
        naive = write_case(case, rng)
        want = replay(naive, case / "e.csv")
        rc, rows = run_cli(case)
        assert rc == 0
        assert rows[0] == ["parcel", "chute", "reason"]
        assert [tuple(r) for r in rows[1:]] == want
    out = capsys.readouterr().out
    assert "decisions" in out and all(r in out for r in REASONS)


def test_cli_bad_row_names_line_and_skip_mode(tmp_path, capsys):
    rng = np.random.default_rng(7)
    write_case(tmp_path, rng)
    lines = (tmp_path / "e.csv").read_text().splitlines()
    lines.insert(2, "1,scan,P-bad,D1,-3,1,,")
    lines.insert(4, "1,teleport,,,,,C0,")
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    rc = main(["assign", "--plan", str(tmp_path / "p.csv"), "--chutes", str(tmp_path / "c.toml"),
               "--events", str(tmp_path / "e.csv"), "--out", str(tmp_path / "d.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "e.csv:3:" in err and "recirculation" in err and "Traceback" not in err
    rc, rows = run_cli(tmp_path, "--on-error", "skip")
    assert rc == 0
    assert "P-bad" not in {r[0] for r in rows}
    captured = capsys.readouterr()
    assert "2 rows skipped" in captured.out


def test_cli_unknown_chute_in_event(tmp_path, capsys):
    write_case(tmp_path, np.random.default_rng(3))
    with open(tmp_path / "e.csv", "a") as fh:
        fh.write("9,blocked,,,,,NOPE,\n")
    rc = main(["assign", "--plan", str(tmp_path / "p.csv"), "--chutes", str(tmp_path / "c.toml"),
               "--events", str(tmp_path / "e.csv"), "--out", str(tmp_path / "d.csv")])
    err = capsys.readouterr().err
    n = len((tmp_path / "e.csv").read_text().splitlines())
    assert rc == 2 and f"e.csv:{n}:" in err and "unknown chute 'NOPE'" in err


def test_help_has_examples(capsys):
    for argv in (["--help"], ["assign", "--help"], ["run", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
        assert "example" in capsys.readouterr().out

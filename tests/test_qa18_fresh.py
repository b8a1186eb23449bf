"""QA session 18 (fresh): a new user on a fresh machine, from a clean clone.

A clean clone, a fresh Python 3.11 venv with only ``pip install .``, then every command of
README.md, docs/service.md, docs/sweep.md and the ``--help`` examples, from the clone root and
from an unrelated folder. What that walk found and the other doc tests did not hold:

* ``pip uninstall sorter`` leaves the Numba caches (``sorter/agv/__pycache__/*.nbi``, ``*.nbc``,
  written beside the installed modules, not in pip's RECORD), so an empty ``sorter`` folder
  stays in site-packages and ``import sorter`` still succeeds from it (a namespace package)
  while ``from sorter import Sorter`` fails: the README now says so and what to delete;
* following the README in a checkout (its ``.venv``, the examples' ``runs/...``,
  ``decisions.csv``, the sweep and service Python blocks' files) left untracked files that
  ``git add -A`` would commit: ``.gitignore`` now covers them, as it did ``out/`` and ``*.db``;
* the runtime needs none of the ``test``/``bench`` extras' packages: ``sorter run``, ``mapf``,
  ``sweep`` and ``serve`` work with them unimportable, and ``--dask`` without the ``dask``
  extra names the extra to install (the test venv always has dask, so nothing ran that path).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service_fakes import ask_served
from test_qa_session13_docs import _commands_in, _doc, _doc_commands

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------ pip uninstall and Numba caches


def test_readme_says_pip_uninstall_leaves_the_numba_caches_where_numba_writes_them():
    readme = " ".join(_doc("README.md").split())
    assert "pip uninstall sorter" in readme, "README does not say what `pip uninstall` leaves"
    note = readme[readme.index("pip uninstall sorter"):][:400]
    m = re.search(r"`(sorter/[\w/]+/__pycache__)/\*\.nbi`", note)
    assert m, note
    named = m.group(1)
    # numba caches a `cache=True` kernel in the __pycache__ beside its source file (unless
    # NUMBA_CACHE_DIR is set): every such source of the package is in the folder the README names
    import sorter
    pkg = Path(sorter.__file__).resolve().parent
    sources = [py for py in sorted(pkg.rglob("*.py"))
               if re.search(r"\bcache\s*=\s*True", py.read_text(encoding="utf-8"))]
    assert len(sources) >= 3, "found no cached Numba kernels: the check looked in the wrong place"
    for py in sources:
        where = (py.parent / "__pycache__").relative_to(pkg.parent).as_posix()
        assert where == named, f"{py.name}'s kernels cache in {where}, the README names {named}"
    # and numba puts them there
    from sorter.agv import pibt
    cache_path = getattr(getattr(pibt._pibt_step, "_cache", None), "_cache_path", None)
    if cache_path is not None and not os.environ.get("NUMBA_CACHE_DIR"):
        assert Path(cache_path).resolve() == pkg / "agv" / "__pycache__"


# ------------------------------------------------------------ a checkout stays clean


def _documented_outputs():
    """Paths, relative to the repository root, that the docs' examples write when run there."""
    outs = {".venv/bin/python"}                   # README: `python -m venv .venv` in the checkout
    cmds = [c for _, c in _doc_commands()]
    for name in ("README.md",):
        text = _doc(name)
        dev = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
        assert any("python -m venv .venv" in b for b in dev)
    from sorter.cli import COMMANDS
    for module, _ in COMMANDS.values():
        doc = __import__(module, fromlist=["_"]).__doc__ or ""
        if "example:" in doc:
            cmds += _commands_in(doc.split("example:", 1)[1])
    for cmd in cmds:
        m = re.search(r"--out\s+(\S+)", cmd)
        if m:
            out = m.group(1)
            outs.add(out if Path(out).suffix else f"{out}/kpis.json")
    for name in ("README.md", "docs/service.md", "docs/sweep.md"):
        for block in re.findall(r"```python\n(.*?)```", _doc(name), flags=re.S):
            outs.update(re.findall(r"(?:write_parquet|write_csv|plot)\(\"([^\"/]+)\"\)", block))
            outs.update(re.findall(r"export\([^)]*?\"[^\"]+\",\s*\"([^\"]+)\"", block))
            outs.update(re.findall(r"journal=\"([^\"]+)\"", block))
    return sorted(outs)


def test_gitignore_covers_the_readme_venv_and_what_the_documented_examples_write():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (or no git): .gitignore is not used")
    outs = _documented_outputs()
    for want in (".venv/bin/python", "runs/m/kpis.json", "decisions.csv", "decisions.parquet",
                 "audit.csv", "sweep.parquet", "summary.csv", "sweep.png", "sorter.db"):
        assert want in outs, f"the docs no longer write {want}? {outs}"
    r = subprocess.run(["git", "check-ignore", "--no-index", "--verbose", "--non-matching", *outs],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 1), r.stderr
    not_ignored = [line.split("\t", 1)[1] for line in r.stdout.splitlines()
                   if line.startswith("::\t")]
    assert not not_ignored, f"following the docs in a checkout leaves untracked {not_ignored}"


# ------------------------------------------------ the runtime without test-only packages

TEST_ONLY = ("pandas", "simpy", "pytest", "hypothesis", "dask", "distributed", "xdist",
             "pytest_benchmark", "pymapf", "cuplan")

_RUNNER = f"""
import importlib.abc, sys
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TEST_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _NotInstalled())
from sorter.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _seed(rel):
    from sorter.resources import seed_path
    try:
        return str(seed_path(rel))
    except FileNotFoundError:
        pytest.skip(f"seed file {rel} absent")


def _sorter(args, cwd, timeout=180):
    return subprocess.run([sys.executable, "-c", _RUNNER, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_run_mapf_and_sweep_need_no_test_or_bench_package(tmp_path):
    r = _sorter(["run", _seed("scenarios/small.toml"), "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sorted"] > 0
    r = _sorter(["mapf", _seed("floors/small_12x20.txt"), "--robots", "8", "--steps", "30",
                 "--scenario", "sorting", "--out", "m", "--report"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert {"paths.npz", "kpis.json", "report.html"} <= {p.name for p in (tmp_path / "m").iterdir()}
    r = _sorter(["sweep", _seed("scenarios/small.toml"), "--vary", "loop.speed_mps=2.0,2.5",
                 "--set", "scenario.shift_hours=0.25", "--seeds", "2", "--workers", "1",
                 "--out", "sw", "--no-progress"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "sw").iterdir()) == [
        "summary.csv", "sweep.parquet", "sweep.png"]


def test_sweep_dask_without_the_dask_extra_names_the_extra(tmp_path):
    for dask in (["--dask", "local"], ["--dask", "tcp://127.0.0.1:9"]):
        r = _sorter(["sweep", _seed("scenarios/small.toml"), "--vary", "loop.speed_mps=2.0,2.5",
                     "--seeds", "2", *dask], tmp_path)
        assert r.returncode == 2, (dask, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        assert "pip install '.[dask]'" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not list(tmp_path.iterdir())


def test_serve_needs_no_test_or_bench_package(tmp_path):
    _, answer, rc, err = ask_served(
        [sys.executable, "-c", _RUNNER, "serve", "--plan", _seed("plan/demo_plan.csv"),
         "--chutes", _seed("plan/demo_chutes.toml"), "--port", "0", "--journal", "j.db"],
        tmp_path, b"SCAN|1|P1|01422|0|1\n")
    assert answer == "DEST|1|P1|C001|ok"
    assert rc == 0, err
    assert "Traceback" not in err

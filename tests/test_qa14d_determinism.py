"""Same seed, same events: on every axis a user could vary without meaning to change a result.

QA pass 14d. The brief promises that every simulation is deterministic for its seed. Here the
commands are run in separate processes that differ in what should not matter -- the hash seed
of Python's ``str`` hashing (``PYTHONHASHSEED``: set and dict-of-str orders), the current
directory, ``OMP_NUM_THREADS``, the worker count and backend of a sweep -- and their outputs are
compared byte for byte (or field by field where a file holds wall-clock times or counters of
the machine's work, :data:`RUN_DEPENDENT`). In process: the prefetch thread of the distance
tables starved (as by CPU contention), a loop shift run in pieces of any size, a planner
stepped by hand against :func:`sorter.agv.lifelong.simulate`, and a chute engine's state
continued in a new process (through JSON whose keys a store may reorder).

Also a source scan: no unseeded randomness (legacy ``np.random.*`` calls, the ``random``
module, ``default_rng()`` without a seed) in the library.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
_SCRIPT = Path(sys.executable).with_name("sorter")      # the installed command, as users run it
SORTER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "sorter"]

#: KPI fields of ``sorter mapf`` that measure the run, not its events: wall-clock times, process
#: memory, and -- where a background thread computes distance tables ahead (LoRR errand runs)
#: -- how many tables each thread computed and the memory they hold (which thread gets there
#: first is a matter of timing; the plans are not). Everything else must be equal.
TIMING = {"ms_per_step_p50", "ms_per_step_p99", "ms_per_step_max", "kernel_ms_p50",
          "kernel_ms_p99", "preprocess_s", "peak_rss_mb"}
PREFETCH_WORK = {"distance_table_mb", "distance_tables_computed", "distance_tables_prefetched"}
RUN_DEPENDENT = TIMING | PREFETCH_WORK


def _env(hashseed, **extra):
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = str(hashseed)
    env.pop("OMP_NUM_THREADS", None)
    for k, v in extra.items():
        env[k] = str(v)
    return env


def _sorter(args, cwd, hashseed, **extra):
    r = subprocess.run([*SORTER, *map(str, args)], cwd=cwd, env=_env(hashseed, **extra),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _files(d: Path) -> dict:
    """Every file of an output folder as bytes (kpis.json parsed); an .npz also array by
    array (the first difference then names the array)."""
    out = {}
    for p in sorted(d.iterdir()):
        if p.suffix == ".npz":
            z = np.load(p)
            out.update({f"{p.name}:{k}": z[k].tobytes() for k in sorted(z.files)})
            out[p.name] = p.read_bytes()          # (written with fixed zip entry times)
        elif p.name == "kpis.json":
            out[p.name] = json.loads(p.read_text())
        else:
            out[p.name] = p.read_bytes()
    return out


def _differing(a: dict, b: dict) -> set:
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}


# -- sorter run: bytes ------------------------------------------------------------------------
def test_run_writes_the_same_bytes_whatever_the_hash_seed_directory_and_threads(tmp_path):
    scen = SEEDS / "scenarios" / "hub.toml"
    outs = []
    for i, (hs, extra) in enumerate([(0, {}), (12345, {"OMP_NUM_THREADS": 1})]):
        cwd = tmp_path / f"cwd{i}" / "deeper"
        cwd.mkdir(parents=True)
        r = _sorter(["run", scen, "--seed", 4, "--json", "--out", tmp_path / f"o{i}"], cwd, hs, **extra)
        outs.append((r.stdout, _files(tmp_path / f"o{i}")))
    (out_a, files_a), (out_b, files_b) = outs
    assert out_a == out_b                      # the JSON on stdout holds no wall time
    assert {"kpis.json", "parcels.parquet", "timeseries.csv", "chutes.csv"} <= set(files_a)
    assert not _differing(files_a, files_b)    # PNGs and report.html included


# -- sorter mapf: paths and KPIs ----------------------------------------------------------------
@pytest.mark.parametrize("extra", [
    ["--scenario", "sorting", "--fault-rate", 0.01, "--repair-steps", 20, "--arrival-rate",
     "2000,5000@100", "--no-read-rate", 0.05, "--chute-capacity", 5],
    ["--scenario", "sorting", "--rotation", "--fault-rate", 0.005],
    ["--scenario", "random"],
], ids=["sorting-faults-arrivals", "sorting-rotation", "random"])
def test_mapf_same_paths_and_kpis_in_other_processes(tmp_path, extra):
    floor = SEEDS / "floors" / "small_12x20.txt"
    runs = []
    for i, (hs, env) in enumerate([(1, {}), (4321, {"OMP_NUM_THREADS": 1})]):
        cwd = tmp_path / f"cwd{i}"
        cwd.mkdir()
        out = tmp_path / f"o{i}"
        r = _sorter(["mapf", floor, "--robots", 12, "--steps", 250, "--seed", 3, *extra, "--json",
                     "--out", out], cwd, hs, **env)
        runs.append((json.loads(r.stdout), _files(out)))
    (k_a, f_a), (k_b, f_b) = runs
    assert _differing(k_a, k_b) <= TIMING
    assert _differing(f_a, f_b) <= {"kpis.json"}
    assert _differing(f_a["kpis.json"], f_b["kpis.json"]) <= TIMING
    assert k_a["tasks_completed"] > 0


def _lorr_problem(tmp_path, strategy):
    """A small LoRR problem (a 2024 one for ``nearest``: two-errand tasks)."""
    rows = ["." * 24] + [".@@@.@@@.@@@.@@@.@@@.@@."] * 2 + ["." * 24] \
        + [".@@@.@@@.@@@.@@@.@@@.@@."] * 2 + ["." * 24]
    h, w = len(rows), len(rows[0])
    (tmp_path / "w.map").write_text(f"type octile\nheight {h}\nwidth {w}\nmap\n" + "\n".join(rows) + "\n")
    free = [r * w + c for r in range(h) for c in range(w) if rows[r][c] == "."]
    rng = np.random.default_rng(5)
    starts = rng.choice(free, 14, replace=False)
    (tmp_path / "w.agents").write_text("14\n" + "\n".join(map(str, starts)) + "\n")
    doc = {"mapFile": "w.map", "agentFile": "w.agents", "taskFile": "w.tasks", "teamSize": 14}
    if strategy == "nearest":
        tasks = [",".join(map(str, rng.choice(free, 2))) for _ in range(150)]
        (tmp_path / "w.tasks").write_text("# version for LoRR 2024\n150\n" + "\n".join(tasks) + "\n")
        doc.update(version="2024 LoRR", numTasksReveal=1.5)
    else:
        (tmp_path / "w.tasks").write_text("300\n" + "\n".join(map(str, rng.choice(free, 300))) + "\n")
        doc.update(numTasksReveal=2, taskAssignmentStrategy=strategy)
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize("strategy", ["roundrobin", "greedy", "nearest"])
def test_lorr_errand_runs_same_paths_in_other_processes(tmp_path, strategy):
    # the prefetch thread computes tables ahead: which thread computes which table (and so
    # distance_tables_computed / _prefetched / distance_table_mb) depends on timing; the
    # paths and every other KPI must not
    p = _lorr_problem(tmp_path, strategy)
    runs = []
    for i, hs in enumerate([2, 777]):
        out = tmp_path / f"o{i}"
        r = _sorter(["mapf", p, "--steps", 200, "--seed", 1, "--json", "--out", out],
                    tmp_path if i else REPO, hs)
        runs.append((json.loads(r.stdout), _files(out)))
    (k_a, f_a), (k_b, f_b) = runs
    assert _differing(k_a, k_b) <= RUN_DEPENDENT
    assert _differing(f_a, f_b) <= {"kpis.json"}
    assert k_a["tasks_completed"] > 0


# -- the prefetch thread under contention --------------------------------------------------------
def _errand_run(prefetch, strategy, *, slow=None, hold=False, rotation=False):
    from sorter.agv import Planner
    from sorter.agv.tasks import ErrandTasks
    from sorter.layout import Floor
    rng = np.random.default_rng(11)
    grid = np.where(rng.random((13, 18)) < 0.12, "@", ".")
    f = Floor.from_ascii("\n".join("".join(r) for r in grid))
    free = f.free_cells
    n = 30
    starts = rng.choice(free, n, replace=False)
    errands = rng.choice(free, 16 * n)
    offsets = None
    if strategy == "nearest":
        offsets = np.arange(0, errands.size + 1, 2)      # two-errand tasks (LoRR 2024)
    p = Planner(f, n, starts, seed=3, dwell_chute=0, dwell_induct=0, guidance="lanes+flow",
                rotation=rotation, max_table_mb=free.size * 2 * 12 / 2**20)     # LRU pressure
    s = ErrandTasks(errands, n, strategy=strategy, offsets=offsets, prefetch=prefetch,
                    width=f.width, reveal=2)
    goals = s.start(p)
    path = [p.positions.copy()]
    for t in range(160):
        if hold and t == 30:
            p.hold(np.arange(0, n, 6))
        if hold and t == 110:
            p.release(np.arange(0, n, 6))
        path.append(p.step(goals).copy())
        goals = s.update(p)
    return np.array(path), s.completed, p.tables.prefetched


@pytest.mark.parametrize("strategy,hold,rotation", [
    ("roundrobin", False, False), ("nearest", False, False), ("roundrobin", True, False),
    ("nearest", True, True)])
def test_starved_prefetch_thread_changes_no_move(monkeypatch, strategy, hold, rotation):
    """CPU contention, made repeatable: the prefetch thread sleeps a random 0-3 ms before each
    table it computes (its tables then arrive late, out of step with the planner: computed on
    demand meanwhile, evicted, found pinned ...). The moves must be those of a run without
    prefetching (its task stream the same: ``nearest`` then takes a robot's next task ahead,
    prefetching or not, so the oracle is the same stream with no table ever computed ahead)."""
    import sorter.agv.distance as dist
    with monkeypatch.context() as m:
        m.setattr(dist.DistanceTables, "prefetch_many", lambda self, jobs, urgent=False: 0)
        want, done, n_pre = _errand_run(True, strategy, hold=hold, rotation=rotation)
    assert done > 0 and n_pre == 0
    slow_rng = np.random.default_rng(0)       # (only the sleeps are random)
    on_thread = []

    def napping(f):
        def g(*a, **k):
            if threading.current_thread().name == "sorter-tables":
                on_thread.append(1)
                time.sleep(float(slow_rng.random()) * 0.003)
            return f(*a, **k)
        return g
    monkeypatch.setattr(dist, "_astar_batch", napping(dist._astar_batch))
    monkeypatch.setattr(dist.DistanceTables, "_fill", napping(dist.DistanceTables._fill))
    got, done2, n_pre = _errand_run(True, strategy, hold=hold, rotation=rotation)
    assert np.array_equal(got, want) and done2 == done
    assert on_thread            # the thread did compute tables (how many it filed: timing)


# -- sweeps: workers, hash seeds -------------------------------------------------------------------
@pytest.mark.parametrize("what", [
    [SEEDS / "scenarios" / "small.toml", "--vary", "wave.0.rate_per_hour=4000,9000", "--vary",
     "loop.speed_mps=2.0,2.5"],
    [SEEDS / "floors" / "small_12x20.txt", "--vary", "robots=8,14", "--set", "steps=150",
     "--set", "fault_rate=0.01", "--set", "arrival_rate=3000,6000@100"],
], ids=["loop", "robot-floor"])
def test_sweep_same_rows_with_one_or_two_workers_in_other_processes(tmp_path, what):
    res = []
    for i, (hs, workers) in enumerate([(0, 1), (99, 2)]):
        out = tmp_path / f"o{i}"
        r = _sorter(["sweep", *what, "--seeds", 2, "--workers", workers,
                     "--no-progress", "--out", out], tmp_path, hs)
        # the first line names the backend and the wall time; the table must be the same
        res.append((r.stdout.replace(str(out), "OUT").splitlines()[1:],
                    (out / "sweep.parquet").read_bytes(),
                    (out / "summary.csv").read_bytes(), (out / "sweep.png").read_bytes()))
    assert res[0] == res[1]


def test_a_sweep_points_rows_do_not_depend_on_the_other_points():
    """Adding a value to ``--vary`` must not change the rows of the points already there
    (each point runs the same seeds, whatever runs beside it, on whichever worker)."""
    from sorter.floor_sweep import floor_sweep
    from sorter.sweep import capacity_sweep

    def rows(res, key, value):
        return [{k: v for k, v in r.items() if k != "point"} for r in res.rows if r[key] == value]
    scen = SEEDS / "scenarios" / "small.toml"
    key = "wave.0.rate_per_hour"
    both = capacity_sweep(scen, {key: [4000, 9000]}, seeds=2, n_workers=1)
    one = capacity_sweep(scen, {key: [9000]}, seeds=2, n_workers=1)
    assert rows(both, key, 9000) == rows(one, key, 9000) != []
    floor = SEEDS / "floors" / "small_12x20.txt"
    over = {"steps": 120, "fault_rate": 0.01}
    both = floor_sweep(floor, {"robots": [8, 14]}, seeds=2, overrides=over, n_workers=1)
    one = floor_sweep(floor, {"robots": [14]}, seeds=2, overrides=over, n_workers=1)
    assert rows(both, "robots", 14) == rows(one, "robots", 14) != []


# -- sorter assign ---------------------------------------------------------------------------------
def test_assign_writes_the_same_decisions_whatever_the_hash_seed(tmp_path):
    plan = SEEDS / "plan"
    got = []
    for i, (hs, strategy) in enumerate([(0, "round_robin"), (31337, "round_robin"),
                                        (5, "least_loaded"), (6, "least_loaded")]):
        out = tmp_path / f"d{i}.csv"
        _sorter(["assign", "--plan", plan / "demo_plan.csv", "--chutes", plan / "demo_chutes.toml",
                 "--events", plan / "demo_events.csv", "--strategy", strategy, "--out", out],
                tmp_path, hs)
        got.append(out.read_bytes())
    assert got[0] == got[1] and got[2] == got[3] and got[0] != got[2]


# -- runs in pieces ----------------------------------------------------------------------------------
def test_loop_shift_in_pieces_of_any_size_is_the_same_shift():
    from sorter.sim import compute_kpis, simulate
    scen = SEEDS / "scenarios" / "hub.toml"
    runs = []
    for minutes in (15.0, 0.37, 1e9):       # the kernel is run to each stop, then resumed
        r = simulate(scen, seed=2, step_minutes=minutes)
        k = compute_kpis(r)
        k.pop("wall_s", None)
        raw = [{n: np.asarray(v).tobytes() for n, v in lr.raw.items()} for lr in r.loops]
        runs.append((json.dumps(k, sort_keys=True), raw))
    assert runs[0] == runs[1] == runs[2]


def test_planner_stepped_by_hand_is_simulate():
    """``Planner.step`` called N times (with the stream's ``pre_step`` / ``update``) against
    :func:`simulate`: the same paths and KPIs (faults, container changes, arrivals)."""
    from sorter.agv.floor_sim import FloorSimOptions
    from sorter.agv.lifelong import make_run, simulate
    from sorter.layout import load_floor
    floor = load_floor(SEEDS / "floors" / "small_12x20.txt")
    opts = dict(fault_rate=0.01, repair_steps=15, arrival_rate=4000.0, chute_capacity=4)

    def build():
        return make_run(floor, 12, seed=6, tasks="sorting", floor_sim=FloorSimOptions(**opts))
    planner, stream = build()
    res = simulate(planner, stream, 200)
    planner2, stream2 = build()
    goals = stream2.start(planner2)
    planner2.prepare(goals)
    pos = [planner2.positions.copy()]
    for _ in range(200):
        stream2.pre_step(planner2, goals)
        pos.append(planner2.step(goals).copy())
        goals = stream2.update(planner2)
    assert np.array_equal(np.array(pos), res.positions)
    assert stream2.kpis(200) == stream.kpis(200)
    assert stream.kpis(200)["robot_faults"] > 0


# -- a chute engine's state continued in a new process ------------------------------------------------
_DRIVER = r'''
import json, sys
import numpy as np
from sorter import Sorter
from sorter.plan import load_plan_routes
plan, chutes, wave2, mode, state_path, n0, n1 = sys.argv[1:8]
n0, n1 = int(n0), int(n1)
if mode == "resume":
    s = Sorter.from_state(json.loads(open(state_path).read()))
else:
    s = Sorter.from_files(plan, chutes)
codes = list(s.sort_plan.routes) + ["NOPE", None]
ids = [str(c) for c in s.chute_ids]
rng = np.random.default_rng(123)          # one op stream; each process skips to its part
out = []
for k in range(n1):
    op, a, b, c = rng.random(), rng.integers(len(codes)), rng.integers(0, 5), rng.random()
    ch = ids[rng.integers(len(ids))]
    if k < n0:
        continue
    if op < 0.75:
        d = s.assign(codes[a], recirculation=int(b), sortable=bool(c > 0.05))
        out.append(f"{d.chute},{d.reason}")
    elif op < 0.85:
        s.discharged(ch)
    elif op < 0.9:
        s.set_state(ch, ["full", "open", "blocked", "open"][int(b) % 4])
    elif op < 0.97:
        s.container_changed(ch) if s.chute_state(ch) in ("full", "container_change") else None
    elif op < 0.985:
        s.switch_plan(wave2)
    else:
        s.switch_plan(plan)
state = s.state_dict()
if mode == "first":     # as a store that orders keys (a JSON column) would keep it
    open(state_path, "w").write(json.dumps(state, sort_keys=True))
print(json.dumps({"decisions": out, "counters": state["reason_count"], "fill": state["fill"],
                  "state": state["state"], "rr": state["rr_cursor"]}))
'''


def test_sorter_state_continues_in_a_new_process(tmp_path):
    drv = tmp_path / "drv.py"
    drv.write_text(_DRIVER)
    st = tmp_path / "state.json"
    files = [SEEDS / "plan" / "demo_plan.csv", SEEDS / "plan" / "demo_chutes.toml",
             SEEDS / "plan" / "demo_plan_wave2.csv"]

    def run(mode, n0, n1, hs):
        r = subprocess.run([sys.executable, str(drv), *map(str, files), mode, str(st),
                            str(n0), str(n1)], cwd=tmp_path, env=_env(hs),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout)
    whole = run("whole", 0, 6000, 0)
    first = run("first", 0, 2500, 1)
    rest = run("resume", 2500, 6000, 98765)
    assert first["decisions"] + rest["decisions"] == whole["decisions"]
    assert {k: rest[k] for k in ("counters", "fill", "state", "rr")} == \
        {k: whole[k] for k in ("counters", "fill", "state", "rr")}
    reasons = {d.split(",")[1] for d in whole["decisions"]}
    assert {"ok", "unknown_destination", "no_read"} <= reasons


# -- the source: no unseeded randomness ----------------------------------------------------------------
_LEGACY = {"rand", "randn", "randint", "random", "random_sample", "choice", "shuffle",
           "permutation", "seed", "normal", "uniform", "poisson", "exponential", "binomial",
           "geometric", "integers", "RandomState", "get_state", "set_state", "sample", "ranf"}


def test_library_draws_no_unseeded_random_numbers():
    bad = []
    for path in sorted((REPO / "sorter").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""])
                if any(n == "random" or n.startswith("random.") for n in names):
                    bad.append(f"{where}: imports the random module")
            if isinstance(node, ast.Attribute) and node.attr in _LEGACY:
                v = node.value          # np.random.<legacy>  /  numpy.random.<legacy>
                if (isinstance(v, ast.Attribute) and v.attr == "random"
                        and isinstance(v.value, ast.Name) and v.value.id in ("np", "numpy")):
                    bad.append(f"{where}: np.random.{node.attr} (global, unseeded state)")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "default_rng" and not node.args and not node.keywords):
                bad.append(f"{where}: default_rng() without a seed")
    assert not bad, "\n".join(bad)

"""Robot planner speed and quality.

Speed (pytest-benchmark; each against a baseline in the same run)::

    pytest bench/bench_mapf.py --benchmark-only
    pytest bench/bench_mapf.py --benchmark-only -k faults     # detours vs queueing (~5% faulted)

* ms per step (median, p99) at 100 / 1,000 / 10,000 robots on RHCR ``sorting_map.grid``, the
  MovingAI warehouse maps and LoRR ``sortation_large`` / ``warehouse_large`` (capped where
  10,000 robots do not fit), up to 1,000 robots against one plain-Python PIBT step;
* the plain-Python PIBT of ``tests/naive_pibt.py`` on the same instance and state (ratio), and
  ``pymapf`` 0.9.0's ``pibt_step`` (pure Python) and ``cuplan`` 0.1.0's PIBT timestep (its
  NumPy backend) given our distance tables (ratios; ``pip install '.[bench]'``);
* preprocessing (distance tables of every station) time and memory, the plain-BFS tables
  against a NumPy BFS per goal.

Throughput (long runs, a markdown table on stdout; a few minutes on 2 cores)::

    python bench/bench_mapf.py throughput          # LoRR 2023 instances + RHCR sorting map
    python bench/bench_mapf.py throughput --quick  # 1,000 steps instead of 5,000 (--steps=N: N)
    python bench/bench_mapf.py throughput --only=lorr --rotation   # LoRR's action model
    python bench/bench_mapf.py throughput --only=lorr --rotation --match=MR23 --guidance=lanes+flow
                                                   # one planner, the main-round instances;
                                                   # --congestion-period=0: without the
                                                   # online congestion costs (session 20)
                                                   # --turn-weight=0 --no-hold: the first
                                                   # rotation version
    python bench/bench_mapf.py throughput --only=rhcr --steps=1000   # RHCR sorting map only
                                                   # (--guidance= too; --match, --rotation,
                                                   # --turn-weight, --no-hold: LoRR only)
    python bench/bench_mapf.py bound               # errands/step if robots never waited or turned
    python bench/bench_mapf.py rhcr-one-cell       # RHCR's task model: one access cell per eject
    python bench/bench_mapf.py startkit            # LoRR 2024-style E->S tasks, rotation, 500 steps
    python bench/bench_mapf.py startkit --greedy --sizes=1000,2500   # the same with a greedy
                                                   # nearest-task scheduler, as the Start-Kit
                                                   # (--precompute: every E/S table before the
                                                   # run; --guidance=lanes+flow: one planner)
    python bench/bench_mapf.py validate-all        # sorter mapf, 1,000 robots x 1,000 steps
                                                   # on every shared floor, then the validator
    python bench/bench_mapf.py liveness [--rotation] # 60 crowded floors with pockets: robots
                                                   # PIBT leaves stuck, without / with rescues
    python bench/bench_mapf.py mazes               # where it still struggles: depth-first mazes
                                                   # with one-cell corridors, rooms with one-cell
                                                   # doors (MovingAI maze/room kinds), random goals

Plain PIBT (``guidance="none"``) against the improved planner (``"lanes+flow"``) on the same
instances and seeds. Options take ``--name=value`` (not ``--name value``); an unknown one is
refused; ``-h`` prints this text. Without ``../shared`` a run says on stderr what it skipped.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))   # naive_pibt.py

from sorter.resources import shared_path  # noqa: E402

try:
    import pytest
    from conftest import DISABLED, record, record_pair, timing
except ImportError:                           # run as a script
    pytest = None

    def record(name, text):
        print(f"{name}: {text}")

LORR = ("benchmarks", "lorr2023")
FLOORS = {
    "rhcr-sorting": ("benchmarks", "rhcr", "sorting_map.grid"),
    "warehouse-10-20": ("benchmarks", "movingai", "warehouse-10-20-10-2-1.map"),
    "warehouse-20-40": ("benchmarks", "movingai", "warehouse-20-40-10-2-1.map"),
    "sortation_large": LORR + ("main_round", "warehouse.domain", "maps", "sortation_large.map"),
    "warehouse_large": LORR + ("main_round", "warehouse.domain", "maps", "warehouse_large.map"),
}
_CACHE = {}


def floor_of(name):
    if name not in _CACHE:
        p = shared_path(*FLOORS[name])
        if p is None:
            return None
        from sorter.layout import load_floor
        _CACHE[name] = load_floor(p)
    return _CACHE[name]


def fit(floor, n):
    """Robots that fit: at most 10,000 and at most 60% of the free cells."""
    return min(n, int(0.6 * floor.free_cells.size))


def warm_run(floor, n, guidance="lanes+flow", warm=30, seed=0):
    from sorter.agv.lifelong import make_run
    p, s = make_run(floor, n, seed=seed, guidance=guidance)
    goals = s.start(p)
    for _ in range(warm):
        p.step(goals)
        goals = s.update(p)
    return p, s, goals


# ------------------------------------------------------------------------ pytest-benchmark
if pytest is not None:
    SIZES = [(f, n) for f in FLOORS for n in (100, 1000, 10000)]

    PLAIN_MAX = 1000            # robots: the plain-Python baseline of test_step_ms up to here

    @pytest.mark.benchmark(group="mapf-step")
    @pytest.mark.parametrize("name,n", SIZES, ids=[f"{f}-{n}" for f, n in SIZES])
    def test_step_ms(benchmark, name, n):
        """Step time of the improved planner. Same-run baseline (up to ``PLAIN_MAX`` robots):
        the plain-Python PIBT (``tests/naive_pibt.py``) stepping once from the state the timed
        steps left, given the same tables (its step alone, min of 3; plain PIBT, no flow
        tie-break and no goal update, so the ratio is conservative). Not above 1,000 robots
        (recursive plain Python, ~0.1 s a step): there the peers' tests are the baselines
        (``test_ratio_pymapf`` / ``test_ratio_cuplan`` at 10,000 robots)."""
        floor = floor_of(name)
        if floor is None:
            pytest.skip(f"../shared/{'/'.join(FLOORS[name])} not present")
        n_fit = fit(floor, n)
        p, s, goals = warm_run(floor, n_fit)
        state = {"goals": goals}
        kern = []

        def one():
            p.step(state["goals"])
            state["goals"] = s.update(p)
            kern.append(p.kernel_ms)

        benchmark.pedantic(one, rounds=150, iterations=1, warmup_rounds=5)
        med = timing(benchmark)
        benchmark.extra_info.update(robots=n_fit, kernel_ms_p50=float(np.median(kern)),
                                    tasks=type(s).__name__)
        label = f"step {name} {n_fit} robots"
        if med is None:                                 # --benchmark-disable
            record(label, DISABLED)
        else:
            record(label,
                   f"median {med * 1e3:.2f} ms (kernel {np.median(kern):.2f} ms), "
                   f"p99 {np.percentile(np.array(timing(benchmark, 'data')) * 1e3, 99):.2f} ms"
                   + ("" if n_fit == n else f" (capped from {n}: {floor.free_cells.size} free cells)"))
        if n_fit <= PLAIN_MAX:
            p.prepare(state["goals"])
            plain = []
            for _ in range(1 if med is None else 3):
                q = _naive_from(p)                      # its set-up (~9 ms) not timed
                t0 = time.perf_counter()
                q.step()
                plain.append(time.perf_counter() - t0)
            benchmark.extra_info["plain_python_ms"] = min(plain) * 1e3
            record(f"{label} vs plain-Python PIBT", DISABLED if med is None else
                   f"{min(plain) * 1e3:.1f} ms/step vs ours {med * 1e3:.2f} ms (median): "
                   f"x{min(plain) / med:.0f}")

    _PREFETCH_STEP = {}

    @pytest.mark.benchmark(group="mapf-prefetch")
    @pytest.mark.parametrize("prefetch", [False, True], ids=["on-demand", "prefetch"])
    def test_errand_step_prefetch(benchmark, prefetch):
        """LoRR MR23-I-06 errands, 10,000 robots, rotation: step time with the next errands'
        tables computed on a second thread against on demand (same run; same plans)."""
        from sorter.agv.lifelong import make_run
        from sorter.layout.lorr import load_lorr_problem
        path = shared_path(*LORR, "main_round", "warehouse.domain", "MR23-I-06.json")
        if path is None:
            pytest.skip("../shared/benchmarks/lorr2023 not present")
        prob = load_lorr_problem(path)
        p, s = make_run(prob.floor, prob.team_size, prob.starts, seed=0, errands=prob.tasks,
                        guidance="lanes+flow", dwell_chute=0, dwell_induct=0,
                        max_table_mb=2048, rotation=True)
        s.prefetch = prefetch
        state = {"goals": s.start(p)}

        def one():
            p.step(state["goals"])
            state["goals"] = s.update(p)

        for _ in range(100):                    # past the first tables of every robot
            one()
        benchmark.pedantic(one, rounds=200, iterations=1, warmup_rounds=0)
        _PREFETCH_STEP[prefetch] = (timing(benchmark), s.completed)
        if len(_PREFETCH_STEP) == 2:
            (m0, c0), (m1, c1) = _PREFETCH_STEP[False], _PREFETCH_STEP[True]
            if m0 is None or m1 is None:                # --benchmark-disable
                record("prefetch MR23-I-06 10000 robots rotation (steps 100-300)", DISABLED)
                return
            record("prefetch MR23-I-06 10000 robots rotation (steps 100-300)",
                   f"step median {m1 * 1e3:.2f} vs {m0 * 1e3:.2f} ms on demand (x{m0 / m1:.2f}); "
                   f"errands done {c1} vs {c0}")

    _ORDER = {}

    @pytest.mark.benchmark(group="mapf-order")
    @pytest.mark.parametrize("how", ["argsort", "incremental"])
    def test_priority_order(benchmark, how):
        """The kernel's priority order of 10,000 robots, 1% of them reset per step (about the
        LoRR 10,000-robot rate): a full argsort against the incremental merge (same order)."""
        from sorter.agv.pibt import _priority_order
        n = 10_000
        rng = np.random.default_rng(0)
        h = rng.integers(0, 2**20, n)
        st = {"e": rng.integers(0, 300, n)}
        ost = np.empty((3, n), np.int64)
        ost[1] = -2

        def one():
            e = st["e"] + 1
            e[rng.random(n) < 0.01] = 0
            st["e"] = e
            key = (e << 40) | (h << 20) | np.arange(n)
            if how == "argsort":
                return np.argsort(key)
            return _priority_order(key, e, ost)

        one()
        benchmark.pedantic(one, rounds=300, iterations=1, warmup_rounds=5)
        record_pair("priority order 10000 robots (incl. key building)", _ORDER, how,
                    timing(benchmark), "incremental", "argsort")

    _PICK = {}

    @pytest.mark.benchmark(group="mapf-nearest")
    @pytest.mark.parametrize("how", ["numpy-scan", "sorted-pool"])
    def test_nearest_pick(benchmark, how):
        """The "nearest" scheduler choosing for 40 robots among 10,000 revealed two-errand
        tasks on a 140 x 500 grid (the LoRR 2024 10,000-robot rate): a NumPy scan of the whole
        pool per robot against ErrandTasks' pool sorted by task length (same choices)."""
        from sorter.agv.tasks import ErrandTasks
        rng = np.random.default_rng(0)
        w, h, n_tasks, n = 500, 140, 50_000, 5_000
        errands = rng.integers(0, w * h, 2 * n_tasks)
        offsets = np.arange(0, 2 * n_tasks + 1, 2)
        t = ErrandTasks(errands, n, strategy="nearest", offsets=offsets, width=w, reveal=3,
                        prefetch=False)

        class P:
            positions = rng.integers(0, w * h, n)
        t.start(P)
        pool, key = t._pool.copy(), t._pool_key.copy()
        cells = rng.integers(0, w * h, 40)

        def scan():
            pt = pool.copy()
            length = t._task_len[pt]
            pr, pc = t._task_r[pt].astype(np.int64), t._task_c[pt].astype(np.int64)
            seq = key & ((1 << 40) - 1)
            taken = np.zeros(pt.size, bool)
            out = []
            for c in cells.tolist():
                cost = np.abs(pr - c // w) + np.abs(pc - c % w) + length
                cost[taken] = np.iinfo(np.int64).max
                best = np.flatnonzero(cost == cost.min())
                j = best[np.argmin(seq[best])]
                taken[j] = True
                out.append(int(pt[j]))
            return out

        def sorted_pool():
            t._pool, t._pool_key = pool.copy(), key.copy()
            return t._pick(cells).tolist()

        assert scan() == sorted_pool()
        benchmark.pedantic(scan if how == "numpy-scan" else sorted_pool, rounds=100,
                           iterations=1, warmup_rounds=3)
        record_pair("nearest scheduler: 40 robots among 10,000 revealed tasks", _PICK, how,
                    timing(benchmark), "sorted-pool", "numpy-scan")

    _WIDEN = {}

    @pytest.mark.benchmark(group="mapf-widen")
    @pytest.mark.parametrize("how", ["new-band", "go-on"])
    def test_band_widening(benchmark, how):
        """Widening 200 A* bands (lanes, sortation_large, goals 40-200 cells from the robot)
        for a robot pushed 3 cells sideways off the band: a new band around its cell (what a
        widening was until session 8) against going on with the band's search from its
        frontier (``DistanceTables.widen``). Both exact: the values they both settle agree."""
        from sorter.agv import Planner
        from sorter.agv.distance import _NONE
        floor = floor_of("sortation_large")
        if floor is None:
            pytest.skip("../shared/" + "/".join(FLOORS["sortation_large"]) + " not present")
        pl = Planner(floor, 1, floor.free_cells[:1], guidance="lanes+flow", rotation=True)
        tabs, g = pl.tables, pl.graph
        rng = np.random.default_rng(0)
        jobs = []
        while len(jobs) < 200:
            a, b = (int(x) for x in rng.integers(0, g.n_free, 2))
            d = abs(int(g.rows[a]) - int(g.rows[b])) + abs(int(g.cols[a]) - int(g.cols[b]))
            side = g.fadj[b, 1]                     # 3 cells south of the robot's cell
            side = g.fadj[side, 1] if side >= 0 else -1
            side = g.fadj[side, 1] if side >= 0 else -1
            if 40 <= d <= 200 and side >= 0:
                jobs.append((a, b, int(side)))
        rows = [tabs.acquire(("cell", int(g.free_cells[a])), [int(g.free_cells[a])], near=b)
                for a, b, _ in jobs]

        def setup():
            for row, (a, b, _) in zip(rows, jobs):
                tabs._src[row] = np.array([a], np.int32)
                tabs._fill_row(row, _NONE, b)          # a fresh band around the robot's cell
            return (), {}

        def new_band():
            for row, (_, _, v) in zip(rows, jobs):
                if not tabs._covers(row, v):
                    tabs._fill_row(row, _NONE, v)

        def go_on():
            for row, (_, _, v) in zip(rows, jobs):
                if not tabs._covers(row, v):
                    tabs.widen(row, v)

        setup()
        go_on()
        kept = [tabs.values(r).copy() for r in rows]
        setup()
        new_band()
        for r, k in zip(rows, kept):
            x = tabs.values(r)
            both = (x < tabs.unsettled) & (k < tabs.unsettled)
            assert np.array_equal(x[both], k[both])
        benchmark.pedantic(new_band if how == "new-band" else go_on, setup=setup, rounds=20,
                           warmup_rounds=2)
        record_pair("widening 200 bands (robot 3 cells off its band)", _WIDEN, how,
                    timing(benchmark), "go-on", "new-band")

    _RESCUE = {}

    @pytest.mark.benchmark(group="mapf-rescue")
    @pytest.mark.parametrize("how", ["compiled", "plain-python"])
    def test_rescue_search(benchmark, how):
        """One rescue search (LaCAM, 2,000 generations) from the state where the planner
        started its first rescue on a dense floor with pockets (7 x 5 cells, 20 robots on 24
        cells): ``sorter.agv.lacam.search`` (compiled loop and generator) against the same
        search in plain Python (``tests/naive_lacam.py``: the reference loop with the
        plain-Python generator), same run; same outcome and plans asserted."""
        import naive_lacam
        from naive_lacam import generate, search_reference
        from sorter.agv.lacam import search
        p, args = _first_rescue((54, 7, 5, 0.2, 0.85), min_calls=2000)
        fadj_l, dist_l = args[0].tolist(), args[1].tolist()

        def plain(fadj, dist, grow, cfg, order, c_who, c_at, salt, out, *scratch):
            got = generate(fadj_l, dist_l, grow.tolist(), cfg.tolist(), order.tolist(),
                           list(zip(c_who.tolist(), c_at.tolist())), int(salt))
            if got is None:
                return False
            out[:] = got
            return True

        def compiled():
            return search(*args[:6], seed=args[6], max_calls=2000, shorten=False)

        def python():
            return search_reference(*args[:6], seed=args[6], max_calls=2000)

        compiled_gen = naive_lacam._generate
        naive_lacam._generate = plain
        try:
            a, b = compiled(), python()
            assert a[1:] == b[1:] and (a[0] is None) == (b[0] is None)
            benchmark.pedantic(compiled if how == "compiled" else python, rounds=3,
                               warmup_rounds=1)
        finally:
            naive_lacam._generate = compiled_gen
        benchmark.extra_info.update(generations=a[2], outcome=a[1])
        record_pair(f"rescue search ({a[2]} generations, {a[1]})", _RESCUE, how,
                    timing(benchmark), "compiled", "plain-python")

    FAULT_CASES = [("rhcr-sorting", 1000), ("sortation_large", 10000)]
    _FAULT_STEP = {}

    @pytest.mark.benchmark(group="mapf-faults")
    @pytest.mark.parametrize("name,n", FAULT_CASES, ids=[f"{f}-{n}" for f, n in FAULT_CASES])
    @pytest.mark.parametrize("horizon", [0, 12], ids=["queue", "detour"])
    def test_step_with_faults(benchmark, name, n, horizon):
        """A sorting floor with ~5% of robots faulted: step time and parcels per step with
        detours (horizon 12) against queueing behind faulted robots (horizon 0), same run."""
        from sorter.agv.floor_sim import FloorSimOptions
        from sorter.agv.lifelong import make_run
        floor = floor_of(name)
        if floor is None:
            pytest.skip(f"../shared/{'/'.join(FLOORS[name])} not present")
        opt = FloorSimOptions(chute_capacity=0, fault_rate=0.0005, repair_steps=100)
        p, s = make_run(floor, n, seed=0, tasks="sorting", guidance="lanes+flow", mix="721",
                        floor_sim=opt, detour_horizon=horizon,
                        induct_choice="nearest")     # as the RESULTS figures were made
        state = {"goals": s.start(p)}
        p.prepare(state["goals"])

        def one():
            s.pre_step(p, state["goals"])
            p.step(state["goals"])
            state["goals"] = s.update(p)

        for _ in range(300):                    # faults build up to ~5% of the fleet
            one()
        before = s.dropped
        rounds = 200
        benchmark.pedantic(one, rounds=rounds, iterations=1, warmup_rounds=0)
        med = timing(benchmark)
        rate = (s.dropped - before) / (rounds if med is not None else 1)   # disabled: 1 step
        benchmark.extra_info.update(parcels_per_step=rate, faulted=int((s.fault_left > 0).sum()))
        _FAULT_STEP[(name, n, horizon)] = (med, rate)
        if (name, n, 0) in _FAULT_STEP and (name, n, 12) in _FAULT_STEP:
            (mq, rq), (md, rd) = _FAULT_STEP[(name, n, 0)], _FAULT_STEP[(name, n, 12)]
            if mq is None or md is None:                # --benchmark-disable
                record(f"faults {name} {n} robots (steps 300-500)", DISABLED)
                return
            record(f"faults {name} {n} robots (steps 300-500)",
                   f"detours vs queueing: {rd:.2f} vs {rq:.2f} parcels/step "
                   f"(x{rd / max(rq, 1e-9):.2f}), step median {md * 1e3:.2f} vs {mq * 1e3:.2f} ms "
                   f"(x{md / mq:.2f})")

    def _naive_from(p):
        """The plain-Python PIBT in the planner's exact state, reading the planner's tables."""
        from naive_pibt import NaivePIBT

        class Table:
            def __init__(self, row):
                self.row = p.tables.pool[row]
                self.fidx = p.graph.fidx
                self.unreach = p.tables.unreachable

            def get(self, c, default):
                v = int(self.row[self.fidx[c]])
                return default if v == self.unreach else v

        f = p.floor
        q = NaivePIBT(f.moves, f.cells, p.positions, p.seed, p.dwell_chute, p.dwell_induct)
        q.elapsed = p._elapsed.tolist()
        q.dwell = p._dwell.tolist()
        q.done = p._done.tolist()
        q.step_no = p.step_no
        q.goal = p._goal.tolist()
        q.dist = [Table(int(r)) for r in p._slot]
        return q

    RATIO_CASES = [("rhcr-sorting", 100), ("rhcr-sorting", 1000), ("sortation_large", 1000)]

    @pytest.mark.benchmark(group="mapf-vs-plain-python")
    @pytest.mark.parametrize("name,n", RATIO_CASES, ids=[f"{f}-{n}" for f, n in RATIO_CASES])
    def test_ratio_plain_python_pibt(benchmark, name, n):
        floor = floor_of(name)
        if floor is None:
            pytest.skip("shared benchmarks not present")
        p, s, goals = warm_run(floor, n, guidance="none")
        # the same step in both: the naive one first (it does not change the planner)
        p.prepare(goals)
        q = _naive_from(p)
        t0 = time.perf_counter()
        want = q.step()
        t_naive = time.perf_counter() - t0
        got = p.step(goals)
        assert got.tolist() == want                 # identical decisions on the real instance
        ours = []
        for _ in range(20):
            goals = s.update(p)
            t0 = time.perf_counter()
            p.step(goals)
            ours.append(time.perf_counter() - t0)
        p.prepare(goals)
        benchmark.pedantic(lambda: _naive_from(p).step(), rounds=3, iterations=1)
        if timing(benchmark) is None:                   # --benchmark-disable
            record(f"plain-Python PIBT {name} {n} robots", DISABLED)
            return
        t_naive = min(t_naive, timing(benchmark))
        record(f"plain-Python PIBT {name} {n} robots",
               f"{t_naive * 1e3:.1f} ms/step vs ours {np.median(ours) * 1e3:.3f} ms/step: "
               f"x{t_naive / np.median(ours):.0f} (same decisions checked on one step)")

    PEER_CASES = [("sortation_large", 1000), ("warehouse-20-40", 10000)]

    def _our_step_times(p, s, goals, steps=20):
        """Seconds of each of ``steps`` planner steps (tasks updated between, untimed)."""
        out = []
        for _ in range(steps):
            t0 = time.perf_counter()
            p.step(goals)
            out.append(time.perf_counter() - t0)
            goals = s.update(p)
        return out

    @pytest.mark.benchmark(group="mapf-vs-pymapf")
    @pytest.mark.parametrize("name,n", PEER_CASES, ids=[f"{f}-{n}" for f, n in PEER_CASES])
    def test_ratio_pymapf(benchmark, name, n):
        pymapf = pytest.importorskip("pymapf")
        from pymapf.algorithms.pibt import pibt_step
        floor = floor_of(name)
        if floor is None:
            pytest.skip("shared benchmarks not present")
        n = fit(floor, n)
        p, s, goals = warm_run(floor, n, guidance="none")
        W = floor.width
        grid = pymapf.GridMap((floor.cells == 0).reshape(floor.height, floor.width).astype(int))
        names = [str(i) for i in range(n)]
        pos = {str(i): divmod(int(c), W) for i, c in enumerate(p.positions)}
        gl = {str(i): divmod(int(c), W) for i, c in enumerate(p.goals)}
        prio = {str(i): float(e) + 1e-6 * i for i, e in enumerate(p._elapsed)}
        pool, fidx, slot = p.tables.pool, p.graph.fidx, p._slot

        def dist(name, cell):                       # our precomputed tables, as the figure
            return float(pool[slot[int(name)], fidx[cell[0] * W + cell[1]]])

        import random
        rng = random.Random(0)
        t0 = time.perf_counter()
        out = pibt_step(grid, names, pos, gl, prio, dist, rng=rng)
        t_peer = time.perf_counter() - t0
        assert out is not None
        ours = _our_step_times(p, s, goals)
        benchmark.pedantic(lambda: pibt_step(grid, names, pos, gl, prio, dist, rng=rng),
                           rounds=2, iterations=1)
        if timing(benchmark) is None:                   # --benchmark-disable
            record(f"pymapf 0.9.0 pibt_step {name} {n} robots", DISABLED)
            return
        t_peer = min(t_peer, timing(benchmark))
        record(f"pymapf 0.9.0 pibt_step {name} {n} robots",
               f"{t_peer * 1e3:.1f} ms/step vs ours {np.median(ours) * 1e3:.3f} ms/step: "
               f"x{t_peer / np.median(ours):.0f}")

    @pytest.mark.benchmark(group="mapf-vs-cuplan")
    @pytest.mark.parametrize("name,n", PEER_CASES, ids=[f"{f}-{n}" for f, n in PEER_CASES])
    def test_ratio_cuplan(benchmark, name, n):
        """cuplan 0.1.0's PIBT timestep on its NumPy backend (candidate ranking + the
        inheritance on the host), given our distance tables as its per-agent oracle."""
        pytest.importorskip("cuplan")
        from cuplan.grid import Grid
        from cuplan.pibt import PIBT, _INF, _candidate_table, _pibt_step
        floor = floor_of(name)
        if floor is None:
            pytest.skip("shared benchmarks not present")
        n = fit(floor, n)
        p, s, goals = warm_run(floor, n, guidance="none")
        grid = Grid((floor.cells == 0).reshape(floor.height, floor.width))   # True: blocked
        # its oracle: one (cells,) distance row per agent, blocked / unreachable = _INF
        pool, fidx = p.tables.pool, p.graph.fidx
        rows = pool[p._slot].astype(np.int64)          # (n, free cells), our exact BFS tables
        rows[rows == p.tables.unreachable] = _INF
        dist = np.full((n, floor.height * floor.width), _INF, dtype=np.int64)
        free = fidx >= 0
        dist[:, free] = rows[:, fidx[free]]
        cand = _candidate_table(grid)
        pos = p.positions.astype(np.int64)
        order = np.argsort(-(p._elapsed.astype(np.float64) + np.arange(n) / (n + 1)),
                           kind="stable")
        solver = PIBT(seed=0, backend="cpu")
        rng = np.random.default_rng(0)

        def peer_step():
            ranked = solver._rank_candidates(dist, cand, pos, rng)
            return _pibt_step(pos, ranked, order)

        t0 = time.perf_counter()
        out = peer_step()
        t_peer = time.perf_counter() - t0
        assert out is not None and len(set(out.tolist())) == n      # a valid next step
        ours = _our_step_times(p, s, goals)
        benchmark.pedantic(peer_step, rounds=3, iterations=1)
        if timing(benchmark) is None:                   # --benchmark-disable
            record(f"cuplan 0.1.0 PIBT step (NumPy backend) {name} {n} robots", DISABLED)
            return
        t_peer = min(t_peer, timing(benchmark))
        record(f"cuplan 0.1.0 PIBT step (NumPy backend) {name} {n} robots",
               f"{t_peer * 1e3:.1f} ms/step vs ours {np.median(ours) * 1e3:.3f} ms/step: "
               f"x{t_peer / np.median(ours):.0f}")

    def _numpy_bfs(radj, src, unreach):
        """Baseline table: a level-by-level BFS in NumPy from the goal's cells over the
        reversed moves (every cell's distance to the nearest goal cell, as the tables)."""
        out = np.full(radj.shape[0], unreach, np.int64)
        out[src] = 0
        front, d = np.unique(src), 0
        while front.size:
            d += 1
            nb = radj[front].ravel()
            nb = nb[nb >= 0]
            front = np.unique(nb[out[nb] == unreach])
            out[front] = d
        return out

    PLAIN_BFS_TABLES = 300      # tables the NumPy baseline computes per floor (first ones)

    @pytest.mark.benchmark(group="mapf-preprocess")
    @pytest.mark.parametrize("name", list(FLOORS))
    @pytest.mark.parametrize("guidance", ["none", "lanes"])
    def test_preprocess_station_tables(benchmark, name, guidance):
        """Every station's table (inducts + chutes; free cells on maps without roles, capped).
        Same-run baseline (``guidance="none"``): a NumPy BFS per goal (``_numpy_bfs``) on the
        first ``PLAIN_BFS_TABLES`` goals, equal values asserted, compared per table. The
        weighted (lanes) tables have no baseline here: no weighted shortest-path library is
        installed (scipy is not) and a NumPy Dial would be a second copy of ours; their
        reference is the plain row of the same floor."""
        from sorter.agv import DistanceTables
        from sorter.agv.distance import _goal_sources
        from sorter.agv.guidance import lane_costs
        floor = floor_of(name)
        if floor is None:
            pytest.skip("shared benchmarks not present")
        goals = {("i", s.index): s.cells for s in floor.inducts}
        goals.update({("c", s.index): s.cells for s in floor.chutes})
        if not goals:
            goals = {("cell", int(c)): [int(c)] for c in floor.free_cells[::10][:1000]}
        state = {}

        def build():
            t0 = time.perf_counter()
            costs = lane_costs(floor, 2) if guidance == "lanes" else None
            t = DistanceTables(floor, max_mb=1e6, reserve=len(goals), costs=costs)
            t.precompute(goals)
            state.update(t=t, s=time.perf_counter() - t0)

        benchmark.pedantic(build, rounds=1, iterations=1)
        t = state["t"]
        record(f"preprocess {name} ({guidance})",
               f"{len(goals)} tables in {state['s']:.2f} s, {t.nbytes / 2**20:.0f} MB "
               f"({t.row_bytes / 1024:.0f} KB per table, {t.dtype.__name__})")
        if guidance != "none":
            return
        disabled = timing(benchmark) is None            # --benchmark-disable: one table
        keys = list(goals)[:1 if disabled else PLAIN_BFS_TABLES]
        srcs = [_goal_sources(t.graph, goals[k]) for k in keys]
        t0 = time.perf_counter()
        rows = [_numpy_bfs(t.graph.radj, src, t.unreachable) for src in srcs]
        plain = time.perf_counter() - t0
        for k, r in zip(keys, rows):
            assert np.array_equal(t.values(t._row_of[k]), r), k
        ours, base = state["s"] / len(goals), plain / len(keys)
        benchmark.extra_info.update(numpy_bfs_ms_per_table=base * 1e3)
        record(f"preprocess {name} (none) vs NumPy BFS per goal", DISABLED if disabled else
               f"{ours * 1e3:.3f} ms per table ({len(goals)} tables) vs NumPy BFS "
               f"{base * 1e3:.3f} ms ({len(keys)} tables): x{base / ours:.0f}")


def _first_rescue(case=(55, 8, 11, 0.1, 0.3), min_calls=0):
    """The planner state where the first rescue search (that took at least ``min_calls``
    generations) starts on a crowded floor with pockets (:func:`crowded_floor` ``case``;
    default 8 x 11, 10% obstacles, 23 robots), and that search's arguments."""
    import sorter.agv.lacam as lacam
    from naive_lacam import crowded_floor
    from sorter.agv import Planner
    f, cells, starts, rng = crowded_floor(*case)
    p = Planner(f, starts.size, starts, seed=1, dwell_chute=0, dwell_induct=0)
    seen = []
    real = lacam.search

    def spy(*a, **k):
        got = real(*a, **k)
        if got[2] >= min_calls:
            seen.append((*a[:6], k["seed"]))
        return got

    lacam.search = spy
    try:
        goals = rng.choice(cells, starts.size).astype(np.int32)
        while not seen:
            p.step(goals)
            fin = np.flatnonzero(p.finished)
            goals = goals.copy()
            goals[fin] = rng.choice(cells, fin.size)
    finally:
        lacam.search = real
    return p, seen[0]


def liveness(n_floors=60, steps=1500, rotation=False):
    """Crowded random floors with pockets (5-12 x 5-12 cells, 0-30% obstacles, robots on
    30-85% of the free cells, random goals, no dwell): how many runs leave robots that finish
    nothing in the second half, without and with rescues; tasks per step; ms per step."""
    from naive_lacam import crowded_floor
    from sorter.agv import Planner
    print("| rescues | floors with robots idle in the 2nd half | robots idle | tasks | "
          "rescues / searches without a plan | ms/step p50 / max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for after in (0, 128):
        bad = idle = tasks = resc = fails = 0
        ms = []
        for seed in range(n_floors):
            r = np.random.default_rng(seed + 1000)
            h, w = (int(x) for x in r.integers(5, 13, 2))
            obst = float(r.choice([0.0, 0.1, 0.2, 0.3]))
            dens = float(r.choice([0.3, 0.5, 0.7, 0.85]))
            f, cells, starts, rng = crowded_floor(seed, h, w, obst, dens)
            n = starts.size
            p = Planner(f, n, starts, seed=seed, dwell_chute=0, dwell_induct=0,
                        rotation=rotation, rescue_after=after)
            goals = rng.choice(cells, n).astype(np.int32)
            last = np.zeros(n, np.int64)
            for t in range(1, steps + 1):
                t0 = time.perf_counter()
                p.step(goals)
                ms.append((time.perf_counter() - t0) * 1e3)
                fin = np.flatnonzero(p.finished)
                last[fin] = t
                goals = goals.copy()
                goals[fin] = rng.choice(cells, fin.size)
            k = int((steps - last > steps // 2).sum())
            bad += k > 0
            idle += k
            tasks += p.tasks_completed
            resc += p.rescues
            fails += p.rescue_failures
        print(f"| {'every ' + str(after) + ' steps stuck' if after else 'off'} | {bad} of "
              f"{n_floors} | {idle} | {tasks} | {resc} / {fails} | "
              f"{np.median(ms):.3f} / {max(ms):.0f} |", flush=True)


def _rooms(n, size, rng):
    """n x n rooms of size x size cells, walls one cell, a one-cell door to the east / south
    neighbour with probability 0.8."""
    side = n * (size + 1) + 1
    g = np.ones((side, side), np.int8)
    g[::size + 1, :] = 0
    g[:, ::size + 1] = 0
    for i in range(n):
        for j in range(n):
            r0, c0 = i * (size + 1) + 1, j * (size + 1) + 1
            if j + 1 < n and rng.random() < 0.8:
                g[r0 + rng.integers(size), c0 + size] = 1
            if i + 1 < n and rng.random() < 0.8:
                g[r0 + size, c0 + rng.integers(size)] = 1
    return g


def mazes(steps=2000, seed=0):
    """Tasks and robots idle in the second half on maze and room floors, random goals, no
    dwell, default planner (rescues up to RESCUE_ROBOTS robots)."""
    from naive_lacam import dfs_maze
    from sorter.agv import Planner
    from sorter.agv.tasks import connected_parts
    from sorter.layout import Floor
    cases = [("maze, 1-cell corridors, 16 x 16 rooms", lambda r: dfs_maze(r, 16, 16), (0.01, 0.1, 0.3)),
             ("maze, 2-cell corridors, 10 x 10 rooms", lambda r: dfs_maze(r, 10, 10, 2), (0.1, 0.3)),
             ("rooms 7 x 7 of 8 x 8 cells, 1-cell doors", lambda r: _rooms(7, 8, r), (0.1, 0.3, 0.4))]
    print("| floor | free cells | robots | tasks | robots idle in the 2nd half | rescues / searches "
          "without a plan |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, make, densities in cases:
        for dens in densities:
            rng = np.random.default_rng(seed)
            f = Floor(make(rng), check=False)
            free = np.asarray(f.free_cells)
            lab = connected_parts(np.asarray(f.moves))[free]
            vals, cnt = np.unique(lab, return_counts=True)
            free = free[lab == vals[cnt.argmax()]]
            n = max(2, int(dens * free.size))
            p = Planner(f, n, rng.choice(free, n, replace=False), seed=seed, dwell_chute=0,
                        dwell_induct=0)
            goals = rng.choice(free, n).astype(np.int32)
            last = np.zeros(n, np.int64)
            for t in range(1, steps + 1):
                p.step(goals)
                fin = np.flatnonzero(p.finished)
                last[fin] = t
                goals = goals.copy()
                goals[fin] = rng.choice(free, fin.size)
            idle = int((steps - last > steps // 2).sum())
            print(f"| {name} | {free.size} | {n} | {p.tasks_completed} | {idle} | "
                  f"{p.rescues} / {p.rescue_failures} |", flush=True)


# ------------------------------------------------------------------------ throughput (script)
def _absent(parts):
    """Say on stderr (the tables go to stdout) that a run is skipped for want of ../shared."""
    print(f"../shared/{'/'.join(parts)} not present: skipped", file=sys.stderr, flush=True)


def _run(floor, n, steps, *, guidance, starts=None, errands=None, dwell=(0, 0), seed=0,
         turn_weight=None, hold_on_turn=None, **kw):
    from sorter.agv.lifelong import make_run, simulate
    t0 = time.perf_counter()
    p, s = make_run(floor, n, starts, seed=seed, errands=errands, guidance=guidance,
                    dwell_chute=dwell[0], dwell_induct=dwell[1], **kw)
    if turn_weight is not None:            # rotation model: 0 = the first version's ordering
        p.turn_weight = int(turn_weight)
    if hold_on_turn is not None:           # rotation model: False = the first version
        p.hold_on_turn = bool(hold_on_turn)
    r = simulate(p, s, steps, record=False, build_s=time.perf_counter() - t0)
    return r.kpis()


THROUGHPUT_LORR = [LORR + ("test_round", "warehouse.domain", "TR23-warehouse_large.json"),
                   LORR + ("test_round", "warehouse.domain", "TR23-sortation_large.json"),
                   LORR + ("main_round", "warehouse.domain", "MR23-I-06.json"),
                   LORR + ("main_round", "warehouse.domain", "MR23-I-10.json")]


def throughput(quick=False, only=None, rotation=False, match=None, guidances=("none", "lanes+flow"),
               turn_weight=None, hold_on_turn=None, steps=None, congestion_period=None):
    from sorter.layout.lorr import load_lorr_problem
    steps = steps or (1000 if quick else 5000)
    rows = []
    print("| instance | robots | steps | planner | tasks | tasks/step | ms/step p50 / p99 | "
          "kernel ms p50 | preprocess s | tables MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def line(inst, n, g, k):
        rows.append((inst, n, g, k))
        print(f"| {inst} | {n} | {k['steps']} | {g} | {k['tasks_completed']} | "
              f"{k['tasks_per_step']:.2f} | {k['ms_per_step_p50']:.2f} / {k['ms_per_step_p99']:.2f} | "
              f"{k['kernel_ms_p50']:.2f} | {k['preprocess_s']:.2f} | {k['distance_table_mb']:.0f} |",
              flush=True)

    for parts in THROUGHPUT_LORR if only in (None, "lorr") else []:
        if match and match not in Path(parts[-1]).stem:
            continue
        p = shared_path(*parts)
        if p is None:
            _absent(parts)
            continue
        prob = load_lorr_problem(p)
        for g in guidances:
            k = _run(prob.floor, prob.team_size, steps, guidance=g, starts=prob.starts,
                     errands=prob.tasks, max_table_mb=2048, rotation=rotation,
                     turn_weight=turn_weight, hold_on_turn=hold_on_turn,
                     congestion_period=congestion_period)
            tw = "" if not rotation or turn_weight is None else f", turn weight {turn_weight}"
            tw += "" if not rotation or hold_on_turn is None else f", hold {hold_on_turn}"
            tw += "" if congestion_period is None else f", congestion {congestion_period}"
            line(p.stem + (f" (rotation{tw})" if rotation else ""), prob.team_size, g, k)
    rh = shared_path("benchmarks", "rhcr", "sorting_map.grid")
    if rh is None and only in (None, "rhcr"):
        _absent(("benchmarks", "rhcr", "sorting_map.grid"))
    if rh is not None and only in (None, "rhcr"):
        from sorter.layout import load_floor
        f = load_floor(rh)
        for dwell in ((0, 0), (5, 1)):
            for n in (200, 400, 600, 800, 1000):
                for g in guidances:
                    for ic in ("nearest", "balanced"):
                        if g == "none" and ic == "balanced":
                            continue
                        k = _run(f, n, steps, guidance=g, dwell=dwell, mix="uniform",
                                 n_destinations=len(f.chutes), induct_choice=ic)
                        line(f"rhcr sorting_map dwell {dwell[0]}/{dwell[1]}", n,
                             f"{g}, {ic} induct", k)
    return rows


class GreedyTasks:
    """LoRR 2024-style tasks with a greedy scheduler (as the Start-Kit's default one does):
    an open pool of ``pool`` tasks, each a random ``E`` errand then a random ``S`` errand; a free
    robot takes the open task whose first errand is nearest (Manhattan) and does its errands in
    order; a finished task is replaced by a new random one (seeded). ``completed`` counts
    errands, ``delivered`` finished tasks."""

    def __init__(self, floor, n_robots, rng, pool=None, prefetch=False):
        self.E = np.flatnonzero(floor.cells == 2).astype(np.int32)
        self.S = np.flatnonzero(floor.cells == 3).astype(np.int32)
        self.w = floor.width
        self.n = int(n_robots)
        self.rng = rng
        self.pool_e = rng.choice(self.E, pool or self.n)
        self.pool_s = rng.choice(self.S, self.pool_e.size)
        self.stage = np.zeros(self.n, np.int8)         # 0 free, 1 to E, 2 to S
        self.task_s = np.zeros(self.n, np.int32)
        self.completed = 0
        self.delivered = 0
        self._goals = None
        self.prefetch = prefetch            # S tables computed ahead on a second thread

    def _assign(self, robots, positions):
        pr, pc = np.divmod(self.pool_e, self.w)
        for i in robots:
            r, c = divmod(int(positions[i]), self.w)
            j = int(np.argmin(np.abs(pr - r) + np.abs(pc - c)))
            self._goals[i] = self.pool_e[j]
            self.task_s[i] = self.pool_s[j]
            self.stage[i] = 1
            self.pool_e[j] = self.rng.choice(self.E)
            self.pool_s[j] = self.rng.choice(self.S)
            pr[j], pc[j] = divmod(int(self.pool_e[j]), self.w)

    def start(self, planner):
        self._goals = np.empty(self.n, np.int32)
        self._assign(range(self.n), planner.positions)
        if self.prefetch:                       # the S errand of every task taken
            planner.prefetch(self.task_s)
        return self._goals

    def update(self, planner):
        fin = np.flatnonzero(planner.finished)
        if fin.size:
            self.completed += fin.size
            self._goals = self._goals.copy()
            to_s = fin[self.stage[fin] == 1]
            self._goals[to_s] = self.task_s[to_s]
            self.stage[to_s] = 2
            free = fin[self.stage[fin] == 2]
            free = free[~np.isin(free, to_s)]
            self.delivered += free.size               # tasks finished (their S errand done)
            self.stage[free] = 0
            self._assign(free, planner.positions)
            if self.prefetch and free.size:
                planner.prefetch(self.task_s[free])
        return self._goals


def startkit_greedy(steps=500, sizes=(1000, 2500), turn_weight=None, precompute=False,
                    guidances=("none", "lanes+flow"), prefetch=False):
    """The Start-Kit comparison with its kind of task assignment (:class:`GreedyTasks`).

    ``precompute``: compute the tables of the ``E`` cells, then of as many ``S`` cells as the
    2 GB table bound holds, before the run (LoRR gives a preprocessing budget for this), so
    fewer steps build tables."""
    from sorter.agv.lifelong import default_starts, simulate
    from sorter.agv.pibt import Planner
    f = floor_of("sortation_large")
    if f is None:
        _absent(FLOORS["sortation_large"])
        return
    print("| robots | steps | planner | tasks (E then S) | tasks/step | ms/step p50 / p99 | "
          "kernel ms p50 | tables MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        starts = default_starts(f, n, np.random.default_rng(0))
        for g in guidances:
            t0 = time.perf_counter()
            p = Planner(f, n, starts, seed=0, dwell_chute=0, dwell_induct=0, guidance=g,
                        max_table_mb=2048, rotation=True, turn_weight=turn_weight)
            if precompute:                  # E cells first (every task visits one), then S
                cells = np.concatenate([np.flatnonzero(f.cells == 2), np.flatnonzero(f.cells == 3)])
                p.tables.precompute({("cell", int(c)): (int(c),) for c in cells})
            s = GreedyTasks(f, n, np.random.default_rng(0), prefetch=prefetch)
            k = simulate(p, s, steps, record=False, build_s=time.perf_counter() - t0).kpis()
            pre = f", tables precomputed in {k['preprocess_s']:.1f} s" if precompute else ""
            pre += ", S tables prefetched (2nd thread)" if prefetch else ""
            print(f"| {n} | {steps} | {g}, greedy{pre} | {k['parcels_delivered']} | "
                  f"{k['parcels_delivered'] / steps:.2f} | {k['ms_per_step_p50']:.2f} / "
                  f"{k['ms_per_step_p99']:.2f} | {k['kernel_ms_p50']:.2f} | "
                  f"{k['distance_table_mb']:.0f} |", flush=True)


def startkit_like(steps=500, sizes=(1000, 2500, 10000), turn_weight=None):
    """LoRR 2024-style sortation tasks on sortation_large: each task = a random E errand then a
    random S errand, rotation action model, 500 steps (as the issue's Start-Kit figures).

    The 2024 task files are not in ../shared, so the errands are drawn here with a seeded
    generator (uniform E cells, uniform S cells); a task counts when its S errand is done.
    """
    from sorter.agv.lifelong import default_starts
    f = floor_of("sortation_large")
    if f is None:
        _absent(FLOORS["sortation_large"])
        return
    E = np.flatnonzero(f.cells == 2)
    S = np.flatnonzero(f.cells == 3)
    print("| robots | steps | planner | tasks (E then S) | tasks/step | ms/step p50 / p99 | "
          "kernel ms p50 | tables MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        rng = np.random.default_rng(0)
        k_max = 60
        errands = np.concatenate([rng.choice(E if k % 2 == 0 else S, n) for k in range(k_max)])
        starts = default_starts(f, n, np.random.default_rng(0))
        for g in ("none", "lanes+flow"):
            k = _run(f, n, steps, guidance=g, starts=starts, errands=errands, rotation=True,
                     max_table_mb=2048, turn_weight=turn_weight)
            print(f"| {n} | {steps} | {g} | {k['tasks_completed'] // 2} | "
                  f"{k['tasks_completed'] / 2 / steps:.2f} | {k['ms_per_step_p50']:.2f} / "
                  f"{k['ms_per_step_p99']:.2f} | {k['kernel_ms_p50']:.2f} | "
                  f"{k['distance_table_mb']:.0f} |", flush=True)


def validate_all(robots=1000, steps=1000):
    """``sorter mapf`` on every shared floor, then the validator on its ``paths.npz``."""
    import contextlib
    import io
    import json
    import tempfile

    from sorter.agv.validate import validate
    from sorter.cli import main
    from sorter.layout import load_floor
    floors = [("benchmarks", "rhcr", "sorting_map.grid"), ("benchmarks", "rhcr", "kiva.map"),
              ("benchmarks", "movingai", "warehouse-10-20-10-2-1.map"),
              ("benchmarks", "movingai", "warehouse-20-40-10-2-1.map"),
              LORR + ("example_instances", "warehouse.domain", "maps", "warehouse_small.map"),
              LORR + ("main_round", "warehouse.domain", "maps", "sortation_large.map"),
              LORR + ("main_round", "warehouse.domain", "maps", "warehouse_large.map"),
              LORR + ("main_round", "warehouse.domain", "MR23-I-06.json")]
    print("| floor | robots | steps | tasks/step | ms/step p50 / p99 | rescues | validator |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for parts in floors:
        p = shared_path(*parts)
        if p is None:
            _absent(parts)
            continue
        f = load_floor(p)
        n = min(robots, int(0.6 * f.free_cells.size))
        with tempfile.TemporaryDirectory() as d:
            with contextlib.redirect_stdout(io.StringIO()):    # its JSON: read from kpis.json
                rc = main(["mapf", str(p), "--robots", str(n), "--steps", str(steps), "--out", d,
                           "--json"])
            with np.load(f"{d}/paths.npz") as z:
                pos = z["positions"]
            k = json.loads(Path(d, "kpis.json").read_text())
            v = validate(f, pos[0], pos)
        print(f"| {p.name} | {n} | {steps} | {k['tasks_per_step']:.2f} | "
              f"{k['ms_per_step_p50']:.2f} / {k['ms_per_step_p99']:.2f} | "
              f"{k.get('rescues', 0)} | {'valid' if v is None and rc == 0 else v} |", flush=True)


def distance_bound(instances=("MR23-I-06", "MR23-I-10"), sample=300, seed=0):
    """Mean exact (4-connected) distance between a robot's first two errands, and the
    errands per step that bound gives: no waits, no turns, no lane detours."""
    from sorter.agv.distance import distance_table
    from sorter.layout.lorr import load_lorr_problem
    for inst in instances:
        p = shared_path(*LORR, "main_round", "warehouse.domain", inst + ".json")
        if p is None:
            print(f"{inst}: ../shared absent, skipped")
            continue
        prob = load_lorr_problem(p)
        robots = np.random.default_rng(seed).choice(prob.team_size, sample, replace=False)
        d = np.array([distance_table(prob.floor, [prob.task_for(r, 1)])[prob.task_for(r, 0)]
                      for r in robots], dtype=np.float64)
        print(f"{inst}: mean errand {d.mean():.1f} cells (median {np.median(d):.0f}, "
              f"{sample} robots) -> at most {prob.team_size / d.mean():.1f} errands per step "
              f"for {prob.team_size} robots", flush=True)


def rhcr_one_cell(sizes=(200, 400, 600, 800, 1000), steps=1000, seed=0, balance_weight=None,
                  guidance="none"):
    """RHCR's SORTING task model exactly: each eject visit goes to ONE access cell of the
    station, drawn at random (RHCR: a uniform eject station, then one of its cells), not to
    the station (any of its cells). Plain PIBT, no dwell; nearest induct, or with
    ``balance_weight`` RHCR's choice (distance + weight x robots heading there; RHCR uses 8)."""
    from sorter.agv.lifelong import default_starts, simulate
    from sorter.agv.pibt import Planner
    from sorter.agv.tasks import SortingTasks
    from sorter.layout import load_floor
    rh = shared_path("benchmarks", "rhcr", "sorting_map.grid")
    if rh is None:
        print("../shared absent: skipped")
        return
    f = load_floor(rh)
    chute_cells = [np.asarray(c.cells, np.int32) for c in f.chutes]

    class OneCell(SortingTasks):
        def _one_cell(self, goals):
            goals = goals.copy()
            new = np.flatnonzero((self.heading == 1) & (self.target != self._drawn_for))
            for i in new:
                cells = chute_cells[int(self.target[i])]
                self._cell[i] = cells[self.rng.integers(cells.size)]
            self._drawn_for[new] = self.target[new]
            to_chute = self.heading == 1
            goals[to_chute] = self._cell[to_chute]
            return goals

        def start(self, planner):
            self._drawn_for = np.full(self.n, -1, np.int64)
            self._cell = np.zeros(self.n, np.int32)
            return self._one_cell(super().start(planner))

        def update(self, planner):
            fin = planner.finished
            self._drawn_for[fin] = -1            # a new trip draws a new cell
            return self._one_cell(super().update(planner))

    print("| robots | steps | tasks/step, one access cell (RHCR's model) | tasks/step, station goal | ms/step p50 |")
    print("| --- | --- | --- | --- | --- |")
    for n in sizes:
        out = []
        for one in (True, False):
            rng = np.random.default_rng(seed)
            starts = default_starts(f, n, rng)
            p = Planner(f, n, starts, seed=seed, dwell_chute=0, dwell_induct=0,
                        station_goals=not one, guidance=guidance)
            cls = OneCell if one else SortingTasks
            ic = "nearest" if balance_weight is None else "balanced"
            t = cls(f, n, rng, mix="uniform", n_destinations=len(f.chutes), induct_choice=ic,
                    balance_weight=2.0 if balance_weight is None else balance_weight)
            out.append(simulate(p, t, steps, record=False).kpis())
        print(f"| {n} | {steps} | {out[0]['tasks_per_step']:.2f} | {out[1]['tasks_per_step']:.2f} | "
              f"{out[0]['ms_per_step_p50']:.2f} |", flush=True)


_OPTIONS = {       # subcommand -> the options it reads (``--name=value`` or a bare flag)
    "startkit": {"--sizes=", "--greedy", "--guidance=", "--precompute", "--prefetch",
                 "--turn-weight="},
    "rhcr-one-cell": {"--steps=", "--balance=", "--guidance="},
    "liveness": {"--rotation", "--steps="},
    "mazes": set(), "bound": set(), "validate-all": set(),
    "throughput": {"--quick", "--steps=", "--only=", "--match=", "--guidance=", "--rotation",
                   "--turn-weight=", "--no-hold", "--congestion-period="},
}


def _check_argv(argv):
    """Refuse an unknown subcommand or option (they used to be ignored silently: a typo ran
    the default, e.g. 5,000 steps at 10,000 robots), and option values or combinations a run
    would ignore (``--only=`` other than lorr / rhcr; LoRR-only options with ``--only=rhcr``)."""
    if len(argv) < 2:
        return
    known = _OPTIONS.get(argv[1])
    if known is None:
        sys.exit(f"bench_mapf.py: unknown subcommand {argv[1]!r} (expected one of "
                 f"{', '.join(_OPTIONS)}; pytest for the speed benchmarks)")
    for a in argv[2:]:
        name = a.split("=")[0] + ("=" if "=" in a else "")
        if name not in known:
            sys.exit(f"bench_mapf.py {argv[1]}: unknown option {a!r} (expected "
                     f"{', '.join(sorted(o + ('VALUE' if o.endswith('=') else '') for o in known)) or 'none'})")
    for a in argv[2:]:          # counts: --steps=0 used to run the default 5,000 steps
        if a.startswith("--congestion-period=") and not a.split("=", 1)[1].isdigit():
            sys.exit(f"bench_mapf.py {argv[1]}: {a!r}: expected a whole number of steps (0 = off)")
        if a.startswith(("--steps=", "--sizes=")):
            v = a.split("=", 1)[1]
            if not all(x.isdigit() and int(x) > 0 for x in v.split(",")) or \
                    (a.startswith("--steps=") and "," in v):
                sys.exit(f"bench_mapf.py {argv[1]}: {a!r}: expected a positive whole number"
                         + (" (or several, comma-separated)" if a.startswith("--sizes=") else ""))
    only = next((a.split("=", 1)[1] for a in argv[2:] if a.startswith("--only=")), None)
    if only is not None and only not in ("lorr", "rhcr"):
        sys.exit(f"bench_mapf.py {argv[1]}: --only={only!r}: expected --only=lorr or --only=rhcr")
    lorr_only = [a for a in argv[2:] if a.split("=")[0] in ("--match", "--rotation", "--turn-weight",
                                                             "--no-hold", "--congestion-period")]
    match = next((a.split("=", 1)[1] for a in argv[2:] if a.startswith("--match=")), None)
    stems = [Path(parts[-1]).stem for parts in THROUGHPUT_LORR]
    if match is not None and not any(match in st for st in stems):
        sys.exit(f"bench_mapf.py {argv[1]}: --match={match!r} matches no LoRR instance "
                 f"(a part of one of {', '.join(stems)})")
    if only == "rhcr" and lorr_only:
        sys.exit(f"bench_mapf.py {argv[1]}: {' '.join(lorr_only)} applies to the LoRR instances "
                 f"only; the RHCR rows are 4-connected, without --match")


def main(argv=None):
    """The script's entry point: ``argv`` as ``sys.argv`` (``argv[0]`` the script)."""
    argv = sys.argv if argv is None else list(argv)
    if argv[1:2] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    _check_argv(argv)
    tw_arg = next((int(a.split("=")[1]) for a in argv if a.startswith("--turn-weight=")), None)
    if len(argv) > 1 and argv[1] == "startkit":
        sizes = next((tuple(int(x) for x in a.split("=")[1].split(",")) for a in argv
                      if a.startswith("--sizes=")), (1000, 2500, 10000))
        if "--greedy" in argv:
            gs = next((tuple(a.split("=")[1].split(",")) for a in argv
                       if a.startswith("--guidance=")), ("none", "lanes+flow"))
            startkit_greedy(sizes=sizes, turn_weight=tw_arg, precompute="--precompute" in argv,
                            prefetch="--prefetch" in argv,
                            guidances=gs)
        else:
            startkit_like(sizes=sizes, turn_weight=tw_arg)
        return 0
    if len(argv) > 1 and argv[1] == "rhcr-one-cell":
        bw = next((float(a.split("=")[1]) for a in argv if a.startswith("--balance=")), None)
        rhcr_one_cell(steps=int(next((a.split("=")[1] for a in argv if a.startswith("--steps=")),
                                     1000)), balance_weight=bw,
                      guidance=next((a.split("=")[1] for a in argv if a.startswith("--guidance=")),
                                    "none"))
        return 0
    if len(argv) > 1 and argv[1] == "liveness":
        liveness(rotation="--rotation" in argv,
                 steps=int(next((a.split("=")[1] for a in argv if a.startswith("--steps=")),
                                1500)))
        return 0
    if len(argv) > 1 and argv[1] == "mazes":
        mazes()
        return 0
    if len(argv) > 1 and argv[1] == "bound":
        distance_bound()
        return 0
    if len(argv) > 1 and argv[1] == "validate-all":
        validate_all()
        return 0
    if len(argv) > 1 and argv[1] == "throughput":
        only = next((a.split("=")[1] for a in argv if a.startswith("--only=")), None)
        match = next((a.split("=")[1] for a in argv if a.startswith("--match=")), None)
        gs = next((tuple(a.split("=")[1].split(",")) for a in argv
                   if a.startswith("--guidance=")), ("none", "lanes+flow"))
        st = next((int(a.split("=")[1]) for a in argv if a.startswith("--steps=")), None)
        throughput(quick="--quick" in argv, only=only, rotation="--rotation" in argv,
                   steps=st,
                   match=match, guidances=gs, turn_weight=tw_arg,
                   hold_on_turn=False if "--no-hold" in argv else None,
                   congestion_period=next((int(a.split("=")[1]) for a in argv
                                           if a.startswith("--congestion-period=")), None))
    else:
        print(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run a planner and a task stream for a number of timesteps, timing every step.

:func:`make_run` builds a planner and its task stream from a floor and options (what
``sorter mapf`` and the benchmarks use); :func:`simulate` runs it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from sorter.agv.pibt import Planner, _bool_arg, _is_int
from sorter.agv.tasks import ErrandTasks, RandomTasks, SortingTasks
from sorter.errors import InputError

__all__ = ["RunResult", "simulate", "make_run", "default_starts", "working_cells", "warm_up"]


@dataclass
class RunResult:
    """What a lifelong run produced.

    Attributes
    ----------
    positions : int32 array (steps + 1, robots) or None
        Cell ids per timestep, row 0 = starts (``record=True``).
    step_ms : float array (steps,)
        Wall time of each step: goal update + planner step (lazy distance tables included).
    kernel_ms : float array (steps,)
        The compiled PIBT step alone.
    headings : int8 array (steps + 1, robots) or None
        Headings per timestep (rotation model, ``record=True``).
    tasks_completed : int
        Goals completed (errands; every induct visit and every drop on a sorting floor).
    delivered : int
        Parcels tipped into chutes (sorting tasks), else 0.
    preprocess_s : float
        Seconds to build the planner, its first distance tables and the first goals.
    completed_at, delivered_at : int64 arrays (steps,) or None
        Goals completed and parcels delivered so far, after each step (cumulative; the
        report's time series, :mod:`sorter.agv.report`).
    """

    positions: np.ndarray | None
    step_ms: np.ndarray
    tasks_completed: int
    delivered: int
    preprocess_s: float
    steps: int
    robots: int
    table_mb: float = 0.0
    bfs_count: int = 0
    kernel_ms: np.ndarray | None = None
    headings: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
    completed_at: np.ndarray | None = None
    delivered_at: np.ndarray | None = None

    @property
    def tasks_per_step(self) -> float:
        return self.tasks_completed / max(1, self.steps)

    def kpis(self) -> dict:
        ms = self.step_ms
        q = (lambda p: float(np.percentile(ms, p))) if ms.size else (lambda p: 0.0)
        return {
            "robots": int(self.robots), "steps": int(self.steps),
            "tasks_completed": int(self.tasks_completed),
            "tasks_per_step": float(self.tasks_per_step),
            "parcels_delivered": int(self.delivered),
            "ms_per_step_p50": q(50), "ms_per_step_p99": q(99),
            "ms_per_step_max": float(ms.max()) if ms.size else 0.0,
            "kernel_ms_p50": float(np.median(self.kernel_ms)) if ms.size else 0.0,
            "kernel_ms_p99": float(np.percentile(self.kernel_ms, 99)) if ms.size else 0.0,
            "preprocess_s": float(self.preprocess_s),
            "distance_table_mb": float(self.table_mb), "distance_tables_computed": int(self.bfs_count),
            **self.extra,
        }


def default_starts(floor, n_robots, rng, *, errands=None):
    """``n_robots`` distinct free cells drawn with ``rng``: travel cells first, and cells
    from which robots can work first (on a floor walled into parts: the parts holding an
    induct and a chute, or on a floor without stations the parts of two cells or more; a
    robot started in a pocket with neither would idle the whole run; with ``errands``, the
    LoRR errand cells of the run, the part holding most of them). A floor in one part
    draws as if there were no parts."""
    free = np.asarray(floor.free_cells)
    if n_robots > free.size:
        raise InputError(f"{n_robots} robots do not fit on {free.size} free cells",
                         path=floor.source, field="robots", expected=f"at most {free.size}")
    travel = floor.cells[free] == 1
    useful = _working_cells(floor, free, errands)
    pools = [free[travel & useful], free[~travel & useful], free[travel & ~useful],
             free[~travel & ~useful]]
    out, need = [], n_robots
    for pool in pools:
        if need <= pool.size:
            out.append(rng.choice(pool, need, replace=False))
            break
        out.append(pool)                            # all of it, then draw from the next
        need -= pool.size
    return np.concatenate(out).astype(np.int32)


def working_cells(floor, errands=None) -> np.ndarray:
    """The free cells where a robot can work: those :func:`default_starts` draws from first.

    On a floor in one strongly connected part, every free cell; on a floor walled into parts
    (or with one-way traps, each a part of its own), the part holding most ``errands`` when
    given, else the parts holding an induct and a chute, else (no stations) the parts of two
    cells or more. More robots than these cells: the others start where they idle the whole
    run (``sorter mapf`` refuses such a fleet).

    Parameters
    ----------
    floor : Floor
    errands : int array, optional
        LoRR errand cells of the run.

    Returns
    -------
    int32 array
        Cell ids, ascending.

    Examples
    --------
    >>> from sorter.layout import Floor
    >>> working_cells(Floor.from_ascii("ID.@..\\n.CD@..")).tolist()      # the right part idles
    [0, 1, 2, 6, 8]
    """
    free = np.asarray(floor.free_cells)
    return free[_working_cells(floor, free, errands)].astype(np.int32)


def _working_cells(floor, free, errands=None):
    """Which ``free`` cells lie in a part of the floor (strongly connected: its cells reach
    each other along the moves, so a one-way trap is a part of its own) where robots can
    work: the part holding most ``errands`` when given (a run of LoRR errands: a robot
    started in another part was refused, or idled), else one holding an induct and a chute
    cell, or without stations two cells or more."""
    from sorter.agv.tasks import _strong_parts
    moves = getattr(floor, "moves", None)
    if moves is None:
        return np.ones(free.size, np.bool_)
    part = _strong_parts(np.asarray(moves))
    lab = part[free]
    if np.unique(lab).size == 1:
        return np.ones(free.size, np.bool_)
    e = np.asarray(errands if errands is not None else [])
    if (e.ndim == 1 and e.size and np.issubdtype(e.dtype, np.integer)
            and 0 <= e.min() and e.max() < part.size):     # (bad errands: the task stream says)
        labels, counts = np.unique(part[e.astype(np.int64)], return_counts=True)
        return lab == labels[np.argmax(counts)]
    inducts, chutes = getattr(floor, "inducts", ()), getattr(floor, "chutes", ())
    if inducts and chutes:
        a = np.unique(part[np.concatenate([np.asarray(s.cells) for s in inducts])])
        b = np.unique(part[np.concatenate([np.asarray(s.cells) for s in chutes])])
        return np.isin(lab, np.intersect1d(a, b))
    labels, counts = np.unique(lab, return_counts=True)
    return np.isin(lab, labels[counts >= 2])


def make_run(floor, n_robots, starts=None, *, seed=0, tasks="auto", errands=None,
             dwell_chute=5, dwell_induct=1, guidance="lanes+flow", induct_choice="balanced",
             mix="zipf", n_destinations=None, max_table_mb=512.0, rotation=False,
             floor_sim=None, detour_horizon=12, rescue_after=None, congestion_period=None):
    """Build ``(planner, task_stream)`` for a floor.

    Parameters
    ----------
    floor : Floor
    n_robots : int
    starts : int array, optional
        Default :func:`default_starts` with the seed.
    tasks : {"auto", "errands", "sorting", "random"}
        ``"auto"``: errands if given, else sorting when the floor has inducts and chutes, else
        random free cells.
    errands : int array, optional
        LoRR errand cells (round-robin).
    dwell_chute, dwell_induct, guidance, rotation, detour_horizon, rescue_after : see
        :class:`Planner`. ``guidance`` defaults to ``"lanes+flow"`` here, the improved planner
        that ``sorter mapf`` runs by default (the planner's own default is plain PIBT, the
        benchmarks' baseline).
    congestion_period : int, optional
        See :class:`Planner` (default: on with ``rotation`` and lanes).
    induct_choice, mix, n_destinations : see :class:`SortingTasks`
    floor_sim : FloorSimOptions, optional
        Sorting tasks only: route parcels through the chute engine (``sorter.Sorter``) with
        container changes, re-routing and robot faults (:class:`sorter.agv.floor_sim.FloorSim`)
        instead of the plain destination -> chute table.

    Returns
    -------
    (Planner, task stream)
    """
    if (isinstance(n_robots, (bool, np.bool_)) or not isinstance(n_robots, (int, np.integer))
            or n_robots < 1):
        raise InputError(f"n_robots={n_robots!r}", field="n_robots", expected="an integer >= 1")
    if not _is_int(seed) or seed < 0:        # (default_rng's own errors name no field)
        raise InputError(f"seed={seed!r}", field="seed", expected="an integer >= 0")
    if not all(hasattr(floor, a) for a in ("moves", "free_cells", "inducts", "chutes")):
        raise InputError(f"floor is {type(floor).__name__}", field="floor",
                         expected="a sorter.layout.Floor (sorter.layout.load_floor(path) loads one)")
    if floor_sim is not None:
        from sorter.agv.floor_sim import FloorSimOptions
        if not isinstance(floor_sim, FloorSimOptions):
            raise InputError(f"floor_sim is a {type(floor_sim).__name__}", field="floor_sim",
                             expected="a FloorSimOptions (FloorSimOptions(fault_rate=..., ...)) "
                                      "or None")
    rng = np.random.default_rng(seed)
    if tasks == "auto":
        if errands is not None:
            tasks = "errands"
        elif floor.inducts and floor.chutes:
            tasks = "sorting"
        else:
            tasks = "random"
    if starts is None:
        starts = default_starts(floor, n_robots, rng,
                                errands=errands if tasks == "errands" else None)
    if tasks not in ("errands", "sorting", "random"):
        raise InputError(f"tasks {tasks!r}", field="tasks",
                         expected="'auto', 'errands', 'sorting' or 'random'")
    planner = Planner(floor, n_robots, starts, seed=seed, dwell_chute=dwell_chute,
                      dwell_induct=dwell_induct, station_goals=(tasks == "sorting"),
                      guidance=guidance, max_table_mb=max_table_mb, rotation=rotation,
                      detour_horizon=detour_horizon, rescue_after=rescue_after,
                      congestion_period=congestion_period)
    if tasks == "errands":
        if errands is None:
            raise InputError("errand tasks need a task file", field="tasks", expected="--tasks FILE")
        e = np.asarray(errands)
        if e.ndim == 1 and e.size and np.issubdtype(e.dtype, np.integer):
            n_cells = floor.height * floor.width     # before ErrandTasks' int32 copy
            off = (e < 0) | (e >= n_cells)
            if off.any():
                raise InputError(f"errand cell {int(e[off][0])} is outside the grid",
                                 field="errands",
                                 expected=f"cell ids in [0, {n_cells}) (row * width + col)")
        stream = ErrandTasks(errands, n_robots)
        planner._cells(stream.errands, "errands")   # (was: refused at the first step, as goals)
    elif tasks == "sorting" and floor_sim is not None:
        from sorter.agv.floor_sim import FloorSim
        stream = FloorSim(floor, n_robots, rng, floor_sim, mix=mix, n_destinations=n_destinations,
                          induct_choice=induct_choice, seed=seed)
    elif tasks == "sorting":
        stream = SortingTasks(floor, n_robots, rng, mix=mix, n_destinations=n_destinations,
                              induct_choice=induct_choice)
    else:
        stream = RandomTasks(floor.free_cells, n_robots, rng,
                             moves=getattr(floor, "moves", None))
    return planner, stream


def warm_up() -> float:
    """Compile the planner's Numba kernels (or load them from Numba's on-disk cache) before a
    timed run; return the seconds it took.

    Numba compiles a kernel at its first call: ~15-20 s on this machine the first time after an
    install, ~0.2-0.3 s to load the cached code later. Without a warm-up that time lands in the
    first timed step (a "max ms per step" of 15 s). This runs a few steps of six robots on a
    small generated sorting floor, so the kernels every run calls (distance tables, the PIBT step,
    the stall watch) are ready; rarer ones (rescues, detours, the LoRR 2024 scheduler) still
    compile at their first use.
    """
    from sorter.layout.generate import sortation_floor

    t0 = time.perf_counter()
    floor = sortation_floor(9, 12, 2, 2, seed=0)
    planner, stream = make_run(floor, 6, seed=0)
    simulate(planner, stream, 5, record=False)
    from sorter.agv.congestion import count_waits, weighted_costs     # (rotation runs)
    count_waits(np.zeros(1, np.int32), np.zeros(1, np.int32), np.ones((1, 5), np.uint16),
                np.zeros(1, np.int64))
    weighted_costs(np.ones((1, 4), np.uint8), np.zeros(1), 1.0, np.ones((1, 4), np.uint8))
    return time.perf_counter() - t0


def simulate(planner, stream, steps, *, record=True, progress=None, build_s=0.0) -> RunResult:
    """Run ``steps`` timesteps of a new planner and task stream; time each one (goal update +
    planner step). One run per planner: for more steps, run again from :func:`make_run`.

    The first call of ``stream.start`` and the distance tables of the first goals count as
    preprocessing (plus ``build_s``, the caller's time to build the planner), timed apart from
    the steps. A stream with a ``pre_step(planner, goals)`` method (robot faults,
    :class:`~sorter.agv.floor_sim.FloorSim`) has it called before every planner step (timed with
    the step), and one with ``kpis(steps)`` adds its KPIs to the result's ``extra``.
    """
    if not _is_int(steps) or steps < 0:      # (1.5 ran 1 step, "3" ran 3)
        raise InputError(f"steps={steps!r}", field="steps", expected="an integer >= 0")
    steps = int(steps)
    record = _bool_arg("record", record)      # ("no" recorded)
    if progress is not None and not callable(progress):   # (5 failed at the first step)
        raise InputError(f"progress={progress!r} is not callable", field="progress",
                         expected="None or a function of the step number, e.g. bar.update")
    if not (callable(getattr(planner, "step", None)) and hasattr(planner, "step_no")):
        raise InputError(f"planner is a {type(planner).__name__}", field="planner",  # (was:
                         expected="a sorter.agv.Planner (make_run builds one)")  # AttributeError)
    if not all(callable(getattr(stream, a, None)) for a in ("start", "update")):
        raise InputError(f"stream is a {type(stream).__name__}", field="stream",
                         expected="a task stream with start(planner) and update(planner) "
                                  "(RandomTasks, SortingTasks, ErrandTasks; make_run builds one)")
    if planner.step_no:     # (a second call started the stream again and counted its tasks
        raise InputError(   # from the first: tasks_per_step 17.0 over 0 steps)
            f"the planner has run {planner.step_no} steps already", field="planner",
            expected="a new planner and task stream (make_run) for each simulate() run")
    n = planner.n_robots
    pos = np.empty((steps + 1, n), np.int32) if record else None
    heads = np.empty((steps + 1, n), np.int8) if record and planner.rotation else None
    if record:
        pos[0] = planner.positions
    if heads is not None:
        heads[0] = planner.headings
    t0 = time.perf_counter()
    goals = stream.start(planner)
    # distance tables of the first goals: part of preprocessing
    planner.prepare(goals)
    pre = time.perf_counter() - t0 + build_s
    ms = np.empty(steps)
    kms = np.empty(steps)
    done_at = np.empty(steps, np.int64)
    drop_at = np.empty(steps, np.int64)
    pre_step = getattr(stream, "pre_step", None)
    for t in range(steps):
        t1 = time.perf_counter()
        if pre_step is not None:
            pre_step(planner, goals)
        p = planner.step(goals)
        goals = stream.update(planner)
        ms[t] = (time.perf_counter() - t1) * 1e3
        kms[t] = planner.kernel_ms
        done_at[t] = stream.completed
        drop_at[t] = stream.delivered
        if record:
            pos[t + 1] = p
        if heads is not None:
            heads[t + 1] = planner._heading
        if progress is not None:
            progress(t)
    extra = stream.kpis(steps) if hasattr(stream, "kpis") else {}
    if planner.tables.prefetched:
        extra = {**extra, "distance_tables_prefetched": int(planner.tables.prefetched)}
    cong = getattr(planner, "_cong", None)
    if cong is not None:
        extra = {**extra, "congestion_period": cong.period, "congestion_versions": cong.versions,
                 "congestion_tables_refreshed": int(cong.refreshed),
                 "congestion_tables_kept": int(cong.kept),
                 "congestion_wait_s": round(cong.waited_s, 3)}
    extra = {**extra, "rescues": int(planner.rescues),
             "rescue_failures": int(planner.rescue_failures),
             "rescue_after": int(planner.rescue_after)}
    return RunResult(positions=pos, step_ms=ms, tasks_completed=int(stream.completed),
                     delivered=int(stream.delivered), preprocess_s=pre, steps=steps, robots=n,
                     table_mb=planner.tables.nbytes / 2**20, bfs_count=planner.tables.bfs_count,
                     kernel_ms=kms, headings=heads, extra=extra, completed_at=done_at,
                     delivered_at=drop_at)

"""Simulate a sorting shift on one loop sorter, or a hub of loops fed from one arrival stream.

Data flows one way: scenario -> pre-drawn arrays (:mod:`sorter.sim.arrivals`) -> the
compiled tick loop (``sorter._loop.LoopKernel``, which calls the real chute engine of
:class:`sorter.Sorter` at C level for every scan) -> arrays -> KPIs (:mod:`sorter.sim.kpis`).
Python runs once per wave boundary (plan switches through :meth:`Sorter.switch_plan`) and
once per progress step, never per parcel.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace

import numpy as np

from sorter._loop import SERIES, LoopKernel
from sorter.constants import KINDS, REASONS
from sorter.engine import Sorter
from sorter.errors import InputError, check_number
from sorter.sim.arrivals import Parcels, draw_floor_events, draw_parcels
from sorter.sim.scenario import SEED_MAX, LoopSpec, Scenario, load_scenario

__all__ = ["LoopRun", "ShiftResult", "simulate", "prepare_loop", "interval_bounds",
           "tick_times", "SERIES"]


def interval_bounds(n_int: int, interval_s: float, dt: float, n_ticks: int) -> np.ndarray:
    """First tick of each interval of the time series (``n_int + 1`` values, the last
    ``n_ticks``): tick ``t`` (at ``t * dt`` s) is in interval ``i`` when
    ``i * interval_s <= t * dt < (i + 1) * interval_s``, as the interval's ``start_s`` and
    the times of ``parcels.parquet`` (:func:`tick_times`) say (rounding to the nearest tick
    would put a parcel of the last tick before a boundary in the interval after it).

    Parameters
    ----------
    n_int : int
        Intervals in the shift.
    interval_s : float
        Seconds per interval.
    dt : float
        Seconds per tick.
    n_ticks : int
        Ticks in the shift.

    Returns
    -------
    ndarray of int64

    Examples
    --------
    >>> interval_bounds(2, 60.0, 0.25, 500).tolist()
    [0, 240, 500]
    >>> interval_bounds(2, 60.0, 0.23988, 500).tolist()     # 60 / 0.23988 = 250.1
    [0, 251, 500]
    """
    b = np.ceil(np.arange(n_int + 1) * interval_s / dt - 1e-6)
    b = np.minimum(np.maximum(b, 0), n_ticks).astype(np.int64)
    b[-1] = n_ticks
    return b


def tick_times(ticks, dt: float) -> np.ndarray:
    """Seconds from the shift's start of simulation ticks (NaN for -1, not happened): the
    times of ``parcels.parquet``.

    ``t * dt`` in floating point can fall a hair short of the instant the tick is at (tick
    18876 of a 300 m loop of 429 carriers at 2.2 m/s gives 5999.999999999999 for 6000 s),
    while the time series (:func:`interval_bounds`) and a wave's plan switch count that tick
    at 6000 s: a time within float rounding of a whole microsecond is written as that
    microsecond, so a count over the written times in ``[start_s, next start_s)`` equals
    ``timeseries.csv``.

    Examples
    --------
    >>> dt = 300 / 429 / 2.2
    >>> 18876 * dt, tick_times(np.array([18876, -1]), dt).tolist()
    (5999.999999999999, [6000.0, nan])
    """
    ticks = np.asarray(ticks)
    t = ticks * dt
    r = np.round(t, 6)
    # a few units in the last place: rounding noise, not a time that is really that close
    t = np.where(np.abs(t - r) <= 8 * np.finfo(np.float64).eps * np.maximum(np.abs(t), 1.0), r, t)
    return np.where(ticks >= 0, t, np.nan)


@dataclass
class LoopRun:
    """What one loop did during the shift (arrays indexed by the loop's own parcel order)."""

    spec: LoopSpec
    parcel_ids: np.ndarray          # global parcel ids of this loop's parcels
    chute_ids: list                 # chute labels, engine order
    chute_kind: np.ndarray          # KINDS index per chute
    chute_capacity: np.ndarray
    dt: float                       # seconds per tick
    n_ticks: int
    raw: dict                       # LoopKernel.results()
    engine: Sorter
    plan_switches: list = field(default_factory=list)   # (time s, plan name)

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class ShiftResult:
    """The outcome of :func:`simulate`: the parcels, each loop's run, timing."""

    scenario: Scenario
    seed: int
    parcels: Parcels
    loops: list
    interval_s: float
    wall_s: float = 0.0

    @property
    def n_intervals(self) -> int:
        return self.loops[0].raw["series"].shape[0]

    def parcel_columns(self) -> dict:
        """One row per parcel (global id order): the columns of ``parcels.parquet``.

        ``induct_t``/``discharge_t`` are NaN when the parcel was not inducted/discharged;
        ``status`` is ``sorted``, ``rejected``, ``on_loop`` or ``queued`` (still waiting at
        its induct at the shift's end); ``scan`` is ``read``, ``no_read`` or ``not_sortable``
        (or empty when never scanned).
        """
        p = self.parcels
        n = len(p)
        induct_t = np.full(n, np.nan)
        discharge_t = np.full(n, np.nan)
        chute = np.full(n, "", dtype=object)
        reason = np.full(n, "", dtype=object)
        recirc = np.zeros(n, dtype=np.int32)
        induct = np.full(n, "", dtype=object)
        loop = np.full(n, "", dtype=object)
        status = np.full(n, "queued", dtype=object)
        scanned = np.zeros(n, dtype=bool)
        for lr in self.loops:
            ids = lr.parcel_ids
            r = lr.raw
            it = r["induct_tick"]
            dtk = r["discharge_tick"]
            induct_t[ids] = tick_times(it, lr.dt)
            discharge_t[ids] = tick_times(dtk, lr.dt)
            labels = np.array([str(c) for c in lr.chute_ids] + [""], dtype=object)
            chute[ids] = labels[r["chute"]]            # -1 -> ""
            reasons = np.array(list(REASONS) + [""], dtype=object)
            reason[ids] = reasons[r["reason"]]
            recirc[ids] = r["recirculations"]
            ind_labels = np.array([i.id for i in lr.spec.layout.inducts], dtype=object)
            induct[ids] = ind_labels[p.induct[ids]]
            loop[ids] = lr.name
            st = np.full(len(ids), "queued", dtype=object)
            st[it >= 0] = "on_loop"
            done = dtk >= 0
            ok = (r["reason"] == 0) | (r["reason"] == 1)
            st[done & ok] = "sorted"
            st[done & ~ok] = "rejected"
            status[ids] = st
            scanned[ids] = r["reason"] >= 0
        codes = np.array(list(p.codes) + ["?unknown"], dtype=object)
        dest = codes[np.where(p.dest >= 0, p.dest, len(p.codes))]
        scan = np.where(~p.sortable, "not_sortable", np.where(p.no_read, "no_read", "read"))
        scan = np.where(scanned, scan, "").astype(object)
        return {
            "id": np.arange(n, dtype=np.int64), "loop": loop, "destination": dest,
            "induct": induct, "wave": p.wave.astype(np.int16), "arrival_t": p.arrival_s,
            "induct_t": induct_t, "scan": scan, "chute": chute, "reason": reason,
            "discharge_t": discharge_t, "recirculations": recirc, "status": status,
        }


def prepare_loop(scenario: Scenario, li: int, parcels: Parcels, rng: np.random.Generator):
    """Build the engine and the kernel of loop ``li`` (draws its floor events from ``rng``).

    Returns ``(sorter, kernel, parcel_ids, switches)`` where ``switches`` lists
    ``(tick, SortPlan)`` plan switches at wave starts.
    """
    spec = scenario.loops[li]
    layout = spec.layout
    base = scenario.plan_for(spec, spec.plan)
    sorter = Sorter(base, layout.chutes)
    # intern every wave plan's destinations once (ids never change), then start on the base plan
    wave_plans = [(w.start_s, scenario.plan_for(spec, w.plans[spec.name]))
                  for w in scenario.waves if spec.name in w.plans]
    for _, plan in wave_plans:
        sorter.switch_plan(plan)
    sorter.switch_plan(base)
    dt = layout.tick_s
    n_ticks = int(round(scenario.shift_s / dt))
    switches = []
    for start_s, plan in wave_plans:
        # in force from the wave's start: its first tick at or after it (the nearest tick
        # could be before the start, deciding a scan of the last wave by the next wave's plan)
        tick = int(np.ceil(start_s / dt - 1e-6))
        if tick <= 0:
            sorter.switch_plan(plan)
        elif tick < n_ticks:
            switches.append((tick, plan))

    ids = np.flatnonzero(parcels.loop == li)
    dest_of_code = sorter.destination_ids(parcels.codes)
    d = parcels.dest[ids]
    dest = np.where(d >= 0, dest_of_code[np.maximum(d, 0)], -1).astype(np.int32)
    dest[parcels.no_read[ids]] = -2
    sortable = parcels.sortable[ids].astype(np.int8)
    arrival = parcels.arrival_s[ids]
    induct = parcels.induct[ids].astype(np.int64)
    n_ind = len(layout.inducts)
    order = np.lexsort((np.arange(len(ids)), arrival, induct))
    ptr = np.zeros(n_ind + 1, dtype=np.int64)
    np.cumsum(np.bincount(induct, minlength=n_ind), out=ptr[1:])
    gaps = np.array([3600.0 / i.max_rate_per_hour for i in layout.inducts])
    floor = draw_floor_events(scenario, li, len(ids), rng)
    interval_s = scenario.interval_minutes * 60.0
    n_int = max(1, int(np.ceil(scenario.shift_s / interval_s - 1e-9)))
    bounds = interval_bounds(n_int, interval_s, dt, n_ticks)
    b_start = np.minimum(np.ceil(floor.block_start_s / dt), n_ticks + 1).astype(np.int64)
    b_end = np.minimum(np.maximum(np.ceil(floor.block_end_s / dt), b_start + 1),
                       n_ticks + 2).astype(np.int64)
    kernel = LoopKernel(
        sorter, layout.n_carriers, dt, n_ticks, layout.slot(layout.scanner_m),
        layout.slot([i.position_m for i in layout.inducts]).astype(np.int32), gaps, ptr,
        order.astype(np.int64), layout.slot(layout.chute_positions()).astype(np.int32),
        arrival, dest, sortable, floor.reaction_s, floor.change_s,
        floor.block_chute.astype(np.int32), b_start, b_end, bounds)
    return sorter, kernel, ids, switches


def simulate(scenario, *, seed=None, progress=False, step_minutes=15.0) -> ShiftResult:
    """Simulate the scenario's shift.

    Parameters
    ----------
    scenario : Scenario or path
        A :class:`Scenario` or the path of a scenario TOML.
    seed : int, optional
        Overrides the scenario's seed. All randomness comes from
        ``numpy.random.default_rng(seed)``: the same seed gives the same result, bit for bit.
    progress : bool
        Show a tqdm progress bar on stderr (appears only if the run takes over a second).
    step_minutes : float
        Simulated minutes between returns to Python (progress updates).

    Returns
    -------
    ShiftResult

    Raises
    ------
    ValueError
        (:class:`~sorter.errors.InputError`) for a bad scenario (file, or a
        :class:`Scenario` built or changed in code: it is validated again here) or seed.
    TypeError
        If ``scenario`` is neither a :class:`Scenario` nor a path.

    Examples
    --------
    >>> from sorter.sim import simulate, default_scenario_path
    >>> res = simulate(default_scenario_path(), seed=3)
    >>> from sorter.sim.kpis import compute_kpis
    >>> k = compute_kpis(res)
    >>> k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    True
    """
    if not isinstance(scenario, Scenario):
        if not isinstance(scenario, (str, os.PathLike)):
            raise TypeError(f"scenario is a {type(scenario).__name__}: expected a "
                            "sorter.sim.Scenario or the path of a scenario TOML"
                            + ("; a document in a dict: simulate(parse_scenario(doc))"
                               if isinstance(scenario, dict) else ""))
        scenario = load_scenario(scenario)
    else:
        # checked again (on a copy): a setting may have been changed since it was built. A
        # shift shortened in code drops the waves that start after it, as `sorter sweep` does.
        try:
            kept = [w for w in scenario.waves if not w.start_s >= scenario.shift_s]
        except (TypeError, AttributeError):     # refused with its field by validate
            kept = []
        scenario = replace(scenario, waves=kept or scenario.waves)
    step_minutes = check_number(step_minutes, field="step_minutes", lo=0, lo_open=True,
                                expected="simulated minutes between progress updates, > 0")
    if seed is None:
        seed = scenario.seed
    if (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
            or seed > SEED_MAX):                # the outputs keep the seed as an int64
        raise InputError(f"bad seed {seed!r}", field="seed",
                         expected="an integer from 0 to 2**63 - 1")
    t0 = time.perf_counter()
    rng = np.random.default_rng(int(seed))
    parcels = draw_parcels(scenario, rng)
    prepared = [prepare_loop(scenario, li, parcels, rng) for li in range(len(scenario.loops))]
    total = sum(k.n_ticks for _, k, _, _ in prepared)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="tick", unit_scale=True, delay=1.0, leave=False,
                   desc=f"simulating {scenario.shift_hours:g} h", dynamic_ncols=True)
    runs = []
    try:
        for li, (sorter, kernel, ids, switches) in enumerate(prepared):
            spec = scenario.loops[li]
            dt = kernel.dt
            n_ticks = kernel.n_ticks
            step = max(1, int(round(step_minutes * 60.0 / dt)))
            stops = sorted(set(list(range(step, kernel.n_ticks, step)) + [s for s, _ in switches]
                               + [kernel.n_ticks]))
            pending = list(switches)
            applied = [(0.0, sorter.plan_name)]
            for stop in stops:
                while pending and pending[0][0] <= kernel.t:
                    tick, plan = pending.pop(0)
                    sorter.switch_plan(plan)          # between waves: atomic, fill and states carry over
                    applied.append((tick * dt, plan.name))
                before = kernel.t
                kernel.run(stop)
                if bar is not None:
                    bar.update(kernel.t - before)
            table = spec.layout.chutes
            # the kernel runs no further: take its arrays themselves, not copies, and let it
            # go (a copy doubled the peak memory of long shifts of short intervals)
            raw = kernel.results(copy=False)
            prepared[li] = kernel = None
            runs.append(LoopRun(
                spec=spec, parcel_ids=ids, chute_ids=list(sorter.chute_ids),
                chute_kind=np.array([KINDS.index(c.kind) for c in table], dtype=np.int8),
                chute_capacity=np.array([c.capacity for c in table], dtype=np.int64),
                dt=dt, n_ticks=n_ticks, raw=raw, engine=sorter,
                plan_switches=applied))
    finally:
        if bar is not None:
            bar.close()
    return ShiftResult(scenario=scenario, seed=int(seed), parcels=parcels, loops=runs,
                       interval_s=scenario.interval_minutes * 60.0,
                       wall_s=time.perf_counter() - t0)

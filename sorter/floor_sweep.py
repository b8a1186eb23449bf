"""Robot-floor capacity sweeps: how many robots a floor needs, and what it sorts with them.

The planner's question for a robot sorting floor is a sweep: "what does this floor sort with
100, 200 ... 600 robots, with and without faults?". :func:`floor_sweep` runs the sorting floor
of ``sorter mapf FLOOR --scenario sorting`` (lifelong PIBT, the chute engine with container
changes and re-routing, faults) for every combination of the varied settings x seeds, on the
same backends as :func:`sorter.sweep.capacity_sweep` (serial, a local process pool, or the
user's Dask cluster), and returns a :class:`sorter.sweep.SweepResult`: one row of KPIs per run,
mean and 95% confidence interval per point, Parquet / CSV writers and a plot.

Settings (:data:`FLOOR_SETTINGS`), as ``sorter mapf`` names them: ``robots``, ``steps``,
``dwell_chute``, ``dwell_induct``, ``mix``, ``destinations``, ``rotation``, ``guidance``,
``induct_choice``, ``detour_horizon``, and the chute engine's ``chute_capacity``,
``container_change_steps``, ``fault_rate``, ``repair_steps``, ``repair_dist``,
``seconds_per_step``, ``strategy``, ``max_recirculation``, ``chutes_per_destination``,
``arrival_rate`` (parcels per hour offered; 0, the default, = unlimited supply),
``no_read_rate``. Every point is checked before the first run (an unknown setting names the
nearest valid ones; a bad value names the point). Seeds: ``N`` means 0 .. N-1, the same at
every point.

Row KPIs: parcels sorted per hour (``net_sorted_per_hour``: into destination and overflow
chutes; ``sorted_per_hour`` counts rejects too), per robot-hour (``net_sorted_per_robot_hour``),
``reject_pct``, ``induct_to_drop_p50`` / ``_p95`` (steps), the robot-step shares
``util_<state>`` (faulted, dwelling, carrying, moving_empty, waiting, starved), ``tasks_per_step``,
``chute_full_events``, ``reroutes``, ``robot_faults``, ``rejected_<reason>``, and with an
arrival rate ``offered_per_hour``, ``parcels_waiting_at_inducts`` and ``induct_wait_p95`` (p95
of the steps a parcel waits at its induct for a robot). No run times: the same point and seed
give the same row on every backend.
"""
from __future__ import annotations

import difflib
import itertools

import numpy as np
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from sorter.errors import InputError

__all__ = ["floor_sweep", "FLOOR_SETTINGS", "FLOOR_DEFAULTS"]

#: Sweepable settings -> expected form (the ``sorter mapf`` option of the same name; no
#: option for ``max_recirculation`` and ``chutes_per_destination``: FloorSimOptions fields).
FLOOR_SETTINGS = {
    "robots": "an integer >= 1 (at most the floor's free cells that reach the inducts and "
              "chutes)",
    "steps": "an integer >= 1",
    "dwell_chute": "an integer >= 0 (steps at a drop cell)",
    "dwell_induct": "an integer >= 0 (steps at an induct)",
    "mix": "zipf | 721 | uniform",
    "destinations": "an integer >= 1, at most the floor's chutes",
    "rotation": "true | false",
    "guidance": "none | flow | lanes | lanes+flow",
    "induct_choice": "nearest | balanced",
    "detour_horizon": "an integer >= 0",
    "chute_capacity": "an integer >= 0 (0 = unlimited)",
    "container_change_steps": "an integer >= 0",
    "fault_rate": "a probability in [0, 1]",
    "repair_steps": "an integer >= 1",
    "repair_dist": "fixed | exp | uniform",
    "seconds_per_step": "a finite number > 0",
    "strategy": "least_loaded | round_robin | fill_first",
    "max_recirculation": "an integer >= 0",
    "chutes_per_destination": "a number >= 1",
    "arrival_rate": "parcels per hour offered, a finite number >= 0 (0 = unlimited supply), "
                    "or waves [[start_s, rate], ...]",
    "no_read_rate": "a probability in [0, 1]",
}
#: Defaults of a point (those of ``sorter mapf FLOOR --scenario sorting``; steps 2,000).
FLOOR_DEFAULTS = {"robots": 100, "steps": 2000, "dwell_chute": 5, "dwell_induct": 1,
                  "mix": "zipf", "destinations": None, "rotation": False,
                  "guidance": "lanes+flow", "induct_choice": "balanced", "detour_horizon": 12}
_ENGINE_KEYS = ("chute_capacity", "container_change_steps", "fault_rate", "repair_steps",
                "repair_dist", "seconds_per_step", "strategy", "max_recirculation",
                "chutes_per_destination", "arrival_rate", "no_read_rate")
_CHOICES = {"mix": ("zipf", "721", "uniform"), "guidance": ("none", "flow", "lanes", "lanes+flow"),
            "induct_choice": ("nearest", "balanced")}
_INT_MIN = {"robots": 1, "steps": 1, "dwell_chute": 0, "dwell_induct": 0, "destinations": 1,
            "detour_horizon": 0}


@dataclass
class FloorPoint:
    """One point of a floor sweep: the floor and its full settings (picklable)."""

    floor: object
    settings: dict

    def options(self):
        from sorter.agv.floor_sim import FloorSimOptions
        kw = {k: self.settings[k] for k in _ENGINE_KEYS if k in self.settings}
        return FloorSimOptions(**kw).validate()


def _check_key(key, path=None) -> str:
    if not isinstance(key, str) or key not in FLOOR_SETTINGS:
        near = difflib.get_close_matches(str(key), list(FLOOR_SETTINGS), n=4, cutoff=0.5)
        raise InputError(f"unknown floor setting {key!r}", path=path, field=str(key),
                         expected="one of " + ", ".join(near or FLOOR_SETTINGS))
    return key


def _check_value(floor, key, v):
    """``v`` as the setting ``key`` takes it, or InputError."""
    if isinstance(v, np.generic):      # numpy scalars (a value of np.arange ...) as Python's
        v = v.item()
    bad = InputError(f"bad value {v!r}", field=key, expected=FLOOR_SETTINGS[key])
    if key == "rotation":
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise bad
    if key in _CHOICES:
        v = str(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v  # 721
        if v not in _CHOICES[key]:
            raise bad
        return v
    if key in _INT_MIN:
        if key == "destinations" and v is None:
            return None
        if (isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))
                or v < _INT_MIN[key]):
            raise bad
        v = int(v)                     # numpy's too (np.arange(100, 501, 100))
        if key == "robots" and v > floor.free_cells.size:
            raise InputError(f"{v} robots do not fit on {floor.free_cells.size} free cells",
                             field=key, expected=f"at most {floor.free_cells.size}")
        if key == "robots":            # robots drawn beyond these idle the whole run
            from sorter.agv.lifelong import working_cells
            room = working_cells(floor).size
            if v > room:
                raise InputError(f"{v} robots: only {room} of the floor's "
                                 f"{floor.free_cells.size} free cells can reach the inducts "
                                 "and chutes", field=key, expected=f"at most {room}")
        if key == "destinations" and v > len(floor.chutes):
            raise InputError(f"{v} destinations for {len(floor.chutes)} chutes", field=key,
                             expected=f"1..{len(floor.chutes)}")
        return v
    if key == "arrival_rate" and (isinstance(v, str) or (
            isinstance(v, (list, tuple)) and any(isinstance(x, str) for x in v))):
        return _waves_text(v)      # RATE,RATE@START_S,... as `sorter mapf --arrival-rate`
    return v            # chute-engine settings: FloorSimOptions.validate checks them


def _waves_text(v):
    """Waves written as ``sorter mapf --arrival-rate`` takes them (``3000,7000@1800``; from
    ``--set`` a list such as ``[3000, "7000@1800"]``) as ``[[start_s, rate], ...]``."""
    items = v.split(",") if isinstance(v, str) else list(v)
    out = []
    for i, x in enumerate(items):
        rate, at, start = str(x).strip().partition("@")
        try:
            out.append([float(start) if at else (0.0 if i == 0 else None), float(rate)])
        except ValueError:
            out.append(None)
        if out[-1] is None or out[-1][0] is None:
            raise InputError(f"arrival wave {x!r}", field="arrival_rate",
                             expected="RATE,RATE@START_S,... e.g. 3000,7000@1800 (the first "
                                      "from 0 s), or [[start_s, rate], ...]")
    return out


def _values(key, v) -> list:
    """A setting's varied values as a list: lists, tuples, ranges, numpy arrays; a single
    value (a numpy 0-d array too: was a bare TypeError) as one point. A set is refused: its
    order (of strings) changes from process to process, and with it the points' numbers."""
    if isinstance(v, (set, frozenset)):
        raise InputError(f"a {type(v).__name__} of values for {key!r} (no order: the points "
                         "would be numbered differently from run to run)", field=key,
                         expected="a list, e.g. " + repr(sorted(v, key=str)))
    if (isinstance(v, (str, bytes)) or not hasattr(v, "__iter__")
            or (isinstance(v, np.ndarray) and v.ndim == 0)):
        return [v.item() if isinstance(v, np.ndarray) else v]
    return list(v)                     # lists, tuples, ranges, numpy arrays


def _point(floor, settings, where=""):
    try:
        s = {k: _check_value(floor, k, v) for k, v in settings.items()}
        p = FloorPoint(floor, s)
        p.options()
    except InputError as exc:
        if not where:
            raise
        err = InputError(f"{exc} [{where}]")
        err.path, err.line, err.field, err.expected = exc.path, exc.line, exc.field, exc.expected
        raise err from None
    return p


def _flat(kpis: dict, robots: int) -> dict:
    keys = ("net_sorted_per_hour", "sorted_per_hour", "sorted_per_robot_hour", "tasks_per_step",
            "parcels_sorted", "parcels_rejected", "sorted_to_overflow", "induct_to_drop_p50",
            "induct_to_drop_p95", "chute_full_events", "container_changes", "reroutes",
            "robot_faults", "rescues", "offered_per_hour", "parcels_waiting_at_inducts",
            "induct_wait_p95", "parcels_offered", "parcels_picked", "parcels_carried")           # no times: a row is the same on every backend
    row = {k: kpis[k] for k in keys if kpis.get(k) is not None}
    row["net_sorted_per_robot_hour"] = kpis["net_sorted_per_hour"] / max(1, robots)
    row["reject_pct"] = 100.0 * kpis["parcels_rejected"] / max(1, kpis["parcels_sorted"])
    for state, share in kpis["robot_utilisation"].items():
        row[f"util_{state}"] = share
    for i, w in enumerate(kpis.get("induct_wait_p95_by_wave") or []):
        # waves of arrivals: each wave's wait; None (null) for a wave no parcel arrived in
        # during the run (a wave starting after the last step): the column is there all the
        # same, as docs/sweep.md names it (was: left out, and with it the column)
        row[f"induct_wait_p95_wave{i}"] = w
    from sorter.constants import REJECT_REASONS
    by_reason = kpis.get("rejects_by_reason", {})
    for reason in REJECT_REASONS:                     # every row: a missing one means 0
        row[f"rejected_{reason}"] = int(by_reason.get(reason, 0))
    return row


def run_floor_point(point: FloorPoint, seed: int) -> dict:
    """One run of a floor point: the flat KPI row (see the module docstring)."""
    from sorter.agv.lifelong import make_run, simulate
    s = point.settings
    planner, stream = make_run(
        point.floor, s["robots"], seed=seed, tasks="sorting", dwell_chute=s["dwell_chute"],
        dwell_induct=s["dwell_induct"], guidance=s["guidance"],
        induct_choice=s["induct_choice"], mix=s["mix"], n_destinations=s["destinations"],
        rotation=s["rotation"], floor_sim=point.options(), detour_horizon=s["detour_horizon"])
    res = simulate(planner, stream, s["steps"], record=False)
    return _flat({**res.kpis(), **res.extra}, s["robots"])


def floor_sweep(floor, vary, *, seeds=3, overrides=None, client=None, n_workers=None,
                progress=False):
    """Run a robot sorting floor for every combination of ``vary`` x ``seeds``.

    Parameters
    ----------
    floor : path or Floor
        A floor with inducts and chutes (any format ``sorter mapf`` reads).
    vary : dict
        Setting -> list of values (:data:`FLOOR_SETTINGS`); the points are the Cartesian
        product, in the order given (the last setting varies fastest).
    seeds : int or list of int
        ``N``: seeds 0 .. N-1; or a list. The same seeds at every point.
    overrides : dict, optional
        Setting -> one value for every point (e.g. ``{"steps": 3000}``).
    client : dask.distributed.Client, optional
        Run on this Dask cluster (the library never starts one itself).
    n_workers : int, optional
        Local processes when ``client`` is None (default ``os.cpu_count()``; 1 = serial).
    progress : bool
        A tqdm progress bar on stderr.

    Returns
    -------
    sorter.sweep.SweepResult
        With ``kind="floor"``: its table shows parcels sorted per hour and per robot-hour
        with 95% CIs, p95 induct-to-drop steps, waiting and reject shares.

    Raises
    ------
    ValueError
        :class:`~sorter.errors.InputError` before any run: a floor without inducts or
        chutes, an unknown setting (naming the nearest valid ones), a bad value (naming the
        point), bad seeds or workers.

    Examples
    --------
    >>> from sorter.resources import seed_path
    >>> res = floor_sweep(seed_path("floors/small_12x20.txt"), {"robots": [5, 10]}, seeds=1,
    ...                   overrides={"steps": 50}, n_workers=1)
    >>> [r["robots"] for r in res.rows], res.kind
    ([5, 10], 'floor')
    """
    from sorter.sweep import _fmt, _n_seeds, _seed_list, check_backend, check_grid_size, run_points
    if not hasattr(floor, "free_cells"):
        from sorter.layout import load_floor
        floor = load_floor(floor)
    if not floor.inducts or not floor.chutes:
        raise InputError(f"floor {floor.name!r} has {len(floor.inducts)} inducts and "
                         f"{len(floor.chutes)} chutes", path=floor.source, field="floor",
                         expected="a sorting floor: at least one induct and one chute")
    if not isinstance(vary, Mapping) or not vary:
        raise InputError("nothing to vary", field="vary",
                         expected="a setting and its values, e.g. {'robots': [100, 200]}")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise InputError("overrides must map settings to values", field="overrides",
                         expected="{'steps': 3000}")
    overrides = dict(overrides or {})
    src = getattr(floor, "source", None)
    for key in overrides:
        _check_key(key, src)
    vary = {_check_key(k, src): _values(k, v) for k, v in vary.items()}
    for key, values in vary.items():
        if key in overrides:
            raise InputError(f"{key!r} is both varied and fixed", field=key,
                             expected="a setting either varied (--vary) or fixed (--set), not both")
        if not values:
            raise InputError(f"no values for {key!r}", field=key, expected="at least one value")
    check_grid_size({k: len(v) for k, v in vary.items()}, _n_seeds(seeds))
    for key, values in vary.items():
        vary[key] = [_check_value(floor, key, v) for v in values]     # as they run
    check_backend(client, n_workers)
    seed_list = _seed_list(seeds, 0)
    keys = list(vary)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(vary[k] for k in keys))]
    fixed = {**FLOOR_DEFAULTS, **overrides}
    # the fixed settings without the varied ones (the default 100 robots need not fit a
    # floor whose sweep varies robots)
    _point(floor, {k: v for k, v in fixed.items() if k not in vary},
           "with the fixed settings" if overrides
           else "with the default settings; --set KEY=VALUE changes one")
    runs = [_point(floor, {**fixed, **p}, f"point {i} (" + ", ".join(
        f"{k}={_fmt(v)}" for k, v in p.items()) + ")") for i, p in enumerate(points)]

    return run_points(runs, points, seed_list, client=client, n_workers=n_workers,
                      progress=progress, vary=vary, scenario=floor.name,
                      path=None if src is None else str(src), overrides=overrides, kind="floor")


def is_floor_file(path) -> bool:
    """Whether ``sorter sweep`` reads ``path`` as a floor (anything but a ``.toml`` scenario)."""
    return Path(str(path)).suffix.lower() != ".toml"

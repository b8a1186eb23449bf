"""Shift scenarios: typed, validated models of a scenario TOML file.

A scenario says what a sorting shift offers to one loop sorter (or to a hub of several loops
fed from one arrival stream) and how the floor behaves. Every error names the file, the
field and the expected form. The file's tables:

``[scenario]``
    ``name``; ``seed`` (int); ``shift_hours``; ``interval_minutes`` (time-series step, 15);
    ``max_recirculation`` (optional: overrides every plan's); ``shift_start`` ("HH:MM",
    optional: lets waves use clock times).
``[loop]`` (one loop) or ``[[loop]]`` (a hub)
    see :mod:`sorter.layout.loop`; plus ``plan`` (the plan CSV; its ``[plan]``/``[reject]``
    settings come from the ``chutes`` TOML) or, for a generated loop, ``n_destinations``.
``[[wave]]``
    ``name``; ``start_h``/``end_h`` (hours from shift start) or ``start``/``end`` ("HH:MM"
    clock times, with ``shift_start``); ``rate_per_hour`` (offered items/h, whole hub) or,
    for one loop, ``induct_rates_per_hour`` (a list, one Poisson rate per induct); ``arrivals``
    (``poisson`` | ``batched``: truck unloads of ``batch_size`` parcels at
    ``unload_per_hour``, with ``rate_per_hour``); ``plan`` (the plan CSV put in force at the wave's start; for a hub a
    table ``{loop-name = "plan.csv"}``): scans from the wave's start on (the loop's first tick
    at or after it) decide by it; a parcel scanned before keeps its chute until its next scan.
``[destinations]``
    ``mix`` = ``zipf`` (``zipf_s``), ``split`` (``volume_shares`` to ``destination_shares``:
    the default 70/20/10 sends 70% of parcels to the first 20% of destinations, 20% to the
    next 30%, 10% to the last 50%), ``uniform`` or ``csv`` (``volumes`` = a CSV with header
    ``destination,volume``; the default mix when ``volumes`` is given; lines starting with ``#``
    are comments; a code of the CSV that no plan serves gives unknown-destination parcels);
    ``unknown_rate`` (share of parcels for codes no plan knows).
    Destinations are ranked in plan order (busiest first).
``[scan]``
    ``no_read_rate``, ``not_sortable_rate``.
``[containers]``
    ``change_time_s`` and ``reaction_time_s``: a number of seconds or a distribution table
    ``{dist = "lognormal", mean = 45, sd = 15}`` (``const``: ``value``; ``uniform``:
    ``low``/``high``; ``exponential``: ``mean``; ``normal``/``lognormal``: ``mean``/``sd``;
    ``triangular``: ``low``/``mode``/``high``); ``capacity`` (optional: items per container of
    every destination chute). Both times round up to whole ticks of the loop, at least one
    each (a 0 s change still keeps a full chute closed for two ticks). A reject chute takes
    parcels also while its container is full or being changed; the new container starts empty.
``[blockages]``
    ``random_per_hour`` (per loop), ``duration_s`` (a distribution); ``[[blockages.scheduled]]``
    with ``chute`` (a destination or overflow chute: reject chutes are not blocked),
    ``start_h`` (or ``start``, a clock time; before the shift's end, as a wave's start),
    ``duration_s`` and, in a hub, ``loop``.
``[hub]``
    ``split = "by_destination"``: each parcel goes to a loop whose plan in force in the
    parcel's wave (the latest wave plan for the loop up to that wave, else its own plan)
    serves its destination (a destination served by several loops is spread over them); a
    destination no loop serves in that wave goes to a loop whose plan serves it at another
    time (an unknown destination there), a code no plan knows to any loop.
"""
from __future__ import annotations

import csv
import io
import math
import numbers
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from sorter.errors import InputError, plain_float
from sorter.errors import check_number as _num
from sorter.layout.loop import LoopSorter, generate_loop_plan
from sorter.plan import (ChuteTable, SortPlan, first_data_row, load_chutes, load_plan_routes,
                         read_input_bytes)

__all__ = ["Distribution", "Wave", "DestinationMix", "ScanRates", "Containers", "Blockage",
           "Blockages", "LoopSpec", "Scenario", "load_scenario", "parse_scenario",
           "default_scenario_path", "DISTRIBUTIONS", "ARRIVALS", "MIXES", "SEED_MAX"]

MAX_OFFERED = 20_000_000     # parcels offered per run: each costs ~300 B while simulated
# Intervals x chutes, summed over the loops: the simulator keeps two int64 arrays of that
# shape per loop and the KPIs read them (~24 bytes a cell in all). A week at 1-minute
# intervals on a 1,000-chute loop is 10 M; a 90,000-chute loop over the same week (a typo'd
# n_chutes) asked 6.8 GiB at once and died with a MemoryError traceback.
MAX_INTERVAL_CELLS = 50_000_000
# Loops of a hub and chutes on all of them: a hub has a handful of loops of hundreds of
# chutes; building a loop costs ~20 us and ~1 kB a chute, so 100 loops of 90,000 chutes spun
# for minutes (2 GB at 60 s) before any check. One loop alone may have 300,000 (100,000 each
# of destination, overflow and reject chutes).
MAX_LOOPS = 100
MAX_HUB_CHUTES = 300_000
#: The largest seed a scenario (or ``sorter run --seed``) takes: seeds are int64 in the outputs.
SEED_MAX = 2**63 - 1
DISTRIBUTIONS = ("const", "uniform", "exponential", "normal", "lognormal", "triangular")
ARRIVALS = ("poisson", "batched")
MIXES = ("zipf", "split", "uniform", "csv")
_DIST_PARAMS = {"const": ("value",), "uniform": ("low", "high"), "exponential": ("mean",),
                "normal": ("mean", "sd"), "lognormal": ("mean", "sd"),
                "triangular": ("low", "mode", "high")}
_DIST_FORM = ('a number of seconds or {dist = "const"|"uniform"|"exponential"|"normal"|'
              '"lognormal"|"triangular", ...}')


def default_scenario_path() -> Path:
    """The built-in scenario that ``sorter run`` uses without an argument."""
    from sorter.resources import seed_path
    return seed_path("scenarios/default.toml")


def _keys(doc, allowed, *, path, field, form):
    if not isinstance(doc, Mapping):
        raise InputError(f"[{field}] must be a table", path=path, field=field, expected=form)
    for k in doc:
        if k not in allowed:
            raise InputError(f"unknown key {k!r}", path=path, field=f"{field}.{k}",
                             expected="keys " + ", ".join(sorted(allowed)))


@dataclass(frozen=True)
class Distribution:
    """A non-negative random duration in seconds.

    Examples
    --------
    >>> import numpy as np
    >>> d = Distribution("uniform", {"low": 30.0, "high": 90.0})
    >>> d.mean
    60.0
    >>> bool((d.draw(np.random.default_rng(0), 5) >= 30).all())
    True
    """

    dist: str
    params: Mapping

    @classmethod
    def parse(cls, value, *, path, field) -> "Distribution":
        if isinstance(value, numbers.Real) and not isinstance(value, bool):     # numpy too
            # (at most 1e7 s, as a {dist = "const", value = ...} table)
            v = _num(value, path=path, field=field, lo=0, hi=1e7,
                     expected=_DIST_FORM.replace("seconds", "seconds from 0 to 1e7", 1))
            return cls("const", {"value": v})
        if not isinstance(value, Mapping):
            raise InputError(f"bad distribution {value!r}", path=path, field=field, expected=_DIST_FORM)
        dist = value.get("dist")
        if dist not in DISTRIBUTIONS:
            raise InputError(f"unknown distribution {dist!r}", path=path, field=f"{field}.dist",
                             expected=" | ".join(DISTRIBUTIONS))
        need = _DIST_PARAMS[dist]
        extra = set(value) - set(need) - {"dist"}
        if extra:
            raise InputError(f"unknown key(s) {sorted(extra)} for a {dist} distribution", path=path,
                             field=f"{field}.{sorted(extra)[0]}", expected="keys " + ", ".join(need))
        params = {}
        for k in need:
            if k not in value:
                raise InputError(f"a {dist} distribution needs {k!r}", path=path,
                                 field=f"{field}.{k}", expected="seconds >= 0")
            params[k] = _num(value[k], path=path, field=f"{field}.{k}", lo=0, hi=1e7,
                             expected="seconds from 0 to 1e7")
        if dist == "uniform" and params["low"] > params["high"]:
            raise InputError("low > high", path=path, field=f"{field}.low", expected="low <= high")
        if dist == "triangular" and not params["low"] <= params["mode"] <= params["high"]:
            raise InputError("mode outside [low, high]", path=path, field=f"{field}.mode",
                             expected="low <= mode <= high")
        if dist == "lognormal" and params["mean"] <= 0:
            raise InputError("a lognormal mean must be > 0", path=path, field=f"{field}.mean",
                             expected="seconds > 0")
        return cls(dist, params)

    @property
    def mean(self) -> float:
        p = self.params
        return {"const": lambda: p["value"], "uniform": lambda: (p["low"] + p["high"]) / 2,
                "exponential": lambda: p["mean"], "normal": lambda: p["mean"],
                "lognormal": lambda: p["mean"],
                "triangular": lambda: (p["low"] + p["mode"] + p["high"]) / 3}[self.dist]()

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws (seconds, clipped at 0) from ``rng``."""
        p = self.params
        if self.dist == "const":
            x = np.full(n, p["value"])
        elif self.dist == "uniform":
            x = rng.uniform(p["low"], p["high"], n)
        elif self.dist == "exponential":
            x = rng.exponential(p["mean"], n)
        elif self.dist == "normal":
            x = rng.normal(p["mean"], p["sd"], n)
        elif self.dist == "lognormal":
            m, s = p["mean"], p["sd"]
            sigma2 = math.log(1 + (s / m) ** 2)
            x = rng.lognormal(math.log(m) - sigma2 / 2, math.sqrt(sigma2), n)
        else:
            x = rng.triangular(p["low"], p["mode"], p["high"], n) if p["low"] < p["high"] \
                else np.full(n, p["low"])
        return np.maximum(x, 0.0)

    def describe(self) -> str:
        return self.dist + "(" + ", ".join(f"{k}={v:g}" for k, v in self.params.items()) + ")"


def _check_dist(value, *, path, field) -> Distribution:
    """A :class:`Distribution` built in code (or a number, or a table) re-validated as
    :meth:`Distribution.parse` checks a file's (``Distribution("const", {"value": nan})``
    is refused)."""
    if isinstance(value, Distribution):
        if not isinstance(value.params, Mapping):
            raise InputError(f"bad parameters {value.params!r}", path=path, field=field,
                             expected=_DIST_FORM)
        value = {**value.params, "dist": value.dist}
    return Distribution.parse(value, path=path, field=field)


@dataclass(frozen=True)
class Wave:
    """A period of the shift with its own arrival rate and (optionally) sort plan."""

    name: str
    start_s: float
    end_s: float
    rate_per_hour: float
    arrivals: str = "poisson"
    batch_size: int = 200
    unload_per_hour: float = 6000.0
    induct_rates_per_hour: tuple | None = None
    plans: Mapping = field(default_factory=dict)     # loop name -> SortPlan put in force


@dataclass(frozen=True)
class DestinationMix:
    mix: str = "zipf"
    zipf_s: float = 1.0
    volume_shares: tuple = (0.7, 0.2, 0.1)
    destination_shares: tuple = (0.2, 0.3, 0.5)
    volumes: Mapping | None = None        # code -> volume (mix = csv)
    unknown_rate: float = 0.0

    def weights(self, codes) -> tuple[list, np.ndarray]:
        """Destination codes and their probabilities (sums to 1)."""
        codes = list(codes)
        n = len(codes)
        if self.mix == "csv":
            codes = list(self.volumes)
            w = np.array([self.volumes[c] for c in codes], dtype=float)
        elif self.mix == "uniform":
            w = np.ones(n)
        elif self.mix == "zipf":
            w = 1.0 / np.arange(1, n + 1) ** self.zipf_s
        else:
            w = np.zeros(n)
            edges = np.round(np.cumsum((0.0,) + tuple(self.destination_shares)) * n).astype(int)
            edges[-1] = n
            for share, a, b in zip(self.volume_shares, edges[:-1], edges[1:]):
                if b > a:
                    w[a:b] = share / (b - a)
            if w.sum() == 0:
                w[:] = 1.0
        return codes, w / w.sum()


@dataclass(frozen=True)
class ScanRates:
    no_read_rate: float = 0.01
    not_sortable_rate: float = 0.002


@dataclass(frozen=True)
class Containers:
    change_time_s: Distribution = Distribution("lognormal", {"mean": 45.0, "sd": 15.0})
    reaction_time_s: Distribution = Distribution("exponential", {"mean": 30.0})
    capacity: int | None = None


@dataclass(frozen=True)
class Blockage:
    loop: str
    chute: object
    start_s: float
    duration_s: Distribution


@dataclass(frozen=True)
class Blockages:
    random_per_hour: float = 0.0
    duration_s: Distribution = Distribution("uniform", {"low": 60.0, "high": 300.0})
    scheduled: tuple = ()


@dataclass
class LoopSpec:
    """One loop of the scenario: its layout and the plan in force before any wave's."""

    layout: LoopSorter
    plan: SortPlan

    @property
    def name(self) -> str:
        return self.layout.name


@dataclass
class Scenario:
    """A validated shift scenario. Build with :func:`load_scenario` or directly.

    Examples
    --------
    >>> sc = load_scenario(default_scenario_path())  # doctest: +SKIP
    >>> sc.shift_hours, len(sc.loops), [w.name for w in sc.waves]  # doctest: +SKIP
    """

    loops: list
    waves: list
    shift_hours: float = 8.0
    name: str = "scenario"
    seed: int = 0
    interval_minutes: float = 15.0
    destinations: DestinationMix = field(default_factory=DestinationMix)
    scan: ScanRates = field(default_factory=ScanRates)
    containers: Containers = field(default_factory=Containers)
    blockages: Blockages = field(default_factory=Blockages)
    max_recirculation: int | None = None
    path: str | None = None
    #: Clock time of the shift's start in hours (``shift_start = "14:00"`` -> 14.0), or None:
    #: the plots label their time axes with it.
    shift_start_h: float | None = None

    def __post_init__(self):
        self.validate()

    @property
    def shift_s(self) -> float:
        return self.shift_hours * 3600.0

    @property
    def offered_per_hour(self) -> float:
        """Mean offered rate over the shift, items/h (from the waves)."""
        total = 0.0
        for w in self.waves:
            rate = sum(w.induct_rates_per_hour) if w.induct_rates_per_hour else w.rate_per_hour
            total += rate * max(0.0, min(w.end_s, self.shift_s) - w.start_s) / 3600
        return total / self.shift_hours

    def validate(self) -> "Scenario":
        """Check the scenario (also one built or changed in code) as :func:`load_scenario`
        checks a file, and normalise its numbers to plain ``int``/``float``; raises
        :class:`~sorter.errors.InputError` naming the field."""
        path = self.path
        self._check_settings()
        if not self.loops:
            raise InputError("no loop", path=path, field="loop", expected="a [loop] table")
        names = [lp.name for lp in self.loops]
        if len(set(names)) != len(names):
            raise InputError(f"duplicate loop names {names}", path=path, field="loop.name",
                             expected="a unique name per [[loop]]")
        if not self.waves:
            raise InputError("no waves", path=path, field="wave",
                             expected="one or more [[wave]] tables with start_h, end_h, rate_per_hour")
        for i, w in enumerate(self.waves):
            f = f"wave[{i}]"
            if not 0 <= w.start_s < w.end_s:
                raise InputError(f"wave {w.name!r} ends before it starts", path=path,
                                 field=f + ".end_h", expected="0 <= start_h < end_h")
            if w.start_s >= self.shift_s:
                raise InputError(f"wave {w.name!r} starts after the shift ends", path=path,
                                 field=f + ".start_h",
                                 expected=f"a start before the shift's end ({self.shift_hours:g} h)")
            if i and w.start_s < self.waves[i - 1].end_s - 1e-9:
                prev = self.waves[i - 1]
                # (listed out of order read as "overlaps": say which it is, with the hours)
                how = ("is listed after" if w.start_s < prev.start_s else "overlaps")
                raise InputError(f"wave {w.name!r} ({w.start_s / 3600:g}-{w.end_s / 3600:g} h) "
                                 f"{how} wave {prev.name!r} ({prev.start_s / 3600:g}-"
                                 f"{prev.end_s / 3600:g} h)", path=path, field=f + ".start_h",
                                 expected="waves listed in time order, not overlapping")
            if w.induct_rates_per_hour is not None:
                if len(self.loops) != 1:
                    raise InputError("induct_rates_per_hour needs a single loop", path=path,
                                     field=f + ".induct_rates_per_hour",
                                     expected="rate_per_hour for a hub")
                if len(w.induct_rates_per_hour) != len(self.loops[0].layout.inducts):
                    raise InputError(f"{len(w.induct_rates_per_hour)} rates for "
                                     f"{len(self.loops[0].layout.inducts)} inducts", path=path,
                                     field=f + ".induct_rates_per_hour",
                                     expected="one rate per induct, in [[loop.induct]] order")
            for lname in w.plans:
                if lname not in names:
                    raise InputError(f"unknown loop {lname!r}", path=path, field=f + ".plan",
                                     expected="a loop name: " + ", ".join(names))
        n_int = max(1, math.ceil(self.shift_hours * 60.0 / self.interval_minutes - 1e-9))
        n_cells = n_int * sum(len(lp.layout.chutes) for lp in self.loops)
        if n_cells > MAX_INTERVAL_CELLS:
            raise InputError(f"{n_int:,} intervals x "
                             f"{sum(len(lp.layout.chutes) for lp in self.loops):,} chutes = "
                             f"{n_cells:,} chute-intervals", path=path,
                             field="scenario.interval_minutes",
                             expected=f"at most {MAX_INTERVAL_CELLS:,} (shift_hours x 60 / "
                                      "interval_minutes x chutes on all loops; ~24 bytes each): "
                                      "longer intervals, a shorter shift or fewer chutes")
        offered = self.offered_per_hour * self.shift_hours
        if offered > MAX_OFFERED:
            raise InputError(f"the waves offer {offered:,.0f} parcels over the "
                             f"{self.shift_hours:g} h shift", path=path,
                             field="wave.rate_per_hour",
                             expected=f"at most {MAX_OFFERED:,} parcels per run (rate_per_hour x "
                                      "hours, summed over the waves; simulate a longer period "
                                      "as several shifts)")
        for b in self.blockages.scheduled:
            lp = next((lp for lp in self.loops if lp.name == b.loop), None)
            if lp is None:
                raise InputError(f"unknown loop {b.loop!r}", path=path,
                                 field="blockages.scheduled.loop",
                                 expected="a loop name: " + ", ".join(names))
            if lp.layout.chutes.lookup(b.chute) is None:
                raise InputError(f"unknown chute {b.chute!r}", path=path,
                                 field="blockages.scheduled.chute",
                                 expected=f"a chute id of loop {b.loop!r}")
        return self

    def _check_settings(self):
        """Check and normalise the settings (numpy scalars become plain numbers). The checks
        are the section functions below the class; :func:`parse_scenario` calls the same
        functions on a file's values, at the point it reads each table."""
        path = self.path
        if isinstance(self.loops, (str, bytes)) or not isinstance(self.loops, (list, tuple)):
            raise InputError(f"loops is a {type(self.loops).__name__}", path=path, field="loop",
                             expected="a list of LoopSpec")
        if isinstance(self.waves, (str, bytes)) or not isinstance(self.waves, (list, tuple)):
            raise InputError(f"waves is a {type(self.waves).__name__}", path=path, field="wave",
                             expected="a list of Wave")
        for i, lp in enumerate(self.loops):
            if not isinstance(lp, LoopSpec):
                raise InputError(f"loop #{i + 1} is a {type(lp).__name__}", path=path,
                                 field=f"loop[{i}]", expected="a LoopSpec(layout, plan)")
            for key, cls in (("layout", LoopSorter), ("plan", SortPlan)):
                if not isinstance(getattr(lp, key), cls):     # (a path, None, a dict, ...)
                    raise InputError(f"the {key} of loop #{i + 1} is a "
                                     f"{type(getattr(lp, key)).__name__}", path=path,
                                     field=f"loop[{i}].{key}", expected=f"a {cls.__name__}")
        if self.shift_start_h is not None:
            self.shift_start_h = _num(self.shift_start_h, field="shift_start_h", path=path,
                                      lo=0.0, hi=24.0 - 1e-9,
                                      expected="a clock time in hours, 0 <= h < 24")
        (self.name, self.seed, self.shift_hours, self.interval_minutes,
         self.max_recirculation) = _check_head(self.name, self.seed, self.shift_hours,
                                               self.interval_minutes, self.max_recirculation,
                                               path=path)
        self.waves = waves = [_check_wave(w, i, path=path) for i, w in enumerate(self.waves)]
        served = {code for lp in self.loops for code in lp.plan.routes}
        served.update(code for w in waves for p in w.plans.values() for code in p.routes)
        self.destinations = _check_mix(self.destinations, served, path=path)
        self.scan = _check_scan(self.scan, path=path)
        self.containers, self.loops = _check_containers(self.containers, self.loops, path=path)
        self.blockages = _check_blockages(self.blockages, path=path)

    def plan_for(self, loop: LoopSpec, plan: SortPlan) -> SortPlan:
        """``plan`` with the scenario's ``max_recirculation`` override applied."""
        if self.max_recirculation is None or plan.max_recirculation == self.max_recirculation:
            return plan
        return replace(plan, max_recirculation=self.max_recirculation)


# --------------------------------------------------------------------------- settings
# One check per setting, shared by Scenario (a scenario built or changed in code) and
# parse_scenario (a file, whose key names these fields are). Each returns the values
# normalised to plain int / float / tuple.

def _check_head(name, seed, shift_hours, interval_minutes, max_recirculation, *, path):
    """``[scenario]``: name, seed, shift_hours, interval_minutes, max_recirculation."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"bad name {name!r}", path=path, field="scenario.name",
                         expected="a non-empty string")
    seed = _num(seed, path=path, field="scenario.seed", lo=0, hi=SEED_MAX, integer=True,
                expected="an integer from 0 to 2**63 - 1")
    shift_hours = _num(shift_hours, path=path, field="scenario.shift_hours", lo=0,
                       lo_open=True, hi=24 * 7, expected="hours, > 0 and at most 168")
    interval_minutes = _num(interval_minutes, path=path, field="scenario.interval_minutes",
                            lo=1, hi=24 * 60, expected="minutes from 1 to 1440")
    if max_recirculation is not None:
        max_recirculation = _num(max_recirculation, path=path,
                                 field="scenario.max_recirculation", lo=0, hi=1000,
                                 integer=True, expected="an integer from 0 to 1000")
    return name, seed, shift_hours, interval_minutes, max_recirculation


def _check_wave(w, i, *, path) -> Wave:
    """Wave ``i``: times, arrivals, rates, truck batches, the plans mapping."""
    f = f"wave[{i}]"
    if not isinstance(w, Wave):
        raise InputError(f"wave #{i + 1} is a {type(w).__name__}", path=path, field=f,
                         expected="a Wave(name, start_s, end_s, rate_per_hour, ...)")
    if not isinstance(w.name, str) or not w.name.strip():     # as a file's wave name
        raise InputError(f"bad wave name {w.name!r}", path=path, field=f + ".name",
                         expected="a non-empty string")
    start = _num(w.start_s, path=path, field=f + ".start_s", lo=0,
                 expected="seconds from the shift's start, >= 0")
    end = _num(w.end_s, path=path, field=f + ".end_s", lo=0,
               expected="seconds from the shift's start, a finite number")
    if w.arrivals not in ARRIVALS:
        raise InputError(f"unknown arrivals {w.arrivals!r}", path=path,
                         field=f + ".arrivals", expected=" | ".join(ARRIVALS))
    rate = _num(w.rate_per_hour, path=path, field=f + ".rate_per_hour", lo=0, hi=1e7,
                expected="offered items per hour from 0 to 10,000,000")
    rates = w.induct_rates_per_hour
    if rates is not None:
        if isinstance(rates, (str, bytes, Mapping)) or not hasattr(rates, "__len__") \
                or len(rates) == 0:
            raise InputError(f"bad induct_rates_per_hour {rates!r}", path=path,
                             field=f + ".induct_rates_per_hour",
                             expected="a list of items/h, one per induct")
        rates = tuple(_num(r, path=path, field=f + ".induct_rates_per_hour", lo=0, hi=1e6,
                           expected="items per hour from 0 to 1,000,000") for r in rates)
        if w.arrivals != "poisson":
            raise InputError("induct_rates_per_hour are Poisson arrivals per induct; "
                             "truck batches need rate_per_hour", path=path,
                             field=f + ".arrivals", expected='arrivals = "poisson"')
        if rate and abs(rate - sum(rates)) > 1e-6 * max(1.0, rate):
            raise InputError(f"wave {w.name!r} has rate_per_hour {rate:g} and "
                             f"induct_rates_per_hour summing to {sum(rates):g}",
                             path=path, field=f + ".rate_per_hour",
                             expected="rate_per_hour = 0 (or their sum) beside "
                                      "induct_rates_per_hour")
        rate = float(sum(rates))     # what is offered, as a file's wave reports it
    batch = _num(w.batch_size, path=path, field=f + ".batch_size", lo=1, hi=1e6,
                 integer=True, expected="parcels per truck, an integer from 1 to 1,000,000")
    unload = _num(w.unload_per_hour, path=path, field=f + ".unload_per_hour", lo=0,
                  lo_open=True, hi=1e7, expected="items per hour, > 0 and at most 10,000,000")
    if not isinstance(w.plans, Mapping) or not all(isinstance(p, SortPlan)
                                                   for p in w.plans.values()):
        # (a plan CSV's path is the file's form: in code, load it, e.g. with load_plan_routes)
        raise InputError(f"bad plans {w.plans!r}", path=path, field=f + ".plan",
                         expected="a mapping {loop name: SortPlan}")
    return replace(w, start_s=start, end_s=end, rate_per_hour=rate, batch_size=batch,
                   unload_per_hour=unload, induct_rates_per_hour=rates)


def _check_mix(d, served, *, path) -> DestinationMix:
    """``[destinations]``; ``served``: the destination codes of every plan of the scenario,
    or None when the caller checks the volumes itself (a file's volumes CSV)."""
    if not isinstance(d, DestinationMix):
        raise InputError(f"destinations is a {type(d).__name__}", path=path,
                         field="destinations", expected="a DestinationMix")
    if d.mix not in MIXES:
        raise InputError(f"unknown mix {d.mix!r}", path=path, field="destinations.mix",
                         expected=" | ".join(MIXES))
    zipf_s = _num(d.zipf_s, path=path, field="destinations.zipf_s", lo=0, hi=10,
                  expected="an exponent from 0 to 10")
    shares = []
    for key in ("volume_shares", "destination_shares"):
        v = getattr(d, key)
        if isinstance(v, (str, bytes, Mapping)) or not hasattr(v, "__len__") or not len(v):
            raise InputError(f"bad {key} {v!r}", path=path, field=f"destinations.{key}",
                             expected="a list of shares summing to 1, e.g. [0.7, 0.2, 0.1]")
        v = tuple(_num(x, path=path, field=f"destinations.{key}", lo=0, hi=1,
                       expected="shares from 0 to 1") for x in v)
        if abs(sum(v) - 1) > 1e-6:
            raise InputError(f"{key} sum to {sum(v):g}", path=path,
                             field=f"destinations.{key}", expected="shares summing to 1")
        shares.append(v)
    if len(shares[0]) != len(shares[1]):
        raise InputError("volume_shares and destination_shares differ in length", path=path,
                         field="destinations.destination_shares",
                         expected="as many destination shares as volume shares")
    volumes = d.volumes
    if d.mix == "csv" and served is not None:
        if not isinstance(volumes, Mapping) or not volumes:
            raise InputError(f"mix = csv needs volumes, got {volumes!r}", path=path,
                             field="destinations.volumes",
                             expected="a mapping {destination code: volume >= 0}")
        volumes = {str(c): _num(v, path=path, field=f"destinations.volumes[{c!r}]", lo=0,
                                expected="a volume >= 0") for c, v in volumes.items()}
        if not any(code in served for code, v in volumes.items() if v > 0):
            raise InputError(f"none of the {len(volumes)} destinations with volume is in a "
                             "sort plan (every parcel would be an unknown destination)",
                             path=path, field="destinations.volumes",
                             expected="destination codes of the scenario's plans, e.g. "
                                      + ", ".join(sorted(served)[:3]))
    unknown = _num(d.unknown_rate, path=path, field="destinations.unknown_rate", lo=0, hi=1,
                   expected="a share from 0 to 1")
    return DestinationMix(d.mix, zipf_s, shares[0], shares[1], volumes, unknown)


def _check_scan(s, *, path) -> ScanRates:
    """``[scan]``: no_read_rate, not_sortable_rate."""
    if not isinstance(s, ScanRates):
        raise InputError(f"scan is a {type(s).__name__}", path=path, field="scan",
                         expected="a ScanRates(no_read_rate, not_sortable_rate)")
    return ScanRates(*(_num(getattr(s, k), path=path, field=f"scan.{k}", lo=0, hi=1,
                            expected="a share from 0 to 1")
                       for k in ("no_read_rate", "not_sortable_rate")))


def _check_containers(c, loops, *, path) -> tuple:
    """``[containers]``; a capacity is given to every destination chute of ``loops``.
    Returns ``(containers, loops)``."""
    if not isinstance(c, Containers):
        raise InputError(f"containers is a {type(c).__name__}", path=path, field="containers",
                         expected="a Containers(change_time_s, reaction_time_s, capacity)")
    cap = c.capacity
    if cap is not None:
        cap = _num(cap, path=path, field="containers.capacity", lo=1, hi=1e9, integer=True,
                   expected="items per container, an integer from 1 to 1e9")
        # the capacity of every destination chute (as a file's [containers] capacity)
        given, loops = loops, []
        for lp in given:
            chutes = lp.layout.chutes
            if any(ch.kind == "destination" and ch.capacity != cap for ch in chutes):
                table = ChuteTable([replace(ch, capacity=cap) if ch.kind == "destination"
                                    else ch for ch in chutes])
                lp = LoopSpec(replace(lp.layout, chutes=table), lp.plan)
            loops.append(lp)
    return Containers(
        _check_dist(c.change_time_s, path=path, field="containers.change_time_s"),
        _check_dist(c.reaction_time_s, path=path, field="containers.reaction_time_s"),
        cap), loops


def _check_blockages(b, *, path) -> Blockages:
    """``[blockages]``: random_per_hour, duration_s, the scheduled blockages' times."""
    if not isinstance(b, Blockages):
        raise InputError(f"blockages is a {type(b).__name__}", path=path, field="blockages",
                         expected="a Blockages(random_per_hour, duration_s, scheduled)")
    rate = _num(b.random_per_hour, path=path, field="blockages.random_per_hour", lo=0, hi=1e4,
                expected="blockages per hour per loop, from 0 to 10,000")
    dur = _check_dist(b.duration_s, path=path, field="blockages.duration_s")
    return Blockages(rate, dur, tuple(_check_blockage(e, i, path=path)
                                      for i, e in enumerate(b.scheduled)))


def _check_blockage(e, i, *, path) -> Blockage:
    """Scheduled blockage ``i``: its start and duration."""
    f = f"blockages.scheduled[{i}]"
    if not isinstance(e, Blockage):
        raise InputError(f"scheduled blockage #{i + 1} is a {type(e).__name__}",
                         path=path, field=f, expected="a Blockage(loop, chute, start_s, "
                                                      "duration_s)")
    start = _num(e.start_s, path=path, field=f + ".start_s", lo=0,
                 expected="seconds from the shift's start")
    dur = _check_dist(e.duration_s, path=path, field=f + ".duration_s")
    return replace(e, start_s=start, duration_s=dur)


# --------------------------------------------------------------------------- loading

_TOP = {"scenario", "loop", "wave", "destinations", "scan", "containers", "blockages", "hub"}


def load_scenario(path) -> Scenario:
    """Read and validate a scenario TOML (see the module docstring for its tables).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Scenario

    Raises
    ------
    ValueError
        :class:`~sorter.errors.InputError` naming file, line (of the key, else of its
        table, where the file writes it once), field and the expected form.

    Examples
    --------
    >>> from sorter.sim.scenario import load_scenario, default_scenario_path
    >>> sc = load_scenario(default_scenario_path())
    >>> sc.loops[0].layout.lap_time_s
    160.0
    """
    if not isinstance(path, (str, os.PathLike)):     # (was Path()'s message, naming nothing)
        raise TypeError(f"path is a {type(path).__name__}: expected the path of a scenario TOML"
                        + ("; a document in a dict goes to sorter.sim.parse_scenario(doc)"
                           if isinstance(path, Mapping) else ""))
    path = Path(path)
    data = read_input_bytes(path, expected="a scenario TOML file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path, expected="a UTF-8 TOML file") from None
    from sorter.plan import parse_toml
    doc = parse_toml(text, path=path,
                     expected="a scenario TOML ([scenario], [loop], [[wave]], ...)")
    try:
        return parse_scenario(doc, path=path)
    except InputError as exc:
        # a value error of this file: name the line of its key (else of its table)
        line = (_field_line(text, exc.field) if exc.line is None and exc.field
                and exc.path == str(path) else None)
        if line is None:
            raise
        raise exc.relocated(path=path, line=line) from None


def _field_line(text, fieldname):
    """The line of the scenario key an error's field names (``wave[1].rate_per_hour``,
    ``containers.change_time_s.low``, ...), else of the nearest enclosing key or table that
    the file writes once; None when that is ambiguous (several loops of a hub) or absent."""
    lines = {}                      # dotted name -> line numbers
    prefixes, counters = [""], {}
    for no, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        m = re.match(r"\[\[\s*([A-Za-z0-9_.\-]+)\s*\]\]", s)
        if m:
            name = m.group(1)
            for k in [k for k in counters if k.startswith(name + ".")]:
                del counters[k]                # [[loop.induct]] counts again in each [[loop]]
            counters[name] = i = counters.get(name, -1) + 1
            prefixes = [f"{name}[{i}]", name]
        elif (m := re.match(r"\[\s*([A-Za-z0-9_.\-]+)\s*\]", s)):
            prefixes = [m.group(1)]
        elif (m := re.match(r"([A-Za-z0-9_\-.\"']+)\s*=", s)):
            key = m.group(1).replace('"', "").replace("'", "")
            for p in prefixes:
                lines.setdefault(f"{p}.{key}" if p else key, set()).add(no)
            continue
        else:
            continue
        for p in prefixes:
            lines.setdefault(p, set()).add(no)
    name = fieldname
    while name:
        found = lines.get(name)
        if found is not None and len(found) == 1:
            return next(iter(found))
        cut = max(name.rfind("."), name.rfind("["))
        name = name[:cut] if cut > 0 else ""
    return None


def _slash_hint(rel) -> str:
    """For a file name written with Windows separators: the form that works everywhere."""
    if isinstance(rel, str) and re.match(r"[A-Za-z]:[\\/]", rel):
        return "; a Windows drive path: give the file's path on this machine, with /"
    if isinstance(rel, str) and "\\" in rel:
        return (f"; write it with / ({rel.replace(chr(92), '/')!r}): a \\ is part of the file "
                "name on Linux and macOS")
    return ""


def _clock(value, *, path, field, start_h):
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        raise InputError(f"bad clock time {value!r}", path=path, field=field, expected='"HH:MM"')
    h, m = (int(x) for x in value.strip().split(":"))
    if h > 24 or m > 59 or (h == 24 and m):        # 24:00 is midnight; 24:30 is no time
        raise InputError(f"bad clock time {value!r}", path=path, field=field,
                         expected='"HH:MM" from 00:00 to 24:00')
    if start_h is None:
        raise InputError("clock times need scenario.shift_start", path=path, field=field,
                         expected='shift_start = "HH:MM" in [scenario], or start_h/end_h in hours')
    return ((h + m / 60) - start_h) % 24


def parse_scenario(doc: Mapping, *, path=None, base_dir=None) -> Scenario:
    """Validate an already-parsed scenario document; see :func:`load_scenario`."""
    if not isinstance(doc, Mapping):
        raise InputError(f"the scenario document is a {type(doc).__name__}", path=path,
                         field="scenario", expected="a mapping of tables, as tomllib.load "
                                                    "returns it ([scenario], [loop], [[wave]], ...)")
    base = Path(base_dir) if base_dir is not None else (Path(path).parent if path else Path("."))
    for k in doc:
        if k not in _TOP:
            raise InputError(f"unknown table [{k}]", path=path, field=k,
                             expected="tables " + ", ".join(sorted(_TOP)))
    head = doc.get("scenario", {})
    _keys(head, {"name", "seed", "shift_hours", "interval_minutes", "max_recirculation",
                 "shift_start"}, path=path, field="scenario", form="[scenario] with name, seed, shift_hours")
    # each table's values go through the checks Scenario makes (the _check_* functions)
    name, seed, shift_hours, interval, max_rec = _check_head(
        head.get("name", Path(path).stem if path else "scenario"), head.get("seed", 0),
        head.get("shift_hours", 8.0), head.get("interval_minutes", 15.0),
        head.get("max_recirculation"), path=path)
    start_h = None
    if "shift_start" in head:
        start_h = _clock(head["shift_start"], path=path, field="scenario.shift_start", start_h=0.0)

    # loops
    raw_loops = doc.get("loop")
    if raw_loops is None:
        raise InputError("no [loop] table", path=path, field="loop",
                         expected="a [loop] table (or [[loop]] tables for a hub)")
    if isinstance(raw_loops, Mapping):
        raw_loops = [raw_loops]
    if isinstance(raw_loops, tuple):            # (a document built in Python)
        raw_loops = list(raw_loops)
    if not isinstance(raw_loops, list) or not raw_loops:
        raise InputError("bad [loop]", path=path, field="loop", expected="a [loop] table")
    if len(raw_loops) > MAX_LOOPS:
        raise InputError(f"{len(raw_loops):,} [[loop]] tables", path=path, field="loop",
                         expected=f"at most {MAX_LOOPS} loops in one hub")
    loops = []
    n_chutes = 0
    for i, raw in enumerate(raw_loops):
        raw = _fspaths(raw, ("chutes", "plan"))
        default_name = "loop" if len(raw_loops) == 1 else f"loop-{i + 1}"
        for key, form in (("chutes", "a chute TOML"), ("plan", "a plan CSV")):
            # a missing file named by this scenario: name the key (as for a wave's plan)
            rel = raw.get(key) if isinstance(raw, Mapping) else None
            if isinstance(rel, str) and rel.strip() and not (base / rel).exists():
                who = f"loop {raw.get('name', default_name)!r}: " if len(raw_loops) > 1 else ""
                raise InputError(f"{who}{key} file {rel!r} not found", path=path,
                                 field=f"loop[{i}].{key}" if who else f"loop.{key}",
                                 expected=f"the path of {form}, relative to the scenario "
                                          f"({base})" + _slash_hint(rel))
        try:
            layout = LoopSorter.from_dict(raw, path=path, base_dir=base, name=default_name)
        except InputError as exc:
            raise _hub_loop_error(exc, i, len(raw_loops), path) from None
        n_chutes += len(layout.chutes)
        if n_chutes > MAX_HUB_CHUTES:
            raise InputError(f"{n_chutes:,} chutes on the first {i + 1} loops", path=path,
                             field=("loop" + (f".{i}" if len(raw_loops) > 1 else "")
                                    + (".n_chutes" if "n_chutes" in raw else ".chutes")),
                             expected=f"at most {MAX_HUB_CHUTES:,} chutes on all loops together")
        try:
            plan = _loop_plan(raw, layout, path=path, base=base)
        except InputError as exc:
            raise _hub_loop_error(exc, i, len(raw_loops), path) from None
        loops.append(LoopSpec(layout, plan))
    names = [lp.name for lp in loops]

    # waves
    raw_waves = doc.get("wave")
    if isinstance(raw_waves, tuple):
        raw_waves = list(raw_waves)
    if isinstance(raw_waves, Mapping):          # [wave], not [[wave]]: was "no waves"
        raise InputError("[wave] is one table", path=path, field="wave",
                         expected="[[wave]] tables (a list of tables, one per wave)")
    if not isinstance(raw_waves, list) or not raw_waves:
        raise InputError("no waves", path=path, field="wave",
                         expected="one or more [[wave]] tables with start_h, end_h, rate_per_hour")
    waves = []
    allowed = {"name", "start_h", "end_h", "start", "end", "rate_per_hour", "arrivals",
               "batch_size", "unload_per_hour", "induct_rates_per_hour", "plan"}
    for i, w in enumerate(raw_waves):
        f = f"wave[{i}]"
        _keys(w, allowed, path=path, field=f, form="a [[wave]] table")
        wname = w.get("name", f"wave-{i + 1}")
        if not isinstance(wname, str) or not wname.strip():
            raise InputError(f"bad wave name {wname!r}", path=path, field=f + ".name",
                             expected="a non-empty string")
        times = []
        for key in ("start", "end"):
            if f"{key}_h" in w:
                times.append(_num(w[f"{key}_h"], path=path, field=f"{f}.{key}_h", lo=0, hi=24 * 7,
                                  expected="hours from the shift's start, 0 to 168"))
            elif key in w:
                times.append(_clock(w[key], path=path, field=f"{f}.{key}", start_h=start_h))
            else:
                raise InputError(f"wave {wname!r} has no {key}", path=path, field=f"{f}.{key}_h",
                                 expected=f'{key}_h = hours from the shift start (or {key} = "HH:MM")')
        if "end" in w and "end_h" not in w and times[1] <= times[0]:
            times[1] += 24
        if ("start" in w and "start_h" not in w and shift_hours > 24 and waves
                and times[0] < waves[-1].end_s / 3600 - 1e-9):
            # a clock time names an hour of the shift's first 24 h: a wave of a later day of a
            # long shift reads as one overlapping an earlier wave
            raise InputError(f"wave {wname!r} at {w['start']} overlaps wave {waves[-1].name!r} "
                             f"(clock times are read within the first 24 h from shift_start)",
                             path=path, field=f + ".start",
                             expected="waves in time order, not overlapping; for a wave after "
                                      "the first 24 h of the shift give start_h/end_h (hours "
                                      "from the shift start)")
        rates = w.get("induct_rates_per_hour")
        if rates is not None and "rate_per_hour" in w:
            # one of the two would be ignored without a word
            raise InputError(f"wave {wname!r} has both rate_per_hour and induct_rates_per_hour",
                             path=path, field=f + ".induct_rates_per_hour",
                             expected="either rate_per_hour (items/h over all inducts) or "
                                      "induct_rates_per_hour (one rate per induct), not both")
        if rates is None and "rate_per_hour" not in w:
            raise InputError(f"wave {wname!r} has no rate", path=path, field=f + ".rate_per_hour",
                             expected="rate_per_hour = items/h (or induct_rates_per_hour = [...])")
        arrivals = w.get("arrivals", "poisson")
        if rates is not None and arrivals in ARRIVALS and (
                arrivals != "poisson" or "batch_size" in w or "unload_per_hour" in w):
            # per-induct rates are Poisson streams: truck batches would be ignored silently
            raise InputError("induct_rates_per_hour are Poisson arrivals per induct; truck batches "
                             "need rate_per_hour", path=path, field=f + ".arrivals",
                             expected='rate_per_hour with arrivals = "batched", or '
                                      'induct_rates_per_hour without batches')
        # (per-induct rates: rate_per_hour becomes their sum)
        wave = _check_wave(Wave(wname, times[0] * 3600, times[1] * 3600,
                                0.0 if rates is not None else w["rate_per_hour"], arrivals,
                                w.get("batch_size", 200), w.get("unload_per_hour", 6000.0),
                                rates), i, path=path)
        plans = {}
        if "plan" in w:
            raw_plan = w["plan"]
            if isinstance(raw_plan, os.PathLike):      # a Path is a path too (a dict in code)
                raw_plan = os.fspath(raw_plan)
            elif isinstance(raw_plan, Mapping):
                raw_plan = _fspaths(raw_plan, list(raw_plan))
            if isinstance(raw_plan, str):
                if len(loops) != 1:
                    raise InputError("a hub's wave plan names its loop", path=path,
                                     field=f + ".plan", expected='{ loop-name = "plan.csv", ... }')
                raw_plan = {names[0]: raw_plan}
            if not isinstance(raw_plan, Mapping):
                raise InputError(f"bad plan {raw_plan!r}", path=path, field=f + ".plan",
                                 expected='"plan.csv" or { loop-name = "plan.csv" }')
            for lname, csv_path in raw_plan.items():
                if lname not in names:
                    raise InputError(f"unknown loop {lname!r}", path=path, field=f + ".plan",
                                     expected="a loop name: " + ", ".join(names))
                if not isinstance(csv_path, str) or not csv_path.strip():
                    raise InputError(f"bad plan path {csv_path!r}", path=path, field=f + ".plan",
                                     expected="the path of a plan CSV, relative to the scenario")
                lp = loops[names.index(lname)]
                if not (base / csv_path).is_file():     # else the plan loader names no field
                    raise InputError(f"plan file {csv_path!r} not found", path=path,
                                     field=f + ".plan",
                                     expected="the path of a plan CSV, relative to the scenario "
                                              f"({base})" + _slash_hint(csv_path))
                routes = load_plan_routes(base / csv_path, lp.layout.chutes)
                plans[lname] = replace(lp.plan, routes=routes, name=Path(csv_path).stem)
        waves.append(replace(wave, plans=plans))

    # destinations
    d = doc.get("destinations", {})
    _keys(d, {"mix", "zipf_s", "volume_shares", "destination_shares", "volumes", "unknown_rate"},
          path=path, field="destinations", form="[destinations] with mix = zipf|split|uniform|csv")
    # volumes without a mix mean the volumes (the default mix, zipf, would ignore them)
    dflt = DestinationMix()
    dmix = _check_mix(DestinationMix(d.get("mix", "csv" if "volumes" in d else "zipf"),
                                     d.get("zipf_s", dflt.zipf_s),
                                     d.get("volume_shares", dflt.volume_shares),
                                     d.get("destination_shares", dflt.destination_shares), None,
                                     d.get("unknown_rate", dflt.unknown_rate)), None, path=path)
    mix = dmix.mix
    volumes = None
    if mix == "csv":
        if "volumes" not in d:
            raise InputError("mix = csv needs volumes", path=path, field="destinations.volumes",
                             expected='volumes = "volumes.csv" (header destination,volume)')
        vpath = d["volumes"]
        if isinstance(vpath, os.PathLike):
            vpath = os.fspath(vpath)
        if not isinstance(vpath, str) or not vpath.strip():
            raise InputError(f"bad volumes {vpath!r}", path=path, field="destinations.volumes",
                             expected='the path of a CSV (header destination,volume), relative '
                                      'to the scenario')
        if not (base / vpath).exists():         # name this file's key, as for the plans
            raise InputError(f"volumes file {vpath!r} not found", path=path,
                             field="destinations.volumes",
                             expected="the path of a CSV (header destination,volume), relative "
                                      f"to the scenario ({base})" + _slash_hint(vpath))
        volumes = _load_volumes(base / vpath)
        served = set()
        for lp in loops:
            served.update(lp.plan.routes)
        for w in waves:
            for wp in w.plans.values():
                served.update(wp.routes)
        if not any(code in served for code, v in volumes.items() if v > 0):
            raise InputError(f"none of the {len(volumes)} destinations with volume is in a sort "
                             "plan (every parcel would be an unknown destination)",
                             path=base / vpath, field="destination",
                             expected="destination codes of the scenario's plans, e.g. "
                                      + ", ".join(sorted(served)[:3]))
    dmix = replace(dmix, volumes=volumes)

    s = doc.get("scan", {})
    _keys(s, {"no_read_rate", "not_sortable_rate"}, path=path, field="scan",
          form="[scan] with no_read_rate, not_sortable_rate")
    sdef = ScanRates()
    scan = _check_scan(ScanRates(s.get("no_read_rate", sdef.no_read_rate),
                                 s.get("not_sortable_rate", sdef.not_sortable_rate)), path=path)

    c = doc.get("containers", {})
    _keys(c, {"change_time_s", "reaction_time_s", "capacity"}, path=path, field="containers",
          form="[containers] with change_time_s, reaction_time_s, capacity")
    cdef_ = Containers()     # (a capacity is given to every destination chute of the loops)
    containers, loops = _check_containers(
        Containers(c.get("change_time_s", cdef_.change_time_s),
                   c.get("reaction_time_s", cdef_.reaction_time_s), c.get("capacity")),
        loops, path=path)

    b = doc.get("blockages", {})
    _keys(b, {"random_per_hour", "duration_s", "scheduled"}, path=path, field="blockages",
          form="[blockages] with random_per_hour, duration_s, [[blockages.scheduled]]")
    bdef = Blockages()
    blockages = _check_blockages(Blockages(b.get("random_per_hour", bdef.random_per_hour),
                                           b.get("duration_s", bdef.duration_s)), path=path)
    sched = []
    raw_sched = b.get("scheduled", [])
    if isinstance(raw_sched, tuple):
        raw_sched = list(raw_sched)
    if not isinstance(raw_sched, list):
        raise InputError("bad scheduled blockages", path=path, field="blockages.scheduled",
                         expected="[[blockages.scheduled]] tables with chute, start_h, duration_s")
    for i, e in enumerate(raw_sched):
        f = f"blockages.scheduled[{i}]"
        _keys(e, {"loop", "chute", "start_h", "start", "duration_s"}, path=path, field=f,
              form="a table with chute, start_h, duration_s")
        lname = e.get("loop", names[0])
        if lname not in names:
            raise InputError(f"unknown loop {lname!r}", path=path, field=f + ".loop",
                             expected="a loop name: " + ", ".join(names))
        if "chute" not in e:
            raise InputError("no chute", path=path, field=f + ".chute", expected='chute = "C010"')
        lp = loops[names.index(lname)]
        if lp.layout.chutes.lookup(e["chute"]) is None:
            raise InputError(f"unknown chute {e['chute']!r}", path=path, field=f + ".chute",
                             expected=f"a chute id of loop {lname!r}")
        if lp.layout.chutes[e["chute"]].kind == "reject":
            raise InputError(f"chute {e['chute']!r} is a reject chute: the simulation does not "
                             "block reject chutes (they take every parcel sent to them)",
                             path=path, field=f + ".chute",
                             expected=f"a destination or overflow chute of loop {lname!r}")
        if "start_h" in e:
            st = _num(e["start_h"], path=path, field=f + ".start_h", lo=0, hi=24 * 7,
                      expected="hours from the shift's start, 0 to 168")
        elif "start" in e:
            st = _clock(e["start"], path=path, field=f + ".start", start_h=start_h)
        else:
            raise InputError("no start", path=path, field=f + ".start_h",
                             expected="start_h = hours from the shift's start")
        # a blockage after the shift would never happen (a typo, or a shift shortened in the
        # file); a Scenario shortened in code keeps its blockages, idle past the end
        if st >= shift_hours:
            key = "start_h" if "start_h" in e else "start"
            raise InputError(f"blockage of chute {e['chute']!r} at {st:g} h starts after the "
                             "shift ends", path=path, field=f"{f}.{key}",
                             expected=f"a start before the shift's end ({shift_hours:g} h)")
        if "duration_s" not in e:
            raise InputError("no duration", path=path, field=f + ".duration_s", expected=_DIST_FORM)
        sched.append(_check_blockage(Blockage(lname, lp.layout.chutes[e["chute"]].id, st * 3600,
                                              e["duration_s"]), i, path=path))
    blockages = replace(blockages, scheduled=tuple(sched))

    h = doc.get("hub", {})
    _keys(h, {"split"}, path=path, field="hub", form='[hub] with split = "by_destination"')
    if h.get("split", "by_destination") != "by_destination":
        raise InputError(f"unknown split {h.get('split')!r}", path=path, field="hub.split",
                         expected="by_destination")

    return Scenario(loops=loops, waves=waves, shift_hours=shift_hours, name=name, seed=seed,
                    interval_minutes=interval, destinations=dmix, scan=scan, containers=containers,
                    blockages=blockages, max_recirculation=max_rec,
                    path=None if path is None else str(path), shift_start_h=start_h)


def _fspaths(table, keys):
    """``table`` (a document built in Python) with its file keys given as a ``Path`` made
    ``str``, as a TOML file gives them (a copy: the caller's dict is left as it is)."""
    if isinstance(table, Mapping) and any(isinstance(table.get(k), os.PathLike) for k in keys):
        table = {**table, **{k: os.fspath(table[k]) for k in keys
                             if isinstance(table.get(k), os.PathLike)}}
    return table


def _hub_loop_error(exc, i, n_loops, path):
    """An error of a key of the hub's [[loop]] table ``i`` (``loop.speed_mps``, a key every
    loop table has) named ``loop[i].speed_mps``: which loop, and the line of the key in that
    table (an error of a file the loop names, or of a single [loop], is left as it is)."""
    if (n_loops < 2 or exc.line is not None or exc.path != (None if path is None else str(path))
            or not isinstance(exc.field, str) or not exc.field.startswith("loop.")):
        return exc
    return exc.relocated(path=path, field=f"loop[{i}]." + exc.field[5:])


def _loop_plan(raw, layout, *, path, base) -> SortPlan:
    if "plan" in raw:
        plan_path = raw["plan"]
        if not isinstance(plan_path, str) or not plan_path.strip():
            raise InputError(f"bad plan {plan_path!r}", path=path, field="loop.plan",
                             expected="the path of a plan CSV, relative to the scenario")
        if "chutes" in raw:
            _, settings = load_chutes(base / raw["chutes"])
        else:
            g = generate_loop_plan(layout.chutes, 1)
            settings = g
        routes = load_plan_routes(base / plan_path, layout.chutes)
        plan = SortPlan(routes=routes, reject=dict(settings.reject),
                        overflow=tuple(settings.overflow), strategy=settings.strategy,
                        max_recirculation=settings.max_recirculation, name=Path(plan_path).stem)
        return plan.validate(layout.chutes, path=base / plan_path)
    if "chutes" in raw:
        raise InputError("no plan for the loop", path=path, field="loop.plan",
                         expected='plan = "plan.csv" (destination,chutes), relative to the scenario')
    n_dest = raw.get("n_destinations")
    n_dc = sum(c.kind == "destination" for c in layout.chutes)
    if n_dest is None:
        n_dest = max(1, int(n_dc * 0.9))
    n_dest = _num(n_dest, path=path, field="loop.n_destinations", lo=1, hi=n_dc, integer=True,
                  expected=f"an integer from 1 to {n_dc} (the destination chutes)")
    return generate_loop_plan(layout.chutes, n_dest, name=f"{layout.name}-plan")


def _load_volumes(p: Path) -> dict:
    try:
        text = read_input_bytes(p, field="destinations.volumes",
                                expected="a CSV with header destination,volume").decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=p, field="destinations.volumes",
                         expected="a UTF-8 CSV with header destination,volume") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=p, field="destinations.volumes",
                         expected="a CSV file with header destination,volume") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = first_data_row(reader)     # comment and blank lines skipped, as in a plan
        if header is None or [h.strip() for h in header[:2]] != ["destination", "volume"]:
            what = ("no header (the file is empty or all comments)" if header is None
                    else f"bad header {header!r}")
            raise InputError(what, path=p, line=max(reader.line_num, 1),
                             field="header", expected="'destination,volume'")
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise InputError(f"bad CSV: {exc}", path=p, line=reader.line_num,
                         expected="a CSV with header destination,volume") from None
    vols = {}
    for line, row in rows:
        if not row or not any(x.strip() for x in row) or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2 or not row[0].strip():
            raise InputError("expected two columns", path=p, line=line, field="destination",
                             expected="destination,volume")
        if any(x.strip() for x in row[max(2, len(header)):]):
            # e.g. "X1,1,000": a thousands separator would silently make the volume 1
            raise InputError(f"{len(row)} fields, the header has {len(header)}", path=p, line=line,
                             field="volume", expected="destination,volume with a plain number "
                                                      "(no thousands separator), e.g. X1,1000")
        try:
            v = plain_float(row[1])
        except ValueError:
            v = -1.0
        if not (v >= 0 and math.isfinite(v)):
            raise InputError(f"bad volume {row[1]!r}", path=p, line=line, field="volume",
                             expected="a number >= 0")
        code = row[0].strip()
        if code in vols:
            raise InputError(f"duplicate destination {code!r}", path=p, line=line,
                             field="destination", expected="each destination once")
        vols[code] = v
    if not vols or sum(vols.values()) <= 0:
        raise InputError("no volume", path=p, field="volume",
                         expected="at least one destination with volume > 0")
    return vols

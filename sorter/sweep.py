"""Capacity sweeps: many scenario variants x seeded replications, on a process pool or Dask.

A sweep takes one scenario TOML document, a set of fixed overrides and a set of varied
keys (``vary``: dotted keys into the document, each with a list of values). Every point
of the Cartesian product of the varied values is simulated once per seed; each run keeps
one flat row of the planner's KPIs (:func:`sorter.sim.compute_kpis`), the varied values,
the point number and the seed. :meth:`SweepResult.summary` gives per point the mean and
the 95% confidence interval over the seeds (Student's t).

Keys walk the TOML document as written: ``wave.0.rate_per_hour`` (or ``wave[0].rate_per_hour``)
is the first ``[[wave]]`` table's rate, ``loop.speed_mps`` the single ``[loop]``'s speed,
``loop.1.speed_mps`` the second loop of a hub, ``loop.induct.2.max_rate_per_hour`` the
third induct. Every point's document is validated up front, in the calling process, with
:func:`sorter.sim.parse_scenario`: an unknown key or a bad value fails before the first
simulation, never at point 57 of a two-hour sweep. Workers receive the parsed, validated
:class:`~sorter.sim.Scenario` objects (so they need no access to the scenario's files).

Backends (the library never starts a cluster behind the user's back):

* ``client=None`` and ``n_workers=1``: serial, in this process;
* ``client=None`` (default): a local :class:`concurrent.futures.ProcessPoolExecutor`
  with ``n_workers`` processes (default ``os.cpu_count()``);
* ``client=<dask.distributed.Client>``: the user's Dask cluster (``client.map`` and
  ``as_completed``). Dask is imported only on this path (``pip install '.[dask]'`` from a checkout).

Every run is deterministic per seed, so the rows are the same whichever backend ran them.
"""
from __future__ import annotations

import copy
import difflib
import functools
import itertools
import json
import math
import numbers
import os
import re
import signal
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from sorter.errors import InputError

__all__ = ["capacity_sweep", "SweepResult", "check_grid_size", "MAX_POINTS", "MAX_RUNS",
           "parse_key", "set_key", "parse_values",
           "t_quantile", "mean_ci", "kpi_row", "request_stop", "KPI_COLUMNS", "SUMMARY_KPIS"]

#: Scalar KPIs of :func:`sorter.sim.compute_kpis` kept in every sweep row (others are added
#: as ``rejected_<reason>``, ``wave<i>_sorted_per_hour`` and, for hubs, ``loop_<name>_...``).
KPI_COLUMNS = (
    "nameplate_per_hour", "offered", "inducted", "sorted", "rejected", "on_loop_at_end",
    "queued_at_end", "offered_per_hour", "inducted_per_hour", "sorted_per_hour",
    "peak_15min_sorted_per_hour", "sorted_to_destination", "sorted_to_overflow",
    "first_pass_sort_pct", "first_pass_to_destination_pct", "recirculation_pct", "recirculations", "laps_per_parcel",
    "reject_pct", "induct_blocking_pct", "induct_starvation_pct", "carrier_fill_pct",
    "induct_wait_s_p95", "induct_to_chute_s_p50", "induct_to_chute_s_p95",
    "induct_to_chute_s_p99", "chute_full_events_per_hour", "container_changes_per_hour",
    "chute_not_open_pct_mean", "chute_not_open_pct_max", "shift_hours",
)
#: KPIs shown in the terminal table (mean, and ± CI where it matters).
SUMMARY_KPIS = ("sorted_per_hour", "offered_per_hour", "recirculation_pct",
                "induct_to_chute_s_p95", "induct_blocking_pct", "reject_pct")

_KEY_FORM = "a dotted key into the scenario TOML, e.g. wave.0.rate_per_hour or loop.speed_mps"


# --------------------------------------------------------------------------- dotted keys

def parse_key(key: str) -> tuple:
    """Split a dotted key into its segments; list indices become ints.

    ``wave.0.rate_per_hour`` and ``wave[0].rate_per_hour`` both give
    ``("wave", 0, "rate_per_hour")``.

    Parameters
    ----------
    key : str

    Returns
    -------
    tuple of str and int

    Raises
    ------
    InputError
        For an empty key or an empty segment.

    Examples
    --------
    >>> parse_key("wave[1].rate_per_hour")
    ('wave', 1, 'rate_per_hour')
    >>> parse_key("loop.induct.0.max_rate_per_hour")
    ('loop', 'induct', 0, 'max_rate_per_hour')
    """
    if not isinstance(key, str) or not key.strip():
        raise InputError(f"bad key {key!r}", field="vary", expected=_KEY_FORM)
    text = re.sub(r"\[(\d+)\]", r".\1", key.strip())
    parts = text.split(".")
    if any(not p for p in parts):
        raise InputError(f"bad key {key!r}: empty segment", field=key, expected=_KEY_FORM)
    return tuple(int(p) if p.isdigit() else p for p in parts)


def _key_str(parts) -> str:
    return ".".join(str(p) for p in parts)


def _doc_paths(doc, prefix=()) -> list:
    """Every table and value path of a document, as dotted strings."""
    out = []
    items = doc.items() if isinstance(doc, Mapping) else enumerate(doc)
    for k, v in items:
        p = prefix + (k,)
        out.append(_key_str(p))
        if isinstance(v, Mapping) or (isinstance(v, list) and v and
                                      all(isinstance(x, Mapping) for x in v)):
            out.extend(_doc_paths(v, p))
    return out


def _nearest(key, doc, n=4) -> str:
    paths = _doc_paths(doc)
    try:
        parent, _, last = _key_str(parse_key(key)).rpartition(".")
    except InputError:
        parent, last = "", ""
    # a shortened last segment (wave.1.rate): first the keys beside it that contain it (by
    # spelling alone wave.1.name and wave.0.name are nearer and crowd out rate_per_hour)
    near = [p for p in paths if last and p.rpartition(".")[0] == parent
            and last in p.rpartition(".")[2]][:n]
    near += [p for p in difflib.get_close_matches(key, paths, n=n, cutoff=0.5)
             if p not in near][:n - len(near)]
    if not near:       # fall back to keys that share the last segment or the first
        last = key.split(".")[-1]
        near = [p for p in paths if p.split(".")[-1] == last][:n] or \
            [p for p in paths if p.split(".")[0] == key.split(".")[0]][:n]
    return ", ".join(near) if near else "(none close; tables: " + ", ".join(map(str, doc)) + ")"


def _walk(doc, parts, key):
    """The container holding the last segment (raises InputError naming the key)."""
    cur = doc
    for depth, seg in enumerate(parts[:-1]):
        nxt = _child(cur, seg, parts, depth, doc, key)
        if not isinstance(nxt, (Mapping, list)):
            raise InputError(f"unknown key {key!r}: {_key_str(parts[:depth + 1])!r} is a value, "
                             "not a table", field=key,
                             expected="nearest valid keys: " + _nearest(key, doc))
        cur = nxt
    return cur


def _child(cur, seg, parts, depth, doc, key):
    here = _key_str(parts[:depth + 1])
    if isinstance(cur, list):
        if not isinstance(seg, int):
            raise InputError(f"unknown key {key!r}: {_key_str(parts[:depth])!r} is a list of "
                             f"{len(cur)} tables, index it with a number", field=key,
                             expected=f"e.g. {_key_str(parts[:depth] + (0,) + parts[depth:])}")
        if not 0 <= seg < len(cur):
            raise InputError(f"unknown key {key!r}: index {seg} out of range", field=key,
                             expected=f"an index from 0 to {len(cur) - 1} for "
                                      f"{_key_str(parts[:depth])!r}")
        return cur[seg]
    if isinstance(seg, int):
        raise InputError(f"unknown key {key!r}: {_key_str(parts[:depth])!r} is a single table, "
                         "not a list", field=key,
                         expected=f"e.g. {_key_str(parts[:depth] + parts[depth + 1:])}")
    if seg not in cur:
        raise InputError(f"unknown key {key!r}: no {here!r} in the scenario", field=key,
                         expected="nearest valid keys: " + _nearest(key, doc))
    return cur[seg]


def set_key(doc: dict, key, value) -> dict:
    """Set ``key`` (dotted, see :func:`parse_key`) to ``value`` in ``doc``, in place.

    Every segment but the last must exist; the last may be new (the scenario parser then
    decides whether it is a valid key).

    Parameters
    ----------
    doc : dict
        A scenario TOML document (``tomllib`` output).
    key : str or tuple
    value : object

    Returns
    -------
    dict
        ``doc``.

    Raises
    ------
    InputError
        Naming the key and the nearest valid keys of the document.

    Examples
    --------
    >>> d = {"wave": [{"rate_per_hour": 6000}]}
    >>> set_key(d, "wave.0.rate_per_hour", 9000)["wave"][0]["rate_per_hour"]
    9000
    """
    parts = parse_key(key) if isinstance(key, str) else tuple(key)
    key_s = key if isinstance(key, str) else _key_str(parts)
    parent = _walk(doc, parts, key_s)
    last = parts[-1]
    if isinstance(parent, list):
        _child(parent, last, parts, len(parts) - 1, doc, key_s)
    elif isinstance(last, int):
        _child(parent, last, parts, len(parts) - 1, doc, key_s)
    parent[last] = value
    return doc


def _has_key(doc, parts) -> bool:
    cur = doc
    for seg in parts:
        if isinstance(cur, list) and isinstance(seg, int) and 0 <= seg < len(cur):
            cur = cur[seg]
        elif isinstance(cur, Mapping) and seg in cur:
            cur = cur[seg]
        else:
            return False
    return True


# --------------------------------------------------------------------------- CLI values

def _split_top(text: str) -> list:
    """Split on commas outside brackets, braces and quotes."""
    out, depth, quote, buf = [], 0, None, []
    for ch in text:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    out.append("".join(buf))
    return [s.strip() for s in out]


def _one_value(tok: str):
    try:
        return tomllib.loads(f"v = {tok}")["v"]
    except RecursionError:              # '[[[[...' thousands deep
        raise InputError(f"a value nested too deeply ({len(tok)} characters)", field="--vary",
                         expected="a number, a word, a string or a flat TOML list") from None
    except tomllib.TOMLDecodeError:
        return tok                      # a bare word: a string (mix=zipf,uniform)
    except ValueError:                  # a number past int()'s limit (4,301+ digits)
        raise InputError(f"a number of {len(tok)} characters", field="--vary",
                         expected="a number of at most 4,300 digits") from None


def parse_values(text: str, *, key="--vary") -> list:
    """Parse a CLI value list: ``8000,12000,16000``, ``8000:16000:2000`` (inclusive range),
    TOML values (``[3000, 3000]``, ``"zipf"``, ``true``) or bare words.

    Parameters
    ----------
    text : str
    key : str
        Named in errors.

    Returns
    -------
    list

    Raises
    ------
    InputError
        For an empty list or a bad range.

    Examples
    --------
    >>> parse_values("8000:12000:2000")
    [8000, 10000, 12000]
    >>> parse_values("2.0,2.5, zipf, [1, 2]")
    [2.0, 2.5, 'zipf', [1, 2]]
    """
    form = "V1,V2,... or START:STOP:STEP (TOML values or bare words)"
    if not isinstance(text, str) or not text.strip():
        raise InputError("no values", field=key, expected=form)
    m = re.fullmatch(r"\s*([-+0-9.eE_]+):([-+0-9.eE_]+):([-+0-9.eE_]+)\s*", text)
    if m:
        a, b, s = (_one_value(g) for g in m.groups())
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b, s)) \
                or s <= 0 or b < a or (b - a) / s > 100_000:
            raise InputError(f"bad range {text!r}", field=key,
                             expected="START:STOP:STEP with STEP > 0, STOP >= START and at most "
                                      "100,000 steps from START to STOP")
        n = int(math.floor((b - a) / s + 1e-9)) + 1
        vals = [a + i * s for i in range(n)]
        if all(isinstance(x, int) for x in (a, b, s)):
            return [int(v) for v in vals]
        return [round(v, 12) for v in vals]
    toks = _split_top(text)
    if any(not t for t in toks):
        raise InputError(f"empty value in {text!r}", field=key, expected=form)
    return [_one_value(t) for t in toks]


# --------------------------------------------------------------------------- statistics

def _t_cdf(t: float, df: int) -> float:
    """Student's t CDF for integer ``df`` (closed forms in theta = atan(t / sqrt(df)))."""
    th = math.atan(t / math.sqrt(df))
    c2 = math.cos(th) ** 2
    s = math.sin(th)
    if df % 2 == 1:
        total, term = 0.0, 1.0
        if df > 1:
            total = term = 1.0
            for k in range(1, (df - 3) // 2 + 1):       # 1 + 2/3 c2 + 2*4/(3*5) c2^2 + ...
                term *= c2 * (2 * k) / (2 * k + 1)
                total += term
            total *= s * math.cos(th)
        return 0.5 + (th + total) / math.pi
    total = term = 1.0
    for k in range(1, (df - 2) // 2 + 1):               # 1 + 1/2 c2 + 1*3/(2*4) c2^2 + ...
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return 0.5 + 0.5 * s * total


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t distribution with ``df`` degrees of freedom (integer).

    Parameters
    ----------
    p : float
        Probability in (0, 1).
    df : int
        Degrees of freedom, >= 1.

    Returns
    -------
    float

    Examples
    --------
    >>> round(t_quantile(0.975, 4), 4)
    2.7764
    """
    # numbers only (numpy's too): "0.9", True, inf or NaN df failed with a bare TypeError,
    # OverflowError or ValueError naming nothing, or (True) were taken as 1
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0 < p < 1:
        raise InputError(f"bad t quantile argument p={p!r}", field="p",
                         expected="a probability, 0 < p < 1")
    if (not isinstance(df, numbers.Real) or isinstance(df, bool) or not math.isfinite(df)
            or int(df) != df or df < 1):
        raise InputError(f"bad t quantile argument df={df!r}", field="df",
                         expected="an integer number of degrees of freedom >= 1")
    df = int(df)
    if p == 0.5:                                       # the median: 0, not a bisection's 5e-13
        return 0.0
    if df > 20000:                                     # normal limit is exact to ~1e-4 there
        df = 20000
    if p < 0.5:
        return -t_quantile(1 - p, df)
    return _t_quantile(float(p), df)


@functools.lru_cache(maxsize=256)
def _t_quantile(p: float, df: int) -> float:
    # a sweep asks the same (p, df) for every KPI of every point: bisect once (each CDF
    # evaluation is O(df), so hundreds of points x many seeds added up)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def mean_ci(values, level: float = 0.95) -> tuple:
    """Mean and half-width of the ``level`` confidence interval (Student's t).

    Parameters
    ----------
    values : sequence of float
    level : float

    Returns
    -------
    (mean, half_width)
        ``half_width`` is NaN for fewer than two values.

    Examples
    --------
    >>> m, h = mean_ci([10.0, 12.0, 14.0])
    >>> m, round(h, 3)
    (12.0, 4.968)
    """
    if not isinstance(level, numbers.Real) or isinstance(level, bool) or not 0 < level < 1:
        # (was: named the t quantile's 'p'; 0 and negative levels gave a zero or negative width)
        raise InputError(f"bad level {level!r}", field="level",
                         expected="a confidence level, 0 < level < 1 (e.g. 0.95)")
    form = "numbers (None or NaN for a run without a value)"
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InputError(f"bad values {type(values).__name__}", field="values",
                         expected="a sequence of " + form)
    xs = []
    for v in values:
        if v is None:
            continue
        if isinstance(v, (str, bytes, complex)) or not hasattr(v, "__float__"):
            raise InputError(f"bad value {v!r}", field="values", expected=form)
        try:
            x = float(v)
        except OverflowError:          # an int past the float range
            raise InputError(f"a number of {len(str(v))} digits", field="values",
                             expected="numbers within the float range (~1.8e308)") from None
        if not math.isnan(x):          # any NaN: numpy's float32 too (was: only Python floats)
            xs.append(x)
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    if not all(math.isfinite(x) for x in xs):
        return sum(xs) / n, math.nan   # (fsum raised ValueError for inf and -inf together)
    if all(x == xs[0] for x in xs):    # the same value in every run (a fixed KPI): itself, and
        return xs[0], (math.nan if n < 2 else 0.0)   # no width (was: 0.1 x 3 -> 0.1 + 1 ulp)
    # values near the float range: scaled by a power of two (exact), as their sum or their
    # squared deviations overflowed (OverflowError) from ~1e154
    big = max(abs(x) for x in xs)
    e = math.frexp(big)[1] if big > 2.0 ** 500 else 0
    if e:
        xs = [math.ldexp(x, -e) for x in xs]

    def back(v):         # times 2**e in two steps: past the float range inf, not OverflowError
        return v * 2.0 ** (e // 2) * 2.0 ** (e - e // 2) if e else v
    m = math.fsum(xs) / n
    if n < 2:
        return back(m), math.nan
    var = math.fsum((x - m) ** 2 for x in xs) / (n - 1)
    return back(m), back(t_quantile(0.5 + level / 2, n - 1) * math.sqrt(var / n))


# --------------------------------------------------------------------------- rows

def _slug(s) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", str(s)).strip("_") or "x"


def kpi_row(kpis: dict) -> dict:
    """The flat sweep row of one run's KPIs (see :data:`KPI_COLUMNS`)."""
    row = {k: kpis[k] for k in KPI_COLUMNS if k in kpis}
    for reason, n in kpis.get("rejects_by_reason", {}).items():
        row[f"rejected_{reason}"] = n
    for i, w in enumerate(kpis.get("per_wave", [])):
        row[f"wave{i}_sorted_per_hour"] = w["sorted_per_hour"]
    loops = kpis.get("loops", [])
    if len(loops) > 1:
        used = set()
        for i, lp in enumerate(loops):
            s = _slug(lp["name"])
            while s in used:        # "A-1" and "A_1" both slug to A_1: one would overwrite the other
                s = f"{s}_{i}"
            used.add(s)
            for k in ("sorted_per_hour", "recirculation_pct", "induct_blocking_pct",
                      "carrier_fill_pct"):
                row[f"loop_{s}_{k}"] = lp[k]
    return row


def _run_point(task):
    """Worker: simulate one (point, seed). Module level, so process pools can pickle it."""
    index, scenario, seed = task
    c0 = time.process_time()
    if hasattr(scenario, "settings"):            # a robot-floor point (sorter.floor_sweep)
        from sorter.floor_sweep import run_floor_point
        w0 = time.perf_counter()
        row = run_floor_point(scenario, seed)
        return index, row, (time.perf_counter() - w0, time.process_time() - c0)
    from sorter.sim import compute_kpis, simulate
    res = simulate(scenario, seed=seed)
    row = kpi_row(compute_kpis(res))
    return index, row, (res.wall_s, time.process_time() - c0)


# --------------------------------------------------------------------------- result

def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class SweepResult:
    """All replications of a sweep, in (point, seed) order, plus summaries and writers.

    Attributes
    ----------
    rows : list of dict
        One per run: ``point``, the varied keys (dotted names), ``seed``, then the KPIs.
    vary : dict
        Varied key -> its values, in the order given.
    points : list of dict
        Point number -> its varied values.
    seeds : list of int
    scenario : str
        The scenario's name; ``path`` its file (or None).
    backend : str
        ``serial``, ``processes`` or ``dask``.
    kind : str
        ``loop`` (a scenario on loop sorters, :func:`capacity_sweep`) or ``floor`` (a robot
        sorting floor, :func:`sorter.floor_sweep.floor_sweep`).
    wall_s : float
        Wall time of the runs (not of the up-front validation).
    run_wall_s, run_cpu_s : list of float
        Per run: the simulation's wall time, and the worker's CPU time for simulation plus KPIs.
    """

    rows: list
    vary: dict
    points: list
    seeds: list
    scenario: str = ""
    path: str | None = None
    backend: str = "serial"
    n_workers: int = 1
    wall_s: float = 0.0
    run_wall_s: list = field(default_factory=list)
    run_cpu_s: list = field(default_factory=list)
    overrides: dict = field(default_factory=dict)
    kind: str = "loop"

    def __len__(self):
        return len(self.rows)

    @property
    def keys(self) -> list:
        return list(self.vary)

    @property
    def kpi_names(self) -> list:
        skip = {"point", "seed", *self.vary}
        names = []
        for r in self.rows:
            for k in r:
                if k not in skip and k not in names:
                    names.append(k)
        return names

    def summary(self, level: float = 0.95) -> list:
        """Per point: the varied values, ``n_seeds``, and ``<kpi>_mean`` / ``<kpi>_ci95``
        (half-width of the confidence interval at ``level``; ``ci90``, ``ci97_5`` for other
        levels) for every numeric KPI: over the runs of the point with a value (not None);
        the CI is NaN with fewer than two such runs (``--seeds 1``), the mean too with none.

        Returns
        -------
        list of dict, one per point in point order.
        """
        by_point = {}
        for r in self.rows:
            by_point.setdefault(r["point"], []).append(r)
        # numeric KPIs, and those no run had a value for (a robot floor's wave no parcel
        # arrived in: null in every row): their mean and CI are NaN, not a missing column
        kpis = [k for k in self.kpi_names if any(_is_num(r.get(k)) for r in self.rows)
                or all(r.get(k) is None for r in self.rows)]
        mean_ci([], level)                     # a bad level named before any work
        # ci95, ci90; a level that is no whole percent keeps its digits: ci97_5, ci99_9
        # (was: rounded, so 0.995 and 0.999 were both "ci100")
        pct = level * 100
        suffix = (f"ci{round(pct):d}" if abs(pct - round(pct)) < 1e-9
                  else "ci" + f"{pct:.10g}".replace(".", "_"))
        out = []
        for p, vals in enumerate(self.points):
            rs = by_point.get(p, [])
            row = {"point": p, **vals, "n_seeds": len(rs)}
            for k in kpis:
                m, h = mean_ci([r.get(k) for r in rs], level)
                row[f"{k}_mean"] = m
                row[f"{k}_{suffix}"] = h
            out.append(row)
        return out

    # -- tables and files
    def _arrow(self, rows):
        import pyarrow as pa
        cols = []
        for r in rows:
            for k in r:
                if k not in cols:
                    cols.append(k)
        data = {}
        for k in cols:
            vals = [r.get(k) for r in rows]
            if any(isinstance(v, (list, dict)) for v in vals):
                vals = [None if v is None else json.dumps(v) for v in vals]
            elif any(isinstance(v, float) for v in vals) and all(
                    v is None or _is_num(v) for v in vals):
                vals = [None if v is None else float(v) for v in vals]
            elif len({type(v) for v in vals if v is not None}) > 1:
                vals = [None if v is None else str(v) for v in vals]
            if all(v is None for v in vals):
                # a KPI without a value in any row (null everywhere): a float column, as
                # where some rows have one, not Arrow's type-less `null`
                data[k] = pa.array(vals, type=pa.float64())
                continue
            data[k] = vals
        meta = {"sorter.sweep": json.dumps({"scenario": self.scenario, "path": self.path,
                                            "vary": self.vary, "seeds": self.seeds,
                                            "overrides": self.overrides})}
        return pa.table(data).replace_schema_metadata(meta)

    def table(self):
        """All replications as a :class:`pyarrow.Table` (list values as JSON text)."""
        return self._arrow(self.rows)

    def summary_table(self, level: float = 0.95):
        """:meth:`summary` as a :class:`pyarrow.Table`."""
        return self._arrow(self.summary(level))

    def write_parquet(self, path) -> Path:
        """Write all replications to a Parquet file; returns its path."""
        import pyarrow.parquet as pq

        from sorter.report import written_whole
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with written_whole(path, field="path") as tmp:     # whole or not at all
            pq.write_table(self.table(), tmp)
        return path

    def write_csv(self, path, *, summary: bool = True) -> Path:
        """Write the per-point summary (or, with ``summary=False``, every replication) as CSV."""
        import pyarrow.csv as pcsv

        from sorter.report import written_whole
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with written_whole(path, field="path") as tmp:     # whole or not at all
            pcsv.write_csv(self.summary_table() if summary else self.table(), tmp)
        return path

    def format_table(self) -> str:
        """One line per point: varied values, runs, mean sorted/h ± 95% CI, offered/h,
        recirculation % ± CI, p95 induct-to-chute, induct blocking %, rejects %."""
        summ = self.summary()
        rows = []
        if self.kind == "floor":
            supply = all("offered_per_hour_mean" in s for s in summ)     # an arrival rate
            names = list(self.vary) + ["runs", "sorted/h ± 95% CI", "per robot-h ± CI",
                                       "p95 ind→drop steps", "waiting %", "reject %"] + (
                ["offered/h", "p95 wait at induct steps", "starved %"] if supply else [])
            for s in summ:
                rows.append([_fmt(s[k]) for k in self.vary] + [
                    f"{s['n_seeds']}",
                    _pm(s['net_sorted_per_hour_mean'], s['net_sorted_per_hour_ci95'], ',.0f'),
                    _pm(s['net_sorted_per_robot_hour_mean'],
                        s['net_sorted_per_robot_hour_ci95'], '.1f'),
                    f"{s['induct_to_drop_p95_mean']:.0f}",
                    f"{100 * s['util_waiting_mean']:.1f}",
                    f"{s['reject_pct_mean']:.2f}"] + ([
                        # "-": a point of the sweep without an arrival rate (no offered load)
                        _num(s['offered_per_hour_mean'], ',.0f'),
                        _num(s['induct_wait_p95_mean'], '.0f'),
                        f"{100 * s['util_starved_mean']:.1f}"] if supply else []))
        else:
            names = list(self.vary) + ["runs", "sorted/h ± 95% CI", "offered/h", "recirc % ± CI",
                                       "p95 ind→chute s", "blocking %", "reject %"]
        for s in summ if self.kind != "floor" else ():
            rows.append([_fmt(s[k]) for k in self.vary] + [
                f"{s['n_seeds']}",
                _pm(s['sorted_per_hour_mean'], s['sorted_per_hour_ci95'], ',.0f'),
                f"{s['offered_per_hour_mean']:,.0f}",
                _pm(s['recirculation_pct_mean'], s['recirculation_pct_ci95'], '.2f'),
                f"{s['induct_to_chute_s_p95_mean']:.1f}",
                f"{s['induct_blocking_pct_mean']:.2f}",
                f"{s['reject_pct_mean']:.2f}"])
        # columns as wide as their widest cell (a two-digit CI must not shift the row)
        widths = [max([len(h)] + [len(r[j]) for r in rows]) for j, h in enumerate(names)]
        line = "  ".join(f"{h:>{w}}" for h, w in zip(names, widths))
        n_seeds = len(self.seeds)
        out = [f"sweep: {self.scenario}  ({len(self.points)} point{'s' if len(self.points) != 1 else ''}"
               f" x {n_seeds} seed{'s' if n_seeds != 1 else ''} = {len(self.rows)} "
               f"run{'s' if len(self.rows) != 1 else ''}, {self.backend}"
               + (f", {self.n_workers} worker{'s' if self.n_workers != 1 else ''}"
                  if self.backend != "serial" else "")
               + f", {self.wall_s:.1f} s)", "", line, "-" * len(line)]
        for r in rows:
            out.append("  ".join(f"{c:>{w}}" for c, w in zip(r, widths)))
        return "\n".join(out)

    def plot(self, path, *, kpi: str | None = None) -> Path:
        """PNG: ``kpi`` (mean, 95% CI band) against the first varied key, one line per value
        of the other varied keys; the offered load, dashed, for reference. Default ``kpi``:
        ``sorted_per_hour`` (loop), ``net_sorted_per_hour`` (robot floor)."""
        if kpi is None:
            kpi = "net_sorted_per_hour" if self.kind == "floor" else "sorted_per_hour"
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from sorter.report import plain_text     # names and values shown as written, not math
        summ = self.summary()
        if not isinstance(kpi, str) or not summ or f"{kpi}_mean" not in summ[0]:
            # (was: KeyError 'nope_mean' from deep inside the plotting)
            names = [k for k in self.kpi_names if summ and f"{k}_mean" in summ[0]]
            near = difflib.get_close_matches(str(kpi), names, n=4, cutoff=0.5)
            raise InputError(f"no numeric KPI {kpi!r} in this sweep", field="kpi",
                             expected="one of " + ", ".join(near or names or ["(no runs)"]))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = self.keys
        x_key = keys[0] if keys else None
        xs_all = [s[x_key] for s in summ] if x_key else [0] * len(summ)
        numeric_x = all(_is_num(v) for v in xs_all)
        cats = list(dict.fromkeys(_fmt(v) for v in xs_all))
        groups = {}
        for s in summ:
            g = tuple((k, _fmt(s[k])) for k in keys[1:])
            groups.setdefault(g, []).append(s)
        fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
        colors, markers = _SWEEP_COLOURS, "os^Dv<>p*h"    # colour-blind safe, and shapes too
        offered = {}
        for i, (g, ss) in enumerate(groups.items()):
            xv = [(s[x_key] if numeric_x else cats.index(_fmt(s[x_key]))) if x_key else 0 for s in ss]
            order = sorted(range(len(ss)), key=lambda j: xv[j])
            xv = [xv[j] for j in order]
            ss = [ss[j] for j in order]
            m = [s[f"{kpi}_mean"] for s in ss]
            h = [0.0 if math.isnan(s[f"{kpi}_ci95"]) else s[f"{kpi}_ci95"] for s in ss]
            c = colors[i % len(colors)]
            # in words with units ("loop speed 2.5 m/s"); the keys as given: the legend's title
            label = ", ".join(_value_label(k, ss[0][k]) for k, _ in g) or kpi.replace("_", " ")
            ax.plot(xv, m, "-", marker=markers[i % len(markers)], color=c, label=plain_text(label))
            ax.fill_between(xv, [a - b for a, b in zip(m, h)], [a + b for a, b in zip(m, h)],
                            color=c, alpha=0.2, linewidth=0)
            if kpi == "sorted_per_hour":
                offered[g] = (xv, [s["offered_per_hour_mean"] for s in ss], c, label)
        if offered:      # the offered load: one grey line when it does not depend on the group
            lines = list(offered.values())
            if all(o[0] == lines[0][0] and o[1] == lines[0][1] for o in lines):
                lines = [(lines[0][0], lines[0][1], "0.4", "")]
            for xv, ov, c, label in lines:
                ax.plot(xv, ov, "--", color=c, alpha=0.7, linewidth=1.2,
                        label=plain_text("offered load" + (f" ({label})" if label else "")))
        if not numeric_x:
            ax.set_xticks(range(len(cats)), [plain_text(c) for c in cats])
        ax.set_xlabel(plain_text(_axis_label(x_key) if x_key else ""))
        ax.set_ylabel(kpi.replace("_", " ") + ((" (parcels/h)" if self.kind == "floor" else
                                                " (items/h)") if kpi.endswith("per_hour") else ""))
        n = len(self.seeds)
        ax.set_title(plain_text(self.scenario) + (f": mean over {n} seeds, 95% CI bands" if n > 1
                                                  else ": one seed per point (no CI)"),
                     loc="left", fontsize=11)          # as every other plot's title
        ax.grid(alpha=0.3)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick))
        if numeric_x:
            xs = sorted(set(xs_all))
            if len(xs) <= 12:   # ticks at the values run (100, 200 ...), not between them
                ax.set_xticks(xs)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick))
        n_entries = len(ax.get_legend_handles_labels()[0])
        # the series are named in words; the legend's title gives their keys as given
        ltitle = plain_text(", ".join(keys[1:])) if len(keys) > 1 else None
        if n_entries > 4:      # many series: beside the axes, not over the curves
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                      title=ltitle, title_fontsize=8)
        else:
            ax.legend(fontsize=8, loc="best", title=ltitle, title_fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return path


#: Varied keys' last part -> (a planner's name, unit) for the sweep plot's axis and legend
#: (``wave.0.rate_per_hour`` read as "offered rate, wave 0, items/h"); keys not listed are
#: named from their last part, the unit from its suffix (:func:`_key_label`).
_KEY_NAMES = {
    "rate_per_hour": ("offered rate", "items/h"),
    "max_rate_per_hour": ("max rate", "items/h"),
    "speed_mps": ("loop speed", "m/s"),
    "length_m": ("loop length", "m"),
    "pitch_m": ("carrier pitch", "m"),
    "scanner_m": ("scanner position", "m"),
    "position_m": ("position", "m"),
    "n_chutes": ("chutes", ""),
    "n_overflow": ("overflow chutes", ""),
    "n_reject": ("reject chutes", ""),
    "n_inducts": ("inducts", ""),
    "n_destinations": ("destinations", ""),
    "capacity": ("container capacity", "parcels"),
    "induct_rate": ("induct rate", "items/h"),
    "change_time_s": ("container change time", "s"),
    "reaction_time_s": ("reaction time", "s"),
    "shift_hours": ("shift length", "h"),
    "interval_minutes": ("interval", "min"),
    "no_read_rate": ("no-read rate", ""),
    "not_sortable_rate": ("not-sortable rate", ""),
    "random_per_hour": ("random blockages", "per h"),
    # robot floors (sorter mapf's settings)
    "robots": ("robots", ""),
    "steps": ("steps", ""),
    "dwell_chute": ("dwell at a chute", "steps"),
    "dwell_induct": ("dwell at an induct", "steps"),
    "destinations": ("destinations", ""),
    "chute_capacity": ("chute capacity", "parcels"),
    "container_change_steps": ("container change", "steps"),
    "fault_rate": ("fault rate", "per robot-step"),
    "repair_steps": ("repair time", "steps"),
    "seconds_per_step": ("step length", "s"),
    "arrival_rate": ("arrival rate", "parcels/h"),
    "detour_horizon": ("detour horizon", "steps"),
    "max_recirculation": ("max re-routes", ""),
    "chutes_per_destination": ("chutes per destination", ""),
    "induct_choice": ("induct choice", ""),
}
_KEY_UNITS = (("_per_hour", "/h"), ("_mps", "m/s"), ("_minutes", "min"), ("_pct", "%"),
              ("_steps", "steps"), ("_m", "m"), ("_s", "s"), ("_h", "h"))


def _key_label(key) -> tuple[str, str]:
    """A varied key as a planner reads it: (name, unit), e.g. ``wave.0.rate_per_hour`` ->
    ("wave 0 offered rate", "items/h"), ``loop.1.speed_mps`` -> ("loop 1 speed", "m/s"),
    ``robots`` -> ("robots", "").

    Examples
    --------
    >>> _key_label("wave[1].rate_per_hour"), _key_label("blockages.duration_s")
    (('wave 1 offered rate', 'items/h'), ('duration', 's'))
    """
    parts = [p for p in re.split(r"[.\[\]]+", str(key)) if p]
    if not parts:
        return str(key), ""
    last = parts[-1]
    if last in _KEY_NAMES:
        name, unit = _KEY_NAMES[last]
    else:
        name, unit = last, ""
        for suffix, u in _KEY_UNITS:
            if last.endswith(suffix) and len(last) > len(suffix):
                name, unit = last[: -len(suffix)], u
                break
        name = name.replace("_", " ")
    where = [f"{a} {b}" for a, b in zip(parts[:-1], parts[1:-1]) if b.isdigit()]
    if where and name.split()[0] == where[-1].split()[0]:      # "loop 1 speed", not
        name = name.split(" ", 1)[1] if " " in name else ""     # "loop 1 loop speed"
    return " ".join(where + [name]).strip(), unit


def _axis_label(key) -> str:
    """The sweep plot's axis label for a varied key: name, unit and the key as given
    (``wave 0 offered rate, items/h (wave.0.rate_per_hour)``), so the picture reads in
    words and still matches the command."""
    name, unit = _key_label(key)
    text = name + (f", {unit}" if unit else "")
    return text if name == str(key) else f"{text} ({key})"


def _value_label(key, v) -> str:
    """A series' legend entry part: ``loop speed 2.5 m/s``, ``inducts 3``."""
    name, unit = _key_label(key)
    v = _tick(v) if _is_num(v) and not isinstance(v, bool) else _fmt(v)
    return f"{name} {v}" + (f" {unit}" if unit else "")


#: Okabe & Ito's colour-blind safe palette (its yellow last: faint on white), for the sweep
#: plot's series.
_SWEEP_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#000000",
                  "#F0E442"]


def _tick(v, _pos=None) -> str:
    """An axis tick: thousands separated (12,000 not 12000), small values as written (0.5)."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _num(v, spec) -> str:
    """``v`` formatted, or ``-`` for NaN (a mean over no runs with a value)."""
    return "-" if isinstance(v, float) and math.isnan(v) else format(v, spec)


def _pm(m, h, spec) -> str:
    if math.isnan(h):
        return format(m, spec)
    return f"{format(m, spec)} ± {format(h, spec)}"


# --------------------------------------------------------------------------- the sweep

def _load_doc(scenario, base_dir):
    if base_dir is not None and not isinstance(base_dir, (str, os.PathLike)):
        # (was: a bare TypeError from Path() naming no argument)
        raise InputError(f"bad base_dir {type(base_dir).__name__}", field="base_dir",
                         expected="a folder path (str or pathlib.Path), or None")
    if isinstance(scenario, Mapping):
        return copy.deepcopy(dict(scenario)), None, (Path(base_dir) if base_dir is not None
                                                      else Path("."))
    if isinstance(scenario, (str, os.PathLike)):
        path = Path(scenario)
        from sorter.plan import parse_toml, read_input_bytes
        try:
            # (not path.read_bytes(): a FIFO blocked forever, /dev/zero read until memory ran out)
            text = read_input_bytes(path, expected="a scenario TOML file").decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read: {exc}", path=path, expected="a UTF-8 TOML file") from None
        doc = parse_toml(text, path=path, expected="a scenario TOML")
        return doc, path, (Path(base_dir) if base_dir is not None else path.parent)
    raise InputError(f"bad scenario {type(scenario).__name__}", field="scenario",
                     expected="a scenario TOML path or a parsed TOML document (dict)")


def _check_vary(vary, doc, path):
    if not isinstance(vary, Mapping):
        raise InputError("vary must map keys to lists of values", field="vary",
                         expected="{'wave.0.rate_per_hour': [6000, 8000], ...}")
    out, seen = {}, {}
    for key, values in vary.items():
        parts = parse_key(key)
        norm = _key_str(parts)
        if norm in seen:
            raise InputError(f"key {key!r} given twice (also as {seen[norm]!r})", field=key,
                             expected="each key once")
        seen[norm] = key
        if parts == ("scenario", "seed"):
            raise InputError("vary the replications with seeds=, not scenario.seed", field=key,
                             expected="seeds=N or a list of seeds")
        if hasattr(values, "tolist") and not isinstance(values, (str, bytes)):
            values = values.tolist()      # a numpy array (np.arange(4000, 12001, 2000)): Python values
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            # say what was given (was: "no values" for a scalar, a set or a generator too)
            what = (f"no values for {key!r}" if isinstance(values, Sequence) and not values
                    else f"a {type(values).__name__} of values for {key!r} (no order: the "
                    "points would be numbered differently from run to run)"
                    if isinstance(values, (set, frozenset)) else
                    f"one value {values!r} for {key!r}, not a list"
                    if isinstance(values, (str, bytes, numbers.Number)) else
                    f"a {type(values).__name__} for {key!r}, not a list")
            raise InputError(what, field=key,
                             expected="a non-empty list (or tuple, range, numpy array) of "
                                      "values, e.g. [2.0, 2.5]; a value for every point goes "
                                      "in overrides=")
        try:
            _walk(doc, parts, key)        # intermediate tables exist
        except InputError as exc:
            raise _naming_scenario(exc, path) from None
        out[key] = [v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v
                    for v in values]      # numpy scalars as Python's
    return out


_MAX_SEED = 2**63 - 1         # seeds are an int64 column of sweep.parquet

# Grid limits, checked from the --vary list lengths before any point is built: every point is
# validated (and held) up front (~1 ms and ~25 kB each) and every run keeps a row of KPIs, so
# a typo such as ``--vary a=1000:20000:1 --vary b=1:3:0.001`` (38 million points) would spin
# for hours with no output and then run out of memory. Real sweeps are tens to hundreds of
# points x a few seeds; these bounds are ~100x that and still finish validating in seconds.
MAX_POINTS = 10_000
MAX_RUNS = 200_000           # points x seeds


def check_grid_size(sizes, n_seeds) -> None:
    """Refuse a grid of more than :data:`MAX_POINTS` points or :data:`MAX_RUNS` runs.

    Parameters
    ----------
    sizes : dict
        Varied key -> its number of values (the points are their product).
    n_seeds : int
        Replications per point.

    Raises
    ------
    ValueError
        :class:`~sorter.errors.InputError` naming the counts and the limit.
    """
    points = math.prod(sizes.values())
    what = " x ".join(f"{n:,} ({k})" for k, n in sizes.items())
    field = next(iter(sizes), "vary")
    if points > MAX_POINTS:
        raise InputError(f"the grid has {what} = {points:,} points", field=field,
                         expected=f"at most {MAX_POINTS:,} points (the product of the --vary "
                                  "lists; a typo in a START:STOP:STEP range? split a bigger "
                                  "study into several sweeps)")
    if points * n_seeds > MAX_RUNS:
        raise InputError(f"{points:,} points x {n_seeds:,} seeds = {points * n_seeds:,} runs",
                         field="seeds", expected=f"at most {MAX_RUNS:,} runs (points x seeds) "
                                                 "per sweep; fewer seeds or several sweeps")


def _plain_seeds(seeds):
    """``seeds`` with numpy's integers and arrays as Python's (``np.int64(3)``,
    ``np.arange(5)``, a list of numpy integers: were refused as "bad seed np.int64(0)")."""
    if hasattr(seeds, "tolist") and not isinstance(seeds, (str, bytes, bool)):
        seeds = seeds.tolist()                        # a numpy array or scalar
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        return int(seeds)
    if isinstance(seeds, Sequence) and not isinstance(seeds, (str, bytes)):
        return [int(s) if isinstance(s, numbers.Integral) and not isinstance(s, bool) else s
                for s in seeds]
    return seeds


def _n_seeds(seeds) -> int:
    """The number of replications ``seeds`` asks for (1 for a value :func:`_seed_list` refuses)."""
    seeds = _plain_seeds(seeds)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        return max(1, seeds)
    if isinstance(seeds, Sequence) and not isinstance(seeds, (str, bytes)):
        return max(1, len(seeds))
    return 1


def _seed_list(seeds, base):
    seeds = _plain_seeds(seeds)
    if isinstance(seeds, bool):
        seeds = None
    if isinstance(seeds, int):
        if seeds < 1:
            raise InputError(f"bad seeds {seeds!r}", field="seeds",
                             expected="a number of replications >= 1, or a list of seeds")
        if base + seeds - 1 > _MAX_SEED:     # the int64 `seed` column of sweep.parquet
            raise InputError(f"seeds {base} .. {base + seeds - 1} go past {_MAX_SEED:,}",
                             field="seeds", expected="the scenario's seed + replications - 1 at "
                                                     "most 2**63 - 1 (the int64 seed column)")
        return [base + i for i in range(seeds)]
    if isinstance(seeds, Sequence) and not isinstance(seeds, (str, bytes)) and seeds:
        out = []
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= _MAX_SEED:
                raise InputError(f"bad seed {s!r}", field="seeds",
                                 expected=f"integers from 0 to {_MAX_SEED:,} (2**63 - 1)")
            out.append(int(s))
        if len(set(out)) != len(out):
            raise InputError("duplicate seeds", field="seeds", expected="distinct seeds")
        return out
    raise InputError(f"bad seeds {seeds!r}", field="seeds",
                     expected="a number of replications >= 1, or a list of seeds")


def _drop_waves_after_shift(doc, settings):
    """A point that shortens the shift (``scenario.shift_hours``) drops the waves and scheduled
    blockages that would start after its end (arrivals stop at the shift's end anyway)."""
    from sorter.sim.scenario import _clock
    if not any(_is_shift_key(k) for k in settings):
        return
    head = doc.get("scenario", {})
    hours = head.get("shift_hours")
    if not _is_num(hours):
        return

    def start(item):
        if not isinstance(item, dict):
            return None
        if _is_num(item.get("start_h")):
            return item["start_h"]
        try:
            t0 = _clock(head.get("shift_start"), path=None, field="", start_h=0.0)
            return _clock(item.get("start"), path=None, field="", start_h=t0)
        except InputError:
            return None                        # malformed: validation names it

    waves = doc.get("wave")
    if isinstance(waves, list):
        kept = [w for w in waves if not ((s := start(w)) is not None and s >= hours)]
        if kept:                               # all gone: let validation say so
            doc["wave"] = kept
    sched = doc.get("blockages", {}).get("scheduled") if isinstance(doc.get("blockages"),
                                                                     dict) else None
    if isinstance(sched, list):
        doc["blockages"]["scheduled"] = [b for b in sched
                                         if not ((s := start(b)) is not None and s >= hours)]


def _check_varied_waves_run(doc, keys, points, overrides) -> None:
    """A varied wave key must matter at some point: a shift shortened by ``--set`` /
    ``--vary scenario.shift_hours`` drops the waves that start after its end, and a key of a
    wave dropped at every point would give points that differ in nothing but their label."""
    wave_keys = {}
    for k in keys:
        parts = parse_key(k)
        if len(parts) > 2 and parts[0] == "wave" and isinstance(parts[1], int):
            wave_keys[k] = parts[1]
    if not wave_keys or not any(_is_shift_key(k) for k in [*keys, *overrides]):
        return
    kept_at = []                           # per point: original indices of the waves kept
    for p in points:
        d = copy.deepcopy(doc)
        for k, v in p.items():
            set_key(d, k, v)
        waves = d.get("wave")
        ids = [id(w) for w in waves] if isinstance(waves, list) else []
        _drop_waves_after_shift(d, [*p, *overrides])
        kept = {id(w) for w in d.get("wave", [])} if isinstance(d.get("wave"), list) else set()
        kept_at.append({i for i, w in enumerate(ids) if w in kept})
    for k, i in wave_keys.items():
        if not any(i in kept for kept in kept_at):
            hours = sorted({_fmt(p.get("scenario.shift_hours", doc.get("scenario", {}).get(
                "shift_hours"))) for p in points})
            raise InputError(f"wave {i} starts after the shift's end ({', '.join(hours)} h) at "
                             f"every point, so {k!r} changes nothing", field=k,
                             expected="a wave that starts before the shift ends (a longer "
                                      "scenario.shift_hours), or no --vary of its keys")


def _is_shift_key(key) -> bool:
    try:
        return parse_key(key) == ("scenario", "shift_hours")
    except InputError:
        return False


def _point_scenario(doc, settings, path, base, index=None, overrides=()):
    from sorter.sim import parse_scenario
    d = copy.deepcopy(doc)
    for key, value in settings.items():
        set_key(d, key, value)
    _drop_waves_after_shift(d, [*settings, *overrides])    # a fixed override shortens it too
    try:
        return parse_scenario(d, path=path, base_dir=base)
    except InputError as exc:
        # a new key the scenario does not know: name it with the document's nearest keys
        # (a key it knows but the file does not set, given a bad value, is a bad value)
        for key in settings:
            parts = parse_key(key)
            try:
                same = exc.field is not None and parse_key(exc.field) == parts
            except InputError:
                same = False
            if same and not _has_key(doc, parts) and "unknown key" in str(exc):
                raise InputError(f"unknown key {key!r}", path=path, field=key,
                                 expected="nearest valid keys: " + _nearest(key, doc)) from None
        if not _is_varied(exc.field, settings):    # the file's own value: name its line
            exc = _with_file_line(exc, path)
        if not settings:
            raise exc from None
        what = ", ".join(f"{k}={_fmt(v)}" for k, v in settings.items())
        where = f"point {index} ({what})" if index is not None else what
        err = InputError(f"{exc} [at {where}]")
        err.path, err.line, err.field, err.expected = exc.path, exc.line, exc.field, exc.expected
        raise err from None


def _is_varied(field, vary) -> bool:
    """Whether an error's field (``wave[1].rate_per_hour``) is one of the varied keys."""
    if not field:
        return False
    try:
        parts = parse_key(field)
        return any(parse_key(k) == parts for k in vary)
    except InputError:
        return False


def _naming_scenario(exc, path):
    """A key error of :func:`set_key` (no file: it walks a parsed document) naming the
    scenario file whose tables the key was looked up in, as the other key errors do."""
    if path is None or exc.path is not None:
        return exc
    return exc.relocated(path=path)


def _with_file_line(exc, path):
    """An error of the scenario file itself (no override, no varied value in it): with the
    line of its key, as ``sorter run`` names it."""
    if path is None or exc.line is not None or not exc.field or exc.path != str(path):
        return exc
    from sorter.sim.scenario import _field_line
    try:
        line = _field_line(Path(path).read_bytes().decode("utf-8-sig"), exc.field)
    except (OSError, UnicodeDecodeError):
        return exc
    if line is None:
        return exc
    return exc.relocated(path=path, line=line)


def capacity_sweep(scenario, vary, *, seeds=5, overrides=None, base_dir=None, client=None,
                   n_workers=None, progress=False) -> SweepResult:
    """Simulate every combination of ``vary`` x ``seeds`` and collect the KPIs.

    Parameters
    ----------
    scenario : path or dict
        A scenario TOML path, or an already parsed TOML document (then relative file names
        in it resolve against ``base_dir``, default the working directory).
    vary : dict
        Dotted key -> list of values (see :func:`parse_key`); the points are the
        Cartesian product, in the order given (the last key varies fastest).
    seeds : int or list of int
        Replications per point: ``N`` means seeds ``s, s+1, ..., s+N-1`` where ``s`` is the
        scenario's own seed; or an explicit list. The same seeds are used at every point
        (common random numbers: differences between points are not seed noise).
    overrides : dict, optional
        Dotted key -> one value, applied to every point before ``vary`` (e.g. a shorter
        ``scenario.shift_hours``). A key is either overridden or varied, not both.
    base_dir : path, optional
        Directory that relative file names resolve against (default: the scenario's).
    client : dask.distributed.Client, optional
        Run on this Dask cluster. The library never starts one itself.
    n_workers : int, optional
        Local processes when ``client`` is None (default ``os.cpu_count()``); ``1`` runs
        serially in this process.
    progress : bool
        A tqdm progress bar over the runs, on stderr.

    Returns
    -------
    SweepResult
        ``rows`` (one per run, in point then seed order), ``summary()`` (mean and 95% CI
        per point), ``table()``, ``write_parquet``, ``write_csv``, ``plot``.

    Raises
    ------
    ValueError
        :class:`~sorter.errors.InputError`, before any simulation, for an unknown key
        (naming it and the nearest valid keys), a value the scenario rejects (naming the
        point), bad seeds or workers.

    Examples
    --------
    >>> from sorter.resources import seed_path
    >>> res = capacity_sweep(seed_path("scenarios/small.toml"),
    ...                      {"wave.0.rate_per_hour": [4000, 8000]}, seeds=2,
    ...                      overrides={"scenario.shift_hours": 0.1}, n_workers=1)
    >>> len(res.rows), [p["wave.0.rate_per_hour"] for p in res.points]
    (4, [4000, 8000])
    """
    doc, path, base = _load_doc(scenario, base_dir)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise InputError("overrides must map keys to values", field="overrides",
                         expected="{'scenario.shift_hours': 0.25}")
    overrides = dict(overrides or {})
    fixed = {}
    for key, value in overrides.items():
        try:
            set_key(doc, key, value)
        except InputError as exc:
            raise _naming_scenario(exc, path) from None
        norm = _key_str(parse_key(key))
        if norm in fixed:        # two spellings of one key: one value would win silently
            raise InputError(f"override {key!r} given twice (also as {fixed[norm]!r})",
                             field=key, expected="each key once")
        fixed[norm] = key
    vary = _check_vary(vary, doc, path)
    for key in vary:             # varied and fixed at once: the fixed value would be dropped
        norm = _key_str(parse_key(key))
        if norm in fixed:
            raise InputError(f"{key!r} is both varied and fixed (overrides / --set "
                             f"{fixed[norm]})", field=key,
                             expected="a key either varied (--vary) or fixed (--set), not both")
    check_backend(client, n_workers)
    check_grid_size({k: len(v) for k, v in vary.items()}, _n_seeds(seeds))
    base_sc = None
    try:                                   # a bad fixed override fails here, once
        base_sc = _point_scenario(doc, {}, path, base, overrides=overrides)
    except InputError as exc:
        # a value every point sets (a template's rate_per_hour left out, or a placeholder) is
        # never simulated as written: the points' own checks below judge it
        if not _is_varied(exc.field, vary):
            if not overrides:
                raise _with_file_line(exc, path) from None
            what = ", ".join(f"{k}={_fmt(v)}" for k, v in overrides.items())
            err = InputError(f"{exc} [with overrides {what}]")
            err.path, err.line, err.field, err.expected = (exc.path, exc.line, exc.field,
                                                           exc.expected)
            raise err from None

    # validate every point up front: keys first (cheap, clear), then each point's values
    keys = list(vary)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(vary[k] for k in keys))]
    for key in keys:
        parts = parse_key(key)
        if not _has_key(doc, parts):
            _point_scenario(doc, {key: vary[key][0]}, path, base, overrides=overrides)
    scenarios = [_point_scenario(doc, p, path, base, i, overrides) for i, p in enumerate(points)]
    _check_varied_waves_run(doc, keys, points, overrides)
    if base_sc is None:
        base_sc = scenarios[0]
    seed_list = _seed_list(seeds, int(base_sc.seed))

    return run_points(scenarios, points, seed_list, client=client, n_workers=n_workers,
                      progress=progress, vary=vary, scenario=base_sc.name,
                      path=None if path is None else str(path), overrides=overrides)


def max_workers() -> int:
    """Local worker processes a sweep may start: 4 per core, at least 32. Each holds its own
    interpreter, NumPy and simulation (~100-200 MB): ``--workers 1000`` (a typo for 10) on a
    2-core machine started 200 processes, enough heavier runs to exhaust memory."""
    return max(32, 4 * (os.cpu_count() or 1))


def check_backend(client, n_workers) -> None:
    """A sweep's backend arguments: a Dask client (or None) and local worker processes."""
    if n_workers is not None and (isinstance(n_workers, bool)
                                  or not isinstance(n_workers, numbers.Integral)
                                  or n_workers < 1):     # numpy's integers too (were refused)
        raise InputError(f"bad n_workers {n_workers!r}", field="n_workers",
                         expected="an integer >= 1")
    if n_workers is not None and client is None and n_workers > max_workers():
        raise InputError(f"{n_workers:,} worker processes", field="n_workers",
                         expected=f"at most {max_workers()} (4 per core, at least 32: more "
                                  "processes than cores only add memory)")
    if client is not None and not (hasattr(client, "map") and hasattr(client, "gather")):
        raise InputError(f"bad client {type(client).__name__}", field="client",
                         expected="a dask.distributed.Client (or None for local processes)")


def run_points(runs, points, seed_list, *, client, n_workers, progress, **result) -> SweepResult:
    """Run every ``runs[i]`` (a validated scenario or floor point) once per seed on the
    chosen backend and gather the rows, in point then seed order. ``result``: the other
    fields of the :class:`SweepResult` (vary, scenario, path, overrides, kind)."""
    tasks = [(i * len(seed_list) + j, sc, s) for i, sc in enumerate(runs)
             for j, s in enumerate(seed_list)]
    results = [None] * len(tasks)
    walls = [(0.0, 0.0)] * len(tasks)          # (simulate wall s, run CPU s) per run
    from tqdm import tqdm
    bar = tqdm(total=len(tasks), disable=not progress, unit="run", desc="sweep", leave=False)
    t0 = time.perf_counter()
    if client is not None:
        backend = "dask"
        workers = _run_dask(client, tasks, results, walls, bar, points, seed_list)
    else:
        workers = min(int(n_workers or os.cpu_count() or 1), len(tasks))
        if workers <= 1:
            backend = "serial"
            for t in tasks:
                _collect(_guard(t, points, seed_list), results, walls, bar)
        else:
            backend = "processes"
            _run_pool(workers, tasks, results, walls, bar, points, seed_list)
    wall = time.perf_counter() - t0
    bar.close()

    rows = []
    for i, p in enumerate(points):
        for j, s in enumerate(seed_list):
            rows.append({"point": i, **p, "seed": s, **results[i * len(seed_list) + j]})
    return SweepResult(rows=rows, points=points, seeds=seed_list, backend=backend,
                       n_workers=workers, wall_s=wall, run_wall_s=[w for w, _ in walls],
                       run_cpu_s=[c for _, c in walls], **result)


def _collect(out, results, walls, bar):
    idx, row, timing = out
    results[idx] = row
    walls[idx] = timing
    bar.update(1)


def _where(idx, points, seed_list) -> str:
    p = points[idx // len(seed_list)]
    return ("point " + str(idx // len(seed_list)) + " (" +
            ", ".join(f"{k}={_fmt(v)}" for k, v in p.items()) + f"), seed {seed_list[idx % len(seed_list)]}")


def _guard(task, points, seed_list):
    try:
        return _run_point(task)
    except Exception as exc:
        exc.add_note(f"sorter sweep: while running {_where(task[0], points, seed_list)}")
        raise


_STOP = threading.Event()       # request_stop() was called while a local pool or Dask ran
_POOL = threading.Event()       # a local process pool (or a Dask sweep's wait) is running


def request_stop() -> None:
    """Stop a running sweep; for a signal handler (``sorter sweep`` installs it for SIGINT
    and SIGTERM).

    While a local process pool (or a Dask cluster) runs the sweep, the request is noted and
    the loop stops at its next check (within a quarter of a second) with
    :class:`KeyboardInterrupt`: raised from the handler at any point, it could leave a lock
    of the pool's queues held and the exit then hung for ever (or, inside a Dask client's
    wait, log a spurious error). Otherwise (serial) it raises :class:`KeyboardInterrupt` at once.
    """
    if _POOL.is_set():
        _STOP.set()
    else:
        raise KeyboardInterrupt


def _worker_init(parent):
    """A pool worker ignores SIGINT and SIGTERM (Ctrl-C and ``kill`` reach the whole process
    group: the parent stops the sweep and then its workers, which dying on their own would
    only turn the interrupt into a broken pool) and, on Linux, dies with its parent (a
    ``kill -9`` of the sweep leaves no orphans behind)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):        # pragma: no cover - not Linux
        return
    if os.getppid() != parent:               # the parent died before the line above
        os._exit(1)


def _run_pool(workers, tasks, results, walls, bar, points, seed_list):
    from concurrent.futures import ProcessPoolExecutor, as_completed
    ex = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                             initargs=(os.getpid(),))
    _STOP.clear()
    _POOL.set()
    try:
        futs = {ex.submit(_run_point, t): t[0] for t in tasks}
        pending = set(futs)
        while pending:
            try:                     # a quarter of a second at a time, to see request_stop()
                for f in as_completed(pending, timeout=0.25):
                    if _STOP.is_set():
                        break
                    pending.discard(f)
                    try:
                        _collect(f.result(), results, walls, bar)
                    except Exception as exc:
                        exc.add_note("sorter sweep: while running "
                                     f"{_where(futs[f], points, seed_list)}")
                        raise
            except TimeoutError:
                pass
            if _STOP.is_set():       # request_stop(): stop here, where no lock is held
                raise KeyboardInterrupt
    except BaseException as exc:
        procs = list((getattr(ex, "_processes", None) or {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        for proc in procs:     # runs in flight would keep going (minutes each) after we stop
            if proc.is_alive():
                proc.kill()
        if _STOP.is_set() and not isinstance(exc, KeyboardInterrupt):
            raise KeyboardInterrupt from None      # asked to stop: whatever broke meanwhile
        raise
    finally:
        _POOL.clear()
        _STOP.clear()
    ex.shutdown(wait=True)


def _dask_workers(client) -> int:
    try:
        return sum(w.get("nthreads", 1) for w in
                   client.scheduler_info().get("workers", {}).values()) or 1
    except Exception:                   # a client-like object without scheduler_info
        return 1


#: A Dask cluster may go this long without a single worker (none yet at the start, or all of
#: them gone part-way) before the sweep stops with an error: a nanny restarts a killed worker
#: within seconds, but a worker that could not run the tasks (no ``sorter`` in its environment)
#: exits for good, and Dask then waits for ever. Raise it for clusters that scale up from zero.
DASK_NO_WORKERS_S = 60.0


def _dask_check_workers(client, wait_s):
    """The cluster has a worker (waiting up to ``wait_s`` for the first) and every worker
    imports ``sorter``: a task sent to a worker without it does not fail, the worker exits."""
    t_end = time.monotonic() + wait_s
    while True:                      # in slices: a stop request (Ctrl-C) is seen within 1 s
        try:
            client.wait_for_workers(1, timeout=1.0)
            break
        except TimeoutError:         # dask.distributed.TimeoutError is the builtin one
            if _STOP.is_set():
                raise KeyboardInterrupt from None
            if time.monotonic() >= t_end:
                raise InputError(f"no Dask worker connected to the scheduler "
                                 f"{client.scheduler.address} in {wait_s:g} s", field="client",
                                 expected="workers started with `dask worker ADDRESS` in an "
                                          "environment with this package installed") from None

    def probe():    # nested, so pickled by value: a worker without sorter can unpickle it
        import importlib
        try:            # what a task unpickles: the run function, a scenario, a floor point
            for name in ("sorter.sweep", "sorter.sim", "sorter.floor_sweep"):
                importlib.import_module(name)
            return None, importlib.import_module("sorter.sweep").source_fingerprint()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}", None
    answers = client.run(probe, on_error="return")
    bad = {w: a[0] if isinstance(a, tuple) else f"{type(a).__name__}: {a}"
           for w, a in answers.items() if not isinstance(a, tuple) or a[0] is not None}
    if bad:
        w, e = next(iter(bad.items()))
        raise InputError(f"{len(bad)} of the Dask cluster's workers cannot import sorter "
                         f"({w}: {e})", field="client",
                         expected="this package installed on every worker: pip install "
                                  "'.[dask]' from a checkout of sorter, in the environment "
                                  "that runs `dask worker`")
    mine = source_fingerprint()
    other = {w: a[1] for w, a in answers.items() if a[1] != mine}
    if other:
        w, f = next(iter(other.items()))
        raise InputError(f"{len(other)} of the Dask cluster's workers run other sorter code than "
                         f"this client ({w}: source {f[:12]}, here {mine[:12]}): their results "
                         "would not be this version's", field="client",
                         expected="the same sorter on every worker as here: reinstall it in the "
                                  "workers' environment and restart them")


@functools.lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """SHA-256 of this installed package's Python sources (relative paths and bytes): a Dask
    worker whose ``sorter`` differs (another version, or an edited checkout) is refused
    instead of mixing its results with this version's. Read once per process (~ms)."""
    import hashlib
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        if f.relative_to(root).parts[0] == "seeds":     # scripts shipped with an install only
            continue
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _run_dask(client, tasks, results, walls, bar, points, seed_list):
    try:
        from distributed import as_completed
    except ImportError:                 # pragma: no cover - a Client implies distributed
        raise InputError("a Dask client needs dask[distributed]", field="client",
                         expected="pip install '.[dask]' (from a checkout of sorter)") from None
    wait_s = DASK_NO_WORKERS_S
    futs = []
    _STOP.clear()
    _POOL.set()         # request_stop() only notes the request: a KeyboardInterrupt raised
    try:                # inside the client's sync() can be lost there (or log a spurious error)
        _dask_check_workers(client, wait_s)
        workers = _dask_workers(client)     # after the wait: a cluster scaling up from zero
        if _STOP.is_set():
            raise KeyboardInterrupt
        futs = client.map(_run_point, tasks, pure=False)
        idx_of = {f.key: t[0] for f, t in zip(futs, tasks)}
        ac = as_completed(futs)
        seen_worker = time.monotonic()
        next_look = seen_worker + 1.0

        def look():
            """A stop request, or no worker left (and none back): Dask would wait for ever."""
            nonlocal seen_worker, next_look
            if _STOP.is_set():
                raise KeyboardInterrupt
            now = time.monotonic()
            if now >= next_look:
                next_look = now + 1.0
                if client.nthreads():
                    seen_worker = now
                elif now - seen_worker > wait_s:
                    done = sum(r is not None for r in results)
                    raise InputError(f"every Dask worker left part-way and none came back in "
                                     f"{wait_s:g} s ({done} of {len(tasks)} runs done; worker "
                                     "killed? see the workers' logs)", field="client",
                                     expected="workers that stay up (a nanny restarts a killed "
                                              "one)")

        def result(f):
            """The run's result, or its own error noting which run. A run reported done
            whose worker then died is computed again: waited for in slices, watching for a
            stop and for workers (was: for ever, with no worker left)."""
            while True:
                try:
                    return f.result(timeout=1.0)
                except Exception as exc:      # (distributed's TimeoutError is the builtin one)
                    if not isinstance(exc, TimeoutError) or f.status == "error":
                        exc.add_note(f"sorter sweep: while running "
                                     f"{_where(idx_of[f.key], points, seed_list)}")
                        raise
                look()

        while not ac.is_empty():
            for f in ac.next_batch(block=False):
                _collect(result(f), results, walls, bar)
            look()
            time.sleep(0.1)
    except BaseException:
        client.cancel(futs)
        raise
    finally:
        _POOL.clear()
        _STOP.clear()
    return workers

"""Parcel arrivals for a shift: times, inducts, destinations, scan outcomes, all pre-drawn.

Every random number of a run is drawn here (and in :func:`draw_floor_events`) from one
``numpy.random.Generator`` made from the scenario's seed, in a fixed order, and handed to
the compiled simulation as arrays: the same seed gives the same parcels and events, bit
for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sorter.sim.scenario import Scenario

__all__ = ["Parcels", "draw_parcels", "FloorEvents", "draw_floor_events", "served_codes"]


@dataclass
class Parcels:
    """The parcels offered during a shift, in arrival order (parcel id = position).

    Attributes
    ----------
    arrival_s : ndarray of float64
        Arrival time at the induct (s from the shift's start).
    loop : ndarray of int16
        Loop (index into ``scenario.loops``) the parcel is fed to.
    induct : ndarray of int16
        Induct (index into that loop's inducts).
    dest : ndarray of int32
        Index into ``codes`` of the parcel's true destination; -1 = a code no plan knows.
    no_read : ndarray of bool
        The scanner cannot read the label.
    sortable : ndarray of bool
        False for parcels the sorter cannot carry (oversize, ...).
    wave : ndarray of int16
        Wave (index into ``scenario.waves``) the parcel arrived in.
    codes : list of str
        Destination codes.
    """

    arrival_s: np.ndarray
    loop: np.ndarray
    induct: np.ndarray
    dest: np.ndarray
    no_read: np.ndarray
    sortable: np.ndarray
    wave: np.ndarray
    codes: list

    def __len__(self):
        return len(self.arrival_s)


def served_codes(scenario: Scenario) -> tuple[list, list]:
    """Destination codes of all plans (plan order, first seen first) and, per loop, the
    set of codes its plans serve."""
    order, seen = [], set()
    per_loop = []
    for lp in scenario.loops:
        plans = [lp.plan] + [w.plans[lp.name] for w in scenario.waves if lp.name in w.plans]
        s = set()
        for p in plans:
            for code in p.routes:
                s.add(code)
                if code not in seen:
                    seen.add(code)
                    order.append(code)
        per_loop.append(s)
    return order, per_loop


def _candidates(codes, per_loop) -> tuple:
    """Per code: the loops (indices, in loop order, padded with -1) whose code set holds it,
    and how many."""
    cand = np.full((len(codes), max(len(per_loop), 1)), -1, dtype=np.int64)
    n_cand = np.zeros(len(codes), dtype=np.int64)
    for i, code in enumerate(codes):
        for j, s in enumerate(per_loop):
            if code in s:
                cand[i, n_cand[i]] = j
                n_cand[i] += 1
    return cand, n_cand


def _plans_in_force(scenario: Scenario) -> list:
    """Per wave: the plan of every loop in force during it (the latest wave plan for the loop
    up to this wave, else the loop's own plan), as a tuple of plans."""
    current = [lp.plan for lp in scenario.loops]
    out = []
    for w in scenario.waves:
        for j, lp in enumerate(scenario.loops):
            if lp.name in w.plans:
                current[j] = w.plans[lp.name]
        out.append(tuple(current))
    return out


def draw_parcels(scenario: Scenario, rng: np.random.Generator) -> Parcels:
    """Draw the shift's parcels.

    Parameters
    ----------
    scenario : Scenario
    rng : numpy.random.Generator
        Made from the seed with ``numpy.random.default_rng(seed)``.

    Returns
    -------
    Parcels
        In arrival order; only parcels arriving before the shift's end.

    Examples
    --------
    >>> import numpy as np
    >>> from sorter.sim.scenario import load_scenario, default_scenario_path
    >>> sc = load_scenario(default_scenario_path())
    >>> p = draw_parcels(sc, np.random.default_rng(1))
    >>> bool(np.all(np.diff(p.arrival_s) >= 0))
    True
    """
    universe, per_loop = served_codes(scenario)
    codes, probs = scenario.destinations.weights(universe)
    n_loops = len(scenario.loops)
    # candidate loops per destination code: the loops whose plans serve it at some time ...
    cand, n_cand = _candidates(codes, per_loop)
    # ... and, per wave, those whose plan in force in the wave serves it (a destination a
    # later wave's plan adds to a loop is not sent there before: it would be unknown there)
    by_config = {}
    wave_cand = []
    for config in _plans_in_force(scenario):
        key = tuple(map(id, config))         # (plans are not hashable; the scenario holds them)
        if key not in by_config:
            wc, wn = _candidates(codes, [set(p.routes) for p in config])
            none = wn == 0                   # served by no loop now: where it is served later
            wc[none], wn[none] = cand[none], n_cand[none]
            by_config[key] = (wc, wn)
        wave_cand.append(by_config[key])
    induct_cum = []
    for lp in scenario.loops:
        w = np.array([ind.max_rate_per_hour for ind in lp.layout.inducts], dtype=float)
        induct_cum.append(np.cumsum(w) / w.sum())
    shift_s = scenario.shift_s
    out = {k: [] for k in ("t", "loop", "induct", "dest", "no_read", "sortable", "wave")}
    for wi, w in enumerate(scenario.waves):
        a = min(w.start_s, shift_s)
        b = max(a, min(w.end_s, shift_s))
        dur = b - a
        dock = None
        if w.induct_rates_per_hour is not None:
            counts = rng.poisson(np.asarray(w.induct_rates_per_hour) * dur / 3600.0)
            t = rng.uniform(a, b, int(counts.sum())) if dur > 0 else np.zeros(0)
            fixed_induct = np.repeat(np.arange(len(counts)), counts)
        elif w.arrivals == "poisson":
            n = int(rng.poisson(w.rate_per_hour * dur / 3600.0))
            t = rng.uniform(a, b, n)
            fixed_induct = None
        else:  # batched: trucks arrive as a Poisson stream, each unloads a batch at a steady rate
            n_trucks = int(rng.poisson(w.rate_per_hour / w.batch_size * dur / 3600.0))
            truck_t = np.sort(rng.uniform(a, b, n_trucks))
            truck_dock = rng.integers(0, 1 << 30, n_trucks)
            offs = np.arange(w.batch_size) * (3600.0 / w.unload_per_hour)
            t = (truck_t[:, None] + offs[None, :]).ravel()
            dock = np.repeat(truck_dock, w.batch_size)
            keep = t < shift_s
            t, dock = t[keep], dock[keep]
            fixed_induct = None
        n = len(t)
        dest = rng.choice(len(codes), size=n, p=probs).astype(np.int64) if n else np.zeros(0, np.int64)
        unknown = rng.random(n) < scenario.destinations.unknown_rate
        r = rng.integers(0, 1 << 30, n)
        wc, wn = wave_cand[wi]
        nc = wn[dest]
        loop = np.where(nc > 0, wc[dest, r % np.maximum(nc, 1)], r % n_loops)
        loop = np.where(unknown, r % n_loops, loop)
        dest = np.where(unknown, -1, dest)
        u = rng.random(n)
        if fixed_induct is not None:
            induct = fixed_induct
        elif dock is not None:
            n_ind = np.array([len(lp.layout.inducts) for lp in scenario.loops])
            induct = dock % n_ind[loop]
        else:
            induct = np.zeros(n, dtype=np.int64)
            for j in range(n_loops):
                m = loop == j
                induct[m] = np.minimum(np.searchsorted(induct_cum[j], u[m], side="right"),
                                       len(induct_cum[j]) - 1)
        no_read = rng.random(n) < scenario.scan.no_read_rate
        sortable = rng.random(n) >= scenario.scan.not_sortable_rate
        out["t"].append(t)
        out["loop"].append(loop)
        out["induct"].append(induct)
        out["dest"].append(dest)
        out["no_read"].append(no_read)
        out["sortable"].append(sortable)
        out["wave"].append(np.full(n, wi))
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}
    order = np.argsort(cat["t"], kind="stable")
    return Parcels(
        arrival_s=cat["t"][order].astype(np.float64),
        loop=cat["loop"][order].astype(np.int16),
        induct=cat["induct"][order].astype(np.int16),
        dest=cat["dest"][order].astype(np.int32),
        no_read=cat["no_read"][order].astype(bool),
        sortable=cat["sortable"][order].astype(bool),
        wave=cat["wave"][order].astype(np.int16),
        codes=list(codes),
    )


@dataclass
class FloorEvents:
    """Pre-drawn floor randomness of one loop: container-change times (used in the order
    containers fill) and blockages (chute index, start and end in seconds)."""

    reaction_s: np.ndarray
    change_s: np.ndarray
    block_chute: np.ndarray
    block_start_s: np.ndarray
    block_end_s: np.ndarray


def draw_floor_events(scenario: Scenario, loop_index: int, n_parcels: int,
                      rng: np.random.Generator) -> FloorEvents:
    """Draw one loop's container-change times and blockages.

    A container fills at most once per parcel, so ``n_parcels + chutes`` draws of each
    time are always enough. Random blockages hit destination and overflow chutes, as a
    Poisson stream of ``random_per_hour``; scheduled ones come from the scenario.
    """
    lp = scenario.loops[loop_index]
    table = lp.layout.chutes
    n_pool = n_parcels + len(table) + 16
    cont = scenario.containers
    reaction = cont.reaction_time_s.draw(rng, n_pool)
    change = cont.change_time_s.draw(rng, n_pool)
    bl = scenario.blockages
    candidates = np.array([i for i, c in enumerate(table) if c.kind != "reject"], dtype=np.int64)
    n_b = int(rng.poisson(bl.random_per_hour * scenario.shift_hours)) if len(candidates) else 0
    b_start = rng.uniform(0, scenario.shift_s, n_b)
    b_chute = candidates[rng.integers(0, len(candidates), n_b)] if n_b else np.zeros(0, np.int64)
    b_dur = bl.duration_s.draw(rng, n_b)
    s_chute, s_start, s_dur = [], [], []
    for b in bl.scheduled:
        if b.loop != lp.name:
            continue
        s_chute.append(table.index(b.chute))
        s_start.append(b.start_s)
        s_dur.append(float(b.duration_s.draw(rng, 1)[0]))
    chute = np.concatenate([b_chute, np.array(s_chute, dtype=np.int64)])
    start = np.concatenate([b_start, np.array(s_start, dtype=float)])
    end = start + np.concatenate([b_dur, np.array(s_dur, dtype=float)])
    return FloorEvents(reaction, change, chute.astype(np.int32), start, end)

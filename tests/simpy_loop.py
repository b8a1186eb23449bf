"""An independent SimPy model of a loop sorter shift: the oracle of ``sorter.sim.loop``.

Nothing here shares the compiled simulation's mechanics. Time is continuous and carriers
have exact positions (carrier ``c`` is at ``(c * pitch + speed * t) mod length``, with no
carrier slots or ticks); every parcel is a SimPy process; inducts wait for the next carrier
to pass their exact position; chute events are processes; the chute engine is driven through
its public Python API (``Sorter.assign`` / ``discharged`` / ``set_state`` /
``container_changed``), one call per scan. Parcels, container-change times and blockages
come from the same pre-drawn arrays (``sorter.sim.arrivals``), so both models see the same
inputs for a seed; they may still diverge event by event (ties, sub-tick timing), which is
why the tests compare them statistically.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import simpy

from sorter.engine import Sorter
from sorter.sim.arrivals import draw_floor_events, draw_parcels
from sorter.sim.scenario import Scenario

__all__ = ["simulate_simpy", "SimpyResult"]


@dataclass
class SimpyResult:
    offered: int
    inducted: int
    sorted: int
    rejected: int
    on_loop_at_end: int
    recirculated: int          # parcels that left the loop after at least one recirculation
    induct_blocked_passes: int  # carrier passes an induct with a parcel ready found occupied
    wall_s: float
    shift_hours: float

    @property
    def sorted_per_hour(self) -> float:
        return self.sorted / self.shift_hours

    @property
    def recirculation_pct(self) -> float:
        done = self.sorted + self.rejected
        return 100.0 * self.recirculated / done if done else 0.0


class _Loop:
    def __init__(self, env, scenario, li, parcels, rng, stats):
        self.env = env
        spec = scenario.loops[li]
        layout = spec.layout
        self.L = layout.length_m
        self.v = layout.speed_mps
        self.N = layout.n_carriers
        self.p = self.L / self.N
        self.dt = self.p / self.v
        self.stats = stats
        base = scenario.plan_for(spec, spec.plan)
        self.sorter = Sorter(base, layout.chutes)
        self.table = layout.chutes
        self.kind = {c.id: c.kind for c in self.table}
        self.pos = {c.id: float(c.position) for c in self.table}
        self.capacity = {c.id: c.capacity for c in self.table}
        self.scanner = float(layout.scanner_m)
        self.occupied = [None] * self.N
        self.blocked = {c.id: 0 for c in self.table}
        self.changing = {c.id: False for c in self.table}
        self.pending = {c.id: False for c in self.table}
        ids = np.flatnonzero(parcels.loop == li)
        self.ids = ids
        floor = draw_floor_events(scenario, li, len(ids), rng)
        self.react = iter(floor.reaction_s.tolist())
        self.change = iter(floor.change_s.tolist())
        codes = parcels.codes
        for w in scenario.waves:
            if spec.name in w.plans:
                env.process(self._switch(w.start_s, scenario.plan_for(spec, w.plans[spec.name])))
        labels = self.sorter.chute_ids
        for k, s, e in zip(floor.block_chute.tolist(), floor.block_start_s.tolist(),
                           floor.block_end_s.tolist()):
            env.process(self._blockage(labels[k], s, e))
        for i, ind in enumerate(layout.inducts):
            mine = ids[parcels.induct[ids] == i]
            queue = simpy.Store(env)
            items = []
            for pid in mine.tolist():
                d = int(parcels.dest[pid])
                code = None if parcels.no_read[pid] else (codes[d] if d >= 0 else "?unknown?")
                items.append((float(parcels.arrival_s[pid]), code, bool(parcels.sortable[pid])))
            env.process(self._source(items, queue))
            env.process(self._induct(float(ind.position_m), 3600.0 / ind.max_rate_per_hour, queue))

    # -- processes -------------------------------------------------------------------
    def _switch(self, at, plan):
        if at > 0:
            yield self.env.timeout(at)
        self.sorter.switch_plan(plan)

    def _source(self, items, queue):
        env = self.env
        for t, code, sortable in items:
            if t > env.now:
                yield env.timeout(t - env.now)
            yield queue.put((code, sortable))
            self.stats["offered"] += 1

    def _next_pass(self, x, t):
        """Index j and time of the first carrier pass at position x at or after time t."""
        off = (x % self.p) / self.v
        j = max(0, math.ceil((t - off) / self.dt - 1e-9))
        return j, off + j * self.dt

    def _carrier_at(self, x, j):
        return (int(x // self.p) - j) % self.N

    def _induct(self, x, gap, queue):
        env = self.env
        next_free = 0.0
        while True:
            code, sortable = yield queue.get()
            if env.now < next_free:
                yield env.timeout(next_free - env.now)
            j, t = self._next_pass(x, env.now)
            while True:
                if t > env.now:
                    yield env.timeout(t - env.now)
                c = self._carrier_at(x, j)
                if self.occupied[c] is None:
                    break
                self.stats["blocked"] += 1
                j += 1
                t = (x % self.p) / self.v + j * self.dt
            parcel = {"code": code, "sortable": sortable, "rec": 0, "carrier": c}
            self.occupied[c] = parcel
            self.stats["inducted"] += 1
            self.stats["on_loop"] += 1
            # one cycle from when it was ready; a wait for the carrier window (< one
            # carrier interval) does not lengthen it, a longer wait restarts it
            next_free = next_free + gap if env.now - next_free < self.dt else env.now + gap
            env.process(self._ride(parcel, x))

    def _dist(self, a, b):
        d = (b - a) % self.L
        return d if d > 1e-9 else self.L

    def _ride(self, parcel, x):
        env = self.env
        # to the scanner: a parcel placed AT the scanner is read at once (not a lap later)
        ahead = (self.scanner - x) % self.L
        if ahead > 1e-9:
            yield env.timeout(ahead / self.v)
        while True:
            dec = self.sorter.assign(parcel["code"], parcel["rec"], parcel["sortable"])
            chute = dec.chute
            yield env.timeout(self._dist(self.scanner, self.pos[chute]) / self.v)
            if self.kind[chute] == "reject" or self.sorter.chute_state(chute) == "open":
                was_full = self.sorter.chute_state(chute) == "full"
                self.sorter.discharged(chute)
                if not self.pending[chute] and (
                        (self.sorter.chute_state(chute) == "full" and not was_full)
                        or (self.kind[chute] == "reject"
                            and self.sorter.chute_fill(chute) >= self.capacity[chute])):
                    self.pending[chute] = True
                    env.process(self._container_change(chute))
                self.occupied[parcel["carrier"]] = None
                self.stats["on_loop"] -= 1
                if dec.reason in ("ok", "overflow"):
                    self.stats["sorted"] += 1
                else:
                    self.stats["rejected"] += 1
                if parcel["rec"] > 0:
                    self.stats["recirculated"] += 1
                return
            parcel["rec"] += 1
            yield env.timeout(self._dist(self.pos[chute], self.scanner) / self.v)

    def _restate(self, chute):
        if self.blocked[chute] > 0:
            self.sorter.set_state(chute, "blocked")
        elif self.changing[chute]:
            self.sorter.set_state(chute, "container_change")
        elif self.sorter.chute_fill(chute) >= self.capacity[chute]:
            self.sorter.set_state(chute, "full")
        else:
            self.sorter.set_state(chute, "open")

    def _container_change(self, chute):
        yield self.env.timeout(next(self.react))
        self.changing[chute] = True
        self._restate(chute)
        yield self.env.timeout(next(self.change))
        self.changing[chute] = False
        self.pending[chute] = False
        self.sorter.container_changed(chute)
        self._restate(chute)

    def _blockage(self, chute, start, end):
        yield self.env.timeout(start)
        self.blocked[chute] += 1
        self._restate(chute)
        yield self.env.timeout(max(end - start, 0.0))
        self.blocked[chute] -= 1
        self._restate(chute)


def simulate_simpy(scenario: Scenario, seed: int) -> SimpyResult:
    """Run the SimPy model of ``scenario`` with ``seed`` (same draws as ``simulate``)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    parcels = draw_parcels(scenario, rng)
    env = simpy.Environment()
    stats = {"offered": 0, "inducted": 0, "sorted": 0, "rejected": 0, "on_loop": 0,
             "recirculated": 0, "blocked": 0}
    for li in range(len(scenario.loops)):
        _Loop(env, scenario, li, parcels, rng, stats)
    env.run(until=scenario.shift_s)
    return SimpyResult(offered=len(parcels), inducted=stats["inducted"], sorted=stats["sorted"],
                       rejected=stats["rejected"], on_loop_at_end=stats["on_loop"],
                       recirculated=stats["recirculated"], induct_blocked_passes=stats["blocked"],
                       wall_s=time.perf_counter() - t0, shift_hours=scenario.shift_hours)

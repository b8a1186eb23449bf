"""A small, slow, plain-Python loop sorter: the QA oracle of ``sorter.sim.simulate`` (session 13).

Written from the documented rules (README "Shift simulation on a loop sorter", the
``sorter.sim.kpis`` definitions, the ``Sorter`` decision rules and the tick order in the
docstring of ``ext/sorter/_loop.pyx``), not from the compiled loop. Nothing here uses a
wheel, a heap, carrier arithmetic or the chute engine:

* the loop is a list ``slot -> parcel`` that is rotated one slot per tick (the carrier at
  slot ``s`` moves to slot ``s + 1``);
* a parcel scanned at tick ``T`` reaches its chute the first tick after ``T`` that it is at
  the chute's slot (a chute at the scanner's own slot: a lap later);
* chute states are derived on demand from (blockages, container-change phase), decisions
  are a plain function of the plan and those states;
* chute events are a list searched every tick.

Every random number is the simulator's own pre-drawn input (``draw_parcels`` and
``draw_floor_events`` from ``default_rng(seed)`` in the same order), so for one seed both
models see the same parcels, container times and blockages and must agree parcel by parcel.

Tie-break (the docs leave it open): when two containers fill in the same tick, the
reaction/change draws go to them latest-scanned parcel first. Only runs with random
container times can see it.
"""
from __future__ import annotations

import math

import numpy as np

from sorter.sim.arrivals import draw_floor_events, draw_parcels

__all__ = ["run_naive", "naive_kpis", "REASONS"]

REASONS = ["ok", "overflow", "no_read", "unknown_destination", "max_recirculation",
           "no_chute_available", "not_sortable", "late"]
REJECTS = REASONS[2:]


def _slot(layout, x):
    n = layout.n_carriers
    return int(math.floor(x * n / layout.length_m)) % n


def _ticks(seconds, dt):
    """Whole ticks for a duration, rounded up, at least one."""
    return max(1, int(math.ceil(seconds / dt)))


class _Chute:
    def __init__(self, c, slot):
        self.id = str(c.id)
        self.kind = c.kind
        self.cap = int(c.capacity)
        self.slot = slot
        self.fill = 0
        self.phase = 0          # 0 normal, 1 full waiting for the operator, 2 changing
        self.blocked = 0
        self.discharged = 0
        self.state_ticks = {"open": 0, "full": 0, "container_change": 0, "blocked": 0}

    @property
    def state(self):
        if self.blocked > 0:
            return "blocked"
        if self.phase == 2:
            return "container_change"
        if self.phase == 1 or self.fill >= self.cap:
            return "full"
        return "open"


class _P:
    __slots__ = ("i", "arrival", "induct", "code", "no_read", "sortable", "induct_tick",
                 "discharge_tick", "chute", "reason", "first_reason", "recirc", "scan_tick",
                 "heading")

    def __init__(self, i, arrival, induct, code, no_read, sortable):
        self.i, self.arrival, self.induct = i, arrival, induct
        self.code, self.no_read, self.sortable = code, no_read, sortable
        self.induct_tick = self.discharge_tick = -1
        self.chute = None
        self.reason = self.first_reason = None
        self.recirc = 0
        self.scan_tick = -1
        self.heading = False


def _decide(plan, chutes, cursor, p):
    """(chute id, reason) by the documented rules, in their order."""
    if not p.sortable:
        reason = "not_sortable"
    elif p.no_read:
        reason = "no_read"
    elif p.recirc > plan.max_recirculation:
        reason = "max_recirculation"
    elif p.code is None or p.code not in plan.routes:
        reason = "unknown_destination"
    else:
        route = [str(c) for c in plan.routes[p.code]]
        is_open = [chutes[c].state == "open" for c in route]
        pick = None
        if plan.strategy == "fill_first":
            pick = next((c for c, o in zip(route, is_open) if o), None)
        elif plan.strategy == "round_robin":
            start = cursor.get(p.code, 0)
            for k in range(len(route)):
                j = (start + k) % len(route)
                if is_open[j]:
                    pick = route[j]
                    cursor[p.code] = (j + 1) % len(route)
                    break
        else:
            cands = [(chutes[c].fill, j, c) for j, (c, o) in enumerate(zip(route, is_open)) if o]
            pick = min(cands)[2] if cands else None
        if pick is not None:
            return pick, "ok"
        pick = next((str(c) for c in plan.overflow if chutes[str(c)].state == "open"), None)
        if pick is not None:
            return pick, "overflow"
        reason = "no_chute_available"
    own = str(plan.reject[reason])
    if chutes[own].state == "open":
        return own, reason
    for r in REJECTS:
        if chutes[str(plan.reject[r])].state == "open":
            return str(plan.reject[r]), reason
    return own, reason


def _run_loop(sc, li, parcels, ids, floor):
    spec = sc.loops[li]
    lay = spec.layout
    N = lay.n_carriers
    dt = lay.tick_s
    n_ticks = int(round(sc.shift_s / dt))
    chutes = {}
    for c in lay.chutes:
        chutes[str(c.id)] = _Chute(c, _slot(lay, c.position))
    order_ids = [str(c.id) for c in lay.chutes]
    scan_slot = _slot(lay, lay.scanner_m)
    ind_slot = [_slot(lay, i.position_m) for i in lay.inducts]
    gap = [3600.0 / i.max_rate_per_hour for i in lay.inducts]
    codes = parcels.codes
    ps = []
    for j, g in enumerate(ids):
        d = int(parcels.dest[g])
        ps.append(_P(j, float(parcels.arrival_s[g]), int(parcels.induct[g]),
                     codes[d] if d >= 0 else None, bool(parcels.no_read[g]),
                     bool(parcels.sortable[g])))
    queues = [sorted([p for p in ps if p.induct == i], key=lambda p: (p.arrival, p.i))
              for i in range(len(lay.inducts))]
    head = [0] * len(queues)
    ready = [0.0] * len(queues)
    # plans: the base, switched at the wave starts (round-robin cursors restart)
    plan = sc.plan_for(spec, spec.plan)
    switches = []
    for w in sc.waves:
        if spec.name in w.plans:
            # in force from the wave's start: the first tick at or after it
            tk = next(t for t in range(n_ticks + 2) if t * dt >= w.start_s - 1e-9)
            if tk <= 0:
                plan = sc.plan_for(spec, w.plans[spec.name])
            elif tk < n_ticks:
                switches.append((tk, sc.plan_for(spec, w.plans[spec.name])))
    cursor = {}
    # events: [tick, seq, chute id, kind]
    events = []
    seq = [0]

    def push(tick, cid, kind):
        events.append((tick, seq[0], cid, kind))
        seq[0] += 1
    for b in range(len(floor.block_chute)):
        cid = order_ids[int(floor.block_chute[b])]
        s = min(math.ceil(floor.block_start_s[b] / dt), n_ticks + 1)
        e = min(max(math.ceil(floor.block_end_s[b] / dt), s + 1), n_ticks + 2)
        push(s, cid, "block_start")
        push(e, cid, "block_end")
    react = list(floor.reaction_s)
    change = list(floor.change_s)
    n_full = [0]
    n_cc = [0]
    loop = [None] * N                      # slot -> parcel
    stats = {"inducted": 0, "sorted": 0, "rejected": 0, "recirculations": 0,
             "loaded_ticks": 0, "full_events": 0, "container_changes": 0,
             "blocked": [0] * len(queues), "starved": [0] * len(queues)}
    for t in range(n_ticks):
        while switches and switches[0][0] <= t:
            plan = switches.pop(0)[1]
            cursor = {}
        now = t * dt
        if t > 0:
            loop = [loop[-1]] + loop[:-1]     # every carrier one slot on
        due = sorted(e for e in events if e[0] <= t)
        events = [e for e in events if e[0] > t]
        for _, _, cid, kind in due:
            ch = chutes[cid]
            if kind == "cc_start":
                ch.phase = 2
                push(t + _ticks(change[n_cc[0] % len(change)], dt), cid, "cc_end")
                n_cc[0] += 1
            elif kind == "cc_end":
                ch.phase = 0
                ch.fill = 0
                stats["container_changes"] += 1
            elif kind == "block_start":
                ch.blocked += 1
            elif ch.blocked > 0:
                ch.blocked -= 1
        # carriers at their chute (latest scanned first)
        arriving = [p for s, p in enumerate(loop) if p is not None and p.heading
                    and chutes[p.chute].slot == s and p.scan_tick < t]
        for p in sorted(arriving, key=lambda p: -p.scan_tick):
            ch = chutes[p.chute]
            if ch.kind == "reject" or ch.state == "open":
                ch.fill += 1
                ch.discharged += 1
                if ch.fill >= ch.cap and ch.phase == 0:
                    ch.phase = 1
                    stats["full_events"] += 1
                    push(t + _ticks(react[n_full[0] % len(react)], dt), ch.id, "cc_start")
                    n_full[0] += 1
                p.discharge_tick = t
                loop[loop.index(p)] = None
                stats["sorted" if p.reason in ("ok", "overflow") else "rejected"] += 1
            else:
                p.recirc += 1
                p.heading = False
                stats["recirculations"] += 1
        # inducts
        for i, q in enumerate(queues):
            if now < ready[i] - 1e-9:        # (ready times are float sums of cycles)
                continue
            if head[i] >= len(q) or q[head[i]].arrival > now:
                stats["starved"][i] += 1
                continue
            if loop[ind_slot[i]] is not None:
                stats["blocked"][i] += 1
                continue
            p = q[head[i]]
            head[i] += 1
            loop[ind_slot[i]] = p
            p.induct_tick = t
            stats["inducted"] += 1
            ready[i] = ready[i] + gap[i] if now - ready[i] < dt - 1e-9 else now + gap[i]
        # the scanner
        p = loop[scan_slot]
        if p is not None and not p.heading:
            p.chute, p.reason = _decide(plan, chutes, cursor, p)
            if p.first_reason is None:
                p.first_reason = p.reason
            p.heading = True
            p.scan_tick = t
        stats["loaded_ticks"] += sum(x is not None for x in loop)
        for ch in chutes.values():
            ch.state_ticks[ch.state] += 1
    stats["state_ticks"] = {cid: dict(ch.state_ticks) for cid, ch in chutes.items()}
    stats["discharged"] = {cid: ch.discharged for cid, ch in chutes.items()}
    stats["n_ticks"] = n_ticks
    stats["dt"] = dt
    stats["carriers"] = N
    stats["on_loop"] = sum(x is not None for x in loop)
    return ps, stats


def run_naive(sc, seed, parcels=None):
    """Run the scenario with the simulator's own random inputs for ``seed`` (or the
    given :class:`~sorter.sim.arrivals.Parcels`, drawn first all the same).

    Returns ``(rows, loops)``: ``rows`` one dict per parcel (global id order) with
    ``induct_t``, ``discharge_t`` (NaN if none), ``induct_tick``, ``discharge_tick``,
    ``chute`` ("" if never scanned), ``reason``, ``first_reason``, ``recirculations``,
    ``arrival_t``, ``status``; ``loops`` one stats dict per loop.
    """
    rng = np.random.default_rng(int(seed))
    drawn = draw_parcels(sc, rng)
    parcels = drawn if parcels is None else parcels
    rows = [None] * len(parcels)
    loops = []
    for li in range(len(sc.loops)):
        ids = np.flatnonzero(parcels.loop == li)
        floor = draw_floor_events(sc, li, len(ids), rng)
        ps, st = _run_loop(sc, li, parcels, ids, floor)
        dt = st["dt"]
        for g, p in zip(ids, ps):
            if p.discharge_tick >= 0:
                status = "sorted" if p.reason in ("ok", "overflow") else "rejected"
            else:
                status = "on_loop" if p.induct_tick >= 0 else "queued"
            rows[g] = {
                "arrival_t": p.arrival, "induct_tick": p.induct_tick,
                "discharge_tick": p.discharge_tick,
                "induct_t": p.induct_tick * dt if p.induct_tick >= 0 else math.nan,
                "discharge_t": p.discharge_tick * dt if p.discharge_tick >= 0 else math.nan,
                "chute": p.chute or "", "reason": p.reason or "",
                "first_reason": p.first_reason or "", "recirculations": p.recirc,
                "status": status, "loop": li,
            }
        loops.append(st)
    return rows, loops


def _pctl(x, q):
    """Linear interpolation between order statistics (NumPy's default), by hand."""
    x = sorted(x)
    if not x:
        return 0.0
    h = (len(x) - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(x) - 1)
    return x[lo] + (h - lo) * (x[hi] - x[lo])


def naive_kpis(sc, rows, loops):
    """The documented KPIs (``sorter.sim.kpis`` docstring) from the oracle's rows."""
    done = [r for r in rows if r["status"] in ("sorted", "rejected")]
    srt = [r for r in done if r["status"] == "sorted"]
    n_done = len(done)

    def pct(a, b):
        return 100.0 * a / b if b else 0.0
    induct_s = sum(st["n_ticks"] * st["dt"] * len(st["blocked"]) for st in loops)
    carrier_s = sum(st["n_ticks"] * st["dt"] * st["carriers"] for st in loops)
    shift_h = sc.shift_hours
    waits = [(r["induct_t"] if r["status"] != "queued" else sc.shift_s) - r["arrival_t"]
             for r in rows]
    ic = [r["discharge_t"] - r["induct_t"] for r in done]
    return {
        "offered": len(rows),
        "inducted": sum(r["status"] != "queued" for r in rows),
        "sorted": len(srt),
        "rejected": n_done - len(srt),
        "on_loop_at_end": sum(r["status"] == "on_loop" for r in rows),
        "sorted_to_destination": sum(r["reason"] == "ok" for r in srt),
        "sorted_to_overflow": sum(r["reason"] == "overflow" for r in srt),
        "rejects_by_reason": {x: sum(r["status"] == "rejected" and r["reason"] == x for r in rows)
                              for x in REJECTS},
        "first_pass_sort_pct": pct(sum(r["recirculations"] == 0 for r in srt), n_done),
        "first_pass_to_destination_pct": pct(sum(r["recirculations"] == 0 and r["reason"] == "ok"
                                                 for r in srt), n_done),
        "recirculation_pct": pct(sum(r["recirculations"] > 0 for r in done), n_done),
        "recirculations": sum(r["recirculations"] for r in rows),
        "laps_per_parcel": (sum(1 + r["recirculations"] for r in done) / n_done) if n_done else 0.0,
        "reject_pct": pct(n_done - len(srt), n_done),
        "induct_blocking_pct": pct(sum(sum(st["blocked"]) * st["dt"] for st in loops), induct_s),
        "induct_starvation_pct": pct(sum(sum(st["starved"]) * st["dt"] for st in loops), induct_s),
        "carrier_fill_pct": pct(sum(st["loaded_ticks"] * st["dt"] for st in loops), carrier_s),
        "induct_wait_s_p95": _pctl(waits, 95),
        "induct_to_chute_s_p50": _pctl(ic, 50),
        "induct_to_chute_s_p95": _pctl(ic, 95),
        "induct_to_chute_s_p99": _pctl(ic, 99),
        "chute_full_events_per_hour": sum(st["full_events"] for st in loops) / shift_h,
        "container_changes_per_hour": sum(st["container_changes"] for st in loops) / shift_h,
        "sorted_per_hour": len(srt) / shift_h,
    }

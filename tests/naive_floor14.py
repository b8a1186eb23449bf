"""A plain-Python bookkeeping model of the robot sorting floor: the QA oracle of
``sorter.agv.floor_sim.FloorSim`` (session 14).

Written from the documented rules (the module docstring of ``sorter/agv/floor_sim.py``, the
planner's dwell rules in ``sorter/agv/pibt.py``'s docstring, the README's robot floor
section), not from FloorSim's code. It sees a recorded run only:

* ``positions`` (steps + 1, robots) and the goal cell every robot had in every step;
* which robots the planner held (faulted) in each step and after each update, and which
  ones a rescue plan moved (they arrive only at the plan's end);
* the parcels loaded (destination code and no-read flag: FloorSim's own random draws) and,
  with an arrival rate, the parcels that arrived at each induct in each step;
* operator chute events (``set_chute_state``) between steps.

From these it re-derives, robot by robot and step by step:

* when a robot completes a goal: it stands on a cell of its goal station (a chute's drop
  cells, an induct's cells), stays ``dwell`` steps there (not counting steps it is held), and
  the goal is done; the next goal starts a new task even if it is the same cell;
* a loaded robot that completes its chute goal tips its parcel if the chute is open with room
  (several robots at one chute in one step: lowest robot index first), else it must be
  re-routed; chutes fill, close for ``container_change_steps`` and reopen;
* every routing decision, through ``tests/naive.py``'s :class:`NaiveSorter` (a parcel's
  re-route count is its recirculation), which the next step's goal must follow;
* every KPI of :meth:`FloorSim.kpis` that bookkeeping defines.

Nothing here calls FloorSim, the engine or the planner.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from naive import NaiveSorter

__all__ = ["Recording", "record_run", "naive_floor", "REASONS", "REJECTS"]

REASONS = ["ok", "overflow", "no_read", "unknown_destination", "max_recirculation",
           "no_chute_available", "not_sortable", "late"]
REJECTS = REASONS[2:]
UTIL = ("faulted", "dwelling", "carrying", "moving_empty", "waiting", "starved")


class Recording:
    """What :func:`record_run` saw (plain arrays and lists)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def record_run(floor, robots, options, *, seed=0, steps=200, dwell_chute=5, dwell_induct=1,
               guidance="lanes+flow", events=None, n_destinations=None, mix="zipf",
               induct_choice="balanced", **run_kw):
    """Run FloorSim step by step, as ``sorter.agv.lifelong.simulate`` does, and record what
    the model needs. ``events``: {step: [(chute label, state), ...]} applied after that
    step's update. Returns ``(Recording, sim, planner)``."""
    from sorter.agv.lifelong import make_run

    pl, st = make_run(floor, robots, seed=seed, tasks="sorting", guidance=guidance,
                      floor_sim=options, dwell_chute=dwell_chute, dwell_induct=dwell_induct,
                      n_destinations=n_destinations, mix=mix, induct_choice=induct_choice,
                      **run_kw)
    arrivals = []
    real = st.arrival_rng

    class _Poisson:                     # records the arrivals FloorSim draws, changes nothing
        def poisson(self, lam, size):
            x = real.poisson(lam, size)
            arrivals.append(np.array(x, np.int64))
            return x

    st.arrival_rng = _Poisson()
    T, n = int(steps), int(robots)
    # rescues (a LaCAM plan moves robots; they arrive only at its end): which robots the plan
    # moved in each step, and the rescued robot when its plan ended (planner facts, as faults)
    forced = np.zeros((T, n), np.bool_)
    plan_end = [None] * T
    now = [0]
    kernel, advance = pl._kernel_step, pl._advance_plan

    def _kernel_step():
        forced[now[0]] = pl._forced >= 0
        kernel()

    def _advance_plan():
        r = pl._plan.robot
        advance()
        if pl._plan is None:
            plan_end[now[0]] = int(r)

    pl._kernel_step, pl._advance_plan = _kernel_step, _advance_plan
    pos = np.empty((T + 1, n), np.int32)
    goals_in = np.empty((T, n), np.int64)
    held = np.zeros((T, n), np.bool_)
    held_after = np.zeros((T + 1, n), np.bool_)
    finished = np.zeros((T, n), np.bool_)
    loads = []
    codes = list(st.sorter.sort_plan.routes)
    pos[0] = pl.positions
    goals = st.start(pl)
    pl.prepare(goals)
    events = events or {}
    for t in range(T):
        now[0] = t
        st.pre_step(pl, goals)
        goals_in[t] = goals
        held[t] = pl.held
        pos[t + 1] = pl.step(goals)
        finished[t] = pl.finished
        before = st.heading.copy()
        goals = st.update(pl)
        held_after[t + 1] = pl.held
        new = np.flatnonzero((before == 0) & (st.heading == 1))
        loads.append({int(r): (codes[int(st.pdest[r])], bool(st.noread[r])) for r in new})
        for lab, state in events.get(t + 1, ()):
            st.set_chute_state(lab, state)
    if not st._supply:
        arrivals = []
    rec = Recording(positions=pos, goals=goals_in, held=held, held_after=held_after,
                    finished=finished, forced=forced, plan_end=plan_end, loads=loads, arrivals=arrivals, events=events,
                    steps=T, robots=n, dwell_chute=int(dwell_chute),
                    dwell_induct=int(dwell_induct),
                    supply=bool(st._supply), rescues=int(pl.rescues),
                    plan=_plan_config(st.sorter), options=options)
    return rec, st, pl


def _plan_config(sorter):
    """The sort plan and chute table as plain dicts (inputs of the run, not its state)."""
    p = sorter.sort_plan
    return {"routes": {d: [str(c) for c in r] for d, r in p.routes.items()},
            "chutes": {str(c.id): (c.kind, int(c.capacity)) for c in sorter.chute_table},
            "reject": {r: str(c) for r, c in p.reject.items()},
            "overflow": [str(c) for c in p.overflow],
            "strategy": p.strategy, "max_recirculation": int(p.max_recirculation)}


def _inverted_cdf_p95(values, weights):
    """Smallest v with at least 95% of the weight at or below it (plain loop)."""
    pairs = sorted(zip(values, weights))
    total = sum(w for _, w in pairs)
    acc = 0
    for v, w in pairs:
        acc += w
        if acc >= 0.95 * total:
            return float(v)
    return float(pairs[-1][0])


def naive_floor(floor, rec):
    """Replay ``rec`` through the bookkeeping model; return ``(kpis, problems)``.

    ``problems`` lists every place the run broke a documented rule (empty when none):
    a goal not following the model's routing decision, a load or drop where none was due,
    a drop into a closed chute, the planner's completions differing from the dwell rule.
    """
    opt = rec.options
    cfg = rec.plan
    T, n = rec.steps, rec.robots
    pos, goals = rec.positions, rec.goals
    M = int(opt.container_change_steps)
    sps = float(opt.seconds_per_step)
    eng = NaiveSorter(cfg["routes"], cfg["chutes"], cfg["reject"], cfg["overflow"],
                      cfg["strategy"], cfg["max_recirculation"])
    kind = {c: k for c, (k, _) in cfg["chutes"].items()}
    cap = {c: v for c, (_, v) in cfg["chutes"].items()}
    labels = [str(s.label) for s in floor.chutes]
    cells = np.asarray(floor.cells)
    soc = np.asarray(floor.station_of_cell)
    chute_cells = [set(int(c) for c in s.cells) for s in floor.chutes]
    induct_cells = [set(int(c) for c in s.cells) for s in floor.inducts]
    induct_of = {c: k for k, s in enumerate(induct_cells) for c in s}
    queue_of = {int(c): k for k, s in enumerate(floor.inducts) for c in s.queue}

    def arrive(i, t, fin):
        """Robot i on a cell of its goal at step t: done now, or after the cell's dwell."""
        c = cells[pos[t, i]]
        k = rec.dwell_chute if c == 3 else (rec.dwell_induct if c == 2 else 0)
        if k <= 0:
            fin[i] = done[i] = True
        else:
            dwell[i] = k

    def goal_of(g):
        """('chute', s) / ('induct', s) / ('cell', g) and the cells that complete it."""
        g = int(g)
        s = int(soc[g])
        if s >= 0 and cells[g] == 3 and g in chute_cells[s]:
            return ("chute", s), chute_cells[s]
        if s >= 0 and cells[g] == 2:
            return ("induct", s), induct_cells[s]
        return ("cell", g), {g}

    problems = []
    prev_goal = np.full(n, -1, np.int64)
    done = np.zeros(n, bool)
    dwell = np.zeros(n, np.int64)
    carrying = np.zeros(n, bool)
    parcel = [None] * n               # [dest, noread, t_loaded, reroutes, chute label]
    starved = np.zeros(n, bool)
    starved_since = np.zeros(n, np.int64)
    reopen = {}
    util = np.zeros(len(UTIL), np.int64)
    drops_by_chute = {}
    by_reason = {r: 0 for r in REASONS}
    lat = []
    picked = dropped = full_events = changes = 0
    reroutes = {"chute_closed": 0, "no_room_on_arrival": 0}
    faults = repairs = 0
    fixed_repair = []
    held_since = {}
    queues = [deque() for _ in floor.inducts]          # [arrival step, parcels]
    waits = []                                          # (waited, parcels)
    wait_t0 = []                                        # their arrival steps
    offered = 0
    queue_steps = np.zeros(len(floor.inducts), np.int64)
    queue_most = np.zeros(len(floor.inducts), np.int64)
    finish_mismatch = 0

    def route(i, t, why):
        dest, noread, t0, k = parcel[i][:4]
        ch, reason = eng.assign(None if noread else dest, k)
        parcel[i] = [dest, noread, t0, k, ch, reason]
        return ch

    for t in range(1, T + 1):
        g = goals[t - 1]
        h = rec.held[t - 1]
        # faults: robots held in this step that were not held after the last update
        before = rec.held_after[t - 1]
        newly = h & ~before
        faults += int(newly.sum())
        for i in np.flatnonzero(newly):
            held_since[int(i)] = t
        # the planner: a new goal (or any goal after one was done) starts a new task
        changed = g != prev_goal
        new = changed | done
        dwell[new] = 0
        done[new] = False
        starved[changed] = False
        moved = pos[t] != pos[t - 1]
        cat = np.where(h, 0, np.where(starved, 5, np.where(dwell > 0, 1, np.where(
            moved, np.where(carrying, 2, 3), 4))))
        util += np.bincount(cat, minlength=len(UTIL))
        fin = np.zeros(n, bool)
        forced = rec.forced[t - 1]
        for i in range(n):
            if h[i] or forced[i]:       # held, or moved by a rescue plan: no arrival
                continue
            if dwell[i] > 0:
                dwell[i] -= 1
                if dwell[i] == 0:
                    fin[i] = done[i] = True
            elif not done[i]:
                _, gc = goal_of(g[i])
                if int(pos[t, i]) in gc:
                    arrive(i, t, fin)
        i = rec.plan_end[t - 1]
        if i is not None and not h[i]:      # the rescued robot arrives at its plan's end
            arrive(i, t, fin)
        if not np.array_equal(fin, rec.finished[t - 1]):
            finish_mismatch += 1
            if finish_mismatch <= 3:
                problems.append(f"step {t}: planner completions "
                                f"{np.flatnonzero(rec.finished[t - 1]).tolist()} vs dwell rule "
                                f"{np.flatnonzero(fin).tolist()}")
            fin = rec.finished[t - 1].copy()         # follow the planner from here
            done = done | fin
            dwell[fin] = 0
        # repairs: held in this step, not after its update
        rep = h & ~rec.held_after[t]
        repairs += int(rep.sum())
        for i in np.flatnonzero(rep):
            fixed_repair.append(t - held_since.pop(int(i)) + 1)
        loads_now = dict(rec.loads[t - 1])
        expect = {}                                   # robot -> chute label it must head for
        at_chute = np.flatnonzero(fin & carrying)
        # (a) an empty robot done at its induct loads a parcel (unlimited supply) or waits
        for i in np.flatnonzero(fin & ~carrying):
            kd, s = goal_of(g[i])[0]
            if kd != "induct":
                problems.append(f"step {t}: empty robot {i} finished at {kd} goal")
                continue
            if rec.supply:
                if not starved[i]:
                    starved[i] = True
                    starved_since[i] = t
            else:
                if i not in loads_now:
                    problems.append(f"step {t}: robot {i} done at induct {s} but loaded nothing")
                    continue
                dest, nr = loads_now.pop(i)
                parcel[i] = [dest, nr, t, 0, None]
                carrying[i] = True
                picked += 1
                expect[i] = route(i, t, "load")
        # (b) drops: a loaded robot done at its chute tips its parcel if the chute has room
        late = []
        newly_closed = []
        for i in at_chute:
            kd, s = goal_of(g[i])[0]
            lab = labels[s] if kd == "chute" else None
            if lab is None or lab not in cap:
                problems.append(f"step {t}: loaded robot {i} finished at {kd} goal")
                continue
            if parcel[i][4] != lab:
                problems.append(f"step {t}: robot {i} dropped at {lab}, its parcel was "
                                f"routed to {parcel[i][4]}")
            if kind[lab] == "reject":
                ok = True               # reject chutes take every parcel, whatever their fill
                if not eng.is_open(lab) and any(eng.is_open(c)
                                                for c in set(cfg["reject"].values())):
                    problems.append(f"step {t}: robot {i} dropped into closed reject chute "
                                    f"{lab} while another reject chute was open")
            else:
                ok = eng.is_open(lab) and eng.fill[lab] < cap[lab]
            if not ok:
                late.append(int(i))
                continue
            dest, nr, t0, k, _, reason = parcel[i]
            eng.discharged(lab)
            drops_by_chute[lab] = drops_by_chute.get(lab, 0) + 1
            by_reason[reason] += 1
            lat.append(t - t0)
            dropped += 1
            carrying[i] = False
            parcel[i] = None
            if kind[lab] != "reject" and eng.fill[lab] >= cap[lab]:
                full_events += 1
                if M == 0:
                    eng.container_changed(lab)
                    changes += 1
                else:
                    eng.set_state(lab, "container_change")
                    reopen[lab] = t + M
                    newly_closed.append(lab)
        # (c) re-routes: robots that found no room, then those carrying to a chute just closed
        reroutes["no_room_on_arrival"] += len(late)
        closed_carriers = [i for i in np.flatnonzero(carrying)
                           if parcel[i][4] in newly_closed and int(i) not in late]
        reroutes["chute_closed"] += len(closed_carriers)
        for i in sorted(late + [int(i) for i in closed_carriers]):
            parcel[i][3] += 1
            expect[i] = route(i, t, "reroute")
        # (d) arrivals at the inducts; waiting robots on their induct take parcels
        if rec.supply:
            new = rec.arrivals[t - 1]
            offered += int(new.sum())
            for k in np.flatnonzero(new):
                queues[k].append([t, int(new[k])])
            ready = {}
            for i in np.flatnonzero(starved & ~carrying & ~rec.held_after[t]):
                kd, s = goal_of(g[i])[0]
                if kd == "induct" and induct_of.get(int(pos[t, i])) == s:
                    ready.setdefault(s, []).append(int(i))
            supply = [sum(x[1] for x in q) for q in queues]
            got = {}
            for i in loads_now:
                kd, s = goal_of(g[i])[0]
                got.setdefault(s, []).append(i)
            for s in set(ready) | set(got):
                want = min(len(ready.get(s, [])), supply[s])
                have = sorted(got.get(s, []))
                if len(have) != want or not set(have) <= set(ready.get(s, [])):
                    problems.append(f"step {t}: induct {s}: {len(ready.get(s, []))} robots "
                                    f"waiting, {supply[s]} parcels, loaded {have}")
            order = sorted(loads_now, key=lambda i: (goal_of(g[i])[0][1], starved_since[i], i))
            for i in order:
                s = goal_of(g[i])[0][1]
                q = queues[s]
                if q:
                    waits.append((t - q[0][0], 1))
                    wait_t0.append(q[0][0])
                    q[0][1] -= 1
                    if not q[0][1]:
                        q.popleft()
                dest, nr = loads_now[i]
                parcel[i] = [dest, nr, t, 0, None]
                carrying[i] = True
                starved[i] = False
                picked += 1
                expect[i] = route(i, t, "load")
            loads_now = {}
        for i in loads_now:
            problems.append(f"step {t}: robot {i} loaded a parcel with no load due")
        # (e) containers changed: reopen
        for lab in [c for c, at in reopen.items() if at == t]:
            eng.container_changed(lab)
            changes += 1
            del reopen[lab]
        # operator events between steps
        for lab, state in rec.events.get(t, ()):
            eng.set_state(lab, state)
            reopen.pop(lab, None)
            if state == "open" and kind[lab] != "reject" and eng.fill[lab] >= cap[lab]:
                full_events += 1            # opened with its container still full: a fill
                if M == 0:
                    eng.container_changed(lab)
                    changes += 1
                    continue
                state = "container_change"
                eng.set_state(lab, state)
                reopen[lab] = t + M
            if state != "open":
                for i in np.flatnonzero(carrying):
                    if parcel[i][4] == lab:
                        reroutes["chute_closed"] += 1
                        parcel[i][3] += 1
                        expect[int(i)] = route(int(i), t, "event")
        # the goals of the next step must follow the decisions
        if t < T:
            g2 = goals[t]
            for i in range(n):
                kd, s = goal_of(g2[i])[0]
                if carrying[i]:
                    want = parcel[i][4]
                    if kd != "chute" or labels[s] != want:
                        problems.append(f"step {t}: robot {i} heads for {kd} {s}, its parcel "
                                        f"was routed to {want}")
                        if kd == "chute":             # follow the run from here
                            parcel[i][4] = labels[s]
                    if not eng.is_open(want) and (kind.get(want) != "reject" or any(
                            eng.is_open(c) for c in set(cfg["reject"].values()))):
                        problems.append(f"step {t}: robot {i} carries to closed chute {want}")
                elif kd != "induct":
                    problems.append(f"step {t}: empty robot {i} heads for {kd} {s}")
        # robots in each induct queue, after the step
        if queue_of:
            now = np.zeros(len(floor.inducts), np.int64)
            for c in pos[t]:
                k = queue_of.get(int(c))
                if k is not None:
                    now[k] += 1
            queue_steps += now
            np.maximum(queue_most, now, out=queue_most)
        prev_goal = g.copy()

    hours = max(1, T) * sps / 3600.0
    tot = max(1, int(util.sum()))
    lat_a = np.array(lat, np.float64)
    q = (lambda p: float(np.percentile(lat_a, p))) if lat_a.size else (lambda p: 0.0)
    kp = {
        "parcels_picked": picked,
        "parcels_sorted": dropped,
        "parcels_carried": int(carrying.sum()),
        "parcels_sorted_ok": by_reason["ok"],
        "sorted_per_hour": dropped / hours,
        "sorted_per_step": dropped / max(1, T),
        "sorted_per_robot_hour": dropped / hours / max(1, n),
        "parcels_rejected": sum(by_reason[r] for r in REJECTS),
        "net_sorted_per_hour": (by_reason["ok"] + by_reason["overflow"]) / hours,
        "parcels_by_reason": dict(by_reason),
        "sorted_to_overflow": by_reason["overflow"],
        "rejects_by_reason": {r: by_reason[r] for r in REJECTS},
        "sorted_per_chute": {lab: v for lab, v in drops_by_chute.items() if v},
        "chute_full_events": full_events,
        "container_changes": changes,
        "chutes_closed_at_end": sum(1 for c in cap if not eng.is_open(c)),
        "reroutes": sum(reroutes.values()),
        "reroutes_by_cause": reroutes,
        "robot_faults": faults,
        "robot_repairs": repairs,
        "robots_faulted_at_end": int(rec.held_after[T].sum()),
        "robot_utilisation": {s: float(util[i] / tot) for i, s in enumerate(UTIL)},
        "induct_to_drop_p50": q(50),
        "induct_to_drop_p95": q(95),
        "engine_decisions_by_reason": dict(eng.by_reason),
    }
    if rec.supply:
        waiting = sum(x[1] for qq in queues for x in qq)
        w = waits + [(T - t0, k) for qq in queues for t0, k in qq]
        kp.update({
            "parcels_offered": offered,
            "offered_per_hour": offered / hours,
            "parcels_waiting_at_inducts": waiting,
            "induct_wait_p95": (_inverted_cdf_p95([a for a, _ in w], [b for _, b in w])
                                if w else 0.0),
        })
        waves = opt.waves()
        if len(waves) > 1:
            # the wave a parcel arrived in: the last one whose start (s) is at or before its
            # arrival step x seconds_per_step
            def wave_of(t0):
                k = 0
                for j, (a, _) in enumerate(waves):
                    if float(a) <= t0 * sps + 1e-9:
                        k = j
                return k
            arrived = [(t0, k, w) for (w, k), t0 in zip(waits, wait_t0)]
            arrived += [(t0, k, T - t0) for qq in queues for t0, k in qq]
            by_wave = []
            for j in range(len(waves)):
                mine = [(w, k) for t0, k, w in arrived if wave_of(t0) == j]
                by_wave.append(_inverted_cdf_p95([a for a, _ in mine], [b for _, b in mine])
                               if mine else None)
            kp["induct_wait_p95_by_wave"] = by_wave
        if offered != picked + waiting:
            problems.append(f"offered {offered} != picked {picked} + waiting {waiting}")
    if queue_of:
        qs = [st for st in floor.inducts if len(st.queue)]
        kp["induct_queue_mean"] = {str(st.label): float(queue_steps[st.index] / max(1, T))
                                   for st in qs}
        kp["induct_queue_max"] = {str(st.label): int(queue_most[st.index]) for st in qs}
    if picked != dropped + int(carrying.sum()):
        problems.append(f"picked {picked} != dropped {dropped} + carried {int(carrying.sum())}")
    if opt.repair_dist == "fixed":
        bad = [d for d in fixed_repair if d != opt.repair_steps]
        if bad:
            problems.append(f"fixed repairs of {sorted(set(bad))} steps, not {opt.repair_steps}")
    kp["_finish_mismatch_steps"] = finish_mismatch
    return kp, problems


def compare(model, sim_kpis, *, tol=1e-9):
    """Keys where the model's KPIs differ from the sim's: ``{key: (model, sim)}``."""
    out = {}
    for k, v in model.items():
        if k.startswith("_"):
            continue
        s = sim_kpis.get(k)
        if isinstance(v, float) or isinstance(s, float):
            if s is None or not math.isclose(v, s, rel_tol=tol, abs_tol=tol):
                out[k] = (v, s)
        elif isinstance(v, dict):
            vv = {a: b for a, b in v.items() if b}
            ss = {a: b for a, b in (s or {}).items() if b}
            if set(vv) != set(ss) or any(
                    not math.isclose(float(vv[a]), float(ss[a]), rel_tol=tol, abs_tol=tol)
                    for a in vv):
                out[k] = (v, s)
        elif v != s:
            out[k] = (v, s)
    return out

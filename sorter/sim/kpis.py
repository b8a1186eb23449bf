"""Planner KPIs of a simulated shift: throughput, recirculation, rejects, inducts, chutes.

Definitions (counts are parcels):

* ``offered``: parcels that arrived at an induct during the shift; ``inducted``: placed on a
  carrier; ``queued_at_end`` = offered - inducted (still waiting at an induct).
* ``sorted``: discharged into a destination or overflow chute; ``rejected``: discharged into
  a reject chute; ``on_loop_at_end``: on a carrier when the shift ends. Conservation:
  ``inducted = sorted + rejected + on_loop_at_end``.
* ``first_pass_sort_pct``: of the parcels that left the loop, those sorted (destination or
  overflow chute) without a recirculation; ``first_pass_to_destination_pct`` the stricter
  reading, into their own destination chute. ``recirculation_pct``: of the parcels that left the loop, those that went
  round at least once past a chute that could not take them; ``laps_per_parcel``: mean
  passes of the assigned chute (1 + recirculations). ``recirculations``: laps past a closed
  chute of every parcel, those still on the loop included. ``reject_pct``: of the parcels
  that left the loop, those rejected. ``sorted_to_destination`` + ``sorted_to_overflow`` =
  ``sorted``.
* ``chute_full_events_per_hour``: containers that filled (reject chutes' too);
  ``container_changes_per_hour``: changes completed; ``chute_not_open_pct_mean``/``_max``:
  over destination and overflow chutes, % of the shift full, changing or blocked.
* ``induct_blocking_pct``: share of the shift an induct had a parcel ready but the passing
  carrier was taken; ``induct_starvation_pct``: share it was free with no parcel waiting.
* ``induct_wait_s_p95``: seconds from arrival at an induct to placement on a carrier, over
  every offered parcel; a parcel still queued at the shift's end counts the time it has waited
  so far (a lower bound), so an overloaded shift shows its queue instead of hiding it.
* ``carrier_fill_pct``: mean share of carriers loaded. In a hub this, blocking and
  starvation are shares of time over all the loops' carriers / inducts (loops whose ticks
  differ in length weigh by time, not by ticks).
* ``induct_to_chute_s_*``: seconds from placement on a carrier to discharge (into any
  chute, reject chutes too), over the parcels that left the loop.
* Percentiles (``*_p50``, ``*_p95``, ``*_p99``) are numpy's default ``np.percentile``:
  linear interpolation between order statistics (Hyndman-Fan type 7); 0 when empty.
* No data: a KPI over no parcels is 0, never NaN nor null (``kpis.json`` and ``--json`` are
  strict JSON, every KPI a number): a share (``*_pct``) whose denominator is 0 (such as
  ``first_pass_sort_pct``, ``recirculation_pct``, ``reject_pct`` when no parcel left the
  loop), ``laps_per_parcel`` and the percentiles over no parcels (``induct_to_chute_s_*``
  when none left the loop, ``induct_wait_s_p95`` when none was offered). Read them with the
  count they are over: ``sorted + rejected`` parcels left the loop, ``offered`` arrived.
* ``*_per_hour`` over the whole shift divide by ``shift_hours``; ``per_wave`` rates divide
  by the wave's own hours (cut at the shift's end) the parcels that arrived / were inducted
  / were sorted in those hours, whatever wave they came with.
* ``peak_15min_sorted_per_hour``: the busiest quarter-hour of a 15-minute grid from the
  shift's start (plus the shift's last 15 minutes when the shift is no whole number of
  quarters), as items/h; a shift under 15 minutes gives its own mean rate.
* ``intervals`` (``timeseries.csv``): row ``i`` counts what happened in
  ``[start_s[i], start_s[i + 1])``.
* per chute: ``discharged`` (parcels into it), % of the shift full (waiting for the
  operator), in container change, blocked.
"""
from __future__ import annotations

import numpy as np

from sorter.constants import REJECT_REASONS, STATES

__all__ = ["compute_kpis", "compact", "time_series", "format_table"]



def _pct(a, b):
    return float(100.0 * a / b) if b else 0.0


def _q(x, q):
    return float(np.percentile(x, q)) if len(x) else 0.0


def _count_in(ascending, a, b):
    """How many values of the ascending array (NaN last) are in ``[a, b)``: as
    ``np.sum((x >= a) & (x < b))``, in O(log n)."""
    if not b > a:
        return 0
    lo, hi = np.searchsorted(ascending, (a, b), side="left")
    return int(hi - lo)


def time_series(result) -> dict:
    """Per-interval columns (whole hub): start, offered, inducted, sorted, ... per hour.

    Returns a dict of equal-length arrays: ``start_s``, ``start_h``, ``offered``,
    ``inducted``, ``sorted``, ``rejected``, ``recirculations``, ``*_per_hour`` rates (to 0.001/h),
    ``queued_at_inducts_end`` (parcels waiting at the interval's end), ``carrier_fill_pct``,
    ``chute_full_events``, ``container_changes``,
    ``chutes_unavailable`` (mean destination and overflow chutes not open: full, container
    change or blocked), ``induct_blocking_pct``.
    """
    sc = result.scenario
    n_int = result.n_intervals
    step = result.interval_s
    edges = np.minimum(np.arange(n_int + 1) * step, sc.shift_s)
    edges[-1] = sc.shift_s
    width_h = np.diff(edges) / 3600.0
    offered = np.histogram(result.parcels.arrival_s, bins=edges)[0]
    series = sum(lr.raw["series"] for lr in result.loops)
    cols = {"start_s": edges[:-1], "start_h": edges[:-1] / 3600.0,
            "offered": offered.astype(np.int64)}
    for j, name in enumerate(("inducted", "sorted", "rejected", "recirculations")):
        cols[name] = series[:, j]
    for name in ("offered", "inducted", "sorted", "rejected"):
        # to 0.001 parcel/h: 6 parcels in a 12 s interval is 1800/h, not 1799.9999999999998
        cols[name + "_per_hour"] = np.round(np.where(
            width_h > 0, cols[name] / np.maximum(width_h, 1e-12), 0.0), 3)
    carriers = 0.0
    fill = np.zeros(n_int)
    unavailable = np.zeros(n_int)
    blocked = np.zeros(n_int)
    n_ind = 0
    for lr in result.loops:
        ticks = np.diff(_bounds(lr, result, n_int)).astype(float)
        ticks_safe = np.maximum(ticks, 1)
        carriers += lr.spec.layout.n_carriers
        fill += lr.raw["series"][:, 4] / ticks_safe
        served = np.asarray(lr.chute_kind) != 2   # reject chutes are left out, as in not_open
        # interval x chute: a week of minutes x thousands of chutes is hundreds of MB, so the
        # few reject columns are taken off the row sums, not the other columns copied
        ua = lr.raw["unavail_ticks"]
        unavailable += (ua.sum(1) - ua[:, ~served].sum(1)) / ticks_safe
        blocked += lr.raw["induct_blocked"].sum(1) / ticks_safe
        n_ind += len(lr.spec.layout.inducts)
    cols["queued_at_inducts_end"] = np.cumsum(cols["offered"]) - np.cumsum(cols["inducted"])
    cols["carrier_fill_pct"] = 100.0 * fill / carriers
    cols["chute_full_events"] = series[:, 5]
    cols["container_changes"] = series[:, 6]
    cols["chutes_unavailable"] = unavailable
    cols["induct_blocking_pct"] = 100.0 * blocked / max(n_ind, 1)
    return cols


def _bounds(lr, result, n_int):
    from sorter.sim.loop import interval_bounds
    return interval_bounds(n_int, result.interval_s, lr.dt, lr.n_ticks)


def _loop_kpis(lr, parcels, shift_h):
    r = lr.raw
    it, dk, reason, rec = r["induct_tick"], r["discharge_tick"], r["reason"], r["recirculations"]
    inducted = it >= 0
    done = dk >= 0
    ok = (reason == 0) | (reason == 1)
    n_sorted = int(np.sum(done & ok))
    n_rej = int(np.sum(done & ~ok))
    on_loop = int(np.sum(r["on_carrier"] >= 0))
    layout = lr.spec.layout
    n_ticks = lr.n_ticks
    blocked = r["induct_blocked"].sum(0)
    starved = r["induct_starved"].sum(0)
    return {
        "name": lr.name,
        "nameplate_per_hour": layout.nameplate_per_hour,
        "carriers": layout.n_carriers,
        "lap_time_s": layout.lap_time_s,
        "offered": int(len(lr.parcel_ids)),
        "inducted": int(inducted.sum()),
        "sorted": n_sorted,
        "rejected": n_rej,
        "on_loop_at_end": on_loop,
        "queued_at_end": int(len(lr.parcel_ids) - inducted.sum()),
        "sorted_per_hour": n_sorted / shift_h,
        "recirculation_pct": _pct(np.sum(done & (rec > 0)), done.sum()),
        "carrier_fill_pct": _pct(r["series"][:, 4].sum(), n_ticks * layout.n_carriers),
        "induct_blocking_pct": _pct(blocked.sum(), n_ticks * len(layout.inducts)),
        "induct_starvation_pct": _pct(starved.sum(), n_ticks * len(layout.inducts)),
        "inducts": [{"id": ind.id, "kind": ind.kind, "max_rate_per_hour": ind.max_rate_per_hour,
                     "inducted": int(np.sum(inducted & (parcels.induct[lr.parcel_ids] == i))),
                     "blocking_pct": _pct(blocked[i], n_ticks),
                     "starvation_pct": _pct(starved[i], n_ticks)}
                    for i, ind in enumerate(layout.inducts)],
        "plan_switches": [{"t_s": round(t, 3), "plan": name} for t, name in lr.plan_switches],
    }


def compute_kpis(result) -> dict:
    """All KPIs of a :class:`~sorter.sim.loop.ShiftResult` as one JSON-ready dict.

    Parameters
    ----------
    result : ShiftResult

    Returns
    -------
    dict
        The keys of the module docstring, plus ``per_wave``, ``peak_15min_sorted_per_hour``,
        ``loops`` (one dict per loop), ``chutes`` (per chute: loop, id, kind, discharged,
        full/change/blocked % of the shift) and ``intervals`` (the time series).

    Examples
    --------
    >>> from sorter.sim import simulate, default_scenario_path  # doctest: +SKIP
    >>> k = compute_kpis(simulate(default_scenario_path()))  # doctest: +SKIP
    >>> k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]  # doctest: +SKIP
    True
    """
    if not all(hasattr(result, a) for a in ("scenario", "parcels", "loops", "parcel_columns")):
        # (was an AttributeError from inside, e.g. for the Scenario or its path)
        raise TypeError(f"result is a {type(result).__name__}: expected the ShiftResult "
                        "that sorter.sim.simulate returns")
    sc = result.scenario
    shift_h = sc.shift_hours
    cols = result.parcel_columns()
    p = result.parcels
    status = cols["status"]
    n_off = len(p)
    n_ind = int(np.sum(status != "queued"))
    n_sorted = int(np.sum(status == "sorted"))
    n_rej = int(np.sum(status == "rejected"))
    n_loop = int(np.sum(status == "on_loop"))
    done = (status == "sorted") | (status == "rejected")
    rec = cols["recirculations"]
    reason = cols["reason"]
    rejects = {r: int(np.sum((status == "rejected") & (reason == r))) for r in REJECT_REASONS}
    t_ic = (cols["discharge_t"] - cols["induct_t"])[done]
    queued = status == "queued"                 # still waiting: waited until the shift's end
    wait = np.where(queued, sc.shift_s, cols["induct_t"]) - cols["arrival_t"]
    loops = [_loop_kpis(lr, p, shift_h) for lr in result.loops]
    # shares of time over the hub: a loop's ticks weigh their length (loops differ in tick)
    induct_s = sum(lr.n_ticks * lr.dt * len(lr.spec.layout.inducts) for lr in result.loops)
    carrier_s = sum(lr.n_ticks * lr.dt * lr.spec.layout.n_carriers for lr in result.loops)
    full_events = sum(int(lr.raw["full_events"]) for lr in result.loops)
    cc_done = sum(int(lr.raw["series"][:, 6].sum()) for lr in result.loops)
    ts = time_series(result)
    # peak 15 minutes: from discharge times directly, on a 15-minute grid
    edges15 = np.arange(0, sc.shift_s + 900.0, 900.0)
    edges15[-1] = min(edges15[-1], sc.shift_s) if len(edges15) > 1 else sc.shift_s
    sorted_t = cols["discharge_t"][status == "sorted"]
    per15 = np.histogram(sorted_t, bins=edges15)[0] if len(edges15) > 1 else np.zeros(1)
    widths15 = np.diff(edges15) / 3600.0
    full_width = widths15 >= 0.25 - 1e-9
    peak15 = float(np.max(per15[full_width] / 0.25)) if np.any(full_width) else \
        float(np.max(per15 / np.maximum(widths15, 1e-12))) if len(per15) else 0.0
    if np.any(full_width) and not np.all(full_width):
        # the short last slot is left out above: count the shift's last 15 minutes instead
        # (else start-up in the first slot could put the peak below the shift's mean rate)
        last15 = int(np.sum(sorted_t >= sc.shift_s - 900.0))
        peak15 = max(peak15, last15 / 0.25)
    per_wave = []
    # times sorted once (NaN last, never counted): a wave's count is two binary searches, not
    # a pass over every parcel per wave (hundreds of waves on a 1M-parcel shift)
    arrival_sorted = np.sort(cols["arrival_t"])
    induct_sorted = np.sort(cols["induct_t"])
    sorted_t_sorted = np.sort(sorted_t)
    for wi, w in enumerate(sc.waves):
        a, b = w.start_s, min(w.end_s, sc.shift_s)
        hours = max(b - a, 1e-9) / 3600.0
        per_wave.append({
            "name": w.name, "start_h": a / 3600.0, "end_h": b / 3600.0,
            "offered_rate_per_hour": w.rate_per_hour,
            # what arrived in the wave's hours, as inducted/sorted count what happened in
            # them (a truck arriving late in a wave unloads into the next wave's hours)
            "offered_per_hour": float(_count_in(arrival_sorted, a, b) / hours),
            "inducted_per_hour": float(_count_in(induct_sorted, a, b) / hours),
            "sorted_per_hour": float(_count_in(sorted_t_sorted, a, b) / hours),
            "plans": {k: v.name for k, v in w.plans.items()},
        })
    chutes = []
    for lr in result.loops:
        st = lr.raw["state_ticks"]
        total = np.maximum(st.sum(1), 1)
        sorted_c = lr.raw["chute_sorted"].sum(0)
        for k, cid in enumerate(lr.chute_ids):
            chutes.append({"loop": lr.name, "id": cid, "kind": ["destination", "overflow", "reject"][
                lr.chute_kind[k]], "discharged": int(sorted_c[k]),
                "full_pct": _pct(st[k, STATES.index("full")], total[k]),
                "container_change_pct": _pct(st[k, STATES.index("container_change")], total[k]),
                "blocked_pct": _pct(st[k, STATES.index("blocked")], total[k])})
    not_open = np.array([c["full_pct"] + c["container_change_pct"] + c["blocked_pct"]
                         for c in chutes if c["kind"] != "reject"] or [0.0])
    return {
        "scenario": sc.name,
        "seed": result.seed,
        "shift_hours": shift_h,
        "loops_count": len(result.loops),
        "nameplate_per_hour": float(sum(lr.spec.layout.nameplate_per_hour for lr in result.loops)),
        "offered": n_off,
        "inducted": n_ind,
        "sorted": n_sorted,
        "rejected": n_rej,
        "on_loop_at_end": n_loop,
        "queued_at_end": n_off - n_ind,
        "offered_per_hour": n_off / shift_h,
        "inducted_per_hour": n_ind / shift_h,
        "sorted_per_hour": n_sorted / shift_h,
        "peak_15min_sorted_per_hour": peak15,
        "sorted_to_destination": int(np.sum((status == "sorted") & (reason == "ok"))),
        "sorted_to_overflow": int(np.sum((status == "sorted") & (reason == "overflow"))),
        "first_pass_sort_pct": _pct(np.sum((status == "sorted") & (rec == 0)), done.sum()),
        # the stricter reading: into its own destination chute on the first pass (no overflow)
        "first_pass_to_destination_pct": _pct(np.sum((status == "sorted") & (rec == 0)
                                                     & (reason == "ok")), done.sum()),
        "recirculation_pct": _pct(np.sum(done & (rec > 0)), done.sum()),
        "recirculations": int(rec.sum()),
        "laps_per_parcel": float(np.mean(1 + rec[done])) if done.any() else 0.0,
        "rejects_by_reason": rejects,
        "reject_pct": _pct(n_rej, done.sum()),
        "induct_blocking_pct": _pct(sum(int(lr.raw["induct_blocked"].sum()) * lr.dt
                                        for lr in result.loops), induct_s),
        "induct_starvation_pct": _pct(sum(int(lr.raw["induct_starved"].sum()) * lr.dt
                                          for lr in result.loops), induct_s),
        "carrier_fill_pct": _pct(sum(int(lr.raw["series"][:, 4].sum()) * lr.dt
                                     for lr in result.loops), carrier_s),
        "induct_wait_s_p95": _q(wait, 95),
        "induct_to_chute_s_p50": _q(t_ic, 50),
        "induct_to_chute_s_p95": _q(t_ic, 95),
        "induct_to_chute_s_p99": _q(t_ic, 99),
        "chute_full_events_per_hour": full_events / shift_h,
        "container_changes_per_hour": cc_done / shift_h,
        "chute_not_open_pct_mean": float(not_open.mean()),
        "chute_not_open_pct_max": float(not_open.max()),
        "per_wave": per_wave,
        "loops": loops,
        "wall_s": result.wall_s,
        "chutes": chutes,
        "intervals": {k: np.asarray(v).tolist() for k, v in ts.items()},
    }


def check_kpis(kpis, keys, *, who) -> None:
    """Raise ``TypeError``/``ValueError`` naming ``who``'s argument unless ``kpis`` is a dict
    of :func:`compute_kpis` with ``keys`` (was a KeyError from inside, e.g. for the
    :func:`compact` KPIs of ``sorter run --json``, which lack ``intervals`` and ``chutes``)."""
    from collections.abc import Mapping
    if not isinstance(kpis, Mapping):
        raise TypeError(f"{who}: kpis is a {type(kpis).__name__}: expected the dict of "
                        "sorter.sim.compute_kpis(result)")
    missing = [k for k in keys if k not in kpis]
    if missing:
        from sorter.errors import InputError
        raise InputError(f"{who}: the KPIs have no {', '.join(map(repr, missing))}", field="kpis",
                         expected="the whole dict of compute_kpis(result) (compact() drops "
                                  "'intervals' and 'chutes')")


def compact(kpis: dict) -> dict:
    """The KPIs without the bulky per-chute and per-interval lists (``sorter run --json``),
    and without ``wall_s`` (the simulation's own run time: the same seed gives the same
    bytes)."""
    return {k: v for k, v in kpis.items() if k not in ("chutes", "intervals", "wall_s")}


def format_table(kpis: dict) -> str:
    """A readable KPI table for the terminal."""
    check_kpis(kpis, ("scenario", "offered", "per_wave", "loops"), who="format_table")
    k = kpis
    lines = []
    add = lines.append
    add(f"shift: {k['scenario']}  ({k['shift_hours']:g} h, seed {k['seed']}, "
        f"{k['loops_count']} loop{'s' if k['loops_count'] > 1 else ''}, "
        f"nameplate {k['nameplate_per_hour']:,.0f} items/h)")
    add("")
    add(f"  {'':28}{'parcels':>10}{'items/h':>10}")
    for label, n, rate in (("offered", k["offered"], k["offered_per_hour"]),
                           ("inducted", k["inducted"], k["inducted_per_hour"]),
                           ("sorted", k["sorted"], k["sorted_per_hour"]),
                           ("rejected", k["rejected"], k["rejected"] / k["shift_hours"]),
                           ("on the loop at the end", k["on_loop_at_end"], None),
                           ("queued at inducts at end", k["queued_at_end"], None)):
        add(f"  {label:28}{n:>10,}{'' if rate is None else format(rate, ',.0f'):>10}")
    add(f"  {'peak 15 min sorted':28}{'':>10}{k['peak_15min_sorted_per_hour']:>10,.0f}")
    add("")
    add(f"  first-pass sort            {k['first_pass_sort_pct']:6.2f} %   "
        f"({k['first_pass_to_destination_pct']:.2f} % to the own destination chute)")
    add(f"  recirculation              {k['recirculation_pct']:6.2f} %   "
        f"({k['laps_per_parcel']:.3f} laps per parcel)")
    add(f"  sorted to overflow         {k['sorted_to_overflow']:>7,}")
    add(f"  carrier fill               {k['carrier_fill_pct']:6.2f} %")
    add(f"  induct blocking            {k['induct_blocking_pct']:6.2f} %   "
        f"starvation {k['induct_starvation_pct']:.2f} %   wait p95 {k['induct_wait_s_p95']:.1f} s")
    add(f"  induct to chute  p50 {k['induct_to_chute_s_p50']:6.1f} s   "
        f"p95 {k['induct_to_chute_s_p95']:6.1f} s   p99 {k['induct_to_chute_s_p99']:6.1f} s")
    add(f"  chute full events          {k['chute_full_events_per_hour']:8.1f} /h   "
        f"container changes {k['container_changes_per_hour']:.1f} /h")
    add(f"  chutes not open (mean/max) {k['chute_not_open_pct_mean']:6.2f} % / "
        f"{k['chute_not_open_pct_max']:.2f} % of the shift")
    add("")
    add("  rejects by reason: " + ", ".join(f"{r} {n:,}" for r, n in k["rejects_by_reason"].items()
                                           if n) if k["rejected"] else "  rejects by reason: none")
    add("")
    add(f"  {'wave':16}{'from':>7}{'to':>7}{'offered/h':>11}{'inducted/h':>12}{'sorted/h':>10}  plan")
    for w in k["per_wave"]:
        add(f"  {w['name'][:16]:16}{w['start_h']:7.2f}{w['end_h']:7.2f}{w['offered_per_hour']:11,.0f}"
            f"{w['inducted_per_hour']:12,.0f}{w['sorted_per_hour']:10,.0f}  "
            + ", ".join(v if k["loops_count"] == 1 else f"{lp}: {v}"       # a hub: name the loop
                        for lp, v in w["plans"].items()))
    if len(k["loops"]) > 1:
        add("")
        add(f"  {'loop':10}{'nameplate/h':>12}{'offered':>9}{'sorted/h':>10}{'recirc %':>9}"
            f"{'fill %':>8}{'blocking %':>11}")
        for lp in k["loops"]:
            add(f"  {lp['name'][:10]:10}{lp['nameplate_per_hour']:12,.0f}{lp['offered']:9,}"
                f"{lp['sorted_per_hour']:10,.0f}{lp['recirculation_pct']:9.2f}"
                f"{lp['carrier_fill_pct']:8.2f}{lp['induct_blocking_pct']:11.2f}")
    return "\n".join(lines)

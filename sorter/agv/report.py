"""A one-page report of a robot-floor run: what a floor planner looks at (``sorter mapf --report``).

:func:`write_floor_report` writes into one folder, beside ``paths.npz`` and ``kpis.json``:

* ``throughput.png``: goals reached per step, and parcels dropped per step on a sorting floor
  (with an arrival rate also the parcels offered at the inducts per step), window by window
  over the run (is the floor settling, or jamming up? keeping up with the offered load?);
* ``robot_states.png``: the share of robot-steps in each state, window by window (sorting floor
  with the chute engine: faulted / dwelling / carrying / moving empty / waiting / starved (at
  an induct with no parcel, with an arrival rate); otherwise
  moving / turning / staying, read off the positions and headings);
* ``waiting.png``: where robots stood still without a reason of their own (waiting robot-steps
  per cell, dwells at stations excluded), drawn over the floor: the congestion points;
* ``chutes.png`` (runs with the chute engine): parcels per chute, busiest first (reject and
  overflow chutes marked when the chute kinds are given);
* a plot with nothing to show yet (0 steps, no parcel sorted) is written all the same, saying so;
* ``report.html``: one self-contained page (images inlined) with the headline figures, the key
  KPIs and the plots.

:func:`floor_time_series` gives the series behind the first two plots as arrays.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from sorter.errors import InputError
from sorter.report import counted

__all__ = ["floor_time_series", "waiting_counts", "write_floor_report", "chute_kinds_of",
           "REPORT_FILES"]

#: Files :func:`write_floor_report` writes (``chutes.png`` only with per-chute counts: a run
#: with the chute engine, even one that sorted no parcel yet).
REPORT_FILES = ("report.html", "throughput.png", "robot_states.png", "waiting.png", "chutes.png")

_STATE_COLOURS = {
    "faulted": "#762a83", "dwelling": "#edae49", "carrying": "#1b9e4b",
    "moving_empty": "#8fd18f", "waiting": "#9aa5b1", "starved": "#c5b3e6",
    "moving": "#1b9e4b", "turning": "#2f7ebc", "staying": "#9aa5b1",
}


def _window(steps: int, window=None) -> int:
    if window is None:
        return max(1, -(-int(steps) // 100))         # ~100 points over the run
    w = int(window) if isinstance(window, (int, np.integer)) else 0   # (1.5 read as 1, "3" as 3)
    if w < 1 or isinstance(window, (bool, np.bool_)):
        raise InputError(f"window={window!r}", field="window", expected="an integer >= 1")
    return w


def _per_window(per_step: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``per_step`` (steps, ...) over consecutive windows of ``w`` steps; returns the
    window edges (steps) and the sums (the last window may be shorter)."""
    n = per_step.shape[0]
    edges = np.append(np.arange(0, n, w), n)
    sums = np.add.reduceat(per_step, edges[:-1], axis=0) if n else per_step[:0]
    return edges, sums


def floor_time_series(result, *, window=None, util_steps=None, offered_steps=None) -> dict:
    """Per-window series of a run (:class:`~sorter.agv.lifelong.RunResult`).

    Parameters
    ----------
    result : RunResult
        From :func:`sorter.agv.lifelong.simulate`; ``positions`` (``record=True``) are needed
        for the robot states unless ``util_steps`` is given.
    window : int, optional
        Steps per window; default ~1/100 of the run.
    util_steps : array (steps, states), optional
        Robot-steps per :data:`sorter.agv.floor_sim.UTIL_STATES` state, step by step
        (``FloorSim.util_steps``).
    offered_steps : array (steps,), optional
        Parcels offered at the inducts, step by step (``FloorSim.offered_steps``, with an
        arrival rate).

    Returns
    -------
    dict
        ``edges`` (window edges in steps), ``tasks_per_step`` and ``parcels_per_step`` (means
        over each window), ``offered_per_step`` (None without ``offered_steps``), ``states``
        (state -> share of robot-steps per window).

    Examples
    --------
    >>> import numpy as np
    >>> from sorter.agv.lifelong import RunResult
    >>> pos = np.array([[0, 5], [1, 5], [2, 5], [2, 6], [2, 6]], np.int32)
    >>> r = RunResult(positions=pos, step_ms=np.zeros(4), tasks_completed=3, delivered=0,
    ...               preprocess_s=0.0, steps=4, robots=2,
    ...               completed_at=np.array([0, 1, 1, 3]), delivered_at=np.zeros(4, int))
    >>> s = floor_time_series(r, window=2)
    >>> s["tasks_per_step"].tolist(), s["states"]["moving"].tolist()
    ([0.5, 1.0], [0.5, 0.25])
    """
    steps = int(result.steps)
    w = _window(steps, window)
    if result.completed_at is None:
        raise InputError("the run has no per-step counts", field="result",
                         expected="a RunResult from sorter.agv.lifelong.simulate")
    done = np.diff(np.asarray(result.completed_at, np.int64), prepend=0)
    drops = np.diff(np.asarray(result.delivered_at, np.int64), prepend=0)
    edges, d = _per_window(done, w)
    _, p = _per_window(drops, w)
    span = np.maximum(np.diff(edges), 1)
    states = {}
    if util_steps is not None and len(util_steps):
        from sorter.agv.floor_sim import UTIL_STATES
        u = np.asarray(util_steps, np.float64).reshape(-1, len(UTIL_STATES))
        _, us = _per_window(u, w)
        tot = np.maximum(us.sum(axis=1), 1)
        states = {s: us[:, i] / tot for i, s in enumerate(UTIL_STATES)}
    elif result.positions is not None and steps:
        pos = np.asarray(result.positions)
        moved = pos[1:] != pos[:-1]
        if result.headings is not None:
            hd = np.asarray(result.headings)
            turned = ~moved & (hd[1:] != hd[:-1])
        else:
            turned = np.zeros_like(moved)
        per = np.stack([moved.sum(axis=1), turned.sum(axis=1)], axis=1).astype(np.float64)
        _, ws = _per_window(per, w)
        tot = np.diff(edges) * float(pos.shape[1])
        tot = np.maximum(tot, 1)
        states = {"moving": ws[:, 0] / tot, "turning": ws[:, 1] / tot,
                  "staying": 1.0 - (ws[:, 0] + ws[:, 1]) / tot}
        if result.headings is None:
            del states["turning"]
    offered = None
    if offered_steps is not None and len(offered_steps) == steps and steps:
        offered = _per_window(np.asarray(offered_steps, np.float64), w)[1] / span
    return {"edges": edges, "window": w, "tasks_per_step": d / span,
            "parcels_per_step": p / span, "offered_per_step": offered, "states": states}


def waiting_counts(floor, positions, *, drops=True, inducts=True, headings=None,
                   faulted_steps=None) -> np.ndarray:
    """Robot-steps each cell held a robot that stayed put (in its cell from one step to the
    next), over a recorded run. With ``drops`` / ``inducts`` False, stays on drop / induct cells
    are left out (where robots dwell there, so that what remains is queueing and blocking).
    With ``headings`` (a run with rotation), a robot that turned in its cell was not waiting:
    turns are left out. With ``faulted_steps`` (per step, the robots faulted during it:
    ``FloorSim.faulted_steps``) a faulted robot's stays are left out too. Shape ``(n_cells,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sorter.layout import Floor
    >>> f = Floor.from_ascii("I..\\n.CD")
    >>> pos = np.array([[1, 0], [1, 0], [2, 0]])
    >>> waiting_counts(f, pos).tolist(), waiting_counts(f, pos, inducts=False).tolist()
    ([2, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0])
    """
    from sorter.agv.validate import _as_int_array
    from sorter.layout.floor import DROP, INDUCT
    # (a float array raised NumPy's cast error, a cell off the floor gave counts longer than
    # the floor, a negative one bincount's error, headings of another shape a broadcast error)
    pos = _as_int_array("positions", positions, 2)
    if pos.size and (pos.min() < 0 or pos.max() >= floor.n_cells):
        raise InputError(f"positions hold cell {int(pos[(pos < 0) | (pos >= floor.n_cells)][0])}",
                         field="positions", expected=f"cell ids in [0, {floor.n_cells})")
    if headings is not None:
        hd = _as_int_array("headings", headings, 2)
        if hd.shape != pos.shape:
            raise InputError(f"headings has shape {hd.shape}, positions {pos.shape}",
                             field="headings", expected="one heading per robot and step, as positions")
    if pos.shape[0] < 2:
        return np.zeros(floor.n_cells, np.int64)
    stay = pos[1:] == pos[:-1]
    if headings is not None:                   # turning in place is not waiting
        stay &= hd[1:] == hd[:-1]
    if faulted_steps is not None:              # a faulted robot is not waiting in traffic
        for t, robots in enumerate(faulted_steps[:stay.shape[0]]):
            if len(robots):
                stay[t, robots] = False
    counts = np.bincount(pos[1:][stay].ravel(), minlength=floor.n_cells).astype(np.int64)
    if not drops:
        counts[floor.cells == DROP] = 0
    if not inducts:
        counts[floor.cells == INDUCT] = 0
    return counts


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return matplotlib, plt


def plot_throughput(series, path, *, sorting: bool, title: str, seconds_per_step=None):
    matplotlib, plt = _plt()
    e = series["edges"]
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=110)
    ax.stairs(series["tasks_per_step"], e, color="#2f7ebc", baseline=None, linewidth=1.8,
              label="goals reached per step (each induct visit and drop)" if sorting
              else "goals reached per step")
    if sorting:
        ax.stairs(series["parcels_per_step"], e, color="#1b9e4b", baseline=None, linewidth=1.8,
                  label="parcels dropped per step")
    top = float(np.max(series["tasks_per_step"], initial=0))
    if series.get("offered_per_step") is not None:
        ax.stairs(series["offered_per_step"], e, color="#9aa5b1", baseline=None, linewidth=1.4,
                  linestyle="--", label="parcels offered at the inducts per step")
        top = max(top, float(np.max(series["offered_per_step"], initial=0)))
    ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)     # no goals: 0..1, not 0..1e-9
    ax.set_xlim(e[0], max(e[-1], e[0] + 1))
    fmt = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}")
    ax.xaxis.set_major_formatter(fmt)
    each = f"{seconds_per_step:g} s each; " if seconds_per_step else ""
    ax.set_xlabel(f"step ({each}windows of {series['window']:,} steps)")
    ax.set_ylabel("per step")
    if seconds_per_step and sorting:      # the planner's unit beside the planner's: per hour
        per_h = 3600.0 / float(seconds_per_step)
        sec = ax.secondary_yaxis("right", functions=(lambda y: y * per_h, lambda y: y / per_h))
        sec.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
        sec.set_ylabel(f"per hour (at {seconds_per_step:g} s per step)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8,
              frameon=False)                  # below the axes: not over the curves
    ax.set_title(title, loc="left", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _nothing_to_plot(ax, text):
    """A plot with no data says so in its middle (was: the file left out of the report)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=12,
            color="#555555")


def plot_states(series, path, *, title: str, seconds_per_step=None):
    matplotlib, plt = _plt()
    e = series["edges"]
    if not series["states"]:           # a run of 0 steps: the axes, saying there is nothing
        fig, ax = plt.subplots(figsize=(10, 3.6), dpi=110)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 100)
        ax.set_xticks([])
        ax.set_ylabel("% of robot-steps")
        _nothing_to_plot(ax, "no steps run: no robot states to plot")
        ax.set_title(title, loc="left", fontsize=11)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return
    # states no robot was ever in (faulted without faults, starved without an arrival rate):
    # left out, not listed in the legend as empty bands
    st = {k: v for k, v in series["states"].items() if np.any(np.asarray(v) > 0)} \
        or series["states"]
    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=110)
    x = np.repeat(e, 2)[1:-1]
    ys = [np.repeat(100.0 * st[k], 2) for k in st]
    ax.stackplot(x, ys, labels=[k.replace("_", " ") for k in st],
                 colors=[_STATE_COLOURS.get(k, "#cccccc") for k in st], linewidth=0)
    ax.set_xlim(e[0], max(e[-1], e[0] + 1))
    ax.set_ylim(0, 100)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}"))
    each = f"{seconds_per_step:g} s each; " if seconds_per_step else ""   # as the throughput's
    ax.set_xlabel(f"step ({each}windows of {series['window']:,} steps)")
    ax.set_ylabel("% of robot-steps")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(st), fontsize=8,
              frameon=False)
    ax.set_title(title, loc="left", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_waiting(floor, counts, steps, path, *, note="stays at stations left out", title=None):
    """The floor (obstacles grey, chute bodies brown, drop cells pale orange, inducts green) with
    the share of steps a robot waits in each cell on top (blue, log scale)."""
    matplotlib, plt = _plt()
    from matplotlib.colors import ListedColormap
    from sorter.layout.draw import _figsize, _plain_drops, _role_image
    roles = _role_image(floor)                 # travel, obstacle, chute, drop, induct, queue
    # drop cells everywhere (LoRR S cells): plain
    roles, marked = _plain_drops(roles)
    drops = "drop cells orange" if marked else "drop cells not marked"
    # a big floor (a cell ~2 px): chute bodies light brown, or their dots hide the heat
    chute = "#8c5a2b" if floor.n_cells <= 20_000 else "#d2b48c"
    pale = ListedColormap(["#ffffff", "#b8b8b8", chute, "#fbd9a5", "#3aa655", "#b9e3c2"])
    fw, fh = _figsize(floor, extra_w=1.5)
    fig, ax = plt.subplots(figsize=(fw, max(fh, 4.0)))   # a flat floor: room for the colour bar
    ax.imshow(roles, cmap=pale, vmin=-0.5, vmax=5.5, interpolation="nearest")
    share = 100.0 * counts / max(1, steps)
    img = np.ma.masked_where(counts <= 0, np.log10(1.0 + share))
    # the colour scale ends at the first of 5, 20, 50, 100 % above the busiest cell: waits of
    # 1-2 % (a big floor) were all but white on a scale to 100 %
    top = next(t for t in (5, 20, 50, 100) if float(share.max(initial=0)) <= t)
    im = ax.imshow(img.reshape(floor.height, floor.width), cmap="Blues", interpolation="nearest",
                   vmin=0.0, vmax=np.log10(1.0 + top))
    ind = np.concatenate([np.asarray(st.cells) for st in floor.inducts]) if floor.inducts else []
    if 0 < len(ind) <= 2000:                   # inducts on top of the heat, as green squares
        r, c = np.divmod(np.asarray(ind), floor.width)
        ax.scatter(c, r, marker="s", s=max(4.0, min(40.0, 20000.0 / floor.n_cells)),
                   facecolors="none", edgecolors="#3aa655", linewidths=1.2, zorder=3)
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    ticks = np.array([t for t in (0, 1, 5, 20, 50, 100) if t <= top])
    cb.set_ticks(np.log10(1.0 + ticks))
    cb.set_ticklabels([f"{t:g}" for t in ticks])
    cb.set_label("% of steps a robot waits in the cell")
    ax.set_xticks([])
    ax.set_yticks([])
    from sorter.report import plain_text
    ax.set_title(plain_text(f"Where robots wait: {title or floor.name}, {steps:,} steps "
                            f"(inducts green, {drops}, chutes brown)\n{note}"),
                 loc="left", fontsize=10)     # two lines: not cut off
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: chutes.png's bars by chute kind: (colour, hatch, legend entry); reject red and overflow
#: amber as the shift report's rejected curve and blocking (hatched too: told apart in grey).
_CHUTE_STYLE = {"destination": ("#8c5a2b", None, "destination chute"),
                "overflow": ("#edae49", "..", "overflow chute"),
                "reject": ("#d1495b", "//", "reject chute")}


def chute_kinds_of(stream):
    """Chute label -> kind (``destination``, ``overflow``, ``reject``) of a chute-engine
    floor run (:class:`~sorter.agv.floor_sim.FloorSim`), for :func:`write_floor_report`;
    ``None`` for another task stream."""
    labels, kinds = getattr(stream, "labels", None), getattr(stream, "kind", None)
    if getattr(stream, "sorter", None) is None or labels is None or kinds is None:
        return None
    from sorter.constants import KINDS
    return {str(c): KINDS[int(k)] for c, k in zip(labels, kinds)}


def plot_chutes(per_chute: dict, path, *, top: int = 60, title=None, kinds=None):
    """Bars of parcels per chute, busiest first; ``kinds`` (chute label -> ``destination``,
    ``overflow`` or ``reject``) colours and hatches the reject and overflow chutes, their
    labels too, with a legend (they were drawn as any destination chute)."""
    from sorter.report import plain_text      # chute labels as written, not math
    matplotlib, plt = _plt()
    items = sorted(per_chute.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = items[:top]
    kinds = kinds or {}
    kind = [kinds.get(str(k), "destination") for k, _ in shown]
    kind = [k if k in _CHUTE_STYLE else "destination" for k in kind]
    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=110)
    bars = ax.bar(np.arange(len(shown)), [v for _, v in shown],
                  color=[_CHUTE_STYLE[k][0] for k in kind], width=0.8)
    for b, k in zip(bars, kind):
        if _CHUTE_STYLE[k][1]:
            b.set_hatch(_CHUTE_STYLE[k][1])
            b.set_edgecolor("white")
    ax.set_xticks(np.arange(len(shown)))
    # a few chutes: labels upright at the axes' own size; only a crowd of bars (up to ``top``)
    # needs them turned and small (8 chutes were drawn in 6 pt on end, all but unreadable)
    n = len(shown)
    longest = max((len(str(k)) for k, _ in shown), default=0)
    upright = n * (5.5 * longest + 6) <= 680         # 9 pt labels side by side on ~9 in axes
    ax.set_xticklabels([plain_text(k) for k, _ in shown], rotation=0 if upright else 90,
                       fontsize=9 if upright else (8 if n <= 60 else 6))
    for t, k in zip(ax.get_xticklabels(), kind):
        if k != "destination":           # a reject chute that got none has no bar: its label
            t.set_color(_CHUTE_STYLE[k][0])              # says what it is
            t.set_fontweight("bold")
    if set(kind) - {"destination"}:
        from matplotlib.patches import Patch
        ax.legend(handles=[Patch(facecolor=_CHUTE_STYLE[k][0], hatch=_CHUTE_STYLE[k][1],
                                 edgecolor="white", label=_CHUTE_STYLE[k][2])
                           for k in _CHUTE_STYLE if k in kind],
                  fontsize=8, loc="best", frameon=False)
    ax.set_xlim(-0.6, max(len(shown), 1) - 0.4)
    if not any(v for _, v in items):  # a run that sorted no parcel (yet): said, on a 0..1 axis
        ax.set_ylim(0, 1)
        ax.set_yticks([0, 1])         # (not 0, 0, 0, 1, 1, 1 in whole parcels)
        _nothing_to_plot(ax, "no parcels sorted in this run")
    ax.set_ylabel("parcels")
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_xlabel("chute, busiest first")
    more = f"busiest {top} of {len(items)}" if len(items) > top else ""
    none = sum(1 for _, v in items if not v)
    more = "; ".join(x for x in (more, f"{none} got none" if none else "") if x)
    more = f" ({more})" if more else ""
    ax.set_title(plain_text(f"Parcels per chute{': ' + title if title else ''}{more}"),
                 loc="left", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def k_get(kpis, key) -> float:
    """A numeric KPI, 0 when absent or not a number."""
    v = kpis.get(key, 0)
    return float(v) if isinstance(v, (int, float, np.integer, np.floating)) else 0.0


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):,.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{float(v):,.0f}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items()) or "none"
    return str(v)


def _key_figures(k: dict, n: int, stations: bool = True) -> list:
    """(label, text) rows of the report's table, from the KPIs a run has (``stations``: the
    floor has inducts or chutes)."""
    out = []

    def add(label, *keys, fmt=None):
        if all(key in k for key in keys):
            out.append((label, fmt(*(k[key] for key in keys)) if fmt else _fmt(k[keys[0]])))

    add("robots, steps", "robots", "steps",
        fmt=lambda r, s: f"{counted(r, 'robot', grouped=True)}, {counted(s, 'step', grouped=True)}")
    add("goals reached", "tasks_completed", "tasks_per_step",
        fmt=lambda t, p: f"{t:,} ({p:.2f} per step" + (
            "; each induct visit and drop counts)" if "parcels_delivered" in k
            and k["parcels_delivered"] else ")"))
    add("parcels sorted", "parcels_sorted", "sorted_per_hour", "seconds_per_step",
        fmt=lambda a, b, c: f"{a:,} ({b:,.0f}/h at {c:g} s per step, rejects included)")
    add("net of rejects", "net_sorted_per_hour", fmt=lambda a: f"{a:,.0f}/h, "
        f"{a / max(1, n):.1f} per robot-hour")
    add("to overflow chutes", "sorted_to_overflow")
    add("rejected", "parcels_rejected", "rejects_by_reason",
        fmt=lambda a, b: f"{a:,}" + (f" ({_fmt({r: c for r, c in b.items() if c})})" if a else ""))
    add("parcels on robots at the end", "parcels_carried")
    if k.get("parcels_offered") is not None:
        add("offered", "parcels_offered", "offered_per_hour", "parcels_waiting_at_inducts",
            fmt=lambda a, b, c: f"{a:,} parcels ({b:,.0f}/h); {c:,} still waiting at the inducts")
        add("a parcel's wait at its induct", "induct_wait_p95", fmt=lambda a: f"p95 {a:.0f} steps")
        if k.get("induct_wait_p95_by_wave"):
            add("... by arrival wave", "arrival_rate", "induct_wait_p95_by_wave",
                fmt=lambda r, w: "; ".join(
                    f"from {a:g} s ({b:,.0f}/h): " + ("-" if x is None else f"p95 {x:.0f} steps")
                    for (a, b), x in zip(r, w)))
    if k.get("no_read_rate"):
        add("no-read rate", "no_read_rate", fmt=lambda a: f"{100 * a:g} % of the parcels scanned")
    add("induct to drop", "induct_to_drop_p50", "induct_to_drop_p95",
        fmt=lambda a, b: f"p50 {a:.0f}, p95 {b:.0f} steps")
    add("robot-steps", "robot_utilisation", fmt=lambda u: ", ".join(
        f"{s.replace('_', ' ')} {100 * v:.1f} %" for s, v in u.items()))
    add("chutes", "chute_full_events", "container_changes", "reroutes",
        fmt=lambda a, b, c: f"{a:,} full events, {b:,} container changes, {c:,} re-routes")
    add("robot faults", "robot_faults", "robot_repairs",
        fmt=lambda a, b: f"{counted(a, 'fault', grouped=True)}, "
                         f"{counted(b, 'repair', grouped=True)}")
    add("plan", "plan", "router", fmt=lambda a, b: f"{a} ({b})")
    add("planner", "guidance", "rotation",
        fmt=lambda g, r: f"guidance {g}, " + ("rotations" if r else "4-connected moves"))
    if stations:
        add("dwell at chute / induct", "dwell_chute", "dwell_induct",
            fmt=lambda a, b: f"{a} / {b} steps")
    add("planning time per step", "ms_per_step_p50", "ms_per_step_p99",
        fmt=lambda a, b: f"p50 {a:.2f} ms, p99 {b:.2f} ms (measured on this machine, this run)")
    add("preprocessing", "preprocess_s", fmt=lambda a: f"{a:.2f} s (measured)")
    add("distance tables", "distance_tables_computed", "distance_table_mb",
        fmt=lambda a, b: f"{a:,} computed, {b:.1f} MB (with tables computed ahead by a second "
        "thread, these vary from run to run; the plans do not)")
    add("rescues", "rescues", "rescue_failures",
        fmt=lambda a, b: f"{a:,} (searches that found none: {b:,})")
    return out


def write_floor_report(floor, result, kpis: dict, out_dir, *, util_steps=None,
                       per_chute=None, window=None, title=None, offered_steps=None,
                       faulted_steps=None, chute_kinds=None) -> list[str]:
    """Write the report's plots and ``report.html`` into ``out_dir`` (an existing folder).

    Parameters
    ----------
    floor : Floor
    result : RunResult
        With ``positions`` (``simulate(..., record=True)``).
    kpis : dict
        What ``kpis.json`` holds (``RunResult.kpis()`` plus the task stream's KPIs).
    util_steps : array (steps, states), optional
        ``FloorSim.util_steps``: robot states from the chute-engine floor.
    offered_steps : array (steps,), optional
        ``FloorSim.offered_steps``: parcels offered per step (with an arrival rate).
    faulted_steps : list of int arrays, optional
        ``FloorSim.faulted_steps``: the robots faulted during each step (left out of the
        waiting map).
    per_chute : dict, optional
        Chute label -> parcels; default ``kpis["sorted_per_chute"]`` when present.
    window : int, optional
        Steps per window of the time series (default ~1/100 of the run).
    title : str, optional
        Default: the floor's name.
    chute_kinds : dict, optional
        Chute label -> ``destination``, ``overflow`` or ``reject`` (:func:`chute_kinds_of`):
        the reject and overflow chutes marked in ``chutes.png``.

    Returns
    -------
    list of str
        The file names written.
    """
    from sorter.report import PAGE_STYLE, _img
    out = Path(out_dir)
    if result.positions is None:
        raise InputError("the run was not recorded", field="result",
                         expected="simulate(..., record=True)")
    steps = int(result.steps)
    series = floor_time_series(result, window=window, util_steps=util_steps,
                               offered_steps=offered_steps)
    if per_chute is None:
        per_chute = kpis.get("sorted_per_chute")
        if per_chute is not None:      # the chutes that got no parcel count too (as 0)
            per_chute = {**{str(st.label): 0 for st in floor.chutes}, **per_chute}
    sorting = bool(result.delivered) or any((per_chute or {}).values())
    name = title or floor.name
    written = []
    from sorter.report import plain_text
    run = f"{name}, {counted(int(result.robots), 'robot', grouped=True)}"
    plot_throughput(series, out / "throughput.png", sorting=sorting,
                    seconds_per_step=kpis.get("seconds_per_step"),
                    title=plain_text(f"Throughput over the run: {run}"))
    written.append("throughput.png")
    plot_states(series, out / "robot_states.png",      # 0 steps: a plot saying so
                seconds_per_step=kpis.get("seconds_per_step"),
                title=plain_text(f"What the robots do: {run}"))
    written.append("robot_states.png")
    dwell_c, dwell_i = int(k_get(kpis, "dwell_chute")), int(k_get(kpis, "dwell_induct"))
    wait = waiting_counts(floor, result.positions, drops=dwell_c <= 0, inducts=dwell_i <= 0,
                          headings=result.headings, faulted_steps=faulted_steps)
    left = [w for w, d in (("drop cells", dwell_c), ("inducts", dwell_i)) if d > 0]
    note = f"dwells: stays on {' and '.join(left)} left out" if left else "no dwells"
    if result.headings is not None:
        note += "; turns left out"
    if k_get(kpis, "robot_faults") > 0:
        note += ("; faulted robots left out" if faulted_steps is not None
                 else "; faulted robots' stays included")
    plot_waiting(floor, wait, steps, out / "waiting.png", note=note, title=run)
    written.append("waiting.png")
    if per_chute is not None:          # a chute-engine run; no parcel sorted yet: said so
        plot_chutes(per_chute, out / "chutes.png", title=run, kinds=chute_kinds)
        written.append("chutes.png")

    e = html.escape
    k = kpis
    n = int(result.robots)
    tps = float(k.get("tasks_per_step", result.tasks_per_step))
    boxes = []
    if "net_sorted_per_hour" in k:
        boxes += [(f"{k['net_sorted_per_hour']:,.0f}", "parcels sorted per hour (net of rejects)"),
                  (f"{k['net_sorted_per_hour'] / max(1, n):.1f}",
                   "parcels per robot-hour (net)"),
                  (f"{k.get('induct_to_drop_p95', 0):.0f}", "induct to drop, p95 (steps)")]
    else:
        boxes += [(f"{tps:.2f}", "goals reached per step"),
                  (f"{n / tps:.0f}" if tps > 0 else "-", "steps per goal per robot")]
    st = series["states"]
    if st:
        idle = "waiting" if "waiting" in st else "staying"
        wsum = float(np.average(st[idle], weights=np.diff(series["edges"]))) if steps else 0.0
        boxes.append((f"{100 * wsum:.1f} %", f"robot-steps {idle}"))   # as the table's states
    if k.get("induct_wait_p95") is not None:
        boxes.append((f"{k['induct_wait_p95']:.0f}", "a parcel's wait at its induct, p95 (steps)"))
    boxes.append((f"{k.get('ms_per_step_p50', 0):.2f} ms", "planning per step, median"))
    rows = "".join(f"<tr><th>{e(label)}</th><td>{e(text)}</td></tr>"
                   for label, text in _key_figures(k, n, bool(floor.inducts or floor.chutes)))
    queues = ""
    if k.get("induct_queue_mean"):
        queues = "<h2>Induct queues (robots in line)</h2><table class='num'><tr><th>induct</th>" \
                 "<th>mean</th><th>max</th></tr>" + "".join(
                     f"<tr><td>{e(str(q))}</td><td>{m:.2f}</td>"
                     f"<td>{k['induct_queue_max'].get(q, 0)}</td></tr>"
                     for q, m in k["induct_queue_mean"].items()) + "</table>"
    caps = {
        "throughput.png": "How to read: the mean per step in each window; green, parcels"
                          " dropped into chutes; blue, every goal reached; dashed grey, parcels"
                          " offered (with a time per step, the right axis reads per hour). A"
                          " curve still rising at the end: the floor has not settled; falling:"
                          " it is jamming up.",
        "robot_states.png": "How to read: the share of robot-steps in each state, window by"
                            " window. A growing waiting band: congestion; a large starved band:"
                            " more robots than the offered parcels need.",
        "waiting.png": "How to read: the darker the blue, the larger the share of steps a robot"
                       " stood waiting in the cell (log scale). Dark clusters are the"
                       " congestion points to fix (lanes, induct positions).",
        "chutes.png": "How to read: parcels dropped into each chute, busiest first; a few very"
                      " tall bars: destinations worth spreading over more chutes." + (
                          " Red, hatched: reject chutes; amber, dotted: overflow chutes."
                          if chute_kinds and set(chute_kinds.values()) - {"destination"}
                          else ""),
    }
    imgs = [f"<h2>{e(h)}</h2>{_img(out / f, alt)}<p class=\"cap\">{e(caps[f])}</p>"
            for h, f, alt in (
        ("Throughput", "throughput.png", "Goals reached and parcels dropped per step over the run"),
        ("Robot states", "robot_states.png", "Share of robot-steps in each state over the run"),
        ("Congestion", "waiting.png", "Where on the floor robots wait"),
        ("Chutes", "chutes.png", "Parcels per chute")) if f in written]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Robot floor report: {e(name)}</title>
<style>{PAGE_STYLE}</style></head><body>
<h1>Robot floor report: {e(name)}</h1>
<p class="sub">{floor.height} x {floor.width} floor,
{counted(len(floor.inducts), 'induct', grouped=True)}, {counted(len(floor.chutes), 'chute', grouped=True)};
{counted(n, 'robot', grouped=True)}, {counted(steps, 'step', grouped=True)},
seed {e(str(k.get('seed', '')))}.</p>
<div class="big">{''.join(f'<div><b>{e(a)}</b><span>{e(b)}</span></div>' for a, b in boxes)}</div>
{imgs[0]}
<div class="grid"><div><h2>Key figures</h2><table>{rows}</table>
<p class="sub">Every KPI, with its name: kpis.json.</p></div>
<div>{queues}</div></div>
{''.join(imgs[1:])}
<p class="sub">Files beside this page: paths.npz (positions per step), kpis.json and the PNG plots.</p>
</body></html>
"""
    (out / "report.html").write_text(page, encoding="utf-8")
    written.append("report.html")
    for f in REPORT_FILES:             # an earlier report's plot this run has not (chutes.png
        old = out / f                  # of a sorting floor beside a plain run's page): gone
        if f not in written and old.is_file():
            old.unlink()
    return written

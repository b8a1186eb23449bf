"""Outputs of a simulated shift: KPI JSON, per-parcel Parquet, time series, plots, HTML report.

:func:`write_outputs` writes into one folder:

* ``kpis.json``: every KPI (:func:`sorter.sim.kpis.compute_kpis`), with per-chute and
  per-interval lists (not ``wall_s``, the run's own time: the same seed, the same bytes);
* ``parcels.parquet``: one row per parcel (id, loop, destination, induct, wave, arrival_t,
  induct_t, scan, chute, reason, discharge_t, recirculations, status);
* ``timeseries.csv``: one row per interval (offered, inducted, sorted ... per hour);
* ``chutes.csv``: one row per chute (discharged, % full / in container change / blocked);
* ``throughput.png``, ``recirculation.png``, ``chute_occupancy.png`` and ``report.html``, a
  one-page report embedding them (self-contained: the images are inlined).
"""
from __future__ import annotations

import base64
import csv
import html
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["write_outputs", "plot_throughput", "plot_recirculation", "plot_chute_occupancy",
           "write_html_report", "prepare_out_dir", "check_out_file", "occupancy_matrix",
           "plain_text", "written_together"]


RUN_FILES = ("kpis.json", "parcels.parquet", "timeseries.csv", "chutes.csv", "throughput.png",
             "recirculation.png", "chute_occupancy.png", "report.html")   # sorter run --out
SWEEP_FILES = ("sweep.parquet", "summary.csv", "sweep.png")           # sorter sweep --out

#: The CSS of the one-page reports (``sorter run``'s shift report, the robot-floor report).
PAGE_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1120px;
       color: #222; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 16px; margin: 22px 0 6px; }
.sub { color: #666; margin-top: 0; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 12px 28px; align-items: start; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
th { color: #444; font-weight: 600; white-space: nowrap; }
td.n, .num td { text-align: right; }
img { max-width: 100%; border: 1px solid #eee; }
.big { display: flex; flex-wrap: wrap; gap: 14px; margin: 12px 0 4px; }
.big div { background: #f5f7fa; padding: 8px 14px; border-radius: 6px; min-width: 130px; }
.big b { font-size: 22px; display: block; } .big span { font-size: 12px; color: #555; }
p.cap { font-size: 13px; color: #444; margin: 2px 0 10px; }
"""


def prepare_out_dir(out_dir, *, field="--out", create=True, files=()) -> Path:
    """Create ``out_dir`` (and its parents) if needed and check it is a writable folder.

    Commands call this with ``create=False`` *before* a long computation, so a bad
    ``--out`` fails at once with one clear line instead of a traceback after the work is
    done (and an input error found later leaves no empty folder behind).

    Parameters
    ----------
    out_dir : str or Path
    field : str
        The option named in errors.
    create : bool
        False: only check that the folder exists and is writable, or could be created
        (its nearest existing ancestor is a writable folder).
    files : sequence of str
        Names the command will write in the folder: none of them may be a folder there.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        :class:`~sorter.errors.InputError` naming the path: an existing file, a folder
        that cannot be created or written.

    Examples
    --------
    >>> import tempfile, os
    >>> d = prepare_out_dir(os.path.join(tempfile.mkdtemp(), "a", "b"))
    >>> d.is_dir()
    True
    """
    from sorter.errors import InputError

    if not str(out_dir).strip():        # "" would be read as ".": nothing asked, nothing said
        raise InputError(f"{field} {str(out_dir)!r}", field=field,
                         expected="a folder name (not empty)")
    out = Path(out_dir)
    if str(out_dir).strip() == "":
        raise InputError("empty output folder name", field=field, expected="a folder path")
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", path=out, field=field,
                         expected="a folder (created if absent)")
    target = out
    while not target.exists() and target != target.parent:
        if target.is_symlink():     # was: checked as makeable, then failed after the run
            raise InputError(       # ("cannot create the folder: File exists")
                f"{str(target)!r} is a symbolic link to {os.readlink(target)!r}, which does "
                "not exist", path=out, field=field,
                expected="a folder, or a link to one that exists")
        target = target.parent
    target = out
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the folder: {exc.strerror or exc}", path=out,
                             field=field, expected="a writable folder path") from None
    else:
        while not target.exists() and target != target.parent:
            target = target.parent
        if not target.is_dir():
            raise InputError(f"cannot create the folder: {str(target)!r} is not a folder",
                             path=out, field=field, expected="a writable folder path")
    for name in files:
        if (out / name).is_dir():
            raise InputError(f"{name} there is a folder", path=out / name, field=field,
                             expected=f"a folder without a sub-folder named {name} (the file "
                                      "is written there)")
    probe = target / f".sorter-write-test-{os.getpid()}"
    try:                                # the real test (root passes os.access everywhere)
        with open(probe, "wb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise InputError(f"folder is not writable: {exc.strerror or exc}", path=out, field=field,
                         expected="a writable folder path") from None
    return out


@contextmanager
def written_whole(out, *, field="--out"):
    """Context manager: a temporary path beside ``out`` to write to, renamed to ``out`` when
    the block ends without an error and removed otherwise, so that a run failing part-way
    leaves no half-written file (and an earlier file at ``out`` as it was). An OSError while
    writing becomes an :class:`~sorter.errors.InputError` naming ``out`` and ``field``. A
    device or pipe at ``out`` (``/dev/null``, a FIFO) is written to directly."""
    from sorter.errors import InputError

    out = Path(out)
    # a device or a pipe (/dev/null, a FIFO): written to directly, as the user asks; the
    # rename would put a regular file in its place (for root, even over /dev/null)
    special = out.exists() and not out.is_file() and not out.is_dir()
    tmp = out if special else out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with _sigterm_cleans_up():
        try:
            yield tmp
            if not special:
                os.replace(tmp, out)
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror or exc}", path=out, field=field,
                             expected="a writable file path") from None
        finally:
            if not special and tmp.exists():
                tmp.unlink()


@contextmanager
def written_together(out_dir, names, *, field="--out"):
    """Context manager for a command's set of output files in ``out_dir``: yields a dict
    name -> temporary path (the same file name, in a hidden folder of ``out_dir``, so
    matplotlib and friends see the real name and suffix); when the block ends without an
    error every file written is renamed into place, and otherwise none is. A failure part-way
    (a plot, a full disk, Ctrl-C) so leaves the earlier run's files whole and as they were,
    never a truncated file nor this run's ``kpis.json`` beside that run's report. The hidden
    folder is removed either way. An OSError becomes an :class:`~sorter.errors.InputError`
    naming the folder and ``field``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with written_together(d, ["a.txt"]) as tmp:
    ...     _ = tmp["a.txt"].write_text("new")
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('new', ['a.txt'])
    """
    import shutil

    from sorter.errors import InputError

    out = Path(out_dir)
    stage = out / f".sorter-writing-{os.getpid()}"
    with _sigterm_cleans_up():
        try:
            try:
                shutil.rmtree(stage, ignore_errors=True)    # a killed run's, same process id
                _remove_stale_stages(out)
                stage.mkdir()
                yield {n: stage / n for n in names}
                with _signals_held():       # Ctrl-C between two renames: all or none in place
                    for n in names:
                        if (stage / n).exists():    # a file the block did not write stays
                            os.replace(stage / n, out / n)
            except OSError as exc:
                raise InputError(f"cannot write: {exc.strerror or exc}", path=out, field=field,
                                 expected="a writable folder") from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)


class _Terminated(BaseException):
    """SIGTERM arrived while outputs were written (:func:`_sigterm_cleans_up`)."""


@contextmanager
def _sigterm_cleans_up():
    """While outputs are written, ``kill PID`` (SIGTERM) removes this run's temporary files
    as Ctrl-C does, then ends the process as SIGTERM would have (was: a hidden, half-written
    ``.NAME.PID.tmp`` beside ``--out`` was left for good). Only in the main thread, and only
    while SIGTERM has its default action (a command's own handler is left alone)."""
    import signal
    import threading

    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def on_term(signum, frame):
        raise _Terminated

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except _Terminated:             # the blocks inside have cleaned up: now end as told
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def _signals_held():
    """Ctrl-C and SIGTERM arriving in the block take effect when it ends (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not None:        # (None: not set from Python; left)
            old[sig] = signal.signal(sig, lambda n, frame: got.append(n))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if got:
        signal.raise_signal(got[0])             # now, with the handler it was held from


def _remove_stale_stages(out, min_age_s=3600.0):
    """Remove hidden ``.sorter-writing-PID`` folders of runs killed outright (``kill -9``, a
    power cut: nothing ran their clean-up) -- those whose process is gone and that were last
    written over ``min_age_s`` ago (a folder shared between machines holds other hosts'
    process ids: the age keeps a live run elsewhere safe)."""
    import shutil
    import time

    now = time.time()
    for d in out.glob(".sorter-writing-*"):
        pid = d.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if now - d.stat().st_mtime < min_age_s:
                continue
            os.kill(int(pid), 0)            # raises if no such process
            continue                        # alive (or not ours to signal): leave it
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, OverflowError):
            continue


def check_out_file(path, *, field="--out") -> Path:
    """Check that ``path`` can be written as a file (its folder is created if needed).

    Raises :class:`~sorter.errors.InputError` naming the path: a folder, or a place that
    cannot be written.
    """
    from sorter.errors import InputError

    p = Path(path)
    if str(path).strip() == "":
        raise InputError("empty output file name", field=field, expected="a file path")
    if p.is_dir():
        raise InputError("is a folder", path=p, field=field, expected="a file path")
    if p.exists() and not p.is_file():  # a device or FIFO: written directly (written_whole), once
        # (opening it here to test it gave a FIFO's reader its end of file, and the real
        # write then waited for ever for a reader that had gone)
        if not os.access(p, os.W_OK):
            raise InputError("cannot write: permission denied", path=p, field=field,
                             expected="a writable file path")
        return p
    parent = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder {str(parent)!r}: {exc.strerror or exc}", path=p,
                         field=field, expected="a writable file path") from None
    existed = p.exists()
    try:                                # the real test: open it for writing (root passes access())
        with open(p, "ab"):
            pass
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path=p, field=field,
                         expected="a writable file path") from None
    if not existed:
        try:
            p.unlink()
        except OSError:
            pass
    return p


def counted(count, noun, *, grouped=False) -> str:
    """``count`` and ``noun``, plural but for 1 ("1 induct", "3 inducts"); ``grouped``:
    thousands separated ("1,200 robots").

    Examples
    --------
    >>> counted(1, "row"), counted(0, "row"), counted(1200, "robot", grouped=True)
    ('1 row', '0 rows', '1,200 robots')
    """
    n = f"{count:,}" if grouped else f"{count}"
    return f"{n} {noun}" + ("" if count == 1 else "s")


def plain_text(s) -> str:
    """``s`` for a matplotlib label, shown as written: user names (scenario, waves, loops,
    chutes, varied values) may hold ``$`` signs, which matplotlib would read as math (a
    pair of them garbles the label or fails the whole plot).

    Examples
    --------
    >>> print(plain_text("US$ 5 and US$ 6"))
    US\\$ 5 and US\\$ 6
    """
    return str(s).replace("$", r"\$")


def _wave_spans(ax, scenario):
    """Shade every other wave and name each above the axes; returns the labels for
    :func:`_fit_labels` (each may use its wave's span)."""
    labels = []
    for i, w in enumerate(scenario.waves):
        a, b = w.start_s / 3600, min(w.end_s, scenario.shift_s) / 3600
        if i % 2 == 0:
            ax.axvspan(a, b, color="0.94", zorder=0)
        t = ax.text((a + b) / 2, 1.0, plain_text(w.name), transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=8, color="0.35", clip_on=False)
        labels.append((t, w.name, a, b))
    return labels


def _fit_labels(fig, ax, labels, *, pad_px=4.0):
    """Shorten each label (text, name, x0, x1) wider than its data span x0..x1 with an
    ellipsis, hide it where not even three characters fit: many short waves used to print
    their names over one another. Call after the layout is final (``tight_layout``)."""
    renderer = fig.canvas.get_renderer()
    for t, name, x0, x1 in labels:
        room = abs(ax.transData.transform((x1, 0))[0] - ax.transData.transform((x0, 0))[0]) - pad_px
        name = str(name)
        t.set_text(plain_text(name))
        width = t.get_window_extent(renderer).width
        if width <= room:
            continue
        n = min(len(name) - 1, int(len(name) * max(room, 0.0) / max(width, 1.0)) + 1)
        while n >= 3:
            t.set_text(plain_text(name[:n].rstrip() + "\u2026"))
            if t.get_window_extent(renderer).width <= room:
                break
            n -= 1
        if n < 3:
            t.set_visible(False)


def _run_title(what, name, seed=None) -> str:
    """A plot's title naming the run: ``what: scenario name (seed N)`` (a PNG passed on alone
    still says which run it shows)."""
    if not name:                         # a scenario without a name: the plain title
        return plain_text(what)
    return plain_text(f"{what}: {name}" + (f" (seed {seed})" if seed is not None else ""))


def _shift_axis(ax, scenario):
    """The x axis of a plot over the shift (data in hours): a shift of 2 h or less in
    minutes (0, 5, 10 ... not 0.083 h), a shift of more than 48 h in days (a tick every
    24 h, minor ticks every 6 h); otherwise hours, a tick every 0.5, 1, 2, 3, 4 or 6 h
    (8 intervals at most: a 24 h shift every 3 h; hour marks between ticks of 2 h and more)."""
    import matplotlib.ticker as mt
    hours = float(scenario.shift_hours)
    if hours <= 2.0:
        minutes = hours * 60
        step = next((m for m in (1, 2, 5, 10, 15, 20, 30) if minutes / m <= 12), 30)
        ax.xaxis.set_major_locator(mt.MultipleLocator(step / 60))
        ax.xaxis.set_major_formatter(mt.FuncFormatter(lambda v, _: f"{v * 60:.0f}"))
        ax.set_xlabel("minutes into the shift")
    elif hours > 48.0:
        ax.xaxis.set_major_locator(mt.MultipleLocator(24 if hours <= 24 * 12 else 24 * 7))
        ax.xaxis.set_minor_locator(mt.MultipleLocator(6 if hours <= 24 * 12 else 24))
        ax.xaxis.set_major_formatter(mt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlabel("hours into the shift (a tick a day)" if hours <= 24 * 12
                      else "hours into the shift (a tick a week)")
    else:
        # a tick every 0.5, 1, 2, 3, 4 or 6 h, at most 8 intervals (matplotlib's own choice
        # for a 24 h shift was a tick every 5 h: 0, 5, 10, 15, 20, which no planner counts in)
        step = next(s for s in (0.5, 1, 2, 3, 4, 6) if hours / s <= 8 or s == 6)
        ax.xaxis.set_major_locator(mt.MultipleLocator(step))
        if step >= 2:                    # hour marks between the labelled ticks
            ax.xaxis.set_minor_locator(mt.MultipleLocator(1))
        ax.xaxis.set_major_formatter(mt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("hours into the shift")
    start = getattr(scenario, "shift_start_h", None)
    if start is not None:                # the clock time a planner reads the shift by
        m = int(round(start * 60)) % (24 * 60)
        ax.set_xlabel(ax.get_xlabel() + f"; 0 = {m // 60:02d}:{m % 60:02d}")


#: The throughput and recirculation plots pool intervals beyond this many (a week of 1-minute
#: intervals drew 10,080 steps, a solid band in which no curve could be told apart).
_MAX_STEPS = 240


def _pooling(n, interval_minutes) -> int:
    """Intervals per plotted step: 1, or the fewest whose span is a round duration (10, 15,
    30 min, 1, 2, 3, 4, 6, 12 h, a day, a week) that brings ``n`` intervals down to
    :data:`_MAX_STEPS` steps or fewer."""
    if n <= _MAX_STEPS:
        return 1
    for minutes in (10, 15, 30, 60, 120, 180, 240, 360, 720, 1440, 10080):
        k = minutes / interval_minutes
        if k >= 1 and abs(k - round(k)) < 1e-9 and -(-n // round(k)) <= _MAX_STEPS:
            return int(round(k))
    return -(-n // _MAX_STEPS)


def _pooled(edges, k, *series, weighted=True):
    """``series`` (per interval) pooled ``k`` intervals a step: the mean weighted by each
    interval's length (a rate or a %), or with ``weighted=False`` the sum (a count).
    Returns (edges, pooled series ...)."""
    if k <= 1:
        return (edges, *series)
    starts = np.arange(0, len(edges) - 1, k)
    w = np.diff(edges)
    span = np.add.reduceat(w, starts)
    out = [np.add.reduceat(np.asarray(y, np.float64) * w, starts) / span if weighted
           else np.add.reduceat(np.asarray(y, np.float64), starts) for y in series]
    return (np.append(edges[starts], edges[-1]), *out)


def _step_minutes(n, interval_minutes) -> float:
    """Minutes a plotted step of the throughput plot spans (the interval, or the pooled span)."""
    return _pooling(n, interval_minutes) * interval_minutes


def _pool_note(k, interval_minutes) -> str:
    """The y label's words for the steps drawn: intervals, or the pooled span."""
    if k <= 1:
        return f"{interval_minutes:g}-min intervals"
    m = k * interval_minutes
    span = f"{m / 60:g} h" if m >= 60 else f"{m:g} min"
    return f"mean over {span} of {interval_minutes:g}-min intervals"


def plot_throughput(kpis, scenario, path):
    """Offered, inducted and sorted items/h per interval, against nameplate."""
    from sorter.sim.kpis import check_kpis
    check_kpis(kpis, ("intervals", "nameplate_per_hour"), who="plot_throughput")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ts = kpis["intervals"]
    x = np.asarray(ts["start_h"])
    width = scenario.interval_minutes / 60
    edges = np.append(x, min(x[-1] + width, scenario.shift_hours))
    keys = ("offered_per_hour", "inducted_per_hour", "sorted_per_hour", "rejected_per_hour")
    k = _pooling(len(x), scenario.interval_minutes)
    edges, *ys = _pooled(edges, k, *(ts[key] for key in keys))
    fig, ax = plt.subplots(figsize=(10, 4.4), dpi=110)
    waves = _wave_spans(ax, scenario)
    for y, label, color, lw in zip(ys, ("offered", "inducted", "sorted", "rejected"),
                                   ("#9aa5b1", "#2f7ebc", "#1b9e4b", "#d1495b"),
                                   (2.2, 1.6, 2.0, 1.2)):
        ax.stairs(np.asarray(y), edges, label=label, color=color, linewidth=lw, baseline=None)
    ax.axhline(kpis["nameplate_per_hour"], color="k", linestyle="--", linewidth=1)
    ax.text(edges[0], kpis["nameplate_per_hour"], f" nameplate {kpis['nameplate_per_hour']:,.0f}/h",
            va="bottom", fontsize=8, zorder=5,           # readable over the curves
            bbox=dict(boxstyle="square,pad=0.1", facecolor="white", edgecolor="none", alpha=0.8))
    ax.set_xlim(edges[0], edges[-1])
    top = max([float(kpis["nameplate_per_hour"])] + [float(np.max(y, initial=0)) for y in ys])
    ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)   # every curve inside the axes
    _shift_axis(ax, scenario)
    ax.set_ylabel(f"items per hour ({_pool_note(k, scenario.interval_minutes)})")
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4, fontsize=8,
              frameon=False)               # below the axes: not over the rejected curve
    ax.set_title(_run_title("Throughput against offered load", getattr(scenario, "name", ""),
                            kpis.get("seed")),
                 loc="left", fontsize=11, pad=16)
    fig.tight_layout()
    _fit_labels(fig, ax, waves)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_recirculation(kpis, scenario, path):
    """Recirculation % and carrier fill % per interval; induct blocking % beside them."""
    from sorter.sim.kpis import check_kpis
    check_kpis(kpis, ("intervals",), who="plot_recirculation")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ts = kpis["intervals"]
    x = np.asarray(ts["start_h"])
    width = scenario.interval_minutes / 60
    edges = np.append(x, min(x[-1] + width, scenario.shift_hours))
    left = np.asarray(ts["sorted"]) + np.asarray(ts["rejected"])
    k = _pooling(len(x), scenario.interval_minutes)
    _, left, recs = _pooled(edges, k, left, ts["recirculations"], weighted=False)
    edges, blocking, fill = _pooled(edges, k, ts["induct_blocking_pct"], ts["carrier_fill_pct"])
    rec = 100.0 * np.asarray(recs) / np.maximum(left, 1)
    fig, ax = plt.subplots(figsize=(10, 4.0), dpi=110)
    waves = _wave_spans(ax, scenario)
    ax.stairs(rec, edges, color="#d1495b", linewidth=1.8, baseline=None,
              label="recirculations per 100 parcels leaving the loop")
    ax.stairs(np.asarray(blocking), edges, color="#edae49", linewidth=1.4,
              baseline=None,
              label="induct blocking % of time")
    # what the left axis counts, not a bare "%": both curves on it are named
    ax.set_ylabel("recirculation, induct blocking %" + (
        f"\n({_pool_note(k, scenario.interval_minutes)})" if k > 1 else ""))
    _shift_axis(ax, scenario)
    ax.set_xlim(edges[0], edges[-1])
    ax2 = ax.twinx()
    ax2.stairs(np.asarray(fill), edges, color="#2f7ebc", linewidth=1.2,
               linestyle=":", label="carrier fill % (right axis)", baseline=None)
    ax2.set_ylabel("carrier fill %")
    ax2.set_ylim(0, 100)
    ax.set_ylim(0, max(5.0, float(np.max(rec, initial=0)), float(np.max(blocking,
                                                                          initial=0))) * 1.2)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, ncol=3,
              frameon=False)
    ax.set_title(_run_title("Recirculation, induct blocking and carrier fill",
                            getattr(scenario, "name", ""), kpis.get("seed")),
                 loc="left", fontsize=11, pad=16)
    fig.tight_layout()
    _fit_labels(fig, ax, waves)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def occupancy_matrix(result):
    """Chutes x intervals: % of each interval each chute could not take parcels.

    Returns ``(matrix, labels, separators)``: chutes in loop order (loop by loop), their
    labels, and the row index after each loop. Reject chutes take parcels whatever their
    container does (the simulation's rule), so their rows are 0.
    """
    from sorter.constants import KINDS
    from sorter.sim.loop import interval_bounds
    rows, labels, seps = [], [], []
    for lr in result.loops:
        n_int = lr.raw["unavail_ticks"].shape[0]
        b = interval_bounds(n_int, result.interval_s, lr.dt, lr.n_ticks)
        ticks = np.maximum(np.diff(b), 1)
        order = np.argsort(lr.spec.layout.chute_positions(), kind="stable")
        # interval x chute in float32, one copy at a time (a week of 1-minute intervals on
        # 4,000 chutes is 40M cells: float64 copies took the report to 4 GB)
        frac = lr.raw["unavail_ticks"].astype(np.float32)[:, order]
        frac *= (100.0 / ticks).astype(np.float32)[:, None]
        frac[:, (lr.chute_kind == KINDS.index("reject"))[order]] = 0.0
        rows.append(frac.T)
        labels.extend(f"{lr.name}:{lr.chute_ids[k]}" if len(result.loops) > 1 else str(lr.chute_ids[k])
                      for k in order)
        seps.append(sum(r.shape[0] for r in rows))
    return (rows[0] if len(rows) == 1 else np.vstack(rows)), labels, seps


#: The chute-occupancy heat map pools chutes (intervals) beyond this many rows (columns): at
#: most about one per pixel of its axes.
_OCC_MAX_ROWS, _OCC_MAX_COLS = 400, 720


def plot_chute_occupancy(result, path):
    """Heat map of :func:`occupancy_matrix`: % of each interval each chute could not take
    parcels (full, in container change or blocked); chutes in loop order along the y axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sc = result.scenario
    m, labels, seps = occupancy_matrix(result)
    n = m.shape[0]
    # more chutes (intervals) than pixel rows (columns): matplotlib's nearest-neighbour
    # resampling dropped whole rows, so a chute closed all shift could be missing from the
    # picture. Pool instead: a row is the worst of `rows` adjacent chutes, a column the mean
    # of `cols` consecutive intervals (the % of that longer time).
    rows, cols = -(-n // _OCC_MAX_ROWS), -(-m.shape[1] // _OCC_MAX_COLS)
    img = m
    if cols > 1:
        start = np.arange(0, m.shape[1], cols)
        img = np.add.reduceat(img, start, axis=1) / np.diff(np.append(start, m.shape[1]))
    if rows > 1:
        img = np.maximum.reduceat(img, np.arange(0, n, rows), axis=0)
    fig, ax = plt.subplots(figsize=(10, 5.4), dpi=110)
    im = ax.imshow(img, aspect="auto", interpolation="nearest", cmap="magma_r", vmin=0, vmax=100,
                   extent=(0, sc.shift_hours, n, 0))
    for s in seps[:-1]:
        ax.axhline(s, color="#2f7ebc", linewidth=1.5)
    if len(seps) > 1:                    # a hub: each band named, inside its left edge
        for lr, a, b in zip(getattr(result, "loops", ()), [0] + seps[:-1], seps):
            ax.text(0.005, (a + b) / 2, plain_text(f"loop {lr.name}"),
                    transform=ax.get_yaxis_transform(), ha="left", va="center", fontsize=8,
                    color="#1a4f7a", zorder=4,
                    bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="#2f7ebc",
                              alpha=0.85))
    # every wave named at its start, the first too (was: from the second on, so the opening
    # wave, "ramp-up", went unnamed); a dashed line where a later one starts
    shown = [w for w in sc.waves if w.start_s < sc.shift_s]
    waves = []
    for i, w in enumerate(shown):
        if w.start_s > 0:
            ax.axvline(w.start_s / 3600, color="#2f7ebc", linewidth=0.8, linestyle="--")
        t = ax.text(w.start_s / 3600, 1.0, " " + plain_text(w.name), fontsize=7, color="#2f7ebc",
                    va="bottom", transform=ax.get_xaxis_transform(), clip_on=False)
        end = shown[i + 1].start_s / 3600 if i + 1 < len(shown) else sc.shift_hours
        waves.append((t, " " + w.name, w.start_s / 3600, end))
    step = max(1, n // 12)
    ax.set_yticks(np.arange(0, n, step) + 0.5)
    ax.set_yticklabels([plain_text(x) for x in labels[::step]], fontsize=7)
    _shift_axis(ax, sc)
    if cols > 1:                         # one pair of brackets: "(a tick a day; a column ...)"
        more = f"a column: {cols} intervals"
        lab = ax.get_xlabel()
        ax.set_xlabel(lab[:-1] + f"; {more})" if lab.endswith(")") else lab + f" ({more})")
    ax.set_ylabel("chute (in loop order" + (f"; a row: the worst of {rows})" if rows > 1 else ")"))
    cb = fig.colorbar(im, ax=ax, pad=0.01)
    cb.set_label("% of interval not taking parcels")
    ax.set_title(_run_title("Chute occupancy (full, in container change or blocked)",
                            getattr(sc, "name", ""),
                            getattr(result, "seed", None)), loc="left", fontsize=11, pad=14)
    fig.tight_layout()
    _fit_labels(fig, ax, waves)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _img(path, alt=None):
    """The PNG at ``path`` inlined; ``alt``: what it shows (default: the file's stem)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt or Path(path).stem)}">'


def _reasons_line(k) -> str:
    """The headline's rejects by reason, the biggest first (``: no_read 1,193, not_sortable
    246``; the reasons' kpis.json names), or "" without a reject."""
    by = sorted(((n, r) for r, n in k["rejects_by_reason"].items() if n), key=lambda t: -t[0])
    return (": " + ", ".join(f"{r} {n:,}" for n, r in by)) if by else ""


def write_html_report(kpis, result, out_dir, images, *, path=None) -> Path:
    """One self-contained page: the headline KPIs, the waves, the plots, the worst chutes;
    written to ``out_dir / "report.html"``, or to ``path`` when given."""
    sc = result.scenario
    k = kpis
    e = html.escape

    def row(label, value):
        return f"<tr><th>{e(label)}</th><td>{e(value)}</td></tr>"

    head = [
        row("offered", f"{k['offered']:,} parcels ({k['offered_per_hour']:,.0f}/h)"),
        row("inducted", f"{k['inducted']:,} ({k['inducted_per_hour']:,.0f}/h); "
                        f"{k['queued_at_end']:,} still queued at inducts"),
        row("sorted", f"{k['sorted']:,} ({k['sorted_per_hour']:,.0f}/h, "
                      f"peak 15 min {k['peak_15min_sorted_per_hour']:,.0f}/h); "
                      f"{k['sorted_to_overflow']:,} via overflow"),
        row("rejected", f"{k['rejected']:,} ({k['reject_pct']:.2f} %): " + (", ".join(
            f"{r} {n:,}" for r, n in k["rejects_by_reason"].items() if n) or "none")),
        row("on the loop at the end", f"{k['on_loop_at_end']:,}"),
        row("nameplate", f"{k['nameplate_per_hour']:,.0f} items/h"),
        row("first-pass sort", f"{k['first_pass_sort_pct']:.2f} % (overflow included; "
                               f"{k['first_pass_to_destination_pct']:.2f} % to the own "
                               "destination chute)"),
        row("recirculation", f"{k['recirculation_pct']:.2f} % of parcels "
                             f"({k['laps_per_parcel']:.3f} laps per parcel)"),
        row("carrier fill", f"{k['carrier_fill_pct']:.2f} %"),
        row("induct blocking / starvation", f"{k['induct_blocking_pct']:.2f} % / "
                                             f"{k['induct_starvation_pct']:.2f} % of the time; "
                                             f"wait at induct p95 {k['induct_wait_s_p95']:.1f} s"),
        # the printed summary's rounding (format_table): the same figure reads the same
        row("induct to chute", f"p50 {k['induct_to_chute_s_p50']:.1f} s, p95 "
                               f"{k['induct_to_chute_s_p95']:.1f} s, p99 {k['induct_to_chute_s_p99']:.1f} s"),
        row("chutes", f"{k['chute_full_events_per_hour']:.1f} full events/h, "
                      f"{k['container_changes_per_hour']:.1f} container changes/h; not open "
                      f"{k['chute_not_open_pct_mean']:.2f} % of the shift on average, "
                      f"{k['chute_not_open_pct_max']:.2f} % at worst"),
    ]
    waves = "".join(
        f"<tr><td>{e(w['name'])}</td><td>{w['start_h']:.2f}-{w['end_h']:.2f}</td>"
        f"<td>{w['offered_per_hour']:,.0f}</td><td>{w['inducted_per_hour']:,.0f}</td>"
        f"<td>{w['sorted_per_hour']:,.0f}</td><td>{e(_plans(w['plans'], k['loops_count']) or '-')}</td></tr>"
        for w in k["per_wave"])
    worst = sorted((c for c in k["chutes"] if c["kind"] != "reject"),
                   key=lambda c: -(c["full_pct"] + c["container_change_pct"] + c["blocked_pct"]))[:8]
    worst_rows = "".join(
        f"<tr><td>{e(str(c['loop']))}</td><td>{e(str(c['id']))}</td><td>{c['discharged']:,}</td>"
        f"<td>{c['full_pct']:.1f}</td><td>{c['container_change_pct']:.1f}</td>"
        f"<td>{c['blocked_pct']:.1f}</td>"
        f"<td>{c['full_pct'] + c['container_change_pct'] + c['blocked_pct']:.1f}</td></tr>"
        for c in worst)
    loops = "".join(
        f"<li>{e(lp['name'])}: {lp['carriers']} carriers, lap {lp['lap_time_s']:.0f} s, nameplate "
        f"{lp['nameplate_per_hour']:,.0f}/h, "
        f"{counted(len(lp['inducts']), 'induct')}; sorted "
        f"{lp['sorted_per_hour']:,.0f}/h, recirculation {lp['recirculation_pct']:.2f} %, "
        f"induct blocking {lp['induct_blocking_pct']:.2f} %</li>" for lp in k["loops"])
    step_min = _step_minutes(len(k["intervals"]["start_h"]), sc.interval_minutes)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Shift report: {e(sc.name)}</title>
<style>{PAGE_STYLE}</style></head><body>
<h1>Shift report: {e(sc.name)}</h1>
<p class="sub">{sc.shift_hours:g} h shift, seed {k['seed']}, {len(k['loops'])} loop{'' if len(k['loops']) == 1 else 's'};
scenario {e(str(sc.path or '(built in code)'))}.</p>
<div class="big">
<div><b>{k['sorted_per_hour']:,.0f}</b><span>sorted items/h: {100 * k['sorted'] / max(k['offered'], 1):.0f} % of offered,
{100 * k['sorted_per_hour'] / max(k['nameplate_per_hour'], 1):.0f} % of nameplate</span></div>
<div><b>{k['offered_per_hour']:,.0f}</b><span>offered items/h</span></div>
<div><b>{k['first_pass_sort_pct']:.2f} %</b><span>first-pass sort</span></div>
<div><b>{k['recirculation_pct']:.2f} %</b><span>recirculation</span></div>
<div><b>{k['reject_pct']:.2f} %</b><span>rejected{e(_reasons_line(k))}</span></div>
<div><b>{k['induct_to_chute_s_p95']:.1f} s</b><span>induct to chute, p95</span></div>
</div>
<h2>Throughput</h2>
{_img(images['throughput'], 'Throughput against offered load, items per hour')}
<p class="cap">How to read: items per hour in each {step_min:g}-minute step; grey offered,
blue inducted, green sorted, red rejected, dashed the nameplate; shaded bands are the waves. Green
well below grey: the sorter or its inducts do not keep up.</p>
<div class="grid">
<div><h2>Key figures</h2><table>{''.join(head)}</table>
<h2>Loops</h2><ul>{loops}</ul></div>
<div><h2>Waves (items/h)</h2><table class="num"><tr><th>wave</th><th>hours</th><th>offered</th>
<th>inducted</th><th>sorted</th><th>plan switched in</th></tr>{waves}</table>
<h2>Chutes closed longest (% of the shift)</h2><table class="num"><tr><th>loop</th><th>chute</th>
<th>parcels</th><th>full</th><th>changing</th><th>blocked</th><th>closed</th></tr>{worst_rows}</table></div>
</div>
<h2>Recirculation and inducts</h2>
{_img(images['recirculation'], 'Recirculation, induct blocking and carrier fill, %')}
<p class="cap">How to read: red, recirculations per 100 parcels leaving the loop; orange, the share of
time inducts waited for a free carrier; dotted blue, carrier fill (right axis). Red rising with the
fill: chutes close too often or the loop is near saturation.</p>
<h2>Chute occupancy</h2>
{_img(images['chute_occupancy'], 'Chute occupancy: % of each interval each chute was closed')}
<p class="cap">How to read: one row per chute in loop order, one column per interval; the darker, the
longer the chute could not take parcels (full, container change or blocked). A dark row: a chute
too small or too busy for its destinations; a dark column: a wave closing many chutes at once.</p>
<p class="sub">Files beside this page: kpis.json, parcels.parquet (one row per parcel), timeseries.csv,
chutes.csv and the PNG plots.</p>
</body></html>
"""
    path = Path(out_dir) / "report.html" if path is None else Path(path)
    path.write_text(page, encoding="utf-8")
    return path


def write_outputs(result, kpis, out_dir) -> dict:
    """Write every output file of a run into ``out_dir`` (created if needed).

    Parameters
    ----------
    result : ShiftResult
    kpis : dict
        From :func:`sorter.sim.kpis.compute_kpis`.
    out_dir : str or Path

    Returns
    -------
    dict
        Name -> path of each file written.

    Examples
    --------
    >>> from sorter.sim import simulate, default_scenario_path  # doctest: +SKIP
    >>> from sorter.sim.kpis import compute_kpis  # doctest: +SKIP
    >>> res = simulate(default_scenario_path())  # doctest: +SKIP
    >>> write_outputs(res, compute_kpis(res), "out")  # doctest: +SKIP
    """
    from sorter.sim.kpis import check_kpis
    if not all(hasattr(result, a) for a in ("scenario", "loops", "parcel_columns")):
        raise TypeError(f"write_outputs: result is a {type(result).__name__}: expected the "
                        "ShiftResult of sorter.sim.simulate (arguments: result, kpis, out_dir)")
    check_kpis(kpis, ("intervals", "chutes", "per_wave", "loops"), who="write_outputs")
    out = prepare_out_dir(out_dir)
    # every file written under a temporary name and renamed once all are written: a run
    # failing part-way leaves the folder's earlier files whole (was: a truncated CSV, or
    # this run's kpis.json beside an earlier run's report.html)
    with written_together(out, RUN_FILES) as tmp:
        _write_outputs(result, kpis, tmp)
    return {"kpis": out / "kpis.json", "parcels": out / "parcels.parquet",
            "timeseries": out / "timeseries.csv", "chutes": out / "chutes.csv",
            "throughput": out / "throughput.png", "recirculation": out / "recirculation.png",
            "chute_occupancy": out / "chute_occupancy.png", "report": out / "report.html"}


def _write_outputs(result, kpis, tmp):
    """:func:`write_outputs` into the paths of ``tmp`` (file name -> where to write it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # without the run's own wall-clock time: the same seed writes the same bytes
    tmp["kpis.json"].write_text(json.dumps({k: v for k, v in kpis.items() if k != "wall_s"},
                                           indent=1, default=_json_default) + "\n",
                                encoding="utf-8")
    cols = result.parcel_columns()
    table = pa.table({k: (pa.array(v.tolist(), type=pa.string()) if v.dtype == object else v)
                      for k, v in cols.items()})
    pq.write_table(table, tmp["parcels.parquet"])
    ts = kpis["intervals"]
    with open(tmp["timeseries.csv"], "w", newline="") as f:
        w = csv.writer(f)
        keys = list(ts)
        w.writerow(keys)
        for i in range(len(ts["start_s"])):
            w.writerow([_fmt(ts[k][i]) for k in keys])
    with open(tmp["chutes.csv"], "w", newline="") as f:
        w = csv.writer(f)
        keys = ["loop", "id", "kind", "discharged", "full_pct", "container_change_pct", "blocked_pct"]
        w.writerow(keys)
        for c in kpis["chutes"]:
            w.writerow([_fmt(c[k]) for k in keys])
    images = {"throughput": tmp["throughput.png"], "recirculation": tmp["recirculation.png"],
              "chute_occupancy": tmp["chute_occupancy.png"]}
    plot_throughput(kpis, result.scenario, images["throughput"])
    plot_recirculation(kpis, result.scenario, images["recirculation"])
    plot_chute_occupancy(result, images["chute_occupancy"])
    write_html_report(kpis, result, None, images, path=tmp["report.html"])


def _plans(plans, n_loops):
    """A wave's plan switches: the plan name, or ``loop: plan`` in a hub."""
    return ", ".join(v if n_loops == 1 else f"{lp}: {v}" for lp, v in plans.items())


def _fmt(v):
    """A CSV cell: a float as its shortest exact form (``kpis.json``'s digits; was 6
    significant digits, so a long shift's ``start_s`` / ``start_h`` and the rates in the CSV
    differed from kpis.json), without a trailing ``.0`` (``3600``, as before)."""
    if isinstance(v, float):
        r = repr(v)
        return r[:-2] if r.endswith(".0") else r
    return v


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")

"""QA, session 19 (visual, second pass): what tests/test_qa19_visual.py left for the planner.

Each test holds one fix: the sweep plot's axis and legend in words with units (the varied keys,
as given, kept beside them) and its title left-aligned as every other plot's; the chute-occupancy
map naming every wave, the first too; a shift's hour axis ticked every 0.5/1/2/3/4/6 h (a 24 h
shift was ticked every 5 h); the congestion heat map's never-visited cells white (they were black,
the bottom of the scale) and its inducts outlined; the floor report's chutes.png marking the
reject and overflow chutes. Structure only (labels, ticks, colours, legends), never pixels; Agg.
"""
from __future__ import annotations

import types
import warnings

import numpy as np
import pytest

from plot_capture import capture, close_figures
from sorter.resources import seed_path

SMALL = seed_path("floors/small_12x20.txt")


@pytest.fixture(autouse=True)
def _close_figures():
    yield from close_figures()


def _hex(c):
    import matplotlib.colors as mc
    return mc.to_hex(c, keep_alpha=False)


# --------------------------------------------------------------------------- sweep plot

def _sweep(vary, kind="loop", seeds=(0, 1)):
    """A SweepResult over the grid of ``vary`` with made-up KPIs (no simulation)."""
    import itertools

    from sorter.sweep import SweepResult
    points, rows = [], []
    for combo in itertools.product(*vary.values()):
        p = dict(zip(vary, combo))
        for s in seeds:
            x = float(combo[0])
            rows.append({"point": len(points), **p, "seed": s,
                         "sorted_per_hour": x * 0.8 + 10 * s, "offered_per_hour": x,
                         "net_sorted_per_hour": x * 0.5 + 10 * s})
        points.append(p)
    return SweepResult(rows=rows, vary=dict(vary), points=points, seeds=list(seeds),
                       scenario="qa sweep", kind=kind)


def test_sweep_plot_reads_in_words_with_units_and_keeps_the_keys(tmp_path, monkeypatch):
    """sweep.png labelled its x axis ``wave.0.rate_per_hour`` and its series
    ``loop.speed_mps=2.5``: the TOML keys, no units. Now the axis reads "wave 0 offered rate,
    items/h (wave.0.rate_per_hour)", a series "loop speed 2.5 m/s", the legend's title the
    key as given (so the picture still matches the command)."""
    figs = capture(monkeypatch)
    _sweep({"wave.0.rate_per_hour": [4000, 7000, 10000],
            "loop.speed_mps": [2.0, 2.5]}).plot(tmp_path / "sweep.png")
    ax = figs["sweep.png"].axes[0]
    assert ax.get_xlabel() == "wave 0 offered rate, items/h (wave.0.rate_per_hour)"
    leg = ax.get_legend()
    texts = [t.get_text() for t in leg.get_texts()]
    assert texts == ["loop speed 2 m/s", "loop speed 2.5 m/s", "offered load"]
    assert leg.get_title().get_text() == "loop.speed_mps"
    assert not any("=" in t for t in texts)


def test_sweep_plot_title_is_left_aligned_as_the_others(tmp_path, monkeypatch):
    figs = capture(monkeypatch)
    _sweep({"loop.speed_mps": [2.0, 2.5]}).plot(tmp_path / "sweep.png")
    ax = figs["sweep.png"].axes[0]
    assert ax.get_title("center") == ""
    assert ax.get_title("left") == "qa sweep: mean over 2 seeds, 95% CI bands"
    assert ax.get_xlabel() == "loop speed, m/s (loop.speed_mps)"


def test_sweep_plot_of_a_floor_and_of_hub_keys(tmp_path, monkeypatch):
    """A floor sweep's ``robots`` is already a word (no key repeated); a hub's second loop
    and an unlisted key get a name and a unit from the key itself."""
    from sorter.sweep import _axis_label, _value_label
    figs = capture(monkeypatch)
    _sweep({"robots": [5, 10, 20], "chute_capacity": [20, 50]}, kind="floor").plot(
        tmp_path / "sweep.png")
    ax = figs["sweep.png"].axes[0]
    assert ax.get_xlabel() == "robots"
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["chute capacity 20 parcels", "chute capacity 50 parcels"]
    assert _axis_label("loop.1.speed_mps") == "loop 1 speed, m/s (loop.1.speed_mps)"
    assert _axis_label("wave[2].rate_per_hour") == \
        "wave 2 offered rate, items/h (wave[2].rate_per_hour)"
    assert _axis_label("blockages.duration_s") == "duration, s (blockages.duration_s)"
    assert _value_label("loop.induct.0.max_rate_per_hour", 3000) == \
        "induct 0 max rate 3,000 items/h"


# --------------------------------------------------------------------------- shift plots

def _two_waves():
    loop = {"name": "S1", "length_m": 120.0, "speed_mps": 2.0, "pitch_m": 0.8, "n_chutes": 20,
            "n_overflow": 1, "n_reject": 1, "capacity": 12, "n_inducts": 2,
            "induct_rate": 2500, "n_destinations": 15}
    return {"scenario": {"name": "qa19 waves", "seed": 4, "shift_hours": 0.4,
                         "interval_minutes": 2},
            "loop": loop,
            "wave": [{"name": "ramp-up", "start_h": 0.0, "end_h": 0.15, "rate_per_hour": 2000},
                     {"name": "peak", "start_h": 0.15, "end_h": 0.4, "rate_per_hour": 5000}]}


def test_occupancy_map_names_every_wave_the_first_too(tmp_path, monkeypatch):
    """chute_occupancy.png named waves at their start lines from the second on: the first
    wave ("ramp-up") was never named. Every wave is named now; a dashed line where a later
    one starts (none at 0)."""
    from sorter.report import write_outputs
    from sorter.sim.kpis import compute_kpis
    from sorter.sim.loop import simulate
    from sorter.sim.scenario import parse_scenario
    figs = capture(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = simulate(parse_scenario(_two_waves()), progress=False)
        write_outputs(res, compute_kpis(res), tmp_path)
    ax = figs["chute_occupancy.png"].axes[0]
    names = [t.get_text().strip() for t in ax.texts if t.get_visible()]
    assert names == ["ramp-up", "peak"]
    dashed = [ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert dashed == [pytest.approx(0.15)]


@pytest.mark.parametrize("hours, step", [(3, 0.5), (8, 1), (12, 2), (16, 2), (24, 3),
                                         (32, 4), (48, 6)])
def test_shift_axis_ticks_every_round_number_of_hours(hours, step):
    """A 24 h shift's axis was ticked where matplotlib chose (0, 5, 10, 15, 20): now every
    0.5, 1, 2, 3, 4 or 6 h, at most 8 intervals, labelled as hours (no ".0")."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sorter.report import _shift_axis
    fig, ax = plt.subplots()
    ax.set_xlim(0, hours)
    _shift_axis(ax, types.SimpleNamespace(shift_hours=hours))
    ticks = [t for t in ax.get_xticks() if -1e-9 <= t <= hours + 1e-9]
    assert ticks[0] == 0 and ticks[-1] == pytest.approx(hours)
    assert np.allclose(np.diff(ticks), step)
    assert len(ticks) - 1 <= 8
    fmt = ax.xaxis.get_major_formatter()
    assert fmt(24.0, 0) == "24" and fmt(1.5, 0) == "1.5"
    assert ax.get_xlabel() == "hours into the shift"
    if step >= 2:                        # hour marks between the labelled ticks
        minor = ax.xaxis.get_minor_locator().tick_values(0, hours)
        assert np.allclose(np.diff(minor), 1)


def test_shift_axis_of_short_and_long_shifts_unchanged():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sorter.report import _shift_axis
    fig, ax = plt.subplots()
    _shift_axis(ax, types.SimpleNamespace(shift_hours=1.0))
    assert ax.get_xlabel() == "minutes into the shift"
    fig, ax = plt.subplots()
    _shift_axis(ax, types.SimpleNamespace(shift_hours=72.0))
    assert ax.get_xlabel() == "hours into the shift (a tick a day)"


# --------------------------------------------------------------------------- heat map

@pytest.fixture
def heat(tmp_path, monkeypatch):
    """small_12x20's heat map after robots stood on three cells (one of them an induct)."""
    from sorter.layout import load_floor
    from sorter.layout.draw import congestion_heatmap
    if not SMALL.is_file():
        pytest.skip(f"{SMALL} absent")
    floor = load_floor(SMALL)
    induct = int(floor.inducts[0].cells[0])
    free = [int(c) for c in floor.free_cells if int(c) != induct][:2]
    pos = np.array([[free[0], free[1], induct]] * 11, np.int64)
    figs = capture(monkeypatch)
    counts = congestion_heatmap(floor, pos, tmp_path / "heatmap.png")
    return floor, counts, figs["heatmap.png"]


def test_heatmap_never_visited_cells_are_white_not_the_scale_bottom(heat):
    """Cells no robot visited were black, the colour of the scale's bottom: a quiet aisle and
    a cell visited once looked alike. They are white now (below the scale, which starts at one
    visit), and the title says so; obstacles stay grey."""
    from sorter.layout.floor import OBSTACLE
    floor, counts, fig = heat
    ax = fig.axes[0]
    im = ax.get_images()[0]
    rgba = im.to_rgba(im.get_array()).reshape(-1, 4)
    never = np.flatnonzero((counts == 0) & (floor.cells != OBSTACLE))
    seen = np.flatnonzero(counts > 0)
    assert never.size > 100 and seen.size == 3
    assert {_hex(c) for c in rgba[never]} == {"#ffffff"}
    assert "#ffffff" not in {_hex(c) for c in rgba[seen]}
    assert {_hex(c) for c in rgba[floor.cells == OBSTACLE]} == {"#9db4c0"}
    cmap_bottom = _hex(im.get_cmap()(0.0))
    assert cmap_bottom != "#ffffff" and _hex(rgba[never[0]]) != cmap_bottom
    title = ax.get_title("left")
    assert "white: never visited" in title and "grey: obstacles and chute bodies" in title


def test_heatmap_outlines_the_inducts(heat):
    """The inducts (where every errand starts) were not marked: one green outline per induct
    cell now, named in the title."""
    from matplotlib.collections import PatchCollection
    floor, _, fig = heat
    ax = fig.axes[0]
    cols = [c for c in ax.collections if isinstance(c, PatchCollection)]
    assert len(cols) == 1
    paths = cols[0].get_paths()
    want = sorted((int(c) // floor.width, int(c) % floor.width)
                  for st in floor.inducts for c in st.cells)
    got = sorted((int(round(p.vertices[:4, 1].mean())), int(round(p.vertices[:4, 0].mean())))
                 for p in paths)
    assert len(paths) == len(want) == 4
    assert got == want
    assert {_hex(c) for c in cols[0].get_edgecolor()} == {"#3aa655"}
    assert len(cols[0].get_facecolor()) == 0 or all(c[3] == 0 for c in cols[0].get_facecolor())
    assert "green outline: inducts" in ax.get_title("left")


# --------------------------------------------------------------------------- chutes.png

def test_chute_bars_mark_reject_and_overflow_chutes():
    """chutes.png drew every chute brown: the reject chute's bar (the no-reads, the parcels
    re-routed too often) read as a busy destination. Reject and overflow chutes now have their
    own colour and hatch, their labels the same colour, and a legend names the kinds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sorter.agv.report import plot_chutes
    saved = {}
    orig = matplotlib.figure.Figure.savefig

    def spy(self, fname, *a, **kw):
        saved["fig"] = self
        return orig(self, fname, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(matplotlib.figure.Figure, "savefig", spy)
        mp.setattr(plt, "close", lambda *a, **k: None)
        plot_chutes({"C0": 40, "C1": 30, "R0": 20, "OV": 10, "R1": 0}, "/dev/null",
                    kinds={"C0": "destination", "C1": "destination", "R0": "reject",
                           "R1": "reject", "OV": "overflow"}, title="qa")
    ax = saved["fig"].axes[0]
    bars = {t.get_text(): b for t, b in zip(ax.get_xticklabels(), ax.patches)}
    assert list(bars) == ["C0", "C1", "R0", "OV", "R1"]
    assert _hex(bars["C0"].get_facecolor()) == _hex(bars["C1"].get_facecolor()) == "#8c5a2b"
    assert _hex(bars["R0"].get_facecolor()) == _hex(bars["R1"].get_facecolor()) != "#8c5a2b"
    assert _hex(bars["OV"].get_facecolor()) not in ("#8c5a2b", _hex(bars["R0"].get_facecolor()))
    assert bars["R0"].get_hatch() and bars["OV"].get_hatch() and not bars["C0"].get_hatch()
    labels = {t.get_text(): _hex(t.get_color()) for t in ax.get_xticklabels()}
    assert labels["R1"] == _hex(bars["R1"].get_facecolor())     # no bar (0): the label says it
    assert labels["OV"] == _hex(bars["OV"].get_facecolor())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "destination chute", "overflow chute", "reject chute"]


def test_chute_bars_without_kinds_unchanged():
    from sorter.agv.report import chute_kinds_of, plot_chutes
    figs = {}
    import matplotlib
    matplotlib.use("Agg")
    orig = matplotlib.figure.Figure.savefig
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(matplotlib.figure.Figure, "savefig",
                   lambda self, f, *a, **k: (figs.setdefault("f", self), orig(self, f, *a, **k)))
        import matplotlib.pyplot as plt
        mp.setattr(plt, "close", lambda *a, **k: None)
        plot_chutes({"C0": 4, "C1": 3}, "/dev/null")
    ax = figs["f"].axes[0]
    assert {_hex(b.get_facecolor()) for b in ax.patches} == {"#8c5a2b"}
    assert ax.get_legend() is None
    assert chute_kinds_of(object()) is None


def test_floor_report_chutes_png_marks_the_generated_plans_reject_chutes(tmp_path, capsys,
                                                                         monkeypatch):
    """``sorter mapf FLOOR --scenario sorting --report``: the generated plan's reject chutes
    (2 of small_12x20's 8) and overflow chute are marked in chutes.png; the reject bars hold
    the run's rejected parcels (kpis.json), no more, no less."""
    import json

    from sorter.cli import main
    if not SMALL.is_file():
        pytest.skip(f"{SMALL} absent")
    figs = capture(monkeypatch)
    out = tmp_path / "f"
    assert main(["mapf", str(SMALL), "--robots", "8", "--steps", "120", "--scenario",
                 "sorting", "--no-read-rate", "0.2", "--out", str(out), "--report"]) == 0
    capsys.readouterr()
    k = json.loads((out / "kpis.json").read_text())
    ax = figs["chutes.png"].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "destination chute", "overflow chute", "reject chute"]
    bars = {t.get_text(): b for t, b in zip(ax.get_xticklabels(), ax.patches)}
    assert len(bars) == 8
    by = {}
    for name, b in bars.items():
        by.setdefault(_hex(b.get_facecolor()), []).append(name)
    reject = by.get("#d1495b", [])
    assert len(reject) == 2 and len(by.get("#edae49", [])) == 1
    assert len(by["#8c5a2b"]) == 5
    assert k["parcels_rejected"] > 0
    assert sum(bars[n].get_height() for n in reject) == k["parcels_rejected"]
    labels = {t.get_text(): _hex(t.get_color()) for t in ax.get_xticklabels()}
    assert all(labels[n] == "#d1495b" for n in reject)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Red, hatched: reject chutes; amber, dotted: overflow chutes." in page

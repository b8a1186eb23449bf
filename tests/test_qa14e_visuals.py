"""QA pass (session 14e) on the figures and report pages: what a sortation planner and a floor
manager see (``sorter run --out``, ``sorter mapf --report --heatmap --animate``, ``sorter sweep
--out``). Each test checks a behaviour of the plots (a title naming the run, a formatter or a
locator in use, a legend placed outside the axes, a caption under each figure), never pixels.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from plot_capture import capture, close_figures, renderer as _renderer, run_shift as _run
from sorter.cli import main
from sorter.resources import seed_path

SMALL_FLOOR = str(seed_path("floors/small_12x20.txt"))
OKABE_ITO = {"#0072b2", "#e69f00", "#009e73", "#d55e00", "#56b4e9", "#cc79a7", "#000000",
             "#f0e442"}


# --------------------------------------------------------------------------- helpers

def _loop(**kw):
    d = {"name": "S1", "length_m": 120.0, "speed_mps": 2.0, "pitch_m": 0.8, "n_chutes": 40,
         "n_overflow": 2, "n_reject": 2, "capacity": 12, "n_inducts": 3, "induct_rate": 2500,
         "n_destinations": 30}
    d.update(kw)
    return d


def _doc(*, name="qa14e run", hours=0.5, interval=5, loops=None, seed=3):
    return {"scenario": {"name": name, "seed": seed, "shift_hours": hours,
                         "interval_minutes": interval},
            "loop": loops if loops is not None else _loop(),
            "wave": [{"name": "all", "start_h": 0.0, "end_h": hours, "rate_per_hour": 6000}]}


_capture = capture


@pytest.fixture(autouse=True)
def _close_figures():
    yield from close_figures()


def _title(ax) -> str:
    return " ".join(t for t in (ax.get_title("left"), ax.get_title()) if t)


def _inside(a, b) -> bool:
    return a.x0 >= b.x0 - 1 and a.x1 <= b.x1 + 1 and a.y0 >= b.y0 - 1 and a.y1 <= b.y1 + 1


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _captions(page: str) -> list:
    """(image alt, caption text right after it) for every inlined image of a page."""
    return re.findall(r'<img src="data:image/png;base64,[^"]*" alt="([^"]*)">\s*'
                      r'<p class="cap">([^<]*)</p>', page)


# --------------------------------------------------------------------------- loop shift report

def test_every_shift_plot_names_its_scenario_and_seed(tmp_path, monkeypatch):
    """The three PNGs of `sorter run --out` had generic titles ("Throughput against offered
    load"): a PNG passed on alone did not say which run it shows."""
    k, figs = _run(_doc(name="night shift B"), tmp_path, monkeypatch)
    for png in ("throughput.png", "recirculation.png", "chute_occupancy.png"):
        title = _title(figs[png].axes[0])
        assert "night shift B" in title and f"seed {k['seed']}" in title, (png, title)


def test_short_shift_reads_in_minutes_and_curves_do_not_drop_to_zero_at_the_ends(
        tmp_path, monkeypatch):
    """A half-hour shift's x axis read 0.0, 0.1 ... 0.5 hours; and every curve (a `stairs`
    drawn down to its baseline) fell to 0 at the first and the last edge, a false drop."""
    _, figs = _run(_doc(hours=0.5, interval=5), tmp_path, monkeypatch)
    for png in ("throughput.png", "recirculation.png", "chute_occupancy.png"):
        ax = figs[png].axes[0]
        assert ax.get_xlabel().startswith("minutes into the shift"), png
        fmt = ax.xaxis.get_major_formatter()
        assert fmt(0.25, 0) == "15" and fmt(0.5, 0) == "30"
        locs = ax.xaxis.get_major_locator().tick_values(0, 0.5)
        minutes = np.round(np.asarray(locs) * 60, 6)
        assert np.all(minutes == np.round(minutes)), minutes      # whole minutes
    from matplotlib.patches import StepPatch
    for png in ("throughput.png", "recirculation.png"):
        steps = [p for a in figs[png].axes for p in a.patches if isinstance(p, StepPatch)]
        assert steps and all(p.get_data().baseline is None for p in steps), png


@pytest.mark.parametrize("hours, every, word", [(168, 24, "a day"), (24 * 30, 24 * 7, "a week"),
                                                (8, None, None)])
def test_long_shifts_tick_by_day_or_week(hours, every, word):
    """A week-long shift had ticks at 0, 20, 40 ... hours: now a tick a day (a week beyond 12
    days), labelled as such; a shift of a day is in hours (every 1/2/3/4/6 h since
    tests/test_qa19_visual2.py: matplotlib ticked a 24 h shift every 5 h)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sorter.report import _shift_axis
    fig, ax = plt.subplots()
    ax.set_xlim(0, hours)
    _shift_axis(ax, SimpleNamespace(shift_hours=hours))
    loc = ax.xaxis.get_major_locator()
    if every is None:
        assert ax.get_xlabel() == "hours into the shift"
        assert np.allclose(np.diff(loc.tick_values(0, hours)), 1)     # 8 h: every hour
        return
    assert word in ax.get_xlabel()
    ticks = loc.tick_values(0, hours)
    assert np.allclose(np.diff(ticks), every)
    assert ax.xaxis.get_major_formatter()(168.0, 0) == "168"
    assert ax.xaxis.get_major_formatter()(1680.0, 0) == "1,680"


def _week_of_minutes(seed=0):
    """Synthetic KPIs of a week in 1-minute intervals (10,080 of them) and its scenario."""
    rng = np.random.default_rng(seed)
    n = 7 * 24 * 60
    start_h = np.arange(n) / 60.0
    counts = {key: rng.integers(100, 300, n) for key in ("sorted", "rejected", "recirculations")}
    rates = {key: rng.uniform(8000, 16000, n) for key in (
        "offered_per_hour", "inducted_per_hour", "sorted_per_hour", "rejected_per_hour")}
    ts = {"start_h": start_h.tolist(), **{k: v.tolist() for k, v in counts.items()},
          **{k: v.tolist() for k, v in rates.items()},
          "induct_blocking_pct": rng.uniform(0, 10, n).tolist(),
          "carrier_fill_pct": rng.uniform(20, 60, n).tolist()}
    kpis = {"intervals": ts, "nameplate_per_hour": 15000.0, "seed": 4}
    wave = SimpleNamespace(name="all week", start_s=0.0, end_s=168 * 3600.0)
    sc = SimpleNamespace(name="a week", interval_minutes=1.0, shift_hours=168.0,
                         shift_s=168 * 3600.0, waves=[wave])
    return kpis, sc


def test_a_week_of_minute_intervals_is_drawn_hour_by_hour(tmp_path, monkeypatch):
    """A week in 1-minute intervals drew 10,080 steps per curve: a solid band where offered,
    inducted and sorted could not be told apart, the nameplate label lost under it. Beyond
    240 intervals the curves are pooled into round spans (here 1 h): rates and shares as
    means, recirculation as a ratio of the pooled counts; the y label says so."""
    from matplotlib.patches import StepPatch

    from sorter.report import plot_recirculation, plot_throughput
    kpis, sc = _week_of_minutes()
    ts = kpis["intervals"]
    figs = _capture(monkeypatch)
    plot_throughput(kpis, sc, tmp_path / "t.png")
    plot_recirculation(kpis, sc, tmp_path / "r.png")
    ax = figs["t.png"].axes[0]
    steps = [p for p in ax.patches if isinstance(p, StepPatch)]
    assert len(steps) == 4
    offered = steps[0].get_data()
    assert len(offered.values) == 168
    assert np.allclose(offered.values, np.asarray(ts["offered_per_hour"]).reshape(168, 60).mean(1))
    assert offered.edges[0] == 0 and offered.edges[-1] == pytest.approx(168)
    assert "mean over 1 h of 1-min intervals" in ax.get_ylabel()
    ax = figs["r.png"].axes[0]
    rec = [p for p in ax.patches if isinstance(p, StepPatch)][0].get_data()
    left = (np.asarray(ts["sorted"]) + np.asarray(ts["rejected"])).reshape(168, 60).sum(1)
    expect = 100.0 * np.asarray(ts["recirculations"]).reshape(168, 60).sum(1) / left
    assert np.allclose(rec.values, expect)
    assert "mean over 1 h" in ax.get_ylabel()
    # a day of 15-minute intervals (96) is drawn as it is
    from sorter.report import _pooling
    assert _pooling(96, 15) == 1 and _pooling(10_080, 1) == 60 and _pooling(672, 15) == 4


def test_hub_occupancy_names_each_loop_band(tmp_path, monkeypatch):
    """A hub's occupancy map drew its loops as bands split by thin lines, with no name: which
    band was loop B was guessed from the tick labels. Each band now carries its loop's name,
    inside the axes, and not over another."""
    doc = _doc(loops=[_loop(name="North"), _loop(name="South", n_chutes=30, n_destinations=20)],
               hours=0.25)
    _, figs = _run(doc, tmp_path, monkeypatch)
    fig = figs["chute_occupancy.png"]
    ax = fig.axes[0]
    names = {t.get_text(): t for t in ax.texts if t.get_text().startswith("loop ")}
    assert set(names) == {"loop North", "loop South"}
    r = _renderer(fig)
    a, b = (names[n].get_window_extent(r) for n in ("loop North", "loop South"))
    assert not _overlap(a, b)
    for box in (a, b):
        assert _inside(box, ax.get_window_extent(r))
    # North's band (rows 0..42) is above South's
    assert names["loop North"].get_position()[1] < names["loop South"].get_position()[1]


def test_shift_report_has_a_caption_under_every_figure_and_no_external_resource(
        tmp_path, monkeypatch):
    """report.html showed three plots with a heading each but no word on how to read them."""
    k, _ = _run(_doc(), tmp_path, monkeypatch)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    caps = _captions(page)
    assert len(caps) == page.count("<img ") == 3
    for alt, cap in caps:
        assert cap.startswith("How to read:") and len(cap) > 60, alt
    assert "5-minute step" in caps[0][1]                # the run's own interval
    assert not re.search(r'(src|href)="(https?:)?//', page)
    # headline first: the big figures come before the first plot
    assert page.index('class="big"') < page.index("<img ")
    # the worst chutes: a total column equal to the sum of its parts
    rows = re.findall(r"<tr><td>[^<]*</td><td>[^<]*</td><td>[\d,]+</td><td>([\d.]+)</td>"
                      r"<td>([\d.]+)</td><td>([\d.]+)</td><td>([\d.]+)</td></tr>", page)
    assert rows
    for full, change, blocked, closed in rows:
        assert float(closed) == pytest.approx(float(full) + float(change) + float(blocked),
                                              abs=0.11)


# --------------------------------------------------------------------------- sweep plot

def _sweep(n_groups, n_x=4, seeds=(0, 1), kind="loop"):
    from sorter.sweep import SweepResult
    vary = {"wave.0.rate_per_hour": [4000 * (i + 1) for i in range(n_x)],
            "loop.n_inducts": list(range(1, n_groups + 1))}
    points, rows = [], []
    for xv in vary["wave.0.rate_per_hour"]:
        for g in vary["loop.n_inducts"]:
            p = len(points)
            points.append({"wave.0.rate_per_hour": xv, "loop.n_inducts": g})
            for s in seeds:
                rows.append({"point": p, "wave.0.rate_per_hour": xv, "loop.n_inducts": g,
                             "seed": s, "sorted_per_hour": min(xv, 3000.0 * g) + 50 * s,
                             "offered_per_hour": float(xv),
                             "net_sorted_per_hour": min(xv, 3000.0 * g)})
    return SweepResult(rows=rows, vary=vary, points=points, seeds=list(seeds),
                       scenario="qa sweep", kind=kind)


@pytest.mark.parametrize("n_groups", [2, 7])
def test_sweep_plot_thousands_colour_blind_palette_and_legend_off_the_data(
        n_groups, tmp_path, monkeypatch):
    """sweep.png: y ticks read 12000 (not 12,000); matplotlib's default colours (blue /
    orange / green / red) are not colour-blind safe; with many series the legend covered the
    curves. Now: thousands separators, Okabe-Ito colours and a marker per series, x ticks at
    the values run, and the legend beside the axes beyond four entries."""
    figs = _capture(monkeypatch)
    _sweep(n_groups).plot(tmp_path / "sweep.png")
    fig = figs["sweep.png"]
    ax = fig.axes[0]
    assert ax.yaxis.get_major_formatter()(12000.0, 0) == "12,000"
    assert ax.xaxis.get_major_formatter()(16000.0, 0) == "16,000"
    assert ax.yaxis.get_major_formatter()(0.5, 0) == "0.5"
    assert list(ax.get_xticks()) == [4000, 8000, 12000, 16000]
    series = [ln for ln in ax.get_lines() if ln.get_marker() not in (None, "None", "")]
    assert len(series) == n_groups
    import matplotlib.colors as mc
    assert {mc.to_hex(ln.get_color()) for ln in series} <= OKABE_ITO
    assert len({ln.get_marker() for ln in series}) == n_groups
    r = _renderer(fig)
    legend = ax.get_legend().get_window_extent(r)
    if n_groups + 1 > 4:        # the series and the offered load
        assert legend.x0 >= ax.get_window_extent(r).x1 - 1
        assert _inside(legend, fig.bbox)                   # not cut off at the right edge
    else:
        assert _inside(legend, ax.get_window_extent(r))


# --------------------------------------------------------------------------- robot floor report

def _mapf(args, capsys):
    rc = main(["mapf", *args])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    return cap.out


def test_floor_report_plots_name_the_run_and_read_per_hour(tmp_path, capsys, monkeypatch):
    """Floor report: titles were "Throughput over the run" / "What the robots do" for every
    floor; throughput read only "per step" (a planner asks parcels per hour); the robot
    states' legend listed states no robot was ever in (faulted without faults)."""
    figs = _capture(monkeypatch)
    out = tmp_path / "f"
    _mapf([SMALL_FLOOR, "--robots", "8", "--steps", "120", "--scenario", "sorting",
           "--seconds-per-step", "2", "--out", str(out), "--report"], capsys)
    k = json.loads((out / "kpis.json").read_text())
    name = Path(SMALL_FLOOR).stem
    for png in ("throughput.png", "robot_states.png", "waiting.png", "chutes.png"):
        title = _title(figs[png].axes[0])
        assert name in title and "8 robots" in title, (png, title)
    ax = figs["throughput.png"].axes[0]
    sec = [c for c in ax.child_axes if "per hour" in c.get_ylabel()]
    assert len(sec) == 1 and "2 s per step" in sec[0].get_ylabel()
    lo, hi = ax.get_ylim()
    assert sec[0].get_ylim()[1] == pytest.approx(hi * 1800)      # 3600 s / 2 s per step
    labels = [t.get_text() for t in figs["robot_states.png"].axes[0].get_legend().get_texts()]
    util = k["robot_utilisation"]
    assert "faulted" not in labels and util["faulted"] == 0
    assert all(s.replace("_", " ") in labels for s, v in util.items() if v > 0)
    assert figs["chutes.png"].axes[0].get_xlabel() == "chute, busiest first"
    page = (out / "report.html").read_text(encoding="utf-8")
    caps = _captions(page)
    assert len(caps) == page.count("<img ") == 4
    assert all(c.startswith("How to read:") for _, c in caps)
    # the key figures right after the throughput plot, before the other plots
    first, second = [m.start() for m in re.finditer("<img ", page)][:2]
    assert first < page.index("<h2>Key figures</h2>") < second
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_waiting_map_scale_ends_near_the_busiest_cell(tmp_path, monkeypatch):
    """The waiting map's colour scale always ran to 100 %: on a big floor where a cell waits
    1-2 % of the steps, every cell was all but white. The scale now ends at the first of 5, 20,
    50, 100 % above the busiest cell (ticks no further)."""
    from sorter.agv.report import plot_waiting
    from sorter.layout import load_floor
    floor = load_floor(SMALL_FLOOR)
    figs = _capture(monkeypatch)
    for busiest, top in ((2, 5), (15, 20), (80, 100)):
        counts = np.zeros(floor.n_cells, np.int64)
        counts[floor.free_cells[:3]] = [1, busiest // 2 or 1, busiest]
        plot_waiting(floor, counts, 100, tmp_path / f"w{top}.png", title="qa run")
        ax = figs[f"w{top}.png"].axes[0]
        vmax = ax.images[-1].get_clim()[1]
        assert vmax == pytest.approx(np.log10(1 + top))
        cb = figs[f"w{top}.png"].axes[-1]
        shown = [float(t.get_text()) for t in cb.get_yticklabels() if t.get_text()]
        assert max(shown) == top
        assert "qa run" in _title(ax)


# --------------------------------------------------------------------------- floor drawings

def _floor(text):
    from sorter.layout import Floor
    return Floor.from_ascii(text)


def test_robots_stand_out_on_a_floor_of_drop_cells_and_dots_scale_with_cells():
    """On a LoRR floor (drop cells everywhere) the animation was an orange sheet hiding 1-px
    robots. With robots on it the floor is now pale, drop cells everywhere are drawn plain,
    and a dot is about 3/4 of a cell across (never below ~2 px)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sorter.layout.draw import _PALE_COLOURS, _figsize, _role_image, draw_floor
    rows = ["IDCDDCDDCDDCD."] + [".DCDDCDDCDDCD."] * 5 + ["." * 14]
    floor = _floor("\n".join(rows))
    assert (_role_image(floor) == 3).sum() > 0.3 * floor.n_cells
    fig, ax = plt.subplots(figsize=_figsize(floor, base=8.0))
    draw_floor(floor, ax=ax, robots=np.asarray(floor.free_cells)[:3])
    img = ax.images[0].get_array()
    assert not np.any(np.asarray(img) == 3)            # drop cells drawn as travel
    assert ax.images[0].get_cmap().colors == _PALE_COLOURS
    sizes = ax.collections[-1].get_sizes()
    box = ax.get_position()
    cell_pt = 72 * min(box.width * fig.get_figwidth() / floor.width,
                       box.height * fig.get_figheight() / floor.height)
    assert sizes[0] == pytest.approx(min(60.0, max(3.0, (0.75 * cell_pt) ** 2)))
    # without robots, the floor keeps its full colours and its drop cells
    fig2, ax2 = plt.subplots()
    draw_floor(floor, ax=ax2)
    assert np.any(np.asarray(ax2.images[0].get_array()) == 3)


def test_wide_floors_get_a_wider_picture():
    """A 140 x 500 LoRR floor was drawn 8-10 inches wide: under 2 px a cell. Wide floors now get
    up to 16 inches (>= 2.5 px a cell at 80 dpi); ordinary floors keep their size."""
    from sorter.layout.draw import _figsize
    wide = SimpleNamespace(height=140, width=500)
    w, h = _figsize(wide, base=8.0)
    assert w == 16.0 and h == pytest.approx(16.0 * 140 / 500 + 0.8)
    assert _figsize(SimpleNamespace(height=33, width=57)) == pytest.approx(
        (10.0, 10.0 * 33 / 57 + 0.8))


def test_congestion_heatmap_colour_bar_reads_in_visits(tmp_path, monkeypatch):
    """heatmap.png's colour bar read log10(1 + visits) from 0 to 2.5; its title printed
    1000 steps without a separator. The ticks now read visits (1, 10, 100 ...; never-visited
    cells are white, below the scale, since tests/test_qa19_visual2.py)."""
    from sorter.layout.draw import congestion_heatmap
    floor = _floor("I....\n.....\n..CD.\n.....")
    free = np.asarray(floor.free_cells)
    steps = 1200
    pos = np.tile(free[:2], (steps + 1, 1)).astype(np.int64)    # two robots parked: 1,201 visits
    figs = _capture(monkeypatch)
    counts = congestion_heatmap(floor, pos, tmp_path / "h.png")
    assert counts.max() == steps + 1
    fig = figs["h.png"]
    cb = fig.axes[-1]
    labels = [t.get_text() for t in cb.get_yticklabels()]
    assert labels == ["1", "10", "100", "1,000"]
    assert "log" in cb.get_ylabel() and "visits" in cb.get_ylabel()
    assert "1,200 steps" in _title(fig.axes[0])

"""QA, session 19 (visual): the plots and pages a sortation planner reads, looked at as one.

Follow-up of tests/test_qa14e_visuals.py and tests/test_qa_session13_reports.py (their helpers:
tests/plot_capture.py). Each test holds one fix: the one-way lanes of an ASCII floor drawn
(``Floor.draw``, the mapf animation), chute bar labels upright and legible when there are few,
the congestion heat map's grey cells named, the recirculation plot's left axis saying what it
counts, and the shift report's "rejected" headline giving the reasons (as kpis.json has them).
Structure only (labels, titles, text), never pixels; Agg backend.
"""
from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from plot_capture import capture, close_figures, renderer as _renderer, run_shift as _run
from sorter.resources import seed_path

ONEWAY = seed_path("floors/oneway_7x16.txt")
QUEUES = seed_path("floors/queues_11x29.txt")

_capture = capture


@pytest.fixture(autouse=True)
def _close_figures():
    yield from close_figures()


def _doc(*, name="qa19 shift", hours=0.5, interval=5, loops=None, scan=None, seed=2):
    loop = {"name": "S1", "length_m": 120.0, "speed_mps": 2.0, "pitch_m": 0.8, "n_chutes": 40,
            "n_overflow": 2, "n_reject": 2, "capacity": 12, "n_inducts": 3,
            "induct_rate": 2500, "n_destinations": 30}
    d = {"scenario": {"name": name, "seed": seed, "shift_hours": hours,
                      "interval_minutes": interval},
         "loop": loops if loops is not None else loop,
         "wave": [{"name": "all", "start_h": 0.0, "end_h": hours, "rate_per_hour": 6000}]}
    if scan is not None:
        d["scan"] = scan
    return d


def _quiver(ax):
    from matplotlib.quiver import Quiver
    q = [c for c in ax.collections if isinstance(c, Quiver)]
    return q[0] if q else None


_ARROW_UV = {">": (1, 0), "v": (0, -1), "<": (-1, 0), "^": (0, 1)}   # as draw_floor's quiver


# --------------------------------------------------------------------------- floor drawing

def test_ascii_one_way_lanes_are_drawn_with_their_arrows():
    """oneway_7x16 (a one-way loop of ``> v < ^`` lanes round the chutes) drew as a plain
    floor: arrows went only on cells with a single exit, and an ASCII arrow cell keeps 2-3
    (robots may turn off it). Now each arrow cell of the file gets its arrow, pointing its
    way, and nothing else does."""
    from sorter.layout import load_floor
    if not ONEWAY.is_file():
        pytest.skip(f"{ONEWAY} absent")
    floor = load_floor(ONEWAY)
    rows = [ln for ln in ONEWAY.read_text().splitlines() if ln and not ln.startswith("#")]
    want = {(r, c): _ARROW_UV[ch] for r, ln in enumerate(rows) for c, ch in enumerate(ln)
            if ch in _ARROW_UV}
    assert len(want) == 34
    for robots in (None, [0]):                     # the plain floor, and under robots
        ax = floor.draw(robots=robots)
        q = _quiver(ax)
        assert q is not None, "no arrow drawn on a one-way floor"
        got = {(int(round(y)), int(round(x))): (int(u), int(v))
               for (x, y), u, v in zip(q.get_offsets(), q.U, q.V)}
        assert got == want


def test_single_exit_cells_keep_their_arrows():
    """The induct queues (cells with one exit) are drawn as before: 16 arrows on
    queues_11x29, every one along the cell's only exit."""
    from sorter.layout import load_floor
    from sorter.layout.draw import _one_way_cells
    if not QUEUES.is_file():
        pytest.skip(f"{QUEUES} absent")
    floor = load_floor(QUEUES)
    cells, dirs = _one_way_cells(floor)
    assert len(cells) == 16
    assert np.all(floor.moves[cells, dirs] >= 0)
    assert np.all((floor.moves[cells] >= 0).sum(axis=1) == 1)
    q = _quiver(floor.draw())
    assert q is not None and len(q.get_offsets()) == 16


def test_an_undirected_floor_gets_no_arrows():
    from sorter.layout import Floor
    assert _quiver(Floor.from_ascii("I...\n.CD.\n....").draw()) is None


def test_congestion_heatmap_title_names_the_grey_cells(tmp_path, monkeypatch):
    """heatmap.png drew obstacles and chute bodies light grey-blue beside an 'inferno' scale
    that has no grey: nothing on the picture said what those cells were."""
    from sorter.layout import load_floor
    from sorter.layout.draw import congestion_heatmap
    floor = load_floor(seed_path("floors/small_12x20.txt"))
    pos = np.tile(np.asarray(floor.free_cells)[:3], (11, 1)).astype(np.int64)
    figs = _capture(monkeypatch)
    congestion_heatmap(floor, pos, tmp_path / "heatmap.png")
    ax = figs["heatmap.png"].axes[0]
    title = ax.get_title("left")
    assert "small_12x20" in title and "10 steps" in title
    assert "grey: obstacles and chute bodies" in title
    fig = figs["heatmap.png"]                      # the longer title still fits the picture
    fig.canvas.draw()
    box = ax.title.get_window_extent(_renderer(fig))
    assert box.x1 <= fig.bbox.x1 + 1


# --------------------------------------------------------------------------- floor report

@pytest.mark.parametrize("n, upright", [(8, True), (28, True), (60, False)])
def test_chute_bar_labels_are_legible_and_do_not_overlap(tmp_path, monkeypatch, n, upright):
    """chutes.png turned every chute label on end in 6 pt, also for a floor of 8 chutes
    (the labels all but unreadable). Few chutes: upright, 9 pt; many: on end, 8 pt; never
    overlapping."""
    from sorter.agv.report import plot_chutes
    figs = _capture(monkeypatch)
    plot_chutes({f"C{i}": 100 - i for i in range(n)}, tmp_path / "chutes.png",
                title="small_12x20, 20 robots")
    fig = figs["chutes.png"]
    ax = fig.axes[0]
    labels = ax.get_xticklabels()
    assert [t.get_text() for t in labels] == [f"C{i}" for i in range(n)]
    assert all(t.get_rotation() == (0 if upright else 90) for t in labels)
    assert min(t.get_fontsize() for t in labels) >= 8
    assert ax.get_ylabel() == "parcels" and ax.get_xlabel()
    assert "small_12x20, 20 robots" in ax.get_title("left")
    fig.canvas.draw()
    r = _renderer(fig)
    boxes = [t.get_window_extent(r) for t in labels]
    for a, b in zip(boxes, boxes[1:]):
        assert a.x1 <= b.x0 + 0.5, "chute labels overlap"


def test_floor_report_time_axes_read_alike_and_chute_labels_upright(tmp_path, capsys,
                                                                     monkeypatch):
    """``sorter mapf --report --seconds-per-step 2``: the throughput plot's step axis said
    "2 s each", the robot states' below it did not; and chutes.png of the 8-chute floor had
    its labels on end in 6 pt."""
    from sorter.cli import main
    figs = _capture(monkeypatch)
    out = tmp_path / "f"
    assert main(["mapf", str(seed_path("floors/small_12x20.txt")), "--robots", "8", "--steps",
                 "120", "--scenario", "sorting", "--seconds-per-step", "2", "--out", str(out),
                 "--report"]) == 0
    capsys.readouterr()
    x_t = figs["throughput.png"].axes[0].get_xlabel()
    x_s = figs["robot_states.png"].axes[0].get_xlabel()
    assert x_t.startswith("step (2 s each; windows of ") and x_s.startswith(x_t.split(";")[0])
    assert x_s == x_t
    labels = figs["chutes.png"].axes[0].get_xticklabels()
    assert 0 < len(labels) <= 8
    assert all(t.get_rotation() == 0 and t.get_fontsize() >= 8 for t in labels)


# --------------------------------------------------------------------------- shift report

@pytest.fixture(scope="module")
def shift(tmp_path_factory):
    """One half-hour shift with no-reads and not-sortables, every output written:
    (kpis, figures by file name, out dir)."""
    out = tmp_path_factory.mktemp("shift")
    with pytest.MonkeyPatch.context() as mp:
        k, figs = _run(_doc(scan={"no_read_rate": 0.01, "not_sortable_rate": 0.03}), out, mp)
        yield k, figs, out
    import matplotlib.pyplot as plt
    plt.close("all")


def test_recirculation_left_axis_says_what_it_counts(shift):
    """recirculation.png's left axis read "% (left axis)": which curves? It now names them
    (the legend below says per 100 parcels / % of time)."""
    _, figs, _ = shift
    ax = figs["recirculation.png"].axes[0]
    assert ax.get_ylabel() == "recirculation, induct blocking %"
    assert figs["recirculation.png"].axes[1].get_ylabel() == "carrier fill %"


def test_recirculation_left_axis_of_pooled_steps_stays_inside_the_figure(tmp_path,
                                                                         monkeypatch):
    """A shift of more than 240 intervals is drawn in pooled steps: the note goes on a
    second line of the label, which stays inside the picture."""
    _, figs = _run(_doc(hours=4.1, interval=1), tmp_path, monkeypatch)
    fig = figs["recirculation.png"]
    label = fig.axes[0].get_ylabel()
    assert label.startswith("recirculation, induct blocking %\n(mean over ")
    fig.canvas.draw()
    box = fig.axes[0].yaxis.label.get_window_extent(_renderer(fig))
    assert box.y0 >= -1 and box.y1 <= fig.bbox.y1 + 1 and box.x0 >= -1


def _tiles(text):
    return [(html.unescape(b), html.unescape(s)) for b, s in
            re.findall(r"<div><b>(.*?)</b><span>(.*?)</span></div>", text, flags=re.S)]


def test_rejected_headline_gives_the_reasons_biggest_first(shift):
    """The headline's "rejected" tile gave a share and no reason: the planner had to find
    the reasons in the table below. It lists them now, biggest first, with the counts and
    names of kpis.json; reasons with no parcel are left out."""
    k, _, out = shift
    saved = json.loads((out / "kpis.json").read_text())
    text = (out / "report.html").read_text(encoding="utf-8")
    tile = [t for t in _tiles(text) if t[1].startswith("rejected")]
    assert len(tile) == 1
    big, span = tile[0]
    assert big == f"{saved['reject_pct']:.2f} %"
    m = re.fullmatch(r"rejected: (.*)", " ".join(span.split()))
    assert m, span
    shown = [(r, int(n.replace(",", ""))) for r, n in
             (p.rsplit(" ", 1) for p in m.group(1).split(", "))]
    by = saved["rejects_by_reason"]
    assert dict(shown) == {r: n for r, n in by.items() if n}
    assert [n for _, n in shown] == sorted((n for _, n in shown), reverse=True)
    assert len(shown) >= 2 and sum(n for _, n in shown) == saved["rejected"] == k["rejected"]


def test_rejected_headline_without_rejects_reads_plainly():
    from sorter.report import _reasons_line
    assert _reasons_line({"rejects_by_reason": {"no_read": 0, "late": 0}}) == ""
    assert _reasons_line({"rejects_by_reason": {"no_read": 2, "late": 1_500}}) == \
        ": late 1,500, no_read 2"


def test_report_sections_in_order_and_one_loop_in_words(shift):
    """The page opened "0.5 h shift, seed 2, 1 loop(s)"; the sections come headline first:
    tiles, throughput, key figures, loops, waves, worst chutes, then the two other plots."""
    text = (shift[2] / "report.html").read_text(encoding="utf-8")
    assert "seed 2, 1 loop;" in " ".join(text.split())
    assert "loop(s)" not in text
    heads = re.findall(r"<h2>(.*?)</h2>", text)
    assert heads == ["Throughput", "Key figures", "Loops", "Waves (items/h)",
                     "Chutes closed longest (% of the shift)", "Recirculation and inducts",
                     "Chute occupancy"]
    assert text.index('<div class="big">') < text.index("<h2>Throughput</h2>")


def test_a_hub_counts_its_loops_in_words(tmp_path, monkeypatch):
    loop = {"length_m": 120.0, "speed_mps": 2.0, "pitch_m": 0.8, "n_chutes": 20,
            "n_overflow": 1, "n_reject": 1, "capacity": 12, "n_inducts": 2,
            "induct_rate": 2500, "n_destinations": 15}
    _run(_doc(hours=0.1, loops=[{**loop, "name": n} for n in "AB"]), tmp_path, monkeypatch)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "seed 2, 2 loops;" in " ".join(text.split())

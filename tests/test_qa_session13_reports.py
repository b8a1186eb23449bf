"""QA, session 13: the reports and plots `sorter` writes for people.

``sorter run --out`` (report.html and its PNGs), ``sorter mapf --report/--heatmap/--animate``
and what a planner reads there: every number on the page against kpis.json and the printed
summary, plots that show every chute and every curve, legends and wave names that do not
cover one another or the data, user names (scenario, wave, loop, chute, floor) shown as
written (HTML-escaped, not read as matplotlib math), a bad or read-only ``--out`` refused
before the run, and no stale plots of an earlier report beside a new page.
"""
from __future__ import annotations

import html
import json
import re
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from plot_capture import capture, close_figures
from sorter.cli import main
from sorter.resources import seed_path

SMALL = str(seed_path("scenarios/small.toml"))
SMALL_FLOOR = str(seed_path("floors/small_12x20.txt"))
MEDIUM_FLOOR = str(seed_path("floors/medium_33x57.txt"))
NASTY = "<script>alert('x')</script> & \"q\" $\\q$"


# --------------------------------------------------------------------------- helpers

def _loop(**kw):
    d = {"name": "S1", "length_m": 120.0, "speed_mps": 2.0, "pitch_m": 0.8, "n_chutes": 40,
         "n_overflow": 2, "n_reject": 2, "capacity": 12, "n_inducts": 3, "induct_rate": 2500,
         "n_destinations": 30}
    d.update(kw)
    return d


def _doc(*, name="t", hours=0.5, interval=5, loop=None, waves=None, scan=None, seed=1):
    d = {"scenario": {"name": name, "seed": seed, "shift_hours": hours,
                      "interval_minutes": interval},
         "loop": loop if loop is not None else _loop(),
         "wave": waves if waves is not None else [
             {"name": "all", "start_h": 0.0, "end_h": hours, "rate_per_hour": 6500}]}
    if scan is not None:
        d["scan"] = scan
    return d


def _run(doc, out):
    """simulate + compute_kpis + write_outputs, warnings as errors; returns (kpis, summary)."""
    from sorter.report import write_outputs
    from sorter.sim.kpis import compute_kpis, format_table
    from sorter.sim.loop import simulate
    from sorter.sim.scenario import parse_scenario
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = simulate(parse_scenario(doc), progress=False)
        k = compute_kpis(res)
        write_outputs(res, k, out)
    return k, format_table(k), res


class _Page(HTMLParser):
    """Tags (balance checked), text, the title and the images of a page."""
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.text, self.imgs, self.tags = [], [], [], [], set()
        self.title = None
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag == "title":
            self._in_title = True
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self._in_title:
            self.title = (self.title or "") + data
        self.text.append(data)


def _parse(path) -> _Page:
    p = _Page()
    p.feed(Path(path).read_text(encoding="utf-8"))
    p.close()
    assert not p.errors and p.stack == [], (p.errors, p.stack)
    return p


def _check_page(path, allowed_tags):
    """A well-formed page with a title; every image inlined or beside it, with an alt text;
    no tag a user name could have brought in."""
    page = _parse(path)
    assert page.title and page.title.strip()
    assert page.tags <= allowed_tags, page.tags - allowed_tags
    for img in page.imgs:
        assert img.get("alt", "").strip()
        src = img["src"]
        assert src.startswith("data:image/png;base64,") or (Path(path).parent / src).is_file()
    return page


RUN_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "div", "b", "span",
            "img", "table", "tr", "th", "td", "ul", "li"}


_capture = capture


@pytest.fixture(autouse=True)
def _close_figures():
    yield from close_figures()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


# --------------------------------------------------------------------------- numbers

def _html_row(page_text, label):
    m = re.search(rf"<tr><th>{re.escape(label)}</th><td>(.*?)</td></tr>", page_text)
    assert m, label
    return html.unescape(m.group(1))


CASES = {
    "one wave, short": _doc(hours=0.25),
    "many waves": _doc(hours=3, interval=15, waves=[
        {"name": f"wave number {i} with a long name", "start_h": i * 0.25,
         "end_h": (i + 1) * 0.25, "rate_per_hour": 2000 + 400 * i} for i in range(12)]),
    "zero parcels": _doc(waves=[{"name": "none", "start_h": 0.0, "end_h": 0.5,
                                 "rate_per_hour": 0}]),
    "all no-reads": _doc(scan={"no_read_rate": 1.0, "not_sortable_rate": 0.0}),
    "one destination chute": _doc(loop=_loop(n_chutes=2, n_destinations=1, n_overflow=0,
                                             n_reject=1)),
    "hub of two loops": {**_doc(hours=0.5), "loop": [_loop(name="A"), _loop(name="B")]},
}


@pytest.mark.parametrize("case", list(CASES))
def test_report_numbers_read_as_kpis_json_and_the_printed_summary(case, tmp_path):
    """Every figure on the page the printed summary shows too is written the same way (it
    was rounded to whole seconds / one decimal on the page, to 0.1 s / 0.01 % in the terminal:
    'p95 50 s' beside 'p95 49.6 s'), and each is its kpis.json value."""
    k, summary, _ = _run(CASES[case], tmp_path)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    saved = json.loads((tmp_path / "kpis.json").read_text())
    for key in ("offered", "sorted", "rejected", "sorted_per_hour", "recirculation_pct",
                "induct_to_chute_s_p95", "carrier_fill_pct", "reject_pct"):
        assert saved[key] == pytest.approx(k[key])
    flat = " ".join(summary.split())

    def same(shown, value, spec):
        """``shown`` on the page is ``value`` in ``spec``, and the summary prints it so."""
        assert shown == format(value, spec), (shown, value, spec)
        assert shown in flat, (shown, flat)

    row = _html_row(text, "induct to chute")
    p50, p95, p99 = re.fullmatch(r"p50 (\S+) s, p95 (\S+) s, p99 (\S+) s", row).groups()
    same(p50, k["induct_to_chute_s_p50"], ".1f")
    same(p95, k["induct_to_chute_s_p95"], ".1f")
    same(p99, k["induct_to_chute_s_p99"], ".1f")
    big = re.search(r"<b>([^<]*) s</b><span>induct to chute, p95", text).group(1)
    assert big == p95
    row = _html_row(text, "carrier fill")
    same(row.split()[0], k["carrier_fill_pct"], ".2f")
    row = _html_row(text, "recirculation")
    same(row.split()[0], k["recirculation_pct"], ".2f")
    same(re.search(r"\(([\d.]+) laps", row).group(1), k["laps_per_parcel"], ".3f")
    row = _html_row(text, "first-pass sort")
    same(row.split()[0], k["first_pass_sort_pct"], ".2f")
    assert re.search(r"<b>([^<]*) %</b><span>first-pass", text).group(1) == row.split()[0]
    row = _html_row(text, "induct blocking / starvation")
    b, s_, w = re.fullmatch(r"(\S+) % / (\S+) % of the time; wait at induct p95 (\S+) s",
                            row).groups()
    same(b, k["induct_blocking_pct"], ".2f")
    same(s_, k["induct_starvation_pct"], ".2f")
    same(w, k["induct_wait_s_p95"], ".1f")
    row = _html_row(text, "chutes")
    f, c, mean, mx = re.fullmatch(r"(\S+) full events/h, (\S+) container changes/h; not open "
                                  r"(\S+) % of the shift on average, (\S+) % at worst", row).groups()
    same(f, k["chute_full_events_per_hour"], ".1f")
    same(c, k["container_changes_per_hour"], ".1f")
    same(mean, k["chute_not_open_pct_mean"], ".2f")
    same(mx, k["chute_not_open_pct_max"], ".2f")
    # counts and rates: thousands separators, per hour
    row = _html_row(text, "sorted")
    assert row.startswith(f"{k['sorted']:,} ({k['sorted_per_hour']:,.0f}/h")
    assert f"{k['sorted']:,}" in flat and f"{k['sorted_per_hour']:,.0f}" in flat
    row = _html_row(text, "rejected")
    assert row.startswith(f"{k['rejected']:,} ({k['reject_pct']:.2f} %)")
    for reason, n in k["rejects_by_reason"].items():
        assert (f"{reason} {n:,}" in row) == bool(n)
    assert sum(k["rejects_by_reason"].values()) == k["rejected"]
    for w in k["per_wave"]:                                  # the waves' table
        assert (f"<td>{html.escape(w['name'])}</td><td>{w['start_h']:.2f}-{w['end_h']:.2f}</td>"
                f"<td>{w['offered_per_hour']:,.0f}</td><td>{w['inducted_per_hour']:,.0f}</td>"
                f"<td>{w['sorted_per_hour']:,.0f}</td>") in text
    page = _check_page(tmp_path / "report.html", RUN_TAGS)
    assert not re.search(r"\b(nan|NaN|inf|None)\b", " ".join(page.text))


def test_zero_parcels_and_all_no_reads_plots_are_drawn_without_warnings(tmp_path):
    """Every plot of a shift with no parcel, or where every parcel is rejected: drawn,
    warnings as errors (a 0/0 or an all-zero colour scale warned or failed elsewhere)."""
    k, _, _ = _run(CASES["zero parcels"], tmp_path / "z")
    assert k["offered"] == 0
    k, _, _ = _run(CASES["all no-reads"], tmp_path / "n")
    assert k["sorted"] == 0 and k["rejects_by_reason"]["no_read"] == k["rejected"] > 0
    for d in ("z", "n"):
        for png in ("throughput.png", "recirculation.png", "chute_occupancy.png"):
            assert (tmp_path / d / png).read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- plots

def test_throughput_legend_is_off_the_data_and_every_curve_inside_the_axes(tmp_path, monkeypatch):
    """The legend sat in the lower right corner of the axes, over the rejected curve
    (rejects per hour run low along the bottom); and the y range was cut at max(offered,
    nameplate), so an interval that sorted more than both ran off the top."""
    from sorter.report import plot_throughput
    from sorter.sim.scenario import parse_scenario
    k, _, _ = _run(CASES["one wave, short"], tmp_path)
    sc = parse_scenario(CASES["one wave, short"])
    k["intervals"]["sorted_per_hour"][0] = 3.0 * k["nameplate_per_hour"]
    figs = _capture(monkeypatch)
    plot_throughput(k, sc, tmp_path / "t.png")
    fig = figs["t.png"]
    ax = fig.axes[0]
    r = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(r)
    assert not _overlap(legend, ax.get_window_extent(r))
    assert ax.get_ylim()[1] >= 3.0 * k["nameplate_per_hour"]


def _wave_labels(ax, names):
    return [t for t in ax.texts if t.get_visible() and t.get_text().strip()
            and t.get_text().strip().rstrip("\u2026") and any(
                n.startswith(t.get_text().strip().rstrip("\u2026").rstrip()) for n in names)]


def test_wave_names_do_not_print_over_one_another(tmp_path, monkeypatch):
    """A shift of many short waves printed every wave's name over the next ones (a grey
    smear above the throughput and recirculation plots, a blue one over the occupancy map).
    Now a name is shortened with an ellipsis to its wave's width, or left out."""
    figs = _capture(monkeypatch)
    doc = CASES["many waves"]
    _run(doc, tmp_path)
    names = [w["name"] for w in doc["wave"]]
    for png in ("throughput.png", "recirculation.png", "chute_occupancy.png"):
        fig = figs[png]
        ax = fig.axes[0]
        r = fig.canvas.get_renderer()
        shown = _wave_labels(ax, names)
        boxes = [t.get_window_extent(r) for t in shown]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert not _overlap(boxes[i], boxes[j]), (png, shown[i].get_text(),
                                                          shown[j].get_text())
    # a wave wide enough keeps its whole name
    figs.clear()
    doc = _doc(hours=1, waves=[{"name": "early shift", "start_h": 0, "end_h": 0.5,
                                "rate_per_hour": 3000},
                               {"name": "late shift", "start_h": 0.5, "end_h": 1,
                                "rate_per_hour": 3000}])
    _run(doc, tmp_path / "b")
    texts = [t.get_text() for t in figs["throughput.png"].axes[0].texts if t.get_visible()]
    assert "early shift" in texts and "late shift" in texts


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 5.0), st.text("ab $&<\\wxyz0123456789", min_size=1,
                                                        max_size=40)), min_size=1, max_size=40))
def test_fitted_wave_labels_stay_within_their_waves(waves):
    """Any number of waves of any widths and names (dollars included): a label left visible
    is its name, or a prefix of at least three characters and an ellipsis, and fits its
    wave's width."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sorter.report import _fit_labels, plain_text
    fig, ax = plt.subplots(figsize=(10, 4), dpi=110)
    edges = np.concatenate([[0.0], np.cumsum([w for w, _ in waves])])
    ax.set_xlim(0, edges[-1])
    labels = []
    for (a, b), (_, name) in zip(zip(edges[:-1], edges[1:]), waves):
        t = ax.text((a + b) / 2, 1.0, plain_text(name), transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=8)
        labels.append((t, name, a, b))
    fig.tight_layout()
    _fit_labels(fig, ax, labels)
    r = fig.canvas.get_renderer()
    for t, name, a, b in labels:
        if not t.get_visible():
            continue
        room = ax.transData.transform((b, 0))[0] - ax.transData.transform((a, 0))[0]
        assert t.get_window_extent(r).width <= room
        shown = t.get_text()
        if shown != plain_text(name):
            assert shown.endswith("\u2026")
            prefix = shown[:-1]
            assert any(plain_text(name[:n].rstrip()) == prefix for n in range(3, len(name)))
    plt.close(fig)


def _fake_occupancy(monkeypatch, m, labels=None):
    import sorter.report as R
    labels = labels or [f"C{i:04d}" for i in range(m.shape[0])]
    monkeypatch.setattr(R, "occupancy_matrix", lambda result: (m, labels, [m.shape[0]]))

    class Sc:
        shift_hours = 0.5
        shift_s = 1800.0
        waves = []

    class Res:
        scenario = Sc()
    return Res()


@pytest.mark.parametrize("n_chutes", [40, 800, 3000])
def test_chute_occupancy_shows_every_closed_chute_of_a_big_sorter(tmp_path, monkeypatch,
                                                                  n_chutes):
    """With more chutes than the heat map has pixel rows (a 400-chute loop, a hub) the
    nearest-neighbour resampling dropped rows: of 38 chutes closed all shift among 800,
    26 were drawn; among 3,000, 8. Now chutes are pooled (a row: the worst of k adjacent
    chutes) and every closed chute shows as a dark band."""
    import matplotlib.image as mpimg

    from sorter.report import plot_chute_occupancy
    m = np.zeros((n_chutes, 6))
    hot = list(range(n_chutes // 40, n_chutes - n_chutes // 40, max(3, n_chutes // 37)))
    m[hot, :] = 100.0
    res = _fake_occupancy(monkeypatch, m)
    figs = _capture(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_chute_occupancy(res, tmp_path / "occ.png")
    fig = figs["occ.png"]
    bb = fig.axes[0].get_window_extent(fig.canvas.get_renderer())
    px = mpimg.imread(tmp_path / "occ.png")
    height = px.shape[0]
    col = px[height - int(bb.y1) + 1: height - int(bb.y0) - 1, int((bb.x0 + bb.x1) / 2), :3]
    dark = col.mean(axis=1) < 0.3
    runs = int(dark[0]) + int(np.sum(dark[1:] & ~dark[:-1]))
    assert runs == len(hot)


def test_chute_occupancy_of_a_week_in_minutes_is_the_mean_per_column(tmp_path, monkeypatch):
    """10,000 one-minute intervals on ~850 pixel columns: a column is the mean of its
    intervals (the % of that time the chute was closed), not one interval picked out."""
    from sorter.report import plot_chute_occupancy
    rng = np.random.default_rng(5)
    m = np.where(rng.random((30, 10_080)) < 0.05, 100.0, 0.0)
    res = _fake_occupancy(monkeypatch, m)
    figs = _capture(monkeypatch)
    plot_chute_occupancy(res, tmp_path / "occ.png")
    img = np.asarray(figs["occ.png"].axes[0].images[0].get_array())
    assert img.shape[0] == 30 and img.shape[1] <= 1000
    g = -(-m.shape[1] // img.shape[1])
    for j in (0, 7, img.shape[1] - 1):
        np.testing.assert_allclose(img[:, j], m[:, j * g:(j + 1) * g].mean(axis=1))
    np.testing.assert_allclose(img.mean(axis=1), m.mean(axis=1), atol=0.5)


def test_user_names_with_dollars_and_markup_in_plots_and_page(tmp_path, monkeypatch):
    """Scenario, loop, wave, chute and plan names with <, &, quotes and $..$: escaped on the
    page (no tag of theirs), shown as written in the plots (not read as math)."""
    chutes = tmp_path / "c.toml"
    chutes.write_text(
        '[plan]\nname = "p<i>&\\"lan\\""\nstrategy = "fill_first"\noverflow = ["O&1"]\n'
        '[reject]\n' + "".join(f'{r} = "R<1>"\n' for r in (
            "no_read", "unknown_destination", "max_recirculation", "no_chute_available",
            "not_sortable", "late")) +
        '[[chute]]\nid = "C<b>1&x"\ncapacity = 5\nposition = 10.0\n'
        '[[chute]]\nid = "C\\"2\'$\\\\q$"\ncapacity = 5\nposition = 20.0\n'
        '[[chute]]\nid = "O&1"\nkind = "overflow"\nposition = 30.0\n'
        '[[chute]]\nid = "R<1>"\nkind = "reject"\nposition = 40.0\n', encoding="utf-8")
    plan = tmp_path / "p.csv"
    plan.write_text('destination,chutes\nd<1>,C<b>1&x\n"d&2","C""2\'$\\q$"\n', encoding="utf-8")
    doc = {"scenario": {"name": NASTY, "seed": 3, "shift_hours": 0.25, "interval_minutes": 5},
           "loop": {"name": "L<1>&\"'", "length_m": 60.0, "speed_mps": 2.0, "pitch_m": 0.8,
                    "scanner_m": 5.0, "chutes": str(chutes), "plan": str(plan),
                    "induct": [{"id": "I<1>", "position_m": 1.0, "max_rate_per_hour": 3000}]},
           "wave": [{"name": "w<b>&\"1\" $\\q$", "start_h": 0.0, "end_h": 0.25,
                     "rate_per_hour": 2000}]}
    figs = _capture(monkeypatch)
    out = tmp_path / "out dir é"
    _run(doc, out)
    page = _check_page(out / "report.html", RUN_TAGS)
    text = "".join(page.text)
    for name in (NASTY, "L<1>&\"'", "w<b>&\"1\" $\\q$", "C<b>1&x", "C\"2'$\\q$", "O&1"):
        assert name in text, name
    assert NASTY in page.title
    r = figs["chute_occupancy.png"].canvas.get_renderer()
    labels = [t.get_text() for t in figs["chute_occupancy.png"].axes[0].get_yticklabels()]
    assert any("\\$" in x for x in labels)          # escaped: drawn as a dollar sign
    assert r is not None


def test_floor_names_and_chute_labels_with_dollars_draw_as_written(tmp_path):
    """A floor file named 'fl$\\q$.txt': --heatmap failed after the whole run with a
    three-line mathtext ParseFatalException and --animate with a traceback (IndexError from
    PillowWriter); a pair of '$' garbled the title. The chute plot of the report had the
    same problem with chute labels."""
    from sorter.agv.report import plot_chutes
    from sorter.layout import draw, load_floor
    src = Path(SMALL_FLOOR).read_text()
    f = tmp_path / "fl$\\q$ & <b>.txt"
    f.write_text(src)
    floor = load_floor(f)
    assert "$" in floor.name
    rng = np.random.default_rng(0)
    pos = np.tile(rng.choice(floor.free_cells, 3, replace=False), (4, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        draw.congestion_heatmap(floor, pos, tmp_path / "h.png")
        draw.animate(floor, pos, 0, 2, tmp_path / "a.gif")
        ax = draw.draw_floor(floor)
        plot_chutes({"C$\\q$0": 3, "C1": 1}, tmp_path / "c.png")
    assert ax.get_title() == f"{floor.name} ({floor.height} x {floor.width})".replace("$", r"\$")
    for name in ("h.png", "a.gif", "c.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_cli_heatmap_and_animation_of_a_floor_with_dollars_in_its_name(tmp_path, capsys):
    f = tmp_path / "x$\\frac{$.txt"
    f.write_text(Path(SMALL_FLOOR).read_text())
    out = tmp_path / "o"
    rc = main(["mapf", str(f), "--robots", "4", "--steps", "12", "--out", str(out),
               "--heatmap", "--animate", "0:3", "--report"])
    assert rc == 0, capsys.readouterr().err
    page = _check_page(out / "report.html", RUN_TAGS)
    assert "x$\\frac{$" in page.title
    for name in ("heatmap.png", "animation.gif", "waiting.png"):
        assert (out / name).is_file()


# --------------------------------------------------------------------------- robot floors

def _mapf(args, capsys):
    rc = main(["mapf", *args])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    return cap.out


def test_floor_report_numbers_read_as_kpis_and_the_printed_summary(tmp_path, capsys):
    """A sorting floor with faults, arrival waves and no-reads: the page's figures are the
    printed summary's and kpis.json's, per hour and per step where each says so."""
    out = tmp_path / "f"
    text = _mapf([MEDIUM_FLOOR, "--robots", "60", "--steps", "600", "--arrival-rate",
                  "3000,7000@200,2000@400", "--fault-rate", "0.002", "--repair-steps", "30",
                  "--no-read-rate", "0.05", "--seconds-per-step", "2", "--out", str(out),
                  "--report"], capsys)
    k = json.loads((out / "kpis.json").read_text())
    page = (out / "report.html").read_text(encoding="utf-8")
    _check_page(out / "report.html", RUN_TAGS)
    flat = " ".join(text.split())
    n = k["robots"]
    net = k["net_sorted_per_hour"]
    assert f"<b>{net:,.0f}</b><span>parcels sorted per hour (net of rejects)" in page
    assert f"net of rejects {net:.0f}, {net / n:.1f} per robot-hour" in flat
    assert f"<b>{net / n:.1f}</b><span>parcels per robot-hour (net)" in page
    assert f"{k['parcels_sorted']:,} ({k['sorted_per_hour']:,.0f}/h at 2 s per step" in page
    assert f"sorted/hour {k['sorted_per_hour']:.0f}" in flat
    assert k["sorted_per_hour"] == pytest.approx(k["parcels_sorted"] * 3600 / (600 * 2))
    p95 = k["induct_to_drop_p95"]
    assert f"<b>{p95:.0f}</b><span>induct to drop, p95 (steps)" in page
    assert f"p95 {p95:.0f} steps" in flat
    u = k["robot_utilisation"]
    states = ", ".join(f"{s.replace('_', ' ')} {100 * v:.1f} %" for s, v in u.items())
    assert states in html.unescape(page)
    assert ", ".join(f"{s} {100 * v:.1f}%" for s, v in u.items()) in flat
    assert f"<b>{100 * u['waiting']:.1f} %</b><span>robot-steps waiting" in page
    assert f"<b>{k['induct_wait_p95']:.0f}</b>" in page
    assert f"wait for a robot p95 {k['induct_wait_p95']:.0f} steps" in flat
    by_wave = "; ".join(f"from {a:g} s ({b:,.0f}/h): " + ("-" if x is None else f"p95 {x:.0f} steps")
                        for (a, b), x in zip(k["arrival_rate"], k["induct_wait_p95_by_wave"]))
    assert by_wave in html.unescape(page)
    assert f"{k['parcels_rejected']:,} (no_read {k['parcels_by_reason']['no_read']:,}" in page
    assert f"{k['robot_faults']:,} faults" in page and k["robot_faults"] > 0
    assert not re.search(r"\b(nan|NaN|inf|None)\b", " ".join(_parse(out / "report.html").text))


def test_floor_report_of_a_rotation_run(tmp_path, capsys):
    out = tmp_path / "r"
    _mapf([SMALL_FLOOR, "--robots", "6", "--steps", "150", "--rotation", "--scenario", "random",
           "--out", str(out), "--report"], capsys)
    page = _check_page(out / "report.html", RUN_TAGS)
    k = json.loads((out / "kpis.json").read_text())
    text = "".join(page.text)
    assert f"{k['tasks_per_step']:.2f}" in text and "robot-steps staying" in text
    assert "rotations" in text
    assert not (out / "chutes.png").exists()


def test_a_new_report_leaves_no_plot_of_an_earlier_one_beside_it(tmp_path, capsys):
    """`mapf --report` on a sorting floor, then a plain run into the same folder: the old
    chutes.png stayed beside the new page ('Files beside this page: ... the PNG plots'),
    a chute plot of another run."""
    out = tmp_path / "same"
    _mapf([SMALL_FLOOR, "--robots", "5", "--steps", "60", "--scenario", "sorting",
           "--out", str(out), "--report"], capsys)
    assert (out / "chutes.png").is_file()
    _mapf([SMALL_FLOOR, "--robots", "5", "--steps", "60", "--scenario", "random",
           "--out", str(out), "--report"], capsys)
    assert not (out / "chutes.png").exists()
    page = (out / "report.html").read_text()
    assert "Parcels per chute" not in page and page.count("data:image/png;base64,") == 3


def test_run_into_a_folder_of_an_earlier_run_rewrites_every_file(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", SMALL, "--seed", "1", "--out", str(out), "--json"]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["run", SMALL, "--seed", "2", "--out", str(out), "--json"]) == 0
    k = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    now = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(now) == set(first)                 # no probe or temporary file left behind
    for name in ("kpis.json", "report.html", "throughput.png", "parcels.parquet"):
        assert now[name] != first[name], name
    assert json.loads(now["kpis.json"])["seed"] == 2 == k["seed"]
    assert "seed 2," in now["report.html"].decode()


# --------------------------------------------------------------------------- --out refused early

def test_mapf_heatmap_without_report_refuses_a_bad_out_before_the_run(tmp_path, capsys,
                                                                      monkeypatch):
    """Only --report checked --out before the run: with --heatmap / --animate / plain --out,
    a folder named heatmap.png (or a read-only --out) failed after the whole run."""
    import sorter.agv.lifelong as lifelong

    def boom(*a, **k):
        raise AssertionError("the run started")

    monkeypatch.setattr(lifelong, "simulate", boom)
    for flag, name in ((["--heatmap"], "heatmap.png"), (["--animate", "0:5"], "animation.gif"),
                       ([], "paths.npz")):
        out = tmp_path / name.split(".")[0]
        (out / name).mkdir(parents=True)
        rc = main(["mapf", SMALL_FLOOR, "--robots", "4", "--steps", "20", "--out", str(out),
                   *flag])
        err = capsys.readouterr().err
        assert rc == 2 and name in err and len(err.strip().splitlines()) == 1, err


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody may write to, root included (chattr +i), or a skip."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    immutable = False
    probe = d / "probe"
    try:
        probe.touch()
        probe.unlink()
        writable = True
    except OSError:
        writable = False
    if writable:                                   # root: permissions do not stop it
        r = subprocess.run(["chattr", "+i", str(d)], capture_output=True)
        immutable = r.returncode == 0
        if not immutable:
            pytest.skip("no way to make a read-only folder here (root without chattr)")
    yield d
    if immutable:
        subprocess.run(["chattr", "-i", str(d)], capture_output=True)
    d.chmod(0o755)


@pytest.mark.parametrize("argv", [
    ["run", SMALL],
    ["mapf", SMALL_FLOOR, "--robots", "4", "--steps", "10"],
    ["mapf", SMALL_FLOOR, "--robots", "4", "--steps", "10", "--heatmap"],
    ["mapf", SMALL_FLOOR, "--robots", "4", "--steps", "10", "--report"],
])
def test_read_only_out_is_one_clear_line_before_the_run(read_only_dir, capsys, monkeypatch,
                                                        argv):
    import sorter.agv.lifelong as lifelong
    import sorter.sim.loop as loop

    def boom(*a, **k):
        raise AssertionError("the run started")

    monkeypatch.setattr(lifelong, "simulate", boom)
    monkeypatch.setattr(loop, "simulate", boom)
    rc = main([*argv, "--out", str(read_only_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "not writable" in err and str(read_only_dir) in err and "Traceback" not in err
    assert list(read_only_dir.iterdir()) == []

"""Shared by the plot tests: figures the code under test saves, kept for inspection."""
from __future__ import annotations

from pathlib import Path



def close_figures():
    """Generator for a test module's autouse fixture: after the test, the figures kept open
    by :func:`capture` are closed."""
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


def capture(monkeypatch) -> dict:
    """Figures saved by the code under test, by file name, kept open (``plt.close`` is a
    no-op meanwhile) so a test can read their titles, axes and legends."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    figs = {}
    orig = Figure.savefig

    def spy(self, fname, *a, **kw):
        figs[Path(str(fname)).name] = self
        return orig(self, fname, *a, **kw)

    monkeypatch.setattr(Figure, "savefig", spy)
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    return figs


def run_shift(doc, out, monkeypatch):
    """Simulate a shift scenario document, compute its KPIs and write every output file into
    ``out`` with warnings as errors; returns (kpis, figures by file name)."""
    import warnings

    from sorter.report import write_outputs
    from sorter.sim.kpis import compute_kpis
    from sorter.sim.loop import simulate
    from sorter.sim.scenario import parse_scenario
    figs = capture(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = simulate(parse_scenario(doc), progress=False)
        k = compute_kpis(res)
        write_outputs(res, k, out)
    return k, figs


def renderer(fig):
    """A renderer for ``fig`` (an Agg canvas attached if pyplot closed the figure)."""
    if not hasattr(fig.canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()

"""Pictures of floors: the floor itself, robot animations (GIF) and congestion heat maps (PNG).

matplotlib is imported inside the functions (the Agg backend is selected there for the file
writers), so ``import sorter.layout`` stays light.

Colours: travel white, obstacle dark grey, chute body brown, drop cell orange, induct green;
robots are blue dots; on directed floors one-way cells get a small arrow along their only exit, or
along the one direction they may not be left or entered against (the ASCII form's ``> < ^ v``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sorter.errors import InputError
from sorter.layout.floor import DROP, INDUCT, OBSTACLE, TRAVEL, Floor

__all__ = ["draw_floor", "animate", "congestion_heatmap", "visit_counts", "ROLE_COLOURS"]

# role index in the picture -> colour
ROLE_COLOURS = {
    "travel": "#ffffff",
    "obstacle": "#4a4a4a",
    "chute": "#8c5a2b",
    "drop": "#f5a623",
    "induct": "#3aa655",
    "queue": "#b9e3c2",
}
_ROLES = list(ROLE_COLOURS)
#: The same roles, pale: the floor under robots (so that the robots, dark blue, stand out).
_PALE_COLOURS = ["#ffffff", "#9a9a9a", "#c9a888", "#fbe3c0", "#7cc68f", "#dcf0e0"]
_ROBOT_COLOUR = "#0b3d91"


def _plain_drops(img):
    """``img`` (from :func:`_role_image`) with drop cells shown as travel cells when they are
    more than 30 % of the cells robots move on (LoRR's ``S`` cells: drop cells everywhere, an
    orange sheet hiding the robots and the heat drawn on top); returns (img, marked)."""
    free = int((img != 1).sum() - (img == 2).sum())
    if (img == 3).sum() > 0.3 * max(free, 1):
        return np.where(img == 3, 0, img), False
    return img, True


def _role_image(floor):
    img = np.zeros(floor.n_cells, dtype=np.int8)          # travel
    img[floor.cells == OBSTACLE] = 1
    img[(floor.cells == OBSTACLE) & (floor.chute_body >= 0)] = 2
    img[floor.cells == DROP] = 3
    img[floor.cells == INDUCT] = 4
    for st in floor.inducts:
        img[st.queue] = 5                               # induct queue cells (their arrows too)
    return img.reshape(floor.height, floor.width)


def _plain(s):
    """``s`` shown as written in a matplotlib title (:func:`sorter.report.plain_text`)."""
    from sorter.report import plain_text
    return plain_text(s)


def _figsize(floor, base=10.0, extra_w=0.0):
    aspect = floor.height / floor.width
    w = base
    if floor.width > 25 * base:         # a wide floor (LoRR 140 x 500): >= 2.5 px a cell at 80 dpi
        w = min(16.0, floor.width / 25.0)
    h = max(2.0, min(w * aspect + 0.8, 14.0))
    return (w + extra_w, h)


_FREE_IDS = "free cell ids (row * width + col of a travel, induct or drop cell; floor.free_cells)"


def _check_free(floor, cells, name, where):
    """Refuse a robot on an obstacle cell: ``cells`` (ids already inside the floor) ->
    InputError naming the first such robot, ``where(k)`` describing the k-th entry."""
    on = np.flatnonzero(floor.cells[cells.ravel()] == OBSTACLE)
    if on.size:
        k = int(on[0])
        c = int(cells.ravel()[k])
        raise InputError(f"{name} puts {where(k)} on obstacle cell {c} (row {c // floor.width}, "
                         f"col {c % floor.width})", field=name, expected=_FREE_IDS)


def _check_dpi(dpi):
    """Refuse a dpi that is not a positive number (matplotlib's PillowWriter failed on 0 with
    an IndexError from deep inside)."""
    number = (int, float, np.integer, np.floating)
    if isinstance(dpi, (bool, np.bool_)) or not isinstance(dpi, number) or not 0 < dpi <= 10_000:
        raise InputError(f"dpi={dpi!r}", field="dpi", expected="dots per inch, 0 < dpi <= 10000")


def _check_positions(floor, positions, name="positions"):
    pos = np.asarray(positions)
    if pos.ndim != 2 or not np.issubdtype(pos.dtype, np.integer):
        raise InputError(f"{name} has shape {pos.shape} and dtype {pos.dtype}", field=name,
                         expected="an integer array [steps + 1, robots] of cell ids")
    if pos.size and (pos.min() < 0 or pos.max() >= floor.n_cells):
        raise InputError(f"{name} holds a cell id outside the floor", field=name,
                         expected=f"cell ids in 0..{floor.n_cells - 1}")
    if pos.size:
        _check_free(floor, pos, name,
                    lambda k: f"robot {k % pos.shape[1]} at step {k // pos.shape[1]}")
    return pos


def _one_way_cells(floor):
    """(cells, directions 0..3 east, south, west, north) of the travel cells drawn with an
    arrow: a cell with one exit (RHCR's sorting floors, induct queues) points along it; a cell
    whose moves against direction e, out of it and into it, are both forbidden though the
    neighbour there is free (the ASCII form's ``>``: a one-way street robots may still turn off)
    points along e. Only the single-exit cells were drawn before, so the ASCII floors' one-way
    lanes (every cell with 2-3 exits) showed as plain travel cells."""
    from sorter.layout._grid import grid_moves
    m = floor.moves
    travel = floor.cells == TRAVEL
    n_exits = (m >= 0).sum(axis=1)
    single = travel & (n_exits == 1)
    cells = [np.flatnonzero(single)]
    dirs = [np.argmax(m[cells[0]] >= 0, axis=1)]
    full = grid_moves((floor.cells != OBSTACLE).reshape(floor.height, floor.width))
    ids = np.arange(floor.n_cells)
    hit = np.zeros((floor.n_cells, 4), dtype=bool)
    for e in range(4):
        back = (e + 2) % 4
        out_barred = (full[:, back] >= 0) & (m[:, back] < 0)      # no exit against e
        t = full[:, e]
        into = np.where(t >= 0, m[np.maximum(t, 0), back], -1)    # the move into c against e
        hit[:, e] = travel & ~single & out_barred & (into != ids) & (m[:, e] >= 0)
    one = np.flatnonzero(hit.sum(axis=1) == 1)                     # one clear direction
    cells.append(one)
    dirs.append(np.argmax(hit[one], axis=1))
    return np.concatenate(cells), np.concatenate(dirs)


def draw_floor(floor, ax=None, robots=None, *, arrows=None, robot_size=None, title=None):
    """Draw a floor: cells coloured by role (``ROLE_COLOURS``: travel, obstacle, chute body,
    drop cell, induct, induct queue), optionally robots as dots.

    Parameters
    ----------
    floor : Floor
    ax : matplotlib Axes, optional
        Drawn into; a new figure is made when None.
    robots : int array of cell ids, optional
        Robots to draw as dots; free cells only (a robot on an obstacle is refused).
    arrows : bool, optional
        Draw the one-way cells' arrows; default: on for directed floors of at most 20,000 cells.
    robot_size : float, optional
        Dot size (points^2); default scales with the floor size.
    title : str, optional
        Default: the floor's name and size.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from sorter.layout import Floor
    >>> ax = Floor.from_ascii("I..\\n.CD\\n...").draw(robots=[0, 1])
    >>> ax.get_title()
    'ascii (3 x 3)'
    """
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.colors import ListedColormap

    # checked before anything is drawn: a refused call leaves the caller's axes (and the
    # pyplot figures) as they were
    if not isinstance(floor, Floor):
        raise TypeError(f"floor must be a sorter.layout.Floor, not {type(floor).__name__}")
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, not {type(ax).__name__}")
    if robots is not None:
        rob = np.asarray(robots)
        if rob.size and (rob.dtype == np.bool_ or not np.issubdtype(rob.dtype, np.integer)):
            raise InputError(f"robots has dtype {rob.dtype}", field="robots",
                             expected="integer cell ids (row * width + col), not a mask")
        rob = rob.astype(np.int64).ravel()
        if rob.size and (rob.min() < 0 or rob.max() >= floor.n_cells):
            raise InputError("robots holds a cell id outside the floor", field="robots",
                             expected=f"cell ids in 0..{floor.n_cells - 1}")
        _check_free(floor, rob, "robots", lambda k: f"robot {k}")
    if ax is None:
        _, ax = plt.subplots(figsize=_figsize(floor))
    # under robots the floor is pale and drop cells everywhere are plain: robots stand out
    img = _role_image(floor)
    if robots is not None:
        img = _plain_drops(img)[0]
    cmap = ListedColormap(_PALE_COLOURS if robots is not None
                          else [ROLE_COLOURS[r] for r in _ROLES])
    ax.imshow(img, cmap=cmap, vmin=-0.5, vmax=len(_ROLES) - 0.5,
              interpolation="nearest", origin="upper")
    if arrows is None:
        arrows = floor.is_directed and floor.n_cells <= 20_000
    if arrows and floor.is_directed:
        one, d = _one_way_cells(floor)
        if one.size:
            r, c = np.divmod(one, floor.width)
            u = np.array([1, 0, -1, 0])[d]
            v = np.array([0, -1, 0, 1])[d]          # y axis points down in the image
            ax.quiver(c, r, u, v, color="#888888", scale=1.6, scale_units="xy", width=0.002,
                      headwidth=4, pivot="middle")
    if robots is not None:
        r, c = np.divmod(rob, floor.width)
        if robot_size is None:
            # a dot about 3/4 of a cell across on the axes as laid out, never below ~2 px
            fig = ax.figure
            box = ax.get_position()
            cell_pt = 72.0 * min(box.width * fig.get_figwidth() / floor.width,
                                 box.height * fig.get_figheight() / floor.height)
            robot_size = float(min(60.0, max(3.0, (0.75 * cell_pt) ** 2)))
        ax.scatter(c, r, s=robot_size, c=_ROBOT_COLOUR, edgecolors="none", zorder=3)
    ax.set_xlim(-0.5, floor.width - 0.5)
    ax.set_ylim(floor.height - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    # the floor's name (a file name) as written: a pair of '$' would be read as math
    ax.set_title(title if title is not None
                 else _plain(f"{floor.name} ({floor.height} x {floor.width})"))
    return ax


def animate(floor, positions, start, stop, path, *, fps=5, dpi=80):
    """Write an animation of steps ``start .. stop - 1`` of a plan as a GIF.

    Parameters
    ----------
    floor : Floor
    positions : int array [steps + 1, robots]
        Cell of every robot at every time (as in ``paths.npz``); free cells only.
    start, stop : int
        The window of rows to draw, ``0 <= start < stop <= len(positions)``.
    path : str or Path
        Output file, ``.gif`` (matplotlib's PillowWriter).
    fps : int
        Frames per second.
    dpi : int
        Resolution.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        On a bad window, positions outside the floor or on an obstacle cell, or another
        suffix than ``.gif``.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    pos = _check_positions(floor, positions)
    start, stop = int(start), int(stop)
    if not (0 <= start < stop <= pos.shape[0]):
        raise InputError(f"window {start}..{stop} of {pos.shape[0]} rows", field="start, stop",
                         expected=f"0 <= start < stop <= {pos.shape[0]}")
    if not (isinstance(fps, (int, float, np.integer, np.floating)) and 0 < fps < 1000):
        raise InputError(f"fps={fps!r}", field="fps", expected="frames per second, 0 < fps < 1000")
    _check_dpi(dpi)
    out = Path(path)
    if out.suffix.lower() != ".gif":
        raise InputError(f"cannot write {out.suffix!r} animations", path=out, field="path",
                         expected="a .gif file")
    fig, ax = plt.subplots(figsize=_figsize(floor, base=8.0))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92)   # the floor, not margins
    draw_floor(floor, ax=ax, robots=pos[start])
    dots = ax.collections[-1]
    title = ax.set_title("")

    def frame(t):
        r, c = np.divmod(pos[t].astype(np.int64), floor.width)
        dots.set_offsets(np.column_stack([c, r]))
        title.set_text(_plain(f"{floor.name}: step {t:,}, {pos.shape[1]:,} robots (dark blue)"))
        return dots, title

    anim = FuncAnimation(fig, frame, frames=range(start, stop), blit=False)
    anim.save(str(out), writer=PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return out


def visit_counts(floor, positions) -> np.ndarray:
    """Number of (robot, time) visits of every cell, int64 of shape ``(n_cells,)``.

    Raises :class:`InputError` on positions outside the floor or on an obstacle cell."""
    pos = _check_positions(floor, positions)
    return np.bincount(pos.ravel().astype(np.int64), minlength=floor.n_cells)


def congestion_heatmap(floor, positions, path, *, log=True, dpi=120):
    """Write a PNG heat map of visits per cell over a plan.

    Parameters
    ----------
    floor : Floor
    positions : int array [steps + 1, robots]
    path : str or Path
        Output ``.png``.
    log : bool
        Colour by log10(1 + visits) (congested lanes stand out without hiding quiet aisles).
    dpi : int

    Returns
    -------
    numpy.ndarray
        The visit counts per cell (as :func:`visit_counts`).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _check_dpi(dpi)
    counts = visit_counts(floor, positions)
    img = counts.astype(np.float64)
    label = "visits per cell (robot-steps)"
    if log:
        img = np.log10(1.0 + img)
        label = "visits per cell (robot-steps, log scale)"
    img = np.ma.masked_where(floor.cells == OBSTACLE, img).reshape(floor.height, floor.width)
    fig, ax = plt.subplots(figsize=_figsize(floor, extra_w=1.5))
    # obstacles light steel; cells never visited white, below the scale, which starts at one
    # visit (they were black, the bottom of the scale, as a cell visited once)
    cmap = plt.get_cmap("inferno").with_extremes(bad="#9db4c0", under="white")
    vmin = float(np.log10(2.0)) if log else 1.0
    vmax = max(float(img.max()) if img.count() else 0.0, vmin + 1e-6)
    im = ax.imshow(img, cmap=cmap, interpolation="nearest", vmin=vmin, vmax=vmax)
    cb = fig.colorbar(im, ax=ax, label=label, shrink=0.8)
    if log:                              # ticks read in visits (1, 10, 100 ...), not log10 units
        top = int(counts.max(initial=0))
        ticks = [10 ** k for k in range(0, len(str(max(top, 1))))]
        cb.set_ticks(np.log10(1.0 + np.array(ticks, np.float64)))
        cb.set_ticklabels([f"{t:,}" for t in ticks])
    # the inducts outlined in their floor-drawing green: where the robots' errands begin
    cells = np.concatenate([st.cells for st in floor.inducts] or [np.zeros(0, np.int32)])
    if cells.size:
        from matplotlib.collections import PatchCollection
        from matplotlib.patches import Rectangle
        r, c = np.divmod(cells.astype(np.int64), floor.width)
        px = fig.get_size_inches()[0] * 72 / max(floor.width, 1)      # points a cell, about
        ax.add_collection(PatchCollection(
            [Rectangle((x - 0.5, y - 0.5), 1, 1) for y, x in zip(r, c)], facecolor="none",
            edgecolor=ROLE_COLOURS["induct"], linewidth=max(0.5, min(2.5, px / 10)),
            zorder=3))
    steps = np.asarray(positions).shape[0] - 1
    # the grey cells named: a reader took them for cells of some visit count off the scale;
    # so the white ones (never visited) and the green outlines (inducts)
    keys = "grey: obstacles and chute bodies; white: never visited" + (
        "; green outline: inducts" if cells.size else "")
    ax.set_title(_plain(f"{floor.name}: visits per cell over {steps:,} steps, "
                        f"{np.asarray(positions).shape[1]:,} robots\n({keys})"),
                 loc="left", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(Path(path), dpi=dpi)
    plt.close(fig)
    return counts

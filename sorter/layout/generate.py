"""``sortation_floor``: the classic robot sorting floor, generated from a seed.

Layout (the robotic sortation floors of the literature, LoRR's ``sortation_large``, TMO):

* the outer ring of cells is travel, with the inducts placed on it, evenly spaced around the
  perimeter from a seeded offset (corners excluded);
* a travel margin of ``margin`` cells inside the ring;
* inside that, a lattice of chute blocks: each chute is a ``block`` = (rows, cols) obstacle (the
  chute's opening) with drop cells along its sides (``drop_sides``, a subset of ``"nesw"``);
  neighbouring chute units are ``gap`` travel cells apart. When fewer chutes than lattice slots
  are asked for, the seed picks which slots hold chutes;

The result is checked like every floor: every induct and every chute mutually reachable.
"""
from __future__ import annotations

import numpy as np

from sorter.errors import InputError
from sorter.layout._common import MAX_FLOOR_CELLS
from sorter.layout.floor import DROP, INDUCT, OBSTACLE, TRAVEL, Floor, Station

__all__ = ["sortation_floor", "lattice_capacity"]


def _queues(rows, cols, ind, length):
    """{induct cell: the ``length`` border cells before it clockwise, tail first}."""
    if not length:
        return {}
    perim = ([(0, c) for c in range(cols)] + [(r, cols - 1) for r in range(1, rows)]
             + [(rows - 1, c) for c in range(cols - 2, -1, -1)]
             + [(r, 0) for r in range(rows - 2, 0, -1)])
    ids = [r * cols + c for r, c in perim]
    at = {c: k for k, c in enumerate(ids)}
    # a free border cell between a queue's tail and the induct before it (a tail beside an
    # induct would read as a queue leading to two inducts in the ASCII form)
    room = min((at[int(b)] - at[int(a)]) % len(ids) for a, b in
               zip(sorted(ind, key=lambda c: at[int(c)]),
                   np.roll(sorted(ind, key=lambda c: at[int(c)]), -1))) - 2 if len(ind) > 1 \
        else len(ids) - 2
    if length > room:
        raise InputError(f"queue = {length} does not fit between the inducts", field="queue",
                         expected=f"at most {max(0, room)} (border cells between two inducts, "
                                  "less one)")
    out = {}
    for c in (int(x) for x in ind):
        k = at[c]
        cells = [ids[(k - j) % len(ids)] for j in range(length, 0, -1)]
        out[c] = cells
    return out


def _check_int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise InputError(f"{name} = {v!r}", field=name, expected=f"an integer >= {lo}")
    return int(v)


def _pair(name, v, lo):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (v, v)
    try:
        a, b = v
    except (TypeError, ValueError):
        raise InputError(f"{name} = {v!r}", field=name,
                         expected="an integer or a (rows, cols) pair") from None
    return _check_int(name, a, lo), _check_int(name, b, lo)


def _check_sides(drop_sides):
    if not isinstance(drop_sides, str) or not drop_sides or set(drop_sides) - set("nesw") \
            or len(set(drop_sides)) != len(drop_sides):
        raise InputError(f"drop_sides = {drop_sides!r}", field="drop_sides",
                         expected="a non-empty subset of 'nesw', e.g. 'ew'")
    return drop_sides


def _check_seed(seed):
    """A Generator, or a non-negative integer seed of one (None, a float or a string would
    give a different floor each call or NumPy's own error)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed = {seed!r}", field="seed",
                         expected="an integer >= 0 or a numpy.random.Generator")
    return np.random.default_rng(int(seed))


MAX_CELLS = MAX_FLOOR_CELLS     # what the loaders take too (cell ids are int32 besides)


def _check_size(rows, cols):
    if rows * cols > MAX_CELLS:
        raise InputError(f"rows x cols = {rows} x {cols} = {rows * cols:,} cells", field="rows",
                         expected=f"at most {MAX_CELLS:,} cells, e.g. 2000 x 2000 (about 450 "
                                  "bytes of memory per cell)")


def _lattice(rows, cols, margin, block, gap, sides):
    """Top-left corners of the chute bodies that fit, row-major."""
    bh, bw = block
    gh, gw = gap
    uh = bh + ("n" in sides) + ("s" in sides)
    uw = bw + ("w" in sides) + ("e" in sides)
    top, left = 1 + margin, 1 + margin
    reg_h = rows - 2 * (1 + margin)
    reg_w = cols - 2 * (1 + margin)
    ny = (reg_h + gh) // (uh + gh) if reg_h >= uh else 0
    nx = (reg_w + gw) // (uw + gw) if reg_w >= uw else 0
    if ny <= 0 or nx <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    used_h = ny * uh + (ny - 1) * gh
    used_w = nx * uw + (nx - 1) * gw
    top += (reg_h - used_h) // 2 + ("n" in sides)
    left += (reg_w - used_w) // 2 + ("w" in sides)
    r = top + np.arange(ny) * (uh + gh)
    c = left + np.arange(nx) * (uw + gw)
    rr, cc = np.meshgrid(r, c, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


def lattice_capacity(rows, cols, *, margin=1, block=(1, 1), gap=1, drop_sides="nesw") -> int:
    """How many chutes fit on a ``rows`` x ``cols`` floor with these settings.

    Raises
    ------
    InputError
        On the settings :func:`sortation_floor` refuses (sizes below 3, a negative margin or
        gap, a block below 1, drop sides outside ``"nesw"``).
    """
    rows = _check_int("rows", rows, 3)
    cols = _check_int("cols", cols, 3)
    _check_size(rows, cols)
    return int(_lattice(rows, cols, _check_int("margin", margin, 0), _pair("block", block, 1),
                        _pair("gap", gap, 0), _check_sides(drop_sides)).shape[0])


def sortation_floor(rows, cols, n_inducts, n_chutes, *, seed=0, margin=1, block=(1, 1), gap=1,
                    drop_sides="nesw", queue=0, name=None) -> Floor:
    """Generate the classic robot sorting floor (see the module docstring).

    Parameters
    ----------
    rows, cols : int
        Floor size (>= 3 each).
    n_inducts : int
        Inducts on the outer ring (at most its non-corner cells).
    n_chutes : int
        Chutes in the lattice (at most :func:`lattice_capacity`).
    seed : int >= 0 or numpy.random.Generator
        Picks the inducts' offset around the ring and, when the lattice has spare slots,
        which slots hold chutes. Same seed, same floor.
    margin : int
        Travel cells between the ring and the chute lattice.
    block : int or (int, int)
        Size of each chute body (obstacle), rows x cols.
    gap : int or (int, int)
        Travel cells between neighbouring chute units (body plus its drop cells).
    drop_sides : str
        Which sides of a chute body carry drop cells, a non-empty subset of ``"nesw"``.
    queue : int
        Queue cells in front of each induct (``Station.queue``): the ``queue`` border cells
        before it, going clockwise round the floor (corners included). Robots line up there
        and reach the induct only through it; through traffic uses the margin. 0 = none.
        At most the border cells between two inducts less one (a free cell before each
        queue's tail).
    name : str, optional
        Floor name; default ``sortation_<rows>x<cols>_<n_inducts>i_<n_chutes>c``.

    Returns
    -------
    Floor

    Raises
    ------
    InputError
        Naming the parameter and the allowed range (too many chutes or inducts for the size,
        bad sides, sizes below the minimum, more than 2**31 - 1 cells, a seed that is not an
        integer >= 0 or a Generator, a queue too long for the gaps between the inducts or
        one that cuts a margin-0 floor).

    Examples
    --------
    >>> f = sortation_floor(12, 20, 4, 6, seed=1)
    >>> (f.height, f.width, len(f.inducts), len(f.chutes), f.chutes[0].cells.size)
    (12, 20, 4, 6, 4)
    """
    rows = _check_int("rows", rows, 3)
    cols = _check_int("cols", cols, 3)
    n_inducts = _check_int("n_inducts", n_inducts, 1)
    n_chutes = _check_int("n_chutes", n_chutes, 1)
    margin = _check_int("margin", margin, 0)
    queue = _check_int("queue", queue, 0)
    block = _pair("block", block, 1)
    gap = _pair("gap", gap, 0)
    _check_sides(drop_sides)
    _check_size(rows, cols)
    rng = _check_seed(seed)
    # perimeter ring, clockwise from (0, 1), corners excluded
    top = [(0, c) for c in range(1, cols - 1)]
    right = [(r, cols - 1) for r in range(1, rows - 1)]
    bottom = [(rows - 1, c) for c in range(cols - 2, 0, -1)]
    left = [(r, 0) for r in range(rows - 2, 0, -1)]
    ring = np.array(top + right + bottom + left, dtype=np.int64).reshape(-1, 2)
    if n_inducts > ring.shape[0]:
        raise InputError(f"n_inducts = {n_inducts} does not fit on the ring of a {rows} x {cols} "
                         f"floor", field="n_inducts", expected=f"at most {ring.shape[0]}")
    slots = _lattice(rows, cols, margin, block, gap, drop_sides)
    if n_chutes > slots.shape[0]:
        raise InputError(f"n_chutes = {n_chutes} does not fit: a {rows} x {cols} floor holds "
                         f"{slots.shape[0]} with margin={margin}, block={block}, gap={gap}, "
                         f"drop_sides={drop_sides!r}", field="n_chutes",
                         expected=f"at most {slots.shape[0]} (or a larger floor)")
    grid = np.full((rows, cols), TRAVEL, dtype=np.int8)
    body = np.full(rows * cols, -1, dtype=np.int32)
    chosen = np.sort(rng.choice(slots.shape[0], size=n_chutes, replace=False))
    bh, bw = block
    chute_cells = []
    for k, s in enumerate(chosen):
        r0, c0 = (int(v) for v in slots[s])
        grid[r0:r0 + bh, c0:c0 + bw] = OBSTACLE
        rr, cc = np.meshgrid(np.arange(r0, r0 + bh), np.arange(c0, c0 + bw), indexing="ij")
        body[(rr * cols + cc).ravel()] = k
        cells = []
        if "n" in drop_sides:
            cells += [(r0 - 1, c) for c in range(c0, c0 + bw)]
        if "s" in drop_sides:
            cells += [(r0 + bh, c) for c in range(c0, c0 + bw)]
        if "w" in drop_sides:
            cells += [(r, c0 - 1) for r in range(r0, r0 + bh)]
        if "e" in drop_sides:
            cells += [(r, c0 + bw) for r in range(r0, r0 + bh)]
        ids = np.array(sorted(r * cols + c for r, c in cells), dtype=np.int32)
        chute_cells.append(ids)
    for ids in chute_cells:
        grid.ravel()[ids] = DROP
    step = ring.shape[0] / n_inducts
    offset = rng.uniform(0, step)
    pos = np.floor(offset + step * np.arange(n_inducts)).astype(np.int64) % ring.shape[0]
    ind = np.sort(ring[pos, 0] * cols + ring[pos, 1])
    grid.ravel()[ind] = INDUCT
    queues = _queues(rows, cols, ind, queue)
    inducts = [Station(k, f"I{k}", "induct", [c], queue=queues.get(int(c)))
               for k, c in enumerate(ind)]
    chutes = [Station(k, f"C{k}", "chute", ids) for k, ids in enumerate(chute_cells)]
    if name is None:
        name = f"sortation_{rows}x{cols}_{n_inducts}i_{n_chutes}c"
    floor = Floor(grid, inducts=inducts, chutes=chutes, name=name, chute_body=body,
                  check=not queue)
    problem = floor.reachability_problem() if queue else None
    if problem is not None:
        # the floor without queues passes: the one-way queues on the border cut it (margin 0)
        r, c = floor.rc(problem[1])
        raise InputError(f"queue = {queue} cuts the floor: {problem[0]} at cell (row {r}, "
                         f"col {c})", field="queue",
                         expected="a shorter queue, or margin >= 1 (a way round the queues)")
    return floor

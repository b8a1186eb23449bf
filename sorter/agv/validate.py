"""The plan validator: pure Python / NumPy, independent of every planner's code.

A plan is ``paths``, an integer array of shape ``[steps + 1, robots]`` of cell ids
(``row * width + col``); row 0 is the robots' starts, row ``t`` their cells after step ``t``.
Per step each robot waits or makes one move of ``floor.moves``. Rejected (``kind``):

``start``     row 0 differs from ``starts`` (step 0)
``off_grid``  a cell id outside ``0 .. n_cells - 1``
``obstacle``  a robot on an obstacle cell
``jump``      a move to a cell that is not one of the 4 neighbours (more than one cell)
``one_way``   a move between neighbouring free cells that ``floor.moves`` forbids
``vertex``    two robots on one cell at the same time
``swap``      two robots exchanging cells in one step (edge conflict)

Following (a robot entering a cell another robot leaves in the same step) and rotations of
three or more robots are allowed, as in PIBT and the LoRR rules.

*The first violation* is the one with the smallest ``(step, kind, robots)``: the earliest step;
within a step the kinds in the order above (``start`` only at step 0); within a kind the
lexicographically smallest tuple of robot indices (pairs as ``(i, j)`` with ``i < j``). The
move of step ``t`` (from row ``t - 1`` to row ``t``) is reported at step ``t``.

``validate`` returns that :class:`Violation` or None; ``check_paths`` raises a
:class:`PlanError` carrying it. Both run whole-array NumPy checks, then resolve the first step
found, in blocks of rows (bounded memory); a 1,000-step plan of 10,000 robots takes about a
second on one core (0.6 s measured).
"""
from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import numpy as np

from sorter.errors import InputError, SorterError

__all__ = ["validate", "check_paths", "Violation", "PlanError", "KINDS"]

KINDS = ("start", "off_grid", "obstacle", "jump", "one_way", "vertex", "swap")
_ORDER = {k: i for i, k in enumerate(KINDS)}
_TEXT = {
    "start": "row 0 differs from the starts",
    "off_grid": "cell id off the grid",
    "obstacle": "robot on an obstacle",
    "jump": "move of more than one cell",
    "one_way": "forbidden (one-way) move",
    "vertex": "vertex conflict (two robots on one cell)",
    "swap": "edge conflict (two robots swap cells)",
}


@dataclass(frozen=True)
class Violation:
    """The first illegal thing in a plan.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    step : int
        The row of ``paths`` where it shows (a move's step is the row it arrives in).
    robots : tuple of int
        The robot (one) or the pair ``(i, j)``, ``i < j``.
    cells : tuple of int
        ``start``: (expected start, row-0 cell); ``off_grid``/``obstacle``/``vertex``: (cell,);
        ``jump``/``one_way``: (from, to); ``swap``: (cell of robot i before, after).
    """

    kind: str
    step: int
    robots: tuple
    cells: tuple

    def __str__(self):
        who = (f"robot {self.robots[0]}" if len(self.robots) == 1
               else f"robots {self.robots[0]} and {self.robots[1]}")
        cells = ", ".join(str(c) for c in self.cells)
        return f"step {self.step}: {_TEXT[self.kind]}: {who}, cells {cells}"


class PlanError(SorterError):
    """A plan breaks the floor's rules; ``.violation`` is the first :class:`Violation`."""

    def __init__(self, violation: Violation):
        self.violation = violation
        super().__init__(str(violation))


def _as_int_array(name, a, ndim):
    try:
        arr = np.asarray(a)
    except ValueError:                       # ragged rows (lists of different lengths)
        raise InputError(f"{name} is not a rectangular array", field=name,
                         expected=f"a {ndim}-D integer array") from None
    if arr.ndim != ndim:
        raise InputError(f"{name} has {arr.ndim} dimensions", field=name,
                         expected=f"a {ndim}-D integer array")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name} has dtype {arr.dtype}", field=name,
                         expected="an integer array of cell ids")
    if arr.size and arr.dtype == np.uint64 and arr.max() > np.iinfo(np.int64).max:
        # int64 would wrap it to a negative id and the violation would name a cell not in it
        raise InputError(f"{name} holds {int(arr.max())}, beyond int64", field=name,
                         expected="cell ids below 2**63")
    return arr.astype(np.int64, copy=False)


def _first_pair_same_value(vals, robots):
    """Lexicographically smallest (i, j), i < j, with vals[i] == vals[j] among ``robots``."""
    order = np.lexsort((robots, vals))
    v = vals[order]
    r = robots[order]
    dup = np.flatnonzero(v[1:] == v[:-1])
    if not dup.size:
        return None
    # groups of equal value; candidate pair per group = its two smallest robots
    starts = np.concatenate([[0], np.flatnonzero(v[1:] != v[:-1]) + 1])
    sizes = np.diff(np.concatenate([starts, [v.size]]))
    g = starts[sizes > 1]
    i = r[g]
    j = r[g + 1]
    k = int(np.lexsort((j, i))[0])
    return int(i[k]), int(j[k]), int(v[g[k]])


def validate(floor, starts, paths):
    """First violation of a plan, or None if it is legal.

    Parameters
    ----------
    floor : sorter.layout.Floor
    starts : int array (robots,)
        Start cells.
    paths : int array (steps + 1, robots)
        Cell of every robot at every time; row 0 must equal ``starts``.

    Returns
    -------
    Violation or None

    Raises
    ------
    InputError
        If the arrays have the wrong shape or dtype (not a plan at all).

    Examples
    --------
    >>> import numpy as np
    >>> from sorter.layout import Floor
    >>> f = Floor.from_ascii("....")
    >>> print(validate(f, [0, 3], np.array([[0, 3], [1, 2], [2, 1]])))
    step 2: edge conflict (two robots swap cells): robots 0 and 1, cells 1, 2
    >>> validate(f, [0, 3], np.array([[0, 3], [1, 2]])) is None
    True
    """
    if not all(hasattr(floor, a) for a in ("cells", "moves", "width", "n_cells")):
        raise InputError(f"floor is {type(floor).__name__}", field="floor",
                         expected="a sorter.layout.Floor (sorter.layout.load_floor(path) loads one)")
    starts = _as_int_array("starts", starts, 1)
    paths = _as_int_array("paths", paths, 2)
    if paths.shape[0] < 1 or paths.shape[1] != starts.shape[0]:
        raise InputError(f"paths has shape {paths.shape} for {starts.shape[0]} robots",
                         field="paths", expected=f"shape (steps + 1, {starts.shape[0]})")
    n_rob = starts.shape[0]
    if n_rob == 0:
        return None
    # ---- step 0: the starts
    diff = np.flatnonzero(paths[0] != starts)
    if diff.size:
        i = int(diff[0])
        return Violation("start", 0, (i,), (int(starts[i]), int(paths[0, i])))
    chunk = max(2, _CHUNK // max(n_rob, 1))
    lo = 0
    T = paths.shape[0]
    while lo < T:
        hi = min(T, lo + chunk)
        v = _first_in_block(floor, paths[max(lo - 1, 0):hi], max(lo - 1, 0))
        if v is not None:
            return v
        lo = hi
    return None


_CHUNK = 2_000_000          # cells per block of rows (bounds the temporaries' memory)


def _first_in_block(floor, paths, offset):
    """First violation within rows ``offset .. offset + len(paths) - 1`` (row 0 here = offset)."""
    n_rob = paths.shape[1]
    n = floor.n_cells
    w = floor.width
    cells = floor.cells
    moves = floor.moves
    T = paths.shape[0]
    first = {}                                   # kind -> first local row where it occurs

    def note(kind, bad_rows_mask, shift=0):
        rows = np.flatnonzero(bad_rows_mask)
        if rows.size:
            first[kind] = int(rows[0]) + shift

    valid = (paths >= 0) & (paths < n)
    note("off_grid", ~valid.all(axis=1))
    P = np.where(valid, paths, 0)
    blocked = valid & (cells[P] == 0)
    note("obstacle", blocked.any(axis=1))
    if T > 1:
        A, B = P[:-1], P[1:]
        moved = valid[:-1] & valid[1:] & (A != B)
        diff = B - A
        # the only direction that could make the move legal (north when none does)
        if w > 1:
            d = np.where(diff == 1, 0, np.where(diff == w, 1, np.where(diff == -1, 2, 3)))
        else:                                           # one column: +-1 is south / north
            d = np.where(diff == 1, 1, 3)
        legal = moves[A, d] == B
        del diff, d
        bad_t, bad_r = np.nonzero(moved & ~legal)       # row-major: by step, then robot
        a, b = A[bad_t, bad_r], B[bad_t, bad_r]
        adjacent = np.abs(a // w - b // w) + np.abs(a % w - b % w) == 1
        jump_e = ~adjacent
        # a move into / out of an obstacle is reported as "obstacle" (an earlier kind)
        one_way_e = adjacent & ~blocked[bad_t, bad_r] & ~blocked[bad_t + 1, bad_r]
        if jump_e.any():
            first["jump"] = int(bad_t[jump_e][0]) + 1
        if one_way_e.any():
            first["one_way"] = int(bad_t[one_way_e][0]) + 1
        movers = moved & legal
    # vertex conflicts: duplicates within a row
    # (last writer wins in a scratch occupancy array; off-grid robots get private slots)
    ids = np.arange(n_rob)
    keyed = np.where(valid, paths, n + ids[None, :])
    occ = np.empty(n + n_rob, dtype=np.int64)
    for t in range(T):
        occ[keyed[t]] = ids
        if (occ[keyed[t]] != ids).any():
            first["vertex"] = t
            break
    if T > 1:
        # swaps: two legal movers over the same undirected edge in one step
        t_idx, r_idx = np.nonzero(movers)
        if t_idx.size:
            a = A[t_idx, r_idx]
            b = B[t_idx, r_idx]
            key = (t_idx.astype(np.int64) * n + np.minimum(a, b)) * n + np.maximum(a, b)
            sk = np.sort(key)
            dup = sk[1:] == sk[:-1]
            if dup.any():
                # rows of A are local steps 1..T-1
                first["swap"] = int((sk[1:][dup] // (n * n)).min()) + 1
    if not first:
        return None
    t = min(first.values())
    kind = min((k for k, s in first.items() if s == t), key=_ORDER.get)
    row = paths[t]
    step = t + offset
    if kind == "off_grid":
        i = int(np.flatnonzero(~valid[t])[0])
        return Violation(kind, step, (i,), (int(row[i]),))
    if kind == "obstacle":
        i = int(np.flatnonzero(blocked[t])[0])
        return Violation(kind, step, (i,), (int(row[i]),))
    if kind in ("jump", "one_way"):
        sel = (jump_e if kind == "jump" else one_way_e) & (bad_t == t - 1)
        i = int(bad_r[sel][0])
        return Violation(kind, step, (i,), (int(paths[t - 1, i]), int(row[i])))
    if kind == "vertex":
        i, j, c = _first_pair_same_value(row, np.arange(n_rob))
        return Violation(kind, step, (i, j), (c,))
    # swap at step t: robots moving over the same edge in opposite directions
    prev = paths[t - 1]
    mv = np.flatnonzero(movers[t - 1])
    a, b = prev[mv], row[mv]
    ekey = np.minimum(a, b) * n + np.maximum(a, b)
    i, j, _ = _first_pair_same_value(ekey, mv)
    return Violation(kind, step, (i, j), (int(prev[i]), int(row[i])))


def check_paths(floor, starts, paths) -> None:
    """Raise :class:`PlanError` on the first violation of a plan (see :func:`validate`).

    Raises
    ------
    PlanError
        With the violation's step, robots, cells and kind in the message and ``.violation``.
    InputError
        If the arrays have the wrong shape or dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from sorter.layout import Floor
    >>> f = Floor.from_ascii(".@.")
    >>> check_paths(f, [0], np.array([[0], [2]]))
    Traceback (most recent call last):
    ...
    sorter.agv.validate.PlanError: step 1: move of more than one cell: robot 0, cells 0, 2
    """
    v = validate(floor, starts, paths)
    if v is not None:
        raise PlanError(v)


class _CallableModule(types.ModuleType):
    """``from sorter.agv import validate`` gives this module (``validate`` is also its
    function's name): calling it calls :func:`validate`, so both spellings work."""

    def __call__(self, *args, **kwargs):
        return validate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

"""The robot sorting floor: a grid of cells with station roles and a precomputed move table.

The contract every planner kernel relies on (see ``Floor``):

* cell id ``row * width + col``; ``cells[c]`` is a type code (``OBSTACLE``, ``TRAVEL``,
  ``INDUCT``, ``DROP``, int8);
* ``moves[c, d]`` is the cell reached from ``c`` by a move in direction ``d`` (``EAST``,
  ``SOUTH``, ``WEST``, ``NORTH`` = 0..3, the LoRR headings), or -1 when that move leaves the
  grid, enters an obstacle or is forbidden (one-way). Obstacles have all moves -1. Waiting is
  always allowed and has no entry;
* ``inducts`` / ``chutes``: :class:`Station` lists, each with the cells where a robot does
  the job (an induct's cells, a chute's drop cells); ``station_of_cell[c]`` is the index of the
  station within its kind (-1 elsewhere). A drop cell that touches two chute blocks belongs to
  both chutes' ``cells``; ``station_of_cell`` then names the lower-numbered chute.

Floors are built by the loaders in ``sorter.layout`` (``load_floor``), by
:meth:`Floor.from_ascii` and by :func:`sorter.layout.sortation_floor`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sorter.errors import InputError
from sorter.layout._grid import grid_moves, reach, reverse_moves

__all__ = [
    "OBSTACLE", "TRAVEL", "INDUCT", "DROP", "EAST", "SOUTH", "WEST", "NORTH", "DIRECTIONS",
    "Station", "Floor",
]

OBSTACLE, TRAVEL, INDUCT, DROP = 0, 1, 2, 3
EAST, SOUTH, WEST, NORTH = 0, 1, 2, 3
DIRECTIONS = ("east", "south", "west", "north")
_KIND_NAMES = {OBSTACLE: "obstacle", TRAVEL: "travel", INDUCT: "induct", DROP: "drop"}


def _a(kind_name: str) -> str:
    """``"a travel"``, ``"an induct"``."""
    return ("an " if kind_name[0] in "aeiou" else "a ") + kind_name
_INT32 = (-(2 ** 31), 2 ** 31 - 1)


def _int_ids(values, *, field, what):
    """``values`` as an int64 array of whole numbers in the int32 range, else an InputError
    (a float id was truncated, a bool mask read as ids 0/1, a huge id wrapped or overflowed)."""
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{what} have dtype {arr.dtype}", field=field,
                         expected="integer cell ids (row * width + col)")
    if arr.min() < _INT32[0] or arr.max() > _INT32[1]:
        raise InputError(f"{what} hold a value outside the int32 range", field=field,
                         expected="cell ids that fit in int32")
    return arr.astype(np.int64)


def _index(value, name):
    """A Python int from an integer scalar (int or NumPy integer, not bool or float)."""
    import numbers
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} {value!r} is not an integer", field=name,
                         expected="an integer (int or NumPy integer)")
    return int(value)


@dataclass(eq=False)
class Station:
    """An induct or a chute: the cells where a robot does the job.

    Attributes
    ----------
    index : int
        0..n-1 within its kind.
    label : str
        e.g. ``"I3"``, ``"C17"``, or the station id of the source file.
    kind : str
        ``"induct"`` or ``"chute"``.
    cells : int32 array
        Induct cells (an induct) or drop cells (a chute), sorted cell ids. Given as integers
        (a float, a bool mask or an id beyond int32 is an InputError, not truncated).
    queue : int32 array
        An induct's queue cells, in order from the entry (the tail) to the cell next to the
        induct (the head): robots line up there to be loaded one at a time. Travel cells whose
        moves run one way, only onward (``Floor.moves``: a robot in the queue moves up or
        waits; it enters at the tail; the induct is entered from the head only). Empty for
        chutes and for inducts without a queue (the ASCII form's ``Q`` cells; the benchmark
        formats have none). Only a one-cell induct takes a queue (the floor refuses others).
    """

    index: int
    label: str
    kind: str
    cells: np.ndarray = field(repr=False)
    queue: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        if self.kind not in ("induct", "chute"):
            raise InputError(f"station kind {self.kind!r} is unknown", field="kind",
                             expected="'induct' or 'chute'")
        ids = _int_ids(self.cells, field="cells", what=f"{self.kind} {self.label!r} cells")
        self.cells = np.ascontiguousarray(ids.astype(np.int32).ravel())
        q = np.zeros(0, np.int32) if self.queue is None else _int_ids(
            self.queue, field="queue", what=f"{self.kind} {self.label!r} queue")
        self.queue = np.ascontiguousarray(np.asarray(q).astype(np.int32).ravel())
        if self.queue.size and self.kind != "induct":
            raise InputError(f"chute {self.label!r} has queue cells", field="queue",
                             expected="queue cells for inducts only")

    def __repr__(self):
        q = f", queue=<{self.queue.size} cells>" if self.queue.size else ""
        return (f"Station(index={self.index}, label={self.label!r}, kind={self.kind!r}, "
                f"cells={self.cells.tolist() if self.cells.size <= 8 else f'<{self.cells.size} cells>'}"
                f"{q})")


def _apply_queues(floor) -> None:
    """Check the inducts' queues and make their moves one way, onward (in place).

    A queue ``q0 .. qk`` (tail to head) of travel cells, each beside the next and ``qk``
    beside a cell ``I`` of its induct: from ``qj`` the only move is to ``qj+1`` (``qk``: to
    ``I``); ``qj`` is entered only from ``qj-1``, and ``q0`` from its other free neighbours
    (not from ``I``); ``I`` is entered only from ``qk``.
    """
    w, n = floor.width, floor.n_cells
    m = floor.moves
    used = np.full(n, -1, np.int64)
    for st in floor.inducts:
        q = st.queue
        if not q.size:
            continue
        where = f"induct {st.label} queue"
        if st.cells.size != 1:
            # its other cells could be entered from anywhere, round the queue
            raise InputError(f"induct {st.label} has {st.cells.size} cells and a queue",
                             field="queue", expected="a queue only for a one-cell induct")
        if q.min() < 0 or q.max() >= n:
            raise InputError(f"{where} holds a cell outside the grid", field="queue",
                             expected=f"cell ids in 0..{n - 1}")
        for c in q.tolist():
            r, col = divmod(c, w)
            if floor.cells[c] != TRAVEL:
                raise InputError(f"{where} cell (row {r}, col {col}) is "
                                 f"{_a(_KIND_NAMES[int(floor.cells[c])])} cell", field="queue",
                                 expected="travel cells")
            if used[c] >= 0:
                again = "twice in this queue" if used[c] == st.index else "in another queue too"
                raise InputError(f"{where} cell (row {r}, col {col}) is {again}",
                                 field="queue", expected="each queue cell in one queue, once")
            used[c] = st.index
        nxt = []
        for a, b in zip(q[:-1].tolist(), q[1:].tolist()):
            if b not in _neighbours(a, w, n):
                r, col = divmod(b, w)
                raise InputError(f"{where} cell (row {r}, col {col}) is not beside the one before "
                                 f"it", field="queue", expected="a path of neighbouring cells")
            nxt.append(b)
        head = int(q[-1])
        near = [c for c in st.cells.tolist() if c in _neighbours(head, w, n)]
        if not near:
            r, col = divmod(head, w)
            raise InputError(f"{where} ends at (row {r}, col {col}), beside no cell of the induct",
                             field="queue", expected="the last queue cell beside an induct cell")
        nxt.append(near[0])
        inside = set(q.tolist())
        for j, c in enumerate(q.tolist()):
            to = nxt[j]
            d_to = _neighbours(c, w, n).index(to)
            if m[c, d_to] != to:
                r, col = divmod(c, w)
                raise InputError(f"{where} cannot move on from (row {r}, col {col}): the move "
                                 f"{DIRECTIONS[d_to]} is forbidden", field="queue",
                                 expected="each queue cell free to move to the next")
            for d in range(4):
                if d != d_to:
                    m[c, d] = -1                         # onward only
            for d, nb in enumerate(_neighbours(c, w, n)):
                if nb < 0:
                    continue
                back = (d + 2) % 4
                if m[nb, back] != c:
                    continue
                prev_ok = (j > 0 and nb == q[j - 1]) or (j == 0 and nb not in inside
                                                          and nb not in st.cells.tolist())
                if not prev_ok:
                    m[nb, back] = -1                     # entered from the one before only
        ind = near[0]
        for d, nb in enumerate(_neighbours(ind, w, n)):
            if nb >= 0 and nb != head and m[nb, (d + 2) % 4] == ind:
                m[nb, (d + 2) % 4] = -1                  # the induct from its queue only
        if not any(m[nb, (d + 2) % 4] == q[0]
                   for d, nb in enumerate(_neighbours(int(q[0]), w, n)) if nb >= 0):
            r, col = divmod(int(q[0]), w)
            raise InputError(f"{where} starts at (row {r}, col {col}), which no robot can enter",
                             field="queue", expected="a tail cell beside a free cell outside the queue")


def _neighbours(c, w, n):
    """Cell ids east, south, west, north of ``c`` (-1 off the grid)."""
    r, col = divmod(int(c), w)
    h = n // w
    return [c + 1 if col + 1 < w else -1, c + w if r + 1 < h else -1,
            c - 1 if col > 0 else -1, c - w if r > 0 else -1]


class Floor:
    """A grid floor: cell types, moves (optionally one-way), induct and chute stations.

    Parameters
    ----------
    cells : array-like of int, shape (height, width)
        Cell type codes (``OBSTACLE``, ``TRAVEL``, ``INDUCT``, ``DROP``).
    moves : int array (height * width, 4), optional
        Move table; default: every 4-neighbour move between free cells (undirected floor).
        Given tables are checked: a move goes to the geometric neighbour, which is free.
    inducts, chutes : sequence of Station
        Station cells must have type ``INDUCT`` (inducts) and ``DROP`` (chutes).
    name : str
        A short name (file stem); None gives ``"floor"``.
    source : str, optional
        The file the floor came from.
    chute_body : int array (height * width,), optional
        Chute index of the obstacle cells forming each chute's body (for drawing and
        ASCII output), -1 elsewhere.
    check : bool
        Check that every induct cell and every drop cell lie in one strongly connected
        part of the floor (each induct can reach each chute and come back). Loaders check
        themselves to name the file and line.

    Raises
    ------
    InputError
        On a malformed table or station, or (``check=True``) an unreachable station.

    Examples
    --------
    >>> f = Floor.from_ascii('''
    ... I..
    ... .CD
    ... ...
    ... ''')
    >>> f.height, f.width, len(f.inducts), len(f.chutes), f.chutes[0].cells.tolist()
    (3, 3, 1, 1, [5])
    >>> f.moves[f.cell(0, 0)].tolist()   # east, south, west, north
    [1, 3, -1, -1]
    """

    def __init__(self, cells, *, moves=None, inducts=(), chutes=(), name="floor", source=None,
                 chute_body=None, check=True):
        try:
            grid = np.asarray(cells)
        except (ValueError, TypeError):             # ragged rows: NumPy's own message
            raise InputError("cells are not a rectangular grid (rows of different lengths)",
                             field="cells", expected="array of shape (height, width)") from None
        if grid.ndim != 2 or grid.shape[0] < 1 or grid.shape[1] < 1:
            raise InputError(f"cells must be a non-empty 2-D grid, got shape {grid.shape}",
                             field="cells", expected="array of shape (height, width)")
        if not np.isin(grid, (OBSTACLE, TRAVEL, INDUCT, DROP)).all():
            raise InputError("cells hold an unknown type code", field="cells",
                             expected="codes 0 obstacle, 1 travel, 2 induct, 3 drop")
        self.height, self.width = (int(s) for s in grid.shape)
        self.name = "floor" if name is None else str(name)   # (None was named 'None')
        self.source = None if source is None else str(source)
        self.cells = np.ascontiguousarray(grid.ravel(), dtype=np.int8)
        n = self.height * self.width
        free2d = grid != OBSTACLE
        if moves is None:
            self.moves = grid_moves(free2d)
        else:
            m = np.asarray(moves)
            if m.shape != (n, 4):
                raise InputError(f"moves has shape {m.shape}", field="moves",
                                 expected=f"shape ({n}, 4)")
            m = _int_ids(m, field="moves", what="moves")      # no float truncation, no wrap
            self.moves = np.ascontiguousarray(m, dtype=np.int32)
            full = grid_moves(free2d)
            bad = (self.moves != -1) & (self.moves != full)
            if bad.any():
                c, d = (int(v) for v in np.argwhere(bad)[0])
                r, col = divmod(c, self.width)
                raise InputError(
                    f"move {DIRECTIONS[d]} from cell (row {r}, col {col}) goes to cell "
                    f"{int(self.moves[c, d])}", field="moves",
                    expected="-1 or the free neighbour cell in that direction")
        for kind, stations in (("induct", inducts), ("chute", chutes)):
            if isinstance(stations, (str, bytes, dict)) or not hasattr(stations, "__iter__"):
                raise InputError(f"{kind}s is a {type(stations).__name__}", field=f"{kind}s",
                                 expected="a list of Station")
        self.inducts = list(inducts)
        self.chutes = list(chutes)
        for kind, stations in (("induct", self.inducts), ("chute", self.chutes)):
            for i, st in enumerate(stations):
                if not isinstance(st, Station):
                    raise InputError(f"{kind} station {i} is a {type(st).__name__}",
                                     field=f"{kind}s",
                                     expected=f"a Station(index={i}, label, kind={kind!r}, cells)")
        self.station_of_cell = np.full(n, -1, dtype=np.int32)
        for kind, stations, code in (("induct", self.inducts, INDUCT), ("chute", self.chutes, DROP)):
            if not stations:
                continue
            sizes = np.array([st.cells.size for st in stations])
            seen = {}
            for i, st in enumerate(stations):
                if st.kind != kind or st.index != i:
                    raise InputError(f"{kind} station {i} is {st!r}", field=f"{kind}s",
                                     expected=f"kind {kind!r} and index {i}")
                # labels name stations in plans, chute tables and reports (the chute engine
                # refused a repeated one only when a sorting floor was run)
                key = str(st.label)
                if key in seen:
                    raise InputError(f"{kind}s {seen[key]} and {i} are both labelled {key!r}",
                                     field=f"{kind}s", expected=f"one label per {kind}")
                seen[key] = i
            if (sizes == 0).any():
                st = stations[int(np.flatnonzero(sizes == 0)[0])]
                raise InputError(f"{kind} {st.label} has no cells", field=f"{kind}s",
                                 expected="at least one free access cell")
            allc = np.concatenate([st.cells for st in stations])
            owner = np.repeat(np.arange(len(stations), dtype=np.int32), sizes)
            if allc.min() < 0 or allc.max() >= n:
                st = stations[int(owner[np.flatnonzero((allc < 0) | (allc >= n))[0]])]
                raise InputError(f"{kind} {st.label} has a cell id out of range",
                                 field=f"{kind}s", expected=f"cell ids in 0..{n - 1}")
            wrong = np.flatnonzero(self.cells[allc] != code)
            if wrong.size:
                st = stations[int(owner[wrong[0]])]
                r, col = divmod(int(allc[wrong[0]]), self.width)
                raise InputError(
                    f"{kind} {st.label} cell (row {r}, col {col}) is "
                    f"{_a(_KIND_NAMES[int(self.cells[allc[wrong[0]]])])} cell", field=f"{kind}s",
                    expected=f"{_KIND_NAMES[code]} cells")
            # lowest station index wins on shared cells: assign in reverse order
            self.station_of_cell[allc[::-1]] = owner[::-1]
        if any(st.queue.size for st in self.inducts):
            self.moves = self.moves.copy() if moves is not None else self.moves
            _apply_queues(self)
        if chute_body is None:
            self.chute_body = np.full(n, -1, dtype=np.int32)
        else:
            body = np.asarray(chute_body)
            if body.size and (body.dtype == np.bool_ or not np.issubdtype(body.dtype, np.integer)):
                raise InputError(f"chute_body has dtype {body.dtype}", field="chute_body",
                                 expected="integer chute indices (-1 where no chute)")
            self.chute_body = np.ascontiguousarray(
                np.clip(body, -2, len(self.chutes)), dtype=np.int32).ravel()
            if self.chute_body.shape != (n,):
                raise InputError("chute_body has the wrong shape", field="chute_body",
                                 expected=f"shape ({n},)")
            if n and (self.chute_body.min() < -1 or self.chute_body.max() >= len(self.chutes)):
                # (a float was truncated, an index past the chutes drew a body of no chute)
                raise InputError("chute_body names a chute the floor does not have",
                                 field="chute_body",
                                 expected=f"-1 or a chute index in [0, {len(self.chutes)})")
        self._free = None
        self._rev = None
        self._directed = None
        if check:
            problem = self.reachability_problem()
            if problem is not None:
                msg, cell = problem
                r, col = self.rc(cell)
                raise InputError(f"{msg} at cell (row {r}, col {col})", path=self.source,
                                 field="stations", expected="every induct and chute mutually reachable")

    # ------------------------------------------------------------------ basic queries
    @property
    def n_cells(self) -> int:
        """Number of cells, ``height * width``."""
        return self.height * self.width

    @property
    def free_cells(self) -> np.ndarray:
        """int32 ids of the non-obstacle cells, ascending."""
        if self._free is None:
            self._free = np.flatnonzero(self.cells != OBSTACLE).astype(np.int32)
        return self._free

    @property
    def induct_cells(self) -> np.ndarray:
        """int32 ids of all induct cells (every induct station), ascending."""
        return np.flatnonzero(self.cells == INDUCT).astype(np.int32)

    @property
    def drop_cells(self) -> np.ndarray:
        """int32 ids of all drop cells (every chute), ascending."""
        return np.flatnonzero(self.cells == DROP).astype(np.int32)

    def cell(self, row: int, col: int) -> int:
        """Cell id of (row, col); an InputError off the floor or for a non-integer."""
        row, col = _index(row, "row"), _index(col, "col")
        if not (0 <= row < self.height and 0 <= col < self.width):
            raise InputError(f"cell (row {row}, col {col}) is off the {self.height} x "
                             f"{self.width} floor", field="cell", expected="a cell on the floor")
        return int(row) * self.width + int(col)

    def rc(self, cell: int) -> tuple[int, int]:
        """(row, col) of a cell id; an InputError off the floor or for a non-integer."""
        cell = _index(cell, "cell")
        if not 0 <= cell < self.n_cells:
            raise InputError(f"cell {cell} is off the {self.height} x {self.width} floor",
                             field="cell", expected=f"a cell id in [0, {self.n_cells})")
        r, c = divmod(int(cell), self.width)
        return r, c

    @property
    def is_directed(self) -> bool:
        """True if some move is one-way (allowed from a to b but not from b to a)."""
        if self._directed is None:
            src, d = np.nonzero(self.moves >= 0)
            tgt = self.moves[src, d]
            back = self.moves[tgt, (d + 2) % 4]
            self._directed = bool((back != src).any())
        return self._directed

    @property
    def reverse_moves(self) -> np.ndarray:
        """int32 (n_cells, 4): ``rev[c, d]`` is the cell whose move in direction ``d`` enters ``c``."""
        if self._rev is None:
            self._rev = reverse_moves(self.moves)
        return self._rev

    def neighbours(self, cell: int) -> list[int]:
        """Cells reachable from ``cell`` in one move (not counting waiting)."""
        cell = _index(cell, "cell")
        if not 0 <= cell < self.n_cells:
            raise InputError(f"cell {cell} is off the {self.height} x {self.width} floor",
                             field="cell", expected=f"a cell id in [0, {self.n_cells})")
        return [int(t) for t in self.moves[int(cell)] if t >= 0]

    def __repr__(self):
        return (f"Floor({self.name!r}, {self.height}x{self.width}, free={self.free_cells.size}, "
                f"inducts={len(self.inducts)}, chutes={len(self.chutes)}, "
                f"directed={self.is_directed})")

    # ------------------------------------------------------------------ checks
    def reachability_problem(self):
        """First station pair that cannot reach each other, or None.

        All induct cells and all drop cells must lie in one strongly connected part of the
        floor (robots go induct -> drop cell -> induct forever). Floors with no inducts or
        no chutes (plain MovingAI maps) are not checked.

        Returns
        -------
        None, or ``(message, cell)`` naming the first failing pair and the cell to point at.
        """
        if not self.inducts or not self.chutes:
            return None
        root_st = self.inducts[0]
        fwd = reach(self.moves, root_st.cells)
        bwd = reach(self.moves, root_st.cells, backward=True, rev=self.reverse_moves)
        allc = np.concatenate([ch.cells for ch in self.chutes])
        owner = np.repeat(np.arange(len(self.chutes)), [ch.cells.size for ch in self.chutes])
        bad = np.flatnonzero(~fwd[allc])
        if bad.size:
            ch = self.chutes[int(owner[bad[0]])]
            return (f"induct {root_st.label} cannot reach drop cell of chute {ch.label}",
                    int(allc[bad[0]]))
        bad = np.flatnonzero(~bwd[allc])
        if bad.size:
            ch = self.chutes[int(owner[bad[0]])]
            return (f"drop cell of chute {ch.label} cannot reach induct {root_st.label}",
                    int(allc[bad[0]]))
        drops = allc
        ind_cells = np.concatenate([ind.cells for ind in self.inducts])
        if fwd[ind_cells].all() and bwd[ind_cells].all():
            return None
        for ind in self.inducts:
            for cell in ind.cells:
                if not bwd[cell]:
                    f = reach(self.moves, [cell])
                    bad = np.flatnonzero(~f[drops])
                    k = int(owner[bad[0]]) if bad.size else 0
                    return (f"induct {ind.label} cannot reach drop cell of chute "
                            f"{self.chutes[k].label}", int(cell))
                if not fwd[cell]:
                    b = reach(self.moves, [cell], backward=True, rev=self.reverse_moves)
                    bad = np.flatnonzero(~b[drops])
                    k = int(owner[bad[0]]) if bad.size else 0
                    return (f"drop cell of chute {self.chutes[k].label} cannot reach induct "
                            f"{ind.label}", int(drops[bad[0]]) if bad.size else int(cell))
        return None

    # ------------------------------------------------------------------ text form
    @classmethod
    def from_ascii(cls, text: str, name: str = "ascii", *, source=None) -> "Floor":
        """Build a floor from the plain ASCII form (see :mod:`sorter.layout.ascii`).

        ``.`` travel, ``@`` ``#`` ``T`` obstacle, ``I`` induct cell (one induct each),
        ``D`` drop cell, ``C`` chute body (obstacle; each 4-connected ``C`` block is one chute,
        its station is the ``D`` cells touching it), ``>`` ``<`` ``^`` ``v`` one-way travel
        cells (the moves along the arrow's axis that touch the cell are one-way in the arrow's
        direction; side moves stay two-way).

        Raises
        ------
        InputError
            Naming line and column (ragged rows, unknown character, header that disagrees
            with the rows, a chute with no drop cell, a drop cell touching no chute, an
            induct that cannot reach a chute).
        """
        from sorter.layout.ascii import parse_ascii
        return parse_ascii(text, name=name, path=source)

    def to_ascii(self) -> str:
        """The plain ASCII form (round-trips through :meth:`from_ascii` when representable).

        Raises
        ------
        ValueError
            If the floor has one-way moves that the arrow cells cannot express.
        """
        from sorter.layout.ascii import format_ascii
        return format_ascii(self)

    # ------------------------------------------------------------------ drawing
    def draw(self, ax=None, robots=None, **kwargs):
        """Draw the floor with matplotlib; see :func:`sorter.layout.draw.draw_floor`."""
        from sorter.layout.draw import draw_floor
        return draw_floor(self, ax=ax, robots=robots, **kwargs)


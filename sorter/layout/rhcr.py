"""RHCR's maps (Li et al., AAAI 2021): ``sorting_map.grid`` (CSV) and ``kiva.map`` (text).

``.grid`` (sorting centre)
    Line 1 ``Grid size (x, y)``; line 2 ``X,Y`` (number of x values, number of y values);
    line 3 the column header ``id,type,station,x,y,weight_to_NORTH,weight_to_WEST,
    weight_to_SOUTH,weight_to_EAST,weight_for_WAIT``; then one line per cell with
    ``id = x * Y + y``. Our floor has ``height = Y`` rows (row = y) and ``width = X`` columns
    (col = x): 37 x 77 for ``sorting_map.grid``.

    Types: ``Obstacle``, ``Travel``, ``Induct`` (one induct station per station id), ``Eject``
    (a chute; its cells are the Eject cells sharing a station id). ``Travel``/``Obstacle``
    cells have station ``None``. The four move weights are directed: ``inf`` = that move is
    forbidden (one-way aisles); any finite weight = allowed (our floors have unit moves; the
    file's weights are all 1). The weight columns are read by their geometry, which we checked
    against the obstacles of the file (no allowed move leads into an obstacle): RHCR's own code
    indexes them as its moves east/north/west/south in a frame with x as the row, so in our
    (row = y, col = x) frame the columns ``weight_to_NORTH, _WEST, _SOUTH, _EAST`` are the moves
    to ``y + 1`` (our south), ``x - 1`` (west), ``y - 1`` (north) and ``x + 1`` (east). The
    header's compass names do not match the geometry; the offsets are what matter.
    ``weight_for_WAIT`` must be finite on free cells (our robots may wait anywhere; a file that
    forbids waiting somewhere is refused rather than silently ignored).

    Chute bodies (for drawing) are the obstacle cells touching a chute's Eject cells.

``kiva.map`` (fulfilment warehouse)
    Line 1 ``rows,cols``; line 2 the number of endpoints; line 3 the number of robot home
    cells; line 4 a time horizon; then ``rows`` lines of ``cols`` characters: ``@`` obstacle
    (shelf), ``e`` endpoint, ``r`` robot home, ``.`` travel. As a sorting floor: each ``r`` home
    cell is an induct station (where robots load), and the ``e`` endpoints are drop cells
    grouped into one chute per shelf block they touch (as the LoRR ``S`` cells). A map without
    ``r`` or without ``e`` cells fails: it has no robots' roles to map.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sorter.errors import plain_float
from sorter.layout._common import (
    check_floor_reachable, check_floor_size, check_text, fail, grid_rows, parse_grid, plain_int,
    read_text, split_lines,
)
from sorter.layout.floor import DROP, INDUCT, OBSTACLE, TRAVEL, Floor, Station
from sorter.layout.movingai import role_floor

__all__ = ["load_rhcr_grid", "parse_rhcr_grid", "load_kiva_map", "parse_kiva_map"]

_HEADER = ("id,type,station,x,y,weight_to_NORTH,weight_to_WEST,weight_to_SOUTH,weight_to_EAST,"
           "weight_for_WAIT")
_FIELDS = _HEADER.split(",")
_TYPES = {"Obstacle": OBSTACLE, "Travel": TRAVEL, "Induct": INDUCT, "Eject": DROP}
# file weight column k -> (dx, dy) and our direction code (0 east, 1 south, 2 west, 3 north)
_COL_OFFSET = ((0, 1), (-1, 0), (0, -1), (1, 0))
_COL_DIR = (1, 2, 3, 0)


def _parse_weight(s):
    s = s.strip()
    if s.lower() in ("inf", "infinity", "+inf"):
        return math.inf
    v = plain_float(s)
    if math.isnan(v) or v <= 0:
        raise ValueError(s)
    return v


def parse_rhcr_grid(text: str, *, name: str = "grid", path=None) -> Floor:
    """Parse the text of an RHCR ``.grid`` file; see :func:`load_rhcr_grid`."""
    where = path if path is not None else f"<{name}>"
    check_text(text, where)
    lines = split_lines(text)
    if not lines or not lines[0].strip().lower().startswith("grid size"):
        fail(f"first line {lines[0] if lines else ''!r}", path=where, line=1,
             expected="'Grid size (x, y)'")
    if len(lines) < 3:
        fail("file ends inside the header", path=where, line=len(lines),
             expected="'Grid size (x, y)', 'X,Y', then the column header")
    parts = lines[1].split(",")
    try:
        X, Y = (plain_int(v) for v in parts)
    except ValueError:
        X = Y = 0
    if len(parts) != 2 or X < 1 or Y < 1:
        fail(f"grid size {lines[1]!r}", path=where, line=2, field="grid size",
             expected="'X,Y' with two positive integers")
    check_floor_size(Y, X, path=where, line=2, field="grid size")
    if [h.strip() for h in lines[2].split(",")] != _FIELDS:
        fail(f"column header {lines[2]!r}", path=where, line=3, expected=repr(_HEADER))
    n = X * Y
    body = lines[3:]
    if len(body) != n:
        fail(f"grid size {X} x {Y} needs {n} cell lines, the file has {len(body)}", path=where,
             line=min(len(lines), 3 + n + 1), field="grid size",
             expected=f"{n} lines after the header")
    height, width = Y, X
    cells = np.full(n, -1, dtype=np.int8)
    line_of_cell = np.zeros(n, dtype=np.int64)
    allowed = np.zeros((n, 4), dtype=bool)        # indexed by our direction code
    station_ids = {}                               # (kind code, station id) -> list of cells
    for i, ln in enumerate(body):
        lineno = 4 + i
        f = ln.split(",")
        if len(f) != 10:
            fail(f"line has {len(f)} fields", path=where, line=lineno,
                 expected=f"10 comma-separated fields: {_HEADER}")
        ints = []
        for k in (0, 3, 4):
            try:
                ints.append(plain_int(f[k]))
            except ValueError:
                fail(f"{f[k]!r} is not an integer", path=where, line=lineno, field=_FIELDS[k],
                     expected="an integer")
        cid, x, y = ints
        if not (0 <= x < X and 0 <= y < Y):
            fail(f"cell ({x}, {y}) is off the {X} x {Y} grid", path=where, line=lineno,
                 field="x", expected=f"0 <= x < {X}, 0 <= y < {Y}")
        if cid != x * Y + y:
            fail(f"id {cid} does not match x={x}, y={y}", path=where, line=lineno, field="id",
                 expected=f"id = x * {Y} + y = {x * Y + y}")
        typ = f[1].strip()
        if typ not in _TYPES:
            fail(f"unknown type {typ!r}", path=where, line=lineno, field="type",
                 expected="Obstacle, Travel, Induct or Eject")
        c = y * width + x
        if cells[c] >= 0:
            fail(f"cell ({x}, {y}) is listed twice (first on line {line_of_cell[c]})", path=where,
                 line=lineno, field="id", expected="each cell once")
        code = _TYPES[typ]
        cells[c] = code
        line_of_cell[c] = lineno
        st = f[2].strip()
        if code in (OBSTACLE, TRAVEL) and st != "None":
            fail(f"{typ} cell has station {st!r}", path=where, line=lineno, field="station",
                 expected="None for Obstacle and Travel cells")
        if code in (INDUCT, DROP):
            if st in ("None", ""):
                fail(f"{typ} cell has no station id", path=where, line=lineno, field="station",
                     expected="a station id shared by the cells of one station")
            station_ids.setdefault((code, st), []).append(c)
        for k in range(4):
            try:
                wgt = _parse_weight(f[5 + k])
            except ValueError:
                fail(f"{f[5 + k]!r} is not a weight", path=where, line=lineno, field=_FIELDS[5 + k],
                     expected="a positive number or inf")
            if math.isfinite(wgt):
                dx, dy = _COL_OFFSET[k]
                tx, ty = x + dx, y + dy
                if code == OBSTACLE:
                    fail("an Obstacle cell has an allowed move", path=where, line=lineno,
                         field=_FIELDS[5 + k], expected="inf for every move of an Obstacle cell")
                if not (0 <= tx < X and 0 <= ty < Y):
                    fail(f"allowed move leads off the grid to ({tx}, {ty})", path=where,
                         line=lineno, field=_FIELDS[5 + k], expected="inf at the grid's edge")
                allowed[c, _COL_DIR[k]] = True
        try:
            wait = _parse_weight(f[9])
        except ValueError:
            fail(f"{f[9]!r} is not a weight", path=where, line=lineno, field=_FIELDS[9],
                 expected="a positive number or inf")
        if code != OBSTACLE and not math.isfinite(wait):
            # our robots may always wait; a cell where they may not cannot be honoured
            fail(f"waiting is forbidden (inf) in this {typ} cell", path=where, line=lineno,
                 field=_FIELDS[9], expected="a finite weight_for_WAIT on every free cell "
                                           "(robots may wait anywhere)")
    grid = cells.reshape(height, width)
    # allowed moves into obstacles
    from sorter.layout._grid import grid_moves
    full = grid_moves(grid != OBSTACLE)
    bad = allowed & (full < 0)
    if bad.any():
        c, d = (int(v) for v in np.argwhere(bad)[0])
        k = _COL_DIR.index(d)
        fail("allowed move leads into an Obstacle cell", path=where, line=int(line_of_cell[c]),
             field=_FIELDS[5 + k], expected="inf for a move into an obstacle")
    moves = np.where(allowed, full, -1).astype(np.int32)
    inducts, chutes = [], []
    groups = {INDUCT: [], DROP: []}
    for (code, st), cl in station_ids.items():
        groups[code].append((min(cl), st, np.sort(np.array(cl, dtype=np.int32))))
    for code, out, kind in ((INDUCT, inducts, "induct"), (DROP, chutes, "chute")):
        for k, (_, st, cl) in enumerate(sorted(groups[code], key=lambda t: t[0])):
            out.append(Station(k, st, kind, cl))
    chute_body = np.full(n, -1, dtype=np.int32)
    obstacle = cells == OBSTACLE
    for ch in reversed(chutes):          # lowest chute index wins on shared obstacles
        nb = full_neighbours(ch.cells, height, width)
        nb = nb[obstacle[nb]]
        chute_body[nb] = ch.index
    floor = Floor(grid, moves=moves, inducts=inducts, chutes=chutes, name=name,
                  source=None if path is None else str(path), chute_body=chute_body, check=False)
    check_floor_reachable(floor, path=where, locate=lambda c: (int(line_of_cell[c]), None))
    return floor


def full_neighbours(cells, height, width):
    """Geometric 4-neighbours of the given cells (inside the grid), as a flat array."""
    r, c = np.divmod(np.asarray(cells, dtype=np.int64), width)
    out = []
    for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        rr, cc = r + dr, c + dc
        ok = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
        out.append(rr[ok] * width + cc[ok])
    return np.concatenate(out)


def load_rhcr_grid(path) -> Floor:
    """Load RHCR's ``.grid`` sorting-centre map (CSV with directed move weights).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Floor
        ``height`` = the y count, ``width`` = the x count; one-way moves in ``moves``;
        one induct per Induct station id, one chute per Eject station id (see the module
        docstring for the frame and the weight columns).

    Raises
    ------
    InputError
        Naming file, line and field (header, size, field count, types, station ids, weights,
        allowed moves into obstacles or off the grid, unreachable stations).

    Examples
    --------
    >>> from sorter.resources import shared_path
    >>> p = shared_path("benchmarks", "rhcr", "sorting_map.grid")
    >>> f = load_rhcr_grid(p) if p else None
    >>> (f.height, f.width, len(f.inducts), len(f.chutes), f.is_directed) if f else (37, 77, 50, 275, True)
    (37, 77, 50, 275, True)
    """
    p = Path(path)
    return parse_rhcr_grid(read_text(p), name=p.stem, path=p)


def _kiva_table():
    t = np.full(256, -1, dtype=np.int8)
    t[ord(".")] = TRAVEL
    t[ord("@")] = OBSTACLE
    t[ord("r")] = INDUCT
    t[ord("e")] = DROP
    return t


_KIVA = _kiva_table()


def parse_kiva_map(text: str, *, name: str = "kiva", path=None) -> Floor:
    """Parse the text of an RHCR ``kiva.map``; see :func:`load_kiva_map`."""
    where = path if path is not None else f"<{name}>"
    check_text(text, where)
    lines = split_lines(text)
    if len(lines) < 4:
        fail("file ends inside the header", path=where, line=max(len(lines), 1),
             expected="'rows,cols', endpoints, homes, horizon on lines 1-4")
    parts = lines[0].split(",")
    try:
        rows, cols = (plain_int(v) for v in parts)
    except ValueError:
        rows = cols = 0
    if len(parts) != 2 or rows < 1 or cols < 1:
        fail(f"size {lines[0]!r}", path=where, line=1, field="rows,cols",
             expected="'rows,cols' with two positive integers")
    check_floor_size(rows, cols, path=where, line=1, field="rows,cols")
    counts = []
    for i, fld in ((1, "endpoints"), (2, "homes"), (3, "horizon")):
        try:
            v = plain_int(lines[i])
        except ValueError:
            v = -1
        if v < 0:
            fail(f"{lines[i]!r} is not a count", path=where, line=i + 1, field=fld,
                 expected="a non-negative integer")
        counts.append(v)
    grid_lines = grid_rows(lines, 4, rows, path=where)
    codes, _ = parse_grid(grid_lines, first_line=5, path=where, table=_KIVA,
                          expected="one of . @ e r", width=cols)
    n_e = int((codes == DROP).sum())
    n_r = int((codes == INDUCT).sum())
    if n_e != counts[0]:
        fail(f"header says {counts[0]} endpoints, the grid has {n_e} 'e' cells", path=where,
             line=2, field="endpoints", expected=f"{n_e}")
    if n_r != counts[1]:
        fail(f"header says {counts[1]} homes, the grid has {n_r} 'r' cells", path=where, line=3,
             field="homes", expected=f"{n_r}")
    if n_r == 0 or n_e == 0:
        missing = "'r' home cells (inducts)" if n_r == 0 else "'e' endpoints (drop cells)"
        fail(f"the map has no {missing}: no robots' roles to map onto a sorting floor",
             path=where, line=5, expected="at least one 'r' and one 'e' cell")

    def locate(cell):
        r, c = divmod(int(cell), cols)
        return 5 + r, c + 1

    return role_floor(codes, name=name, path=path, locate=locate, where=where)


def load_kiva_map(path) -> Floor:
    """Load RHCR's ``kiva.map`` as a sorting floor (homes = inducts, endpoints = drop cells).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Floor
        Each ``r`` cell one induct; ``e`` cells grouped into one chute per shelf block.

    Raises
    ------
    InputError
        Naming file, line, column and expected form (header counts that disagree with the
        grid, ragged rows, unknown characters, a missing role).

    Examples
    --------
    >>> from sorter.resources import shared_path
    >>> p = shared_path("benchmarks", "rhcr", "kiva.map")
    >>> f = load_kiva_map(p) if p else None
    >>> (f.height, f.width, len(f.inducts), f.drop_cells.size) if f else (33, 46, 192, 480)
    (33, 46, 192, 480)
    """
    p = Path(path)
    return parse_kiva_map(read_text(p), name=p.stem, path=p)

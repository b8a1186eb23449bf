"""MovingAI ``.map`` grids (also the League of Robot Runners maps) and ``.scen`` scenarios.

Map format: four header lines ``type octile``, ``height H``, ``width W``, ``map``, then H rows
of W characters:

* ``.`` ``G`` free; ``@`` ``O`` ``T`` ``W`` blocked (MovingAI's codes);
* ``E`` (LoRR emitter) -> an induct cell, one induct station per ``E`` cell in row-major order;
* ``S`` (LoRR service cell) -> a drop cell; drop cells are grouped into chutes by the 4-connected
  obstacle block they touch (a cell touching two blocks serves both chutes). A block that reaches
  the map's edge is the border wall, not a chute body. An ``S`` cell that touches no obstacle
  block inside the edge (the main-round ``warehouse_large`` has 104 that touch no obstacle at
  all, from a shifted row upstream; on a walled map, those beside only the wall) becomes a
  one-cell chute of its own, labelled ``S<row>_<col>``.

Note: in the MovingAI terrain maps ``S`` means swamp (passable); these benchmark files have none,
so ``S`` is read as the LoRR role. A map with neither ``E`` nor ``S`` loads with no stations.

Scenario format (``.scen``): an optional first line ``version 1`` (or ``version 1.0``; other
versions are refused), then one agent per line, tab-separated:
``bucket map width height start_x start_y goal_x goal_y optimal_length`` (x = column, y = row).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sorter.errors import plain_float
from sorter.layout._common import (
    check_floor_reachable, check_text, fail, grid_rows, parse_grid, parse_map_header, plain_int,
    read_text, split_lines,
)
from sorter.layout._grid import char_codes, group_by_block
from sorter.layout.floor import DROP, INDUCT, OBSTACLE, Floor, Station

__all__ = ["load_movingai_map", "parse_movingai_map", "load_scen", "Scenario", "role_floor"]

_EXPECTED = "one of . G @ O T W E S"
_SCEN_VERSIONS = ("1", "1.0")      # the .scen header's version: 'version 1' ('1.0' in some copies)


_TABLE = char_codes(travel=".G", obstacle="@OTW", induct="E", drop="S")


def role_floor(codes, *, name, path, locate, where, induct_prefix="I", check=True):
    """Build a Floor from a code grid whose drop cells are grouped by the obstacle block they touch
    (blocks reaching the grid's edge are the border wall, not chutes; see the module docstring).

    ``locate(cell) -> (line, column)`` places a cell in the source file for error messages.
    """
    h, w = codes.shape
    block = codes == OBSTACLE
    drop = codes == DROP
    chutes = []
    chute_body = np.full(h * w, -1, dtype=np.int32)
    if drop.any():
        groups, labels, orphans = group_by_block(block, drop, edge_is_wall=True)
        for k, (b, cells) in enumerate(groups):
            chutes.append(Station(k, f"C{k}", "chute", cells))
        # blocks touched by drop cells are chute bodies, numbered as their chutes
        blk_to_chute = np.full(int(labels.max()) + 2, -1, dtype=np.int32)
        for k, (b, _) in enumerate(groups):
            blk_to_chute[b] = k
        chute_body = np.where(labels >= 0, blk_to_chute[labels], -1).astype(np.int32)
        for c in orphans:
            r, col = divmod(int(c), w)
            chutes.append(Station(len(chutes), f"S{r}_{col}", "chute", [c]))
    ind_cells = np.flatnonzero(codes.ravel() == INDUCT)
    inducts = [Station(k, f"{induct_prefix}{k}", "induct", [c]) for k, c in enumerate(ind_cells)]
    floor = Floor(codes, inducts=inducts, chutes=chutes, name=name,
                  source=None if path is None else str(path), chute_body=chute_body, check=False)
    if check:
        check_floor_reachable(floor, path=where, locate=locate)
    return floor


def parse_movingai_map(text: str, *, name: str = "map", path=None) -> Floor:
    """Parse the text of a MovingAI / LoRR ``.map`` file; see :func:`load_movingai_map`."""
    where = path if path is not None else f"<{name}>"
    check_text(text, where)
    lines = split_lines(text)
    h, w, start = parse_map_header(lines, path=where)
    rows = grid_rows(lines, start, h, path=where)
    codes, _ = parse_grid(rows, first_line=start + 1, path=where, table=_TABLE,
                          expected=_EXPECTED, width=w)

    def locate(cell):
        r, c = divmod(int(cell), w)
        return start + 1 + r, c + 1

    return role_floor(codes, name=name, path=path, locate=locate, where=where)


def load_movingai_map(path) -> Floor:
    """Load a MovingAI or LoRR ``.map`` file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Floor
        LoRR ``E`` cells are inducts, ``S`` cells drop cells grouped into chutes (see the module
        docstring); a plain MovingAI map has no stations.

    Raises
    ------
    InputError
        Naming file, line, column and expected form (header, ragged rows, unknown characters,
        too few / many rows, an induct and a chute that cannot reach each other).

    Examples
    --------
    >>> from sorter.resources import shared_path
    >>> p = shared_path("benchmarks", "movingai", "warehouse-10-20-10-2-1.map")
    >>> f = load_movingai_map(p) if p else None
    >>> (f.height, f.width, f.free_cells.size) if f else (63, 161, 5699)
    (63, 161, 5699)
    """
    p = Path(path)
    return parse_movingai_map(read_text(p), name=p.stem, path=p)


@dataclass(eq=False)
class Scenario:
    """A MovingAI scenario: starts and goals of its agents (cell ids ``row * width + col``).

    Attributes
    ----------
    map_name : str
        The map file named on the first agent line.
    width, height : int
    starts, goals : int32 arrays (n_agents,)
    buckets : int32 array (n_agents,)
    optimal_lengths : float64 array (n_agents,) (8-connected octile distances)
    source : str or None
    first_line : int
        The file line (1-based) of agent 0; agent ``i`` is on line ``first_line + i``.
    """

    map_name: str
    width: int
    height: int
    starts: np.ndarray
    goals: np.ndarray
    buckets: np.ndarray
    optimal_lengths: np.ndarray
    source: str | None = None
    first_line: int = 1

    def __len__(self):
        return int(self.starts.size)


def load_scen(path, floor: Floor | None = None) -> Scenario:
    """Load a MovingAI ``.scen`` file (with or without its ``version`` line).

    Parameters
    ----------
    path : str or Path
    floor : Floor, optional
        When given, the scenario's width and height must match it and every start and goal
        must be a free cell of it.

    Returns
    -------
    Scenario

    Raises
    ------
    InputError
        Naming file, line and field (a header other than ``version 1`` / ``version 1.0``,
        wrong number of fields, non-integer coordinates, a cell
        off the map or on an obstacle, sizes that disagree between lines or with ``floor``).

    Examples
    --------
    >>> from sorter.resources import shared_path
    >>> p = shared_path("benchmarks", "movingai", "scen-even", "warehouse-10-20-10-2-1-even-1.scen")
    >>> len(load_scen(p)) if p else 450
    450
    """
    if floor is not None and not isinstance(floor, Floor):
        raise TypeError(f"floor must be a sorter.layout.Floor or None, not {type(floor).__name__}")
    p = Path(path)
    lines = split_lines(read_text(p))
    first = 0
    if lines and lines[0].split() and lines[0].split()[0] == "version":
        parts = lines[0].split()
        if len(parts) != 2 or parts[1] not in _SCEN_VERSIONS:
            fail(f"header line {lines[0]!r}", path=p, line=1, field="version",
                 expected="'version 1' or 'version 1.0', the MovingAI scenario header")
        first = 1
    recs = []
    names = ("bucket", "map", "map_width", "map_height", "start_x", "start_y", "goal_x", "goal_y",
             "optimal_length")
    for i in range(first, len(lines)):
        ln = lines[i]
        if not ln.strip():
            fail("blank line", path=p, line=i + 1, expected="one agent per line")
        parts = ln.split("\t")
        if len(parts) != 9:
            parts = ln.split()
        if len(parts) != 9:
            fail(f"line has {len(parts)} fields", path=p, line=i + 1,
                 expected="9 tab-separated fields: " + " ".join(names))
        vals = []
        for k in (0, 2, 3, 4, 5, 6, 7):
            try:
                v = plain_int(parts[k])
            except ValueError:
                fail(f"{parts[k]!r} is not an integer", path=p, line=i + 1, field=names[k],
                     expected="an integer")
            if not -(2 ** 31) < v < 2 ** 31:
                fail(f"{v} is out of range", path=p, line=i + 1, field=names[k],
                     expected="an integer below 2**31")
            vals.append(v)
        try:
            opt = plain_float(parts[8])
            if not (opt >= 0 and opt != float("inf")):      # nan, inf, negative lengths
                raise ValueError(parts[8])
        except ValueError:
            fail(f"{parts[8]!r} is not a length", path=p, line=i + 1, field="optimal_length",
                 expected="a number >= 0")
        recs.append((vals, parts[1], opt))
    if not recs:
        fail("no agents", path=p, line=len(lines) or 1, expected="at least one agent line")
    arr = np.array([r[0] for r in recs], dtype=np.int64)
    map_name = recs[0][1]
    W, H = int(arr[0, 1]), int(arr[0, 2])
    line_of = np.arange(len(recs)) + first + 1
    if W < 1 or H < 1 or W * H >= 2 ** 31:
        fail(f"map size {W} x {H}", path=p, line=int(line_of[0]), field="map_width",
             expected="positive width and height, width * height < 2**31")
    bad = np.flatnonzero((arr[:, 1] != W) | (arr[:, 2] != H))
    if bad.size:
        fail(f"map size {arr[bad[0], 1]} x {arr[bad[0], 2]} differs from line {line_of[0]}'s "
             f"{W} x {H}", path=p, line=int(line_of[bad[0]]), field="map_width",
             expected="the same map size on every line")
    if floor is not None and (W, H) != (floor.width, floor.height):
        fail(f"map size {W} x {H} (width x height) does not match the floor's "
             f"{floor.width} x {floor.height}", path=p, line=int(line_of[0]), field="map_width",
             expected=f"width {floor.width}, height {floor.height}")
    for kx, ky, fld in ((3, 4, "start"), (5, 6, "goal")):
        x, y = arr[:, kx], arr[:, ky]
        off = np.flatnonzero((x < 0) | (x >= W) | (y < 0) | (y >= H))
        if off.size:
            i = off[0]
            fail(f"{fld} ({x[i]}, {y[i]}) is off the {W} x {H} map", path=p,
                 line=int(line_of[i]), field=f"{fld}_x", expected=f"0 <= x < {W}, 0 <= y < {H}")
        if floor is not None:
            cells = y * W + x
            blocked = np.flatnonzero(floor.cells[cells] == OBSTACLE)
            if blocked.size:
                i = blocked[0]
                fail(f"{fld} ({x[i]}, {y[i]}) is an obstacle cell", path=p, line=int(line_of[i]),
                     field=f"{fld}_x", expected="a free cell")
    starts = (arr[:, 4] * W + arr[:, 3]).astype(np.int32)
    goals = (arr[:, 6] * W + arr[:, 5]).astype(np.int32)
    return Scenario(map_name=map_name, width=W, height=H, starts=starts, goals=goals,
                    buckets=arr[:, 0].astype(np.int32),
                    optimal_lengths=np.array([r[2] for r in recs], dtype=np.float64),
                    source=str(p), first_line=first + 1)

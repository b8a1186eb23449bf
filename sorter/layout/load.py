"""``load_floor(path)``: load any supported floor file, dispatched by extension and content."""
from __future__ import annotations

import os
import re
from pathlib import Path

from sorter.errors import InputError
from sorter.layout._common import fail, read_text
from sorter.layout.floor import Floor

__all__ = ["load_floor", "floor_format", "FLOOR_FORMATS"]

# format name -> one-line description (for --help texts and error messages)
FLOOR_FORMATS = {
    "movingai": "a 'type ...' header (.map): MovingAI grid or LoRR map (E inducts, S drop cells)",
    "lorr": ".json (or text starting '{'): a League of Robot Runners problem (its map is loaded)",
    "rhcr-grid": ".grid (or text starting 'Grid size'): RHCR sorting-centre CSV with directed moves",
    "kiva": "first line 'rows,cols': RHCR kiva map (r homes = inducts, e endpoints = drop cells)",
    "ascii": "anything else: the plain ASCII form (see sorter.layout.ascii)",
}


_ASCII_ONLY = frozenset("#IDC><^vQ")     # cells of the ASCII form that no MovingAI map has
_MOVINGAI_ONLY = frozenset("GOWES")


def _ascii_cells_after_header(text: str) -> bool:
    """True when the rows after a ``map`` header line use the ASCII form's own cell letters
    (``I D C # > < ^ v Q``) and none of MovingAI's (``G O W E S``)."""
    lines = text.splitlines()
    at = next((i for i, ln in enumerate(lines) if ln.strip() == "map"), None)
    if at is None:
        return False
    cells = set("".join(lines[at + 1:]))
    return bool(cells & _ASCII_ONLY) and not cells & _MOVINGAI_ONLY


def floor_format(path) -> str:
    """Which floor format a file holds, as :func:`load_floor` decides it.

    Parameters
    ----------
    path : str or Path
        An existing file.

    Returns
    -------
    str
        A key of :data:`FLOOR_FORMATS`: ``"movingai"``, ``"lorr"``, ``"rhcr-grid"``,
        ``"kiva"`` or ``"ascii"`` (the extension decides, else the content; see
        :func:`load_floor`).

    Raises
    ------
    InputError
        For a MovingAI scenario (``.scen``), a LoRR ``.agents`` / ``.tasks`` file or an empty
        file: they are not floors.

    Examples
    --------
    >>> from sorter.resources import seed_path
    >>> floor_format(seed_path("floors/small_12x20.txt"))
    'ascii'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "lorr"
    if suffix == ".grid":
        return "rhcr-grid"
    if suffix == ".scen":
        fail("this is a MovingAI scenario, not a floor", path=path,
             expected="a floor file (.map, .grid, .json or ASCII); load scenarios with "
                      "sorter.layout.load_scen")
    if suffix in (".agents", ".tasks"):
        fail(f"this is a LoRR {suffix[1:]} file, not a floor", path=path,
             expected="a floor file (.map, .grid, .json or ASCII); pass it as --agents / --tasks "
                      "FILE (sorter mapf) with its map or problem .json as the floor")
    text = read_text(path)
    if not text.strip():
        fail("empty file", path=path, line=1,
             expected="a floor: a MovingAI header 'type octile' / 'height H' / 'width W' / 'map' "
                      "and rows, RHCR kiva 'rows,cols', or rows of ASCII cells")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    # content over a missing or unusual extension (e.g. sorting_map.csv, problem.txt)
    if first.lower().startswith("grid size"):
        return "rhcr-grid"
    if first.startswith("{"):
        return "lorr"
    if [w.lower() for w in first.split()[:1]] == ["type"]:
        # the ASCII form may carry the same header: its own cell letters tell it apart
        # ('Type octile' too goes to the MovingAI reader: its header error beats an ASCII one)
        return "ascii" if _ascii_cells_after_header(text) else "movingai"
    if re.fullmatch(r"\d+\s*,\s*\d+", first):        # no ASCII row starts with a digit
        return "kiva"
    return "ascii"


_sniff = floor_format       # the old private name, kept working for callers that still use it


def load_floor(path) -> Floor:
    """Load a floor from any supported file.

    Parameters
    ----------
    path : str or Path
        ``.json`` (LoRR problem: its map), ``.grid`` (RHCR), ``.map`` (MovingAI / LoRR, or
        RHCR's kiva form when the first line is ``rows,cols``), anything else ASCII. Under
        another extension the content decides: a first line ``Grid size`` is RHCR's grid,
        ``{`` a LoRR problem, ``type ...`` a MovingAI map (the ASCII form when its rows use
        ``I D C # > < ^ v Q`` and none of ``G O W E S``), ``rows,cols`` a kiva map.

    Returns
    -------
    Floor

    Raises
    ------
    InputError
        From the format's loader, naming file, line, column and expected form.

    Examples
    --------
    >>> from sorter.resources import shared_path
    >>> p = shared_path("benchmarks", "rhcr", "sorting_map.grid")
    >>> f = load_floor(p) if p else None
    >>> (f.height, f.width) if f else (37, 77)
    (37, 77)
    """
    if not isinstance(path, (str, os.PathLike)):      # (Path(None): a TypeError naming nothing)
        raise InputError(f"the floor file name is {type(path).__name__}", field="floor",
                         expected="the path of a floor file, a str or pathlib.Path")
    if not str(path).strip():
        raise InputError("the floor file name is empty", field="floor",
                         expected="the path of a .map, .grid, .json or ASCII floor file")
    p = Path(path)
    if not p.exists():
        if p.is_symlink():              # exists() is False for a loop or a dangling link too
            fail("a symbolic link that leads to no file (a loop or a missing target)", path=p,
                 expected="an existing floor file")
        from sorter.resources import seed_hint
        fail("file not found" + seed_hint(p), path=p, expected="an existing floor file")
    kind = floor_format(p)
    if kind == "lorr":
        from sorter.layout.lorr import load_lorr_problem
        return load_lorr_problem(p).floor
    if kind == "rhcr-grid":
        from sorter.layout.rhcr import load_rhcr_grid
        return load_rhcr_grid(p)
    if kind == "kiva":
        from sorter.layout.rhcr import load_kiva_map
        return load_kiva_map(p)
    if kind == "movingai":
        from sorter.layout.movingai import load_movingai_map
        return load_movingai_map(p)
    from sorter.layout.ascii import load_ascii
    return load_ascii(p)

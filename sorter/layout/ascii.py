"""The plain ASCII floor form, for tests and hand-made floors.

One character per cell, one line per row::

    .   travel cell
    @ # T   obstacle
    I   induct cell (each ``I`` cell is one induct station, numbered in row-major order)
    D   drop cell (a robot stands here to tip its parcel into the chute beside it)
    C   chute body (an obstacle); each 4-connected block of ``C`` cells is one chute, numbered
        in row-major order of its first cell; its station is every ``D`` cell touching it
        (a ``D`` touching two blocks serves both chutes)
    > < ^ v   one-way travel cell: the two moves along the arrow's axis that touch it are
              one-way in the arrow's direction. A robot on a ``>`` cell may move east (on),
              north or south (turning off), never west; no robot may enter it moving west.
              So a row of ``>`` cells is a one-way street, entered and left from the sides.
    Q   induct queue cell: a line of ``Q`` cells (no branches) with one end beside an ``I``
        cell is that induct's queue (``Station.queue``). Robots enter it at the far end (the
        tail), move up one way toward the induct or wait, and reach the induct only through
        it; they leave the induct by any other side.

An optional MovingAI-style header may come first: ``type ...``, ``height H``, ``width W``
lines, then ``map``; when given, H and W must agree with the rows. Leading and trailing
blank lines, a common indentation, trailing blanks and CRLF line ends are ignored (so a
triple-quoted string works).

Rules checked, each error naming line and column: rows of equal length, known characters,
header agreeing with the rows, every chute block has a drop cell, every drop cell touches a
chute block, and every induct and chute mutually reachable.
"""
from __future__ import annotations

import numpy as np

from sorter.errors import InputError
from sorter.layout._common import (MAX_FLOOR_CELLS, check_floor_reachable, check_floor_size,
                                    check_text, fail, plain_int, read_text)
from sorter.layout._grid import DC, DR, char_codes, group_by_block
from sorter.layout.floor import DROP, INDUCT, OBSTACLE, TRAVEL, Floor, Station

__all__ = ["parse_ascii", "load_ascii", "format_ascii", "ASCII_CHARS"]

ASCII_CHARS = ".@#TIDC><^vQ"
_ARROWS = {">": 0, "v": 1, "<": 2, "^": 3}          # direction codes: east, south, west, north
_ARROW_OF_DIR = {d: ch for ch, d in _ARROWS.items()}
_EXPECTED = "one of . @ # T I D C > < ^ v Q"


_CODE = char_codes(travel=".><^vQ", obstacle="@#TC", induct="I", drop="D")


def _split_header(lines, path, offset):
    """Return (index of first grid line, height or None, width or None)."""
    i = 0
    h = w = None
    first = lines[0].split() if lines else []
    if not first or first[0] not in ("type", "height", "width"):
        return 0, None, None
    while i < len(lines):
        parts = lines[i].split()
        key = parts[0] if parts else ""
        if key == "map" and len(parts) == 1:
            return i + 1, h, w
        if key == "type" and len(parts) >= 2:
            pass
        elif key in ("height", "width") and len(parts) == 2:
            try:
                v = plain_int(parts[1])
            except ValueError:
                v = -1
            if v < 1:
                fail(f"{key} {parts[1]!r} is not a positive integer", path=path, line=offset + i + 1,
                     field=key, expected=f"'{key} N' with N >= 1")
            if key == "height":
                h = v
            else:
                w = v
        else:
            fail(f"header line {lines[i]!r} is not understood", path=path, line=offset + i + 1,
                 expected="'type NAME', 'height H', 'width W' or 'map'")
        i += 1
    fail("header has no 'map' line", path=path, line=offset + len(lines), expected="'map' before the rows")


def _check_line_count(text, where):
    """Refuse a text with more rows than a floor may have cells before splitting it.

    Every grid row holds at least one cell, so a text of more than ``MAX_FLOOR_CELLS`` lines
    (not counting blank lines around it and a few header lines) is too large; splitting and
    scanning millions of lines first took seconds before the size check could say so.
    """
    if text.count("\n") <= MAX_FLOOR_CELLS + _MAX_HEADER_LINES:
        return
    n = text.strip().count("\n") + 1
    if n > MAX_FLOOR_CELLS + _MAX_HEADER_LINES:
        fail(f"{n:,} lines of rows (at least one cell each)", path=where, line=1, field="height",
             expected=f"at most {MAX_FLOOR_CELLS:,} cells, e.g. 2000 x 2000")


#: Header lines ('type', 'height', 'width', 'map') a floor file may reasonably hold; only
#: used to bound the row count before the text is split.
_MAX_HEADER_LINES = 16


def parse_ascii(text: str, name: str = "ascii", path=None) -> Floor:
    """Parse the ASCII floor form into a :class:`Floor`.

    Parameters
    ----------
    text : str
        The floor (see the module docstring for the characters).
    name : str
        The floor's name; also used in error messages when ``path`` is None.
    path : str or Path, optional
        The file the text came from (named in errors and kept as ``Floor.source``).

    Returns
    -------
    Floor

    Raises
    ------
    InputError
        Naming the line and column of the first problem.

    Examples
    --------
    >>> f = parse_ascii("I.>..\\n....D\\n...CC")
    >>> len(f.chutes), f.chutes[0].cells.tolist(), f.is_directed
    (1, [9], True)
    """
    where = path if path is not None else f"<{name}>"
    check_text(text, where)
    if "\r" in text:                                 # CRLF or old-Mac CR line ends
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    _check_line_count(text, where)
    # trailing blanks are not cells (a space is no cell character)
    raw = [ln.rstrip(" \t") for ln in text.split("\n")]
    # ignore leading / trailing blank lines, keep the original line numbers
    lo = 0
    while lo < len(raw) and not raw[lo].strip():
        lo += 1
    hi = len(raw)
    while hi > lo and not raw[hi - 1].strip():
        hi -= 1
    body = raw[lo:hi]
    if not body:
        fail("no rows", path=where, line=1, expected="at least one line of cells")
    indent = min(len(ln) - len(ln.lstrip(" ")) for ln in body if ln.strip())
    body = [ln[indent:] for ln in body]
    start, h_hdr, w_hdr = _split_header(body, where, lo)
    rows = body[start:]
    first_line = lo + start + 1            # file line of grid row 0
    if not rows:
        fail("no rows after the header", path=where, line=lo + start, expected="rows of cells")
    width = len(rows[0])
    if width == 0:
        fail("empty row", path=where, line=first_line, column=1, expected="at least one cell")
    check_floor_size(len(rows), width, path=where, line=first_line, field="height")
    stray = set("".join(rows)) - set(ASCII_CHARS)
    if stray:
        # named before the row lengths: a stray character (often an invisible one, such as a
        # no-break space or a tab pasted from a document) also makes its row look ragged, and
        # the ragged-row error then named the next row, not the one holding it
        for r, ln in enumerate(rows):
            for c, ch in enumerate(ln):
                if ch in stray:
                    fail(f"unknown character {ch!r}", path=where, line=first_line + r,
                         column=c + 1, expected=_EXPECTED)
    for r, ln in enumerate(rows):
        if len(ln) != width:
            fail(f"row has {len(ln)} cells but the first row has {width}", path=where,
                 line=first_line + r, column=min(len(ln), width) + 1,
                 expected=f"{width} characters per row (rows of equal length)")
    if h_hdr is not None and h_hdr != len(rows):
        fail(f"header says height {h_hdr} but there are {len(rows)} rows", path=where,
             line=first_line + min(h_hdr, len(rows)) - (0 if h_hdr < len(rows) else 1),
             field="height", expected=f"height {len(rows)}")
    if w_hdr is not None and w_hdr != width:
        fail(f"header says width {w_hdr} but rows have {width} cells", path=where,
             line=first_line, column=min(w_hdr, width) + 1, field="width",
             expected=f"width {width}")
    try:
        chars = np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        chars = None
    if chars is None or chars.size != len(rows) * width:
        for r, ln in enumerate(rows):
            for c, ch in enumerate(ln):
                if ch not in ASCII_CHARS:
                    fail(f"unknown character {ch!r}", path=where, line=first_line + r,
                         column=c + 1, expected=_EXPECTED)
    grid = _CODE[chars].reshape(len(rows), width)
    if (grid < 0).any():
        r, c = (int(v) for v in np.argwhere(grid < 0)[0])
        fail(f"unknown character {rows[r][c]!r}", path=where, line=first_line + r, column=c + 1,
             expected=_EXPECTED)
    chars2 = chars.reshape(len(rows), width)
    return _build(grid, chars2, name=name, path=path, where=where, first_line=first_line)


def _locator(first_line, width):
    def locate(cell):
        r, c = divmod(int(cell), width)
        return first_line + r, c + 1
    return locate


def _build(grid, chars2, *, name, path, where, first_line):
    h, w = grid.shape
    locate = _locator(first_line, w)
    body = chars2 == ord("C")
    drop = grid == DROP
    groups, labels, orphans = group_by_block(body, drop)
    if orphans.size:
        line, col = locate(orphans[0])
        fail("drop cell 'D' touches no chute block 'C'", path=where, line=line, column=col,
             expected="each D beside (north/south/east/west of) a C cell")
    n_blocks = int(labels.max()) + 1 if body.any() else 0
    touched = np.zeros(max(n_blocks, 1), dtype=bool)
    for b, _ in groups:
        touched[b] = True
    if n_blocks and not touched[:n_blocks].all():
        b = int(np.flatnonzero(~touched[:n_blocks])[0])
        line, col = locate(np.flatnonzero(labels == b)[0])
        fail("chute block 'C' has no drop cell 'D' beside it (a station with no free access cell)",
             path=where, line=line, column=col, expected="at least one D next to each C block")
    chutes = [Station(k, f"C{k}", "chute", cells) for k, (_, cells) in enumerate(groups)]
    chute_body = labels.copy()                # blocks are numbered as their chutes
    induct_cells = np.flatnonzero(grid.ravel() == INDUCT)
    queues = _queues(chars2.ravel() == ord("Q"), grid, locate, where)
    inducts = [Station(k, f"I{k}", "induct", [c], queue=queues.get(int(c)))
               for k, c in enumerate(induct_cells)]
    # one-way cells
    moves = None
    flat = chars2.ravel()
    arrow_cells = [(np.flatnonzero(flat == ord(ch)), d) for ch, d in _ARROWS.items()]
    if any(cells.size for cells, _ in arrow_cells):
        from sorter.layout._grid import grid_moves
        moves = grid_moves(grid != OBSTACLE)
        for cells, d in arrow_cells:
            if not cells.size:
                continue
            back = (d + 2) % 4
            moves[cells, back] = -1                      # no leaving against the arrow
            r, c = np.divmod(cells, w)
            r2, c2 = r + DR[d], c + DC[d]
            inside = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
            tgt = (r2 * w + c2)[inside]
            src = cells[inside]
            hit = moves[tgt, back] == src
            moves[tgt[hit], back] = -1                   # no entering against the arrow
        for ind, order in queues.items():
            # arrows may lead every free neighbour of a queue's tail away from it
            tail = order[0]
            r, c = divmod(tail, w)
            nbs = [x for x, ok in ((tail + 1, c + 1 < w), (tail + w, r + 1 < h),
                                   (tail - 1, c > 0), (tail - w, r > 0)) if ok]
            if not any(tail in moves[x].tolist() for x in nbs
                       if flat[x] != ord("Q") and x != ind):
                line, col = locate(tail)
                fail("no robot can enter the queue's tail (the arrows beside it lead away)",
                     path=where, line=line, column=col, field="Q",
                     expected="a free cell beside the far end of each Q line with a move into it")
    floor = Floor(grid, moves=moves, inducts=inducts, chutes=chutes, name=name,
                  source=None if path is None else str(path), chute_body=chute_body, check=False)
    check_floor_reachable(floor, path=where, locate=locate)
    return floor


def _queues(qmask, grid, locate, where):
    """The ``Q`` lines: {induct cell: queue cells from the tail to the head}."""
    h, w = grid.shape
    flat = grid.ravel()
    cells = np.flatnonzero(qmask)
    if not cells.size:
        return {}

    def nbs(c):
        r, col = divmod(int(c), w)
        return [c2 for c2, ok in ((c + 1, col + 1 < w), (c + w, r + 1 < h), (c - 1, col > 0),
                                  (c - w, r > 0)) if ok]

    def bad(c, msg, expected):
        line, col = locate(c)
        fail(msg, path=where, line=line, column=col, field="Q", expected=expected)

    qn = {int(c): [x for x in nbs(c) if qmask[x]] for c in cells}
    for c, q in qn.items():
        if len(q) > 2:
            bad(c, f"queue cell 'Q' has {len(q)} queue neighbours", "a line of Q cells, no branches")
    out = {}
    seen = set()
    for c0 in cells.tolist():
        if c0 in seen:
            continue
        comp, stack = [], [c0]
        seen.add(c0)
        while stack:
            c = stack.pop()
            comp.append(c)
            for x in qn[c]:
                if x not in seen:
                    seen.add(x)
                    stack.append(x)
        ends = [c for c in comp if len(qn[c]) <= 1]
        if not ends:
            bad(min(comp), "queue cells 'Q' form a loop", "a line of Q cells with two ends")
        touch = {c: [x for x in nbs(c) if flat[x] == INDUCT] for c in comp}
        for c in comp:
            if touch[c] and c not in ends:
                bad(c, "an induct 'I' is beside the middle of a queue", "an I beside an end of a Q line")
        heads = [c for c in ends if touch[c]]
        if not heads:
            bad(min(comp), "queue cells 'Q' lead to no induct", "one end of each Q line beside an I")
        if len(heads) > 1 or len(touch[heads[0]]) > 1:
            bad(heads[-1] if len(heads) > 1 else heads[0], "a queue leads to two inducts",
                "one end of each Q line beside exactly one I")
        head = heads[0]
        tail = [c for c in ends if c != head]
        tail = tail[0] if tail else head
        order, prev = [tail], -1
        while order[-1] != head:
            nxt = [x for x in qn[order[-1]] if x != prev][0]
            prev = order[-1]
            order.append(nxt)
        ind = touch[head][0]
        if ind in out:
            bad(head, "an induct 'I' has two queues", "at most one Q line per induct")
        if not any(flat[x] != 0 and not qmask[x] and x != ind for x in nbs(tail)):
            bad(tail, "queue tail has no free cell beside it to enter from",
                "a free cell beside the far end of each Q line")
        out[ind] = order
    return out


def load_ascii(path) -> Floor:
    """Load an ASCII floor file (see the module docstring).

    Raises
    ------
    InputError
        Naming file, line and column.
    """
    from pathlib import Path
    p = Path(path)
    return parse_ascii(read_text(p), name=p.stem, path=p)


def _assign_arrows(floor: Floor, full) -> np.ndarray:
    """An arrow direction per cell (-1 none) that forbids exactly the floor's missing moves.

    Forced choices first (a move only one cell can carry), then a free choice is tried in turn
    with backtracking (depth-first; each branch copies the assignment; at most 20,000 search
    nodes), so an expressible floor finds its arrows. Raises ``ValueError`` naming the first
    move no arrow can forbid.
    """
    m = floor.moves
    travel = floor.cells == TRAVEL

    def allowed(arrow, c, e):
        if not travel[c] or arrow[c] not in (-1, e):
            return False
        back = (e + 2) % 4
        if full[c, back] >= 0 and m[c, back] >= 0:
            return False
        t = full[c, e]
        return t < 0 or m[t, back] != c

    def propagate(arrow, pending):
        """Apply forced choices; returns the open moves, or the first impossible one."""
        while True:
            left, progress = [], False
            for x, d in pending:
                e = (d + 2) % 4
                y = int(full[x, d])
                if arrow[x] == e or arrow[y] == e:
                    continue
                cands = [c for c in (x, y) if allowed(arrow, c, e)]
                if not cands:
                    return None, (x, d)
                if len(cands) == 1:
                    arrow[cands[0]] = e
                    progress = True
                else:
                    left.append((x, d))
            pending = left
            if not progress or not pending:
                return pending, None

    pending = [(int(x), int(d)) for x, d in np.argwhere((full >= 0) & (m < 0))]
    stack = [(np.full(floor.n_cells, -1, dtype=np.int64), pending)]
    first_bad = None
    budget = 20_000                     # search nodes: a floor this needs more of is refused
    while stack and budget:
        budget -= 1
        arrow, pending = stack.pop()
        pending, bad = propagate(arrow, pending)
        if pending is None:
            first_bad = first_bad or bad
            continue
        if not pending:
            return arrow
        x, d = pending[0]
        e = (d + 2) % 4
        for c in reversed([c for c in (x, int(full[x, d])) if allowed(arrow, c, e)]):
            a = arrow.copy()
            a[c] = e
            stack.append((a, pending[1:]))
    if first_bad is None:
        raise ValueError("the floor's one-way moves need too long a search to write as arrows")
    x, d = first_bad
    r, col = floor.rc(x)
    raise ValueError(f"the forbidden move {('east', 'south', 'west', 'north')[d]} "
                     f"from cell (row {r}, col {col}) is not expressible with arrows")


def format_ascii(floor: Floor) -> str:
    """The ASCII form of a floor (one line per row, newline-terminated).

    Raises
    ------
    ValueError
        If the floor's one-way moves or stations cannot be written in the ASCII form
        (then ``parse_ascii(format_ascii(f))`` would not give ``f`` back).
    TypeError
        If ``floor`` is not a :class:`~sorter.layout.Floor`.
    """
    from sorter.layout._grid import grid_moves
    if not isinstance(floor, Floor):
        raise TypeError(f"floor must be a sorter.layout.Floor, not {type(floor).__name__}")
    h, w = floor.height, floor.width
    out = np.full(floor.n_cells, ord("."), dtype=np.uint8)
    out[floor.cells == OBSTACLE] = ord("@")
    out[(floor.cells == OBSTACLE) & (floor.chute_body >= 0)] = ord("C")
    out[floor.cells == INDUCT] = ord("I")
    out[floor.cells == DROP] = ord("D")
    full = grid_moves((floor.cells != OBSTACLE).reshape(h, w))
    if any(st.queue.size for st in floor.inducts):
        for st in floor.inducts:
            out[st.queue] = ord("Q")
        # the queues' one-way moves come with their Q cells: arrows write the rest
        full = Floor(floor.cells.reshape(h, w), moves=full, inducts=floor.inducts,
                     check=False).moves
    # Each arrow e on a cell c forbids two moves, both in direction back(e): c's own exit
    # back(e) and the entry into c from its downstream neighbour. So a forbidden move (x, d)
    # between free neighbours x -> y needs an arrow opp(d) on x or on y, one arrow per cell.
    arrow = _assign_arrows(floor, full)
    for c in np.flatnonzero(arrow >= 0):
        out[c] = ord(_ARROW_OF_DIR[int(arrow[c])])
    text = "\n".join(out.reshape(h, w).tobytes().decode("ascii")[i * w:(i + 1) * w]
                     for i in range(h)) + "\n"
    try:
        back = parse_ascii(text, name=floor.name)
    except InputError as e:      # e.g. Python queues side by side read back as one Q line
        raise ValueError(f"the floor cannot be written in the ASCII form: its text reads back "
                         f"as an error ({e})") from None
    if not np.array_equal(back.moves, floor.moves):
        bad = np.argwhere(back.moves != floor.moves)[0]
        r, col = floor.rc(int(bad[0]))
        raise ValueError(f"the floor's one-way moves cannot be written in the ASCII form "
                         f"(first difference at cell row {r}, col {col})")
    for kind, mine, read in (("chute", floor.chutes, back.chutes),
                             ("induct", floor.inducts, back.inducts)):
        for i in range(max(len(mine), len(read))):
            a = mine[i] if i < len(mine) else None
            b = read[i] if i < len(read) else None
            same = (a is not None and b is not None and a.cells.tolist() == b.cells.tolist()
                    and (kind == "chute" or a.queue.tolist() == b.queue.tolist()))
            if not same:
                # the ASCII form groups a station's cells by adjacency: stations that touch
                # (or a station split in parts) read back as other stations
                where = (f"{kind} {a.label!r} (cells {a.cells.tolist()[:6]})" if a is not None
                         else f"{kind} #{i + 1}")
                raise ValueError(f"the floor's stations cannot be written in the ASCII form: "
                                 f"{where} reads back as "
                                 + (f"cells {b.cells.tolist()[:6]}" if b is not None else
                                    "no station")
                                 + f" ({len(mine)} {kind}s written, {len(read)} read back; "
                                   "stations that touch read back as one)")
    return text

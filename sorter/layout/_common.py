"""Small helpers shared by the floor loaders: reading text, located errors, station checks."""
from __future__ import annotations

from pathlib import Path

from sorter.errors import InputError, plain_int

__all__ = ["read_text", "fail", "check_floor_reachable", "parse_grid", "parse_int_lines",
           "parse_map_header", "split_lines", "grid_rows", "check_text", "MAX_FLOOR_CELLS",
           "check_floor_size", "plain_int"]


def read_text(path) -> str:
    """Read a text file; a missing, non-regular or undecodable file is an :class:`InputError`.

    A leading UTF-8 byte-order mark (as some Windows editors write) is dropped. Directories,
    named pipes and devices are refused before reading (reading a pipe with no writer would
    block forever).
    """
    import os
    import stat

    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        from sorter.resources import seed_hint
        raise InputError("file not found" + seed_hint(p), path=p,
                         expected="an existing file") from None
    except (OSError, ValueError) as e:          # ValueError: an embedded NUL byte
        raise InputError(f"cannot read file: {getattr(e, 'strerror', None) or e}", path=p,
                         expected="a readable file") from None
    if not stat.S_ISREG(st.st_mode):
        what = ("a directory" if stat.S_ISDIR(st.st_mode) else
                "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else
                "a device or socket")
        raise InputError(f"is {what}, not a file", path=p, expected="a regular text file")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path=p, expected="an existing file") from None
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror}", path=p, expected="a readable file") from None
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        at = e.start + bom
        line = data[:at].count(b"\n") + 1
        raise InputError(f"byte {at} is not UTF-8 text", path=p, line=line,
                         expected="a UTF-8 (ASCII) text file") from None


def check_text(text, where):
    """``text`` must be a ``str`` (the parsers' input): bytes, a list of lines or None would
    otherwise fail deep inside the parser with an AttributeError or a misleading TypeError."""
    if not isinstance(text, str):
        raise InputError(f"the floor text is {type(text).__name__}, not str", path=where,
                         field="text", expected="the file's text as one str (decode bytes, join "
                                                "lines with newlines, or use load_floor(path))")


def fail(message, *, path=None, line=None, column=None, field=None, expected=None):
    """Raise an InputError naming file, line and (1-based) column."""
    if column is not None:
        message = f"column {column}: {message}"
    raise InputError(message, path=path, line=line, field=field, expected=expected)


# Cells per floor. Loading a floor and its first distance table costs ~450 bytes a cell
# (2000 x 2000: 1.8 GB resident and 16 s; 4000 x 4000 went past 5.4 GB before its first
# step). The largest real floors have ~0.1 M cells (RHCR sorting_map, LoRR warehouse_large),
# MovingAI's biggest maps ~1 M; a typo such as 20,000 x 20,000 would otherwise allocate for
# minutes and die out of memory with a traceback.
MAX_FLOOR_CELLS = 4_000_000


def check_floor_size(height, width, *, path=None, line=None, field=None):
    """Raise an InputError if a ``height x width`` floor has more than :data:`MAX_FLOOR_CELLS`
    cells (checked from the header or the text, before any per-cell array exists)."""
    if height * width > MAX_FLOOR_CELLS:
        fail(f"{height:,} rows x {width:,} columns = {height * width:,} cells", path=path,
             line=line, field=field,
             expected=f"at most {MAX_FLOOR_CELLS:,} cells, e.g. 2000 x 2000 (about 450 bytes "
                      "of memory per cell; real floors have ~0.1 M)")


def check_floor_reachable(floor, *, path, locate):
    """Raise an InputError if some induct and chute cannot reach each other.

    ``locate(cell) -> (line, column)`` maps a cell to its place in the file.
    """
    problem = floor.reachability_problem()
    if problem is not None:
        msg, cell = problem
        line, column = locate(cell)
        r, c = floor.rc(cell)
        fail(f"{msg} (cell row {r}, col {c})", path=path, line=line, column=column,
             expected="every induct and every chute mutually reachable")


def parse_grid(rows, *, first_line, path, table, expected, width=None):
    """Turn text rows into a 2-D array of codes via a 256-entry lookup ``table`` (-1 = unknown).

    Checks equal row lengths (``width`` if given, else the first row's) and known characters;
    errors name the file line and 1-based column. Returns ``(codes, chars)`` as 2-D arrays.
    """
    import numpy as np

    if not rows:
        fail("no rows", path=path, line=first_line, expected="rows of cells")
    w = len(rows[0]) if width is None else width
    if width is not None:
        # trailing blanks after the header's width (an editor's trailing spaces) are not cells
        rows = [ln[:w] if len(ln) > w and not ln[w:].strip() else ln for ln in rows]
    for r, ln in enumerate(rows):
        if len(ln) != w:
            what = "the header's width" if width is not None else "the first row"
            fail(f"row has {len(ln)} cells but {what} says {w}", path=path, line=first_line + r,
                 column=min(len(ln), w) + 1, expected=f"{w} characters per row")
    try:
        chars = np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        for r, ln in enumerate(rows):
            for c, ch in enumerate(ln):
                if ord(ch) > 127:
                    fail(f"unknown character {ch!r}", path=path, line=first_line + r, column=c + 1,
                         expected=expected)
        raise  # pragma: no cover
    chars = chars.reshape(len(rows), w)
    codes = table[chars]
    if (codes < 0).any():
        r, c = (int(v) for v in np.argwhere(codes < 0)[0])
        fail(f"unknown character {chr(chars[r, c])!r}", path=path, line=first_line + r,
             column=c + 1, expected=expected)
    return codes, chars


def parse_int_lines(lines, *, first_line, path, field, lo=None, hi=None, expected="an integer"):
    """Parse one integer per line, vectorised; errors name the first bad line.

    ``lo``/``hi``: inclusive lower / exclusive upper bounds.
    """
    import numpy as np

    try:
        joined = "".join(lines)
        if "_" in joined or not joined.isascii():   # int() reads "1_2" as 12 and "\u0661"
            raise ValueError                          # (Arabic-Indic 1) as 1: no file's numbers
        vals = np.asarray(lines, dtype=np.str_).astype(np.int64)      # fast path
    except (ValueError, OverflowError, TypeError):
        out = []
        for i, s in enumerate(lines):
            try:
                v = plain_int(s)
            except ValueError:
                fail(f"{s.strip()!r} is not an integer", path=path, line=first_line + i,
                     field=field, expected=expected)
            if not -(2 ** 62) < v < 2 ** 62:
                fail(f"{v} is out of range", path=path, line=first_line + i, field=field,
                     expected=expected)
            out.append(v)
        vals = np.array(out, dtype=np.int64)
    bad = np.zeros(vals.size, dtype=bool)
    if lo is not None:
        bad |= vals < lo
    if hi is not None:
        bad |= vals >= hi
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        fail(f"{int(vals[i])} is out of range", path=path, line=first_line + i, field=field,
             expected=expected)
    return vals


def parse_map_header(lines, *, path):
    """Parse the MovingAI header: ``type NAME``, ``height H``, ``width W``, ``map``.

    Returns ``(height, width, index of the first grid line)``.
    """
    want = ("type", "height", "width", "map")
    got = {}
    for i, key in enumerate(want):
        if i >= len(lines):
            fail("file ends inside the header", path=path, line=i + 1,
                 expected="'type octile', 'height H', 'width W', 'map' on lines 1-4")
        parts = lines[i].split()
        if not parts or parts[0] != key or (key == "map" and len(parts) != 1) \
                or (key != "map" and len(parts) != 2):
            form = {"type": "'type octile'", "height": "'height H'", "width": "'width W'",
                    "map": "'map'"}[key]
            fail(f"header line {lines[i]!r}", path=path, line=i + 1, field=key, expected=form)
        if key in ("height", "width"):
            try:
                v = plain_int(parts[1])
            except ValueError:
                v = 0
            if v < 1:
                fail(f"{key} {parts[1]!r} is not a positive integer", path=path, line=i + 1,
                     field=key, expected="an integer >= 1")
            got[key] = v
    check_floor_size(got["height"], got["width"], path=path, line=2, field="height")
    return got["height"], got["width"], 4


def split_lines(text):
    """Lines of a text without line-end characters (LF, CRLF or CR); trailing blank lines dropped."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def grid_rows(lines, start, height, *, path):
    """The ``height`` grid rows from line index ``start``; missing or extra rows are errors.

    ``lines`` comes from :func:`split_lines` (no trailing blank lines).
    """
    rows = lines[start:start + height]
    blank = [i for i, ln in enumerate(rows) if not ln.strip()]
    if blank:
        fail("blank line inside the grid", path=path, line=start + blank[0] + 1, field="height",
             expected=f"{height} rows of cells with no blank lines between them")
    if len(rows) < height:
        fail(f"header says height {height} but the file has {len(rows)} rows", path=path,
             line=max(start + len(rows), 1), field="height", expected=f"{height} rows of cells")
    extra = [i for i, ln in enumerate(lines[start + height:]) if ln.strip()]
    if extra:
        fail(f"header says height {height} but there are more rows", path=path,
             line=start + height + extra[0] + 1, field="height",
             expected=f"exactly {height} rows of cells")
    return rows

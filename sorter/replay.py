"""Replay a scan/chute event stream (CSV) through a :class:`~sorter.Sorter`.

Header: ``t,event,parcel,destination,recirculation,sortable,chute,plan``. Events:
``scan`` (an empty ``destination`` is a no-read; ``sortable`` 1 or 0, empty = 1;
``recirculation`` empty = 0), ``discharged`` (one item into ``chute``), ``full``,
``open`` (reopen without emptying), ``blocked``, ``disabled``, ``container_change``
(chute states), ``container_changed`` (container swapped: empty and reopen),
``switch_plan`` (``plan`` = the new plan CSV, relative to the events file).
Rows are applied in file order.
"""
from __future__ import annotations

import csv
import math
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from sorter.constants import REASONS
from sorter.errors import InputError, plain_float

__all__ = ["EVENT_COLUMNS", "EVENTS", "ReplayResult", "replay_events", "MAX_LINE_CHARS",
           "MAX_SKIPPED_KEPT"]

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("t", "event", "parcel", "destination", "recirculation", "sortable", "chute", "plan")
_STATE_EVENTS = {"full": "full", "open": "open", "blocked": "blocked", "disabled": "disabled",
                 "container_change": "container_change"}
EVENTS = ("scan", "discharged", *_STATE_EVENTS, "container_changed", "switch_plan")
_BAD_BYTES = re.compile("[\udc80-\udcff]")      # bytes not UTF-8, as surrogateescape keeps them
# An events row is ~50 characters; a "line" of megabytes is a binary or sparse file (a 200 GB
# file of NULs was read whole as one line: 6 GB, then MemoryError): refused at this length.
MAX_LINE_CHARS = 1 << 20
# A skip run keeps (and logs) the first rows skipped, then only counts: a file of 10^8 bad
# rows kept every message (~250 bytes each, 25 GB).
MAX_SKIPPED_KEPT = 10_000


@dataclass
class ReplayResult:
    """What a replay did: decisions written, counts by reason, rows skipped."""

    decisions: int = 0
    by_reason: dict = field(default_factory=lambda: {r: 0 for r in REASONS})
    skipped: list = field(default_factory=list)     # (line, message), the first MAX_SKIPPED_KEPT
    events: int = 0
    n_skipped: int = 0                              # every row skipped, kept or not

    def _skip(self, line, message) -> None:
        self.n_skipped += 1
        if len(self.skipped) < MAX_SKIPPED_KEPT:
            self.skipped.append((line, message))
            log.warning("skipped %s", message)
            if len(self.skipped) == MAX_SKIPPED_KEPT:
                log.warning("skipped %s rows: further bad rows are counted, not listed",
                            f"{MAX_SKIPPED_KEPT:,}")


def _bounded_lines(fh, path):
    """The lines of ``fh``, each read at most :data:`MAX_LINE_CHARS` at a time: a longer one
    is an :class:`InputError` naming its line, before it is held whole."""
    n = 0
    while True:
        ln = fh.readline(MAX_LINE_CHARS + 1)
        if not ln:
            return
        n += 1
        if len(ln) > MAX_LINE_CHARS:
            raise InputError(f"line longer than {MAX_LINE_CHARS:,} characters (a binary or "
                             "sparse file?)", path=path, line=n,
                             expected="a CSV of event rows (an events row is under 200 "
                                      "characters)")
        yield ln


def _parse_row(row, line, path, base):
    """Validate one row; returns (event, fields) or raises InputError naming the line."""
    ev = row["event"].strip()
    if ev not in EVENTS:
        raise InputError(f"unknown event {ev!r}", path=path, line=line, field="event",
                         expected=" | ".join(EVENTS))
    t = row["t"].strip()
    if t:
        try:
            # plain ASCII and finite: float() also reads "nan", "inf", "1_0" and other
            # scripts' digits
            if not math.isfinite(plain_float(t)):
                raise ValueError(t)
        except ValueError:
            raise InputError(f"bad time {t!r}", path=path, line=line, field="t",
                             expected="a finite number of seconds") from None
    if ev == "scan":
        parcel = row["parcel"].strip()
        if not parcel:
            raise InputError("scan without a parcel id", path=path, line=line, field="parcel",
                             expected="a parcel id")
        rc = row["recirculation"].strip()
        if rc == "":
            rc = 0
        else:
            # plain ASCII digits, as a telegram writes the count: int() also reads "1_0" as
            # 10 and other scripts' digits ("٣" as 3)
            # (a count of thousands of digits, past Python's int() limit, reads as over any
            # limit, as 99999999999 does: was a bare ValueError that stopped even a skip run)
            digits = rc.lstrip("0") if rc.isascii() and rc.isdigit() else None
            rc = -1 if digits is None else int(digits or 0) if len(digits) <= 10 else 1 << 30
            if rc < 0:
                raise InputError(f"bad recirculation {row['recirculation']!r}", path=path,
                                 line=line, field="recirculation",
                                 expected="an integer >= 0 (empty = 0)")
        so = row["sortable"].strip()
        if so not in ("", "0", "1"):
            raise InputError(f"bad sortable {so!r}", path=path, line=line, field="sortable",
                             expected="1 or 0 (empty = 1)")
        dest = row["destination"].strip()
        return ev, (parcel, dest if dest else None, rc, so != "0")
    if ev == "switch_plan":
        plan = row["plan"].strip()
        if not plan:
            raise InputError("switch_plan without a plan file", path=path, line=line,
                             field="plan", expected="a plan CSV path relative to the events file")
        return ev, (base / plan,)
    chute = row["chute"].strip()
    if not chute:
        raise InputError(f"{ev} without a chute", path=path, line=line, field="chute",
                         expected="a chute id")
    return ev, (chute,)


def replay_events(sorter, events_csv, *, on_error="fail", write=None) -> ReplayResult:
    """Apply every row of ``events_csv`` to ``sorter`` in order.

    Parameters
    ----------
    sorter : Sorter
    events_csv : path
    on_error : {'fail', 'skip'}
        ``fail`` raises :class:`~sorter.errors.InputError` (a ``ValueError``) naming the
        line; ``skip`` logs the row and goes on.
    write : callable, optional
        Called as ``write(parcel, chute, reason)`` for each scan.

    Returns
    -------
    ReplayResult
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
    path = Path(events_csv)
    base = path.parent
    result = ReplayResult()
    from sorter.plan import check_input_file
    # not /dev/zero or a pipe; any size (a day's log of a busy hub runs to GBs): it is
    # streamed row by row, never read whole
    check_input_file(path, field="events", expected="an events CSV file", limit=float("inf"))
    try:
        # bytes that are not UTF-8 are kept as lone surrogates and refused row by row (below):
        # a decode error would name the line of the 8 KB chunk it came in, and in skip mode
        # drop the rest of that chunk's rows with it
        fh = open(path, newline="", encoding="utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None
    with fh:
        reader = csv.reader(_bounded_lines(fh, path))
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"bad CSV: {exc}", path=path, line=1) from None
        header = [h.strip() for h in (header or [])]
        missing = [c for c in EVENT_COLUMNS if c not in header]
        if missing:
            raise InputError(f"header lacks column(s) {', '.join(missing)}", path=path, line=1,
                             field="header", expected=",".join(EVENT_COLUMNS))
        col = {c: header.index(c) for c in EVENT_COLUMNS}
        while True:
            start = reader.line_num + 1         # the row's first line (a quoted field may
            try:                                # run over several)
                raw = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                err = InputError(f"bad CSV: {exc}", path=path, line=reader.line_num)
                if on_error == "fail":
                    raise err from None
                result._skip(reader.line_num, str(err))
                continue
            line = start
            if not raw or all(not c.strip() for c in raw):
                continue
            try:
                if _BAD_BYTES.search("".join(raw)):
                    raise InputError("not UTF-8 text", path=path, line=line,
                                     expected="a UTF-8 CSV file")
                if len(raw) < len(header) or any(c.strip() for c in raw[len(header):]):
                    # more fields than the header: an unquoted ',' shifted the columns
                    runs_on = (f" (the row runs on to line {reader.line_num}: an unmatched "
                               "'\"' in it?)" if reader.line_num > line else "")
                    raise InputError(f"{len(raw)} fields, header has {len(header)}{runs_on}",
                                     path=path, line=line, field="row",
                                     expected=",".join(EVENT_COLUMNS))
                row = {c: raw[i] for c, i in col.items()}
                ev, args = _parse_row(row, line, path, base)
                if ev == "scan":
                    parcel, dest, rc, sortable = args
                    d = sorter.assign(dest, rc, sortable)
                    result.decisions += 1
                    result.by_reason[d.reason] += 1
                    if write is not None:
                        write(parcel, d.chute, d.reason)
                elif ev == "switch_plan":
                    try:
                        sorter.switch_plan(args[0])
                    except (InputError, OSError) as exc:    # name the events row, then the plan's fault
                        raise InputError(f"cannot switch plan: {exc}", path=path,
                                         line=line, field="plan",
                                         expected="a plan CSV (destination,chutes) that fits the "
                                                  "chute table, relative to the events file") from None
                elif ev == "discharged":
                    sorter.discharged(args[0])
                elif ev == "container_changed":
                    sorter.container_changed(args[0])
                else:
                    sorter.set_state(args[0], _STATE_EVENTS[ev])
                result.events += 1
            except InputError as exc:
                if exc.path is None:     # an engine error (unknown chute): add the place
                    exc = InputError(str(exc), path=path, line=line)
                if on_error == "fail":
                    raise exc from None
                result._skip(line, str(exc))
    return result

"""The package's exceptions, in one place.

Every error about user input is a ``ValueError`` (or ``TypeError``) subclass, so
callers that only know the standard library still catch it.
"""
from __future__ import annotations

import math
import numbers

__all__ = ["SorterError", "InputError", "format_location", "check_number", "plain_int",
           "plain_float"]


class SorterError(Exception):
    """Base class of sorter's own exceptions."""


class InputError(SorterError, ValueError):
    """A file or argument is malformed. The message names file, line, field and expected form."""

    def __init__(self, message, *, path=None, line=None, field=None, expected=None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.expected = expected
        super().__init__(format_location(message, path=path, line=line, field=field,
                                         expected=expected))

    def relocated(self, **where) -> "InputError":
        """This error with its ``path``, ``line`` or ``field`` changed, message and expected
        form kept: a caller that knows the file, line or name of what was checked says so."""
        kw = dict(path=self.path, line=self.line, field=self.field, expected=self.expected)
        kw.update(where)
        return InputError(self.message, **kw)


def format_location(message, *, path=None, line=None, field=None, expected=None):
    """One line: ``file:line: field 'x': message (expected ...)``."""
    where = ""
    if path is not None:
        where = str(path)
        if line is not None:
            where += f":{line}"
        where += ": "
    elif line is not None:
        where = f"line {line}: "
    if field is not None:
        where += f"field '{field}': "
    text = where + message
    if expected:
        text += f" (expected {expected})"
    return " ".join(text.split("\n"))


def check_number(value, *, path=None, field=None, expected=None, lo=None, hi=None, lo_open=False,
                 integer=False):
    """A validated number from user input (int or float; bools refused), else :class:`InputError`.

    ``lo``/``hi`` bound it (``lo_open`` makes the lower bound strict); ``integer`` asks for a
    whole number. Returns an ``int`` when ``integer`` else a ``float``.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and integer and not isinstance(value, numbers.Integral) and not float(value).is_integer():
        ok = False
    if ok:
        # whole numbers are compared as ints: as floats, 2**63 - 1 rounds up past its own bound
        v = int(value) if isinstance(value, numbers.Integral) else float(value)
        ok = isinstance(v, int) or math.isfinite(v)
        if ok and lo is not None:
            ok = v > lo if lo_open else v >= lo
        if ok and hi is not None:
            ok = v <= hi
    if not ok:
        raise InputError(f"bad value {value!r}", path=path, field=field, expected=expected)
    return int(value) if integer else float(value)


def plain_int(s) -> int:
    """``int(s)`` for a file's number as written: ASCII only (blanks and sign allowed), no ``_``.

    ``int()`` alone also reads ``"1_2"`` as 12 and other scripts' digits (``"\u0661"``,
    Arabic-Indic 1, or a full-width ``"\uff11"``) as 1: no file writes those, so a number
    that has them is a typo or a mangled file. Raises ``ValueError`` (as ``int()``) for
    anything else.
    """
    if not s.isascii() or "_" in s:
        raise ValueError(s)
    return int(s)


def plain_float(s) -> float:
    """``float(s)`` for a file's number as written, refusing what :func:`plain_int` refuses
    (``float()`` reads ``"1_0"`` as 10 and ``"\u0663"`` as 3). ``nan`` and ``inf`` still read
    as ``float()`` reads them: callers bound the value."""
    if not s.isascii() or "_" in s:
        raise ValueError(s)
    return float(s)

"""The WCS line telegram protocol: a pure parser and formatter (no sockets, no engine).

One telegram per line, ASCII, fields separated by ``|``, terminated by ``\\n`` (a
trailing ``\\r`` is dropped). Every telegram carries a sequence number ``seq`` (a
decimal integer, 0 <= seq < 10**18) that its answer echoes exactly as received: leading
zeros are kept (``SCAN|018|...`` is answered ``DEST|018|...``, see :func:`echo_seq`),
so a client may match answers to requests by the seq text or by its value. ``seq`` is
journalled and compared as a number (``last`` in a ``HELLO`` answer is that number, in
plain decimal). A last line without its ``\\n`` when the client closes its side is not
a telegram (it may have been cut off): it is answered ``ERR|seq|unterminated|...`` and
not applied.

=========================================  ===========================================
telegram (client -> service)               answer (service -> client)
=========================================  ===========================================
``SCAN|seq|parcel|destination|recirc|sortable``  ``DEST|seq|parcel|chute|reason``
``CHUTE|seq|chute|state``                  ``ACK|seq``
``DISCHARGED|seq|parcel|chute``            ``ACK|seq``
``CONTAINER|seq|chute``                    ``ACK|seq``
``PLAN|seq|path``                          ``ACK|seq``
``HB|seq``                                 ``ACK|seq``
``HELLO|seq|client``                       ``HELLO|seq|client|last`` (extension)
``STATUS|seq``                             ``STATUS|seq|key=value;...`` (extension)
anything malformed                         ``ERR|seq|code|text`` (seq ``-`` if unreadable)
=========================================  ===========================================

Field rules: ``parcel``, ``chute``, ``client`` and ``destination`` are printable ASCII
without ``|``, at most :data:`MAX_FIELD` characters (``destination`` may be empty: a
no-read; ``parcel`` may be empty on ``DISCHARGED`` only); spaces around a ``destination``
or ``chute`` are dropped, as fixed-width PLC fields pad them (``A   `` is ``A``, a
destination of spaces only a no-read), as the plan files drop them; ``recirc`` is an integer
>= 0 (empty = 0); ``sortable`` is ``1`` or ``0`` (empty = 1); ``state`` is one of
:data:`sorter.constants.STATES`; ``path`` is at most :data:`MAX_PATH` characters.
A line longer than :data:`MAX_LINE` bytes is refused with ``ERR|seq|too_long|...``.

:func:`parse_line` returns one of the telegram named tuples or raises
:class:`TelegramError` (code, text, seq); it never raises anything else, whatever
bytes it is given.
"""
from __future__ import annotations

from collections import namedtuple

from sorter.constants import STATES

__all__ = [
    "MAX_LINE", "MAX_FIELD", "MAX_PATH", "MAX_SEQ", "ERR_CODES", "TELEGRAMS",
    "TelegramError", "Scan", "ChuteState", "Discharged", "Container", "PlanSwitch",
    "Heartbeat", "Hello", "Status", "parse_line", "peek_seq", "echo_seq", "format_dest",
    "format_ack", "format_err", "format_hello", "format_status", "format_telegram", "parse_answer",
]

#: Longest accepted line in bytes, without the newline.
MAX_LINE = 4096
#: Longest parcel id, destination code, chute id or client name.
MAX_FIELD = 64
#: Longest plan path in a ``PLAN`` telegram.
MAX_PATH = 1024
#: Sequence numbers are decimal integers below this bound (fits a signed 64-bit int).
MAX_SEQ = 10 ** 18

#: Every error code an ``ERR`` answer can carry, with its meaning.
ERR_CODES = {
    "empty": "empty line",
    "too_long": f"line longer than {MAX_LINE} bytes",
    "not_ascii": "bytes outside ASCII",
    "bad_char": "control character in the line",
    "unknown_type": "unknown telegram type",
    "field_count": "wrong number of fields for the telegram type",
    "bad_seq": "sequence number is not an integer 0 <= seq < 10**18",
    "bad_parcel": "parcel id empty or too long",
    "bad_destination": "destination code too long",
    "bad_recirculation": "recirculation is not an integer >= 0",
    "bad_sortable": "sortable is not 1 or 0",
    "bad_chute": "chute id empty or too long",
    "bad_state": "unknown chute state",
    "bad_path": "plan path empty or too long",
    "bad_client": "client name empty or too long",
    "unknown_chute": "the chute is not in the chute table (service)",
    "bad_plan": "the plan file cannot be loaded or does not fit the chutes (service)",
    "internal": "unexpected service error; the telegram had no effect (service)",
    "unterminated": "the client closed its side after a line without its newline: the line "
                    "may be cut off, so it is not applied (service)",
}

Scan = namedtuple("Scan", "seq parcel destination recirculation sortable")
ChuteState = namedtuple("ChuteState", "seq chute state")
Discharged = namedtuple("Discharged", "seq parcel chute")
Container = namedtuple("Container", "seq chute")
PlanSwitch = namedtuple("PlanSwitch", "seq path")
Heartbeat = namedtuple("Heartbeat", "seq")
Hello = namedtuple("Hello", "seq client")
Status = namedtuple("Status", "seq")

#: Telegram type -> number of fields (type and seq included).
TELEGRAMS = {"SCAN": 6, "CHUTE": 4, "DISCHARGED": 4, "CONTAINER": 3, "PLAN": 3, "HB": 2,
             "HELLO": 3, "STATUS": 2}

_STATES = frozenset(STATES)
_new = tuple.__new__
_SEQ_DIGITS = len(str(MAX_SEQ - 1))


class TelegramError(ValueError):
    """A malformed telegram: ``code`` (a key of :data:`ERR_CODES`), ``text``, and the
    telegram's ``seq`` when it could be read (else ``None``)."""

    def __init__(self, code, text, seq=None):
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
        self.seq = seq


def _seq_of(text):
    """An int for a valid seq field, else None."""
    if 0 < len(text) <= _SEQ_DIGITS and text.isdigit() and text.isascii():
        return int(text)
    if len(text) > _SEQ_DIGITS and text.isascii() and text.isdigit():
        # a fixed-width counter padded with zeros ("00000000000000000042", 20 digits) is
        # still a seq below 10**18: the value counts, not the width
        value = text.lstrip("0")
        if len(value) <= _SEQ_DIGITS:
            return int(value or "0")
    return None


def echo_seq(line, *, cut=False) -> str | None:
    """The seq field of ``line`` exactly as received (leading zeros kept), for the answer
    to echo; None if the line has no valid seq (the answer then says ``-``).

    ``cut``: ``line`` is only the start of a longer line, so a seq field that runs to its
    end may be cut short and is not trusted. Never raises.

    Examples
    --------
    >>> echo_seq(b"SCAN|018|P1|10115|0|1"), echo_seq("HB|7"), echo_seq(b"HB|x")
    ('018', '7', None)
    """
    try:
        if isinstance(line, str):
            line = line.encode("ascii", "replace")
        line = bytes(line)
        if line[-1:] == b"\r" and not cut:
            line = line[:-1]
        parts = line.split(b"|", 2)
        if len(parts) < 2 or (cut and len(parts) < 3):
            return None
        text = parts[1].decode("ascii")
        return text if _seq_of(text) is not None else None
    except Exception:       # never let error reporting fail
        return None


def peek_seq(line) -> int | None:
    """Best effort: the seq of a line that will not parse (for the ``ERR`` answer)."""
    text = echo_seq(line)
    return None if text is None else int(text)


#: Each telegram type's fields, in order (error texts name the field of a bad character).
_FIELD_NAMES = {"SCAN": "type seq parcel destination recirculation sortable",
                "CHUTE": "type seq chute state", "DISCHARGED": "type seq parcel chute",
                "CONTAINER": "type seq chute", "PLAN": "type seq path", "HB": "type seq",
                "HELLO": "type seq client", "STATUS": "type seq"}


def _bad_at(s, bad, what, expected):
    """``what 0x.. in field N (name): expected``, for the first character of ``s`` that
    ``bad`` flags (there is one)."""
    i = next(k for k, c in enumerate(s) if bad(c))
    k = s.count("|", 0, i)
    names = _FIELD_NAMES.get(s.split("|", 1)[0], "").split()
    name = f"field {k + 1}" + (f" ({names[k]})" if k < len(names) else "")
    return f"{what} 0x{ord(s[i]):02x} in {name}: {expected}"


def _field(text, code, what, seq, *, empty_ok=False, limit=MAX_FIELD):
    if (not text and not empty_ok) or len(text) > limit:
        raise TelegramError(code, f"{what} must be 1..{limit} characters" if not empty_ok
                            else f"{what} must be at most {limit} characters", seq)
    return text


def parse_line(line):
    """Parse one telegram (without its newline).

    Parameters
    ----------
    line : bytes or str
        One line as received; a trailing ``\\r`` is dropped.

    Returns
    -------
    Scan, ChuteState, Discharged, Container, PlanSwitch, Heartbeat, Hello or Status

    Raises
    ------
    TelegramError
        Anything malformed; ``.code`` says what (see :data:`ERR_CODES`), ``.seq`` is
        the telegram's seq if readable.

    Examples
    --------
    >>> parse_line(b"SCAN|7|P1|10115|0|1")
    Scan(seq=7, parcel='P1', destination='10115', recirculation=0, sortable=True)
    >>> parse_line(b"CHUTE|8|C001|full")
    ChuteState(seq=8, chute='C001', state='full')
    """
    # the limit is the line's, without its newline: a CRLF line's \r counts no more than
    # its \n (a 4,096-byte telegram was too_long when sent with CRLF and taken with LF);
    # the \r is looked at only past the limit (this runs for every telegram)
    if isinstance(line, str):
        s = line
        if len(s) > MAX_LINE and len(s) - (s[-1:] == "\r") > MAX_LINE:
            raise TelegramError("too_long", f"line longer than {MAX_LINE} bytes", peek_seq(s))
        if not s.isascii():
            raise TelegramError("not_ascii", _bad_at(s, lambda c: c > "\x7f", "character",
                                                     "telegrams are printable ASCII"), peek_seq(s))
    else:
        if len(line) > MAX_LINE and len(line) - (line[-1:] == b"\r") > MAX_LINE:
            raise TelegramError("too_long", f"line longer than {MAX_LINE} bytes", peek_seq(line))
        try:
            s = line.decode("ascii")
        except UnicodeDecodeError:
            raise TelegramError("not_ascii", _bad_at(bytes(line).decode("latin-1"),
                                                     lambda c: c > "\x7f", "byte",
                                                     "telegrams are printable ASCII"),
                                peek_seq(line)) from None
        except AttributeError:
            raise TelegramError("not_ascii", "telegrams are ASCII", peek_seq(line)) from None
    if s[-1:] == "\r":
        s = s[:-1]
    if not s:
        raise TelegramError("empty", "empty telegram")
    if not s.isprintable():
        raise TelegramError("bad_char", _bad_at(s, lambda c: not c.isprintable(),
                                                "control character",
                                                "fields are printable ASCII (no tab, NUL, ...)"),
                            peek_seq(s))
    f = s.split("|")
    kind = f[0]
    n = TELEGRAMS.get(kind)
    seq = _seq_of(f[1]) if len(f) > 1 else None
    if n is None:
        raise TelegramError("unknown_type", f"unknown telegram type {kind[:20]!r}; expected one of "
                            + " ".join(TELEGRAMS), seq)
    if seq is None:
        raise TelegramError("bad_seq", "seq must be an integer 0 <= seq < 10**18"
                            if len(f) > 1 else "telegram has no seq")
    if len(f) != n:
        raise TelegramError("field_count", f"{kind} has {n} fields, got {len(f)}", seq)
    if kind == "SCAN":
        parcel = f[2]
        if not parcel or len(parcel) > MAX_FIELD:
            _field(parcel, "bad_parcel", "parcel", seq)
        dest = f[3]
        if dest[:1] == " " or dest[-1:] == " ":
            dest = dest.strip(" ")      # fixed-width PLC fields: "A    " is A, "     " a no-read
        if len(dest) > MAX_FIELD:
            _field(dest, "bad_destination", "destination", seq, empty_ok=True)
        rc = f[4]
        if rc == "" or rc == "0":
            rc = 0
        elif rc.isdigit() and len(rc) <= 9:
            rc = int(rc)
        else:
            raise TelegramError("bad_recirculation", "recirculation must be an integer >= 0 "
                                "(at most 9 digits; empty = 0)", seq)
        so = f[5]
        if so == "1" or so == "":
            so = True
        elif so == "0":
            so = False
        else:
            raise TelegramError("bad_sortable", "sortable must be 1 or 0 (empty = 1)", seq)
        return _new(Scan, (seq, parcel, dest or None, rc, so))   # Scan(...) without __new__'s cost
    if kind == "CHUTE":
        chute = _field(f[2].strip(" "), "bad_chute", "chute", seq)
        if f[3] not in _STATES:
            raise TelegramError("bad_state", "state must be one of " + " ".join(STATES), seq)
        return ChuteState(seq, chute, f[3])
    if kind == "DISCHARGED":
        return Discharged(seq, _field(f[2], "bad_parcel", "parcel", seq, empty_ok=True),
                          _field(f[3].strip(" "), "bad_chute", "chute", seq))
    if kind == "CONTAINER":
        return Container(seq, _field(f[2].strip(" "), "bad_chute", "chute", seq))
    if kind == "PLAN":
        return PlanSwitch(seq, _field(f[2], "bad_path", "path", seq, limit=MAX_PATH))
    if kind == "HB":
        return Heartbeat(seq)
    if kind == "HELLO":
        return Hello(seq, _field(f[2], "bad_client", "client", seq))
    return Status(seq)


# -- answers ------------------------------------------------------------------------
def format_dest(seq, parcel, chute, reason) -> bytes:
    """``DEST|seq|parcel|chute|reason\\n``. In every ``format_*``, ``seq`` is an int or the
    seq text as received (:func:`echo_seq`)."""
    return f"DEST|{seq}|{parcel}|{chute}|{reason}\n".encode()


def format_ack(seq) -> bytes:
    """``ACK|seq\\n``."""
    return f"ACK|{seq}\n".encode()


def _clean(text, limit=200):
    text = str(text).encode("ascii", "replace").decode("ascii")
    text = "".join(c if c.isprintable() and c != "|" else ("/" if c == "|" else " ") for c in text)
    return text[:limit]


def format_err(seq, code, text) -> bytes:
    """``ERR|seq|code|text\\n``; ``seq`` None -> ``-``. ``text`` is made printable ASCII
    without ``|`` and cut to 200 characters, so the answer is always one line."""
    return f"ERR|{'-' if seq is None else seq}|{code}|{_clean(text)}\n".encode()


def format_hello(seq, client, last) -> bytes:
    """``HELLO|seq|client|last\\n``: ``last`` is the client's highest seq the service holds
    (``-`` if none)."""
    return f"HELLO|{seq}|{client}|{'-' if last is None else last}\n".encode()


def format_status(seq, stats) -> bytes:
    """``STATUS|seq|key=value;key=value\\n``."""
    body = ";".join(f"{k}={v}" for k, v in stats.items())
    return f"STATUS|{seq}|{_clean(body, 2000)}\n".encode()


def format_telegram(kind, seq, *fields) -> bytes:
    """A client-side helper: ``KIND|seq|field|...\\n`` (``None`` fields are empty)."""
    parts = [kind, str(seq)] + ["" if x is None else str(x) for x in fields]
    return ("|".join(parts) + "\n").encode()


def parse_answer(line):
    """A client-side helper: split an answer line into ``(kind, seq, fields)``.

    ``seq`` is an int, or ``None`` for ``ERR|-|...``. Raises ``ValueError`` on a line that
    is not an answer.
    """
    if isinstance(line, (bytes, bytearray)):
        line = bytes(line).decode("ascii")
    s = line.rstrip("\r\n")
    f = s.split("|", 2) if s.startswith("STATUS|") else s.split("|")
    if f[0] not in ("DEST", "ACK", "ERR", "HELLO", "STATUS") or len(f) < 2:
        raise ValueError(f"not an answer line: {line[:80]!r}")
    seq = None if f[1] == "-" else int(f[1])
    return f[0], seq, f[2:]

"""Sort plans and chute tables: the data a sorter is configured with, loaded and validated once.

A *chute table* lists the chutes of a sorter (id, kind, container capacity, position).
A *sort plan* maps each destination code to an ordered list of chutes (primary first,
then alternates) and names the overflow chutes and the reject chute of every reason.

Files (outside tools write these, so the names are a contract):

* the plan as CSV, header ``destination,chutes``, chutes separated by ``;``::

      destination,chutes
      10115,C001;C002
      20095,C003

* the chute table with plan settings as TOML::

      [plan]
      name = "wave-1"
      strategy = "least_loaded"        # fill_first | round_robin | least_loaded
      max_recirculation = 3
      overflow = ["OV1"]
      [reject]
      no_read = "R1"
      ...
      [[chute]]
      id = "C001"
      kind = "destination"             # destination | overflow | reject
      capacity = 40
"""
from __future__ import annotations

import csv
import difflib
import io
import numbers
import re
import tomllib
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from sorter.constants import KINDS, REJECT_REASONS, STRATEGIES
from sorter.errors import InputError

__all__ = ["Chute", "ChuteTable", "SortPlan", "PlanSettings", "load_chutes", "load_plan",
           "load_plan_routes", "MAX_CHUTES", "MAX_DESTINATIONS"]

# Chutes per table. The biggest real sorters have ~1,000 chutes (a generated loop at most
# 300,000: 100,000 each of destination, overflow and reject); the engine spends ~1 kB and
# ~17 us per chute, so 10^7 (a typo, or a generated list gone wrong) was ~3 minutes and
# 10+ GB with no output.
MAX_CHUTES = 1_000_000
# Destinations per plan. Real plans have hundreds to tens of thousands (postal codes); loading
# costs ~9 us and ~330 bytes each (2 M: 17 s, 0.7 GB), so a 256 MB plan file (~18 M rows) was
# minutes and ~6 GB; a PLAN telegram loads it beside a running service.
MAX_DESTINATIONS = 1_000_000

_SIDES = ("left", "right")


@dataclass(frozen=True)
class Chute:
    """One chute: ``id`` (int or str label), ``kind``, ``capacity`` (items per container),
    optional ``position`` (metres along the sorter) and ``side`` (``left``/``right``)."""

    id: int | str
    kind: str = "destination"
    capacity: int = 40
    position: float | None = None
    side: str | None = None

    def as_dict(self):
        d = {"id": self.id, "kind": self.kind, "capacity": self.capacity}
        if self.position is not None:
            d["position"] = self.position
        if self.side is not None:
            d["side"] = self.side
        return d


class ChuteTable:
    """An ordered, validated collection of :class:`Chute` with lookup by label.

    Chute labels may be ints or strings; a plan CSV names them as text, so ``str(id)``
    must be unique too.
    """

    def __init__(self, chutes: Sequence[Chute | Mapping], *, path=None):
        items = []
        try:
            n = len(chutes)
        except TypeError:          # an iterator: counted as it is read, below
            n = 0
        for i, c in enumerate(chutes):
            if max(n, i + 1) > MAX_CHUTES:
                raise InputError(f"{max(n, i + 1):,} chutes" if n else
                                 f"more than {MAX_CHUTES:,} chutes", path=path, field="chute",
                                 expected=f"at most {MAX_CHUTES:,} chutes in one table (real "
                                          "sorters have ~1,000)")
            items.append(_plain_chute(c) if isinstance(c, Chute)
                         else _chute_from_mapping(c, path, None, i))
        if not items:
            raise InputError("a chute table needs at least one chute", path=path, field="chute",
                             expected="one or more [[chute]] tables")
        self.chutes = tuple(items)
        self._index = {}
        for i, c in enumerate(self.chutes):
            _check_chute(c, path, None, i)
            for key in (c.id, str(c.id)):
                if key in self._index and self._index[key] != i:
                    raise InputError(f"duplicate chute id {c.id!r}", path=path, field="chute.id",
                                     expected="unique chute ids")
                self._index[key] = i

    def __len__(self):
        return len(self.chutes)

    def __iter__(self):
        return iter(self.chutes)

    def __getitem__(self, label):
        return self.chutes[self._index[label]]

    def __contains__(self, label):
        try:
            return label in self._index
        except TypeError:
            return False

    def index(self, label):
        """Position of the chute labelled ``label`` (int label or its text form)."""
        return self._index[label]

    def lookup(self, label):
        """Position of ``label`` or ``None``."""
        try:
            return self._index.get(label)
        except TypeError:
            return None

    @property
    def ids(self):
        return [c.id for c in self.chutes]

    def as_dicts(self):
        return [c.as_dict() for c in self.chutes]

    def __repr__(self):
        kinds = {k: sum(c.kind == k for c in self.chutes) for k in KINDS}
        return f"ChuteTable({len(self)} chutes: {kinds})"


@dataclass
class PlanSettings:
    """The ``[plan]`` and ``[reject]`` tables of a chute TOML."""

    name: str = "plan"
    strategy: str = "fill_first"
    max_recirculation: int = 3
    overflow: tuple = ()
    reject: dict = field(default_factory=dict)


@dataclass
class SortPlan:
    """A complete sort plan.

    Parameters
    ----------
    routes : mapping of str to sequence of chute ids
        Destination code -> chutes, primary first, then alternates.
    reject : mapping of str to chute id
        Reject chute for each reason in :data:`sorter.constants.REJECT_REASONS`.
    overflow : sequence of chute ids
        Shared overflow chutes, tried in this order.
    strategy : {'fill_first', 'round_robin', 'least_loaded'}
    max_recirculation : int
        A parcel that has recirculated more often than this goes to reject.
    name : str
    """

    routes: dict
    reject: dict
    overflow: tuple = ()
    strategy: str = "fill_first"
    max_recirculation: int = 3
    name: str = "plan"

    def validate(self, chutes: ChuteTable, *, path=None):
        """Check the plan against ``chutes`` (a :class:`ChuteTable`, or a list of
        :class:`Chute`); raises :class:`~sorter.errors.InputError`."""
        chutes = as_chute_table(chutes)
        if not isinstance(self.routes, Mapping):
            raise InputError(f"routes is a {type(self.routes).__name__}", path=path, field="routes",
                             expected="a mapping {destination: [chute id, ...]}")
        if len(self.routes) > MAX_DESTINATIONS:
            raise InputError(f"{len(self.routes):,} destinations", path=path, field="routes",
                             expected=f"at most {MAX_DESTINATIONS:,} destinations in one plan")
        if not self.routes:      # as a plan CSV without rows: every parcel would be rejected
            raise InputError("no destinations", path=path, field="routes",
                             expected="one or more destinations with their chutes, "
                                      "e.g. {'10115': ['C001', 'C002']}")
        if not isinstance(self.reject, Mapping):
            raise InputError(f"reject is a {type(self.reject).__name__}", path=path, field="reject",
                             expected="a mapping {reason: reject chute id}")
        if not _is_ordered(self.overflow):
            raise InputError(f"overflow is a {type(self.overflow).__name__}", path=path,
                             field="overflow", expected="a list of chute ids, e.g. ['OV1']")
        if not isinstance(self.name, str) or not self.name.strip():   # as the file's [plan] name
            raise InputError(f"bad plan name {self.name!r}", path=path, field="name",
                             expected="a non-empty string")
        self.max_recirculation = _plain_int(self.max_recirculation)      # numpy's too
        if self.strategy not in STRATEGIES:
            raise InputError(f"unknown strategy {self.strategy!r}", path=path, field="strategy",
                             expected=" | ".join(STRATEGIES))
        if (not isinstance(self.max_recirculation, int) or isinstance(self.max_recirculation, bool)
                or not 0 <= self.max_recirculation <= 1000):     # the compiled engine holds a C int
            raise InputError(f"bad max_recirculation {self.max_recirculation!r}", path=path,
                             field="max_recirculation", expected="an integer from 0 to 1000")
        for reason in REJECT_REASONS:
            if reason not in self.reject:
                raise InputError(f"no reject chute for reason '{reason}'", path=path,
                                 field=f"reject.{reason}", expected="a chute id of kind 'reject'")
        for reason, cid in self.reject.items():
            if reason not in REJECT_REASONS:
                raise InputError(f"unknown reject reason '{reason}'", path=path,
                                 field=f"reject.{reason}", expected=" | ".join(REJECT_REASONS))
            c = _known_chute(chutes, cid, path, None, f"reject.{reason}")
            if c.kind != "reject":
                raise InputError(f"chute {cid!r} is of kind '{c.kind}'", path=path,
                                 field=f"reject.{reason}", expected="a chute of kind 'reject'")
        for cid in self.overflow:
            c = _known_chute(chutes, cid, path, None, "overflow")
            if c.kind == "reject":
                raise InputError(f"chute {cid!r} is a reject chute", path=path, field="overflow",
                                 expected="chutes of kind 'overflow' or 'destination'")
        for dest, route in self.routes.items():
            _check_route(dest, route, chutes, path, None)
        return self


def _known_chute(chutes, cid, path, line, fieldname):
    i = chutes.lookup(cid)
    if i is None:
        raise InputError(f"unknown chute {cid!r}", path=path, line=line, field=fieldname,
                         expected="a chute id from the chute table")
    return chutes.chutes[i]


def _is_ordered(x):
    """A list, tuple or array of chute ids (not one string, not an unordered set)."""
    return (not isinstance(x, (str, bytes, set, frozenset, Mapping))
            and hasattr(x, "__len__") and hasattr(x, "__iter__"))


def _check_route(dest, route, chutes, path, line):
    if not isinstance(dest, str) or not dest.strip():
        raise InputError(f"bad destination {dest!r}", path=path, line=line, field="destination",
                         expected="a non-empty destination code")
    if not _is_ordered(route):
        raise InputError(f"the chutes of destination {dest!r} are a {type(route).__name__}",
                         path=path, line=line, field="chutes",
                         expected="a list of chute ids, primary first (e.g. ['C001', 'C002'])")
    if len(route) == 0:
        raise InputError(f"destination {dest!r} has no chutes", path=path, line=line,
                         field="chutes", expected="one or more chute ids separated by ';'")
    seen = set()
    for cid in route:
        c = _known_chute(chutes, cid, path, line, "chutes")
        if c.kind == "reject":
            raise InputError(f"chute {cid!r} of destination {dest!r} is a reject chute", path=path,
                             line=line, field="chutes",
                             expected="chutes of kind 'destination' or 'overflow'")
        if c.id in seen:
            raise InputError(f"chute {cid!r} listed twice for destination {dest!r}", path=path,
                             line=line, field="chutes", expected="each chute once per destination")
        seen.add(c.id)


def _plain_int(v):
    """A NumPy integer (any ``numbers.Integral``) as a plain ``int``, as tables read from NumPy
    or pandas hold them (state_dict() must stay JSON); anything else unchanged."""
    return int(v) if isinstance(v, numbers.Integral) and not isinstance(v, (bool, int)) else v


def _plain_real(v):
    """A NumPy number (``np.int64(3)``, ``np.float32(2.5)``) as a plain ``float``, as a chute
    position read from NumPy or pandas holds it; anything else (bools too) unchanged."""
    if (isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
            and type(v) not in (int, float)):
        return float(v)
    return v


def _plain_chute(c):
    """``c`` with a NumPy integer id or capacity as a plain ``int``, a NumPy position as a
    plain ``float``."""
    ids = {k: _plain_int(getattr(c, k)) for k in ("id", "capacity")}
    ids["position"] = _plain_real(c.position)
    return c if all(ids[k] is getattr(c, k) for k in ids) else replace(c, **ids)


def as_chute_table(chutes, *, name="chutes") -> "ChuteTable":
    """``chutes`` as a :class:`ChuteTable`: a table as is, a list (any ordered iterable) of
    :class:`Chute` or mappings (``ChuteTable.as_dicts()``) made into one; anything else a
    ``TypeError`` naming ``name`` (``None`` or a dict of chutes used to fail deep inside)."""
    if isinstance(chutes, ChuteTable):
        return chutes
    if (isinstance(chutes, (str, bytes, Mapping, set, frozenset))
            or not hasattr(chutes, "__iter__")):      # (a set has no chute order)
        raise TypeError(f"{name} must be a ChuteTable or a list of Chute (or of mappings with "
                        f"id, kind, capacity), not {type(chutes).__name__}")
    return ChuteTable(list(chutes))


def _check_chute(c, path, line, i):
    where = dict(path=path, line=line)
    if isinstance(c.id, bool) or not isinstance(c.id, (int, str)) or (isinstance(c.id, str)
                                                                      and not c.id.strip()):
        raise InputError(f"chute #{i + 1}: bad id {c.id!r}", field="id",
                         expected="a non-empty string or an integer", **where)
    if isinstance(c.id, str) and (";" in c.id or "," in c.id or c.id != c.id.strip()):
        raise InputError(f"chute #{i + 1}: id {c.id!r} contains ';', ',' or surrounding spaces",
                         field="id", expected="a plain label", **where)
    if c.kind not in KINDS:
        raise InputError(f"chute {c.id!r}: unknown kind {c.kind!r}", field="kind",
                         expected=" | ".join(KINDS), **where)
    if isinstance(c.capacity, bool) or not isinstance(c.capacity, int) or not (
            1 <= c.capacity <= 1_000_000_000):
        raise InputError(f"chute {c.id!r}: bad capacity {c.capacity!r}", field="capacity",
                         expected="an integer from 1 to 1e9 (items per container)", **where)
    if c.position is not None and (isinstance(c.position, bool)
                                   or not isinstance(c.position, (int, float))
                                   or not (c.position >= 0) or c.position == float("inf")):
        raise InputError(f"chute {c.id!r}: bad position {c.position!r}", field="position",
                         expected="a finite number of metres >= 0", **where)
    if c.side is not None and c.side not in _SIDES:
        raise InputError(f"chute {c.id!r}: bad side {c.side!r}", field="side",
                         expected="left | right", **where)


_CHUTE_KEYS = {"id", "kind", "capacity", "position", "side"}


def _chute_from_mapping(m, path, line, i):
    if not isinstance(m, Mapping):
        raise InputError(f"chute #{i + 1} is not a table", path=path, line=line, field="chute",
                         expected="a [[chute]] table with id, kind, capacity")
    if "id" not in m:
        raise InputError(f"chute #{i + 1} has no id", path=path, line=line, field="id",
                         expected="id = \"C001\" or an integer")
    extra = set(m) - _CHUTE_KEYS
    if extra:
        raise InputError(f"chute {m['id']!r}: unknown key(s) {sorted(extra)}", path=path,
                         line=line, field=sorted(extra)[0],
                         expected="keys " + ", ".join(sorted(_CHUTE_KEYS)))
    c = Chute(id=_plain_int(m["id"]), kind=m.get("kind", "destination"),
              capacity=_plain_int(m.get("capacity", 40)),
              position=_plain_real(m.get("position")), side=m.get("side"))
    _check_chute(c, path, line, i)
    return c


# --------------------------------------------------------------------------- TOML


def _section_lines(text):
    """Line numbers of ``[plan]``, ``[reject]`` and each ``[[chute]]`` header, and of keys.

    The other ways TOML writes the same tables count too: dotted keys (``plan.strategy =``),
    inline tables (``reject = { no_read = "R1", ... }``) and an inline array of chutes
    (``chute = [ { id = "C1" }, ... ]``: each chute's line is the line of its ``{``)."""
    lines = {"plan": None, "reject": None, "chute": []}
    keys = {}           # (section, index, key) -> line
    section, index = None, None
    rows = text.splitlines()
    no = 0
    while no < len(rows):
        no += 1
        s = rows[no - 1].strip()
        if s.startswith("[[") and s.split("#")[0].strip().endswith("]]"):
            name = s.split("#")[0].strip()[2:-2].strip()
            section = name
            if name == "chute":
                lines["chute"].append(no)
                index = len(lines["chute"]) - 1
            else:
                index = None
        elif s.startswith("["):
            name = s.split("#")[0].strip()[1:-1].strip()
            section, index = name, None
            if name in lines and not isinstance(lines[name], list):
                lines[name] = no
        else:
            m = re.match(r"([A-Za-z0-9_\-\"'.]+)\s*=\s*(.?)", s)
            if not m:
                continue
            parts = [x.strip("\"'") for x in m.group(1).split(".")]
            keys[(section, index, parts[-1] if len(parts) == 1 else m.group(1))] = no
            if section is not None:
                continue
            head, opener = parts[0], m.group(2)
            if head in ("plan", "reject") and lines[head] is None and (len(parts) == 2
                                                                       or opener == "{"):
                lines[head] = no
            if len(parts) == 2:                     # plan.strategy = ...
                keys.setdefault((head, None, parts[1]), no)
            elif opener == "{":                     # reject = { no_read = "R1", ... }
                for k in re.findall(r"[{,]\s*[\"']?([A-Za-z0-9_\-]+)[\"']?\s*=", s):
                    keys.setdefault((head, None, k), no)
            elif head == "chute" and opener == "[":  # chute = [ { id = "C1" }, ... ]
                no = _inline_chutes(rows, no, m.end(2), lines, keys)
    return lines, keys


def _inline_chutes(rows, no, col, lines, keys):
    """Record the line of each ``{`` (a chute) and of its keys in an inline array of chute
    tables that opens on line ``no`` before column ``col``; returns the line it closes on."""
    depth, quote, i = 0, None, None
    while no <= len(rows):
        s = rows[no - 1].strip()
        j = col
        while j < len(s):
            ch = s[j]
            if quote:
                if ch == "\\" and quote == '"':
                    j += 1
                elif ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            elif ch == "{":
                if depth == 0:
                    lines["chute"].append(no)
                    i = len(lines["chute"]) - 1
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "]" and depth == 0:
                return no
            elif ch == "=" and depth == 1:
                k = re.search(r"([A-Za-z0-9_\-]+)[\"']?\s*$", s[:j])
                if k:
                    keys.setdefault(("chute", i, k.group(1)), no)
            j += 1
        no, col = no + 1, 0
    return len(rows)


def load_chutes(path) -> tuple[ChuteTable, PlanSettings]:
    """Read a chute TOML: the chute table and the plan settings.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    (ChuteTable, PlanSettings)

    Raises
    ------
    ValueError
        (:class:`~sorter.errors.InputError`) naming file, line, field and expected form.

    Examples
    --------
    >>> table, settings = load_chutes("seeds/plan/demo_chutes.toml")  # doctest: +SKIP
    """
    path = Path(path)
    text = _read_text(path)
    doc = parse_toml(text, path=path, expected="TOML with [plan], [reject] and [[chute]] tables")
    return parse_chutes_doc(doc, path=path, text=text)


def parse_toml(text, *, path, expected):
    """``tomllib.loads(text)`` for a user's file: any failure an :class:`InputError` naming
    ``path`` (and the line where known) and ``expected`` (the chute, scenario and sweep loaders
    share it)."""
    try:
        return tomllib.loads(text)
    except RecursionError:      # 'x = [[[[...' thousands deep: tomllib recurses per level
        raise InputError("not valid TOML: arrays or tables nested too deeply", path=path,
                         expected=expected) from None
    except ValueError as exc:   # TOMLDecodeError, or int()'s limit: a number of 4,301+ digits
        m = re.search(r"line (\d+)", str(exc))
        raise InputError(f"not valid TOML: {exc}", path=path,
                         line=int(m.group(1)) if m else _toml_number_line(text),
                         expected=expected) from None


def _toml_number_line(text) -> int | None:
    """The line of a TOML text's first number too long for ``int()`` (``tomllib`` raises
    a bare ``ValueError`` without a line for it), or None."""
    m = re.search(r"\d{4301,}", text)
    return text.count("\n", 0, m.start()) + 1 if m else None


_PLAN_KEYS = ("name", "strategy", "max_recirculation", "overflow")


def _toml_key_line(text, key) -> int | None:
    """The line where a TOML text first names top-level ``key``: a ``[key]``/``[[key]]``
    header (``[key.sub]`` too), or ``key = ...`` / ``key.sub = ...`` before any header."""
    k = re.escape(key)
    quoted = rf"(?:{k}|\"{k}\"|'{k}')"
    head = re.compile(rf"\s*\[\[?\s*{quoted}\s*[\].]")
    bare = re.compile(rf"\s*{quoted}\s*[=.]")
    in_table = False
    for no, line in enumerate(text.splitlines(), start=1):
        if head.match(line) or (not in_table and bare.match(line)):
            return no
        if line.lstrip().startswith("["):
            in_table = True
    return None


def parse_chutes_doc(doc, *, path=None, text=""):
    """Validate an already-parsed chute document (dict) as :func:`load_chutes` does."""
    heads, keys = _section_lines(text)
    known = {"plan", "reject", "chute"}
    for k in doc:
        if k not in known:
            raise InputError(f"unknown table [{k}]", path=path, line=_toml_key_line(text, k),
                             field=k, expected="[plan], [reject] and [[chute]] tables")
    raw_chutes = doc.get("chute")
    if not isinstance(raw_chutes, list) or not raw_chutes:
        raise InputError("no chutes", path=path, field="chute",
                         expected="one or more [[chute]] tables with id, kind, capacity")
    chutes = []
    for i, m in enumerate(raw_chutes):
        line = heads["chute"][i] if i < len(heads["chute"]) else None
        try:
            chutes.append(_chute_from_mapping(m, path, line, i))
        except InputError as exc:
            # point at the key's own line when we know it
            key_line = keys.get(("chute", i, exc.field)) if exc.field else None
            if key_line is not None and key_line != line:
                raise exc.relocated(path=path, line=key_line) from None
            raise
    try:
        table = ChuteTable(chutes, path=path)
    except InputError as exc:
        if exc.field == "chute.id":
            dup = None
            seen = {}
            for i, c in enumerate(chutes):
                for key in {c.id, str(c.id)}:
                    if key in seen:
                        dup = i
                    seen[key] = i
                if dup is not None:
                    break
            line = keys.get(("chute", dup, "id")) if dup is not None else None
            raise exc.relocated(path=path, line=line, field="id") from None
        raise

    plan = doc.get("plan", {})
    if not isinstance(plan, Mapping):
        raise InputError("[plan] must be a table", path=path, field="plan",
                         expected="[plan] with name, strategy, max_recirculation, overflow")
    settings = PlanSettings()
    for key, value in plan.items():
        line = keys.get(("plan", None, key), heads["plan"])
        if key == "name":
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"bad plan name {value!r}", path=path, line=line,
                                 field="plan.name", expected="a non-empty string")
            settings.name = value
        elif key == "strategy":
            if value not in STRATEGIES:
                raise InputError(f"unknown strategy {value!r}", path=path, line=line,
                                 field="plan.strategy", expected=" | ".join(STRATEGIES))
            settings.strategy = value
        elif key == "max_recirculation":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
                raise InputError(f"bad max_recirculation {value!r}", path=path, line=line,
                                 field="plan.max_recirculation", expected="an integer from 0 to 1000")
            settings.max_recirculation = value
        elif key == "overflow":
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                value = [value]
            if not isinstance(value, list):
                raise InputError(f"bad overflow {value!r}", path=path, line=line,
                                 field="plan.overflow", expected='a list of chute ids, e.g. ["OV1"]')
            for cid in value:
                c = _known_chute(table, cid, path, line, "plan.overflow")
                if c.kind == "reject":
                    raise InputError(f"chute {cid!r} is a reject chute", path=path, line=line,
                                     field="plan.overflow",
                                     expected="chutes of kind 'overflow' or 'destination'")
            settings.overflow = tuple(table[cid].id for cid in value)
        else:
            # more keys may come from outside tools: keep going, but not silently wrong (a
            # near-miss of a known key is a typo that would leave its default in force)
            near = difflib.get_close_matches(str(key), _PLAN_KEYS, n=1, cutoff=0.75)
            if near:
                raise InputError(f"unknown key {key!r} in [plan]", path=path, line=line,
                                 field=f"plan.{key}", expected=f"{near[0]!r} (a typo?); keys "
                                                               + ", ".join(_PLAN_KEYS))
            warnings.warn(f"{path or 'chutes'}" + (f":{line}" if line else "")
                          + f": key {key!r} in [plan] is not one of {', '.join(_PLAN_KEYS)}: "
                          "ignored", stacklevel=2)
            continue

    reject = doc.get("reject")
    if not isinstance(reject, Mapping):
        raise InputError("no [reject] table", path=path, field="reject",
                         expected="[reject] with a chute for each of " + ", ".join(REJECT_REASONS))
    for reason in REJECT_REASONS:
        if reason not in reject:
            raise InputError(f"no reject chute for reason '{reason}'", path=path,
                             line=heads["reject"], field=f"reject.{reason}",
                             expected=f'{reason} = "<chute id of kind reject>"')
    for reason, cid in reject.items():
        line = keys.get(("reject", None, reason), heads["reject"])
        if reason not in REJECT_REASONS:
            raise InputError(f"unknown reject reason '{reason}'", path=path, line=line,
                             field=f"reject.{reason}", expected=" | ".join(REJECT_REASONS))
        c = _known_chute(table, cid, path, line, f"reject.{reason}")
        if c.kind != "reject":
            raise InputError(f"chute {cid!r} is of kind '{c.kind}'", path=path, line=line,
                             field=f"reject.{reason}", expected="a chute of kind 'reject'")
        settings.reject[reason] = c.id
    return table, settings


# --------------------------------------------------------------------------- CSV


#: Largest input file read whole (plans, chute tables, scenarios, volumes): far above any
#: real one, and it keeps ``/dev/zero`` or a runaway file from eating the machine's memory.
MAX_INPUT_BYTES = 256 * 1024 * 1024


def check_input_file(path, *, field=None, expected=None, limit=MAX_INPUT_BYTES) -> Path:
    """A readable regular file of at most ``limit`` bytes, or :class:`InputError` naming it.

    Devices (``/dev/zero``), FIFOs and sockets are refused before they are opened (reading
    one never ends or blocks); so are folders and files over ``limit`` bytes.
    """
    import os
    import stat as _stat

    from sorter.resources import seed_hint
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError("file not found" + seed_hint(p), path=p, field=field,
                         expected=expected) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", path=p, field=field,
                         expected=expected) from None
    if _stat.S_ISDIR(st.st_mode):
        raise InputError("is a directory, not a file", path=p, field=field, expected=expected)
    if not _stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file (a device, pipe or socket)", path=p, field=field,
                         expected=expected)
    if st.st_size > limit:
        raise InputError(f"file too large ({st.st_size:,} bytes)", path=p, field=field,
                         expected=f"at most {limit:,} bytes")
    return p


def read_input_bytes(path, *, field=None, expected=None, limit=MAX_INPUT_BYTES) -> bytes:
    """The bytes of a user's input file, checked by :func:`check_input_file`."""
    p = check_input_file(path, field=field, expected=expected, limit=limit)
    try:
        with open(p, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=p, field=field,
                         expected=expected) from None
    if len(data) > limit:            # grew while we read it
        raise InputError("file too large", path=p, field=field, expected=f"at most {limit:,} bytes")
    return data


def _read_text(path):
    data = read_input_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", path=path, line=line,
                         expected="a UTF-8 text file") from None


def load_plan_routes(path, chutes: ChuteTable | None = None) -> dict:
    """Read a plan CSV (header ``destination,chutes``) into ``{destination: (chute ids...)}``.

    With ``chutes`` the chute ids are checked against the table and returned as the table's
    own labels (an int label written ``17`` in the CSV comes back as ``17``).

    Raises
    ------
    ValueError
        (:class:`~sorter.errors.InputError`) naming file, line and field: duplicate
        destination, unknown chute, a reject chute in a route, an empty chute list.
    """
    path = Path(path)
    if chutes is not None:
        chutes = as_chute_table(chutes)
    text = _read_text(path)
    return parse_plan_csv(text, chutes, path=path)


def first_data_row(reader):
    """The next row of a ``csv.reader`` that is neither blank nor a ``#`` comment (the
    header of a plan or volumes CSV, which may follow comment lines), or None at the end."""
    row = next(reader, None)
    while row is not None and (not any(c.strip() for c in row) or row[0].lstrip().startswith("#")):
        row = next(reader, None)
    return row


def parse_plan_csv(text, chutes=None, *, path=None):
    """Parse plan CSV text; see :func:`load_plan_routes`."""
    if "\x00" in text:
        raise InputError("contains NUL bytes", path=path,
                         line=text.count("\n", 0, text.index("\x00")) + 1,
                         expected="a text CSV file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = first_data_row(reader)
    except csv.Error as exc:
        raise InputError(f"bad CSV: {exc}", path=path, line=reader.line_num or 1) from None
    if header is None:
        raise InputError("no header line (only comments or blank lines)", path=path,
                         line=max(reader.line_num, 1), field="header",
                         expected="'destination,chutes', then one destination per line")
    if [h.strip() for h in header[:2]] != ["destination", "chutes"]:
        raise InputError(f"bad header {','.join(header)!r}", path=path,
                         line=max(reader.line_num, 1), field="header",
                         expected="'destination,chutes'")
    routes = {}
    lines = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if row[0].lstrip().startswith("#"):
                continue
            if len(row) < 2:
                raise InputError("missing chutes column", path=path, line=line, field="chutes",
                                 expected="destination,chute;chute;...")
            if any(c.strip() for c in row[max(2, len(header)):]):
                # e.g. "X1,C001,C002": the alternate would be lost without a column
                raise InputError(f"{len(row)} fields, the header has {len(header)}", path=path,
                                 line=line, field="chutes",
                                 expected="destination,chutes with the chute ids separated by "
                                          "';' (e.g. X1,C001;C002)")
            if len(routes) >= MAX_DESTINATIONS:
                raise InputError(f"more than {MAX_DESTINATIONS:,} destinations", path=path,
                                 line=line, field="destination",
                                 expected=f"at most {MAX_DESTINATIONS:,} destinations in one plan "
                                          "(real plans have up to tens of thousands)")
            dest = row[0].strip()
            if not dest:
                raise InputError("empty destination", path=path, line=line, field="destination",
                                 expected="a non-empty destination code")
            if dest in routes:
                raise InputError(f"duplicate destination {dest!r} (first on line {lines[dest]})",
                                 path=path, line=line, field="destination",
                                 expected="each destination once")
            parts = [p.strip() for p in row[1].split(";")]
            if any(p == "" for p in parts) and any(p for p in parts):
                raise InputError(f"empty chute id in {row[1]!r}", path=path, line=line,
                                 field="chutes", expected="chute ids separated by ';'")
            parts = [p for p in parts if p]
            if not parts:
                raise InputError(f"destination {dest!r} has no chutes", path=path, line=line,
                                 field="chutes", expected="one or more chute ids separated by ';'")
            if chutes is not None:
                _check_route(dest, parts, chutes, path, line)
                parts = [chutes[p].id for p in parts]
            elif len(set(parts)) != len(parts):
                raise InputError(f"a chute listed twice for destination {dest!r}", path=path,
                                 line=line, field="chutes", expected="each chute once per destination")
            routes[dest] = tuple(parts)
            lines[dest] = line
    except csv.Error as exc:
        raise InputError(f"bad CSV: {exc}", path=path, line=reader.line_num) from None
    if not routes:
        raise InputError("no destinations", path=path, line=2, field="destination",
                         expected="one row per destination after the header")
    return routes


def load_plan(plan_csv, chutes_toml, **overrides) -> tuple[SortPlan, ChuteTable]:
    """Load a plan CSV and a chute TOML into a validated ``(SortPlan, ChuteTable)``.

    ``overrides`` may set ``strategy``, ``max_recirculation``, ``name``, ``overflow``.
    """
    table, settings = load_chutes(chutes_toml)
    routes = load_plan_routes(plan_csv, table)
    plan = SortPlan(routes=routes, reject=dict(settings.reject), overflow=tuple(settings.overflow),
                    strategy=settings.strategy, max_recirculation=settings.max_recirculation,
                    name=settings.name)
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in ("strategy", "max_recirculation", "name", "overflow"):
            raise TypeError(f"unknown override {key!r} (expected strategy, max_recirculation, "
                            "name or overflow)")
        if key == "overflow":       # one chute id alone, as the TOML's overflow = "OV1"
            value = (value,) if isinstance(value, (str, int)) else tuple(value)
        setattr(plan, key, value)
    plan.validate(table, path=chutes_toml)
    return plan, table

"""Loop sorters (cross-belt, tilt-tray): geometry, inducts, scanner and chutes along the loop.

A :class:`LoopSorter` is a closed loop of ``length_m`` metres whose carriers, ``pitch_m``
apart, move at ``speed_mps``. Parcels enter at induct stations, pass a scanner that asks the
chute engine for a chute, and leave into chutes placed along the loop (left or right side).
Positions are metres downstream of an arbitrary zero point, in ``[0, length_m)``.

Derived figures: nameplate capacity ``speed * 3600 / pitch`` items/h, lap time
``length / speed`` s, ``round(length / pitch)`` carriers (the simulation spaces them evenly,
so the effective pitch is ``length / carriers``).

In a scenario file the loop is a ``[loop]`` table::

    [loop]
    length_m = 400.0
    speed_mps = 2.5
    pitch_m = 0.6
    scanner_m = 16.0
    chutes = "../plan/demo_chutes.toml"    # a chute TOML whose chutes have position and side
    [[loop.induct]]
    id = "I1"
    position_m = 2.0
    max_rate_per_hour = 3000
    kind = "automatic"                     # automatic | manual

or, without ``chutes``, a generated typical loop (``n_chutes``, ``n_overflow``,
``n_reject``, ``capacity``, ``n_inducts``, ``induct_kind``: see :meth:`LoopSorter.generate`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from sorter.errors import InputError, format_location
from sorter.errors import check_number as _num
from sorter.plan import Chute, ChuteTable, SortPlan, load_chutes

__all__ = ["Induct", "LoopSorter", "INDUCT_KINDS", "DEFAULT_INDUCT_RATE", "generate_loop_plan"]

#: Induct station kinds.
INDUCT_KINDS = ("automatic", "manual")
#: Typical sustained rates (items/h) of one induct station of each kind (FIGURES.md).
DEFAULT_INDUCT_RATE = {"automatic": 4000.0, "manual": 1500.0}
# Generated loops: no real loop has more chutes or inducts than this.
_MAX_CHUTES = 100_000
_MAX_INDUCTS = 10_000


@dataclass(frozen=True)
class Induct:
    """One induct station: ``id``, ``position_m`` along the loop, ``max_rate_per_hour``
    (items/h it can place at most: one parcel per cycle of ``3600 / max_rate_per_hour`` s, on
    the first empty carrier passing once it is ready; a busy induct reaches this rate even
    where the carrier interval does not divide its cycle) and ``kind`` (``automatic`` or
    ``manual``)."""

    id: str
    position_m: float
    max_rate_per_hour: float
    kind: str = "automatic"


@dataclass(frozen=True)
class LoopSorter:
    """A loop sorter: geometry, speed, inducts, scanner and chutes.

    Parameters
    ----------
    length_m : float
        Loop length in metres (> 0).
    speed_mps : float
        Carrier speed in m/s (> 0).
    pitch_m : float
        Distance between carriers in metres (> 0, at most ``length_m / 2``).
    inducts : sequence of Induct
        Induct stations; distinct carrier slots.
    scanner_m : float
        Scanner position in metres, in ``[0, length_m)``.
    chutes : ChuteTable
        Chutes with ``position`` (metres, in ``[0, length_m)``) and ``side``.
    name : str
        A label for reports.
    chute_width_m : float
        Two chutes on the same side closer than this overlap (an error).
    path : str or None
        The file the loop came from (error messages name it).

    Raises
    ------
    ValueError
        :class:`~sorter.errors.InputError` naming file, field and expected form: zero or
        negative speed, length or pitch; a chute or induct past the loop's end; a chute
        without position; overlapping chutes on one side; two inducts on one carrier slot.

    Examples
    --------
    >>> from sorter.layout.loop import LoopSorter
    >>> loop = LoopSorter.generate(length_m=400, speed_mps=2.5, pitch_m=0.6)
    >>> loop.lap_time_s, loop.nameplate_per_hour, loop.n_carriers
    (160.0, 15000.0, 667)
    """

    length_m: float
    speed_mps: float
    pitch_m: float
    inducts: tuple
    scanner_m: float
    chutes: ChuteTable
    name: str = "loop"
    chute_width_m: float = 1.0
    path: str | None = field(default=None, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "inducts", tuple(self.inducts))
        self.validate()

    # -- derived figures --------------------------------------------------------------
    @property
    def nameplate_per_hour(self) -> float:
        """Nameplate capacity, items/h: ``speed x 3600 / pitch``, one item per carrier passing a
        point at the nominal pitch. The simulated loop has ``n_carriers`` carriers, i.e. an
        effective pitch of ``length / n_carriers``, so its true ceiling (``3600 x n_carriers /
        lap_time_s``) may differ from this by up to half a carrier per lap (a 10 m loop at
        3.6 m pitch: 3 carriers, 1,080/h against a nameplate of 1,000/h)."""
        return self.speed_mps * 3600.0 / self.pitch_m

    @property
    def lap_time_s(self) -> float:
        """Seconds for one carrier to go round the loop."""
        return self.length_m / self.speed_mps

    @property
    def n_carriers(self) -> int:
        """Number of carriers on the loop (``round(length / pitch)``, at least 2)."""
        return max(2, int(round(self.length_m / self.pitch_m)))

    @property
    def tick_s(self) -> float:
        """Seconds for the loop to advance one carrier (effective pitch / speed)."""
        return self.lap_time_s / self.n_carriers

    @property
    def induct_capacity_per_hour(self) -> float:
        """Sum of the inducts' maximum rates, items/h."""
        return float(sum(i.max_rate_per_hour for i in self.inducts))

    def slot(self, position_m) -> int | np.ndarray:
        """Carrier slot (0..n_carriers-1) at a position along the loop."""
        n = self.n_carriers
        s = np.floor(np.asarray(position_m, dtype=float) * n / self.length_m).astype(np.int64) % n
        return int(s) if s.ndim == 0 else s

    def chute_positions(self) -> np.ndarray:
        return np.array([c.position for c in self.chutes], dtype=float)

    def summary(self) -> dict:
        """The loop's figures as a plain dict (for reports)."""
        kinds = {}
        for c in self.chutes:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
        return {
            "name": self.name, "length_m": self.length_m, "speed_mps": self.speed_mps,
            "pitch_m": self.pitch_m, "carriers": self.n_carriers,
            "lap_time_s": self.lap_time_s, "nameplate_per_hour": self.nameplate_per_hour,
            "inducts": len(self.inducts),
            "induct_capacity_per_hour": self.induct_capacity_per_hour,
            "chutes": len(self.chutes), "chutes_by_kind": kinds,
        }

    # -- validation -------------------------------------------------------------------
    def validate(self) -> "LoopSorter":
        """Check the layout; raises :class:`~sorter.errors.InputError`."""
        path = self.path
        if not isinstance(self.name, str) or not self.name.strip():    # as from_dict's
            raise InputError(f"bad loop name {self.name!r}", path=path, field="loop.name",
                             expected="a non-empty string")
        length = _num(self.length_m, path=path, field="loop.length_m", lo=0, lo_open=True,
                      expected="a loop length in metres > 0")
        speed = _num(self.speed_mps, path=path, field="loop.speed_mps", lo=0, lo_open=True,
                     hi=20, expected="a carrier speed in m/s, > 0 and at most 20")
        pitch = _num(self.pitch_m, path=path, field="loop.pitch_m", lo=0, lo_open=True,
                     hi=length / 2, expected=f"a carrier pitch in metres, > 0 and at most half "
                                             f"the loop's length_m ({length / 2:g})")
        # plain floats, as a file's: a numpy float32 speed computed the loop in float32 and
        # left numpy numbers in the KPIs (json.dumps refused them)
        for key, v in (("length_m", length), ("speed_mps", speed), ("pitch_m", pitch)):
            object.__setattr__(self, key, v)
        if not self.length_m / self.pitch_m <= 2_000_000:     # also catches inf from a tiny pitch
            raise InputError(f"{self.length_m / self.pitch_m:g} carriers is more than this "
                             "simulator handles",
                             path=path, field="loop.pitch_m", expected="at most 2,000,000 carriers")
        object.__setattr__(self, "scanner_m", _num(
            self.scanner_m, path=path, field="loop.scanner_m", lo=0, hi=length,
            expected=f"a position in metres in [0, {length:g})"))
        if self.scanner_m >= length:
            raise InputError(f"scanner at {self.scanner_m:g} m is past the loop's end",
                             path=path, field="loop.scanner_m",
                             expected=f"a position in metres in [0, {length:g})")
        if not isinstance(self.chutes, ChuteTable):
            raise InputError("chutes must be a chute table", path=path, field="loop.chutes",
                             expected="a chute TOML path")
        if not self.inducts:
            raise InputError("a loop needs at least one induct", path=path, field="loop.induct",
                             expected="one or more [[loop.induct]] tables")
        slots = {}
        ids = set()
        normal = []             # inducts whose numbers become plain floats
        for i, ind in enumerate(self.inducts):
            f = f"loop.induct[{i}]"
            if not isinstance(ind, Induct):
                raise InputError(f"induct #{i + 1} is not an Induct", path=path, field=f)
            if not isinstance(ind.id, str) or not ind.id.strip() or ind.id in ids:
                raise InputError(f"bad or duplicate induct id {ind.id!r}", path=path,
                                 field=f + ".id", expected="a unique non-empty string")
            ids.add(ind.id)
            pos = _num(ind.position_m, path=path, field=f + ".position_m", lo=0, hi=length,
                       expected=f"a position in metres in [0, {length:g})")
            if pos >= length:
                raise InputError(f"induct {ind.id!r} at {pos:g} m is past the loop's end",
                                 path=path, field=f + ".position_m",
                                 expected=f"a position in metres in [0, {length:g})")
            rate = _num(ind.max_rate_per_hour, path=path, field=f + ".max_rate_per_hour", lo=0,
                        lo_open=True, hi=1e6, expected="items per hour, > 0 and at most 1,000,000")
            if type(ind.position_m) is not float or type(ind.max_rate_per_hour) is not float:
                normal.append((i, replace(ind, position_m=pos, max_rate_per_hour=rate)))
            if ind.kind not in INDUCT_KINDS:
                raise InputError(f"induct {ind.id!r}: unknown kind {ind.kind!r}", path=path,
                                 field=f + ".kind", expected=" | ".join(INDUCT_KINDS))
            s = self.slot(pos)
            if s in slots:
                raise InputError(f"inducts {slots[s]!r} and {ind.id!r} share a carrier slot",
                                 path=path, field=f + ".position_m",
                                 expected=f"inducts at least one pitch ({self.pitch_m:g} m) apart")
            slots[s] = ind.id
        if normal:
            inducts = list(self.inducts)
            for i, ind in normal:
                inducts[i] = ind
            object.__setattr__(self, "inducts", tuple(inducts))
        by_side = {}
        for c in self.chutes:
            if c.position is None:
                raise InputError(f"chute {c.id!r} has no position", path=path, field="chute.position",
                                 expected="position = metres along the loop, for every chute")
            if c.position >= length:
                raise InputError(f"chute {c.id!r} at {c.position:g} m is past the loop's end",
                                 path=path, field="chute.position",
                                 expected=f"a position in metres in [0, {length:g})")
            by_side.setdefault(c.side or "left", []).append((float(c.position), c.id))
        for side, items in by_side.items():
            items.sort()
            for (p0, a), (p1, b) in zip(items, items[1:]):
                if p1 - p0 < self.chute_width_m:
                    raise InputError(
                        f"chutes {a!r} ({p0:g} m) and {b!r} ({p1:g} m) overlap on the {side} side",
                        path=path, field="chute.position",
                        expected=f"chutes on one side at least {self.chute_width_m:g} m apart")
            if len(items) > 1 and items[0][0] + length - items[-1][0] < self.chute_width_m:
                raise InputError(f"chutes {items[-1][1]!r} and {items[0][1]!r} overlap across the "
                                 f"loop's zero on the {side} side", path=path,
                                 field="chute.position",
                                 expected=f"chutes on one side at least {self.chute_width_m:g} m apart")
        return self

    # -- construction -----------------------------------------------------------------
    @classmethod
    def generate(cls, *, length_m=400.0, speed_mps=2.5, pitch_m=0.6, n_chutes=400,
                 n_overflow=4, n_reject=3, capacity=40, n_inducts=6,
                 induct_kind="automatic", induct_rate=None, name="loop",
                 path=None) -> "LoopSorter":
        """A typical loop: inducts and the scanner at the start, then chutes on both sides.

        Inducts sit 2 m apart from 2 m on, the scanner 4 m after the last induct; the
        destination chutes fill both sides evenly up to 10 m before the loop's end,
        where the overflow and then the reject chutes follow.

        Parameters
        ----------
        length_m, speed_mps, pitch_m : float
        n_chutes : int
            Chutes in all (destination + overflow + reject).
        n_overflow, n_reject : int
        capacity : int
            Items per container of the destination chutes (overflow 2x, reject 5x, each at
            most 1e9, a chute's largest container).
        n_inducts : int
        induct_kind : {'automatic', 'manual'}
        induct_rate : float, optional
            Items/h per induct (default: :data:`DEFAULT_INDUCT_RATE` of the kind).
        name : str
            The loop's name.
        path : str, optional
            The file the settings came from, named in errors.

        Returns
        -------
        LoopSorter

        Raises
        ------
        ValueError
            (:class:`InputError`) when the chutes do not fit on the loop.

        Examples
        --------
        >>> LoopSorter.generate(n_chutes=100).summary()["chutes_by_kind"]
        {'destination': 93, 'overflow': 4, 'reject': 3}
        """
        # upper bounds first: a huge count must fail here, not build a huge tuple of inducts
        for fname, v, hi in (("n_chutes", n_chutes, _MAX_CHUTES), ("n_overflow", n_overflow, _MAX_CHUTES),
                             ("n_reject", n_reject, _MAX_CHUTES), ("n_inducts", n_inducts, _MAX_INDUCTS),
                             ("capacity", capacity, 1_000_000_000)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= hi:
                # (0 passes here, to be named below: but a loop needs one of these three)
                lo = 1 if fname in ("n_reject", "n_inducts", "capacity") else 0
                raise InputError(f"bad value {v!r}", path=path, field=f"loop.{fname}",
                                 expected=f"an integer from {lo} to {hi:,}")
        for fname, v in (("n_reject", n_reject), ("n_inducts", n_inducts), ("capacity", capacity)):
            if v < 1:        # name the count that is 0 (n_inducts = 0 used to blame n_reject)
                raise InputError("a loop needs a reject chute, an induct and a container "
                                 f"capacity: {fname} = 0", path=path, field=f"loop.{fname}",
                                 expected=f"{fname} >= 1")
        n_dest = n_chutes - n_overflow - n_reject
        if n_dest < 1:
            raise InputError(f"{n_chutes} chutes leave no destination chute", path=path,
                             field="loop.n_chutes", expected="n_chutes > n_overflow + n_reject")
        if induct_kind not in INDUCT_KINDS:
            raise InputError(f"unknown induct kind {induct_kind!r}", path=path,
                             field="loop.induct_kind", expected=" | ".join(INDUCT_KINDS))
        length = _num(length_m, path=path, field="loop.length_m", lo=0, lo_open=True,
                      expected="a loop length in metres > 0")
        pitch = _num(pitch_m, path=path, field="loop.pitch_m", lo=0, lo_open=True,
                     hi=length / 2, expected=f"a carrier pitch in metres, > 0 and at most half "
                                             f"the loop's length_m ({length / 2:g})")
        rate = DEFAULT_INDUCT_RATE[induct_kind] if induct_rate is None else induct_rate
        step = max(2.0, pitch)
        inducts = tuple(Induct(f"I{i + 1}", 2.0 + i * step, rate, induct_kind)
                        for i in range(n_inducts))
        scanner = inducts[-1].position_m + 4.0
        start = scanner + 4.0
        end = length - 10.0 - (n_overflow + n_reject + 1) / 2 * 2.4
        per_side = math.ceil(n_dest / 2)
        if end - start < 1.0:        # no room for even one chute: not n_chutes' fault
            raise InputError(f"the inducts and the scanner take the loop's first {start:g} m and "
                             f"the overflow and reject chutes its last {length - end:g} m: no "
                             f"room for destination chutes on a {length:g} m loop", path=path,
                             field="loop.length_m",
                             expected=f"a loop longer than {start + length - end + 1:g} m, or "
                                      "fewer inducts (n_inducts; they are max(2 m, pitch_m) "
                                      "apart), overflow or reject chutes")
        if end <= start or (end - start) / max(per_side, 1) < 1.0:
            raise InputError(f"{n_dest} destination chutes do not fit on a {length:g} m loop",
                             path=path, field="loop.n_chutes",
                             expected="chutes at least 1 m apart on each side")
        spacing = (end - start) / per_side
        chutes = []
        for i in range(n_dest):
            chutes.append(Chute(f"C{i + 1:03d}", "destination", int(capacity),
                                round(start + (i // 2) * spacing, 3), "left" if i % 2 == 0 else "right"))
        pos = end + 2.4
        for i in range(n_overflow):
            # (at most a chute's largest container: capacity 1e9 was refused, naming OV1)
            chutes.append(Chute(f"OV{i + 1}", "overflow", min(int(2 * capacity), 10**9), round(pos, 3),
                                "left" if i % 2 == 0 else "right"))
            pos += 1.2
        pos += 1.2
        for i in range(n_reject):
            chutes.append(Chute(f"R{i + 1}", "reject", min(int(5 * capacity), 10**9), round(pos, 3),
                                "left" if i % 2 == 0 else "right"))
            pos += 1.2
        if pos - 1.2 >= length:
            raise InputError("overflow and reject chutes do not fit on the loop", path=path,
                             field="loop.length_m", expected="a longer loop or fewer chutes")
        return cls(length_m=length, speed_mps=speed_mps, pitch_m=pitch, inducts=inducts,
                   scanner_m=scanner, chutes=ChuteTable(chutes, path=path), name=name,
                   path=None if path is None else str(path))

    @classmethod
    def from_dict(cls, doc: Mapping, *, path=None, base_dir=None, name="loop") -> "LoopSorter":
        """Build a loop from a scenario's ``[loop]`` table (see the module docstring).

        Relative paths (``chutes``) are resolved against ``base_dir`` (default: the
        folder of ``path``). Unknown keys are errors, so a typo does not pass silently.
        """
        if not isinstance(doc, Mapping):
            raise InputError("[loop] must be a table", path=path, field="loop",
                             expected="a [loop] table with length_m, speed_mps, pitch_m, ...")
        known = {"name", "length_m", "speed_mps", "pitch_m", "scanner_m", "chutes", "induct",
                 "chute_width_m", "capacity", "n_chutes", "n_overflow", "n_reject", "n_inducts",
                 "induct_kind", "induct_rate", "plan", "n_destinations"}
        for k in doc:
            if k not in known:
                raise InputError(f"unknown key {k!r}", path=path, field=f"loop.{k}",
                                 expected="keys " + ", ".join(sorted(known)))
        name = doc.get("name", name)
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"bad loop name {name!r}", path=path, field="loop.name",
                             expected="a non-empty string")
        base = Path(base_dir) if base_dir is not None else (Path(path).parent if path else Path("."))
        geo = {}
        for key, default in (("length_m", 400.0), ("speed_mps", 2.5), ("pitch_m", 0.6)):
            v = doc.get(key, default)
            geo[key] = _num(v, path=path, field=f"loop.{key}", lo=0, lo_open=True,
                            expected="a number > 0")
        width = _num(doc.get("chute_width_m", 1.0), path=path, field="loop.chute_width_m", lo=0,
                     expected="metres >= 0")
        if "chutes" not in doc:
            gen = {k: doc[k] for k in ("n_chutes", "n_overflow", "n_reject", "capacity",
                                       "n_inducts", "induct_kind", "induct_rate") if k in doc}
            if "induct_rate" in gen:
                gen["induct_rate"] = _num(gen["induct_rate"], path=path, field="loop.induct_rate",
                                          lo=0, lo_open=True, hi=1e6,
                                          expected="items per hour, > 0 and at most 1,000,000")
            loop = cls.generate(**geo, **gen, name=name, path=path)
            clash = [k for k in ("n_inducts", "induct_kind", "induct_rate") if k in doc]
            if "induct" in doc and clash:    # the [[loop.induct]] tables would win silently
                raise InputError(f"both {clash[0]!r} and [[loop.induct]] tables", path=path,
                                 field=f"loop.{clash[0]}",
                                 expected="either [[loop.induct]] tables or n_inducts/induct_kind/"
                                          "induct_rate, not both")
            if "induct" in doc or "scanner_m" in doc:
                loop = replace(loop, inducts=_inducts(doc.get("induct", loop.inducts), path),
                               scanner_m=doc.get("scanner_m", loop.scanner_m))
            return replace(loop, chute_width_m=width) if width != loop.chute_width_m else loop
        ignored = [k for k in ("n_chutes", "n_overflow", "n_reject", "n_inducts", "induct_kind",
                               "induct_rate", "n_destinations") if k in doc]
        if ignored:        # a generator setting next to a chute file would silently do nothing
            raise InputError(f"{ignored[0]!r} only applies to a generated loop, and this loop "
                             "reads its chutes from a file", path=path, field=f"loop.{ignored[0]}",
                             expected="either chutes = \"file.toml\" with [[loop.induct]] tables, "
                                      "or the generator keys without chutes")
        chutes_path = doc["chutes"]
        if isinstance(chutes_path, os.PathLike):     # a dict built in code: a Path is a path
            chutes_path = os.fspath(chutes_path)
        if not isinstance(chutes_path, str) or not chutes_path.strip():
            raise InputError(f"bad chutes {chutes_path!r}", path=path, field="loop.chutes",
                             expected="the path of a chute TOML, relative to the scenario file")
        table, _ = load_chutes(base / chutes_path)
        if "capacity" in doc:
            cap = _num(doc["capacity"], path=path, field="loop.capacity", lo=1, hi=1e9,
                       integer=True, expected="an integer from 1 to 1e9 (items per container)")
            table = ChuteTable([replace(c, capacity=cap) if c.kind == "destination" else c
                                for c in table])
        if "induct" not in doc:
            raise InputError("no inducts", path=path, field="loop.induct",
                             expected="one or more [[loop.induct]] tables with id, position_m, "
                                      "max_rate_per_hour, kind")
        if "scanner_m" not in doc:
            raise InputError("no scanner position", path=path, field="loop.scanner_m",
                             expected="scanner_m = metres along the loop")
        inducts = _inducts(doc["induct"], path)
        try:
            return cls(length_m=geo["length_m"], speed_mps=geo["speed_mps"], pitch_m=geo["pitch_m"],
                       inducts=inducts, scanner_m=doc["scanner_m"], chutes=table, name=name,
                       chute_width_m=width, path=None if path is None else str(path))
        except InputError as exc:
            if not (exc.field or "").startswith("chute."):
                raise
            # a chute's position or side: the fault is in the chute file, not the scenario
            text = str(exc)
            prefix = format_location("", path=exc.path, line=exc.line, field=exc.field)
            suffix = f" (expected {exc.expected})" if exc.expected else ""
            if text.startswith(prefix) and text.endswith(suffix):
                text = text[len(prefix):len(text) - len(suffix)]
            where = f"loop {name!r}" + (f" of {path}" if path is not None else "")
            raise InputError(f"{text} ({where})", path=base / chutes_path, field=exc.field,
                             expected=exc.expected) from None

    def __repr__(self):
        return (f"LoopSorter({self.name!r}: {self.length_m:g} m at {self.speed_mps:g} m/s, "
                f"pitch {self.pitch_m:g} m, {self.n_carriers} carriers, {len(self.inducts)} inducts, "
                f"{len(self.chutes)} chutes, nameplate {self.nameplate_per_hour:,.0f}/h)")


def _inducts(items, path) -> tuple:
    if isinstance(items, Mapping) or not isinstance(items, Sequence) or isinstance(items, str):
        raise InputError("inducts must be a list", path=path, field="loop.induct",
                         expected="[[loop.induct]] tables")
    out = []
    for i, m in enumerate(items):
        if isinstance(m, Induct):
            out.append(m)
            continue
        f = f"loop.induct[{i}]"
        if not isinstance(m, Mapping):
            raise InputError(f"induct #{i + 1} is not a table", path=path, field=f,
                             expected="a [[loop.induct]] table")
        extra = set(m) - {"id", "position_m", "max_rate_per_hour", "kind"}
        if extra:
            raise InputError(f"unknown key(s) {sorted(extra)}", path=path, field=f"{f}.{sorted(extra)[0]}",
                             expected="id, position_m, max_rate_per_hour, kind")
        kind = m.get("kind", "automatic")
        if kind not in INDUCT_KINDS:
            raise InputError(f"unknown kind {kind!r}", path=path, field=f + ".kind",
                             expected=" | ".join(INDUCT_KINDS))
        if "position_m" not in m:
            raise InputError("induct without position", path=path, field=f + ".position_m",
                             expected="position_m = metres along the loop")
        pos = _num(m["position_m"], path=path, field=f + ".position_m", lo=0,
                   expected="metres >= 0")
        rate = _num(m.get("max_rate_per_hour", DEFAULT_INDUCT_RATE[kind]), path=path,
                    field=f + ".max_rate_per_hour", lo=0, lo_open=True, hi=1e6,
                    expected="items per hour, > 0 and at most 1,000,000")
        iid = m.get("id", f"I{i + 1}")
        if isinstance(iid, bool) or not isinstance(iid, (str, int, np.integer)):
            # (None or 1.5 became the id "None" / "1.5"; a TOML integer id reads as its digits)
            raise InputError(f"bad induct id {iid!r}", path=path, field=f + ".id",
                             expected="a unique non-empty string")
        out.append(Induct(str(iid), pos, rate, kind))
    return tuple(out)


def generate_loop_plan(chutes: ChuteTable, n_destinations: int, *, name="generated",
                       strategy="least_loaded", max_recirculation=3, busy=0.1,
                       seed=0) -> SortPlan:
    """A sort plan for a generated loop: destination codes ``D0001...``, the busiest
    ``busy`` share of destinations get two chutes, the rest one; overflow chutes are
    shared; reject chutes by reason (no-read / unknown / late to the first, recirculation
    and no chute to the second, not sortable to the third, as available).

    Parameters
    ----------
    chutes : ChuteTable
    n_destinations : int
    seed : int
        Seeds the order in which destination chutes are dealt out.

    Returns
    -------
    SortPlan
    """
    if (not isinstance(chutes, ChuteTable) and isinstance(chutes, (list, tuple))
            and all(isinstance(c, Chute) for c in chutes)):
        chutes = ChuteTable(list(chutes))
    if not isinstance(chutes, ChuteTable):
        raise TypeError(f"chutes is a {type(chutes).__name__}: expected a ChuteTable "
                        "(a LoopSorter's .chutes)")
    dest_chutes = [c.id for c in chutes if c.kind == "destination"]
    overflow = tuple(c.id for c in chutes if c.kind == "overflow")
    rejects = [c.id for c in chutes if c.kind == "reject"]
    if not rejects:
        raise InputError("no reject chute", field="chute.kind", expected="at least one reject chute")
    if (isinstance(n_destinations, bool) or not isinstance(n_destinations, (int, np.integer))
            or not 1 <= n_destinations <= len(dest_chutes)):      # (True read as 1)
        raise InputError(f"bad n_destinations {n_destinations!r}", field="loop.n_destinations",
                         expected=f"an integer from 1 to {len(dest_chutes)} (the destination chutes)")
    # a numpy integer (or 2.0) is a count like any other; SortPlan wants a plain int
    max_recirculation = _num(max_recirculation, field="max_recirculation", lo=0, hi=1000,
                             integer=True, expected="an integer from 0 to 1000")
    busy = _num(busy, field="busy", lo=0, hi=1,
                expected="the share of destinations with two chutes, from 0 to 1")
    if seed is not None:      # (None: fresh entropy, as numpy's default_rng)
        seed = _num(seed, field="seed", lo=0, integer=True, expected="an integer >= 0")
    rng = np.random.default_rng(seed)
    order = [dest_chutes[i] for i in rng.permutation(len(dest_chutes))]
    n_busy = int(round(busy * n_destinations))
    routes = {}
    k = 0
    spare = len(dest_chutes) - n_destinations
    for j in range(n_destinations):
        n = 2 if j < n_busy and spare > 0 else 1
        spare -= n - 1
        routes[f"D{j + 1:04d}"] = tuple(order[k:k + n])
        k += n
    r = lambda i: rejects[min(i, len(rejects) - 1)]  # noqa: E731
    reject = {"no_read": r(0), "unknown_destination": r(0), "late": r(0),
              "max_recirculation": r(1), "no_chute_available": r(1), "not_sortable": r(2)}
    return SortPlan(routes=routes, reject=reject, overflow=overflow, strategy=strategy,
                    max_recirculation=max_recirculation, name=name).validate(chutes)

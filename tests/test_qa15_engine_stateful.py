"""QA session 15: a hypothesis state machine drives the embedded chute engine (``sorter.Sorter``)
as a warehouse control system (WCS) does, against a small model written here from the README's
"Chute assignment" section and the :class:`sorter.Sorter` docstrings (not from the compiled code).

What a run does, in any order: scans one at a time (awkward Python values included: NumPy
strings and integers, bools, huge and negative counts, NaN, inf, text counts, bytes and ints
as destinations, unhashable junk), batches through ``destination_ids`` + ``assign_many`` (ids
interned now, or interned before a plan switch and used after it: parcels in flight; counts and
flags as scalars, typed arrays, float arrays with NaN/inf, text and object arrays), chute
state changes (open, full, container_change, blocked, disabled, by label, by the text of an int
label, by a NumPy integer), items discharged (containers fill, turn full at capacity, saturate
at 2**31 - 1), container changes, counted rejects by reason (``late``), plan switches between
waves (a whole ``SortPlan``, a mapping, a plan CSV, a ``PreparedPlan`` prepared now or earlier,
and refused switches that must leave the old plan in force), snapshots through
``state_dict`` -> JSON -> ``from_state``, pickle and deepcopy, and rewinds to an older
snapshot. Every engine made along the way keeps running in lockstep with the first, so a
restored engine must continue identically, decision by decision.

Checked at every step: each decision equals the model's, names a chute of the table and a
reason; no call on the per-parcel path raises; ``counters()`` (by reason; per chute assigned,
discharged, fill, state), ``chute_state``, ``chute_fill``, ``plan_name``, the compiled plan's
settings, the interned destination ids and the round-robin positions in ``state_dict()`` equal
the model's.

Problems found (input -> what went wrong), each pinned by a test at the end of this file that
failed before its fix in ``sorter.engine.Sorter.assign_many``:

* ``assign_many(ids, recirculation=[2.5, "0"], sortable=[0.0, "yes"])`` (a list of telegram
  values of mixed types) -> NumPy made text of the list (``"2.5"``, ``"0.0"``): the parcel
  past its lap limit was sorted ``ok`` (``"2.5"`` read as 0 laps) and the unsortable one went
  to its destination chute, where ``assign`` rejects both.
* ``assign_many(ids, recirculation=np.array([np.inf], dtype=np.float16))`` -> ``ok`` with
  RuntimeWarnings (the clamp to 2**30 gave +inf again in float16, cast to a negative count),
  where +inf laps are over any limit.
"""
from __future__ import annotations

import copy
import json
import math
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, initialize, invariant,
                                 precondition, rule)

from sorter import Sorter
from sorter.constants import REASONS, REJECT_REASONS, STATES, STRATEGIES, Decision
from sorter.engine import PreparedPlan
from sorter.errors import InputError
from sorter.plan import Chute, SortPlan

FILL_TOP = 2**31 - 1        # a container's fill stops here (engine comment: never wraps)
BIG = 2**30                 # the largest item count one discharged() call takes


# =========================================================================== the model

class Model:
    """The README's rules, one parcel at a time. Chutes by label; destinations by code."""

    def __init__(self, chutes, plan: SortPlan):
        self.cap = {c.id: c.capacity for c in chutes}
        self.state = {c.id: "open" for c in chutes}
        self.fill = {c.id: 0 for c in chutes}
        self.assigned = {c.id: 0 for c in chutes}
        self.discharged_n = {c.id: 0 for c in chutes}
        self.by_reason = {r: 0 for r in REASONS}
        self.ids = {}                   # destination code -> interned id (never changes)
        self.put(plan)

    # -- plan --------------------------------------------------------------------------
    def put(self, plan: SortPlan):
        self.routes = {d: list(r) for d, r in plan.routes.items()}
        self.reject_of = dict(plan.reject)
        self.overflow = list(plan.overflow)
        self.strategy = plan.strategy
        self.max_rec = int(plan.max_recirculation)
        self.name = plan.name
        self.cursor = {}                # round-robin positions restart with every plan
        for d in plan.routes:           # codes interned in plan order, first seen first
            self.ids.setdefault(d, len(self.ids))
        self.n_dest = len(self.ids)     # ids interned later are unknown to this plan

    def code_of(self, dest_id):
        for code, i in self.ids.items():
            if i == dest_id and i < self.n_dest:
                return code
        return object()                 # an id no code of the plan in force has

    # -- decisions ---------------------------------------------------------------------
    def is_open(self, c):
        return self.state[c] == "open"

    def reject_chute(self, reason):
        own = self.reject_of[reason]
        if self.is_open(own):
            return own
        for r in REJECT_REASONS:
            if self.is_open(self.reject_of[r]):
                return self.reject_of[r]
        return own

    def pick(self, dest):
        route = self.routes[dest]
        open_ = [(i, c) for i, c in enumerate(route) if self.is_open(c)]
        if not open_:
            return None
        if self.strategy == "fill_first":
            return open_[0][1]
        if self.strategy == "least_loaded":
            return min(open_, key=lambda ic: (self.fill[ic[1]], ic[0]))[1]
        start = self.cursor.get(dest, 0)         # round robin: first open from the cursor on
        i = min((i for i, _ in open_), key=lambda i: (i - start) % len(route))
        self.cursor[dest] = (i + 1) % len(route)
        return route[i]

    def assign(self, dest, rc, sortable):
        """``dest``: a code (str), None/"" (no-read) or anything else (unknown); ``rc`` and
        ``sortable`` as already read (int >= 0, bool)."""
        chute = None
        if not sortable:
            reason = "not_sortable"
        elif dest is None or (isinstance(dest, str) and dest == ""):
            reason = "no_read"
        elif rc > self.max_rec:
            reason = "max_recirculation"
        elif not isinstance(dest, str) or dest not in self.routes:
            reason = "unknown_destination"
        else:
            chute = self.pick(dest)
            if chute is not None:
                reason = "ok"
            else:
                chute = next((c for c in self.overflow if self.is_open(c)), None)
                reason = "overflow" if chute is not None else "no_chute_available"
        if chute is None:
            chute = self.reject_chute(reason)
        self.by_reason[reason] += 1
        self.assigned[chute] += 1
        return Decision(chute, reason)

    def reject(self, reason):
        chute = self.reject_chute(reason)
        self.by_reason[reason] += 1
        self.assigned[chute] += 1
        return Decision(chute, reason)

    # -- chute events ------------------------------------------------------------------
    def discharged(self, c, n):
        self.fill[c] = min(self.fill[c] + n, FILL_TOP)
        self.discharged_n[c] += n
        if self.fill[c] >= self.cap[c] and self.state[c] == "open":
            self.state[c] = "full"

    def container_changed(self, c):
        self.fill[c] = 0
        self.state[c] = "open"


# =========================================================================== the floor

# Labels as a WCS names them: text, ints, text that looks like an int, unicode. Small
# capacities so containers fill within a run; reject chutes fill too.
CHUTES = [Chute("A", capacity=2), Chute("B", capacity=3), Chute(7, capacity=1),
          Chute("07", capacity=2), Chute("C-ü", capacity=5),
          Chute("OV", "overflow", 2), Chute(12, "overflow", 1),
          Chute("R1", "reject", 2), Chute("R2", "reject", 1), Chute(99, "reject", 3)]
LABELS = [c.id for c in CHUTES]
SORTING = [c.id for c in CHUTES if c.kind != "reject"]
REJECTS = [c.id for c in CHUTES if c.kind == "reject"]
CODES = ["10115", "20095", "7", "07", "X", "Zürich", " 9", "a b"]
CSV_CODES = ["10115", "20095", "7", "07", "X", "Zürich"]     # (a CSV strips the spaces)


@st.composite
def routes_st(draw, codes=CODES):
    dests = draw(st.lists(st.sampled_from(codes), min_size=1, max_size=5, unique=True))
    return {d: tuple(draw(st.lists(st.sampled_from(SORTING), min_size=1, max_size=4,
                                   unique=True))) for d in dests}


@st.composite
def plans_st(draw):
    return SortPlan(routes=draw(routes_st()),
                    reject={r: draw(st.sampled_from(REJECTS)) for r in REJECT_REASONS},
                    overflow=tuple(draw(st.lists(st.sampled_from(SORTING), max_size=3,
                                                 unique=True))),
                    strategy=draw(st.sampled_from(STRATEGIES)),
                    max_recirculation=draw(st.integers(0, 3)),
                    name=draw(st.sampled_from(["wave-1", "wave-2", "late wave"])))


# Awkward values with what the README and docstrings say they mean.
#  destination -> what the model is handed (a code, None for a no-read, or a non-code)
def dest_forms(code):
    forms = [(code, code), (np.str_(code), code), (code.encode(), b"not a code"),
             (bytearray(code.encode()), b"not a code"), (code + " ", b"not a code")]
    if code.strip().isdigit():
        forms += [(int(code), b"not a code"), (np.int64(int(code)), b"not a code"),
                  (float(code), b"not a code")]
    return forms


NO_READS = [None, "", np.str_("")]
JUNK_DESTS = [float("nan"), True, False, b"", [], ["X"], {"X": 1}, object(), 2**80, -1]

#  recirculation -> count (MAX: past any limit); text of a number reads as it;
#  negative, NaN, None, junk text -> 0
MAX = 10**9
COUNTS = [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (-1, 0), (-(2**80), 0), (2**80, MAX),
          (True, 1), (False, 0), (np.int8(2), 2), (np.uint8(3), 3), (np.int64(-7), 0),
          (np.uint64(2**64 - 1), MAX), (float("nan"), 0), (float("inf"), MAX),
          (float("-inf"), 0), (2.0, 2), (3.7, 3), (np.float32(1.0), 1), (np.float64("nan"), 0),
          ("2", 2), (" 3 ", 3), (b"1", 1), ("lots", 0), (None, 0), (np.array(4), 4),
          ("2.0", 2), (" 1.5 ", 1), ("inf", MAX), ("nan", 0), ("-2.0", 0)]
#  sortable -> flag: "0", "false", "no" (any case, spaces) not sortable, other text is; others
#  by truth value (None, 0 not sortable; NaN sortable)
FLAGS = [(True, True), (False, False), (1, True), (0, False), (np.bool_(False), False),
         (np.bool_(True), True), (np.int64(0), False), (np.int8(-1), True), (None, False),
         (float("nan"), True), ("0", False), ("no", False), (" FALSE ", False), ("No", False),
         ("", True), ("1", True), ("yes", True), (b"0", False), (b"no", False), (b"1", True),
         (0.0, False), (2.5, True)]


def _toml_value(v):
    return json.dumps(v, ensure_ascii=False) if isinstance(v, str) else str(v)


def _write_files(folder: Path, plan: SortPlan):
    """``plan`` as a plan CSV and a chute TOML (the README's file forms) in ``folder``."""
    csv_path, toml_path = folder / "plan.csv", folder / "chutes.toml"
    csv_path.write_text("destination,chutes\n" + "".join(
        f"{d},{';'.join(str(c) for c in r)}\n" for d, r in plan.routes.items()), encoding="utf-8")
    lines = ["[plan]", f"name = {_toml_value(plan.name)}",
             f"strategy = {_toml_value(plan.strategy)}",
             f"max_recirculation = {plan.max_recirculation}",
             "overflow = [" + ", ".join(_toml_value(c) for c in plan.overflow) + "]", "",
             "[reject]"] + [f"{r} = {_toml_value(c)}" for r, c in plan.reject.items()]
    for c in CHUTES:
        lines += ["", "[[chute]]", f"id = {_toml_value(c.id)}", f"kind = {_toml_value(c.kind)}",
                  f"capacity = {c.capacity}"]
    toml_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path, toml_path


def _json(x):
    return json.loads(json.dumps(x))


class EngineMachine(RuleBasedStateMachine):
    """A WCS's call sequences against :class:`Model`; every engine made from a snapshot keeps
    running beside the first and must answer identically."""

    snapshots = Bundle("snapshots")

    # -- set-up --------------------------------------------------------------------------
    @initialize(plan=plans_st(), override=st.sampled_from([None, "strategy", "max", "both"]),
                strategy=st.sampled_from(STRATEGIES), max_rec=st.integers(0, 3),
                np_max=st.booleans(), source=st.sampled_from(["objects", "dicts", "files"]))
    def start(self, plan, override, strategy, max_rec, np_max, source):
        self.tmp = tempfile.TemporaryDirectory(prefix="qa15_")
        kw = {}
        if override in ("strategy", "both"):
            kw["strategy"] = strategy
        if override in ("max", "both"):
            kw["max_recirculation"] = np.int64(max_rec) if np_max else max_rec
        if source == "files":           # a plan CSV and a chute TOML, overrides as keywords
            plan.routes = {d.strip(): r for d, r in plan.routes.items()}
            csv_path, toml_path = _write_files(Path(self.tmp.name), plan)
            s = Sorter.from_files(csv_path, toml_path, **kw)
        else:
            s = Sorter(plan, CHUTES if source == "objects" else [c.as_dict() for c in CHUTES],
                       **kw)
        self.engines = [s]
        effective = SortPlan(routes=plan.routes, reject=plan.reject, overflow=plan.overflow,
                             strategy=kw.get("strategy", plan.strategy),
                             max_recirculation=int(kw.get("max_recirculation",
                                                          plan.max_recirculation)),
                             name=plan.name)
        self.m = Model(CHUTES, effective)
        self.n = 0
        self.in_flight = None           # (codes, ids) interned before the latest switch
        self.prepared = None            # (routes, [PreparedPlan per engine]) not yet in force

    def teardown(self):
        tmp = getattr(self, "tmp", None)
        if tmp is not None:
            tmp.cleanup()

    # -- helpers -------------------------------------------------------------------------
    def each(self, fn):
        """``fn(engine)`` for every engine; all answers must be equal. Returns the first."""
        out = [fn(s) for s in self.engines]
        for o in out[1:]:
            assert _same(o, out[0]), (o, out[0])
        return out[0]

    def expect(self, got, want):
        assert isinstance(got, Decision), got
        assert got.chute in LABELS and got.reason in REASONS
        assert got == want, (got, want)
        assert type(got.chute) is type(want.chute)       # 7 stays an int, "07" text

    # -- scans ---------------------------------------------------------------------------
    @rule(code=st.sampled_from(CODES), rc=st.integers(0, 5), sortable=st.booleans())
    def scan(self, code, rc, sortable):
        got = self.each(lambda s: s.assign(code, rc, sortable))
        self.expect(got, self.m.assign(code, rc, sortable))
        self.n += 1

    @rule(code=st.sampled_from(CODES), data=st.data())
    def scan_awkward(self, code, data):
        """One scan with the forms a WCS may hand over: NumPy strings, bytes, ints as codes;
        NumPy, bool, huge, NaN, inf and text counts; flags of every kind."""
        dest, as_code = data.draw(st.sampled_from(dest_forms(code) + [(x, x) for x in NO_READS]
                                                  + [(x, b"not a code") for x in JUNK_DESTS]))
        rc, count = data.draw(st.sampled_from(COUNTS))
        flag, sortable = data.draw(st.sampled_from(FLAGS))
        got = self.each(lambda s: s.assign(dest, rc, flag))
        self.expect(got, self.m.assign(as_code, count, sortable))
        self.n += 1

    @rule(n=st.integers(1, 4))
    def recirculating_parcel(self, n):
        """One parcel going round: scanned with 0, 1, ... laps up to and past the limit."""
        code = next(iter(self.m.routes))
        for rc in range(self.m.max_rec + n):
            got = self.each(lambda s: s.assign(code, rc))
            self.expect(got, self.m.assign(code, rc, True))
            self.n += 1

    # -- batches -------------------------------------------------------------------------
    def _batch(self, codes, ids, data):
        k = len(codes)
        rc_form = data.draw(st.sampled_from(["none", "scalar", "np_scalar", "int8", "uint64",
                                             "int64", "float", "object", "text", "bool"]))
        counts = data.draw(st.lists(st.integers(-2, 5), min_size=k, max_size=k))
        kw = {}
        if rc_form == "none":
            counts = [0] * k
        elif rc_form in ("scalar", "np_scalar"):
            v = data.draw(st.sampled_from(COUNTS))
            kw["recirculation"] = v[0] if rc_form == "scalar" else np.int16(min(v[1], 30000))
            counts = [v[1] if rc_form == "scalar" else min(v[1], 30000)] * k
        elif rc_form == "float":
            special = data.draw(st.lists(st.sampled_from([None, "nan", "inf", "-inf", "frac"]),
                                         min_size=k, max_size=k))
            vals, counts2 = [], []
            for c, sp in zip(counts, special):
                v = {None: float(c), "nan": math.nan, "inf": math.inf, "-inf": -math.inf,
                     "frac": c + 0.75}[sp]
                vals.append(v)
                counts2.append({None: max(c, 0), "nan": 0, "inf": MAX, "-inf": 0,
                                "frac": max(c, 0) if c >= 0 else 0}[sp])
            fdt = data.draw(st.sampled_from([np.float64, np.float32, np.float16]))
            kw["recirculation"], counts = np.array(vals, dtype=fdt), counts2
        elif rc_form == "object":
            picks = data.draw(st.lists(st.sampled_from(COUNTS), min_size=k, max_size=k))
            kw["recirculation"] = [p[0] for p in picks] if k else []
            counts = [p[1] for p in picks]
            if k and all(isinstance(p[0], (int, float)) and not isinstance(p[0], bool)
                         and abs(p[0]) < 2**62 for p in picks):
                counts = None           # a plain numeric list: the float/int rules above
        elif rc_form == "text":
            kw["recirculation"] = np.array([str(c) for c in counts]) if k else np.array([], "U1")
            counts = [max(c, 0) for c in counts]
        elif rc_form == "bool":
            b = [c > 2 for c in counts]
            kw["recirculation"], counts = np.array(b, dtype=bool), [int(x) for x in b]
        else:
            dt = {"int8": np.int8, "uint64": np.uint64, "int64": np.int64}[rc_form]
            if dt is np.uint64:
                counts = [abs(c) for c in counts]
            kw["recirculation"] = np.array(counts, dtype=dt)
            counts = [max(c, 0) for c in counts]
        if counts is None:
            vals = kw["recirculation"]
            counts = [0 if (isinstance(v, float) and math.isnan(v)) else
                      MAX if v >= MAX else max(int(v), 0) for v in vals]
        sf_form = data.draw(st.sampled_from(["none", "bool", "int", "text", "object", "float"]))
        flags = data.draw(st.lists(st.booleans(), min_size=k, max_size=k))
        if sf_form == "none":
            flags = [True] * k
        elif sf_form == "bool":
            kw["sortable"] = np.array(flags, dtype=bool)
        elif sf_form == "int":
            kw["sortable"] = np.array([int(f) * 3 - 1 if f else 0 for f in flags], dtype=np.int32)
        elif sf_form == "float":
            kw["sortable"] = np.array([math.nan if f else 0.0 for f in flags])
        elif sf_form == "text":
            kw["sortable"] = np.array(["yes" if f else " No" for f in flags]) if k else \
                np.array([], "U1")
        else:
            picks = [data.draw(st.sampled_from([x for x in FLAGS if x[1] == f])) for f in flags]
            kw["sortable"] = [p[0] for p in picks]
        layout = data.draw(st.sampled_from(["as is", "read-only", "strided", "big-endian",
                                            "list"]))
        if layout == "read-only":       # (arrays from joblib/dask are read-only)
            ids = ids.copy()
            ids.flags.writeable = False
        elif layout == "strided":
            ids = np.repeat(ids, 2)[::2]
        elif layout == "big-endian":
            ids = ids.astype(">i4")
        elif layout == "list":
            ids = ids.tolist()
        got = self.each(lambda s: s.assign_many(ids, **kw))
        chutes, reasons = got
        assert chutes.dtype == np.int32 and reasons.dtype == np.int8
        assert chutes.shape == reasons.shape == (k,)
        labels = self.engines[0].chute_ids
        want = [self.m.assign(c, r, f) for c, r, f in zip(codes, counts, flags)]
        assert [Decision(labels[c], REASONS[r]) for c, r in zip(chutes, reasons)] == want
        self.n += k

    @rule(codes=st.lists(st.sampled_from(CODES + ["", "nope"]) | st.none(), max_size=8),
          as_array=st.booleans(), awkward=st.booleans(), data=st.data())
    def batch(self, codes, as_array, awkward, data):
        values = list(codes)
        if awkward:                     # NumPy text, bytes, ints, NaN, junk: read as assign()
            pairs = [data.draw(st.sampled_from(
                dest_forms(c) + [(x, x) for x in NO_READS]
                + [(x, b"not a code") for x in JUNK_DESTS])) if c else (c, c) for c in codes]
            values = [v for v, _ in pairs]
            codes = [c for _, c in pairs]
        if as_array:
            src = np.empty(len(values), dtype=object)
            for i, v in enumerate(values):      # (element by element: a list stays one value)
                src[i] = v
        else:
            src = values
        ids = self.each(lambda s: s.destination_ids(src))
        assert ids.dtype == np.int32
        assert ids.tolist() == [-2 if c is None or (isinstance(c, str) and c == "") else
                                self.m.ids.get(c, -1) if isinstance(c, str) else -1
                                for c in codes]
        codes = [None if isinstance(c, str) and c == "" else c for c in codes]
        self.in_flight = (codes, ids)
        self._batch(codes, ids, data)

    @precondition(lambda self: self.in_flight is not None)
    @rule(data=st.data())
    def batch_in_flight(self, data):
        """Ids interned before the latest plan switch: a code unknown then stays unknown, a
        known code is decided by the plan in force now."""
        codes, ids = self.in_flight
        as_code = []
        for c, i in zip(codes, ids.tolist()):
            as_code.append(None if i == -2 else b"unknown" if i == -1 else self.m.code_of(i))
        self._batch(as_code, ids, data)

    @rule(ids=st.lists(st.sampled_from([-3, -2, -1, 0, 1, 2, 5, 40, 2**31 - 1, 2**40, -2**40]),
                       max_size=5),
          dtype=st.sampled_from([np.int64, np.int32, np.uint32, np.int16, object]))
    def batch_raw_ids(self, ids, dtype):
        if dtype in (np.uint32, np.int16):
            ids = [i for i in ids if 0 <= i < 2**15]
        elif dtype is np.int32:
            ids = [i for i in ids if -2**31 <= i < 2**31]
        arr = np.array(ids, dtype=np.int64 if dtype is object else dtype)
        if dtype is object:
            arr = arr.tolist()
        as_code = [None if i == -2 else self.m.code_of(i) if i >= 0 else b"unknown" for i in ids]
        chutes, reasons = self.each(lambda s: s.assign_many(arr))
        labels = self.engines[0].chute_ids
        want = [self.m.assign(c, 0, True) for c in as_code]
        assert [Decision(labels[c], REASONS[r]) for c, r in zip(chutes, reasons)] == want
        self.n += len(ids)

    # -- rejects ---------------------------------------------------------------------------
    @rule(reason=st.sampled_from(REJECT_REASONS), name=st.sampled_from(["reject",
                                                                        "reject_decision"]),
          np_text=st.booleans())
    def reject(self, reason, name, np_text):
        r = np.str_(reason) if np_text else reason
        got = self.each(lambda s: getattr(s, name)(r))
        self.expect(got, self.m.reject(reason))
        self.n += 1

    @rule(reason=st.sampled_from(["ok", "overflow", "LATE", b"late", None, "", 7]))
    def reject_refused(self, reason):
        for s in self.engines:
            with pytest.raises(InputError):
                s.reject(reason)

    # -- chute events ------------------------------------------------------------------------
    def _label_forms(self, chute):
        forms = [chute]
        if isinstance(chute, int):
            forms += [str(chute), np.int64(chute)]
        else:
            forms += [np.str_(chute)]
        return forms

    @rule(chute=st.sampled_from(LABELS), state=st.sampled_from(STATES), data=st.data())
    def set_state(self, chute, state, data):
        label = data.draw(st.sampled_from(self._label_forms(chute)))
        st_ = data.draw(st.sampled_from([state, np.str_(state)]))
        self.each(lambda s: s.set_state(label, st_))
        self.m.state[chute] = state

    @rule(chute=st.sampled_from(REJECTS + ["A", "OV"]),
          state=st.sampled_from(["full", "blocked", "disabled", "container_change"]))
    def close_reject_or_overflow(self, chute, state):
        self.each(lambda s: s.set_state(chute, state))
        self.m.state[chute] = state

    @rule(chute=st.sampled_from(LABELS),
          n=st.sampled_from([0, 1, 1, 2, 3, np.int64(1), np.uint8(2), BIG]), data=st.data())
    def discharged(self, chute, n, data):
        label = data.draw(st.sampled_from(self._label_forms(chute)))
        self.each(lambda s: s.discharged(label, n))
        self.m.discharged(chute, int(n))

    @rule(chute=st.sampled_from(LABELS), data=st.data())
    def container_changed(self, chute, data):
        label = data.draw(st.sampled_from(self._label_forms(chute)))
        self.each(lambda s: s.container_changed(label))
        self.m.container_changed(chute)

    @rule(call=st.sampled_from(["set_state", "discharged", "container_changed"]),
          bad=st.sampled_from([("Z", "open", 1), ("A", "closed", 1), ("A", "OPEN", 1),
                               ("A", None, 1), ("A", "open", -1), ("A", "open", True),
                               ("A", "open", 2.0), ("A", "open", 2**31), (b"A", "open", 1),
                               (None, "open", 1), ("7 ", "open", 1), ("a", "open", 1),
                               ("A", "open", None), ("A", "open", np.float64(1))]))
    def chute_event_refused(self, call, bad):
        chute, state, n = bad
        ok_call = {"set_state": state in STATES, "discharged": isinstance(n, int)
                   and not isinstance(n, bool) and 0 <= n <= BIG,
                   "container_changed": True}[call]
        if chute in LABELS and ok_call:
            return
        before = [_json(s.state_dict()) for s in self.engines]
        for s in self.engines:
            args = {"set_state": (chute, state), "discharged": (chute, n),
                    "container_changed": (chute,)}[call]
            with pytest.raises(InputError):
                getattr(s, call)(*args)
        assert [_json(s.state_dict()) for s in self.engines] == before

    # -- plan switches -------------------------------------------------------------------------
    def _switched(self, plan):
        self.m.put(plan)

    @rule(plan=plans_st())
    def switch_whole_plan(self, plan):
        self.each(lambda s: s.switch_plan(plan))
        self._switched(plan)

    @rule(routes=routes_st())
    def switch_routes(self, routes):
        self.each(lambda s: s.switch_plan(dict(routes)))
        cur = self.m
        self._switched(SortPlan(routes=routes, reject=cur.reject_of, overflow=cur.overflow,
                                strategy=cur.strategy, max_recirculation=cur.max_rec,
                                name=cur.name))

    @rule(routes=routes_st(CSV_CODES), stem=st.sampled_from(["wave2", "wave-3", "07"]),
          as_path=st.booleans())
    def switch_csv(self, routes, stem, as_path):
        path = Path(self.tmp.name) / f"{stem}.csv"
        path.write_text("destination,chutes\n# a comment line\n" + "".join(
            f"{d},{';'.join(str(c) for c in r)}\n" for d, r in routes.items()), encoding="utf-8")
        self.each(lambda s: s.switch_plan(path if as_path else str(path)))
        cur = self.m
        self._switched(SortPlan(routes=routes, reject=cur.reject_of, overflow=cur.overflow,
                                strategy=cur.strategy, max_recirculation=cur.max_rec,
                                name=stem))

    @rule(routes=routes_st())
    def prepare(self, routes):
        """A plan read and checked in a worker thread while scans go on; put in force later."""
        prepared = [s.prepare_plan(dict(routes)) for s in self.engines]
        assert all(isinstance(p, PreparedPlan) for p in prepared)
        self.prepared = (routes, prepared)

    @precondition(lambda self: self.prepared is not None)
    @rule(again=st.booleans())
    def switch_prepared(self, again):
        """Routes from the prepare; settings and name from the plan in force at the switch
        (a mapping has none of its own)."""
        routes, prepared = self.prepared
        for s, p in zip(self.engines, prepared):
            s.switch_plan(p)
        cur = self.m
        self._switched(SortPlan(routes=routes, reject=cur.reject_of, overflow=cur.overflow,
                                strategy=cur.strategy, max_recirculation=cur.max_rec,
                                name=cur.name))
        if again:                       # the same PreparedPlan may be put in force again later
            self.prepared = (routes, prepared)
        else:
            self.prepared = None

    @rule(bad=st.sampled_from(["empty", "unknown chute", "reject in route", "twice",
                               "no chutes", "blank code", "list", "foreign prepared"]))
    def switch_refused(self, bad):
        """A switch that does not fit the chute table: refused, the old plan stays in force."""
        routes = {"empty": {}, "unknown chute": {"X": ("A", "nope")},
                  "reject in route": {"X": ("R1",)}, "twice": {"X": ("A", "A")},
                  "no chutes": {"X": ()}, "blank code": {" ": ("A",)},
                  "list": [("X", ("A",))], "foreign prepared": None}[bad]
        before = [_json(s.state_dict()) for s in self.engines]
        for s in self.engines:
            if bad == "foreign prepared":
                other = Sorter(SortPlan(routes={"X": ("A",)}, reject={r: "R1" for r in
                                                                      REJECT_REASONS}), CHUTES)
                arg, exc = other.prepare_plan({"X": ("B",)}), ValueError
            else:
                arg, exc = routes, (TypeError if bad == "list" else ValueError)
            with pytest.raises(exc):
                s.switch_plan(arg)
        assert [_json(s.state_dict()) for s in self.engines] == before

    # -- snapshots -------------------------------------------------------------------------------
    @rule(target=snapshots)
    def snapshot(self):
        return (_json(self.engines[0].state_dict()), copy.deepcopy(self.m), self.n)

    @rule(how=st.sampled_from(["json", "pickle", "deepcopy", "copy"]))
    def restart_beside(self, how):
        """A WCS restart: a new engine from the running one's state keeps running beside it."""
        s = self.engines[0]
        if how == "json":
            twin = Sorter.from_state(_json(s.state_dict()))
        elif how == "pickle":
            twin = pickle.loads(pickle.dumps(s))
        elif how == "deepcopy":
            twin = copy.deepcopy(s)
        else:
            twin = copy.copy(s)
        assert twin is not s
        assert _json(twin.state_dict()) == _json(s.state_dict())
        self.engines = (self.engines + [twin])[-3:]       # at most three in lockstep
        self.prepared = None            # (a PreparedPlan belongs to the engine that made it)

    @rule(snap=snapshots)
    def rewind(self, snap):
        """Back to an older snapshot (the WCS restarts from its last saved state): the
        restored engine answers as the model did at that point."""
        state, model, n = snap
        self.engines = [Sorter.from_state(copy.deepcopy(state))]
        self.m = copy.deepcopy(model)
        self.n = n
        self.prepared = None
        self.in_flight = None

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def agrees_with_model(self):
        if not hasattr(self, "engines"):
            return
        m = self.m
        for s in self.engines:
            c = s.counters()
            assert c["by_reason"] == m.by_reason
            assert sum(c["by_reason"].values()) == self.n
            assert set(c["by_chute"]) == set(LABELS)
            for cid in LABELS:
                row = c["by_chute"][cid]
                assert row == {"assigned": m.assigned[cid], "discharged": m.discharged_n[cid],
                               "fill": m.fill[cid], "state": m.state[cid]}, cid
                assert s.chute_state(cid) == m.state[cid]
                assert s.chute_fill(cid) == m.fill[cid]
            assert sum(r["assigned"] for r in c["by_chute"].values()) == self.n
            assert s.chute_ids == LABELS
            assert s.plan_name == m.name == s.plan_in_force.name
            assert s.sort_plan.strategy == m.strategy
            assert STRATEGIES[s.plan_in_force.strategy] == m.strategy
            assert s.plan_in_force.max_recirculation == m.max_rec
            assert {d: list(r) for d, r in s.sort_plan.routes.items()} == m.routes
            sd = s.state_dict()
            assert sd["destinations"] == list(m.ids)
            assert sd["rr_cursor"] == [m.cursor.get(d, 0) for d in list(m.ids)[:m.n_dest]]


def _same(a, b):
    if isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], np.ndarray):
        return all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b) and a.dtype == b.dtype
    return a == b


TestEngineMachine = EngineMachine.TestCase
TestEngineMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                      derandomize=True, database=None,
                                      suppress_health_check=list(HealthCheck))


# =========================================================================== found by the machine

def _one_dest(max_recirculation=1):
    return Sorter(SortPlan(routes={"X": ("A",)}, reject={r: "R1" for r in REJECT_REASONS},
                           max_recirculation=max_recirculation), CHUTES)


@pytest.mark.parametrize("flags, counts", [
    ([0.0, "yes"], [0, 0]),             # NumPy made ["0.0", "yes"]: 0.0 read as text, sortable
    ([np.float64(0), "1"], [0, 0]),
    ([True, True], [2.5, "0"]),         # NumPy made ["2.5", "0"]: 2.5 laps read as 0
    ([True, True], [3.0, "x"]),
])
def test_a_batch_list_mixing_numbers_and_text_reads_each_value_as_assign_does(flags, counts):
    """``assign_many(ids, recirculation=[2.5, "0"], sortable=[0.0, "yes"])``: a list of
    telegram values of mixed types. NumPy turns such a list into text (``"2.5"``, ``"0.0"``),
    so a parcel past its lap limit was sorted (``"2.5"`` counted 0 laps) and an unsortable
    one (flag 0.0) went to its destination chute; ``assign`` reads them right."""
    one, batch = _one_dest(), _one_dest()
    want = [one.assign("X", r, f) for r, f in zip(counts, flags)]
    chutes, reasons = batch.assign_many(batch.destination_ids(["X"] * len(flags)),
                                        recirculation=counts, sortable=flags)
    got = [Decision(batch.chute_ids[c], REASONS[r]) for c, r in zip(chutes, reasons)]
    assert got == want
    assert batch.counters() == one.counters()


@pytest.mark.filterwarnings("error")    # (the cast of +inf also warned)
def test_a_float16_recirculation_array_reads_inf_as_over_the_limit():
    """``recirculation=np.array([np.inf], dtype=np.float16)``: +inf laps are over any limit
    (as ``assign(..., np.float16(np.inf))`` says), but float16 holds no 2**30: the clamp gave
    +inf again, cast to int32 as a negative count, and the parcel was sorted ``ok``."""
    s = _one_dest()
    rc = np.array([np.inf, 60000, 1, -np.inf, np.nan], dtype=np.float16)
    chutes, reasons = s.assign_many(s.destination_ids(["X"] * 5), recirculation=rc)
    assert [REASONS[r] for r in reasons] == [s.assign("X", x).reason for x in rc] == \
        ["max_recirculation", "max_recirculation", "ok", "ok", "ok"]


def test_a_batch_is_decided_by_one_plan_while_another_thread_switches():
    """"A plan switch from another thread is atomic": a batch decided while the plan changes
    under it goes wholly by the old plan or wholly by the new one, never a mix."""
    import threading
    chutes = [Chute("A", capacity=10**9), Chute("B", capacity=10**9), Chute("R", "reject")]
    reject = {r: "R" for r in REJECT_REASONS}
    s = Sorter(SortPlan(routes={"X": ("A",)}, reject=reject), chutes)
    plans = [s.prepare_plan({"X": ("B",)}), s.prepare_plan({"X": ("A",)})]
    ids = s.destination_ids(["X"] * 200_000)
    stop = threading.Event()

    def switcher():
        k = 0
        while not stop.is_set():
            s.switch_plan(plans[k % 2])
            k += 1

    t = threading.Thread(target=switcher)
    t.start()
    try:
        for _ in range(20):
            chutes_, reasons = s.assign_many(ids)
            assert set(reasons.tolist()) == {0}
            assert len(set(chutes_.tolist())) == 1      # one plan per batch
    finally:
        stop.set()
        t.join()
    assert s.counters()["by_reason"]["ok"] == 20 * 200_000

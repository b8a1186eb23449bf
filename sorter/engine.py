"""The :class:`Sorter`: validated Python surface over the compiled chute engine.

A warehouse control system (WCS) calls :meth:`Sorter.assign` once per scanned parcel.
Whatever it is handed, the answer is a chute with a reason: unknown destinations,
no-reads, unsortable parcels, recirculation limits and chutes that cannot take the
parcel all end in the reject chute configured for that reason.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

import numpy as np

from sorter._chutes import ChuteEngine, CompiledPlan, recirculation_count, sortable_flag
from sorter.constants import (KINDS, REASONS, REJECT_REASONS, STATES,
                              STRATEGIES, Decision)
from sorter.errors import InputError
from sorter.plan import (Chute, ChuteTable, SortPlan, as_chute_table, load_plan,
                         load_plan_routes)

__all__ = ["Sorter", "Decision", "PreparedPlan"]

_STATE_CODE = {s: i for i, s in enumerate(STATES)}
_STATE_VERSION = 1


def _own_copy(plan: SortPlan, table: ChuteTable, *, path=None, **changes) -> SortPlan:
    """``plan`` (with ``changes``) checked against ``table``, as a copy of its own: later
    edits to the caller's plan change neither the decisions nor :meth:`Sorter.state_dict`."""
    plan = dataclasses.replace(plan, **changes).validate(table, path=path)
    # chutes by the table's own labels (an int id named "17" in a plan is 17), as the files
    # and decisions name them
    plan.routes = {d: tuple(table[c].id for c in r) for d, r in plan.routes.items()}
    plan.reject = {r: table[c].id for r, c in plan.reject.items()}
    plan.overflow = tuple(table[c].id for c in plan.overflow)
    return plan


def _state_counts(state, key, n, top) -> np.ndarray:
    """``state[key]`` as ``n`` integers from 0 to ``top``, or :class:`InputError` naming it."""
    try:
        a = np.asarray(state[key])
    except (ValueError, TypeError, OverflowError):     # ragged or junk
        a = np.zeros(())
    if a.shape != (n,) or (n and (a.dtype.kind not in "iu" or a.min() < 0 or a.max() > top)):
        raise InputError(f"bad {key} in the sorter state", field=key,
                         expected=f"{n} integers from 0 to {top} (as state_dict() writes them)")
    return a


def _per_parcel(x) -> np.ndarray:
    """``x`` as an array; a list that NumPy would make text of (``[2.5, "0"]`` becomes
    ``["2.5", "0"]``) is kept as objects, so each value is read as :meth:`Sorter.assign`
    reads it (2.5 laps count 2, a 0.0 flag is not sortable)."""
    a = np.asarray(x)
    if a.dtype.kind in "SU" and not isinstance(x, np.ndarray):
        a = np.asarray(x, dtype=object)
    return a


class PreparedPlan:
    """A plan read, checked and laid out by :meth:`Sorter.prepare_plan`, not yet in force.

    ``plan`` is the checked :class:`SortPlan`; pass the object to :meth:`Sorter.switch_plan`.
    A plan prepared from a CSV or a mapping (routes only) takes its settings (overflow,
    reject chutes, strategy, max recirculation; a mapping's also the plan's name) from the
    plan in force when it is switched to, not when it was prepared.
    """

    __slots__ = ("plan", "table", "layout", "routes_only", "keep_name")

    def __init__(self, plan, table, layout, routes_only=False, keep_name=False):
        self.plan = plan
        self.table = table
        self.layout = layout
        self.routes_only = routes_only
        self.keep_name = keep_name          # a mapping has no name: the one in force carries over

    def __repr__(self):
        return f"PreparedPlan({self.plan.name!r}, destinations={len(self.plan.routes)})"


class Sorter(ChuteEngine):
    """Chute assignment engine for one sorter.

    Parameters
    ----------
    plan : SortPlan
        Destinations -> ordered chutes, overflow chutes, a reject chute per reason.
    chutes : ChuteTable, or a list of Chute or of mappings
        The chute table (mappings as :meth:`ChuteTable.as_dicts` writes them: ``id``,
        ``kind``, ``capacity``, ...; one dict of all the chutes is refused with a
        ``TypeError``).
    strategy : {'fill_first', 'round_robin', 'least_loaded'}, optional
        Overrides ``plan.strategy``. ``fill_first`` takes the first open chute in plan
        order, ``round_robin`` rotates over the destination's open chutes,
        ``least_loaded`` takes the open chute with the fewest items in its container
        (ties to plan order).
    max_recirculation : int, optional
        Overrides ``plan.max_recirculation``.

    Notes
    -----
    Decision rules, in order (a code is looked up exactly as given: trim a padded scanner
    field first, as the plan CSV, the event replay and the service do): not sortable ->
    ``not_sortable``; no-read (``None`` or ``""``) -> ``no_read``; recirculation > max -> ``max_recirculation``; unknown
    destination -> ``unknown_destination``; an open chute of the destination by
    strategy -> ``ok``; else an open overflow chute -> ``overflow``; else
    ``no_chute_available``. Every other reason goes to its reject chute in the plan's
    ``reject`` table. A reject chute that is not open (``full`` at capacity, ``blocked``,
    ``disabled``, in ``container_change``) is passed over: the parcel goes, its reason
    kept, to the first open chute of ``reject`` taken in the order of
    :data:`~sorter.constants.REJECT_REASONS`; when none is open, to the reason's own
    chute all the same (a decision always names a chute, so the reject chutes are the
    last resort, as the end of a real sorter's line is). :meth:`reject` follows the same
    rule.

    One engine serves one thread of decisions (as a WCS's scan handler is): a plan switch
    from another thread is atomic, but decisions made from two threads at once may lose
    counter increments and round-robin steps.

    Examples
    --------
    >>> from sorter import Sorter
    >>> s = Sorter.from_files("seeds/plan/demo_plan.csv", "seeds/plan/demo_chutes.toml")  # doctest: +SKIP
    >>> s.assign("01422")  # doctest: +SKIP
    Decision(chute='C001', reason='ok')
    """

    def __init__(self, plan: SortPlan, chutes, *, strategy=None, max_recirculation=None):
        if not isinstance(plan, SortPlan):
            raise TypeError(f"plan must be a SortPlan, not {type(plan).__name__}")
        table = as_chute_table(chutes)
        overrides = {"strategy": strategy, "max_recirculation": max_recirculation}
        plan = _own_copy(plan, table, **{k: v for k, v in overrides.items() if v is not None})
        self.chute_table = table
        self.sort_plan = plan
        self._install_chutes(table.ids, [KINDS.index(c.kind) for c in table],
                             [c.capacity for c in table])
        self._set_plan(self._compile(plan))

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_files(cls, plan_csv, chutes_toml, **overrides) -> "Sorter":
        """Build an engine from a plan CSV and a chute TOML.

        ``overrides``: ``strategy``, ``max_recirculation``, ``name``, ``overflow``.
        Raises ``ValueError`` naming file, line, field and expected form.
        """
        plan, table = load_plan(plan_csv, chutes_toml, **overrides)
        return cls(plan, table)

    def _layout(self, plan: SortPlan) -> tuple:
        """The routes as arrays in plan order: ``(codes, lengths, chute indices)``.

        Reads only the chute table (never the engine's state): safe in a worker thread."""
        index = self.chute_table.index
        routes = list(plan.routes.values())
        lengths = np.fromiter(map(len, routes), dtype=np.int64, count=len(routes))
        flat = np.fromiter((index(c) for r in routes for c in r), dtype=np.int32,
                           count=int(lengths.sum()))
        return list(plan.routes), lengths, flat

    def _compile(self, plan: SortPlan, rr_cursor=None, layout=None) -> CompiledPlan:
        table = self.chute_table
        codes, lengths_in_plan, flat_in_plan = self._layout(plan) if layout is None else layout
        ids = self._intern(codes)
        n_dest = len(self._dest_codes())
        lengths = np.zeros(n_dest, dtype=np.int64)
        lengths[ids] = lengths_in_plan
        ptr = np.zeros(n_dest + 1, dtype=np.int32)
        np.cumsum(lengths, out=ptr[1:])
        # each destination's chutes, moved from plan order to interned-id order
        owner = np.repeat(np.arange(len(codes)), lengths_in_plan)
        first = np.cumsum(lengths_in_plan) - lengths_in_plan
        flat = np.empty(len(flat_in_plan), dtype=np.int32)
        flat[ptr[ids].astype(np.int64)[owner] + np.arange(len(flat_in_plan)) - first[owner]] = \
            flat_in_plan
        reject = np.zeros(len(REASONS), dtype=np.int32)
        for r, cid in plan.reject.items():
            reject[REASONS.index(r)] = table.index(cid)
        # ok/overflow never use the reject array; point them at the no-read chute
        reject[0] = reject[1] = reject[REASONS.index("no_read")]
        overflow = np.array([table.index(c) for c in plan.overflow], dtype=np.int32)
        cursor = np.zeros(n_dest, dtype=np.int32) if rr_cursor is None else rr_cursor
        return CompiledPlan(plan.name, n_dest, ptr, flat, overflow, reject, cursor,
                            STRATEGIES.index(plan.strategy), int(plan.max_recirculation))

    # -- plan switches -------------------------------------------------------------
    def switch_plan(self, new_plan) -> None:
        """Put a new plan in force between waves, atomically.

        ``new_plan`` is a :class:`SortPlan`, a path to a plan CSV, a mapping
        destination -> chutes, or a :class:`PreparedPlan` from :meth:`prepare_plan`. With a
        CSV or a mapping only the routes change; overflow, reject chutes, strategy and max
        recirculation (and, for a mapping, the plan's name) carry over from the plan in force
        at the switch, for a prepared one too (not from the plan in force when it was
        prepared). Chute states and container fill
        always carry over; round-robin positions restart. Raises ``ValueError`` (naming the file) if the new
        plan does not fit the chute table or has no destinations (``{}``, like a plan CSV
        without rows, is refused: it would reject every parcel); the old plan then stays in
        force.
        """
        prepared = new_plan if isinstance(new_plan, PreparedPlan) else self.prepare_plan(new_plan)
        if prepared.table is not self.chute_table:
            raise InputError("the plan was prepared for another chute table", field="plan",
                             expected="a plan prepared by this engine's prepare_plan()")
        plan = prepared.plan
        if prepared.routes_only:
            # the settings carry over from the plan in force now: a whole-plan switch made
            # after this one was prepared must not be undone for them
            cur = self.sort_plan
            now = dict(reject=dict(cur.reject), overflow=tuple(cur.overflow),
                       strategy=cur.strategy, max_recirculation=cur.max_recirculation)
            if prepared.keep_name:
                now["name"] = cur.name
            if any(getattr(plan, k) != v for k, v in now.items()):
                plan = _own_copy(plan, self.chute_table, **now)
        compiled = self._compile(plan, layout=prepared.layout)
        self.sort_plan = plan
        self._set_plan(compiled)

    def prepare_plan(self, new_plan) -> "PreparedPlan":
        """Read and check a plan for :meth:`switch_plan` without putting it in force.

        Everything slow about a plan switch happens here: reading the CSV, checking every
        route against the chute table, laying the routes out as arrays. Only the chute
        table and the settings of the plan in force are read, never the engine's state, so
        a service calls this in a worker thread while the engine keeps deciding; the
        switch itself then only interns the destination codes.

        Parameters
        ----------
        new_plan : SortPlan, path or mapping
            As for :meth:`switch_plan`.

        Returns
        -------
        PreparedPlan

        Raises
        ------
        ValueError
            (:class:`~sorter.errors.InputError`) naming the file, line and field when the
            plan does not fit the chute table; ``OSError`` when it cannot be read.

        Examples
        --------
        >>> s = Sorter.from_files("seeds/plan/demo_plan.csv", "seeds/plan/demo_chutes.toml")  # doctest: +SKIP
        >>> s.switch_plan(s.prepare_plan("seeds/plan/demo_plan_wave2.csv"))  # doctest: +SKIP
        """
        cur = self.sort_plan
        path = None
        routes_only = not isinstance(new_plan, SortPlan)
        if isinstance(new_plan, SortPlan):
            plan = new_plan
        elif isinstance(new_plan, (str, Path)):
            path = new_plan
            routes = load_plan_routes(new_plan, self.chute_table)
            plan = SortPlan(routes=routes, reject=dict(cur.reject), overflow=tuple(cur.overflow),
                            strategy=cur.strategy, max_recirculation=cur.max_recirculation,
                            name=Path(new_plan).stem)
        elif isinstance(new_plan, Mapping):
            plan = SortPlan(routes=dict(new_plan),            # checked by validate() below
                            reject=dict(cur.reject), overflow=tuple(cur.overflow),
                            strategy=cur.strategy, max_recirculation=cur.max_recirculation,
                            name=cur.name)
        else:
            raise TypeError("new_plan must be a SortPlan, a plan CSV path or a mapping, "
                            f"not {type(new_plan).__name__}")
        table = self.chute_table
        plan = _own_copy(plan, table, path=path)
        plan.routes = {d: tuple(table[c].id for c in r) for d, r in plan.routes.items()}
        return PreparedPlan(plan, table, self._layout(plan), routes_only,
                            keep_name=isinstance(new_plan, Mapping))

    # -- decisions ----------------------------------------------------------------
    # assign(destination, recirculation=0, sortable=True) -> Decision is inherited from the
    # compiled class: it never raises, whatever it is handed.

    def destination_ids(self, codes) -> np.ndarray:
        """Intern destination codes once: int32 ids for :meth:`assign_many`.

        Unknown codes -> -1, ``None`` or ``""`` -> -2 (no-read). Ids stay valid across plan
        switches and :meth:`from_state` restarts, but a code unknown when interned stays -1
        (``unknown_destination``) after a switch to a plan that routes it, where
        :meth:`assign` by code would sort it: intern again after :meth:`switch_plan`. A code
        an earlier plan routed keeps its id after a plan that drops it (interned again it is
        still that id, not -1); :meth:`assign_many` decides it ``unknown_destination``.
        So the table of codes only grows: every code any plan of this sorter routed is kept
        (~0.6 KB each; unknown codes asked about are never added). A WCS whose destination
        codes change every wave and that runs for weeks grows by its distinct codes; start a
        fresh ``Sorter`` at a shift boundary to shed them.
        """
        if isinstance(codes, np.ndarray):
            if codes.ndim != 1:     # (a DataFrame's df[["dest"]].to_numpy() is (n, 1))
                raise ValueError(f"codes must be 1-D, got shape {codes.shape}")
            codes = codes.tolist()
        elif isinstance(codes, (str, bytes, bytearray)):
            raise TypeError("codes must be a sequence of destination codes, not one "
                            f"{type(codes).__name__}")
        elif not hasattr(codes, "__iter__"):
            raise TypeError("codes must be a sequence of destination codes, not "
                            f"{type(codes).__name__}")
        elif getattr(codes, "ndim", 1) != 1:    # a DataFrame iterates over its column names
            raise ValueError(f"codes must be 1-D, got a {type(codes).__name__} of "
                             f"{codes.ndim} dimensions")
        return self._destination_ids(list(codes))

    def assign_many(self, dest_ids, recirculation=0, sortable=None):
        """Decisions for a batch of interned destination ids, in order.

        Parameters
        ----------
        dest_ids : array_like of int
            From :meth:`destination_ids` (-1 unknown, -2 no-read).
        recirculation : int or array_like of int
            Per parcel, or one value for all, read as :meth:`assign` reads it: negative
            values and NaN count as 0, values past the limit (or +inf) as over it; text
            (``"2"``) and objects per element as :meth:`assign` reads them.
        sortable : None, bool or array_like of bool
            ``None``: all sortable; one value: for all, as ``recirculation``. Text or objects
            per element as :meth:`assign` reads them (``"0"``, ``"false"``, ``"no"`` not
            sortable, ``""`` sortable; ``None`` not).

        Returns
        -------
        chutes : ndarray of int32
            Index into :attr:`chute_ids` of each decision's chute.
        reasons : ndarray of int8
            Index into :data:`sorter.constants.REASONS`.
        """
        d = np.asarray(dest_ids)
        if d.ndim != 1:
            raise ValueError(f"dest_ids must be 1-D, got shape {d.shape}")
        if d.size and not np.issubdtype(d.dtype, np.integer):
            raise TypeError(f"dest_ids must be integers, got dtype {d.dtype}")
        if d.dtype != np.int32:         # ids beyond int32 are unknown, not wrapped onto others
            d = np.clip(d, np.iinfo(np.int32).min, np.iinfo(np.int32).max)
        d = np.ascontiguousarray(d, dtype=np.int32)
        n = d.shape[0]
        rc = _per_parcel(recirculation)
        if rc.ndim == 0:                # one value for all, read as assign() reads it
            rc = np.full(n, recirculation_count(recirculation), dtype=np.int32)
        elif rc.shape != (n,):
            raise ValueError(f"recirculation must be a scalar or shape ({n},), got {rc.shape}")
        elif rc.dtype.kind in "OSUV":   # text or objects: each read as assign() reads it
            rc = np.fromiter(map(recirculation_count, rc.tolist()), dtype=np.int32, count=n)
        elif rc.dtype.kind not in "biuf":   # complex, datetime, timedelta: no count
            raise TypeError(f"recirculation must be counts (integers), got dtype {rc.dtype}")
        else:
            if rc.dtype.kind == "f":    # as assign(): NaN counts as 0, +inf as the most
                # (in float64: float16 holds no 2**30, its +inf was cast to a negative count)
                rc = np.nan_to_num(rc.astype(np.float64), nan=0.0, posinf=1 << 30, neginf=0.0)
            rc = np.ascontiguousarray(np.clip(rc, 0, 1 << 30), dtype=np.int32)
        if sortable is None:
            sv = np.ones(n, dtype=np.int8)
        else:
            sv = _per_parcel(sortable)
            if sv.ndim == 0:            # one value for all, read as assign() reads it
                sv = np.full(n, sortable_flag(sortable), dtype=np.int8)
            elif sv.shape != (n,):
                raise ValueError(f"sortable must be None, one value or shape ({n},), "
                                 f"got {sv.shape}")
            elif sv.dtype.kind in "OSUV":     # text ("0" = not sortable) or objects, as assign()
                sv = np.fromiter(map(sortable_flag, sv.tolist()), dtype=np.int8, count=n)
            else:
                sv = np.ascontiguousarray(sv != 0, dtype=np.int8)
        out_c = np.empty(n, dtype=np.int32)
        out_r = np.empty(n, dtype=np.int8)
        self._assign_many(d, rc, sv, out_c, out_r)
        return out_c, out_r

    # -- chute events ----------------------------------------------------------------
    def _chute(self, chute) -> int:
        if isinstance(chute, (bool, np.bool_, float, np.floating)):
            # True == 1 and 7.0 == 7 in a dict: they would find chutes 1 and 7
            raise InputError(f"chute {chute!r} is a {type(chute).__name__}", field="chute",
                             expected="a chute id from the chute table (an int or a str)")
        i = self._chute_lookup(chute)
        if i is None:
            raise InputError(f"unknown chute {chute!r}", field="chute",
                             expected="a chute id from the chute table")
        return i

    def set_state(self, chute, state) -> None:
        """Set a chute's state: ``open``, ``full``, ``container_change``, ``blocked`` or
        ``disabled``. ``open`` reopens without emptying the container."""
        code = _STATE_CODE.get(state) if isinstance(state, str) else None
        if code is None:
            raise InputError(f"unknown chute state {state!r}", field="state",
                             expected=" | ".join(STATES))
        self._set_state_code(self._chute(chute), code)

    def discharged(self, chute, n=1) -> None:
        """Count ``n`` items into the chute's container; at capacity an open chute turns full."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= 1 << 30:
            raise InputError(f"bad item count {n!r}", field="n",
                             expected="an integer from 0 to 2**30 (1,073,741,824)")
        self._discharged(self._chute(chute), int(n))

    def container_changed(self, chute) -> None:
        """The chute's container was swapped: empty it and reopen the chute."""
        self._container_changed(self._chute(chute))

    def reject(self, reason) -> Decision:
        """The (counted) decision sending a parcel to the reject chute of ``reason``
        (while that chute is not open, another open reject chute: see the class notes).

        Used for parcels the engine never saw in time (``late``).
        """
        if reason not in REJECT_REASONS:
            raise InputError(f"unknown reject reason {reason!r}", field="reason",
                             expected=" | ".join(REJECT_REASONS))
        return ChuteEngine.reject_decision(self, reason)

    def reject_decision(self, reason) -> Decision:
        """The compiled engine's name of :meth:`reject`, checked the same way: a reason that
        is no reject reason (``ok``, ``overflow``, junk) is an
        :class:`~sorter.errors.InputError`, never a counted decision."""
        return self.reject(reason)

    # -- read-outs -------------------------------------------------------------------
    @property
    def chute_ids(self) -> list:
        """Chute labels in table order (what :meth:`assign_many` indices point at)."""
        return self._chute_labels()

    @property
    def plan_name(self) -> str:
        """Name of the plan in force (a plan CSV's file stem after a switch to it)."""
        return self.sort_plan.name

    def chute_state(self, chute) -> str:
        """The chute's state, one of :data:`~sorter.constants.STATES`; an
        :class:`~sorter.errors.InputError` for a chute not in the table."""
        return STATES[int(self._arrays()["state"][self._chute(chute)])]

    def chute_fill(self, chute) -> int:
        """Items in the chute's container now (emptied by :meth:`container_changed`)."""
        return int(self._arrays()["fill"][self._chute(chute)])

    def counters(self) -> dict:
        """Decisions per reason (``by_reason``), and per chute (``by_chute``): ``assigned``
        (decisions naming it), ``discharged`` (items into it), ``fill``, ``state``."""
        a = self._arrays()
        labels = self._chute_labels()
        return {
            "by_reason": {r: int(a["reason_count"][i]) for i, r in enumerate(REASONS)},
            "by_chute": {
                labels[i]: {"assigned": int(a["assigned"][i]), "discharged": int(a["discharged"][i]),
                            "fill": int(a["fill"][i]), "state": STATES[int(a["state"][i])]}
                for i in range(len(labels))
            },
        }

    # -- persistence -----------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume exactly: plan, chutes, states, fill, counters.

        JSON-serialisable when chute ids are str or int. See :meth:`from_state`.
        """
        a = self._arrays()
        p = self.plan_in_force.arrays()
        plan = self.sort_plan
        return {
            "version": _STATE_VERSION,
            "chutes": self.chute_table.as_dicts(),
            "plan": {
                "name": plan.name, "strategy": plan.strategy,
                "max_recirculation": int(plan.max_recirculation),
                "overflow": list(plan.overflow), "reject": dict(plan.reject),
                "routes": {d: list(r) for d, r in plan.routes.items()},
            },
            "destinations": self._dest_codes(),
            "rr_cursor": p["rr_cursor"].tolist(),
            "state": [STATES[int(s)] for s in a["state"]],
            "fill": a["fill"].tolist(),
            "assigned": a["assigned"].tolist(),
            "discharged": a["discharged"].tolist(),
            "reason_count": a["reason_count"].tolist(),
        }

    @classmethod
    def from_state(cls, state: dict) -> "Sorter":
        """Rebuild an engine from :meth:`state_dict` output; it continues identically."""
        if not isinstance(state, Mapping) or state.get("version") != _STATE_VERSION:
            raise InputError("not a sorter state", field="version",
                             expected=f"a dict from Sorter.state_dict() (version {_STATE_VERSION})")
        try:
            table = ChuteTable([Chute(**c) for c in state["chutes"]])
            pd = state["plan"]
            # (a route saved as one string is refused as such, not split into characters)
            plan = SortPlan(routes={d: r if isinstance(r, str) else tuple(r)
                                    for d, r in pd["routes"].items()},
                            reject=dict(pd["reject"]), overflow=tuple(pd["overflow"]),
                            strategy=pd["strategy"], max_recirculation=pd["max_recirculation"],
                            name=pd["name"])
            self = cls.__new__(cls)
            plan.validate(table)
            self.chute_table = table
            self.sort_plan = plan
            self._install_chutes(table.ids, [KINDS.index(c.kind) for c in table],
                                 [c.capacity for c in table])
            self._intern(list(state["destinations"]))
            self._intern(list(plan.routes))         # (state_dict() lists them all already)
            n = len(table)
            if len(state["state"]) != n:
                raise InputError("per-chute arrays do not match the chute table", field="state")
            codes = [_STATE_CODE.get(s) if isinstance(s, str) else None for s in state["state"]]
            if None in codes:
                bad = state["state"][codes.index(None)]
                raise InputError(f"unknown chute state {bad!r} in the sorter state",
                                 field="state", expected=" | ".join(STATES))
            # the compiled engine trusts these arrays (no bounds checks): check them here
            i32, i64 = (1 << 31) - 1, (1 << 63) - 1
            self._load_state(codes, _state_counts(state, "fill", n, i32),
                             _state_counts(state, "assigned", n, i64),
                             _state_counts(state, "discharged", n, i64),
                             _state_counts(state, "reason_count", len(REASONS), i64))
            cursor = _state_counts(state, "rr_cursor", len(self._dest_codes()), i32)
            # a round-robin position is a place in the destination's route (state_dict()
            # writes 0 .. len - 1): the compiled loop adds to it without a bounds check
            room = [max(1, len(plan.routes.get(d, ()))) for d in self._dest_codes()]
            bad = np.flatnonzero(cursor >= np.asarray(room, dtype=np.int64))
            if bad.size:
                d = self._dest_codes()[int(bad[0])]
                raise InputError(f"bad rr_cursor {int(cursor[bad[0]])} for destination {d!r} "
                                 "in the sorter state", field="rr_cursor",
                                 expected=f"a position in its route, 0 to {room[int(bad[0])] - 1}")
            self._set_plan(self._compile(plan, rr_cursor=cursor))
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"incomplete sorter state: {exc!r}", field="state",
                             expected="a dict from Sorter.state_dict()") from None
        return self

    def __reduce__(self):
        return (type(self).from_state, (self.state_dict(),))

    def __repr__(self):
        return (f"Sorter(plan={self.sort_plan.name!r}, destinations={len(self.sort_plan.routes)}, "
                f"chutes={len(self.chute_table)}, strategy={self.sort_plan.strategy!r})")

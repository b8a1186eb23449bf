"""QA session 18 (enginemodel): the chute engine against a model written from its documentation.

``EngineModel`` below was written from README's "Chute assignment" section, the docstrings of
``sorter/engine.py`` and ``sorter/plan.py`` and ``sorter/constants.py`` only (not from
``tests/naive.py`` nor the compiled engine). A hypothesis state machine drives
:class:`sorter.Sorter` and the model with the same random plans and events (scans with
recirculation counts and sortable flags, discharges, every chute state, container changes,
plan switches between waves, ``late`` rejects, ``state_dict``/``from_state``/pickle round trips,
``assign_many`` batches, also with ids interned before switches and restarts) under each
strategy, over random chute tables (int and text labels, shared chutes, overflow chutes of
either kind, several reject chutes) and compares every decision, every counter and the plan's
name; ``assign_many`` is also checked against ``assign`` one by one on a copy of the same
state, and the event replay (``sorter.replay.replay_events``) against the same model.

Found (pinned by a test at the end of this file that failed before its fix in
``sorter/engine.py``):

* ``switch_plan(prepare_plan(mapping))`` after a whole-plan switch made between the prepare
  and the switch -> the plan in force took the name of the plan in force at *prepare* time
  (``plan_name`` and ``state_dict()`` went back to the old wave's name), where every other
  setting comes from the plan in force at the switch and ``switch_plan(mapping)`` keeps the
  name in force.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sorter import Chute, ChuteTable, Sorter, SortPlan
from sorter.constants import REASONS, REJECT_REASONS, STATES, STRATEGIES

# --------------------------------------------------------------------------------------------
# The model (documentation only)
# --------------------------------------------------------------------------------------------


def _laps(recirculation):
    """README/assign_many docstring: negative and NaN count 0, 2.5 laps count 2, +inf is over
    any limit."""
    if isinstance(recirculation, float):
        if math.isnan(recirculation):
            return 0
        if math.isinf(recirculation):
            return math.inf if recirculation > 0 else 0
    return max(0, int(recirculation))


def _sortable(flag):
    """assign_many docstring: ``"0"``, ``"false"``, ``"no"`` not sortable, ``""`` sortable,
    ``None`` not; otherwise truthiness."""
    if flag is None:
        return False
    if isinstance(flag, str):
        return flag.strip().lower() not in ("0", "false", "no")
    return bool(flag)


class EngineModel:
    """The chute engine as the documentation describes it."""

    def __init__(self, chutes, routes, reject, overflow, strategy, max_recirculation):
        self.ids = [c[0] for c in chutes]
        self.capacity = {c[0]: c[2] for c in chutes}
        self.state = {c: "open" for c in self.ids}
        self.fill = {c: 0 for c in self.ids}
        self.assigned = {c: 0 for c in self.ids}
        self.discharged_n = {c: 0 for c in self.ids}
        self.by_reason = {r: 0 for r in REASONS}
        self.reject_map = dict(reject)
        self.overflow = list(overflow)
        self.strategy = strategy
        self.max_recirculation = max_recirculation
        self.codes = []                     # interned destination codes, append-only
        self._set_routes(routes)

    def _set_routes(self, routes):
        self.routes = {d: list(r) for d, r in routes.items()}
        self.cursor = {d: 0 for d in self.routes}       # "round-robin positions restart"
        for d in self.routes:
            if d not in self.codes:
                self.codes.append(d)

    # -- decisions ---------------------------------------------------------------------------
    def _open(self, c):
        return self.state[c] == "open"

    def _pick(self, dest):
        route = self.routes[dest]
        if self.strategy == "fill_first":
            return next((c for c in route if self._open(c)), None)
        if self.strategy == "round_robin":
            n = len(route)
            start = self.cursor[dest]
            for k in range(n):
                i = (start + k) % n
                if self._open(route[i]):
                    self.cursor[dest] = (i + 1) % n
                    return route[i]
            return None
        best = None
        for c in route:                         # least_loaded, ties to plan order
            if self._open(c) and (best is None or self.fill[c] < self.fill[best]):
                best = c
        return best

    def _reject_chute(self, reason):
        own = self.reject_map[reason]
        if self._open(own):
            return own
        for r in REJECT_REASONS:
            if self._open(self.reject_map[r]):
                return self.reject_map[r]
        return own

    def _count(self, chute, reason):
        self.assigned[chute] += 1
        self.by_reason[reason] += 1
        return chute, reason

    def assign(self, dest, recirculation=0, sortable=True):
        if not _sortable(sortable):
            reason = "not_sortable"
        elif dest is None or dest == "":
            reason = "no_read"
        elif _laps(recirculation) > self.max_recirculation:
            reason = "max_recirculation"
        elif dest not in self.routes:
            reason = "unknown_destination"
        else:
            c = self._pick(dest)
            if c is not None:
                return self._count(c, "ok")
            c = next((c for c in self.overflow if self._open(c)), None)
            if c is not None:
                return self._count(c, "overflow")
            reason = "no_chute_available"
        return self._count(self._reject_chute(reason), reason)

    def reject(self, reason):
        return self._count(self._reject_chute(reason), reason)

    def destination_ids(self, codes):
        out = []
        for c in codes:
            if c is None or c == "":
                out.append(-2)
            elif c in self.codes:       # interned by any plan so far (ids stay valid)
                out.append(self.codes.index(c))
            else:
                out.append(-1)
        return out

    def assign_id(self, did, recirculation=0, sortable=True):
        if did == -2:
            dest = None
        elif did == -1:
            dest = "\x00unknown"                # no plan routes it
        else:
            dest = self.codes[did]
        return self.assign(dest, recirculation, sortable)

    # -- chute events ------------------------------------------------------------------------
    def discharged(self, chute, n=1):
        self.fill[chute] += n
        self.discharged_n[chute] += n
        if self.state[chute] == "open" and self.fill[chute] >= self.capacity[chute]:
            self.state[chute] = "full"

    def set_state(self, chute, state):
        self.state[chute] = state               # "open reopens without emptying"

    def container_changed(self, chute):
        self.fill[chute] = 0
        self.state[chute] = "open"

    def switch_routes(self, routes):
        self._set_routes(routes)

    def switch_plan(self, routes, reject, overflow, strategy, max_recirculation):
        self.reject_map = dict(reject)
        self.overflow = list(overflow)
        self.strategy = strategy
        self.max_recirculation = max_recirculation
        self._set_routes(routes)

    def counters(self):
        return {
            "by_reason": dict(self.by_reason),
            "by_chute": {c: {"assigned": self.assigned[c], "discharged": self.discharged_n[c],
                             "fill": self.fill[c], "state": self.state[c]} for c in self.ids},
        }


# --------------------------------------------------------------------------------------------
# The state machine
# --------------------------------------------------------------------------------------------

DEST_CODES = ["d0", "d1", "d2", "d3", "d4", "d5"]
RECIRCULATIONS = st.one_of(st.integers(-2, 5), st.sampled_from([2.5, -1.5, float("nan"),
                                                                float("inf"), 3.999]))
SORTABLES = st.one_of(st.booleans(), st.sampled_from([0, 1, "0", "1", "false", "no", "", "yes"]))


@st.composite
def tables(draw):
    n_dest = draw(st.integers(1, 6))
    n_over = draw(st.integers(0, 2))
    n_rej = draw(st.integers(1, 3))
    int_label = draw(st.booleans())        # chute labels may be ints (a plan CSV names them as text)
    chutes = ([(i if int_label and i % 2 else f"C{i}", "destination", draw(st.integers(1, 4)))
               for i in range(n_dest)]
              + [(f"O{i}", "overflow", draw(st.integers(1, 4))) for i in range(n_over)]
              + [(f"R{i}", "reject", draw(st.integers(1, 4))) for i in range(n_rej)])
    return chutes


@st.composite
def routes_for(draw, chutes):
    sortable = [c[0] for c in chutes if c[1] != "reject"]
    codes = draw(st.lists(st.sampled_from(DEST_CODES), min_size=1, max_size=4, unique=True))
    return {d: draw(st.lists(st.sampled_from(sortable), min_size=1, max_size=min(4, len(sortable)),
                             unique=True))
            for d in codes}


@st.composite
def settings_for(draw, chutes):
    rejects = [c[0] for c in chutes if c[1] == "reject"]
    # overflow chutes: kind overflow, or destination chutes (plan.py accepts both)
    overs = [c[0] for c in chutes if c[1] != "reject"]
    reject = {r: draw(st.sampled_from(rejects)) for r in REJECT_REASONS}
    overflow = draw(st.lists(st.sampled_from(overs), max_size=3, unique=True))
    return dict(reject=reject, overflow=list(overflow), strategy=draw(st.sampled_from(STRATEGIES)),
                max_recirculation=draw(st.integers(0, 3)))


class EngineVsModel(RuleBasedStateMachine):

    @initialize(data=st.data())
    def setup(self, data):
        self.chutes = data.draw(tables())
        self.table = ChuteTable([Chute(i, k, c) for i, k, c in self.chutes])
        routes = data.draw(routes_for(self.chutes))
        sets = data.draw(settings_for(self.chutes))
        self.engine = Sorter(SortPlan(routes=routes, name="w0", **sets), self.table)
        self.model = EngineModel(self.chutes, routes, **sets)
        self.tmp = tempfile.mkdtemp(prefix="qa18_enginemodel_")
        self.wave = 0
        self.plan_name = "w0"
        self.interned = set()
        self.prepared = []

    def teardown(self):
        if hasattr(self, "tmp"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _chute(self, data):
        return data.draw(st.sampled_from([c[0] for c in self.chutes]))

    def _dest(self, data):
        return data.draw(st.one_of(st.sampled_from(DEST_CODES + ["zz"]), st.sampled_from([None, ""])))

    @rule(data=st.data(), recirculation=RECIRCULATIONS, sortable=SORTABLES)
    def assign(self, data, recirculation, sortable):
        dest = self._dest(data)
        got = self.engine.assign(dest, recirculation, sortable)
        want = self.model.assign(dest, recirculation, sortable)
        assert tuple(got) == want, (dest, recirculation, sortable)

    @rule(data=st.data())
    def assign_plain(self, data):
        dest = self._dest(data)
        assert tuple(self.engine.assign(dest)) == self.model.assign(dest), dest

    @rule(reason=st.sampled_from(REJECT_REASONS))
    def reject(self, reason):
        assert tuple(self.engine.reject(reason)) == self.model.reject(reason)

    @rule(data=st.data(), n=st.integers(0, 3))
    def discharged(self, data, n):
        c = self._chute(data)
        self.engine.discharged(c, n)
        self.model.discharged(c, n)

    @rule(data=st.data(), state=st.sampled_from(STATES))
    def set_state(self, data, state):
        c = self._chute(data)
        self.engine.set_state(c, state)
        self.model.set_state(c, state)

    @rule(data=st.data())
    def container_changed(self, data):
        c = self._chute(data)
        self.engine.container_changed(c)
        self.model.container_changed(c)

    @rule(data=st.data(), how=st.sampled_from(["mapping", "prepared", "plan", "csv"]))
    def switch_plan(self, data, how):
        routes = data.draw(routes_for(self.chutes))
        if how == "plan":
            sets = data.draw(settings_for(self.chutes))
            self.wave += 1
            self.engine.switch_plan(SortPlan(routes=routes, name=f"w{self.wave}", **sets))
            self.model.switch_plan(routes, **sets)
            self.plan_name = f"w{self.wave}"
        elif how == "csv":
            self.wave += 1
            path = os.path.join(self.tmp, f"wave{self.wave}.csv")
            with open(path, "w") as f:
                f.write("destination,chutes\n")
                f.writelines(f"{d},{';'.join(map(str, r))}\n" for d, r in routes.items())
            new = path if data.draw(st.booleans()) else self.engine.prepare_plan(path)
            self.engine.switch_plan(new)
            self.model.switch_routes(routes)
            self.plan_name = f"wave{self.wave}"
        else:
            new = routes if how == "mapping" else self.engine.prepare_plan(routes)
            self.engine.switch_plan(new)
            self.model.switch_routes(routes)

    @rule(data=st.data(), csv=st.booleans())
    def prepare_for_later(self, data, csv):
        """A plan prepared now, switched to after other events (settings: those in force at
        the switch)."""
        routes = data.draw(routes_for(self.chutes))
        if csv:
            self.wave += 1
            path = os.path.join(self.tmp, f"wave{self.wave}.csv")
            with open(path, "w") as f:
                f.write("destination,chutes\n")
                f.writelines(f"{d},{';'.join(map(str, r))}\n" for d, r in routes.items())
            self.prepared.append((self.engine.prepare_plan(path), routes, f"wave{self.wave}"))
        else:
            self.prepared.append((self.engine.prepare_plan(routes), routes, None))

    @rule(data=st.data())
    def switch_to_prepared(self, data):
        if not self.prepared:
            return
        prepared, routes, name = self.prepared.pop(data.draw(st.integers(0, len(self.prepared) - 1)))
        self.engine.switch_plan(prepared)
        self.model.switch_routes(routes)
        if name is not None:                    # a mapping's routes keep the name in force
            self.plan_name = name

    @rule(data=st.data())
    def switch_plan_refused(self, data):
        dest = [c[0] for c in self.chutes if c[1] == "destination"][0]
        rej = [c[0] for c in self.chutes if c[1] == "reject"][0]
        bad = data.draw(st.sampled_from([{}, {"d0": []}, {"d0": ["NOPE"]}, {"d0": [rej]},
                                         {"d0": [dest, dest]}]))
        before = self.engine.state_dict()
        with pytest.raises(ValueError):
            self.engine.switch_plan(bad)
        assert self.engine.state_dict() == before

    @rule(how=st.sampled_from(["dict", "json", "pickle"]))
    def round_trip(self, how):
        if how == "dict":
            self.engine = Sorter.from_state(self.engine.state_dict())
        elif how == "json":
            self.engine = Sorter.from_state(json.loads(json.dumps(self.engine.state_dict())))
        else:
            self.engine = pickle.loads(pickle.dumps(self.engine))
        self.prepared = []                      # prepared for the engine that was

    @rule(data=st.data())
    def assign_many(self, data):
        n = data.draw(st.integers(0, 8))
        codes = [self._dest(data) for _ in range(n)]
        recirc = data.draw(st.lists(st.integers(-1, 5), min_size=n, max_size=n))
        sortable = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
        ids = self.engine.destination_ids(codes)
        assert list(ids) == self.model.destination_ids(codes), codes
        self.interned.update(zip(codes, (int(i) for i in ids)))  # (code, id) pairs
        if self.interned and data.draw(st.booleans()):
            # ids interned earlier, before plan switches and restarts, stay valid
            stale = data.draw(st.lists(st.sampled_from(sorted(self.interned, key=repr)),
                                       max_size=4))
            codes = codes + [c for c, _ in stale]
            ids = np.concatenate([np.asarray(ids, dtype=np.int32),
                                  np.array([i for _, i in stale], dtype=np.int32)])
            recirc = recirc + [0] * len(stale)
            sortable = sortable + [True] * len(stale)
            n = len(codes)
        twin = Sorter.from_state(self.engine.state_dict())
        form = data.draw(st.sampled_from(["arrays", "lists", "scalars"]))
        if form == "scalars":                   # one value for the whole batch
            r0, f0 = data.draw(st.integers(-1, 5)), data.draw(st.booleans())
            recirc, sortable = [r0] * n, [f0] * n
            chutes, reasons = self.engine.assign_many(ids, r0, f0)
        elif form == "lists":
            chutes, reasons = self.engine.assign_many(list(ids), recirc, sortable)
        else:
            chutes, reasons = self.engine.assign_many(ids, np.array(recirc, dtype=np.int64),
                                                      np.array(sortable, dtype=bool))
        labels = self.engine.chute_ids
        got = [(labels[c], REASONS[r]) for c, r in zip(chutes, reasons)]
        want = [self.model.assign_id(int(i), r, f) for i, r, f in zip(ids, recirc, sortable)]
        # by code; a code interned as -1 stays unknown even once a plan routes it (documented)
        codes = [c if i != -1 else "zz" for c, i in zip(codes, ids)]
        one_by_one = [tuple(twin.assign(c, r, f)) for c, r, f in zip(codes, recirc, sortable)]
        assert got == want
        assert one_by_one == want
        assert twin.state_dict() == self.engine.state_dict()

    @invariant()
    def counters_agree(self):
        if not hasattr(self, "engine"):
            return
        assert self.engine.counters() == self.model.counters()
        assert self.engine.plan_name == self.plan_name
        for c in self.model.ids:
            assert self.engine.chute_state(c) == self.model.state[c]
            assert self.engine.chute_fill(c) == self.model.fill[c]


EngineVsModel.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestEngineVsModel = EngineVsModel.TestCase


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_model_smoke_each_strategy(strategy):
    """The constructor's strategy override, with a shared chute and an overflow, by hand."""
    chutes = [("A", "destination", 2), ("B", "destination", 2), ("O", "overflow", 9),
              ("R", "reject", 9)]
    table = ChuteTable([Chute(*c) for c in chutes])
    reject = {r: "R" for r in REJECT_REASONS}
    routes = {"x": ["A", "B"], "y": ["B", "A"]}
    s = Sorter(SortPlan(routes=routes, reject=reject, overflow=["O"]), table, strategy=strategy)
    m = EngineModel(chutes, routes, reject, ["O"], strategy, 3)
    for step in range(12):
        d = "xy"[step % 2]
        assert tuple(s.assign(d)) == m.assign(d)
        got = s.assign(d)
        assert tuple(got) == m.assign(d)
        s.discharged(got.chute)
        m.discharged(got.chute)
        assert s.counters() == m.counters()


# --------------------------------------------------------------------------------------------
# The event replay (README "Replaying an event stream") against the same model
# --------------------------------------------------------------------------------------------

REPLAY_STATE_EVENTS = {"full": "full", "open": "open", "blocked": "blocked",
                       "disabled": "disabled", "container_change": "container_change"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_replay_matches_model(data, tmp_path_factory):
    from sorter.replay import replay_events

    tmp = tmp_path_factory.mktemp("replay")
    chutes = data.draw(tables())
    labels = [c[0] for c in chutes]
    routes = data.draw(routes_for(chutes))
    sets = data.draw(settings_for(chutes))
    engine = Sorter(SortPlan(routes=routes, name="w0", **sets),
                    ChuteTable([Chute(i, k, c) for i, k, c in chutes]))
    model = EngineModel(chutes, routes, **sets)
    rows, want = [], []
    for t in range(data.draw(st.integers(1, 40))):
        kind = data.draw(st.sampled_from(["scan"] * 4 + ["discharged", "container_changed",
                                                         "switch_plan"]
                                         + list(REPLAY_STATE_EVENTS)))
        row = {"t": str(t), "event": kind}
        if kind == "scan":
            dest = data.draw(st.sampled_from(DEST_CODES + ["zz", ""]))
            recirc = data.draw(st.sampled_from(["", "0", "1", "2", "3", "5"]))
            flag = data.draw(st.sampled_from(["", "1", "0"]))
            row.update(parcel=f"P{t}", destination=dest, recirculation=recirc, sortable=flag)
            want.append((f"P{t}",) + model.assign(dest or None, int(recirc or 0), flag != "0"))
        elif kind == "switch_plan":
            new = data.draw(routes_for(chutes))
            (tmp / f"wave{t}.csv").write_text(
                "destination,chutes\n"
                + "".join(f"{d},{';'.join(map(str, r))}\n" for d, r in new.items()))
            row["plan"] = f"wave{t}.csv"
            model.switch_routes(new)
        else:
            chute = data.draw(st.sampled_from(labels))
            row["chute"] = str(chute)
            if kind == "discharged":
                model.discharged(chute)
            elif kind == "container_changed":
                model.container_changed(chute)
            else:
                model.set_state(chute, REPLAY_STATE_EVENTS[kind])
        rows.append(row)
    header = ["t", "event", "parcel", "destination", "recirculation", "sortable", "chute", "plan"]
    events = tmp / "events.csv"
    events.write_text(",".join(header) + "\n"
                      + "".join(",".join(r.get(h, "") for h in header) + "\n" for r in rows))
    got = []
    replay_events(engine, events, write=lambda p, c, r: got.append((p, c, r)))
    assert got == want
    assert engine.counters() == model.counters()


# --------------------------------------------------------------------------------------------
# Regressions
# --------------------------------------------------------------------------------------------


def _small_engine():
    table = ChuteTable([Chute("A", "destination", 5), Chute("B", "destination", 5),
                        Chute("R", "reject", 5)])
    reject = {r: "R" for r in REJECT_REASONS}
    return Sorter(SortPlan(routes={"x": ["A"]}, reject=reject, name="wave-1"), table), reject


def test_prepared_mapping_keeps_the_name_in_force_at_the_switch():
    """A mapping prepared before a whole-plan switch took the *old* plan's name when switched
    to (every other setting came from the plan in force at the switch, and
    ``switch_plan(mapping)`` keeps the name in force): ``switch_plan(prepare_plan(m))`` and
    ``switch_plan(m)`` must leave the same plan in force."""
    s, reject = _small_engine()
    prepared = s.prepare_plan({"x": ["B"]})
    s.switch_plan(SortPlan(routes={"x": ["A"]}, reject=reject, name="wave-2",
                           strategy="round_robin"))
    twin = Sorter.from_state(s.state_dict())
    s.switch_plan(prepared)
    twin.switch_plan({"x": ["B"]})
    assert s.plan_name == twin.plan_name == "wave-2"
    assert s.state_dict() == twin.state_dict()
    assert s.assign("x") == ("B", "ok")

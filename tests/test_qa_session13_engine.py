"""QA session 13: the chute engine and the loop-sorter shift simulation, used as outside users
would use them: a WCS engineer embedding ``sorter.Sorter`` and a sortation planner bringing
their own plans and shift scenarios to ``sorter assign`` / ``sorter run``.

Problems found (input -> what went wrong), each pinned by a test below that failed before
its fix:

* ``sorter assign ... --out /dev/null`` (run as root) -> the decisions were written beside
  it and renamed over it: ``/dev/null`` became a regular file for the whole machine. A FIFO
  given as ``--out`` was replaced the same way. (``sorter.report.written_whole``)
* An events CSV with one byte that is not UTF-8 on line 3002 -> the error named line 2811
  (the line of the 8 KB chunk being decoded); with ``--on-error skip`` the 321 good rows
  decoded in the same chunk vanished without a word, one row reported skipped.
  (``sorter.replay``)
* A scenario whose ``[loop] plan`` or ``chutes`` file does not exist -> ``nope.csv: file not
  found``, naming neither the scenario nor its key (a wave's plan did).
  (``sorter.sim.scenario``)
* ``Sorter.discharged(chute, 2**31)`` -> refused with "expected an integer >= 0", which
  2**31 is. (``sorter.engine``)
* An events row whose parcel id starts with a stray ``"`` (``9,scan,"P1,...``) swallows the
  rest of the file -> the error named the file's last line, not the row with the quote.
  (``sorter.replay``)
* An events log over 256 MB (the cap of files read whole; a busy hub's day) -> refused as
  "file too large", though the replay streams it row by row. (``sorter.replay``)
* Chute ids, capacities or max_recirculation as NumPy integers (a chute table read with
  NumPy or pandas) -> "bad capacity np.int64(40) (expected an integer ...)".
  (``sorter.plan``)
* A ``Scenario`` changed in code with a plan CSV's path (or None, or a dict) where a
  ``SortPlan`` goes, in a wave or a loop -> a raw ``AttributeError``. (``sorter.sim.scenario``)

The rest check what was fine and must stay so: a hypothesis state machine drives the engine
against a small plain-Python model written from the README's rules (int and text chute
labels, codes with leading zeros, chutes shared by destinations, overflow chutes that are
destination chutes, plan switches of every kind, batches, restarts through ``state_dict``
and pickle); random planner scenarios (capacity-1 storms, max recirculation 0, gaps,
empty waves, 100 % no-reads, plan switches) keep every parcel-level rule and every KPI
identity; KPIs recomputed from ``parcels.parquet``; the same seed gives the same bytes.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import stat

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sorter import Sorter
from sorter.cli import main
from sorter.constants import REASONS, REJECT_REASONS, STATES, STRATEGIES, Decision
from sorter.errors import InputError
from sorter.plan import Chute, SortPlan, load_plan
from sorter.replay import replay_events
from sorter.sim.kpis import compute_kpis
from sorter.sim.loop import simulate

HEADER = "t,event,parcel,destination,recirculation,sortable,chute,plan\n"


def _cli(*args):
    """``sorter ARGS`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def _one_line_error(rc, err, *must):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sorter "), err
    for m in must:
        assert m in lines[0], (m, lines[0])


# =========================================================================== the model

class Model:
    """The README's chute-assignment rules in plain Python, one call at a time."""

    def __init__(self, plan: SortPlan, chutes):
        self.kind = {c.id: c.kind for c in chutes}
        self.cap = {c.id: c.capacity for c in chutes}
        self.state = {c.id: "open" for c in chutes}
        self.fill = {c.id: 0 for c in chutes}
        self.count = {r: 0 for r in REASONS}
        self.assigned = {c.id: 0 for c in chutes}
        self.put(plan)

    def put(self, plan):
        self.routes = {d: list(r) for d, r in plan.routes.items()}
        self.reject_of = dict(plan.reject)
        self.overflow = list(plan.overflow)
        self.strategy = plan.strategy
        self.max_rec = plan.max_recirculation
        self.cursor = {}                       # round-robin positions restart

    def _open(self, c):
        return self.state[c] == "open"

    def _reject(self, reason):
        own = self.reject_of[reason]
        if self._open(own):
            return own
        for r in REJECT_REASONS:
            if self._open(self.reject_of[r]):
                return self.reject_of[r]
        return own

    def _pick(self, dest):
        route = self.routes[dest]
        if self.strategy == "fill_first":
            return next((c for c in route if self._open(c)), None)
        if self.strategy == "round_robin":
            start = self.cursor.get(dest, 0)
            for k in range(len(route)):
                j = (start + k) % len(route)
                if self._open(route[j]):
                    self.cursor[dest] = (j + 1) % len(route)
                    return route[j]
            return None
        best = None
        for c in route:
            if self._open(c) and (best is None or self.fill[c] < self.fill[best]):
                best = c
        return best

    def assign(self, dest, rc, sortable):
        chute = None
        if not sortable:
            reason = "not_sortable"
        elif dest is None or dest == "":
            reason = "no_read"
        elif rc > self.max_rec:
            reason = "max_recirculation"
        elif dest not in self.routes:
            reason = "unknown_destination"
        else:
            chute = self._pick(dest)
            if chute is not None:
                reason = "ok"
            else:
                chute = next((c for c in self.overflow if self._open(c)), None)
                reason = "overflow" if chute is not None else "no_chute_available"
        if chute is None:
            chute = self._reject(reason)
        self.count[reason] += 1
        self.assigned[chute] += 1
        return Decision(chute, reason)

    def reject(self, reason):
        chute = self._reject(reason)
        self.count[reason] += 1
        self.assigned[chute] += 1
        return Decision(chute, reason)

    def discharged(self, c, n):
        self.fill[c] += n
        if self.fill[c] >= self.cap[c] and self.state[c] == "open":
            self.state[c] = "full"

    def container_changed(self, c):
        self.fill[c] = 0
        self.state[c] = "open"


# Chute labels as a WCS names them: int labels, text that looks like a number, unicode.
_CHUTES = [Chute(7, "destination", 1), Chute("07", "destination", 2), Chute("C-ü", "destination", 3),
           Chute("C4", "destination", 40), Chute(12, "overflow", 1), Chute("OV", "overflow", 2),
           Chute("R1", "reject", 1), Chute(99, "reject", 3)]
_SORTING = [c.id for c in _CHUTES if c.kind != "reject"]
_REJECTS = [c.id for c in _CHUTES if c.kind == "reject"]
_CODES = ["007", "7", "07", "Zürich", "東京", " 7", "a,b", "D"]


@st.composite
def _routes(draw):
    codes = draw(st.lists(st.sampled_from(_CODES), min_size=1, max_size=6, unique=True))
    return {d: tuple(draw(st.lists(st.sampled_from(_SORTING), min_size=1, max_size=4,
                                   unique=True)))
            for d in codes}


@st.composite
def _plans(draw):
    return SortPlan(routes=draw(_routes()),
                    reject={r: draw(st.sampled_from(_REJECTS)) for r in REJECT_REASONS},
                    # overflow chutes of either kind, destination chutes included
                    overflow=tuple(draw(st.lists(st.sampled_from(_SORTING), max_size=3,
                                                 unique=True))),
                    strategy=draw(st.sampled_from(STRATEGIES)),
                    max_recirculation=draw(st.integers(0, 3)), name="p")


def _json(x):
    return json.loads(json.dumps(x))


class EngineMachine(RuleBasedStateMachine):
    """Random call sequences of an embedding WCS against :class:`Model`."""

    @initialize(plan=_plans())
    def start(self, plan):
        self.s = Sorter(plan, _CHUTES)
        self.m = Model(plan, _CHUTES)
        self.n = 0

    @rule(dest=st.one_of(st.sampled_from(_CODES + [None, ""]), st.text(max_size=3)),
          rc=st.integers(-3, 6), sortable=st.booleans())
    def scan(self, dest, rc, sortable):
        got = self.s.assign(dest, rc, sortable)
        assert got == self.m.assign(dest, max(rc, 0), sortable)
        self.n += 1

    @rule(dests=st.lists(st.sampled_from(_CODES + [None, "", "zz"]), max_size=8),
          data=st.data())
    def batch(self, dests, data):
        rc = data.draw(st.lists(st.integers(0, 5), min_size=len(dests), max_size=len(dests)))
        so = data.draw(st.lists(st.booleans(), min_size=len(dests), max_size=len(dests)))
        chutes, reasons = self.s.assign_many(self.s.destination_ids(dests), np.array(rc, int),
                                             np.array(so, bool))
        labels = self.s.chute_ids
        got = [Decision(labels[c], REASONS[r]) for c, r in zip(chutes, reasons)]
        assert got == [self.m.assign(d, k, o) for d, k, o in zip(dests, rc, so)]
        self.n += len(dests)

    @rule(reason=st.sampled_from(REJECT_REASONS))
    def reject(self, reason):
        assert self.s.reject(reason) == self.m.reject(reason)
        self.n += 1

    @rule(chute=st.sampled_from([c.id for c in _CHUTES]), n=st.integers(0, 3))
    def discharged(self, chute, n):
        self.s.discharged(chute, n)
        self.m.discharged(chute, n)

    @rule(chute=st.sampled_from([c.id for c in _CHUTES]), state=st.sampled_from(STATES),
          as_text=st.booleans())
    def set_state(self, chute, state, as_text):
        self.s.set_state(str(chute) if as_text else chute, state)      # "7" names chute 7
        self.m.state[chute] = state

    @rule(chute=st.sampled_from([c.id for c in _CHUTES]))
    def container_changed(self, chute):
        self.s.container_changed(chute)
        self.m.container_changed(chute)

    @rule(routes=_routes(), how=st.sampled_from(["mapping", "prepared"]))
    def switch_routes(self, routes, how):
        self.s.switch_plan(routes if how == "mapping" else self.s.prepare_plan(routes))
        cur = self.s.sort_plan
        self.m.put(SortPlan(routes=routes, reject=cur.reject, overflow=cur.overflow,
                            strategy=cur.strategy, max_recirculation=cur.max_recirculation))

    @rule(plan=_plans())
    def switch_whole_plan(self, plan):
        self.s.switch_plan(plan)
        self.m.put(plan)

    @rule(how=st.sampled_from(["json", "pickle"]))
    def restart(self, how):
        before = _json(self.s.state_dict())
        if how == "json":
            self.s = Sorter.from_state(before)
        else:
            self.s = pickle.loads(pickle.dumps(self.s))
        assert _json(self.s.state_dict()) == before

    @invariant()
    def agrees(self):
        if not hasattr(self, "s"):
            return
        c = self.s.counters()
        assert c["by_reason"] == self.m.count
        assert sum(c["by_reason"].values()) == self.n
        for cid in self.m.kind:
            row = c["by_chute"][cid]
            assert (row["state"], row["fill"], row["assigned"]) == \
                (self.m.state[cid], self.m.fill[cid], self.m.assigned[cid]), cid


TestEngineMachine = EngineMachine.TestCase
TestEngineMachine.settings = settings(max_examples=120, stateful_step_count=40, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])


# =========================================================================== engine edges

def _plan(routes, overflow=(), reject=None, **kw):
    return SortPlan(routes=routes, reject=reject or {r: "R" for r in REJECT_REASONS},
                    overflow=overflow, **kw)


_ANY = st.deferred(lambda: st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6),
    st.binary(max_size=4), st.complex_numbers(), st.just(object()), st.just(float("nan")),
    st.lists(_ANY, max_size=2), st.dictionaries(st.text(max_size=2), _ANY, max_size=2),
    st.tuples(_ANY), st.sampled_from([np.str_("X"), np.bytes_(b"X"), np.float64("nan"),
                                      np.int64(-7), np.uint64(2**64 - 1), np.array([1, 2]),
                                      np.array([]), bytearray(b"0"), Ellipsis, "0", "no"])))


@settings(max_examples=300, deadline=None)
@given(dest=_ANY, rc=_ANY, sortable=_ANY, closed=st.sets(st.sampled_from(["A", "OV", "R", "R2"])))
def test_a_scan_never_raises_and_always_names_a_chute_and_a_reason(dest, rc, sortable, closed):
    """Whatever a WCS hands over (bytes, NaN, objects, numpy scalars, huge or negative
    counts), with any chutes closed (all of them included), the answer is a chute of the
    table and a reason, counted once."""
    chutes = [Chute("A", capacity=1), Chute("OV", "overflow"), Chute("R", "reject"),
              Chute("R2", "reject")]
    s = Sorter(_plan({"X": ("A",)}, overflow=("OV",),
                     reject={**{r: "R" for r in REJECT_REASONS}, "not_sortable": "R2"}), chutes)
    for c in closed:
        s.set_state(c, "disabled")
    d = s.assign(dest, rc, sortable)
    assert isinstance(d, Decision) and d.chute in s.chute_ids and d.reason in REASONS
    if d.reason not in ("ok", "overflow"):
        open_rejects = [c for c in ("R", "R2") if c not in closed]
        assert d.chute in (open_rejects or [s.sort_plan.reject[d.reason]])
    assert sum(s.counters()["by_reason"].values()) == 1
    chutes_b, reasons_b = s.assign_many(s.destination_ids([dest if isinstance(dest, str) else None]))
    assert len(chutes_b) == len(reasons_b) == 1


def test_every_chute_disabled_still_answers_with_the_reasons_own_reject_chute():
    chutes = [Chute("A"), Chute("B"), Chute("OV", "overflow"), Chute("R1", "reject"),
              Chute("R2", "reject")]
    reject = {r: "R1" for r in REJECT_REASONS} | {"not_sortable": "R2"}
    s = Sorter(_plan({"X": ("A", "B")}, overflow=("OV",), reject=reject), chutes)
    for c in s.chute_ids:
        s.set_state(c, "disabled")
    assert s.assign("X") == Decision("R1", "no_chute_available")
    assert s.assign("X", 0, False) == Decision("R2", "not_sortable")
    assert s.assign(None) == Decision("R1", "no_read")
    assert s.reject("late") == Decision("R1", "late")
    s.set_state("R2", "open")               # one reject chute open: every reject goes there
    assert s.assign("X") == Decision("R2", "no_chute_available")
    assert s.assign("nope") == Decision("R2", "unknown_destination")


def test_one_chute_for_every_destination_shared_and_as_overflow():
    """One chute serving every destination and also named as overflow: capacity 1 fills it at
    the first item; then everything goes to reject as no_chute_available, and a container
    change reopens it for all."""
    chutes = [Chute("ALL", capacity=1), Chute("R", "reject")]
    s = Sorter(_plan({f"{i:05d}": ("ALL",) for i in range(50)}, overflow=("ALL",),
                     strategy="least_loaded"), chutes)
    assert s.assign("00007") == Decision("ALL", "ok")
    assert s.assign("7") == Decision("R", "unknown_destination")       # text, not a number
    s.discharged("ALL")
    assert s.chute_state("ALL") == "full"
    assert {s.assign(f"{i:05d}").reason for i in range(50)} == {"no_chute_available"}
    s.container_changed("ALL")
    assert s.assign("00049") == Decision("ALL", "ok")
    c = s.counters()
    assert c["by_chute"]["ALL"]["assigned"] == 2 and c["by_chute"]["R"]["assigned"] == 51


def test_huge_capacity_never_fills_and_round_robin_rotates_over_shared_chutes():
    chutes = [Chute("A", capacity=10**9), Chute("B", capacity=10**9), Chute("R", "reject")]
    s = Sorter(_plan({"X": ("A", "B"), "Y": ("B", "A")}, strategy="round_robin"), chutes)
    s.discharged("A", 2**30)
    assert s.chute_state("A") == "full" and s.chute_fill("A") == 2**30
    s.container_changed("A")
    s.discharged("A", 10**9 - 1)
    assert s.chute_state("A") == "open"
    got = [s.assign(d).chute for d in ("X", "X", "X", "Y", "Y", "Y")]
    assert got == ["A", "B", "A", "B", "A", "B"]      # a cursor per destination


def test_discharged_beyond_its_bound_names_the_bound():
    s = Sorter(_plan({"X": ("A",)}), [Chute("A"), Chute("R", "reject")])
    for n in (2**31, 2**30 + 1, -1):
        with pytest.raises(InputError) as exc:
            s.discharged("A", n)
        assert exc.value.field == "n" and "2**30" in exc.value.expected
    s.discharged("A", 2**30)                      # the bound itself is taken


@pytest.mark.parametrize("call", ["set_state", "discharged", "container_changed", "chute_state",
                                  "chute_fill"])
@pytest.mark.parametrize("chute", ["Z", "7 ", b"A", None, 8, ["A"], float("nan")])
def test_chute_events_on_unknown_chutes_are_input_errors_naming_the_chute(call, chute):
    s = Sorter(_plan({"X": ("A", 7)}), [Chute("A"), Chute(7), Chute("R", "reject")])
    before = s.state_dict()
    args = (chute, "blocked") if call == "set_state" else (chute,)
    with pytest.raises(InputError) as exc:
        getattr(s, call)(*args)
    assert exc.value.field == "chute" and repr(chute) in str(exc.value)
    assert s.state_dict() == before


def test_switch_plan_mid_run_keeps_counts_fill_and_states():
    chutes = [Chute("A", capacity=3), Chute("B"), Chute("R", "reject")]
    s = Sorter(_plan({"X": ("A", "B")}, strategy="round_robin"), chutes)
    for _ in range(5):
        s.assign("X")
    s.discharged("A", 2)
    s.set_state("B", "blocked")
    before = s.counters()
    s.switch_plan({"Y": ("A",), "X": ("B",)})
    assert s.counters() == before
    assert s.assign("X") == Decision("R", "no_chute_available")        # B still blocked
    assert s.assign("Y") == Decision("A", "ok")
    s.discharged("A")                                                   # fill carried over
    assert s.chute_state("A") == "full"
    after = s.counters()["by_reason"]
    assert after["ok"] == before["by_reason"]["ok"] + 1 and sum(after.values()) == 7
    # a restart right after the switch answers as the running engine does
    twin = Sorter.from_state(_json(s.state_dict()))
    s.container_changed("A")
    twin.container_changed("A")
    assert [s.assign(d) for d in "XYX"] == [twin.assign(d) for d in "XYX"]


# =========================================================================== plan files

_CHUTES_TOML = """\
# a planner's chute table: int and text labels, comments, a tab-indented key
[plan]
name = "edge"
strategy = "fill_first"
max_recirculation = 0
overflow = ["A", 17]          # a destination chute as overflow
[reject]
no_read = "R"
unknown_destination = "R"
max_recirculation = "R"
no_chute_available = "R"
not_sortable = "R"
late = "R"
[[chute]]
id = "A"
capacity = 1
[[chute]]
\tid = 17
capacity = 1000000000
[[chute]]
id = "Zü"
[[chute]]
id = "R"
kind = "reject"
"""


@pytest.mark.parametrize("text,routes", [
    ("destination,chutes\n00042,A;17\n42,17\n", {"00042": ("A", 17), "42": (17,)}),
    ("\ufeffdestination,chutes\r\n00042,A\r\n\r\nZürich,Zü;A\r\n",
     {"00042": ("A",), "Zürich": ("Zü", "A")}),
    ('"destination","chutes"\n"00042","A;17"\n"a,b",A\n', {"00042": ("A", 17), "a,b": ("A",)}),
    ("destination , chutes\n# a comment line\n\n 00042 , A ; Zü \n東京,A\n",
     {"00042": ("A", "Zü"), "東京": ("A",)}),
    ("destination,chutes,comment\n00042,A,primary only\n", {"00042": ("A",)}),
    ("destination,chutes\rX,A\rY,A\r", {"X": ("A",), "Y": ("A",)}),
])
def test_unusual_but_valid_plan_files_load_and_sort(tmp_path, text, routes):
    (tmp_path / "c.toml").write_text(_CHUTES_TOML, encoding="utf-8")
    (tmp_path / "p.csv").write_bytes(text.encode("utf-8"))
    plan, table = load_plan(tmp_path / "p.csv", tmp_path / "c.toml")
    assert plan.routes == routes and plan.overflow == ("A", 17)
    s = Sorter(plan, table)
    for dest, route in routes.items():
        assert s.assign(dest) == Decision(route[0], "ok")
        assert s.assign(dest, 1) == Decision("R", "max_recirculation")      # max 0


@pytest.mark.parametrize("text,line,field", [
    ("destination,chutes\nX,A\nY,A;A\n", 3, "chutes"),          # the same chute twice
    ("destination\tchutes\nX\tA\n", 1, "header"),                # tab-separated
    ("destination;chutes\nX;A\n", 1, "header"),                  # a spreadsheet's ';'
    ("destination,chutes\nX,A\nX,17\n", 3, "destination"),      # duplicate destination
    ("destination,chutes\nX,R\n", 2, "chutes"),                  # a reject chute
    ("destination,chutes\nX,A,17\n", 2, "chutes"),               # alternates after a comma
    ("destination,chutes\nX,017\n", 2, "chutes"),                # not chute 17
])
def test_bad_plan_rows_name_file_line_and_field(tmp_path, text, line, field):
    (tmp_path / "c.toml").write_text(_CHUTES_TOML, encoding="utf-8")
    (tmp_path / "p.csv").write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_plan(tmp_path / "p.csv", tmp_path / "c.toml")
    assert (exc.value.path, exc.value.line, exc.value.field) == \
        (str(tmp_path / "p.csv"), line, field)
    assert exc.value.expected


def test_an_overflow_chute_that_is_a_reject_chute_is_refused_naming_the_line(tmp_path):
    (tmp_path / "c.toml").write_text(_CHUTES_TOML.replace('overflow = ["A", 17]',
                                                          'overflow = ["A", "R"]'))
    (tmp_path / "p.csv").write_text("destination,chutes\nX,A\n")
    with pytest.raises(InputError) as exc:
        load_plan(tmp_path / "p.csv", tmp_path / "c.toml")
    assert (exc.value.line, exc.value.field) == (6, "plan.overflow")
    assert "reject" in str(exc.value)


# =========================================================================== shift scenarios

def _planner_scenario(d, seed):
    """A planner's own small scenario, drawn from ``seed``: 1-5 destination chutes (int and
    text ids) with capacity 1, 2, 5 or 1e9, overflow chutes (sometimes a destination chute),
    1-2 reject chutes (capacity 1 included), codes with leading zeros, 1-3 waves with gaps,
    empty waves, truck batches and plan switches, max recirculation 0-2, no-read and
    unknown shares up to 100 %, container changes of 0 s, random blockages."""
    rng = np.random.default_rng(seed)
    pick = lambda xs: xs[int(rng.integers(0, len(xs)))]          # noqa: E731
    ids = [i + 1 if rng.random() < 0.3 else f"C{i:02d}" for i in range(int(rng.integers(1, 6)))]
    ov = [f"OV{i}" for i in range(int(rng.integers(0, 3)))]
    rj = [f"R{i}" for i in range(int(rng.integers(1, 3)))]
    chutes = ([(c, "destination", pick([1, 2, 5, 10**9])) for c in ids]
              + [(c, "overflow", int(rng.integers(1, 4))) for c in ov]
              + [(c, "reject", pick([1, 3, 100])) for c in rj])
    q = lambda c: str(c) if isinstance(c, int) else f'"{c}"'   # noqa: E731
    overflow = ov + ([ids[0]] if rng.random() < 0.3 else [])
    toml = ["[plan]", f'strategy = "{pick(STRATEGIES)}"',
            f"max_recirculation = {int(rng.integers(0, 3))}",
            f"overflow = [{', '.join(q(c) for c in overflow)}]", "[reject]"]
    toml += [f'{r} = "{pick(rj)}"' for r in REJECT_REASONS]
    for j, (cid, kind, cap) in enumerate(chutes):
        toml += ["[[chute]]", f"id = {q(cid)}", f'kind = "{kind}"', f"capacity = {cap}",
                 f"position = {20.0 + 3 * j}", f'side = "{("left", "right")[j % 2]}"']
    (d / "chutes.toml").write_text("\n".join(toml) + "\n", encoding="utf-8")
    sortable = [str(c) for c in ids] + ov
    for name in ("plan.csv", "plan2.csv"):
        rows = ["destination,chutes"]
        for k in range(int(rng.integers(1, 6))):
            n = int(rng.integers(1, min(3, len(sortable)) + 1))
            rows.append(f"{k:04d}," + ";".join(rng.choice(sortable, n, replace=False)))
        (d / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    shift = pick([0.05, 0.2, 0.4])
    sc = ["[scenario]", f"seed = {seed}", f"shift_hours = {shift}",
          f"interval_minutes = {pick([1, 5, 60])}"]
    if rng.random() < 0.3:
        sc.append(f"max_recirculation = {int(rng.integers(0, 3))}")
    sc += ["[loop]", "length_m = 60.0", "speed_mps = 2.0", "pitch_m = 0.6", "scanner_m = 10.0",
           'chutes = "chutes.toml"', 'plan = "plan.csv"',
           "[[loop.induct]]", 'id = "I1"', "position_m = 2.0", "max_rate_per_hour = 4000",
           "[[loop.induct]]", 'id = "I2"', "position_m = 5.0", "max_rate_per_hour = 2000"]
    t, nw = 0.0, int(rng.integers(1, 4))
    for w in range(nw):
        a = t + (pick([0.0, 0.02]) if w else 0.0)              # a gap between waves
        if a >= shift:
            break
        b = max(min(shift, a + shift / nw), a + 0.001)
        sc += ["[[wave]]", f'name = "w{w}"', f"start_h = {a}", f"end_h = {b}"]
        if rng.random() < 0.3:
            sc += ['arrivals = "batched"', f"rate_per_hour = {int(rng.integers(0, 8000))}",
                   "batch_size = 20", "unload_per_hour = 3000"]
        else:
            sc.append(f"rate_per_hour = {pick([0, 2000, 6000, 12000])}")
        if rng.random() < 0.5:
            sc.append(f'plan = "{pick(["plan.csv", "plan2.csv"])}"')
        t = b
    sc += ["[destinations]", f'mix = "{pick(["zipf", "uniform", "split"])}"',
           f"unknown_rate = {pick([0, 0, 0, 0.1, 0.1, 1.0])}",
           "[scan]", f"no_read_rate = {pick([0, 0, 0.05, 0.05, 1.0])}",
           f"not_sortable_rate = {pick([0, 0.05])}",
           "[containers]", f"change_time_s = {pick([0, 5, 60])}",
           f"reaction_time_s = {pick([0, 5, 30])}",
           "[blockages]", f"random_per_hour = {pick([0, 20])}", "duration_s = 20"]
    (d / "s.toml").write_text("\n".join(sc) + "\n", encoding="utf-8")
    return d / "s.toml"


def _check_shift(res, k):
    """Every KPI identity and every per-parcel rule of the README, from the parcel rows."""
    cols = res.parcel_columns()
    status, chute, reason = cols["status"], cols["chute"], cols["reason"]
    rec = cols["recirculations"]
    assert k["offered"] == len(status) == k["inducted"] + k["queued_at_end"]
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    assert sum(k["rejects_by_reason"].values()) == k["rejected"]
    assert k["sorted_to_destination"] + k["sorted_to_overflow"] == k["sorted"]
    for r in REJECT_REASONS:
        assert k["rejects_by_reason"][r] == np.sum((status == "rejected") & (reason == r))
    assert k["sorted"] == np.sum(status == "sorted") and k["rejected"] == np.sum(status == "rejected")
    done = (status == "sorted") | (status == "rejected")
    assert k["recirculations"] == rec.sum()
    assert math.isclose(k["recirculation_pct"],
                        100.0 * np.sum(done & (rec > 0)) / done.sum() if done.any() else 0.0)
    assert np.all(cols["induct_t"][status != "queued"] >= cols["arrival_t"][status != "queued"] - 1e-9)
    assert np.all(cols["discharge_t"][done] >= cols["induct_t"][done])
    assert np.all(np.isnan(cols["induct_t"][status == "queued"]))
    assert np.all(chute[status == "queued"] == "")
    # per chute and per interval figures add up to the parcel rows
    for c in k["chutes"]:
        assert c["discharged"] == np.sum(done & (cols["loop"] == c["loop"]) & (chute == str(c["id"])))
    ts = k["intervals"]
    for key in ("offered", "inducted", "sorted", "rejected", "recirculations"):
        assert sum(ts[key]) == k[key], key
    sc = res.scenario
    for lr in res.loops:
        spec = lr.spec
        kind = {str(c.id): c.kind for c in spec.layout.chutes}
        plans = [sc.plan_for(spec, spec.plan)] + [sc.plan_for(spec, w.plans[spec.name])
                                                  for w in sc.waves if spec.name in w.plans]
        routes = {}
        for p in plans:
            for dest, r in p.routes.items():
                routes.setdefault(dest, set()).update(str(c) for c in r)
        overflow = {str(c) for p in plans for c in p.overflow}
        rejects = {str(c) for p in plans for c in p.reject.values()}
        max_rec = [p.max_recirculation for p in plans]
        for i in np.flatnonzero((cols["loop"] == lr.name) & (reason != "")):
            st_, ch, rs, dest, scan = status[i], chute[i], reason[i], cols["destination"][i], \
                cols["scan"][i]
            if st_ == "sorted":
                assert kind[ch] != "reject" and rs in ("ok", "overflow") and rec[i] <= max(max_rec)
            elif st_ == "rejected":                       # reject chutes take every parcel
                assert kind[ch] == "reject" and ch in rejects and rs in REJECT_REASONS
            if rs == "ok":
                assert ch in routes.get(dest, ()), (dest, ch)
            elif rs == "overflow":
                assert ch in overflow
            elif rs == "max_recirculation":
                assert rec[i] > min(max_rec)
            if scan == "not_sortable":
                assert rs == "not_sortable"
            elif scan == "no_read":
                assert rs == "no_read"
            elif dest == "?unknown":
                assert rs in ("unknown_destination", "max_recirculation")
            else:
                assert rs not in ("no_read", "not_sortable")
    return cols


@pytest.mark.parametrize("block", range(4))
def test_planner_scenarios_keep_every_parcel_rule_and_kpi_identity(tmp_path, block):
    for seed in range(block * 15, block * 15 + 15):
        d = tmp_path / str(seed)
        d.mkdir()
        res = simulate(_planner_scenario(d, seed))
        _check_shift(res, compute_kpis(res))


_EDGE_PLAN = "destination,chutes\n0042,A;7\n0043,7\n"
_EDGE_CHUTES = """\
[plan]
name = "storm"
strategy = "fill_first"
max_recirculation = 0
overflow = ["A"]
[reject]
no_read = "R"
unknown_destination = "R"
max_recirculation = "R"
no_chute_available = "R"
not_sortable = "R"
late = "R"
[[chute]]
id = "A"
capacity = 1
position = 30.0
[[chute]]
id = 7
capacity = 1
position = 40.0
[[chute]]
id = "R"
kind = "reject"
capacity = 1
position = 50.0
"""
_EDGE_SCENARIO = """\
[scenario]
name = "capacity-1 storm"
seed = 3
shift_hours = 0.5
interval_minutes = 5
[loop]
length_m = 60.0
speed_mps = 2.0
pitch_m = 0.6
scanner_m = 10.0
chutes = "chutes.toml"
plan = "plan.csv"
[[loop.induct]]
id = "I1"
position_m = 2.0
max_rate_per_hour = 3000
[[wave]]
name = "w1"
start_h = 0.0
end_h = 0.1
rate_per_hour = 3000
[[wave]]
name = "empty after a gap"
start_h = 0.2
end_h = 0.3
rate_per_hour = 0
plan = "plan2.csv"
[[wave]]
name = "w3"
start_h = 0.3
end_h = 0.5
rate_per_hour = 4000
[scan]
no_read_rate = 0.1
[containers]
change_time_s = 30
reaction_time_s = 10
"""


def _edge_files(d, scenario=_EDGE_SCENARIO, plan2="destination,chutes\n0042,7\n"):
    d.mkdir(parents=True, exist_ok=True)
    (d / "chutes.toml").write_text(_EDGE_CHUTES, encoding="utf-8")
    (d / "plan.csv").write_text(_EDGE_PLAN, encoding="utf-8")
    (d / "plan2.csv").write_text(plan2, encoding="utf-8")
    (d / "s.toml").write_text(scenario, encoding="utf-8")
    return d / "s.toml"


def test_capacity_one_storm_with_max_recirculation_0_and_a_plan_switch_in_a_gap(tmp_path):
    res = simulate(_edge_files(tmp_path))
    k = compute_kpis(res)
    cols = _check_shift(res, k)
    status, rec, reason = cols["status"], cols["recirculations"], cols["reason"]
    assert not np.any(rec[status == "sorted"])               # max 0: no second pass
    assert np.all(rec[reason == "max_recirculation"] >= 1)
    assert k["rejects_by_reason"]["max_recirculation"] > 0
    assert k["rejects_by_reason"]["no_chute_available"] > 0
    # capacity 1: each sorting chute takes one item per container
    changes = int(sum(lr.raw["series"][:, 6].sum() for lr in res.loops))
    assert 0 < k["sorted"] <= changes + 2
    assert [p["plan"] for p in k["loops"][0]["plan_switches"]] == ["plan", "plan2"]
    assert k["loops"][0]["plan_switches"][1]["t_s"] == pytest.approx(720.0, abs=0.5)
    # after the switch 0043 is no destination of the plan: every later read one is unknown
    later = (cols["destination"] == "0043") & (cols["arrival_t"] >= 720.0) & (cols["scan"] == "read")
    assert later.any() and set(reason[later]) <= {"unknown_destination", ""}
    empty = k["per_wave"][1]
    assert empty["offered_per_hour"] == 0 and empty["plans"] == {"loop": "plan2"}


@pytest.mark.parametrize("change,check", [
    ("no_read_rate = 0.1", lambda k: k["sorted"] == 0 and k["rejected"] ==
     k["rejects_by_reason"]["no_read"] + k["rejects_by_reason"]["not_sortable"]),
    ("no_read_rate = 0.1\nnot_sortable_rate = 1.0",
     lambda k: k["rejected"] == k["rejects_by_reason"]["not_sortable"] > 0),
])
def test_a_shift_of_unreadable_or_unsortable_parcels_sorts_none(tmp_path, change, check):
    text = _EDGE_SCENARIO.replace("no_read_rate = 0.1", "no_read_rate = 1.0")
    text = text.replace("no_read_rate = 1.0", change.replace("0.1", "1.0"))
    res = simulate(_edge_files(tmp_path, text))
    k = compute_kpis(res)
    _check_shift(res, k)
    assert k["rejected"] > 0 and check(k)


def _no_nan(x):
    raise AssertionError(f"{x} in the JSON")


def test_a_shift_without_parcels_writes_its_outputs_with_zero_kpis(tmp_path):
    text = _EDGE_SCENARIO.replace("\nrate_per_hour = 3000", "\nrate_per_hour = 0") \
        .replace("\nrate_per_hour = 4000", "\nrate_per_hour = 0")
    scen = _edge_files(tmp_path / "in", text)
    rc, out, err = _cli("run", scen, "--out", tmp_path / "out" / "nested", "--json")
    assert rc == 0, err
    k = json.loads(out, parse_constant=_no_nan)            # strict JSON: no NaN, no Infinity
    json.loads((tmp_path / "out" / "nested" / "kpis.json").read_text(), parse_constant=_no_nan)
    assert (k["offered"], k["sorted"], k["recirculation_pct"], k["induct_to_chute_s_p95"]) == \
        (0, 0, 0.0, 0.0)
    pq = pytest.importorskip("pyarrow.parquet")
    assert pq.read_table(tmp_path / "out" / "nested" / "parcels.parquet").num_rows == 0


@pytest.mark.parametrize("shift,rate", [(0.0002, 3000), (0.01, 3000), (168, 40)])
def test_very_short_and_very_long_shifts_conserve_parcels(tmp_path, shift, rate):
    """A shift shorter than a lap of the loop (0.7 s, 36 s) and a week-long one."""
    head, rest = _EDGE_SCENARIO.split("[[wave]]", 1)
    text = (head.replace("shift_hours = 0.5", f"shift_hours = {shift}")
            + f'[[wave]]\nname = "all"\nstart_h = 0\nend_h = {shift}\nrate_per_hour = {rate}\n'
            + "[scan]" + rest.split("[scan]")[1])
    res = simulate(_edge_files(tmp_path, text))
    k = compute_kpis(res)
    _check_shift(res, k)
    assert k["shift_hours"] == shift and len(k["intervals"]["start_s"]) >= 1
    if shift > 1:
        assert k["sorted"] > 0


def test_kpis_recomputed_from_parcels_parquet_and_same_seed_same_bytes(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    scen = _edge_files(tmp_path / "in")
    outs = []
    for name in ("a", "b"):
        rc, out, err = _cli("run", scen, "--seed", 11, "--out", tmp_path / name, "--json")
        assert rc == 0, err
        outs.append(out)
    assert outs[0] == outs[1]
    for f in ("kpis.json", "parcels.parquet", "timeseries.csv", "chutes.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    k = json.loads(outs[0], parse_constant=_no_nan)
    t = pq.read_table(tmp_path / "a" / "parcels.parquet").to_pydict()
    status, reason = np.array(t["status"]), np.array(t["reason"])
    rec, chute = np.array(t["recirculations"]), np.array(t["chute"])
    done = (status == "sorted") | (status == "rejected")
    assert k["offered"] == len(status)
    assert k["inducted"] == np.sum(status != "queued")
    assert k["sorted"] == np.sum(status == "sorted") and k["rejected"] == np.sum(status == "rejected")
    assert k["on_loop_at_end"] == np.sum(status == "on_loop")
    assert k["rejects_by_reason"] == {r: int(np.sum((status == "rejected") & (reason == r)))
                                      for r in REJECT_REASONS}
    assert k["sorted_to_overflow"] == np.sum((status == "sorted") & (reason == "overflow"))
    assert k["recirculation_pct"] == pytest.approx(100 * np.sum(done & (rec > 0)) / done.sum())
    t_ic = (np.array(t["discharge_t"]) - np.array(t["induct_t"]))[done]
    assert k["induct_to_chute_s_p95"] == pytest.approx(np.percentile(t_ic, 95))
    # the int chute id 7 and the leading-zero codes come out as written
    assert set(chute[status == "sorted"]) <= {"A", "7"}
    assert set(np.array(t["destination"])[status != "queued"]) <= {"0042", "0043", "?unknown"}
    rc, out3, err = _cli("run", scen, "--seed", 12, "--json")
    assert rc == 0 and out3 != outs[0]


def test_a_missing_loop_plan_or_chute_file_names_the_scenario_line_and_key(tmp_path):
    scen = _edge_files(tmp_path)
    for key, line, new in (("plan", 12, 'plan = "nope.csv"'), ("chutes", 11, 'chutes = "no.toml"')):
        old = 'plan = "plan.csv"' if key == "plan" else 'chutes = "chutes.toml"'
        scen.write_text(_EDGE_SCENARIO.replace(old, new), encoding="utf-8")
        rc, out, err = _cli("run", scen, "--json")
        _one_line_error(rc, err, f"{scen}:{line}:", f"field 'loop.{key}'", "not found",
                        new.split('"')[1])
        assert out == ""


# =========================================================================== the commands

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_assign_out_onto_a_fifo_writes_into_it_and_leaves_it_a_fifo(tmp_path):
    """``--out /dev/null`` (or a FIFO) is written to, not replaced by a regular file: as root
    the rename used to turn the machine's /dev/null into a file. (A FIFO stands in for
    /dev/null here: the test must not risk the real one.)"""
    d = _assign_files(tmp_path)
    fifo = tmp_path / "decisions.fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)      # a reader, so writers do not block
    try:
        rc, out, err = _cli("assign", "--plan", d / "p.csv", "--chutes", d / "c.toml",
                            "--events", d / "e.csv", "--out", fifo)
        assert rc == 0, err
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        assert os.read(rfd, 1 << 16).decode().splitlines()[:2] == ["parcel,chute,reason",
                                                                   "P1,A,ok"]
    finally:
        os.close(rfd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "decisions.fifo", "e.csv",
                                                          "p.csv", "p2.csv"]


def _assign_files(d, events=None):
    (d / "c.toml").write_text(_CHUTES_TOML, encoding="utf-8")
    (d / "p.csv").write_text("destination,chutes\n00042,A;17\n", encoding="utf-8")
    (d / "p2.csv").write_text("destination,chutes\n00042,17\n", encoding="utf-8")
    (d / "e.csv").write_bytes(events if events is not None else (
        HEADER + "0,scan,P1,00042,0,1,,\n1,discharged,,,,,A,\n2,scan,P2,00042,,,,\n"
        "3,switch_plan,,,,,,p2.csv\n4,scan,P3,42,0,1,,\n").encode())
    return d


def test_events_with_a_byte_that_is_not_utf8_name_its_line_and_skip_only_that_row(tmp_path):
    rows = "".join(f"{i},scan,P{i},00042,0,1,,\n" for i in range(3000))
    data = (HEADER + rows).encode() + b"9,scan,PX,Z\xfcrich,0,1,,\n" + rows.encode()
    d = _assign_files(tmp_path, data)
    s = Sorter.from_files(d / "p.csv", d / "c.toml")
    with pytest.raises(InputError) as exc:
        replay_events(s, d / "e.csv")
    assert exc.value.line == 3002 and "UTF-8" in str(exc.value)
    s = Sorter.from_files(d / "p.csv", d / "c.toml")
    res = replay_events(s, d / "e.csv", on_error="skip")
    assert res.decisions == 6000 and [line for line, _ in res.skipped] == [3002]
    # the same through the command: one line naming it
    rc, out, err = _cli("assign", "--plan", d / "p.csv", "--chutes", d / "c.toml",
                        "--events", d / "e.csv", "--out", tmp_path / "d.csv")
    _one_line_error(rc, err, "e.csv:3002:", "UTF-8")
    assert not (tmp_path / "d.csv").exists()


def test_events_with_bom_crlf_quotes_and_old_mac_line_ends_replay(tmp_path):
    text = (HEADER + '0,scan,"P,1",00042,0,1,,\n1,scan,P2,,0,1,,\n').replace("\n", "\r\n")
    for data in (b"\xef\xbb\xbf" + text.encode(), text.replace("\r\n", "\r").encode()):
        d = _assign_files(tmp_path, data)
        rc, out, err = _cli("assign", "--plan", d / "p.csv", "--chutes", d / "c.toml",
                            "--events", d / "e.csv", "--out", tmp_path / "a" / "b" / "d.csv")
        assert rc == 0, err
        assert (tmp_path / "a" / "b" / "d.csv").read_text().splitlines() == \
            ["parcel,chute,reason", '"P,1",A,ok', "P2,R,no_read"]


def test_assign_replays_a_plan_switch_and_int_chute_ids(tmp_path):
    d = _assign_files(tmp_path)
    rc, out, err = _cli("assign", "--plan", d / "p.csv", "--chutes", d / "c.toml",
                        "--events", d / "e.csv", "--out", tmp_path / "d.csv")
    assert rc == 0, err
    assert (tmp_path / "d.csv").read_text().splitlines() == [
        "parcel,chute,reason", "P1,A,ok", "P2,17,ok", "P3,R,unknown_destination"]
    assert out.startswith("3 decisions, 5 events applied")


@pytest.mark.parametrize("events,line,field", [
    ("0,blocked,,,,,ZZ,\n", 2, "chute"),
    ("0,explode,,,,,A,\n", 2, "event"),
    ("0,scan,P1,00042,-1,1,,\n", 2, "recirculation"),
    ("0,scan,P1,00042,1.0,1,,\n", 2, "recirculation"),
    ("0,scan,P1,00042,0,yes,,\n", 2, "sortable"),
    ("0,scan,P1\n", 2, "row"),
    ("0,scan,P1,00042,0,1,,,x\n", 2, "row"),
    ("0,switch_plan,,,,,,nope.csv\n", 2, "plan"),
    ("0,switch_plan,,,,,,c.toml\n", 2, "plan"),
    ("0,scan,P1,00042,0,1,,\n0,discharged,,,,,17 ,\n1,discharged,,,,,,\n", 4, "chute"),
])
def test_assign_bad_events_are_one_line_naming_file_line_and_field(tmp_path, events, line, field):
    d = _assign_files(tmp_path, (HEADER + events).encode())
    rc, out, err = _cli("assign", "--plan", d / "p.csv", "--chutes", d / "c.toml",
                        "--events", d / "e.csv", "--out", tmp_path / "d.csv")
    _one_line_error(rc, err, f"e.csv:{line}:", f"field '{field}'", "expected")
    assert not (tmp_path / "d.csv").exists()


@pytest.mark.parametrize("change,must", [
    (("\nrate_per_hour = 3000", '\nrate_per_hour = "3000"'), "wave[0].rate_per_hour"),
    (("rate_per_hour = 4000", "rate_per_hr = 4000"), "wave[2].rate_per_hr"),
    (("start_h = 0.3\nend_h = 0.5", "start_h = 0.05\nend_h = 0.15"), "wave[2].start_h"),
    (("start_h = 0.3\nend_h = 0.5", "start_h = 0.6\nend_h = 0.7"), "wave[2].start_h"),
    (("seed = 3", "seed = 3\nmax_recirculation = -1"), "scenario.max_recirculation"),
    (("plan = \"plan2.csv\"", "plan = { other = \"plan2.csv\" }"), "wave[1].plan"),
    (("no_read_rate = 0.1", "no_read_rate = 1.5"), "scan.no_read_rate"),
])
def test_run_scenario_mistakes_are_one_line_naming_line_and_field(tmp_path, change, must):
    scen = _edge_files(tmp_path, _EDGE_SCENARIO.replace(*change))
    rc, out, err = _cli("run", scen, "--json")
    _one_line_error(rc, err, f"{scen}:", f"field '{must}'", "expected")


@pytest.mark.parametrize("plan2,must", [
    ("destination,chutes\n0042,Z9\n", "plan2.csv:2: field 'chutes'"),
    ("destination,chutes\n0042,R\n", "plan2.csv:2: field 'chutes'"),
    ("destination,chutes\n", "plan2.csv:2: field 'destination'"),
    ("destination\tchutes\n0042\t7\n", "plan2.csv:1: field 'header'"),
])
def test_run_bad_wave_plan_files_are_one_line_naming_them(tmp_path, plan2, must):
    scen = _edge_files(tmp_path, plan2=plan2)
    rc, out, err = _cli("run", scen, "--json")
    _one_line_error(rc, err, must)


def test_run_out_onto_an_existing_file_fails_before_simulating_and_keeps_it(tmp_path):
    scen = _edge_files(tmp_path / "in")
    (tmp_path / "taken").write_text("mine")
    rc, out, err = _cli("run", scen, "--out", tmp_path / "taken")
    _one_line_error(rc, err, "--out", "not a folder")
    assert (tmp_path / "taken").read_text() == "mine" and out == ""


def test_an_events_log_larger_than_the_whole_file_cap_is_replayed(tmp_path, monkeypatch):
    """The replay streams its rows, so a day's log of a busy hub (beyond the 256 MB cap of
    files read whole) is taken; devices are still refused. (The size is faked: the test
    writes no 300 MB file.)"""
    from sorter.plan import MAX_INPUT_BYTES
    d = _assign_files(tmp_path)
    real = os.stat

    def big(p, *a, **k):
        st_ = real(p, *a, **k)
        if str(p) == str(d / "e.csv"):
            v = list(st_)
            v[stat.ST_SIZE] = MAX_INPUT_BYTES + 1
            return os.stat_result(v)
        return st_
    monkeypatch.setattr(os, "stat", big)
    assert os.stat(d / "e.csv").st_size > MAX_INPUT_BYTES
    res = replay_events(Sorter.from_files(d / "p.csv", d / "c.toml"), d / "e.csv")
    assert res.decisions == 3
    monkeypatch.undo()
    if os.path.exists("/dev/zero"):
        with pytest.raises(InputError, match="not a regular file"):
            replay_events(Sorter.from_files(d / "p.csv", d / "c.toml"), "/dev/zero")


def test_a_stray_quote_names_the_row_it_starts_on_not_the_end_of_the_file(tmp_path):
    """A barcode read as ``"P1`` opens a quoted field that swallows every row after it: the
    error named the file's last line (line 202 here) instead of the row with the quote."""
    rows = "".join(f"{i},scan,P{i},00042,0,1,,\n" for i in range(100))
    d = _assign_files(tmp_path, (HEADER + rows + '9,scan,"P1,00042,0,1,,\n' + rows).encode())
    with pytest.raises(InputError) as exc:
        replay_events(Sorter.from_files(d / "p.csv", d / "c.toml"), d / "e.csv")
    assert exc.value.line == 102 and "runs on to line 202" in str(exc.value)
    # a quoted field holding a line break is one row, answered, and later lines still count
    d = _assign_files(tmp_path, (HEADER + '0,scan,"P\n1",00042,0,1,,\n\n3,explode,,,,,,\n').encode())
    s = Sorter.from_files(d / "p.csv", d / "c.toml")
    res = replay_events(s, d / "e.csv", on_error="skip")
    assert res.decisions == 1 and [line for line, _ in res.skipped] == [5]


def test_a_chute_table_and_plan_read_from_numpy_or_pandas_take_numpy_integers():
    """Chute ids and capacities, and max_recirculation, as NumPy integers (a table read with
    NumPy or pandas) were refused as "bad capacity np.int64(40) (expected an integer ...)";
    they are integers, taken as plain ints (so state_dict() stays JSON)."""
    rows = np.array([(5, 1), (6, 40)], dtype=[("id", "i8"), ("capacity", "i4")])
    chutes = [Chute(r["id"], capacity=r["capacity"]) for r in rows] + \
        [{"id": "R", "kind": "reject", "capacity": np.uint16(3)}]
    plan = SortPlan(routes={"X": [np.int64(5), np.int64(6)]},
                    reject={r: "R" for r in REJECT_REASONS}, max_recirculation=np.int8(0))
    s = Sorter(plan, chutes, max_recirculation=np.int64(1))
    assert [type(c) for c in s.chute_ids] == [int, int, str]
    assert s.assign("X") == Decision(5, "ok") and s.assign("X", 2).reason == "max_recirculation"
    s.discharged(np.int64(5))
    assert s.assign("X") == Decision(6, "ok")
    state = json.loads(json.dumps(s.state_dict()))
    assert state["plan"]["max_recirculation"] == 1 and state["chutes"][0]["capacity"] == 1
    assert Sorter.from_state(state).assign("X") == s.assign("X")
    for bad in (np.True_, 1.5, np.float64(5.0)):
        with pytest.raises(InputError):
            Sorter(_plan({"X": ("A",)}), [Chute("A", capacity=bad), Chute("R", "reject")])


def test_a_scenario_changed_in_code_with_a_plan_that_is_no_sortplan_names_the_field(tmp_path):
    """A planner scripting a study puts the plan CSV's path (the file's form), None or a
    routes dict where a SortPlan goes: that was a raw AttributeError ('str' object has no
    attribute 'routes'); it is an InputError naming the wave's or the loop's plan."""
    from dataclasses import replace

    from sorter.sim.scenario import LoopSpec, load_scenario
    sc = load_scenario(_edge_files(tmp_path))
    for bad in (str(tmp_path / "plan2.csv"), None, {"0042": ["A"]}):
        with pytest.raises(InputError) as exc:
            replace(sc, waves=[sc.waves[0], replace(sc.waves[1], plans={"loop": bad}),
                               sc.waves[2]])
        assert exc.value.field == "wave[1].plan"
        with pytest.raises(InputError) as exc:
            replace(sc, loops=[LoopSpec(sc.loops[0].layout, bad)])
        assert exc.value.field == "loop[0].plan"
    with pytest.raises(InputError) as exc:
        replace(sc, loops=[LoopSpec("CB1", sc.loops[0].plan)])
    assert exc.value.field == "loop[0].layout"
    # a SortPlan put in by code is taken and switched in at the wave's start
    plan = replace(sc.loops[0].plan, routes={"0043": ("A",)}, name="in-code")
    res = simulate(replace(sc, waves=[sc.waves[0], replace(sc.waves[1], plans={"loop": plan}),
                                      sc.waves[2]]))
    assert [p for _, p in res.loops[0].plan_switches] == ["plan", "in-code"]


_CODE_CHARS = st.characters(blacklist_categories=("Cs", "Cc"))     # no control characters


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(codes=st.lists(st.text(_CODE_CHARS, min_size=1, max_size=8), min_size=1, max_size=8),
       data=st.data(), bom=st.booleans(), crlf=st.booleans())
def test_a_plan_written_by_a_spreadsheet_reads_back_as_written(tmp_path, codes, data, bom, crlf):
    """Any destination codes a CSV writer can quote (commas, quotes, unicode separators,
    leading zeros) read back as written, minus surrounding blanks; BOM and CRLF or not."""
    import csv as _csv
    codes = [c.strip() for c in codes]
    codes = list(dict.fromkeys(c for c in codes if c and not c.startswith("#")))
    if not codes:
        return
    routes = {c: tuple(data.draw(st.lists(st.sampled_from(["A", 17, "Zü"]), min_size=1,
                                          max_size=3, unique=True))) for c in codes}
    buf = io.StringIO(newline="")
    w = _csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    w.writerow(["destination", "chutes"])
    for c, r in routes.items():
        w.writerow([c, ";".join(map(str, r))])
    (tmp_path / "c.toml").write_text(_CHUTES_TOML, encoding="utf-8")
    (tmp_path / "p.csv").write_bytes(("\ufeff" if bom else "").encode() + buf.getvalue().encode())
    plan, table = load_plan(tmp_path / "p.csv", tmp_path / "c.toml")
    assert plan.routes == routes
    s = Sorter(plan, table)
    assert all(s.assign(c) == Decision(r[0], "ok") for c, r in routes.items())

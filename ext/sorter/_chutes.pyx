# cython: language_level=3
"""The chute engine: one decision per scanned parcel, in a few tens of nanoseconds.

Python validates and interns (``sorter.engine.Sorter``); this module trusts its
inputs. Everything a decision reads is a flat integer array, so the loop-sorter
simulation calls :meth:`ChuteEngine.decide` at C level without the GIL.
"""
import numpy as np

from cpython.long cimport PyLong_Check, PyLong_AsLongAndOverflow
from libc.stdint cimport int8_t, int32_t, int64_t

from sorter.constants import Decision, REASONS, STATES

# The numeric codes above are the positions in these tuples; a test checks it.
ENGINE_REASONS = ("ok", "overflow", "no_read", "unknown_destination", "max_recirculation",
                  "no_chute_available", "not_sortable", "late")
ENGINE_STATES = ("open", "full", "container_change", "blocked", "disabled")
ENGINE_KINDS = ("destination", "overflow", "reject")
ENGINE_STRATEGIES = ("fill_first", "round_robin", "least_loaded")
DEST_ID_UNKNOWN = DEST_UNKNOWN
DEST_ID_NO_READ = DEST_NO_READ

cdef int MAX_COUNT = 1 << 30


cdef inline int _as_count(object x):
    """A recirculation count from any object: numbers clamp to [0, 2**30] (+inf to the top);
    text reads as the number it writes ("3", " 2.0 ", "inf"); junk (NaN, other text, None)
    counts as 0."""
    cdef long v
    cdef int overflow = 0
    if PyLong_Check(x):
        v = PyLong_AsLongAndOverflow(x, &overflow)
        if overflow > 0 or v > MAX_COUNT:
            return MAX_COUNT
        if overflow < 0 or v < 0:
            return 0
        return <int>v
    try:
        return _as_count(int(x))
    except OverflowError:            # +inf (more laps than can be counted) or -inf
        try:
            return MAX_COUNT if x > 0 else 0
        except Exception:
            return 0
    except Exception:                # NaN, text, None, ...: no recirculation to count
        if isinstance(x, (str, bytes, bytearray)):  # "2.0" is 2 laps (was 0: int() reads no point)
            try:
                return _as_count(float(x))
            except Exception:
                return 0
        return 0


def recirculation_count(x):
    """The recirculation count :meth:`ChuteEngine.assign` reads from ``x`` (any object)."""
    return _as_count(x)


# texts that say "not sortable", stripped and lower-cased (as the files write 0)
_FALSE_TEXTS = frozenset(("0", "false", "no"))


cdef inline bint _as_flag(object x):
    """Sortable flag from any object; anything that is not clearly false is sortable.

    Text reads as the files and telegrams write the flag: ``"0"``, ``"false"`` and ``"no"``
    (any case, spaces around) are not sortable, any other text (an empty field too) is.
    Anything else by its truth value (``None`` and 0 are not sortable, NaN is)."""
    if x is True:
        return 1
    if x is False:
        return 0
    try:
        if isinstance(x, (bytes, bytearray)):
            x = bytes(x).decode("ascii", "replace")
        if isinstance(x, str):
            return str(x).strip().lower() not in _FALSE_TEXTS
        return bool(x)
    except Exception:
        return 1


def sortable_flag(x):
    """The sortable flag :meth:`ChuteEngine.assign` reads from ``x`` (any object)."""
    return _as_flag(x)


cdef class CompiledPlan:
    def __init__(self, name, int n_dest, route_ptr, route_chutes, overflow, reject,
                 rr_cursor, int strategy, int max_recirculation):
        self.name = name
        self.n_dest = n_dest
        self.route_ptr = np.ascontiguousarray(route_ptr, dtype=np.int32)
        self.route_chutes = np.ascontiguousarray(route_chutes, dtype=np.int32)
        self.overflow = np.ascontiguousarray(overflow, dtype=np.int32)
        self.reject = np.ascontiguousarray(reject, dtype=np.int32)
        self.rr_cursor = np.array(rr_cursor, dtype=np.int32)   # a private, writable copy
        self.strategy = strategy
        self.max_recirculation = max_recirculation

    def arrays(self):
        """The plan's arrays as NumPy copies (for state snapshots and tests)."""
        return {
            "route_ptr": np.asarray(self.route_ptr).copy(),
            "route_chutes": np.asarray(self.route_chutes).copy(),
            "overflow": np.asarray(self.overflow).copy(),
            "reject": np.asarray(self.reject).copy(),
            "rr_cursor": np.asarray(self.rr_cursor).copy(),
        }


cdef class ChuteEngine:
    """Compiled core of :class:`sorter.Sorter`; use that class, not this one."""

    def __cinit__(self, *args, **kwargs):
        self.n_chutes = 0
        self.dest_index = {"": DEST_NO_READ}
        self.dest_codes = []
        self.chute_index = {}
        self.chute_labels = []
        self.decisions = []
        self.reason_count = np.zeros(N_REASONS, dtype=np.int64)

    # -- set-up (called once by the Python wrapper, with validated inputs) ----------
    def _install_chutes(self, labels, kinds, capacities):
        cdef int n = len(labels)
        self.n_chutes = n
        self.chute_labels = list(labels)
        self.chute_index = {}
        for i, label in enumerate(self.chute_labels):
            self.chute_index[label] = i
            self.chute_index.setdefault(str(label), i)
        self.kind = np.ascontiguousarray(kinds, dtype=np.int8)
        self.capacity = np.ascontiguousarray(capacities, dtype=np.int32)
        self.state = np.zeros(n, dtype=np.int8)
        self.fill = np.zeros(n, dtype=np.int32)
        self.assigned = np.zeros(n, dtype=np.int64)
        self.discharged_count = np.zeros(n, dtype=np.int64)
        self.decisions = [Decision(self.chute_labels[i // N_REASONS], REASONS[i % N_REASONS])
                          for i in range(n * N_REASONS)]

    def _intern(self, codes):
        """Dense ids for destination codes, adding new codes at the end (ids never change)."""
        out = np.empty(len(codes), dtype=np.int32)
        for i, code in enumerate(codes):
            d = self.dest_index.get(code)
            if d is None:
                d = len(self.dest_codes)
                self.dest_codes.append(code)
                self.dest_index[code] = d
            out[i] = d
        return out

    def _set_plan(self, CompiledPlan plan not None):
        # One reference swap under the GIL: a decision sees the old plan or the new one.
        self.plan = plan

    def _load_state(self, state, fill, assigned, discharged, reason_count):
        self.state = np.array(state, dtype=np.int8)
        self.fill = np.array(fill, dtype=np.int32)
        self.assigned = np.array(assigned, dtype=np.int64)
        self.discharged_count = np.array(discharged, dtype=np.int64)
        self.reason_count = np.array(reason_count, dtype=np.int64)

    # -- the decision, at C level -----------------------------------------------
    cdef int decide(self, CompiledPlan p, int dest, int recirculation, bint sortable,
                    int* reason) noexcept nogil:
        cdef int r, c = -1, i, k, n, lo, hi, start, best
        if not sortable:
            r = REASON_NOT_SORTABLE
        elif dest == DEST_NO_READ:
            r = REASON_NO_READ
        elif recirculation > p.max_recirculation:
            r = REASON_MAX_RECIRCULATION
        elif dest < 0 or dest >= p.n_dest or p.route_ptr[dest] == p.route_ptr[dest + 1]:
            r = REASON_UNKNOWN_DESTINATION
        else:
            lo = p.route_ptr[dest]
            hi = p.route_ptr[dest + 1]
            if p.strategy == STRATEGY_FILL_FIRST:
                for i in range(lo, hi):
                    if self.state[p.route_chutes[i]] == STATE_OPEN:
                        c = p.route_chutes[i]
                        break
            elif p.strategy == STRATEGY_ROUND_ROBIN:
                n = hi - lo
                start = p.rr_cursor[dest]
                for k in range(n):
                    i = lo + (start + k) % n
                    if self.state[p.route_chutes[i]] == STATE_OPEN:
                        c = p.route_chutes[i]
                        p.rr_cursor[dest] = (start + k + 1) % n
                        break
            else:  # least loaded; ties go to plan order
                best = 0
                for i in range(lo, hi):
                    k = p.route_chutes[i]
                    if self.state[k] == STATE_OPEN and (c < 0 or self.fill[k] < best):
                        c = k
                        best = self.fill[k]
            if c >= 0:
                r = REASON_OK
            else:
                for i in range(p.overflow.shape[0]):
                    if self.state[p.overflow[i]] == STATE_OPEN:
                        c = p.overflow[i]
                        break
                r = REASON_OVERFLOW if c >= 0 else REASON_NO_CHUTE_AVAILABLE
        if r != REASON_OK and r != REASON_OVERFLOW:
            c = self.reject_chute(p, r)
        self.reason_count[r] += 1
        self.assigned[c] += 1
        reason[0] = r
        return c

    cdef int reject_chute(self, CompiledPlan p, int r) noexcept nogil:
        """The chute for a parcel rejected for reason ``r``: the reason's reject chute if it
        is open; else the plan's first open reject chute, the reasons taken in code order
        (no_read, unknown_destination, max_recirculation, no_chute_available, not_sortable,
        late); else, none open, the reason's own chute all the same (a decision always names
        a chute; the reject chutes are the last resort)."""
        cdef int c = p.reject[r], i
        if self.state[c] == STATE_OPEN:
            return c
        for i in range(REASON_NO_READ, N_REASONS):
            if self.state[p.reject[i]] == STATE_OPEN:
                return p.reject[i]
        return c

    cdef void discharge(self, int chute, int n) noexcept nogil:
        self.fill[chute] += n
        self.discharged_count[chute] += n
        if self.fill[chute] >= self.capacity[chute] and self.state[chute] == STATE_OPEN:
            self.state[chute] = STATE_FULL

    cdef void change_state(self, int chute, int new_state) noexcept nogil:
        self.state[chute] = <int8_t>new_state

    cdef void empty_container(self, int chute) noexcept nogil:
        self.fill[chute] = 0
        self.state[chute] = STATE_OPEN

    # -- Python entry points ----------------------------------------------------
    def assign(self, destination, recirculation=0, sortable=True):
        """Chute for one scanned parcel; never raises (see :class:`sorter.Sorter`)."""
        cdef int dest, reason = 0, chute
        cdef CompiledPlan p = self.plan
        if destination is None:
            dest = DEST_NO_READ
        else:
            try:
                d = self.dest_index.get(destination)
            except Exception:       # unhashable junk (or a hash/compare that fails)
                d = None
            dest = DEST_UNKNOWN if d is None else <int>d
        chute = self.decide(p, dest, _as_count(recirculation), _as_flag(sortable), &reason)
        return self.decisions[chute * N_REASONS + reason]

    def assign_id(self, dest_id, recirculation=0, sortable=True):
        """Like :meth:`assign` for an interned id (:meth:`Sorter.destination_ids`); returns
        ``(chute_index, reason_code)``. Never raises: an id that is no integer of the
        engine's range is an unknown destination; counts and flags read as in :meth:`assign`."""
        cdef int reason = 0, dest = DEST_UNKNOWN, overflow = 0
        cdef long v
        if PyLong_Check(dest_id) and not isinstance(dest_id, bool):
            v = PyLong_AsLongAndOverflow(dest_id, &overflow)
            if overflow == 0 and DEST_NO_READ <= v < MAX_COUNT:
                dest = <int>v
        elif isinstance(dest_id, np.integer):
            try:
                v = int(dest_id)
                if DEST_NO_READ <= v < MAX_COUNT:
                    dest = <int>v
            except Exception:
                pass
        cdef int chute = self.decide(self.plan, dest, _as_count(recirculation),
                                     _as_flag(sortable), &reason)
        return chute, reason

    def reject_decision(self, reason):
        """The decision that sends a parcel to the reject chute of ``reason`` (e.g. ``"late"``),
        counted like any other decision."""
        cdef int r = REASONS.index(reason)
        cdef int chute = self.reject_chute(self.plan, r)
        self.reason_count[r] += 1
        self.assigned[chute] += 1
        return self.decisions[chute * N_REASONS + r]

    def _assign_many(self, const int32_t[::1] dest, const int32_t[::1] recirculation,
                     const int8_t[::1] sortable, int32_t[::1] out_chute, int8_t[::1] out_reason):
        cdef Py_ssize_t i, n = dest.shape[0]
        cdef int reason = 0
        cdef CompiledPlan p = self.plan
        with nogil:
            for i in range(n):
                out_chute[i] = self.decide(p, dest[i], recirculation[i], sortable[i] != 0, &reason)
                out_reason[i] = <int8_t>reason

    def _discharged(self, int chute, int n):
        # a container holds at most 2**31 - 1 items: a count past that stops there instead
        # of wrapping negative (a WCS sending running totals instead of increments)
        cdef int room = 2147483647 - self.fill[chute]
        if n > room:
            self.discharged_count[chute] += n - room
            n = room
        self.discharge(chute, n)

    def _set_state_code(self, int chute, int code):
        self.change_state(chute, code)

    def _container_changed(self, int chute):
        self.empty_container(chute)

    def _destination_ids(self, codes):
        cdef Py_ssize_t i, n = len(codes)
        out = np.empty(n, dtype=np.int32)
        cdef int32_t[::1] o = out
        get = self.dest_index.get
        for i in range(n):
            code = codes[i]
            if code is None:
                o[i] = DEST_NO_READ
                continue
            try:
                d = get(code)
            except Exception:       # unhashable junk (or a hash/compare that fails)
                d = None
            o[i] = DEST_UNKNOWN if d is None else <int>d
        return out

    # -- read-only views ------------------------------------------------------------
    @property
    def plan_in_force(self):
        return self.plan

    def _arrays(self):
        return {
            "kind": np.asarray(self.kind).copy(),
            "capacity": np.asarray(self.capacity).copy(),
            "state": np.asarray(self.state).copy(),
            "fill": np.asarray(self.fill).copy(),
            "assigned": np.asarray(self.assigned).copy(),
            "discharged": np.asarray(self.discharged_count).copy(),
            "reason_count": np.asarray(self.reason_count).copy(),
        }

    def _dest_codes(self):
        return list(self.dest_codes)

    def _chute_labels(self):
        return list(self.chute_labels)

    def _chute_lookup(self, chute):
        try:
            return self.chute_index.get(chute)
        except TypeError:
            return None

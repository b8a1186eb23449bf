# cython: language_level=3
"""Loop-sorter shift simulation: carriers, inducts, the scanner and the chutes, tick by tick.

One tick is the time a carrier takes to move one carrier pitch; the loop holds ``n_carriers``
carriers, and carrier ``c`` is at slot ``(c + t) % n_carriers`` at tick ``t``. At the scanner
each parcel gets its chute from the REAL chute engine (``ChuteEngine.decide``, called at C
level without the GIL: the same compiled code a WCS embeds), and chute events (full
containers, container changes, blockages) flow back into that engine's chute states.

Python (``sorter.sim.loop``) validates the scenario, draws every random number with the
scenario's seeded Generator and hands them in as arrays; this module trusts its inputs and
never touches a Python object inside the tick loop.

Order of work inside one tick (so runs reproduce exactly):
1. interval boundary bookkeeping; 2. chute events due (container change start/end,
blockage start/end), by (tick, sequence); 3. carriers reaching their chute: discharge if
the chute takes the parcel, else the parcel recirculates; 4. each induct, in the order given:
place the head of its queue on the passing carrier if that carrier is empty; 5. the carrier
at the scanner: a decision for a parcel not yet assigned (so a parcel placed at the scanner's
own slot is read in the tick it is placed, not a lap later).

Induct cycle: an induct rated ``r`` items/h is ready for its next parcel one cycle
(``3600 / r`` s) after it was ready for the last one, and places it on the first empty carrier
passing at or after that moment. Waiting for a carrier window (less than one tick) does not
lengthen the cycle, so a busy induct places exactly ``r`` items/h even where the carrier
interval does not divide its cycle (a 3,000/h induct on 0.24 s carriers: 3,000/h, not one
placement every 6 ticks = 2,502/h). After a longer wait (no parcel, or a full carrier) the
cycle restarts at the placement.
"""
import numpy as np

from libc.stdint cimport int8_t, int32_t, int64_t
from libc.math cimport ceil

from sorter._chutes cimport (ChuteEngine, CompiledPlan, STATE_OPEN, STATE_FULL,
                             STATE_CONTAINER_CHANGE, STATE_BLOCKED, KIND_REJECT, REASON_OK,
                             REASON_OVERFLOW)

# chute event types (low 2 bits of a heap value)
cdef enum:
    EV_CC_START = 0      # the operator reaches a full chute: container change begins
    EV_CC_END = 1        # new container in place: empty and reopen
    EV_BLOCK_START = 2
    EV_BLOCK_END = 3

cdef int N_STATES = 5


cdef class LoopKernel:
    """State of one loop sorter during a shift; :func:`sorter.sim.loop.simulate` drives it."""
    cdef ChuteEngine engine              # the real chute engine (a sorter.Sorter)
    cdef readonly int n_carriers         # carriers on the loop (one slot each)
    cdef readonly double dt              # seconds per tick (effective pitch / speed)
    cdef readonly int64_t n_ticks        # ticks in the shift
    cdef readonly int64_t t              # next tick to simulate
    cdef int scanner_slot                # slot of the scanner
    cdef int n_inducts
    cdef int32_t[::1] induct_slot        # slot of each induct
    cdef double[::1] induct_gap          # seconds between two placements at an induct (1 / max rate)
    cdef double[::1] induct_next_free    # earliest time the induct can place its next parcel
    cdef int64_t[::1] induct_ptr         # CSR offsets into induct_queue, per induct
    cdef int64_t[::1] induct_head        # next parcel position in induct_queue, per induct
    cdef int64_t[::1] induct_queue       # parcel ids, by induct then arrival time
    cdef int n_chutes
    cdef int32_t[::1] chute_slot         # slot of each chute
    cdef int8_t[::1] chute_phase         # 0 no change pending, 1 waiting for the operator, 2 changing
    cdef int32_t[::1] chute_blocked      # active blockages per chute
    cdef int64_t[::1] state_since        # tick of the chute's last state accounting
    cdef int64_t[::1] state_ticks        # ticks per (chute, state), flattened chute * 5 + state
    # parcels (inputs)
    cdef const double[::1] arrival       # arrival time at its induct (s)
    cdef const int32_t[::1] dest         # interned destination id (-1 unknown, -2 no-read)
    cdef const int8_t[::1] sortable      # 1 sortable, 0 not
    # parcels (outputs)
    cdef int64_t[::1] induct_tick        # tick placed on a carrier, -1 if still queued
    cdef int64_t[::1] discharge_tick     # tick discharged, -1 if not (yet)
    cdef int32_t[::1] p_chute            # chute of the last decision, -1 none
    cdef int8_t[::1] p_reason            # reason of the last decision, -1 none
    cdef int8_t[::1] p_first_reason      # reason of the first decision, -1 none
    cdef int32_t[::1] p_recirc           # recirculations (laps past a closed chute)
    cdef int8_t[::1] p_phase             # 0 waiting for the scanner, 1 heading to its chute
    # carriers and the discharge wheel (one pending chute arrival per loaded carrier)
    cdef int64_t[::1] carrier_parcel     # parcel on the carrier, -1 empty
    cdef int32_t[::1] wheel_head         # first carrier due at tick % n_carriers, -1 none
    cdef int32_t[::1] wheel_next         # next carrier in the same wheel bucket
    cdef readonly int64_t loaded         # carriers carrying a parcel now
    # chute events: binary heap keyed (tick << 32 | sequence), value chute * 4 + type
    cdef int64_t[::1] heap_key
    cdef int32_t[::1] heap_val
    cdef int64_t heap_n
    cdef int64_t seq
    # pre-drawn container-change times (s), used in order of full events
    cdef const double[::1] react_s
    cdef const double[::1] change_s
    cdef int64_t react_next              # reaction draws used so far
    cdef int64_t cc_next                 # change-time draws used so far
    # intervals (time series)
    cdef const int64_t[::1] bounds       # interval start ticks, length n_int + 1
    cdef readonly int interval           # current interval
    cdef int64_t[:, ::1] unavail         # ticks not open, per interval and chute
    cdef int64_t[:, ::1] series          # per interval: see SERIES
    cdef int64_t[:, ::1] induct_blocked  # ticks an induct had a parcel ready but the carrier was full
    cdef int64_t[:, ::1] induct_starved  # ticks an induct was free with no parcel waiting
    cdef int64_t[:, ::1] chute_sorted    # discharges per interval and chute

    def __init__(self, ChuteEngine engine not None, int n_carriers, double dt, int64_t n_ticks,
                 int scanner_slot, induct_slot, induct_gap, induct_ptr, induct_queue,
                 chute_slot, arrival, dest, sortable, react_s, change_s,
                 block_chute, block_start, block_end, bounds):
        cdef Py_ssize_t i, n_p = len(arrival)
        self.engine = engine
        self.n_carriers = n_carriers
        self.dt = dt
        self.n_ticks = n_ticks
        self.t = 0
        self.scanner_slot = scanner_slot
        self.induct_slot = np.ascontiguousarray(induct_slot, dtype=np.int32)
        self.n_inducts = self.induct_slot.shape[0]
        self.induct_gap = np.ascontiguousarray(induct_gap, dtype=np.float64)
        self.induct_next_free = np.zeros(self.n_inducts, dtype=np.float64)
        self.induct_ptr = np.ascontiguousarray(induct_ptr, dtype=np.int64)
        self.induct_head = np.array(self.induct_ptr[:self.n_inducts], dtype=np.int64)
        self.induct_queue = np.ascontiguousarray(induct_queue, dtype=np.int64)
        self.chute_slot = np.ascontiguousarray(chute_slot, dtype=np.int32)
        self.n_chutes = self.chute_slot.shape[0]
        self.chute_phase = np.zeros(self.n_chutes, dtype=np.int8)
        self.chute_blocked = np.zeros(self.n_chutes, dtype=np.int32)
        self.state_since = np.zeros(self.n_chutes, dtype=np.int64)
        self.state_ticks = np.zeros(self.n_chutes * N_STATES, dtype=np.int64)
        self.arrival = np.ascontiguousarray(arrival, dtype=np.float64)
        self.dest = np.ascontiguousarray(dest, dtype=np.int32)
        self.sortable = np.ascontiguousarray(sortable, dtype=np.int8)
        self.induct_tick = np.full(n_p, -1, dtype=np.int64)
        self.discharge_tick = np.full(n_p, -1, dtype=np.int64)
        self.p_chute = np.full(n_p, -1, dtype=np.int32)
        self.p_reason = np.full(n_p, -1, dtype=np.int8)
        self.p_first_reason = np.full(n_p, -1, dtype=np.int8)
        self.p_recirc = np.zeros(n_p, dtype=np.int32)
        self.p_phase = np.zeros(n_p, dtype=np.int8)
        self.carrier_parcel = np.full(n_carriers, -1, dtype=np.int64)
        self.wheel_head = np.full(n_carriers, -1, dtype=np.int32)
        self.wheel_next = np.full(n_carriers, -1, dtype=np.int32)
        self.loaded = 0
        n_block = len(block_chute)
        self.heap_key = np.zeros(2 * self.n_chutes + 2 * n_block + 8, dtype=np.int64)
        self.heap_val = np.zeros(2 * self.n_chutes + 2 * n_block + 8, dtype=np.int32)
        self.heap_n = 0
        self.seq = 0
        self.react_s = np.ascontiguousarray(react_s, dtype=np.float64)
        self.change_s = np.ascontiguousarray(change_s, dtype=np.float64)
        self.react_next = 0
        self.cc_next = 0
        self.bounds = np.ascontiguousarray(bounds, dtype=np.int64)
        n_int = len(bounds) - 1
        self.interval = 0
        self.unavail = np.zeros((n_int, self.n_chutes), dtype=np.int64)
        self.series = np.zeros((n_int, len(SERIES)), dtype=np.int64)
        self.induct_blocked = np.zeros((n_int, self.n_inducts), dtype=np.int64)
        self.induct_starved = np.zeros((n_int, self.n_inducts), dtype=np.int64)
        self.chute_sorted = np.zeros((n_int, self.n_chutes), dtype=np.int64)
        for i in range(n_block):
            self._push(block_start[i], block_chute[i] * 4 + EV_BLOCK_START)
            self._push(block_end[i], block_chute[i] * 4 + EV_BLOCK_END)

    # -- the chute-event heap --------------------------------------------------------
    cdef void _push(self, int64_t tick, int32_t val) noexcept nogil:
        cdef int64_t i = self.heap_n, parent
        cdef int64_t key = (tick << 32) | (self.seq & <int64_t>0xFFFFFFFF)
        self.seq += 1
        self.heap_n += 1
        while i > 0:
            parent = (i - 1) >> 1
            if self.heap_key[parent] <= key:
                break
            self.heap_key[i] = self.heap_key[parent]
            self.heap_val[i] = self.heap_val[parent]
            i = parent
        self.heap_key[i] = key
        self.heap_val[i] = val

    cdef int32_t _pop(self) noexcept nogil:
        cdef int32_t top = self.heap_val[0]
        cdef int64_t n = self.heap_n - 1, i = 0, child
        cdef int64_t key = self.heap_key[n]
        cdef int32_t val = self.heap_val[n]
        self.heap_n = n
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and self.heap_key[child + 1] < self.heap_key[child]:
                child += 1
            if self.heap_key[child] >= key:
                break
            self.heap_key[i] = self.heap_key[child]
            self.heap_val[i] = self.heap_val[child]
            i = child
        if n > 0:
            self.heap_key[i] = key
            self.heap_val[i] = val
        return top

    # -- chute state bookkeeping ------------------------------------------------------
    cdef inline void _account(self, int k, int64_t t) noexcept nogil:
        """Credit the ticks since the last call to the chute's current state."""
        cdef int s = self.engine.state[k]
        cdef int64_t d = t - self.state_since[k]
        if d > 0:
            self.state_ticks[k * N_STATES + s] += d
            if s != STATE_OPEN:
                self.unavail[self.interval, k] += d
            self.state_since[k] = t

    cdef inline void _restate(self, int k) noexcept nogil:
        """Set the engine's state of chute k from blockages, container change and fill."""
        if self.chute_blocked[k] > 0:
            self.engine.change_state(k, STATE_BLOCKED)
        elif self.chute_phase[k] == 2:
            self.engine.change_state(k, STATE_CONTAINER_CHANGE)
        elif self.engine.fill[k] >= self.engine.capacity[k]:
            self.engine.change_state(k, STATE_FULL)
        else:
            self.engine.change_state(k, STATE_OPEN)

    cdef inline int64_t _ticks(self, double seconds) noexcept nogil:
        cdef int64_t n = <int64_t>ceil(seconds / self.dt)
        return n if n > 0 else 1

    cdef void _chute_event(self, int32_t val, int64_t t) noexcept nogil:
        cdef int k = val >> 2, typ = val & 3
        cdef int64_t j
        self._account(k, t)
        if typ == EV_CC_START:
            self.chute_phase[k] = 2
            j = self.cc_next % self.change_s.shape[0]
            self.cc_next += 1
            self._push(t + self._ticks(self.change_s[j]), k * 4 + EV_CC_END)
            self._restate(k)
        elif typ == EV_CC_END:
            self.chute_phase[k] = 0
            self.engine.empty_container(k)
            self._restate(k)
            self.series[self.interval, 6] += 1
        elif typ == EV_BLOCK_START:
            self.chute_blocked[k] += 1
            self._restate(k)
        else:
            if self.chute_blocked[k] > 0:
                self.chute_blocked[k] -= 1
            self._restate(k)

    cdef inline void _full(self, int k, int64_t t) noexcept nogil:
        """Chute k's container just filled: the operator comes after a reaction time."""
        cdef int64_t j = self.react_next % self.react_s.shape[0]
        self.react_next += 1
        self.chute_phase[k] = 1
        self.series[self.interval, 5] += 1
        self._push(t + self._ticks(self.react_s[j]), k * 4 + EV_CC_START)

    cdef void _flush_interval(self, int64_t t) noexcept nogil:
        cdef int k
        for k in range(self.n_chutes):
            self._account(k, t)

    # -- the tick loop ----------------------------------------------------------------
    cdef void _run(self, CompiledPlan plan, int64_t until) noexcept nogil:
        cdef int64_t t, p, h, end_q
        cdef int N = self.n_carriers, c, nxt, k, i, reason = 0, s, d, b
        cdef int n_int = self.bounds.shape[0] - 1
        cdef double now
        cdef int8_t st
        for t in range(self.t, until):
            # 1. interval boundary
            while self.interval < n_int - 1 and t >= self.bounds[self.interval + 1]:
                self._flush_interval(t)
                self.interval += 1
            now = t * self.dt
            # 2. chute events due
            while self.heap_n > 0 and (self.heap_key[0] >> 32) <= t:
                self._chute_event(self._pop(), t)
            # 3. carriers at their chute
            b = <int>(t % N)
            c = self.wheel_head[b]
            self.wheel_head[b] = -1
            while c >= 0:
                nxt = self.wheel_next[c]
                p = self.carrier_parcel[c]
                k = self.p_chute[p]
                if self.engine.kind[k] == KIND_REJECT or self.engine.state[k] == STATE_OPEN:
                    self._account(k, t)
                    st = self.engine.state[k]
                    self.engine.discharge(k, 1)
                    if self.engine.state[k] == STATE_FULL and st != STATE_FULL and self.chute_phase[k] == 0:
                        self._full(k, t)
                    elif (self.engine.kind[k] == KIND_REJECT and self.engine.fill[k] >= self.engine.capacity[k]
                          and self.chute_phase[k] == 0):
                        # a reject chute keeps taking parcels, but its container still gets changed
                        self._full(k, t)
                    self.discharge_tick[p] = t
                    self.carrier_parcel[c] = -1
                    self.loaded -= 1
                    self.chute_sorted[self.interval, k] += 1
                    if self.p_reason[p] == REASON_OK or self.p_reason[p] == REASON_OVERFLOW:
                        self.series[self.interval, 1] += 1
                    else:
                        self.series[self.interval, 2] += 1
                else:
                    self.p_recirc[p] += 1
                    self.p_phase[p] = 0
                    self.series[self.interval, 3] += 1
                c = nxt
            # 4. inducts
            for i in range(self.n_inducts):
                h = self.induct_head[i]
                end_q = self.induct_ptr[i + 1]
                # (ready times are sums of cycles: within a millionth of a tick of this
                # tick counts as this tick, else float drift skips the carrier)
                if now < self.induct_next_free[i] - 1e-6 * self.dt:
                    continue                      # busy placing the previous parcel
                if h >= end_q or self.arrival[self.induct_queue[h]] > now:
                    self.induct_starved[self.interval, i] += 1
                    continue
                c = <int>((self.induct_slot[i] - t) % N)
                if c < 0:
                    c += N
                if self.carrier_parcel[c] >= 0:
                    self.induct_blocked[self.interval, i] += 1
                    continue
                p = self.induct_queue[h]
                self.induct_head[i] = h + 1
                self.carrier_parcel[c] = p
                self.p_phase[p] = 0
                self.induct_tick[p] = t
                # the cycle runs from when the induct was ready: waiting for the carrier
                # window (under one tick) is not added; a longer wait restarts it here
                if now - self.induct_next_free[i] < self.dt * (1.0 - 1e-6):
                    self.induct_next_free[i] += self.induct_gap[i]
                else:
                    self.induct_next_free[i] = now + self.induct_gap[i]
                self.loaded += 1
                self.series[self.interval, 0] += 1
            # 5. the scanner (after the inducts: a parcel placed at the scanner's slot is read now)
            c = <int>((self.scanner_slot - t) % N)
            if c < 0:
                c += N
            p = self.carrier_parcel[c]
            if p >= 0 and self.p_phase[p] == 0:
                k = self.engine.decide(plan, self.dest[p], self.p_recirc[p], self.sortable[p] != 0, &reason)
                self.p_chute[p] = k
                self.p_reason[p] = <int8_t>reason
                if self.p_first_reason[p] < 0:
                    self.p_first_reason[p] = <int8_t>reason
                self.p_phase[p] = 1
                d = (self.chute_slot[k] - self.scanner_slot) % N
                if d <= 0:
                    d += N
                b = <int>((t + d) % N)
                self.wheel_next[c] = self.wheel_head[b]
                self.wheel_head[b] = c
            self.series[self.interval, 4] += self.loaded
        self.t = until

    def run(self, int64_t until):
        """Simulate ticks ``self.t .. until-1`` with the plan in force now."""
        cdef CompiledPlan plan = self.engine.plan
        if until > self.n_ticks:
            until = self.n_ticks
        if until <= self.t:
            return
        with nogil:
            self._run(plan, until)
            if until >= self.n_ticks:
                self._flush_interval(until)

    def results(self, copy=True):
        """NumPy copies of everything the KPIs read (``copy=False``: the kernel's own
        arrays, for a caller that runs the kernel no further; a week of 1-minute intervals
        on thousands of chutes makes the interval x chute arrays hundreds of MB each)."""
        def out(a):
            a = np.asarray(a)
            return a.copy() if copy else a
        return {
            "induct_tick": out(self.induct_tick),
            "discharge_tick": out(self.discharge_tick),
            "chute": out(self.p_chute),
            "reason": out(self.p_reason),
            "first_reason": out(self.p_first_reason),
            "recirculations": out(self.p_recirc),
            "on_carrier": out(self.carrier_parcel),
            "state_ticks": out(np.asarray(self.state_ticks).reshape(self.n_chutes, N_STATES)),
            "unavail_ticks": out(self.unavail),
            "series": out(self.series),
            "induct_blocked": out(self.induct_blocked),
            "induct_starved": out(self.induct_starved),
            "chute_sorted": out(self.chute_sorted),
            "container_changes_started": int(self.cc_next),
            "full_events": int(self.react_next),
        }


#: Columns of ``results()["series"]``, per interval.
SERIES = ("inducted", "sorted", "rejected", "recirculations", "carrier_ticks_loaded",
          "chute_full_events", "container_changes")

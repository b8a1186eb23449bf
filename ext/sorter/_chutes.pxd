# Declarations of the chute engine, so that other Cython modules (the loop-sorter
# simulation) call it at C level: `from sorter._chutes cimport ChuteEngine, CompiledPlan`.
from libc.stdint cimport int8_t, int32_t, int64_t

# Reason codes (index into sorter.constants.REASONS).
cdef enum:
    REASON_OK = 0
    REASON_OVERFLOW = 1
    REASON_NO_READ = 2
    REASON_UNKNOWN_DESTINATION = 3
    REASON_MAX_RECIRCULATION = 4
    REASON_NO_CHUTE_AVAILABLE = 5
    REASON_NOT_SORTABLE = 6
    REASON_LATE = 7
    N_REASONS = 8

# Chute states (index into sorter.constants.STATES).
cdef enum:
    STATE_OPEN = 0
    STATE_FULL = 1
    STATE_CONTAINER_CHANGE = 2
    STATE_BLOCKED = 3
    STATE_DISABLED = 4

# Chute kinds (index into sorter.constants.KINDS).
cdef enum:
    KIND_DESTINATION = 0
    KIND_OVERFLOW = 1
    KIND_REJECT = 2

# Strategies (index into sorter.constants.STRATEGIES).
cdef enum:
    STRATEGY_FILL_FIRST = 0
    STRATEGY_ROUND_ROBIN = 1
    STRATEGY_LEAST_LOADED = 2

# Destination ids that are not destinations.
cdef enum:
    DEST_UNKNOWN = -1
    DEST_NO_READ = -2


cdef class CompiledPlan:
    """One sort plan as flat integer arrays; replaced whole on a plan switch."""
    cdef readonly object name            # plan name (str)
    cdef readonly int n_dest             # destination ids 0..n_dest-1 have a row
    cdef int32_t[::1] route_ptr          # CSR offsets into route_chutes, length n_dest + 1
    cdef int32_t[::1] route_chutes       # chute indices, primary first, then alternates
    cdef int32_t[::1] overflow           # overflow chute indices, tried in this order
    cdef int32_t[::1] reject             # reject chute index for each reason code (N_REASONS)
    cdef int32_t[::1] rr_cursor          # round-robin position per destination
    cdef readonly int strategy           # STRATEGY_*
    cdef readonly int max_recirculation  # more recirculations than this -> reject


cdef class ChuteEngine:
    """Chute states, container fill and counters, plus the plan in force."""
    cdef CompiledPlan plan               # the plan in force (swapped atomically)
    cdef readonly int n_chutes
    cdef int8_t[::1] kind                # KIND_* per chute
    cdef int8_t[::1] state               # STATE_* per chute
    cdef int32_t[::1] capacity           # items per container
    cdef int32_t[::1] fill               # items in the current container
    cdef int64_t[::1] assigned           # decisions that named the chute
    cdef int64_t[::1] discharged_count   # items counted into the chute
    cdef int64_t[::1] reason_count       # decisions per reason code
    cdef dict dest_index                 # destination code -> dense id (stable across plans)
    cdef list dest_codes                 # dense id -> destination code
    cdef dict chute_index                # chute label (and str(label)) -> chute index
    cdef list chute_labels               # chute index -> label
    cdef list decisions                  # cached Decision per (chute * N_REASONS + reason)

    cdef int decide(self, CompiledPlan p, int dest, int recirculation, bint sortable,
                    int* reason) noexcept nogil
    cdef int reject_chute(self, CompiledPlan p, int r) noexcept nogil
    cdef void discharge(self, int chute, int n) noexcept nogil
    cdef void change_state(self, int chute, int new_state) noexcept nogil
    cdef void empty_container(self, int chute) noexcept nogil

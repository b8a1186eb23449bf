"""Names shared by the whole package: decision reasons, chute states and kinds, strategies.

The compiled engine numbers them by their position in these tuples.
"""
from __future__ import annotations

from collections import namedtuple

__all__ = ["REASONS", "REJECT_REASONS", "STATES", "KINDS", "STRATEGIES", "Decision",
           "DEST_UNKNOWN", "DEST_NO_READ"]

#: Every reason a decision can carry. ``ok`` and ``overflow`` go to sorting chutes,
#: the rest to the reject chute configured for that reason.
REASONS = ("ok", "overflow", "no_read", "unknown_destination", "max_recirculation",
           "no_chute_available", "not_sortable", "late")
#: Reasons that need a reject chute in every plan.
REJECT_REASONS = REASONS[2:]
#: Chute states. Only ``open`` chutes take parcels; a reject chute that is not open passes
#: its parcels to the first open reject chute, or, none open, takes them all the same (the
#: last resort: see :class:`sorter.Sorter`).
STATES = ("open", "full", "container_change", "blocked", "disabled")
#: Chute kinds.
KINDS = ("destination", "overflow", "reject")
#: Chute selection strategies among a destination's open chutes.
STRATEGIES = ("fill_first", "round_robin", "least_loaded")

#: Interned id of a destination code the plan does not know.
DEST_UNKNOWN = -1
#: Interned id of a no-read (no destination: ``None`` or ``""``).
DEST_NO_READ = -2

#: The answer to one scan: the chute's label and the reason (one of REASONS).
Decision = namedtuple("Decision", ["chute", "reason"])
Decision.__doc__ = "The answer to one scan: ``chute`` (the chute's label) and ``reason`` (one of REASONS)."

"""sorter: the open core of a parcel sortation centre.

* :class:`Sorter` assigns each scanned parcel to a chute (sort plans, chute states,
  strategies, rejects by reason), in well under a microsecond per call.
* ``sorter.layout`` / ``sorter.agv``: robot sorting floors and lifelong multi-agent
  path finding.
* ``sorter.sim``: loop-sorter and whole-shift simulation with planner KPIs.
"""
from sorter.constants import DEST_NO_READ, DEST_UNKNOWN, REASONS, STATES, STRATEGIES, Decision
from sorter.engine import Sorter
from sorter.errors import InputError, SorterError
from sorter.plan import Chute, ChuteTable, SortPlan, load_chutes, load_plan, load_plan_routes

__version__ = "0.1.0"

__all__ = [
    "Sorter", "Decision", "SortPlan", "Chute", "ChuteTable", "load_chutes", "load_plan",
    "load_plan_routes", "InputError", "SorterError", "REASONS", "STATES", "STRATEGIES",
    "DEST_NO_READ", "DEST_UNKNOWN", "__version__",
]

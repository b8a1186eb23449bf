"""sorter: the open core of a parcel sortation centre.

* :class:`Sorter` assigns each scanned parcel to a chute (sort plans, chute states,
  strategies, rejects by reason), in well under a microsecond per call.
* ``sorter.layout`` / ``sorter.agv``: robot sorting floors and lifelong multi-agent
  path finding.
* ``sorter.sim``: loop-sorter and whole-shift simulation with planner KPIs.
"""


def _compiled_from_installed_copy():
    """Python started in the repository root after a plain ``pip install .`` imports this source
    folder, which has no compiled modules (``_chutes``, ``_loop``): take them from the installed
    copy of the package on ``sys.path`` (an editable install needs nothing of this)."""
    import importlib.util
    import os
    import sys
    if importlib.util.find_spec("sorter._chutes") is not None:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        cand = os.path.join(os.path.abspath(entry or os.curdir), "sorter")
        if cand != here and os.path.isdir(cand) and any(
                f.startswith("_chutes.") for f in os.listdir(cand)):
            __path__.append(cand)
            return


_compiled_from_installed_copy()
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

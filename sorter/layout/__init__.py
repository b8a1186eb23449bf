"""Robot sorting floors: the :class:`Floor` grid, its loaders and generators.

* :class:`Floor`, :class:`Station` and the cell / direction codes (``sorter.layout.floor``);
* :func:`load_floor`: any supported file, dispatched by extension and content
  (MovingAI / LoRR ``.map``, RHCR ``.grid``, RHCR ``kiva.map``, LoRR problem ``.json``, ASCII);
* ``Floor.from_ascii`` / :func:`parse_ascii` / :func:`load_ascii`: the plain ASCII form;
* :func:`load_movingai_map`, :func:`load_scen`; :func:`load_lorr_problem`, :func:`load_task_list`;
  :func:`load_rhcr_grid`, :func:`load_kiva_map`;
* :func:`sortation_floor`: the classic robot-sorting floor generator, seeded;
* :class:`LoopSorter` (``sorter.layout.loop``): loop sorters (geometry, inducts, scanner, chutes);
* ``sorter.layout.draw``: drawing, animation and congestion heat maps (matplotlib, imported
  on use).
"""
from sorter.layout.floor import (
    DIRECTIONS, DROP, EAST, INDUCT, NORTH, OBSTACLE, SOUTH, TRAVEL, WEST, Floor, Station,
)
from sorter.layout.ascii import format_ascii, load_ascii, parse_ascii
from sorter.layout.generate import lattice_capacity, sortation_floor
from sorter.layout.load import FLOOR_FORMATS, load_floor
from sorter.layout.lorr import LorrProblem, load_lorr_map, load_lorr_problem, load_task_list
from sorter.layout.movingai import Scenario, load_movingai_map, load_scen
from sorter.layout.rhcr import load_kiva_map, load_rhcr_grid
from sorter.layout.loop import Induct, LoopSorter

__all__ = [
    "Floor", "Station", "OBSTACLE", "TRAVEL", "INDUCT", "DROP", "EAST", "SOUTH", "WEST", "NORTH",
    "DIRECTIONS", "parse_ascii", "load_ascii", "format_ascii", "load_floor", "FLOOR_FORMATS",
    "load_movingai_map", "load_scen", "Scenario", "load_lorr_problem", "load_lorr_map",
    "LorrProblem", "load_task_list", "load_rhcr_grid", "load_kiva_map", "sortation_floor", "lattice_capacity",
    "LoopSorter", "Induct",
]

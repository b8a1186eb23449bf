"""Lifelong multi-agent path finding on grid floors.

* :mod:`sorter.agv.distance` -- exact distance-to-goal tables (compiled reverse BFS / Dial,
  per goal, computed on first use, LRU-bounded pool).
* :mod:`sorter.agv.pibt` -- :class:`Planner`, lifelong PIBT with dwell times, optional rotation
  action model, and guidance (soft one-way lanes, traffic-flow tie-breaks).
* :mod:`sorter.agv.guidance` -- lane generation for a floor.
* :mod:`sorter.agv.tasks` -- task streams: LoRR errands, sorting floors (RHCR's scenario), random.
* :mod:`sorter.agv.lifelong` -- build and run a planner with a task stream, timing every step.
* :mod:`sorter.agv.validate` -- the independent plan validator.

Numba kernels are compiled with ``cache=True``; set ``NUMBA_CACHE_DIR`` to a writable directory
where the installed package is read-only.
"""
from sorter.agv.distance import DistanceTables, MoveGraph, distance_table
from sorter.agv.lifelong import RunResult, make_run, simulate
from sorter.agv.pibt import GUIDANCE, Planner
from sorter.agv.tasks import ChuteTable, DestinationMix, ErrandTasks, RandomTasks, SortingTasks

__all__ = ["DistanceTables", "MoveGraph", "distance_table", "Planner", "GUIDANCE", "make_run",
           "simulate", "RunResult", "ErrandTasks", "SortingTasks", "RandomTasks",
           "DestinationMix", "ChuteTable"]

"""Shift simulation: scenarios, arrivals, the loop-sorter simulation and its KPIs.

* :class:`LoopSorter` (``sorter.layout.loop``, also ``sorter.layout.LoopSorter``): the loop
  a scenario describes;
* :func:`load_scenario` / :class:`Scenario` (``sorter.sim.scenario``): typed, validated
  scenario files (waves, destination mix, scan rates, containers, blockages, hubs);
* :func:`simulate` (``sorter.sim.loop``): the compiled tick loop over carriers, inducts,
  the scanner and chutes, with the real chute engine deciding every scan;
* :func:`compute_kpis` (``sorter.sim.kpis``): throughput, recirculation, rejects, inducts,
  chutes; ``sorter.report.write_outputs`` writes files, plots and the HTML report.

Examples
--------
>>> from sorter.sim import simulate, compute_kpis, default_scenario_path
>>> k = compute_kpis(simulate(default_scenario_path(), seed=1))
>>> k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
True
"""
from sorter.layout.loop import LoopSorter
from sorter.sim.scenario import Scenario, default_scenario_path, load_scenario, parse_scenario
from sorter.sim.loop import ShiftResult, simulate
from sorter.sim.kpis import compute_kpis, format_table

__all__ = ["Scenario", "load_scenario", "parse_scenario", "default_scenario_path", "simulate",
           "ShiftResult", "compute_kpis", "format_table", "LoopSorter"]

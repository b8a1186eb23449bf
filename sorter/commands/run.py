"""Simulate a sorting shift on a loop sorter (or a hub of loops) and print its KPIs.

Without SCENARIO the built-in default shift runs (the demo 400 m loop, 8 hours in four
waves with a plan switch, container changes and blockages). Every parcel's chute comes from
the real chute engine. The same seed gives the same result, bit for bit.

--json prints ONE JSON object on stdout (counts in parcels): offered, inducted, sorted
(into destination or overflow chutes), rejected (into reject chutes), on_loop_at_end,
queued_at_end, sorted_per_hour, nameplate_per_hour, recirculation_pct, rejects_by_reason,
induct_to_chute_s_p95, shift_hours, seed and more. --out DIR writes kpis.json,
parcels.parquet, timeseries.csv, chutes.csv, PNG plots and a one-page report.html.
Scenario files: see seeds/scenarios/ and `sorter.sim.scenario`. Every KPI's definition is
in `sorter.sim.kpis` (percentiles such as induct_to_chute_s_p95: numpy's linear
interpolation; per_wave rates: what arrived, was inducted, was sorted in the wave's hours;
a share, mean or percentile over no parcels is 0, never NaN or null).

example:
  sorter run
  sorter run seeds/scenarios/peak.toml --seed 7 --json
  sorter run seeds/scenarios/hub.toml --out out/hub     # then open out/hub/report.html in a browser
"""
from __future__ import annotations

import json
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(p):
    p.add_argument("scenario", nargs="?", default=None, metavar="SCENARIO",
                   help="scenario TOML (default: the built-in shift)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed, 0 .. 2**63 - 1 (default: the scenario's own)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write kpis.json, parcels.parquet, timeseries.csv, chutes.csv, plots and "
                        "report.html here")
    p.add_argument("--json", action="store_true",
                   help="print the KPIs as one JSON object on stdout (no table, no progress bar)")


def run(args) -> int:
    from sorter.errors import check_number
    from sorter.sim.kpis import compact, compute_kpis, format_table
    from sorter.sim.loop import simulate
    from sorter.sim.scenario import SEED_MAX, default_scenario_path, load_scenario

    if args.seed is not None:          # the bound of a scenario file's seed (int64 outputs)
        check_number(args.seed, field="--seed", lo=0, hi=SEED_MAX, integer=True,
                     expected="an integer from 0 to 2**63 - 1")
    scenario = load_scenario(args.scenario if args.scenario else default_scenario_path())
    if args.out is not None:           # a bad --out fails now, not after the simulation
        from sorter.report import RUN_FILES, prepare_out_dir
        prepare_out_dir(args.out, create=False, files=RUN_FILES)
    result = simulate(scenario, seed=args.seed, progress=not args.json)
    kpis = compute_kpis(result)
    if args.out is not None:
        from sorter.report import write_outputs
        paths = write_outputs(result, kpis, args.out)
        msg = "wrote " + ", ".join(str(p) for p in paths.values())
        print(msg, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(compact(kpis)))
    else:
        print(format_table(kpis))
        if args.out is not None:
            print(f"\nreport: {paths['report']}")
    return 0

"""Simulate a sorting shift and print its KPIs (built-in default scenario without arguments).

Until the shift simulator lands, this replays the built-in seed event stream through
the chute engine and prints its summary.

example:
  sorter run
  sorter run --seed 7 --json
"""
from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("scenario", nargs="?", default=None, help="scenario file (default: built-in)")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--out", default=None, metavar="DIR", help="write outputs here")
    p.add_argument("--json", action="store_true", help="print the KPIs as one JSON object")


def run(args) -> int:
    from sorter import Sorter
    from sorter.replay import replay_events
    from sorter.resources import seed_path

    plan = seed_path("plan/demo_plan.csv")
    sorter = Sorter.from_files(plan, seed_path("plan/demo_chutes.toml"))
    res = replay_events(sorter, seed_path("plan/demo_events.csv"))
    kpis = {"decisions": res.decisions, "events": res.events, "rejects_by_reason": {
        r: n for r, n in res.by_reason.items() if r not in ("ok", "overflow")},
        "sorted": res.by_reason["ok"] + res.by_reason["overflow"]}
    if args.json:
        print(json.dumps(kpis))
    else:
        print(f"replayed {res.decisions} scans of the built-in seed stream through {sorter!r}")
        for k, v in res.by_reason.items():
            print(f"  {k:<20} {v:>7}")
    return 0

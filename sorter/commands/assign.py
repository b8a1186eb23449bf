"""Replay a scan/chute event stream through the chute engine and write one decision per scan.

Events CSV header: t,event,parcel,destination,recirculation,sortable,chute,plan
(event: scan, discharged, full, open, blocked, disabled, container_change,
container_changed, switch_plan). Decisions CSV header: parcel,chute,reason.

example:
  sorter assign --plan seeds/plan/demo_plan.csv --chutes seeds/plan/demo_chutes.toml \\
      --events seeds/plan/demo_events.csv --out decisions.csv
"""
from __future__ import annotations

import csv
import logging
import os
import sys


def add_arguments(p):
    p.add_argument("--plan", required=True, metavar="PLAN.csv", help="sort plan CSV (destination,chutes)")
    p.add_argument("--chutes", required=True, metavar="CHUTES.toml", help="chute table and plan settings")
    p.add_argument("--events", required=True, metavar="EVENTS.csv", help="event stream to replay")
    p.add_argument("--out", required=True, metavar="DECISIONS.csv", help="where to write parcel,chute,reason")
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                   help="bad rows: stop with an error naming the line (fail, the default), or log and skip them")
    p.add_argument("--strategy", choices=("fill_first", "round_robin", "least_loaded"), default=None,
                   help="override the plan's strategy")
    p.add_argument("--max-recirculation", type=int, default=None, help="override the plan's limit")


def run(args) -> int:
    from sorter.report import counted
    from sorter import Sorter
    from sorter.replay import replay_events

    from sorter.errors import InputError
    from sorter.report import check_out_file, written_whole

    logging.basicConfig(level=logging.WARNING, format="sorter assign: %(message)s")
    mr = args.max_recirculation
    if mr is not None and not 0 <= mr <= 1000:
        raise InputError(f"bad value {mr}", field="--max-recirculation",
                         expected="an integer from 0 to 1000")
    sorter = Sorter.from_files(args.plan, args.chutes, strategy=args.strategy,
                               max_recirculation=mr)
    out = check_out_file(args.out)
    for flag, src in (("--plan", args.plan), ("--chutes", args.chutes), ("--events", args.events)):
        try:
            same = out.exists() and os.path.samefile(out, src)
        except OSError:
            same = False
        if same:    # the rename at the end would replace an input with the decisions
            raise InputError(f"--out is the {flag} file", path=out, field="--out",
                             expected="a decisions file other than the input files")
    # written beside the target and renamed on success: a failed replay leaves no half file
    with written_whole(out, field="--out") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["parcel", "chute", "reason"])
            res = replay_events(sorter, args.events, on_error=args.on_error,
                                write=lambda p, c, r: w.writerow((p, c, r)))
    print(f"{counted(res.decisions, 'decision')}, {counted(res.events, 'event')} applied"
          + (f", {counted(res.n_skipped, 'row')} skipped" if res.n_skipped else ""))
    width = max(len(r) for r in res.by_reason)
    for reason, n in res.by_reason.items():
        pct = 100.0 * n / res.decisions if res.decisions else 0.0
        print(f"  {reason:<{width}}  {n:>9}  {pct:5.1f}%")
    sys.stdout.flush()
    return 0

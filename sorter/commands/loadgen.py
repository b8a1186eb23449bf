"""Drive a running `sorter serve` with paced SCAN telegrams; report throughput and latency.

Each connection sends its share of --rate scans/s (open loop, several scans per write
when more than one is due) and times every DEST answer from the moment its telegram was
written. --rate 0 sends as fast as the service answers (at most --window in flight per
connection) to find the maximum. Reports sustained scans/s and p50/p99/p99.9 latency.
A 40,000 items/h sorter makes 11.1 scans/s; 10x = 111, 100x = 1,111.
Exit code 1 when a scan got an error or no answer, or the service closed a connection
before the run ended (the report then says CUT SHORT).

example:
  sorter serve --plan seeds/plan/demo_plan.csv --chutes seeds/plan/demo_chutes.toml --port 7070 &
  sorter loadgen --port 7070 --rate 1111 --seconds 10
  sorter loadgen --port 7070 --rate 10000 --seconds 10 --connections 4
  sorter loadgen --port 7070 --rate 0 --seconds 5        # as fast as it goes
"""
from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("--host", default="127.0.0.1", help="service address")
    p.add_argument("--port", type=int, default=7070, help="service port")
    p.add_argument("--rate", type=float, default=1111.0, help="scans/s over all connections (0 = max)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to send")
    p.add_argument("--connections", type=int, default=1, help="parallel connections")
    p.add_argument("--plan", metavar="PLAN.csv", default=None,
                   help="draw destinations from this plan (default: the demo plan)")
    p.add_argument("--no-read", type=float, default=0.005, help="share of scans without a destination")
    p.add_argument("--window", type=int, default=256, help="--rate 0: scans in flight per connection")
    p.add_argument("--warmup", type=float, default=0.0, help="seconds left out of the latency figures")
    p.add_argument("--seed", type=int, default=0, help="seed of the destination draw")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args) -> int:
    from sorter.service.loadgen import MAX_SCANS, format_report, load_destinations, run_load

    import math

    from sorter.errors import InputError

    def bad(field, value, expected):
        raise InputError(f"bad value {value!r}", field=field, expected=expected)

    if not 0 <= args.port <= 65535:
        bad("--port", args.port, "a TCP port from 0 to 65535")
    if not (math.isfinite(args.rate) and 0 <= args.rate <= 10_000_000):
        bad("--rate", args.rate, "scans/s from 0 (as fast as answers come) to 10,000,000")
    if not (math.isfinite(args.seconds) and 0 < args.seconds <= 86_400):
        bad("--seconds", args.seconds, "seconds > 0, at most 86,400")
    if args.rate * args.seconds > MAX_SCANS:       # each scan's timing is kept in memory
        bad("--rate/--seconds", f"{args.rate:g} x {args.seconds:g}",
            f"at most {MAX_SCANS:,} scans in one run (rate x seconds)")
    if not 1 <= args.connections <= 1000:
        bad("--connections", args.connections, "an integer from 1 to 1000")
    if not 1 <= args.window <= 1_000_000:
        bad("--window", args.window, "an integer from 1 to 1,000,000")
    if not 0 <= args.no_read <= 1:
        bad("--no-read", args.no_read, "a share from 0 to 1")
    if not (math.isfinite(args.warmup) and 0 <= args.warmup < args.seconds):
        bad("--warmup", args.warmup, "seconds >= 0 and less than --seconds")
    if args.seed < 0:
        bad("--seed", args.seed, "an integer >= 0")
    dests = load_destinations(args.plan) if args.plan else None
    try:
        r = run_load(args.host, args.port, rate=args.rate, seconds=args.seconds,
                     connections=args.connections, destinations=dests, seed=args.seed,
                     no_read=args.no_read, window=args.window, warmup=args.warmup)
    except (OSError, OverflowError) as exc:
        raise InputError(f"cannot reach the service at {args.host}:{args.port}: "
                         f"{getattr(exc, 'strerror', None) or exc}", field="--host/--port",
                         expected="the address of a running `sorter serve`") from None
    print(json.dumps(r) if args.json else format_report(r))
    return 0 if r["errors"] == 0 and r["unanswered"] == 0 and not r["closed_by_service"] else 1

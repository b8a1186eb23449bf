"""Run the scan-decision service: a TCP line-telegram server around one chute engine.

Telegrams (one per line, ASCII, `|`-separated; every one gets exactly one answer line):
  SCAN|seq|parcel|destination|recirculation|sortable  -> DEST|seq|parcel|chute|reason
  CHUTE|seq|chute|state, DISCHARGED|seq|parcel|chute,
  CONTAINER|seq|chute, PLAN|seq|path, HB|seq           -> ACK|seq
  HELLO|seq|client                                    -> HELLO|seq|client|last-seq
  STATUS|seq                                          -> STATUS|seq|key=value;...
  anything malformed                                  -> ERR|seq|code|text
Answers echo seq as sent (leading zeros kept). A last line without its newline when the
client closes its side may be cut off: answered ERR|seq|unterminated|..., not applied.
A scan not answered within --deadline-ms of being read gets the `late` reject chute.
With --journal every decision and chute event goes to SQLite; after a crash the same
command restores plan, chute states and fill counts from the journal (then --plan and
--chutes may be left out). --durability sync answers only after the journal batch is
fsynced (nothing acknowledged is lost); batch answers at once and commits every
--commit-ms (a crash can lose the acknowledged telegrams of the last commit interval).
See docs/service.md.

example:
  sorter serve --plan seeds/plan/demo_plan.csv --chutes seeds/plan/demo_chutes.toml \\
      --port 7070 --journal sorter.db --durability sync
  printf 'SCAN|1|P1|01422|0|1\\n' | nc -q1 127.0.0.1 7070      # -> DEST|1|P1|C001|ok
  python -c "import socket; s = socket.create_connection(('127.0.0.1', 7070)); \\
      s.sendall(b'SCAN|2|P2|01422|0|1\\n'); print(s.recv(100).decode())"   # without nc
"""
from __future__ import annotations

import sys


def add_arguments(p):
    p.add_argument("--plan", metavar="PLAN.csv", help="sort plan CSV (not needed to restart from a journal)")
    p.add_argument("--chutes", metavar="CHUTES.toml", help="chute table and plan settings")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=7070, help="TCP port (0 = any free port; printed)")
    p.add_argument("--journal", metavar="sorter.db", default=None,
                   help="SQLite journal (created if absent, restored from if it holds a state); "
                        "without it nothing survives a crash")
    p.add_argument("--deadline-ms", type=float, default=50.0,
                   help="answer deadline per scan, from when its line was read")
    p.add_argument("--durability", choices=("batch", "sync"), default=None,
                   help="sync: answer after the journal batch is fsynced; batch: answer at once "
                        "(default: the mode the journal was last written with, else batch)")
    p.add_argument("--commit-ms", type=float, default=10.0, help="batch mode: journal commit interval")
    p.add_argument("--snapshot-every", type=int, default=10_000,
                   help="journal rows between two engine snapshots")
    p.add_argument("--dedupe-window", type=int, default=100_000,
                   help="telegrams remembered for idempotent replays")


def run(args) -> int:
    from sorter.service.server import open_service, run_server

    if args.port < 0 or args.port > 65535:
        raise ValueError(f"field 'port': bad port {args.port} (expected 0..65535)")
    svc, msg = open_service(args.plan, args.chutes, journal=args.journal,
                            durability=args.durability, commit_ms=args.commit_ms,
                            deadline_ms=args.deadline_ms, snapshot_every=args.snapshot_every,
                            dedupe_window=args.dedupe_window)
    print(f"sorter serve: {msg}", file=sys.stderr)
    if args.journal is None:
        print("sorter serve: warning: no --journal: decisions are not durable", file=sys.stderr)

    def announce(host, port):
        j = f"journal {args.journal} ({svc.journal.durability})" if args.journal else "no journal"
        print(f"sorter serve: listening on {host}:{port}, deadline {args.deadline_ms:g} ms, {j}",
              flush=True)

    code = run_server(svc, args.host, args.port, announce=announce)
    s = svc.stats()
    print("sorter serve: stopped: " + ", ".join(f"{k} {s[k]}" for k in
          ("telegrams", "scans", "late", "late_answers", "events", "errors", "replayed",
           "journal_id")), file=sys.stderr)
    return code

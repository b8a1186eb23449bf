"""Read a service journal: export it for the audit trail, or summarise it.

  sorter journal export sorter.db --out decisions.parquet   (or .csv, by extension)
  sorter journal show sorter.db
Export columns: id, time (UTC), client, seq, kind (scan, chute, discharged, container,
plan), parcel, destination (empty = no-read), recirculation, sortable, chute, reason
(scans), state (chute events), plan (plan switches), telegram (as received).
`--kind scan` exports decisions only. The export is written whole or not at all (a journal
damaged part-way leaves no partial file; an earlier file at --out is kept). `show` prints
row counts by kind and reason and the chute fill counts the journal restores to.

example:
  sorter journal export sorter.db --out decisions.parquet --kind scan
  sorter journal show sorter.db
"""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("action", choices=("export", "show"), help="export rows, or show a summary")
    p.add_argument("journal", metavar="sorter.db", help="journal written by `sorter serve --journal`")
    p.add_argument("--out", metavar="FILE", help="export: output .parquet or .csv")
    p.add_argument("--kind", action="append", default=None,
                   choices=("scan", "chute", "discharged", "container", "plan"),
                   help="export only rows of this kind (repeatable)")


def run(args) -> int:
    from sorter.report import counted
    from sorter.service.journal import export, journal_info, restore

    if args.action == "export":
        if not args.out:
            raise ValueError("field 'out': export needs --out FILE (expected a .parquet or .csv name)")
        n = export(args.journal, args.out, kinds=args.kind)
        print(f"{counted(n, 'row')} -> {args.out}")
        return 0
    info = journal_info(args.journal)
    print(f"{args.journal}: {counted(info['rows'], 'row')} "
          f"(last id {info['last_id']}), "
          f"snapshots after rows {info['snapshots']}")
    for k, n in sorted(info["by_kind"].items()):
        print(f"  {k:<12} {n:>10}")
    if info["by_reason"]:
        print("decisions by reason:")
        for k, n in sorted(info["by_reason"].items()):
            print(f"  {k:<20} {n:>10}")
    if info["clients"]:
        print("last seq by client: " + ", ".join(f"{c or '(anonymous)'}={s}"
                                                 for c, s in info["clients"].items()))
    res = restore(args.journal)
    if res is not None:
        c = res.sorter.counters()["by_chute"]
        busy = {k: v for k, v in c.items() if v["fill"] or v["state"] != "open"}
        print(f"restored state: plan {res.sorter.plan_name!r}, "
              f"{counted(len(busy), 'chute')} with items "
              "or not open:")
        for k, v in list(busy.items())[:40]:
            print(f"  {k:<8} fill {v['fill']:>4}  {v['state']}")
        if len(busy) > 40:
            print(f"  ... {len(busy) - 40} more")
    return 0

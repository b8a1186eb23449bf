"""Capacity sweep: simulate a scenario (or a robot floor) over a grid of varied settings x seeds.

Each --vary KEY=V1,V2,... names a dotted key of the scenario TOML as written
(wave.0.rate_per_hour is the first [[wave]]'s rate, loop.speed_mps the [loop]'s speed,
loop.1.speed_mps the second loop of a hub, loop.induct.0.max_rate_per_hour an induct) and
its values: a comma list of TOML values or bare words, or START:STOP:STEP (inclusive).
The points are the Cartesian product of all --vary lists; each runs once per seed (the
scenario's seed, +1, +2, ...). Every point is validated before the first simulation: an
unknown key or a bad value fails at once, naming the key and the nearest valid keys.

Runs go to a local process pool (--workers, default all cores; 1 = serial), or with --dask
ADDRESS to an existing Dask scheduler (--dask local starts a LocalCluster for this run).
Prints one line per point: varied values, mean sorted/h ± 95% CI over the seeds, offered/h,
recirculation %, p95 induct-to-chute seconds, induct blocking %, rejects %. --out DIR writes
sweep.parquet (every replication), summary.csv (mean and 95% CI per point, every KPI) and
sweep.png (sorted/h against the first varied key, one line per value of the others).

Robot floors: given a floor file instead of a scenario TOML (ASCII, .map, .grid: any floor
with inducts and chutes that sorter mapf reads), each point runs the sorting floor of
`sorter mapf FLOOR --scenario sorting` (lifelong PIBT, the chute engine, container changes,
faults) with seeds 0, 1, ... The keys are sorter mapf's settings: robots, steps (default
2000), dwell_chute, dwell_induct, mix, destinations, rotation, guidance, induct_choice,
detour_horizon, chute_capacity, container_change_steps, fault_rate, repair_steps,
repair_dist, seconds_per_step, strategy, arrival_rate (parcels per hour offered; default 0 =
unlimited supply), no_read_rate, max_recirculation, chutes_per_destination (these two have no
sorter mapf flag: the chute engine's re-routes before reject, default 3, and chutes per
destination of the generated plan). The table
shows parcels sorted per hour (net of rejects) and per robot-hour with 95% CIs, p95
induct-to-drop steps, the share of robot-steps waiting and rejects %: how many robots the
floor needs, and where more stop paying; with --set arrival_rate=R also the offered load, the
p95 wait of a parcel at its induct for a robot and the share of robot-steps starved (at an
induct with no parcel): the fleet that keeps up with R parcels per hour.

example:
  sorter sweep seeds/scenarios/small.toml --vary wave.0.rate_per_hour=4000:12000:2000 \\
      --vary loop.speed_mps=2.0,2.5 --seeds 5 --out out/sweep
  sorter sweep seeds/scenarios/peak.toml --vary wave.1.rate_per_hour=14000,18000,22000 \\
      --set scenario.interval_minutes=5 --seeds 3
  sorter sweep seeds/floors/medium_33x57.txt --vary robots=100:500:100 \\
      --vary fault_rate=0,0.0005 --set steps=2000 --seeds 3 --out out/fleet
  sorter sweep seeds/floors/medium_33x57.txt --vary robots=40:120:20 --set arrival_rate=6000 \\
      --set steps=2000 --seeds 3
  # the same on your Dask cluster (pip install '.[dask]' from a checkout, on the client and
  # every worker; PyPI's `sorter` is another project): add --dask tcp://HOST:8786
"""
from __future__ import annotations

import os
import signal
import sys

__all__ = ["add_arguments", "run"]

MAX_SEEDS = 100_000      # replications per point: more is a typo, not a sweep (hours per 1,000)


def add_arguments(p):
    p.add_argument("scenario", metavar="SCENARIO",
                   help="scenario TOML, or a robot floor file (a sorting floor)")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a varied key and its values (repeatable; the sweep is the product)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_",
                   help="a fixed override applied to every point (repeatable)")
    p.add_argument("--seeds", type=int, default=5, metavar="N", help="replications per point")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes (default: all cores; 1 = serial); "
                        "with --dask local, the LocalCluster's workers (not with --dask "
                        "ADDRESS: that cluster's workers run the sweep)")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="run on the Dask scheduler at ADDRESS, or 'local' for a LocalCluster")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write sweep.parquet, summary.csv and sweep.png here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _pair(text, flag):
    from sorter.errors import InputError
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise InputError(f"bad {flag} {text!r}", field=flag,
                         expected="KEY=V1,V2,... e.g. wave.0.rate_per_hour=6000,8000"
                         if flag == "--vary" else "KEY=VALUE e.g. scenario.shift_hours=1")
    return key.strip(), value.strip()


def _interrupt(signum, frame):
    from sorter.sweep import request_stop
    request_stop()


def _where(exc) -> str:
    """`` (while running point 3 (key=value), seed 12)`` from the note the sweep added."""
    notes = [n.removeprefix("sorter sweep: ") for n in getattr(exc, "__notes__", None) or ()]
    return f" ({'; '.join(notes)})" if notes else ""


def _check_scheduler(address, timeout):
    """Raise OSError unless a Dask scheduler answers at ``address`` within ``timeout`` s.
    distributed's connect waits for the scheduler's handshake without a limit: a port where
    something else listens (the dashboard's 8787 for 8786) hung ``Client()`` for ever, and
    one that answered with other bytes failed as "out of memory"."""
    import asyncio

    from distributed.comm import connect

    async def probe():
        comm = await connect(address, timeout=timeout)
        await comm.close()
    try:
        asyncio.run(asyncio.wait_for(probe(), timeout + 1))
    except (asyncio.TimeoutError, MemoryError, EOFError) as exc:   # no (Dask) handshake
        what = (f"no answer in {timeout:g} s" if isinstance(exc, asyncio.TimeoutError)
                else "something else answered")
        raise OSError(f"no Dask scheduler at {address} ({what}: the dashboard's port, 8787, "
                      "instead of the scheduler's, 8786?)") from None


def run(args) -> int:
    from concurrent.futures.process import BrokenProcessPool

    from sorter.errors import InputError
    from sorter.floor_sweep import floor_sweep, is_floor_file
    from sorter.sweep import capacity_sweep, parse_key, parse_values
    floor = is_floor_file(args.scenario)

    if not args.vary:
        raise InputError("nothing to vary", field="--vary",
                         expected="at least one --vary KEY=V1,V2,...")
    vary = {}
    for text in args.vary:
        key, values = _pair(text, "--vary")
        if key in vary:
            raise InputError(f"--vary {key} given twice", field="--vary", expected="each key once")
        vary[key] = parse_values(values, key=key)
        seen_v = set()
        for v in vary[key]:            # a value twice would run the same points twice
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            tag = ("number", float(v)) if num else (type(v).__name__, repr(v))
            if tag in seen_v:
                raise InputError(f"--vary {key}: value {v!r} given twice", field="--vary",
                                 expected="each value once")
            seen_v.add(tag)
    overrides, seen = {}, {}
    for text in args.set_:
        key, value = _pair(text, "--set")
        norm = key if floor else parse_key(key)
        if norm in seen:         # the last value would win silently
            raise InputError(f"--set {key} given twice" + (f" (also as {seen[norm]})"
                                                         if seen[norm] != key else ""),
                             field="--set", expected="each key once")
        seen[norm] = key
        vals = parse_values(value, key=key)
        overrides[key] = vals[0] if len(vals) == 1 else vals
    if not 1 <= args.seeds <= MAX_SEEDS:
        raise InputError(f"bad --seeds {args.seeds}", field="--seeds",
                         expected=f"an integer 1..{MAX_SEEDS:,} (replications per point)")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"bad --workers {args.workers}", field="--workers",
                         expected="an integer >= 1")
    if args.workers is not None and args.dask not in (None, "local"):   # was: ignored silently
        raise InputError(f"--workers {args.workers} with --dask {args.dask}", field="--workers",
                         expected="no --workers with a scheduler's address: its workers run "
                                  "the sweep (--workers sets local processes, or --dask "
                                  "local's workers)")
    from sorter.sweep import max_workers
    if args.workers is not None and args.workers > max_workers():
        # (before a --dask local cluster of that many processes is started, too)
        raise InputError(f"--workers {args.workers:,}", field="--workers",
                         expected=f"at most {max_workers()} on this machine (4 per core, at "
                                  "least 32: more processes than cores only add memory)")

    if args.out is not None:           # a bad --out fails now, not after the whole sweep
        from sorter.report import SWEEP_FILES, prepare_out_dir
        prepare_out_dir(args.out, create=False, files=SWEEP_FILES)

    # `kill PID` (a scheduler's time limit) stops the sweep as Ctrl-C does, and both stop
    # the worker processes too (killed by SIGTERM, the parent left them running, orphaned;
    # a KeyboardInterrupt raised inside the pool's bookkeeping could hang the exit)
    try:
        old_handlers = {sig: signal.signal(sig, _interrupt)
                        for sig in (signal.SIGTERM, signal.SIGINT)
                        if signal.getsignal(sig) is not signal.SIG_IGN}   # (nohup'd: kept)
    except ValueError:                    # not the main thread (called from a thread)
        old_handlers = {}
    client = cluster = None
    try:
        if args.dask:
            try:
                from dask.distributed import Client, LocalCluster
            except ImportError:
                raise InputError("--dask needs dask.distributed", field="--dask",
                                 expected="pip install '.[dask]' (from a checkout of sorter)") from None
            if args.dask == "local":
                n = args.workers or os.cpu_count() or 1
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None)
                client = Client(cluster)
            else:
                try:
                    _check_scheduler(args.dask, timeout=10)
                    client = Client(args.dask, timeout=10)
                except (OSError, TimeoutError, ValueError) as exc:
                    raise InputError(f"cannot connect to the Dask scheduler: {exc}",
                                     field="--dask", expected="a scheduler address like "
                                     "tcp://host:8786, or 'local'") from None
        sweep = floor_sweep if floor else capacity_sweep
        res = sweep(args.scenario, vary, seeds=args.seeds, overrides=overrides,
                    client=client, n_workers=args.workers,
                    progress=not args.no_progress and sys.stderr.isatty())
    except BrokenProcessPool as exc:       # a worker killed (out of memory?): one clear line
        runs = _where(exc).replace("(while running ", "(runs in flight included ", 1)
        raise ValueError("a worker process died part-way (killed by the system? out of memory?)"
                         + runs + "; --workers 1 runs in this process and shows the run's own "
                         "error") from None
    except InputError as exc:             # the API's argument is this command's --dask
        if exc.field != "client" or not args.dask:
            raise
        raise exc.relocated(field="--dask") from None
    except ValueError as exc:             # a run failed after the up-front checks: say where
        if not getattr(exc, "__notes__", None):
            raise
        raise ValueError(f"{exc}{_where(exc)}") from None
    except Exception as exc:              # the Dask cluster failed us (not a run): one line
        if client is None or not (type(exc).__module__.startswith("distributed")
                                  or isinstance(exc, TimeoutError)):   # (distributed raises
            raise                                                     # the builtin one too)
        text = " ".join(str(exc).split())
        if "scheduler-connection-lost" in text:     # not about the run it names
            raise ValueError(f"lost the connection to the Dask scheduler {args.dask} part-way "
                             "(stopped? restarted?); nothing written") from None
        raise ValueError(f"the Dask cluster failed ({type(exc).__name__}: {text}){_where(exc)}; "
                         "nothing written") from None
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    print(res.format_table())
    if args.out is not None:
        from sorter.report import SWEEP_FILES, prepare_out_dir, written_together
        out = prepare_out_dir(args.out)
        # all three renamed into place once all are written: a failure part-way leaves an
        # earlier sweep's files whole, not a truncated Parquet beside a stale summary
        with written_together(out, SWEEP_FILES) as tmp:
            res.write_parquet(tmp["sweep.parquet"])
            res.write_csv(tmp["summary.csv"])
            res.plot(tmp["sweep.png"])
        paths = [out / name for name in SWEEP_FILES]
        print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0

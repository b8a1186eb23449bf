"""Plan a lifelong multi-robot run on a grid floor (PIBT) and report its throughput and speed.

FLOOR is a map file (MovingAI / LoRR .map, RHCR .grid or kiva .map, ASCII) or a LoRR problem
.json (then its agents, tasks and teamSize are the defaults). Tasks, unless given:
LoRR errands for a .json (as its taskAssignmentStrategy says: roundrobin, roundrobin_fixed
(each robot's own errands once, then it parks) or greedy (each robot holds numTasksReveal
errands); a 2024 problem names none: nearest, a free robot takes the revealed task it finishes
soonest, as the 2024 Start-Kit's scheduler; --assign overrides) or --tasks FILE (round-robin); else robots cycle
induct -> drop cell of a chute -> induct (parcel destinations from a Zipf mix); on a map with no
inducts/chutes, goals are drawn from free cells with the seed (each robot's from the part of
the map it can reach). Starts: --agents FILE (LoRR .agents or MovingAI .scen), else the JSON's
(--robots beyond teamSize: the agents file's next agents, then free cells drawn with the
seed), else distinct free cells drawn with the seed (travel cells first).

Prints tasks completed (every goal reached: each induct visit and each drop count, as LoRR
errands and RHCR tasks do; a LoRR 2024 task file's tasks are comma-separated errands, and
kpis.json adds lorr_tasks_finished, the tasks whose every errand is done), tasks/step, ms/step
(p50, p99, max; lazily computed distance tables included), preprocessing seconds and peak
memory (--table-mb bounds the cache of distance tables no robot uses now). With --out DIR writes paths.npz (positions int32
[steps+1, robots], cell ids row*width+col, row 0 = starts; width; height) and kpis.json;
--animate START:STOP writes animation.gif, --heatmap writes heatmap.png, --report writes
report.html: one page with the headline figures, throughput over the run, what the robots do
(moving, waiting, dwelling ...), where they wait on the floor and parcels per chute (PNGs beside
it). --rotation uses LoRR's action model (headings; forward, turn 90 degrees or wait), as the LoRR scores do.
--guidance: none = plain PIBT; lanes = soft one-way lanes; flow = traffic-flow tie-breaks.
Where a crowd locks up for good (pockets, mazes), a robot stuck for --rescue-after K steps
(default max(128, robots), with --rotation max(128, 2 x robots), up to 1,024 robots) is
brought to its goal by a LaCAM search; the KPIs count rescues.

Sorting floor with the chute engine: --scenario sorting (or any of the flags below) routes each
parcel through a sorter.Sorter: a plan generated from the floor's chute stations (a few become
reject and overflow chutes; busy destinations get several chutes), or --plan PLAN.csv --chutes
CHUTES.toml whose chute ids are the floor's chute labels. A chute that fills (--chute-capacity,
default 50 parcels; 0 = unlimited) closes for --container-change-steps (default 50) and the
robots heading there are re-routed (alternate, overflow or reject chute). --arrival-rate R
offers R parcels per hour, or waves of rates (R1,R2@START_S,...; without it every induct always
has a parcel: the floor's capacity);
--no-read-rate P sends that share of parcels to the no_read reject chute. --fault-rate P makes
each robot fail with probability P per step, blocking its cell for --repair-steps K (mean of
--repair-dist); robots whose way runs into a faulted robot within --detour-horizon H moves
(default 12) are routed around it. The KPIs then add parcels sorted (per hour at --seconds-per-step), per chute,
by reason, robot utilisation, chute full events, induct-to-drop p50/p95 (with --arrival-rate:
parcels offered and still waiting at the inducts, a parcel's p95 wait there for a robot,
robot-steps starved at an induct with no parcel). Without --scenario,
a floor with stations uses the plain destination -> chute table (RHCR's scenario); --router
table forces it. Either way an empty robot heads for the induct with the least distance + 2 x
robots already heading there (--induct-choice balanced, the default) or the nearest one.

example:
  sorter mapf ../shared/benchmarks/rhcr/sorting_map.grid --robots 600 --steps 500 --dwell-chute 0 --dwell-induct 0 --mix uniform --destinations 275
  sorter mapf ../shared/benchmarks/lorr2023/main_round/warehouse.domain/MR23-I-06.json --steps 200 --rotation
  sorter mapf ../shared/benchmarks/movingai/warehouse-10-20-10-2-1.map --robots 1000 --out runs/wh --heatmap
  sorter mapf ../shared/benchmarks/rhcr/sorting_map.grid --scenario sorting --robots 600 --mix 721 --fault-rate 0.0005 --repair-steps 100
  sorter mapf seeds/floors/medium_33x57.txt --scenario sorting --robots 300 --steps 2000 --out runs/m --report
  sorter mapf seeds/floors/medium_33x57.txt --robots 120 --steps 5400 --arrival-rate 3000,7000@1800,4000@3600
"""
from __future__ import annotations

import errno
import json
import math
import sys
from pathlib import Path

from sorter.layout.lorr import STRATEGIES

__all__ = ["add_arguments", "run"]


def add_arguments(p):
    p.add_argument("floor", metavar="FLOOR", help="map file (.map, .grid, ASCII) or LoRR problem .json")
    p.add_argument("--robots", type=int, default=None, metavar="N",
                   help="number of robots (default: the JSON's teamSize or all of --agents, else 100)")
    p.add_argument("--agents", default=None, metavar="FILE",
                   help="start cells: LoRR .agents file or MovingAI .scen (with --robots N: "
                        "its first N agents)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--tasks", default=None, metavar="FILE",
                      help="LoRR .tasks file: one errand per line (2023) or comma-separated errands "
                           "(2024); round-robin (with a LoRR .json: in place of its tasks file, "
                           "assigned as the JSON says; --assign overrides)")
    what.add_argument("--scenario", choices=("sorting", "random"), default=None,
                      help="sorting: induct -> chute -> induct; random: random free cells")
    p.add_argument("--steps", type=int, default=1000, metavar="T", help="timesteps to run")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed")
    p.add_argument("--out", default=None, metavar="DIR", help="write paths.npz, kpis.json (and figures) here")
    p.add_argument("--animate", default=None, metavar="START:STOP",
                   help="with --out: write animation.gif of steps START..STOP")
    p.add_argument("--heatmap", action="store_true", help="with --out: write heatmap.png (congestion)")
    p.add_argument("--report", action="store_true",
                   help="with --out: write report.html, a one-page report with its plots "
                        "(throughput over the run, robot states, where robots wait, parcels per chute)")
    p.add_argument("--dwell-chute", type=int, default=None, metavar="K",
                   help="steps at a drop cell (default 5 on sorting tasks, 0 on errands)")
    p.add_argument("--dwell-induct", type=int, default=None, metavar="K",
                   help="steps at an induct (default 1 on sorting tasks, 0 on errands)")
    p.add_argument("--guidance", choices=("none", "flow", "lanes", "lanes+flow"), default="lanes+flow",
                   help="none = plain PIBT; lanes = soft one-way lanes; flow = traffic-flow tie-breaking")
    p.add_argument("--induct-choice", choices=("nearest", "balanced"), default=None,
                   help="which induct an empty robot heads for (sorting tasks; default balanced: "
                        "least distance + 2 x robots already heading there)")
    p.add_argument("--mix", choices=("zipf", "721", "uniform"), default=None,
                   help="parcel destination mix (sorting tasks; default zipf)")
    p.add_argument("--destinations", type=int, default=None, metavar="D",
                   help="number of parcel destinations (sorting tasks; default min(100, chutes))")
    p.add_argument("--assign", choices=STRATEGIES, default=None,
                   help="LoRR errands: task assignment (default: the JSON's taskAssignmentStrategy; "
                        "2024 problems nearest; --tasks FILE roundrobin)")
    p.add_argument("--rotation", action="store_true",
                   help="LoRR action model: headings; forward / turn 90 degrees / wait per step "
                        "(paths.npz then also holds 'headings')")
    p.add_argument("--table-mb", type=float, default=None, metavar="MB",
                   help="memory bound of the distance-table cache (default 512; 0 for multi-errand "
                        "task files, the LoRR 2024 kind, whose errands spread over the whole floor "
                        "so a table is rarely asked for twice): beyond it, tables no robot uses "
                        "now are evicted (LRU); tables in use are kept whatever the bound. Less "
                        "memory, more tables computed again")
    p.add_argument("--rescue-after", type=int, default=None, metavar="K",
                   help="a robot whose distance to its goal has not improved for K steps is "
                        "brought to it by a LaCAM search (pockets, mazes: where PIBT alone can "
                        "lock up); 0 = off (default max(128, robots), with --rotation "
                        "max(128, 2 x robots), up to 1,024 robots, else off)")
    p.add_argument("--congestion-period", type=int, default=None, metavar="K",
                   help="online congestion costs: cells where robots waited over about the last "
                        "K steps make moves into them dearer, and the tables of goals on induct "
                        "(E) cells are recomputed under those costs, each every K steps (in the "
                        "background), so robots route around queues; 0 = off (default 50 with "
                        "--rotation and lanes guidance, else off)")
    p.add_argument("--json", action="store_true", help="print the KPIs as one JSON object")
    eng = p.add_argument_group("sorting floor with the chute engine (--scenario sorting)")
    eng.add_argument("--router", choices=("engine", "table"), default=None,
                     help="engine: sorter.Sorter (default with --scenario sorting or any flag "
                          "below); table: the plain destination -> chute table")
    eng.add_argument("--plan", default=None, metavar="PLAN.csv",
                     help="sort plan CSV (with --chutes; chute ids = the floor's chute labels)")
    eng.add_argument("--chutes", default=None, metavar="CHUTES.toml", help="chute table TOML (with --plan)")
    eng.add_argument("--chute-capacity", type=int, default=None, metavar="N",
                     help="parcels per container (default 50, or the TOML's; 0 = unlimited)")
    eng.add_argument("--container-change-steps", type=int, default=None, metavar="M",
                     help="steps a full chute stays closed (default 50)")
    eng.add_argument("--fault-rate", type=float, default=None, metavar="P",
                     help="probability per step that a robot fails (default 0)")
    eng.add_argument("--repair-steps", type=int, default=None, metavar="K",
                     help="repair time in steps (mean; default 50)")
    eng.add_argument("--repair-dist", choices=("fixed", "exp", "uniform"), default=None,
                     help="repair time distribution (default exp: geometric with mean K)")
    eng.add_argument("--detour-horizon", type=int, default=None, metavar="H",
                     help="robots whose way runs into a faulted robot within H moves take a "
                          "detour (default 12; 0 = queue behind it)")
    eng.add_argument("--seconds-per-step", type=float, default=None, metavar="S",
                     help="seconds per timestep for the per-hour KPIs (default 1)")
    eng.add_argument("--strategy", choices=("least_loaded", "round_robin", "fill_first"), default=None,
                     help="chute strategy: of the generated plan (default least_loaded), or in "
                          "place of a loaded --plan's own")
    eng.add_argument("--arrival-rate", type=_arrival_arg, default=None, metavar="PER_HOUR",
                     help="parcels per hour offered to the floor, all inducts together (Poisson, "
                          "shared evenly); robots wait at an induct for a parcel, and go where "
                          "parcels wait (default 0: every induct always has one). Waves: "
                          "RATE,RATE@START_S,... e.g. 4000,9000@1800,5000@5400 (a rate from "
                          "each start, in seconds into the run; 0 in waves: a break)")
    eng.add_argument("--no-read-rate", type=float, default=None, metavar="P",
                     help="probability that a loaded parcel's scan is a no-read (it goes to the "
                          "no_read reject chute; default 0)")


def _parse_window(text, steps):
    from sorter.errors import InputError
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError:
        raise InputError(f"--animate {text!r}", field="animate", expected="START:STOP, two integers") from None
    if not 0 <= a < b <= steps:
        raise InputError(f"--animate {text!r} outside 0..{steps} (--steps {steps})", field="animate",
                         expected=f"0 <= START < STOP <= {steps}")
    return a, b


MAX_DWELL = 2**31 - 1            # the planner counts dwell steps in int32
MAX_STEPS = 100_000_000          # 1.6 GB of per-step timings already; longer runs: split them


def _check_distinct(starts, path, first_line):
    """Two agents on one start cell: an InputError naming the second one's line."""
    import numpy as np

    from sorter.errors import InputError
    uniq, first_idx, counts = np.unique(starts, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = np.flatnonzero(np.isin(starts, uniq[counts > 1]))
        # the earliest agent that repeats an earlier one's cell
        seen = {}
        for i in dup:
            c = int(starts[i])
            if c in seen:
                raise InputError(f"agents {seen[c]} and {int(i)} both start on cell {c}", path=path,
                                 line=first_line + int(i), field="start",
                                 expected="distinct start cells")
            seen[c] = int(i)


def _looks_like_scen(path):
    """A MovingAI scenario under another name: a 'version' line or nine fields, tab- or
    space-separated as :func:`~sorter.layout.movingai.load_scen` reads them (a LoRR agents
    file starts with a count or a '#' line)."""
    from sorter.layout._common import read_text
    text = read_text(path)
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if first.lstrip().startswith("#"):      # a LoRR comment line (of any number of words)
        return False
    return (first.split()[:1] == ["version"] or len(first.split("\t")) == 9
            or len(first.split()) == 9)


def _no_table_memory(floor, robots, rotation):
    """The InputError for a planner whose distance-table pool could not be mapped: it reserves
    (virtual memory, touched as tables are written) about two rows per robot of one entry per
    free cell, which the system refuses past its memory (or a ``ulimit -v``)."""
    from sorter.errors import InputError
    nf = len(floor.free_cells) * (4 if rotation else 1)
    need = 2 * (robots + 64) * nf * (2 if nf < 65535 else 4)
    return InputError(f"{robots:,} robots on {len(floor.free_cells):,} free cells: the distance "
                      f"tables' reserve (~{need / 2**30:,.1f} GiB of address space, two tables "
                      "a robot) could not be mapped", field="robots",
                      expected="fewer robots or a smaller floor (or a higher `ulimit -v`)")


def _check_memory(steps, robots, *, record, rotation):
    """Refuse a run whose recorded arrays cannot fit in memory (before allocating them)."""
    import os

    from sorter.errors import InputError
    # per step: the step and kernel timings (2 x float64), and a sorting floor's robot-state
    # row (6 x int64) and faulted-robot list entry: ~112 bytes, whether or not paths are kept
    need = 112 * steps + (record * (steps + 1) * robots * (4 + bool(rotation)))
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):      # pragma: no cover - not POSIX
        return
    if need > have // 2:
        raise InputError(f"--steps {steps} with {robots} robots needs {need / 2**30:.1f} GiB for "
                         f"the recorded paths and timings ({have / 2**30:.1f} GiB of memory)",
                         field="steps", expected="fewer steps or robots, or no --out")


def _check_connected(floor, starts, errands, offsets, source, start_src=None, task_file=None):
    """Every errand cell and every start in one part of the floor (moves taken both ways):
    an errand no robot can reach, or a robot cut off from the errands, would stall that
    robot for the rest of the run."""
    import numpy as np

    from sorter.agv.tasks import connected_parts
    from sorter.errors import InputError
    part = connected_parts(np.asarray(floor.moves))
    # the part holding most errand cells, on a tie the one most robots start in (the part
    # most robots start in alone blamed the one robot beside the errands when the others,
    # or half of them, started in a pocket)
    n_err = np.bincount(part[errands], minlength=part.size).astype(np.int64)
    n_start = np.bincount(part[starts], minlength=part.size)
    home = int(np.argmax(n_err * (len(starts) + 1) + n_start))
    w = floor.width
    away = np.flatnonzero(part[starts] != home)
    if away.size:
        c = int(starts[away[0]])
        where, line = _start_place(int(away[0]), start_src, source)
        raise InputError(f"robot {int(away[0])} starts on cell {c} (row {c // w}, col {c % w}), "
                         f"cut off from the part of the floor the errands lie in", path=where,
                         line=line, field="start",
                         expected="starts connected to each other and to the errands")
    off = np.flatnonzero(part[errands] != home)
    if off.size:
        k = int(off[0])
        task = int(np.searchsorted(offsets, k, side="right") - 1)
        c = int(errands[k])
        where, line = _task_place(task, task_file, source)
        raise InputError(f"task {task} (0-based, in file order) has errand cell {c} (row {c // w}, "
                         f"col {c % w}), which no robot can reach", path=where, line=line,
                         field="task",
                         expected="errand cells connected to the robots' starts")


def _task_place(task, task_file, source):
    """(path, line) naming task ``task`` (0-based): its line of the tasks file when known (after
    the leading ``#`` lines and the count line), else ``source`` and no line."""
    if task_file is None:
        return source, None
    from sorter.layout._common import read_text, split_lines
    from sorter.layout.lorr import count_comment_lines
    return task_file, count_comment_lines(split_lines(read_text(task_file))) + 2 + int(task)


def _start_place(i, start_src, source):
    """(path, line) naming robot ``i``'s start: its line of the agents file when it came from
    one (``start_src = (path, first_line, n_listed)``), else ``source`` and no line."""
    if start_src is not None and i < start_src[2]:
        return start_src[0], start_src[1] + i
    return source, None


def _check_starts_reach_inducts(floor, starts, start_src):
    """Sorting run: every start given in a file must be able to reach an induct (inducts and
    chutes reach each other, checked on loading), else that robot never works: a start in a
    walled-off pocket, or in a one-way trap with no way out."""
    import numpy as np

    from sorter.errors import InputError
    from sorter.layout._grid import reach
    ind = np.concatenate([np.asarray(s.cells) for s in floor.inducts])
    ok = reach(np.asarray(floor.moves), ind, backward=True, rev=floor.reverse_moves)
    bad = np.flatnonzero(~ok[np.asarray(starts)])
    if bad.size:
        i = int(bad[0])
        c = int(starts[i])
        path, line = _start_place(i, start_src, floor.source)
        raise InputError(f"robot {i} starts on cell {c} (row {c // floor.width}, col "
                         f"{c % floor.width}), from where no induct can be reached", path=path,
                         line=line, field="start",
                         expected="start cells from which the inducts and chutes can be reached")


def _check_room_to_work(floor, n):
    """Sorting run, starts drawn: all ``n`` robots must fit on the cells from which an induct
    can be reached (the part of the floor holding the inducts and chutes); drawn beyond them,
    robots started in a walled-off pocket or a one-way trap and idled the whole run, without a
    word (a start given in a file there is refused)."""
    import numpy as np

    from sorter.agv.lifelong import working_cells
    from sorter.errors import InputError
    free = np.asarray(floor.free_cells).size
    room = working_cells(floor).size
    if room < n <= free:            # (beyond the free cells: the draw says so)
        raise InputError(f"--robots {n}: only {room} of the floor's {free} free cells can reach "
                         f"the inducts and chutes (the others lie in walled-off pockets or "
                         f"one-way traps)", path=floor.source, field="robots",
                         expected=f"at most {room} robots")


def _check_directed_errands(floor, starts, errands, offsets, source, start_src, task_file=None):
    """On a floor with one-way moves: every errand cell must reach every other one and back
    (one strongly connected part), and every start must reach them. The both-ways check of
    :func:`_check_connected` misses an errand in a one-way trap (a robot sent there never
    leaves) and a start that can only move away from the errands."""
    import numpy as np

    from sorter.agv.tasks import strongly_connected_parts
    from sorter.errors import InputError
    from sorter.layout._grid import reach
    moves, rev, w = np.asarray(floor.moves), floor.reverse_moves, floor.width
    errands = np.asarray(errands)
    part = strongly_connected_parts(moves)[errands]
    labels, counts = np.unique(part, return_counts=True)
    home = errands[part == labels[np.argmax(counts)]]   # the part holding most errands
    fwd = reach(moves, home)
    bwd = reach(moves, home, backward=True, rev=rev)
    off = np.flatnonzero(~(fwd[errands] & bwd[errands]))
    if off.size:
        k = int(off[0])
        task = int(np.searchsorted(offsets, k, side="right") - 1)
        c = int(errands[k])
        why = ("cannot be reached from the other errands" if not fwd[c] else
               "has no way back to the other errands (a one-way trap)")
        where, line = _task_place(task, task_file, source)
        raise InputError(f"task {task} (0-based, in file order) has errand cell {c} (row {c // w}, "
                         f"col {c % w}), which {why}", path=where, line=line, field="task",
                         expected="errand cells that can reach each other along the one-way moves")
    bad = np.flatnonzero(~bwd[np.asarray(starts)])
    if bad.size:
        i = int(bad[0])
        c = int(starts[i])
        path, line = _start_place(i, start_src, source)
        raise InputError(f"robot {i} starts on cell {c} (row {c // w}, col {c % w}), from where "
                         f"the errands cannot be reached along the one-way moves", path=path,
                         line=line, field="start",
                         expected="start cells from which the errand cells can be reached")


def _save_npz(path, **arrays):
    """``numpy.savez_compressed`` at zlib level 1: the same ``.npz`` for ``numpy.load``, ~9x
    faster on 10,000 robots x 1,000 steps (level 6 took ~60% of such a run's wall time) and
    no larger (cell ids of robots that mostly stay put or move by one compress alike)."""
    import zipfile

    import numpy as np
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                         allowZip64=True) as zf:
        for name, a in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(a), allow_pickle=False)


def _peak_rss_mb():
    """Peak resident memory of this process in MB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:                     # not on Windows
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10     # bytes on macOS, else KB


def _finite(obj):
    """JSON-safe copy: NaN / infinity become null (json.dumps would write invalid JSON)."""
    import math
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


_SIM_FLAGS = ("plan", "chutes", "chute_capacity", "container_change_steps", "fault_rate",
              "repair_steps", "repair_dist", "seconds_per_step", "strategy", "arrival_rate",
              "no_read_rate")


def _arrival_arg(text):
    """``--arrival-rate``: a number, or waves ``RATE,RATE@START_S,...`` (the first from 0 s)."""
    import argparse
    items = [x.strip() for x in str(text).split(",")]
    if len(items) == 1 and "@" not in items[0]:
        try:
            return float(items[0])
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of parcels per hour "
                                             "(or waves RATE,RATE@START_S,...)") from None
    waves = []
    for i, x in enumerate(items):
        rate, _, start = x.partition("@")
        try:
            waves.append((float(start) if start else (0.0 if i == 0 else None), float(rate)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"wave {x!r}: expected RATE@START_S, "
                                             "e.g. 9000@1800") from None
        if waves[-1][0] is None:
            raise argparse.ArgumentTypeError(f"wave {x!r} has no start: RATE@START_S")
    return waves


def _run_has(kind, sorting):
    """What a run has, and the option or floor that made it so, for errors naming a flag of
    another kind of run (was: "random goals" beside --scenario random, naming only one flag)."""
    if kind == "errands":
        return "LoRR errands (--tasks FILE or the .json's tasks)"
    if sorting:
        return "sorting tasks" + (" (--scenario sorting)" if kind == "sorting" else
                                  " (the floor's inducts and chutes)")
    return "random goals " + ("(--scenario random)" if kind == "random" else
                              "(the floor has no inducts or no chutes)")


def _floor_sim_options(args, sorting, kind):
    """FloorSimOptions when the chute engine routes parcels, else None (plain table)."""
    from sorter.errors import InputError
    given = [f for f in _SIM_FLAGS if getattr(args, f, None) is not None]
    # options of robot faults or container changes where none can happen (was: accepted and
    # silently without effect, the run's KPIs as without them)
    lone = [f for f in ("repair_steps", "repair_dist", "detour_horizon")
            if getattr(args, f, None) is not None]
    if lone and getattr(args, "fault_rate", None) is None:
        flag = "--" + lone[0].replace("_", "-")
        raise InputError(f"{flag} applies to robot faults; without --fault-rate no robot fails",
                         field=lone[0], expected=f"--fault-rate P with {flag}, or no {flag}")
    if getattr(args, "chute_capacity", None) == 0 and args.container_change_steps is not None:
        raise InputError("--container-change-steps with --chute-capacity 0: unlimited containers "
                         "never fill, so never change", field="container_change_steps",
                         expected="--chute-capacity N > 0, or no --container-change-steps")
    router = args.router
    if router is None:
        router = "engine" if (kind == "sorting" or given) else "table"
    if router == "table":
        if given:
            raise InputError(f"--{given[0].replace('_', '-')} needs the chute engine", field="router",
                             expected="--router engine (or no --router)")
        return None
    if not sorting:
        # name the flag that asked for the engine and what this run has instead (was: no flag)
        flag = "--" + given[0].replace("_", "-") if given else "--router engine"
        has = _run_has(kind, False)
        raise InputError(f"{flag} needs the chute engine, which routes sorting tasks; this run "
                         f"has {has}", field=given[0] if given else "router",
                         expected=f"--scenario sorting on a floor with inducts and chutes, "
                                  f"or no {flag}")
    from sorter.agv.floor_sim import FloorSimOptions
    kw = {f: getattr(args, f) for f in given}
    kw["plan_csv"] = kw.pop("plan", None)
    kw["chutes_toml"] = kw.pop("chutes", None)
    return FloorSimOptions(**kw).validate()


def _extend_starts(floor, starts, n, seed, errands=None):
    """``starts`` followed by ``n - len(starts)`` distinct other free cells (travel cells first),
    drawn with ``seed``; with ``errands``, only cells of the floor's part that holds most of
    them (strongly connected: robots there reach every errand and come back), so that no
    drawn start lands in a walled-off pocket (the run was then refused, naming a start the
    user never gave)."""
    import numpy as np
    from sorter.agv.lifelong import default_starts
    from sorter.errors import InputError
    free = np.asarray(floor.free_cells)
    if n > free.size:
        raise InputError(f"--robots {n} do not fit on {free.size} free cells", path=floor.source,
                         field="robots", expected=f"at most {free.size}")
    taken = np.zeros(floor.n_cells, bool)
    taken[starts] = True
    if errands is not None and np.size(errands):
        taken |= ~_errand_part(floor, errands, n, taken, listed=len(starts))
    rest = default_starts(_Without(floor, taken), n - starts.size, np.random.default_rng(seed))
    return np.concatenate([np.asarray(starts, np.int32), rest.astype(np.int32)])


def _errand_part(floor, errands, n, taken, listed=0):
    """The cells of the floor's part (strongly connected) that holds most ``errands``; an
    InputError when fewer than ``n - listed`` of them are free of ``taken`` (drawn starts
    beyond them would land where no errand can be reached)."""
    import numpy as np

    from sorter.agv.tasks import strongly_connected_parts
    from sorter.errors import InputError
    part = strongly_connected_parts(np.asarray(floor.moves))
    lab, cnt = np.unique(part[np.asarray(errands)], return_counts=True)
    home = part == lab[np.argmax(cnt)]
    free = np.asarray(floor.free_cells)
    room = int((home[free] & ~taken[free]).sum())
    if room < n - listed:
        given = f"the agents file lists {listed} and " if listed else ""
        raise InputError(f"--robots {n}: {given}the part of the floor the errands lie in has "
                         f"{room} {'more ' if listed else ''}free cells", path=floor.source,
                         field="robots", expected=f"at most {listed + room}")
    return home


class _Without:
    """A floor's free cells less ``taken`` (for :func:`default_starts`)."""

    def __init__(self, floor, taken):
        import numpy as np
        self.free_cells = np.asarray(floor.free_cells)[~taken[np.asarray(floor.free_cells)]]
        self.cells = floor.cells
        self.source = floor.source


def run(args) -> int:
    from sorter.report import counted
    import time

    import numpy as np

    from sorter.agv.lifelong import make_run, simulate, warm_up
    from sorter.errors import InputError
    from sorter.layout import load_floor

    # an empty name ("$DIR" unset) was read as '.', or as no option at all: --out "" wrote
    # nothing, --tasks "" ran sorting tasks instead
    for flag in ("floor", "agents", "tasks", "out", "plan", "chutes"):
        v = getattr(args, flag, None)
        if v is not None and not str(v).strip():
            name = "the floor file name" if flag == "floor" else f"--{flag}"
            raise InputError(f"{name} is empty", field=flag,
                             expected="a file or directory name" if flag == "out" else "a file name")
    path = Path(args.floor)
    if args.steps < 0:
        raise InputError(f"--steps {args.steps}", field="steps", expected="an integer >= 0")
    if args.steps > MAX_STEPS:
        raise InputError(f"--steps {args.steps}", field="steps",
                         expected=f"an integer <= {MAX_STEPS:,}")
    if args.seed < 0:
        raise InputError(f"--seed {args.seed}", field="seed", expected="an integer >= 0")
    if args.congestion_period is not None and not 0 <= args.congestion_period <= 2**31 - 1:
        raise InputError(f"--congestion-period {args.congestion_period}",
                         field="congestion_period",
                         expected="steps, an integer 0..2**31-1 (0 = off)")
    if args.rescue_after is not None and not 0 <= args.rescue_after <= 2**31 - 1:
        raise InputError(f"--rescue-after {args.rescue_after}", field="rescue_after",
                         expected="steps, an integer 0..2**31-1 (0 = no rescues)")
    if args.table_mb is not None and not (args.table_mb >= 0 and math.isfinite(args.table_mb)):
        raise InputError(f"--table-mb {args.table_mb}", field="table_mb",
                         expected="a number of MB >= 0 (0 = no idle tables cached)")
    for flag in ("dwell_chute", "dwell_induct"):
        v = getattr(args, flag)
        if v is not None and not 0 <= v <= MAX_DWELL:
            raise InputError(f"--{flag.replace('_', '-')} {v}", field=flag,
                             expected=f"an integer 0..{MAX_DWELL:,}")
    window = _parse_window(args.animate, args.steps) if args.animate else None
    if (window or args.heatmap or args.report) and not args.out:
        raise InputError("--animate/--heatmap/--report write files", field="out",
                         expected="--out DIR as well")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise InputError(f"--out {args.out!r} is an existing file", path=args.out, field="out",
                         expected="a directory (created if missing)")
    # a read-only --out, a folder named report.html ... fail now, not after the run (a folder
    # to be made is made before the run, below)
    if args.out and (args.report or Path(args.out).is_dir()):
        from sorter.agv.report import REPORT_FILES
        from sorter.report import prepare_out_dir
        prepare_out_dir(args.out, field="out", create=False,
                        files=("paths.npz", "kpis.json") + (("animation.gif",) if window else ())
                        + (("heatmap.png",) if args.heatmap else ())
                        + (REPORT_FILES if args.report else ()))
    t0 = time.perf_counter()
    starts = errands = offsets = None
    strategy = "roundrobin"
    reveal = 1.0
    n = args.robots
    start_src = None          # (file, line of agent 0, agents listed) when starts come from a file
    task_file = None          # the tasks file, to name a bad task's line
    from sorter.layout.load import floor_format
    if path.exists() and floor_format(path) == "lorr":
        from sorter.layout.lorr import load_lorr_problem
        prob = load_lorr_problem(path)
        floor = prob.floor
        strategy, reveal = prob.strategy, float(max(1, prob.num_tasks_reveal))
        errands, offsets = prob.tasks, prob.task_offsets
        listed = prob.agents if prob.agents is not None else prob.starts
        task_file = Path(prob.task_file)
        start_src = (prob.agent_file, prob.agent_first_line, int(listed.size))
        if n is None or n <= prob.starts.size:
            n = prob.team_size if n is None else n
            starts = prob.starts[:n]
        elif not args.agents:
            # more robots than teamSize: the agents file's next agents (was: ignored), then,
            # past the file, its agents keep their starts (row 0 of the paths) and the extra
            # robots start on distinct free cells drawn with the seed; errands round-robin
            # over the N robots
            starts = listed[:n]
            _check_distinct(starts, prob.agent_file, prob.agent_first_line)
            if n > listed.size:
                starts = _extend_starts(floor, listed, n, args.seed, errands)
                print(f"note: {path.name}'s agents file lists {listed.size} agents; robots "
                      f"{listed.size}..{n - 1} start on free cells drawn with seed {args.seed}",
                      file=sys.stderr)
    else:
        floor = load_floor(path)
    if args.agents:
        apath = Path(args.agents)
        if apath.suffix.lower() == ".scen" or _looks_like_scen(apath):
            from sorter.layout.movingai import load_scen
            scen = load_scen(apath, floor)
            starts, first_line = scen.starts, scen.first_line
        else:
            from sorter.layout.lorr import read_cell_list
            starts, first_line = read_cell_list(apath, floor, field="start")
        if args.robots is not None and 1 <= args.robots < starts.size:
            starts = starts[:args.robots]              # MovingAI: the first N agents
        elif args.robots is not None and args.robots > starts.size:
            raise InputError(f"--robots {args.robots} but the file lists {starts.size} agents",
                             path=apath, field="robots",
                             expected=f"--robots at most {starts.size}, or no --robots")
        n = int(starts.size) if args.robots is None or args.robots >= 1 else args.robots
        _check_distinct(starts, apath, first_line)
        start_src = (apath, first_line, int(starts.size))
    if n is None:
        n = 100
    if n < 1:
        raise InputError(f"--robots {n}", field="robots", expected="a positive integer")
    if args.tasks:
        from sorter.layout.lorr import load_task_list
        errands, offsets = load_task_list(Path(args.tasks), floor)
        task_file = Path(args.tasks)
    kind = "auto"
    if args.scenario:
        kind = args.scenario
    elif errands is not None:
        kind = "errands"
    errand_run = kind == "errands" or (kind == "auto" and errands is not None)
    sorting = kind == "sorting" or (kind == "auto" and not errand_run and floor.inducts and floor.chutes)
    if args.assign is not None:
        if not errand_run:
            raise InputError(f"--assign applies to LoRR errands; this run has "
                             f"{_run_has(kind, sorting)}", field="assign",
                             expected="a LoRR .json or --tasks FILE, or no --assign")
        strategy = args.assign
    if not sorting:
        given = [f for f in ("mix", "destinations", "induct_choice")
                 if getattr(args, f) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise InputError(f"{flag} applies to sorting tasks (parcels to chutes); this run "
                             f"has {_run_has(kind, sorting)}",
                             field=given[0],
                             expected="--scenario sorting on a floor with inducts and chutes, "
                                      f"or no {flag}")
    for flag, cells in (("dwell_chute", floor.chutes), ("dwell_induct", floor.inducts)):
        if getattr(args, flag) and not cells:     # (was: taken, printed, and without effect)
            opt = "--" + flag.replace("_", "-")
            raise InputError(f"{opt} {getattr(args, flag)}: floor {floor.name!r} has no "
                             f"{'drop' if flag == 'dwell_chute' else 'induct'} cells to dwell at",
                             field=flag, expected=f"a floor with stations, or no {opt}")
    dc = args.dwell_chute if args.dwell_chute is not None else (5 if sorting else 0)
    di = args.dwell_induct if args.dwell_induct is not None else (1 if sorting else 0)
    if kind == "sorting" and not (floor.inducts and floor.chutes):
        # before the chute engine's checks: their hint (--router table) would not help here
        raise InputError(f"floor {floor.name!r} has {len(floor.inducts)} inducts and "
                         f"{len(floor.chutes)} chutes", path=floor.source, field="stations",
                         expected="at least one induct and one chute for sorting tasks")
    if sorting and start_src is not None and starts is not None:
        _check_starts_reach_inducts(floor, starts, start_src)
    if sorting and starts is None:
        _check_room_to_work(floor, n)
    sim = _floor_sim_options(args, sorting, kind)
    if sim is not None and sim.plan_csv is None and len(floor.chutes) < 2:
        raise InputError(f"the chute engine's generated sort plan needs a reject chute besides the "
                         f"destinations' chutes; floor {floor.name!r} has {len(floor.chutes)} chute",
                         path=floor.source, field="chutes",
                         expected="at least 2 chutes, or --router table (the plain table)")
    _check_memory(args.steps, n, record=bool(args.out), rotation=args.rotation)
    if args.table_mb is None:
        # LoRR 2024 errands lie anywhere on the floor: cached idle tables are rarely asked for
        # again, and without them the run is as fast or faster at a fraction of the memory
        # (bench/RESULTS.md, Start-Kit comparison, session 7)
        args.table_mb = 0.0 if offsets is not None else 512.0
    if starts is None and errand_run and errands is not None:
        # starts drawn in the part of the floor the errands lie in (make_run): room for all?
        _errand_part(floor, errands, n, np.zeros(floor.n_cells, bool))
    jit_s = warm_up()       # Numba compiles here, not in the first timed step
    try:
        planner, stream = make_run(floor, n, starts, seed=args.seed, tasks=kind,
                                   errands=errands if kind in ("auto", "errands") else None,
                                   dwell_chute=dc, dwell_induct=di, guidance=args.guidance,
                                   induct_choice=args.induct_choice or "balanced",
                                   mix=args.mix or "zipf",
                                   n_destinations=args.destinations, rotation=args.rotation,
                                   floor_sim=sim, detour_horizon=(12 if args.detour_horizon is None
                                                                     else args.detour_horizon),
                                   max_table_mb=args.table_mb, rescue_after=args.rescue_after,
                                   congestion_period=args.congestion_period)
    except (MemoryError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno != errno.ENOMEM:
            raise
        raise _no_table_memory(floor, n, args.rotation) from None
    if (strategy != "roundrobin" or offsets is not None) and type(stream).__name__ == "ErrandTasks":
        from sorter.agv.tasks import ErrandTasks
        try:
            stream = ErrandTasks(errands, n, strategy=strategy, offsets=offsets,
                                 width=floor.width, reveal=reveal)
        except InputError as e:
            # too many revealed tasks for this fleet: the problem's numTasksReveal (was: an
            # error naming neither the JSON nor its line)
            if e.field != "numTasksReveal" or e.path is not None or floor_format(path) != "lorr":
                raise
            text = path.read_text(encoding="utf-8", errors="replace")
            line = next((i + 1 for i, ln in enumerate(text.split("\n"))
                         if '"numTasksReveal"' in ln), None)
            raise e.relocated(path=path, line=line) from None
    if type(stream).__name__ == "ErrandTasks":
        _check_connected(floor, np.asarray(planner.positions), np.asarray(stream.errands),
                         stream.offsets, args.tasks or str(path), start_src, task_file)
        if floor.is_directed:
            _check_directed_errands(floor, np.asarray(planner.positions),
                                    np.asarray(stream.errands), stream.offsets,
                                    args.tasks or str(path), start_src, task_file)
    if args.out:
        # make it before the run, not after it (a file on the way lost the whole run)
        try:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot make directory --out {args.out!r}: {e.strerror or e}",
                             path=args.out, field="out",
                             expected="a directory that can be made (created if missing)") from None
    bar = None
    if not args.json:             # on stderr, shown only if the run takes over a second
        from tqdm import tqdm
        bar = tqdm(total=args.steps, unit="step", delay=1.0, leave=False, dynamic_ncols=True,
                   desc=f"{floor.name}: {n} robots")
    try:
        res = simulate(planner, stream, args.steps, record=bool(args.out),
                       build_s=time.perf_counter() - t0 - jit_s,
                       progress=None if bar is None else (lambda t: bar.update(1)))
    finally:
        if bar is not None:
            bar.close()
    k = res.kpis()
    k.update({"floor": floor.name, "seed": args.seed, "guidance": args.guidance,
              "tasks": type(stream).__name__, "dwell_chute": dc, "dwell_induct": di,
              "rotation": bool(args.rotation),
              "width": floor.width, "height": floor.height, "table_mb_bound": args.table_mb})
    if "net_sorted_per_hour" in k:     # the headline per robot-hour figure the summary and
        # the report print (was in neither kpis.json nor --json), as `sorter sweep` names it
        k["net_sorted_per_robot_hour"] = k["net_sorted_per_hour"] / max(1, n)
    rss = _peak_rss_mb()
    if rss is not None:
        k["peak_rss_mb"] = rss
    if type(stream).__name__ == "ErrandTasks":
        k["task_assignment"] = strategy
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        extra = {} if res.headings is None else {"headings": res.headings}
        from sorter.agv.report import REPORT_FILES
        from sorter.report import written_together
        # written under temporary names, renamed once all are written: a run failing while
        # it writes (a full disk, a drawing error) leaves an earlier run's files whole, not a
        # truncated paths.npz or this run's kpis.json beside that run's paths and report
        report_files = []
        with written_together(out, ("paths.npz", "kpis.json", "animation.gif", "heatmap.png")
                              + REPORT_FILES, field="out") as tmp:
            _save_npz(tmp["paths.npz"], positions=res.positions.astype(np.int32),
                      width=np.int64(floor.width), height=np.int64(floor.height), **extra)
            tmp["kpis.json"].write_text(json.dumps(_finite(k), indent=2) + "\n")
            if window or args.heatmap:
                import matplotlib
                matplotlib.use("Agg")
                try:
                    from sorter.layout import draw
                except ImportError as e:
                    raise InputError(f"drawing is not available ({e})", field="animate") from None
                if window:
                    draw.animate(floor, res.positions, window[0], window[1] + 1,
                                 tmp["animation.gif"])
                if args.heatmap:
                    draw.congestion_heatmap(floor, res.positions, tmp["heatmap.png"])
            if args.report:
                from sorter.agv.report import chute_kinds_of, write_floor_report
                report_files = write_floor_report(
                    floor, res, k, tmp["report.html"].parent,
                    util_steps=getattr(stream, "util_steps", None),
                    offered_steps=getattr(stream, "offered_steps", None) or None,
                    faulted_steps=getattr(stream, "faulted_steps", None),
                    chute_kinds=chute_kinds_of(stream))
        if args.report:
            for f in REPORT_FILES:     # an earlier report's plot this run has not (chutes.png
                if f not in report_files and (out / f).is_file():    # of a sorting floor
                    (out / f).unlink()                 # beside a plain run's page): gone
        elif (out / REPORT_FILES[0]).is_file():    # beside new paths and KPIs: not this run's
            print(f"sorter mapf: note: {out / REPORT_FILES[0]} is an earlier run's report "
                  "(not rewritten without --report)", file=sys.stderr)
        for name, asked in (("animation.gif", window), ("heatmap.png", args.heatmap)):
            if not asked and (out / name).is_file():    # beside new paths: not this run's
                print(f"sorter mapf: note: {out / name} is an earlier run's (not rewritten "
                      f"without --{'animate' if name == 'animation.gif' else 'heatmap'})",
                      file=sys.stderr)
    if args.json:
        print(json.dumps(_finite(k)))
    else:
        print(f"{floor.name}: {counted(n, 'robot')}, "
              f"{counted(args.steps, 'step')}, {k['tasks']}, guidance {args.guidance}, "
              f"dwell chute/induct {dc}/{di}")
        print(f"  tasks completed   {k['tasks_completed']}")
        print(f"  tasks/step        {k['tasks_per_step']:.3f}")
        if k.get("robots_out_of_tasks"):
            print(f"  out of tasks      {k['robots_out_of_tasks']} robots  (roundrobin_fixed: "
                  "their errands ran out; parked)")
        if offsets is not None and "lorr_tasks_finished" in k:
            print(f"  LoRR tasks done   {k['lorr_tasks_finished']}  "
                  f"({k['lorr_tasks_per_step']:.3f}/step; {strategy} assignment)")
        if k["parcels_delivered"]:
            print(f"  parcels delivered {k['parcels_delivered']}")
        if sim is not None:
            u = k["robot_utilisation"]
            # both per robot-hour figures: the report's headline is the net one
            print(f"  sorted/hour       {k['sorted_per_hour']:.0f}  (rejects included, "
                  f"{k['sorted_per_robot_hour']:.1f} per robot-hour, {k['seconds_per_step']:g} "
                  f"s/step; net of rejects {k['net_sorted_per_hour']:.0f}, "
                  f"{k['net_sorted_per_robot_hour']:.1f} per robot-hour)")
            print("  by reason         " + ", ".join(f"{r} {v}" for r, v in k["parcels_by_reason"].items() if v))
            print(f"  chute full events {k['chute_full_events']}  re-routes {k['reroutes']}  "
                  f"robot faults {k['robot_faults']}")
            print("  utilisation       " + ", ".join(f"{s_} {100 * v:.1f}%" for s_, v in u.items()))
            print(f"  induct->drop      p50 {k['induct_to_drop_p50']:.0f}  p95 {k['induct_to_drop_p95']:.0f} steps")
            if k.get("parcels_offered") is not None:
                print(f"  offered           {k['parcels_offered']} parcels ({k['offered_per_hour']:.0f}/h); "
                      f"{k['parcels_waiting_at_inducts']} still waiting at the inducts; a parcel's "
                      f"wait for a robot p95 {k['induct_wait_p95']:.0f} steps")
                if k.get("induct_wait_p95_by_wave"):
                    print("  wait p95 by wave  " + ", ".join(
                        f"from {a:g} s: " + ("-" if w is None else f"{w:.0f} steps")
                        for (a, _), w in zip(k["arrival_rate"], k["induct_wait_p95_by_wave"])))
        if k.get("induct_queue_mean"):
            print("  induct queues     robots in each, mean (max): " + ", ".join(
                f"{lab} {v:.1f} ({k['induct_queue_max'][lab]})"
                for lab, v in k["induct_queue_mean"].items()))
        if k.get("rescues") or k.get("rescue_failures"):
            print(f"  rescues           {k['rescues']}  (robots stuck {k['rescue_after']} steps "
                  f"brought to their goal by a LaCAM search; {k['rescue_failures']} searches "
                  "found none)")
        print(f"  ms/step           p50 {k['ms_per_step_p50']:.3f}  p99 {k['ms_per_step_p99']:.3f}  "
              f"max {k['ms_per_step_max']:.3f}")
        print(f"  preprocessing     {k['preprocess_s']:.3f} s  (distance tables {k['distance_table_mb']:.1f} MB, "
              f"{k['distance_tables_computed']} computed"
              + (f", {k['distance_tables_prefetched']} ahead on a 2nd thread"
                 if k.get("distance_tables_prefetched") else "") + ")")
        print(f"  Numba kernels     {jit_s:.3f} s  (compiled on the first run after an install, "
              "then loaded from the cache; not in the times above)")
        if rss is not None:
            print(f"  peak memory       {rss:.0f} MB  (resident; distance-table LRU bound "
                  f"{args.table_mb:g} MB)")
        if args.out:
            names = ["paths.npz", "kpis.json"] + (["animation.gif"] if window else []) \
                + (["heatmap.png"] if args.heatmap else []) + report_files
            print(f"  wrote {args.out}/" + ", ".join(names))
    return 0

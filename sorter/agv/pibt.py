"""Lifelong PIBT: one compiled call moves every robot one cell (or keeps it waiting) per timestep.

PIBT (Okumura, Machida, Defago, Tamura, "Priority Inheritance with Backtracking for Iterative
Multi-agent Path Finding", AIJ 2022), written from the paper:

* every robot has a priority that grows by one each step it has not reached its goal and drops
  back when it does; robots are planned in decreasing priority;
* a robot tries its candidate cells (its four moves and waiting) in increasing distance to its goal
  (exact distance tables, :mod:`sorter.agv.distance`); a cell reserved for the next step is
  skipped, and so is the current cell of the robot that pushed it (no swaps);
* if the chosen cell holds a robot that has not planned yet, that robot inherits the priority and
  plans now, never moving into the pusher's cell; if it cannot move, the pusher backtracks and
  tries its next candidate; a robot with no candidate left waits.

Ties (equal distance) are broken, in this order, by: preferring a cell no other robot stands on
now, then a hash of ``(seed, step, robot, cell)`` -- deterministic for a seed, and simple to
reproduce in the plain-Python oracle ``tests/naive_pibt.py``. Robot priorities tie-break by a hash
of ``(seed, robot)``, then the robot index.

Improvements over plain PIBT (``guidance``), measured against it in ``bench/RESULTS.md``:

* ``"lanes"`` -- **soft one-way lanes** ("crisscross" guidance, :mod:`sorter.agv.guidance`):
  distance tables become weighted shortest paths where a move against a corridor's lane costs
  ``1 + lane_penalty``. Robots drive on alternating-direction lanes, so head-on meetings in
  single-width corridors become rare. PIBT's guarantee is kept: the tables are exact weighted
  distances, strictly decreasing along a best path.
* ``"flow"`` -- **traffic-flow tie-breaking**, a light form of the traffic-flow guidance of
  Chen et al. (AAAI 2024, "Traffic Flow Optimisation for Lifelong Multi-Agent Path Finding"):
  the planner keeps a decaying count of recent moves over every directed edge; among candidates
  at equal distance it prefers cells whose recent traffic runs *with* the move (penalising
  contra-flow) and empty cells. Distance still ranks first.
* ``"lanes+flow"`` -- both.
* **junction order** (``junction_order``; with ``"lanes"`` or ``"flow"``, on floors where every
  move is one-way, such as RHCR's ``sorting_map.grid``, whose lanes are the map's own, so the
  two above change nothing there): robots standing on a crossing cell (two or more ways out) plan
  first, those whose best move leaves the crossing before the others, each group in PIBT's
  order; and among moves of equal distance one straight on ranks before a turn. Crossings
  clear before the one-way stretches between them fill up (RHCR's one-access-cell model at
  1,000 robots: 26.4 -> 28.3 tasks per step, seeds 0-2).

Robots stay ``dwell_chute`` steps at a drop cell and ``dwell_induct`` at an induct when they reach
one as their goal (pinned: nobody pushes them), and report the goal done when the dwell ends.
``rotation=True`` adds LoRR's action model (headings; forward, turn 90 degrees, wait). PIBT plans
cells; a move off the heading becomes a quarter turn toward it (the robot stays), and robots
that planned to enter the cell of a robot that stays wait too. Two refinements, measured on the
10,000-robot LoRR main-round instances (``bench/RESULTS.md``):

* ``turn_weight`` -- a robot being *pushed* (planning by priority inheritance) adds this per
  quarter turn to a candidate's distance: it prefers moving on along its heading, which frees
  its cell in this step, over turning, which would stop the whole chain of robots behind it.
  Default 2 with lanes (MR23-I-06 +53%, I-10 +27% over 5,000 steps), 0 without: along soft
  one-way lanes "forward" is with the traffic, on an unguided floor it often is not, and
  pushing robots straight on then hurts (-40% on I-06).
* ``hold_on_turn`` -- a root robot (planning on its own priority) that picks a cell it does not
  face will only turn: it also reserves its own cell while planning, so robots planned after it
  pick another move at once instead of being stopped afterwards. Default with lanes only
  (I-10 +8%, I-06 -2% on top of the turn weight; without lanes I-10 -21%).
* ``dock_penalty`` -- lane design for rotation: on LoRR ``sortation_large`` the ``E`` cells line
  the border rows (``E.E.E``), so the border rows were lanes where robots stop at their ``E`` cell
  and turn in the way of the through traffic. Moves along such a line of inducts into one of
  them cost ``1 + dock_penalty`` (:func:`sorter.agv.guidance.dock_mask`): through traffic keeps
  to the next rows and robots enter an ``E`` cell from the side, as into a dock. Default 2 with
  lanes and rotation (MR23-I-06 21.8 -> 25.1 over 5,000 steps; no such lines on
  ``warehouse_large``).
* ``carriageway`` -- lane design for rotation: in open bands of adjacent corridor rows (the
  rows along the ``E`` borders of the LoRR maps) up to 4 neighbouring rows share a direction
  instead of alternating row by row, so a robot changing lane there (to reach its ``E`` cell or
  to let a robot pass) stays with the traffic instead of turning into the opposite lane.
  Default 4 with lanes and rotation (MR23-I-06 25.1 -> 28.3, I-10 19.6 -> 21.7 over 5,000
  steps).

Faults: :meth:`Planner.hold` keeps robots in place (pinned, their dwell paused) until
:meth:`Planner.release`. Robots whose every way down their table runs into a held robot within
``detour_horizon`` moves (:mod:`sorter.agv.detour`) switch to a *detour table* computed with
the held cells blocked, shared per goal; without it they queue behind the held robot for the
whole repair (~5% of robots faulted: +23% to +100% parcels per step on the RHCR sorting map
and a generated floor at 100-1,000 robots, +34% at 10,000 robots on LoRR ``sortation_large``;
``bench/RESULTS.md``). Robots with no way round at all are reported by ``stranded``.

Liveness: PIBT with the swap keeps robots moving on floors where every cell lies on a cycle,
but in pockets and tree-like mazes a crowd can lock for good. With ``rescue_after`` (default
for fleets up to ``RESCUE_ROBOTS``) a robot stuck that long is brought to its goal by a LaCAM
search over configurations (:mod:`sorter.agv.lacam`): the robots the plan moves follow it
(``forced`` in the kernel), the others plan as usual but keep out of the cells it uses next
(``keep_out``). On 60 crowded random floors with pockets this takes the runs that leave robots
idle for good from 31 to 4 (``bench/RESULTS.md``).

Tried and dropped (figures in ``bench/RESULTS.md``): PIBT over the four actions with a
heading-aware one-step look-ahead cost (pushed robots may only move forward; deadlocks in dense
areas), roots that turn without pushing the occupant of the cell they turn to, heavier lane
penalties, turn weights on root robots.

Cost per step: one sort of the priorities (O(n log n)) and O(n) candidate work (inheritance chains
visit each robot once), in compiled code with no allocation but the sort: measured 0.2 ms for 1,000
robots and 2.4-5 ms for 10,000 on LoRR ``sortation_large`` (``bench/RESULTS.md``).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from sorter.agv.distance import DistanceTables, MoveGraph, _at, _is_int
from sorter.errors import InputError

__all__ = ["Planner", "GUIDANCE", "tie_hash", "MAX_ROBOTS", "DETOUR_CELLS", "RESCUE_ROBOTS",
           "RESCUE_CALLS", "RESCUE_WORK", "RESCUE_WINDOW"]

MAX_ROBOTS = 1 << 20
RESCUE_ROBOTS = 1024    # rescues are on by default up to this many robots
RESCUE_CALLS = 20_000    # successor generations of one rescue search (at most) ...
RESCUE_WORK = 4_000_000  # ... and at most this many robot moves planned in it (time bound)
RESCUE_WINDOW = 8       # configurations ahead whose cells other robots keep out of
DETOUR_CELLS = 1 << 19  # cell visits of new detour tables per step (~16 tables of 32k cells)
#: A number per planner for its keys in a shared table pool: never reused (``id()`` is, once a
#: planner is gone, and the next one then got the dead one's detour tables).
_PLANNER_NUMBERS = itertools.count()

GUIDANCE = ("none", "flow", "lanes", "lanes+flow")
_M64 = 0xFFFFFFFFFFFFFFFF


def _int_arg(name, val, lo, hi):
    """``val`` as an int in ``lo..hi`` (an integer, or a float with no fraction), else an
    InputError naming the keyword as given (``repr``: ``'3'`` is text, not 3)."""
    ok = (not isinstance(val, (bool, np.bool_))
          and isinstance(val, (int, np.integer, float, np.floating))
          and float(val).is_integer() and lo <= val <= hi)
    if not ok:
        raise InputError(f"{name}={val!r}", field=name, expected=f"an integer {lo}..{hi}")
    return int(val)


def _real_arg(name, val, lo, hi):
    """``val`` as a float in ``lo..hi`` (an integer or a finite float), else an InputError."""
    ok = (not isinstance(val, (bool, np.bool_))
          and isinstance(val, (int, np.integer, float, np.floating))
          and lo <= float(val) <= hi)
    if not ok:
        raise InputError(f"{name}={val!r}", field=name, expected=f"a number {lo:g}..{hi:g}")
    return float(val)


def _bool_arg(name, val):
    """``val`` as a bool: True / False (numpy's too) or 1 / 0; text such as ``"no"`` is refused
    (it would read as True)."""
    if isinstance(val, (bool, np.bool_)) or (_is_int(val) and val in (0, 1)):
        return bool(val)
    raise InputError(f"{name}={val!r}", field=name, expected="True or False")


def tie_hash(x: int) -> int:
    """splitmix64 finaliser on a Python int (the same mix the kernel uses)."""
    x &= _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


@njit(cache=True, inline="always")
def _mix(x):
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True)
def _priority_order(order_key, elapsed, ost):
    """Robots by ascending ``order_key``: ``argsort`` done incrementally (the same order).

    ``ost`` rows: the previous step's order, each robot's ``elapsed`` then (-2 at first: all
    changed) and scratch. A robot whose ``elapsed`` grew by exactly one kept its place among
    the others (every key grew by the same ``1 << 40``), so the new order is the previous one
    without the robots that changed, merged with those sorted: O(n) instead of O(n log n)."""
    n = order_key.shape[0]
    prev, last, out = ost[0], ost[1], ost[2]
    nch = 0
    for i in range(n):
        if elapsed[i] != last[i] + 1:
            nch += 1
    if nch * 8 > n:
        prev[:] = np.argsort(order_key)
    else:
        chg = np.empty(nch, np.int64)
        k = 0
        for i in range(n):
            if elapsed[i] != last[i] + 1:
                chg[k] = i
                k += 1
        cs = chg[np.argsort(order_key[chg])]
        a = 0
        b = 0
        for w in range(n):
            while a < n and elapsed[prev[a]] != last[prev[a]] + 1:
                a += 1                      # changed: placed from cs
            if b < nch and (a >= n or order_key[cs[b]] < order_key[prev[a]]):
                out[w] = cs[b]
                b += 1
            else:
                out[w] = prev[a]
                a += 1
        prev[:] = out
    for i in range(n):
        last[i] = elapsed[i]
    return prev


@njit(cache=True, inline="always")
def _dist(pool, span, slot, i, c, unsettled):
    """Robot ``i``'s table distance at cell ``c`` (``unsettled`` outside a bounded table)."""
    r = slot[i]
    return np.int64(_at(pool[r], span[r], c, unsettled))


@njit(cache=True)
def _way_on(fadj, occ_now, came, v):
    """Ways on from cell ``v`` entered from ``came``: ``(count, one of them)``, not counting
    ``came`` nor a dead-end cell with a robot in it (no room to pass there: that robot can
    only come out)."""
    n = 0
    nxt = -1
    for d in range(4):
        u = fadj[v, d]
        if u < 0 or u == came:
            continue
        if occ_now[u] >= 0:
            deg = 0
            for e in range(4):
                if fadj[u, e] >= 0:
                    deg += 1
            if deg == 1:
                continue
        n += 1
        nxt = u
    return n, nxt


@njit(cache=True, inline="always")
def _wants(fadj, local, j, vj, vi):
    """Does robot ``j`` (at ``vj``) want the neighbouring cell ``vi``: is its table distance
    (gathered in ``local``) lower there than at ``vj``? (Inlined: the cheap first test of a
    swap, for every robot whose best cell is taken.)"""
    for d in range(4):
        if fadj[vj, d] == vi:
            return local[j, d] < local[j, 4]
    return False


@njit(cache=True)
def _swap_required(fadj, occ_now, pool, span, slot, unsettled, i, vi, vj):
    """Robot ``i`` (at ``vi``) wants the cell ``vj`` of a robot that wants ``vi``
    (:func:`_wants`, checked first): walking on from ``vj`` while ``i``'s distance falls,
    does the corridor end in a dead end with no branching cell before it? Then one of them
    must back off the whole corridor. (Elsewhere plain PIBT lets robots pass: it reaches
    every goal on floors where every cell lies on a cycle. ``i``'s distances along the walk
    are exact even in a bounded table: a cell nearer the goal next to a settled one is
    settled.)"""
    n, u = _way_on(fadj, occ_now, vi, vj)
    if n != 1:                          # (i wants vj: its first step goes down its table)
        return n == 0                   # a dead end right behind j / a branching cell at j
    vp = vj
    vq = u
    while _dist(pool, span, slot, i, vq, unsettled) < _dist(pool, span, slot, i, vp, unsettled):
        n, u = _way_on(fadj, occ_now, vp, vq)
        if n >= 2:
            return False                # a branching cell: PIBT lets them pass there
        if n <= 0:
            return True                 # a dead end: only a swap lets them pass
        vp = vq
        vq = u
    return False                        # i's way leaves the corridor: PIBT alone will do


@njit(cache=True)
def _swap_possible(fadj, occ_now, vp0, vq0, limit):
    """Can the robot at ``vq0`` back off, pulling the one at ``vp0`` after it, until a
    branching cell where they can pass each other?"""
    vp = vp0
    vq = vq0
    for _ in range(limit):
        n, u = _way_on(fadj, occ_now, vp, vq)
        if n >= 2:
            return True
        if n <= 0:
            return False
        vp = vq
        vq = u
        if vq == vp0:
            return False                # around a loop
    return False


@njit(cache=True, inline="always")
def _pull(w, k, i, pos, nxt, occ_next, keep_out):
    """After robot ``i`` backed off onto its first (reversed) candidate (``k`` = 1 tried), the
    swap partner ``w`` follows into ``i``'s cell if it is still unplanned and the cell free
    (and not kept out by a rescue plan)."""
    if (w >= 0 and k == 1 and nxt[w] == -1 and nxt[i] != pos[i] and occ_next[pos[i]] == -1
            and not keep_out[pos[i]]):
        nxt[w] = pos[i]
        occ_next[pos[i]] = w


@njit(cache=True, nogil=True)
def _pibt_step(fadj, fcells, free_cells, local, unreach, pos, nxt, elapsed, dwell_left, goal_done,
               finished, occ_now, occ_next, order_key, ostate, seedmix, step_no, dwell_chute,
               dwell_induct, flow, use_flow, w_occ, st_a, st_p, st_c, st_n, st_k, rotate,
               heading, turn_w_push, hold, held, pool, span, slot, unsettled, st_w, swap, forced,
               keep_out, junction, jcell, jorder, last_dir):
    """Plan one timestep in free-cell indexing; writes ``nxt`` and updates robot state.

    ``local[i]`` holds robot i's table distances at its neighbours (directions 0-3) and at its
    cell (4), gathered by :func:`_gather`: the only table values a PIBT step reads.
    ``occ_now``/``occ_next`` must be all -1 on entry and are left all -1. ``held`` robots
    (faults) keep their cell like dwelling robots, but their dwell does not count down.
    ``forced[i] >= 0``: robot i goes to that cell (a rescue plan; it arrives only where it
    would not dwell: an errand cell it is moved onto counts, as in LoRR), and no other
    robot enters a cell with ``keep_out`` set (the cells the plan still uses).
    ``junction`` (one-way floors): robots on a junction cell (``jcell``: two or more ways out)
    plan first, those whose best move leaves the junction before the others, each group in
    PIBT's order (a stable partition into ``jorder``); among equal candidates a move straight
    on (``last_dir``) ranks before a turn, after the free-cell preference.
    """
    n = pos.shape[0]
    # 1. occupancy, pinned (dwelling) robots, priorities
    for i in range(n):
        occ_now[pos[i]] = i
        nxt[i] = -1
        finished[i] = False
    for i in range(n):
        if forced[i] >= 0:
            nxt[i] = forced[i]
            occ_next[forced[i]] = i
        elif dwell_left[i] > 0 or held[i]:
            nxt[i] = pos[i]
            occ_next[pos[i]] = i
        if held[i]:
            pass
        elif goal_done[i] or local[i, 4] == 0:
            elapsed[i] = 0
        elif elapsed[i] < 4194303:          # 2**22 - 1
            elapsed[i] += 1
        h = np.int64(_mix(seedmix + np.uint64(i)) >> np.uint64(44))
        order_key[i] = (np.int64(elapsed[i]) << 40) | (h << 20) | i
    order = _priority_order(order_key, elapsed, ostate)
    if junction:
        # a stable partition of PIBT's order: 0 not on a junction, 1 on one, 2 leaving it next
        # (planned from the end of the order: group 2 first)
        grp = np.zeros(n, np.int8)
        cnt3 = np.zeros(3, np.int64)
        for i in range(n):
            v = pos[i]
            if jcell[v]:
                bd = -1
                for dd in range(4):
                    if fadj[v, dd] >= 0 and (bd < 0 or local[i, dd] < local[i, bd]):
                        bd = dd
                grp[i] = 1 if jcell[fadj[v, bd]] else 2
            cnt3[grp[i]] += 1
        cnt3[2] = cnt3[0] + cnt3[1]         # first slot of each group
        cnt3[1] = cnt3[0]
        cnt3[0] = 0
        for oi in range(n):
            i = order[oi]
            jorder[cnt3[grp[i]]] = i
            cnt3[grp[i]] += 1
        order = jorder
    stepmix = _mix(seedmix ^ _mix(np.uint64(step_no) + np.uint64(0x9E3779B97F4A7C15)))
    keys = np.empty(5, np.int64)
    rev = np.empty(5, np.int32)
    # 2. plan robots in decreasing priority
    for oi in range(n - 1, -1, -1):
        root = order[oi]
        if nxt[root] != -1:
            continue
        depth = 0
        st_a[0] = root
        st_p[0] = -1
        build = True
        ret = -1                    # -1 none, 0 child failed, 1 child succeeded
        while depth >= 0:
            i = st_a[depth]
            if build:
                # candidates of robot i sorted by (distance, aux, hash)
                build = False
                v = pos[i]
                base = _mix(stepmix + np.uint64(i))
                cnt = 0
                for dd in range(5):
                    if dd < 4:
                        u = fadj[v, dd]
                        if u < 0:
                            continue
                    else:
                        u = v
                    dist = np.int64(local[i, dd])
                    if dist == unreach or dist > 8388607:     # 2**23 - 1
                        if dd < 4 and local[i, 4] != unreach:
                            continue        # never into a cell its goal cannot be reached from
                        dist = 8388607
                    o = occ_now[u]
                    occ = 1 if (o >= 0 and o != i) else 0
                    if use_flow:
                        contra = 0
                        if dd < 4:              # moves from u into v: against this one
                            contra = flow[v, dd]
                            if contra > 4095:
                                contra = 4095
                        aux = np.int64(contra + occ * w_occ)
                        if aux > 16383:
                            aux = 16383
                    else:
                        aux = np.int64(occ)
                    if junction:                # straight on before a turn (one-way floors)
                        aux = aux * 2
                        if dd < 4 and dd != last_dir[i]:
                            aux += 1
                    if rotate and dd < 4:
                        turns = (dd - heading[i]) & 3
                        if turns == 3:
                            turns = 1
                        aux += np.int64(turns) * 16384
                        if depth > 0 and dist < 8388607:
                            dist += np.int64(turns) * turn_w_push
                    key = (dist << 40) | (aux << 24) | np.int64(_mix(base + np.uint64(free_cells[u])) >> np.uint64(40))
                    # insertion sort
                    j = cnt
                    while j > 0 and keys[j - 1] > key:
                        keys[j] = keys[j - 1]
                        st_c[depth, j] = st_c[depth, j - 1]
                        j -= 1
                    keys[j] = key
                    st_c[depth, j] = u
                    cnt += 1
                st_n[depth] = cnt
                st_k[depth] = 0
                # the swap of PIBT+ (Okumura 2023): in a corridor where i and the robot in its
                # way must pass each other, i backs off (its candidates reversed) and pulls
                # that robot into its cell, until a branching cell lets them pass
                st_w[depth] = -1
                c0 = st_c[depth, 0]
                if swap and c0 != v:
                    j = occ_now[c0]
                    if (j >= 0 and j != i and nxt[j] == -1 and _wants(fadj, local, j, c0, v)
                            and _swap_required(fadj, occ_now, pool, span, slot, unsettled, i,
                                               v, c0)
                            and _swap_possible(fadj, occ_now, c0, v, pos.shape[0] + 8)):
                        st_w[depth] = j
                        # reversed by distance (the candidates it can reach its goal from;
                        # equal distances keep their tie-break order: fewest turns first)
                        m = 0
                        while m < cnt and (keys[m] >> 40) < 8388607:
                            m += 1
                        w = 0
                        a = m
                        while a > 0:
                            b = a - 1
                            while b > 0 and (keys[b - 1] >> 40) == (keys[a - 1] >> 40):
                                b -= 1
                            for x in range(b, a):
                                rev[w] = st_c[depth, x]
                                w += 1
                            a = b
                        for x in range(m):
                            st_c[depth, x] = rev[x]
            elif ret == 1:
                _pull(st_w[depth], st_k[depth], i, pos, nxt, occ_next, keep_out)
                depth -= 1          # child moved away: this robot keeps its reservation
                continue
            # try the next candidate (first try, or the child pushed last time failed)
            parent = st_p[depth]
            descended = False
            ok = False
            if hold and depth == 0 and occ_next[pos[i]] == i:
                occ_next[pos[i]] = -1           # a turn that was tried: release the own cell
            while st_k[depth] < st_n[depth]:
                u = st_c[depth, st_k[depth]]
                st_k[depth] += 1
                if occ_next[u] != -1 or keep_out[u]:
                    continue
                if parent != -1 and u == pos[parent]:
                    continue
                if hold and depth == 0 and fadj[pos[i], heading[i]] != u and u != pos[i]:
                    occ_next[pos[i]] = i        # a root that will only turn keeps its cell
                occ_next[u] = i
                nxt[i] = u
                k = occ_now[u]
                if k != -1 and k != i and nxt[k] == -1:
                    depth += 1
                    st_a[depth] = k
                    st_p[depth] = i
                    build = True
                    descended = True
                    break
                ok = True
                break
            if descended:
                continue
            if ok:
                _pull(st_w[depth], st_k[depth], i, pos, nxt, occ_next, keep_out)
                ret = 1
            else:
                occ_next[pos[i]] = i
                nxt[i] = pos[i]
                ret = 0
            depth -= 1
    # 2b. rotation action model: a move off the heading becomes a turn toward it (the robot
    # stays); robots planning to enter the cell of a robot that stays must stay too (cascade)
    if rotate:
        top = 0
        for i in range(n):
            if nxt[i] != pos[i]:
                v = pos[i]
                for dd in range(4):
                    if fadj[v, dd] == nxt[i]:
                        break
                if dd != heading[i]:
                    diff = (dd - heading[i]) & 3
                    heading[i] = (heading[i] + (3 if diff == 3 else 1)) & 3
                    occ_next[nxt[i]] = -1
                    nxt[i] = pos[i]
                    st_a[top] = i
                    top += 1
        while top > 0:
            top -= 1
            s_ = st_a[top]
            c = pos[s_]
            k = occ_next[c]
            if k != -1 and k != s_:
                v = pos[k]
                for dd in range(4):
                    if fadj[v, dd] == c:
                        break
                if dd != heading[k]:
                    diff = (dd - heading[k]) & 3
                    heading[k] = (heading[k] + (3 if diff == 3 else 1)) & 3
                nxt[k] = pos[k]
                st_a[top] = k
                top += 1
            occ_next[c] = s_
    # 3. clear occupancy; the move's direction: flow counts, and (junction order) last_dir
    for i in range(n):
        occ_now[pos[i]] = -1
        occ_next[nxt[i]] = -1
        if (use_flow or junction) and nxt[i] != pos[i]:
            v = pos[i]
            for dd in range(4):
                if fadj[v, dd] == nxt[i]:
                    u = nxt[i]                  # a move into u from its side (dd + 2) % 4
                    if use_flow and flow[u, dd ^ 2] < 1073741823:   # 2**30 - 1: a count
                        flow[u, dd ^ 2] += 1    # never halved (flow_halflife=0) stops, never wraps
                    if junction:
                        last_dir[i] = dd
                    break
    # 4. arrivals and dwell
    for i in range(n):
        if held[i]:
            continue
        if forced[i] >= 0:      # moved by a rescue plan: it arrives only where it need not dwell
            ct = fcells[nxt[i]]
            if (dwell_chute if ct == 3 else (dwell_induct if ct == 2 else 0)) > 0:
                continue
        if dwell_left[i] > 0:
            dwell_left[i] -= 1
            if dwell_left[i] == 0:
                finished[i] = True
                goal_done[i] = True
        elif not goal_done[i] and _local_at(fadj, local, i, pos[i], nxt[i]) == 0:
            t = fcells[nxt[i]]
            k = dwell_chute if t == 3 else (dwell_induct if t == 2 else 0)
            if k <= 0:
                finished[i] = True
                goal_done[i] = True
            else:
                dwell_left[i] = k


@njit(cache=True, inline="always")
def _local_at(fadj, local, i, v, u):
    """Robot ``i``'s table distance at ``u``, its cell ``v`` or a neighbour of it."""
    if u == v:
        return local[i, 4]
    for d in range(4):
        if fadj[v, d] == u:
            return local[i, d]
    return local[i, 4]


@njit(cache=True, nogil=True)
def _gather(fadj, pool, span, slot, pos, robots, partial, unsettled, flag, local):
    """Copy each robot's table distances at its cell and neighbours into ``local[i]``
    (directions 0-3, then the cell itself), so that the kernel reads 5 numbers per robot
    instead of scattered rows of the table pool; and for each bounded row in which some
    robot's cell or a neighbour is unsettled, set ``flag[row]`` to such a robot's cell.
    ``span[r]``: the written part of row r (cells outside it are unsettled)."""
    for k in range(robots.shape[0]):
        i = robots[k]
        r = slot[i]
        v = pos[i]
        lo = span[r, 0]
        hi = span[r, 1]
        x = pool[r, v] if lo <= v < hi else unsettled
        local[i, 4] = x
        bad = x == unsettled
        for d in range(4):
            u = fadj[v, d]
            if u >= 0:
                x = pool[r, u] if lo <= u < hi else unsettled
                local[i, d] = x
                if x == unsettled:
                    bad = True
        if bad and partial[r]:
            flag[r] = v


@njit(cache=True, nogil=True)
def _watch(local, unreach, best, since, done, dwell, held, no_way, retry, now, after, pick):
    """The stall watch of :meth:`Planner._watch_stalls` in one pass: a robot's ``since`` is
    the step its distance (``local[:, 4]``) last improved on ``best``, or now while it has
    nothing to do (goal done, dwelling, held, at its goal, cut off). Returns the robot stalled
    longest (at least ``after`` steps, not waiting for a retry) if ``pick``, else -1."""
    out = -1
    for i in range(local.shape[0]):
        d = np.int64(local[i, 4])
        if d < best[i]:
            best[i] = d
            since[i] = now
        if done[i] or dwell[i] > 0 or held[i] or d == 0 or d == unreach or no_way[i] >= 0:
            since[i] = now
        elif pick and now - since[i] >= after and now >= retry[i]:
            if out < 0 or since[i] < since[out]:
                out = i
    return out


@dataclass
class _Rescue:
    """A rescue plan being followed: its configurations (free cells, one row per step), the
    row the robots stand at, the rescued robot and its goal, and the steps it waited for a
    robot outside it to leave its way."""
    configs: np.ndarray
    k: int
    robot: int
    goal: int
    blocked: int

    def involved(self) -> np.ndarray:
        """Robots that still move in what is left of the plan."""
        P, k = self.configs, self.k
        return np.flatnonzero((P[k + 1:] != P[k]).any(axis=0))


class Planner:
    """Lifelong PIBT planner on a grid floor: ``step(goals)`` once per timestep.

    Parameters
    ----------
    floor : Floor, MoveGraph or int array (n_cells, 4)
        The floor (``sorter.layout.Floor``) or just its ``moves`` table.
    n_robots : int
        Number of robots (at most 2**20).
    starts : int array (n_robots,)
        Distinct free start cells (cell ids ``row * width + col``).
    seed : int >= 0
        Seed of every tie-break; same seed, same goals -> same positions.
    dwell_chute, dwell_induct : int
        Steps a robot stays on a drop cell / induct cell it reached as its goal.
    station_goals : bool
        If True, a goal cell that belongs to a station (``floor.station_of_cell``) stands for the
        whole station: the robot heads for the nearest of its cells and any of them completes the
        goal (one multi-source table per station); a drop cell of a chute that has no drop cell
        of its own (all shared) stands for itself. If False, the goal is the exact cell.
    guidance : {"none", "flow", "lanes", "lanes+flow"}
        ``"none"`` = plain PIBT; see the module docstring for the others (``"lanes"`` needs a
        ``Floor``).
    max_table_mb : float
        LRU bound of cached, unused distance tables (:class:`DistanceTables`; >= 0, ``inf``
        = no bound).
    flow_halflife : int
        Every this many steps the traffic counts are halved (``"flow"``).
    w_occ : int
        Weight of "another robot stands there" against contra-flow counts (``"flow"``).
    lane_penalty : int
        Extra cost of a move against its lane (``"lanes"``).
    rotation : bool
        LoRR's action model: a robot has a heading and per step moves forward, turns 90 degrees
        (staying) or waits. PIBT plans cells with turns as a tie-break after distance; a move off
        the heading becomes a turn toward it, and robots that planned to enter the cell of a
        robot that stays wait as well.
    turn_weight : int, optional
        Rotation model: distance added per quarter turn to the candidates of a pushed robot.
        Default 2 with ``"lanes"`` guidance, else 0 (0 = turns only break ties).
    hold_on_turn : bool, optional
        Rotation model: a root robot that will only turn keeps its own cell reserved while
        planning (see the module docstring). Default True with ``"lanes"`` guidance, else
        False (so ``guidance="none"`` stays plain PIBT).
    dock_penalty : int
        Rotation model with ``"lanes"``: extra cost of a move along a line of induct cells into
        one of them (:func:`sorter.agv.guidance.dock_mask`; 0 = off).
    carriageway : int, optional
        ``"lanes"``: at most this many adjacent corridor rows (columns) share a lane direction
        (:func:`sorter.agv.guidance.lane_directions`). Default 4 with ``rotation``, else 1
        (every corridor alternates).
    headings : int array (n_robots,), optional
        Initial headings, 0 east, 1 south, 2 west, 3 north (default all 0); with
        ``rotation=True`` only.
    detour_horizon : int
        Faults: a robot that every descending path of its table leads into a held robot's cell
        within this many moves gets a detour table that routes around the held cells
        (:mod:`sorter.agv.detour`; see :meth:`hold`). 0 = off: robots queue behind held robots.
    tables : DistanceTables, optional
        Share a table pool between planners of the same floor.
    swap : bool
        The swap of PIBT+ (Okumura, "Improving LaCAM for Scalable Eventually Optimal Multi-Agent
        Pathfinding", IJCAI 2023): two robots that must pass each other in a corridor or a
        dead end (a drop cell at the end of an alcove) do so, the one planning backing off and
        pulling the other after it until a branching cell. Plain PIBT forbids swaps, and such
        a pair waits for ever. Default True (False: plain PIBT, the benchmarks' baseline).
    junction_order : bool, optional
        One-way floors (every move one-way, as RHCR's ``sorting_map.grid``): robots standing on
        a junction cell (two or more ways out) plan before the others, those whose best move
        leaves the junction first, each group in PIBT's order; and among moves of equal distance
        one straight on (the robot's last move direction) ranks before a turn, after the
        free-cell preference. Crossings clear before the one-way stretches between them fill
        (RHCR's one-cell model, 1,000 robots: +7% tasks; bench/RESULTS.md). Default: on with
        ``"lanes"`` or ``"flow"`` guidance on a floor with no two-way move and without
        ``rotation``, else off (``guidance="none"`` stays plain PIBT; on two-way floors the
        straight-on rule costs throughput). Not with ``rotation``.
    congestion_period : int, optional
        **Online congestion costs** (:mod:`sorter.agv.congestion`): the cells where robots
        waited (not at their goal) over about this many recent steps make moves into them
        dearer, and the tables of single-cell goals on induct cells (LoRR's ``E`` cells, where
        the queues of the LoRR main-round floors form) are recomputed under those costs, each
        looked at once per this many steps (a slice each step) and recomputed, in the table
        pool's background thread, where the way it shows one of its robots now costs more
        than it says (by over 25% + 5); robots then route around the queues. Plans stay
        deterministic for a seed. Default 50 with ``rotation`` and ``"lanes"`` guidance (LoRR
        2023 main round, 10,000 robots, 5,000 steps: MR23-I-06 / I-10 from 28.28 / 21.68 to
        36.80 / 33.41 tasks per step; bench/RESULTS.md "Tenth" and "Twelfth round"), else 0
        (= off). A refresh is a full weighted search (~1-2 ms on a 54,320-cell floor); only
        ~5-20% of the tables looked at are stale, so the step takes x1.1-1.3 the time without
        congestion costs there (bench/RESULTS.md "Twelfth round"; x1.4-1.6 refreshing every
        table, "Eleventh round"). No effect (off) on a floor
        without induct cells and with ``station_goals`` (no single-cell induct goals).
    congestion_cost : float
        Extra cost of a move into a cell where a waiting robot stood every recent step (the
        level is that share, an exponential average; the extra is ``round(cost * level)``).
        Default 3 (4 and 8 measured worse on MR23-I-10); 0..200.
    rescue_after : int, optional
        Liveness where PIBT is not enough (dead-end pockets, tree-like mazes): a robot whose
        distance to its goal has not improved for this many steps (not dwelling, held, or cut
        off by held robots) is *rescued*: a LaCAM search over whole configurations
        (:mod:`sorter.agv.lacam`, complete, bounded by ``RESCUE_CALLS`` successor
        generations) finds moves of all robots that bring it to its goal, and the planner
        follows them (with rotations: turns first, then the moves together); the robots it
        moves complete no goal meanwhile (and, on floors with one-way moves, never leave
        their strongly connected part: no robot is parked where its goal cannot be reached
        from), those that are dwelling or held stay put, and the others plan as usual but
        keep out of the cells it uses next. Default
        ``max(128, n_robots)`` (a robot may have to wait its turn behind every other once: on
        congested floors earlier rescues cost throughput), ``max(128, 2 x n_robots)`` with
        ``rotation`` (every turn in a queue costs a step too: at one step per robot, 400-500
        robots on ``seeds/floors/medium_33x57.txt`` were rescued out of ordinary queues and
        the floor sorted half as much), for at most ``RESCUE_ROBOTS`` robots, else 0 (= off). A search is bounded by ``RESCUE_CALLS`` successor
        generations and ``RESCUE_WORK`` robot moves.

    Attributes
    ----------
    positions : int32 array
        Current cells.
    finished : bool array
        Robots whose goal was completed (reached, dwell over) in the last step.
    tasks_completed : int
        Goals completed so far.
    kernel_ms, goals_ms : float
        Time of the last step in the compiled PIBT kernel, and in setting new goals (distance
        tables computed on first use included; detour tables too).
    detours : int
        Times a robot was switched to a detour table (see :meth:`hold`).

    Raises
    ------
    InputError
        On bad starts (wrong length, out of grid, obstacle, duplicate) or bad options.

    Examples
    --------
    >>> import numpy as np
    >>> moves = np.array([[1, -1, -1, -1], [2, -1, 0, -1], [-1, -1, 1, -1]])  # a 1x3 corridor
    >>> p = Planner(moves, 1, [0], seed=0, dwell_chute=0, dwell_induct=0)
    >>> p.step(np.array([2])).tolist(), p.step(np.array([2])).tolist()
    ([1], [2])
    """

    def __init__(self, floor, n_robots, starts, *, seed=0, dwell_chute=5, dwell_induct=1,
                 station_goals=False, guidance="none", max_table_mb=512.0, flow_halflife=32,
                 w_occ=4, lane_penalty=2, rotation=False, headings=None, tables=None,
                 turn_weight=None, hold_on_turn=None, dock_penalty=2, detour_horizon=12,
                 carriageway=None, swap=True, rescue_after=None, junction_order=None,
                 congestion_period=None, congestion_cost=3):
        self.floor = floor if hasattr(floor, "moves") and not isinstance(floor, MoveGraph) else None
        self.graph = MoveGraph.of(floor)
        g = self.graph
        if not _is_int(n_robots):
            raise InputError(f"n_robots={n_robots!r}", field="n_robots",
                             expected=f"an integer 1..{MAX_ROBOTS}")
        if not _is_int(seed) or seed < 0:     # (as make_run and ``sorter mapf --seed``)
            raise InputError(f"seed={seed!r}", field="seed", expected="an integer >= 0")
        n = int(n_robots)
        if not 1 <= n <= MAX_ROBOTS:
            raise InputError(f"n_robots={n_robots}", field="n_robots", expected=f"1..{MAX_ROBOTS}")
        if carriageway is not None and (isinstance(carriageway, bool)
                                        or not isinstance(carriageway, (int, np.integer))
                                        or not 1 <= carriageway <= 64):
            raise InputError(f"carriageway={carriageway!r}", field="carriageway",
                             expected="an integer 1..64")
        if not isinstance(guidance, str) or guidance not in GUIDANCE:
            raise InputError(f"guidance={guidance!r}", field="guidance", expected=" or ".join(GUIDANCE))
        guidance = str(guidance)                        # (np.str_ read back as np.str_('flow'))
        for name, val in (("dwell_chute", dwell_chute), ("dwell_induct", dwell_induct),
                          ("flow_halflife", flow_halflife), ("w_occ", w_occ)):
            _int_arg(name, val, 0, 2**31 - 1)
        lane_penalty = _int_arg("lane_penalty", lane_penalty, 0, 200)
        dock_penalty = _int_arg("dock_penalty", dock_penalty, 0, 50)
        rotation = _bool_arg("rotation", rotation)
        station_goals = _bool_arg("station_goals", station_goals)
        if (isinstance(max_table_mb, (bool, np.bool_))
                or not isinstance(max_table_mb, (int, float, np.integer, np.floating))
                or not max_table_mb >= 0):
            raise InputError(f"max_table_mb={max_table_mb!r}", field="max_table_mb",
                             expected="a number of MB >= 0 (inf: no bound)")
        starts = self._cells(starts, "starts")
        if starts.size != n:
            raise InputError(f"{starts.size} starts for {n} robots", field="starts",
                             expected=f"{n} cell ids")
        if np.unique(starts).size != n:
            raise InputError("two robots start on one cell", field="starts", expected="distinct cells")
        self.n_robots = n
        self.seed = int(seed)
        self.dwell_chute = int(dwell_chute)
        self.dwell_induct = int(dwell_induct)
        self.guidance = guidance
        self.station_goals = bool(station_goals) and self.floor is not None
        self.flow_halflife = int(flow_halflife)
        self.w_occ = int(w_occ)
        self.lanes = "lanes" in guidance
        self.flow = "flow" in guidance
        self.lane_penalty = int(lane_penalty)
        if tables is None:
            costs = None
            if self.lanes:
                if self.floor is None:
                    raise InputError("lanes need a Floor", field="guidance",
                                     expected="a sorter.layout.Floor, or guidance 'none'/'flow'")
                from sorter.agv.guidance import lane_costs
                if carriageway is None:                 # measured with rotation only (RESULTS)
                    carriageway = 4 if rotation else 1
                costs = lane_costs(self.floor, self.lane_penalty,
                                   dock_penalty=dock_penalty if rotation else 0,
                                   carriageway=carriageway)
            tables = DistanceTables(g, max_mb=max_table_mb, reserve=n + 64, costs=costs)
        elif not isinstance(tables, DistanceTables):
            raise InputError(f"tables is a {type(tables).__name__}", field="tables",
                             expected="a DistanceTables of this floor (another planner's "
                                      "planner.tables), or None")
        elif (tables.rcost is not None) != self.lanes:
            raise InputError("shared tables were built for another guidance", field="tables")
        self.tables = tables
        if tables is not None and tables.graph is not g:
            raise InputError("tables belong to another floor", field="tables")
        self._pos = g.fidx[starts].astype(np.int32)
        self._nxt = np.empty(n, np.int32)
        self._goal = np.full(n, -1, np.int64)          # goal cell per robot (grid id)
        self._no_goal = True                           # no goals set yet (prepare)
        self._slot = np.zeros(n, np.int32)
        self._elapsed = np.zeros(n, np.int32)
        self._dwell = np.zeros(n, np.int32)
        self._done = np.zeros(n, np.bool_)
        self._finished = np.zeros(n, np.bool_)        # the kernel's buffer (see finished)
        self._occ_now = np.full(g.n_free, -1, np.int32)
        self._occ_next = np.full(g.n_free, -1, np.int32)
        self._order_key = np.empty(n, np.int64)
        self._ostate = np.empty((3, n), np.int64)      # incremental priority order
        self._ostate[1] = -2
        # traffic counts by the cell moved into: [v, d] = recent moves into v from its
        # neighbour in direction d (the robot at v reads its candidates' contra-flow in its row)
        self._flow = np.zeros((g.n_free, 4), np.int32)
        self._st_a = np.empty(n + 1, np.int32)
        self._st_p = np.empty(n + 1, np.int32)
        self._st_c = np.empty((n + 1, 5), np.int32)
        self._st_n = np.empty(n + 1, np.int32)
        self._st_k = np.empty(n + 1, np.int32)
        self._st_w = np.empty(n + 1, np.int32)
        self._seedmix = np.uint64(tie_hash(self.seed))
        if turn_weight is None:                         # helps with lanes only (RESULTS)
            turn_weight = 2 if self.lanes else 0
        if hold_on_turn is None:
            hold_on_turn = self.lanes
        turn_weight = _int_arg("turn_weight", turn_weight, 0, 1000)
        hold_on_turn = _bool_arg("hold_on_turn", hold_on_turn)
        detour_horizon = _int_arg("detour_horizon", detour_horizon, 0, 1000)
        self.detour_horizon = int(detour_horizon)
        self._held = np.zeros(n, np.bool_)
        self._blocked = np.zeros(g.n_free, np.uint8)
        self._on_detour = np.zeros(n, np.bool_)          # robot uses a detour table
        self._keys = [None] * n                          # (goal key, cells) per robot
        self._latest_detour = {}                         # goal key -> newest detour table key
        self._detour_seq = 0
        self._number = next(_PLANNER_NUMBERS)            # detour keys in a shared pool
        self._epoch = 0                                  # holds + releases so far
        # new detour tables per step: about DETOUR_CELLS cell visits (all on small floors)
        self._detour_budget = max(4, DETOUR_CELLS // max(1, g.n_free))
        self._released = []                              # cells released since the last step
        self._no_way = np.full(n, -1, np.int64)          # goal id with no way around, -1 none
        self._goal_id = {}                               # goal key -> small int
        self._seen = np.zeros(g.n_free, np.int64)
        self._stamp = 0
        self._buf_a = np.empty(g.n_free, np.int32)
        self._buf_b = np.empty(g.n_free, np.int32)
        self.detours = 0
        self.rotation = bool(rotation)
        self.turn_weight = int(turn_weight)
        self.hold_on_turn = bool(hold_on_turn)
        self.swap = _bool_arg("swap", swap)     # (1 / 0 as for rotation, station_goals)
        if rescue_after is None:        # a robot may wait its turn behind every other once
            rescue_after = max(128, (2 if rotation else 1) * n) if n <= RESCUE_ROBOTS else 0
        if not _is_int(rescue_after) or not 0 <= rescue_after <= 2**31 - 1:
            raise InputError(f"rescue_after={rescue_after!r}", field="rescue_after",
                             expected="an integer 0..2**31-1 (0 = no rescues)")
        self.rescue_after = int(rescue_after)
        self.rescues = 0                                 # rescue plans followed
        self.rescue_failures = 0                         # searches that found none
        self._best = np.full(n, np.iinfo(np.int64).max, np.int64)   # best distance so far
        self._since = np.zeros(n, np.int64)              # step of the last improvement
        self._retry = np.zeros(n, np.int64)              # no rescue search before this step
        self._failed = np.zeros(n, np.int64)             # searches that failed since a success
        self._plan = None                                # the rescue plan followed (_Rescue)
        self._forced = np.full(n, -1, np.int32)         # cell a rescue plan sends a robot to
        self._keep_out = np.zeros(g.n_free, np.uint8)    # cells a rescue plan still uses
        self._parts = None                               # strongly connected parts (rescues)
        if headings is not None and not rotation:    # (they were kept and never used)
            raise InputError("headings without rotation=True", field="headings",
                             expected="rotation=True (headings belong to the rotation action "
                                      "model), or no headings")
        h = np.zeros(n, np.int8) if headings is None else np.asarray(headings)
        if h.shape != (n,) or not np.issubdtype(h.dtype, np.integer) or h.min() < 0 or h.max() > 3:
            raise InputError("headings must be one of 0 east, 1 south, 2 west, 3 north per robot",
                             field="headings", expected=f"{n} integers in 0..3")
        self._heading = h.astype(np.int8)
        # junction order (one-way floors such as RHCR's sorting map; bench/RESULTS.md)
        fa = g.fadj
        nout = (fa >= 0).sum(axis=1)
        self._jcell = (nout >= 2).astype(np.uint8)
        v_, d_ = np.nonzero(fa >= 0)
        self.one_way = not (fa[fa[v_, d_], (d_ + 2) % 4] == v_).any()
        if junction_order is None:      # part of the improved planner; "none" stays plain PIBT
            junction_order = self.one_way and not self.rotation and guidance != "none"
        junction_order = _bool_arg("junction_order", junction_order)
        if junction_order and self.rotation:
            raise InputError("junction_order with rotation=True", field="junction_order",
                             expected="False with the rotation model")
        self.junction_order = junction_order
        # online congestion costs (sorter.agv.congestion; bench/RESULTS.md "Tenth round")
        if congestion_period is None:   # measured with rotation and lanes (LoRR main round)
            congestion_period = 50 if self.rotation and self.lanes else 0
        if not _is_int(congestion_period) or not 0 <= congestion_period <= 2**31 - 1:
            raise InputError(f"congestion_period={congestion_period!r}",
                             field="congestion_period",
                             expected="an integer >= 0 (steps between updates; 0 = off)")
        ccost = _real_arg("congestion_cost", congestion_cost, 0.0, 200.0)
        self.congestion_period = int(congestion_period)
        self.congestion_cost = ccost
        self._cong = None
        if self.congestion_period:
            from sorter.agv.congestion import CongestionCosts
            cong = CongestionCosts(self, self.congestion_period, ccost)
            if cong.cells.size:         # (no induct cells, or station goals: nothing to refresh)
                self._cong = cong
        self._jorder = np.empty(n, np.int64)
        self._last_dir = np.zeros(n, np.int8)
        self.step_no = 0
        self.tasks_completed = 0
        self.kernel_ms = self.goals_ms = 0.0
        self._flag = np.zeros(0, np.int64)           # bounded tables to widen (step)
        self._local = np.zeros((n, 5), tables.dtype)    # table distances around each robot
        self._gpos = np.full(n, -1, np.int64)   # cell, row and row content when last gathered
        self._gslot = np.full(n, -1, np.int64)
        self._ggen = np.full(n, -1, np.int64)
        self._station_cells = {}
        self._shared_drop = None
        self._key_of = {}                  # goal cell -> goal_key(cell), filled as goals come
        if self.station_goals:
            f = self.floor
            for kind, lst, code in (("induct", f.inducts, 2), ("chute", f.chutes, 3)):
                for st in lst:
                    self._station_cells[(kind, int(st.index))] = np.asarray(st.cells, np.int64)
            # a chute whose every drop cell ``station_of_cell`` names after another chute (all
            # shared with lower-numbered ones) can only be named by one of its cells itself
            self._shared_drop = np.zeros(f.n_cells, np.bool_)
            soc = f.station_of_cell
            for st in f.chutes:
                if not (soc[st.cells] == st.index).any():
                    self._shared_drop[st.cells] = True

    def __repr__(self):
        name = getattr(self.floor, "name", None)
        name = f"{name!r}, " if name is not None else ""
        return (f"Planner({name}robots={self.n_robots}, step={self.step_no}, "
                f"guidance={self.guidance!r}, rotation={self.rotation}, seed={self.seed})")

    def __reduce__(self):
        # (pickle, copy.deepcopy, multiprocessing) the table pool is memory-mapped and shared
        # with a prefetch thread: say so instead of "cannot pickle 'mmap.mmap' object"
        raise TypeError("a Planner cannot be pickled or copied: its distance tables live in a "
                        "memory-mapped pool; build one per process (sorter.agv.lifelong."
                        "make_run, as sorter.floor_sweep does) and pass floors, starts and "
                        "seeds instead")

    # -- boundary helpers --------------------------------------------------------------
    def _cells(self, cells, field):
        a = np.asarray(cells)
        if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
            raise InputError(f"{field} has shape {a.shape}, dtype {a.dtype}", field=field,
                             expected="a 1-D array of integer cell ids")
        if a.size and a.dtype == np.uint64 and a.max() > np.iinfo(np.int64).max:
            # (int64 wrapped 2**64 - 1 to -1: "cell -1 is outside the grid")
            raise InputError(f"cell {int(a.max())} is outside the grid", field=field,
                             expected=f"cell ids in [0, {self.graph.n_cells})")
        a = a.astype(np.int64, copy=False)
        g = self.graph
        if a.size and (a.min() < 0 or a.max() >= g.n_cells):
            bad = a[(a < 0) | (a >= g.n_cells)][0]
            raise InputError(f"cell {int(bad)} is outside the grid", field=field,
                             expected=f"cell ids in [0, {g.n_cells})")
        if a.size and (g.fidx[a] < 0).any():
            bad = a[g.fidx[a] < 0][0]
            raise InputError(f"cell {int(bad)} is an obstacle", field=field, expected="free cells")
        return a

    def goal_key(self, cell: int):
        """The table key of goal ``cell``: its station if ``station_goals``, else the cell.

        A drop cell of a chute whose every drop cell is shared with lower-numbered chutes (so
        ``station_of_cell`` never names it) stands for itself: the goal is that very cell,
        beside that chute (it cannot say which chute is meant).
        """
        if (isinstance(cell, (bool, np.bool_)) or not isinstance(cell, (int, np.integer))
                or not 0 <= cell < self.graph.n_cells):
            raise InputError(f"goal cell {cell!r}", field="cell",
                             expected=f"an integer cell id in [0, {self.graph.n_cells})")
        if self.station_goals:
            f = self.floor
            s = int(f.station_of_cell[cell])
            if s >= 0:
                t = int(f.cells[cell])
                if t == 3 and not self._shared_drop[cell]:
                    return ("chute", s), self._station_cells[("chute", s)]
                if t == 2:
                    return ("induct", s), self._station_cells[("induct", s)]
        return ("cell", int(cell)), (int(cell),)

    def distance_left(self, robots=None) -> np.ndarray:
        """Distance from each robot in ``robots`` (default all) to the goal of its last step,
        as its table gave it at the start of that step (move costs; moves without lanes: at
        most one move more than now), int64; -1 before any step.

        Task streams use it to ask for a robot's next table shortly before it needs it
        (:meth:`prefetch`); it reads the values the last step gathered, not the tables.
        -1 where the goal is unreachable. ``robots``: indices or a bool mask (as :meth:`hold`)."""
        r = np.arange(self.n_robots) if robots is None else self._robots(robots, "robots")
        out = self._local[r, 4].astype(np.int64)
        out[(self._goal[r] < 0) | (out == self.tables.unreachable)] = -1
        if self.step_no == 0:
            out[:] = -1
        return out

    def prefetch(self, cells, near=None, urgent=False) -> int:
        """Compute the tables of goals coming next (``cells``) in a background thread.

        For task streams that know a robot's next goal in advance (LoRR errand files): its
        table is then ready when the goal is set, instead of being computed inside that
        step (:meth:`DistanceTables.prefetch`). Plans do not change. Returns how many tables
        were queued. ``near`` (cells aligned with ``cells``, optional): where the robot will
        stand when it takes that goal (its current goal), so the table may be bounded there.
        ``urgent``: needed within a step or two, so computed before the ones queued already.

        Raises
        ------
        InputError
            If a cell is outside the grid or an obstacle.
        """
        a = self._cells(cells, "prefetch")
        urgent = _bool_arg("urgent", urgent)          # ("no" read as True)
        tabs = self.tables
        if near is None:
            at = np.full(a.size, -1, np.int64)
        else:
            b = self._cells(near, "near")
            if b.size != a.size:
                raise InputError(f"near has {b.size} cells for {a.size} goals", field="near",
                                 expected="one cell per goal")
            at = self.graph.fidx[b].astype(np.int64)
        jobs = []
        uniq, first = np.unique(a, return_index=True)
        for c, j in zip(uniq.tolist(), first.tolist()):
            key, gcells = self.goal_key(c)
            if self._cong is not None:
                key = self._cong.key((key, gcells))
            v = int(at[j])
            jobs.append((key, gcells, v if key[0] == "cell" and v >= 0 else None))
        return tabs.prefetch_many(jobs, urgent=urgent)

    def _set_goals(self, goals):
        if not np.issubdtype(goals.dtype, np.integer):
            raise InputError(f"goals has dtype {goals.dtype}", field="goals",
                             expected="integer cell ids")
        changed = np.flatnonzero(goals != self._goal)
        self._cells(goals[changed], "goals")          # validate what is new only
        # a robot that finished its goal starts a new task even if the new goal is the same cell
        again = np.flatnonzero(self._done & (goals == self._goal))
        tabs = self.tables
        had = changed[self._goal[changed] >= 0]
        tabs.release_many(self._slot[had].tolist())     # the old goals' tables, in one go
        slots = []
        key_of = self._key_of
        for i, c, at in zip(changed.tolist(), goals[changed].tolist(),
                            self._pos[changed].tolist()):
            kc = key_of.get(c)
            if kc is None:
                kc = key_of[c] = self.goal_key(c)
            self._keys[i] = kc
            key = kc[0] if self._cong is None else self._cong.key(kc)
            # single-cell goals get tables bounded around the robot (completed in step() if
            # a robot ever needs a cell beyond them): the same values where robots read them
            slots.append(tabs.acquire(key, kc[1], near=at if key[0] == "cell" else None))
        self._slot[changed] = slots
        self._on_detour[changed] = False
        self._no_way[changed] = -1
        self._goal[changed] = goals[changed]
        self._dwell[changed] = 0
        new_task = np.concatenate((changed, again)) if again.size else changed
        self._done[new_task] = False
        self._elapsed[new_task] = 0
        self._best[new_task] = np.iinfo(np.int64).max
        self._since[new_task] = self.step_no
        self._failed[new_task] = 0
        self._retry[new_task] = 0
        return changed.size

    # -- public --------------------------------------------------------------------------
    @property
    def positions(self) -> np.ndarray:
        """Current cell of each robot (int32 cell ids)."""
        return self.graph.free_cells[self._pos]

    @property
    def goals(self) -> np.ndarray:
        """Current goal cell of each robot (-1 before the first step)."""
        return self._goal.astype(np.int32)

    @property
    def finished(self) -> np.ndarray:
        """Robots whose goal was completed (reached, dwell over) in the last step: a copy (the
        planner's own buffer changed in place at every step, so ``log.append(p.finished)``
        logged the last step's flags for every step)."""
        return self._finished.copy()

    @property
    def headings(self) -> np.ndarray:
        """Heading of each robot (0 east, 1 south, 2 west, 3 north; ``rotation=True``)."""
        return self._heading.copy()

    @property
    def dwelling(self) -> np.ndarray:
        """Robots pinned at a station for their dwell."""
        return self._dwell > 0

    @property
    def held(self) -> np.ndarray:
        """Robots held in place (:meth:`hold`)."""
        return self._held.copy()

    @property
    def stranded(self) -> np.ndarray:
        """Robots that held robots cut off from their goal with no way round (see :meth:`hold`):
        they wait for a release unless the caller gives them another goal. A robot standing on
        its goal (dwelling there, or its goal just done) is not stranded, nor is a held one."""
        out = np.zeros(self.n_robots, np.bool_)
        nw = np.flatnonzero(self._no_way >= 0)        # few, and only while robots are held
        if nw.size:
            away = self.tables.pool[self._slot[nw], self._pos[nw]] != 0
            out[nw[away & (self._dwell[nw] == 0) & ~self._done[nw] & ~self._held[nw]]] = True
        return out

    def _robots(self, robots, field):
        r = np.atleast_1d(np.asarray(robots))
        if r.ndim != 1 or (r.size and not (np.issubdtype(r.dtype, np.integer)
                                           or r.dtype == np.bool_)):
            raise InputError(f"{field} has shape {r.shape}, dtype {r.dtype}", field=field,
                             expected="robot indices or a bool mask")
        if r.dtype == np.bool_:
            if r.size != self.n_robots:
                raise InputError(f"mask of {r.size} for {self.n_robots} robots", field=field,
                                 expected=f"a bool mask of length {self.n_robots}")
            return np.flatnonzero(r)
        r = r.astype(np.int64, copy=False)
        if r.size and (r.min() < 0 or r.max() >= self.n_robots):
            raise InputError(f"robot {int(r[(r < 0) | (r >= self.n_robots)][0])}", field=field,
                             expected=f"robot indices in [0, {self.n_robots})")
        return r

    def hold(self, robots) -> None:
        """Hold ``robots`` where they are (a fault, a robot taken out of service) until released.

        A held robot stays in its cell, is never pushed, and its dwell and task do not advance
        (a held robot that was dwelling resumes its remaining dwell when released). The other
        robots treat its cell as blocked: a robot whose every way down its distance table runs
        into held cells within ``detour_horizon`` moves switches to a *detour table* for its
        goal, computed with the cells held at that moment blocked. The goal's newest detour
        table is shared with later robots that it does not cut off either. New tables per step
        are bounded (``DETOUR_CELLS`` cell visits; the longest-waiting robots first, the rest
        next step). A robot drops its detour table when its goal changes or when a release
        frees its ordinary way; where no way around exists it waits (``stranded``; it looks
        again after a release).

        Parameters
        ----------
        robots : int array or bool mask
            Robots to hold (already held ones are ignored).

        Raises
        ------
        InputError
            If ``robots`` is not a list of robot indices or a bool mask over the robots.

        Examples
        --------
        Robot 1 fails in the top row of a 2 x 3 floor; robot 0 goes round it below:

        >>> import numpy as np
        >>> from sorter.layout import Floor
        >>> p = Planner(Floor(np.ones((2, 3), np.int8)), 2, [0, 1], dwell_chute=0,
        ...             dwell_induct=0)
        >>> p.hold([1])
        >>> [int(p.step(np.array([2, 1]))[0]) for _ in range(4)], bool(p.finished[0])
        ([3, 4, 5, 2], True)
        """
        r = self._robots(robots, "robots")
        r = r[~self._held[r]]
        if r.size:
            if self._plan is not None:
                P, k = self._plan.configs, self._plan.k
                inv = self._plan.involved()
                if (np.isin(r, inv).any() or (r == self._plan.robot).any()
                        or np.isin(self._pos[r], P[k:, inv]).any()):
                    self._end_plan(abort=True)    # the plan would move them or cross them
            self.tables.complete_all()      # detours read tables far from the robots
            self._held[r] = True
            self._blocked[self._pos[r]] = 1
            self._epoch += 1

    def release(self, robots) -> None:
        """Release held ``robots`` (see :meth:`hold`)."""
        r = self._robots(robots, "robots")
        r = r[self._held[r]]
        if r.size:
            self._held[r] = False
            self._blocked[self._pos[r]] = 0
            self._released.extend(self._pos[r].tolist())
            self._epoch += 1

    def _cut_off(self, robots):
        from sorter.agv.detour import cut_off
        tabs = self.tables
        cut, self._stamp = cut_off(self.graph.fadj, tabs.pool, tabs.unreachable, self._slot,
                                   self._pos, robots, self._blocked, self.detour_horizon,
                                   self._seen, self._stamp, self._buf_a, self._buf_b)
        return cut

    def _switch(self, i, row):
        self.tables.release(int(self._slot[i]))
        self._slot[i] = row
        self._restart_watch(i)

    def _restart_watch(self, i):
        """Robot ``i``'s distances now come from another table: its stall watch starts anew."""
        self._best[i] = np.iinfo(np.int64).max
        self._since[i] = self.step_no

    def _shortened(self, rows, cells):
        """Which table ``rows`` a released cell of ``cells`` would shorten (a neighbour of the
        cell could then go through it for less: move costs taken as at least 1)."""
        g, pool = self.graph, self.tables.pool
        hit = np.zeros(len(rows), np.bool_)
        big = np.int64(1) << 40
        for x in cells:
            outs = g.fadj[x][g.fadj[x] >= 0]
            ins = g.radj[x][g.radj[x] >= 0]
            ins = ins[self._blocked[ins] == 0]
            if not outs.size or not ins.size:
                continue
            d_out = pool[rows[:, None], outs[None, :]].astype(np.int64)
            d_out[d_out == self.tables.unreachable] = big
            via = d_out.min(axis=1) + 2
            d_in = pool[rows[:, None], ins[None, :]].astype(np.int64)
            hit |= (d_in > via[:, None]).any(axis=1)
        return hit

    def _forget_released(self):
        """After releases: detour tables that a released cell would shorten are dropped."""
        tabs = self.tables
        cells = np.asarray(self._released, np.int64)
        self._released.clear()
        on = np.flatnonzero(self._on_detour)
        if on.size:
            back = on[self._shortened(self._slot[on].astype(np.int64), cells)]
            old = self._slot[back].copy()
            for i in back:                      # try the ordinary table again
                key, gcells = self._keys[i]
                if self._cong is not None:
                    key = self._cong.key(self._keys[i])
                self._slot[i] = tabs.acquire(key, gcells)
            still = self._cut_off(back) if back.size else np.zeros(0, np.bool_)
            for i, o, cut in zip(back, old, still):
                if cut:                         # still cut off: keep the detour
                    tabs.release(int(self._slot[i]))
                    self._slot[i] = o
                else:
                    tabs.release(int(o))
                    self._on_detour[i] = False
                    self._restart_watch(i)
        if self._latest_detour:
            keys = list(self._latest_detour)
            rows = np.array([tabs.cached_row(self._latest_detour[k][0]) for k in keys])
            ok = rows >= 0
            ok[ok] = ~self._shortened(rows[ok], cells)
            gone = [self._goal_id[k] for k, keep in zip(keys, ok) if not keep]
            for k, keep in zip(keys, ok):
                if not keep:
                    del self._latest_detour[k]
            if gone:                          # robots told "no way" for these goals look again
                self._no_way[np.isin(self._no_way, gone)] = -1
        if not self._held.any():
            # nothing held: no robot is cut off. (A robot flagged against a detour table older
            # than its goal's newest one kept the flag through every release before; clearing
            # every flag at each release instead cost 2-5% on the RHCR map with ~5% of the
            # robots down, where a flagged empty robot is sent to another induct at once.)
            self._no_way[:] = -1

    def _route_around_held(self):
        """Give robots cut off by held cells a detour table (see :meth:`hold`)."""
        tabs = self.tables
        if self._released:
            self._forget_released()
        cand = np.flatnonzero(~self._held & ~self._done & (self._dwell == 0)
                              & (self._no_way < 0))
        if not cand.size:
            return
        cut = cand[self._cut_off(cand)]
        if not cut.size:
            return
        cut = cut[np.argsort(-self._elapsed[cut], kind="stable")]   # longest-waiting first
        # 1. the goal's newest detour table, where it works (one batched check)
        rows = np.full(cut.size, -1, np.int64)
        now = np.zeros(cut.size, np.bool_)
        for j, i in enumerate(cut):
            last, epoch = self._latest_detour.get(self._keys[i][0], (None, -1))
            if last is not None:
                rows[j] = tabs.cached_row(last)
                now[j] = epoch == self._epoch
        has = rows >= 0
        reach = np.zeros(cut.size, np.bool_)
        reach[has] = tabs.pool[rows[has], self._pos[cut[has]]] != tabs.unreachable
        for i in cut[has & ~reach & now]:               # made for the held cells of now: no way
            self._no_way[i] = self._goal_id[self._keys[i][0]]
        trial = np.flatnonzero(reach)
        done = has & ~reach & now
        if trial.size:
            saved = self._slot[cut[trial]].copy()
            self._slot[cut[trial]] = rows[trial]
            works = ~self._cut_off(cut[trial])
            self._slot[cut[trial]] = saved
            for j in trial[works]:
                i = cut[j]
                self._switch(i, tabs.acquire(self._latest_detour[self._keys[i][0]][0],
                                             self._keys[i][1]))
                self._on_detour[i] = True
                self.detours += 1
            done[trial[works]] = True
        # 2. new detour tables, a bounded number per step (the rest wait for the next step)
        budget = self._detour_budget
        one = np.zeros(1, np.int64)
        for i in cut[~done]:
            key, cells = self._keys[i]
            last, epoch = self._latest_detour.get(key, (None, -1))
            row = tabs.cached_row(last) if epoch == self._epoch else -1
            if row >= 0:                                        # made in this loop
                if tabs.pool[row, self._pos[i]] == tabs.unreachable:
                    self._no_way[i] = self._goal_id[key]
                    continue
                old = int(self._slot[i])
                self._slot[i] = row
                one[0] = i
                if not self._cut_off(one)[0]:
                    self._slot[i] = old
                    self._switch(i, tabs.acquire(last, cells))
                    self._on_detour[i] = True
                    self.detours += 1
                    continue
                self._slot[i] = old
            if budget <= 0:
                continue                               # no new table this step
            budget -= 1
            dkey = ("detour", self._number, self._detour_seq, key)   # tables may be shared
            self._detour_seq += 1
            row = tabs.acquire(dkey, cells, blocked=self._blocked)
            self._latest_detour[key] = (dkey, self._epoch)
            self._goal_id.setdefault(key, len(self._goal_id))
            if tabs.pool[row, self._pos[i]] == tabs.unreachable:
                tabs.release(row)                      # no way around: wait for a release
                self._no_way[i] = self._goal_id[key]
                continue
            self._switch(i, row)
            self._on_detour[i] = True
            self.detours += 1

    def _gather_local(self):
        """Before the kernel: copy the table distances around every robot whose cell, table
        row or row content (``DistanceTables.gen``) changed since the last step into ``_local``
        (what the kernel reads; the others' are still exact: at high density many robots wait),
        widening every bounded table in which a robot's cell or a neighbour lies beyond the
        bound (three rounds, then complete what is left)."""
        tabs = self.tables
        gen = tabs.gen[self._slot]      # (before any widening here: those robots again next step)
        robots = np.flatnonzero((self._pos != self._gpos) | (self._slot != self._gslot)
                                | (gen != self._ggen))
        if self._flag.size < tabs.partial.size:
            self._flag = np.full(tabs.partial.size, -1, np.int64)
        flag = self._flag
        for rnd in range(5):
            _gather(self.graph.fadj, tabs.pool, tabs.span, self._slot, self._pos, robots,
                    tabs.partial, tabs.unsettled, flag, self._local)
            rows = np.flatnonzero(flag >= 0)
            if not rows.size or rnd == 4:
                flag[rows] = -1
                break
            for row in rows.tolist():
                if rnd < 3:
                    tabs.widen(row, int(flag[row]))
                else:
                    tabs.complete(row)
            flag[rows] = -1
            widened = np.zeros(flag.size, np.bool_)
            widened[rows] = True
            robots = robots[widened[self._slot[robots]]]     # their robots: gather again
        self._gpos[:] = self._pos
        self._gslot[:] = self._slot
        self._ggen[:] = gen

    def distance(self, robot: int) -> int:
        """Table distance from ``robot``'s cell to its goal (-1 unreachable, or before the
        robot has a goal).

        Raises
        ------
        InputError
            If ``robot`` is not a robot index in ``[0, n_robots)``.
        """
        if not _is_int(robot) or not 0 <= robot < self.n_robots:
            raise InputError(f"robot {robot!r}", field="robot",
                             expected=f"a robot index in [0, {self.n_robots})")
        if self._goal[robot] < 0:
            return -1
        tabs = self.tables
        row = int(self._slot[robot])
        v = int(self._pos[robot])
        lo, hi = tabs.span[row]
        if tabs.partial[row] and not (lo <= v < hi and tabs.pool[row, v] != tabs.unsettled):
            tabs.complete(row)
        d = int(tabs.pool[row, self._pos[robot]])
        return -1 if d == tabs.unreachable else d

    def prepare(self, goals) -> None:
        """Set ``goals`` and compute their distance tables without moving (preprocessing)."""
        goals = np.asarray(goals)
        if goals.shape != (self.n_robots,):
            raise InputError(f"goals has shape {goals.shape}", field="goals",
                             expected=f"shape ({self.n_robots},)")
        if not np.issubdtype(goals.dtype, np.integer):   # at every step, not only where some
            raise InputError(f"goals has dtype {goals.dtype}", field="goals",   # goal changed
                             expected="integer cell ids")
        if self._no_goal:                      # first goals: -1 (= unset) is not a goal
            self._cells(goals, "goals")
        if self._done.any() or not np.array_equal(goals, self._goal):
            self._set_goals(goals)
        self._no_goal = False

    def step(self, goals) -> np.ndarray:
        """Advance one timestep toward ``goals``; return the new positions.

        Parameters
        ----------
        goals : int array (n_robots,)
            Goal cell of each robot. A changed goal starts a new task for that robot (priority
            reset). After a robot finished (``finished`` of the previous step), its goal in
            this call is its next task even if it is the same cell (then it completes again,
            with its dwell): every robot always has a task.

        Returns
        -------
        numpy.ndarray
            int32 (n_robots,) cell ids at the next timestep. ``self.finished`` marks the robots
            that completed their goal in this step.
        """
        t0 = time.perf_counter()
        self.prepare(goals)
        if self._cong is not None:
            self._cong.update(self)
        if self.detour_horizon and (self._held.any() or self._released):
            with self.tables.frozen():        # it peeks at cached tables it holds no reference to
                self._route_around_held()
        self._gather_local()
        if self.rescue_after:
            self._watch_stalls()
        t1 = time.perf_counter()
        moves_plan = self._plan is not None and self._force_plan()
        self._kernel_step()
        if moves_plan:
            self._advance_plan()
        if self._cong is not None:
            self._cong.observe(self._pos, self._nxt, self._local)
        self.kernel_ms = (time.perf_counter() - t1) * 1e3
        self.goals_ms = (t1 - t0) * 1e3
        self._pos, self._nxt = self._nxt, self._pos
        self.step_no += 1
        if self.flow and self.flow_halflife and self.step_no % self.flow_halflife == 0:
            self._flow >>= 1
        self.tasks_completed += int(self._finished.sum())
        return self.graph.free_cells[self._pos]

    def _kernel_step(self):
        tabs = self.tables
        _pibt_step(self.graph.fadj, self.graph.fcells, self.graph.free_cells, self._local,
                   tabs.unreachable, self._pos, self._nxt, self._elapsed,
                   self._dwell, self._done, self._finished, self._occ_now, self._occ_next,
                   self._order_key, self._ostate, self._seedmix, self.step_no, self.dwell_chute,
                   self.dwell_induct, self._flow, self.flow, self.w_occ, self._st_a,
                   self._st_p, self._st_c, self._st_n, self._st_k, self.rotation,
                   self._heading, self.turn_weight, self.rotation and self.hold_on_turn,
                   self._held, tabs.pool, tabs.span, self._slot, tabs.unsettled, self._st_w,
                   self.swap, self._forced, self._keep_out, self.junction_order,
                   self._jcell, self._jorder, self._last_dir)

    # -- rescues (sorter.agv.lacam) ------------------------------------------------------------
    def _watch_stalls(self):
        """Track each robot's best distance to its goal; start a rescue for the robot stuck
        longest once one has not improved for ``rescue_after`` steps."""
        pick = self._plan is None                 # one plan at a time: none starts this step
        if not pick and self._goal[self._plan.robot] != self._plan.goal:
            self._end_plan()                      # its goal changed: the plan is moot
        i = _watch(self._local, self.tables.unreachable, self._best, self._since, self._done,
                   self._dwell, self._held, self._no_way, self._retry, self.step_no,
                   self.rescue_after, pick)
        if i >= 0:
            self._rescue(i)

    def _rescue(self, i):
        from sorter.agv.lacam import bfs_tables, search
        g = self.graph
        # the rescued robot heads for its goal; the others only make way (rather staying)
        dist = bfs_tables(g.radj, [g.fidx[np.asarray(self._keys[i][1], np.int64)]])
        grow = np.full(self.n_robots, -1, np.int32)
        grow[i] = 0
        fixed = np.flatnonzero(self._held | (self._dwell > 0))
        if self._parts is None:     # one-way floors: robots making way stay in their part
            from sorter.agv.tasks import strongly_connected_parts
            lab = strongly_connected_parts(g.fadj)
            self._parts = lab if (lab != lab[0]).any() else np.zeros(0, np.int64)
        path, outcome, _ = search(g.fadj, dist, grow, self._pos, i, fixed,
                                  seed=self.seed ^ self.step_no,
                                  max_calls=min(RESCUE_CALLS, max(500, RESCUE_WORK // self.n_robots)),
                                  part=self._parts if self._parts.size else None)
        if path is None or len(path) < 2:
            # none found within the budget: try again later, backing off (the floor changes)
            self.rescue_failures += 1
            self._retry[i] = self.step_no + (self.rescue_after << min(int(self._failed[i]), 5))
            self._failed[i] += 1
            return
        self._failed[i] = 0
        self.rescues += 1
        self._plan = _Rescue(np.array(path, np.int32), 0, i, int(self._goal[i]), 0)

    def _force_plan(self):
        """Before the kernel: the robots that move in what is left of the rescue plan are
        forced to its next configuration (with rotations: first every one of them that does
        not face its move turns, and they all wait; then they move together). Other robots
        keep out of the cells the plan uses in its next ``RESCUE_WINDOW`` configurations
        (one standing there must leave); while one is still in a cell the plan moves into,
        the plan waits (given up after ``2 x RESCUE_WINDOW`` such steps). Returns True if this
        step moves the plan on."""
        P, k = self._plan.configs, self._plan.k
        cur, nxt = P[k], P[k + 1]
        inv = self._plan.involved()
        if not np.array_equal(cur[inv], self._pos[inv]):
            self._end_plan(abort=True)            # defensive: the plan is off the floor
            return False
        self._forced[:] = -1                      # robots with no move left plan freely
        self._keep_out[:] = 0
        self._keep_out[P[k:k + RESCUE_WINDOW + 1, inv].ravel()] = 1
        moving = inv[nxt[inv] != cur[inv]]
        other = np.zeros(self.graph.n_free, np.bool_)
        other[self._pos] = True
        other[cur[inv]] = False
        self._forced[inv] = cur[inv]
        if other[nxt[moving]].any():             # a robot outside the plan is in the way
            self._plan.blocked += 1
            if self._plan.blocked > 2 * RESCUE_WINDOW:
                self._end_plan(abort=True)
            return False
        if self.rotation and moving.size:
            want = np.argmax(self.graph.fadj[cur[moving]] == nxt[moving][:, None], axis=1)
            off = want != self._heading[moving]
            if off.any():
                r = moving[off]
                diff = (want[off] - self._heading[r]) & 3
                self._heading[r] = (self._heading[r] + np.where(diff == 3, 3, 1)) & 3
                return False
        self._forced[inv] = nxt[inv]
        return True

    def _end_plan(self, abort=False):
        if abort:                                 # not brought to its goal: not at once again
            i = self._plan.robot
            self._retry[i] = self.step_no + self.rescue_after
        self._plan = None
        self._forced[:] = -1
        self._keep_out[:] = 0

    def _advance_plan(self):
        """After the kernel moved the plan on: at its end the rescued robot has arrived."""
        self._plan.k += 1
        if self._plan.k == self._plan.configs.shape[0] - 1:
            i = self._plan.robot
            self._end_plan()
            t = int(self.graph.fcells[self._nxt[i]])
            stay = self.dwell_chute if t == 3 else (self.dwell_induct if t == 2 else 0)
            if stay <= 0:
                self._finished[i] = True
                self._done[i] = True
            else:
                self._dwell[i] = stay

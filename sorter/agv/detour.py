"""Which robots a held (faulted) robot cuts off from their goal: the trigger for detour tables.

A robot's distance table routes it along cells of strictly decreasing distance. When robots are
held in place (:meth:`sorter.agv.pibt.Planner.hold`: a fault, a robot taken out of service), a
robot is *cut off* if **every** walk of strictly decreasing table distance from its cell runs
into a held robot's cell within ``horizon`` moves (or before reaching the goal). Such a robot
would queue behind the held robot for the whole repair; the planner gives it a *detour table*
instead: the same goal's table computed with the held cells blocked (:class:`DistanceTables`
``acquire(..., blocked=...)``).

The check is cheap where nothing is in the way: it first follows one greedy descending walk
(the smallest free next cell); only if that walk dead-ends on held cells does it search all
descending walks (level by level, each cell once per level). Robots that are not cut off keep their
ordinary, shared tables, so faults cost table computations only for the goals actually affected.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["cut_off"]


@njit(cache=True)
def _cut_off(fadj, pool, unreach, slot, pos, cand, blocked, horizon, seen, stamp, buf_a, buf_b,
             out):
    """``out[j]`` = robot ``cand[j]`` is cut off (see the module docstring); returns the stamp.

    ``seen`` (int64 per free cell) holds visit stamps; ``stamp`` is the last one used.
    """
    for j in range(cand.shape[0]):
        i = cand[j]
        row = slot[i]
        v0 = pos[i]
        out[j] = False
        d0 = pool[row, v0]
        if d0 == 0 or d0 == unreach:
            continue
        # 1. one greedy walk: the free neighbour with the smallest distance
        v = v0
        ok = False
        for _ in range(horizon):
            best = -1
            bd = pool[row, v]
            for k in range(4):
                u = fadj[v, k]
                if u >= 0 and blocked[u] == 0 and pool[row, u] < bd:
                    best = u
                    bd = pool[row, u]
            if best < 0:
                break
            v = best
            if bd == 0:
                ok = True
                break
        else:
            ok = True
        if ok:
            continue
        # 2. every descending walk, level by level (a cell may recur on several levels: its
        # remaining look-ahead differs; within a level it is expanded once)
        na = 1
        buf_a[0] = v0
        cut = True
        for _ in range(horizon):
            stamp += 1
            nb = 0
            for a in range(na):
                x = buf_a[a]
                dx = pool[row, x]
                for k in range(4):
                    u = fadj[x, k]
                    if u < 0 or blocked[u] != 0 or seen[u] == stamp:
                        continue
                    du = pool[row, u]
                    if du >= dx:
                        continue
                    if du == 0:
                        cut = False
                        break
                    seen[u] = stamp
                    buf_b[nb] = u
                    nb += 1
                if not cut:
                    break
            if not cut or nb == 0:
                break
            buf_a, buf_b = buf_b, buf_a
            na = nb
        else:
            cut = False
        out[j] = cut
    return stamp


def cut_off(fadj, pool, unreach, slot, pos, cand, blocked, horizon, seen, stamp, buf_a, buf_b):
    """Robots among ``cand`` that held cells cut off from their goal within ``horizon`` moves.

    Parameters
    ----------
    fadj : int32 array (n_free, 4)
        Forward moves in free-cell indexing (-1 none).
    pool : uint16/uint32 array (rows, n_free)
        Distance tables; ``slot[i]`` is robot ``i``'s row; ``unreach`` marks unreachable cells.
    pos : int32 array
        Robot cells (free index).
    cand : int array
        Robots to check.
    blocked : uint8 array (n_free,)
        Held cells (non-zero).
    horizon : int
        Moves to look ahead (>= 1).
    seen, buf_a, buf_b : scratch arrays of length n_free (int64, int32, int32)
    stamp : int
        Last visit stamp used in ``seen``.

    Returns
    -------
    (numpy.ndarray, int)
        A bool mask over ``cand`` and the new stamp.
    """
    out = np.zeros(len(cand), np.bool_)
    stamp = _cut_off(fadj, pool, unreach, slot, pos, np.asarray(cand, np.int64), blocked,
                     int(horizon), seen, np.int64(stamp), buf_a, buf_b, out)
    return out, int(stamp)

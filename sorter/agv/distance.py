"""Exact distance-to-goal tables for grid floors, computed by a compiled reverse BFS.

A distance table answers "how many moves from cell ``c`` to the nearest cell of goal ``G``",
respecting one-way moves: the BFS runs over the *reversed* move graph starting from the goal's
cells (a chute's table is one multi-source BFS from all its drop cells).

Memory design
-------------
* Tables are indexed by **free cell** (obstacles have no entry), not by grid cell.
* Entries are ``uint16`` (``65535`` = unreachable) while the floor has fewer than 65,535 free
  cells, else ``uint32``.
* Tables are **per goal** (a station or a single cell), computed **lazily on first use** and kept
  in a pool with **LRU eviction** of tables no robot currently heads for (beyond ``max_mb`` in the
  pool, idle tables are evicted; tables in use are never evicted, so the pool grows if every
  robot has a distinct goal).
* A single cell's table is **bounded** (the cells on near-shortest ways from the robot) and takes
  memory only for the part it searched (below).

At LoRR ``sortation_large`` size (140 x 500, 54,320 free cells) one table is 54,320 x 2 B = 106 KB.
All 16,236 station tables (620 ``E`` inducts + 15,616 chutes) would take 1.68 GB and 8.2 s to compute
at once (10.4 s weighted, with lanes) on one core of the 2-core test machine -- so they are computed
lazily: a 10,000-robot sorting run (100 destinations x 2 chutes) holds 820 tables = 87 MB, computed in
~0.3 s; LoRR errand runs (31,911 distinct errand cells) use the LRU bound (2 GB in the benchmarks).
One BFS over that floor takes ~0.25-0.3 ms, one weighted table (Dial's buckets) ~0.65 ms. Figures:
``bench/RESULTS.md``.

Prefetching: when the next goal of a robot is known ahead (LoRR errand files), its table can be
computed by a background thread while the planner steps (:meth:`DistanceTables.prefetch`): the
table kernels release the GIL, so on a second core the step no longer waits for them. Tables
are exact whoever computes them, so plans do not change, only where the time goes. A prefetched
table is pinned (not evicted by the LRU bound) until its robot acquires it, at most
``pin_limit`` of them; task streams ask for it shortly before it is needed.

Bounded tables: where errands land anywhere on the floor (the LoRR 2024 files) nearly every errand
is a new table. A single-cell goal's table is then searched only over the cells on ways from the
robot at most ``slack`` longer than the shortest (A* from the goal toward the robot, Manhattan
heuristic; ``unsettled`` beyond), typically a few thousand of the 54,320 cells; the planner widens
it before any robot reads past it, so plans stay those of complete tables
(:meth:`DistanceTables.acquire`, ``near=``). A band keeps its search's frontier (a few hundred
cells; their tentative distances follow from their settled neighbours), so widening it goes on
with the same search, toward the robot's new cell (:func:`_astar_run`), instead of starting
anew: only cells beyond the band are searched, and the margin ``slack`` can be small (8).

A row still has room for every free cell, but only the **span** its table wrote is used (the
pool is mapped on 4 KB pages; cells outside the span read as unsettled): a band covers about a
quarter of its row, so a row's memory pages are written only where its tables were. Measured
(``bench/RESULTS.md``, session 8): 10,000 robots on the LoRR 2024 Start-Kit problem hold
~11,000 tables in 1.33 GB of process memory (1.55 GB when every row was written whole), 1,000
robots 0.29 GB; the LoRR 2023 10,000-robot runs 0.7-1.06 GB (0.93-1.45 GB before).
"""
from __future__ import annotations

import mmap
import threading
import time
from collections import OrderedDict, deque

import numpy as np
from numba import njit

from sorter.errors import InputError

__all__ = ["MoveGraph", "DistanceTables", "distance_table", "UNREACHABLE16"]

UNREACHABLE16 = np.iinfo(np.uint16).max
_NONE = np.zeros(0, np.uint8)          # "no blocked cells" for the table kernels
_ROW0 = np.zeros(1, np.int64)          # row 0 of a one-row pool
_NONE32 = np.zeros(0, np.int32)        # "recompute from the settled cells" (A* frontier)


def _rings(nb, ring):
    """Bucket rings of the Dial / A* searches: ``nb`` rows of ``ring`` int32, uninitialised.

    A search touches only the start of each row. NumPy puts arrays of 4 MB and more on 2 MB
    transparent huge pages, where each row would then cost 2 MB of memory (16 MB per set of
    rings with lane costs); anonymous memory mapped here stays on 4 KB pages, so only the
    touched part is resident (-22 MB at 1,000 robots on sortation_large, two sets)."""
    return np.frombuffer(mmap.mmap(-1, nb * ring * 4), np.int32).reshape(nb, ring)


@njit(cache=True)
def _reverse_adjacency(moves, fidx, free_cells):
    """Forward (free-index) adjacency and reversed adjacency: radj[v, d] = u with a move u -> v."""
    nf = free_cells.shape[0]
    fadj = np.full((nf, 4), -1, np.int32)
    radj = np.full((nf, 4), -1, np.int32)
    for k in range(nf):
        c = free_cells[k]
        for d in range(4):
            t = moves[c, d]
            if t >= 0:
                v = fidx[t]
                if v >= 0:
                    fadj[k, d] = v
                    radj[v, (d + 2) % 4] = k
    return fadj, radj


@njit(cache=True, nogil=True)
def _bfs_into(radj, sources, out, queue, unreach, blocked, near=-1, slack=0, unsettled=0,
              min_limit=0):
    """Multi-source BFS over reversed edges; writes distances into ``out`` (free-index space).

    Cells with ``blocked[c] != 0`` are neither entered nor left (``blocked`` may have length 0:
    nothing is blocked). With ``near >= 0`` the search stops at distance ``limit = d + slack +
    d // 2`` (at least ``min_limit``) where ``d`` is the distance of cell ``near``: cells
    farther than ``limit`` are then set to ``unsettled`` and the return value is -1 (a bounded
    table); else the number of cells reached.
    """
    out[:] = unreach
    head = 0
    tail = 0
    nb = blocked.shape[0]
    limit = -1
    for s in sources:
        if nb and blocked[s]:
            continue
        if out[s] != 0:
            out[s] = 0
            queue[tail] = s
            tail += 1
            if s == near:
                limit = max(slack, min_limit)
    while head < tail:
        v = queue[head]
        if limit >= 0 and out[v] > limit:
            _unsettle(out, limit, unsettled)
            return -1
        head += 1
        dv = out[v] + 1
        for d in range(4):
            u = radj[v, d]
            if u >= 0 and out[u] == unreach and not (nb and blocked[u]):
                out[u] = dv
                queue[tail] = u
                tail += 1
                if u == near:
                    limit = max(dv + slack + dv // 2, min_limit)
    return tail


@njit(cache=True, nogil=True)
def _unsettle(out, limit, unsettled):
    for c in range(out.shape[0]):
        if out[c] > limit:
            out[c] = unsettled


@njit(cache=True, nogil=True)
def _dial_into(radj, rcost, sources, out, unreach, maxc, qbuf, qhead, qtail, blocked,
               near=-1, slack=0, unsettled=0, min_limit=0):
    """Multi-source shortest paths with small integer move costs (Dial's buckets, FIFO rings).

    ``rcost[v, k]`` is the cost of the forward move ``radj[v, k] -> v``; bucket ``d % (maxc+1)``
    is a FIFO ring ``qbuf[b]`` (capacity a power of two). Distances saturate at ``unreach - 2``.
    Cells with ``blocked[c] != 0`` are neither entered nor left (length 0: none blocked).
    ``near``/``slack``/``unsettled``: a bounded table, as in :func:`_bfs_into` (returns -1 then,
    else 0).
    """
    nbl = blocked.shape[0]
    out[:] = unreach
    nb = qhead.shape[0]             # a power of two > maxc
    bmask = nb - 1
    mask = qbuf.shape[1] - 1
    for b in range(nb):
        qhead[b] = 0
        qtail[b] = 0
    pending = 0
    for s in sources:
        if nbl and blocked[s]:
            continue
        if out[s] != 0:
            out[s] = 0
            qbuf[0, qtail[0] & mask] = s
            qtail[0] += 1
            pending += 1
    d = 0
    cap = unreach - 2
    limit = -1
    while pending > 0 and d <= cap:
        if limit >= 0 and d > limit:
            _unsettle(out, limit, unsettled)
            return -1
        b = d & bmask
        while qhead[b] < qtail[b]:
            v = qbuf[b, qhead[b] & mask]
            qhead[b] += 1
            pending -= 1
            if out[v] != d:
                continue
            if v == near:
                limit = max(d + slack + d // 2, min_limit)
            for k in range(4):
                u = radj[v, k]
                if u >= 0 and not (nbl and blocked[u]):
                    nd = d + rcost[v, k]
                    if nd > cap:
                        nd = cap
                    if nd < out[u]:
                        out[u] = nd
                        bb = nd & bmask
                        qbuf[bb, qtail[bb] & mask] = u
                        qtail[bb] += 1
                        pending += 1
        d += 1
    return 0


@njit(cache=True, nogil=True, inline="always")
def _h(v, rr, cc, nr, nc):
    return abs(np.int64(rr[v]) - nr) + abs(np.int64(cc[v]) - nc)


@njit(cache=True, nogil=True, inline="always")
def _take_in(out, u, lo, hi, unsettled):
    """The span ``[lo, hi)`` grown to hold cell ``u``, the new cells set to ``unsettled``."""
    if u < lo:
        out[u:lo] = unsettled
        return u, hi
    if u >= hi:
        out[hi:u + 1] = unsettled
        return lo, u + 1
    return lo, hi


@njit(cache=True, nogil=True, inline="always")
def _at(out, span, v, unsettled):
    """``out[v]``, or ``unsettled`` outside the row's written span."""
    return out[v] if span[0] <= v < span[1] else unsettled


@njit(cache=True, nogil=True)
def _astar_run(radj, fadj, rcost, out, span, unreach, qbuf, qhead, qtail, front_c, front_g, near,
               rr, cc, dr4, dc4, slack, unsettled, targets, fcells, fpos, res):
    """A* toward cell ``near`` from a frontier: ``front_c`` with tentative distances
    ``front_g`` (the goal cell at 0 for a new table), ``out`` holding exact distances at the
    cells settled already and ``unsettled`` at all others. An empty ``front_g``: each frontier
    cell's tentative distance is recomputed from its settled neighbours (``fadj``: forward
    moves), as the search that settled them left it.

    Only ``out[span[0]:span[1]]`` is written (and read): cells outside it count as
    ``unsettled``, and the span grows, filled with ``unsettled``, as the search reaches
    cells beyond it. A band then touches about a quarter of the row's memory pages.

    Expands cells in increasing ``f = g + h`` (``h``: Manhattan distance to ``near``;
    ``rr``/``cc`` = row/col per free cell, ``dr4``/``dc4`` the row/col step of each direction
    of ``radj``), over Dial buckets (ring size > max cost + 1; frontier cells join when ``f``
    reaches theirs), until every cell of ``targets`` (-1 entries ignored) is settled, then on
    to ``slack`` past that ``f``. The heuristic is consistent (every move costs at least 1 and
    changes it by 1), so an expanded cell's distance is final, whatever ``near`` the cells
    settled before were searched toward: no closed set is kept, a settled cell is never
    improved again, and a queued entry is stale when ``out + h`` no longer matches its bucket.

    Bounded result: ``res[0]`` = the last ``f`` expanded, ``res[1]`` = the largest distance
    settled, ``res[2]`` = the number of frontier cells (reached, not settled; set back to
    ``unsettled``) written to ``fcells[fpos:]``, or -1 if they did not fit there. Complete (the
    search ran out): ``res[0] = -1``, the span is the whole row and cells never reached are
    ``unreach``. ``res[3]``: the number of cells expanded.
    """
    nb = qhead.shape[0]
    bmask = nb - 1
    mask = qbuf.shape[1] - 1
    for b in range(nb):
        qhead[b] = 0
        qtail[b] = 0
    nr = np.int64(rr[near])
    nc = np.int64(cc[near])
    lo = span[0]
    hi = span[1]
    nfront = front_c.shape[0]
    fkey = np.empty(nfront, np.int64)
    cap = np.int64(unreach) - 2
    given = front_g.shape[0] == nfront
    for j in range(nfront):
        u = front_c[j]
        if given:
            gu = np.int64(front_g[j])
        else:
            gu = cap
            for d in range(4):
                v = fadj[u, d]
                if v >= lo and v < hi and out[v] != unsettled:    # settled: it relaxed u
                    x = np.int64(out[v]) + np.int64(rcost[v, (d + 2) % 4])
                    if x < gu:
                        gu = x
        lo, hi = _take_in(out, u, lo, hi, unsettled)
        out[u] = gu
        fkey[j] = gu + _h(u, rr, cc, nr, nc)
    order = np.argsort(fkey)
    nxt = 0                     # next frontier cell (in order of f) to join the buckets
    f = fkey[order[0]] if nfront else 0
    pending = 0
    g = np.int64(0)
    flimit = -1
    expanded = 0
    while pending > 0 or nxt < nfront:
        if flimit >= 0 and f > flimit:
            break
        if pending == 0 and fkey[order[nxt]] > f:
            f = fkey[order[nxt]]            # nothing queued before the next frontier cell
            if flimit >= 0 and f > flimit:
                break
        while nxt < nfront and fkey[order[nxt]] == f:
            v = front_c[order[nxt]]
            nxt += 1
            bb = f & bmask
            qbuf[bb, qtail[bb] & mask] = v
            qtail[bb] += 1
            pending += 1
        b = f & bmask
        while qhead[b] < qtail[b]:
            v = qbuf[b, qhead[b] & mask]
            qhead[b] += 1
            pending -= 1
            gv = np.int64(out[v])
            vr = np.int64(rr[v]) - nr
            vc = np.int64(cc[v]) - nc
            if gv + abs(vr) + abs(vc) != f:
                continue                        # stale entry: a better one came first
            expanded += 1
            if gv > g:
                g = gv
            for k in range(4):
                u = radj[v, k]
                if u >= 0:
                    if u < lo or u >= hi:
                        lo, hi = _take_in(out, u, lo, hi, unsettled)
                    ng = gv + np.int64(rcost[v, k])
                    if ng > cap:
                        ng = cap
                    if ng < out[u]:
                        out[u] = ng
                        fu = ng + abs(vr + dr4[k]) + abs(vc + dc4[k])
                        bb = fu & bmask
                        qbuf[bb, qtail[bb] & mask] = u
                        qtail[bb] += 1
                        pending += 1
        if flimit < 0:
            done = True
            for t in targets:
                if t >= 0 and (t < lo or t >= hi or out[t] == unsettled
                               or np.int64(out[t]) + _h(t, rr, cc, nr, nc) > f):
                    done = False
                    break
            if done:
                flimit = f + slack
        f += 1
    res[1] = g
    res[3] = expanded
    if pending == 0 and nxt == nfront:      # the search ran out: a complete table
        out[:lo] = unreach
        out[hi:] = unreach
        for c in range(lo, hi):
            if out[c] == unsettled:
                out[c] = unreach
        span[0] = 0
        span[1] = out.shape[0]
        res[0] = -1
        return
    span[0] = lo
    span[1] = hi
    # the new frontier: cells reached but not settled, queued or not joined yet (each once;
    # stale duplicates skipped), set back to unsettled (their tentative distances follow from
    # their settled neighbours)
    n = 0
    room = fcells.shape[0] - fpos
    for b in range(nb + 1):
        lo_ = nxt if b == nb else qhead[b]
        hi_ = nfront if b == nb else qtail[b]
        for j in range(lo_, hi_):
            v = front_c[order[j]] if b == nb else qbuf[b, j & mask]
            x = out[v]
            if x != unsettled and np.int64(x) + _h(v, rr, cc, nr, nc) > flimit:
                if n < room:
                    fcells[fpos + n] = v
                n += 1
                out[v] = unsettled
    res[0] = flimit
    res[2] = n if n <= room else -1


@njit(cache=True, nogil=True)
def _astar_into(radj, fadj, rcost, src, out, span, unreach, qbuf, qhead, qtail, near, rr, cc,
                dr4, dc4, slack, unsettled, fcells, fpos, res):
    """A bounded table of one goal cell ``src`` around the way to cell ``near``, in a row
    whose old content is ignored (its span starts empty).

    A* from the goal toward ``near`` (:func:`_astar_run`): it expands every cell with
    ``f <= d(near) + slack``, the cells on ways from ``near`` at most ``slack`` longer than the
    shortest, each with its exact distance; the others count as ``unsettled``. ``res`` and
    the frontier as in :func:`_astar_run` (``res[0] = -1``: the search ran out first and the
    table is complete).
    """
    span[0] = src
    span[1] = src + 1
    start = np.empty(1, np.int32)
    start[0] = src
    zero = np.zeros(1, np.int32)
    targets = np.empty(1, np.int64)
    targets[0] = near
    _astar_run(radj, fadj, rcost, out, span, unreach, qbuf, qhead, qtail, start, zero, near, rr,
               cc, dr4, dc4, slack, unsettled, targets, fcells, fpos, res)


@njit(cache=True, nogil=True)
def _astar_batch(radj, fadj, rcost, srcs, nears, pool, rows, spans, unreach, qbuf, qhead, qtail,
                 rr, cc, dr4, dc4, slack, unsettled, fcells, fptr, out_res):
    """:func:`_astar_into` for goal ``srcs[j]`` around ``nears[j]`` into ``pool[rows[j]]`` (its
    span into ``spans[j]``), for every j, in one call (the prefetch thread takes the GIL once
    per batch, not twice per table). Per job: ``out_res[j]`` = ``res`` of :func:`_astar_run`;
    its frontier is ``fcells[fptr[j]:fptr[j + 1]]`` (an empty range where it did not fit)."""
    res = np.zeros(4, np.int64)
    fptr[0] = 0
    for j in range(srcs.shape[0]):
        res[2] = 0
        _astar_into(radj, fadj, rcost, srcs[j], pool[rows[j]], spans[j], unreach, qbuf, qhead,
                    qtail, nears[j], rr, cc, dr4, dc4, slack, unsettled, fcells, fptr[j], res)
        for k in range(4):
            out_res[j, k] = res[k]
        fptr[j + 1] = fptr[j] + (res[2] if res[0] >= 0 and res[2] > 0 else 0)


@njit(cache=True)
def _release_span(span, touched, row):
    """Empty the span of ``row``, adding it to the extent of the pages the row has written."""
    lo = span[row, 0]
    hi = span[row, 1]
    if hi > lo:
        if touched[row, 1] > touched[row, 0]:
            lo = min(lo, touched[row, 0])
            hi = max(hi, touched[row, 1])
        touched[row, 0] = lo
        touched[row, 1] = hi
        span[row, 0] = 0
        span[row, 1] = 0


@njit(cache=True)
def _covers(pool, spans, fadj, row, v, unsettled):
    """Are cell ``v`` and its neighbours settled in table row ``row``?"""
    if _at(pool[row], spans[row], v, unsettled) == unsettled:
        return False
    for d in range(4):
        u = fadj[v, d]
        if u >= 0 and _at(pool[row], spans[row], u, unsettled) == unsettled:
            return False
    return True


@njit(cache=True, nogil=True)
def _bfs_many(radj, src_ptr, src_idx, rows, pool, queue, unreach, blocked):
    """Fill ``pool[rows[j]]`` with the table of source set j (CSR ``src_ptr``/``src_idx``)."""
    for j in range(rows.shape[0]):
        _bfs_into(radj, src_idx[src_ptr[j]:src_ptr[j + 1]], pool[rows[j]], queue, unreach,
                  blocked)


def _is_int(x) -> bool:
    """A Python or NumPy integer (not a bool, float or string)."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


class MoveGraph:
    """The move graph of a floor in compact free-cell indexing (shared by tables and planner).

    Parameters
    ----------
    moves : int32 array, shape (n_cells, 4)
        ``moves[c, d]`` = target cell of the move from ``c`` in direction ``d`` (0 E, 1 S, 2 W, 3 N),
        or -1 where forbidden, as in :class:`sorter.layout.floor.Floor`.
    cells : int8 array, shape (n_cells,), optional
        Cell type codes (0 obstacle, 1 travel, 2 induct, 3 drop). Default: a cell is free if it has
        any move in or out, else an obstacle.

    Raises
    ------
    InputError
        If ``moves`` has the wrong shape or points outside the grid or into an obstacle.
    """

    def __init__(self, moves, cells=None):
        moves = np.asarray(moves)
        if moves.ndim != 2 or moves.shape[1] != 4 or moves.shape[0] == 0:
            raise InputError(f"moves has shape {moves.shape}", field="moves",
                             expected="an int array of shape (n_cells, 4)")
        if not np.issubdtype(moves.dtype, np.integer):
            raise InputError(f"moves has dtype {moves.dtype}", field="moves", expected="integers")
        n = moves.shape[0]
        moves = np.ascontiguousarray(moves, dtype=np.int32)
        if moves.min() < -1 or moves.max() >= n:
            raise InputError("moves point outside the grid", field="moves",
                             expected=f"-1 or a cell id in [0, {n})")
        if cells is None:
            free = (moves >= 0).any(axis=1)
            free[moves[moves >= 0]] = True
            cells = free.astype(np.int8)
        cells = np.ascontiguousarray(cells, dtype=np.int8)
        if cells.shape != (n,):
            raise InputError(f"cells has shape {cells.shape}", field="cells",
                             expected=f"shape ({n},) like moves")
        tgt = moves[moves >= 0]
        if tgt.size and (cells[tgt] == 0).any():
            raise InputError("a move leads into an obstacle cell", field="moves",
                             expected="-1 for moves into obstacles")
        if (moves[cells == 0] >= 0).any():
            raise InputError("an obstacle cell has a move", field="moves",
                             expected="all -1 on obstacle cells")
        self.moves = moves
        self.cells = cells
        self.n_cells = n
        self.free_cells = np.flatnonzero(cells != 0).astype(np.int32)
        self.fidx = np.full(n, -1, np.int32)
        self.fidx[self.free_cells] = np.arange(self.free_cells.size, dtype=np.int32)
        self.fadj, self.radj = _reverse_adjacency(moves, self.fidx, self.free_cells)
        self.n_free = int(self.free_cells.size)
        self.fcells = cells[self.free_cells]          # cell type per free index
        self.rows = self.cols = None                  # grid row / col per free index, if known
        self.dr4 = self.dc4 = None                    # ... and the step of each direction

    def set_width(self, width) -> None:
        """Give the grid width: if every move is one step on the grid (cell id ``row * width +
        col``), ``rows``/``cols`` per free cell are set (Manhattan guidance for bounded tables)."""
        w = int(width)
        if w < 1 or self.n_cells % w:
            return
        src = np.repeat(np.arange(self.n_cells), 4).reshape(-1, 4)
        ok = self.moves >= 0
        dr = np.abs(self.moves[ok] // w - src[ok] // w)
        dc = np.abs(self.moves[ok] % w - src[ok] % w)
        if not (dr + dc == 1).all():
            return
        rows = (self.free_cells // w).astype(np.int32)
        cols = (self.free_cells % w).astype(np.int32)
        # the row / col step of each direction of radj, the same for every cell (A* computes
        # its heuristic from the expanded cell's)
        dr4 = np.zeros(4, np.int64)
        dc4 = np.zeros(4, np.int64)
        for k in range(4):
            v = np.flatnonzero(self.radj[:, k] >= 0)
            if v.size == 0:
                continue
            a = rows[self.radj[v, k]].astype(np.int64) - rows[v]
            b = cols[self.radj[v, k]].astype(np.int64) - cols[v]
            if (a != a[0]).any() or (b != b[0]).any():
                return
            dr4[k], dc4[k] = a[0], b[0]
        self.rows, self.cols, self.dr4, self.dc4 = rows, cols, dr4, dc4

    @classmethod
    def of(cls, floor_or_moves):
        """A MoveGraph from a ``Floor`` (anything with ``moves`` and ``cells``), a MoveGraph, or moves."""
        if isinstance(floor_or_moves, MoveGraph):
            return floor_or_moves
        g = getattr(floor_or_moves, "_sorter_move_graph", None)
        if g is not None:
            return g
        if hasattr(floor_or_moves, "moves"):
            g = cls(floor_or_moves.moves, getattr(floor_or_moves, "cells", None))
            if getattr(floor_or_moves, "width", None) is not None:
                g.set_width(floor_or_moves.width)
            try:
                floor_or_moves._sorter_move_graph = g      # reuse across planners of one floor
            except AttributeError:
                pass
            return g
        return cls(floor_or_moves)


def distance_table(floor_or_moves, goal_cells) -> np.ndarray:
    """Exact move distance from every cell to the nearest of ``goal_cells``.

    Parameters
    ----------
    floor_or_moves : Floor or int array (n_cells, 4)
        The floor (or its ``moves`` table); one-way moves are respected.
    goal_cells : int array
        Cell ids of the goal (one cell, or all drop cells of a chute).

    Returns
    -------
    numpy.ndarray
        int32, shape (n_cells,): distance, or -1 where the goal is unreachable (and on obstacles).

    Raises
    ------
    InputError
        If a goal cell is outside the grid or an obstacle, or the goal is empty.

    Examples
    --------
    >>> import numpy as np
    >>> moves = np.array([[1, -1, -1, -1], [-1, -1, 0, -1]])   # two cells, 0 <-> 1
    >>> distance_table(moves, [1]).tolist()
    [1, 0]
    """
    g = MoveGraph.of(floor_or_moves)
    src = _goal_sources(g, goal_cells)
    row = np.empty(g.n_free, np.uint32)
    _bfs_into(g.radj, src, row, np.empty(g.n_free, np.int32), np.iinfo(np.uint32).max, _NONE)
    out = np.full(g.n_cells, -1, np.int32)
    r = row.astype(np.int64)
    r[row == np.iinfo(np.uint32).max] = -1
    out[g.free_cells] = r
    return out


def _wkey(key) -> bool:
    """Is ``key`` a congestion-weighted table's key, ``("wcell", cell, version)``?"""
    return type(key) is tuple and len(key) == 3 and key[0] == "wcell"


def _goal_sources(g: MoveGraph, goal_cells) -> np.ndarray:
    if type(goal_cells) is tuple and len(goal_cells) == 1 and type(goal_cells[0]) is int:
        c = goal_cells[0]                   # one cell (the planner's keys): no array checks
        if 0 <= c < g.n_cells and g.fidx[c] >= 0:
            return np.array([g.fidx[c]], np.int32)
    cells = np.atleast_1d(np.asarray(goal_cells))
    if cells.ndim != 1 or cells.size == 0 or not np.issubdtype(cells.dtype, np.integer):
        raise InputError(f"goal cells of shape {cells.shape}, dtype {cells.dtype}",
                         field="goal_cells", expected="a non-empty 1-D list of integer cell ids")
    if cells.min() < 0 or cells.max() >= g.n_cells:
        raise InputError("goal cell outside the grid", field="goal_cells",
                         expected=f"cell ids in [0, {g.n_cells})")
    f = g.fidx[cells]
    if (f < 0).any():
        raise InputError(f"goal cell {int(cells[f < 0][0])} is an obstacle", field="goal_cells",
                         expected="free cells")
    return f.astype(np.int32)


def _reverse_costs(g: MoveGraph, costs):
    c = np.asarray(costs)
    if c.shape != (g.n_cells, 4) or not np.issubdtype(c.dtype, np.integer) or c.min() < 1 \
            or c.max() > 255:
        raise InputError(f"costs has shape {c.shape}, dtype {c.dtype}", field="costs",
                         expected=f"integers 1..255 of shape ({g.n_cells}, 4) aligned with moves")
    rcost = np.ones((g.n_free, 4), np.uint8)
    for d in range(4):
        u = g.radj[:, d]                  # predecessor in direction d; its forward move is (d+2)%4
        ok = u >= 0
        rcost[ok, d] = c[g.free_cells[u[ok]], (d + 2) % 4]
    return rcost, int(rcost.max())


class _FrontStore:
    """The frontiers of the A* bands (their cells; the tentative distances follow from the
    settled neighbours), one slice of a shared array per table row: no allocation per table
    (thousands of small arrays made and freed per second fragment the heap of a two-threaded
    process: +10-15 MB at 1,000 robots). Freed slices are reclaimed by compacting when the
    array fills up; it grows when three quarters are live."""

    def __init__(self, cap=1 << 16):
        self.cells = np.empty(cap, np.int32)
        self.top = 0                    # first unused entry
        self.live = 0                   # entries in use
        self.at = {}                    # row -> (offset, length)

    def put(self, row, cells) -> None:
        self.drop(row)
        n = cells.shape[0]
        if self.top + n > self.cells.size:
            self._make_room(n)
        self.cells[self.top:self.top + n] = cells
        self.at[row] = (self.top, n)
        self.top += n
        self.live += n

    def drop(self, row) -> None:
        x = self.at.pop(row, None)
        if x is not None:
            self.live -= x[1]

    def get(self, row):
        """The frontier cells of ``row`` (a view, valid until the next :meth:`put`) or None."""
        x = self.at.get(row)
        if x is None:
            return None
        o, n = x
        return self.cells[o:o + n]

    def _make_room(self, n) -> None:
        cap = self.cells.size
        while 4 * (self.live + n) > 3 * cap:
            cap *= 2
        cells = self.cells if cap == self.cells.size else np.empty(cap, np.int32)
        top = 0                         # slices moved down in offset order (no big temporaries)
        for row, (o, m) in sorted(self.at.items(), key=lambda x: x[1][0]):
            cells[top:top + m] = self.cells[o:o + m]
            self.at[row] = (top, m)
            top += m
        self.cells = cells
        self.top = top

    @property
    def nbytes(self) -> int:
        return self.cells.nbytes


class DistanceTables:
    """A pool of per-goal distance tables in free-cell indexing, computed on first use (LRU).

    Parameters
    ----------
    floor_or_moves : Floor, MoveGraph or moves array
        The floor.
    max_mb : float
        Memory bound of the pool: once it holds this much, a new table evicts the least
        recently used table that no robot uses (idle). Tables in use, and prefetched tables
        waiting for their robot, are never evicted: the pool grows beyond ``max_mb`` if they
        need it (so at 10,000 robots with distinct goals the idle cache is empty). At least 0;
        ``inf``: no bound (InputError on NaN or a negative bound).
    reserve : int
        Rows reserved up front (virtual memory; untouched rows cost no RAM).
    costs : int array (n_cells, 4), optional
        Move costs (1..255) aligned with ``moves`` (e.g. :func:`sorter.agv.guidance.lane_costs`):
        the tables are then weighted shortest-path costs (Dial's algorithm), saturating at
        65,534 with ``uint16`` entries.

    Notes
    -----
    A goal is identified by a hashable ``key`` (``("cell", c)`` or ``("chute", k)``) and given
    by its cells the first time. ``acquire`` returns the pool row and counts a reference;
    ``release`` drops it. ``pool`` is a 2-D array ``[rows, n_free]`` the planner kernel reads.

    **Bounded tables** (``acquire(..., near=v)``, while ``bounded`` is True): for a single
    goal cell on a grid, the A* band of the cells on ways from ``v`` at most ``slack`` longer
    than the shortest (:func:`_astar_into`; :meth:`widen` goes on with its search); for other
    goals the search stops once every cell up to ``d + slack + d // 2`` is settled, ``d`` being
    the distance of the robot's cell ``v``. Farther cells hold ``unsettled``. A robot near its goal
    (a nearest-task scheduler's errand) then costs a few hundred cells instead of the whole
    floor. The exact values a planner reads are the same: :class:`sorter.agv.pibt.Planner`
    completes a bounded table (:meth:`complete`) before any robot reads an unsettled cell (its
    cell or a neighbour), and :meth:`lookup` returns complete tables.
    """

    def __init__(self, floor_or_moves, *, max_mb: float = 512.0, reserve: int = 16, costs=None):
        self.graph = MoveGraph.of(floor_or_moves)
        nf = self.graph.n_free
        try:
            max_mb = float(max_mb)
        except (TypeError, ValueError):
            max_mb = float("nan")
        if not max_mb >= 0:                     # NaN, negative, not a number
            raise InputError(f"max_mb={max_mb!r}", field="max_mb",
                             expected="a number of megabytes >= 0 (inf: no bound)")
        self.rcost = None
        self.max_cost = 1
        if costs is not None:
            self.rcost, self.max_cost = _reverse_costs(self.graph, costs)
        # bucket rings for Dial (weighted tables) and bounded A* (both kinds): nb > max cost + 1
        ring = 1 << int(np.ceil(np.log2(5 * nf + 1)))
        nb = 1 << int(np.ceil(np.log2(self.max_cost + 2)))
        self._qbuf = _rings(nb, ring)
        self._qhead = np.zeros(nb, np.int64)
        self._qtail = np.zeros(nb, np.int64)
        self._acost = self.rcost if self.rcost is not None else \
            (self.graph.radj >= 0).astype(np.uint8)       # unit costs for A* on a plain table
        self._fc = np.empty(nf, np.int32)           # frontier out of an A* band (main thread)
        self._res = np.zeros(4, np.int64)
        self._res1 = np.zeros((1, 4), np.int64)     # a band computed by the caller's thread
        self._fptr1 = np.zeros(2, np.int64)
        self.cells_searched = 0                     # cells the A* bands expanded (both threads)
        self.dtype = np.uint16 if nf < UNREACHABLE16 else np.uint32
        self.unreachable = int(np.iinfo(self.dtype).max)
        self.unsettled = self.unreachable - 1       # beyond a bounded table's radius
        self.bounded = True                         # acquire(..., near=) may bound tables
        self.slack = 8                              # margin of a band (widened on demand)
        self.row_bytes = nf * np.dtype(self.dtype).itemsize
        self.max_rows = 1 << 62 if max_mb == np.inf else \
            max(1, int(max_mb * 2**20 // max(1, self.row_bytes)))
        # rows are reserved (virtual memory, untouched pages are not resident) so that the pool
        # rarely has to grow by copying (a copy holds old and new pool at once): room for the
        # tables in use, the prefetched ones waiting (pin_limit) and the LRU bound
        cap = max(16, 2 * max(64, int(reserve)) + min(self.max_rows, 200_000))
        self._map, self.pool = self._new_pool(cap)
        # the written part of each row: a band touches only its span's memory pages (the rest
        # of the row is never read)
        self.span = np.zeros((cap, 2), np.int64)
        self._touched = np.zeros((cap, 2), np.int64)    # extent of the pages ever written
        self._queue = np.empty(nf, np.int32)
        self._row_of = {}                   # key -> row
        self._key_of = {}                   # row -> key
        self._idle = OrderedDict()          # rows no robot uses, least recently used first
        self._pinned = OrderedDict()        # prefetched rows not acquired yet -> acquires then
        self._acquires = 0
        self.pin_limit = max(64, int(reserve))      # prefetched rows waiting at most
        self._refs = np.zeros(cap, np.int64)
        self.partial = np.zeros(cap, np.bool_)      # rows holding a bounded table
        self.glim = np.zeros(cap, np.int64)         # a bounded row: the largest distance kept
        self.gen = np.zeros(cap, np.int64)          # bumped whenever a row's content changes
        self._src = {}                              # bounded row -> its goal's sources
        self._front = _FrontStore()                 # A* band row -> its search's frontier
        self.resumed = 0                            # widenings that went on with a search
        self._free_rows = list(range(cap - 1, -1, -1))
        self._high_water = 0
        self.bfs_count = 0
        self.bfs_seconds = 0.0
        # prefetching (background thread): pending jobs, their keys, the thread
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._jobs = deque()
        self._inflight = set()
        self._forced = set()                # queued keys beyond the limits (prefetch_many)
        self._worker = None
        self.prefetch_limit = 1024          # pending jobs at most; later requests are dropped
        self.prefetch_idle_s = 1.0          # the thread ends after this long without work
        self.prefetch_batch = 16            # jobs the thread takes at once
        self.prefetched = 0                 # tables the background thread added
        self.prefetch_dropped = 0           # ... and dropped (pin_limit rows were waiting)
        self.prefetch_seconds = 0.0
        # congestion weights (Planner's online guidance): keys ("wcell", cell, version) are
        # tables of one goal cell under the move costs registered as that version
        self._weights = {}
        self._last_version = 0              # largest version given out or registered
        self._seen = set()                  # versions ever registered

    # -- pool management -------------------------------------------------------------
    def _new_pool(self, cap):
        """Rows of the pool in anonymous memory mapped here, on 4 KB pages: only the pages a
        row's tables write become resident (NumPy would put the pool on 2 MB transparent huge
        pages, where writing one cell makes 2 MB resident)."""
        m = mmap.mmap(-1, max(1, cap * self.row_bytes))
        return m, np.frombuffer(m, self.dtype, cap * self.graph.n_free).reshape(cap, -1)

    def _release(self, row) -> None:
        """Drop the content of ``row`` for its next table (its span empties). The pages it
        wrote stay resident (``_touched``: their extent, for :attr:`nbytes`): giving them
        back (``madvise``) made every new table fault fresh pages in and interrupted the
        other thread, +25-35% time per step at 10,000 robots for -25% memory."""
        _release_span(self.span, self._touched, row)
        self.gen[row] += 1

    def values(self, row) -> np.ndarray:
        """A copy of table row ``row`` (``unsettled`` outside its span), for inspection."""
        lo, hi = (int(x) for x in self.span[row])
        out = np.full(self.graph.n_free, self.unsettled, self.dtype)
        out[lo:hi] = self.pool[row, lo:hi]
        return out

    def _grow(self):
        old = self.pool.shape[0]
        new = old * 2
        m, pool = self._new_pool(new)
        for r in np.flatnonzero(self.span[:, 1] > self.span[:, 0]).tolist():
            lo, hi = self.span[r]
            pool[r, lo:hi] = self.pool[r, lo:hi]
        self._map, self.pool = m, pool
        self.span = np.concatenate([self.span, np.zeros((new - old, 2), np.int64)])
        self._touched = np.zeros((new, 2), np.int64)   # the new pool's pages: only the spans
        self._refs = np.concatenate([self._refs, np.zeros(new - old, np.int64)])
        self.partial = np.concatenate([self.partial, np.zeros(new - old, np.bool_)])
        self.glim = np.concatenate([self.glim, np.zeros(new - old, np.int64)])
        self.gen = np.concatenate([self.gen, np.zeros(new - old, np.int64)])
        self._free_rows.extend(range(new - 1, old - 1, -1))

    def _evict(self, row) -> None:
        """Forget the table in ``row`` (its key, bound, sources, frontier, span); the caller
        has taken it out of the idle / pinned lists."""
        del self._row_of[self._key_of.pop(row)]
        self.partial[row] = False
        self._src.pop(row, None)
        self._front.drop(row)
        self._release(row)

    def _take_row(self):
        if self._idle and len(self._row_of) >= self.max_rows:
            row, _ = self._idle.popitem(last=False)          # evict the least recently used
            self._evict(row)
            return row
        if not self._free_rows:
            self._grow()
        row = self._free_rows.pop()
        self._release(row)
        self._high_water = max(self._high_water, row + 1)
        return row

    def _compute(self, key, src, blocked=_NONE, near=-1) -> int:
        w = self._costs_of(key)
        if w is None and _wkey(key):
            raise InputError(f"no move costs registered as version {key[2]!r}", field="key",
                             expected="a version given to set_weights (and not dropped)")
        row = self._take_row()
        self._src[row] = src
        if w is not None:
            self._fill_row(row, blocked, -1, costs=w)   # always complete
        else:
            self._fill_row(row, blocked, near)
        self._row_of[key] = row
        self._key_of[row] = key
        return row

    def _fill_row(self, row, blocked=_NONE, near=-1, **kw) -> None:
        """(Re)compute the table in ``row`` from its goal's sources ``_src[row]`` (kept while
        the table is bounded), timed; ``partial``/``glim`` follow."""
        t0 = time.perf_counter()
        self.partial[row], self.glim[row], front = self._fill(self._src[row], self.pool[row],
                                                              self.span[row], blocked, near,
                                                              **kw)
        self._keep_front(row, front)
        self.bfs_seconds += time.perf_counter() - t0
        self.bfs_count += 1
        self.gen[row] += 1

    def _keep_front(self, row, front) -> None:
        """After ``row`` was (re)computed: drop its sources once it is complete, keep the
        frontier of an A* band (for :meth:`widen`) or forget an old one."""
        if not self.partial[row]:
            self._src.pop(row, None)
        if front is None:
            self._front.drop(row)
        else:
            fc, lo, hi = front
            self._front.put(row, fc[lo:hi])

    def _bufs(self):
        """Work arrays of one thread: BFS queue, bucket rings, and the frontier cells out of A*
        bands (a batch's frontiers share it)."""
        nf = self.graph.n_free
        return (np.empty(nf, np.int32), _rings(*self._qbuf.shape), np.zeros_like(self._qhead),
                np.zeros_like(self._qtail), np.empty(nf, np.int32))

    @staticmethod
    def _front_of(fc, lo, hi, res):
        """Where the frontier of a search is (``fc[lo:hi]``, a thread's buffer), to be
        kept by :meth:`_keep_front`; None where there is none to keep (complete, or it did not
        fit)."""
        if res[0] < 0 or res[2] < 0:
            return None
        return fc, int(lo), int(hi)

    def _band(self, src, near) -> bool:
        """Is this a job for the A* band: one goal cell on a grid, bounded around ``near``?"""
        return near >= 0 and src.size == 1 and self.graph.rows is not None

    def _fill(self, src, row, span, blocked=_NONE, near=-1, bufs=None, min_limit=0, disc=False,
              costs=None):
        """Compute a table into ``row``, its written part into ``span`` (caller's thread).
        Returns ``(bounded, largest distance kept, frontier)``; the frontier (see
        :meth:`_front_of`) only for an A* band.

        ``near < 0``: the complete table. Else a bounded one: for a single-cell goal on a grid
        (and not ``disc``) the A* band around the ways from ``near`` (:func:`_astar_into`), else
        every cell up to ``1.5 d(near) + slack`` (at least ``min_limit``). ``bufs``: the work
        arrays of the calling thread (:meth:`_bufs`; default the caller's own). ``costs``: a
        version's ``(reverse move costs, largest cost)`` (:meth:`set_weights`): the complete
        table under those costs.
        """
        if bufs is None:
            bufs = (self._queue, self._qbuf, self._qhead, self._qtail, self._fc)
        queue, qbuf, qhead, qtail, fc = bufs
        g = self.graph
        if costs is not None:
            rc, maxc = costs
            if qbuf.shape[0] < maxc + 2:        # bucket rings for the larger costs
                qbuf, qhead, qtail = self._wider_rings(qbuf, maxc)
            _dial_into(g.radj, rc, src, row, self.unreachable, maxc, qbuf, qhead, qtail,
                       blocked, -1, self.slack, self.unsettled, 0)
            span[0], span[1] = 0, row.shape[0]
            return False, 0, None
        if not disc and blocked.size == 0 and self._band(src, near):
            # through the batch kernel the prefetch thread uses (one compiled function: it is
            # compiled, or loaded from the cache, here on the caller's first table)
            res, fptr = self._res1, self._fptr1     # callers hold the lock (the thread
            res[0, 2] = 0                           # batches its band jobs, never here)
            _astar_batch(g.radj, g.fadj, self._acost, np.array([src[0]], np.int64),
                         np.array([near], np.int64), row[None], _ROW0, span[None],
                         self.unreachable,
                         qbuf, qhead, qtail, g.rows, g.cols, g.dr4, g.dc4, self.slack,
                         self.unsettled, fc, fptr, res)
            self.cells_searched += int(res[0, 3])
            return (bool(res[0, 0] >= 0), int(res[0, 1]),
                    self._front_of(fc, 0, fptr[1], res[0]))
        if self.rcost is None:
            r = _bfs_into(g.radj, src, row, queue, self.unreachable, blocked, near, self.slack,
                          self.unsettled, min_limit)
        else:
            r = _dial_into(g.radj, self.rcost, src, row, self.unreachable, self.max_cost, qbuf,
                           qhead, qtail, blocked, near, self.slack, self.unsettled, min_limit)
        span[0], span[1] = 0, row.shape[0]             # these write the whole row
        if r >= 0:
            return False, 0, None
        kept = row[row < self.unsettled]
        return True, (int(kept.max()) if kept.size else 0), None

    def _costs_of(self, key):
        """The registered ``(reverse costs, largest cost)`` of a ``("wcell", cell, version)``
        key, else None (the pool's own costs)."""
        return self._weights.get(key[2]) if _wkey(key) else None

    @staticmethod
    def _wider_rings(qbuf, maxc):
        nb = 1 << int(np.ceil(np.log2(maxc + 2)))
        return _rings(nb, qbuf.shape[1]), np.zeros(nb, np.int64), np.zeros(nb, np.int64)

    def set_weights(self, version, costs) -> None:
        """Register move costs as ``version``: the tables of keys ``("wcell", cell, version)``
        are then the (complete) weighted distances to ``cell`` under ``costs``.

        ``costs``: uint8 array ``(n_free, 4)`` of *reverse* move costs, as the pool's own
        (``rcost[v, k]`` = cost of the move ``radj[v, k] -> v``; 1..255 where a move exists).
        ``version``: an integer >= 0 not registered before with other costs (tables of it may
        be cached; :meth:`new_version` gives a fresh one).
        """
        c = np.asarray(costs)
        if c.shape != (self.graph.n_free, 4) or not np.issubdtype(c.dtype, np.integer) \
                or (c.size and (c.max() > 255 or c.min() < 0
                               or c[self.graph.radj >= 0].min(initial=1) < 1)):
            # (cast to uint8 before: 256 became a free move, -1 a 255 one; 0 left no gradient)
            raise InputError(f"costs of shape {c.shape}, dtype {c.dtype}", field="costs",
                             expected=f"integers of shape ({self.graph.n_free}, 4), 1..255 "
                                      "where a move exists")
        if not _is_int(version) or version < 0:
            raise InputError(f"version={version!r}", field="version",
                             expected="an integer >= 0 (new_version() gives a fresh one)")
        rc = np.ascontiguousarray(c, np.uint8)
        with self._lock:
            old = self._weights.get(int(version))
            if int(version) in self._seen and (old is None or not np.array_equal(old[0], rc)):
                raise InputError(f"version {int(version)} was registered before (with other "
                                 "costs, or dropped; tables of it may be cached)", field="version",
                                 expected="a number not used before (new_version())")
            self._seen.add(int(version))
            maxc = max(1, int(rc.max()))
            if self._qbuf.shape[0] < maxc + 2:      # this thread's rings (the prefetch
                self._qbuf, self._qhead, self._qtail = self._wider_rings(self._qbuf, maxc)
            self._weights[int(version)] = (rc, maxc)  # thread widens its own)
            self._last_version = max(self._last_version, int(version))

    def new_version(self) -> int:
        """A version number for :meth:`set_weights` that no one has used in this pool yet:
        planners sharing a pool each take their own (the same number for two planners' costs
        gave one planner's robots tables of the other's costs, and its drop_weights made the
        other's next acquire fail)."""
        with self._lock:
            self._last_version += 1
            return self._last_version

    def drop_weights(self, version) -> None:
        """Forget the costs of ``version`` (its tables stay until released; a queued
        prefetch of one is dropped, an acquire of a new one refused)."""
        if not _is_int(version):
            raise InputError(f"version={version!r}", field="version", expected="an integer")
        with self._lock:
            self._weights.pop(int(version), None)

    def forget(self, key) -> bool:
        """Drop the cached table of ``key`` now if no robot uses it (a table that will not be
        asked for again, such as an old congestion version); True if dropped."""
        try:
            hash(key)
        except TypeError:
            raise InputError(f"key {key!r} is not hashable", field="key",
                             expected="a table key such as ('cell', c)") from None
        with self._lock:
            row = self._row_of.get(key)
            if row is None or self._refs[row] > 0:
                return False
            self._idle.pop(row, None)
            self._pinned.pop(row, None)
            self._evict(row)
            self._free_rows.append(row)
            return True

    def complete(self, row: int) -> None:
        """Make the bounded table in ``row`` complete (no-op for a complete one)."""
        with self._lock:
            if self.partial[row]:
                self._fill_row(row)

    def widen(self, row: int, near: int) -> None:
        """Widen the bounded table in ``row`` to hold free cell ``near`` (a cell outside it)
        and its neighbours. An A* band goes on with its search (:meth:`_resume`) unless
        ``near`` is far beyond it and the table has one user; otherwise it is recomputed: with
        one user, a new bounded table around ``near``; shared, one that also holds every cell
        it held (all cells up to ``max(1.5 d(near) + slack, the largest distance it held)``)."""
        with self._lock:
            if not self.partial[row]:
                return
            front = self._front.get(row)
            if front is not None:
                self._resume(row, int(near), front)
            elif self._refs[row] <= 1:
                self._fill_row(row, _NONE, near)    # its one user: a new band around it
            else:
                self._fill_row(row, _NONE, near, min_limit=int(self.glim[row]), disc=True)

    def _resume(self, row, v, front) -> None:
        """Widen the A* band in ``row`` to cell ``v`` and its neighbours by going on with its
        search from its frontier, now toward ``v`` (:func:`_astar_run`): only cells beyond the
        band are searched, on the ways from ``v`` at most ``slack`` longer than the shortest."""
        g = self.graph
        t0 = time.perf_counter()
        targets = np.full(5, -1, np.int64)
        targets[0] = v
        targets[1:] = g.fadj[v]
        res = self._res
        res[2] = 0
        _astar_run(g.radj, g.fadj, self._acost, self.pool[row], self.span[row], self.unreachable,
                   self._qbuf, self._qhead, self._qtail, front, _NONE32, v, g.rows, g.cols,
                   g.dr4, g.dc4, self.slack, self.unsettled, targets, self._fc, 0, res)
        self.partial[row] = res[0] >= 0
        self.glim[row] = max(int(self.glim[row]), int(res[1]))
        self._keep_front(row, self._front_of(self._fc, 0, max(int(res[2]), 0), res))
        self.bfs_seconds += time.perf_counter() - t0
        self.bfs_count += 1
        self.gen[row] += 1
        self.resumed += 1
        self.cells_searched += int(res[3])

    def complete_all(self) -> None:
        """Complete every bounded table, and bound no more (e.g. before detour planning, which
        reads tables far from the robots)."""
        with self._lock:
            self.bounded = False
            for row in list(self._src):
                self.complete(row)

    def acquire(self, key, cells, blocked=None, near=None, refs=1) -> int:
        """Pool row of goal ``key`` (cells ``cells``), computing it if absent; adds a reference
        (``refs`` references: one per robot taking it at once, each released on its own).

        ``blocked`` (uint8 per free cell, optional) marks cells the table must route around
        (e.g. the cells of faulted robots); the caller makes ``key`` tell such tables apart.
        ``near`` (a free-cell index, optional): a new table may be bounded around that cell
        (see Notes); without it the table returned is complete.
        """
        if blocked is not None and not (isinstance(blocked, np.ndarray)
                                        and blocked.dtype == np.uint8
                                        and blocked.shape == (self.graph.n_free,)):
            b = np.asarray(blocked)                 # checked once per call: O(1) when right
            if b.shape != (self.graph.n_free,) or not (np.issubdtype(b.dtype, np.integer)
                                                       or b.dtype == np.bool_):
                raise InputError(f"blocked has shape {b.shape}, dtype {b.dtype}", field="blocked",
                                 expected=f"a uint8 array of shape ({self.graph.n_free},), "
                                          "one flag per free cell")
            blocked = (b != 0).astype(np.uint8)
        if not (_is_int(refs) and refs >= 1):
            raise InputError(f"refs={refs!r}", field="refs", expected="an integer >= 1")
        near = self._near(near)
        with self._lock:
            row = self._acquire(key, cells, blocked, near)
            self._refs[row] += refs - 1
            return row

    def _near(self, near):
        """``near`` checked: None or a free-cell index (the compiled searches index with it
        unchecked: one beyond the floor crashed the process)."""
        if near is None:
            return None
        if not (_is_int(near) and 0 <= near < self.graph.n_free):
            raise InputError(f"near={near!r}", field="near",
                             expected=f"a free-cell index in [0, {self.graph.n_free}) or None")
        return int(near)

    def _covers(self, row, near) -> bool:
        """Does the (bounded) table in ``row`` hold cell ``near`` and its neighbours?"""
        return _covers(self.pool, self.span, self.graph.fadj, row, near, self.unsettled)

    def _acquire(self, key, cells, blocked, near=None):
        self._acquires += 1
        row = self._row_of.get(key)
        if (row is not None and near is not None and self.partial[row] and self.bounded
                and not self._covers(row, int(near))):
            alt = (key, "near", int(near))          # a bounded table of its own, maybe prefetched
            front = self._front.get(row)
            if alt in self._row_of:
                key, row = alt, self._row_of[alt]
            elif front is not None:
                self._resume(row, int(near), front)     # widened to take this robot in too
            elif self._refs[row] == 0:
                self._fill_row(row, _NONE, int(near))   # a cached bounded table of another robot
            else:
                # in use by a robot elsewhere: a bounded table of its own for this one (two
                # small tables, not one wide one)
                key, row = alt, None
        if row is None:
            row = self._compute(key, _goal_sources(self.graph, cells),
                                _NONE if blocked is None else blocked,
                                -1 if near is None or not self.bounded else int(near))
        else:
            if near is None and self.partial[row]:
                self.complete(row)              # without near: a complete table
            if self._refs[row] == 0:
                self._idle.pop(row, None)
                self._pinned.pop(row, None)
        self._refs[row] += 1
        return row

    def cached_row(self, key) -> int:
        """Pool row of ``key`` if its table is cached (no reference taken), else -1."""
        with self._lock:
            return self._row_of.get(key, -1)

    def release(self, row: int) -> None:
        """Drop one reference to ``row`` (the table stays cached, idle, until evicted)."""
        with self._lock:
            if row >= 0 and self._refs[row] > 0:
                self._refs[row] -= 1
                if self._refs[row] == 0:
                    self._idle[row] = None

    def release_many(self, rows) -> None:
        """:meth:`release` for each of ``rows`` (a list of ints), under one lock: a step's old
        goals' tables."""
        with self._lock:
            refs, idle = self._refs, self._idle
            for row in rows:
                if row >= 0 and refs[row] > 0:
                    refs[row] -= 1
                    if refs[row] == 0:
                        idle[row] = None

    def prefetch(self, key, cells, near=None) -> bool:
        """Have a background thread compute the table of ``key`` (cells ``cells``) ahead of use.

        For goals known in advance (a robot's next errand): the table is added to the cache
        while the caller goes on, and a later :meth:`acquire` finds it. Until then it is
        *pinned*, not evicted by the LRU bound (at 10,000 robots the tables in use alone fill
        it, and an idle prefetched table would be evicted by the next new one): at most
        ``pin_limit`` (default ``reserve``) wait; further ones are dropped, unless the oldest
        has waited for ``4 x pin_limit`` acquisitions (then it becomes an ordinary cached
        table). Returns False when nothing was queued: the table is cached or queued
        already, or ``prefetch_limit`` jobs are pending (the goal is then computed on first
        use, as without prefetching). The thread ends after a second without work. ``near``: as in
        :meth:`acquire` (the cell the robot will stand on when it takes this goal).

        Raises
        ------
        InputError
            If a goal cell is outside the grid or an obstacle (checked here, not in the thread).
        """
        return self.prefetch_many([(key, cells, near)]) == 1

    def prefetch_many(self, jobs, urgent=False, force=False) -> int:
        """:meth:`prefetch` for a list of ``(key, cells, near)``, under one lock and with one
        wake-up of the thread; returns how many were queued. ``urgent``: the jobs go before
        the ones queued already (needed within a step or two), in their order. ``force``:
        queued even beyond ``prefetch_limit``, and computed even beyond ``pin_limit`` (a
        planner's congestion tables, all needed at one step)."""
        n = 0
        first = []
        # every job checked before any is queued (a bad cell in a later job left the earlier
        # ones queued with no thread started: never computed, and refused as in flight)
        jobs = [(key, _goal_sources(self.graph, cells), self._near(near))
                for key, cells, near in jobs]
        with self._lock:
            for key, src, near in jobs:
                row = self._row_of.get(key)
                if (row is not None and near is not None and self.bounded and self.partial[row]
                        and not self._covers(row, int(near))):
                    key = (key, "near", int(near))  # as acquire(..., near) will look it up
                row = self._row_of.get(key)
                if row is not None:
                    if row in self._idle and len(self._pinned) < self.pin_limit:
                        del self._idle[row]     # cached: kept (pinned) until acquired
                        self._pinned[row] = self._acquires
                    continue
                if key in self._inflight:
                    if urgent:                  # queued (not started) as an ordinary job
                        for j, job in enumerate(self._jobs):
                            if job[0] == key:
                                del self._jobs[j]
                                first.append(job)
                                break
                    continue
                if len(self._jobs) >= self.prefetch_limit and not force:
                    continue
                job = (key, src, -1 if near is None or not self.bounded else near)
                if force:
                    self._forced.add(key)
                if urgent:
                    first.append(job)
                else:
                    self._jobs.append(job)
                self._inflight.add(key)
                n += 1
            self._jobs.extendleft(reversed(first))
            if n:
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="sorter-tables",
                                                    daemon=True)
                    self._worker.start()
                else:
                    self._wake.notify()
        return n

    def frozen(self):
        """Context manager: while inside, the prefetch thread adds and evicts nothing, so rows
        looked up with :meth:`cached_row` (no reference taken) keep their tables."""
        return self._lock

    def wait_prefetched(self, timeout=None) -> bool:
        """Block until every queued prefetch is done (tests, benchmarks); False on timeout."""
        t_end = None if timeout is None else time.perf_counter() + timeout
        while True:
            with self._lock:
                if not self._jobs and not self._inflight:
                    return True
            if t_end is not None and time.perf_counter() > t_end:
                return False
            time.sleep(0.001)

    def wait_forced(self, keys=None) -> float:
        """Block until the jobs queued with ``prefetch_many(..., force=True)`` are filed
        (``keys``: only the forced jobs of those keys; later ones stay with the thread).
        Returns the seconds waited.

        While waiting, this (the caller's) thread computes the forced jobs the prefetch thread
        has not taken yet, from the far end of its queue, on its own core and outside the lock
        (as the thread does), so both threads work on them: the thread takes forced jobs one
        at a time (:meth:`_work`)."""
        t0 = time.perf_counter()
        want = None if keys is None else set(keys)
        while True:
            with self._lock:
                due = self._forced if want is None else self._forced & want
                if not due:
                    return time.perf_counter() - t0
                job = next((jb for jb in reversed(self._jobs) if jb[0] in due), None)
                worker = self._worker
                if job is None and (worker is None or not worker.is_alive()):
                    self._forced -= due         # (the thread ended: nothing will file the
                    return time.perf_counter() - t0     # ones it held)
                if job is not None:
                    self._jobs.remove(job)
                    key, src, _ = job
                    if key in self._row_of or (_wkey(key) and self._costs_of(key) is None):
                        self._inflight.discard(key)     # cached, or its costs forgotten
                        self._forced.discard(key)
                        continue
                    w = self._costs_of(key)
                    row = self._take_row()              # (key stays in flight until filed)
                    pool = self.pool
            if job is None:
                time.sleep(0.0005)
                continue
            t1 = time.perf_counter()
            span = np.zeros((1, 2), np.int64)
            done = self._fill(src, pool[row], span[0], _NONE, -1, costs=w)
            dt = time.perf_counter() - t1
            with self._lock:
                self._file([(key, src, -1, row)], [done], span, pool, 0.0, 0, caller=True)
                self.bfs_seconds += dt
                self.bfs_count += 1

    def _work(self):
        """The prefetch thread: take up to ``prefetch_batch`` queued jobs and a pool row for
        each (under the lock), compute them into those rows without the lock (the single-cell
        bounded ones in one compiled call, without the GIL), then file them (pinned). A batch
        is filed when the next one is taken, under the same lock: the thread takes the GIL
        back once per batch, not twice (each time the caller's thread may wait for it)."""
        g = self.graph
        nb = self.prefetch_batch
        bufs = self._bufs()
        res = np.zeros((nb, 4), np.int64)
        fptr = np.zeros(nb + 1, np.int64)
        done_batch = None
        while True:
            batch = []
            with self._lock:
                if done_batch is not None:
                    self._file(*done_batch)
                    done_batch = None
                if not self._jobs:
                    self._wake.wait(timeout=self.prefetch_idle_s)
                    if not self._jobs:
                        self._worker = None
                        return
                while self._jobs and len(batch) < nb:
                    key, src, near = self._jobs.popleft()
                    if not self.bounded:
                        near = -1
                    if key in self._row_of or (_wkey(key) and self._costs_of(key) is None):
                        self._inflight.discard(key)     # cached, or its costs forgotten
                        self._forced.discard(key)
                        continue
                    if (len(self._pinned) + len(batch) >= self.pin_limit
                            and key not in self._forced and not self._unpin_stale()):
                        self._inflight.discard(key)
                        self._forced.discard(key)
                        self.prefetch_dropped += 1      # computed on first use instead
                        continue
                    batch.append((key, src, near, self._take_row()))
                    if key in self._forced:     # one at a time: the caller's thread takes
                        break                   # the others while it waits (wait_forced)
                wcosts = [self._costs_of(job[0]) for job in batch]
                if bufs[1].shape[0] < self._qbuf.shape[0]:      # larger costs registered
                    bufs = self._bufs()
                pool = self.pool
            if not batch:
                continue
            t0 = time.perf_counter()
            band = [j for j, (_, src, near, _) in enumerate(batch)
                    if wcosts[j] is None and self._band(src, near)]
            done = [None] * len(batch)  # per job: (bounded, largest distance kept, frontier)
            spans = np.zeros((len(batch), 2), np.int64)     # filed with the rows, under the lock
            cells = 0
            if band:
                k = len(band)
                srcs = np.array([batch[j][1][0] for j in band], np.int64)
                nears = np.array([batch[j][2] for j in band], np.int64)
                rows = np.array([batch[j][3] for j in band], np.int64)
                bspans = np.zeros((k, 2), np.int64)
                _astar_batch(g.radj, g.fadj, self._acost, srcs, nears, pool, rows, bspans,
                             self.unreachable, bufs[1], bufs[2], bufs[3], g.rows, g.cols, g.dr4,
                             g.dc4, self.slack, self.unsettled, bufs[4], fptr, res[:k])
                spans[band] = bspans
                cells = int(res[:k, 3].sum())
                for i, j in enumerate(band):
                    done[j] = (bool(res[i, 0] >= 0), int(res[i, 1]),
                               self._front_of(bufs[4], fptr[i], fptr[i + 1], res[i]))
            for j, (_, src, near, row) in enumerate(batch):
                if done[j] is None:             # other kinds, one at a time
                    done[j] = self._fill(src, pool[row], spans[j], _NONE, near, bufs,
                                         costs=wcosts[j])
            # filed (under the lock) before the next batch reuses the frontier buffer
            done_batch = (batch, done, spans, pool, time.perf_counter() - t0, cells)

    def _file(self, batch, done, spans, pool, dt, cells, caller=False) -> None:
        """File a batch the thread computed (under the lock): each table pinned until its robot
        acquires it, unless it was computed on demand meanwhile. ``caller``: computed by the
        caller's thread (:meth:`wait_forced`; counted in ``bfs_count``, not ``prefetched``)."""
        self.prefetch_seconds += dt
        self.cells_searched += cells
        self.span[[job[3] for job in batch]] = spans
        for (key, src, _, row), (part, glim, front), (lo, hi) in zip(batch, done, spans):
            self._inflight.discard(key)
            self._forced.discard(key)
            if self.pool is not pool:           # the pool grew (by copying) meanwhile
                self.pool[row, lo:hi] = pool[row, lo:hi]
            if key in self._row_of or (part and not self.bounded):
                self._free_rows.append(row)     # computed on demand meanwhile, or
                continue                        # bounding was switched off
            self._row_of[key] = row
            self._key_of[row] = key
            self.partial[row] = part
            self.glim[row] = glim
            if part:
                self._src[row] = src
            self._keep_front(row, front)
            self._pinned[row] = self._acquires  # promised: kept until acquired
            self.prefetched += not caller

    def _unpin_stale(self) -> bool:
        """Make the oldest pinned table an ordinary cached one if it has waited more than
        ``4 x pin_limit`` acquisitions; False if it has not."""
        if not self._pinned:
            return False
        old, when = next(iter(self._pinned.items()))
        if self._acquires - when <= 4 * self.pin_limit:
            return False
        del self._pinned[old]                   # unused that long: cached, evictable
        self._idle[old] = None
        return True

    def precompute(self, goals) -> float:
        """Compute the tables of ``goals`` (a dict ``key -> cells``) ahead of use.

        Returns the seconds spent. Keys already cached are skipped; the new tables stay cached
        (idle) as long as the LRU bound allows (at most ``max_mb`` worth are computed).
        """
        with self._lock:
            return self._precompute(goals)

    def _precompute(self, goals) -> float:
        todo = [(k, _goal_sources(self.graph, c)) for k, c in goals.items() if k not in self._row_of]
        todo = todo[:max(0, self.max_rows - len(self._row_of))]
        if not todo:
            return 0.0
        while len(self._free_rows) < len(todo):
            self._grow()
        rows = [self._free_rows.pop() for _ in todo]
        self._high_water = max(self._high_water, max(rows) + 1)
        self.gen[rows] += 1
        ptr = np.zeros(len(todo) + 1, np.int64)
        ptr[1:] = np.cumsum([s.size for _, s in todo])
        idx = np.concatenate([s for _, s in todo]).astype(np.int32)
        t0 = time.perf_counter()
        if self.rcost is None:
            _bfs_many(self.graph.radj, ptr, idx, np.asarray(rows, np.int64), self.pool,
                      self._queue, self.unreachable, _NONE)
            self.span[rows] = 0, self.graph.n_free
        else:
            for j, r in enumerate(rows):
                self._fill(idx[ptr[j]:ptr[j + 1]], self.pool[r], self.span[r])
        dt = time.perf_counter() - t0
        for (k, _), r in zip(todo, rows):
            self._row_of[k] = r
            self._key_of[r] = k
            self._idle[r] = None
        self.bfs_seconds += dt
        self.bfs_count += len(todo)
        return dt

    def lookup(self, key, cells) -> np.ndarray:
        """The table of ``key`` as int32 per grid cell (-1 unreachable), for inspection."""
        row = self.acquire(key, cells)
        self.complete(row)
        try:
            t = self.pool[row].astype(np.int64)
        finally:
            self.release(row)
        t[t == self.unreachable] = -1
        out = np.full(self.graph.n_cells, -1, np.int32)
        out[self.graph.free_cells] = t
        return out

    @property
    def n_bounded(self) -> int:
        """Number of cached tables that are bounded (see Notes)."""
        return len(self._src)

    @property
    def n_cached(self) -> int:
        return len(self._row_of)

    @property
    def nbytes(self) -> int:
        """Bytes of the pool's resident rows (the tables' spans, and the pages kept from
        earlier tables of the same rows), and of the bands' frontiers."""
        s, t = self.span[:self._high_water], self._touched[:self._high_water]
        hs, ht = s[:, 1] > s[:, 0], t[:, 1] > t[:, 0]
        lo = np.where(hs & ht, np.minimum(s[:, 0], t[:, 0]), np.where(hs, s[:, 0], t[:, 0]))
        hi = np.where(hs & ht, np.maximum(s[:, 1], t[:, 1]), np.where(hs, s[:, 1], t[:, 1]))
        width = np.where(hs | ht, hi - lo, 0)
        return int(width.sum()) * self.pool.itemsize + self._front.nbytes

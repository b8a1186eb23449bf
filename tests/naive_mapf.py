"""Plain-Python oracles for floors and plans: a plan checker, a BFS, a flood-fill labeller.

Written from the rules, loop by loop, to be obviously correct (no NumPy tricks). Shared with the
planner tests (the planner engineer's plain-Python PIBT lives in ``naive_pibt.py``).

``naive_validate`` follows the same definition of *the first violation* as
``sorter.agv.validate``: the earliest step; within a step the kinds in the order
start, off_grid, obstacle, jump, one_way, vertex, swap; within a kind the smallest robot (or
pair ``(i, j)``, ``i < j``, in lexicographic order).
"""
from __future__ import annotations

from collections import deque

__all__ = ["naive_validate", "naive_reach", "naive_components", "naive_mutually_reachable"]

OBSTACLE = 0


def naive_validate(floor, starts, paths):
    """First violation as ``(kind, step, robots, cells)``, or None. Loops over every robot pair."""
    n = floor.height * floor.width
    w = floor.width
    cells = [int(c) for c in floor.cells]
    moves = [[int(t) for t in row] for row in floor.moves]
    starts = [int(s) for s in starts]
    paths = [[int(c) for c in row] for row in paths]
    R = len(starts)

    def on_grid(c):
        return 0 <= c < n

    for i in range(R):
        if paths[0][i] != starts[i]:
            return ("start", 0, (i,), (starts[i], paths[0][i]))
    for t in range(len(paths)):
        row = paths[t]
        prev = paths[t - 1] if t > 0 else None
        for i in range(R):
            if not on_grid(row[i]):
                return ("off_grid", t, (i,), (row[i],))
        for i in range(R):
            if cells[row[i]] == OBSTACLE:
                return ("obstacle", t, (i,), (row[i],))
        if prev is not None:
            for i in range(R):
                a, b = prev[i], row[i]
                if a == b:
                    continue
                ra, ca = divmod(a, w)
                rb, cb = divmod(b, w)
                if abs(ra - rb) + abs(ca - cb) != 1:
                    return ("jump", t, (i,), (a, b))
            for i in range(R):
                a, b = prev[i], row[i]
                if a != b and b not in moves[a]:
                    return ("one_way", t, (i,), (a, b))
        for i in range(R):
            for j in range(i + 1, R):
                if row[i] == row[j]:
                    return ("vertex", t, (i, j), (row[i],))
        if prev is not None:
            for i in range(R):
                for j in range(i + 1, R):
                    if prev[i] != row[i] and prev[i] == row[j] and prev[j] == row[i]:
                        return ("swap", t, (i, j), (prev[i], row[i]))
    return None


def naive_reach(floor, sources, backward=False):
    """Set of cells reachable from ``sources`` (or that reach them, ``backward=True``), by BFS."""
    n = floor.height * floor.width
    adj = {c: [] for c in range(n)}
    for c in range(n):
        for t in floor.moves[c]:
            t = int(t)
            if t >= 0:
                if backward:
                    adj[t].append(c)
                else:
                    adj[c].append(t)
    seen = set(int(s) for s in sources)
    q = deque(seen)
    while q:
        c = q.popleft()
        for t in adj[c]:
            if t not in seen:
                seen.add(t)
                q.append(t)
    return seen


def naive_mutually_reachable(floor):
    """True if every induct cell and drop cell of the floor's stations reach each other."""
    cells = [int(c) for st in floor.inducts for c in st.cells]
    cells += [int(c) for st in floor.chutes for c in st.cells]
    if not floor.inducts or not floor.chutes:
        return True
    for a in cells:
        r = naive_reach(floor, [a])
        if any(b not in r for b in cells):
            return False
    return True


def naive_components(mask):
    """Flood-fill labels of the 4-connected True cells of a list-of-lists mask.

    Returns a dict ``(row, col) -> label``, labels numbered by the row-major first cell.
    """
    h = len(mask)
    w = len(mask[0]) if h else 0
    lab = {}
    k = 0
    for r in range(h):
        for c in range(w):
            if mask[r][c] and (r, c) not in lab:
                lab[(r, c)] = k
                q = deque([(r, c)])
                while q:
                    y, x = q.popleft()
                    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < h and 0 <= xx < w and mask[yy][xx] and (yy, xx) not in lab:
                            lab[(yy, xx)] = k
                            q.append((yy, xx))
                k += 1
    return lab

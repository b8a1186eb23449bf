"""Plain-Python oracles for the rescue search (``sorter/agv/lacam.py``).

* :func:`generate` -- one PIBT step under constraints, written recursively from the LaCAM
  paper's ``get_new_config`` / ``funcPIBT``, with the kernel's tie-break hash.
* :func:`search_reference` -- the LaCAM loop of ``lacam.search`` in plain Python (nodes as
  objects, constraint trees as deques, a dict of configurations), calling the compiled
  generator: the reference for the compiled loop.
* :func:`crowded_floor` -- the crowded random floors with pockets of the rescue tests and
  of ``bench/bench_mapf.py liveness``.
* :func:`reachable` -- exhaustive breadth-first search over joint configurations (every
  combination of moves and waits, no shared cells, no swaps): can robot ``target`` get to a
  cell where its distance is 0? The independent answer to "is the search complete".
"""
from collections import deque
from itertools import product

import numpy as np

from naive_pibt import mix
from sorter.agv.lacam import _generate
from sorter.agv.pibt import tie_hash


def crowded_floor(seed, h, w, obst, dens):
    """A random ``h`` x ``w`` floor with a share ``obst`` of obstacles (dead ends, pockets) and
    robots on a share ``dens`` of its largest strongly connected part: ``(floor, goal cells
    (that part), starts, generator for the goals)``."""
    from sorter.agv.tasks import strongly_connected_parts
    from sorter.layout import Floor
    rng = np.random.default_rng(seed)
    cells = np.where(rng.random((h, w)) < obst, 0, 1).astype(np.int8)
    if cells.sum() < 2:
        cells[0, :2] = 1
    f = Floor(cells, check=False)
    lab = strongly_connected_parts(f.moves)
    free = f.free_cells
    labs, cnt = np.unique(lab[free], return_counts=True)
    goal_cells = free[lab[free] == labs[np.argmax(cnt)]]
    n = min(goal_cells.size - 1, max(2, int(dens * goal_cells.size)))
    return f, goal_cells, rng.choice(goal_cells, n, replace=False), rng


def dfs_maze(rng, h, w, width=1):
    """A perfect maze (a tree: no cycles) of ``h x w`` rooms, corridors ``width`` cells wide,
    walls one cell, carved depth-first: a cell grid (1 free, 0 wall)."""
    cells = np.zeros((h * (width + 1) + 1, w * (width + 1) + 1), np.int8)
    seen = np.zeros((h, w), bool)

    def room(r, c):
        cells[1 + r * (width + 1):1 + r * (width + 1) + width,
              1 + c * (width + 1):1 + c * (width + 1) + width] = 1
    stack = [(0, 0)]
    seen[0, 0] = True
    room(0, 0)
    while stack:
        r, c = stack[-1]
        nb = [(r + a, c + b) for a, b in ((0, 1), (1, 0), (0, -1), (-1, 0))
              if 0 <= r + a < h and 0 <= c + b < w and not seen[r + a, c + b]]
        if not nb:
            stack.pop()
            continue
        r2, c2 = nb[rng.integers(len(nb))]
        seen[r2, c2] = True
        room(r2, c2)
        r0, c0 = 1 + min(r, r2) * (width + 1), 1 + min(c, c2) * (width + 1)
        if r2 != r:
            cells[r0 + width, c0:c0 + width] = 1          # the wall between, opened
        else:
            cells[r0:r0 + width, c0 + width] = 1
        stack.append((r2, c2))
    return cells


def generate(fadj, dist, grow, cfg, order, constraints, salt):
    """Next configuration (list) or None; arguments as ``lacam._generate`` (lists / ints),
    ``constraints`` a list of ``(robot, cell)``."""
    n = len(cfg)
    now = {c: j for j, c in enumerate(cfg)}
    out = [None] * n
    owner = {}                                    # cell -> robot going there
    for who, at in constraints:
        if at in owner:
            return None
        k = now.get(at)
        if k is not None and k != who and out[k] == cfg[who]:
            return None
        out[who] = at
        owner[at] = who

    def key(i, u):
        v = cfg[i]
        d = dist[grow[i]][u] if grow[i] >= 0 else (0 if u == v else 1)
        return (d, mix(mix(salt + i) + u) >> 40)

    def pibt(i):
        v = cfg[i]
        cands = [u for u in fadj[v] if u >= 0] + [v]
        for u in sorted(cands, key=lambda u: key(i, u)):
            if u in owner:
                continue
            k = now.get(u)
            if k is not None and out[k] == v:
                continue                          # no swap
            owner[u] = i
            out[i] = u
            if k is not None and k != i and out[k] is None and not pibt(k):
                continue
            return True
        owner[v] = i
        out[i] = v
        return False

    for i in order:
        if out[i] is None and not pibt(i):
            return None
    return out


def reachable(fadj, goal_dist, start, target, fixed=()):
    """Breadth-first search over joint configurations from ``start``: True if one with
    ``goal_dist[cfg[target]] == 0`` can be reached (robots in ``fixed`` never move)."""
    start = tuple(int(c) for c in start)
    fixed = set(int(i) for i in fixed)
    seen = {start}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for cfg in frontier:
            if goal_dist[cfg[target]] == 0:
                return True
            options = [[c] if i in fixed else [c] + [u for u in fadj[c] if u >= 0]
                       for i, c in enumerate(cfg)]
            for nxt in product(*options):
                if len(set(nxt)) < len(nxt) or nxt in seen:
                    continue
                if any(nxt[i] == cfg[j] and nxt[j] == cfg[i]
                       for i in range(len(cfg)) for j in range(i + 1, len(cfg))):
                    continue
                seen.add(nxt)
                nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return False


class _Node:
    __slots__ = ("cfg", "parent", "tree", "order")

    def __init__(self, cfg, parent, order):
        self.cfg = cfg
        self.parent = parent
        self.order = order
        self.tree = deque([((), ())])            # constraints: (robots, cells)


def _order(trow, cfg, target, movable):
    """Planning order at a configuration: the target, then the other movable robots nearest
    its goal first (those in its way, or in the pocket it must enter), ties by index."""
    others = movable[np.argsort(trow[cfg[movable]], kind="stable")]
    return np.concatenate((np.array([target], np.int64), others))


def search_reference(fadj, dist, grow, start, target, fixed=(), *, seed=0, max_calls=20000,
                     part=None):
    """``sorter.agv.lacam.search`` in plain Python (its first version; the same arguments,
    unshortened configurations): the reference for the compiled loop."""
    n = start.shape[0]
    fixed = np.asarray(fixed, np.int64)
    free = np.ones(n, np.bool_)
    free[fixed] = False
    free[target] = False
    movable = np.flatnonzero(free)
    occ_now = np.full(fadj.shape[0], -1, np.int32)
    occ_next = np.full(fadj.shape[0], -1, np.int32)
    st_a = np.empty(n + 1, np.int64)
    st_c = np.empty((n + 1, 5, 2), np.int64)
    st_n = np.empty(n + 1, np.int64)
    st_k = np.empty(n + 1, np.int64)
    trow = dist[grow[target]]
    cfg0 = np.array(start, np.int32)
    root = _Node(cfg0, None, _order(trow, cfg0, target, movable))
    explored = {root.cfg.tobytes(): root}
    opened = [root]
    seedmix = tie_hash(seed)
    calls = 0
    while opened:
        node = opened[-1]
        if trow[node.cfg[target]] == 0:
            path = []
            while node is not None:
                path.append(node.cfg)
                node = node.parent
            return path[::-1], "found", calls
        if not node.tree:
            opened.pop()
            continue
        if calls >= max_calls:
            return None, "budget", calls
        who, at = node.tree.popleft()
        depth = len(who)
        order = node.order
        if depth < order.shape[0]:               # grow the constraint tree lazily
            i = int(order[depth])
            v = int(node.cfg[i])
            nb = [v] + [int(u) for u in fadj[v] if u >= 0]
            h = tie_hash(seedmix + calls * 7919 + i)
            nb.sort(key=lambda u: tie_hash(h + u))
            for u in nb:
                node.tree.append((who + (i,), at + (u,)))
        c_who = np.concatenate([fixed, np.asarray(who, np.int64)])
        c_at = np.concatenate([node.cfg[fixed].astype(np.int64), np.asarray(at, np.int64)])
        out = np.empty(n, np.int32)
        salt = np.uint64(tie_hash(seedmix ^ (calls + 1)))
        calls += 1
        if not _generate(fadj, dist, grow, node.cfg, order, c_who, c_at, salt, out, occ_now,
                         occ_next, st_a, st_c, st_n, st_k):
            continue
        if part is not None and (part[out[movable]] != part[node.cfg[movable]]).any():
            continue                            # one making way would leave its part
        key = out.tobytes()
        seen = explored.get(key)
        if seen is not None:
            opened.append(seen)
            continue
        new = _Node(out, node, _order(trow, out, target, movable))
        explored[key] = new
        opened.append(new)
    return None, "none", calls

"""Plain-Python oracles for the rescue search (``sorter/agv/lacam.py``).

* :func:`generate` -- one PIBT step under constraints, written recursively from the LaCAM
  paper's ``get_new_config`` / ``funcPIBT``, with the kernel's tie-break hash.
* :func:`reachable` -- exhaustive breadth-first search over joint configurations (every
  combination of moves and waits, no shared cells, no swaps): can robot ``target`` get to a
  cell where its distance is 0? The independent answer to "is the search complete".
"""
from itertools import product

from naive_pibt import mix


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
